#!/usr/bin/env python3
"""Which kernels of two cubins have the same machine code, instruction for instruction.

    sass_same.py OLD.cubin NEW.cubin [NVDISASM]

For a change meant to leave some kernels alone (a refactor, a new variant beside them),
without a GPU: build the file at both commits with
`nvcc -std=c++17 -O3 -cubin -arch=sm_90a -Iinclude -Isrc FILE.cu -o X.cubin` and compare.
Each kernel in both prints SAME or DIFF (with its instruction counts); kernels in only
one print as gone or new. Branch labels are renamed before comparing (their numbers
change with any edit elsewhere in the file). NVDISASM defaults to `nvdisasm` on PATH
(the CUDA toolkit's, or the `nvidia-cuda-nvdisasm` wheel's). Exit status 0 always: the
verdict is the table."""
import re
import subprocess
import sys

INSN = re.compile(r"\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;?\s*(/\*.*)?$")


def kernels(cubin, tool):
    """{kernel symbol: [instruction text]} of one cubin."""
    out = subprocess.run([tool, "-c", cubin], capture_output=True, text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.split("\n"):
        if line.startswith(".text."):
            cur = line[len(".text."):].rstrip(":")
            funcs[cur] = []
            continue
        m = INSN.match(line)
        if cur is not None and m:
            funcs[cur].append(re.sub(r"\.L_x_\d+", "L", m.group(1)))
    return funcs


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    tool = sys.argv[3] if len(sys.argv) == 4 else "nvdisasm"
    old, new = kernels(sys.argv[1], tool), kernels(sys.argv[2], tool)
    for name in sorted(set(old) | set(new)):
        if name not in new:
            print(f"gone {name}")
        elif name not in old:
            print(f"new  {name}")
        else:
            verdict = "SAME" if old[name] == new[name] else "DIFF"
            print(f"{verdict} {name} ({len(old[name])} -> {len(new[name])} instructions)")


if __name__ == "__main__":
    main()
