/* virnucpro tokenize: output format, both models against expected/tokens.json,
 * stdin and gzip input, and its errors. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* "id\tids\n" lines, in record order, equal the expected ids of tokens.json. */
static void check_output(const char *out, const char *key)
{
    size_t len;
    char *json = vnp_test_read_file(vnp_test_fixture("golden/expected/tokens.json"), &len);
    assert_non_null(json);
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, key);
    int n = cJSON_GetArraySize(ids);
    assert_true(n > 0);
    assert_int_equal(cJSON_GetArraySize(toks), n);
    char *want = NULL;
    size_t wlen = 0;
    FILE *f = open_memstream(&want, &wlen);
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s\t", cJSON_GetArrayItem(ids, k)->valuestring);
        const cJSON *x;
        int first = 1;
        cJSON_ArrayForEach(x, cJSON_GetArrayItem(toks, k))
        {
            fprintf(f, first ? "%d" : " %d", (int)x->valuedouble);
            first = 0;
        }
        fputc('\n', f);
    }
    fclose(f);
    if (strcmp(out, want)) {
        size_t i = 0;
        while (out[i] && out[i] == want[i])
            i++;
        fprintf(stderr, "output differs at byte %zu: got '%.60s' want '%.60s'\n", i, out + i,
                want + i);
        fail();
    }
    free(want);
    cJSON_Delete(root);
}

static char *run_ok(const char *args)
{
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s", vnp_test_cli(), args);
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc != 0)
        fprintf(stderr, "%s: exit %d: %s\n", cmd, rc, err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    free(err);
    return out;
}

static void test_dna(void **state)
{
    (void)state;
    char args[4096];
    snprintf(args, sizeof args, "--model '%s' '%s'", vnp_test_fixture("golden/dnabert_s"),
             vnp_test_fixture("golden/preprocess_500/dev_identified_nucleotide.fa"));
    char *out = run_ok(args);
    check_output(out, "dnabert_tokens");
    free(out);
    /* the tokenizer.json itself, and stdin */
    snprintf(args, sizeof args, "-m '%s' - < '%s'",
             vnp_test_fixture("golden/dnabert_s/tokenizer.json"),
             vnp_test_fixture("golden/preprocess_500/dev_identified_nucleotide.fa"));
    out = run_ok(args);
    check_output(out, "dnabert_tokens");
    free(out);
}

static void test_protein(void **state)
{
    (void)state;
    char args[4096], cmd[8192];
    /* gzip input */
    const char *gz = vnp_test_tmp("proteins.faa.gz");
    snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'",
             vnp_test_fixture("golden/preprocess_500/dev_identified_protein.faa"), gz);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "--protein --model '%s' '%s'", vnp_test_fixture("golden/esm2"),
             gz);
    char *out = run_ok(args);
    check_output(out, "esm_tokens");
    free(out);
    snprintf(args, sizeof args, "-p '%s'",
             vnp_test_fixture("golden/preprocess_500/dev_identified_protein.faa"));
    out = run_ok(args);
    check_output(out, "esm_tokens");
    free(out);
}

static void test_unknowns_and_format(void **state)
{
    (void)state;
    const char *fa = vnp_test_tmp("odd.fa");
    const char *text = ">r1 some description\nACGTN\nacgt\n>r2\nMKa*\n";
    assert_int_equal(vnp_test_write_file(fa, text, strlen(text)), 0);
    char args[4096];
    snprintf(args, sizeof args, "-m '%s' '%s'", vnp_test_fixture("golden/dnabert_s"), fa);
    char *out = run_ok(args);
    /* ACGT -> one token, N and each lower-case base -> [UNK] (0) */
    char *tab = strchr(out, '\t');
    assert_non_null(tab);
    assert_memory_equal(out, "r1\t1 ", 5);
    assert_non_null(strstr(out, " 0 0 0 0 0 2\nr2\t1 "));
    free(out);
    snprintf(args, sizeof args, "-p '%s'", fa);
    out = run_ok(args);
    assert_string_equal(out, "r1\t0 5 23 6 11 17 3 2\nr2\t0 20 15 3 2\n");
    free(out);
}

static void run_fail(const char *args, int want_rc, const char *want_msg)
{
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s", vnp_test_cli(), args);
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc != want_rc || !strstr(err, want_msg)) {
        fprintf(stderr, "%s: exit %d (want %d), stderr '%s' (want '%s')\n", cmd, rc, want_rc, err,
                want_msg);
        fail();
    }
    free(out);
    free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char args[4096];
    const char *fa = vnp_test_fixture("golden/input.fa");
    snprintf(args, sizeof args, "'%s'", fa);
    run_fail(args, 2, "DNA needs --model DIR");
    run_fail("-m x", 2, "no INPUT given");
    run_fail("--bogus x", 2, "unknown option '--bogus'");
    snprintf(args, sizeof args, "-m '%s' '%s'", vnp_test_tmp("nowhere"), fa);
    run_fail(args, 1, "nowhere' does not exist");
    snprintf(args, sizeof args, "-m '%s' '%s'", vnp_test_fixture("golden/esm2"), fa);
    run_fail(args, 1, "esm2/tokenizer.json: cannot open the tokenizer");
    snprintf(args, sizeof args, "-m '%s' '%s'", vnp_test_fixture("golden/dnabert_s"),
             vnp_test_tmp("absent.fa"));
    run_fail(args, 1, "absent.fa");
    /* a vocab.txt that is not the ESM-2 alphabet */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && printf '<cls>\\n<pad>\\n' > '%s'",
             vnp_test_tmp("badesm"), vnp_test_tmp("badesm/vocab.txt"));
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "-p -m '%s' '%s'", vnp_test_tmp("badesm"), fa);
    run_fail(args, 1, "only 2 tokens");
    char *out = run_ok("--help");
    assert_non_null(strstr(out, "Usage: virnucpro tokenize"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dna),
        cmocka_unit_test(test_protein),
        cmocka_unit_test(test_unknowns_and_format),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
