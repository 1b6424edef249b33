/* The CPU backend's ops against straightforward double-precision references,
 * with 1 and 3 worker threads, row- and column-split GEMMs, aliasing, packed
 * sequences, rotary and ALiBi attention; mean pooling and scale_shift against
 * exact values; the guard word (non-finite, bad token, bad shape) as
 * vnp_backend_guard_check decodes it; host memory, asynchronous downloads and
 * events. */
#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "test_support.h"

static unsigned long long rng_state = 88172645463325252ULL;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static void fill(float *x, size_t n, float amp)
{
    for (size_t i = 0; i < n; i++)
        x[i] = amp * frand();
}

static vnp_backend *make(int threads)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_cpu_create(threads, &be, &err), VNP_OK);
    return be;
}

static vnp_buf up(vnp_backend *be, const float *x, size_t n)
{
    vnp_buf b;
    vnp_error err = {0};
    assert_int_equal(be->ops->upload_f32(be, x, n, &b, &err), VNP_OK);
    return b;
}

static vnp_buf up_i32(vnp_backend *be, const int32_t *x, size_t n)
{
    vnp_buf b;
    vnp_error err = {0};
    assert_int_equal(be->ops->alloc_i32(be, n, &b, &err), VNP_OK);
    assert_int_equal(be->ops->upload_i32(be, x, n, &b, &err), VNP_OK);
    return b;
}

/* The guard word as it stands, read the way callers do (into host_alloc memory). */
static uint32_t guard_word(vnp_backend *be)
{
    vnp_error err = {0};
    uint32_t *w = NULL;
    assert_int_equal(be->ops->host_alloc(be, sizeof *w, (void **)&w, &err), VNP_OK);
    *w = 0xdeadbeefu;
    assert_int_equal(be->ops->guard_save(be, w, &err), VNP_OK);
    uint32_t v = *w;
    be->ops->host_free(be, w);
    return v;
}

/* max |a-b| / max(|b|) over n values */
static double rel_err(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / (den > 0 ? den : 1);
}

static double gelu_d(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }

static void check_linear(int threads, int M, int N, int K, vnp_act act, int with_res, int alias)
{
    vnp_backend *be = make(threads);
    vnp_error err = {0};
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
    float *b = malloc(sizeof(float) * N), *r = malloc(sizeof(float) * M * N);
    float *got = malloc(sizeof(float) * M * N);
    double *want = malloc(sizeof(double) * M * N);
    fill(x, (size_t)M * K, 1);
    fill(w, (size_t)N * K, 0.5f);
    fill(b, N, 1);
    fill(r, (size_t)M * N, 2);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = b[n];
            for (int k = 0; k < K; k++)
                acc += (double)x[m * K + k] * w[n * K + k];
            if (act == VNP_ACT_GELU_ERF)
                acc = gelu_d(acc);
            else if (act == VNP_ACT_RELU)
                acc = acc > 0 ? acc : 0;
            want[m * N + n] = acc + (with_res ? r[m * N + n] : 0);
        }
    vnp_buf bx = up(be, x, (size_t)M * K), bw = up(be, w, (size_t)N * K), bb = up(be, b, N);
    vnp_buf br = up(be, r, (size_t)M * N), bo;
    assert_int_equal(be->ops->alloc_act(be, (size_t)M * N, &bo, &err), VNP_OK);
    vnp_buf *out = alias ? &br : &bo;
    assert_int_equal(be->ops->linear(be, &bx, &bw, &bb, act, with_res ? &br : NULL, M, N, K, out,
                                     &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, out, (size_t)M * N, got, &err), VNP_OK);
    assert_true(rel_err(got, want, (size_t)M * N) < 1e-5);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);
    be->ops->free_buf(be, &bx);
    be->ops->free_buf(be, &bw);
    be->ops->free_buf(be, &bb);
    be->ops->free_buf(be, &br);
    be->ops->free_buf(be, &bo);
    be->ops->destroy(be);
    free(x), free(w), free(b), free(r), free(got), free(want);
}

static void test_linear(void **state)
{
    check_linear(1, 37, 29, 64, VNP_ACT_NONE, 0, 0);
    check_linear(3, 200, 48, 33, VNP_ACT_GELU_ERF, 0, 0); /* row split */
    check_linear(3, 5, 300, 40, VNP_ACT_RELU, 1, 0);      /* column split */
    check_linear(3, 150, 64, 64, VNP_ACT_NONE, 1, 1);     /* out aliases residual, rows */
    check_linear(2, 4, 64, 64, VNP_ACT_NONE, 1, 1);       /* out aliases residual, columns */
}

/* The matmul kernels of linear() (cpu_matmul.c); the CPU may lack some. */
static const char *const KERNELS[] = {"generic", "avx", "avx2", "avx512"};

/* Whether kernel `name` chains fused multiply-adds (else rounded products added). */
static int kernel_fused(const char *name)
{
    const vnp_cpu_matmul_kernel *k = NULL;
    vnp_error err = {0};
    if (vnp_cpu_matmul_select(name, &k, &err))
        fail_msg("%s", err.msg);
    return vnp_cpu_matmul_fused(k);
}

/* A CPU backend with matmul kernel `kernel`, or NULL when this CPU lacks its
 * instructions (said on stdout). */
static vnp_backend *make_kernel(const char *kernel, int threads)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    setenv("VIRNUCPRO_CPU_KERNEL", kernel, 1);
    vnp_code rc = vnp_backend_cpu_create(threads, &be, &err);
    unsetenv("VIRNUCPRO_CPU_KERNEL");
    if (rc) {
        if (!strstr(err.msg, "lacks the instructions"))
            fail_msg("VIRNUCPRO_CPU_KERNEL=%s: %s", kernel, err.msg);
        printf("matmul kernel %s: not run (%s)\n", kernel, err.msg);
        return NULL;
    }
    return be;
}

