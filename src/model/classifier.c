/* VirNucPro's MLP classifier, read from the whole pickled module:
 * Linear(hidden_layer) -> BatchNorm1d(bn1, eval: running statistics and the
 * module's eps) -> ReLU -> [Dropout: identity at inference] ->
 * Linear(output_layer) -> softmax. It runs on a backend as two FP32 GEMMs and
 * a scale-and-shift (queued beside the encoders, on the same device), the
 * softmax of its two logits on the host.
 *
 * The published classifiers have large output weights (logits near -100), so
 * float32 rounding of the hidden layer moves the probabilities by ~1e-5; it is
 * computed in FP32 whatever the encoders' precision. BatchNorm is folded as
 * PyTorch's eval path folds it: alpha = weight / sqrt(var + eps), beta = bias -
 * mean * alpha, applied as x * alpha + beta (a fused multiply-add on the CPU, as
 * PyTorch's CPU path; the CUDA kernel rounds the product and the sum separately). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/queued.h"
#include "virnucpro/model.h"
#include "virnucpro/weights.h"

struct vnp_classifier {
    int in, hidden, classes;
    float *w1, *b1;           /* [hidden, in], [hidden] */
    float *bn_alpha, *bn_beta; /* eval BatchNorm as torch folds it: x * alpha + beta */
    float *bn_mean;
    float *bn_w, *bn_b, *bn_var;
    float eps;
    float *w2, *b2;           /* [classes, hidden], [classes] */
};

void vnp_classifier_free(vnp_classifier *c)
{
    if (!c)
        return;
    float *bufs[] = {c->w1, c->b1, c->bn_alpha, c->bn_beta, c->bn_mean, c->bn_w, c->bn_b, c->bn_var, c->w2,
                     c->b2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(c);
}

/* Copies tensor `name` of the given shape as float32 into *dst. */
static vnp_code take(const vnp_tensor_map *m, const char *path, const char *name, int ndim,
                     int64_t d0, int64_t d1, float **dst, vnp_error *err)
{
    const vnp_tensor *t = vnp_tensor_map_get(m, name);
    int64_t shape[2] = {d0, d1};
    char want[64], got[64];
    vnp_shape_str(shape, ndim, want, sizeof want);
    if (!t)
        return vnp_fail(err, VNP_ESHAPE,
                        "classifier '%s': tensor '%s' is missing (expected shape %s); is this a "
                        "VirNucPro MLPClassifier saved with torch.save(model)?",
                        path, name, want);
    int ok = t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
    if (!ok)
        return vnp_fail(err, VNP_ESHAPE, "classifier '%s': tensor '%s' has shape %s; expected %s",
                        path, name, vnp_shape_str(t->shape, t->ndim, got, sizeof got), want);
    *dst = malloc((size_t)d0 * (size_t)(ndim == 2 ? d1 : 1) * sizeof(float));
    if (!*dst)
        return vnp_fail(err, VNP_ENOMEM, "out of memory loading classifier '%s'", path);
    vnp_code rc = vnp_tensor_to_f32(t, *dst, err);
    if (rc)
        vnp_error_prefix(err, "classifier '%s': ", path);
    return rc;
}

vnp_code vnp_classifier_load(const char *path, vnp_classifier **out, vnp_error *err)
{
    *out = NULL;
    vnp_tensor_map *m = NULL;
    vnp_code rc = vnp_checkpoint_load(path, &m, err);
    if (rc) {
        vnp_error_prefix(err, "loading classifier '%s': ", path);
        return rc;
    }
    vnp_classifier *c = calloc(1, sizeof *c);
    if (!c) {
        vnp_tensor_map_free(m);
        return vnp_fail(err, VNP_ENOMEM, "out of memory loading classifier '%s'", path);
    }
    const vnp_tensor *w1 = vnp_tensor_map_get(m, "hidden_layer.weight");
    const vnp_tensor *w2 = vnp_tensor_map_get(m, "output_layer.weight");
    if (!w1 || w1->ndim != 2 || !w2 || w2->ndim != 2) {
        rc = vnp_fail(err, VNP_ESHAPE,
                      "classifier '%s': no 2-D 'hidden_layer.weight' and 'output_layer.weight'; "
                      "is this a VirNucPro MLPClassifier saved with torch.save(model)?",
                      path);
        goto done;
    }
    c->hidden = (int)w1->shape[0];
    c->in = (int)w1->shape[1];
    c->classes = (int)w2->shape[0];
    if (c->classes != 2) {
        rc = vnp_fail(err, VNP_ESHAPE,
                      "classifier '%s': 'output_layer.weight' has %d outputs; VirNucPro's "
                      "classifier has 2 (others, virus)",
                      path, c->classes);
        goto done;
    }
    double eps = 1e-5; /* BatchNorm1d's default when the pickle carries no eps */
    vnp_tensor_map_num(m, "bn1.eps", &eps);
    if (!(eps > 0 && eps < 1)) {
        rc = vnp_fail(err, VNP_EFORMAT, "classifier '%s': bn1.eps = %g is not a usable epsilon",
                      path, eps);
        goto done;
    }
    c->eps = (float)eps;
    if ((rc = take(m, path, "hidden_layer.weight", 2, c->hidden, c->in, &c->w1, err)) ||
        (rc = take(m, path, "hidden_layer.bias", 1, c->hidden, 0, &c->b1, err)) ||
        (rc = take(m, path, "bn1.weight", 1, c->hidden, 0, &c->bn_w, err)) ||
        (rc = take(m, path, "bn1.bias", 1, c->hidden, 0, &c->bn_b, err)) ||
        (rc = take(m, path, "bn1.running_mean", 1, c->hidden, 0, &c->bn_mean, err)) ||
        (rc = take(m, path, "bn1.running_var", 1, c->hidden, 0, &c->bn_var, err)) ||
        (rc = take(m, path, "output_layer.weight", 2, c->classes, c->hidden, &c->w2, err)) ||
        (rc = take(m, path, "output_layer.bias", 1, c->classes, 0, &c->b2, err)))
        goto done;
    c->bn_alpha = malloc((size_t)c->hidden * sizeof(float));
    c->bn_beta = malloc((size_t)c->hidden * sizeof(float));
    if (!c->bn_alpha || !c->bn_beta) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory loading classifier '%s'", path);
        goto done;
    }
    for (int i = 0; i < c->hidden; i++) {
        if (!(c->bn_var[i] >= 0)) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "classifier '%s': bn1.running_var[%d] = %g is not a variance", path, i,
                          (double)c->bn_var[i]);
            goto done;
        }
        float invstd = 1.0f / sqrtf(c->bn_var[i] + c->eps);
        c->bn_alpha[i] = invstd * c->bn_w[i];
        c->bn_beta[i] = fmaf(-c->bn_mean[i], c->bn_alpha[i], c->bn_b[i]);
    }
