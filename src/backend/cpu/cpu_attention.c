/* Variable-length multi-head self-attention over packed sequences.
 * One task per (sequence, head): S = Q K^T (sgemm), position terms, softmax
 * in FP32, O = P V (sgemm) written straight into the head's columns of out.
 *
 * Rotary (ESM-2, as fair-esm): q is multiplied by the scale first, then q and
 * k are rotated with rotate_half over all head dims, angle = position *
 * inv_freq[i] in float32, positions restarting at 0 for every sequence.
 * ALiBi (DNABERT-S, as bert_layers.py): scores * scale + slope[h] * -|i - j|.
 *
 * Emulated precisions follow the CUDA tensor-core kernel (cuda_attention.cu) instead:
 * see attn_task_emulated. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backend.h"

typedef struct {
    vnp_cpu *c;
    const float *qkv;
    float *out;
    const int32_t *cu;
    const vnp_attn_desc *d;
    const float *cos_t, *sin_t; /* [max_len, head_dim/2] for rotary */
    const float *slopes;
    int heads, hd, H;
    size_t seq_stride; /* scratch floats per task */
    int max_len;
    vnp_numfmt round;  /* emulation: the activation format (VNP_FMT_F32: FP32) */
} attn_job;

/* dst[L, hd] = rotary(src * scale), src rows `ld` apart. */
static void rotate_rows(const float *src, size_t ld, int L, int hd, float scale,
                        const float *cos_t, const float *sin_t, float *dst)
{
    int half = hd / 2;
    for (int p = 0; p < L; p++) {
        const float *x = src + (size_t)p * ld;
        const float *cs = cos_t + (size_t)p * half, *sn = sin_t + (size_t)p * half;
        float *o = dst + (size_t)p * hd;
        for (int i = 0; i < half; i++) {
            float x1 = x[i] * scale, x2 = x[i + half] * scale;
            o[i] = x1 * cs[i] + (-x2) * sn[i];
            o[i + half] = x2 * cs[i] + x1 * sn[i];
        }
    }
}

#define LOG2E 1.4426950408889634f
#define KEY_TILE 64 /* keys per tile of the CUDA kernel (its BN) */

/* dst[L, hd] = round(rotary(src) * mul) (rotary when cos_t is set, else src * mul). */
static void load_rounded(const float *src, size_t ld, int L, int hd, float mul,
                         const float *cos_t, const float *sin_t, vnp_numfmt f, float *dst)
{
    int half = hd / 2;
    for (int p = 0; p < L; p++) {
        const float *x = src + (size_t)p * ld;
        float *o = dst + (size_t)p * hd;
        if (cos_t) {
            const float *cs = cos_t + (size_t)p * half, *sn = sin_t + (size_t)p * half;
            for (int i = 0; i < half; i++) {
                float x1 = x[i], x2 = x[i + half];
                o[i] = (x1 * cs[i] - x2 * sn[i]) * mul;
                o[i + half] = (x2 * cs[i] + x1 * sn[i]) * mul;
            }
        } else {
            for (int i = 0; i < hd; i++)
                o[i] = x[i] * mul;
        }
        vnp_round_array(f, o, (size_t)hd);
    }
}

/* One (sequence, head) as the CUDA tensor-core kernel computes it, with R the rounding
 * to the activation format: Q' = R(rotary(q) * scale * log2(e)) and K' = R(rotary(k))
 * (without rotary Q' = R(q * scale * log2(e)), K as it is); S = Q' K'^T in FP32, base-2
 * logits; ALiBi subtracts slope * log2(e) * |i - j|; keys in tiles of 64, m_t the running
 * row maximum up to tile t; p = exp2(s - m_t); l = sum of p, each rescaled to the final
 * maximum m; out = R(sum R(p) 2^(m_t - m) v / l). (The kernel rescales its accumulator
 * tile by tile; the products of those factors are the 2^(m_t - m) here.) */
