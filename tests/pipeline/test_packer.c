/* vnp_pack: every item exactly once, budget respected, length-sorted within
 * windows, deterministic, and results scattered back by `order` restore input order. */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#include "virnucpro/pipeline.h"

static size_t *random_lengths(size_t n, unsigned seed, size_t maxlen)
{
    size_t *len = malloc(n * sizeof *len);
    srand(seed);
    for (size_t i = 0; i < n; i++)
        len[i] = 1 + (size_t)rand() % maxlen;
    return len;
}

/* Checks the invariants of a packing of len[0..n) under budget/window. */
static void check_packing(const size_t *len, size_t n, size_t budget, size_t window,
                          const vnp_packing *p)
{
    assert_int_equal(p->n, n);
    unsigned char *seen = calloc(n ? n : 1, 1);
    size_t pos = 0;
    size_t w = (window == 0 || window > n) ? n : window;
    for (size_t b = 0; b < p->nbatches; b++) {
        const vnp_pack_batch *bt = &p->batches[b];
        assert_int_equal(bt->first, pos); /* batches tile the order array */
        assert_true(bt->count >= 1);
        size_t tok = 0;
        for (size_t j = 0; j < bt->count; j++) {
            size_t idx = p->order[bt->first + j];
            assert_true(idx < n);
            assert_int_equal(seen[idx], 0);
            seen[idx] = 1;
            tok += len[idx];
            /* a batch never spans two windows */
            assert_int_equal(idx / w, p->order[bt->first] / w);
            if (j > 0) { /* sorted: longest first, ties by index */
                size_t prev = p->order[bt->first + j - 1];
                assert_true(len[prev] > len[idx] || (len[prev] == len[idx] && prev < idx));
            }
        }
        assert_int_equal(tok, bt->tokens);
        if (bt->count > 1)
            assert_true(tok <= budget);
        else if (tok > budget) /* over-budget items only alone */
            assert_int_equal(bt->count, 1);
        pos += bt->count;
    }
    assert_int_equal(pos, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
}

static void test_invariants_random(void **state)
{
    (void)state;
    const size_t budgets[] = {1, 50, 333, 1000, 100000};
    const size_t windows[] = {0, 1, 7, 64, 1000};
    for (unsigned seed = 1; seed <= 5; seed++) {
        size_t n = 1 + (size_t)seed * 97;
        size_t *len = random_lengths(n, seed, 300);
        for (size_t bi = 0; bi < sizeof budgets / sizeof *budgets; bi++)
            for (size_t wi = 0; wi < sizeof windows / sizeof *windows; wi++) {
                vnp_packing p;
                assert_int_equal(vnp_pack(len, n, budgets[bi], windows[wi], &p, NULL), VNP_OK);
                check_packing(len, n, budgets[bi], windows[wi], &p);
                vnp_packing_free(&p);
            }
        free(len);
    }
}

static void test_exact_layout(void **state)
{
    (void)state;
    /* budget 10, one window: sorted 9(1) 6(3) 5(0) 4(4) 3(2) 2(5) -> [9] [6] [5 4] [3 2] */
    const size_t len[] = {5, 9, 3, 6, 4, 2};
    vnp_packing p;
    assert_int_equal(vnp_pack(len, 6, 10, 0, &p, NULL), VNP_OK);
    const size_t want_order[] = {1, 3, 0, 4, 2, 5};
    assert_memory_equal(p.order, want_order, sizeof want_order);
    assert_int_equal(p.nbatches, 4);
    assert_int_equal(p.batches[0].count, 1);
    assert_int_equal(p.batches[1].count, 1);
    assert_int_equal(p.batches[2].count, 2);
    assert_int_equal(p.batches[2].tokens, 9);
    assert_int_equal(p.batches[3].count, 2);
    assert_int_equal(p.batches[3].tokens, 5);
    vnp_packing_free(&p);
    /* window 3: [5 9 3] -> [9] [5 3]; [6 4 2] -> [6 4] [2]; an oversize item alone */
    assert_int_equal(vnp_pack(len, 6, 10, 3, &p, NULL), VNP_OK);
    const size_t want_w[] = {1, 0, 2, 3, 4, 5};
    assert_memory_equal(p.order, want_w, sizeof want_w);
    assert_int_equal(p.nbatches, 4);
    vnp_packing_free(&p);
    const size_t big[] = {3, 50, 4};
    assert_int_equal(vnp_pack(big, 3, 10, 0, &p, NULL), VNP_OK);
    assert_int_equal(p.nbatches, 2);
    assert_int_equal(p.order[0], 1);
    assert_int_equal(p.batches[0].count, 1);
    assert_int_equal(p.batches[0].tokens, 50);
    assert_int_equal(p.batches[1].tokens, 7);
    vnp_packing_free(&p);
}

static void test_deterministic_and_restores_order(void **state)
{
    (void)state;
    size_t n = 5000;
    size_t *len = random_lengths(n, 42, 170);
    /* many equal lengths: ties must still give one answer */
    vnp_packing a, b;
    assert_int_equal(vnp_pack(len, n, 2048, 512, &a, NULL), VNP_OK);
    assert_int_equal(vnp_pack(len, n, 2048, 512, &b, NULL), VNP_OK);
    assert_int_equal(a.nbatches, b.nbatches);
    assert_memory_equal(a.order, b.order, n * sizeof *a.order);
    assert_memory_equal(a.batches, b.batches, a.nbatches * sizeof *a.batches);
    /* a "result" computed per batch position and scattered back through order[]
     * lands on the item it belongs to */
    size_t *result = calloc(n, sizeof *result);
    for (size_t bi = 0; bi < a.nbatches; bi++)
        for (size_t j = 0; j < a.batches[bi].count; j++) {
            size_t idx = a.order[a.batches[bi].first + j];
            result[idx] = len[idx] * 1000003u + idx;
        }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(result[i], len[i] * 1000003u + i);
    free(result);
    vnp_packing_free(&a);
    vnp_packing_free(&b);
    free(len);
}

static void test_errors_and_empty(void **state)
{
    (void)state;
    const size_t len[] = {1, 2};
    vnp_packing p;
    vnp_error e;
    assert_int_equal(vnp_pack(len, 2, 0, 0, &p, &e), VNP_EINVAL);
    assert_non_null(strstr(e.msg, "budget"));
    assert_int_equal(vnp_pack(len, 0, 10, 0, &p, NULL), VNP_OK);
    assert_int_equal(p.nbatches, 0);
    assert_int_equal(p.n, 0);
    vnp_packing_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants_random),
        cmocka_unit_test(test_exact_layout),
        cmocka_unit_test(test_deterministic_and_restores_order),
        cmocka_unit_test(test_errors_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
