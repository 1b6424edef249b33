/* linear: out = act(x W^T + bias) + residual.
 * The work is cut into one block per worker, by rows of x when there are
 * enough of them, else by output columns (rows of W). Each worker multiplies
 * into its own scratch tile and applies the epilogue while the tile is hot,
 * so `out` may alias `residual`.
 *
 * The product is cpu_matmul.c's, not OpenBLAS's sgemm: each element is one chain over
 * k in order, so a row's result does not depend on M, on where the row sits or on the
 * blocking. A frame's embedding is then the same whichever frames share its batch, so
 * shards merge to one run's bytes (test_cpu_backend pins the rows; test_shard_merge, and
 * its variant with OpenBLAS's AVX2 kernels, the files).
 *
 * Emulated precisions (a W uploaded as an emulated GEMM weight), as the CUDA
 * backend computes with cuBLASLt: x and W already hold values of the GEMM format;
 * the products accumulate in FP32; the bias is rounded to the activation format;
 * the output is rounded to it, and so is the GEMM result before an activation
 * that runs as its own kernel (GELU; ReLU with a residual). FP8 (E4M3): each row of
 * x is quantised with its own scale (amax / 448) on the fly and the accumulator is
 * multiplied by the row's and the output channel's scales, (acc * sx) * sw. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

typedef struct {
    vnp_cpu *c;
    const float *x, *w, *bias, *res;
    float *out;
    vnp_act act;
    int M, N, K;
    int by_rows; /* 1: blocks of `step` rows; 0: blocks of `step` output columns */
    int step;
    vnp_numfmt round;     /* emulation: the output's format; VNP_FMT_F32 for FP32 */
    const float *xs, *ws; /* E4M3: scales of the rows of x and of the rows of W */
} linear_job;

static void linear_block(void *ctx, size_t begin, size_t end, int worker)
{
    const linear_job *j = ctx;
    float *tile = j->c->scratch[worker];
    /* the product tile, then the matmul's own scratch */
    float *mm = tile + (j->by_rows ? (size_t)j->step * j->N : (size_t)j->M * j->step);
    for (size_t b = begin; b < end; b++) {
        int m0 = 0, m1 = j->M, n0 = 0, n1 = j->N;
        if (j->by_rows) {
            m0 = (int)b * j->step;
            m1 = m0 + j->step < j->M ? m0 + j->step : j->M;
        } else {
            n0 = (int)b * j->step;
            n1 = n0 + j->step < j->N ? n0 + j->step : j->N;
        }
        int rows = m1 - m0, cols = n1 - n0;
        if (rows <= 0 || cols <= 0)
            continue;
        vnp_cpu_matmul_nt(j->c->matmul, j->x + (size_t)m0 * j->K, (size_t)j->K, rows,
                          j->w + (size_t)n0 * j->K, (size_t)j->K, cols, j->K, tile,
                          (size_t)cols, mm);
        /* One simple pass per step so that each loop vectorises. */
        unsigned bad = 0;
        /* emulation: the GEMM's result is stored (rounded) before the activation kernel */
        int mid = j->round && (j->act == VNP_ACT_GELU_ERF || (j->act == VNP_ACT_RELU && j->res));
        for (int m = 0; m < rows; m++) {
            float *t = tile + (size_t)m * cols;
            size_t o = (size_t)(m0 + m) * j->N + (size_t)n0;
            float *dst = j->out + o;
            if (j->xs) {
                const float sx = j->xs[m0 + m], *sw = j->ws + n0;
                for (int n = 0; n < cols; n++)
                    t[n] = t[n] * sx * sw[n];
            }
            if (j->bias) {
                const float *bb = j->bias + n0;
                for (int n = 0; n < cols; n++)
                    t[n] += bb[n];
            }
            if (mid)
                vnp_round_array(j->round, t, (size_t)cols);
            if (j->act == VNP_ACT_GELU_ERF)
                for (int n = 0; n < cols; n++)
                    t[n] = vnp_gelu_erf(t[n]);
            else if (j->act == VNP_ACT_RELU)
                for (int n = 0; n < cols; n++)
                    t[n] = t[n] > 0.0f ? t[n] : 0.0f;
            if (j->res) {
                const float *res = j->res + o;
                for (int n = 0; n < cols; n++)
                    dst[n] = t[n] + res[n];
            } else
                memcpy(dst, t, (size_t)cols * sizeof(float));
            if (j->round)
                vnp_round_array(j->round, dst, (size_t)cols);
            bad |= vnp_cpu_nonfinite_bits(dst, (size_t)cols);
        }
        if (bad)
            vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
    }
}

