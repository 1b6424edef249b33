#!/usr/bin/env python3
"""Warp stall reasons from an `ncu -i REPORT --page raw --csv` dump, largest first.

    ncu_stalls.py RAW.csv [N]

The raw page has one column per metric (a header row of names, a row of units, then one
row per profiled kernel). The stall columns are `smsp__average_warps_issue_stalled_<reason>
_per_issue_active.ratio`: cycles a warp spends stalled for that reason per instruction
issued. Prints, for each kernel, the N (default 6) largest as `reason=value` on one line,
so that a change in where the warps wait shows beside the timings. Prints nothing if the
file has no such columns (an ncu without them, or a failed import)."""
import csv
import re
import sys

STALL = re.compile(r"^smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio$")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) == 3 else 6
    with open(sys.argv[1], newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    head = next((i for i, r in enumerate(rows) if any(STALL.match(c) for c in r)), None)
    if head is None:
        return
    names = rows[head]
    cols = [(i, STALL.match(c).group(1)) for i, c in enumerate(names) if STALL.match(c)]
    for r in rows[head + 1:]:
        vals = []
        for i, reason in cols:
            try:
                vals.append((float(r[i].replace(",", "")), reason))
            except (ValueError, IndexError):
                pass  # (the units row, or a blank cell)
        if vals:
            vals.sort(reverse=True)
            print(" ".join(f"{reason}={v:.2f}" for v, reason in vals[:top]))


if __name__ == "__main__":
    main()
