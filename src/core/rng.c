/* SplitMix64 (Steele, Lea and Flood 2014), seeded per (seed, stream). */
#include "core/rng.h"

void vnp_rng_init(vnp_rng *r, uint64_t seed, uint64_t stream)
{
    /* Streams are seeds apart by an odd constant times the stream number, then mixed
     * once so nearby seeds do not give overlapping sequences. */
    r->s = seed ^ (stream * 0xD1B54A32D192ED03ull);
    (void)vnp_rng_next(r);
}

uint64_t vnp_rng_next(vnp_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float vnp_rng_unit_f32(vnp_rng *r) { return (float)(vnp_rng_next(r) >> 40) * 0x1.0p-24f; }

uint64_t vnp_rng_below(vnp_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* values >= limit would bias */
    uint64_t v;
    do
        v = vnp_rng_next(r);
    while (v >= limit);
    return v % n;
}

void vnp_rng_permutation(vnp_rng *r, size_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)vnp_rng_below(r, i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
