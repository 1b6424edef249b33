/* predict: load and check every model, then stream the input through
 * reader -> compute -> writer (three threads overlapping, windows in order). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "pipeline/crash_point.h"
#include "pipeline/predict_internal.h"
#include "pipeline/sig_watch.h"


void vnp_predict_options_init(vnp_predict_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->precision = VNP_PREC_DEFAULT;
    o->chunk_len = 500;
    o->progress = -1;
    o->min_score = -1.0f;
    o->log_interval = 60.0;
    o->plots = VNP_DEFAULT_PLOTS;
    o->window_orfs = VNP_DEFAULT_WINDOW_ORFS;
}

void vnp_predict_fail(vnp_predict_ctx *c, const vnp_error *e) { vnp_engine_fail(c->eng, e); }

/* The directory holding a model: the path itself, or the directory of a file. */
static char *model_dir(const char *path)
{
    if (vnp_is_dir(path))
        return strdup(path);
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 2);
    if (d) {
        memcpy(d, path, n ? n : 1);
        d[n ? n : 1] = 0;
    }
    return d;
}

static vnp_code need_path(const char *what, const char *opt, const char *path, vnp_error *err)
{
    if (!path || !*path)
        return vnp_fail(err, VNP_EINVAL, "no %s model given: pass %s", what, opt);
    if (access(path, R_OK) != 0)
        return vnp_fail(err, VNP_ENOTFOUND, "%s model '%s' (%s): %s", what, path, opt,
                        strerror(errno));
    return VNP_OK;
}

/* Adds "<what> <path>: " in front of a loader's message unless it names the path already. */
static void name_model(vnp_error *err, const char *what, const char *path)
{
    if (err && !strstr(err->msg, path))
        vnp_error_prefix(err, "%s %s: ", what, path);
}

/* Checks the model paths, loads the classifier and the tokenizer, and starts one
 * worker per --device entry, each loading both encoders and the classifier onto its
 * device (engine.h). */
