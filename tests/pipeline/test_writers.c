/* Output writers: prediction_results.txt rows, the highest-score file (in memory
 * and through spill files), the per-sequence tally, the features safetensors. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virnucpro/pipeline.h"
#include "virnucpro/weights.h"

typedef struct row {
    char id[128];
    float p0, p1;
} row;

/* Rows of the golden expected/prediction_results.txt (scores read back as float32). */
static row *golden_rows(size_t *n)
{
    char *text = vnp_test_read_file(vnp_test_fixture("golden/expected/prediction_results.txt"),
                                    NULL);
    assert_non_null(text);
    row *rows = calloc(256, sizeof *rows);
    *n = 0;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save); /* header */
    assert_string_equal(line, "Sequence_ID\tPrediction\tscore1\tscore2");
    while ((line = strtok_r(NULL, "\n", &save))) {
        char id[128], label[16], a[32], b[32];
        assert_int_equal(sscanf(line, "%127s %15s %31s %31s", id, label, a, b), 4);
        assert_true(*n < 256);
        strcpy(rows[*n].id, id);
        rows[*n].p0 = strtof(a, NULL);
        rows[*n].p1 = strtof(b, NULL);
        assert_string_equal(label, vnp_label_of(rows[*n].p0, rows[*n].p1));
        (*n)++;
    }
    free(text);
    assert_int_equal(*n, 41);
    return rows;
}

static void test_results_rows_match_original(void **state)
{
    (void)state;
    size_t n;
    row *rows = golden_rows(&n);
    const char *path = vnp_test_tmp("prediction_results.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(vnp_results_write_header(f, path, NULL), VNP_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vnp_results_write_row(f, path, rows[i].id, strlen(rows[i].id),
                                               rows[i].p0, rows[i].p1, NULL),
                         VNP_OK);
    fclose(f);
    vnp_test_assert_files_equal(path, vnp_test_fixture("golden/expected/prediction_results.txt"));
    free(rows);
}

static void test_label_rule(void **state)
{
    (void)state;
    assert_string_equal(vnp_label_of(0.4f, 0.6f), "virus");
    assert_string_equal(vnp_label_of(0.6f, 0.4f), "others");
    assert_string_equal(vnp_label_of(0.5f, 0.5f), "others"); /* torch.max keeps index 0 */
}

static void write_highest(const row *rows, size_t n, size_t mem_limit, const char *path,
                          size_t *runs)
{
    vnp_chunk_calls *c;
    assert_int_equal(vnp_chunk_calls_create(path, mem_limit, &c, NULL), VNP_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vnp_chunk_calls_add(c, rows[i].id, strlen(rows[i].id) - 2, rows[i].p0,
                                             rows[i].p1, NULL),
                         VNP_OK);
    *runs = vnp_chunk_calls_runs(c);
    assert_int_equal(vnp_chunk_calls_finish(c, NULL), VNP_OK);
    vnp_chunk_calls_free(c);
}

static void test_highest_in_memory_and_spilled(void **state)
{
    (void)state;
    size_t n, runs;
    row *rows = golden_rows(&n);
    const char *want = vnp_test_fixture("golden/expected/prediction_results_highestscore.csv");
    const char *path = vnp_test_tmp("highest.csv");
    write_highest(rows, n, 0, path, &runs);
    assert_int_equal(runs, 0);
    vnp_test_assert_files_equal(path, want);
    /* a tiny memory limit: every few chunks spill to a sorted run, merged at the end */
    write_highest(rows, n, 64, path, &runs);
    assert_true(runs >= 5);
    vnp_test_assert_files_equal(path, want);
    /* spill files are gone */
    char run0[4200];
    snprintf(run0, sizeof run0, "%s.run0.tmp", path);
    assert_int_equal(access(run0, F_OK), -1);
    free(rows);
}

