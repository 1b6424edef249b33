/* The predict pipeline's plumbing with fake models (fake_model.c): the ORFs and
 * their order match the original tool's, outputs do not depend on window or
 * batch sizes (bit for bit, since a fake embedding depends only on its own
 * sequence), long records spanning windows, the optional outputs, and errors
 * that leave no output behind. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virnucpro/pipeline.h"

/* Scratch directory path that survives later vnp_test_* calls (their buffers rotate). */
static const char *tmpdir(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s", vnp_test_tmp(name));
    return b;
}

static void opts(vnp_predict_options *o, const char *out)
{
    vnp_predict_options_init(o);
    o->input = vnp_test_fixture("golden/input.fa");
    o->out_dir = out;
    o->esm = vnp_test_fixture("golden/esm2");
    o->dnabert = vnp_test_fixture("golden/dnabert_s");
    o->classifier = vnp_test_fixture("golden/classifier.pth");
    o->chunk_len = 500;
    o->progress = 0;
}

static char *out_file(const char *dir, const char *name)
{
    static char buf[4][4096];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* First column of each line (after the header) of a tab-separated file, joined. */
static char *first_column(const char *path)
{
    char *t = vnp_test_read_file(path, NULL);
    assert_non_null(t);
    char *out = calloc(1, strlen(t) + 1);
    char *p = strchr(t, '\n');
    assert_non_null(p);
    p++;
    while (*p) {
        size_t n = strcspn(p, "\t\n");
        strncat(out, p, n);
        strcat(out, "\n");
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    free(t);
    return out;
}

static void run_ok(const vnp_predict_options *o, vnp_predict_stats *st)
{
    vnp_error e;
    vnp_error_clear(&e);
    if (vnp_predict(o, st, &e) != VNP_OK)
        fail_msg("predict failed: %s", e.msg);
}

static void test_ids_and_order_match_original(void **state)
{
    (void)state;
    vnp_predict_options o;
    const char *dir = tmpdir("big");
    opts(&o, dir);
    vnp_predict_stats st;
    run_ok(&o, &st);
    assert_int_equal(st.records, 21);
    assert_int_equal(st.orfs, 41);
    assert_int_equal(st.chunks, 57);
    char *got = first_column(out_file(dir, VNP_PREDICT_RESULTS));
    char *want = first_column(vnp_test_fixture("golden/expected/prediction_results.txt"));
    assert_string_equal(got, want);
    free(got);
    free(want);
    got = first_column(out_file(dir, VNP_PREDICT_HIGHEST));
    want = first_column(vnp_test_fixture("golden/expected/prediction_results_highestscore.csv"));
    assert_string_equal(got, want);
    free(got);
    free(want);
    /* one sequences.tsv row per record, in input order */
    got = first_column(out_file(dir, VNP_PREDICT_SEQUENCES));
    assert_string_equal(got, "lambda_dev_0\nlambda_dev_1\nlambda_dev_2\nlambda_dev_3\n"
                             "lambda_dev_4\nlambda_dev_5\necoli_dev_0\necoli_dev_1\n"
                             "ecoli_dev_2\necoli_dev_3\necoli_dev_4\necoli_dev_5\n"
                             "ecoli_dev_6\necoli_dev_7\necoli_dev_8\necoli_dev_9\n"
                             "lower_dev\niupac_dev\nshort_dev\nexact_dev\nplusone_dev\n");
    free(got);
    /* no temporary files left */
    assert_int_equal(access(out_file(dir, "prediction_results.txt.part"), F_OK), -1);
    assert_int_equal(access(out_file(dir, "sequences.tsv.part"), F_OK), -1);
}

static void test_independent_of_windows_and_batches(void **state)
{
    (void)state;
    vnp_predict_options o;
    vnp_predict_stats st;
    const char *a = tmpdir("w_big"), *b = tmpdir("w_small");
    opts(&o, a);
    o.batch_tokens = 1 << 20;
    o.window_orfs = 100000;
    run_ok(&o, &st);
    opts(&o, b);
    o.batch_tokens = 7; /* every sequence alone */
    o.window_orfs = 1;  /* long records span many windows */
    run_ok(&o, &st);
    const char *names[] = {VNP_PREDICT_RESULTS, VNP_PREDICT_HIGHEST, VNP_PREDICT_SEQUENCES};
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out_file(b, names[i]), out_file(a, names[i]));
    opts(&o, b);
    o.batch_tokens = 300;
    o.window_orfs = 5;
    run_ok(&o, &st);
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out_file(b, names[i]), out_file(a, names[i]));
}

