/* The precision table and the rounding of every reduced precision (see
 * include/virnucpro/precision.h). */
#include "virnucpro/precision.h"
#include "virnucpro/half.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const vnp_precision_info table[] = {
    {VNP_PREC_FP32, "fp32", "FP32", VNP_FMT_F32, VNP_FMT_F32, 0},
    {VNP_PREC_FP16, "fp16", "FP16", VNP_FMT_F16, VNP_FMT_F16, 0},
    {VNP_PREC_BF16, "bf16", "BF16", VNP_FMT_BF16, VNP_FMT_BF16, 0},
    {VNP_PREC_FP8, "fp8", "FP8", VNP_FMT_F16, VNP_FMT_E4M3, 0},
    {VNP_PREC_FP8_TENSOR, "fp8-tensor", "FP8 (per-tensor scales)", VNP_FMT_F16, VNP_FMT_E4M3,
     1},
};
#define NPREC (sizeof table / sizeof table[0])

const vnp_precision_info *vnp_precision_info_of(vnp_precision p)
{
    for (size_t i = 0; i < NPREC; i++)
        if (table[i].prec == p)
            return &table[i];
    return NULL;
}

const char *vnp_precision_name(vnp_precision p)
{
    const vnp_precision_info *i = vnp_precision_info_of(p);
    return i ? i->name : p == VNP_PREC_DEFAULT ? "default" : "?";
}

const char *vnp_precision_label(vnp_precision p)
{
    const vnp_precision_info *i = vnp_precision_info_of(p);
    return i ? i->label : p == VNP_PREC_DEFAULT ? "default" : "?";
}

int vnp_precision_parse(const char *s, vnp_precision *out)
{
    for (size_t i = 0; s && i < NPREC; i++)
        if (!strcmp(s, table[i].name)) {
            *out = table[i].prec;
            return 1;
        }
    return 0;
}

/* ---- rounding ---- */

float vnp_round_f16(float x)
{
    uint32_t u = vnp_f32_bits(x), a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, sign kept */
        return vnp_bits_f32(u | 0x00400000u);
    if (a >= 0x477ff000u) /* >= 65520, the midpoint past 65504 (odd): rounds to inf */
        return vnp_bits_f32((u & 0x80000000u) | 0x7f800000u);
    if (a >= 0x38800000u) { /* >= 2^-14: normal; keep 10 mantissa bits, ties to even */
        u += 0x00000fffu + ((u >> 13) & 1u);
        return vnp_bits_f32(u & ~0x1fffu);
    }
    /* subnormal: a multiple of 2^-24 (both scalings are exact; rintf ties to even in
     * the default rounding mode; -0 stays -0) */
    return rintf(x * 16777216.0f) * (1.0f / 16777216.0f);
}

float vnp_round_bf16(float x)
{
    uint32_t u = vnp_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return vnp_bits_f32(u | 0x00400000u);
    u += 0x00007fffu + ((u >> 16) & 1u); /* may carry into the exponent, up to inf */
    return vnp_bits_f32(u & 0xffff0000u);
}

uint8_t vnp_f32_to_e4m3(float x)
{
    uint32_t u = vnp_f32_bits(x), a = u & 0x7fffffffu;
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    if (a > 0x7f800000u)
        return (uint8_t)(sign | 0x7f);
    if (a >= 0x43e00000u) /* >= 448 (infinities too): saturate */
        return (uint8_t)(sign | 0x7e);
    if (a < 0x3c800000u) { /* < 2^-6: subnormal, a multiple of 2^-9 (8 is 2^-6, code 0x08) */
        float m = rintf(vnp_bits_f32(a) * 512.0f);
        return (uint8_t)(sign | (uint8_t)m);
    }
    /* normal: keep 3 mantissa bits, ties to even; below 448 no rounding passes 448 */
    uint32_t r = a + 0x0007ffffu + ((a >> 20) & 1u);
    int e = (int)(r >> 23) - 127; /* -6 .. 8 */
    uint32_t m = (r >> 20) & 7u;
    return (uint8_t)(sign | (uint8_t)(((uint32_t)(e + 7) << 3) | m));
}

float vnp_e4m3_to_f32(uint8_t b)
{
    int e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = (float)m * (1.0f / 512.0f);
    else
        v = ldexpf((float)(8 + m), e - 10); /* (1 + m/8) 2^(e-7) */
    return (b & 0x80) ? -v : v;
}

float vnp_round_e4m3(float x) { return vnp_e4m3_to_f32(vnp_f32_to_e4m3(x)); }

float vnp_round_to(vnp_numfmt f, float x)
{
    switch (f) {
    case VNP_FMT_F16: return vnp_round_f16(x);
    case VNP_FMT_BF16: return vnp_round_bf16(x);
    case VNP_FMT_E4M3: return vnp_round_e4m3(x);
    default: return x;
    }
}

void vnp_round_array(vnp_numfmt f, float *x, size_t n)
{
    /* one loop per format, so that each inlines its rounding */
    switch (f) {
    case VNP_FMT_F16:
        for (size_t i = 0; i < n; i++)
            x[i] = vnp_round_f16(x[i]);
        break;
    case VNP_FMT_BF16:
        for (size_t i = 0; i < n; i++)
            x[i] = vnp_round_bf16(x[i]);
        break;
    case VNP_FMT_E4M3:
        for (size_t i = 0; i < n; i++)
            x[i] = vnp_round_e4m3(x[i]);
        break;
    default: break;
    }
}

float vnp_fp8_scale(float amax)
{
    float s = amax / VNP_E4M3_MAX;
    if (s >= FLT_MIN)
        return s;
    /* all zeros: 1; an amax so small that the scale would be subnormal: FLT_MIN, whose
     * reciprocal (2^126) is finite, so that 0 stays 0 */
    return amax > 0.0f ? FLT_MIN : 1.0f;
}

float vnp_fp8_inv(float scale) { return 1.0f / scale; }

float vnp_fp8_quantize(const float *x, size_t n, float *q)
{
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax; /* a NaN compares false: ignored here */
    }
    float s = vnp_fp8_scale(amax), r = vnp_fp8_inv(s);
    for (size_t i = 0; i < n; i++)
        q[i] = vnp_round_e4m3(x[i] * r);
    return s;
}
