/* Encoding text with a loaded BPE tokenizer, in the order `tokenizers` applies
 * its stages: added tokens are split out of the raw text (those matched before
 * normalisation, then those matched after it), the rest is pre-tokenized into
 * words, each word goes through the BPE model, and the post-processor's special
 * tokens frame the result. */
#include <stdlib.h>
#include <string.h>

#include "tok/bpe_internal.h"
#include "tok/unicode.h"

typedef enum { CLS_SPACE, CLS_WORD, CLS_PUNCT } char_class;

/* Classes of the ASCII characters, built at compile time. */
#define W_ CLS_WORD
#define P_ CLS_PUNCT
#define S_ CLS_SPACE
static const unsigned char ascii_class[128] = {
    P_, P_, P_, P_, P_, P_, P_, P_, P_, S_, S_, S_, S_, S_, P_, P_, /* \t \n \v \f \r */
    P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_,
    S_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, P_, /* space */
    W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, P_, P_, P_, P_, P_, P_, /* 0-9 */
    P_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, /* A-O */
    W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, P_, P_, P_, P_, W_, /* P-Z _ */
    P_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, /* a-o */
    W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, W_, P_, P_, P_, P_, P_, /* p-z */
};
#undef W_
#undef P_
#undef S_

/* The classes of `\w+|[^\w\s]+` for one character. ASCII follows Oniguruma exactly;
 * other code points are word characters unless White_Space, and a byte that is
 * not UTF-8 is punctuation (see virnucpro/tok.h for why this cannot change ids
 * as long as the vocabulary's symbols are ASCII). */
static inline char_class classify(const unsigned char *s, size_t len, size_t *n)
{
    if (s[0] < 0x80) {
        *n = 1;
        return (char_class)ascii_class[s[0]];
    }
    uint32_t cp;
    *n = vnp_utf8_decode(s, len, &cp);
    if (cp == VNP_UTF8_INVALID)
        return CLS_PUNCT;
    return vnp_unicode_is_white_space(cp) ? CLS_SPACE : CLS_WORD;
}

/* Pre-tokenizes a piece of text and runs the model on each word. */
static vnp_code encode_words(const vnp_bpe *bpe, const char *text, size_t len,
                             vnp_bpe_scratch *s, vnp_ids *ids, vnp_error *err)
{
    if (bpe->pretok == VNP_PRETOK_NONE)
        return vnp_bpe_word(bpe, text, len, s, ids, err);
    const unsigned char *u = (const unsigned char *)text;
    const int split_classes = bpe->pretok == VNP_PRETOK_WHITESPACE;
    size_t start = 0, i = 0;
    char_class cur = CLS_SPACE;
    while (i < len) {
        size_t n;
        char_class k = classify(u + i, len - i, &n);
        if (!split_classes && k != CLS_SPACE)
            k = CLS_WORD;
        if (k != cur) {
            if (cur != CLS_SPACE) {
                vnp_code c = vnp_bpe_word(bpe, text + start, i - start, s, ids, err);
                if (c)
                    return c;
            }
            cur = k;
            start = i;
        }
        i += n;
    }
    if (cur != CLS_SPACE)
        return vnp_bpe_word(bpe, text + start, len - start, s, ids, err);
    return VNP_OK;
}

/* The longest added token of the given kind starting at text[0], or NULL. */
static const vnp_added_token *added_at(const vnp_bpe *bpe, const char *text, size_t len,
                                       bool normalized)
{
    const vnp_added_token *best = NULL;
    for (size_t k = 0; k < bpe->n_added; k++) {
        const vnp_added_token *t = &bpe->added[k];
        if (t->normalized == normalized && t->len <= len && (!best || t->len > best->len) &&
            !memcmp(text, t->content, t->len))
            best = t;
    }
    return best;
}

/* pass 0 splits out added tokens matched on the raw text, pass 1 those matched
 * on the normalised text (the same text: no normaliser is supported), pass 2 is
 * the model. Matches are leftmost-longest, as the Aho-Corasick automaton of
 * `tokenizers` finds them. */
static vnp_code encode_piece(const vnp_bpe *bpe, const char *text, size_t len, int pass,
                             vnp_bpe_scratch *s, vnp_ids *ids, vnp_error *err)
{
    if (pass == 2)
        return encode_words(bpe, text, len, s, ids, err);
    const bool normalized = pass == 1;
    if (bpe->n_first[pass] == 0)
        return encode_piece(bpe, text, len, pass + 1, s, ids, err);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (bpe->n_first[pass] == 1) {
            /* one possible first byte: let memchr find the candidates */
            const char *c = memchr(text + i, bpe->first_byte[pass], len - i);
            if (!c)
                break;
            i = (size_t)(c - text);
        } else if (!bpe->added_first[pass][(unsigned char)text[i]]) {
            continue;
        }
        const vnp_added_token *t = added_at(bpe, text + i, len - i, normalized);
        if (!t)
            continue;
        vnp_code c = encode_piece(bpe, text + start, i - start, pass + 1, s, ids, err);
        if (c || (c = vnp_ids_push(ids, t->id, err)))
            return c;
        start = i + t->len;
        i = start - 1;
    }
    return encode_piece(bpe, text + start, len - start, pass + 1, s, ids, err);
}

vnp_code vnp_bpe_encode(const vnp_bpe *bpe, const char *text, size_t len, vnp_ids *ids,
                        vnp_error *err)
{
    vnp_code c = vnp_ids_reserve(ids, bpe->n_pre + bpe->n_post, err);
    if (c)
        return c;
    for (size_t i = 0; i < bpe->n_pre; i++)
        ids->v[ids->n++] = bpe->pre_ids[i];
    /* Take the spare work area if no other thread holds it. The bpe is shared
     * read-only; the spare pointer is its one atomic, mutable field. */
    vnp_bpe *shared = (vnp_bpe *)bpe;
    vnp_bpe_scratch *s = atomic_exchange(&shared->spare, NULL);
    if (!s && !(s = calloc(1, sizeof *s)))
        return vnp_fail(err, VNP_ENOMEM, "out of memory tokenizing %zu bytes", len);
    c = encode_piece(bpe, text, len, 0, s, ids, err);
    /* Give it back (after an error its buckets may not be empty: drop it). */
    vnp_bpe_scratch *none = NULL;
    if (c || !atomic_compare_exchange_strong(&shared->spare, &none, s)) {
        vnp_bpe_scratch_free(s);
        free(s);
    }
    if (c)
        return c;
    c = vnp_ids_reserve(ids, bpe->n_post, err);
    if (c)
        return c;
    for (size_t i = 0; i < bpe->n_post; i++)
        ids->v[ids->n++] = bpe->post_ids[i];
    return VNP_OK;
}
