/* `virnucpro predict` end to end with the golden models: the original tool's two
 * output files, sequences.tsv, the merged features, independence from the batch
 * size, stdin, defaults, progress, and clear errors for bad models; the derived outputs
 * (sequences.tsv, chunks.tsv, viral_regions.bed, viral.fna) byte for byte against the
 * independent reference tools/make_derived_expected.py run on predict's own rows, with
 * and without --min-score, duplicate IDs, stdin; `classify` on predict's directory gives
 * predict's files. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "virnucpro.h"
#include "virnucpro/tensor.h"
#include "virnucpro/weights.h"

#define G "golden/"

static char models[3][4096];

static int setup(void **state)
{
    (void)state;
    snprintf(models[0], sizeof models[0], "%s", vnp_test_fixture(G "esm2"));
    snprintf(models[1], sizeof models[1], "%s", vnp_test_fixture(G "dnabert_s"));
    snprintf(models[2], sizeof models[2], "%s", vnp_test_fixture(G "classifier.pth"));
    return 0;
}

/* Runs predict with the golden models plus `extra` on `input` into tmp/dir. */
static int predict(const char *dir, const char *extra, const char *input, char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' predict -l 500 -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' -t 2 %s %s",
             vnp_test_cli(), vnp_test_tmp(dir), models[0], models[1], models[2], extra, input);
    return vnp_test_run(cmd, NULL, err);
}

static const char *out(const char *dir, const char *name)
{
    return vnp_test_tmp_in(dir, name);
}

typedef struct rows {
    char (*id)[96];
    char (*label)[16];
    double (*p)[2];
    size_t n;
} rows;

static rows read_results(const char *path)
{
    char *t = vnp_test_read_file(path, NULL);
    if (!t)
        fail_msg("cannot read %s", path);
    rows r;
    r.id = calloc(4096, sizeof *r.id);
    r.label = calloc(4096, sizeof *r.label);
    r.p = calloc(4096, sizeof *r.p);
    r.n = 0;
    char *save = NULL, *line = strtok_r(t, "\n", &save);
    assert_string_equal(line, "Sequence_ID\tPrediction\tscore1\tscore2");
    while ((line = strtok_r(NULL, "\n", &save))) {
        assert_true(r.n < 4096);
        assert_int_equal(sscanf(line, "%95s %15s %lf %lf", r.id[r.n], r.label[r.n],
                                &r.p[r.n][0], &r.p[r.n][1]),
                         4);
        r.n++;
    }
    free(t);
    return r;
}

static void free_rows(rows *r)
{
    free(r->id);
    free(r->label);
    free(r->p);
}

/* Same IDs, order and labels; every score within tol.
 * SCORE_TOL: the reference ran the classifier one ORF at a time; predict runs it as a
 * batched FP32 GEMM on the worker's device, as PyTorch does on a batch (PyTorch's own
 * batched scores are 1.2e-5 off its row-by-row file: the golden classifier's BatchNorm
 * scales float rounding ~100x, logits near -105). Labels and the highest-score file
 * stay exact. Measured: 1.32e-5. */
#define SCORE_TOL 2e-5
static void assert_same_results(const char *got_path, const char *want_path, double tol)
{
    rows a = read_results(got_path), b = read_results(want_path);
    assert_int_equal(a.n, b.n);
    double worst = 0;
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.id[i], b.id[i]);
        assert_string_equal(a.label[i], b.label[i]);
        for (int k = 0; k < 2; k++) {
            double d = fabs(a.p[i][k] - b.p[i][k]);
            worst = d > worst ? d : worst;
            if (d > tol)
                fail_msg("%s score%d: %.9g vs %.9g (|d| %.3g > %.3g)", a.id[i], k + 1,
                         a.p[i][k], b.p[i][k], d, tol);
        }
    }
    print_message("%zu rows, max |score difference| %.3g\n", a.n, worst);
    free_rows(&a);
    free_rows(&b);
}


static const char *const DERIVED[4] = {"sequences.tsv", "chunks.tsv", "viral_regions.bed",
                                       "viral.fna"};

/* tools/make_derived_expected.py on tmp/dir's prediction_results.txt and `input` into
 * tmp/<dir>_ref, then every derived file of tmp/dir must be its bytes. extra: reference
 * options ("--min-score 0.8", "--chunked FILE"). */
static void assert_derived_match_reference(const char *dir, const char *input, int len,
                                           const char *extra)
{
    const char *py = getenv("VNP_PYTHON");
    assert_non_null(py);
    char ref[512], cmd[16384], *err = NULL;
    snprintf(ref, sizeof ref, "%s_ref", dir);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/make_derived_expected.py' '%s' '%s' %d '%s' %s",
             py, getenv("VNP_SOURCE_DIR"), input, out(dir, "prediction_results.txt"), len,
             vnp_test_tmp(ref), extra);
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("tools/make_derived_expected.py failed: %s", err);
    free(err);
    for (int i = 0; i < 4; i++)
        vnp_test_assert_files_equal(out(dir, DERIVED[i]), out(ref, DERIVED[i]));
}

