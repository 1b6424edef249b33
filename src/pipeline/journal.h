/* predict's resume journal: after every window that ends on a record boundary
 * the writer records how many input records are complete and how long each
 * output file is at that point; `predict --resume` truncates the ".part"
 * files to those lengths and goes on from the next record. (Internal to
 * src/pipeline.) */
#ifndef VNP_PIPELINE_JOURNAL_H
#define VNP_PIPELINE_JOURNAL_H

#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/pipeline.h"

#define VNP_PREDICT_JOURNAL "predict.journal"

typedef struct vnp_journal {
    char run[8192];          /* what the run was: input identity, chunk length, models */
    uint64_t records;        /* input records whose rows are all written */
    uint64_t results_bytes;  /* prediction_results.txt.part length */
    uint64_t sequences_bytes;/* sequences.tsv.part length */
} vnp_journal;

/* Describes the run (input path, size and mtime, chunk length, model paths) in
 * j->run; VNP_EUNSUPPORTED for stdin, which cannot be read again. */
vnp_code vnp_journal_describe(const vnp_predict_options *o, vnp_journal *j, vnp_error *err);
/* Writes path atomically (temporary file + rename). */
vnp_code vnp_journal_write(const char *path, const vnp_journal *j, vnp_error *err);
/* VNP_ENOTFOUND when there is none. */
vnp_code vnp_journal_read(const char *path, vnp_journal *j, vnp_error *err);

#endif
