/* The merge loop of BPE: which adjacent pair merges next.
 *
 * `tokenizers` keeps candidate merges in a binary min-heap ordered by (rank,
 * position of the left symbol): the lowest rank first and, on equal ranks, the
 * leftmost. A popped entry whose pair has changed since it was pushed (checked by
 * the merged token's id) is dropped. merge_by_heap is that schedule, exactly, for
 * any merge list, at O(n log n) per word.
 *
 * For a merge list as BPE training writes it, a cheaper schedule gives the same
 * result. When (1) every merged token is made by exactly one merge and (2) a merge
 * that uses a merged token comes after the merge that makes it, a merge of rank r
 * only creates pairs of rank > r: ranks are processed in increasing order, and a
 * rank's candidates are all known when its turn comes. merge_by_rank keeps one
 * bucket per rank and a bitmap of the non-empty ones, and processes a bucket's
 * positions left to right: O(1) per candidate instead of O(log n). Because a
 * merged token identifies its pair, the staleness test is the same. The loader
 * checks (1) and (2) and picks the schedule (vnp_bpe.rank_schedule). */
#include <stdlib.h>
#include <string.h>

#include "tok/bpe_internal.h"

int vnp_bpe_grow(void **p, size_t *cap, size_t need, size_t elem)
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

typedef struct vnp_bpe_qitem {
    uint32_t rank;
    uint32_t pos; /* index of the left symbol */
    int32_t new_id;
} vnp_bpe_qitem;

typedef struct vnp_bpe_qentry {
    int32_t pos;
    int32_t next; /* next entry of the same bucket, -1 at the end */
} vnp_bpe_qentry;

