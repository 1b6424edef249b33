/* Validation metrics of a binary classifier, as the original train.py reports them
 * with scikit-learn: accuracy, precision, recall, F1 of the virus class from the
 * argmax call, ROC AUC from the virus probability (ties counted half). */
#include <math.h>
#include <stdlib.h>

#include "virnucpro/train.h"

typedef struct {
    float p;
    uint8_t y;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->p, y = ((const scored *)b)->p;
    return (x > y) - (x < y);
}

vnp_code vnp_binary_metrics_compute(const float *logits, const float *probs, const uint8_t *y,
                                    size_t n, vnp_binary_metrics *m, vnp_error *err)
{
    m->tp = m->fp = m->tn = m->fn = 0;
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        const float *l = logits + 2 * i;
        double mx = l[0] > l[1] ? l[0] : l[1];
        loss += mx + log(exp(l[0] - mx) + exp(l[1] - mx)) - l[y[i] ? 1 : 0];
        int call = probs[2 * i + 1] > probs[2 * i];
        if (call)
            y[i] ? m->tp++ : m->fp++;
        else
            y[i] ? m->fn++ : m->tn++;
    }
    m->loss = n ? loss / (double)n : NAN;
    m->accuracy = n ? (double)(m->tp + m->tn) / (double)n : NAN;
    m->precision = m->tp + m->fp ? (double)m->tp / (double)(m->tp + m->fp) : 0.0;
    m->recall = m->tp + m->fn ? (double)m->tp / (double)(m->tp + m->fn) : 0.0;
    m->f1 = 2 * m->tp + m->fp + m->fn
                ? 2.0 * (double)m->tp / (double)(2 * m->tp + m->fp + m->fn)
                : 0.0;
    size_t pos = m->tp + m->fn, neg = m->tn + m->fp;
    m->auroc = NAN;
    if (!pos || !neg)
        return VNP_OK;
    scored *s = malloc(n * sizeof *s);
    if (!s)
        return vnp_fail(err, VNP_ENOMEM, "out of memory computing the AUROC of %zu rows", n);
    for (size_t i = 0; i < n; i++) {
        s[i].p = probs[2 * i + 1];
        s[i].y = y[i] ? 1 : 0;
    }
    qsort(s, n, sizeof *s, by_score);
    /* Mann-Whitney: the sum of the positives' ranks, tied scores sharing their mean rank */
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t npos = 0;
        while (j < n && s[j].p == s[i].p)
            npos += s[j++].y;
        double mean_rank = ((double)(i + 1) + (double)j) / 2.0;
        rank_sum += mean_rank * (double)npos;
        i = j;
    }
    free(s);
    m->auroc = (rank_sum - (double)pos * ((double)pos + 1) / 2.0) / ((double)pos * (double)neg);
    return VNP_OK;
}
