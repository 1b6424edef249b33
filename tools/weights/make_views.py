#!/usr/bin/env python3
"""Writes PyTorch checkpoints that exercise the C reader beyond the golden files:
strided and offset views, every supported dtype, nested containers, plain values,
several pickle protocols, a broadcast (expanded) view and a legacy-format file.

usage: make_views.py OUTDIR
  OUTDIR/views_p2.pth, views_p4.pth, views_p5.pth   the same dict, pickle protocols 2/4/5
  OUTDIR/expanded.pth                               {"e": ones(3, 1).expand(3, 4)}
  OUTDIR/legacy.pth                                 views saved in the pre-1.6 format
  OUTDIR/torchscript.pt                             a scripted module (torch.jit.save)
"""
import os
import sys

import numpy as np
import torch


def views():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 5, generator=g)
    d = {
        "base": base,
        "transposed": base.t(),
        "rows": base[2:5],
        "column": base[:, 1],
        "every_other": base[::2, 1::2],
        "half": torch.randn(4, 3, generator=g).half(),
        "bfloat": torch.randn(7, generator=g).bfloat16(),
        "double": torch.randn(2, 2, generator=g).double(),
        "long": torch.arange(-3, 5),
        "int": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "short": torch.tensor([-2, 7], dtype=torch.int16),
        "char": torch.tensor([-128, 127], dtype=torch.int8),
        "byte": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
        "nested": {"list": [torch.full((2,), 1.0), torch.full((1,), 2.0)], "n": 7},
        "count": 5,
        "rate": 2.5,
        "name": "hello",
        "flag": True,
        "nothing": None,
        "device": torch.device("cuda", 0),
        "dtype": torch.float16,
        "size": torch.Size([2, 3]),
        "numpy": {"f8": np.float64(0.25), "f4": np.float32(-1.5), "f2": np.float16(2.0),
                  "i8": np.int64(-3), "i2": np.int16(-7), "u1": np.uint8(200),
                  "b1": np.bool_(True)},
    }
    return d


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for p in (2, 4, 5):
        torch.save(views(), os.path.join(out, "views_p%d.pth" % p), pickle_protocol=p)
    torch.save({"e": torch.ones(3, 1).expand(3, 4)}, os.path.join(out, "expanded.pth"))
    torch.save(views(), os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, "torchscript.pt"))


if __name__ == "__main__":
    main()
