/* The engine's shared state: the batch queue, the reorder of windows, workers
 * retiring, the first error (see engine.h). Everything here runs under e->mu. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/engine_internal.h"

int vnp_engine_width(const vnp_engine *e) { return e->width; }
int vnp_engine_workers(const vnp_engine *e) { return e->nworkers; }
const char *vnp_engine_describe(const vnp_engine *e) { return e->describe; }

int vnp_engine_hidden(const vnp_engine *e, vnp_encoder_kind kind)
{
    return kind == VNP_ENCODER_DNABERT_S ? e->hd : e->he;
}

static void stop_locked(vnp_engine *e, const vnp_error *err)
{
    if (e->rc == VNP_OK && err) {
        e->rc = err->code ? err->code : VNP_EIO;
        e->err = *err;
    }
    if (!e->stopping && e->stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t w = write(e->stop_pipe[1], &b, 1); /* one byte, into an empty pipe */
        (void)w;
    }
    e->stopping = 1;
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->done);
    pthread_cond_broadcast(&e->room);
    pthread_cond_broadcast(&e->ready);
}

void vnp_engine_fail(vnp_engine *e, const vnp_error *err)
{
    pthread_mutex_lock(&e->mu);
    stop_locked(e, err);
    pthread_mutex_unlock(&e->mu);
}

int vnp_engine_stop_fd(const vnp_engine *e) { return e->stop_pipe[0]; }

int vnp_engine_failed(vnp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int f = e->stopping;
    pthread_mutex_unlock(&e->mu);
    return f;
}

vnp_code vnp_engine_error(vnp_engine *e, vnp_error *err)
{
    pthread_mutex_lock(&e->mu);
    vnp_code rc = e->rc;
    if (rc && err)
        *err = e->err;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void vnp_engine_counts_get(vnp_engine *e, vnp_engine_counts *c)
{
    pthread_mutex_lock(&e->mu);
    *c = e->counts;
    pthread_mutex_unlock(&e->mu);
}

/* Parses VIRNUCPRO_DEBUG_FAIL_WORKER=W:B[,W:B...] into the workers' fail_at. */
static vnp_code read_fail_switch(vnp_engine *e, vnp_error *err)
{
    const char *v = getenv("VIRNUCPRO_DEBUG_FAIL_WORKER");
    if (!v || !*v)
        return VNP_OK;
    const char *p = v;
    while (*p) {
        char *end;
        long w = strtol(p, &end, 10);
        long b = end != p && *end == ':' ? strtol(end + 1, &end, 10) : 0;
        if (b < 1 || w < 0 || (*end && *end != ','))
            return vnp_fail(err, VNP_EINVAL,
                            "VIRNUCPRO_DEBUG_FAIL_WORKER='%s': expected W:B[,W:B...] (worker "
                            "index from 0, batch number from 1)",
                            v);
        if (w < e->nworkers) {
            e->workers[w].fail_at = b;
            vnp_warn("debug: VIRNUCPRO_DEBUG_FAIL_WORKER: worker %ld (%s) will fail at its "
                     "batch %ld",
                     w, e->workers[w].device, b);
        }
        p = *end ? end + 1 : end;
    }
    return VNP_OK;
}

static void join_workers(vnp_engine *e)
{
    for (int i = 0; i < e->nworkers; i++)
        if (e->workers[i].started) {
            pthread_join(e->workers[i].thread, NULL);
            e->workers[i].started = 0;
        }
}

vnp_code vnp_engine_start(const vnp_engine_config *cfg, vnp_engine **out, vnp_error *err)
{
    *out = NULL;
    if (cfg->ndevices < 1 || cfg->batch_tokens < 1)
        return vnp_fail(err, VNP_EINVAL, "the engine needs at least one device and a token "
                                         "budget of at least 1");
    vnp_engine *e = calloc(1, sizeof *e);
    if (!e)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    e->cfg = *cfg;
    e->nworkers = cfg->ndevices;
    e->max_windows = cfg->max_windows ? cfg->max_windows : 3 + 2 * (size_t)cfg->ndevices;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, NULL);
    pthread_cond_init(&e->room, NULL);
    pthread_cond_init(&e->ready, NULL);
    if (pipe(e->stop_pipe) != 0) {
        e->stop_pipe[0] = e->stop_pipe[1] = -1;
    } else {
        fcntl(e->stop_pipe[0], F_SETFD, FD_CLOEXEC);
        fcntl(e->stop_pipe[1], F_SETFD, FD_CLOEXEC);
    }
    e->workers = calloc((size_t)e->nworkers, sizeof *e->workers);
    if (!e->workers) {
        vnp_engine_free(e);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < e->nworkers; i++) {
        e->workers[i].eng = e;
        e->workers[i].index = i;
        e->workers[i].device = cfg->devices[i];
    }
    vnp_code rc = read_fail_switch(e, err);
    if (rc) {
        vnp_engine_free(e);
        return rc;
    }
    const char *paths[2] = {cfg->models.dnabert, cfg->models.esm};
    for (int k = 0; k < 2; k++)
        if (paths[k] && (rc = vnp_model_source_open(paths[k], &e->src[k], err))) {
            vnp_engine_free(e);
            return rc;
        }
    e->live = e->nworkers;
    for (int i = 0; i < e->nworkers; i++) {
        if (pthread_create(&e->workers[i].thread, NULL, vnp_worker_main, &e->workers[i]) != 0) {
            vnp_fail(err, VNP_ENOMEM, "cannot start the worker thread of %s", cfg->devices[i]);
            vnp_engine_fail(e, err);
            vnp_engine_free(e);
            return VNP_ENOMEM;
        }
        e->workers[i].started = 1;
    }
    pthread_mutex_lock(&e->mu);
    while (e->loaded < e->nworkers)
        pthread_cond_wait(&e->ready, &e->mu);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->nworkers; i++)
        if (e->workers[i].load_rc) {
            *err = e->workers[i].load_err;
            rc = e->workers[i].load_rc;
            if (e->nworkers > 1 && !strstr(err->msg, e->workers[i].device))
                vnp_error_prefix(err, "%s: ", e->workers[i].device);
            vnp_engine_fail(e, NULL);
            vnp_engine_free(e);
            return rc;
        }
    /* Every worker loaded the same models: the widths agree. */
    vnp_embedder *m = e->workers[0].emb;
    e->width = vnp_embedder_width(m);
    e->hd = vnp_embedder_hidden(m, VNP_ENCODER_DNABERT_S);
    e->he = vnp_embedder_hidden(m, VNP_ENCODER_ESM2);
    const vnp_embedder_config *mc = &cfg->models;
    if (mc->cls && vnp_classifier_input_size(mc->cls) != e->width) {
        rc = vnp_fail(err, VNP_ESHAPE,
                      "classifier %s takes %d features, but DNABERT-S %s (hidden %d) + ESM-2 "
                      "%s (hidden %d) give %d; use the classifier trained on these two models",
                      mc->cls_path ? mc->cls_path : "", vnp_classifier_input_size(mc->cls),
                      mc->dnabert ? mc->dnabert : "(none)", e->hd, mc->esm ? mc->esm : "(none)",
                      e->he, e->width);
        vnp_engine_fail(e, NULL);
        vnp_engine_free(e);
        return rc;
    }
    size_t used = 0;
    for (int i = 0; i < e->nworkers && used + 2 < sizeof e->describe; i++) {
        int n = snprintf(e->describe + used, sizeof e->describe - used, "%s%s", i ? ", " : "",
                         vnp_embedder_name(e->workers[i].emb));
        if (n < 0)
            break;
        used += (size_t)n;
        if (used >= sizeof e->describe)
            used = sizeof e->describe - 1;
    }
    *out = e;
    return VNP_OK;
}

