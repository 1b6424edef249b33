/* The encoders' linear layers for Hopper (sm_90a), with what follows them fused: out =
 * gelu(x W^T + b) (ESM-2's fc1), gelu(a) * g with [a | g] = x W^T + b (DNABERT-S's
 * gated GELU), or x W^T + b (+ residual, in place) for the others, in one kernel instead
 * of cuBLASLt's GEMM and an element-wise pass over its output.
 *
 * Why a GEMM of our own: cuBLASLt's GELU epilogue is the tanh approximation (both
 * models use erf), and the erf GELU is about as bound by instruction issue as by
 * memory, so it is only free when it runs while the tensor cores work on something
 * else. Here one CTA has three warpgroups: a producer that streams 64-wide K blocks of
 * x and W through TMA into a ring of shared-memory stages, and two consumers that take
 * output tiles in turn. While one consumer runs its tile's wgmma main loop, the other
 * finishes its previous tile (bias, erf GELU, rounding, stores), so the epilogue's
 * arithmetic overlaps the MMAs ("ping-pong").
 *
 * Numerics are the unfused path's: FP32 accumulation, bias added in FP32, the sum
 * rounded to the compute dtype (what the GEMM would store), GELU of that in FP32,
 * rounded once more. A non-finite output marks the guard word.
 *
 * Compiled for sm_90a only (wgmma and setmaxnreg are Hopper's own instructions); the
 * backend calls it on compute capability 9.0 and keeps cuBLASLt + the element-wise
 * kernels as the portable path beside it (cuda_gemm.cu, cuda_pointwise.cu). */
#include <cuda.h>
#include <cudaTypedefs.h>

#include "backend/cuda/cuda_internal.cuh"
#include "virnucpro/error.h"

/* (the epilogues, VNP_SM90_GELU / _GATED / _LINEAR, are in cuda_internal.cuh) */
#define SM90_BM 128    /* rows of x per tile (two m64 halves) */
#define SM90_BK 64     /* K per stage: 128 bytes of FP16, one 128-byte swizzle row */
#define SM90_GROUP_M 16 /* tiles walk 16 row tiles before the next column tile (L2 reuse) */
/* Four variants (WIDE, a template parameter of the kernel):
 * 0: 128 x 128 tiles, the two consumers take turns on whole tiles (ping-pong: one's
 *    epilogue overlaps the other's main loop); two m64n128k16 wgmmas per k16; 7 stages.
 * 1: 128 x 256 tiles, the two consumers share each tile, 64 rows each (cooperative: the
 *    epilogue does not overlap the MMAs); one m64n256k16 per consumer and k16; 4 stages.
 *    Per 128 x 256 x 16 it reads 20 KB of shared memory and has TMA write 12 KB, against
 *    24 and 16 KB for the same work in 128 x 128 tiles: shared memory, not the tensor
 *    cores, bounded the narrow tile at ~70 % (ncu, session 12).
 * 2: 1 with the GELU / gated GELU epilogue moved off the consumers (GELU and gated only):
 *    they add the bias, round to T and write the tile into a shared-memory buffer, then
 *    go on to the next tile's main loop at once; warps 1-3 of the producer warpgroup
 *    (idle in 0 and 1) take the GELU, the gate and the global stores from there, each
 *    row's outputs one contiguous warp store, while the tensor cores work on the next
 *    tile. In ESM-2 3B's fc1 the
 *    consumers' epilogue is ~20 % of a tile's time (the erf GELU of 32768 values and
 *    64 KB of stores against a 22 us main loop; session 13's in-place profile: 565
 *    TFLOP/s against cuBLASLt's 747 for the plain fc2).
 *    The buffer holds half a tile (32 KB), so the ring keeps variant 1's 4 stages. (A
 *    whole tile's 64 KB left room for 3, and fc1 ran at 674 TFLOP/s against cuBLASLt's
 *    769 for the same GEMM without the GELU, session 14: the shallower ring was the
 *    suspect.) A tile goes through it in two halves: at the end of its main loop the
 *    consumers write the first half and keep the second in registers, packed (32 a
 *    thread), and write that halfway through the next tile's main loop, by when the
 *    epilogue warps have long finished the first.
 *    By default only the GELU epilogue (ESM-2's fc1) takes variant 2: there it is +2.3 %
 *    end to end over variant 1, while DNABERT-S's gated one (K = 768: a tile's main loop
 *    is a third of fc1's) ran 5 % slower than in variant 1 (session 14).
 * 3: 1 with the GELU / gated GELU epilogue interleaved with the consumers' next main loop:
 *    at the end of a tile each consumer thread rounds its sums (+ bias) to T and keeps
 *    them packed (64 registers), starts the next tile at once, and finishes the packed
 *    tile in chunks, one in each of the first K steps, between the issue of the step's
 *    wgmmas and the wait for the previous step's. The default for the gated GELU:
 *    DNABERT-S's up-projection at 614 TFLOP/s against 547 in variant 1, +4 % end to end;
 *    ESM-2's fc1 was slower here (604 against 695 in variant 2; session 17).
 *    Two other forms were measured and dropped: 16-byte stores, each quad's pairs traded
 *    by shuffles (the same speed gated, 16 % slower on fc1; session 18); and one copy of
 *    the chunk code, the chunk's words taken out by a branch, the chunks spread over
 *    long K loops (2.4 k instructions against this form's 14 k on fc1, where 16 % of the
 *    stall samples were instruction fetch): gated 1.03x the consumers' epilogue where
 *    this form was 1.12x, DNABERT-S 2.5 % slower end to end, fc1 still 6 % below
 *    variant 2 (session 19). */
#define SM90_BN(W) ((W) ? 256 : 128)
#define SM90_STAGES(W) ((W) ? 4 : 7) /* as deep as the 227 KB hold */
#define SM90_STAGE_BYTES(W) ((SM90_BM + SM90_BN(W)) * SM90_BK * 2)
/* the offload buffer: 128 rows of 128 values of T (256 bytes). A row's 16-byte chunk k
 * lies at chunk k ^ (row % 8): the consumers' fragment-order stores (rows 8 apart in
 * row % 8, 4 column pairs of one chunk a warp instruction) then fall in 32 different
 * banks, and a row is still one 256-byte run for the epilogue warps' loads. */
#define SM90_EPI_ROW 256
#define SM90_EPI_BYTES(W) ((W) == 2 ? SM90_BM * SM90_EPI_ROW : 0)
#define SM90_SMEM(W) (SM90_STAGES(W) * SM90_STAGE_BYTES(W) + SM90_EPI_BYTES(W) + 1024 + 256)
#define SM90_EPI_WARPS 3 /* the producer warpgroup's warps 1-3 */

/* ---- device side: compiled only where the sm_90a instructions exist ---- */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VNP_SM90_DEVICE 1
#endif

#ifdef VNP_SM90_DEVICE
static __device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
                 : "memory");
}

static __device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

/* One arrival on the barrier at the same offset in CTA `cta` of the cluster (this one
 * included). The stage's reads it hands back are the wgmmas', already waited for
 * (wgmma.wait_group), so the default semantics (release at CTA scope) are enough, as in
 * CUTLASS's cluster barrier. Not .release.cluster: ptxas makes that a MEMBAR.ALL.GPU
 * before every arrival, which drains the previous tile's global stores at every K block
 * and halved the kernel's speed (measured, session 12). */
static __device__ __forceinline__ void mbar_arrive_cluster(uint32_t bar, uint32_t cta)
{
    asm volatile("{\n\t.reg .b32 ra;\n\t"
                 "mapa.shared::cluster.u32 ra, %0, %1;\n\t"
                 "mbarrier.arrive.shared::cluster.b64 _, [ra];\n\t}" ::"r"(bar),
                 "r"(cta)
                 : "memory");
}

