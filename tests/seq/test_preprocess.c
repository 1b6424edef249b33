/* `virnucpro preprocess` against the original tool's files, and its edge cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_support.h"
#include "virnucpro/seq.h"

static const char *const k_outputs[3] = {"%s_chunked%d.fa", "%s_identified_nucleotide.fa",
                                         "%s_identified_protein.faa"};

static void copy_file(const char *from, const char *to, int gzip)
{
    size_t n;
    char *d = vnp_test_read_file(from, &n);
    assert_non_null(d);
    if (gzip) {
        gzFile g = gzopen(to, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, d, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        assert_int_equal(vnp_test_write_file(to, d, n), 0);
    }
    free(d);
}

static int run(const char *args, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s", args);
    char *out = NULL;
    int st = vnp_test_run(cmd, &out, err);
    free(out);
    return st;
}

/* The three files in dir for stem/chunk equal those in want_dir (stem want_stem, *.gz ok). */
static void assert_outputs(const char *dir, const char *stem, int chunk, const char *want_dir,
                           const char *want_stem, const char *want_ext)
{
    for (int i = 0; i < 3; i++) {
        char name[256], got[4096], want[4096];
        snprintf(name, sizeof name, k_outputs[i], stem, chunk);
        snprintf(got, sizeof got, "%s/%s", dir, name);
        snprintf(name, sizeof name, k_outputs[i], want_stem, chunk);
        snprintf(want, sizeof want, "%s/%s%s", want_dir, name, want_ext);
        vnp_test_assert_files_equal(got, want);
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", got);
        assert_int_not_equal(access(partial, F_OK), 0);
    }
}

static void golden(const char *input_rel, const char *stem, int chunk, const char *want_rel,
                   const char *ext)
{
    char in[4096], dir[4096], cmd[8192], want_dir[4096];
    snprintf(in, sizeof in, "%s", vnp_test_tmp(stem));
    strcat(in, ".fa");
    copy_file(vnp_test_fixture(input_rel), in, 0);
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("golden_out"));
    snprintf(cmd, sizeof cmd, "'%s' preprocess -q -l %d -o '%s' '%s'", vnp_test_cli(), chunk, dir,
             in);
    char *err = NULL;
    int st = run(cmd, &err);
    if (st != 0)
        fail_msg("%s -> %d: %s", cmd, st, err);
    assert_string_equal(err, "");
    free(err);
    snprintf(want_dir, sizeof want_dir, "%s", vnp_test_fixture(want_rel));
    assert_outputs(dir, stem, chunk, want_dir, stem, ext);
}

static void test_golden_300(void **state)
{
    (void)state;
    golden("golden/input.fa", "dev", 300, "golden/preprocess_300", "");
}

static void test_golden_500(void **state)
{
    (void)state;
    golden("golden/input.fa", "dev", 500, "golden/preprocess_500", "");
}

static void test_random_300(void **state)
{
    (void)state;
    golden("golden/preprocess_random/input.fa", "random_dev", 300, "golden/preprocess_random/c300",
           ".gz");
}

static void test_random_500(void **state)
{
    (void)state;
    golden("golden/preprocess_random/input.fa", "random_dev", 500, "golden/preprocess_random/c500",
           ".gz");
}

static void test_gzip_and_stdin(void **state)
{
    (void)state;
    char gz[4096], dir[4096], cmd[8192], want[4096];
    snprintf(gz, sizeof gz, "%s", vnp_test_tmp("dev.fasta.gz"));
    copy_file(vnp_test_fixture("golden/input.fa"), gz, 1);
    snprintf(want, sizeof want, "%s", vnp_test_fixture("golden/preprocess_300"));
    char *err = NULL;

    /* gzip input; the stem drops everything from ".fa" on: dev.fasta.gz -> dev */
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("gz_out"));
    snprintf(cmd, sizeof cmd, "'%s' preprocess -q -l 300 -o '%s' '%s'", vnp_test_cli(), dir, gz);
    assert_int_equal(run(cmd, &err), 0);
    free(err);
    assert_outputs(dir, "dev", 300, want, "dev", "");

    /* gzip through stdin, default name "stdin" */
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("stdin_out"));
    snprintf(cmd, sizeof cmd, "cat '%s' | '%s' preprocess -q -l 300 -o '%s' -", gz, vnp_test_cli(),
             dir);
    assert_int_equal(run(cmd, &err), 0);
    free(err);
    assert_outputs(dir, "stdin", 300, want, "dev", "");

    /* plain stdin with --name */
    snprintf(cmd, sizeof cmd, "'%s' preprocess -q -l 300 -o '%s' --name dev - < '%s'",
             vnp_test_cli(), dir, vnp_test_fixture("golden/input.fa"));
    assert_int_equal(run(cmd, &err), 0);
    free(err);
    assert_outputs(dir, "dev", 300, want, "dev", "");
}

