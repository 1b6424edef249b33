/* Writes a safetensors file from in-memory tensors (a trained classifier, training
 * traces): the 8-byte little-endian header length, the JSON header (tensors in the
 * order given, data_offsets back to back, padded with spaces so the data starts
 * 8-byte aligned), then the data. Written to "<path>.part" and renamed at the end, so
 * `path` appears complete or not at all. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/weights.h"

static char *header_json(const vnp_tensor *t, size_t n, const char *const *meta)
{
    cJSON *h = cJSON_CreateObject();
    int ok = h != NULL;
    if (ok && meta && meta[0]) {
        cJSON *m = cJSON_AddObjectToObject(h, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && meta[i]; i += 2)
            ok = meta[i + 1] && cJSON_AddStringToObject(m, meta[i], meta[i + 1]);
    }
    size_t off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name);
        cJSON *sh = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *of = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = sh && of && cJSON_AddStringToObject(e, "dtype", vnp_dtype_name(t[i].dtype));
        for (int d = 0; ok && d < t[i].ndim; d++)
            ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
        ok = ok && cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t[i].nbytes)));
        off += t[i].nbytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    return json;
}

vnp_code vnp_safetensors_save(const char *path, const vnp_tensor *t, size_t n,
                              const char *const *meta, vnp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int64_t numel = vnp_tensor_numel(&t[i]);
        if (!t[i].name || !*t[i].name || numel < 0 ||
            (size_t)numel * vnp_dtype_size(t[i].dtype) != t[i].nbytes)
            return vnp_fail(err, VNP_EINVAL,
                            "%s: tensor %zu ('%s'): its byte size does not match its shape "
                            "and dtype",
                            path, i, t[i].name ? t[i].name : "");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return vnp_fail(err, VNP_EINVAL, "%s: tensor '%s' given twice", path,
                                t[i].name);
    }
    char *json = header_json(t, n, meta);
    size_t pl = strlen(path) + 6;
    char *part = malloc(pl);
    if (!json || !part) {
        free(json);
        free(part);
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", path);
    }
    snprintf(part, pl, "%s.part", path);
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    FILE *f = fopen(part, "wb");
    int bad = !f || fwrite(len8, 1, 8, f) != 8 || fwrite(json, 1, jl, f) != jl;
    for (size_t i = jl; !bad && i < hl; i++)
        bad = fputc(' ', f) == EOF;
    for (size_t i = 0; !bad && i < n; i++)
        bad = t[i].nbytes && fwrite(t[i].data, 1, t[i].nbytes, f) != t[i].nbytes;
    int e = errno;
    if (f && fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(part, path) != 0) {
        bad = 1;
        e = errno;
    }
    free(json);
    vnp_code rc = VNP_OK;
    if (bad) {
        remove(part);
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s (check the directory and free space)",
                      path, strerror(e));
    }
    free(part);
    return rc;
}
