/* virnucpro train on feature rows, through the CLI:
 *  - a differential replay in PyTorch (tools/train_reference.py, run with $VNP_PYTHON):
 *    the same features, initial weights, split, batch order and dropout masks (the
 *    run's --debug-trace) give every epoch's metrics to 4 decimals, the kept weights
 *    within 1e-4 relative and the running statistics within 1e-5, and the classifier
 *    predict loads from PREFIX.safetensors gives PyTorch's probabilities; twice, with
 *    the defaults for 3 epochs and with a schedule that steps the learning rate and
 *    stops early. PREFIX.pth loads in PyTorch (torch.load, weights_only=False, the class
 *    as train.py defines it) with the same weights and probabilities, and predict's
 *    classifier reads it with the same probabilities as the safetensors. Skipped only when VNP_PYTHON is not configured and CI is unset.
 *  - the same seed gives the same bytes; another seed other weights;
 *  - refusals (one class, no labels, too few rows) leave no output file;
 *  - from sequences with the golden models: seeded "viral-like" (G/C-rich codons) and
 *    "other" (A/T-rich codons) open reading frames; the cached features equal predict
 *    --embeddings' rows byte for byte, the validation AUROC is above 0.9, and predict
 *    --classifier PREFIX.safetensors calls fresh sequences of both kinds right. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"
#include "virnucpro.h"

#define WIDTH 3328
#define ROWS 320

/* Two classes whose mean differs on a few hundred features (deterministic). */
static const char *make_features(const char *name, size_t rows, int one_class, int labelled)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s", vnp_test_tmp(name));
    vnp_features_writer *w = NULL;
    vnp_error err;
    assert_int_equal(vnp_features_writer_create(path, "features", WIDTH, NULL, &w, &err), VNP_OK);
    float *row = malloc(WIDTH * sizeof *row);
    uint64_t s = 12345;
    for (size_t r = 0; r < rows; r++) {
        int label = one_class ? 1 : (int)(r % 3 != 0);
        for (int j = 0; j < WIDTH; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)(s >> 40) * 0x1.0p-24f - 0.5f;
            row[j] = u + (label && j % 16 == 0 ? 0.08f : 0.0f);
        }
        char id[32];
        int n = snprintf(id, sizeof id, "row%zu", r);
        assert_int_equal(vnp_features_writer_add(w, id, (size_t)n, row, &err), VNP_OK);
        if (labelled)
            assert_int_equal(vnp_features_writer_add_label(w, label, &err), VNP_OK);
    }
    assert_int_equal(vnp_features_writer_finish(w, &err), VNP_OK);
    vnp_features_writer_free(w);
    free(row);
    return path;
}

static int python_configured(void)
{
    const char *py = getenv("VNP_PYTHON"), *ci = getenv("CI");
    int have = py && *py && access(py, X_OK) == 0;
    if (!have && !(ci && *ci))
        return 0;
    if (!have)
        fail_msg("CI is set but VNP_PYTHON ('%s') is not an executable Python with torch",
                 py ? py : "");
    return 1;
}

/* The kept classifier's probabilities on every row, as predict computes them. */
static void write_probs(const char *model, const char *features, const char *out)
{
    vnp_classifier *c = NULL;
    vnp_error err;
    if (vnp_classifier_load(model, &c, &err))
        fail_msg("%s", err.msg);
    vnp_train_data d;
    memset(&d, 0, sizeof d);
    assert_int_equal(vnp_train_data_append(features, -1, &d, &err), VNP_OK);
    float *p = malloc(d.n * 2 * sizeof *p);
    assert_int_equal(vnp_classifier_predict(c, d.x, d.n, d.width, p, &err), VNP_OK);
    assert_int_equal(vnp_test_write_file(out, p, d.n * 2 * sizeof *p), 0);
    free(p);
    vnp_train_data_free(&d);
    vnp_classifier_free(c);
}

