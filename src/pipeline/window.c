/* Windows of ORFs: the unit that flows reader -> engine -> writer. */
#include "pipeline/window.h"

#include <stdlib.h>
#include <string.h>

vnp_window *vnp_window_new(void) { return calloc(1, sizeof(vnp_window)); }

void vnp_window_free(vnp_window *w)
{
    if (!w)
        return;
    free(w->text);
    free(w->seg);
    free(w->orf);
    vnp_ids_free(&w->dna);
    vnp_ids_free(&w->esm);
    free(w->features);
    free(w->probs);
    vnp_packing_free(&w->pack);
    free(w);
}

/* Grows *p (elements of size sz) to hold at least need; returns 0 on failure. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * sz);
    if (!n)
        return 0;
    *p = n;
    *cap = c;
    return 1;
}

vnp_code vnp_window_text(vnp_window *w, const char *s, size_t n, size_t *off, vnp_error *err)
{
    if (!grow((void **)&w->text, &w->text_cap, w->text_n + n, 1))
        return vnp_fail(err, VNP_ENOMEM, "out of memory holding sequence IDs");
    memcpy(w->text + w->text_n, s, n);
    *off = w->text_n;
    w->text_n += n;
    return VNP_OK;
}

vnp_code vnp_window_add_seg(vnp_window *w, const vnp_win_seg *s, vnp_error *err)
{
    if (!grow((void **)&w->seg, &w->seg_cap, w->nseg + 1, sizeof *w->seg))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    w->seg[w->nseg++] = *s;
    return VNP_OK;
}

vnp_code vnp_window_add_record(vnp_window *w, const vnp_record *rec, size_t chunks, int first,
                               vnp_error *err)
{
    vnp_win_seg seg;
    memset(&seg, 0, sizeof seg);
    vnp_code rc = vnp_window_text(w, rec->id, rec->id_len, &seg.id_off, err);
    if (rc)
        return rc;
    seg.id_len = rec->id_len;
    seg.length = rec->len;
    seg.chunks = chunks;
    seg.first = first;
    seg.orf_begin = seg.orf_end = w->norf;
    return vnp_window_add_seg(w, &seg, err);
}

vnp_code vnp_window_add_orf(vnp_window *w, vnp_win_orf **out, vnp_error *err)
{
    if (!grow((void **)&w->orf, &w->orf_cap, w->norf + 1, sizeof *w->orf))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    *out = &w->orf[w->norf++];
    memset(*out, 0, sizeof **out);
    return VNP_OK;
}

vnp_code vnp_window_alloc_outputs(vnp_window *w, int width, int with_probs, vnp_error *err)
{
    size_t n = w->norf ? w->norf : 1;
    if (width > 0 && !(w->features = malloc(n * (size_t)width * sizeof(float))))
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu x %d features", w->norf, width);
    if (with_probs && !(w->probs = malloc(n * 2 * sizeof(float))))
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu scores", w->norf);
    return VNP_OK;
}

