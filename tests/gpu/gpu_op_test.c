/* Backend op tests, CUDA against the CPU reference backend: every op of
 * vnp_backend_ops on fresh random inputs, in FP32, FP16 and BF16, compared by
 * relative L2 error (and max abs error) against the CPU's FP32 result on the
 * same (dtype-rounded) inputs; the F32 ops (scale_shift, the FP32 GEMM of an
 * FP16/BF16 backend) to FP32 tolerance or exactly. Also: the guard word (non-finite,
 * bad length, bad pooling range) through vnp_backend_guard_check, pinned memory
 * with asynchronous downloads and events, the poisoned-batch debug switch, and a
 * timing of the attention kernel on ESM-2 3B shapes.
 * Prints one line per check and exits non-zero if any check fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "backend/backend.h"
#include "virnucpro/half.h"
#include "virnucpro/precision.h"

static int g_failed, g_checks;
static unsigned long long g_rng = 0x9E3779B97F4A7C15ull;

static double urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static float nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static float *rand_vec(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = nrand() * scale;
    return p;
}

/* Rounds host data to what the backend will hold (its activation format), so both
 * backends see the same inputs: the precision module's rounding, which the CPU emulation
 * uses too. */
static void round_to(float *p, size_t n, vnp_precision prec)
{
    vnp_round_array(vnp_precision_info_of(prec)->act, p, n);
}

static void die(const char *what, const vnp_error *err)
{
    fprintf(stderr, "FATAL %s: %s\n", what, err->msg);
    exit(2);
}

/* Uploads host floats as a GEMM-type (compute dtype) or F32 buffer. */
/* A [rows, cols] float32 weight uploaded as `kind` (an FP8 backend quantises a GEMM
 * weight row by row: it needs the two dimensions). */
static vnp_buf up2(vnp_backend *be, const float *src, int rows, int cols, int kind)
{
    vnp_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "test";
    t.dtype = VNP_DT_F32;
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data = src;
    t.nbytes = (size_t)rows * cols * 4;
    vnp_buf b;
    vnp_error err;
    if (be->ops->upload_weight(be, &t, kind, &b, &err))
        die("upload_weight", &err);
    return b;
}

static vnp_buf up(vnp_backend *be, const float *src, size_t n, int matrix)
{
    vnp_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "test";
    t.dtype = VNP_DT_F32;
    t.ndim = 1;
    t.shape[0] = (int64_t)n;
    t.data = src;
    t.nbytes = n * 4;
    vnp_buf b;
    vnp_error err;
    if (be->ops->upload_weight(be, &t, matrix, &b, &err))
        die("upload_weight", &err);
    return b;
}

static vnp_buf up_i32(vnp_backend *be, const int32_t *src, size_t n)
{
    vnp_buf b;
    vnp_error err;
    if (be->ops->alloc_i32(be, n, &b, &err) || be->ops->upload_i32(be, src, n, &b, &err))
        die("upload_i32", &err);
    return b;
}

static vnp_buf act(vnp_backend *be, size_t n)
{
    vnp_buf b;
    vnp_error err;
    if (be->ops->alloc_act(be, n, &b, &err))
        die("alloc_act", &err);
    return b;
}

static vnp_buf f32buf(vnp_backend *be, size_t n)
{
    vnp_buf b;
    vnp_error err;
    if (be->ops->alloc_f32(be, n, &b, &err))
        die("alloc_f32", &err);
    return b;
}

static float *down(vnp_backend *be, const vnp_buf *b, size_t n)
{
    float *p = malloc(n * sizeof *p);
    vnp_error err;
    if (be->ops->download_f32(be, b, n, p, &err))
        die("download_f32", &err);
    return p;
}

static double tol_for(vnp_precision p)
{
    return p == VNP_PREC_FP32 ? 1e-5 : p == VNP_PREC_FP16 ? 2e-3 : 1.6e-2;
}

static const char *pname(vnp_precision p) { return vnp_precision_name(p); }

static void compare(const char *op, vnp_precision prec, const float *ref, const float *got,
                    size_t n, double tol)
{
    double num = 0, den = 0, maxabs = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            nonfinite++;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > maxabs)
            maxabs = fabs(d);
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    int ok = !nonfinite && rel <= tol;
    g_checks++;
    if (!ok)
        g_failed++;
    printf("%-4s %-34s %-5s rel_l2 %.3e  max_abs %.3e  tol %.1e%s\n", ok ? "ok" : "FAIL", op,
           pname(prec), rel, maxabs, tol, nonfinite ? "  NON-FINITE" : "");
}

/* How many of n floats differ in their bits. */
static size_t n_differ(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

static void check(int cond, const char *what)
{
    g_checks++;
    if (!cond)
        g_failed++;
    printf("%-4s %s\n", cond ? "ok" : "FAIL", what);
}

/* ---- one op on both backends ---- */
static void test_embedding(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec)
{
    int V = 37, H = 160, T = 301;
    float *table = rand_vec((size_t)V * H, 1.0f), *row = rand_vec((size_t)H, 0.5f);
    round_to(table, (size_t)V * H, prec);
    int32_t *ids = malloc((size_t)T * 4);
    for (int i = 0; i < T; i++)
        ids[i] = (int32_t)(urand() * V) % V;
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf tb = up(be, table, (size_t)V * H, 1), rb = up(be, row, (size_t)H, 0);
        vnp_buf ib = up_i32(be, ids, (size_t)T), out = act(be, (size_t)T * H);
        vnp_error err;
        if (be->ops->embedding(be, &tb, &ib, T, H, &rb, 0.88f, &out, &err))
            die("embedding", &err);
        res[k] = down(be, &out, (size_t)T * H);
        be->ops->free_buf(be, &tb);
        be->ops->free_buf(be, &rb);
        be->ops->free_buf(be, &ib);
        be->ops->free_buf(be, &out);
    }
    compare("embedding(+row, x0.88)", prec, res[0], res[1], (size_t)T * H, tol_for(prec));
    free(res[0]);
    free(res[1]);
    free(table);
    free(row);
    free(ids);
}

/* f32 = 1: every operand F32 (the classifier) on a backend of any compute dtype, an
 * FP32 GEMM, so FP32 tolerance whatever prec is (inputs not rounded). */
static void test_linear(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec, int M, int N,
                        int K, int with_bias, vnp_act a, int with_res, int alias, int f32)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 1.0f / sqrtf(K));
    float *b = rand_vec((size_t)N, 0.3f), *r = rand_vec((size_t)M * N, 1.0f);
    if (!f32) {
        round_to(x, (size_t)M * K, prec);
        round_to(w, (size_t)N * K, prec);
        round_to(r, (size_t)M * N, prec);
    }
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * K, !f32), wb = up(be, w, (size_t)N * K, !f32);
        vnp_buf bb = up(be, b, (size_t)N, f32 ? VNP_WEIGHT_VECTOR : VNP_WEIGHT_BIAS);
        vnp_buf rb = up(be, r, (size_t)M * N, !f32);
        vnp_buf ob = alias ? rb : f32 ? f32buf(be, (size_t)M * N) : act(be, (size_t)M * N);
        vnp_error err;
        if (be->ops->linear(be, &xb, &wb, with_bias ? &bb : NULL, a, with_res ? &rb : NULL, M, N,
                            K, &ob, &err))
            die("linear", &err);
        res[k] = down(be, &ob, (size_t)M * N);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &wb);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &rb);
        if (!alias)
            be->ops->free_buf(be, &ob);
    }
    char name[96];
    snprintf(name, sizeof name, "linear%s %dx%dx%d%s%s%s%s", f32 ? " F32" : "", M, N, K,
             with_bias ? " +b" : "",
             a == VNP_ACT_GELU_ERF ? " gelu" : a == VNP_ACT_RELU ? " relu" : "",
             with_res ? " +res" : "", alias ? "(inplace)" : "");
    compare(name, prec, res[0], res[1], (size_t)M * N, f32 ? 1e-5 : tol_for(prec));
    free(res[0]);
    free(res[1]);
    free(x);
    free(w);
    free(b);
    free(r);
}

/* FP8 linear (E4M3 operands, per-channel or per-tensor weight scales, per-token activation
 * scales) on the GPU against the CPU's emulation of the same precision: the same FP16
 * inputs quantise to the same bytes on both sides, so what differs is the order of the
 * FP32 sums and the last FP16 rounding; the tolerance is FP16's. Also reported: the FP8
 * result against the FP16 GEMM of the same inputs (what FP8 costs in accuracy). */
static void test_linear_fp8(vnp_backend *cpu8, vnp_backend *gpu8, vnp_backend *gpu16,
                            vnp_precision prec, int M, int N, int K, int with_bias, vnp_act a,
                            int with_res)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 1.0f / sqrtf(K));
    float *b = rand_vec((size_t)N, 0.3f), *r = rand_vec((size_t)M * N, 1.0f);
    round_to(x, (size_t)M * K, VNP_PREC_FP16);
    round_to(r, (size_t)M * N, VNP_PREC_FP16);
    float *res[3];
    vnp_backend *bes[3] = {cpu8, gpu8, gpu16};
    for (int k = 0; k < 3; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * K, VNP_WEIGHT_TABLE);
        vnp_buf wb = up2(be, w, N, K, VNP_WEIGHT_GEMM);
        vnp_buf bb = up(be, b, (size_t)N, VNP_WEIGHT_BIAS);
        vnp_buf rb = up(be, r, (size_t)M * N, VNP_WEIGHT_TABLE);
        vnp_buf ob = act(be, (size_t)M * N);
        vnp_error err;
        if (be->ops->linear(be, &xb, &wb, with_bias ? &bb : NULL, a, with_res ? &rb : NULL, M, N,
                            K, &ob, &err))
            die("linear fp8", &err);
        res[k] = down(be, &ob, (size_t)M * N);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &wb);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &rb);
        be->ops->free_buf(be, &ob);
    }
    char name[96];
    snprintf(name, sizeof name, "linear %s %dx%dx%d%s%s%s", vnp_precision_name(prec), M, N, K,
             with_bias ? " +b" : "",
             a == VNP_ACT_GELU_ERF ? " gelu" : a == VNP_ACT_RELU ? " relu" : "",
             with_res ? " +res" : "");
    compare(name, VNP_PREC_FP16, res[0], res[1], (size_t)M * N, tol_for(VNP_PREC_FP16));
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        num += ((double)res[1][i] - res[2][i]) * ((double)res[1][i] - res[2][i]);
        den += (double)res[2][i] * res[2][i];
    }
    printf("info %s vs the FP16 GEMM: rel_l2 %.3e\n", name, sqrt(num / (den > 0 ? den : 1)));
    for (int k = 0; k < 3; k++)
        free(res[k]);
    free(x);
    free(w);
    free(b);
    free(r);
}

/* Whether the FP16 result c of carrying the E4M3 code q through a GEMM with an identity
 * (c / s, s the code's scale) is q: within FP16's rounding, far below the 1/16 that
 * separates neighbouring codes. */
static int same_code(float c, float s, float q)
{
    return fabsf(c / s - q) <= 1e-3f * fabsf(q) + 6e-8f / s;
}

/* A backend's E4M3 codes are the CPU rule's, exactly (vnp_fp8_quantize: s = amax / 448,
 * e4m3(x * fl(1 / s))). Read back through an FP8 GEMM with an identity on the other side,
 * so that each sum has one non-zero product and carries one code unchanged:
 *   activations (quantised per token before each GEMM, K wide): x W^T with W = I;
 *   weights (quantised at upload, per row or per tensor): E W^T with E = the first 16
 *   rows of I, which reads columns 0..15 of W.
 * Some values are chosen where x / s lands exactly on the midpoint of two codes while
 * x * fl(1 / s) does not (0.662109375 with amax 0.8828125: a division gives 320, the
 * rule 352; 0.54052734375 with amax 1.12109375: 224 vs 208; for the weights 0x1.7ed54ap-1
 * with amax 0x1.acc5ecp+1: 96 vs 104), so a kernel that divided would fail here. */
static void test_fp8_codes(vnp_backend *be8, const char *who, vnp_precision prec, int K)
{
    const int M = 16;
    vnp_error err;
    char what[160];
    /* activations: FP16 values in [-1, 1], two rows with a midpoint case */
    float *x = rand_vec((size_t)M * K, 1.0f), *eye = calloc((size_t)K * K, sizeof *eye);
    for (int k = 2; k < K; k++)
        x[k] = fminf(fmaxf(x[k], -0.8f), 0.8f), x[K + k] = fminf(fmaxf(x[K + k], -1.1f), 1.1f);
    x[0] = 0.8828125f, x[1] = 0.662109375f; /* FP16 values */
    x[K] = -1.12109375f, x[K + 1] = 0.54052734375f;
    round_to(x, (size_t)M * K, VNP_PREC_FP16);
    for (int k = 0; k < K; k++)
        eye[(size_t)k * K + k] = 1.0f;
    vnp_buf xb = up(be8, x, (size_t)M * K, VNP_WEIGHT_TABLE);
    vnp_buf ib = up2(be8, eye, K, K, VNP_WEIGHT_GEMM);
    vnp_buf yb = act(be8, (size_t)M * K);
    if (be8->ops->linear(be8, &xb, &ib, NULL, VNP_ACT_NONE, NULL, M, K, K, &yb, &err))
        die("fp8 codes: x I^T", &err);
    float *y = down(be8, &yb, (size_t)M * K), *q = malloc((size_t)K * sizeof *q);
    size_t bad = 0;
    for (int m = 0; m < M; m++) {
        const float sx = vnp_fp8_quantize(x + (size_t)m * K, (size_t)K, q);
        for (int n = 0; n < K; n++)
            bad += !same_code(y[(size_t)m * K + n], sx, q[n]);
    }
    snprintf(what, sizeof what,
             "fp8 codes %s %s K=%d: the activation midpoint cases quantise by multiplying with "
             "the reciprocal", who, vnp_precision_name(prec), K);
    check(same_code(y[1], vnp_fp8_scale(0.8828125f), 352.0f) &&
              same_code(y[K + 1], vnp_fp8_scale(1.12109375f), 208.0f),
          what);
    snprintf(what, sizeof what,
             "fp8 codes %s %s K=%d: activations quantised = the CPU rule (%zu of %zu codes "
             "differ)", who, vnp_precision_name(prec), K, bad, (size_t)M * K);
    check(bad == 0, what);
    be8->ops->free_buf(be8, &xb);
    be8->ops->free_buf(be8, &ib);
    be8->ops->free_buf(be8, &yb);
    free(y);
    /* weights: normal values cut to [-3, 3]; the tensor's largest magnitude wmax in column
     * 2 of most rows (so that the midpoint case holds with per-row and per-tensor scales),
     * while every fourth row is cut to [-1, 1] and has its own, smaller amax (so that
     * per-row and per-tensor scales give different codes there) */
    const int N = 96;
    const float wmax = 0x1.acc5ecp+1f, wmid = 0x1.7ed54ap-1f;
    float *w = rand_vec((size_t)N * K, 1.0f);
    for (int n = 0; n < N; n++) {
        const float lim = n % 4 == 3 ? 1.0f : 3.0f;
        for (int k = 0; k < K; k++)
            w[(size_t)n * K + k] = fminf(fmaxf(w[(size_t)n * K + k], -lim), lim);
        if (n % 4 == 3)
            continue;
        w[(size_t)n * K + 2] = n % 2 ? -wmax : wmax;
        if (n % 3 == 0)
            w[(size_t)n * K + 1] = n % 2 ? -wmid : wmid;
    }
    vnp_buf eb = up(be8, eye, (size_t)M * K, VNP_WEIGHT_TABLE); /* rows 0..15 of I */
    vnp_buf wb = up2(be8, w, N, K, VNP_WEIGHT_GEMM);
    yb = act(be8, (size_t)M * N);
    if (be8->ops->linear(be8, &eb, &wb, NULL, VNP_ACT_NONE, NULL, M, N, K, &yb, &err))
        die("fp8 codes: E W^T", &err);
    y = down(be8, &yb, (size_t)M * N);
    bad = 0;
    float tmax = 0.0f; /* fp8-tensor: one scale from the whole tensor's amax */
    for (size_t i = 0; i < (size_t)N * K; i++)
        tmax = fmaxf(tmax, fabsf(w[i]));
    for (int n = 0; n < N; n++) {
        const float *wr = w + (size_t)n * K;
        float sw;
        if (prec == VNP_PREC_FP8_TENSOR) {
            sw = vnp_fp8_scale(tmax);
            for (int k = 0; k < K; k++)
                q[k] = vnp_round_e4m3(wr[k] * vnp_fp8_inv(sw));
        } else {
            sw = vnp_fp8_quantize(wr, (size_t)K, q);
        }
        for (int m = 0; m < M; m++)
            bad += !same_code(y[(size_t)m * N + n], sw, q[m]);
    }
    snprintf(what, sizeof what,
             "fp8 codes %s %s K=%d: the weight midpoint case quantises by multiplying with the "
             "reciprocal", who, vnp_precision_name(prec), K);
    check(same_code(y[N + 0], vnp_fp8_scale(wmax), 104.0f), what);
    snprintf(what, sizeof what,
             "fp8 codes %s %s K=%d: weights quantised = the CPU rule (%zu of %zu codes differ)",
             who, vnp_precision_name(prec), K, bad, (size_t)M * N);
    check(bad == 0, what);
    be8->ops->free_buf(be8, &eb);
    be8->ops->free_buf(be8, &wb);
    be8->ops->free_buf(be8, &yb);
    free(y);
    free(q);
    free(w);
    free(x);
    free(eye);
}

/* A GEMM input buffer (alloc_gemm_in) of `rows` rows of width K, or activations on a
 * backend without one. */
static vnp_buf gemm_in(vnp_backend *be, size_t rows, size_t K)
{
    vnp_buf b;
    vnp_error err;
    vnp_code rc = be->ops->alloc_gemm_in ? be->ops->alloc_gemm_in(be, rows, K, &b, &err)
                                         : be->ops->alloc_act(be, rows * K, &b, &err);
    if (rc)
        die("alloc_gemm_in", &err);
    return b;
}

/* The FP8 writers that quantise (LayerNorm, a GELU linear, the gated GELU into an
 * alloc_gemm_in buffer) against the same chain with every GEMM quantising its own FP16
 * input (VIRNUCPRO_DEBUG_FP8_UNFUSED=1): the same bits, value for value; and against the
 * CPU emulation. Two chains, as the encoders run them:
 *   ESM-2:     h = LN(x); f = gelu(h W1^T + b1); y = f W2^T + b2 + x
 *   DNABERT-S: u = x W1^T (2I wide); g = gelu(u[:I]) * u[I:]; y = g W2^T + b2
 * h, f and g are GEMM inputs, used through a view that starts `skip` rows into them. */
