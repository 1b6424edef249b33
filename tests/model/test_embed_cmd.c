/* `virnucpro embed`: both models on the golden ORFs through the CLI (several
 * packed batches), the output layout (embeddings F32 [N, H] + ids), empty
 * input, and errors that leave no output behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_fixtures.h"
#include "test_support.h"
#include "virnucpro/weights.h"

static void check_output(const char *path, const char *want_name, int n)
{
    vnp_tensor_map *m = NULL, *e = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_safetensors_load(path, &m, &err), VNP_OK);
    assert_int_equal(vnp_safetensors_load(vnp_test_fixture("golden/expected/tensors.safetensors"),
                                          &e, &err),
                     VNP_OK);
    const vnp_tensor *t = vnp_tensor_map_get(m, "embeddings");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], n);
    assert_int_equal(t->shape[1], 128);
    float *got = expected_tensor(m, "embeddings", (size_t)n * 128);
    float *want = expected_tensor(e, want_name, (size_t)n * 128);
    assert_true(max_row_rel_l2(got, want, (size_t)n, 128) < 1e-5);

    golden_tokens g;
    golden_tokens_load(&g);
    const vnp_tensor *ids = vnp_tensor_map_get(m, "ids");
    assert_non_null(ids);
    assert_int_equal(ids->dtype, VNP_DT_U8);
    const char *p = ids->data, *end = p + ids->shape[0];
    for (int i = 0; i < g.n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        assert_int_equal((size_t)(nl - p), strlen(g.ids[i]));
        assert_memory_equal(p, g.ids[i], strlen(g.ids[i]));
        p = nl + 1;
    }
    assert_ptr_equal(p, end);
    golden_tokens_free(&g);
    free(got), free(want);
    vnp_tensor_map_free(m);
    vnp_tensor_map_free(e);
}

static void test_embed_both_models(void **state)
{
    char cmd[4096], out[1024];
    snprintf(out, sizeof out, "%s", vnp_test_tmp("esm.safetensors"));
    snprintf(cmd, sizeof cmd, "'%s' embed --model '%s' -o '%s' -t 2 --batch-tokens 700 -q '%s'",
             vnp_test_cli(), vnp_test_fixture("golden/esm2"), out,
             vnp_test_fixture("golden/preprocess_500/dev_identified_protein.faa"));
    char *serr = NULL;
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 0);
    assert_string_equal(serr, "");
    free(serr);
    check_output(out, "esm_mean", 41);

    snprintf(out, sizeof out, "%s", vnp_test_tmp("dna.safetensors"));
    snprintf(cmd, sizeof cmd, "'%s' embed -m '%s' -o '%s' -t 1 -b 300 '%s'", vnp_test_cli(),
             vnp_test_fixture("golden/dnabert_s"), out,
             vnp_test_fixture("golden/preprocess_500/dev_identified_nucleotide.fa"));
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 0);
    assert_non_null(strstr(serr, "virnucpro: embed: 41 records, 3593 tokens, DNABERT-S [41, 128]"));
    free(serr);
    check_output(out, "dnabert_mean", 41);
}

/* --precision bf16 on the CPU: emulated (the embeddings move from FP32's by about
 * BF16's rounding, 1e-3 relative, not by 0 and not by much more) and recorded in the
 * file's metadata; without --precision no precision is recorded (as before). */
