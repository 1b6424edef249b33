/* One device's compute (see embedder.h): per batch, the guard is cleared, both
 * encoders pool into one device feature matrix [DNABERT-S | ESM-2], the classifier
 * turns it into logits on the device, and only the logits (and the features when
 * asked for) and the guard word come back, into pinned memory, behind one event. */
#include "pipeline/embedder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/queued.h"

typedef struct slot_state {
    float *logits, *features; /* host_alloc: pinned on CUDA */
    uint32_t *guard;
    size_t rows_cap, feat_cap;
    vnp_event *ev;
} slot_state;

struct vnp_embedder {
    vnp_embedder_config cfg;
    char device[64];
    vnp_backend *be;
    vnp_encoder *dna, *esm;
    vnp_classifier_dev *cls;
    int hd, he, width;
    vnp_buf feat, logits; /* device: [rows_cap, width] F32, [rows_cap, 2] F32 */
    size_t rows_cap;
    slot_state slot[2];
    vnp_embedder *twin; /* FP32 copy for the NaN/Inf guard, loaded on first need */
    int is_twin;        /* this is such a copy: its caller words the error */
};

static void free_slot(vnp_backend *be, slot_state *s)
{
    if (s->logits)
        be->ops->host_free(be, s->logits);
    if (s->features)
        be->ops->host_free(be, s->features);
    if (s->guard)
        be->ops->host_free(be, s->guard);
    if (s->ev)
        be->ops->event_free(be, s->ev);
    memset(s, 0, sizeof *s);
}

void vnp_embedder_free(vnp_embedder *e)
{
    if (!e)
        return;
    vnp_embedder_free(e->twin);
    if (e->be) {
        for (int k = 0; k < 2; k++)
            free_slot(e->be, &e->slot[k]);
        if (e->feat.ptr)
            e->be->ops->free_buf(e->be, &e->feat);
        if (e->logits.ptr)
            e->be->ops->free_buf(e->be, &e->logits);
    }
    vnp_classifier_dev_free(e->cls);
    vnp_encoder_free(e->esm);
    vnp_encoder_free(e->dna);
    vnp_backend_free(e->be);
    free(e);
}

int vnp_embedder_width(const vnp_embedder *e) { return e->width; }
const char *vnp_embedder_name(const vnp_embedder *e) { return vnp_backend_name(e->be); }

int vnp_embedder_hidden(const vnp_embedder *e, vnp_encoder_kind kind)
{
    return kind == VNP_ENCODER_DNABERT_S ? e->hd : e->he;
}

static vnp_code load_encoder(vnp_embedder *e, const char *path, vnp_encoder_kind want,
                             vnp_encoder **out, vnp_error *err)
{
    const char *name = want == VNP_ENCODER_ESM2 ? "ESM-2" : "DNABERT-S";
    vnp_code rc = vnp_encoder_load(path, e->be, out, err);
    if (rc) {
        if (!strstr(err->msg, path))
            vnp_error_prefix(err, "%s model %s: ", name, path);
        return rc;
    }
    if (vnp_encoder_kind_of(*out) != want)
        return vnp_fail(err, VNP_EINVAL,
                        "%s is a %s checkpoint, given where the %s model goes (--esm takes "
                        "ESM-2, --dnabert DNABERT-S)",
                        path, want == VNP_ENCODER_ESM2 ? "DNABERT-S" : "ESM-2", name);
    return VNP_OK;
}

vnp_code vnp_embedder_create(const vnp_embedder_config *cfg, const char *device,
                             vnp_embedder **out, vnp_error *err)
{
    *out = NULL;
    vnp_embedder *e = calloc(1, sizeof *e);
    if (!e)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    e->cfg = *cfg;
    snprintf(e->device, sizeof e->device, "%s", device);
    vnp_code rc = vnp_backend_create(device, cfg->prec, cfg->threads, &e->be, err);
    if (!rc && cfg->dnabert)
        rc = load_encoder(e, cfg->dnabert, VNP_ENCODER_DNABERT_S, &e->dna, err);
    if (!rc && cfg->esm)
        rc = load_encoder(e, cfg->esm, VNP_ENCODER_ESM2, &e->esm, err);
    if (!rc) {
        e->hd = e->dna ? vnp_encoder_hidden_size(e->dna) : 0;
        e->he = e->esm ? vnp_encoder_hidden_size(e->esm) : 0;
        e->width = e->hd + e->he;
    }
    /* A classifier of another width is not uploaded: the engine refuses the run with a
     * message naming the models, and submit refuses a batch. */
    if (!rc && cfg->cls && vnp_classifier_input_size(cfg->cls) == e->width)
        rc = vnp_classifier_upload(cfg->cls, e->be, &e->cls, err);
    for (int k = 0; !rc && k < 2; k++)
        if (!(rc = e->be->ops->event_create(e->be, &e->slot[k].ev, err)))
            rc = e->be->ops->host_alloc(e->be, sizeof(uint32_t), (void **)&e->slot[k].guard,
                                        err);
    if (rc) {
        vnp_embedder_free(e);
        return rc;
    }
    *out = e;
    return VNP_OK;
}

