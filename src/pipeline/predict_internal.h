/* predict's state, split by owner: what the calling thread sets up before the
 * threads start (read-only after), the reader's, the writer's, and the little that
 * is shared (under `mu`). The compute stage is the engine (engine.h), whose state
 * is its own. (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_PREDICT_INTERNAL_H
#define VNP_PIPELINE_PREDICT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "pipeline/engine.h"
#include "pipeline/journal.h"
#include "pipeline/window.h"
#include "virnucpro/model.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"
#include "virnucpro/tok.h"

typedef struct vnp_predict_outputs {
    char *results_path, *highest_path, *features_path; /* final names */
    char *results_part, *highest_part;                 /* while writing */
    char *shard_path, *shard_part; /* --shard: shard.txt */
    FILE *results;
    vnp_chunk_calls *highest;
    vnp_features_writer *features;
} vnp_predict_outputs;

typedef struct vnp_predict_progress {
    int on;               /* the redrawn line (a terminal, or --progress) */
    int log;              /* timestamped lines every `interval` s (stderr not a terminal) */
    double interval;
    double t0, last;
    uint64_t total_bytes; /* input file size, compressed or not; 0 when unknown (stdin) */
    int drawn;
    /* the ETA: input bytes per second, smoothed (an exponential moving average of the
     * rate between samples at least 1 s apart) */
    double rate, sample_t;
    uint64_t sample_bytes;
} vnp_predict_progress;

/* The timed log lines' thread (progress.c): its own lock and wake-up. */
typedef struct vnp_predict_logger {
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;
    int stop;
    int running;
} vnp_predict_logger;

typedef struct vnp_predict_ctx {
    /* Set by the calling thread before the threads start; read-only after. */
    const vnp_predict_options *o;
    vnp_classifier *cls;
    vnp_bpe *bpe;
    vnp_engine *eng;
    int width;               /* feature width (DNABERT-S + ESM-2 hidden) */
    size_t window_orfs;
    int resuming;            /* --resume of an interrupted run: c->journal is its journal */
    int journaling;          /* write the resume journal */
    char *journal_path;
    int lock_fd;             /* flock on DIR/.virnucpro.lock, held for the whole run */
    char *lock_path;
    char *spool_path;        /* stdin: the copy of the records for viral.fna (derive.c) */
    double run_start;        /* vnp_predict_now() when the first record is read */

    /* The reader thread's (the calling thread's again after the join). */
    vnp_seq_reader *reader;
    vnp_preprocess_writer *pre; /* --keep-intermediate */
    int input_read;          /* the input was read to its end: the next two are set */
    uint64_t input_records;  /* records of the whole input (those of other shards too) */
    char input_sha256[65];   /* SHA-256 of all of them (shard.txt: merge checks it) */

    /* The writer thread's (the calling thread's again after the join). */
    vnp_predict_outputs out;
    vnp_journal journal;     /* run identity + progress (with --resume: as read back) */
    int journal_written;     /* partial outputs are resumable */
    uint64_t records_done;   /* records whose rows are all written (resumed ones included) */
    long fail_after_windows; /* debugging: writer fails after this many windows (0 = never) */
    long windows_written;
    vnp_derive_stats derived; /* what the derived outputs hold (after the commit) */

    /* Any thread. */
    atomic_int interrupted;  /* the signal that stopped the run (0: none) */
    atomic_int no_resume_advice; /* the failure is one that --resume cannot get past */

    /* Shared: under mu. */
    pthread_mutex_t mu;
    uint64_t bytes_done;     /* input position at the end of the last written window (ETA) */
    size_t records_read;     /* records read so far (progress line) */
    vnp_predict_progress progress;
    vnp_predict_logger logger; /* the calling thread starts and stops it */
    vnp_predict_stats st;    /* records/chunks/orfs written so far */
} vnp_predict_ctx;

/* The __metadata__ of merged_features.safetensors (merge writes the same). */
extern const char *const vnp_predict_features_meta[];

/* Records the first failure and stops every stage. */
void vnp_predict_fail(vnp_predict_ctx *c, const vnp_error *e);
/* The signal that interrupted the run, or 0. */
int vnp_predict_interrupted(vnp_predict_ctx *c);

void *vnp_predict_reader_main(void *ctx);
void *vnp_predict_writer_main(void *ctx);

vnp_code vnp_predict_outputs_open(vnp_predict_ctx *c, vnp_error *err);
/* Completes every output file and gives it its final name. */
vnp_code vnp_predict_outputs_commit(vnp_predict_ctx *c, vnp_error *err);
/* After a failure: removes the partial files, unless they hold rows --resume can go on
 * from (vnp_predict_resumable). */
void vnp_predict_outputs_abort(vnp_predict_ctx *c);
/* The journal holds at least one record's (or chunk's) rows: --resume can go on. */
int vnp_predict_resumable(const vnp_predict_ctx *c);
/* --resume of a run killed during its final renames: renames what is left. */
vnp_code vnp_predict_finish_commit(const char *dir, vnp_error *err);
/* run.json.part, renamed last by the commit (o->record: run_record.c). */
#define VNP_PREDICT_RUN_JSON_PART VNP_PREDICT_RUN_JSON ".part"
/* With o->record: run.json with status "running" (a fresh run is about to clear the
 * directory), else run.json.part with status "ok" and the run's final counts (the commit,
 * all outputs complete). No-op without o->record. */
vnp_code vnp_predict_write_record(vnp_predict_ctx *c, int running, vnp_error *err);

double vnp_predict_now(void);
long vnp_predict_peak_rss_kb(void);
/* Redraws the progress line from the shared counters (throttled; any thread). */
void vnp_predict_tick(vnp_predict_ctx *c, int final);
void vnp_predict_progress_init(vnp_predict_progress *p, int on, int log, double interval,
                               uint64_t total_bytes);
/* With progress.log: a thread writing one timestamped line every interval seconds. */
void vnp_predict_logger_start(vnp_predict_ctx *c);
void vnp_predict_logger_stop(vnp_predict_ctx *c);
void vnp_predict_progress_update(vnp_predict_progress *p, size_t records, size_t orfs, uint64_t tokens,
                         uint64_t bytes, int final);

/* ---- the ORFs of a record (orfs.c): shared by predict and validate-precision ---- */
/* Appends the kept (stop-free) frames of chunk `chunk` of rec to w: IDs
 * "<record>_chunk_<n><frame>", DNABERT-S ids (when bpe) and ESM-2 ids. fr is the
 * caller's scratch. Returns the number added in *added. */
vnp_code vnp_orfs_add_chunk(vnp_window *w, const vnp_bpe *bpe, const vnp_record *rec,
                            size_t chunk_len, size_t chunk, vnp_frames *fr, size_t *added,
                            vnp_error *err);

#endif
