/* train's features: every stop-free frame of every chunk of the viral, then the
 * other sequences, through the path predict takes (record -> chunk -> six frames ->
 * token ids: vnp_orfs_add_chunk; both encoders on the engine's workers), written as
 * one labelled safetensors file (tensor "features" [N, DNABERT-S + ESM-2 hidden],
 * "ids", "labels" U8: 1 = viral). The file appears only complete (features_writer).
 *
 * Resumable as predict is, with predict's journal (journal.h) in
 * <cache>.journal: the two inputs are one stream of records (viral, then other);
 * after every window the rows and IDs so far are flushed to the writer's temporary
 * files and the journal records how many records are complete, the chunks done of a
 * record the window cut, the rows (of which viral), the IDs' bytes and the SHA-256 of
 * the records read. `--resume` cuts the temporary files back to these counts, reads
 * past those records (checking their SHA-256) and goes on; the cache is then the bytes
 * of an uninterrupted run's. The finished cache carries the run's identity in its
 * metadata ("run.<key>"), so a later --resume (killed while training) reuses it.
 *
 * Threads: the reader (files -> windows) and the calling thread (windows -> rows)
 * share `boundary` (atomic): the number of viral windows of this run, set once the
 * viral file is read and before any window of the other file is pushed. */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "pipeline/crash_point.h"
#include "pipeline/predict_internal.h"
#include "pipeline/record_ids.h"
#include "pipeline/sig_watch.h"
#include "virnucpro/hub.h"
#include "virnucpro/train.h"
#include "virnucpro/weights.h"

#define TRAIN_WINDOW_ORFS 2048
#define TRAIN_BATCH_TOKENS_CPU 4096
#define TRAIN_BATCH_TOKENS_CUDA 32768

void vnp_train_features_options_init(vnp_train_features_options *o)
{
    memset(o, 0, sizeof *o);
    o->chunk_len = 500;
    o->device = "auto";
    o->precision = VNP_PREC_DEFAULT;
    o->window_orfs = TRAIN_WINDOW_ORFS;
}

typedef struct tf_reader {
    vnp_engine *eng;
    const vnp_train_features_options *o;
    const vnp_bpe *bpe;
    size_t window;             /* frames per window */
    const vnp_journal *resume; /* the interrupted run's journal, or NULL */
    _Atomic uint64_t boundary; /* shared: viral windows; UINT64_MAX until the viral file is
                                * read */
    /* The reader thread's; the calling thread reads them after the join. */
    uint64_t pushed;
    uint64_t records;   /* records read, both files */
    size_t per_file[2]; /* records of each file */
    int no_resume_advice;
    EVP_MD_CTX *sha;    /* over the records read so far */
    vnp_window *w;
    vnp_frames fr;
    vnp_error err;
} tf_reader;

static int push(tf_reader *r)
{
    vnp_window *w = r->w;
    r->w = NULL;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    int ok = copy && EVP_MD_CTX_copy_ex(copy, r->sha) == 1 &&
             EVP_DigestFinal_ex(copy, md, &mdn) == 1 && mdn == 32;
    EVP_MD_CTX_free(copy);
    if (!ok) {
        vnp_window_free(w);
        vnp_fail(&r->err, VNP_EIO, "OpenSSL SHA-256 failed");
        vnp_engine_fail(r->eng, &r->err);
        return 0;
    }
    vnp_hex_lower(md, 32, w->input_sha256);
    w->records = (size_t)r->records;
    r->pushed++;
    return vnp_engine_push(r->eng, w, &r->err);
}

static vnp_code add_segment(tf_reader *r, const vnp_record *rec, size_t chunks, int first)
{
    if (!r->w && !(r->w = vnp_window_new()))
        return vnp_fail(&r->err, VNP_ENOMEM, "out of memory");
    return vnp_window_add_record(r->w, rec, chunks, first, &r->err);
}

/* Chunks [from, chunks) of a record into windows (cut at chunk boundaries, as predict's
 * reader cuts them). VNP_OK, an error (in r->err), or -1 when the run is stopping. */
