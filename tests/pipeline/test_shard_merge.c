/* predict --shard I/N + virnucpro merge through the CLI: for N = 1, 2, 3, 7 on the golden
 * set (21 records) and N = 7 on its first 4 records (three shards with no record), the
 * merged files equal one run's byte for byte: prediction_results.txt,
 * prediction_results_highestscore.csv, sequences.tsv (and N = 23: two shards with no
 * record), and with --embeddings and
 * --keep-intermediate merged_features.safetensors and the three preprocessing files.
 * A shard stopped half way and resumed gives the same. merge refuses a missing shard, a
 * shard given twice, shards of another split, of another input or another model, an
 * unfinished shard, a file it does not know, and its output in a shard directory;
 * --resume refuses a journal of another shard.
 *
 * A shard batches other frames together than one run does; a frame's numbers do not
 * depend on its batch, so the one run compared with is made with other batches and
 * threads (--batch-tokens 700 -t 2) than the shards (the default batches, -t 1). */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G "golden/"
#define OPTS "-l 500 --device cpu --window 8 -q"

static const char *const OUTPUTS[] = {"prediction_results.txt",
                                      "prediction_results_highestscore.csv", "sequences.tsv"};
static const char *const EXTRA[] = {"merged_features.safetensors", "input_chunked500.fa",
                                    "input_identified_nucleotide.fa",
                                    "input_identified_protein.faa"};

static char models[3][4096];
static char golden_input[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(models[0], sizeof models[0], "%s", vnp_test_fixture(G "esm2"));
    snprintf(models[1], sizeof models[1], "%s", vnp_test_fixture(G "dnabert_s"));
    snprintf(models[2], sizeof models[2], "%s", vnp_test_fixture(G "classifier.pth"));
    snprintf(golden_input, sizeof golden_input, "%s", vnp_test_fixture(G "input.fa"));
    unsetenv("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS");
    unsetenv("VIRNUCPRO_DEBUG_KILL_AT");
    unsetenv("VIRNUCPRO_DEBUG_KILL_LOG");
    /* the _openblas_* variant: OpenBLAS must really run the core it names (an OpenBLAS
     * without DYNAMIC_ARCH ignores OPENBLAS_CORETYPE, and the variant would rerun the
     * default in silence) */
    const char *core = getenv("OPENBLAS_CORETYPE");
    if (core && *core) {
        char cmd[4200], *out = NULL;
        snprintf(cmd, sizeof cmd, "'%s' version", getenv("VNP_CLI"));
        if (vnp_test_run(cmd, &out, NULL) != 0 || !out || !strstr(out, core)) {
            fprintf(stderr, "OPENBLAS_CORETYPE=%s but `virnucpro version` says:\n%s", core,
                    out ? out : "(nothing)");
            free(out);
            return -1;
        }
        free(out);
    }
    return 0;
}

static const char *tmp(const char *dir, const char *name)
{
    return vnp_test_tmp_in(dir, name);
}

static void assert_has(const char *text, const char *s)
{
    if (!strstr(text, s))
        fail_msg("expected \"%s\" in:\n%s", s, text);
}

/* `env` virnucpro predict with the golden models, OPTS, `opts` on input into tmp/dir. */
static int predict(const char *env, const char *dir, const char *opts, const char *input,
                   char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "%s '%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' " OPTS
             " %s '%s'",
             env, vnp_test_cli(), vnp_test_tmp(dir), models[0], models[1], models[2], opts,
             input);
    return vnp_test_run(cmd, NULL, err);
}

static void predict_ok(const char *dir, const char *opts, const char *input)
{
    char *err = NULL;
    int rc = predict("", dir, opts, input, &err);
    if (rc != 0)
        fail_msg("predict %s -o %s: exit %d: %s", opts, dir, rc, err);
    free(err);
}

/* `env` virnucpro merge -o tmp/out with the shard directories `dirs` (space-separated
 * names under tmp). */
