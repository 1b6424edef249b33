/* The restricted pickle interpreter, opcode by opcode, on hand-assembled pickles, and
 * the flattening of its values (with an in-memory storage provider). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "weights/pickle_flatten.h"
#include "weights/pickle_vm.h"

#define PK(s) (const uint8_t *)(s), sizeof(s) - 1

static vnp_pickle load_ok(const uint8_t *p, size_t n)
{
    vnp_pickle pk;
    vnp_error e;
    if (vnp_pickle_load(p, n, "t.pkl", &pk, &e))
        fail_msg("%s", e.msg);
    assert_non_null(pk.root);
    return pk;
}

static void expect_fail(const uint8_t *p, size_t n, vnp_code code, const char *frag)
{
    vnp_pickle pk;
    vnp_error e;
    vnp_code rc = vnp_pickle_load(p, n, "t.pkl", &pk, &e);
    if (rc != code)
        fail_msg("[%s] expected %s, got %s: %s", frag, vnp_code_name(code), vnp_code_name(rc),
                 rc ? e.msg : "");
    assert_null(pk.root);
    assert_null(pk.values);
    if (!strstr(e.msg, frag) || strncmp(e.msg, "t.pkl: ", 7) != 0)
        fail_msg("message '%s' lacks '%s'", e.msg, frag);
}

static void test_scalars(void **state)
{
    (void)state;
    /* (K 7, M 0x1234, J -2, LONG1 -2, LONG1 0, LONG4 2^40, G 1.5, True, False, None) */
    vnp_pickle pk = load_ok(PK("\x80\x02(K\x07M\x34\x12J\xfe\xff\xff\xff\x8a\x01\xfe\x8a\x00"
                               "\x8b\x06\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                               "G\x3f\xf8\x00\x00\x00\x00\x00\x00\x88\x89Nt."));
    const vnp_pk_value *t = pk.root;
    assert_int_equal(t->kind, VNP_PK_TUPLE);
    assert_int_equal(t->n, 10);
    assert_int_equal(t->items[0]->i, 7);
    assert_int_equal(t->items[1]->i, 0x1234);
    assert_int_equal(t->items[2]->i, -2);
    assert_int_equal(t->items[3]->i, -2);
    assert_int_equal(t->items[4]->i, 0);
    assert_int_equal(t->items[5]->i, (int64_t)1 << 40);
    assert_int_equal(t->items[6]->kind, VNP_PK_FLOAT);
    assert_true(t->items[6]->f == 1.5);
    assert_int_equal(t->items[7]->kind, VNP_PK_BOOL);
    assert_int_equal(t->items[7]->i, 1);
    assert_int_equal(t->items[8]->i, 0);
    assert_int_equal(t->items[9]->kind, VNP_PK_NONE);
    vnp_pickle_free(&pk);
    /* an empty MARK..TUPLE as the very first opcode (found by fuzzing: empty stack) */
    pk = load_ok(PK("(t."));
    assert_int_equal(pk.root->kind, VNP_PK_TUPLE);
    assert_int_equal(pk.root->n, 0);
    vnp_pickle_free(&pk);
    /* numpy int16 -2 from latin-1 text "\xfe\xff" (UTF-8 c3 be c3 bf), protocol 2 style */
    pk = load_ok(PK("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00" "i2\x85R"
                    "c_codecs\nencode\nX\x04\x00\x00\x00\xc3\xbe\xc3\xbf"
                    "X\x06\x00\x00\x00latin1\x86R\x86R."));
    assert_int_equal(pk.root->kind, VNP_PK_INT);
    assert_int_equal(pk.root->i, -2);
    vnp_pickle_free(&pk);
    /* LONG1 with 8 bytes: INT64_MIN */
    pk = load_ok(PK("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80."));
    assert_int_equal(pk.root->i, INT64_MIN);
    vnp_pickle_free(&pk);
}

static void test_strings_and_containers(void **state)
{
    (void)state;
    /* protocol 4 with FRAME, MEMOIZE, SHORT_BINUNICODE, BINBYTES, sets, DICT, LIST, DUP,
     * POP, POP_MARK, LONG_BINGET */
    vnp_pickle pk = load_ok(PK(
        "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00"
        "}\x94(\x8c\x01" "a\x94]\x94(K\x01K\x02" "e\x8c\x01" "b\x8f\x94(K\x03\x90\x8c\x01" "c"
        "(K\x04\x91\x8c\x01" "d(\x8c\x01kK\x05" "d\x8c\x01" "e(K\x06K\x07l\x8c\x01" "f"
        "C\x03x\x00yu"          /* SETITEMS: a, b, c, d, e, f */
        "K\x09" "0"             /* POP */
        "(K\x0a" "1"            /* MARK .. POP_MARK */
        "2" "0"                 /* DUP, POP */
        "j\x01\x00\x00\x00"     /* LONG_BINGET 1 (the string 'a') */
        "\x8c\x02zz"            /* SETITEM: 'a' -> 'zz' appended again */
        "s."));
    const vnp_pk_value *d = pk.root;
    assert_int_equal(d->kind, VNP_PK_DICT);
    assert_int_equal(d->n, 14);
    assert_string_equal(d->items[0]->s, "a");
    const vnp_pk_value *l = d->items[1];
    assert_int_equal(l->kind, VNP_PK_LIST);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->items[1]->i, 2);
    assert_int_equal(d->items[3]->kind, VNP_PK_SET);
    assert_int_equal(d->items[3]->n, 1);
    assert_int_equal(d->items[5]->kind, VNP_PK_SET); /* frozenset */
    assert_int_equal(d->items[7]->kind, VNP_PK_DICT);
    assert_int_equal(d->items[7]->items[1]->i, 5);
    assert_int_equal(d->items[9]->kind, VNP_PK_LIST);
    assert_int_equal(d->items[9]->n, 2);
    assert_int_equal(d->items[11]->kind, VNP_PK_BYTES);
    assert_int_equal(d->items[11]->len, 3);
    assert_memory_equal(d->items[11]->s, "x\0y", 3);
    assert_ptr_equal(d->items[12], d->items[0]); /* memo returns the same value */
    assert_string_equal(d->items[13]->s, "zz");
    vnp_pickle_free(&pk);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_fail(PK("\x80\x02K\x01"), VNP_EFORMAT, "ends at byte 4 without a STOP");
    expect_fail(PK(""), VNP_EFORMAT, "ends at byte 0 without a STOP");
    expect_fail(PK("\x80\x02."), VNP_EFORMAT, "at byte 2 (STOP): needs 1 stack item, 0 available");
    expect_fail(PK("\x80\x02(."), VNP_EFORMAT, "at byte 3 (STOP): needs 1 stack item");
    expect_fail(PK("\x80\x02K\x01t."), VNP_EFORMAT, "at byte 4 (TUPLE): no MARK on the stack");
    expect_fail(PK("\x80\x02h\x03."), VNP_EFORMAT, "at byte 2 (BINGET): memo entry 3 was never stored");
    expect_fail(PK("\x80\x02K\x01r\xff\xff\xff\x7f."), VNP_EFORMAT,
                "at byte 4 (LONG_BINPUT): memo index 2147483647 is out of range");
    expect_fail(PK("\x80\x06."), VNP_EUNSUPPORTED, "pickle protocol 6 is newer than 5");
    expect_fail(PK("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."), VNP_EUNSUPPORTED,
                "integer of 9 bytes at byte 0");
    expect_fail(PK("X\xff\xff\xff\x00" "abc."), VNP_EFORMAT, "at byte 0 (BINUNICODE): needs 16777215 more bytes");
    expect_fail(PK("\x8d\xff\xff\xff\xff\xff\xff\xff\xff."), VNP_EFORMAT, "(BINUNICODE8): needs");
    expect_fail(PK("]K\x01K\x02s."), VNP_EFORMAT, "at byte 5 (SETITEM): setting items on a value that is not a dict");
    expect_fail(PK("}K\x01" "a."), VNP_EFORMAT, "at byte 3 (APPEND): adding items to a value that is not a list");
    expect_fail(PK("(K\x01" "d."), VNP_EFORMAT, "at byte 3 (DICT): odd number of items for a dict");
    expect_fail(PK("}(K\x01u."), VNP_EFORMAT, "at byte 4 (SETITEMS): odd number of items");
    expect_fail(PK("(K\x01s."), VNP_EFORMAT, "(SETITEM): needs 3 stack items, 1 available");
    expect_fail(PK("}(K\x01K\x02s."), VNP_EFORMAT, "(SETITEM): needs 3 stack items, 2 available");
    expect_fail(PK("K\x01K\x02" "b."), VNP_EFORMAT, "(BUILD): BUILD on a value that is not an object");
    expect_fail(PK("cos\nsystem"), VNP_EFORMAT, "at byte 0 (GLOBAL): GLOBAL needs two newline");
    expect_fail(PK("cos\0\nsystem\n."), VNP_EFORMAT, "GLOBAL names contain a NUL byte");
    expect_fail(PK("K\x01K\x02\x93."), VNP_EFORMAT, "STACK_GLOBAL needs two strings");
    expect_fail(PK("\x8c\x02os\x8c\x06system\x93."), VNP_EUNSUPPORTED,
                "pickle global 'os.system' at byte 12 is not allowed");
    expect_fail(PK("\xff."), VNP_EUNSUPPORTED, "pickle opcode 0xff (unknown) at byte 0 is not allowed");
    expect_fail(PK("I1\n."), VNP_EUNSUPPORTED, "opcode 0x49 (INT) at byte 0");
    expect_fail(PK("g0\n."), VNP_EUNSUPPORTED, "opcode 0x67 (GET) at byte 0");
    expect_fail(PK("\x97."), VNP_EUNSUPPORTED, "opcode 0x97 (NEXT_BUFFER) at byte 0");
    expect_fail(PK("ctorch\nFloatStorage\n)R."), VNP_EUNSUPPORTED,
                "calls 'torch.FloatStorage', which a checkpoint never calls");
    expect_fail(PK("ctorch._utils\n_rebuild_tensor_v3\n."), VNP_EUNSUPPORTED,
                "global 'torch._utils._rebuild_tensor_v3'");
    expect_fail(PK("c__main__\n_helper\n."), VNP_EUNSUPPORTED, "global '__main__._helper'");
    expect_fail(PK("ctorch.nn.modules.x\nA..B\n."), VNP_EUNSUPPORTED, "global 'torch.nn.modules.x.A..B'");
    expect_fail(PK("(X\x07\x00\x00\x00storageK\x01K\x02K\x03K\x04tQ."), VNP_EUNSUPPORTED,
                "has type '(not a class)'");
    expect_fail(PK("(X\x07\x00\x00\x00storagectorch\nUntypedStorage\nK\x02K\x03K\x04tQ."),
                VNP_EUNSUPPORTED, "global 'torch.UntypedStorage'");
    expect_fail(PK("K\x01Q."), VNP_EUNSUPPORTED, "persistent id that is not a PyTorch storage");
    /* numpy scalars */
    expect_fail(PK("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00" "c8\x85R"
                   "C\x08" "12345678\x86R."),
                VNP_EUNSUPPORTED, "numpy scalar of type 'c8' at byte 63 is not supported");
    expect_fail(PK("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00" "f8\x85R"
                   "C\x04" "1234\x86R."),
                VNP_EFORMAT, "numpy scalar of type 'f8' needs 8 bytes, got 4");
    expect_fail(PK("cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00" "f8\x85R"
                   "(K\x03X\x01\x00\x00\x00>tbC\x08" "12345678\x86R."),
                VNP_EUNSUPPORTED, "big-endian numpy scalar");
    expect_fail(PK("c_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82\xacX\x06\x00\x00\x00latin1\x86R."),
                VNP_EFORMAT, "_codecs.encode: text is not latin-1");
    expect_fail(PK("c_codecs\nencode\nX\x01\x00\x00\x00" "aX\x05\x00\x00\x00utf-8\x86R."),
                VNP_EFORMAT, "_codecs.encode needs (str, 'latin1')");
}

