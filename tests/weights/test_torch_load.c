/* PyTorch zip checkpoints: every golden file against what PyTorch itself reads, the
 * safetensors/pickle twins bit for bit, the classifier's module tree and attributes,
 * the fair-esm cfg, and damaged archives. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "test_support.h"
#include "virnucpro/weights.h"

static vnp_tensor_map *load_ok(const char *path)
{
    vnp_error e;
    vnp_tensor_map *m = NULL;
    vnp_code rc = vnp_checkpoint_load(path, &m, &e);
    if (rc)
        fail_msg("%s: %s", path, e.msg);
    assert_non_null(m);
    return m;
}

/* What PyTorch reads from every file the tests compare against (one run of
 * tools/weights/dump_checkpoint.py), after tools/weights/make_views.py has written the
 * extra checkpoints into VNP_TMP/views. */
static char *g_reference;

static const char *const k_reference_files[] = {
    "golden/classifier.pth",
    "golden/classifier_cuda.pth",
    "golden/classifier_torch1.13.pth",
    "golden/esm2_bin/pytorch_model.bin",
    "golden/esm2_fairesm/esm2_t3_test_UR50D.pt",
    "golden/dnabert_s/pytorch_model.bin",
    "views/views_p2.pth",
    "views/views_p4.pth",
    "views/views_p5.pth",
    "views/expanded.pth",
};

static const char *ref_path(const char *rel)
{
    return strncmp(rel, "golden/", 7) == 0 ? vnp_test_fixture(rel) : vnp_test_tmp(rel);
}

static int make_reference(void **state)
{
    (void)state;
    const char *py = getenv("VNP_PYTHON"), *src = getenv("VNP_SOURCE_DIR");
    if (!py || !src) {
        fprintf(stderr, "VNP_PYTHON and VNP_SOURCE_DIR must be set\n");
        return -1;
    }
    char cmd[16384];
    int off = snprintf(cmd, sizeof cmd,
                       "'%s' '%s/tools/weights/make_views.py' '%s' && '%s' "
                       "'%s/tools/weights/dump_checkpoint.py'",
                       py, src, vnp_test_tmp("views"), py, src);
    for (size_t i = 0; i < sizeof k_reference_files / sizeof *k_reference_files; i++)
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " '%s'",
                        ref_path(k_reference_files[i]));
    char *errs = NULL;
    int status = vnp_test_run(cmd, &g_reference, &errs);
    if (status != 0) {
        fprintf(stderr, "reference tools failed (%d): %s\n", status, errs ? errs : "");
        free(errs);
        return -1;
    }
    free(errs);
    return 0;
}

static int free_reference(void **state)
{
    (void)state;
    free(g_reference);
    return 0;
}

/* Compares our map with PyTorch's listing of `rel`: same tensors in the same order, same
 * dtype, shape and bytes (CRC-32). */
