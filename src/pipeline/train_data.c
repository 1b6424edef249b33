/* Labelled feature rows for training, read from safetensors: train's feature cache
 * (tensor "features" + "labels"), predict --embeddings' merged_features or embed's
 * output (all rows of one class). */
#include <stdlib.h>
#include <string.h>

#include "virnucpro/train.h"
#include "virnucpro/weights.h"

vnp_code vnp_train_data_append(const char *path, int label, vnp_train_data *d, vnp_error *err)
{
    vnp_tensor_map *m = NULL;
    vnp_code rc = vnp_checkpoint_load(path, &m, err);
    if (rc) {
        vnp_error_prefix(err, "training features: ");
        return rc;
    }
    const vnp_tensor *f = vnp_tensor_map_get(m, "features");
    if (!f)
        f = vnp_tensor_map_get(m, "embeddings");
    const vnp_tensor *l = vnp_tensor_map_get(m, "labels");
    if (!f || f->ndim != 2 || f->dtype != VNP_DT_F32 || f->shape[1] <= 0) {
        rc = vnp_fail(err, VNP_ESHAPE,
                      "%s: no F32 [N, width] tensor 'features' (train's cache, predict "
                      "--embeddings) or 'embeddings' (embed)",
                      path);
        goto done;
    }
    size_t rows = (size_t)f->shape[0];
    int width = (int)f->shape[1];
    if (d->n && width != d->width) {
        rc = vnp_fail(err, VNP_ESHAPE, "%s has %d features per row, the rows before it %d", path,
                      width, d->width);
        goto done;
    }
    if (label < 0 && (!l || l->dtype != VNP_DT_U8 || l->ndim != 1 || (size_t)l->shape[0] != rows)) {
        rc = vnp_fail(err, VNP_ESHAPE,
                      "%s: no U8 [%zu] tensor 'labels' (1 = virus, 0 = other); give unlabelled "
                      "files with --viral-features / --other-features",
                      path, rows);
        goto done;
    }
    float *x = realloc(d->x, (d->n + rows) * (size_t)width * sizeof(float));
    if (x)
        d->x = x;
    uint8_t *y = realloc(d->y, d->n + rows ? d->n + rows : 1);
    if (y)
        d->y = y;
    if (!x || !y) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory reading %zu rows of %s", rows, path);
        goto done;
    }
    if ((rc = vnp_tensor_to_f32(f, d->x + d->n * (size_t)width, err)))
        goto done;
    const uint8_t *lab = label < 0 ? l->data : NULL;
    for (size_t i = 0; i < rows; i++) {
        if (lab && lab[i] > 1) {
            rc = vnp_fail(err, VNP_EFORMAT, "%s: labels[%zu] = %u; labels are 0 (other) or 1 "
                                            "(virus)",
                          path, i, lab[i]);
            goto done;
        }
        d->y[d->n + i] = lab ? lab[i] : (uint8_t)(label != 0);
    }
    d->n += rows;
    d->width = width;
done:
    vnp_tensor_map_free(m);
    return rc;
}

void vnp_train_data_free(vnp_train_data *d)
{
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}
