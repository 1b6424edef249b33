/* A batch-invariant float32 matmul, out = x w^T, for linear().
 *
 * Every output element is one chain over k = 0, 1, ..., K-1 that starts from +0:
 * acc = fma(x[k], w[k], acc) on CPUs with fused multiply-add (the "fused" kernels: avx2,
 * avx512, and the portable one where the compiler has a hardware fmaf), else
 * acc = acc + round(x[k] * w[k]) (avx, and the portable one on plain x86-64). Nothing about
 * the call changes that order: not the number of rows, not where a row sits, not the
 * tiling; kernels of one family give the same bits. So a frame's embedding is the same
 * whichever frames share its batch, whatever `--batch-tokens` and `-t` are. OpenBLAS
 * cannot promise this: its AVX2 and AVX-512 sgemm kernels (`Haswell`, `Zen`, `SkylakeX`)
 * round a row differently by its position in the call and by the call's size, which broke
 * byte-identical shard merges on most users' CPUs.
 *
 * Tiling: K is cut into blocks of KC; within a block, W's rows (output channels) are
 * packed by NC-column blocks into panels of NR channels, k-major (panel[k][0..NR)), and
 * an MR x NR register tile of accumulators sweeps the rows. A tile that continues a K
 * block reloads its partial sums from `out` (floats, so the chain is unchanged). Tails
 * (fewer than MR rows or NR channels) run the same kernel on zero-padded copies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

/* The unfused kernels must round every product: a compiler allowed to contract a * b + c
 * into an FMA (-ffp-contract=fast, -ffast-math, GNU C mode, icx's defaults) would move
 * them into the other family. CMakeLists.txt compiles this file with -ffp-contract=off. */
#ifdef __FAST_MATH__
#error "cpu_matmul.c must not be compiled with -ffast-math (it fixes the rounding of each step)"
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VNP_MATMUL_X86 1
#include <immintrin.h>
#endif

#define KC 256
#define NC 128 /* a multiple of every kernel's NR */
#define MR_MAX 14
#define NR_MAX 32

/* Accumulates MR rows (xr[i] points at each row's k-block) times a packed panel
 * (kc x NR, k-major) into c (MR x NR, leading dimension ldc); acc starts from c when
 * `cont`. MR and NR are the kernel's. */
typedef void (*tile_fn)(int kc, const float *const *xr, const float *panel, float *c,
                        size_t ldc, int cont);

#define GENERIC_MR 4
#define GENERIC_NR 16
#if defined(FP_FAST_FMAF) || defined(__FP_FAST_FMAF) || defined(__ARM_FEATURE_FMA) || \
    defined(__aarch64__) /* fmaf is an instruction here (aarch64, x86 built with FMA) */
#define GENERIC_FUSED 1
#define GENERIC_STEP(a, b, acc) fmaf(a, b, acc)
#else
#define GENERIC_FUSED 0
#endif
static void tile_generic(int kc, const float *const *xr, const float *panel, float *c,
                         size_t ldc, int cont)
{
    float acc[GENERIC_MR][GENERIC_NR];
    for (int i = 0; i < GENERIC_MR; i++)
        for (int j = 0; j < GENERIC_NR; j++)
            acc[i][j] = cont ? c[(size_t)i * ldc + (size_t)j] : 0.0f;
    for (int k = 0; k < kc; k++) {
        const float *p = panel + (size_t)k * GENERIC_NR;
        for (int i = 0; i < GENERIC_MR; i++) {
            float a = xr[i][k];
#if GENERIC_FUSED
            for (int j = 0; j < GENERIC_NR; j++)
                acc[i][j] = GENERIC_STEP(a, p[j], acc[i][j]);
#else
            for (int j = 0; j < GENERIC_NR; j++) {
                float prod = a * p[j]; /* rounded: its own statement, never contracted */
                acc[i][j] = acc[i][j] + prod;
            }
#endif
        }
    }
    for (int i = 0; i < GENERIC_MR; i++)
        memcpy(c + (size_t)i * ldc, acc[i], sizeof acc[i]);
}

#ifdef VNP_MATMUL_X86
/* The x86 kernels keep each accumulator and row pointer in a variable of its own, not in
 * arrays: the ASan build kept the arrays on its instrumented stack, every step's results
 * stored and checked there (a predict on the golden set took 2.4 s instead of 1.5 s under
 * ASan; Release runs as fast as before). ROWSn(X) expands X(i) for i = 0 .. n-1. */
#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ROWS12(X) ROWS6(X) X(6) X(7) X(8) X(9) X(10) X(11)

/* 8-lane kernels, 6 x 16 tiles: one body, two steps. TILE8(name, target) defines
 * tile_<name>, whose row i takes a step of the chain with T8_STEP_<name>(i); STEP(x, w, acc)
 * is one step. */
