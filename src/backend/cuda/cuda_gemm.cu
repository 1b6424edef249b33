/* linear(): out = act(x W^T + bias) + residual through cuBLASLt.
 * The bias rides the GEMM's BIAS epilogue (cuBLASLt wants it in the output
 * dtype: a VNP_WEIGHT_BIAS upload is converted to it once, at upload), ReLU its
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

static void plan_release(vnp_cuda_gemm_plan *p)
{
    if (!p->used)
        return;
    /* (a plan that failed half-way has some of these NULL) */
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    cublasLtMatrixLayout_t l[4] = {p->a, p->b, p->c, p->d};
    for (int i = 0; i < 4; i++)
        if (l[i])
            cublasLtMatrixLayoutDestroy(l[i]);
    memset(p, 0, sizeof *p);
}

int vnp_backend_cuda_gemm_picked(vnp_backend *be)
{
    const vnp_cuda *c = vnp_cuda_of(be);
    int n = 0;
    for (int i = 0; i < VNP_CUDA_PLANS; i++)
        n += c->plans[i].used && c->plans[i].picked;
    return n;
}

long vnp_backend_cuda_sm90_gemms(vnp_backend *be, long *clustered, long *wide, long *offloaded,
                                 long *interleaved, int *grid)
{
    const vnp_cuda *c = vnp_cuda_of(be);
    if (offloaded)
        *offloaded = c->sm90_offload_run;
    if (interleaved)
        *interleaved = c->sm90_inter_run;
    if (clustered)
        *clustered = c->sm90_clustered;
    if (wide)
        *wide = c->sm90_wide_run;
    if (grid)
        *grid = c->sm90_grid;
    return c->sm90_gemms;
}

void vnp_cuda_gemm_release(vnp_cuda *c)
{
    for (int i = 0; i < VNP_CUDA_PLANS; i++)
        plan_release(&c->plans[i]);
}

/* One attribute of a plan's matmul descriptor / of a matmul preference, set and
 * checked (the one check: VNP_CUDA_CHECK names the attribute and where it was set). */
#define DESC_SET(p, attr, v, dev)                                                                  \
    VNP_CUDA_CHECK(cublasLtMatmulDescSetAttribute((p)->desc, attr, &(v), sizeof(v)), dev, err)
#define PREF_SET(pref, attr, v)                                                                    \
    VNP_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &(v), sizeof(v)), dev, err)

/* ---- a fixed algorithm choice where cuBLASLt's heuristic is measurably off ----
 * At the token counts a packed batch has (a budget less a few tokens: 16101, 16380, ...
 * rather than 16384), the heuristic's first algorithm for some encoder shapes runs well
 * below the best one it also offers (H100: ESM-2 3B's out projection at M = 16101 612
 * vs 708 TFLOP/s). A pick names, for one GPU generation and one GEMM shape of the
 * encoders (N, K, with or without the residual as C), the configuration that the GPU
 * script's survey (`VNP_GEMM_SURVEY=1`, bench/RESULTS.md) found fastest over the token
 * counts near the budgets. The choice is a table, not a timing at run time: the same GPU,
 * cuBLAS and input give the same algorithm and so the same bytes, run after run.
 * cuBLASLt checks the configuration for the actual shape (cublasLtMatmulAlgoCheck); one
 * it refuses, a small M or an unaligned operand leave the heuristic's first.
 * Opt-in (VIRNUCPRO_DEBUG_GEMM_PICKS=1) until an end-to-end A/B on the GPU confirms the
 * survey: its timings were of single GEMMs, `VNP_BENCH_MODES="sync picks"` measures the
 * encoders. */
enum { PICK_ATTRS = 9, PICK_MIN_M = 8192 };
typedef struct gemm_pick {
    int cc;    /* compute capability, major * 10 + minor */
    int dtype; /* vnp_dtype of A and B (F16, BF16) */
    int n, k, has_c;
    int m_min; /* from this many tokens on (the heuristic's choice below) */
    /* algo id, tile, stages, split-K, reduction scheme, CTA swizzling, custom option,
     * inner shape, cluster shape: the order of pick_attr */
    int cfg[PICK_ATTRS];
} gemm_pick;

