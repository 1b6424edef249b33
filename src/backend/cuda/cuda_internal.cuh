/* Internal state and helpers shared by the CUDA backend's translation units.
 * Every kernel launches on the backend's one stream; nothing here synchronises
 * except the calls that hand results back to the host. */
#ifndef VNP_CUDA_INTERNAL_CUH
#define VNP_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <float.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* Bits of the device-side guard word: the VNP_GUARD_* bits of backend.h, which
 * guard_save copies out as they are. */
#define VNP_CUDA_FLAG_NONFINITE 1
#define VNP_CUDA_FLAG_BAD_TOKEN 2
#define VNP_CUDA_FLAG_BAD_SHAPE 4
static_assert(VNP_CUDA_FLAG_NONFINITE == VNP_GUARD_NONFINITE &&
                  VNP_CUDA_FLAG_BAD_TOKEN == VNP_GUARD_BAD_TOKEN &&
                  VNP_CUDA_FLAG_BAD_SHAPE == VNP_GUARD_BAD_SHAPE,
              "the device guard bits are backend.h's VNP_GUARD_* bits");

typedef struct vnp_cuda_gemm_plan {
    int used;
    int m, n, k, epilogue, has_c, align;
    int dtype; /* vnp_dtype of A, B, C and D: the compute dtype, or F32 */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulAlgo_t algo;
    int picked; /* 1: algo is the fixed table's (cuda_gemm.cu), 0: the heuristic's first */
    unsigned long long stamp;
} vnp_cuda_gemm_plan;

/* An FP8 GEMM weight: its E4M3 bytes (the vnp_buf's ptr, dtype U8) and its scales, one
 * per output row (all equal for per-tensor scaling). */
typedef struct vnp_cuda_f8w {
    const void *q;
    float *scale; /* device, [rows] */
    int rows;
} vnp_cuda_f8w;

/* An FP8 backend's GEMM input buffer (alloc_gemm_in): rows of K E4M3 bytes (the
 * vnp_buf's ptr, dtype U8) and one scale per row. Its writer (layernorm, linear with
 * an activation, gated_gelu) quantises each row as linear would have (cuda_fp8.cu);
 * linear hands the bytes and scales to the FP8 GEMM as they are. A view of rows
 * [r, ...) starts at q + r * K and finds its scales at scale + r (vnp_cuda_q8a_of). */
typedef struct vnp_cuda_q8a {
    unsigned char *q;
    float *scale; /* device, [rows] */
    size_t rows;
    int K;
} vnp_cuda_q8a;

#define VNP_CUDA_PLANS 48

