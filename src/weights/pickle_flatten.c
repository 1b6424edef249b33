/* Flattening of a checkpoint's value tree into "a.b.c" names.
 *  - dict / OrderedDict: one level per key ("model" -> "model.<key>");
 *  - nn.Module object (state with _parameters/_modules): its parameters, persistent
 *    buffers and submodules as torch's state_dict() names them, then its plain
 *    attributes (eps, momentum, in_features, ...) as numbers or strings;
 *  - other objects (argparse.Namespace, ...): their attribute dict, like a dict;
 *  - list / tuple / set: one level per index;
 *  - int / bool / float -> numeric attribute, str -> string attribute, None skipped.
 * Tensors are views (storage offset, size, stride) checked against their storage:
 * contiguous ones point into the storage, others are gathered into a copy. */
#include "weights/pickle_flatten.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64, MAX_VISITS = 1 << 20, MAX_EXPANDED_BYTES = 64 << 20 };

typedef struct {
    const char *label;
    vnp_storage_fn storage;
    void *ctx;
    vnp_tensor_map *m;
    vnp_error *err;
    char *name;
    size_t len, cap;
    int depth;
    size_t visits;
} flattener;

static vnp_code nomem(flattener *f)
{
    return vnp_fail(f->err, VNP_ENOMEM, "%s: out of memory", f->label);
}

/* Appends ".part" (or "part" at the root) to the current name; returns the old length
 * to restore, or (size_t)-1 when out of memory. */
static size_t name_push(flattener *f, const char *part, size_t plen)
{
    size_t old = f->len, need = f->len + plen + 2;
    if (need > f->cap) {
        size_t nc = f->cap ? f->cap : 128;
        while (nc < need)
            nc *= 2;
        char *n = realloc(f->name, nc);
        if (!n)
            return (size_t)-1;
        f->name = n;
        f->cap = nc;
    }
    if (f->len)
        f->name[f->len++] = '.';
    memcpy(f->name + f->len, part, plen);
    f->len += plen;
    f->name[f->len] = 0;
    return old;
}

static void name_pop(flattener *f, size_t old)
{
    f->len = old;
    if (f->name)
        f->name[old] = 0;
}

static vnp_code flatten(flattener *f, const vnp_pk_value *x);

/* Visits `x` under the current name extended by the key `k` (str or int). Keys of other
 * kinds, and strings holding NUL bytes, name nothing a model could ask for: skipped. */
static vnp_code visit_child(flattener *f, const vnp_pk_value *k, const vnp_pk_value *x)
{
    char num[32];
    const char *part;
    size_t plen;
    if (k->kind == VNP_PK_STR && strlen(k->s) == k->len) {
        part = k->s;
        plen = k->len;
    } else if (k->kind == VNP_PK_INT) {
        plen = (size_t)snprintf(num, sizeof num, "%" PRId64, k->i);
        part = num;
    } else {
        return VNP_OK;
    }
    size_t old = name_push(f, part, plen);
    if (old == (size_t)-1)
        return nomem(f);
    vnp_code rc = flatten(f, x);
    name_pop(f, old);
    return rc;
}

static vnp_code visit_index(flattener *f, size_t i, const vnp_pk_value *x)
{
    char num[32];
    size_t plen = (size_t)snprintf(num, sizeof num, "%zu", i);
    size_t old = name_push(f, num, plen);
    if (old == (size_t)-1)
        return nomem(f);
    vnp_code rc = flatten(f, x);
    name_pop(f, old);
    return rc;
}

static const vnp_pk_value *dict_get(const vnp_pk_value *d, const char *key)
{
    const vnp_pk_value *found = NULL;
    for (size_t i = 0; i + 1 < d->n; i += 2) /* the last of repeated keys wins, as in Python */
        if (d->items[i]->kind == VNP_PK_STR && strcmp(d->items[i]->s, key) == 0)
            found = d->items[i + 1];
    return found;
}

static int set_has(const vnp_pk_value *s, const char *key)
{
    if (!s || (s->kind != VNP_PK_SET && s->kind != VNP_PK_LIST && s->kind != VNP_PK_TUPLE))
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i]->kind == VNP_PK_STR && strcmp(s->items[i]->s, key) == 0)
            return 1;
    return 0;
}

static vnp_code tensor_error(flattener *f, vnp_code code, const char *what)
{
    return vnp_fail(f->err, code, "%s: tensor '%s': %s", f->label, f->len ? f->name : "tensor",
                    what);
}

