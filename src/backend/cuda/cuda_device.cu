/* CUDA devices: how many there are, what one is (vnp_device), and whether this build
 * has code for one: the compute-capability gate, derived from the architectures
 * compiled (CMAKE_CUDA_ARCHITECTURES, passed in as VNP_CUDA_ARCH_LIST). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"

extern "C" int vnp_backend_cuda_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}

extern "C" vnp_code vnp_backend_cuda_query(int index, vnp_device *out, vnp_error *err)
{
    memset(out, 0, sizeof *out);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return vnp_fail(err, VNP_EDEVICE, "no CUDA GPU is usable here (%s); run with --device cpu",
                        e != cudaSuccess ? cudaGetErrorString(e) : "no device found");
    if (index < 0 || index >= count)
        return vnp_fail(err, VNP_EINVAL, "--device cuda:%d: this machine has %d CUDA GPU%s (0..%d)",
                        index, count, count == 1 ? "" : "s", count - 1);
    cudaDeviceProp prop;
    vnp_code rc = VNP_CUDA_CHECK(cudaGetDeviceProperties(&prop, index), index, err);
    if (rc)
        return rc;
    out->kind = VNP_DEVICE_CUDA;
    out->index = index;
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->mem_total = prop.totalGlobalMem;
    return VNP_OK;
}

/* One entry of a CMake CUDA architecture list: "86" (machine code and PTX), "90a" (code
 * for 9.0 only), "80-real" (machine code), "90-virtual" (PTX). 0 when it names no
 * number ("native", "all"). */
typedef struct {
    int arch; /* 86 for 8.6 */
    int sass; /* machine code: runs on the same major version, this minor or newer */
    int ptx;  /* PTX: compiled by the driver for this or any newer GPU */
} arch_entry;

static int parse_entry(const char *s, size_t len, arch_entry *a)
{
    memset(a, 0, sizeof *a);
    size_t i = 0;
    while (i < len && isdigit((unsigned char)s[i]))
        a->arch = a->arch * 10 + (s[i++] - '0');
    if (i == 0 || a->arch < 10)
        return 0;
    int specific = i < len && isalpha((unsigned char)s[i]); /* 90a: this GPU only */
    while (i < len && isalpha((unsigned char)s[i]))
        i++;
    const char *rest = s + i;
    size_t rl = len - i;
    a->sass = !(rl == 8 && !strncmp(rest, "-virtual", 8));
    a->ptx = !specific && !(rl == 5 && !strncmp(rest, "-real", 5));
    return 1;
}

extern "C" vnp_code vnp_backend_cuda_arch_check(const char *archs, const vnp_device *dev,
                                                vnp_error *err)
{
    const int cc = dev->cc_major * 10 + dev->cc_minor;
    int oldest = 0, unknown = 0, ok = 0;
    char built[256] = "";
    size_t bl = 0;
    for (const char *p = archs; *p;) {
        size_t len = strcspn(p, ",; ");
        arch_entry a;
        if (len && parse_entry(p, len, &a)) {
            if (!oldest || a.arch < oldest)
                oldest = a.arch;
            ok |= (a.sass && a.arch / 10 == cc / 10 && a.arch <= cc) || (a.ptx && a.arch <= cc);
            if (bl < sizeof built)
                bl += (size_t)snprintf(built + bl, sizeof built - bl, "%ssm_%.*s", bl ? " " : "",
                                       (int)len, p);
        } else if (len) {
            unknown = 1; /* "native", "all": only the GPU can tell (a kernel image check) */
        }
        p += len;
        while (*p == ',' || *p == ';' || *p == ' ')
            p++;
    }
    if (ok || unknown || !oldest)
        return VNP_OK;
    if (cc < oldest)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "GPU %d (%s) has compute capability %d.%d, older than sm_%d, the oldest "
                        "architecture this build has CUDA code for (%s); use a newer GPU or "
                        "--device cpu",
                        dev->index, dev->name, dev->cc_major, dev->cc_minor, oldest, built);
    return vnp_fail(err, VNP_EUNSUPPORTED,
                    "GPU %d (%s) has compute capability %d.%d, which this build has no CUDA code "
                    "for (%s); rebuild with -DCMAKE_CUDA_ARCHITECTURES including %d%d, or use "
                    "--device cpu",
                    dev->index, dev->name, dev->cc_major, dev->cc_minor, built, dev->cc_major,
                    dev->cc_minor);
}
