/* Token-budget packing: length-sorted within a window, filled greedily. */
#include <stdlib.h>

#include "virnucpro/pipeline.h"

typedef struct keyed {
    size_t len;
    size_t idx;
} keyed;

/* Longest first; equal lengths by index, so the order is total and the
 * result deterministic whatever qsort does with ties. */
static int by_len_desc(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

void vnp_packing_free(vnp_packing *p)
{
    if (!p)
        return;
    free(p->order);
    free(p->batches);
    p->order = NULL;
    p->batches = NULL;
    p->n = p->nbatches = 0;
}

vnp_code vnp_pack(const size_t *len, size_t n, size_t budget, size_t window, vnp_packing *out,
                  vnp_error *err)
{
    out->order = NULL;
    out->batches = NULL;
    out->n = out->nbatches = 0;
    if (budget == 0)
        return vnp_fail(err, VNP_EINVAL, "token budget per batch must be at least 1");
    if (n == 0)
        return VNP_OK;
    if (window == 0 || window > n)
        window = n;
    keyed *k = malloc(window * sizeof *k);
    out->order = malloc(n * sizeof *out->order);
    out->batches = malloc(n * sizeof *out->batches); /* at most one batch per item */
    if (!k || !out->order || !out->batches) {
        free(k);
        vnp_packing_free(out);
        return vnp_fail(err, VNP_ENOMEM, "out of memory packing %zu sequences", n);
    }
    size_t pos = 0;
    for (size_t w0 = 0; w0 < n; w0 += window) {
        size_t wn = n - w0 < window ? n - w0 : window;
        for (size_t i = 0; i < wn; i++) {
            k[i].len = len[w0 + i];
            k[i].idx = w0 + i;
        }
        qsort(k, wn, sizeof *k, by_len_desc);
        vnp_pack_batch *cur = NULL;
        for (size_t i = 0; i < wn; i++) {
            if (!cur || cur->tokens + k[i].len > budget) {
                cur = &out->batches[out->nbatches++];
                cur->first = pos;
                cur->count = 0;
                cur->tokens = 0;
            }
            out->order[pos++] = k[i].idx;
            cur->count++;
            cur->tokens += k[i].len;
        }
    }
    out->n = n;
    free(k);
    return VNP_OK;
}