static size_t count_of(const char *path, const char *needle)
{
    char *t = vnp_test_read_file(path, NULL);
    assert_non_null(t);
    size_t n = 0;
    for (const char *p = t; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(t);
    return n;
}

static void test_golden_500(void **state)
{
    (void)state;
    char *err = NULL;
    int rc = predict("golden", "--embeddings", vnp_test_fixture(G "input.fa"), &err);
    if (rc)
        fail_msg("predict failed (%d): %s", rc, err);
    assert_same_results(out("golden", "prediction_results.txt"),
                        vnp_test_fixture(G "expected/prediction_results.txt"), SCORE_TOL);
    vnp_test_assert_files_equal(out("golden", "prediction_results_highestscore.csv"),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
    /* the one-line summary; no progress line when stderr is not a terminal */
    assert_non_null(strstr(err, "virnucpro: predict: 21 records, 57 chunks, 41 ORFs scored"));
    assert_non_null(strstr(err, "peak RSS"));
    assert_null(strstr(err, "\r"));
    free(err);
}

static void test_golden_features(void **state)
{
    (void)state;
    /* the merged [DNABERT-S | ESM-2] features against the reference's merged tensor */
    vnp_tensor_map *got, *want;
    vnp_error e;
    if (vnp_safetensors_load(out("golden", "merged_features.safetensors"), &got, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(vnp_safetensors_load(vnp_test_fixture(G "expected/tensors.safetensors"),
                                          &want, &e),
                     VNP_OK);
    const vnp_tensor *f = vnp_tensor_map_get(got, "features");
    const vnp_tensor *m = vnp_tensor_map_get(want, "merged");
    assert_non_null(f);
    assert_non_null(m);
    assert_int_equal(f->shape[0], 41);
    assert_int_equal(f->shape[1], 256);
    assert_int_equal(m->shape[0], 41);
    const float *a = f->data, *b = m->data;
    for (int i = 0; i < 41; i++) {
        double num = 0, den = 0;
        for (int k = 0; k < 256; k++) {
            double d = (double)a[i * 256 + k] - (double)b[i * 256 + k];
            num += d * d;
            den += (double)b[i * 256 + k] * (double)b[i * 256 + k];
        }
        if (sqrt(num / den) > 1e-5)
            fail_msg("features row %d: relative L2 %.3g", i, sqrt(num / den));
    }
    /* ids in prediction_results.txt order */
    const vnp_tensor *ids = vnp_tensor_map_get(got, "ids");
    assert_non_null(ids);
    rows r = read_results(out("golden", "prediction_results.txt"));
    const char *p = ids->data;
    for (size_t i = 0; i < r.n; i++) {
        size_t n = strlen(r.id[i]);
        assert_memory_equal(p, r.id[i], n);
        assert_int_equal(p[n], '\n');
        p += n + 1;
    }
    assert_ptr_equal(p, (const char *)ids->data + ids->nbytes);
    free_rows(&r);
    vnp_tensor_map_free(got);
    vnp_tensor_map_free(want);
}

static void test_golden_sequences(void **state)
{
    (void)state;
    /* golden_sequences_500.tsv was computed by tools/make_sequences_expected.py from the
     * original's prediction_results.txt: all columns exact, scores within SCORE_TOL */
    char src[4096];
    snprintf(src, sizeof src, "%s/tests/pipeline/golden_sequences_500.tsv",
             getenv("VNP_SOURCE_DIR"));
    char *got = vnp_test_read_file(out("golden", "sequences.tsv"), NULL);
    char *want = vnp_test_read_file(src, NULL);
    assert_non_null(got);
    assert_non_null(want);
    char *s1 = NULL, *s2 = NULL;
    char *a = strtok_r(got, "\n", &s1), *b = strtok_r(want, "\n", &s2);
    size_t lines = 0;
    while (a && b) {
        char f1[7][96], f2[7][96];
        assert_int_equal(sscanf(a, "%95s %95s %95s %95s %95s %95s %95s", f1[0], f1[1], f1[2],
                                f1[3], f1[4], f1[5], f1[6]),
                         7);
        assert_int_equal(sscanf(b, "%95s %95s %95s %95s %95s %95s %95s", f2[0], f2[1], f2[2],
                                f2[3], f2[4], f2[5], f2[6]),
                         7);
        for (int k = 0; k < 7; k++) {
            if (k == 5 && lines > 0 && strcmp(f2[5], "NA")) {
                if (fabs(atof(f1[5]) - atof(f2[5])) > SCORE_TOL)
                    fail_msg("%s: max virus score %s vs %s", f1[0], f1[5], f2[5]);
            } else {
                assert_string_equal(f1[k], f2[k]);
            }
        }
        lines++;
        a = strtok_r(NULL, "\n", &s1);
        b = strtok_r(NULL, "\n", &s2);
    }
    assert_null(a);
    assert_null(b);
    assert_int_equal(lines, 22);
    free(got);
    free(want);
}

/* Max relative L2 over rows of two [n, w] float tensors from two feature files. */
static double features_diff(const char *a_path, const char *b_path, size_t *rows_out)
{
    vnp_tensor_map *a, *b;
    vnp_error e;
    if (vnp_safetensors_load(a_path, &a, &e) || vnp_safetensors_load(b_path, &b, &e))
        fail_msg("%s", e.msg);
    const vnp_tensor *x = vnp_tensor_map_get(a, "features"), *y = vnp_tensor_map_get(b, "features");
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->shape[0], y->shape[0]);
    assert_int_equal(x->shape[1], y->shape[1]);
    size_t n = (size_t)x->shape[0], w = (size_t)x->shape[1];
    const float *p = x->data, *q = y->data;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double num = 0, den = 0;
        for (size_t k = 0; k < w; k++) {
            double d = (double)p[i * w + k] - (double)q[i * w + k];
            num += d * d;
            den += (double)q[i * w + k] * (double)q[i * w + k];
        }
        double r = sqrt(num / den);
        worst = r > worst ? r : worst;
    }
    *rows_out = n;
    vnp_tensor_map_free(a);
    vnp_tensor_map_free(b);
    return worst;
}

static void test_batch_size_independence(void **state)
{
    (void)state;
    /* every ORF alone (8 tokens is less than any ORF) vs all in one batch, with 1 and 2
     * threads: the same features within float rounding (1e-6 relative per row), the
     * same labels and per-chunk calls. The scores may differ by more than the features:
     * this golden classifier's BatchNorm scales its hidden layer ~100x (logits near
     * -105), so the 1e-7 rounding differences of a different GEMM blocking move a score
     * by up to ~1e-5 (measured 8.8e-6); they are checked at 2e-5. */
    char *err = NULL;
    const char *in = vnp_test_fixture(G "input.fa");
    if (predict("b8", "--batch-tokens 8 --embeddings", in, &err))
        fail_msg("%s", err);
    free(err);
    if (predict("b1m", "--batch-tokens 1000000 -t 1 --embeddings", in, &err))
        fail_msg("%s", err);
    free(err);
    size_t n;
    double d = features_diff(out("b8", "merged_features.safetensors"),
                             out("b1m", "merged_features.safetensors"), &n);
    print_message("features: %zu rows, max relative L2 difference %.3g\n", n, d);
    assert_int_equal(n, 41);
    assert_true(d < 1e-6);
    assert_same_results(out("b8", "prediction_results.txt"),
                        out("b1m", "prediction_results.txt"), 2e-5);
    vnp_test_assert_files_equal(out("b8", "prediction_results_highestscore.csv"),
                                out("b1m", "prediction_results_highestscore.csv"));
}

static void test_stdin_and_default_outdir(void **state)
{
    (void)state;
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd, "cat '%s' | '%s' predict -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' -q -",
             vnp_test_fixture(G "input.fa"), vnp_test_cli(), vnp_test_tmp("stdin"), models[0],
             models[1], models[2]);
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("%s", err);
    assert_string_equal(err, ""); /* -q: nothing on stderr */
    free(err);
    vnp_test_assert_files_equal(out("stdin", "prediction_results_highestscore.csv"),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
    /* stdin is read once: viral.fna comes from its spool, which is gone after the run */
    for (int i = 0; i < 4; i++)
        vnp_test_assert_files_equal(out("stdin", DERIVED[i]), out("golden", DERIVED[i]));
    assert_int_equal(access(out("stdin", "input.spool.fa.gz.part"), F_OK), -1);
    /* no -o: "<input up to .fa>_merged" next to the input, as the original */
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", vnp_test_tmp("sample.fasta"));
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && '%s' predict --esm '%s' --dnabert '%s' "
             "--classifier '%s' --progress '%s'",
             vnp_test_fixture(G "input.fa"), copy, vnp_test_cli(), models[0], models[1],
             models[2], copy);
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("%s", err);
    /* --progress draws the progress line even when stderr is not a terminal */
    assert_non_null(strstr(err, "\r\033[Kpredict: 21 records read  41 ORFs embedded"));
    assert_non_null(strstr(err, "tokens/s"));
    free(err);
    vnp_test_assert_files_equal(out("sample_merged", "prediction_results_highestscore.csv"),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
}

static void test_keep_intermediate_300(void **state)
{
    (void)state;
    /* -l 300: the frames scored are exactly the original's preprocessing output */
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict -l 300 -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' --keep-intermediate '%s'",
             vnp_test_cli(), vnp_test_tmp("l300"), models[0], models[1], models[2],
             vnp_test_fixture(G "input.fa"));
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("%s", err);
    free(err);
    const char *names[][2] = {
        {"input_chunked300.fa", "dev_chunked300.fa"},
        {"input_identified_nucleotide.fa", "dev_identified_nucleotide.fa"},
        {"input_identified_protein.faa", "dev_identified_protein.faa"},
    };
    for (int i = 0; i < 3; i++) {
        char want[512];
        snprintf(want, sizeof want, G "preprocess_300/%s", names[i][1]);
        vnp_test_assert_files_equal(out("l300", names[i][0]), vnp_test_fixture(want));
    }
    rows r = read_results(out("l300", "prediction_results.txt"));
    char *prot = vnp_test_read_file(vnp_test_fixture(G "preprocess_300/dev_identified_protein.faa"),
                                    NULL);
    char *save = NULL;
    size_t i = 0;
    for (char *line = strtok_r(prot, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '>')
            continue;
        assert_true(i < r.n);
        assert_string_equal(line + 1, r.id[i]);
        i++;
    }
    assert_int_equal(i, r.n);
    free(prot);
    free_rows(&r);
    /* the derived files at -l 300, the reference checking every chunk's coordinates
     * against the original tool's chunk file */
    char chunked[4200];
    snprintf(chunked, sizeof chunked, "--chunked '%s'",
             vnp_test_fixture(G "preprocess_300/dev_chunked300.fa"));
    assert_derived_match_reference("l300", vnp_test_fixture(G "input.fa"), 300, chunked);
}

static void test_interrupted_then_resumed(void **state)
{
    (void)state;
    char *err = NULL;
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_fixture(G "input.fa"));
    /* a stale result from an earlier run in the directory is removed, not left behind */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo stale > '%s'", vnp_test_tmp("resume"),
             out("resume", "prediction_results.txt"));
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    setenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS", "5", 1);
    int rc = predict("resume", "--window 3", in, &err);
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "run the same command with --resume"));
    free(err);
    assert_int_equal(access(out("resume", "prediction_results.txt"), F_OK), -1);
    if (predict("resume", "--window 3 --resume", in, &err))
        fail_msg("%s", err);
    free(err);
    assert_same_results(out("resume", "prediction_results.txt"),
                        vnp_test_fixture(G "expected/prediction_results.txt"), SCORE_TOL);
    vnp_test_assert_files_equal(out("resume", "prediction_results_highestscore.csv"),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
    assert_int_equal(access(out("resume", "predict.journal"), F_OK), -1);
}

