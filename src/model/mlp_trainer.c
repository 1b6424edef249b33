/* Training the MLP classifier: one SGD step in train mode, and eval-mode
 * probabilities, computed as PyTorch's CPU path computes them.
 *
 * Forward (train mode), for a batch X[B, in]:
 *   Z = X W1^T + b1                       backend linear
 *   BatchNorm with batch statistics: mean and biased variance accumulated in double
 *   (PyTorch's CPU accumulation type), invstd = 1 / sqrt(var + eps), Y = Z * a + c
 *   with a = invstd * gamma, c = beta - mean * a; running_mean <- (1 - m) running_mean
 *   + m mean, running_var <- (1 - m) running_var + m var * B / (B - 1)
 *   R = relu(Y); D = R * keep / (1 - p)   (the dropout mask given by the caller)
 *   L = D W2^T + b2                       backend linear
 *   loss = mean over rows of logsumexp(L) - L[y]
 * Backward: dL = (softmax(L) - onehot(y)) / B; dW2 = dL^T D, db2 = sum dL;
 *   dD = dL W2; dR = dD * keep / (1 - p); dY = dR where R > 0; the BatchNorm backward
 *   dZ = a / B * (B dY - sum dY - xhat * sum(dY xhat)), dgamma = sum(dY xhat),
 *   dbeta = sum dY; dW1 = dZ^T X, db1 = sum dZ. The three weight products are backend
 *   GEMMs.
 * SGD as torch.optim.SGD (momentum m, no dampening, no weight decay): the first step
 *   sets buf = grad, later ones buf = m buf + grad; then p = p - lr buf.
 * Eval: predict's path exactly (the classifier's folded BatchNorm, backend ops).
 *
 * The backend's buffers are the host arrays here (the CPU backend); the element-wise
 * steps run on the calling thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "virnucpro/train.h"

enum { P_W1, P_B1, P_BNW, P_BNB, P_W2, P_B2, NPARAM };

struct vnp_mlp_trainer {
    vnp_backend *be;
    vnp_mlp_params *p;
    int max_batch;
    float momentum;
    int stepped; /* momentum buffers hold something */
    float *grad[NPARAM], *mom[NPARAM];
    size_t len[NPARAM];
    float *x, *z, *xhat, *r, *d, *logits, *dl, *dd, *dz; /* workspaces, max_batch rows */
    double *invstd;
    float *alpha, *beta;
    size_t eval_cap;
    float *eval_h, *eval_l;
};

static vnp_buf f32buf(float *p, size_t n)
{
    vnp_buf b = {p, VNP_DT_F32, n};
    return b;
}

static float *param_ptr(vnp_mlp_params *p, int i)
{
    float *ps[NPARAM] = {p->w1, p->b1, p->bn_w, p->bn_b, p->w2, p->b2};
    return ps[i];
}

void vnp_mlp_trainer_free(vnp_mlp_trainer *t)
{
    if (!t)
        return;
    for (int i = 0; i < NPARAM; i++) {
        free(t->grad[i]);
        free(t->mom[i]);
    }
    float *w[] = {t->x, t->z, t->xhat, t->r, t->d, t->logits, t->dl, t->dd, t->dz,
                  t->alpha, t->beta, t->eval_h, t->eval_l};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        free(w[i]);
    free(t->invstd);
    free(t);
}

vnp_code vnp_mlp_trainer_create(vnp_backend *be, vnp_mlp_params *p, int max_batch,
                                float momentum, vnp_mlp_trainer **out, vnp_error *err)
{
    *out = NULL;
    if (!be->ops->gemm || strncmp(vnp_backend_name(be), "cpu", 3) != 0)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "training the classifier runs on the CPU backend for now, not on %s; "
                        "its features may still be computed on a GPU",
                        vnp_backend_name(be));
    if (max_batch < 2 || p->classes != 2)
        return vnp_fail(err, VNP_EINVAL, "training needs batches of at least 2 rows and a "
                                         "2-class classifier");
    vnp_mlp_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return vnp_fail(err, VNP_ENOMEM, "out of memory for the trainer");
    t->be = be;
    t->p = p;
    t->max_batch = max_batch;
    t->momentum = momentum;
    size_t H = (size_t)p->hidden, B = (size_t)max_batch;
    size_t lens[NPARAM] = {H * (size_t)p->in, H, H, H, 2 * H, 2};
    int ok = 1;
    for (int i = 0; i < NPARAM; i++) {
        t->len[i] = lens[i];
        t->grad[i] = malloc(lens[i] * sizeof(float));
        t->mom[i] = calloc(lens[i], sizeof(float));
        ok = ok && t->grad[i] && t->mom[i];
    }
    t->x = malloc(B * (size_t)p->in * sizeof(float));
    t->z = malloc(B * H * sizeof(float));
    t->xhat = malloc(B * H * sizeof(float));
    t->r = malloc(B * H * sizeof(float));
    t->d = malloc(B * H * sizeof(float));
    t->dd = malloc(B * H * sizeof(float));
    t->dz = malloc(B * H * sizeof(float));
    t->logits = malloc(B * 2 * sizeof(float));
    t->dl = malloc(B * 2 * sizeof(float));
    t->invstd = malloc(H * sizeof(double));
    t->alpha = malloc(H * sizeof(float));
    t->beta = malloc(H * sizeof(float));
    if (!ok || !t->x || !t->z || !t->xhat || !t->r || !t->d || !t->dd || !t->dz ||
        !t->logits || !t->dl || !t->invstd || !t->alpha || !t->beta) {
        vnp_mlp_trainer_free(t);
        return vnp_fail(err, VNP_ENOMEM, "out of memory for the trainer (batch %d, %d x %d)",
                        max_batch, p->in, p->hidden);
    }
    *out = t;
    return VNP_OK;
}