static void test_sequences_consistent_with_rows(void **state)
{
    (void)state;
    /* each sequences.tsv row agrees with the per-chunk file: scored chunks are the
     * chunks of that record in the highest-score file, viral ones those marked True */
    vnp_predict_options o;
    vnp_predict_stats st;
    const char *dir = tmpdir("cons");
    opts(&o, dir);
    run_ok(&o, &st);
    char *seqs = vnp_test_read_file(out_file(dir, VNP_PREDICT_SEQUENCES), NULL);
    char *calls = vnp_test_read_file(out_file(dir, VNP_PREDICT_HIGHEST), NULL);
    assert_non_null(seqs);
    assert_non_null(calls);
    char *save = NULL;
    char *line = strtok_r(seqs, "\n", &save);
    size_t rows = 0, total_chunks = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char id[64], score[32], verdict[16];
        size_t len, chunks, scored, viral;
        assert_int_equal(sscanf(line, "%63s %zu %zu %zu %zu %31s %15s", id, &len, &chunks,
                                &scored, &viral, score, verdict),
                         7);
        size_t s = 0, v = 0;
        char pat[80];
        snprintf(pat, sizeof pat, "\n%s_chunk_", id);
        for (const char *p = strstr(calls, pat); p; p = strstr(p + 1, pat)) {
            s++;
            const char *tab = strchr(p + 1, '\t');
            v += !strncmp(tab, "\tTrue", 5);
        }
        assert_int_equal(scored, s);
        assert_int_equal(viral, v);
        if (scored == 0) {
            assert_string_equal(score, "NA");
            assert_string_equal(verdict, "unscored");
        } else {
            assert_string_equal(verdict, 2 * viral >= scored ? "virus" : "others");
        }
        total_chunks += chunks;
        rows++;
    }
    assert_int_equal(rows, 21);
    assert_int_equal(total_chunks, 57);
    free(seqs);
    free(calls);
}

static void test_keep_intermediate_and_embeddings(void **state)
{
    (void)state;
    vnp_predict_options o;
    vnp_predict_stats st;
    const char *dir = tmpdir("extra");
    opts(&o, dir);
    o.keep_intermediate = 1;
    o.embeddings = 1;
    o.window_orfs = 3;
    run_ok(&o, &st);
    vnp_test_assert_files_equal(out_file(dir, "input_chunked500.fa"),
                                vnp_test_fixture("golden/preprocess_500/dev_chunked500.fa"));
    vnp_test_assert_files_equal(
        out_file(dir, "input_identified_nucleotide.fa"),
        vnp_test_fixture("golden/preprocess_500/dev_identified_nucleotide.fa"));
    vnp_test_assert_files_equal(
        out_file(dir, "input_identified_protein.faa"),
        vnp_test_fixture("golden/preprocess_500/dev_identified_protein.faa"));
    size_t n;
    char *f = vnp_test_read_file(out_file(dir, VNP_PREDICT_FEATURES), &n);
    assert_non_null(f);
    /* 41 rows of 3 + 4 floats, then the IDs */
    assert_non_null(strstr(f + 8, "\"shape\":[41,7]"));
    free(f);
}

static void test_nan_fails_and_leaves_nothing(void **state)
{
    (void)state;
    vnp_predict_options o;
    const char *dir = tmpdir("nan");
    opts(&o, dir);
    setenv("FAKE_NAN_LEN", "168", 1); /* <cls> + 166 residues + <eos> */
    vnp_error e;
    vnp_code rc = vnp_predict(&o, NULL, &e);
    unsetenv("FAKE_NAN_LEN");
    assert_int_equal(rc, VNP_ENUMERIC);
    assert_non_null(strstr(e.msg, "_chunk_"));
    assert_non_null(strstr(e.msg, "non-finite"));
    assert_int_equal(access(out_file(dir, VNP_PREDICT_RESULTS), F_OK), -1);
    assert_int_equal(access(out_file(dir, "prediction_results.txt.part"), F_OK), -1);
    assert_int_equal(access(out_file(dir, VNP_PREDICT_HIGHEST), F_OK), -1);
    assert_int_equal(access(out_file(dir, VNP_PREDICT_SEQUENCES), F_OK), -1);
}