/* --precision on the CPU emulates the reduced precision: the scores move (it was
 * applied), the run is deterministic (an interrupted fp8 run resumed gives the bytes of
 * an uninterrupted one), and the journal ties the rows to the precision: resuming it
 * with another precision is refused. */
static void test_emulated_precision(void **state)
{
    (void)state;
    char *err = NULL;
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_fixture(G "input.fa"));
    if (predict("fp8_whole", "--device cpu --precision fp8 --window 3", in, &err))
        fail_msg("%s", err);
    assert_non_null(strstr(err, "on cpu (2 threads, fp8 emulated)"));
    free(err);
    /* applied: the scores are not FP32's (which match the reference to 1e-5) */
    char *a = vnp_test_read_file(out("fp8_whole", "prediction_results.txt"), NULL);
    char *b = vnp_test_read_file(vnp_test_fixture(G "expected/prediction_results.txt"), NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b);
    free(b);
    setenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS", "5", 1);
    int rc = predict("fp8_resume", "--device cpu --precision fp8 --window 3", in, &err);
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    assert_int_equal(rc, 1);
    free(err);
    /* the default precision on the CPU is FP32: not what the kept rows were computed in */
    assert_int_equal(predict("fp8_resume", "--device cpu --window 3 --resume", in, &err), 1);
    if (!strstr(err, "the kind of device or the precision (CPU/GPU, FP32/FP16/BF16/FP8) "
                     "changed"))
        fail_msg("unexpected: %s", err);
    free(err);
    if (predict("fp8_resume", "--device cpu --precision fp8 --window 3 --resume", in, &err))
        fail_msg("%s", err);
    free(err);
    const char *files[] = {"prediction_results.txt", "prediction_results_highestscore.csv",
                           "sequences.tsv"};
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out("fp8_resume", files[i]), out("fp8_whole", files[i]));
    free(a);
}