static vnp_code load_models(vnp_predict_ctx *c, vnp_devices *dev, vnp_error *err)
{
    const vnp_predict_options *o = c->o;
    vnp_code rc;
    if ((rc = vnp_classifier_load(o->classifier, &c->cls, err))) {
        name_model(err, "classifier", o->classifier);
        return rc;
    }
    /* swapped models and a missing tokenizer fail before the (large) encoders load */
    vnp_encoder_kind kd, ke;
    if ((rc = vnp_encoder_probe(o->dnabert, &kd, err))) {
        name_model(err, "DNABERT-S model", o->dnabert);
        return rc;
    }
    if (kd != VNP_ENCODER_DNABERT_S)
        return vnp_fail(err, VNP_EINVAL,
                        "--dnabert %s is an ESM-2 checkpoint; pass the DNABERT-S model there "
                        "and ESM-2 with --esm", o->dnabert);
    if ((rc = vnp_encoder_probe(o->esm, &ke, err))) {
        name_model(err, "ESM-2 model", o->esm);
        return rc;
    }
    if (ke != VNP_ENCODER_ESM2)
        return vnp_fail(err, VNP_EINVAL,
                        "--esm %s is a DNABERT-S checkpoint; pass the ESM-2 model there and "
                        "DNABERT-S with --dnabert", o->esm);
    char *dir = model_dir(o->dnabert);
    if (!dir)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    size_t n = strlen(dir) + 32;
    char *tok = malloc(n);
    if (!tok) {
        free(dir);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    snprintf(tok, n, "%s/tokenizer.json", dir);
    rc = vnp_bpe_load(tok, &c->bpe, err);
    if (rc)
        vnp_error_prefix(err, "DNABERT-S tokenizer (expected next to the model, --dnabert %s): ",
                         o->dnabert);
    free(tok);
    free(dir);
    if (rc)
        return rc;
    if ((rc = vnp_devices_parse(o->device, dev, err)))
        return rc;
    int threads = o->threads > 0 ? o->threads : vnp_cpu_threads_available();
    if (dev->auto_cpu)
        vnp_info("--device auto: no CUDA GPU visible; computing on the CPU (%d thread%s)",
                 threads, threads == 1 ? "" : "s");
    else if (dev->auto_gpus > 0)
        vnp_info("--device auto: %d CUDA GPU%s, one worker each", dev->auto_gpus,
                 dev->auto_gpus == 1 ? "" : "s");
    int cuda = 0;
    for (int i = 0; i < dev->n; i++)
        cuda |= strcmp(dev->name[i], "cpu") != 0;
    vnp_engine_config ec;
    memset(&ec, 0, sizeof ec);
    ec.models.dnabert = o->dnabert;
    ec.models.esm = o->esm;
    ec.models.cls = c->cls;
    ec.models.cls_path = o->classifier;
    ec.models.prec = o->precision;
    ec.models.threads = threads;
    ec.devices = (const char *const *)dev->name;
    ec.ndevices = dev->n;
    ec.batch_tokens = o->batch_tokens ? o->batch_tokens
                      : cuda          ? VNP_DEFAULT_BATCH_TOKENS_CUDA
                                      : VNP_DEFAULT_BATCH_TOKENS_CPU;
    ec.want_features = o->embeddings;
    c->st.batch_tokens = ec.batch_tokens;
    if ((rc = vnp_engine_start(&ec, &c->eng, err)))
        return rc;
    c->width = vnp_engine_width(c->eng);
    c->st.workers = dev->n;
    snprintf(c->st.devices, sizeof c->st.devices, "%s", vnp_engine_describe(c->eng));
    return VNP_OK;
}

static void free_models(vnp_predict_ctx *c)
{
    vnp_engine_free(c->eng);
    c->eng = NULL;
    vnp_classifier_free(c->cls);
    vnp_bpe_free(c->bpe);
}

/* Size of the input file (compressed or not: progress compares it with the file bytes
 * the reader has consumed); 0 when unknown (stdin, a pipe). */
static uint64_t input_file_size(const char *path)
{
    struct stat st;
    if (!strcmp(path, "-") || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return (uint64_t)st.st_size;
}

static vnp_code check_options(const vnp_predict_options *o, vnp_error *err)
{
    if (!o->input || !*o->input)
        return vnp_fail(err, VNP_EINVAL, "no input file given");
    if (o->chunk_len != 300 && o->chunk_len != 500)
        return vnp_fail(err, VNP_EINVAL,
                        "chunk length must be 300 or 500 (the lengths the classifiers were "
                        "trained on), not %d", o->chunk_len);
    if (!o->out_dir || !*o->out_dir)
        return vnp_fail(err, VNP_EINVAL, "no output directory given");
    if (strcmp(o->input, "-") && access(o->input, R_OK) != 0)
        return vnp_fail(err, VNP_ENOTFOUND, "cannot read input '%s': %s", o->input,
                        strerror(errno));
    vnp_code rc;
    if ((rc = need_path("ESM-2", "--esm", o->esm, err)) ||
        (rc = need_path("DNABERT-S", "--dnabert", o->dnabert, err)) ||
        (rc = need_path("classifier", "--classifier", o->classifier, err)))
        return rc;
    if (o->min_score > 1.0f || o->min_score != o->min_score)
        return vnp_fail(err, VNP_EINVAL, "--min-score must be from 0 to 1");
    if (o->plots < 0 || o->plots > VNP_MAX_PLOTS)
        return vnp_fail(err, VNP_EINVAL, "--plots must be from 0 to %d", VNP_MAX_PLOTS);
    if (o->resume && (o->embeddings || o->keep_intermediate || !strcmp(o->input, "-")))
        return vnp_fail(err, VNP_EINVAL,
                        "--resume works for runs that read a file without --embeddings or "
                        "--keep-intermediate (those outputs are only made by a whole run)");
    return VNP_OK;
}

/* One run per output directory: an exclusive flock on DIR/.virnucpro.lock, taken
 * before anything is written there and held until the end (the kernel drops it when
 * the process dies, so a killed run leaves no stale lock). */
static vnp_code lock_outdir(vnp_predict_ctx *c, vnp_error *err)
{
    const char *dir = c->o->out_dir;
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    snprintf(path, n, "%s/.virnucpro.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        vnp_code rc = vnp_fail(err, VNP_EIO, "cannot create %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    /* The lock file is removed at the end of a run; one opened just before that removal
     * is not the file at the path any more: take the new one then. */
    struct stat a, b;
    while (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 &&
           (stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        close(fd);
        if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
            vnp_code rc = vnp_fail(err, VNP_EIO, "cannot create %s: %s", path, strerror(errno));
            free(path);
            return rc;
        }
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
        pid[got > 0 ? got : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        vnp_code rc =
            e == EWOULDBLOCK
                ? vnp_fail(err, VNP_EBUSY,
                           "%s is in use by another virnucpro run (PID %s); wait for it to end "
                           "or write to another directory with -o",
                           dir, *pid ? pid : "unknown")
                : vnp_fail(err, VNP_EIO, "cannot lock %s: %s", path, strerror(e));
        free(path);
        return rc;
    }
    char pid[32];
    int pn = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)pn, 0) != pn)
        vnp_warn("cannot write the PID into %s: %s", path, strerror(errno));
    c->lock_path = path;
    c->lock_fd = fd;
    return VNP_OK;
}

/* The resume journal: what this run is, and with --resume how far the interrupted one
 * got. *done = 1 when there is nothing to compute (a finished run, or one killed during
 * its final renames, which are finished here). */
static vnp_code journal_setup(vnp_predict_ctx *c, int *done, vnp_error *err)
{
    const vnp_predict_options *o = c->o;
    *done = 0;
    size_t n = strlen(o->out_dir) + sizeof VNP_PREDICT_JOURNAL + 2;
    c->journal_path = malloc(n);
    if (!c->journal_path)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    snprintf(c->journal_path, n, "%s/%s", o->out_dir, VNP_PREDICT_JOURNAL);
    /* what a kill left half written under a temporary name (the lock is ours: no other run
     * writes them) goes; a --resume with nothing to do must not leave it for merge */
    static const char *const tmps[] = {VNP_PREDICT_JOURNAL ".tmp", VNP_PREDICT_RUN_JSON ".tmp",
                                       VNP_PREDICT_RUN_JSON_PART ".tmp"};
    for (size_t i = 0; i < sizeof tmps / sizeof tmps[0]; i++) {
        char t[4200];
        if ((size_t)snprintf(t, sizeof t, "%s/%s", o->out_dir, tmps[i]) < sizeof t)
            remove(t);
    }
    const char *dbg = getenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    c->fail_after_windows = dbg ? atol(dbg) : 0;
    int resumable = !(o->embeddings || o->keep_intermediate || !strcmp(o->input, "-"));
    vnp_journal old;
    vnp_error jerr;
    vnp_code jrc = vnp_journal_read(c->journal_path, &old, &jerr);
    if (!o->resume) {
        if (jrc != VNP_ENOTFOUND)
            vnp_warn("%s holds an interrupted run%s; starting over (--resume would have "
                     "continued it)",
                     o->out_dir, jrc == VNP_OK ? "" : " (its journal is unreadable)");
        if (!resumable) {
            remove(c->journal_path); /* the fresh run's own journal replaces it otherwise */
            /* a shard names its run in shard.txt all the same */
            return o->shard_count ? vnp_journal_describe(o, &c->journal, err) : VNP_OK;
        }
        vnp_code rc = vnp_journal_describe(o, &c->journal, err);
        if (!rc)
            c->journaling = 1;
        return rc;
    }
    if (jrc == VNP_ENOTFOUND) {
        size_t dn = strlen(o->out_dir) + sizeof VNP_PREDICT_RESULTS + 2;
        char *res = malloc(dn);
        if (!res)
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        snprintf(res, dn, "%s/%s", o->out_dir, VNP_PREDICT_RESULTS);
        int finished = access(res, F_OK) == 0;
        free(res);
        if (finished) { /* --resume is always safe to pass: a finished run stays as it is */
            vnp_warn("--resume: %s holds finished results and no interrupted run; nothing to "
                     "do (they are left as they are)",
                     o->out_dir);
            *done = 1;
            return VNP_OK;
        }
        vnp_warn("--resume: nothing to resume in %s (no record was completed, or nothing ran "
                 "there); starting from the beginning",
                 o->out_dir);
        vnp_code rc = vnp_journal_describe(o, &c->journal, err);
        if (!rc)
            c->journaling = 1;
        return rc;
    }
    if (jrc) {
        *err = jerr;
        return jrc;
    }
    vnp_code rc = vnp_journal_describe(o, &c->journal, err);
    if (!rc)
        rc = vnp_journal_same_run(&old, &c->journal, c->journal_path, err);
    if (rc)
        return rc;
    if (old.committing) {
        if ((rc = vnp_predict_finish_commit(o->out_dir, err)))
            return rc;
        remove(c->journal_path);
        vnp_crash_point("journal removed");
        vnp_warn("--resume: the interrupted run in %s had finished computing; its last step "
                 "(the final renames) is done now",
                 o->out_dir);
        *done = 1;
        return VNP_OK;
    }
    vnp_journal now = c->journal;
    c->journal = old; /* progress as journalled; the identity is the same */
    memcpy(c->journal.ident, now.ident, sizeof now.ident);
    c->journal.nident = now.nident;
    c->resuming = 1;
    c->records_done = old.records;
    c->journaling = 1;
    c->journal_written = 1; /* the kept partial outputs stay resumable whatever happens */
    c->st.chunks = (size_t)old.chunks;
    c->st.orfs = (size_t)old.frames;
    c->st.records = (size_t)(old.records + (old.partial_chunks > 0));
    return VNP_OK;
}

int vnp_predict_interrupted(vnp_predict_ctx *c) { return atomic_load(&c->interrupted); }

/* SIGINT/SIGTERM/SIGHUP while predict runs (o->handle_signals, sig_watch.h): the run
 * stops at a window boundary with its journal consistent. While the models load
 * nothing is written yet: the process ends at once. */
static void on_stop(void *arg, int sig)
{
    vnp_predict_ctx *c = arg;
    atomic_store(&c->interrupted, sig);
    vnp_error e;
    vnp_fail(&e, VNP_EINTERRUPTED, "interrupted by %s", vnp_signal_name(sig));
    vnp_predict_fail(c, &e);
}

static void before_exit(void *arg)
{
    vnp_predict_ctx *c = arg;
    if (c->lock_fd >= 0)
        unlink(c->lock_path);
}

static vnp_code run(vnp_predict_ctx *c, vnp_sig_watch *sw, vnp_error *err)
{
    const vnp_predict_options *o = c->o;
    vnp_code rc;
    if ((rc = vnp_seq_open(o->input, &c->reader, err)))
        return rc;
    vnp_seq_set_nucleotide_only(c->reader, 1); /* a protein FASTA is refused, not scored */
    /* a stop (signal, every worker failed) wakes a reader waiting on a stalled stdin */
    vnp_seq_set_stop_fd(c->reader, vnp_engine_stop_fd(c->eng));
    if (o->keep_intermediate) {
        char stem[1024];
        if ((rc = vnp_preprocess_stem(o->input, stem, sizeof stem, err)) ||
            (rc = vnp_preprocess_writer_open(o->out_dir, stem, (size_t)o->chunk_len, &c->pre,
                                             err)))
            return rc;
    }
    /* stdin, a FIFO, a process substitution: read once. The reader keeps a copy of the
     * records for the derived outputs (viral.fna); a --resume reads every record again from
     * the start, so the copy is whole again without being journalled. */
    struct stat ist;
    if (!strcmp(o->input, "-") || stat(o->input, &ist) != 0 || !S_ISREG(ist.st_mode)) {
        size_t n = strlen(o->out_dir) + 32;
        if (!(c->spool_path = malloc(n)))
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        snprintf(c->spool_path, n, "%s/input.spool.fa.gz.part", o->out_dir);
    }
    if (sw)
        vnp_sig_watch_running(sw);
    if ((rc = vnp_predict_outputs_open(c, err)))
        return rc;
    int tty = isatty(STDERR_FILENO);
    int on = o->progress < 0 ? tty : o->progress;
    /* a batch job (stderr not a terminal): timed lines instead of the redrawn one */
    int log = o->progress < 0 && !tty;
    vnp_predict_progress_init(&c->progress, on, log, o->log_interval, input_file_size(o->input));
    double t0 = vnp_predict_now();
    c->run_start = t0;
    pthread_t reader, writer;
    if (pthread_create(&reader, NULL, vnp_predict_reader_main, c) != 0)
        return vnp_fail(err, VNP_ENOMEM, "cannot start the reader thread");
    if (pthread_create(&writer, NULL, vnp_predict_writer_main, c) != 0) {
        vnp_error e;
        vnp_fail(&e, VNP_ENOMEM, "cannot start the writer thread");
        vnp_predict_fail(c, &e);
        pthread_join(reader, NULL);
        return vnp_engine_error(c->eng, err);
    }
    vnp_predict_logger_start(c);
    pthread_join(reader, NULL);
    pthread_join(writer, NULL);
    vnp_predict_logger_stop(c);
    if ((rc = vnp_engine_error(c->eng, err)))
        return rc;
    if (c->pre && (rc = vnp_preprocess_writer_commit(c->pre, err)))
        return rc;
    if ((rc = vnp_predict_outputs_commit(c, err)))
        return rc;
    if (c->journaling) {
        remove(c->journal_path);
        vnp_crash_point("journal removed");
    }
    c->journal_written = 0;
    c->st.seconds = vnp_predict_now() - t0;
    c->bytes_done = vnp_seq_file_bytes(c->reader);
    vnp_predict_tick(c, 1);
    return VNP_OK;
}

/* What the caller gets of the run's stats beyond c->st: the engine's counts, the derived
 * outputs, the records' digest, peak RSS. */
static void stats_of(vnp_predict_ctx *c, vnp_predict_stats *st)
{
    *st = c->st;
    if (c->eng) {
        vnp_engine_counts k;
        vnp_engine_counts_get(c->eng, &k);
        st->tokens = k.tokens;
        st->recomputed = k.recomputed;
        st->retired = k.retired;
    }
    st->derived = c->derived;
    memcpy(st->records_sha256, c->input_sha256, sizeof st->records_sha256);
    st->peak_rss_kb = vnp_predict_peak_rss_kb();
}

vnp_code vnp_predict_write_record(vnp_predict_ctx *c, int running, vnp_error *err)
{
    if (!c->o->record)
        return VNP_OK;
    vnp_predict_stats st;
    stats_of(c, &st);
    if (!running)
        st.seconds = vnp_predict_now() - c->run_start;
    vnp_run_record r = *c->o->record;
    r.o = c->o;
    r.st = &st;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    r.end = (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
    r.exit_status = 0;
    r.error = NULL;
    r.running = running;
    vnp_code rc = vnp_run_record_write_as(
        &r, running ? VNP_PREDICT_RUN_JSON : VNP_PREDICT_RUN_JSON_PART, err);
    if (!rc && !running)
        c->st.record_written = 1;
    return rc;
}

vnp_code vnp_predict(const vnp_predict_options *o, vnp_predict_stats *stats, vnp_error *err)
{
    vnp_predict_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.lock_fd = -1;
    atomic_init(&c.interrupted, 0);
    atomic_init(&c.no_resume_advice, 0);
    pthread_mutex_init(&c.mu, NULL);
    vnp_devices dev;
    memset(&dev, 0, sizeof dev);
    vnp_sig_watch sw;
    memset(&sw, 0, sizeof sw);
    sw.stop = on_stop;
    sw.before_exit = before_exit;
    sw.arg = &c;
    int watching = 0, done = 0;
    vnp_code rc = check_options(o, err);
    int created_dir = rc == VNP_OK && !vnp_is_dir(o->out_dir);
    if (rc == VNP_OK)
        rc = vnp_mkdirs(o->out_dir, "output directory", err);
    if (rc == VNP_OK)
        rc = lock_outdir(&c, err);
    if (rc == VNP_OK)
        rc = journal_setup(&c, &done, err);
    if (rc == VNP_OK && !done && o->handle_signals)
        watching = vnp_sig_watch_start(&sw);
    double t0 = vnp_predict_now();
    if (rc == VNP_OK && !done)
        rc = load_models(&c, &dev, err);
    c.st.load_seconds = vnp_predict_now() - t0;
    if (rc == VNP_OK && !done) {
        c.window_orfs = o->window_orfs ? o->window_orfs : VNP_DEFAULT_WINDOW_ORFS;
        c.st.window_orfs = c.window_orfs;
        rc = run(&c, watching ? &sw : NULL, err);
    }
    if (c.eng) {
        vnp_engine_counts k;
        vnp_engine_counts_get(c.eng, &k);
        c.st.tokens = k.tokens;
        c.st.recomputed = k.recomputed;
        c.st.retired = k.retired;
    }
    if (watching) /* before the engine goes: the watcher may still stop it until here */
        vnp_sig_watch_stop(&sw);
    int sig = atomic_load(&c.interrupted);
    if (rc != VNP_OK && sig) {
        rc = VNP_EINTERRUPTED;
        c.st.signal = sig;
        if (vnp_predict_resumable(&c))
            vnp_fail(err, rc, "interrupted by %s: %llu records (%zu frames) done; run the same "
                     "command with --resume to go on from there",
                     vnp_signal_name(sig), (unsigned long long)c.records_done, c.st.orfs);
        else if (!c.journaling)
            vnp_fail(err, rc, "interrupted by %s; a run reading stdin or with --embeddings "
                     "or --keep-intermediate cannot be resumed: run it again", vnp_signal_name(sig));
        else
            vnp_fail(err, rc, "interrupted by %s before any record was complete; nothing "
                     "was kept", vnp_signal_name(sig));
    } else if (rc != VNP_OK && vnp_predict_resumable(&c) && !atomic_load(&c.no_resume_advice) &&
               err) {
        vnp_error first = *err;
        vnp_fail(err, rc, "%s; the rows of the first %llu records are kept in %s: run the "
                 "same command with --resume to go on from there", first.msg,
                 (unsigned long long)c.records_done, o->out_dir);
    }
    if (rc != VNP_OK)
        vnp_predict_outputs_abort(&c);
    free(c.journal_path);
    if (c.spool_path)
        remove(c.spool_path);
    free(c.spool_path);
    vnp_preprocess_writer_free(c.pre);
    if (c.reader)
        vnp_seq_close(c.reader);
    free_models(&c);
    vnp_devices_free(&dev);
    if (c.lock_fd >= 0) { /* removed while held: a waiting run then locks a fresh file */
        unlink(c.lock_path);
        close(c.lock_fd);
    }
    free(c.lock_path);
    if (created_dir && rc != VNP_OK)
        rmdir(o->out_dir); /* only if empty: a failure before anything was written */
    pthread_mutex_destroy(&c.mu);
    c.st.already_done = done;
    c.st.derived = c.derived;
    memcpy(c.st.records_sha256, c.input_sha256, sizeof c.st.records_sha256);
    c.st.peak_rss_kb = vnp_predict_peak_rss_kb();
    if (stats)
        *stats = c.st;
    return rc;
}
