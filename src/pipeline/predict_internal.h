/* State shared by the three stages of predict: reader (records -> windows of
 * tokenized ORFs), compute (encoders + classifier, in the calling thread) and
 * writer (rows in input order). (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_PREDICT_INTERNAL_H
#define VNP_PIPELINE_PREDICT_INTERNAL_H

#include <pthread.h>
#include <stdio.h>

#include "pipeline/journal.h"
#include "pipeline/window.h"
#include "virnucpro/model.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"
#include "virnucpro/tok.h"

typedef struct vnp_predict_outputs {
    char *results_path, *highest_path, *sequences_path, *features_path; /* final names */
    char *results_part, *highest_part, *sequences_part;                /* while writing */
    FILE *results, *sequences;
    vnp_chunk_calls *highest;
    vnp_features_writer *features;
    vnp_seq_tally tally; /* the record being written (may span windows) */
    const char *tally_id;
} vnp_predict_outputs;

typedef struct vnp_predict_progress {
    int on;
    double t0, last;
    uint64_t total_bytes; /* 0 when unknown (stdin, gzip) */
    int drawn;
} vnp_predict_progress;

typedef struct vnp_predict_ctx {
    const vnp_predict_options *o;
    vnp_backend *be;
    vnp_encoder *dnabert, *esm;
    vnp_classifier *cls;
    vnp_bpe *bpe;
    int hd, he, width; /* DNABERT-S hidden, ESM-2 hidden, hd + he */
    size_t batch_tokens, window_orfs;

    vnp_seq_reader *reader;
    vnp_preprocess_writer *pre; /* --keep-intermediate */
    vnp_win_queue *to_compute, *to_write;
    vnp_predict_outputs out;
    int journaling;          /* write the resume journal */
    vnp_journal journal;     /* run description + progress */
    char *journal_path;
    int journal_written;     /* partial outputs are resumable */
    uint64_t records_done;   /* records whose rows are all written (resumed ones included) */
    uint64_t skip_records;   /* --resume: records the reader skips */
    long fail_after_windows; /* debugging: writer fails after this many windows (0 = never) */
    long windows_written;
    uint64_t bytes_done;     /* input position at the end of the last written window (ETA) */
    size_t records_read;     /* records read so far (progress line) */
    size_t orfs_embedded;    /* ORFs through both encoders so far (progress line) */
    vnp_predict_progress progress;

    pthread_mutex_t mu; /* guards rc/err and the counters below */
    vnp_code rc;
    vnp_error err;
    vnp_predict_stats st;
} vnp_predict_ctx;

/* Records the first failure and stops every stage. */
void vnp_predict_fail(vnp_predict_ctx *c, const vnp_error *e);
int vnp_predict_failed(vnp_predict_ctx *c);

void *vnp_predict_reader_main(void *ctx);
void *vnp_predict_writer_main(void *ctx);
/* Runs in the calling thread until the reader's windows are exhausted. */
void vnp_predict_compute_loop(vnp_predict_ctx *c);

vnp_code vnp_predict_outputs_open(vnp_predict_ctx *c, vnp_error *err);
/* Completes every output file and gives it its final name. */
vnp_code vnp_predict_outputs_commit(vnp_predict_ctx *c, vnp_error *err);
/* Removes partial files. */
void vnp_predict_outputs_abort(vnp_predict_ctx *c);

double vnp_predict_now(void);
long vnp_predict_peak_rss_kb(void);
/* Redraws the progress line from the shared counters (throttled; any thread). */
void vnp_predict_tick(vnp_predict_ctx *c, int final);
void vnp_predict_progress_init(vnp_predict_progress *p, int on, uint64_t total_bytes);
void vnp_predict_progress_update(vnp_predict_progress *p, size_t records, size_t orfs, uint64_t tokens,
                         uint64_t bytes, int final);

#endif