static void check_against_torch(const char *rel)
{
    const char *path = ref_path(rel);
    char header[4200];
    snprintf(header, sizeof header, "# %s\n", path);
    const char *sec = strstr(g_reference, header);
    if (!sec)
        fail_msg("no reference listing for %s", path);
    sec += strlen(header);
    const char *sec_end = strstr(sec, "\n# ");
    size_t sec_len = sec_end ? (size_t)(sec_end - sec + 1) : strlen(sec);
    char *listing = strndup(sec, sec_len);
    assert_non_null(listing);
    vnp_tensor_map *m = load_ok(path);
    size_t i = 0;
    char *save = NULL;
    for (char *line = strtok_r(listing, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        assert_true(i < vnp_tensor_map_count(m));
        const vnp_tensor *t = vnp_tensor_map_at(m, i);
        char shape[128], mine[1024];
        uLong crc = crc32(0L, t->data, (uInt)t->nbytes);
        snprintf(mine, sizeof mine, "%s\t%s\t%s\t%08lx", t->name, vnp_dtype_name(t->dtype),
                 vnp_shape_str(t->shape, t->ndim, shape, sizeof shape), (unsigned long)crc);
        if (strcmp(line, mine) != 0)
            fail_msg("%s tensor %zu:\n torch: %s\n ours:  %s", rel, i, line, mine);
    }
    assert_true(i > 0);
    assert_int_equal(i, vnp_tensor_map_count(m));
    vnp_tensor_map_free(m);
    free(listing);
}

static void test_golden_against_torch(void **state)
{
    (void)state;
    check_against_torch("golden/classifier.pth");
    check_against_torch("golden/classifier_cuda.pth");
    check_against_torch("golden/classifier_torch1.13.pth");
    check_against_torch("golden/esm2_bin/pytorch_model.bin");
    check_against_torch("golden/esm2_fairesm/esm2_t3_test_UR50D.pt");
    check_against_torch("golden/dnabert_s/pytorch_model.bin");
}

/* Strided and offset views, every dtype, nested containers, pickle protocols 2, 4, 5,
 * and an expand()ed view, each against PyTorch. */
static void test_views_against_torch(void **state)
{
    (void)state;
    check_against_torch("views/views_p2.pth");
    check_against_torch("views/views_p4.pth");
    check_against_torch("views/views_p5.pth");
    check_against_torch("views/expanded.pth");
    vnp_tensor_map *m = load_ok(vnp_test_tmp("views/views_p4.pth"));
    const vnp_tensor *base = vnp_tensor_map_get(m, "base"), *rows = vnp_tensor_map_get(m, "rows");
    /* a contiguous view with a storage offset points into the same storage bytes */
    assert_ptr_equal((const float *)rows->data, (const float *)base->data + 10);
    double v;
    assert_int_equal(vnp_tensor_map_num(m, "count", &v), 1);
    assert_true(v == 5);
    assert_int_equal(vnp_tensor_map_num(m, "rate", &v), 1);
    assert_true(v == 2.5);
    assert_int_equal(vnp_tensor_map_num(m, "flag", &v), 1);
    assert_true(v == 1);
    assert_int_equal(vnp_tensor_map_num(m, "nested.n", &v), 1);
    assert_true(v == 7);
    assert_int_equal(vnp_tensor_map_num(m, "size.1", &v), 1);
    assert_true(v == 3);
    assert_string_equal(vnp_tensor_map_str(m, "name"), "hello");
    assert_string_equal(vnp_tensor_map_str(m, "device"), "cuda:0");
    assert_string_equal(vnp_tensor_map_str(m, "dtype"), "torch.float16");
    /* numpy scalars (numpy.dtype + scalar + _codecs.encode in protocol 2) */
    static const struct {
        const char *key;
        double v;
    } np_want[] = {{"numpy.f8", 0.25}, {"numpy.f4", -1.5}, {"numpy.f2", 2.0},
                   {"numpy.i8", -3},   {"numpy.i2", -7},   {"numpy.u1", 200},
                   {"numpy.b1", 1}};
    for (int p = 2; p <= 5; p += 2) { /* protocols 2 and 4 */
        char rel[64];
        snprintf(rel, sizeof rel, "views/views_p%d.pth", p);
        vnp_tensor_map *mp = load_ok(vnp_test_tmp(rel));
        for (size_t i = 0; i < sizeof np_want / sizeof np_want[0]; i++) {
            if (vnp_tensor_map_num(mp, np_want[i].key, &v) != 1 || v != np_want[i].v)
                fail_msg("%s: %s is not %g", rel, np_want[i].key, np_want[i].v);
        }
        vnp_tensor_map_free(mp);
    }
    assert_int_equal(vnp_tensor_map_num(m, "nothing", &v), 0);
    assert_null(vnp_tensor_map_str(m, "nothing"));
    const vnp_tensor *e = vnp_tensor_map_get(m, "empty");
    assert_int_equal(e->nbytes, 0);
    assert_int_equal(e->shape[1], 4);
    vnp_tensor_map_free(m);

    vnp_error err;
    m = (vnp_tensor_map *)1;
    assert_int_equal(vnp_torch_load(vnp_test_tmp("views/legacy.pth"), &m, &err), VNP_EUNSUPPORTED);
    assert_null(m);
    assert_non_null(strstr(err.msg, "legacy (pre-1.6, non-zip)"));
    assert_int_equal(vnp_torch_load(vnp_test_tmp("views/torchscript.pt"), &m, &err),
                     VNP_EUNSUPPORTED);
    assert_null(m);
    assert_non_null(strstr(err.msg, "is a TorchScript archive (torch.jit.save)"));
    assert_non_null(strstr(err.msg, "global '__torch__."));
}

/* Walks dir: every checkpoint file (.safetensors .bin .pth .pt) must load with tensors. */
static size_t load_all_under(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        DIR *sub = opendir(path);
        if (sub) {
            closedir(sub);
            n += load_all_under(path);
            continue;
        }
        const char *ext = strrchr(e->d_name, '.');
        if (!ext || (strcmp(ext, ".safetensors") && strcmp(ext, ".bin") && strcmp(ext, ".pth") &&
                     strcmp(ext, ".pt")))
            continue;
        vnp_tensor_map *m = load_ok(path);
        assert_true(vnp_tensor_map_count(m) > 0);
        vnp_tensor_map_free(m);
        n++;
    }
    closedir(d);
    return n;
}

