/* SIGINT/SIGTERM/SIGHUP while a long run goes on (predict, train): a handler writes the
 * signal number into a pipe (async-signal-safe, and it works whichever thread the
 * kernel picks, libraries' own threads included), and a watcher thread reading it
 * calls the run's `stop` hook, which stops the run at a resumable point. Before the
 * run says it is `running` (models still loading, nothing written yet) a signal ends
 * the process at once: `loading_msg` on stderr, `before_exit`, _exit(128 + N). A signal
 * the user ignores (nohup) stays ignored. One watcher per process at a time.
 * (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_SIG_WATCH_H
#define VNP_PIPELINE_SIG_WATCH_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

typedef struct vnp_sig_watch {
    /* Set by the caller before vnp_sig_watch_start; read by the watcher thread. */
    void (*stop)(void *arg, int sig); /* the first signal once running (watcher thread) */
    void (*before_exit)(void *arg);   /* a signal before running: last words (may be NULL;
                                       * async-signal-safe calls only) */
    void *arg;
    const char *loading_msg;          /* "while loading the models; nothing was written" */
    /* The watcher's. */
    struct sigaction old[3];
    atomic_int running; /* set by the caller once the run has begun writing */
    atomic_int signal;  /* the first signal received (0: none) */
    pthread_t thread;
    int on;
} vnp_sig_watch;

/* Installs the handlers and starts the watcher; 0 when that is not possible (the run
 * then goes on with the default actions). */
int vnp_sig_watch_start(vnp_sig_watch *w);
/* The run has begun: from now on a signal calls `stop` instead of ending the process. */
void vnp_sig_watch_running(vnp_sig_watch *w);
/* Restores the handlers, then stops the watcher: after this no signal reaches the run.
 * A no-op when not started. */
void vnp_sig_watch_stop(vnp_sig_watch *w);
/* "SIGINT", "SIGTERM", "SIGHUP", else "a signal". */
const char *vnp_signal_name(int sig);

#endif
