/* vnp_preprocess_writer (the record-by-record form of preprocess that predict
 * --keep-intermediate uses) writes the original tool's three files byte for byte. */
#include "test_support.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "virnucpro/seq.h"

static void test_golden_500(void **state)
{
    (void)state;
    vnp_error e;
    vnp_seq_reader *r;
    assert_int_equal(vnp_seq_open(vnp_test_fixture("golden/input.fa"), &r, &e), VNP_OK);
    vnp_preprocess_writer *w;
    if (vnp_preprocess_writer_open(vnp_test_tmp("pre"), "dev", 500, &w, &e) != VNP_OK)
        fail_msg("%s", e.msg);
    vnp_record rec;
    int got;
    while ((got = vnp_seq_read(r, &rec, &e)) == 1)
        assert_int_equal(vnp_preprocess_writer_add(w, &rec, &e), VNP_OK);
    assert_int_equal(got, 0);
    /* nothing under the final names before commit */
    assert_int_equal(access(vnp_test_tmp("pre/dev_chunked500.fa"), F_OK), -1);
    assert_int_equal(vnp_preprocess_writer_commit(w, &e), VNP_OK);
    vnp_preprocess_writer_free(w);
    vnp_seq_close(r);
    const char *names[] = {"dev_chunked500.fa", "dev_identified_nucleotide.fa",
                           "dev_identified_protein.faa"};
    for (int i = 0; i < 3; i++) {
        char got_path[512], want[512];
        snprintf(got_path, sizeof got_path, "pre/%s", names[i]);
        snprintf(want, sizeof want, "golden/preprocess_500/%s", names[i]);
        vnp_test_assert_files_equal(vnp_test_tmp(got_path), vnp_test_fixture(want));
    }
}

static void test_free_without_commit_leaves_nothing(void **state)
{
    (void)state;
    vnp_preprocess_writer *w;
    assert_int_equal(vnp_preprocess_writer_open(vnp_test_tmp("gone"), "x", 300, &w, NULL),
                     VNP_OK);
    vnp_preprocess_writer_free(w);
    assert_int_equal(access(vnp_test_tmp("gone/x_chunked300.fa"), F_OK), -1);
    assert_int_equal(access(vnp_test_tmp("gone/x_chunked300.fa.partial"), F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_500),
        cmocka_unit_test(test_free_without_commit_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