static const cublasLtMatmulAlgoConfigAttributes_t pick_attr[PICK_ATTRS] = {
    CUBLASLT_ALGO_CONFIG_ID,           CUBLASLT_ALGO_CONFIG_TILE_ID,
    CUBLASLT_ALGO_CONFIG_STAGES_ID,    CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
    CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING,
    CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID,
    CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID};

static const gemm_pick g_picks[] = {
    /* H100/H200 (survey on an H100 80GB HBM3, cuBLAS 13, M = 16101 ... 32740 tokens;
     * TFLOP/s of the heuristic's first -> the pick, bench/RESULTS.md "Session 9"):
     * ESM-2 3B fc1 (x W1^T + b, GELU after): 618-686 -> 688-715 */
    {90, VNP_DT_F16, 10240, 2560, 0, PICK_MIN_M, {66, 500, 35, 1, 0, 0, 7, 0, 5}},
    /* ESM-2 3B out projection (+ the residual as C): 538-657 -> 630-652 */
    {90, VNP_DT_F16, 2560, 2560, 1, PICK_MIN_M, {66, 415, 35, 1, 0, 0, 5, 0, 3}},
    /* ESM-2 3B q|k|v at predict's budget (32768): 669-681 -> 713-714 (at 16k tokens
     * the heuristic's own, 752-756, is the best) */
    {90, VNP_DT_F16, 7680, 2560, 0, 24576, {66, 500, 35, 1, 0, 0, 7, 0, 5}},
};

/* The pick for this plan, configured and accepted by cuBLASLt for its shape: 1 and *algo,
 * or 0 (no pick, or cuBLASLt refuses it: the heuristic decides). */
static int pick_algo(vnp_cuda *c, const vnp_cuda_gemm_plan *p, vnp_dtype dt, cudaDataType_t t,
                     cudaDataType_t tcd, int M, int N, int K, cublasLtEpilogue_t epi, int has_c,
                     int align, cublasLtMatmulAlgo_t *algo)
{
    /* (the survey timed the encoders' GEMMs with the bias epilogue) */
    if (!c->gemm_picks || M < PICK_MIN_M || align < 256 || epi != CUBLASLT_EPILOGUE_BIAS)
        return 0;
    /* the last entry that applies: one with a larger m_min follows its shape's others */
    const gemm_pick *g = NULL;
    for (size_t i = 0; i < sizeof g_picks / sizeof g_picks[0]; i++)
        if (g_picks[i].cc == c->cc && g_picks[i].dtype == (int)dt && g_picks[i].n == N &&
            g_picks[i].k == K && g_picks[i].has_c == has_c && M >= g_picks[i].m_min)
            g = &g_picks[i];
    if (!g)
        return 0;
    /* (failures here only mean "no pick": a scratch error, not the caller's) */
    vnp_error e;
    vnp_error *err = &e;
    const int dev = c->device;
    if (VNP_CUDA_CHECK(cublasLtMatmulAlgoInit(c->lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, t, t, tcd,
                                              tcd, g->cfg[0], algo),
                       dev, err))
        return 0;
    for (int a = 1; a < PICK_ATTRS; a++) {
        vnp_code rc;
        if (pick_attr[a] == CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID ||
            pick_attr[a] == CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID) {
            const uint16_t u = (uint16_t)g->cfg[a];
            rc = VNP_CUDA_CHECK(
                cublasLtMatmulAlgoConfigSetAttribute(algo, pick_attr[a], &u, sizeof u), dev, err);
        } else {
            const int32_t v = g->cfg[a];
            rc = VNP_CUDA_CHECK(
                cublasLtMatmulAlgoConfigSetAttribute(algo, pick_attr[a], &v, sizeof v), dev, err);
        }
        if (rc)
            return 0;
    }
    cublasLtMatmulHeuristicResult_t chk;
    if (cublasLtMatmulAlgoCheck(c->lt, p->desc, p->a, p->b, p->c, p->d, algo, &chk) !=
            CUBLAS_STATUS_SUCCESS ||
        chk.workspaceSize > c->workspace_size)
        return 0;
    return 1;
}

