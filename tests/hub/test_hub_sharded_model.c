/* The real ESM-2 3B is published as shards (pytorch_model.bin.index.json + two
 * files). Here the golden ESM-2 is split into two safetensors shards, served in
 * the hub's layout, fetched, and loaded: it must compute exactly what the
 * unsharded golden model computes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_internal.h"
#include "hub_test_server.h"
#include "test_support.h"
#include "virnucpro/model.h"
#include "virnucpro/weights.h"

static hub_server srv;

/* Splits a safetensors file into two shards (tensors alternate) plus the index. */
static void split_safetensors(const char *src, const char *tree, const char *dir)
{
    size_t len;
    unsigned char *b = (unsigned char *)vnp_test_read_file(src, &len);
    assert_non_null(b);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | b[i];
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, (size_t)hn);
    assert_non_null(h);
    const unsigned char *data = b + 8 + hn;
    cJSON *hdr[2] = {cJSON_CreateObject(), cJSON_CreateObject()};
    cJSON *index = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(index, "weight_map");
    static const char *const shard_name[2] = {"model-00001-of-00002.safetensors",
                                              "model-00002-of-00002.safetensors"};
    size_t cap = len, used[2] = {0, 0};
    unsigned char *body[2] = {malloc(cap), malloc(cap)};
    int k = 0;
    for (cJSON *t = h->child; t; t = t->next) {
        if (!strcmp(t->string, "__metadata__"))
            continue;
        cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        size_t e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        int s = k++ & 1;
        memcpy(body[s] + used[s], data + a, e - a);
        cJSON *copy = cJSON_Duplicate(t, 1);
        cJSON *noff = cJSON_CreateArray();
        cJSON_AddItemToArray(noff, cJSON_CreateNumber((double)used[s]));
        cJSON_AddItemToArray(noff, cJSON_CreateNumber((double)(used[s] + e - a)));
        cJSON_ReplaceItemInObjectCaseSensitive(copy, "data_offsets", noff);
        cJSON_AddItemToObject(hdr[s], t->string, copy);
        cJSON_AddStringToObject(wm, t->string, shard_name[s]);
        used[s] += e - a;
    }
    for (int s = 0; s < 2; s++) {
        char *text = cJSON_PrintUnformatted(hdr[s]);
        size_t tn = strlen(text), padded = (tn + 7) / 8 * 8;
        size_t total = 8 + padded + used[s];
        unsigned char *out = malloc(total);
        for (int i = 0; i < 8; i++)
            out[i] = (unsigned char)(padded >> (8 * i));
        memcpy(out + 8, text, tn);
        memset(out + 8 + tn, ' ', padded - tn);
        memcpy(out + 8 + padded, body[s], used[s]);
        char rel[1024];
        snprintf(rel, sizeof rel, "%s/%s", dir, shard_name[s]);
        hub_tree_write(tree, rel, (const char *)out, total);
        free(out);
        free(text);
        free(body[s]);
        cJSON_Delete(hdr[s]);
    }
    char *itext = cJSON_Print(index);
    char rel[1024];
    snprintf(rel, sizeof rel, "%s/model.safetensors.index.json", dir);
    hub_tree_write(tree, rel, itext, strlen(itext));
    free(itext);
    cJSON_Delete(index);
    cJSON_Delete(h);
    free(b);
}

static int group_setup(void **state)
{
    (void)state;
    const char *tree = vnp_test_tmp("tree");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tree, vnp_test_tmp("cache"));
    assert_int_equal(system(cmd), 0);
    const char *dir = "hub/test/esm-sharded/resolve/r1";
    char rel[512];
    snprintf(rel, sizeof rel, "%s/config.json", dir);
    hub_tree_put(tree, rel, vnp_test_fixture("golden/esm2/config.json"));
    snprintf(rel, sizeof rel, "%s/vocab.txt", dir);
    hub_tree_put(tree, rel, vnp_test_fixture("golden/esm2/vocab.txt"));
    split_safetensors(vnp_test_fixture("golden/esm2/model.safetensors"), tree, dir);
    hub_server_start(&srv, tree, vnp_test_tmp("server"));
    char url[256];
    snprintf(url, sizeof url, "%s/hub", srv.base);
    setenv("VIRNUCPRO_HUB_URL", url, 1);
    setenv("no_proxy", "*", 1);
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("VIRNUCPRO_OFFLINE");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hub_server_stop(&srv);
    return 0;
}

