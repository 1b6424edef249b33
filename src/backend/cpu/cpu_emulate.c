/* Reduced-precision emulation on the CPU (--device cpu --precision fp16|bf16|fp8|
 * fp8-tensor): the values are float32 arrays as in FP32, rounded to the precision's
 * formats where the GPU rounds them (docs/PRECISION.md), so that validate-precision
 * compares something real without a GPU and GPU kernels can be checked op by op.
 * This file holds what is done to weights at upload and the shared rounding passes;
 * the ops round their own outputs (cpu_linear.c, cpu_attention.c, ...). */
#include <stdlib.h>

#include "backend/cpu/cpu_backend.h"

/* ---- weights ---- */
typedef struct {
    float *w;
    size_t cols;
    vnp_numfmt fmt;
    float *scale;     /* E4M3: out, one per row; NULL: round to fmt */
    float tensor_s;   /* E4M3 per tensor: the scale every row uses (> 0), else 0 */
    float *row_amax;  /* per-tensor pass 1: out, the amax of each row */
} wjob;

static void amax_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const wjob *j = ctx;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->w + r * j->cols;
        float amax = 0.0f;
        for (size_t i = 0; i < j->cols; i++) {
            float a = fabsf(x[i]);
            amax = a > amax ? a : amax; /* NaN ignored, as vnp_fp8_quantize does */
        }
        j->row_amax[r] = amax;
    }
}

static void quantize_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const wjob *j = ctx;
    for (size_t r = begin; r < end; r++) {
        float *x = j->w + r * j->cols;
        if (!j->scale) {
            vnp_round_array(j->fmt, x, j->cols);
        } else if (j->tensor_s > 0.0f) {
            const float inv = vnp_fp8_inv(j->tensor_s);
            for (size_t i = 0; i < j->cols; i++)
                x[i] = vnp_round_e4m3(x[i] * inv);
            j->scale[r] = j->tensor_s;
        } else {
            j->scale[r] = vnp_fp8_quantize(x, j->cols, x);
        }
    }
}

vnp_code vnp_cpu_emulate_weight(vnp_cpu *c, vnp_weight_kind kind, vnp_buf *buf, size_t rows,
                                size_t cols, vnp_error *err)
{
    wjob j = {buf->ptr, cols, kind == VNP_WEIGHT_TABLE ? c->act : c->emu->gemm, NULL, 0.0f,
              NULL};
    size_t grain = 16384 / (cols ? cols : 1) + 1;
    if (kind == VNP_WEIGHT_TABLE || j.fmt != VNP_FMT_E4M3) {
        vnp_cpu_pool_run(c->pool, rows, grain, quantize_rows, &j);
        if (kind == VNP_WEIGHT_TABLE)
            return VNP_OK;
    } else {
        j.scale = malloc(rows * sizeof *j.scale);
        if (!j.scale)
            return vnp_fail(err, VNP_ENOMEM, "out of memory for FP8 weight scales");
        if (c->emu->per_tensor) {
            /* one scale from the amax of the whole tensor */
            j.row_amax = j.scale; /* pass 1 writes the row amaxes where the scales go */
            vnp_cpu_pool_run(c->pool, rows, grain, amax_rows, &j);
            float amax = 0.0f;
            for (size_t r = 0; r < rows; r++)
                amax = j.scale[r] > amax ? j.scale[r] : amax;
            j.tensor_s = vnp_fp8_scale(amax);
        }
        vnp_cpu_pool_run(c->pool, rows, grain, quantize_rows, &j);
    }
    if (c->ngw == c->capgw) {
        size_t cap = c->capgw ? 2 * c->capgw : 64;
        vnp_cpu_gemm_weight *g = realloc(c->gw, cap * sizeof *g);
        if (!g) {
            free(j.scale);
            return vnp_fail(err, VNP_ENOMEM, "out of memory for the emulated GEMM weights");
        }
        c->gw = g;
        c->capgw = cap;
    }
    c->gw[c->ngw].w = buf->ptr;
    c->gw[c->ngw].scale = j.scale;
    c->gw[c->ngw].rows = rows;
    c->ngw++;
    return VNP_OK;
}

void vnp_cpu_emulate_forget(vnp_cpu *c, const void *ptr)
{
    for (size_t i = 0; ptr && i < c->ngw; i++)
        if (c->gw[i].w == ptr) {
            free(c->gw[i].scale);
            c->gw[i] = c->gw[--c->ngw];
            return;
        }
}

const vnp_cpu_gemm_weight *vnp_cpu_emulated_gemm(const vnp_cpu *c, const void *w)
{
    for (size_t i = 0; c->emu && i < c->ngw; i++)
        if (c->gw[i].w == w)
            return &c->gw[i];
    return NULL;
}
