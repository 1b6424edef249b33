/* safetensors reader: the golden checkpoint, and crafted files for every header check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/weights.h"

/* Writes an 8-byte length + header + data image to VNP_TMP/name; returns the path. */
static const char *write_st(const char *name, const char *header, const void *data,
                            size_t data_len)
{
    size_t hl = strlen(header);
    size_t len = 8 + hl + data_len;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len)
        memcpy(buf + 8 + hl, data, data_len);
    const char *path = vnp_test_tmp(name);
    assert_int_equal(vnp_test_write_file(path, buf, len), 0);
    free(buf);
    return path;
}

/* A header of 640 bytes makes the file start 80 02 00 ..., a pickle's PROTO 2: still
 * read as safetensors by vnp_checkpoint_load (train's feature files hit this). */
static void test_header_length_like_pickle(void **state)
{
    (void)state;
    char header[641];
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hn = strlen(h);
    memcpy(header, h, hn);
    memset(header + hn, ' ', 640 - hn);
    header[640] = 0;
    const float data[2] = {1.5f, -2.0f};
    const char *path = write_st("pickle_like.safetensors", header, data, sizeof data);
    vnp_tensor_map *m = NULL;
    vnp_error e;
    if (vnp_checkpoint_load(path, &m, &e) != VNP_OK)
        fail_msg("%s", e.msg);
    const vnp_tensor *t = vnp_tensor_map_get(m, "w");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 2);
    assert_true(((const float *)t->data)[1] == -2.0f);
    vnp_tensor_map_free(m);
}

/* Loads path expecting failure `code` with a message containing each of the NULL-ended
 * substrings. */
static void expect_fail(const char *path, vnp_code code, ...)
{
    vnp_error e;
    vnp_tensor_map *m = (vnp_tensor_map *)1;
    vnp_code rc = vnp_safetensors_load(path, &m, &e);
    if (rc != code)
        fail_msg("%s: expected %s, got %s: %s", path, vnp_code_name(code), vnp_code_name(rc),
                 rc ? e.msg : "");
    assert_null(m);
    assert_int_equal(e.code, code);
    assert_non_null(strstr(e.msg, path));
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(e.msg, s))
            fail_msg("message '%s' lacks '%s'", e.msg, s);
    va_end(ap);
}