typedef struct vnp_cuda {
    int device;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *blas;        /* cublasHandle_t of gemm (cuda_sgemm.cu), made on first use */
    void *workspace;
    size_t workspace_size;
    int *flag;         /* device guard word (VNP_CUDA_FLAG_* bits) */
    int reset_failed;  /* a guard_reset failed: reset_err, reported by the next guard_save */
    vnp_error reset_err;
    vnp_dtype act;     /* compute dtype of activations and GEMM weights */
    int attn_heads_x;  /* 1 (default): short-sequence attention's blocks in head order
                          within a sequence; 0 (VIRNUCPRO_DEBUG_ATTN_GRID=seqs), sequence
                          order within a head (cuda_attention.cu); read once at creation */
    long attn_hx_runs; /* short-sequence attention launches in head order (the op tests
                          check the switch took; vnp_backend_cuda_attn_heads_first) */
    int attn_hpb;      /* heads a block of short-sequence attention takes in head order:
                          1 (default), 2, 4 or 8 (VIRNUCPRO_DEBUG_ATTN_HEADS; more than one
                          copies the next head's rows while computing this one's, for
                          sequences of at most 128 tokens); read once at creation */
    long attn_db_runs; /* launches with the two buffers (vnp_backend_cuda_attn_heads_first) */
    int attn_warps;    /* warps a block of short-sequence attention takes for sequences of at
                          most 64 tokens: 0 (default: 2 up to 32 tokens, else 4), 2 or 4
                          (VIRNUCPRO_DEBUG_ATTN_WARPS; 2 never with more than one head a
                          block); read once at creation */
    long attn_w2_runs; /* launches with two warps a block (vnp_backend_cuda_attn_heads_first) */
    int ln_packed;     /* 1 (default): LayerNorm's warp kernel holds rows without a residual
                          as loaded, not as floats (fewer registers, the same bits); 0 with
                          VIRNUCPRO_DEBUG_LN_ROWS=floats; read once at creation */
    int scalar_only;   /* VIRNUCPRO_DEBUG_SCALAR_KERNELS=1: the element-wise ops and
                          LayerNorm take their one-element-per-thread kernels and
                          attention its tiled kernel for short sequences too (A/B timing
                          and op tests of both paths); read once at creation */
    int cc;            /* compute capability, major * 10 + minor */
    int gemm_picks;    /* VIRNUCPRO_DEBUG_GEMM_PICKS=1: GEMMs the fixed table names take its
                          algorithm instead of cuBLASLt's heuristic's first (cuda_gemm.cu;
                          opt-in until measured end to end); read once at creation */
    int sms;           /* streaming multiprocessors (the sm_90 GEMM's persistent grid) */
    int sm90_gemm;     /* the sm_90a GEMM (sm90/cuda_gemm_sm90.cu) where built, on compute
                          capability 9.0, without VIRNUCPRO_DEBUG_SCALAR_KERNELS=1, as
                          VIRNUCPRO_DEBUG_SM90_GEMM says: 1 (unset: the default, the only
                          level that measured at least as fast as cuBLASLt end to end), the
                          FFN up-projections with their GELU; 2, every encoder linear; 0,
                          none (the portable path); 0 also when its clusters do not fit on
                          the GPU (probed at creation); read once at creation */
    int sm90_cm, sm90_cn; /* the sm_90 GEMM's cluster: cm x cn CTAs share W's / x's tiles
                          through TMA multicast (VIRNUCPRO_DEBUG_SM90_CLUSTER, "2x1" by
                          default); read once at creation */
    int sm90_wide;     /* the sm_90 GEMM's tiles: 1, 128 x 256 where W's rows allow (the
                          default); 0, always 128 x 128 (VIRNUCPRO_DEBUG_SM90_TILE);
                          read once at creation */
    int sm90_offload;  /* the epilogues (bit 1 << VNP_SM90_GELU, 1 << VNP_SM90_GATED) that
                          in 128 x 256 tiles run on the producer warpgroup's spare warps
                          while the consumers go on (variant 2 of sm90/cuda_gemm_sm90.cu);
                          the others on the consumers. Default: the GELU one only (ESM-2's
                          fc1 +2.3 %; DNABERT-S's gated one was 5 % slower there, bench/
                          RESULTS.md session 14); VIRNUCPRO_DEBUG_SM90_EPILOGUE=warps both,
                          =consumers and =interleaved neither; read once at creation */
    int sm90_inter;    /* the epilogues (same bits) that in 128 x 256 tiles the consumers
                          finish chunk by chunk during their next tile's main loop
                          (variant 3) where they are not offloaded. Default: the gated one
                          (DNABERT-S's up-projection 614 TFLOP/s against 546 on the
                          consumers, ESM-2's fc1 603 against 695 on the warps; session
                          17); VIRNUCPRO_DEBUG_SM90_EPILOGUE=interleaved both; read once at
                          creation */
    int sm90_clusters[4][3]; /* clusters of 1, 2, 4 CTAs that fit at once, per kernel
                          variant (0: not asked yet) */
    unsigned sm90_attr; /* the sm_90 kernels whose shared-memory size was raised (bits) */
    long sm90_gemms;   /* GEMMs run by the sm_90 kernel (vnp_backend_cuda_sm90_gemms) */
    long sm90_clustered; /* those of them in clusters of more than one CTA */
    int sm90_grid;     /* CTAs in the last sm_90 GEMM's persistent grid */
    long sm90_wide_run; /* sm_90 GEMMs run in 128 x 256 tiles */
    long sm90_offload_run; /* those of them with the epilogue on the epilogue warps */
    long sm90_inter_run; /* those with the epilogue interleaved with the next main loop */
    int fp8;           /* 0; 1: E4M3 GEMMs with per-channel weight scales; 2: per-tensor */
    vnp_cuda_f8w *f8w; /* the FP8 weights uploaded, with their scales */
    int nf8w, capf8w;
    vnp_cuda_q8a *q8a; /* the GEMM input buffers in E4M3 (alloc_gemm_in) */
    int nq8a, capq8a;
    int fp8_unfused;   /* VIRNUCPRO_DEBUG_FP8_UNFUSED=1: alloc_gemm_in gives FP16 buffers,
                          so every FP8 GEMM quantises its input itself (the A/B timing and
                          the op tests' reference); read once at creation */
    int fp8_fast_accum; /* 1: cuBLASLt's FAST_ACCUM for the FP8 GEMMs (no periodic
                          promotion of the tensor cores' sums to FP32; a shape without such
                          a kernel keeps the promotion); VIRNUCPRO_DEBUG_FP8_PROMOTE=1: 0,
                          for A/B timing and accuracy; read once at creation */
    unsigned char *f8x; /* the current FP8 GEMM's quantised activations [M, K] */
    size_t f8x_bytes;
    float *f8s;        /* and their per-token scales [M] */
    size_t f8s_bytes;
    void *scratch;     /* GEMM temporaries, conversions */
    size_t scratch_bytes;
    float *rope;       /* cos | sin tables for rotary, [max_len][head_dim/2] each */
    size_t rope_floats;
    vnp_cuda_gemm_plan plans[VNP_CUDA_PLANS];
    unsigned long long clock;
    /* Debug switch VIRNUCPRO_DEBUG_POISON_BATCH=N: the N-th batch (0-based count of
     * guard_reset calls, i.e. of batches on this backend) gets a NaN in its pooled
     * output (the first value that the batch's first mean_pool writes), so the guard
     * and the FP32 recompute can be tested. Reduced precision only, unless
     * VIRNUCPRO_DEBUG_POISON_FP32=1, which poisons every batch of an FP32 backend too. */
    long poison_batch; /* -1: off */
    int poison_fp32;
    long batches;
    int poison_pending;
} vnp_cuda;

