/* FP8 (E4M3) GEMM operands of --precision fp8 / fp8-tensor (docs/PRECISION.md):
 *   - a GEMM weight [N, K] is quantised once, at upload: one scale per output row
 *     (fp8) or one for the whole tensor (fp8-tensor), s = amax / 448 in FP32 (1 for an
 *     all-zero block, FLT_MIN when amax / 448 is below it), q = e4m3(w * (1 / s)),
 *     nearest even, saturating, NaN kept;
 *   - before each FP8 GEMM, every row (token) of the FP16 activations x [M, K] is
 *     quantised the same way with its own scale.
 * cuBLASLt then multiplies the E4M3 operands with FP32 accumulation and applies both
 * scale vectors (outer-vector scaling) before the bias, the residual and the FP16
 * store (cuda_gemm.cu). The rounding is the CPU emulation's (src/core/precision.c):
 * __fdiv_rn for amax / 448, __frcp_rn for 1 / s, __fmul_rn for x * (1 / s),
 * __NV_SATFINITE for the saturation (vnp_q8 in cuda_internal.cuh). */
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
        const float s = vnp_q8_scale(m);
        __syncthreads();
        for (int i = threadIdx.x; i < rows; i += blockDim.x)
            amax_to_scale[i] = s;
    } else {
        for (int i = threadIdx.x; i < rows; i += blockDim.x)
            amax_to_scale[i] = vnp_q8_scale(amax_to_scale[i]);
    }
}

__global__ void q8_rows_kernel(const void *__restrict__ src, int sdt, int K,
                               const float *__restrict__ scale, unsigned char *__restrict__ q)
{
    const size_t base = (size_t)blockIdx.x * K;
    const float r = vnp_q8_inv(scale[blockIdx.x]);
    for (int j = threadIdx.x; j < K; j += blockDim.x)
        q[base + j] = vnp_q8(vnp_ld_any(src, sdt, base + j), r);
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
 * row held in registers (VPT vectors of 8 halves a thread), one read and one write.
 * OP (vnp_q8_op) says what the row is made of: the activations as they are, or the
 * FP16 result of the element-wise kernel that would have written them (the same
 * arithmetic, rounded to FP16 the same way), so that the writer quantises in place of
 * storing FP16 that the GEMM's quantisation would read back. */
template <int OP, int VPT>
__global__ void __launch_bounds__(Q8_THREADS)
    q8_act_kernel(const __half *__restrict__ x, int K, unsigned char *__restrict__ q,
                  float *__restrict__ scale, int *flag)
{
    __shared__ float red[32];
    const size_t base = (size_t)blockIdx.x * K;
    const __half *row = x + (OP == VNP_Q8_GATED ? 2 * base : base);
    const int nv = K / 8;
    float v[VPT][8];
    float m = 0.0f;
    int bad = 0;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int iv = threadIdx.x + k * Q8_THREADS;
        if (iv < nv) {
            vnp_ld_vec<__half>(row + (size_t)iv * 8, v[k]);
            if (OP == VNP_Q8_GATED) {
                float g[8];
                vnp_ld_vec<__half>(row + K + (size_t)iv * 8, g);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    v[k][e] = vnp_gelu_erf(v[k][e]) * g[e];
            } else if (OP == VNP_Q8_GELU) {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    v[k][e] = vnp_gelu_erf(v[k][e]);
            }
            if (OP != VNP_Q8_COPY)
                bad |= vnp_round_h8(v[k]);
#pragma unroll
            for (int e = 0; e < 8; e++)
                m = fmaxf(m, fabsf(v[k][e]));
        }
    }
    const float s = vnp_q8_scale(q8_block_max(m, red)), r = vnp_q8_inv(s);
    if (threadIdx.x == 0)
        scale[blockIdx.x] = s;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int iv = threadIdx.x + k * Q8_THREADS;
        if (iv < nv)
            vnp_q8_st8(q + base + (size_t)iv * 8, v[k], r);
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

/* Vectors a thread: the quantisation of GEMM inputs of any width takes 1, 2, 4 or 8;
 * the writers (GELU, gated GELU) 2, 5 (ESM-2's 10240, DNABERT-S's 3072 -> 2) or 8: fewer
 * instantiations, each compiled for every architecture. */
template <int OP>
static void q8_act_launch(vnp_cuda *c, const __half *x, int M, int K, unsigned char *q,
                          float *scale)
{
    const int per = (K / 8 + Q8_THREADS - 1) / Q8_THREADS;
#define Q8_LAUNCH(V) q8_act_kernel<OP, V><<<M, Q8_THREADS, 0, c->stream>>>(x, K, q, scale, c->flag)
    if constexpr (OP == VNP_Q8_COPY) {
        if (per <= 1)
            Q8_LAUNCH(1);
        else if (per <= 2)
            Q8_LAUNCH(2);
        else if (per <= 4)
            Q8_LAUNCH(4);
        else
            Q8_LAUNCH(8);
    } else {
        if (per <= 2)
            Q8_LAUNCH(2);
        else if (per <= 5)
            Q8_LAUNCH(5);
        else
            Q8_LAUNCH(8);
    }
#undef Q8_LAUNCH
}

/* Whether q8_act_kernel takes rows of K halves at x (and bytes at q): whole vectors,
 * aligned, at most 8 vectors a thread. */
static int q8_act_fits(const void *x, int K, const unsigned char *q)
{
    const int per = (K / 8 + Q8_THREADS - 1) / Q8_THREADS;
    return K % 8 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)q % 8 == 0 && per <= 8;
}