static void test_fp8_chain(vnp_backend *cpu8, vnp_backend *gpu8, vnp_backend *gpu8u,
                           vnp_precision prec, int gated, int M, int H, int I, int skip)
{
    const int W1 = gated ? 2 * I : I;
    float *x = rand_vec((size_t)M * H, 1.0f), *g = rand_vec((size_t)H, 1.0f);
    float *bt = rand_vec((size_t)H, 0.3f);
    float *w1 = rand_vec((size_t)W1 * H, 1.0f / sqrtf((float)H)), *b1 = rand_vec((size_t)W1, 0.3f);
    float *w2 = rand_vec((size_t)H * I, 1.0f / sqrtf((float)I)), *b2 = rand_vec((size_t)H, 0.3f);
    round_to(x, (size_t)M * H, VNP_PREC_FP16);
    float *res[3];
    vnp_backend *bes[3] = {cpu8, gpu8, gpu8u};
    for (int k = 0; k < 3; k++) {
        vnp_backend *be = bes[k];
        vnp_error err;
        vnp_buf xb = up(be, x, (size_t)M * H, VNP_WEIGHT_TABLE);
        vnp_buf gb = up(be, g, (size_t)H, VNP_WEIGHT_VECTOR);
        vnp_buf bb = up(be, bt, (size_t)H, VNP_WEIGHT_VECTOR);
        vnp_buf w1b = up2(be, w1, W1, H, VNP_WEIGHT_GEMM);
        vnp_buf b1b = up(be, b1, (size_t)W1, VNP_WEIGHT_BIAS);
        vnp_buf w2b = up2(be, w2, H, I, VNP_WEIGHT_GEMM);
        vnp_buf b2b = up(be, b2, (size_t)H, VNP_WEIGHT_BIAS);
        vnp_buf hb = gemm_in(be, (size_t)(M + skip), (size_t)H);
        vnp_buf fb = gemm_in(be, (size_t)(M + skip), (size_t)I);
        vnp_buf ub = act(be, (size_t)M * W1), yb = act(be, (size_t)M * H);
        /* views from row `skip` (the byte size of a row follows the buffer's dtype) */
        size_t hes = hb.dtype == VNP_DT_U8 ? 1 : hb.dtype == VNP_DT_F32 ? 4 : 2;
        size_t fes = fb.dtype == VNP_DT_U8 ? 1 : fb.dtype == VNP_DT_F32 ? 4 : 2;
        vnp_buf hv = {(char *)hb.ptr + (size_t)skip * H * hes, hb.dtype, (size_t)M * H};
        vnp_buf fv = {(char *)fb.ptr + (size_t)skip * I * fes, fb.dtype, (size_t)M * I};
        vnp_code rc;
        if (gated)
            rc = be->ops->linear(be, &xb, &w1b, NULL, VNP_ACT_NONE, NULL, M, W1, H, &ub, &err);
        else
            rc = be->ops->layernorm(be, &xb, NULL, &gb, &bb, 1e-5f, M, H, &hv, &err);
        if (!rc)
            rc = gated ? be->ops->gated_gelu(be, &ub, M, I, &fv, &err)
                       : be->ops->linear(be, &hv, &w1b, &b1b, VNP_ACT_GELU_ERF, NULL, M, I, H,
                                         &fv, &err);
        if (!rc)
            rc = be->ops->linear(be, &fv, &w2b, &b2b, VNP_ACT_NONE, gated ? NULL : &xb, M, H, I,
                                 &yb, &err);
        if (rc)
            die("fp8 chain", &err);
        if (k == 1 && H % 16 == 0 && I % 16 == 0)
            check(fb.dtype == VNP_DT_U8 && (gated || hb.dtype == VNP_DT_U8),
                  "the FP8 backend's GEMM inputs are E4M3 buffers (U8)");
        if (k == 2)
            check(fb.dtype == VNP_DT_F16 && hb.dtype == VNP_DT_F16,
                  "VIRNUCPRO_DEBUG_FP8_UNFUSED=1 gives FP16 GEMM inputs");
        res[k] = down(be, &yb, (size_t)M * H);
        vnp_buf *all[] = {&xb, &gb, &bb, &w1b, &b1b, &w2b, &b2b, &hb, &fb, &ub, &yb};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            be->ops->free_buf(be, all[i]);
    }
    size_t n = (size_t)M * H, diff = n_differ(res[1], res[2], n);
    char what[200];
    snprintf(what, sizeof what,
             "fp8 chain %s %s M=%d H=%d I=%d skip %d: quantising writers = quantising GEMMs bit "
             "for bit (%zu of %zu values differ)",
             gated ? "gated-gelu" : "ln-gelu", vnp_precision_name(prec), M, H, I, skip, diff, n);
    check(diff == 0, what);
    /* Against the emulation: two FP8 GEMMs in a row, so an FP16 rounding that differs
     * with the order of the sums can move an E4M3 step of the second GEMM's input
     * (1/16 relative): more slack than one op's FP16 tolerance. */
    snprintf(what, sizeof what, "fp8 chain %s %s M=%d H=%d I=%d vs CPU emulation",
             gated ? "gated-gelu" : "ln-gelu", vnp_precision_name(prec), M, H, I);
    compare(what, VNP_PREC_FP16, res[0], res[1], n, 1e-2);
    for (int k = 0; k < 3; k++)
        free(res[k]);
    free(x);
    free(g);
    free(bt);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
}

static void test_layernorm(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec, int M, int H,
                           int with_res, int alias)
{
    float *x = rand_vec((size_t)M * H, 2.0f), *r = rand_vec((size_t)M * H, 1.0f);
    float *g = rand_vec((size_t)H, 1.0f), *bt = rand_vec((size_t)H, 0.5f);
    for (size_t i = 0; i < (size_t)M * H; i++)
        x[i] += 0.7f; /* a non-zero mean */
    round_to(x, (size_t)M * H, prec);
    round_to(r, (size_t)M * H, prec);
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * H, 1), rb = up(be, r, (size_t)M * H, 1);
        vnp_buf gb = up(be, g, (size_t)H, 0), bb = up(be, bt, (size_t)H, 0);
        vnp_buf ob = alias ? xb : act(be, (size_t)M * H);
        vnp_error err;
        if (be->ops->layernorm(be, &xb, with_res ? &rb : NULL, &gb, &bb, 1e-5f, M, H, &ob, &err))
            die("layernorm", &err);
        res[k] = down(be, &ob, (size_t)M * H);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &rb);
        be->ops->free_buf(be, &gb);
        be->ops->free_buf(be, &bb);
        if (!alias)
            be->ops->free_buf(be, &ob);
    }
    char name[96];
    snprintf(name, sizeof name, "layernorm %dx%d%s%s", M, H, with_res ? " +res" : "",
             alias ? "(inplace)" : "");
    compare(name, prec, res[0], res[1], (size_t)M * H, tol_for(prec));
    free(res[0]);
    free(res[1]);
    free(x);
    free(r);
    free(g);
    free(bt);
}

/* I = 300: not a whole number of 16-byte vectors in FP16/BF16 (the scalar kernel);
 * I = 3072 (DNABERT-S): the vectorised one. */
static void test_gated_gelu(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec, int M, int I)
{
    float *x = rand_vec((size_t)M * 2 * I, 1.5f);
    round_to(x, (size_t)M * 2 * I, prec);
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * 2 * I, 1), ob = act(be, (size_t)M * I);
        vnp_error err;
        if (be->ops->gated_gelu(be, &xb, M, I, &ob, &err))
            die("gated_gelu", &err);
        res[k] = down(be, &ob, (size_t)M * I);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &ob);
    }
    char name[64];
    snprintf(name, sizeof name, "gated_gelu %dx%d", M, I);
    compare(name, prec, res[0], res[1], (size_t)M * I, tol_for(prec));
    free(res[0]);
    free(res[1]);
    free(x);
}

static void test_attention(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec,
                           vnp_posenc pos, const int *lens, int nseq, int heads)
{
    int hd = 64, T = 0, max_len = 0;
    int32_t *cu = malloc(((size_t)nseq + 1) * 4);
    cu[0] = 0;
    for (int s = 0; s < nseq; s++) {
        T += lens[s];
        cu[s + 1] = T;
        if (lens[s] > max_len)
            max_len = lens[s];
    }
    size_t nq = (size_t)T * 3 * heads * hd, no = (size_t)T * heads * hd;
    float *qkv = rand_vec(nq, 1.0f);
    round_to(qkv, nq, prec);
    float inv_freq[32], slopes[64];
    for (int i = 0; i < 32; i++) /* fp16-rounded, as ESM-2 checkpoints store it */
        inv_freq[i] = vnp_f16_to_f32(vnp_f32_to_f16(powf(10000.0f, -(float)(2 * i) / 64.0f)));
    for (int h = 0; h < heads; h++)
        slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)heads);
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf qb = up(be, qkv, nq, 1), ob = act(be, no), cb = up_i32(be, cu, (size_t)nseq + 1);
        vnp_buf fb, sb;
        vnp_error err;
        if (be->ops->upload_f32(be, inv_freq, 32, &fb, &err) ||
            be->ops->upload_f32(be, slopes, (size_t)heads, &sb, &err))
            die("upload_f32", &err);
        vnp_attn_desc d = {heads, hd, 0.125f, pos, &fb, &sb};
        if (be->ops->attention(be, &qb, &cb, nseq, max_len, T, &d, &ob, &err))
            die("attention", &err);
        res[k] = down(be, &ob, no);
        be->ops->free_buf(be, &qb);
        be->ops->free_buf(be, &ob);
        be->ops->free_buf(be, &cb);
        be->ops->free_buf(be, &fb);
        be->ops->free_buf(be, &sb);
    }
    char name[96];
    snprintf(name, sizeof name, "attention %s n=%d T=%d max=%d h=%d",
             pos == VNP_POS_ROTARY ? "rotary" : pos == VNP_POS_ALIBI ? "alibi" : "plain", nseq, T,
             max_len, heads);
    /* P is rounded to the compute dtype before P.V: allow a little more than elsewhere */
    compare(name, prec, res[0], res[1], no, tol_for(prec) * (prec == VNP_PREC_FP32 ? 1 : 1.5));
    free(res[0]);
    free(res[1]);
    free(qkv);
    free(cu);
}

/* Pools 5 ranges of x into columns [col, col + H) of rows of ld, over an output
 * filled with sentinels (which must survive in the other columns). */
static void test_mean_pool(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec)
{
    int H = 130, T = 500, nseq = 5, ld = 300, col = 17;
    int32_t ranges[10] = {0, 1, 100, 250, 499, 1, 100, 101, 499, 500};
    float *x = rand_vec((size_t)T * H, 1.0f);
    round_to(x, (size_t)T * H, prec);
    size_t nout = (size_t)nseq * ld;
    float *sentinel = malloc(nout * 4);
    for (size_t i = 0; i < nout; i++)
        sentinel[i] = -100.0f - (float)i;
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)T * H, 1), rb = up_i32(be, ranges, 10), ob;
        vnp_error err;
        if (be->ops->upload_f32(be, sentinel, nout, &ob, &err))
            die("upload_f32", &err);
        if (be->ops->mean_pool(be, &xb, H, &rb, nseq, &ob, ld, col, &err))
            die("mean_pool", &err);
        res[k] = down(be, &ob, nout);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &rb);
        be->ops->free_buf(be, &ob);
    }
    compare("mean_pool 5 ranges ld=300 col=17", prec, res[0], res[1], nout, 1e-5);
    int kept = 1;
    for (int s = 0; s < nseq; s++)
        for (int c = 0; c < ld; c++)
            if ((c < col || c >= col + H) && res[1][(size_t)s * ld + c] != sentinel[s * ld + c])
                kept = 0;
    char what[128];
    snprintf(what, sizeof what, "mean_pool %s: columns outside [col, col+H) untouched",
             pname(prec));
    check(kept, what);
    free(res[0]);
    free(res[1]);
    free(x);
    free(sentinel);
}

/* scale_shift over F32 on both backends: NONE and ReLU bit-identical (the kernel
 * rounds the multiply and the add separately, as the CPU does), GELU to FP32
 * tolerance; in place. */
static void test_scale_shift(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec)
{
    int M = 257, N = 192;
    float *x = rand_vec((size_t)M * N, 2.0f), *sc = rand_vec((size_t)N, 1.0f);
    float *sh = rand_vec((size_t)N, 0.5f);
    static const vnp_act acts[3] = {VNP_ACT_NONE, VNP_ACT_RELU, VNP_ACT_GELU_ERF};
    static const char *names[3] = {"scale_shift", "scale_shift relu (inplace)",
                                   "scale_shift gelu"};
    for (int a = 0; a < 3; a++) {
        float *res[2];
        vnp_backend *bes[2] = {cpu, gpu};
        for (int k = 0; k < 2; k++) {
            vnp_backend *be = bes[k];
            vnp_buf xb = up(be, x, (size_t)M * N, 0), sb = up(be, sc, (size_t)N, 0);
            vnp_buf hb = up(be, sh, (size_t)N, 0);
            vnp_buf ob = acts[a] == VNP_ACT_RELU ? xb : f32buf(be, (size_t)M * N);
            vnp_error err;
            if (be->ops->scale_shift(be, &xb, &sb, &hb, acts[a], M, N, &ob, &err))
                die("scale_shift", &err);
            res[k] = down(be, &ob, (size_t)M * N);
            if (acts[a] != VNP_ACT_RELU)
                be->ops->free_buf(be, &ob);
            be->ops->free_buf(be, &xb);
            be->ops->free_buf(be, &sb);
            be->ops->free_buf(be, &hb);
        }
        compare(names[a], prec, res[0], res[1], (size_t)M * N,
                acts[a] == VNP_ACT_GELU_ERF ? 1e-6 : 0.0);
        free(res[0]);
        free(res[1]);
    }
    free(x);
    free(sc);
    free(sh);
}

/* gemm (the classifier's training products) over F32 on both backends: each of the four
 * transpose combinations, with alpha and beta, against OpenBLAS to FP32 tolerance
 * (1e-6 relative L2: the sums' order differs, no reduced precision; TF32 would give
 * ~1e-4). Shapes of train's products: dW2 = dL^T D, dD = dL W2, dW1 = dZ^T X. */
static void test_gemm(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec, int ta, int tb,
                      int M, int N, int K, float alpha, float beta)
{
    float *a = rand_vec((size_t)M * K, 1.0f), *b = rand_vec((size_t)K * N, 1.0f);
    float *c0 = rand_vec((size_t)M * N, 1.0f);
    float *res[2];
    vnp_backend *bes[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf ab = up(be, a, (size_t)M * K, 0), bb = up(be, b, (size_t)K * N, 0);
        vnp_buf cb = up(be, c0, (size_t)M * N, 0);
        vnp_error err;
        if (be->ops->gemm(be, ta, tb, M, N, K, alpha, &ab, &bb, beta, &cb, &err))
            die("gemm", &err);
        res[k] = down(be, &cb, (size_t)M * N);
        be->ops->free_buf(be, &ab);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &cb);
    }
    char name[64];
    snprintf(name, sizeof name, "gemm%s%s %dx%dx%d", ta ? " aT" : "", tb ? " bT" : "", M, N, K);
    compare(name, prec, res[0], res[1], (size_t)M * N, 1e-6);
    free(res[0]);
    free(res[1]);
    free(a);
    free(b);
    free(c0);
}

/* ---- the classifier's training ops (F32 / F64 / U8 buffers, any compute dtype) ---- */
static vnp_buf tbuf(vnp_backend *be, vnp_dtype dt, size_t n, const void *host)
{
    vnp_buf b;
    vnp_error err;
    if (be->ops->alloc_dt(be, dt, n, &b, &err) || (host && be->ops->copy_in(be, host, n, &b, &err)))
        die("training buffer", &err);
    return b;
}

/* A training buffer's values as floats (F64 rounded), malloc'ed. */
static float *tget(vnp_backend *be, const vnp_buf *b, size_t n)
{
    vnp_error err;
    float *f = malloc(n * sizeof *f);
    if (b->dtype == VNP_DT_F64) {
        double *d = malloc(n * sizeof *d);
        if (!f || !d || be->ops->copy_out(be, b, n, d, &err))
            die("training download", &err);
        for (size_t i = 0; i < n; i++)
            f[i] = (float)d[i];
        free(d);
    } else if (!f || be->ops->copy_out(be, b, n, f, &err))
        die("training download", &err);
    return f;
}

static uint8_t *rand_mask(size_t n, double keep)
{
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++)
        m[i] = urand() < keep;
    return m;
}

/* Each output of an op run on both backends, compared; n[i] values of out i. */
static void compare_outs(const char *op, vnp_backend *cpu, vnp_backend *gpu, vnp_buf (*outs)[2],
                         const char *const *names, const size_t *n, int nout, double tol)
{
    for (int i = 0; i < nout; i++) {
        float *a = tget(cpu, &outs[i][0], n[i]), *b = tget(gpu, &outs[i][1], n[i]);
        char name[64];
        snprintf(name, sizeof name, "%s %s", op, names[i]);
        compare(name, VNP_PREC_FP32, a, b, n[i], tol);
        free(a);
        free(b);
        cpu->ops->free_buf(cpu, &outs[i][0]);
        gpu->ops->free_buf(gpu, &outs[i][1]);
    }
}

