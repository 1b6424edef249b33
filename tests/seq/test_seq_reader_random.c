/* Randomised reader tests: random records in random layouts (LF, CRLF and lone-CR line
 * breaks mixed; plain, gzip, bzip2, xz, zstd) read back exactly;
 * random corruptions of valid files end in records or a located error, never a
 * crash (this suite also runs under ASan/UBSan). Fixed seeds: reproducible. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "compress_support.h"
#include "seq_reader_checks.h"
#include "test_support.h"
#include "virnucpro/seq.h"

static uint64_t g_rng;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}



/* Ends a line: LF, CRLF or a lone CR; counts it. (An LF right after a lone CR would make
 * the two one CRLF break: CRLF then.) */
static void eol(text *t, size_t *line)
{
    uint32_t k = rnd(8);
    if (k < 5 && t->n && t->d[t->n - 1] == '\r')
        k = 5;
    seq_text_adds(t, k < 5 ? "\n" : k < 7 ? "\r\n" : "\r");
    (*line)++;
}

static void blank_lines(text *t, size_t *line)
{
    int k = rnd(6) == 0 ? (int)rnd(3) + 1 : 0;
    for (int i = 0; i < k; i++) {
        if (rnd(2))
            seq_text_adds(t, rnd(2) ? "  " : "\t");
        eol(t, line);
    }
}

static void random_word(char *out, size_t max, const char *alpha)
{
    size_t n = 1 + rnd((uint32_t)max);
    size_t na = strlen(alpha);
    for (size_t i = 0; i < n; i++)
        out[i] = alpha[rnd((uint32_t)na)];
    out[n] = 0;
}

/* Builds a random FASTA (fastq 0) or FASTQ file and the dump the reader must
 * produce ("id|desc|seq|qual|line"), plus the expected warnings. */
static void make_case(int fastq, text *file, text *want, text *warn, const char *path)
{
    static const char ids[] = "ABCXYZabcxyz0123456789_.|-:";
    static const char residues[] = "ACGTACGTACGTacgtNnRYKMSWBDHV*-";
    static const char quals[] = "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJ~";
    size_t line = 0;
    int nrec = 1 + (int)rnd(8), kept = 0;
    blank_lines(file, &line);
    for (int r = 0; r < nrec; r++) {
        char id[40], desc[80] = "", seq[400], qual[400];
        random_word(id, 12, ids);
        seq_text_adds(file, fastq ? "@" : ">");
        if (rnd(5) == 0)
            seq_text_adds(file, rnd(2) ? " " : "\t"); /* blanks before the ID */
        seq_text_adds(file, id);
        if (rnd(2)) {
            char w1[20], w2[20];
            random_word(w1, 8, ids);
            random_word(w2, 8, ids);
            snprintf(desc, sizeof desc, "%s%s%s", w1, rnd(2) ? " " : "\t", w2);
            seq_text_adds(file, rnd(2) ? " " : "\t\t");
            seq_text_adds(file, desc);
        }
        if (rnd(4) == 0)
            seq_text_adds(file, " \t"); /* trailing blanks are not part of the description */
        size_t header_line = line + 1;
        eol(file, &line);
        size_t len = rnd(8) == 0 ? 0 : 1 + rnd(300);
        for (size_t i = 0; i < len; i++) {
            seq[i] = residues[rnd(sizeof residues - 1)];
            qual[i] = quals[rnd(sizeof quals - 1)];
        }
        seq[len] = qual[len] = 0;
        size_t width = rnd(3) == 0 ? 1000 : 1 + rnd(80);
        for (size_t i = 0; i < len; i += width) {
            size_t n = len - i < width ? len - i : width;
            seq_text_add(file, seq + i, n);
            if (rnd(10) == 0)
                seq_text_adds(file, " ");
            eol(file, &line);
            if (!fastq)
                blank_lines(file, &line);
        }
        if (fastq) {
            seq_text_adds(file, rnd(2) ? "+" : "+");
            if (rnd(3) == 0)
                seq_text_adds(file, id);
            eol(file, &line);
            size_t qwidth = rnd(2) ? width : 1 + rnd(90);
            for (size_t i = 0; i < len; i += qwidth) {
                size_t n = len - i < qwidth ? len - i : qwidth;
                seq_text_add(file, qual + i, n);
                eol(file, &line);
            }
            blank_lines(file, &line);
        }
        char buf[1200];
        if (len == 0) {
            snprintf(buf, sizeof buf, "%s:%zu: record '%s' has an empty sequence; skipped\n",
                     path, header_line, id);
            seq_text_adds(warn, buf);
            continue;
        }
        kept++;
        snprintf(buf, sizeof buf, "%s|%s|%s|%s|%zu\n", id, desc, seq, fastq ? qual : "-",
                 header_line);
        seq_text_adds(want, buf);
    }
    if (kept == 0) {
        char buf[600];
        snprintf(buf, sizeof buf, "%s: every record has an empty sequence; nothing to process\n",
                 path);
        seq_text_adds(warn, buf);
    }
    if (rnd(4) == 0 && file->n && (file->d[file->n - 1] == '\n' || file->d[file->n - 1] == '\r')) {
        /* no final line break */
        if (file->d[--file->n] == '\n' && file->n && file->d[file->n - 1] == '\r')
            file->n--;
        file->d[file->n] = 0;
    }
}

