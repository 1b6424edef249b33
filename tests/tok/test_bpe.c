/* DNABERT-S BPE: loading tokenizer.json, merge order, unknown characters, the
 * pre-tokenizer, added tokens, the post-processor, both merge schedules, and the
 * errors a bad file gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "tok/bpe_internal.h"
#include "virnucpro/tok.h"

/* A tokenizer.json with the given model fields (vocab, merges, options) and
 * DNABERT-S's added tokens, pre-tokenizer and post-processor unless replaced. */
static char *make_json(const char *model_fields, const char *tail)
{
    static const char *dflt_tail =
        "\"added_tokens\": ["
        "{\"id\":0,\"content\":\"[UNK]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
        "\"normalized\":false,\"special\":true},"
        "{\"id\":1,\"content\":\"[CLS]\",\"normalized\":false,\"special\":true},"
        "{\"id\":2,\"content\":\"[SEP]\",\"normalized\":false,\"special\":true}],"
        "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Whitespace\"},"
        "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
        "{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}},"
        "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
        "{\"SpecialToken\": {\"id\": \"[SEP]\", \"type_id\": 0}}],"
        "\"special_tokens\": {\"[CLS]\": {\"id\": \"[CLS]\", \"ids\": [1], \"tokens\": [\"[CLS]\"]},"
        "\"[SEP]\": {\"id\": \"[SEP]\", \"ids\": [2], \"tokens\": [\"[SEP]\"]}}},"
        "\"truncation\": {\"max_length\": 3}, \"padding\": {\"strategy\": {\"Fixed\": 10}}";
    size_t n = strlen(model_fields) + strlen(tail ? tail : dflt_tail) + 128;
    char *s = malloc(n);
    snprintf(s, n, "{\"version\": \"1.0\", %s, \"model\": {\"type\": \"BPE\", %s}}",
             tail ? tail : dflt_tail, model_fields);
    return s;
}

static const char *VOCAB =
    "\"vocab\": {\"[UNK]\":0, \"[CLS]\":1, \"[SEP]\":2, \"A\":3, \"C\":4, \"G\":5, \"T\":6,"
    " \"AA\":7, \"AAA\":8, \"CG\":9, \"AC\":10, \"ACG\":11, \"TT\":12}";

static vnp_bpe *load(const char *model_fields, const char *tail)
{
    char *json = make_json(model_fields, tail);
    vnp_bpe *b = NULL;
    vnp_error err;
    vnp_code c = vnp_bpe_load_json(json, strlen(json), "test.json", &b, &err);
    if (c)
        fprintf(stderr, "load failed: %s\n", err.msg);
    assert_int_equal(c, VNP_OK);
    free(json);
    return b;
}

static vnp_code load_err(const char *model_fields, const char *tail, vnp_error *err)
{
    char *json = make_json(model_fields, tail);
    vnp_bpe *b = (vnp_bpe *)&b;
    vnp_code c = vnp_bpe_load_json(json, strlen(json), "test.json", &b, err);
    assert_null(b);
    free(json);
    return c;
}

static void expect(const vnp_bpe *b, const char *s, size_t len, const int32_t *want)
{
    vnp_ids ids = {0};
    vnp_error err;
    assert_int_equal(vnp_bpe_encode(b, s, len, &ids, &err), VNP_OK);
    size_t n = 0;
    while (want[n] >= 0)
        n++;
    if (ids.n != n || memcmp(ids.v, want, n * sizeof *want)) {
        fprintf(stderr, "ids of '%.*s':", (int)len, s);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", ids.v[i]);
        fputc('\n', stderr);
        fail();
    }
    vnp_ids_free(&ids);
}

#define EXPECT(b, s, ...) expect(b, s, sizeof(s) - 1, (const int32_t[]){__VA_ARGS__, -1})

static void test_rank_order_and_ties(void **state)
{
    (void)state;
    char fields[1024];
    /* "C G" outranks "A C": ACG -> A CG, not AC G (and no "A CG" merge). */
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"C G\", \"A C\", \"A A\", \"AA A\"]",
             VOCAB);
    vnp_bpe *b = load(fields, NULL);
    assert_true(b->rank_schedule);
    EXPECT(b, "ACG", 1, 3, 9, 2);
    EXPECT(b, "AC", 1, 10, 2);
    /* equal ranks: the leftmost pair first: AAAA -> AA AA, AAA -> AA A -> AAA */
    EXPECT(b, "AAAA", 1, 7, 7, 2);
    EXPECT(b, "AAA", 1, 8, 2);
    EXPECT(b, "AAAAA", 1, 7, 8, 2); /* AA AA A -> AA AAA */
    EXPECT(b, "", 1, 2);
    vnp_bpe_free(b);
    /* "A AA" instead of "AA A": AAA -> AA A stays (the leftmost AA wins the tie) */
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\", \"A AA\"]", VOCAB);
    b = load(fields, NULL);
    EXPECT(b, "AAA", 1, 7, 3, 2);
    vnp_bpe_free(b);
}

