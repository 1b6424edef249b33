/* gemm: c = alpha op(a) op(b) + beta c with OpenBLAS sgemm (the classifier's training),
 * cut into blocks of rows of c, one per worker. The blocks follow the thread count, and
 * OpenBLAS's AVX2/AVX-512 kernels round a row by its place in its call, so the last bits
 * may depend on -t (training compares with tolerances; inference's linear layers use
 * cpu_matmul.c, which does not). */
#include <cblas.h>

#include "backend/cpu/cpu_backend.h"

typedef struct {
    const float *a, *b;
    float *c;
    int transa, transb, M, N, K, step;
    float alpha, beta;
} gemm_job;

static void gemm_block(void *ctx, size_t begin, size_t end, int worker)
{
    (void)worker;
    const gemm_job *j = ctx;
    for (size_t blk = begin; blk < end; blk++) {
        int m0 = (int)blk * j->step;
        int m1 = m0 + j->step < j->M ? m0 + j->step : j->M;
        if (m1 <= m0)
            continue;
        /* rows m0.. of op(a): rows of a, or columns of a when transposed */
        const float *a = j->transa ? j->a + m0 : j->a + (size_t)m0 * j->K;
        int lda = j->transa ? j->M : j->K;
        int ldb = j->transb ? j->K : j->N;
        cblas_sgemm(CblasRowMajor, j->transa ? CblasTrans : CblasNoTrans,
                    j->transb ? CblasTrans : CblasNoTrans, m1 - m0, j->N, j->K, j->alpha, a, lda,
                    j->b, ldb, j->beta, j->c + (size_t)m0 * j->N, j->N);
    }
}

vnp_code vnp_cpu_gemm(vnp_backend *be, int transa, int transb, int M, int N, int K, float alpha,
                      const vnp_buf *a, const vnp_buf *b, float beta, vnp_buf *c, vnp_error *err)
{
    vnp_cpu *cpu = vnp_cpu_of(be);
    if (M < 0 || N < 0 || K < 0)
        return vnp_fail(err, VNP_EINVAL, "gemm of shape M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0)
        return VNP_OK;
    if (a->dtype != VNP_DT_F32 || b->dtype != VNP_DT_F32 || c->dtype != VNP_DT_F32 ||
        a->n < (size_t)M * K || b->n < (size_t)K * N || c->n < (size_t)M * N)
        return vnp_fail(err, VNP_EINVAL,
                        "gemm [%d x %d] x [%d x %d]: needs F32 buffers at least as large as "
                        "the shapes",
                        M, K, K, N);
    int t = cpu->nthreads;
    gemm_job j = {a->ptr, b->ptr, c->ptr, transa, transb, M, N, K, M, alpha, beta};
    if (t > 1 && M >= 16 * t)
        j.step = ((M + t - 1) / t + 7) / 8 * 8;
    size_t blocks = (size_t)((M + j.step - 1) / j.step);
    vnp_cpu_pool_run(cpu->pool, blocks, 1, gemm_block, &j);
    unsigned bad = vnp_cpu_nonfinite_bits(c->ptr, (size_t)M * N);
    if (bad)
        vnp_cpu_guard_set(cpu, VNP_GUARD_NONFINITE);
    return VNP_OK;
}