static int one_record(tf_reader *r, const char *path, const vnp_record *rec, size_t from)
{
    size_t chunk_len = (size_t)r->o->chunk_len, chunks = vnp_chunk_count(rec->len, chunk_len);
    vnp_code rc = add_segment(r, rec, chunks, from == 0);
    for (size_t i = from; !rc && i < chunks; i++) {
        size_t added;
        if ((rc = vnp_orfs_add_chunk(r->w, r->bpe, rec, chunk_len, i, &r->fr, &added, &r->err))) {
            vnp_error_prefix(&r->err, "%s: ", path);
            return rc;
        }
        vnp_win_seg *seg = &r->w->seg[r->w->nseg - 1];
        seg->orf_end = r->w->norf;
        seg->chunk_end = i + 1;
        if (i + 1 < chunks && r->w->norf >= r->window) { /* goes on in the next */
            if (!push(r))
                return -1;
            rc = add_segment(r, rec, chunks, 0);
        }
    }
    if (rc)
        return rc;
    r->w->seg[r->w->nseg - 1].last = 1;
    r->w->seg[r->w->nseg - 1].chunk_end = chunks;
    if (r->w->norf >= r->window && !push(r))
        return -1;
    return VNP_OK;
}

/* The SHA-256 of the records read so far equals the interrupted run's. */
static vnp_code check_digest(tf_reader *r, uint64_t want)
{
    char hex[65];
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    int ok = copy && EVP_MD_CTX_copy_ex(copy, r->sha) == 1 &&
             EVP_DigestFinal_ex(copy, md, &mdn) == 1 && mdn == 32;
    EVP_MD_CTX_free(copy);
    if (!ok)
        return vnp_fail(&r->err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_hex_lower(md, 32, hex);
    if (strcmp(hex, r->resume->input_sha256)) {
        r->no_resume_advice = 1;
        return vnp_fail(&r->err, VNP_EINVAL,
                        "cannot resume: the first %llu records of %s and %s are not the ones the "
                        "interrupted run read (their SHA-256 differs); an input changed. Run "
                        "without --resume to start over",
                        (unsigned long long)want, r->o->viral, r->o->other);
    }
    return VNP_OK;
}

/* Reads one file into windows (the last window of the file is pushed, so windows never
 * mix the two classes); with a journal, the records it finished are read past. */
static int read_file(tf_reader *r, int which)
{
    const char *path = which ? r->o->other : r->o->viral;
    const vnp_journal *j = r->resume;
    uint64_t want = j ? j->records + (j->partial_chunks > 0) : 0;
    vnp_seq_reader *rd = NULL;
    vnp_record rec;
    int got = 0;
    vnp_code rc = vnp_seq_open(path, &rd, &r->err);
    if (!rc) {
        vnp_seq_set_nucleotide_only(rd, 1);
        vnp_seq_set_stop_fd(rd, vnp_engine_stop_fd(r->eng));
    }
    while (!rc && !vnp_engine_failed(r->eng) && (got = vnp_seq_read(rd, &rec, &r->err)) == 1) {
        r->records++;
        r->per_file[which]++;
        if ((rc = vnp_record_hash(r->sha, &rec, &r->err)))
            break;
        size_t from = 0;
        if (r->records <= want) { /* done by the interrupted run */
            if (r->records < want)
                continue;
            if ((rc = check_digest(r, want)))
                break;
            if (!j->partial_chunks)
                continue;
            from = (size_t)j->partial_chunks;
        }
        int orc = one_record(r, path, &rec, from);
        if (orc < 0)
            break;
        rc = (vnp_code)orc;
    }
    if (!rc && got < 0)
        rc = (vnp_code)-got;
    if (!rc && r->w && !vnp_engine_failed(r->eng))
        push(r);
    vnp_window_free(r->w);
    r->w = NULL;
    if (rd)
        vnp_seq_close(rd);
    return rc;
}

static void *tf_read(void *arg)
{
    tf_reader *r = arg;
    vnp_code rc = read_file(r, 0);
    atomic_store(&r->boundary, r->pushed);
    if (!rc && !vnp_engine_failed(r->eng))
        rc = read_file(r, 1);
    const vnp_journal *j = r->resume;
    uint64_t want = j ? j->records + (j->partial_chunks > 0) : 0;
    if (!rc && !vnp_engine_failed(r->eng) && r->records < want) {
        r->no_resume_advice = 1;
        rc = vnp_fail(&r->err, VNP_EFORMAT,
                      "cannot resume: %s and %s have %llu records, fewer than the %llu the "
                      "interrupted run read; an input changed. Run without --resume to start "
                      "over",
                      r->o->viral, r->o->other, (unsigned long long)r->records,
                      (unsigned long long)want);
    }
    if (rc)
        vnp_engine_fail(r->eng, &r->err);
    vnp_engine_close(r->eng);
    return NULL;
}

static char *with_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", path, suffix);
    return p;
}

/* --resume without a journal: a cache whose recorded identity ("run.<key>" metadata) is
 * this run's is complete and reused. 1 reused, 0 none there, -1 an error (in err). */