#define TILE8_MR 6
#define TILE8_NR 16
#define T8_INIT(i)                                                                              \
    const float *x##i = xr[i];                                                                  \
    __m256 a0_##i = cont ? _mm256_loadu_ps(c + (size_t)(i)*ldc) : _mm256_setzero_ps();          \
    __m256 a1_##i = cont ? _mm256_loadu_ps(c + (size_t)(i)*ldc + 8) : _mm256_setzero_ps();
#define T8_STORE(i)                                                                             \
    _mm256_storeu_ps(c + (size_t)(i)*ldc, a0_##i);                                              \
    _mm256_storeu_ps(c + (size_t)(i)*ldc + 8, a1_##i);
#define TILE8(name, isa)                                                                        \
    __attribute__((target(isa))) static void tile_##name(int kc, const float *const *xr,         \
                                                         const float *panel, float *c,           \
                                                         size_t ldc, int cont)                   \
    {                                                                                           \
        ROWS6(T8_INIT)                                                                          \
        for (int k = 0; k < kc; k++) {                                                          \
            __m256 w0 = _mm256_loadu_ps(panel + (size_t)k * TILE8_NR);                          \
            __m256 w1 = _mm256_loadu_ps(panel + (size_t)k * TILE8_NR + 8);                      \
            __m256 x;                                                                           \
            ROWS6(T8_STEP_##name)                                                               \
        }                                                                                       \
        ROWS6(T8_STORE)                                                                         \
    }
#define T8_STEP(i, STEP)                                                                        \
    x = _mm256_broadcast_ss(x##i + k);                                                          \
    a0_##i = STEP(x, w0, a0_##i);                                                               \
    a1_##i = STEP(x, w1, a1_##i);
/* AVX without FMA (Sandy Bridge, Ivy Bridge): the unfused family, the product rounded. */
#define STEP_MUL_ADD(x, w, acc) _mm256_add_ps(acc, _mm256_mul_ps(x, w))
#define T8_STEP_avx(i) T8_STEP(i, STEP_MUL_ADD)
TILE8(avx, "avx")
/* AVX with FMA3 (Haswell and later, AMD since Piledriver): the fused family. */
#define STEP_FMA(x, w, acc) _mm256_fmadd_ps(x, w, acc)
#define T8_STEP_avx2(i) T8_STEP(i, STEP_FMA)
TILE8(avx2, "avx,fma")

#define AVX512_MR 12
#define AVX512_NR 32
#define T16_INIT(i)                                                                             \
    const float *x##i = xr[i];                                                                  \
    __m512 a0_##i = cont ? _mm512_loadu_ps(c + (size_t)(i)*ldc) : _mm512_setzero_ps();          \
    __m512 a1_##i = cont ? _mm512_loadu_ps(c + (size_t)(i)*ldc + 16) : _mm512_setzero_ps();
#define T16_STEP(i)                                                                             \
    x = _mm512_set1_ps(x##i[k]);                                                                \
    a0_##i = _mm512_fmadd_ps(x, w0, a0_##i);                                                    \
    a1_##i = _mm512_fmadd_ps(x, w1, a1_##i);
#define T16_STORE(i)                                                                            \
    _mm512_storeu_ps(c + (size_t)(i)*ldc, a0_##i);                                              \
    _mm512_storeu_ps(c + (size_t)(i)*ldc + 16, a1_##i);
__attribute__((target("avx512f"))) static void tile_avx512(int kc, const float *const *xr,
                                                           const float *panel, float *c,
                                                           size_t ldc, int cont)
{
    ROWS12(T16_INIT)
    for (int k = 0; k < kc; k++) {
        __m512 w0 = _mm512_loadu_ps(panel + (size_t)k * AVX512_NR);
        __m512 w1 = _mm512_loadu_ps(panel + (size_t)k * AVX512_NR + 16);
        __m512 x;
        ROWS12(T16_STEP)
    }
    ROWS12(T16_STORE)
}
#endif

static const struct vnp_cpu_matmul_kernel {
    const char *name;
    int mr, nr;
    int fused; /* fma chains (else rounded products added) */
    tile_fn tile;
} kernels[] = { /* slowest first */
    {"generic", GENERIC_MR, GENERIC_NR, GENERIC_FUSED, tile_generic},
#ifdef VNP_MATMUL_X86
    {"avx", TILE8_MR, TILE8_NR, 0, tile_avx},
    {"avx2", TILE8_MR, TILE8_NR, 1, tile_avx2},
    {"avx512", AVX512_MR, AVX512_NR, 1, tile_avx512},
#endif
};

static int kernel_supported(const struct vnp_cpu_matmul_kernel *k)
{
#ifdef VNP_MATMUL_X86
    if (k->tile == tile_avx)
        return __builtin_cpu_supports("avx");
    if (k->tile == tile_avx2) /* named for the CPUs that have it; needs AVX and FMA3 only */
        return __builtin_cpu_supports("avx") && __builtin_cpu_supports("fma");
    if (k->tile == tile_avx512)
        return __builtin_cpu_supports("avx512f");
#endif
    return 1;
}

vnp_code vnp_cpu_matmul_select(const char *want, const vnp_cpu_matmul_kernel **out,
                               vnp_error *err)
{
    size_t n = sizeof kernels / sizeof *kernels;
    if (want && *want) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(want, kernels[i].name)) {
                if (!kernel_supported(&kernels[i]))
                    return vnp_fail(err, VNP_EINVAL,
                                    "VIRNUCPRO_CPU_KERNEL=%s: this CPU lacks the instructions "
                                    "of that kernel; unset it or choose generic",
                                    want);
                *out = &kernels[i];
                return VNP_OK;
            }
        return vnp_fail(err, VNP_EINVAL,
                        "VIRNUCPRO_CPU_KERNEL=%s: not a CPU matmul kernel of this build "
                        "(generic%s)",
                        want, n > 1 ? ", avx, avx2, avx512" : "");
    }
    *out = &kernels[0];
    for (size_t i = 1; i < n; i++)
        if (kernel_supported(&kernels[i]))
            *out = &kernels[i];
    return VNP_OK;
}

const char *vnp_cpu_matmul_name(const vnp_cpu_matmul_kernel *k) { return k->name; }

int vnp_cpu_matmul_fused(const vnp_cpu_matmul_kernel *k) { return k->fused; }

size_t vnp_cpu_matmul_scratch(void)
{
    /* the packed W block, a zero row, and a tile for the tails */
    return (size_t)KC * NC + KC + (size_t)MR_MAX * NR_MAX;
}

/* Packs channels [n0, n0 + nc) of w, k-block [k0, k0 + kc), into nr-wide panels, the
 * channels past nc zero. */
static void pack_w(const float *w, size_t ldw, int n0, int nc, int k0, int kc, int nr,
                   float *pk)
{
    for (int p = 0; p < nc; p += nr) {
        int cols = nc - p < nr ? nc - p : nr;
        float *dst = pk + (size_t)p * kc;
        for (int j = 0; j < cols; j++) {
            const float *src = w + (size_t)(n0 + p + j) * ldw + (size_t)k0;
            for (int k = 0; k < kc; k++)
                dst[(size_t)k * nr + (size_t)j] = src[k];
        }
        for (int j = cols; j < nr; j++)
            for (int k = 0; k < kc; k++)
                dst[(size_t)k * nr + (size_t)j] = 0.0f;
    }
}

void vnp_cpu_matmul_nt(const vnp_cpu_matmul_kernel *kern, const float *x, size_t ldx, int rows,
                       const float *w, size_t ldw, int cols, int K, float *out, size_t ldo,
                       float *scratch)
{
    const int mr = kern->mr, nr = kern->nr;
    float *pk = scratch, *zero = pk + (size_t)KC * NC, *tmp = zero + KC;
    memset(zero, 0, KC * sizeof *zero);
    if (K <= 0) { /* an empty sum: +0, as the chain starts */
        for (int r = 0; r < rows; r++)
            memset(out + (size_t)r * ldo, 0, (size_t)cols * sizeof *out);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC, cont = k0 > 0;
        for (int n0 = 0; n0 < cols; n0 += NC) {
            int nc = cols - n0 < NC ? cols - n0 : NC;
            pack_w(w, ldw, n0, nc, k0, kc, nr, pk);
            for (int m0 = 0; m0 < rows; m0 += mr) {
                int mrows = rows - m0 < mr ? rows - m0 : mr;
                const float *xr[MR_MAX];
                for (int i = 0; i < mr; i++)
                    xr[i] = i < mrows ? x + (size_t)(m0 + i) * ldx + (size_t)k0 : zero;
                for (int p = 0; p < nc; p += nr) {
                    int pc = nc - p < nr ? nc - p : nr;
                    float *c = out + (size_t)m0 * ldo + (size_t)(n0 + p);
                    if (mrows == mr && pc == nr) {
                        kern->tile(kc, xr, pk + (size_t)p * kc, c, ldo, cont);
                        continue;
                    }
                    memset(tmp, 0, (size_t)MR_MAX * NR_MAX * sizeof *tmp);
                    for (int i = 0; i < mrows && cont; i++)
                        memcpy(tmp + (size_t)i * nr, c + (size_t)i * ldo,
                               (size_t)pc * sizeof *tmp);
                    kern->tile(kc, xr, pk + (size_t)p * kc, tmp, (size_t)nr, cont);
                    for (int i = 0; i < mrows; i++)
                        memcpy(c + (size_t)i * ldo, tmp + (size_t)i * nr,
                               (size_t)pc * sizeof *tmp);
                }
            }
        }
    }
}
