/* The engine's shared state and its workers (engine.c: queue, reorder, lifecycle;
 * worker.c: one device's thread). (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_ENGINE_INTERNAL_H
#define VNP_PIPELINE_ENGINE_INTERNAL_H

#include <pthread.h>

#include "pipeline/engine.h"

/* A token-budget batch: items w->pack.order[first .. first + count). */
typedef struct vnp_ebatch {
    vnp_window *w;
    size_t first, count;
    uint64_t seq; /* 1-based, in push order (logs) */
    struct vnp_ebatch *next;
} vnp_ebatch;

typedef struct vnp_worker {
    vnp_engine *eng;
    int index;
    const char *device;
    long fail_at; /* VIRNUCPRO_DEBUG_FAIL_WORKER: fail when starting this batch (0 = never) */
    pthread_t thread;
    int started;
    /* Owned by the worker's thread. */
    vnp_embedder *emb;
    long taken; /* batches started */
    /* Gather buffers per slot and model ([slot][0] ESM-2, [slot][1] DNABERT-S): a batch's
     * tokens stay as they were until it is finished, for the FP32 recompute. */
    int32_t *tok[2][2], *cu[2][2];
    size_t tok_cap[2][2], cu_cap[2][2];
    float *rows[2], *probs[2]; /* per slot: features and scores of the batch in flight */
    size_t rows_cap[2], probs_cap[2];
    /* Written by the worker before it signals `loaded`, read by the starter after. */
    vnp_code load_rc;
    vnp_error load_err;
} vnp_worker;

struct vnp_engine {
    vnp_engine_config cfg;  /* read-only once started */
    vnp_model_source *src[2]; /* DNABERT-S, ESM-2: parsed and mapped once for all workers */
    int width, hd, he;
    char describe[512];
    vnp_worker *workers;
    int nworkers;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t work;  /* batches queued, or the end */
    pthread_cond_t done;  /* a window completed, or the end */
    pthread_cond_t room;  /* a window released, or the end */
    pthread_cond_t ready; /* a worker finished loading */
    vnp_ebatch *qhead, *qtail; /* batches waiting for a worker */
    size_t held;               /* batches taken by workers, not yet delivered */
    vnp_window *whead, *wtail; /* windows pushed and not yet popped, in input order */
    size_t alive;              /* windows pushed and not yet released */
    size_t max_windows;
    uint64_t seq_windows, seq_batches;
    int closed, stopping;
    int stop_pipe[2]; /* a byte is written to [1] when stopping is first set; [0] is what
                         a reader blocked on its input polls (vnp_engine_stop_fd) */
    int loaded, live; /* workers done loading / not retired */
    vnp_code rc;
    vnp_error err;
    vnp_engine_counts counts;
};

void *vnp_worker_main(void *arg);

/* For workers (take the lock themselves). */
/* Blocks for a batch (or, with wait = 0, returns NULL at once when none is queued). NULL
 * when the run is over or stopping. */
vnp_ebatch *vnp_engine_take(vnp_engine *e, int wait);
/* A computed batch: rows are in its window; counts it. */
void vnp_engine_deliver(vnp_engine *e, vnp_ebatch *b, uint64_t tokens, int recomputed);
/* Worker w gives up: its batches (up to 2, NULL allowed) go back to the front of the queue. */
void vnp_engine_retire(vnp_engine *e, vnp_worker *w, vnp_ebatch *a, vnp_ebatch *b,
                       const vnp_error *why);

#endif