static int merge_env(const char *env, const char *out, const char *dirs, char **err)
{
    char cmd[16384];
    int n = snprintf(cmd, sizeof cmd, "%s '%s' merge -o '%s'", env, vnp_test_cli(),
                     vnp_test_tmp(out));
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", dirs);
    for (char *t = strtok(copy, " "); t; t = strtok(NULL, " "))
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", vnp_test_tmp(t));
    return vnp_test_run(cmd, NULL, err);
}

static int merge(const char *out, const char *dirs, char **err)
{
    return merge_env("", out, dirs, err);
}

/* Shards 1..N of `input` with `opts` into tmp/<prefix>_<I>of<N>; their names in dirs. */
static void run_shards(const char *prefix, int n, const char *opts, const char *input,
                       char *dirs, size_t cap)
{
    size_t used = 0;
    dirs[0] = 0;
    for (int i = 1; i <= n; i++) {
        char dir[128], o[512];
        snprintf(dir, sizeof dir, "%s_%dof%d", prefix, i, n);
        snprintf(o, sizeof o, "%s --shard %d/%d", opts, i, n);
        predict_ok(dir, o, input);
        used += (size_t)snprintf(dirs + used, cap - used, "%s%s", i > 1 ? " " : "", dir);
    }
}

/* The derived files one run writes besides the two original ones and sequences.tsv
 * (merge makes report.html and plots/ from the input the shards recorded). */
static const char *const DERIVED[] = {"chunks.tsv", "viral_regions.bed", "viral.fna",
                                      "report.html"};

static void assert_merged(const char *out, const char *ref, int extra)
{
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(tmp(out, OUTPUTS[i]), tmp(ref, OUTPUTS[i]));
    for (int i = 0; i < 4; i++)
        vnp_test_assert_files_equal(tmp(out, DERIVED[i]), tmp(ref, DERIVED[i]));
    char cmd[8192], *diff = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s'", tmp(out, "plots"), tmp(ref, "plots"));
    if (vnp_test_run(cmd, &diff, &err) != 0)
        fail_msg("plots/ differ: %s%s", diff, err);
    free(diff);
    free(err);
    for (int i = 0; extra && i < 4; i++)
        vnp_test_assert_files_equal(tmp(out, EXTRA[i]), tmp(ref, EXTRA[i]));
    assert_int_equal(access(tmp(out, "shard.txt"), F_OK), -1);
}

static void reference(void)
{
    static int done;
    if (!done) {
        predict_ok("ref", "-t 2 --batch-tokens 700", golden_input);
        done = 1;
    }
}

/* 1. N = 1, 2, 3, 7 and 23 on the golden set, shards given in any order */
static void test_golden_splits(void **state)
{
    (void)state;
    reference();
    static const int ns[] = {1, 2, 3, 7, 23}; /* 23: shards 22 and 23 take no record */
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        char dirs[4096], out[64], rev[4096] = "";
        run_shards("g", ns[k], "", golden_input, dirs, sizeof dirs);
        /* the shard record: which shard, the input's records, this shard's */
        char *rec = vnp_test_read_file(tmp("g_1of1", "shard.txt"), NULL);
        if (ns[k] == 1) {
            assert_has(rec, "shard 1/1\nrecords 21\ninput_records 21\n");
            assert_has(rec, "ident shard 1/1\n");
        }
        free(rec);
        /* reversed order on the command line */
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", dirs);
        for (char *t = strtok(copy, " "); t; t = strtok(NULL, " ")) {
            char tmpb[4096];
            snprintf(tmpb, sizeof tmpb, "%s%s%s", t, *rev ? " " : "", rev);
            snprintf(rev, sizeof rev, "%s", tmpb);
        }
        snprintf(out, sizeof out, "merged%d", ns[k]);
        char *err = NULL;
        int rc = merge(out, rev, &err);
        if (rc)
            fail_msg("merge N=%d: exit %d: %s", ns[k], rc, err);
        free(err);
        assert_merged(out, "ref", 0);
        /* run.json: one run's schema (what classify reads), counts summed, the shards' runs */
        char *rj = vnp_test_read_file(tmp(out, "run.json"), NULL);
        assert_non_null(rj);
        assert_has(rj, "\"schema\":\t\"virnucpro-run/1\"");
        assert_has(rj, "\"chunk_length\":\t500");
        assert_has(rj, "\"counts\":\t{\n\t\t\"records\":\t21,\n\t\t\"chunks\":\t57,");
        char want[64];
        snprintf(want, sizeof want, "\"shards\":\t%d", ns[k]);
        assert_has(rj, want);
        free(rj);
    }
    /* shard 23/23 took no record: the headers alone */
    char *none = vnp_test_read_file(tmp("g_23of23", "prediction_results.txt"), NULL);
    assert_non_null(none);
    assert_string_equal(none, "Sequence_ID\tPrediction\tscore1\tscore2\n");
    free(none);
    /* shard 2/3 took records 2, 5, 8, ... (1-based): 7 of 21 */
    char *seq = vnp_test_read_file(tmp("g_2of3", "sequences.tsv"), NULL);
    assert_non_null(seq);
    assert_has(seq, "\nlambda_dev_1\t");
    assert_has(seq, "\nlambda_dev_4\t");
    assert_null(strstr(seq, "lambda_dev_0"));
    free(seq);
}