static int reuse_cache(const char *path, const vnp_journal *now, vnp_error *err)
{
    if (access(path, F_OK) != 0)
        return 0;
    vnp_tensor_map *m = NULL;
    if (vnp_safetensors_load(path, &m, err))
        return -1;
    vnp_journal old;
    memset(&old, 0, sizeof old);
    for (int i = 0; i < now->nident; i++) {
        char key[64];
        snprintf(key, sizeof key, "__metadata__.run.%s", now->ident[i].key);
        const char *v = vnp_tensor_map_str(m, key);
        if (v) {
            snprintf(old.ident[old.nident].key, sizeof old.ident[0].key, "%s", now->ident[i].key);
            snprintf(old.ident[old.nident].value, sizeof old.ident[0].value, "%s", v);
            old.nident++;
        }
    }
    vnp_tensor_map_free(m);
    return vnp_journal_same_run(&old, now, path, err) ? -1 : 1;
}

typedef struct tf_stop {
    vnp_engine *eng; /* set before the watcher runs the hook; the calling thread's */
} tf_stop;

static void on_stop(void *arg, int sig)
{
    tf_stop *s = arg;
    vnp_error e;
    vnp_fail(&e, VNP_EINTERRUPTED, "interrupted by %s", vnp_signal_name(sig));
    vnp_engine_fail(s->eng, &e);
}

