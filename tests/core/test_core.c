/* Error messages, logging, half conversions and the tensor map. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    assert_non_null(strstr(e.msg, "layer.weight"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_prefix),
        cmocka_unit_test(test_log_capture),
        cmocka_unit_test(test_half_roundtrip),
        cmocka_unit_test(test_tensor_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
