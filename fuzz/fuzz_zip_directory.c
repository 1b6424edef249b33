/* libFuzzer: the zip directory reader (end records, zip64, central and local headers)
 * and, through it, the whole PyTorch checkpoint path on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "virnucpro/tensor.h"
#include "weights/torch_checkpoint.h"
#include "weights/zip_archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vnp_error err;
    vnp_zip z;
    if (vnp_zip_open(data, size, "fuzz.pth", &z, &err) == VNP_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < z.count; i++) {
            const uint8_t *p;
            if (vnp_zip_entry_data(&z, &z.entries[i], &p, &err) == VNP_OK && z.entries[i].size)
                sink ^= p[0] ^ p[z.entries[i].size - 1];
            (void)vnp_zip_find(&z, z.entries[i].name);
        }
        (void)sink;
        vnp_zip_close(&z);
    }
    vnp_tensor_map *m = vnp_tensor_map_new();
    if (!m)
        return 0;
    (void)vnp_torch_zip_parse(data, size, "fuzz.pth", m, &err);
    vnp_tensor_map_free(m);
    return 0;
}
