/* Shared by the sequence reader's tests: read a file into "id|desc|seq|qual|line" lines
 * and compare records or errors exactly. */
#include "seq_reader_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

void seq_text_add(text *t, const void *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->d = realloc(t->d, t->cap);
    }
    memcpy(t->d + t->n, s, n);
    t->n += n;
    t->d[t->n] = 0;
}

void seq_text_adds(text *t, const char *s) { seq_text_add(t, s, strlen(s)); }

uint64_t g_last_bytes; /* vnp_seq_bytes at the end of the last read_all */

/* Reads every record of path into "id|desc|seq|qual|line\n" lines; returns the final
 * vnp_seq_read result (0 or -code). nucleotide_only as vnp_seq_set_nucleotide_only. */
int read_all_opt(const char *path, int nucleotide_only, char **dump, char **log,
                 vnp_error *err)
{
    vnp_seq_reader *r = NULL;
    text d = {0};
    seq_text_adds(&d, "");
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_seq_open(path, &r, err), VNP_OK);
    if (nucleotide_only)
        vnp_seq_set_nucleotide_only(r, 1);
    vnp_record rec;
    int rc;
    char num[32];
    while ((rc = vnp_seq_read(r, &rec, err)) == 1) {
        assert_int_equal(strlen(rec.id), rec.id_len);
        assert_int_equal(strlen(rec.seq), rec.len);
        seq_text_adds(&d, rec.id);
        seq_text_adds(&d, "|");
        seq_text_adds(&d, rec.desc);
        seq_text_adds(&d, "|");
        seq_text_adds(&d, rec.seq);
        seq_text_adds(&d, "|");
        seq_text_adds(&d, rec.qual ? rec.qual : "-");
        snprintf(num, sizeof num, "|%zu\n", rec.line);
        seq_text_adds(&d, num);
    }
    assert_int_equal(vnp_seq_read(r, &rec, err), rc < 0 ? rc : 0); /* stays at the end/error */
    g_last_bytes = vnp_seq_bytes(r);
    vnp_seq_close(r);
    *log = vnp_test_capture_log_end();
    *dump = d.d;
    return rc;
}

int read_all(const char *path, char **dump, char **log, vnp_error *err)
{
    return read_all_opt(path, 0, dump, log, err);
}

const char *put(const char *name, const void *data, size_t len)
{
    const char *p = vnp_test_tmp(name);
    remove(p);
    assert_int_equal(vnp_test_write_file(p, data, len), 0);
    return p;
}


void expect_records(const char *path, const char *want)
{
    char *dump, *log;
    vnp_error err;
    int rc = read_all(path, &dump, &log, &err);
    if (rc < 0)
        fail_msg("%s: unexpected error %s", path, err.msg);
    assert_string_equal(dump, want);
    assert_string_equal(log, "");
    free(dump);
    free(log);
}

void expect_error_opt(const char *path, int nucleotide_only, vnp_code code, const char *msg)
{
    char *dump, *log;
    vnp_error err;
    int rc = read_all_opt(path, nucleotide_only, &dump, &log, &err);
    if (rc != -(int)code)
        fail_msg("%s: rc %d (%s), want %s: %s", path, rc, rc < 0 ? err.msg : "no error",
                 vnp_code_name(code), msg);
    assert_int_equal(err.code, code);
    assert_string_equal(err.msg, msg);
    free(dump);
    free(log);
}

void expect_error(const char *path, vnp_code code, const char *msg)
{
    expect_error_opt(path, 0, code, msg);
}

