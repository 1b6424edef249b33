/* predict, stage 3: windows in input order -> prediction_results.txt,
 * prediction_results_highestscore.csv (and the features file); at the commit, the
 * derived outputs from the complete rows (derive.c: sequences.tsv, chunks.tsv,
 * viral_regions.bed, viral.fna). Everything is written under ".part" names and renamed
 * at commit. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/crash_point.h"
#include "pipeline/predict_internal.h"
#include "pipeline/shard.h"

static vnp_code flush_file(FILE *f, const char *path, vnp_error *err);

const char *const vnp_predict_features_meta[] = {"features", "DNABERT-S mean | ESM-2 mean",
                                                NULL};

static char *join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

/* Opens a ".part" file for appending after cutting it to `len` bytes (what the
 * journal says is complete). */
static vnp_code reopen_part(const char *path, uint64_t len, FILE **out, vnp_error *err);

/* Errors of the resume itself (damaged or missing .part files): --resume cannot get past
 * them, so the failure message must not advise it. */
static vnp_code resume_failed(vnp_predict_ctx *c, vnp_code rc)
{
    if (rc)
        atomic_store(&c->no_resume_advice, 1);
    return rc;
}

static vnp_code reopen_part(const char *path, uint64_t len, FILE **out, vnp_error *err)
{
    FILE *f = fopen(path, "r+");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot resume: %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size < len) {
        fclose(f);
        return vnp_fail(err, VNP_EFORMAT,
                        "cannot resume: %s is shorter than the journal says (%llu bytes); "
                        "run without --resume to start over",
                        path, (unsigned long long)len);
    }
    if (ftruncate(fileno(f), (off_t)len) != 0 || fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return vnp_fail(err, VNP_EIO, "cannot resume: %s: %s", path, strerror(errno));
    }
    *out = f;
    return VNP_OK;
}

/* --resume: the rows written so far stay; the per-chunk calls are collected
 * again from them (their scores read back exactly: the shortest round-trip
 * decimals of float32). */
static vnp_code reopen_for_resume(vnp_predict_ctx *c, vnp_error *err)
{
    vnp_predict_outputs *o = &c->out;
    vnp_code rc;
    if ((rc = reopen_part(o->results_part, c->journal.results_bytes, &o->results, err)) ||
        (rc = vnp_chunk_calls_create(o->highest_part, c->o->sort_memory, &o->highest, err)))
        return rc;
    FILE *f = fopen(o->results_part, "r");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", o->results_part, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    while (rc == VNP_OK && (n = getline(&line, &cap, f)) > 0) {
        if (lineno++ == 0)
            continue; /* header */
        char *t1 = memchr(line, '\t', (size_t)n);
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        char *end = NULL;
        float p0 = t2 ? strtof(t2 + 1, &end) : 0.0f;
        float p1 = end && *end == '\t' ? strtof(end + 1, &end) : 0.0f;
        if (!t1 || !t2 || !end || *end != '\n' || t1 - line < 3)
            rc = vnp_fail(err, VNP_EFORMAT, "cannot resume: %s line %zu is damaged",
                          o->results_part, lineno);
        else
            rc = vnp_chunk_calls_add(o->highest, line, (size_t)(t1 - line) - 2, p0, p1, err);
    }
    free(line);
    fclose(f);
    return rc;
}

