/* Hostile checkpoints: each payload from tools/weights/craft_pickles.py is refused with
 * the exact code and a message naming the global or opcode and its byte offset, and
 * none of their side effects happens — while Python's own pickle, run on the same
 * files as a control, does perform them. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"
#include "virnucpro/weights.h"

static char *py_cmd(const char *args)
{
    static char cmd[70000];
    const char *py = getenv("VNP_PYTHON"), *src = getenv("VNP_SOURCE_DIR");
    assert_non_null(py);
    assert_non_null(src);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/weights/craft_pickles.py' %s", py, src, args);
    return cmd;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_hostile_pickles(void **state)
{
    (void)state;
    char evil[4096], control[4096], ours[4096], args[65536], cmd[70000];
    snprintf(evil, sizeof evil, "%s", vnp_test_tmp("evil"));
    snprintf(control, sizeof control, "%s", vnp_test_tmp("control"));
    snprintf(ours, sizeof ours, "%s", vnp_test_tmp("ours"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' && mkdir -p '%s' '%s'", evil, control, ours,
             control, ours);
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);
    snprintf(args, sizeof args, "'%s'", evil);
    char *errs = NULL;
    if (vnp_test_run(py_cmd(args), NULL, &errs) != 0)
        fail_msg("craft_pickles.py failed: %s", errs ? errs : "");
    free(errs);

    char manifest_path[4200];
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.tsv", evil);
    char *manifest = vnp_test_read_file(manifest_path, NULL);
    assert_non_null(manifest);

    /* control: Python's own pickle runs every live payload */
    char *rows[64];
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line && n < 64;
         line = strtok_r(NULL, "\n", &save))
        rows[n++] = line;
    char *files = calloc(n, 4400);
    assert_non_null(files);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        char name[256];
        sscanf(rows[i], "%255[^\t]", name);
        if (strstr(rows[i], "\t1") == rows[i] + strlen(rows[i]) - 2)
            off += (size_t)snprintf(files + off, n * 4400 - off, " '%s/%s.pth'", evil, name);
    }
    snprintf(args, sizeof args, "--detonate%s", files);
    free(files);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s", control, py_cmd(args));
    assert_int_equal(vnp_test_run(cmd, NULL, NULL), 0);

    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    size_t live = 0;
    for (size_t r = 0; r < n; r++) {
        char *name = strtok(rows[r], "\t"), *code = strtok(NULL, "\t"), *frag = strtok(NULL, "\t"),
             *is_live = strtok(NULL, "\t");
        assert_non_null(is_live);
        char file[4400], marker[4400];
        snprintf(file, sizeof file, "%s/%s.pth", evil, name);
        if (strcmp(is_live, "1") == 0) {
            snprintf(marker, sizeof marker, "%s/pwned-%s", control, name);
            for (int i = 0; i < 100 && !exists(marker); i++)
                usleep(20000); /* Popen runs its command asynchronously */
            if (!exists(marker))
                fail_msg("control: Python did not run payload %s", name);
            live++;
        }

        /* ours: refused, nothing returned, nothing run */
        assert_int_equal(chdir(ours), 0);
        vnp_error e;
        vnp_tensor_map *m = (vnp_tensor_map *)1;
        vnp_code rc = vnp_torch_load(file, &m, &e);
        assert_int_equal(chdir(cwd), 0);
        vnp_code want = strcmp(code, "EUNSUPPORTED") == 0 ? VNP_EUNSUPPORTED
                        : strcmp(code, "EFORMAT") == 0   ? VNP_EFORMAT
                                                         : VNP_OK;
        assert_int_not_equal(want, VNP_OK);
        if (rc != want)
            fail_msg("%s: expected %s, got %s: %s", name, code, vnp_code_name(rc), rc ? e.msg : "");
        assert_null(m);
        if (!strstr(e.msg, frag) || !strstr(e.msg, file) || !strstr(e.msg, "archive/data.pkl"))
            fail_msg("%s: message '%s' lacks '%s'", name, e.msg, frag);
    }
    usleep(300000); /* give any (impossible) asynchronous child time to show itself */
    assert_int_equal(dir_entries(ours), 0);
    assert_true(n >= 20);
    assert_true(live >= 14);
    free(manifest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_pickles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
