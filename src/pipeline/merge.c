/* virnucpro merge: the output directories of `predict --shard I/N` (I = 1..N) -> the
 * files one run over the whole input writes, byte for byte.
 *
 * Shard I holds the records whose 0-based input index k has k mod N = I - 1, in input
 * order, so record k is row k / N of shard (k mod N) + 1's sequences.tsv (one row per
 * record). Files with rows in input order are rebuilt by walking k = 0, 1, ... and
 * taking, from that shard, the rows that belong to its next record: a row belongs to
 * record R when its ID is R itself (sequences.tsv) or R "_chunk_" <digits> followed by
 * the frame name or nothing (every other per-chunk or per-frame file); that split of an
 * ID is unique, whatever R is. Sorted files are merged as sorted runs. Each kind of
 * file is one entry of k_files: a new output of predict gets its merger there, and a
 * file merge does not know is refused, never dropped. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/fs.h"
#include "pipeline/crash_point.h"
#include "pipeline/journal.h"
#include "pipeline/predict_internal.h"
#include "pipeline/shard.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/weights.h"

typedef struct shard_in {
    const char *dir;
    vnp_shard_record rec;
} shard_in;

typedef struct merge_ctx {
    shard_in *sh;   /* by shard: sh[i] is shard i + 1 */
    size_t n;       /* N */
    uint64_t total; /* records of the whole input */
} merge_ctx;

/* ---- a line cursor over one shard's file (one line of lookahead) ---- */

typedef struct cursor {
    FILE *f;
    char *path;
    char *line;
    size_t cap;
    ssize_t len;   /* of line, '\n' included; -1 at the end */
    size_t lineno; /* of line, 1-based */
} cursor;

static char *join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static vnp_code cursor_next(cursor *c, vnp_error *err)
{
    c->len = getline(&c->line, &c->cap, c->f);
    if (c->len < 0) {
        if (ferror(c->f))
            return vnp_fail(err, VNP_EIO, "cannot read %s: %s", c->path, strerror(errno));
        return VNP_OK;
    }
    c->lineno++;
    if (c->line[c->len - 1] != '\n')
        return vnp_fail(err, VNP_EFORMAT,
                        "%s line %zu has no line end: the file is cut (was its predict run "
                        "finished?)",
                        c->path, c->lineno);
    return VNP_OK;
}

static vnp_code cursor_open(cursor *c, const char *dir, const char *name, vnp_error *err)
{
    memset(c, 0, sizeof *c);
    c->len = -1;
    if (!(c->path = join(dir, name, "")))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (!(c->f = fopen(c->path, "r")))
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s%s", c->path, strerror(errno),
                        errno == EMFILE ? " (too many shards open at once: raise 'ulimit -n')"
                                        : "");
    return cursor_next(c, err);
}

static void cursor_close(cursor *c)
{
    if (c->f)
        fclose(c->f);
    free(c->path);
    free(c->line);
    memset(c, 0, sizeof *c);
}

static vnp_code put(FILE *out, const char *path, const char *s, size_t n, vnp_error *err)
{
    if (fwrite(s, 1, n, out) != n)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", path,
                        strerror(errno));
    return VNP_OK;
}

/* The first field of a row (up to a tab or the line end), or of a FASTA header (after
 * '>', up to a blank). */
static size_t key_of(const char *line, size_t len, int fasta, const char **key)
{
    const char *s = line + (fasta ? 1 : 0), *end = line + len;
    const char *p = s;
    while (p < end && *p != '\t' && *p != '\n' && (!fasta || *p != ' '))
        p++;
    *key = s;
    return (size_t)(p - s);
}

/* The row key is record `id`'s: id itself (tail < 0), or id "_chunk_" <digits> and
 * `tail` more characters (the frame name "F1".."R3", or none). *chunk, *chunk_len: the
 * digits. */
static int belongs(const char *key, size_t klen, const char *id, size_t idlen, int tail,
                   const char **chunk, size_t *chunk_len)
{
    if (tail < 0)
        return klen == idlen && !memcmp(key, id, idlen);
    if (klen < idlen + 8 + (size_t)tail || memcmp(key, id, idlen) ||
        memcmp(key + idlen, "_chunk_", 7))
        return 0;
    for (size_t i = idlen + 7; i < klen - (size_t)tail; i++)
        if (!isdigit((unsigned char)key[i]))
            return 0;
    *chunk = key + idlen + 7;
    *chunk_len = klen - (size_t)tail - idlen - 7;
    return 1;
}

/* ---- files in input order ---- */

typedef struct ordered_spec {
    int header;       /* a header line, the same in every shard, written once */
    int fasta;        /* rows are FASTA records (header line + sequence lines) */
    int tail;         /* see belongs() */
    int check_scored; /* distinct chunks of a record's rows = its Chunks_scored */
} ordered_spec;

/* Column `col` (0-based) of a sequences.tsv row as a number; -1 when it is not one. */
static long long tsv_number(const char *line, int col)
{
    const char *p = line;
    for (int i = 0; i < col && p; i++)
        if ((p = strchr(p, '\t')))
            p++;
    if (!p || !isdigit((unsigned char)*p))
        return -1;
    return strtoll(p, NULL, 10);
}