vnp_code vnp_predict_outputs_open(vnp_predict_ctx *c, vnp_error *err)
{
    vnp_predict_outputs *o = &c->out;
    const char *dir = c->o->out_dir;
    o->results_path = join(dir, VNP_PREDICT_RESULTS, "");
    o->results_part = join(dir, VNP_PREDICT_RESULTS, ".part");
    o->highest_path = join(dir, VNP_PREDICT_HIGHEST, "");
    o->highest_part = join(dir, VNP_PREDICT_HIGHEST, ".part");
    o->features_path = join(dir, VNP_PREDICT_FEATURES, "");
    o->shard_path = join(dir, VNP_SHARD_FILE, "");
    o->shard_part = join(dir, VNP_SHARD_FILE, ".part");
    if (!o->results_path || !o->results_part || !o->highest_path || !o->highest_part ||
        !o->features_path || !o->shard_path || !o->shard_part)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc;
    if (c->resuming && (c->journal.records > 0 || c->journal.partial_chunks > 0))
        return resume_failed(c, reopen_for_resume(c, err));
    /* A fresh start: the journal first (from here on a kill leaves a state --resume
     * completes), then the results of an earlier run in this directory go, so that they
     * never pass for this run's. */
    if (c->journaling) {
        vnp_journal j = c->journal;
        j.records = j.partial_chunks = j.chunks = j.frames = 0;
        j.results_bytes = 0;
        j.committing = 0;
        j.input_sha256[0] = 0;
        if ((rc = vnp_journal_write(c->journal_path, &j, err)))
            return rc;
        c->journal_written = 1;
    }
    /* run.json says a run is under way before anything of an earlier run goes (an earlier
     * "ok" must not outlive its outputs) */
    if (c->o->record) {
        if ((rc = vnp_predict_write_record(c, 1, err)))
            return rc;
        vnp_crash_point("run record written");
    }
    remove(o->results_path);
    remove(o->highest_path);
    vnp_derive_remove(dir, "");
    remove(o->shard_path); /* a finished shard of another run must not pass for this one */
    if (c->o->embeddings)
        remove(o->features_path);
    vnp_crash_point("old results removed");
    o->results = fopen(o->results_part, "w");
    if (!o->results)
        return vnp_fail(err, VNP_EIO, "cannot create %s: %s", o->results_part, strerror(errno));
    if ((rc = vnp_results_write_header(o->results, o->results_part, err)) ||
        (rc = flush_file(o->results, o->results_part, err)) ||
        (rc = vnp_chunk_calls_create(o->highest_part, c->o->sort_memory, &o->highest, err)))
        return rc;
    if (c->o->embeddings &&
        (rc = vnp_features_writer_create(o->features_path, "features", c->width,
                                            vnp_predict_features_meta, &o->features, err)))
        return rc;
    return VNP_OK;
}

static vnp_code flush_file(FILE *f, const char *path, vnp_error *err)
{
    if (fflush(f) != 0)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", path,
                        strerror(errno));
    return VNP_OK;
}

/* Flushed, on disk (fsync: the journal about to say "committing" must not outlive the
 * data after a power loss; the per-window checkpoints guard against kills, not power
 * loss, so they only flush), closed. */
static vnp_code close_file(FILE **f, const char *path, vnp_error *err)
{
    int bad = fflush(*f) != 0 || ferror(*f) || fsync(fileno(*f)) != 0;
    bad |= fclose(*f) != 0;
    *f = NULL;
    if (bad)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", path,
                        strerror(errno));
    vnp_crash_point("output file closed");
    return VNP_OK;
}

static vnp_code rename_into_place(const char *from, const char *to, vnp_error *err)
{
    if (rename(from, to) != 0)
        return vnp_fail(err, VNP_EIO, "cannot rename %s to %s: %s", from, to, strerror(errno));
    vnp_crash_point("output renamed into place");
    return VNP_OK;
}

static void free_paths(vnp_predict_outputs *o)
{
    free(o->results_path);
    free(o->results_part);
    free(o->highest_path);
    free(o->highest_part);
    free(o->features_path);
    free(o->shard_path);
    free(o->shard_part);
    memset(o, 0, sizeof *o);
}

/* --shard: shard.txt, what `virnucpro merge` checks (which run, which shard, the whole
 * input's record count and SHA-256, this shard's record count). */
static vnp_code write_shard_record(vnp_predict_ctx *c, vnp_error *err)
{
    if (!c->input_read)
        return vnp_fail(err, VNP_EIO, "internal error: the input was not read to its end");
    vnp_shard_record r;
    memset(&r, 0, sizeof r);
    r.index = c->o->shard_index;
    r.count = c->o->shard_count;
    r.input_records = c->input_records;
    r.records = vnp_shard_size(c->input_records, r.index, r.count);
    memcpy(r.input_sha256, c->input_sha256, sizeof r.input_sha256);
    memcpy(r.ident, c->journal.ident, sizeof r.ident);
    r.nident = c->journal.nident;
    vnp_code rc = vnp_shard_record_write(c->out.shard_part, &r, err);
    if (!rc)
        vnp_crash_point("shard record written");
    return rc;
}

