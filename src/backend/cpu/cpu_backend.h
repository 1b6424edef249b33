/* Internals of the CPU backend shared by its op files. Activations and
 * weights are plain float32 host arrays; OpenBLAS (attention, training) and our own
 * matmul (linear layers) run single-threaded inside our own worker pool so that one
 * threading model governs every op. */
#ifndef VNP_CPU_BACKEND_H
#define VNP_CPU_BACKEND_H

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_pool.h"
#include "virnucpro/precision.h"

/* A weight uploaded as a GEMM operand by an emulating backend (see cpu_emulate.c). */
typedef struct vnp_cpu_gemm_weight {
    const float *w; /* the buffer's data: values of the GEMM format (E4M3 unscaled) */
    float *scale;   /* E4M3: [rows] dequantisation scales (equal when per tensor); else NULL */
    size_t rows;
} vnp_cpu_gemm_weight;

/* ---- the batch-invariant matmul of linear() (cpu_matmul.c) ---- */
typedef struct vnp_cpu_matmul_kernel vnp_cpu_matmul_kernel;
/* The kernel named `want` ("generic", "avx", "avx2", "avx512"; an error when unknown or
 * when this CPU lacks its instructions), or with want NULL or empty the fastest this CPU
 * runs. Kernels of one family (fused or not) give the same bits. */
vnp_code vnp_cpu_matmul_select(const char *want, const vnp_cpu_matmul_kernel **out,
                               vnp_error *err);
const char *vnp_cpu_matmul_name(const vnp_cpu_matmul_kernel *k);
/* 1: each product element is a chain of fused multiply-adds; 0: of rounded products added */
int vnp_cpu_matmul_fused(const vnp_cpu_matmul_kernel *k);
/* Floats of scratch one vnp_cpu_matmul_nt call needs (whatever the shapes). */
size_t vnp_cpu_matmul_scratch(void);
/* out[r][c] = sum over k of x[r][k] w[c][k] for r < rows, c < cols (row-major, leading
 * dimensions ldx, ldw, ldo), each element one chain over k = 0..K-1 from +0 (fused or not,
 * as the kernel), so a row's result depends on nothing but that row and w. out holds
 * partial sums between K blocks: it must not overlap x or w. */
void vnp_cpu_matmul_nt(const vnp_cpu_matmul_kernel *kern, const float *x, size_t ldx, int rows,
                       const float *w, size_t ldw, int cols, int K, float *out, size_t ldo,
                       float *scratch);

typedef struct vnp_cpu {
    vnp_cpu_pool *pool;
    int nthreads;
    /* linear()'s matmul kernel, chosen at creation (VIRNUCPRO_CPU_KERNEL forces one) */
    const vnp_cpu_matmul_kernel *matmul;
    /* Reduced-precision emulation (--precision fp16|bf16|fp8 on the CPU): NULL for FP32,
     * the default, whose ops are untouched. act is what activations are rounded to
     * (VNP_FMT_F32 when not emulating). */
    const vnp_precision_info *emu;
    vnp_numfmt act;
    /* The weights uploaded as GEMM operands while emulating: linear() emulates the
     * reduced GEMM for these and runs any other W (the classifier's) in FP32, as the GPU
     * does. Like everything of a backend, used from one thread at a time (its owner's:
     * uploads, free_buf and linear all run there; pool workers never read it). */
    vnp_cpu_gemm_weight *gw;
    size_t ngw, capgw;
    /* Emulation scratch of linear(), grown by the calling thread: E4M3 activations and
     * their per-row scales, and a rounded copy of the current GEMM's bias. */
    float *xq, *xs, *bias;
    size_t xq_cap, xs_cap, bias_cap;
    /* The guard word: VNP_GUARD_* bits that ops OR in (from any worker) and
     * guard_reset clears. */
    _Atomic uint32_t guard;
    /* one growable float scratch area per worker, grown by the calling thread
     * before a loop starts (workers never allocate) */
    float **scratch;
    size_t *scratch_cap;
} vnp_cpu;

static inline vnp_cpu *vnp_cpu_of(vnp_backend *be) { return (vnp_cpu *)be->impl; }

/* ORs VNP_GUARD_* bits into the guard word (safe from any worker). */
static inline void vnp_cpu_guard_set(vnp_cpu *c, uint32_t bits)
{
    atomic_fetch_or(&c->guard, bits);
}

