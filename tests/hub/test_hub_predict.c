/* Issue 6's promise: `virnucpro predict` with no model options fetches the models
 * on first use (here from lighttpd serving the golden models in the hub's layout),
 * and gives the expected outputs; later runs use the cache, offline too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_internal.h"
#include "hub_test_server.h"
#include "test_support.h"

static hub_server srv;

static void rm_rf(const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int group_setup(void **state)
{
    (void)state;
    char tree[2048];
    snprintf(tree, sizeof tree, "%s", vnp_test_tmp("tree"));
    rm_rf(tree);
    rm_rf(vnp_test_tmp("cache"));
    hub_tree_build(tree);
    hub_server_start(&srv, tree, vnp_test_tmp("server"));
    char url[256];
    snprintf(url, sizeof url, "%s/hub", srv.base);
    setenv("VIRNUCPRO_HUB_URL", url, 1);
    snprintf(url, sizeof url, "%s/gh", srv.base);
    setenv("VIRNUCPRO_GITHUB_URL", url, 1);
    setenv("VIRNUCPRO_MODELS", vnp_test_tmp("cache"), 1);
    setenv("HF_HOME", vnp_test_tmp("no-hf"), 1);
    setenv("TORCH_HOME", vnp_test_tmp("no-torch"), 1);
    setenv("no_proxy", "*", 1);
    static const char *const unset[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                        "VIRNUCPRO_OFFLINE", "XDG_CACHE_HOME", "HF_HUB_CACHE",
                                        NULL};
    for (int i = 0; unset[i]; i++)
        unsetenv(unset[i]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hub_server_stop(&srv);
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected to find \"%s\" in:\n%s", needle, hay ? hay : "(null)");
}

/* Same rows, same IDs and labels, scores within tol. */
/* Scores within 2e-5 of the row-by-row reference: predict's classifier is a batched
 * FP32 GEMM (see test_predict_cli.c SCORE_TOL). */
static void assert_same_results(const char *got, const char *want, double tol)
{
    char *g = vnp_test_read_file(got, NULL), *w = vnp_test_read_file(want, NULL);
    if (!g || !w)
        fail_msg("cannot read %s or %s", got, want);
    char *sg, *sw;
    char *lg = strtok_r(g, "\n", &sg), *lw = strtok_r(w, "\n", &sw);
    int line = 1;
    for (; lg && lw; lg = strtok_r(NULL, "\n", &sg), lw = strtok_r(NULL, "\n", &sw), line++) {
        char ig[128], iw[128], bg[32], bw[32];
        double g1 = 0, g2 = 0, w1 = 0, w2 = 0;
        if (line == 1) {
            assert_string_equal(lg, lw);
            continue;
        }
        if (sscanf(lg, "%127s %31s %lf %lf", ig, bg, &g1, &g2) != 4 ||
            sscanf(lw, "%127s %31s %lf %lf", iw, bw, &w1, &w2) != 4)
            fail_msg("%s line %d is not ID, label, two scores: %s", got, line, lg);
        assert_string_equal(ig, iw);
        assert_string_equal(bg, bw);
        if (fabs(g1 - w1) > tol || fabs(g2 - w2) > tol)
            fail_msg("%s line %d: scores %g %g, want %g %g", got, line, g1, g2, w1, w2);
    }
    if (lg || lw)
        fail_msg("%s and %s have different numbers of rows", got, want);
    free(g);
    free(w);
}

static int predict(const char *env, const char *args, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s' predict %s -t 2 '%s'", env, vnp_test_cli(), args,
             vnp_test_fixture("golden/input.fa"));
    return vnp_test_run(cmd, NULL, err);
}

