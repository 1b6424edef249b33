/* FP8 (E4M3) GEMM operands of --precision fp8 / fp8-tensor (docs/PRECISION.md):
 *   - a GEMM weight [N, K] is quantised once, at upload: one scale per output row
 *     (fp8) or one for the whole tensor (fp8-tensor), s = amax / 448 in FP32 (1 for an
 *     all-zero block), q = e4m3(w / s), nearest even, saturating, NaN kept;
 *   - before each FP8 GEMM, every row (token) of the FP16 activations x [M, K] is
 *     quantised the same way with its own scale.
 * cuBLASLt then multiplies the E4M3 operands with FP32 accumulation and applies both
 * scale vectors (outer-vector scaling) before the bias, the residual and the FP16
 * store (cuda_gemm.cu). The rounding is the CPU emulation's (src/core/precision.c):
 * __fdiv_rn for x / s and amax / 448, __NV_SATFINITE for the saturation. */
#include <cuda_fp8.h>

#include "backend/cuda/cuda_internal.cuh"

#define Q8_THREADS 256

__device__ __forceinline__ float q8_block_max(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float m = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        m = fmaxf(m, red[w]);
    return m;
}

/* fmaxf drops a NaN operand: a NaN is left out of the amax, as the emulation does. */
__device__ __forceinline__ float q8_scale(float amax)
{
    return amax > 0.0f ? __fdiv_rn(amax, VNP_E4M3_MAX) : 1.0f;
}

__device__ __forceinline__ unsigned char q8(float x, float s)
{
    return (unsigned char)__nv_cvt_float_to_fp8(__fdiv_rn(x, s), __NV_SATFINITE, __NV_E4M3);
}

/* amax of each row of src [rows, K] (any float dtype) into amax[row]. */
__global__ void q8_row_amax_kernel(const void *__restrict__ src, int sdt, int K,
                                   float *__restrict__ amax)
{
    __shared__ float red[32];
    const size_t base = (size_t)blockIdx.x * K;
    float m = 0.0f;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
        m = fmaxf(m, fabsf(vnp_ld_any(src, sdt, base + j)));
    m = q8_block_max(m, red);
    if (threadIdx.x == 0)
        amax[blockIdx.x] = m;
}

/* One block: the largest of amax[0..rows) becomes every row's scale (fp8-tensor); else
 * each row's scale from its own amax. In place. */
__global__ void q8_scales_kernel(float *amax_to_scale, int rows, int per_tensor)
{
    __shared__ float red[32];
    if (per_tensor) {
        float m = 0.0f;
        for (int i = threadIdx.x; i < rows; i += blockDim.x)
            m = fmaxf(m, amax_to_scale[i]);
        m = q8_block_max(m, red);
        const float s = q8_scale(m);
        __syncthreads();
        for (int i = threadIdx.x; i < rows; i += blockDim.x)
            amax_to_scale[i] = s;
    } else {
        for (int i = threadIdx.x; i < rows; i += blockDim.x)
            amax_to_scale[i] = q8_scale(amax_to_scale[i]);
    }
}

__global__ void q8_rows_kernel(const void *__restrict__ src, int sdt, int K,
                               const float *__restrict__ scale, unsigned char *__restrict__ q)
{
    const size_t base = (size_t)blockIdx.x * K;
    const float s = scale[blockIdx.x];
    for (int j = threadIdx.x; j < K; j += blockDim.x)
        q[base + j] = q8(vnp_ld_any(src, sdt, base + j), s);
}

vnp_code vnp_cuda_fp8_quantize_rows(vnp_cuda *c, const void *src, vnp_dtype sdt, int rows, int K,
                                    int per_tensor, unsigned char *q, float *scale,
                                    vnp_error *err)
{
    if (rows <= 0 || K <= 0)
        return VNP_OK;
    q8_row_amax_kernel<<<rows, Q8_THREADS, 0, c->stream>>>(src, (int)sdt, K, scale);
    q8_scales_kernel<<<1, 1024, 0, c->stream>>>(scale, rows, per_tensor);
    q8_rows_kernel<<<rows, Q8_THREADS, 0, c->stream>>>(src, (int)sdt, K, scale, q);
    return vnp_cuda_check_launch("fp8 quantisation", err);
}

/* Per-token quantisation of FP16 activations on the hot path: one block per row, the
 * row held in registers (VPT vectors of 8 halves a thread), one read and one write. */
template <int VPT>
__global__ void __launch_bounds__(Q8_THREADS)
    q8_act_kernel(const __half *__restrict__ x, int K, unsigned char *__restrict__ q,
                  float *__restrict__ scale)
{
    __shared__ float red[32];
    const size_t base = (size_t)blockIdx.x * K;
    const int nv = K / 8;
    float v[VPT][8];
    float m = 0.0f;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int iv = threadIdx.x + k * Q8_THREADS;
        if (iv < nv) {
            vnp_ld_vec<__half>(x + base + (size_t)iv * 8, v[k]);
#pragma unroll
            for (int e = 0; e < 8; e++)
                m = fmaxf(m, fabsf(v[k][e]));
        }
    }
    const float s = q8_scale(q8_block_max(m, red));
    if (threadIdx.x == 0)
        scale[blockIdx.x] = s;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int iv = threadIdx.x + k * Q8_THREADS;
        if (iv < nv) {
            uint2 u;
            unsigned char *b = reinterpret_cast<unsigned char *>(&u);
#pragma unroll
            for (int e = 0; e < 8; e++)
                b[e] = q8(v[k][e], s);
            *reinterpret_cast<uint2 *>(q + base + (size_t)iv * 8) = u;
        }
    }
}

vnp_code vnp_cuda_fp8_quantize_act(vnp_cuda *c, const void *x, int M, int K, unsigned char *q,
                                   float *scale, vnp_error *err)
{
    if (M <= 0)
        return VNP_OK;
    const int per = (K / 8 + Q8_THREADS - 1) / Q8_THREADS;
    if (K % 8 || ((uintptr_t)x % 16) || ((uintptr_t)q % 8) || per > 8)
        return vnp_cuda_fp8_quantize_rows(c, x, VNP_DT_F16, M, K, 0, q, scale, err);
    const __half *xh = (const __half *)x;
    if (per <= 1)
        q8_act_kernel<1><<<M, Q8_THREADS, 0, c->stream>>>(xh, K, q, scale);
    else if (per <= 2)
        q8_act_kernel<2><<<M, Q8_THREADS, 0, c->stream>>>(xh, K, q, scale);
    else if (per <= 4)
        q8_act_kernel<4><<<M, Q8_THREADS, 0, c->stream>>>(xh, K, q, scale);
    else
        q8_act_kernel<8><<<M, Q8_THREADS, 0, c->stream>>>(xh, K, q, scale);
    return vnp_cuda_check_launch("fp8 activation quantisation", err);
}

const vnp_cuda_f8w *vnp_cuda_f8w_of(const vnp_cuda *c, const void *q)
{
    for (int i = 0; i < c->nf8w; i++)
        if (c->f8w[i].q == q)
            return &c->f8w[i];
    return NULL;
}
