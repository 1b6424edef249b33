/* Training VirNucPro's MLP classifier on labelled feature rows, as the original
 * train.py does: Linear(in, hidden) -> BatchNorm1d -> ReLU -> Dropout(p) ->
 * Linear(hidden, 2), cross-entropy loss, SGD with momentum, StepLR, a random
 * train/validation split, early stopping on the validation loss. Class 1 = virus
 * (predict's score2), class 0 = others. */
#ifndef VIRNUCPRO_TRAIN_H
#define VIRNUCPRO_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the model's parameters, in PyTorch's state_dict layout (host, float32) ---- */
typedef struct vnp_mlp_params {
    int in, hidden, classes;
    float *w1, *b1;             /* hidden_layer.weight [hidden, in], .bias [hidden] */
    float *bn_w, *bn_b;         /* bn1.weight, bn1.bias [hidden] */
    float *bn_mean, *bn_var;    /* bn1.running_mean, bn1.running_var [hidden] */
    int64_t bn_batches;         /* bn1.num_batches_tracked */
    float *w2, *b2;             /* output_layer.weight [classes, hidden], .bias [classes] */
    float eps;                  /* bn1.eps (1e-5) */
    float bn_momentum;          /* bn1.momentum (0.1) */
    float dropout;              /* dropout.p */
} vnp_mlp_params;

/* PyTorch's default initialisation from `seed`: both Linear layers' weights and biases
 * uniform in +-1/sqrt(in_features) (kaiming_uniform with a = sqrt 5), BatchNorm weight
 * 1, bias 0, running mean 0, running var 1. */
vnp_code vnp_mlp_params_init(vnp_mlp_params *p, int in, int hidden, float dropout, uint64_t seed,
                             vnp_error *err);
vnp_code vnp_mlp_params_copy(vnp_mlp_params *dst, const vnp_mlp_params *src, vnp_error *err);
void vnp_mlp_params_free(vnp_mlp_params *p);
/* The parameters as a safetensors file that `predict --classifier` loads: the
 * state_dict's names (hidden_layer.weight, ..., bn1.num_batches_tracked I64 0-dim,
 * output_layer.bias), metadata with eps, momentum, dropout and `meta` (NULL or a
 * NULL-terminated key, value list). Written as .part and renamed. */
vnp_code vnp_mlp_save_safetensors(const vnp_mlp_params *p, const char *path,
                                  const char *const *meta, vnp_error *err);
/* The parameters as the original's model.pth: torch.save(model) of a whole
 * `__main__.MLPClassifier` module (PyTorch's zip format, pickle protocol 2, written by
 * our own pickle writer), which the original prediction.py loads with torch.load
 * (weights_only=False) where the class is defined; predict --classifier reads it too.
 * Written as .part and renamed. */
vnp_code vnp_mlp_save_pth(const vnp_mlp_params *p, const char *path, vnp_error *err);

/* ---- one optimiser on a backend (the GEMMs of both passes are backend ops) ---- */
typedef struct vnp_mlp_trainer vnp_mlp_trainer;

/* Trains p (p must outlive the trainer) with SGD (momentum, no dampening, no weight
 * decay) on batches of at most max_batch rows, on an FP32 backend with the training
 * ops (the CPU and CUDA backends; VNP_EUNSUPPORTED otherwise). The parameters are
 * copied to the backend here and stay there: p is brought up to date by
 * vnp_mlp_trainer_sync (and vnp_mlp_eval). */
vnp_code vnp_mlp_trainer_create(vnp_backend *be, vnp_mlp_params *p, int max_batch,
                                float momentum, vnp_mlp_trainer **out, vnp_error *err);
void vnp_mlp_trainer_free(vnp_mlp_trainer *t);
/* Copies the backend's parameters and running statistics into p (nothing to do when
 * no step ran since the last copy). */
vnp_code vnp_mlp_trainer_sync(vnp_mlp_trainer *t, vnp_error *err);
/* One step of train mode on the B rows x[B * in] with labels y (0/1): BatchNorm with
 * batch statistics (running statistics updated as PyTorch does), dropout where
 * keep[r * hidden + j] == 0 (kept units scaled by 1 / (1 - p)), mean cross-entropy,
 * backward, one SGD step with learning rate lr. *loss = the batch's loss. B >= 2. */
vnp_code vnp_mlp_train_step(vnp_mlp_trainer *t, const float *x, const uint8_t *y, int B,
                            const uint8_t *keep, double lr, double *loss, vnp_error *err);
/* Eval mode (running statistics, no dropout), as predict computes it: logits[n * 2]
 * (may be NULL) and probs[n * 2]. */
vnp_code vnp_mlp_eval(vnp_mlp_trainer *t, const float *x, size_t n, float *logits, float *probs,
                      vnp_error *err);

/* ---- metrics of a validation set ---- */
typedef struct vnp_binary_metrics {
    double loss;      /* mean cross-entropy */
    double accuracy, precision, recall, f1;
    double auroc;     /* NaN when one class is absent */
    size_t tp, fp, tn, fn;
} vnp_binary_metrics;

/* From logits and probs[n * 2] (column 1 = virus) and labels y: the loss from the
 * logits (log-sum-exp in double); the call is virus when p1 > p0
 * (argmax, ties to class 0 as torch.max); precision/recall/F1 of class 1, 0 when
 * undefined (as scikit-learn's zero_division default after its warning); AUROC of p1
 * with ties counted half (scikit-learn's roc_auc_score). */
vnp_code vnp_binary_metrics_compute(const float *logits, const float *probs, const uint8_t *y,
                                    size_t n, vnp_binary_metrics *m, vnp_error *err);

