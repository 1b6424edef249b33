/* A small seeded pseudo-random generator (SplitMix64) for everything that must be
 * reproducible from a --seed: training's initial weights, split, batch order and
 * dropout masks. Each use takes its own stream (vnp_rng_init(seed, stream)) so that
 * changing one (e.g. the number of epochs) never shifts the numbers of another. Not
 * for cryptography. A generator is owned by the thread that uses it. */
#ifndef VNP_CORE_RNG_H
#define VNP_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct vnp_rng {
    uint64_t s;
} vnp_rng;

void vnp_rng_init(vnp_rng *r, uint64_t seed, uint64_t stream);
uint64_t vnp_rng_next(vnp_rng *r);
/* Uniform in [0, 1) with 24 random bits (every value a float32 exactly). */
float vnp_rng_unit_f32(vnp_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t vnp_rng_below(vnp_rng *r, uint64_t n);
/* A uniformly random permutation of 0..n-1 into perm (Fisher-Yates). */
void vnp_rng_permutation(vnp_rng *r, size_t *perm, size_t n);

#endif
