/* Writes safetensors files for the model tests: a copy of a tensor map with
 * tensors dropped or reshaped, to build broken checkpoints. */
#ifndef VNP_TEST_ST_WRITER_H
#define VNP_TEST_ST_WRITER_H

#include <stdint.h>

#include "virnucpro/tensor.h"

/* Copies every tensor of m into path except `drop` (may be NULL); the tensor
 * `reshape` (may be NULL) is written with its first dimension reduced by one. */
void st_write_edited(const vnp_tensor_map *m, const char *path, const char *drop,
                     const char *reshape);

#endif
