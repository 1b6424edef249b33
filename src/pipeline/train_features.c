/* train's features: every stop-free frame of every chunk of the viral, then the
 * other sequences, through the path predict takes (record -> chunk -> six frames ->
 * token ids: vnp_orfs_add_chunk; both encoders on the engine's workers), written as
 * one labelled safetensors file (tensor "features" [N, DNABERT-S + ESM-2 hidden],
 * "ids", "labels" U8: 1 = viral). The file appears only complete (features_writer).
 *
 * Threads: the reader (files -> windows) and the calling thread (windows -> rows)
 * share `boundary` (atomic): the number of viral windows, set once the viral file is
 * read and before any window of the other file is pushed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "pipeline/predict_internal.h"
#include "virnucpro/train.h"

#define TRAIN_WINDOW_ORFS 2048
#define TRAIN_BATCH_TOKENS_CPU 4096
#define TRAIN_BATCH_TOKENS_CUDA 32768

void vnp_train_features_options_init(vnp_train_features_options *o)
{
    memset(o, 0, sizeof *o);
    o->chunk_len = 500;
    o->device = "auto";
    o->precision = VNP_PREC_DEFAULT;
}

typedef struct tf_reader {
    vnp_engine *eng;
    const vnp_train_features_options *o;
    const vnp_bpe *bpe;
    _Atomic uint64_t boundary; /* shared: viral windows; UINT64_MAX until the viral file is
                                * read */
    /* The reader thread's; the calling thread reads them after the join. */
    uint64_t pushed;
    size_t records[2];
    vnp_error err;
} tf_reader;

/* Reads one file into windows; 0 on success (the last window of the file is pushed,
 * so windows never mix the two classes). */
static vnp_code read_file(tf_reader *r, const char *path, int *stopped)
{
    vnp_seq_reader *rd = NULL;
    vnp_frames fr;
    vnp_frames_init(&fr);
    vnp_window *w = NULL;
    vnp_record rec;
    int got = 0;
    size_t chunk_len = (size_t)r->o->chunk_len, *count = &r->records[path == r->o->other];
    vnp_code rc = vnp_seq_open(path, &rd, &r->err);
    if (!rc) {
        vnp_seq_set_nucleotide_only(rd, 1);
        vnp_seq_set_stop_fd(rd, vnp_engine_stop_fd(r->eng));
    }
    while (!rc && !*stopped && !vnp_engine_failed(r->eng) &&
           (got = vnp_seq_read(rd, &rec, &r->err)) == 1) {
        (*count)++;
        size_t nc = vnp_chunk_count(rec.len, chunk_len);
        for (size_t i = 0; !rc && !*stopped && i < nc; i++) {
            if (!w && !(w = vnp_window_new())) {
                rc = vnp_fail(&r->err, VNP_ENOMEM, "out of memory");
                break;
            }
            size_t added;
            rc = vnp_orfs_add_chunk(w, r->bpe, &rec, chunk_len, i, &fr, &added, &r->err);
            if (rc)
                vnp_error_prefix(&r->err, "%s: ", path);
            if (!rc && w->norf >= TRAIN_WINDOW_ORFS) {
                vnp_window *full = w;
                w = NULL;
                r->pushed++;
                if (!vnp_engine_push(r->eng, full, &r->err))
                    *stopped = 1;
            }
        }
    }
    if (!rc && got < 0)
        rc = (vnp_code)-got;
    if (!rc && !*stopped && w) {
        r->pushed++;
        if (!vnp_engine_push(r->eng, w, &r->err))
            *stopped = 1;
        w = NULL;
    }
    vnp_window_free(w);
    vnp_frames_free(&fr);
    if (rd)
        vnp_seq_close(rd);
    return rc;
}

static void *tf_read(void *arg)
{
    tf_reader *r = arg;
    int stopped = 0;
    vnp_code rc = read_file(r, r->o->viral, &stopped);
    atomic_store(&r->boundary, r->pushed);
    if (!rc && !stopped)
        rc = read_file(r, r->o->other, &stopped);
    if (rc)
        vnp_engine_fail(r->eng, &r->err);
    vnp_engine_close(r->eng);
    return NULL;
}

vnp_code vnp_train_features_compute(const vnp_train_features_options *o, size_t *rows,
                                    size_t *viral_rows, vnp_error *err)
{
    *rows = *viral_rows = 0;
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
    vnp_bpe *bpe = NULL;
    char tok[4096];
    const char *slash = strrchr(o->dnabert, '/');
    int isdir = vnp_is_dir(o->dnabert);
    if (isdir)
        snprintf(tok, sizeof tok, "%s/tokenizer.json", o->dnabert);
    else
        snprintf(tok, sizeof tok, "%.*s/tokenizer.json",
                 slash ? (int)(slash - o->dnabert) : 1, slash ? o->dnabert : ".");
    if ((rc = vnp_bpe_load(tok, &bpe, err))) {
        vnp_error_prefix(err, "DNABERT-S tokenizer (expected next to the model, --dnabert %s): ",
                         o->dnabert);
        return rc;
    }
    vnp_devices dev;
    memset(&dev, 0, sizeof dev);
    vnp_engine *eng = NULL;
    vnp_features_writer *fw = NULL;
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
    int width = vnp_engine_width(eng);
    char len[16];
    snprintf(len, sizeof len, "%d", o->chunk_len);
    const char *meta[] = {"content", "virnucpro train features: labels 1 = viral, 0 = other",
                          "viral", o->viral, "other", o->other, "dnabert", o->dnabert, "esm",
                          o->esm, "chunk_length", len, "devices", vnp_engine_describe(eng),
                          NULL};
    if ((rc = vnp_features_writer_create(o->out_path, "features", width, meta, &fw, err)))
        goto done;
    tf_reader r;
    memset(&r, 0, sizeof r);
    r.eng = eng;
    r.o = o;
    r.bpe = bpe;
    atomic_init(&r.boundary, UINT64_MAX);
    pthread_t th;
    if (pthread_create(&th, NULL, tf_read, &r) != 0) {
        rc = vnp_fail(err, VNP_ENOMEM, "cannot start the reader thread");
        goto done;
    }
    vnp_window *w;
    uint64_t k = 0;
    while (!rc && (w = vnp_engine_pop(eng))) {
        int viral = k++ < atomic_load(&r.boundary);
        for (size_t i = 0; !rc && i < w->norf; i++) {
            rc = vnp_features_writer_add(fw, w->text + w->orf[i].id_off, w->orf[i].id_len,
                                         w->features + i * (size_t)width, err);
            if (!rc)
                rc = vnp_features_writer_add_label(fw, viral, err);
            *viral_rows += (size_t)viral;
        }
        vnp_engine_release(eng, w);
    }
    if (rc)
        vnp_engine_fail(eng, err);
    pthread_join(th, NULL);
    if (!rc)
        rc = vnp_engine_error(eng, err);
    if (!rc && (r.records[0] == 0 || r.records[1] == 0))
        rc = vnp_fail(err, VNP_EINVAL, "%s has no sequence; training needs both classes",
                      r.records[0] == 0 ? o->viral : o->other);
    if (!rc) {
        *rows = (size_t)vnp_features_writer_rows(fw);
        rc = vnp_features_writer_finish(fw, err);
    }
done:
    vnp_features_writer_free(fw);
    vnp_engine_free(eng);
    vnp_devices_free(&dev);
    vnp_bpe_free(bpe);
    return rc;
}
