/* Bad model input is refused before any work, with the exact code and a
 * message naming the file and tensor: missing and mis-shaped tensors, a
 * truncated checkpoint, a config that belongs to another model, a classifier
 * whose width does not match the encoders; plus device names, the FP16
 * switch, bad batches, and ALiBi slopes for any head count. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "model/encoder_internal.h"
#include "st_writer.h"
#include "test_support.h"
#include "virnucpro/weights.h"

static vnp_backend *BE;

static int setup(void **state)
{
    vnp_error err = {0};
    return vnp_backend_create("cpu", VNP_PREC_FP32, 1, &BE, &err) ? -1 : 0;
}

static int teardown(void **state)
{
    vnp_backend_free(BE);
    return 0;
}

/* A model directory under VNP_TMP with `config` copied from a golden model. */
static const char *model_dir(const char *name, const char *config_from)
{
    static char dir[4][1024];
    static int next;
    char *d = dir[next++ % 4];
    snprintf(d, 1024, "%s", vnp_test_tmp(name));
    assert_true(mkdir(d, 0755) == 0 || errno == EEXIST);
    size_t len;
    char *cfg = vnp_test_read_file(vnp_test_fixture(config_from), &len);
    assert_non_null(cfg);
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", d);
    assert_int_equal(vnp_test_write_file(path, cfg, len), 0);
    free(cfg);
    return d;
}

static vnp_tensor_map *golden_map(const char *rel)
{
    vnp_tensor_map *m = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_checkpoint_load(vnp_test_fixture(rel), &m, &err), VNP_OK);
    return m;
}

static void expect_load_error(const char *dir, vnp_code code, const char *msg)
{
    vnp_encoder *enc = (vnp_encoder *)1;
    vnp_error err = {0};
    assert_int_equal(vnp_encoder_load(dir, BE, &enc, &err), code);
    assert_null(enc);
    assert_string_equal(err.msg, msg);
}

static void test_missing_tensor(void **state)
{
    vnp_tensor_map *m = golden_map("golden/esm2/model.safetensors");
    const char *dir = model_dir("esm_missing", "golden/esm2/config.json");
    char path[1200], msg[2048];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_edited(m, path, "esm.encoder.layer.1.attention.self.value.weight", NULL);
    snprintf(msg, sizeof msg,
             "'%s': tensor 'esm.encoder.layer.1.attention.self.value.weight' is missing "
             "(expected shape [128, 128]); the checkpoint is incomplete or does not match its "
             "configuration",
             path);
    expect_load_error(dir, VNP_ESHAPE, msg);
    vnp_tensor_map_free(m);

    m = golden_map("golden/dnabert_s/pytorch_model.bin");
    dir = model_dir("dna_missing", "golden/dnabert_s/config.json");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_edited(m, path, "encoder.layer.1.mlp.wo.bias", NULL);
    snprintf(msg, sizeof msg,
             "'%s': tensor 'encoder.layer.1.mlp.wo.bias' is missing (expected shape [128]); the "
             "checkpoint is incomplete or does not match its configuration",
             path);
    expect_load_error(dir, VNP_ESHAPE, msg);
    vnp_tensor_map_free(m);
}

static void test_misshaped_tensor(void **state)
{
    vnp_tensor_map *m = golden_map("golden/esm2/model.safetensors");
    const char *dir = model_dir("esm_shape", "golden/esm2/config.json");
    char path[1200], msg[2048];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_edited(m, path, NULL, "esm.encoder.layer.2.intermediate.dense.weight");
    snprintf(msg, sizeof msg,
             "'%s': tensor 'esm.encoder.layer.2.intermediate.dense.weight' has shape [511, 128]; "
             "expected [512, 128]",
             path);
    expect_load_error(dir, VNP_ESHAPE, msg);
    /* the per-layer rotary frequencies are checked too */
    st_write_edited(m, path, NULL, "esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq");
    snprintf(msg, sizeof msg,
             "'%s': tensor 'esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq' has "
             "shape [31]; expected [32]",
             path);
    expect_load_error(dir, VNP_ESHAPE, msg);
    vnp_tensor_map_free(m);
}

