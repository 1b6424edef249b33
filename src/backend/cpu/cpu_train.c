/* The classifier's training ops on the CPU: BatchNorm (train mode) + ReLU + dropout
 * forward and backward, softmax cross-entropy, column sums, SGD with momentum. The
 * loops run on the calling thread (B x hidden is small next to the GEMMs) in the order
 * of PyTorch's CPU path: statistics and sums accumulated in double. */
#include "backend/cpu/cpu_backend.h"

static int bufs_ok(const vnp_buf *b, vnp_dtype dt, size_t n)
{
    return b && b->ptr && b->dtype == dt && b->n >= n;
}

static vnp_code shape_fail(vnp_error *err, const char *op, int B, int H)
{
    return vnp_fail(err, VNP_EINVAL,
                    "%s on the CPU: rows %d, width %d: needs at least 2 rows and buffers of "
                    "the op's dtypes at least as large as the shapes",
                    op, B, H);
}

vnp_code vnp_cpu_bn_relu_dropout_fwd(vnp_backend *be, const vnp_buf *z_, const vnp_buf *gamma,
                                     const vnp_buf *beta_, const vnp_buf *keep_, int B, int H,
                                     float eps, float momentum, float dropout,
                                     vnp_buf *running_mean, vnp_buf *running_var,
                                     vnp_buf *xhat_, vnp_buf *r_, vnp_buf *d_, vnp_buf *invstd_,
                                     vnp_error *err)
{
    (void)be;
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || H < 1 || !bufs_ok(z_, VNP_DT_F32, BH) || !bufs_ok(gamma, VNP_DT_F32, H) ||
        !bufs_ok(beta_, VNP_DT_F32, H) || !bufs_ok(keep_, VNP_DT_U8, BH) ||
        !bufs_ok(running_mean, VNP_DT_F32, H) || !bufs_ok(running_var, VNP_DT_F32, H) ||
        !bufs_ok(xhat_, VNP_DT_F32, BH) || !bufs_ok(r_, VNP_DT_F32, BH) ||
        !bufs_ok(d_, VNP_DT_F32, BH) || !bufs_ok(invstd_, VNP_DT_F64, H))
        return shape_fail(err, "BatchNorm training forward", B, H);
    const float *z = z_->ptr, *bn_w = gamma->ptr, *bn_b = beta_->ptr;
    const uint8_t *keep = keep_->ptr;
    float *bn_mean = running_mean->ptr, *bn_var = running_var->ptr;
    float *xhat = xhat_->ptr, *r = r_->ptr, *d = d_->ptr;
    double *invstd = invstd_->ptr;
    float m = momentum, scale = dropout > 0 ? 1.0f / (1.0f - dropout) : 1.0f;
    for (int j = 0; j < H; j++) {
        double s = 0, v = 0;
        for (int i = 0; i < B; i++)
            s += z[(size_t)i * H + j];
        double mean = s / B;
        for (int i = 0; i < B; i++) {
            double dv = z[(size_t)i * H + j] - mean;
            v += dv * dv;
        }
        double var = v / B;
        invstd[j] = 1.0 / sqrt(var + (double)eps);
        bn_mean[j] = (float)(m * mean + (1.0 - m) * bn_mean[j]);
        bn_var[j] = (float)(m * (v / (B - 1)) + (1.0 - m) * bn_var[j]);
        float a = (float)invstd[j] * bn_w[j];
        float c = bn_b[j] - (float)mean * a;
        for (int i = 0; i < B; i++) {
            size_t k = (size_t)i * H + j;
            xhat[k] = (float)((z[k] - mean) * invstd[j]);
            float yv = z[k] * a + c;
            float rv = yv > 0.0f ? yv : 0.0f;
            r[k] = rv;
            d[k] = keep[k] ? rv * scale : 0.0f;
        }
    }
    return VNP_OK;
}