vnp_code vnp_train_features_compute(const vnp_train_features_options *o,
                                    vnp_train_features_stats *st, vnp_error *err)
{
    memset(st, 0, sizeof *st);
    vnp_code rc;
    vnp_encoder_kind kd, ke;
    if ((rc = vnp_encoder_probe(o->dnabert, &kd, err)) ||
        (rc = vnp_encoder_probe(o->esm, &ke, err)))
        return rc;
    if (kd != VNP_ENCODER_DNABERT_S || ke != VNP_ENCODER_ESM2)
        return vnp_fail(err, VNP_EINVAL,
                        "--dnabert must be a DNABERT-S model and --esm an ESM-2 model (got %s "
                        "and %s)",
                        o->dnabert, o->esm);
    /* the journal: what this run is, and with --resume how far the interrupted one got */
    char *jpath = with_suffix(o->out_path, ".journal");
    if (!jpath)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_journal now, old;
    if ((rc = vnp_journal_describe_train(o, &now, err))) {
        free(jpath);
        return rc;
    }
    vnp_error jerr;
    vnp_code jrc = vnp_journal_read(jpath, &old, &jerr);
    int resuming = 0;
    if (!o->resume && jrc != VNP_ENOTFOUND)
        vnp_warn("%s holds an interrupted feature computation%s; starting over (--resume would "
                 "have continued it)",
                 jpath, jrc == VNP_OK ? "" : " (its journal is unreadable)");
    if (o->resume && jrc == VNP_ENOTFOUND) {
        int reuse = reuse_cache(o->out_path, &now, err);
        if (reuse) {
            free(jpath);
            if (reuse < 0)
                return VNP_EINVAL;
            st->already_done = 1;
            return VNP_OK;
        }
        vnp_warn("--resume: no interrupted feature computation for %s (nothing was completed, "
                 "or nothing ran); starting from the beginning",
                 o->out_path);
    } else if (o->resume) {
        if (jrc || (rc = vnp_journal_same_run(&old, &now, jpath, err))) {
            if (jrc)
                *err = jerr;
            free(jpath);
            return jrc ? jrc : rc;
        }
        if (old.committing && access(o->out_path, F_OK) == 0) {
            /* killed between the cache's rename and the journal's removal */
            char *tmp[3] = {with_suffix(o->out_path, ".rows.tmp"),
                            with_suffix(o->out_path, ".ids.tmp"),
                            with_suffix(o->out_path, ".tmp")};
            for (int i = 0; i < 3; i++) {
                if (tmp[i])
                    remove(tmp[i]);
                free(tmp[i]);
            }
            remove(jpath);
            free(jpath);
            st->already_done = 1;
            return VNP_OK;
        }
        /* a journal without a complete record: nothing to go on from */
        resuming = old.records > 0 || old.partial_chunks > 0;
        if (!resuming)
            vnp_warn("--resume: the interrupted feature computation for %s completed no "
                     "record; starting from the beginning",
                     o->out_path);
    }

    vnp_bpe *bpe = NULL;
    char tok[4096];
    const char *slash = strrchr(o->dnabert, '/');
    if (vnp_is_dir(o->dnabert))
        snprintf(tok, sizeof tok, "%s/tokenizer.json", o->dnabert);
    else
        snprintf(tok, sizeof tok, "%.*s/tokenizer.json",
                 slash ? (int)(slash - o->dnabert) : 1, slash ? o->dnabert : ".");
    if ((rc = vnp_bpe_load(tok, &bpe, err))) {
        vnp_error_prefix(err, "DNABERT-S tokenizer (expected next to the model, --dnabert %s): ",
                         o->dnabert);
        free(jpath);
        return rc;
    }
    vnp_devices dev;
    memset(&dev, 0, sizeof dev);
    vnp_engine *eng = NULL;
    vnp_features_writer *fw = NULL;
    tf_stop stop = {NULL};
    vnp_sig_watch sw;
    memset(&sw, 0, sizeof sw);
    sw.stop = on_stop;
    sw.arg = &stop;
    sw.loading_msg = "while loading the models; nothing was written by this run";
    vnp_journal j = resuming ? old : now; /* progress as journalled */
    memcpy(j.ident, now.ident, sizeof now.ident);
    j.nident = now.nident;
    j.committing = 0;
    int journal_written = resuming, no_advice = 0, reader_started = 0;
    uint64_t records_done = resuming ? old.records : 0;
    tf_reader r;
    memset(&r, 0, sizeof r);
    if (o->handle_signals)
        vnp_sig_watch_start(&sw);
    if ((rc = vnp_devices_parse(o->device, &dev, err)))
        goto done;
    int cuda = 0;
    for (int i = 0; i < dev.n; i++)
        cuda |= strcmp(dev.name[i], "cpu") != 0;
    vnp_engine_config ec;
    memset(&ec, 0, sizeof ec);
    ec.models.dnabert = o->dnabert;
    ec.models.esm = o->esm;
    ec.models.prec = o->precision; /* the CPU computes in FP32 */
    ec.models.threads = o->threads > 0 ? o->threads : vnp_cpu_threads_available();
    ec.devices = (const char *const *)dev.name;
    ec.ndevices = dev.n;
    ec.batch_tokens = o->batch_tokens ? o->batch_tokens
                      : cuda          ? TRAIN_BATCH_TOKENS_CUDA
                                      : TRAIN_BATCH_TOKENS_CPU;
    ec.want_features = 1;
    if ((rc = vnp_engine_start(&ec, &eng, err)))
        goto done;
    stop.eng = eng;
    vnp_sig_watch_running(&sw);
    int width = vnp_engine_width(eng);
    char len[16];
    snprintf(len, sizeof len, "%d", o->chunk_len);
    const char *meta[64] = {"content", "virnucpro train features: labels 1 = viral, 0 = other",
                            "viral", o->viral, "other", o->other, "dnabert", o->dnabert, "esm",
                            o->esm, "chunk_length", len, "devices", vnp_engine_describe(eng)};
    char run_keys[VNP_JOURNAL_IDENT_MAX][48];
    size_t nm = 14;
    for (int i = 0; i < now.nident; i++) { /* the run's identity, for a later --resume */
        snprintf(run_keys[i], sizeof run_keys[i], "run.%s", now.ident[i].key);
        meta[nm++] = run_keys[i];
        meta[nm++] = now.ident[i].value;
    }
    meta[nm] = NULL;
    if (resuming) {
        if ((rc = vnp_features_writer_resume(o->out_path, "features", width, meta, old.frames,
                                             old.ids_bytes, &fw, err))) {
            no_advice = 1;
            goto done;
        }
        for (uint64_t i = 0; !rc && i < old.frames; i++)
            rc = vnp_features_writer_add_label(fw, i < old.viral_frames, err);
        if (rc)
            goto done;
    } else {
        /* the journal first (from here on a kill leaves a state --resume completes), then an
         * earlier cache goes, so that it never passes for this run's */
        if ((rc = vnp_journal_write(jpath, &j, err)))
            goto done;
        journal_written = 1;
        remove(o->out_path);
        if ((rc = vnp_features_writer_create(o->out_path, "features", width, meta, &fw, err)))
            goto done;
    }
    const char *dbg = getenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    long fail_after = dbg ? atol(dbg) : 0, windows = 0;
    r.eng = eng;
    r.o = o;
    r.bpe = bpe;
    r.window = o->window_orfs ? o->window_orfs : TRAIN_WINDOW_ORFS;
    r.resume = resuming ? &old : NULL;
    atomic_init(&r.boundary, UINT64_MAX);
    vnp_frames_init(&r.fr);
    r.sha = EVP_MD_CTX_new();
    if (!r.sha || EVP_DigestInit_ex(r.sha, EVP_sha256(), NULL) != 1) {
        rc = vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed");
        goto done;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, tf_read, &r) != 0) {
        rc = vnp_fail(err, VNP_ENOMEM, "cannot start the reader thread");
        goto done;
    }
    reader_started = 1;
    vnp_window *w;
    uint64_t k = 0;
    while (!rc && (w = vnp_engine_pop(eng))) {
        int viral = k++ < atomic_load(&r.boundary);
        for (size_t i = 0; !rc && i < w->norf; i++) {
            rc = vnp_features_writer_add(fw, w->text + w->orf[i].id_off, w->orf[i].id_len,
                                         w->features + i * (size_t)width, err);
            if (!rc)
                rc = vnp_features_writer_add_label(fw, viral, err);
            j.viral_frames += (uint64_t)viral;
        }
        /* the checkpoint: complete records, the chunks done of a cut one */
        uint64_t done = records_done;
        for (size_t i = 0; i < w->nseg; i++)
            done += w->seg[i].last ? 1 : 0;
        if (!rc && w->nseg > 0) {
            const vnp_win_seg *last = &w->seg[w->nseg - 1];
            rc = vnp_features_writer_checkpoint(fw, &j.frames, &j.ids_bytes, err);
            if (!rc) {
                vnp_crash_point("train: window rows flushed");
                j.records = done;
                j.partial_chunks = last->last ? 0 : last->chunk_end;
                memcpy(j.input_sha256, w->input_sha256, sizeof j.input_sha256);
                rc = vnp_journal_write(jpath, &j, err);
            }
            if (!rc)
                records_done = done;
        }
        vnp_engine_release(eng, w);
        if (!rc && fail_after > 0 && ++windows >= fail_after)
            rc = vnp_fail(err, VNP_EIO, "stopped after %ld windows "
                          "(VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS)", windows);
    }
    if (rc)
        vnp_engine_fail(eng, err);
    pthread_join(th, NULL);
    reader_started = 0;
    if (!rc)
        rc = vnp_engine_error(eng, err);
    no_advice |= r.no_resume_advice;
    if (!rc && (r.per_file[0] == 0 || r.per_file[1] == 0)) {
        rc = vnp_fail(err, VNP_EINVAL, "%s has no sequence; training needs both classes",
                      r.per_file[0] == 0 ? o->viral : o->other);
        no_advice = 1;
    }
    if (!rc) {
        /* every row is in: say so, then assemble the cache (renamed into place) */
        j.committing = 1;
        st->rows = (size_t)vnp_features_writer_rows(fw);
        st->viral_rows = (size_t)j.viral_frames;
        if (!(rc = vnp_journal_write(jpath, &j, err)) &&
            !(rc = vnp_features_writer_finish(fw, err))) {
            vnp_crash_point("train: features cache renamed");
            remove(jpath);
            journal_written = 0;
        }
    }