/* ---- labelled rows ---- */
typedef struct vnp_train_data {
    float *x;    /* n x width */
    uint8_t *y;  /* n: 1 = virus, 0 = other */
    size_t n;
    int width;
} vnp_train_data;

/* Appends the rows of a safetensors file: tensor "features" (train's cache, predict
 * --embeddings) or "embeddings" (embed), F32 [N, width]; labels from its "labels" U8
 * [N] when label < 0, else every row gets `label` (1 = virus). */
vnp_code vnp_train_data_append(const char *path, int label, vnp_train_data *d, vnp_error *err);
void vnp_train_data_free(vnp_train_data *d);

/* ---- labelled features from sequences ---- */
typedef struct vnp_train_features_options {
    const char *viral, *other; /* FASTA/FASTQ, any compression */
    const char *dnabert, *esm; /* model paths */
    const char *device;        /* --device list; default "auto" */
    vnp_precision precision;   /* on a GPU (predict's default); the CPU computes in FP32 */
    int threads;               /* CPU threads per CPU worker; 0 = all available */
    int chunk_len;             /* 300 or 500 */
    size_t batch_tokens;       /* 0 = predict's default */
    size_t window_orfs;        /* frames per window (the checkpoint unit); init: 2048 (0 = that) */
    int quiet;
    const char *out_path;      /* the labelled features file */
    int resume;                /* go on from <out_path>.journal (an interrupted run), or
                                * reuse a complete out_path of this run */
    int handle_signals;        /* SIGINT/SIGTERM/SIGHUP stop the computation at a resumable
                                * point (VNP_EINTERRUPTED; the signal in stats) */
} vnp_train_features_options;

typedef struct vnp_train_features_stats {
    size_t rows, viral_rows;   /* of the complete cache */
    size_t resumed_records;    /* records the interrupted run had finished (--resume) */
    int already_done;          /* --resume found the cache complete: nothing computed (rows
                                * not counted) */
    int signal;                /* VNP_EINTERRUPTED: the signal that stopped it */
} vnp_train_features_stats;

void vnp_train_features_options_init(vnp_train_features_options *o);
/* Every kept frame of every chunk of o->viral (label 1) then o->other (label 0), as
 * predict computes them (the same chunking, frames, tokenizers, encoders and workers),
 * into o->out_path: tensors "features" F32 [N, width], "ids", "labels" U8 [N], and the
 * run's identity as metadata "run.<key>". Journalled in <out_path>.journal after every
 * window (predict's journal): an interrupted run is continued by o->resume to the bytes
 * of an uninterrupted one. */
vnp_code vnp_train_features_compute(const vnp_train_features_options *o,
                                    vnp_train_features_stats *st, vnp_error *err);

/* ---- the training run ---- */
typedef struct vnp_train_options {
    int hidden;            /* 512 */
    float dropout;         /* 0.5 */
    double lr;             /* 2e-4 */
    double momentum;       /* 0.9 */
    int step_size;         /* StepLR: 10 epochs */
    double gamma;          /* StepLR: 0.85 */
    int batch;             /* 32 */
    double val_fraction;   /* 0.1 */
    int epochs;            /* at most 200 */
    int patience;          /* 5 epochs without a lower validation loss */
    uint64_t seed;         /* 0 */
    const char *device;    /* the backend the training runs on: "cpu" (NULL), "cuda" or
                            * "cuda:N" (FP32 on the GPU, parameters kept there) */
    int threads;           /* CPU threads; 0 = the CPUs this process may use */
    int quiet;             /* no per-epoch line on stderr */
    int handle_signals;    /* SIGINT/SIGTERM/SIGHUP stop the training between two batches
                            * (VNP_EINTERRUPTED; result's `signal` says which) */
    /* Tests: a safetensors file of everything random in the run (initial parameters
     * "init.<name>", split "split.train"/"split.val" I64, each epoch's row order
     * "order.<e>" I64 and dropout keep masks "keep.<e>" U8 [rows, hidden]). */
    const char *trace_path;
} vnp_train_options;

void vnp_train_options_init(vnp_train_options *o);

typedef struct vnp_train_epoch {
    int epoch;             /* 1-based */
    double lr;             /* the learning rate the epoch ran with */
    double loss;           /* mean of the epoch's batch losses */
    vnp_binary_metrics val;
} vnp_train_epoch;

typedef struct vnp_train_result {
    vnp_train_epoch *epochs; /* nepochs entries */
    int nepochs;
    int best_epoch;          /* 1-based: the epoch whose parameters were kept */
    int stopped_early;
    size_t train_rows, val_rows;
    vnp_mlp_params best;     /* the kept parameters */
    int signal;              /* VNP_EINTERRUPTED: the signal that stopped it (the rest of
                              * the result is empty then) */
} vnp_train_result;

void vnp_train_result_free(vnp_train_result *r);

/* Trains on x[n * width] with labels y (1 = virus). Writes nothing but the trace. */
vnp_code vnp_train_run(const float *x, const uint8_t *y, size_t n, int width,
                       const vnp_train_options *o, vnp_train_result *res, vnp_error *err);

/* Writes <prefix>.safetensors, <prefix>.pth, <prefix>.log.tsv (one row per epoch) and
 * <prefix>.heldout.tsv (the kept epoch's validation metrics); each as .part, renamed
 * once all are complete. `meta`: as vnp_mlp_save_safetensors. */
vnp_code vnp_train_write_outputs(const vnp_train_result *r, const vnp_train_options *o,
                                 const char *prefix, const char *const *meta, vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
