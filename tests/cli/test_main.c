/* The command line's own commands (src/cli/main.c): `help`, `help CMD` (= CMD --help),
 * `version` (the build as run.json records it), usage errors with exit status 2, and the
 * -d short form of --device; the one-line note that a reduced --precision is emulated on
 * the CPU, and no message for VIRNUCPRO_DISABLE_FP16 on a CPU run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro.h"

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
    assert_non_null(strstr(o, "Exit status: 0 success, 1 error, 2 usage error, 128+N stopped by "
                              "signal N (predict: resumable);\nvalidate-precision: 3 when it "
                              "ran and a threshold is not met.\n"));
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
    /* --version and -V print the same, the first line "virnucpro VERSION" */
    char *o2 = NULL, *o3 = NULL;
    assert_int_equal(run("--version", &o2, NULL), 0);
    assert_int_equal(run("-V", &o3, NULL), 0);
    assert_string_equal(o2, o);
    assert_string_equal(o3, o);
    assert_int_equal(strncmp(o2, "virnucpro 0.1.0\n", 16), 0);
    free(o), free(o2), free(o3);
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

static char *help_of(const char *cmd)
{
    char a[128], *o = NULL;
    snprintf(a, sizeof a, "%s --help", cmd);
    assert_int_equal(run(a, &o, NULL), 0);
    return o;
}

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("expected \"%s\" in:\n%s", want, text);
}

/* The help states the defaults the commands run with: those of the options' initialisers
 * (the usage texts print them from there). */
static void test_help_defaults_are_the_live_ones(void **state)
{
    (void)state;
    char w[256];
    vnp_predict_options p;
    vnp_predict_options_init(&p);
    char *o = help_of("predict");
    snprintf(w, sizeof w, "chunk length, 300 or 500 (default %d); picks the classifier", p.chunk_len);
    assert_has(o, w);
    snprintf(w, sizeof w, "(default %d on CPU, %d on CUDA)", VNP_DEFAULT_BATCH_TOKENS_CPU,
             VNP_DEFAULT_BATCH_TOKENS_CUDA);
    assert_has(o, w);
    snprintf(w, sizeof w, "length-sorted together (default %zu)", p.window_orfs);
    assert_has(o, w);
    snprintf(w, sizeof w, "plots/ (default %d; 0: none)", p.plots);
    assert_has(o, w);
    snprintf(w, sizeof w, "ETA (default %g; 0: none)", p.log_interval);
    assert_has(o, w);
    free(o);
    vnp_train_options t;
    vnp_train_features_options tf;
    vnp_train_options_init(&t);
    vnp_train_features_options_init(&tf);
    o = help_of("train");
    snprintf(w, sizeof w, "chunk length, 300 or 500 (default %d)", tf.chunk_len);
    assert_has(o, w);
    snprintf(w, sizeof w, "at most N epochs (%d)", t.epochs);
    assert_has(o, w);
    snprintf(w, sizeof w, "SGD learning rate (%g)", t.lr);
    assert_has(o, w);
    snprintf(w, sizeof w, "rows per batch (%d)", t.batch);
    assert_has(o, w);
    snprintf(w, sizeof w, "length-sorted together (%zu)", tf.window_orfs);
    assert_has(o, w);
    assert_has(o, "runs on the list's first device");
    free(o);
    /* classify's --plots is predict's */
    o = help_of("classify");
    snprintf(w, sizeof w, "(default %d; 0: none)", p.plots);
    assert_has(o, w);
    free(o);
}

/* One -l parser: the same message and status from every command that takes 300 or 500. */
static void test_one_length_parser(void **state)
{
    (void)state;
    static const char *const cmds[] = {
        "predict -l 400 x.fa", "classify d --input x.fa -l 400", "train -l 400 -o p",
        "validate-precision --esm a --dnabert b -l 400 x.fa"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *e = NULL;
        assert_int_equal(run(cmds[i], NULL, &e), 2);
        assert_string_equal(e, "virnucpro: error: -l/--length must be 300 or 500 (the published "
                               "classifiers' chunk lengths), got '400'\n");
        free(e);
    }
}