/* The first n records of the golden input into tmp/name. */
static const char *first_records(size_t n, const char *name)
{
    static char path[4096];
    size_t len;
    char *t = vnp_test_read_file(golden_input, &len);
    assert_non_null(t);
    size_t seen = 0, end = len;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '>' && (i == 0 || t[i - 1] == '\n') && seen++ == n) {
            end = i;
            break;
        }
    snprintf(path, sizeof path, "%s", vnp_test_tmp(name));
    assert_int_equal(vnp_test_write_file(path, t, end), 0);
    free(t);
    return path;
}

/* 2. N = 7 on 4 records: shards 5, 6 and 7 have no record (headers only) */
static void test_empty_shards(void **state)
{
    (void)state;
    const char *in = first_records(4, "four.fa");
    predict_ok("ref4", "", in);
    char dirs[4096];
    run_shards("f", 7, "", in, dirs, sizeof dirs);
    char *seq = vnp_test_read_file(tmp("f_6of7", "sequences.tsv"), NULL);
    assert_non_null(seq);
    assert_string_equal(seq, "Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\t"
                             "Max_virus_score\tVerdict\n");
    free(seq);
    char *err = NULL;
    int rc = merge("merged4", dirs, &err);
    if (rc)
        fail_msg("merge: exit %d: %s", rc, err);
    free(err);
    assert_merged("merged4", "ref4", 0);
}

/* 3. --embeddings and --keep-intermediate: those files merge too */
static void test_extra_outputs(void **state)
{
    (void)state;
    const char *o = "--embeddings --keep-intermediate";
    predict_ok("refx", o, golden_input);
    char dirs[4096];
    run_shards("x", 3, o, golden_input, dirs, sizeof dirs);
    char *err = NULL;
    int rc = merge("mergedx", dirs, &err);
    if (rc)
        fail_msg("merge: exit %d: %s", rc, err);
    free(err);
    assert_merged("mergedx", "refx", 1);
}

/* 4. a shard stopped after its first window, then resumed: the same merge; a journal of
 * another shard is refused */
