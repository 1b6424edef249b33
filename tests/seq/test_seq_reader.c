/* The streaming FASTA/FASTQ reader: layout variants, gzip, stdin, every error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "seq_reader_checks.h"
#include "test_support.h"
#include "virnucpro/seq.h"

static void test_fasta_layouts(void **state)
{
    (void)state;
    /* multi-line, blank lines inside and around, CRLF, description with tabs,
     * leading blanks before the ID, a last line with no newline */
    const char *p = PUTS("layouts.fa", "\n\n>r1 first record\nACGT\nacgt\n\nNN\n"
                                       ">r2\tdesc\twith tabs  \r\nAC\r\nGT\r\n\r\n"
                                       ">  r3   spaced  \nA C\tG T \n"
                                       ">r4\nTTTT");
    expect_records(p, "r1|first record|ACGTacgtNN|-|3\n"
                      "r2|desc\twith tabs|ACGT|-|8\n"
                      "r3|spaced|ACGT|-|12\n"
                      "r4||TTTT|-|14\n");
}

static void test_header_without_id(void **state)
{
    (void)state;
    /* As Biopython: an empty title gives an empty ID. */
    const char *p = PUTS("noid.fa", ">\nACGT\n>   \nGG\n");
    expect_records(p, "||ACGT|-|1\n||GG|-|3\n");
}

static void test_utf8_header(void **state)
{
    (void)state;
    /* Non-ASCII text is fine in headers (descriptions), not in sequences. */
    const char *p = PUTS("utf8.fa", ">s\xc3\xa9q E. coli \xe2\x80\x93 strain\nACGT\n>x\nAC\xc3\xa9\n");
    char *dump, *log, msg[512];
    vnp_error err;
    assert_int_equal(read_all(p, &dump, &log, &err), -(int)VNP_EFORMAT);
    assert_string_equal(dump, "s\xc3\xa9q|E. coli \xe2\x80\x93 strain|ACGT|-|1\n");
    snprintf(msg, sizeof msg,
             "%s:4: byte 0xc3 at column 3 is not sequence text; the input looks binary or is "
             "not FASTA/FASTQ",
             p);
    assert_string_equal(err.msg, msg);
    free(dump);
    free(log);
}

static void test_long_lines_across_buffer_fills(void **state)
{
    (void)state;
    /* One unwrapped 3 Mbp record (three times the read buffer) then a short one. */
    size_t n = 3u << 20;
    char *data = malloc(n + 64);
    size_t k = (size_t)sprintf(data, ">big\n");
    for (size_t i = 0; i < n; i++)
        data[k++] = "ACGT"[(i * 7 + i / 3) & 3];
    k += (size_t)sprintf(data + k, "\n>small x\nAC\n");
    const char *p = put("big.fa", data, k);
    vnp_seq_reader *r;
    vnp_error err;
    vnp_record rec;
    assert_int_equal(vnp_seq_open(p, &r, &err), VNP_OK);
    assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
    assert_string_equal(rec.id, "big");
    assert_int_equal(rec.len, n);
    assert_memory_equal(rec.seq, data + 5, n);
    assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
    assert_string_equal(rec.id, "small");
    assert_string_equal(rec.desc, "x");
    assert_string_equal(rec.seq, "AC");
    assert_int_equal(rec.line, 3);
    assert_int_equal(vnp_seq_read(r, &rec, &err), 0);
    assert_int_equal(vnp_seq_records(r), 2);
    assert_int_equal(vnp_seq_bytes(r), k);
    vnp_seq_close(r);
    free(data);
}

static void test_fastq(void **state)
{
    (void)state;
    /* 4-line records, CRLF, a quality line starting with '@', a multi-line record,
     * blank lines between records. */
    const char *p = PUTS("reads.fq", "@q1 desc\nACGT\n+\nIIII\n"
                                     "@q2\r\nAC\r\n+q2\r\n@@\r\n"
                                     "\n"
                                     "@q3\nACG\nTA\n+\nII\n@II\n");
    expect_records(p, "q1|desc|ACGT|IIII|1\nq2||AC|@@|5\nq3||ACGTA|II@II|10\n");
}