/* An input that is not FASTA: reaching it would be a format error. */
static const char *garbage_input(void)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s", vnp_test_tmp("garbage.bin"));
    assert_int_equal(vnp_test_write_file(p, "\x01\x02\x03garbage\xff", 11), 0);
    return p;
}

static void expect_error(const char *esm, const char *dna, const char *cls, const char *must1,
                         const char *must2)
{
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' '%s'",
             vnp_test_cli(), vnp_test_tmp("bad"), esm, dna, cls, garbage_input());
    int rc = vnp_test_run(cmd, NULL, &err);
    assert_int_equal(rc, 1);
    if (!strstr(err, must1) || !strstr(err, must2))
        fail_msg("error message lacks '%s' / '%s': %s", must1, must2, err);
    assert_null(strstr(err, "garbage.bin")); /* failed before the input was read */
    assert_int_equal(access(vnp_test_tmp("bad/prediction_results.txt"), F_OK), -1);
    free(err);
}


static void test_golden_derived(void **state)
{
    (void)state;
    /* the golden run of test_golden_500 */
    char chunked[4200];
    snprintf(chunked, sizeof chunked, "--chunked '%s'",
             vnp_test_fixture(G "preprocess_500/dev_chunked500.fa"));
    assert_derived_match_reference("golden", vnp_test_fixture(G "input.fa"), 500, chunked);
    /* what the golden set holds: 11 viral sequences, 13 regions, every chunk a row */
    assert_int_equal(count_of(out("golden", "viral.fna"), ">"), 11);
    assert_int_equal(count_of(out("golden", "viral_regions.bed"), "\n"), 13);
    assert_int_equal(count_of(out("golden", "chunks.tsv"), "\n"), 58);
    assert_int_equal(count_of(out("golden", "chunks.tsv"), "\tunscored\n"), 25);
}

static void test_min_score(void **state)
{
    (void)state;
    char *err = NULL;
    if (predict("min08", "--min-score 0.8", vnp_test_fixture(G "input.fa"), &err))
        fail_msg("predict --min-score 0.8: %s", err);
    free(err);
    /* the original two files do not move */
    vnp_test_assert_files_equal(out("min08", "prediction_results.txt"),
                                out("golden", "prediction_results.txt"));
    vnp_test_assert_files_equal(out("min08", "prediction_results_highestscore.csv"),
                                out("golden", "prediction_results_highestscore.csv"));
    /* the derived ones follow the threshold */
    assert_derived_match_reference("min08", vnp_test_fixture(G "input.fa"), 500,
                                   "--min-score 0.8");
    assert_int_equal(count_of(out("min08", "viral.fna"), ">"), 5);
    assert_int_equal(count_of(out("min08", "sequences.tsv"), "\tvirus\n"), 5);
    /* usage errors */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' predict --min-score 1.5 x.fa", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_non_null(strstr(err, "--min-score expects a number from 0 to 1, got '1.5'"));
    free(err);
}

