/* The multi-worker compute engine through the CLI (--device LIST, one worker per
 * entry): several CPU workers give byte-identical files to one worker (predict on the
 * golden set and on 2000 bench reads, with and without --embeddings; embed with both
 * encoders); a worker that fails (VIRNUCPRO_DEBUG_FAIL_WORKER) is retired and the
 * output stays identical; when every worker fails the run exits 1 and --resume
 * finishes it (or starts over when nothing was completed); --device errors.
 *
 * All workers are "cpu" with -t 1, so every batch is computed by the same code with
 * the same blocking whichever worker takes it: the files must be equal byte for byte,
 * not within a tolerance. */
#include "test_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G "golden/"

/* Under the sanitizers the compute kernels run ~3x (ASan + UBSan) to ~20x (TSan) slower:
 * the bench-reads case uses the first SANITIZER_READS of its 2000 records there (the same
 * options, 5 windows of 32 reads for 3 workers: the same code paths, reordering included;
 * scripts/test.sh runs this test in the ASan and TSan builds). Every assertion is the
 * same; Release runs all 2000 records and checks their count of ORFs. */
#define SANITIZER_READS 150
#define VNP_STR_(x) #x
#define VNP_STR(x) VNP_STR_(x)
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

/* Golden set: 41 batches (300 tokens hold one ORF of a 500-bp chunk) in windows of
 * about 4 ORFs. Windows must be small for the reorder to matter: with several workers
 * a later window then often completes before an earlier one (a copy of the engine
 * whose vnp_engine_pop took any completed window passed with --window 8 and failed
 * 5 of 5 with --window 4; likewise --window 256 / 32 for the bench reads). */
#define GOLDEN_OPTS "-l 500 --batch-tokens 300 --window 4"
/* One chunk with ORFs per window (see test_every_worker_fails). */
#define W1_OPTS "-l 500 --batch-tokens 300 --window 1"
#define BENCH_OPTS "-l 300 --window 32 --batch-tokens 512 --embeddings"

static const char *const OUTPUTS[] = {"prediction_results.txt",
                                      "prediction_results_highestscore.csv", "sequences.tsv",
                                      "merged_features.safetensors"};

static char models[3][4096];
static char golden_input[4096]; /* tests/fixtures/golden/input.fa */

static int setup(void **state)
{
    (void)state;
    snprintf(models[0], sizeof models[0], "%s", vnp_test_fixture(G "esm2"));
    snprintf(models[1], sizeof models[1], "%s", vnp_test_fixture(G "dnabert_s"));
    snprintf(models[2], sizeof models[2], "%s", vnp_test_fixture(G "classifier.pth"));
    snprintf(golden_input, sizeof golden_input, "%s", vnp_test_fixture(G "input.fa"));
    /* only the runs that set them on their command line may see the debug switches */
    unsetenv("VIRNUCPRO_DEBUG_FAIL_WORKER");
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    return 0;
}

static const char *out(const char *dir, const char *name)
{
    return vnp_test_tmp_in(dir, name);
}

/* `env` (e.g. "VIRNUCPRO_DEBUG_FAIL_WORKER=1:2", or "") virnucpro predict with the golden
 * models, -t 1, --device `dev`, `opts` on `input` into tmp/dir. Returns the exit code;
 * stderr in *err. */
static int predict(const char *env, const char *dir, const char *dev, const char *opts,
                   const char *input, char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "%s '%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' -t 1 "
             "--device %s %s '%s'",
             env, vnp_test_cli(), vnp_test_tmp(dir), models[0], models[1], models[2], dev, opts,
             input);
    return vnp_test_run(cmd, NULL, err);
}

static void predict_ok(const char *dir, const char *dev, const char *opts, const char *input)
{
    char *err = NULL;
    int rc = predict("", dir, dev, opts, input, &err);
    if (rc != 0)
        fail_msg("predict --device %s %s: exit %d: %s", dev, opts, rc, err);
    assert_null(strstr(err, "failed"));
    free(err);
}

/* The three prediction files (and merged_features.safetensors when `features`) of two
 * runs are byte-identical. */
