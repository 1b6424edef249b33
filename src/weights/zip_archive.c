/* Zip central directory reader (PKWARE APPNOTE 6.3): end-of-central-directory record,
 * zip64 locator and record, central directory entries with zip64 extra fields, and local
 * headers. Every offset and length is checked against the buffer before it is used. */
#include "weights/zip_archive.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    SIG_LOCAL = 0x04034b50,
    SIG_CENTRAL = 0x02014b50,
    SIG_EOCD = 0x06054b50,
    SIG_EOCD64 = 0x06064b50,
    SIG_EOCD64_LOCATOR = 0x07064b50,
    EOCD_SIZE = 22,
    EOCD64_LOCATOR_SIZE = 20,
    EOCD64_SIZE = 56,
    CENTRAL_SIZE = 46,
    LOCAL_SIZE = 30,
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* The last end-of-central-directory record whose comment fits in the file. */
static int find_eocd(const uint8_t *buf, size_t len, size_t *pos)
{
    if (len < EOCD_SIZE)
        return 0;
    size_t lo = len - EOCD_SIZE > 65535 ? len - EOCD_SIZE - 65535 : 0;
    for (size_t p = len - EOCD_SIZE + 1; p-- > lo;)
        if (rd32(buf + p) == SIG_EOCD && p + EOCD_SIZE + rd16(buf + p + 20) <= len) {
            *pos = p;
            return 1;
        }
    return 0;
}

typedef struct {
    uint64_t entries, cd_size, cd_offset;
} dir_info;

static vnp_code read_eocd(const vnp_zip *z, dir_info *d, vnp_error *err)
{
    size_t pos;
    if (!find_eocd(z->buf, z->len, &pos))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: no zip end-of-central-directory record; the file is truncated or "
                        "is not a PyTorch checkpoint",
                        z->label);
    const uint8_t *e = z->buf + pos;
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return vnp_fail(err, VNP_EUNSUPPORTED, "%s: multi-disk zip archives are not supported",
                        z->label);
    d->entries = rd16(e + 10);
    d->cd_size = rd32(e + 12);
    d->cd_offset = rd32(e + 16);
    if (pos >= EOCD64_LOCATOR_SIZE &&
        rd32(z->buf + pos - EOCD64_LOCATOR_SIZE) == SIG_EOCD64_LOCATOR) {
        const uint8_t *loc = z->buf + pos - EOCD64_LOCATOR_SIZE;
        uint64_t off = rd64(loc + 8);
        if (off > z->len || z->len - off < EOCD64_SIZE || rd32(z->buf + off) != SIG_EOCD64)
            return vnp_fail(err, VNP_EFORMAT,
                            "%s: the zip64 end-of-central-directory locator points outside the "
                            "file (offset %" PRIu64 "); the file is truncated or corrupt",
                            z->label, off);
        const uint8_t *r = z->buf + off;
        if (rd32(r + 16) != 0 || rd32(r + 20) != 0)
            return vnp_fail(err, VNP_EUNSUPPORTED,
                            "%s: multi-disk zip archives are not supported", z->label);
        d->entries = rd64(r + 32);
        d->cd_size = rd64(r + 40);
        d->cd_offset = rd64(r + 48);
    } else if (d->entries == 0xffff || d->cd_size == 0xffffffffu ||
               d->cd_offset == 0xffffffffu) {
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: the zip directory needs zip64 fields but has no zip64 record; the "
                        "file is corrupt",
                        z->label);
    }
    if (d->cd_offset > pos || d->cd_size > pos - d->cd_offset)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: the zip central directory (offset %" PRIu64 ", %" PRIu64
                        " bytes) lies outside the file; the file is truncated or corrupt",
                        z->label, d->cd_offset, d->cd_size);
    if (d->entries > d->cd_size / CENTRAL_SIZE)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: the zip directory claims %" PRIu64 " entries in %" PRIu64
                        " bytes; the file is corrupt",
                        z->label, d->entries, d->cd_size);
    return VNP_OK;
}

/* Replaces the 0xffffffff fields of an entry by the values of its zip64 extra field. */
static vnp_code apply_zip64_extra(const vnp_zip *z, const uint8_t *x, size_t xlen,
                                  vnp_zip_entry *e, vnp_error *err)
{
    int need_size = e->size == 0xffffffffu, need_comp = e->comp_size == 0xffffffffu,
        need_off = e->local_offset == 0xffffffffu;
    if (!need_size && !need_comp && !need_off)
        return VNP_OK;
    size_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), sz = rd16(x + p + 2);
        if (p + 4 + sz > xlen)
            break;
        if (id == 0x0001) {
            const uint8_t *f = x + p + 4;
            size_t have = sz, at = 0;
            if (need_size) {
                if (at + 8 > have)
                    break;
                e->size = rd64(f + at);
                at += 8;
            }
            if (need_comp) {
                if (at + 8 > have)
                    break;
                e->comp_size = rd64(f + at);
                at += 8;
            }
            if (need_off) {
                if (at + 8 > have)
                    break;
                e->local_offset = rd64(f + at);
            }
            return VNP_OK;
        }
        p += 4 + (size_t)sz;
    }
    return vnp_fail(err, VNP_EFORMAT,
                    "%s: zip entry '%s' needs a zip64 extra field that is missing or short; the "
                    "file is corrupt",
                    z->label, e->name);
}

