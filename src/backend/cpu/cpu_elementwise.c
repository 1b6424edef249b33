/* Row-wise ops of the CPU backend: embedding lookup, gated GELU, mean pooling,
 * scale and shift. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

/* ---- embedding: out[i,:] = (table[ids[i],:] + add_row) * scale ----
 * As on the GPU, an id outside the table is not read: its row is computed from
 * zeros and the guard's bad-token bit is set (the model has checked the ids, so
 * this is a bug or a corrupt batch, reported when the guard is read). */
typedef struct {
    vnp_cpu *c;
    const float *table, *add;
    const int32_t *ids;
    float *out;
    float scale;
    int H;
    size_t rows;     /* of the table */
    vnp_numfmt round; /* emulation: the activation format of the output */
} emb_job;

static void emb_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const emb_job *j = ctx;
    unsigned bad = 0, bad_id = 0;
    for (size_t r = begin; r < end; r++) {
        float *o = j->out + r * (size_t)j->H;
        int32_t id = j->ids[r];
        if (id < 0 || (size_t)id >= j->rows) {
            bad_id = 1;
            for (int i = 0; i < j->H; i++)
                o[i] = (j->add ? j->add[i] : 0.0f) * j->scale;
        } else {
            const float *src = j->table + (size_t)id * j->H;
            for (int i = 0; i < j->H; i++)
                o[i] = (j->add ? src[i] + j->add[i] : src[i]) * j->scale;
        }
        if (j->round)
            vnp_round_array(j->round, o, (size_t)j->H);
        bad |= vnp_cpu_nonfinite_bits(o, (size_t)j->H);
    }
    if (bad_id)
        vnp_cpu_guard_set(j->c, VNP_GUARD_BAD_TOKEN);
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

vnp_code vnp_cpu_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                           int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                           vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (T < 0 || H <= 0 || ids->dtype != VNP_DT_I32 || ids->n < (size_t)T ||
        out->n < (size_t)T * H || (add_row && add_row->n < (size_t)H))
        return vnp_fail(err, VNP_EINVAL, "embedding of %d tokens of width %d: a buffer is too small",
                        T, H);
    emb_job j = {c, table->ptr, add_row ? add_row->ptr : NULL, ids->ptr, out->ptr, scale, H,
                 table->n / (size_t)H, c->act};
    vnp_cpu_pool_run(c->pool, (size_t)T, (size_t)(16384 / H) + 1, emb_rows, &j);
    return VNP_OK;
}

/* ---- gated GELU: out[m,:] = gelu(x[m,:inter]) * x[m,inter:2*inter] ---- */
typedef struct {
    vnp_cpu *c;
    const float *x;
    float *out;
    int inter;
    vnp_numfmt round; /* emulation: the activation format of the output */
} gg_job;

static void gg_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const gg_job *j = ctx;
    unsigned bad = 0;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->x + r * 2 * (size_t)j->inter;
        float *o = j->out + r * (size_t)j->inter;
        for (int i = 0; i < j->inter; i++)
            o[i] = vnp_gelu_erf(x[i]) * x[j->inter + i];
        if (j->round)
            vnp_round_array(j->round, o, (size_t)j->inter);
        bad |= vnp_cpu_nonfinite_bits(o, (size_t)j->inter);
    }
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

vnp_code vnp_cpu_gated_gelu(vnp_backend *be, const vnp_buf *x, int M, int inter, vnp_buf *out,
                            vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (M < 0 || inter <= 0 || x->n < (size_t)M * 2 * inter || out->n < (size_t)M * inter)
        return vnp_fail(err, VNP_EINVAL, "gated GELU of %d rows of width %d: a buffer is too small",
                        M, inter);
    if (x->ptr == out->ptr)
        return vnp_fail(err, VNP_EINVAL, "gated GELU cannot write over its input");
    gg_job j = {c, x->ptr, out->ptr, inter, c->act};
    vnp_cpu_pool_run(c->pool, (size_t)M, (size_t)(16384 / inter) + 1, gg_rows, &j);
    return VNP_OK;
}

/* ---- mean pooling over row ranges ----
 * The sum runs in float32 in the order of PyTorch's CPU sum over an outer
 * dimension (a cascade: blocks of 2^p rows, p = max(4, ceil(log2 n) / 4), are
 * summed into level 0 and carried up four levels), then is divided by n, so
 * that pooling the reference's hidden states gives the reference's means bit
 * for bit. */
enum { POOL_LEVELS = 4 };

static int ceil_log2(int32_t n)
{
    int k = 0;
    while (k < 31 && ((int32_t)1 << k) < n)
        k++;
    return k;
}

typedef struct {
    vnp_cpu *c;
    const float *x;
    const int32_t *rb, *re;
    float *out;
    size_t rows; /* of x */
    int H, ld, col;
} pool_job;

static void add_row(float *acc, const float *x, int H)
{
    for (int i = 0; i < H; i++)
        acc[i] += x[i];
}

