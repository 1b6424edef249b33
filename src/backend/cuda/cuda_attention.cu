/* Variable-length multi-head attention over packed sequences (no padding),
 * FlashAttention style: each block owns 64 query rows of one head of one
 * sequence, streams that sequence's keys and values through shared memory in
 * tiles of 64, and keeps a running (online) softmax in FP32, so the score
 * matrix never reaches device memory.
 *
 * FP16/BF16: tensor cores through mma.sync m16n8k16 with FP32 accumulation;
 * four warps, sixteen query rows each. FP32: a plain-FMA kernel of the same
 * structure (one thread per query row), exact enough for 1e-5 checks.
 *
 * Position encodings are applied on the fly: ESM-2's rotary embedding
 * (rotate_half over the whole head, positions restarting at 0 per sequence,
 * angles from the checkpoint's inv_freq) is applied to Q and K as their tiles
 * are loaded; DNABERT-S's ALiBi adds slope[h] * -|i - j| to each score. */
#include "backend/cuda/cuda_internal.cuh"

#define HD 64       /* head dimension */
#define BM 64       /* query rows per block */
#define BN 64       /* keys per tile */
#define SROW 72     /* shared-memory row pitch in elements (64 + 8: no bank conflicts) */
#define LOG2E 1.4426950408889634f

/* ---- rotary table: cos and sin of pos * inv_freq[i], FP32, as the reference
 * computes them (torch.outer in fp32, then cos/sin) ---- */
__global__ void rope_table_kernel(const float *__restrict__ inv_freq, int half, int max_len,
                                  float *__restrict__ table)
{
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= max_len * half)
        return;
    int pos = idx / half, i = idx - pos * half;
    float a = (float)pos * inv_freq[i];
    float s, c;
    sincosf(a, &s, &c);
    table[idx] = c;
    table[(size_t)max_len * half + idx] = s;
}

/* ---- tensor-core kernel ---- */
template <typename T> struct mma_traits;
template <> struct mma_traits<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct mma_traits<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ void mma(float *d, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

/* Loads rows [row0, row0 + 64) of one head's 64 columns into a shared tile
 * (16-byte loads, eight threads per row); rows at or past `len` become zero. */
template <typename T>
__device__ __forceinline__ void load_tile(T (*dst)[SROW], const T *__restrict__ src, size_t ld,
                                          int row0, int len)
{
    /* 512 16-byte chunks over 128 threads: all four loads issued before any store */
    uint4 v[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        int chunk = threadIdx.x + k * 128, r = chunk >> 3, c8 = (chunk & 7) * 8;
        v[k] = make_uint4(0, 0, 0, 0);
        if (row0 + r < len)
            v[k] = *reinterpret_cast<const uint4 *>(src + (size_t)(row0 + r) * ld + c8);
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
        int chunk = threadIdx.x + k * 128, r = chunk >> 3, c8 = (chunk & 7) * 8;
        *reinterpret_cast<uint4 *>(&dst[r][c8]) = v[k];
    }
}

/* Same, transposed into dst[d][row] (V: the P.V product needs keys contiguous). */
template <typename T>
__device__ __forceinline__ void load_tile_t(T (*dst)[SROW], const T *__restrict__ src, size_t ld,
                                            int row0, int len)
{
    uint4 v[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        int chunk = threadIdx.x + k * 128, r = chunk & 63, c8 = (chunk >> 6) * 8;
        v[k] = make_uint4(0, 0, 0, 0);
        if (row0 + r < len)
            v[k] = *reinterpret_cast<const uint4 *>(src + (size_t)(row0 + r) * ld + c8);
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
        int chunk = threadIdx.x + k * 128, r = chunk & 63, c8 = (chunk >> 6) * 8;
        const T *e = reinterpret_cast<const T *>(&v[k]);
#pragma unroll
        for (int q = 0; q < 8; q++)
            dst[c8 + q][r] = e[q];
    }
}

/* Rotary for one pair (x1 = element i, x2 = element i + 32 of a row), times `mul`: every
 * product and sum rounded on its own (no contraction into FMAs), as the reference's
 * q * cos + rotate_half(q) * sin, so that both 16-bit kernels and every layout of the
 * loop below give the same bits. (The FP32 kernel has its own loop.) */
__device__ __forceinline__ float rot_lo(float x1, float x2, float c, float s, float mul)
{
    return __fmul_rn(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)), mul);
}
__device__ __forceinline__ float rot_hi(float x1, float x2, float c, float s, float mul)
{
    return __fmul_rn(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)), mul);
}

/* Eight pairs of a row in place: elements p1[0..8) with p2[0..8) (32 further on). */
template <typename T>
__device__ __forceinline__ void rotate_chunk(T *p1, T *p2, const float (&c)[8],
                                             const float (&s)[8], float mul)
{
    uint4 u1 = *reinterpret_cast<const uint4 *>(p1), u2 = *reinterpret_cast<const uint4 *>(p2);
    T *e1 = reinterpret_cast<T *>(&u1), *e2 = reinterpret_cast<T *>(&u2);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float x1 = vnp_ld<T>(e1[k]), x2 = vnp_ld<T>(e2[k]);
        e1[k] = vnp_st<T>(rot_lo(x1, x2, c[k], s[k], mul));
        e2[k] = vnp_st<T>(rot_hi(x1, x2, c[k], s[k], mul));
    }
    *reinterpret_cast<uint4 *>(p1) = u1;
    *reinterpret_cast<uint4 *>(p2) = u2;
}

