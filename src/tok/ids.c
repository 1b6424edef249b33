/* vnp_ids: the growable id array every tokenizer appends to. */
#include <stdlib.h>

#include "virnucpro/tok.h"

void vnp_ids_free(vnp_ids *ids)
{
    if (!ids)
        return;
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

vnp_code vnp_ids_reserve(vnp_ids *ids, size_t extra, vnp_error *err)
{
    if (extra <= ids->cap - ids->n)
        return VNP_OK;
    if (extra > (SIZE_MAX / sizeof *ids->v) - ids->n)
        return vnp_fail(err, VNP_ENOMEM, "token id array: %zu + %zu ids do not fit in memory",
                        ids->n, extra);
    size_t need = ids->n + extra;
    size_t cap = ids->cap ? ids->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 / sizeof *ids->v ? need : cap * 2;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v)
        return vnp_fail(err, VNP_ENOMEM, "token id array: out of memory for %zu ids", cap);
    ids->v = v;
    ids->cap = cap;
    return VNP_OK;
}

vnp_code vnp_ids_push(vnp_ids *ids, int32_t id, vnp_error *err)
{
    if (ids->n == ids->cap) {
        vnp_code c = vnp_ids_reserve(ids, 1, err);
        if (c)
            return c;
    }
    ids->v[ids->n++] = id;
    return VNP_OK;
}