static void test_every_golden_checkpoint_loads(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", vnp_test_fixture("golden"));
    /* esm2, esm2_bin, esm2_fairesm, dnabert_s, 3 classifiers, expected/tensors */
    assert_true(load_all_under(dir) >= 8);
}

static void test_safetensors_equals_pickle(void **state)
{
    (void)state;
    vnp_tensor_map *a = load_ok(vnp_test_fixture("golden/esm2/model.safetensors"));
    vnp_tensor_map *b = load_ok(vnp_test_fixture("golden/esm2_bin/pytorch_model.bin"));
    assert_int_equal(vnp_tensor_map_count(a), 61);
    assert_int_equal(vnp_tensor_map_count(a), vnp_tensor_map_count(b));
    for (size_t i = 0; i < vnp_tensor_map_count(a); i++) {
        const vnp_tensor *x = vnp_tensor_map_at(a, i);
        const vnp_tensor *y = vnp_tensor_map_get(b, x->name);
        if (!y)
            fail_msg("'%s' missing from pytorch_model.bin", x->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        assert_memory_equal(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    vnp_tensor_map_free(a);
    vnp_tensor_map_free(b);
}

static void check_classifier(const char *rel)
{
    static const struct {
        const char *name;
        vnp_dtype dt;
        int ndim;
        int64_t d0, d1;
    } want[] = {
        {"hidden_layer.weight", VNP_DT_F32, 2, 32, 256}, {"hidden_layer.bias", VNP_DT_F32, 1, 32, 0},
        {"bn1.weight", VNP_DT_F32, 1, 32, 0},            {"bn1.bias", VNP_DT_F32, 1, 32, 0},
        {"bn1.running_mean", VNP_DT_F32, 1, 32, 0},      {"bn1.running_var", VNP_DT_F32, 1, 32, 0},
        {"bn1.num_batches_tracked", VNP_DT_I64, 0, 0, 0}, {"output_layer.weight", VNP_DT_F32, 2, 2, 32},
        {"output_layer.bias", VNP_DT_F32, 1, 2, 0},
    };
    vnp_tensor_map *m = load_ok(vnp_test_fixture(rel));
    assert_int_equal(vnp_tensor_map_count(m), 9);
    for (size_t i = 0; i < 9; i++) {
        const vnp_tensor *t = vnp_tensor_map_at(m, i);
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->dtype, want[i].dt);
        assert_int_equal(t->ndim, want[i].ndim);
        if (t->ndim > 0)
            assert_int_equal(t->shape[0], want[i].d0);
        if (t->ndim > 1)
            assert_int_equal(t->shape[1], want[i].d1);
        assert_int_equal((uintptr_t)t->data % vnp_dtype_size(t->dtype), 0);
    }
    const vnp_tensor *nbt = vnp_tensor_map_get(m, "bn1.num_batches_tracked");
    assert_int_equal(nbt->nbytes, 8);
    double v;
    assert_int_equal(vnp_tensor_map_num(m, "bn1.eps", &v), 1);
    assert_true(v == 1e-5);
    assert_int_equal(vnp_tensor_map_num(m, "bn1.momentum", &v), 1);
    assert_true(v == 0.1);
    assert_int_equal(vnp_tensor_map_num(m, "dropout.p", &v), 1);
    assert_true(v == 0.5);
    assert_int_equal(vnp_tensor_map_num(m, "hidden_layer.in_features", &v), 1);
    assert_true(v == 256);
    assert_int_equal(vnp_tensor_map_num(m, "bn1.track_running_stats", &v), 1);
    assert_true(v == 1);
    assert_int_equal(vnp_tensor_map_num(m, "training", &v), 0);
    assert_int_equal(vnp_tensor_map_num(m, "bn1.training", &v), 0);
    vnp_tensor_map_free(m);
}

static void test_classifier_variants(void **state)
{
    (void)state;
    check_classifier("golden/classifier.pth");
    check_classifier("golden/classifier_cuda.pth");
    check_classifier("golden/classifier_torch1.13.pth");
}

static void test_fairesm(void **state)
{
    (void)state;
    vnp_tensor_map *m = load_ok(vnp_test_fixture("golden/esm2_fairesm/esm2_t3_test_UR50D.pt"));
    double v;
    assert_int_equal(vnp_tensor_map_num(m, "cfg.model.encoder_layers", &v), 1);
    assert_true(v == 3);
    assert_int_equal(vnp_tensor_map_num(m, "cfg.model.encoder_embed_dim", &v), 1);
    assert_true(v == 128);
    assert_int_equal(vnp_tensor_map_num(m, "cfg.model.encoder_ffn_embed_dim", &v), 1);
    assert_true(v == 512);
    assert_int_equal(vnp_tensor_map_num(m, "cfg.model.encoder_attention_heads", &v), 1);
    assert_true(v == 2);
    assert_int_equal(vnp_tensor_map_num(m, "cfg.model.token_dropout", &v), 1);
    assert_true(v == 1);
    assert_string_equal(vnp_tensor_map_str(m, "cfg.model.arch"), "ESM-1b");
    const vnp_tensor *t = vnp_tensor_map_get(m, "model.encoder.sentence_encoder.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 33);
    assert_int_equal(t->shape[1], 128);
    assert_non_null(vnp_tensor_map_get(
        m, "model.encoder.sentence_encoder.layers.2.self_attn.rot_emb.inv_freq"));
    /* the same weights as the hub layout */
    vnp_tensor_map *h = load_ok(vnp_test_fixture("golden/esm2/model.safetensors"));
    const vnp_tensor *u = vnp_tensor_map_get(h, "esm.embeddings.word_embeddings.weight");
    assert_int_equal(u->nbytes, t->nbytes);
    assert_memory_equal(u->data, t->data, t->nbytes);
    vnp_tensor_map_free(h);
    vnp_tensor_map_free(m);
}

/* ---- damaged archives: byte patches of classifier.pth ---- */

static char *read_fixture(const char *rel, size_t *len)
{
    char *b = vnp_test_read_file(vnp_test_fixture(rel), len);
    assert_non_null(b);
    return b;
}

/* The central directory record of entry `name`. */
static uint8_t *central(char *buf, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 46 + nl <= len; i++) {
        uint8_t *p = (uint8_t *)buf + i;
        if (p[0] == 'P' && p[1] == 'K' && p[2] == 1 && p[3] == 2 && p[28] == (nl & 0xff) &&
            p[29] == nl >> 8 && memcmp(p + 46, name, nl) == 0)
            return p;
    }
    fail_msg("no central entry %s", name);
    return NULL;
}

static char *find_bytes(char *buf, size_t len, const char *what)
{
    size_t n = strlen(what);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, what, n) == 0)
            return buf + i;
    return NULL;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void expect_torch_fail(const char *name, const void *buf, size_t len, vnp_code code,
                              const char *s1, const char *s2)
{
    const char *path = vnp_test_tmp(name);
    assert_int_equal(vnp_test_write_file(path, buf, len), 0);
    vnp_error e;
    vnp_tensor_map *m = (vnp_tensor_map *)1;
    vnp_code rc = vnp_checkpoint_load(path, &m, &e);
    if (rc != code)
        fail_msg("%s: expected %s, got %s: %s", name, vnp_code_name(code), vnp_code_name(rc),
                 rc ? e.msg : "");
    assert_null(m);
    if (!strstr(e.msg, path) || (s1 && !strstr(e.msg, s1)) || (s2 && !strstr(e.msg, s2)))
        fail_msg("%s: message '%s' lacks '%s' / '%s'", name, e.msg, s1 ? s1 : "", s2 ? s2 : "");
}

static void test_damaged_archives(void **state)
{
    (void)state;
    size_t len;
    char *orig = read_fixture("golden/classifier.pth", &len);
    char *b = malloc(len);
    assert_non_null(b);

    memcpy(b, orig, len);
    central(b, len, "classifier/data/0")[10] = 8; /* deflated */
    expect_torch_fail("deflate.pth", b, len, VNP_EUNSUPPORTED, "tensor 'hidden_layer.weight': zip entry 'classifier/data/0' is compressed",
                      "zip -0");

    memcpy(b, orig, len);
    central(b, len, "classifier/data/3")[8] |= 1;
    expect_torch_fail("crypt.pth", b, len, VNP_EUNSUPPORTED, "tensor 'bn1.bias': zip entry 'classifier/data/3' is encrypted",
                      NULL);

    memcpy(b, orig, len);
    central(b, len, "classifier/data/4")[46 + 16] = 'x'; /* rename the storage */
    expect_torch_fail("missing.pth", b, len, VNP_EFORMAT, "tensor 'bn1.running_mean': storage '4'",
                      "'classifier/data/4') is missing");

    memcpy(b, orig, len);
    uint8_t *c = central(b, len, "classifier/data/1");
    put32(c + 20, 64);
    put32(c + 24, 64);
    expect_torch_fail("short.pth", b, len, VNP_EFORMAT,
                      "tensor 'hidden_layer.bias': storage '1' has 64 bytes but 32 F32 elements need 128", NULL);

    memcpy(b, orig, len);
    c = central(b, len, "classifier/data/2");
    put32(c + 42, (uint32_t)len - 10);
    expect_torch_fail("offset.pth", b, len, VNP_EFORMAT, "tensor 'bn1.weight': zip entry 'classifier/data/2': no local header",
                      NULL);

    memcpy(b, orig, len);
    c = central(b, len, "classifier/data/0");
    put32(c + 20, (uint32_t)len);
    put32(c + 24, (uint32_t)len);
    expect_torch_fail("past.pth", b, len, VNP_EFORMAT, "tensor 'hidden_layer.weight': zip entry 'classifier/data/0'",
                      "runs past the end of the file");

    memcpy(b, orig, len);
    c = central(b, len, "classifier/byteorder");
    put32(c + 20, 3);
    put32(c + 24, 3);
    uint8_t *data = (uint8_t *)find_bytes(b, len, "little");
    assert_non_null(data);
    memcpy(data, "big", 3);
    expect_torch_fail("big.pth", b, len, VNP_EUNSUPPORTED, "big-endian", NULL);

    memcpy(b, orig, len);
    char *pk = find_bytes(b, len, "hidden_layer");
    assert_non_null(pk);
    pk[0] = 'H'; /* data.pkl no longer matches its CRC-32 */
    expect_torch_fail("crc.pth", b, len, VNP_EINTEGRITY, "classifier/data.pkl: CRC-32 mismatch",
                      NULL);

    expect_torch_fail("trunc.pth", orig, len / 2, VNP_EFORMAT, "end-of-central-directory",
                      "truncated");
    expect_torch_fail("trunc2.pth", orig, len - 30, VNP_EFORMAT, "end-of-central-directory",
                      NULL);
    expect_torch_fail("legacy.pth", "\x80\x02\x8a\x0alegacy", 10, VNP_EUNSUPPORTED,
                      "legacy (pre-1.6, non-zip)", NULL);
    expect_torch_fail("text.pth", "hello world, not a model", 24, VNP_EFORMAT,
                      "neither a safetensors file nor a PyTorch zip checkpoint", NULL);
    vnp_error e;
    vnp_tensor_map *m = (vnp_tensor_map *)1;
    assert_int_equal(vnp_checkpoint_load(vnp_test_fixture("golden/esm2"), &m, &e), VNP_EINVAL);
    assert_null(m);
    assert_non_null(strstr(e.msg, "golden/esm2 is a directory; give the checkpoint file itself"));
    assert_int_equal(vnp_torch_load(vnp_test_fixture("golden/esm2"), &m, &e), VNP_EIO);
    assert_non_null(strstr(e.msg, "golden/esm2: not a regular file"));
    assert_int_equal(vnp_checkpoint_load(vnp_test_tmp("nothing-here.pth"), &m, &e), VNP_ENOTFOUND);
    free(b);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_against_torch), cmocka_unit_test(test_views_against_torch),
        cmocka_unit_test(test_every_golden_checkpoint_loads),
        cmocka_unit_test(test_safetensors_equals_pickle),
        cmocka_unit_test(test_classifier_variants),  cmocka_unit_test(test_fairesm),
        cmocka_unit_test(test_damaged_archives),
    };
    return cmocka_run_group_tests(tests, make_reference, free_reference);
}
