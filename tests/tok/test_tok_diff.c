/* Differential test: ≥ 10,000 random DNA strings (ACGT runs of 1–3000 bases with
 * N, lower case, spaces, punctuation, special-token spellings and non-ASCII
 * characters mixed in) and 3,000 protein strings, tokenized here and by the
 * reference tokenizers (tools/tok_diff.py under $VNP_PYTHON: the Hugging Face
 * `tokenizers` package with the real DNABERT-S tokenizer.json, and fair-esm's
 * alphabet). Every id must agree. Fails when $VNP_PYTHON or a package is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/tok.h"

#define SHOW_MAX 5

static void print_escaped(const char *s, size_t n)
{
    size_t lim = n > 160 ? 160 : n;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    if (lim < n)
        fprintf(stderr, "... (%zu bytes)", n);
}

static void print_ids(const char *label, const int32_t *v, size_t n, size_t at)
{
    size_t from = at > 4 ? at - 4 : 0, to = at + 6 < n ? at + 6 : n;
    fprintf(stderr, "    %s (%zu ids) [%zu..]:", label, n, from);
    for (size_t i = from; i < to; i++)
        fprintf(stderr, " %d", v[i]);
    fputc('\n', stderr);
}

static void test_differential(void **state)
{
    (void)state;
    const char *py = getenv("VNP_PYTHON"), *src = getenv("VNP_SOURCE_DIR");
    if (!py || !*py) {
        fprintf(stderr, "VNP_PYTHON is not set: the differential test needs the reference "
                        "python (tokenizers, fair-esm)\n");
        fail();
    }
    assert_non_null(src);
    const char *json = vnp_test_fixture("golden/dnabert_s/tokenizer.json");
    char data_path[4096], cmd[16384];
    snprintf(data_path, sizeof data_path, "%s", vnp_test_tmp("tok_diff.txt"));
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/tok_diff.py' '%s' '%s'", py, src, json, data_path);
    char *out = NULL, *errs = NULL;
    int rc = vnp_test_run(cmd, &out, &errs);
    if (rc != 0) {
        fprintf(stderr, "%s failed (%d):\n%s%s\n", cmd, rc, out ? out : "", errs ? errs : "");
        fail();
    }
    free(out);
    free(errs);

    size_t len;
    char *data = vnp_test_read_file(data_path, &len);
    assert_non_null(data);
    vnp_bpe *bpe;
    vnp_error err;
    assert_int_equal(vnp_bpe_load(json, &bpe, &err), VNP_OK);

    size_t n_dna = 0, n_prot = 0, n_diff = 0, n_bases = 0;
    vnp_ids got = {0}, want = {0};
    char *p = data, *end = data + len;
    while (p < end) {
        /* "<kind> <length>\n" (sscanf's "\n" would also eat leading blanks of the text) */
        char kind = p[0];
        assert_true((kind == 'D' || kind == 'P') && p[1] == ' ');
        char *num_end;
        size_t tlen = (size_t)strtoull(p + 2, &num_end, 10);
        assert_true(num_end > p + 2 && *num_end == '\n');
        const char *text = num_end + 1;
        assert_true(text + tlen < end && text[tlen] == '\n');
        p = (char *)text + tlen + 1;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(eol);
        *eol = '\0';
        want.n = 0;
        for (char *q = p; *q;) {
            char *e;
            long v = strtol(q, &e, 10);
            assert_true(e != q);
            assert_int_equal(vnp_ids_push(&want, (int32_t)v, NULL), VNP_OK);
            q = e;
        }
        p = eol + 1;

        got.n = 0;
        vnp_code c = kind == 'D' ? vnp_bpe_encode(bpe, text, tlen, &got, &err)
                                 : vnp_esm_encode(text, tlen, &got, &err);
        assert_int_equal(c, VNP_OK);
        if (kind == 'D')
            n_dna++, n_bases += tlen;
        else
            n_prot++;
        size_t at = 0;
        while (at < got.n && at < want.n && got.v[at] == want.v[at])
            at++;
        if (at == got.n && at == want.n)
            continue;
        if (++n_diff <= SHOW_MAX) {
            fprintf(stderr, "difference #%zu (%s case, first at id %zu) for input: ", n_diff,
                    kind == 'D' ? "DNA" : "protein", at);
            print_escaped(text, tlen);
            fputc('\n', stderr);
            print_ids("ours     ", got.v, got.n, at);
            print_ids("reference", want.v, want.n, at);
        }
    }
    fprintf(stderr, "tok_diff: %zu DNA cases (%zu bytes), %zu protein cases, %zu differences\n",
            n_dna, n_bases, n_prot, n_diff);
    assert_true(n_dna >= 10000);
    assert_true(n_prot >= 1000);
    assert_int_equal(n_diff, 0);
    vnp_ids_free(&got);
    vnp_ids_free(&want);
    vnp_bpe_free(bpe);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