static vnp_code check_headers(cursor *cur, size_t n, vnp_error *err)
{
    for (size_t s = 1; s < n; s++)
        if (cur[s].len != cur[0].len || memcmp(cur[s].line, cur[0].line, (size_t)cur[0].len))
            return vnp_fail(err, VNP_EFORMAT,
                            "%s and %s have different header lines: not outputs of the same "
                            "virnucpro version",
                            cur[0].path, cur[s].path);
    return VNP_OK;
}

static vnp_code merge_ordered(merge_ctx *m, const char *name, const ordered_spec *sp,
                              FILE *out, const char *out_path, vnp_error *err)
{
    cursor *seq = calloc(m->n, sizeof *seq), *cur = calloc(m->n, sizeof *cur);
    vnp_code rc = seq && cur ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t s = 0; s < m->n && !rc; s++) {
        if (!(rc = cursor_open(&seq[s], m->sh[s].dir, VNP_PREDICT_SEQUENCES, err)))
            rc = cursor_next(&seq[s], err); /* past the header */
        if (!rc)
            rc = cursor_open(&cur[s], m->sh[s].dir, name, err);
    }
    if (!rc && sp->header) {
        if (cur[0].len < 0)
            rc = vnp_fail(err, VNP_EFORMAT, "%s is empty (no header line)", cur[0].path);
        if (!rc)
            rc = check_headers(cur, m->n, err);
        if (!rc)
            rc = put(out, out_path, cur[0].line, (size_t)cur[0].len, err);
        for (size_t s = 0; s < m->n && !rc; s++)
            rc = cursor_next(&cur[s], err);
    }
    for (uint64_t k = 0; k < m->total && !rc; k++) {
        size_t s = (size_t)(k % m->n);
        cursor *q = &seq[s], *c = &cur[s];
        if (q->len < 0) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s has fewer rows than the %llu records its shard.txt counts: it "
                          "was changed after the run; run that shard again",
                          q->path, (unsigned long long)m->sh[s].rec.records);
            break;
        }
        const char *id;
        size_t idlen = key_of(q->line, (size_t)q->len, 0, &id);
        char last[32]; /* the chunk number of the last row written */
        size_t last_len = sizeof last;
        long long chunks = 0;
        while (c->len >= 0 && (!sp->fasta || c->line[0] == '>')) {
            const char *key, *chunk = NULL;
            size_t chunk_len = 0;
            size_t klen = key_of(c->line, (size_t)c->len, sp->fasta, &key);
            if (!belongs(key, klen, id, idlen, sp->tail, &chunk, &chunk_len))
                break;
            if (sp->check_scored && chunk_len < sizeof last &&
                (chunk_len != last_len || memcmp(last, chunk, chunk_len))) {
                chunks++;
                memcpy(last, chunk, chunk_len);
                last_len = chunk_len;
            }
            do { /* the row (a FASTA record: its header and sequence lines) */
                if ((rc = put(out, out_path, c->line, (size_t)c->len, err)) ||
                    (rc = cursor_next(c, err)))
                    break;
            } while (sp->fasta && c->len >= 0 && c->line[0] != '>');
            if (rc)
                break;
        }
        if (rc)
            break;
        if (sp->check_scored && chunks != tsv_number(q->line, 3)) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: the rows of record '%.*s' cover %lld chunks, but %s says %lld "
                          "were scored (record IDs that collide, or files changed after the "
                          "run); run without --shard",
                          c->path, (int)(idlen < 200 ? idlen : 200), id, chunks, q->path,
                          tsv_number(q->line, 3));
            break;
        }
        rc = cursor_next(q, err);
    }
    for (size_t s = 0; s < m->n && !rc; s++) {
        if (cur[s].len >= 0) {
            const char *key;
            size_t klen = key_of(cur[s].line, (size_t)cur[s].len, sp->fasta, &key);
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s line %zu ('%.*s') is not a row of any of the shard's records in "
                          "the order of its sequences.tsv: the files were changed after the "
                          "run; run that shard again",
                          cur[s].path, cur[s].lineno, (int)(klen < 200 ? klen : 200), key);
        } else if (seq[s].len >= 0)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s has more rows than the %llu records its shard.txt counts: it was "
                          "changed after the run; run that shard again",
                          seq[s].path, (unsigned long long)m->sh[s].rec.records);
    }
    for (size_t s = 0; s < m->n && seq && cur; s++) {
        cursor_close(&seq[s]);
        cursor_close(&cur[s]);
    }
    free(seq);
    free(cur);
    return rc;
}

/* ---- files sorted by their first field (prediction_results_highestscore.csv) ---- */

static int cmp_keys(const cursor *a, const cursor *b)
{
    const char *ka, *kb;
    size_t na = key_of(a->line, (size_t)a->len, 0, &ka), nb = key_of(b->line, (size_t)b->len, 0, &kb);
    int r = memcmp(ka, kb, na < nb ? na : nb);
    return r ? r : (na > nb) - (na < nb);
}

static void sift_down(cursor *cur, size_t *heap, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cmp_keys(&cur[heap[l]], &cur[heap[m]]) < 0)
            m = l;
        if (r < n && cmp_keys(&cur[heap[r]], &cur[heap[m]]) < 0)
            m = r;
        if (m == i)
            return;
        size_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