/* storage '0': F32 [0, 1, ..., 11]; a tensor view over it is built per test */
static float g_storage[12];

static vnp_code storage_fn(void *ctx, const vnp_pk_value *st, const uint8_t **data, vnp_error *err)
{
    (void)ctx;
    if (strcmp(st->storage.key, "0") != 0 || st->storage.numel > 12)
        return vnp_fail(err, VNP_EFORMAT, "no storage '%s'", st->storage.key);
    *data = (const uint8_t *)g_storage;
    return VNP_OK;
}

/* A pickle {"w": _rebuild_tensor_v2(storage('0', FloatStorage, numel), off, size, stride)} */
static size_t tensor_pickle(uint8_t *out, int numel, int off, int nd, const int *size,
                            const int *stride)
{
    size_t n = 0;
#define EMIT(s) (memcpy(out + n, s, sizeof(s) - 1), n += sizeof(s) - 1)
#define BYTE(b) (out[n++] = (uint8_t)(b))
    EMIT("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
         "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK");
    BYTE(numel);
    EMIT("tQK");
    BYTE(off);
    EMIT("(");
    for (int i = 0; i < nd; i++)
        BYTE('K'), BYTE(size[i]);
    EMIT("t(");
    for (int i = 0; i < nd; i++)
        BYTE('K'), BYTE(stride[i]);
    EMIT("t\x89" "ccollections\nOrderedDict\n)RtRs.");
#undef EMIT
#undef BYTE
    return n;
}

