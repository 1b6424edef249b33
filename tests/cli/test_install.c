/* Installing and packaging (packaging/install.cmake, README "Install"):
 *  1. `cmake --install` into a temporary prefix puts bin/virnucpro (DT_RPATH
 *     $ORIGIN/../lib), the man page, bash and zsh completions and the documentation
 *     under share/; the installed binary, run from another directory, gives the golden
 *     predict files of the build tree's binary byte for byte;
 *  2. the man page renders with `man -l` and holds every line of every command's --help;
 *  3. the bash completion loads and completes commands and options;
 *  4. CPack builds the .deb and the relocatable tarball (a release makes a .tar.gz, as
 *     CPackConfig.cmake must say; the test makes the same tarball as .tar.zst, in seconds
 *     instead of a minute of gzip): the .deb's Depends names the Debian package of every
 *     library the binary links (beyond glibc) and it holds the same files; the
 *     tarball, unpacked elsewhere, runs predict with its own bundled libraries (ldd finds
 *     every library beyond glibc inside it) and gives the same files; each bundled library
 *     carries its licence: share/doc/virnucpro/third-party/LIBRARIES.tsv names it, and for
 *     a library of a Debian package the licence is that package's copyright file, copied
 *     byte for byte to third-party/<package>/copyright.
 * Needs VNP_BUILD_DIR, VNP_CMAKE and VNP_CPACK (set by tests/cli/CMakeLists.txt). */
#include "test_support.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define G "golden/"

static const char *build_dir, *cmake, *cpack;
static char prefix[4096];

static int setup(void **state)
{
    (void)state;
    build_dir = getenv("VNP_BUILD_DIR");
    cmake = getenv("VNP_CMAKE");
    cpack = getenv("VNP_CPACK");
    if (!build_dir || !cmake || !cpack) {
        fprintf(stderr, "VNP_BUILD_DIR, VNP_CMAKE and VNP_CPACK must be set (run through ctest)\n");
        return -1;
    }
    snprintf(prefix, sizeof prefix, "%s", vnp_test_tmp("prefix"));
    return 0;
}

static void assert_has(const char *text, const char *s)
{
    if (!strstr(text, s))
        fail_msg("expected \"%s\" in:\n%.4000s", s, text);
}

/* Runs cmd (sh -c); fails the test unless it exits 0. Returns its stdout. */
static char *must(const char *cmd)
{
    char *out = NULL, *err = NULL;
    int rc = vnp_test_run(cmd, &out, &err);
    if (rc != 0)
        fail_msg("`%s`: exit %d\nstdout:\n%.3000s\nstderr:\n%.3000s", cmd, rc, out, err);
    free(err);
    return out;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static const char *under(const char *root, const char *rel)
{
    static char b[4][8192];
    static int k;
    char *p = b[k++ & 3];
    size_t n = strlen(root);
    if (n >= 4096)
        n = 4095;
    memmove(p, root, n); /* root may be an earlier result */
    snprintf(p + n, sizeof b[0] - n, "/%s", rel);
    return p;
}

/* predict on the golden set with `bin`, run from directory `cwd`, into `out`. */
static void golden_predict(const char *bin, const char *cwd, const char *out)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && '%s' predict -q -l 500 -t 1 --device cpu "
             "--batch-tokens 300 --esm '%s' --dnabert '%s' --classifier '%s' -o '%s' '%s'",
             cwd, cwd, bin, vnp_test_fixture(G "esm2"), vnp_test_fixture(G "dnabert_s"),
             vnp_test_fixture(G "classifier.pth"), out, vnp_test_fixture(G "input.fa"));
    free(must(cmd));
}

static void assert_same_predict(const char *dir, const char *ref)
{
    static const char *const f[] = {"prediction_results.txt",
                                    "prediction_results_highestscore.csv", "sequences.tsv"};
    for (int i = 0; i < 3; i++)
        vnp_test_assert_files_equal(under(dir, f[i]), under(ref, f[i]));
    /* and the original tool's highest-score file */
    vnp_test_assert_files_equal(under(dir, f[1]),
                                vnp_test_fixture(G "expected/prediction_results_highestscore.csv"));
}

static void reference(void)
{
    static int done;
    if (!done) {
        golden_predict(vnp_test_cli(), vnp_test_tmp("."), vnp_test_tmp("ref"));
        done = 1;
    }
}

