#!/usr/bin/env python3
"""Kernel time shares from an `ncu --csv --metrics gpu__time_duration.sum` log.

    ncu_summary.py LOG.csv TOKENS [WALL_TOK_S]

Groups kernels by a short name (cuBLASLt's GEMM kernels under one name, our sm_90 GEMM
under one per epilogue), prints each group's share of the summed kernel time, then each
GEMM kernel's mean time a call (which GEMM of a layer it is shows in its tile name and
share), the kernel-only rate TOKENS / sum, and, given the rate measured without ncu
(WALL_TOK_S), the fraction of wall time not spent in any kernel (launch gaps, host work,
synchronisation)."""
import csv
import sys


def targs(name):
    """The template arguments of a demangled kernel name, as strings."""
    head = name.split("(")[0]
    if "<" not in head:
        return []
    return [a.strip() for a in head[head.index("<") + 1:head.rindex(">")].split(",")]


def short(name):
    n = name.split("(")[0].split("<")[0].strip()
    if n.startswith("void "):
        n = n[5:]
    a = targs(name)
    if n == "gemm_sm90_kernel":  # ours (src/backend/cuda/sm90): <T, epilogue, variant>
        epi = {"0": "bias+GELU", "1": "gated GELU", "2": "linear"}.get(a[1] if len(a) > 1 else "", "?")
        return "sm_90 GEMM (%s)" % epi
    if any(k in name for k in ("gemm", "sm90_xmma", "cutlass", "nvjet", "Kernel2")):
        return "cuBLASLt GEMMs"
    # what an FP8 quantising kernel computes (vnp_q8_op), and LayerNorm with E4M3 output
    if n == "q8_act_kernel" and a:
        return n + {"0": " (copy)", "1": " (GELU)", "2": " (gated GELU)"}.get(a[0], "")
    # layernorm_warp_kernel<T, vectors a lane, E4M3 out, rows held as floats>
    if n == "layernorm_warp_kernel" and len(a) > 2 and a[2] in ("true", "1"):
        return n + " (E4M3 out)"
    return n


def main():
    path, tokens = sys.argv[1], float(sys.argv[2])
    wall = float(sys.argv[3]) if len(sys.argv) > 3 else None
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    by, gemms, total = {}, {}, 0.0
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "nsecond")
        scale = {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6,
                 "s": 1e9, "second": 1e9}
        if unit not in scale:
            sys.exit("unknown time unit %r in %s" % (unit, path))
        ns = v * scale[unit]
        k = short(r["Kernel Name"])
        c = by.setdefault(k, [0.0, 0])
        c[0] += ns
        c[1] += 1
        total += ns
        if "GEMM" in k:
            g = gemms.setdefault(r["Kernel Name"].split("(")[0].replace("void ", ""), [0.0, 0])
            g[0] += ns
            g[1] += 1
    if not total:
        sys.exit("no gpu__time_duration rows in " + path)
    print("%-34s %8s %7s %10s" % ("kernel", "calls", "share", "ms"))
    for k, (ns, n) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        print("%-34s %8d %6.1f%% %10.2f" % (k[:34], n, 100 * ns / total, ns / 1e6))
    print("%-52s %6s %7s %9s" % ("GEMM kernel", "calls", "share", "us/call"))
    for k, (ns, n) in sorted(gemms.items(), key=lambda kv: -kv[1][0]):
        print("%-52s %6d %6.1f%% %9.1f" % (k[:52], n, 100 * ns / total, ns / 1e3 / n))
    rate = tokens / (total / 1e9)
    line = "kernel time %.1f ms for %d tokens: %.0f tok/s if kernels ran back to back" % (
        total / 1e6, tokens, rate)
    if wall:
        line += "; measured %.0f tok/s: %.1f %% of wall time outside kernels" % (
            wall, 100 * (1 - wall / rate))
    print(line)


if __name__ == "__main__":
    main()
