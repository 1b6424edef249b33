/* Shape-checked weight lookup and upload: every tensor a model needs is
 * found by name, checked against the shape the configuration implies, and
 * converted to what the backend computes with. */
#include <stdlib.h>
#include <string.h>

#include "model/encoder_internal.h"

static int is_float(vnp_dtype dt)
{
    return dt == VNP_DT_F32 || dt == VNP_DT_F16 || dt == VNP_DT_BF16 || dt == VNP_DT_F64;
}

vnp_code vnp_weight_get(const vnp_weight_src *src, const char *name, int ndim,
                        const int64_t *shape, const vnp_tensor **out, vnp_error *err)
{
    char want[96], got[96];
    vnp_shape_str(shape, ndim, want, sizeof want);
    const vnp_tensor *t = vnp_tensor_map_get(src->map, name);
    if (!t)
        return vnp_fail(err, VNP_ESHAPE,
                        "'%s': tensor '%s' is missing (expected shape %s); the checkpoint is "
                        "incomplete or does not match its configuration",
                        src->path, name, want);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same)
        return vnp_fail(err, VNP_ESHAPE, "'%s': tensor '%s' has shape %s; expected %s", src->path,
                        name, vnp_shape_str(t->shape, t->ndim, got, sizeof got), want);
    if (!is_float(t->dtype))
        return vnp_fail(err, VNP_ESHAPE,
                        "'%s': tensor '%s' has dtype %s; a floating-point tensor is expected",
                        src->path, name, vnp_dtype_name(t->dtype));
    *out = t;
    return VNP_OK;
}

vnp_code vnp_weight_upload(const vnp_weight_src *src, const char *name, vnp_weight_kind kind,
                           int64_t rows, int64_t cols, vnp_buf *out, vnp_error *err)
{
    int64_t shape[2] = {rows, cols};
    const vnp_tensor *t;
    vnp_code rc = vnp_weight_get(src, name, cols ? 2 : 1, shape, &t, err);
    if (rc)
        return rc;
    rc = src->be->ops->upload_weight(src->be, t, kind, out, err);
    if (rc)
        vnp_error_prefix(err, "'%s': uploading tensor '%s': ", src->path, name);
    return rc;
}

/* Uploads bytes laid out as a tensor of `dt` and shape [rows, cols] / [rows]. */
static vnp_code upload_bytes(const vnp_weight_src *src, const char *name, vnp_dtype dt,
                             int64_t rows, int64_t cols, vnp_weight_kind kind, const void *data,
                             vnp_buf *out, vnp_error *err)
{
    vnp_tensor t = {0};
    t.name = name;
    t.dtype = dt;
    t.ndim = cols ? 2 : 1;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data = data;
    t.nbytes = (size_t)rows * (size_t)(cols ? cols : 1) * vnp_dtype_size(dt);
    vnp_code rc = src->be->ops->upload_weight(src->be, &t, kind, out, err);
    if (rc)
        vnp_error_prefix(err, "'%s': uploading tensor '%s': ", src->path, name);
    return rc;
}

vnp_code vnp_weight_upload_concat(const vnp_weight_src *src, const char *const *names,
                                  const int64_t *rows, int count, int64_t cols,
                                  vnp_weight_kind kind, vnp_buf *out, vnp_error *err)
{
    const vnp_tensor *t[8] = {0};
    int64_t total = 0;
    if (count < 1 || count > 8)
        return vnp_fail(err, VNP_EINVAL, "concatenation of %d tensors (1 to 8)", count);
    for (int i = 0; i < count; i++) {
        int64_t shape[2] = {rows[i], cols};
        vnp_code rc = vnp_weight_get(src, names[i], cols ? 2 : 1, shape, &t[i], err);
        if (rc)
            return rc;
        total += rows[i];
    }
    /* Same dtype everywhere: concatenate the raw bytes; else go through F32. */
    int same = 1;
    for (int i = 1; i < count; i++)
        same &= t[i]->dtype == t[0]->dtype;
    vnp_dtype dt = same ? t[0]->dtype : VNP_DT_F32;
    size_t width = (size_t)(cols ? cols : 1), es = vnp_dtype_size(dt);
    char *buf = malloc((size_t)total * width * es);
    if (!buf)
        return vnp_fail(err, VNP_ENOMEM, "'%s': out of memory joining '%s' and others", src->path,
                        names[0]);
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        size_t bytes = (size_t)rows[i] * width * es;
        if (same)
            memcpy(buf + off, t[i]->data, bytes);
        else {
            vnp_code rc = vnp_tensor_to_f32(t[i], (float *)(void *)(buf + off), err);
            if (rc) {
                free(buf);
                return rc;
            }
        }
        off += bytes;
    }
    vnp_code rc = upload_bytes(src, names[0], dt, total, cols, kind, buf, out, err);
    free(buf);
    return rc;
}

vnp_code vnp_weight_upload_table(const vnp_weight_src *src, const char *name, int64_t rows,
                                 int64_t cols, int64_t extra, vnp_buf *out, vnp_error *err)
{
    int64_t shape[2] = {rows, cols};
    const vnp_tensor *t;
    vnp_code rc = vnp_weight_get(src, name, 2, shape, &t, err);
    if (rc)
        return rc;
    size_t es = vnp_dtype_size(t->dtype), bytes = (size_t)rows * (size_t)cols * es;
    char *buf = calloc(1, bytes + (size_t)extra * (size_t)cols * es); /* zero bits = +0.0 */
    if (!buf)
        return vnp_fail(err, VNP_ENOMEM, "'%s': out of memory copying '%s'", src->path, name);
    memcpy(buf, t->data, bytes);
    rc = upload_bytes(src, name, t->dtype, rows + extra, cols, VNP_WEIGHT_TABLE, buf, out, err);
    free(buf);
    return rc;
}

vnp_code vnp_weight_upload_f32(const vnp_weight_src *src, const vnp_tensor *t, vnp_buf *out,
                               vnp_error *err)
{
    size_t n = (size_t)vnp_tensor_numel(t);
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f)
        return vnp_fail(err, VNP_ENOMEM, "'%s': out of memory reading '%s'", src->path, t->name);
    vnp_code rc = vnp_tensor_to_f32(t, f, err);
    if (!rc)
        rc = src->be->ops->upload_f32(src->be, f, n, out, err);
    free(f);
    return rc;
}