void vnp_bpe_scratch_free(vnp_bpe_scratch *s)
{
    free(s->sym);
    free(s->heap);
    free(s->bucket_head);
    free(s->bucket_bits);
    free(s->init_count);
    free(s->init_begin);
    free(s->init_pos);
    free(s->init_rank);
    free(s->entry);
    free(s->batch);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* ---- general schedule: binary heap ---- */

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

static int merge_by_heap(const vnp_pairmap *merges, vnp_bpe_symbol *sym, size_t n,
                         vnp_bpe_scratch *s)
{
    /* Every merge removes a symbol and pushes at most two entries. */
    if (vnp_bpe_grow((void **)&s->heap, &s->heap_cap, 3 * n, sizeof *s->heap))
        return -1;
    vnp_bpe_qitem *heap = s->heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const vnp_merge *m = vnp_pairmap_get(merges, sym[i].id, sym[i + 1].id);
        if (m)
            heap[hn++] = (vnp_bpe_qitem){m->rank, (uint32_t)i, m->id};
    }
    for (size_t i = hn / 2; i-- > 0;)
        q_sift_down(heap, hn, i);
    while (hn) {
        vnp_bpe_qitem top = heap[0];
        heap[0] = heap[--hn];
        q_sift_down(heap, hn, 0);
        vnp_bpe_symbol *left = &sym[top.pos];
        if (left->id < 0 || left->next < 0) /* removed, or the last symbol */
            continue;
        vnp_bpe_symbol *right = &sym[left->next];
        const vnp_merge *m = vnp_pairmap_get(merges, left->id, right->id);
        if (!m || m->id != top.new_id)
            continue; /* stale: the pair has changed since this entry was pushed */
        left->id = top.new_id;
        left->next = right->next;
        right->id = -1;
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
    return 0;
}

/* ---- rank schedule: a bucket per rank ---- */

static inline void bucket_push(vnp_bpe_scratch *s, size_t *ne, uint32_t rank, int32_t pos)
{
    s->entry[*ne] = (vnp_bpe_qentry){pos, s->bucket_head[rank]};
    s->bucket_head[rank] = (int32_t)(*ne)++;
    s->bucket_bits[rank >> 6] |= (uint64_t)1 << (rank & 63);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Positions of one bucket in increasing order. The list is last-in first-out, so
 * reversing it usually sorts it already. */
static void sort_batch(int32_t *v, size_t k)
{
    for (size_t i = 0, j = k - 1; i < j; i++, j--) {
        int32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    size_t i = 1;
    while (i < k && v[i - 1] < v[i])
        i++;
    if (i == k)
        return;
    if (k > 32) {
        qsort(v, k, sizeof *v, cmp_i32);
        return;
    }
    for (; i < k; i++) {
        int32_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x)
            v[j] = v[j - 1], j--;
        v[j] = x;
    }
}

/* Rank of the merge of (a, b), or -1. */
static inline int64_t pair_rank(const vnp_bpe *bpe, int32_t a, int32_t b)
{
    if (bpe->dense_rank1) {
        /* symbol ids are model ids, all below dense_ids */
        int32_t row = bpe->dense_row[a], col;
        if (row < 0 || (col = bpe->dense_col[b]) < 0)
            return -1;
        return (int64_t)bpe->dense_rank1[(size_t)row * bpe->dense_cols + (size_t)col] - 1;
    }
    const vnp_merge *m = vnp_pairmap_get(&bpe->merges, a, b);
    return m ? (int64_t)m->rank : -1;
}

/* Merges the pair at pos if it is still the pair of this rank, and queues the
 * pairs the merge creates. */
static inline void merge_at(const vnp_bpe *bpe, vnp_bpe_symbol *sym, vnp_bpe_scratch *s,
                            size_t *ne, int32_t pos, int32_t want_left, int32_t want_right,
                            int32_t new_id)
{
    vnp_bpe_symbol *left = &sym[pos];
    /* Stale unless the pair is still the one of this rank: a rank names one pair,
     * so this is `tokenizers`' merged-id test. A removed symbol has id -1. */
    if (left->id != want_left || left->next < 0 || sym[left->next].id != want_right)
        return;
    vnp_bpe_symbol *right = &sym[left->next];
    left->id = new_id;
    left->next = right->next;
    right->id = -1;
    if (right->next >= 0)
        sym[right->next].prev = pos;
    /* New pairs rank above this one (the loader proved it), so they land in
     * buckets still ahead of the scan. */
    if (left->prev >= 0) {
        int64_t r = pair_rank(bpe, sym[left->prev].id, new_id);
        if (r >= 0)
            bucket_push(s, ne, (uint32_t)r, left->prev);
    }
    if (left->next >= 0) {
        int64_t r = pair_rank(bpe, new_id, sym[left->next].id);
        if (r >= 0)
            bucket_push(s, ne, (uint32_t)r, pos);
    }
}

static int merge_by_rank(const vnp_bpe *bpe, vnp_bpe_symbol *sym, size_t n, vnp_bpe_scratch *s)
{
    const size_t nr = bpe->n_ranks, nwords = (nr + 63) / 64;
    if (!s->bucket_head) {
        s->bucket_head = malloc(nr * sizeof *s->bucket_head);
        s->bucket_bits = calloc(nwords, sizeof *s->bucket_bits);
        s->init_count = calloc(nr, sizeof *s->init_count);
        s->init_begin = malloc(nr * sizeof *s->init_begin);
        if (!s->bucket_head || !s->bucket_bits || !s->init_count || !s->init_begin)
            return -1;
        memset(s->bucket_head, 0xFF, nr * sizeof *s->bucket_head);
    }
    if (vnp_bpe_grow((void **)&s->entry, &s->entry_cap, 2 * n, sizeof *s->entry) ||
        vnp_bpe_grow((void **)&s->batch, &s->batch_cap, n, sizeof *s->batch))
        return -1;
    if (n > s->init_cap) {
        size_t cap = n > 2 * s->init_cap ? n : 2 * s->init_cap;
        int32_t *p = realloc(s->init_pos, cap * sizeof *p);
        if (!p)
            return -1;
        s->init_pos = p;
        if (!(p = realloc(s->init_rank, cap * sizeof *p)))
            return -1;
        s->init_rank = p;
        s->init_cap = cap;
    }
    /* Counting sort of the initial pairs by rank; positions stay increasing
     * within a rank. Their ranks are set in the bitmap like queued ones. */
    int32_t *ir = s->init_rank, *cnt = s->init_count, *beg = s->init_begin;
    for (size_t i = 0; i + 1 < n; i++) {
        int64_t r = pair_rank(bpe, sym[i].id, sym[i + 1].id);
        ir[i] = (int32_t)r;
        if (r >= 0 && cnt[r]++ == 0)
            s->bucket_bits[r >> 6] |= (uint64_t)1 << (r & 63);
    }
    int32_t at = 0;
    for (size_t w = 0; w < nwords; w++)
        for (uint64_t bits = s->bucket_bits[w]; bits; bits &= bits - 1) {
            size_t r = w * 64 + (size_t)__builtin_ctzll(bits);
            beg[r] = at;
            at += cnt[r];
        }
    for (size_t i = 0; i + 1 < n; i++)
        if (ir[i] >= 0)
            s->init_pos[beg[ir[i]]++] = (int32_t)i;
    /* beg[r] now ends rank r's slice; it starts cnt[r] earlier */

    size_t ne = 0; /* queued entries: at most 2 per merge */
    for (size_t w = 0; w < nwords;) {
        if (!s->bucket_bits[w]) {
            w++;
            continue;
        }
        uint32_t rank = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(s->bucket_bits[w]));
        s->bucket_bits[w] &= s->bucket_bits[w] - 1;
        size_t k = 0;
        for (int32_t e = s->bucket_head[rank]; e >= 0; e = s->entry[e].next)
            s->batch[k++] = s->entry[e].pos;
        s->bucket_head[rank] = -1;
        if (k)
            sort_batch(s->batch, k);
        const int32_t *ip = s->init_pos + (beg[rank] - cnt[rank]), *ie = s->init_pos + beg[rank];
        cnt[rank] = 0;
        const int32_t want_left = bpe->rank_left[rank], want_right = bpe->rank_right[rank];
        const int32_t new_id = bpe->rank_new[rank];
        /* both lists in increasing position: process their union left to right */
        size_t b = 0;
        while (ip < ie || b < k) {
            int32_t pos = b == k || (ip < ie && *ip < s->batch[b]) ? *ip++ : s->batch[b++];
            merge_at(bpe, sym, s, &ne, pos, want_left, want_right, new_id);
        }
    }
    return 0;
}

int vnp_bpe_merge(const vnp_bpe *bpe, vnp_bpe_symbol *sym, size_t n, vnp_bpe_scratch *s)
{
    if (n < 2 || bpe->merges.count == 0)
        return 0;
    return bpe->rank_schedule ? merge_by_rank(bpe, sym, n, s) : merge_by_heap(&bpe->merges, sym, n, s);
}
