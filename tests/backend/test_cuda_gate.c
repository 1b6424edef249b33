/* The CUDA backend's compute-capability gate, derived from the architectures compiled
 * (a CMake CUDA architecture list): GPUs the list has code for pass (machine code for
 * the same major version, PTX for any newer GPU), a GPU older than the oldest compiled
 * architecture is refused naming it, a newer one without PTX is refused naming what to
 * rebuild with, and a list that cannot tell ("native") leaves it to the GPU. Pure host
 * code: runs without a GPU. */
#include <string.h>

#include "backend/backend.h"
#include "test_support.h"

static vnp_code gate(const char *archs, int major, int minor, vnp_error *err)
{
    vnp_device d;
    memset(&d, 0, sizeof d);
    d.kind = VNP_DEVICE_CUDA;
    d.index = 1;
    strcpy(d.name, "Test GPU");
    d.cc_major = major;
    d.cc_minor = minor;
    return vnp_backend_cuda_arch_check(archs, &d, err);
}

static void test_default_list(void **state)
{
    (void)state;
    vnp_error err = {0};
    static const int ok[][2] = {{8, 0}, {8, 6}, {8, 7}, {8, 9}, {9, 0}, {10, 0}, {12, 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(gate("80;86;89;90", ok[i][0], ok[i][1], &err), VNP_OK);
    assert_int_equal(gate("80;86;89;90", 7, 5, &err), VNP_EUNSUPPORTED);
    assert_string_equal(err.msg,
                        "GPU 1 (Test GPU) has compute capability 7.5, older than sm_80, the oldest "
                        "architecture this build has CUDA code for (sm_80 sm_86 sm_89 sm_90); use "
                        "a newer GPU or --device cpu");
    /* comma-separated, as the build passes it */
    assert_int_equal(gate("80,86,89,90", 7, 0, &err), VNP_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "compute capability 7.0, older than sm_80"));
}

static void test_other_lists(void **state)
{
    (void)state;
    vnp_error err = {0};
    assert_int_equal(gate("90", 8, 6, &err), VNP_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "8.6, older than sm_90, the oldest architecture this build "
                                    "has CUDA code for (sm_90)"));
    assert_int_equal(gate("90", 12, 0, &err), VNP_OK); /* PTX */
    /* machine code only: no PTX for a newer major version */
    assert_int_equal(gate("80-real;90-real", 8, 9, &err), VNP_OK);
    assert_int_equal(gate("80-real;90-real", 10, 0, &err), VNP_EUNSUPPORTED);
    assert_string_equal(err.msg,
                        "GPU 1 (Test GPU) has compute capability 10.0, which this build has no "
                        "CUDA code for (sm_80-real sm_90-real); rebuild with "
                        "-DCMAKE_CUDA_ARCHITECTURES including 100, or use --device cpu");
    assert_int_equal(gate("90a", 9, 0, &err), VNP_OK);
    assert_int_equal(gate("90a", 10, 0, &err), VNP_EUNSUPPORTED);
    assert_int_equal(gate("89-virtual", 9, 0, &err), VNP_OK);
    assert_int_equal(gate("89-virtual", 8, 6, &err), VNP_EUNSUPPORTED);
    /* "native", "all": only the GPU knows (the backend then asks it for a kernel image) */
    assert_int_equal(gate("native", 7, 5, &err), VNP_OK);
    assert_int_equal(gate("all-major", 7, 5, &err), VNP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_list),
        cmocka_unit_test(test_other_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
