/* A window: the unit of work that flows reader -> compute -> writer. It holds
 * a run of consecutive ORFs (with their token ids) and the record segments
 * they came from; compute fills in their features and probabilities. Windows
 * are processed in input order, so rows come out in input order. (Internal
 * to src/pipeline.) */
#ifndef VNP_PIPELINE_WINDOW_H
#define VNP_PIPELINE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"
#include "virnucpro/tok.h"

/* The part of one input record inside a window. A long record may span
 * several windows: `first`/`last` say whether this is its first/last part. */
typedef struct vnp_win_seg {
    size_t id_off, id_len; /* record ID in the window's text arena */
    size_t length;         /* residues of the whole record */
    size_t chunks;         /* chunks of the whole record */
    int first, last;
    size_t orf_begin, orf_end; /* this part's ORFs: [orf_begin, orf_end) */
    size_t chunk_end;          /* chunks of the record done once this part is written */
} vnp_win_seg;

typedef struct vnp_win_orf {
    size_t chunk;          /* 0-based chunk of its record */
    size_t id_off, id_len; /* "<record>_chunk_<n><frame>" in the text arena */
    size_t dna_off, dna_len; /* DNABERT-S ids in window.dna */
    size_t esm_off, esm_len; /* ESM-2 ids in window.esm */
} vnp_win_orf;

typedef struct vnp_window {
    char *text;
    size_t text_n, text_cap;
    vnp_win_seg *seg;
    size_t nseg, seg_cap;
    vnp_win_orf *orf;
    size_t norf, orf_cap;
    vnp_ids dna, esm;
    /* Results, written by the workers (disjoint rows) and read by the writer once
     * `pending` is 0 (both under the engine's lock, so the rows are visible). */
    float *features; /* norf x width when features are wanted, else NULL */
    float *probs;    /* norf x 2 with a classifier */
    uint64_t input_bytes; /* input file bytes consumed when the window was closed */
    char input_sha256[65]; /* SHA-256 of the records read when it was closed (journal) */
    size_t records;       /* records started so far, this window included */
    int eof;              /* the last window */
    /* The engine's, under its lock: the batches of the window, how many are not yet
     * computed, and the next window in input order. */
    vnp_packing pack;
    size_t pending;
    uint64_t seq;
    struct vnp_window *next;
} vnp_window;

vnp_window *vnp_window_new(void);
void vnp_window_free(vnp_window *w);
/* Appends text to the arena; *off receives where it starts. */
vnp_code vnp_window_text(vnp_window *w, const char *s, size_t n, size_t *off, vnp_error *err);
vnp_code vnp_window_add_seg(vnp_window *w, const vnp_win_seg *s, vnp_error *err);
/* A segment for `chunks` chunks of record `rec` (its ID copied into the arena), `first`
 * when it holds the record's first chunk; its ORFs start at the window's next one. */
vnp_code vnp_window_add_record(vnp_window *w, const vnp_record *rec, size_t chunks, int first,
                               vnp_error *err);
/* A new ORF slot (zeroed) at w->orf[w->norf - 1]. */
vnp_code vnp_window_add_orf(vnp_window *w, vnp_win_orf **out, vnp_error *err);
/* Allocates probs (with_probs) and features (width > 0) for norf rows. */
vnp_code vnp_window_alloc_outputs(vnp_window *w, int width, int with_probs, vnp_error *err);

#endif