static void test_train_ops(vnp_backend *cpu, vnp_backend *gpu, int B, int H)
{
    vnp_backend *bes[2] = {cpu, gpu};
    size_t BH = (size_t)B * H;
    vnp_error err;
    char op[64];
    /* BatchNorm + ReLU + dropout forward */
    float *z = rand_vec(BH, 2.0f), *gam = rand_vec(H, 1.0f), *bet = rand_vec(H, 1.0f);
    float *rm = rand_vec(H, 1.0f), *rv = rand_vec(H, 1.0f);
    for (int j = 0; j < H; j++)
        rv[j] = fabsf(rv[j]) + 0.5f;
    uint8_t *keep = rand_mask(BH, 0.5);
    vnp_buf fo[6][2]; /* running mean, running var, xhat, r, d, invstd */
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf zb = tbuf(be, VNP_DT_F32, BH, z), gb = tbuf(be, VNP_DT_F32, H, gam);
        vnp_buf bb = tbuf(be, VNP_DT_F32, H, bet), kb = tbuf(be, VNP_DT_U8, BH, keep);
        fo[0][k] = tbuf(be, VNP_DT_F32, H, rm);
        fo[1][k] = tbuf(be, VNP_DT_F32, H, rv);
        fo[2][k] = tbuf(be, VNP_DT_F32, BH, NULL);
        fo[3][k] = tbuf(be, VNP_DT_F32, BH, NULL);
        fo[4][k] = tbuf(be, VNP_DT_F32, BH, NULL);
        fo[5][k] = tbuf(be, VNP_DT_F64, H, NULL);
        if (be->ops->bn_relu_dropout_fwd(be, &zb, &gb, &bb, &kb, B, H, 1e-5f, 0.1f, 0.5f,
                                         &fo[0][k], &fo[1][k], &fo[2][k], &fo[3][k], &fo[4][k],
                                         &fo[5][k], &err))
            die("bn_relu_dropout_fwd", &err);
        be->ops->free_buf(be, &zb);
        be->ops->free_buf(be, &gb);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &kb);
    }
    /* the backward's inputs: the CPU forward's r, xhat, invstd on both */
    float *r = tget(cpu, &fo[3][0], BH), *xhat = tget(cpu, &fo[2][0], BH);
    double *inv = malloc(H * sizeof *inv);
    if (cpu->ops->copy_out(cpu, &fo[5][0], H, inv, &err))
        die("copy_out", &err);
    static const char *fnames[6] = {"running_mean", "running_var", "xhat", "relu", "dropout",
                                    "invstd"};
    size_t fn[6] = {H, H, BH, BH, BH, H};
    snprintf(op, sizeof op, "bn_fwd %dx%d", B, H);
    compare_outs(op, cpu, gpu, fo, fnames, fn, 6, 1e-6);
    /* its backward */
    float *dd = rand_vec(BH, 0.1f);
    vnp_buf bo[4][2]; /* dY (dd in place), dz, dgamma, dbeta */
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf kb = tbuf(be, VNP_DT_U8, BH, keep), rb = tbuf(be, VNP_DT_F32, BH, r);
        vnp_buf xb = tbuf(be, VNP_DT_F32, BH, xhat), ib = tbuf(be, VNP_DT_F64, H, inv);
        vnp_buf gb = tbuf(be, VNP_DT_F32, H, gam);
        bo[0][k] = tbuf(be, VNP_DT_F32, BH, dd);
        bo[1][k] = tbuf(be, VNP_DT_F32, BH, NULL);
        bo[2][k] = tbuf(be, VNP_DT_F32, H, NULL);
        bo[3][k] = tbuf(be, VNP_DT_F32, H, NULL);
        if (be->ops->bn_relu_dropout_bwd(be, &bo[0][k], &kb, &rb, &xb, &ib, &gb, B, H, 0.5f,
                                         &bo[1][k], &bo[2][k], &bo[3][k], &err))
            die("bn_relu_dropout_bwd", &err);
        vnp_buf *fr[5] = {&kb, &rb, &xb, &ib, &gb};
        for (int i = 0; i < 5; i++)
            be->ops->free_buf(be, fr[i]);
    }
    static const char *bnames[4] = {"dy", "dz", "dgamma", "dbeta"};
    size_t bn[4] = {BH, BH, H, H};
    snprintf(op, sizeof op, "bn_bwd %dx%d", B, H);
    compare_outs(op, cpu, gpu, bo, bnames, bn, 4, 1e-6);
    /* softmax cross-entropy */
    float *lg = rand_vec(2 * (size_t)B, 3.0f);
    uint8_t *y = rand_mask(B, 0.5);
    vnp_buf xo[2][2]; /* loss, dl */
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf lb = tbuf(be, VNP_DT_F32, 2 * (size_t)B, lg), yb = tbuf(be, VNP_DT_U8, B, y);
        xo[0][k] = tbuf(be, VNP_DT_F64, 1, NULL);
        xo[1][k] = tbuf(be, VNP_DT_F32, 2 * (size_t)B, NULL);
        if (be->ops->softmax_xent(be, &lb, &yb, B, &xo[0][k], &xo[1][k], &err))
            die("softmax_xent", &err);
        be->ops->free_buf(be, &lb);
        be->ops->free_buf(be, &yb);
    }
    static const char *xnames[2] = {"loss", "dlogits"};
    size_t xn[2] = {1, 2 * (size_t)B};
    snprintf(op, sizeof op, "softmax_xent %d", B);
    compare_outs(op, cpu, gpu, xo, xnames, xn, 2, 1e-6);
    /* column sums (both bias gradients' shapes) */
    for (int w = 0; w < 2; w++) {
        int N = w ? H : 2;
        float *m = rand_vec((size_t)B * N, 1.0f);
        vnp_buf so[1][2];
        for (int k = 0; k < 2; k++) {
            vnp_backend *be = bes[k];
            vnp_buf mb = tbuf(be, VNP_DT_F32, (size_t)B * N, m);
            so[0][k] = tbuf(be, VNP_DT_F32, N, NULL);
            if (be->ops->col_sums(be, &mb, B, N, &so[0][k], &err))
                die("col_sums", &err);
            be->ops->free_buf(be, &mb);
        }
        static const char *snames[1] = {"sums"};
        size_t sn[1] = {(size_t)N};
        snprintf(op, sizeof op, "col_sums %dx%d", B, N);
        compare_outs(op, cpu, gpu, so, snames, sn, 1, 1e-6);
        free(m);
    }
    /* SGD: a first and a second step with momentum, and one without */
    size_t n = BH + 3;
    float *w0 = rand_vec(n, 1.0f), *g1 = rand_vec(n, 0.1f), *g2 = rand_vec(n, 0.1f);
    vnp_buf go[3][2]; /* w, buf (momentum), w (no momentum) */
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf g1b = tbuf(be, VNP_DT_F32, n, g1), g2b = tbuf(be, VNP_DT_F32, n, g2);
        go[0][k] = tbuf(be, VNP_DT_F32, n, w0);
        go[1][k] = tbuf(be, VNP_DT_F32, n, NULL);
        go[2][k] = tbuf(be, VNP_DT_F32, n, w0);
        if (be->ops->sgd_step(be, &go[0][k], &g1b, &go[1][k], n, 2e-4f, 0.9f, 1, &err) ||
            be->ops->sgd_step(be, &go[0][k], &g2b, &go[1][k], n, 2e-4f, 0.9f, 0, &err) ||
            be->ops->sgd_step(be, &go[2][k], &g1b, NULL, n, 0.01f, 0.0f, 0, &err))
            die("sgd_step", &err);
        be->ops->free_buf(be, &g1b);
        be->ops->free_buf(be, &g2b);
    }
    static const char *gnames[3] = {"w (momentum)", "momentum buffer", "w (plain)"};
    size_t gn[3] = {n, n, n};
    snprintf(op, sizeof op, "sgd %zu", n);
    compare_outs(op, cpu, gpu, go, gnames, gn, 3, 1e-7);
    free(z), free(gam), free(bet), free(rm), free(rv), free(keep), free(r), free(xhat);
    free(inv), free(dd), free(lg), free(y), free(w0), free(g1), free(g2);
}

/* F32 and compute-dtype operands mixed in one linear are refused. */
static void test_linear_mixed(vnp_backend *gpu, vnp_precision prec)
{
    if (prec == VNP_PREC_FP32)
        return;
    float x[64], w[64];
    for (int i = 0; i < 64; i++)
        x[i] = w[i] = 0.1f * (float)i;
    vnp_buf xb = up(gpu, x, 64, 0), wb = up(gpu, w, 64, 1), ob = f32buf(gpu, 64);
    vnp_error err;
    vnp_code rc = gpu->ops->linear(gpu, &xb, &wb, NULL, VNP_ACT_NONE, NULL, 8, 8, 8, &ob, &err);
    char what[160];
    snprintf(what, sizeof what, "linear %s: F32 x with a %s weight refused (%s)", pname(prec),
             prec == VNP_PREC_FP16 ? "F16" : "BF16", rc == VNP_EINVAL ? err.msg : "not refused");
    check(rc == VNP_EINVAL, what);
    /* a bias uploaded as an F32 vector, not as the GEMM's bias (compute dtype) */
    vnp_buf xa = up(gpu, x, 64, VNP_WEIGHT_GEMM), oa = act(gpu, 64);
    vnp_buf bv = up(gpu, x, 8, VNP_WEIGHT_VECTOR);
    rc = gpu->ops->linear(gpu, &xa, &wb, &bv, VNP_ACT_NONE, NULL, 8, 8, 8, &oa, &err);
    snprintf(what, sizeof what, "linear %s: an F32 bias refused (%s)", pname(prec),
             rc == VNP_EINVAL ? err.msg : "not refused");
    check(rc == VNP_EINVAL, what);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &wb);
    gpu->ops->free_buf(gpu, &ob);
    gpu->ops->free_buf(gpu, &xa);
    gpu->ops->free_buf(gpu, &oa);
    gpu->ops->free_buf(gpu, &bv);
}

/* The device object: be->device as the CUDA runtime describes GPU 0, its memory,
 * synchronize; and the compute-capability gate refusing a GPU older than what this
 * build compiled, naming it. */
static void test_device(vnp_backend *gpu)
{
    struct cudaDeviceProp prop;
    vnp_error err;
    check(cudaGetDeviceProperties(&prop, 0) == cudaSuccess, "device: cudaGetDeviceProperties");
    const vnp_device *d = &gpu->device;
    check(d->kind == VNP_DEVICE_CUDA && d->index == 0 && !strcmp(d->name, prop.name) &&
              d->cc_major == prop.major && d->cc_minor == prop.minor &&
              d->mem_total == prop.totalGlobalMem,
          "device: be->device is GPU 0");
    vnp_device q;
    check(vnp_device_query(VNP_DEVICE_CUDA, 0, &q, &err) == VNP_OK && !memcmp(&q, d, sizeof q) &&
              vnp_device_count(VNP_DEVICE_CUDA) >= 1,
          "device: vnp_device_query(cuda, 0) is be->device");
    size_t fr = 0, tot = 0, mf = 0, mt = 0;
    check(gpu->ops->mem_info(gpu, &fr, &tot, &err) == VNP_OK &&
              cudaMemGetInfo(&mf, &mt) == cudaSuccess && tot == mt && fr > 0 && fr <= tot,
          "device: mem_info");
    check(gpu->ops->synchronize(gpu, &err) == VNP_OK, "device: synchronize");
    vnp_device old = *d;
    old.cc_major = 7;
    old.cc_minor = 5;
    vnp_code rc = vnp_backend_cuda_arch_check("80;86;89;90", &old, &err);
    char what[1200];
    snprintf(what, sizeof what, "device: a 7.5 GPU refused (%s)", rc ? err.msg : "accepted");
    check(rc == VNP_EUNSUPPORTED && strstr(err.msg, "older than sm_80"), what);
}

/* The guard word: clean, a NaN/Inf (VNP_ENUMERIC), a sequence longer than
 * max_len in attention and a bad pooling range (VNP_EINVAL), each read through
 * vnp_backend_guard_check and cleared by guard_reset. */
static void test_guard(vnp_backend *gpu, vnp_precision prec)
{
    int M = 8, H = 64;
    float *x = rand_vec((size_t)M * H, 1.0f), *g = rand_vec((size_t)H, 1.0f);
    vnp_buf xb = up(gpu, x, (size_t)M * H, 1), gb = up(gpu, g, (size_t)H, 0);
    vnp_buf ob = act(gpu, (size_t)M * H);
    vnp_error err;
    gpu->ops->guard_reset(gpu);
    if (gpu->ops->layernorm(gpu, &xb, NULL, &gb, &gb, 1e-5f, M, H, &ob, &err))
        die("layernorm", &err);
    vnp_code clean = vnp_backend_guard_check(gpu, &err);
    gpu->ops->free_buf(gpu, &xb);
    x[3 * H + 5] = INFINITY;
    xb = up(gpu, x, (size_t)M * H, 1);
    if (gpu->ops->layernorm(gpu, &xb, NULL, &gb, &gb, 1e-5f, M, H, &ob, &err))
        die("layernorm", &err);
    vnp_code hit = vnp_backend_guard_check(gpu, &err);
    gpu->ops->guard_reset(gpu);
    vnp_code after = vnp_backend_guard_check(gpu, &err);
    char what[256];
    snprintf(what, sizeof what, "guard %s: clean=%s inf-hit=%s after-reset=%s", pname(prec),
             vnp_code_name(clean), vnp_code_name(hit), vnp_code_name(after));
    check(clean == VNP_OK && hit == VNP_ENUMERIC && after == VNP_OK, what);
    /* a max_len smaller than a sequence is refused by the kernel, not read past */
    int32_t cu[2] = {0, 70};
    float *qkv = rand_vec((size_t)70 * 3 * 64, 1.0f);
    vnp_buf qb = up(gpu, qkv, (size_t)70 * 192, 1), cb = up_i32(gpu, cu, 2),
            ab = act(gpu, (size_t)70 * 64);
    vnp_attn_desc d = {1, 64, 0.125f, VNP_POS_NONE, NULL, NULL};
    if (gpu->ops->attention(gpu, &qb, &cb, 1, 64, 70, &d, &ab, &err))
        die("attention", &err);
    vnp_code bad = vnp_backend_guard_check(gpu, &err);
    gpu->ops->guard_reset(gpu);
    snprintf(what, sizeof what, "guard %s: max_len below a sequence's length is flagged (%s: %s)",
             pname(prec), vnp_code_name(bad), bad ? err.msg : "");
    check(bad == VNP_EINVAL && strstr(err.msg, "a bad batch shape"), what);
    /* bad pooling ranges (past x, empty, negative) are flagged and their rows left
     * as they were; the good one between them is written */
    int32_t ranges[8] = {5, 0, 3, -1, 9, 3, 3, 2};
    float sentinel[4 * 64];
    for (int i = 0; i < 4 * 64; i++)
        sentinel[i] = 42.0f;
    vnp_buf rb = up_i32(gpu, ranges, 8), pb;
    if (gpu->ops->upload_f32(gpu, sentinel, 4 * 64, &pb, &err))
        die("upload_f32", &err);
    if (gpu->ops->mean_pool(gpu, &ob, H, &rb, 4, &pb, 64, 0, &err))
        die("mean_pool", &err);
    vnp_code shape = vnp_backend_guard_check(gpu, &err);
    float *pooled = down(gpu, &pb, 4 * 64);
    int kept = 1, written = 1;
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < 64; j++) {
            if (s != 1 && pooled[s * 64 + j] != 42.0f)
                kept = 0;
            if (s == 1 && pooled[s * 64 + j] == 42.0f)
                written = 0;
        }
    gpu->ops->guard_reset(gpu);
    snprintf(what, sizeof what,
             "guard %s: bad pooling ranges flagged (%s), rows skipped (%d), good row written (%d)",
             pname(prec), vnp_code_name(shape), kept, written);
    check(shape == VNP_EINVAL && kept && written, what);
    free(pooled);
    gpu->ops->free_buf(gpu, &rb);
    gpu->ops->free_buf(gpu, &pb);
    gpu->ops->free_buf(gpu, &qb);
    gpu->ops->free_buf(gpu, &cb);
    gpu->ops->free_buf(gpu, &ab);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &gb);
    gpu->ops->free_buf(gpu, &ob);
    free(x);
    free(g);
    free(qkv);
}

/* Pinned memory: ids uploaded from it, results downloaded into it with
 * download_f32_async, an event waited for; the same bits as the synchronous
 * download. download_f32_async of a non-F32 buffer is refused. */
static void test_async(vnp_backend *gpu, vnp_precision prec)
{
    int T = 1000, H = 96;
    float *x = rand_vec((size_t)T * H, 1.0f);
    vnp_buf xb = up(gpu, x, (size_t)T * H, 0), rb, ob = f32buf(gpu, (size_t)3 * H);
    vnp_error err;
    int32_t *ranges = NULL;
    float *host = NULL;
    vnp_event *ev = NULL;
    if (gpu->ops->host_alloc(gpu, 6 * sizeof *ranges, (void **)&ranges, &err) ||
        gpu->ops->host_alloc(gpu, (size_t)3 * H * sizeof *host, (void **)&host, &err) ||
        gpu->ops->event_create(gpu, &ev, &err))
        die("host_alloc / event_create", &err);
    const int32_t r[6] = {0, 10, 500, 10, 500, 1000};
    memcpy(ranges, r, sizeof r);
    if (gpu->ops->alloc_i32(gpu, 6, &rb, &err) || gpu->ops->upload_i32(gpu, ranges, 6, &rb, &err))
        die("upload_i32", &err);
    gpu->ops->guard_reset(gpu);
    uint32_t *word = NULL;
    if (gpu->ops->host_alloc(gpu, sizeof *word, (void **)&word, &err))
        die("host_alloc", &err);
    *word = 0xffffffffu;
    if (gpu->ops->mean_pool(gpu, &xb, H, &rb, 3, &ob, H, 0, &err) ||
        gpu->ops->download_f32_async(gpu, &ob, (size_t)3 * H, host, &err) ||
        gpu->ops->guard_save(gpu, word, &err) || gpu->ops->event_record(gpu, ev, &err) ||
        gpu->ops->event_wait(gpu, ev, &err))
        die("asynchronous batch", &err);
    float *sync = down(gpu, &ob, (size_t)3 * H);
    int same = !memcmp(sync, host, (size_t)3 * H * sizeof *host);
    vnp_buf hb = act(gpu, 16);
    vnp_code refused = gpu->ops->download_f32_async(gpu, &hb, 16, host, &err);
    /* (an accepted copy must land before host is freed) */
    if (gpu->ops->event_record(gpu, ev, &err) || gpu->ops->event_wait(gpu, ev, &err))
        die("event", &err);
    int want_refused = prec != VNP_PREC_FP32; /* an FP32 backend's act buffer is F32 */
    char what[200];
    snprintf(what, sizeof what,
             "async %s: pinned download == sync download (%d), guard word %u, non-F32 source "
             "%s",
             pname(prec), same, *word, refused == VNP_EINVAL ? "refused" : "accepted");
    check(same && *word == 0 && (refused == VNP_EINVAL) == want_refused, what);
    gpu->ops->event_free(gpu, ev);
    gpu->ops->host_free(gpu, ranges);
    gpu->ops->host_free(gpu, host);
    gpu->ops->host_free(gpu, word);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &rb);
    gpu->ops->free_buf(gpu, &ob);
    gpu->ops->free_buf(gpu, &hb);
    free(x);
    free(sync);
}

/* VIRNUCPRO_DEBUG_POISON_BATCH=1 on an FP16 backend: batch 1 (the second
 * guard_reset) gets a NaN as the first value of its first pooled output, and
 * only that batch; batches 0 and 2 are clean. */