static void test_resume(void **state)
{
    (void)state;
    reference();
    char *err = NULL;
    int rc = predict("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=1", "r_2of3", "--shard 2/3",
                     golden_input, &err);
    assert_int_equal(rc, 1);
    assert_has(err, "run the same command with --resume");
    free(err);
    rc = predict("", "r_2of3", "--shard 3/3 --resume", golden_input, &err);
    assert_int_equal(rc, 1);
    assert_has(err, "cannot resume: the shard (--shard I/N) changed since the interrupted run");
    assert_has(err, "was 2/3, now 3/3");
    free(err);
    rc = predict("", "r_2of3", "--resume", golden_input, &err);
    assert_int_equal(rc, 1);
    assert_has(err, "cannot resume: the shard (--shard I/N) changed");
    assert_has(err, "was 2/3, now none");
    free(err);
    predict_ok("r_2of3", "--shard 2/3 --resume", golden_input);
    predict_ok("r_1of3", "--shard 1/3", golden_input);
    /* the summary names the shard and counts its records */
    char sum[16384];
    snprintf(sum, sizeof sum,
             "'%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' -l 500 -t 1 "
             "--device cpu --shard 3/7 '%s'",
             vnp_test_cli(), vnp_test_tmp("summary"), models[0], models[1], models[2],
             golden_input);
    assert_int_equal(vnp_test_run(sum, NULL, &err), 0);
    assert_has(err, "virnucpro: predict: shard 3/7: 3 records, ");
    free(err);
    /* the last shard too: stopped with its last record done, resumed past the rest */
    rc = predict("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=2", "r_3of3", "--shard 3/3", golden_input,
                 &err);
    assert_int_equal(rc, 1);
    free(err);
    predict_ok("r_3of3", "--shard 3/3 --resume", golden_input);
    rc = merge("merged_r", "r_1of3 r_2of3 r_3of3", &err);
    if (rc)
        fail_msg("merge: exit %d: %s", rc, err);
    free(err);
    assert_merged("merged_r", "ref", 0);
}

static void expect_refusal(const char *dirs, const char *msg)
{
    char *err = NULL;
    int rc = merge("refused", dirs, &err);
    if (rc != 1)
        fail_msg("merge %s: exit %d (expected 1): %s", dirs, rc, err);
    assert_has(err, msg);
    free(err);
    /* nothing is written */
    assert_int_equal(access(tmp("refused", "prediction_results.txt"), F_OK), -1);
    assert_int_equal(access(tmp("refused", "prediction_results.txt.part"), F_OK), -1);
}

/* 5. what merge refuses, with messages naming the directories */
static void test_refusals(void **state)
{
    (void)state;
    char dirs[4096];
    run_shards("e", 3, "", golden_input, dirs, sizeof dirs);
    expect_refusal("e_1of3 e_3of3", "1 of 3 shards is missing (2/3): pass the output directory");
    expect_refusal("e_1of3", "2 of 3 shards are missing (2/3, 3/3)");
    expect_refusal("e_1of3 e_2of3 e_2of3 e_3of3", "shard 2/3 is given twice: ");
    /* another split */
    predict_ok("e2_1of2", "--shard 1/2", golden_input);
    expect_refusal("e_1of3 e_2of3 e_3of3 e2_1of2", "is shard 1/2: shards of different splits");
    /* another model (a classifier file with other bytes) */
    char *err = NULL, cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' predict -o '%s' --esm '%s' --dnabert '%s' --classifier '%s' " OPTS
             " --shard 2/3 '%s'",
             vnp_test_cli(), vnp_test_tmp("c_2of3"), models[0], models[1],
             vnp_test_fixture(G "classifier_torch1.13.pth"), golden_input);
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 0);
    free(err);
    expect_refusal("e_1of3 c_2of3 e_3of3",
                   "are not shards of the same run: the classifier file (SHA-256) differs");
    /* another input (its first 20 records) */
    predict_ok("i_3of3", "--shard 3/3", first_records(20, "twenty.fa"));
    expect_refusal("e_1of3 e_2of3 i_3of3", "are shards of different inputs (21 records");
    /* an unfinished shard */
    int rc = predict("VIRNUCPRO_DEBUG_FAIL_AFTER_WINDOWS=1", "u_2of3", "--shard 2/3",
                     golden_input, &err);
    assert_int_equal(rc, 1);
    free(err);
    expect_refusal("e_1of3 u_2of3 e_3of3", "u_2of3 holds an unfinished predict run "
                                           "(predict.journal): finish it with the same command "
                                           "and --resume");
    /* not a shard at all, a missing directory */
    predict_ok("plain", "", golden_input);
    expect_refusal("e_1of3 plain e_3of3", "plain has no shard.txt: it is not the output of a "
                                          "finished 'predict --shard I/N' run");
    expect_refusal("e_1of3 nowhere e_3of3", "nowhere is not a directory");
    /* a file merge does not know */
    assert_int_equal(vnp_test_write_file(tmp("e_2of3", "notes.txt"), "x\n", 2), 0);
    expect_refusal("e_1of3 e_2of3 e_3of3",
                   "e_2of3/notes.txt: merge does not know how to combine this file");
    unlink(tmp("e_2of3", "notes.txt"));
    /* a shard whose rows were changed after the run */
    size_t len;
    char *seq = vnp_test_read_file(tmp("e_3of3", "sequences.tsv"), &len);
    assert_int_equal(vnp_test_write_file(tmp("e_3of3", "sequences.tsv"), seq, len / 2 + 1), 0);
    expect_refusal("e_1of3 e_2of3 e_3of3", "e_3of3/sequences.tsv");
    assert_int_equal(vnp_test_write_file(tmp("e_3of3", "sequences.tsv"), seq, len), 0);
    free(seq);
    /* the output inside a shard */
    char out[64];
    snprintf(out, sizeof out, "e_1of3");
    snprintf(cmd, sizeof cmd, "'%s' merge -o '%s' '%s' '%s' '%s'", vnp_test_cli(),
             vnp_test_tmp(out), vnp_test_tmp("e_1of3"), vnp_test_tmp("e_2of3"),
             vnp_test_tmp("e_3of3"));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    assert_has(err, "is one of the shards: write the merged files elsewhere");
    free(err);
    /* after all that the three still merge */
    rc = merge("merged_e", dirs, &err);
    if (rc)
        fail_msg("merge: exit %d: %s", rc, err);
    free(err);
    reference();
    assert_merged("merged_e", "ref", 0);
}