static void test_model_errors_before_input(void **state)
{
    (void)state;
    /* the input is not FASTA: reading it would fail with a format error, so a
     * model error proves the models were checked first */
    const char *bad = tmpdir("not_fasta.bin");
    assert_int_equal(vnp_test_write_file(bad, "\x01\x02garbage\x00\xff", 11), 0);
    vnp_predict_options o;
    vnp_error e;
    opts(&o, tmpdir("err"));
    o.input = bad;
    setenv("FAKE_CLS_WIDTH", "9", 1);
    vnp_code rc = vnp_predict(&o, NULL, &e);
    unsetenv("FAKE_CLS_WIDTH");
    assert_int_equal(rc, VNP_ESHAPE);
    assert_non_null(strstr(e.msg, "classifier.pth takes 9 features"));
    assert_non_null(strstr(e.msg, "(hidden 3)"));
    assert_non_null(strstr(e.msg, "(hidden 4) give 7"));
    opts(&o, tmpdir("err"));
    o.input = bad;
    o.esm = tmpdir("missing_esm");
    rc = vnp_predict(&o, NULL, &e);
    assert_int_equal(rc, VNP_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing_esm"));
    assert_non_null(strstr(e.msg, "--esm"));
    /* swapped models are named */
    opts(&o, tmpdir("err"));
    o.input = bad;
    o.esm = vnp_test_fixture("golden/dnabert_s");
    rc = vnp_predict(&o, NULL, &e);
    assert_int_equal(rc, VNP_EINVAL);
    assert_non_null(strstr(e.msg, "is a DNABERT-S checkpoint"));
    /* with good models the same input fails as input */
    opts(&o, tmpdir("err"));
    o.input = bad;
    rc = vnp_predict(&o, NULL, &e);
    assert_int_equal(rc, VNP_EFORMAT);
    assert_int_equal(access(out_file(tmpdir("err"), VNP_PREDICT_RESULTS), F_OK), -1);
}

static void test_option_errors(void **state)
{
    (void)state;
    vnp_predict_options o;
    vnp_error e;
    opts(&o, tmpdir("opt"));
    o.chunk_len = 400;
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_EINVAL);
    assert_non_null(strstr(e.msg, "300 or 500"));
    opts(&o, tmpdir("opt"));
    o.input = tmpdir("no_such_input.fa");
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_ENOTFOUND);
    assert_non_null(strstr(e.msg, "no_such_input.fa"));
}

static void test_resume_after_failure(void **state)
{
    (void)state;
    vnp_predict_options o;
    vnp_predict_stats st;
    vnp_error e;
    const char *ref = tmpdir("res_ref"), *dir = tmpdir("res_run");
    opts(&o, ref);
    o.window_orfs = 3;
    run_ok(&o, &st);
    /* a run that dies after 4 windows keeps its partial rows and journal */
    opts(&o, dir);
    o.window_orfs = 3;
    setenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS", "4", 1);
    vnp_code rc = vnp_predict(&o, NULL, &e);
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    assert_int_equal(rc, VNP_EIO);
    assert_non_null(strstr(e.msg, "stopped after 4 windows"));
    assert_non_null(strstr(e.msg, "--resume"));
    assert_int_equal(access(out_file(dir, "predict.journal"), F_OK), 0);
    assert_int_equal(access(out_file(dir, "prediction_results.txt.part"), F_OK), 0);
    assert_int_equal(access(out_file(dir, VNP_PREDICT_RESULTS), F_OK), -1);
    /* resuming with another length is refused, naming both runs */
    opts(&o, dir);
    o.chunk_len = 300;
    o.resume = 1;
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_EINVAL);
    assert_non_null(strstr(e.msg, "the chunk length (-l) changed since the interrupted run"));
    /* resumed (with another window size): the same files as the uninterrupted run */
    opts(&o, dir);
    o.window_orfs = 5;
    o.resume = 1;
    run_ok(&o, &st);
    assert_int_equal(st.records, 21);
    const char *names[] = {VNP_PREDICT_RESULTS, VNP_PREDICT_HIGHEST, VNP_PREDICT_SEQUENCES};
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out_file(dir, names[i]), out_file(ref, names[i]));
    assert_int_equal(access(out_file(dir, "predict.journal"), F_OK), -1);
    assert_int_equal(access(out_file(dir, "prediction_results.txt.part"), F_OK), -1);
    /* --resume on the finished run: nothing to do, the results stay as they are */
    assert_int_equal(vnp_predict(&o, &st, &e), VNP_OK);
    assert_int_equal(st.already_done, 1);
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out_file(dir, names[i]), out_file(ref, names[i]));
    /* an interrupted run, then a fresh one without --resume: starts over, same files */
    opts(&o, dir);
    o.window_orfs = 3;
    setenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS", "4", 1);
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_EIO);
    assert_int_equal(access(out_file(dir, "predict.journal"), F_OK), 0);
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    opts(&o, dir);
    vnp_test_capture_log_begin();
    run_ok(&o, &st);
    char *log = vnp_test_capture_log_end();
    int said = strstr(log, "starting over") != NULL;
    free(log);
    assert_true(said);
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(out_file(dir, names[i]), out_file(ref, names[i]));
    /* options that cannot be resumed */
    opts(&o, dir);
    o.resume = 1;
    o.embeddings = 1;
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_EINVAL);
    assert_non_null(strstr(e.msg, "--resume"));
}