/* The layout under an installed root (a prefix, the unpacked tarball or the .deb's /usr). */
static void assert_layout(const char *root_in)
{
    char root[4096];
    snprintf(root, sizeof root, "%s", root_in);
    static const char *const files[] = {
        "bin/virnucpro", "share/man/man1/virnucpro.1",
        "share/bash-completion/completions/virnucpro", "share/zsh/vendor-completions/_virnucpro",
        "share/doc/virnucpro/README.md", "share/doc/virnucpro/MODELS.md"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!exists(under(root, files[i])))
            fail_msg("%s is not installed under %s", files[i], root);
}

/* 1. cmake --install; the installed binary from another directory */
static void test_install_prefix(void **state)
{
    (void)state;
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s' --install '%s' --prefix '%s'", prefix, cmake,
             build_dir, prefix);
    free(must(cmd));
    assert_layout(prefix);
    snprintf(cmd, sizeof cmd, "readelf -d '%s/bin/virnucpro'", prefix);
    char *dyn = must(cmd);
    assert_has(dyn, "(RPATH)              Library rpath: [$ORIGIN/../lib]");
    free(dyn);
    /* it finds nothing through the source or build tree: run it from elsewhere with a
     * clean environment (no VNP_* variables) */
    reference();
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/bin/virnucpro", prefix);
    golden_predict(bin, vnp_test_tmp("elsewhere"), vnp_test_tmp("installed_out"));
    assert_same_predict(vnp_test_tmp("installed_out"), vnp_test_tmp("ref"));
    snprintf(cmd, sizeof cmd, "'%s' --version", bin);
    char *v = must(cmd);
    assert_has(v, "virnucpro ");
    free(v);
}

/* Every non-empty line of `virnucpro <cmd> --help` appears in the rendered page (each
 * with its words as written: the page is generated from these texts). */
static void assert_page_has_help(const char *page, const char *bin, const char *sub)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s --help", bin, sub);
    char *help = must(cmd);
    for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        if (*line)
            assert_has(page, line);
    }
    free(help);
}

/* 2. man -l renders the page; it holds the help texts */
static void test_man_page(void **state)
{
    (void)state;
    char cmd[8192], bin[4200];
    snprintf(bin, sizeof bin, "%s/bin/virnucpro", prefix);
    if (!exists(bin))
        test_install_prefix(state);
    snprintf(cmd, sizeof cmd,
             "MANWIDTH=200 MANPAGER=cat PAGER=cat man -l '%s/share/man/man1/virnucpro.1' 2>&1",
             prefix);
    char *page = must(cmd);
    assert_has(page, "VIRNUCPRO(1)");
    assert_has(page, "NAME");
    assert_null(strstr(page, "troff:")); /* no roff warning */
    static const char *const subs[] = {"",      "predict",  "merge",   "preprocess",
                                       "embed", "tokenize", "inspect", "models"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        assert_page_has_help(page, bin, subs[i]);
    free(page);
}

/* 3. the bash completion: commands, a command's options, option values */
static void test_bash_completion(void **state)
{
    (void)state;
    char bin[4200], cmd[16384];
    snprintf(bin, sizeof bin, "%s/bin/virnucpro", prefix);
    if (!exists(bin))
        test_install_prefix(state);
    static const struct {
        const char *words;
        int cword;
        const char *want;
    } cases[] = {
        {"virnucpro pre", 1, "predict preprocess"},
        {"virnucpro m", 1, "merge models"},
        {"virnucpro predict --sh", 2, "--shard"},
        {"virnucpro predict --res", 2, "--resume"},
        {"virnucpro merge -", 2, "--help --input --output --quiet -h -i -o -q"},
        {"virnucpro predict --precision b", 3, "bf16"},
        {"virnucpro predict -l 3", 3, "300"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "PATH='%s/bin':\"$PATH\" bash --norc --noprofile -c '"
                 "source \"%s/share/bash-completion/completions/virnucpro\" && "
                 "complete -p virnucpro >/dev/null && "
                 "COMP_WORDS=(%s) && COMP_CWORD=%d && _virnucpro && "
                 "printf \"%%s\\n\" \"${COMPREPLY[@]}\" | sort | tr \"\\n\" \" \"'",
                 prefix, prefix, cases[i].words, cases[i].cword);
        char *got = must(cmd);
        char want[256];
        snprintf(want, sizeof want, "%s ", cases[i].want);
        if (strcmp(got, want))
            fail_msg("completing '%s': got '%s', want '%s'", cases[i].words, got, want);
        free(got);
    }
    /* zsh's file at least parses, where zsh is installed */
    if (exists("/bin/zsh") || exists("/usr/bin/zsh")) {
        snprintf(cmd, sizeof cmd, "zsh -n '%s/share/zsh/vendor-completions/_virnucpro'", prefix);
        free(must(cmd));
    }
}

/* The Debian package owning a file (dpkg -S), or "" */
static void package_of(const char *path, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "dpkg -S \"$(readlink -f '%s')\" 2>/dev/null || dpkg -S '%s'",
             path, path);
    char *o = NULL;
    out[0] = 0;
    if (vnp_test_run(cmd, &o, NULL) == 0 && o) {
        char *colon = strchr(o, ':');
        if (colon) {
            *colon = 0;
            snprintf(out, cap, "%s", o);
        }
    }
    free(o);
}

