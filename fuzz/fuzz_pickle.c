/* libFuzzer: the restricted pickle interpreter and the flattening of its values into a
 * tensor map, on arbitrary bytes. Storages resolve to a zero-filled buffer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "virnucpro/tensor.h"
#include "weights/pickle_flatten.h"
#include "weights/pickle_vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_storage[1 << 16];

static vnp_code storage_fn(void *ctx, const vnp_pk_value *st, const uint8_t **out,
                           vnp_error *err)
{
    (void)ctx;
    uint64_t need = (uint64_t)st->storage.numel * vnp_dtype_size(st->storage.dtype);
    if (st->storage.numel > (int64_t)sizeof g_storage || need > sizeof g_storage)
        return vnp_fail(err, VNP_EFORMAT, "storage '%s' too large", st->storage.key);
    *out = g_storage;
    return VNP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vnp_pickle pk;
    vnp_error err;
    if (vnp_pickle_load(data, size, "fuzz.pkl", &pk, &err) != VNP_OK)
        return 0;
    vnp_tensor_map *m = vnp_tensor_map_new();
    if (m) {
        (void)vnp_pickle_flatten(pk.root, "fuzz.pth", storage_fn, NULL, m, &err);
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < vnp_tensor_map_count(m); i++) {
            const vnp_tensor *t = vnp_tensor_map_at(m, i);
            if (t->nbytes)
                sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        }
        (void)sink;
        vnp_tensor_map_free(m);
    }
    vnp_pickle_free(&pk);
    return 0;
}
