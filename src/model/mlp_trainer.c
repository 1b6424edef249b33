/* Training the MLP classifier: one SGD step in train mode, and eval-mode
 * probabilities, every step a backend op (the CPU computes them as PyTorch's CPU path
 * does; the CUDA backend the same sums in the same precisions, in its own order).
 *
 * Forward (train mode), for a batch X[B, in]:
 *   Z = X W1^T + b1                       backend linear
 *   BatchNorm with batch statistics, ReLU, dropout (the mask given by the caller)
 *                                         backend bn_relu_dropout_fwd (running
 *                                         statistics updated as PyTorch does)
 *   L = D W2^T + b2                       backend linear
 *   loss = mean over rows of logsumexp(L) - L[y]; dL = (softmax(L) - onehot(y)) / B
 *                                         backend softmax_xent
 * Backward: dW2 = dL^T D, dD = dL W2 (backend gemm), db2 = sum dL (col_sums); through
 *   dropout, ReLU and BatchNorm (bn_relu_dropout_bwd: dZ, dgamma, dbeta); dW1 = dZ^T X
 *   (gemm), db1 = sum dZ (col_sums).
 * SGD as torch.optim.SGD (momentum m, no dampening, no weight decay): backend sgd_step.
 * Eval: predict's path exactly (the classifier's folded BatchNorm, backend ops).
 *
 * The parameters, gradients, momentum buffers and workspaces live in the backend's
 * memory for the whole run; the caller's vnp_mlp_params is brought up to date by
 * vnp_mlp_trainer_sync (and by vnp_mlp_eval, which folds the BatchNorm on the host). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "virnucpro/train.h"

enum { P_W1, P_B1, P_BNW, P_BNB, P_W2, P_B2, P_RMEAN, P_RVAR, NSTATE };
#define NPARAM 6 /* the trained ones: P_W1 .. P_B2 */

enum { W_X, W_Y, W_KEEP, W_Z, W_XHAT, W_R, W_D, W_LOGITS, W_DL, W_DD, W_DZ, W_INVSTD, W_LOSS,
       W_ALPHA, W_BETA, W_EX, W_EH, W_EL, NWORK };

#define EVAL_CHUNK 4096

struct vnp_mlp_trainer {
    vnp_backend *be;
    vnp_mlp_params *p;
    int max_batch;
    float momentum;
    int stepped; /* momentum buffers hold something */
    int dirty;   /* the backend's parameters are newer than p's */
    vnp_buf prm[NSTATE], grad[NPARAM], mom[NPARAM], w[NWORK];
    size_t len[NSTATE];
    float *alpha, *beta, *eval_l; /* host */
};

static float *param_ptr(vnp_mlp_params *p, int i)
{
    float *ps[NSTATE] = {p->w1, p->b1, p->bn_w, p->bn_b, p->w2, p->b2, p->bn_mean, p->bn_var};
    return ps[i];
}

void vnp_mlp_trainer_free(vnp_mlp_trainer *t)
{
    if (!t)
        return;
    vnp_backend *be = t->be;
    for (int i = 0; i < NSTATE; i++)
        if (t->prm[i].ptr)
            be->ops->free_buf(be, &t->prm[i]);
    for (int i = 0; i < NPARAM; i++) {
        if (t->grad[i].ptr)
            be->ops->free_buf(be, &t->grad[i]);
        if (t->mom[i].ptr)
            be->ops->free_buf(be, &t->mom[i]);
    }
    for (int i = 0; i < NWORK; i++)
        if (t->w[i].ptr)
            be->ops->free_buf(be, &t->w[i]);
    free(t->alpha);
    free(t->beta);
    free(t->eval_l);
    free(t);
}

