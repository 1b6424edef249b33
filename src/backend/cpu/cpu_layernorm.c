/* layernorm: out = LayerNorm(x + residual) * gamma + beta, row by row.
 * Mean and variance (biased, as torch) are accumulated in double; an emulated
 * precision rounds the output to its activation format. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backend.h"

typedef struct {
    vnp_cpu *c;
    const float *x, *res, *g, *b;
    float *out;
    float eps;
    int H;
    vnp_numfmt round; /* emulation: the activation format of the output */
} ln_job;

static void ln_rows(void *ctx, size_t begin, size_t end, int worker)
{
    const ln_job *j = ctx;
    float *sum = j->c->scratch[worker];
    int H = j->H, bad = 0;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->x + r * (size_t)H;
        const float *res = j->res ? j->res + r * (size_t)H : NULL;
        double mean = 0.0;
        for (int i = 0; i < H; i++) {
            sum[i] = res ? x[i] + res[i] : x[i];
            mean += sum[i];
        }
        mean /= H;
        double var = 0.0;
        for (int i = 0; i < H; i++) {
            double d = sum[i] - mean;
            var += d * d;
        }
        var /= H;
        float rstd = (float)(1.0 / sqrt(var + (double)j->eps));
        float fmean = (float)mean;
        float *o = j->out + r * (size_t)H;
        for (int i = 0; i < H; i++) {
            float v = (sum[i] - fmean) * rstd * j->g[i] + j->b[i];
            o[i] = v;
            bad |= !isfinite(v);
        }
        if (j->round) {
            vnp_round_array(j->round, o, (size_t)H);
            bad |= (int)vnp_cpu_nonfinite_bits(o, (size_t)H); /* an FP16 overflow */
        }
    }
    if (bad)
        vnp_cpu_guard_set(j->c, VNP_GUARD_NONFINITE);
}

vnp_code vnp_cpu_layernorm(vnp_backend *be, const vnp_buf *x, const vnp_buf *residual,
                           const vnp_buf *gamma, const vnp_buf *beta, float eps, int M, int H,
                           vnp_buf *out, vnp_error *err)
{
    vnp_cpu *c = vnp_cpu_of(be);
    if (M < 0 || H <= 0 || x->n < (size_t)M * H || out->n < (size_t)M * H ||
        gamma->n < (size_t)H || beta->n < (size_t)H ||
        (residual && residual->n < (size_t)M * H))
        return vnp_fail(err, VNP_EINVAL, "layernorm of %d rows of width %d: a buffer is too small",
                        M, H);
    vnp_code rc = vnp_cpu_reserve_scratch(c, (size_t)H, err);
    if (rc)
        return rc;
    ln_job j = {c, x->ptr, residual ? residual->ptr : NULL, gamma->ptr, beta->ptr, out->ptr,
                eps, H, c->act};
    size_t grain = (size_t)(16384 / H) + 1;
    vnp_cpu_pool_run(c->pool, (size_t)M, grain, ln_rows, &j);
    return VNP_OK;
}
