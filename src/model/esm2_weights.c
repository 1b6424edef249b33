/* ESM-2 name mapping: the Hugging Face layout (with or without the "esm."
 * prefix; one rotary inv_freq per layer or a single shared one) and fair-esm's
 * own layout ("encoder.sentence_encoder." names, cfg attributes). Unused
 * tensors (lm_head, contact_head, position ids) are ignored. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/encoder_internal.h"

typedef struct {
    const char *emb;
    const char *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const char *ln1_g, *ln1_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln2_g, *ln2_b;
    const char *inv_freq;
    const char *final_g, *final_b;
} esm_names;

static const esm_names hf_names = {
    "embeddings.word_embeddings.weight",
    "encoder.layer.%d.attention.self.query.weight",
    "encoder.layer.%d.attention.self.query.bias",
    "encoder.layer.%d.attention.self.key.weight",
    "encoder.layer.%d.attention.self.key.bias",
    "encoder.layer.%d.attention.self.value.weight",
    "encoder.layer.%d.attention.self.value.bias",
    "encoder.layer.%d.attention.output.dense.weight",
    "encoder.layer.%d.attention.output.dense.bias",
    "encoder.layer.%d.attention.LayerNorm.weight",
    "encoder.layer.%d.attention.LayerNorm.bias",
    "encoder.layer.%d.intermediate.dense.weight",
    "encoder.layer.%d.intermediate.dense.bias",
    "encoder.layer.%d.output.dense.weight",
    "encoder.layer.%d.output.dense.bias",
    "encoder.layer.%d.LayerNorm.weight",
    "encoder.layer.%d.LayerNorm.bias",
    "encoder.layer.%d.attention.self.rotary_embeddings.inv_freq",
    "encoder.emb_layer_norm_after.weight",
    "encoder.emb_layer_norm_after.bias",
};

static const esm_names fair_names = {
    "embed_tokens.weight",
    "layers.%d.self_attn.q_proj.weight",
    "layers.%d.self_attn.q_proj.bias",
    "layers.%d.self_attn.k_proj.weight",
    "layers.%d.self_attn.k_proj.bias",
    "layers.%d.self_attn.v_proj.weight",
    "layers.%d.self_attn.v_proj.bias",
    "layers.%d.self_attn.out_proj.weight",
    "layers.%d.self_attn.out_proj.bias",
    "layers.%d.self_attn_layer_norm.weight",
    "layers.%d.self_attn_layer_norm.bias",
    "layers.%d.fc1.weight",
    "layers.%d.fc1.bias",
    "layers.%d.fc2.weight",
    "layers.%d.fc2.bias",
    "layers.%d.final_layer_norm.weight",
    "layers.%d.final_layer_norm.bias",
    "layers.%d.self_attn.rot_emb.inv_freq",
    "emb_layer_norm_after.weight",
    "emb_layer_norm_after.bias",
};

/* Single shared inverse-frequency buffers some exports carry instead of one per layer. */
static const char *const shared_inv_freq[] = {"rotary_embeddings.inv_freq",
                                              "encoder.rotary_embeddings.inv_freq",
                                              "embeddings.rotary_embeddings.inv_freq"};

static int has(const vnp_tensor_map *m, const char *prefix, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return vnp_tensor_map_get(m, full) != NULL;
}

/* The Hugging Face names (with or without "esm."), then fair-esm's. */
int vnp_esm2_detect(const vnp_tensor_map *m, const char **prefix, int *layout)
{
    static const char *const hf[] = {"esm.", ""};
    for (size_t i = 0; i < 2; i++)
        if (has(m, hf[i], "embeddings.word_embeddings.weight") &&
            has(m, hf[i], "encoder.layer.0.attention.self.query.weight")) {
            *prefix = hf[i];
            *layout = 0;
            return 1;
        }
    static const char *const fair[] = {"model.encoder.sentence_encoder.",
                                       "encoder.sentence_encoder.", "model.", ""};
    for (size_t i = 0; i < 4; i++)
        if (has(m, fair[i], "embed_tokens.weight") &&
            has(m, fair[i], "layers.0.self_attn.q_proj.weight")) {
            *prefix = fair[i];
            *layout = 1;
            return 1;
        }
    return 0;
}