static __device__ __forceinline__ uint32_t cluster_rank()
{
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

/* Every thread of every CTA of the cluster: init/exit ordering across the cluster */
static __device__ __forceinline__ void cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release;\n\tbarrier.cluster.wait.acquire;" ::: "memory");
}

/* Waits until the phase of parity `parity` of the barrier has completed. */
static __device__ __forceinline__ void mbar_wait(uint32_t bar, unsigned parity)
{
    uint32_t done;
    do {
        asm volatile("{\n\t.reg .pred p;\n\t"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}

/* One 2-D TMA box (x = the K coordinate, y = the row) into shared memory, completing
 * on the barrier's transaction count. */
static __device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap *map, int x, int y,
                                                uint32_t bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
                 "l"((uint64_t)map), "r"(x), "r"(y), "r"(bar)
                 : "memory");
}

/* The same box written at the same shared-memory offset of every CTA of the cluster in
 * `mask`, each of their barriers at `bar`'s offset seeing the bytes. */
static __device__ __forceinline__ void tma_load_mc(uint32_t dst, const CUtensorMap *map, int x,
                                                   int y, uint32_t bar, uint16_t mask)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 ".multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;" ::"r"(dst),
                 "l"((uint64_t)map), "r"(x), "r"(y), "r"(bar), "h"(mask)
                 : "memory");
}

/* wgmma shared-memory descriptor of a K-major tile written by TMA with the 128-byte
 * swizzle: rows of 128 bytes, 8-row atoms 1024 bytes apart (stride byte offset), the
 * leading byte offset unused for this layout. Advancing K by 16 elements inside the
 * 128-byte row adds 32 bytes to the start address. */
static __device__ __forceinline__ uint64_t sdesc(uint32_t addr)
{
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

static __device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
static __device__ __forceinline__ void wg_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N> static __device__ __forceinline__ void wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
template <int N> static __device__ __forceinline__ void acc_fence(float (&d)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

#define VNP_WG_OUT                                                                                  \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                     \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "              \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "              \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define VNP_WG_R8(i)                                                                                \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]),   \
        "+f"(d[i + 6]), "+f"(d[i + 7])
#define VNP_WG_ARGS                                                                                 \
    VNP_WG_R8(0), VNP_WG_R8(8), VNP_WG_R8(16), VNP_WG_R8(24), VNP_WG_R8(32), VNP_WG_R8(40),        \
        VNP_WG_R8(48), VNP_WG_R8(56)

/* d[64x128] (+)= A[64x16] B[128x16]^T, both K-major in shared memory; scale_d 0
 * overwrites d. TY: the PTX type of A and B. */
#define VNP_WGMMA(TY)                                                                              \
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %66, 0;\n\t"                                \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " VNP_WG_OUT           \
                 ", %64, %65, p, 1, 1, 0, 0;\n\t}"                                                  \
                 : VNP_WG_ARGS                                                                     \
                 : "l"(da), "l"(db), "r"(scale_d))
#define VNP_WG_OUT256                                                                               \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                     \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "              \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "              \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "              \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "              \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "              \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "  \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, "   \
    "%127}"
#define VNP_WG_ARGS256                                                                              \
    VNP_WG_ARGS, VNP_WG_R8(64), VNP_WG_R8(72), VNP_WG_R8(80), VNP_WG_R8(88), VNP_WG_R8(96),       \
        VNP_WG_R8(104), VNP_WG_R8(112), VNP_WG_R8(120)
/* d[64x256] (+)= A[64x16] B[256x16]^T */
#define VNP_WGMMA256(TY)                                                                           \
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %130, 0;\n\t"                              \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " " VNP_WG_OUT256        \
                 ", %128, %129, p, 1, 1, 0, 0;\n\t}"                                               \
                 : VNP_WG_ARGS256                                                                  \
                 : "l"(da), "l"(db), "r"(scale_d))
template <typename T> struct wgmma_op;
template <> struct wgmma_op<__half> {
    static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, int scale_d)
    {
        VNP_WGMMA("f16");
    }
    static __device__ __forceinline__ void run(float (&d)[128], uint64_t da, uint64_t db, int scale_d)
    {
        VNP_WGMMA256("f16");
    }
};
template <> struct wgmma_op<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float (&d)[64], uint64_t da, uint64_t db, int scale_d)
    {
        VNP_WGMMA("bf16");
    }
    static __device__ __forceinline__ void run(float (&d)[128], uint64_t da, uint64_t db, int scale_d)
    {
        VNP_WGMMA256("bf16");
    }
};

/* Tile (rm, rn) of the cluster's tile t: its first row of x, the first rows of the two
 * BN/2-row halves of W it multiplies and its first output column. A cluster of cm x cn
 * CTAs takes cm x cn tiles at a time (the "macro" tile t of MT x NT); W rows [BN n,
 * BN n + BN), or, gated, [BN/2 n, + BN/2) (the GELU half) and [I + BN/2 n, ...) (the
 * gate). Macro tiles go down 16 row tiles before moving right. */
template <int BN>
static __device__ __forceinline__ void tile_at(int t, int MT, int NT, int cm, int cn, int rm,
                                               int rn, int gated, int I, int *m0, int *w0,
                                               int *w1, int *c0)
{
    const int G = SM90_GROUP_M / cm;
    const int group = t / (G * NT);
    const int first = group * G;
    const int gm = min(G, MT - first);
    const int in = t - group * G * NT;
    const int m = (first + in % gm) * cm + rm, n = (in / gm) * cn + rn;
    *m0 = m * SM90_BM;
    if (gated) {
        *w0 = n * (BN / 2);
        *w1 = I + n * (BN / 2);
        *c0 = n * (BN / 2);
    } else {
        *w0 = n * BN;
        *w1 = n * BN + BN / 2;
        *c0 = n * BN;
    }
}

template <typename T> static __device__ __forceinline__ float to_f(float v)
{
    return vnp_ld<T>(vnp_st<T>(v)); /* rounded to T as a GEMM that stores T would */
}

template <typename T> struct pair_of;
template <> struct pair_of<__half> {
    typedef __half2 type;
    static __device__ __forceinline__ __half2 make(float a, float b)
    {
        return __floats2half2_rn(a, b);
    }
    static __device__ __forceinline__ float2 back(__half2 h) { return __half22float2(h); }
};
template <> struct pair_of<__nv_bfloat16> {
    typedef __nv_bfloat162 type;
    static __device__ __forceinline__ __nv_bfloat162 make(float a, float b)
    {
        return __floats2bfloat162_rn(a, b);
    }
    static __device__ __forceinline__ float2 back(__nv_bfloat162 h) { return __bfloat1622float2(h); }
};

/* The smallest magnitude at which a float rounds to an infinite T: the midpoint between
 * T's largest finite value and the next power of two (a tie goes to the even neighbour,
 * and that is infinity). So |v| < limit holds exactly when the rounded value is finite,
 * NaN failing it too, without converting back. */
template <typename T> struct finite_limit;
template <> struct finite_limit<__half> {
    static __device__ __forceinline__ float get() { return 65520.0f; } /* 65504 + 16 */
};
template <> struct finite_limit<__nv_bfloat16> {
    static __device__ __forceinline__ float get() { return __uint_as_float(0x7F7F8000u); }
};

/* One consumer's epilogue for 64 rows from row0 of its tile, NA accumulators a thread
 * (the tile's width / 2): element r of thread (warp w, lane l) is row 16w + l/4 +
 * 8((r/2)%2), column 8(r/4) + 2(l%4) + r%2 (the wgmma D fragment); gated, the gate of
 * column c is column c + NA/4. The bias pairs of a batch of column groups are loaded
 * together ahead of the batch's arithmetic (one wait a batch, not one a group; DNABERT-S's
 * gated layers have no bias), and an output is tested for finiteness against T's rounding
 * limit before it is rounded. */
