/* run.json: what a predict run was (tool and build, command line, times, host, devices,
 * models and input with their SHA-256, options, counts, stage times, memory, exit status),
 * written with cJSON on success and on failure. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "pipeline/model_files.h"
#include "virnucpro.h"
#include "virnucpro/hub.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/precision.h"

#define SCHEMA "virnucpro-run/1"

static cJSON *iso_time(double t)
{
    time_t s = (time_t)t;
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&s, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return cJSON_CreateNull();
    return cJSON_CreateString(buf);
}

/* A string, or null for NULL. */
static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *tool(void)
{
    vnp_build_info b;
    vnp_build_info_get(&b);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", "virnucpro");
    cJSON_AddStringToObject(t, "version", b.version);
    cJSON_AddStringToObject(t, "git_commit", b.git_commit);
    cJSON_AddStringToObject(t, "build_type", b.build_type);
    cJSON *archs = cJSON_AddArrayToObject(t, "cuda_archs");
    char list[256];
    snprintf(list, sizeof list, "%s", b.cuda_archs);
    for (char *save = NULL, *a = strtok_r(list, ";, ", &save); a; a = strtok_r(NULL, ";, ", &save))
        cJSON_AddItemToArray(archs, cJSON_CreateString(a));
    cJSON_AddStringToObject(t, "blas", b.blas);
    return t;
}

static cJSON *devices(const vnp_predict_options *o)
{
    cJSON *a = cJSON_CreateArray();
    vnp_devices d;
    vnp_error e;
    if (vnp_devices_parse(o->device, &d, &e) != VNP_OK)
        return a;
    int threads = o->threads > 0 ? o->threads : vnp_cpu_threads_available();
    for (int i = 0; i < d.n; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "device", d.name[i]);
        cJSON_AddStringToObject(w, "precision",
                                vnp_precision_name(vnp_precision_effective(d.name[i], o->precision)));
        if (!strcmp(d.name[i], "cpu"))
            cJSON_AddNumberToObject(w, "threads", threads);
        /* what the device is: its model, memory and (GPUs) compute capability; null when it
         * cannot be asked (a GPU gone since the run began) */
        vnp_device dev;
        vnp_error qe = {0};
        int gpu = !strncmp(d.name[i], "cuda:", 5);
        if (vnp_device_query(gpu ? VNP_DEVICE_CUDA : VNP_DEVICE_CPU,
                             gpu ? atoi(d.name[i] + 5) : 0, &dev, &qe) == VNP_OK) {
            cJSON_AddStringToObject(w, "name", dev.name);
            cJSON_AddNumberToObject(w, "memory_bytes", (double)dev.mem_total);
            if (gpu) {
                char cc[16];
                snprintf(cc, sizeof cc, "%d.%d", dev.cc_major, dev.cc_minor);
                cJSON_AddStringToObject(w, "compute_capability", cc);
            }
        } else {
            cJSON_AddNullToObject(w, "name");
            cJSON_AddNullToObject(w, "memory_bytes");
        }
        cJSON_AddItemToArray(a, w);
    }
    vnp_devices_free(&d);
    return a;
}

/* {"path": ..., "files": [{"name", "bytes", "sha256"}]}, or with "error" when the files
 * cannot be read (run.json is written for failed runs too). */
static cJSON *model(const char *path, const char *what)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToObject(m, "path", str_or_null(path));
    if (!path)
        return m;
    vnp_model_file *f;
    int n;
    vnp_error e;
    if (vnp_model_files(path, what, &f, &n, &e) != VNP_OK) {
        cJSON_AddStringToObject(m, "error", e.msg);
        return m;
    }
    cJSON *files = cJSON_AddArrayToObject(m, "files");
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", f[i].name);
        cJSON_AddNumberToObject(x, "bytes", (double)f[i].bytes);
        cJSON_AddStringToObject(x, "sha256", f[i].sha256);
        cJSON_AddItemToArray(files, x);
    }
    vnp_model_files_free(f, n);
    return m;
}

static cJSON *input(const vnp_predict_options *o, const vnp_predict_stats *st)
{
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "path", o->input);
    struct stat sb;
    char hex[65];
    vnp_error e;
    int file = strcmp(o->input, "-") && stat(o->input, &sb) == 0 && S_ISREG(sb.st_mode);
    if (file)
        cJSON_AddNumberToObject(in, "bytes", (double)sb.st_size);
    else
        cJSON_AddNullToObject(in, "bytes");
    if (file && vnp_file_sha256(o->input, hex, &e) == VNP_OK)
        cJSON_AddStringToObject(in, "sha256", hex);
    else
        cJSON_AddNullToObject(in, "sha256"); /* stdin, or unreadable now */
    cJSON_AddItemToObject(in, "records_sha256",
                          str_or_null(st->records_sha256[0] ? st->records_sha256 : NULL));
    return in;
}

