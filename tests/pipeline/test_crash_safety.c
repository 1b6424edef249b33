/* Crash safety of `virnucpro predict`, through the CLI with the golden models:
 *  1. a SIGKILL at every point of the output protocol (VIRNUCPRO_DEBUG_KILL_AT), then
 *     --resume: every output file (the original two, sequences.tsv, chunks.tsv,
 *     viral_regions.bed, viral.fna) is byte-identical to an uninterrupted run's, a file
 *     once in place under its final name is never lost nor different, the --resume says
 *     what its starting state calls for, and the directory is left with the outputs
 *     alone; for a sample, the --resume is killed too ("double kill");
 *  2. random trials: SIGKILL at a random point or after a random delay, SIGTERM,
 *     SIGINT or SIGHUP after a random delay, the resumes interrupted again at random,
 *     until a --resume completes: byte-identical every time;
 *  3. one run per output directory: a second run (or --resume) exits 1 at once naming
 *     the directory and the holder's PID (another run, or this test holding the lock),
 *     and the first run's journal and files are untouched;
 *  4. --resume refuses a changed classifier (edited; or same size, inode and mtime), a
 *     changed -l, and an input whose records already read changed (same size and
 *     mtime); the refusal keeps the interrupted run, which completes once the change
 *     is undone;
 *  5. SIGTERM, SIGINT, SIGHUP mid-run stop it within 2 s with exit 128+N and a message
 *     saying --resume, whose counts are the journal's; --resume gives the same files.
 *     A SIGTERM just as the run ends does not crash it;
 *  6. --resume on a finished run: exit 0, the files untouched (bytes, inode, mtime);
 *  7. a stalled input (a named pipe never closed): SIGTERM, or every worker failing, stops
 *     the run waiting on its input (exit 143 within 2 s / exit 1), and --resume with the
 *     input through the same pipe gives the same files.
 *
 * Every run is `-l 500 --device cpu -t 1 --window 3 --batch-tokens 300`: windows of
 * about three frames, so the golden input (21 records) has 13 windows, some cutting a
 * record, and the long-contig input (3 records of 5.2-10.7 kb, the golden sequences end
 * to end, written here) is cut inside every record; the "big" input is that 4 times
 * (12 records, about 1 s in Release). One CPU worker with one thread: every file is
 * compared byte for byte with the uninterrupted run's.
 *
 * Environment: VNP_CRASH_TRIALS (random trials, default 20; 8 in the sanitizer build:
 * VNP_CRASH_TRIALS_DEFAULT, tests/pipeline/CMakeLists.txt), VNP_CRASH_SEED (their
 * seed; trial i uses seed + i), VNP_CRASH_JOBS (scenarios run side by side, default 2:
 * each CLI run uses one thread), VNP_TEST_ONLY / VNP_TEST_SKIP (test-name filters, e.g.
 * 'test_sig*': tests/support/test_support.h), VNP_CRASH_REFS (where the reference runs are
 * shared between ctest entries: prepare()). */
#include "test_support.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define G "golden/"
#define VNP_STR_(x) #x
#define VNP_STR(x) VNP_STR_(x)

/* Every output, in the order predict renames them into place; shard.txt (last) only for a
 * --shard run (the "shard" input), which writes no plots/ or report.html. */
static const char *const OUTPUTS[] = {"prediction_results.txt",
                                      "prediction_results_highestscore.csv",
                                      "sequences.tsv",
                                      "chunks.tsv",
                                      "viral_regions.bed",
                                      "viral.fna",
                                      "plots", /* a directory of SVG files */
                                      "report.html",
                                      "shard.txt"};
#define NOUT ((int)(sizeof OUTPUTS / sizeof OUTPUTS[0]))
#define NPLAIN (NOUT - 1) /* the outputs of a run without --shard */
#define ALL_OUTPUTS ((1 << NPLAIN) - 1)
#define SHARD_OUTPUTS ((1 << 6) - 1) | (1 << (NOUT - 1)) /* the tables and shard.txt */
#define ALL_OUTPUTS_OF(in) ((in)->shard ? (SHARD_OUTPUTS) : ALL_OUTPUTS)
/* the outputs' renames, then run.json's (renamed last: status ok only once they are in
 * place) */
#define RENAMES_OF(in) (((in)->shard ? 7 : NPLAIN) + 1)
/* What a finished run's directory holds (sorted) */
#define FINISHED_LISTING                                                                   \
    "chunks.tsv plots prediction_results.txt prediction_results_highestscore.csv "         \
    "report.html run.json sequences.tsv viral.fna viral_regions.bed"
/* a shard writes no report.html or plots/ (merge + classify do, for the whole input) */
#define FINISHED_LISTING_SHARD                                                             \
    "chunks.tsv prediction_results.txt prediction_results_highestscore.csv run.json "      \
    "sequences.tsv shard.txt viral.fna viral_regions.bed"

#define RUN_LIMIT_S 300.0 /* one CLI run (ASan, the largest input): far more than needed */
#define TIMED_OUT (-1000)

static char esm[4096], dnabert[4096], classifier[4096], tmpdir[4096];

/* An input and its uninterrupted reference run. */
typedef struct input {
    const char *name;
    char path[4096];
    char ref[4096];        /* the reference run's output directory */
    long points;           /* kill points an uninterrupted run passes */
    char (*point)[64];     /* their names, [1..points] */
    char summary[256];     /* "21 records, 57 chunks, 41 ORFs scored" */
    int records;
    double seconds;        /* wall time of the reference run */
    int shard;             /* runs with --shard 2/3 (a copy of the golden input) */
    int embeddings;        /* runs with --embeddings, not resumable (another copy) */
} input;

static input golden = {.name = "golden"}, longin = {.name = "long"}, big = {.name = "big"},
             shardin = {.name = "shard", .shard = 1},
             embedin = {.name = "embeddings", .embeddings = 1};

/* The first failure of a scenario (scenarios return -1 and leave their reason here, so
 * that they can also run in a child process). */
static char why[16384];

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            snprintf(why, sizeof why, __VA_ARGS__);                                        \
            return -1;                                                                     \
        }                                                                                  \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The reference runs and the inputs they ran on (prepare()): VNP_CRASH_REFS when set, else
 * tmpdir. */
static char refdir[4096];

static const char *vpath_under(const char *base, const char *fmt, va_list ap)
{
    static char b[8][4096];
    static int k;
    char *p = b[k++ & 7];
    char rel[1024];
    vsnprintf(rel, sizeof rel, fmt, ap);
    snprintf(p, sizeof b[0], "%s/%s", base, rel);
    return p;
}

static const char *tmp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tmp_path(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *p = vpath_under(tmpdir, fmt, ap);
    va_end(ap);
    return p;
}

static const char *ref_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *ref_path(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *p = vpath_under(refdir, fmt, ap);
    va_end(ap);
    return p;
}

static const char *in_dir(const char *dir, const char *name)
{
    static char b[8][4096];
    static int k;
    char *p = b[k++ & 7];
    snprintf(p, sizeof b[0], "%s/%s", dir, name);
    return p;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Removes a directory of plain files (the output directories here). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0 && errno == EISDIR)
                remove_tree(p); /* plots/ */
        }
    closedir(d);
    rmdir(dir);
}

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

/* The names in a directory other than . and .., sorted, joined by spaces. */
static void list_dir(const char *dir, char *out, size_t cap)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(out, cap, "(cannot open %s)", dir);
        return;
    }
    char names[64][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    size_t used = 0;
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? " " : "", names[i]);
}

static char *slurp(const char *path, size_t *len)
{
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *d = malloc(cap + 1);
    size_t got;
    while ((got = fread(d + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            d = realloc(d, (cap *= 2) + 1);
    }
    fclose(f);
    d[n] = 0;
    if (len)
        *len = n;
    return d;
}

static int same_file(const char *a, const char *b, char *diff, size_t cap);

/* same_file, or for two directories (plots/): the same names, each the same bytes. */
static int same_output(const char *a, const char *b, char *diff, size_t cap)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || !S_ISDIR(sa.st_mode))
        return same_file(a, b, diff, cap);
    char la[4096], lb[4096];
    list_dir(a, la, sizeof la);
    if (stat(b, &sb) != 0 || !S_ISDIR(sb.st_mode))
        lb[0] = 0;
    else
        list_dir(b, lb, sizeof lb);
    if (strcmp(la, lb)) {
        snprintf(diff, cap, "%s holds [%s], %s holds [%s]", a, la, b, lb);
        return 0;
    }
    for (char *save = NULL, *n = strtok_r(la, " ", &save); n; n = strtok_r(NULL, " ", &save)) {
        char fa[8192], fb[8192];
        snprintf(fa, sizeof fa, "%s/%s", a, n);
        snprintf(fb, sizeof fb, "%s/%s", b, n);
        if (!same_file(fa, fb, diff, cap))
            return 0;
    }
    return 1;
}

/* 1 when both files exist with the same bytes; else 0, and the first difference in diff. */
static int same_file(const char *a, const char *b, char *diff, size_t cap)
{
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    if (!same && diff) {
        size_t i = 0;
        while (x && y && i < na && i < nb && x[i] == y[i])
            i++;
        snprintf(diff, cap, "%s (%zu bytes) vs %s (%zu bytes): first difference at byte %zu",
                 a, x ? na : 0, b, y ? nb : 0, i);
    }
    free(x);
    free(y);
    return same;
}