template <typename T, int EPI, int NA>
static __device__ __forceinline__ int epilogue(const float (&d)[NA], int row0, int M, int c0,
                                               int I, int ldo, const T *__restrict__ bias,
                                               const T *res, T *out)
{
    constexpr int GATED = EPI == VNP_SM90_GATED;
    constexpr int NJ = GATED ? NA / 8 : NA / 4; /* column groups of 8 (gated: GELU halves) */
    typedef typename pair_of<T>::type T2;
    const int lane = threadIdx.x & 31;
    const int r0 = row0 + ((threadIdx.x >> 5) & 3) * 16 + (lane >> 2);
    const int cq = 2 * (lane & 3);
    const float lim = finite_limit<T>::get();
    int bad = 0;
    /* column groups in batches of JB: the batch's bias pairs (columns c0 + 8 j + cq, and
     * their gates) loaded together first (zeros without a bias); smaller batches in the
     * ping-pong variant, whose other accumulator set is live meanwhile */
    constexpr int JB = NA == 64 ? 4 : 8;
    static_assert(NJ % JB == 0, "whole batches");
#pragma unroll
    for (int j0 = 0; j0 < NJ; j0 += JB) {
        T2 bv[JB], gv[GATED ? JB : 1];
#pragma unroll
        for (int k = 0; k < JB; k++) {
            const int c = c0 + 8 * (j0 + k) + cq;
            bv[k] = bias ? *(const T2 *)(bias + c) : pair_of<T>::make(0.0f, 0.0f);
            if constexpr (GATED)
                gv[k] = bias ? *(const T2 *)(bias + I + c) : pair_of<T>::make(0.0f, 0.0f);
        }
#pragma unroll
        for (int k = 0; k < JB; k++) {
            const int j = j0 + k;
            const int col = c0 + 8 * j + cq;
            const float2 b = pair_of<T>::back(bv[k]);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int r = r0 + 8 * h;
                float v0, v1;
                if (EPI == VNP_SM90_LINEAR) {
                    /* the GEMM's sum, its bias and the residual, rounded once (out may
                     * be res: each element is read and written by this thread alone) */
                    v0 = d[4 * j + 2 * h] + b.x;
                    v1 = d[4 * j + 2 * h + 1] + b.y;
                    if (res && r < M) {
                        const float2 rv =
                            pair_of<T>::back(*(const T2 *)(res + (size_t)r * ldo + col));
                        v0 += rv.x;
                        v1 += rv.y;
                    }
                } else {
                    v0 = vnp_gelu_erf(to_f<T>(d[4 * j + 2 * h] + b.x));
                    v1 = vnp_gelu_erf(to_f<T>(d[4 * j + 2 * h + 1] + b.y));
                }
                if constexpr (GATED) {
                    const float2 g = pair_of<T>::back(gv[k]);
                    v0 *= to_f<T>(d[4 * (j + NA / 8) + 2 * h] + g.x);
                    v1 *= to_f<T>(d[4 * (j + NA / 8) + 2 * h + 1] + g.y);
                }
                if (r < M) {
                    bad |= !(fabsf(v0) < lim) | !(fabsf(v1) < lim);
                    *(T2 *)(out + (size_t)r * ldo + col) = pair_of<T>::make(v0, v1);
                }
            }
        }
    }
    return bad;
}

/* Variant 2: a consumer's 64 rows of the tile (from row 64 cw), each accumulator plus its
 * bias rounded to T as the unfused GEMM would store it, packed in pairs (fragment order as
 * in epilogue() above) and split into the tile's two halves: the first (`now`) and the
 * second (`later`). GELU: half q is the tile's columns 128 q ... 128 q + 127. Gated: half q
 * is GELU columns 64 q ... 64 q + 63 with their gates (columns 128 + 64 q ...). Slot
 * 2 jj + h of a half: fragment column group jj (8 columns; gated, jj < 8 the GELU's,
 * jj >= 8 the gates'), row + 8 h. */
template <typename T, int EPI>
static __device__ __forceinline__ void pack_tile(const float (&d)[128], uint32_t (&now)[32],
                                                 uint32_t (&later)[32], int c0, int I,
                                                 const T *__restrict__ bias)
{
    constexpr int GATED = EPI == VNP_SM90_GATED;
    typedef typename pair_of<T>::type T2;
    const int cq = 2 * ((threadIdx.x & 31) & 3);
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const int col = 8 * j + cq; /* in the tile */
        float b0 = 0.0f, b1 = 0.0f;
        if (bias) {
            /* gated: columns 128.. are the gates, W rows (and bias entries) I + c0 + .. */
            const int bc = GATED && j >= 16 ? I + c0 + col - 128 : c0 + col;
            b0 = vnp_ld<T>(bias[bc]);
            b1 = vnp_ld<T>(bias[bc + 1]);
        }
        const int q = GATED ? (j % 16) / 8 : j / 16;
        const int jj = GATED ? (j / 16) * 8 + j % 8 : j % 16;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const T2 v = pair_of<T>::make(d[4 * j + 2 * h] + b0, d[4 * j + 2 * h + 1] + b1);
            if (q == 0)
                now[2 * jj + h] = *(const uint32_t *)&v;
            else
                later[2 * jj + h] = *(const uint32_t *)&v;
        }
    }
}

/* Variant 2: one half of a consumer's 64 rows (from pack_tile) into the buffer. */
static __device__ __forceinline__ void put_half(const uint32_t (&v)[32], unsigned char *buf,
                                                int cw)
{
    const int lane = threadIdx.x & 31;
    const int r0 = 64 * cw + ((threadIdx.x >> 5) & 3) * 16 + (lane >> 2); /* r0 % 8 = lane / 4 */
#pragma unroll
    for (int jj = 0; jj < 16; jj++)
#pragma unroll
        for (int h = 0; h < 2; h++)
            *(uint32_t *)(buf + (r0 + 8 * h) * SM90_EPI_ROW + ((jj ^ (lane >> 2)) << 4) +
                          4 * (lane & 3)) = v[2 * jj + h];
}

/* Variant 2, the epilogue warps' share of half q of a tile from the buffer. GELU of the
 * rounded sum and the gate's rounded sum, as epilogue() computes them; returns nonzero if
 * an output is not finite.
 * GELU (128 outputs a row): warp ew (0-2) takes rows ew, ew + 3, ...; its 32 lanes store
 * a row as one contiguous run, 4 outputs a lane.
 * Gated (64 outputs a row): warp ew takes the row pairs 2 ew, 2 ew + 6, ...; lanes 0-15
 * the pair's first row, 16-31 its second, 4 outputs a lane. (One row an iteration, 2
 * outputs a lane, left the warps too little independent work: each iteration waited out
 * its loads and the erf chain, and the consumers waited for the warps. Session 14's
 * run 4: DNABERT-S 5 % slower than with the epilogue on the consumers.) */
