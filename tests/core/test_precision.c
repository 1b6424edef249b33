/* The precision table and the rounding of each reduced precision: exact known
 * encodings (E4M3 normals, subnormals, saturation, NaN), round-to-nearest-even ties,
 * and brute-force oracles (the nearest representable value found by search). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/half.h"
#include "virnucpro/precision.h"

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Same value and same sign (so -0 differs from +0); NaN matches NaN. */
static int same(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return f2u(a) == f2u(b);
}

static void test_table(void **state)
{
    (void)state;
    const char *names[] = {"fp32", "fp16", "bf16", "fp8", "fp8-tensor"};
    for (int i = 0; i < 5; i++) {
        vnp_precision p = VNP_PREC_DEFAULT;
        assert_true(vnp_precision_parse(names[i], &p));
        assert_int_equal(p, i);
        assert_string_equal(vnp_precision_name(p), names[i]);
        assert_non_null(vnp_precision_info_of(p));
        assert_int_equal(vnp_precision_info_of(p)->prec, p);
    }
    vnp_precision p = VNP_PREC_FP16;
    assert_false(vnp_precision_parse("FP16", &p));
    assert_false(vnp_precision_parse("fp8-channel", &p));
    assert_false(vnp_precision_parse("", &p));
    assert_false(vnp_precision_parse(NULL, &p));
    assert_int_equal(p, VNP_PREC_FP16); /* untouched */
    assert_string_equal(vnp_precision_name(VNP_PREC_DEFAULT), "default");
    assert_null(vnp_precision_info_of(VNP_PREC_DEFAULT));
    assert_string_equal(vnp_precision_name((vnp_precision)42), "?");
    assert_string_equal(vnp_precision_label(VNP_PREC_BF16), "BF16");
    /* what each precision rounds */
    const vnp_precision_info *fp8 = vnp_precision_info_of(VNP_PREC_FP8);
    assert_int_equal(fp8->act, VNP_FMT_F16);
    assert_int_equal(fp8->gemm, VNP_FMT_E4M3);
    assert_int_equal(fp8->per_tensor, 0);
    assert_int_equal(vnp_precision_info_of(VNP_PREC_FP8_TENSOR)->per_tensor, 1);
    assert_int_equal(vnp_precision_info_of(VNP_PREC_BF16)->gemm, VNP_FMT_BF16);
    assert_int_equal(vnp_precision_info_of(VNP_PREC_FP32)->act, VNP_FMT_F32);
}

static void test_f16_ties_and_limits(void **state)
{
    (void)state;
    const float ulp1 = 1.0f / 1024; /* FP16 spacing in [1, 2) */
    assert_true(same(vnp_round_f16(1.0f + ulp1 / 2), 1.0f));              /* tie -> even */
    assert_true(same(vnp_round_f16(1.0f + 3 * ulp1 / 2), 1.0f + 2 * ulp1)); /* tie -> even */
    assert_true(same(vnp_round_f16(1.0f + ulp1 / 2 + 1e-7f), 1.0f + ulp1)); /* past the tie */
    assert_true(same(vnp_round_f16(-(1.0f + 3 * ulp1 / 2)), -(1.0f + 2 * ulp1)));
    assert_true(same(vnp_round_f16(65504.0f), 65504.0f));
    assert_true(same(vnp_round_f16(65519.99f), 65504.0f));
    assert_true(same(vnp_round_f16(65520.0f), INFINITY)); /* tie with an odd max: up */
    assert_true(same(vnp_round_f16(-1e6f), -INFINITY));
    assert_true(same(vnp_round_f16(INFINITY), INFINITY));
    assert_true(isnan(vnp_round_f16(NAN)));
    const float sub = 5.9604644775390625e-8f; /* 2^-24 */
    assert_true(same(vnp_round_f16(sub), sub));
    assert_true(same(vnp_round_f16(sub / 2), 0.0f));          /* tie -> 0 (even) */
    assert_true(same(vnp_round_f16(-sub / 2), -0.0f));
    assert_true(same(vnp_round_f16(3 * sub / 2), 2 * sub));   /* tie -> even */
    assert_true(same(vnp_round_f16(5 * sub / 2), 2 * sub));
    assert_true(same(vnp_round_f16(1023.5f * sub), 1024 * sub)); /* up into the normals */
    assert_true(same(vnp_round_f16(-0.0f), -0.0f));
}

