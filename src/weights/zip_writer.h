/* A zip archive of stored (uncompressed) entries, as PyTorch's writer makes them:
 * each entry's data 64-byte aligned (padding in the local header's extra field), CRC-32
 * from zlib, no zip64 (entries and archive under 4 GiB). (Internal.) */
#ifndef VNP_WEIGHTS_ZIP_WRITER_H
#define VNP_WEIGHTS_ZIP_WRITER_H

#include <stddef.h>
#include <stdio.h>

#include "virnucpro/error.h"

typedef struct vnp_zip_writer vnp_zip_writer;

/* Writes to f (opened by the caller); `label` names the file in messages. */
vnp_code vnp_zip_writer_open(FILE *f, const char *label, vnp_zip_writer **out, vnp_error *err);
vnp_code vnp_zip_writer_add(vnp_zip_writer *z, const char *name, const void *data, size_t n,
                            vnp_error *err);
/* Writes the central directory and frees z (also on failure). */
vnp_code vnp_zip_writer_finish(vnp_zip_writer *z, vnp_error *err);

#endif
