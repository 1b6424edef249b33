/* Windows of ORFs and the bounded queues that carry them between stages. */
#include "pipeline/window.h"

#include <pthread.h>
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

vnp_code vnp_window_add_orf(vnp_window *w, vnp_win_orf **out, vnp_error *err)
{
    if (!grow((void **)&w->orf, &w->orf_cap, w->norf + 1, sizeof *w->orf))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    *out = &w->orf[w->norf++];
    memset(*out, 0, sizeof **out);
    return VNP_OK;
}

vnp_code vnp_window_alloc_outputs(vnp_window *w, int width, vnp_error *err)
{
    size_t n = w->norf ? w->norf : 1;
    w->features = malloc(n * (size_t)width * sizeof(float));
    w->probs = malloc(n * 2 * sizeof(float));
    if (!w->features || !w->probs)
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu x %d features", w->norf, width);
    return VNP_OK;
}

struct vnp_win_queue {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    vnp_window **item;
    size_t cap, head, n;
    int closed, aborted;
};

vnp_win_queue *vnp_win_queue_new(size_t cap)
{
    vnp_win_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->item = calloc(cap, sizeof *q->item);
    if (!q->item) {
        free(q);
        return NULL;
    }
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->changed, NULL);
    return q;
}

void vnp_win_queue_free(vnp_win_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        vnp_window_free(q->item[(q->head + i) % q->cap]);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->changed);
    free(q->item);
    free(q);
}

int vnp_win_queue_push(vnp_win_queue *q, vnp_window *w)
{
    pthread_mutex_lock(&q->mu);
    while (q->n == q->cap && !q->aborted)
        pthread_cond_wait(&q->changed, &q->mu);
    int ok = !q->aborted;
    if (ok) {
        q->item[(q->head + q->n) % q->cap] = w;
        q->n++;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

vnp_window *vnp_win_queue_pop(vnp_win_queue *q)
{
    vnp_window *w = NULL;
    pthread_mutex_lock(&q->mu);
    while (q->n == 0 && !q->closed && !q->aborted)
        pthread_cond_wait(&q->changed, &q->mu);
    if (!q->aborted && q->n > 0) {
        w = q->item[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return w;
}

void vnp_win_queue_close(vnp_win_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}

void vnp_win_queue_abort(vnp_win_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->aborted = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
}