static void test_poison(void)
{
    setenv("VIRNUCPRO_DEBUG_POISON_BATCH", "1", 1);
    vnp_backend *gpu;
    vnp_error err;
    if (vnp_backend_cuda_create(0, VNP_PREC_FP16, &gpu, &err))
        die("cuda backend", &err);
    unsetenv("VIRNUCPRO_DEBUG_POISON_BATCH");
    int T = 20, H = 32, col = 3, ld = 40;
    float *x = rand_vec((size_t)T * H, 1.0f);
    int32_t r[4] = {0, 5, 5, 20};
    float zeros[80] = {0};
    vnp_buf xb = up(gpu, x, (size_t)T * H, 1), rb = up_i32(gpu, r, 4), ob;
    if (gpu->ops->upload_f32(gpu, zeros, (size_t)2 * ld, &ob, &err))
        die("upload_f32", &err);
    vnp_code codes[3];
    int nan_at[3];
    for (int b = 0; b < 3; b++) {
        gpu->ops->guard_reset(gpu);
        if (gpu->ops->mean_pool(gpu, &xb, H, &rb, 2, &ob, ld, col, &err))
            die("mean_pool", &err);
        codes[b] = vnp_backend_guard_check(gpu, &err);
        float *p = down(gpu, &ob, (size_t)2 * ld);
        nan_at[b] = -1;
        for (int i = 0; i < 2 * ld; i++)
            if (isnan(p[i])) {
                nan_at[b] = nan_at[b] == -1 ? i : -2; /* -2: more than one */
            }
        free(p);
    }
    char what[200];
    snprintf(what, sizeof what, "poison switch: batch 0 %s, batch 1 %s (NaN at %d), batch 2 %s",
             vnp_code_name(codes[0]), vnp_code_name(codes[1]), nan_at[1],
             vnp_code_name(codes[2]));
    check(codes[0] == VNP_OK && codes[1] == VNP_ENUMERIC && nan_at[1] == col &&
              codes[2] == VNP_OK && nan_at[2] == -1,
          what);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &rb);
    gpu->ops->free_buf(gpu, &ob);
    gpu->ops->destroy(gpu);
    free(x);
}

/* A debug switch the whole run may have set (run.sh runs the op tests once more with
 * VIRNUCPRO_DEBUG_SCALAR_KERNELS=1): env_take copies its value and unsets it, so a test can
 * build backends with and without it; env_give_back restores the copy (or leaves it unset)
 * and frees it, so the tests after run as the caller asked. */
static char *env_take(const char *name)
{
    const char *v = getenv(name);
    char *copy = v ? strdup(v) : NULL;
    unsetenv(name);
    return copy;
}

static void env_give_back(const char *name, char *copy)
{
    if (copy)
        setenv(name, copy, 1);
    else
        unsetenv(name);
    free(copy);
}

/* Sequences of up to 256 tokens take the one-copy attention kernel; the tiled kernel
 * (VIRNUCPRO_DEBUG_SCALAR_KERNELS=1) runs the same arithmetic tile for tile: the two
 * must give the same bits, and so must the one-copy kernel with its blocks in sequence
 * order (VIRNUCPRO_DEBUG_ATTN_GRID=seqs; the default puts a sequence's heads together) and
 * with 2 and 8 heads a block (VIRNUCPRO_DEBUG_ATTN_HEADS; the next head copied beside the
 * current one's compute where the sequences are at most 128 tokens; with 3 heads, 2 a
 * block leaves a group of one). */
static void test_attention_kernels_agree(vnp_precision prec, vnp_posenc pos, const int *lens,
                                         int nseq, int heads)
{
    int hd = 64, T = 0, max_len = 0;
    int32_t *cu = malloc(((size_t)nseq + 1) * 4);
    cu[0] = 0;
    for (int s = 0; s < nseq; s++) {
        T += lens[s];
        cu[s + 1] = T;
        if (lens[s] > max_len)
            max_len = lens[s];
    }
    size_t nq = (size_t)T * 3 * heads * hd, no = (size_t)T * heads * hd;
    float *qkv = rand_vec(nq, 1.0f);
    float inv_freq[32], slopes[64];
    for (int i = 0; i < 32; i++)
        inv_freq[i] = powf(10000.0f, -(float)(2 * i) / 64.0f);
    for (int h = 0; h < heads; h++)
        slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)heads);
    float *res[6];
    long hx[6], db[6], w2[6];
    vnp_error err;
    /* the default first: a run with the tiled kernels forced throughout (run.sh's
     * ops_scalar) gets its setting back at the end, for the tests after this one */
    char *scalar_outer = env_take("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
    unsetenv("VIRNUCPRO_DEBUG_ATTN_GRID");
    unsetenv("VIRNUCPRO_DEBUG_ATTN_HEADS");
    unsetenv("VIRNUCPRO_DEBUG_ATTN_WARPS");
    /* 0 default, 1 tiled, 2 sequences together, 3/4 2/8 heads a block, 5 two warps */
    for (int k = 0; k < 6; k++) {
        vnp_backend *be;
        if (k == 1)
            setenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS", "1", 1);
        if (k == 2)
            setenv("VIRNUCPRO_DEBUG_ATTN_GRID", "seqs", 1);
        if (k == 3 || k == 4)
            setenv("VIRNUCPRO_DEBUG_ATTN_HEADS", k == 3 ? "2" : "8", 1);
        if (k == 5) /* the other warp count than the default's */
            setenv("VIRNUCPRO_DEBUG_ATTN_WARPS", max_len <= 32 ? "4" : "2", 1);
        if (vnp_backend_cuda_create(0, prec, &be, &err))
            die("cuda backend", &err);
        unsetenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
        unsetenv("VIRNUCPRO_DEBUG_ATTN_GRID");
        unsetenv("VIRNUCPRO_DEBUG_ATTN_HEADS");
        unsetenv("VIRNUCPRO_DEBUG_ATTN_WARPS");
        vnp_buf qb = up(be, qkv, nq, 1), ob = act(be, no), cb = up_i32(be, cu, (size_t)nseq + 1);
        vnp_buf fb, sb;
        if (be->ops->upload_f32(be, inv_freq, 32, &fb, &err) ||
            be->ops->upload_f32(be, slopes, (size_t)heads, &sb, &err))
            die("upload_f32", &err);
        vnp_attn_desc d = {heads, hd, 0.125f, pos, &fb, &sb};
        if (be->ops->attention(be, &qb, &cb, nseq, max_len, T, &d, &ob, &err))
            die("attention", &err);
        res[k] = down(be, &ob, no);
        hx[k] = vnp_backend_cuda_attn_heads_first(be, &db[k], &w2[k]);
        if (vnp_backend_guard_check(be, &err))
            die("attention guard", &err);
        be->ops->free_buf(be, &qb);
        be->ops->free_buf(be, &ob);
        be->ops->free_buf(be, &cb);
        be->ops->free_buf(be, &fb);
        be->ops->free_buf(be, &sb);
        be->ops->destroy(be);
    }
    const char *pe = pos == VNP_POS_ROTARY ? "rotary" : pos == VNP_POS_ALIBI ? "alibi" : "plain";
    size_t diff = n_differ(res[0], res[1], no);
    char what[200];
    snprintf(what, sizeof what,
             "attention short kernel = tiled kernel bit for bit (%s %s, max_len %d, %zu of %zu "
             "values differ)",
             pname(prec), pe, max_len, diff, no);
    check(diff == 0, what);
    snprintf(what, sizeof what,
             "attention short kernel: heads-first launches %ld by default (want 1), %ld with "
             "VIRNUCPRO_DEBUG_ATTN_GRID=seqs (want 0); two-buffer launches %ld by default "
             "(want 0), %ld and %ld with 2 and 8 heads a block (want %d)",
             hx[0], hx[2], db[0], db[3], db[4], max_len <= 128);
    check(hx[0] == 1 && hx[2] == 0 && db[0] == 0 && db[3] == (max_len <= 128) &&
              db[4] == (max_len <= 128),
          what);
    snprintf(what, sizeof what,
             "attention short kernel: two-warp launches %ld by default (want %d), %ld with "
             "VIRNUCPRO_DEBUG_ATTN_WARPS=%s (want %d), %ld with 2 heads a block (want 0)",
             w2[0], max_len <= 32, w2[5], max_len <= 32 ? "4" : "2",
             max_len > 32 && max_len <= 64, w2[3]);
    check(w2[0] == (max_len <= 32) && w2[5] == (max_len > 32 && max_len <= 64) && w2[3] == 0,
          what);
    for (int k = 3; k < 6; k++) {
        const size_t dk = n_differ(res[0], res[k], no);
        snprintf(what, sizeof what,
                 "attention short kernel, %s = default bit for bit (%s %s, max_len %d, "
                 "%zu of %zu values differ)",
                 k == 3   ? "2 heads a block"
                 : k == 4 ? "8 heads a block"
                          : "the other warp count",
                 pname(prec), pe, max_len, dk, no);
        check(dk == 0, what);
    }
    diff = n_differ(res[0], res[2], no);
    snprintf(what, sizeof what,
             "attention short kernel, heads together = sequences together (VIRNUCPRO_DEBUG_ATTN_"
             "GRID=seqs) bit for bit (%s %s, max_len %d, %zu of %zu values differ)",
             pname(prec), pe, max_len, diff, no);
    check(diff == 0, what);
    {
        /* a value that is not one: creation fails, naming the variable */
        vnp_backend *bad = NULL;
        setenv("VIRNUCPRO_DEBUG_ATTN_GRID", "head", 1);
        vnp_code brc = vnp_backend_cuda_create(0, prec, &bad, &err);
        unsetenv("VIRNUCPRO_DEBUG_ATTN_GRID");
        check(brc == VNP_EINVAL && strstr(err.msg, "VIRNUCPRO_DEBUG_ATTN_GRID=head") && !bad,
              "attention: VIRNUCPRO_DEBUG_ATTN_GRID=head is refused, naming the variable");
        if (bad)
            bad->ops->destroy(bad);
    }
    env_give_back("VIRNUCPRO_DEBUG_SCALAR_KERNELS", scalar_outer);
    for (int k = 0; k < 6; k++)
        free(res[k]);
    free(qkv);
    free(cu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The two row layouts of LayerNorm's warp kernel (as loaded, the default; as floats,
 * VIRNUCPRO_DEBUG_LN_ROWS=floats) give the same bits: the same values in the same order. */
static void ln_layouts_agree(vnp_backend *a, vnp_backend *b, int M, int H, int inplace)
{
    float *x = rand_vec((size_t)M * H, 2.0f), *g = rand_vec((size_t)H, 1.0f),
          *bt = rand_vec((size_t)H, 0.5f);
    for (size_t i = 0; i < (size_t)M * H; i++)
        x[i] += 0.7f;
    float *res[2];
    vnp_backend *bes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        vnp_buf xb = up(bes[k], x, (size_t)M * H, 1), gb = up(bes[k], g, (size_t)H, 0),
                bb = up(bes[k], bt, (size_t)H, 0);
        vnp_buf ob = inplace ? xb : act(bes[k], (size_t)M * H);
        vnp_error err;
        if (bes[k]->ops->layernorm(bes[k], &xb, NULL, &gb, &bb, 1e-5f, M, H, &ob, &err))
            die("layernorm", &err);
        res[k] = down(bes[k], &ob, (size_t)M * H);
        bes[k]->ops->free_buf(bes[k], &xb);
        bes[k]->ops->free_buf(bes[k], &gb);
        bes[k]->ops->free_buf(bes[k], &bb);
        if (!inplace)
            bes[k]->ops->free_buf(bes[k], &ob);
    }
    char what[128];
    snprintf(what, sizeof what,
             "layernorm %dx%d%s %s: rows as floats and as loaded give the same bits", M, H,
             inplace ? " (in place)" : "", a->name);
    check(!memcmp(res[0], res[1], (size_t)M * H * sizeof(float)), what);
    free(res[0]);
    free(res[1]);
    free(x);
    free(g);
    free(bt);
}

/* LayerNorm alone: ESM-2 3B's (2560 wide, no residual, 16k tokens) and DNABERT-S's (768
 * wide, x + residual, 64k tokens), into a separate buffer; GB/s counts each row read
 * (twice with the residual) and written once. */
static void time_layernorm(vnp_backend *gpu, const char *rows, int M, int H, int with_res)
{
    size_t n = (size_t)M * H;
    float *x = rand_vec(n, 2.0f), *g = rand_vec((size_t)H, 1.0f), *bt = rand_vec((size_t)H, 0.5f);
    vnp_buf xb = up(gpu, x, n, 1), rb = up(gpu, x, n, 1), gb = up(gpu, g, (size_t)H, 0),
            bb = up(gpu, bt, (size_t)H, 0), ob = act(gpu, n);
    vnp_error err;
    float probe;
    int reps = 50;
    double t0 = 0;
    for (int it = 0; it < 3 + reps; it++) {
        if (it == 3) {
            gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
            t0 = now_s();
        }
        if (gpu->ops->layernorm(gpu, &xb, with_res ? &rb : NULL, &gb, &bb, 1e-5f, M, H, &ob, &err))
            die("layernorm (timing)", &err);
    }
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    double dt = (now_s() - t0) / reps;
    printf("time layernorm %s rows=%s M=%d H=%d%s: %.1f us  %.0f GB/s\n", gpu->name, rows, M,
           H, with_res ? " +res" : "", dt * 1e6, (double)n * 2 * (with_res ? 3 : 2) / dt / 1e9);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &rb);
    gpu->ops->free_buf(gpu, &gb);
    gpu->ops->free_buf(gpu, &bb);
    gpu->ops->free_buf(gpu, &ob);
    free(x);
    free(g);
    free(bt);
}

/* A CUDA backend with the old kernels (VIRNUCPRO_DEBUG_SCALAR_KERNELS: the tiled
 * attention kernel), the caller's value of the variable given back. */
static vnp_backend *tiled_backend(vnp_precision prec)
{
    vnp_backend *be;
    vnp_error err;
    char *outer = env_take("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
    setenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS", "1", 1);
    vnp_code rc = vnp_backend_cuda_create(0, prec, &be, &err);
    env_give_back("VIRNUCPRO_DEBUG_SCALAR_KERNELS", outer);
    if (rc)
        die("cuda backend (old kernels)", &err);
    return be;
}

/* Attention alone at ESM-2 3B's shape (40 heads x 64) on a 16k-token batch. */
static void time_attention(vnp_backend *gpu, const char *kernel, int len, int heads)
{
    int nseq = 16384 / len, T = nseq * len;
    int32_t *cu = malloc(((size_t)nseq + 1) * 4);
    for (int s = 0; s <= nseq; s++)
        cu[s] = s * len;
    size_t nq = (size_t)T * 3 * heads * 64, no = (size_t)T * heads * 64;
    float *qkv = rand_vec(nq, 1.0f), inv_freq[32];
    for (int i = 0; i < 32; i++)
        inv_freq[i] = powf(10000.0f, -(float)(2 * i) / 64.0f);
    vnp_buf qb = up(gpu, qkv, nq, 1), ob = act(gpu, no), cb = up_i32(gpu, cu, (size_t)nseq + 1),
            fb;
    vnp_error err;
    if (gpu->ops->upload_f32(gpu, inv_freq, 32, &fb, &err))
        die("upload_f32", &err);
    vnp_attn_desc d = {heads, 64, 0.125f, VNP_POS_ROTARY, &fb, NULL};
    float probe;
    for (int it = 0; it < 3; it++)
        gpu->ops->attention(gpu, &qb, &cb, nseq, len, T, &d, &ob, &err);
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    int reps = 20;
    double t0 = now_s();
    for (int it = 0; it < reps; it++)
        gpu->ops->attention(gpu, &qb, &cb, nseq, len, T, &d, &ob, &err);
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    double dt = (now_s() - t0) / reps;
    double bytes = (double)(nq + no) * 2;
    double flops = 4.0 * heads * 64.0 * (double)len * T;
    printf("time attention fp16 rotary %s len=%d T=%d heads=%d: %.3f ms  %.0f GB/s  %.1f TFLOP/s\n",
           kernel, len, T, heads, dt * 1e3, bytes / dt / 1e9, flops / dt / 1e12);
    gpu->ops->free_buf(gpu, &qb);
    gpu->ops->free_buf(gpu, &ob);
    gpu->ops->free_buf(gpu, &cb);
    gpu->ops->free_buf(gpu, &fb);
    free(qkv);
    free(cu);
}

/* One linear alone at M tokens (GELU, or the residual added in place), as the backend
 * runs it: the sm_90 kernel, or with `label` "portable" the cuBLASLt GEMM and the pass
 * after it. Information only. */
static void time_linear(vnp_backend *gpu, const char *label, int M, int N, int K, vnp_act a,
                        int with_res)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 1.0f / sqrtf(K)),
          *b = rand_vec((size_t)N, 0.3f);
    vnp_buf xb = up(gpu, x, (size_t)M * K, 1), wb = up(gpu, w, (size_t)N * K, 1),
            bb = up(gpu, b, (size_t)N, VNP_WEIGHT_BIAS), ob = act(gpu, (size_t)M * N);
    const vnp_buf *rp = with_res ? &ob : NULL; /* in place, as the encoders add it */
    vnp_error err;
    float probe;
    for (int it = 0; it < 3; it++)
        if (gpu->ops->linear(gpu, &xb, &wb, &bb, a, rp, M, N, K, &ob, &err))
            die("linear", &err);
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    const int reps = 20;
    double t0 = now_s();
    for (int it = 0; it < reps; it++)
        gpu->ops->linear(gpu, &xb, &wb, &bb, a, rp, M, N, K, &ob, &err);
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    double dt = (now_s() - t0) / reps;
    int grid = 0;
    vnp_backend_cuda_sm90_gemms(gpu, NULL, NULL, NULL, NULL, &grid);
    printf("time %s linear %s %s M=%d N=%d K=%d: %.3f ms  %.1f TFLOP/s",
           a == VNP_ACT_GELU_ERF ? "gelu" : with_res ? "residual" : "bias", gpu->name, label, M,
           N, K, dt * 1e3, 2.0 * M * N * K / dt / 1e12);
    if (grid)
        printf("  (grid %d CTAs)", grid);
    printf("\n");
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &wb);
    gpu->ops->free_buf(gpu, &bb);
    gpu->ops->free_buf(gpu, &ob);
    free(x);
    free(w);
    free(b);
}

/* DNABERT-S's up-projection and gated GELU alone (N 2 x 3072, K 768) at M tokens, as the
 * model runs it on this backend. Information only. */
static void time_gated_linear(vnp_backend *gpu, const char *label, int M, int I, int K)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)2 * I * K, 1.0f / sqrtf(K));
    vnp_buf xb = up(gpu, x, (size_t)M * K, 1), wb = up(gpu, w, (size_t)2 * I * K, 1),
            tb = act(gpu, (size_t)M * 2 * I), ob = act(gpu, (size_t)M * I);
    vnp_error err;
    float probe;
    double t0 = 0;
    const int reps = 20;
    for (int it = 0; it < 3 + reps; it++) {
        if (it == 3) {
            gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
            t0 = now_s();
        }
        if (gpu->ops->linear_gated_gelu(gpu, &xb, &wb, NULL, M, I, K, &tb, &ob, &err))
            die("linear_gated_gelu", &err);
    }
    gpu->ops->download_f32(gpu, &ob, 1, &probe, &err);
    double dt = (now_s() - t0) / reps;
    printf("time gated linear %s %s M=%d N=%d K=%d: %.3f ms  %.1f TFLOP/s (GEMM + gated GELU)\n",
           gpu->name, label, M, 2 * I, K, dt * 1e3, 2.0 * M * 2 * I * K / dt / 1e12);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &wb);
    gpu->ops->free_buf(gpu, &tb);
    gpu->ops->free_buf(gpu, &ob);
    free(x);
    free(w);
}

