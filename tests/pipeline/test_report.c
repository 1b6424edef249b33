/* report.html and plots/ (src/pipeline/report.c), made by `classify` from the original
 * tool's golden prediction_results.txt (no model needed):
 *  - plots/ holds one SVG per viral sequence up to --plots, ranked by viral chunks (ties:
 *    input order), the ranking taken here from the committed expected sequences.tsv;
 *    every SVG is well-formed (xmllint); --plots 0 leaves no plots/ and no track;
 *  - the page is self-contained: no src/href/url()/@import, no http(s) but the SVG
 *    namespace;
 *  - the page opened in a real browser, Debian's headless Chromium: the DOM it dumps after
 *    running the page's own check says every expected track was drawn, and a screenshot
 *    is taken and is not blank (decoded here with zlib: many non-white pixels, and the
 *    virus red among them).
 * xmllint (libxml2-utils) and chromium come from scripts/install-deps.sh --test; a missing
 * one fails the test. $VNP_CHROMIUM names another browser binary. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "test_support.h"

#define G "golden/"

static char in[4096], results[4096], expected_seqs[4096];

static int setup(void **state)
{
    (void)state;
    snprintf(in, sizeof in, "%s", vnp_test_fixture(G "input.fa"));
    snprintf(results, sizeof results, "%s", vnp_test_fixture(G "expected/prediction_results.txt"));
    snprintf(expected_seqs, sizeof expected_seqs, "%s",
             vnp_test_fixture(G "expected/derived_500/sequences.tsv"));
    return 0;
}

static const char *path_in(const char *dir, const char *name)
{
    static char b[4][4096];
    static int k;
    char *p = b[k++ & 3];
    char tmp[sizeof b[0]];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, name); /* dir may be an earlier result */
    memcpy(p, tmp, sizeof tmp);
    return p;
}

/* classify the golden rows into tmp/<name> with `opts`; returns the directory. */
static const char *classify(const char *name, const char *opts)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", vnp_test_tmp(name));
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && cp '%s' '%s/prediction_results.txt' && "
             "'%s' classify '%s' -i '%s' -q %s",
             dir, dir, results, dir, vnp_test_cli(), dir, in, opts);
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("classify %s: %s", opts, err);
    free(err);
    return dir;
}

/* The plot file names the ranking calls for, from the expected sequences.tsv: viral
 * sequences by Chunks_virus (descending), ties in input order, the first `n`. */
static void expected_plots(size_t n, char *out, size_t cap)
{
    char *t = vnp_test_read_file(expected_seqs, NULL);
    assert_non_null(t);
    char ids[64][96];
    long viral[64];
    size_t m = 0;
    char *save = NULL;
    strtok_r(t, "\n", &save); /* header */
    for (char *line; (line = strtok_r(NULL, "\n", &save));) {
        char id[96], verdict[16], score[32];
        size_t len, chunks, scored, nv;
        assert_int_equal(sscanf(line, "%95s %zu %zu %zu %zu %31s %15s", id, &len, &chunks,
                                &scored, &nv, score, verdict),
                         7);
        if (strcmp(verdict, "virus"))
            continue;
        size_t at = m++; /* stable insertion: only a strictly larger count moves ahead */
        while (at > 0 && viral[at - 1] < (long)nv) {
            memcpy(ids[at], ids[at - 1], sizeof ids[0]);
            viral[at] = viral[at - 1];
            at--;
        }
        snprintf(ids[at], sizeof ids[0], "%s", id);
        viral[at] = (long)nv;
    }
    free(t);
    out[0] = 0;
    int digits = 1;
    size_t shown = n < m ? n : m;
    for (size_t k = shown; k >= 10; k /= 10)
        digits++;
    for (size_t i = 0; i < shown; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%0*zu_%s.svg", i ? " " : "", digits,
                 i + 1, ids[i]);
}

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