static void test_predict_fetches_models_on_first_use(void **state)
{
    (void)state;
    char out[2048], args[4096], got[2300];
    snprintf(out, sizeof out, "%s", vnp_test_tmp("out500"));
    rm_rf(out);
    snprintf(args, sizeof args, "-l 500 -o '%s'", out);
    char *err = NULL;
    int rc = predict("", args, &err);
    if (rc != 0)
        fail_msg("predict failed (%d): %s", rc, err);
    assert_contains(err, "esm2_t36_3B_UR50D is not cached yet: fetching it");
    assert_contains(err, "dnabert-s is not cached yet: fetching it");
    assert_contains(err, "classifier-500 is not cached yet: fetching it");
    free(err);
    snprintf(got, sizeof got, "%s/prediction_results.txt", out);
    assert_same_results(got, vnp_test_fixture("golden/expected/prediction_results.txt"), 2e-5);
    snprintf(got, sizeof got, "%s/prediction_results_highestscore.csv", out);
    vnp_test_assert_files_equal(got,
                                vnp_test_fixture("golden/expected/prediction_results_highestscore.csv"));
    assert_int_equal(
        hub_log_count(&srv, "GET", 200, hub_model_url_path("classifier-300", "300_model.pth")), 0);

    /* -l 300 fetches its classifier only; the encoders come from the cache */
    int esm_gets =
        hub_log_count(&srv, "GET", 0, hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors"));
    assert_int_equal(esm_gets, 1);
    snprintf(out, sizeof out, "%s", vnp_test_tmp("out300"));
    rm_rf(out);
    snprintf(args, sizeof args, "-l 300 -o '%s'", out);
    rc = predict("", args, &err);
    if (rc != 0)
        fail_msg("predict -l 300 failed (%d): %s", rc, err);
    free(err);
    assert_int_equal(
        hub_log_count(&srv, "GET", 200, hub_model_url_path("classifier-300", "300_model.pth")), 1);
    assert_int_equal(
        hub_log_count(&srv, "GET", 0, hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors")),
        1);

    /* offline, from the cache, with no server at all */
    snprintf(out, sizeof out, "%s", vnp_test_tmp("out_offline"));
    rm_rf(out);
    snprintf(args, sizeof args, "-l 500 -o '%s'", out);
    rc = predict("VIRNUCPRO_OFFLINE=1 VIRNUCPRO_HUB_URL=http://127.0.0.1:1 "
                 "VIRNUCPRO_GITHUB_URL=http://127.0.0.1:1",
                 args, &err);
    if (rc != 0)
        fail_msg("offline predict failed (%d): %s", rc, err);
    free(err);
    snprintf(got, sizeof got, "%s/prediction_results.txt", out);
    assert_same_results(got, vnp_test_fixture("golden/expected/prediction_results.txt"), 2e-5);
}

static void test_predict_offline_without_models_names_them(void **state)
{
    (void)state;
    char env[4096], args[4096];
    snprintf(env, sizeof env, "VIRNUCPRO_OFFLINE=1 VIRNUCPRO_MODELS='%s'", vnp_test_tmp("empty"));
    rm_rf(vnp_test_tmp("empty"));
    snprintf(args, sizeof args, "-l 300 -o '%s'", vnp_test_tmp("out_none"));
    char *err = NULL;
    assert_int_equal(predict(env, args, &err), 1);
    assert_contains(err, "3 models are not in the cache");
    assert_contains(err, "esm2_t36_3B_UR50D dnabert-s classifier-300");
    assert_contains(err, "virnucpro models fetch esm2_t36_3B_UR50D dnabert-s classifier-300 "
                         "--dir DIR");
    free(err);
    /* a model given explicitly is not asked for */
    snprintf(args, sizeof args, "-l 300 -o '%s' --classifier '%s'", vnp_test_tmp("out_none"),
             vnp_test_fixture("golden/classifier.pth"));
    assert_int_equal(predict(env, args, &err), 1);
    assert_contains(err, "2 models are not in the cache");
    assert_contains(err, ": esm2_t36_3B_UR50D dnabert-s;");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_fetches_models_on_first_use),
        cmocka_unit_test(test_predict_offline_without_models_names_them),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