/* cuBLASLt's heuristic's first algorithm for plan p (its descriptor and layouts made). */
static vnp_code heuristic_algo(vnp_cuda *c, vnp_cuda_gemm_plan *p, vnp_dtype dt, int align,
                               cublasLtMatmulAlgo_t *algo, vnp_error *err)
{
    const int dev = c->device;
    cublasLtMatmulPreference_t pref;
    vnp_code rc;
    if ((rc = VNP_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref), dev, err)))
        return rc;
    uint64_t ws = c->workspace_size;
    uint32_t al = (uint32_t)align;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!(rc = PREF_SET(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws)) &&
        !(rc = PREF_SET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al)) &&
        !(rc = PREF_SET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al)) &&
        !(rc = PREF_SET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al)) &&
        !(rc = PREF_SET(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al))) {
        cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->c,
                                                           p->d, pref, 1, &res, &found);
        /* cuBLASLt has no FAST_ACCUM kernel for some FP8 shapes (seen on an H100: M = 77,
         * N = 2560, K = 10240 with C): those keep the promoted accumulation */
        if (dt == VNP_DT_U8 && c->fp8_fast_accum &&
            (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && !found))) {
            int8_t promoted = 0;
            if (!(rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_FAST_ACCUM, promoted, dev)))
                hs = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->a, p->b, p->c, p->d, pref,
                                                    1, &res, &found);
        }
        if (!rc && (rc = VNP_CUDA_CHECK(hs, dev, err)))
            vnp_error_prefix(err, "cublasLtMatmulAlgoGetHeuristic: ");
        else if (!rc && found == 0)
            rc = vnp_fail(err, VNP_EDEVICE, "cuBLASLt found no algorithm on cuda:%d", dev);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (!rc)
        *algo = res.algo;
    return rc;
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
    const int dev = c->device;
    vnp_code rc = VNP_CUDA_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                                 dev, err);
    if (rc)
        return rc;
    p->used = 1; /* so that plan_release frees what was made */
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if ((rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_TRANSA, ta, dev)) ||
        (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_TRANSB, tb, dev)) ||
        (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_EPILOGUE, epi, dev))) {
        plan_release(p);
        return rc;
    }
    /* FP8: E4M3 A (weights) and B (activations), each with a vector of scales (A: one per
     * output channel, B: one per token) that multiply the FP32 accumulator; FP16 C, D
     * and bias. */
    cudaDataType_t tcd = t;
    if (dt == VNP_DT_U8) {
        tcd = CUDA_R_16F;
        cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        cudaDataType_t bias_t = CUDA_R_16F;
        /* the heuristic refuses vector scaling (INVALID_VALUE) without the vectors */
        if ((rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, vec, dev)) ||
            (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, vec, dev)) ||
            (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bias_t, dev)) ||
            (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, fp8_sa, dev)) ||
            (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, fp8_sb, dev))) {
            plan_release(p);
            return rc;
        }
        /* FAST_ACCUM: the tensor cores' own accumulation, without cuBLASLt's periodic
         * promotion of the sums to FP32 registers (docs/PRECISION.md) */
        int8_t fast = c->fp8_fast_accum ? 1 : 0;
        if ((rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_FAST_ACCUM, fast, dev))) {
            plan_release(p);
            return rc;
        }
    }
    if ((rc = VNP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->a, t, K, N, K), dev, err)) ||
        (rc = VNP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->b, t, K, M, K), dev, err)) ||
        (rc = VNP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->c, tcd, N, M, N), dev, err)) ||
        (rc = VNP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p->d, tcd, N, M, N), dev, err))) {
        plan_release(p);
        vnp_error_prefix(err, "describing a %dx%dx%d GEMM: ", M, N, K);
        return rc;
    }
    if (pick_algo(c, p, dt, t, tcd, M, N, K, epi, has_c, align, &p->algo)) {
        p->picked = 1;
    } else if ((rc = heuristic_algo(c, p, dt, align, &p->algo, err))) {
        plan_release(p);
        vnp_error_prefix(err, "planning a %dx%dx%d %s GEMM (epilogue %d): ", M, N, K,
                         dt == VNP_DT_U8 ? "FP8 E4M3" : vnp_dtype_name(dt), (int)epi);
        return rc;
    }
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

