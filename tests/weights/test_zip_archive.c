/* Zip directory reader: a zip64 rewrite of a golden checkpoint loads bit-identically,
 * and damaged directories fail with exact codes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/weights.h"
#include "weights/zip_archive.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void le(bytes *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)n);
}

/* Rewrites the archive buf with every size and offset in zip64 form: 0xffffffff in the
 * classic fields, real values in zip64 extra fields, a zip64 end record and locator. */
static bytes to_zip64(const uint8_t *buf, size_t len)
{
    vnp_zip z;
    vnp_error e;
    assert_int_equal(vnp_zip_open(buf, len, "src", &z, &e), VNP_OK);
    bytes out = {0};
    uint64_t *offs = calloc(z.count, sizeof *offs);
    assert_non_null(offs);
    for (size_t i = 0; i < z.count; i++) {
        const vnp_zip_entry *en = &z.entries[i];
        const uint8_t *data;
        assert_int_equal(vnp_zip_entry_data(&z, en, &data, &e), VNP_OK);
        size_t nl = strlen(en->name);
        offs[i] = out.n;
        le(&out, 0x04034b50, 4);
        le(&out, 45, 2);
        le(&out, 0, 2);
        le(&out, 0, 2);
        le(&out, 0, 4);
        le(&out, en->crc32, 4);
        le(&out, 0xffffffffu, 4);
        le(&out, 0xffffffffu, 4);
        le(&out, nl, 2);
        le(&out, 20, 2);
        put(&out, en->name, nl);
        le(&out, 1, 2);
        le(&out, 16, 2);
        le(&out, en->size, 8);
        le(&out, en->size, 8);
        put(&out, data, (size_t)en->size);
    }
    uint64_t cd = out.n;
    for (size_t i = 0; i < z.count; i++) {
        const vnp_zip_entry *en = &z.entries[i];
        size_t nl = strlen(en->name);
        le(&out, 0x02014b50, 4);
        le(&out, 45, 2);
        le(&out, 45, 2);
        le(&out, 0, 2);
        le(&out, 0, 2);
        le(&out, 0, 4);
        le(&out, en->crc32, 4);
        le(&out, 0xffffffffu, 4);
        le(&out, 0xffffffffu, 4);
        le(&out, nl, 2);
        le(&out, 28, 2);
        le(&out, 0, 2);
        le(&out, 0, 2);
        le(&out, 0, 2);
        le(&out, 0, 4);
        le(&out, 0xffffffffu, 4);
        put(&out, en->name, nl);
        le(&out, 1, 2);
        le(&out, 24, 2);
        le(&out, en->size, 8);
        le(&out, en->size, 8);
        le(&out, offs[i], 8);
    }
    uint64_t cd_size = out.n - cd, eocd64 = out.n;
    le(&out, 0x06064b50, 4);
    le(&out, 44, 8);
    le(&out, 45, 2);
    le(&out, 45, 2);
    le(&out, 0, 4);
    le(&out, 0, 4);
    le(&out, z.count, 8);
    le(&out, z.count, 8);
    le(&out, cd_size, 8);
    le(&out, cd, 8);
    le(&out, 0x07064b50, 4);
    le(&out, 0, 4);
    le(&out, eocd64, 8);
    le(&out, 1, 4);
    le(&out, 0x06054b50, 4);
    le(&out, 0, 2);
    le(&out, 0, 2);
    le(&out, 0xffff, 2);
    le(&out, 0xffff, 2);
    le(&out, 0xffffffffu, 4);
    le(&out, 0xffffffffu, 4);
    le(&out, 0, 2);
    free(offs);
    vnp_zip_close(&z);
    return out;
}

static vnp_tensor_map *load(const char *path)
{
    vnp_error e;
    vnp_tensor_map *m = NULL;
    if (vnp_torch_load(path, &m, &e))
        fail_msg("%s", e.msg);
    return m;
}