/* predict (or embed) on the golden set's first record, on the CPU; returns stderr. */
static char *cpu_run(const char *env, const char *cmd, const char *extra, int want_rc)
{
    const char *in = vnp_test_tmp("one_record.fa");
    char *all = vnp_test_read_file(vnp_test_fixture("golden/input.fa"), NULL);
    assert_non_null(all);
    char *second = strchr(all + 1, '>');
    assert_non_null(second);
    assert_int_equal(vnp_test_write_file(in, all, (size_t)(second - all)), 0);
    free(all);
    char args[8192], *o = NULL, *e = NULL;
    if (!strcmp(cmd, "predict"))
        snprintf(args, sizeof args,
                 "%s '%s' predict -d cpu -t 1 %s --esm '%s' --dnabert '%s' --classifier '%s' "
                 "-o '%s' '%s'",
                 env, vnp_test_cli(), extra, vnp_test_fixture("golden/esm2"),
                 vnp_test_fixture("golden/dnabert_s"), vnp_test_fixture("golden/classifier.pth"),
                 vnp_test_tmp("note_out"), in);
    else
        snprintf(args, sizeof args, "%s '%s' embed -d cpu -t 1 %s --model '%s' -o '%s' '%s'", env,
                 vnp_test_cli(), extra, vnp_test_fixture("golden/esm2"),
                 vnp_test_tmp("note.safetensors"), in);
    int rc = vnp_test_run(args, &o, &e);
    if (rc != want_rc)
        fail_msg("`%s`: exit %d, not %d:\n%s", args, rc, want_rc, e);
    free(o);
    return e;
}

static void assert_lines_start(const char *text, const char *prefix)
{
    for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
        if (strncmp(l, prefix, strlen(prefix)))
            fail_msg("unexpected line (not \"%s...\") in:\n%s", prefix, text);
        if (!strchr(l, '\n'))
            break;
    }
}

static void test_cpu_precision_note(void **state)
{
    (void)state;
    static const char note[] =
        "virnucpro: --precision %s on the CPU is emulated (values rounded where a GPU rounds "
        "them): as slow as fp32 or slower, for checking the precision, not for speed\n";
    char want[512];
    /* a reduced precision on the CPU: said once, before the run */
    char *e = cpu_run("", "predict", "--precision fp16", 0);
    snprintf(want, sizeof want, note, "fp16");
    assert_int_equal(strncmp(e, want, strlen(want)), 0);
    assert_null(strstr(e + strlen(want), "--precision"));
    assert_lines_start(e + strlen(want), "virnucpro: predict: ");
    free(e);
    e = cpu_run("", "embed", "--precision bf16", 0);
    snprintf(want, sizeof want, note, "bf16");
    assert_int_equal(strncmp(e, want, strlen(want)), 0);
    free(e);
    /* not with -q, not for fp32 */
    e = cpu_run("", "predict", "-q --precision fp8", 0);
    assert_string_equal(e, "");
    free(e);
    e = cpu_run("", "predict", "--precision fp32", 0);
    assert_lines_start(e, "virnucpro: predict: ");
    free(e);
    /* VIRNUCPRO_DISABLE_FP16 on a CPU run (FP32 anyway): no message at all */
    e = cpu_run("VIRNUCPRO_DISABLE_FP16=1", "predict", "", 0);
    assert_lines_start(e, "virnucpro: predict: ");
    free(e);
    e = cpu_run("VIRNUCPRO_DISABLE_FP16=1", "embed", "-q", 0);
    assert_string_equal(e, "");
    free(e);
    /* ... but when it overrides an explicit --precision, the backend says so, not the note */
    e = cpu_run("VIRNUCPRO_DISABLE_FP16=1", "predict", "--precision bf16", 0);
    static const char over[] =
        "virnucpro: warning: VIRNUCPRO_DISABLE_FP16 is set: computing in FP32 instead of BF16\n";
    assert_int_equal(strncmp(e, over, sizeof over - 1), 0);
    assert_null(strstr(e, "emulated"));
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_device_short_option),
        cmocka_unit_test(test_cpu_precision_note),
        cmocka_unit_test(test_help_defaults_are_the_live_ones),
        cmocka_unit_test(test_one_length_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