/* Every library in root/lib has a row in third-party/LIBRARIES.tsv whose licence is there;
 * a Debian package's library has that package's copyright file. */
static void assert_licences(const char *root)
{
    char tsv[8400], docs[8400];
    snprintf(docs, sizeof docs, "%s/share/doc/virnucpro", root);
    snprintf(tsv, sizeof tsv, "%s/third-party/LIBRARIES.tsv", docs);
    char *text = vnp_test_read_file(tsv, NULL);
    if (!text)
        fail_msg("the tarball has no %s", tsv);
    static const char head[] = "library\tpackage\tlicence\tsource\n";
    assert_int_equal(strncmp(text, head, sizeof head - 1), 0);
    /* the real paths of the rows' libraries in root/lib */
    static char real[128][PATH_MAX];
    int nrows = 0, debian = 0;
    char *save = NULL;
    for (char *l = strtok_r(text + sizeof head - 1, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char lib[256], pkg[256], lic[512], src[2048];
        if (sscanf(l, "%255[^\t]\t%255[^\t]\t%511[^\t]\t%2047s", lib, pkg, lic, src) != 4)
            fail_msg("malformed row of %s: '%s'", tsv, l);
        char path[PATH_MAX + 600];
        snprintf(path, sizeof path, "%s/lib/%s", root, lib);
        assert_true(nrows < 128);
        if (!realpath(path, real[nrows++]))
            fail_msg("%s lists %s, which the tarball does not have", tsv, lib);
        snprintf(path, sizeof path, "%s/%s", docs, lic);
        if (!exists(path))
            fail_msg("%s: the licence of %s, %s, is not in the tarball", tsv, lib, lic);
        char owner[256];
        package_of(src, owner, sizeof owner);
        char *arch = strchr(owner, ':');
        if (arch)
            *arch = 0;
        if (!*owner)
            continue; /* a toolkit's library (CUDA): its own licence */
        if (strcmp(owner, pkg))
            fail_msg("%s: %s comes from Debian package %s, not %s", tsv, src, owner, pkg);
        char want[512];
        snprintf(want, sizeof want, "third-party/%s/copyright", pkg);
        assert_string_equal(lic, want);
        snprintf(want, sizeof want, "/usr/share/doc/%s/copyright", pkg);
        vnp_test_assert_files_equal(path, want);
        debian++;
    }
    free(text);
    assert_true(debian >= 6);
    /* and no library in lib/ without a row (a versioned file counts through its soname) */
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/lib", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int nlibs = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX * 2], r[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_non_null(realpath(path, r));
        int found = 0;
        for (int i = 0; i < nrows && !found; i++)
            found = !strcmp(real[i], r);
        if (!found)
            fail_msg("%s is bundled without a licence (no row in %s)", path, tsv);
        nlibs++;
    }
    closedir(d);
    assert_true(nlibs >= nrows);
}

