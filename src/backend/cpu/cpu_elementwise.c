/* Row-wise ops of the CPU backend: embedding lookup, gated GELU, mean pooling. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

/* ---- embedding: out[i,:] = (table[ids[i],:] + add_row) * scale ---- */
typedef struct {
    const float *table, *add;
    const int32_t *ids;
    float *out;
    float scale;
    int H;
} emb_job;

static void emb_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const emb_job *j = ctx;
    for (size_t r = begin; r < end; r++) {
        const float *src = j->table + (size_t)j->ids[r] * j->H;
        float *o = j->out + r * (size_t)j->H;
        for (int i = 0; i < j->H; i++)
            o[i] = (j->add ? src[i] + j->add[i] : src[i]) * j->scale;
    }
}

vnp_code vnp_cpu_embedding(vnp_backend *be, const vnp_buf *table, const vnp_buf *ids, int T,
                           int H, const vnp_buf *add_row, float scale, vnp_buf *out,
                           vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (T < 0 || H <= 0 || ids->n < (size_t)T || out->n < (size_t)T * H ||
        (add_row && add_row->n < (size_t)H))
        return vnp_fail(err, VNP_EINVAL, "embedding of %d tokens of width %d: a buffer is too small",
                        T, H);
    size_t rows = table->n / (size_t)H;
    const int32_t *id = ids->ptr;
    for (int i = 0; i < T; i++)
        if (id[i] < 0 || (size_t)id[i] >= rows)
            return vnp_fail(err, VNP_EINVAL,
                            "token id %d at position %d is outside the embedding table (%zu rows)",
                            id[i], i, rows);
    emb_job j = {table->ptr, add_row ? add_row->ptr : NULL, id, out->ptr, scale, H};
    vnp_cpu_pool_run(c->pool, (size_t)T, (size_t)(16384 / H) + 1, emb_rows, &j);
    return VNP_OK;
}

/* ---- gated GELU: out[m,:] = gelu(x[m,:inter]) * x[m,inter:2*inter] ---- */
typedef struct {
    const float *x;
    float *out;
    int inter;
} gg_job;

static void gg_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const gg_job *j = ctx;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->x + r * 2 * (size_t)j->inter;
        float *o = j->out + r * (size_t)j->inter;
        for (int i = 0; i < j->inter; i++)
            o[i] = vnp_gelu_erf(x[i]) * x[j->inter + i];
    }
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
    gg_job j = {x->ptr, out->ptr, inter};
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
    int H;
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
    unsigned bad = 0;
    for (size_t s = begin; s < end; s++) {
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
        float *o = j->out + s * (size_t)H;
        for (int k = 0; k < H; k++)
            o[k] = acc[k] / (float)n;
        bad |= vnp_cpu_nonfinite_bits(o, (size_t)H);
    }
    if (bad)
        atomic_store(&j->c->nonfinite, 1);
}

vnp_code vnp_cpu_mean_pool(vnp_backend *be, const vnp_buf *x, int H, const int32_t *row_begin,
                           const int32_t *row_end, int nseq, float *out, vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    size_t rows = x->n / (size_t)(H > 0 ? H : 1);
    if (H <= 0 || nseq < 0)
        return vnp_fail(err, VNP_EINVAL, "mean pooling of %d sequences of width %d", nseq, H);
    for (int s = 0; s < nseq; s++)
        if (row_begin[s] < 0 || row_end[s] <= row_begin[s] || (size_t)row_end[s] > rows)
            return vnp_fail(err, VNP_EINVAL,
                            "mean pooling of sequence %d over rows [%d, %d) of %zu: the range "
                            "must be non-empty and inside the buffer",
                            s, row_begin[s], row_end[s], rows);
    vnp_code rc = vnp_cpu_reserve_scratch(c, POOL_LEVELS * (size_t)H, err);
    if (rc)
        return rc;
    pool_job j = {c, x->ptr, row_begin, row_end, out, H};
    vnp_cpu_pool_run(c->pool, (size_t)nseq, 1, pool_seqs, &j);
    return VNP_OK;
}