/* Per-record files of the kinds predict may add (chunks.tsv, viral_regions.bed, viral.fna,
 * run.json), made up from a directory's sequences.tsv: a table with a header and one row
 * per chunk, a header-less table with Chunks_virus rows per record (none for most), a FASTA
 * of the viral records with two sequence lines each, and a JSON object. */
static void add_per_record_files(const char *dir, const char *tag)
{
    size_t len;
    char *seq = vnp_test_read_file(tmp(dir, "sequences.tsv"), &len);
    assert_non_null(seq);
    size_t cap = 1 << 20, a = 0, b = 0, c = 0;
    char *chunks = malloc(cap), *bed = malloc(cap), *fna = malloc(cap);
    a += (size_t)snprintf(chunks, cap, "Sequence_ID\tChunk_ID\n");
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(seq, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (first) { /* header */
            first = 0;
            continue;
        }
        char id[256];
        long length, nchunks, scored, viral;
        char verdict[32];
        assert_int_equal(sscanf(line, "%255[^\t]\t%ld\t%ld\t%ld\t%ld\t%*s\t%31s", id, &length,
                                &nchunks, &scored, &viral, verdict),
                         6);
        for (long k = 1; k <= nchunks; k++)
            a += (size_t)snprintf(chunks + a, cap - a, "%s\t%s_chunk_%ld\n", id, id, k);
        for (long k = 1; k <= viral; k++)
            b += (size_t)snprintf(bed + b, cap - b, "%s\t0\t%ld\t%s_region_%ld\t500\t.\n", id,
                                  length, id, k);
        if (!strcmp(verdict, "virus"))
            c += (size_t)snprintf(fna + c, cap - c, ">%s verdict=virus\nACGTACGT\nACG\n", id);
    }
    assert_int_equal(vnp_test_write_file(tmp(dir, "chunks.tsv"), chunks, a), 0);
    assert_int_equal(vnp_test_write_file(tmp(dir, "viral_regions.bed"), bed, b), 0);
    assert_int_equal(vnp_test_write_file(tmp(dir, "viral.fna"), fna, c), 0);
    char json[256];
    int jn = snprintf(json, sizeof json, "{\"run\": \"%s\"}\n", tag);
    assert_int_equal(vnp_test_write_file(tmp(dir, "run.json"), json, (size_t)jn), 0);
    free(seq);
    free(chunks);
    free(bed);
    free(fna);
}