static int count_lines(const char *path)
{
    char *t = slurp(path, NULL);
    int n = 0;
    for (char *p = t; p && *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

/* ---- running the CLI ---- */

/* Starts `virnucpro predict` (no shell: the PID is the CLI's) with the common options
 * and the golden models; `cls` NULL = the golden classifier, `len` NULL = "500";
 * env: NULL-terminated "NAME=value" to add; stderr to errpath, stdout to /dev/null. */
static pid_t spawn_predict(const char *dir, const char *in, const char *cls, const char *len,
                           int resume, const char *const *env, const char *errpath)
{
    const char *argv[40];
    int a = 0;
    argv[a++] = vnp_test_cli();
    argv[a++] = "predict";
    argv[a++] = "-l";
    argv[a++] = len ? len : "500";
    argv[a++] = "--device";
    argv[a++] = "cpu";
    argv[a++] = "-t";
    argv[a++] = "1";
    argv[a++] = "--window";
    argv[a++] = "3";
    argv[a++] = "--batch-tokens";
    argv[a++] = "300";
    argv[a++] = "-o";
    argv[a++] = dir;
    argv[a++] = "--esm";
    argv[a++] = esm;
    argv[a++] = "--dnabert";
    argv[a++] = dnabert;
    argv[a++] = "--classifier";
    argv[a++] = cls ? cls : classifier;
    if (resume)
        argv[a++] = "--resume";
    if (!strcmp(in, shardin.path)) {
        argv[a++] = "--shard";
        argv[a++] = "2/3";
    }
    if (!strcmp(in, embedin.path))
        argv[a++] = "--embeddings";
    argv[a++] = in;
    argv[a] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits for a run: its exit status, -N when signal N ended it, TIMED_OUT (killed) when
 * it ran past `limit` seconds (wait_run: RUN_LIMIT_S). */
static int wait_run_within(pid_t pid, double limit)
{
    if (pid < 0)
        return -2000;
    double t0 = now_s();
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -2000;
        if (now_s() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return TIMED_OUT;
        }
        sleep_s(0.002);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -3000;
}

static int wait_run(pid_t pid) { return wait_run_within(pid, RUN_LIMIT_S); }

static const char *sig_name(int s)
{
    return s == SIGKILL ? "SIGKILL" : s == SIGTERM ? "SIGTERM" : s == SIGINT ? "SIGINT"
           : s == SIGHUP ? "SIGHUP" : s == SIGSEGV ? "SIGSEGV" : s == SIGABRT ? "SIGABRT"
           : "another signal";
}

static const char *outcome(int r)
{
    static char b[4][64];
    static int k;
    char *p = b[k++ & 3];
    if (r == TIMED_OUT)
        snprintf(p, sizeof b[0], "no end within %.0f s", RUN_LIMIT_S);
    else if (r < 0)
        snprintf(p, sizeof b[0], "death by %s (signal %d)", sig_name(-r), -r);
    else
        snprintf(p, sizeof b[0], "exit %d", r);
    return p;
}

/* Runs predict to its end; stderr in *err (malloc'd; stderr file: DIR.err). */
static int predict(const char *dir, const char *in, const char *cls, const char *len,
                   int resume, const char *const *env, char **err)
{
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    int r = wait_run(spawn_predict(dir, in, cls, len, resume, env, errpath));
    if (err) {
        *err = slurp(errpath, NULL);
        if (!*err)
            *err = strdup("");
    }
    return r;
}

/* "21 records, 57 chunks, 41 ORFs scored" from the summary line; "" when absent. */
static void summary_of(const char *err, char *out, size_t cap)
{
    const char *p = strstr(err, "virnucpro: predict: ");
    const char *q = p ? strstr(p, " scored") : NULL;
    out[0] = 0;
    if (p && q) {
        p += strlen("virnucpro: predict: ");
        snprintf(out, cap, "%.*s", (int)(q - p + 7), p);
    }
}

/* ---- the state of an output directory ---- */

enum { ST_EMPTY, ST_FINISHED, ST_RUNNING, ST_COMMITTING, ST_DAMAGED };

static const char *state_name(int s)
{
    static const char *const n[] = {"no journal and no results", "finished",
                                    "journal: running", "journal: committing",
                                    "journal unreadable"};
    return n[s];
}

static int dir_state(const char *dir)
{
    char *j = slurp(in_dir(dir, "predict.journal"), NULL);
    if (!j)
        return exists(in_dir(dir, OUTPUTS[0])) ? ST_FINISHED : ST_EMPTY;
    int s = strstr(j, "\nstate committing\n") ? ST_COMMITTING
            : strstr(j, "\nstate running\n")  ? ST_RUNNING
                                              : ST_DAMAGED;
    free(j);
    return s;
}

/* A number from a journal line "key N" (-1 when absent). */
static long journal_value(const char *dir, const char *key)
{
    char *j = slurp(in_dir(dir, "predict.journal"), NULL);
    long v = -1;
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = j ? strstr(j, pat) : NULL;
    if (p)
        v = strtol(p + strlen(pat), NULL, 10);
    free(j);
    return v;
}

static int finals_in_place(const char *dir)
{
    int m = 0;
    for (int i = 0; i < NOUT; i++)
        m |= exists(in_dir(dir, OUTPUTS[i])) ? 1 << i : 0;
    return m;
}

/* Every output under its final name is the reference's, and none that was in place
 * before (*mask) has gone; *mask becomes what is in place now. */
static int check_finals(const input *in, const char *dir, int *mask, const char *when)
{
    int m = finals_in_place(dir);
    char names[4096];
    for (int i = 0; i < NOUT; i++) {
        if ((*mask & ~m) & (1 << i)) {
            list_dir(dir, names, sizeof names);
            CHECK(0, "%s: %s was in place and is gone (directory: %s)", when, OUTPUTS[i], names);
        }
        char diff[8192];
        if ((m & (1 << i)) &&
            !same_output(in_dir(dir, OUTPUTS[i]), in_dir(in->ref, OUTPUTS[i]), diff, sizeof diff))
            CHECK(0, "%s: %s is in place but is not the uninterrupted run's: %s", when,
                  OUTPUTS[i], diff);
    }
    *mask = m;
    return 0;
}

/* The run is complete: the outputs are the reference's, nothing else is left. */
static int check_complete(const input *in, const char *dir, const char *when)
{
    int m = 0;
    if (check_finals(in, dir, &m, when))
        return -1;
    char names[4096];
    list_dir(dir, names, sizeof names);
    CHECK(m == ALL_OUTPUTS_OF(in), "%s: outputs missing; directory: %s", when, names);
    CHECK(!strcmp(names, in->shard ? FINISHED_LISTING_SHARD : FINISHED_LISTING),
          "%s: the directory holds other files than the outputs: %s", when, names);
    return 0;
}

/* ---- run.json ---- */

static cJSON *read_json(const char *path)
{
    char *t = slurp(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* run.json's counts that describe the outputs (tokens and recomputed_batches count the
 * work of the last process, which a --resume shares with the runs before it). */
static const char *const OUTPUT_COUNTS[] = {
    "records",         "chunks",          "chunks_scored",      "chunks_viral",
    "frames",          "viral_sequences", "other_sequences",    "unscored_sequences",
    "viral_regions",   "workers",         "workers_retired"};

/* run.json never says "ok" of a directory whose outputs are not all in place: with status
 * "ok" every output is there (check_finals compares them) and no .part is left of one. */
static int check_run_json_truthful(const input *in, const char *dir, const char *when)
{
    cJSON *j = read_json(in_dir(dir, "run.json"));
    const char *st = json_str(j, "status");
    char names[4096];
    list_dir(dir, names, sizeof names);
    int ok = st && !strcmp(st, "ok");
    cJSON_Delete(j);
    if (!ok)
        return 0;
    CHECK(finals_in_place(dir) == ALL_OUTPUTS_OF(in) && !strstr(names, ".part") &&
              (!in->embeddings || exists(in_dir(dir, "merged_features.safetensors"))),
          "%s: run.json says \"ok\" but the outputs are not all in place: %s", when, names);
    return 0;
}

/* Killed right after run.json says a run has started: status "running", no end time, no
 * exit status, no error, the command line as given. */
static int check_run_json_running(const input *in, const char *dir, const char *when)
{
    cJSON *j = read_json(in_dir(dir, "run.json"));
    const char *st = json_str(j, "status");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "command_line");
    const cJSON *last = cJSON_GetArrayItem(cl, cJSON_GetArraySize(cl) - 1);
    int good = st && !strcmp(st, "running") &&
               cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "end_time")) &&
               cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "exit_status")) &&
               cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "error")) &&
               cJSON_IsString(last) && !strcmp(last->valuestring, in->path);
    cJSON_Delete(j);
    CHECK(good, "%s: run.json is not a \"running\" record (status %s)", when,
          st ? st : "(none)");
    return 0;
}

/* A completed run's run.json: status ok, and the counts and records' SHA-256 of the
 * uninterrupted run. */
static int check_run_json_done(const input *in, const char *dir, const char *when)
{
    cJSON *j = read_json(in_dir(dir, "run.json")), *ref = read_json(in_dir(in->ref, "run.json"));
    char got[2048] = "", want[2048] = "";
    size_t gu = 0, wu = 0;
    const cJSON *gc = cJSON_GetObjectItemCaseSensitive(j, "counts");
    const cJSON *wc = cJSON_GetObjectItemCaseSensitive(ref, "counts");
    for (size_t i = 0; i < sizeof OUTPUT_COUNTS / sizeof OUTPUT_COUNTS[0]; i++) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(gc, OUTPUT_COUNTS[i]);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(wc, OUTPUT_COUNTS[i]);
        gu += (size_t)snprintf(got + gu, sizeof got - gu, " %s %g", OUTPUT_COUNTS[i],
                               cJSON_IsNumber(g) ? g->valuedouble : -1.0);
        wu += (size_t)snprintf(want + wu, sizeof want - wu, " %s %g", OUTPUT_COUNTS[i],
                               cJSON_IsNumber(w) ? w->valuedouble : -1.0);
    }
    const char *st = json_str(j, "status");
    const cJSON *in_j = cJSON_GetObjectItemCaseSensitive(j, "input");
    const cJSON *in_r = cJSON_GetObjectItemCaseSensitive(ref, "input");
    const char *sha = json_str(in_j, "records_sha256"), *rsha = json_str(in_r, "records_sha256");
    int good = j && ref && st && !strcmp(st, "ok") && !strcmp(got, want) && sha && rsha &&
               !strcmp(sha, rsha) &&
               cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "error"));
    snprintf(why, sizeof why,
             "%s: run.json after the run completed: status %s, counts%s, records_sha256 %s; "
             "want status ok, counts%s, records_sha256 %s",
             when, j ? st ? st : "(none)" : "(no run.json)", got, sha ? sha : "(none)", want,
             rsha ? rsha : "(none)");
    cJSON_Delete(j);
    cJSON_Delete(ref);
    if (!good)
        return -1;
    why[0] = 0;
    return 0;
}

