/* predict's resume journal (DIR/predict.journal), replaced atomically after every
 * window the writer completes: which run it is (identity by content: input path and
 * the SHA-256 of the records read, -l, precision, tool version, each model's SHA-256),
 * how far the ".part" outputs are complete (whole records, plus the chunks done of a
 * record cut by the window), and whether the run had
 * reached its final renames ("committing"). `predict --resume` cuts the ".part" files
 * back to these lengths and goes on from there, or finishes the renames.
 * (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_JOURNAL_H
#define VNP_PIPELINE_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "virnucpro/error.h"
#include "virnucpro/pipeline.h"

#define VNP_PREDICT_JOURNAL "predict.journal"
#define VNP_JOURNAL_IDENT_MAX 16

/* One "key value" line of the run's identity, e.g. {"esm", "<sha256>"}. */
typedef struct vnp_journal_ident {
    char key[32];
    char value[1024];
} vnp_journal_ident;

typedef struct vnp_journal {
    vnp_journal_ident ident[VNP_JOURNAL_IDENT_MAX];
    int nident;
    int committing;           /* the outputs were complete; renames may be half done */
    uint64_t records;         /* input records whose rows are all written */
    uint64_t partial_chunks;  /* chunks done of the next record (0: it was not begun) */
    uint64_t results_bytes;   /* prediction_results.txt.part length */
    uint64_t chunks, frames;  /* totals written so far (the summary after a resume) */
    uint64_t ids_bytes;       /* train: bytes of the feature cache's IDs written so far */
    uint64_t viral_frames;    /* train: rows of the viral input among `frames` */
    char input_sha256[65];    /* SHA-256 of the records read: records (+1 when partial) */
} vnp_journal;

/* What this run is: input path ("-" for stdin: such a run is not resumable, but a
 * shard of it is still merged by this identity), -l, precision, tool version, the
 * shard (--shard I/N) and the SHA-256 of each model's files (cached by path, size, mtime, inode: see vnp_file_sha256_cached). */
vnp_code vnp_journal_describe(const vnp_predict_options *o, vnp_journal *j, vnp_error *err);
/* The same for train's feature computation (train.c's journal, PREFIX.features.journal):
 * the viral and other input paths, -l, the kind of workers and their precision, the tool
 * version and the SHA-256 of both encoders' files. */
struct vnp_train_features_options;
vnp_code vnp_journal_describe_train(const struct vnp_train_features_options *o, vnp_journal *j,
                                    vnp_error *err);
/* VNP_OK when `old` was written by the same run as `now` (the same identity keys with
 * the same values); else VNP_EINVAL naming what differs ("the ESM-2 model ... changed"). */
vnp_code vnp_journal_same_run(const vnp_journal *old, const vnp_journal *now, const char *path,
                              vnp_error *err);
/* What an identity key stands for in messages ("the chunk length (-l)"). */
const char *vnp_journal_ident_what(const char *key);
/* Writes path atomically (temporary file + rename). */
vnp_code vnp_journal_write(const char *path, const vnp_journal *j, vnp_error *err);
/* Parses a journal from f (path names it in messages); VNP_EFORMAT when damaged. */
vnp_code vnp_journal_parse(FILE *f, const char *path, vnp_journal *j, vnp_error *err);
/* VNP_ENOTFOUND when there is none; VNP_EFORMAT naming the file when damaged. */
vnp_code vnp_journal_read(const char *path, vnp_journal *j, vnp_error *err);

#endif