static void assert_same_outputs(const char *dir, const char *ref, int features)
{
    for (int i = 0; i < (features ? 4 : 3); i++)
        vnp_test_assert_files_equal(out(dir, OUTPUTS[i]), out(ref, OUTPUTS[i]));
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Occurrences of s in text. */
static int count(const char *text, const char *s)
{
    int n = 0;
    for (const char *p = strstr(text, s); p; p = strstr(p + 1, s))
        n++;
    return n;
}

static void assert_has(const char *text, const char *s)
{
    if (!strstr(text, s))
        fail_msg("expected \"%s\" in:\n%s", s, text);
}

/* Entries of a directory other than . and .. (-1 when it cannot be opened). */
static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* The single-worker references, computed once. */
static void reference_runs(void)
{
    static int done;
    if (done)
        return;
    const char *in = golden_input;
    predict_ok("ref", "cpu", GOLDEN_OPTS, in);
    predict_ok("ref_emb", "cpu", GOLDEN_OPTS " --embeddings", in);
    /* the same scores whether or not the features are wanted */
    assert_same_outputs("ref_emb", "ref", 0);
    assert_false(exists(out("ref", OUTPUTS[3])));
    done = 1;
}

/* 1. three CPU workers = one CPU worker, byte for byte */
static void test_golden_three_workers(void **state)
{
    (void)state;
    reference_runs();
    const char *in = golden_input;
    char *err = NULL;
    int rc = predict("", "cpu3", "cpu,cpu,cpu", GOLDEN_OPTS, in, &err);
    if (rc)
        fail_msg("exit %d: %s", rc, err);
    /* three workers did run, and none was retired */
    assert_has(err, "virnucpro: predict: 21 records, 57 chunks, 41 ORFs scored");
    assert_has(err, "; on cpu (1 thread), cpu (1 thread), cpu (1 thread)\n");
    assert_null(strstr(err, "retired"));
    free(err);
    assert_same_outputs("cpu3", "ref", 0);

    rc = predict("", "cpu3_emb", "cpu,cpu,cpu", GOLDEN_OPTS " --embeddings", in, &err);
    if (rc)
        fail_msg("exit %d: %s", rc, err);
    assert_has(err, "; on cpu (1 thread), cpu (1 thread), cpu (1 thread)\n");
    free(err);
    assert_same_outputs("cpu3_emb", "ref_emb", 1);
}

/* A copy of the first n records of a FASTA text into tmp/name. */
static const char *first_records(const char *gz, size_t n, const char *name)
{
    static char path[4096];
    size_t len;
    char *t = vnp_test_read_file(gz, &len);
    assert_non_null(t);
    size_t seen = 0, end = len;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '>' && (i == 0 || t[i - 1] == '\n') && seen++ == n) {
            end = i;
            break;
        }
    assert_int_equal(seen, n + 1); /* the input has more than n records */
    snprintf(path, sizeof path, "%s", vnp_test_tmp(name));
    assert_int_equal(vnp_test_write_file(path, t, end), 0);
    free(t);
    return path;
}

/* 2. the same on 2000 bench reads (tests/fixtures/bench/reads2k.fa.gz: the first 2000
 * records of reads20k.fa.gz, 35-150 bp reads of E. coli and phage lambda), chunk 300 */
static void test_bench_reads_three_workers(void **state)
{
    (void)state;
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_fixture("bench/reads2k.fa.gz"));
    const char *summary = "virnucpro: predict: 2000 records, 2000 chunks, 3561 ORFs scored";
    if (SANITIZER_BUILD) {
        snprintf(in, sizeof in, "%s", first_records(in, SANITIZER_READS, "reads_sample.fa"));
        summary = "virnucpro: predict: " VNP_STR(SANITIZER_READS) " records, "
                  VNP_STR(SANITIZER_READS) " chunks, ";
    }
    char *err = NULL;
    int rc = predict("", "reads1", "cpu", BENCH_OPTS, in, &err);
    if (rc)
        fail_msg("exit %d: %s", rc, err);
    assert_has(err, summary);
    free(err);
    rc = predict("", "reads3", "cpu,cpu,cpu", BENCH_OPTS, in, &err);
    if (rc)
        fail_msg("exit %d: %s", rc, err);
    assert_has(err, summary);
    assert_has(err, "; on cpu (1 thread), cpu (1 thread), cpu (1 thread)\n");
    assert_null(strstr(err, "retired"));
    free(err);
    assert_same_outputs("reads3", "reads1", 1);
}