static vnp_code map_add(flattener *f, const char *name, const vnp_pk_value *t,
                        const void *data, void *owned)
{
    vnp_code rc = vnp_tensor_map_add(f->m, name, t->tensor.storage->storage.dtype, t->tensor.ndim,
                                     t->tensor.size, data, owned, f->err);
    if (rc)
        vnp_error_prefix(f->err, "%s: ", f->label);
    return rc;
}

static vnp_code add_tensor(flattener *f, const vnp_pk_value *t)
{
    const vnp_pk_value *st = t->tensor.storage;
    size_t es = vnp_dtype_size(st->storage.dtype);
    int nd = t->tensor.ndim;
    const int64_t *size = t->tensor.size, *stride = t->tensor.stride;
    const char *name = f->len ? f->name : "tensor";
    char msg[sizeof f->err->msg];
    int64_t numel = 1;
    for (int d = 0; d < nd; d++)
        if (__builtin_mul_overflow(numel, size[d], &numel))
            return tensor_error(f, VNP_EFORMAT, "its shape is too large; the file is corrupt");
    int64_t nbytes;
    if (__builtin_mul_overflow(numel, (int64_t)es, &nbytes))
        return tensor_error(f, VNP_EFORMAT, "its shape is too large; the file is corrupt");
    if (numel == 0)
        return map_add(f, name, t, NULL, NULL);

    int64_t last = t->tensor.offset, contiguous = 1, expect = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t span;
        if (__builtin_mul_overflow(size[d] - 1, stride[d], &span) ||
            __builtin_add_overflow(last, span, &last))
            return tensor_error(f, VNP_EFORMAT, "its strides overflow; the file is corrupt");
        if (size[d] != 1 && stride[d] != expect)
            contiguous = 0;
        expect *= size[d];
    }
    if (last >= st->storage.numel) {
        snprintf(msg, sizeof msg,
                 "the view (offset %" PRId64 ", %" PRId64 " elements) reaches element %" PRId64
                 " but storage '%s' holds %" PRId64 "; the file is corrupt",
                 t->tensor.offset, numel, last, st->storage.key, st->storage.numel);
        return tensor_error(f, VNP_EFORMAT, msg);
    }
    /* A view with more elements than its storage repeats them (an expand()ed tensor):
     * materialized up to MAX_EXPANDED_BYTES, so that a tiny file cannot ask for an
     * unbounded copy. */
    if (!contiguous && numel > st->storage.numel && nbytes > MAX_EXPANDED_BYTES)
        return tensor_error(f, VNP_EUNSUPPORTED,
                            "it is a broadcast (expanded) view larger than 64 MiB once "
                            "materialized; save it with .contiguous()");
    const uint8_t *base;
    vnp_code rc = f->storage(f->ctx, st, &base, f->err);
    if (rc) {
        /* name the tensor too: "<file>: tensor 'x': storage '3' ..." */
        if (f->err) {
            size_t ll = strlen(f->label);
            const char *m = f->err->msg;
            if (strncmp(m, f->label, ll) == 0 && strncmp(m + ll, ": ", 2) == 0)
                m += ll + 2;
            snprintf(msg, sizeof msg, "%s", m);
            tensor_error(f, rc, msg);
        }
        return rc;
    }
    const uint8_t *src = base + (size_t)t->tensor.offset * es;
    if (contiguous && (uintptr_t)src % es == 0)
        return map_add(f, name, t, src, NULL);
    uint8_t *copy = malloc((size_t)nbytes);
    if (!copy)
        return nomem(f);
    if (contiguous) {
        memcpy(copy, src, (size_t)nbytes);
    } else {
        int64_t idx[VNP_MAX_DIMS] = {0}, at = t->tensor.offset;
        for (int64_t k = 0; k < numel; k++) {
            memcpy(copy + (size_t)k * es, base + (size_t)at * es, es);
            for (int d = nd - 1; d >= 0; d--) {
                if (size[d] == 1) /* its stride is never used (and may be anything) */
                    continue;
                at += stride[d];
                if (++idx[d] < size[d])
                    break;
                at -= stride[d] * size[d];
                idx[d] = 0;
            }
        }
    }
    return map_add(f, name, t, NULL, copy);
}

static int is_module_state(const vnp_pk_value *s)
{
    return s && s->kind == VNP_PK_DICT &&
           (dict_get(s, "_parameters") || dict_get(s, "_modules"));
}

static vnp_code visit_dict_entries(flattener *f, const vnp_pk_value *d)
{
    if (!d || d->kind != VNP_PK_DICT)
        return VNP_OK;
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        vnp_code rc = visit_child(f, d->items[i], d->items[i + 1]);
        if (rc)
            return rc;
    }
    return VNP_OK;
}

