/* predict, stage 1: records -> chunks -> kept frames -> token ids, grouped in
 * windows of about window_orfs ORFs (a long record may span windows). */
#include <stdio.h>
#include <string.h>

#include "pipeline/predict_internal.h"

typedef struct reader_state {
    vnp_predict_ctx *c;
    vnp_window *w;
    vnp_frames fr;
    vnp_error err;
    size_t records;
} reader_state;

static int push(reader_state *s, int eof)
{
    vnp_window *w = s->w;
    s->w = NULL;
    w->eof = eof;
    w->input_bytes = vnp_seq_bytes(s->c->reader);
    pthread_mutex_lock(&s->c->mu);
    s->c->records_read = s->records;
    pthread_mutex_unlock(&s->c->mu);
    w->records = s->records;
    return vnp_engine_push(s->c->eng, w, &s->err);
}

static vnp_code fresh_window(reader_state *s)
{
    s->w = vnp_window_new();
    if (!s->w)
        return vnp_fail(&s->err, VNP_ENOMEM, "out of memory");
    return VNP_OK;
}

static vnp_code add_segment(reader_state *s, const vnp_record *rec, size_t chunks, int first)
{
    vnp_win_seg seg;
    memset(&seg, 0, sizeof seg);
    vnp_code rc = vnp_window_text(s->w, rec->id, rec->id_len, &seg.id_off, &s->err);
    if (rc)
        return rc;
    seg.id_len = rec->id_len;
    seg.length = rec->len;
    seg.chunks = chunks;
    seg.first = first;
    seg.orf_begin = seg.orf_end = s->w->norf;
    return vnp_window_add_seg(s->w, &seg, &s->err);
}

static int window_full(const reader_state *s)
{
    return s->w->norf >= s->c->window_orfs || s->w->nseg >= 4 * s->c->window_orfs;
}

/* Returns VNP_OK, an error (in s->err), or -1 when a later stage stopped. */
static int one_record(reader_state *s, const vnp_record *rec)
{
    vnp_predict_ctx *c = s->c;
    size_t chunk_len = (size_t)c->o->chunk_len;
    size_t chunks = vnp_chunk_count(rec->len, chunk_len);
    s->records++;
    vnp_code rc;
    if (c->pre && (rc = vnp_preprocess_writer_add(c->pre, rec, &s->err)))
        return rc;
    if ((rc = add_segment(s, rec, chunks, 1)))
        return rc;
    for (size_t i = 0; i < chunks; i++) {
        size_t added;
        if ((rc = vnp_orfs_add_chunk(s->w, c->bpe, rec, chunk_len, i, &s->fr, &added, &s->err)))
            return rc;
        s->w->seg[s->w->nseg - 1].orf_end = s->w->norf;
        if (i + 1 < chunks && window_full(s)) { /* the record goes on in the next window */
            if (!push(s, 0))
                return -1;
            if ((rc = fresh_window(s)) || (rc = add_segment(s, rec, chunks, 0)))
                return rc;
        }
    }
    s->w->seg[s->w->nseg - 1].last = 1;
    if (window_full(s)) {
        if (!push(s, 0))
            return -1;
        if ((rc = fresh_window(s)))
            return rc;
    }
    return VNP_OK;
}

void *vnp_predict_reader_main(void *ctx)
{
    reader_state s;
    memset(&s, 0, sizeof s);
    s.c = ctx;
    vnp_frames_init(&s.fr);
    int rc = fresh_window(&s);
    vnp_record rec;
    int got = 0;
    /* --resume: the records already written are read past */
    while (rc == VNP_OK && s.records < s.c->skip_records &&
           (got = vnp_seq_read(s.c->reader, &rec, &s.err)) == 1)
        s.records++;
    if (rc == VNP_OK && got == 0 && s.records < s.c->skip_records)
        rc = vnp_fail(&s.err, VNP_EFORMAT,
                      "cannot resume: the input has %zu records, fewer than the %llu the "
                      "journal says are done",
                      s.records, (unsigned long long)s.c->skip_records);
    while (rc == VNP_OK && !vnp_engine_failed(s.c->eng) &&
           (got = vnp_seq_read(s.c->reader, &rec, &s.err)) == 1)
        rc = one_record(&s, &rec);
    if (rc == VNP_OK && got < 0)
        rc = -got;
    if (rc == VNP_OK && !vnp_engine_failed(s.c->eng))
        push(&s, 1);
    else if (rc > 0)
        vnp_predict_fail(s.c, &s.err);
    vnp_window_free(s.w);
    vnp_frames_free(&s.fr);
    vnp_engine_close(s.c->eng);
    return NULL;
}