static void test_classify_matches_predict(void **state)
{
    (void)state;
    char cmd[16384], *err = NULL;
    static const char *const runs[2][2] = {{"golden", ""}, {"min08", "--min-score 0.8"}};
    for (int r = 0; r < 2; r++) {
        char dst[64];
        snprintf(dst, sizeof dst, "classified_%s", runs[r][0]);
        snprintf(cmd, sizeof cmd, "'%s' classify '%s' --input '%s' %s -o '%s'", vnp_test_cli(),
                 vnp_test_tmp(runs[r][0]), vnp_test_fixture(G "input.fa"), runs[r][1],
                 vnp_test_tmp(dst));
        if (vnp_test_run(cmd, NULL, &err))
            fail_msg("classify: %s", err);
        assert_non_null(strstr(err, "virnucpro: classify: 21 records, 57 chunks"));
        free(err);
        for (int i = 0; i < 4; i++)
            vnp_test_assert_files_equal(out(dst, DERIVED[i]), out(runs[r][0], DERIVED[i]));
        /* the report and every plot too */
        vnp_test_assert_files_equal(out(dst, "report.html"), out(runs[r][0], "report.html"));
        char la[8192], lb[8192], *o = NULL;
        snprintf(cmd, sizeof cmd, "cd '%s' && ls plots && cd '%s' && ls plots", vnp_test_tmp(dst),
                 vnp_test_tmp(runs[r][0]));
        assert_int_equal(vnp_test_run(cmd, &o, NULL), 0);
        size_t half = strlen(o) / 2;
        snprintf(la, sizeof la, "%.*s", (int)half, o);
        snprintf(lb, sizeof lb, "%s", o + half);
        assert_string_equal(la, lb);
        assert_true(half > 0);
        for (char *save = NULL, *f = strtok_r(la, "\n", &save); f; f = strtok_r(NULL, "\n", &save)) {
            char rel[512], a[4096];
            snprintf(rel, sizeof rel, "plots/%s", f);
            snprintf(a, sizeof a, "%s", out(dst, rel));
            vnp_test_assert_files_equal(a, out(runs[r][0], rel));
        }
        free(o);
    }
}

static void test_duplicates_and_empty_records(void **state)
{
    (void)state;
    /* the golden input twice with an empty record between: IDs repeat (<ID>_dup2) */
    size_t n;
    char *t = vnp_test_read_file(vnp_test_fixture(G "input.fa"), &n);
    assert_non_null(t);
    const char *in = vnp_test_tmp("dups.fa");
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fwrite(t, 1, n, f);
    fputs(">empty_one\n", f);
    fwrite(t, 1, n, f);
    fclose(f);
    free(t);
    char *err = NULL;
    if (predict("dups", "", in, &err))
        fail_msg("predict: %s", err);
    free(err);
    assert_derived_match_reference("dups", in, 500, "");
    assert_int_equal(count_of(out("dups", "viral.fna"), ">"), 22);
    assert_int_equal(count_of(out("dups", "viral.fna"), "_dup2 verdict=virus"), 11);
}

/* ---- run.json ---- */