static void replay(const char *tag, const char *train_opts, const char *ref_opts)
{
    const char *features = make_features("features.safetensors", ROWS, 0, 1);
    char prefix[1024], trace[1024], probs[1024], cmd[8192];
    snprintf(prefix, sizeof prefix, "%s", vnp_test_tmp(tag));
    snprintf(trace, sizeof trace, "%s.trace.safetensors", prefix);
    snprintf(probs, sizeof probs, "%s.probs.f32", prefix);
    snprintf(cmd, sizeof cmd, "'%s' train -q --features '%s' -o '%s' --debug-trace '%s' %s",
             vnp_test_cli(), features, prefix, trace, train_opts);
    char *serr = NULL;
    int rc = vnp_test_run(cmd, NULL, &serr);
    if (rc)
        fail_msg("train failed (%d): %s", rc, serr ? serr : "");
    free(serr);
    char model[1100], pth[1100], pth_probs[1100];
    snprintf(model, sizeof model, "%s.safetensors", prefix);
    write_probs(model, features, probs);
    /* predict reads the .pth too, with the same result */
    snprintf(pth, sizeof pth, "%s.pth", prefix);
    snprintf(pth_probs, sizeof pth_probs, "%s.pth_probs.f32", prefix);
    write_probs(pth, features, pth_probs);
    vnp_test_assert_files_equal(pth_probs, probs);
    if (!python_configured()) {
        print_message("VNP_PYTHON not configured and CI unset: PyTorch replay skipped\n");
        skip();
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/train_reference.py' '%s' '%s' '%s' %s --probs '%s'",
             getenv("VNP_PYTHON"), getenv("VNP_SOURCE_DIR"), features, trace, prefix, ref_opts,
             probs);
    char *sout = NULL;
    serr = NULL;
    rc = vnp_test_run(cmd, &sout, &serr);
    if (rc)
        fail_msg("the PyTorch replay failed (%d):\n%s%s", rc, sout ? sout : "", serr ? serr : "");
    print_message("%s", sout);
    free(sout);
    free(serr);
}

static void test_replay_defaults(void **state)
{
    (void)state;
    replay("defaults", "--epochs 3 --seed 7 -t 2",
           "--lr 0.0002 --momentum 0.9 --step-size 10 --gamma 0.85 --batch-size 32 "
           "--dropout 0.5 --patience 5");
}

/* A learning rate that overfits fast, StepLR every 2 epochs, patience 2, a last batch
 * of one row (skipped) and one of 13: early stopping keeps an earlier epoch. */
static void test_replay_schedule(void **state)
{
    (void)state;
    replay("schedule",
           "--epochs 40 --seed 3 --lr 0.05 --momentum 0.5 --step-size 2 --gamma 0.5 "
           "--batch-size 41 --patience 2 --dropout 0.3 --hidden 64 --val-fraction 0.2 -t 1",
           "--lr 0.05 --momentum 0.5 --step-size 2 --gamma 0.5 --batch-size 41 "
           "--dropout 0.3 --patience 2");
    char *ho = vnp_test_read_file(vnp_test_tmp("schedule.heldout.tsv"), NULL);
    assert_non_null(ho);
    assert_non_null(strstr(ho, "stopped_early\tyes\n"));
    free(ho);
}

static void run_ok(const char *prefix, const char *features, const char *opts)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' train -q --features '%s' -o '%s' %s", vnp_test_cli(),
             features, prefix, opts);
    char *serr = NULL;
    int rc = vnp_test_run(cmd, NULL, &serr);
    if (rc)
        fail_msg("train failed (%d): %s", rc, serr ? serr : "");
    free(serr);
}

static void test_deterministic(void **state)
{
    (void)state;
    const char *f = make_features("det.safetensors", 200, 0, 1);
    char a[1024], b[1024], c[1024], x[1200], y[1200];
    /* one name in two directories: the .pth's archive folder is named after the file */
    snprintf(a, sizeof a, "%s", vnp_test_tmp("det_a"));
    snprintf(b, sizeof b, "%s", vnp_test_tmp("det_b"));
    snprintf(x, sizeof x, "mkdir -p '%s' '%s'", a, b);
    assert_int_equal(vnp_test_run(x, NULL, NULL), 0);
    snprintf(a, sizeof a, "%s", vnp_test_tmp("det_a/model"));
    snprintf(b, sizeof b, "%s", vnp_test_tmp("det_b/model"));
    snprintf(c, sizeof c, "%s", vnp_test_tmp("det_c"));
    run_ok(a, f, "--epochs 2 --seed 5 -t 2");
    run_ok(b, f, "--epochs 2 --seed 5 -t 2");
    run_ok(c, f, "--epochs 2 --seed 6 -t 2");
    const char *suffix[] = {".safetensors", ".log.tsv", ".heldout.tsv", ".pth"};
    for (int i = 0; i < 4; i++) {
        snprintf(x, sizeof x, "%s%s", a, suffix[i]);
        snprintf(y, sizeof y, "%s%s", b, suffix[i]);
        vnp_test_assert_files_equal(x, y);
    }
    size_t la, lc;
    snprintf(x, sizeof x, "%s.safetensors", a);
    snprintf(y, sizeof y, "%s.safetensors", c);
    char *da = vnp_test_read_file(x, &la), *dc = vnp_test_read_file(y, &lc);
    assert_true(la == lc && memcmp(da, dc, la) != 0);
    free(da);
    free(dc);
}

