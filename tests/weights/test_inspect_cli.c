/* virnucpro inspect: listing of the golden classifier, attributes, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static int run(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' inspect %s", vnp_test_cli(), args);
    return vnp_test_run(cmd, out, err);
}

static void test_classifier_listing(void **state)
{
    (void)state;
    const char *path = vnp_test_fixture("golden/classifier_cuda.pth");
    char args[4200], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "'%s'", path);
    assert_int_equal(run(args, &out, &err), 0);
    char want[8192];
    snprintf(want, sizeof want,
             "# %s: 9 tensors (33680 bytes), 11 attributes\n"
             "hidden_layer.weight\tF32\t[32, 256]\n"
             "hidden_layer.bias\tF32\t[32]\n"
             "bn1.weight\tF32\t[32]\n"
             "bn1.bias\tF32\t[32]\n"
             "bn1.running_mean\tF32\t[32]\n"
             "bn1.running_var\tF32\t[32]\n"
             "bn1.num_batches_tracked\tI64\t[]\n"
             "output_layer.weight\tF32\t[2, 32]\n"
             "output_layer.bias\tF32\t[2]\n"
             "@hidden_layer.in_features\t256\n"
             "@hidden_layer.out_features\t32\n"
             "@bn1.num_features\t32\n"
             "@bn1.eps\t1e-05\n"
             "@bn1.momentum\t0.1\n"
             "@bn1.affine\t1\n"
             "@bn1.track_running_stats\t1\n"
             "@output_layer.in_features\t32\n"
             "@output_layer.out_features\t2\n"
             "@dropout.p\t0.5\n"
             "@dropout.inplace\t0\n",
             path);
    assert_string_equal(out, want);
    assert_string_equal(err, "");
    free(out);
    free(err);

    snprintf(args, sizeof args, "--stats '%s'", path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "\nbn1.running_var\tF32\t[32]\tmin="));
    assert_non_null(strstr(out, " nonfinite=0\n"));
    assert_non_null(strstr(out, "\nbn1.num_batches_tracked\tI64\t[]\n"));
    free(out);
    free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(run("", &out, &err), 2);
    assert_non_null(strstr(err, "virnucpro: error: no checkpoint given"));
    free(out);
    free(err);
    /* a missing file fails, the good one after it is still listed */
    char args[8400];
    const char *missing = vnp_test_tmp("missing.pth");
    snprintf(args, sizeof args, "'%s' '%s'", missing,
             vnp_test_fixture("golden/esm2/model.safetensors"));
    assert_int_equal(run(args, &out, &err), 1);
    char want[4400];
    snprintf(want, sizeof want, "virnucpro: error: %s: cannot open: No such file or directory\n",
             missing);
    assert_string_equal(err, want);
    assert_non_null(strstr(out, "61 tensors"));
    assert_non_null(strstr(out, "\n@__metadata__.format\tpt\n"));
    free(out);
    free(err);
    assert_int_equal(run("--bogus x", &out, &err), 2);
    assert_non_null(strstr(err, "unknown option '--bogus'"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier_listing),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