/* Rows sorted by ID (bytewise, as one run sorts them) in every shard: one sorted merge.
 * Each ID is one chunk's and a chunk is in one shard, so an ID seen twice means record
 * IDs that collide: refused, as one run would have combined those rows. */
static vnp_code merge_sorted(merge_ctx *m, const char *name, FILE *out, const char *out_path,
                             vnp_error *err)
{
    cursor *cur = calloc(m->n, sizeof *cur);
    size_t *heap = calloc(m->n, sizeof *heap), nh = 0;
    char *prev = NULL, *prev_path = NULL;
    size_t prev_cap = 0, prev_len = 0;
    vnp_code rc = cur && heap ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t s = 0; s < m->n && !rc; s++)
        rc = cursor_open(&cur[s], m->sh[s].dir, name, err);
    if (!rc && cur[0].len < 0)
        rc = vnp_fail(err, VNP_EFORMAT, "%s is empty (no header line)", cur[0].path);
    if (!rc)
        rc = check_headers(cur, m->n, err);
    if (!rc)
        rc = put(out, out_path, cur[0].line, (size_t)cur[0].len, err);
    for (size_t s = 0; s < m->n && !rc; s++)
        if (!(rc = cursor_next(&cur[s], err)) && cur[s].len >= 0)
            heap[nh++] = s;
    for (size_t i = nh; i-- > 0 && !rc;)
        sift_down(cur, heap, nh, i);
    while (nh > 0 && !rc) {
        cursor *c = &cur[heap[0]];
        const char *key;
        size_t klen = key_of(c->line, (size_t)c->len, 0, &key);
        if (prev) {
            int r = memcmp(prev, key, prev_len < klen ? prev_len : klen);
            r = r ? r : (prev_len > klen) - (prev_len < klen);
            if (r == 0) {
                rc = vnp_fail(err, VNP_EFORMAT,
                              "chunk '%.*s' has a row in %s and in %s: record IDs that collide "
                              "(one run combines such rows); run without --shard",
                              (int)(klen < 200 ? klen : 200), key, prev_path, c->path);
                break;
            }
            if (r > 0) {
                rc = vnp_fail(err, VNP_EFORMAT,
                              "%s line %zu is out of order: the file was changed after the "
                              "run; run that shard again",
                              c->path, c->lineno);
                break;
            }
        }
        if (klen > prev_cap) {
            char *p = realloc(prev, klen * 2);
            if (!p) {
                rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
                break;
            }
            prev = p;
            prev_cap = klen * 2;
        }
        if (!prev && !(prev = malloc(1))) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
            break;
        }
        memcpy(prev, key, klen);
        prev_len = klen;
        prev_path = c->path;
        if ((rc = put(out, out_path, c->line, (size_t)c->len, err)) || (rc = cursor_next(c, err)))
            break;
        if (c->len < 0)
            heap[0] = heap[--nh];
        sift_down(cur, heap, nh, 0);
    }
    for (size_t s = 0; s < m->n && cur; s++)
        cursor_close(&cur[s]);
    free(cur);
    free(heap);
    free(prev);
    return rc;
}

/* ---- merged_features.safetensors (--embeddings) ---- */

typedef struct feat_shard {
    vnp_tensor_map *map;
    const float *rows;
    const char *ids, *ids_end; /* the next ID: ids up to '\n' */
    int64_t nrows, row;
} feat_shard;

static vnp_code merge_features(merge_ctx *m, const char *name, const char *out_path,
                               vnp_error *err)
{
    feat_shard *fs = calloc(m->n, sizeof *fs);
    cursor *seq = calloc(m->n, sizeof *seq);
    vnp_features_writer *w = NULL;
    int64_t width = -1;
    vnp_code rc = fs && seq ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t s = 0; s < m->n && !rc; s++) {
        char *path = join(m->sh[s].dir, name, "");
        if (!path) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
            break;
        }
        if (!(rc = vnp_safetensors_load(path, &fs[s].map, err))) {
            const vnp_tensor *f = vnp_tensor_map_get(fs[s].map, "features");
            const vnp_tensor *ids = vnp_tensor_map_get(fs[s].map, "ids");
            if (!f || !ids || f->dtype != VNP_DT_F32 || f->ndim != 2 || ids->dtype != VNP_DT_U8 ||
                (width >= 0 && f->shape[1] != width))
                rc = vnp_fail(err, VNP_EFORMAT,
                              "%s is not predict's features file (tensors 'features' F32 "
                              "[N, %s] and 'ids' U8)",
                              path, width >= 0 ? "the other shards' width" : "W");
            else {
                width = f->shape[1];
                fs[s].rows = f->data;
                fs[s].nrows = f->shape[0];
                fs[s].ids = ids->data;
                fs[s].ids_end = fs[s].ids + ids->nbytes;
            }
        }
        free(path);
        if (!rc && !(rc = cursor_open(&seq[s], m->sh[s].dir, VNP_PREDICT_SEQUENCES, err)))
            rc = cursor_next(&seq[s], err);
    }
    if (!rc && (width < 1 || width > (1 << 20)))
        rc = vnp_fail(err, VNP_EFORMAT, "%s/%s: feature width %lld", m->sh[0].dir, name,
                      (long long)width);
    if (!rc)
        rc = vnp_features_writer_create(out_path, "features", (int)width,
                                        vnp_predict_features_meta, &w, err);
    for (uint64_t k = 0; k < m->total && !rc; k++) {
        size_t s = (size_t)(k % m->n);
        feat_shard *f = &fs[s];
        if (seq[s].len < 0) {
            rc = vnp_fail(err, VNP_EFORMAT, "%s has fewer rows than its shard.txt counts",
                          seq[s].path);
            break;
        }
        const char *id;
        size_t idlen = key_of(seq[s].line, (size_t)seq[s].len, 0, &id);
        while (f->row < f->nrows && f->ids < f->ids_end) {
            const char *nl = memchr(f->ids, '\n', (size_t)(f->ids_end - f->ids)), *chunk;
            size_t klen = nl ? (size_t)(nl - f->ids) : 0, chunk_len;
            if (!nl || !belongs(f->ids, klen, id, idlen, 2, &chunk, &chunk_len))
                break;
            if ((rc = vnp_features_writer_add(w, f->ids, klen, f->rows + f->row * width, err)))
                break;
            f->ids = nl + 1;
            f->row++;
        }
        if (!rc)
            rc = cursor_next(&seq[s], err);
    }
    for (size_t s = 0; s < m->n && !rc; s++)
        if (fs[s].row != fs[s].nrows || fs[s].ids != fs[s].ids_end)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s/%s: row %lld is not of any of the shard's records in the order of "
                          "its sequences.tsv: the files were changed after the run",
                          m->sh[s].dir, name, (long long)fs[s].row);
    if (!rc)
        rc = vnp_features_writer_finish(w, err);
    vnp_features_writer_free(w);
    for (size_t s = 0; s < m->n && fs && seq; s++) {
        vnp_tensor_map_free(fs[s].map);
        cursor_close(&seq[s]);
    }
    free(fs);
    free(seq);
    return rc;
}

