/* Turns the value tree of a checkpoint's pickle into the flat tensor map: state dicts,
 * nested dicts (fair-esm {"model": ..., "cfg": ...}) and pickled nn.Module trees. */
#ifndef VNP_WEIGHTS_PICKLE_FLATTEN_H
#define VNP_WEIGHTS_PICKLE_FLATTEN_H

#include "virnucpro/tensor.h"
#include "weights/pickle_vm.h"

/* Returns the bytes of `storage` (at least numel x dtype size of them) or fails. */
typedef vnp_code (*vnp_storage_fn)(void *ctx, const vnp_pk_value *storage, const uint8_t **data,
                                   vnp_error *err);

/* Adds every tensor reachable from `root` to m under its dotted path, and every plain
 * number/string/bool as an attribute (see weights.h for the naming rules). `label`
 * names the file in messages. */
vnp_code vnp_pickle_flatten(const vnp_pk_value *root, const char *label, vnp_storage_fn storage,
                            void *ctx, vnp_tensor_map *m, vnp_error *err);

#endif
