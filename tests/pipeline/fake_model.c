/* A fake embedder and classifier for testing the predict pipeline's plumbing
 * (order, windows, batching, workers, errors) exactly, independent of the real
 * models: it replaces src/pipeline/embedder.c (one device's compute) so the engine,
 * its workers and the writer are the real ones. Each embedding is a pure function of
 * the item's own tokens, so any batching or worker count gives bit-identical outputs.
 * Controlled by the model path: a path containing "dnabert" loads a DNABERT-S fake
 * (hidden 3), "esm" an ESM-2 fake (hidden 4), "missing" fails with VNP_ENOTFOUND;
 * classifier input width = FAKE_CLS_WIDTH (default 7).
 * FAKE_NAN_LEN=n: ESM-2 embeddings of n-token sequences are NaN (even in FP32). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "pipeline/embedder.h"
#include "virnucpro/model.h"

struct vnp_classifier {
    int width;
};

struct vnp_embedder {
    int hd, he, width;
    const vnp_classifier *cls;
    char name[64];
    vnp_code pending_rc[2];
    vnp_error pending_err[2];
};

int vnp_device_count(vnp_device_kind kind) { return kind == VNP_DEVICE_CPU; }
/* run.json's device description: a fixed fake CPU */
vnp_code vnp_device_query(vnp_device_kind kind, int index, vnp_device *out, vnp_error *err)
{
    if (kind != VNP_DEVICE_CPU || index != 0)
        return vnp_fail(err, VNP_EINVAL, "the fakes have one device, cpu");
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "fake CPU");
    out->mem_total = (size_t)1 << 30;
    return VNP_OK;
}
vnp_precision vnp_precision_effective(const char *device, vnp_precision asked)
{
    (void)device;
    (void)asked;
    return VNP_PREC_FP32; /* the fakes run on the CPU only */
}

static char fake_source;
vnp_code vnp_model_source_open(const char *path, vnp_model_source **out, vnp_error *err)
{
    if (strstr(path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such model", path);
    *out = (vnp_model_source *)(void *)&fake_source;
    return VNP_OK;
}
void vnp_model_source_close(vnp_model_source *s) { (void)s; }

vnp_code vnp_encoder_probe(const char *path, vnp_encoder_kind *kind, vnp_error *err)
{
    if (strstr(path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such model", path);
    *kind = strstr(path, "dnabert") ? VNP_ENCODER_DNABERT_S : VNP_ENCODER_ESM2;
    return VNP_OK;
}

static vnp_code fake_encoder(const char *path, const char *opt, int *hidden, vnp_error *err)
{
    if (strstr(path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such model", path);
    int dna = strstr(path, "dnabert") != NULL;
    if ((dna && !strcmp(opt, "--esm")) || (!dna && !strcmp(opt, "--dnabert")))
        return vnp_fail(err, VNP_EINVAL, "%s is a %s checkpoint, given where %s goes", path,
                        dna ? "DNABERT-S" : "ESM-2", opt);
    *hidden = dna ? 3 : 4;
    return VNP_OK;
}

vnp_code vnp_embedder_create(const vnp_embedder_config *cfg, const char *device,
                             vnp_embedder **out, vnp_error *err)
{
    *out = NULL;
    if (strcmp(device, "cpu"))
        return vnp_fail(err, VNP_EUNSUPPORTED, "fake embedder: only cpu, not %s", device);
    vnp_embedder *e = calloc(1, sizeof *e);
    vnp_code rc = VNP_OK;
    if (cfg->dnabert)
        rc = fake_encoder(cfg->dnabert, "--dnabert", &e->hd, err);
    if (!rc && cfg->esm)
        rc = fake_encoder(cfg->esm, "--esm", &e->he, err);
    if (rc) {
        free(e);
        return rc;
    }
    e->width = e->hd + e->he;
    e->cls = cfg->cls;
    snprintf(e->name, sizeof e->name, "cpu fake");
    *out = e;
    return VNP_OK;
}

void vnp_embedder_free(vnp_embedder *e) { free(e); }
int vnp_embedder_width(const vnp_embedder *e) { return e->width; }
const char *vnp_embedder_name(const vnp_embedder *e) { return e->name; }
int vnp_embedder_hidden(const vnp_embedder *e, vnp_encoder_kind kind)
{
    return kind == VNP_ENCODER_DNABERT_S ? e->hd : e->he;
}

static int embed(const vnp_batch *b, int hidden, int esm, float *out, int ld)
{
    const char *nan_len = getenv("FAKE_NAN_LEN");
    int nan = 0;
    for (int i = 0; i < b->nseq; i++) {
        const int32_t *t = b->tokens + b->cu_seqlens[i];
        int n = b->cu_seqlens[i + 1] - b->cu_seqlens[i];
        uint32_t h = 2166136261u;
        for (int k = 0; k < n; k++)
            h = (h ^ (uint32_t)t[k]) * 16777619u;
        float *o = out + (size_t)i * (size_t)ld;
        for (int k = 0; k < hidden; k++)
            o[k] = (float)((h >> (4 * k)) & 0xff) / 255.0f - 0.5f;
        o[0] = (float)n / 100.0f;
        if (esm && nan_len && atoi(nan_len) == n) {
            o[1] = NAN;
            nan = 1;
        }
    }
    return nan;
}

vnp_code vnp_embedder_submit(vnp_embedder *e, int slot, const vnp_embed_job *job, vnp_error *err)
{
    float *rows = malloc(((size_t)job->nseq + 1) * (size_t)e->width * sizeof *rows);
    int nan = 0;
    if (e->hd)
        embed(&job->dna, e->hd, 0, rows, e->width);
    if (e->he)
        nan = embed(&job->esm, e->he, 1, rows + e->hd, e->width);
    if (job->features)
        memcpy(job->features, rows, (size_t)job->nseq * (size_t)e->width * sizeof *rows);
    for (int i = 0; e->cls && i < job->nseq; i++) {
        float z = 0;
        for (int k = 0; k < e->width; k++)
            z += rows[(size_t)i * (size_t)e->width + (size_t)k] * (float)((k % 3) - 1) * 3.0f;
        float p1 = 1.0f / (1.0f + expf(-z));
        job->probs[2 * i] = 1.0f - p1;
        job->probs[2 * i + 1] = p1;
    }
    free(rows);
    e->pending_rc[slot] = nan ? vnp_fail(&e->pending_err[slot], VNP_ENUMERIC,
                                         "cpu fake: non-finite values (NaN or infinite) in FP32")
                              : VNP_OK;
    return VNP_OK;
}

vnp_code vnp_embedder_finish(vnp_embedder *e, int slot, vnp_embed_job *job, vnp_error *err)
{
    job->recomputed = 0;
    if (e->pending_rc[slot])
        *err = e->pending_err[slot];
    return e->pending_rc[slot];
}

vnp_code vnp_classifier_load(const char *pth_path, vnp_classifier **out, vnp_error *err)
{
    *out = NULL;
    if (strstr(pth_path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such file", pth_path);
    vnp_classifier *c = malloc(sizeof *c);
    const char *w = getenv("FAKE_CLS_WIDTH");
    c->width = w ? atoi(w) : 7;
    *out = c;
    return VNP_OK;
}

void vnp_classifier_free(vnp_classifier *c) { free(c); }
int vnp_classifier_input_size(const vnp_classifier *c) { return c->width; }