static inline vnp_cuda *vnp_cuda_of(vnp_backend *be) { return (vnp_cuda *)be->impl; }

/* The one check of a CUDA runtime or cuBLASLt call's result: evaluates to VNP_OK, or
 * sets err and evaluates to VNP_ENOMEM (out of GPU memory) / VNP_EDEVICE, the message
 * naming the call as written, its file:line and the device `dev` ("cuda:N"; < 0: none).
 * Never aborts. The call is the macro's argument as written (tests/backend/
 * cuda_discipline.sh checks that of every cudaSetDevice, memset and cuBLASLt attribute
 * set). */
#define VNP_CUDA_CHECK(call, dev, err)                                                             \
    vnp_cuda_status((call), (dev), #call, __FILE__, __LINE__, (err))
vnp_code vnp_cuda_status(cudaError_t e, int dev, const char *expr, const char *file, int line,
                         vnp_error *err);
vnp_code vnp_cuda_status(cublasStatus_t s, int dev, const char *expr, const char *file, int line,
                         vnp_error *err);
/* cudaGetLastError() after a kernel launch, naming the kernel. */
vnp_code vnp_cuda_check_launch(const char *kernel, vnp_error *err);
/* Grows a scratch allocation of c to at least `bytes`; the old one is freed once the
 * kernels queued on c->stream (which may read it) have run. */
vnp_code vnp_cuda_reserve(vnp_cuda *c, void **ptr, size_t *have, size_t bytes, const char *what,
                          vnp_error *err);
size_t vnp_cuda_dtype_size(vnp_dtype dt);
int vnp_cuda_is_float(vnp_dtype dt);

/* Element-wise conversion between float dtypes on the device (n elements). */
vnp_code vnp_cuda_convert(vnp_cuda *c, const void *src, vnp_dtype sdt, void *dst, vnp_dtype ddt,
                          size_t n, vnp_error *err);

/* FP8 (cuda_fp8.cu): rows of src [rows, K] (any float dtype) to E4M3 q with one scale
 * per row, or one for all rows (per_tensor), written to scale[rows]; and the per-token
 * quantisation of FP16 activations x [M, K]. Queued on c->stream. */
vnp_code vnp_cuda_fp8_quantize_rows(vnp_cuda *c, const void *src, vnp_dtype sdt,
                                      int rows, int K, int per_tensor,
                                      unsigned char *q, float *scale, vnp_error *err);
vnp_code vnp_cuda_fp8_quantize_act(vnp_cuda *c, const void *x, int M, int K,
                                     unsigned char *q, float *scale, vnp_error *err);
/* What a quantising writer computes for element j of a row before it rounds it to FP16
 * and quantises it: the row as it is, erf GELU of it (the fc1 output), or gelu(a_j) *
 * a_{K+j} over a row of 2K (DNABERT-S's gated GELU). */
typedef enum vnp_q8_op { VNP_Q8_COPY = 0, VNP_Q8_GELU = 1, VNP_Q8_GATED = 2 } vnp_q8_op;
/* Rows of FP16 x [M, K] (ld 2K for GATED) through `op`, each rounded to FP16 (a
 * non-finite one marks the guard word, except for COPY) and quantised with its row's
 * scale into q [M, K] / scale [M]: the bits of the op's FP16 kernel followed by
 * vnp_cuda_fp8_quantize_act. */
vnp_code vnp_cuda_fp8_quantize_op(vnp_cuda *c, vnp_q8_op op, const void *x, int M, int K,
                                  unsigned char *q, float *scale, vnp_error *err);
/* The GEMM input buffer that p points into at a whole row (*row0 that row), or NULL. */
const vnp_cuda_q8a *vnp_cuda_q8a_of(const vnp_cuda *c, const void *p, size_t *row0);
/* The FP8 GEMM input behind `out` for M rows of width K, checked: its bytes and scales
 * at out's first row; the error names `op`. */
vnp_code vnp_cuda_q8a_target(const vnp_cuda *c, const vnp_buf *out, int M, int K, const char *op,
                             unsigned char **q, float **scale, vnp_error *err);

/* The scales of an FP8 weight buffer (NULL when w is not one). */
const vnp_cuda_f8w *vnp_cuda_f8w_of(const vnp_cuda *c, const void *q);

/* Ops, one translation unit each. */
vnp_code vnp_cuda_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                            int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                            vnp_error *err);
vnp_code vnp_cuda_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                         vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                         vnp_error *err);
void vnp_cuda_gemm_release(vnp_cuda *c);
/* The sm_90a GEMM (sm90/cuda_gemm_sm90.cu; present when VNP_HAVE_SM90A), x [M, K], W
 * [N, K], all in dt (FP16/BF16), with its epilogue: GELU, out [M, N] = gelu(x W^T +
 * bias); GATED, out [M, N/2] = gelu(a) * g where [a | g] = x W^T + bias ([M, N]); LINEAR,
 * out [M, N] = x W^T + bias + res (res NULL or [M, N], may be out). fits says whether the
 * shape and the buffers' alignment allow it (else: the portable path). */