/* 3. one worker of three fails (at its 2nd batch, then at its 1st): it is retired, its
 * batches are computed by the others, the files are unchanged */
static void check_one_retired(const char *spec, const char *dir, const char *opts,
                              const char *ref, int features)
{
    char env[128], *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_DEBUG_FAIL_WORKER=%s", spec);
    int rc = predict(env, dir, "cpu,cpu,cpu", opts, golden_input, &err);
    if (rc)
        fail_msg("%s: exit %d: %s", spec, rc, err);
    assert_has(err, "worker 1 (cpu) failed and is retired: batch ");
    assert_has(err, ": injected device failure (VIRNUCPRO_DEBUG_FAIL_WORKER); ");
    assert_has(err, " back in the queue, 2 workers left\n");
    assert_has(err, "(some workers failed and were retired: see above)\n");
    /* only worker 1 */
    assert_int_equal(count(err, "failed and is retired"), 1);
    assert_int_equal(count(err, "injected device failure"), 1);
    assert_null(strstr(err, "every worker"));
    free(err);
    assert_same_outputs(dir, ref, features);
}

static void test_one_worker_fails(void **state)
{
    (void)state;
    reference_runs();
    check_one_retired("1:2", "fail12", GOLDEN_OPTS, "ref", 0);
    check_one_retired("1:2", "fail12_emb", GOLDEN_OPTS " --embeddings", "ref_emb", 1);
    check_one_retired("1:1", "fail11", GOLDEN_OPTS, "ref", 0);
}

/* 4. every worker fails: exit 1; --resume finishes the run (the same files as a run
 * that was never interrupted).
 *
 * With --window 1 every window holds one chunk that has ORFs (and up to 3 without),
 * at most 4 ORFs: any 7 windows of the golden set hold at most 16 batches. Two workers
 * keep at most 3 + 2 x 2 = 7 windows alive, and a window stops being alive only when
 * the writer has written and journaled it. Failing at their
 * 10th batch, the two workers take at least 10 + 8 distinct batches (the survivor
 * re-takes at most the 2 the first gives back), more than 7 windows hold: so the
 * writer has written the first window before the last worker fails, and that window
 * is the whole first record (lambda_dev_0, one chunk): the journal exists and the
 * error says --resume, whatever the scheduling. (With 0:3,1:3 it is a race: the
 * engine drops completed windows that the writer has not taken yet when the last
 * worker fails, and then the run may end with nothing journaled.) */
/* A failed run left no output in tmp/dir: only run.json, saying it failed. */
static void assert_only_failure_record(const char *dir)
{
    char cmd[8192], *o = NULL;
    snprintf(cmd, sizeof cmd, "ls -A '%s'", vnp_test_tmp(dir));
    assert_int_equal(vnp_test_run(cmd, &o, NULL), 0);
    assert_string_equal(o, "run.json\n");
    free(o);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/run.json", dir);
    char *j = vnp_test_read_file(vnp_test_tmp(rel), NULL);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"status\":\t\"failed\""));
    free(j);
}

