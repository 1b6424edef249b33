/* Stage 5: the prediction pipeline. Streams records from the input through
 * chunking, six-frame translation, tokenization, token-budget packing, both
 * encoders and the classifier, and writes the output files in input order with
 * memory bounded by the batch size, not by the input. */
#ifndef VIRNUCPRO_PIPELINE_H
#define VIRNUCPRO_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "virnucpro/error.h"
#include "virnucpro/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- float formatting ---- */

/* Room for any float32 as vnp_format_f32 writes it, NUL included. */
#define VNP_F32_STR_MAX 24

/* Writes v as numpy prints a float32 scalar (repr/str): the shortest decimal
 * that reads back to the same float32; positional when 1e-4 <= |v| < 1e16 or
 * v == 0 ("0.5", "1.0", "123456790.0"), otherwise scientific with at least two
 * exponent digits ("1e-05", "1.2345e-05", "3.4e+38"); "nan", "inf", "-inf".
 * buf must hold VNP_F32_STR_MAX bytes. Returns the length written. */
int vnp_format_f32(float v, char *buf);

/* ---- token-budget packing ---- */

/* A batch of the packing: order[first .. first + count) are the items in it;
 * tokens is the sum of their lengths. */
typedef struct vnp_pack_batch {
    size_t first;
    size_t count;
    size_t tokens;
} vnp_pack_batch;

typedef struct vnp_packing {
    size_t *order;           /* item indices, batch by batch */
    size_t n;                /* items (= entries of order) */
    vnp_pack_batch *batches;
    size_t nbatches;
} vnp_packing;

/* Groups items 0..n-1 with lengths len[i] (tokens) into batches of at most
 * `budget` tokens. Items are taken in windows of `window` consecutive items
 * (0 = one window of all n); within a window they are sorted by length,
 * longest first, ties by index, and filled greedily, so that a batch holds
 * sequences of similar length. An item longer than the budget on its own gets
 * a batch of its own. The result depends only on (len, n, budget, window).
 * Every item appears in exactly one batch. */
vnp_code vnp_pack(const size_t *len, size_t n, size_t budget, size_t window, vnp_packing *out,
                  vnp_error *err);
void vnp_packing_free(vnp_packing *p);

/* ---- prediction_results.txt ---- */

/* The original tool's label rule (torch.max over the two probabilities keeps
 * the first of equal values): "virus" when p_virus > p_others, else "others". */
const char *vnp_label_of(float p_others, float p_virus);

/* Header "Sequence_ID\tPrediction\tscore1\tscore2". */
vnp_code vnp_results_write_header(FILE *f, const char *path, vnp_error *err);
/* One row: id, label, both probabilities as numpy prints float32. */
vnp_code vnp_results_write_row(FILE *f, const char *path, const char *id, size_t id_len,
                               float p_others, float p_virus, vnp_error *err);

/* ---- prediction_results_highestscore.csv ---- */

/* Collects per-chunk maxima of both scores and writes them sorted by chunk ID
 * (byte order, as pandas' groupby sorts Python strings), one row per distinct
 * chunk ID with "True" when max score2 >= max score1. Chunk IDs that occur
 * more than once (duplicate record IDs in the input) are merged, as groupby
 * does. Memory is bounded: past `mem_limit` bytes of collected IDs the sorted
 * entries spill to temporary files next to the output and are merged at the
 * end. */
typedef struct vnp_chunk_calls vnp_chunk_calls;

/* out_path: the final file; spill files are created as out_path.runN.tmp.
 * mem_limit 0 = 16 MiB. */
vnp_code vnp_chunk_calls_create(const char *out_path, size_t mem_limit, vnp_chunk_calls **out,
                                vnp_error *err);
/* Adds one frame's scores under its chunk ID (the frame ID minus its last two
 * characters). Consecutive frames of a chunk are combined on the fly. */
