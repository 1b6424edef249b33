/* Tensors as read from checkpoints, and the flat name -> tensor map every
 * checkpoint reader produces (safetensors, PyTorch zip+pickle, fair-esm .pt). */
#ifndef VIRNUCPRO_TENSOR_H
#define VIRNUCPRO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vnp_dtype {
    VNP_DT_F32 = 0,
    VNP_DT_F16,
    VNP_DT_BF16,
    VNP_DT_F64,
    VNP_DT_I64,
    VNP_DT_I32,
    VNP_DT_I16,
    VNP_DT_I8,
    VNP_DT_U8,
    VNP_DT_BOOL
} vnp_dtype;

size_t vnp_dtype_size(vnp_dtype dt);
const char *vnp_dtype_name(vnp_dtype dt);

#define VNP_MAX_DIMS 8

/* A tensor: row-major contiguous data. `data` points into a mapped file or a
 * buffer owned by the map that returned it; it lives as long as the map. */
typedef struct vnp_tensor {
    const char *name;
    vnp_dtype dtype;
    int ndim;
    int64_t shape[VNP_MAX_DIMS];
    const void *data;
    size_t nbytes;
} vnp_tensor;

int64_t vnp_tensor_numel(const vnp_tensor *t);
/* Converts F32/F16/BF16/F64 data to float32 (n = numel elements). */
vnp_code vnp_tensor_to_f32(const vnp_tensor *t, float *out, vnp_error *err);
/* Writes "[2, 3]" into buf. */
const char *vnp_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

/* Flat map name -> tensor, plus scalar attributes of pickled modules
 * (e.g. "bn1.eps", "bn1.momentum") and config values (fair-esm "cfg.model.layers"). */
typedef struct vnp_tensor_map vnp_tensor_map;

vnp_tensor_map *vnp_tensor_map_new(void);
void vnp_tensor_map_free(vnp_tensor_map *m);
size_t vnp_tensor_map_count(const vnp_tensor_map *m);
const vnp_tensor *vnp_tensor_map_at(const vnp_tensor_map *m, size_t i);
const vnp_tensor *vnp_tensor_map_get(const vnp_tensor_map *m, const char *name);
/* Adds a tensor; name is copied. If owned_data is non-NULL the map takes
 * ownership (free()) of it; else `data` must outlive the map. */
vnp_code vnp_tensor_map_add(vnp_tensor_map *m, const char *name, vnp_dtype dt, int ndim,
                            const int64_t *shape, const void *data, void *owned_data,
                            vnp_error *err);
/* Keeps `res` alive with the map, released by `release(res)` when it is freed
 * (an mmap, a file buffer). On failure `res` has already been released. */
vnp_code vnp_tensor_map_hold(vnp_tensor_map *m, void *res, void (*release)(void *),
                             vnp_error *err);
/* Numeric / string attributes. */
vnp_code vnp_tensor_map_set_num(vnp_tensor_map *m, const char *key, double v, vnp_error *err);
vnp_code vnp_tensor_map_set_str(vnp_tensor_map *m, const char *key, const char *v,
                                vnp_error *err);
int vnp_tensor_map_num(const vnp_tensor_map *m, const char *key, double *out); /* 1 found */
const char *vnp_tensor_map_str(const vnp_tensor_map *m, const char *key);    /* NULL absent */
size_t vnp_tensor_map_attr_count(const vnp_tensor_map *m);
const char *vnp_tensor_map_attr_key(const vnp_tensor_map *m, size_t i);

#ifdef __cplusplus
}
#endif
#endif
