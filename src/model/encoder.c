/* Encoders: finding and loading a checkpoint, deciding the model from its tensors
 * (the architectures' descriptors, iterated: nothing here knows one model from
 * another), the per-batch workspace, and embed / hidden over packed batches. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "model/encoder_internal.h"
#include "model/model_source.h"
#include "virnucpro/weights.h"

vnp_buf vnp_buf_rows(const vnp_buf *b, size_t row, size_t nrows, size_t width)
{
    vnp_buf v = *b;
    v.ptr = (char *)b->ptr + row * width * vnp_dtype_size(b->dtype);
    v.n = nrows * width;
    return v;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The one *.pt file of a directory (a fair-esm hub cache), if exactly one. */
static int single_pt(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 3 && !strcmp(e->d_name + n - 3, ".pt")) {
            found++;
            snprintf(out, cap, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    return found == 1;
}

/* Resolves a model path to a checkpoint file and (maybe) its config.json. */
vnp_code vnp_model_resolve(const char *path, char *ckpt, char *config, size_t cap, vnp_error *err)
{
    config[0] = '\0';
    if (vnp_is_dir(path)) {
        snprintf(config, cap, "%s/config.json", path);
        if (!is_file(config))
            config[0] = '\0';
        /* single files first, then the sharded layouts of large models (ESM-2 3B) */
        static const char *const names[] = {"model.safetensors", "pytorch_model.bin",
                                            "model.safetensors.index.json",
                                            "pytorch_model.bin.index.json"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(ckpt, cap, "%s/%s", path, names[i]);
            if (is_file(ckpt))
                return VNP_OK;
        }
        if (single_pt(path, ckpt, cap))
            return VNP_OK;
        return vnp_fail(err, VNP_ENOTFOUND,
                        "model directory '%s' has no model.safetensors, pytorch_model.bin or "
                        "single fair-esm .pt file",
                        path);
    }
    if (!is_file(path))
        return vnp_fail(err, VNP_ENOTFOUND, "model '%s' does not exist (a model directory or a "
                        "fair-esm .pt file is expected)", path);
    snprintf(ckpt, cap, "%s", path);
    /* config.json beside a checkpoint file */
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    snprintf(config, cap, "%.*s/config.json", dl, slash ? path : ".");
    if (!is_file(config))
        config[0] = '\0';
    return VNP_OK;
}

static void free_bufs(vnp_backend *be, vnp_buf **bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bufs[i]->ptr)
            be->ops->free_buf(be, bufs[i]);
}

static void free_workspace(vnp_encoder *enc)
{
    vnp_buf *ws[] = {&enc->x,   &enc->h,  &enc->qkv,    &enc->attn,  &enc->ffn,
                     &enc->ffn2, &enc->ids, &enc->cu, &enc->ranges, &enc->pooled};
    free_bufs(enc->be, ws, sizeof ws / sizeof ws[0]);
    enc->ws_tokens = enc->ws_seqs = 0;
}

static void free_stages(vnp_encoder *enc)
{
    for (int k = 0; k < 2; k++) {
        struct vnp_enc_stage *st = &enc->stage[k];
        int32_t *p[] = {st->ids, st->cu, st->ranges};
        for (int i = 0; i < 3; i++)
            if (p[i])
                enc->be->ops->host_free(enc->be, p[i]);
        memset(st, 0, sizeof *st);
    }
}

void vnp_encoder_free(vnp_encoder *enc)
{
    if (!enc)
        return;
    if (enc->be) {
        free_workspace(enc);
        free_stages(enc);
        vnp_buf *top[] = {&enc->tok_emb, &enc->type_row, &enc->norm_g, &enc->norm_b, &enc->slopes};
        free_bufs(enc->be, top, sizeof top / sizeof top[0]);
        for (int l = 0; enc->layer && l < enc->cfg.layers; l++) {
            vnp_layer_weights *w = &enc->layer[l];
            vnp_buf *lb[] = {&w->ln1_g, &w->ln1_b, &w->wqkv, &w->bqkv, &w->wo, &w->bo,
                             &w->ln2_g, &w->ln2_b, &w->w1,   &w->b1,   &w->w2, &w->b2,
                             &w->inv_freq};
            free_bufs(enc->be, lb, sizeof lb / sizeof lb[0]);
        }
    }
    free(enc->layer);
    free(enc);
}

const vnp_encoder_arch *const vnp_encoder_archs[] = {&vnp_dnabert_s_arch, &vnp_esm2_arch, NULL};

const vnp_encoder_arch *vnp_encoder_arch_of(vnp_encoder_kind kind)
{
    for (int k = 0; vnp_encoder_archs[k]; k++)
        if (vnp_encoder_archs[k]->kind == kind)
            return vnp_encoder_archs[k];
    return NULL;
}

