/* The reader on input as users write it: LF / CRLF / lone-CR line breaks, gzip / bzip2 /
 * xz / zstd (single and concatenated streams, truncated, corrupt, followed by junk), a
 * UTF-8 byte order mark, FASTQ quality length errors counted right, and the optional
 * protein check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd_errors.h>

#include "compress_support.h"
#include "seq_reader_checks.h"
#include "test_support.h"
#include "virnucpro/seq.h"

/* ---- line breaks ---- */

/* src with every "\n" replaced by brk ("\r\n", "\r"), or, for brk NULL, by LF, CRLF or CR
 * in turn. */
static text convert_breaks(const char *src, size_t n, const char *brk)
{
    static const char *const cycle[3] = {"\n", "\r\n", "\r"};
    text t = {0};
    seq_text_adds(&t, "");
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\n')
            seq_text_adds(&t, brk ? brk : cycle[k++ % 3]);
        else
            seq_text_add(&t, src + i, 1);
    }
    return t;
}

static void test_line_breaks_fasta_fastq(void **state)
{
    (void)state;
    /* blank lines (with blanks on them), multi-line records, a description, a last line
     * without a break, FASTQ quality starting with '@' and spanning two lines */
    static const char fa[] = "\n>r1 first record\nACGT\nacgt\n\n  \nNN\n>r2\tx y \nAC\nGT\n>r3\nT";
    static const char fq[] = "@q1 d\nACGT\n+\nIIII\n\n@q2\nACG\nTA\n+q2\n@I\nIII\n@q3\nA\n+\n@";
    static const char *const want[2] = {
        "r1|first record|ACGTacgtNN|-|2\nr2|x y|ACGT|-|8\nr3||T|-|11\n",
        "q1|d|ACGT|IIII|1\nq2||ACGTA|@IIII|6\nq3||A|@|12\n"};
    const char *src[2] = {fa, fq};
    size_t len[2] = {sizeof fa - 1, sizeof fq - 1};
    const char *brks[4] = {"\n", "\r\n", "\r", NULL};
    for (int f = 0; f < 2; f++) {
        for (int b = 0; b < 4; b++) {
            text t = convert_breaks(src[f], len[f], brks[b]);
            char name[32];
            snprintf(name, sizeof name, "breaks%d%d.txt", f, b);
            expect_records(put(name, t.d, t.n), want[f]);
            free(t.d);
        }
    }
}