static void test_bf16_ties_and_limits(void **state)
{
    (void)state;
    const float ulp1 = 1.0f / 128; /* BF16 spacing in [1, 2) */
    assert_true(same(vnp_round_bf16(1.0f + ulp1 / 2), 1.0f));
    assert_true(same(vnp_round_bf16(1.0f + 3 * ulp1 / 2), 1.0f + 2 * ulp1));
    assert_true(same(vnp_round_bf16(-(1.0f + 3 * ulp1 / 2)), -(1.0f + 2 * ulp1)));
    assert_true(same(vnp_round_bf16(u2f(0x7f7f7fffu)), u2f(0x7f7f0000u))); /* below the tie */
    assert_true(same(vnp_round_bf16(u2f(0x7f7f8000u)), INFINITY)); /* tie with an odd max */
    assert_true(same(vnp_round_bf16(u2f(0x7f7e8000u)), u2f(0x7f7e0000u))); /* tie, even */
    assert_true(same(vnp_round_bf16(u2f(0x00018000u)), u2f(0x00020000u))); /* subnormal tie */
    assert_true(isnan(vnp_round_bf16(NAN)));
    assert_true(isnan(vnp_round_bf16(u2f(0x7f800001u)))); /* a NaN that would round to inf */
}

/* The rounding functions agree with the storage conversions of half.c on a sweep of
 * every 127th float bit pattern (34 million values, all exponents, both signs). */
static void test_f16_bf16_sweep(void **state)
{
    (void)state;
    for (uint64_t b = 0; b <= 0xffffffffu; b += 127) {
        float x = u2f((uint32_t)b);
        float h = vnp_f16_to_f32(vnp_f32_to_f16(x)), g = vnp_bf16_to_f32(vnp_f32_to_bf16(x));
        if (!same(vnp_round_f16(x), h) || !same(vnp_round_bf16(x), g))
            fail_msg("bits 0x%08x: f16 %a vs %a, bf16 %a vs %a", (unsigned)b,
                     (double)vnp_round_f16(x), (double)h, (double)vnp_round_bf16(x), (double)g);
    }
}