static void test_unknown_characters(void **state)
{
    (void)state;
    char fields[1024];
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\", \"C G\"], \"unk_token\": \"[UNK]\"",
             VOCAB);
    vnp_bpe *b = load(fields, NULL);
    /* every character absent from the vocabulary is its own [UNK]; merges do not
     * cross it; lower case and N are absent */
    EXPECT(b, "ANNA", 1, 3, 0, 0, 3, 2);
    EXPECT(b, "AAnAA", 1, 7, 0, 7, 2);
    EXPECT(b, "cg", 1, 0, 0, 2);
    EXPECT(b, "A\xc3\xa9" "A", 1, 3, 0, 3, 2);  /* one [UNK] per character, not per byte */
    EXPECT(b, "A\xff\xfe" "A", 1, 3, 0, 0, 3, 2); /* bytes that are not UTF-8: one each */
    vnp_bpe_free(b);
    snprintf(fields, sizeof fields,
             "%s, \"merges\": [\"A A\"], \"unk_token\": \"[UNK]\", \"fuse_unk\": true", VOCAB);
    b = load(fields, NULL);
    EXPECT(b, "ANNA", 1, 3, 0, 3, 2);
    vnp_bpe_free(b);
    /* no unk_token: unknown characters vanish */
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\"], \"unk_token\": null", VOCAB);
    b = load(fields, NULL);
    EXPECT(b, "ANNA", 1, 7, 2);
    vnp_bpe_free(b);
}

static void test_pre_tokenizer(void **state)
{
    (void)state;
    char fields[1024];
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\", \"T T\"], \"unk_token\": \"[UNK]\"",
             VOCAB);
    vnp_bpe *b = load(fields, NULL);
    /* Whitespace: \w+|[^\w\s]+ ; whitespace (Unicode White_Space) is dropped */
    EXPECT(b, "A A", 1, 3, 3, 2);
    EXPECT(b, " AA\t\r\nTT  ", 1, 7, 12, 2);
    EXPECT(b, "A\xc2\xa0" "A", 1, 3, 3, 2);     /* U+00A0 */
    EXPECT(b, "A\xe2\x80\x83" "A", 1, 3, 3, 2); /* U+2003 */
    EXPECT(b, "A\x1c" "A", 1, 3, 0, 3, 2);      /* not White_Space */
    EXPECT(b, "AA.,TT", 1, 7, 0, 0, 12, 2);
    vnp_bpe_free(b);
    /* no pre-tokenizer: spaces are characters too (unknown here) */
    b = load(fields, "\"added_tokens\": [], \"pre_tokenizer\": null, \"post_processor\": null");
    EXPECT(b, "A A", 3, 0, 3);
    EXPECT(b, "AA", 7);
    vnp_bpe_free(b);
    /* WhitespaceSplit inside a Sequence */
    b = load(fields, "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": "
                     "[{\"type\": \"WhitespaceSplit\"}]}, \"post_processor\": {\"type\": "
                     "\"BertProcessing\", \"sep\": [\"[SEP]\", 2], \"cls\": [\"[CLS]\", 1]}");
    EXPECT(b, "A A", 1, 3, 3, 2);
    EXPECT(b, "AA.", 1, 7, 0, 2);
    vnp_bpe_free(b);
}

static void test_added_tokens(void **state)
{
    (void)state;
    char fields[1024];
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\"], \"unk_token\": \"[UNK]\"", VOCAB);
    vnp_bpe *b = load(fields, NULL);
    /* added tokens are split out of the raw text first */
    EXPECT(b, "A[CLS]A", 1, 3, 1, 3, 2);
    EXPECT(b, "AA[SEP][SEP]", 1, 7, 2, 2, 2);
    EXPECT(b, "[CLS", 1, 0, 4, 0, 0, 2); /* no added token: [ C L S, C known */
    EXPECT(b, "[[UNK]]", 1, 0, 0, 0, 2);
    assert_int_equal(vnp_bpe_token_id(b, "[SEP]"), 2);
    assert_int_equal(vnp_bpe_token_id(b, "ACG"), 11);
    assert_int_equal(vnp_bpe_token_id(b, "N"), -1);
    assert_int_equal(vnp_bpe_vocab_size(b), 13);
    vnp_bpe_free(b);
    /* an added token absent from the vocabulary gets the next id; leftmost-longest */
    b = load(fields, "\"added_tokens\": [{\"id\": 99, \"content\": \"<x>\", \"special\": true},"
                     "{\"id\": 98, \"content\": \"<xy>\", \"special\": true}],"
                     "\"pre_tokenizer\": {\"type\": \"Whitespace\"}");
    assert_int_equal(vnp_bpe_token_id(b, "<x>"), 13);
    assert_int_equal(vnp_bpe_token_id(b, "<xy>"), 14);
    assert_int_equal(vnp_bpe_vocab_size(b), 15);
    EXPECT(b, "A<xy>A<x>", 3, 14, 3, 13);
    vnp_bpe_free(b);
}

