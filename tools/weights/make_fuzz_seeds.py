#!/usr/bin/env python3
"""Builds the seed corpora of the weights fuzz harnesses from the golden fixtures and a
few small checkpoints written here.

usage: make_fuzz_seeds.py REPO_ROOT
  fuzz/corpus/fuzz_safetensors/    small safetensors files (every dtype, metadata,
                                   empty tensors) and the golden file's header
  fuzz/corpus/fuzz_zip_directory/  small torch.save archives (state dict, whole module,
                                   nested dict, protocol 4) and the golden classifier
  fuzz/corpus/fuzz_pickle/         the data.pkl of every golden checkpoint and of the
                                   archives above
"""
import io
import os
import struct
import sys
import zipfile

import numpy as np
import torch
from safetensors.torch import save as st_save


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def small_tensors():
    return {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "f16": torch.ones(3, dtype=torch.float16),
        "bf16": torch.full((2,), 2.0, dtype=torch.bfloat16),
        "i64": torch.tensor([7, -1]),
        "empty": torch.zeros(0, 2),
        "scalar": torch.tensor(1.5),
    }


def torch_bytes(obj, protocol=2):
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol)
    return buf.getvalue()


def data_pkl(archive):
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


def main():
    root = sys.argv[1]
    golden = os.path.join(root, "tests", "fixtures", "golden")
    corpus = os.path.join(root, "fuzz", "corpus")

    st = os.path.join(corpus, "fuzz_safetensors")
    write(os.path.join(st, "dtypes.safetensors"), st_save(small_tensors()))
    write(os.path.join(st, "metadata.safetensors"),
          st_save({"w": torch.ones(2, 2)}, metadata={"format": "pt", "note": "seed"}))
    write(os.path.join(st, "empty.safetensors"), struct.pack("<Q", 2) + b"{}")
    with open(os.path.join(golden, "esm2", "model.safetensors"), "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0]
        header = f.read(n)
    write(os.path.join(st, "esm2_header_only.safetensors"), head + header)

    zp = os.path.join(corpus, "fuzz_zip_directory")
    lin = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    archives = {
        "state_dict.pth": torch_bytes(small_tensors()),
        "module.pth": torch_bytes(lin),
        "nested_p4.pth": torch_bytes({"model": lin.state_dict(), "cfg": {"n": 3, "s": "x"}}, 4),
        "views.pth": torch_bytes({"b": torch.arange(12.0).reshape(3, 4).t(), "c": torch.ones(4)[1:]}),
        "numpy_cfg.pth": torch_bytes({"cfg": {"lr": np.float64(0.5), "n": np.int64(-3),
                                              "h": np.float16(1.0), "ok": np.bool_(True)}}),
    }
    for name, data in archives.items():
        write(os.path.join(zp, name), data)
    with open(os.path.join(golden, "classifier_torch1.13.pth"), "rb") as f:
        write(os.path.join(zp, "classifier_torch1.13.pth"), f.read())

    pk = os.path.join(corpus, "fuzz_pickle")
    for name, data in archives.items():
        write(os.path.join(pk, name.replace(".pth", ".pkl")), data_pkl(data))
    for rel in ("classifier.pth", "classifier_cuda.pth", "esm2_bin/pytorch_model.bin",
                "esm2_fairesm/esm2_t3_test_UR50D.pt", "dnabert_s/pytorch_model.bin"):
        with open(os.path.join(golden, rel), "rb") as f:
            write(os.path.join(pk, rel.replace("/", "_") + ".pkl"), data_pkl(f.read()))


if __name__ == "__main__":
    main()