static void test_embed_precision(void **state)
{
    char cmd[4096], out[1024];
    snprintf(out, sizeof out, "%s", vnp_test_tmp("esm_bf16.safetensors"));
    snprintf(cmd, sizeof cmd,
             "'%s' embed --model '%s' -o '%s' -t 2 --precision bf16 --device cpu '%s'",
             vnp_test_cli(), vnp_test_fixture("golden/esm2"), out,
             vnp_test_fixture("golden/preprocess_500/dev_identified_protein.faa"));
    char *serr = NULL;
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 0);
    assert_non_null(strstr(serr, "on cpu (2 threads, bf16 emulated)"));
    free(serr);
    vnp_tensor_map *m = NULL, *e = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_safetensors_load(out, &m, &err), VNP_OK);
    assert_int_equal(vnp_safetensors_load(vnp_test_fixture("golden/expected/tensors.safetensors"),
                                          &e, &err),
                     VNP_OK);
    float *got = expected_tensor(m, "embeddings", 41 * 128);
    float *want = expected_tensor(e, "esm_mean", 41 * 128);
    double d = max_row_rel_l2(got, want, 41, 128);
    if (!(d > 1e-4 && d < 1e-2))
        fail_msg("bf16 worst ORF relative L2 to FP32 %.3g: expected about 1e-3", d);
    free(got), free(want);
    vnp_tensor_map_free(m);
    vnp_tensor_map_free(e);
    char *text = vnp_test_read_file(out, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text + 8, "\"precision\":\"bf16\""));
    free(text);
    text = vnp_test_read_file(vnp_test_tmp("esm.safetensors"), NULL); /* the FP32 run above */
    assert_non_null(text);
    assert_null(strstr(text + 8, "\"precision\""));
    free(text);
}

static void test_embed_empty_input(void **state)
{
    char cmd[4096], out[1024], in[1024];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("empty.fa"));
    assert_int_equal(vnp_test_write_file(in, "", 0), 0);
    snprintf(out, sizeof out, "%s", vnp_test_tmp("empty.safetensors"));
    snprintf(cmd, sizeof cmd, "'%s' embed -m '%s' -o '%s' -q '%s'", vnp_test_cli(),
             vnp_test_fixture("golden/esm2_fairesm"), out, in);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    vnp_tensor_map *m = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_safetensors_load(out, &m, &err), VNP_OK);
    const vnp_tensor *t = vnp_tensor_map_get(m, "embeddings");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 128);
    vnp_tensor_map_free(m);
}

static void test_embed_errors(void **state)
{
    char cmd[4096], out[1024], *serr = NULL;
    snprintf(out, sizeof out, "%s", vnp_test_tmp("never.safetensors"));
    snprintf(cmd, sizeof cmd, "'%s' embed -o '%s' x.fa", vnp_test_cli(), out);
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 2);
    assert_string_equal(serr, "virnucpro: error: missing --model PATH; see 'virnucpro embed "
                              "--help'\n");
    free(serr);

    snprintf(cmd, sizeof cmd, "'%s' embed -m /nonexistent/model -o '%s' x.fa", vnp_test_cli(),
             out);
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 1);
    assert_string_equal(serr, "virnucpro: error: model '/nonexistent/model' does not exist (a "
                              "model directory or a fair-esm .pt file is expected)\n");
    free(serr);

    /* a missing input: an error, and no output file (nor temporary files) left */
    snprintf(cmd, sizeof cmd, "'%s' embed -m '%s' -o '%s' '%s'", vnp_test_cli(),
             vnp_test_fixture("golden/esm2"), out, vnp_test_tmp("missing.fa"));
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 1);
    assert_non_null(strstr(serr, "missing.fa"));
    free(serr);
    assert_int_not_equal(access(out, F_OK), 0);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.rows.tmp", out);
    assert_int_not_equal(access(tmp, F_OK), 0);

    snprintf(cmd, sizeof cmd, "'%s' embed -m '%s' -o '%s' -t many x.fa", vnp_test_cli(),
             vnp_test_fixture("golden/esm2"), out);
    assert_int_equal(vnp_test_run(cmd, NULL, &serr), 2);
    assert_string_equal(serr, "virnucpro: error: -t/--threads expects a whole number from 0 to "
                              "1024, got 'many'\n");
    free(serr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_both_models),
        cmocka_unit_test(test_embed_precision),
        cmocka_unit_test(test_embed_empty_input),
        cmocka_unit_test(test_embed_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