static cJSON *load_json(const char *path)
{
    char *t = vnp_test_read_file(path, NULL);
    if (!t)
        fail_msg("cannot read %s", path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    if (!j)
        fail_msg("%s is not JSON", path);
    return j;
}

/* The keys of object o, in order, joined by spaces. */
static const char *keys_of(const cJSON *o)
{
    static char b[1024];
    b[0] = 0;
    assert_true(cJSON_IsObject(o));
    for (const cJSON *k = o->child; k; k = k->next)
        snprintf(b + strlen(b), sizeof b - strlen(b), "%s%s", b[0] ? " " : "", k->string);
    return b;
}

static const cJSON *at(const cJSON *o, const char *path)
{
    char p[256];
    snprintf(p, sizeof p, "%s", path);
    const cJSON *x = o;
    for (char *save = NULL, *k = strtok_r(p, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        x = cJSON_GetObjectItemCaseSensitive(x, k);
        if (!x)
            fail_msg("run.json has no %s", path);
    }
    return x;
}

static double num_at(const cJSON *o, const char *path)
{
    const cJSON *x = at(o, path);
    if (!cJSON_IsNumber(x))
        fail_msg("run.json %s is not a number", path);
    return x->valuedouble;
}

static const char *str_at(const cJSON *o, const char *path)
{
    const cJSON *x = at(o, path);
    if (!cJSON_IsString(x))
        fail_msg("run.json %s is not a string", path);
    return x->valuestring;
}

static void sha256_of(const char *file, char out[65])
{
    char cmd[8192], *o = NULL;
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", file);
    assert_int_equal(vnp_test_run(cmd, &o, NULL), 0);
    snprintf(out, 65, "%s", o);
    free(o);
}

static int iso_utc(const char *s)
{
    int y, mo, d, h, mi, se;
    char z;
    return strlen(s) == 20 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se,
                                     &z) == 7 && z == 'Z';
}

/* The files of a model in run.json are the model's, with sha256sum's digests. */
static void assert_model_files(const cJSON *j, const char *key, const char *path,
                               const char *const *names, int n)
{
    char p[64];
    snprintf(p, sizeof p, "models.%s.path", key);
    assert_string_equal(str_at(j, p), path);
    snprintf(p, sizeof p, "models.%s.files", key);
    const cJSON *files = at(j, p);
    assert_int_equal(cJSON_GetArraySize(files), n);
    for (int i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetArrayItem(files, i);
        assert_string_equal(keys_of(f), "name bytes sha256");
        assert_string_equal(str_at(f, "name"), names[i]);
        char file[4096], want[65];
        if (!strcmp(names[i], path + strlen(path) - strlen(names[i])))
            snprintf(file, sizeof file, "%s", path);
        else
            snprintf(file, sizeof file, "%s/%s", path, names[i]);
        sha256_of(file, want);
        assert_string_equal(str_at(f, "sha256"), want);
        size_t len;
        char *t = vnp_test_read_file(file, &len);
        free(t);
        assert_true(num_at(f, "bytes") == (double)len);
    }
}

static void test_run_json(void **state)
{
    (void)state;
    /* the golden run of test_golden_500: predict -l 500 -o DIR --esm --dnabert
     * --classifier -t 2 --embeddings INPUT */
    cJSON *j = load_json(out("golden", "run.json"));
    assert_string_equal(keys_of(j), "schema tool command_line start_time end_time host devices "
                                    "models input options counts seconds peak_rss_kb "
                                    "exit_status status error");
    assert_string_equal(str_at(j, "schema"), "virnucpro-run/1");
    assert_string_equal(keys_of(at(j, "tool")), "name version git_commit build_type cuda_archs "
                                                "blas");
    assert_string_equal(str_at(j, "tool.name"), "virnucpro");
    assert_string_equal(str_at(j, "tool.version"), VNP_VERSION_STRING);
    const char *commit = str_at(j, "tool.git_commit");
    assert_true(!strcmp(commit, "unknown") || strspn(commit, "0123456789abcdef") == 40);
    assert_true(cJSON_IsArray(at(j, "tool.cuda_archs")));
    assert_non_null(strstr(str_at(j, "tool.blas"), "OpenBLAS"));
    /* the command line as given */
    const char *argv[] = {NULL, "predict", "-l", "500", "-o", vnp_test_tmp("golden"), "--esm",
                          models[0], "--dnabert", models[1], "--classifier", models[2], "-t", "2",
                          "--embeddings", vnp_test_fixture(G "input.fa")};
    const cJSON *cl = at(j, "command_line");
    assert_int_equal(cJSON_GetArraySize(cl), 16);
    assert_string_equal(cJSON_GetArrayItem(cl, 0)->valuestring, vnp_test_cli());
    for (int i = 1; i < 16; i++)
        assert_string_equal(cJSON_GetArrayItem(cl, i)->valuestring, argv[i]);
    assert_true(iso_utc(str_at(j, "start_time")) && iso_utc(str_at(j, "end_time")));
    assert_true(strcmp(str_at(j, "start_time"), str_at(j, "end_time")) <= 0);
    assert_true(*str_at(j, "host"));
    /* one CPU worker computing in FP32 */
    const cJSON *dev = at(j, "devices");
    assert_int_equal(cJSON_GetArraySize(dev), 1);
    assert_string_equal(keys_of(cJSON_GetArrayItem(dev, 0)),
                        "device precision threads name memory_bytes");
    assert_string_equal(str_at(cJSON_GetArrayItem(dev, 0), "device"), "cpu");
    assert_string_equal(str_at(cJSON_GetArrayItem(dev, 0), "precision"), "fp32");
    assert_true(num_at(cJSON_GetArrayItem(dev, 0), "threads") == 2);
    { /* the CPU's model name as /proc/cpuinfo has it ("CPU" without one), physical memory */
        char model[512] = "CPU", line[512];
        FILE *f = fopen("/proc/cpuinfo", "r");
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                const char *v = strchr(line, ':') + 1;
                v += *v == ' ';
                snprintf(model, sizeof model, "%.*s", (int)strcspn(v, "\n"), v);
                break;
            }
        if (f)
            fclose(f);
        assert_string_equal(str_at(cJSON_GetArrayItem(dev, 0), "name"), model);
        double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        assert_true(num_at(cJSON_GetArrayItem(dev, 0), "memory_bytes") == mem);
    }
    /* every model file with sha256sum's digest */
    assert_string_equal(keys_of(at(j, "models")), "esm2 dnabert_s classifier");
    static const char *const esm[] = {"config.json", "model.safetensors", "vocab.txt"};
    static const char *const dna[] = {"config.json", "pytorch_model.bin",
                                      "special_tokens_map.json", "tokenizer.json",
                                      "tokenizer_config.json"};
    static const char *const cls[] = {"classifier.pth"};
    assert_model_files(j, "esm2", models[0], esm, 3);
    assert_model_files(j, "dnabert_s", models[1], dna, 5);
    assert_model_files(j, "classifier", models[2], cls, 1);
    /* the input */
    char in[4096], want[65];
    snprintf(in, sizeof in, "%s", vnp_test_fixture(G "input.fa"));
    assert_string_equal(keys_of(at(j, "input")), "path bytes sha256 records_sha256");
    assert_string_equal(str_at(j, "input.path"), in);
    assert_true(num_at(j, "input.bytes") == 24772);
    sha256_of(in, want);
    assert_string_equal(str_at(j, "input.sha256"), want);
    assert_int_equal(strspn(str_at(j, "input.records_sha256"), "0123456789abcdef"), 64);
    /* the options, defaults resolved */
    assert_string_equal(keys_of(at(j, "options")),
                        "chunk_length min_score plots device precision threads batch_tokens "
                        "window keep_intermediate embeddings resume output");
    assert_true(num_at(j, "options.chunk_length") == 500);
    assert_true(cJSON_IsNull(at(j, "options.min_score")));
    assert_true(num_at(j, "options.plots") == 20);
    assert_string_equal(str_at(j, "options.device"), "auto");
    assert_string_equal(str_at(j, "options.precision"), "default"); /* as asked: none */
    assert_true(num_at(j, "options.threads") == 2);
    assert_true(num_at(j, "options.batch_tokens") == 4096);
    assert_true(num_at(j, "options.window") == 2048);
    assert_true(cJSON_IsFalse(at(j, "options.keep_intermediate")));
    assert_true(cJSON_IsTrue(at(j, "options.embeddings")));
    assert_true(cJSON_IsFalse(at(j, "options.resume")));
    assert_string_equal(str_at(j, "options.output"), vnp_test_tmp("golden"));
    /* the counts of the golden set */
    assert_string_equal(keys_of(at(j, "counts")),
                        "records chunks chunks_scored chunks_viral frames tokens "
                        "viral_sequences other_sequences unscored_sequences viral_regions "
                        "recomputed_batches workers workers_retired");
    static const struct {
        const char *k;
        double v;
    } want_counts[] = {{"records", 21},          {"chunks", 57},
                       {"chunks_scored", 32},    {"chunks_viral", 14},
                       {"frames", 41},           {"viral_sequences", 11},
                       {"other_sequences", 8},   {"unscored_sequences", 2},
                       {"viral_regions", 13},    {"recomputed_batches", 0},
                       {"workers", 1},           {"workers_retired", 0}};
    for (size_t i = 0; i < sizeof want_counts / sizeof want_counts[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, "counts.%s", want_counts[i].k);
        if (num_at(j, p) != want_counts[i].v)
            fail_msg("run.json %s: %g, want %g", p, num_at(j, p), want_counts[i].v);
    }
    assert_true(num_at(j, "counts.tokens") > 0);
    assert_string_equal(keys_of(at(j, "seconds")), "load_models predict derived_outputs total");
    assert_true(num_at(j, "seconds.load_models") >= 0 && num_at(j, "seconds.predict") > 0 &&
                num_at(j, "seconds.derived_outputs") >= 0 && num_at(j, "seconds.total") > 0);
    assert_true(num_at(j, "peak_rss_kb") > 1000);
    assert_true(num_at(j, "exit_status") == 0);
    assert_string_equal(str_at(j, "status"), "ok");
    assert_true(cJSON_IsNull(at(j, "error")));
    cJSON_Delete(j);
}

