/* IEEE binary16 and bfloat16 encodings. The rounding itself (nearest even, overflow to
 * infinity, NaN quieted) is precision.c's vnp_round_f16 / vnp_round_bf16, the one the CPU
 * emulation of reduced precisions uses: encoding a float here is rounding it there, then
 * writing the (exactly representable) result in 16 bits. */
#include "virnucpro/half.h"
#include "virnucpro/precision.h"

#include <string.h>


float vnp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) /* zero or subnormal: man * 2^-24, exact */
        return vnp_bits_f32(sign | vnp_f32_bits((float)man * (1.0f / 16777216.0f)));
    if (exp == 31)
        return vnp_bits_f32(sign | 0x7f800000u | (man << 13));
    return vnp_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t vnp_f32_to_f16(float f)
{
    const uint32_t u = vnp_f32_bits(vnp_round_f16(f));
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf, or NaN with its top payload bits (quiet) */
        return (uint16_t)(sign | 0x7c00u | ((a & 0x7fffffu) >> 13));
    if (a >= 0x38800000u) /* normal: rebias the exponent, the mantissa's top 10 bits */
        return (uint16_t)(sign | (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));
    /* zero or subnormal: a whole multiple of 2^-24, below 2^10 of them */
    return (uint16_t)(sign | (uint32_t)(vnp_bits_f32(a) * 16777216.0f));
}

float vnp_bf16_to_f32(uint16_t h) { return vnp_bits_f32((uint32_t)h << 16); }

uint16_t vnp_f32_to_bf16(float f) { return (uint16_t)(vnp_f32_bits(vnp_round_bf16(f)) >> 16); }
