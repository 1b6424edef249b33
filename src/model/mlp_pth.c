/* The trained classifier as the original VirNucPro saves it: torch.save(model, path) of
 * a whole `__main__.MLPClassifier` module (children hidden_layer: Linear, bn1:
 * BatchNorm1d, output_layer: Linear, dropout: Dropout, in train.py's order), pickled
 * with protocol 2 inside PyTorch's zip format: <stem>/data.pkl, <stem>/byteorder,
 * <stem>/data/<key> (one storage per tensor), <stem>/version. Each module's state is
 * what PyTorch 1.13 pickles (training flag, the parameter/buffer/module dicts, the hook
 * dicts, the layer's own attributes); newer PyTorch fills in its later fields in
 * Module.__setstate__. The original prediction.py loads it with torch.load where the
 * class is defined (weights_only=False). Written as .part and renamed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/train.h"
#include "weights/pickle_writer.h"
#include "weights/zip_writer.h"

typedef struct storage {
    const void *data;
    size_t bytes;
} storage;

typedef struct pth {
    vnp_pkw w;
    storage st[16];
    int nst;
} pth;

/* The shortest decimal that reads back to v as a float32, as a Python float. */
static double py_float(float v)
{
    char b[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)v);
        if ((float)strtod(b, NULL) == v)
            break;
    }
    return strtod(b, NULL);
}

static void ordered_dict_begin(pth *p)
{
    vnp_pkw_global(&p->w, "collections", "OrderedDict");
    vnp_pkw_op(&p->w, VNP_PK_EMPTY_TUPLE);
    vnp_pkw_op(&p->w, VNP_PK_REDUCE);
}

static void empty_ordered_dict(pth *p) { ordered_dict_begin(p); }

/* _rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict()) */
static void tensor(pth *p, const char *storage_type, const void *data, size_t elem, int ndim,
                   const int64_t *shape)
{
    vnp_pkw *w = &p->w;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    char key[16];
    snprintf(key, sizeof key, "%d", p->nst);
    p->st[p->nst].data = data;
    p->st[p->nst].bytes = (size_t)numel * elem;
    p->nst++;
    vnp_pkw_global(w, "torch._utils", "_rebuild_tensor_v2");
    vnp_pkw_op(w, VNP_PK_MARK);
    vnp_pkw_op(w, VNP_PK_MARK);
    vnp_pkw_str(w, "storage");
    vnp_pkw_global(w, "torch", storage_type);
    vnp_pkw_str(w, key);
    vnp_pkw_str(w, "cpu");
    vnp_pkw_int(w, numel);
    vnp_pkw_op(w, VNP_PK_TUPLE);
    vnp_pkw_op(w, VNP_PK_BINPERSID);
    vnp_pkw_int(w, 0);
    vnp_pkw_op(w, VNP_PK_MARK);
    for (int i = 0; i < ndim; i++)
        vnp_pkw_int(w, shape[i]);
    vnp_pkw_op(w, VNP_PK_TUPLE);
    vnp_pkw_op(w, VNP_PK_MARK);
    for (int i = 0; i < ndim; i++) {
        int64_t stride = 1;
        for (int j = i + 1; j < ndim; j++)
            stride *= shape[j];
        vnp_pkw_int(w, stride);
    }
    vnp_pkw_op(w, VNP_PK_TUPLE);
    vnp_pkw_bool(w, 0);
    empty_ordered_dict(p);
    vnp_pkw_op(w, VNP_PK_TUPLE);
    vnp_pkw_op(w, VNP_PK_REDUCE);
}

static void parameter(pth *p, const char *name, const float *data, int ndim, int64_t d0,
                      int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    vnp_pkw_str(&p->w, name);
    vnp_pkw_global(&p->w, "torch._utils", "_rebuild_parameter");
    tensor(p, "FloatStorage", data, sizeof(float), ndim, shape);
    vnp_pkw_bool(&p->w, 1);
    empty_ordered_dict(p);
    vnp_pkw_op(&p->w, VNP_PK_TUPLE3);
    vnp_pkw_op(&p->w, VNP_PK_REDUCE);
}

/* GLOBAL cls, (), NEWOBJ, {..., the common nn.Module fields; the caller adds the
 * layer's own and the three dicts' contents through the callbacks' order below}. */
