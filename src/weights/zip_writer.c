/* Stored zip entries with 64-byte aligned data, then the central directory. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "weights/zip_writer.h"

typedef struct entry {
    char *name;
    uint32_t crc, size, offset;
} entry;

struct vnp_zip_writer {
    FILE *f;
    const char *label;
    uint64_t pos;
    entry *e;
    size_t n, cap;
};

static void le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static int emit(vnp_zip_writer *z, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, z->f) != n)
        return 0;
    z->pos += n;
    return 1;
}

static void zfree(vnp_zip_writer *z)
{
    for (size_t i = 0; i < z->n; i++)
        free(z->e[i].name);
    free(z->e);
    free(z);
}

vnp_code vnp_zip_writer_open(FILE *f, const char *label, vnp_zip_writer **out, vnp_error *err)
{
    vnp_zip_writer *z = calloc(1, sizeof *z);
    if (!z)
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", label);
    z->f = f;
    z->label = label;
    *out = z;
    return VNP_OK;
}

vnp_code vnp_zip_writer_add(vnp_zip_writer *z, const char *name, const void *data, size_t n,
                            vnp_error *err)
{
    size_t nl = strlen(name);
    if (n > UINT32_MAX - 1 || z->pos + n + 4096 > UINT32_MAX || nl > 4000)
        return vnp_fail(err, VNP_EINVAL, "%s: entry %s is too large for a zip without zip64",
                        z->label, name);
    if (z->n == z->cap) {
        size_t cap = z->cap ? 2 * z->cap : 16;
        entry *e = realloc(z->e, cap * sizeof *e);
        if (!e)
            return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", z->label);
        z->e = e;
        z->cap = cap;
    }
    entry *e = &z->e[z->n];
    e->name = strdup(name);
    if (!e->name)
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", z->label);
    z->n++;
    e->crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)n);
    e->size = (uint32_t)n;
    e->offset = (uint32_t)z->pos;
    /* the extra field pads the data to a 64-byte boundary (id "FB", as PyTorch) */
    uint64_t data_at = z->pos + 30 + nl + 4;
    size_t pad = (size_t)((64 - data_at % 64) % 64);
    unsigned char h[30], x[4 + 64];
    memset(h, 0, sizeof h);
    le(h, 0x04034b50, 4);
    le(h + 4, 20, 2);  /* version needed */
    le(h + 14, e->crc, 4);
    le(h + 18, e->size, 4);
    le(h + 22, e->size, 4);
    le(h + 26, nl, 2);
    le(h + 28, 4 + pad, 2);
    x[0] = 'F';
    x[1] = 'B';
    le(x + 2, pad, 2);
    memset(x + 4, 'Z', pad);
    if (!emit(z, h, 30) || !emit(z, name, nl) || !emit(z, x, 4 + pad) || !emit(z, data, n))
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s", z->label, strerror(errno));
    return VNP_OK;
}

vnp_code vnp_zip_writer_finish(vnp_zip_writer *z, vnp_error *err)
{
    uint64_t cd_start = z->pos;
    int ok = 1;
    for (size_t i = 0; ok && i < z->n; i++) {
        const entry *e = &z->e[i];
        size_t nl = strlen(e->name);
        unsigned char c[46];
        memset(c, 0, sizeof c);
        le(c, 0x02014b50, 4);
        le(c + 4, 20, 2); /* made by */
        le(c + 6, 20, 2); /* needed */
        le(c + 16, e->crc, 4);
        le(c + 20, e->size, 4);
        le(c + 24, e->size, 4);
        le(c + 28, nl, 2);
        le(c + 42, e->offset, 4);
        ok = emit(z, c, 46) && emit(z, e->name, nl);
    }
    unsigned char end[22];
    memset(end, 0, sizeof end);
    le(end, 0x06054b50, 4);
    le(end + 8, z->n, 2);
    le(end + 10, z->n, 2);
    le(end + 12, z->pos - cd_start, 4);
    le(end + 16, cd_start, 4);
    ok = ok && z->n < 65535 && emit(z, end, 22);
    vnp_code rc = ok ? VNP_OK
                     : vnp_fail(err, VNP_EIO, "cannot write %s: %s", z->label, strerror(errno));
    zfree(z);
    return rc;
}