static const char *kind_name(vnp_encoder_kind k)
{
    const vnp_encoder_arch *a = vnp_encoder_arch_of(k);
    return a ? a->name : "?";
}

/* The architecture whose tensors the map holds, or NULL. */
static const vnp_encoder_arch *detect(const vnp_tensor_map *map, const char **prefix, int *layout)
{
    for (int k = 0; vnp_encoder_archs[k]; k++)
        if (vnp_encoder_archs[k]->detect(map, prefix, layout))
            return vnp_encoder_archs[k];
    return NULL;
}

vnp_code vnp_encoder_load(const char *path, vnp_backend *be, vnp_encoder **out, vnp_error *err)
{
    *out = NULL;
    char ckpt[1024], config[1024];
    vnp_code rc = vnp_model_resolve(path, ckpt, config, sizeof ckpt, err);
    if (rc)
        return rc;
    /* the process-wide parsed checkpoint when a source is open (model_source.c) */
    const vnp_tensor_map *map = vnp_model_source_find(ckpt);
    vnp_tensor_map *owned = NULL;
    if (!map) {
        if ((rc = vnp_checkpoint_load(ckpt, &owned, err))) {
            vnp_error_prefix(err, "loading model '%s': ", path);
            return rc;
        }
        map = owned;
    }
    vnp_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) {
        vnp_tensor_map_free(owned);
        return vnp_fail(err, VNP_ENOMEM, "out of memory loading model '%s'", path);
    }
    enc->be = be;
    snprintf(enc->source, sizeof enc->source, "%s", ckpt);

    const char *prefix = "";
    int layout = 0;
    const vnp_encoder_arch *arch = detect(map, &prefix, &layout);
    if (!arch) {
        rc = vnp_fail(err, VNP_EFORMAT,
                      "'%s' holds neither an ESM-2 nor a DNABERT-S model (no "
                      "'embeddings.word_embeddings.weight' with 'encoder.layer.0.attention.self."
                      "{query,Wqkv}.weight', nor fair-esm 'embed_tokens.weight')",
                      ckpt);
        goto fail;
    }
    enc->arch = arch;

    if (config[0])
        rc = vnp_config_from_json(config, &enc->cfg, err);
    else if (arch->config_checkpoint && (arch->config_layouts >> layout & 1u))
        rc = arch->config_checkpoint(map, ckpt, prefix, &enc->cfg, err);
    else
        rc = vnp_fail(err, VNP_ENOTFOUND,
                      "'%s' needs its config.json (the Hugging Face model files come together); "
                      "none was found beside it",
                      ckpt);
    if (rc)
        goto fail;
    if (enc->cfg.kind != arch->kind) {
        rc = vnp_fail(err, VNP_EFORMAT, "'%s' says %s but '%s' holds %s weights", config,
                      kind_name(enc->cfg.kind), ckpt, arch->name);
        goto fail;
    }
    enc->layer = calloc((size_t)enc->cfg.layers, sizeof *enc->layer);
    if (!enc->layer) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory loading model '%s'", path);
        goto fail;
    }
    vnp_weight_src src = {map, ckpt, be};
    if ((rc = arch->load_weights(enc, &src, prefix, layout, err)))
        goto fail;
    vnp_tensor_map_free(owned);
    vnp_debug("loaded %s from '%s': %d layers, hidden %d, %d heads, intermediate %d", arch->name,
              ckpt, enc->cfg.layers, enc->cfg.hidden, enc->cfg.heads, enc->cfg.intermediate);
    *out = enc;
    return VNP_OK;
fail:
    vnp_tensor_map_free(owned);
    vnp_encoder_free(enc);
    return rc;
}

vnp_code vnp_encoder_probe(const char *path, vnp_encoder_kind *kind, vnp_error *err)
{
    char ckpt[1024], config[1024];
    vnp_code rc = vnp_model_resolve(path, ckpt, config, sizeof ckpt, err);
    if (rc)
        return rc;
    vnp_tensor_map *map = NULL;
    if ((rc = vnp_checkpoint_load(ckpt, &map, err))) {
        vnp_error_prefix(err, "loading model '%s': ", path);
        return rc;
    }
    const char *prefix = "";
    int layout = 0;
    const vnp_encoder_arch *arch = detect(map, &prefix, &layout);
    if (arch)
        *kind = arch->kind;
    else
        rc = vnp_fail(err, VNP_EFORMAT, "'%s' holds neither an ESM-2 nor a DNABERT-S model",
                      ckpt);
    vnp_tensor_map_free(map);
    return rc;
}

vnp_encoder_kind vnp_encoder_kind_of(const vnp_encoder *enc) { return enc->cfg.kind; }
int vnp_encoder_hidden_size(const vnp_encoder *enc) { return enc->cfg.hidden; }

/* A workspace buffer of rows x width: a GEMM input (alloc_gemm_in) when forward reads it
 * only as a linear's x, else activations. */