/* ---- run.json: what each shard's run was, gathered (times and hosts differ) ---- */

static vnp_code read_json(const char *path, cJSON **out, vnp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    char chunk[65536];
    vnp_code rc = VNP_OK;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
                break;
            }
            buf = nb;
        }
        memcpy(buf + n, chunk, got);
        n += got;
    }
    if (!rc && ferror(f))
        rc = vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (!rc && !(*out = buf ? cJSON_ParseWithLength(buf, n) : NULL))
        rc = vnp_fail(err, VNP_EFORMAT, "%s is not valid JSON (damaged?); run that shard again",
                      path);
    free(buf);
    return rc;
}

/* OUT/run.json: shard 1's run record (the schema classify reads: options.chunk_length,
 * input.records_sha256, ... are the same for every shard) with "counts" summed over the
 * shards, "start_time" the earliest and "end_time" the latest, "status" "ok" only when
 * every shard's is, and "merge": {shards, input_records, input_records_sha256,
 * directories, runs: [each shard's run.json, in shard order]}. */
static vnp_code merge_run_json(merge_ctx *m, const char *name, FILE *out, const char *out_path,
                               vnp_error *err)
{
    cJSON **runs = calloc(m->n, sizeof *runs);
    if (!runs)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc = VNP_OK;
    for (size_t s = 0; s < m->n && !rc; s++) {
        char *path = join(m->sh[s].dir, name, "");
        rc = path ? read_json(path, &runs[s], err) : vnp_fail(err, VNP_ENOMEM, "out of memory");
        free(path);
        if (!rc && !cJSON_IsObject(runs[s]))
            rc = vnp_fail(err, VNP_EFORMAT, "%s/%s is not a JSON object", m->sh[s].dir, name);
    }
    cJSON *root = rc ? NULL : cJSON_Duplicate(runs[0], 1);
    if (!rc && !root)
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    cJSON *counts = root ? cJSON_GetObjectItemCaseSensitive(root, "counts") : NULL;
    cJSON *start = root ? cJSON_GetObjectItemCaseSensitive(root, "start_time") : NULL;
    cJSON *end = root ? cJSON_GetObjectItemCaseSensitive(root, "end_time") : NULL;
    cJSON *status = root ? cJSON_GetObjectItemCaseSensitive(root, "status") : NULL;
    for (size_t s = 1; s < m->n && !rc; s++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(runs[s], "counts"), *it;
        cJSON_ArrayForEach(it, c) {
            cJSON *mine = cJSON_IsObject(counts) ? cJSON_GetObjectItemCaseSensitive(counts, it->string)
                                                 : NULL;
            if (cJSON_IsNumber(mine) && cJSON_IsNumber(it))
                cJSON_SetNumberValue(mine, mine->valuedouble + it->valuedouble);
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(runs[s], "start_time");
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(runs[s], "end_time");
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(runs[s], "status");
        if (cJSON_IsString(start) && cJSON_IsString(st) && strcmp(st->valuestring, start->valuestring) < 0)
            cJSON_ReplaceItemInObjectCaseSensitive(root, "start_time",
                                                   start = cJSON_CreateString(st->valuestring));
        if (cJSON_IsString(end) && cJSON_IsString(en) && strcmp(en->valuestring, end->valuestring) > 0)
            cJSON_ReplaceItemInObjectCaseSensitive(root, "end_time",
                                                   end = cJSON_CreateString(en->valuestring));
        if (cJSON_IsString(status) && cJSON_IsString(ok) && strcmp(ok->valuestring, "ok"))
            cJSON_ReplaceItemInObjectCaseSensitive(root, "status",
                                                   status = cJSON_CreateString(ok->valuestring));
    }
    cJSON *mg = NULL, *dirs = NULL, *arr = NULL;
    if (!rc) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "merge");
        mg = cJSON_AddObjectToObject(root, "merge");
        dirs = mg ? cJSON_AddArrayToObject(mg, "directories") : NULL;
        arr = mg ? cJSON_AddArrayToObject(mg, "runs") : NULL;
        if (!arr || !cJSON_AddNumberToObject(mg, "shards", (double)m->n) ||
            !cJSON_AddNumberToObject(mg, "input_records", (double)m->total) ||
            !cJSON_AddStringToObject(mg, "input_records_sha256", m->sh[0].rec.input_sha256))
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    for (size_t s = 0; s < m->n && !rc; s++) { /* the runs move into the array */
        cJSON_AddItemToArray(dirs, cJSON_CreateString(m->sh[s].dir));
        cJSON_AddItemToArray(arr, runs[s]);
        runs[s] = NULL;
    }
    char *text = rc ? NULL : cJSON_Print(root);
    if (!rc && !text)
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (!rc && !(rc = put(out, out_path, text, strlen(text), err)))
        rc = put(out, out_path, "\n", 1, err);
    cJSON_free(text);
    cJSON_Delete(root);
    for (size_t s = 0; s < m->n; s++)
        cJSON_Delete(runs[s]);
    free(runs);
    return rc;
}