static void test_cr_only_file(void **state)
{
    (void)state;
    /* A classic Mac OS file: before, the whole file was one header line. */
    expect_records(PUTS("mac.fa", ">a one\rACGT\rAC\r>b\rGG\r"), "a|one|ACGTAC|-|1\nb||GG|-|4\n");
    /* "\r\r" is a blank line, "\n\r" two line breaks */
    expect_records(PUTS("mixed.fa", ">a\r\rAC\n\rGT\r\n>b\r\nT"), "a||ACGT|-|1\nb||T|-|6\n");
    /* errors count CR lines as lines */
    char msg[512];
    const char *p = PUTS("mac_bad.fa", ">a\rAC\r>b\rA\x01\r");
    snprintf(msg, sizeof msg,
             "%s:4: byte 0x01 at column 2 is not sequence text; the input looks binary or is "
             "not FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
}

/* A CRLF (or a lone CR) whose '\r' is the last byte of a 1 MiB fill: the '\n' that starts
 * the next fill belongs to the same break. Also through a decompressor (same fill size). */
static void test_break_across_fills(void **state)
{
    (void)state;
    const size_t fill = 1u << 20;
    for (int lone = 0; lone < 2; lone++) {
        text t = {0};
        seq_text_adds(&t, ">a\r\n");
        while (t.n < fill - 1)
            seq_text_add(&t, "ACGTACGTAC" + (t.n % 10), 1);
        size_t seq1 = t.n - 4;
        seq_text_adds(&t, lone ? "\rGG\r\n>b\r\nTT\r\n" : "\r\nGG\r\n>b\r\nTT\r\n");
        assert_int_equal(t.d[fill - 1], '\r');
        char *want = malloc(seq1 + 64);
        memcpy(want, "a||", 3);
        memcpy(want + 3, t.d + 4, seq1);
        sprintf(want + 3 + seq1, "GG|-|1\nb||TT|-|4\n");
        for (int fmt = 0; fmt < TZ_COUNT; fmt++) {
            size_t zn;
            unsigned char *z = tz_compress(fmt, t.d, t.n, 1, &zn);
            char name[32];
            snprintf(name, sizeof name, "fill%d%s", lone, tz_ext[fmt]);
            expect_records(put(name, z, zn), want);
            free(z);
        }
        free(want);
        free(t.d);
    }
}

/* ---- compression ---- */

/* About 2.5 MB of FASTA (several 1 MiB fills, lines across fills) and the dump the reader
 * must give for it, header line numbers included. */
static void big_fasta(text *file, text *want)
{
    seq_text_adds(file, "");
    seq_text_adds(want, "");
    uint32_t x = 12345;
    size_t line = 1;
    char buf[128];
    for (int rec = 0; file->n < (5u << 20) / 2; rec++) {
        int len = 1000 + rec * 37 % 20000;
        snprintf(buf, sizeof buf, ">contig_%d len=%d\n", rec, len);
        seq_text_adds(file, buf);
        snprintf(buf, sizeof buf, "contig_%d|len=%d|", rec, len);
        seq_text_adds(want, buf);
        size_t header_line = line++;
        for (int i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            char c = "ACGTacgtNRY"[(x >> 16) % 11];
            seq_text_add(file, &c, 1);
            seq_text_add(want, &c, 1);
            if (i % 70 == 69 || i == len - 1) {
                seq_text_adds(file, "\n");
                line++;
            }
        }
        snprintf(buf, sizeof buf, "|-|%zu\n", header_line);
        seq_text_adds(want, buf);
    }
}

static void test_compressions_identical(void **state)
{
    (void)state;
    text file = {0}, want = {0};
    big_fasta(&file, &want);
    expect_records(put("big.fa", file.d, file.n), want.d);
    for (int fmt = 1; fmt < TZ_COUNT; fmt++) {
        for (int streams = 1; streams <= 7; streams += 6) {
            size_t zn;
            unsigned char *z = tz_compress(fmt, file.d, file.n, streams, &zn);
            assert_non_null(z);
            char name[32];
            snprintf(name, sizeof name, "big%d%s", streams, tz_ext[fmt]);
            /* the name does not matter: also under a plain one */
            for (int named = 0; named < (streams == 1 ? 2 : 1); named++) {
                const char *p = put(named ? "big_misnamed.fa" : name, z, zn);
                char *got, *log;
                vnp_error err;
                int rc = read_all(p, &got, &log, &err);
                if (rc != 0)
                    fail_msg("%s, %d streams: %s", tz_name[fmt], streams, err.msg);
                if (strcmp(got, want.d) != 0)
                    fail_msg("%s, %d streams: records differ from the plain file's",
                             tz_name[fmt], streams);
                assert_string_equal(log, "");
                assert_int_equal(g_last_bytes, file.n); /* uncompressed bytes */
                free(got);
                free(log);
            }
            free(z);
        }
    }
    free(want.d);
    free(file.d);
}

static void test_small_compressed_fastq_stdin(void **state)
{
    (void)state;
    static const char fq[] = "@r1\nACGT\n+\nIIII\n@r2 x\nGG\n+\n@@\n";
    const char *want = "r1||ACGT|IIII|1\nr2|x|GG|@@|5\n";
    for (int fmt = 0; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fq, sizeof fq - 1, 2, &zn);
        char name[32];
        snprintf(name, sizeof name, "small.fq%s", tz_ext[fmt]);
        const char *p = put(name, z, zn);
        expect_records(p, want);
        /* stdin, where nothing can be sought back */
        fflush(stdin);
        assert_non_null(freopen(p, "rb", stdin));
        expect_records("-", want);
        free(z);
    }
}

