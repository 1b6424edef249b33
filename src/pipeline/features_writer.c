/* A safetensors file of ID'd rows, streamed (predict's merged_features, embed's
 * output): rows and IDs go to two temporary files while computing; finish writes
 * the header (now that N is known) and appends both. Layout: tensor <name> F32
 * [N, width]; tensor "ids" U8 [bytes], the IDs in row order, each followed by '\n';
 * with labels (train's feature cache), tensor "labels" U8 [N] after them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virnucpro/pipeline.h"

struct vnp_features_writer {
    char *path, *rows_path, *ids_path, *tmp_path;
    uint8_t *labels; /* one per row when labelled (small: N bytes) */
    size_t nlabels, labels_cap;
    char *tensor;
    cJSON *meta;
    FILE *rows, *ids;
    int width;
    int keep;  /* free leaves the row and ID files (a resumable run) */
    uint64_t n, id_bytes;
};

static char *with_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", path, suffix);
    return p;
}

void vnp_features_writer_free(vnp_features_writer *w)
{
    if (!w)
        return;
    if (w->rows)
        fclose(w->rows);
    if (w->ids)
        fclose(w->ids);
    if (w->rows_path && !w->keep)
        remove(w->rows_path);
    if (w->ids_path && !w->keep)
        remove(w->ids_path);
    if (w->tmp_path)
        remove(w->tmp_path);
    free(w->path);
    free(w->rows_path);
    free(w->ids_path);
    free(w->tmp_path);
    free(w->tensor);
    free(w->labels);
    cJSON_Delete(w->meta);
    free(w);
}

static vnp_code writer_new(const char *path, const char *tensor, int width,
                           const char *const *meta, vnp_features_writer **out, vnp_error *err)
{
    *out = NULL;
    if (width <= 0)
        return vnp_fail(err, VNP_EINVAL, "feature width must be positive, not %d", width);
    vnp_features_writer *w = calloc(1, sizeof *w);
    if (!w)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    w->width = width;
    w->path = strdup(path);
    w->rows_path = with_suffix(path, ".rows.tmp");
    w->ids_path = with_suffix(path, ".ids.tmp");
    w->tmp_path = with_suffix(path, ".tmp");
    w->tensor = strdup(tensor);
    w->meta = cJSON_CreateObject();
    int meta_ok = w->meta && cJSON_AddStringToObject(w->meta, "format", "pt") &&
                  cJSON_AddStringToObject(w->meta, "ids",
                                          "tensor ids: UTF-8, one per line, in row order");
    for (size_t i = 0; meta_ok && meta && meta[i]; i += 2)
        meta_ok = meta[i + 1] && cJSON_AddStringToObject(w->meta, meta[i], meta[i + 1]);
    if (!w->path || !w->rows_path || !w->ids_path || !w->tmp_path || !w->tensor || !meta_ok) {
        vnp_features_writer_free(w);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    *out = w;
    return VNP_OK;
}

vnp_code vnp_features_writer_create(const char *path, const char *tensor, int width,
                                    const char *const *meta, vnp_features_writer **out,
                                    vnp_error *err)
{
    vnp_features_writer *w;
    vnp_code rc = writer_new(path, tensor, width, meta, &w, err);
    if (rc)
        return rc;
    w->rows = fopen(w->rows_path, "wb+");
    w->ids = w->rows ? fopen(w->ids_path, "wb+") : NULL;
    if (!w->rows || !w->ids) {
        rc = vnp_fail(err, VNP_EIO, "cannot create temporary files next to %s: %s", path,
                      strerror(errno));
        vnp_features_writer_free(w);
        return rc;
    }
    *out = w;
    return VNP_OK;
}

/* Opens a kept temporary file for appending after cutting it to len bytes. */
static FILE *reopen_cut(const char *path, uint64_t len, vnp_error *err)
{
    FILE *f = fopen(path, "rb+");
    struct stat st;
    if (!f) {
        vnp_fail(err, VNP_EIO, "cannot resume: %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size < len) {
        fclose(f);
        vnp_fail(err, VNP_EFORMAT,
                 "cannot resume: %s is shorter than the journal says (%llu bytes); run without "
                 "--resume to start over",
                 path, (unsigned long long)len);
        return NULL;
    }
    if (ftruncate(fileno(f), (off_t)len) != 0 || fseeko(f, 0, SEEK_END) != 0) {
        fclose(f);
        vnp_fail(err, VNP_EIO, "cannot resume: %s: %s", path, strerror(errno));
        return NULL;
    }
    return f;
}

vnp_code vnp_features_writer_resume(const char *path, const char *tensor, int width,
                                    const char *const *meta, uint64_t rows, uint64_t id_bytes,
                                    vnp_features_writer **out, vnp_error *err)
{
    vnp_features_writer *w;
    vnp_code rc = writer_new(path, tensor, width, meta, &w, err);
    if (rc)
        return rc;
    w->keep = 1; /* until it is resumed for good, a failure leaves the files as they were */
    if (!(w->rows = reopen_cut(w->rows_path, rows * (uint64_t)width * sizeof(float), err)) ||
        !(w->ids = reopen_cut(w->ids_path, id_bytes, err))) {
        vnp_features_writer_free(w);
        return VNP_EFORMAT;
    }
    w->keep = 0;
    w->n = rows;
    w->id_bytes = id_bytes;
    *out = w;
    return VNP_OK;
}

vnp_code vnp_features_writer_checkpoint(vnp_features_writer *w, uint64_t *rows,
                                        uint64_t *id_bytes, vnp_error *err)
{
    if (fflush(w->rows) != 0 || fflush(w->ids) != 0)
        return vnp_fail(err, VNP_EIO, "cannot write temporary data of %s: %s (check free space)",
                        w->path, strerror(errno));
    *rows = w->n;
    *id_bytes = w->id_bytes;
    return VNP_OK;
}

void vnp_features_writer_keep(vnp_features_writer *w)
{
    if (w)
        w->keep = 1;
}

vnp_code vnp_features_writer_add(vnp_features_writer *w, const char *id, size_t id_len,
                                 const float *row, vnp_error *err)
{
    if (fwrite(row, sizeof(float), (size_t)w->width, w->rows) != (size_t)w->width ||
        fwrite(id, 1, id_len, w->ids) != id_len || fputc('\n', w->ids) == EOF)
        return vnp_fail(err, VNP_EIO, "cannot write temporary data of %s: %s", w->path,
                        strerror(errno));
    w->n++;
    w->id_bytes += id_len + 1;
    return VNP_OK;
}

vnp_code vnp_features_writer_add_label(vnp_features_writer *w, int label, vnp_error *err)
{
    if (w->nlabels == w->labels_cap) {
        size_t cap = w->labels_cap ? 2 * w->labels_cap : 4096;
        uint8_t *l = realloc(w->labels, cap);
        if (!l)
            return vnp_fail(err, VNP_ENOMEM, "out of memory for the labels of %s", w->path);
        w->labels = l;
        w->labels_cap = cap;
    }
    w->labels[w->nlabels++] = label ? 1 : 0;
    return VNP_OK;
}

static int copy_all(FILE *from, FILE *to)
{
    char buf[1 << 16];
    if (fflush(from) != 0 || fseek(from, 0, SEEK_SET) != 0)
        return -1;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, from)) > 0)
        if (fwrite(buf, 1, n, to) != n)
            return -1;
    return ferror(from) ? -1 : 0;
}