static void test_every_worker_fails(void **state)
{
    (void)state;
    const char *in = golden_input;
    predict_ok("ref_w1", "cpu,cpu", W1_OPTS, in);

    char *err = NULL;
    int rc = predict("VIRNUCPRO_DEBUG_FAIL_WORKER=0:10,1:10", "all10", "cpu,cpu", W1_OPTS, in,
                     &err);
    assert_int_equal(rc, 1);
    assert_has(err, "worker 0 (cpu) failed and is retired: batch ");
    assert_has(err, "worker 1 (cpu) failed and is retired: batch ");
    assert_has(err, " back in the queue, 0 workers left\n");
    assert_has(err, "virnucpro: error: every worker has failed (the last, cpu: batch ");
    assert_has(err, ": injected device failure (VIRNUCPRO_DEBUG_FAIL_WORKER)); the rows of the "
                    "first ");
    assert_has(err, "run the same command with --resume to go on from there\n");
    free(err);
    assert_true(exists(out("all10", "predict.journal")));
    assert_true(exists(out("all10", "prediction_results.txt.part")));
    assert_false(exists(out("all10", "prediction_results.txt")));
    assert_false(exists(out("all10", "prediction_results_highestscore.csv")));

    rc = predict("", "all10", "cpu,cpu", W1_OPTS " --resume", in, &err);
    if (rc)
        fail_msg("--resume: exit %d: %s", rc, err);
    assert_null(strstr(err, "nothing to resume"));
    assert_null(strstr(err, "failed"));
    free(err);
    assert_same_outputs("all10", "ref_w1", 0);
    assert_false(exists(out("all10", "predict.journal")));
    assert_false(exists(out("all10", "prediction_results.txt.part")));

    /* every worker fails at its first batch: nothing computed, nothing kept */
    rc = predict("VIRNUCPRO_DEBUG_FAIL_WORKER=0:1,1:1", "all1", "cpu,cpu", W1_OPTS, in, &err);
    assert_int_equal(rc, 1);
    assert_has(err, "worker 0 (cpu) failed and is retired: batch ");
    assert_has(err, "worker 1 (cpu) failed and is retired: batch ");
    assert_has(err, "virnucpro: error: every worker has failed (the last, cpu: batch ");
    assert_null(strstr(err, "--resume")); /* nothing to resume from */
    free(err);
    /* no output kept: the directory this run made holds only the run's record */
    assert_only_failure_record("all1");

    rc = predict("", "all1", "cpu,cpu", W1_OPTS " --resume", in, &err);
    if (rc)
        fail_msg("--resume: exit %d: %s", rc, err);
    assert_has(err, "virnucpro: warning: --resume: nothing to resume in ");
    assert_has(err, " (no record was completed, or nothing ran there); starting from the "
                    "beginning\n");
    free(err);
    assert_same_outputs("all1", "ref_w1", 0);
}

/* `env` virnucpro embed --model golden/<model> -t 1 --device dev --batch-tokens budget
 * input -o tmp/<name>. */
static int embed(const char *env, const char *model, const char *dev, int budget,
                 const char *input, const char *name, char **err)
{
    char cmd[16384], m[4096], o[4096];
    snprintf(m, sizeof m, "%s", vnp_test_fixture(model));
    snprintf(o, sizeof o, "%s", vnp_test_tmp(name));
    snprintf(cmd, sizeof cmd, "%s '%s' embed --model '%s' -t 1 --device %s --batch-tokens %d "
             "-o '%s' '%s'",
             env, vnp_test_cli(), m, dev, budget, o, input);
    return vnp_test_run(cmd, NULL, err);
}

/* 5. embed: three workers = one; a retired worker changes nothing; every worker
 * failing leaves no file */