done:
    vnp_sig_watch_stop(&sw);
    st->signal = atomic_load(&sw.signal);
    if (reader_started)
        pthread_join(th, NULL);
    int resumable = rc && journal_written && (records_done > 0 || j.partial_chunks > 0);
    if (rc && st->signal && rc == VNP_EINTERRUPTED) {
        if (resumable)
            vnp_fail(err, rc, "interrupted by %s: %llu records (%llu frames) done; run the "
                     "same command with --resume to go on from there",
                     vnp_signal_name(st->signal), (unsigned long long)records_done,
                     (unsigned long long)j.frames);
        else
            vnp_fail(err, rc, "interrupted by %s before any record was complete; nothing was "
                     "kept", vnp_signal_name(st->signal));
    } else if (rc && resumable && !no_advice) {
        vnp_error first = *err;
        vnp_fail(err, rc, "%s; the feature rows of the first %llu records are kept: run the "
                 "same command with --resume to go on from there",
                 first.msg, (unsigned long long)records_done);
    }
    if (rc && resumable)
        vnp_features_writer_keep(fw); /* the journal and the rows stay for --resume */
    else if (rc && journal_written)
        remove(jpath); /* nothing worth resuming: as if never started */
    st->resumed_records = resuming ? (size_t)old.records : 0;
    vnp_features_writer_free(fw);
    vnp_frames_free(&r.fr);
    EVP_MD_CTX_free(r.sha);
    vnp_engine_free(eng);
    vnp_devices_free(&dev);
    vnp_bpe_free(bpe);
    free(jpath);
    return rc;
}
