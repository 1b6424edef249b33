/* The small interface the models are written against. The CPU backend
 * (src/backend/cpu) is the reference; the CUDA backend (src/backend/cuda)
 * implements the same ops. All activations are packed variable-length
 * sequences: a [T, H] row-major matrix of T tokens, with cu_seqlens giving
 * where each sequence starts. No padding anywhere. */
#ifndef VNP_BACKEND_H
#define VNP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/model.h"
#include "virnucpro/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer in the backend's memory (host for CPU, device for CUDA). Models
 * also pass views of a buffer's rows (ptr advanced by whole rows, n reduced;
 * see vnp_buf_rows in src/model): ops must accept them; free_buf is never
 * called on a view. */
typedef struct vnp_buf {
    void *ptr;
    vnp_dtype dtype; /* F32 / F16 / BF16 for activations and weights, I32 for ids */
    size_t n;        /* elements */
} vnp_buf;

/* An ordering point in a backend's queue (opaque; a no-op on the CPU). */
typedef struct vnp_event vnp_event;

/* Guard word bits. */
#define VNP_GUARD_NONFINITE 1u
#define VNP_GUARD_BAD_TOKEN 2u
#define VNP_GUARD_BAD_SHAPE 4u

typedef enum vnp_act {
    VNP_ACT_NONE = 0,
    VNP_ACT_GELU_ERF, /* 0.5 x (1 + erf(x / sqrt 2)) */
    VNP_ACT_RELU
} vnp_act;

typedef enum vnp_posenc {
    VNP_POS_NONE = 0,
    VNP_POS_ROTARY, /* ESM-2: rotate_half over all head dims, positions from 0 per sequence */
    VNP_POS_ALIBI   /* DNABERT-S: score += slope[h] * -|i - j| */
} vnp_posenc;

typedef struct vnp_attn_desc {
    int heads;
    int head_dim;
    float scale;          /* multiplies q.k (head_dim^-0.5); with ROTARY the CPU reference
                           * scales q before rotating it, as fair-esm rounds */
    vnp_posenc pos;
    const vnp_buf *inv_freq; /* ROTARY: [head_dim/2] float32, as stored in the checkpoint */
    const vnp_buf *slopes;   /* ALIBI: [heads] float32 */
} vnp_attn_desc;

/* What a weight given to upload_weight is for, so that a backend knows how it may
 * store it (a reduced precision is a choice inside the backend: an FP8 backend
 * quantises GEMM operands, not tables). */
typedef enum vnp_weight_kind {
    VNP_WEIGHT_VECTOR = 0, /* LayerNorm parameters, added rows: F32 */
    VNP_WEIGHT_GEMM = 1,   /* the W of linear, PyTorch [out, in] layout */
    VNP_WEIGHT_TABLE = 2,  /* an embedding table read by embedding */
    VNP_WEIGHT_BIAS = 3    /* the bias of a linear whose W is a GEMM weight: stored in that
                            * GEMM's output dtype (the compute dtype), converted once here */
} vnp_weight_kind;

/* The device a backend computes on (be->device, filled when the backend is made). */
typedef enum vnp_device_kind {
    VNP_DEVICE_CPU = 0,
    VNP_DEVICE_CUDA = 1
} vnp_device_kind;

typedef struct vnp_device {
    vnp_device_kind kind;
    int index;              /* cuda:N's N; 0 for the CPU */
    char name[256];         /* the GPU's name ("NVIDIA H200"); "CPU" */
    int cc_major, cc_minor; /* CUDA compute capability; 0.0 on the CPU */
    size_t mem_total;       /* bytes of device memory; the host's physical memory on the CPU */
} vnp_device;

