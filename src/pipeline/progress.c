/* Progress: a redrawn line on a terminal, or for logs (stderr not a terminal) one
 * timestamped line every --log-interval seconds from a thread of its own (records, frames,
 * tokens/s, % of the input and a smoothed ETA); wall clock and peak RSS. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
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

void vnp_predict_progress_init(vnp_predict_progress *p, int on, int log, double interval,
                               uint64_t total_bytes)
{
    memset(p, 0, sizeof *p);
    p->on = on;
    p->log = log && interval > 0;
    p->interval = interval;
    p->t0 = p->sample_t = vnp_predict_now();
    p->total_bytes = total_bytes;
}

/* "  45%  ETA 0:01:10" from the smoothed rate; "" when the size is unknown. */
static void eta_text(vnp_predict_progress *p, uint64_t bytes, double now, char *out, size_t cap)
{
    out[0] = 0;
    if (now - p->sample_t >= 1.0 && bytes >= p->sample_bytes) {
        double inst = (double)(bytes - p->sample_bytes) / (now - p->sample_t);
        p->rate = p->rate > 0 ? 0.7 * p->rate + 0.3 * inst : inst;
        p->sample_t = now;
        p->sample_bytes = bytes;
    }
    double rate = p->rate > 0 ? p->rate : now > p->t0 ? (double)bytes / (now - p->t0) : 0;
    if (p->total_bytes == 0 || bytes == 0 || bytes >= p->total_bytes || rate <= 0)
        return;
    double left = (double)(p->total_bytes - bytes) / rate;
    snprintf(out, cap, "  %.0f%%  ETA %d:%02d:%02d", 100.0 * (double)bytes / (double)p->total_bytes,
             (int)(left / 3600), (int)(left / 60) % 60, (int)left % 60);
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
    char eta[64];
    eta_text(p, bytes, now, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kpredict: %zu records read  %zu ORFs embedded  %.0f tokens/s%s",
            records, orfs, dt > 0 ? (double)tokens / dt : 0.0, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->drawn = 1;
}

/* One timestamped line (for logs: stderr is not a terminal). */
static void log_line(vnp_predict_progress *p, size_t records, size_t orfs, uint64_t tokens,
                     uint64_t bytes)
{
    double now = vnp_predict_now(), dt = now - p->t0;
    char eta[64], stamp[32];
    eta_text(p, bytes, now, eta, sizeof eta);
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(stamp, sizeof stamp, "-");
    fprintf(stderr, "%s virnucpro: progress: %zu records read, %zu frames scored, %.0f "
                    "tokens/s, %.0f s%s\n",
            stamp, records, orfs, dt > 0 ? (double)tokens / dt : 0.0, dt, eta);
    fflush(stderr);
}

void vnp_predict_tick(vnp_predict_ctx *c, int final)
{
    if (!c->progress.on) /* the timed lines are the logger's; the summary ends them */
        return;
    vnp_engine_counts k;
    vnp_engine_counts_get(c->eng, &k);
    pthread_mutex_lock(&c->mu); /* also serialises the drawing */
    size_t records = final ? c->st.records : c->records_read;
    size_t orfs = final ? c->st.orfs : k.items;
    vnp_predict_progress_update(&c->progress, records, orfs, k.tokens, c->bytes_done, final);
    pthread_mutex_unlock(&c->mu);
}

static void *logger_main(void *arg)
{
    vnp_predict_ctx *c = arg;
    vnp_predict_logger *l = &c->logger;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double s = c->progress.interval;
        until.tv_sec += (time_t)s;
        until.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int r = 0;
        while (!l->stop && r != ETIMEDOUT)
            r = pthread_cond_timedwait(&l->cv, &l->mu, &until);
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        vnp_engine_counts k;
        vnp_engine_counts_get(c->eng, &k);
        pthread_mutex_lock(&c->mu);
        log_line(&c->progress, c->records_read, k.items, k.tokens, c->bytes_done);
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void vnp_predict_logger_start(vnp_predict_ctx *c)
{
    vnp_predict_logger *l = &c->logger;
    if (!c->progress.log || l->running)
        return;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->stop = 0;
    if (pthread_create(&l->thread, NULL, logger_main, c) == 0) {
        l->running = 1;
    } else {
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
}

void vnp_predict_logger_stop(vnp_predict_ctx *c)
{
    vnp_predict_logger *l = &c->logger;
    if (!l->running)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    l->running = 0;
}
