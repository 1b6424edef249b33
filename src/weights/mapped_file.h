/* A read-only memory mapping of a whole file, kept alive by a tensor map. */
#ifndef VNP_WEIGHTS_MAPPED_FILE_H
#define VNP_WEIGHTS_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

typedef struct vnp_mapped_file {
    const uint8_t *data; /* NULL when size == 0 */
    size_t size;
} vnp_mapped_file;

/* Maps `path` read-only. A missing file is VNP_ENOTFOUND, other failures VNP_EIO. */
vnp_code vnp_mapped_file_open(const char *path, vnp_mapped_file **out, vnp_error *err);
/* Unmaps and frees; the signature fits vnp_tensor_map_hold. */
void vnp_mapped_file_release(void *mapped_file);

/* Parses a mapped file into a new tensor map that keeps the mapping alive (tensors
 * point into it). Takes ownership of f in every case. */
typedef vnp_code (*vnp_mapped_parser)(const uint8_t *buf, size_t len, const char *label,
                                      vnp_tensor_map *m, vnp_error *err);
vnp_code vnp_mapped_file_parse(vnp_mapped_file *f, const char *path, vnp_mapped_parser parse,
                               vnp_tensor_map **out, vnp_error *err);

#endif