template <typename T, int EPI>
static __device__ __forceinline__ int epilogue_half(const unsigned char *buf, int ew, int m0,
                                                    int M, int c0, int q, int ldo, T *out)
{
    typedef typename pair_of<T>::type T2;
    const int lane = threadIdx.x & 31;
    int bad = 0;
    if constexpr (EPI == VNP_SM90_GATED) {
        /* bytes 8 hl ... 8 hl + 7 of the GELU values (half of chunk hl / 2), the same of
         * the gates (chunk 8 + hl / 2) */
        const int hl = lane & 15, k = hl >> 1, in = 8 * (hl & 1);
        for (int r2 = 2 * ew; r2 < SM90_BM && m0 + r2 < M; r2 += 2 * SM90_EPI_WARPS) {
            const int r = r2 + (lane >> 4);
            const unsigned char *row = buf + r * SM90_EPI_ROW;
            const int sw = r & 7; /* the chunk swizzle of this row */
            const uint2 a = *(const uint2 *)(row + ((k ^ sw) << 4) + in);
            const uint2 g = *(const uint2 *)(row + (((8 + k) ^ sw) << 4) + in);
            const T2 *ap = (const T2 *)&a, *gp = (const T2 *)&g;
            uint2 res;
            T2 *rp = (T2 *)&res;
            int rbad = 0;
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float2 av = pair_of<T>::back(ap[e]), gv = pair_of<T>::back(gp[e]);
                rp[e] = pair_of<T>::make(vnp_gelu_erf(av.x) * gv.x, vnp_gelu_erf(av.y) * gv.y);
                const float2 f = pair_of<T>::back(rp[e]);
                rbad |= !isfinite(f.x) | !isfinite(f.y);
            }
            if (m0 + r < M) { /* (the pair's second row may lie past the end) */
                bad |= rbad;
                *(uint2 *)(out + (size_t)(m0 + r) * ldo + c0 + 64 * q + 4 * hl) = res;
            }
        }
    } else {
        for (int r = ew; r < SM90_BM && m0 + r < M; r += SM90_EPI_WARPS) {
            const unsigned char *row = buf + r * SM90_EPI_ROW;
            const int sw = r & 7; /* the chunk swizzle of this row */
            /* bytes 8 lane ... 8 lane + 7: half of chunk lane / 2 */
            const uint2 a =
                *(const uint2 *)(row + (((lane >> 1) ^ sw) << 4) + 8 * (lane & 1));
            const T2 *ap = (const T2 *)&a;
            uint2 res;
            T2 *rp = (T2 *)&res;
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float2 av = pair_of<T>::back(ap[e]);
                rp[e] = pair_of<T>::make(vnp_gelu_erf(av.x), vnp_gelu_erf(av.y));
                const float2 f = pair_of<T>::back(rp[e]);
                bad |= !isfinite(f.x) | !isfinite(f.y);
            }
            *(uint2 *)(out + (size_t)(m0 + r) * ldo + c0 + 128 * q + 4 * lane) = res;
        }
    }
    return bad;
}
/* Variant 3: the bias pairs of a consumer's 64 x 256 part of a tile (fragment column
 * group j: columns c0 + 8 j + cq, + 1; gated, j >= 16 are the gates, bias entries I + c0
 * + 8 (j - 16) + cq), loaded while the tile's last wgmmas run; zeros without a bias. */
template <typename T, int EPI>
static __device__ __forceinline__ void load_bias32(typename pair_of<T>::type (&bv)[32], int c0,
                                                   int I, const T *__restrict__ bias)
{
    constexpr int GATED = EPI == VNP_SM90_GATED;
    const int cq = 2 * ((threadIdx.x & 31) & 3);
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const int bc = GATED && j >= 16 ? I + c0 + 8 * (j - 16) + cq : c0 + 8 * j + cq;
        bv[j] = bias ? *(const typename pair_of<T>::type *)(bias + bc)
                     : pair_of<T>::make(0.0f, 0.0f);
    }
}

/* Variant 3: each accumulator plus its bias rounded to T as the unfused GEMM would store
 * it, packed in pairs: slot 2 j + h holds fragment column group j (load_bias32), row
 * + 8 h. */
template <typename T>
static __device__ __forceinline__ void pack_rounded(const float (&d)[128],
                                                    const typename pair_of<T>::type (&bv)[32],
                                                    uint32_t (&pk)[64])
{
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const float2 b = pair_of<T>::back(bv[j]);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const typename pair_of<T>::type v =
                pair_of<T>::make(d[4 * j + 2 * h] + b.x, d[4 * j + 2 * h + 1] + b.y);
            memcpy(&pk[2 * j + h], &v, 4);
        }
    }
}

/* Variant 3: output pair 2 j + h of a chunk's words (finish_chunk: fragment column group
 * 2 c + j, row + 8 h), before its rounding: GELU of the rounded sum (gated: times the
 * rounded gate, word 4 + 2 j + h). */
template <typename T, int EPI>
static __device__ __forceinline__ float2 gelu_pair(const uint32_t (&pk)[8], int j, int h)
{
    typedef typename pair_of<T>::type T2;
    T2 a;
    memcpy(&a, &pk[2 * j + h], 4);
    const float2 av = pair_of<T>::back(a);
    float v0 = vnp_gelu_erf(av.x), v1 = vnp_gelu_erf(av.y);
    if constexpr (EPI == VNP_SM90_GATED) {
        T2 g;
        memcpy(&g, &pk[4 + 2 * j + h], 4);
        const float2 gv = pair_of<T>::back(g);
        v0 *= gv.x;
        v1 *= gv.y;
    }
    return make_float2(v0, v1);
}

/* Variant 3: chunk c of a tile packed by pack_rounded, finished while the consumers'
 * next main loop runs: its words taken out (fragment column groups 2 c and 2 c + 1 of
 * both rows, a[2 j + h] group 2 c + j, row + 8 h; gated, a[4 + 2 j + h] its gate, the
 * GELU's group + 16; c must be a constant once unrolled: pk is registers), GELU of the
 * rounded sum, the product with the rounded gate, a test against T's rounding limit,
 * the store. po: the output at the thread's first row and column (c0 + cq); ld8: 8
 * rows; rows: bit h set where row + 8 h is below M. A tile has 16 chunks (GELU) or 8
 * (gated). */
template <typename T, int EPI>
static __device__ __forceinline__ int finish_chunk(const uint32_t (&pk)[64], int c, T *po,
                                                   size_t ld8, int rows)
{
    typedef typename pair_of<T>::type T2;
    const float lim = finite_limit<T>::get();
    uint32_t a[8];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        a[i] = pk[4 * c + i];
        if constexpr (EPI == VNP_SM90_GATED)
            a[4 + i] = pk[32 + 4 * c + i];
    }
    int bad = 0;
#pragma unroll
    for (int jj = 0; jj < 2; jj++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const float2 v = gelu_pair<T, EPI>(a, jj, h);
            if (rows >> h & 1) {
                bad |= !(fabsf(v.x) < lim) | !(fabsf(v.y) < lim);
                *(T2 *)(po + h * ld8 + 8 * (2 * c + jj)) = pair_of<T>::make(v.x, v.y);
            }
        }
    return bad;
}

/* The cooperative variants' main-loop step for K block kb (the p-th stage use of this
 * CTA's ring), in two halves: issue waits for the stage and starts the consumer's four
 * m64n256k16 wgmmas on it; retire waits until the previous step's wgmmas are done and
 * hands that stage back to the CTAs that load it. Between them the consumer may do other
 * work while the tensor cores run (variants 2 and 3). */
template <typename T>
static __device__ __forceinline__ void coop_issue(float (&acc)[128], uint32_t full, uint32_t sa,
                                                  uint32_t sb, unsigned p, int kb, int cw)
{
    constexpr int NS = SM90_STAGES(1);
    const unsigned s = p % NS, ph = (p / NS) & 1;
    mbar_wait(full + 8 * s, ph);
    const uint32_t da = sa + s * (SM90_BM * SM90_BK * 2) + cw * 64 * SM90_BK * 2;
    const uint32_t db = sb + s * (SM90_BN(1) * SM90_BK * 2);
    acc_fence(acc);
    wg_fence();
#pragma unroll
    for (int k = 0; k < SM90_BK / 16; k++)
        wgmma_op<T>::run(acc, sdesc(da + 32 * k), sdesc(db + 32 * k), kb > 0 || k > 0);
    wg_commit();
}

static __device__ __forceinline__ void coop_retire(float (&acc)[128], uint32_t empty, unsigned p,
                                                   int kb, int peer, int lane)
{
    acc_fence(acc);
    wg_wait<1>();
    if (kb > 0 && peer)
        mbar_arrive_cluster(empty + 8 * ((p - 1) % SM90_STAGES(1)), lane);
}
#endif /* VNP_SM90_DEVICE */