static vnp_code flatten(const uint8_t *p, size_t n, vnp_tensor_map **m, vnp_error *e)
{
    vnp_pickle pk;
    *m = NULL;
    vnp_code rc = vnp_pickle_load(p, n, "t.pkl", &pk, e);
    if (rc)
        return rc;
    *m = vnp_tensor_map_new();
    rc = vnp_pickle_flatten(pk.root, "t.pth", storage_fn, NULL, *m, e);
    vnp_pickle_free(&pk);
    return rc;
}

static void test_tensor_views(void **state)
{
    (void)state;
    for (int i = 0; i < 12; i++)
        g_storage[i] = (float)i;
    uint8_t buf[512];
    vnp_tensor_map *m;
    vnp_error e;
    /* contiguous [2, 3] at offset 2: points into the storage */
    size_t n = tensor_pickle(buf, 12, 2, 2, (int[]){2, 3}, (int[]){3, 1});
    assert_int_equal(flatten(buf, n, &m, &e), VNP_OK);
    const vnp_tensor *t = vnp_tensor_map_get(m, "w");
    assert_ptr_equal(t->data, &g_storage[2]);
    assert_int_equal(t->nbytes, 24);
    vnp_tensor_map_free(m);
    /* transposed [3, 4] of a [4, 3] storage: gathered */
    n = tensor_pickle(buf, 12, 0, 2, (int[]){3, 4}, (int[]){1, 3});
    assert_int_equal(flatten(buf, n, &m, &e), VNP_OK);
    t = vnp_tensor_map_get(m, "w");
    const float *f = t->data;
    static const float want[12] = {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11};
    assert_memory_equal(f, want, sizeof want);
    vnp_tensor_map_free(m);
    /* size-1 dimension with an arbitrary stride is still contiguous */
    n = tensor_pickle(buf, 12, 1, 2, (int[]){1, 4}, (int[]){99, 1});
    assert_int_equal(flatten(buf, n, &m, &e), VNP_OK);
    assert_ptr_equal(vnp_tensor_map_get(m, "w")->data, &g_storage[1]);
    vnp_tensor_map_free(m);
    /* expanded: [3, 4] from one row of 4 (stride 0) */
    n = tensor_pickle(buf, 4, 0, 2, (int[]){3, 4}, (int[]){0, 1});
    assert_int_equal(flatten(buf, n, &m, &e), VNP_OK);
    f = vnp_tensor_map_get(m, "w")->data;
    assert_true(f[0] == 0 && f[4] == 0 && f[11] == 3);
    vnp_tensor_map_free(m);
    /* a view reaching past its storage */
    n = tensor_pickle(buf, 12, 4, 2, (int[]){3, 3}, (int[]){3, 1});
    assert_int_equal(flatten(buf, n, &m, &e), VNP_EFORMAT);
    assert_string_equal(e.msg, "t.pth: tensor 'w': the view (offset 4, 9 elements) reaches element "
                               "12 but storage '0' holds 12; the file is corrupt");
    vnp_tensor_map_free(m);
    /* size and stride of different lengths */
    const uint8_t bad[] = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
                          "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x0ctQK\x00"
                          "(K\x02t(K\x01K\x01t\x89NtR.";
    vnp_pickle pk;
    assert_int_equal(vnp_pickle_load(bad, sizeof bad - 1, "t.pkl", &pk, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "size has 1 dimensions but stride has 2"));
}