/* Which GELU does cuBLASLt's GELU epilogue compute? A 1 x N x 1 FP32 GEMM with
 * x = 1 and W = the test points, through CUBLASLT_EPILOGUE_GELU, compared with
 * the erf form and the tanh approximation. The backend relies on the answer
 * (tanh: it runs its own erf GELU instead). */
static void probe_cublaslt_gelu(void)
{
    enum { N = 64 };
    float w[N], x = 1.0f, out[N];
    for (int i = 0; i < N; i++)
        w[i] = -4.0f + 8.0f * (float)i / (N - 1);
    float *dw, *dx, *dout;
    cudaMalloc((void **)&dw, sizeof w);
    cudaMalloc((void **)&dx, sizeof x);
    cudaMalloc((void **)&dout, sizeof out);
    cudaMemcpy(dw, w, sizeof w, cudaMemcpyHostToDevice);
    cudaMemcpy(dx, &x, sizeof x, cudaMemcpyHostToDevice);
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtCreate(&lt);
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_GELU;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, N, 1, N); /* D[N,1] = W[N,1] x[1,1] */
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, 1, 1, 1);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, 1, N);
    float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = cublasLtMatmul(lt, desc, &alpha, dw, la, dx, lb, &beta, dout, lc, dout,
                                       lc, NULL, NULL, 0, 0);
    cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
    double derf = 0, dtanh = 0;
    for (int i = 0; i < N; i++) {
        double v = w[i];
        double ge = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        double gt = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        derf = fmax(derf, fabs(out[i] - ge));
        dtanh = fmax(dtanh, fabs(out[i] - gt));
    }
    printf("cuBLASLt GELU epilogue (status %d): max |diff| vs erf GELU %.2e, vs tanh GELU %.2e "
           "-> %s\n",
           (int)st, derf, dtanh,
           st != CUBLAS_STATUS_SUCCESS ? "unknown" : dtanh < derf ? "tanh approximation" : "erf");
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(lt);
    cudaFree(dw);
    cudaFree(dx);
    cudaFree(dout);
}

/* The fixed algorithm table (cuda_gemm.cu) at the token counts of packed batches: ESM-2
 * 3B's out projection (residual as C, in place) and fc1 (GELU) at M = 16101 against the
 * CPU, and, where the table names the GPU generation and precision (compute capability
 * 9.0, FP16; the backend made with VIRNUCPRO_DEBUG_GEMM_PICKS=1), the algorithms must have
 * come from the table: a pick that cuBLASLt refuses would silently fall back. */
static void test_gemm_pick(vnp_backend *cpu, vnp_backend *gpu, vnp_precision prec)
{
    const int before = vnp_backend_cuda_gemm_picked(gpu);
    test_linear(cpu, gpu, prec, 16101, 2560, 2560, 1, VNP_ACT_NONE, 1, 1, 0);
    test_linear(cpu, gpu, prec, 16101, 10240, 2560, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    const int picked = vnp_backend_cuda_gemm_picked(gpu) - before;
    const int want =
        gpu->device.cc_major == 9 && gpu->device.cc_minor == 0 && prec == VNP_PREC_FP16 ? 2 : 0;
    const int ok = picked == want; /* (elsewhere no pick may apply: 0) */
    g_checks++;
    g_failed += !ok;
    printf("%-4s gemm pick: %d of the 2 ESM-2 shapes at M=16101 took the fixed table's "
           "algorithm (want %d on compute capability %d.%d) %s\n",
           ok ? "ok" : "FAIL", picked, want, gpu->device.cc_major, gpu->device.cc_minor,
           pname(prec));
}

/* DNABERT-S's up-projection and gated GELU (linear_gated_gelu where the backend has it,
 * else linear and gated_gelu, as the model calls them) on a and b, compared. */
static void test_linear_gated(vnp_backend *a, vnp_backend *b, vnp_precision prec, int M, int I,
                              int K, int with_bias)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)2 * I * K, 1.0f / sqrtf(K));
    float *bi = rand_vec((size_t)2 * I, 0.3f);
    round_to(x, (size_t)M * K, prec);
    round_to(w, (size_t)2 * I * K, prec);
    float *res[2];
    vnp_backend *bes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * K, 1), wb = up(be, w, (size_t)2 * I * K, 1);
        vnp_buf bb = up(be, bi, (size_t)2 * I, VNP_WEIGHT_BIAS);
        /* no tmp where the backend says the fused op leaves it unused (as the encoder
         * then allocates none) */
        const int fused = be->ops->linear_gated_gelu && be->ops->linear_gated_gelu_fused &&
                          be->ops->linear_gated_gelu_fused(be, I, K);
        vnp_buf tb = {0}, ob = act(be, (size_t)M * I);
        if (!fused)
            tb = act(be, (size_t)M * 2 * I);
        vnp_error err;
        const vnp_buf *bp = with_bias ? &bb : NULL;
        vnp_code rc = be->ops->linear_gated_gelu
                          ? be->ops->linear_gated_gelu(be, &xb, &wb, bp, M, I, K, &tb, &ob, &err)
                          : be->ops->linear(be, &xb, &wb, bp, VNP_ACT_NONE, NULL, M, 2 * I, K,
                                            &tb, &err);
        if (!rc && !be->ops->linear_gated_gelu)
            rc = be->ops->gated_gelu(be, &tb, M, I, &ob, &err);
        if (rc)
            die("linear + gated gelu", &err);
        res[k] = down(be, &ob, (size_t)M * I);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &wb);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &tb);
        be->ops->free_buf(be, &ob);
    }
    char name[96];
    snprintf(name, sizeof name, "linear+gated_gelu %dx%dx%d%s", M, 2 * I, K,
             with_bias ? " +b" : "");
    compare(name, prec, res[0], res[1], (size_t)M * I, tol_for(prec));
    free(res[0]);
    free(res[1]);
    free(x);
    free(w);
    free(bi);
}

/* The sm_90a GEMM's cases (sm90/cuda_gemm_sm90.cu), `gpu` against the CPU at small shapes
 * (a partial row tile, one row, no bias, K shorter than the stage ring, more tiles than two
 * per SM so that both consumers take several, an odd number of row tiles and of column
 * tiles, so that clusters have tiles past the edges or fall back to 1 x 1; widths that
 * take 128 x 256 tiles and widths that do not, gated with and without bias) and, unless
 * `small`, against the portable path at ESM-2 3B's and DNABERT-S's widths with `bigM`
 * rows (a packed batch's). An Inf in x must reach the guard word. Returns how many GEMMs
 * there were. */
static int sm90_cases(vnp_backend *cpu, vnp_backend *port, vnp_backend *gpu, vnp_precision prec,
                      int small, int bigM, const char *shape)
{
    vnp_error err;
    test_linear(cpu, gpu, prec, 77, 256, 128, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    test_linear(cpu, gpu, prec, 300, 384, 192, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    test_linear(cpu, gpu, prec, 1, 128, 64, 0, VNP_ACT_GELU_ERF, 0, 0, 0);
    test_linear(cpu, gpu, prec, 4100, 1280, 256, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    /* K in 17 stages: more than an interleaved epilogue's 16 chunks */
    test_linear(cpu, gpu, prec, 300, 256, 1088, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    if (!small)
        test_linear(port, gpu, prec, bigM, 10240, 2560, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    test_linear_gated(cpu, gpu, prec, 77, 192, 128, 1);
    test_linear_gated(cpu, gpu, prec, 77, 256, 128, 1);
    test_linear_gated(cpu, gpu, prec, 1000, 3072, 768, 0); /* DNABERT-S: no bias */
    if (!small)
        test_linear_gated(port, gpu, prec, bigM, 3072, 768, 0);
    /* the other linears: bias, bias + residual in place, no bias with a residual */
    test_linear(cpu, gpu, prec, 130, 384, 128, 1, VNP_ACT_NONE, 0, 0, 0);
    test_linear(cpu, gpu, prec, 129, 256, 256, 1, VNP_ACT_NONE, 1, 1, 0);
    test_linear(cpu, gpu, prec, 70, 128, 64, 0, VNP_ACT_NONE, 1, 0, 0);
    if (!small) {
        test_linear(port, gpu, prec, bigM, 7680, 2560, 1, VNP_ACT_NONE, 0, 0, 0);  /* qkv */
        test_linear(port, gpu, prec, bigM, 2560, 2560, 1, VNP_ACT_NONE, 1, 1, 0);  /* out */
        test_linear(port, gpu, prec, bigM, 2560, 10240, 1, VNP_ACT_NONE, 1, 1, 0); /* fc2 */
    }
    /* an Inf in x: the fused epilogue marks the guard word */
    int M = 130, N = 256, K = 128;
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 0.1f);
    x[129 * K + 7] = INFINITY;
    vnp_buf xb = up(gpu, x, (size_t)M * K, 1), wb = up(gpu, w, (size_t)N * K, 1),
            ob = act(gpu, (size_t)M * N);
    gpu->ops->guard_reset(gpu);
    if (gpu->ops->linear(gpu, &xb, &wb, NULL, VNP_ACT_GELU_ERF, NULL, M, N, K, &ob, &err))
        die("linear", &err);
    vnp_code hit = vnp_backend_guard_check(gpu, &err);
    gpu->ops->guard_reset(gpu);
    char what[200];
    snprintf(what, sizeof what, "sm_90 GEMM %s %s: an Inf in the last row reaches the guard (%s)",
             pname(prec), shape, vnp_code_name(hit));
    check(hit == VNP_ENUMERIC, what);
    gpu->ops->free_buf(gpu, &xb);
    gpu->ops->free_buf(gpu, &wb);
    gpu->ops->free_buf(gpu, &ob);
    free(x);
    free(w);
    return small ? 12 : 17;
}

/* Two placements of the sm_90 GEMM's GELU epilogues (backends `a` and `b`, named `an`
 * and `bn`: VIRNUCPRO_DEBUG_SM90_EPILOGUE=warps, =consumers, =interleaved) on the same
 * inputs: the same bits, bias + erf GELU (gated 0, N outputs) or gated GELU (gated 1,
 * N / 2 outputs, no bias) */
static void sm90_placements_same(vnp_backend *a, const char *an, vnp_backend *b, const char *bn,
                                 vnp_precision prec, int M, int N, int K, int gated)
{
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)N * K, 1.0f / sqrtf(K));
    float *bi = rand_vec((size_t)N, 0.3f);
    const int n_out = gated ? N / 2 : N;
    float *res[2];
    vnp_backend *bes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        vnp_backend *be = bes[k];
        vnp_buf xb = up(be, x, (size_t)M * K, 1), wb = up(be, w, (size_t)N * K, 1);
        vnp_buf bb = up(be, bi, (size_t)N, VNP_WEIGHT_BIAS), tb = {0}, ob = act(be, (size_t)M * n_out);
        vnp_error err;
        vnp_code rc = gated ? be->ops->linear_gated_gelu(be, &xb, &wb, NULL, M, N / 2, K, &tb, &ob, &err)
                            : be->ops->linear(be, &xb, &wb, &bb, VNP_ACT_GELU_ERF, NULL, M, N, K, &ob,
                                              &err);
        if (rc)
            die(gated ? "linear_gated_gelu" : "linear", &err);
        res[k] = down(be, &ob, (size_t)M * n_out);
        be->ops->free_buf(be, &xb);
        be->ops->free_buf(be, &wb);
        be->ops->free_buf(be, &bb);
        be->ops->free_buf(be, &ob);
    }
    const size_t diff = n_differ(res[0], res[1], (size_t)M * n_out);
    char what[200];
    snprintf(what, sizeof what,
             "sm_90 GEMM %s %s %dx%dx%d: epilogue %s = epilogue %s bit for bit "
             "(%zu of %zu values differ)",
             pname(prec), gated ? "gated GELU" : "bias + GELU", M, N, K, an, bn, diff,
             (size_t)M * n_out);
    check(diff == 0, what);
    free(res[0]);
    free(res[1]);
    free(x);
    free(w);
    free(bi);
}

/* One gated GELU GEMM in 128 x 256 tiles (M 130, I 128, K 128) on `be`: how many GEMMs it
 * added to the backend's count of those with the epilogue warps (0 or 1), and in *inter to
 * the count of those with the epilogue interleaved. */
static long gated_placement(vnp_backend *be, long *inter)
{
    const int M = 130, I = 128, K = 128;
    float *x = rand_vec((size_t)M * K, 1.0f), *w = rand_vec((size_t)2 * I * K, 0.1f);
    vnp_buf xb = up(be, x, (size_t)M * K, 1), wb = up(be, w, (size_t)2 * I * K, 1), tb = {0},
            ob = act(be, (size_t)M * I);
    long of0 = 0, of1 = 0, in0 = 0, in1 = 0;
    vnp_backend_cuda_sm90_gemms(be, NULL, NULL, &of0, &in0, NULL);
    vnp_error err;
    if (be->ops->linear_gated_gelu(be, &xb, &wb, NULL, M, I, K, &tb, &ob, &err))
        die("linear_gated_gelu", &err);
    if (vnp_backend_guard_check(be, &err))
        die("linear_gated_gelu guard", &err);
    vnp_backend_cuda_sm90_gemms(be, NULL, NULL, &of1, &in1, NULL);
    *inter = in1 - in0;
    be->ops->free_buf(be, &xb);
    be->ops->free_buf(be, &wb);
    be->ops->free_buf(be, &ob);
    free(x);
    free(w);
    return of1 - of0;
}

/* The sm_90a GEMM (bias + erf GELU, gated GELU, or bias + residual in its epilogue) in each
 * tile width and cluster shape (VIRNUCPRO_DEBUG_SM90_TILE, VIRNUCPRO_DEBUG_SM90_CLUSTER),
 * and the default's with both GELU epilogues on the consumers, and with both on the
 * epilogue warps (VIRNUCPRO_DEBUG_SM90_EPILOGUE=consumers, =warps; by default ESM-2's
 * GELU is on the warps and DNABERT-S's gated GELU on the consumers),
 * then, unless `small`, timed beside the portable path (cuBLASLt and the element-wise
 * pass, VIRNUCPRO_DEBUG_SM90_GEMM=0). On a 9.0 GPU in FP16/BF16 with the kernels built,
 * each of these GEMMs must have taken the sm_90 kernel; elsewhere, and with the switch,
 * none. The packed-batch shapes have M = 16101 in the default configuration and 4101 in
 * the others (the same widths; fewer rows keep the stage's time down), and in BF16 run in
 * the default configuration only. */
#define SM90_CONFIGS 9
/* The sm_90 GEMM's non-finite test at T's rounding limit (its epilogue compares each
 * output with the limit before rounding instead of rounding back): x all ones, W's row 0
 * summing to a value just under the limit (FP16: 65519, 1 under it; BF16: a quarter of
 * the last place over the largest finite value), row 1 to the same or to the limit itself
 * (a tie that rounds to infinity), the rest zero; the guard word stays clean, or is
 * raised, and the outputs are T's largest finite value or infinity. */
static void sm90_rounding_limit(vnp_backend *g, vnp_precision prec, const char *cfg)
{
    const int M = 130, N = 256, K = 64;
    const int bf = prec == VNP_PREC_BF16;
    uint32_t mxbits = 0x7F7F0000u; /* BF16's largest finite value as a float */
    float bfmax;
    memcpy(&bfmax, &mxbits, 4);
    const float tmax = bf ? bfmax : 65504.0f;
    float *x = malloc((size_t)M * K * 4), *w = calloc((size_t)N * K, 4);
    if (!x || !w) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int i = 0; i < M * K; i++)
        x[i] = 1.0f;
    for (int at = 0; at < 2; at++) {
        memset(w, 0, (size_t)N * K * 4);
        if (bf) { /* the largest finite value, plus a quarter or half of its last place */
            w[0] = w[K] = bfmax;
            w[1] = ldexpf(1.0f, 118);
            w[K + 1] = ldexpf(1.0f, at ? 119 : 118);
        } else { /* 63 x 1024 + 1007 = 65519 (to 65504); + 1008 = 65520 (to infinity) */
            for (int k = 0; k < 63; k++)
                w[k] = w[K + k] = 1024.0f;
            w[63] = 1007.0f;
            w[K + 63] = at ? 1008.0f : 1007.0f;
        }
        vnp_buf xb = up(g, x, (size_t)M * K, 1), wb = up(g, w, (size_t)N * K, 1),
                ob = act(g, (size_t)M * N);
        vnp_error err;
        g->ops->guard_reset(g);
        if (g->ops->linear(g, &xb, &wb, NULL, VNP_ACT_NONE, NULL, M, N, K, &ob, &err))
            die("linear", &err);
        vnp_code rc = vnp_backend_guard_check(g, &err);
        g->ops->guard_reset(g);
        float *o = down(g, &ob, (size_t)M * N);
        /* rows 0 and M - 1 (the partial row tile): columns 0 and 1 */
        int vals = o[0] == tmax && o[(size_t)(M - 1) * N] == tmax &&
                   (at ? isinf(o[1]) && isinf(o[(size_t)(M - 1) * N + 1])
                       : o[1] == tmax && o[(size_t)(M - 1) * N + 1] == tmax);
        char what[200];
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s %s: a sum %s the rounding limit: guard %s (want %s), outputs %s",
                 pname(prec), cfg, at ? "at" : "just under", vnp_code_name(rc),
                 at ? "ENUMERIC" : "OK", vals ? "as expected" : "WRONG");
        check(vals && rc == (at ? VNP_ENUMERIC : VNP_OK), what);
        free(o);
        g->ops->free_buf(g, &xb);
        g->ops->free_buf(g, &wb);
        g->ops->free_buf(g, &ob);
    }
    free(x);
    free(w);
}

