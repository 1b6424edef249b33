/* VirNucPro's MLP classifier, read from the whole pickled module:
 * Linear(hidden_layer) -> BatchNorm1d(bn1, eval: running statistics and the
 * module's eps) -> ReLU -> [Dropout: identity at inference] ->
 * Linear(output_layer) -> softmax. It runs on the host.
 *
 * The published classifiers have large output weights (logits near -100), so
 * float32 rounding of the hidden layer moves the probabilities by ~1e-5. To
 * stay with the reference, every step rounds as PyTorch's CPU path does on
 * one ORF at a time (as VirNucPro calls it): each dot product is one fused
 * multiply-add chain in input order plus the bias; BatchNorm is folded into
 * alpha = weight / sqrt(var + eps), beta = bias - mean * alpha and applied as
 * one fused x * alpha + beta. The cost is ~2 x in x hidden flops per ORF,
 * negligible next to the encoders. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
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

/* bias + sum_k x[k] w[k], accumulated with fused multiply-adds in order */
static float dot_bias(const float *x, const float *w, int k, float bias)
{
    float acc = 0.0f;
    for (int i = 0; i < k; i++)
        acc = fmaf(x[i], w[i], acc);
    return bias + acc;
}

vnp_code vnp_classifier_predict(const vnp_classifier *c, const float *x, size_t n, float *probs,
                                vnp_error *err)
{
    if (n == 0)
        return VNP_OK;
    float *h = malloc((size_t)c->hidden * sizeof(float));
    float *logits = malloc((size_t)c->classes * sizeof(float));
    if (!h || !logits) {
        free(h);
        free(logits);
        return vnp_fail(err, VNP_ENOMEM, "out of memory classifying %zu rows", n);
    }
    vnp_code rc = VNP_OK;
    for (size_t r = 0; r < n; r++) {
        const float *xr = x + r * (size_t)c->in;
        for (int i = 0; i < c->hidden; i++) {
            float v = dot_bias(xr, c->w1 + (size_t)i * c->in, c->in, c->b1[i]);
            v = fmaf(v, c->bn_alpha[i], c->bn_beta[i]);
            h[i] = v > 0.0f ? v : 0.0f;
        }
        float mx = -INFINITY, sum = 0.0f;
        for (int k = 0; k < c->classes; k++) {
            logits[k] = dot_bias(h, c->w2 + (size_t)k * c->hidden, c->hidden, c->b2[k]);
            mx = logits[k] > mx ? logits[k] : mx;
        }
        for (int k = 0; k < c->classes; k++)
            sum += (logits[k] = expf(logits[k] - mx));
        float inv = 1.0f / sum;
        for (int k = 0; k < c->classes; k++) {
            float p = logits[k] * inv;
            probs[r * c->classes + k] = p;
            if (!isfinite(p) && !rc)
                rc = vnp_fail(err, VNP_ENUMERIC,
                              "the classifier gave a non-finite probability for row %zu; its "
                              "input features are not finite",
                              r);
        }
    }
    free(h);
    free(logits);
    return rc;
}