/* Child mode for the memory test: predicts WARMUP then INPUT into DIR and prints
 * "rss <kB>". The warm-up run (the same in every child) lets the allocator reach
 * its steady state, so that the peak reflects what INPUT adds. */
static int rss_child(const char *warmup, const char *input, const char *dir)
{
    vnp_predict_options o;
    vnp_predict_stats st;
    vnp_error e;
    for (int pass = 0; pass < 2; pass++) {
        opts(&o, dir);
        o.input = pass == 0 ? warmup : input;
        o.window_orfs = 64;
        o.sort_memory = 64 << 10;
        if (vnp_predict(&o, &st, &e) != VNP_OK) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    printf("rss %ld orfs %zu\n", st.peak_rss_kb, st.orfs);
    return 0;
}

/* golden input.fa repeated k times */
static const char *repeated_input(int k)
{
    size_t n;
    char *one = vnp_test_read_file(vnp_test_fixture("golden/input.fa"), &n);
    assert_non_null(one);
    char name[64];
    snprintf(name, sizeof name, "golden_x%d.fa", k);
    const char *path = tmpdir(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < k; i++)
        assert_int_equal(fwrite(one, 1, n, f), n);
    fclose(f);
    free(one);
    return path;
}

static long child_rss(const char *warmup, const char *input, const char *dir, size_t want_orfs)
{
    char cmd[8192], *out = NULL, *err = NULL;
    /* no ASan quarantine: freed memory must not count as live */
    snprintf(cmd, sizeof cmd,
             "ASAN_OPTIONS=quarantine_size_mb=0:detect_leaks=0 /proc/%ld/exe --rss-child '%s' "
             "'%s' '%s'",
             (long)getpid(), warmup, input, dir);
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("child failed (%d): %s", rc, err ? err : "");
    long rss = 0;
    size_t orfs = 0;
    assert_int_equal(sscanf(out, "rss %ld orfs %zu", &rss, &orfs), 2);
    assert_int_equal(orfs, want_orfs);
    free(out);
    free(err);
    return rss;
}

static char g_log[8192]; /* warnings of the run (log handler) */
static void capture_log(vnp_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    strncat(g_log, msg, sizeof g_log - strlen(g_log) - 2);
    strcat(g_log, "\n");
}

/* Duplicate record IDs: a warning naming the first and the count; each repeat becomes
 * <ID>_dup<k> in every output, so its rows and chunk calls stay apart. */
static void test_duplicate_ids_kept_apart(void **state)
{
    (void)state;
    const char *seq = "ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGACGCGTA"
                      "CAGGAAACACAGAAAAAAGCCCGCACCTGACAGTGCGGGCTTTTTTTTTCGACCAAAGGTAACGAGGTAACAAC";
    char in[4096], text[8192];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("dups.fa"));
    snprintf(text, sizeof text, ">a\n%s\n>b\n%s\n>a\n%s\n>a desc\n%s\n", seq, seq, seq, seq);
    assert_int_equal(vnp_test_write_file(in, text, strlen(text)), 0);
    vnp_predict_options o;
    const char *dir = tmpdir("dups");
    opts(&o, dir);
    o.input = in;
    g_log[0] = 0;
    vnp_log_set_handler(capture_log, NULL);
    vnp_predict_stats st;
    run_ok(&o, &st);
    vnp_log_set_handler(NULL, NULL);
    assert_non_null(strstr(g_log, "dups.fa: 2 records repeat an earlier record's ID (the first: "
                                  "'a', record 3); each repeat is written as <ID>_dup<k>"));
    char *got = first_column(out_file(dir, VNP_PREDICT_SEQUENCES));
    assert_string_equal(got, "a\nb\na_dup2\na_dup3\n");
    free(got);
    got = first_column(out_file(dir, VNP_PREDICT_HIGHEST));
    assert_string_equal(got, "a_chunk_1\na_dup2_chunk_1\na_dup3_chunk_1\nb_chunk_1\n");
    free(got);
}

