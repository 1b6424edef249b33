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
#include "virnucpro/tok.h"

/* The part of one input record inside a window. A long record may span
 * several windows: `first`/`last` say whether this is its first/last part. */
typedef struct vnp_win_seg {
    size_t id_off, id_len; /* record ID in the window's text arena */
    size_t length;         /* residues of the whole record */
    size_t chunks;         /* chunks of the whole record */
    int first, last;
    size_t orf_begin, orf_end; /* this part's ORFs: [orf_begin, orf_end) */
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
    float *features; /* norf x width, filled by compute */
    float *probs;    /* norf x 2 */
    uint64_t input_bytes; /* input consumed when the window was closed */
    size_t records;       /* records started so far, this window included */
    int eof;              /* the last window */
} vnp_window;

vnp_window *vnp_window_new(void);
void vnp_window_free(vnp_window *w);
/* Appends text to the arena; *off receives where it starts. */
vnp_code vnp_window_text(vnp_window *w, const char *s, size_t n, size_t *off, vnp_error *err);
vnp_code vnp_window_add_seg(vnp_window *w, const vnp_win_seg *s, vnp_error *err);
/* A new ORF slot (zeroed) at w->orf[w->norf - 1]. */
vnp_code vnp_window_add_orf(vnp_window *w, vnp_win_orf **out, vnp_error *err);
/* Allocates features/probs for norf rows of `width`. */
vnp_code vnp_window_alloc_outputs(vnp_window *w, int width, vnp_error *err);

/* A bounded blocking FIFO of windows between two stages. */
typedef struct vnp_win_queue vnp_win_queue;

vnp_win_queue *vnp_win_queue_new(size_t cap);
void vnp_win_queue_free(vnp_win_queue *q); /* frees windows still queued */
/* Blocks while full. Returns 0 (window not taken) if the queue was aborted. */
int vnp_win_queue_push(vnp_win_queue *q, vnp_window *w);
/* Blocks while empty. NULL when closed and drained, or aborted. */
vnp_window *vnp_win_queue_pop(vnp_win_queue *q);
/* No more pushes; pop drains then returns NULL. */
void vnp_win_queue_close(vnp_win_queue *q);
/* Wakes everyone: pushes fail, pops return NULL. */
void vnp_win_queue_abort(vnp_win_queue *q);

#endif
