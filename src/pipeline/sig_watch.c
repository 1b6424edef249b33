/* The signal watcher shared by predict and train (sig_watch.h). */
#include "pipeline/sig_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const int k_signals[3] = {SIGINT, SIGTERM, SIGHUP};
static int g_sig_pipe[2] = {-1, -1}; /* written by the handler, read by the watcher */

static void on_signal(int s)
{
    int saved = errno;
    unsigned char b = (unsigned char)s;
    ssize_t w = write(g_sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

const char *vnp_signal_name(int s)
{
    return s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP" : "a signal";
}

static void *watch_main(void *arg)
{
    vnp_sig_watch *w = arg;
    unsigned char b;
    ssize_t n;
    while ((n = read(g_sig_pipe[0], &b, 1)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (b == 0) /* the run is done with the watcher */
            break;
        if (!atomic_load(&w->running)) {
            char msg[256];
            int mn = snprintf(msg, sizeof msg, "virnucpro: interrupted by %s %s\n",
                              vnp_signal_name(b),
                              w->loading_msg ? w->loading_msg
                                             : "while loading the models; nothing was written");
            ssize_t wr = write(STDERR_FILENO, msg, (size_t)mn);
            (void)wr;
            if (w->before_exit)
                w->before_exit(w->arg);
            _exit(128 + b);
        }
        int none = 0;
        if (atomic_compare_exchange_strong(&w->signal, &none, (int)b) && w->stop)
            w->stop(w->arg, b);
    }
    return NULL;
}

int vnp_sig_watch_start(vnp_sig_watch *w)
{
    w->on = 0;
    atomic_init(&w->running, 0);
    atomic_init(&w->signal, 0);
    if (pipe(g_sig_pipe) != 0)
        return 0;
    fcntl(g_sig_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(g_sig_pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(g_sig_pipe[1], F_SETFL, O_NONBLOCK); /* the handler never blocks */
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        close(g_sig_pipe[0]);
        close(g_sig_pipe[1]);
        g_sig_pipe[0] = g_sig_pipe[1] = -1;
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
        sigaction(k_signals[i], NULL, &w->old[i]);
        /* a signal the user chose to ignore (nohup, a background job) stays ignored */
        if (w->old[i].sa_handler != SIG_IGN)
            sigaction(k_signals[i], &sa, NULL);
    }
    w->on = 1;
    return 1;
}

void vnp_sig_watch_running(vnp_sig_watch *w) { atomic_store(&w->running, 1); }

void vnp_sig_watch_stop(vnp_sig_watch *w)
{
    if (!w->on)
        return;
    for (int i = 0; i < 3; i++)
        sigaction(k_signals[i], &w->old[i], NULL);
    unsigned char zero = 0;
    ssize_t wr = write(g_sig_pipe[1], &zero, 1);
    (void)wr;
    pthread_join(w->thread, NULL);
    close(g_sig_pipe[0]);
    close(g_sig_pipe[1]);
    g_sig_pipe[0] = g_sig_pipe[1] = -1;
    w->on = 0;
}