/* Rotates rows [0, n) of shared rows a in place (row r is position pos0 + r) and
 * multiplies them by amul; b's rows likewise (times bmul) where b is given: the same
 * positions, so each angle is read from the table once for both (Q and K). A work item
 * is eight pairs of a row: two 16-byte chunks and two 32-byte runs of the table. The
 * eight lanes of a quarter warp take the same chunk of eight neighbouring rows, which
 * fall in different banks (the 144-byte pitch). Rows from n on are left as they are. */
template <typename T>
__device__ __forceinline__ void rotate_rows(T (*a)[SROW], float amul, T (*b)[SROW], float bmul,
                                            const float *__restrict__ rope, int max_len,
                                            int pos0, int n, int tid, int nthr)
{
    const float *cs = rope, *sn = rope + (size_t)max_len * (HD / 2);
    const int items = ((n + 7) >> 3) * 32;
    for (int it = tid; it < items; it += nthr) {
        const int r = (it & 7) + ((it >> 5) << 3), q = ((it >> 3) & 3) * 8;
        if (r >= n)
            continue;
        const size_t at = (size_t)(pos0 + r) * (HD / 2) + q;
        float c[8], s[8];
        *reinterpret_cast<float4 *>(&c[0]) = *reinterpret_cast<const float4 *>(cs + at);
        *reinterpret_cast<float4 *>(&c[4]) = *reinterpret_cast<const float4 *>(cs + at + 4);
        *reinterpret_cast<float4 *>(&s[0]) = *reinterpret_cast<const float4 *>(sn + at);
        *reinterpret_cast<float4 *>(&s[4]) = *reinterpret_cast<const float4 *>(sn + at + 4);
        rotate_chunk<T>(&a[r][q], &a[r][q + HD / 2], c, s, amul);
        if (b)
            rotate_chunk<T>(&b[r][q], &b[r][q + HD / 2], c, s, bmul);
    }
}

/* Multiplies rows [0, n) of shared rows t by mul in place, a 16-byte chunk a work item
 * (a quarter warp: one chunk of eight neighbouring rows, as above). */
template <typename T>
__device__ __forceinline__ void scale_rows(T (*t)[SROW], float mul, int n, int tid, int nthr)
{
    const int items = ((n + 7) >> 3) * 64;
    for (int it = tid; it < items; it += nthr) {
        const int r = (it & 7) + ((it >> 6) << 3), q = ((it >> 3) & 7) * 8;
        if (r >= n)
            continue;
        uint4 u = *reinterpret_cast<const uint4 *>(&t[r][q]);
        T *e = reinterpret_cast<T *>(&u);
#pragma unroll
        for (int k = 0; k < 8; k++)
            e[k] = vnp_st<T>(vnp_ld<T>(e[k]) * mul);
        *reinterpret_cast<uint4 *>(&t[r][q]) = u;
    }
}

/* ldmatrix: four 8 x 8 matrices of 16-bit values from shared memory, lanes 8m..8m+7
 * addressing the rows of matrix m; lane l gets row l / 4, elements 2 (l % 4) and the
 * next of each (transposed: the matrices' columns). */
__device__ __forceinline__ void ldsm_x4(uint32_t (&d)[4], const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&d)[4], const void *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a));
}

/* The per-warp state of the tensor-core kernels: this thread's two query rows (qi0,
 * qi0 + 8) of the warp's sixteen, their running maxima m, partial sums l (reduced over
 * the quad at the end) and output accumulators o (eight 8-column blocks). */
struct attn_rows {
    float o[8][4];
    float m0, m1, l0, l1;
    int qi0, qi1;
};

/* Scores of one tile of 64 keys (rows of Kt, keys k0.. of the sequence) against the
 * warp's Q fragments, masked past `len`, ALiBi added, folded into the running softmax:
 * on return sc holds p = exp2(s - m) of the tile and o, l are rescaled to the new
 * maximum. Both kernels below run exactly this, so they give the same bits. */
template <typename T, int POS>
__device__ __forceinline__ void attn_scores_tile(const uint32_t (&qa)[4][4], T (*Kt)[SROW],
                                                 int k0, int len, float slope, attn_rows &r,
                                                 float (&sc)[8][4])
{
    const int lane = threadIdx.x & 31, tig = lane & 3;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
        /* keys 8j..8j+7, columns 32 h..: matrix m is columns 32 h + 8 m.., so chunk
         * 2 h + i's two B registers are matrices 2 i and 2 i + 1 */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            uint32_t b[4];
            ldsm_x4(b, &Kt[j * 8 + (lane & 7)][h * 32 + (lane >> 3) * 8]);
            mma_traits<T>::mma(sc[j], qa[2 * h], b[0], b[1]);
            mma_traits<T>::mma(sc[j], qa[2 * h + 1], b[2], b[3]);
        }
    }
    /* mask keys past the end, add ALiBi, row maxima */
    float mx0 = r.m0, mx1 = r.m1;
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int key = k0 + j * 8 + 2 * tig + e;
            if (key >= len) {
                sc[j][e] = -INFINITY;
                sc[j][2 + e] = -INFINITY;
            } else if (POS == VNP_POS_ALIBI) {
                sc[j][e] -= slope * (float)abs(r.qi0 - key);
                sc[j][2 + e] -= slope * (float)abs(r.qi1 - key);
            }
            mx0 = fmaxf(mx0, sc[j][e]);
            mx1 = fmaxf(mx1, sc[j][2 + e]);
        }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float a0 = exp2f(r.m0 - mx0), a1 = exp2f(r.m1 - mx1);
    r.m0 = mx0;
    r.m1 = mx1;
    float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        sc[j][0] = exp2f(sc[j][0] - r.m0);
        sc[j][1] = exp2f(sc[j][1] - r.m0);
        sc[j][2] = exp2f(sc[j][2] - r.m1);
        sc[j][3] = exp2f(sc[j][3] - r.m1);
        s0 += sc[j][0] + sc[j][1];
        s1 += sc[j][2] + sc[j][3];
    }
    r.l0 = r.l0 * a0 + s0; /* per-thread partial sums; reduced across the quad at the end */
    r.l1 = r.l1 * a1 + s1;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        r.o[j][0] *= a0;
        r.o[j][1] *= a0;
        r.o[j][2] *= a1;
        r.o[j][3] *= a1;
    }
}