/* A pipe whose producer stalls (nothing more, not closed), in each format: the records
 * complete in what has arrived come out at once (not after the buffer fills), and a
 * readable stop descriptor ends the wait with VNP_EINTERRUPTED; without a stop, closing
 * the pipe gives the last record. alarm(): a reader that waits instead fails the test. */
static void test_stalled_pipe(void **state)
{
    (void)state;
    static const char fa[] = ">r1 d\nACGT\nAC\n>r2\nGG\n";
    for (int fmt = 0; fmt < TZ_COUNT; fmt++) {
        for (int stop = 0; stop < 2; stop++) {
            size_t zn;
            unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 1, &zn);
            int p[2], s[2];
            assert_int_equal(pipe(p), 0);
            assert_int_equal(pipe(s), 0);
            assert_int_equal(write(p[1], z, zn), (ssize_t)zn);
            free(z);
            char path[64];
            snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
            vnp_seq_reader *r = NULL;
            vnp_error err;
            assert_int_equal(vnp_seq_open(path, &r, &err), VNP_OK);
            vnp_seq_set_stop_fd(r, s[0]);
            alarm(20);
            vnp_record rec;
            assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
            assert_string_equal(rec.id, "r1");
            assert_string_equal(rec.seq, "ACGTAC");
            if (stop) {
                assert_int_equal(write(s[1], "x", 1), 1);
                int got = vnp_seq_read(r, &rec, &err);
                if (got != -(int)VNP_EINTERRUPTED || !strstr(err.msg, "reading stopped"))
                    fail_msg("%s: a stop while waiting: got %d (%s), want -VNP_EINTERRUPTED",
                             tz_name[fmt], got, got < 0 ? err.msg : "a record");
                /* and again: the failure stays */
                assert_int_equal(vnp_seq_read(r, &rec, &err), -(int)VNP_EINTERRUPTED);
            } else {
                close(p[1]);
                p[1] = -1;
                assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
                assert_string_equal(rec.id, "r2");
                assert_string_equal(rec.seq, "GG");
                assert_int_equal(vnp_seq_read(r, &rec, &err), 0);
            }
            alarm(0);
            vnp_seq_close(r);
            close(p[0]);
            if (p[1] >= 0)
                close(p[1]);
            close(s[0]);
            close(s[1]);
        }
    }
}

/* The compression as detected, and progress in file bytes, for each format. */
static void test_compression_and_file_bytes(void **state)
{
    (void)state;
    static const char fa[] = ">a\nACGTACGTAC\n>b\nGGGG\n";
    for (int fmt = 0; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 2, &zn);
        char name[32];
        snprintf(name, sizeof name, "detect%s", tz_ext[fmt]);
        const char *p = put(name, z, zn);
        vnp_seq_reader *r;
        vnp_error err;
        vnp_record rec;
        assert_int_equal(vnp_seq_open(p, &r, &err), VNP_OK);
        assert_int_equal(vnp_seq_file_bytes(r), 0);
        assert_string_equal(vnp_seq_compression(r), tz_name[fmt]);
        assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
        assert_string_equal(rec.id, "a");
        assert_int_equal(vnp_seq_read(r, &rec, &err), 1);
        assert_int_equal(vnp_seq_read(r, &rec, &err), 0);
        assert_string_equal(vnp_seq_compression(r), tz_name[fmt]);
        assert_int_equal(vnp_seq_file_bytes(r), zn);
        assert_int_equal(vnp_seq_bytes(r), sizeof fa - 1);
        vnp_seq_close(r);
        free(z);
    }
    /* an empty file is plain */
    vnp_seq_reader *r;
    vnp_error err;
    assert_int_equal(vnp_seq_open(PUTS("detect_empty", ""), &r, &err), VNP_OK);
    assert_string_equal(vnp_seq_compression(r), "plain");
    vnp_seq_close(r);
}

/* Zero padding after a stream is skipped (gzip, xz and tar do pad); an empty stream is an
 * empty input; a zstd skippable frame is skipped. */