static void check_embed(const char *model, const char *input, int budget, const char *tag)
{
    char one[256], three[256], retired[256], dead[256], *err = NULL;
    snprintf(one, sizeof one, "%s_1/out.safetensors", tag);
    snprintf(three, sizeof three, "%s_3/out.safetensors", tag);
    snprintf(retired, sizeof retired, "%s_fail/out.safetensors", tag);
    snprintf(dead, sizeof dead, "%s_dead", tag);
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_fixture(input));
    char mk[8192];
    snprintf(mk, sizeof mk, "mkdir -p '%s_1' '%s_3' '%s_fail' '%s_dead'", vnp_test_tmp(tag),
             vnp_test_tmp(tag), vnp_test_tmp(tag), vnp_test_tmp(tag));
    assert_int_equal(vnp_test_run(mk, NULL, NULL), 0);

    int rc = embed("", model, "cpu", budget, in, one, &err);
    if (rc)
        fail_msg("%s: exit %d: %s", tag, rc, err);
    assert_has(err, "virnucpro: embed: 41 records, ");
    free(err);
    rc = embed("", model, "cpu,cpu,cpu", budget, in, three, &err);
    if (rc)
        fail_msg("%s: exit %d: %s", tag, rc, err);
    assert_has(err, " on cpu (1 thread), cpu (1 thread), cpu (1 thread); model loaded in ");
    assert_null(strstr(err, "retired"));
    free(err);
    char want[4096];
    snprintf(want, sizeof want, "%s", vnp_test_tmp(one));
    vnp_test_assert_files_equal(vnp_test_tmp(three), want);

    rc = embed("VIRNUCPRO_DEBUG_FAIL_WORKER=1:2", model, "cpu,cpu,cpu", budget, in, retired,
               &err);
    if (rc)
        fail_msg("%s 1:2: exit %d: %s", tag, rc, err);
    assert_has(err, "worker 1 (cpu) failed and is retired: batch ");
    assert_has(err, ": injected device failure (VIRNUCPRO_DEBUG_FAIL_WORKER); ");
    assert_has(err, " back in the queue, 2 workers left\n");
    assert_int_equal(count(err, "failed and is retired"), 1);
    assert_has(err, "virnucpro: embed: 41 records, ");
    free(err);
    vnp_test_assert_files_equal(vnp_test_tmp(retired), want);

    char dead_out[512];
    snprintf(dead_out, sizeof dead_out, "%s/out.safetensors", dead);
    rc = embed("VIRNUCPRO_DEBUG_FAIL_WORKER=0:2,1:1,2:1", model, "cpu,cpu,cpu", budget, in,
               dead_out, &err);
    assert_int_equal(rc, 1);
    assert_int_equal(count(err, "failed and is retired"), 3);
    assert_has(err, " back in the queue, 0 workers left\n");
    assert_has(err, "virnucpro: error: every worker has failed (the last, cpu: batch ");
    assert_null(strstr(err, "virnucpro: embed: 41 records"));
    free(err);
    /* neither the file nor its temporary parts are left */
    assert_int_equal(dir_entries(vnp_test_tmp(dead)), 0);
}

static void test_embed_workers(void **state)
{
    (void)state;
    /* ESM-2: 41 proteins of ~166 residues, one per 300-token batch */
    check_embed(G "esm2", G "preprocess_500/dev_identified_protein.faa", 300, "esm");
    /* DNABERT-S: 41 ORFs of ~88 tokens, one per 100-token batch */
    check_embed(G "dnabert_s", G "preprocess_500/dev_identified_nucleotide.fa", 100, "dna");
}

/* Whether a CUDA GPU is visible to this build ('--device auto' says where it computes;
 * the run then stops at the missing input). */
static int gpu_visible(void)
{
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' "
             "--device auto '%s'",
             vnp_test_cli(), vnp_test_tmp("probe"), models[0], models[1], models[2],
             vnp_test_tmp("no_such_input.fa"));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    assert_has(err, "no_such_input.fa");
    int cpu = strstr(err, "--device auto: no CUDA GPU visible; computing on the CPU") != NULL;
    int gpu = strstr(err, "--device auto: ") != NULL && !cpu;
    assert_true(cpu || gpu);
    free(err);
    return gpu;
}