static void test_highest_duplicates_merged(void **state)
{
    (void)state;
    /* the same chunk ID from two records (duplicate record IDs) is one group with the
     * max of each score, as pandas groupby; IDs sort bytewise: "a_chunk_10" < "a_chunk_2" */
    const row rows[] = {
        {"a_chunk_2F1", 0.9f, 0.1f}, {"a_chunk_2R1", 0.8f, 0.2f}, {"a_chunk_10F2", 0.3f, 0.7f},
        {"b_chunk_1F1", 0.6f, 0.4f}, {"a_chunk_2F3", 0.05f, 0.95f}, {"B_chunk_1F1", 0.5f, 0.5f},
    };
    const char *want = "Modified_ID\tIs_Virus\nB_chunk_1\tTrue\na_chunk_10\tTrue\n"
                       "a_chunk_2\tTrue\nb_chunk_1\tFalse\n";
    for (size_t lim = 0; lim <= 64; lim += 64) {
        size_t runs;
        const char *path = vnp_test_tmp("dups.csv");
        write_highest(rows, 6, lim ? 1 : 0, path, &runs);
        char *got = vnp_test_read_file(path, NULL);
        assert_string_equal(got, want);
        free(got);
    }
    /* nothing collected: the header alone */
    size_t runs;
    write_highest(rows, 0, 0, vnp_test_tmp("empty.csv"), &runs);
    char *got = vnp_test_read_file(vnp_test_tmp("empty.csv"), NULL);
    assert_string_equal(got, "Modified_ID\tIs_Virus\n");
    free(got);
}

/* Adds chunks {frames, max1, max2} with the rule min_score. */
static void tally(vnp_seq_tally *t, size_t length, const vnp_chunk_score *c, size_t n,
                  float min_score)
{
    vnp_seq_tally_begin(t, length, n);
    for (size_t i = 0; i < n; i++)
        vnp_seq_tally_add(t, &c[i], vnp_chunk_viral(&c[i], min_score));
}

static void test_chunk_calls_rule(void **state)
{
    (void)state;
    vnp_chunk_score none = {0, 0.0f, 0.0f}, tie = {2, 0.5f, 0.5f}, low = {1, 0.9f, 0.1f},
                    high = {1, 0.3f, 0.7f};
    assert_string_equal(vnp_chunk_call(&none, -1), "unscored");
    assert_string_equal(vnp_chunk_call(&none, 0.0f), "unscored");
    assert_string_equal(vnp_chunk_call(&tie, -1), "virus"); /* max2 >= max1 */
    assert_string_equal(vnp_chunk_call(&low, -1), "others");
    assert_string_equal(vnp_chunk_call(&high, -1), "virus");
    /* --min-score: max2 >= X, whatever max1 */
    assert_string_equal(vnp_chunk_call(&high, 0.7f), "virus");
    assert_string_equal(vnp_chunk_call(&high, 0.71f), "others");
    assert_string_equal(vnp_chunk_call(&low, 0.1f), "virus");
    assert_string_equal(vnp_chunk_call(&low, 0.0f), "virus");
    assert_string_equal(vnp_chunk_call(&tie, 1.0f), "others");
}