vnp_code vnp_chunk_calls_add(vnp_chunk_calls *c, const char *chunk_id, size_t id_len,
                             float p_others, float p_virus, vnp_error *err);
/* Sorts, merges and writes the file; removes the spill files. */
vnp_code vnp_chunk_calls_finish(vnp_chunk_calls *c, vnp_error *err);
/* Spill files written so far (tests). */
size_t vnp_chunk_calls_runs(const vnp_chunk_calls *c);
/* Frees; removes spill files left by an unfinished run. */
void vnp_chunk_calls_free(vnp_chunk_calls *c);

/* ---- per-chunk calls and sequences.tsv ---- */

/* A chunk's scores: its kept frames and the largest score1 (others) and score2
 * (virus) over them. frames == 0: no stop-free frame, the chunk was never scored. */
typedef struct vnp_chunk_score {
    size_t frames;
    float max_others, max_virus;
} vnp_chunk_score;

/* The call of a scored chunk. min_score < 0: the original rule, max score2 >= max
 * score1 (prediction_results_highestscore.csv); else max score2 >= min_score
 * (--min-score). 0 for an unscored chunk. */
int vnp_chunk_viral(const vnp_chunk_score *s, float min_score);
/* "virus", "others" or "unscored". */
const char *vnp_chunk_call(const vnp_chunk_score *s, float min_score);

/* A sequence's tally over its chunks. The verdict:
 *   "virus"    scored > 0 and 2 * viral >= scored (at least half of the scored
 *              chunks called viral; a tie goes to virus like the per-chunk rule)
 *   "others"   scored > 0 and fewer than half called viral
 *   "unscored" no chunk has a stop-free frame (nothing to classify). */
typedef struct vnp_seq_tally {
    size_t length;
    size_t chunks;
    size_t chunks_scored;
    size_t chunks_viral;
    float max_virus; /* max score2 over all frames; meaningful when chunks_scored > 0 */
} vnp_seq_tally;

void vnp_seq_tally_begin(vnp_seq_tally *t, size_t length, size_t chunks);
/* One chunk (scored or not) and its call. */
void vnp_seq_tally_add(vnp_seq_tally *t, const vnp_chunk_score *s, int viral);
const char *vnp_seq_tally_verdict(const vnp_seq_tally *t);

/* Header "Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\tMax_virus_score\tVerdict". */
vnp_code vnp_sequences_write_header(FILE *f, const char *path, vnp_error *err);
/* One row; Max_virus_score is "NA" when nothing was scored. */
vnp_code vnp_sequences_write_row(FILE *f, const char *path, const char *id, size_t id_len,
                                 const vnp_seq_tally *t, vnp_error *err);

/* ---- the derived outputs: per chunk, per region, viral FASTA, report ---- */

/* Output names (inside the output directory; VNP_PREDICT_SEQUENCES below). */
#define VNP_PREDICT_CHUNKS "chunks.tsv"
#define VNP_PREDICT_BED "viral_regions.bed"
#define VNP_PREDICT_VIRAL_FNA "viral.fna"
#define VNP_PREDICT_REPORT "report.html"
#define VNP_PREDICT_PLOTS "plots"
#define VNP_DEFAULT_PLOTS 20
#define VNP_MAX_PLOTS 10000
/* predict's defaults that depend on the device (batch_tokens = 0 picks one) */
#define VNP_DEFAULT_BATCH_TOKENS_CPU 4096
#define VNP_DEFAULT_BATCH_TOKENS_CUDA 32768
#define VNP_DEFAULT_WINDOW_ORFS 2048

/* What vnp_derive reads and writes. The derived files depend only on the rows of a
 * complete prediction_results.txt, the input they were computed from, -l and these
 * options, so `predict` (at its commit) and `classify` (later, without models) write the
 * same bytes. */