/* Makes every worker's scratch hold at least n floats. */
vnp_code vnp_cpu_reserve_scratch(vnp_cpu *c, size_t n, vnp_error *err);
/* Grows *p (64-byte aligned floats, *cap of them) to at least n floats; the contents
 * are not kept. */
vnp_code vnp_cpu_reserve(float **p, size_t *cap, size_t n, const char *what, vnp_error *err);

/* ---- reduced-precision emulation (cpu_emulate.c) ---- */
/* Stores a weight uploaded as `kind` in the emulated format: a GEMM weight rounded to the
 * GEMM format (E4M3: quantised per output channel or per tensor, and remembered with
 * its scales), a table rounded to the activation format. buf holds its F32 values. */
vnp_code vnp_cpu_emulate_weight(vnp_cpu *c, vnp_weight_kind kind, vnp_buf *buf, size_t rows,
                                size_t cols, vnp_error *err);
/* Forgets a GEMM weight about to be freed. */
void vnp_cpu_emulate_forget(vnp_cpu *c, const void *ptr);
/* The GEMM weight entry of w, or NULL (not emulated: an FP32 GEMM). */
const vnp_cpu_gemm_weight *vnp_cpu_emulated_gemm(const vnp_cpu *c, const void *w);

/* The ops, one file per kind. */
vnp_code vnp_cpu_linear(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                        vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                        vnp_error *err);
vnp_code vnp_cpu_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                           const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                           vnp_buf *out, vnp_error *err);
vnp_code vnp_cpu_attention(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu_seqlens,
                           int nseq, int max_len, int T, const vnp_attn_desc *desc, vnp_buf *out,
                           vnp_error *err);
vnp_code vnp_cpu_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                           int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                           vnp_error *err);
vnp_code vnp_cpu_gated_gelu(vnp_backend *be, const vnp_buf *x, int M, int inter, vnp_buf *out,
                            vnp_error *err);
vnp_code vnp_cpu_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                           int nseq, vnp_buf *out, int ld, int col, vnp_error *err);
vnp_code vnp_cpu_scale_shift(vnp_backend *be, const vnp_buf *x, const vnp_buf *scale,
                             const vnp_buf *shift, vnp_act act, int M, int N, vnp_buf *out,
                             vnp_error *err);

vnp_code vnp_cpu_gemm(vnp_backend *be, int transa, int transb, int M, int N, int K, float alpha,
                      const vnp_buf *a, const vnp_buf *b, float beta, vnp_buf *c, vnp_error *err);

/* The classifier's training ops (cpu_train.c); backend.h says what each computes. */
vnp_code vnp_cpu_bn_relu_dropout_fwd(vnp_backend *be, const vnp_buf *z, const vnp_buf *gamma,
                                     const vnp_buf *beta, const vnp_buf *keep, int B, int H,
                                     float eps, float momentum, float dropout,
                                     vnp_buf *running_mean, vnp_buf *running_var, vnp_buf *xhat,
                                     vnp_buf *r, vnp_buf *d, vnp_buf *invstd, vnp_error *err);
vnp_code vnp_cpu_bn_relu_dropout_bwd(vnp_backend *be, vnp_buf *dd, const vnp_buf *keep,
                                     const vnp_buf *r, const vnp_buf *xhat,
                                     const vnp_buf *invstd, const vnp_buf *gamma, int B, int H,
                                     float dropout, vnp_buf *dz, vnp_buf *dgamma,
                                     vnp_buf *dbeta, vnp_error *err);
vnp_code vnp_cpu_softmax_xent(vnp_backend *be, const vnp_buf *logits, const vnp_buf *y, int B,
                              vnp_buf *loss, vnp_buf *dl, vnp_error *err);
vnp_code vnp_cpu_col_sums(vnp_backend *be, const vnp_buf *m, int M, int N, vnp_buf *sums,
                          vnp_error *err);
vnp_code vnp_cpu_sgd_step(vnp_backend *be, vnp_buf *w, const vnp_buf *g, vnp_buf *buf,
                          size_t n, float lr, float mo, int first, vnp_error *err);

/* Non-zero when any of x[0..n) is NaN or infinite (exponent bits all ones);
 * an integer OR-reduction, so the loop vectorises. */
static inline unsigned vnp_cpu_nonfinite_bits(const float *x, size_t n)
{
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        acc |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return acc;
}

/* erf GELU as torch.nn.GELU(approximate='none'). */
static inline float vnp_gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

#endif
