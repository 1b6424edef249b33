/* Mean pooling of row ranges into FP32 on the device; the one op that hands
 * results to the host (and so the point where a batch synchronises). */
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"

template <typename T>
__global__ void mean_pool_kernel(const T *__restrict__ x, int H, const int32_t *__restrict__ rows,
                                 int nseq, float *__restrict__ out, int *flag)
{
    const int s = blockIdx.y;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= H)
        return;
    const int b = rows[s], e = rows[nseq + s];
    float acc = 0.0f;
    for (int r = b; r < e; r++)
        acc += vnp_ld<T>(x[(size_t)r * H + j]);
    float v = acc / (float)(e - b);
    if (!isfinite(v))
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
    out[(size_t)s * H + j] = v;
}

vnp_code vnp_cuda_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const int32_t *row_begin,
                            const int32_t *row_end, int nseq, float *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    if (nseq < 0 || H <= 0 || x->dtype != c->act)
        return vnp_fail(err, VNP_EINVAL, "CUDA mean_pool: inconsistent arguments");
    if (nseq == 0)
        return VNP_OK;
    if (nseq > 65535)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "CUDA mean_pool: %d sequences in one batch (at most 65535)", nseq);
    size_t rows_total = x->n / (size_t)H;
    for (int s = 0; s < nseq; s++)
        if (row_begin[s] < 0 || row_end[s] <= row_begin[s] || (size_t)row_end[s] > rows_total)
            return vnp_fail(err, VNP_EINVAL,
                            "CUDA mean_pool: sequence %d has rows [%d, %d) outside [0, %zu) or "
                            "empty",
                            s, row_begin[s], row_end[s], rows_total);
    size_t cap_bytes = c->pool_rows_cap * 4;
    vnp_code rc = vnp_cuda_reserve((void **)&c->pool_rows, &cap_bytes, (size_t)nseq * 2 * 4,
                                   "allocating pooling ranges", err);
    c->pool_rows_cap = cap_bytes / 4;
    if (rc)
        return rc;
    size_t out_bytes = c->pool_out_cap * 4;
    rc = vnp_cuda_reserve((void **)&c->pool_out, &out_bytes, (size_t)nseq * H * 4,
                          "allocating pooled embeddings", err);
    c->pool_out_cap = out_bytes / 4;
    if (rc)
        return rc;
    /* Pageable host ranges: the copy is staged by the driver before returning. */
    rc = vnp_cuda_check(cudaMemcpyAsync(c->pool_rows, row_begin, (size_t)nseq * 4,
                                        cudaMemcpyHostToDevice, c->stream),
                        "copying pooling ranges", err);
    if (!rc)
        rc = vnp_cuda_check(cudaMemcpyAsync(c->pool_rows + nseq, row_end, (size_t)nseq * 4,
                                            cudaMemcpyHostToDevice, c->stream),
                            "copying pooling ranges", err);
    if (rc)
        return rc;
    dim3 grid((unsigned)((H + 127) / 128), (unsigned)nseq);
    if (c->act == VNP_DT_F16)
        mean_pool_kernel<__half><<<grid, 128, 0, c->stream>>>((const __half *)x->ptr, H,
                                                              c->pool_rows, nseq, c->pool_out,
                                                              c->flag);
    else if (c->act == VNP_DT_BF16)
        mean_pool_kernel<__nv_bfloat16><<<grid, 128, 0, c->stream>>>(
            (const __nv_bfloat16 *)x->ptr, H, c->pool_rows, nseq, c->pool_out, c->flag);
    else
        mean_pool_kernel<float><<<grid, 128, 0, c->stream>>>((const float *)x->ptr, H,
                                                             c->pool_rows, nseq, c->pool_out,
                                                             c->flag);
    rc = vnp_cuda_check_launch("mean_pool", err);
    if (!rc)
        rc = vnp_cuda_check(cudaMemcpyAsync(out, c->pool_out, (size_t)nseq * H * 4,
                                            cudaMemcpyDeviceToHost, c->stream),
                            "copying pooled embeddings from the GPU", err);
    if (!rc)
        rc = vnp_cuda_check(cudaStreamSynchronize(c->stream), "running the GPU batch", err);
    return rc;
}