/* The kernel. A cluster of cm x cn CTAs (cm, cn in {1, 2}; rank = rm + cm rn) computes
 * cm x cn neighbouring tiles at a time: the CTAs of one tile column (same rn) share W's
 * tile, those of one tile row (same rm) x's, so each CTA's producer loads 1/cm of the W
 * tile and 1/cn of the x tile and multicasts them to the CTAs that share it (2 x 1 cuts
 * a 128 x 128 tile's L2 reads from 32 KB a stage to 24, 2 x 2 to 16). A stage is free
 * again once the consumers of the CTAs it loads for, and that load for it (its tile row
 * and column), are done with it (empty[s] counts the consumer warps that read it, 4 or
 * 8 per CTA, x (cm + cn - 1)). x's boxes are 128 / cn rows, W's 64. */
template <typename T, int EPI, int WIDE>
__global__ void __launch_bounds__(384, 1)
    gemm_sm90_kernel(const __grid_constant__ CUtensorMap tx, const __grid_constant__ CUtensorMap tw,
                     const T *__restrict__ bias, const T *res, T *out, int M, int K, int I,
                     int ldo, int MT, int NT, int cm, int cn, int *flag)
{
    constexpr int GATED = EPI == VNP_SM90_GATED;
    constexpr int OFF = WIDE == 2; /* the epilogue on the producer warpgroup's warps 1-3 */
    static_assert(!OFF || EPI != VNP_SM90_LINEAR, "variant 2 is for the GELU epilogues");
    /* the epilogue interleaved with the consumers' next main loop, NCH chunks a tile */
    constexpr int INTER = WIDE == 3;
    static_assert(!INTER || EPI != VNP_SM90_LINEAR, "variant 3 is for the GELU epilogues");
    constexpr int NCH = GATED ? 8 : 16;
    constexpr int BN = SM90_BN(WIDE), NS = SM90_STAGES(WIDE);
    constexpr int NB = BN / 64;         /* W boxes of 64 rows per stage */
    constexpr int READERS = WIDE ? 8 : 4; /* consumer warps reading each stage of a CTA */
#ifdef VNP_SM90_DEVICE
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* the swizzled tiles want 1024-byte alignment (the same offset in every CTA: the
     * multicast writes there) */
    /* (an offset from smem_raw, not a pointer rounded through an integer: the compiler
     * then knows the buffer below is shared memory and uses STS/LDS, not generic
     * stores and loads) */
    unsigned char *smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
    const uint32_t sa = smem_u32(smem);                     /* x tiles */
    const uint32_t sb = sa + NS * SM90_BM * SM90_BK * 2;    /* W tiles */
    unsigned char *const ebuf = smem + NS * SM90_STAGE_BYTES(WIDE); /* variant 2 */
    const uint32_t bars = sa + NS * SM90_STAGE_BYTES(WIDE) + SM90_EPI_BYTES(WIDE);
    /* full[s]: stage s loaded; empty[s]: the consumers of the CTAs sharing its tiles are
     * done with it;
     * order[w]: consumer w may start its next main loop (the other one finished its own;
     * ping-pong only);
     * efull / eempty (variant 2): the consumers wrote half a tile into the buffer / the
     * epilogue warps have read it. */
    const uint32_t full = bars, empty = bars + 8 * NS, order = bars + 16 * NS;
    const uint32_t efull = order + 16, eempty = order + 24;
    const int wg = threadIdx.x / 128;
    const int KT = K / SM90_BK;
    const int cs = cm * cn;
    const int rank = (int)cluster_rank(), rm = rank % cm, rn = rank / cm;
    const int cid = blockIdx.x / cs, ncl = gridDim.x / cs;
    const int tiles = MT * NT;

    if (threadIdx.x == 0) {
        for (int s = 0; s < NS; s++) {
            mbar_init(full + 8 * s, 1);
            /* one arrival per consumer warp of each CTA sharing a tile row or column */
            mbar_init(empty + 8 * s, READERS * (cm + cn - 1));
        }
        mbar_init(order, 4); /* one arrival per warp of the other consumer */
        mbar_init(order + 8, 4);
        if (OFF) {
            mbar_init(efull, 256); /* every consumer thread (each releases its own stores) */
            mbar_init(eempty, 32 * SM90_EPI_WARPS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    cluster_sync(); /* every CTA's barriers exist before any multicast or remote arrival */

    if (wg == 0) { /* producer (thread 0), and in variant 2 the epilogue (warps 1-3) */
        /* variant 2: 56 + 2 x 224 = 504 registers a thread slot of the three warpgroups,
         * as the launch's 3 x 168 */
        if constexpr (OFF)
            asm volatile("setmaxnreg.dec.sync.aligned.u32 56;");
        else if constexpr (INTER)
            asm volatile("setmaxnreg.dec.sync.aligned.u32 24;");
        else
            asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            /* the CTAs sharing this one's x tile (same rm) and its W tile (same rn) */
            const uint16_t row_mask = (uint16_t)(cn == 2 ? (1u << rm) | (1u << (rm + cm)) : 0);
            const uint16_t col_mask =
                (uint16_t)(cm == 2 ? (1u << (cm * rn)) | (1u << (cm * rn + 1)) : 0);
            unsigned p = 0;
            for (int t = cid; t < tiles; t += ncl) {
                int m0, w0, w1, c0;
                tile_at<BN>(t, MT, NT, cm, cn, rm, rn, GATED, I, &m0, &w0, &w1, &c0);
                for (int kb = 0; kb < KT; kb++, p++) {
                    const unsigned s = p % NS, ph = (p / NS) & 1;
                    mbar_wait(empty + 8 * s, ph ^ 1);
                    mbar_expect_tx(full + 8 * s, SM90_STAGE_BYTES(WIDE));
                    const uint32_t da = sa + s * (SM90_BM * SM90_BK * 2);
                    const uint32_t db = sb + s * (BN * SM90_BK * 2);
                    const int k = kb * SM90_BK;
                    if (cn == 2) /* this CTA's 64 rows of the shared x tile */
                        tma_load_mc(da + rn * 64 * SM90_BK * 2, &tx, k, m0 + 64 * rn,
                                    full + 8 * s, row_mask);
                    else
                        tma_load(da, &tx, k, m0, full + 8 * s);
                    /* W's boxes: b < NB/2 from the first half's rows, the rest from the
                     * second's; in a 2 x 1 cluster each CTA loads half of them for both */
#pragma unroll
                    for (int b = 0; b < NB; b++) {
                        const int row = (b < NB / 2 ? w0 : w1) + 64 * (b % (NB / 2));
                        const uint32_t dst = db + b * 64 * SM90_BK * 2;
                        if (cm == 2) {
                            if (b / (NB / 2) == rm)
                                tma_load_mc(dst, &tw, k, row, full + 8 * s, col_mask);
                        } else {
                            tma_load(dst, &tw, k, row, full + 8 * s);
                        }
                    }
                }
            }
        }
        if constexpr (OFF) {
          if (threadIdx.x >= 32) {
            /* the tiles in the consumers' order: wait for each in the buffer, finish it,
             * hand the buffer back */
            const int ew = threadIdx.x / 32 - 1;
            int bad = 0;
            unsigned seq = 0;
            for (int t = cid; t < tiles; t += ncl) {
                int m0, w0, w1, c0;
                tile_at<BN>(t, MT, NT, cm, cn, rm, rn, GATED, I, &m0, &w0, &w1, &c0);
                for (int q = 0; q < 2; q++, seq++) { /* buffer fill seq: half q */
                    mbar_wait(efull, seq & 1);
                    bad |= epilogue_half<T, EPI>(ebuf, ew, m0, M, c0, q, ldo, out);
                    mbar_arrive(eempty);
                }
            }
            if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0)
                atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
          }
        }
        __syncwarp();
    } else if constexpr (WIDE) { /* cooperative: both consumers on every tile, 64 rows each */
        if constexpr (OFF)
            asm volatile("setmaxnreg.inc.sync.aligned.u32 224;");
        else if constexpr (INTER)
            asm volatile("setmaxnreg.inc.sync.aligned.u32 240;");
        else
            asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
        const int cw = wg - 1;
        const int lane = threadIdx.x & 31, leader = lane == 0;
        /* lane r of each warp hands stages back to CTA r of the cluster where that CTA
         * loads into this one's stages and this one into its (same tile row or column) */
        const int peer = lane < cs && (lane % cm == rm || lane / cm == rn);
        float acc[128];
#pragma unroll
        for (int i = 0; i < 128; i++)
            acc[i] = 0.0f; /* (each tile's first wgmma overwrites them) */
        int bad = 0;
        unsigned seq = 0;
        /* variant 2: the previous tile's second half (pack_tile), written into the buffer
         * halfway through this tile's main loop; fill counts the buffer's fills */
        uint32_t later[32];
        int pending = 0;
        unsigned fill = 0;
        /* variant 3: the previous tile packed (pack_rounded), finished chunk by chunk in
         * this tile's main loop (pending), its output at the thread's first row (po), 8
         * rows (ld8), which of its two rows exist (prows); bv: the tile's bias pairs */
        uint32_t pk[INTER ? 64 : 1];
        typename pair_of<T>::type bv[INTER ? 32 : 1];
        T *po = out;
        const size_t ld8 = (size_t)8 * ldo;
        int prows = 0;
        for (int t = cid; t < tiles; t += ncl, seq++) {
            int m0, w0, w1, c0;
            tile_at<BN>(t, MT, NT, cm, cn, rm, rn, GATED, I, &m0, &w0, &w1, &c0);
            unsigned p = seq * (unsigned)KT;
            if constexpr (INTER) {
                /* the previous tile's chunks, one in each of the first K blocks' steps
                 * (while their wgmmas run); with fewer K blocks than chunks, the rest
                 * after them */
#pragma unroll
                for (int ch = 0; ch < NCH; ch++)
                    if (ch < KT) {
                        coop_issue<T>(acc, full, sa, sb, p + ch, ch, cw);
                        if (pending)
                            bad |= finish_chunk<T, EPI>(pk, ch, po, ld8, prows);
                        coop_retire(acc, empty, p + ch, ch, peer, lane);
                    }
                for (int kb = NCH; kb < KT; kb++) {
                    coop_issue<T>(acc, full, sa, sb, p + kb, kb, cw);
                    coop_retire(acc, empty, p + kb, kb, peer, lane);
                }
                if (pending)
#pragma unroll
                    for (int ch = 0; ch < NCH; ch++)
                        if (ch >= KT)
                            bad |= finish_chunk<T, EPI>(pk, ch, po, ld8, prows);
                p += KT;
            } else {
                for (int kb = 0; kb < KT; kb++, p++) {
                    coop_issue<T>(acc, full, sa, sb, p, kb, cw);
                    if constexpr (OFF) {
                        /* (while the stage's wgmmas run) the epilogue warps are done
                         * with the first half: the second goes in */
                        if (pending && kb == KT / 2) {
                            mbar_wait(eempty, (fill & 1) ^ 1);
                            put_half(later, ebuf, cw);
                            mbar_arrive(efull);
                            fill++;
                            pending = 0;
                        }
                    }
                    coop_retire(acc, empty, p, kb, peer, lane);
                }
            }
            if constexpr (INTER) { /* this tile's bias pairs, while its last wgmmas run */
                load_bias32<T, EPI>(bv, c0, I, bias);
            }
            wg_wait<0>();
            acc_fence(acc);
            if (peer)
                mbar_arrive_cluster(empty + 8 * ((p - 1) % NS), lane);
            /* (the producer fills the ring with the next tile meanwhile) */
            if constexpr (INTER) {
                pack_rounded<T>(acc, bv, pk);
                const int r0 = m0 + 64 * cw + ((threadIdx.x >> 5) & 3) * 16 + (lane >> 2);
                po = out + (size_t)r0 * ldo + c0 + 2 * (lane & 3);
                prows = (r0 < M) | (r0 + 8 < M) << 1;
                pending = 1;
            } else if constexpr (OFF) {
                uint32_t now[32];
                pack_tile<T, EPI>(acc, now, later, c0, I, bias);
                /* the epilogue warps have read the previous fill out of the buffer */
                mbar_wait(eempty, (fill & 1) ^ 1);
                put_half(now, ebuf, cw);
                mbar_arrive(efull);
                fill++;
                pending = 1;
            } else {
                bad |= epilogue<T, EPI, 128>(acc, m0 + 64 * cw, M, c0, I, ldo, bias, res, out);
            }
        }
        if constexpr (OFF) {
            if (pending) { /* the last tile's second half */
                mbar_wait(eempty, (fill & 1) ^ 1);
                put_half(later, ebuf, cw);
                mbar_arrive(efull);
            }
        }
        if constexpr (INTER) {
            if (pending) { /* the last tile */
#pragma unroll
                for (int ch = 0; ch < NCH; ch++)
                    bad |= finish_chunk<T, EPI>(pk, ch, po, ld8, prows);
            }
        }
        if (__any_sync(0xffffffffu, bad) && leader)
            atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
    } else { /* ping-pong: the consumers take whole tiles in turn */
        static_assert(!WIDE, "the wide tile is cooperative");
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
        const int cw = wg - 1; /* this consumer: tiles cw, cw + 2, ... of this CTA's sequence */
        const int lane = threadIdx.x & 31, leader = lane == 0;
        const int peer = lane < cs && (lane % cm == rm || lane / cm == rn);
        float d0[64], d1[64];
#pragma unroll
        for (int i = 0; i < 64; i++)
            d0[i] = d1[i] = 0.0f; /* (each tile's first wgmma overwrites them) */
        int bad = 0;
        int n = 0; /* tiles this consumer has done */
        for (int seq = cw;; seq += 2, n++) {
            const int t = cid + seq * ncl;
            if (t >= tiles)
                break;
            int m0, w0, w1, c0;
            tile_at<BN>(t, MT, NT, cm, cn, rm, rn, GATED, I, &m0, &w0, &w1, &c0);
            /* main loops strictly alternate between the consumers: that keeps each one
             * within a ring round of the producer, which the parity waits need */
            if (seq > 0)
                mbar_wait(order + 8 * cw, (unsigned)(n - (cw == 0)) & 1);
            unsigned p = (unsigned)seq * (unsigned)KT;
            for (int kb = 0; kb < KT; kb++, p++) {
                const unsigned s = p % NS, ph = (p / NS) & 1;
                mbar_wait(full + 8 * s, ph);
                const uint32_t da = sa + s * (SM90_BM * SM90_BK * 2);
                const uint32_t db = sb + s * (BN * SM90_BK * 2);
                acc_fence(d0);
                acc_fence(d1);
                wg_fence();
#pragma unroll
                for (int k = 0; k < SM90_BK / 16; k++) {
                    const int sc = kb > 0 || k > 0;
                    wgmma_op<T>::run(d0, sdesc(da + 32 * k), sdesc(db + 32 * k), sc);
                    wgmma_op<T>::run(d1, sdesc(da + 64 * SM90_BK * 2 + 32 * k),
                                     sdesc(db + 32 * k), sc);
                }
                wg_commit();
                acc_fence(d0);
                acc_fence(d1);
                wg_wait<1>(); /* the previous stage's wgmmas are done: hand it back */
                if (kb > 0 && peer)
                    mbar_arrive_cluster(empty + 8 * ((p - 1) % NS), lane);
            }
            /* the other consumer's main loop may start */
            if (leader)
                mbar_arrive(order + 8 * (cw ^ 1));
            wg_wait<0>();
            acc_fence(d0);
            acc_fence(d1);
            if (peer)
                mbar_arrive_cluster(empty + 8 * ((p - 1) % NS), lane);
            bad |= epilogue<T, EPI, 64>(d0, m0, M, c0, I, ldo, bias, res, out);
            bad |= epilogue<T, EPI, 64>(d1, m0 + 64, M, c0, I, ldo, bias, res, out);
        }
        if (__any_sync(0xffffffffu, bad) && leader)
            atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
    }
    /* no CTA leaves while a peer may still arrive on its barriers */
    cluster_sync();
#endif
}

/* ---- host side ---- */

static PFN_cuTensorMapEncodeTiled_v12000 encode_fn(int dev, vnp_error *err, vnp_code *rc)
{
    /* looked up once; any thread may do it first, and all store the same pointer */
    static PFN_cuTensorMapEncodeTiled_v12000 fn;
    PFN_cuTensorMapEncodeTiled_v12000 f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (f)
        return f;
    void *p = NULL;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    *rc = VNP_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000,
                                                         cudaEnableDefault, &q),
                         dev, err);