static void test_zip64_equals_classic(void **state)
{
    (void)state;
    const char *src = vnp_test_fixture("golden/esm2_bin/pytorch_model.bin");
    size_t len;
    char *buf = vnp_test_read_file(src, &len);
    assert_non_null(buf);
    bytes z64 = to_zip64((const uint8_t *)buf, len);
    const char *path = vnp_test_tmp("zip64.bin");
    assert_int_equal(vnp_test_write_file(path, z64.p, z64.n), 0);

    /* the rewrite really is zip64: a zip64 end record, and no classic size fields */
    vnp_zip z;
    vnp_error e;
    assert_int_equal(vnp_zip_open(z64.p, z64.n, "z64", &z, &e), VNP_OK);
    assert_true(z.count > 60);
    vnp_zip_close(&z);
    assert_int_equal(z64.p[z64.n - 22 + 10], 0xff);

    vnp_tensor_map *a = load(src), *b = load(path);
    assert_int_equal(vnp_tensor_map_count(a), vnp_tensor_map_count(b));
    for (size_t i = 0; i < vnp_tensor_map_count(a); i++) {
        const vnp_tensor *x = vnp_tensor_map_at(a, i), *y = vnp_tensor_map_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    vnp_tensor_map_free(a);
    vnp_tensor_map_free(b);

    /* a locator pointing past the end, and a zip64 extra field that is cut short */
    size_t loc = z64.n - 22 - 20;
    uint8_t *bad = malloc(z64.n);
    assert_non_null(bad);
    memcpy(bad, z64.p, z64.n);
    bad[loc + 8 + 5] = 0x7f;
    assert_int_equal(vnp_zip_open(bad, z64.n, "bad", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "bad: the zip64 end-of-central-directory locator points outside"));
    memcpy(bad, z64.p, z64.n);
    uint64_t cd = 0;
    for (int i = 7; i >= 0; i--)
        cd = cd << 8 | z64.p[z64.n - 22 - 20 - 56 + 48 + i];
    bad[cd + 46 + strlen("pytorch_model/data.pkl") + 2] = 8; /* extra says 8 bytes, needs 24 */
    assert_int_equal(vnp_zip_open(bad, z64.n, "bad", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "zip entry 'pytorch_model/data.pkl' needs a zip64 extra field"));
    free(bad);
    free(z64.p);
    free(buf);
}

/* PyTorch always ends its archives with a zip64 end record + locator + classic end
 * record; dropping the first two leaves a classic archive with the same directory. */
static uint8_t *classic_copy(const char *buf, size_t len, size_t *out_len)
{
    assert_true(len > 98);
    const uint8_t *z64 = (const uint8_t *)buf + len - 22 - 20 - 56;
    assert_true(z64[0] == 'P' && z64[1] == 'K' && z64[2] == 6 && z64[3] == 6);
    uint8_t *b = malloc(len);
    assert_non_null(b);
    memcpy(b, buf, len - 98);
    memcpy(b + len - 98, buf + len - 22, 22);
    *out_len = len - 76;
    return b;
}

static void test_directory_errors(void **state)
{
    (void)state;
    size_t len, clen;
    char *buf = vnp_test_read_file(vnp_test_fixture("golden/classifier.pth"), &len);
    assert_non_null(buf);
    uint8_t *classic = classic_copy(buf, len, &clen);
    uint8_t *b = malloc(len);
    assert_non_null(b);
    vnp_zip z;
    vnp_error e;
    size_t z64 = len - 22 - 20 - 56, eocd = clen - 22;

    /* the classic archive reads like the original */
    assert_int_equal(vnp_zip_open(classic, clen, "c.pth", &z, &e), VNP_OK);
    assert_int_equal(z.count, 15);
    assert_non_null(vnp_zip_find(&z, "classifier/data/7"));
    vnp_zip_close(&z);
    const char *cpath = vnp_test_tmp("classic.pth");
    assert_int_equal(vnp_test_write_file(cpath, classic, clen), 0);
    vnp_tensor_map *m = NULL;
    assert_int_equal(vnp_torch_load(cpath, &m, &e), VNP_OK);
    assert_int_equal(vnp_tensor_map_count(m), 9);
    vnp_tensor_map_free(m);

    /* zip64 end record: central directory offset, entry count, disk number */
    memcpy(b, buf, len);
    b[z64 + 48 + 2] ^= 0x40;
    assert_int_equal(vnp_zip_open(b, len, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "f.pth: the zip central directory (offset"));
    memcpy(b, buf, len);
    b[z64 + 32] = 200;
    assert_int_equal(vnp_zip_open(b, len, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "claims 200 entries"));
    memcpy(b, buf, len);
    b[z64 + 16] = 1;
    assert_int_equal(vnp_zip_open(b, len, "f.pth", &z, &e), VNP_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "multi-disk"));

    /* classic end record: the same checks */
    memcpy(b, classic, clen);
    b[eocd + 16 + 2] ^= 0x40;
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "f.pth: the zip central directory (offset"));
    memcpy(b, classic, clen);
    b[eocd + 10] = 200;
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "claims 200 entries"));
    memcpy(b, classic, clen);
    b[eocd + 10] = 5; /* fewer entries than there are: the rest is not seen */
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_OK);
    assert_int_equal(z.count, 5);
    vnp_zip_close(&z);
    memcpy(b, classic, clen);
    b[eocd + 12] = 0xff, b[eocd + 13] = 0xff, b[eocd + 14] = 0xff, b[eocd + 15] = 0xff;
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "needs zip64 fields but has no zip64 record"));
    memcpy(b, classic, clen);
    b[eocd + 4] = 1;
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "multi-disk"));
    memcpy(b, classic, clen);
    uint32_t cd = (uint32_t)(b[eocd + 16] | b[eocd + 17] << 8 | b[eocd + 18] << 16 |
                             (uint32_t)b[eocd + 19] << 24);
    b[cd] = 'X'; /* first central record's signature */
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "central directory entry 0 of 15 is missing or damaged"));
    memcpy(b, classic, clen);
    b[cd + 28] = 0xff, b[cd + 29] = 0x7f; /* name length runs past the directory */
    assert_int_equal(vnp_zip_open(b, clen, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "central directory entry 0 runs past the directory"));

    assert_int_equal(vnp_zip_open(classic, 10, "f.pth", &z, &e), VNP_EFORMAT);
    assert_non_null(strstr(e.msg, "no zip end-of-central-directory record"));

    assert_int_equal(vnp_zip_open((const uint8_t *)buf, len, "f.pth", &z, &e), VNP_OK);
    assert_non_null(vnp_zip_find(&z, "classifier/data.pkl"));
    assert_null(vnp_zip_find(&z, "classifier/data.pk"));
    assert_null(vnp_zip_find(&z, "data.pkl"));
    vnp_zip_close(&z);
    free(classic);
    free(b);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zip64_equals_classic),
        cmocka_unit_test(test_directory_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
