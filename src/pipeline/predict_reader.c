/* predict, stage 1: records -> chunks -> kept frames -> token ids, grouped in
 * windows of about window_orfs ORFs (a long record may span windows, cut at chunk
 * boundaries). The reader also keeps the SHA-256 of every record read (ID and
 * sequence), which each window carries for the journal: a resumed run proves that the
 * records it reads past are the ones the interrupted run wrote rows for. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "pipeline/predict_internal.h"
#include "pipeline/record_ids.h"
#include "pipeline/shard.h"
#include "virnucpro/hub.h"

typedef struct reader_state {
    vnp_predict_ctx *c;
    vnp_window *w;
    vnp_frames fr;
    vnp_error err;
    size_t records;  /* records read (with --shard, those of other shards too) */
    size_t selected; /* records taken: all of them, or this shard's */
    EVP_MD_CTX *sha; /* over the records read so far */
    /* --shard: sha as it was after the last record taken. The journal's digest covers the
     * records up to the last one with rows, so that --resume, which reads up to that
     * record, can check it whatever other shards' records follow. */
    EVP_MD_CTX *taken_sha;
    vnp_record_ids ids; /* duplicate IDs renamed <id>_dup<k> */
    gzFile spool;       /* stdin: the records as read, for viral.fna (derive.c) */
} reader_state;

/* stdin cannot be read twice: every record goes to the spool (gzip level 1) as it is
 * read, before its ID is deduplicated, so that reading the spool again gives the same
 * records and the same renamed IDs. */
static vnp_code spool_record(reader_state *s, const vnp_record *rec)
{
    if (!s->spool)
        return VNP_OK;
    if (gzputc(s->spool, '>') < 0 ||
        (rec->id_len && gzwrite(s->spool, rec->id, (unsigned)rec->id_len) <= 0) ||
        gzputc(s->spool, '\n') < 0)
        goto bad;
    for (size_t off = 0; off < rec->len;) { /* gzwrite takes an unsigned length */
        size_t n = rec->len - off < (1u << 30) ? rec->len - off : (1u << 30);
        if (gzwrite(s->spool, rec->seq + off, (unsigned)n) <= 0)
            goto bad;
        off += n;
    }
    if (gzputc(s->spool, '\n') < 0)
        goto bad;
    return VNP_OK;
bad:
    return vnp_fail(&s->err, VNP_EIO, "cannot write %s (the copy of stdin kept for "
                    "viral.fna): check free space in the output directory",
                    s->c->spool_path);
}

/* The digest of ctx (the context goes on), as lowercase hex. */
static vnp_code digest_of(reader_state *s, EVP_MD_CTX *ctx, char hex[65])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    int ok = copy && EVP_MD_CTX_copy_ex(copy, ctx) == 1 &&
             EVP_DigestFinal_ex(copy, md, &mdn) == 1 && mdn == 32;
    EVP_MD_CTX_free(copy);
    if (!ok)
        return vnp_fail(&s->err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_hex_lower(md, 32, hex);
    return VNP_OK;
}

/* The digest of the records read up to the last one taken. */
static vnp_code digest_now(reader_state *s, char hex[65])
{
    return digest_of(s, s->c->o->shard_count ? s->taken_sha : s->sha, hex);
}

static int push(reader_state *s, int eof)
{
    vnp_window *w = s->w;
    s->w = NULL;
    w->eof = eof;
    w->input_bytes = vnp_seq_file_bytes(s->c->reader);
    if (digest_now(s, w->input_sha256) != VNP_OK) {
        vnp_window_free(w);
        vnp_predict_fail(s->c, &s->err);
        return 0;
    }
    pthread_mutex_lock(&s->c->mu);
    s->c->records_read = s->selected;
    pthread_mutex_unlock(&s->c->mu);
    w->records = s->selected;
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
    return vnp_window_add_record(s->w, rec, chunks, first, &s->err);
}

static int window_full(const reader_state *s)
{
    return s->w->norf >= s->c->window_orfs || s->w->nseg >= 4 * s->c->window_orfs;
}

/* Chunks [from, chunks) of a record (from > 0: resuming a record cut by the
 * interrupted run). Returns VNP_OK, an error (in s->err), or -1 when a later stage
 * stopped. */
static int one_record(reader_state *s, const vnp_record *rec, size_t from)
{
    vnp_predict_ctx *c = s->c;
    size_t chunk_len = (size_t)c->o->chunk_len;
    size_t chunks = vnp_chunk_count(rec->len, chunk_len);
    vnp_code rc;
    if (c->pre && (rc = vnp_preprocess_writer_add(c->pre, rec, &s->err)))
        return rc;
    if ((rc = add_segment(s, rec, chunks, from == 0)))
        return rc;
    for (size_t i = from; i < chunks; i++) {
        size_t added;
        if ((rc = vnp_orfs_add_chunk(s->w, c->bpe, rec, chunk_len, i, &s->fr, &added, &s->err)))
            return rc;
        vnp_win_seg *seg = &s->w->seg[s->w->nseg - 1];
        seg->orf_end = s->w->norf;
        seg->chunk_end = i + 1;
        if (i + 1 < chunks && window_full(s)) { /* the record goes on in the next window */
            if (!push(s, 0))
                return -1;
            if ((rc = fresh_window(s)) || (rc = add_segment(s, rec, chunks, 0)))
                return rc;
        }
    }
    s->w->seg[s->w->nseg - 1].last = 1;
    s->w->seg[s->w->nseg - 1].chunk_end = chunks;
    if (window_full(s)) {
        if (!push(s, 0))
            return -1;
        if ((rc = fresh_window(s)))
            return rc;
    }
    return VNP_OK;
}

