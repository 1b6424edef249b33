/* The GEMM-input contract of the encoders (backend.h, alloc_gemm_in): the workspace
 * buffers that an architecture marks as GEMM inputs (vnp_encoder_arch.gemm_inputs) are
 * written only as the out of layernorm / linear / gated_gelu and read only as the x of
 * linear. An FP8 backend stores them as E4M3 rows with scales, which no other op can
 * read: a model change that reads one as a residual, an attention input or a pooled
 * row would break FP8 on the GPU, so it fails here first, on the CPU. The backend is
 * the CPU backend with every op wrapped: alloc_gemm_in hands out ordinary activations
 * and records their ranges, and each op checks the roles its buffers play. Also
 * checked: both encoders do use such buffers (ESM-2 two, DNABERT-S one), each is
 * written before it is read, and the embeddings are the unwrapped backend's, bit for
 * bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model_fixtures.h"
#include "test_support.h"

#define MAX_GI 8
static struct gi {
    const char *lo, *hi; /* [lo, hi) */
    size_t writes, reads;
} gi[MAX_GI];
static int ngi;
static const vnp_backend_ops *cpu_ops;

static vnp_code w_alloc_gemm_in(vnp_backend *be, size_t rows, size_t K, vnp_buf *out,
                                vnp_error *err)
{
    vnp_code rc = cpu_ops->alloc_act(be, rows * K, out, err);
    if (!rc && out->n) {
        assert_true(ngi < MAX_GI);
        gi[ngi].lo = out->ptr;
        gi[ngi].hi = (const char *)out->ptr + out->n * sizeof(float);
        gi[ngi].writes = gi[ngi].reads = 0;
        ngi++;
    }
    return rc;
}

static void w_free_buf(vnp_backend *be, vnp_buf *b)
{
    for (int i = 0; b && i < ngi; i++)
        if (gi[i].lo == b->ptr) {
            gi[i] = gi[--ngi];
            break;
        }
    cpu_ops->free_buf(be, b);
}

/* The GEMM input that buffer (or view) b points into, or NULL. */
static struct gi *gi_of(const vnp_buf *b)
{
    if (!b || !b->ptr)
        return NULL;
    for (int i = 0; i < ngi; i++)
        if ((const char *)b->ptr >= gi[i].lo && (const char *)b->ptr < gi[i].hi)
            return &gi[i];
    return NULL;
}

/* b must not be a GEMM input (the op reads it as something else). */
static void not_gi(const vnp_buf *b, const char *op, const char *role)
{
    if (gi_of(b))
        fail_msg("%s reads a GEMM input buffer as its %s: an FP8 backend stores those as "
                 "E4M3 rows; allocate that buffer with alloc_act",
                 op, role);
}

static void wrote(const vnp_buf *out)
{
    struct gi *g = gi_of(out);
    if (g)
        g->writes++;
}

static vnp_code w_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                         vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                         vnp_error *err)
{
    struct gi *g = gi_of(x);
    if (g) {
        if (!g->writes)
            fail_msg("linear reads a GEMM input buffer before anything wrote it");
        g->reads++;
    }
    not_gi(residual, "linear", "residual");
    if (gi_of(out) && (residual || (act != VNP_ACT_NONE && act != VNP_ACT_GELU_ERF)))
        fail_msg("linear writes a GEMM input buffer with a residual or an activation other "
                 "than GELU (what an FP8 backend's quantising writer takes)");
    wrote(out);
    return cpu_ops->linear(be, x, w, bias, act, residual, M, N, K, out, err);
}

static vnp_code w_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                            const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                            vnp_buf *out, vnp_error *err)
{
    not_gi(x, "layernorm", "input");
    not_gi(residual, "layernorm", "residual");
    wrote(out);
    return cpu_ops->layernorm(be, x, residual, gamma, beta, eps, M, H, out, err);
}

static vnp_code w_gated_gelu(vnp_backend *be, const vnp_buf *x, int M, int inter, vnp_buf *out,
                             vnp_error *err)
{
    not_gi(x, "gated_gelu", "input");
    wrote(out);
    return cpu_ops->gated_gelu(be, x, M, inter, out, err);
}

