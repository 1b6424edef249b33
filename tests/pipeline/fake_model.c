/* Fake encoders and classifier for testing the predict pipeline's plumbing
 * (order, windows, batching, errors) exactly, independent of the real models.
 * Each pooled embedding is a pure function of the sequence's own tokens, so any
 * batching must give bit-identical outputs. Controlled by the model path:
 *   a path containing "dnabert" loads a DNABERT-S fake (hidden 3), "esm" an
 *   ESM-2 fake (hidden 4), "missing" fails with VNP_ENOTFOUND;
 *   classifier input width = FAKE_CLS_WIDTH (default 7).
 *   FAKE_NAN_LEN=n: ESM-2 embeddings of n-token sequences are NaN. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/model.h"

struct vnp_encoder {
    vnp_encoder_kind kind;
    int hidden;
};

struct vnp_classifier {
    int width;
};

static char fake_backend_byte;

vnp_code vnp_backend_create(const char *device, vnp_precision prec, int threads,
                            vnp_backend **out, vnp_error *err)
{
    (void)prec;
    (void)threads;
    if (strcmp(device, "cpu"))
        return vnp_fail(err, VNP_EUNSUPPORTED, "fake backend: only cpu");
    *out = (vnp_backend *)(void *)&fake_backend_byte;
    return VNP_OK;
}

void vnp_backend_free(vnp_backend *be) { (void)be; }

vnp_code vnp_encoder_load(const char *path, vnp_backend *be, vnp_encoder **out, vnp_error *err)
{
    (void)be;
    *out = NULL;
    if (strstr(path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such model", path);
    vnp_encoder *e = malloc(sizeof *e);
    if (strstr(path, "dnabert")) {
        e->kind = VNP_ENCODER_DNABERT_S;
        e->hidden = 3;
    } else {
        e->kind = VNP_ENCODER_ESM2;
        e->hidden = 4;
    }
    *out = e;
    return VNP_OK;
}

void vnp_encoder_free(vnp_encoder *enc) { free(enc); }
vnp_encoder_kind vnp_encoder_kind_of(const vnp_encoder *enc) { return enc->kind; }
int vnp_encoder_hidden_size(const vnp_encoder *enc) { return enc->hidden; }

vnp_code vnp_encoder_embed(vnp_encoder *enc, const vnp_batch *b, float *out, vnp_error *err)
{
    (void)err;
    const char *nan_len = getenv("FAKE_NAN_LEN");
    for (int i = 0; i < b->nseq; i++) {
        const int32_t *t = b->tokens + b->cu_seqlens[i];
        int n = b->cu_seqlens[i + 1] - b->cu_seqlens[i];
        uint32_t h = 2166136261u;
        for (int k = 0; k < n; k++)
            h = (h ^ (uint32_t)t[k]) * 16777619u;
        float *o = out + (size_t)i * (size_t)enc->hidden;
        for (int k = 0; k < enc->hidden; k++)
            o[k] = (float)((h >> (4 * k)) & 0xff) / 255.0f - 0.5f;
        o[0] = (float)n / 100.0f;
        if (enc->kind == VNP_ENCODER_ESM2 && nan_len && atoi(nan_len) == n)
            o[1] = NAN;
    }
    return VNP_OK;
}

vnp_code vnp_classifier_load(const char *pth_path, vnp_classifier **out, vnp_error *err)
{
    *out = NULL;
    if (strstr(pth_path, "missing"))
        return vnp_fail(err, VNP_ENOTFOUND, "%s: no such file", pth_path);
    vnp_classifier *c = malloc(sizeof *c);
    const char *w = getenv("FAKE_CLS_WIDTH");
    c->width = w ? atoi(w) : 7;
    *out = c;
    return VNP_OK;
}

void vnp_classifier_free(vnp_classifier *c) { free(c); }
int vnp_classifier_input_size(const vnp_classifier *c) { return c->width; }

vnp_code vnp_classifier_predict(const vnp_classifier *c, const float *x, size_t n, float *probs,
                                vnp_error *err)
{
    (void)err;
    for (size_t i = 0; i < n; i++) {
        float z = 0;
        for (int k = 0; k < c->width; k++)
            z += x[i * (size_t)c->width + (size_t)k] * (float)((k % 3) - 1) * 3.0f;
        float p1 = 1.0f / (1.0f + expf(-z));
        probs[2 * i] = 1.0f - p1;
        probs[2 * i + 1] = p1;
    }
    return VNP_OK;
}

/* The fakes compute in FP32: nothing to recompute. */
vnp_code vnp_encoder_embed_checked(vnp_encoder *enc, vnp_encoder_fp32 **twin,
                                   const vnp_batch *batch, float *out, int *recomputed,
                                   vnp_error *err)
{
    (void)twin;
    *recomputed = 0;
    return vnp_encoder_embed(enc, batch, out, err);
}

void vnp_encoder_fp32_free(vnp_encoder_fp32 *twin) { (void)twin; }
