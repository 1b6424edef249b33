/* The restricted pickle interpreter (see pickle_vm.h). Opcodes follow CPython's
 * Lib/pickletools.py descriptions; only the binary opcodes of protocols 2-5 that
 * torch.save emits, plus their close relatives, are accepted. */
#include "weights/pickle_vm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/half.h"
#include "weights/pickle_globals.h"

typedef struct vm {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    uint8_t op;
    const char *label;
    vnp_error *err;
    vnp_pickle *out;
    vnp_pk_value **stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    vnp_pk_value **memo;
    size_t memo_cap, memo_len; /* memo_len: entries stored (MEMOIZE's next index) */
} vm;

static const char *opcode_name(uint8_t op)
{
    switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case '(': return "MARK";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'N': return "NONE";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'G': return "BINFLOAT";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 0x96: return "BYTEARRAY8";
    case ')': return "EMPTY_TUPLE";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case ']': return "EMPTY_LIST";
    case 'l': return "LIST";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case '}': return "EMPTY_DICT";
    case 'd': return "DICT";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 'b': return "BUILD";
    case 'Q': return "BINPERSID";
    /* refused */
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 'P': return "PERSID";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return "unknown";
    }
}

static vnp_code bad(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static vnp_code bad(vm *v, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return vnp_fail(v->err, VNP_EFORMAT, "%s: malformed pickle at byte %zu (%s): %s", v->label,
                    v->op_pos, opcode_name(v->op), what);
}

static vnp_code nomem(vm *v)
{
    return vnp_fail(v->err, VNP_ENOMEM, "%s: out of memory reading the pickle", v->label);
}

static vnp_pk_value *new_value(vm *v, vnp_pk_kind kind)
{
    vnp_pk_value *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->kind = kind;
    x->next_alloc = v->out->values;
    v->out->values = x;
    return x;
}

static int grow_ptrs(void ***p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void **q = realloc(*p, nc * sizeof *q);
    if (!q)
        return 0;
    *p = q;
    *cap = nc;
    return 1;
}

static vnp_code push(vm *v, vnp_pk_value *x)
{
    if (!x || !grow_ptrs((void ***)&v->stack, &v->scap, v->sn + 1))
        return nomem(v);
    v->stack[v->sn++] = x;
    return VNP_OK;
}

/* Items above the innermost mark (CPython keeps them on a separate stack). */
static size_t avail(const vm *v) { return v->sn - (v->mn ? v->marks[v->mn - 1] : 0); }

static vnp_code need(vm *v, size_t n)
{
    if (avail(v) < n)
        return bad(v, "needs %zu stack item%s, %zu available", n, n == 1 ? "" : "s", avail(v));
    return VNP_OK;
}

static vnp_pk_value *pop(vm *v) { return v->stack[--v->sn]; }

static vnp_code pop_mark(vm *v, size_t *base)
{
    if (!v->mn)
        return bad(v, "no MARK on the stack");
    *base = v->marks[--v->mn];
    return VNP_OK;
}

static vnp_code append_items(vm *v, vnp_pk_value *c, vnp_pk_value *const *items, size_t n)
{
    if (n == 0)
        return VNP_OK;
    if (!grow_ptrs((void ***)&c->items, &c->cap, c->n + n))
        return nomem(v);
    memcpy(c->items + c->n, items, n * sizeof *items);
    c->n += n;
    return VNP_OK;
}

/* Builds a container of `kind` from the stack items above the innermost mark. */
static vnp_code collect_from_mark(vm *v, vnp_pk_kind kind)
{
    size_t base = 0;
    vnp_code rc = pop_mark(v, &base);
    if (rc)
        return rc;
    vnp_pk_value *c = new_value(v, kind);
    if (!c)
        return nomem(v);
    if (v->sn > base && (rc = append_items(v, c, v->stack + base, v->sn - base)))
        return rc;
    v->sn = base;
    return push(v, c);
}

static vnp_code need_bytes(vm *v, uint64_t n)
{
    if (n > v->len - v->pos)
        return bad(v, "needs %" PRIu64 " more bytes but the pickle ends after %zu; the file is "
                      "truncated", n, v->len - v->pos);
    return VNP_OK;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

static vnp_code push_int(vm *v, int64_t i)
{
    vnp_pk_value *x = new_value(v, VNP_PK_INT);
    if (!x)
        return nomem(v);
    x->i = i;
    return push(v, x);
}

static vnp_code push_string(vm *v, vnp_pk_kind kind, int len_bytes)
{
    vnp_code rc = need_bytes(v, (uint64_t)len_bytes);
    if (rc)
        return rc;
    uint64_t n = le(v->buf + v->pos, len_bytes);
    v->pos += (size_t)len_bytes;
    if ((rc = need_bytes(v, n)))
        return rc;
    vnp_pk_value *x = new_value(v, kind);
    if (!x || !(x->s = malloc((size_t)n + 1)))
        return nomem(v);
    memcpy(x->s, v->buf + v->pos, (size_t)n);
    x->s[n] = 0;
    x->len = (size_t)n;
    v->pos += (size_t)n;
    return push(v, x);
}

static vnp_code push_long(vm *v, int len_bytes)
{
    vnp_code rc = need_bytes(v, (uint64_t)len_bytes);
    if (rc)
        return rc;
    uint64_t n = le(v->buf + v->pos, len_bytes);
    v->pos += (size_t)len_bytes;
    if ((rc = need_bytes(v, n)))
        return rc;
    if (n > 8)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: pickle integer of %" PRIu64 " bytes at byte %zu is larger than 64 "
                        "bits; not supported",
                        v->label, n, v->op_pos);
    uint64_t u = n ? le(v->buf + v->pos, (int)n) : 0;
    if (n && n < 8 && (v->buf[v->pos + n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    v->pos += (size_t)n;
    int64_t i;
    memcpy(&i, &u, sizeof i);
    return push_int(v, i);
}

static vnp_code memo_put(vm *v, uint64_t idx)
{
    vnp_code rc = need(v, 1);
    if (rc)
        return rc;
    /* A real pickle numbers its memo entries from 0 up, one per PUT: an index can never
     * exceed the pickle's length. */
    if (idx > v->len)
        return bad(v, "memo index %" PRIu64 " is out of range", idx);
    if (idx >= v->memo_cap) {
        size_t nc = v->memo_cap ? v->memo_cap : 64;
        while (nc <= idx)
            nc *= 2;
        vnp_pk_value **m = realloc(v->memo, nc * sizeof *m);
        if (!m)
            return nomem(v);
        memset(m + v->memo_cap, 0, (nc - v->memo_cap) * sizeof *m);
        v->memo = m;
        v->memo_cap = nc;
    }
    if (!v->memo[idx])
        v->memo_len++;
    v->memo[idx] = v->stack[v->sn - 1];
    return VNP_OK;
}

static vnp_code memo_get(vm *v, uint64_t idx)
{
    if (idx >= v->memo_cap || !v->memo[idx])
        return bad(v, "memo entry %" PRIu64 " was never stored", idx);
    return push(v, v->memo[idx]);
}

static vnp_code push_global(vm *v, const char *module, const char *name)
{
    vnp_pk_global_kind kind;
    vnp_dtype dt;
    if (!vnp_pickle_global_allowed(module, name, &kind, &dt))
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: pickle global '%s.%s' at byte %zu is not allowed (a checkpoint may "
                        "name only tensors, storages, containers and module classes); the file "
                        "asks to run code, refusing to load it",
                        v->label, module, name, v->op_pos);
    vnp_pk_value *x = new_value(v, VNP_PK_GLOBAL);
    size_t n = strlen(module) + strlen(name) + 2;
    if (!x || !(x->glob.qualname = malloc(n)))
        return nomem(v);
    snprintf(x->glob.qualname, n, "%s.%s", module, name);
    x->glob.kind = kind;
    x->glob.dtype = dt;
    return push(v, x);
}

/* GLOBAL: "module\nname\n". */
static vnp_code op_global(vm *v)
{
    const char *s = (const char *)v->buf + v->pos;
    size_t rest = v->len - v->pos;
    const char *nl1 = memchr(s, '\n', rest);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', rest - (size_t)(nl1 + 1 - s)) : NULL;
    if (!nl2)
        return bad(v, "GLOBAL needs two newline-terminated names");
    size_t ml = (size_t)(nl1 - s), nl = (size_t)(nl2 - nl1 - 1);
    if (memchr(s, 0, (size_t)(nl2 - s)))
        return bad(v, "GLOBAL names contain a NUL byte");
    char *module = malloc(ml + 1), *name = malloc(nl + 1);
    if (!module || !name) {
        free(module);
        free(name);
        return nomem(v);
    }
    memcpy(module, s, ml);
    module[ml] = 0;
    memcpy(name, nl1 + 1, nl);
    name[nl] = 0;
    v->pos += (size_t)(nl2 + 1 - s);
    vnp_code rc = push_global(v, module, name);
    free(module);
    free(name);
    return rc;
}

static vnp_code op_stack_global(vm *v)
{
    vnp_code rc = need(v, 2);
    if (rc)
        return rc;
    vnp_pk_value *name = pop(v), *module = pop(v);
    if (module->kind != VNP_PK_STR || name->kind != VNP_PK_STR || strlen(module->s) != module->len ||
        strlen(name->s) != name->len)
        return bad(v, "STACK_GLOBAL needs two strings");
    return push_global(v, module->s, name->s);
}

/* Fills dims from a tuple of non-negative ints. */
static vnp_code int_tuple(vm *v, const vnp_pk_value *t, int64_t *dims, int *nd, const char *what)
{
    if (t->kind != VNP_PK_TUPLE)
        return bad(v, "_rebuild_tensor_v2: %s is not a tuple", what);
    if (t->n > VNP_MAX_DIMS)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: tensor at byte %zu has %zu dimensions (at most %d supported)",
                        v->label, v->op_pos, t->n, VNP_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != VNP_PK_INT || t->items[i]->i < 0)
            return bad(v, "_rebuild_tensor_v2: %s entry %zu is not a non-negative integer", what,
                       i);
        dims[i] = t->items[i]->i;
    }
    *nd = (int)t->n;
    return VNP_OK;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) */
static vnp_code rebuild_tensor(vm *v, const vnp_pk_value *args)
{
    if (args->n < 4 || args->n > 7)
        return bad(v, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", args->n);
    const vnp_pk_value *st = args->items[0], *off = args->items[1];
    if (st->kind != VNP_PK_STORAGE)
        return bad(v, "_rebuild_tensor_v2: the first argument is not a storage");
    if (off->kind != VNP_PK_INT || off->i < 0)
        return bad(v, "_rebuild_tensor_v2: the storage offset is not a non-negative integer");
    vnp_pk_value *t = new_value(v, VNP_PK_TENSOR);
    if (!t)
        return nomem(v);
    t->tensor.storage = st;
    t->tensor.offset = off->i;
    int nd_stride = 0;
    vnp_code rc = int_tuple(v, args->items[2], t->tensor.size, &t->tensor.ndim, "size");
    if (!rc)
        rc = int_tuple(v, args->items[3], t->tensor.stride, &nd_stride, "stride");
    if (rc)
        return rc;
    if (nd_stride != t->tensor.ndim)
        return bad(v, "_rebuild_tensor_v2: size has %d dimensions but stride has %d",
                   t->tensor.ndim, nd_stride);
    return push(v, t);
}

static vnp_code make_object(vm *v, const vnp_pk_value *cls)
{
    vnp_pk_value *o = new_value(v, VNP_PK_OBJECT);
    if (!o)
        return nomem(v);
    o->obj.cls = cls;
    return push(v, o);
}

/* _codecs.encode(text, "latin1"): each code point (<= 0xff) of the UTF-8 text is a byte. */
static vnp_code codecs_encode(vm *v, const vnp_pk_value *args)
{
    if (args->n != 2 || args->items[0]->kind != VNP_PK_STR ||
        args->items[1]->kind != VNP_PK_STR ||
        (strcmp(args->items[1]->s, "latin1") && strcmp(args->items[1]->s, "latin-1")))
        return bad(v, "_codecs.encode needs (str, 'latin1')");
    const vnp_pk_value *t = args->items[0];
    vnp_pk_value *x = new_value(v, VNP_PK_BYTES);
    if (!x || !(x->s = malloc(t->len + 1)))
        return nomem(v);
    size_t n = 0;
    for (size_t i = 0; i < t->len; i++) {
        unsigned char c = (unsigned char)t->s[i];
        if (c < 0x80) {
            x->s[n++] = (char)c;
        } else if ((c == 0xc2 || c == 0xc3) && i + 1 < t->len &&
                   ((unsigned char)t->s[i + 1] & 0xc0) == 0x80) {
            x->s[n++] = (char)(((c & 0x03) << 6) | ((unsigned char)t->s[i + 1] & 0x3f));
            i++;
        } else {
            return bad(v, "_codecs.encode: text is not latin-1");
        }
    }
    x->s[n] = 0;
    x->len = n;
    return push(v, x);
}

/* numpy.core.multiarray.scalar(dtype, bytes): a number of a numpy type. */
static vnp_code numpy_scalar(vm *v, const vnp_pk_value *args)
{
    if (args->n != 2 || args->items[0]->kind != VNP_PK_NPDTYPE ||
        (args->items[1]->kind != VNP_PK_BYTES && args->items[1]->kind != VNP_PK_STR))
        return bad(v, "numpy scalar needs (dtype, bytes)");
    const vnp_pk_value *dt = args->items[0], *raw = args->items[1];
    const char *ts = dt->s;
    /* A type string is two characters: kind and byte size ("f4", "i8", "b1"). */
    size_t tl = strlen(ts);
    char kind = tl == 2 ? ts[0] : 0;
    int size = tl == 2 && ts[1] >= '0' && ts[1] <= '9' ? ts[1] - '0' : 0;
    if (!kind || !strchr("fiub", kind) || !(size == 1 || size == 2 || size == 4 || size == 8) ||
        (kind == 'f' && size == 1) || (kind == 'b' && size != 1))
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: numpy scalar of type '%s' at byte %zu is not supported", v->label,
                        ts, v->op_pos);
    if (raw->len != (size_t)size)
        return bad(v, "numpy scalar of type '%s' needs %d bytes, got %zu", ts, size, raw->len);
    if (dt->i && size > 1)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: big-endian numpy scalar at byte %zu is not supported", v->label,
                        v->op_pos);
    uint64_t u = le((const uint8_t *)raw->s, size);
    vnp_pk_value *x = new_value(v, kind == 'f' ? VNP_PK_FLOAT : kind == 'b' ? VNP_PK_BOOL
                                                                             : VNP_PK_INT);
    if (!x)
        return nomem(v);
    if (kind == 'f') {
        if (size == 8) {
            memcpy(&x->f, &u, 8);
        } else if (size == 4) {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, 4);
            x->f = f;
        } else {
            x->f = vnp_f16_to_f32((uint16_t)u);
        }
    } else if (kind == 'i' && size < 8 && (u >> (8 * size - 1)) & 1) {
        x->i = (int64_t)(u | (~(uint64_t)0 << (8 * size)));
    } else if (kind == 'u' && size == 8 && u > (uint64_t)INT64_MAX) {
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: numpy uint64 at byte %zu does not fit in 63 bits", v->label,
                        v->op_pos);
    } else {
        x->i = (int64_t)u;
    }
    return push(v, x);
}

