/* The resume journal of predict: a small text file replaced atomically. */
#include "pipeline/journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "pipeline/crash_point.h"
#include "pipeline/model_files.h"
#include "virnucpro/hub.h"
#include "virnucpro/train.h"

#define MAGIC "virnucpro predict journal 3\n"

#ifndef VNP_VERSION_STRING
#define VNP_VERSION_STRING "0.1.0"
#endif

static vnp_code add_ident(vnp_journal *j, const char *key, const char *value, vnp_error *err)
{
    if (j->nident >= VNP_JOURNAL_IDENT_MAX || strlen(value) >= sizeof j->ident[0].value ||
        strchr(value, '\n'))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "cannot journal this run: %s '%s' is too long or has a line break", key,
                        value);
    snprintf(j->ident[j->nident].key, sizeof j->ident[0].key, "%s", key);
    snprintf(j->ident[j->nident].value, sizeof j->ident[0].value, "%s", value);
    j->nident++;
    return VNP_OK;
}

/* The SHA-256 of a model: of its files (model_files.h), combined as
 * sha256("name sha256\n" ...) over the files in name order. */
static vnp_code model_digest(const char *path, const char *what, char out[65], vnp_error *err)
{
    vnp_model_file *f;
    int n;
    vnp_code rc = vnp_model_files(path, what, &f, &n, err);
    if (rc)
        return rc;
    size_t cap = 1;
    for (int i = 0; i < n; i++)
        cap += strlen(f[i].name) + 67;
    char *list = malloc(cap);
    size_t used = 0;
    if (!list)
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++)
        used += (size_t)snprintf(list + used, cap - used, "%s %s\n", f[i].name, f[i].sha256);
    if (!rc)
        rc = vnp_sha256_hex(used ? list : "", used, out, err);
    free(list);
    vnp_model_files_free(f, n);
    return rc;
}

/* What the rows are computed on: CPU or GPU workers and the precision they compute in
 * (a requeued job landing on another kind of node must not mix them). */
static vnp_code compute_kind(const char *device, vnp_precision prec, char out[64],
                             vnp_error *err)
{
    vnp_devices dev;
    vnp_code rc = vnp_devices_parse(device, &dev, err);
    if (rc)
        return rc;
    const char *kind = !strcmp(dev.name[0], "cpu") ? "cpu" : "cuda";
    snprintf(out, 64, "%s %s", kind,
             vnp_precision_name(vnp_precision_effective(dev.name[0], prec)));
    vnp_devices_free(&dev);
    return VNP_OK;
}

vnp_code vnp_journal_describe(const vnp_predict_options *o, vnp_journal *j, vnp_error *err)
{
    memset(j, 0, sizeof *j);
    char len[16], esm[65], dna[65], cls[65], compute[64];
    snprintf(len, sizeof len, "%d", o->chunk_len);
    vnp_code rc;
    if ((rc = model_digest(o->esm, "ESM-2", esm, err)) ||
        (rc = model_digest(o->dnabert, "DNABERT-S", dna, err)) ||
        (rc = model_digest(o->classifier, "classifier", cls, err)) ||
        (rc = compute_kind(o->device, o->precision, compute, err)))
        return rc;
    if ((rc = add_ident(j, "input", o->input, err)) || (rc = add_ident(j, "length", len, err)) ||
        (rc = add_ident(j, "compute", compute, err)) ||
        (rc = add_ident(j, "version", VNP_VERSION_STRING, err)) ||
        (rc = add_ident(j, "esm", esm, err)) || (rc = add_ident(j, "dnabert", dna, err)) ||
        (rc = add_ident(j, "classifier", cls, err)))
        return rc;
    if (o->shard_count > 0) { /* a shard's rows must never mix with another shard's */
        char shard[32];
        snprintf(shard, sizeof shard, "%u/%u", o->shard_index, o->shard_count);
        if ((rc = add_ident(j, "shard", shard, err)))
            return rc;
    }
    return VNP_OK;
}

vnp_code vnp_journal_describe_train(const vnp_train_features_options *o, vnp_journal *j,
                                    vnp_error *err)
{
    memset(j, 0, sizeof *j);
    char len[16], esm[65], dna[65], compute[64];
    snprintf(len, sizeof len, "%d", o->chunk_len);
    vnp_code rc;
    if ((rc = model_digest(o->esm, "ESM-2", esm, err)) ||
        (rc = model_digest(o->dnabert, "DNABERT-S", dna, err)) ||
        (rc = compute_kind(o->device, o->precision, compute, err)))
        return rc;
    if ((rc = add_ident(j, "viral", o->viral, err)) || (rc = add_ident(j, "other", o->other, err)) ||
        (rc = add_ident(j, "length", len, err)) || (rc = add_ident(j, "compute", compute, err)) ||
        (rc = add_ident(j, "version", VNP_VERSION_STRING, err)) ||
        (rc = add_ident(j, "esm", esm, err)) || (rc = add_ident(j, "dnabert", dna, err)))
        return rc;
    return VNP_OK;
}

const char *vnp_journal_ident_what(const char *key)
{
    if (!strcmp(key, "esm"))
        return "the ESM-2 model's files (SHA-256)";
    if (!strcmp(key, "dnabert"))
        return "the DNABERT-S model's files (SHA-256)";
    if (!strcmp(key, "classifier"))
        return "the classifier file (SHA-256)";
    if (!strcmp(key, "input"))
        return "the input file";
    if (!strcmp(key, "viral"))
        return "the viral input (--viral)";
    if (!strcmp(key, "other"))
        return "the other input (--other)";
    if (!strcmp(key, "length"))
        return "the chunk length (-l)";
    if (!strcmp(key, "compute"))
        return "the kind of device or the precision (CPU/GPU, FP32/FP16/BF16/FP8)";
    if (!strcmp(key, "shard"))
        return "the shard (--shard I/N)";
    if (!strcmp(key, "version"))
        return "the virnucpro version";
    return key;
}

