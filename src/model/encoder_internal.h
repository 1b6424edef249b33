/* Internals of the transformer encoders: configuration, weights in backend
 * memory, and the per-batch workspace. ESM-2 and DNABERT-S share the layout
 * of a layer (attention + feed-forward), each field documented per model. */
#ifndef VNP_ENCODER_INTERNAL_H
#define VNP_ENCODER_INTERNAL_H

#include <stddef.h>

#include "backend/backend.h"
#include "virnucpro/model.h"
#include "virnucpro/tensor.h"

typedef struct vnp_encoder_config {
    vnp_encoder_kind kind;
    int hidden;        /* H */
    int layers;
    int heads;
    int intermediate;  /* I: ESM-2 fc1 width; DNABERT-S half of gated_layers */
    int vocab;
    float eps;         /* LayerNorm epsilon */
    int token_dropout; /* ESM-2: rescale embeddings by (1 - 0.15*0.8) / (1 - mask ratio) */
    int mask_id;       /* ESM-2 <mask> */
} vnp_encoder_config;

/* The configuration of a Hugging Face config.json: the fields every architecture has,
 * then the architecture's own (its config_json), the architecture chosen by model_type. */
vnp_code vnp_config_from_json(const char *json_path, vnp_encoder_config *cfg, vnp_error *err);

typedef struct vnp_layer_weights {
    /* ESM-2: attention's pre-LayerNorm; DNABERT-S: attention.output.LayerNorm (post) */
    vnp_buf ln1_g, ln1_b;
    vnp_buf wqkv, bqkv; /* [3H, H], [3H]: q | k | v, heads contiguous in each */
    vnp_buf wo, bo;     /* attention output projection [H, H] */
    /* ESM-2: feed-forward pre-LayerNorm; DNABERT-S: mlp.layernorm (post) */
    vnp_buf ln2_g, ln2_b;
    vnp_buf w1, b1;     /* ESM-2 fc1 [I, H] + bias; DNABERT-S gated_layers [2I, H], no bias */
    vnp_buf w2, b2;     /* ESM-2 fc2 / DNABERT-S mlp.wo: [H, I] + bias */
    vnp_buf inv_freq;   /* ESM-2 rotary inverse frequencies [head_dim / 2], F32 */
} vnp_layer_weights;

typedef struct vnp_encoder_arch vnp_encoder_arch;

struct vnp_encoder {
    vnp_encoder_config cfg;
    const vnp_encoder_arch *arch;
    vnp_backend *be;
    char source[512]; /* the checkpoint path, for messages */

    /* ESM-2: word embeddings with one extra zero row (index vocab) that <mask>
     * tokens are mapped to when token dropout is on.
     * DNABERT-S: word embeddings; type_row = token_type_embeddings[0]. */
    vnp_buf tok_emb, type_row;
    /* ESM-2: emb_layer_norm_after; DNABERT-S: embeddings.LayerNorm. */
    vnp_buf norm_g, norm_b;
    vnp_buf slopes; /* DNABERT-S ALiBi slopes [heads], F32 */
    vnp_layer_weights *layer;

    /* workspace, grown to the largest batch seen */
    size_t ws_tokens, ws_seqs;
    vnp_buf x, h, qkv, attn, ffn, ffn2, ids, cu;
    vnp_buf ranges; /* I32 [2 * ws_seqs]: pooling row ranges (begins, then ends) */
    vnp_buf pooled; /* F32 [ws_seqs * hidden]: the synchronous embed's result */
    /* Host staging of a queued batch's ids, cu_seqlens and pooling ranges (host_alloc:
     * pinned on CUDA, so that the uploads are asynchronous). Two slots, so that one
     * batch can be prepared while the previous one still runs. */
    struct vnp_enc_stage {
        int32_t *ids, *cu, *ranges;
        size_t ids_cap, seq_cap;
    } stage[2];
};

/* ---- helpers shared by the two models (encoder.c) ---- */

/* A view of rows [row, row + nrows) of a [*, width] buffer. */
vnp_buf vnp_buf_rows(const vnp_buf *b, size_t row, size_t nrows, size_t width);

/* ---- shape-checked weight lookup (weight_pick.c) ---- */
typedef struct vnp_weight_src {
    const vnp_tensor_map *map;
    const char *path;   /* checkpoint file, for messages */
    vnp_backend *be;
} vnp_weight_src;

/* The tensor `name` with exactly the given shape and a floating-point dtype,
 * or VNP_ESHAPE naming it with the expected and found shape. */
vnp_code vnp_weight_get(const vnp_weight_src *src, const char *name, int ndim,
                        const int64_t *shape, const vnp_tensor **out, vnp_error *err);
/* Looks up and uploads a weight of the given role: a GEMM weight [rows, cols], or a
 * vector [rows] (cols = 0: a GEMM's bias, VNP_WEIGHT_BIAS, or a LayerNorm parameter,
 * VNP_WEIGHT_VECTOR). The backend decides from the role how it stores it. */
vnp_code vnp_weight_upload(const vnp_weight_src *src, const char *name, vnp_weight_kind kind,
                           int64_t rows, int64_t cols, vnp_buf *out, vnp_error *err);
/* Uploads the row-wise concatenation of `count` matrices of the same width
 * (cols) or of vectors (cols = 0), e.g. q | k | v, as one weight of role `kind`. */