static void attn_task_emulated(const attn_job *j, size_t task, float *scr)
{
    int s = (int)(task / (size_t)j->heads), h = (int)(task % (size_t)j->heads);
    int start = j->cu[s], L = j->cu[s + 1] - j->cu[s], hd = j->hd;
    if (L <= 0)
        return;
    size_t ld = 3 * (size_t)j->H;
    const float *q = j->qkv + (size_t)start * ld + (size_t)h * hd;
    const float *k = q + j->H;
    const float *v = q + 2 * (size_t)j->H;
    float *S = scr;
    float *qr = S + (size_t)j->max_len * j->max_len;
    float *kr = qr + (size_t)j->max_len * hd;
    float *linv = kr + (size_t)j->max_len * hd;
    int rot = j->d->pos == VNP_POS_ROTARY;
    load_rounded(q, ld, L, hd, j->d->scale * LOG2E, rot ? j->cos_t : NULL, j->sin_t, j->round,
                 qr);
    size_t ldk = ld;
    if (rot) {
        load_rounded(k, ld, L, hd, 1.0f, j->cos_t, j->sin_t, j->round, kr);
        k = kr;
        ldk = (size_t)hd;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, hd, 1.0f, qr, hd, k, (int)ldk,
                0.0f, S, L);
    float slope = j->d->pos == VNP_POS_ALIBI ? j->slopes[h] * LOG2E : 0.0f;
    for (int i = 0; i < L; i++) {
        float *row = S + (size_t)i * L;
        if (j->d->pos == VNP_POS_ALIBI)
            for (int c = 0; c < L; c++)
                row[c] -= slope * (float)abs(i - c);
        float m = -INFINITY;
        for (int c = 0; c < L; c++) /* the final maximum */
            m = row[c] > m ? row[c] : m;
        float l = 0.0f, mt = -INFINITY;
        for (int k0 = 0; k0 < L; k0 += KEY_TILE) {
            int k1 = k0 + KEY_TILE < L ? k0 + KEY_TILE : L;
            for (int c = k0; c < k1; c++)
                mt = row[c] > mt ? row[c] : mt;
            float g = exp2f(mt - m), sum = 0.0f;
            for (int c = k0; c < k1; c++) {
                float p = exp2f(row[c] - mt);
                sum += p;
                row[c] = vnp_round_to(j->round, p) * g;
            }
            l += sum * g;
        }
        linv[i] = 1.0f / l;
    }
    float *o = j->out + (size_t)start * j->H + (size_t)h * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, hd, L, 1.0f, S, L, v, (int)ld,
                0.0f, o, j->H);
    unsigned bad = 0;
    for (int i = 0; i < L; i++) {
        float *r = o + (size_t)i * j->H;
        for (int c = 0; c < hd; c++)
            r[c] *= linv[i];
        vnp_round_array(j->round, r, (size_t)hd);
        bad |= vnp_cpu_nonfinite_bits(r, (size_t)hd);
    }
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

static void attn_task(void *ctx, size_t begin, size_t end, int worker)
{
    const attn_job *j = ctx;
    float *scr = j->c->scratch[worker];
    if (j->round) {
        for (size_t task = begin; task < end; task++)
            attn_task_emulated(j, task, scr);
        return;
    }
    size_t ld = 3 * (size_t)j->H;
    for (size_t task = begin; task < end; task++) {
        int s = (int)(task / (size_t)j->heads), h = (int)(task % (size_t)j->heads);
        int start = j->cu[s], L = j->cu[s + 1] - j->cu[s];
        if (L <= 0)
            continue;
        const float *q = j->qkv + (size_t)start * ld + (size_t)h * j->hd;
        const float *k = q + j->H;
        const float *v = q + 2 * (size_t)j->H;
        float *S = scr;
        size_t ldq = ld, ldk = ld;
        float alpha = j->d->scale;
        if (j->d->pos == VNP_POS_ROTARY) {
            float *qr = scr + (size_t)j->max_len * j->max_len;
            float *kr = qr + (size_t)j->max_len * j->hd;
            rotate_rows(q, ld, L, j->hd, j->d->scale, j->cos_t, j->sin_t, qr);
            rotate_rows(k, ld, L, j->hd, 1.0f, j->cos_t, j->sin_t, kr);
            q = qr;
            k = kr;
            ldq = ldk = (size_t)j->hd;
            alpha = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, j->hd, alpha, q, (int)ldq, k,
                    (int)ldk, 0.0f, S, L);
        float slope = j->d->pos == VNP_POS_ALIBI ? j->slopes[h] : 0.0f;
        for (int i = 0; i < L; i++) {
            float *row = S + (size_t)i * L;
            if (j->d->pos == VNP_POS_ALIBI)
                for (int c = 0; c < L; c++)
                    row[c] += slope * -(float)abs(c - i);
            float mx = row[0];
            for (int c = 1; c < L; c++)
                mx = row[c] > mx ? row[c] : mx;
            float sum = 0.0f;
            for (int c = 0; c < L; c++) {
                row[c] = expf(row[c] - mx);
                sum += row[c];
            }
            for (int c = 0; c < L; c++)
                row[c] /= sum;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, j->hd, L, 1.0f, S, L, v,
                    (int)ld, 0.0f, j->out + (size_t)start * j->H + (size_t)h * j->hd, j->H);
    }
}