/* 4. CPack: the .deb and the relocatable tarball */
static void test_cpack(void **state)
{
    (void)state;
    char pkg[4096];
    snprintf(pkg, sizeof pkg, "%s", vnp_test_tmp("pkg"));
    char cmd[16384];
    /* the generators a release runs: the .deb and the .tar.gz */
    snprintf(cmd, sizeof cmd, "%s/CPackConfig.cmake", build_dir);
    char *config = vnp_test_read_file(cmd, NULL);
    assert_non_null(config);
    if (!strstr(config, "set(CPACK_GENERATOR \"DEB;TGZ\")"))
        fail_msg("%s does not set CPACK_GENERATOR to DEB;TGZ", cmd);
    free(config);
    /* the tarball as TZST: the same install, bundling and layout (cpack_config.cmake), zstd
     * instead of gzip (about 60 s for the CUDA build's 670 MB) */
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cd '%s' && '%s' -G 'DEB;TZST' -B '%s' 2>&1", pkg,
             build_dir, cpack, pkg);
    char *log = must(cmd);
    free(log);
    /* the .deb: its Depends covers every library the binary links beyond glibc */
    snprintf(cmd, sizeof cmd, "dpkg-deb -f '%s'/virnucpro_*.deb Depends", pkg);
    char *dep = must(cmd);
    snprintf(cmd, sizeof cmd,
             "ldd '%s' | awk '$3 ~ /^\\// {print $3}' | grep -v -E "
             "'/(libc|libm|libpthread|libdl|librt|libresolv|libcuda|libcudart|libcublas|"
             "libcublasLt|libasan|libubsan|libtsan)[.]so'",
             vnp_test_cli());
    char *libs = must(cmd);
    /* the direct dependencies (the Depends line names those; theirs come with them) */
    snprintf(cmd, sizeof cmd, "readelf -d '%s' | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'",
             vnp_test_cli());
    char *needed = must(cmd);
    int checked = 0;
    for (char *l = strtok(libs, "\n"); l; l = strtok(NULL, "\n")) {
        const char *base = strrchr(l, '/') + 1;
        char key[256];
        snprintf(key, sizeof key, "%s\n", base);
        if (!strstr(needed, key))
            continue;
        char p[256];
        package_of(l, p, sizeof p);
        if (!*p)
            fail_msg("no Debian package owns %s", l);
        char *arch = strchr(p, ':');
        if (arch)
            *arch = 0;
        if (!strstr(dep, p))
            fail_msg("the .deb's Depends (%s) lacks %s, the package of %s", dep, p, l);
        checked++;
    }
    assert_true(checked >= 6);
    free(libs);
    free(needed);
    free(dep);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/deb' && dpkg-deb -x '%s'/virnucpro_*.deb '%s/deb'", pkg,
             pkg, pkg);
    free(must(cmd));
    assert_layout(under(pkg, "deb/usr"));
    /* the tarball, unpacked somewhere else */
    char x[4096];
    snprintf(x, sizeof x, "%s", vnp_test_tmp("unpacked/somewhere"));
    /* (CMake's own tar reads zstd: no zstd tool needed) */
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && cd '%s' && '%s' -E tar xf '%s'/virnucpro-*.tar.zst "
             "&& ls '%s'",
             x, x, x, cmake, pkg, x);
    char *top = must(cmd);
    top[strcspn(top, "\n")] = 0;
    char root[8192];
    snprintf(root, sizeof root, "%s/%s", x, top);
    free(top);
    assert_layout(root);
    /* every library beyond glibc comes from the tarball */
    snprintf(cmd, sizeof cmd, "ldd '%s/bin/virnucpro'", root);
    char *ldd = must(cmd);
    for (char *l = strtok(ldd, "\n"); l; l = strtok(NULL, "\n")) {
        char *arrow = strstr(l, "=> ");
        if (!arrow || strstr(l, "libc.so") || strstr(l, "libm.so") || strstr(l, "ld-linux") ||
            strstr(l, "libpthread") || strstr(l, "libdl.so") || strstr(l, "librt.so") ||
            strstr(l, "libresolv") || strstr(l, "libcuda.so"))
            continue;
        if (!strstr(arrow, root))
            fail_msg("the unpacked binary takes %s from outside the tarball", l);
    }
    free(ldd);
    assert_licences(root);
    reference();
    char bin[8400];
    snprintf(bin, sizeof bin, "%s/bin/virnucpro", root);
    golden_predict(bin, vnp_test_tmp("elsewhere2"), vnp_test_tmp("tarball_out"));
    assert_same_predict(vnp_test_tmp("tarball_out"), vnp_test_tmp("ref"));
    /* the packages are large with CUDA (its libraries are bundled): free the space */
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", pkg, vnp_test_tmp("unpacked"));
    free(must(cmd));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_prefix),
        cmocka_unit_test(test_man_page),
        cmocka_unit_test(test_bash_completion),
        cmocka_unit_test(test_cpack),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
