/* Choosing a backend by device name: "cpu", "cuda" or "cuda:N"; decoding the
 * backends' guard word. */
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

static int is_cpu(const char *device) { return !device || !*device || !strcmp(device, "cpu"); }

vnp_precision vnp_precision_effective(const char *device, vnp_precision asked)
{
    if (fp16_disabled())
        return VNP_PREC_FP32;
    if (asked == VNP_PREC_DEFAULT)
        return is_cpu(device) ? VNP_PREC_FP32 : VNP_PREC_FP16;
    return asked;
}

vnp_code vnp_backend_create(const char *device, vnp_precision prec, int threads,
                            vnp_backend **out, vnp_error *err)
{
    *out = NULL;
    if (!device || !*device)
        device = "cpu";
    if (prec != VNP_PREC_DEFAULT && !vnp_precision_info_of(prec))
        return vnp_fail(err, VNP_EINVAL, "unknown precision %d", (int)prec);
    if (prec == VNP_PREC_DEFAULT)
        prec = is_cpu(device) ? VNP_PREC_FP32 : VNP_PREC_FP16;
    if (prec != VNP_PREC_FP32 && fp16_disabled()) {
        vnp_warn("VIRNUCPRO_DISABLE_FP16 is set: computing in FP32 instead of %s",
                 vnp_precision_label(prec));
        prec = VNP_PREC_FP32;
    }
    if (!strcmp(device, "cpu")) /* a reduced precision is emulated there */
        return vnp_backend_cpu_create_emulating(threads, prec, out, err);
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

vnp_code vnp_backend_guard_code(uint32_t word, const char *where, vnp_error *err)
{
    if (!where)
        where = "?";
    if (word == 0)
        return VNP_OK;
    /* A bad token or shape first: recomputing such a batch in FP32 cannot help. */
    if (word & (VNP_GUARD_BAD_TOKEN | VNP_GUARD_BAD_SHAPE)) {
        const char *what = "a bad batch shape";
        if ((word & VNP_GUARD_BAD_TOKEN) && (word & VNP_GUARD_BAD_SHAPE))
            what = "a token id outside the model's vocabulary and a bad batch shape";
        else if (word & VNP_GUARD_BAD_TOKEN)
            what = "a token id outside the model's vocabulary";
        return vnp_fail(err, VNP_EINVAL,
                        "%s: %s was caught on the device; this is a bug or a corrupt batch (not "
                        "retried in FP32)",
                        where, what);
    }
    if (word & VNP_GUARD_NONFINITE)
        return vnp_fail(err, VNP_ENUMERIC, "%s: non-finite values (NaN or infinite)", where);
    return vnp_fail(err, VNP_EDEVICE, "%s: the guard word holds unknown bits 0x%x", where,
                    (unsigned)word);
}

vnp_code vnp_backend_guard_check(vnp_backend *be, vnp_error *err)
{
    const vnp_backend_ops *o = be->ops;
    uint32_t *word = NULL;
    vnp_event *ev = NULL;
    vnp_code rc = o->host_alloc(be, sizeof *word, (void **)&word, err);
    if (!rc)
        rc = o->guard_save(be, word, err);
    if (!rc)
        rc = o->event_create(be, &ev, err);
    if (!rc)
        rc = o->event_record(be, ev, err);
    if (!rc)
        rc = o->event_wait(be, ev, err);
    if (!rc)
        rc = vnp_backend_guard_code(*word, be->name, err);
    if (ev)
        o->event_free(be, ev);
    if (word)
        o->host_free(be, word);
    return rc;
}

int vnp_device_count(vnp_device_kind kind)
{
    if (kind == VNP_DEVICE_CPU)
        return 1;
#ifdef VNP_HAVE_CUDA
    if (kind == VNP_DEVICE_CUDA)
        return vnp_backend_cuda_count();
#endif
    return 0;
}

vnp_code vnp_device_query(vnp_device_kind kind, int index, vnp_device *out, vnp_error *err)
{
    if (kind == VNP_DEVICE_CPU && index == 0) {
        vnp_backend_cpu_device(out);
        return VNP_OK;
    }
#ifdef VNP_HAVE_CUDA
    if (kind == VNP_DEVICE_CUDA)
        return vnp_backend_cuda_query(index, out, err);
#endif
    return vnp_fail(err, kind == VNP_DEVICE_CUDA ? VNP_EUNSUPPORTED : VNP_EINVAL,
                    kind == VNP_DEVICE_CUDA
                        ? "cuda:%d: this virnucpro was built without the CUDA backend"
                        : "cpu:%d: there is one CPU device, cpu",
                    index);
}
