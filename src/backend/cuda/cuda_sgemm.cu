/* gemm(): c = alpha op(a) op(b) + beta c over F32 buffers, row-major, with cuBLAS
 * sgemm on the backend's stream (the classifier's training: forward and backward
 * products). FP32 throughout: the handle's math mode is CUBLAS_DEFAULT_MATH (no TF32).
 * Row-major C[M,N] is column-major C^T[N,M] = op(B)^T op(A)^T, so the operands are
 * passed swapped. The output is checked for NaN/Inf into the guard word, as the CPU
 * backend's gemm does. */
#include <cublas_v2.h>

#include "backend/cuda/cuda_internal.cuh"

__global__ void nonfinite_kernel(const float *__restrict__ x, size_t n, int *flag)
{
    int bad = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        bad |= !isfinite(x[i]);
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

void vnp_cuda_sgemm_release(vnp_cuda *c)
{
    if (c->blas)
        cublasDestroy((cublasHandle_t)c->blas);
    c->blas = NULL;
}

vnp_code vnp_cuda_gemm(vnp_backend *be, int transa, int transb, int M, int N, int K, float alpha,
                       const vnp_buf *a, const vnp_buf *b, float beta, vnp_buf *c_out,
                       vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (M < 0 || N < 0 || K < 0)
        return vnp_fail(err, VNP_EINVAL, "gemm on cuda:%d of shape M=%d N=%d K=%d", c->device,
                        M, N, K);
    if (M == 0 || N == 0)
        return VNP_OK;
    if (a->dtype != VNP_DT_F32 || b->dtype != VNP_DT_F32 || c_out->dtype != VNP_DT_F32 ||
        a->n < (size_t)M * K || b->n < (size_t)K * N || c_out->n < (size_t)M * N)
        return vnp_fail(err, VNP_EINVAL,
                        "gemm on cuda:%d [%d x %d] x [%d x %d]: needs F32 buffers at least as "
                        "large as the shapes",
                        c->device, M, K, K, N);
    const int dev = c->device;
    vnp_code rc;
    if (!c->blas) {
        cublasHandle_t h;
        if ((rc = VNP_CUDA_CHECK(cublasCreate(&h), dev, err)))
            return rc;
        c->blas = h;
        if ((rc = VNP_CUDA_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), dev, err)))
            return rc;
    }
    cublasHandle_t h = (cublasHandle_t)c->blas;
    if ((rc = VNP_CUDA_CHECK(cublasSetStream(h, c->stream), dev, err)))
        return rc;
    if (K == 0) { /* c = beta c: sgemm needs k >= 1 for the operands' leading dimensions */
        if ((rc = VNP_CUDA_CHECK(cublasSscal(h, M * N, &beta, (float *)c_out->ptr, 1), dev, err)))
            return rc;
    } else if ((rc = VNP_CUDA_CHECK(cublasSgemm(h, transb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                transa ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                                &alpha, (const float *)b->ptr, transb ? K : N,
                                                (const float *)a->ptr, transa ? M : K, &beta,
                                                (float *)c_out->ptr, N),
                                    dev, err)))
        return rc;
    size_t n = (size_t)M * N, blocks = (n + 255) / 256;
    nonfinite_kernel<<<(unsigned)(blocks > 4096 ? 4096 : blocks), 256, 0, c->stream>>>(
        (const float *)c_out->ptr, n, c->flag);
    return vnp_cuda_check_launch("gemm non-finite check", err);
}