typedef struct vnp_derive_options {
    const char *results;    /* a complete prediction_results.txt (or its .part) */
    const char *input;      /* the input the rows came from: FASTA/FASTQ, any compression */
    const char *input_name; /* the input as the report names it (NULL: input) */
    const char *out_dir;
    const char *suffix;     /* appended to every output name ("" or ".part") */
    int chunk_len;          /* 300 or 500 */
    float min_score;        /* a chunk is viral when max score2 >= min_score; < 0: the
                             * original rule, max score2 >= max score1 */
    int plots;              /* score tracks in the report and plots/ (0: none) */
    unsigned shard_index;   /* predict --shard I/N: the outputs hold this shard's records */
    unsigned shard_count;   /* (0/0: every record) */
    const char *records_sha256; /* NULL, or the SHA-256 the input's records must have (as
                                 * predict's reader computes it) */
    int quiet;              /* no warnings about the input (it was read once already) */
    int trust_rows;         /* skip checking every chunk's rows against its stop-free frames
                             * (predict: its own rows, the records checked by SHA-256) */
} vnp_derive_options;

typedef struct vnp_derive_stats {
    size_t records, chunks, frames;
    size_t chunks_scored, chunks_viral;
    size_t seq_virus, seq_others, seq_unscored;
    size_t regions;
    size_t plots; /* tracks drawn */
} vnp_derive_stats;

void vnp_derive_options_init(vnp_derive_options *o);
/* Writes sequences.tsv, chunks.tsv, viral_regions.bed, viral.fna, report.html and
 * plots/ (each name + suffix; plots/ only when plots > 0) into out_dir. Streams: memory
 * is one record and its chunks (plus the tracks kept for the report). Fails, naming the
 * row, when the rows do not belong to the input's records in order, or when the records
 * are not the ones given by records_sha256; on failure nothing it wrote is left. */
vnp_code vnp_derive(const vnp_derive_options *o, vnp_derive_stats *st, vnp_error *err);
/* Gives the derived outputs written with suffix ".part" their final names (a missing
 * .part is fine when the final file is there: a finished earlier rename). */
vnp_code vnp_derive_rename(const char *out_dir, vnp_error *err);
/* Removes out_dir/plots/ (the SVG files and the directory). */
void vnp_derive_remove_plots(const char *out_dir);
/* Removes the derived outputs (name + suffix) from out_dir; plots/ recursively. */
void vnp_derive_remove(const char *out_dir, const char *suffix);

/* ---- merged features as safetensors, streamed ---- */

/* A safetensors file of ID'd rows: an F32 [N, width] tensor (predict: "features",
 * row i = [DNABERT-S | ESM-2] of ORF i in prediction_results.txt order; embed:
 * "embeddings") and tensor "ids" U8, the IDs in row order each followed by '\n'.
 * Rows stream to temporary files and the final file is assembled at finish (and
 * appears only then), so memory does not grow with N. */
typedef struct vnp_features_writer vnp_features_writer;

/* tensor: name of the F32 [N, width] tensor ("features", "embeddings"); meta: NULL or
 * a NULL-terminated list of key, value strings added to the file's __metadata__. */
vnp_code vnp_features_writer_create(const char *path, const char *tensor, int width,
                                    const char *const *meta, vnp_features_writer **out,
                                    vnp_error *err);
uint64_t vnp_features_writer_rows(const vnp_features_writer *w);
vnp_code vnp_features_writer_add(vnp_features_writer *w, const char *id, size_t id_len,
                                 const float *row, vnp_error *err);
/* Labelled rows (train's feature cache): one label per row, 1 = virus; finish adds
 * tensor "labels" U8 [N]. */
vnp_code vnp_features_writer_add_label(vnp_features_writer *w, int label, vnp_error *err);
vnp_code vnp_features_writer_finish(vnp_features_writer *w, vnp_error *err);
void vnp_features_writer_free(vnp_features_writer *w);
/* Resumable writing (train's feature cache): the rows and IDs so far flushed to their
 * temporary files (<path>.rows.tmp, <path>.ids.tmp) and counted, for a journal. */
