#include "model_fixtures.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/weights.h"

static int32_t *int_array(const cJSON *a, int *len)
{
    int n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    assert_non_null(v);
    for (int i = 0; i < n; i++)
        v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    *len = n;
    return v;
}

void golden_tokens_load(golden_tokens *g)
{
    char *text = vnp_test_read_file(vnp_test_fixture("golden/expected/tokens.json"), NULL);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *ids = cJSON_GetObjectItem(root, "ids");
    const cJSON *dna = cJSON_GetObjectItem(root, "dnabert_tokens");
    const cJSON *esm = cJSON_GetObjectItem(root, "esm_tokens");
    g->n = cJSON_GetArraySize(ids);
    assert_int_equal(cJSON_GetArraySize(dna), g->n);
    assert_int_equal(cJSON_GetArraySize(esm), g->n);
    g->ids = calloc((size_t)g->n, sizeof *g->ids);
    g->dna = calloc((size_t)g->n, sizeof *g->dna);
    g->esm = calloc((size_t)g->n, sizeof *g->esm);
    g->dna_len = calloc((size_t)g->n, sizeof *g->dna_len);
    g->esm_len = calloc((size_t)g->n, sizeof *g->esm_len);
    for (int i = 0; i < g->n; i++) {
        g->ids[i] = strdup(cJSON_GetArrayItem(ids, i)->valuestring);
        g->dna[i] = int_array(cJSON_GetArrayItem(dna, i), &g->dna_len[i]);
        g->esm[i] = int_array(cJSON_GetArrayItem(esm, i), &g->esm_len[i]);
    }
    cJSON_Delete(root);
}

void golden_tokens_free(golden_tokens *g)
{
    for (int i = 0; i < g->n; i++) {
        free(g->ids[i]);
        free(g->dna[i]);
        free(g->esm[i]);
    }
    free(g->ids), free(g->dna), free(g->esm), free(g->dna_len), free(g->esm_len);
}

int golden_tokens_group_setup(void **state)
{
    golden_tokens *g = calloc(1, sizeof *g);
    assert_non_null(g);
    golden_tokens_load(g);
    *state = g;
    return 0;
}

int golden_tokens_group_teardown(void **state)
{
    golden_tokens_free(*state);
    free(*state);
    return 0;
}

int golden_fixtures_load(golden_tokens *g, vnp_tensor_map **expected)
{
    golden_tokens_load(g);
    vnp_error err = {0};
    if (vnp_safetensors_load(vnp_test_fixture("golden/expected/tensors.safetensors"), expected,
                             &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

void golden_fixtures_free(golden_tokens *g, vnp_tensor_map *expected)
{
    golden_tokens_free(g);
    vnp_tensor_map_free(expected);
}

void pack(packed *p, int32_t *const *seqs, const int *lens, const int *idx, int n)
{
    size_t total = 0;
    for (int k = 0; k < n; k++)
        total += (size_t)lens[idx[k]];
    p->tokens = malloc(sizeof(int32_t) * (total ? total : 1));
    p->cu = malloc(sizeof(int32_t) * (size_t)(n + 1));
    p->cu[0] = 0;
    for (int k = 0; k < n; k++) {
        memcpy(p->tokens + p->cu[k], seqs[idx[k]], sizeof(int32_t) * (size_t)lens[idx[k]]);
        p->cu[k + 1] = p->cu[k] + lens[idx[k]];
    }
    p->b.tokens = p->tokens;
    p->b.cu_seqlens = p->cu;
    p->b.nseq = n;
}

void pack_first(packed *p, int32_t *const *seqs, const int *lens, int n)
{
    int *idx = malloc(sizeof(int) * (size_t)(n ? n : 1));
    assert_non_null(idx);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    pack(p, seqs, lens, idx, n);
    free(idx);
}

void packed_free(packed *p)
{
    free(p->tokens);
    free(p->cu);
}

void same_outputs_then_free(float *out[2], size_t n, packed *p, vnp_backend *be,
                            const vnp_backend_ops *own_ops)
{
    assert_memory_equal(out[0], out[1], n * sizeof(float));
    free(out[0]);
    free(out[1]);
    packed_free(p);
    be->ops = own_ops;
}

double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

double max_row_rel_l2(const float *a, const float *b, size_t rows, size_t w)
{
    double worst = 0;
    for (size_t r = 0; r < rows; r++) {
        double e = rel_l2(a + r * w, b + r * w, w);
        worst = e > worst ? e : worst;
    }
    return worst;
}

float *expected_tensor(const vnp_tensor_map *m, const char *name, size_t numel)
{
    const vnp_tensor *t = vnp_tensor_map_get(m, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, VNP_DT_F32);
    assert_int_equal((size_t)vnp_tensor_numel(t), numel);
    float *v = malloc(sizeof(float) * numel); /* mapped data need not be aligned */
    assert_non_null(v);
    assert_int_equal(vnp_tensor_to_f32(t, v, NULL), VNP_OK);
    return v;
}

float *merge_rows(const float *a, const float *b, int n, int w)
{
    float *m = malloc(sizeof(float) * (size_t)(n ? n : 1) * 2 * (size_t)w);
    assert_non_null(m);
    for (size_t i = 0; i < (size_t)n; i++) {
        memcpy(m + i * 2 * w, a + i * w, sizeof(float) * (size_t)w);
        memcpy(m + i * 2 * w + w, b + i * w, sizeof(float) * (size_t)w);
    }
    return m;
}
