/* The command line's own commands (src/cli/main.c): `help`, `help CMD` (= CMD --help),
 * `version` (the build as run.json records it), usage errors with exit status 2, and the
 * -d short form of --device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static int run(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s", vnp_test_cli(), args);
    return vnp_test_run(cmd, out, err);
}

static void test_help(void **state)
{
    (void)state;
    char *o = NULL, *e = NULL, *o2 = NULL;
    assert_int_equal(run("help", &o, NULL), 0);
    assert_non_null(strstr(o, "\nCommands:\n"));
    assert_non_null(strstr(o, "  classify "));
    assert_non_null(strstr(o, "  version "));
    assert_non_null(strstr(o, "Exit status: 0 success, 1 error, 2 usage error"));
    free(o);
    /* help CMD is CMD --help, byte for byte, for every command listed */
    static const char *const cmds[] = {"predict", "classify", "merge", "embed", "preprocess",
                                       "validate-precision", "models", "inspect", "tokenize",
                                       "train"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char a[256];
        snprintf(a, sizeof a, "help %s", cmds[i]);
        assert_int_equal(run(a, &o, NULL), 0);
        snprintf(a, sizeof a, "%s --help", cmds[i]);
        assert_int_equal(run(a, &o2, NULL), 0);
        assert_string_equal(o, o2);
        assert_true(strlen(o) > 100);
        free(o);
        free(o2);
    }
    assert_int_equal(run("help nope", NULL, &e), 2);
    assert_non_null(strstr(e, "help takes one command name, got 'nope'"));
    free(e);
    assert_int_equal(run("nope", NULL, &e), 2);
    assert_non_null(strstr(e, "unknown command 'nope'"));
    free(e);
}

static void test_version(void **state)
{
    (void)state;
    char *o = NULL, *e = NULL;
    assert_int_equal(run("version", &o, NULL), 0);
    char v[64], commit[128], type[64];
    assert_int_equal(sscanf(o, "virnucpro %63s\ngit commit: %127s\nbuild type: %63s", v, commit,
                            type),
                     3);
    assert_string_equal(v, "0.1.0");
    assert_true(!strcmp(commit, "unknown") || strspn(commit, "0123456789abcdef") == 40);
    assert_non_null(strstr(o, "\nCUDA architectures: "));
    assert_non_null(strstr(o, "\nBLAS: OpenBLAS"));
    free(o);
    assert_int_equal(run("--version", &o, NULL), 0);
    assert_string_equal(o, "virnucpro 0.1.0\n");
    free(o);
    assert_int_equal(run("version extra", NULL, &e), 2);
    free(e);
}

static void test_device_short_option(void **state)
{
    (void)state;
    char *e = NULL;
    /* -d is --device on predict and validate-precision (embed had it): a bad list is a
     * usage error naming it, before any model loads */
    assert_int_equal(run("predict -d gpu x.fa", NULL, &e), 2);
    assert_non_null(strstr(e, "gpu"));
    free(e);
    assert_int_equal(run("validate-precision --esm a --dnabert b -d gpu x.fa", NULL, &e), 2);
    assert_non_null(strstr(e, "gpu"));
    free(e);
    char *o = NULL;
    assert_int_equal(run("predict --help", &o, NULL), 0);
    assert_non_null(strstr(o, "  -d, --device LIST"));
    assert_non_null(strstr(o, "--log-interval S"));
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_device_short_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
