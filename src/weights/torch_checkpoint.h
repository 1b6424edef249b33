/* PyTorch zip checkpoints parsed from a buffer (the file's memory map). */
#ifndef VNP_WEIGHTS_TORCH_CHECKPOINT_H
#define VNP_WEIGHTS_TORCH_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

/* Reads the archive buf[0..len) and adds its tensors and attributes to m; tensors
 * point into buf where possible, so buf must outlive m. */
vnp_code vnp_torch_zip_parse(const uint8_t *buf, size_t len, const char *label,
                             vnp_tensor_map *m, vnp_error *err);

#endif