/* linear() on rows [off, off + M) of x, bias + GELU, into a fresh buffer */
static void linear_rows(vnp_backend *be, const float *x, const vnp_buf *bw, const vnp_buf *bb,
                        int off, int M, int N, int K, float *got)
{
    vnp_error err = {0};
    vnp_buf bx = up(be, x + (size_t)off * K, (size_t)M * K), bo;
    assert_int_equal(be->ops->alloc_act(be, (size_t)M * N, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->linear(be, &bx, bw, bb, VNP_ACT_GELU_ERF, NULL, M, N, K, &bo, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, (size_t)M * N, got, &err), VNP_OK);
    be->ops->free_buf(be, &bx);
    be->ops->free_buf(be, &bo);
}

/* Every element of linear()'s product is one chain over k = 0..K-1 from +0 (of fused
 * multiply-adds, or of rounded products added, as the kernel's family), the same bits
 * with every kernel of a family and thread count: shapes that cross the kernels' K,
 * column and register-tile blocks, with tails in rows and columns. */
static void test_linear_fma_chain(void **state)
{
    (void)state;
    static const int shapes[][3] = {{29, 203, 600}, {5, 300, 40}, {200, 33, 257}, {1, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
        float *want[2], *got = malloc(sizeof(float) * M * N);
        fill(x, (size_t)M * K, 1);
        fill(w, (size_t)N * K, 0.5f);
        for (int fused = 0; fused < 2; fused++) {
            want[fused] = malloc(sizeof(float) * M * N);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    float acc = 0.0f;
                    for (int k = 0; k < K; k++) {
                        float a = x[(size_t)m * K + k], b = w[(size_t)n * K + k];
                        if (fused)
                            acc = fmaf(a, b, acc);
                        else {
                            volatile float prod = a * b; /* rounded to float */
                            acc = acc + prod;
                        }
                    }
                    want[fused][(size_t)m * N + n] = acc;
                }
        }
        int ran = 0;
        for (size_t kn = 0; kn < sizeof KERNELS / sizeof KERNELS[0]; kn++)
            for (int threads = 1; threads <= 3; threads += 2) {
                vnp_backend *be = make_kernel(KERNELS[kn], threads);
                if (!be)
                    break;
                const float *ref = want[kernel_fused(KERNELS[kn])];
                vnp_error err = {0};
                vnp_buf bx = up(be, x, (size_t)M * K), bw = up(be, w, (size_t)N * K), bo;
                assert_int_equal(be->ops->alloc_act(be, (size_t)M * N, &bo, &err), VNP_OK);
                assert_int_equal(be->ops->linear(be, &bx, &bw, NULL, VNP_ACT_NONE, NULL, M, N, K,
                                                 &bo, &err),
                                 VNP_OK);
                assert_int_equal(be->ops->download_f32(be, &bo, (size_t)M * N, got, &err),
                                 VNP_OK);
                for (size_t i = 0; i < (size_t)M * N; i++)
                    if (memcmp(&got[i], &ref[i], sizeof got[i]))
                        fail_msg("kernel %s, %d threads, M=%d N=%d K=%d: element (%zu, %zu) is "
                                 "%.9g, the chain %.9g",
                                 KERNELS[kn], threads, M, N, K, i / (size_t)N, i % (size_t)N,
                                 (double)got[i], (double)ref[i]);
                be->ops->free_buf(be, &bx);
                be->ops->free_buf(be, &bw);
                be->ops->free_buf(be, &bo);
                be->ops->destroy(be);
                ran++;
            }
        assert_true(ran >= 2); /* the portable kernel at least, with 1 and 3 threads */
        free(x), free(w), free(want[0]), free(want[1]), free(got);
    }
}

/* A row's result is the same bits whatever the rows around it, their number and the
 * number of threads: a frame's embedding does not depend on its batch (shard + merge
 * give one run's bytes). OpenBLAS's sgemm does not promise this (its AVX2/AVX-512
 * kernels round a row by its position in the call); the test's own ctest variants run it
 * with each OpenBLAS core type, whose kernels must play no part in it. */
static void test_linear_rows_independent(void **state)
{
    (void)state;
    static const int shapes[][2] = {{96, 80}, {200, 600}}; /* N, K */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        enum { ROWS = 203 };
        int N = shapes[s][0], K = shapes[s][1];
        float *x = malloc(sizeof(float) * ROWS * K), *w = malloc(sizeof(float) * N * K);
        float *b = malloc(sizeof(float) * N);
        float *all = malloc(sizeof(float) * ROWS * N), *got = malloc(sizeof(float) * ROWS * N);
        fill(x, (size_t)ROWS * K, 1);
        fill(w, (size_t)N * K, 0.5f);
        fill(b, N, 1);
        vnp_backend *ref = make(1);
        vnp_buf rw = up(ref, w, (size_t)N * K), rb = up(ref, b, N);
        linear_rows(ref, x, &rw, &rb, 0, ROWS, N, K, all);
        static const int threads[] = {1, 2, 3};
        static const int sizes[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 100, 161};
        for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
            vnp_backend *be = make(threads[t]);
            vnp_buf bw = up(be, w, (size_t)N * K), bb = up(be, b, N);
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
                for (int off = 0; off + sizes[i] <= ROWS; off += 41) {
                    linear_rows(be, x, &bw, &bb, off, sizes[i], N, K, got);
                    if (memcmp(got, all + (size_t)off * N, sizeof(float) * sizes[i] * N))
                        fail_msg("%d threads, N=%d K=%d: rows %d..%d computed alone differ "
                                 "from the same rows of one call over %d rows",
                                 threads[t], N, K, off, off + sizes[i] - 1, ROWS);
                }
            be->ops->free_buf(be, &bw);
            be->ops->free_buf(be, &bb);
            be->ops->destroy(be);
        }
        /* and with every kernel this CPU has: rows alone against the kernel's own call
         * over all rows (one family's kernels against each other in
         * test_linear_fma_chain) */
        float *kall = malloc(sizeof(float) * ROWS * N);
        for (size_t kn = 0; kn < sizeof KERNELS / sizeof KERNELS[0]; kn++) {
            vnp_backend *be = make_kernel(KERNELS[kn], 2);
            if (!be)
                continue;
            vnp_buf bw = up(be, w, (size_t)N * K), bb = up(be, b, N);
            linear_rows(be, x, &bw, &bb, 0, ROWS, N, K, kall);
            for (int off = 0; off < ROWS; off += 29) {
                int len = off % 3 + 1 + off / 29 * 5;
                if (off + len > ROWS)
                    len = ROWS - off;
                linear_rows(be, x, &bw, &bb, off, len, N, K, got);
                if (memcmp(got, kall + (size_t)off * N, sizeof(float) * len * N))
                    fail_msg("kernel %s, N=%d K=%d: rows %d..%d alone differ from one call",
                             KERNELS[kn], N, K, off, off + len - 1);
            }
            be->ops->free_buf(be, &bw);
            be->ops->free_buf(be, &bb);
            be->ops->destroy(be);
        }
        free(kall);
        ref->ops->free_buf(ref, &rw);
        ref->ops->free_buf(ref, &rb);
        ref->ops->destroy(ref);
        free(x), free(w), free(b), free(all), free(got);
    }
}

