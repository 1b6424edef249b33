/* libFuzzer: the safetensors header validator and tensor table, on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "virnucpro/tensor.h"
#include "weights/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vnp_tensor_map *m = vnp_tensor_map_new();
    if (!m)
        return 0;
    vnp_error err;
    if (vnp_safetensors_parse(data, size, "fuzz.safetensors", m, &err) == VNP_OK) {
        /* every tensor must lie inside the input (or be an owned aligned copy) */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < vnp_tensor_map_count(m); i++) {
            const vnp_tensor *t = vnp_tensor_map_at(m, i);
            if (t->nbytes)
                sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        }
        (void)sink;
    }
    vnp_tensor_map_free(m);
    return 0;
}