/* sums[j] = sum over the B rows of m[r * N + j] */
static void col_sums(const float *m, int B, int N, float *sums)
{
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int r = 0; r < B; r++)
            s += m[(size_t)r * N + j];
        sums[j] = (float)s;
    }
}

vnp_code vnp_mlp_train_step(vnp_mlp_trainer *t, const float *x, const uint8_t *y, int B,
                            const uint8_t *keep, double lr, double *loss, vnp_error *err)
{
    vnp_backend *be = t->be;
    vnp_mlp_params *p = t->p;
    int H = p->hidden, In = p->in;
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || B > t->max_batch)
        return vnp_fail(err, VNP_EINVAL, "a training batch of %d rows (2 to %d)", B,
                        t->max_batch);
    be->ops->guard_reset(be);
    memcpy(t->x, x, (size_t)B * (size_t)In * sizeof(float));
    vnp_buf X = f32buf(t->x, (size_t)B * In), Z = f32buf(t->z, BH), D = f32buf(t->d, BH);
    vnp_buf W1 = f32buf(p->w1, (size_t)H * In), B1 = f32buf(p->b1, (size_t)H);
    vnp_buf W2 = f32buf(p->w2, 2 * (size_t)H), B2 = f32buf(p->b2, 2);
    vnp_buf Lg = f32buf(t->logits, (size_t)B * 2);
    vnp_code rc = be->ops->linear(be, &X, &W1, &B1, VNP_ACT_NONE, NULL, B, H, In, &Z, err);
    if (rc)
        return rc;
    /* BatchNorm, train mode */
    float m = p->bn_momentum, scale = p->dropout > 0 ? 1.0f / (1.0f - p->dropout) : 1.0f;
    for (int j = 0; j < H; j++) {
        double s = 0, v = 0;
        for (int r = 0; r < B; r++)
            s += t->z[(size_t)r * H + j];
        double mean = s / B;
        for (int r = 0; r < B; r++) {
            double dv = t->z[(size_t)r * H + j] - mean;
            v += dv * dv;
        }
        double var = v / B;
        t->invstd[j] = 1.0 / sqrt(var + (double)p->eps);
        p->bn_mean[j] = (float)(m * mean + (1.0 - m) * p->bn_mean[j]);
        p->bn_var[j] = (float)(m * (v / (B - 1)) + (1.0 - m) * p->bn_var[j]);
        float a = (float)t->invstd[j] * p->bn_w[j];
        t->alpha[j] = a;
        t->beta[j] = p->bn_b[j] - (float)mean * a;
        for (int r = 0; r < B; r++) {
            size_t k = (size_t)r * H + j;
            t->xhat[k] = (float)((t->z[k] - mean) * t->invstd[j]);
            float yv = t->z[k] * a + t->beta[j];
            float rv = yv > 0.0f ? yv : 0.0f;
            t->r[k] = rv;
            t->d[k] = keep[k] ? rv * scale : 0.0f;
        }
    }
    p->bn_batches++;
    if ((rc = be->ops->linear(be, &D, &W2, &B2, VNP_ACT_NONE, NULL, B, 2, H, &Lg, err)))
        return rc;
    /* loss and its gradient */
    double total = 0;
    for (int r = 0; r < B; r++) {
        const float *l = t->logits + 2 * r;
        double mx = l[0] > l[1] ? l[0] : l[1];
        double e0 = exp(l[0] - mx), e1 = exp(l[1] - mx), lse = mx + log(e0 + e1);
        int c = y[r] ? 1 : 0;
        total += lse - l[c];
        t->dl[2 * r] = (float)((e0 / (e0 + e1) - (c == 0)) / B);
        t->dl[2 * r + 1] = (float)((e1 / (e0 + e1) - (c == 1)) / B);
    }
    *loss = total / B;
    if (!isfinite(*loss))
        return vnp_fail(err, VNP_ENUMERIC,
                        "the training loss is not finite: check that the features are finite, or "
                        "train with a lower --lr");
    /* output layer */
    vnp_buf dL = f32buf(t->dl, (size_t)B * 2), dD = f32buf(t->dd, BH), dZ = f32buf(t->dz, BH);
    vnp_buf gW2 = f32buf(t->grad[P_W2], 2 * (size_t)H), gW1 = f32buf(t->grad[P_W1], (size_t)H * In);
    if ((rc = be->ops->gemm(be, 1, 0, 2, H, B, 1.0f, &dL, &D, 0.0f, &gW2, err)) ||
        (rc = be->ops->gemm(be, 0, 0, B, H, 2, 1.0f, &dL, &W2, 0.0f, &dD, err)))
        return rc;
    col_sums(t->dl, B, 2, t->grad[P_B2]);
    /* dropout, ReLU, BatchNorm */
    for (int j = 0; j < H; j++) {
        double sdy = 0, sdyx = 0;
        for (int r = 0; r < B; r++) {
            size_t k = (size_t)r * H + j;
            float g = keep[k] ? t->dd[k] * scale : 0.0f;
            g = t->r[k] > 0.0f ? g : 0.0f;
            t->dd[k] = g; /* now dY */
            sdy += g;
            sdyx += (double)g * t->xhat[k];
        }
        t->grad[P_BNB][j] = (float)sdy;
        t->grad[P_BNW][j] = (float)sdyx;
        double k0 = (double)p->bn_w[j] * t->invstd[j];
        double mdy = sdy / B, mdyx = sdyx / B;
        for (int r = 0; r < B; r++) {
            size_t k = (size_t)r * H + j;
            t->dz[k] = (float)(k0 * (t->dd[k] - mdy - t->xhat[k] * mdyx));
        }
    }
    if ((rc = be->ops->gemm(be, 1, 0, H, In, B, 1.0f, &dZ, &X, 0.0f, &gW1, err)))
        return rc;
    col_sums(t->dz, B, H, t->grad[P_B1]);
    /* SGD with momentum */
    float mo = t->momentum, nlr = (float)-lr;
    for (int i = 0; i < NPARAM; i++) {
        float *w = param_ptr(p, i), *g = t->grad[i], *bf = t->mom[i];
        size_t n = t->len[i];
        if (mo != 0.0f) {
            if (!t->stepped)
                memcpy(bf, g, n * sizeof(float));
            else
                for (size_t k = 0; k < n; k++)
                    bf[k] = bf[k] * mo + g[k];
            g = bf;
        }
        for (size_t k = 0; k < n; k++)
            w[k] = w[k] + nlr * g[k];
    }
    t->stepped = 1;
    return vnp_backend_guard_check(be, err);
}