/* The A fragment of P for key chunk ks (16 keys) straight from the score registers. */
template <typename T>
__device__ __forceinline__ void attn_p_fragment(const float (&sc)[8][4], int ks, uint32_t (&pa)[4])
{
    pa[0] = mma_traits<T>::pack(sc[2 * ks][0], sc[2 * ks][1]);
    pa[1] = mma_traits<T>::pack(sc[2 * ks][2], sc[2 * ks][3]);
    pa[2] = mma_traits<T>::pack(sc[2 * ks + 1][0], sc[2 * ks + 1][1]);
    pa[3] = mma_traits<T>::pack(sc[2 * ks + 1][2], sc[2 * ks + 1][3]);
}

/* The Q fragments of warp `warp` (rows 16 warp..) of a shared tile of 64 rows (already
 * rotated and scaled). */
template <typename T>
__device__ __forceinline__ void attn_q_fragments(T (*Qs)[SROW], int warp, uint32_t (&qa)[4][4])
{
    /* matrices: rows 0-7 and 8-15 of the warp's sixteen at columns 16 ks, then the same
     * at 16 ks + 8: the A fragment's four registers in order */
    const int lane = threadIdx.x & 31;
    const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, c = (lane >> 4) * 8;
#pragma unroll
    for (int ks = 0; ks < 4; ks++)
        ldsm_x4(qa[ks], &Qs[r][ks * 16 + c]);
}

/* Normalises and stores the warp's rows; flags a non-finite output. */
template <typename T>
__device__ __forceinline__ void attn_store_rows(attn_rows &r, T *obase, size_t ldo, int len,
                                                int *flag)
{
    const int tig = threadIdx.x & 3;
    r.l0 += __shfl_xor_sync(0xffffffffu, r.l0, 1);
    r.l0 += __shfl_xor_sync(0xffffffffu, r.l0, 2);
    r.l1 += __shfl_xor_sync(0xffffffffu, r.l1, 1);
    r.l1 += __shfl_xor_sync(0xffffffffu, r.l1, 2);
    const float inv0 = 1.0f / r.l0, inv1 = 1.0f / r.l1;
    int bad = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int c = j * 8 + 2 * tig;
        if (r.qi0 < len) {
            float x0 = r.o[j][0] * inv0, x1 = r.o[j][1] * inv0;
            bad |= !isfinite(x0) || !isfinite(x1);
            *reinterpret_cast<uint32_t *>(obase + (size_t)r.qi0 * ldo + c) =
                mma_traits<T>::pack(x0, x1);
        }
        if (r.qi1 < len) {
            float x0 = r.o[j][2] * inv1, x1 = r.o[j][3] * inv1;
            bad |= !isfinite(x0) || !isfinite(x1);
            *reinterpret_cast<uint32_t *>(obase + (size_t)r.qi1 * ldo + c) =
                mma_traits<T>::pack(x0, x1);
        }
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

__device__ __forceinline__ void attn_rows_init(attn_rows &r, int q0, int warp)
{
    const int g = (threadIdx.x & 31) >> 2;
#pragma unroll
    for (int j = 0; j < 8; j++)
        r.o[j][0] = r.o[j][1] = r.o[j][2] = r.o[j][3] = 0.0f;
    r.m0 = r.m1 = -INFINITY;
    r.l0 = r.l1 = 0.0f;
    r.qi0 = q0 + warp * 16 + g;
    r.qi1 = r.qi0 + 8;
}

/* Any length: keys and values streamed through shared memory a tile of 64 at a time,
 * V transposed as it is stored. */
template <typename T, int POS>
__global__ void __launch_bounds__(128, 4)
    attn_mma_kernel(const T *__restrict__ qkv, const int32_t *__restrict__ cu, T *__restrict__ out,
                    int nh, float scale, const float *__restrict__ rope, int max_len,
                    const float *__restrict__ slopes, int *flag)
{
    __shared__ __align__(16) T Qs[BM][SROW];
    __shared__ __align__(16) T Ks[BN][SROW];
    __shared__ __align__(16) T Vt[HD][SROW];

    const int s = blockIdx.x, h = blockIdx.y, q0 = blockIdx.z * BM;
    const int start = cu[s], len = cu[s + 1] - start;
    if (len > max_len) { /* the caller's max_len is wrong: refuse rather than read past */
        if (blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0)
            atomicOr(flag, VNP_CUDA_FLAG_BAD_SHAPE);
        return;
    }
    if (q0 >= len)
        return;
    const size_t ld = (size_t)3 * nh * HD;
    const T *qbase = qkv + (size_t)start * ld + (size_t)h * HD;
    const T *kbase = qbase + (size_t)nh * HD;
    const T *vbase = qbase + (size_t)2 * nh * HD;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, tig = lane & 3;

    /* Q: scaled by softmax scale * log2(e) so that exp2 gives the softmax. */
    const float qmul = scale * LOG2E;
    load_tile<T>(Qs, qbase, ld, q0, len);
    __syncthreads();
    if (POS == VNP_POS_ROTARY)
        rotate_rows<T>(Qs, qmul, nullptr, 0.0f, rope, max_len, q0, min(BM, len - q0),
                       threadIdx.x, 128);
    else
        scale_rows<T>(Qs, qmul, min(BM, len - q0), threadIdx.x, 128);
    __syncthreads();

    uint32_t qa[4][4];
    attn_q_fragments<T>(Qs, threadIdx.x >> 5, qa);
    attn_rows r;
    attn_rows_init(r, q0, threadIdx.x >> 5);
    const float slope = POS == VNP_POS_ALIBI ? slopes[h] * LOG2E : 0.0f;

    for (int k0 = 0; k0 < len; k0 += BN) {
        __syncthreads(); /* the previous tile is no longer read */
        load_tile<T>(Ks, kbase, ld, k0, len);
        load_tile_t<T>(Vt, vbase, ld, k0, len);
        __syncthreads();
        if (POS == VNP_POS_ROTARY) {
            rotate_rows<T>(Ks, 1.0f, nullptr, 0.0f, rope, max_len, k0, min(BN, len - k0),
                           threadIdx.x, 128);
            __syncthreads();
        }
        float sc[8][4];
        attn_scores_tile<T, POS>(qa, Ks, k0, len, slope, r, sc);
        /* O += P V */
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            uint32_t pa[4];
            attn_p_fragment<T>(sc, ks, pa);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int dr = j * 8 + g, c = ks * 16 + 2 * tig;
                uint32_t b0 = *reinterpret_cast<const uint32_t *>(&Vt[dr][c]);
                uint32_t b1 = *reinterpret_cast<const uint32_t *>(&Vt[dr][c + 8]);
                mma_traits<T>::mma(r.o[j], pa, b0, b1);
            }
        }
    }
    attn_store_rows<T>(r, out + (size_t)start * nh * HD + (size_t)h * HD, (size_t)nh * HD, len,
                       flag);
}

