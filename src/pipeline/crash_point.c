/* Kill points of the output protocol, for crash-safety tests (crash_point.h). */
#include "pipeline/crash_point.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static long g_kill_at;     /* 0: never; written once under g_once */
static const char *g_log;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_count;       /* under g_mu */

static void read_switches(void)
{
    const char *v = getenv("VIRNUCPRO_DEBUG_KILL_AT");
    g_kill_at = v ? atol(v) : 0;
    g_log = getenv("VIRNUCPRO_DEBUG_KILL_LOG");
}

void vnp_crash_point(const char *what)
{
    pthread_once(&g_once, read_switches);
    if (g_kill_at <= 0 && !g_log)
        return;
    pthread_mutex_lock(&g_mu);
    long n = ++g_count;
    if (g_log) {
        FILE *f = fopen(g_log, "a");
        if (f) {
            fprintf(f, "%ld %s\n", n, what);
            fclose(f);
        }
    }
    pthread_mutex_unlock(&g_mu);
    if (n == g_kill_at)
        raise(SIGKILL);
}