/* numpy.dtype(type string, align, copy) */
static vnp_code numpy_dtype(vm *v, const vnp_pk_value *args)
{
    if (args->n < 1 || args->items[0]->kind != VNP_PK_STR || args->items[0]->len > 16)
        return bad(v, "numpy.dtype needs a type string");
    vnp_pk_value *x = new_value(v, VNP_PK_NPDTYPE);
    if (!x || !(x->s = strdup(args->items[0]->s)))
        return nomem(v);
    x->len = strlen(x->s);
    return push(v, x);
}

/* REDUCE: callable(*args), interpreted for each allow-listed callable. */
static vnp_code op_reduce(vm *v)
{
    vnp_code rc = need(v, 2);
    if (rc)
        return rc;
    vnp_pk_value *args = pop(v), *fn = pop(v);
    if (fn->kind != VNP_PK_GLOBAL)
        return bad(v, "REDUCE: the callable is not a global");
    if (args->kind != VNP_PK_TUPLE)
        return bad(v, "REDUCE: the arguments of %s are not a tuple", fn->glob.qualname);
    vnp_pk_value *x;
    switch (fn->glob.kind) {
    case VNP_PKG_ORDERED_DICT:
        if (args->n != 0)
            return bad(v, "collections.OrderedDict takes no arguments here, got %zu", args->n);
        x = new_value(v, VNP_PK_DICT);
        return x ? push(v, x) : nomem(v);
    case VNP_PKG_SET:
        x = new_value(v, VNP_PK_SET);
        if (!x)
            return nomem(v);
        if (args->n == 1 && (args->items[0]->kind == VNP_PK_LIST ||
                             args->items[0]->kind == VNP_PK_TUPLE ||
                             args->items[0]->kind == VNP_PK_SET)) {
            if ((rc = append_items(v, x, args->items[0]->items, args->items[0]->n)))
                return rc;
        } else if (args->n != 0) {
            return bad(v, "%s takes one list, tuple or set", fn->glob.qualname);
        }
        return push(v, x);
    case VNP_PKG_REBUILD_TENSOR_V2:
        return rebuild_tensor(v, args);
    case VNP_PKG_REBUILD_PARAMETER:
        if (args->n < 3 || args->n > 4 || args->items[0]->kind != VNP_PK_TENSOR)
            return bad(v, "%s needs (tensor, requires_grad, hooks[, state])", fn->glob.qualname);
        return push(v, args->items[0]);
    case VNP_PKG_CLASS:
        return make_object(v, fn);
    case VNP_PKG_TORCH_DEVICE: {
        char dev[96];
        if (args->n == 1 && args->items[0]->kind == VNP_PK_STR)
            snprintf(dev, sizeof dev, "%.64s", args->items[0]->s);
        else if (args->n == 2 && args->items[0]->kind == VNP_PK_STR &&
                 args->items[1]->kind == VNP_PK_INT)
            snprintf(dev, sizeof dev, "%.64s:%" PRId64, args->items[0]->s, args->items[1]->i);
        else
            return bad(v, "torch.device needs (type) or (type, index)");
        x = new_value(v, VNP_PK_STR);
        if (!x || !(x->s = strdup(dev)))
            return nomem(v);
        x->len = strlen(dev);
        return push(v, x);
    }
    case VNP_PKG_TORCH_SIZE:
        if (args->n != 1 || args->items[0]->kind != VNP_PK_TUPLE)
            return bad(v, "torch.Size needs one tuple");
        x = new_value(v, VNP_PK_TUPLE);
        if (!x)
            return nomem(v);
        if ((rc = append_items(v, x, args->items[0]->items, args->items[0]->n)))
            return rc;
        return push(v, x);
    case VNP_PKG_NUMPY_DTYPE:
        return numpy_dtype(v, args);
    case VNP_PKG_NUMPY_SCALAR:
        return numpy_scalar(v, args);
    case VNP_PKG_CODECS_ENCODE:
        return codecs_encode(v, args);
    case VNP_PKG_STORAGE_TYPE:
    case VNP_PKG_CONSTANT:
        break;
    }
    return vnp_fail(v->err, VNP_EUNSUPPORTED,
                    "%s: pickle at byte %zu calls '%s', which a checkpoint never calls; refusing "
                    "to load it",
                    v->label, v->op_pos, fn->glob.qualname);
}

/* NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args) for an allow-listed class. */
static vnp_code op_newobj(vm *v, int ex)
{
    vnp_code rc = need(v, ex ? 3 : 2);
    if (rc)
        return rc;
    if (ex)
        (void)pop(v); /* kwargs */
    (void)pop(v);     /* args */
    vnp_pk_value *cls = pop(v);
    if (cls->kind == VNP_PK_GLOBAL && cls->glob.kind == VNP_PKG_ORDERED_DICT) {
        vnp_pk_value *d = new_value(v, VNP_PK_DICT);
        return d ? push(v, d) : nomem(v);
    }
    if (cls->kind != VNP_PK_GLOBAL || cls->glob.kind != VNP_PKG_CLASS)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: pickle at byte %zu creates an instance of '%s', which is not an "
                        "allowed class; refusing to load it",
                        v->label, v->op_pos,
                        cls->kind == VNP_PK_GLOBAL ? cls->glob.qualname : "a non-class value");
    return make_object(v, cls);
}

static vnp_code op_build(vm *v)
{
    vnp_code rc = need(v, 2);
    if (rc)
        return rc;
    vnp_pk_value *state = pop(v), *o = v->stack[v->sn - 1];
    if (o->kind == VNP_PK_OBJECT) {
        o->obj.state = state;
        return VNP_OK;
    }
    if (o->kind == VNP_PK_NPDTYPE) {
        /* numpy's dtype state: (version, byte order, ...); '>' is big-endian */
        if (state->kind == VNP_PK_TUPLE && state->n >= 2 && state->items[1]->kind == VNP_PK_STR)
            o->i = strcmp(state->items[1]->s, ">") == 0;
        return VNP_OK;
    }
    if (o->kind == VNP_PK_TENSOR || o->kind == VNP_PK_DICT)
        return VNP_OK; /* tensor __dict__ / dict attributes: nothing the weights depend on */
    return bad(v, "BUILD on a value that is not an object");
}