/* prefix + printf(template, layer) */
static const char *name_of(char *buf, size_t cap, const char *prefix, const char *tmpl, int layer)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", prefix);
    snprintf(buf + n, cap - n, tmpl, layer);
    return buf;
}

vnp_code vnp_esm2_load_weights(vnp_encoder *enc, const vnp_weight_src *src, const char *prefix,
                               int layout, vnp_error *err)
{
    const esm_names *nm = layout == 1 ? &fair_names : &hf_names;
    const vnp_encoder_config *c = &enc->cfg;
    int64_t H = c->hidden, I = c->intermediate, hd = c->hidden / c->heads;
    char n0[256], n1[256], n2[256];
    vnp_code rc;

    /* More layers in the checkpoint than the configuration names: a mismatch. */
    if (vnp_tensor_map_get(src->map, name_of(n0, sizeof n0, prefix, nm->q_w, c->layers)))
        return vnp_fail(err, VNP_ESHAPE,
                        "'%s': the checkpoint has a layer %d but its configuration says %d "
                        "layers; the config does not belong to these weights",
                        src->path, c->layers, c->layers);

    /* Token dropout maps <mask> to an extra zero row of the table. */
    name_of(n0, sizeof n0, prefix, nm->emb, 0);
    if ((rc = vnp_weight_upload_table(src, n0, c->vocab, H, c->token_dropout ? 1 : 0,
                                      &enc->tok_emb, err)))
        return rc;
    if ((rc = vnp_weight_upload(src, name_of(n0, sizeof n0, prefix, nm->final_g, 0),
                                VNP_WEIGHT_VECTOR, H, 0, &enc->norm_g, err)) ||
        (rc = vnp_weight_upload(src, name_of(n0, sizeof n0, prefix, nm->final_b, 0),
                                VNP_WEIGHT_VECTOR, H, 0, &enc->norm_b, err)))
        return rc;

    /* The rotary frequencies: per layer, or one shared buffer. */
    const vnp_tensor *shared = NULL;
    for (size_t i = 0; !shared && i < sizeof shared_inv_freq / sizeof shared_inv_freq[0]; i++)
        shared = vnp_tensor_map_get(src->map, name_of(n1, sizeof n1, prefix, shared_inv_freq[i], 0));

    for (int l = 0; l < c->layers; l++) {
        vnp_layer_weights *w = &enc->layer[l];
        const char *qkv_w[3] = {name_of(n0, sizeof n0, prefix, nm->q_w, l),
                                name_of(n1, sizeof n1, prefix, nm->k_w, l),
                                name_of(n2, sizeof n2, prefix, nm->v_w, l)};
        int64_t rows[3] = {H, H, H};
        if ((rc = vnp_weight_upload_concat(src, qkv_w, rows, 3, H, VNP_WEIGHT_GEMM, &w->wqkv, err)))
            return rc;
        const char *qkv_b[3] = {name_of(n0, sizeof n0, prefix, nm->q_b, l),
                                name_of(n1, sizeof n1, prefix, nm->k_b, l),
                                name_of(n2, sizeof n2, prefix, nm->v_b, l)};
        if ((rc = vnp_weight_upload_concat(src, qkv_b, rows, 3, 0, VNP_WEIGHT_BIAS, &w->bqkv, err)))
            return rc;
        const vnp_weight_kind G = VNP_WEIGHT_GEMM, B = VNP_WEIGHT_BIAS, V = VNP_WEIGHT_VECTOR;
        struct {
            const char *tmpl;
            vnp_weight_kind kind;
            int64_t r, c;
            vnp_buf *dst;
        } plain[] = {
            {nm->o_w, G, H, H, &w->wo},      {nm->o_b, B, H, 0, &w->bo},
            {nm->ln1_g, V, H, 0, &w->ln1_g}, {nm->ln1_b, V, H, 0, &w->ln1_b},
            {nm->fc1_w, G, I, H, &w->w1},    {nm->fc1_b, B, I, 0, &w->b1},
            {nm->fc2_w, G, H, I, &w->w2},    {nm->fc2_b, B, H, 0, &w->b2},
            {nm->ln2_g, V, H, 0, &w->ln2_g}, {nm->ln2_b, V, H, 0, &w->ln2_b},
        };
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
            if ((rc = vnp_weight_upload(src, name_of(n0, sizeof n0, prefix, plain[i].tmpl, l),
                                        plain[i].kind, plain[i].r, plain[i].c, plain[i].dst, err)))
                return rc;

        int64_t fshape[1] = {hd / 2};
        const vnp_tensor *inv = NULL;
        name_of(n0, sizeof n0, prefix, nm->inv_freq, l);
        if (vnp_tensor_map_get(src->map, n0) || !shared) {
            if ((rc = vnp_weight_get(src, n0, 1, fshape, &inv, err)))
                return rc;
        } else {
            if ((rc = vnp_weight_get(src, shared->name, 1, fshape, &inv, err)))
                return rc;
        }
        if ((rc = vnp_weight_upload_f32(src, inv, &w->inv_freq, err)))
            return rc;
    }
    return VNP_OK;
}