/* ---- short sequences (at most SHORT_TILES tiles of 64 keys) ----
 * The tiled kernel above waits on memory once per tile (load, rotate, compute), and each
 * of a sequence's query blocks loads and rotates all its keys again. Here one block
 * takes one head of one sequence (the heads of a sequence are neighbouring blocks, hx 1,
 * so that the blocks running at once read whole [3 x heads x 64] rows of qkv and write
 * whole rows of out, instead of 128-byte pieces of every row 15 KB apart; hx 0, the
 * sequences neighbours, VIRNUCPRO_DEBUG_ATTN_GRID=seqs, for comparison): it copies all
 * its queries, keys and values into shared memory at once (cp.async, no registers in
 * between), rotates Q and K in one pass, and then its warps run the query tiles (sixteen
 * rows a warp; two tiles at a time when there are several), each over all key tiles,
 * without another barrier. V stays row-major: the P.V operand comes from ldmatrix.trans.
 * Same arithmetic as attn_mma_kernel tile for tile: same bits. */
#define SHORT_TILES 4
/* warps of a block: four (one query tile at a time) for one tile, else eight (two query
 * tiles at a time); for one tile of at most 32 tokens two (each warp takes every other
 * 16-row slice of the tile: none idles, where four leave two, and an SM holds eight
 * blocks instead of four; VIRNUCPRO_DEBUG_ATTN_WARPS=2 or 4 forces one or the other up
 * to 64 tokens) */
#define SHORT_WARPS(NT) ((NT) == 1 ? 4 : 8)

__device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes)
{
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(bytes));
}

/* Rows [0, rows) of one head into dst (pitch SROW), zeros from `len` on. */
template <typename T>
__device__ __forceinline__ void async_rows(T (*dst)[SROW], const T *__restrict__ src, size_t ld,
                                           int rows, int len)
{
    for (int chunk = threadIdx.x; chunk < rows * 8; chunk += blockDim.x) {
        const int r = chunk >> 3, c8 = (chunk & 7) * 8;
        const int in = r < len;
        cp_async16(&dst[r][c8], in ? src + (size_t)r * ld + c8 : src, in ? 16 : 0);
    }
}

/* One head h of one sequence from shared memory (Qs, Ks, Vs, loaded): rotate or scale Q
 * and K in place, then each warp's query rows over all key tiles, stored to out. */