static vnp_code op_persid(vm *v)
{
    vnp_code rc = need(v, 1);
    if (rc)
        return rc;
    vnp_pk_value *pid = pop(v);
    if (pid->kind != VNP_PK_TUPLE || pid->n != 5 || pid->items[0]->kind != VNP_PK_STR ||
        strcmp(pid->items[0]->s, "storage") != 0)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: pickle at byte %zu has a persistent id that is not a PyTorch "
                        "storage ('storage', type, key, location, numel)",
                        v->label, v->op_pos);
    const vnp_pk_value *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3],
                       *numel = pid->items[4];
    if (type->kind != VNP_PK_GLOBAL || type->glob.kind != VNP_PKG_STORAGE_TYPE)
        return vnp_fail(v->err, VNP_EUNSUPPORTED,
                        "%s: storage at byte %zu has type '%s'; supported: Float, Half, BFloat16, "
                        "Double, Long, Int, Short, Char, Byte and Bool storages",
                        v->label, v->op_pos,
                        type->kind == VNP_PK_GLOBAL ? type->glob.qualname : "(not a class)");
    if (key->kind != VNP_PK_STR || loc->kind != VNP_PK_STR || numel->kind != VNP_PK_INT ||
        numel->i < 0 || strlen(key->s) != key->len)
        return bad(v, "storage persistent id needs (str key, str location, int numel)");
    vnp_pk_value *s = new_value(v, VNP_PK_STORAGE);
    if (!s)
        return nomem(v);
    s->storage.dtype = type->glob.dtype;
    s->storage.key = key->s;
    s->storage.location = loc->s;
    s->storage.numel = numel->i;
    return push(v, s);
}