/* SIGKILL at every point of train's output protocol (VIRNUCPRO_DEBUG_KILL_AT): each
 * final file is then absent or complete (the bytes of an uninterrupted run), and running
 * the same command again gives the uninterrupted run's files byte for byte. */
static void test_killed_outputs(void **state)
{
    (void)state;
    const char *f = make_features("kill.safetensors", 120, 0, 1);
    const char *suffix[] = {".safetensors", ".pth", ".log.tsv", ".heldout.tsv"};
    char ref[1024], dir[1024], prefix[1100], cmd[4096], log[1100];
    snprintf(ref, sizeof ref, "%s", vnp_test_tmp("kill_ref/model"));
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", vnp_test_tmp("kill_ref"));
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(log, sizeof log, "%s", vnp_test_tmp("kill_points.log"));
    snprintf(cmd, sizeof cmd,
             "VIRNUCPRO_DEBUG_KILL_LOG='%s' '%s' train -q --features '%s' -o '%s' --epochs 2 "
             "--hidden 16 -t 1",
             log, vnp_test_cli(), f, ref);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    char *points = vnp_test_read_file(log, NULL);
    assert_non_null(points);
    int n = 0;
    for (char *c = points; *c; c++)
        n += *c == '\n';
    free(points);
    assert_int_equal(n, 6);
    for (int k = 1; k <= n; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "kill_%d", k);
        snprintf(dir, sizeof dir, "%s", vnp_test_tmp(rel));
        snprintf(prefix, sizeof prefix, "%s/model", dir);
        snprintf(cmd, sizeof cmd,
                 "mkdir -p '%s' && VIRNUCPRO_DEBUG_KILL_AT=%d '%s' train -q --features '%s' "
                 "-o '%s' --epochs 2 --hidden 16 -t 1",
                 dir, k, vnp_test_cli(), f, prefix);
        assert_int_equal(vnp_test_run(cmd, NULL, NULL), 128 + 9);
        for (int i = 0; i < 4; i++) {
            char got[1200], want[1200];
            snprintf(got, sizeof got, "%s%s", prefix, suffix[i]);
            snprintf(want, sizeof want, "%s%s", ref, suffix[i]);
            if (access(got, F_OK) == 0)
                vnp_test_assert_files_equal(got, want);
        }
        snprintf(cmd, sizeof cmd, "'%s' train -q --features '%s' -o '%s' --epochs 2 --hidden 16 -t 1",
                 vnp_test_cli(), f, prefix);
        assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
        for (int i = 0; i < 4; i++) {
            char got[1200], want[1200];
            snprintf(got, sizeof got, "%s%s", prefix, suffix[i]);
            snprintf(want, sizeof want, "%s%s", ref, suffix[i]);
            vnp_test_assert_files_equal(got, want);
            snprintf(got, sizeof got, "%s%s.part", prefix, suffix[i]);
            if (access(got, F_OK) == 0)
                fail_msg("%s is left after the run completed", got);
        }
    }
}

static void refuse(const char *prefix, const char *args, const char *want)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' train -q %s -o '%s'", vnp_test_cli(), args, prefix);
    char *serr = NULL;
    int rc = vnp_test_run(cmd, NULL, &serr);
    assert_int_not_equal(rc, 0);
    if (!serr || !strstr(serr, want))
        fail_msg("expected '%s' in: %s", want, serr ? serr : "");
    free(serr);
    const char *suffix[] = {".safetensors", ".log.tsv", ".heldout.tsv", ".safetensors.part",
                            ".log.tsv.part", ".pth", ".pth.part"};
    for (int i = 0; i < 7; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s%s", prefix, suffix[i]);
        if (access(p, F_OK) == 0)
            fail_msg("%s exists after a refused run", p);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    char args[2048], prefix[1024];
    snprintf(prefix, sizeof prefix, "%s", vnp_test_tmp("refused"));
    snprintf(args, sizeof args, "--features '%s'", make_features("one.safetensors", 50, 1, 1));
    refuse(prefix, args, "of one class");
    snprintf(args, sizeof args, "--features '%s'", make_features("nolab.safetensors", 50, 0, 0));
    refuse(prefix, args, "'labels'");
    snprintf(args, sizeof args, "--features '%s'", make_features("few.safetensors", 5, 0, 1));
    refuse(prefix, args, "too few");
    snprintf(args, sizeof args, "--features '%s' --lr nope",
             make_features("few.safetensors", 5, 0, 1));
    refuse(prefix, args, "--lr expects a number");
    refuse(prefix, "--viral x.fa", "give the inputs one way");
}

