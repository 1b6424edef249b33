/* The loaded BPE tokenizer, shared by the loader and the encoder. */
#ifndef VNP_TOK_BPE_INTERNAL_H
#define VNP_TOK_BPE_INTERNAL_H

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
    bool added_first_byte[256];
    /* pre-tokenizer */
    vnp_pretok pretok;
    /* post-processor: ids before and after the sequence */
    int32_t *pre_ids, *post_ids;
    size_t n_pre, n_post;
    size_t vocab_size;
};

/* Appends the model's ids for one pre-tokenized word. `scratch` is reused between
 * calls (free with vnp_bpe_scratch_free). */
typedef struct vnp_bpe_scratch {
    struct vnp_bpe_symbol *sym;
    size_t sym_cap;
    struct vnp_bpe_qitem *heap;
    size_t heap_cap;
    char *buf; /* prefix + character + suffix for non-ASCII or decorated lookups */
    size_t buf_cap;
} vnp_bpe_scratch;

vnp_code vnp_bpe_word(const vnp_bpe *bpe, const char *word, size_t len, vnp_bpe_scratch *s,
                      vnp_ids *ids, vnp_error *err);
void vnp_bpe_scratch_free(vnp_bpe_scratch *s);

#endif