static vnp_code op_setitems(vm *v, int many)
{
    vnp_code rc;
    size_t base = 0;
    if (many) {
        if ((rc = pop_mark(v, &base)))
            return rc;
    } else {
        if ((rc = need(v, 3)))
            return rc;
        base = v->sn - 2;
    }
    if (base == 0 || (v->mn && v->marks[v->mn - 1] >= base))
        return bad(v, "no dict below the items");
    if ((v->sn - base) % 2)
        return bad(v, "odd number of items for a dict");
    vnp_pk_value *d = v->stack[base - 1];
    if (d->kind != VNP_PK_DICT)
        return bad(v, "setting items on a value that is not a dict");
    if ((rc = append_items(v, d, v->stack + base, v->sn - base)))
        return rc;
    v->sn = base;
    return VNP_OK;
}

static vnp_code op_appends(vm *v, int many, vnp_pk_kind want)
{
    vnp_code rc;
    size_t base = 0;
    if (many) {
        if ((rc = pop_mark(v, &base)))
            return rc;
    } else {
        if ((rc = need(v, 2)))
            return rc;
        base = v->sn - 1;
    }
    if (base == 0 || (v->mn && v->marks[v->mn - 1] >= base))
        return bad(v, "no container below the items");
    vnp_pk_value *c = v->stack[base - 1];
    if (c->kind != want)
        return bad(v, "adding items to a value that is not a %s",
                   want == VNP_PK_LIST ? "list" : "set");
    if ((rc = append_items(v, c, v->stack + base, v->sn - base)))
        return rc;
    v->sn = base;
    return VNP_OK;
}