static void pool_seqs(void *ctx, size_t begin, size_t end, int worker)
{
    const pool_job *j = ctx;
    int H = j->H;
    float *acc = j->c->scratch[worker]; /* POOL_LEVELS rows of H */
    unsigned bad = 0, bad_range = 0;
    for (size_t s = begin; s < end; s++) {
        /* A range outside x or empty is flagged and its row left as it was, as on
         * the GPU (the ranges may live in device memory the host never reads). */
        if (j->rb[s] < 0 || j->re[s] <= j->rb[s] || (size_t)j->re[s] > j->rows) {
            bad_range = 1;
            continue;
        }
        int32_t n = j->re[s] - j->rb[s];
        const float *x = j->x + (size_t)j->rb[s] * H;
        int power = ceil_log2(n) / POOL_LEVELS;
        power = power > 4 ? power : 4;
        int32_t step = (int32_t)1 << power, mask = step - 1;
        memset(acc, 0, sizeof(float) * POOL_LEVELS * (size_t)H);
        int32_t i = 0;
        while (i + step <= n) {
            for (int32_t r = 0; r < step; r++, i++)
                add_row(acc, x + (size_t)i * H, H);
            for (int l = 1; l < POOL_LEVELS; l++) {
                add_row(acc + (size_t)l * H, acc + (size_t)(l - 1) * H, H);
                memset(acc + (size_t)(l - 1) * H, 0, sizeof(float) * (size_t)H);
                if (i & (mask << (l * power)))
                    break;
            }
        }
        for (; i < n; i++)
            add_row(acc, x + (size_t)i * H, H);
        for (int l = 1; l < POOL_LEVELS; l++)
            add_row(acc, acc + (size_t)l * H, H);
        float *o = j->out + s * (size_t)j->ld + (size_t)j->col;
        for (int k = 0; k < H; k++)
            o[k] = acc[k] / (float)n;
        bad |= vnp_cpu_nonfinite_bits(o, (size_t)H);
    }
    if (bad_range)
        vnp_cpu_guard_set(j->c, VNP_GUARD_BAD_SHAPE);
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

vnp_code vnp_cpu_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const vnp_buf *ranges,
                           int nseq, vnp_buf *out, int ld, int col, vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    /* Inconsistent call arguments are errors; bad range values are the guard's. */
    if (H <= 0 || nseq < 0 || col < 0 || ld < H || col > ld - H)
        return vnp_fail(err, VNP_EINVAL,
                        "mean pooling of %d sequences of width %d into columns [%d, %d) of rows "
                        "of %d",
                        nseq, H, col, col + H, ld);
    if (x->dtype != VNP_DT_F32 || ranges->dtype != VNP_DT_I32 || out->dtype != VNP_DT_F32 ||
        ranges->n < 2 * (size_t)nseq || out->n < (size_t)nseq * (size_t)ld)
        return vnp_fail(err, VNP_EINVAL,
                        "mean pooling of %d sequences: ranges (%zu %s) need %zu I32 entries and "
                        "the output (%zu %s) %zu F32 entries",
                        nseq, ranges->n, vnp_dtype_name(ranges->dtype), 2 * (size_t)nseq, out->n,
                        vnp_dtype_name(out->dtype), (size_t)nseq * (size_t)ld);
    if (nseq == 0)
        return VNP_OK;
    vnp_code rc = vnp_cpu_reserve_scratch(c, POOL_LEVELS * (size_t)H, err);
    if (rc)
        return rc;
    const int32_t *r = ranges->ptr;
    pool_job j = {c, x->ptr, r, r + nseq, out->ptr, x->n / (size_t)H, H, ld, col};
    vnp_cpu_pool_run(c->pool, (size_t)nseq, 1, pool_seqs, &j);
    return VNP_OK;
}

/* ---- scale and shift: out[m,n] = act(x[m,n] * scale[n] + shift[n]) ----
 * An eval-mode BatchNorm folded to one multiply-add per value. The ReLU keeps a
 * NaN a NaN (as torch.relu does) so that the guard sees it. */
typedef struct {
    vnp_cpu *c;
    const float *x, *scale, *shift;
    float *out;
    vnp_act act;
    int N;
} ss_job;

static void ss_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const ss_job *j = ctx;
    const float *sc = j->scale, *sh = j->shift;
    int N = j->N;
    unsigned bad = 0;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->x + r * (size_t)N;
        float *o = j->out + r * (size_t)N;
        /* One simple pass per step so that each loop vectorises (o may be x). */
        for (int n = 0; n < N; n++)
            o[n] = x[n] * sc[n] + sh[n];
        if (j->act == VNP_ACT_RELU)
            for (int n = 0; n < N; n++)
                o[n] = o[n] < 0.0f ? 0.0f : o[n];
        else if (j->act == VNP_ACT_GELU_ERF)
            for (int n = 0; n < N; n++)
                o[n] = vnp_gelu_erf(o[n]);
        bad |= vnp_cpu_nonfinite_bits(o, (size_t)N);
    }
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

vnp_code vnp_cpu_scale_shift(vnp_backend *be, const vnp_buf *x, const vnp_buf *scale,
                             const vnp_buf *shift, vnp_act act, int M, int N, vnp_buf *out,
                             vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (M < 0 || N <= 0 || x->dtype != VNP_DT_F32 || scale->dtype != VNP_DT_F32 ||
        shift->dtype != VNP_DT_F32 || out->dtype != VNP_DT_F32 || x->n < (size_t)M * N ||
        out->n < (size_t)M * N || scale->n < (size_t)N || shift->n < (size_t)N)
        return vnp_fail(err, VNP_EINVAL,
                        "scale_shift of %d rows of width %d: a buffer is too small or not F32", M,
                        N);
    if (act != VNP_ACT_NONE && act != VNP_ACT_RELU && act != VNP_ACT_GELU_ERF)
        return vnp_fail(err, VNP_EINVAL, "scale_shift: unknown activation %d", (int)act);
    ss_job j = {c, x->ptr, scale->ptr, shift->ptr, out->ptr, act, N};
    /* Small inputs (the classifier's batches) run inline: the pool does so when
     * everything fits one grain. */
    vnp_cpu_pool_run(c->pool, (size_t)M, (size_t)(16384 / N) + 1, ss_rows, &j);
    return VNP_OK;
}