static void test_e4m3_known(void **state)
{
    (void)state;
    static const struct {
        float x;
        uint8_t code;
    } known[] = {
        {0.0f, 0x00},           {-0.0f, 0x80},
        {1.0f, 0x38},           {-1.0f, 0xb8},
        {1.125f, 0x39},         {1.875f, 0x3f},
        {2.0f, 0x40},           {0.5f, 0x30},
        {448.0f, 0x7e},         {-448.0f, 0xfe},
        {416.0f, 0x7d},         {240.0f, 0x77},
        {256.0f, 0x78},         {0.015625f, 0x08}, /* 2^-6, smallest normal */
        {0.001953125f, 0x01},   /* 2^-9, smallest subnormal */
        {0.013671875f, 0x07},   /* 7 x 2^-9, largest subnormal */
        {-0.005859375f, 0x83},  /* -3 x 2^-9 */
        {1.0625f, 0x38},        /* tie between 1 and 1.125: even (1) */
        {1.1875f, 0x3a},        /* tie between 1.125 and 1.25: even (1.25) */
        {1.0624f, 0x38},        {1.0626f, 0x39},
        {0.0009765625f, 0x00},  /* 2^-10: tie between 0 and 2^-9 -> 0 */
        {-0.0009765625f, 0x80},
        {0.0029296875f, 0x02},  /* 1.5 x 2^-9: tie -> 2 x 2^-9 */
        {0.0048828125f, 0x02},  /* 2.5 x 2^-9: tie -> 2 x 2^-9 */
        {0.0146484375f, 0x08},  /* 7.5 x 2^-9: tie -> 2^-6 (even) */
        {1e-6f, 0x00},          {432.0f, 0x7e}, /* tie between 416 and 448: even (448) */
        {447.9f, 0x7e},         {449.0f, 0x7e}, /* saturating */
        {464.0f, 0x7e},         {480.0f, 0x7e},
        {1e30f, 0x7e},          {-1e30f, 0xfe},
        {INFINITY, 0x7e},       {-INFINITY, 0xfe},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (vnp_f32_to_e4m3(known[i].x) != known[i].code)
            fail_msg("e4m3(%a) = 0x%02x, expected 0x%02x", (double)known[i].x,
                     vnp_f32_to_e4m3(known[i].x), known[i].code);
    assert_int_equal(vnp_f32_to_e4m3(NAN), 0x7f);
    assert_int_equal(vnp_f32_to_e4m3(-NAN), 0xff);
    assert_true(isnan(vnp_e4m3_to_f32(0x7f)));
    assert_true(isnan(vnp_e4m3_to_f32(0xff)));
    assert_true(vnp_e4m3_to_f32(0x7e) == 448.0f);
    assert_true(vnp_e4m3_to_f32(0x01) == 0.001953125f);
    assert_true(same(vnp_e4m3_to_f32(0x80), -0.0f));
    assert_true(vnp_e4m3_to_f32(0x78) == 256.0f); /* the S.1111.xxx codes are finite */
    assert_true(isnan(vnp_round_e4m3(NAN)));
    assert_true(same(vnp_round_e4m3(-1e-9f), -0.0f));
}

/* Every finite code decodes and encodes back to itself. */
static void test_e4m3_roundtrip(void **state)
{
    (void)state;
    int finite = 0;
    for (int b = 0; b < 256; b++) {
        float v = vnp_e4m3_to_f32((uint8_t)b);
        if (isnan(v)) {
            assert_true((b & 0x7f) == 0x7f);
            continue;
        }
        finite++;
        assert_int_equal(vnp_f32_to_e4m3(v), b);
    }
    assert_int_equal(finite, 254);
}

/* The E4M3 value nearest x found by search over all codes (ties to the even code),
 * saturating: an oracle independent of the bit manipulation. */
static float e4m3_oracle(float x)
{
    if (isnan(x))
        return NAN;
    float a = fabsf(x);
    if (a >= 448.0f)
        return copysignf(448.0f, x);
    float best = 0.0f;
    int best_code = 0;
    double best_d = INFINITY;
    for (int b = 0; b < 0x7f; b++) {
        float v = vnp_e4m3_to_f32((uint8_t)b);
        double d = fabs((double)v - (double)a);
        if (d < best_d || (d == best_d && (b & 1) == 0)) {
            best_d = d;
            best = v;
            best_code = b;
        }
    }
    (void)best_code;
    return copysignf(best, x);
}

static void test_e4m3_oracle(void **state)
{
    (void)state;
    /* every midpoint between neighbouring codes, and a little on each side of it */
    for (int b = 0; b < 0x7e; b++) {
        float lo = vnp_e4m3_to_f32((uint8_t)b), hi = vnp_e4m3_to_f32((uint8_t)(b + 1));
        float mid = (lo + hi) / 2; /* exact */
        float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), lo, hi};
        for (int k = 0; k < 5; k++)
            for (int s = 0; s < 2; s++) {
                float x = s ? -probes[k] : probes[k];
                if (!same(vnp_round_e4m3(x), e4m3_oracle(x)))
                    fail_msg("e4m3 round(%a) = %a, oracle %a", (double)x,
                             (double)vnp_round_e4m3(x), (double)e4m3_oracle(x));
            }
    }
    /* and random values across the whole range, log-uniform */
    srand(12);
    for (int i = 0; i < 200000; i++) {
        float x = ldexpf((float)rand() / (float)RAND_MAX + 0.5f, rand() % 24 - 14);
        if (rand() & 1)
            x = -x;
        if (!same(vnp_round_e4m3(x), e4m3_oracle(x)))
            fail_msg("e4m3 round(%a) = %a, oracle %a", (double)x, (double)vnp_round_e4m3(x),
                     (double)e4m3_oracle(x));
    }
}

static void test_round_array(void **state)
{
    (void)state;
    float x[7] = {1.0f + 1.0f / 2048, 3.3f, -1e-7f, 70000.0f, 0.1f, -2.75f, 500.0f};
    vnp_numfmt fmts[4] = {VNP_FMT_F32, VNP_FMT_F16, VNP_FMT_BF16, VNP_FMT_E4M3};
    for (int f = 0; f < 4; f++) {
        float y[7];
        memcpy(y, x, sizeof y);
        vnp_round_array(fmts[f], y, 7);
        for (int i = 0; i < 7; i++)
            assert_true(same(y[i], vnp_round_to(fmts[f], x[i])));
    }
    assert_true(same(vnp_round_to(VNP_FMT_F32, 3.3f), 3.3f));
    assert_true(same(vnp_round_to(VNP_FMT_E4M3, 500.0f), 448.0f));
}