/* n records of 300 bp whose first frame is stop-free: codons drawn with probability
 * 0.75 from the class's own set, else from all 61 sense codons. */
static void write_orfs_len(const char *path, const char *id, int n, int viral, uint64_t seed,
                           int codons)
{
    static const char *gc[] = {"GGG", "GGC", "GCG", "GCC", "CGG", "CGC", "CCG", "CCC"};
    static const char *at[] = {"AAA", "AAT", "ATA", "ATT", "TAT", "TTA", "TTT"};
    const char *b = "TCAG";
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint64_t s = seed;
    for (int r = 0; r < n; r++) {
        fprintf(f, ">%s_%d\n", id, r);
        for (int c = 0; c < codons; c++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            unsigned u = (unsigned)(s >> 33);
            char codon[4];
            if (u % 4 != 3)
                memcpy(codon, viral ? gc[(u >> 2) % 8] : at[(u >> 2) % 7], 4);
            else {
                do {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    unsigned v = (unsigned)(s >> 33) % 64;
                    codon[0] = b[v / 16];
                    codon[1] = b[v / 4 % 4];
                    codon[2] = b[v % 4];
                    codon[3] = 0;
                } while (!strcmp(codon, "TAA") || !strcmp(codon, "TAG") || !strcmp(codon, "TGA"));
            }
            fputs(codon, f);
        }
        fputc('\n', f);
    }
    fclose(f);
}

static void write_orfs(const char *path, const char *id, int n, int viral, uint64_t seed)
{
    write_orfs_len(path, id, n, viral, seed, 100);
}

/* ---- resuming the feature computation, signals ---- */

/* `sh -c "exec CMD"` in the background, its stderr into errpath. */
static pid_t spawn(const char *cmd, const char *errpath)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        char full[8192];
        snprintf(full, sizeof full, "exec %s", cmd);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Its exit status, or -N when signal N killed it; fails after 120 s. */
