/* One device's compute: a backend, the encoders (DNABERT-S and/or ESM-2) and the
 * classifier on it, and the FP32 twin of all of them that the NaN/Inf guard recomputes
 * with. A batch is queued with submit and collected with finish; two batches may be
 * in flight (slots 0 and 1), so the host prepares one while the device runs the
 * other, and each batch costs one host wait. Owned by one thread (its worker).
 * (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_EMBEDDER_H
#define VNP_PIPELINE_EMBEDDER_H

#include <stdint.h>

#include "virnucpro/model.h"

/* What every worker computes; shared read-only by all of them. */
typedef struct vnp_embedder_config {
    const char *dnabert; /* DNABERT-S model path, or NULL */
    const char *esm;     /* ESM-2 model path, or NULL */
    const vnp_classifier *cls; /* NULL: embeddings only */
    const char *cls_path;      /* the classifier's file, for messages */
    vnp_precision prec;  /* of the encoders (VNP_PREC_DEFAULT: FP16 on a GPU, FP32 on the
                          * CPU; a reduced one is emulated on the CPU) */
    int threads;         /* CPU threads of a CPU worker */
} vnp_embedder_config;

typedef struct vnp_embedder vnp_embedder;

/* Loads the models onto `device` ("cpu", "cuda:N"). */
vnp_code vnp_embedder_create(const vnp_embedder_config *cfg, const char *device,
                             vnp_embedder **out, vnp_error *err);
void vnp_embedder_free(vnp_embedder *e);
/* Feature width: DNABERT-S hidden (if any) + ESM-2 hidden (if any), in that order. */
int vnp_embedder_width(const vnp_embedder *e);
int vnp_embedder_hidden(const vnp_embedder *e, vnp_encoder_kind kind); /* 0 when absent */
const char *vnp_embedder_name(const vnp_embedder *e); /* "cuda:0 fp16", "cpu (4 threads)" */

/* One batch: nseq items, with a packed batch for each encoder present. */
typedef struct vnp_embed_job {
    vnp_batch dna, esm;   /* .nseq = nseq for the encoders present */
    int nseq;
    float *features;      /* out: nseq x width (host), or NULL when not wanted */
    float *probs;         /* out: nseq x 2, with a classifier */
    int recomputed;       /* out: 1 when the batch went non-finite and was redone in FP32 */
} vnp_embed_job;

/* Queues job on the device in host slot `slot` (0 or 1; the slot's previous batch must
 * have been finished). The job (its token arrays included) must stay as it is until
 * vnp_embedder_finish of this slot: a non-finite batch is recomputed from it. */
vnp_code vnp_embedder_submit(vnp_embedder *e, int slot, const vnp_embed_job *job, vnp_error *err);
/* Waits for the batch of `slot` and writes its results into job (the same job that was
 * submitted there). NaN/Inf in reduced precision: the batch is recomputed in FP32 on the
 * same device (twin loaded on first need) and job->recomputed set. A bad token/shape
 * flag (VNP_EINVAL), a device fault (VNP_EDEVICE) or a non-finite FP32 result
 * (VNP_ENUMERIC) is returned as such. */
vnp_code vnp_embedder_finish(vnp_embedder *e, int slot, vnp_embed_job *job, vnp_error *err);

#endif
