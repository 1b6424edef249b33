/* Mean pooling of row ranges into an F32 device buffer. Everything stays on
 * the device and on the stream: the ranges are a device buffer (uploaded by the
 * caller, from pinned memory asynchronously), the pooled rows land in a device
 * buffer the caller downloads when it wants them. No host copy, no wait. */
#include "backend/cuda/cuda_internal.cuh"

/* One block row per sequence, one thread per column. A range outside x or empty
 * flags the guard's bad-shape bit and leaves its output row as it was (never
 * reads past x). `poison` (the debug switch) makes the first value of sequence
 * 0 a NaN, which the non-finite check below then flags like any other. */
template <typename T>
__global__ void mean_pool_kernel(const T *__restrict__ x, int H, long long rows,
                                 const int32_t *__restrict__ ranges, int nseq,
                                 float *__restrict__ out, int ld, int col, int poison, int *flag)
{
    const int s = blockIdx.y;
    const int b = ranges[s], e = ranges[nseq + s];
    if (b < 0 || e <= b || (long long)e > rows) {
        if (blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(flag, VNP_CUDA_FLAG_BAD_SHAPE);
        return;
    }
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    float acc = 0.0f;
    for (int r = b; r < e; r++)
        acc += vnp_ld<T>(x[(size_t)r * H + j]);
    float v = acc / (float)(e - b);
    if (poison && s == 0 && j == 0)
        v = __int_as_float(0x7fc00000); /* a quiet NaN */
    if (!isfinite(v))
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
    out[(size_t)s * ld + col + j] = v;
}

vnp_code vnp_cuda_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                            int nseq, vnp_buf *out, int ld, int col, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (nseq < 0 || H <= 0 || col < 0 || ld < H || col > ld - H || !vnp_cuda_is_float(x->dtype) ||
        ranges->dtype != VNP_DT_I32 || ranges->n < 2 * (size_t)nseq ||
        out->dtype != VNP_DT_F32 || out->n < (size_t)nseq * (size_t)ld)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA mean_pool on cuda:%d: inconsistent arguments (%d sequences of "
                        "width %d into columns [%d, %d) of rows of %d; x %s, ranges %zu %s, out "
                        "%zu %s)",
                        c->device, nseq, H, col, col + H, ld, vnp_dtype_name(x->dtype),
                        ranges->n, vnp_dtype_name(ranges->dtype), out->n,
                        vnp_dtype_name(out->dtype));
    if (nseq == 0)
        return VNP_OK;
    if (nseq > 65535)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "CUDA mean_pool: %d sequences in one batch (at most 65535)", nseq);
    /* The debug poison lands in the first pooled output after the batch's guard_reset. */
    int poison = c->poison_pending;
    c->poison_pending = 0;
    long long rows = (long long)(x->n / (size_t)H);
    const int32_t *rg = (const int32_t *)ranges->ptr;
    float *o = (float *)out->ptr;
    dim3 grid((unsigned)((H + 127) / 128), (unsigned)nseq);
    if (x->dtype == VNP_DT_F16)
        mean_pool_kernel<__half><<<grid, 128, 0, c->stream>>>(
            (const __half *)x->ptr, H, rows, rg, nseq, o, ld, col, poison, c->flag);
    else if (x->dtype == VNP_DT_BF16)
        mean_pool_kernel<__nv_bfloat16><<<grid, 128, 0, c->stream>>>(
            (const __nv_bfloat16 *)x->ptr, H, rows, rg, nseq, o, ld, col, poison, c->flag);
    else
        mean_pool_kernel<float><<<grid, 128, 0, c->stream>>>((const float *)x->ptr, H, rows, rg,
                                                             nseq, o, ld, col, poison, c->flag);
    return vnp_cuda_check_launch("mean_pool", err);
}