static void test_model_options(void **state)
{
    (void)state;
    /* byte fallback: <0xC3><0xA9> for an unknown é */
    vnp_bpe *b = load("\"vocab\": {\"[UNK]\":0, \"A\":1, \"<0xC3>\":2, \"<0xA9>\":3}, \"merges\": [],"
                      " \"unk_token\": \"[UNK]\", \"byte_fallback\": true",
                      "\"added_tokens\": []");
    EXPECT(b, "A\xc3\xa9" "A\xe2\x82\xac", 1, 2, 3, 1, 0);
    vnp_bpe_free(b);
    /* continuing_subword_prefix: a merged token drops the right part's prefix */
    b = load("\"vocab\": {\"[UNK]\":0, \"A\":1, \"##A\":2, \"##C\":3, \"AA\":4, \"##AC\":5},"
             " \"merges\": [\"A ##A\", \"##A ##C\"], \"unk_token\": \"[UNK]\","
             " \"continuing_subword_prefix\": \"##\"",
             "\"added_tokens\": []");
    EXPECT(b, "AAC", 4, 3);    /* A ##A ##C -> AA ##C */
    EXPECT(b, "CAC", 0, 5);    /* C (unknown) ##A ##C -> [UNK] ##AC */
    vnp_bpe_free(b);
    /* end_of_word_suffix */
    b = load("\"vocab\": {\"[UNK]\":0, \"A\":1, \"A</w>\":2, \"AA</w>\":3}, \"merges\": [\"A A</w>\"],"
             " \"unk_token\": \"[UNK]\", \"end_of_word_suffix\": \"</w>\"",
             "\"added_tokens\": []");
    EXPECT(b, "AA", 3);
    EXPECT(b, "A", 2);
    vnp_bpe_free(b);
    /* ignore_merges: a word that is a token is taken whole */
    char fields[1024];
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"C G\"], \"ignore_merges\": true", VOCAB);
    b = load(fields, "\"added_tokens\": []");
    EXPECT(b, "ACG", 11);
    EXPECT(b, "ACGT", 3, 9, 6);
    vnp_bpe_free(b);
    /* merges as pairs, the newer format */
    snprintf(fields, sizeof fields, "%s, \"merges\": [[\"C\", \"G\"], [\"A\", \"CG\"]]", VOCAB);
    b = load(fields, "\"added_tokens\": []");
    EXPECT(b, "ACG", 11);
    vnp_bpe_free(b);
}

/* xorshift so the strings are the same on every run */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void compare_schedules(vnp_bpe *b, int rounds)
{
    char buf[3000];
    vnp_ids x = {0}, y = {0};
    for (int r = 0; r < rounds; r++) {
        size_t n = 1 + next_rand() % sizeof buf;
        int runs = next_rand() % 3;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = next_rand();
            /* plain, or long homopolymer runs, or noisy */
            buf[i] = runs == 1 && i > 0 && v % 8 ? buf[i - 1]
                     : runs == 2 && v % 50 == 0 ? "Nn .-"[v % 5]
                                                : "ACGT"[v % 4];
        }
        x.n = y.n = 0;
        b->rank_schedule = true;
        assert_int_equal(vnp_bpe_encode(b, buf, n, &x, NULL), VNP_OK);
        b->rank_schedule = false;
        assert_int_equal(vnp_bpe_encode(b, buf, n, &y, NULL), VNP_OK);
        assert_int_equal(x.n, y.n);
        assert_memory_equal(x.v, y.v, x.n * sizeof *x.v);
    }
    vnp_ids_free(&x);
    vnp_ids_free(&y);
}

static void test_schedules_agree_on_dnabert(void **state)
{
    (void)state;
    vnp_bpe *b;
    vnp_error err;
    assert_int_equal(vnp_bpe_load(vnp_test_fixture("golden/dnabert_s/tokenizer.json"), &b, &err),
                     VNP_OK);
    assert_true(b->rank_schedule); /* DNABERT-S's merges are in training order */
    assert_int_equal(vnp_bpe_vocab_size(b), 4096);
    assert_int_equal(vnp_bpe_token_id(b, "[CLS]"), 1);
    assert_int_equal(vnp_bpe_token_id(b, "[SEP]"), 2);
    compare_schedules(b, 300);
    vnp_bpe_free(b);
}