static void test_truncated_file(void **state)
{
    size_t len;
    char *data = vnp_test_read_file(vnp_test_fixture("golden/esm2/model.safetensors"), &len);
    assert_non_null(data);
    const char *dir = model_dir("esm_truncated", "golden/esm2/config.json");
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(vnp_test_write_file(path, data, len / 2), 0);
    free(data);
    vnp_encoder *enc = NULL;
    vnp_error err = {0};
    vnp_code rc = vnp_encoder_load(dir, BE, &enc, &err);
    assert_int_equal(rc, VNP_EFORMAT);
    assert_null(enc);
    char prefix[1200];
    snprintf(prefix, sizeof prefix, "loading model '%s': ", dir);
    assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(err.msg, "model.safetensors"));

    /* a truncated pickle checkpoint too */
    data = vnp_test_read_file(vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"), &len);
    dir = model_dir("dna_truncated", "golden/dnabert_s/config.json");
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    assert_int_equal(vnp_test_write_file(path, data, len - 100), 0);
    free(data);
    rc = vnp_encoder_load(dir, BE, &enc, &err);
    assert_int_not_equal(rc, VNP_OK);
    assert_null(enc);
    snprintf(prefix, sizeof prefix, "loading model '%s': ", dir);
    assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
}

static void test_wrong_config(void **state)
{
    vnp_tensor_map *m = golden_map("golden/esm2/model.safetensors");
    const char *dir = model_dir("esm_with_bert_config", "golden/dnabert_s/config.json");
    char path[1200], msg[2048];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_edited(m, path, NULL, NULL);
    snprintf(msg, sizeof msg, "'%s/config.json' says DNABERT-S but '%s' holds ESM-2 weights", dir,
             path);
    expect_load_error(dir, VNP_EFORMAT, msg);
    vnp_tensor_map_free(m);

    /* no checkpoint at all */
    dir = model_dir("empty_model", "golden/esm2/config.json");
    snprintf(msg, sizeof msg,
             "model directory '%s' has no model.safetensors, pytorch_model.bin or single "
             "fair-esm .pt file",
             dir);
    expect_load_error(dir, VNP_ENOTFOUND, msg);
    snprintf(path, sizeof path, "%s/nothing_here", dir);
    snprintf(msg, sizeof msg,
             "model '%s' does not exist (a model directory or a fair-esm .pt file is expected)",
             path);
    expect_load_error(path, VNP_ENOTFOUND, msg);

    /* a checkpoint of something else */
    m = golden_map("golden/classifier.pth");
    dir = model_dir("not_an_encoder", "golden/esm2/config.json");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_write_edited(m, path, NULL, NULL);
    snprintf(msg, sizeof msg,
             "'%s' holds neither an ESM-2 nor a DNABERT-S model (no "
             "'embeddings.word_embeddings.weight' with 'encoder.layer.0.attention.self."
             "{query,Wqkv}.weight', nor fair-esm 'embed_tokens.weight')",
             path);
    expect_load_error(dir, VNP_EFORMAT, msg);
    vnp_tensor_map_free(m);
}

static void test_classifier_errors(void **state)
{
    vnp_classifier *c = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_classifier_load(vnp_test_fixture("golden/classifier.pth"), &c, &err),
                     VNP_OK);
    assert_int_equal(vnp_classifier_check_inputs(c, 128, 64, &err), VNP_ESHAPE);
    assert_string_equal(err.msg, "the classifier takes 256 features per ORF but DNABERT-S (128) "
                                 "+ ESM-2 (64) give 192; use the classifier trained with these "
                                 "two models");
    vnp_classifier_free(c);

    /* a classifier without its BatchNorm statistics */
    vnp_tensor_map *m = golden_map("golden/classifier.pth");
    char path[1200], msg[2048];
    snprintf(path, sizeof path, "%s", vnp_test_tmp("no_running_var.safetensors"));
    st_write_edited(m, path, "bn1.running_var", NULL);
    c = (vnp_classifier *)1;
    assert_int_equal(vnp_classifier_load(path, &c, &err), VNP_ESHAPE);
    assert_null(c);
    snprintf(msg, sizeof msg,
             "classifier '%s': tensor 'bn1.running_var' is missing (expected shape [32]); is "
             "this a VirNucPro MLPClassifier saved with torch.save(model)?",
             path);
    assert_string_equal(err.msg, msg);
    st_write_edited(m, path, NULL, "output_layer.bias");
    assert_int_equal(vnp_classifier_load(path, &c, &err), VNP_ESHAPE);
    snprintf(msg, sizeof msg,
             "classifier '%s': tensor 'output_layer.bias' has shape [1]; expected [2]", path);
    assert_string_equal(err.msg, msg);
    vnp_tensor_map_free(m);
}