vnp_code vnp_features_writer_checkpoint(vnp_features_writer *w, uint64_t *rows,
                                        uint64_t *id_bytes, vnp_error *err);
/* vnp_features_writer_free then leaves the temporary files for a resume. */
void vnp_features_writer_keep(vnp_features_writer *w);
/* Goes on with the temporary files a kept writer left, cut back to `rows` rows and
 * `id_bytes` bytes of IDs (a checkpoint's counts); labels are added again by the
 * caller. VNP_EFORMAT naming the file when one is shorter or missing. */
vnp_code vnp_features_writer_resume(const char *path, const char *tensor, int width,
                                    const char *const *meta, uint64_t rows, uint64_t id_bytes,
                                    vnp_features_writer **out, vnp_error *err);

/* ---- devices: one worker per --device entry ---- */

#define VNP_MAX_WORKERS 64

typedef struct vnp_devices {
    char **name;   /* "cpu" or "cuda:N", one per worker, in --device order */
    int n;
    int auto_cpu;  /* "auto" found no GPU and fell back to the CPU */
    int auto_gpus; /* GPUs "auto" found (0 when "auto" was not used or found none) */
} vnp_devices;

/* Parses a --device list: comma-separated "auto" (every visible GPU, else the CPU),
 * "cpu", "cuda" (every visible GPU; an error when there is none) and "cuda:N";
 * entries may repeat ("cpu,cpu" = two CPU workers). NULL or "" = "auto". CPU and GPU
 * workers in one list are refused (their results differ in the last bits). */
vnp_code vnp_devices_parse(const char *spec, vnp_devices *d, vnp_error *err);
void vnp_devices_free(vnp_devices *d);
/* CPUs this process may run on (sched_getaffinity), the default of -t. */
int vnp_cpu_threads_available(void);

/* ---- predict ---- */

struct vnp_run_record;

typedef struct vnp_predict_options {
    const char *input;      /* FASTA/FASTQ path, gzip or not; "-" = stdin */
    const char *out_dir;    /* created if missing */
    const char *esm;        /* ESM-2 model directory or fair-esm .pt */
    const char *dnabert;    /* DNABERT-S model directory (with tokenizer.json) */
    const char *classifier; /* VirNucPro classifier .pth */
    const char *device;     /* --device list (see vnp_devices_parse); default "auto" */
    vnp_precision precision; /* default VNP_PREC_DEFAULT: FP16 on a GPU, FP32 on the CPU;
                              * a reduced one on the CPU is emulated (slow; for checking) */
    int threads;            /* CPU threads of each CPU worker; 0 = the CPUs this process
                             * may use */
    int chunk_len;          /* 300 or 500 */
    size_t batch_tokens;    /* token budget of one encoder batch; 0 = default */
    size_t window_orfs;     /* ORFs read ahead and sorted by length (default
                             * VNP_DEFAULT_WINDOW_ORFS; 0 = the default) */
    int keep_intermediate;  /* also write the three preprocessing files */
    int embeddings;         /* also write merged_features.safetensors */
    int resume;             /* continue an interrupted run in out_dir from its journal
                             * (predict.journal); not with embeddings/keep_intermediate */
    float min_score;        /* derived outputs: a chunk is viral when its max score2 >=
                             * min_score; < 0 (default): max score2 >= max score1 */
    int plots;              /* score tracks in report.html and plots/ (default 20) */
    int progress;           /* -1 = on when stderr is a terminal, 0 off, 1 on */
    double log_interval;    /* progress -1 and stderr not a terminal: one timestamped line
                             * every this many seconds (default 60; 0: none) */
    int handle_signals;     /* SIGINT/SIGTERM/SIGHUP stop the run cleanly (resumable) and
                             * vnp_predict returns VNP_EINTERRUPTED; the CLI sets it (handlers
                             * are installed while predict runs; ignored signals stay so) */
    size_t sort_memory;     /* bytes of chunk IDs held before sorted runs spill to disk
                             * (prediction_results_highestscore.csv); 0 = 16 MiB */
    unsigned shard_index;   /* --shard I/N: only records whose 0-based index modulo N is */
    unsigned shard_count;   /* I - 1; also writes shard.txt for vnp_merge (0/0: no shard) */
    const struct vnp_run_record *record; /* run.json (argc, argv, start; the CLI's): predict
                             * writes it where a kill must not leave an old one behind:
                             * status "running" when a fresh run clears the directory, and
                             * "ok" as the last file of the commit (under run.json.part, renamed
                             * with the outputs, so a --resume of a run killed in its commit
                             * finishes it too). NULL: predict writes no run.json */
} vnp_predict_options;