/* vnp_cpu_matmul_nt itself with leading dimensions wider than the rows (x, w and out
 * padded; the padding NaN): each element is its family's chain and the padding of out is
 * untouched, for every kernel this CPU has and shapes on both sides of the K (256) and
 * column (128) blocks. */
static void test_matmul_strides(void **state)
{
    (void)state;
    static const int shapes[][3] = {{13, 129, 257}, {1, 1, 1}, {7, 33, 513}, {30, 16, 256}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        size_t ldx = (size_t)K + 5, ldw = (size_t)K + 3, ldo = (size_t)N + 7;
        float *x = malloc(sizeof(float) * M * ldx), *w = malloc(sizeof(float) * N * ldw);
        float *o = malloc(sizeof(float) * M * ldo);
        fill(x, (size_t)M * ldx, 1);
        fill(w, (size_t)N * ldw, 0.5f);
        for (int m = 0; m < M; m++)
            for (size_t k = (size_t)K; k < ldx; k++)
                x[m * ldx + k] = NAN;
        for (int n = 0; n < N; n++)
            for (size_t k = (size_t)K; k < ldw; k++)
                w[n * ldw + k] = NAN;
        for (size_t kn = 0; kn < sizeof KERNELS / sizeof KERNELS[0]; kn++) {
            const vnp_cpu_matmul_kernel *kern = NULL;
            vnp_error err = {0};
            if (vnp_cpu_matmul_select(KERNELS[kn], &kern, &err)) {
                if (!strstr(err.msg, "lacks the instructions"))
                    fail_msg("%s", err.msg);
                continue;
            }
            float *scratch = malloc(sizeof(float) * vnp_cpu_matmul_scratch());
            for (size_t i = 0; i < (size_t)M * ldo; i++)
                o[i] = NAN;
            vnp_cpu_matmul_nt(kern, x, ldx, M, w, ldw, N, K, o, ldo, scratch);
            int fused = vnp_cpu_matmul_fused(kern);
            for (int m = 0; m < M; m++) {
                for (int n = 0; n < N; n++) {
                    float acc = 0.0f;
                    for (int k = 0; k < K; k++) {
                        float a = x[m * ldx + (size_t)k], b = w[n * ldw + (size_t)k];
                        if (fused)
                            acc = fmaf(a, b, acc);
                        else {
                            volatile float prod = a * b;
                            acc = acc + prod;
                        }
                    }
                    if (memcmp(&acc, &o[m * ldo + (size_t)n], sizeof acc))
                        fail_msg("kernel %s, M=%d N=%d K=%d (strided): (%d, %d) is %.9g, the "
                                 "chain %.9g",
                                 KERNELS[kn], M, N, K, m, n, (double)o[m * ldo + (size_t)n],
                                 (double)acc);
                }
                for (size_t n = (size_t)N; n < ldo; n++)
                    if (!isnan(o[m * ldo + n]))
                        fail_msg("kernel %s, M=%d N=%d K=%d: wrote past the row (column %zu)",
                                 KERNELS[kn], M, N, K, n);
            }
            free(scratch);
        }
        free(x), free(w), free(o);
    }
}

/* VIRNUCPRO_CPU_KERNEL naming no kernel: the backend is not made, and the message names
 * the variable, the value and the choices. */
static void test_kernel_env(void **state)
{
    (void)state;
    vnp_backend *be = NULL;
    vnp_error err = {0};
    setenv("VIRNUCPRO_CPU_KERNEL", "sse9", 1);
    vnp_code rc = vnp_backend_cpu_create(2, &be, &err);
    unsetenv("VIRNUCPRO_CPU_KERNEL");
    assert_int_equal(rc, VNP_EINVAL);
    assert_null(be);
    assert_non_null(strstr(err.msg, "VIRNUCPRO_CPU_KERNEL=sse9"));
    assert_non_null(strstr(err.msg, "generic"));
}

static void test_layernorm(void **state)
{
    for (int threads = 1; threads <= 3; threads += 2) {
        vnp_backend *be = make(threads);
        vnp_error err = {0};
        enum { M = 70, H = 48 };
        float x[M * H], r[M * H], g[H], b[H], got[M * H];
        double want[M * H];
        fill(x, M * H, 3);
        fill(r, M * H, 1);
        fill(g, H, 1);
        fill(b, H, 1);
        for (int m = 0; m < M; m++) {
            double mean = 0, var = 0;
            for (int i = 0; i < H; i++)
                mean += (double)x[m * H + i] + r[m * H + i];
            mean /= H;
            for (int i = 0; i < H; i++) {
                double d = (double)x[m * H + i] + r[m * H + i] - mean;
                var += d * d;
            }
            var /= H;
            for (int i = 0; i < H; i++)
                want[m * H + i] =
                    ((double)x[m * H + i] + r[m * H + i] - mean) / sqrt(var + 1e-5) * g[i] + b[i];
        }
        vnp_buf bx = up(be, x, M * H), br = up(be, r, M * H), bg = up(be, g, H), bb = up(be, b, H);
        /* out aliases x */
        assert_int_equal(be->ops->layernorm(be, &bx, &br, &bg, &bb, 1e-5f, M, H, &bx, &err), VNP_OK);
        assert_int_equal(be->ops->download_f32(be, &bx, M * H, got, &err), VNP_OK);
        assert_true(rel_err(got, want, M * H) < 1e-5);
        be->ops->free_buf(be, &bx);
        be->ops->free_buf(be, &br);
        be->ops->free_buf(be, &bg);
        be->ops->free_buf(be, &bb);
        be->ops->destroy(be);
    }
}

