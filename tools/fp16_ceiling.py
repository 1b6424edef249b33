#!/usr/bin/env python3
"""What a tok/s target asks of the GEMMs, from a profile's kernel-time shares.

The linears' FLOPs follow from the model shapes. Given the kernel-time sum of a profile
(tok/s with the kernels back to back) and the shares of cuBLASLt's GEMMs, our fused
up-projection and the rest, it prints:
- the rates those shares imply;
- what the target needs: the GEMM rate with the rest unchanged, and the time the rest
  may take with every GEMM at cuBLASLt's in-place rate.

Defaults: bench/RESULTS.md session 16 `prof` (H100, reads20k). Another profile's shares
go in through the options:

    python3 tools/fp16_ceiling.py --esm 106.0e3 57.1 32.7 8.6 --dna 1.72e6 32.5 48.4 17.7
"""
import argparse


def linears(h, inter, layers, gated):
    up = h * inter * (2 if gated else 1)
    lt = (3 * h * h + h * h + inter * h) * layers * 2  # qkv, out, down/fc2: cuBLASLt
    return lt, up * layers * 2  # the up-projection: our fused kernel


def report(name, lt, up, toks, s_lt, s_up, s_rest, target):
    t = 1.0 / toks
    t_lt, t_up, t_rest = s_lt / 100 * t, s_up / 100 * t, s_rest / 100 * t
    r_lt = lt / t_lt
    tgt = 1.0 / target
    print(f"{name}: {(lt + up) / 1e9:.4f} GFLOP/token ({lt / 1e9:.4f} cuBLASLt, {up / 1e9:.4f} ours)")
    print(f"  in place: cuBLASLt {r_lt / 1e12:.0f} TFLOP/s, ours {up / t_up / 1e12:.0f}, "
          f"rest {t_rest * 1e6:.3f} us per token")
    print(f"  every GEMM at cuBLASLt's rate: {1 / (t_lt + up / r_lt + t_rest):,.0f} tok/s; "
          f"and no rest: {1 / (t_lt + up / r_lt):,.0f}")
    print(f"  target {target:,.0f}: GEMMs at {(lt + up) / (tgt - t_rest) / 1e12:.0f} TFLOP/s "
          f"with the rest unchanged, or the rest at "
          f"{(tgt - (lt + up) / r_lt) * 1e6:.3f} us per token (now {t_rest * 1e6:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--esm", nargs=4, type=float, default=[106.0e3, 57.1, 32.7, 8.6],
                    metavar=("TOKS", "CUBLASLT%", "OURS%", "REST%"))
    ap.add_argument("--dna", nargs=4, type=float, default=[1.72e6, 32.5, 48.4, 17.7],
                    metavar=("TOKS", "CUBLASLT%", "OURS%", "REST%"))
    ap.add_argument("--esm-target", type=float, default=120e3)
    ap.add_argument("--dna-target", type=float, default=2.5e6)
    a = ap.parse_args()
    report("ESM-2 3B", *linears(2560, 10240, 36, False), *a.esm, a.esm_target)
    report("DNABERT-S", *linears(768, 3072, 12, True), *a.dna, a.dna_target)


if __name__ == "__main__":
    main()