typedef struct vnp_backend_ops {
    const char *name;
    void (*destroy)(vnp_backend *be);

    /* ---- memory ---- */
    /* Activations: allocated in the backend's compute dtype (F32 on CPU; F16/BF16/F32 on CUDA). */
    vnp_code (*alloc_act)(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err);
    /* F32 whatever the compute dtype (pooled features, the classifier's activations). */
    vnp_code (*alloc_f32)(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err);
    vnp_code (*alloc_i32)(vnp_backend *be, size_t n, vnp_buf *out, vnp_error *err);
    /* rows x K activations that only linear() reads (as its x, with this K) after
     * layernorm, linear or gated_gelu wrote them (as out, of width K). The backend may
     * keep them in its GEMM input format, so that the writer quantises and linear does
     * not: an FP8 backend stores E4M3 rows with one scale per row (dtype U8), bit for bit
     * what it would have quantised in linear. Views of whole rows work. NULL (or a
     * backend without such a format): an alloc_act of rows * K. */
    vnp_code (*alloc_gemm_in)(vnp_backend *be, size_t rows, size_t K, vnp_buf *out,
                              vnp_error *err);
    /* A weight tensor converted to what the backend computes with, as its role asks
     * (vnp_weight_kind): GEMM operands, embedding tables and GEMM biases may be stored
     * in the compute dtype (F16/BF16), other vectors (LayerNorm) are kept F32. */
    vnp_code (*upload_weight)(vnp_backend *be, const vnp_tensor *t, vnp_weight_kind kind,
                              vnp_buf *out, vnp_error *err);
    /* Plain float32 host array -> backend buffer of F32 (inv_freq, slopes). */
    vnp_code (*upload_f32)(vnp_backend *be, const float *src, size_t n, vnp_buf *out,
                           vnp_error *err);
    /* Copies n ids into dst, a buffer from alloc_i32 with at least n entries (reused
     * batch after batch; the copy is ordered after earlier ops that read it). From
     * host_alloc memory the copy is queued (asynchronous); from other memory it is done
     * before the call returns. */
    vnp_code (*upload_i32)(vnp_backend *be, const int32_t *src, size_t n, vnp_buf *dst,
                           vnp_error *err);
    vnp_code (*download_f32)(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                             vnp_error *err);
    void (*free_buf)(vnp_backend *be, vnp_buf *buf);

    /* ---- ops (queued on a device; download_f32 waits for them) ---- */
    /* out[i,:] = (table[ids[i],:] + add_row) * scale ; add_row may be NULL. The model
     * has checked every id against its vocabulary. */
    vnp_code (*embedding)(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                          int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                          vnp_error *err);
    /* out[M,N] = act(x[M,K] W[N,K]^T + bias[N]) + residual[M,N]; bias, residual may be
     * NULL; out may alias residual. W is in PyTorch nn.Linear layout. x, W, out (and
     * residual) are all in the compute dtype, or all F32: then the GEMM runs in FP32
     * whatever the compute dtype (the classifier; W from upload_f32 or an F32 upload).
     * The bias is a VNP_WEIGHT_BIAS upload for the first, an F32 one for the second. */
    vnp_code (*linear)(vnp_backend *be, const vnp_buf *x, const vnp_buf *w, const vnp_buf *bias,
                       vnp_act act, const vnp_buf *residual, int M, int N, int K, vnp_buf *out,
                       vnp_error *err);
    /* out = LayerNorm(x + residual) * gamma + beta over rows of width H (statistics in FP32);
     * residual may be NULL; out may alias x. */
    vnp_code (*layernorm)(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                          const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                          vnp_buf *out, vnp_error *err);
    /* out[M,inter] = gelu_erf(x[M, :inter]) * x[M, inter:2*inter]. (The parameter is not
     * named I: OpenBLAS's cblas.h pulls in <complex.h>, which defines I.) */
    vnp_code (*gated_gelu)(vnp_backend *be, const vnp_buf *x, int M, int inter, vnp_buf *out,
                           vnp_error *err);
    /* Optional (NULL: linear, then gated_gelu): out[M, inter] = gated_gelu(x[M,K] W^T +
     * bias) with W [2*inter, K] and bias [2*inter] or NULL: the up-projection and its
     * gated GELU in one pass where the backend has a kernel for it, else through tmp
     * [M, 2*inter] (compute dtype) as the two ops would. out is what gated_gelu's out
     * may be (a GEMM input buffer included). */
    vnp_code (*linear_gated_gelu)(vnp_backend *be, const vnp_buf *x, const vnp_buf *w,
                                  const vnp_buf *bias, int M, int inter, int K, vnp_buf *tmp,
                                  vnp_buf *out, vnp_error *err);
    /* Optional (NULL: 0): 1 when linear_gated_gelu runs widths inter and K in one pass on
     * buffers this backend allocated, weights of the compute dtype: its tmp is then unused
     * and may be empty (callers need not allocate it). */
    int (*linear_gated_gelu_fused)(const vnp_backend *be, int inter, int K);
    /* qkv[T, 3*heads*head_dim] (q | k | v, heads contiguous inside each) -> out[T, heads*head_dim].
     * cu_seqlens is a device i32 buffer of nseq+1 entries; max_len bounds any sequence. Softmax
     * in FP32. Positions restart at 0 at each sequence's first token. */
    vnp_code (*attention)(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu_seqlens,
                          int nseq, int max_len, int T, const vnp_attn_desc *desc, vnp_buf *out,
                          vnp_error *err);
    /* Mean pooling into an F32 buffer: out[s * ld + col + j] = mean over rows
     * ranges[s] .. ranges[nseq + s] (absolute rows of x, end exclusive) of x[row, j], summed
     * in FP32 (the CPU in PyTorch's cascade order). ranges is an I32 backend buffer of
     * 2 * nseq entries (begins, then ends); out an F32 buffer (alloc_f32) of at least
     * nseq * ld entries, col + H <= ld. A range outside x or empty sets the guard's
     * bad-shape bit (and leaves its row unwritten) instead of reading past x. */
    vnp_code (*mean_pool)(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                          int nseq, vnp_buf *out, int ld, int col, vnp_error *err);
    /* out[M,N] = act(x[M,N] * scale[N] + shift[N]) over F32 buffers (an eval-mode
     * BatchNorm folded to a scale and shift, then ReLU); out may alias x. */
    vnp_code (*scale_shift)(vnp_backend *be, const vnp_buf *x, const vnp_buf *scale,
                            const vnp_buf *shift, vnp_act act, int M, int N, vnp_buf *out,
                            vnp_error *err);

    /* c[M,N] = alpha * op(a) op(b) + beta * c over F32 buffers, row-major: op(a) is
     * a[M,K], or a[K,M] transposed when transa; op(b) is b[K,N], or b[N,K] transposed
     * when transb (the classifier's training: weight and input gradients). NULL on a
     * backend without it. */
    vnp_code (*gemm)(vnp_backend *be, int transa, int transb, int M, int N, int K, float alpha,
                     const vnp_buf *a, const vnp_buf *b, float beta, vnp_buf *c, vnp_error *err);

    /* ---- the classifier's training (train mode, one batch of B rows, hidden width H;
     * every buffer in the backend's memory; NULL on a backend without them) ---- */
    /* A buffer of n values of dt (F32, F64 or U8). */
    vnp_code (*alloc_dt)(vnp_backend *be, vnp_dtype dt, size_t n, vnp_buf *out, vnp_error *err);
    /* Copies n values of dst's dtype from host memory into dst (ordered after the ops
     * queued before; done when the call returns), or from src into host memory (waits
     * for the ops queued before). */
    vnp_code (*copy_in)(vnp_backend *be, const void *src, size_t n, vnp_buf *dst,
                        vnp_error *err);
    vnp_code (*copy_out)(vnp_backend *be, const vnp_buf *src, size_t n, void *dst,
                         vnp_error *err);
    /* BatchNorm1d in train mode, then ReLU, then dropout, over z[B,H] (F32): per column
     * the batch mean and biased variance accumulated in double, invstd[j] = 1 / sqrt(var +
     * eps) (F64 [H], kept for the backward), xhat = (z - mean) invstd, r = relu(z a + c)
     * with a = (float)invstd gamma, c = beta - mean a, d = keep ? r / (1 - p) : 0 (keep U8
     * [B,H], p = dropout); running_mean <- (1 - m) running_mean + m mean, running_var <-
     * (1 - m) running_var + m var B / (B - 1) (m = momentum), as PyTorch. B >= 2. */
    vnp_code (*bn_relu_dropout_fwd)(vnp_backend *be, const vnp_buf *z, const vnp_buf *gamma,
                                    const vnp_buf *beta, const vnp_buf *keep, int B, int H,
                                    float eps, float momentum, float dropout,
                                    vnp_buf *running_mean, vnp_buf *running_var, vnp_buf *xhat,
                                    vnp_buf *r, vnp_buf *d, vnp_buf *invstd, vnp_error *err);
    /* Its backward from dd = dLoss/dd [B,H] (overwritten with dLoss/dy): through dropout
     * and ReLU, then dz = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) (sums in
     * double), dgamma = sum dy xhat, dbeta = sum dy. */
    vnp_code (*bn_relu_dropout_bwd)(vnp_backend *be, vnp_buf *dd, const vnp_buf *keep,
                                    const vnp_buf *r, const vnp_buf *xhat,
                                    const vnp_buf *invstd, const vnp_buf *gamma, int B, int H,
                                    float dropout, vnp_buf *dz, vnp_buf *dgamma,
                                    vnp_buf *dbeta, vnp_error *err);
    /* Mean softmax cross-entropy of logits[B,2] (F32) against labels y (U8, 0/1): loss[0]
     * (F64) = mean over rows of logsumexp - logit[y] in double; dl[B,2] = (softmax -
     * onehot) / B. */
    vnp_code (*softmax_xent)(vnp_backend *be, const vnp_buf *logits, const vnp_buf *y, int B,
                             vnp_buf *loss, vnp_buf *dl, vnp_error *err);
    /* sums[j] = sum over the M rows of m[M,N] (F32), accumulated in double (bias
     * gradients). */
    vnp_code (*col_sums)(vnp_backend *be, const vnp_buf *m, int M, int N, vnp_buf *sums,
                         vnp_error *err);
    /* torch.optim.SGD (no dampening, no weight decay) on n F32 values: with momentum mo,
     * buf = g on the first step, else buf = mo buf + g, and g = buf; then w = w - lr g. */
    vnp_code (*sgd_step)(vnp_backend *be, vnp_buf *w, const vnp_buf *g, vnp_buf *buf, size_t n,
                         float lr, float mo, int first, vnp_error *err);

    /* ---- the device (be->device says which) ---- */
    /* Free and total bytes of the device's memory now (the CPU: available and physical
     * host memory). */
    vnp_code (*mem_info)(vnp_backend *be, size_t *free_bytes, size_t *total_bytes, vnp_error *err);
    /* Blocks until everything queued on this backend has run (its own queue: never a
     * wait for the whole device). VNP_EDEVICE when the device faulted. */
    vnp_code (*synchronize)(vnp_backend *be, vnp_error *err);

    /* ---- asynchronous batches ----
     * Ops are queued in order on the backend's one stream (the CPU runs them at once).
     * Host memory from host_alloc (pinned on CUDA) is what copies may read or write
     * asynchronously; it must stay untouched until an event recorded after the copy has
     * been waited for. */
    vnp_code (*host_alloc)(vnp_backend *be, size_t bytes, void **out, vnp_error *err);
    void (*host_free)(vnp_backend *be, void *p);
    /* Queues the copy of n F32 elements of src (an F32 buffer) into dst (host_alloc
     * memory); done when a later event is. */
    vnp_code (*download_f32_async)(vnp_backend *be, const vnp_buf *src, size_t n, float *dst,
                                   vnp_error *err);
    vnp_code (*event_create)(vnp_backend *be, vnp_event **out, vnp_error *err);
    void (*event_free)(vnp_backend *be, vnp_event *ev);
    /* Marks the current end of the queue. */
    vnp_code (*event_record)(vnp_backend *be, vnp_event *ev, vnp_error *err);
    /* Blocks the calling thread until everything queued before the record has run.
     * VNP_EDEVICE (naming the device and the CUDA error) when the device faulted. */
    vnp_code (*event_wait)(vnp_backend *be, vnp_event *ev, vnp_error *err);

    /* ---- numeric guard ----
     * A guard word of VNP_GUARD_* bits that kernels set: NaN/Inf in an output, a token
     * id outside the table, a bad shape/range. */
    /* Queues clearing the guard word. */
    void (*guard_reset)(vnp_backend *be);
    /* Queues a copy of the guard word into *dst (host_alloc memory). */
    vnp_code (*guard_save)(vnp_backend *be, uint32_t *dst, vnp_error *err);
} vnp_backend_ops;