#else
    *rc = VNP_CUDA_CHECK(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault,
                                                 &q),
                         dev, err);
#endif
    if (*rc)
        return NULL;
    if (q != cudaDriverEntryPointSuccess || !p) {
        *rc = vnp_fail(err, VNP_EDEVICE,
                       "cuda:%d: the driver has no cuTensorMapEncodeTiled (the sm_90 GEMM needs "
                       "a CUDA 12 or newer driver); update the driver, or set "
                       "VIRNUCPRO_DEBUG_SM90_GEMM=0 to use the portable kernels",
                       dev);
        return NULL;
    }
    f = (PFN_cuTensorMapEncodeTiled_v12000)p;
    __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    return f;
}

/* A row-major [rows, K] matrix as TMA boxes of 64 rows (W) or 128 / cn rows (x) by 64 K. */
static vnp_code tensor_map(PFN_cuTensorMapEncodeTiled_v12000 fn, CUtensorMap *map, const void *p,
                           CUtensorMapDataType dt, int rows, int K, int box_rows, int dev,
                           const char *what, vnp_error *err)
{
    cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows};
    cuuint64_t strides[1] = {(cuuint64_t)K * 2};
    cuuint32_t box[2] = {SM90_BK, (cuuint32_t)box_rows};
    cuuint32_t es[2] = {1, 1};
    CUresult r = fn(map, dt, 2, (void *)p, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return vnp_fail(err, VNP_EDEVICE,
                        "cuda:%d: cuTensorMapEncodeTiled failed (CUresult %d) for the sm_90 GEMM's "
                        "%s [%d x %d] at %p; set VIRNUCPRO_DEBUG_SM90_GEMM=0 to use the portable "
                        "kernels, and report this shape",
                        dev, (int)r, what, rows, K, p);
    return VNP_OK;
}