static void test_sequence_tally(void **state)
{
    (void)state;
    vnp_seq_tally t;
    /* 4 chunks: chunk 0 viral (max2 .7 >= max1 .6), chunk 1 not, chunk 2 without frames,
     * chunk 3 viral by the tie rule */
    const vnp_chunk_score a[4] = {{2, 0.6f, 0.7f}, {1, 0.9f, 0.1f}, {0, 0, 0}, {1, 0.5f, 0.5f}};
    tally(&t, 1800, a, 4, -1);
    assert_int_equal(t.chunks_scored, 3);
    assert_int_equal(t.chunks_viral, 2);
    assert_true(t.max_virus == 0.7f);
    assert_string_equal(vnp_seq_tally_verdict(&t), "virus");
    const char *path = vnp_test_tmp("sequences.tsv");
    FILE *f = fopen(path, "w");
    assert_int_equal(vnp_sequences_write_header(f, path, NULL), VNP_OK);
    assert_int_equal(vnp_sequences_write_row(f, path, "seqA", 4, &t, NULL), VNP_OK);
    /* with --min-score 0.75 no chunk is viral: others */
    tally(&t, 1800, a, 4, 0.75f);
    assert_int_equal(t.chunks_viral, 0);
    assert_string_equal(vnp_seq_tally_verdict(&t), "others");
    /* one of two scored chunks viral: a tie, virus; one of three: others */
    const vnp_chunk_score b[2] = {{1, 0.8f, 0.2f}, {1, 0.1f, 0.9f}};
    tally(&t, 1000, b, 2, -1);
    assert_string_equal(vnp_seq_tally_verdict(&t), "virus");
    const vnp_chunk_score c[3] = {{1, 0.8f, 0.2f}, {1, 0.7f, 0.3f}, {1, 0.00001f, 0.99999f}};
    tally(&t, 1500, c, 3, -1);
    assert_string_equal(vnp_seq_tally_verdict(&t), "others");
    assert_int_equal(vnp_sequences_write_row(f, path, "seqB", 4, &t, NULL), VNP_OK);
    /* with --min-score 0.25 two of three are viral */
    tally(&t, 1500, c, 3, 0.25f);
    assert_string_equal(vnp_seq_tally_verdict(&t), "virus");
    /* nothing to score */
    const vnp_chunk_score d[1] = {{0, 0, 0}};
    tally(&t, 2, d, 1, -1);
    assert_string_equal(vnp_seq_tally_verdict(&t), "unscored");
    assert_int_equal(vnp_sequences_write_row(f, path, "tiny", 4, &t, NULL), VNP_OK);
    fclose(f);
    char *got = vnp_test_read_file(path, NULL);
    assert_string_equal(got,
                        "Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\t"
                        "Max_virus_score\tVerdict\n"
                        "seqA\t1800\t4\t3\t2\t0.7\tvirus\n"
                        "seqB\t1500\t3\t3\t1\t0.99999\tothers\n"
                        "tiny\t2\t1\t0\t0\tNA\tunscored\n");
    free(got);
}

static void test_features_safetensors(void **state)
{
    (void)state;
    const char *path = vnp_test_tmp("features.safetensors");
    vnp_features_writer *w;
    assert_int_equal(vnp_features_writer_create(path, "features", 3, NULL, &w, NULL), VNP_OK);
    const float r0[3] = {1.5f, -2.0f, 0.25f}, r1[3] = {0.0f, 3.0f, 1e-7f};
    assert_int_equal(vnp_features_writer_add(w, "x_chunk_1F1", 11, r0, NULL), VNP_OK);
    assert_int_equal(vnp_features_writer_add(w, "x_chunk_2R3", 11, r1, NULL), VNP_OK);
    assert_int_equal(vnp_features_writer_finish(w, NULL), VNP_OK);
    vnp_features_writer_free(w);
    vnp_tensor_map *m;
    vnp_error e;
    if (vnp_safetensors_load(path, &m, &e) != VNP_OK)
        fail_msg("%s", e.msg);
    const vnp_tensor *t = vnp_tensor_map_get(m, "features");
    assert_non_null(t);
    assert_int_equal(t->dtype, VNP_DT_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    const float *d = t->data;
    assert_memory_equal(d, r0, sizeof r0);
    assert_memory_equal(d + 3, r1, sizeof r1);
    const vnp_tensor *ids = vnp_tensor_map_get(m, "ids");
    assert_non_null(ids);
    assert_int_equal(ids->dtype, VNP_DT_U8);
    assert_int_equal(ids->shape[0], 24);
    assert_memory_equal(ids->data, "x_chunk_1F1\nx_chunk_2R3\n", 24);
    vnp_tensor_map_free(m);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.rows.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_rows_match_original),
        cmocka_unit_test(test_label_rule),
        cmocka_unit_test(test_highest_in_memory_and_spilled),
        cmocka_unit_test(test_highest_duplicates_merged),
        cmocka_unit_test(test_chunk_calls_rule),
        cmocka_unit_test(test_sequence_tally),
        cmocka_unit_test(test_features_safetensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
