#!/usr/bin/env python3
"""Prints what PyTorch itself reads from a checkpoint, one tensor per line:
name<TAB>dtype<TAB>shape<TAB>crc32 of the contiguous little-endian bytes.

Used by tests/weights as the reference for the C readers. Whole pickled modules
(torch.save(model)) are listed through state_dict(); {"model": ..., "cfg": ...}
dicts are flattened with '.' like the C reader does. Classes a pickled module needs
(VirNucPro's __main__.MLPClassifier) are defined here so that unpickling works.

usage: dump_checkpoint.py FILE...   (with several files, each listing starts "# FILE")
"""
import sys
import zlib

import torch
from torch import nn

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
          torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


class MLPClassifier(nn.Module):  # VirNucPro's classifier, needed to unpickle it
    def __init__(self, input_dim=1, hidden_dim=1, num_class=2):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)


def flatten(prefix, value, out):
    if isinstance(value, torch.Tensor):
        out.append((prefix, value))
    elif isinstance(value, nn.Module):
        for k, v in value.state_dict(keep_vars=True).items():
            out.append((prefix + "." + k if prefix else k, v))
    elif isinstance(value, dict):
        for k, v in value.items():
            flatten(prefix + "." + str(k) if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            flatten(prefix + "." + str(i) if prefix else str(i), v, out)


def main():
    import __main__
    __main__.MLPClassifier = MLPClassifier
    for path in sys.argv[1:]:
        if len(sys.argv) > 2:
            print("# " + path)
        dump(path)


def dump(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    out = []
    flatten("", obj, out)
    for name, t in out:
        t = t.detach().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        shape = "[" + ", ".join(str(d) for d in t.shape) + "]"
        print(f"{name}\t{DTYPES[t.dtype]}\t{shape}\t{zlib.crc32(data):08x}")


if __name__ == "__main__":
    main()