static void test_gemm_sm90(vnp_backend *cpu, vnp_precision prec, int small)
{
    /* 1 x 1 (no multicast) first: a hang in a cluster shape leaves its result printed */
    static const char *const tiles[SM90_CONFIGS] = {"128x128", "128x256", "128x128", "128x256",
                                                    "128x256", "128x256", "128x256", "128x256",
                                                    "128x256"};
    static const char *const shapes[SM90_CONFIGS] = {"1x1", "1x1", "2x1", "2x1", "1x2",
                                                     "2x2", "2x1", "2x1", "2x1"};
    static const char *const epis[SM90_CONFIGS] = {"", "", "", "", "", "", "consumers", "warps",
                                                   "interleaved"};
    /* the default (128 x 256, 2 x 1, ESM-2's GELU epilogue on the epilogue warps);
     * 128 x 128 2 x 1; the default with both GELU epilogues on the consumers, with both on
     * the epilogue warps, and with both interleaved with the consumers' next main loop */
    const int def = 3, narrow = 2, inl = 6, wrp = 7, itl = 8;
    vnp_backend *port, *gpu[SM90_CONFIGS];
    char names[SM90_CONFIGS][40];
    vnp_error err;
    setenv("VIRNUCPRO_DEBUG_SM90_GEMM", "0", 1);
    if (vnp_backend_cuda_create(0, prec, &port, &err))
        die("cuda backend (no sm_90 kernels)", &err);
    setenv("VIRNUCPRO_DEBUG_SM90_GEMM", "2", 1); /* every encoder linear */
    for (int i = 0; i < SM90_CONFIGS; i++) {
        snprintf(names[i], sizeof names[i], "%s %s%s%s", tiles[i], shapes[i], *epis[i] ? " " : "",
                 epis[i]);
        setenv("VIRNUCPRO_DEBUG_SM90_TILE", tiles[i], 1);
        setenv("VIRNUCPRO_DEBUG_SM90_CLUSTER", shapes[i], 1);
        if (*epis[i])
            setenv("VIRNUCPRO_DEBUG_SM90_EPILOGUE", epis[i], 1);
        else
            unsetenv("VIRNUCPRO_DEBUG_SM90_EPILOGUE");
        if (i == def) { /* the defaults, unset */
            unsetenv("VIRNUCPRO_DEBUG_SM90_TILE");
            unsetenv("VIRNUCPRO_DEBUG_SM90_CLUSTER");
        }
        if (vnp_backend_cuda_create(0, prec, &gpu[i], &err))
            die("cuda backend (sm_90 kernels)", &err);
    }
    unsetenv("VIRNUCPRO_DEBUG_SM90_TILE");
    unsetenv("VIRNUCPRO_DEBUG_SM90_EPILOGUE");
    /* values that are not one: creation fails, naming the variable */
    unsetenv("VIRNUCPRO_DEBUG_SM90_CLUSTER");
    static const char *const badv[4][2] = {{"VIRNUCPRO_DEBUG_SM90_CLUSTER", "3x1"},
                                           {"VIRNUCPRO_DEBUG_SM90_TILE", "256x128"},
                                           {"VIRNUCPRO_DEBUG_SM90_EPILOGUE", "warp"},
                                           {"VIRNUCPRO_DEBUG_SM90_GEMM", "3"}};
    for (int k = 0; k < 4; k++) {
        setenv(badv[k][0], badv[k][1], 1);
        vnp_backend *bad = NULL;
        vnp_code brc = vnp_backend_cuda_create(0, prec, &bad, &err);
        char want[80], what[200];
        snprintf(want, sizeof want, "%s=%s", badv[k][0], badv[k][1]);
        snprintf(what, sizeof what, "sm_90 GEMM: %s is refused, naming the variable", want);
        check(brc == VNP_EINVAL && strstr(err.msg, want) && !bad, what);
        if (bad)
            bad->ops->destroy(bad);
        unsetenv(badv[k][0]);
    }
    unsetenv("VIRNUCPRO_DEBUG_SM90_GEMM");
    const int sm90 =
#ifdef VNP_EXPECT_SM90A
        gpu[0]->device.cc_major == 9 && gpu[0]->device.cc_minor == 0 &&
        prec != VNP_PREC_FP32 && !getenv("VIRNUCPRO_DEBUG_SCALAR_KERNELS");
#else
        0;
#endif
    for (int i = 0; i < SM90_CONFIGS; i++) {
        long cl0 = 0, cl1 = 0, wd0 = 0, wd1 = 0, of0 = 0, of1 = 0, in0 = 0, in1 = 0;
        const long before = vnp_backend_cuda_sm90_gemms(gpu[i], &cl0, &wd0, &of0, &in0, NULL);
        /* (BF16: the packed-batch shapes in the default configuration only, to keep
         * the stage's time down; FP16 runs them in every configuration) */
        const int sm = small || (prec == VNP_PREC_BF16 && i != def);
        const int n = sm90_cases(cpu, port, gpu[i], prec, sm, i == def ? 16101 : 4101, names[i]);
        const long ran = vnp_backend_cuda_sm90_gemms(gpu[i], &cl1, &wd1, &of1, &in1, NULL) - before;
        const int want = sm90 ? n : 0;
        char what[200];
        snprintf(what, sizeof what, "sm_90 GEMM %s %s: %ld of the GEMMs took it (want %d on %d.%d)",
                 pname(prec), names[i], ran, want, gpu[i]->device.cc_major,
                 gpu[i]->device.cc_minor);
        check(ran == want, what);
        /* in clusters: none in 1x1; in the others some, not all (each shape has cases
         * with nothing to pair: one row tile, or an odd number of column tiles); in
         * 128 x 256 tiles likewise some, not all (widths not a multiple of 256) */
        const int one = !strcmp(shapes[i], "1x1"), wide = !strcmp(tiles[i], "128x256");
        const long cl = cl1 - cl0, wd = wd1 - wd0;
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s %s: %ld of the %ld ran in clusters of 2 or more CTAs "
                 "(want %s)",
                 pname(prec), names[i], cl, ran, !sm90 || one ? "0" : "some, not all");
        check(!sm90 || one ? cl == 0 : cl > 0 && cl < ran, what);
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s %s: %ld of the %ld ran in 128 x 256 tiles (want %s)",
                 pname(prec), names[i], wd, ran, !sm90 || !wide ? "0" : "some, not all");
        check(!sm90 || !wide ? wd == 0 : wd > 0 && wd < ran, what);
        /* the GELU epilogues of the wide tiles on the epilogue warps, unless switched
         * off: some of the wide ones, not all (the plain linears keep theirs; by default
         * the gated ones too, checked below) */
        /* (by default ESM-2's GELU on the warps, the gated GELU interleaved) */
        const int itv = wide && (!*epis[i] || !strcmp(epis[i], "interleaved"));
        const int off = wide && (!*epis[i] || !strcmp(epis[i], "warps"));
        const long of = of1 - of0, in = in1 - in0;
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s %s: %ld of the %ld wide ones had the epilogue warps (want %s)",
                 pname(prec), names[i], of, wd, !sm90 || !off ? "0" : "some, not all");
        check(!sm90 || !off ? of == 0 : of > 0 && of < wd, what);
        /* interleaved: the wide gated GELU ones (by default) or those and the GELU ones,
         * not the plain linears */
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s %s: %ld of the %ld wide ones had the epilogue interleaved "
                 "(want %s)",
                 pname(prec), names[i], in, wd, !sm90 || !itv ? "0" : "some, not all");
        check(!sm90 || !itv ? in == 0 : in > 0 && in < wd, what);
    }
    if (sm90)
        for (int i = 0; i < SM90_CONFIGS; i++)
            sm90_rounding_limit(gpu[i], prec, names[i]);
    /* the two placements of the GELU epilogue give the same bits: a partial row tile, and
     * shapes with ~12 tiles a CTA (the buffer's barriers through many phases) */
    if (sm90) {
        sm90_placements_same(gpu[wrp], "warps", gpu[inl], "consumers", prec, 77, 256, 128, 0);
        sm90_placements_same(gpu[wrp], "warps", gpu[inl], "consumers", prec, 40000, 1280, 256, 0);
        sm90_placements_same(gpu[wrp], "warps", gpu[inl], "consumers", prec, 40000, 3072, 256, 1);
        /* interleaved: K shorter than the chunks (the rest after the main loop), and longer
         * (ESM-2's fc1 K, DNABERT-S's gated K), with partial row tiles (the 40000-row gated
         * one: K shorter than the 8 chunks); then shapes with more tiles than CTAs (so that
         * chunks are pending in the K loop, not only drained after the last tile) and
         * partial row tiles: K shorter than the 16 GELU chunks, and K of 64 (GELU) and 32
         * (gated) blocks, where the chunks take the first K steps of a long main loop */
        static const int itls[7][4] = {{77, 256, 128, 0},      {20000, 1280, 2560, 0},
                                       {40000, 3072, 256, 1},  {30001, 6144, 768, 1},
                                       {4100, 1280, 256, 0},   {2101, 2560, 4096, 0},
                                       {2101, 5120, 2048, 1}}; /* M, N, K, gated */
        for (int i = 0; i < 7; i++)
            sm90_placements_same(gpu[itl], "interleaved", gpu[inl], "consumers", prec,
                                 itls[i][0], itls[i][1], itls[i][2], itls[i][3]);
        /* where a gated GELU runs: interleaved by default, on the warps with =warps, after
         * each tile with =consumers */
        long gdi = 0, gwi = 0, gci = 0;
        const long gd = gated_placement(gpu[def], &gdi), gw = gated_placement(gpu[wrp], &gwi),
                   gc = gated_placement(gpu[inl], &gci);
        char what[240];
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s: a wide gated GELU took the epilogue warps / was interleaved "
                 "%ld / %ld times by default (want 0 / 1), %ld / %ld with "
                 "VIRNUCPRO_DEBUG_SM90_EPILOGUE=warps (want 1 / 0), %ld / %ld with =consumers "
                 "(want 0 / 0)",
                 pname(prec), gd, gdi, gw, gwi, gc, gci);
        check(gd == 0 && gdi == 1 && gw == 1 && gwi == 0 && gc == 0 && gci == 0, what);
    }
    /* nothing set: on 9.0 the up-projection with its GELU takes the kernel, a plain
     * linear does not (level 1, the default) */
    vnp_backend *dflt;
    if (vnp_backend_cuda_create(0, prec, &dflt, &err))
        die("cuda backend (defaults)", &err);
    test_linear(cpu, dflt, prec, 130, 256, 128, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
    test_linear(cpu, dflt, prec, 130, 256, 128, 1, VNP_ACT_NONE, 0, 0, 0);
    {
        const long ran = vnp_backend_cuda_sm90_gemms(dflt, NULL, NULL, NULL, NULL, NULL);
        char what[200];
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s: by default %ld of a GELU and a plain linear took it (want %d)",
                 pname(prec), ran, sm90);
        check(ran == sm90, what);
        /* DNABERT-S's widths: fused (no tmp for the encoder) by default, not with =0 */
        const int fd = dflt->ops->linear_gated_gelu_fused(dflt, 3072, 768),
                  fp = port->ops->linear_gated_gelu_fused(port, 3072, 768);
        snprintf(what, sizeof what,
                 "sm_90 GEMM %s: DNABERT-S's gated up-projection fused by default %d (want %d), "
                 "with VIRNUCPRO_DEBUG_SM90_GEMM=0 %d (want 0)",
                 pname(prec), fd, sm90, fp);
        check(fd == sm90 && fp == 0, what);
    }
    dflt->ops->destroy(dflt);
    char what[200];
    snprintf(what, sizeof what, "sm_90 GEMM %s: %ld GEMMs took it with VIRNUCPRO_DEBUG_SM90_GEMM=0 "
             "(want 0)", pname(prec), vnp_backend_cuda_sm90_gemms(port, NULL, NULL, NULL, NULL, NULL));
    check(vnp_backend_cuda_sm90_gemms(port, NULL, NULL, NULL, NULL, NULL) == 0, what);
    if (!small && sm90 && prec == VNP_PREC_FP16) {
        /* fc1 at three token counts; qkv, out, fc2 of ESM-2 3B, then DNABERT-S's
         * up-projection: 128 x 128 and 128 x 256 tiles (2 x 1) beside the portable path */
        static const int Ms[3] = {16101, 16384, 32740};
        for (int m = 0; m < 3; m++) {
            time_linear(gpu[def], names[def], Ms[m], 10240, 2560, VNP_ACT_GELU_ERF, 0);
            time_linear(gpu[inl], names[inl], Ms[m], 10240, 2560, VNP_ACT_GELU_ERF, 0);
            time_linear(gpu[itl], names[itl], Ms[m], 10240, 2560, VNP_ACT_GELU_ERF, 0);
            time_linear(port, "portable", Ms[m], 10240, 2560, VNP_ACT_GELU_ERF, 0);
        }
        static const int lin[4][3] = {{10240, 2560, 0}, {7680, 2560, 0}, {2560, 2560, 1},
                                      {2560, 10240, 1}};
        for (int k = 0; k < 4; k++) {
            const vnp_act a = k == 0 ? VNP_ACT_GELU_ERF : VNP_ACT_NONE;
            time_linear(gpu[narrow], names[narrow], 16384, lin[k][0], lin[k][1], a, lin[k][2]);
            time_linear(gpu[def], names[def], 16384, lin[k][0], lin[k][1], a, lin[k][2]);
            time_linear(port, "portable", 16384, lin[k][0], lin[k][1], a, lin[k][2]);
        }
        time_gated_linear(gpu[narrow], names[narrow], 65536, 3072, 768);
        time_gated_linear(gpu[def], names[def], 65536, 3072, 768); /* (interleaved) */
        time_gated_linear(gpu[wrp], names[wrp], 65536, 3072, 768);
        time_gated_linear(gpu[inl], names[inl], 65536, 3072, 768);
        time_gated_linear(port, "portable", 65536, 3072, 768);
    }
    port->ops->destroy(port);
    for (int i = 0; i < SM90_CONFIGS; i++)
        gpu[i]->ops->destroy(gpu[i]);
}

/* VNP_OPS_ONLY=sm90time: ESM-2 3B's qkv GEMM (M = 16384) timed on the sm_90 GEMM in
 * 128 x 128 tiles (2 x 1 clusters), 128 x 256 tiles (2 x 1, 2 x 2), then on the portable
 * path, then fc1 with its GELU likewise, and last fc1 in 128 x 256 2 x 1 with the GELU
 * epilogue on the consumers (VIRNUCPRO_DEBUG_SM90_EPILOGUE=consumers; the others have
 * it on the epilogue warps), with nothing else run: the launches
 * `ncu --kernel-name regex:gemm_sm90 --launch-skip S --launch-count 1` picks from (3
 * warm-up and 20 timed launches each, in that order). After those: out + residual
 * (N 2560, K 2560), 128 x 256 2 x 1 and portable, and DNABERT-S's gated up-projection
 * (M 65536, K 768), 128 x 256 2 x 1 with the epilogue on the consumers, and portable; last
 * fc1 and the gated up-projection with the epilogue interleaved with the consumers' next
 * main loop (VIRNUCPRO_DEBUG_SM90_EPILOGUE=interleaved; the gated one's default).
 * Information only. */
static void time_gemm_sm90(void)
{
    static const char *const tiles[3] = {"128x128", "128x256", "128x256"};
    static const char *const shapes[3] = {"2x1", "2x1", "2x2"};
    vnp_backend *gpu[6];
    char names[6][40];
    vnp_error err;
    for (int i = 0; i < 6; i++) {
        setenv("VIRNUCPRO_DEBUG_SM90_GEMM", i != 3 ? "2" : "0", 1);
        if (i != 3) {
            setenv("VIRNUCPRO_DEBUG_SM90_TILE", tiles[i < 3 ? i : 1], 1);
            setenv("VIRNUCPRO_DEBUG_SM90_CLUSTER", shapes[i < 3 ? i : 1], 1);
        }
        if (i >= 4)
            setenv("VIRNUCPRO_DEBUG_SM90_EPILOGUE",
                   i == 4 ? "consumers" : "interleaved", 1);
        if (vnp_backend_cuda_create(0, VNP_PREC_FP16, &gpu[i], &err))
            die("cuda backend", &err);
        unsetenv("VIRNUCPRO_DEBUG_SM90_TILE");
        unsetenv("VIRNUCPRO_DEBUG_SM90_CLUSTER");
        unsetenv("VIRNUCPRO_DEBUG_SM90_GEMM");
        unsetenv("VIRNUCPRO_DEBUG_SM90_EPILOGUE");
        snprintf(names[i], sizeof names[i], "%s %s%s", i == 3 ? "portable" : tiles[i < 3 ? i : 1],
                 i == 3 ? "" : shapes[i < 3 ? i : 1],
                 i == 4 ? " consumers" : i == 5 ? " interleaved" : "");
    }
    for (int i = 0; i < 4; i++)
        time_linear(gpu[i], names[i], 16384, 7680, 2560, VNP_ACT_NONE, 0);
    for (int i = 0; i < 5; i++)
        time_linear(gpu[i], names[i], 16384, 10240, 2560, VNP_ACT_GELU_ERF, 0);
    /* then the consumers' own epilogues: ESM-2's out projection + residual, DNABERT-S's
     * gated up-projection (128 x 256 2 x 1, and the portable path) */
    time_linear(gpu[1], names[1], 16384, 2560, 2560, VNP_ACT_NONE, 1);
    time_linear(gpu[3], names[3], 16384, 2560, 2560, VNP_ACT_NONE, 1);
    time_gated_linear(gpu[4], names[4], 65536, 3072, 768);
    time_gated_linear(gpu[3], names[3], 65536, 3072, 768);
    time_linear(gpu[5], names[5], 16384, 10240, 2560, VNP_ACT_GELU_ERF, 0);
    time_gated_linear(gpu[5], names[5], 65536, 3072, 768);
    for (int i = 0; i < 6; i++)
        gpu[i]->ops->destroy(gpu[i]);
}

/* ---- probes of cuBLASLt at the encoders' GEMM shapes (information only) ---- */

/* One GEMM as the backend describes it: D[N x M] = op_T(A[K x N]) B[K x M] with the FP16
 * bias epilogue, A/B of type t, FP16 C/D (BF16 for BF16 A/B); for E4M3 operands, scale
 * mode `sm` for both with
 * the scales at sv, and FAST_ACCUM as `fast`. */
typedef struct probe_gemm {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
} probe_gemm;

static void probe_gemm_make(probe_gemm *g, cudaDataType_t t, int M, int N, int K,
                            const void *bias, cublasLtMatmulMatrixScale_t sm, const float *sv,
                            int8_t fast)
{
    cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    cudaDataType_t bt = CUDA_R_16F;
    cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                   sizeof bias);
    if (t == CUDA_R_8F_E4M3) {
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                       sizeof bt);
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &sm, sizeof sm);
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &sm, sizeof sm);
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sv,
                                       sizeof sv);
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sv,
                                       sizeof sv);
        cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast,
                                       sizeof fast);
    }
    cublasLtMatrixLayoutCreate(&g->a, t, K, N, K);
    cublasLtMatrixLayoutCreate(&g->b, t, K, M, K);
    cublasLtMatrixLayoutCreate(&g->c, t == CUDA_R_16BF ? CUDA_R_16BF : CUDA_R_16F, N, M, N);
}

static void probe_gemm_free(probe_gemm *g)
{
    cublasLtMatrixLayoutDestroy(g->a);
    cublasLtMatrixLayoutDestroy(g->b);
    cublasLtMatrixLayoutDestroy(g->c);
    cublasLtMatmulDescDestroy(g->desc);
}

/* Up to `max` algorithms of the heuristic for g (their number, 0 when it refuses). */
static int probe_gemm_algos_of(cublasLtHandle_t lt, const probe_gemm *g, size_t wsz,
                               cublasLtMatmulHeuristicResult_t *res, int max)
{
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz,
                                         sizeof wsz);
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(lt, g->desc, g->a, g->b, g->c, g->c, pref, max, res,
                                       &found) != CUBLAS_STATUS_SUCCESS)
        found = 0;
    cublasLtMatmulPreferenceDestroy(pref);
    return found;
}

