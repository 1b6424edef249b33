/* The original VirNucPro chunk plan, quirks included. */
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "virnucpro/seq.h"

static void assert_plan(size_t len, size_t chunk, const size_t *starts, const size_t *lens,
                        size_t n)
{
    vnp_chunk plan[64];
    assert_int_equal(vnp_chunk_count(len, chunk), n);
    assert_int_equal(vnp_chunk_plan(len, chunk, plan), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(plan[i].start, starts[i]);
        assert_int_equal(plan[i].len, lens[i]);
        vnp_chunk c = vnp_chunk_at(len, chunk, i);
        assert_int_equal(c.start, starts[i]);
        assert_int_equal(c.len, lens[i]);
    }
}

static void test_count(void **state)
{
    (void)state;
    assert_int_equal(vnp_chunk_count(0, 300), 0);
    assert_int_equal(vnp_chunk_count(1, 300), 1);
    assert_int_equal(vnp_chunk_count(299, 300), 1);
    assert_int_equal(vnp_chunk_count(300, 300), 1);
    assert_int_equal(vnp_chunk_count(301, 300), 2);
    assert_int_equal(vnp_chunk_count(600, 300), 2);
    assert_int_equal(vnp_chunk_count(601, 300), 3);
    assert_int_equal(vnp_chunk_count(1000, 500), 2);
    assert_int_equal(vnp_chunk_count(10, 0), 0);
    vnp_chunk none[1];
    assert_int_equal(vnp_chunk_plan(0, 500, none), 0);
}

static void test_shorter_than_chunk(void **state)
{
    (void)state;
    const size_t s[] = {0}, l1[] = {1}, l299[] = {299}, l300[] = {300};
    assert_plan(1, 300, s, l1, 1);
    assert_plan(299, 300, s, l299, 1);
    assert_plan(300, 300, s, l300, 1); /* exactly one chunk */
}

static void test_even_overlap(void **state)
{
    (void)state;
    /* 1198 / 300: n 4, overlap 2, lo 0, need 2: shifts 1 1 0 */
    const size_t s[] = {0, 299, 598, 898}, l[] = {300, 300, 300, 300};
    assert_plan(1198, 300, s, l, 4);
    /* 600 / 300: no overlap */
    const size_t s2[] = {0, 300}, l2[] = {300, 300};
    assert_plan(600, 300, s2, l2, 2);
}

static void test_short_last_chunk_quirk(void **state)
{
    (void)state;
    /* One chunk plus one base: overlap 299 over 2 chunks, lo 149, need 150 > n-1:
     * the second chunk starts at 150, not 1, and holds 151 bases. */
    const size_t s[] = {0, 150}, l[] = {300, 151};
    assert_plan(301, 300, s, l, 2);
    const size_t s5[] = {0, 250}, l5[] = {500, 251};
    assert_plan(501, 500, s5, l5, 2);
    /* 1000 / 300: n 4, overlap 200, lo 50, need 50: shifts 51 51 51, last 747..1000 */
    const size_t s2[] = {0, 249, 498, 747}, l2[] = {300, 300, 300, 253};
    assert_plan(1000, 300, s2, l2, 4);
    /* 1400 / 500: n 3, overlap 100, lo 33, need 34 > 2: shifts 34 34 -> starts 0 466 932,
     * the last chunk 932..1400 is 468 long */
    const size_t s3[] = {0, 466, 932}, l3[] = {500, 500, 468};
    assert_plan(1400, 500, s3, l3, 3);
}

/* The rule as the original states it: build the shift list, then walk it. */
static void reference_plan(size_t len, size_t chunk, vnp_chunk *out, size_t *n_out)
{
    size_t n = (len + chunk - 1) / chunk, overlap = n * chunk - len;
    size_t lo = overlap / n, need = overlap - lo * (n - 1);
    size_t *shift = calloc(need + n + 1, sizeof *shift), k = 0;
    for (size_t i = 0; i < need; i++)
        shift[k++] = lo + 1;
    for (size_t i = 0; i + need + 1 < n; i++)
        shift[k++] = lo;
    shift[k++] = 0;
    size_t move = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = i * chunk, start = a > 1 ? a - move : a;
        size_t end = start + chunk < len ? start + chunk : len;
        out[i].start = start;
        out[i].len = end - start;
        move += shift[i];
    }
    free(shift);
    *n_out = n;
}

static void test_matches_reference_rule(void **state)
{
    (void)state;
    vnp_chunk got[40], want[40];
    const size_t sizes[] = {300, 500, 7};
    for (size_t si = 0; si < 3; si++) {
        size_t c = sizes[si];
        for (size_t len = 1; len <= 30 * c; len++) {
            size_t nw, ng = vnp_chunk_plan(len, c, got);
            reference_plan(len, c, want, &nw);
            assert_int_equal(ng, nw);
            for (size_t i = 0; i < ng; i++) {
                if (got[i].start != want[i].start || got[i].len != want[i].len)
                    fail_msg("len %zu chunk %zu #%zu: got %zu+%zu want %zu+%zu", len, c, i,
                             got[i].start, got[i].len, want[i].start, want[i].len);
                vnp_chunk a = vnp_chunk_at(len, c, i);
                assert_int_equal(a.start, got[i].start);
                assert_int_equal(a.len, got[i].len);
                assert_true(got[i].start + got[i].len <= len);
                assert_true(got[i].len >= 1 && got[i].len <= c);
            }
            assert_int_equal(got[0].start, 0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_shorter_than_chunk),
        cmocka_unit_test(test_even_overlap),
        cmocka_unit_test(test_short_last_chunk_quirk),
        cmocka_unit_test(test_matches_reference_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