vnp_code vnp_mlp_eval(vnp_mlp_trainer *t, const float *x, size_t n, float *logits, float *probs,
                      vnp_error *err)
{
    vnp_backend *be = t->be;
    vnp_mlp_params *p = t->p;
    int H = p->hidden;
    if (n == 0)
        return VNP_OK;
    const size_t chunk = 4096;
    be->ops->guard_reset(be);
    if (!t->eval_h) {
        t->eval_h = malloc(chunk * (size_t)H * sizeof(float));
        t->eval_l = malloc(chunk * 2 * sizeof(float));
        if (!t->eval_h || !t->eval_l)
            return vnp_fail(err, VNP_ENOMEM, "out of memory evaluating the classifier");
    }
    /* BatchNorm folded as the classifier (and PyTorch's eval path) folds it */
    for (int j = 0; j < H; j++) {
        float invstd = 1.0f / sqrtf(p->bn_var[j] + p->eps);
        t->alpha[j] = invstd * p->bn_w[j];
        t->beta[j] = fmaf(-p->bn_mean[j], t->alpha[j], p->bn_b[j]);
    }
    vnp_buf W1 = f32buf(p->w1, (size_t)H * p->in), B1 = f32buf(p->b1, (size_t)H);
    vnp_buf W2 = f32buf(p->w2, 2 * (size_t)H), B2 = f32buf(p->b2, 2);
    vnp_buf A = f32buf(t->alpha, (size_t)H), Bt = f32buf(t->beta, (size_t)H);
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        int rows = (int)(n - r0 < chunk ? n - r0 : chunk);
        vnp_buf X = f32buf((float *)(x + r0 * (size_t)p->in), (size_t)rows * p->in);
        vnp_buf Hb = f32buf(t->eval_h, (size_t)rows * H), L = f32buf(t->eval_l, (size_t)rows * 2);
        vnp_code rc;
        if ((rc = be->ops->linear(be, &X, &W1, &B1, VNP_ACT_NONE, NULL, rows, H, p->in, &Hb,
                                  err)) ||
            (rc = be->ops->scale_shift(be, &Hb, &A, &Bt, VNP_ACT_RELU, rows, H, &Hb, err)) ||
            (rc = be->ops->linear(be, &Hb, &W2, &B2, VNP_ACT_NONE, NULL, rows, 2, H, &L, err)))
            return rc;
        if (logits)
            memcpy(logits + 2 * r0, t->eval_l, (size_t)rows * 2 * sizeof(float));
        if (vnp_classifier_softmax(t->eval_l, (size_t)rows, probs + 2 * r0) > 0)
            return vnp_fail(err, VNP_ENUMERIC,
                            "the classifier gave a non-finite probability during training; "
                            "try a lower --lr");
    }
    return VNP_OK;
}
