/* The loaded BPE tokenizer, shared by the loader and the encoder. */
#ifndef VNP_TOK_BPE_INTERNAL_H
#define VNP_TOK_BPE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tok/maps.h"
#include "virnucpro/tok.h"

typedef enum vnp_pretok {
    VNP_PRETOK_NONE,            /* the whole text is one word */
    VNP_PRETOK_WHITESPACE_SPLIT, /* runs of non-whitespace */
    VNP_PRETOK_WHITESPACE,      /* \w+|[^\w\s]+ */
} vnp_pretok;

typedef struct vnp_added_token {
    char *content;
    size_t len;
    int32_t id;
    bool normalized; /* matched after normalisation (no normaliser: the same text) */
} vnp_added_token;

struct vnp_bpe {
    /* model */
    vnp_strmap vocab;     /* model vocabulary */
    vnp_pairmap merges;
    int32_t ascii_id[128]; /* id of each one-byte token (no prefix/suffix), -1 if absent */
    int32_t byte_id[256];  /* ids of "<0xXX>" (byte_fallback), -1 if absent */
    int32_t unk_id;        /* -1: unknown characters are dropped */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix; NULL if none */
    size_t prefix_len, suffix_len;
    /* added tokens, split out of the text before the model sees it */
    vnp_added_token *added;
    size_t n_added;
    vnp_strmap added_map; /* content -> index into added */
    /* first bytes of the added tokens matched on the raw text ([0]) and after
     * normalisation ([1]): a set, its size, and the byte when there is one */
    bool added_first[2][256];
    int n_first[2];
    unsigned char first_byte[2];
    /* pre-tokenizer */
    vnp_pretok pretok;
    /* post-processor: ids before and after the sequence */
    /* merge schedule (see bpe_merge.c) */
    bool rank_schedule; /* the merges allow the bucket-per-rank schedule */
    uint32_t n_ranks;   /* largest rank + 1 */
    /* with rank_schedule: the pair and the merged token of each rank (-1: no
     * merge has that rank) */
    int32_t *rank_left, *rank_right, *rank_new;
    /* Dense pair table, when small enough (NULL otherwise): ids that start a
     * merge get a row, ids that end one a column (-1: none); the cell holds the
     * rank + 1 (0: no merge). Few tokens start or end merges (DNABERT-S: 299 x
     * 278 of 4096), so most lookups end at the first array. */
    int32_t *dense_row, *dense_col;
    uint16_t *dense_rank1;
    size_t dense_ids, dense_cols;
    int32_t *pre_ids, *post_ids;
    size_t n_pre, n_post;
    size_t vocab_size;
    /* one work area kept between vnp_bpe_encode calls (NULL while in use): the
     * bucket arrays are sized by the merges, so allocating them per call would
     * cost more than tokenizing a short read */
    _Atomic(struct vnp_bpe_scratch *) spare;
};

/* One symbol of a word being merged: a doubly linked list over a fixed array. */
typedef struct vnp_bpe_symbol {
    int32_t id;         /* -1 once merged into its left neighbour */
    int32_t prev, next; /* -1: none */
} vnp_bpe_symbol;

/* Work memory of one vnp_bpe_encode call, reused from word to word. */
typedef struct vnp_bpe_scratch {
    vnp_bpe_symbol *sym;
    size_t sym_cap;
    /* general schedule: binary heap */
    struct vnp_bpe_qitem *heap;
    size_t heap_cap;
    /* rank schedule: one bucket (linked list of entries) per rank, a bitmap of
     * the non-empty ones; every bucket is empty between words */
    int32_t *bucket_head;
    uint64_t *bucket_bits;
    /* the first candidates (pairs of the initial symbols), sorted by rank with
     * a counting sort: init_count/init_begin per rank (counts zero between
     * words), positions in init_pos; init_rank per position */
    int32_t *init_count, *init_begin, *init_pos, *init_rank;
    size_t init_cap;
    struct vnp_bpe_qentry *entry;
    size_t entry_cap;
    int32_t *batch;
    size_t batch_cap;
    /* prefix + character + suffix for non-ASCII or decorated lookups */
    char *buf;
    size_t buf_cap;
} vnp_bpe_scratch;

/* Grows *p to hold at least `need` elements. Returns 0 or -1 (no memory). */
int vnp_bpe_grow(void **p, size_t *cap, size_t need, size_t elem);
void vnp_bpe_scratch_free(vnp_bpe_scratch *s);

/* Appends the model's ids for one pre-tokenized word. */
vnp_code vnp_bpe_word(const vnp_bpe *bpe, const char *word, size_t len, vnp_bpe_scratch *s,
                      vnp_ids *ids, vnp_error *err);

/* Applies every merge to sym[0..n) (linked in order, n > 0) in the order
 * `tokenizers` does. Returns 0 or -1 (no memory). */
int vnp_bpe_merge(const vnp_bpe *bpe, vnp_bpe_symbol *sym, size_t n, vnp_bpe_scratch *s);

#endif
