/* virnucpro classify: the derived outputs from a finished prediction_results.txt and the
 * input, without models. On the original tool's golden prediction_results.txt they are
 * the committed files that tools/make_derived_expected.py wrote from it
 * (tests/fixtures/golden/expected/derived_500*), byte for byte, with and without
 * --min-score; rows that do not belong to the input (another -l, a shorter or changed
 * input, a damaged row) are refused naming the row, and a refused run leaves the
 * earlier files as they were and no .part file. (classify on predict's own directory
 * giving predict's files: tests/pipeline/test_predict_cli.c.) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

#define G "golden/"

static const char *const DERIVED[4] = {"sequences.tsv", "chunks.tsv", "viral_regions.bed",
                                       "viral.fna"};

static int classify(const char *args, char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' classify %s", vnp_test_cli(), args);
    return vnp_test_run(cmd, NULL, err);
}

static const char *in_dir(const char *dir, const char *name)
{
    static char b[4][4096];
    static int k;
    char *p = b[k++ & 3];
    snprintf(p, sizeof b[0], "%s/%s", dir, name);
    return p;
}

/* A directory holding a copy of `results` as its prediction_results.txt. */
static const char *run_dir(const char *name, const char *results)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp(name));
    char cmd[12000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s' '%s/prediction_results.txt'",
             dir, dir, results, dir);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    return dir;
}

static void assert_expected(const char *dir, const char *expected)
{
    for (int i = 0; i < 4; i++) {
        char want[512];
        snprintf(want, sizeof want, G "expected/%s/%s", expected, DERIVED[i]);
        vnp_test_assert_files_equal(in_dir(dir, DERIVED[i]), vnp_test_fixture(want));
    }
}

static int no_part_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int ok = 1;
    while ((e = readdir(d)))
        ok &= strstr(e->d_name, ".part") == NULL;
    closedir(d);
    return ok;
}

static void test_golden(void **state)
{
    (void)state;
    const char *dir = run_dir("golden", vnp_test_fixture(G "expected/prediction_results.txt"));
    char args[12000], *err = NULL;
    snprintf(args, sizeof args, "'%s' --input '%s'", dir, vnp_test_fixture(G "input.fa"));
    if (classify(args, &err))
        fail_msg("%s", err);
    assert_non_null(strstr(err, "virnucpro: classify: 21 records, 57 chunks (32 scored, 14 "
                                "viral), 41 frames: 11 virus, 8 others, 2 unscored; 13 viral "
                                "regions"));
    free(err);
    assert_expected(dir, "derived_500");
    /* --min-score into another directory: fewer viral chunks and sequences */
    char other[4096];
    snprintf(other, sizeof other, "%s", vnp_test_tmp("golden_min08"));
    snprintf(args, sizeof args, "'%s' -i '%s' --min-score 0.8 -o '%s'", dir,
             vnp_test_fixture(G "input.fa"), other);
    if (classify(args, &err))
        fail_msg("%s", err);
    free(err);
    assert_expected(other, "derived_500_min0.8");
    assert_true(no_part_files(dir) && no_part_files(other));
    /* a gzip copy of the input gives the same files */
    char gz[4096], cmd[12000];
    snprintf(gz, sizeof gz, "%s", vnp_test_tmp("input.fa.gz"));
    snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", vnp_test_fixture(G "input.fa"), gz);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s' -i '%s' -q", dir, gz);
    if (classify(args, &err))
        fail_msg("%s", err);
    assert_string_equal(err, "");
    free(err);
    assert_expected(dir, "derived_500");
}

/* A refused classify: exit 1, the message has `want`, the earlier files are unchanged
 * and nothing partial is left. */
static void refused(const char *dir, const char *args, const char *want)
{
    char *err = NULL;
    int rc = classify(args, &err);
    if (rc != 1 || !strstr(err, want))
        fail_msg("classify %s: exit %d, want 1 and \"%s\"; stderr:\n%s", args, rc, want, err);
    free(err);
    assert_expected(dir, "derived_500");
    assert_true(no_part_files(dir));
}

static void test_rows_not_from_input(void **state)
{
    (void)state;
    const char *d = run_dir("refused", vnp_test_fixture(G "expected/prediction_results.txt"));
    char dir[4096], args[12000], *err = NULL;
    snprintf(dir, sizeof dir, "%s", d);
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_fixture(G "input.fa"));
    snprintf(args, sizeof args, "'%s' --input '%s'", dir, in);
    if (classify(args, &err))
        fail_msg("%s", err);
    free(err);
    /* another chunk length: the rows are not the chunks' stop-free frames */
    snprintf(args, sizeof args, "'%s' --input '%s' -l 300", dir, in);
    refused(dir, args, "were the rows made from this input with -l 300?");
    /* an input with the first ten records only: rows of the others are left over */
    char shortin[4096], cmd[12000];
    snprintf(shortin, sizeof shortin, "%s", vnp_test_tmp("first10.fa"));
    snprintf(cmd, sizeof cmd, "awk '/^>/{n++} n<=10' '%s' > '%s'", in, shortin);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s' --input '%s'", dir, shortin);
    refused(dir, args, "belongs to no record of");
    /* 70 bases gone from the first record: its chunk's stop-free frames change */
    char changed[4096];
    snprintf(changed, sizeof changed, "%s", vnp_test_tmp("changed.fa"));
    snprintf(cmd, sizeof cmd, "sed '3d' '%s' > '%s'", in, changed);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s' --input '%s'", dir, changed);
    refused(dir, args, "lambda_dev_0_chunk_1 (frames: R2) are not the chunk's stop-free frames in");
    /* a damaged row */
    const char *bad = run_dir("damaged", vnp_test_fixture(G "expected/prediction_results.txt"));
    snprintf(cmd, sizeof cmd, "sed -i '5s/\\t0\\./\\tx/' '%s/prediction_results.txt'", bad);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s' --input '%s'", bad, in);
    assert_int_equal(classify(args, &err), 1);
    assert_non_null(strstr(err, "prediction_results.txt line 5 is not a row of "
                                "prediction_results.txt"));
    free(err);
    assert_true(no_part_files(bad));
    /* an unfinished run */
    snprintf(cmd, sizeof cmd, "touch '%s/predict.journal'", dir);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s' --input '%s'", dir, in);
    refused(dir, args, "holds an unfinished predict run");
}

static void test_usage(void **state)
{
    (void)state;
    char *err = NULL;
    assert_int_equal(classify("somewhere", &err), 2);
    assert_non_null(strstr(err, "missing --input"));
    free(err);
    assert_int_equal(classify("-i x.fa", &err), 2);
    assert_non_null(strstr(err, "expected one DIR"));
    free(err);
    assert_int_equal(classify("d -i x.fa --min-score -0.1", &err), 2);
    assert_non_null(strstr(err, "--min-score expects a number from 0 to 1, got '-0.1'"));
    free(err);
    char args[8192];
    snprintf(args, sizeof args, "'%s' -i x.fa", vnp_test_tmp("no_such_run"));
    assert_int_equal(classify(args, &err), 1);
    assert_non_null(strstr(err, "has no prediction_results.txt"));
    free(err);
    char *out = NULL, cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' classify --help", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, &out, NULL), 0);
    assert_non_null(strstr(out, "--min-score X"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_rows_not_from_input),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
