/* linear(): out = act(x W^T + bias) + residual through cuBLASLt.
 * The bias rides the GEMM's BIAS epilogue (cuBLASLt wants it in the output
 * dtype, so FP32 biases get a converted copy made once and cached), ReLU its
 * RELU_BIAS epilogue, and the residual the C operand (beta = 1, in place when
 * out aliases it). GELU is not taken from cuBLASLt: its GELU epilogue is the
 * tanh approximation, and both models use the erf form, so GELU runs as our
 * own kernel over the GEMM output.
 * Two modes: every operand in the compute dtype (the encoders), or every operand
 * in F32 (the classifier) on any backend, which then runs an FP32 GEMM
 * (CUBLAS_COMPUTE_32F with F32 layouts: no TF32, no reduced precision). */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.cuh"

/* U8 stands for an FP8 GEMM: E4M3 operands, FP16 C/D (see get_plan). */
static cudaDataType_t cuda_type(vnp_dtype dt)
{
    return dt == VNP_DT_F16    ? CUDA_R_16F
           : dt == VNP_DT_BF16 ? CUDA_R_16BF
           : dt == VNP_DT_U8   ? CUDA_R_8F_E4M3
                               : CUDA_R_32F;
}

static int ptr_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (uintptr_t)al))
        al >>= 1;
    return al;
}

static vnp_code lt_fail(cublasStatus_t s, const char *what, vnp_error *err)
{
    return vnp_fail(err, VNP_EDEVICE, "cuBLASLt: %s failed (status %d)", what, (int)s);
}

static void plan_release(vnp_cuda_gemm_plan *p)
{
    if (!p->used)
        return;
    cublasLtMatmulDescDestroy(p->desc);
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->c);
    cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

void vnp_cuda_gemm_release(vnp_cuda *c)
{
    for (int i = 0; i < VNP_CUDA_PLANS; i++)
        plan_release(&c->plans[i]);
}

/* Finds or builds the plan for one GEMM shape. Row-major out[M,N] = x[M,K] W[N,K]^T
 * is column-major out^T[N,M] = W^T... i.e. D(N x M) = op_T(A = W, K x N) * B(x, K x M). */
static vnp_code get_plan(vnp_cuda *c, vnp_dtype dt, int M, int N, int K, cublasLtEpilogue_t epi,
                         int has_c, int align, const void *fp8_sa, const void *fp8_sb,
                         vnp_cuda_gemm_plan **out, vnp_error *err)
{
    vnp_cuda_gemm_plan *victim = &c->plans[0];
    for (int i = 0; i < VNP_CUDA_PLANS; i++) {
        vnp_cuda_gemm_plan *p = &c->plans[i];
        if (p->used && p->dtype == (int)dt && p->m == M && p->n == N && p->k == K &&
            p->epilogue == (int)epi && p->has_c == has_c && p->align == align) {
            p->stamp = ++c->clock;
            *out = p;
            return VNP_OK;
        }
        if (!p->used || p->stamp < victim->stamp)
            victim = p;
        if (!p->used)
            break;
    }
    plan_release(victim);
    vnp_cuda_gemm_plan *p = victim;
    cudaDataType_t t = cuda_type(dt);
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s != CUBLAS_STATUS_SUCCESS)
        return lt_fail(s, "creating a matmul descriptor", err);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    /* FP8: E4M3 A (weights) and B (activations), each with a vector of scales (A: one per
     * output channel, B: one per token) that multiply the FP32 accumulator; FP16 C, D
     * and bias. */
    cudaDataType_t tcd = t;
    if (dt == VNP_DT_U8) {
        tcd = CUDA_R_16F;
        cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        cudaDataType_t bias_t = CUDA_R_16F;
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &vec,
                                       sizeof vec);
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &vec,
                                       sizeof vec);
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_t,
                                       sizeof bias_t);
        /* the heuristic refuses vector scaling (INVALID_VALUE) without the vectors */
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &fp8_sa,
                                       sizeof fp8_sa);
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &fp8_sb,
                                       sizeof fp8_sb);
    }
    int ok = cublasLtMatrixLayoutCreate(&p->a, t, K, N, K) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->b, t, K, M, K) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->c, tcd, N, M, N) == CUBLAS_STATUS_SUCCESS &&
             cublasLtMatrixLayoutCreate(&p->d, tcd, N, M, N) == CUBLAS_STATUS_SUCCESS;
    p->used = 1; /* so that plan_release frees what was made */
    if (!ok) {
        plan_release(p);
        return vnp_fail(err, VNP_EDEVICE, "cuBLASLt: could not describe a %dx%dx%d GEMM", M, N,
                        K);
    }
    cublasLtMatmulPreference_t pref;
    s = cublasLtMatmulPreferenceCreate(&pref);
    if (s != CUBLAS_STATUS_SUCCESS) {
        plan_release(p);
        return lt_fail(s, "creating a matmul preference", err);
    }
    uint64_t ws = c->workspace_size;
    uint32_t al = (uint32_t)align;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al,
                                         sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al,
                                         sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al,
                                         sizeof al);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al,
                                         sizeof al);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->c, p->d, pref, 1, &res,
                                       &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
        plan_release(p);
        return vnp_fail(err, VNP_EDEVICE,
                        "cuBLASLt found no algorithm for a %dx%dx%d GEMM (epilogue %d, status %d)",
                        M, N, K, (int)epi, (int)s);
    }
    p->algo = res.algo;
    p->dtype = (int)dt;
    p->m = M;
    p->n = N;
    p->k = K;
    p->epilogue = (int)epi;
    p->has_c = has_c;
    p->align = align;
    p->stamp = ++c->clock;
    *out = p;
    return VNP_OK;
}