/* FP8 emulation: each row of x quantised to E4M3 with its own scale. */
typedef struct {
    const float *x;
    float *q, *s;
    int K;
} quant_job;

static void quantize_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const quant_job *j = ctx;
    for (size_t r = begin; r < end; r++)
        j->s[r] = vnp_fp8_quantize(j->x + r * (size_t)j->K, (size_t)j->K, j->q + r * (size_t)j->K);
}

/* Sets up an emulated GEMM: the bias rounded to the activation format, and for E4M3
 * the quantised rows of x. */
static vnp_code emulate_setup(vnp_cpu *c, const vnp_cpu_gemm_weight *g, linear_job *j,
                              vnp_error *err)
{
    vnp_code rc;
    if (g->rows < (size_t)j->N)
        return vnp_fail(err, VNP_EINVAL, "linear: an emulated weight of %zu rows for N=%d",
                        g->rows, j->N);
    j->round = c->act;
    if (j->bias) {
        if ((rc = vnp_cpu_reserve(&c->bias, &c->bias_cap, (size_t)j->N, "GEMM bias", err)))
            return rc;
        for (int n = 0; n < j->N; n++)
            c->bias[n] = vnp_round_to(c->act, j->bias[n]);
        j->bias = c->bias;
    }
    if (g->scale) {
        size_t nq = (size_t)j->M * (size_t)j->K;
        if ((rc = vnp_cpu_reserve(&c->xq, &c->xq_cap, nq, "FP8 activations", err)) ||
            (rc = vnp_cpu_reserve(&c->xs, &c->xs_cap, (size_t)j->M, "FP8 scales", err)))
            return rc;
        quant_job q = {j->x, c->xq, c->xs, j->K};
        vnp_cpu_pool_run(c->pool, (size_t)j->M, (size_t)(16384 / j->K) + 1, quantize_rows, &q);
        j->x = c->xq;
        j->xs = c->xs;
        j->ws = g->scale;
    }
    return VNP_OK;
}

vnp_code vnp_cpu_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                        vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                        vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (M <= 0 || N <= 0 || K <= 0)
        return M == 0 ? VNP_OK
                      : vnp_fail(err, VNP_EINVAL, "linear of shape M=%d N=%d K=%d", M, N, K);
    if (x->n < (size_t)M * K || w->n < (size_t)N * K || out->n < (size_t)M * N ||
        (bias && bias->n < (size_t)N) || (residual && residual->n < (size_t)M * N))
        return vnp_fail(err, VNP_EINVAL,
                        "linear [%d x %d] x [%d x %d]^T: a buffer is smaller than the shapes need",
                        M, K, N, K);
    int t = c->nthreads;
    linear_job j = {c, x->ptr, w->ptr, bias ? bias->ptr : NULL, residual ? residual->ptr : NULL,
                    out->ptr, act, M, N, K, 1, M, VNP_FMT_F32, NULL, NULL};
    const vnp_cpu_gemm_weight *g = vnp_cpu_emulated_gemm(c, w->ptr);
    vnp_code rc;
    if (g && (rc = emulate_setup(c, g, &j, err)))
        return rc;
    size_t blocks = 1;
    if (t > 1) {
        /* By rows only when each worker gets enough of them: a worker packs all of W for
         * its rows, which costs as much as multiplying ~16 rows (column blocks pack only
         * their own part of W). */
        if (M >= 256 * t || N < 64 * t) {
            j.by_rows = 1;
            j.step = (M + t - 1) / t;
            blocks = (size_t)((M + j.step - 1) / j.step);
        } else {
            j.by_rows = 0;
            j.step = ((N + t - 1) / t + 15) / 16 * 16;
            blocks = (size_t)((N + j.step - 1) / j.step);
        }
    }
    size_t tile = j.by_rows ? (size_t)j.step * N : (size_t)M * j.step;
    rc = vnp_cpu_reserve_scratch(c, tile + vnp_cpu_matmul_scratch(), err);
    if (rc)
        return rc;
    vnp_cpu_pool_run(c->pool, blocks, 1, linear_block, &j);
    return VNP_OK;
}