static void test_padding_and_empty_streams(void **state)
{
    (void)state;
    static const char fa[] = ">p\nACGT\n";
    for (int fmt = 1; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 1, &zn);
        unsigned char *padded = calloc(1, zn * 2 + 512);
        memcpy(padded, z, zn);
        memcpy(padded + zn + 512, z, zn); /* padding, then a second stream */
        char name[32];
        snprintf(name, sizeof name, "padded%s", tz_ext[fmt]);
        expect_records(put(name, padded, zn + 512), "p||ACGT|-|1\n");
        expect_records(put(name, padded, zn * 2 + 512), "p||ACGT|-|1\np||ACGT|-|3\n");
        free(padded);
        free(z);

        z = tz_compress(fmt, "", 0, 1, &zn);
        snprintf(name, sizeof name, "empty%s", tz_ext[fmt]);
        const char *p = put(name, z, zn);
        char *dump, *log, want[512];
        vnp_error err;
        assert_int_equal(read_all(p, &dump, &log, &err), 0);
        assert_string_equal(dump, "");
        snprintf(want, sizeof want, "%s: no sequences in the input\n", p);
        assert_string_equal(log, want);
        free(dump);
        free(log);
        free(z);
    }
    /* skippable frame (magic 0x184D2A5E, 4 bytes of payload) before a zstd frame */
    size_t zn;
    unsigned char *z = tz_compress(TZ_ZSTD, fa, sizeof fa - 1, 1, &zn);
    unsigned char *s = malloc(zn + 12);
    memcpy(s, "\x5e\x2a\x4d\x18\x04\x00\x00\x00skip", 12);
    memcpy(s + 12, z, zn);
    expect_records(put("skippable.zst", s, zn + 12), "p||ACGT|-|1\n");
    free(s);
    free(z);
}

/* Cut anywhere, each format: an error naming the file, a line within it and the format. */
static void test_every_truncation(void **state)
{
    (void)state;
    static const char fa[] = ">t1 desc\nACGTACGTTTGACCA\nGGTTAACC\n>t2\nNNNNACGT\n";
    for (int fmt = 1; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 1, &zn);
        char name[32], want[512], tail[256];
        snprintf(name, sizeof name, "cut%s", tz_ext[fmt]);
        snprintf(tail, sizeof tail,
                 "the %s stream ends unexpectedly: the file is truncated; re-download or "
                 "re-compress the input",
                 tz_name[fmt]);
        for (size_t cut = 2; cut < zn; cut++) {
            const char *p = put(name, z, cut);
            char *dump, *log;
            vnp_error err;
            int rc = read_all(p, &dump, &log, &err);
            if (rc != -(int)VNP_EFORMAT)
                fail_msg("%s cut at %zu of %zu: rc %d", tz_name[fmt], cut, zn, rc);
            size_t pl = strlen(p), line = 0;
            int off = 0;
            if (strncmp(err.msg, p, pl) != 0 ||
                sscanf(err.msg + pl, ":%zu: %n", &line, &off) != 1 || off == 0 || line < 1 ||
                line > 6 || strcmp(err.msg + pl + off, tail) != 0)
                fail_msg("%s cut at %zu of %zu: %s", tz_name[fmt], cut, zn, err.msg);
            free(dump);
            free(log);
        }
        /* only the last byte missing: every line is decoded first */
        snprintf(want, sizeof want, "%s:6: %s", vnp_test_tmp(name), tail);
        expect_error(put(name, z, zn - 1), VNP_EFORMAT, want);
        free(z);
    }
}