/* The next record this run takes (with --shard, records of other shards are read past:
 * hashed and their IDs counted, so that duplicate IDs get the same names in every shard
 * as in one run). 1, 0 at the end, or -code. */
static int read_one(reader_state *s, vnp_record *rec)
{
    const vnp_predict_options *o = s->c->o;
    for (;;) {
        int got = vnp_seq_read(s->c->reader, rec, &s->err);
        if (got != 1)
            return got;
        s->records++;
        if (vnp_record_hash(s->sha, rec, &s->err) != VNP_OK)
            return -(int)VNP_EIO;
        vnp_code rc = spool_record(s, rec);
        if (!rc)
            rc = vnp_record_ids_dedup(&s->ids, rec, &s->err);
        if (rc)
            return -(int)rc;
        if (vnp_shard_takes(s->records - 1, o->shard_index, o->shard_count)) {
            s->selected++;
            if (o->shard_count && EVP_MD_CTX_copy_ex(s->taken_sha, s->sha) != 1)
                return -(int)vnp_fail(&s->err, VNP_EIO, "OpenSSL SHA-256 failed");
            return 1;
        }
    }
}

/* --resume: reads past the records the interrupted run finished (and the one it cut,
 * which is returned in *rec to go on with), checking that they are the same records. */
static int skip_done(reader_state *s, vnp_record *rec, int *have_partial)
{
    const vnp_journal *j = &s->c->journal;
    uint64_t want = j->records + (j->partial_chunks > 0 ? 1 : 0);
    int got = 1;
    *have_partial = 0;
    while (s->selected < want && (got = read_one(s, rec)) == 1)
        ;
    if (got < 0)
        return -got;
    if (s->selected < want) {
        s->c->no_resume_advice = 1;
        return vnp_fail(&s->err, VNP_EFORMAT,
                        "cannot resume: %s has %zu records%s, fewer than the %llu the "
                        "interrupted run read; the input changed. Run without --resume to "
                        "start over",
                        s->c->o->input, s->selected,
                        s->c->o->shard_count ? " for this shard" : "", (unsigned long long)want);
    }
    char hex[65];
    vnp_code rc = digest_now(s, hex);
    if (rc)
        return rc;
    if (want > 0 && strcmp(hex, j->input_sha256)) {
        s->c->no_resume_advice = 1;
        return vnp_fail(&s->err, VNP_EINVAL,
                        "cannot resume: the first %llu records of %s are not the ones the "
                        "interrupted run read (their SHA-256 differs); the input changed. Run "
                        "without --resume to start over",
                        (unsigned long long)want, s->c->o->input);
    }
    *have_partial = j->partial_chunks > 0;
    return VNP_OK;
}

void *vnp_predict_reader_main(void *ctx)
{
    reader_state s;
    memset(&s, 0, sizeof s);
    s.c = ctx;
    vnp_frames_init(&s.fr);
    int rc = fresh_window(&s);
    s.sha = EVP_MD_CTX_new();
    s.taken_sha = EVP_MD_CTX_new();
    if (!rc && (!s.sha || !s.taken_sha || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1 ||
                EVP_MD_CTX_copy_ex(s.taken_sha, s.sha) != 1))
        rc = vnp_fail(&s.err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_record rec;
    int got = 2, partial = 0; /* 2: not read to the end */
    vnp_record_ids_init(&s.ids);
    if (rc == VNP_OK && s.c->spool_path) {
        s.spool = gzopen(s.c->spool_path, "wb1");
        if (!s.spool)
            rc = vnp_fail(&s.err, VNP_EIO, "cannot create %s (a copy of stdin for viral.fna): %s",
                          s.c->spool_path, strerror(errno));
    }
    if (rc == VNP_OK && s.c->resuming)
        rc = skip_done(&s, &rec, &partial);
    if (rc == VNP_OK && partial)
        rc = one_record(&s, &rec, (size_t)s.c->journal.partial_chunks);
    while (rc == VNP_OK && !vnp_engine_failed(s.c->eng) && !vnp_predict_interrupted(s.c) &&
           (got = read_one(&s, &rec)) == 1)
        rc = one_record(&s, &rec, 0);
    if (rc == VNP_OK && got < 0)
        rc = -got;
    if (s.spool) {
        if (gzclose(s.spool) != Z_OK && rc == VNP_OK)
            rc = vnp_fail(&s.err, VNP_EIO, "cannot write %s (a copy of stdin for viral.fna): "
                          "check free space", s.c->spool_path);
        s.spool = NULL;
    }
    if (rc == VNP_OK && s.ids.dups > 0)
        vnp_warn("%s: %zu record%s repeat an earlier record's ID (the first: '%s', record "
                 "%zu); each repeat is written as <ID>_dup<k> (k = 2, 3, ...) so that its rows "
                 "and chunk calls stay apart",
                 s.c->o->input, s.ids.dups, s.ids.dups == 1 ? "" : "s", s.ids.first_dup,
                 s.ids.first_dup_record);
    if (rc == VNP_OK && got == 0) { /* the whole input: shard.txt names it */
        s.c->input_records = s.records;
        if ((rc = digest_of(&s, s.sha, s.c->input_sha256)) == VNP_OK)
            s.c->input_read = 1;
    }
    if (rc == VNP_OK && !vnp_engine_failed(s.c->eng) && !vnp_predict_interrupted(s.c))
        push(&s, 1);
    else if (rc > 0)
        vnp_predict_fail(s.c, &s.err);
    vnp_window_free(s.w);
    vnp_frames_free(&s.fr);
    EVP_MD_CTX_free(s.sha);
    EVP_MD_CTX_free(s.taken_sha);
    vnp_record_ids_free(&s.ids);
    vnp_engine_close(s.c->eng);
    return NULL;
}