static float *hidden_of(const char *model, size_t *n)
{
    vnp_backend *be = NULL;
    vnp_encoder *enc = NULL;
    vnp_error err;
    if (vnp_backend_create("cpu", VNP_PREC_FP32, 1, &be, &err) != VNP_OK ||
        vnp_encoder_load(model, be, &enc, &err) != VNP_OK)
        fail_msg("%s", err.msg);
    static const int32_t tokens[] = {0, 20, 15, 11, 7, 6, 19, 13, 4, 2, 0, 5, 5, 10, 2};
    static const int32_t cu[] = {0, 10, 15};
    vnp_batch batch = {tokens, cu, 2};
    int hidden = vnp_encoder_hidden_size(enc);
    *n = 15 * (size_t)hidden;
    float *out = malloc(*n * sizeof *out);
    if (vnp_encoder_hidden(enc, &batch, out, &err) != VNP_OK)
        fail_msg("%s", err.msg);
    vnp_encoder_free(enc);
    vnp_backend_free(be);
    return out;
}

static void test_fetched_shards_load_as_the_whole_model(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_options_init(&o);
    o.cache_dir = vnp_test_tmp("cache");
    o.quiet = 1;
    o.progress = 0;
    vnp_hub_cfg cfg;
    vnp_error err;
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &err), VNP_OK);
    vnp_model_spec spec = *vnp_hub_spec("esm2_t36_3B_UR50D");
    spec.name = "esm-sharded";
    spec.repo = "test/esm-sharded";
    spec.revision = "r1";
    if (vnp_hub_fetch_spec(&cfg, &spec, &err) != VNP_OK)
        fail_msg("%s", err.msg);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/esm-sharded", o.cache_dir);
    size_t n1, n2;
    float *whole = hidden_of(vnp_test_fixture("golden/esm2"), &n1);
    float *sharded = hidden_of(dir, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(whole, sharded, n1 * sizeof(float));
    free(whole);
    free(sharded);
}

static void test_index_errors(void **state)
{
    (void)state;
    const char *d = vnp_test_tmp("bad");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    hub_mkdirs(d);
    char idx[2048], shard[2048];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", d);
    snprintf(shard, sizeof shard, "%s/s1.safetensors", d);
    /* a shard that lacks a tensor its index lists */
    size_t len;
    char *gold = vnp_test_read_file(vnp_test_fixture("golden/esm2/model.safetensors"), &len);
    assert_int_equal(vnp_test_write_file(shard, gold, len), 0);
    free(gold);
    const char *missing = "{\"weight_map\": {\"esm.embeddings.word_embeddings.weight\": "
                          "\"s1.safetensors\", \"esm.nothing.weight\": \"s1.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, missing, strlen(missing)), 0);
    vnp_tensor_map *m = NULL;
    vnp_error err;
    assert_int_equal(vnp_checkpoint_load(idx, &m, &err), VNP_ESHAPE);
    assert_non_null(strstr(err.msg, "tensor 'esm.nothing.weight' is missing from its shard "
                                    "s1.safetensors"));
    assert_null(m);
    const char *escape = "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, escape, strlen(escape)), 0);
    assert_int_equal(vnp_checkpoint_load(idx, &m, &err), VNP_EFORMAT);
    assert_non_null(strstr(err.msg, "maps to an invalid shard name"));
    const char *absent = "{\"weight_map\": {\"a\": \"s2.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, absent, strlen(absent)), 0);
    assert_int_equal(vnp_checkpoint_load(idx, &m, &err), VNP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "s2.safetensors"));
    /* the same shard twice under two names holds every tensor twice */
    char shard2[2048];
    snprintf(shard2, sizeof shard2, "%s/s2.safetensors", d);
    gold = vnp_test_read_file(shard, &len);
    assert_int_equal(vnp_test_write_file(shard2, gold, len), 0);
    free(gold);
    const char *dup = "{\"weight_map\": {\"esm.embeddings.word_embeddings.weight\": "
                      "\"s1.safetensors\", \"b\": \"s2.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, dup, strlen(dup)), 0);
    assert_int_equal(vnp_checkpoint_load(idx, &m, &err), VNP_EFORMAT);
    assert_non_null(strstr(err.msg, "is in more than one shard"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetched_shards_load_as_the_whole_model),
        cmocka_unit_test(test_index_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