enum { VNP_SM90_GELU = 0, VNP_SM90_GATED = 1, VNP_SM90_LINEAR = 2 };
/* Whether the byte ranges [a, a + an) and [b, b + bn) share a byte. */
static inline int vnp_cuda_overlap(const void *a, size_t an, const void *b, size_t bn)
{
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}
int vnp_cuda_gemm_sm90_fits(int epi, int N, int K, const void *x, const void *w,
                            const void *bias, const void *out);
vnp_code vnp_cuda_gemm_sm90(vnp_cuda *c, int epi, vnp_dtype dt, const void *x, const void *w,
                            const void *bias, const void *res, void *out, int M, int N, int K,
                            vnp_error *err);
/* Whether the sm_90 GEMM's clusters (the configured shape and its fallbacks, both tile
 * widths) fit on c's GPU: asked once, at backend creation, when the kernel is on. */
vnp_code vnp_cuda_gemm_sm90_probe(vnp_cuda *c, vnp_error *err);
vnp_code vnp_cuda_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                            const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                            vnp_buf *out, vnp_error *err);
vnp_code vnp_cuda_gated_gelu(vnp_backend *be, const vnp_buf *x, int M, int I, vnp_buf *out,
                             vnp_error *err);
/* Whether vnp_cuda_linear_gated_gelu runs widths I, K in one pass (its tmp unused) */
int vnp_cuda_linear_gated_gelu_fused(const vnp_backend *be, int I, int K);
vnp_code vnp_cuda_linear_gated_gelu(vnp_backend *be, const vnp_buf *x, const vnp_buf *w,
                                    const vnp_buf *bias, int M, int I, int K, vnp_buf *tmp,
                                    vnp_buf *out, vnp_error *err);
