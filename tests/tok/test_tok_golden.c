/* Token ids of every ORF of the golden preprocess_500 set equal the reference
 * tokenizers' ids in expected/tokens.json, for DNABERT-S (DNA) and ESM-2 (protein). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fasta_lite.h"
#include "test_support.h"
#include "virnucpro/tok.h"

static cJSON *load_expected(void)
{
    size_t len;
    char *json = vnp_test_read_file(vnp_test_fixture("golden/expected/tokens.json"), &len);
    assert_non_null(json);
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    assert_non_null(root);
    return root;
}

/* The record of `id` in recs, or NULL. */
static const fasta_rec *find(const fasta_rec *recs, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(recs[i].id, id))
            return &recs[i];
    return NULL;
}

static void assert_ids_equal(const char *what, const char *id, const vnp_ids *got,
                             const cJSON *want)
{
    size_t n = (size_t)cJSON_GetArraySize(want);
    size_t i = 0;
    const cJSON *x;
    int ok = got->n == n;
    cJSON_ArrayForEach(x, want)
    {
        if (!ok || got->v[i] != (int32_t)x->valuedouble) {
            ok = 0;
            break;
        }
        i++;
    }
    if (!ok) {
        fprintf(stderr, "%s ids of %s differ (got %zu ids, want %zu) at index %zu\n", what, id,
                got->n, n, i);
        fail();
    }
}

static void check_model(const char *fasta, const char *key, int dna)
{
    cJSON *root = load_expected();
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "ids");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, key);
    assert_true(cJSON_IsArray(ids) && cJSON_IsArray(toks));
    int n_expected = cJSON_GetArraySize(ids);
    assert_int_equal(n_expected, cJSON_GetArraySize(toks));
    assert_true(n_expected >= 40);

    fasta_rec *recs;
    int n = fasta_lite_read(vnp_test_fixture(fasta), &recs);
    assert_int_equal(n, n_expected); /* every ORF has its expected ids */

    vnp_bpe *bpe = NULL;
    vnp_error err;
    if (dna)
        assert_int_equal(vnp_bpe_load(vnp_test_fixture("golden/dnabert_s/tokenizer.json"), &bpe,
                                      &err),
                         VNP_OK);
    int checked = 0;
    for (int k = 0; k < n_expected; k++) {
        const char *id = cJSON_GetArrayItem(ids, k)->valuestring;
        const fasta_rec *r = find(recs, n, id);
        assert_non_null(r);
        vnp_ids got = {0};
        vnp_code c = dna ? vnp_bpe_encode(bpe, r->seq, r->len, &got, &err)
                         : vnp_esm_encode(r->seq, r->len, &got, &err);
        assert_int_equal(c, VNP_OK);
        assert_ids_equal(key, id, &got, cJSON_GetArrayItem(toks, k));
        vnp_ids_free(&got);
        checked++;
    }
    assert_int_equal(checked, n_expected);
    vnp_bpe_free(bpe);
    fasta_lite_free(recs, n);
    cJSON_Delete(root);
}

static void test_dnabert_golden(void **state)
{
    (void)state;
    check_model("golden/preprocess_500/dev_identified_nucleotide.fa", "dnabert_tokens", 1);
}

static void test_esm_golden(void **state)
{
    (void)state;
    check_model("golden/preprocess_500/dev_identified_protein.faa", "esm_tokens", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dnabert_golden),
        cmocka_unit_test(test_esm_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
