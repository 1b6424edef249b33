/* The trainable MLP classifier's parameters: PyTorch's default initialisation from a
 * seed, copies, and the safetensors file predict --classifier reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "virnucpro/train.h"
#include "virnucpro/weights.h"

#define RNG_STREAM_INIT 1

void vnp_mlp_params_free(vnp_mlp_params *p)
{
    if (!p)
        return;
    float *b[] = {p->w1, p->b1, p->bn_w, p->bn_b, p->bn_mean, p->bn_var, p->w2, p->b2};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        free(b[i]);
    memset(p, 0, sizeof *p);
}

static vnp_code alloc_all(vnp_mlp_params *p, int in, int hidden, vnp_error *err)
{
    size_t H = (size_t)hidden;
    p->in = in;
    p->hidden = hidden;
    p->classes = 2;
    p->w1 = malloc(H * (size_t)in * sizeof(float));
    p->b1 = malloc(H * sizeof(float));
    p->bn_w = malloc(H * sizeof(float));
    p->bn_b = malloc(H * sizeof(float));
    p->bn_mean = malloc(H * sizeof(float));
    p->bn_var = malloc(H * sizeof(float));
    p->w2 = malloc(2 * H * sizeof(float));
    p->b2 = malloc(2 * sizeof(float));
    if (!p->w1 || !p->b1 || !p->bn_w || !p->bn_b || !p->bn_mean || !p->bn_var || !p->w2 ||
        !p->b2) {
        vnp_mlp_params_free(p);
        return vnp_fail(err, VNP_ENOMEM, "out of memory for a classifier of %d x %d", in,
                        hidden);
    }
    return VNP_OK;
}

static void uniform(vnp_rng *r, float *dst, size_t n, float bound)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (2.0f * vnp_rng_unit_f32(r) - 1.0f) * bound;
}

vnp_code vnp_mlp_params_init(vnp_mlp_params *p, int in, int hidden, float dropout, uint64_t seed,
                             vnp_error *err)
{
    memset(p, 0, sizeof *p);
    if (in <= 0 || hidden <= 0 || in > (1 << 20) || hidden > (1 << 16))
        return vnp_fail(err, VNP_EINVAL, "a classifier of %d inputs and %d hidden units is not "
                                         "possible",
                        in, hidden);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return vnp_fail(err, VNP_EINVAL, "dropout %g must be in [0, 1)", (double)dropout);
    vnp_code rc = alloc_all(p, in, hidden, err);
    if (rc)
        return rc;
    vnp_rng r;
    vnp_rng_init(&r, seed, RNG_STREAM_INIT);
    size_t H = (size_t)hidden;
    float b1 = 1.0f / sqrtf((float)in), b2 = 1.0f / sqrtf((float)hidden);
    uniform(&r, p->w1, H * (size_t)in, b1);
    uniform(&r, p->b1, H, b1);
    for (size_t i = 0; i < H; i++) {
        p->bn_w[i] = 1.0f;
        p->bn_b[i] = 0.0f;
        p->bn_mean[i] = 0.0f;
        p->bn_var[i] = 1.0f;
    }
    uniform(&r, p->w2, 2 * H, b2);
    uniform(&r, p->b2, 2, b2);
    p->bn_batches = 0;
    p->eps = 1e-5f;
    p->bn_momentum = 0.1f;
    p->dropout = dropout;
    return VNP_OK;
}

vnp_code vnp_mlp_params_copy(vnp_mlp_params *dst, const vnp_mlp_params *src, vnp_error *err)
{
    vnp_mlp_params d;
    memset(&d, 0, sizeof d);
    vnp_code rc = alloc_all(&d, src->in, src->hidden, err);
    if (rc)
        return rc;
    size_t H = (size_t)src->hidden;
    memcpy(d.w1, src->w1, H * (size_t)src->in * sizeof(float));
    memcpy(d.b1, src->b1, H * sizeof(float));
    memcpy(d.bn_w, src->bn_w, H * sizeof(float));
    memcpy(d.bn_b, src->bn_b, H * sizeof(float));
    memcpy(d.bn_mean, src->bn_mean, H * sizeof(float));
    memcpy(d.bn_var, src->bn_var, H * sizeof(float));
    memcpy(d.w2, src->w2, 2 * H * sizeof(float));
    memcpy(d.b2, src->b2, 2 * sizeof(float));
    d.bn_batches = src->bn_batches;
    d.eps = src->eps;
    d.bn_momentum = src->bn_momentum;
    d.dropout = src->dropout;
    vnp_mlp_params_free(dst);
    *dst = d;
    return VNP_OK;
}

static vnp_tensor f32_tensor(const char *name, const float *data, int64_t d0, int64_t d1)
{
    vnp_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = VNP_DT_F32;
    t.ndim = d1 ? 2 : 1;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.data = data;
    t.nbytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * sizeof(float);
    return t;
}

vnp_code vnp_mlp_save_safetensors(const vnp_mlp_params *p, const char *path,
                                  const char *const *meta, vnp_error *err)
{
    int64_t H = p->hidden;
    vnp_tensor t[9];
    t[0] = f32_tensor("hidden_layer.weight", p->w1, H, p->in);
    t[1] = f32_tensor("hidden_layer.bias", p->b1, H, 0);
    t[2] = f32_tensor("bn1.weight", p->bn_w, H, 0);
    t[3] = f32_tensor("bn1.bias", p->bn_b, H, 0);
    t[4] = f32_tensor("bn1.running_mean", p->bn_mean, H, 0);
    t[5] = f32_tensor("bn1.running_var", p->bn_var, H, 0);
    memset(&t[6], 0, sizeof t[6]);
    t[6].name = "bn1.num_batches_tracked";
    t[6].dtype = VNP_DT_I64;
    t[6].ndim = 0;
    t[6].data = &p->bn_batches;
    t[6].nbytes = sizeof(int64_t);
    t[7] = f32_tensor("output_layer.weight", p->w2, p->classes, H);
    t[8] = f32_tensor("output_layer.bias", p->b2, p->classes, 0);
    char eps[32], mom[32], drop[32];
    snprintf(eps, sizeof eps, "%.9g", (double)p->eps);
    snprintf(mom, sizeof mom, "%.9g", (double)p->bn_momentum);
    snprintf(drop, sizeof drop, "%.9g", (double)p->dropout);
    const char *m[64] = {"format", "pt", "model", "VirNucPro MLPClassifier", "bn1.eps", eps,
                         "bn1.momentum", mom, "dropout.p", drop};
    size_t k = 10;
    for (size_t i = 0; meta && meta[i] && meta[i + 1] && k + 2 < 64; i += 2) {
        m[k++] = meta[i];
        m[k++] = meta[i + 1];
    }
    m[k] = NULL;
    return vnp_safetensors_save(path, t, 9, m, err);
}