/* out[i] = act(y[i]) + (res ? res[i] : 0) over n elements, all of dtype dt (the
 * compute dtype, or F32 for an FP32 GEMM). */
vnp_code vnp_cuda_act_residual(vnp_cuda *c, vnp_dtype dt, const void *y, vnp_act act,
                               const void *res, void *out, size_t n, vnp_error *err);
vnp_code vnp_cuda_attention(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu_seqlens,
                            int nseq, int max_len, int T, const vnp_attn_desc *desc,
                            vnp_buf *out, vnp_error *err);
vnp_code vnp_cuda_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                            int nseq, vnp_buf *out, int ld, int col, vnp_error *err);
vnp_code vnp_cuda_gemm(vnp_backend *be, int transa, int transb, int M, int N, int K, float alpha,
                       const vnp_buf *a, const vnp_buf *b, float beta, vnp_buf *c_out,
                       vnp_error *err);
void vnp_cuda_sgemm_release(vnp_cuda *c);
vnp_code vnp_cuda_scale_shift(vnp_backend *be, const vnp_buf *x, const vnp_buf *scale,
                              const vnp_buf *shift, vnp_act act, int M, int N, vnp_buf *out,
                              vnp_error *err);
/* The classifier's training ops (cuda_train.cu); backend.h says what each computes. */
vnp_code vnp_cuda_bn_relu_dropout_fwd(vnp_backend *be, const vnp_buf *z, const vnp_buf *gamma,
                                      const vnp_buf *beta, const vnp_buf *keep, int B, int H,
                                      float eps, float momentum, float dropout,
                                      vnp_buf *running_mean, vnp_buf *running_var,
                                      vnp_buf *xhat, vnp_buf *r, vnp_buf *d, vnp_buf *invstd,
                                      vnp_error *err);
vnp_code vnp_cuda_bn_relu_dropout_bwd(vnp_backend *be, vnp_buf *dd, const vnp_buf *keep,
                                      const vnp_buf *r, const vnp_buf *xhat,
                                      const vnp_buf *invstd, const vnp_buf *gamma, int B, int H,
                                      float dropout, vnp_buf *dz, vnp_buf *dgamma,
                                      vnp_buf *dbeta, vnp_error *err);
vnp_code vnp_cuda_softmax_xent(vnp_backend *be, const vnp_buf *logits, const vnp_buf *y, int B,
                               vnp_buf *loss, vnp_buf *dl, vnp_error *err);
vnp_code vnp_cuda_col_sums(vnp_backend *be, const vnp_buf *m, int M, int N, vnp_buf *sums,
                           vnp_error *err);
vnp_code vnp_cuda_sgd_step(vnp_backend *be, vnp_buf *w, const vnp_buf *g, vnp_buf *buf,
                           size_t n, float lr, float mo, int first, vnp_error *err);

/* 1 when every pointer given is 16-byte aligned and n elements of size es make whole
 * 16-byte vectors (and the scalar kernels are not forced): the vectorised element-wise
 * kernels apply. NULL pointers pass. */
static inline int vnp_cuda_vec_ok(const vnp_cuda *cu, size_t n, size_t es, const void *a,
                                  const void *b, const void *c)
{
    return !cu->scalar_only && n % (16 / es) == 0 && ((uintptr_t)a % 16) == 0 && ((uintptr_t)b % 16) == 0 &&
           ((uintptr_t)c % 16) == 0;
}

