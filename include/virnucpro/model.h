/* Stage 4: the models (ESM-2, DNABERT-S, the MLP classifier), written once
 * against a backend (CPU or CUDA). */
#ifndef VIRNUCPRO_MODEL_H
#define VIRNUCPRO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/precision.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vnp_backend vnp_backend;

/* device: "cpu", "cuda", "cuda:N". threads: CPU worker threads (0 = all cores).
 * prec: VNP_PREC_DEFAULT is FP16 on a GPU and FP32 on the CPU; on the CPU a reduced
 * precision (FP16, BF16, FP8) is emulated: values are rounded where the GPU rounds
 * them (docs/PRECISION.md), for checking, not for speed. FP8 on a GPU needs compute
 * capability 8.9 or newer (VNP_EUNSUPPORTED otherwise). VIRNUCPRO_DISABLE_FP16=1|true|yes
 * forces FP32 on any device (with a warning). */
vnp_code vnp_backend_create(const char *device, vnp_precision prec, int threads,
                            vnp_backend **out, vnp_error *err);
void vnp_backend_free(vnp_backend *be);
/* The precision a backend for `device` computes in when `asked` is requested: FP32 with
 * VIRNUCPRO_DISABLE_FP16; VNP_PREC_DEFAULT resolved (FP32 on the CPU, FP16 on a GPU);
 * else `asked`. */
vnp_precision vnp_precision_effective(const char *device, vnp_precision asked);
const char *vnp_backend_name(const vnp_backend *be);
vnp_precision vnp_backend_precision(const vnp_backend *be);

/* ---- transformer encoders ---- */
typedef enum vnp_encoder_kind {
    VNP_ENCODER_ESM2 = 0,
    VNP_ENCODER_DNABERT_S = 1
} vnp_encoder_kind;

typedef struct vnp_encoder vnp_encoder;

/* path: a model directory (config.json + model.safetensors or pytorch_model.bin)
 * or a fair-esm .pt file. The kind is decided by the checkpoint. */
vnp_code vnp_encoder_load(const char *path, vnp_backend *be, vnp_encoder **out, vnp_error *err);
void vnp_encoder_free(vnp_encoder *enc);
/* A checkpoint parsed and mapped once for the process: while it is open, every
 * vnp_encoder_load of the same model (one per device worker, the FP32 twins) uploads
 * from the one mapped file instead of reading it again. Opening an open path again
 * counts a reference. */
typedef struct vnp_model_source vnp_model_source;
vnp_code vnp_model_source_open(const char *path, vnp_model_source **out, vnp_error *err);
void vnp_model_source_close(vnp_model_source *s);
/* The kind of model a path holds, from its tensor names (the checkpoint is parsed and
 * mapped, not uploaded anywhere). */
vnp_code vnp_encoder_probe(const char *path, vnp_encoder_kind *kind, vnp_error *err);
vnp_encoder_kind vnp_encoder_kind_of(const vnp_encoder *enc);
int vnp_encoder_hidden_size(const vnp_encoder *enc);

/* A packed batch: nseq sequences of token ids laid end to end; sequence i is
 * tokens[cu_seqlens[i] .. cu_seqlens[i+1]). No padding. */
typedef struct vnp_batch {
    const int32_t *tokens;
    const int32_t *cu_seqlens; /* nseq + 1 entries, cu_seqlens[0] = 0 */
    int nseq;
} vnp_batch;

/* An encoder runs one batch at a time (it reuses its workspace between
 * batches): call it from one thread, or load one encoder per thread.
 *
 * Pooled embeddings, out[nseq * hidden] float32:
 * ESM-2: mean of the last layer (after the final LayerNorm) over positions
 *        1..min(1024, L) where L = residues; DNABERT-S: mean over all tokens. */
vnp_code vnp_encoder_embed(vnp_encoder *enc, const vnp_batch *batch, float *out, vnp_error *err);
/* Per-token last hidden states, out[total_tokens * hidden] float32 (tests, debugging). */
vnp_code vnp_encoder_hidden(vnp_encoder *enc, const vnp_batch *batch, float *out, vnp_error *err);

/* ---- VirNucPro's MLP classifier (a whole pickled torch module) ---- */
typedef struct vnp_classifier vnp_classifier;

vnp_code vnp_classifier_load(const char *pth_path, vnp_classifier **out, vnp_error *err);
void vnp_classifier_free(vnp_classifier *c);
int vnp_classifier_input_size(const vnp_classifier *c);
/* VNP_ESHAPE with a clear message unless the classifier's input width equals
 * dnabert_hidden + esm_hidden (features are [DNABERT-S | ESM-2]). Call it
 * before any work starts. */
vnp_code vnp_classifier_check_inputs(const vnp_classifier *c, int dnabert_hidden, int esm_hidden,
                                     vnp_error *err);
/* probs[n * 2] = the softmax of each row of logits[n * 2] in float32 (column 1 =
 * virus). Returns how many rows have a non-finite probability. */
size_t vnp_classifier_softmax(const float *logits, size_t n, float *probs);
/* x[n * width] -> probs[n * 2] on a one-thread CPU backend (tests, small jobs; the
 * pipeline queues the classifier on each worker's device). VNP_ESHAPE unless width is
 * the classifier's input width. */
vnp_code vnp_classifier_predict(const vnp_classifier *c, const float *x, size_t n, int width,
                                float *probs, vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