static char *slurp(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *d = vnp_test_read_file(p, NULL);
    if (!d)
        fail_msg("missing output %s", p);
    return d;
}

static void test_empty_input_and_empty_records(void **state)
{
    (void)state;
    char in[4096], dir[4096], cmd[8192], want[4096];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("nothing.fa"));
    assert_int_equal(vnp_test_write_file(in, "", 0), 0);
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("empty_out"));
    snprintf(cmd, sizeof cmd, "'%s' preprocess -q -l 300 -o '%s' '%s'", vnp_test_cli(), dir, in);
    char *err = NULL;
    assert_int_equal(run(cmd, &err), 0);
    snprintf(want, sizeof want, "virnucpro: warning: %s: no sequences in the input\n", in);
    assert_string_equal(err, want);
    free(err);
    const char *names[3] = {"nothing_chunked300.fa", "nothing_identified_nucleotide.fa",
                            "nothing_identified_protein.faa"};
    for (int i = 0; i < 3; i++) {
        char *d = slurp(dir, names[i]);
        assert_string_equal(d, "");
        free(d);
    }

    /* An empty record is skipped with a warning; the others are processed. */
    snprintf(in, sizeof in, "%s", vnp_test_tmp("holes.fa"));
    const char fa[] = ">gap empty one\n>orf\nATGAAA\n";
    assert_int_equal(vnp_test_write_file(in, fa, sizeof fa - 1), 0);
    snprintf(cmd, sizeof cmd, "'%s' preprocess -q -l 300 -o '%s' '%s'", vnp_test_cli(), dir, in);
    assert_int_equal(run(cmd, &err), 0);
    snprintf(want, sizeof want,
             "virnucpro: warning: %s:1: record 'gap' has an empty sequence; skipped\n", in);
    assert_string_equal(err, want);
    free(err);
    char *d = slurp(dir, "holes_chunked300.fa");
    assert_string_equal(d, ">orf_chunk_1\nATGAAA\n");
    free(d);
    d = slurp(dir, "holes_identified_protein.faa");
    assert_string_equal(d, ">orf_chunk_1F1\nMK\n>orf_chunk_1F3\nE\n>orf_chunk_1R1\nFH\n"
                           ">orf_chunk_1R2\nF\n>orf_chunk_1R3\nS\n");
    free(d);
    d = slurp(dir, "holes_identified_nucleotide.fa");
    assert_string_equal(d, ">orf_chunk_1F1\nATGAAA\n>orf_chunk_1F3\nGAAA\n>orf_chunk_1R1\nTTTCAT\n"
                           ">orf_chunk_1R2\nTTCA\n>orf_chunk_1R3\nTCAT\n");
    free(d);
}

static void test_errors_leave_no_output(void **state)
{
    (void)state;
    char in[4096], dir[4096], cmd[8192], want[4096];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("broken.fq"));
    const char fq[] = "@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nII\n";
    assert_int_equal(vnp_test_write_file(in, fq, sizeof fq - 1), 0);
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp("broken_out"));
    snprintf(cmd, sizeof cmd, "'%s' preprocess -l 500 -o '%s' '%s'", vnp_test_cli(), dir, in);
    char *err = NULL;
    assert_int_equal(run(cmd, &err), 1);
    snprintf(want, sizeof want,
             "virnucpro: error: %s:8: FASTQ record 'r2' (line 5) has 4 bases but the file ends "
             "after 2 quality characters; the file is truncated\n",
             in);
    assert_string_equal(err, want);
    free(err);
    const char *names[6] = {"broken_chunked500.fa", "broken_identified_nucleotide.fa",
                            "broken_identified_protein.faa", "broken_chunked500.fa.partial",
                            "broken_identified_nucleotide.fa.partial",
                            "broken_identified_protein.faa.partial"};
    for (int i = 0; i < 6; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        assert_int_not_equal(access(p, F_OK), 0);
    }

    snprintf(cmd, sizeof cmd, "'%s' preprocess -l 500 '%s'", vnp_test_cli(),
             vnp_test_tmp("missing.fa"));
    assert_int_equal(run(cmd, &err), 1);
    snprintf(want, sizeof want,
             "virnucpro: error: cannot open input '%s': No such file or directory; check the "
             "path\n",
             vnp_test_tmp("missing.fa"));
    assert_string_equal(err, want);
    free(err);
}

