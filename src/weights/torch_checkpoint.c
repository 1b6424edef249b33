/* PyTorch zip checkpoints (torch.save, PyTorch >= 1.6): <prefix>/data.pkl is a pickle
 * whose persistent ids name storages stored as <prefix>/data/<key>, and
 * <prefix>/byteorder says how their bytes are ordered. The archive is memory-mapped;
 * tensors point into it wherever their layout allows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "virnucpro/weights.h"
#include "weights/mapped_file.h"
#include "weights/pickle_flatten.h"
#include "weights/pickle_vm.h"
#include "weights/torch_checkpoint.h"
#include "weights/zip_archive.h"

typedef struct {
    const vnp_zip *zip;
    const char *prefix; /* "archive/" */
    const char *label;
} storage_ctx;

static vnp_code storage_bytes(void *ctx, const vnp_pk_value *st, const uint8_t **data,
                              vnp_error *err)
{
    const storage_ctx *c = ctx;
    size_t n = strlen(c->prefix) + strlen(st->storage.key) + sizeof "data/";
    char *name = malloc(n);
    if (!name)
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", c->label);
    snprintf(name, n, "%sdata/%s", c->prefix, st->storage.key);
    vnp_code rc = VNP_OK;
    const vnp_zip_entry *e = vnp_zip_find(c->zip, name);
    uint64_t need;
    if (!e)
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s: storage '%s' (entry '%s') is missing from the archive; the file is "
                      "truncated or corrupt",
                      c->label, st->storage.key, name);
    else if (__builtin_mul_overflow((uint64_t)st->storage.numel,
                                    (uint64_t)vnp_dtype_size(st->storage.dtype), &need))
        rc = vnp_fail(err, VNP_EFORMAT, "%s: storage '%s' is too large; the file is corrupt",
                      c->label, st->storage.key);
    else if (e->size < need)
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s: storage '%s' has %" PRIu64 " bytes but %" PRId64 " %s elements need %" PRIu64
                      "; the file is corrupt",
                      c->label, st->storage.key, e->size, st->storage.numel,
                      vnp_dtype_name(st->storage.dtype), need);
    else
        rc = vnp_zip_entry_data(c->zip, e, data, err);
    free(name);
    return rc;
}

/* The archive's one top-level "<dir>/data.pkl" (or "data.pkl"). */
static vnp_code find_data_pkl(const vnp_zip *z, const vnp_zip_entry **out, vnp_error *err)
{
    *out = NULL;
    for (size_t i = 0; i < z->count; i++) {
        const char *n = z->entries[i].name;
        size_t len = strlen(n);
        if (len < 8 || strcmp(n + len - 8, "data.pkl") != 0)
            continue;
        const char *slash = memchr(n, '/', len - 8);
        if (len > 8 && (n[len - 9] != '/' || slash != n + len - 9))
            continue; /* nested deeper, or a name merely ending in data.pkl */
        if (*out)
            return vnp_fail(err, VNP_EFORMAT,
                            "%s: the archive has two pickles ('%s' and '%s'); it is not a "
                            "torch.save checkpoint",
                            z->label, (*out)->name, n);
        *out = &z->entries[i];
    }
    if (!*out)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: the zip archive has no data.pkl; it is not a torch.save checkpoint",
                        z->label);
    return VNP_OK;
}

static vnp_code check_byteorder(const vnp_zip *z, const char *prefix, vnp_error *err)
{
    char name[4096];
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const vnp_zip_entry *e = vnp_zip_find(z, name);
    if (!e)
        return VNP_OK; /* written since PyTorch 1.10; older files are little-endian */
    const uint8_t *d;
    vnp_code rc = vnp_zip_entry_data(z, e, &d, err);
    if (rc)
        return rc;
    if (e->size == 6 && memcmp(d, "little", 6) == 0)
        return VNP_OK;
    if (e->size == 3 && memcmp(d, "big", 3) == 0)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s: the checkpoint was saved on a big-endian machine; re-save it on a "
                        "little-endian one",
                        z->label);
    return vnp_fail(err, VNP_EFORMAT, "%s: '%s' holds neither 'little' nor 'big'", z->label,
                    name);
}

vnp_code vnp_torch_zip_parse(const uint8_t *buf, size_t len, const char *label,
                             vnp_tensor_map *m, vnp_error *err)
{
    vnp_zip z;
    vnp_code rc = vnp_zip_open(buf, len, label, &z, err);
    if (rc)
        return rc;
    const vnp_zip_entry *pkl;
    const uint8_t *pdata = NULL;
    char *prefix = NULL, *plabel = NULL;
    if ((rc = find_data_pkl(&z, &pkl, err)))
        goto done;
    size_t plen = strlen(pkl->name) - 8;
    prefix = strndup(pkl->name, plen);
    size_t ll = strlen(label) + strlen(pkl->name) + 3;
    plabel = malloc(ll);
    if (!prefix || !plabel) {
        rc = vnp_fail(err, VNP_ENOMEM, "%s: out of memory", label);
        goto done;
    }
    snprintf(plabel, ll, "%s: %s", label, pkl->name);
    if ((rc = check_byteorder(&z, prefix, err)))
        goto done;
    if ((rc = vnp_zip_entry_data(&z, pkl, &pdata, err)))
        goto done;
    if (pkl->size < UINT32_MAX && (uint32_t)crc32(0L, pdata, (uInt)pkl->size) != pkl->crc32) {
        rc = vnp_fail(err, VNP_EINTEGRITY,
                      "%s: CRC-32 mismatch; the file is damaged, download it again", plabel);
        goto done;
    }
    vnp_pickle p;
    if ((rc = vnp_pickle_load(pdata, (size_t)pkl->size, plabel, &p, err))) {
        char ts[4096];
        snprintf(ts, sizeof ts, "%sconstants.pkl", prefix);
        if (rc == VNP_EUNSUPPORTED && vnp_zip_find(&z, ts))
            vnp_error_prefix(err, "%s is a TorchScript archive (torch.jit.save), which is not "
                                  "supported; save the model with torch.save instead. ",
                             label);
        goto done;
    }
    storage_ctx ctx = {&z, prefix, label};
    rc = vnp_pickle_flatten(p.root, label, storage_bytes, &ctx, m, err);
    vnp_pickle_free(&p);
done:
    free(prefix);
    free(plabel);
    vnp_zip_close(&z);
    return rc;
}

vnp_code vnp_torch_load(const char *path, vnp_tensor_map **out, vnp_error *err)
{
    *out = NULL;
    vnp_mapped_file *f;
    vnp_code rc = vnp_mapped_file_open(path, &f, err);
    if (rc)
        return rc;
    if (f->size >= 2 && f->data[0] == 0x80 && f->data[1] <= 5) {
        vnp_mapped_file_release(f);
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s: a legacy (pre-1.6, non-zip) PyTorch checkpoint; load it once with "
                        "PyTorch and re-save it with torch.save, or convert it to safetensors",
                        path);
    }
    if (f->size < 4 || memcmp(f->data, "PK\3\4", 4) != 0) {
        vnp_mapped_file_release(f);
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: not a PyTorch checkpoint (no zip signature at the start)", path);
    }
    return vnp_mapped_file_parse(f, path, vnp_torch_zip_parse, out, err);
}
