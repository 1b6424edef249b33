/* ESM-2 forward pass, as fair-esm's ESM2 computes it at inference:
 * token embedding x (1 - 0.15*0.8) / (1 - mask ratio) with <mask> rows zeroed
 * (token dropout); per layer pre-LN attention with rotary positions and
 * pre-LN erf-GELU feed-forward, each added to the residual stream; a final
 * LayerNorm (emb_layer_norm_after). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/encoder_internal.h"

#define ESM_MASK_RATIO_TRAIN (0.15 * 0.8)

static vnp_code esm2_forward(vnp_encoder *enc, const vnp_batch *b, int T, int max_len,
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

/* config.json: token dropout, rotary positions, no ESM-1b embedding LayerNorm. */
static vnp_code esm2_config_json(const cJSON *root, const char *path, vnp_encoder_config *cfg,
                                 vnp_error *err)
{
    cfg->token_dropout = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "token_dropout"));
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(root, "position_embedding_type");
    if (pe && !(cJSON_IsString(pe) && !strcmp(pe->valuestring, "rotary")))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "'%s': position_embedding_type \"%s\" is not supported; ESM-2 uses "
                        "\"rotary\"",
                        path, cJSON_IsString(pe) ? pe->valuestring : "?");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "emb_layer_norm_before")))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "'%s': emb_layer_norm_before is true (an ESM-1b layout); only ESM-2 "
                        "models are supported",
                        path);
    return VNP_OK;
}

/* <mask> reads the zero row appended to the table when token dropout is on. */
static int32_t esm2_embed_id(const vnp_encoder_config *c, int32_t id)
{
    return c->token_dropout && id == c->mask_id ? c->vocab : id;
}

/* Residues 1..min(1024, L) of <cls> residues <eos>. */
#define ESM_POOL_MAX 1024
static void esm2_pool_range(int start, int len, int32_t *begin, int32_t *end)
{
    int residues = len - 2;
    *begin = start + 1;
    *end = start + 1 + (residues < ESM_POOL_MAX ? residues : ESM_POOL_MAX);
}

static void esm2_ffn_widths(const vnp_encoder_config *c, const vnp_backend *be, size_t *ffn,
                            size_t *ffn2)
{
    (void)be;
    *ffn = (size_t)c->intermediate; /* fc1's output */
    *ffn2 = 0;
}

const vnp_encoder_arch vnp_esm2_arch = {
    .kind = VNP_ENCODER_ESM2,
    .name = "ESM-2",
    .model_type = "esm",
    .detect = vnp_esm2_detect,
    .config_json = esm2_config_json,
    .even_head_dim = 1,
    .config_layouts = 1u << 1, /* fair-esm's cfg attributes */
    .config_checkpoint = vnp_esm2_config_fairesm,
    .load_weights = vnp_esm2_load_weights,
    .forward = esm2_forward,
    .min_tokens = 3,
    .min_tokens_why = "3 (<cls>, one residue, <eos>)",
    .embed_id = esm2_embed_id,
    .pool_range = esm2_pool_range,
    .ffn_widths = esm2_ffn_widths,
    .gemm_inputs = VNP_WS_H | VNP_WS_FFN, /* LayerNorm -> QKV / fc1, fc1 + GELU -> fc2 */
};