/* A --resume that must complete, with the message its starting state calls for and the
 * summary counts of an uninterrupted run, and leave a run.json that says so. */
static int resume_to_end(const input *in, const char *dir, const char *when)
{
    int st = dir_state(dir);
    char *err = NULL;
    int r = predict(dir, in->path, NULL, NULL, 1, NULL, &err);
    char sum[256];
    summary_of(err, sum, sizeof sum);
    int ok = r == 0, msg = 1;
    if (st == ST_FINISHED)
        msg = strstr(err, "holds finished results and no interrupted run; nothing to do") != NULL;
    else if (st == ST_COMMITTING)
        msg = strstr(err, "its last step (the final renames) is done now") != NULL;
    else if (st == ST_EMPTY)
        msg = strstr(err, "nothing to resume in") && strstr(err, "starting from the beginning") &&
              !strcmp(sum, in->summary);
    else
        msg = !strstr(err, "starting from the beginning") && !strcmp(sum, in->summary);
    if (!ok || !msg) {
        snprintf(why, sizeof why,
                 "%s: --resume from state \"%s\": %s (want exit 0%s%s); stderr:\n%s", when,
                 state_name(st), outcome(r), st == ST_RUNNING || st == ST_EMPTY ? ", summary " : "",
                 st == ST_RUNNING || st == ST_EMPTY ? in->summary : "", err);
        free(err);
        return -1;
    }
    free(err);
    if (check_complete(in, dir, when))
        return -1;
    return check_run_json_done(in, dir, when);
}

/* ---- inputs and references ---- */

/* to = a copy of the file `from` */
static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *t = vnp_test_read_file(from, &n);
    assert_non_null(t);
    assert_int_equal(vnp_test_write_file(to, t, n), 0);
    free(t);
}

/* 3 records of 5.2, 8.1 and 10.7 kb: the golden sequences end to end (times `copies`,
 * with other IDs). */
static void write_long_input(const char *path, int copies)
{
    size_t n;
    char *t = vnp_test_read_file(vnp_test_fixture(G "input.fa"), &n);
    assert_non_null(t);
    char *seq = malloc(n + 1);
    size_t L = 0;
    int header = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '>' && (i == 0 || t[i - 1] == '\n'))
            header = 1;
        if (header) {
            header = t[i] != '\n';
            continue;
        }
        if (t[i] != '\n' && t[i] != '\r')
            seq[L++] = t[i];
    }
    assert_int_equal(L, 23997);
    const size_t cut[4] = {0, 5200, 13300, L};
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int c = 0; c < copies; c++)
        for (int r = 0; r < 3; r++) {
            fprintf(f, ">contig_%d_%d long record %d of the golden sequences\n", c + 1, r + 1,
                    r + 1);
            for (size_t i = cut[r]; i < cut[r + 1]; i += 70) {
                size_t k = cut[r + 1] - i < 70 ? cut[r + 1] - i : 70;
                fprintf(f, "%.*s\n", (int)k, seq + i);
            }
        }
    assert_int_equal(fclose(f), 0);
    free(seq);
    free(t);
}

/* An input's reference run as reference_run() left it in directory `base`: its output
 * directory, its kill points in order (checked against the protocol) and its summary. */
static void read_reference(input *in, const char *base, int shared)
{
    char b[4096];
    snprintf(b, sizeof b, "%s", base);
    snprintf(in->ref, sizeof in->ref, "%s/ref_%s", b, in->name);
    char log[4200], sumpath[4200];
    snprintf(log, sizeof log, "%s/ref_%s.points", b, in->name);
    snprintf(sumpath, sizeof sumpath, "%s/ref_%s.summary", b, in->name);
    /* the summary line and the run's seconds */
    char *sum = slurp(sumpath, NULL);
    if (!sum)
        fail_msg("%s: missing (the reference run of %s)", sumpath, in->name);
    char *nl = strchr(sum, '\n');
    assert_non_null(nl);
    *nl = 0;
    snprintf(in->summary, sizeof in->summary, "%s", sum);
    in->seconds = atof(nl + 1);
    free(sum);
    assert_true(in->summary[0] != 0);
    in->records = atoi(in->summary);
    /* the points, in order: 1 2 3 ... with their names */
    char *t = slurp(log, NULL);
    assert_non_null(t);
    in->points = count_lines(log);
    in->point = calloc((size_t)in->points + 1, sizeof *in->point);
    long k = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        assert_int_equal(strtol(line, NULL, 10), ++k);
        snprintf(in->point[k], sizeof in->point[0], "%s", sp + 1);
    }
    free(t);
    assert_int_equal(k, in->points);
    const char *from = shared ? " (shared reference)" : "";
    if (in->embeddings) { /* no journal: run.json first, the renames last */
        assert_string_equal(in->point[1], "run record written");
        assert_string_equal(in->point[in->points], "output renamed into place");
        print_message("%s: %s, %ld kill points, %.2f s%s\n", in->name, in->summary, in->points,
                      in->seconds, from);
        return;
    }
    /* the protocol: journal first, run.json says "running", the old results go; final
     * renames last (run.json's the very last), then the journal goes */
    assert_string_equal(in->point[1], "journal written, before its rename");
    assert_string_equal(in->point[2], "journal renamed");
    assert_string_equal(in->point[3], "run record written");
    assert_string_equal(in->point[4], "old results removed");
    for (long i = in->points - RENAMES_OF(in); i < in->points; i++)
        assert_string_equal(in->point[i], "output renamed into place");
    assert_string_equal(in->point[in->points], "journal removed");
    print_message("%s: %s, %ld kill points, %.2f s%s\n", in->name, in->summary, in->points,
                  in->seconds, from);
}

/* The uninterrupted run of an input in directory `base` (ref_NAME), counting its kill
 * points (ref_NAME.points) and keeping its summary (ref_NAME.summary); then read back. */
static void reference_run(input *in, const char *base)
{
    char dir[4096], log[4200], sumpath[4200], logenv[4300];
    snprintf(dir, sizeof dir, "%s/ref_%s", base, in->name);
    snprintf(log, sizeof log, "%s.points", dir);
    snprintf(sumpath, sizeof sumpath, "%s.summary", dir);
    snprintf(logenv, sizeof logenv, "VIRNUCPRO_DEBUG_KILL_LOG=%s", log);
    const char *env[] = {logenv, NULL};
    remove_tree(dir);
    unlink(log);
    char *err = NULL;
    double t0 = now_s();
    int r = predict(dir, in->path, NULL, NULL, 0, env, &err);
    double seconds = now_s() - t0;
    if (r != 0)
        fail_msg("reference run of %s: %s: %s", in->name, outcome(r), err);
    char sum[256];
    summary_of(err, sum, sizeof sum);
    free(err);
    FILE *f = fopen(sumpath, "w");
    assert_non_null(f);
    fprintf(f, "%s\n%.6f\n", sum, seconds);
    assert_int_equal(fclose(f), 0);
    read_reference(in, base, 0);
}

/* The reference runs of the golden, shard, long-contig and big inputs, made once and shared
 * by the ctest entries of this program: test_crash_safety_refs (FIXTURES_SETUP in
 * tests/pipeline/CMakeLists.txt; VNP_TMP = VNP_CRASH_REFS) writes the inputs and runs them
 * in VNP_CRASH_REFS, the entries that require it (VNP_CRASH_REFS another directory) read
 * them from there. Without VNP_CRASH_REFS (a run by hand) they are made in VNP_TMP. */