vnp_code vnp_mlp_trainer_create(vnp_backend *be, vnp_mlp_params *p, int max_batch,
                                float momentum, vnp_mlp_trainer **out, vnp_error *err)
{
    *out = NULL;
    const vnp_backend_ops *o = be->ops;
    if (!o->gemm || !o->alloc_dt || !o->copy_in || !o->copy_out || !o->bn_relu_dropout_fwd ||
        !o->bn_relu_dropout_bwd || !o->softmax_xent || !o->col_sums || !o->sgd_step)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "the %s backend has no training ops; train with --device cpu",
                        vnp_backend_name(be));
    if (vnp_backend_precision(be) != VNP_PREC_FP32)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "training the classifier computes in FP32, not on a %s backend (%s)",
                        vnp_precision_label(vnp_backend_precision(be)), vnp_backend_name(be));
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
    size_t H = (size_t)p->hidden, B = (size_t)max_batch, In = (size_t)p->in;
    size_t lens[NSTATE] = {H * In, H, H, H, 2 * H, 2, H, H};
    vnp_code rc = VNP_OK;
    for (int i = 0; i < NSTATE && !rc; i++) {
        t->len[i] = lens[i];
        rc = o->alloc_dt(be, VNP_DT_F32, lens[i], &t->prm[i], err);
        if (!rc)
            rc = o->copy_in(be, param_ptr(p, i), lens[i], &t->prm[i], err);
        if (!rc && i < NPARAM)
            rc = o->alloc_dt(be, VNP_DT_F32, lens[i], &t->grad[i], err);
        if (!rc && i < NPARAM)
            rc = o->alloc_dt(be, VNP_DT_F32, lens[i], &t->mom[i], err);
    }
    struct {
        vnp_dtype dt;
        size_t n;
    } ws[NWORK] = {
        [W_X] = {VNP_DT_F32, B * In},      [W_Y] = {VNP_DT_U8, B},
        [W_KEEP] = {VNP_DT_U8, B * H},     [W_Z] = {VNP_DT_F32, B * H},
        [W_XHAT] = {VNP_DT_F32, B * H},    [W_R] = {VNP_DT_F32, B * H},
        [W_D] = {VNP_DT_F32, B * H},       [W_LOGITS] = {VNP_DT_F32, B * 2},
        [W_DL] = {VNP_DT_F32, B * 2},      [W_DD] = {VNP_DT_F32, B * H},
        [W_DZ] = {VNP_DT_F32, B * H},      [W_INVSTD] = {VNP_DT_F64, H},
        [W_LOSS] = {VNP_DT_F64, 1},        [W_ALPHA] = {VNP_DT_F32, H},
        [W_BETA] = {VNP_DT_F32, H},        [W_EX] = {VNP_DT_F32, EVAL_CHUNK * In},
        [W_EH] = {VNP_DT_F32, EVAL_CHUNK * H}, [W_EL] = {VNP_DT_F32, EVAL_CHUNK * 2},
    };
    for (int i = 0; i < NWORK && !rc; i++)
        rc = o->alloc_dt(be, ws[i].dt, ws[i].n, &t->w[i], err);
    if (rc) {
        vnp_error_prefix(err, "the trainer's buffers (batch %d, %d x %d): ", max_batch, p->in,
                         p->hidden);
        vnp_mlp_trainer_free(t);
        return rc;
    }
    t->alpha = malloc(H * sizeof(float));
    t->beta = malloc(H * sizeof(float));
    t->eval_l = malloc(EVAL_CHUNK * 2 * sizeof(float));
    if (!t->alpha || !t->beta || !t->eval_l) {
        vnp_mlp_trainer_free(t);
        return vnp_fail(err, VNP_ENOMEM, "out of memory for the trainer (batch %d, %d x %d)",
                        max_batch, p->in, p->hidden);
    }
    *out = t;
    return VNP_OK;
}

vnp_code vnp_mlp_trainer_sync(vnp_mlp_trainer *t, vnp_error *err)
{
    if (!t->dirty)
        return VNP_OK;
    for (int i = 0; i < NSTATE; i++) {
        vnp_code rc = t->be->ops->copy_out(t->be, &t->prm[i], t->len[i], param_ptr(t->p, i), err);
        if (rc)
            return rc;
    }
    t->dirty = 0;
    return VNP_OK;
}

