/* Which globals a checkpoint may name, and what each one stands for. Everything not
 * listed here is refused: a global is the only way a pickle can reach code. */
#include "weights/pickle_globals.h"

#include <string.h>

static const struct {
    const char *name;
    vnp_dtype dtype;
} storage_types[] = {
    {"FloatStorage", VNP_DT_F32}, {"HalfStorage", VNP_DT_F16},  {"BFloat16Storage", VNP_DT_BF16},
    {"DoubleStorage", VNP_DT_F64}, {"LongStorage", VNP_DT_I64}, {"IntStorage", VNP_DT_I32},
    {"ShortStorage", VNP_DT_I16}, {"CharStorage", VNP_DT_I8},   {"ByteStorage", VNP_DT_U8},
    {"BoolStorage", VNP_DT_BOOL},
};

static const char *const torch_dtypes[] = {
    "float32", "float", "float16", "half", "bfloat16", "float64", "double", "int64",
    "long",    "int32", "int",     "int16", "short",   "int8",    "uint8",  "bool",
};

/* A dotted Python identifier path: letters, digits, '_' and single dots between parts. */
static int is_dotted_identifier(const char *s)
{
    if (!*s)
        return 0;
    int at_start = 1;
    for (; *s; s++) {
        char c = *s;
        if (c == '.') {
            if (at_start)
                return 0;
            at_start = 1;
            continue;
        }
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && !at_start))
            return 0;
        at_start = 0;
    }
    return !at_start;
}

int vnp_pickle_global_allowed(const char *module, const char *name, vnp_pk_global_kind *kind,
                              vnp_dtype *dtype)
{
    *dtype = VNP_DT_F32;
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) {
        *kind = VNP_PKG_ORDERED_DICT;
        return 1;
    }
    if ((!strcmp(module, "builtins") || !strcmp(module, "__builtin__")) &&
        (!strcmp(name, "set") || !strcmp(name, "frozenset"))) {
        *kind = VNP_PKG_SET;
        return 1;
    }
    if (!strcmp(module, "torch._utils")) {
        if (!strcmp(name, "_rebuild_tensor_v2")) {
            *kind = VNP_PKG_REBUILD_TENSOR_V2;
            return 1;
        }
        if (!strcmp(name, "_rebuild_parameter") || !strcmp(name, "_rebuild_parameter_with_state")) {
            *kind = VNP_PKG_REBUILD_PARAMETER;
            return 1;
        }
        return 0;
    }
    if (!strcmp(module, "torch")) {
        for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
            if (!strcmp(name, storage_types[i].name)) {
                *kind = VNP_PKG_STORAGE_TYPE;
                *dtype = storage_types[i].dtype;
                return 1;
            }
        for (size_t i = 0; i < sizeof torch_dtypes / sizeof torch_dtypes[0]; i++)
            if (!strcmp(name, torch_dtypes[i])) {
                *kind = VNP_PKG_CONSTANT;
                return 1;
            }
        if (!strcmp(name, "device")) {
            *kind = VNP_PKG_TORCH_DEVICE;
            return 1;
        }
        if (!strcmp(name, "Size")) {
            *kind = VNP_PKG_TORCH_SIZE;
            return 1;
        }
        return 0;
    }
    /* numpy scalars in configs (fairseq-style cfg values), decoded natively */
    if ((!strcmp(module, "numpy.core.multiarray") || !strcmp(module, "numpy._core.multiarray")) &&
        !strcmp(name, "scalar")) {
        *kind = VNP_PKG_NUMPY_SCALAR;
        return 1;
    }
    if (!strcmp(module, "numpy") && !strcmp(name, "dtype")) {
        *kind = VNP_PKG_NUMPY_DTYPE;
        return 1;
    }
    if (!strcmp(module, "_codecs") && !strcmp(name, "encode")) {
        *kind = VNP_PKG_CODECS_ENCODE;
        return 1;
    }
    if (!strcmp(module, "argparse") && !strcmp(name, "Namespace")) {
        *kind = VNP_PKG_CLASS;
        return 1;
    }
    /* Module classes, kept as opaque objects: PyTorch's own layers and the classes of
     * the script that saved the model (VirNucPro's __main__.MLPClassifier). A class
     * name never starts with '_' here, which keeps out private helpers. */
    if ((!strcmp(module, "__main__") || !strncmp(module, "torch.nn.modules.", 17)) &&
        is_dotted_identifier(module) && is_dotted_identifier(name) && name[0] >= 'A' &&
        name[0] <= 'Z') {
        *kind = VNP_PKG_CLASS;
        return 1;
    }
    return 0;
}