static void test_cli_usage(void **state)
{
    (void)state;
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' preprocess --help", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "Usage: virnucpro preprocess -l LENGTH [-o DIR]"));
    assert_non_null(strstr(out, "S_identified_protein.faa"));
    free(out);
    free(err);

    snprintf(cmd, sizeof cmd, "'%s' --help", vnp_test_cli());
    assert_int_equal(vnp_test_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "  preprocess "));
    free(out);
    free(err);

    struct {
        const char *args, *msg;
    } bad[] = {
        {"x.fa", "virnucpro: error: missing -l/--length (300 or 500); see 'virnucpro preprocess "
                 "--help'\n"},
        {"-l 300", "virnucpro: error: missing INPUT (a FASTA/FASTQ file, or '-' for stdin)\n"},
        {"-l abc x.fa", "virnucpro: error: -l/--length expects a whole number from 3 to "
                        "100000000, got 'abc'\n"},
        {"-l 300 a.fa b.fa", "virnucpro: error: expected one INPUT, got 2 arguments\n"},
        {"-l 300 --bogus a.fa",
         "virnucpro: error: unknown option '--bogus'; see 'virnucpro preprocess --help'\n"},
        {"-l", "virnucpro: error: option '-l' needs a value; see 'virnucpro preprocess --help'\n"},
        {"-l 300 -n a/b x.fa",
         "virnucpro: error: --name must be a non-empty file name without '/', got 'a/b'\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' preprocess %s", vnp_test_cli(), bad[i].args);
        assert_int_equal(vnp_test_run(cmd, &out, &err), 2);
        assert_string_equal(err, bad[i].msg);
        free(out);
        free(err);
    }
}

static void test_stem(void **state)
{
    (void)state;
    struct {
        const char *in, *stem;
    } cases[] = {
        {"dev.fa", "dev"},
        {"/data/run1/sample.fasta.gz", "sample"},
        {"contigs.fa.gz", "contigs"},
        {"x.faa", "x"},
        {"a.b.fa", "a.b"},
        {"reads.fq.gz", "reads"},
        {"reads.fastq", "reads"},
        {"genome", "genome"},
        {"genome.gz", "genome"},
        {"reads.fq.bz2", "reads"},
        {"reads.fastq.xz", "reads"},
        {"reads.fq.zst", "reads"},
        {"genome.zst", "genome"},
        {"sample.fasta.bz2", "sample"},
        {"dir.fa/genome.txt", "genome"},
        {"-", "stdin"},
    };
    char out[256];
    vnp_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(vnp_preprocess_stem(cases[i].in, out, sizeof out, &err), VNP_OK);
        assert_string_equal(out, cases[i].stem);
    }
    assert_int_equal(vnp_preprocess_stem(".fa", out, sizeof out, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "cannot derive an output name from '.fa'; give one with --name");
    assert_int_equal(vnp_preprocess_stem("abcdef.fa", out, 4, &err), VNP_EINVAL);
}

static void test_library_api_stats(void **state)
{
    (void)state;
    vnp_preprocess_stats st;
    vnp_error err;
    char in[4096];
    snprintf(in, sizeof in, "%s", vnp_test_tmp("api.fa"));
    copy_file(vnp_test_fixture("golden/input.fa"), in, 0);
    assert_int_equal(vnp_preprocess(in, vnp_test_tmp("api_out/nested"), NULL, 500, &st, &err),
                     VNP_OK);
    /* 21 records; the golden files hold 57 chunks and 41 kept frames */
    assert_int_equal(st.records, 21);
    assert_int_equal(st.skipped, 0);
    assert_int_equal(st.chunks, 57);
    assert_int_equal(st.frames, 41);
    size_t n;
    char *d = vnp_test_read_file(in, &n);
    free(d);
    assert_int_equal(st.bytes, n);
    assert_outputs(vnp_test_tmp("api_out/nested"), "api", 500,
                   vnp_test_fixture("golden/preprocess_500"), "dev", "");
    assert_int_equal(vnp_preprocess(in, vnp_test_tmp("api.fa"), NULL, 500, &st, &err), VNP_EIO);
    char msg[4200];
    snprintf(msg, sizeof msg, "output path '%s' exists and is not a directory",
             vnp_test_tmp("api.fa"));
    assert_string_equal(err.msg, msg);
    assert_int_equal(vnp_preprocess(in, "", NULL, 500, &st, &err), VNP_EINVAL);
    assert_string_equal(err.msg, "the output directory name is empty");
    assert_int_equal(vnp_preprocess(in, vnp_test_tmp("x"), NULL, 0, &st, &err), VNP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stem),
        cmocka_unit_test(test_golden_300),
        cmocka_unit_test(test_golden_500),
        cmocka_unit_test(test_random_300),
        cmocka_unit_test(test_random_500),
        cmocka_unit_test(test_gzip_and_stdin),
        cmocka_unit_test(test_empty_input_and_empty_records),
        cmocka_unit_test(test_errors_leave_no_output),
        cmocka_unit_test(test_cli_usage),
        cmocka_unit_test(test_library_api_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