static void module_begin(pth *p, const char *module, const char *cls)
{
    vnp_pkw *w = &p->w;
    vnp_pkw_global(w, module, cls);
    vnp_pkw_op(w, VNP_PK_EMPTY_TUPLE);
    vnp_pkw_op(w, VNP_PK_NEWOBJ);
    vnp_pkw_op(w, VNP_PK_EMPTY_DICT);
    vnp_pkw_op(w, VNP_PK_MARK);
    vnp_pkw_str(w, "training");
    vnp_pkw_bool(w, 0);
}

/* The hook dicts and the non-persistent buffer set, after _parameters and _buffers. */
static void module_hooks(pth *p)
{
    vnp_pkw *w = &p->w;
    vnp_pkw_str(w, "_non_persistent_buffers_set");
    vnp_pkw_global(w, "__builtin__", "set");
    vnp_pkw_op(w, VNP_PK_EMPTY_LIST);
    vnp_pkw_op(w, VNP_PK_TUPLE1);
    vnp_pkw_op(w, VNP_PK_REDUCE);
    vnp_pkw_str(w, "_backward_hooks");
    empty_ordered_dict(p);
    vnp_pkw_str(w, "_is_full_backward_hook");
    vnp_pkw_none(w);
    const char *dicts[] = {"_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
                           "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"};
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        vnp_pkw_str(w, dicts[i]);
        empty_ordered_dict(p);
    }
}

static void module_end(pth *p)
{
    vnp_pkw_op(&p->w, VNP_PK_SETITEMS);
    vnp_pkw_op(&p->w, VNP_PK_BUILD);
}

static void linear(pth *p, const char *name, const float *w, const float *b, int out, int in)
{
    vnp_pkw *pk = &p->w;
    vnp_pkw_str(pk, name);
    module_begin(p, "torch.nn.modules.linear", "Linear");
    vnp_pkw_str(pk, "_parameters");
    ordered_dict_begin(p);
    vnp_pkw_op(pk, VNP_PK_MARK);
    parameter(p, "weight", w, 2, out, in);
    parameter(p, "bias", b, 1, out, 0);
    vnp_pkw_op(pk, VNP_PK_SETITEMS);
    vnp_pkw_str(pk, "_buffers");
    empty_ordered_dict(p);
    module_hooks(p);
    vnp_pkw_str(pk, "_modules");
    empty_ordered_dict(p);
    vnp_pkw_str(pk, "in_features");
    vnp_pkw_int(pk, in);
    vnp_pkw_str(pk, "out_features");
    vnp_pkw_int(pk, out);
    module_end(p);
}

static void batchnorm(pth *p, const vnp_mlp_params *m)
{
    vnp_pkw *pk = &p->w;
    int64_t H[1] = {m->hidden};
    vnp_pkw_str(pk, "bn1");
    module_begin(p, "torch.nn.modules.batchnorm", "BatchNorm1d");
    vnp_pkw_str(pk, "_parameters");
    ordered_dict_begin(p);
    vnp_pkw_op(pk, VNP_PK_MARK);
    parameter(p, "weight", m->bn_w, 1, m->hidden, 0);
    parameter(p, "bias", m->bn_b, 1, m->hidden, 0);
    vnp_pkw_op(pk, VNP_PK_SETITEMS);
    vnp_pkw_str(pk, "_buffers");
    ordered_dict_begin(p);
    vnp_pkw_op(pk, VNP_PK_MARK);
    vnp_pkw_str(pk, "running_mean");
    tensor(p, "FloatStorage", m->bn_mean, sizeof(float), 1, H);
    vnp_pkw_str(pk, "running_var");
    tensor(p, "FloatStorage", m->bn_var, sizeof(float), 1, H);
    vnp_pkw_str(pk, "num_batches_tracked");
    tensor(p, "LongStorage", &m->bn_batches, sizeof(int64_t), 0, NULL);
    vnp_pkw_op(pk, VNP_PK_SETITEMS);
    module_hooks(p);
    vnp_pkw_str(pk, "_modules");
    empty_ordered_dict(p);
    vnp_pkw_str(pk, "num_features");
    vnp_pkw_int(pk, m->hidden);
    vnp_pkw_str(pk, "eps");
    vnp_pkw_float(pk, py_float(m->eps));
    vnp_pkw_str(pk, "momentum");
    vnp_pkw_float(pk, py_float(m->bn_momentum));
    vnp_pkw_str(pk, "affine");
    vnp_pkw_bool(pk, 1);
    vnp_pkw_str(pk, "track_running_stats");
    vnp_pkw_bool(pk, 1);
    module_end(p);
}

