/* The compute stage shared by predict, embed and validate-precision: windows of
 * items (ORFs or records, with their token ids) go in, in input order; each window is
 * packed into token-budget batches that any free worker takes from one queue (one
 * worker per --device entry, each with its own embedder); windows come back out in
 * input order once all their batches are computed (the reorder step), so the output
 * does not depend on the number, kind or speed of the workers.
 *
 * A worker that fails (device error, out of memory, a guard error, an FP32 result that
 * is still non-finite) is retired: its batches go back to the queue and the others go
 * on; the run stops only when no worker is left.
 *
 * Threads: one producer calls push/close, one consumer calls pop/release, the workers
 * are the engine's own; any thread may call fail. (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_ENGINE_H
#define VNP_PIPELINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/embedder.h"
#include "pipeline/window.h"

typedef struct vnp_engine_config {
    vnp_embedder_config models;
    const char *const *devices; /* one worker each: "cpu", "cuda:N" */
    int ndevices;
    size_t batch_tokens;  /* ESM-2 tokens per batch (DNABERT-S tokens without ESM-2) */
    size_t max_windows;   /* windows alive at once; 0 = 3 + 2 x workers */
    int want_features;    /* bring the feature rows back to the windows */
} vnp_engine_config;

typedef struct vnp_engine vnp_engine;

/* Starts the workers, each loading the models onto its device (in parallel), and
 * returns once all are loaded; if any fails, the error of the first such worker in
 * --device order. Debugging: VIRNUCPRO_DEBUG_FAIL_WORKER=W:B[,W:B...] makes worker W
 * (0-based, --device order) fail as with a device error when it starts its B-th batch
 * (1-based). */
vnp_code vnp_engine_start(const vnp_engine_config *cfg, vnp_engine **out, vnp_error *err);
int vnp_engine_width(const vnp_engine *e);
int vnp_engine_hidden(const vnp_engine *e, vnp_encoder_kind kind);
int vnp_engine_workers(const vnp_engine *e);
/* "cuda:0 fp16, cuda:1 fp16" (for logs). */
const char *vnp_engine_describe(const vnp_engine *e);

/* Producer: hands over a window (the engine owns it from now on); blocks while
 * max_windows are alive. 0 when the run is stopping (the window is freed). */
int vnp_engine_push(vnp_engine *e, vnp_window *w, vnp_error *err);
/* Producer: no more windows. */
void vnp_engine_close(vnp_engine *e);
/* Consumer: the next window in push order once computed; NULL after the last one, or
 * when the run is stopping and the next window is not computed (vnp_engine_error says
 * why): computed windows still come out after a stop, so their rows can be kept. */
vnp_window *vnp_engine_pop(vnp_engine *e);
/* Consumer: done with a popped window (freed; the producer may go on). */
void vnp_engine_release(vnp_engine *e, vnp_window *w);

/* Stops every stage; the first error is kept. */
void vnp_engine_fail(vnp_engine *e, const vnp_error *err);
int vnp_engine_failed(vnp_engine *e);
/* A descriptor that becomes readable once the run is stopping (an error, a signal, every
 * worker retired), for a producer blocked on its input to poll (vnp_seq_set_stop_fd); -1
 * when no pipe could be made (the producer then blocks as before). Never read it. */
int vnp_engine_stop_fd(const vnp_engine *e);
/* The first error (VNP_OK when none). */
vnp_code vnp_engine_error(vnp_engine *e, vnp_error *err);

/* Progress, from any thread: tokens through the encoders, items computed, batches
 * recomputed in FP32, workers retired. */
typedef struct vnp_engine_counts {
    uint64_t tokens;
    size_t items;
    size_t recomputed;
    int retired;
} vnp_engine_counts;
void vnp_engine_counts_get(vnp_engine *e, vnp_engine_counts *c);

/* Joins the workers and frees everything (windows still inside included). */
void vnp_engine_free(vnp_engine *e);

#endif