static void test_module_tree(void **state)
{
    (void)state;
    for (int i = 0; i < 12; i++)
        g_storage[i] = (float)i;
    /* __main__.Net with _parameters {w}, a non-persistent buffer, a submodule
     * "sub" (torch.nn.modules.linear.Linear) with attributes, and private fields */
    const uint8_t q[] =
        "\x80\x02" "c__main__\nNet\n)\x81}("
        "X\x08\x00\x00\x00training\x88"
        "X\x03\x00\x00\x00" "eps" "G\x3e\xe4\xf8\xb5\x88\xe3\x68\xf1"
        "X\x05\x00\x00\x00_hidd" "K\x01"
        "X\x0b\x00\x00\x00_parameters}(X\x01\x00\x00\x00w"
        "ctorch._utils\n_rebuild_parameter\nctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x0ctQ"
        "K\x00(K\x02t(K\x01t\x89NtR\x88N\x87R"
        "X\x01\x00\x00\x00" "bNu"
        "X\x08\x00\x00\x00_buffers}(X\x03\x00\x00\x00tmp"
        "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x0ctQ"
        "K\x03(K\x01t(K\x01t\x89NtR"
        "X\x04\x00\x00\x00keep"
        "ctorch._utils\n_rebuild_tensor_v2\n"
        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x0ctQ"
        "K\x04(K\x01t(K\x01t\x89NtRu"
        "X\x1b\x00\x00\x00_non_persistent_buffers_set" "c__builtin__\nset\n](X\x03\x00\x00\x00tmpe\x85R"
        "X\x08\x00\x00\x00_modules}(X\x03\x00\x00\x00sub"
        "ctorch.nn.modules.linear\nLinear\n)\x81}("
        "X\x0b\x00\x00\x00_parameters}X\x08\x00\x00\x00_modules}"
        "X\x0b\x00\x00\x00in_features" "K\x05" "X\x04\x00\x00\x00mode" "X\x02\x00\x00\x00" "ab"
        "ub"
        "X\x04\x00\x00\x00none" "N"
        "u"
        "ub.";
    vnp_tensor_map *m;
    vnp_error e;
    if (flatten(q, sizeof q - 1, &m, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(vnp_tensor_map_count(m), 2);
    assert_string_equal(vnp_tensor_map_at(m, 0)->name, "w");
    assert_string_equal(vnp_tensor_map_at(m, 1)->name, "keep");
    assert_ptr_equal(vnp_tensor_map_at(m, 1)->data, &g_storage[4]);
    double v;
    assert_int_equal(vnp_tensor_map_num(m, "eps", &v), 1);
    assert_true(v == 1e-5);
    assert_int_equal(vnp_tensor_map_num(m, "sub.in_features", &v), 1);
    assert_true(v == 5);
    assert_string_equal(vnp_tensor_map_str(m, "sub.mode"), "ab");
    assert_int_equal(vnp_tensor_map_num(m, "training", &v), 0);
    assert_int_equal(vnp_tensor_map_num(m, "_hidd", &v), 0);
    assert_int_equal(vnp_tensor_map_attr_count(m), 3);
    vnp_tensor_map_free(m);
}

static void test_cycles_and_amplification(void **state)
{
    (void)state;
    vnp_tensor_map *m;
    vnp_error e;
    /* a list that contains itself */
    assert_int_equal(flatten(PK("]q\x00h\x00" "a."), &m, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "nest deeper than 64 levels"));
    vnp_tensor_map_free(m);
    /* 2^40 paths through 40 doubly-shared lists: stopped by the visit budget */
    uint8_t buf[1024];
    size_t n = 0;
    buf[n++] = 'K', buf[n++] = 1;
    for (int i = 0; i < 40; i++)
        buf[n++] = '2', buf[n++] = 0x86; /* DUP, TUPLE2: (x, x) */
    buf[n++] = '.';
    assert_int_equal(flatten(buf, n, &m, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "reaches more than 1048576 values"));
    vnp_tensor_map_free(m);
}

/* Found by fuzzing: a numpy dtype whose type string has an embedded NUL ("\0" "8")
 * made the scalar decoder read past the string. It must be refused, naming it. */
static void test_numpy_dtype_with_nul(void **state)
{
    (void)state;
    expect_fail(PK("\x80\x02" "cnumpy.core.multiarray\nscalar\n" "cnumpy\ndtype\n"
                   "X\x02\x00\x00\x00\x00" "8" "\x89\x88\x87" "R"
                   "X\x01\x00\x00\x00" "A" "\x86" "R."),
                VNP_EUNSUPPORTED, "numpy scalar of type");
    size_t n = 0;
    char *crash = vnp_test_read_file(vnp_test_fixture("fuzz_regressions/pickle_numpy_empty_dtype.pkl"), &n);
    assert_non_null(crash);
    vnp_pickle pk;
    vnp_error e;
    assert_int_not_equal(vnp_pickle_load((const uint8_t *)crash, n, "t.pkl", &pk, &e), VNP_OK);
    assert_null(pk.root);
    free(crash);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numpy_dtype_with_nul),
        cmocka_unit_test(test_scalars),           cmocka_unit_test(test_strings_and_containers),
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_tensor_views),
        cmocka_unit_test(test_module_tree),       cmocka_unit_test(test_cycles_and_amplification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