/* ---- the table: one merger per kind of output file ---- */

typedef struct merger {
    const char *name; /* the file name, or with `suffix` the end of it ("S" + name) */
    int suffix;
    /* one of the two: */
    const ordered_spec *ordered;
    vnp_code (*merge_file)(merge_ctx *m, const char *name, FILE *out, const char *out_path,
                           vnp_error *err);
    vnp_code (*merge_path)(merge_ctx *m, const char *name, const char *out_path,
                           vnp_error *err);
} merger;

static const ordered_spec k_results = {.header = 1, .tail = 2, .check_scored = 1};
static const ordered_spec k_sequences = {.header = 1, .tail = -1};
/* per-record tables whose first column is the record ID (any number of rows per record) */
static const ordered_spec k_by_id_header = {.header = 1, .tail = -1};
static const ordered_spec k_by_id = {.tail = -1};
static const ordered_spec k_record_fasta = {.fasta = 1, .tail = -1};
static const ordered_spec k_chunk_fasta = {.fasta = 1, .tail = 0};
static const ordered_spec k_frame_fasta = {.fasta = 1, .tail = 2};

static const merger k_files[] = {
    {VNP_PREDICT_RESULTS, 0, &k_results, NULL, NULL},
    {VNP_PREDICT_HIGHEST, 0, NULL, merge_sorted, NULL},
    {VNP_PREDICT_SEQUENCES, 0, &k_sequences, NULL, NULL},
    {VNP_PREDICT_FEATURES, 0, NULL, NULL, merge_features},
    /* one row per chunk / region / viral record, first column (or FASTA ID) the record's */
    {"chunks.tsv", 0, &k_by_id_header, NULL, NULL},
    {"viral_regions.bed", 0, &k_by_id, NULL, NULL},
    {"viral.fna", 0, &k_record_fasta, NULL, NULL},
    /* the run record of each shard, gathered */
    {"run.json", 0, NULL, merge_run_json, NULL},
    /* --keep-intermediate: S_chunked<L>.fa, S_identified_nucleotide.fa,
     * S_identified_protein.faa */
    {"_chunked300.fa", 1, &k_chunk_fasta, NULL, NULL},
    {"_chunked500.fa", 1, &k_chunk_fasta, NULL, NULL},
    {"_identified_nucleotide.fa", 1, &k_frame_fasta, NULL, NULL},
    {"_identified_protein.faa", 1, &k_frame_fasta, NULL, NULL},
};
#define NFILES (sizeof k_files / sizeof k_files[0])

static const merger *merger_for(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < NFILES; i++) {
        size_t l = strlen(k_files[i].name);
        if (k_files[i].suffix ? n > l && !strcmp(name + n - l, k_files[i].name)
                              : !strcmp(name, k_files[i].name))
            return &k_files[i];
    }
    return NULL;
}

static vnp_code run_merger(merge_ctx *m, const merger *g, const char *name, const char *part,
                           vnp_error *err)
{
    if (g->merge_path)
        return g->merge_path(m, name, part, err);
    FILE *out = fopen(part, "w");
    if (!out)
        return vnp_fail(err, VNP_EIO, "cannot create %s: %s", part, strerror(errno));
    vnp_code rc = g->ordered ? merge_ordered(m, name, g->ordered, out, part, err)
                             : g->merge_file(m, name, out, part, err);
    int bad = fflush(out) != 0 || ferror(out) || fsync(fileno(out)) != 0;
    bad |= fclose(out) != 0;
    if (!rc && bad)
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", part,
                      strerror(errno));
    return rc;
}

/* ---- the shards ---- */

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The files of a shard directory merge combines, sorted; refuses an unfinished run and a
 * file no merger knows. */