static void test_fastq_quality_mismatch(void **state)
{
    (void)state;
    const char *p = PUTS("short_q.fq", "@a\nACGT\n+\nIIII\n@b\nACGT\n+\nIII\n@c\nA\n+\nI\n");
    char msg[512];
    /* b's 3 quality characters (line 8); the next header "@c" is not counted as quality */
    snprintf(msg, sizeof msg,
             "%s:8: FASTQ record 'b' (line 5) has 4 bases but 3 quality characters; the "
             "lengths must match",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("long_q.fq", "@a\nACGT\n+\nIIIII\n@b\nA\n+\nI\n");
    snprintf(msg, sizeof msg,
             "%s:4: FASTQ record 'a' (line 1) has 4 bases but 5 quality characters; the "
             "lengths must match",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("end_q.fq", "@a\nACGT\n+\nII\n");
    snprintf(msg, sizeof msg,
             "%s:4: FASTQ record 'a' (line 1) has 4 bases but the file ends after 2 quality "
             "characters; the file is truncated",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("noplus.fq", "@a\nACGT\nIIII\n");
    snprintf(msg, sizeof msg,
             "%s:3: FASTQ record 'a' (line 1) ends without its '+' line; the file is "
             "truncated or not FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("twoheads.fq", "@a\n@b\nAC\n+\nII\n");
    snprintf(msg, sizeof msg,
             "%s:2: FASTQ record 'a' (line 1) has no '+' line before the next record; the "
             "file is not valid FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
}

static void test_binary_and_non_fasta(void **state)
{
    (void)state;
    char msg[512];
    const char *p = put("png.fa", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    snprintf(msg, sizeof msg,
             "%s:1: byte 0x89 at column 1 is not sequence text; the input looks binary or is "
             "not FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = put("nul.fa", ">a\nACGT\n>b\nACG\0T\n", 17);
    snprintf(msg, sizeof msg,
             "%s:4: byte 0x00 at column 4 is not sequence text; the input looks binary or is "
             "not FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("text.txt", "\n\nThis is a README, not a FASTA file.\n>x\nAC\n");
    snprintf(msg, sizeof msg,
             "%s:3: expected a FASTA header ('>') or a FASTQ header ('@'), found 'This is a "
             "README, no'; the input is not FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("ctl_header.fa", ">a\nAC\n>b\x01x\nAC\n");
    snprintf(msg, sizeof msg,
             "%s:3: control byte 0x01 in a header; the input looks binary or is not "
             "FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    p = PUTS("bad_qual.fq", "@a\nAC\n+\nI\x7f\n");
    snprintf(msg, sizeof msg,
             "%s:4: byte 0x7f at column 2 is not a quality character; the input looks binary "
             "or is not FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
}

static void test_empty_inputs(void **state)
{
    (void)state;
    const char *names[] = {"empty.fa", "blank.fa"};
    const char *data[] = {"", "\n\r\n  \n"};
    for (int i = 0; i < 2; i++) {
        const char *p = put(names[i], data[i], strlen(data[i]));
        char *dump, *log, want[512];
        vnp_error err;
        assert_int_equal(read_all(p, &dump, &log, &err), 0);
        assert_string_equal(dump, "");
        snprintf(want, sizeof want, "%s: no sequences in the input\n", p);
        assert_string_equal(log, want);
        free(dump);
        free(log);
    }
}

static void test_empty_sequence_records_skipped(void **state)
{
    (void)state;
    const char *p = PUTS("empty_rec.fa", ">e1 nothing\n>a\nAC\n>e2\n\n  \n>b\nGG\n>e3\n");
    char *dump, *log, want[1024];
    vnp_error err;
    vnp_seq_reader *r;
    assert_int_equal(read_all(p, &dump, &log, &err), 0);
    assert_string_equal(dump, "a||AC|-|2\nb||GG|-|7\n");
    snprintf(want, sizeof want,
             "%s:1: record 'e1' has an empty sequence; skipped\n"
             "%s:4: record 'e2' has an empty sequence; skipped\n"
             "%s:9: record 'e3' has an empty sequence; skipped\n",
             p, p, p);
    assert_string_equal(log, want);
    free(dump);
    free(log);

    /* counters */
    vnp_record rec;
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_seq_open(p, &r, &err), VNP_OK);
    while (vnp_seq_read(r, &rec, &err) == 1)
        ;
    assert_int_equal(vnp_seq_records(r), 2);
    assert_int_equal(vnp_seq_skipped(r), 3);
    vnp_seq_close(r);
    free(vnp_test_capture_log_end());

    /* FASTQ with an empty read, and a file of nothing but empty records */
    p = PUTS("empty_read.fq", "@e\n+\n\n@a\nA\n+\nI\n");
    assert_int_equal(read_all(p, &dump, &log, &err), 0);
    assert_string_equal(dump, "a||A|I|4\n");
    snprintf(want, sizeof want, "%s:1: record 'e' has an empty sequence; skipped\n", p);
    assert_string_equal(log, want);
    free(dump);
    free(log);

    p = PUTS("all_empty.fa", ">x\n>y\n");
    assert_int_equal(read_all(p, &dump, &log, &err), 0);
    assert_string_equal(dump, "");
    snprintf(want, sizeof want,
             "%s:1: record 'x' has an empty sequence; skipped\n"
             "%s:2: record 'y' has an empty sequence; skipped\n"
             "%s: every record has an empty sequence; nothing to process\n",
             p, p, p);
    assert_string_equal(log, want);
    free(dump);
    free(log);
}

static const char *write_gz(const char *name, const char *data, size_t len, int members)
{
    const char *p = vnp_test_tmp(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    size_t per = (len + (size_t)members - 1) / (size_t)members;
    for (size_t off = 0; off < len; off += per) {
        size_t n = len - off < per ? len - off : per;
        /* each member compressed separately and concatenated */
        uLongf cap = compressBound((uLong)n) + 64;
        unsigned char *z = malloc(cap);
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = (unsigned char *)data + off;
        zs.avail_in = (uInt)n;
        zs.next_out = z;
        zs.avail_out = (uInt)cap;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        fwrite(z, 1, zs.total_out, f);
        deflateEnd(&zs);
        free(z);
    }
    fclose(f);
    return p;
}

static void test_gzip(void **state)
{
    (void)state;
    const char fa[] = ">g1 gz\nACGT\nAC\n>g2\nTTTT\n";
    const char *want = "g1|gz|ACGTAC|-|1\ng2||TTTT|-|4\n";
    expect_records(write_gz("one.fa.gz", fa, sizeof fa - 1, 1), want);
    expect_records(write_gz("multi.fa.gz", fa, sizeof fa - 1, 3), want); /* concatenated members */
    /* detected from the content, not the name */
    expect_records(write_gz("named_plain.fa", fa, sizeof fa - 1, 1), want);
}

static void test_truncated_gzip(void **state)
{
    (void)state;
    /* 1000 lines of sequence; the stream loses its 4-byte length trailer, so every
     * line decodes and the end is noticed after line 1000. */
    size_t cap = 1000 * 62 + 16, k = 0;
    char *data = malloc(cap);
    k += (size_t)sprintf(data, ">t\n");
    for (int i = 1; i < 1000; i++) {
        for (int j = 0; j < 60; j++)
            data[k++] = "ACGT"[(i * 31 + j * 7 + j / 5) & 3];
        data[k++] = '\n';
    }
    const char *p = write_gz("trunc.fa.gz", data, k, 1);
    size_t zlen;
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    zlen = (size_t)ftell(f);
    fclose(f);
    assert_int_equal(truncate(p, (off_t)(zlen - 4)), 0);
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s:1001: the gzip stream ends unexpectedly: the file is truncated; re-download or "
             "re-compress the input",
             p);
    expect_error(p, VNP_EFORMAT, msg);

    /* cut in the middle: the error names a line inside the file */
    p = write_gz("trunc_mid.fa.gz", data, k, 1);
    assert_int_equal(truncate(p, (off_t)(zlen / 2)), 0);
    char *dump, *log;
    vnp_error err;
    assert_int_equal(read_all(p, &dump, &log, &err), -(int)VNP_EFORMAT);
    assert_string_equal(dump, ""); /* the record never completed */
    size_t line = 0;
    char tail[256];
    size_t plen = strlen(p);
    assert_memory_equal(err.msg, p, plen);
    assert_int_equal(sscanf(err.msg + plen, ":%zu: %255[^\n]", &line, tail), 2);
    assert_true(line > 1 && line < 1000);
    assert_string_equal(tail, "the gzip stream ends unexpectedly: the file is truncated; "
                              "re-download or re-compress the input");
    free(dump);
    free(log);
    free(data);
}

static void test_stdin(void **state)
{
    (void)state;
    const char *p = PUTS("stdin.fa", ">s1\nAC\nGT\n>s2 d\nA\n");
    fflush(stdin);
    assert_non_null(freopen(p, "rb", stdin));
    char *dump, *log;
    vnp_error err;
    vnp_seq_reader *r;
    assert_int_equal(vnp_seq_open("-", &r, &err), VNP_OK);
    assert_string_equal(vnp_seq_name(r), "<stdin>");
    vnp_seq_close(r);
    assert_non_null(freopen(p, "rb", stdin));
    assert_int_equal(read_all("-", &dump, &log, &err), 0);
    assert_string_equal(dump, "s1||ACGT|-|1\ns2|d|A|-|4\n");
    free(dump);
    free(log);
}

static void test_open_errors(void **state)
{
    (void)state;
    vnp_seq_reader *r = (vnp_seq_reader *)1;
    vnp_error err;
    const char *p = vnp_test_tmp("does_not_exist.fa");
    assert_int_equal(vnp_seq_open(p, &r, &err), VNP_ENOTFOUND);
    assert_null(r);
    char msg[512];
    snprintf(msg, sizeof msg, "cannot open input '%s': No such file or directory; check the path",
             p);
    assert_string_equal(err.msg, msg);
    p = vnp_test_tmp("");
    assert_int_equal(vnp_seq_open(p, &r, &err), VNP_EINVAL);
    snprintf(msg, sizeof msg,
             "input '%s' is a directory; give a FASTA/FASTQ file (or '-' for stdin)", p);
    assert_string_equal(err.msg, msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fasta_layouts),
        cmocka_unit_test(test_header_without_id),
        cmocka_unit_test(test_utf8_header),
        cmocka_unit_test(test_long_lines_across_buffer_fills),
        cmocka_unit_test(test_fastq),
        cmocka_unit_test(test_fastq_quality_mismatch),
        cmocka_unit_test(test_binary_and_non_fasta),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_empty_sequence_records_skipped),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_truncated_gzip),
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