static vnp_code tuple_n(vm *v, size_t n)
{
    vnp_code rc = need(v, n);
    if (rc)
        return rc;
    vnp_pk_value *t = new_value(v, VNP_PK_TUPLE);
    if (!t)
        return nomem(v);
    if ((rc = append_items(v, t, v->stack + v->sn - n, n)))
        return rc;
    v->sn -= n;
    return push(v, t);
}

static vnp_code refused(vm *v)
{
    return vnp_fail(v->err, VNP_EUNSUPPORTED,
                    "%s: pickle opcode 0x%02x (%s) at byte %zu is not allowed in a checkpoint; "
                    "refusing to load the file",
                    v->label, v->op, opcode_name(v->op), v->op_pos);
}

static vnp_code step(vm *v, int *stop)
{
    vnp_code rc;
    vnp_pk_value *x;
    uint8_t op = v->op;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = need_bytes(v, 1)))
            return rc;
        if (v->buf[v->pos] > 5)
            return vnp_fail(v->err, VNP_EUNSUPPORTED,
                            "%s: pickle protocol %u is newer than 5; not supported", v->label,
                            v->buf[v->pos]);
        v->pos++;
        return VNP_OK;
    case 0x95: /* FRAME: a length prefix we do not need */
        if ((rc = need_bytes(v, 8)))
            return rc;
        v->pos += 8;
        return VNP_OK;
    case '.':
        if ((rc = need(v, 1)))
            return rc;
        v->out->root = pop(v);
        *stop = 1;
        return VNP_OK;
    case '(':
        if (!grow_ptrs((void ***)&v->marks, &v->mcap, v->mn + 1))
            return nomem(v);
        v->marks[v->mn++] = v->sn;
        return VNP_OK;
    case '0':
        if (avail(v) == 0 && v->mn) { /* POP of a mark */
            v->mn--;
            return VNP_OK;
        }
        if ((rc = need(v, 1)))
            return rc;
        (void)pop(v);
        return VNP_OK;
    case '1': {
        size_t base = 0;
        if ((rc = pop_mark(v, &base)))
            return rc;
        v->sn = base;
        return VNP_OK;
    }
    case '2':
        if ((rc = need(v, 1)))
            return rc;
        return push(v, v->stack[v->sn - 1]);
    case 'N':
        return push(v, new_value(v, VNP_PK_NONE));
    case 0x88:
    case 0x89:
        if (!(x = new_value(v, VNP_PK_BOOL)))
            return nomem(v);
        x->i = op == 0x88;
        return push(v, x);
    case 'J': {
        if ((rc = need_bytes(v, 4)))
            return rc;
        uint32_t u = (uint32_t)le(v->buf + v->pos, 4);
        int32_t s;
        memcpy(&s, &u, sizeof s);
        v->pos += 4;
        return push_int(v, s);
    }
    case 'K':
    case 'M': {
        int n = op == 'K' ? 1 : 2;
        if ((rc = need_bytes(v, (uint64_t)n)))
            return rc;
        uint64_t u = le(v->buf + v->pos, n);
        v->pos += (size_t)n;
        return push_int(v, (int64_t)u);
    }
    case 0x8a:
        return push_long(v, 1);
    case 0x8b:
        return push_long(v, 4);
    case 'G': {
        if ((rc = need_bytes(v, 8)))
            return rc;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) /* big-endian IEEE double */
            u = u << 8 | v->buf[v->pos + i];
        v->pos += 8;
        if (!(x = new_value(v, VNP_PK_FLOAT)))
            return nomem(v);
        memcpy(&x->f, &u, sizeof x->f);
        return push(v, x);
    }
    case 'X':
        return push_string(v, VNP_PK_STR, 4);
    case 0x8c:
        return push_string(v, VNP_PK_STR, 1);
    case 0x8d:
        return push_string(v, VNP_PK_STR, 8);
    case 'T':
        return push_string(v, VNP_PK_STR, 4);
    case 'U':
        return push_string(v, VNP_PK_STR, 1);
    case 'B':
        return push_string(v, VNP_PK_BYTES, 4);
    case 'C':
        return push_string(v, VNP_PK_BYTES, 1);
    case 0x8e:
    case 0x96:
        return push_string(v, VNP_PK_BYTES, 8);
    case ')':
        return push(v, new_value(v, VNP_PK_TUPLE));
    case 't':
        return collect_from_mark(v, VNP_PK_TUPLE);
    case 0x85:
    case 0x86:
    case 0x87:
        return tuple_n(v, (size_t)(op - 0x84));
    case ']':
        return push(v, new_value(v, VNP_PK_LIST));
    case 'l':
        return collect_from_mark(v, VNP_PK_LIST);
    case 'a':
        return op_appends(v, 0, VNP_PK_LIST);
    case 'e':
        return op_appends(v, 1, VNP_PK_LIST);
    case '}':
        return push(v, new_value(v, VNP_PK_DICT));
    case 'd': {
        if ((rc = collect_from_mark(v, VNP_PK_DICT)))
            return rc;
        if (v->stack[v->sn - 1]->n % 2)
            return bad(v, "odd number of items for a dict");
        return VNP_OK;
    }
    case 's':
        return op_setitems(v, 0);
    case 'u':
        return op_setitems(v, 1);
    case 0x8f:
        return push(v, new_value(v, VNP_PK_SET));
    case 0x90:
        return op_appends(v, 1, VNP_PK_SET);
    case 0x91:
        return collect_from_mark(v, VNP_PK_SET);
    case 'q':
    case 'r': {
        int n = op == 'q' ? 1 : 4;
        if ((rc = need_bytes(v, (uint64_t)n)))
            return rc;
        uint64_t idx = le(v->buf + v->pos, n);
        v->pos += (size_t)n;
        return memo_put(v, idx);
    }
    case 0x94:
        return memo_put(v, v->memo_len);
    case 'h':
    case 'j': {
        int n = op == 'h' ? 1 : 4;
        if ((rc = need_bytes(v, (uint64_t)n)))
            return rc;
        uint64_t idx = le(v->buf + v->pos, n);
        v->pos += (size_t)n;
        return memo_get(v, idx);
    }
    case 'c':
        return op_global(v);
    case 0x93:
        return op_stack_global(v);
    case 'R':
        return op_reduce(v);
    case 0x81:
        return op_newobj(v, 0);
    case 0x92:
        return op_newobj(v, 1);
    case 'b':
        return op_build(v);
    case 'Q':
        return op_persid(v);
    default:
        return refused(v);
    }
}

vnp_code vnp_pickle_load(const uint8_t *buf, size_t len, const char *label, vnp_pickle *out,
                         vnp_error *err)
{
    memset(out, 0, sizeof *out);
    vm v;
    memset(&v, 0, sizeof v);
    v.buf = buf;
    v.len = len;
    v.label = label;
    v.err = err;
    v.out = out;
    vnp_code rc = VNP_OK;
    int stop = 0;
    while (!stop) {
        if (v.pos >= v.len) {
            v.op_pos = v.pos;
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: the pickle ends at byte %zu without a STOP opcode; the file is "
                          "truncated",
                          label, v.pos);
            break;
        }
        v.op_pos = v.pos;
        v.op = buf[v.pos++];
        if ((rc = step(&v, &stop)))
            break;
    }
    free(v.stack);
    free(v.marks);
    free(v.memo);
    if (rc)
        vnp_pickle_free(out);
    return rc;
}

void vnp_pickle_free(vnp_pickle *p)
{
    vnp_pk_value *x = p->values;
    while (x) {
        vnp_pk_value *next = x->next_alloc;
        free(x->s);
        free(x->items);
        free(x->glob.qualname);
        free(x);
        x = next;
    }
    p->values = NULL;
    p->root = NULL;
}
