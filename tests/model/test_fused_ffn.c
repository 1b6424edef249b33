/* The encoders' fused up-projection contract (backend.h, linear_gated_gelu_fused): where a
 * backend says linear_gated_gelu runs DNABERT-S's widths in one pass, the encoder
 * allocates no [tokens, 2 x intermediate] tmp for it (805 MB on a GPU at a budget of
 * 65536 tokens) and hands the op an empty buffer; where it says not, the tmp is there
 * and large enough. The backend is the CPU backend with linear_gated_gelu added: it
 * records the tmp it is given and computes through a private buffer (the CPU has no
 * fused kernel), so the embeddings must equal the plain backend's bit for bit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model_fixtures.h"
#include "test_support.h"

static const vnp_backend_ops *cpu_ops;
static int says_fused;    /* what linear_gated_gelu_fused answers */
static int calls, empty;  /* linear_gated_gelu calls; those given an empty tmp */
static size_t tmp_short;  /* calls given a tmp smaller than M x 2 x inter */

static int w_fused(const vnp_backend *be, int inter, int K)
{
    (void)be;
    assert_true(inter > 0 && K > 0);
    return says_fused;
}

static vnp_code w_linear_gated_gelu(vnp_backend *be, const vnp_buf *x, const vnp_buf *w,
                                    const vnp_buf *bias, int M, int inter, int K, vnp_buf *tmp,
                                    vnp_buf *out, vnp_error *err)
{
    calls++;
    if (!tmp->ptr && !tmp->n)
        empty++;
    else if (tmp->n < (size_t)M * 2 * inter)
        tmp_short++;
    vnp_buf t;
    vnp_code rc = cpu_ops->alloc_act(be, (size_t)M * 2 * inter, &t, err);
    if (rc)
        return rc;
    rc = cpu_ops->linear(be, x, w, bias, VNP_ACT_NONE, NULL, M, 2 * inter, K, &t, err);
    if (!rc)
        rc = cpu_ops->gated_gelu(be, &t, M, inter, out, err);
    cpu_ops->free_buf(be, &t);
    return rc;
}

/* Embeds the golden DNA frames through the wrapped backend (fused answering `fused`)
 * and the plain one. */
static void check(const golden_tokens *g, int fused)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP32, 1, &be, &err), VNP_OK);
    static vnp_backend_ops wrapped;
    cpu_ops = be->ops;
    assert_null(cpu_ops->linear_gated_gelu); /* (else this test wraps the wrong thing) */
    wrapped = *cpu_ops;
    wrapped.linear_gated_gelu = w_linear_gated_gelu;
    wrapped.linear_gated_gelu_fused = w_fused;
    says_fused = fused;
    calls = empty = 0;
    tmp_short = 0;
    float *out[2];
    packed p;
    pack_first(&p, g->dna, g->dna_len, g->n);
    size_t n = (size_t)g->n * 128;
    for (int k = 0; k < 2; k++) {
        be->ops = k ? cpu_ops : &wrapped;
        vnp_encoder *enc = NULL;
        if (vnp_encoder_load(vnp_test_fixture("golden/dnabert_s"), be, &enc, &err))
            fail_msg("loading golden/dnabert_s: %s", err.msg);
        out[k] = malloc(n * sizeof(float));
        if (vnp_encoder_embed(enc, &p.b, out[k], &err))
            fail_msg("golden/dnabert_s: %s", err.msg);
        vnp_encoder_free(enc);
    }
    assert_true(calls > 0);                     /* every layer's up-projection */
    assert_int_equal(empty, fused ? calls : 0); /* no tmp exactly when fused */
    assert_int_equal(tmp_short, 0);
    same_outputs_then_free(out, n, &p, be, cpu_ops);
    vnp_backend_free(be);
}

static void test_fused_no_tmp(void **state)
{
    check(*state, 1);
}

static void test_unfused_tmp(void **state)
{
    check(*state, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_no_tmp),
        cmocka_unit_test(test_unfused_tmp),
    };
    return cmocka_run_group_tests(tests, golden_tokens_group_setup, golden_tokens_group_teardown);
}