static int wait_exit(pid_t pid)
{
    for (int i = 0; i < 12000; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the run did not end within 120 s");
    return -1;
}

/* Waits (up to 60 s) until the file holds `what`. */
static void wait_for_text(const char *path, const char *what)
{
    for (int i = 0; i < 6000; i++) {
        char *t = vnp_test_read_file(path, NULL);
        int found = t && strstr(t, what);
        free(t);
        if (found)
            return;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("'%s' did not appear in %s within 60 s", what, path);
}

static const char *const k_outputs[] = {".features.safetensors", ".safetensors", ".pth", ".log.tsv",
                                        ".heldout.tsv"};

/* DIR/model.* equal the reference's, and nothing temporary is left. */
static void assert_like_reference(const char *dir)
{
    for (int i = 0; i < 5; i++) {
        char got[1200], want[1200];
        snprintf(got, sizeof got, "%s/model%s", dir, k_outputs[i]);
        snprintf(want, sizeof want, "%s%s", vnp_test_tmp("res_ref/model"), k_outputs[i]);
        vnp_test_assert_files_equal(got, want);
    }
    const char *left[] = {".features.safetensors.journal", ".features.safetensors.rows.tmp",
                          ".features.safetensors.ids.tmp", ".safetensors.part", ".pth.part"};
    for (int i = 0; i < 5; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/model%s", dir, left[i]);
        if (access(p, F_OK) == 0)
            fail_msg("%s is left after the run completed", p);
    }
}

/* The train command on the resume inputs into DIR/model (a shell command line). */
static const char *train_cmd(const char *dir, const char *extra)
{
    static char cmd[8192];
    char esm[4096], dnabert[4096];
    snprintf(esm, sizeof esm, "%s", vnp_test_fixture("golden/esm2"));
    snprintf(dnabert, sizeof dnabert, "%s", vnp_test_fixture("golden/dnabert_s"));
    snprintf(cmd, sizeof cmd,
             "'%s' train --viral '%s' --other '%s' -l 300 -o '%s/model' --esm '%s' --dnabert '%s' "
             "--device cpu -t 1 --window 8 --seed 4 %s",
             vnp_test_cli(), vnp_test_tmp("res_viral.fa"), vnp_test_tmp("res_other.fa"), dir,
             esm, dnabert, extra);
    return cmd;
}

static const char *fresh_dir(const char *name)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp(name));
    char cmd[2100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    return dir;
}

/* Records of 1500 bp (5 chunks of 300) in windows of 8 frames: windows cut records.
 * The inputs and their uninterrupted reference run (res_ref, and its kill points in
 * res_points.log), made once: test_resume_features and test_signals compare with them. */
static void resume_inputs(void)
{
    static int done;
    if (done)
        return;
    write_orfs_len(vnp_test_tmp("res_viral.fa"), "rv", 4, 1, 21, 500);
    write_orfs_len(vnp_test_tmp("res_other.fa"), "ro", 4, 0, 22, 500);
    const char *dir = fresh_dir("res_ref");
    char *serr = NULL, cmd[8400];
    remove(vnp_test_tmp("res_points.log"));
    snprintf(cmd, sizeof cmd, "VIRNUCPRO_DEBUG_KILL_LOG='%s' %s", vnp_test_tmp("res_points.log"),
             train_cmd(dir, "-q --epochs 3"));
    int rc = vnp_test_run(cmd, NULL, &serr);
    if (rc)
        fail_msg("train failed (%d): %s", rc, serr ? serr : "");
    free(serr);
    done = 1;
}

static long journal_value(const char *dir, const char *key)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/model.features.safetensors.journal", dir);
    char *t = vnp_test_read_file(p, NULL);
    if (!t)
        fail_msg("no journal %s", p);
    char k[64];
    snprintf(k, sizeof k, "\n%s ", key);
    const char *at = strstr(t, k);
    assert_non_null(at);
    long v = strtol(at + strlen(k), NULL, 10);
    free(t);
    return v;
}

/* A feature computation stopped after 2 and 5 windows (one of them cutting a record)
 * and killed at points of its journal protocol goes on with --resume to the cache and
 * model of an uninterrupted run, byte for byte. */
static void test_resume_features(void **state)
{
    (void)state;
    resume_inputs();
    int cut = 0;
    const long after[] = {2, 5};
    for (int i = 0; i < 2; i++) {
        const char *dir = fresh_dir("res_fail");
        char cmd[8400], *serr = NULL;
        snprintf(cmd, sizeof cmd, "VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=%ld %s", after[i],
                 train_cmd(dir, "-q --epochs 3"));
        assert_int_equal(vnp_test_run(cmd, NULL, &serr), 1);
        if (!serr || !strstr(serr, "run the same command with --resume"))
            fail_msg("no --resume advice in: %s", serr ? serr : "");
        free(serr);
        for (int k = 0; k < 3; k++) { /* no cache and no model yet */
            char p[1200];
            snprintf(p, sizeof p, "%s/model%s", dir, k_outputs[k]);
            assert_int_not_equal(access(p, F_OK), 0);
        }
        cut |= journal_value(dir, "partial") > 0;
        serr = NULL;
        int rc = vnp_test_run(train_cmd(dir, "-q --epochs 3 --resume"), NULL, &serr);
        if (rc)
            fail_msg("--resume after %ld windows failed (%d): %s", after[i], rc, serr ? serr : "");
        free(serr);
        assert_like_reference(dir);
    }
    assert_true(cut); /* a record was cut by a window and resumed mid-record */
    /* SIGKILL at points of the protocol: the 4th (a window's journal written, not yet
     * renamed), the "committing" journal in place, the cache renamed (the journal still
     * there) */
    char *log = vnp_test_read_file(vnp_test_tmp("res_points.log"), NULL);
    assert_non_null(log);
    const char *at = strstr(log, " train: features cache renamed\n");
    assert_non_null(at);
    while (at > log && at[-1] != '\n')
        at--;
    int renamed = atoi(at);
    free(log);
    const int points[] = {4, renamed - 1, renamed};
    for (int i = 0; i < 3; i++) {
        const char *dir = fresh_dir("res_kill");
        char cmd[8400];
        snprintf(cmd, sizeof cmd, "VIRNUCPRO_DEBUG_KILL_AT=%d %s", points[i],
                 train_cmd(dir, "-q --epochs 3"));
        assert_int_equal(vnp_test_run(cmd, NULL, NULL), 128 + SIGKILL);
        char *serr = NULL;
        int rc = vnp_test_run(train_cmd(dir, "-q --epochs 3 --resume"), NULL, &serr);
        if (rc)
            fail_msg("--resume after a kill at point %d failed (%d): %s", points[i], rc,
                     serr ? serr : "");
        free(serr);
        assert_like_reference(dir);
    }
    /* a resume that would mix rows of another input is refused, naming it */
    const char *dir = fresh_dir("res_changed");
    char cmd[8400], *serr = NULL;
    snprintf(cmd, sizeof cmd, "VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=2 %s",
             train_cmd(dir, "-q --epochs 3"));
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 1);
    snprintf(cmd, sizeof cmd, "%s", train_cmd(dir, "-q --epochs 3 --resume -l 500"));
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 1);
    if (!serr || !strstr(serr, "cannot resume: the chunk length (-l) changed"))
        fail_msg("want the changed -l named in: %s", serr ? serr : "");
    free(serr);
}

