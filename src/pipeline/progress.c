/* Progress line on a terminal (records, ORFs, tokens/s, ETA), wall clock and peak RSS. */
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "pipeline/predict_internal.h"

double vnp_predict_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long vnp_predict_peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* kilobytes on Linux */
}

void vnp_predict_progress_init(vnp_predict_progress *p, int on, uint64_t total_bytes)
{
    p->on = on;
    p->t0 = vnp_predict_now();
    p->last = 0;
    p->total_bytes = total_bytes;
    p->drawn = 0;
}

void vnp_predict_progress_update(vnp_predict_progress *p, size_t records, size_t orfs, uint64_t tokens,
                         uint64_t bytes, int final)
{
    if (!p->on)
        return;
    double now = vnp_predict_now();
    if (!final && now - p->last < 0.25)
        return;
    p->last = now;
    double dt = now - p->t0;
    char eta[48] = "";
    if (p->total_bytes > 0 && bytes > 0 && bytes < p->total_bytes && dt > 0) {
        double left = dt * (double)(p->total_bytes - bytes) / (double)bytes;
        snprintf(eta, sizeof eta, "  %.0f%%  ETA %d:%02d:%02d",
                 100.0 * (double)bytes / (double)p->total_bytes, (int)(left / 3600),
                 (int)(left / 60) % 60, (int)left % 60);
    }
    fprintf(stderr, "\r\033[Kpredict: %zu records read  %zu ORFs embedded  %.0f tokens/s%s",
            records, orfs, dt > 0 ? (double)tokens / dt : 0.0, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = 1;
}

void vnp_predict_tick(vnp_predict_ctx *c, int final)
{
    if (!c->progress.on)
        return;
    vnp_engine_counts k;
    vnp_engine_counts_get(c->eng, &k);
    pthread_mutex_lock(&c->mu); /* also serialises the drawing */
    vnp_predict_progress_update(&c->progress, final ? c->st.records : c->records_read,
                                final ? c->st.orfs : k.items, k.tokens, c->bytes_done, final);
    pthread_mutex_unlock(&c->mu);
}