/* Reads path; returns the dump; *rc the last vnp_seq_read result. */
static char *read_dump(const char *path, int *rc, char **log, vnp_error *err)
{
    text t = {0};
    seq_text_adds(&t, "");
    vnp_seq_reader *r;
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_seq_open(path, &r, err), VNP_OK);
    vnp_record rec;
    char buf[2000];
    while ((*rc = vnp_seq_read(r, &rec, err)) == 1) {
        snprintf(buf, sizeof buf, "%s|%s|%s|%s|%zu\n", rec.id, rec.desc, rec.seq,
                 rec.qual ? rec.qual : "-", rec.line);
        seq_text_adds(&t, buf);
    }
    vnp_seq_close(r);
    *log = vnp_test_capture_log_end();
    return t.d;
}

/* Writes a fresh file: rewriting one in place (O_TRUNC) makes ext4 flush it to
 * disk on close, which would dominate this test's time. */
static void write_file(const char *path, const char *d, size_t n, int fmt)
{
    remove(path);
    if (fmt == TZ_PLAIN) {
        assert_int_equal(vnp_test_write_file(path, d, n), 0);
        return;
    }
    if (fmt == TZ_GZIP) {
        gzFile g = gzopen(path, "wb1");
        assert_non_null(g);
        if (n)
            assert_int_equal(gzwrite(g, d, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
        return;
    }
    size_t zn;
    unsigned char *z = tz_compress(fmt, d, n, 1 + (int)rnd(3), &zn);
    assert_non_null(z);
    assert_int_equal(vnp_test_write_file(path, z, zn), 0);
    free(z);
}

/* Lines as Python's universal newlines count them. */
static size_t count_lines(const char *d, size_t n)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += d[i] == '\n' ? !(i && d[i - 1] == '\r') : d[i] == '\r';
    return lines;
}

static void test_random_layouts_round_trip(void **state)
{
    (void)state;
    g_rng = 0x9e3779b97f4a7c15ull;
    char path[4096];
    for (int iter = 0; iter < 400; iter++) {
        /* every fifth file compressed, in each format in turn */
        int fastq = iter % 2, fmt = iter % 5 == 0 ? 1 + iter / 5 % (TZ_COUNT - 1) : TZ_PLAIN;
        snprintf(path, sizeof path, "%s", vnp_test_tmp(fmt ? "rt.z" : "rt.txt"));
        text file = {0}, want = {0}, warn = {0};
        seq_text_adds(&want, "");
        seq_text_adds(&warn, "");
        make_case(fastq, &file, &want, &warn, path);
        write_file(path, file.d, file.n, fmt);
        int rc;
        char *log;
        vnp_error err;
        char *got = read_dump(path, &rc, &log, &err);
        if (rc != 0)
            fail_msg("iteration %d: error %s\n--- file ---\n%s", iter, err.msg, file.d);
        if (strcmp(got, want.d) || strcmp(log, warn.d))
            fail_msg("iteration %d\n--- file ---\n%s\n--- got ---\n%s%s--- want ---\n%s%s", iter,
                     file.d, got, log, want.d, warn.d);
        free(got);
        free(log);
        free(file.d);
        free(want.d);
        free(warn.d);
    }
}

/* "path:N: ..." with 1 <= N <= lines + 1 */
static void assert_located(const char *msg, const char *path, size_t lines)
{
    size_t pl = strlen(path), n = 0;
    if (strncmp(msg, path, pl) != 0 || sscanf(msg + pl, ":%zu:", &n) != 1 || n < 1 ||
        n > lines + 1)
        fail_msg("error not located in %s (%zu lines): %s", path, lines, msg);
}

static void test_random_corruptions(void **state)
{
    (void)state;
    g_rng = 0x243f6a8885a308d3ull;
    char path[4096];
    int errors = 0, clean = 0;
    for (int iter = 0; iter < 600; iter++) {
        int fastq = iter % 2;
        snprintf(path, sizeof path, "%s", vnp_test_tmp("bad.txt"));
        text file = {0}, want = {0}, warn = {0};
        make_case(fastq, &file, &want, &warn, path);
        int muts = 1 + (int)rnd(4);
        for (int m = 0; m < muts && file.n; m++) {
            size_t at = rnd((uint32_t)file.n);
            switch (rnd(4)) {
            case 0: file.d[at] = (char)rnd(256); break;                 /* any byte */
            case 1: file.d[at] = "\n>@+\r\0 "[rnd(7)]; break;           /* structure */
            case 2: file.n = at; break;                                 /* truncate */
            default: memmove(file.d + at, file.d + at + 1, file.n - at - 1); file.n--; break;
            }
        }
        size_t lines = count_lines(file.d, file.n);
        write_file(path, file.d, file.n, TZ_PLAIN);
        int rc;
        char *log;
        vnp_error err;
        char *got = read_dump(path, &rc, &log, &err);
        if (rc < 0) {
            assert_int_equal(rc, -(int)VNP_EFORMAT);
            assert_located(err.msg, path, lines);
            errors++;
        } else {
            assert_int_equal(rc, 0);
            clean++;
        }
        free(got);
        free(log);
        free(file.d);
        free(want.d);
        free(warn.d);
    }
    /* the corruptions exercised both outcomes */
    assert_true(errors > 100);
    assert_true(clean > 50);
}

static void test_every_gzip_truncation(void **state)
{
    (void)state;
    g_rng = 0x13198a2e03707344ull;
    text file = {0}, want = {0}, warn = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s", vnp_test_tmp("full.gz"));
    make_case(0, &file, &want, &warn, path);
    write_file(path, file.d, file.n, TZ_GZIP);
    size_t zn;
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    zn = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *z = malloc(zn);
    assert_int_equal(fread(z, 1, zn, f), zn);
    fclose(f);
    size_t lines = count_lines(file.d, file.n);
    snprintf(path, sizeof path, "%s", vnp_test_tmp("cut.gz"));
    for (size_t cut = 1; cut < zn; cut++) {
        write_file(path, (const char *)z, cut, TZ_PLAIN);
        int rc;
        char *log;
        vnp_error err;
        char *got = read_dump(path, &rc, &log, &err);
        if (rc != -(int)VNP_EFORMAT)
            fail_msg("cut at %zu of %zu bytes: rc %d, %s", cut, zn, rc, rc ? err.msg : "no error");
        assert_located(err.msg, path, lines);
        free(got);
        free(log);
    }
    free(z);
    free(file.d);
    free(want.d);
    free(warn.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_layouts_round_trip),
        cmocka_unit_test(test_random_corruptions),
        cmocka_unit_test(test_every_gzip_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