static void test_heap_schedule_for_other_merge_lists(void **state)
{
    (void)state;
    char fields[1024];
    /* AAA is made by two merges: only the heap schedule is exact */
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A A\", \"AA A\", \"A AA\"]", VOCAB);
    vnp_bpe *b = load(fields, NULL);
    assert_false(b->rank_schedule);
    EXPECT(b, "AAAA", 1, 7, 7, 2);
    vnp_bpe_free(b);
    /* a merge ranked before the merge that makes its part */
    snprintf(fields, sizeof fields, "%s, \"merges\": [\"A CG\", \"C G\"]", VOCAB);
    b = load(fields, NULL);
    assert_false(b->rank_schedule);
    EXPECT(b, "ACG", 1, 11, 2);
    vnp_bpe_free(b);
}

static void expect_error(const char *fields, const char *tail, vnp_code code, const char *msg)
{
    vnp_error err;
    assert_int_equal(load_err(fields, tail, &err), code);
    if (!strstr(err.msg, msg) || !strstr(err.msg, "test.json")) {
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, msg);
        fail();
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    char f[1024];
    snprintf(f, sizeof f, "%s, \"merges\": [\"A N\"]", VOCAB);
    expect_error(f, NULL, VNP_EFORMAT, "merges[0]: token 'N' is not in the vocabulary");
    snprintf(f, sizeof f, "%s, \"merges\": [\"A A\", \"A G\"]", VOCAB);
    expect_error(f, NULL, VNP_EFORMAT, "merges[1]: the merged token 'AG' is not in the vocabulary");
    snprintf(f, sizeof f, "%s, \"merges\": [\"A A A\"]", VOCAB);
    expect_error(f, NULL, VNP_EFORMAT, "two tokens separated by one space");
    snprintf(f, sizeof f, "%s, \"merges\": [], \"unk_token\": \"<unk>\"", VOCAB);
    expect_error(f, NULL, VNP_EFORMAT, "unk_token '<unk>' is not in the vocabulary");
    snprintf(f, sizeof f, "%s, \"merges\": [], \"dropout\": 0.1", VOCAB);
    expect_error(f, NULL, VNP_EUNSUPPORTED, "dropout");
    expect_error("\"vocab\": {\"A\": -1}, \"merges\": []", NULL, VNP_EFORMAT,
                 "the id of token 'A' is not an integer");
    expect_error("\"vocab\": {\"A\": 1.5}, \"merges\": []", NULL, VNP_EFORMAT,
                 "the id of token 'A' is not an integer");
    expect_error("\"merges\": []", NULL, VNP_EFORMAT, "model.vocab is missing");
    snprintf(f, sizeof f, "%s, \"merges\": []", VOCAB);
    expect_error(f, "\"normalizer\": {\"type\": \"Lowercase\"}", VNP_EUNSUPPORTED,
                 "normalizer 'Lowercase'");
    expect_error(f, "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}", VNP_EUNSUPPORTED,
                 "pre_tokenizer 'ByteLevel'");
    expect_error(f, "\"post_processor\": {\"type\": \"ByteLevel\"}", VNP_EUNSUPPORTED,
                 "post_processor 'ByteLevel'");
    expect_error(f,
                 "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                 "[{\"SpecialToken\": {\"id\": \"[X]\"}}, {\"Sequence\": {\"id\": \"A\"}}],"
                 "\"special_tokens\": {}}",
                 VNP_EFORMAT, "special token '[X]'");
    expect_error(f, "\"added_tokens\": [{\"id\": 5, \"content\": \"<m>\", \"lstrip\": true}]",
                 VNP_EUNSUPPORTED, "sets lstrip");
    vnp_error err;
    vnp_bpe *b;
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    assert_int_equal(vnp_bpe_load_json(wp, strlen(wp), "wp.json", &b, &err), VNP_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "model type 'WordPiece'"));
    const char *broken = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"A\": 1,}}}";
    assert_int_equal(vnp_bpe_load_json(broken, strlen(broken), "broken.json", &b, &err),
                     VNP_EFORMAT);
    assert_non_null(strstr(err.msg, "broken.json: not valid JSON"));
    assert_int_equal(vnp_bpe_load_json("[]", 2, "arr.json", &b, &err), VNP_EFORMAT);
    assert_int_equal(vnp_bpe_load(vnp_test_tmp("missing/tokenizer.json"), &b, &err),
                     VNP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "missing/tokenizer.json"));
    assert_null(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_order_and_ties),
        cmocka_unit_test(test_unknown_characters),
        cmocka_unit_test(test_pre_tokenizer),
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_model_options),
        cmocka_unit_test(test_schedules_agree_on_dnabert),
        cmocka_unit_test(test_heap_schedule_for_other_merge_lists),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