vnp_code vnp_zip_open(const uint8_t *buf, size_t len, const char *label, vnp_zip *z,
                      vnp_error *err)
{
    memset(z, 0, sizeof *z);
    z->buf = buf;
    z->len = len;
    z->label = label;
    dir_info d = {0, 0, 0};
    vnp_code rc = read_eocd(z, &d, err);
    if (rc)
        return rc;
    z->entries = calloc(d.entries ? (size_t)d.entries : 1, sizeof *z->entries);
    if (!z->entries)
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory reading the zip directory", label);
    const uint8_t *p = buf + d.cd_offset, *end = p + d.cd_size;
    for (uint64_t i = 0; i < d.entries; i++) {
        if ((size_t)(end - p) < CENTRAL_SIZE || rd32(p) != SIG_CENTRAL) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: zip central directory entry %" PRIu64 " of %" PRIu64
                          " is missing or damaged; the file is corrupt",
                          label, i, d.entries);
            break;
        }
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - CENTRAL_SIZE < nlen + xlen + clen) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: zip central directory entry %" PRIu64
                          " runs past the directory; the file is corrupt",
                          label, i);
            break;
        }
        vnp_zip_entry *e = &z->entries[z->count];
        e->name = malloc(nlen + 1);
        if (!e->name) {
            rc = vnp_fail(err, VNP_ENOMEM, "%s: out of memory", label);
            break;
        }
        memcpy(e->name, p + CENTRAL_SIZE, nlen);
        e->name[nlen] = 0;
        z->count++;
        if (memchr(e->name, 0, nlen)) {
            rc = vnp_fail(err, VNP_EFORMAT, "%s: zip entry %" PRIu64 " has a NUL in its name",
                          label, i);
            break;
        }
        e->flags = rd16(p + 8);
        e->method = rd16(p + 10);
        e->crc32 = rd32(p + 16);
        e->comp_size = rd32(p + 20);
        e->size = rd32(p + 24);
        e->local_offset = rd32(p + 42);
        rc = apply_zip64_extra(z, p + CENTRAL_SIZE + nlen, xlen, e, err);
        if (rc)
            break;
        p += CENTRAL_SIZE + nlen + xlen + clen;
    }
    if (rc)
        vnp_zip_close(z);
    return rc;
}

void vnp_zip_close(vnp_zip *z)
{
    for (size_t i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    z->entries = NULL;
    z->count = 0;
}

const vnp_zip_entry *vnp_zip_find(const vnp_zip *z, const char *name)
{
    for (size_t i = 0; i < z->count; i++)
        if (strcmp(z->entries[i].name, name) == 0)
            return &z->entries[i];
    return NULL;
}

vnp_code vnp_zip_entry_data(const vnp_zip *z, const vnp_zip_entry *e, const uint8_t **data,
                            vnp_error *err)
{
    *data = NULL;
    if (e->flags & 1)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s: zip entry '%s' is encrypted; PyTorch checkpoints are never "
                        "encrypted, use the original file",
                        z->label, e->name);
    if (e->method != 0)
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s: zip entry '%s' is compressed (method %u); PyTorch writes stored "
                        "entries only: re-save the checkpoint with torch.save, or repack it "
                        "uncompressed (zip -0)",
                        z->label, e->name, (unsigned)e->method);
    if (e->comp_size != e->size)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: stored zip entry '%s' has size %" PRIu64 " but %" PRIu64
                        " bytes in the archive; the file is corrupt",
                        z->label, e->name, e->size, e->comp_size);
    uint64_t off = e->local_offset;
    if (off > z->len || z->len - off < LOCAL_SIZE || rd32(z->buf + off) != SIG_LOCAL)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: zip entry '%s': no local header at offset %" PRIu64
                        "; the file is truncated or corrupt",
                        z->label, e->name, off);
    uint64_t start = off + LOCAL_SIZE + rd16(z->buf + off + 26) + rd16(z->buf + off + 28);
    if (start > z->len || z->len - start < e->size)
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: zip entry '%s' (%" PRIu64 " bytes at offset %" PRIu64
                        ") runs past the end of the file (%zu bytes); the file is truncated, "
                        "download it again",
                        z->label, e->name, e->size, start, z->len);
    *data = z->buf + start;
    return VNP_OK;
}