static void free_window_chain(vnp_window *w)
{
    while (w) {
        vnp_window *next = w->next;
        vnp_window_free(w);
        w = next;
    }
}

void vnp_engine_free(vnp_engine *e)
{
    if (!e)
        return;
    vnp_engine_fail(e, NULL); /* wakes the workers if the run did not end normally */
    join_workers(e);
    for (vnp_ebatch *b = e->qhead, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free_window_chain(e->whead);
    free(e->workers);
    vnp_model_source_close(e->src[0]);
    vnp_model_source_close(e->src[1]);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->room);
    pthread_cond_destroy(&e->ready);
    for (int i = 0; i < 2; i++)
        if (e->stop_pipe[i] >= 0)
            close(e->stop_pipe[i]);
    free(e);
}

/* The packing key of an item: its ESM-2 tokens when ESM-2 runs (the model that costs
 * ~20x more per token; DNABERT-S batches hold the same items, ~1.5x as many tokens
 * for reads), else its DNABERT-S tokens. */
static vnp_code pack_window(vnp_engine *e, vnp_window *w, vnp_error *err)
{
    size_t *len = malloc((w->norf ? w->norf : 1) * sizeof *len);
    if (!len)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->norf; i++)
        len[i] = e->he ? w->orf[i].esm_len : w->orf[i].dna_len;
    vnp_code rc = vnp_pack(len, w->norf, e->cfg.batch_tokens, 0, &w->pack, err);
    free(len);
    return rc;
}