static void test_golden_esm2(void **state)
{
    (void)state;
    vnp_error e;
    vnp_tensor_map *m = NULL;
    const char *path = vnp_test_fixture("golden/esm2/model.safetensors");
    assert_int_equal(vnp_safetensors_load(path, &m, &e), VNP_OK);
    /* 3 layers x 16 tensors + 12 outside the layers (see the file's header). */
    const vnp_tensor *t = vnp_tensor_map_get(m, "esm.embeddings.word_embeddings.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, VNP_DT_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 33);
    assert_int_equal(t->shape[1], 128);
    assert_int_equal(t->nbytes, 33 * 128 * 4);
    assert_int_equal((uintptr_t)t->data % 4, 0);
    t = vnp_tensor_map_get(m, "esm.contact_head.regression.bias");
    assert_non_null(t);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 1);
    t = vnp_tensor_map_get(m, "esm.encoder.layer.2.intermediate.dense.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 128);
    assert_string_equal(vnp_tensor_map_str(m, "__metadata__.format"), "pt");
    /* Every name is unique and every tensor's bytes lie inside the file. */
    size_t file_len = 0;
    char *file = vnp_test_read_file(path, &file_len);
    assert_non_null(file);
    for (size_t i = 0; i < vnp_tensor_map_count(m); i++) {
        const vnp_tensor *x = vnp_tensor_map_at(m, i);
        assert_int_equal(x->nbytes, (size_t)vnp_tensor_numel(x) * vnp_dtype_size(x->dtype));
        assert_ptr_equal(vnp_tensor_map_get(m, x->name), x);
    }
    free(file);
    vnp_tensor_map_free(m);
}

static void test_values_and_dtypes(void **state)
{
    (void)state;
    /* a: F32 [2] = {1.5, -2}; b: I64 [1] = {-7}; c: BF16 [2]; d: F16 [0] (empty). */
    uint8_t data[8 + 8 + 4];
    float a[2] = {1.5f, -2.0f};
    int64_t b = -7;
    uint16_t c[2] = {0x3f80, 0xc000};
    memcpy(data, a, 8);
    memcpy(data + 8, &b, 8);
    memcpy(data + 16, c, 4);
    /* header padded with spaces to a multiple of 8, as the reference writer does */
    const char *path = write_st(
        "ok.safetensors",
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"I64\",\"shape\":[1,1],\"data_offsets\":[8,16]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]},"
        "\"d\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[20,20]}}    ",
        data, sizeof data);
    vnp_error e;
    vnp_tensor_map *m = NULL;
    assert_int_equal(vnp_safetensors_load(path, &m, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_count(m), 4);
    const vnp_tensor *t = vnp_tensor_map_get(m, "a");
    assert_int_equal(t->dtype, VNP_DT_F32);
    assert_memory_equal(t->data, a, 8);
    t = vnp_tensor_map_get(m, "b");
    assert_int_equal(t->dtype, VNP_DT_I64);
    assert_int_equal(t->ndim, 2);
    int64_t bv;
    memcpy(&bv, t->data, 8);
    assert_int_equal(bv, -7);
    t = vnp_tensor_map_get(m, "c");
    float cf[2];
    assert_int_equal(vnp_tensor_to_f32(t, cf, &e), VNP_OK);
    assert_true(cf[0] == 1.0f && cf[1] == -2.0f);
    t = vnp_tensor_map_get(m, "d");
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(t->shape[0], 0);
    assert_string_equal(vnp_tensor_map_str(m, "__metadata__.note"), "x");
    vnp_tensor_map_free(m);
}

static void test_misaligned_copied(void **state)
{
    (void)state;
    float v[2] = {3.0f, 4.0f};
    /* header of odd length -> data section starts at an odd address in the map */
    const char *path = write_st("odd.safetensors",
                                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                v, sizeof v);
    vnp_error e;
    vnp_tensor_map *m = NULL;
    assert_int_equal(vnp_safetensors_load(path, &m, &e), VNP_OK);
    const vnp_tensor *t = vnp_tensor_map_get(m, "w");
    assert_int_equal((uintptr_t)t->data % 4, 0);
    assert_memory_equal(t->data, v, 8);
    vnp_tensor_map_free(m);
}

static void test_truncated(void **state)
{
    (void)state;
    size_t len;
    char *file = vnp_test_read_file(vnp_test_fixture("golden/esm2/model.safetensors"), &len);
    assert_non_null(file);
    const char *path = vnp_test_tmp("trunc.safetensors");
    /* cut in the data: the last tensor (in offset order) ends past the end */
    assert_int_equal(vnp_test_write_file(path, file, len - 100), 0);
    expect_fail(path, VNP_EFORMAT, "truncated", "end beyond the data section", NULL);
    /* cut in the header */
    assert_int_equal(vnp_test_write_file(path, file, 200), 0);
    expect_fail(path, VNP_EFORMAT, "header length", "exceeds the file size", NULL);
    assert_int_equal(vnp_test_write_file(path, file, 5), 0);
    expect_fail(path, VNP_EFORMAT, "too short", NULL);
    assert_int_equal(vnp_test_write_file(path, file, 0), 0);
    expect_fail(path, VNP_EFORMAT, "too short", NULL);
    free(file);
}

static void test_header_errors(void **state)
{
    (void)state;
    uint8_t z[64] = {0};
    expect_fail(write_st("o.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                         z, 24),
                VNP_EFORMAT, "'b'", "overlaps tensor 'a'", NULL);
    expect_fail(write_st("s.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}",
                         z, 16),
                VNP_EFORMAT, "tensor 'a'", "F32 x [2, 3] = 24 bytes", NULL);
    expect_fail(write_st("e.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}}",
                         z, 32),
                VNP_EFORMAT, "tensor 'a'", "end beyond the data section (32 bytes)", NULL);
    expect_fail(write_st("r.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
                         z, 8),
                VNP_EFORMAT, "tensor 'a'", "[8, 4]", NULL);
    expect_fail(write_st("g.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         z, 8),
                VNP_EFORMAT, "bytes 0..4", "belong to no tensor", NULL);
    expect_fail(write_st("t.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                         z, 8),
                VNP_EFORMAT, "data section has 8 bytes but the tensors cover 4", NULL);
    expect_fail(write_st("d.st", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                         z, 1),
                VNP_EUNSUPPORTED, "tensor 'a'", "dtype F8_E4M3 is not supported", NULL);
    expect_fail(write_st("j.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", z, 4), VNP_EFORMAT,
                "JSON header is malformed", NULL);
    expect_fail(write_st("x.st", "{}x", z, 0), VNP_EFORMAT, "unexpected bytes after the JSON",
                NULL);
    expect_fail(write_st("n.st", "[1]", z, 0), VNP_EFORMAT, "does not start with a JSON object",
                NULL);
    expect_fail(write_st("k.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                         z, 4),
                VNP_EFORMAT, "tensor 'a'", "shape entry 0", NULL);
    expect_fail(write_st("f.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                         z, 4),
                VNP_EFORMAT, "shape entry 0", NULL);
    expect_fail(write_st("m.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", z, 4), VNP_EFORMAT,
                "tensor 'a'", "data_offsets", NULL);
    expect_fail(write_st("h.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
                         z, 4),
                VNP_EFORMAT, "data_offsets must be two", NULL);
    expect_fail(write_st("v.st",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                         "\"data_offsets\":[0,4]}}",
                         z, 4),
                VNP_EFORMAT, "shape is too large", NULL);
    expect_fail(write_st("u.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         z, 8),
                VNP_EFORMAT, "'a' appears twice", NULL);
    expect_fail(write_st("md.st", "{\"__metadata__\":{\"k\":1}}", z, 0), VNP_EFORMAT,
                "__metadata__ value 'k'", NULL);
    expect_fail(vnp_test_tmp("absent.safetensors"), VNP_ENOTFOUND, "cannot open", NULL);
}

static void test_sharded(void **state)
{
    (void)state;
    float a[2] = {1, 2}, b[1] = {3};
    write_st("s1.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", a, 8);
    write_st("s2.safetensors", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", b, 4);
    const char *idx = vnp_test_tmp("model.safetensors.index.json");
    const char *good = "{\"metadata\":{},\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, good, strlen(good)), 0);
    vnp_error e;
    vnp_tensor_map *m = NULL;
    assert_int_equal(vnp_checkpoint_load(idx, &m, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_count(m), 2);
    assert_memory_equal(vnp_tensor_map_get(m, "a")->data, a, 8);
    assert_memory_equal(vnp_tensor_map_get(m, "b")->data, b, 4);
    vnp_tensor_map_free(m);
    const char *missing = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, missing, strlen(missing)), 0);
    assert_int_equal(vnp_checkpoint_load(idx, &m, &e), VNP_ESHAPE);
    assert_non_null(strstr(e.msg, "tensor 'c' is missing from its shard s2.safetensors"));
    const char *escape = "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}";
    assert_int_equal(vnp_test_write_file(idx, escape, strlen(escape)), 0);
    assert_int_equal(vnp_checkpoint_load(idx, &m, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "tensor 'a' maps to an invalid shard name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_esm2),       cmocka_unit_test(test_values_and_dtypes),
        cmocka_unit_test(test_misaligned_copied), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_errors),     cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_header_length_like_pickle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