/* 6. --device errors through the CLI */
static void test_device_errors(void **state)
{
    (void)state;
    char cmd[16384], *err = NULL;
    const char *in = golden_input;
    const char *accepted = "use auto, cpu, cuda or cuda:N (comma-separated for several workers, "
                           "e.g. cuda:0,cuda:1)\n";
    /* predict checks --device with its options: a usage error (2) before any model */
    snprintf(cmd, sizeof cmd, "'%s' predict --device gpu -o '%s' '%s'", vnp_test_cli(),
             vnp_test_tmp("dev_gpu"), in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "virnucpro: error: --device: unknown device 'gpu'; ");
    assert_has(err, accepted);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --device cpu,gpu,cpu -o '%s' '%s'", vnp_test_cli(),
             vnp_test_tmp("dev_gpu"), in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "unknown device 'gpu'; ");
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --device cpu,,cpu -o '%s' '%s'", vnp_test_cli(),
             vnp_test_tmp("dev_gpu"), in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "virnucpro: error: --device 'cpu,,cpu': expected a comma-separated list of "
                    "auto, cpu, cuda or cuda:N\n");
    free(err);
    assert_false(exists(vnp_test_tmp("dev_gpu")));
    /* embed checks it with the options too: a usage error, exit 2 */
    snprintf(cmd, sizeof cmd, "'%s' embed --model '%s' --device gpu -o '%s' '%s'", vnp_test_cli(),
             vnp_test_fixture(G "esm2"), vnp_test_tmp("dev_gpu.safetensors"), in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "virnucpro: error: --device: unknown device 'gpu'; ");
    assert_has(err, accepted);
    free(err);
    assert_false(exists(vnp_test_tmp("dev_gpu.safetensors")));

    if (gpu_visible())
        skip(); /* the rest needs a machine without a usable GPU (as CI) */
    /* 'cuda' = every visible GPU: none here, whether this build has the CUDA backend
     * (and no driver or no GPU) or not */
    const char *none = "--device cuda: no CUDA GPU is visible here (or this build has no CUDA "
                       "backend); use --device cpu\n";
    snprintf(cmd, sizeof cmd, "'%s' predict --device cuda -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' '%s'",
             vnp_test_cli(), vnp_test_tmp("dev_cuda"), models[0], models[1], models[2], in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, none);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --device cpu,cuda -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' '%s'",
             vnp_test_cli(), vnp_test_tmp("dev_cuda"), models[0], models[1], models[2], in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, none);
    free(err);
    assert_false(exists(vnp_test_tmp("dev_cuda")));
    snprintf(cmd, sizeof cmd, "'%s' embed --model '%s' --device cuda -o '%s' '%s'",
             vnp_test_cli(), vnp_test_fixture(G "esm2"), vnp_test_tmp("dev_cuda.safetensors"),
             in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, none);
    free(err);
    assert_false(exists(vnp_test_tmp("dev_cuda.safetensors")));
    /* CPU and GPU workers together: refused as a usage error (their results differ in the
     * last bits, so the bytes would depend on the scheduling) */
    snprintf(cmd, sizeof cmd, "'%s' predict --device cpu,cuda:0 -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' '%s'",
             vnp_test_cli(), vnp_test_tmp("dev_cuda0"), models[0], models[1], models[2], in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "virnucpro: error: --device 'cpu,cuda:0' mixes CPU and GPU workers; their "
                    "results differ in the last bits");
    free(err);
    assert_false(exists(vnp_test_tmp("dev_cuda0")));
    /* 'cuda:0' names a GPU: the backend says why it cannot have it (no CUDA backend
     * compiled in, or no usable GPU / driver) */
    snprintf(cmd, sizeof cmd, "'%s' predict --device cuda:0,cuda:0 -o '%s' --esm '%s' "
             "--dnabert '%s' --classifier '%s' '%s'",
             vnp_test_cli(), vnp_test_tmp("dev_cuda0"), models[0], models[1], models[2], in);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    /* (with several workers, the failing one's device leads the message) */
    int no_backend = strstr(err, "virnucpro: error: device 'cuda:0': this virnucpro was built "
                                 "without the CUDA backend; rebuild where nvcc is installed or "
                                 "use --device cpu\n") != NULL;
    int no_gpu = strstr(err, "virnucpro: error: cuda:0: no CUDA GPU is usable here (") != NULL &&
                 strstr(err, "); run with --device cpu\n") != NULL;
    if (no_backend == no_gpu)
        fail_msg("unexpected message for --device cuda:0,cuda:0: %s", err);
    free(err);
    assert_only_failure_record("dev_cuda0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_three_workers),
        cmocka_unit_test(test_bench_reads_three_workers),
        cmocka_unit_test(test_one_worker_fails),
        cmocka_unit_test(test_every_worker_fails),
        cmocka_unit_test(test_embed_workers),
        cmocka_unit_test(test_device_errors),
    };
    return vnp_test_run_tests(tests, setup, NULL); /* ctest: two entries (SPLIT) */
}