static cJSON *options(const vnp_predict_options *o, const vnp_predict_stats *st)
{
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "chunk_length", o->chunk_len);
    char ms[VNP_F32_STR_MAX];
    vnp_format_f32(o->min_score, ms); /* the shortest decimal of the float: 0.8, not 0.80000001 */
    if (o->min_score >= 0)
        cJSON_AddNumberToObject(x, "min_score", strtod(ms, NULL));
    else
        cJSON_AddNullToObject(x, "min_score"); /* the original rule */
    cJSON_AddNumberToObject(x, "plots", o->plots);
    cJSON_AddStringToObject(x, "device", o->device ? o->device : "auto");
    cJSON_AddStringToObject(x, "precision", vnp_precision_name(o->precision));
    cJSON_AddNumberToObject(x, "threads", o->threads);
    /* the values used, defaults resolved (0 when the run stopped before choosing them) */
    cJSON_AddNumberToObject(x, "batch_tokens",
                            (double)(o->batch_tokens ? o->batch_tokens : st->batch_tokens));
    cJSON_AddNumberToObject(x, "window", (double)(o->window_orfs ? o->window_orfs
                                                                 : st->window_orfs));
    cJSON_AddBoolToObject(x, "keep_intermediate", o->keep_intermediate);
    cJSON_AddBoolToObject(x, "embeddings", o->embeddings);
    cJSON_AddBoolToObject(x, "resume", o->resume);
    cJSON_AddStringToObject(x, "output", o->out_dir);
    return x;
}

static cJSON *counts(const vnp_predict_stats *st)
{
    cJSON *x = cJSON_CreateObject();
    const vnp_derive_stats *d = &st->derived;
    cJSON_AddNumberToObject(x, "records", (double)st->records);
    cJSON_AddNumberToObject(x, "chunks", (double)st->chunks);
    cJSON_AddNumberToObject(x, "chunks_scored", (double)d->chunks_scored);
    cJSON_AddNumberToObject(x, "chunks_viral", (double)d->chunks_viral);
    cJSON_AddNumberToObject(x, "frames", (double)st->orfs);
    cJSON_AddNumberToObject(x, "tokens", (double)st->tokens);
    cJSON_AddNumberToObject(x, "viral_sequences", (double)d->seq_virus);
    cJSON_AddNumberToObject(x, "other_sequences", (double)d->seq_others);
    cJSON_AddNumberToObject(x, "unscored_sequences", (double)d->seq_unscored);
    cJSON_AddNumberToObject(x, "viral_regions", (double)d->regions);
    cJSON_AddNumberToObject(x, "recomputed_batches", (double)st->recomputed);
    cJSON_AddNumberToObject(x, "workers", st->workers);
    cJSON_AddNumberToObject(x, "workers_retired", st->retired);
    return x;
}

static cJSON *times(const vnp_run_record *r)
{
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "load_models", r->st->load_seconds);
    cJSON_AddNumberToObject(x, "predict", r->st->seconds - r->st->derive_seconds);
    cJSON_AddNumberToObject(x, "derived_outputs", r->st->derive_seconds);
    cJSON_AddNumberToObject(x, "total", r->end - r->start);
    return x;
}

vnp_code vnp_run_record_write(const vnp_run_record *r, vnp_error *err)
{
    return vnp_run_record_write_as(r, VNP_PREDICT_RUN_JSON, err);
}

vnp_code vnp_run_record_write_as(const vnp_run_record *r, const char *name, vnp_error *err)
{
    const vnp_predict_options *o = r->o;
    const vnp_predict_stats *st = r->st;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    cJSON_AddStringToObject(j, "schema", SCHEMA);
    cJSON_AddItemToObject(j, "tool", tool());
    cJSON *argv = cJSON_AddArrayToObject(j, "command_line");
    for (int i = 0; i < r->argc; i++)
        cJSON_AddItemToArray(argv, cJSON_CreateString(r->argv[i]));
    cJSON_AddItemToObject(j, "start_time", iso_time(r->start));
    cJSON_AddItemToObject(j, "end_time", r->running ? cJSON_CreateNull() : iso_time(r->end));
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = 0;
    cJSON_AddStringToObject(j, "host", host);
    cJSON_AddItemToObject(j, "devices", devices(o));
    cJSON *models = cJSON_AddObjectToObject(j, "models");
    cJSON_AddItemToObject(models, "esm2", model(o->esm, "ESM-2"));
    cJSON_AddItemToObject(models, "dnabert_s", model(o->dnabert, "DNABERT-S"));
    cJSON_AddItemToObject(models, "classifier", model(o->classifier, "classifier"));
    cJSON_AddItemToObject(j, "input", input(o, st));
    cJSON_AddItemToObject(j, "options", options(o, st));
    cJSON_AddItemToObject(j, "counts", counts(st));
    cJSON_AddItemToObject(j, "seconds", times(r));
    cJSON_AddNumberToObject(j, "peak_rss_kb", (double)st->peak_rss_kb);
    if (r->running)
        cJSON_AddNullToObject(j, "exit_status");
    else
        cJSON_AddNumberToObject(j, "exit_status", r->exit_status);
    cJSON_AddStringToObject(j, "status", r->running                ? "running"
                                         : r->exit_status == 0   ? "ok"
                                         : r->exit_status > 128 ? "interrupted"
                                                                : "failed");
    cJSON_AddItemToObject(j, "error", str_or_null(r->error));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing run.json");
    size_t n = strlen(o->out_dir) + strlen(name) + 8;
    char *path = malloc(n), *tmp = malloc(n + 4);
    vnp_code rc = VNP_OK;
    if (!path || !tmp) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    } else {
        snprintf(path, n, "%s/%s", o->out_dir, name);
        snprintf(tmp, n + 4, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        int bad = !f || fputs(text, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0 ||
                  fsync(fileno(f)) != 0;
        if (f && fclose(f) != 0)
            bad = 1;
        if (bad || rename(tmp, path) != 0) {
            rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    free(path);
    free(tmp);
    cJSON_free(text);
    return rc;
}