vnp_code vnp_cpu_attention(vnp_backend *be, const vnp_buf *qkv, const vnp_buf *cu_seqlens,
                           int nseq, int max_len, int T, const vnp_attn_desc *desc, vnp_buf *out,
                           vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    int heads = desc->heads, hd = desc->head_dim, H = heads * hd;
    if (heads <= 0 || hd <= 0 || nseq < 0 || T < 0 || qkv->n < (size_t)T * 3 * H ||
        out->n < (size_t)T * H || cu_seqlens->n < (size_t)nseq + 1)
        return vnp_fail(err, VNP_EINVAL,
                        "attention over %d tokens, %d heads of %d: a buffer is too small", T,
                        heads, hd);
    if (qkv->ptr == out->ptr)
        return vnp_fail(err, VNP_EINVAL, "attention cannot write over its qkv input");
    const int32_t *cu = cu_seqlens->ptr;
    if (cu[0] != 0 || cu[nseq] != T)
        return vnp_fail(err, VNP_EINVAL, "cu_seqlens runs from %d to %d; expected 0 to %d", cu[0],
                        cu[nseq], T);
    for (int s = 0; s < nseq; s++)
        if (cu[s + 1] < cu[s] || cu[s + 1] - cu[s] > max_len)
            return vnp_fail(err, VNP_EINVAL,
                            "sequence %d spans [%d, %d): lengths must be 0..max_len (%d)", s,
                            cu[s], cu[s + 1], max_len);
    if (desc->pos == VNP_POS_ROTARY && (hd % 2 || !desc->inv_freq || desc->inv_freq->n < (size_t)hd / 2))
        return vnp_fail(err, VNP_EINVAL, "rotary attention needs an even head dim and %d inv_freq values",
                        hd / 2);
    if (desc->pos == VNP_POS_ALIBI && (!desc->slopes || desc->slopes->n < (size_t)heads))
        return vnp_fail(err, VNP_EINVAL, "ALiBi attention needs %d slopes", heads);

    size_t per_task = (size_t)max_len * max_len;
    if (c->act != VNP_FMT_F32)
        per_task += 2 * (size_t)max_len * hd + (size_t)max_len; /* Q', K', 1 / l */
    else if (desc->pos == VNP_POS_ROTARY)
        per_task += 2 * (size_t)max_len * hd;
    vnp_code rc = vnp_cpu_reserve_scratch(c, per_task, err);
    if (rc)
        return rc;

    float *table = NULL;
    attn_job j = {c, qkv->ptr, out->ptr, cu, desc, NULL, NULL,
                  desc->slopes ? desc->slopes->ptr : NULL, heads, hd, H, per_task, max_len,
                  c->act};
    if (desc->pos == VNP_POS_ROTARY) {
        int half = hd / 2;
        table = malloc(2 * (size_t)max_len * half * sizeof(float));
        if (!table)
            return vnp_fail(err, VNP_ENOMEM, "out of memory for rotary tables of %d positions",
                            max_len);
        const float *inv = desc->inv_freq->ptr;
        for (int p = 0; p < max_len; p++)
            for (int i = 0; i < half; i++) {
                float angle = (float)p * inv[i];
                table[(size_t)p * half + i] = cosf(angle);
                table[((size_t)max_len + p) * half + i] = sinf(angle);
            }
        j.cos_t = table;
        j.sin_t = table + (size_t)max_len * half;
    }
    vnp_cpu_pool_run(c->pool, (size_t)nseq * heads, 1, attn_task, &j);
    free(table);
    return VNP_OK;
}