/* 6. the other per-record files merge into input order too; run.json gathers the shards' */
static void test_per_record_files(void **state)
{
    (void)state;
    predict_ok("refp", "", golden_input);
    add_per_record_files("refp", "one run");
    char dirs[4096];
    run_shards("p", 3, "", golden_input, dirs, sizeof dirs);
    for (int i = 1; i <= 3; i++) {
        char d[64], t[64];
        snprintf(d, sizeof d, "p_%dof3", i);
        snprintf(t, sizeof t, "shard %d", i);
        add_per_record_files(d, t);
    }
    char *err = NULL;
    int rc = merge("mergedp", "p_3of3 p_1of3 p_2of3", &err);
    if (rc)
        fail_msg("merge: exit %d: %s", rc, err);
    /* the shards' run.json are made up: no input to draw the report from, and merge says
     * how to make it */
    assert_has(err, "report.html and plots/ need the input the shards read: run 'virnucpro "
                    "classify ");
    free(err);
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(tmp("mergedp", OUTPUTS[i]), tmp("refp", OUTPUTS[i]));
    static const char *const more[] = {"chunks.tsv", "viral_regions.bed", "viral.fna"};
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(tmp("mergedp", more[i]), tmp("refp", more[i]));
    char *json = vnp_test_read_file(tmp("mergedp", "run.json"), NULL);
    assert_non_null(json);
    assert_has(json, "\"shards\":\t3");
    assert_has(json, "\"input_records\":\t21");
    const char *s1 = strstr(json, "\"run\":\t\"shard 1\""), *s2 = strstr(json, "\"run\":\t\"shard 2\""),
               *s3 = strstr(json, "\"run\":\t\"shard 3\"");
    assert_true(s1 && s2 && s3 && s1 < s2 && s2 < s3);
    free(json);
}

/* the report needs the shards' input: another input is refused, naming it */
static void test_report_input(void **state)
{
    (void)state;
    char dirs[4096], cmd[16384], *err = NULL;
    run_shards("ri", 2, "", golden_input, dirs, sizeof dirs);
    snprintf(cmd, sizeof cmd, "'%s' merge -o '%s' --input '%s' '%s' '%s'", vnp_test_cli(),
             vnp_test_tmp("merged_ri"), first_records(20, "twenty_ri.fa"), tmp("ri_1of2", ""),
             tmp("ri_2of2", ""));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 1);
    assert_has(err, "belongs to no record of ");
    assert_has(err, "report.html and plots/ are not");
    free(err);
    /* the merged tables are there all the same */
    vnp_test_assert_files_equal(tmp("merged_ri", "prediction_results.txt"),
                                tmp("ref", "prediction_results.txt"));
}

/* 8. a merge killed at each of its points (VIRNUCPRO_DEBUG_KILL_AT: merge.journal written,
 * every rename of a merged file, the report's renames, the journal removed). While
 * merge.journal is there OUT is half merged: classify, predict --resume and a merge taking
 * OUT as a shard refuse it, saying to run the merge again. Without it OUT holds all the
 * merged files, the uninterrupted merge's bytes. The merge run again completes OUT to
 * those bytes. */
static void expect_half_merged(const char *what, const char *cmd_or_null, int rc, char *err)
{
    if (rc != 1 || !strstr(err, " is half merged (merge.journal: a 'virnucpro merge -o ") ||
        !strstr(err, "run that merge again to complete it"))
        fail_msg("%s%s: exit %d, want 1 and the half-merged message; stderr:\n%s", what,
                 cmd_or_null ? cmd_or_null : "", rc, err);
    free(err);
}

