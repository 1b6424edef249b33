/* BPE on one pre-tokenized word: characters to symbols as `tokenizers` makes
 * them (unknown characters, byte fallback, subword prefix and word suffix), then
 * the merges (bpe_merge.c). */
#include <stdlib.h>
#include <string.h>

#include "tok/bpe_internal.h"
#include "tok/unicode.h"

/* Looks up prefix? + s + suffix? in the vocabulary. */
static int32_t lookup_decorated(const vnp_bpe *bpe, vnp_bpe_scratch *s, const char *c, size_t n,
                                int with_prefix, int with_suffix, const char **str,
                                size_t *str_len)
{
    size_t pl = with_prefix ? bpe->prefix_len : 0, sl = with_suffix ? bpe->suffix_len : 0;
    if (vnp_bpe_grow((void **)&s->buf, &s->buf_cap, pl + n + sl + 1, 1))
        return -2;
    if (pl)
        memcpy(s->buf, bpe->prefix, pl);
    memcpy(s->buf + pl, c, n);
    if (sl)
        memcpy(s->buf + pl + n, bpe->suffix, sl);
    *str = s->buf;
    *str_len = pl + n + sl;
    return vnp_strmap_get(&bpe->vocab, s->buf, pl + n + sl);
}

vnp_code vnp_bpe_word(const vnp_bpe *bpe, const char *word, size_t len, vnp_bpe_scratch *s,
                      vnp_ids *ids, vnp_error *err)
{
    if (len == 0)
        return VNP_OK;
    if (bpe->ignore_merges) {
        int32_t id = vnp_strmap_get(&bpe->vocab, word, len);
        if (id >= 0)
            return vnp_ids_push(ids, id, err);
    }
    /* A character yields at most 1 + prefix + suffix symbols (byte fallback), plus a
     * pending [UNK]; the merge queues hold at most 3 entries per symbol. The loader bounds
     * the prefix and suffix lengths. */
    size_t per_char = 2 + bpe->prefix_len;
    if (len > (INT32_MAX / 3 - bpe->suffix_len - 1) / per_char)
        return vnp_fail(err, VNP_EINVAL,
                        "a word of %zu bytes is too long to tokenize (at most %zu); split the "
                        "sequence",
                        len, (INT32_MAX / 3 - bpe->suffix_len - 1) / per_char);
    size_t cap = len * per_char + bpe->suffix_len + 1;
    if (vnp_bpe_grow((void **)&s->sym, &s->sym_cap, cap, sizeof *s->sym))
        return vnp_fail(err, VNP_ENOMEM, "out of memory tokenizing a word of %zu bytes", len);
    vnp_bpe_symbol *sym = s->sym;
    size_t n = 0;
    int32_t unk = -1; /* a pending [UNK], added when the next known character comes */
    const unsigned char *w = (const unsigned char *)word;
    const int plain = !bpe->prefix && !bpe->suffix;
#define ADD_SYMBOL(tok)                                                                       \
    do {                                                                                      \
        sym[n] = (vnp_bpe_symbol){(tok), (int32_t)n - 1, (int32_t)n + 1};                  \
        n++;                                                                                  \
    } while (0)
    for (size_t i = 0; i < len;) {
        size_t cl;
        int32_t id;
        const char *str = word + i;
        size_t str_len;
        if (plain && w[i] < 0x80) {
            cl = 1;
            id = bpe->ascii_id[w[i]];
            str_len = 1;
        } else {
            uint32_t cp;
            cl = vnp_utf8_decode(w + i, len - i, &cp);
            str_len = cl;
            if (plain) {
                id = vnp_strmap_get(&bpe->vocab, str, cl);
            } else {
                id = lookup_decorated(bpe, s, word + i, cl, i > 0 && bpe->prefix,
                                      i + cl == len && bpe->suffix, &str, &str_len);
                if (id == -2)
                    return vnp_fail(err, VNP_ENOMEM, "out of memory tokenizing a word");
            }
        }
        i += cl;
        if (id >= 0) {
            if (unk >= 0) {
                ADD_SYMBOL(unk);
                unk = -1;
            }
            ADD_SYMBOL(id);
            continue;
        }
        if (bpe->byte_fallback) {
            size_t b = 0;
            while (b < str_len && bpe->byte_id[(unsigned char)str[b]] >= 0)
                b++;
            if (b == str_len) {
                /* As `tokenizers`: a pending [UNK] stays pending across these. */
                for (b = 0; b < str_len; b++)
                    ADD_SYMBOL(bpe->byte_id[(unsigned char)str[b]]);
                continue;
            }
        }
        if (bpe->unk_id >= 0) {
            if (unk >= 0 && !bpe->fuse_unk)
                ADD_SYMBOL(unk);
            unk = bpe->unk_id;
        }
    }
    if (unk >= 0)
        ADD_SYMBOL(unk);
#undef ADD_SYMBOL
    if (n == 0)
        return VNP_OK;
    sym[n - 1].next = -1;
    if (vnp_bpe_merge(bpe, sym, n, s))
        return vnp_fail(err, VNP_ENOMEM, "out of memory tokenizing a word of %zu bytes", len);
    vnp_code c = vnp_ids_reserve(ids, n, err);
    if (c)
        return c;
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        ids->v[ids->n++] = sym[i].id;
    return VNP_OK;
}