static vnp_code w_attention(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu, int nseq,
                            int max_len, int T, const vnp_attn_desc *d, vnp_buf *out,
                            vnp_error *err)
{
    not_gi(qkv, "attention", "qkv");
    not_gi(out, "attention", "output (only layernorm, linear and gated_gelu write them)");
    return cpu_ops->attention(be, qkv, cu, nseq, max_len, T, d, out, err);
}

static vnp_code w_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                            int nseq, vnp_buf *out, int ld, int col, vnp_error *err)
{
    not_gi(x, "mean_pool", "input");
    return cpu_ops->mean_pool(be, x, H, ranges, nseq, out, ld, col, err);
}

static vnp_code w_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                            int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                            vnp_error *err)
{
    not_gi(out, "embedding", "output (only layernorm, linear and gated_gelu write them)");
    return cpu_ops->embedding(be, table, ids, T, H, add_row, scale, out, err);
}

static vnp_code w_download_f32(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                               vnp_error *err)
{
    not_gi(src, "download_f32", "source");
    return cpu_ops->download_f32(be, src, n, dst, err);
}

static vnp_code w_download_f32_async(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                     vnp_error *err)
{
    not_gi(src, "download_f32_async", "source");
    return cpu_ops->download_f32_async(be, src, n, dst, err);
}

/* Embeds every golden ORF of one model through the wrapped backend and the plain one;
 * `want` GEMM input buffers in use. */
static void check(const golden_tokens *g, const char *rel, int dna, int want)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP32, 1, &be, &err), VNP_OK);
    static vnp_backend_ops wrapped;
    cpu_ops = be->ops;
    assert_null(cpu_ops->alloc_gemm_in); /* the CPU keeps FP32 activations */
    wrapped = *cpu_ops;
    wrapped.alloc_gemm_in = w_alloc_gemm_in;
    wrapped.free_buf = w_free_buf;
    wrapped.linear = w_linear;
    wrapped.layernorm = w_layernorm;
    wrapped.gated_gelu = w_gated_gelu;
    wrapped.attention = w_attention;
    wrapped.mean_pool = w_mean_pool;
    wrapped.embedding = w_embedding;
    wrapped.download_f32 = w_download_f32;
    wrapped.download_f32_async = w_download_f32_async;
    float *out[2];
    packed p;
    pack_first(&p, dna ? g->dna : g->esm, dna ? g->dna_len : g->esm_len, g->n);
    size_t n = (size_t)g->n * 128;
    for (int k = 0; k < 2; k++) {
        be->ops = k ? cpu_ops : &wrapped;
        ngi = 0;
        vnp_encoder *enc = NULL;
        if (vnp_encoder_load(vnp_test_fixture(rel), be, &enc, &err))
            fail_msg("loading %s: %s", rel, err.msg);
        out[k] = malloc(n * sizeof(float));
        if (vnp_encoder_embed(enc, &p.b, out[k], &err))
            fail_msg("%s: %s", rel, err.msg);
        if (k == 0) {
            assert_int_equal(ngi, want);
            for (int i = 0; i < ngi; i++) {
                assert_true(gi[i].writes > 0);
                assert_int_equal(gi[i].reads, gi[i].writes); /* each written row set read once */
            }
        }
        vnp_encoder_free(enc);
        if (k == 0)
            assert_int_equal(ngi, 0); /* freed with the encoder */
    }
    same_outputs_then_free(out, n, &p, be, cpu_ops);
    vnp_backend_free(be);
}

/* h (LayerNorm -> q|k|v and fc1) and ffn (fc1 + GELU -> fc2) */
static void test_esm2(void **state)
{
    check(*state, "golden/esm2", 0, 2);
}

/* ffn2 (gated GELU -> the output GEMM); h and x are residuals (post-LN) */
static void test_dnabert_s(void **state)
{
    check(*state, "golden/dnabert_s", 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_esm2),
        cmocka_unit_test(test_dnabert_s),
    };
    return cmocka_run_group_tests(tests, golden_tokens_group_setup, golden_tokens_group_teardown);
}