static vnp_code alloc_ws(vnp_backend *be, unsigned gemm_only, size_t rows, size_t width,
                         vnp_buf *out, vnp_error *err)
{
    if (gemm_only && be->ops->alloc_gemm_in)
        return be->ops->alloc_gemm_in(be, rows, width, out, err);
    return be->ops->alloc_act(be, rows * width, out, err);
}

static vnp_code ensure_workspace(vnp_encoder *enc, size_t T, size_t nseq, vnp_error *err)
{
    if (T <= enc->ws_tokens && nseq <= enc->ws_seqs)
        return VNP_OK;
    size_t nt = T > enc->ws_tokens ? T : enc->ws_tokens;
    size_t ns = nseq > enc->ws_seqs ? nseq : enc->ws_seqs;
    free_workspace(enc);
    vnp_backend *be = enc->be;
    size_t H = (size_t)enc->cfg.hidden, ffn = 0, ffn2 = 0;
    enc->arch->ffn_widths(&enc->cfg, be, &ffn, &ffn2);
    unsigned gi = enc->arch->gemm_inputs;
    vnp_code rc;
    if ((rc = be->ops->alloc_act(be, nt * H, &enc->x, err)) ||
        (rc = alloc_ws(be, gi & VNP_WS_H, nt, H, &enc->h, err)) ||
        (rc = be->ops->alloc_act(be, nt * 3 * H, &enc->qkv, err)) ||
        (rc = be->ops->alloc_act(be, nt * H, &enc->attn, err)) ||
        (ffn && (rc = alloc_ws(be, gi & VNP_WS_FFN, nt, ffn, &enc->ffn, err))) ||
        (ffn2 && (rc = alloc_ws(be, gi & VNP_WS_FFN2, nt, ffn2, &enc->ffn2, err))) ||
        (rc = be->ops->alloc_i32(be, nt, &enc->ids, err)) ||
        (rc = be->ops->alloc_i32(be, ns + 1, &enc->cu, err)) ||
        (rc = be->ops->alloc_i32(be, 2 * ns, &enc->ranges, err)) ||
        (rc = be->ops->alloc_f32(be, ns * H, &enc->pooled, err))) {
        free_workspace(enc);
        return rc;
    }
    enc->ws_tokens = nt;
    enc->ws_seqs = ns;
    return VNP_OK;
}

/* Grows staging slot k for T ids and nseq sequences. The slot's previous batch has
 * completed (the caller's contract), so its memory may be replaced. */
static vnp_code ensure_stage(vnp_encoder *enc, int k, size_t T, size_t nseq, vnp_error *err)
{
    vnp_backend *be = enc->be;
    struct vnp_enc_stage *st = &enc->stage[k];
    vnp_code rc;
    if (T > st->ids_cap) {
        if (st->ids)
            be->ops->host_free(be, st->ids);
        st->ids = NULL;
        st->ids_cap = 0;
        size_t cap = T < 4096 ? 4096 : T + T / 4;
        if ((rc = be->ops->host_alloc(be, cap * sizeof(int32_t), (void **)&st->ids, err)))
            return rc;
        st->ids_cap = cap;
    }
    if (nseq + 1 > st->seq_cap) {
        if (st->cu)
            be->ops->host_free(be, st->cu);
        if (st->ranges)
            be->ops->host_free(be, st->ranges);
        st->cu = st->ranges = NULL;
        st->seq_cap = 0;
        size_t cap = nseq + 1 < 1024 ? 1024 : nseq + 1 + nseq / 4;
        if ((rc = be->ops->host_alloc(be, cap * sizeof(int32_t), (void **)&st->cu, err)) ||
            (rc = be->ops->host_alloc(be, 2 * cap * sizeof(int32_t), (void **)&st->ranges, err)))
            return rc;
        st->seq_cap = cap;
    }
    return VNP_OK;
}

/* Checks the batch, stages and uploads its ids, cu_seqlens and pooling ranges, and
 * queues the model; the last hidden states end in enc->x. Nothing waits. */