/* Seconds for 10 runs of g with `algo` (3 untimed first), D = C = d (beta 1 with C); 0 when
 * a run fails. */
static double probe_gemm_time(cublasLtHandle_t lt, const probe_gemm *g,
                              const cublasLtMatmulAlgo_t *algo, const void *A, const void *B,
                              void *d, int with_c, void *ws, size_t wsz)
{
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const float alpha = 1.0f, beta = with_c ? 1.0f : 0.0f;
    int ok = 1;
    for (int r = 0; r < 13 && ok; r++) {
        if (r == 3)
            cudaEventRecord(e0, 0);
        ok = cublasLtMatmul(lt, g->desc, &alpha, A, g->a, B, g->b, &beta, d, g->c, d, g->c, algo,
                            ws, wsz, 0) == CUBLAS_STATUS_SUCCESS;
    }
    float ms = 0;
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ok ? ms * 1e-3 : 0.0;
}

/* n bytes at dst (device), the 1 MiB pattern at src repeated. */
static void probe_fill(void *dst, size_t n, const void *src)
{
    for (size_t off = 0; off < n; off += 1u << 20)
        cudaMemcpy((char *)dst + off, src, n - off < (1u << 20) ? n - off : (1u << 20),
                   cudaMemcpyHostToDevice);
}

/* The probes' operands, large enough for every encoder shape they time (A: weights up to
 * 10240 x 2560, B: activations up to 65536 x 3072, C/D up to 65536 x 6144, FP16 or BF16),
 * filled with small normal values, and a workspace of PROBE_WS bytes: 0, or 1 (none
 * left allocated) when the GPU lacks the memory. */
#define PROBE_WS ((size_t)64 << 20)
static int probe_operands(void **da, void **db, void **dd, void **ws)
{
    const size_t maxa = (size_t)10240 * 2560 * 2, maxb = (size_t)65536 * 3072 * 2,
                 maxd = (size_t)65536 * 6144 * 2;
    *da = *db = *dd = *ws = NULL;
    if (cudaMalloc(da, maxa) || cudaMalloc(db, maxb) || cudaMalloc(dd, maxd) ||
        cudaMalloc(ws, PROBE_WS)) {
        cudaFree(*da);
        cudaFree(*db);
        cudaFree(*dd);
        cudaFree(*ws);
        *da = *db = *dd = *ws = NULL;
        return 1;
    }
    uint16_t *h = malloc((1u << 20) * sizeof *h);
    for (int i = 0; i < (1 << 20); i++)
        h[i] = vnp_f32_to_f16(nrand() * 0.05f);
    probe_fill(*da, maxa, h);
    probe_fill(*db, maxb, h);
    probe_fill(*dd, maxd, h);
    free(h);
    return 0;
}

static void probe_operands_free(void *da, void *db, void *dd, void *ws)
{
    cudaFree(da);
    cudaFree(db);
    cudaFree(dd);
    cudaFree(ws);
}

/* How much the GEMM algorithm choice could still give: for each encoder GEMM shape (FP16
 * in and out, FP32 accumulation, the bias epilogue; C = the residual where the layer adds
 * one), every algorithm cuBLASLt's heuristic offers, timed; the heuristic's first (what
 * the backend runs) against the fastest. */
static void probe_gemm_algos(void)
{
    static const struct {
        const char *what;
        int M, N, K, res, bf16;
    } sh[] = {
        {"esm qkv", 16384, 7680, 2560, 0, 0},   {"esm out", 16384, 2560, 2560, 1, 0},
        {"esm fc1", 16384, 10240, 2560, 0, 0},  {"esm fc2", 16384, 2560, 10240, 1, 0},
        {"odd out", 16101, 2560, 2560, 1, 0},   {"odd fc2", 16101, 2560, 10240, 1, 0},
        {"bf16 qkv", 16384, 7680, 2560, 0, 1},  {"bf16 out", 16384, 2560, 2560, 1, 1},
        {"bf16 fc1", 16384, 10240, 2560, 0, 1}, {"bf16 fc2", 16384, 2560, 10240, 1, 1},
        {"dna qkv", 65536, 2304, 768, 0, 0},    {"dna out", 65536, 768, 768, 0, 0},
        {"dna gated", 65536, 6144, 768, 0, 0},  {"dna wo", 65536, 768, 3072, 0, 0},
    };
    const size_t wsz = PROBE_WS;
    void *da, *db, *dd, *ws;
    if (probe_operands(&da, &db, &dd, &ws)) {
        printf("gemm-algos: not enough GPU memory, skipped\n");
    } else {
        cublasLtHandle_t lt;
        cublasLtCreate(&lt);
        for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
            const int M = sh[s].M, N = sh[s].N, K = sh[s].K;
            probe_gemm g;
            /* (the bias: A's first N values, read-only) */
            probe_gemm_make(&g, sh[s].bf16 ? CUDA_R_16BF : CUDA_R_16F, M, N, K, da,
                            CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
                            NULL, 0);
            cublasLtMatmulHeuristicResult_t res[16];
            int found = probe_gemm_algos_of(lt, &g, wsz, res, 16), besti = -1;
            double first = 0, best = 0, tfs[16] = {0};
            for (int i = 0; i < found; i++) {
                double sec = probe_gemm_time(lt, &g, &res[i].algo, da, db, dd, sh[s].res, ws, wsz);
                double tf = sec > 0 ? 2.0 * M * N * K * 10 / sec / 1e12 : 0;
                tfs[i] = tf;
                if (i == 0)
                    first = tf;
                if (tf > best) {
                    best = tf;
                    besti = i;
                }
            }
            printf("gemm-algos %-9s M=%d N=%d K=%d%s: heuristic's first %.0f TFLOP/s, best %.0f "
                   "(algorithm %d of %d) -> %+.1f %%\n",
                   sh[s].what, M, N, K, sh[s].res ? " +C" : "", first, best, besti, found,
                   first > 0 ? 100.0 * (best / first - 1.0) : 0.0);
            /* what tells the algorithms apart (for a fixed choice rule): i:TFLOP/s
             * w(aves) t(ile) s(tages) k(split-K) r(eduction) z(swizzle) c(luster) */
            printf("gemm-algos %-9s configs:", sh[s].what);
            for (int i = 0; i < found; i++) {
                int v[7] = {0};
                const cublasLtMatmulAlgoConfigAttributes_t at[7] = {
                    CUBLASLT_ALGO_CONFIG_TILE_ID,          CUBLASLT_ALGO_CONFIG_STAGES_ID,
                    CUBLASLT_ALGO_CONFIG_SPLITK_NUM,       CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                    CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,    CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID,
                    CUBLASLT_ALGO_CONFIG_ID};
                for (int a = 0; a < 7; a++) {
                    size_t wr = 0;
                    uint16_t u = 0; /* the cluster shape is a uint16_t */
                    if (at[a] == CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID)
                        v[a] = cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, at[a], &u,
                                                                    sizeof u, &wr)
                                   ? -1
                                   : u;
                    else
                        cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, at[a], &v[a],
                                                             sizeof v[a], &wr);
                }
                printf(" %d:%.0f/w%.2f/id%d/t%d/s%d/k%d/r%d/z%d/c%d", i, tfs[i], res[i].wavesCount,
                       v[6], v[0], v[1], v[2], v[3], v[4], v[5]);
            }
            printf("\n");
            probe_gemm_free(&g);
        }
        cublasLtDestroy(lt);
    }
    probe_operands_free(da, db, dd, ws);
}

/* The data for a fixed algorithm table (VNP_GEMM_SURVEY=1): for each encoder GEMM shape,
 * every configuration the heuristic offers at any of several token counts near a budget,
 * each timed at every one of those counts. One line per configuration: its attributes
 * (algo, tile, stages, split-K, reduction, swizzle, custom, inner shape, cluster), then
 * TFLOP/s per count, '-' where cuBLASLt refuses it, '*' marking the heuristic's first. */
enum { SURVEY_ATTRS = 9, SURVEY_MS = 5, SURVEY_CFGS = 40 };
static const cublasLtMatmulAlgoConfigAttributes_t survey_attr[SURVEY_ATTRS] = {
    CUBLASLT_ALGO_CONFIG_ID,           CUBLASLT_ALGO_CONFIG_TILE_ID,
    CUBLASLT_ALGO_CONFIG_STAGES_ID,    CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
    CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
    CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID,
    CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID};

static void survey_attrs(const cublasLtMatmulAlgo_t *a, int *v)
{
    for (int i = 0; i < SURVEY_ATTRS; i++) {
        size_t wr = 0;
        v[i] = -1;
        if (survey_attr[i] == CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID ||
            survey_attr[i] == CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID) { /* (uint16_t) */
            uint16_t u = 0;
            if (cublasLtMatmulAlgoConfigGetAttribute(a, survey_attr[i], &u, sizeof u, &wr) ==
                CUBLAS_STATUS_SUCCESS)
                v[i] = u;
        } else if (cublasLtMatmulAlgoConfigGetAttribute(a, survey_attr[i], &v[i], sizeof v[i],
                                                        &wr) != CUBLAS_STATUS_SUCCESS) {
            v[i] = -1;
        }
    }
}

static void probe_gemm_survey(void)
{
    static const struct {
        const char *what;
        int N, K, res, bf16, M[SURVEY_MS];
    } sh[] = {
        {"esm qkv", 7680, 2560, 0, 0, {16101, 16250, 16380, 32590, 32740}},
        {"esm out", 2560, 2560, 1, 0, {16101, 16250, 16380, 32590, 32740}},
        {"esm fc1", 10240, 2560, 0, 0, {16101, 16250, 16380, 32590, 32740}},
        {"esm fc2", 2560, 10240, 1, 0, {16101, 16250, 16380, 32590, 32740}},
        {"bf16 qkv", 7680, 2560, 0, 1, {16101, 16380, 32740, 0, 0}},
        {"bf16 out", 2560, 2560, 1, 1, {16101, 16380, 32740, 0, 0}},
        {"bf16 fc1", 10240, 2560, 0, 1, {16101, 16380, 32740, 0, 0}},
        {"bf16 fc2", 2560, 10240, 1, 1, {16101, 16380, 32740, 0, 0}},
        {"dna qkv", 2304, 768, 0, 0, {64900, 65300, 65500, 0, 0}},
        {"dna out", 768, 768, 0, 0, {64900, 65300, 65500, 0, 0}},
        {"dna gated", 6144, 768, 0, 0, {64900, 65300, 65500, 0, 0}},
        {"dna wo", 768, 3072, 0, 0, {64900, 65300, 65500, 0, 0}},
    };
    const size_t wsz = PROBE_WS;
    void *da, *db, *dd, *ws;
    if (probe_operands(&da, &db, &dd, &ws)) {
        printf("gemm-survey: not enough GPU memory, skipped\n");
        goto out;
    }
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        const int N = sh[s].N, K = sh[s].K;
        const cudaDataType_t t = sh[s].bf16 ? CUDA_R_16BF : CUDA_R_16F;
        static cublasLtMatmulAlgo_t cfg[SURVEY_CFGS];
        static int cv[SURVEY_CFGS][SURVEY_ATTRS], first[SURVEY_MS];
        int ncfg = 0, nm = 0;
        while (nm < SURVEY_MS && sh[s].M[nm])
            nm++;
        for (int m = 0; m < nm; m++) { /* the union of what the heuristic offers */
            probe_gemm g;
            probe_gemm_make(&g, t, sh[s].M[m], N, K, da, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
                            NULL, 0);
            cublasLtMatmulHeuristicResult_t res[16];
            int found = probe_gemm_algos_of(lt, &g, wsz, res, 16);
            first[m] = -1;
            for (int i = 0; i < found; i++) {
                int v[SURVEY_ATTRS], j;
                survey_attrs(&res[i].algo, v);
                for (j = 0; j < ncfg && memcmp(cv[j], v, sizeof v); j++)
                    ;
                if (j == ncfg && ncfg < SURVEY_CFGS) {
                    cfg[ncfg] = res[i].algo;
                    memcpy(cv[ncfg++], v, sizeof v);
                }
                if (i == 0)
                    first[m] = j;
            }
            probe_gemm_free(&g);
        }
        for (int j = 0; j < ncfg; j++) {
            printf("gemm-survey %-9s N=%d K=%d%s", sh[s].what, N, K, sh[s].res ? " +C" : "");
            for (int a = 0; a < SURVEY_ATTRS; a++)
                printf("%s%d", a ? "," : " cfg=", cv[j][a]);
            printf(" :");
            for (int m = 0; m < nm; m++) {
                const int M = sh[s].M[m];
                probe_gemm g;
                probe_gemm_make(&g, t, M, N, K, da, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
                                NULL, 0);
                cublasLtMatmulHeuristicResult_t chk;
                double tf = 0;
                if (cublasLtMatmulAlgoCheck(lt, g.desc, g.a, g.b, g.c, g.c, &cfg[j], &chk) ==
                        CUBLAS_STATUS_SUCCESS &&
                    chk.workspaceSize <= wsz) {
                    double sec = probe_gemm_time(lt, &g, &cfg[j], da, db, dd, sh[s].res, ws, wsz);
                    tf = sec > 0 ? 2.0 * M * N * K * 10 / sec / 1e12 : 0;
                }
                if (tf > 0)
                    printf(" M%d=%.0f%s", M, tf, first[m] == j ? "*" : "");
                else
                    printf(" M%d=-", M);
                probe_gemm_free(&g);
                fflush(stdout); /* (a run on an H100 died in here, place unknown: see RESULTS) */
            }
            printf("\n");
        }
    }
    cublasLtDestroy(lt);
out:
    probe_operands_free(da, db, dd, ws);
}

/* The FP8 GEMM's own ceiling at ESM-2 3B's shapes (M = 16384 tokens), by scale mode:
 * what the backend runs (E4M3 A and B with outer-vector scales: per output channel, per
 * token) with and without FAST_ACCUM, and one scalar scale per operand (the classic
 * per-tensor FP8 GEMM), with and without FAST_ACCUM; FP16 beside them. The heuristic's
 * first algorithm, 10 timed runs: how much of FP8's 2x the GEMMs themselves give. */
static void probe_fp8_gemm_modes(void)
{
    static const struct {
        const char *what;
        int N, K, res;
    } sh[] = {{"qkv", 7680, 2560, 0}, {"out", 2560, 2560, 1}, {"fc1", 10240, 2560, 0},
              {"fc2", 2560, 10240, 1}};
    static const struct {
        const char *name;
        cudaDataType_t t;
        cublasLtMatmulMatrixScale_t sm;
        int8_t fast;
    } mode[] = {
        {"fp16", CUDA_R_16F, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, 0},
        {"fp8 outer-vec", CUDA_R_8F_E4M3, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, 0},
        {"fp8 outer-vec fast-accum", CUDA_R_8F_E4M3, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, 1},
        {"fp8 scalar", CUDA_R_8F_E4M3, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, 0},
        {"fp8 scalar fast-accum", CUDA_R_8F_E4M3, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, 1},
    };
    const int M = 16384;
    const size_t maxa = (size_t)10240 * 2560, maxb = (size_t)M * 10240, wsz = (size_t)64 << 20;
    unsigned char *h8 = malloc(1u << 20);
    uint16_t *h16 = malloc((1u << 20) * sizeof *h16);
    float *scales = malloc((size_t)M * sizeof *scales);
    for (int i = 0; i < (1 << 20); i++) {
        /* E4M3 with exponent field 4..11 (no NaN), random sign and mantissa */
        h8[i] = (unsigned char)(((urand() < 0.5) << 7) | ((4 + (int)(urand() * 8)) << 3) |
                                (int)(urand() * 8));
        h16[i] = vnp_f32_to_f16(nrand() * 0.05f);
    }
    for (int i = 0; i < M; i++)
        scales[i] = 1.0f / 64;
    void *a8 = NULL, *b8 = NULL, *a16 = NULL, *b16 = NULL, *dd = NULL, *ws = NULL;
    float *sv = NULL;
    if (cudaMalloc(&a8, maxa) || cudaMalloc(&b8, maxb) || cudaMalloc(&a16, maxa * 2) ||
        cudaMalloc(&b16, maxb * 2) || cudaMalloc(&dd, maxb * 2) ||
        cudaMalloc((void **)&sv, (size_t)M * sizeof(float)) || cudaMalloc(&ws, wsz)) {
        printf("fp8-gemm: not enough GPU memory, skipped\n");
    } else {
        probe_fill(a8, maxa, h8);
        probe_fill(b8, maxb, h8);
        probe_fill(a16, maxa * 2, h16);
        probe_fill(b16, maxb * 2, h16);
        probe_fill(dd, maxb * 2, h16);
        cudaMemcpy(sv, scales, (size_t)M * sizeof(float), cudaMemcpyHostToDevice);
        cublasLtHandle_t lt;
        cublasLtCreate(&lt);
        for (size_t m = 0; m < sizeof mode / sizeof mode[0]; m++) {
            const int f8 = mode[m].t == CUDA_R_8F_E4M3;
            double flop = 0, sec = 0;
            char line[256];
            int len = snprintf(line, sizeof line, "fp8-gemm %-25s", mode[m].name);
            for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
                probe_gemm g;
                probe_gemm_make(&g, mode[m].t, M, sh[s].N, sh[s].K, a16, mode[m].sm, sv,
                                mode[m].fast);
                cublasLtMatmulHeuristicResult_t res;
                double t = probe_gemm_algos_of(lt, &g, wsz, &res, 1)
                               ? probe_gemm_time(lt, &g, &res.algo, f8 ? a8 : a16,
                                                 f8 ? b8 : b16, dd, sh[s].res, ws, wsz)
                               : 0.0;
                double f = 2.0 * M * sh[s].N * sh[s].K * 10;
                if (t > 0) {
                    flop += f;
                    sec += t;
                    len += snprintf(line + len, sizeof line - (size_t)len, " %s %.0f",
                                    sh[s].what, f / t / 1e12);
                } else {
                    len += snprintf(line + len, sizeof line - (size_t)len, " %s n/a",
                                    sh[s].what);
                }
                probe_gemm_free(&g);
            }
            printf("%s TFLOP/s; the four: %.0f TFLOP/s\n", line, sec > 0 ? flop / sec / 1e12 : 0.0);
        }
        cublasLtDestroy(lt);
    }
    cudaFree(a8);
    cudaFree(b8);
    cudaFree(a16);
    cudaFree(b16);
    cudaFree(dd);
    cudaFree(sv);
    cudaFree(ws);
    free(h8);
    free(h16);
    free(scales);
}