/* Device rows for n items; host rows of slot k (features only when wanted). */
static vnp_code reserve(vnp_embedder *e, int k, size_t n, int want_features, vnp_error *err)
{
    vnp_backend *be = e->be;
    vnp_code rc;
    size_t cap = n < 256 ? 256 : n + n / 4;
    if (n > e->rows_cap) {
        if (e->feat.ptr)
            be->ops->free_buf(be, &e->feat);
        if (e->logits.ptr)
            be->ops->free_buf(be, &e->logits);
        e->rows_cap = 0;
        if ((rc = be->ops->alloc_f32(be, cap * (size_t)e->width, &e->feat, err)) ||
            (rc = be->ops->alloc_f32(be, cap * 2, &e->logits, err)))
            return rc;
        e->rows_cap = cap;
    }
    slot_state *s = &e->slot[k];
    if (n > s->rows_cap) {
        if (s->logits)
            be->ops->host_free(be, s->logits);
        s->logits = NULL;
        s->rows_cap = 0;
        if ((rc = be->ops->host_alloc(be, cap * 2 * sizeof(float), (void **)&s->logits, err)))
            return rc;
        s->rows_cap = cap;
    }
    if (want_features && n > s->feat_cap) {
        if (s->features)
            be->ops->host_free(be, s->features);
        s->features = NULL;
        s->feat_cap = 0;
        if ((rc = be->ops->host_alloc(be, cap * (size_t)e->width * sizeof(float),
                                      (void **)&s->features, err)))
            return rc;
        s->feat_cap = cap;
    }
    return VNP_OK;
}

vnp_code vnp_embedder_submit(vnp_embedder *e, int slot, const vnp_embed_job *job, vnp_error *err)
{
    vnp_backend *be = e->be;
    if (slot < 0 || slot > 1 || job->nseq < 0 || (e->dna && job->dna.nseq != job->nseq) ||
        (e->esm && job->esm.nseq != job->nseq) || (e->cfg.cls && (!e->cls || !job->probs)))
        return vnp_fail(err, VNP_EINVAL, "%s: inconsistent batch of %d items",
                        vnp_backend_name(be), job->nseq);
    size_t n = (size_t)job->nseq;
    vnp_code rc = reserve(e, slot, n, job->features != NULL, err);
    if (rc)
        return rc;
    slot_state *s = &e->slot[slot];
    be->ops->guard_reset(be);
    if (n > 0) {
        if ((e->dna && (rc = vnp_encoder_queue_pooled(e->dna, slot, &job->dna, &e->feat,
                                                      e->width, 0, err))) ||
            (e->esm && (rc = vnp_encoder_queue_pooled(e->esm, slot, &job->esm, &e->feat,
                                                      e->width, e->hd, err))))
            return rc;
        if (e->cls &&
            ((rc = vnp_classifier_queue_logits(e->cls, &e->feat, job->nseq, &e->logits, err)) ||
             (rc = be->ops->download_f32_async(be, &e->logits, n * 2, s->logits, err))))
            return rc;
        if (job->features &&
            (rc = be->ops->download_f32_async(be, &e->feat, n * (size_t)e->width, s->features,
                                              err)))
            return rc;
    }
    if ((rc = be->ops->guard_save(be, s->guard, err)))
        return rc;
    return be->ops->event_record(be, s->ev, err);
}

/* The batch again, synchronously, on the FP32 twin. */
static vnp_code recompute_fp32(vnp_embedder *e, vnp_embed_job *job, vnp_error *err)
{
    vnp_code rc;
    if (!e->twin) {
        vnp_embedder_config c = e->cfg;
        c.prec = VNP_PREC_FP32;
        if ((rc = vnp_embedder_create(&c, e->device, &e->twin, err))) {
            vnp_error_prefix(err, "loading the FP32 models for the NaN/Inf recompute on %s: ",
                             e->device);
            return rc;
        }
        e->twin->is_twin = 1;
    }
    rc = vnp_embedder_submit(e->twin, 0, job, err);
    if (!rc)
        rc = vnp_embedder_finish(e->twin, 0, job, err);
    if (rc == VNP_ENUMERIC)
        vnp_fail(err, rc,
                 "NaN/Inf in %s, and again after recomputing in FP32 on %s: the checkpoint or "
                 "the input is not usable (look for NaN in the weights with 'virnucpro inspect "
                 "-s')",
                 vnp_backend_name(e->be), vnp_backend_name(e->twin->be));
    if (!rc)
        job->recomputed = 1;
    return rc;
}

vnp_code vnp_embedder_finish(vnp_embedder *e, int slot, vnp_embed_job *job, vnp_error *err)
{
    vnp_backend *be = e->be;
    slot_state *s = &e->slot[slot];
    job->recomputed = 0;
    vnp_code rc = be->ops->event_wait(be, s->ev, err);
    if (rc)
        return rc;
    size_t n = (size_t)job->nseq;
    size_t bad = e->cls && n ? vnp_classifier_softmax(s->logits, n, job->probs) : 0;
    uint32_t word = *s->guard | (bad ? VNP_GUARD_NONFINITE : 0u);
    rc = vnp_backend_guard_code(word, vnp_backend_name(be), err);
    if (rc == VNP_ENUMERIC && be->prec != VNP_PREC_FP32)
        return recompute_fp32(e, job, err);
    if (rc == VNP_ENUMERIC && !e->is_twin)
        vnp_error_prefix(err, "in FP32, so the checkpoint or the input is not usable (look for "
                         "NaN in the weights with 'virnucpro inspect -s'): ");
    if (rc)
        return rc;
    if (job->features && n)
        memcpy(job->features, s->features, n * (size_t)e->width * sizeof(float));
    return VNP_OK;
}