vnp_code vnp_journal_same_run(const vnp_journal *old, const vnp_journal *now, const char *path,
                              vnp_error *err)
{
    for (int i = 0; i < now->nident; i++) {
        const vnp_journal_ident *a = &now->ident[i], *b = NULL;
        for (int k = 0; k < old->nident && !b; k++)
            if (!strcmp(old->ident[k].key, a->key))
                b = &old->ident[k];
        if (!b || strcmp(a->value, b->value))
            return vnp_fail(err, VNP_EINVAL,
                            "cannot resume: %s changed since the interrupted run (%s: was %s, "
                            "now %s); its rows would mix with new ones. Run without --resume "
                            "to start over",
                            vnp_journal_ident_what(a->key), path,
                            b ? b->value : "(not recorded)", a->value);
    }
    for (int k = 0; k < old->nident; k++) { /* and nothing the old run had is gone */
        int found = 0;
        for (int i = 0; i < now->nident && !found; i++)
            found = !strcmp(old->ident[k].key, now->ident[i].key);
        if (!found)
            return vnp_fail(err, VNP_EINVAL,
                            "cannot resume: %s changed since the interrupted run (%s: was %s, "
                            "now none); its rows would mix with new ones. Run without --resume "
                            "to start over",
                            vnp_journal_ident_what(old->ident[k].key), path, old->ident[k].value);
    }
    return VNP_OK;
}

vnp_code vnp_journal_write(const char *path, const vnp_journal *j, vnp_error *err)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(MAGIC, f) < 0;
    for (int i = 0; !bad && i < j->nident; i++)
        bad = fprintf(f, "ident %s %s\n", j->ident[i].key, j->ident[i].value) < 0;
    if (!bad)
        bad = fprintf(f,
                      "state %s\nrecords %" PRIu64 "\npartial %" PRIu64 "\n"
                      "results %" PRIu64 "\nchunks %" PRIu64
                      "\nframes %" PRIu64 "\ninput_sha256 %s\n",
                      j->committing ? "committing" : "running", j->records, j->partial_chunks,
                      j->results_bytes, j->chunks, j->frames,
                      j->input_sha256[0] ? j->input_sha256 : "-") < 0;
    /* train's counters (before "end"; a predict journal has none) */
    if (!bad && (j->ids_bytes || j->viral_frames))
        bad = fprintf(f, "ids_bytes %" PRIu64 "\nviral_frames %" PRIu64 "\n", j->ids_bytes,
                      j->viral_frames) < 0;
    if (!bad)
        bad = fputs("end\n", f) < 0;
    if (f && fclose(f) != 0)
        bad = 1;
    vnp_crash_point("journal written, before its rename");
    if (bad || rename(tmp, path) != 0) {
        vnp_code rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    vnp_crash_point("journal renamed");
    return VNP_OK;
}

vnp_code vnp_journal_parse(FILE *f, const char *path, vnp_journal *j, vnp_error *err)
{
    memset(j, 0, sizeof *j);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    int ok = got > 0 && !strcmp(line, MAGIC), end = 0;
    while (ok && !end && (got = getline(&line, &cap, f)) > 0) {
        line[strcspn(line, "\n")] = 0;
        char state[16], sha[80];
        if (!strncmp(line, "ident ", 6)) {
            char *key = line + 6, *sp = strchr(key, ' ');
            ok = sp && j->nident < VNP_JOURNAL_IDENT_MAX && (size_t)(sp - key) < 32 &&
                 strlen(sp + 1) < sizeof j->ident[0].value;
            if (ok) {
                *sp = 0;
                snprintf(j->ident[j->nident].key, sizeof j->ident[0].key, "%s", key);
                snprintf(j->ident[j->nident].value, sizeof j->ident[0].value, "%s", sp + 1);
                j->nident++;
            }
        } else if (sscanf(line, "state %15s", state) == 1) {
            ok = !strcmp(state, "running") || !strcmp(state, "committing");
            j->committing = !strcmp(state, "committing");
        } else if (sscanf(line, "input_sha256 %79s", sha) == 1) {
            ok = strlen(sha) == 64 || !strcmp(sha, "-");
            if (ok && strcmp(sha, "-"))
                memcpy(j->input_sha256, sha, 65);
        } else if (!strcmp(line, "end")) {
            end = 1;
        } else {
            ok = sscanf(line, "records %" SCNu64, &j->records) == 1 ||
                 sscanf(line, "partial %" SCNu64, &j->partial_chunks) == 1 ||
                 sscanf(line, "results %" SCNu64, &j->results_bytes) == 1 ||
                 sscanf(line, "chunks %" SCNu64, &j->chunks) == 1 ||
                 sscanf(line, "frames %" SCNu64, &j->frames) == 1 ||
                 sscanf(line, "ids_bytes %" SCNu64, &j->ids_bytes) == 1 ||
                 sscanf(line, "viral_frames %" SCNu64, &j->viral_frames) == 1;
        }
    }
    free(line);
    if (!ok || !end)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s is not a virnucpro journal of this version (or is damaged); run "
                        "without --resume to start over",
                        path);
    return VNP_OK;
}

vnp_code vnp_journal_read(const char *path, vnp_journal *j, vnp_error *err)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return vnp_fail(err, VNP_ENOTFOUND, "no journal %s", path);
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    vnp_code rc = vnp_journal_parse(f, path, j, err);
    fclose(f);
    return rc;
}