static void test_corrupt_and_trailing_data(void **state)
{
    (void)state;
    static const char fa[] = ">c\nACGTACGTACGTACGTTTGACCAGGTTAACCAAACCCGGGTTT\n";
    char msg[512];
    const char *detail[TZ_COUNT] = {
        NULL, "zlib: incorrect data check", "libbz2: data integrity (CRC) error in the data",
        "liblzma: compressed data is corrupt", NULL};
    for (int fmt = 1; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 1, &zn);
        char name[32];
        /* the stored checksum changed: every format verifies its data */
        unsigned char *bad = malloc(zn);
        memcpy(bad, z, zn);
        size_t at = fmt == TZ_GZIP ? zn - 8 : fmt == TZ_XZ ? zn - 25 : fmt == TZ_ZSTD ? zn - 1
                                                                                     : 12;
        bad[at] ^= 0x01;
        snprintf(name, sizeof name, "corrupt%s", tz_ext[fmt]);
        const char *p = put(name, bad, zn);
        char zd[128];
        if (fmt == TZ_ZSTD)
            snprintf(zd, sizeof zd, "libzstd: %s", ZSTD_getErrorString(ZSTD_error_checksum_wrong));
        /* the text comes first, then the error (zstd decodes a small frame whole in one
         * call, and keeps its text back when the checksum fails) */
        snprintf(msg, sizeof msg,
                 "%s:%d: the %s stream is corrupt (%s); re-download or re-compress the input", p,
                 fmt == TZ_ZSTD ? 1 : 3, tz_name[fmt], fmt == TZ_ZSTD ? zd : detail[fmt]);
        expect_error(p, VNP_EFORMAT, msg);
        free(bad);

        /* something that is not this format after the stream */
        unsigned char *joined = malloc(zn + 8);
        memcpy(joined, z, zn);
        memcpy(joined + zn, ">x\nAC\n", 6);
        snprintf(name, sizeof name, "joined%s", tz_ext[fmt]);
        p = put(name, joined, zn + 6);
        snprintf(msg, sizeof msg,
                 "%s:3: the %s data is followed by bytes that are neither %s nor zero padding "
                 "(0x3e at byte %zu); the file is damaged or something was appended to it: "
                 "re-download or re-compress the input",
                 p, tz_name[fmt], tz_name[fmt], zn);
        expect_error(p, VNP_EFORMAT, msg);
        free(joined);
        free(z);
    }
    /* a different format after the first stream is not read as more of it either */
    size_t gn, bn;
    unsigned char *g = tz_compress(TZ_GZIP, fa, sizeof fa - 1, 1, &gn);
    unsigned char *b = tz_compress(TZ_BZIP2, fa, sizeof fa - 1, 1, &bn);
    g = realloc(g, gn + bn);
    memcpy(g + gn, b, bn);
    const char *p = put("gz_then_bz2.gz", g, gn + bn);
    snprintf(msg, sizeof msg,
             "%s:3: the gzip data is followed by bytes that are neither gzip nor zero padding "
             "(0x42 at byte %zu); the file is damaged or something was appended to it: "
             "re-download or re-compress the input",
             p, gn);
    expect_error(p, VNP_EFORMAT, msg);
    free(g);
    free(b);
}

static void test_formerly_binary_magic(void **state)
{
    (void)state;
    char msg[512];
    /* Short files that are only the start of a magic number are truncated, not binary. */
    const char *p = PUTS("stub.xz", "\xfd" "7zX");
    snprintf(msg, sizeof msg,
             "%s:1: the xz stream ends unexpectedly: the file is truncated; re-download or "
             "re-compress the input",
             p);
    expect_error(p, VNP_EFORMAT, msg);
    p = PUTS("stub.bz2", "BZh");
    snprintf(msg, sizeof msg,
             "%s:1: the bzip2 stream ends unexpectedly: the file is truncated; re-download or "
             "re-compress the input",
             p);
    expect_error(p, VNP_EFORMAT, msg);
    /* a zstd frame header claiming a 2 GiB window (descriptor 0xa8: 2^31) is refused, not
     * allocated */
    p = put("window.zst", "\x28\xb5\x2f\xfd\x00\xa8\x01\x00\x00", 9);
    snprintf(msg, sizeof msg,
             "%s:1: the zstd stream needs a window larger than 128 MiB (zstd --long=28 or "
             "more); re-compress the input with the default settings",
             p);
    expect_error(p, VNP_EUNSUPPORTED, msg);
}

/* ---- byte order mark ---- */