/* The bias vector in the GEMM's output dtype dt: itself when it already is, else
 * a converted copy made on first use and cached (freed with the bias). */
static vnp_code bias_in(vnp_cuda *c, const vnp_buf *bias, vnp_dtype dt, const void **out,
                        vnp_error *err)
{
    if (bias->dtype == dt) {
        *out = bias->ptr;
        return VNP_OK;
    }
    for (int i = 0; i < c->nbias; i++)
        if (c->bias[i].src == bias->ptr && c->bias[i].dt == dt) {
            *out = c->bias[i].conv;
            return VNP_OK;
        }
    if (c->nbias == c->capbias) {
        int cap = c->capbias ? 2 * c->capbias : 64;
        vnp_cuda_bias *nb = (vnp_cuda_bias *)realloc(c->bias, (size_t)cap * sizeof *nb);
        if (!nb)
            return vnp_fail(err, VNP_ENOMEM, "out of memory caching GEMM biases");
        c->bias = nb;
        c->capbias = cap;
    }
    void *conv = NULL;
    vnp_code rc = vnp_cuda_check(cudaMalloc(&conv, bias->n * vnp_cuda_dtype_size(dt)),
                                 "allocating a GEMM bias", err);
    if (rc)
        return rc;
    rc = vnp_cuda_convert(c, bias->ptr, bias->dtype, conv, dt, bias->n, err);
    if (rc) {
        cudaFree(conv);
        return rc;
    }
    c->bias[c->nbias].src = bias->ptr;
    c->bias[c->nbias].dt = dt;
    c->bias[c->nbias].conv = conv;
    c->nbias++;
    *out = conv;
    return VNP_OK;
}