static void test_fp8_quantize(void **state)
{
    (void)state;
    /* exact: x / scale lands on codes */
    float x[4] = {0.0f, 1.0f, -2.0f, 4.0f}, q[4];
    float s = vnp_fp8_quantize(x, 4, q);
    assert_true(s == 4.0f / 448.0f);
    assert_true(q[0] == 0.0f && q[1] == 112.0f && q[2] == -224.0f && q[3] == 448.0f);
    for (int i = 0; i < 4; i++)
        assert_true(q[i] * s == x[i]);
    /* rounding: 1/3 of the amax */
    float y[2] = {3.0f, 1.0f};
    s = vnp_fp8_quantize(y, 2, q);
    assert_true(q[0] == 448.0f);
    assert_true(q[1] == vnp_round_e4m3(1.0f / (3.0f / 448.0f))); /* 149.33 -> 144 */
    assert_true(q[1] == 144.0f);
    /* all zeros: scale 1 */
    float z[3] = {0.0f, -0.0f, 0.0f};
    assert_true(vnp_fp8_quantize(z, 3, q) == 1.0f);
    assert_true(q[0] == 0.0f && q[2] == 0.0f);
    assert_true(vnp_fp8_scale(0.0f) == 1.0f);
    assert_true(vnp_fp8_scale(448.0f) == 1.0f);
    /* NaN: ignored by the amax, NaN in the output; Inf: the scale becomes Inf and the
     * output NaN where the Inf was (a non-finite result the guard sees) */
    float n[3] = {1.0f, NAN, -0.5f};
    s = vnp_fp8_quantize(n, 3, q);
    assert_true(s == 1.0f / 448.0f);
    assert_true(q[0] == 448.0f && isnan(q[1]) && q[2] == -224.0f);
    float inf[2] = {INFINITY, 2.0f};
    s = vnp_fp8_quantize(inf, 2, q);
    assert_true(isinf(s));
    assert_true(isnan(q[0]) && q[1] == 0.0f);
    /* the rule is e4m3(x * (1 / s)), one reciprocal per block (the GPU's): here x / s is
     * exactly 100, the midpoint between the codes 96 and 104 (ties to even: 96), while
     * x * fl(1 / s) is 100.00001 (104) */
    float t[2] = {0x1.acc5ecp+1f, 0x1.7ed54ap-1f};
    s = vnp_fp8_quantize(t, 2, q);
    assert_true(s == 0x1.ea06c4p-8f && vnp_fp8_inv(s) == 0x1.0b7abep+7f);
    assert_true(t[1] / s == 100.0f && t[1] * vnp_fp8_inv(s) > 100.0f);
    assert_true(q[0] == 448.0f && q[1] == 104.0f);
    /* an amax so small that amax / 448 is subnormal: the scale is FLT_MIN (its
     * reciprocal finite), and zeros stay zeros */
    float tiny[2] = {1e-37f, 0.0f};
    assert_true(vnp_fp8_scale(1e-37f) == FLT_MIN);
    s = vnp_fp8_quantize(tiny, 2, q);
    assert_true(s == FLT_MIN && q[1] == 0.0f);
    assert_true(q[0] == vnp_round_e4m3(1e-37f * 0x1p126f));
    /* in place */
    float w[3] = {0.25f, -0.5f, 1.0f};
    s = vnp_fp8_quantize(w, 3, w);
    assert_true(w[2] == 448.0f && w[1] == -224.0f && w[0] == 112.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_f16_ties_and_limits),
        cmocka_unit_test(test_bf16_ties_and_limits),
        cmocka_unit_test(test_f16_bf16_sweep),
        cmocka_unit_test(test_e4m3_known),
        cmocka_unit_test(test_e4m3_roundtrip),
        cmocka_unit_test(test_e4m3_oracle),
        cmocka_unit_test(test_round_array),
        cmocka_unit_test(test_fp8_quantize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