static void dropout(pth *p, float prob)
{
    vnp_pkw *pk = &p->w;
    vnp_pkw_str(pk, "dropout");
    module_begin(p, "torch.nn.modules.dropout", "Dropout");
    vnp_pkw_str(pk, "_parameters");
    empty_ordered_dict(p);
    vnp_pkw_str(pk, "_buffers");
    empty_ordered_dict(p);
    module_hooks(p);
    vnp_pkw_str(pk, "_modules");
    empty_ordered_dict(p);
    vnp_pkw_str(pk, "p");
    vnp_pkw_float(pk, py_float(prob));
    vnp_pkw_str(pk, "inplace");
    vnp_pkw_bool(pk, 0);
    module_end(p);
}

static void whole_model(pth *p, const vnp_mlp_params *m)
{
    vnp_pkw *pk = &p->w;
    vnp_pkw_proto(pk);
    module_begin(p, "__main__", "MLPClassifier");
    vnp_pkw_str(pk, "_parameters");
    empty_ordered_dict(p);
    vnp_pkw_str(pk, "_buffers");
    empty_ordered_dict(p);
    module_hooks(p);
    vnp_pkw_str(pk, "_modules");
    ordered_dict_begin(p);
    vnp_pkw_op(pk, VNP_PK_MARK);
    linear(p, "hidden_layer", m->w1, m->b1, m->hidden, m->in);
    batchnorm(p, m);
    linear(p, "output_layer", m->w2, m->b2, m->classes, m->hidden);
    dropout(p, m->dropout);
    vnp_pkw_op(pk, VNP_PK_SETITEMS);
    module_end(p);
    vnp_pkw_stop(pk);
}

vnp_code vnp_mlp_save_pth(const vnp_mlp_params *m, const char *path, vnp_error *err)
{
    pth p;
    memset(&p, 0, sizeof p);
    whole_model(&p, m);
    if (!vnp_pkw_ok(&p.w)) {
        vnp_pkw_free(&p.w);
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", path);
    }
    /* the archive's folder: the file's name without directory and extension, as torch */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem)
        *dot = 0;
    for (char *c = stem; *c; c++)
        if (*c == '/' || *c == '\\')
            *c = '_';
    size_t pl = strlen(path) + 6;
    char *part = malloc(pl);
    if (!part) {
        vnp_pkw_free(&p.w);
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", path);
    }
    snprintf(part, pl, "%s.part", path);
    FILE *f = fopen(part, "wb");
    vnp_code rc = VNP_OK;
    vnp_zip_writer *z = NULL;
    if (!f)
        rc = vnp_fail(err, VNP_EIO, "cannot create %s: %s", part, strerror(errno));
    if (!rc)
        rc = vnp_zip_writer_open(f, path, &z, err);
    char name[512];
    if (!rc) {
        snprintf(name, sizeof name, "%s/data.pkl", stem);
        rc = vnp_zip_writer_add(z, name, p.w.b, p.w.n, err);
    }
    if (!rc) {
        snprintf(name, sizeof name, "%s/byteorder", stem);
        rc = vnp_zip_writer_add(z, name, "little", 6, err);
    }
    for (int i = 0; !rc && i < p.nst; i++) {
        snprintf(name, sizeof name, "%s/data/%d", stem, i);
        rc = vnp_zip_writer_add(z, name, p.st[i].data, p.st[i].bytes, err);
    }
    if (!rc) {
        snprintf(name, sizeof name, "%s/version", stem);
        rc = vnp_zip_writer_add(z, name, "3\n", 2, err);
    }
    if (z) {
        vnp_code rc2 = vnp_zip_writer_finish(z, err);
        if (!rc)
            rc = rc2;
    }
    if (f && fclose(f) != 0 && !rc)
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", part,
                      strerror(errno));
    if (!rc && rename(part, path) != 0)
        rc = vnp_fail(err, VNP_EIO, "cannot rename %s to %s: %s", part, path, strerror(errno));
    if (rc)
        remove(part);
    free(part);
    vnp_pkw_free(&p.w);
    return rc;
}