static void list_dir(const char *dir, char *out, size_t cap)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    char names[128][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 128)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", names[i]);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void assert_plots(const char *dir, size_t n)
{
    char want[8192], got[8192];
    expected_plots(n, want, sizeof want);
    list_dir(path_in(dir, "plots"), got, sizeof got);
    assert_string_equal(got, want);
    /* every SVG well-formed, and one track each */
    for (char *save = NULL, *f = strtok_r(got, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        char svg[4400], cmd[9000], *err = NULL;
        snprintf(svg, sizeof svg, "%s/%s", path_in(dir, "plots"), f);
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", svg);
        int rc = vnp_test_run(cmd, NULL, &err);
        if (rc)
            fail_msg("xmllint %s: exit %d (is libxml2-utils installed? scripts/install-deps.sh "
                     "--test): %s", svg, rc, err);
        free(err);
        char *t = vnp_test_read_file(svg, NULL);
        assert_int_equal(count_of(t, "<svg "), 1);
        assert_int_equal(count_of(t, "class=\"track\""), 1);
        assert_int_equal(count_of(t, "class=\"threshold\""), 1);
        free(t);
    }
}

/* Nothing in the page is fetched: no src/href attributes, url() or @import, and no
 * address but the SVG namespace. */
static void assert_self_contained(const char *html)
{
    assert_int_equal(count_of(html, "src="), 0);
    assert_int_equal(count_of(html, "href="), 0);
    assert_int_equal(count_of(html, "url("), 0);
    assert_int_equal(count_of(html, "@import"), 0);
    assert_int_equal(count_of(html, "//"), count_of(html, "http://www.w3.org/2000/svg"));
}

static const char *chromium(void)
{
    const char *env = getenv("VNP_CHROMIUM");
    if (env && *env)
        return env;
    static const char *const names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (access(names[i], X_OK) == 0)
            return names[i];
    fail_msg("no Chromium: install Debian's chromium (scripts/install-deps.sh --test) or set "
             "VNP_CHROMIUM");
    return NULL;
}

/* Runs headless Chromium on file://page with `what` (--dump-dom, --screenshot=...). */
static char *browse(const char *page, const char *what)
{
    char cmd[16384], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd,
             "HOME='%s' timeout 120 '%s' --headless --no-sandbox --disable-gpu "
             "--no-first-run --user-data-dir='%s' --window-size=1050,1600 %s 'file://%s'",
             vnp_test_tmp("chromium_home"), chromium(), vnp_test_tmp("chromium_profile"), what,
             page);
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc)
        fail_msg("chromium %s: exit %d: %s", what, rc, err);
    free(err);
    return out;
}

/* ---- a PNG reader, enough for Chromium's screenshots (8-bit RGB/RGBA, no interlace) ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes path into *rgb (w * h * 3 bytes). */
static void read_png(const char *path, unsigned char **rgb, uint32_t *w, uint32_t *h)
{
    size_t n;
    unsigned char *f = (unsigned char *)vnp_test_read_file(path, &n);
    assert_non_null(f);
    assert_true(n > 8 && !memcmp(f, "\x89PNG\r\n\x1a\n", 8));
    unsigned char *idat = NULL;
    size_t idat_n = 0;
    int ctype = -1;
    *w = *h = 0;
    for (size_t off = 8; off + 12 <= n;) {
        uint32_t len = be32(f + off);
        const unsigned char *type = f + off + 4, *data = f + off + 8;
        assert_true(off + 12 + len <= n);
        if (!memcmp(type, "IHDR", 4)) {
            *w = be32(data);
            *h = be32(data + 4);
            assert_int_equal(data[8], 8);  /* bit depth */
            ctype = data[9];
            assert_true(ctype == 2 || ctype == 6);
            assert_int_equal(data[12], 0); /* no interlace */
        } else if (!memcmp(type, "IDAT", 4)) {
            idat = realloc(idat, idat_n + len);
            memcpy(idat + idat_n, data, len);
            idat_n += len;
        }
        off += 12 + len;
    }
    assert_true(ctype >= 0 && idat_n > 0);
    size_t bpp = ctype == 6 ? 4 : 3, stride = (size_t)*w * bpp;
    uLongf raw_n = (uLongf)((stride + 1) * *h);
    unsigned char *raw = malloc(raw_n);
    assert_int_equal(uncompress(raw, &raw_n, idat, (uLong)idat_n), Z_OK);
    assert_int_equal(raw_n, (stride + 1) * *h);
    unsigned char *img = malloc(stride * *h);
    for (uint32_t y = 0; y < *h; y++) {
        const unsigned char *src = raw + y * (stride + 1) + 1;
        int filter = raw[y * (stride + 1)];
        unsigned char *dst = img + y * stride, *up = y ? dst - stride : NULL;
        for (size_t x = 0; x < stride; x++) {
            int a = x >= bpp ? dst[x - bpp] : 0, b = up ? up[x] : 0,
                c = up && x >= bpp ? up[x - bpp] : 0;
            int pred = filter == 0 ? 0 : filter == 1 ? a : filter == 2 ? b
                       : filter == 3 ? (a + b) / 2 : paeth(a, b, c);
            assert_true(filter <= 4);
            dst[x] = (unsigned char)(src[x] + pred);
        }
    }
    *rgb = malloc((size_t)*w * *h * 3);
    for (size_t i = 0; i < (size_t)*w * *h; i++)
        memcpy(*rgb + 3 * i, img + bpp * i, 3);
    free(img);
    free(raw);
    free(idat);
    free(f);
}