/* An nn.Module: parameters, persistent buffers, submodules (state_dict order), then the
 * public scalar attributes. */
static vnp_code flatten_module(flattener *f, const vnp_pk_value *s)
{
    vnp_code rc = visit_dict_entries(f, dict_get(s, "_parameters"));
    if (rc)
        return rc;
    const vnp_pk_value *bufs = dict_get(s, "_buffers"),
                       *skip = dict_get(s, "_non_persistent_buffers_set");
    if (bufs && bufs->kind == VNP_PK_DICT)
        for (size_t i = 0; i + 1 < bufs->n; i += 2) {
            const vnp_pk_value *k = bufs->items[i];
            if (k->kind == VNP_PK_STR && set_has(skip, k->s))
                continue;
            if ((rc = visit_child(f, k, bufs->items[i + 1])))
                return rc;
        }
    if ((rc = visit_dict_entries(f, dict_get(s, "_modules"))))
        return rc;
    for (size_t i = 0; i + 1 < s->n; i += 2) {
        const vnp_pk_value *k = s->items[i], *x = s->items[i + 1];
        if (k->kind != VNP_PK_STR || k->s[0] == '_' || strcmp(k->s, "training") == 0)
            continue;
        if (x->kind == VNP_PK_BOOL || x->kind == VNP_PK_INT || x->kind == VNP_PK_FLOAT ||
            x->kind == VNP_PK_STR)
            if ((rc = visit_child(f, k, x)))
                return rc;
    }
    return VNP_OK;
}

static vnp_code set_attr_num(flattener *f, double v)
{
    return f->len ? vnp_tensor_map_set_num(f->m, f->name, v, f->err) : VNP_OK;
}

static vnp_code flatten(flattener *f, const vnp_pk_value *x)
{
    if (++f->visits > MAX_VISITS)
        return vnp_fail(f->err, VNP_EFORMAT,
                        "%s: the pickle reaches more than %d values (shared or cyclic "
                        "containers); the file is malformed",
                        f->label, MAX_VISITS);
    if (f->depth >= MAX_DEPTH)
        return vnp_fail(f->err, VNP_EFORMAT,
                        "%s: values nest deeper than %d levels at '%.200s' (a cycle?); the file "
                        "is malformed",
                        f->label, MAX_DEPTH, f->name ? f->name : "");
    f->depth++;
    vnp_code rc = VNP_OK;
    switch (x->kind) {
    case VNP_PK_TENSOR:
        rc = add_tensor(f, x);
        break;
    case VNP_PK_DICT:
        rc = visit_dict_entries(f, x);
        break;
    case VNP_PK_OBJECT: {
        const vnp_pk_value *s = x->obj.state;
        if (s && s->kind == VNP_PK_TUPLE && s->n == 2) /* (dict state, slot state) */
            s = s->items[0];
        if (is_module_state(s))
            rc = flatten_module(f, s);
        else
            rc = visit_dict_entries(f, s);
        break;
    }
    case VNP_PK_TUPLE:
    case VNP_PK_LIST:
    case VNP_PK_SET:
        for (size_t i = 0; i < x->n && !rc; i++)
            rc = visit_index(f, i, x->items[i]);
        break;
    case VNP_PK_BOOL:
    case VNP_PK_INT:
        rc = set_attr_num(f, (double)x->i);
        break;
    case VNP_PK_FLOAT:
        rc = set_attr_num(f, x->f);
        break;
    case VNP_PK_STR:
        if (f->len && strlen(x->s) == x->len)
            rc = vnp_tensor_map_set_str(f->m, f->name, x->s, f->err);
        break;
    case VNP_PK_GLOBAL: /* e.g. a dtype attribute: torch.float32 */
        if (f->len)
            rc = vnp_tensor_map_set_str(f->m, f->name, x->glob.qualname, f->err);
        break;
    case VNP_PK_NONE:
    case VNP_PK_BYTES:
    case VNP_PK_STORAGE:
    case VNP_PK_NPDTYPE:
        break;
    }
    f->depth--;
    return rc;
}

vnp_code vnp_pickle_flatten(const vnp_pk_value *root, const char *label, vnp_storage_fn storage,
                            void *ctx, vnp_tensor_map *m, vnp_error *err)
{
    flattener f;
    memset(&f, 0, sizeof f);
    f.label = label;
    f.storage = storage;
    f.ctx = ctx;
    f.m = m;
    f.err = err;
    vnp_code rc = flatten(&f, root);
    free(f.name);
    return rc;
}