static void test_embedding_gated(void **state)
{
    vnp_backend *be = make(3);
    vnp_error err = {0};
    enum { V = 7, H = 16, T = 9 };
    float table[V * H], add[H], got[T * H];
    int32_t ids[T] = {0, 6, 3, 3, 1, 2, 5, 4, 0};
    fill(table, V * H, 1);
    fill(add, H, 1);
    vnp_buf bt = up(be, table, V * H), ba = up(be, add, H), bi, bo;
    assert_int_equal(be->ops->alloc_i32(be, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->upload_i32(be, ids, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->alloc_act(be, T * H, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &bt, &bi, T, H, &ba, 0.88f, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, T * H, got, &err), VNP_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++)
            assert_true(got[t * H + i] == (table[ids[t] * H + i] + add[i]) * 0.88f);

    /* an id outside the table (either side) is not read: its row is the added row
     * alone, and the guard's bad-token bit is set, which the guard check reports
     * as a bug or corrupt batch */
    assert_int_equal(guard_word(be), 0);
    int32_t bad[T] = {0, 7, 0, 0, 0, 0, 0, -1, 0};
    float badrows[T * H];
    assert_int_equal(be->ops->upload_i32(be, bad, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &bt, &bi, T, H, &ba, 2.0f, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, T * H, badrows, &err), VNP_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++)
            assert_true(badrows[t * H + i] ==
                        ((t == 1 || t == 7) ? add[i] : table[i] + add[i]) * 2.0f);
    assert_int_equal(guard_word(be), VNP_GUARD_BAD_TOKEN);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "cpu (3 threads): a token id outside the model's vocabulary "
                                 "was caught on the device; this is a bug or a corrupt batch "
                                 "(not retried in FP32)");
    be->ops->guard_reset(be);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);
    assert_int_equal(be->ops->upload_i32(be, ids, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &bt, &bi, T, H, &ba, 0.88f, &bo, &err), VNP_OK);

    /* gated GELU over the [T, H] buffer seen as [T, 2 * 8] */
    float gg[T * H / 2];
    vnp_buf bg;
    assert_int_equal(be->ops->alloc_act(be, T * H / 2, &bg, &err), VNP_OK);
    assert_int_equal(be->ops->gated_gelu(be, &bo, T, H / 2, &bg, &err), VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bg, T * H / 2, gg, &err), VNP_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H / 2; i++) {
            double want = gelu_d(got[t * H + i]) * got[t * H + H / 2 + i];
            assert_true(fabs(gg[t * H / 2 + i] - want) <= 1e-6 * fmax(1, fabs(want)));
        }

    /* non-finite values raise the flag; reset clears it */
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);
    table[H + 2] = INFINITY;
    vnp_buf binf = up(be, table, V * H);
    int32_t ones[T] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(be->ops->upload_i32(be, ones, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &binf, &bi, T, H, NULL, 1.0f, &bo, &err), VNP_OK);
    vnp_buf gam = up(be, add, H);
    assert_int_equal(be->ops->layernorm(be, &bo, NULL, &gam, &gam, 1e-5f, T, H, &bo, &err),
                     VNP_OK);
    assert_int_equal(guard_word(be), VNP_GUARD_NONFINITE);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_ENUMERIC);
    assert_string_equal(err.msg, "cpu (3 threads): non-finite values (NaN or infinite)");
    be->ops->guard_reset(be);
    assert_int_equal(guard_word(be), 0);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);

    vnp_buf *bufs[] = {&bt, &ba, &bi, &bo, &bg, &binf, &gam};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->free_buf(be, bufs[i]);
    be->ops->destroy(be);
}

/* ---- mean pooling ---- */

/* x[r, j] in halves and small: every sum of up to 40 rows is exact in float, so
 * the expected mean is one correctly rounded division whatever the order. */
static float pool_x(int r, int j)
{
    return (float)((r * 7 + j * 3) % 11 - 5) + 0.5f * (float)(j & 1);
}

static float exact_mean(int b, int e, int j)
{
    double acc = 0;
    for (int r = b; r < e; r++)
        acc += pool_x(r, j);
    return (float)acc / (float)(e - b);
}

enum { PT = 40, PH = 5, PS = 3, PLD = 12 };