/* A cfg value of a fair-esm checkpoint, under the names torch.save gave it. */
static int fair_num(const vnp_tensor_map *m, const char *field, double *v)
{
    char key[128];
    static const char *const prefixes[] = {"cfg.model.", "args.", "cfg."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(key, sizeof key, "%s%s", prefixes[i], field);
        if (vnp_tensor_map_num(m, key, v))
            return 1;
    }
    return 0;
}

vnp_code vnp_esm2_config_fairesm(const vnp_tensor_map *m, const char *path, const char *prefix,
                                 vnp_encoder_config *cfg, vnp_error *err)
{
    static const char *const fields[] = {"encoder_layers", "encoder_embed_dim",
                                         "encoder_attention_heads"};
    double v[3];
    for (int i = 0; i < 3; i++)
        if (!fair_num(m, fields[i], &v[i]) || v[i] < 1 || v[i] != floor(v[i]) || v[i] > 1e9)
            return vnp_fail(err, VNP_EFORMAT,
                            "'%s': fair-esm checkpoint without a usable cfg.model.%s; re-download "
                            "the model or use the Hugging Face layout with config.json",
                            path, fields[i]);
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = VNP_ENCODER_ESM2;
    cfg->layers = (int)v[0];
    cfg->hidden = (int)v[1];
    cfg->heads = (int)v[2];
    cfg->intermediate = 4 * cfg->hidden; /* fair-esm's ESM2 fixes fc1 at 4 x embed_dim */
    cfg->vocab = 33;
    cfg->mask_id = 32;
    cfg->eps = 1e-5f; /* torch.nn.LayerNorm's default, as fair-esm builds it */
    double td = 0;
    cfg->token_dropout = fair_num(m, "token_dropout", &td) ? td != 0 : 1;
    if (cfg->hidden % cfg->heads || (cfg->hidden / cfg->heads) % 2)
        return vnp_fail(err, VNP_EFORMAT,
                        "'%s': encoder_embed_dim %d is not a multiple of encoder_attention_heads "
                        "%d with an even head size",
                        path, cfg->hidden, cfg->heads);
    /* fair-esm's vocabulary is its alphabet's size, as the table says */
    char n[256];
    snprintf(n, sizeof n, "%sembed_tokens.weight", prefix);
    const vnp_tensor *t = vnp_tensor_map_get(m, n);
    if (t->ndim == 2 && t->shape[0] >= 1 && t->shape[0] < (1 << 24))
        cfg->vocab = (int)t->shape[0];
    return VNP_OK;
}
