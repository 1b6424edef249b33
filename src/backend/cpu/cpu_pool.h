/* A fixed pool of worker threads that runs one data-parallel loop at a time.
 * The calling thread takes part as worker 0, so a pool of one thread runs
 * everything inline with no synchronisation. */
#ifndef VNP_CPU_POOL_H
#define VNP_CPU_POOL_H

#include <stddef.h>

#include "virnucpro/error.h"

typedef struct vnp_cpu_pool vnp_cpu_pool;

/* fn handles items [begin, end); worker is in [0, pool size) and identifies
 * per-worker scratch memory. */
typedef void (*vnp_cpu_task_fn)(void *ctx, size_t begin, size_t end, int worker);

vnp_code vnp_cpu_pool_create(int nthreads, vnp_cpu_pool **out, vnp_error *err);
void vnp_cpu_pool_free(vnp_cpu_pool *pool);
int vnp_cpu_pool_size(const vnp_cpu_pool *pool);

/* Runs fn over items [0, n) in chunks of `grain` items (dynamic scheduling)
 * and returns when every item is done. Not re-entrant: one loop at a time. */
void vnp_cpu_pool_run(vnp_cpu_pool *pool, size_t n, size_t grain, vnp_cpu_task_fn fn, void *ctx);

#endif
