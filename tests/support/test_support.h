/* Helpers shared by the cmocka tests: fixture paths, file reading, running the CLI. */
#ifndef VNP_TEST_SUPPORT_H
#define VNP_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file under tests/fixtures (VNP_FIXTURES). Returned buffer is one of
 * a few rotating static buffers. */
const char *vnp_test_fixture(const char *rel);
/* Path under this test's scratch directory (VNP_TMP). */
const char *vnp_test_tmp(const char *rel);
/* vnp_test_tmp("dir/name"), in one of four rotating buffers (up to four live at once). */
const char *vnp_test_tmp_in(const char *dir, const char *name);
/* Path of the built CLI (VNP_CLI). */
const char *vnp_test_cli(void);
/* Reads a whole file (gunzips *.gz). Returns malloc'd NUL-terminated data or NULL. */
char *vnp_test_read_file(const char *path, size_t *len);
/* Writes data to path; returns 0 on success. */
int vnp_test_write_file(const char *path, const void *data, size_t len);
/* Runs `sh -c cmd`, capturing stdout/stderr into malloc'd strings (may pass NULL).
 * Returns the exit status (or 128+signal). */
int vnp_test_run(const char *cmd, char **out, char **err);
/* Asserts two files have identical bytes (gunzipping *.gz); prints the first difference. */
void vnp_test_assert_files_equal(const char *got, const char *want);

/* cmocka_run_group_tests(tests, setup, teardown), keeping only the tests named by
 * VNP_TEST_ONLY and none named by VNP_TEST_SKIP (each a comma-separated list of fnmatch
 * patterns; unset: no filter). A pattern that names no test fails the run (a misspelt
 * filter must not pass by running nothing); when filtered, it prints how many of how many
 * tests it runs. vnp_test(... SPLIT) in tests/CMakeLists.txt runs one long program as two
 * ctest entries this way, so that both cores work on it. */
#define vnp_test_run_tests(tests, setup, teardown)                                           \
    vnp_test_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
int vnp_test_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                       CMFixtureFunction setup, CMFixtureFunction teardown);

/* Captures vnp_log messages into a buffer while installed. */
void vnp_test_capture_log_begin(void);
/* Returns everything logged since begin (one message per line) and uninstalls. */
char *vnp_test_capture_log_end(void);

#endif
