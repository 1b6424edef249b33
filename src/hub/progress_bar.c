/* A one-line progress bar on stderr (only where stderr is a terminal):
 *   pytorch_model.bin  [#########.........]  45%  1.20 GB / 2.61 GB  35.1 MB/s  0:40 left */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hub/hub_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void vnp_progress_begin(vnp_progress *p, int enabled, const char *label, int64_t total,
                        int64_t start_at)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->start_at = start_at;
    p->t0 = now_s();
    p->last = 0;
}

static void draw(vnp_progress *p, int64_t now_bytes, double t)
{
    char have[32], total[32], rate[32], eta[32] = "";
    vnp_hub_human_size((uint64_t)now_bytes, have, sizeof have);
    double dt = t - p->t0;
    double bps = dt > 0.05 ? (double)(now_bytes - p->start_at) / dt : 0.0;
    vnp_hub_human_size((uint64_t)(bps > 0 ? bps : 0), rate, sizeof rate);
    if (p->total > 0) {
        vnp_hub_human_size((uint64_t)p->total, total, sizeof total);
        int pct = (int)(100.0 * (double)now_bytes / (double)p->total);
        if (pct > 100)
            pct = 100;
        char bar[21];
        int fill = pct / 5;
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        if (bps > 0 && now_bytes < p->total) {
            long left = (long)((double)(p->total - now_bytes) / bps);
            snprintf(eta, sizeof eta, "  %ld:%02ld left", left / 60, left % 60);
        }
        fprintf(stderr, "\r  %-28.28s [%s] %3d%%  %s / %s  %s/s%s\033[K", p->label, bar, pct,
                have, total, rate, eta);
    } else {
        fprintf(stderr, "\r  %-28.28s %s  %s/s\033[K", p->label, have, rate);
    }
    fflush(stderr);
}

void vnp_progress_update(vnp_progress *p, int64_t now_bytes, int force)
{
    if (!p->enabled)
        return;
    double t = now_s();
    if (!force && t - p->last < 0.2)
        return;
    p->last = t;
    draw(p, now_bytes, t);
}

void vnp_progress_end(vnp_progress *p, int64_t now_bytes)
{
    if (!p->enabled)
        return;
    draw(p, now_bytes, now_s());
    fputc('\n', stderr);
    fflush(stderr);
}