static void test_devices_and_fp16_switch(void **state)
{
    vnp_backend *be = (vnp_backend *)1;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_create("gpu", VNP_PREC_FP32, 1, &be, &err), VNP_EINVAL);
    assert_null(be);
    assert_string_equal(err.msg, "unknown device 'gpu'; use cpu, cuda or cuda:N");
    assert_int_equal(vnp_backend_create("cuda:x", VNP_PREC_FP16, 1, &be, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "device 'cuda:x': expected cuda:N with N a GPU index such as 0");

    assert_int_equal(vnp_backend_create("cpu", (vnp_precision)9, 1, &be, &err), VNP_EINVAL);
    /* the default precision: FP16 on a GPU, FP32 on the CPU; an asked one is kept */
    assert_int_equal(vnp_precision_effective("cpu", VNP_PREC_DEFAULT), VNP_PREC_FP32);
    assert_int_equal(vnp_precision_effective("cuda:1", VNP_PREC_DEFAULT), VNP_PREC_FP16);
    assert_int_equal(vnp_precision_effective("cpu", VNP_PREC_FP8_TENSOR), VNP_PREC_FP8_TENSOR);
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_DEFAULT, 1, &be, &err), VNP_OK);
    assert_int_equal(vnp_backend_precision(be), VNP_PREC_FP32);
    assert_string_equal(vnp_backend_name(be), "cpu (1 thread)");
    vnp_backend_free(be);
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_BF16, 1, &be, &err), VNP_OK);
    assert_int_equal(vnp_backend_precision(be), VNP_PREC_BF16);
    assert_string_equal(vnp_backend_name(be), "cpu (1 thread, bf16 emulated)");
    vnp_backend_free(be);

    setenv("VIRNUCPRO_DISABLE_FP16", "Yes", 1);
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP16, 1, &be, &err), VNP_OK);
    char *log = vnp_test_capture_log_end();
    assert_non_null(strstr(log, "VIRNUCPRO_DISABLE_FP16 is set: computing in FP32 instead of FP16"));
    free(log);
    assert_int_equal(vnp_backend_precision(be), VNP_PREC_FP32);
    assert_int_equal(vnp_precision_effective("cpu", VNP_PREC_FP8), VNP_PREC_FP32);
    vnp_backend_free(be);
    setenv("VIRNUCPRO_DISABLE_FP16", "0", 1);
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP16, 1, &be, &err), VNP_OK);
    log = vnp_test_capture_log_end();
    assert_null(strstr(log, "VIRNUCPRO_DISABLE_FP16"));
    free(log);
    vnp_backend_free(be);
    unsetenv("VIRNUCPRO_DISABLE_FP16");
}

static void test_bad_batches(void **state)
{
    vnp_encoder *enc = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_encoder_load(vnp_test_fixture("golden/esm2"), BE, &enc, &err), VNP_OK);
    int32_t toks[5] = {0, 5, 40, 6, 2}, cu[2] = {0, 5};
    vnp_batch b = {toks, cu, 1};
    float out[128];
    assert_int_equal(vnp_encoder_embed(enc, &b, out, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "ESM-2 batch: sequence 0 has token id 40 at position 2, outside "
                                 "the model's vocabulary of 33");
    int32_t shortseq[2] = {0, 2}, cu2[2] = {0, 2};
    vnp_batch b2 = {shortseq, cu2, 1};
    assert_int_equal(vnp_encoder_embed(enc, &b2, out, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "ESM-2 batch: sequence 0 has 2 tokens; at least 3 (<cls>, one "
                                 "residue, <eos>) are needed");
    vnp_encoder_free(enc);
}

static void test_alibi_slopes(void **state)
{
    float s[16];
    vnp_alibi_slopes(1, s);
    assert_true(s[0] == 0.00390625f); /* 2^-8 */
    vnp_alibi_slopes(2, s);
    assert_true(s[0] == 0.0625f && s[1] == 0.00390625f);
    vnp_alibi_slopes(3, s); /* [2^-4, 2^-8] + every other of the 4-head slopes: [2^-2] */
    assert_true(s[0] == 0.0625f && s[1] == 0.00390625f && s[2] == 0.25f);
    vnp_alibi_slopes(12, s); /* 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 */
    for (int i = 0; i < 8; i++)
        assert_true(s[i] == ldexpf(1.0f, -(i + 1)));
    for (int i = 0; i < 4; i++)
        assert_true(fabsf(s[8 + i] - (float)pow(2.0, -0.5 - i)) <= 1e-7f * s[8 + i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_tensor),    cmocka_unit_test(test_misshaped_tensor),
        cmocka_unit_test(test_truncated_file),    cmocka_unit_test(test_wrong_config),
        cmocka_unit_test(test_classifier_errors), cmocka_unit_test(test_devices_and_fp16_switch),
        cmocka_unit_test(test_bad_batches),       cmocka_unit_test(test_alibi_slopes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