template <typename T, int POS, int NT, int NW>
__device__ __forceinline__ void short_head(T (*Qs)[SROW], T (*Ks)[SROW], T (*Vs)[SROW], int h,
                                           int start, int len, int nt, T *__restrict__ out,
                                           int nh, float scale, const float *__restrict__ rope,
                                           int max_len, const float *__restrict__ slopes,
                                           int *flag)
{
    const float qmul = scale * LOG2E;
    /* the sequence's rows of every tile at once (Q and K from one read of the table);
     * the zero rows past its end stay zero */
    if (POS == VNP_POS_ROTARY)
        rotate_rows<T>(Qs, qmul, Ks, 1.0f, rope, max_len, 0, len, threadIdx.x, NW * 32);
    else
        scale_rows<T>(Qs, qmul, len, threadIdx.x, NW * 32);
    __syncthreads();

    const float slope = POS == VNP_POS_ALIBI ? slopes[h] * LOG2E : 0.0f;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    /* ldmatrix.x4.trans: lanes 8m..8m+7 address the rows of matrix m (keys 0-7 or 8-15
     * of a chunk, columns of d-block j or j + 1) */
    const int lrow = ((lane >> 3) & 1) * 8 + (lane & 7), lcol = (lane >> 4) * 8;
    T *obase = out + (size_t)start * nh * HD + (size_t)h * HD;
    /* 16-row slices of the query tiles: warp w takes slices w, w + NW, ... (slice i is
     * rows 16 (i % 4) of query tile i / 4) */
    for (int slice = warp; slice < 4 * nt; slice += NW) {
        const int qt = slice >> 2, wq = slice & 3;
        if (qt * BM + wq * 16 >= len) /* this warp's rows are past the end */
            break;
        uint32_t qa[4][4];
        attn_q_fragments<T>(Qs + qt * BM, wq, qa);
        attn_rows r;
        attn_rows_init(r, qt * BM, wq);
        for (int t = 0; t < nt; t++) {
            float sc[8][4];
            attn_scores_tile<T, POS>(qa, Ks + t * BN, t * BN, len, slope, r, sc);
#pragma unroll
            for (int ks = 0; ks < 4; ks++) {
                uint32_t pa[4];
                attn_p_fragment<T>(sc, ks, pa);
#pragma unroll
                for (int j = 0; j < 8; j += 2) {
                    uint32_t b[4];
                    ldsm_x4_t(b, &Vs[t * BN + ks * 16 + lrow][j * 8 + lcol]);
                    mma_traits<T>::mma(r.o[j], pa, b[0], b[1]);
                    mma_traits<T>::mma(r.o[j + 1], pa, b[2], b[3]);
                }
            }
        }
        attn_store_rows<T>(r, obase, (size_t)nh * HD, len, flag);
    }
}

/* Rows of one head's buffer: Q, then K, then V */
#define SHORT_BUF_ROWS(NT) ((NT) * BM + 2 * (NT) * BN)

