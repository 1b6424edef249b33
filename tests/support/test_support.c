#include "test_support.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "virnucpro/error.h"

static char bufs[8][4096];
static int bufi;

static const char *env_path(const char *var, const char *rel)
{
    const char *base = getenv(var);
    if (!base) {
        fprintf(stderr, "test environment variable %s is not set (run through ctest)\n", var);
        abort();
    }
    char *b = bufs[bufi++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", base, rel);
    return b;
}

const char *vnp_test_fixture(const char *rel) { return env_path("VNP_FIXTURES", rel); }
const char *vnp_test_tmp(const char *rel) { return env_path("VNP_TMP", rel); }
const char *vnp_test_cli(void)
{
    const char *p = getenv("VNP_CLI");
    if (!p) {
        fprintf(stderr, "VNP_CLI is not set (run through ctest)\n");
        abort();
    }
    return p;
}

char *vnp_test_read_file(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *d = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            d = realloc(d, cap + 1);
        }
        int r = gzread(f, d + n, (unsigned)(cap - n));
        if (r < 0) {
            gzclose(f);
            free(d);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    gzclose(f);
    d[n] = 0;
    if (len)
        *len = n;
    return d;
}

int vnp_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int vnp_test_run(const char *cmd, char **out, char **err)
{
    char o[4096], e[4096], full[16384];
    snprintf(o, sizeof o, "%s", vnp_test_tmp("run.stdout"));
    snprintf(e, sizeof e, "%s", vnp_test_tmp("run.stderr"));
    snprintf(full, sizeof full, "( %s ) >'%s' 2>'%s' </dev/null", cmd, o, e);
    int st = system(full);
    if (out)
        *out = vnp_test_read_file(o, NULL);
    if (err)
        *err = vnp_test_read_file(e, NULL);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

void vnp_test_assert_files_equal(const char *got, const char *want)
{
    size_t ng = 0, nw = 0;
    char *g = vnp_test_read_file(got, &ng);
    char *w = vnp_test_read_file(want, &nw);
    if (!g)
        fail_msg("cannot read %s", got);
    if (!w)
        fail_msg("cannot read %s", want);
    size_t i = 0, line = 1;
    while (i < ng && i < nw && g[i] == w[i]) {
        if (g[i] == '\n')
            line++;
        i++;
    }
    if (i != ng || i != nw) {
        fail_msg("%s differs from %s at byte %zu (line %zu): got %.40s | want %.40s", got, want,
                 i, line, g + i, w + i);
    }
    free(g);
    free(w);
}

static char *cap_buf;
static size_t cap_len;

static void cap_fn(vnp_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    size_t m = strlen(msg);
    cap_buf = realloc(cap_buf, cap_len + m + 2);
    memcpy(cap_buf + cap_len, msg, m);
    cap_len += m;
    cap_buf[cap_len++] = '\n';
    cap_buf[cap_len] = 0;
}

void vnp_test_capture_log_begin(void)
{
    free(cap_buf);
    cap_buf = calloc(1, 1);
    cap_len = 0;
    vnp_log_set_handler(cap_fn, NULL);
}

char *vnp_test_capture_log_end(void)
{
    vnp_log_set_handler(NULL, NULL);
    char *r = cap_buf;
    cap_buf = NULL;
    cap_len = 0;
    return r;
}

const char *vnp_test_tmp_in(const char *dir, const char *name)
{
    static char b[4][4096];
    static int k;
    char *p = b[k++ & 3];
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", dir, name);
    snprintf(p, sizeof b[0], "%s", vnp_test_tmp(rel));
    return p;
}

/* Whether `name` matches one of the comma-separated patterns of `list`; counts, in
 * used[i], the names pattern i matched. */
static int matches(const char *list, const char *name, int *used)
{
    int hit = 0, i = 0;
    for (const char *p = list; *p; i++) {
        size_t len = strcspn(p, ",");
        char pat[256];
        snprintf(pat, sizeof pat, "%.*s", (int)len, p);
        if (pat[0] && fnmatch(pat, name, 0) == 0) {
            hit = 1;
            if (used && i < 64)
                used[i]++;
        }
        p += len + (p[len] == ',');
    }
    return hit;
}

/* Fails naming the first pattern of `list` that matched no test. */
static int check_used(const char *var, const char *list, const int *used)
{
    int i = 0;
    for (const char *p = list; *p; i++) {
        size_t len = strcspn(p, ",");
        if (len && i < 64 && !used[i]) {
            fprintf(stderr, "%s: '%.*s' names no test of this program\n", var, (int)len, p);
            return 1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

int vnp_test_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                       CMFixtureFunction setup, CMFixtureFunction teardown)
{
    const char *only = getenv("VNP_TEST_ONLY"), *skip = getenv("VNP_TEST_SKIP");
    if (!only && !skip)
        return _cmocka_run_group_tests(name, tests, n, setup, teardown);
    struct CMUnitTest *kept = calloc(n ? n : 1, sizeof *kept);
    int used_only[64] = {0}, used_skip[64] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int in = only ? matches(only, tests[i].name, used_only) : 1;
        int out = skip ? matches(skip, tests[i].name, used_skip) : 0;
        if (in && !out)
            kept[k++] = tests[i];
    }
    if ((only && check_used("VNP_TEST_ONLY", only, used_only)) ||
        (skip && check_used("VNP_TEST_SKIP", skip, used_skip)) || k == 0) {
        if (k == 0)
            fprintf(stderr, "VNP_TEST_ONLY/VNP_TEST_SKIP leave none of the %zu tests to run\n",
                    n);
        free(kept);
        return 1;
    }
    printf("[ FILTER   ] %zu of %zu tests (VNP_TEST_ONLY=%s, VNP_TEST_SKIP=%s)\n", k, n,
           only ? only : "(all)", skip ? skip : "(none)");
    fflush(stdout);
    int rc = _cmocka_run_group_tests(name, kept, k, setup, teardown);
    free(kept);
    return rc;
}
