/* The classifier's training ops on the GPU: BatchNorm (train mode) + ReLU + dropout
 * forward and backward, softmax cross-entropy, column sums, SGD with momentum. FP32
 * values with the CPU backend's double accumulations, in the CPU's order: one thread
 * per column walks the batch's rows (consecutive threads read consecutive columns), so
 * the sums match the CPU's but for the last bits of exp/log and of fused multiply-adds.
 * The float products the CPU rounds separately are rounded separately here too
 * (__fmul_rn / __fadd_rn). */
#include "backend/cuda/cuda_internal.cuh"

static unsigned blocks_for(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 16u)
        b = 65535u * 16u;
    return b ? (unsigned)b : 1u;
}

static int buf_ok(const vnp_buf *b, vnp_dtype dt, size_t n)
{
    return b && b->ptr && b->dtype == dt && b->n >= n;
}

static vnp_code shape_fail(vnp_cuda *c, const char *op, int B, int H, vnp_error *err)
{
    return vnp_fail(err, VNP_EINVAL,
                    "%s on cuda:%d: rows %d, width %d: needs at least 2 rows and buffers of "
                    "the op's dtypes at least as large as the shapes",
                    op, c->device, B, H);
}

__global__ void bn_fwd_kernel(const float *__restrict__ z, const float *__restrict__ bn_w,
                              const float *__restrict__ bn_b, const uint8_t *__restrict__ keep,
                              int B, int H, float eps, float m, float scale,
                              float *__restrict__ bn_mean, float *__restrict__ bn_var,
                              float *__restrict__ xhat, float *__restrict__ r,
                              float *__restrict__ d, double *__restrict__ invstd)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    double s = 0, v = 0;
    for (int i = 0; i < B; i++)
        s += z[(size_t)i * H + j];
    double mean = s / B;
    for (int i = 0; i < B; i++) {
        double dv = z[(size_t)i * H + j] - mean;
        v += dv * dv;
    }
    double var = v / B;
    double is = 1.0 / sqrt(var + (double)eps);
    invstd[j] = is;
    bn_mean[j] = (float)(m * mean + (1.0 - m) * bn_mean[j]);
    bn_var[j] = (float)(m * (v / (B - 1)) + (1.0 - m) * bn_var[j]);
    float a = __fmul_rn((float)is, bn_w[j]);
    float c = __fsub_rn(bn_b[j], __fmul_rn((float)mean, a));
    for (int i = 0; i < B; i++) {
        size_t k = (size_t)i * H + j;
        float zk = z[k];
        xhat[k] = (float)((zk - mean) * is);
        float yv = __fadd_rn(__fmul_rn(zk, a), c);
        float rv = yv > 0.0f ? yv : 0.0f;
        r[k] = rv;
        d[k] = keep[k] ? __fmul_rn(rv, scale) : 0.0f;
    }
}

__global__ void bn_bwd_kernel(float *__restrict__ dd, const uint8_t *__restrict__ keep,
                              const float *__restrict__ r, const float *__restrict__ xhat,
                              const double *__restrict__ invstd, const float *__restrict__ bn_w,
                              int B, int H, float scale, float *__restrict__ dz,
                              float *__restrict__ gw, float *__restrict__ gb)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    double sdy = 0, sdyx = 0;
    for (int i = 0; i < B; i++) {
        size_t k = (size_t)i * H + j;
        float g = keep[k] ? __fmul_rn(dd[k], scale) : 0.0f;
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

/* Per row: dl and the row's loss term (term[i]); then one thread sums the terms in
 * row order, as the CPU does. */
__global__ void xent_rows_kernel(const float *__restrict__ lg, const uint8_t *__restrict__ y,
                                 int B, float *__restrict__ dl, double *__restrict__ term)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B)
        return;
    const float *l = lg + 2 * i;
    double mx = l[0] > l[1] ? l[0] : l[1];
    double e0 = exp(l[0] - mx), e1 = exp(l[1] - mx), lse = mx + log(e0 + e1);
    int c = y[i] ? 1 : 0;
    term[i] = lse - l[c];
    dl[2 * i] = (float)((e0 / (e0 + e1) - (c == 0)) / B);
    dl[2 * i + 1] = (float)((e1 / (e0 + e1) - (c == 1)) / B);
}