/* SIGTERM while the features are computed (the other input a FIFO that gives nothing:
 * the viral rows are journalled, the reader waits) ends with 143 and the --resume
 * advice; SIGTERM during the epochs ends with 143, no model file, and the advice to
 * reuse the complete cache; --resume then gives the uninterrupted run's files. */
static void test_signals(void **state)
{
    (void)state;
    resume_inputs();
    const char *dir = fresh_dir("res_signal");
    char errpath[1200], other_copy[1200], cmd[8400];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    snprintf(other_copy, sizeof other_copy, "%s.copy", vnp_test_tmp("res_other.fa"));
    assert_int_equal(rename(vnp_test_tmp("res_other.fa"), other_copy), 0);
    assert_int_equal(mkfifo(vnp_test_tmp("res_other.fa"), 0600), 0);
    int hold = open(vnp_test_tmp("res_other.fa"), O_RDWR); /* a writer that never writes */
    assert_true(hold >= 0);
    pid_t pid = spawn(train_cmd(dir, "--epochs 3"), errpath);
    char jp[1200];
    snprintf(jp, sizeof jp, "%s/model.features.safetensors.journal", dir);
    wait_for_text(jp, "\nrecords 4\n"); /* every viral record is in */
    assert_int_equal(kill(pid, SIGTERM), 0);
    int rc = wait_exit(pid);
    close(hold);
    char *err = vnp_test_read_file(errpath, NULL);
    if (rc != 128 + SIGTERM || !err ||
        !strstr(err, "interrupted by SIGTERM: 4 records (") ||
        !strstr(err, "run the same command with --resume"))
        fail_msg("SIGTERM during the features: status %d, stderr:\n%s", rc, err ? err : "");
    free(err);
    assert_int_equal(remove(vnp_test_tmp("res_other.fa")), 0);
    assert_int_equal(rename(other_copy, vnp_test_tmp("res_other.fa")), 0);
    /* go on, and stop it again while it trains (many epochs, none stops it early) */
    snprintf(errpath, sizeof errpath, "%s/stderr2", dir);
    pid = spawn(train_cmd(dir, "--resume --epochs 100000 --patience 100000"), errpath);
    wait_for_text(errpath, "epoch 2: ");
    assert_int_equal(kill(pid, SIGTERM), 0);
    rc = wait_exit(pid);
    err = vnp_test_read_file(errpath, NULL);
    snprintf(cmd, sizeof cmd,
             "no model was written; the features cache %s/model.features.safetensors is "
             "complete: run the same command with --resume",
             dir);
    if (rc != 128 + SIGTERM || !err || !strstr(err, "interrupted by SIGTERM in epoch ") ||
        !strstr(err, cmd))
        fail_msg("SIGTERM during training: status %d, stderr:\n%s", rc, err ? err : "");
    free(err);
    const char *none[] = {".safetensors", ".pth", ".safetensors.part", ".pth.part"};
    for (int i = 0; i < 4; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/model%s", dir, none[i]);
        if (access(p, F_OK) == 0)
            fail_msg("%s exists after training was interrupted", p);
    }
    char *serr = NULL;
    rc = vnp_test_run(train_cmd(dir, "--resume --epochs 3"), NULL, &serr);
    if (rc || !serr || !strstr(serr, "model.features.safetensors is complete; training on it"))
        fail_msg("--resume after training was interrupted (%d): %s", rc, serr ? serr : "");
    free(serr);
    assert_like_reference(dir);
    /* SIGINT while training from --features: 130, the advice to run it again */
    char feat[1200];
    snprintf(feat, sizeof feat, "%s/model.features.safetensors", dir);
    snprintf(cmd, sizeof cmd, "'%s' train --features '%s' -o '%s/again' --epochs 100000 "
             "--patience 100000 -t 1", vnp_test_cli(), feat, dir);
    snprintf(errpath, sizeof errpath, "%s/stderr3", dir);
    pid = spawn(cmd, errpath);
    wait_for_text(errpath, "epoch 1: ");
    assert_int_equal(kill(pid, SIGINT), 0);
    rc = wait_exit(pid);
    err = vnp_test_read_file(errpath, NULL);
    if (rc != 128 + SIGINT || !err || !strstr(err, "interrupted by SIGINT in epoch ") ||
        !strstr(err, "no model was written; run the same command again"))
        fail_msg("SIGINT while training from --features: status %d, stderr:\n%s", rc,
                 err ? err : "");
    free(err);
}

