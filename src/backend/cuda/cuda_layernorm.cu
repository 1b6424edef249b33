/* LayerNorm over rows, optionally of x + residual: statistics in FP32 (two passes over
 * the row: mean, then the squared deviations), output in the compute dtype. Rows that
 * make whole 16-byte vectors (both encoders' widths) are held in one warp's registers;
 * others in shared memory. */
#include <type_traits>

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

/* One warp per row, four rows a block: the row in the warp's registers, statistics by
 * shuffles only (no shared memory, no barrier), so each row costs one read and one
 * write of HBM and little else. Used when a row makes at most 32 * VPL vectors. */
#define LN_WARP_ROWS 4

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* gamma[j..j+n) (and beta) as floats, 16 bytes a load: the warp kernel takes F32
 * parameters at 16-byte boundaries (how the backend uploads LayerNorm vectors). */
template <int N>
__device__ __forceinline__ void ln_params(const float *__restrict__ p, int j, float *f)
{
#pragma unroll
    for (int e = 0; e < N; e += 4) {
        const float4 q = *reinterpret_cast<const float4 *>(p + j + e);
        f[e] = q.x;
        f[e + 1] = q.y;
        f[e + 2] = q.z;
        f[e + 3] = q.w;
    }
}

/* Q8 (T = __half only): out is an FP8 GEMM input buffer; each row is rounded to FP16 as
 * the plain kernel stores it, then quantised to E4M3 with the row's scale (qs[row]), as
 * the GEMM's own quantisation of the FP16 row would have been.
 * FL: the row held as floats, x + residual where there is one (the sums are not values
 * of T). An FP16/BF16 row without a residual (ESM-2's pre-LN layers) stays in registers
 * as it was loaded (!FL), 16 bytes a vector, and each pass converts it again: half the
 * registers (ESM-2's 2560-wide rows: 72 instead of 114, so 7 blocks an SM instead of 4),
 * the same values in the same order, so the same bits; 65 against 87 us at 16384 x 2560,
 * +1.5 % on ESM-2 3B end to end (H100, session 15). VIRNUCPRO_DEBUG_LN_ROWS=floats keeps
 * FL for them; FP32 rows and E4M3 rows (Q8) always take FL. */
