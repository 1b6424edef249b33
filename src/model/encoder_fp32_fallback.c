/* The FP32 safety net of reduced-precision inference: a batch whose FP16/BF16
 * forward pass produced a NaN or Inf (the backend's guard flag) is recomputed
 * in FP32 on the same device, with an FP32 copy of the model loaded from the
 * same checkpoint the first time it is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/encoder_internal.h"

struct vnp_encoder_fp32 {
    vnp_backend *be;
    vnp_encoder *enc;
};

void vnp_encoder_fp32_free(vnp_encoder_fp32 *t)
{
    if (!t)
        return;
    vnp_encoder_free(t->enc);
    vnp_backend_free(t->be);
    free(t);
}

/* "cuda:1 fp16" -> "cuda:1": the device part of a backend's name. */
static void device_of(const vnp_backend *be, char *out, size_t cap)
{
    const char *name = vnp_backend_name(be);
    size_t n = strcspn(name, " ");
    snprintf(out, cap, "%.*s", (int)n, name);
}

static vnp_code load_twin(vnp_encoder *enc, vnp_encoder_fp32 **twin, vnp_error *err)
{
    char dev[64];
    device_of(enc->be, dev, sizeof dev);
    vnp_encoder_fp32 *t = calloc(1, sizeof *t);
    if (!t)
        return vnp_fail(err, VNP_ENOMEM, "out of memory for the FP32 fallback model");
    vnp_code rc = vnp_backend_create(dev, VNP_PREC_FP32, enc->be->threads, &t->be, err);
    if (!rc)
        rc = vnp_encoder_load(enc->source, t->be, &t->enc, err);
    if (rc) {
        vnp_error_prefix(err, "loading the FP32 fallback of '%s': ", enc->source);
        vnp_encoder_fp32_free(t);
        return rc;
    }
    *twin = t;
    return VNP_OK;
}

vnp_code vnp_encoder_embed_checked(vnp_encoder *enc, vnp_encoder_fp32 **twin,
                                   const vnp_batch *batch, float *out, int *recomputed,
                                   vnp_error *err)
{
    *recomputed = 0;
    vnp_code rc = vnp_encoder_embed(enc, batch, out, err);
    if (rc != VNP_ENUMERIC || vnp_backend_precision(enc->be) == VNP_PREC_FP32)
        return rc;
    if (!*twin && (rc = load_twin(enc, twin, err)))
        return rc;
    rc = vnp_encoder_embed((*twin)->enc, batch, out, err);
    if (rc == VNP_OK)
        *recomputed = 1;
    else if (rc == VNP_ENUMERIC)
        vnp_error_prefix(err, "recomputed in FP32 after NaN/Inf in %s, and still non-finite: ",
                         vnp_backend_name(enc->be));
    return rc;
}