static void test_from_sequences(void **state)
{
    (void)state;
    char viral[1024], other[1024], fresh[1024], prefix[1024], cmd[16384];
    snprintf(viral, sizeof viral, "%s", vnp_test_tmp("viral.fa"));
    snprintf(other, sizeof other, "%s", vnp_test_tmp("other.fa"));
    snprintf(fresh, sizeof fresh, "%s", vnp_test_tmp("fresh.fa"));
    snprintf(prefix, sizeof prefix, "%s", vnp_test_tmp("seq"));
    write_orfs(viral, "v", 80, 1, 1);
    write_orfs(other, "o", 80, 0, 2);
    /* fresh records: 10 viral-like then 10 other */
    char fv[1024], fo[1024];
    snprintf(fv, sizeof fv, "%s", vnp_test_tmp("fresh_v.fa"));
    snprintf(fo, sizeof fo, "%s", vnp_test_tmp("fresh_o.fa"));
    write_orfs(fv, "fv", 10, 1, 11);
    write_orfs(fo, "fo", 10, 0, 12);
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", fv, fo, fresh);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    char esm[4096], dnabert[4096];
    snprintf(esm, sizeof esm, "%s", vnp_test_fixture("golden/esm2"));
    snprintf(dnabert, sizeof dnabert, "%s", vnp_test_fixture("golden/dnabert_s"));
    snprintf(cmd, sizeof cmd,
             "'%s' train --viral '%s' --other '%s' -l 300 -o '%s' --esm '%s' --dnabert '%s' "
             "--device cpu -t 2 --epochs 30 --seed 1 --lr 0.01",
             vnp_test_cli(), viral, other, prefix, esm, dnabert);
    char *serr = NULL;
    int rc = vnp_test_run(cmd, NULL, &serr);
    if (rc)
        fail_msg("train failed (%d): %s", rc, serr ? serr : "");
    print_message("%s", serr);
    free(serr);
    /* the cache holds predict's feature rows: viral rows first, then the other ones */
    snprintf(cmd, sizeof cmd,
             "'%s' predict -q -l 300 -o '%s' --esm '%s' --dnabert '%s' --classifier '%s.safetensors' "
             "--device cpu -t 2 --embeddings '%s'",
             vnp_test_cli(), vnp_test_tmp("pred_viral"), esm, dnabert, prefix, viral);
    serr = NULL;
    if ((rc = vnp_test_run(cmd, NULL, &serr)))
        fail_msg("predict failed (%d): %s", rc, serr ? serr : "");
    free(serr);
    /* the same rows from predict --embeddings of each file (--viral-features and
     * --other-features) and from the cache (--features) train the same model, byte for
     * byte, as the run from sequences did */
    snprintf(cmd, sizeof cmd,
             "'%s' predict -q -l 300 -o '%s' --esm '%s' --dnabert '%s' --classifier '%s.safetensors' "
             "--device cpu -t 2 --embeddings '%s'",
             vnp_test_cli(), vnp_test_tmp("pred_other"), esm, dnabert, prefix, other);
    serr = NULL;
    if ((rc = vnp_test_run(cmd, NULL, &serr)))
        fail_msg("predict failed (%d): %s", rc, serr ? serr : "");
    free(serr);
    char again[1100];
    const char *train_opts = "-t 2 --epochs 30 --seed 1 --lr 0.01";
    snprintf(again, sizeof again, "%s", vnp_test_tmp("seq_from_predict"));
    snprintf(cmd, sizeof cmd,
             "'%s' train -q --viral-features '%s' --other-features '%s' -o '%s' %s",
             vnp_test_cli(), vnp_test_tmp("pred_viral/merged_features.safetensors"),
             vnp_test_tmp("pred_other/merged_features.safetensors"), again, train_opts);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    char got[1200], want[1200];
    snprintf(got, sizeof got, "%s.safetensors", again);
    snprintf(want, sizeof want, "%s.safetensors", prefix);
    vnp_test_assert_files_equal(got, want);
    snprintf(again, sizeof again, "%s", vnp_test_tmp("seq_from_cache"));
    snprintf(cmd, sizeof cmd, "'%s' train -q --features '%s.features.safetensors' -o '%s' %s",
             vnp_test_cli(), prefix, again, train_opts);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(got, sizeof got, "%s.safetensors", again);
    vnp_test_assert_files_equal(got, want);
    snprintf(got, sizeof got, "%s.log.tsv", again);
    snprintf(want, sizeof want, "%s.log.tsv", prefix);
    vnp_test_assert_files_equal(got, want);

    vnp_train_data cache, pv;
    memset(&cache, 0, sizeof cache);
    memset(&pv, 0, sizeof pv);
    vnp_error err;
    char p[1200];
    snprintf(p, sizeof p, "%s.features.safetensors", prefix);
    assert_int_equal(vnp_train_data_append(p, -1, &cache, &err), VNP_OK);
    assert_int_equal(vnp_train_data_append(vnp_test_tmp("pred_viral/merged_features.safetensors"),
                                           1, &pv, &err),
                     VNP_OK);
    assert_true(pv.n > 0 && cache.n > pv.n && cache.width == 256 && pv.width == 256);
    assert_memory_equal(cache.x, pv.x, pv.n * 256 * sizeof(float));
    for (size_t i = 0; i < cache.n; i++)
        assert_int_equal(cache.y[i], i < pv.n);
    vnp_train_data_free(&cache);
    vnp_train_data_free(&pv);
    /* the validation AUROC of the kept epoch */
    snprintf(p, sizeof p, "%s.heldout.tsv", prefix);
    char *ho = vnp_test_read_file(p, NULL);
    assert_non_null(ho);
    const char *a = strstr(ho, "\nauroc\t");
    assert_non_null(a);
    double auroc = strtod(a + 7, NULL);
    print_message("validation AUROC %g\n", auroc);
    assert_true(auroc > 0.9);
    free(ho);
    /* predict with the trained classifier on fresh sequences: sequences.tsv verdicts */
    snprintf(cmd, sizeof cmd,
             "'%s' predict -q -l 300 -o '%s' --esm '%s' --dnabert '%s' --classifier '%s.safetensors' "
             "--device cpu -t 2 '%s'",
             vnp_test_cli(), vnp_test_tmp("pred_fresh"), esm, dnabert, prefix, fresh);
    serr = NULL;
    if ((rc = vnp_test_run(cmd, NULL, &serr)))
        fail_msg("predict failed (%d): %s", rc, serr ? serr : "");
    free(serr);
    char *seqs = vnp_test_read_file(vnp_test_tmp("pred_fresh/sequences.tsv"), NULL);
    assert_non_null(seqs);
    int right = 0, total = 0;
    char *save = NULL;
    for (char *line = strtok_r(seqs, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "Sequence_ID", 11))
            continue;
        const char *verdict = strrchr(line, '\t');
        assert_non_null(verdict);
        int is_v = !strncmp(line, "fv_", 3);
        right += (is_v && !strcmp(verdict + 1, "virus")) || (!is_v && !strcmp(verdict + 1, "others"));
        total++;
    }
    print_message("fresh sequences called right: %d of %d\n", right, total);
    assert_int_equal(total, 20);
    assert_true(right >= 18);
    free(seqs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_defaults),
        cmocka_unit_test(test_replay_schedule),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_killed_outputs),
        cmocka_unit_test(test_from_sequences),
        cmocka_unit_test(test_resume_features),
        cmocka_unit_test(test_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
