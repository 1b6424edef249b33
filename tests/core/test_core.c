/* Error messages, logging, half conversions and the tensor map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "test_support.h"
#include "virnucpro/error.h"
#include "virnucpro/half.h"
#include "virnucpro/tensor.h"

static void test_error_prefix(void **state)
{
    (void)state;
    vnp_error e;
    assert_int_equal(vnp_fail(&e, VNP_EFORMAT, "bad byte %d", 7), VNP_EFORMAT);
    vnp_error_prefix(&e, "%s: ", "model.safetensors");
    assert_string_equal(e.msg, "model.safetensors: bad byte 7");
    assert_int_equal(e.code, VNP_EFORMAT);
    assert_int_equal(vnp_fail(NULL, VNP_EIO, "x"), VNP_EIO);
}

static void test_log_capture(void **state)
{
    (void)state;
    vnp_test_capture_log_begin();
    vnp_warn("record '%s' is empty", "r1");
    vnp_debug("not shown at the default level");
    char *log = vnp_test_capture_log_end();
    assert_string_equal(log, "record 'r1' is empty\n");
    free(log);
}

static void test_half_roundtrip(void **state)
{
    (void)state;
    assert_int_equal(vnp_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(vnp_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(vnp_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(vnp_f32_to_f16(65520.0f), 0x7c00);          /* rounds to inf */
    assert_int_equal(vnp_f32_to_f16(5.9604645e-8f), 0x0001);     /* smallest subnormal */
    assert_int_equal(vnp_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    assert_int_equal(vnp_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    for (uint32_t h = 0; h < 0x7c00; h++)
        assert_int_equal(vnp_f32_to_f16(vnp_f16_to_f32((uint16_t)h)), h);
    assert_true(isnan(vnp_f16_to_f32(0x7e00)));
    assert_int_equal(vnp_f32_to_bf16(1.0f), 0x3f80);
    assert_true(vnp_bf16_to_f32(0x4049) == 3.140625f);
    assert_int_equal(vnp_f32_to_bf16(1.00390625f), 0x3f80); /* tie to even */
}

static void test_tensor_map(void **state)
{
    (void)state;
    vnp_error e;
    vnp_tensor_map *m = vnp_tensor_map_new();
    float *w = malloc(6 * sizeof *w);
    for (int i = 0; i < 6; i++)
        w[i] = (float)i;
    int64_t shape[2] = {2, 3};
    assert_int_equal(vnp_tensor_map_add(m, "layer.weight", VNP_DT_F32, 2, shape, NULL, w, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_add(m, "layer.weight", VNP_DT_F32, 2, shape, w, NULL, &e),
                     VNP_EFORMAT);
    assert_string_equal(e.msg, "tensor 'layer.weight' appears twice in the checkpoint");
    const vnp_tensor *t = vnp_tensor_map_get(m, "layer.weight");
    assert_non_null(t);
    assert_int_equal(vnp_tensor_numel(t), 6);
    assert_int_equal(t->nbytes, 24);
    char buf[64];
    assert_string_equal(vnp_shape_str(t->shape, t->ndim, buf, sizeof buf), "[2, 3]");
    assert_null(vnp_tensor_map_get(m, "missing"));
    assert_int_equal(vnp_tensor_map_set_num(m, "bn1.eps", 1e-5, &e), VNP_OK);
    double v = 0;
    assert_int_equal(vnp_tensor_map_num(m, "bn1.eps", &v), 1);
    assert_true(v == 1e-5);
    assert_int_equal(vnp_tensor_map_num(m, "bn1.momentum", &v), 0);
    vnp_tensor_map_free(m);
}

static int g_released;
static void count_release(void *res) { g_released += *(int *)res; }

/* Enough tensors and attributes that both name indexes grow and rehash several times. */
static void test_tensor_map_many(void **state)
{
    (void)state;
    vnp_error e;
    vnp_tensor_map *m = vnp_tensor_map_new();
    static const float data[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    char name[64];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "blocks.%d.weight", i);
        assert_int_equal(vnp_tensor_map_add(m, name, VNP_DT_F32, 1, shape, data, NULL, &e),
                         VNP_OK);
        snprintf(name, sizeof name, "blocks.%d.eps", i);
        assert_int_equal(vnp_tensor_map_set_num(m, name, i * 0.5, &e), VNP_OK);
    }
    assert_int_equal(vnp_tensor_map_count(m), 300);
    assert_int_equal(vnp_tensor_map_attr_count(m), 300);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "blocks.%d.weight", i);
        const vnp_tensor *t = vnp_tensor_map_get(m, name);
        assert_ptr_equal(t, vnp_tensor_map_at(m, (size_t)i));
        assert_string_equal(t->name, name);
        snprintf(name, sizeof name, "blocks.%d.eps", i);
        double v = -1;
        assert_int_equal(vnp_tensor_map_num(m, name, &v), 1);
        assert_true(v == i * 0.5);
        assert_string_equal(vnp_tensor_map_attr_key(m, (size_t)i), name);
    }
    assert_null(vnp_tensor_map_at(m, 300));
    assert_null(vnp_tensor_map_attr_key(m, 300));
    assert_int_equal(vnp_tensor_map_add(m, "blocks.299.weight", VNP_DT_F32, 1, shape, data,
                                        NULL, &e),
                     VNP_EFORMAT);

    /* an attribute set again keeps its place and takes the new kind and value */
    assert_int_equal(vnp_tensor_map_set_str(m, "blocks.7.eps", "torch.float32", &e), VNP_OK);
    double v = 0;
    assert_int_equal(vnp_tensor_map_num(m, "blocks.7.eps", &v), 0);
    assert_string_equal(vnp_tensor_map_str(m, "blocks.7.eps"), "torch.float32");
    assert_int_equal(vnp_tensor_map_set_num(m, "blocks.7.eps", 2.5, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_num(m, "blocks.7.eps", &v), 1);
    assert_true(v == 2.5);
    assert_null(vnp_tensor_map_str(m, "blocks.7.eps"));
    assert_int_equal(vnp_tensor_map_attr_count(m), 300);

    /* held resources are released when the map is freed, not before */
    static int one = 1, ten = 10;
    g_released = 0;
    assert_int_equal(vnp_tensor_map_hold(m, &one, count_release, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_hold(m, &ten, count_release, &e), VNP_OK);
    assert_int_equal(g_released, 0);
    vnp_tensor_map_free(m);
    assert_int_equal(g_released, 11);
}

static void test_tensor_to_f32(void **state)
{
    (void)state;
    vnp_error e;
    int64_t shape[1] = {3};
    const uint16_t h[3] = {0x3c00, 0xc000, 0x3555}; /* 1, -2, 0.333251953125 */
    const uint16_t bf[3] = {0x3f80, 0x4049, 0xbf00};
    const double d[3] = {0.25, -1e30, 7};
    const int32_t ints[3] = {1, 2, 3};
    vnp_tensor_map *m = vnp_tensor_map_new();
    assert_int_equal(vnp_tensor_map_add(m, "h", VNP_DT_F16, 1, shape, h, NULL, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_add(m, "bf", VNP_DT_BF16, 1, shape, bf, NULL, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_add(m, "d", VNP_DT_F64, 1, shape, d, NULL, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_add(m, "ids", VNP_DT_I32, 1, shape, ints, NULL, &e), VNP_OK);
    float out[3];
    assert_int_equal(vnp_tensor_to_f32(vnp_tensor_map_get(m, "h"), out, &e), VNP_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.333251953125f);
    assert_int_equal(vnp_tensor_to_f32(vnp_tensor_map_get(m, "bf"), out, &e), VNP_OK);
    assert_true(out[0] == 1.0f && out[1] == 3.140625f && out[2] == -0.5f);
    assert_int_equal(vnp_tensor_to_f32(vnp_tensor_map_get(m, "d"), out, &e), VNP_OK);
    assert_true(out[0] == 0.25f && out[1] == -1e30f && out[2] == 7.0f);
    assert_int_equal(vnp_tensor_to_f32(vnp_tensor_map_get(m, "ids"), out, &e), VNP_EUNSUPPORTED);
    assert_string_equal(e.msg, "tensor 'ids' has dtype I32; a floating-point tensor is expected");
    vnp_tensor_map_free(m);
}

static void test_mkdirs(void **state)
{
    (void)state;
    vnp_error e;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("mk/a/b/c"));
    assert_int_equal(vnp_mkdirs(dir, "output directory", &e), VNP_OK);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(vnp_mkdirs(dir, "output directory", &e), VNP_OK); /* already there */

    char file[4200], below[4300], want[4400];
    snprintf(file, sizeof file, "%s", vnp_test_tmp("mk/plain"));
    assert_int_equal(vnp_test_write_file(file, "x", 1), 0);
    snprintf(below, sizeof below, "%s/sub", file);
    assert_int_equal(vnp_mkdirs(below, "model cache", &e), VNP_EIO);
    snprintf(want, sizeof want, "model cache path '%s' exists and is not a directory", file);
    assert_string_equal(e.msg, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_prefix),
        cmocka_unit_test(test_log_capture),
        cmocka_unit_test(test_half_roundtrip),
        cmocka_unit_test(test_tensor_map),
        cmocka_unit_test(test_tensor_map_many),
        cmocka_unit_test(test_tensor_to_f32),
        cmocka_unit_test(test_mkdirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
