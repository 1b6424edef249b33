/* The flat name -> tensor map that every checkpoint reader fills. */
#include "virnucpro/tensor.h"
#include "virnucpro/half.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *res;
    void (*release)(void *);
} held;

typedef struct {
    char *key;
    char *str; /* NULL for numbers */
    double num;
} attr;

struct vnp_tensor_map {
    vnp_tensor *t;
    void **owned;
    size_t n, cap, capo;
    held *h;
    size_t nh, caph;
    attr *a;
    size_t na, capa;
};

size_t vnp_dtype_size(vnp_dtype dt)
{
    switch (dt) {
    case VNP_DT_F64: case VNP_DT_I64: return 8;
    case VNP_DT_F32: case VNP_DT_I32: return 4;
    case VNP_DT_F16: case VNP_DT_BF16: case VNP_DT_I16: return 2;
    case VNP_DT_I8: case VNP_DT_U8: case VNP_DT_BOOL: return 1;
    }
    return 0;
}

const char *vnp_dtype_name(vnp_dtype dt)
{
    static const char *const names[] = {"F32", "F16", "BF16", "F64", "I64",
                                        "I32", "I16", "I8",   "U8",  "BOOL"};
    return (unsigned)dt < sizeof names / sizeof names[0] ? names[dt] : "?";
}

int64_t vnp_tensor_numel(const vnp_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

const char *vnp_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "[");
    for (int i = 0; i < ndim; i++)
        off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "%s%" PRId64,
                                i ? ", " : "", shape[i]);
    snprintf(buf + off, off < cap ? cap - off : 0, "]");
    return buf;
}

vnp_code vnp_tensor_to_f32(const vnp_tensor *t, float *out, vnp_error *err)
{
    int64_t n = vnp_tensor_numel(t);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case VNP_DT_F32:
        memcpy(out, p, (size_t)n * 4);
        return VNP_OK;
    case VNP_DT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = vnp_f16_to_f32(h);
        }
        return VNP_OK;
    case VNP_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = vnp_bf16_to_f32(h);
        }
        return VNP_OK;
    case VNP_DT_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return VNP_OK;
    default:
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "tensor '%s' has dtype %s; a floating-point tensor is expected",
                        t->name ? t->name : "?", vnp_dtype_name(t->dtype));
    }
}

vnp_tensor_map *vnp_tensor_map_new(void) { return calloc(1, sizeof(vnp_tensor_map)); }

void vnp_tensor_map_free(vnp_tensor_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free((char *)m->t[i].name);
        free(m->owned[i]);
    }
    for (size_t i = m->nh; i-- > 0;)
        m->h[i].release(m->h[i].res);
    for (size_t i = 0; i < m->na; i++) {
        free(m->a[i].key);
        free(m->a[i].str);
    }
    free(m->t);
    free(m->owned);
    free(m->h);
    free(m->a);
    free(m);
}

size_t vnp_tensor_map_count(const vnp_tensor_map *m) { return m->n; }
const vnp_tensor *vnp_tensor_map_at(const vnp_tensor_map *m, size_t i)
{
    return i < m->n ? &m->t[i] : NULL;
}

const vnp_tensor *vnp_tensor_map_get(const vnp_tensor_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0)
            return &m->t[i];
    return NULL;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return 0;
    *p = q;
    *cap = nc;
    return 1;
}

vnp_code vnp_tensor_map_add(vnp_tensor_map *m, const char *name, vnp_dtype dt, int ndim,
                            const int64_t *shape, const void *data, void *owned_data,
                            vnp_error *err)
{
    if (ndim < 0 || ndim > VNP_MAX_DIMS) {
        free(owned_data);
        return vnp_fail(err, VNP_EUNSUPPORTED, "tensor '%s' has %d dimensions (at most %d supported)",
                        name, ndim, VNP_MAX_DIMS);
    }
    if (vnp_tensor_map_get(m, name)) {
        free(owned_data);
        return vnp_fail(err, VNP_EFORMAT, "tensor '%s' appears twice in the checkpoint", name);
    }
    if (!grow((void **)&m->t, &m->cap, m->n + 1, sizeof *m->t) ||
        !grow((void **)&m->owned, &m->capo, m->n + 1, sizeof *m->owned)) {
        free(owned_data);
        return vnp_fail(err, VNP_ENOMEM, "out of memory adding tensor '%s'", name);
    }
    vnp_tensor *t = &m->t[m->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        free(owned_data);
        return vnp_fail(err, VNP_ENOMEM, "out of memory adding tensor '%s'", name);
    }
    t->dtype = dt;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->data = owned_data ? owned_data : data;
    t->nbytes = numel * vnp_dtype_size(dt);
    m->owned[m->n] = owned_data;
    m->n++;
    return VNP_OK;
}

vnp_code vnp_tensor_map_hold(vnp_tensor_map *m, void *res, void (*release)(void *),
                             vnp_error *err)
{
    if (!grow((void **)&m->h, &m->caph, m->nh + 1, sizeof *m->h)) {
        release(res);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    m->h[m->nh].res = res;
    m->h[m->nh].release = release;
    m->nh++;
    return VNP_OK;
}

static attr *attr_slot(vnp_tensor_map *m, const char *key, vnp_error *err)
{
    for (size_t i = 0; i < m->na; i++)
        if (strcmp(m->a[i].key, key) == 0) {
            free(m->a[i].str);
            m->a[i].str = NULL;
            return &m->a[i];
        }
    if (!grow((void **)&m->a, &m->capa, m->na + 1, sizeof *m->a)) {
        vnp_fail(err, VNP_ENOMEM, "out of memory");
        return NULL;
    }
    attr *a = &m->a[m->na];
    a->key = strdup(key);
    a->str = NULL;
    a->num = 0;
    if (!a->key) {
        vnp_fail(err, VNP_ENOMEM, "out of memory");
        return NULL;
    }
    m->na++;
    return a;
}

vnp_code vnp_tensor_map_set_num(vnp_tensor_map *m, const char *key, double v, vnp_error *err)
{
    attr *a = attr_slot(m, key, err);
    if (!a)
        return VNP_ENOMEM;
    a->num = v;
    return VNP_OK;
}

vnp_code vnp_tensor_map_set_str(vnp_tensor_map *m, const char *key, const char *v,
                                vnp_error *err)
{
    attr *a = attr_slot(m, key, err);
    if (!a)
        return VNP_ENOMEM;
    a->str = strdup(v);
    if (!a->str)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    return VNP_OK;
}

int vnp_tensor_map_num(const vnp_tensor_map *m, const char *key, double *out)
{
    for (size_t i = 0; i < m->na; i++)
        if (strcmp(m->a[i].key, key) == 0 && !m->a[i].str) {
            *out = m->a[i].num;
            return 1;
        }
    return 0;
}

const char *vnp_tensor_map_str(const vnp_tensor_map *m, const char *key)
{
    for (size_t i = 0; i < m->na; i++)
        if (strcmp(m->a[i].key, key) == 0)
            return m->a[i].str;
    return NULL;
}

size_t vnp_tensor_map_attr_count(const vnp_tensor_map *m) { return m->na; }
const char *vnp_tensor_map_attr_key(const vnp_tensor_map *m, size_t i)
{
    return i < m->na ? m->a[i].key : NULL;
}
