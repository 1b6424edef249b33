/* ESM-2 alphabet: ids, EsmTokenizer's splitting of unknown characters, vocab.txt check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/tok.h"

/* Encodes s and compares with the expected ids (terminated by -1). */
static void expect(const char *s, size_t len, const int32_t *want)
{
    vnp_ids ids = {0};
    vnp_error err;
    assert_int_equal(vnp_esm_encode(s, len, &ids, &err), VNP_OK);
    size_t n = 0;
    while (want[n] >= 0)
        n++;
    if (ids.n != n || memcmp(ids.v, want, n * sizeof *want)) {
        fprintf(stderr, "ESM ids of '%.*s':", (int)len, s);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", ids.v[i]);
        fputc('\n', stderr);
        fail();
    }
    vnp_ids_free(&ids);
}

#define EXPECT(s, ...) expect(s, sizeof(s) - 1, (const int32_t[]){__VA_ARGS__, -1})

static void test_residues(void **state)
{
    (void)state;
    EXPECT("MKTA", 0, 20, 15, 11, 5, 2);
    EXPECT("", 0, 2);
    EXPECT("LAGVSERTIDPKQNFYMHWCXBUZO.-", 0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
           18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 2);
}

static void test_every_token_spelled_out(void **state)
{
    (void)state;
    assert_null(vnp_esm_token(-1));
    assert_null(vnp_esm_token(VNP_ESM_VOCAB));
    assert_string_equal(vnp_esm_token(VNP_ESM_CLS), "<cls>");
    assert_string_equal(vnp_esm_token(VNP_ESM_MASK), "<mask>");
    for (int32_t id = 0; id < VNP_ESM_VOCAB; id++) {
        const char *t = vnp_esm_token(id);
        expect(t, strlen(t), (const int32_t[]){0, id, 2, -1});
    }
}

static void test_unknown_runs_are_one_unk(void **state)
{
    (void)state;
    /* As EsmTokenizer: text between tokens is split on whitespace and each piece
     * that is not a token is one <unk>. */
    EXPECT("MKa*QL", 0, 20, 15, 3, 16, 4, 2);
    EXPECT("mkql", 0, 3, 2);
    EXPECT("M*", 0, 20, 3, 2);
    EXPECT("**", 0, 3, 2);
    EXPECT("a b", 0, 3, 3, 2);
    EXPECT("1A2", 0, 3, 5, 3, 2);
    EXPECT("<mas", 0, 3, 2);
    EXPECT("<<mask>>", 0, 3, 32, 3, 2);
    EXPECT("a<cls>b", 0, 3, 0, 3, 2);
}

static void test_whitespace(void **state)
{
    (void)state;
    EXPECT(" M K\tQ\n", 0, 20, 15, 16, 2);
    EXPECT("A\x1c" "B", 0, 5, 25, 2);               /* Python's str.split() separators */
    EXPECT("a\xc2\xa0" "b", 0, 3, 3, 2);             /* U+00A0 separates */
    EXPECT("a\xe3\x80\x80" "b", 0, 3, 3, 2);         /* U+3000 separates */
    EXPECT("a\xc3\xa9" "b", 0, 3, 2);                /* U+00E9 is no space */
    EXPECT("a\xff" "b", 0, 3, 2);                    /* a byte that is not UTF-8 */
    EXPECT("a\0b", 0, 3, 2);
}

static void test_appends(void **state)
{
    (void)state;
    vnp_ids ids = {0};
    assert_int_equal(vnp_esm_encode("MK", 2, &ids, NULL), VNP_OK);
    assert_int_equal(vnp_esm_encode("A", 1, &ids, NULL), VNP_OK);
    const int32_t want[] = {0, 20, 15, 2, 0, 5, 2};
    assert_int_equal(ids.n, 7);
    assert_memory_equal(ids.v, want, sizeof want);
    /* a long protein grows the array */
    size_t n = 100000;
    char *p = malloc(n);
    memset(p, 'W', n);
    ids.n = 0;
    assert_int_equal(vnp_esm_encode(p, n, &ids, NULL), VNP_OK);
    assert_int_equal(ids.n, n + 2);
    assert_int_equal(ids.v[n], 22);
    assert_int_equal(ids.v[n + 1], 2);
    free(p);
    vnp_ids_free(&ids);
    assert_null(ids.v);
}

static void test_check_vocab(void **state)
{
    (void)state;
    vnp_error err;
    assert_int_equal(vnp_esm_check_vocab(vnp_test_fixture("golden/esm2/vocab.txt"), &err),
                     VNP_OK);
    size_t len;
    char *v = vnp_test_read_file(vnp_test_fixture("golden/esm2/vocab.txt"), &len);
    assert_non_null(v);
    /* swap L and A (lines 5 and 6) */
    char *l = strstr(v, "\nL\nA\n");
    assert_non_null(l);
    l[1] = 'A', l[3] = 'L';
    const char *bad = vnp_test_tmp("vocab_swapped.txt");
    assert_int_equal(vnp_test_write_file(bad, v, len), 0);
    assert_int_equal(vnp_esm_check_vocab(bad, &err), VNP_EFORMAT);
    assert_non_null(strstr(err.msg, "line 5 is 'A'"));
    assert_non_null(strstr(err.msg, "vocab_swapped.txt"));
    /* truncated */
    const char *shortv = vnp_test_tmp("vocab_short.txt");
    assert_int_equal(vnp_test_write_file(shortv, "<cls>\n<pad>\n", 12), 0);
    assert_int_equal(vnp_esm_check_vocab(shortv, &err), VNP_EFORMAT);
    assert_non_null(strstr(err.msg, "only 2 tokens"));
    assert_int_equal(vnp_esm_check_vocab(vnp_test_tmp("absent.txt"), &err), VNP_EIO);
    assert_non_null(strstr(err.msg, "absent.txt"));
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_residues),
        cmocka_unit_test(test_every_token_spelled_out),
        cmocka_unit_test(test_unknown_runs_are_one_unk),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_check_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