static void prepare(void)
{
    static int done;
    if (done)
        return;
    snprintf(tmpdir, sizeof tmpdir, "%s", getenv("VNP_TMP"));
    const char *shared = getenv("VNP_CRASH_REFS");
    snprintf(refdir, sizeof refdir, "%s", shared && *shared ? shared : tmpdir);
    /* made here, unless VNP_CRASH_REFS names another directory than VNP_TMP */
    char rt[PATH_MAX], rr[PATH_MAX];
    int make = !(shared && *shared) ||
               (realpath(tmpdir, rt) && realpath(refdir, rr) && !strcmp(rt, rr));
    snprintf(esm, sizeof esm, "%s", vnp_test_fixture(G "esm2"));
    snprintf(dnabert, sizeof dnabert, "%s", vnp_test_fixture(G "dnabert_s"));
    snprintf(classifier, sizeof classifier, "%s", vnp_test_fixture(G "classifier.pth"));
    /* the model digest cache in the scratch directory, not the user's */
    setenv("VIRNUCPRO_MODELS", tmp_path("models"), 1);
    /* only the runs that set them may see the debug switches */
    unsetenv("VIRNUCPRO_DEBUG_KILL_AT");
    unsetenv("VIRNUCPRO_DEBUG_KILL_LOG");
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    unsetenv("VIRNUCPRO_DEBUG_FAIL_WORKER");
    snprintf(golden.path, sizeof golden.path, "%s", vnp_test_fixture(G "input.fa"));
    snprintf(longin.path, sizeof longin.path, "%s", ref_path("long_contigs.fa"));
    snprintf(big.path, sizeof big.path, "%s", ref_path("long_contigs_x4.fa"));
    snprintf(shardin.path, sizeof shardin.path, "%s", ref_path("golden_shard.fa"));
    const char *ready = ref_path("references.done");
    if (make) {
        unlink(ready);
        write_long_input(longin.path, 1);
        write_long_input(big.path, 4);
        copy_file(golden.path, shardin.path);
        input *all[] = {&golden, &shardin, &longin, &big};
        for (int i = 0; i < 4; i++)
            reference_run(all[i], refdir);
        assert_int_equal(vnp_test_write_file(ready, "", 0), 0);
    } else {
        if (!exists(ready))
            fail_msg("no reference runs in VNP_CRASH_REFS=%s: the ctest entry "
                     "test_crash_safety_refs makes them (ctest runs it first)",
                     refdir);
        input *all[] = {&golden, &shardin, &longin, &big};
        for (int i = 0; i < 4; i++)
            read_reference(all[i], refdir, 1);
    }
    assert_string_equal(golden.summary, "21 records, 57 chunks, 41 ORFs scored");
    assert_int_equal(longin.records, 3);
    assert_int_equal(big.records, 12);
    /* the reference itself is right: the original tool's highest-score file */
    vnp_test_assert_files_equal(in_dir(golden.ref, OUTPUTS[1]),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
    done = 1;
}

/* The reference runs alone (the ctest entry test_crash_safety_refs) */
static void test_reference_runs(void **state)
{
    (void)state;
    prepare();
}

/* ---- scenarios side by side ---- */

typedef int (*scenario_fn)(void *ctx, long i);

static int jobs(void)
{
    const char *v = getenv("VNP_CRASH_JOBS");
    int n = v ? atoi(v) : 2;
    return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Runs fn(ctx, i) for every i in items[0..n), each in a child process, jobs() at a time;
 * fails naming every scenario that failed (with the first few reasons). */
static void run_scenarios(const char *what, scenario_fn fn, void *ctx, const long *items, long n)
{
    pid_t *pid = calloc((size_t)n, sizeof *pid);
    long next = 0, running = 0, failed = 0;
    char *report = calloc(1, 65536);
    size_t used = 0;
    while (next < n || running > 0) {
        if (next < n && running < jobs()) {
            fflush(NULL);
            pid_t p = fork();
            assert_true(p >= 0);
            if (p == 0) {
                why[0] = 0;
                int rc = fn(ctx, items[next]);
                if (rc) {
                    FILE *f = fopen(tmp_path("%s_%ld.why", what, items[next]), "w");
                    if (f) {
                        fputs(why, f);
                        fclose(f);
                    }
                }
                fflush(NULL);
                _exit(rc ? 1 : 0);
            }
            pid[next++] = p;
            running++;
            continue;
        }
        int st;
        pid_t p = wait(&st);
        if (p < 0)
            break;
        running--;
        long k = 0;
        while (k < next && pid[k] != p)
            k++;
        if (k == next)
            continue;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            char *w = slurp(tmp_path("%s_%ld.why", what, items[k]), NULL);
            if (failed <= 4 && used < 60000)
                used += (size_t)snprintf(report + used, 65536 - used, "\n[%s %ld] %.3000s", what,
                                         items[k], w ? w : "(the scenario process died)");
            free(w);
        }
    }
    free(pid);
    if (failed) {
        fail_msg("%ld of %ld %s scenarios failed:%s", failed, n, what, report);
    }
    free(report);
}

/* predict in dir killed at its point n: it must die by SIGKILL and leave the finished
 * files whole (*mask: which) and a truthful run.json ("running" when killed right after
 * writing it). when: the scenario, for messages. */
static int killed_predict(const input *in, const char *dir, long n, const char *when,
                          int *mask)
{
    char env1[64];
    snprintf(env1, sizeof env1, "VIRNUCPRO_DEBUG_KILL_AT=%ld", n);
    const char *env[] = {env1, NULL};
    char *err = NULL;
    int r = predict(dir, in->path, NULL, NULL, 0, env, &err);
    if (r != -SIGKILL) {
        snprintf(why, sizeof why, "%s: %s, want death by SIGKILL; stderr:\n%s", when, outcome(r),
                 err);
        free(err);
        return -1;
    }
    free(err);
    *mask = 0;
    if (check_finals(in, dir, mask, when) || check_run_json_truthful(in, dir, when))
        return -1;
    if (!strcmp(in->point[n], "run record written") && check_run_json_running(in, dir, when))
        return -1;
    return 0;
}

/* ---- 1. a kill at every point ---- */

typedef struct kill_ctx {
    const input *in;
    long second; /* >0: kill the first --resume too, at its point `second` */
} kill_ctx;

/* Kill at point n (a fresh directory), check, maybe kill the --resume, resume to the end. */
static int kill_at_point(void *vctx, long n)
{
    const kill_ctx *kc = vctx;
    const input *in = kc->in;
    char dir[4096], when[512];
    snprintf(dir, sizeof dir, "%s", tmp_path("kill%s_%s_%ld", kc->second ? "2" : "", in->name, n));
    remove_tree(dir);
    snprintf(when, sizeof when, "%s, SIGKILL at point %ld (%s)", in->name, n, in->point[n]);
    int mask = 0, r;
    char *err = NULL;
    if (killed_predict(in, dir, n, when, &mask))
        return -1;
    if (kc->second > 0) {
        const char *log = tmp_path("kill2_%s_%ld.points", in->name, n);
        char env2[64], logenv[4200];
        unlink(log);
        snprintf(env2, sizeof env2, "VIRNUCPRO_DEBUG_KILL_AT=%ld", kc->second);
        snprintf(logenv, sizeof logenv, "VIRNUCPRO_DEBUG_KILL_LOG=%s", log);
        const char *env_b[] = {env2, logenv, NULL};
        int st = dir_state(dir);
        r = predict(dir, in->path, NULL, NULL, 1, env_b, &err);
        int lines = count_lines(log);
        snprintf(when, sizeof when, "%s, SIGKILL at point %ld (%s), then its --resume at point %ld",
                 in->name, n, in->point[n], kc->second);
        /* killed at exactly that point; only a finished run (no point to pass) or one
         * left with all its renames done, run.json's too (one point: the journal's
         * removal) ends first */
        int early = st == ST_FINISHED ||
                    (st == ST_COMMITTING && mask == ALL_OUTPUTS_OF(in) &&
                     !exists(in_dir(dir, "run.json.part")) && kc->second > 1);
        int ok = early ? r == 0 && lines == (st == ST_FINISHED ? 0 : 1)
                       : r == -SIGKILL && lines == kc->second;
        if (!ok) {
            snprintf(why, sizeof why, "%s: %s after %d points (state was \"%s\"); stderr:\n%s",
                     when, outcome(r), lines, state_name(st), err);
            free(err);
            return -1;
        }
        free(err);
        if (check_finals(in, dir, &mask, when) || check_run_json_truthful(in, dir, when))
            return -1;
    }
    if (resume_to_end(in, dir, when))
        return -1;
    if (check_finals(in, dir, &mask, when)) /* none lost on the way */
        return -1;
    remove_tree(dir);
    unlink(tmp_path("kill%s_%s_%ld.err", kc->second ? "2" : "", in->name, n));
    return 0;
}

/* The kill matrix of the golden and --shard inputs: every point in Release. The
 * sanitizer build (ASan + UBSan runs each CLI about 2-3 times slower) passes
 * VNP_KILL_SAMPLE=3 (tests/pipeline/CMakeLists.txt): for each kind of point (its name:
 * "journal renamed", "output renamed into place", ...) its first and last occurrence and
 * every 3rd between (occurrences 1, 4, 7, ...), so every kind of step is killed at, at the
 * start, inside and at the end of the run. The same points every run: no randomness. (By
 * occurrence, not by position: the windows repeat a cycle of 3 points, which every 3rd
 * position would alias to one kind.) */
#ifndef VNP_KILL_SAMPLE
#define VNP_KILL_SAMPLE 1
#endif

static int in_kill_sample(const input *in, long i)
{
    if (VNP_KILL_SAMPLE <= 1)
        return 1;
    long occ = 0, total = 0; /* point i is occurrence occ of total of its kind */
    for (long j = 1; j <= in->points; j++)
        if (!strcmp(in->point[j], in->point[i])) {
            total++;
            occ += j <= i;
        }
    return occ == 1 || occ == total || (occ - 1) % VNP_KILL_SAMPLE == 0;
}

static const char *kill_sample_note(void)
{
    return VNP_KILL_SAMPLE <= 1 ? "every point"
                                : "VNP_KILL_SAMPLE=" VNP_STR(VNP_KILL_SAMPLE)
                                  ": of each kind of point, occurrences 1, 1+k, 1+2k, ... "
                                  "and the last, k = " VNP_STR(VNP_KILL_SAMPLE);
}

/* Every point of the golden and shard inputs (a sample under the sanitizers, above); for
 * the long-contig input the first three, the last eight (the commit) and every fifth. */
static void test_kill_every_point(void **state)
{
    (void)state;
    prepare();
    long *items = calloc((size_t)(golden.points + longin.points + shardin.points + 8), sizeof *items);
    long n = 0;
    for (long i = 1; i <= golden.points; i++)
        if (in_kill_sample(&golden, i))
            items[n++] = i;
    kill_ctx kc = {&golden, 0};
    double t0 = now_s();
    run_scenarios("kill_golden", kill_at_point, &kc, items, n);
    print_message("golden: killed at %ld of %ld points (%s) and resumed: %.1f s\n", n,
                  golden.points, kill_sample_note(), now_s() - t0);
    if (VNP_KILL_SAMPLE <= 1)
        assert_int_equal(n, golden.points);

    /* a --shard run (shard.txt is one more output under the same protocol) */
    n = 0;
    for (long i = 1; i <= shardin.points; i++)
        if (in_kill_sample(&shardin, i))
            items[n++] = i;
    kc.in = &shardin;
    t0 = now_s();
    run_scenarios("kill_shard", kill_at_point, &kc, items, n);
    print_message("shard 2/3: killed at %ld of %ld points (%s) and resumed: %.1f s\n", n,
                  shardin.points, kill_sample_note(), now_s() - t0);

    n = 0;
    for (long i = 1; i <= longin.points; i++)
        if (i <= 3 || i > longin.points - 8 || i % 5 == 0)
            items[n++] = i;
    kc.in = &longin;
    t0 = now_s();
    run_scenarios("kill_long", kill_at_point, &kc, items, n);
    print_message("long contigs: killed at %ld of %ld points and resumed: %.1f s\n", n,
                  longin.points, now_s() - t0);
    free(items);
}

/* The --resume killed too: at its first point or its second. */
static void test_double_kill(void **state)
{
    (void)state;
    prepare();
    long g = golden.points;
    long items[] = {2, 3, 9, g - 7, g - 4, g - 3, g - 1, g};
    long n = (long)(sizeof items / sizeof items[0]);
    kill_ctx kc = {&golden, 2};
    double t0 = now_s();
    run_scenarios("kill2_golden", kill_at_point, &kc, items, n);
    kc.second = 1;
    long li[] = {longin.points / 2, longin.points - 3};
    kc.in = &longin;
    run_scenarios("kill2_long", kill_at_point, &kc, li, 2);
    print_message("double kills: %ld scenarios, %.1f s\n", n + 2, now_s() - t0);
}

/* A window of the long-contig input ends inside a record: the journal keeps the cut
 * record's chunks, and --resume goes on inside that record. */
static void test_mid_record_cut(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("cut_long");
    remove_tree(dir);
    const char *env[] = {"VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=2", NULL};
    char *err = NULL;
    int r = predict(dir, longin.path, NULL, NULL, 0, env, &err);
    if (r != 1)
        fail_msg("%s: %s", outcome(r), err);
    assert_non_null(strstr(err, "stopped after 2 windows"));
    free(err);
    assert_int_equal(dir_state(dir), ST_RUNNING);
    assert_int_equal(journal_value(dir, "records"), 0);
    assert_true(journal_value(dir, "partial") > 0);
    assert_true(journal_value(dir, "partial") < 11); /* contig_1: 11 chunks */
    assert_int_equal(finals_in_place(dir), 0);
    if (resume_to_end(&longin, dir, "long contigs, stopped after 2 windows"))
        fail_msg("%s", why);
}

/* run.json is never an earlier run's "ok" over this run's unfinished outputs: a run in a
 * directory that holds a finished run, killed (a) at the first points of a resumable run
 * (journal, run.json "running", the old results removed, the first window) and (b) at
 * every point of an --embeddings run, which cannot be resumed (no journal: its run.json
 * alone says whether the directory is complete). After each kill run.json says "ok" only
 * of a complete directory; (a) --resume, (b) the run again, then complete it with run.json
 * "ok" and the uninterrupted run's counts. */
static int kill_over_finished(void *vctx, long n)
{
    const input *in = vctx;
    char dir[4096], when[512], cmd[16384];
    snprintf(dir, sizeof dir, "%s", tmp_path("over_%s_%ld", in->name, n));
    remove_tree(dir);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", in->ref, dir); /* a finished run */
    CHECK(vnp_test_run(cmd, NULL, NULL) == 0, "%s failed", cmd);
    snprintf(when, sizeof when, "%s over a finished run, SIGKILL at point %ld (%s)", in->name,
             n, in->point[n]);
    int mask = 0, r;
    char *err = NULL;
    if (killed_predict(in, dir, n, when, &mask))
        return -1;
    if (!in->embeddings)
        return resume_to_end(in, dir, when);
    r = predict(dir, in->path, NULL, NULL, 0, NULL, &err);
    CHECK(r == 0, "%s, then the run again: %s; stderr:\n%s", when, outcome(r), err);
    free(err);
    char diff[8192];
    if (check_finals(in, dir, &mask, when))
        return -1;
    CHECK(mask == ALL_OUTPUTS,  "%s, then the run again: outputs missing", when);
    CHECK(same_file(in_dir(dir, "merged_features.safetensors"),
                    in_dir(in->ref, "merged_features.safetensors"), diff, sizeof diff),
          "%s, then the run again: %s", when, diff);
    return check_run_json_done(in, dir, when);
}

static void test_run_json_over_finished_run(void **state)
{
    (void)state;
    prepare();
    /* golden: the journal in place, run.json "running", the old results removed */
    long items[16] = {2, 3, 4}, n = 3;
    if (VNP_KILL_SAMPLE > 1) /* the sanitizer build: the two after the journal */
        items[0] = 4, n = 2;
    assert_string_equal(golden.point[4], "old results removed");
    double t0 = now_s();
    run_scenarios("over_golden", kill_over_finished, &golden, items, n);
    if (!embedin.points) {
        snprintf(embedin.path, sizeof embedin.path, "%s", tmp_path("golden_embed.fa"));
        copy_file(golden.path, embedin.path);
        reference_run(&embedin, tmpdir);
    }
    /* --embeddings: run.json "running", the old results removed, the derived outputs
     * written, the first, a middle and the last output renamed, run.json renamed */
    long e = embedin.points, r0 = e - RENAMES_OF(&embedin) + 1;
    assert_string_equal(embedin.point[r0 - 1], "derived outputs written");
    long ei[] = {1, 2, r0 - 1, r0, r0 + 3, e - 1, e};
    n = (long)(sizeof ei / sizeof ei[0]);
    if (VNP_KILL_SAMPLE > 1) { /* the sanitizer build: three of them */
        ei[0] = 2, ei[1] = r0 + 3, ei[2] = e;
        n = 3;
    }
    run_scenarios("over_embeddings", kill_over_finished, &embedin, ei, n);
    print_message("over a finished run: golden killed at %d points, --embeddings at %ld of "
                  "%ld (%s): %.1f s\n", VNP_KILL_SAMPLE > 1 ? 2 : 3, n, e,
                  VNP_KILL_SAMPLE > 1 ? "the sanitizer build's sample" : "all kinds of point",
                  now_s() - t0);
}

/* ---- 2. random kills ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

static uint64_t g_seed;

/* One trial: a fresh run, interrupted at random; then --resume, interrupted again at
 * random (at most 3 interruptions in all), until one completes. Writes
 * tmp/trial_T.log: "runs sigkilled signalled" and the trial's history. */
static int random_trial(void *vctx, long t)
{
    (void)vctx;
    uint64_t s = g_seed + (uint64_t)t;
    splitmix(&s);
    const input *in = splitmix(&s) & 1 ? &longin : &golden;
    char dir[4096], when[2600], errpath[4200], env1[64];
    snprintf(dir, sizeof dir, "%s", tmp_path("trial_%ld", t));
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    remove_tree(dir);
    int mask = 0, stops = 0, runs = 0, sigkilled = 0, signalled = 0;
    char history[2048] = "";
    size_t hl = 0;
    for (int step = 0;; step++) {
        int resume = step > 0;
        /* 0: none; 1: VIRNUCPRO_DEBUG_KILL_AT; 2: SIGKILL after a delay; 3: SIGTERM,
         * SIGINT or SIGHUP after a delay. The fresh run is always interrupted; a
         * --resume two times in three, until 3 interruptions. */
        int method = resume && (stops >= 3 || splitmix(&s) % 3 == 0)
                         ? 0
                         : 1 + (int)(splitmix(&s) % 3);
        const char *env[] = {NULL, NULL};
        long at = 0;
        double delay = 0;
        int sig = 0;
        if (method == 1) {
            at = 1 + (long)(splitmix(&s) % (uint64_t)in->points);
            snprintf(env1, sizeof env1, "VIRNUCPRO_DEBUG_KILL_AT=%ld", at);
            env[0] = env1;
        } else if (method >= 2) {
            static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
            delay = uniform(&s) * in->seconds * 1.1;
            sig = method == 2 ? SIGKILL : sigs[splitmix(&s) % 3];
        }
        int st_before = dir_state(dir);
        pid_t pid = spawn_predict(dir, in->path, NULL, NULL, resume, env, errpath);
        int computing = 0; /* a fresh run had begun writing when the signal was sent */
        if (method >= 2) {
            sleep_s(delay);
            computing = !resume && exists(in_dir(dir, "prediction_results.txt.part"));
            kill(pid, sig); /* not reaped yet: the PID is still this run's */
        }
        int r = wait_run(pid);
        runs++;
        sigkilled += r == -SIGKILL;
        signalled += sig && sig != SIGKILL && r == 128 + sig;
        char *err = slurp(errpath, NULL);
        if (!err)
            err = strdup("");
        const char *sep = step ? " / " : "";
        if (method == 1)
            hl += (size_t)snprintf(history + hl, sizeof history - hl, "%s%sKILL_AT=%ld: %s", sep,
                                   resume ? "--resume " : "", at, outcome(r));
        else if (method >= 2)
            hl += (size_t)snprintf(history + hl, sizeof history - hl, "%s%s%s after %.3f s: %s",
                                   sep, resume ? "--resume " : "", sig_name(sig), delay,
                                   outcome(r));
        else
            hl += (size_t)snprintf(history + hl, sizeof history - hl, "%s--resume: %s", sep,
                                   outcome(r));
        if (hl >= sizeof history)
            hl = sizeof history - 1;
        snprintf(when, sizeof when, "trial %ld (%s input; VNP_CRASH_SEED=%llu): %s", t, in->name,
                 (unsigned long long)g_seed, history);
        int ok;
        if (method == 0)
            ok = r == 0;
        else if (method <= 2)
            ok = r == 0 || r == -SIGKILL;
        else if (r == 128 + sig)
            /* stopped by the signal: at a window boundary (resumable: the journal is
             * there), before any record was complete, or while the models loaded */
            ok = strstr(err, "interrupted by ") &&
                 ((strstr(err, "run the same command with --resume") &&
                   dir_state(dir) == ST_RUNNING) ||
                  strstr(err, "before any record was complete") ||
                  strstr(err, "while loading the models; nothing was written"));
        else if (r == -sig)
            /* its default action: the signal came before predict took it over, or once
             * the run had ended; never while the run was writing its outputs */
            ok = !computing || (finals_in_place(dir) == ALL_OUTPUTS &&
                                !exists(in_dir(dir, "predict.journal")));
        else
            ok = r == 0;
        if (!ok) {
            snprintf(why, sizeof why,
                     "%s: unexpected outcome (state before: %s, after: %s%s); stderr:\n%s", when,
                     state_name(st_before), state_name(dir_state(dir)),
                     computing ? "; the run was writing its outputs when the signal came" : "",
                     err);
            free(err);
            return -1;
        }
        free(err);
        if (r == 0)
            break;
        stops++;
        if (check_finals(in, dir, &mask, when))
            return -1;
    }
    if (check_complete(in, dir, when))
        return -1;
    if (check_finals(in, dir, &mask, when)) /* none lost on the way */
        return -1;
    FILE *f = fopen(tmp_path("trial_%ld.log", t), "w");
    if (f) {
        fprintf(f, "%d %d %d\n%s\n", runs, sigkilled, signalled, when);
        fclose(f);
    }
    remove_tree(dir);
    unlink(errpath);
    return 0;
}

/* The sanitizer build runs fewer trials by default (VNP_CRASH_TRIALS_DEFAULT=8,
 * tests/pipeline/CMakeLists.txt): the same kinds of interruption, a smaller sample;
 * Release runs 20 and checks that they interrupted runs in both ways. */
#ifndef VNP_CRASH_TRIALS_DEFAULT
#define VNP_CRASH_TRIALS_DEFAULT 20
#endif

static void test_random_trials(void **state)
{
    (void)state;
    prepare();
    const char *v = getenv("VNP_CRASH_TRIALS");
    long n = v ? atol(v) : VNP_CRASH_TRIALS_DEFAULT;
    const char *sv = getenv("VNP_CRASH_SEED");
    g_seed = sv ? strtoull(sv, NULL, 10) : 20261206;
    long *items = calloc((size_t)n, sizeof *items);
    for (long i = 0; i < n; i++)
        items[i] = i;
    double t0 = now_s();
    run_scenarios("trial", random_trial, NULL, items, n);
    long runs = 0, sigkilled = 0, signalled = 0, first_done = 0;
    for (long i = 0; i < n; i++) {
        char *l = slurp(tmp_path("trial_%ld.log", i), NULL);
        assert_non_null(l);
        int a, b, c;
        assert_int_equal(sscanf(l, "%d %d %d", &a, &b, &c), 3);
        runs += a;
        sigkilled += b;
        signalled += c;
        first_done += a == 1;
        free(l);
    }
    print_message("%ld random trials (VNP_CRASH_SEED=%llu): %ld runs, %ld died by SIGKILL, %ld "
                  "stopped by SIGTERM/SIGINT/SIGHUP, %ld trials completed before their "
                  "interruption; all byte-identical; %.1f s\n",
                  n, (unsigned long long)g_seed, runs, sigkilled, signalled, first_done,
                  now_s() - t0);
    /* the trials did interrupt runs, in both ways */
    if (n >= 20) {
        assert_true(sigkilled >= n / 4);
        assert_true(signalled >= 1);
    }
    free(items);
}

/* ---- 3. one run per directory ---- */

static void test_lock_held_by_test(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("locked");
    remove_tree(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *lock = in_dir(dir, ".virnucpro.lock");
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    char pid[32];
    int pn = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    assert_int_equal(write(fd, pid, (size_t)pn), pn);
    for (int resume = 0; resume < 2; resume++) {
        char *err = NULL;
        double t0 = now_s();
        int r = predict(dir, golden.path, NULL, NULL, resume, NULL, &err);
        double dt = now_s() - t0;
        if (r != 1)
            fail_msg("second run%s: %s, want exit 1: %s", resume ? " (--resume)" : "",
                     outcome(r), err);
        char want[4400];
        snprintf(want, sizeof want, "%s is in use by another virnucpro run (PID %ld)", dir,
                 (long)getpid());
        if (!strstr(err, want))
            fail_msg("want \"%s\" in:\n%s", want, err);
        free(err);
        assert_true(dt < 3.0); /* at once: no model is hashed or loaded */
        char names[4096];
        list_dir(dir, names, sizeof names);
        assert_string_equal(names, ".virnucpro.lock");
        char *t = slurp(lock, NULL);
        assert_string_equal(t, pid); /* the holder's lock file is left alone */
        free(t);
    }
    /* the holder goes (its lock file stays, as after a kill): the next run takes it */
    close(fd);
    char *err = NULL;
    int r = predict(dir, golden.path, NULL, NULL, 0, NULL, &err);
    if (r != 0)
        fail_msg("%s: %s", outcome(r), err);
    free(err);
    if (check_complete(&golden, dir, "after the lock was released"))
        fail_msg("%s", why);
}

/* Waits until dir/predict.journal says `records` records are complete; 0 when the run
 * ended first. */
static long journal_value(const char *dir, const char *key);
static int wait_running(pid_t pid, const char *dir, long records)
{
    double t0 = now_s();
    for (;;) {
        if (exists(in_dir(dir, "predict.journal")) &&
            journal_value(dir, "records") >= records)
            return 1;
        if (waitpid(pid, NULL, WNOHANG) != 0)
            return 0;
        if (now_s() - t0 > RUN_LIMIT_S)
            return 0;
        sleep_s(0.002);
    }
}

/* A second run (or --resume) on the directory of a running one, which is held stopped
 * meanwhile: exit 1 at once, naming the directory and the first run's PID; the first
 * run's journal and .part files untouched. */
static int second_run_refused(pid_t first, const char *dir, int resume)
{
    const char *journal = in_dir(dir, "predict.journal");
    char *j0 = slurp(journal, NULL), *p0 = slurp(in_dir(dir, "prediction_results.txt.part"), NULL);
    char errp[4200], want[4400];
    snprintf(errp, sizeof errp, "%s.second.err", dir);
    double s0 = now_s();
    int r = wait_run(spawn_predict(dir, big.path, NULL, NULL, resume, NULL, errp));
    double dt = now_s() - s0;
    char *err = slurp(errp, NULL);
    char *j1 = slurp(journal, NULL), *p1 = slurp(in_dir(dir, "prediction_results.txt.part"), NULL);
    snprintf(want, sizeof want, "%s is in use by another virnucpro run (PID %ld)", dir,
             (long)first);
    int rc = 0;
    if (r != 1 || !err || !strstr(err, want))
        rc = snprintf(why, sizeof why, "second run%s: %s, want exit 1 with \"%s\"; stderr:\n%s",
                      resume ? " (--resume)" : "", outcome(r), want, err ? err : "");
    else if (dt > 3.0) /* at once: no model is hashed or loaded */
        rc = snprintf(why, sizeof why, "second run%s: refused after %.2f s",
                      resume ? " (--resume)" : "", dt);
    else if (!j0 || !j1 || strcmp(j0, j1) || !p0 || !p1 || strcmp(p0, p1))
        rc = snprintf(why, sizeof why, "second run%s: the first run's journal or .part changed",
                      resume ? " (--resume)" : "");
    free(err);
    free(j0);
    free(j1);
    free(p0);
    free(p1);
    return rc ? -1 : 0;
}

static void test_concurrent_runs(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("concurrent");
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.first.err", dir);
    remove_tree(dir);
    pid_t first = spawn_predict(dir, big.path, NULL, NULL, 0, NULL, errpath);
    if (!wait_running(first, dir, 1))
        fail_msg("the first run ended before it had completed a record");
    /* held still while the others try: the test does not depend on how fast it runs */
    assert_int_equal(kill(first, SIGSTOP), 0);
    int wst;
    assert_int_equal(waitpid(first, &wst, WUNTRACED), first); /* stopped, every thread */
    assert_true(WIFSTOPPED(wst));
    int bad = second_run_refused(first, dir, 0) || second_run_refused(first, dir, 1);
    assert_int_equal(kill(first, SIGCONT), 0);
    int r = wait_run(first);
    if (bad)
        fail_msg("%s", why);
    char *err = slurp(errpath, NULL);
    if (r != 0)
        fail_msg("the first run: %s: %s", outcome(r), err);
    free(err);
    if (check_complete(&big, dir, "the first of two runs on one directory"))
        fail_msg("%s", why);
}

/* ---- 4. what changed since the interrupted run ---- */

/* XORs the byte at `off` with `mask` (twice: as before), keeping the size, and puts
 * back the file's atime/mtime when `keep_time`; else the mtime moves on by 2 s. */
static void xor_byte(const char *path, long off, unsigned char mask, int keep_time)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    assert_int_equal(close(fd), 0);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    if (!keep_time)
        ts[1].tv_sec += 2;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    struct stat now;
    assert_int_equal(stat(path, &now), 0);
    assert_int_equal(now.st_size, st.st_size);
    assert_int_equal(now.st_ino, st.st_ino);
    if (keep_time) {
        assert_int_equal(now.st_mtim.tv_sec, st.st_mtim.tv_sec);
        assert_int_equal(now.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
    }
}

/* An interrupted run (stopped after 3 windows: 5 records and part of the 6th) with
 * classifier `cls` on `in` into dir; returns its journal. */
static char *interrupted_run(const char *dir, const char *in, const char *cls)
{
    remove_tree(dir);
    const char *env[] = {"VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=3", NULL};
    char *err = NULL;
    int r = predict(dir, in, cls, NULL, 0, env, &err);
    if (r != 1)
        fail_msg("%s: %s", outcome(r), err);
    assert_non_null(strstr(err, "stopped after 3 windows"));
    assert_non_null(strstr(err, "run the same command with --resume"));
    free(err);
    assert_int_equal(dir_state(dir), ST_RUNNING);
    assert_int_equal(journal_value(dir, "records"), 5);
    assert_true(journal_value(dir, "partial") > 0);
    char *j = slurp(in_dir(dir, "predict.journal"), NULL);
    assert_non_null(j);
    return j;
}

/* --resume refused with `want` in its message; the interrupted run is kept as it was. */
static void assert_refused(const char *dir, const char *in, const char *cls, const char *len,
                           const char *want, const char *journal)
{
    char *err = NULL;
    int r = predict(dir, in, cls, len, 1, NULL, &err);
    if (r != 1)
        fail_msg("--resume: %s, want exit 1 with \"%s\"; stderr:\n%s", outcome(r), want, err);
    if (!strstr(err, want))
        fail_msg("want \"%s\" in:\n%s", want, err);
    assert_null(strstr(err, "run the same command with --resume"));
    free(err);
    char *j = slurp(in_dir(dir, "predict.journal"), NULL);
    assert_non_null(j);
    assert_string_equal(j, journal);
    free(j);
    assert_int_equal(finals_in_place(dir), 0);
    assert_true(exists(in_dir(dir, "prediction_results.txt.part")));
}

/* Resume with classifier `cls` (a copy of the golden one) to the end: golden's files. */
static void resume_ok(const char *dir, const char *in, const char *cls)
{
    char *err = NULL;
    int r = predict(dir, in, cls, NULL, 1, NULL, &err);
    if (r != 0)
        fail_msg("--resume: %s: %s", outcome(r), err);
    char sum[256];
    summary_of(err, sum, sizeof sum);
    assert_string_equal(sum, golden.summary);
    free(err);
    if (check_complete(&golden, dir, "--resume after the change was undone"))
        fail_msg("%s", why);
}

static void changed_classifier(const char *tag, int keep_time)
{
    prepare();
    const char *cls = tmp_path("classifier_%s.pth", tag);
    copy_file(classifier, cls);
    const char *dir = tmp_path("changed_%s", tag);
    char *journal = interrupted_run(dir, golden.path, cls);
    struct stat st;
    assert_int_equal(stat(cls, &st), 0);
    long off = (long)st.st_size / 2;
    xor_byte(cls, off, 0x01, keep_time);
    assert_refused(dir, golden.path, cls, NULL,
                   "cannot resume: the classifier file (SHA-256) changed since the interrupted "
                   "run",
                   journal);
    /* another -l: refused too */
    assert_refused(dir, golden.path, cls, "300",
                   "cannot resume: the chunk length (-l) changed since the interrupted run",
                   journal);
    xor_byte(cls, off, 0x01, keep_time); /* undone: the same bytes as before */
    resume_ok(dir, golden.path, cls);
    free(journal);
}

/* An edited classifier (its mtime moves on, as with any edit). */
static void test_changed_classifier(void **state)
{
    (void)state;
    changed_classifier("edited", 0);
}

/* The same, with size, inode and mtime as before: only the content tells (the model
 * digest cache keys on the change time too, which user space cannot set back). */
static void test_changed_classifier_same_mtime(void **state)
{
    (void)state;
    changed_classifier("same_mtime", 1);
}

/* A base of a record the interrupted run read is changed (size and mtime kept). */
static void test_changed_input(void **state)
{
    (void)state;
    prepare();
    const char *in = tmp_path("input_copy.fa");
    copy_file(golden.path, in);
    const char *dir = tmp_path("changed_input");
    char *journal = interrupted_run(dir, in, NULL);
    /* the first base of record 2 (lambda_dev_1), read and written by the run */
    char *t = slurp(in, NULL);
    char *rec2 = strstr(t, "\n>lambda_dev_1");
    assert_non_null(rec2);
    long off = (long)(strchr(rec2 + 1, '\n') + 1 - t);
    /* another base in its place: A<->C, G<->T */
    unsigned char mask = t[off] == 'A' || t[off] == 'C' ? 'A' ^ 'C' : 'G' ^ 'T';
    assert_true(t[off] == 'A' || t[off] == 'C' || t[off] == 'G' || t[off] == 'T');
    free(t);
    xor_byte(in, off, mask, 1);
    char want[4400];
    snprintf(want, sizeof want,
             "cannot resume: the first 6 records of %s are not the ones the interrupted run "
             "read",
             in);
    assert_refused(dir, in, NULL, NULL, want, journal);
    xor_byte(in, off, mask, 1);
    resume_ok(dir, in, NULL);
    free(journal);
}

/* ---- 5. signals ---- */

static void stop_by_signal(int sig, const char *name)
{
    prepare();
    const char *dir = tmp_path("signal_%s", name);
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    remove_tree(dir);
    double t0 = now_s();
    pid_t pid = spawn_predict(dir, big.path, NULL, NULL, 0, NULL, errpath);
    /* mid-run whatever the machine's speed: 2 of its 12 records done (about 0.5 s in
     * Release) */
    if (!wait_running(pid, dir, 2))
        fail_msg("the run ended before the signal");
    assert_int_equal(kill(pid, sig), 0);
    double ts = now_s();
    int r = wait_run(pid);
    double dt = now_s() - ts;
    char *err = slurp(errpath, NULL);
    /* The signal must stop the run whichever thread the kernel hands it to (OpenBLAS's
     * pool threads exist before predict starts). */
    if (r != 128 + sig)
        fail_msg("%s after %.2f s: %s, want exit %d%s; stderr:\n%s", name, ts - t0, outcome(r),
                 128 + sig,
                 r == -sig ? " (the signal's default action: a thread that does not block it "
                             "took it)"
                           : "",
                 err);
    char want[128];
    snprintf(want, sizeof want, "interrupted by %s: ", name);
    if (!strstr(err, want) || !strstr(err, "run the same command with --resume"))
        fail_msg("want \"%s\" and \"--resume\" in:\n%s", want, err);
    /* the message's counts are the journal's */
    unsigned long long recs = 0, frames = 0;
    assert_int_equal(sscanf(strstr(err, want) + strlen(want), "%llu records (%llu frames) done",
                            &recs, &frames),
                     2);
    free(err);
    if (dt > 2.0)
        fail_msg("%s: the run took %.2f s to stop (want < 2 s)", name, dt);
    print_message("%s after %.2f s: exit %d in %.3f s, %llu of %d records done\n", name,
                  ts - t0, r, dt, recs, big.records);
    assert_int_equal(dir_state(dir), ST_RUNNING);
    assert_int_equal(journal_value(dir, "records"), (long)recs);
    assert_int_equal(journal_value(dir, "frames"), (long)frames);
    assert_true(recs >= 2 && recs < (unsigned long long)big.records);
    assert_int_equal(finals_in_place(dir), 0);
    if (resume_to_end(&big, dir, name))
        fail_msg("%s", why);
}

static void test_sigterm(void **state)
{
    (void)state;
    stop_by_signal(SIGTERM, "SIGTERM");
}

static void test_sigint(void **state)
{
    (void)state;
    stop_by_signal(SIGINT, "SIGINT");
}

static void test_sighup(void **state)
{
    (void)state;
    stop_by_signal(SIGHUP, "SIGHUP");
}

/* ---- 7. a stalled input ---- */

/* A named pipe beside DIR, made afresh: "DIR.fifo". */
static const char *make_fifo(const char *dir)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s.fifo", dir);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    return path;
}

/* Opens the FIFO for writing once the run has opened it for reading (O_NONBLOCK: ENXIO
 * until then); -1 if the run ended first. */
static int open_fifo_writer(const char *fifo, pid_t pid)
{
    for (;;) {
        int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, 0); /* blocking writes from here on */
            return fd;
        }
        if (errno != ENXIO || waitpid(pid, NULL, WNOHANG) != 0)
            return -1;
        sleep_s(0.001);
    }
}