static void test_byte_order_mark(void **state)
{
    (void)state;
    expect_records(PUTS("bom.fa", "\xef\xbb\xbf>a x\nACGT\n"), "a|x|ACGT|-|1\n");
    expect_records(PUTS("bom.fq", "\xef\xbb\xbf@a\r\nAC\r\n+\r\nII\r\n"), "a||AC|II|1\n");
    expect_records(PUTS("bom_blank.fa", "\xef\xbb\xbf\r\n\r\n>a\rAC\r"), "a||AC|-|3\n");
    static const char fa[] = "\xef\xbb\xbf>z\nGG\n";
    for (int fmt = 1; fmt < TZ_COUNT; fmt++) {
        size_t zn;
        unsigned char *z = tz_compress(fmt, fa, sizeof fa - 1, 1, &zn);
        char name[32];
        snprintf(name, sizeof name, "bom%s", tz_ext[fmt]);
        expect_records(put(name, z, zn), "z||GG|-|1\n");
        free(z);
    }
    char msg[512];
    /* only at the start: elsewhere it is not sequence text */
    const char *p = PUTS("bom_late.fa", ">a\n\xef\xbb\xbf" "AC\n");
    snprintf(msg, sizeof msg,
             "%s:2: byte 0xef at column 1 is not sequence text; the input looks binary or is "
             "not FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
    /* UTF-16 is named as such */
    p = put("utf16.fa", "\xff\xfe>\0a\0\n\0", 8);
    snprintf(msg, sizeof msg,
             "%s:1: the input is UTF-16 text (byte order mark 0xff 0xfe); save it as plain "
             "ASCII/UTF-8 FASTA/FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
}

/* ---- FASTQ quality lengths ---- */

static void test_fastq_quality_counts(void **state)
{
    (void)state;
    struct {
        const char *name, *data;
        int line;
        const char *what;
    } cases[] = {
        /* one quality character short; the next header is not counted as quality */
        {"q_short.fq", "@a\nACGT\n+\nIIII\n@b\nACGT\n+\nIII\n@c\nA\n+\nI\n", 8,
         "FASTQ record 'b' (line 5) has 4 bases but 3 quality characters"},
        /* the next header has a description (a space no quality line can hold) */
        {"q_short_desc.fq", "@a\nACGTACGTAC\n+\nIIIII\n@b some description\nA\n+\nI\n", 4,
         "FASTQ record 'a' (line 1) has 10 bases but 5 quality characters"},
        /* a header as long as the missing quality: taken for quality, then corrected */
        {"q_short_exact.fq", "@a\nACGTAC\n+\nIIII\n@b\nA\n+\nI\n", 4,
         "FASTQ record 'a' (line 1) has 6 bases but 4 quality characters"},
        /* one too many */
        {"q_long.fq", "@a\nACGT\n+\nIIIII\n@b\nA\n+\nI\n", 4,
         "FASTQ record 'a' (line 1) has 4 bases but 5 quality characters"},
        /* the quality line is missing: the next record follows the '+' */
        {"q_missing.fq", "@a\nACGT\n+\n@b\nACGT\n+\nIIII\n", 3,
         "FASTQ record 'a' (line 1) has 4 bases but 0 quality characters"},
        {"q_missing_desc.fq", "@a\nACGT\n+\n@b desc\nACGT\n+\nIIII\n", 3,
         "FASTQ record 'a' (line 1) has 4 bases but 0 quality characters"},
        /* an empty quality line */
        {"q_empty.fq", "@a\nACGT\n+\n\n@b\nA\n+\nI\n", 4,
         "FASTQ record 'a' (line 1) has 4 bases but 0 quality characters"},
        /* CR line breaks count the same */
        {"q_short_cr.fq", "@a\rACGT\r+\rIII\r@b\rA\r+\rI\r", 4,
         "FASTQ record 'a' (line 1) has 4 bases but 3 quality characters"},
    };
    char msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = put(cases[i].name, cases[i].data, strlen(cases[i].data));
        snprintf(msg, sizeof msg, "%s:%d: %s; the lengths must match", p, cases[i].line,
                 cases[i].what);
        expect_error(p, VNP_EFORMAT, msg);
    }
    /* still read as quality: a later quality line starting with '@' that fits */
    expect_records(PUTS("q_at.fq", "@a\nACGTAC\nGT\n+\nIIII\n@III\n@b\nA\n+\n@\n"),
                   "a||ACGTACGT|IIII@III|1\nb||A|@|7\n");
    /* longer quality on a line of its own */
    const char *p = PUTS("q_extra_line.fq", "@a\nACGT\n+\nIIII\nII\n@b\nA\n+\nI\n");
    snprintf(msg, sizeof msg,
             "%s:5: expected '@' starting the FASTQ record after 'a' (line 1), found 'II'; the "
             "quality is longer than the sequence (4 bases) or the file is not FASTQ",
             p);
    expect_error(p, VNP_EFORMAT, msg);
    /* truncated in the quality */
    p = PUTS("q_trunc.fq", "@a\nACGT\n+\nII");
    snprintf(msg, sizeof msg,
             "%s:4: FASTQ record 'a' (line 1) has 4 bases but the file ends after 2 quality "
             "characters; the file is truncated",
             p);
    expect_error(p, VNP_EFORMAT, msg);
}

/* ---- protein check ---- */

/* Human ubiquitin, insulin, GFP (start), and a short signal peptide. */
static const char *const k_proteins[] = {
    "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
    "MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQ"
    "KRGIVEQCCTSICSLYQLENYCN",
    "mskgeelftgvvpilveldgdvnghkfsvsgegegdatygkltlkficttgklpvpwptlvttfsygvqcfsrypdhmkqhdffksam"
    "pegyvqertiffkddgnyktraevkfegdtlvnrielkgidfkedgnilghkleynynshnvyimadkqkngikvnfkirhnieDGSV"
    "QLADHYQQNTPIGDGPVLLPDNHYLSTQSALSKDPNEKRDHMVLLEFVTAAGITHGMDELYK",
    "MKWVTFISLLLLFSSAYS",
};

static void test_looks_like_protein_rule(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(vnp_seq_looks_like_protein(k_proteins[i], strlen(k_proteins[i])), 1);
    /* 18 letters: under the 20-letter minimum */
    assert_int_equal(vnp_seq_looks_like_protein(k_proteins[3], strlen(k_proteins[3])), 0);
    /* the 10% threshold, exactly: 20 counted letters, 2 or 1 amino-acid-only */
    assert_int_equal(vnp_seq_looks_like_protein("ACGTACGTACGTACGTACLL", 20), 1);
    assert_int_equal(vnp_seq_looks_like_protein("ACGTACGTACGTACGTACGL", 20), 0);
    assert_int_equal(vnp_seq_looks_like_protein("ACGTACGTACGTACGTACL", 19), 0);
    /* X is not counted: masked DNA with a few stray letters, unknown residues */
    assert_int_equal(vnp_seq_looks_like_protein("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXLL", 32), 0);
    /* 20 counted letters, 2 of them L: fires (with the x's counted it would not) */
    assert_int_equal(vnp_seq_looks_like_protein("xxxxxxxxxxACGTACGTACGTACGTACLL", 30), 1);
    /* Nucleotide text never fires: random strings over every nucleotide code (IUPAC,
     * both cases, U, gaps and stops), half a million letters in all, and each code alone. */
    static const char nuc[] = "ACGTUNRYSWKMBDHVacgtunryswkmbdhv-.*";
    uint32_t x = 7;
    char buf[1000];
    for (int rep = 0; rep < 1000; rep++) {
        size_t n = 20 + (size_t)rep % 980;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = nuc[(x >> 8) % (sizeof nuc - 1)];
        }
        assert_int_equal(vnp_seq_looks_like_protein(buf, n), 0);
    }
    for (size_t c = 0; c < sizeof nuc - 1; c++) {
        memset(buf, nuc[c], 100);
        assert_int_equal(vnp_seq_looks_like_protein(buf, 100), 0);
    }
    /* and every letter outside them fires on its own */
    for (const char *c = "EFIJLOPQZefijlopqz"; *c; c++) {
        memset(buf, *c, 20);
        assert_int_equal(vnp_seq_looks_like_protein(buf, 20), 1);
    }
}

