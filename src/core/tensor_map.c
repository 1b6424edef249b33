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
    /* Open-addressing indexes by name (slot = position + 1, 0 = empty), so that lookups
     * and duplicate checks stay O(1) for checkpoints with many tensors. */
    size_t *ti, *ai;
    size_t ticap, aicap;
};

static size_t name_hash(const char *s)
{
    size_t h = (size_t)1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
    return h;
}

/* Finds `name` in index `ix` whose entries name themselves through key_at; returns the
 * slot holding it or the empty slot where it would go. */
static size_t index_find(const size_t *ix, size_t cap, const char *name,
                         const char *(*key_at)(const void *, size_t), const void *owner)
{
    size_t mask = cap - 1, i = name_hash(name) & mask;
    while (ix[i] && strcmp(key_at(owner, ix[i] - 1), name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Makes room for `count` entries (load <= 1/2) and re-inserts them; 0 when out of memory. */
static int index_reserve(size_t **ix, size_t *cap, size_t count,
                         const char *(*key_at)(const void *, size_t), const void *owner)
{
    if (count * 2 <= *cap)
        return 1;
    size_t nc = *cap ? *cap : 32;
    while (count * 2 > nc)
        nc *= 2;
    size_t *n = calloc(nc, sizeof *n);
    if (!n)
        return 0;
    for (size_t k = 0; k + 1 < count; k++)
        n[index_find(n, nc, key_at(owner, k), key_at, owner)] = k + 1;
    free(*ix);
    *ix = n;
    *cap = nc;
    return 1;
}

static const char *tensor_key(const void *m, size_t i)
{
    return ((const struct vnp_tensor_map *)m)->t[i].name;
}

static const char *attr_key(const void *m, size_t i)
{
    return ((const struct vnp_tensor_map *)m)->a[i].key;
}

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
    free(m->ti);
    free(m->ai);
    free(m);
}

size_t vnp_tensor_map_count(const vnp_tensor_map *m) { return m->n; }
const vnp_tensor *vnp_tensor_map_at(const vnp_tensor_map *m, size_t i)
{
    return i < m->n ? &m->t[i] : NULL;
}

const vnp_tensor *vnp_tensor_map_get(const vnp_tensor_map *m, const char *name)
{
    if (!m->ticap)
        return NULL;
    size_t slot = index_find(m->ti, m->ticap, name, tensor_key, m);
    return m->ti[slot] ? &m->t[m->ti[slot] - 1] : NULL;
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
        !grow((void **)&m->owned, &m->capo, m->n + 1, sizeof *m->owned) ||
        !index_reserve(&m->ti, &m->ticap, m->n + 1, tensor_key, m)) {
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
    m->ti[index_find(m->ti, m->ticap, t->name, tensor_key, m)] = m->n + 1;
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

static const attr *attr_get(const vnp_tensor_map *m, const char *key)
{
    if (!m->aicap)
        return NULL;
    size_t slot = m->ai[index_find(m->ai, m->aicap, key, attr_key, m)];
    return slot ? &m->a[slot - 1] : NULL;
}

static attr *attr_slot(vnp_tensor_map *m, const char *key, vnp_error *err)
{
    attr *found = (attr *)attr_get(m, key);
    if (found) {
        free(found->str);
        found->str = NULL;
        return found;
    }
    if (!grow((void **)&m->a, &m->capa, m->na + 1, sizeof *m->a) ||
        !index_reserve(&m->ai, &m->aicap, m->na + 1, attr_key, m)) {
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
    m->ai[index_find(m->ai, m->aicap, a->key, attr_key, m)] = m->na + 1;
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
    const attr *a = attr_get(m, key);
    if (!a || a->str)
        return 0;
    *out = a->num;
    return 1;
}

const char *vnp_tensor_map_str(const vnp_tensor_map *m, const char *key)
{
    const attr *a = attr_get(m, key);
    return a ? a->str : NULL;
}

size_t vnp_tensor_map_attr_count(const vnp_tensor_map *m) { return m->na; }
const char *vnp_tensor_map_attr_key(const vnp_tensor_map *m, size_t i)
{
    return i < m->na ? m->a[i].key : NULL;
}