static vnp_code shard_files(const char *dir, char ***names, int *count, vnp_error *err)
{
    vnp_code rc = vnp_list_dir(dir, names, count, err);
    if (rc)
        return rc;
    for (int i = 0; i < *count && !rc; i++) {
        const char *nm = (*names)[i];
        size_t l = strlen(nm);
        if (!strcmp(nm, VNP_SHARD_FILE) || !strcmp(nm, ".virnucpro.lock"))
            continue;
        if (!strcmp(nm, VNP_PREDICT_JOURNAL) || (l > 5 && !strcmp(nm + l - 5, ".part")) ||
            (l > 4 && !strcmp(nm + l - 4, ".tmp")))
            rc = vnp_fail(err, VNP_EINVAL,
                          "%s holds an unfinished predict run (%s): finish it with the same "
                          "command and --resume, then merge",
                          dir, nm);
        else if (!merger_for(nm))
            rc = vnp_fail(err, VNP_EUNSUPPORTED,
                          "%s/%s: merge does not know how to combine this file (not an output "
                          "of predict, or of a newer virnucpro); move it out of the shard "
                          "directory",
                          dir, nm);
    }
    if (rc) {
        vnp_list_dir_free(*names, *count);
        *names = NULL;
        *count = 0;
        return rc;
    }
    int k = 0;
    for (int i = 0; i < *count; i++) {
        if (!strcmp((*names)[i], VNP_SHARD_FILE) || !strcmp((*names)[i], ".virnucpro.lock"))
            free((*names)[i]);
        else
            (*names)[k++] = (*names)[i];
    }
    *count = k;
    qsort(*names, (size_t)k, sizeof **names, by_str);
    return VNP_OK;
}

static vnp_code read_shard(const char *dir, vnp_shard_record *r, vnp_error *err)
{
    if (!vnp_is_dir(dir))
        return vnp_fail(err, VNP_ENOTFOUND, "%s is not a directory (a predict --shard output)",
                        dir);
    vnp_code mrc = vnp_merge_check_complete(dir, err);
    if (mrc)
        return mrc;
    char *path = join(dir, VNP_SHARD_FILE, ""), *journal = join(dir, VNP_PREDICT_JOURNAL, "");
    vnp_code rc = path && journal ? vnp_shard_record_read(path, r, err)
                                  : vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (rc == VNP_ENOTFOUND)
        rc = access(journal, F_OK) == 0
                 ? vnp_fail(err, VNP_EINVAL,
                            "%s holds an unfinished predict run (predict.journal): finish it "
                            "with the same command and --resume, then merge",
                            dir)
                 : vnp_fail(err, VNP_ENOTFOUND,
                            "%s has no shard.txt: it is not the output of a finished 'predict "
                            "--shard I/N' run",
                            dir);
    free(path);
    free(journal);
    return rc;
}

/* Shards b and a are of one run: the same identity (input path aside: the records' count
 * and SHA-256 decide) and the same input. */
static vnp_code same_run(const shard_in *a, const shard_in *b, vnp_error *err)
{
    if (a->rec.input_records != b->rec.input_records ||
        strcmp(a->rec.input_sha256, b->rec.input_sha256))
        return vnp_fail(err, VNP_EINVAL,
                        "%s and %s are shards of different inputs (%llu records, SHA-256 %.12s... "
                        "vs %llu records, %.12s...): merge the shards of one run",
                        a->dir, b->dir, (unsigned long long)a->rec.input_records,
                        a->rec.input_sha256, (unsigned long long)b->rec.input_records,
                        b->rec.input_sha256);
    for (int pass = 0; pass < 2; pass++) {
        const shard_in *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < x->rec.nident; i++) {
            const char *key = x->rec.ident[i].key;
            if (!strcmp(key, "shard") || !strcmp(key, "input"))
                continue;
            const char *v = vnp_shard_ident(&y->rec, key);
            if (!v || strcmp(v, x->rec.ident[i].value)) {
                const char *va = pass ? v : x->rec.ident[i].value;
                const char *vb = pass ? x->rec.ident[i].value : v;
                return vnp_fail(err, VNP_EINVAL,
                                "%s and %s are not shards of the same run: %s differs (%s vs "
                                "%s); run every shard with the same models and options",
                                a->dir, b->dir, vnp_journal_ident_what(key),
                                va ? va : "(none)", vb ? vb : "(none)");
            }
        }
    }
    return VNP_OK;
}