static void test_nucleotide_only_reader(void **state)
{
    (void)state;
    text t = {0};
    seq_text_adds(&t, ">dna1 IUPAC and lowercase\nACGTRYSWKMBDHVNacgtrysw\nkmbdhvnNNNN----ACGU\n");
    seq_text_adds(&t, ">prot1 ubiquitin\n");
    seq_text_adds(&t, k_proteins[0]);
    seq_text_adds(&t, "\n");
    const char *p = put("mixed.fa", t.d, t.n);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "%s:4: record 'prot1' looks like protein, not nucleotides: 33 of its 76 letters "
             "are amino-acid codes, not nucleotide codes (the first, 'Q', at residue 2); "
             "predict and preprocess take nucleotide FASTA/FASTQ (DNA or RNA contigs or reads), "
             "not protein sequences",
             p);
    expect_error_opt(p, 1, VNP_EFORMAT, msg);
    /* off (the default, as embed reads protein FASTA): both records */
    char *dump, *log;
    vnp_error err;
    assert_int_equal(read_all(p, &dump, &log, &err), 0);
    char want[1024];
    snprintf(want, sizeof want,
             "dna1|IUPAC and lowercase|ACGTRYSWKMBDHVNacgtryswkmbdhvnNNNN----ACGU|-|1\n"
             "prot1|ubiquitin|%s|-|4\n",
             k_proteins[0]);
    assert_string_equal(dump, want);
    free(dump);
    free(log);
    /* FASTQ, compressed and with CR breaks: the same check */
    text q = {0};
    seq_text_adds(&q, "@r1\rMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\r+\r");
    for (int i = 0; i < 33; i++)
        seq_text_adds(&q, "I");
    seq_text_adds(&q, "\r");
    size_t zn;
    unsigned char *z = tz_compress(TZ_ZSTD, q.d, q.n, 1, &zn);
    p = put("prot.fq.zst", z, zn);
    snprintf(msg, sizeof msg,
             "%s:1: record 'r1' looks like protein, not nucleotides: 15 of its 33 letters are "
             "amino-acid codes, not nucleotide codes (the first, 'I', at residue 6); "
             "predict and preprocess take nucleotide FASTA/FASTQ (DNA or RNA contigs or reads), "
             "not protein sequences",
             p);
    expect_error_opt(p, 1, VNP_EFORMAT, msg);
    free(z);
    free(q.d);

    /* preprocess turns the check on itself and leaves no output behind */
    vnp_preprocess_stats st;
    const char *out = vnp_test_tmp("prep_out");
    snprintf(msg, sizeof msg, "%s", vnp_test_tmp("mixed.fa"));
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_preprocess(msg, out, NULL, 300, &st, &err), VNP_EFORMAT);
    free(vnp_test_capture_log_end());
    assert_non_null(strstr(err.msg, "record 'prot1' looks like protein"));
    char f[4096];
    snprintf(f, sizeof f, "%s/mixed_chunked300.fa", out);
    assert_int_equal(access(f, F_OK), -1);
    free(t.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_breaks_fasta_fastq),
        cmocka_unit_test(test_cr_only_file),
        cmocka_unit_test(test_break_across_fills),
        cmocka_unit_test(test_compressions_identical),
        cmocka_unit_test(test_small_compressed_fastq_stdin),
        cmocka_unit_test(test_stalled_pipe),
        cmocka_unit_test(test_compression_and_file_bytes),
        cmocka_unit_test(test_padding_and_empty_streams),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_corrupt_and_trailing_data),
        cmocka_unit_test(test_formerly_binary_magic),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_fastq_quality_counts),
        cmocka_unit_test(test_looks_like_protein_rule),
        cmocka_unit_test(test_nucleotide_only_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