/* Writes the golden input into the FIFO (it fits the pipe buffer: no reader needed). */
static void write_golden(int fd)
{
    size_t n;
    char *t = slurp(golden.path, &n);
    assert_non_null(t);
    assert_true(n < 65536);
    assert_int_equal(write(fd, t, n), (ssize_t)n);
    free(t);
}

/* Starts predict on a named pipe that gets the golden input but is never closed, as a
 * stalled upstream (a network mount, a producer that hangs) leaves it; returns the
 * pipe's write end in *wfd. The run computes what it can, then waits on its input. */
static pid_t spawn_stalled(const char *dir, const char *fifo, const char *const *env,
                           const char *errpath, int *wfd)
{
    pid_t pid = spawn_predict(dir, fifo, NULL, NULL, 0, env, errpath);
    *wfd = open_fifo_writer(fifo, pid);
    if (*wfd < 0)
        fail_msg("the run on %s ended before opening it: %s", fifo, slurp(errpath, NULL));
    write_golden(*wfd);
    return pid;
}

/* Waits until the journal's record count has stayed the same for `quiet` seconds (the run
 * has done all it can with the input so far and waits for more); 0 if the run ended. */
static int wait_stalled(pid_t pid, const char *dir, double quiet)
{
    double t0 = now_s(), since = now_s();
    long last = -1;
    for (;;) {
        long r = exists(in_dir(dir, "predict.journal")) ? journal_value(dir, "records") : -1;
        if (r != last) {
            last = r;
            since = now_s();
        } else if (r >= 1 && now_s() - since >= quiet) {
            return 1;
        }
        if (waitpid(pid, NULL, WNOHANG) != 0 || now_s() - t0 > RUN_LIMIT_S)
            return 0;
        sleep_s(0.01);
    }
}