int vnp_cuda_gemm_sm90_fits(int epi, int N, int K, const void *x, const void *w,
                            const void *bias, const void *out)
{
    const int gated = epi == VNP_SM90_GATED;
    const int I = gated ? N / 2 : N;
    if (K <= 0 || K % SM90_BK || N <= 0 || (gated ? (N % 2 || I % 64) : N % SM90_BN(0)))
        return 0;
    /* TMA wants 16-byte aligned bases; the epilogue stores pairs */
    if ((uintptr_t)x % 16 || (uintptr_t)w % 16 || (uintptr_t)out % 4 || (uintptr_t)bias % 4)
        return 0;
    return 1;
}

template <typename T> struct pair_bf16 {
    static const int value = 0;
};
template <> struct pair_bf16<__nv_bfloat16> {
    static const int value = 1;
};

/* A failed cluster query or launch: the CUDA message, and what to do */
static vnp_code cluster_hint(vnp_code rc, const vnp_cuda *c, int cm, int cn, vnp_error *err)
{
    char was[sizeof err->msg];
    snprintf(was, sizeof was, "%s", err->msg);
    if (cm * cn == 1)
        return vnp_fail(err, rc,
                        "%s; in the sm_90 GEMM on cuda:%d: set VIRNUCPRO_DEBUG_SM90_GEMM=0 to "
                        "use the portable kernels",
                        was, c->device);
    return vnp_fail(err, rc,
                    "%s; in the sm_90 GEMM's clusters of %d x %d CTAs on cuda:%d: set "
                    "VIRNUCPRO_DEBUG_SM90_CLUSTER=1x1, or VIRNUCPRO_DEBUG_SM90_GEMM=0 to "
                    "use the portable kernels",
                    was, cm, cn, c->device);
}

/* The launch configuration of kernel <T, EPI, WIDE> in clusters of cs CTAs on c's stream,
 * its shared memory raised (once per kernel and backend), and how many such clusters fit
 * on the GPU at once in c->sm90_clusters (asked once per variant and cluster size: the
 * instances of a variant have the same shared memory and threads). */
template <typename T, int EPI, int WIDE>
static vnp_code configure(vnp_cuda *c, int cs, cudaLaunchConfig_t *cfg, cudaLaunchAttribute *at,
                          vnp_error *err)
{
    const unsigned bit = 1u << (6 * WIDE + 3 * pair_bf16<T>::value + EPI);
    vnp_code rc;
    if (!(c->sm90_attr & bit)) {
        rc = VNP_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<T, EPI, WIDE>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 SM90_SMEM(WIDE)),
                            c->device, err);
        if (rc)
            return rc;
        c->sm90_attr |= bit;
    }
    at->id = cudaLaunchAttributeClusterDimension;
    at->val.clusterDim.x = (unsigned)cs;
    at->val.clusterDim.y = 1;
    at->val.clusterDim.z = 1;
    *cfg = cudaLaunchConfig_t{};
    cfg->blockDim = dim3(384);
    cfg->dynamicSmemBytes = SM90_SMEM(WIDE);
    cfg->stream = c->stream;
    cfg->attrs = at;
    cfg->numAttrs = 1;
    const int ci = cs == 1 ? 0 : cs == 2 ? 1 : 2;
    if (!c->sm90_clusters[WIDE][ci]) {
        int n = 0;
        cfg->gridDim = dim3((unsigned)(c->sms / cs * cs));
        rc = VNP_CUDA_CHECK(
            cudaOccupancyMaxActiveClusters(&n, gemm_sm90_kernel<T, EPI, WIDE>, cfg),
            c->device, err);
        if (rc)
            return rc;
        if (n <= 0)
            return vnp_fail(err, VNP_EDEVICE,
                            "cuda:%d: no cluster of %d CTAs of the sm_90 GEMM (%s tiles%s, %d "
                            "KB of shared memory each) fits on this GPU",
                            c->device, cs, WIDE ? "128 x 256" : "128 x 128",
                            WIDE == 2   ? ", epilogue warps"
                            : WIDE == 3 ? ", interleaved epilogue"
                                        : "",
                            SM90_SMEM(WIDE) / 1024);
        c->sm90_clusters[WIDE][ci] = n;
    }
    return VNP_OK;
}