vnp_code vnp_cuda_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                         vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                         vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    cudaSetDevice(c->device); /* callers may be on another thread */
    /* The mode follows x: the compute dtype, or F32 for an FP32 GEMM. */
    vnp_dtype dt = x->dtype == VNP_DT_F32 ? VNP_DT_F32 : c->act;
    if (M < 0 || N <= 0 || K <= 0 || x->dtype != dt || out->dtype != dt ||
        x->n < (size_t)M * K || out->n < (size_t)M * N || w->n < (size_t)N * K ||
        (bias && bias->n < (size_t)N) ||
        (residual && (residual->dtype != dt || residual->n < (size_t)M * N)))
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA linear on cuda:%d: inconsistent arguments (M=%d N=%d K=%d; x %s, "
                        "out %s, residual %s: all %s or all F32)",
                        c->device, M, N, K, vnp_dtype_name(x->dtype), vnp_dtype_name(out->dtype),
                        residual ? vnp_dtype_name(residual->dtype) : "none",
                        vnp_dtype_name(c->act));
    const vnp_cuda_f8w *f8 = NULL;
    if (w->dtype == VNP_DT_U8 && dt == VNP_DT_F16 && c->fp8) {
        f8 = vnp_cuda_f8w_of(c, w->ptr);
        if (!f8 || f8->rows != N)
            return vnp_fail(err, VNP_EINVAL,
                            "CUDA linear on cuda:%d: an FP8 weight without its scales, or of "
                            "%d rows for N=%d",
                            c->device, f8 ? f8->rows : 0, N);
        if (K % 16 || N % 16)
            return vnp_fail(err, VNP_EUNSUPPORTED,
                            "CUDA FP8 linear on cuda:%d: K=%d and N=%d must be multiples of 16 "
                            "(FP8 tensor cores); use --precision fp16",
                            c->device, K, N);
    } else if (w->dtype != dt)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA linear: the weight is %s but x is %s; upload GEMM weights with "
                        "matrix=1 for the compute dtype, or as F32 for an FP32 GEMM",
                        vnp_dtype_name(w->dtype), vnp_dtype_name(dt));
    if (bias && !vnp_cuda_is_float(bias->dtype))
        return vnp_fail(err, VNP_EINVAL, "CUDA linear: the bias is not a float buffer");
    if (M == 0)
        return VNP_OK;

    const void *bptr = NULL;
    vnp_code rc;
    if (bias) {
        rc = bias_in(c, bias, dt, &bptr, err);
        if (rc)
            return rc;
    }
    /* What the GEMM itself computes, and what a kernel finishes. */
    int gelu = act == VNP_ACT_GELU_ERF;
    int relu = act == VNP_ACT_RELU;
    int post = gelu || (relu && residual); /* activation applied after the GEMM */
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (relu && !residual)
        epi = bptr ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    else if (bptr)
        epi = CUBLASLT_EPILOGUE_BIAS;
    int c_in_gemm = residual && !post; /* residual as the C operand */
    void *dst = out->ptr;
    size_t nout = (size_t)M * N;
    if (post && residual) {
        rc = vnp_cuda_reserve(&c->scratch, &c->scratch_bytes, nout * vnp_cuda_dtype_size(dt),
                              "allocating a GEMM temporary", err);
        if (rc)
            return rc;
        dst = c->scratch;
    }
    /* FP8: the activations quantised per token into c->f8x / c->f8s, then the GEMM
     * multiplies those with the weight's E4M3 bytes. */
    const void *bx = x->ptr;
    vnp_dtype gdt = dt;
    if (f8) {
        if ((rc = vnp_cuda_reserve((void **)&c->f8x, &c->f8x_bytes, (size_t)M * K,
                                   "allocating the FP8 activations", err)) ||
            (rc = vnp_cuda_reserve((void **)&c->f8s, &c->f8s_bytes, (size_t)M * sizeof(float),
                                   "allocating the FP8 activation scales", err)) ||
            (rc = vnp_cuda_fp8_quantize_act(c, x->ptr, M, K, c->f8x, c->f8s, err)))
            return rc;
        bx = c->f8x;
        gdt = VNP_DT_U8;
    }
    int align = ptr_align(bx);
    int a2 = ptr_align(w->ptr), a3 = ptr_align(dst);
    if (a2 < align)
        align = a2;
    if (a3 < align)
        align = a3;
    if (c_in_gemm && ptr_align(residual->ptr) < align)
        align = ptr_align(residual->ptr);
    if (bptr && ptr_align(bptr) < align)
        align = ptr_align(bptr);
    vnp_cuda_gemm_plan *p = NULL;
    rc = get_plan(c, gdt, M, N, K, epi, c_in_gemm, align, f8 ? f8->scale : NULL,
                  f8 ? c->f8s : NULL, &p, err);
    if (rc)
        return rc;
    if (bptr)
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bptr,
                                       sizeof bptr);
    if (f8) {
        const void *sa = f8->scale, *sb = c->f8s;
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa,
                                       sizeof sa);
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb,
                                       sizeof sb);
    }
    const float alpha = 1.0f, beta = c_in_gemm ? 1.0f : 0.0f;
    const void *cptr = c_in_gemm ? residual->ptr : dst;
    cublasStatus_t s = cublasLtMatmul(c->lt, p->desc, &alpha, w->ptr, p->a, bx, p->b, &beta,
                                      cptr, p->c, dst, p->d, &p->algo, c->workspace,
                                      c->workspace_size, c->stream);
    if (s != CUBLAS_STATUS_SUCCESS)
        return vnp_fail(err, VNP_EDEVICE,
                        "cuBLASLt: a %dx%dx%d %s GEMM on cuda:%d failed (status %d)", M, N, K,
                        f8 ? "FP8 E4M3" : vnp_dtype_name(dt), c->device, (int)s);
    if (post)
        return vnp_cuda_act_residual(c, dt, dst, act, residual ? residual->ptr : NULL, out->ptr,
                                     nout, err);
    return VNP_OK;
}
