/* Element-wise ops of the CUDA backend: token embedding (+ added row, scale),
 * erf GELU with an optional residual, DNABERT-S's gated GELU, and the
 * classifier's scale and shift (a folded BatchNorm). Each marks the guard word
 * when it writes a NaN or Inf. The GELU passes (after every FFN up-projection: the
 * widest activations of both encoders) move 16 bytes per load/store when the
 * buffers allow, else one element. */
#include "backend/cuda/cuda_internal.cuh"

static unsigned grid_for(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 16u)
        b = 65535u * 16u;
    return b ? (unsigned)b : 1u;
}

template <typename TO>
__global__ void embedding_kernel(const void *__restrict__ table, int tdt, long rows,
                                 const int32_t *__restrict__ ids, int H,
                                 const void *__restrict__ add_row, int adt, float scale,
                                 TO *__restrict__ out, int *flag)
{
    const int t = blockIdx.x;
    const int id = ids[t];
    const int ok = id >= 0 && id < rows;
    int bad = 0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float v = ok ? vnp_ld_any(table, tdt, (size_t)id * H + j) : 0.0f;
        if (add_row)
            v += vnp_ld_any(add_row, adt, j);
        v *= scale;
        TO o = vnp_st<TO>(v);
        bad |= !isfinite(vnp_ld<TO>(o));
        out[(size_t)t * H + j] = o;
    }
    if (!ok && threadIdx.x == 0)
        atomicOr(flag, VNP_CUDA_FLAG_BAD_TOKEN);
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

vnp_code vnp_cuda_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                            int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                            vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (T < 0 || H <= 0 || !vnp_cuda_is_float(table->dtype) || ids->dtype != VNP_DT_I32 ||
        (size_t)T > ids->n || (size_t)T * H > out->n || table->n % (size_t)H ||
        (add_row && (!vnp_cuda_is_float(add_row->dtype) || add_row->n < (size_t)H)))
        return vnp_fail(err, VNP_EINVAL, "CUDA embedding: inconsistent arguments (T=%d, H=%d)",
                        T, H);
    if (T == 0)
        return VNP_OK;
    long rows = (long)(table->n / (size_t)H);
    const void *ar = add_row ? add_row->ptr : NULL;
    int adt = add_row ? (int)add_row->dtype : 0;
    unsigned th = H >= 256 ? 256 : 128;
    if (out->dtype == VNP_DT_F16)
        embedding_kernel<__half><<<T, th, 0, c->stream>>>(table->ptr, table->dtype, rows,
                                                          (const int32_t *)ids->ptr, H, ar, adt,
                                                          scale, (__half *)out->ptr, c->flag);
    else if (out->dtype == VNP_DT_BF16)
        embedding_kernel<__nv_bfloat16><<<T, th, 0, c->stream>>>(
            table->ptr, table->dtype, rows, (const int32_t *)ids->ptr, H, ar, adt, scale,
            (__nv_bfloat16 *)out->ptr, c->flag);
    else
        embedding_kernel<float><<<T, th, 0, c->stream>>>(table->ptr, table->dtype, rows,
                                                         (const int32_t *)ids->ptr, H, ar, adt,
                                                         scale, (float *)out->ptr, c->flag);
    return vnp_cuda_check_launch("embedding", err);
}