struct vnp_backend {
    const vnp_backend_ops *ops;
    vnp_precision prec;
    int threads;
    char name[64];
    vnp_device device;
    void *impl;
};

/* The guard word's meaning: VNP_OK when clean; VNP_ENUMERIC for NaN/Inf alone (the
 * caller may recompute in FP32); VNP_EINVAL for a bad token or shape (a bug or a
 * corrupt batch, never retried in FP32). `where` names the device and batch. */
vnp_code vnp_backend_guard_code(uint32_t word, const char *where, vnp_error *err);
/* Synchronous guard check of everything queued so far: saves, waits, decodes (tests,
 * one-batch callers). VNP_EDEVICE when the device faulted. */
vnp_code vnp_backend_guard_check(vnp_backend *be, vnp_error *err);
/* Devices of a kind this process can use, without making a backend: 1 CPU; the visible
 * CUDA GPUs (0 without the CUDA backend or without a usable driver). */
int vnp_device_count(vnp_device_kind kind);
/* What device `index` of `kind` is (name, memory, compute capability). */
vnp_code vnp_device_query(vnp_device_kind kind, int index, vnp_device *out, vnp_error *err);

/* Constructors (implemented in cpu/ and cuda/). */
vnp_code vnp_backend_cpu_create(int threads, vnp_backend **out, vnp_error *err); /* FP32 */
/* The same computing in `prec`: other than FP32, the CPU emulates it (values rounded
 * where the GPU rounds them; docs/PRECISION.md). */