/* Head h's Q, K, V rows of the sequence at `start` into buffer `dst`, one cp.async group */
template <typename T, int NT>
__device__ __forceinline__ void short_load(T (*dst)[SROW], const T *__restrict__ qkv, int start,
                                           size_t ld, int h, int nh, int nt, int len)
{
    const T *qbase = qkv + (size_t)start * ld + (size_t)h * HD;
    async_rows<T>(dst, qbase, ld, nt * BM, len);
    async_rows<T>(dst + NT * BM, qbase + (size_t)nh * HD, ld, nt * BN, len);
    async_rows<T>(dst + NT * BM + NT * BN, qbase + (size_t)2 * nh * HD, ld, nt * BN, len);
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* The kernel: blocks of one sequence and one head (MULTI 0), or `hpb` consecutive heads
 * (MULTI 1, with hx; then the next head's rows are copied into the second buffer while
 * this one's are computed). hx 1: blockIdx.x the head (group), y the sequence; hx 0: x
 * the sequence, y the head. (MULTI 0 is the one-head kernel as the compiler sees it: no
 * loop state live across the head's compute.) */
template <typename T, int POS, int NT, int MULTI, int NW>
__global__ void __launch_bounds__(NW * 32, 16 / NW)
    attn_short_kernel(const T *__restrict__ qkv, const int32_t *__restrict__ cu,
                      T *__restrict__ out, int nh, float scale, const float *__restrict__ rope,
                      int max_len, const float *__restrict__ slopes, int *flag, int hx, int hpb)
{
    extern __shared__ __align__(16) unsigned char attn_smem[];
    const int s = hx ? blockIdx.y : blockIdx.x, h0 = hx ? blockIdx.x * hpb : blockIdx.y;
    const int start = cu[s], len = cu[s + 1] - start;
    if (len > max_len || len > NT * BN) { /* the caller's max_len is wrong */
        if (h0 == 0 && threadIdx.x == 0)
            atomicOr(flag, VNP_CUDA_FLAG_BAD_SHAPE);
        return;
    }
    if (len <= 0)
        return;
    const size_t ld = (size_t)3 * nh * HD;
    const int nt = (len + BN - 1) / BN; /* query and key tiles of this sequence */
    const int nheads = MULTI ? min(hpb, nh - h0) : 1;
    T(*const base)[SROW] = reinterpret_cast<T(*)[SROW]>(attn_smem);
    short_load<T, NT>(base, qkv, start, ld, h0, nh, nt, len);
    for (int i = 0; i < nheads; i++) {
        const int b = MULTI ? i & 1 : 0; /* (MULTI: two buffers) */
        if (MULTI && i + 1 < nheads) {
            /* the other buffer was last read before the previous head's trailing barrier */
            short_load<T, NT>(base + (size_t)(b ^ 1) * SHORT_BUF_ROWS(NT), qkv, start, ld,
                              h0 + i + 1, nh, nt, len);
            asm volatile("cp.async.wait_group 1;\n" ::: "memory");
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::: "memory");
        }
        __syncthreads();
        T(*Qs)[SROW] = base + (size_t)b * SHORT_BUF_ROWS(NT);
        short_head<T, POS, NT, NW>(Qs, Qs + NT * BM, Qs + NT * BM + NT * BN, h0 + i, start, len,
                                   nt, out, nh, scale, rope, max_len, slopes, flag);
        __syncthreads(); /* every warp is done with buffer b */
    }
}

/* ---- FP32 kernel: one thread per query row, keys streamed through shared
 * memory 32 at a time, exact expf softmax with a running maximum ---- */
#define F32_BM 64
#define F32_BN 32

template <int POS>
__global__ void __launch_bounds__(F32_BM)
    attn_f32_kernel(const float *__restrict__ qkv, const int32_t *__restrict__ cu,
                    float *__restrict__ out, int nh, float scale, const float *__restrict__ rope,
                    int max_len, const float *__restrict__ slopes, int *flag)
{
    __shared__ float Ks[F32_BN][HD + 1];
    __shared__ float Vs[F32_BN][HD + 1];
    const int s = blockIdx.x, h = blockIdx.y, q0 = blockIdx.z * F32_BM;
    const int start = cu[s], len = cu[s + 1] - start;
    if (len > max_len) { /* the caller's max_len is wrong: refuse rather than read past */
        if (blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0)
            atomicOr(flag, VNP_CUDA_FLAG_BAD_SHAPE);
        return;
    }
    if (q0 >= len)
        return;
    const size_t ld = (size_t)3 * nh * HD;
    const float *qbase = qkv + (size_t)start * ld + (size_t)h * HD;
    const float *kbase = qbase + (size_t)nh * HD;
    const float *vbase = qbase + (size_t)2 * nh * HD;
    const float *cs = rope, *sn = rope + (size_t)max_len * (HD / 2);
    const int qi = q0 + threadIdx.x;
    const int valid = qi < len;
    const float slope = POS == VNP_POS_ALIBI ? slopes[h] : 0.0f;

    float q[HD], acc[HD];
#pragma unroll
    for (int d = 0; d < HD; d++) {
        q[d] = valid ? qbase[(size_t)qi * ld + d] : 0.0f;
        acc[d] = 0.0f;
    }
    if (POS == VNP_POS_ROTARY && valid) {
#pragma unroll
        for (int i = 0; i < HD / 2; i++) {
            float c = cs[(size_t)qi * 32 + i], sv = sn[(size_t)qi * 32 + i];
            float x1 = q[i], x2 = q[i + 32];
            q[i] = x1 * c - x2 * sv;
            q[i + 32] = x2 * c + x1 * sv;
        }
    }
    float m = -INFINITY, l = 0.0f;
    for (int k0 = 0; k0 < len; k0 += F32_BN) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < F32_BN * HD; idx += blockDim.x) {
            int r = idx / HD, d = idx - r * HD;
            int key = k0 + r;
            Ks[r][d] = key < len ? kbase[(size_t)key * ld + d] : 0.0f;
            Vs[r][d] = key < len ? vbase[(size_t)key * ld + d] : 0.0f;
        }
        __syncthreads();
        if (POS == VNP_POS_ROTARY) {
            for (int idx = threadIdx.x; idx < F32_BN * (HD / 2); idx += blockDim.x) {
                int r = idx / (HD / 2), i = idx - r * (HD / 2);
                int key = k0 + r;
                if (key >= len)
                    continue;
                float c = cs[(size_t)key * 32 + i], sv = sn[(size_t)key * 32 + i];
                float x1 = Ks[r][i], x2 = Ks[r][i + 32];
                Ks[r][i] = x1 * c - x2 * sv;
                Ks[r][i + 32] = x2 * c + x1 * sv;
            }
            __syncthreads();
        }
        const int nk = len - k0 < F32_BN ? len - k0 : F32_BN;
        float sc[F32_BN];
        float mx = m;
#pragma unroll
        for (int r = 0; r < F32_BN; r++) {
            float d = 0.0f;
#pragma unroll
            for (int k = 0; k < HD; k++)
                d = fmaf(q[k], Ks[r][k], d);
            d *= scale;
            if (POS == VNP_POS_ALIBI)
                d -= slope * (float)abs(qi - (k0 + r));
            sc[r] = r < nk ? d : -INFINITY;
            mx = fmaxf(mx, sc[r]);
        }
        const float alpha = expf(m - mx);
        m = mx;
        l *= alpha;
#pragma unroll
        for (int d = 0; d < HD; d++)
            acc[d] *= alpha;
#pragma unroll
        for (int r = 0; r < F32_BN; r++) {
            float p = expf(sc[r] - m);
            l += p;
#pragma unroll
            for (int d = 0; d < HD; d++)
                acc[d] = fmaf(p, Vs[r][d], acc[d]);
        }
    }
    if (!valid)
        return;
    const size_t ldo = (size_t)nh * HD;
    float *orow = out + (size_t)(start + qi) * ldo + (size_t)h * HD;
    const float inv = 1.0f / l;
    int bad = 0;
#pragma unroll
    for (int d = 0; d < HD; d++) {
        float v = acc[d] * inv;
        bad |= !isfinite(v);
        orow[d] = v;
    }
    if (bad)
        atomicOr(flag, VNP_CUDA_FLAG_NONFINITE);
}

