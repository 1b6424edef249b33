/* Hugging Face safetensors parsing from a buffer (the file's memory map). */
#ifndef VNP_WEIGHTS_SAFETENSORS_H
#define VNP_WEIGHTS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

/* Validates the header of the safetensors image buf[0..len) and adds every tensor to
 * `m`, pointing into buf (which must outlive m) unless a tensor's data is misaligned for
 * its dtype, in which case it is copied. `label` names the file in messages.
 * `__metadata__` entries become string attributes "__metadata__.<key>". */
vnp_code vnp_safetensors_parse(const uint8_t *buf, size_t len, const char *label,
                               vnp_tensor_map *m, vnp_error *err);

#endif