vnp_code vnp_cuda_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                         vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                         vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    /* callers may be on another thread */
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0;
    /* The mode follows x: the compute dtype, or F32 for an FP32 GEMM. An FP8 backend's
     * GEMM input buffers (alloc_gemm_in, dtype U8) hold quantised rows: as x, the GEMM
     * takes them as they are; as out, the result (after the activation) is quantised
     * into them instead of being stored in FP16. */
    vnp_dtype dt = x->dtype == VNP_DT_F32 ? VNP_DT_F32 : c->act;
    const vnp_cuda_q8a *xq = NULL;
    size_t xrow0 = 0;
    if (x->dtype == VNP_DT_U8 && c->fp8) {
        xq = vnp_cuda_q8a_of(c, x->ptr, &xrow0);
        if (!xq || xq->K != K || M < 0 || xrow0 + (size_t)M > xq->rows || w->dtype != VNP_DT_U8)
            return vnp_fail(err, VNP_EINVAL,
                            "CUDA linear on cuda:%d: x is an FP8 GEMM input buffer%s of width "
                            "%d, not of %d rows of width K=%d for an FP8 weight",
                            c->device, xq ? "" : " the backend does not know", xq ? xq->K : 0,
                            M, K);
    }
    const int qout = out->dtype == VNP_DT_U8 && c->fp8;
    if (qout && (residual || (act != VNP_ACT_NONE && act != VNP_ACT_GELU_ERF)))
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA linear on cuda:%d: an FP8 GEMM input buffer as the output takes "
                        "no residual and no activation but GELU",
                        c->device);
    if (M < 0 || N <= 0 || K <= 0 || (x->dtype != dt && !xq) || (out->dtype != dt && !qout) ||
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
                        "CUDA linear: the weight is %s but x is %s; upload GEMM weights as "
                        "VNP_WEIGHT_GEMM for the compute dtype, or as F32 for an FP32 GEMM",
                        vnp_dtype_name(w->dtype), vnp_dtype_name(dt));
    if (bias && bias->dtype != dt)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA linear on cuda:%d: the bias is %s but the GEMM's output is %s; "
                        "upload a GEMM's bias as VNP_WEIGHT_BIAS (the compute dtype), or as F32 "
                        "for an FP32 GEMM",
                        c->device, vnp_dtype_name(bias->dtype), vnp_dtype_name(dt));
    if (M == 0)
        return VNP_OK;

    const void *bptr = bias ? bias->ptr : NULL;
    vnp_code rc;
#ifdef VNP_HAVE_SM90A
    /* Hopper: the sm_90a GEMM with the activation or the residual in its epilogue (level
     * 1: the FFN up-projections only; 2: every encoder linear) */
    const int sm90_epi = act == VNP_ACT_GELU_ERF ? (residual ? -1 : VNP_SM90_GELU)
                         : act == VNP_ACT_NONE && c->sm90_gemm >= 2 ? VNP_SM90_LINEAR
                                                                    : -1;
    if (c->sm90_gemm && sm90_epi >= 0 && !qout && !xq && !f8 &&
        (dt == VNP_DT_F16 || dt == VNP_DT_BF16) && w->dtype == dt &&
        !vnp_cuda_overlap(x->ptr, (size_t)M * K * 2, out->ptr, (size_t)M * N * 2) &&
        (!residual || residual->ptr == out->ptr ||
         !vnp_cuda_overlap(residual->ptr, (size_t)M * N * 2, out->ptr, (size_t)M * N * 2)) &&
        vnp_cuda_gemm_sm90_fits(sm90_epi, N, K, x->ptr, w->ptr, bptr, out->ptr))
        return vnp_cuda_gemm_sm90(c, sm90_epi, dt, x->ptr, w->ptr, bptr,
                                  residual ? residual->ptr : NULL, out->ptr, M, N, K, err);