/* --resume with the whole golden input through the same FIFO (closed this time): the
 * reference's bytes. */
static void resume_from_fifo(const char *dir, const char *fifo, const char *when)
{
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.resume.err", dir);
    pid_t pid = spawn_predict(dir, fifo, NULL, NULL, 1, NULL, errpath);
    int fd = open_fifo_writer(fifo, pid);
    if (fd >= 0) {
        write_golden(fd);
        close(fd);
    }
    int r = wait_run(pid);
    char *err = slurp(errpath, NULL);
    if (r != 0 || strstr(err, "starting from the beginning"))
        fail_msg("%s: --resume on the FIFO: %s, stderr:\n%s", when, outcome(r), err);
    free(err);
    if (check_complete(&golden, dir, when))
        fail_msg("%s", why);
}

/* SIGTERM while the reader waits on a stalled input (a FIFO): the stop wakes it (before, the run
 * hung in read(2) until the pipe was closed); exit 143 within 2 s, resumable. */
static void test_signal_stalled_input(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("stalled_signal");
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    remove_tree(dir);
    const char *fifo = make_fifo(dir);
    int wfd;
    pid_t pid = spawn_stalled(dir, fifo, NULL, errpath, &wfd);
    if (!wait_stalled(pid, dir, 1.0))
        fail_msg("the run on a stalled input ended (or never checkpointed): %s",
                 slurp(errpath, NULL));
    long done = journal_value(dir, "records");
    assert_int_equal(kill(pid, SIGTERM), 0);
    double ts = now_s();
    int r = wait_run_within(pid, 30);
    double dt = now_s() - ts;
    close(wfd);
    char *err = slurp(errpath, NULL);
    if (r != 128 + SIGTERM || dt > 2.0)
        fail_msg("SIGTERM on a run waiting for its input: %s after %.2f s (want exit 143 within "
                 "2 s); stderr:\n%s",
                 outcome(r), dt, err);
    if (!strstr(err, "interrupted by SIGTERM: ") ||
        !strstr(err, "run the same command with --resume"))
        fail_msg("want the interruption message and the --resume advice in:\n%s", err);
    free(err);
    print_message("stalled input: %ld of %d records done, SIGTERM -> exit %d in %.3f s\n",
                  done, golden.records, r, dt);
    assert_true(done >= 1 && done < golden.records);
    assert_int_equal(dir_state(dir), ST_RUNNING);
    assert_int_equal(finals_in_place(dir), 0);
    resume_from_fifo(dir, fifo, "SIGTERM on a stalled input");
}