/* Defaults: device "auto", VNP_PREC_DEFAULT (FP16 on CUDA, FP32 on the CPU),
 * chunk 500, progress auto. */
void vnp_predict_options_init(vnp_predict_options *o);

typedef struct vnp_predict_stats {
    size_t records;      /* sequences read */
    size_t chunks;
    size_t orfs;         /* kept frames classified */
    uint64_t tokens;     /* tokens through both encoders */
    size_t recomputed;   /* batches recomputed in FP32 by the NaN/Inf guard */
    int workers;         /* workers started (one per --device entry) */
    int retired;         /* workers that failed and were retired */
    char devices[256];   /* the workers: "cuda:0 fp16, cuda:1 fp16" */
    int signal;          /* VNP_EINTERRUPTED: the signal that stopped the run */
    int already_done;    /* --resume found the run finished (or finished its last renames):
                          * nothing was computed, the results are in place */
    double seconds;      /* wall time from the first record to the last row */
    double load_seconds; /* model loading */
    long peak_rss_kb;    /* getrusage(RUSAGE_SELF) ru_maxrss at the end */
    vnp_derive_stats derived; /* the derived outputs (verdict counts, regions, tracks) */
    double derive_seconds;    /* writing them (part of `seconds`) */
    size_t batch_tokens;      /* the token budget used (the default resolved) */
    size_t window_orfs;       /* the window used */
    char records_sha256[65];  /* SHA-256 of the records read (IDs and sequences; "" when
                               * none was read) */
    int record_written;       /* o->record: run.json (status ok) was committed with the
                               * outputs */
} vnp_predict_stats;

/* Output file names inside out_dir. */
#define VNP_PREDICT_RESULTS "prediction_results.txt"
#define VNP_PREDICT_HIGHEST "prediction_results_highestscore.csv"
#define VNP_PREDICT_SEQUENCES "sequences.tsv"
#define VNP_PREDICT_FEATURES "merged_features.safetensors"

/* Parses --shard "I/N" (1 <= I <= N <= 1000000); VNP_EINVAL with a usage message. */
vnp_code vnp_shard_parse(const char *spec, unsigned *index, unsigned *count, vnp_error *err);
/* ---- the build ---- */

typedef struct vnp_build_info {
    const char *version;    /* "0.1.0" */
    const char *git_commit; /* of the source tree at build time ("-dirty": modified), or
                             * "unknown" */
    const char *build_type; /* CMAKE_BUILD_TYPE */
    const char *cuda_archs; /* ";"-separated CUDA architectures compiled for; "" without CUDA */
    const char *blas;       /* the BLAS library, as it describes itself */
} vnp_build_info;

void vnp_build_info_get(vnp_build_info *b);

/* ---- run.json: the record of a predict run ---- */

#define VNP_PREDICT_RUN_JSON "run.json"

typedef struct vnp_run_record {
    int argc;
    char *const *argv;            /* the command line */
    const vnp_predict_options *o; /* as run (the model paths resolved) */
    const vnp_predict_stats *st;  /* what vnp_predict returned */
    double start, end;            /* wall clock, seconds since the epoch */
    int exit_status;              /* the process's */
    const char *error;            /* the error message, NULL on success */
    int running;                  /* status "running" (a run has started in the directory;
                                   * end_time and exit_status null): exit_status is not used */
} vnp_run_record;