static vnp_code forward(vnp_encoder *enc, int slot, const vnp_batch *b, int *T_out,
                        vnp_error *err)
{
    const vnp_encoder_config *c = &enc->cfg;
    const vnp_encoder_arch *arch = enc->arch;
    if (slot < 0 || slot > 1)
        return vnp_fail(err, VNP_EINVAL, "%s: staging slot %d (0 or 1)", arch->name, slot);
    if (b->nseq < 0 || !b->cu_seqlens || b->cu_seqlens[0] != 0)
        return vnp_fail(err, VNP_EINVAL, "a batch needs nseq >= 0 and cu_seqlens[0] = 0");
    int max_len = 0;
    for (int s = 0; s < b->nseq; s++) {
        int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < arch->min_tokens)
            return vnp_fail(err, VNP_EINVAL,
                            "%s batch: sequence %d has %d tokens; at least %s are needed",
                            arch->name, s, len, arch->min_tokens_why);
        max_len = len > max_len ? len : max_len;
    }
    int T = b->cu_seqlens[b->nseq];
    for (int s = 0; s < b->nseq; s++)
        for (int i = b->cu_seqlens[s]; i < b->cu_seqlens[s + 1]; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= c->vocab)
                return vnp_fail(err, VNP_EINVAL,
                                "%s batch: sequence %d has token id %d at position %d, outside "
                                "the model's vocabulary of %d",
                                arch->name, s, b->tokens[i], i - b->cu_seqlens[s], c->vocab);
    *T_out = T;
    if (T == 0)
        return VNP_OK;
    vnp_code rc = ensure_workspace(enc, (size_t)T, (size_t)b->nseq, err);
    if (!rc)
        rc = ensure_stage(enc, slot, (size_t)T, (size_t)b->nseq, err);
    if (rc)
        return rc;
    struct vnp_enc_stage *st = &enc->stage[slot];
    /* the ids as the embedding table is read (ESM-2: <mask> to its zero row) */
    for (int i = 0; i < T; i++)
        st->ids[i] = arch->embed_id ? arch->embed_id(c, b->tokens[i]) : b->tokens[i];
    memcpy(st->cu, b->cu_seqlens, ((size_t)b->nseq + 1) * sizeof(int32_t));
    int32_t *rb = st->ranges, *re = st->ranges + b->nseq;
    for (int s = 0; s < b->nseq; s++)
        arch->pool_range(b->cu_seqlens[s], b->cu_seqlens[s + 1] - b->cu_seqlens[s], &rb[s], &re[s]);
    vnp_backend *be = enc->be;
    if ((rc = be->ops->upload_i32(be, st->ids, (size_t)T, &enc->ids, err)) ||
        (rc = be->ops->upload_i32(be, st->cu, (size_t)b->nseq + 1, &enc->cu, err)) ||
        (rc = be->ops->upload_i32(be, st->ranges, 2 * (size_t)b->nseq, &enc->ranges, err)))
        return rc;
    return arch->forward(enc, b, T, max_len, err);
}

vnp_code vnp_encoder_queue_pooled(vnp_encoder *enc, int slot, const vnp_batch *b, vnp_buf *out,
                                  int ld, int col, vnp_error *err)
{
    int T = 0;
    vnp_code rc = forward(enc, slot, b, &T, err);
    if (rc || b->nseq == 0)
        return rc;
    return enc->be->ops->mean_pool(enc->be, &enc->x, enc->cfg.hidden, &enc->ranges, b->nseq, out,
                                   ld, col, err);
}

/* The guard after a synchronous pass, with the messages a user of one batch needs. */
static vnp_code check_guard(vnp_encoder *enc, vnp_error *err)
{
    vnp_code rc = vnp_backend_guard_check(enc->be, err);
    if (rc != VNP_ENUMERIC)
        return rc;
    const char *kind = enc->arch->name;
    if (enc->be->prec != VNP_PREC_FP32)
        return vnp_fail(err, VNP_ENUMERIC,
                        "%s produced NaN or infinite values on %s; "
                        "VIRNUCPRO_DISABLE_FP16=1 computes in FP32",
                        kind, vnp_backend_name(enc->be));
    return vnp_fail(err, VNP_ENUMERIC,
                    "%s produced NaN or infinite values on %s: the checkpoint or the input "
                    "is not usable (look for NaN in the weights with 'virnucpro inspect -s')",
                    kind, vnp_backend_name(enc->be));
}

vnp_code vnp_encoder_hidden(vnp_encoder *enc, const vnp_batch *b, float *out, vnp_error *err)
{
    int T = 0;
    enc->be->ops->guard_reset(enc->be);
    vnp_code rc = forward(enc, 0, b, &T, err);
    if (rc || T == 0)
        return rc;
    if ((rc = check_guard(enc, err)))
        return rc;
    return enc->be->ops->download_f32(enc->be, &enc->x, (size_t)T * enc->cfg.hidden, out, err);
}

vnp_code vnp_encoder_embed(vnp_encoder *enc, const vnp_batch *b, float *out, vnp_error *err)
{
    if (b->nseq == 0)
        return VNP_OK;
    enc->be->ops->guard_reset(enc->be);
    vnp_code rc = vnp_encoder_queue_pooled(enc, 0, b, &enc->pooled, enc->cfg.hidden, 0, err);
    if (!rc)
        rc = check_guard(enc, err);
    if (!rc)
        rc = enc->be->ops->download_f32(enc->be, &enc->pooled,
                                        (size_t)b->nseq * enc->cfg.hidden, out, err);
    return rc;
}