done:
    vnp_tensor_map_free(m);
    if (rc)
        vnp_classifier_free(c);
    else
        *out = c;
    return rc;
}

int vnp_classifier_input_size(const vnp_classifier *c) { return c->in; }

vnp_code vnp_classifier_check_inputs(const vnp_classifier *c, int dnabert_hidden, int esm_hidden,
                                     vnp_error *err)
{
    if (dnabert_hidden + esm_hidden == c->in)
        return VNP_OK;
    return vnp_fail(err, VNP_ESHAPE,
                    "the classifier takes %d features per ORF but DNABERT-S (%d) + ESM-2 (%d) "
                    "give %d; use the classifier trained with these two models",
                    c->in, dnabert_hidden, esm_hidden, dnabert_hidden + esm_hidden);
}

struct vnp_classifier_dev {
    vnp_backend *be;
    int in, hidden;
    vnp_buf w1, b1, alpha, beta, w2, b2; /* F32 on the backend */
    vnp_buf h;                            /* [rows_cap, hidden] workspace */
    size_t rows_cap;
};

void vnp_classifier_dev_free(vnp_classifier_dev *d)
{
    if (!d)
        return;
    vnp_buf *b[] = {&d->w1, &d->b1, &d->alpha, &d->beta, &d->w2, &d->b2, &d->h};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (b[i]->ptr)
            d->be->ops->free_buf(d->be, b[i]);
    free(d);
}

vnp_code vnp_classifier_upload(const vnp_classifier *c, vnp_backend *be, vnp_classifier_dev **out,
                               vnp_error *err)
{
    *out = NULL;
    vnp_classifier_dev *d = calloc(1, sizeof *d);
    if (!d)
        return vnp_fail(err, VNP_ENOMEM, "out of memory for the classifier on %s",
                        vnp_backend_name(be));
    d->be = be;
    d->in = c->in;
    d->hidden = c->hidden;
    size_t H = (size_t)c->hidden;
    vnp_code rc;
    if ((rc = be->ops->upload_f32(be, c->w1, H * (size_t)c->in, &d->w1, err)) ||
        (rc = be->ops->upload_f32(be, c->b1, H, &d->b1, err)) ||
        (rc = be->ops->upload_f32(be, c->bn_alpha, H, &d->alpha, err)) ||
        (rc = be->ops->upload_f32(be, c->bn_beta, H, &d->beta, err)) ||
        (rc = be->ops->upload_f32(be, c->w2, (size_t)c->classes * H, &d->w2, err)) ||
        (rc = be->ops->upload_f32(be, c->b2, (size_t)c->classes, &d->b2, err))) {
        vnp_error_prefix(err, "classifier on %s: ", vnp_backend_name(be));
        vnp_classifier_dev_free(d);
        return rc;
    }
    *out = d;
    return VNP_OK;
}

