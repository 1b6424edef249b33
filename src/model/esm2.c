/* ESM-2 forward pass, as fair-esm's ESM2 computes it at inference:
 * token embedding x (1 - 0.15*0.8) / (1 - mask ratio) with <mask> rows zeroed
 * (token dropout); per layer pre-LN attention with rotary positions and
 * pre-LN erf-GELU feed-forward, each added to the residual stream; a final
 * LayerNorm (emb_layer_norm_after). */
#include <math.h>
#include <stdlib.h>

#include "model/encoder_internal.h"

#define ESM_MASK_RATIO_TRAIN (0.15 * 0.8)

vnp_code vnp_esm2_forward(vnp_encoder *enc, const vnp_batch *b, int T, int max_len,
                          vnp_error *err)
{
    vnp_backend *be = enc->be;
    const vnp_backend_ops *ops = be->ops;
    const vnp_encoder_config *c = &enc->cfg;
    int H = c->hidden, I = c->intermediate, hd = H / c->heads;
    vnp_code rc;

    float base = c->token_dropout ? (float)(1.0 - ESM_MASK_RATIO_TRAIN) : 1.0f;
    if ((rc = ops->embedding(be, &enc->tok_emb, &enc->ids, T, H, NULL, base, &enc->x, err)))
        return rc;
    /* Sequences with <mask> tokens are rescaled by their own observed ratio. */
    for (int s = 0; c->token_dropout && s < b->nseq; s++) {
        int start = b->cu_seqlens[s], len = b->cu_seqlens[s + 1] - start, masks = 0;
        for (int i = start; i < start + len; i++)
            masks += b->tokens[i] == c->mask_id;
        if (!masks)
            continue;
        float ratio = (float)masks / (float)len;
        vnp_buf ids = vnp_buf_rows(&enc->ids, (size_t)start, (size_t)len, 1);
        vnp_buf x = vnp_buf_rows(&enc->x, (size_t)start, (size_t)len, (size_t)H);
        if ((rc = ops->embedding(be, &enc->tok_emb, &ids, len, H, NULL, base / (1.0f - ratio), &x,
                                 err)))
            return rc;
    }

    for (int l = 0; l < c->layers; l++) {
        const vnp_layer_weights *w = &enc->layer[l];
        vnp_attn_desc d = {c->heads, hd, (float)pow((double)hd, -0.5), VNP_POS_ROTARY, &w->inv_freq,
                           NULL};
        if ((rc = ops->layernorm(be, &enc->x, NULL, &w->ln1_g, &w->ln1_b, c->eps, T, H, &enc->h,
                                 err)) ||
            (rc = ops->linear(be, &enc->h, &w->wqkv, &w->bqkv, VNP_ACT_NONE, NULL, T, 3 * H, H,
                              &enc->qkv, err)) ||
            (rc = ops->attention(be, &enc->qkv, &enc->cu, b->nseq, max_len, T, &d, &enc->attn,
                                 err)) ||
            (rc = ops->linear(be, &enc->attn, &w->wo, &w->bo, VNP_ACT_NONE, &enc->x, T, H, H,
                              &enc->x, err)) ||
            (rc = ops->layernorm(be, &enc->x, NULL, &w->ln2_g, &w->ln2_b, c->eps, T, H, &enc->h,
                                 err)) ||
            (rc = ops->linear(be, &enc->h, &w->w1, &w->b1, VNP_ACT_GELU_ERF, NULL, T, I, H,
                              &enc->ffn, err)) ||
            (rc = ops->linear(be, &enc->ffn, &w->w2, &w->b2, VNP_ACT_NONE, &enc->x, T, H, I,
                              &enc->x, err))) {
            vnp_error_prefix(err, "ESM-2 layer %d: ", l);
            return rc;
        }
    }
    return ops->layernorm(be, &enc->x, NULL, &enc->norm_g, &enc->norm_b, c->eps, T, H, &enc->x,
                          err);
}
