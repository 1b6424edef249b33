/* virnucpro validate-precision from the command line: argument errors, and a
 * run on the golden fixtures. Without a GPU the CPU backend computes every
 * precision in FP32, so the comparison must come out exact and say so (the GPU
 * run itself is in tests/gpu/run.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static char *run(const char *args, int *rc, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' validate-precision %s", vnp_test_cli(), args);
    char *out = NULL;
    *rc = vnp_test_run(cmd, &out, err);
    return out;
}

static void test_usage_errors(void **state)
{
    int rc;
    char *err, *out = run("", &rc, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "validate-precision needs --esm, --dnabert and one INPUT"));
    free(out), free(err);
    out = run("--esm a --dnabert b -l 400 x.fa", &rc, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "-l must be 300 or 500, got '400'"));
    free(out), free(err);
    out = run("--esm a --dnabert b --min-cosine 2 x.fa", &rc, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--min-cosine must be a number from -1 to 1, got '2'"));
    free(out), free(err);
    out = run("--esm a --dnabert b --precisions fp8 x.fa", &rc, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "--precisions must name fp16, bf16 or both, got 'fp8'"));
    free(out), free(err);
    out = run("--help", &rc, &err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Usage: virnucpro validate-precision"));
    free(out), free(err);
}

static void test_missing_model(void **state)
{
    char args[2048];
    snprintf(args, sizeof args, "--esm '%s' --dnabert /nonexistent/dnabert --device cpu '%s'",
             vnp_test_fixture("golden/esm2"), vnp_test_fixture("golden/input.fa"));
    int rc;
    char *err, *out = run(args, &rc, &err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "/nonexistent/dnabert/tokenizer.json"));
    free(out), free(err);
}

static void test_golden_on_cpu(void **state)
{
    char args[4096];
    snprintf(args, sizeof args,
             "--esm '%s' --dnabert '%s' --classifier '%s' --device cpu --batch-tokens 700 '%s'",
             vnp_test_fixture("golden/esm2"), vnp_test_fixture("golden/dnabert_s"),
             vnp_test_fixture("golden/classifier.pth"), vnp_test_fixture("golden/input.fa"));
    int rc;
    char *err, *out = run(args, &rc, &err);
    if (rc != 0)
        fail_msg("rc %d, stderr: %s", rc, err);
    /* 41 ORFs, the golden set: 4 short, 9 medium, 28 long */
    assert_non_null(strstr(out, "validate-precision: 41 ORFs from"));
    assert_non_null(strstr(out, "(chunk 500; short 4, medium 9, long 28) on cpu"));
    assert_non_null(strstr(out, "computes in FP32 only; this comparison is trivial there"));
    const char *rows[] = {"DNABERT-S fp16 all        41  1.000000  1.000000  1.000000 0.000e+00",
                          "ESM-2     bf16 long       28  1.000000  1.000000  1.000000 0.000e+00",
                          "labels fp16 all    agree with fp32: 41 of 41 (100.0000%)",
                          "labels bf16 short  agree with fp32: 4 of 4 (100.0000%)",
                          "validate-precision: all thresholds met"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!strstr(out, rows[i]))
            fail_msg("missing '%s' in:\n%s", rows[i], out);
    free(out), free(err);
}

/* A classifier whose input width is not DNABERT-S + ESM-2 hidden (once a heap overflow
 * under ASan): refused before any work, naming both widths. */
static void test_classifier_width_refused(void **state)
{
    const char *py = getenv("VNP_PYTHON");
    assert_non_null(py);
    char cls[4096], cmd[8192];
    snprintf(cls, sizeof cls, "%s", vnp_test_tmp("classifier_200.pth"));
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/make_classifier.py' 200 '%s' 16", py,
             getenv("VNP_SOURCE_DIR"), cls);
    char *err = NULL;
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("tools/make_classifier.py failed: %s", err);
    free(err);
    char args[8192];
    snprintf(args, sizeof args, "--esm '%s' --dnabert '%s' --classifier '%s' --device cpu '%s'",
             vnp_test_fixture("golden/esm2"), vnp_test_fixture("golden/dnabert_s"), cls,
             vnp_test_fixture("golden/input.fa"));
    int rc;
    char *out = run(args, &rc, &err);
    assert_int_equal(rc, 1);
    if (!strstr(err, "classifier_200.pth takes 200 features") ||
        !strstr(err, "(hidden 128) give 256"))
        fail_msg("unexpected message: %s", err);
    free(out), free(err);
}

/* Two CPU workers give the same table as one (the engine's batches are the same). */
static void test_two_workers_same_report(void **state)
{
    char args[4096];
    const char *fmt = "--esm '%s' --dnabert '%s' --classifier '%s' --device %s -l 300 "
                      "--batch-tokens 300 '%s'";
    snprintf(args, sizeof args, fmt, vnp_test_fixture("golden/esm2"),
             vnp_test_fixture("golden/dnabert_s"), vnp_test_fixture("golden/classifier.pth"),
             "cpu", vnp_test_fixture("golden/input.fa"));
    int rc1, rc2;
    char *e1, *e2, *o1 = run(args, &rc1, &e1);
    snprintf(args, sizeof args, fmt, vnp_test_fixture("golden/esm2"),
             vnp_test_fixture("golden/dnabert_s"), vnp_test_fixture("golden/classifier.pth"),
             "cpu,cpu", vnp_test_fixture("golden/input.fa"));
    char *o2 = run(args, &rc2, &e2);
    assert_int_equal(rc1, 0);
    assert_int_equal(rc2, 0);
    /* the table and the label lines (timings differ) */
    const char *t1 = strstr(o1, "\nmodel "), *t2 = strstr(o2, "\nmodel ");
    assert_non_null(t1);
    assert_non_null(t2);
    assert_string_equal(t1, t2);
    assert_non_null(strstr(o2, "on cpu,cpu"));
    free(o1), free(o2), free(e1), free(e2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_missing_model),
        cmocka_unit_test(test_golden_on_cpu),
        cmocka_unit_test(test_classifier_width_refused),
        cmocka_unit_test(test_two_workers_same_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
