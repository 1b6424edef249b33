/* IEEE half and bfloat16 <-> float conversion (round to nearest even). */
#ifndef VIRNUCPRO_HALF_H
#define VIRNUCPRO_HALF_H
#include <stdint.h>
#include <string.h>
#ifdef __cplusplus
extern "C" {
#endif
float vnp_f16_to_f32(uint16_t h);
uint16_t vnp_f32_to_f16(float f);
float vnp_bf16_to_f32(uint16_t h);
uint16_t vnp_f32_to_bf16(float f);

/* A float's bits and back (memcpy: no aliasing questions). */
static inline uint32_t vnp_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float vnp_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
#ifdef __cplusplus
}
#endif
#endif