/* Places the shards by index: every one of 1..N exactly once. */
static vnp_code place_shards(const char *const *dirs, size_t ndirs, shard_in *all,
                             merge_ctx *m, vnp_error *err)
{
    unsigned n = all[0].rec.count;
    for (size_t i = 1; i < ndirs; i++)
        if (all[i].rec.count != n)
            return vnp_fail(err, VNP_EINVAL,
                            "%s is shard %u/%u but %s is shard %u/%u: shards of different "
                            "splits; merge the N directories of one --shard I/N split",
                            dirs[0], all[0].rec.index, n, dirs[i], all[i].rec.index,
                            all[i].rec.count);
    m->n = n;
    m->sh = calloc(n, sizeof *m->sh);
    if (!m->sh)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t i = 0; i < ndirs; i++) {
        shard_in *slot = &m->sh[all[i].rec.index - 1];
        if (slot->dir)
            return vnp_fail(err, VNP_EINVAL, "shard %u/%u is given twice: %s and %s",
                            all[i].rec.index, n, slot->dir, dirs[i]);
        *slot = all[i];
    }
    char missing[512] = "";
    size_t nmiss = 0, used = 0;
    for (unsigned i = 0; i < n; i++)
        if (!m->sh[i].dir) {
            if (nmiss++ < 10 && used < sizeof missing)
                used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%u/%u",
                                         nmiss > 1 ? ", " : "", i + 1, n);
        }
    if (nmiss)
        return vnp_fail(err, VNP_EINVAL,
                        "%zu of %u shards %s missing (%s%s): pass the output directory of every "
                        "shard (run the missing ones first)",
                        nmiss, n, nmiss == 1 ? "is" : "are", missing, nmiss > 10 ? ", ..." : "");
    m->total = m->sh[0].rec.input_records;
    return VNP_OK;
}

/* Enough file descriptors for two files of every shard at once. */
static void raise_open_files(size_t shards)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * shards + 64 &&
        rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- merge.journal: out_dir is being committed ---- */

static char *merge_journal_path(const char *dir) { return join(dir, VNP_MERGE_JOURNAL, ""); }

vnp_code vnp_merge_check_complete(const char *dir, vnp_error *err)
{
    char *p = merge_journal_path(dir);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    int half = access(p, F_OK) == 0;
    free(p);
    if (!half)
        return VNP_OK;
    return vnp_fail(err, VNP_EINVAL,
                    "%s is half merged (%s: a 'virnucpro merge -o %s' stopped before all its "
                    "files were in place): run that merge again to complete it",
                    dir, VNP_MERGE_JOURNAL, dir);
}

/* What is being renamed into out_dir, written before the first rename (a temporary file
 * flushed to disk, then renamed): its presence is what readers check; the rest is for
 * the person who finds it. */
static vnp_code write_merge_journal(const char *out_dir, const merge_ctx *m, char **names,
                                    int count, vnp_error *err)
{
    char *path = merge_journal_path(out_dir), *tmp = join(out_dir, VNP_MERGE_JOURNAL, ".tmp");
    vnp_code rc = VNP_OK;
    if (!path || !tmp) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    } else {
        FILE *f = fopen(tmp, "w");
        int bad = !f || fprintf(f, "virnucpro merge journal 1\n# this directory is half "
                                   "merged until this file goes: run the same 'virnucpro "
                                   "merge' again to complete it\nstate committing\nshards "
                                   "%zu\n", m->n) < 0;
        for (size_t s = 0; s < m->n && !bad; s++)
            bad = fprintf(f, "shard %s\n", m->sh[s].dir) < 0;
        for (int i = 0; i < count && !bad; i++)
            bad = fprintf(f, "file %s\n", names[i]) < 0;
        if (!bad)
            bad = fputs("end\n", f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
        if (f && fclose(f) != 0)
            bad = 1;
        if (bad || rename(tmp, path) != 0) {
            rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    if (!rc)
        vnp_crash_point("merge journal written");
    free(path);
    free(tmp);
    return rc;
}

/* report.html and plots/ of an earlier run or merge in out_dir: vnp_merge_report draws
 * them again, else `classify` does. */
static void remove_old_report(const char *out_dir)
{
    char *r = join(out_dir, VNP_PREDICT_REPORT, "");
    if (r)
        remove(r);
    free(r);
    vnp_derive_remove_plots(out_dir);
}

vnp_code vnp_merge_finish(const char *out_dir, vnp_error *err)
{
    char *p = merge_journal_path(out_dir);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc = VNP_OK;
    if (remove(p) != 0 && errno != ENOENT)
        rc = vnp_fail(err, VNP_EIO, "cannot remove %s: %s", p, strerror(errno));
    else
        vnp_crash_point("merge journal removed");
    free(p);
    return rc;
}

vnp_code vnp_merge(const char *out_dir, const char *const *dirs, size_t ndirs, vnp_error *err)
{
    if (ndirs == 0)
        return vnp_fail(err, VNP_EINVAL, "no shard directories given");
    merge_ctx m;
    memset(&m, 0, sizeof m);
    shard_in *all = calloc(ndirs, sizeof *all);
    char **names = NULL, **other = NULL, **parts = NULL;
    int count = 0, ocount = 0;
    size_t nparts = 0;
    vnp_code rc = all ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t i = 0; i < ndirs && !rc; i++) {
        all[i].dir = dirs[i];
        rc = read_shard(dirs[i], &all[i].rec, err);
    }
    if (!rc)
        rc = place_shards(dirs, ndirs, all, &m, err);
    for (size_t s = 1; s < m.n && !rc; s++)
        rc = same_run(&m.sh[0], &m.sh[s], err);
    if (!rc)
        rc = shard_files(m.sh[0].dir, &names, &count, err);
    for (size_t s = 1; s < m.n && !rc; s++) {
        if ((rc = shard_files(m.sh[s].dir, &other, &ocount, err)))
            break;
        for (int i = 0; i < count || i < ocount; i++) {
            int c = i >= count ? 1 : i >= ocount ? -1 : strcmp(names[i], other[i]);
            if (c) {
                rc = vnp_fail(err, VNP_EINVAL,
                              "%s has %s but %s does not: shards of one run have the same "
                              "files (the same predict options)",
                              c < 0 ? m.sh[0].dir : m.sh[s].dir, c < 0 ? names[i] : other[i],
                              c < 0 ? m.sh[s].dir : m.sh[0].dir);
                break;
            }
        }
        vnp_list_dir_free(other, ocount);
        other = NULL;
    }
    int have_sequences = 0; /* the record order comes from sequences.tsv */
    for (int i = 0; i < count; i++)
        have_sequences |= !strcmp(names[i], VNP_PREDICT_SEQUENCES);
    if (!rc && !have_sequences)
        rc = vnp_fail(err, VNP_EFORMAT, "%s has no %s: not a finished predict output",
                      m.sh[0].dir, VNP_PREDICT_SEQUENCES);
    for (size_t s = 0; s < m.n && !rc; s++) {
        char a[4096], b[4096];
        if (realpath(m.sh[s].dir, a) && realpath(out_dir, b) && !strcmp(a, b))
            rc = vnp_fail(err, VNP_EINVAL,
                          "the output directory %s is one of the shards: write the merged "
                          "files elsewhere (-o)",
                          out_dir);
    }
    if (!rc)
        rc = vnp_mkdirs(out_dir, "output directory", err);
    if (!rc && !(parts = calloc((size_t)count + 1, sizeof *parts)))
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (!rc)
        raise_open_files(m.n);
    for (int i = 0; i < count && !rc; i++) {
        if (!(parts[nparts] = join(out_dir, names[i], ".part"))) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
            break;
        }
        rc = run_merger(&m, merger_for(names[i]), names[i], parts[nparts++], err);
    }
    /* Every file is complete: the journal says the renames begin (from here on a stop
     * leaves it, and every reader of out_dir refuses it until a merge completes), an
     * earlier report of out_dir goes (it would not be of these files), then the renames. */
    int committing = 0;
    if (!rc && !(rc = write_merge_journal(out_dir, &m, names, count, err))) {
        committing = 1;
        remove_old_report(out_dir);
    }
    for (size_t i = 0; i < nparts && !rc; i++) {
        char *final = join(out_dir, names[i], "");
        if (!final)
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
        else if (rename(parts[i], final) != 0)
            rc = vnp_fail(err, VNP_EIO, "cannot rename %s to %s: %s", parts[i], final,
                          strerror(errno));
        else
            vnp_crash_point("merged file renamed into place");
        free(final);
    }
    for (size_t i = 0; i < nparts; i++) {
        if (rc)
            remove(parts[i]);
        free(parts[i]);
    }
    if (rc && committing) {
        vnp_error first = *err;
        vnp_fail(err, rc, "%s; %s is half merged: run the same merge again", first.msg,
                 out_dir);
    }
    free(parts);
    vnp_list_dir_free(names, count);
    free(m.sh);
    free(all);
    return rc;
}

