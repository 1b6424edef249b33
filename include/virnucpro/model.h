/* Stage 4: the models (ESM-2, DNABERT-S, the MLP classifier), written once
 * against a backend (CPU or CUDA). */
#ifndef VIRNUCPRO_MODEL_H
#define VIRNUCPRO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vnp_precision {
    VNP_PREC_FP32 = 0,
    VNP_PREC_FP16 = 1,
    VNP_PREC_BF16 = 2
} vnp_precision;

typedef struct vnp_backend vnp_backend;

/* device: "cpu", "cuda", "cuda:N". threads: CPU worker threads (0 = all cores).
 * VIRNUCPRO_DISABLE_FP16=1|true|yes forces FP32 on any device (with a warning). */
vnp_code vnp_backend_create(const char *device, vnp_precision prec, int threads,
                            vnp_backend **out, vnp_error *err);
void vnp_backend_free(vnp_backend *be);
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

/* The NaN/Inf guard's FP32 recompute. As vnp_encoder_embed; when enc computes in
 * FP16/BF16 and the batch comes out with a NaN or Inf (nothing is written to out
 * then), the batch is recomputed in FP32 on the same device by an FP32 copy of
 * the model, loaded from the same checkpoint on first need into *twin (start
 * with NULL; free with vnp_encoder_fp32_free), and *recomputed is set to 1 (the
 * caller logs it with the sequence IDs). If FP32 is non-finite too: VNP_ENUMERIC. */
typedef struct vnp_encoder_fp32 vnp_encoder_fp32;
vnp_code vnp_encoder_embed_checked(vnp_encoder *enc, vnp_encoder_fp32 **twin,
                                   const vnp_batch *batch, float *out, int *recomputed,
                                   vnp_error *err);
void vnp_encoder_fp32_free(vnp_encoder_fp32 *twin);

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
/* x[n * input] -> probs[n * 2] (softmax; column 1 = virus). */
vnp_code vnp_classifier_predict(const vnp_classifier *c, const float *x, size_t n, float *probs,
                                vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