vnp_code vnp_predict_outputs_commit(vnp_predict_ctx *c, vnp_error *err)
{
    vnp_predict_outputs *o = &c->out;
    vnp_code rc;
    if ((rc = close_file(&o->results, o->results_part, err)) ||
        (rc = vnp_chunk_calls_finish(o->highest, err)))
        return rc;
    vnp_crash_point("highest-score file written");
    if (o->features && (rc = vnp_features_writer_finish(o->features, err)))
        return rc;
    /* the derived outputs, from the complete rows and the input read again (stdin: its
     * spool), checked to be the records the rows were computed from; with --shard, this
     * shard's records */
    vnp_derive_options d;
    vnp_derive_options_init(&d);
    d.results = o->results_part;
    d.input = c->spool_path ? c->spool_path : c->o->input;
    d.input_name = c->o->input;
    d.out_dir = c->o->out_dir;
    d.suffix = ".part";
    d.chunk_len = c->o->chunk_len;
    d.min_score = c->o->min_score;
    d.plots = c->o->plots;
    d.shard_index = c->o->shard_index;
    d.shard_count = c->o->shard_count;
    d.records_sha256 = c->input_read ? c->input_sha256 : NULL;
    d.quiet = 1;
    /* its own rows, from these records (checked by SHA-256 below): the six-frame check of
     * every chunk that classify makes is not needed */
    d.trust_rows = d.records_sha256 != NULL;
    double t0 = vnp_predict_now();
    rc = vnp_derive(&d, &c->derived, err);
    c->st.derive_seconds = vnp_predict_now() - t0;
    if (rc) {
        vnp_error_prefix(err, "writing the per-sequence outputs: ");
        return rc;
    }
    if (c->o->shard_count > 0 && (rc = write_shard_record(c, err)))
        return rc;
    /* run.json of the finished run, renamed last: no kill leaves an "ok" before every
     * output is in place, nor the outputs in place without it once --resume is done */
    if ((rc = vnp_predict_write_record(c, 0, err)))
        return rc;
    /* Every output is complete under its .part name: say so, then rename. A kill from
     * here on leaves a journal in the "committing" state, and --resume finishes the
     * renames (vnp_predict_finish_commit). */
    if (c->journaling) {
        c->journal.committing = 1;
        if ((rc = vnp_journal_write(c->journal_path, &c->journal, err)))
            return rc;
    }
    if ((rc = vnp_predict_finish_commit(c->o->out_dir, err))) /* shard.txt last */
        return rc;
    vnp_chunk_calls_free(o->highest);
    vnp_features_writer_free(o->features);
    free_paths(o);
    return VNP_OK;
}

vnp_code vnp_predict_finish_commit(const char *dir, vnp_error *err)
{
    static const char *const names[] = {VNP_PREDICT_RESULTS, VNP_PREDICT_HIGHEST};
    for (int i = 0; i < 2; i++) {
        char *part = join(dir, names[i], ".part"), *final = join(dir, names[i], "");
        vnp_code rc = VNP_OK;
        if (!part || !final)
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
        else if (access(part, F_OK) == 0)
            rc = rename_into_place(part, final, err);
        else if (access(final, F_OK) != 0)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "cannot finish the interrupted run in %s: neither %s nor its .part "
                          "is there (files were removed by hand?); run without --resume",
                          dir, names[i]);
        free(part);
        free(final);
        if (rc)
            return rc;
    }
    vnp_code rc = vnp_derive_rename(dir, err);
    if (rc)
        return rc;
    /* shard.txt (only a --shard run has one), then run.json (predict's CLI: status ok):
     * renamed last, so a .part left is this run's */
    static const char *const last[] = {VNP_SHARD_FILE, VNP_PREDICT_RUN_JSON};
    for (int i = 0; i < 2 && !rc; i++) {
        char *part = join(dir, last[i], ".part"), *final = join(dir, last[i], "");
        if (!part || !final)
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
        else if (access(part, F_OK) == 0)
            rc = rename_into_place(part, final, err);
        free(part);
        free(final);
    }
    return rc;
}

int vnp_predict_resumable(const vnp_predict_ctx *c)
{
    return c->journal_written && (c->records_done > 0 || c->journal.partial_chunks > 0);
}

void vnp_predict_outputs_abort(vnp_predict_ctx *c)
{
    vnp_predict_outputs *o = &c->out;
    if (o->results)
        fclose(o->results);
    int keep = vnp_predict_resumable(c);
    /* failed in the renames after the journal said "committing": every .part is complete
     * and the --resume that finishes the commit renames them */
    int finishing = keep && c->journal.committing;
    if (o->results_part && !keep)
        remove(o->results_part);
    if (c->o->out_dir && !finishing) /* remade from the rows by every commit */
        vnp_derive_remove(c->o->out_dir, ".part");
    if (c->journal_written && !keep && c->journal_path)
        remove(c->journal_path); /* nothing worth resuming: as if never started */
    if (o->highest_part && !finishing)
        remove(o->highest_part);
    if (o->shard_part && !finishing)
        remove(o->shard_part);
    if (c->o->out_dir && !finishing) {
        char *rj = join(c->o->out_dir, VNP_PREDICT_RUN_JSON_PART, "");
        if (rj)
            remove(rj);
        free(rj);
    }
    vnp_chunk_calls_free(o->highest);
    vnp_features_writer_free(o->features);
    free_paths(o);
}