/* A protein FASTA given to predict is refused (it used to be scored as DNA), naming the
 * record, and nothing is left behind. */
static void test_protein_input_refused(void **state)
{
    (void)state;
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("proteins.fa"));
    const char *text = ">ubiquitin\nMQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG\n";
    assert_int_equal(vnp_test_write_file(in, text, strlen(text)), 0);
    vnp_predict_options o;
    const char *dir = tmpdir("proteins");
    opts(&o, dir);
    o.input = in;
    vnp_error e;
    assert_int_equal(vnp_predict(&o, NULL, &e), VNP_EFORMAT);
    if (!strstr(e.msg, "record 'ubiquitin' looks like protein"))
        fail_msg("unexpected message: %s", e.msg);
    assert_int_equal(access(out_file(dir, VNP_PREDICT_RESULTS), F_OK), -1);
    assert_int_equal(access(out_file(dir, "prediction_results.txt.part"), F_OK), -1);
    assert_int_equal(access(out_file(dir, "predict.journal"), F_OK), -1);
}

static void test_memory_bounded_by_window_not_input(void **state)
{
    (void)state;
    /* 10x the records (and ORFs, chunks) must raise peak RSS by less than 10% */
    const char *small = repeated_input(40), *large = repeated_input(400);
    long r1 = child_rss(small, small, tmpdir("rss_small"), 40 * 41);
    long r2 = child_rss(small, large, tmpdir("rss_large"), 400 * 41);
    print_message("peak RSS: %ld kB for 40x golden, %ld kB for 400x golden\n", r1, r2);
    assert_true(r1 > 0);
    /* 10% in a normal build (measured: flat within 3%, 7.3 MB). Under AddressSanitizer
     * its allocator creeps up by itself when one thread frees what another allocated
     * (measured +12% for 10x, +16% for 50x the input, while the normal build stays
     * flat), so 20% there; leaks proper are LeakSanitizer's job in that build.
     * ThreadSanitizer's runtime (shadow and sync metadata) levels off higher too:
     * measured 51.0 / 56.8 / 57.8 MB for 40x / 400x / 2000x golden (+11%, then flat),
     * so 20% there as well. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    long slack = r1 / 5;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    long slack = r1 / 5;
#else
    long slack = r1 / 10;
#endif
#else
    long slack = r1 / 10;
#endif
    if (r2 >= r1 + slack)
        fail_msg("peak RSS grew from %ld kB to %ld kB for 10x the input", r1, r2);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--rss-child"))
        return rss_child(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_order_match_original),
        cmocka_unit_test(test_independent_of_windows_and_batches),
        cmocka_unit_test(test_sequences_consistent_with_rows),
        cmocka_unit_test(test_keep_intermediate_and_embeddings),
        cmocka_unit_test(test_nan_fails_and_leaves_nothing),
        cmocka_unit_test(test_model_errors_before_input),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_resume_after_failure),
        cmocka_unit_test(test_memory_bounded_by_window_not_input),
        cmocka_unit_test(test_duplicate_ids_kept_apart),
        cmocka_unit_test(test_protein_input_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
