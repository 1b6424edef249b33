/* BPE on one pre-tokenized word: characters to symbols, then merges by rank.
 *
 * The symbols form a doubly linked list over a fixed array, and candidate merges
 * wait in a binary min-heap ordered by (rank, position of the left symbol): the
 * lowest rank first and, on equal ranks, the leftmost. A heap entry whose pair has
 * changed since it was pushed is recognised when popped and dropped. This is the
 * order `tokenizers` merges in, at O(n log n) per word. */
#include <stdlib.h>
#include <string.h>

#include "tok/bpe_internal.h"
#include "tok/unicode.h"

typedef struct vnp_bpe_symbol {
    int32_t id;
    int32_t prev, next; /* -1: none */
    int32_t removed;    /* merged into its left neighbour */
} vnp_bpe_symbol;

typedef struct vnp_bpe_qitem {
    uint32_t rank;
    uint32_t pos; /* index of the left symbol */
    int32_t new_id;
} vnp_bpe_qitem;

void vnp_bpe_scratch_free(vnp_bpe_scratch *s)
{
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static inline int q_less(const vnp_bpe_qitem *a, const vnp_bpe_qitem *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void q_sift_down(vnp_bpe_qitem *h, size_t n, size_t i)
{
    vnp_bpe_qitem x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && q_less(&h[c + 1], &h[c]))
            c++;
        if (!q_less(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void q_push(vnp_bpe_qitem *h, size_t *n, vnp_bpe_qitem x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!q_less(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

/* Applies every merge; symbols[0..n) are linked in order. */
static void merge_all(const vnp_pairmap *merges, vnp_bpe_symbol *sym, size_t n,
                      vnp_bpe_qitem *heap)
{
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const vnp_merge *m = vnp_pairmap_get(merges, sym[i].id, sym[i + 1].id);
        if (m)
            heap[hn++] = (vnp_bpe_qitem){m->rank, (uint32_t)i, m->id};
    }
    for (size_t i = hn / 2; i-- > 0;)
        q_sift_down(heap, hn, i);
    /* Every merge removes a symbol and pushes at most two entries; the heap never
     * holds more than n - 1 + 2 * (n - 1) entries. */
    while (hn) {
        vnp_bpe_qitem top = heap[0];
        heap[0] = heap[--hn];
        q_sift_down(heap, hn, 0);
        vnp_bpe_symbol *left = &sym[top.pos];
        if (left->removed || left->next < 0)
            continue;
        vnp_bpe_symbol *right = &sym[left->next];
        const vnp_merge *m = vnp_pairmap_get(merges, left->id, right->id);
        if (!m || m->id != top.new_id)
            continue; /* stale: the pair has changed since this entry was pushed */
        left->id = top.new_id;
        left->next = right->next;
        right->removed = 1;
        if (right->next >= 0)
            sym[right->next].prev = (int32_t)top.pos;
        if (left->prev >= 0) {
            const vnp_merge *pm = vnp_pairmap_get(merges, sym[left->prev].id, left->id);
            if (pm)
                q_push(heap, &hn, (vnp_bpe_qitem){pm->rank, (uint32_t)left->prev, pm->id});
        }
        if (left->next >= 0) {
            const vnp_merge *nm = vnp_pairmap_get(merges, left->id, sym[left->next].id);
            if (nm)
                q_push(heap, &hn, (vnp_bpe_qitem){nm->rank, top.pos, nm->id});
        }
    }
}

/* Looks up prefix? + s + suffix? in the vocabulary. */
static int32_t lookup_decorated(const vnp_bpe *bpe, vnp_bpe_scratch *s, const char *c, size_t n,
                                int with_prefix, int with_suffix, const char **str,
                                size_t *str_len)
{
    size_t pl = with_prefix ? bpe->prefix_len : 0, sl = with_suffix ? bpe->suffix_len : 0;
    if (grow((void **)&s->buf, &s->buf_cap, pl + n + sl + 1, 1))
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
     * pending [UNK]; the heap holds at most 3 entries per symbol. The loader bounds
     * the prefix and suffix lengths. */
    size_t per_char = 2 + bpe->prefix_len;
    if (len > (INT32_MAX / 3 - bpe->suffix_len - 1) / per_char)
        return vnp_fail(err, VNP_EINVAL,
                        "a word of %zu bytes is too long to tokenize (at most %zu); split the "
                        "sequence",
                        len, (INT32_MAX / 3 - bpe->suffix_len - 1) / per_char);
    size_t cap = len * per_char + bpe->suffix_len + 1;
    if (grow((void **)&s->sym, &s->sym_cap, cap, sizeof *s->sym) ||
        grow((void **)&s->heap, &s->heap_cap, 3 * cap, sizeof *s->heap))
        return vnp_fail(err, VNP_ENOMEM, "out of memory tokenizing a word of %zu bytes", len);
    vnp_bpe_symbol *sym = s->sym;
    size_t n = 0;
    int32_t unk = -1; /* a pending [UNK], added when the next known character comes */
    const unsigned char *w = (const unsigned char *)word;
    const int plain = !bpe->prefix && !bpe->suffix;
#define ADD_SYMBOL(tok)                                                                       \
    do {                                                                                      \
        sym[n] = (vnp_bpe_symbol){(tok), (int32_t)n - 1, (int32_t)n + 1, 0};                  \
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
    merge_all(&bpe->merges, sym, n, s->heap);
    vnp_code c = vnp_ids_reserve(ids, n, err);
    if (c)
        return c;
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        ids->v[ids->n++] = sym[i].id;
    return VNP_OK;
}