static vnp_code write_window(vnp_predict_ctx *c, const vnp_window *w, vnp_error *err)
{
    vnp_predict_outputs *o = &c->out;
    vnp_code rc = VNP_OK;
    for (size_t si = 0; si < w->nseg && !rc; si++) {
        const vnp_win_seg *s = &w->seg[si];
        for (size_t i = s->orf_begin; i < s->orf_end && !rc; i++) {
            const vnp_win_orf *r = &w->orf[i];
            const char *id = w->text + r->id_off;
            float p0 = w->probs[2 * i], p1 = w->probs[2 * i + 1];
            if ((rc = vnp_results_write_row(o->results, o->results_part, id, r->id_len, p0, p1,
                                            err)) ||
                (rc = vnp_chunk_calls_add(o->highest, id, r->id_len - 2, p0, p1, err)))
                break;
            if (o->features &&
                (rc = vnp_features_writer_add(o->features, id, r->id_len,
                                              w->features + i * (size_t)c->width, err)))
                break;
        }
    }
    if (!rc) {
        pthread_mutex_lock(&c->mu);
        c->st.orfs += w->norf;
        for (size_t si = 0; si < w->nseg; si++)
            if (w->seg[si].first)
                c->st.chunks += w->seg[si].chunks;
        c->st.records = w->records;
        c->bytes_done = w->input_bytes;
        pthread_mutex_unlock(&c->mu);
        vnp_predict_tick(c, 0);
    }
    return rc;
}

/* Counts completed records and journals how much of the output is complete: whole
 * records, and the chunks done of a record this window cut. */
static vnp_code after_window(vnp_predict_ctx *c, const vnp_window *w, vnp_error *err)
{
    uint64_t done = c->records_done;
    for (size_t i = 0; i < w->nseg; i++)
        done += w->seg[i].last ? 1 : 0;
    if (c->journaling && w->nseg > 0) {
        vnp_predict_outputs *o = &c->out;
        vnp_code rc;
        if ((rc = flush_file(o->results, o->results_part, err)))
            return rc;
        vnp_crash_point("window rows flushed");
        const vnp_win_seg *last = &w->seg[w->nseg - 1];
        vnp_journal *j = &c->journal;
        j->records = done;
        j->partial_chunks = last->last ? 0 : last->chunk_end;
        j->results_bytes = (uint64_t)ftello(o->results);
        pthread_mutex_lock(&c->mu);
        j->chunks = c->st.chunks;
        j->frames = c->st.orfs;
        pthread_mutex_unlock(&c->mu);
        memcpy(j->input_sha256, w->input_sha256, sizeof j->input_sha256);
        if ((rc = vnp_journal_write(c->journal_path, j, err)))
            return rc;
        c->journal_written = 1;
    }
    c->records_done = done; /* what the journal (if any) now says */
    c->windows_written++;
    if (c->fail_after_windows > 0 && c->windows_written >= c->fail_after_windows)
        return vnp_fail(err, VNP_EIO, "stopped after %ld windows "
                        "(VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS)", c->windows_written);
    return VNP_OK;
}

/* No NaN or Inf reaches an output file (the workers' guard recomputes or fails such
 * batches; this is the last check). */
static vnp_code check_finite(const vnp_window *w, int width, vnp_error *err)
{
    for (size_t i = 0; i < w->norf; i++) {
        int bad = !isfinite(w->probs[2 * i]) || !isfinite(w->probs[2 * i + 1]);
        for (int k = 0; w->features && k < width && !bad; k++)
            bad = !isfinite(w->features[i * (size_t)width + (size_t)k]);
        if (bad)
            return vnp_fail(err, VNP_ENUMERIC,
                            "non-finite embedding or score for %.*s; nothing was written for "
                            "it (try --device cpu or VIRNUCPRO_DISABLE_FP16=1)",
                            (int)w->orf[i].id_len, w->text + w->orf[i].id_off);
    }
    return VNP_OK;
}

void *vnp_predict_writer_main(void *ctx)
{
    vnp_predict_ctx *c = ctx;
    vnp_window *w;
    vnp_error err;
    while ((w = vnp_engine_pop(c->eng))) {
        vnp_code rc = check_finite(w, c->width, &err);
        if (rc) /* the same batch would be as non-finite again */
            atomic_store(&c->no_resume_advice, 1);
        if (rc == VNP_OK)
            rc = write_window(c, w, &err);
        if (rc == VNP_OK)
            rc = after_window(c, w, &err);
        vnp_engine_release(c->eng, w);
        if (rc) {
            vnp_predict_fail(c, &err);
            break;
        }
    }
    return NULL;
}
