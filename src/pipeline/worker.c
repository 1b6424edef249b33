/* One worker: a thread that owns one device's embedder and keeps it busy. It queues
 * the next batch before waiting for the one in flight (two host slots), so tokens are
 * copied and the next batch queued while the device computes; each batch costs one
 * host wait. A failure retires the worker and hands its batches back (engine.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/engine_internal.h"

static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 1;
    size_t c = need + need / 4 + 16;
    void *n = realloc(*p, c * sz);
    if (!n)
        return 0;
    *p = n;
    *cap = c;
    return 1;
}

/* "id1, id2, ... and N more": the items of a batch, for messages. */
static void batch_ids(const vnp_ebatch *b, char *buf, size_t cap)
{
    const vnp_window *w = b->w;
    size_t used = 0, shown = 0;
    buf[0] = '\0';
    for (size_t j = 0; j < b->count && shown < 6; j++, shown++) {
        const vnp_win_orf *o = &w->orf[w->pack.order[b->first + j]];
        int n = snprintf(buf + used, cap - used, "%s%.*s", j ? ", " : "", (int)o->id_len,
                         w->text + o->id_off);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
    if (shown < b->count)
        snprintf(buf + used, cap - used, " and %zu more", b->count - shown);
}

/* Packs the token runs of one encoder (dna = 1: DNABERT-S) for the batch's items into
 * the worker's gather buffers of that slot and encoder. */
static vnp_code gather(vnp_worker *wk, const vnp_ebatch *b, int slot, int dna, vnp_batch *out,
                       uint64_t *tokens, vnp_error *err)
{
    const vnp_window *w = b->w;
    size_t t = 0;
    for (size_t j = 0; j < b->count; j++) {
        const vnp_win_orf *o = &w->orf[w->pack.order[b->first + j]];
        t += dna ? o->dna_len : o->esm_len;
    }
    if (t > (size_t)INT32_MAX)
        return vnp_fail(err, VNP_EINVAL, "a batch of %zu tokens is too large", t);
    if (!grow((void **)&wk->tok[slot][dna], &wk->tok_cap[slot][dna], t ? t : 1,
              sizeof(int32_t)) ||
        !grow((void **)&wk->cu[slot][dna], &wk->cu_cap[slot][dna], b->count + 1,
              sizeof(int32_t)))
        return vnp_fail(err, VNP_ENOMEM, "out of memory for a batch of %zu tokens", t);
    int32_t *tok = wk->tok[slot][dna], *cu = wk->cu[slot][dna];
    const int32_t *ids = dna ? w->dna.v : w->esm.v;
    t = 0;
    cu[0] = 0;
    for (size_t j = 0; j < b->count; j++) {
        const vnp_win_orf *o = &w->orf[w->pack.order[b->first + j]];
        size_t off = dna ? o->dna_off : o->esm_off, n = dna ? o->dna_len : o->esm_len;
        memcpy(tok + t, ids + off, n * sizeof *ids);
        t += n;
        cu[j + 1] = (int32_t)t;
    }
    out->tokens = tok;
    out->cu_seqlens = cu;
    out->nseq = (int)b->count;
    *tokens += t;
    return VNP_OK;
}

typedef struct inflight {
    vnp_ebatch *b;
    int slot;
    uint64_t tokens;
    vnp_embed_job job;
} inflight;

static vnp_code submit(vnp_worker *wk, vnp_ebatch *b, int slot, inflight *f, vnp_error *err)
{
    vnp_engine *e = wk->eng;
    memset(f, 0, sizeof *f);
    f->b = b;
    f->slot = slot;
    if (wk->fail_at > 0 && wk->taken + 1 == wk->fail_at)
        return vnp_fail(err, VNP_EDEVICE,
                        "injected device failure (VIRNUCPRO_DEBUG_FAIL_WORKER)");
    wk->taken++;
    size_t n = b->count, width = (size_t)e->width;
    if (e->cfg.want_features &&
        !grow((void **)&wk->rows[slot], &wk->rows_cap[slot], n * width, sizeof(float)))
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu feature rows", n);
    if (e->cfg.models.cls && !grow((void **)&wk->probs[slot], &wk->probs_cap[slot], n * 2,
                                   sizeof(float)))
        return vnp_fail(err, VNP_ENOMEM, "out of memory for %zu scores", n);
    f->job.nseq = (int)n;
    f->job.features = e->cfg.want_features ? wk->rows[slot] : NULL;
    f->job.probs = e->cfg.models.cls ? wk->probs[slot] : NULL;
    vnp_code rc;
    if ((e->hd && (rc = gather(wk, b, slot, 1, &f->job.dna, &f->tokens, err))) ||
        (e->he && (rc = gather(wk, b, slot, 0, &f->job.esm, &f->tokens, err))))
        return rc;
    /* the slot's gather buffers stay untouched until the batch is finished: a non-finite
     * batch is recomputed in FP32 from them */
    return vnp_embedder_submit(wk->emb, slot, &f->job, err);
}

/* Scatters a finished batch's rows into its window. */
static void deliver(vnp_worker *wk, inflight *f)
{
    vnp_engine *e = wk->eng;
    vnp_window *w = f->b->w;
    size_t width = (size_t)e->width;
    for (size_t j = 0; j < f->b->count; j++) {
        size_t i = w->pack.order[f->b->first + j];
        if (w->features)
            memcpy(w->features + i * width, f->job.features + j * width, width * sizeof(float));
        if (w->probs) {
            w->probs[2 * i] = f->job.probs[2 * j];
            w->probs[2 * i + 1] = f->job.probs[2 * j + 1];
        }
    }
    if (f->job.recomputed) {
        char ids[512];
        batch_ids(f->b, ids, sizeof ids);
        vnp_warn("%s: batch %llu (%zu items: %s) produced NaN/Inf in reduced precision; "
                 "recomputed in FP32",
                 wk->device, (unsigned long long)f->b->seq, f->b->count, ids);
    }
    vnp_engine_deliver(e, f->b, f->tokens, f->job.recomputed);
    f->b = NULL;
}

static vnp_code finish(vnp_worker *wk, inflight *f, vnp_error *err)
{
    vnp_code rc = vnp_embedder_finish(wk->emb, f->slot, &f->job, err);
    if (rc) {
        char ids[512];
        batch_ids(f->b, ids, sizeof ids);
        vnp_error_prefix(err, "batch %llu (%zu items: %s): ", (unsigned long long)f->b->seq,
                         f->b->count, ids);
        return rc;
    }
    deliver(wk, f);
    return VNP_OK;
}

static void run(vnp_worker *wk)
{
    vnp_engine *e = wk->eng;
    inflight cur = {0}, next = {0};
    int slot = 0;
    vnp_error err;
    for (;;) {
        /* With a batch in flight, only take another if one is queued already: the one
         * in flight is finished first otherwise. */
        vnp_ebatch *b = vnp_engine_take(e, cur.b == NULL);
        if (!b && !cur.b)
            break;
        if (b) {
            vnp_code rc = submit(wk, b, slot, &next, &err);
            slot ^= 1;
            if (rc) {
                char ids[512];
                batch_ids(b, ids, sizeof ids);
                vnp_error_prefix(&err, "batch %llu (%zu items: %s): ", (unsigned long long)b->seq,
                                 b->count, ids);
                vnp_engine_retire(e, wk, cur.b, b, &err);
                return;
            }
        }
        if (cur.b && finish(wk, &cur, &err) != VNP_OK) {
            vnp_engine_retire(e, wk, cur.b, next.b, &err);
            return;
        }
        cur = next;
        memset(&next, 0, sizeof next);
    }
}

void *vnp_worker_main(void *arg)
{
    vnp_worker *wk = arg;
    vnp_engine *e = wk->eng;
    vnp_error_clear(&wk->load_err);
    wk->load_rc = vnp_embedder_create(&e->cfg.models, wk->device, &wk->emb, &wk->load_err);
    pthread_mutex_lock(&e->mu);
    e->loaded++;
    pthread_cond_broadcast(&e->ready);
    int go = wk->load_rc == VNP_OK;
    pthread_mutex_unlock(&e->mu);
    /* Wait for the starter to see every load: a failed start never computes. */
    pthread_mutex_lock(&e->mu);
    while (go && e->loaded < e->nworkers && !e->stopping)
        pthread_cond_wait(&e->ready, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (go)
        run(wk);
    vnp_embedder_free(wk->emb);
    wk->emb = NULL;
    for (int k = 0; k < 2; k++) {
        free(wk->rows[k]);
        free(wk->probs[k]);
    }
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < 2; m++) {
            free(wk->tok[k][m]);
            free(wk->cu[k][m]);
        }
    return NULL;
}
