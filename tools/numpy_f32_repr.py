"""Prints float32 values and str() of each as a numpy float32, one per line:
"<bits hex>\t<str>" (str, not repr: numpy 2 wraps repr in "np.float32(...)").

Reference for the C float formatter (src/pipeline/float_format.c), which must print
probabilities exactly as the original VirNucPro (str() of numpy float32) did.
Usage: numpy_f32_repr.py N SEED  -> N random values: random bit patterns over the whole
float32 range, uniform [0, 1) probabilities, softmax-like values near 0 and 1, and the
edge cases (powers of two, integers around 2^24, the 1e-4 and 1e16 thresholds, denormals,
zeros, inf, nan)."""
import struct
import sys

import numpy as np


def main():
    np.seterr(over="ignore")
    n = int(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    vals = []
    vals += list(rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32).view(np.float32))
    vals += list(rng.random(n, dtype=np.float32))
    vals += list((1.0 - rng.random(n, dtype=np.float32) * np.float32(1e-3)).astype(np.float32))
    vals += list((rng.random(n) * 10.0 ** rng.uniform(-8, -3, n)).astype(np.float32))
    for k in range(-149, 128):
        p = np.float32(2.0) ** np.float32(k) if k > -127 else np.float32(2.0 ** k)
        vals += [np.float32(p), np.nextafter(np.float32(p), np.float32(0)),
                 np.nextafter(np.float32(p), np.float32(np.inf))]
    for i in range(2**24 - 40, 2**24 + 40):
        vals.append(np.float32(i))
    for i in range(2**25 - 20, 2**25 + 40, 2):
        vals.append(np.float32(i))
    for t in (1e-4, 1e16, 1.0, 0.1, 1e15, 1e-5, 123456789.0, 3.4028235e38):
        f = np.float32(t)
        vals += [f, np.nextafter(f, np.float32(0)), np.nextafter(f, np.float32(np.inf))]
    vals += [np.float32(0.0), np.float32(-0.0), np.float32(np.inf), np.float32(-np.inf),
             np.float32(1e-45), np.float32(-1.5), np.float32(100.0), np.float32(0.098566994)]
    out = sys.stdout
    for v in vals:
        v = np.float32(v)
        if np.isnan(v):
            continue  # many NaN payloads; the C side tests "nan" on its own
        bits = struct.unpack("<I", struct.pack("<f", float(v)))[0]
        out.write("%08x\t%s\n" % (bits, str(v)))


if __name__ == "__main__":
    main()
