/* LayerNorm over rows, optionally of x + residual: statistics in FP32 (two
 * passes over a row kept in shared memory), output in the compute dtype. */
#include "backend/cuda/cuda_internal.cuh"

#define LN_THREADS 256

__device__ __forceinline__ float block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads(); /* red may still be read from a previous reduction */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float s = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        s += red[w];
    return s;
}

template <typename T>
__global__ void layernorm_kernel(const T *x, const T *residual, const void *gamma, int gdt,
                                 const void *beta, int bdt, float eps, int H, T *out, int *flag)
{
    extern __shared__ float row[];
    __shared__ float red[32];
    const size_t base = (size_t)blockIdx.x * H;
    float s = 0.0f;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float v = vnp_ld<T>(x[base + j]);
        if (residual)
            v += vnp_ld<T>(residual[base + j]);
        row[j] = v;
        s += v;
    }
    const float mean = block_sum(s, red) / (float)H;
    float q = 0.0f;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float d = row[j] - mean;
        q += d * d;
    }
    const float var = block_sum(q, red) / (float)H;
    const float inv = 1.0f / sqrtf(var + eps);
    int bad = 0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float y = (row[j] - mean) * inv * vnp_ld_any(gamma, gdt, j);
        if (beta)
            y += vnp_ld_any(beta, bdt, j);
        T o = vnp_st<T>(y);
        bad |= !isfinite(vnp_ld<T>(o));
        out[base + j] = o;
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

vnp_code vnp_cuda_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                            const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                            vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    size_t n = (size_t)M * (size_t)H;
    if (M < 0 || H <= 0 || x->dtype != c->act || out->dtype != c->act || x->n < n ||
        out->n < n || (residual && (residual->dtype != c->act || residual->n < n)) ||
        !vnp_cuda_is_float(gamma->dtype) || gamma->n < (size_t)H ||
        (beta && (!vnp_cuda_is_float(beta->dtype) || beta->n < (size_t)H)))
        return vnp_fail(err, VNP_EINVAL, "CUDA layernorm: inconsistent arguments (M=%d, H=%d)",
                        M, H);
    if (M == 0)
        return VNP_OK;
    size_t smem = (size_t)H * sizeof(float);
    if (smem > 48 * 1024)
        return vnp_fail(err, VNP_EUNSUPPORTED, "CUDA layernorm: rows of %d exceed 12288", H);
    const void *bp = beta ? beta->ptr : NULL;
    int bdt = beta ? (int)beta->dtype : 0;
    if (c->act == VNP_DT_F16)
        layernorm_kernel<__half><<<M, LN_THREADS, smem, c->stream>>>(
            (const __half *)x->ptr, residual ? (const __half *)residual->ptr : NULL, gamma->ptr,
            gamma->dtype, bp, bdt, eps, H, (__half *)out->ptr, c->flag);
    else if (c->act == VNP_DT_BF16)
        layernorm_kernel<__nv_bfloat16><<<M, LN_THREADS, smem, c->stream>>>(
            (const __nv_bfloat16 *)x->ptr,
            residual ? (const __nv_bfloat16 *)residual->ptr : NULL, gamma->ptr, gamma->dtype, bp,
            bdt, eps, H, (__nv_bfloat16 *)out->ptr, c->flag);
    else
        layernorm_kernel<float><<<M, LN_THREADS, smem, c->stream>>>(
            (const float *)x->ptr, residual ? (const float *)residual->ptr : NULL, gamma->ptr,
            gamma->dtype, bp, bdt, eps, H, (float *)out->ptr, c->flag);
    return vnp_cuda_check_launch("layernorm", err);
}