/* ---- report.html and plots/: drawn from the sequences, so they need the input ---- */

vnp_code vnp_merge_report(const char *out_dir, const char *input, vnp_error *err)
{
    char *path = join(out_dir, "run.json", ""), *results = join(out_dir, VNP_PREDICT_RESULTS, "");
    cJSON *run = NULL;
    vnp_code rc = path && results ? read_json(path, &run, err)
                                  : vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_derive_options d;
    vnp_derive_options_init(&d);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(run, "options");
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(opt, "chunk_length");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(opt, "min_score");
    const cJSON *plots = cJSON_GetObjectItemCaseSensitive(opt, "plots");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(run, "input"), "records_sha256");
    if (!rc && (!cJSON_IsNumber(len) || !cJSON_IsString(sha)))
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s lacks options.chunk_length or input.records_sha256: the shards' "
                      "run.json are not of this version",
                      path);
    if (!rc) {
        d.results = results;
        d.input = input;
        d.out_dir = out_dir;
        d.suffix = ".part";
        d.chunk_len = len->valueint;
        d.min_score = cJSON_IsNumber(ms) ? (float)ms->valuedouble : -1.0f;
        if (cJSON_IsNumber(plots))
            d.plots = plots->valueint;
        d.records_sha256 = sha->valuestring;
        d.quiet = 1;
        vnp_derive_stats st;
        rc = vnp_derive(&d, &st, err);
        if (!rc)
            rc = vnp_derive_rename(out_dir, err);
    }
    cJSON_Delete(run);
    free(path);
    free(results);
    return rc;
}

int vnp_merge_recorded_input(const char *out_dir, char *path, size_t cap)
{
    char *rj = join(out_dir, "run.json", "");
    cJSON *run = NULL;
    vnp_error e;
    int ok = rj && read_json(rj, &run, &e) == VNP_OK;
    const cJSON *p = ok ? cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(run, "input"), "path")
                        : NULL;
    ok = cJSON_IsString(p) && p->valuestring[0] == '/' && strlen(p->valuestring) < cap &&
         access(p->valuestring, R_OK) == 0;
    if (ok)
        snprintf(path, cap, "%s", p->valuestring);
    cJSON_Delete(run);
    free(rj);
    return ok;
}