vnp_code vnp_cuda_fp8_quantize_act(vnp_cuda *c, const void *x, int M, int K, unsigned char *q,
                                   float *scale, vnp_error *err)
{
    if (M <= 0)
        return VNP_OK;
    if (!q8_act_fits(x, K, q))
        return vnp_cuda_fp8_quantize_rows(c, x, VNP_DT_F16, M, K, 0, q, scale, err);
    q8_act_launch<VNP_Q8_COPY>(c, (const __half *)x, M, K, q, scale);
    return vnp_cuda_check_launch("fp8 activation quantisation", err);
}

vnp_code vnp_cuda_fp8_quantize_op(vnp_cuda *c, vnp_q8_op op, const void *x, int M, int K,
                                  unsigned char *q, float *scale, vnp_error *err)
{
    if (M <= 0)
        return VNP_OK;
    /* (alloc_gemm_in makes E4M3 buffers only for K a multiple of 16; the encoders' rows
     * are 16-byte aligned) */
    if (!q8_act_fits(x, K, q) || (op == VNP_Q8_GATED && (uintptr_t)x % 16))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "FP8 quantising writer on cuda:%d: rows of %d at %p do not make "
                        "aligned 16-byte vectors",
                        c->device, K, x);
    const __half *xh = (const __half *)x;
    if (op == VNP_Q8_GELU)
        q8_act_launch<VNP_Q8_GELU>(c, xh, M, K, q, scale);
    else if (op == VNP_Q8_GATED)
        q8_act_launch<VNP_Q8_GATED>(c, xh, M, K, q, scale);
    else
        q8_act_launch<VNP_Q8_COPY>(c, xh, M, K, q, scale);
    return vnp_cuda_check_launch("fp8 quantising writer", err);
}

const vnp_cuda_q8a *vnp_cuda_q8a_of(const vnp_cuda *c, const void *p, size_t *row0)
{
    const unsigned char *b = (const unsigned char *)p;
    for (int i = 0; i < c->nq8a; i++) {
        const vnp_cuda_q8a *a = &c->q8a[i];
        if (b >= a->q && b < a->q + a->rows * (size_t)a->K && (size_t)(b - a->q) % a->K == 0) {
            *row0 = (size_t)(b - a->q) / (size_t)a->K;
            return a;
        }
    }
    return NULL;
}

vnp_code vnp_cuda_q8a_target(const vnp_cuda *c, const vnp_buf *out, int M, int K, const char *op,
                             unsigned char **q, float **scale, vnp_error *err)
{
    size_t r0 = 0;
    const vnp_cuda_q8a *a = vnp_cuda_q8a_of(c, out->ptr, &r0);
    if (!a || a->K != K || M < 0 || r0 + (size_t)M > a->rows || out->n < (size_t)M * K)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA %s on cuda:%d: the output is an FP8 GEMM input buffer%s of width "
                        "%d, not of %d rows of width %d; give it an alloc_gemm_in buffer of "
                        "this width, or an alloc_act one",
                        op, c->device, a ? "" : " the backend does not know", a ? a->K : 0, M,
                        K);
    *q = (unsigned char *)out->ptr;
    *scale = a->scale + r0;
    return VNP_OK;
}

const vnp_cuda_f8w *vnp_cuda_f8w_of(const vnp_cuda *c, const void *q)
{
    for (int i = 0; i < c->nf8w; i++)
        if (c->f8w[i].q == q)
            return &c->f8w[i];
    return NULL;
}