/* Writes o->out_dir/run.json (cJSON; a temporary file renamed into place): the tool
 * (version, git commit, build type, CUDA architectures, BLAS), the command line, start and
 * end time (UTC, ISO 8601), host, devices with the precision each computes in, every model
 * file with its size and SHA-256, the input (path, size and SHA-256 of the file, SHA-256
 * of the records), the options, the counts, the time of each stage, peak RSS, the exit
 * status and the error. Schema "virnucpro-run/1" (README). */
vnp_code vnp_run_record_write(const vnp_run_record *r, vnp_error *err);
/* The same under another name in o->out_dir (predict's commit: "run.json.part"). */
vnp_code vnp_run_record_write_as(const vnp_run_record *r, const char *name, vnp_error *err);

/* Loads and checks every model (classifier input = DNABERT-S hidden + ESM-2
 * hidden) before the input is opened, then streams the input to the outputs.
 * While it runs, out_dir/predict.journal records after each completed record
 * how far the ".part" outputs are complete (not for stdin, --embeddings or
 * --keep-intermediate); when a run fails after that point the partial outputs
 * and the journal are kept and the error says so, and a run with `resume`
 * continues from the next record, giving the same files as an uninterrupted
 * run. One worker per --device entry computes batches from a shared queue; a
 * worker that fails is retired and its batches are computed by the others; the run
 * fails only when none is left. Debugging: VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=N
 * makes the writer fail after N windows (to test resuming);
 * VIRNUCPRO_DEBUG_FAIL_WORKER=W:B[,...] makes worker W fail at its B-th batch. */
vnp_code vnp_predict(const vnp_predict_options *o, vnp_predict_stats *stats, vnp_error *err);

/* ---- merge: shards of one run -> the files of a single run ---- */

/* Combines the output directories of `predict --shard I/N` (every I of one N, any order)
 * into out_dir: the files a single run over the whole input writes, byte for byte
 * (rows back in input order, the highest-score file sorted as one run sorts it).
 * Refuses, naming the directories and what differs, shards of different runs (input
 * records and their SHA-256, models, -l, device kind and precision, version, N), a
 * shard given twice or missing, an unfinished shard, and files it cannot combine. The
 * files appear in out_dir only when all are complete (".part" names, then renames). */
vnp_code vnp_merge(const char *out_dir, const char *const *dirs, size_t ndirs, vnp_error *err);
/* out_dir/merge.journal: written by vnp_merge once every merged file is complete, before
 * the first rename, and removed by vnp_merge_finish; while it is there out_dir is half
 * merged (a merge stopped in its renames, or in vnp_merge_report), and classify, merge
 * (out_dir as a shard) and predict refuse it. Running the merge again completes it. */
#define VNP_MERGE_JOURNAL "merge.journal"
/* VNP_EINVAL naming the directory and saying to run the merge again when dir is half
 * merged; VNP_OK otherwise. */
vnp_code vnp_merge_check_complete(const char *dir, vnp_error *err);
/* After vnp_merge (and vnp_merge_report, when it runs, whether it succeeded or not): out_dir
 * is complete, its journal goes. */
vnp_code vnp_merge_finish(const char *out_dir, vnp_error *err);
/* After vnp_merge: report.html and plots/ of out_dir (and its derived tables again, the same
 * bytes), drawn from the merged rows and `input`, the file the shards read (its records
 * must have the run's SHA-256), with the shards' -l, --min-score and --plots (from
 * out_dir/run.json); then out_dir is one run's directory. */
vnp_code vnp_merge_report(const char *out_dir, const char *input, vnp_error *err);
/* 1 when out_dir/run.json records an absolute input path that can be read now (copied
 * into path): the input vnp_merge_report can use when none is given. */
int vnp_merge_recorded_input(const char *out_dir, char *path, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