vnp_code vnp_backend_cpu_create_emulating(int threads, vnp_precision prec, vnp_backend **out,
                                          vnp_error *err);
/* The BLAS library the CPU backend runs on, as it describes itself (OpenBLAS's
 * openblas_get_config(): version, build options, core). */
const char *vnp_backend_cpu_blas(void);
/* The CPU as a vnp_device (its model name from /proc/cpuinfo where there is one). */
void vnp_backend_cpu_device(vnp_device *out);
#ifdef VNP_HAVE_CUDA
vnp_code vnp_backend_cuda_create(int device, vnp_precision prec, vnp_backend **out,
                                 vnp_error *err);
/* cuda_device.cu: the visible GPUs, one described, and the compute-capability gate:
 * VNP_OK when `archs` (a CMake CUDA architecture list, "80;86;89;90" or comma-separated)
 * has code that runs on dev, or cannot tell ("native"); else VNP_EUNSUPPORTED naming the
 * GPU, its capability and what was compiled. */
int vnp_backend_cuda_count(void);
vnp_code vnp_backend_cuda_query(int index, vnp_device *out, vnp_error *err);
vnp_code vnp_backend_cuda_arch_check(const char *archs, const vnp_device *dev, vnp_error *err);
/* cuda_gemm.cu: how many of be's current GEMM plans took their algorithm from the fixed
 * table (not the heuristic): for the GPU op tests. */