/* Every worker failing while the reader waits on a stalled input (a FIFO): the run stops with the
 * workers' error (before, it hung until the pipe was closed). */
static void test_workers_fail_stalled_input(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("stalled_fail");
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s.err", dir);
    remove_tree(dir);
    /* the only worker fails at its 6th batch: after the first checkpoints, before the
     * input in the pipe is used up */
    const char *env[] = {"VIRNUCPRO_DEBUG_FAIL_WORKER=0:6", NULL};
    const char *fifo = make_fifo(dir);
    int wfd;
    double t0 = now_s();
    pid_t pid = spawn_stalled(dir, fifo, env, errpath, &wfd);
    int r = wait_run_within(pid, 60);
    double dt = now_s() - t0;
    close(wfd);
    char *err = slurp(errpath, NULL);
    if (r != 1)
        fail_msg("every worker failed while the input stalled: %s after %.1f s (want exit 1; "
                 "the pipe stays open); stderr:\n%s",
                 outcome(r), dt, err);
    if (!strstr(err, "virnucpro: error: every worker has failed") ||
        !strstr(err, "injected device failure") || strstr(err, "reading stopped"))
        fail_msg("want the workers' error (not the reader's) in:\n%s", err);
    free(err);
    assert_int_equal(finals_in_place(dir), 0);
    long done = journal_value(dir, "records");
    print_message("stalled input: every worker failed after %ld of %d records, exit %d after "
                  "%.2f s\n",
                  done, golden.records, r, dt);
    assert_true(done >= 1 && done < golden.records);
    resume_from_fifo(dir, fifo, "every worker failed on a stalled input");
}

