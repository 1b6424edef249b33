/* Shared by the sequence reader's tests (seq_reader_checks.c). */
#ifndef VNP_TESTS_SEQ_READER_CHECKS_H
#define VNP_TESTS_SEQ_READER_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/seq.h"

/* A growable NUL-terminated byte string. */
typedef struct text {
    char *d;
    size_t n, cap;
} text;
void seq_text_add(text *t, const void *s, size_t n);
void seq_text_adds(text *t, const char *s);

extern uint64_t g_last_bytes; /* vnp_seq_bytes at the end of the last read_all */

/* Reads every record of path into "id|desc|seq|qual|line\n" lines; returns the final
 * vnp_seq_read result (0 or -code). nucleotide_only as vnp_seq_set_nucleotide_only. */
int read_all_opt(const char *path, int nucleotide_only, char **dump, char **log,
                 vnp_error *err);
int read_all(const char *path, char **dump, char **log, vnp_error *err);
/* Writes data to the test's scratch file `name` and returns its path. */
const char *put(const char *name, const void *data, size_t len);
#define PUTS(name, lit) put(name, lit, sizeof(lit) - 1)
/* Expects the records in want and no log output. */
void expect_records(const char *path, const char *want);
/* Expects an error of code with msg exactly. */
void expect_error_opt(const char *path, int nucleotide_only, vnp_code code, const char *msg);
void expect_error(const char *path, vnp_code code, const char *msg);

#endif
