/* Choosing a backend by device name: "cpu", "cuda" or "cuda:N". */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/backend.h"

/* VIRNUCPRO_DISABLE_FP16=1|true|yes (any case) forces FP32. */
static int fp16_disabled(void)
{
    const char *v = getenv("VIRNUCPRO_DISABLE_FP16");
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

static const char *prec_name(vnp_precision p)
{
    return p == VNP_PREC_FP16 ? "FP16" : p == VNP_PREC_BF16 ? "BF16" : "FP32";
}

vnp_code vnp_backend_create(const char *device, vnp_precision prec, int threads,
                            vnp_backend **out, vnp_error *err)
{
    *out = NULL;
    if (!device || !*device)
        device = "cpu";
    if (prec != VNP_PREC_FP32 && prec != VNP_PREC_FP16 && prec != VNP_PREC_BF16)
        return vnp_fail(err, VNP_EINVAL, "unknown precision %d", (int)prec);
    if (prec != VNP_PREC_FP32 && fp16_disabled()) {
        vnp_warn("VIRNUCPRO_DISABLE_FP16 is set: computing in FP32 instead of %s",
                 prec_name(prec));
        prec = VNP_PREC_FP32;
    }
    if (!strcmp(device, "cpu"))
        return vnp_backend_cpu_create(threads, out, err); /* always FP32 */
    if (!strncmp(device, "cuda", 4) && (device[4] == '\0' || device[4] == ':')) {
        int index = 0;
        if (device[4] == ':') {
            const char *p = device + 5;
            char *end = NULL;
            long v = strtol(p, &end, 10);
            if (!isdigit((unsigned char)*p) || *end || v < 0 || v > 1024)
                return vnp_fail(err, VNP_EINVAL,
                                "device '%s': expected cuda:N with N a GPU index such as 0",
                                device);
            index = (int)v;
        }
#ifdef VNP_HAVE_CUDA
        return vnp_backend_cuda_create(index, prec, out, err);
#else
        (void)index;
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "device '%s': this virnucpro was built without the CUDA backend; "
                        "rebuild where nvcc is installed or use --device cpu",
                        device);
#endif
    }
    return vnp_fail(err, VNP_EINVAL, "unknown device '%s'; use cpu, cuda or cuda:N", device);
}

void vnp_backend_free(vnp_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *vnp_backend_name(const vnp_backend *be) { return be->name; }
vnp_precision vnp_backend_precision(const vnp_backend *be) { return be->prec; }