static void test_report_in_chromium(void **state)
{
    (void)state;
    const char *dir = classify("default", "");
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    assert_plots(d, 20); /* --plots 20 (default): all 11 viral sequences */
    char page[4200];
    snprintf(page, sizeof page, "%s", path_in(d, "report.html"));
    char *html = vnp_test_read_file(page, NULL);
    assert_non_null(html);
    assert_self_contained(html);
    assert_int_equal(count_of(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"track\""),
                     11);
    assert_non_null(strstr(html, "<td class=\"n\" id=\"n-virus\">11</td>"));
    assert_non_null(strstr(html, "<td class=\"n\" id=\"n-others\">8</td>"));
    assert_non_null(strstr(html, "<td class=\"n\" id=\"n-unscored\">2</td>"));
    free(html);
    /* the page's own check, run by the browser */
    char *dom = browse(page, "--dump-dom");
    if (!strstr(dom, "data-expected-tracks=\"11\" data-tracks=\"11\" data-ok=\"true\">"
                     "self-check: 11 of 11 tracks drawn"))
        fail_msg("the page's self-check did not pass in Chromium; DOM:\n%.4000s", dom);
    assert_int_equal(count_of(dom, "class=\"track\""), 11);
    free(dom);
    /* a screenshot that is not blank */
    char png[4200], shot[4400];
    snprintf(png, sizeof png, "%s", vnp_test_tmp("report.png"));
    remove(png);
    snprintf(shot, sizeof shot, "--screenshot='%s'", png);
    free(browse(page, shot));
    unsigned char *rgb;
    uint32_t w = 0, h = 0;
    read_png(png, &rgb, &w, &h);
    assert_int_equal(w, 1050);
    assert_int_equal(h, 1600);
    size_t ink = 0, red = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        const unsigned char *p = rgb + 3 * i;
        ink += p[0] < 200 || p[1] < 200 || p[2] < 200;
        red += p[0] > 150 && p[1] < 90 && p[2] < 90; /* the virus colour, #c0392b */
    }
    free(rgb);
    print_message("screenshot %ux%u: %zu non-white pixels, %zu red\n", w, h, ink, red);
    assert_true(ink > (size_t)w * h / 100); /* text, tables, histogram, tracks */
    assert_true(red > 500);                 /* the virus bars and chunks */
}

static void test_plots_option(void **state)
{
    (void)state;
    char d[4096];
    snprintf(d, sizeof d, "%s", classify("top5", "--plots 5"));
    assert_plots(d, 5);
    char *html = vnp_test_read_file(path_in(d, "report.html"), NULL);
    assert_int_equal(count_of(html, "class=\"track\""), 5);
    assert_non_null(strstr(html, "data-expected-tracks=\"5\""));
    free(html);
    /* --plots 0: no plots/, no track; classify again with 0 removes the earlier plots */
    char cmd[16384], *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' classify '%s' -i '%s' -q --plots 0", vnp_test_cli(), d, in);
    if (vnp_test_run(cmd, NULL, &err))
        fail_msg("%s", err);
    free(err);
    assert_int_equal(access(path_in(d, "plots"), F_OK), -1);
    html = vnp_test_read_file(path_in(d, "report.html"), NULL);
    assert_int_equal(count_of(html, "class=\"track\""), 0);
    assert_non_null(strstr(html, "class=\"histogram\""));
    free(html);
    /* --min-score 0.8: 5 viral sequences, the threshold on the tracks */
    snprintf(d, sizeof d, "%s", classify("min08", "--min-score 0.8"));
    char got[4096];
    list_dir(path_in(d, "plots"), got, sizeof got);
    assert_string_equal(got, "1_lambda_dev_0.svg 2_ecoli_dev_0.svg 3_ecoli_dev_4.svg "
                             "4_iupac_dev.svg 5_short_dev.svg");
    char plots[4200];
    snprintf(plots, sizeof plots, "%s", path_in(d, "plots"));
    char *svg = vnp_test_read_file(path_in(plots, "1_lambda_dev_0.svg"), NULL);
    assert_non_null(strstr(svg, "--min-score 0.8"));
    free(svg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_in_chromium),
        cmocka_unit_test(test_plots_option),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