vnp_code vnp_cpu_bn_relu_dropout_bwd(vnp_backend *be, vnp_buf *dd_, const vnp_buf *keep_,
                                     const vnp_buf *r_, const vnp_buf *xhat_,
                                     const vnp_buf *invstd_, const vnp_buf *gamma, int B, int H,
                                     float dropout, vnp_buf *dz_, vnp_buf *dgamma,
                                     vnp_buf *dbeta, vnp_error *err)
{
    (void)be;
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || H < 1 || !bufs_ok(dd_, VNP_DT_F32, BH) || !bufs_ok(keep_, VNP_DT_U8, BH) ||
        !bufs_ok(r_, VNP_DT_F32, BH) || !bufs_ok(xhat_, VNP_DT_F32, BH) ||
        !bufs_ok(invstd_, VNP_DT_F64, H) || !bufs_ok(gamma, VNP_DT_F32, H) ||
        !bufs_ok(dz_, VNP_DT_F32, BH) || !bufs_ok(dgamma, VNP_DT_F32, H) ||
        !bufs_ok(dbeta, VNP_DT_F32, H))
        return shape_fail(err, "BatchNorm training backward", B, H);
    float *dd = dd_->ptr, *dz = dz_->ptr, *gw = dgamma->ptr, *gb = dbeta->ptr;
    const float *r = r_->ptr, *xhat = xhat_->ptr, *bn_w = gamma->ptr;
    const uint8_t *keep = keep_->ptr;
    const double *invstd = invstd_->ptr;
    float scale = dropout > 0 ? 1.0f / (1.0f - dropout) : 1.0f;
    for (int j = 0; j < H; j++) {
        double sdy = 0, sdyx = 0;
        for (int i = 0; i < B; i++) {
            size_t k = (size_t)i * H + j;
            float g = keep[k] ? dd[k] * scale : 0.0f;
            g = r[k] > 0.0f ? g : 0.0f;
            dd[k] = g; /* now dY */
            sdy += g;
            sdyx += (double)g * xhat[k];
        }
        gb[j] = (float)sdy;
        gw[j] = (float)sdyx;
        double k0 = (double)bn_w[j] * invstd[j];
        double mdy = sdy / B, mdyx = sdyx / B;
        for (int i = 0; i < B; i++) {
            size_t k = (size_t)i * H + j;
            dz[k] = (float)(k0 * (dd[k] - mdy - xhat[k] * mdyx));
        }
    }
    return VNP_OK;
}

vnp_code vnp_cpu_softmax_xent(vnp_backend *be, const vnp_buf *logits, const vnp_buf *y_, int B,
                              vnp_buf *loss, vnp_buf *dl_, vnp_error *err)
{
    (void)be;
    if (B < 1 || !bufs_ok(logits, VNP_DT_F32, 2 * (size_t)B) || !bufs_ok(y_, VNP_DT_U8, B) ||
        !bufs_ok(loss, VNP_DT_F64, 1) || !bufs_ok(dl_, VNP_DT_F32, 2 * (size_t)B))
        return shape_fail(err, "softmax cross-entropy", B, 2);
    const float *lg = logits->ptr;
    const uint8_t *y = y_->ptr;
    float *dl = dl_->ptr;
    double total = 0;
    for (int i = 0; i < B; i++) {
        const float *l = lg + 2 * i;
        double mx = l[0] > l[1] ? l[0] : l[1];
        double e0 = exp(l[0] - mx), e1 = exp(l[1] - mx), lse = mx + log(e0 + e1);
        int c = y[i] ? 1 : 0;
        total += lse - l[c];
        dl[2 * i] = (float)((e0 / (e0 + e1) - (c == 0)) / B);
        dl[2 * i + 1] = (float)((e1 / (e0 + e1) - (c == 1)) / B);
    }
    *(double *)loss->ptr = total / B;
    return VNP_OK;
}

vnp_code vnp_cpu_col_sums(vnp_backend *be, const vnp_buf *m_, int M, int N, vnp_buf *sums_,
                          vnp_error *err)
{
    (void)be;
    if (M < 0 || N < 1 || !bufs_ok(m_, VNP_DT_F32, (size_t)M * (size_t)N) ||
        !bufs_ok(sums_, VNP_DT_F32, N))
        return shape_fail(err, "column sums", M, N);
    const float *m = m_->ptr;
    float *sums = sums_->ptr;
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < M; i++)
            s += m[(size_t)i * N + j];
        sums[j] = (float)s;
    }
    return VNP_OK;
}

vnp_code vnp_cpu_sgd_step(vnp_backend *be, vnp_buf *w_, const vnp_buf *g_, vnp_buf *buf_,
                          size_t n, float lr, float mo, int first, vnp_error *err)
{
    (void)be;
    if (!bufs_ok(w_, VNP_DT_F32, n) || !bufs_ok(g_, VNP_DT_F32, n) ||
        (mo != 0.0f && !bufs_ok(buf_, VNP_DT_F32, n)))
        return vnp_fail(err, VNP_EINVAL,
                        "SGD step on the CPU over %zu values: needs F32 buffers at least as "
                        "large",
                        n);
    float *w = w_->ptr, nlr = -lr;
    const float *g = g_->ptr;
    if (mo != 0.0f) {
        float *bf = buf_->ptr;
        if (first)
            memcpy(bf, g, n * sizeof(float));
        else
            for (size_t k = 0; k < n; k++)
                bf[k] = bf[k] * mo + g[k];
        g = bf;
    }
    for (size_t k = 0; k < n; k++)
        w[k] = w[k] + nlr * g[k];
    return VNP_OK;
}
