/* Hugging Face safetensors: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the tensor bytes. The whole header is validated before any tensor is used:
 * offsets inside the data section, sizes equal to dtype x shape, no overlap and no
 * gap (the format requires the data section to be fully indexed). */
#include "weights/safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights/mapped_file.h"
#include "virnucpro/weights.h"

typedef struct {
    const char *name;
    vnp_dtype dtype;
    int ndim;
    int64_t shape[VNP_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int dtype_from_name(const char *s, vnp_dtype *dt)
{
    static const struct {
        const char *name;
        vnp_dtype dt;
    } table[] = {{"F32", VNP_DT_F32}, {"F16", VNP_DT_F16}, {"BF16", VNP_DT_BF16},
                 {"F64", VNP_DT_F64}, {"I64", VNP_DT_I64}, {"I32", VNP_DT_I32},
                 {"I16", VNP_DT_I16}, {"I8", VNP_DT_I8},   {"U8", VNP_DT_U8},
                 {"BOOL", VNP_DT_BOOL}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) {
            *dt = table[i].dt;
            return 1;
        }
    return 0;
}

/* A JSON number that is a non-negative integer exactly representable as a double. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static vnp_code parse_entry(const cJSON *item, const char *label, st_entry *e, vnp_error *err)
{
    e->name = item->string;
    if (!cJSON_IsObject(item))
        return vnp_fail(err, VNP_EFORMAT, "%s: tensor '%s': header entry is not a JSON object",
                        label, e->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: tensor '%s': header entry needs \"dtype\" (string), \"shape\" "
                        "(array) and \"data_offsets\" (array)",
                        label, e->name);
    if (!dtype_from_name(dt->valuestring, &e->dtype))
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s: tensor '%s': dtype %s is not supported (supported: F32, F16, BF16, "
                        "F64, I64, I32, I16, I8, U8, BOOL); convert the checkpoint to F32 or F16",
                        label, e->name, dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > VNP_MAX_DIMS)
        return vnp_fail(err, VNP_EUNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d)",
                        label, e->name, nd, VNP_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int i = 0, overflow = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return vnp_fail(err, VNP_EFORMAT,
                            "%s: tensor '%s': shape entry %d is not a non-negative integer",
                            label, e->name, i);
        e->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel))
            overflow = 1;
    }
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)vnp_dtype_size(e->dtype), &nbytes))
        return vnp_fail(err, VNP_EFORMAT, "%s: tensor '%s': shape is too large", label, e->name);
    if (cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &e->begin) ||
        !json_uint(offs->child->next, &e->end))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: tensor '%s': data_offsets must be two non-negative integers "
                        "[begin, end]",
                        label, e->name);
    if (e->end < e->begin || e->end - e->begin != nbytes) {
        char sb[160];
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        "] do not hold %s x %s = %" PRIu64 " bytes; the header is corrupt",
                        label, e->name, e->begin, e->end, vnp_dtype_name(e->dtype),
                        vnp_shape_str(e->shape, e->ndim, sb, sizeof sb), nbytes);
    }
    return VNP_OK;
}

static int by_begin(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static vnp_code check_layout(st_entry *ents, size_t n, uint64_t data_len, const char *label,
                             vnp_error *err)
{
    st_entry **order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", label);
    for (size_t i = 0; i < n; i++)
        order[i] = &ents[i];
    qsort(order, n, sizeof *order, by_begin);
    vnp_code rc = VNP_OK;
    uint64_t pos = 0;
    for (size_t i = 0; i < n && rc == VNP_OK; i++) {
        const st_entry *e = order[i];
        if (e->end > data_len)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] end beyond the data section (%" PRIu64
                          " bytes); the file is truncated or corrupt, download it again",
                          label, e->name, e->begin, e->end, data_len);
        else if (e->begin < pos)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: tensor '%s' (bytes %" PRIu64 "..%" PRIu64
                          ") overlaps tensor '%s' (bytes %" PRIu64 "..%" PRIu64
                          "); the header is corrupt",
                          label, e->name, e->begin, e->end, order[i - 1]->name,
                          order[i - 1]->begin, order[i - 1]->end);
        else if (e->begin > pos)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: bytes %" PRIu64 "..%" PRIu64
                          " of the data section belong to no tensor (before '%s'); the header "
                          "is corrupt",
                          label, pos, e->begin, e->name);
        if (e->end > pos)
            pos = e->end;
    }
    if (rc == VNP_OK && pos != data_len)
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s: the data section has %" PRIu64 " bytes but the tensors cover %" PRIu64
                      "; the file is corrupt",
                      label, data_len, pos);
    free(order);
    return rc;
}

static vnp_code add_metadata(const cJSON *meta, const char *label, vnp_tensor_map *m,
                             vnp_error *err)
{
    if (!cJSON_IsObject(meta))
        return vnp_fail(err, VNP_EFORMAT, "%s: __metadata__ must be a JSON object", label);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return vnp_fail(err, VNP_EFORMAT, "%s: __metadata__ value '%s' must be a string",
                            label, kv->string);
        size_t kl = strlen(kv->string) + sizeof "__metadata__.";
        char *key = malloc(kl);
        if (!key)
            return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", label);
        snprintf(key, kl, "__metadata__.%s", kv->string);
        vnp_code rc = vnp_tensor_map_set_str(m, key, kv->valuestring, err);
        free(key);
        if (rc)
            return rc;
    }
    return VNP_OK;
}

static vnp_code add_tensors(const st_entry *ents, size_t n, const uint8_t *data,
                            const char *label, vnp_tensor_map *m, vnp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &ents[i];
        const uint8_t *p = data + e->begin;
        size_t nb = (size_t)(e->end - e->begin);
        void *copy = NULL;
        if (nb > 0 && (uintptr_t)p % vnp_dtype_size(e->dtype) != 0) {
            copy = malloc(nb);
            if (!copy)
                return vnp_fail(err, VNP_ENOMEM, "%s: out of memory copying tensor '%s'",
                                label, e->name);
            memcpy(copy, p, nb);
        }
        vnp_code rc = vnp_tensor_map_add(m, e->name, e->dtype, e->ndim, e->shape, p, copy, err);
        if (rc) {
            vnp_error_prefix(err, "%s: ", label);
            return rc;
        }
    }
    return VNP_OK;
}

vnp_code vnp_safetensors_parse(const uint8_t *buf, size_t len, const char *label,
                               vnp_tensor_map *m, vnp_error *err)
{
    if (len < 8)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: %zu bytes is too short for a safetensors file (8-byte header "
                        "length + JSON header); the file is truncated",
                        label, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > len - 8)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: header length %" PRIu64 " exceeds the file size (%zu bytes); the "
                        "file is truncated or is not safetensors",
                        label, hlen, len);
    const char *json = (const char *)buf + 8;
    if (hlen < 2 || json[0] != '{')
        return vnp_fail(err, VNP_EFORMAT, "%s: the header does not start with a JSON object",
                        label);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = root ? 0 : (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0);
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: the JSON header is malformed (near byte %zu of the header)", label,
                        at > hlen ? (size_t)hlen : at);
    }
    for (const char *q = end; q && q < json + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return vnp_fail(err, VNP_EFORMAT,
                            "%s: unexpected bytes after the JSON header (at byte %zu)", label,
                            (size_t)(q - json));
        }

    int count = cJSON_GetArraySize(root);
    st_entry *ents = calloc((size_t)count + 1, sizeof *ents);
    if (!ents) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", label);
    }
    size_t n = 0;
    vnp_code rc = VNP_OK;
    for (const cJSON *item = root->child; item && rc == VNP_OK; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0)
            rc = add_metadata(item, label, m, err);
        else
            rc = parse_entry(item, label, &ents[n++], err);
    }
    uint64_t data_len = (uint64_t)(len - 8 - hlen);
    if (rc == VNP_OK)
        rc = check_layout(ents, n, data_len, label, err);
    if (rc == VNP_OK)
        rc = add_tensors(ents, n, buf + 8 + hlen, label, m, err);
    free(ents);
    cJSON_Delete(root);
    return rc;
}

vnp_code vnp_safetensors_load(const char *path, vnp_tensor_map **out, vnp_error *err)
{
    *out = NULL;
    vnp_mapped_file *f;
    vnp_code rc = vnp_mapped_file_open(path, &f, err);
    if (rc)
        return rc;
    return vnp_mapped_file_parse(f, path, vnp_safetensors_parse, out, err);
}
