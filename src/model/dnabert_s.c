/* DNABERT-S forward pass, as bert_layers.py (MosaicBERT) computes it with
 * its PyTorch attention path: LayerNorm(word + token_type[0]) embeddings (no
 * position embeddings); per layer, post-LN attention with a fused Wqkv and
 * ALiBi, then a post-LN gated-GELU MLP. */
#include <math.h>

#include "model/encoder_internal.h"

/* The gated MLP's up-projection: gelu(a) * g of [a | g] = x W1^T (+ b1), fused where the
 * backend has the op, else the GEMM into ffn and the gated GELU into ffn2. */
static vnp_code ffn_up(vnp_backend *be, const vnp_buf *x, const vnp_buf *w1, const vnp_buf *b1,
                       int T, int I, int H, vnp_buf *ffn, vnp_buf *ffn2, vnp_error *err)
{
    const vnp_backend_ops *ops = be->ops;
    if (ops->linear_gated_gelu)
        return ops->linear_gated_gelu(be, x, w1, b1, T, I, H, ffn, ffn2, err);
    vnp_code rc = ops->linear(be, x, w1, b1, VNP_ACT_NONE, NULL, T, 2 * I, H, ffn, err);
    return rc ? rc : ops->gated_gelu(be, ffn, T, I, ffn2, err);
}

static vnp_code dnabert_s_forward(vnp_encoder *enc, const vnp_batch *b, int T, int max_len,
                                  vnp_error *err)
{
    vnp_backend *be = enc->be;
    const vnp_backend_ops *ops = be->ops;
    const vnp_encoder_config *c = &enc->cfg;
    int H = c->hidden, I = c->intermediate, hd = H / c->heads;
    vnp_code rc;

    if ((rc = ops->embedding(be, &enc->tok_emb, &enc->ids, T, H, &enc->type_row, 1.0f, &enc->x,
                             err)) ||
        (rc = ops->layernorm(be, &enc->x, NULL, &enc->norm_g, &enc->norm_b, c->eps, T, H, &enc->x,
                             err)))
        return rc;

    for (int l = 0; l < c->layers; l++) {
        const vnp_layer_weights *w = &enc->layer[l];
        vnp_attn_desc d = {c->heads, hd, (float)(1.0 / sqrt((double)hd)), VNP_POS_ALIBI, NULL,
                           &enc->slopes};
        /* LayerNorm(h + x) is computed as LayerNorm(x + h) so that out aliases x. */
        if ((rc = ops->linear(be, &enc->x, &w->wqkv, &w->bqkv, VNP_ACT_NONE, NULL, T, 3 * H, H,
                              &enc->qkv, err)) ||
            (rc = ops->attention(be, &enc->qkv, &enc->cu, b->nseq, max_len, T, &d, &enc->attn,
                                 err)) ||
            (rc = ops->linear(be, &enc->attn, &w->wo, &w->bo, VNP_ACT_NONE, NULL, T, H, H,
                              &enc->h, err)) ||
            (rc = ops->layernorm(be, &enc->x, &enc->h, &w->ln1_g, &w->ln1_b, c->eps, T, H,
                                 &enc->x, err)) ||
            (rc = ffn_up(be, &enc->x, &w->w1, w->b1.ptr ? &w->b1 : NULL, T, I, H, &enc->ffn,
                         &enc->ffn2, err)) ||
            (rc = ops->linear(be, &enc->ffn2, &w->w2, &w->b2, VNP_ACT_NONE, NULL, T, H, I,
                              &enc->h, err)) ||
            (rc = ops->layernorm(be, &enc->x, &enc->h, &w->ln2_g, &w->ln2_b, c->eps, T, H,
                                 &enc->x, err))) {
            vnp_error_prefix(err, "DNABERT-S layer %d: ", l);
            return rc;
        }
    }
    return VNP_OK;
}

/* Every token is pooled. */
static void dnabert_s_pool_range(int start, int len, int32_t *begin, int32_t *end)
{
    *begin = start;
    *end = start + len;
}

static void dnabert_s_ffn_widths(const vnp_encoder_config *c, const vnp_backend *be,
                                 size_t *ffn, size_t *ffn2)
{
    /* gated_layers' output, unless the backend fuses it away (ffn_up) */
    const int fused = be->ops->linear_gated_gelu && be->ops->linear_gated_gelu_fused &&
                      be->ops->linear_gated_gelu_fused(be, c->intermediate, c->hidden);
    *ffn = fused ? 0 : 2 * (size_t)c->intermediate;
    *ffn2 = (size_t)c->intermediate; /* gated GELU's */
}

const vnp_encoder_arch vnp_dnabert_s_arch = {
    .kind = VNP_ENCODER_DNABERT_S,
    .name = "DNABERT-S",
    .model_type = "bert",
    .detect = vnp_dnabert_s_detect,
    .load_weights = vnp_dnabert_s_load_weights,
    .forward = dnabert_s_forward,
    .min_tokens = 1,
    .min_tokens_why = "1",
    .pool_range = dnabert_s_pool_range,
    .ffn_widths = dnabert_s_ffn_widths,
    /* h and x are residuals too (post-LN), ffn feeds the gated GELU */
    .gemm_inputs = VNP_WS_FFN2,
};