int main(void)
{
    vnp_error err;
    vnp_backend *cpu;
    /* line-buffered: a run killed at the device's time limit keeps what it printed */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (vnp_backend_cpu_create(0, &cpu, &err))
        die("cpu backend", &err);
    static const int lens_a[] = {1, 7, 64, 65, 130, 300, 2, 129};
    static const int lens_b[] = {42, 40, 38, 51, 12, 42, 168, 166};
    vnp_precision precs[3] = {VNP_PREC_FP32, VNP_PREC_FP16, VNP_PREC_BF16};
    /* VNP_OPS_ONLY=sm90: the fused sm_90 GEMM's checks and timings alone (FP16, BF16), when
     * device time is short; sm90small: its small shapes only, no timings (for
     * compute-sanitizer); attn: the attention kernels' agreement checks alone (attntime:
     * their timings alone, for ncu); ln: the
     * LayerNorm checks and timings alone */
    const char *only = getenv("VNP_OPS_ONLY");
    if (only && !strcmp(only, "sm90time")) {
        time_gemm_sm90();
        cpu->ops->destroy(cpu);
        return 0;
    }
    if (only && !strcmp(only, "attntime")) {
        /* attention timings alone, for ncu (run.sh attnprof): 23 launches a batch shape (3
         * warm-up, 20 timed), in this order: the default kernels at 42 and 168 tokens, then
         * the tiled kernel (VIRNUCPRO_DEBUG_SCALAR_KERNELS) at 42 and 168 */
        vnp_backend *g, *tiled;
        if (vnp_backend_cuda_create(0, VNP_PREC_FP16, &g, &err))
            die("cuda backend", &err);
        time_attention(g, "default", 42, 40);
        time_attention(g, "default", 168, 40);
        g->ops->destroy(g);
        tiled = tiled_backend(VNP_PREC_FP16);
        time_attention(tiled, "tiled", 42, 40);
        time_attention(tiled, "tiled", 168, 40);
        tiled->ops->destroy(tiled);
        cpu->ops->destroy(cpu);
        return 0;
    }
    if (only && !strcmp(only, "attn")) {
        /* the one-copy attention kernel's orders and head groupings against the tiled
         * kernel (fp16, bf16), alone: seconds, where the whole op test takes minutes */
        static const int l1[] = {42, 1, 64, 17, 33}, l4[] = {256, 193, 1, 255, 64};
        /* (at most 32 and 48 tokens: two warps a block take one and two rounds of slices) */
        static const int l0[] = {17, 1, 32, 9, 30}, l5[] = {48, 47, 3};
        for (int p = 1; p < 3; p++)
            for (int pe = 0; pe < 3; pe++) {
                vnp_posenc pos = pe == 0 ? VNP_POS_ROTARY : pe == 1 ? VNP_POS_ALIBI : VNP_POS_NONE;
                test_attention_kernels_agree(precs[p], pos, l0, 5, 3);
                test_attention_kernels_agree(precs[p], pos, l5, 3, 12);
                test_attention_kernels_agree(precs[p], pos, l1, 5, 3);
                test_attention_kernels_agree(precs[p], pos, l4, 5, 2);
            }
        /* and the default kernels against the CPU (the agreement above cannot see a change
         * that both kernels share, e.g. the rotary or the score tile), each set's longest
         * sequence picking the kernel: lens_a the tiled one (300 tokens); l0 one key tile,
         * two warps; l1 one tile, four warps; l7 two tiles; lens_b and l6 (contig-like)
         * three; l4 four */
        static const int l6[] = {168, 166, 9, 31, 100, 171}, l7[] = {128, 65, 100, 3};
        static const struct {
            const int *lens;
            int nseq, heads;
            vnp_posenc pos;
        } sets[] = {
            {lens_a, 8, 2, VNP_POS_ROTARY}, {lens_a, 8, 3, VNP_POS_ALIBI},
            {lens_a, 8, 2, VNP_POS_NONE},   {lens_b, 8, 4, VNP_POS_ROTARY},
            {lens_b, 8, 12, VNP_POS_ALIBI}, {l0, 5, 3, VNP_POS_ROTARY},
            {l0, 5, 12, VNP_POS_ALIBI},     {l6, 6, 3, VNP_POS_ROTARY},
            {l1, 5, 3, VNP_POS_ROTARY},     {l7, 4, 12, VNP_POS_ALIBI},
            {l7, 4, 2, VNP_POS_NONE},       {l4, 5, 2, VNP_POS_ROTARY},
        };
        for (int p = 1; p < 3; p++) {
            vnp_backend *g;
            if (vnp_backend_cuda_create(0, precs[p], &g, &err))
                die("cuda backend", &err);
            for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
                test_attention(cpu, g, precs[p], sets[i].pos, sets[i].lens, sets[i].nseq,
                               sets[i].heads);
            g->ops->destroy(g);
        }
        /* timed: DNABERT-S-like (28 tokens, 12 heads) and ESM-2-like (42 and 64, 40 heads)
         * batches, four warps a block and two (the default takes two at 28); ESM-2's
         * contig proteins (168) */
        for (int w = 0; w < 2; w++) {
            vnp_backend *g;
            char *outer = env_take("VIRNUCPRO_DEBUG_ATTN_WARPS");
            setenv("VIRNUCPRO_DEBUG_ATTN_WARPS", w ? "2" : "4", 1);
            vnp_code grc = vnp_backend_cuda_create(0, VNP_PREC_FP16, &g, &err);
            env_give_back("VIRNUCPRO_DEBUG_ATTN_WARPS", outer);
            if (grc)
                die("cuda backend", &err);
            time_attention(g, w ? "2-warps" : "4-warps", 28, 12);
            time_attention(g, w ? "2-warps" : "4-warps", 42, 40);
            time_attention(g, w ? "2-warps" : "4-warps", 64, 40);
            if (!w) /* (contig proteins: eight warps whatever the variable says) */
                time_attention(g, "default", 168, 40);
            g->ops->destroy(g);
        }
        cpu->ops->destroy(cpu);
        printf("op tests (attention only): %d checks, %d failed\n", g_checks, g_failed);
        return g_failed ? 1 : 0;
    }
    if (only && !strcmp(only, "ln")) {
        /* (the default backends below get the default layout whatever the caller set) */
        char *ln_outer = env_take("VIRNUCPRO_DEBUG_LN_ROWS");
        /* LayerNorm alone (the warp kernel's rows with and without a residual, in place
         * and not, the shared-memory kernel's odd width; FP16 and BF16), then timed at
         * both encoders' shapes */
        for (int p = 0; p < 3; p++) {
            vnp_backend *gpu;
            if (vnp_backend_cuda_create(0, precs[p], &gpu, &err))
                die("cuda backend", &err);
            test_layernorm(cpu, gpu, precs[p], 50, 128, 0, 0);
            test_layernorm(cpu, gpu, precs[p], 50, 768, 1, 0);
            test_layernorm(cpu, gpu, precs[p], 50, 768, 0, 1);
            test_layernorm(cpu, gpu, precs[p], 33, 2560, 0, 1);
            test_layernorm(cpu, gpu, precs[p], 9, 2560, 1, 0);
            test_layernorm(cpu, gpu, precs[p], 21, 130, 1, 1);
            /* the rows held as floats (VIRNUCPRO_DEBUG_LN_ROWS=floats): the same checks,
             * and the A/B timing beside the default (rows without a residual as loaded) */
            vnp_backend *fl;
            char *outer = env_take("VIRNUCPRO_DEBUG_LN_ROWS");
            setenv("VIRNUCPRO_DEBUG_LN_ROWS", "floats", 1);
            vnp_code frc = vnp_backend_cuda_create(0, precs[p], &fl, &err);
            env_give_back("VIRNUCPRO_DEBUG_LN_ROWS", outer);
            if (frc)
                die("cuda backend (LayerNorm rows as floats)", &err);
            test_layernorm(cpu, fl, precs[p], 33, 2560, 0, 1);
            test_layernorm(cpu, fl, precs[p], 50, 768, 0, 0);
            ln_layouts_agree(gpu, fl, 1000, 2560, 0);
            ln_layouts_agree(gpu, fl, 1000, 768, 0);
            ln_layouts_agree(gpu, fl, 300, 4096, 1); /* (FP16/BF16: 16 and 24 vectors a lane) */
            ln_layouts_agree(gpu, fl, 300, 6144, 1);
            if (precs[p] != VNP_PREC_FP32) {
                time_layernorm(gpu, "default", 16384, 2560, 0);
                time_layernorm(fl, "floats", 16384, 2560, 0);
                time_layernorm(gpu, "default", 65536, 768, 1);
            }
            fl->ops->destroy(fl);
            gpu->ops->destroy(gpu);
        }
        env_give_back("VIRNUCPRO_DEBUG_LN_ROWS", ln_outer);
        cpu->ops->destroy(cpu);
        printf("op tests (layernorm only): %d checks, %d failed\n", g_checks, g_failed);
        return g_failed ? 1 : 0;
    }
    if (only && (!strcmp(only, "sm90") || !strcmp(only, "sm90small"))) {
        const int small = !strcmp(only, "sm90small");
        test_gemm_sm90(cpu, VNP_PREC_FP16, small);
        test_gemm_sm90(cpu, VNP_PREC_BF16, small);
        cpu->ops->destroy(cpu);
        printf("op tests (sm90 only): %d checks, %d failed\n", g_checks, g_failed);
        return g_failed ? 1 : 0;
    }
    for (int p = 0; p < 3; p++) {
        vnp_backend *gpu;
        if (vnp_backend_cuda_create(0, precs[p], &gpu, &err))
            die("cuda backend", &err);
        if (p == 0) {
            printf("device: %s\n", gpu->name);
            test_device(gpu);
        }
        test_embedding(cpu, gpu, precs[p]);
        if (precs[p] != VNP_PREC_FP32) {
            vnp_backend *gp;
            /* (cuBLASLt for every GEMM: the sm_90 GEMM would take fc1 on 9.0) */
            setenv("VIRNUCPRO_DEBUG_GEMM_PICKS", "1", 1);
            setenv("VIRNUCPRO_DEBUG_SM90_GEMM", "0", 1);
            if (vnp_backend_cuda_create(0, precs[p], &gp, &err))
                die("cuda backend (GEMM picks)", &err);
            unsetenv("VIRNUCPRO_DEBUG_GEMM_PICKS");
            unsetenv("VIRNUCPRO_DEBUG_SM90_GEMM");
            test_gemm_pick(cpu, gp, precs[p]);
            gp->ops->destroy(gp);
            /* (its small cases only: the packed-batch shapes and the timings are the sm90
             * stage's, VNP_OPS_ONLY=sm90) */
            test_gemm_sm90(cpu, precs[p], 1);
        }
        test_linear(cpu, gpu, precs[p], 77, 96, 128, 1, VNP_ACT_NONE, 0, 0, 0);
        test_linear(cpu, gpu, precs[p], 130, 384, 128, 1, VNP_ACT_NONE, 0, 0, 0);
        test_linear(cpu, gpu, precs[p], 129, 128, 256, 1, VNP_ACT_NONE, 1, 1, 0);
        test_linear(cpu, gpu, precs[p], 64, 200, 96, 1, VNP_ACT_GELU_ERF, 0, 0, 0);
        test_linear(cpu, gpu, precs[p], 64, 200, 96, 0, VNP_ACT_NONE, 0, 0, 0);
        test_linear(cpu, gpu, precs[p], 33, 64, 64, 1, VNP_ACT_RELU, 0, 0, 0);
        test_linear(cpu, gpu, precs[p], 33, 64, 64, 1, VNP_ACT_GELU_ERF, 1, 0, 0);
        test_linear(cpu, gpu, precs[p], 33, 64, 64, 0, VNP_ACT_RELU, 1, 1, 0);
        test_layernorm(cpu, gpu, precs[p], 50, 128, 0, 0);
        test_layernorm(cpu, gpu, precs[p], 50, 768, 1, 0);
        test_layernorm(cpu, gpu, precs[p], 33, 2560, 0, 1);
        test_layernorm(cpu, gpu, precs[p], 21, 130, 1, 1); /* not whole vectors: the scalar path */
        test_gated_gelu(cpu, gpu, precs[p], 97, 300);
        test_gated_gelu(cpu, gpu, precs[p], 45, 3072);
        test_linear(cpu, gpu, precs[p], 33, 100, 64, 1, VNP_ACT_GELU_ERF, 1, 0, 0); /* odd size */
        test_attention(cpu, gpu, precs[p], VNP_POS_ROTARY, lens_a, 8, 2);
        test_attention(cpu, gpu, precs[p], VNP_POS_ALIBI, lens_a, 8, 3);
        test_attention(cpu, gpu, precs[p], VNP_POS_NONE, lens_a, 8, 2);
        test_attention(cpu, gpu, precs[p], VNP_POS_ROTARY, lens_b, 8, 4);
        test_attention(cpu, gpu, precs[p], VNP_POS_ALIBI, lens_b, 8, 12);
        test_linear(cpu, gpu, precs[p], 37, 512, 2048, 1, VNP_ACT_RELU, 0, 0, 1);
        test_linear(cpu, gpu, precs[p], 37, 2, 512, 1, VNP_ACT_NONE, 0, 0, 1);
        test_linear(cpu, gpu, precs[p], 65, 96, 128, 1, VNP_ACT_GELU_ERF, 1, 0, 1);
        test_linear(cpu, gpu, precs[p], 65, 96, 96, 0, VNP_ACT_RELU, 1, 1, 1);
        test_linear(cpu, gpu, precs[p], 33, 64, 64, 1, VNP_ACT_NONE, 1, 1, 1);
        test_linear_mixed(gpu, precs[p]);
        test_scale_shift(cpu, gpu, precs[p]);
        for (int t = 0; t < 4; t++)
            test_gemm(cpu, gpu, precs[p], t & 1, t >> 1, 67, 130, 45, 0.75f, t ? 0.5f : 0.0f);
        test_gemm(cpu, gpu, precs[p], 1, 0, 2, 512, 32, 1.0f, 0.0f);    /* dW2 */
        test_gemm(cpu, gpu, precs[p], 0, 0, 32, 512, 2, 1.0f, 0.0f);    /* dD */
        test_gemm(cpu, gpu, precs[p], 1, 0, 512, 3328, 32, 1.0f, 0.0f); /* dW1 */
        if (precs[p] == VNP_PREC_FP32) {
            test_train_ops(cpu, gpu, 32, 512); /* train.py's batch and width */
            test_train_ops(cpu, gpu, 7, 130);  /* a last short batch, an odd width */
        }
        test_mean_pool(cpu, gpu, precs[p]);
        test_guard(gpu, precs[p]);
        test_async(gpu, precs[p]);
        if (precs[p] != VNP_PREC_FP32) {
            static const int l1[] = {42, 1, 64, 17, 33}, l2[] = {65, 128, 3, 100},
                             l3[] = {168, 166, 42, 129, 7}, l4[] = {256, 193, 1, 255, 64},
                             l0[] = {17, 1, 32, 9, 30};
            for (int pe = 0; pe < 3; pe++) {
                vnp_posenc pos = pe == 0 ? VNP_POS_ROTARY : pe == 1 ? VNP_POS_ALIBI : VNP_POS_NONE;
                test_attention_kernels_agree(precs[p], pos, l0, 5, 3);
                test_attention_kernels_agree(precs[p], pos, l1, 5, 3);
                test_attention_kernels_agree(precs[p], pos, l2, 4, 3);
                test_attention_kernels_agree(precs[p], pos, l3, 5, 2);
                test_attention_kernels_agree(precs[p], pos, l4, 5, 2);
            }
        }
        if (precs[p] == VNP_PREC_FP16) {
            time_attention(gpu, "default", 42, 40);
            time_attention(gpu, "default", 168, 40);
            time_attention(gpu, "default", 1026, 40);
            vnp_backend *tiled = tiled_backend(precs[p]);
            time_attention(tiled, "tiled", 42, 40);
            time_attention(tiled, "tiled", 168, 40);
            tiled->ops->destroy(tiled);
        }
        gpu->ops->destroy(gpu);
    }
    cpu->ops->destroy(cpu);
    test_poison();
    /* FP8 GEMMs against the CPU emulation, both weight-scale rules */
    static const vnp_precision p8[2] = {VNP_PREC_FP8, VNP_PREC_FP8_TENSOR};
    vnp_backend *g16;
    if (vnp_backend_cuda_create(0, VNP_PREC_FP16, &g16, &err))
        die("cuda backend", &err);
    for (int p = 0; p < 2; p++) {
        vnp_backend *c8, *g8;
        if (vnp_backend_cpu_create_emulating(0, p8[p], &c8, &err))
            die("cpu fp8 emulation", &err);
        if (vnp_backend_cuda_create(0, p8[p], &g8, &err))
            die("cuda fp8 backend", &err);
        test_linear_fp8(c8, g8, g16, p8[p], 77, 96, 128, 1, VNP_ACT_NONE, 0);
        test_linear_fp8(c8, g8, g16, p8[p], 130, 384, 128, 1, VNP_ACT_NONE, 1);
        test_linear_fp8(c8, g8, g16, p8[p], 64, 208, 96, 1, VNP_ACT_GELU_ERF, 0);
        test_linear_fp8(c8, g8, g16, p8[p], 33, 64, 64, 0, VNP_ACT_NONE, 1);
        test_linear_fp8(c8, g8, g16, p8[p], 257, 2560, 2560, 1, VNP_ACT_NONE, 1);
        test_linear_fp8(c8, g8, g16, p8[p], 100, 10240, 2560, 1, VNP_ACT_GELU_ERF, 0);
        test_fp8_codes(g8, "gpu", p8[p], 2560); /* ESM-2 3B's width: the vector kernel */
        test_fp8_codes(g8, "gpu", p8[p], 64);
        test_fp8_codes(c8, "cpu-emulation", p8[p], 64); /* the same rule, read back alike */
        vnp_backend *g8u;
        setenv("VIRNUCPRO_DEBUG_FP8_UNFUSED", "1", 1);
        if (vnp_backend_cuda_create(0, p8[p], &g8u, &err))
            die("cuda fp8 backend (unfused)", &err);
        unsetenv("VIRNUCPRO_DEBUG_FP8_UNFUSED");
        test_fp8_chain(c8, g8, g8u, p8[p], 0, 77, 2560, 10240, 0);  /* ESM-2 3B widths */
        test_fp8_chain(c8, g8, g8u, p8[p], 0, 45, 320, 1280, 3);    /* ESM-2 8M, a view */
        test_fp8_chain(c8, g8, g8u, p8[p], 0, 21, 6400, 256, 2);    /* LN past the warp kernel */
        test_fp8_chain(c8, g8, g8u, p8[p], 1, 65, 768, 3072, 0);    /* DNABERT-S widths */
        test_fp8_chain(c8, g8, g8u, p8[p], 1, 30, 128, 272, 5);
        g8u->ops->destroy(g8u);
        g8->ops->destroy(g8);
        c8->ops->destroy(c8);
    }
    g16->ops->destroy(g16);
    probe_cublaslt_gelu();
    probe_gemm_algos();
    if (getenv("VNP_GEMM_SURVEY"))
        probe_gemm_survey();
    probe_fp8_gemm_modes();
    printf("op tests: %d checks, %d failed\n", g_checks, g_failed);
    return g_failed ? 1 : 0;
}