static void test_mean_pool(void **state)
{
    for (int threads = 1; threads <= 3; threads += 2) {
        vnp_backend *be = make(threads);
        vnp_error err = {0};
        float x[PT * PH], x2[PT * PH], sentinel[PS * PLD], got[PS * PLD];
        for (int r = 0; r < PT; r++)
            for (int j = 0; j < PH; j++) {
                x[r * PH + j] = pool_x(r, j);
                x2[r * PH + j] = -pool_x(r, j);
            }
        for (int i = 0; i < PS * PLD; i++)
            sentinel[i] = -1000.0f - (float)i;
        /* three sequences: one row, 16 rows (one cascade block), 23 rows */
        int32_t ranges[2 * PS] = {0, 1, 17, 1, 17, 40};
        vnp_buf bx = up(be, x, PT * PH), bx2 = up(be, x2, PT * PH);
        vnp_buf br = up_i32(be, ranges, 2 * PS), bo;
        assert_int_equal(be->ops->alloc_f32(be, PS * PLD, &bo, &err), VNP_OK);
        assert_int_equal(bo.dtype, VNP_DT_F32);
        assert_int_equal(bo.n, PS * PLD);
        memcpy(bo.ptr, sentinel, sizeof sentinel);
        /* x pooled into columns [1, 6), x2 into [7, 12) of rows of 12: columns 0 and 6
         * keep what was there */
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &br, PS, &bo, PLD, 1, &err), VNP_OK);
        assert_int_equal(be->ops->mean_pool(be, &bx2, PH, &br, PS, &bo, PLD, 7, &err), VNP_OK);
        assert_int_equal(be->ops->download_f32(be, &bo, PS * PLD, got, &err), VNP_OK);
        for (int s = 0; s < PS; s++)
            for (int c = 0; c < PLD; c++) {
                float want = sentinel[s * PLD + c];
                if (c >= 1 && c < 1 + PH)
                    want = exact_mean(ranges[s], ranges[PS + s], c - 1);
                else if (c >= 7)
                    want = -exact_mean(ranges[s], ranges[PS + s], c - 7);
                assert_true(got[s * PLD + c] == want);
            }
        assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);

        /* inconsistent arguments are errors (nothing written) */
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &br, PS, &bo, PLD, 8, &err), VNP_EINVAL);
        assert_string_equal(err.msg, "mean pooling of 3 sequences of width 5 into columns [8, 13) "
                                     "of rows of 12");
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &br, PS, &bo, PLD, -1, &err),
                         VNP_EINVAL);
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &br, PS, &bo, PLD + 1, 0, &err),
                         VNP_EINVAL); /* 3 rows of 13 do not fit 36 floats */
        assert_string_equal(err.msg, "mean pooling of 3 sequences: ranges (6 I32) need 6 I32 "
                                     "entries and the output (36 F32) 39 F32 entries");
        vnp_buf short_ranges = br;
        short_ranges.n = 5;
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &short_ranges, PS, &bo, PLD, 0, &err),
                         VNP_EINVAL);
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &bx, 1, &bo, PLD, 0, &err),
                         VNP_EINVAL); /* ranges not I32 */
        assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);

        /* bad ranges: past x, empty, negative. Each is flagged and skipped; the good
         * sequence between them is pooled. */
        memcpy(bo.ptr, sentinel, sizeof sentinel);
        int32_t bad[2 * 4] = {30, 0, 5, -1, 41, 9, 5, 2};
        vnp_buf bbad = up_i32(be, bad, 8);
        vnp_buf bo4;
        assert_int_equal(be->ops->alloc_f32(be, 4 * PH, &bo4, &err), VNP_OK);
        for (int i = 0; i < 4 * PH; i++)
            ((float *)bo4.ptr)[i] = 7.0f;
        assert_int_equal(be->ops->mean_pool(be, &bx, PH, &bbad, 4, &bo4, PH, 0, &err), VNP_OK);
        const float *o4 = bo4.ptr;
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < PH; j++)
                assert_true(o4[s * PH + j] == (s == 1 ? exact_mean(0, 9, j) : 7.0f));
        assert_int_equal(guard_word(be), VNP_GUARD_BAD_SHAPE);
        assert_int_equal(vnp_backend_guard_check(be, &err), VNP_EINVAL);
        char want[256];
        snprintf(want, sizeof want,
                 "cpu (%d thread%s): a bad batch shape was caught on the device; this is a bug "
                 "or a corrupt batch (not retried in FP32)",
                 threads, threads == 1 ? "" : "s");
        assert_string_equal(err.msg, want);
        be->ops->guard_reset(be);

        /* a non-finite value in a pooled row */
        x[20 * PH + 3] = INFINITY;
        vnp_buf binf = up(be, x, PT * PH);
        assert_int_equal(be->ops->mean_pool(be, &binf, PH, &br, PS, &bo, PLD, 0, &err), VNP_OK);
        assert_true(isinf(((float *)bo.ptr)[2 * PLD + 3]));
        assert_int_equal(guard_word(be), VNP_GUARD_NONFINITE);
        assert_int_equal(vnp_backend_guard_check(be, &err), VNP_ENUMERIC);
        be->ops->guard_reset(be);
        assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);

        vnp_buf *bufs[] = {&bx, &bx2, &br, &bo, &bbad, &bo4, &binf};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            be->ops->free_buf(be, bufs[i]);
        be->ops->destroy(be);
    }
}

/* The CPU sums in PyTorch's cascade order, not row by row: 2^24 followed by
 * fifteen zeros, then sixteen ones and a zero. Row by row every + 1 rounds back
 * to 2^24; the cascade adds the block of ones (16) to 2^24 exactly. */
