/* report.html and the SVG files in plots/: the run in one self-contained page (summary, counts by
 * verdict, the histogram of per-sequence max virus scores, score tracks of the viral
 * sequences with the most viral chunks) and the same tracks as standalone SVG files.
 * Fed record by record by derive.c; depends only on what the derived tables hold, so
 * predict and classify write the same bytes. (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_REPORT_H
#define VNP_PIPELINE_REPORT_H

#include <stddef.h>

#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"

typedef struct vnp_report vnp_report;

vnp_code vnp_report_create(const vnp_derive_options *o, vnp_report **out, vnp_error *err);
/* Record number `index` (0-based, input order): its n chunks' scores and its tally. */
vnp_code vnp_report_add(vnp_report *r, size_t index, const vnp_record *rec,
                        const vnp_chunk_score *score, size_t n, const vnp_seq_tally *t,
                        vnp_error *err);
/* Writes report.html and plots/ (names + o->suffix) into o->out_dir. */
vnp_code vnp_report_finish(vnp_report *r, const vnp_derive_stats *st, vnp_error *err);
/* Tracks drawn (after finish). */
size_t vnp_report_tracks(const vnp_report *r);
void vnp_report_free(vnp_report *r);

#endif
