/* Differential test against fair-esm: tools/esm_diff.py (run with $VNP_PYTHON)
 * builds fresh random ESM-2 models of other shapes with fair-esm's ESM2 class,
 * saves them as a fair-esm .pt, HF safetensors and an un-prefixed
 * pytorch_model.bin with one shared inv_freq, and runs random protein batches
 * (one > 1024 residues, <mask> tokens, rare residues). The engine must agree
 * within 1e-5 relative L2 on every token's hidden state and every pooled
 * embedding. Fails (never skips) when the reference cannot run. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_fixtures.h"
#include "test_support.h"
#include "virnucpro/weights.h"

static void test_against_fairesm(void **state)
{
    const char *py = getenv("VNP_PYTHON"), *src = getenv("VNP_SOURCE_DIR");
    if (!py || !*py || !src)
        fail_msg("VNP_PYTHON and VNP_SOURCE_DIR must be set (run through ctest)");
    char cmd[4096], out_dir[1024], manifest_path[1100];
    snprintf(out_dir, sizeof out_dir, "%s", vnp_test_tmp("esm_diff"));
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/esm_diff.py' '%s'", py, src, out_dir);
    char *serr = NULL;
    int rc = vnp_test_run(cmd, NULL, &serr);
    if (rc != 0)
        fail_msg("the fair-esm reference failed (exit %d): %s", rc, serr ? serr : "");
    free(serr);
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.json", out_dir);
    char *text = vnp_test_read_file(manifest_path, NULL);
    assert_non_null(text);
    cJSON *manifest = cJSON_Parse(text);
    free(text);
    assert_int_equal(cJSON_GetArraySize(manifest), 3);

    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP32, 2, &be, &err), VNP_OK);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, manifest)
    {
        const char *name = cJSON_GetObjectItem(entry, "name")->valuestring;
        const char *model = cJSON_GetObjectItem(entry, "model")->valuestring;
        const char *refp = cJSON_GetObjectItem(entry, "reference")->valuestring;
        int H = cJSON_GetObjectItem(entry, "hidden_size")->valueint;
        vnp_encoder *enc = NULL;
        if (vnp_encoder_load(model, be, &enc, &err))
            fail_msg("%s: %s", name, err.msg);
        assert_int_equal(vnp_encoder_kind_of(enc), VNP_ENCODER_ESM2);
        assert_int_equal(vnp_encoder_hidden_size(enc), H);
        vnp_tensor_map *ref = NULL;
        assert_int_equal(vnp_safetensors_load(refp, &ref, &err), VNP_OK);
        const vnp_tensor *tt = vnp_tensor_map_get(ref, "tokens");
        const vnp_tensor *ct = vnp_tensor_map_get(ref, "cu_seqlens");
        assert_non_null(tt);
        assert_non_null(ct);
        size_t T = (size_t)tt->shape[0];
        int n = (int)ct->shape[0] - 1;
        int32_t *tokens = malloc(T * sizeof(int32_t)), *cu = malloc((size_t)(n + 1) * 4);
        memcpy(tokens, tt->data, T * 4);
        memcpy(cu, ct->data, (size_t)(n + 1) * 4);
        vnp_batch b = {tokens, cu, n};
        float *want_h = expected_tensor(ref, "hidden", T * (size_t)H);
        float *want_m = expected_tensor(ref, "mean", (size_t)n * H);
        float *got_h = malloc(T * (size_t)H * sizeof(float));
        float *got_m = malloc((size_t)n * H * sizeof(float));
        if (vnp_encoder_hidden(enc, &b, got_h, &err) || vnp_encoder_embed(enc, &b, got_m, &err))
            fail_msg("%s: %s", name, err.msg);
        for (int s = 0; s < n; s++) {
            size_t r0 = (size_t)cu[s], len = (size_t)(cu[s + 1] - cu[s]);
            double e = rel_l2(got_h + r0 * H, want_h + r0 * H, len * H);
            if (!(e < 1e-5))
                fail_msg("%s: protein %d (%zu tokens) hidden states relative L2 %.3g", name, s,
                         len, e);
        }
        double e = max_row_rel_l2(got_m, want_m, (size_t)n, (size_t)H);
        if (!(e < 1e-5))
            fail_msg("%s: pooled embeddings worst relative L2 %.3g", name, e);
        fprintf(stderr, "%s: %d proteins, %zu tokens, worst embedding relative L2 %.2g\n", name,
                n, T, e);
        free(want_h), free(want_m), free(got_h), free(got_m), free(tokens), free(cu);
        vnp_tensor_map_free(ref);
        vnp_encoder_free(enc);
    }
    vnp_backend_free(be);
    cJSON_Delete(manifest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_fairesm)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