static int add_tensor(cJSON *h, const char *name, const char *dtype, const uint64_t *shape,
                      int ndim, uint64_t begin, uint64_t end)
{
    cJSON *t = cJSON_AddObjectToObject(h, name);
    cJSON *sh = t ? cJSON_AddArrayToObject(t, "shape") : NULL;
    cJSON *off = t ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
    if (!t || !sh || !off || !cJSON_AddStringToObject(t, "dtype", dtype))
        return 0;
    for (int i = 0; i < ndim; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)begin));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)end));
    return 1;
}

uint64_t vnp_features_writer_rows(const vnp_features_writer *w) { return w->n; }

vnp_code vnp_features_writer_finish(vnp_features_writer *w, vnp_error *err)
{
    uint64_t fbytes = w->n * (uint64_t)w->width * sizeof(float);
    uint64_t fshape[2] = {w->n, (uint64_t)w->width}, ishape[1] = {w->id_bytes};
    uint64_t lshape[1] = {w->n};
    if (w->nlabels && w->nlabels != w->n)
        return vnp_fail(err, VNP_EINVAL, "%s: %zu labels for %llu rows", w->path, w->nlabels,
                        (unsigned long long)w->n);
    cJSON *h = cJSON_CreateObject();
    char *json = NULL;
    uint64_t lbeg = fbytes + w->id_bytes;
    if (h && cJSON_AddItemReferenceToObject(h, "__metadata__", w->meta) &&
        add_tensor(h, w->tensor, "F32", fshape, 2, 0, fbytes) &&
        add_tensor(h, "ids", "U8", ishape, 1, fbytes, fbytes + w->id_bytes) &&
        (!w->nlabels || add_tensor(h, "labels", "U8", lshape, 1, lbeg, lbeg + w->n)))
        json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!json)
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing the header of %s", w->path);
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8; /* data starts 8-byte aligned */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    FILE *f = fopen(w->tmp_path, "wb");
    int bad = !f || fwrite(len8, 1, 8, f) != 8 || fwrite(json, 1, jl, f) != jl;
    for (size_t i = jl; !bad && i < hl; i++) /* pad the JSON with spaces */
        bad = fputc(' ', f) == EOF;
    free(json);
    bad = bad || copy_all(w->rows, f) || copy_all(w->ids, f) ||
          (w->nlabels && fwrite(w->labels, 1, w->nlabels, f) != w->nlabels);
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad || rename(w->tmp_path, w->path) != 0)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", w->path,
                        strerror(errno));
    fclose(w->rows);
    fclose(w->ids);
    w->rows = w->ids = NULL;
    remove(w->rows_path);
    remove(w->ids_path);
    return VNP_OK;
}