/* ---- device helpers ---- */
#ifdef __CUDACC__
template <typename T> __device__ __forceinline__ float vnp_ld(const T v);
template <> __device__ __forceinline__ float vnp_ld<float>(const float v) { return v; }
template <> __device__ __forceinline__ float vnp_ld<__half>(const __half v)
{
    return __half2float(v);
}
template <> __device__ __forceinline__ float vnp_ld<__nv_bfloat16>(const __nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T> __device__ __forceinline__ T vnp_st(float v);
template <> __device__ __forceinline__ float vnp_st<float>(float v) { return v; }
template <> __device__ __forceinline__ __half vnp_st<__half>(float v)
{
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 vnp_st<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* Reads element i of a buffer whose float dtype is only known at run time
 * (biases, LayerNorm parameters, added rows): a warp-uniform branch. */
__device__ __forceinline__ float vnp_ld_any(const void *p, int dt, size_t i)
{
    if (dt == VNP_DT_F16)
        return __half2float(((const __half *)p)[i]);
    if (dt == VNP_DT_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

/* 16-byte vectors: 8 halves / 8 bfloat16 / 4 floats per load or store, the width at
 * which an element-wise pass runs at HBM speed. p must be 16-byte aligned
 * (vnp_cuda_vec_ok). */
template <typename T> struct vnp_vec {
    static constexpr int N = 16 / (int)sizeof(T);
};

/* One 16-byte vector's values as floats (exact). */
template <typename T> __device__ __forceinline__ void vnp_unpack_vec(const uint4 &u, float *f)
{
    const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int k = 0; k < vnp_vec<T>::N; k++)
        f[k] = vnp_ld<T>(e[k]);
}

template <typename T> __device__ __forceinline__ void vnp_ld_vec(const T *p, float *f)
{
    vnp_unpack_vec<T>(*reinterpret_cast<const uint4 *>(p), f);
}

/* Rounds f to T and stores it; returns 1 when a stored value is NaN or Inf. */
template <typename T> __device__ __forceinline__ int vnp_st_vec(T *p, const float *f)
{
    uint4 u;
    T *e = reinterpret_cast<T *>(&u);
    int bad = 0;
#pragma unroll
    for (int k = 0; k < vnp_vec<T>::N; k++) {
        e[k] = vnp_st<T>(f[k]);
        bad |= !isfinite(vnp_ld<T>(e[k]));
    }
    *reinterpret_cast<uint4 *>(p) = u;
    return bad;
}

/* Rounds eight floats to FP16 and back in place, two a conversion (what a writer that
 * stored them as FP16 would have stored); returns 1 when one of them is NaN or Inf. */
__device__ __forceinline__ int vnp_round_h8(float *v)
{
    int bad = 0;
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
        const float2 f = __half22float2(__float22half2_rn(make_float2(v[e], v[e + 1])));
        v[e] = f.x;
        v[e + 1] = f.y;
        bad |= !isfinite(f.x) | !isfinite(f.y);
    }
    return bad;
}

__device__ __forceinline__ float vnp_gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

/* E4M3 quantisation, the CPU emulation's rule (src/core/precision.c, vnp_fp8_scale and
 * vnp_fp8_quantize): a block's scale s = amax / 448 (1 for amax 0, FLT_MIN when the
 * quotient is smaller; fmaxf leaves NaNs out of amax), its reciprocal r = 1 / s rounded
 * once, then e4m3(x * r), nearest even, saturating. Every step is one IEEE-rounded
 * operation, so the GPU and the CPU emulation give the same bytes; a multiply per value
 * instead of a division (the writers of FP8 GEMM inputs are bound by instruction issue). */
__device__ __forceinline__ float vnp_q8_scale(float amax)
{
    const float s = __fdiv_rn(amax, VNP_E4M3_MAX);
    return s >= FLT_MIN ? s : (amax > 0.0f ? FLT_MIN : 1.0f);
}

__device__ __forceinline__ float vnp_q8_inv(float s) { return __frcp_rn(s); }

__device__ __forceinline__ unsigned char vnp_q8(float x, float r)
{
    return (unsigned char)__nv_cvt_float_to_fp8(__fmul_rn(x, r), __NV_SATFINITE, __NV_E4M3);
}

/* Eight values quantised with reciprocal scale r, stored as 8 bytes at p (8-byte
 * aligned); two values a conversion (one instruction on sm_89 and later). */
__device__ __forceinline__ void vnp_q8_st8(unsigned char *p, const float *f, float r)
{
    uint2 u;
    unsigned short *h = reinterpret_cast<unsigned short *>(&u);
#pragma unroll
    for (int e = 0; e < 8; e += 2)
        h[e / 2] = (unsigned short)__nv_cvt_float2_to_fp8x2(
            make_float2(__fmul_rn(f[e], r), __fmul_rn(f[e + 1], r)), __NV_SATFINITE, __NV_E4M3);
    *reinterpret_cast<uint2 *>(p) = u;
}
#endif

#endif
