/* Worker threads for the CPU backend: a generation counter wakes the workers
 * for each loop; an atomic cursor hands out chunks; the last worker to finish
 * wakes the caller. */
#include "backend/cpu/cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct vnp_cpu_pool {
    int nthreads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    unsigned long generation;
    int stop;
    int busy; /* helper threads still inside the current loop */

    /* the current loop */
    vnp_cpu_task_fn fn;
    void *ctx;
    size_t n, grain;
    atomic_size_t cursor;
};

typedef struct {
    vnp_cpu_pool *pool;
    int id;
} worker_arg;

static void drain(vnp_cpu_pool *p, int worker)
{
    for (;;) {
        size_t begin = atomic_fetch_add(&p->cursor, p->grain);
        if (begin >= p->n)
            return;
        size_t end = begin + p->grain < p->n ? begin + p->grain : p->n;
        p->fn(p->ctx, begin, end, worker);
    }
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    vnp_cpu_pool *p = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, wa.id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

vnp_code vnp_cpu_pool_create(int nthreads, vnp_cpu_pool **out, vnp_error *err)
{
    *out = NULL;
    if (nthreads < 1)
        return vnp_fail(err, VNP_EINVAL, "thread count %d: at least 1 is needed", nthreads);
    vnp_cpu_pool *p = calloc(1, sizeof *p);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory creating a pool of %d threads", nthreads);
    p->nthreads = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->cursor, 0);
    if (nthreads > 1) {
        p->threads = calloc((size_t)nthreads - 1, sizeof *p->threads);
        if (!p->threads) {
            vnp_cpu_pool_free(p);
            return vnp_fail(err, VNP_ENOMEM, "out of memory creating a pool of %d threads",
                            nthreads);
        }
        for (int i = 1; i < nthreads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            int rc = -1;
            if (wa) {
                wa->pool = p;
                wa->id = i;
                rc = pthread_create(&p->threads[i - 1], NULL, worker_main, wa);
            }
            if (rc != 0) {
                free(wa);
                p->nthreads = i; /* threads 1..i-1 exist */
                vnp_cpu_pool_free(p);
                return vnp_fail(err, VNP_EINVAL,
                                "could not start worker thread %d of %d; try fewer threads (-t)",
                                i, nthreads);
            }
        }
    }
    *out = p;
    return VNP_OK;
}

void vnp_cpu_pool_free(vnp_cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nthreads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int vnp_cpu_pool_size(const vnp_cpu_pool *p) { return p->nthreads; }

void vnp_cpu_pool_run(vnp_cpu_pool *p, size_t n, size_t grain, vnp_cpu_task_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    /* One chunk, or no helpers: run inline. */
    if (p->nthreads == 1 || n <= grain) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    atomic_store(&p->cursor, 0);
    p->busy = p->nthreads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    drain(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