template <typename T, int EPI, int WIDE>
static vnp_code launch(vnp_cuda *c, const CUtensorMap &mx, const CUtensorMap &mw, const void *bias,
                       const void *res, void *out, int M, int K, int I, int mt, int nt, int cm,
                       int cn, vnp_error *err)
{
    const int cs = cm * cn;
    cudaLaunchAttribute at[1];
    cudaLaunchConfig_t cfg;
    vnp_code rc = configure<T, EPI, WIDE>(c, cs, &cfg, at, err);
    if (rc)
        return cluster_hint(rc, c, cm, cn, err);
    /* the persistent grid: as many clusters as fit at once, or as there are tiles */
    const int ci = cs == 1 ? 0 : cs == 2 ? 1 : 2;
    const int MT = (mt + cm - 1) / cm, NT = nt / cn;
    const int ncl = c->sm90_clusters[WIDE][ci] < MT * NT ? c->sm90_clusters[WIDE][ci] : MT * NT;
    cfg.gridDim = dim3((unsigned)(ncl * cs));
    rc = VNP_CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemm_sm90_kernel<T, EPI, WIDE>, mx, mw,
                                           (const T *)bias, (const T *)res, (T *)out, M, K, I, I,
                                           MT, NT, cm, cn, c->flag),
                        c->device, err);
    if (!rc)
        rc = vnp_cuda_check_launch(EPI == VNP_SM90_GATED ? "gemm_sm90 (gated GELU)"
                                   : EPI == VNP_SM90_GELU ? "gemm_sm90 (GELU)"
                                                          : "gemm_sm90",
                                   err);
    if (rc)
        rc = cluster_hint(rc, c, cm, cn, err);
    c->sm90_gemms += rc == VNP_OK; /* (launched ones only: the op tests count them) */
    c->sm90_clustered += rc == VNP_OK && cs > 1;
    c->sm90_wide_run += rc == VNP_OK && WIDE;
    c->sm90_offload_run += rc == VNP_OK && WIDE == 2;
    c->sm90_inter_run += rc == VNP_OK && WIDE == 3;
    if (!rc)
        c->sm90_grid = ncl * cs;
    return rc;
}

vnp_code vnp_cuda_gemm_sm90_probe(vnp_cuda *c, vnp_error *err)
{
    vnp_code rc0 = VNP_OK;
    if (!encode_fn(c->device, err, &rc0)) /* the driver's TMA descriptor encoder */
        return rc0;
    /* every cluster size the configured shape can fall back to, in 128 x 128 tiles (also
     * the wide tile's fallback) and, where asked for, 128 x 256 */
    const int sizes[3] = {1, c->sm90_cm, c->sm90_cm * c->sm90_cn};
    for (int i = 0; i < 3; i++) {
        cudaLaunchAttribute at[1];
        cudaLaunchConfig_t cfg;
        vnp_code rc = configure<__half, VNP_SM90_GELU, 0>(c, sizes[i], &cfg, at, err);
        if (!rc && c->sm90_wide)
            rc = configure<__half, VNP_SM90_GELU, 1>(c, sizes[i], &cfg, at, err);
        if (!rc && c->sm90_wide && c->sm90_offload) {
            /* the epilogue warps' variant has the most shared memory: where it does not
             * fit, the GELU epilogue stays on the consumers (variant 1, probed above) */
            vnp_error e2;
            if (configure<__half, VNP_SM90_GELU, 2>(c, sizes[i], &cfg, at, &e2)) {
                vnp_warn("cuda:%d: the sm_90 GEMM's epilogue warps do not fit here (%s); its "
                         "GELU epilogues run on the consumers",
                         c->device, e2.msg);
                c->sm90_offload = 0;
            }
        }
        if (rc)
            return cluster_hint(rc, c, sizes[i] == 1 ? 1 : c->sm90_cm,
                                sizes[i] == 1 ? 1 : sizes[i] / c->sm90_cm, err);
    }
    return VNP_OK;
}

vnp_code vnp_cuda_gemm_sm90(vnp_cuda *c, int epi, vnp_dtype dt, const void *x, const void *w,
                            const void *bias, const void *res, void *out, int M, int N, int K,
                            vnp_error *err)
{
    const int gated = epi == VNP_SM90_GATED;
    if ((dt != VNP_DT_F16 && dt != VNP_DT_BF16) || M < 0 || epi < 0 || epi > 2 ||
        (res && epi != VNP_SM90_LINEAR) || !vnp_cuda_gemm_sm90_fits(epi, N, K, x, w, bias, out) ||
        c->sms <= 0)
        return vnp_fail(err, VNP_EINVAL,
                        "cuda:%d: the sm_90 GEMM takes FP16/BF16, K a multiple of 64, N a "
                        "multiple of 128 and 16-byte aligned buffers (callers check this with "
                        "vnp_cuda_gemm_sm90_fits); got %s M=%d N=%d K=%d",
                        c->device, vnp_dtype_name(dt), M, N, K);
    if (M == 0)
        return VNP_OK;
    vnp_code rc = VNP_OK;
    PFN_cuTensorMapEncodeTiled_v12000 fn = encode_fn(c->device, err, &rc);
    if (!fn)
        return rc;
    const CUtensorMapDataType tdt =
        dt == VNP_DT_F16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    const int I = gated ? N / 2 : N;
    const int mt = (M + SM90_BM - 1) / SM90_BM;
    /* 128 x 256 tiles where asked for and W's rows come in whole 256-row tiles (gated:
     * 128-row halves), else 128 x 128 */
    const int wide = c->sm90_wide && (gated ? I % 128 == 0 : N % SM90_BN(1) == 0);
    const int bn = wide ? SM90_BN(1) : SM90_BN(0);
    const int nt = gated ? I / (bn / 2) : N / bn;
    /* the cluster shape asked for, less what has no pair: one row tile, an odd number of
     * column tiles */
    const int cm = mt < 2 ? 1 : c->sm90_cm, cn = nt % c->sm90_cn ? 1 : c->sm90_cn;
    /* the GELU epilogues of wide tiles on the epilogue warps (variant 2) unless switched
     * off for this epilogue (by default the gated one stays on the consumers); their
     * row stores want an aligned `out` (the row pitch I is a multiple of 128 in wide
     * tiles) */
    const int off = wide && epi != VNP_SM90_LINEAR && (c->sm90_offload >> epi & 1) &&
                    (uintptr_t)out % 16 == 0;
    /* or interleaved with the consumers' next main loop (variant 3) where asked for */
    const int inter = wide && epi != VNP_SM90_LINEAR && !off && (c->sm90_inter >> epi & 1);
    CUtensorMap mx, mw;
    if ((rc = tensor_map(fn, &mx, x, tdt, M, K, SM90_BM / cn, c->device, "input", err)) ||
        (rc = tensor_map(fn, &mw, w, tdt, N, K, 64, c->device, "weight", err)))
        return rc;
#define VNP_SM90_EPI(T, W)                                                                        \
    (epi == VNP_SM90_GELU    ? launch<T, VNP_SM90_GELU, W>(c, mx, mw, bias, res, out, M, K, I, mt, nt, cm, cn, err) \
     : epi == VNP_SM90_GATED ? launch<T, VNP_SM90_GATED, W>(c, mx, mw, bias, res, out, M, K, I, mt, nt, cm, cn, err) \
                             : launch<T, VNP_SM90_LINEAR, W>(c, mx, mw, bias, res, out, M, K, I, mt, nt, cm, cn, err))
/* the GELU epilogues' own variants (2: on the epilogue warps, 3: interleaved) */
#define VNP_SM90_GELUS(T, W)                                                                      \
    (epi == VNP_SM90_GELU ? launch<T, VNP_SM90_GELU, W>(c, mx, mw, bias, res, out, M, K, I, mt, nt, cm, cn, err) \
                          : launch<T, VNP_SM90_GATED, W>(c, mx, mw, bias, res, out, M, K, I, mt, nt, cm, cn, err))
#define VNP_SM90_LAUNCH(T)                                                                        \
    (off ? VNP_SM90_GELUS(T, 2) : inter ? VNP_SM90_GELUS(T, 3)                                     \
         : wide ? VNP_SM90_EPI(T, 1) : VNP_SM90_EPI(T, 0))
    return dt == VNP_DT_F16 ? VNP_SM90_LAUNCH(__half) : VNP_SM90_LAUNCH(__nv_bfloat16);
#undef VNP_SM90_LAUNCH
#undef VNP_SM90_GELUS
#undef VNP_SM90_EPI
}