static void test_mean_pool_cascade_order(void **state)
{
    vnp_backend *be = make(2);
    vnp_error err = {0};
    enum { N = 33 };
    float x[N * 2];
    for (int r = 0; r < N; r++) {
        x[r * 2] = r == 0 ? 16777216.0f : (r >= 16 && r < 32) ? 1.0f : 0.0f;
        x[r * 2 + 1] = (float)r;
    }
    int32_t ranges[2] = {0, N};
    vnp_buf bx = up(be, x, N * 2), br = up_i32(be, ranges, 2), bo;
    assert_int_equal(be->ops->alloc_f32(be, 2, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->mean_pool(be, &bx, 2, &br, 1, &bo, 2, 0, &err), VNP_OK);
    float got[2];
    assert_int_equal(be->ops->download_f32(be, &bo, 2, got, &err), VNP_OK);
    float sequential = 0.0f;
    for (int r = 0; r < N; r++)
        sequential += x[r * 2];
    assert_true(sequential == 16777216.0f); /* what a plain loop gives */
    assert_true(got[0] == 16777232.0f / 33.0f);
    assert_true(got[0] != sequential / 33.0f);
    assert_true(got[1] == 528.0f / 33.0f);
    be->ops->free_buf(be, &bx);
    be->ops->free_buf(be, &br);
    be->ops->free_buf(be, &bo);
    be->ops->destroy(be);
}

/* ---- scale and shift (a folded BatchNorm, then ReLU) ---- */
static void test_scale_shift(void **state)
{
    vnp_backend *be = make(3);
    vnp_error err = {0};
    enum { M = 3, N = 4 };
    const float x[M * N] = {1, -2, 0.5f, 3, -1, 0, 2, -0.25f, 4, 1.5f, -3, 0.75f};
    const float sc[N] = {2, 0.5f, -1, 0.25f}, sh[N] = {-1, 1, 0.5f, 0};
    /* x * scale + shift, exact in float */
    const float lin[M * N] = {1, 0, 0, 0.75f, -3, 1, -1.5f, -0.0625f, 7, 1.75f, 3.5f, 0.1875f};
    vnp_buf bx = up(be, x, M * N), bs = up(be, sc, N), bh = up(be, sh, N), bo;
    assert_int_equal(be->ops->alloc_f32(be, M * N, &bo, &err), VNP_OK);
    float got[M * N];
    assert_int_equal(be->ops->scale_shift(be, &bx, &bs, &bh, VNP_ACT_NONE, M, N, &bo, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, M * N, got, &err), VNP_OK);
    for (int i = 0; i < M * N; i++)
        assert_true(got[i] == lin[i]);
    /* ReLU, in place */
    assert_int_equal(be->ops->scale_shift(be, &bx, &bs, &bh, VNP_ACT_RELU, M, N, &bx, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bx, M * N, got, &err), VNP_OK);
    const float relu[M * N] = {1, 0, 0, 0.75f, 0, 1, 0, 0, 7, 1.75f, 3.5f, 0.1875f};
    for (int i = 0; i < M * N; i++)
        assert_true(got[i] == relu[i]);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_OK);

    /* many rows, split over the workers: exact values again */
    enum { BM = 5000, BN = 8 };
    float *bigx = malloc(sizeof(float) * BM * BN), *bigo = malloc(sizeof(float) * BM * BN);
    float bsc[BN], bsh[BN];
    for (int j = 0; j < BN; j++) {
        bsc[j] = (float)(j - 3) * 0.125f;
        bsh[j] = (float)(j % 3) - 1.0f;
    }
    for (int i = 0; i < BM * BN; i++)
        bigx[i] = (float)(i % 29 - 14) * 0.25f;
    vnp_buf bbx = up(be, bigx, BM * BN), bbs = up(be, bsc, BN), bbh = up(be, bsh, BN), bbo;
    assert_int_equal(be->ops->alloc_f32(be, BM * BN, &bbo, &err), VNP_OK);
    assert_int_equal(be->ops->scale_shift(be, &bbx, &bbs, &bbh, VNP_ACT_RELU, BM, BN, &bbo, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bbo, BM * BN, bigo, &err), VNP_OK);
    for (int i = 0; i < BM * BN; i++) {
        float v = bigx[i] * bsc[i % BN] + bsh[i % BN]; /* exact: quarters times eighths */
        assert_true(bigo[i] == (v < 0 ? 0.0f : v));
    }

    /* a NaN stays a NaN through the ReLU and sets the guard */
    float nanx[M * N];
    memcpy(nanx, x, sizeof nanx);
    nanx[5] = NAN;
    vnp_buf bn = up(be, nanx, M * N);
    assert_int_equal(be->ops->scale_shift(be, &bn, &bs, &bh, VNP_ACT_RELU, M, N, &bo, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, M * N, got, &err), VNP_OK);
    assert_true(isnan(got[5]));
    assert_true(got[4] == 0.0f && got[6] == 0.0f);
    assert_int_equal(vnp_backend_guard_check(be, &err), VNP_ENUMERIC);
    be->ops->guard_reset(be);

    /* wrong sizes or dtypes are refused */
    assert_int_equal(be->ops->scale_shift(be, &bx, &bs, &bh, VNP_ACT_RELU, M, N + 1, &bo, &err),
                     VNP_EINVAL);
    vnp_buf bi = up_i32(be, (const int32_t[4]){0, 0, 0, 0}, 4);
    assert_int_equal(be->ops->scale_shift(be, &bx, &bi, &bh, VNP_ACT_RELU, M, N, &bo, &err),
                     VNP_EINVAL);

    vnp_buf *bufs[] = {&bx, &bs, &bh, &bo, &bbx, &bbs, &bbh, &bbo, &bn, &bi};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->free_buf(be, bufs[i]);
    be->ops->destroy(be);
    free(bigx), free(bigo);
}

/* ---- host memory, asynchronous download, events ---- */
static void test_async_events(void **state)
{
    vnp_backend *be = make(2);
    vnp_error err = {0};
    enum { N = 40 };
    float src[N];
    for (int i = 0; i < N; i++)
        src[i] = (float)i * 1.5f - 7.0f;
    vnp_buf b = up(be, src, N);
    float *host = NULL;
    assert_int_equal(be->ops->host_alloc(be, N * sizeof(float), (void **)&host, &err), VNP_OK);
    assert_non_null(host);
    assert_true((uintptr_t)host % 64 == 0);
    memset(host, 0, N * sizeof(float));
    vnp_event *ev = NULL;
    assert_int_equal(be->ops->event_create(be, &ev, &err), VNP_OK);
    assert_non_null(ev);
    assert_int_equal(be->ops->download_f32_async(be, &b, N - 1, host, &err), VNP_OK);
    assert_int_equal(be->ops->event_record(be, ev, &err), VNP_OK);
    assert_int_equal(be->ops->event_wait(be, ev, &err), VNP_OK);
    for (int i = 0; i < N - 1; i++)
        assert_true(host[i] == src[i]);
    assert_true(host[N - 1] == 0.0f); /* only n copied */
    /* the event can be recorded and waited for again */
    assert_int_equal(be->ops->event_record(be, ev, &err), VNP_OK);
    assert_int_equal(be->ops->event_wait(be, ev, &err), VNP_OK);
    /* more than the buffer holds, or not F32: refused */
    assert_int_equal(be->ops->download_f32_async(be, &b, N + 1, host, &err), VNP_EINVAL);
    vnp_buf bi = up_i32(be, (const int32_t[2]){1, 2}, 2);
    assert_int_equal(be->ops->download_f32_async(be, &bi, 2, host, &err), VNP_EINVAL);
    be->ops->event_free(be, ev);
    be->ops->host_free(be, host);
    be->ops->free_buf(be, &b);
    be->ops->free_buf(be, &bi);
    be->ops->destroy(be);
}