__global__ void xent_sum_kernel(const double *__restrict__ term, int B, double *loss)
{
    double total = 0;
    for (int i = 0; i < B; i++)
        total += term[i];
    *loss = total / B;
}

__global__ void col_sums_kernel(const float *__restrict__ m, int M, int N, float *__restrict__ s)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= N)
        return;
    double acc = 0;
    for (int i = 0; i < M; i++)
        acc += m[(size_t)i * N + j];
    s[j] = (float)acc;
}

__global__ void sgd_kernel(float *__restrict__ w, const float *__restrict__ g,
                           float *__restrict__ buf, size_t n, float nlr, float mo, int first)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n;
         k += (size_t)gridDim.x * blockDim.x) {
        float gk = g[k];
        if (buf) {
            gk = first ? gk : __fadd_rn(__fmul_rn(buf[k], mo), gk);
            buf[k] = gk;
        }
        w[k] = __fadd_rn(w[k], __fmul_rn(nlr, gk));
    }
}

vnp_code vnp_cuda_bn_relu_dropout_fwd(
    vnp_backend *be, const vnp_buf *z, const vnp_buf *gamma, const vnp_buf *beta,
    const vnp_buf *keep, int B, int H, float eps, float momentum, float dropout,
    vnp_buf *running_mean, vnp_buf *running_var, vnp_buf *xhat, vnp_buf *r, vnp_buf *d,
    vnp_buf *invstd, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || H < 1 || !buf_ok(z, VNP_DT_F32, BH) || !buf_ok(gamma, VNP_DT_F32, H) ||
        !buf_ok(beta, VNP_DT_F32, H) || !buf_ok(keep, VNP_DT_U8, BH) ||
        !buf_ok(running_mean, VNP_DT_F32, H) || !buf_ok(running_var, VNP_DT_F32, H) ||
        !buf_ok(xhat, VNP_DT_F32, BH) || !buf_ok(r, VNP_DT_F32, BH) ||
        !buf_ok(d, VNP_DT_F32, BH) || !buf_ok(invstd, VNP_DT_F64, H))
        return shape_fail(c, "BatchNorm training forward", B, H, err);
    float scale = dropout > 0 ? 1.0f / (1.0f - dropout) : 1.0f;
    bn_fwd_kernel<<<blocks_for((size_t)H, 128), 128, 0, c->stream>>>(
        (const float *)z->ptr, (const float *)gamma->ptr, (const float *)beta->ptr,
        (const uint8_t *)keep->ptr, B, H, eps, momentum, scale, (float *)running_mean->ptr,
        (float *)running_var->ptr, (float *)xhat->ptr, (float *)r->ptr, (float *)d->ptr,
        (double *)invstd->ptr);
    return vnp_cuda_check_launch("BatchNorm training forward", err);
}