static void test_run_json_on_failure(void **state)
{
    (void)state;
    /* a truncated classifier: the run fails before the input is read; run.json says so */
    char trunc[4096], cmd[16384];
    snprintf(trunc, sizeof trunc, "%s", vnp_test_tmp("truncated_for_json.pth"));
    size_t n;
    char *full = vnp_test_read_file(models[2], &n);
    assert_non_null(full);
    assert_int_equal(vnp_test_write_file(trunc, full, n / 2), 0);
    free(full);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'; '%s' predict -o '%s' --esm '%s' --dnabert '%s' "
             "--classifier '%s' '%s'",
             vnp_test_tmp("failed"), vnp_test_cli(), vnp_test_tmp("failed"), models[0],
             models[1], trunc, vnp_test_fixture(G "input.fa"));
    char *err = NULL;
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    free(err);
    cJSON *j = load_json(out("failed", "run.json"));
    assert_true(num_at(j, "exit_status") == 1);
    assert_string_equal(str_at(j, "status"), "failed");
    assert_non_null(strstr(str_at(j, "error"), "truncated_for_json.pth"));
    assert_true(num_at(j, "counts.records") == 0);
    assert_true(cJSON_IsNull(at(j, "input.records_sha256")));
    cJSON_Delete(j);
    /* only run.json is left */
    snprintf(cmd, sizeof cmd, "ls -A '%s'", vnp_test_tmp("failed"));
    char *o = NULL;
    assert_int_equal(vnp_test_run(cmd, &o, NULL), 0);
    assert_string_equal(o, "run.json\n");
    free(o);
}

