/* The role each weight is uploaded with (vnp_weight_kind), as the golden ESM-2 (Hugging
 * Face and fair-esm layouts) and DNABERT-S checkpoints load: the backend decides from
 * the role, not from the tensor's rank, how it stores a weight (a GEMM's bias in the
 * compute dtype, LayerNorm parameters in F32), so every upload is recorded and checked
 * against its tensor's name, and the counts per layer against the architecture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "test_support.h"

#define MAX_UPLOADS 512
static struct {
    char name[160];
    vnp_weight_kind kind;
} rec[MAX_UPLOADS];
static int nrec;
static const vnp_backend_ops *cpu_ops;

static vnp_code record_upload(vnp_backend *be, const vnp_tensor *t, vnp_weight_kind kind,
                              vnp_buf *out, vnp_error *err)
{
    assert_true(nrec < MAX_UPLOADS);
    snprintf(rec[nrec].name, sizeof rec[nrec].name, "%s", t->name ? t->name : "");
    rec[nrec++].kind = kind;
    return cpu_ops->upload_weight(be, t, kind, out, err);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* The role a tensor of this name has in either model. */
static vnp_weight_kind role_of(const char *name)
{
    if (strstr(name, "LayerNorm") || strstr(name, "layer_norm") || strstr(name, "layernorm") ||
        strstr(name, "token_type_embeddings"))
        return VNP_WEIGHT_VECTOR;
    if (ends_with(name, "word_embeddings.weight") || ends_with(name, "embed_tokens.weight"))
        return VNP_WEIGHT_TABLE;
    if (ends_with(name, ".bias"))
        return VNP_WEIGHT_BIAS;
    return VNP_WEIGHT_GEMM;
}

/* Loads `rel`, checks every upload's role; per layer `gemm` GEMM weights, `bias` biases
 * and 4 LayerNorm vectors, plus one table and `top_vectors` vectors. */
static void check(const char *rel, int gemm, int bias, int top_vectors)
{
    vnp_backend *be = NULL;
    vnp_error err = {0};
    assert_int_equal(vnp_backend_create("cpu", VNP_PREC_FP32, 1, &be, &err), VNP_OK);
    static vnp_backend_ops recording;
    cpu_ops = be->ops;
    recording = *be->ops;
    recording.upload_weight = record_upload;
    be->ops = &recording;
    nrec = 0;
    vnp_encoder *enc = NULL;
    if (vnp_encoder_load(vnp_test_fixture(rel), be, &enc, &err))
        fail_msg("loading %s: %s", rel, err.msg);
    int count[4] = {0};
    for (int i = 0; i < nrec; i++) {
        if (rec[i].kind != role_of(rec[i].name))
            fail_msg("%s: '%s' uploaded as kind %d, not %d", rel, rec[i].name, (int)rec[i].kind,
                     (int)role_of(rec[i].name));
        count[rec[i].kind]++;
    }
    int layers = count[VNP_WEIGHT_GEMM] / gemm;
    assert_true(layers >= 1);
    assert_int_equal(count[VNP_WEIGHT_GEMM], gemm * layers);
    assert_int_equal(count[VNP_WEIGHT_BIAS], bias * layers);
    assert_int_equal(count[VNP_WEIGHT_VECTOR], 4 * layers + top_vectors);
    assert_int_equal(count[VNP_WEIGHT_TABLE], 1);
    vnp_encoder_free(enc);
    be->ops = cpu_ops;
    vnp_backend_free(be);
}

/* q|k|v, out, fc1, fc2 with their biases; the final LayerNorm. */
static void test_esm2(void **state)
{
    (void)state;
    check("golden/esm2", 4, 4, 2);
    check("golden/esm2_fairesm", 4, 4, 2);
}

/* Wqkv, out, gated_layers (no bias), wo; token_type_embeddings[0] and the embeddings'
 * LayerNorm. */
static void test_dnabert_s(void **state)
{
    (void)state;
    check("golden/dnabert_s", 4, 3, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_esm2),
        cmocka_unit_test(test_dnabert_s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
