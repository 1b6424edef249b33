/* Read-only view of a zip archive held in memory (the memory map of a PyTorch
 * checkpoint): the central directory, and the bytes of stored entries. */
#ifndef VNP_WEIGHTS_ZIP_ARCHIVE_H
#define VNP_WEIGHTS_ZIP_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

typedef struct vnp_zip_entry {
    char *name; /* NUL-terminated copy */
    uint64_t local_offset;
    uint64_t comp_size;
    uint64_t size;
    uint32_t crc32;
    uint16_t method; /* 0 = stored */
    uint16_t flags;  /* bit 0 = encrypted */
} vnp_zip_entry;

typedef struct vnp_zip {
    const uint8_t *buf;
    size_t len;
    vnp_zip_entry *entries;
    size_t count;
    const char *label; /* file name used in messages (not owned) */
} vnp_zip;

/* Parses the end-of-central-directory record (zip64 when present) and every central
 * directory entry of buf[0..len). Nothing is copied but the names. */
vnp_code vnp_zip_open(const uint8_t *buf, size_t len, const char *label, vnp_zip *z,
                      vnp_error *err);
void vnp_zip_close(vnp_zip *z);
/* The entry named exactly `name`, or NULL. */
const vnp_zip_entry *vnp_zip_find(const vnp_zip *z, const char *name);
/* Points *data at the bytes of a stored, unencrypted entry after checking its local
 * header; a compressed or encrypted entry is VNP_EUNSUPPORTED. */
vnp_code vnp_zip_entry_data(const vnp_zip *z, const vnp_zip_entry *e, const uint8_t **data,
                            vnp_error *err);

#endif