static void test_killed_merge(void **state)
{
    (void)state;
    char dirs[4096], env[4200], cmd[16384], *err = NULL;
    reference();
    run_shards("k", 2, "", golden_input, dirs, sizeof dirs);
    const char *log = vnp_test_tmp("kmerge.points");
    remove(log);
    snprintf(env, sizeof env, "VIRNUCPRO_DEBUG_KILL_LOG='%s'", log);
    if (merge_env(env, "kmerged_ref", dirs, &err))
        fail_msg("merge: %s", err);
    free(err);
    /* the points: the journal, 7 merged files, the report's outputs written and renamed
     * (6), the journal goes */
    char *pts = vnp_test_read_file(log, NULL);
    assert_non_null(pts);
    assert_string_equal(pts, "1 merge journal written\n"
                             "2 merged file renamed into place\n"
                             "3 merged file renamed into place\n"
                             "4 merged file renamed into place\n"
                             "5 merged file renamed into place\n"
                             "6 merged file renamed into place\n"
                             "7 merged file renamed into place\n"
                             "8 merged file renamed into place\n"
                             "9 derived outputs written\n"
                             "10 output renamed into place\n"
                             "11 output renamed into place\n"
                             "12 output renamed into place\n"
                             "13 output renamed into place\n"
                             "14 output renamed into place\n"
                             "15 output renamed into place\n"
                             "16 merge journal removed\n");
    free(pts);
    assert_merged("kmerged_ref", "ref", 0);
    for (int k = 1; k <= 16; k++) {
        char out[64], when[128];
        snprintf(out, sizeof out, "kmerged_%d", k);
        snprintf(when, sizeof when, "merge killed at point %d", k);
        snprintf(env, sizeof env, "VIRNUCPRO_DEBUG_KILL_AT=%d", k);
        int rc = merge_env(env, out, dirs, &err);
        if (rc != 128 + 9)
            fail_msg("%s: exit %d, want death by SIGKILL: %s", when, rc, err);
        free(err);
        if (k < 16) {
            assert_int_equal(access(tmp(out, "merge.journal"), F_OK), 0);
            snprintf(cmd, sizeof cmd, "'%s' classify '%s' --input '%s'", vnp_test_cli(),
                     vnp_test_tmp(out), golden_input);
            int r = vnp_test_run(cmd, NULL, &err);
            expect_half_merged(when, ", then classify", r, err);
            r = predict("", out, "--resume", golden_input, &err);
            expect_half_merged(when, ", then predict --resume", r, err);
            char as_shard[256];
            snprintf(as_shard, sizeof as_shard, "%s k_2of2", out);
            r = merge("kmerged_x", as_shard, &err);
            expect_half_merged(when, ", then a merge of it", r, err);
        } else { /* killed after the journal went: complete */
            assert_int_equal(access(tmp(out, "merge.journal"), F_OK), -1);
            assert_merged(out, "ref", 0);
        }
        if (merge(out, dirs, &err)) /* run again: complete */
            fail_msg("%s, then the merge again: %s", when, err);
        free(err);
        snprintf(cmd, sizeof cmd, "diff -r '%s' '%s'", vnp_test_tmp(out),
                 vnp_test_tmp("kmerged_ref"));
        char *diff = NULL;
        if (vnp_test_run(cmd, &diff, &err) != 0)
            fail_msg("%s, then the merge again: not the uninterrupted merge: %s%s", when, diff,
                     err);
        free(diff);
        free(err);
    }
}

/* 7. --shard and merge usage errors (exit 2) */
static void test_usage(void **state)
{
    (void)state;
    static const char *const bad[] = {"0/3", "4/3", "3", "a/b", "1/0", "2/3x", "-1/3", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char opt[64], *err = NULL;
        snprintf(opt, sizeof opt, "--shard '%s'", bad[i]);
        assert_int_equal(predict("", "bad", opt, golden_input, &err), 2);
        assert_has(err, "--shard expects I/N with 1 <= I <= N <= 1000000");
        free(err);
    }
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' merge '%s'", vnp_test_cli(), vnp_test_tmp("x"));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "missing -o OUT");
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' merge -o '%s'", vnp_test_cli(), vnp_test_tmp("x"));
    assert_int_equal(vnp_test_run(cmd, NULL, &err), 2);
    assert_has(err, "missing the shard directories");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_splits), cmocka_unit_test(test_empty_shards),
        cmocka_unit_test(test_extra_outputs), cmocka_unit_test(test_resume),
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_per_record_files),
        cmocka_unit_test(test_report_input), cmocka_unit_test(test_usage),
        cmocka_unit_test(test_killed_merge),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