/* ---- decoding the guard word ---- */
static void test_guard_code(void **state)
{
    vnp_error err = {0};
    assert_int_equal(vnp_backend_guard_code(0, "cuda:1 fp16, batch 3", &err), VNP_OK);
    assert_int_equal(vnp_backend_guard_code(VNP_GUARD_NONFINITE, "cuda:1 fp16, batch 3", &err),
                     VNP_ENUMERIC);
    assert_string_equal(err.msg, "cuda:1 fp16, batch 3: non-finite values (NaN or infinite)");
    /* a bad token wins over NaN: never retried in FP32 */
    assert_int_equal(
        vnp_backend_guard_code(VNP_GUARD_NONFINITE | VNP_GUARD_BAD_TOKEN, "dev", &err),
        VNP_EINVAL);
    assert_string_equal(err.msg, "dev: a token id outside the model's vocabulary was caught on "
                                 "the device; this is a bug or a corrupt batch (not retried in "
                                 "FP32)");
    assert_int_equal(vnp_backend_guard_code(VNP_GUARD_BAD_SHAPE, "dev", &err), VNP_EINVAL);
    assert_string_equal(err.msg, "dev: a bad batch shape was caught on the device; this is a bug "
                                 "or a corrupt batch (not retried in FP32)");
    assert_int_equal(
        vnp_backend_guard_code(VNP_GUARD_BAD_SHAPE | VNP_GUARD_BAD_TOKEN, "dev", &err),
        VNP_EINVAL);
    assert_string_equal(err.msg, "dev: a token id outside the model's vocabulary and a bad batch "
                                 "shape was caught on the device; this is a bug or a corrupt "
                                 "batch (not retried in FP32)");
}

/* Reference attention for one sequence of L tokens starting at row `start`. */
static void ref_attention(const float *qkv, int start, int L, int heads, int hd, float scale,
                          vnp_posenc pos, const float *inv, const float *slopes, double *out)
{
    int H = heads * hd;
    double *q = malloc(sizeof(double) * L * hd), *k = malloc(sizeof(double) * L * hd);
    double *p = malloc(sizeof(double) * L);
    for (int h = 0; h < heads; h++) {
        for (int t = 0; t < L; t++)
            for (int i = 0; i < hd; i++) {
                const float *row = qkv + (size_t)(start + t) * 3 * H + h * hd;
                q[t * hd + i] = row[i];
                k[t * hd + i] = row[H + i];
            }
        if (pos == VNP_POS_ROTARY) {
            int half = hd / 2;
            for (int t = 0; t < L; t++)
                for (int i = 0; i < half; i++) {
                    double a = (double)((float)t * inv[i]), c = cos(a), s = sin(a);
                    double q1 = q[t * hd + i], q2 = q[t * hd + i + half];
                    double k1 = k[t * hd + i], k2 = k[t * hd + i + half];
                    q[t * hd + i] = q1 * c - q2 * s;
                    q[t * hd + i + half] = q2 * c + q1 * s;
                    k[t * hd + i] = k1 * c - k2 * s;
                    k[t * hd + i + half] = k2 * c + k1 * s;
                }
        }
        for (int i = 0; i < L; i++) {
            double mx = -1e300, sum = 0;
            for (int j = 0; j < L; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += q[i * hd + d] * k[j * hd + d];
                s *= scale;
                if (pos == VNP_POS_ALIBI)
                    s += slopes[h] * -(double)abs(i - j);
                p[j] = s;
                mx = fmax(mx, s);
            }
            for (int j = 0; j < L; j++)
                sum += (p[j] = exp(p[j] - mx));
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int j = 0; j < L; j++)
                    acc += p[j] / sum * qkv[(size_t)(start + j) * 3 * H + 2 * H + h * hd + d];
                out[(size_t)(start + i) * H + h * hd + d] = acc;
            }
        }
    }
    free(q), free(k), free(p);
}