template <typename T, int VPL, bool Q8, bool FL>
__global__ void __launch_bounds__(32 * LN_WARP_ROWS)
    layernorm_warp_kernel(const T *__restrict__ x, const T *__restrict__ residual,
                          const float *__restrict__ gamma, const float *__restrict__ beta,
                          float eps, int M, int H, void *out, float *qs, int *flag)
{
    constexpr int N = vnp_vec<T>::N;
    static_assert(FL || !Q8, "E4M3 rows are held as floats");
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * LN_WARP_ROWS + (threadIdx.x >> 5);
    if (row >= M)
        return;
    const size_t base = (size_t)row * H;
    const int nv = H / N;
    /* the row: FL, as floats (sv); else as loaded (pv) */
    float sv[FL ? VPL : 1][N];
    uint4 pv[FL ? 1 : VPL];
    /* (before each pass: tells the compiler pv may have changed, so that it converts
     * again instead of keeping the first pass's floats live, which BF16's cheap
     * conversions otherwise invite) */
    auto fresh = [&]() {
        if constexpr (!FL) {
#pragma unroll
            for (int k = 0; k < VPL; k++)
                asm volatile("" : "+r"(pv[k].x), "+r"(pv[k].y), "+r"(pv[k].z), "+r"(pv[k].w));
        }
    };
    auto get = [&](int k, float *f) {
        if constexpr (FL) {
#pragma unroll
            for (int e = 0; e < N; e++)
                f[e] = sv[k][e];
        } else {
            vnp_unpack_vec<T>(pv[k], f);
        }
    };
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        const int iv = lane + k * 32;
        if (iv < nv) {
            float v[N];
            if constexpr (FL) {
                vnp_ld_vec<T>(x + base + (size_t)iv * N, sv[k]);
                if (residual) {
                    float r[N];
                    vnp_ld_vec<T>(residual + base + (size_t)iv * N, r);
#pragma unroll
                    for (int e = 0; e < N; e++)
                        sv[k][e] += r[e];
                }
            } else {
                pv[k] = *reinterpret_cast<const uint4 *>(x + base + (size_t)iv * N);
            }
            get(k, v);
#pragma unroll
            for (int e = 0; e < N; e++)
                s += v[e];
        }
    }
    const float mean = warp_sum(s) / (float)H;
    fresh();
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++)
        if (lane + k * 32 < nv) {
            float v[N];
            get(k, v);
#pragma unroll
            for (int e = 0; e < N; e++) {
                const float d = v[e] - mean;
                q += d * d;
            }
        }
    const float var = warp_sum(q) / (float)H;
    const float inv = 1.0f / sqrtf(var + eps);
    fresh();
    int bad = 0;
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < VPL; k++) {
        const int iv = lane + k * 32;
        if (iv < nv) {
            float v[N], y[N], g[N], b[N];
            get(k, v);
            ln_params<N>(gamma, iv * N, g);
            if (beta)
                ln_params<N>(beta, iv * N, b);
#pragma unroll
            for (int e = 0; e < N; e++) {
                y[e] = (v[e] - mean) * inv * g[e];
                if (beta)
                    y[e] += b[e];
            }
            if constexpr (Q8) {
                bad |= vnp_round_h8(y);
#pragma unroll
                for (int e = 0; e < N; e++)
                    amax = fmaxf(amax, fabsf(y[e]));
                /* keep the FP16 row for the quantisation below */
#pragma unroll
                for (int e = 0; e < N; e++)
                    sv[k][e] = y[e];
            } else {
                bad |= vnp_st_vec<T>((T *)out + base + (size_t)iv * N, y);
            }
        }
    }
    if constexpr (Q8) {
        for (int o = 16; o > 0; o >>= 1)
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
        const float sc = vnp_q8_scale(amax), r = vnp_q8_inv(sc);
        if (lane == 0)
            qs[row] = sc;
#pragma unroll
        for (int k = 0; k < VPL; k++) {
            const int iv = lane + k * 32;
            if (iv < nv) {
                float v[N];
                get(k, v);
                vnp_q8_st8((unsigned char *)out + base + (size_t)iv * N, v, r);
            }
        }
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

/* Launches the warp-per-row kernel when the row fits it (up to 24 vectors a lane: rows
 * of 6144 halves / 3072 floats); 0 when it does not apply (the shared-memory kernel). */
template <typename T, bool Q8>
static int layernorm_vec(vnp_cuda *c, const void *x, const void *res, const void *gamma,
                         int gdt, const void *beta, int bdt, float eps, int M, int H, void *out,
                         float *qs)
{
    static_assert(!Q8 || std::is_same<T, __half>::value, "E4M3 output from FP16 rows");
    constexpr int N = vnp_vec<T>::N;
    if (H % N || !vnp_cuda_vec_ok(c, (size_t)H, sizeof(T), x, res, Q8 ? NULL : out) ||
        (Q8 && (uintptr_t)out % 8))
        return 0;
    const int lanes = (H / N + 31) / 32; /* vectors per lane, one warp a row */
    const unsigned wblocks = (unsigned)((M + LN_WARP_ROWS - 1) / LN_WARP_ROWS);
    /* F32 parameters at 16-byte boundaries (how the backend uploads LayerNorm vectors);
     * others take the shared-memory kernel */
    const bool f32p = gdt == VNP_DT_F32 && (uintptr_t)gamma % 16 == 0 &&
                      (!beta || (bdt == VNP_DT_F32 && (uintptr_t)beta % 16 == 0));
    if (!f32p)
        return 0;
    /* (rows held as loaded: no residual, not E4M3 rows, not VIRNUCPRO_DEBUG_LN_ROWS=floats,
     * and 16-bit values: an FP32 row as loaded is its floats, nothing saved) */
    const bool packed = !Q8 && !res && c->ln_packed && sizeof(T) < 4;
#define LN_WARP_LAUNCH(V)                                                                     \
    do {                                                                                      \
        if (!packed)                                                                          \
            layernorm_warp_kernel<T, V, Q8, true><<<wblocks, 32 * LN_WARP_ROWS, 0, c->stream>>>( \
                (const T *)x, (const T *)res, (const float *)gamma, (const float *)beta, eps, M,  \
                H, out, qs, c->flag);                                                         \
        else if constexpr (!Q8)                                                               \
            layernorm_warp_kernel<T, V, false, false><<<wblocks, 32 * LN_WARP_ROWS, 0,          \
                                                     c->stream>>>(                            \
                (const T *)x, NULL, (const float *)gamma, (const float *)beta, eps, M, H, out,   \
                qs, c->flag);                                                                 \
    } while (0)
    if (lanes <= 24) {
        if (lanes <= 3)
            LN_WARP_LAUNCH(3);
        else if (lanes <= 6)
            LN_WARP_LAUNCH(6);
        else if (lanes <= 10)
            LN_WARP_LAUNCH(10);
        else if (lanes <= 16)
            LN_WARP_LAUNCH(16);
        else
            LN_WARP_LAUNCH(24);
        return 1;
    }
#undef LN_WARP_LAUNCH
    return 0;
}

vnp_code vnp_cuda_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                            const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                            vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    size_t n = (size_t)M * (size_t)H;
    /* An FP8 GEMM input buffer as out: the rows quantised where they are made. */
    const int qout = out->dtype == VNP_DT_U8 && c->fp8;
    unsigned char *q = NULL;
    float *qs = NULL;
    if (qout) {
        vnp_code rq = vnp_cuda_q8a_target(c, out, M, H, "layernorm", &q, &qs, err);
        if (rq)
            return rq;
    }
    if (M < 0 || H <= 0 || x->dtype != c->act || (out->dtype != c->act && !qout) || x->n < n ||
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
    const void *rp = residual ? residual->ptr : NULL;
    void *dst = out->ptr;
    if (qout) { /* (an FP8 backend computes in FP16) */
        if (layernorm_vec<__half, true>(c, x->ptr, rp, gamma->ptr, gamma->dtype, bp, bdt, eps, M,
                                        H, q, qs))
            return vnp_cuda_check_launch("layernorm (E4M3 rows)", err);
        /* rows the fused kernel does not take: FP16 rows into scratch, then quantised */
        vnp_code rs = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, n * sizeof(__half),
                                       "allocating a LayerNorm temporary", err);
        if (rs)
            return rs;
        dst = c->scratch;
    }
    int vec = c->act == VNP_DT_F16
                  ? layernorm_vec<__half, false>(c, x->ptr, rp, gamma->ptr, gamma->dtype, bp, bdt,
                                                 eps, M, H, dst, NULL)
              : c->act == VNP_DT_BF16
                  ? layernorm_vec<__nv_bfloat16, false>(c, x->ptr, rp, gamma->ptr, gamma->dtype,
                                                        bp, bdt, eps, M, H, dst, NULL)
                  : layernorm_vec<float, false>(c, x->ptr, rp, gamma->ptr, gamma->dtype, bp, bdt,
                                                eps, M, H, dst, NULL);
    vnp_code rc = VNP_OK;
    if (vec) {
        rc = vnp_cuda_check_launch("layernorm", err);
        if (!rc && qout)
            rc = vnp_cuda_fp8_quantize_op(c, VNP_Q8_COPY, dst, M, H, q, qs, err);
        return rc;
    }
    if (c->act == VNP_DT_F16)
        layernorm_kernel<__half><<<M, LN_THREADS, smem, c->stream>>>(
            (const __half *)x->ptr, residual ? (const __half *)residual->ptr : NULL, gamma->ptr,
            gamma->dtype, bp, bdt, eps, H, (__half *)dst, c->flag);
    else if (c->act == VNP_DT_BF16)
        layernorm_kernel<__nv_bfloat16><<<M, LN_THREADS, smem, c->stream>>>(
            (const __nv_bfloat16 *)x->ptr,
            residual ? (const __nv_bfloat16 *)residual->ptr : NULL, gamma->ptr, gamma->dtype, bp,
            bdt, eps, H, (__nv_bfloat16 *)out->ptr, c->flag);
    else
        layernorm_kernel<float><<<M, LN_THREADS, smem, c->stream>>>(
            (const float *)x->ptr, residual ? (const float *)residual->ptr : NULL, gamma->ptr,
            gamma->dtype, bp, bdt, eps, H, (float *)out->ptr, c->flag);
    rc = vnp_cuda_check_launch("layernorm", err);
    if (!rc && qout)
        rc = vnp_cuda_fp8_quantize_op(c, VNP_Q8_COPY, dst, M, H, q, qs, err);
    return rc;
}
