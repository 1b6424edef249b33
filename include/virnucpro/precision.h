/* Numeric precisions: the one table of their names, and the rounding each reduced
 * precision applies. FP16 and BF16 round to nearest, ties to even; FP8 is OCP E4M3
 * ("e4m3fn": no infinities, max 448, NaN = S.1111.111), round to nearest even,
 * saturating to +-448, with scales chosen per row (amax / 448).
 *
 * Where a precision rounds (the CUDA backend and the CPU emulation follow the same
 * points; docs/PRECISION.md lists them): activations, embedding tables and GEMM biases
 * are held in `act`; the weight GEMMs multiply `gemm` operands with FP32 accumulation;
 * LayerNorm statistics, softmax, pooling and the classifier are FP32. */
#ifndef VIRNUCPRO_PRECISION_H
#define VIRNUCPRO_PRECISION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vnp_precision {
    VNP_PREC_FP32 = 0,
    VNP_PREC_FP16 = 1,
    VNP_PREC_BF16 = 2,
    VNP_PREC_FP8 = 3,        /* E4M3 weight GEMMs, one weight scale per output channel */
    VNP_PREC_FP8_TENSOR = 4, /* E4M3 weight GEMMs, one weight scale per weight tensor */
    VNP_PREC_DEFAULT = 5     /* not a precision: FP16 on a GPU, FP32 on the CPU */
} vnp_precision;

/* Number formats values are rounded to. */
typedef enum vnp_numfmt {
    VNP_FMT_F32 = 0, /* no rounding */
    VNP_FMT_F16,
    VNP_FMT_BF16,
    VNP_FMT_E4M3 /* with a scale per row (activations) or per channel / tensor (weights) */
} vnp_numfmt;

typedef struct vnp_precision_info {
    vnp_precision prec;
    const char *name;  /* "fp16": the command line's spelling, the journal's */
    const char *label; /* "FP16": messages */
    vnp_numfmt act;    /* activations, embedding tables, GEMM biases and outputs */
    vnp_numfmt gemm;   /* the operands of the weight GEMMs (QKV, output, FFN in and out) */
    int per_tensor;    /* E4M3 weights: one scale per tensor instead of per output channel */
} vnp_precision_info;

/* The table's entry of p (FP32 .. FP8_TENSOR), or NULL (VNP_PREC_DEFAULT, unknown). */
const vnp_precision_info *vnp_precision_info_of(vnp_precision p);
/* "fp32", "fp16", "bf16", "fp8", "fp8-tensor"; "default"; "?" when unknown. */
const char *vnp_precision_name(vnp_precision p);
/* "FP32", "FP16", "BF16", "FP8", "FP8 (per-tensor scales)"; "default"; "?". */
const char *vnp_precision_label(vnp_precision p);
/* 1 when s names a precision of the table (exactly as vnp_precision_name spells it). */
int vnp_precision_parse(const char *s, vnp_precision *out);
/* The names for messages and help texts. */
#define VNP_PRECISION_NAMES "fp32, fp16, bf16, fp8 or fp8-tensor"

/* ---- rounding (float -> the format -> float) ---- */
#define VNP_E4M3_MAX 448.0f

/* IEEE binary16, nearest even: |x| >= 65520 becomes +-inf; NaN stays NaN. */
float vnp_round_f16(float x);
/* bfloat16, nearest even: values past the largest bfloat16 become +-inf; NaN stays NaN. */
float vnp_round_bf16(float x);
/* E4M3 (e4m3fn) encoding, nearest even, saturating: |x| >= 448 (infinities included)
 * gives +-448 (0x7e / 0xfe); NaN gives 0x7f with x's sign; subnormals down to 2^-9. */
uint8_t vnp_f32_to_e4m3(float x);
float vnp_e4m3_to_f32(uint8_t b); /* 0x7f / 0xff: NaN */
float vnp_round_e4m3(float x);    /* vnp_e4m3_to_f32(vnp_f32_to_e4m3(x)) */
/* x rounded to f (E4M3 unscaled); VNP_FMT_F32 returns x. */
float vnp_round_to(vnp_numfmt f, float x);
/* Rounds x[0..n) to f in place. */
void vnp_round_array(vnp_numfmt f, float *x, size_t n);

/* The E4M3 scale for values of largest magnitude amax: amax / 448 in FP32; 1 when amax
 * is 0 (all zeros), FLT_MIN when the quotient is below it. Quantised values are
 * e4m3(x * vnp_fp8_inv(scale)) (a multiply by the reciprocal rounded once, as the GPU
 * does); dequantised q * scale. */
float vnp_fp8_scale(float amax);
/* 1 / scale in FP32, round to nearest. */
float vnp_fp8_inv(float scale);
/* Quantises x[0..n) with one scale from its own amax (NaN ignored in the amax, and
 * propagated as NaN): q[i] = e4m3(x[i] * vnp_fp8_inv(scale)) as floats (q may be x).
 * Returns the scale. */
float vnp_fp8_quantize(const float *x, size_t n, float *q);

#ifdef __cplusplus
}
#endif
#endif