vnp_code vnp_mlp_train_step(vnp_mlp_trainer *t, const float *x, const uint8_t *y, int B,
                            const uint8_t *keep, double lr, double *loss, vnp_error *err)
{
    vnp_backend *be = t->be;
    const vnp_backend_ops *o = be->ops;
    vnp_mlp_params *p = t->p;
    int H = p->hidden, In = p->in;
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || B > t->max_batch)
        return vnp_fail(err, VNP_EINVAL, "a training batch of %d rows (2 to %d)", B,
                        t->max_batch);
    vnp_buf *w = t->w, *prm = t->prm, *g = t->grad;
    o->guard_reset(be);
    t->dirty = 1;
    vnp_code rc;
    if ((rc = o->copy_in(be, x, (size_t)B * In, &w[W_X], err)) ||
        (rc = o->copy_in(be, y, (size_t)B, &w[W_Y], err)) ||
        (rc = o->copy_in(be, keep, BH, &w[W_KEEP], err)) ||
        (rc = o->linear(be, &w[W_X], &prm[P_W1], &prm[P_B1], VNP_ACT_NONE, NULL, B, H, In,
                        &w[W_Z], err)) ||
        (rc = o->bn_relu_dropout_fwd(be, &w[W_Z], &prm[P_BNW], &prm[P_BNB], &w[W_KEEP], B, H,
                                     p->eps, p->bn_momentum, p->dropout, &prm[P_RMEAN],
                                     &prm[P_RVAR], &w[W_XHAT], &w[W_R], &w[W_D], &w[W_INVSTD],
                                     err)))
        return rc;
    p->bn_batches++;
    if ((rc = o->linear(be, &w[W_D], &prm[P_W2], &prm[P_B2], VNP_ACT_NONE, NULL, B, 2, H,
                        &w[W_LOGITS], err)) ||
        (rc = o->softmax_xent(be, &w[W_LOGITS], &w[W_Y], B, &w[W_LOSS], &w[W_DL], err)) ||
        (rc = o->copy_out(be, &w[W_LOSS], 1, loss, err)))
        return rc;
    if (!isfinite(*loss))
        return vnp_fail(err, VNP_ENUMERIC,
                        "the training loss is not finite: check that the features are finite, or "
                        "train with a lower --lr");
    /* output layer, then dropout, ReLU, BatchNorm, then the hidden layer */
    if ((rc = o->gemm(be, 1, 0, 2, H, B, 1.0f, &w[W_DL], &w[W_D], 0.0f, &g[P_W2], err)) ||
        (rc = o->gemm(be, 0, 0, B, H, 2, 1.0f, &w[W_DL], &prm[P_W2], 0.0f, &w[W_DD], err)) ||
        (rc = o->col_sums(be, &w[W_DL], B, 2, &g[P_B2], err)) ||
        (rc = o->bn_relu_dropout_bwd(be, &w[W_DD], &w[W_KEEP], &w[W_R], &w[W_XHAT],
                                     &w[W_INVSTD], &prm[P_BNW], B, H, p->dropout, &w[W_DZ],
                                     &g[P_BNW], &g[P_BNB], err)) ||
        (rc = o->gemm(be, 1, 0, H, In, B, 1.0f, &w[W_DZ], &w[W_X], 0.0f, &g[P_W1], err)) ||
        (rc = o->col_sums(be, &w[W_DZ], B, H, &g[P_B1], err)))
        return rc;
    /* SGD with momentum */
    for (int i = 0; i < NPARAM; i++)
        if ((rc = o->sgd_step(be, &prm[i], &g[i], &t->mom[i], t->len[i], (float)lr,
                              t->momentum, !t->stepped, err)))
            return rc;
    t->stepped = 1;
    return vnp_backend_guard_check(be, err);
}

vnp_code vnp_mlp_eval(vnp_mlp_trainer *t, const float *x, size_t n, float *logits, float *probs,
                      vnp_error *err)
{
    vnp_backend *be = t->be;
    const vnp_backend_ops *o = be->ops;
    vnp_mlp_params *p = t->p;
    int H = p->hidden;
    if (n == 0)
        return VNP_OK;
    vnp_code rc = vnp_mlp_trainer_sync(t, err);
    if (rc)
        return rc;
    be->ops->guard_reset(be);
    /* BatchNorm folded as the classifier (and PyTorch's eval path) folds it */
    for (int j = 0; j < H; j++) {
        float invstd = 1.0f / sqrtf(p->bn_var[j] + p->eps);
        t->alpha[j] = invstd * p->bn_w[j];
        t->beta[j] = fmaf(-p->bn_mean[j], t->alpha[j], p->bn_b[j]);
    }
    vnp_buf *w = t->w, *prm = t->prm;
    if ((rc = o->copy_in(be, t->alpha, (size_t)H, &w[W_ALPHA], err)) ||
        (rc = o->copy_in(be, t->beta, (size_t)H, &w[W_BETA], err)))
        return rc;
    for (size_t r0 = 0; r0 < n; r0 += EVAL_CHUNK) {
        int rows = (int)(n - r0 < EVAL_CHUNK ? n - r0 : EVAL_CHUNK);
        if ((rc = o->copy_in(be, x + r0 * (size_t)p->in, (size_t)rows * p->in, &w[W_EX], err)) ||
            (rc = o->linear(be, &w[W_EX], &prm[P_W1], &prm[P_B1], VNP_ACT_NONE, NULL, rows, H,
                            p->in, &w[W_EH], err)) ||
            (rc = o->scale_shift(be, &w[W_EH], &w[W_ALPHA], &w[W_BETA], VNP_ACT_RELU, rows, H,
                                 &w[W_EH], err)) ||
            (rc = o->linear(be, &w[W_EH], &prm[P_W2], &prm[P_B2], VNP_ACT_NONE, NULL, rows, 2, H,
                            &w[W_EL], err)) ||
            (rc = o->copy_out(be, &w[W_EL], (size_t)rows * 2, t->eval_l, err)))
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