/* Launches attn_short_kernel with NT = nt key tiles (1..SHORT_TILES) of shared memory. */
template <typename T, int POS, int NT>
static vnp_code launch_short_nt(vnp_cuda *c, dim3 grid, const void *qkv, const int32_t *cu,
                                void *out, int nh, float scale, int max_len,
                                const float *slopes, vnp_error *err)
{
    /* heads as the fast index where the sequences fit the grid's y (65535), in groups of
     * hpb a block; two buffers (the next head's copy beside this one's compute) where
     * there are several heads a block and the sequences are short enough that two
     * buffers keep the blocks an SM holds (at most 128 tokens) */
    const int hx = c->attn_heads_x && grid.x <= 65535;
    const int hpb = hx && NT <= 2 ? c->attn_hpb : 1, nbuf = hpb > 1 ? 2 : 1;
    const size_t smem = (size_t)nbuf * SHORT_BUF_ROWS(NT) * SROW * sizeof(T);
    void (*kern)(const T *, const int32_t *, T *, int, float, const float *, int, const float *,
                 int *, int, int) = attn_short_kernel<T, POS, NT, 0, SHORT_WARPS(NT)>;
    int nw = SHORT_WARPS(NT);
    if constexpr (NT <= 2)
        if (nbuf == 2)
            kern = attn_short_kernel<T, POS, NT, 1, SHORT_WARPS(NT)>;
    /* two warps a block: up to 32 tokens by default (where four leave two idle: 0.078
     * against 0.090 ms for 28-token sequences, 12 heads; at 42 and 64 tokens they were
     * 4 % slower, session 15), up to 64 with VIRNUCPRO_DEBUG_ATTN_WARPS=2 */
    if constexpr (NT == 1)
        if (nbuf == 1 && (c->attn_warps == 2 || (c->attn_warps == 0 && max_len <= 32))) {
            kern = attn_short_kernel<T, POS, 1, 0, 2>;
            nw = 2;
            /* eight blocks of 27 KB an SM want the largest shared-memory carveout */
            vnp_code rc0 = VNP_CUDA_CHECK(
                cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                     (int)cudaSharedmemCarveoutMaxShared),
                c->device, err);
            if (rc0)
                return rc0;
        }
    vnp_code rc = VNP_CUDA_CHECK(
        cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
        c->device, err);
    if (rc)
        return rc;
    if (hx)
        grid = dim3((grid.y + hpb - 1) / hpb, grid.x);
    kern<<<grid, 32 * nw, smem, c->stream>>>((const T *)qkv, cu, (T *)out, nh, scale, c->rope,
                                            max_len, slopes, c->flag, hx, hpb);
    c->attn_hx_runs += hx;
    c->attn_db_runs += nbuf == 2;
    c->attn_w2_runs += nw == 2;
    return VNP_OK;
}

template <typename T, int POS>
static vnp_code launch_short_pos(vnp_cuda *c, int nt, dim3 grid, const void *qkv,
                                 const int32_t *cu, void *out, int nh, float scale, int max_len,
                                 const float *slopes, vnp_error *err)
{
    switch (nt) {
    case 1:
        return launch_short_nt<T, POS, 1>(c, grid, qkv, cu, out, nh, scale, max_len, slopes, err);
    case 2:
        return launch_short_nt<T, POS, 2>(c, grid, qkv, cu, out, nh, scale, max_len, slopes, err);
    case 3:
        return launch_short_nt<T, POS, 3>(c, grid, qkv, cu, out, nh, scale, max_len, slopes, err);
    default:
        return launch_short_nt<T, POS, SHORT_TILES>(c, grid, qkv, cu, out, nh, scale, max_len,
                                                    slopes, err);
    }
}

template <typename T>
static vnp_code launch_short(vnp_cuda *c, int pos, int nt, dim3 grid, const void *qkv,
                             const int32_t *cu, void *out, int nh, float scale, int max_len,
                             const float *slopes, vnp_error *err)
{
    if (pos == VNP_POS_ROTARY)
        return launch_short_pos<T, VNP_POS_ROTARY>(c, nt, grid, qkv, cu, out, nh, scale, max_len,
                                                   slopes, err);
    if (pos == VNP_POS_ALIBI)
        return launch_short_pos<T, VNP_POS_ALIBI>(c, nt, grid, qkv, cu, out, nh, scale, max_len,
                                                  slopes, err);
    return launch_short_pos<T, VNP_POS_NONE>(c, nt, grid, qkv, cu, out, nh, scale, max_len,
                                             slopes, err);
}

long vnp_backend_cuda_attn_heads_first(vnp_backend *be, long *double_buffered, long *two_warps)
{
    if (double_buffered)
        *double_buffered = vnp_cuda_of(be)->attn_db_runs;
    if (two_warps)
        *two_warps = vnp_cuda_of(be)->attn_w2_runs;
    return vnp_cuda_of(be)->attn_hx_runs;
}