vnp_code vnp_weight_upload_concat(const vnp_weight_src *src, const char *const *names,
                                  const int64_t *rows, int count, int64_t cols,
                                  vnp_weight_kind kind, vnp_buf *out, vnp_error *err);
/* An embedding table [rows, cols] with `extra` zero rows appended. */
vnp_code vnp_weight_upload_table(const vnp_weight_src *src, const char *name, int64_t rows,
                                 int64_t cols, int64_t extra, vnp_buf *out, vnp_error *err);
/* A tensor of `n` values as float32 on the host then uploaded as F32. */
vnp_code vnp_weight_upload_f32(const vnp_weight_src *src, const vnp_tensor *t, vnp_buf *out,
                               vnp_error *err);

/* ALiBi slopes for any head count, as DNABERT-S's bert_layers.py builds them. */
void vnp_alibi_slopes(int heads, float *out);

/* ---- architectures ----
 * One descriptor per model (esm2.c, dnabert_s.c), which encoder.c and model_config.c
 * iterate: a new model is one new file pair (its forward pass with this descriptor, its
 * weight names and loader) and one line in vnp_encoder_archs. */
struct cJSON;

struct vnp_encoder_arch {
    vnp_encoder_kind kind;
    const char *name;       /* in messages: "ESM-2" */
    const char *model_type; /* config.json's "model_type" */
    /* 1 when the map holds this model: *prefix the prefix in front of its tensor names,
     * *layout which of its checkpoint layouts (ESM-2: 0 Hugging Face, 1 fair-esm). */
    int (*detect)(const vnp_tensor_map *m, const char **prefix, int *layout);
    /* config.json fields of this model beyond the shared ones (NULL: none) */
    vnp_code (*config_json)(const struct cJSON *root, const char *path, vnp_encoder_config *cfg,
                            vnp_error *err);
    int even_head_dim; /* the head size must be even (rotary positions) */
    /* The configuration of a checkpoint without config.json, for the layouts of bit mask
     * config_layouts that carry one (fair-esm's cfg attributes); the others need
     * config.json. */
    unsigned config_layouts;
    vnp_code (*config_checkpoint)(const vnp_tensor_map *m, const char *path, const char *prefix,
                                  vnp_encoder_config *cfg, vnp_error *err);
    vnp_code (*load_weights)(vnp_encoder *enc, const vnp_weight_src *src, const char *prefix,
                             int layout, vnp_error *err);
    /* The forward pass: leaves the last hidden states in enc->x. The batch's ids and
     * cu_seqlens are already in enc->ids / enc->cu (uploaded by encoder.c through
     * embed_id); b is read on the host only (per-sequence mask counts). */
    vnp_code (*forward)(vnp_encoder *enc, const vnp_batch *b, int T, int max_len, vnp_error *err);
    int min_tokens;             /* the shortest sequence a batch may hold ... */
    const char *min_tokens_why; /* ... said in its error message: "3 (<cls>, ...)" */
    /* The id the embedding table is read at for token id `id` (NULL: id itself). */
    int32_t (*embed_id)(const vnp_encoder_config *c, int32_t id);
    /* The rows mean-pooled of a sequence of len tokens starting at row start:
     * [*begin, *end). */
    void (*pool_range)(int start, int len, int32_t *begin, int32_t *end);
    /* Workspace per token of the feed-forward buffers ffn and ffn2 (elements; 0: unused)
     * on backend be. */
    void (*ffn_widths)(const vnp_encoder_config *c, const vnp_backend *be, size_t *ffn,
                       size_t *ffn2);
    /* The workspace buffers that forward reads only as a linear's x (VNP_WS_* bits):
     * encoder.c allocates them with alloc_gemm_in, so that an FP8 backend quantises
     * them where they are written. */
    unsigned gemm_inputs;
};
#define VNP_WS_H 1u    /* enc->h */
#define VNP_WS_FFN 2u  /* enc->ffn */
#define VNP_WS_FFN2 4u /* enc->ffn2 */

extern const vnp_encoder_arch vnp_esm2_arch;      /* esm2.c */
extern const vnp_encoder_arch vnp_dnabert_s_arch; /* dnabert_s.c */
/* Every architecture in detection order, NULL-terminated (encoder.c). */
extern const vnp_encoder_arch *const vnp_encoder_archs[];
/* The descriptor of `kind`, or NULL. */
const vnp_encoder_arch *vnp_encoder_arch_of(vnp_encoder_kind kind);

/* ---- model-specific loading (esm2_weights.c, dnabert_s_weights.c) ---- */
int vnp_dnabert_s_detect(const vnp_tensor_map *m, const char **prefix, int *layout);
int vnp_esm2_detect(const vnp_tensor_map *m, const char **prefix, int *layout);
/* ESM-2 configuration of a fair-esm checkpoint: cfg attributes of the map
 * (encoder_layers, encoder_embed_dim, encoder_attention_heads, token_dropout), and the
 * vocabulary as its embedding table says. */
vnp_code vnp_esm2_config_fairesm(const vnp_tensor_map *m, const char *path, const char *prefix,
                                 vnp_encoder_config *cfg, vnp_error *err);
vnp_code vnp_esm2_load_weights(vnp_encoder *enc, const vnp_weight_src *src, const char *prefix,
                               int layout, vnp_error *err);
vnp_code vnp_dnabert_s_load_weights(vnp_encoder *enc, const vnp_weight_src *src, const char *prefix,
                                    int layout, vnp_error *err);

#endif
