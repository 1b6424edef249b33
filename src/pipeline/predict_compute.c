/* predict, stage 2: each window's ORFs through both encoders in token-budget
 * batches, the merged [DNABERT-S | ESM-2] features through the classifier. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/predict_internal.h"

typedef struct scratch {
    int32_t *tok, *cu;
    size_t tok_cap, cu_cap;
    float *emb;
    size_t emb_cap;
    size_t *len;
    size_t len_cap;
    vnp_encoder_fp32 *fp32[2]; /* FP32 copies of DNABERT-S / ESM-2 for the NaN/Inf guard */
    size_t batches;            /* encoder batches so far (both models), for the log */
} scratch;

/* "id1, id2, ... and N more" of the sequences of a batch. */
static void batch_ids(const vnp_window *w, const vnp_packing *p, const vnp_pack_batch *bt,
                      char *buf, size_t cap)
{
    size_t used = 0, shown = 0;
    buf[0] = '\0';
    for (size_t j = 0; j < bt->count && shown < 8; j++, shown++) {
        const vnp_win_orf *o = &w->orf[p->order[bt->first + j]];
        int n = snprintf(buf + used, cap - used, "%s%.*s", j ? ", " : "", (int)o->id_len,
                         w->text + o->id_off);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
    if (shown < bt->count)
        snprintf(buf + used, cap - used, " and %zu more", bt->count - shown);
}

static int reserve(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 1;
    void *n = realloc(*p, need * sz);
    if (!n)
        return 0;
    *p = n;
    *cap = need;
    return 1;
}

/* Embeds every ORF of w with enc (DNA ids when dna, else protein ids) and
 * writes the pooled vectors into columns [col, col + hidden) of w->features. */
static vnp_code embed_all(vnp_predict_ctx *c, vnp_window *w, vnp_encoder *enc, int dna,
                          int hidden, int col, scratch *s, vnp_error *err)
{
    if (!reserve((void **)&s->len, &s->len_cap, w->norf, sizeof *s->len))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->norf; i++)
        s->len[i] = dna ? w->orf[i].dna_len : w->orf[i].esm_len;
    vnp_packing p;
    vnp_code rc = vnp_pack(s->len, w->norf, c->batch_tokens, 0, &p, err);
    if (rc)
        return rc;
    const int32_t *ids = dna ? w->dna.v : w->esm.v;
    for (size_t b = 0; b < p.nbatches && rc == VNP_OK; b++) {
        const vnp_pack_batch *bt = &p.batches[b];
        if (!reserve((void **)&s->tok, &s->tok_cap, bt->tokens, sizeof *s->tok) ||
            !reserve((void **)&s->cu, &s->cu_cap, bt->count + 1, sizeof *s->cu) ||
            !reserve((void **)&s->emb, &s->emb_cap, bt->count * (size_t)hidden, sizeof *s->emb)) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory for a batch of %zu tokens", bt->tokens);
            break;
        }
        size_t t = 0;
        s->cu[0] = 0;
        for (size_t j = 0; j < bt->count; j++) {
            const vnp_win_orf *o = &w->orf[p.order[bt->first + j]];
            size_t off = dna ? o->dna_off : o->esm_off, n = dna ? o->dna_len : o->esm_len;
            memcpy(s->tok + t, ids + off, n * sizeof *ids);
            t += n;
            s->cu[j + 1] = (int32_t)t;
        }
        vnp_batch batch = {s->tok, s->cu, (int)bt->count};
        int recomputed = 0;
        size_t batch_no = s->batches++;
        rc = vnp_encoder_embed_checked(enc, &s->fp32[dna ? 0 : 1], &batch, s->emb, &recomputed,
                                       err);
        if (recomputed || rc == VNP_ENUMERIC) {
            char ids_list[768];
            batch_ids(w, &p, bt, ids_list, sizeof ids_list);
            if (recomputed)
                vnp_warn("%s batch %zu (%zu sequences, %zu tokens: %s) produced NaN/Inf in "
                         "reduced precision; recomputed in FP32",
                         dna ? "DNABERT-S" : "ESM-2", batch_no, bt->count, t, ids_list);
            else
                vnp_error_prefix(err, "sequences %s: ", ids_list);
        }
        if (rc) {
            const vnp_win_orf *o = &w->orf[p.order[bt->first]];
            vnp_error_prefix(err, "%s batch of %zu sequences starting with %.*s: ",
                             dna ? "DNABERT-S" : "ESM-2", bt->count, (int)o->id_len,
                             w->text + o->id_off);
            break;
        }
        for (size_t j = 0; j < bt->count; j++)
            memcpy(w->features + p.order[bt->first + j] * (size_t)c->width + col,
                   s->emb + j * (size_t)hidden, (size_t)hidden * sizeof(float));
        pthread_mutex_lock(&c->mu); /* tokens/s on the progress line, batch by batch */
        c->st.tokens += t;
        if (!dna) /* ESM-2 runs second: these ORFs are through both */
            c->orfs_embedded += bt->count;
        pthread_mutex_unlock(&c->mu);
        vnp_predict_tick(c, 0);
    }
    vnp_packing_free(&p);
    return rc;
}

/* No NaN or Inf reaches an output file. */
static vnp_code check_finite(const vnp_window *w, int width, vnp_error *err)
{
    for (size_t i = 0; i < w->norf; i++) {
        const float *f = w->features + i * (size_t)width;
        int bad = !isfinite(w->probs[2 * i]) || !isfinite(w->probs[2 * i + 1]);
        for (int k = 0; k < width && !bad; k++)
            bad = !isfinite(f[k]);
        if (bad)
            return vnp_fail(err, VNP_ENUMERIC,
                            "non-finite embedding or score for %.*s; nothing was written for "
                            "it (try --device cpu or VIRNUCPRO_DISABLE_FP16=1)",
                            (int)w->orf[i].id_len, w->text + w->orf[i].id_off);
    }
    return VNP_OK;
}

static vnp_code compute_window(vnp_predict_ctx *c, vnp_window *w, scratch *s, vnp_error *err)
{
    vnp_code rc = vnp_window_alloc_outputs(w, c->width, err);
    if (rc || w->norf == 0)
        return rc;
    if ((rc = embed_all(c, w, c->dnabert, 1, c->hd, 0, s, err)) ||
        (rc = embed_all(c, w, c->esm, 0, c->he, c->hd, s, err)))
        return rc;
    if ((rc = vnp_classifier_predict(c->cls, w->features, w->norf, w->probs, err)))
        return rc;
    if ((rc = check_finite(w, c->width, err)))
        return rc;
    if (!c->o->embeddings) { /* the writer needs only the scores */
        free(w->features);
        w->features = NULL;
    }
    return VNP_OK;
}

void vnp_predict_compute_loop(vnp_predict_ctx *c)
{
    scratch s;
    memset(&s, 0, sizeof s);
    vnp_window *w;
    vnp_error err;
    while ((w = vnp_win_queue_pop(c->to_compute))) {
        if (compute_window(c, w, &s, &err) != VNP_OK) {
            vnp_window_free(w);
            vnp_predict_fail(c, &err);
            break;
        }
        if (!vnp_win_queue_push(c->to_write, w)) {
            vnp_window_free(w);
            break;
        }
    }
    vnp_win_queue_close(c->to_write);
    free(s.tok);
    free(s.cu);
    free(s.emb);
    free(s.len);
    vnp_encoder_fp32_free(s.fp32[0]);
    vnp_encoder_fp32_free(s.fp32[1]);
}