vnp_code vnp_cuda_bn_relu_dropout_bwd(vnp_backend *be, vnp_buf *dd,
                                                 const vnp_buf *keep, const vnp_buf *r,
                                                 const vnp_buf *xhat, const vnp_buf *invstd,
                                                 const vnp_buf *gamma, int B, int H,
                                                 float dropout, vnp_buf *dz, vnp_buf *dgamma,
                                                 vnp_buf *dbeta, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    size_t BH = (size_t)B * (size_t)H;
    if (B < 2 || H < 1 || !buf_ok(dd, VNP_DT_F32, BH) || !buf_ok(keep, VNP_DT_U8, BH) ||
        !buf_ok(r, VNP_DT_F32, BH) || !buf_ok(xhat, VNP_DT_F32, BH) ||
        !buf_ok(invstd, VNP_DT_F64, H) || !buf_ok(gamma, VNP_DT_F32, H) ||
        !buf_ok(dz, VNP_DT_F32, BH) || !buf_ok(dgamma, VNP_DT_F32, H) ||
        !buf_ok(dbeta, VNP_DT_F32, H))
        return shape_fail(c, "BatchNorm training backward", B, H, err);
    float scale = dropout > 0 ? 1.0f / (1.0f - dropout) : 1.0f;
    bn_bwd_kernel<<<blocks_for((size_t)H, 128), 128, 0, c->stream>>>(
        (float *)dd->ptr, (const uint8_t *)keep->ptr, (const float *)r->ptr,
        (const float *)xhat->ptr, (const double *)invstd->ptr, (const float *)gamma->ptr, B, H,
        scale, (float *)dz->ptr, (float *)dgamma->ptr, (float *)dbeta->ptr);
    return vnp_cuda_check_launch("BatchNorm training backward", err);
}

vnp_code vnp_cuda_softmax_xent(vnp_backend *be, const vnp_buf *logits,
                                          const vnp_buf *y, int B, vnp_buf *loss, vnp_buf *dl,
                                          vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (B < 1 || !buf_ok(logits, VNP_DT_F32, 2 * (size_t)B) || !buf_ok(y, VNP_DT_U8, B) ||
        !buf_ok(loss, VNP_DT_F64, 1) || !buf_ok(dl, VNP_DT_F32, 2 * (size_t)B))
        return shape_fail(c, "softmax cross-entropy", B, 2, err);
    vnp_code rc = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, (size_t)B * sizeof(double),
                                   "allocating the loss terms", err);
    if (rc)
        return rc;
    double *term = (double *)c->scratch;
    xent_rows_kernel<<<blocks_for((size_t)B, 128), 128, 0, c->stream>>>(
        (const float *)logits->ptr, (const uint8_t *)y->ptr, B, (float *)dl->ptr, term);
    if ((rc = vnp_cuda_check_launch("softmax cross-entropy", err)))
        return rc;
    xent_sum_kernel<<<1, 1, 0, c->stream>>>(term, B, (double *)loss->ptr);
    return vnp_cuda_check_launch("softmax cross-entropy sum", err);
}

vnp_code vnp_cuda_col_sums(vnp_backend *be, const vnp_buf *m, int M, int N,
                                      vnp_buf *sums, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (M < 0 || N < 1 || !buf_ok(m, VNP_DT_F32, (size_t)M * (size_t)N) ||
        !buf_ok(sums, VNP_DT_F32, N))
        return shape_fail(c, "column sums", M, N, err);
    col_sums_kernel<<<blocks_for((size_t)N, 128), 128, 0, c->stream>>>(
        (const float *)m->ptr, M, N, (float *)sums->ptr);
    return vnp_cuda_check_launch("column sums", err);
}

vnp_code vnp_cuda_sgd_step(vnp_backend *be, vnp_buf *w, const vnp_buf *g,
                                      vnp_buf *buf, size_t n, float lr, float mo, int first,
                                      vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (!buf_ok(w, VNP_DT_F32, n) || !buf_ok(g, VNP_DT_F32, n) ||
        (mo != 0.0f && !buf_ok(buf, VNP_DT_F32, n)))
        return vnp_fail(err, VNP_EINVAL,
                        "SGD step on cuda:%d over %zu values: needs F32 buffers at least as "
                        "large",
                        c->device, n);
    if (n == 0)
        return VNP_OK;
    sgd_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>(
        (float *)w->ptr, (const float *)g->ptr, mo != 0.0f ? (float *)buf->ptr : NULL, n, -lr,
        mo, first);
    return vnp_cuda_check_launch("SGD step", err);
}