int vnp_backend_cuda_gemm_picked(vnp_backend *be);
/* How many GEMMs this CUDA backend has run through the sm_90a GEMM (0 where it is not
 * built, not a 9.0 GPU, or switched off), and, where not NULL, how many of those ran in
 * clusters of more than one CTA (`clustered`), in 128 x 256 tiles (`wide`), of those with
 * the GELU epilogue on the epilogue warps (`offloaded`) or interleaved with the next
 * tile's main loop (`interleaved`), and the CTAs of the last one's persistent grid
 * (`grid`): the op tests check which path ran and print the grid beside timings. */
long vnp_backend_cuda_sm90_gemms(vnp_backend *be, long *clustered, long *wide, long *offloaded,
                                 long *interleaved, int *grid);
/* cuda_attention.cu: how many short-sequence attention launches of this backend put a
 * sequence's heads in neighbouring blocks (VIRNUCPRO_DEBUG_ATTN_GRID), and, where not
 * NULL, how many launches copied a block's next head beside its compute
 * (`double_buffered`, VIRNUCPRO_DEBUG_ATTN_HEADS) and how many ran two warps a block
 * (`two_warps`, VIRNUCPRO_DEBUG_ATTN_WARPS): for the op tests. */
long vnp_backend_cuda_attn_heads_first(vnp_backend *be, long *double_buffered, long *two_warps);
#endif

#ifdef __cplusplus
}
#endif
#endif