/* A signal just as the run ends (its last file renamed into place): the run has
 * completed, whatever the exit; the process does not crash. OPENBLAS_NUM_THREADS=1:
 * no OpenBLAS pool thread (created before predict blocks the signals) to take the
 * signal with its default action instead of predict. */
static void test_signal_at_end(void **state)
{
    (void)state;
    prepare();
    /* after the last rename: the journal's removal, the models freed, the threads
     * joined, the lock released */
    static const double delay_ms[] = {0, 2, 5, 10, 20, 35};
    for (int k = 0; k < (int)(sizeof delay_ms / sizeof delay_ms[0]); k++) {
        const char *dir = tmp_path("signal_end_%d", k);
        char errpath[4200], when[128];
        snprintf(errpath, sizeof errpath, "%s.err", dir);
        snprintf(when, sizeof when, "SIGTERM %.0f ms after the last rename", delay_ms[k]);
        remove_tree(dir);
        const char *env[] = {"OPENBLAS_NUM_THREADS=1", NULL};
        pid_t pid = spawn_predict(dir, golden.path, NULL, NULL, 0, env, errpath);
        const char *last = in_dir(dir, OUTPUTS[NPLAIN - 1]);
        while (!exists(last) && waitpid(pid, NULL, WNOHANG) == 0)
            sleep_s(0.0002);
        sleep_s(delay_ms[k] / 1000);
        assert_int_equal(kill(pid, SIGTERM), 0);
        int r = wait_run(pid);
        char *err = slurp(errpath, NULL);
        /* it completed: exit 0, or killed by the signal once its outputs were complete
         * (never a crash from a signal racing the end of the run) */
        if (r != 0 && r != -SIGTERM)
            fail_msg("%s: %s (want exit 0, or death by SIGTERM); stderr:\n%s", when, outcome(r),
                     err);
        free(err);
        int mask = 0;
        if (check_finals(&golden, dir, &mask, when))
            fail_msg("%s", why);
        assert_int_equal(mask, ALL_OUTPUTS);
        /* after a death by the signal the lock file may remain: --resume clears it */
        if (r != 0 && resume_to_end(&golden, dir, when))
            fail_msg("%s", why);
        if (check_complete(&golden, dir, when))
            fail_msg("%s", why);
    }
}

/* ---- 6. --resume on a finished run ---- */

static void test_resume_finished(void **state)
{
    (void)state;
    prepare();
    const char *dir = tmp_path("finished");
    remove_tree(dir);
    char *err = NULL;
    int r = predict(dir, golden.path, NULL, NULL, 0, NULL, &err);
    if (r != 0)
        fail_msg("%s: %s", outcome(r), err);
    free(err);
    struct stat before[NPLAIN];
    for (int i = 0; i < NPLAIN; i++)
        assert_int_equal(stat(in_dir(dir, OUTPUTS[i]), &before[i]), 0);
    sleep_s(0.02);
    for (int k = 0; k < 2; k++) { /* twice: the first leaves nothing behind either */
        r = predict(dir, golden.path, NULL, NULL, 1, NULL, &err);
        if (r != 0)
            fail_msg("--resume: %s: %s", outcome(r), err);
        assert_non_null(
            strstr(err, "holds finished results and no interrupted run; nothing to do"));
        assert_null(strstr(err, "virnucpro: predict: ")); /* no summary: nothing ran */
        free(err);
        for (int i = 0; i < NPLAIN; i++) {
            struct stat now;
            assert_int_equal(stat(in_dir(dir, OUTPUTS[i]), &now), 0);
            assert_int_equal(now.st_ino, before[i].st_ino);
            assert_int_equal(now.st_size, before[i].st_size);
            assert_int_equal(now.st_mtim.tv_sec, before[i].st_mtim.tv_sec);
            assert_int_equal(now.st_mtim.tv_nsec, before[i].st_mtim.tv_nsec);
        }
        if (check_complete(&golden, dir, "--resume on a finished run"))
            fail_msg("%s", why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_runs),
        cmocka_unit_test(test_resume_finished),
        cmocka_unit_test(test_mid_record_cut),
        cmocka_unit_test(test_run_json_over_finished_run),
        cmocka_unit_test(test_kill_every_point),
        cmocka_unit_test(test_double_kill),
        cmocka_unit_test(test_random_trials),
        cmocka_unit_test(test_lock_held_by_test),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_changed_classifier),
        cmocka_unit_test(test_changed_classifier_same_mtime),
        cmocka_unit_test(test_changed_input),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_sighup),
        cmocka_unit_test(test_signal_at_end),
        cmocka_unit_test(test_signal_stalled_input),
        cmocka_unit_test(test_workers_fail_stalled_input),
    };
    /* VNP_TEST_ONLY / VNP_TEST_SKIP, e.g. VNP_TEST_ONLY='test_sig*' */
    return vnp_test_run_tests(tests, NULL, NULL);
}