int vnp_engine_push(vnp_engine *e, vnp_window *w, vnp_error *err)
{
    vnp_code rc = vnp_window_alloc_outputs(w, e->cfg.want_features ? e->width : 0,
                                           e->cfg.models.cls != NULL, err);
    if (!rc)
        rc = pack_window(e, w, err);
    /* the batches, built outside the lock */
    vnp_ebatch *first = NULL, *last = NULL;
    for (size_t b = 0; !rc && b < w->pack.nbatches; b++) {
        vnp_ebatch *nb = calloc(1, sizeof *nb);
        if (!nb) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
            break;
        }
        nb->w = w;
        nb->first = w->pack.batches[b].first;
        nb->count = w->pack.batches[b].count;
        if (last)
            last->next = nb;
        else
            first = nb;
        last = nb;
    }
    if (rc) {
        for (vnp_ebatch *b = first, *n; b; b = n) {
            n = b->next;
            free(b);
        }
        vnp_window_free(w);
        vnp_engine_fail(e, err);
        return 0;
    }
    pthread_mutex_lock(&e->mu);
    while (e->alive >= e->max_windows && !e->stopping)
        pthread_cond_wait(&e->room, &e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        for (vnp_ebatch *b = first, *n; b; b = n) {
            n = b->next;
            free(b);
        }
        vnp_window_free(w);
        return 0;
    }
    w->seq = ++e->seq_windows;
    w->pending = w->pack.nbatches;
    w->next = NULL;
    if (e->wtail)
        e->wtail->next = w;
    else
        e->whead = w;
    e->wtail = w;
    e->alive++;
    for (vnp_ebatch *b = first; b; b = b->next)
        b->seq = ++e->seq_batches;
    if (first) {
        if (e->qtail)
            e->qtail->next = first;
        else
            e->qhead = first;
        e->qtail = last;
        pthread_cond_broadcast(&e->work);
    } else {
        pthread_cond_broadcast(&e->done); /* nothing to compute: done already */
    }
    pthread_mutex_unlock(&e->mu);
    return 1;
}

void vnp_engine_close(vnp_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->closed = 1;
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->mu);
}

vnp_window *vnp_engine_pop(vnp_engine *e)
{
    vnp_window *w = NULL;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        /* Windows already computed are handed out even when the run is stopping (the
         * last worker failed, a signal): the writer keeps their rows for --resume. */
        if (e->whead && e->whead->pending == 0) {
            w = e->whead;
            e->whead = w->next;
            if (!e->whead)
                e->wtail = NULL;
            w->next = NULL;
            break;
        }
        if (e->stopping || (!e->whead && e->closed))
            break;
        pthread_cond_wait(&e->done, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return w;
}

void vnp_engine_release(vnp_engine *e, vnp_window *w)
{
    vnp_window_free(w);
    pthread_mutex_lock(&e->mu);
    e->alive--;
    pthread_cond_broadcast(&e->room);
    pthread_mutex_unlock(&e->mu);
}

vnp_ebatch *vnp_engine_take(vnp_engine *e, int wait)
{
    vnp_ebatch *b = NULL;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->stopping)
            break;
        if (e->qhead) {
            b = e->qhead;
            e->qhead = b->next;
            if (!e->qhead)
                e->qtail = NULL;
            b->next = NULL;
            e->held++;
            break;
        }
        /* Over when nothing more can come: the producer is done and no batch is held
         * by another worker (a retiring worker may still hand its batches back). */
        if (!wait || (e->closed && e->held == 0))
            break;
        pthread_cond_wait(&e->work, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return b;
}

void vnp_engine_deliver(vnp_engine *e, vnp_ebatch *b, uint64_t tokens, int recomputed)
{
    pthread_mutex_lock(&e->mu);
    e->held--;
    e->counts.tokens += tokens;
    e->counts.items += b->count;
    e->counts.recomputed += recomputed ? 1 : 0;
    if (--b->w->pending == 0)
        pthread_cond_broadcast(&e->done);
    if (e->closed && e->held == 0 && !e->qhead)
        pthread_cond_broadcast(&e->work); /* idle workers may end */
    pthread_mutex_unlock(&e->mu);
    free(b);
}

void vnp_engine_retire(vnp_engine *e, vnp_worker *w, vnp_ebatch *a, vnp_ebatch *b,
                       const vnp_error *why)
{
    pthread_mutex_lock(&e->mu);
    int back = 0;
    vnp_ebatch *give[2] = {b, a}; /* pushed to the front: a ends up first */
    for (int i = 0; i < 2; i++)
        if (give[i]) {
            give[i]->next = e->qhead;
            e->qhead = give[i];
            if (!e->qtail)
                e->qtail = give[i];
            e->held--;
            back++;
        }
    e->live--;
    e->counts.retired++;
    int left = e->live, stopping = e->stopping;
    if (left == 0 && !stopping) {
        vnp_error all;
        vnp_fail(&all, why->code ? why->code : VNP_EDEVICE,
                 "every worker has failed (the last, %s: %s)", w->device, why->msg);
        stop_locked(e, &all);
    } else {
        pthread_cond_broadcast(&e->work);
    }
    pthread_mutex_unlock(&e->mu);
    if (!stopping)
        vnp_warn("worker %d (%s) failed and is retired: %s; %d batch%s back in the queue, "
                 "%d worker%s left",
                 w->index, w->device, why->msg, back, back == 1 ? "" : "es", left,
                 left == 1 ? "" : "s");
}
