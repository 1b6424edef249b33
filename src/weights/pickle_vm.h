/* A restricted pickle reader: an interpreter for the opcodes PyTorch's torch.save writes
 * (protocols 2-5) that builds inert values. Globals are looked up in an allow-list and
 * become descriptions, never callables: REDUCE/NEWOBJ on them is interpreted natively
 * (a tensor description for torch._utils._rebuild_tensor_v2, an empty dict for
 * collections.OrderedDict, an opaque object for a module class, ...). Nothing a file
 * asks for is ever executed or imported. */
#ifndef VNP_WEIGHTS_PICKLE_VM_H
#define VNP_WEIGHTS_PICKLE_VM_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

typedef enum vnp_pk_kind {
    VNP_PK_NONE = 0,
    VNP_PK_BOOL,    /* i */
    VNP_PK_INT,     /* i */
    VNP_PK_FLOAT,   /* f */
    VNP_PK_STR,     /* s, len (UTF-8 text, or a Python 2 str) */
    VNP_PK_BYTES,   /* s, len */
    VNP_PK_TUPLE,   /* items, n */
    VNP_PK_LIST,    /* items, n */
    VNP_PK_SET,     /* items, n */
    VNP_PK_DICT,    /* items, n: key0, value0, key1, value1, ... in insertion order */
    VNP_PK_GLOBAL,  /* glob */
    VNP_PK_OBJECT,  /* obj: an instance of an allow-listed class, never constructed */
    VNP_PK_STORAGE, /* storage: a persistent id ('storage', type, key, location, numel) */
    VNP_PK_TENSOR,  /* tensor: a view of a storage */
    VNP_PK_NPDTYPE  /* s: numpy type string ("f8", "i4", ...); i: 1 if big-endian */
} vnp_pk_kind;

typedef enum vnp_pk_global_kind {
    VNP_PKG_ORDERED_DICT,            /* collections.OrderedDict */
    VNP_PKG_SET,                     /* builtins.set / builtins.frozenset */
    VNP_PKG_REBUILD_TENSOR_V2,       /* torch._utils._rebuild_tensor_v2 */
    VNP_PKG_REBUILD_PARAMETER,       /* torch._utils._rebuild_parameter(_with_state) */
    VNP_PKG_STORAGE_TYPE,            /* torch.FloatStorage, ... (dtype in `dtype`) */
    VNP_PKG_CLASS,                   /* argparse.Namespace, torch.nn.modules.*, __main__.* */
    VNP_PKG_TORCH_DEVICE,            /* torch.device -> "cuda:0" */
    VNP_PKG_TORCH_SIZE,              /* torch.Size -> tuple */
    VNP_PKG_CONSTANT,                /* torch.float32 and other dtype objects */
    VNP_PKG_NUMPY_DTYPE,             /* numpy.dtype("f8", False, True) */
    VNP_PKG_NUMPY_SCALAR,            /* numpy.core.multiarray.scalar(dtype, bytes) */
    VNP_PKG_CODECS_ENCODE            /* _codecs.encode(str, "latin1"): Python 3's bytes in
                                        protocol 2 */
} vnp_pk_global_kind;

typedef struct vnp_pk_value vnp_pk_value;
struct vnp_pk_value {
    vnp_pk_kind kind;
    int64_t i;
    double f;
    char *s; /* NUL-terminated; len excludes the NUL */
    size_t len;
    vnp_pk_value **items;
    size_t n, cap;
    struct {
        vnp_pk_global_kind kind;
        vnp_dtype dtype;
        char *qualname; /* "module.name" */
    } glob;
    struct {
        const vnp_pk_value *cls;   /* a VNP_PK_GLOBAL of kind CLASS */
        const vnp_pk_value *state; /* set by BUILD; NULL if none */
    } obj;
    struct {
        vnp_dtype dtype;
        const char *key;      /* file name under <prefix>/data/ */
        const char *location; /* "cpu", "cuda:0", ... */
        int64_t numel;        /* elements */
    } storage;
    struct {
        const vnp_pk_value *storage;
        int64_t offset; /* elements */
        int ndim;
        int64_t size[VNP_MAX_DIMS];
        int64_t stride[VNP_MAX_DIMS];
    } tensor;
    vnp_pk_value *next_alloc; /* every value of a load, for freeing */
};

typedef struct vnp_pickle {
    vnp_pk_value *root;
    vnp_pk_value *values; /* allocation list */
} vnp_pickle;

/* Runs the restricted interpreter over buf[0..len). `label` names the pickle in
 * messages ("model.pth: archive/data.pkl"). A disallowed opcode or global is
 * VNP_EUNSUPPORTED with a message naming it and its byte offset; malformed input is
 * VNP_EFORMAT. On failure nothing needs freeing. */
vnp_code vnp_pickle_load(const uint8_t *buf, size_t len, const char *label, vnp_pickle *out,
                         vnp_error *err);
void vnp_pickle_free(vnp_pickle *p);

#endif
