/* The CPU backend's ops against straightforward double-precision references,
 * with 1 and 3 worker threads, row- and column-split GEMMs, aliasing, packed
 * sequences, rotary and ALiBi attention, and the non-finite flag. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
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
    assert_int_equal(be->ops->nonfinite_seen(be), 0);
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

static void test_embedding_gated_pool(void **state)
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

    /* an id outside the table is an error naming it */
    int32_t bad[T] = {0, 7, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(be->ops->upload_i32(be, bad, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &bt, &bi, T, H, NULL, 1.0f, &bo, &err), VNP_EINVAL);
    assert_string_equal(err.msg,
                        "token id 7 at position 1 is outside the embedding table (7 rows)");

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

    /* mean pooling of rows [1,4) and [4,9) */
    int32_t rb[2] = {1, 4}, re[2] = {4, 9};
    float pooled[2 * H];
    assert_int_equal(be->ops->mean_pool(be, &bo, H, rb, re, 2, pooled, &err), VNP_OK);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < H; i++) {
            double acc = 0;
            for (int r = rb[s]; r < re[s]; r++)
                acc += got[r * H + i];
            assert_true(fabs(pooled[s * H + i] - acc / (re[s] - rb[s])) < 1e-6);
        }
    /* empty range is refused */
    int32_t rb2[1] = {3}, re2[1] = {3};
    assert_int_equal(be->ops->mean_pool(be, &bo, H, rb2, re2, 1, pooled, &err), VNP_EINVAL);

    /* non-finite values raise the flag; reset clears it */
    assert_int_equal(be->ops->nonfinite_seen(be), 0);
    table[H + 2] = INFINITY;
    vnp_buf binf = up(be, table, V * H);
    int32_t ones[T] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(be->ops->upload_i32(be, ones, T, &bi, &err), VNP_OK);
    assert_int_equal(be->ops->embedding(be, &binf, &bi, T, H, NULL, 1.0f, &bo, &err), VNP_OK);
    vnp_buf gam = up(be, add, H);
    assert_int_equal(be->ops->layernorm(be, &bo, NULL, &gam, &gam, 1e-5f, T, H, &bo, &err),
                     VNP_OK);
    assert_int_equal(be->ops->nonfinite_seen(be), 1);
    be->ops->nonfinite_reset(be);
    assert_int_equal(be->ops->nonfinite_seen(be), 0);

    vnp_buf *bufs[] = {&bt, &ba, &bi, &bo, &bg, &binf, &gam};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->free_buf(be, bufs[i]);
    be->ops->destroy(be);
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
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_embedding_gated_pool),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_bad_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
