/* DNABERT-S name mapping (MosaicBERT layout of bert_layers.py), with or
 * without the "bert." prefix of BertForMaskedLM checkpoints. Unused tensors
 * (pooler, cls head, position embeddings, token_type_ids buffers) are ignored. */
#include <stdio.h>
#include <stdlib.h>

#include "model/encoder_internal.h"

static int has(const vnp_tensor_map *m, const char *prefix, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return vnp_tensor_map_get(m, full) != NULL;
}

int vnp_dnabert_s_detect(const vnp_tensor_map *m, const char **prefix, int *layout)
{
    static const char *const prefixes[] = {"bert.", ""};
    for (size_t i = 0; i < 2; i++)
        if (has(m, prefixes[i], "embeddings.word_embeddings.weight") &&
            has(m, prefixes[i], "encoder.layer.0.attention.self.Wqkv.weight")) {
            *prefix = prefixes[i];
            *layout = 0;
            return 1;
        }
    return 0;
}

vnp_code vnp_dnabert_s_load_weights(vnp_encoder *enc, const vnp_weight_src *src, const char *prefix,
                                    int layout, vnp_error *err)
{
    const vnp_encoder_config *c = &enc->cfg;
    int64_t H = c->hidden, I = c->intermediate;
    char n[256];
    vnp_code rc;

    snprintf(n, sizeof n, "%sencoder.layer.%d.attention.self.Wqkv.weight", prefix, c->layers);
    if (vnp_tensor_map_get(src->map, n))
        return vnp_fail(err, VNP_ESHAPE,
                        "'%s': the checkpoint has a layer %d but its configuration says %d "
                        "layers; the config does not belong to these weights",
                        src->path, c->layers, c->layers);

    snprintf(n, sizeof n, "%sembeddings.word_embeddings.weight", prefix);
    if ((rc = vnp_weight_upload_table(src, n, c->vocab, H, 0, &enc->tok_emb, err)))
        return rc;
    /* token_type_embeddings: every token has type 0, so only row 0 is used. */
    snprintf(n, sizeof n, "%sembeddings.token_type_embeddings.weight", prefix);
    const vnp_tensor *tt = vnp_tensor_map_get(src->map, n);
    if (!tt || tt->ndim != 2 || tt->shape[1] != H || tt->shape[0] < 1) {
        char got[96];
        if (!tt)
            return vnp_fail(err, VNP_ESHAPE,
                            "'%s': tensor '%s' is missing (expected shape [type_vocab_size, %d])",
                            src->path, n, (int)H);
        return vnp_fail(err, VNP_ESHAPE, "'%s': tensor '%s' has shape %s; expected [*, %d]",
                        src->path, n, vnp_shape_str(tt->shape, tt->ndim, got, sizeof got), (int)H);
    }
    const vnp_tensor *row0;
    int64_t tshape[2] = {tt->shape[0], H};
    if ((rc = vnp_weight_get(src, n, 2, tshape, &row0, err)))
        return rc;
    vnp_tensor first = *row0;
    first.ndim = 1;
    first.shape[0] = H;
    first.nbytes = (size_t)H * vnp_dtype_size(row0->dtype);
    if ((rc = src->be->ops->upload_weight(src->be, &first, VNP_WEIGHT_VECTOR, &enc->type_row, err)))
        return rc;
    snprintf(n, sizeof n, "%sembeddings.LayerNorm.weight", prefix);
    if ((rc = vnp_weight_upload(src, n, VNP_WEIGHT_VECTOR, H, 0, &enc->norm_g, err)))
        return rc;
    snprintf(n, sizeof n, "%sembeddings.LayerNorm.bias", prefix);
    if ((rc = vnp_weight_upload(src, n, VNP_WEIGHT_VECTOR, H, 0, &enc->norm_b, err)))
        return rc;

    for (int l = 0; l < c->layers; l++) {
        vnp_layer_weights *w = &enc->layer[l];
        const vnp_weight_kind G = VNP_WEIGHT_GEMM, B = VNP_WEIGHT_BIAS, V = VNP_WEIGHT_VECTOR;
        struct {
            const char *suffix;
            vnp_weight_kind kind;
            int64_t r, c;
            vnp_buf *dst;
        } plain[] = {
            {"attention.self.Wqkv.weight", G, 3 * H, H, &w->wqkv},
            {"attention.self.Wqkv.bias", B, 3 * H, 0, &w->bqkv},
            {"attention.output.dense.weight", G, H, H, &w->wo},
            {"attention.output.dense.bias", B, H, 0, &w->bo},
            {"attention.output.LayerNorm.weight", V, H, 0, &w->ln1_g},
            {"attention.output.LayerNorm.bias", V, H, 0, &w->ln1_b},
            {"mlp.gated_layers.weight", G, 2 * I, H, &w->w1},
            {"mlp.wo.weight", G, H, I, &w->w2},
            {"mlp.wo.bias", B, H, 0, &w->b2},
            {"mlp.layernorm.weight", V, H, 0, &w->ln2_g},
            {"mlp.layernorm.bias", V, H, 0, &w->ln2_b},
        };
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
            snprintf(n, sizeof n, "%sencoder.layer.%d.%s", prefix, l, plain[i].suffix);
            if ((rc = vnp_weight_upload(src, n, plain[i].kind, plain[i].r, plain[i].c, plain[i].dst,
                                        err)))
                return rc;
        }
        /* bert_layers.py builds gated_layers without a bias; use one if a variant has it. */
        snprintf(n, sizeof n, "%sencoder.layer.%d.mlp.gated_layers.bias", prefix, l);
        if (vnp_tensor_map_get(src->map, n) &&
            (rc = vnp_weight_upload(src, n, VNP_WEIGHT_BIAS, 2 * I, 0, &w->b1, err)))
            return rc;
    }
    float *slopes = malloc((size_t)c->heads * sizeof(float));
    if (!slopes)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_alibi_slopes(c->heads, slopes);
    rc = src->be->ops->upload_f32(src->be, slopes, (size_t)c->heads, &enc->slopes, err);
    free(slopes);
    return rc;
}