template <typename T>
__global__ void act_residual_kernel(const T *__restrict__ y, int act, const T *__restrict__ res,
                                    T *out, size_t n, int *flag)
{
    int bad = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = vnp_ld<T>(y[i]);
        if (act == VNP_ACT_GELU_ERF)
            v = vnp_gelu_erf(v);
        else if (act == VNP_ACT_RELU)
            v = v > 0.0f ? v : 0.0f;
        if (res)
            v += vnp_ld<T>(res[i]);
        T o = vnp_st<T>(v);
        bad |= !isfinite(vnp_ld<T>(o));
        out[i] = o;
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

/* The same, 16 bytes per load and store (nv vectors); the arithmetic of each element is
 * the scalar kernel's, so the bits are the same. */
template <typename T>
__global__ void act_residual_vec_kernel(const T *__restrict__ y, int act,
                                        const T *__restrict__ res, T *out, size_t nv, int *flag)
{
    constexpr int N = vnp_vec<T>::N;
    int bad = 0;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < nv;
         v += (size_t)gridDim.x * blockDim.x) {
        float f[N], r[N];
        vnp_ld_vec<T>(y + v * N, f);
        if (res)
            vnp_ld_vec<T>(res + v * N, r);
#pragma unroll
        for (int k = 0; k < N; k++) {
            if (act == VNP_ACT_GELU_ERF)
                f[k] = vnp_gelu_erf(f[k]);
            else if (act == VNP_ACT_RELU)
                f[k] = f[k] > 0.0f ? f[k] : 0.0f;
            if (res)
                f[k] += r[k];
        }
        bad |= vnp_st_vec<T>(out + v * N, f);
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

template <typename T>
static void act_residual_vec(vnp_cuda *c, const void *y, vnp_act act, const void *res,
                             void *out, size_t n)
{
    const size_t nv = n / vnp_vec<T>::N;
    act_residual_vec_kernel<T><<<grid_for(nv, 256), 256, 0, c->stream>>>(
        (const T *)y, act, (const T *)res, (T *)out, nv, c->flag);
}

vnp_code vnp_cuda_act_residual(vnp_cuda *c, vnp_dtype dt, const void *y, vnp_act act,
                               const void *res, void *out, size_t n, vnp_error *err)
{
    if (n == 0)
        return VNP_OK;
    if (vnp_cuda_vec_ok(c, n, vnp_cuda_dtype_size(dt), y, res, out)) {
        if (dt == VNP_DT_F16)
            act_residual_vec<__half>(c, y, act, res, out, n);
        else if (dt == VNP_DT_BF16)
            act_residual_vec<__nv_bfloat16>(c, y, act, res, out, n);
        else
            act_residual_vec<float>(c, y, act, res, out, n);
        return vnp_cuda_check_launch("act_residual", err);
    }
    unsigned g = grid_for(n, 256);
    if (dt == VNP_DT_F16)
        act_residual_kernel<__half><<<g, 256, 0, c->stream>>>(
            (const __half *)y, act, (const __half *)res, (__half *)out, n, c->flag);
    else if (dt == VNP_DT_BF16)
        act_residual_kernel<__nv_bfloat16><<<g, 256, 0, c->stream>>>(
            (const __nv_bfloat16 *)y, act, (const __nv_bfloat16 *)res, (__nv_bfloat16 *)out, n,
            c->flag);
    else
        act_residual_kernel<float><<<g, 256, 0, c->stream>>>((const float *)y, act,
                                                             (const float *)res, (float *)out, n,
                                                             c->flag);
    return vnp_cuda_check_launch("act_residual", err);
}

template <typename T>
__global__ void gated_gelu_kernel(const T *__restrict__ x, int M, int I, T *__restrict__ out,
                                  int *flag)
{
    int bad = 0;
    const size_t n = (size_t)M * I;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t m = i / (size_t)I, j = i - m * (size_t)I;
        const T *row = x + m * 2 * (size_t)I;
        float v = vnp_gelu_erf(vnp_ld<T>(row[j])) * vnp_ld<T>(row[I + j]);
        T o = vnp_st<T>(v);
        bad |= !isfinite(vnp_ld<T>(o));
        out[i] = o;
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

/* The same over 16-byte vectors (I a multiple of the vector width); same bits. */
template <typename T>
__global__ void gated_gelu_vec_kernel(const T *__restrict__ x, int M, int I,
                                      T *__restrict__ out, int *flag)
{
    constexpr int N = vnp_vec<T>::N;
    const size_t per_row = (size_t)I / N, nv = (size_t)M * per_row;
    int bad = 0;
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < nv;
         v += (size_t)gridDim.x * blockDim.x) {
        const size_t m = v / per_row, j = (v - m * per_row) * N;
        const T *row = x + m * 2 * (size_t)I;
        float a[N], g[N];
        vnp_ld_vec<T>(row + j, a);
        vnp_ld_vec<T>(row + I + j, g);
#pragma unroll
        for (int k = 0; k < N; k++)
            a[k] = vnp_gelu_erf(a[k]) * g[k];
        bad |= vnp_st_vec<T>(out + m * (size_t)I + j, a);
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

template <typename T>
static void gated_gelu_vec(vnp_cuda *c, const void *x, int M, int I, void *out)
{
    const size_t nv = (size_t)M * (size_t)(I / vnp_vec<T>::N);
    gated_gelu_vec_kernel<T><<<grid_for(nv, 256), 256, 0, c->stream>>>((const T *)x, M, I,
                                                                      (T *)out, c->flag);
}

vnp_code vnp_cuda_gated_gelu(vnp_backend *be, const vnp_buf *x, int M, int I, vnp_buf *out,
                             vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    const int qout = out->dtype == VNP_DT_U8 && c->fp8;
    if (M < 0 || I <= 0 || x->dtype != c->act || (out->dtype != c->act && !qout) ||
        x->n < (size_t)M * 2 * I || out->n < (size_t)M * I)
        return vnp_fail(err, VNP_EINVAL, "CUDA gated_gelu: inconsistent arguments (M=%d, I=%d)",
                        M, I);
    size_t n = (size_t)M * I;
    if (n == 0)
        return VNP_OK;
    if (qout) { /* an FP8 GEMM input buffer: the rows quantised as they are made */
        unsigned char *q;
        float *qs;
        vnp_code rc = vnp_cuda_q8a_target(c, out, M, I, "gated_gelu", &q, &qs, err);
        if (!rc)
            rc = vnp_cuda_fp8_quantize_op(c, VNP_Q8_GATED, x->ptr, M, I, q, qs, err);
        return rc;
    }
    if (vnp_cuda_vec_ok(c, (size_t)I, vnp_cuda_dtype_size(c->act), x->ptr, out->ptr, NULL)) {
        if (c->act == VNP_DT_F16)
            gated_gelu_vec<__half>(c, x->ptr, M, I, out->ptr);
        else if (c->act == VNP_DT_BF16)
            gated_gelu_vec<__nv_bfloat16>(c, x->ptr, M, I, out->ptr);
        else
            gated_gelu_vec<float>(c, x->ptr, M, I, out->ptr);
        return vnp_cuda_check_launch("gated_gelu", err);
    }
    unsigned g = grid_for(n, 256);
    if (c->act == VNP_DT_F16)
        gated_gelu_kernel<__half><<<g, 256, 0, c->stream>>>((const __half *)x->ptr, M, I,
                                                            (__half *)out->ptr, c->flag);
    else if (c->act == VNP_DT_BF16)
        gated_gelu_kernel<__nv_bfloat16><<<g, 256, 0, c->stream>>>(
            (const __nv_bfloat16 *)x->ptr, M, I, (__nv_bfloat16 *)out->ptr, c->flag);
    else
        gated_gelu_kernel<float><<<g, 256, 0, c->stream>>>((const float *)x->ptr, M, I,
                                                           (float *)out->ptr, c->flag);
    return vnp_cuda_check_launch("gated_gelu", err);
}

int vnp_cuda_linear_gated_gelu_fused(const vnp_backend *be, int I, int K)
{
#ifdef VNP_HAVE_SM90A
    /* what vnp_cuda_linear_gated_gelu asks below, for the buffers this backend allocates
     * (cudaMalloc: aligned, apart; the compute dtype) */
    const vnp_cuda *c = (const vnp_cuda *)be->impl;
    return c->sm90_gemm && (c->act == VNP_DT_F16 || c->act == VNP_DT_BF16) && !c->fp8 && I > 0 &&
           vnp_cuda_gemm_sm90_fits(VNP_SM90_GATED, 2 * I, K, NULL, NULL, NULL, NULL);
#else
    (void)be;
    (void)I;
    (void)K;
    return 0;
#endif
}

vnp_code vnp_cuda_linear_gated_gelu(vnp_backend *be, const vnp_buf *x, const vnp_buf *w,
                                    const vnp_buf *bias, int M, int I, int K, vnp_buf *tmp,
                                    vnp_buf *out, vnp_error *err)
{
#ifdef VNP_HAVE_SM90A
    vnp_cuda *c = vnp_cuda_of(be);
    const vnp_dtype dt = c->act;
    const void *bp = bias ? bias->ptr : NULL;
    /* one fused kernel on Hopper where the shapes, dtypes and buffers allow (not into an
     * FP8 GEMM input buffer: that writer quantises) */
    if (c->sm90_gemm && (dt == VNP_DT_F16 || dt == VNP_DT_BF16) && !c->fp8 && M >= 0 && I > 0 &&
        x->dtype == dt && w->dtype == dt && out->dtype == dt && (!bias || bias->dtype == dt) &&
        x->n >= (size_t)M * K && w->n >= (size_t)2 * I * K && out->n >= (size_t)M * I &&
        !vnp_cuda_overlap(x->ptr, (size_t)M * K * 2, out->ptr, (size_t)M * I * 2) &&
        (!bias || bias->n >= (size_t)2 * I) &&
        vnp_cuda_gemm_sm90_fits(VNP_SM90_GATED, 2 * I, K, x->ptr, w->ptr, bp, out->ptr)) {
        if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
            return rc0; /* callers may be on another thread: their device first */
        return vnp_cuda_gemm_sm90(c, VNP_SM90_GATED, dt, x->ptr, w->ptr, bp, NULL, out->ptr, M,
                                  2 * I, K, err);
    }
#endif
    vnp_code rc = vnp_cuda_linear(be, x, w, bias, VNP_ACT_NONE, NULL, M, 2 * I, K, tmp, err);
    return rc ? rc : vnp_cuda_gated_gelu(be, tmp, M, I, out, err);
}

/* out = act(x * scale[col] + shift[col]) in FP32. The multiply and the add are
 * rounded separately (no FMA contraction), as the CPU backend computes them, so
 * that both backends give the same bits before the activation. ReLU keeps a NaN
 * a NaN (torch.relu does) for the guard to see. out may alias x. */
__global__ void scale_shift_kernel(const float *x, const float *__restrict__ scale,
                                   const float *__restrict__ shift, int act, int N, size_t n,
                                   float *out, int *flag)
{
    int bad = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(i % (size_t)N);
        float v = __fadd_rn(__fmul_rn(x[i], scale[j]), shift[j]);
        if (act == VNP_ACT_RELU)
            v = v < 0.0f ? 0.0f : v;
        else if (act == VNP_ACT_GELU_ERF)
            v = vnp_gelu_erf(v);
        bad |= !isfinite(v);
        out[i] = v;
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

vnp_code vnp_cuda_scale_shift(vnp_backend *be, const vnp_buf *x, const vnp_buf *scale,
                              const vnp_buf *shift, vnp_act act, int M, int N, vnp_buf *out,
                              vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (M < 0 || N <= 0 || x->dtype != VNP_DT_F32 || scale->dtype != VNP_DT_F32 ||
        shift->dtype != VNP_DT_F32 || out->dtype != VNP_DT_F32 || x->n < (size_t)M * N ||
        out->n < (size_t)M * N || scale->n < (size_t)N || shift->n < (size_t)N)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA scale_shift on cuda:%d: inconsistent arguments (M=%d, N=%d; every "
                        "buffer must be F32)",
                        c->device, M, N);
    if (act != VNP_ACT_NONE && act != VNP_ACT_RELU && act != VNP_ACT_GELU_ERF)
        return vnp_fail(err, VNP_EINVAL, "CUDA scale_shift: unknown activation %d", (int)act);
    size_t n = (size_t)M * N;
    if (n == 0)
        return VNP_OK;
    scale_shift_kernel<<<grid_for(n, 256), 256, 0, c->stream>>>(
        (const float *)x->ptr, (const float *)scale->ptr, (const float *)shift->ptr, (int)act, N,
        n, (float *)out->ptr, c->flag);
    return vnp_cuda_check_launch("scale_shift", err);
}