vnp_code vnp_classifier_queue_logits(vnp_classifier_dev *d, const vnp_buf *x, int n,
                                     vnp_buf *logits, vnp_error *err)
{
    vnp_backend *be = d->be;
    if (n < 0 || x->dtype != VNP_DT_F32 || x->n < (size_t)n * (size_t)d->in ||
        logits->dtype != VNP_DT_F32 || logits->n < (size_t)n * 2)
        return vnp_fail(err, VNP_EINVAL,
                        "classifier: %d rows need F32 buffers of %d features and 2 logits each",
                        n, d->in);
    if (n == 0)
        return VNP_OK;
    vnp_code rc;
    if ((size_t)n > d->rows_cap) {
        if (d->h.ptr)
            be->ops->free_buf(be, &d->h);
        d->rows_cap = 0;
        size_t cap = (size_t)n + (size_t)n / 4;
        if ((rc = be->ops->alloc_f32(be, cap * (size_t)d->hidden, &d->h, err)))
            return rc;
        d->rows_cap = cap;
    }
    /* As PyTorch evaluates it: the hidden layer (bias added after the product), BatchNorm
     * as one fused x * alpha + beta, ReLU, the output layer. */
    if ((rc = be->ops->linear(be, x, &d->w1, &d->b1, VNP_ACT_NONE, NULL, n, d->hidden, d->in,
                              &d->h, err)) ||
        (rc = be->ops->scale_shift(be, &d->h, &d->alpha, &d->beta, VNP_ACT_RELU, n, d->hidden,
                                   &d->h, err)) ||
        (rc = be->ops->linear(be, &d->h, &d->w2, &d->b2, VNP_ACT_NONE, NULL, n, 2, d->hidden,
                              logits, err)))
        vnp_error_prefix(err, "classifier on %s: ", vnp_backend_name(be));
    return rc;
}

size_t vnp_classifier_softmax(const float *logits, size_t n, float *probs)
{
    size_t bad = 0;
    for (size_t r = 0; r < n; r++) {
        const float *l = logits + 2 * r;
        float mx = l[0] > l[1] ? l[0] : l[1];
        float e0 = expf(l[0] - mx), e1 = expf(l[1] - mx);
        float inv = 1.0f / (e0 + e1);
        probs[2 * r] = e0 * inv;
        probs[2 * r + 1] = e1 * inv;
        bad += !isfinite(probs[2 * r]) || !isfinite(probs[2 * r + 1]);
    }
    return bad;
}

vnp_code vnp_classifier_predict(const vnp_classifier *c, const float *x, size_t n, int width,
                                float *probs, vnp_error *err)
{
    if (width != c->in)
        return vnp_fail(err, VNP_ESHAPE,
                        "the classifier takes %d features per row, but the rows given have %d",
                        c->in, width);
    if (n == 0)
        return VNP_OK;
    if (n > (size_t)INT32_MAX / (size_t)(c->in > 2 ? c->in : 2))
        return vnp_fail(err, VNP_EINVAL, "classifier: %zu rows in one call are too many", n);
    vnp_backend *be = NULL;
    vnp_classifier_dev *d = NULL;
    vnp_buf xb = {0}, lb = {0};
    float *logits = malloc(n * 2 * sizeof *logits);
    vnp_code rc = logits ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory classifying %zu rows", n);
    if (!rc)
        rc = vnp_backend_create("cpu", VNP_PREC_FP32, 1, &be, err);
    if (!rc)
        rc = vnp_classifier_upload(c, be, &d, err);
    if (!rc)
        rc = be->ops->upload_f32(be, x, n * (size_t)c->in, &xb, err);
    if (!rc)
        rc = be->ops->alloc_f32(be, n * 2, &lb, err);
    if (!rc) {
        be->ops->guard_reset(be);
        rc = vnp_classifier_queue_logits(d, &xb, (int)n, &lb, err);
    }
    if (!rc)
        rc = be->ops->download_f32(be, &lb, n * 2, logits, err);
    if (!rc && vnp_classifier_softmax(logits, n, probs) > 0)
        rc = vnp_fail(err, VNP_ENUMERIC,
                      "the classifier gave a non-finite probability; its input features are "
                      "not finite");
    if (be) {
        if (xb.ptr)
            be->ops->free_buf(be, &xb);
        if (lb.ptr)
            be->ops->free_buf(be, &lb);
    }
    vnp_classifier_dev_free(d);
    vnp_backend_free(be);
    free(logits);
    return rc;
}