static void check_attention(int threads, vnp_posenc pos, int heads, int hd)
{
    vnp_backend *be = make(threads);
    vnp_error err = {0};
    int lens[4] = {5, 1, 13, 8}, nseq = 4, cu[5] = {0}, T = 0, H = heads * hd;
    for (int s = 0; s < nseq; s++)
        cu[s + 1] = (T += lens[s]);
    float *qkv = malloc(sizeof(float) * T * 3 * H), *got = malloc(sizeof(float) * T * H);
    double *want = malloc(sizeof(double) * T * H);
    fill(qkv, (size_t)T * 3 * H, 2);
    float inv[64], slopes[16];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = 1.0f / powf(7.0f, (float)i / (float)(hd / 2)); /* deliberately not 10000-based */
    for (int h = 0; h < heads; h++)
        slopes[h] = 0.3f / (float)(h + 1);
    float scale = 1.0f / sqrtf((float)hd);
    for (int s = 0; s < nseq; s++)
        ref_attention(qkv, cu[s], lens[s], heads, hd, scale, pos, inv, slopes, want);

    vnp_buf bq = up(be, qkv, (size_t)T * 3 * H), bin = up(be, inv, hd / 2),
            bsl = up(be, slopes, heads), bcu, bo;
    assert_int_equal(be->ops->alloc_i32(be, nseq + 1, &bcu, &err), VNP_OK);
    assert_int_equal(be->ops->upload_i32(be, cu, nseq + 1, &bcu, &err), VNP_OK);
    assert_int_equal(be->ops->alloc_act(be, (size_t)T * H, &bo, &err), VNP_OK);
    vnp_attn_desc d = {heads, hd, scale, pos, &bin, &bsl};
    assert_int_equal(be->ops->attention(be, &bq, &bcu, nseq, 13, T, &d, &bo, &err), VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo, (size_t)T * H, got, &err), VNP_OK);
    assert_true(rel_err(got, want, (size_t)T * H) < 1e-5);

    /* sequence 2 alone gives the same rows (positions restart per sequence) */
    int cu1[2] = {0, lens[2]};
    vnp_buf bq1 = up(be, qkv + (size_t)cu[2] * 3 * H, (size_t)lens[2] * 3 * H), bcu1, bo1;
    float *alone = malloc(sizeof(float) * lens[2] * H);
    assert_int_equal(be->ops->alloc_i32(be, 2, &bcu1, &err), VNP_OK);
    assert_int_equal(be->ops->upload_i32(be, cu1, 2, &bcu1, &err), VNP_OK);
    assert_int_equal(be->ops->alloc_act(be, (size_t)lens[2] * H, &bo1, &err), VNP_OK);
    assert_int_equal(be->ops->attention(be, &bq1, &bcu1, 1, lens[2], lens[2], &d, &bo1, &err),
                     VNP_OK);
    assert_int_equal(be->ops->download_f32(be, &bo1, (size_t)lens[2] * H, alone, &err), VNP_OK);
    for (int i = 0; i < lens[2] * H; i++)
        assert_true(fabsf(alone[i] - got[(size_t)cu[2] * H + i]) <= 1e-6f);

    /* a sequence longer than max_len is refused */
    assert_int_equal(be->ops->attention(be, &bq, &bcu, nseq, 12, T, &d, &bo, &err), VNP_EINVAL);

    vnp_buf *bufs[] = {&bq, &bin, &bsl, &bcu, &bo, &bq1, &bcu1, &bo1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->free_buf(be, bufs[i]);
    be->ops->destroy(be);
    free(qkv), free(got), free(want), free(alone);
}

static void test_attention(void **state)
{
    check_attention(1, VNP_POS_ROTARY, 2, 16);
    check_attention(3, VNP_POS_ROTARY, 4, 8);
    check_attention(1, VNP_POS_ALIBI, 3, 16);
    check_attention(3, VNP_POS_ALIBI, 5, 8);
    check_attention(2, VNP_POS_NONE, 2, 12);
}

/* The CPU as a device: what vnp_device_query says of it is the backend's be->device (the
 * first "model name" of /proc/cpuinfo, the physical memory), its memory now, and a
 * synchronize that has nothing to wait for. */
static void test_device(void **state)
{
    (void)state;
    vnp_backend *be = make(2);
    vnp_error err = {0};
    vnp_device q;
    assert_int_equal(vnp_device_count(VNP_DEVICE_CPU), 1);
    assert_int_equal(vnp_device_query(VNP_DEVICE_CPU, 0, &q, &err), VNP_OK);
    assert_memory_equal(&q, &be->device, sizeof q);
    assert_int_equal(q.kind, VNP_DEVICE_CPU);
    assert_int_equal(q.index, 0);
    assert_int_equal(q.cc_major, 0);
    char want[256] = "CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "model name : %255[^\n]", want) == 1) /* blanks match tabs */
            break;
    if (f)
        fclose(f);
    assert_string_equal(q.name, want);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    assert_true(pages > 0 && q.mem_total == (size_t)pages * (size_t)page);
    size_t free_b = 0, total_b = 0;
    assert_int_equal(be->ops->mem_info(be, &free_b, &total_b, &err), VNP_OK);
    assert_true(total_b == q.mem_total && free_b > 0 && free_b <= total_b);
    assert_int_equal(be->ops->synchronize(be, &err), VNP_OK);

    assert_int_equal(vnp_device_query(VNP_DEVICE_CPU, 1, &q, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "cpu:1: there is one CPU device, cpu");
#ifndef VNP_HAVE_CUDA /* this test is built without the CUDA backend */
    assert_int_equal(vnp_device_count(VNP_DEVICE_CUDA), 0);
    assert_int_equal(vnp_device_query(VNP_DEVICE_CUDA, 0, &q, &err), VNP_EUNSUPPORTED);
    assert_string_equal(err.msg, "cuda:0: this virnucpro was built without the CUDA backend");
#endif
    vnp_backend_free(be);
}

/* Threads of this process (entries of /proc/self/task). */
static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* OpenBLAS's server threads (one fewer than its thread count: nproc, or
 * OPENBLAS_NUM_THREADS; started on load, each spinning about 0.1 s of CPU) are stopped by
 * the first backend, which sets OpenBLAS single-threaded: once that backend is freed, the
 * process has those threads fewer than before it (and no other new one). Runs first. */
static void test_openblas_pool_stopped(void **state)
{
    (void)state;
    int before = task_count(), pool = openblas_get_num_threads() - 1;
    print_message("threads before the first backend: %d (OpenBLAS's: %d)\n", before, pool);
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_cpu_create(1, &be, &err), VNP_OK);
    vnp_backend_free(be);
    assert_int_equal(task_count(), before - pool);
}

static void test_bad_threads(void **state)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_cpu_create(-2, &be, &err), VNP_EINVAL);
    assert_null(be);
    assert_string_equal(err.msg, "thread count -2: use 0 for all cores or a positive count");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openblas_pool_stopped), /* first: before any backend */
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_fma_chain),
        cmocka_unit_test(test_linear_rows_independent),
        cmocka_unit_test(test_matmul_strides),
        cmocka_unit_test(test_kernel_env),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_embedding_gated),
        cmocka_unit_test(test_mean_pool),
        cmocka_unit_test(test_mean_pool_cascade_order),
        cmocka_unit_test(test_scale_shift),
        cmocka_unit_test(test_async_events),
        cmocka_unit_test(test_guard_code),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_bad_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