static void test_classify_checks_records(void **state)
{
    (void)state;
    /* one base changed where no frame changes: the rows fit, the records' SHA-256 in
     * run.json does not */
    char changed[4096], cmd[16384], *err = NULL;
    snprintf(changed, sizeof changed, "%s", vnp_test_tmp("one_base.fa"));
    snprintf(cmd, sizeof cmd, "sed '2s/^TTGGGTACTG/TAGTAGTAGT/' '%s' > '%s' && '%s' classify '%s' "
             "-i '%s' -o '%s'",
             vnp_test_fixture(G "input.fa"), changed, vnp_test_cli(), vnp_test_tmp("golden"),
             changed, vnp_test_tmp("one_base_out"));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    assert_non_null(strstr(err, "are not the ones the rows were computed from"));
    free(err);
    /* and the -l comes from run.json: the -l 300 run classifies without -l */
    snprintf(cmd, sizeof cmd, "'%s' classify '%s' -i '%s' -o '%s'", vnp_test_cli(),
             vnp_test_tmp("l300"), vnp_test_fixture(G "input.fa"), vnp_test_tmp("l300_again"));
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("%s", err);
    free(err);
    for (int i = 0; i < 4; i++)
        vnp_test_assert_files_equal(out("l300_again", DERIVED[i]), out("l300", DERIVED[i]));
}

/* stderr not a terminal (a batch job's log): timestamped progress lines every
 * --log-interval seconds, from their own thread; none with -q. */
static void test_log_lines(void **state)
{
    (void)state;
    char *err = NULL;
    if (predict("logged", "--log-interval 0.05 --window 4 --batch-tokens 300 -t 1",
                vnp_test_fixture(G "input.fa"), &err))
        fail_msg("%s", err);
    size_t lines = 0, eta = 0;
    char *save = NULL;
    for (char *l = strtok_r(err, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        const char *p = strstr(l, " virnucpro: progress: ");
        if (!p)
            continue;
        int y, mo, d, h, mi, se;
        char z;
        assert_int_equal(p - l, 20); /* the time stamp, UTC */
        assert_int_equal(sscanf(l, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z),
                         7);
        assert_int_equal(z, 'Z');
        assert_non_null(strstr(p, " records read, "));
        assert_non_null(strstr(p, " frames scored, "));
        assert_non_null(strstr(p, " tokens/s, "));
        eta += strstr(p, "%  ETA ") != NULL; /* a file: its size gives % and ETA */
        assert_null(strchr(l, '\r'));
        lines++;
    }
    print_message("%zu progress lines, %zu with an ETA\n", lines, eta);
    assert_true(lines >= 2 && eta >= 1);
    free(err);
    /* -q: none (and the default interval, 60 s, writes none in a short run either) */
    if (predict("logged_q", "-q --window 4 --batch-tokens 300 -t 1",
                vnp_test_fixture(G "input.fa"), &err))
        fail_msg("%s", err);
    assert_string_equal(err, "");
    free(err);
}

static void test_bad_models(void **state)
{
    (void)state;
    /* a classifier of another input width, saved by PyTorch like the real ones */
    const char *py = getenv("VNP_PYTHON");
    assert_non_null(py);
    char cls200[4096], cmd[8192];
    snprintf(cls200, sizeof cls200, "%s", vnp_test_tmp("classifier_200.pth"));
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/make_classifier.py' 200 '%s'", py,
             getenv("VNP_SOURCE_DIR"), cls200);
    char *err = NULL;
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("tools/make_classifier.py failed: %s", err);
    free(err);
    expect_error(models[0], models[1], cls200, "classifier_200.pth takes 200 features",
                 "(hidden 128) give 256");
    /* a missing model */
    expect_error(vnp_test_tmp("no_such_esm"), models[1], models[2], "no_such_esm", "--esm");
    /* a truncated classifier */
    char trunc[4096];
    snprintf(trunc, sizeof trunc, "%s", vnp_test_tmp("truncated.pth"));
    size_t n;
    char *full = vnp_test_read_file(models[2], &n);
    assert_non_null(full);
    assert_int_equal(vnp_test_write_file(trunc, full, n / 2), 0);
    free(full);
    expect_error(models[0], models[1], trunc, "truncated.pth", "truncated");
    /* the two encoders swapped */
    expect_error(models[1], models[0], models[2], "is an ESM-2 checkpoint", "--dnabert");
}

static void test_usage_errors(void **state)
{
    (void)state;
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict -l 400 x.fa", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_non_null(strstr(err, "300 or 500"));
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --batch-tokens 0 x.fa", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_non_null(strstr(err, "--batch-tokens"));
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --precision fp4 x.fa", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_non_null(strstr(err, "--precision must be fp32, fp16, bf16, fp8 or fp8-tensor, got "
                                "'fp4'"));
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' predict --help", vnp_test_cli());
    char *o = NULL;
    assert_int_equal(vnp_test_run(cmd, &o, NULL), 0);
    assert_non_null(strstr(o, "sequences.tsv"));
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_500),
        cmocka_unit_test(test_golden_features),
        cmocka_unit_test(test_golden_sequences),
        cmocka_unit_test(test_golden_derived),
        cmocka_unit_test(test_min_score),
        cmocka_unit_test(test_classify_matches_predict),
        cmocka_unit_test(test_duplicates_and_empty_records),
        cmocka_unit_test(test_batch_size_independence),
        cmocka_unit_test(test_stdin_and_default_outdir),
        cmocka_unit_test(test_keep_intermediate_300),
        cmocka_unit_test(test_interrupted_then_resumed),
        cmocka_unit_test(test_emulated_precision),
        cmocka_unit_test(test_run_json),
        cmocka_unit_test(test_run_json_on_failure),
        cmocka_unit_test(test_classify_checks_records),
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_bad_models),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