#endif
    /* What the GEMM itself computes, and what a kernel finishes. */
    int gelu = act == VNP_ACT_GELU_ERF;
    int relu = act == VNP_ACT_RELU;
    int post = gelu || (relu && residual) || qout; /* a kernel after the GEMM */
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (relu && !residual)
        epi = bptr ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    else if (bptr)
        epi = CUBLASLT_EPILOGUE_BIAS;
    int c_in_gemm = residual && !post; /* residual as the C operand */
    void *dst = out->ptr;
    size_t nout = (size_t)M * N;
    if ((post && residual) || qout) {
        rc = vnp_cuda_reserve(c, &c->scratch, &c->scratch_bytes, nout * vnp_cuda_dtype_size(dt),
                              "allocating a GEMM temporary", err);
        if (rc)
            return rc;
        dst = c->scratch;
    }
    /* FP8: the activations quantised per token into c->f8x / c->f8s, then the GEMM
     * multiplies those with the weight's E4M3 bytes. */
    const void *bx = x->ptr;
    vnp_dtype gdt = dt;
    const float *sb = NULL;
    if (xq) {
        sb = xq->scale + xrow0;
        gdt = VNP_DT_U8;
        /* cuBLASLt takes a scale vector at a 16-byte boundary: a view that starts
         * elsewhere gets its rows' scales copied to one */
        if ((uintptr_t)sb % 16) {
            if ((rc = vnp_cuda_reserve(c, (void **)&c->f8s, &c->f8s_bytes,
                                       (size_t)M * sizeof(float),
                                       "allocating the FP8 activation scales", err)) ||
                (rc = VNP_CUDA_CHECK(cudaMemcpyAsync(c->f8s, sb, (size_t)M * sizeof(float),
                                                     cudaMemcpyDeviceToDevice, c->stream),
                                     c->device, err)))
                return rc;
            sb = c->f8s;
        }
    } else if (f8) {
        if ((rc = vnp_cuda_reserve(c, (void **)&c->f8x, &c->f8x_bytes, (size_t)M * K,
                                   "allocating the FP8 activations", err)) ||
            (rc = vnp_cuda_reserve(c, (void **)&c->f8s, &c->f8s_bytes, (size_t)M * sizeof(float),
                                   "allocating the FP8 activation scales", err)) ||
            (rc = vnp_cuda_fp8_quantize_act(c, x->ptr, M, K, c->f8x, c->f8s, err)))
            return rc;
        bx = c->f8x;
        sb = c->f8s;
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
    rc = get_plan(c, gdt, M, N, K, epi, c_in_gemm, align, f8 ? f8->scale : NULL, sb, &p, err);
    if (rc)
        return rc;
    if (bptr && (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bptr, c->device)))
        return rc;
    if (f8) {
        const void *sa = f8->scale;
        if ((rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, sa, c->device)) ||
            (rc = DESC_SET(p, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, sb, c->device)))
            return rc;
    }
    const float alpha = 1.0f, beta = c_in_gemm ? 1.0f : 0.0f;
    const void *cptr = c_in_gemm ? residual->ptr : dst;
    rc = VNP_CUDA_CHECK(cublasLtMatmul(c->lt, p->desc, &alpha, w->ptr, p->a, bx, p->b, &beta, cptr,
                                       p->c, dst, p->d, &p->algo, c->workspace, c->workspace_size,
                                       c->stream),
                        c->device, err);
    if (rc) {
        vnp_error_prefix(err, "a %dx%dx%d %s GEMM: ", M, N, K,
                         f8 ? "FP8 E4M3" : vnp_dtype_name(dt));
        return rc;
    }
    if (qout) {
        unsigned char *q;
        float *qs;
        if ((rc = vnp_cuda_q8a_target(c, out, M, N, "linear", &q, &qs, err)))
            return rc;
        return vnp_cuda_fp8_quantize_op(c, gelu ? VNP_Q8_GELU : VNP_Q8_COPY, dst, M, N, q, qs,
                                        err);
    }
    if (post)
        return vnp_cuda_act_residual(c, dt, dst, act, residual ? residual->ptr : NULL, out->ptr,
                                     nout, err);
    return VNP_OK;
}