vnp_code vnp_cuda_attention(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu_seqlens,
                            int nseq, int max_len, int T, const vnp_attn_desc *desc,
                            vnp_buf *out, vnp_error *err)
{
    vnp_cuda *c = vnp_cuda_of(be);
    if (vnp_code rc0 = VNP_CUDA_CHECK(cudaSetDevice(c->device), c->device, err))
        return rc0; /* callers may be on another thread: their device first */
    if (desc->head_dim != HD)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "CUDA attention supports head dimension %d (ESM-2 and DNABERT-S); this "
                        "model has %d",
                        HD, desc->head_dim);
    const int nh = desc->heads;
    if (nseq < 0 || T < 0 || max_len < 0 || nh <= 0 || qkv->dtype != c->act ||
        out->dtype != c->act || cu_seqlens->dtype != VNP_DT_I32 ||
        cu_seqlens->n < (size_t)nseq + 1 || qkv->n < (size_t)T * 3 * nh * HD ||
        out->n < (size_t)T * nh * HD)
        return vnp_fail(err, VNP_EINVAL,
                        "CUDA attention on cuda:%d: inconsistent arguments (T=%d, nseq=%d, "
                        "max_len=%d, heads=%d; qkv %s of %zu values, out %s of %zu, cu_seqlens "
                        "%s of %zu; the backend computes in %s)",
                        c->device, T, nseq, max_len, nh, vnp_dtype_name(qkv->dtype), qkv->n,
                        vnp_dtype_name(out->dtype), out->n, vnp_dtype_name(cu_seqlens->dtype),
                        cu_seqlens->n, vnp_dtype_name(c->act));
    if (nseq == 0 || T == 0 || max_len == 0)
        return VNP_OK;
    if (nh > 65535)
        return vnp_fail(err, VNP_EUNSUPPORTED, "CUDA attention: %d heads (at most 65535)", nh);
    const int pos = desc->pos;
    if (pos == VNP_POS_ROTARY &&
        (!desc->inv_freq || desc->inv_freq->dtype != VNP_DT_F32 || desc->inv_freq->n < HD / 2))
        return vnp_fail(err, VNP_EINVAL, "CUDA attention: rotary needs inv_freq [%d] float32",
                        HD / 2);
    if (pos == VNP_POS_ALIBI &&
        (!desc->slopes || desc->slopes->dtype != VNP_DT_F32 || desc->slopes->n < (size_t)nh))
        return vnp_fail(err, VNP_EINVAL, "CUDA attention: ALiBi needs slopes [%d] float32", nh);
    vnp_code rc;
    if (pos == VNP_POS_ROTARY) {
        size_t need = (size_t)max_len * HD; /* cos and sin, max_len x 32 each */
        size_t have = c->rope_floats * 4;
        rc = vnp_cuda_reserve(c, (void **)&c->rope, &have, need * 4, "allocating the rotary table",
                              err);
        c->rope_floats = have / 4;
        if (rc)
            return rc;
        int n = max_len * (HD / 2);
        rope_table_kernel<<<(n + 255) / 256, 256, 0, c->stream>>>(
            (const float *)desc->inv_freq->ptr, HD / 2, max_len, c->rope);
        rc = vnp_cuda_check_launch("rope_table", err);
        if (rc)
            return rc;
    }
    const float *slopes = pos == VNP_POS_ALIBI ? (const float *)desc->slopes->ptr : NULL;
    const int32_t *cu = (const int32_t *)cu_seqlens->ptr;
    if (c->act == VNP_DT_F32) {
        dim3 grid((unsigned)nseq, (unsigned)nh, (unsigned)((max_len + F32_BM - 1) / F32_BM));
        const float *q = (const float *)qkv->ptr;
        float *o = (float *)out->ptr;
        if (pos == VNP_POS_ROTARY)
            attn_f32_kernel<VNP_POS_ROTARY><<<grid, F32_BM, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else if (pos == VNP_POS_ALIBI)
            attn_f32_kernel<VNP_POS_ALIBI><<<grid, F32_BM, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else
            attn_f32_kernel<VNP_POS_NONE><<<grid, F32_BM, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        return vnp_cuda_check_launch("attention_f32", err);
    }
    dim3 grid((unsigned)nseq, (unsigned)nh, (unsigned)((max_len + BM - 1) / BM));
    /* short sequences: the one-copy kernel (VIRNUCPRO_DEBUG_SCALAR_KERNELS=1 keeps the
     * tiled one, for comparison) */
    if (max_len <= SHORT_TILES * BN && !c->scalar_only) {
        const int nt = (max_len + BN - 1) / BN;
        grid.z = 1; /* one block per head of a sequence */
        if (c->act == VNP_DT_F16)
            rc = launch_short<__half>(c, pos, nt, grid, qkv->ptr, cu, out->ptr, nh, desc->scale,
                                      max_len, slopes, err);
        else
            rc = launch_short<__nv_bfloat16>(c, pos, nt, grid, qkv->ptr, cu, out->ptr, nh,
                                             desc->scale, max_len, slopes, err);
        return rc ? rc : vnp_cuda_check_launch("attention (short sequences)", err);
    }
    if (c->act == VNP_DT_F16) {
        const __half *q = (const __half *)qkv->ptr;
        __half *o = (__half *)out->ptr;
        if (pos == VNP_POS_ROTARY)
            attn_mma_kernel<__half, VNP_POS_ROTARY><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else if (pos == VNP_POS_ALIBI)
            attn_mma_kernel<__half, VNP_POS_ALIBI><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else
            attn_mma_kernel<__half, VNP_POS_NONE><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
    } else {
        const __nv_bfloat16 *q = (const __nv_bfloat16 *)qkv->ptr;
        __nv_bfloat16 *o = (__nv_bfloat16 *)out->ptr;
        if (pos == VNP_POS_ROTARY)
            attn_mma_kernel<__nv_bfloat16, VNP_POS_ROTARY><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else if (pos == VNP_POS_ALIBI)
            attn_mma_kernel<__nv_bfloat16, VNP_POS_ALIBI><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
        else
            attn_mma_kernel<__nv_bfloat16, VNP_POS_NONE><<<grid, 128, 0, c->stream>>>(
                q, cu, o, nh, desc->scale, c->rope, max_len, slopes, c->flag);
    }
    return vnp_cuda_check_launch("attention", err);
}
