/* The model hub against a real HTTP server (lighttpd on 127.0.0.1 serving the golden
 * models in the hub's layout, with the hub's digest headers) and tiny servers that
 * stall or fail. Nothing here touches the internet. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hub/hub_internal.h"
#include "hub_test_server.h"
#include "test_support.h"

static hub_server srv;
static char hub_url[256], gh_url[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void rm_rf(const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* A fresh, empty cache directory under VNP_TMP. */
static const char *fresh(const char *name)
{
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s", vnp_test_tmp(name));
    rm_rf(b);
    return b;
}

/* Runs the CLI with extra environment assignments (env may be ""). */
static int cli(const char *env, const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s' %s", env, vnp_test_cli(), args);
    return vnp_test_run(cmd, out, err);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected to find \"%s\" in:\n%s", needle, hay ? hay : "(null)");
}

static int64_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static const char *cache_file(const char *cache, const char *model, const char *file)
{
    static char b[4][2048];
    static int k;
    char *p = b[k++ & 3];
    snprintf(p, sizeof b[0], "%s/%s/%s", cache, model, file);
    return p;
}

static cJSON *load_manifest(const char *cache)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", cache);
    char *text = vnp_test_read_file(path, NULL);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

static const char *manifest_str(cJSON *root, const char *model, const char *file,
                                const char *key)
{
    cJSON *m = vnp_manifest_model(root, model, 0);
    assert_non_null(m);
    cJSON *e = vnp_manifest_file(m, file, 0);
    if (!e)
        fail_msg("manifest has no entry for %s/%s", model, file);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void flip_byte(const char *path, off_t at, int keep_mtime)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
    if (keep_mtime) {
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    }
}

static void opts_for(vnp_hub_options *o, const char *cache)
{
    vnp_hub_options_init(o);
    o->cache_dir = cache;
    o->progress = 0;
    o->quiet = 1;
}

/* ---- fixtures of the test trees that are not the golden models ---- */
static const char sharded_index[] =
    "{\"metadata\": {\"total_size\": 3},\n \"weight_map\": {\"a.weight\": "
    "\"pytorch_model-00001-of-00002.bin\", \"b.weight\": \"pytorch_model-00002-of-00002.bin\", "
    "\"c.bias\": \"pytorch_model-00001-of-00002.bin\"}}\n";
static const char evil_index[] = "{\"weight_map\": {\"a\": \"../../escape.bin\"}}";

static void build_extra_trees(const char *tree)
{
    char buf[150000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 131u + (i >> 7));
    hub_tree_put(tree, "hub/test/sharded/resolve/r1/config.json",
                 vnp_test_fixture("golden/esm2/config.json"));
    hub_tree_put(tree, "hub/test/sharded/resolve/r1/vocab.txt",
                 vnp_test_fixture("golden/esm2/vocab.txt"));
    hub_tree_write(tree, "hub/test/sharded/resolve/r1/pytorch_model.bin.index.json", sharded_index,
                   strlen(sharded_index));
    hub_tree_write(tree, "hub/test/sharded/resolve/r1/pytorch_model-00001-of-00002.bin", buf,
                   sizeof buf);
    hub_tree_write(tree, "hub/test/sharded/resolve/r1/pytorch_model-00002-of-00002.bin", buf,
                   sizeof buf / 3);
    hub_tree_put(tree, "hub/test/evil/resolve/r1/config.json",
                 vnp_test_fixture("golden/esm2/config.json"));
    hub_tree_write(tree, "hub/test/evil/resolve/r1/model.safetensors.index.json", evil_index,
                   strlen(evil_index));
    /* repositories whose pinned revision ("gone") is not on the server, only their
     * default branch main: on the hub, on GitHub, and the real classifier's on a mirror */
    static const char *const esm[] = {"config.json", "model.safetensors", "vocab.txt", NULL};
    for (int i = 0; esm[i]; i++) {
        char rel[256], src[256];
        snprintf(rel, sizeof rel, "hub/test/moved/resolve/main/%s", esm[i]);
        snprintf(src, sizeof src, "golden/esm2/%s", esm[i]);
        hub_tree_put(tree, rel, vnp_test_fixture(src));
    }
    hub_tree_put(tree, "gh/test/moved/main/300_model.pth", vnp_test_fixture("golden/classifier.pth"));
    hub_tree_put(tree, "moved/gh/Li-Jing-1997/VirNucPro/main/300_model.pth",
                 vnp_test_fixture("golden/classifier.pth"));
}

static int group_setup(void **state)
{
    (void)state;
    const char *tree = fresh("tree");
    hub_tree_build(tree);
    build_extra_trees(tree);
    hub_server_start(&srv, tree, fresh("server"));
    snprintf(hub_url, sizeof hub_url, "%s/hub", srv.base);
    snprintf(gh_url, sizeof gh_url, "%s/gh", srv.base);
    /* the environment every CLI run inherits: this server, no proxies, no
     * caches of the machine, short backoff */
    setenv("VIRNUCPRO_HUB_URL", hub_url, 1);
    setenv("VIRNUCPRO_GITHUB_URL", gh_url, 1);
    setenv("HF_HOME", vnp_test_tmp("no-hf"), 1);
    setenv("TORCH_HOME", vnp_test_tmp("no-torch"), 1);
    setenv("VIRNUCPRO_HUB_RETRY_DELAY_MS", "50", 1);
    setenv("no_proxy", "*", 1);
    setenv("NO_PROXY", "*", 1);
    static const char *const unset[] = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                        "ALL_PROXY", "all_proxy", "VIRNUCPRO_OFFLINE",
                                        "VIRNUCPRO_MODELS", "HF_ENDPOINT", "HF_HUB_CACHE",
                                        "XDG_CACHE_HOME", "VIRNUCPRO_HUB_RETRIES",
                                        "VIRNUCPRO_HUB_STALL_SECONDS", NULL};
    for (int i = 0; unset[i]; i++)
        unsetenv(unset[i]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hub_server_stop(&srv);
    return 0;
}

/* ---- digests ---- */
static void test_digests_match_git_and_sha256(void **state)
{
    (void)state;
    vnp_digest d;
    assert_int_equal(vnp_hub_digest_file(vnp_test_fixture("golden/esm2/config.json"), &d, 1, NULL),
                     VNP_OK);
    /* sha256sum and `git hash-object` of the same file */
    assert_string_equal(d.sha256, "8e90a431c584390270e459d2e21bfed88018b1cc7c36441b452e93c40aa8fa8a");
    assert_string_equal(d.git_sha1, "51fb66d767c7d89b3302c939aa75c271486af033");
    assert_int_equal(d.size, 678);
    const char *empty = vnp_test_tmp("empty");
    assert_int_equal(vnp_test_write_file(empty, "", 0), 0);
    assert_int_equal(vnp_hub_digest_file(empty, &d, 1, NULL), VNP_OK);
    assert_string_equal(d.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(d.git_sha1, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    vnp_error err;
    assert_int_equal(vnp_hub_digest_file(vnp_test_tmp("no-such-file"), &d, 1, &err), VNP_EIO);
    assert_contains(err.msg, "no-such-file");
}

/* ---- a full fetch ---- */
static void test_full_fetch_list_path_verify(void **state)
{
    (void)state;
    const char *cache = fresh("c_full");
    char env[1200], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s'", cache);
    int rc = cli(env, "models fetch all --no-progress", &out, &err);
    if (rc != 0)
        fail_msg("models fetch all failed (%d): %s", rc, err);
    free(out);
    free(err);

    static const char *const esm[] = {"config.json", "model.safetensors", "vocab.txt", NULL};
    static const char *const dna[] = {"config.json", "pytorch_model.bin", "special_tokens_map.json",
                                      "tokenizer.json", "tokenizer_config.json", NULL};
    char want[512];
    for (int i = 0; esm[i]; i++) {
        snprintf(want, sizeof want, "golden/esm2/%s", esm[i]);
        vnp_test_assert_files_equal(cache_file(cache, "esm2_t36_3B_UR50D", esm[i]),
                                    vnp_test_fixture(want));
        assert_int_equal(size_of(cache_file(cache, "esm2_t36_3B_UR50D", "model.safetensors.part")),
                         -1);
    }
    for (int i = 0; dna[i]; i++) {
        snprintf(want, sizeof want, "golden/dnabert_s/%s", dna[i]);
        vnp_test_assert_files_equal(cache_file(cache, "dnabert-s", dna[i]), vnp_test_fixture(want));
    }
    vnp_test_assert_files_equal(cache_file(cache, "classifier-300", "300_model.pth"),
                                vnp_test_fixture("golden/classifier.pth"));
    vnp_test_assert_files_equal(cache_file(cache, "classifier-500", "500_model.pth"),
                                vnp_test_fixture("golden/classifier.pth"));
    /* the optional files this revision does not have were probed, not invented */
    assert_int_equal(size_of(cache_file(cache, "esm2_t36_3B_UR50D", "tokenizer_config.json")), -1);

    /* the manifest records every file's SHA-256 and what it was checked against */
    cJSON *man = load_manifest(cache);
    vnp_digest d;
    assert_int_equal(vnp_hub_digest_file(vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"), &d,
                                         0, NULL),
                     VNP_OK);
    assert_string_equal(d.git_sha1, ""); /* not asked for */
    assert_string_equal(manifest_str(man, "dnabert-s", "pytorch_model.bin", "sha256"), d.sha256);
    assert_string_equal(manifest_str(man, "dnabert-s", "pytorch_model.bin", "checked_against"),
                        "SHA-256 reported by the server");
    assert_string_equal(manifest_str(man, "dnabert-s", "config.json", "checked_against"),
                        "git blob id reported by the server");
    /* `git hash-object tests/fixtures/golden/dnabert_s/config.json` */
    assert_string_equal(manifest_str(man, "dnabert-s", "config.json", "git_blob"),
                        "d9ae928c60bfda31e1a6548c28171f1b4d23c7c9");
    assert_null(cJSON_GetObjectItemCaseSensitive(
        vnp_manifest_file(vnp_manifest_model(man, "dnabert-s", 0), "pytorch_model.bin", 0),
        "git_blob"));
    assert_int_equal(vnp_hub_digest_file(vnp_test_fixture("golden/classifier.pth"), &d, 1, NULL),
                     VNP_OK);
    assert_string_equal(manifest_str(man, "classifier-500", "500_model.pth", "sha256"), d.sha256);
    cJSON *m = vnp_manifest_model(man, "esm2_t36_3B_UR50D", 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "complete")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "files")), 3);
    cJSON_Delete(man);

    /* list, path, verify */
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    static const char *const names[] = {"esm2_t36_3B_UR50D", "dnabert-s", "classifier-300",
                                        "classifier-500", NULL};
    for (int i = 0; names[i]; i++) {
        char line[256];
        snprintf(line, sizeof line, "%-18s %-10s", names[i], "verified");
        assert_contains(out, line);
    }
    free(out);
    free(err);
    assert_int_equal(cli(env, "models path dnabert-s", &out, &err), 0);
    snprintf(want, sizeof want, "%s/dnabert-s\n", cache);
    assert_string_equal(out, want);
    free(out);
    free(err);
    assert_int_equal(cli(env, "models path classifier-500", &out, &err), 0);
    snprintf(want, sizeof want, "%s/classifier-500/500_model.pth\n", cache);
    assert_string_equal(out, want);
    free(out);
    free(err);
    assert_int_equal(cli(env, "models verify", &out, &err), 0);
    for (int i = 0; names[i]; i++) {
        char line[256];
        snprintf(line, sizeof line, "%-18s OK", names[i]);
        assert_contains(out, line);
    }
    free(out);
    free(err);

    /* a second fetch downloads nothing */
    int gets =
        hub_log_count(&srv, "GET", 0, hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors"));
    assert_int_equal(cli(env, "models fetch all --no-progress", &out, &err), 0);
    assert_contains(err, "already cached and verified");
    assert_int_equal(
        hub_log_count(&srv, "GET", 0, hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors")),
        gets);
    free(out);
    free(err);
}

/* ---- a download killed halfway resumes with a Range request ---- */
static void test_killed_download_resumes(void **state)
{
    (void)state;
    const char *cache = fresh("c_resume");
    char part[2048];
    snprintf(part, sizeof part, "%s", cache_file(cache, "dnabert-s", "pytorch_model.bin.part"));
    int64_t full = size_of(vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='%s/slow/hub' exec '%s' models fetch "
             "dnabert-s --no-progress >/dev/null 2>&1",
             cache, srv.base, vnp_test_cli());
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    double t0 = now_s();
    while (size_of(part) < 400000 && now_s() - t0 < 30)
        usleep(20000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    int64_t have = size_of(part);
    if (have < 400000 || have >= full)
        fail_msg("the throttled download should have been killed halfway: %lld of %lld bytes",
                 (long long)have, (long long)full);
    assert_int_equal(size_of(cache_file(cache, "dnabert-s", "pytorch_model.bin")), -1);

    char env[1200], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s'", cache);
    int rc = cli(env, "models fetch dnabert-s --no-progress", &out, &err);
    if (rc != 0)
        fail_msg("resumed fetch failed: %s", err);
    assert_contains(err, "resuming pytorch_model.bin");
    char range[256], want[64];
    assert_int_equal(hub_log_range(&srv, "GET", 206,
                                   hub_model_url_path("dnabert-s", "pytorch_model.bin"), range,
                                   sizeof range),
                     1);
    snprintf(want, sizeof want, "bytes=%lld-", (long long)have);
    assert_string_equal(range, want);
    vnp_test_assert_files_equal(cache_file(cache, "dnabert-s", "pytorch_model.bin"),
                                vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"));
    assert_int_equal(size_of(part), -1);
    free(out);
    free(err);
    assert_int_equal(cli(env, "models verify dnabert-s", &out, &err), 0);
    assert_contains(out, "dnabert-s          OK (5 files");
    free(out);
    free(err);
}

static pid_t spawn(const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

/* Two fetches into one cache: the second waits for the first, and when the first
 * dies mid-download, takes over its partial file. */
static void test_concurrent_fetch_waits_then_resumes(void **state)
{
    (void)state;
    const char *cache = fresh("c_lock");
    char part[2048], errfile[2048], cmd[4096];
    snprintf(part, sizeof part, "%s", cache_file(cache, "dnabert-s", "pytorch_model.bin.part"));
    snprintf(errfile, sizeof errfile, "%s", vnp_test_tmp("lock_b.stderr"));
    snprintf(cmd, sizeof cmd,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='%s/slow/hub' exec '%s' models fetch "
             "dnabert-s --no-progress >/dev/null 2>&1",
             cache, srv.base, vnp_test_cli());
    pid_t a = spawn(cmd);
    double t0 = now_s();
    while (size_of(part) < 200000 && now_s() - t0 < 30)
        usleep(20000);
    assert_true(size_of(part) >= 200000);
    snprintf(cmd, sizeof cmd,
             "VIRNUCPRO_MODELS='%s' exec '%s' models fetch dnabert-s --no-progress >/dev/null "
             "2>'%s'",
             cache, vnp_test_cli(), errfile);
    pid_t b = spawn(cmd);
    char *text = NULL;
    t0 = now_s();
    while (now_s() - t0 < 10) {
        free(text);
        text = vnp_test_read_file(errfile, NULL);
        if (text && strstr(text, "waiting for another virnucpro"))
            break;
        usleep(20000);
    }
    assert_contains(text, "waiting for another virnucpro that is fetching into");
    free(text);
    int st;
    assert_int_equal(waitpid(b, &st, WNOHANG), 0); /* still waiting */
    kill(a, SIGKILL);
    waitpid(a, &st, 0);
    assert_int_equal(waitpid(b, &st, 0), b);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    text = vnp_test_read_file(errfile, NULL);
    assert_contains(text, "resuming pytorch_model.bin");
    free(text);
    vnp_test_assert_files_equal(cache_file(cache, "dnabert-s", "pytorch_model.bin"),
                                vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"));
}

/* ---- a corrupted byte ---- */
static void test_corrupt_byte_fails_verify_and_is_refetched(void **state)
{
    (void)state;
    const char *cache = fresh("c_corrupt");
    char file[2048], golden[2048], suffix[1024];
    snprintf(file, sizeof file, "%s", cache_file(cache, "esm2_t36_3B_UR50D", "model.safetensors"));
    snprintf(golden, sizeof golden, "%s", vnp_test_fixture("golden/esm2/model.safetensors"));
    snprintf(suffix, sizeof suffix, "%s",
             hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors"));
    char env[1200], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s'", cache);
    assert_int_equal(cli(env, "models fetch esm2_t36_3B_UR50D --no-progress", &out, &err), 0);
    free(out);
    free(err);

    /* bit rot: same size, same date */
    flip_byte(file, 1000000, 1);
    assert_int_equal(cli(env, "models verify esm2_t36_3B_UR50D", &out, &err), 1);
    assert_contains(out, "esm2_t36_3B_UR50D  FAILED");
    char want[2048];
    snprintf(want, sizeof want, "%s is corrupt: its SHA-256 is", file);
    assert_contains(err, want);
    assert_contains(err, "run `virnucpro models fetch esm2_t36_3B_UR50D` to download it again");
    free(out);
    free(err);

    int gets = hub_log_count(&srv, "GET", 200, suffix);
    assert_int_equal(cli(env, "models fetch esm2_t36_3B_UR50D --no-progress", &out, &err), 0);
    assert_contains(err, "downloading it again");
    assert_int_equal(hub_log_count(&srv, "GET", 200, suffix), gets + 1);
    vnp_test_assert_files_equal(file, golden);
    free(out);
    free(err);
    assert_int_equal(cli(env, "models verify esm2_t36_3B_UR50D", &out, &err), 0);
    free(out);
    free(err);

    /* a file touched but unchanged: "changed" until a verify has re-hashed it */
    struct timespec later[2] = {{0, UTIME_OMIT}, {1700000000, 5}};
    assert_int_equal(utimensat(AT_FDCWD, file, later, 0), 0);
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    assert_contains(out, "esm2_t36_3B_UR50D  changed");
    free(out);
    free(err);
    assert_int_equal(cli(env, "models verify esm2_t36_3B_UR50D", &out, &err), 0);
    free(out);
    free(err);
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    assert_contains(out, "esm2_t36_3B_UR50D  verified");
    free(out);
    free(err);

    /* a changed file on first use: the resolve API re-hashes it, and re-fetches */
    flip_byte(file, 77, 0);
    vnp_hub_options o;
    opts_for(&o, cache);
    char path[4096];
    vnp_error e;
    assert_int_equal(vnp_models_resolve_with("esm2_t36_3B_UR50D", &o, path, sizeof path, &e),
                     VNP_OK);
    snprintf(want, sizeof want, "%s/esm2_t36_3B_UR50D", cache);
    assert_string_equal(path, want);
    assert_int_equal(hub_log_count(&srv, "GET", 200, suffix), gets + 2);
    vnp_test_assert_files_equal(file, golden);

    /* ... and offline it refuses to use it */
    flip_byte(file, 78, 0);
    o.offline = 1;
    assert_int_equal(vnp_models_resolve_with("esm2_t36_3B_UR50D", &o, path, sizeof path, &e),
                     VNP_EINTEGRITY);
    assert_contains(e.msg, "model.safetensors is corrupt");
    assert_contains(e.msg, "VIRNUCPRO_OFFLINE=1");
    assert_int_equal(cli(env, "models fetch esm2_t36_3B_UR50D --offline", &out, &err), 1);
    assert_contains(err, "model.safetensors is corrupt");
    assert_contains(err, "(VIRNUCPRO_OFFLINE=1 forbids downloading it again)");
    free(out);
    free(err);
}

/* ---- the hub redirects large files to storage: the redirect is the answer ---- */
static void test_redirect_carries_the_digest(void **state)
{
    (void)state;
    const char *cache = fresh("c_redirect");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='%s/lfs/hub'", cache,
             srv.base);
    char big[1024], small[1024], lbig[1100], lsmall[1100];
    snprintf(big, sizeof big, "%s", hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors"));
    snprintf(small, sizeof small, "%s", hub_model_url_path("esm2_t36_3B_UR50D", "config.json"));
    snprintf(lbig, sizeof lbig, "/lfs%s", big);
    snprintf(lsmall, sizeof lsmall, "/lfs%s", small);
    /* direct = all that end with the path, less those under /lfs */
    int head_big = hub_log_count(&srv, "HEAD", 0, big) - hub_log_count(&srv, "HEAD", 0, lbig);
    int head_small =
        hub_log_count(&srv, "HEAD", 0, small) - hub_log_count(&srv, "HEAD", 0, lsmall);
    int get_big = hub_log_count(&srv, "GET", 200, big);
    int rc = cli(env, "models fetch esm2_t36_3B_UR50D --no-progress", &out, &err);
    if (rc != 0)
        fail_msg("fetch through redirects failed: %s", err);
    vnp_test_assert_files_equal(cache_file(cache, "esm2_t36_3B_UR50D", "model.safetensors"),
                                vnp_test_fixture("golden/esm2/model.safetensors"));
    /* the large file's size and SHA-256 came from the 302 itself: no HEAD on storage */
    assert_int_equal(hub_log_count(&srv, "HEAD", 302, lbig), 1);
    assert_int_equal(hub_log_count(&srv, "HEAD", 0, big) - hub_log_count(&srv, "HEAD", 0, lbig),
                     head_big);
    /* a redirect without them is followed */
    assert_int_equal(
        hub_log_count(&srv, "HEAD", 0, small) - hub_log_count(&srv, "HEAD", 0, lsmall),
        head_small + 1);
    assert_int_equal(hub_log_count(&srv, "GET", 200, big), get_big + 1);
    cJSON *man = load_manifest(cache);
    assert_string_equal(manifest_str(man, "esm2_t36_3B_UR50D", "model.safetensors",
                                     "checked_against"),
                        "SHA-256 reported by the server");
    cJSON_Delete(man);
    free(out);
    free(err);
}

/* ---- errors: 404, 500, stall, no space ---- */
static void test_404_is_clear_and_not_retried(void **state)
{
    (void)state;
    const char *cache = fresh("c_404");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='%s/nothing/hub'", cache,
             srv.base);
    double t0 = now_s();
    assert_int_equal(cli(env, "models fetch esm2_t36_3B_UR50D --no-progress", &out, &err), 1);
    assert_true(now_s() - t0 < 10);
    assert_contains(err, "virnucpro: error: esm2_t36_3B_UR50D: facebook/esm2_t36_3B_UR50D has no "
                         "config.json at revision");
    assert_contains(err, "HTTP 404), nor on its default branch; a mirror");
    char suffix[1024];
    snprintf(suffix, sizeof suffix, "/nothing%s",
             hub_model_url_path("esm2_t36_3B_UR50D", "config.json"));
    assert_int_equal(hub_log_count(&srv, "HEAD", 404, suffix), 1);
    /* the default branch was asked once, for the first file */
    assert_int_equal(hub_log_count(&srv, "HEAD", 404,
                                   "/nothing/hub/facebook/esm2_t36_3B_UR50D/resolve/main/"
                                   "config.json"),
                     1);
    free(out);
    free(err);
}

static void test_500_is_retried_then_clear(void **state)
{
    (void)state;
    raw_server r;
    raw_server_start(&r, RAW_STATUS, 500);
    const char *cache = fresh("c_500");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='%s' VIRNUCPRO_HUB_RETRIES=2",
             cache, r.base);
    double t0 = now_s();
    assert_int_equal(cli(env, "models fetch dnabert-s --no-progress", &out, &err), 1);
    double dt = now_s() - t0;
    int heads = 0;
    int n = raw_server_requests(&r, &heads, NULL);
    raw_server_stop(&r);
    assert_true(dt < 10);
    assert_int_equal(n, 3);
    assert_int_equal(heads, 3);
    assert_contains(err, "HTTP 500 (gave up after 3 attempts)");
    assert_contains(err, "/zhihan1996/DNABERT-S/resolve/");
    assert_contains(err, "retrying in");
    free(out);
    free(err);
}

/* A host name that does not resolve fails at once (no retries, no back-off) and the
 * error names the offline route. */
static void test_unresolvable_host_fails_fast(void **state)
{
    (void)state;
    const char *cache = fresh("c_nodns");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_HUB_URL='http://no-such-host.invalid' "
             "VIRNUCPRO_HUB_RETRIES=5",
             cache);
    double t0 = now_s();
    assert_int_equal(cli(env, "models fetch dnabert-s --no-progress", &out, &err), 1);
    double dt = now_s() - t0;
    assert_true(dt < 25); /* no back-off: 5 retries took 31 s; one failed lookup is quick */
    assert_contains(err, "no-such-host.invalid");
    assert_contains(err, "the host name does not resolve");
    assert_contains(err, "virnucpro models fetch all --dir DIR");
    assert_contains(err, "VIRNUCPRO_OFFLINE=1");
    assert_null(strstr(err, "retrying in"));
    free(out);
    free(err);
}

static void test_stalled_server_fails_in_bounded_time(void **state)
{
    (void)state;
    raw_server r;
    raw_server_start(&r, RAW_STALL, 0);
    const char *cache = fresh("c_stall");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_GITHUB_URL='%s' VIRNUCPRO_HUB_RETRIES=1 "
             "VIRNUCPRO_HUB_STALL_SECONDS=2",
             cache, r.base);
    double t0 = now_s();
    assert_int_equal(cli(env, "models fetch classifier-300 --no-progress", &out, &err), 1);
    double dt = now_s() - t0;
    int n = raw_server_requests(&r, NULL, NULL);
    raw_server_stop(&r);
    if (dt < 3.5 || dt > 15)
        fail_msg("two stalled attempts of 2 s should take about 4 s, took %.1f s", dt);
    assert_int_equal(n, 2);
    assert_contains(err, "the server stalled: no data for 2 s");
    assert_contains(err, "gave up after 2 attempts");
    free(out);
    free(err);
}

/* A server that stops sending in the middle of the body: the attempt fails within
 * the stall limit, the bytes received are kept, and the retry asks for the rest. */
static void test_stall_mid_body_keeps_the_partial_file(void **state)
{
    (void)state;
    raw_server r;
    raw_server_start(&r, RAW_TRICKLE, 0);
    const char *cache = fresh("c_trickle");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_GITHUB_URL='%s' VIRNUCPRO_HUB_RETRIES=1 "
             "VIRNUCPRO_HUB_STALL_SECONDS=1",
             cache, r.base);
    double t0 = now_s();
    assert_int_equal(cli(env, "models fetch classifier-500 --no-progress", &out, &err), 1);
    double dt = now_s() - t0;
    int gets = 0;
    raw_server_requests(&r, NULL, &gets);
    char range[64];
    snprintf(range, sizeof range, "%s", r.last_range);
    raw_server_stop(&r);
    if (dt > 10)
        fail_msg("two stalled attempts of 1 s took %.1f s", dt);
    assert_int_equal(gets, 2);
    assert_string_equal(range, "bytes=400-");
    assert_contains(err, "the server stalled: no data for 1 s (after 400 bytes of this attempt)");
    assert_int_equal(size_of(cache_file(cache, "classifier-500", "500_model.pth.part")), 400);
    free(out);
    free(err);
}

static void test_not_enough_space_before_download(void **state)
{
    (void)state;
    raw_server r;
    raw_server_start(&r, RAW_HUGE, 0);
    const char *cache = fresh("c_space");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s' VIRNUCPRO_GITHUB_URL='%s'", cache, r.base);
    assert_int_equal(cli(env, "models fetch classifier-500 --no-progress", &out, &err), 1);
    int gets = 0;
    raw_server_requests(&r, NULL, &gets);
    raw_server_stop(&r);
    assert_int_equal(gets, 0);
    assert_contains(err, "classifier-500 needs 1.00 PB more in");
    assert_contains(err, "free some space or choose another cache with --dir");
    free(out);
    free(err);
}

/* ---- offline ---- */
static void test_offline_names_every_missing_model(void **state)
{
    (void)state;
    raw_server r;
    raw_server_start(&r, RAW_STATUS, 500);
    const char *cache = fresh("c_offline");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env,
             "VIRNUCPRO_MODELS='%s' VIRNUCPRO_OFFLINE=1 VIRNUCPRO_HUB_URL='%s' "
             "VIRNUCPRO_GITHUB_URL='%s'",
             cache, r.base, r.base);
    assert_int_equal(cli(env, "models fetch all", &out, &err), 1);
    static const char *const names[] = {"esm2_t36_3B_UR50D", "dnabert-s", "classifier-300",
                                        "classifier-500", NULL};
    for (int i = 0; names[i]; i++) {
        char want[256];
        snprintf(want, sizeof want, "model %s is not in the cache", names[i]);
        assert_contains(err, want);
        snprintf(want, sizeof want, "virnucpro models fetch %s --dir DIR", names[i]);
        assert_contains(err, want);
    }
    assert_contains(err, "VIRNUCPRO_OFFLINE=1 forbids downloading");
    free(out);
    free(err);
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    assert_contains(out, "esm2_t36_3B_UR50D  missing");
    free(out);
    free(err);
    assert_int_equal(cli(env, "models path dnabert-s", &out, &err), 1);
    assert_contains(err, "model dnabert-s is not available");
    free(out);
    free(err);

    /* the API predict uses names them all in one message */
    vnp_hub_options o;
    opts_for(&o, cache);
    o.offline = 1;
    char paths[4][4096];
    vnp_error e;
    assert_int_equal(vnp_models_resolve_all(names, 4, &o, paths, &e), VNP_ENOTFOUND);
    assert_contains(e.msg, "4 models are not in the cache");
    assert_contains(e.msg, "esm2_t36_3B_UR50D dnabert-s classifier-300 classifier-500");
    assert_int_equal(raw_server_requests(&r, NULL, NULL), 0);
    raw_server_stop(&r);
}

/* ---- pinned digests ---- */
static void test_pinned_digests(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_cfg cfg;
    vnp_error e;
    vnp_digest gold;
    assert_int_equal(vnp_hub_digest_file(vnp_test_fixture("golden/classifier.pth"), &gold, 1, NULL),
                     VNP_OK);

    /* the right git blob id: accepted and recorded */
    opts_for(&o, fresh("c_pin_ok"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    cfg.github_is_default = 1; /* as if this server were GitHub itself */
    vnp_model_spec spec = *vnp_hub_spec("classifier-300");
    spec.pins[0] = (vnp_pin){"300_model.pth", NULL, gold.git_sha1, gold.size};
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_OK);
    cJSON *man = load_manifest(o.cache_dir);
    assert_string_equal(manifest_str(man, "classifier-300", "300_model.pth", "checked_against"),
                        "pinned git blob id");
    cJSON_Delete(man);

    /* a wrong one: the download is rejected and removed */
    opts_for(&o, fresh("c_pin_bad"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    cfg.github_is_default = 1;
    spec.pins[0] = (vnp_pin){"300_model.pth", NULL, "0123456789012345678901234567890123456789", 0};
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_EINTEGRITY);
    assert_contains(e.msg, "does not match the pinned git blob id");
    assert_contains(e.msg, "rejected and removed");
    assert_int_equal(size_of(cache_file(o.cache_dir, "classifier-300", "300_model.pth")), -1);
    assert_int_equal(size_of(cache_file(o.cache_dir, "classifier-300", "300_model.pth.part")), -1);

    /* the hub announces another SHA-256 than the pin: refused before downloading */
    opts_for(&o, fresh("c_pin_hub"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    cfg.hub_is_default = 1;
    vnp_model_spec esm = *vnp_hub_spec("esm2_t36_3B_UR50D");
    esm.pins[0] = (vnp_pin){"model.safetensors",
                            "1111111111111111111111111111111111111111111111111111111111111111",
                            NULL, 0};
    esm.pins[1] = (vnp_pin){NULL, NULL, NULL, 0};
    const char *suffix = hub_model_url_path("esm2_t36_3B_UR50D", "model.safetensors");
    int gets = hub_log_count(&srv, "GET", 0, suffix);
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &esm, &e), VNP_EINTEGRITY);
    assert_contains(e.msg, "but revision 476b639933c8baad5ad09a60ac1a87f987b656fc of "
                           "facebook/esm2_t36_3B_UR50D has 1111");
    assert_int_equal(hub_log_count(&srv, "GET", 0, suffix), gets);
    /* with a mirror (not the default hub), pins do not apply */
    cfg.hub_is_default = 0;
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &esm, &e), VNP_OK);
}

/* ---- a pinned revision the server does not have: its default branch, on the pins ---- */
#define MAIN_COMMIT "5a1e0c0ffee5a1e0c0ffee5a1e0c0ffee5a1e0c0" /* tests/hub/serve.sh */
#define STALE_PIN_ADVICE                                                                        \
    "; the model has changed since this virnucpro was built. Do not use it unverified: update " \
    "virnucpro (a newer model table pins the new revision), or get revision gone from a "     \
    "mirror (VIRNUCPRO_HUB_URL / VIRNUCPRO_GITHUB_URL) or a Hugging Face cache, or give "     \
    "model files you trust with --esm / --dnabert / --classifier"

static const char *manifest_model_str(cJSON *root, const char *model, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(vnp_manifest_model(root, model, 0), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The ESM-2 entry of the table moved to test/moved, pinned at "gone", which 404s. */
static vnp_model_spec moved_esm(const char *sha256_pin)
{
    vnp_model_spec spec = *vnp_hub_spec("esm2_t36_3B_UR50D");
    spec.name = "test-moved";
    spec.repo = "test/moved";
    spec.revision = "gone";
    spec.pins[0] = (vnp_pin){"model.safetensors", sha256_pin, NULL, 0};
    spec.pins[1] = (vnp_pin){NULL, NULL, NULL, 0};
    return spec;
}

/* The classifier as a GitHub repository whose pinned revision is gone, its file pinned to
 * `sha` (NULL: the golden classifier's blob id and size, in *gold) in a fresh cache. */
static vnp_model_spec moved_on_github(vnp_hub_options *o, vnp_hub_cfg *cfg, const char *cache,
                                      const char *sha, vnp_digest *gold)
{
    vnp_error e;
    assert_int_equal(vnp_hub_digest_file(vnp_test_fixture("golden/classifier.pth"), gold, 1, NULL),
                     VNP_OK);
    opts_for(o, fresh(cache));
    assert_int_equal(vnp_hub_cfg_resolve(o, cfg, &e), VNP_OK);
    cfg->github_is_default = 1;
    vnp_model_spec gh = *vnp_hub_spec("classifier-300");
    gh.repo = "test/moved";
    gh.revision = "gone";
    gh.pins[0] = (vnp_pin){"300_model.pth", NULL, sha ? sha : gold->git_sha1, sha ? 0 : gold->size};
    return gh;
}

static void test_pin_not_found_digest_matches(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_cfg cfg;
    vnp_error e;
    vnp_digest gold;
    assert_int_equal(
        vnp_hub_digest_file(vnp_test_fixture("golden/esm2/model.safetensors"), &gold, 0, NULL),
        VNP_OK);
    opts_for(&o, fresh("c_moved_ok"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    cfg.hub_is_default = 1; /* pins apply, as on the real hub */
    vnp_model_spec spec = moved_esm(gold.sha256);
    vnp_test_capture_log_begin();
    vnp_code rc = vnp_hub_fetch_spec(&cfg, &spec, &e);
    char *log = vnp_test_capture_log_end();
    if (rc != VNP_OK)
        fail_msg("%s", e.msg);
    char want[4096];
    snprintf(want, sizeof want,
             "test-moved: the pinned revision gone of test/moved is not found "
             "(%s/test/moved/resolve/gone/config.json answers HTTP 404); fetching the default "
             "branch main (commit " MAIN_COMMIT ") instead, accepting a file only when it "
             "matches the digest pinned for revision gone\n"
             "test-moved: config.json is NOT VERIFIED: no digest is pinned for it, and it comes "
             "from the default branch main (commit " MAIN_COMMIT "), not from the pinned "
             "revision gone (not found on the server); it may differ from the file this "
             "virnucpro was tested with. manifest.json records the revision fetched\n"
             "test-moved: vocab.txt is NOT VERIFIED: no digest is pinned for it, and it comes "
             "from the default branch main (commit " MAIN_COMMIT "), not from the pinned "
             "revision gone (not found on the server); it may differ from the file this "
             "virnucpro was tested with. manifest.json records the revision fetched\n"
             "test-moved: model.safetensors from the default branch main (commit " MAIN_COMMIT
             ") matches the pinned SHA-256 of revision gone (not found on the server): "
             "accepted\n",
             hub_url);
    assert_string_equal(log, want);
    free(log);
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt", NULL};
    for (int i = 0; files[i]; i++) {
        char src[256];
        snprintf(src, sizeof src, "golden/esm2/%s", files[i]);
        vnp_test_assert_files_equal(cache_file(o.cache_dir, "test-moved", files[i]),
                                    vnp_test_fixture(src));
    }
    /* the manifest: held for the pinned revision, fetched from main at its commit */
    cJSON *man = load_manifest(o.cache_dir);
    assert_string_equal(manifest_model_str(man, "test-moved", "revision"), "gone");
    assert_string_equal(manifest_model_str(man, "test-moved", "fetched_revision"), "main");
    assert_string_equal(manifest_model_str(man, "test-moved", "fetched_commit"), MAIN_COMMIT);
    for (int i = 0; files[i]; i++)
        assert_string_equal(manifest_str(man, "test-moved", files[i], "revision"), MAIN_COMMIT);
    assert_string_equal(manifest_str(man, "test-moved", "model.safetensors", "checked_against"),
                        "pinned SHA-256");
    assert_string_equal(manifest_str(man, "test-moved", "config.json", "checked_against"),
                        "no pin: fetched from the default branch main in place of revision "
                        "gone; checked only against git blob id reported by the server");
    assert_true(vnp_hub_cached_ok(&cfg, &spec, man));
    cJSON_Delete(man);
    /* the next use finds it cached: nothing asked, nothing said */
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_OK);
    log = vnp_test_capture_log_end();
    assert_string_equal(log ? log : "", "");
    free(log);

    /* the same from GitHub (no digest before the download): the pinned blob id */
    vnp_model_spec gh = moved_on_github(&o, &cfg, "c_moved_gh_ok", NULL, &gold);
    vnp_test_capture_log_begin();
    rc = vnp_hub_fetch_spec(&cfg, &gh, &e);
    log = vnp_test_capture_log_end();
    if (rc != VNP_OK)
        fail_msg("%s", e.msg);
    assert_contains(log, "classifier-300: 300_model.pth from the default branch main matches the "
                         "pinned git blob id of revision gone (not found on the server): "
                         "accepted\n");
    free(log);
    vnp_test_assert_files_equal(cache_file(o.cache_dir, "classifier-300", "300_model.pth"),
                                vnp_test_fixture("golden/classifier.pth"));
    man = load_manifest(o.cache_dir);
    assert_string_equal(manifest_model_str(man, "classifier-300", "fetched_revision"), "main");
    assert_null(manifest_model_str(man, "classifier-300", "fetched_commit")); /* not reported */
    assert_string_equal(manifest_str(man, "classifier-300", "300_model.pth", "revision"), "main");
    cJSON_Delete(man);
}

static void test_pin_not_found_digest_mismatch_refused(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_cfg cfg;
    vnp_error e;
    vnp_digest gold;
    /* the hub announces the SHA-256 of main's file: refused before downloading it */
    assert_int_equal(
        vnp_hub_digest_file(vnp_test_fixture("golden/esm2/model.safetensors"), &gold, 0, NULL),
        VNP_OK);
    opts_for(&o, fresh("c_moved_bad"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    cfg.hub_is_default = 1;
    vnp_model_spec spec =
        moved_esm("1111111111111111111111111111111111111111111111111111111111111111");
    int gets = hub_log_count(&srv, "GET", 0, "/test/moved/resolve/main/model.safetensors");
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_EINTEGRITY);
    free(vnp_test_capture_log_end());
    char want[4096];
    snprintf(want, sizeof want,
             "test-moved: model.safetensors refused: the pinned revision gone of test/moved is "
             "not found, and model.safetensors on its default branch main (commit " MAIN_COMMIT
             ") has SHA-256 %s, not the "
             "1111111111111111111111111111111111111111111111111111111111111111 pinned for "
             "revision gone" STALE_PIN_ADVICE,
             gold.sha256);
    assert_string_equal(e.msg, want);
    assert_int_equal(hub_log_count(&srv, "GET", 0, "/test/moved/resolve/main/model.safetensors"),
                     gets);
    assert_int_equal(size_of(cache_file(o.cache_dir, "test-moved", "model.safetensors")), -1);
    cJSON *man = load_manifest(o.cache_dir);
    assert_false(vnp_hub_cached_ok(&cfg, &spec, man));
    cJSON_Delete(man);

    /* GitHub announces nothing: downloaded, then refused and removed */
    vnp_model_spec gh = moved_on_github(&o, &cfg, "c_moved_gh_bad",
                                        "0123456789012345678901234567890123456789", &gold);
    vnp_test_capture_log_begin();
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &gh, &e), VNP_EINTEGRITY);
    free(vnp_test_capture_log_end());
    snprintf(want, sizeof want,
             "classifier-300: 300_model.pth refused: the pinned revision gone of test/moved is "
             "not found, and 300_model.pth on its default branch main has git blob id %s, not "
             "the 0123456789012345678901234567890123456789 pinned for revision "
             "gone" STALE_PIN_ADVICE,
             gold.git_sha1);
    assert_string_equal(e.msg, want);
    assert_int_equal(size_of(cache_file(o.cache_dir, "classifier-300", "300_model.pth")), -1);
    assert_int_equal(size_of(cache_file(o.cache_dir, "classifier-300", "300_model.pth.part")), -1);
}

/* No pin applies (a mirror): accepted, with a loud warning, the manifest saying from where.
 * The real table's classifier, through the CLI. */
static void test_pin_not_found_no_digest_warns(void **state)
{
    (void)state;
    const char *cache = fresh("c_moved_nopin");
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s' VIRNUCPRO_GITHUB_URL='%s/moved/gh'", cache,
             srv.base);
    int rc = cli(env, "models fetch classifier-300 --no-progress", &out, &err);
    if (rc != 0)
        fail_msg("fetch from the default branch failed (%d): %s", rc, err);
    const char *rev = vnp_hub_spec("classifier-300")->revision;
    char want[4096];
    snprintf(want, sizeof want,
             "virnucpro: warning: classifier-300: the pinned revision %s of "
             "Li-Jing-1997/VirNucPro is not found (%s/moved/gh/Li-Jing-1997/VirNucPro/%s/"
             "300_model.pth answers HTTP 404); fetching the default branch main instead, "
             "accepting a file only when it matches the digest pinned for revision %s\n",
             rev, srv.base, rev, rev);
    assert_contains(err, want);
    snprintf(want, sizeof want,
             "virnucpro: warning: classifier-300: 300_model.pth is NOT VERIFIED: no digest is "
             "pinned for it, and it comes from the default branch main, not from the pinned "
             "revision %s (not found on the server); it may differ from the file this "
             "virnucpro was tested with. manifest.json records the revision fetched\n",
             rev);
    assert_contains(err, want);
    assert_contains(err, "virnucpro: classifier-300: fetched (1 files, 38.9 kB; 1 not verified, "
                         "see above) in ");
    vnp_test_assert_files_equal(cache_file(cache, "classifier-300", "300_model.pth"),
                                vnp_test_fixture("golden/classifier.pth"));
    cJSON *man = load_manifest(cache);
    assert_string_equal(manifest_model_str(man, "classifier-300", "revision"), rev);
    assert_string_equal(manifest_model_str(man, "classifier-300", "fetched_revision"), "main");
    assert_string_equal(manifest_str(man, "classifier-300", "300_model.pth", "revision"), "main");
    snprintf(want, sizeof want,
             "no pin: fetched from the default branch main in place of revision %s; checked "
             "only against nothing (no digest published; SHA-256 recorded)",
             rev);
    assert_string_equal(manifest_str(man, "classifier-300", "300_model.pth", "checked_against"),
                        want);
    cJSON_Delete(man);
    free(out);
    free(err);
    /* the model is usable: cached for the pinned revision */
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    assert_contains(out, "classifier-300     verified");
    free(out);
    free(err);
}

/* A 404 that the hub says is a missing file of an existing revision (EntryNotFound) is
 * not a missing revision: no fallback. */
static void test_entry_not_found_is_not_a_missing_revision(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_cfg cfg;
    vnp_error e;
    opts_for(&o, fresh("c_entry404"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    snprintf(cfg.hub_url, sizeof cfg.hub_url, "%s/entry404/hub", srv.base);
    vnp_model_spec spec = moved_esm(NULL);
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_ENOTFOUND);
    assert_contains(e.msg, "test/moved has no config.json at revision gone (");
    assert_contains(e.msg, "answers HTTP 404); a mirror");
    assert_int_equal(hub_log_count(&srv, "HEAD", 404, "/entry404/hub/test/moved/resolve/gone/"
                                                      "config.json"),
                     1);
    assert_int_equal(hub_log_count(&srv, "HEAD", 0, "/entry404/hub/test/moved/resolve/main/"
                                                    "config.json"),
                     0);
}

/* ---- sharded weights ---- */
static void test_sharded_index_brings_its_shards(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_cfg cfg;
    vnp_error e;
    opts_for(&o, fresh("c_sharded"));
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_OK);
    vnp_model_spec spec = *vnp_hub_spec("esm2_t36_3B_UR50D");
    spec.name = "test-sharded";
    spec.repo = "test/sharded";
    spec.revision = "r1";
    if (vnp_hub_fetch_spec(&cfg, &spec, &e) != VNP_OK)
        fail_msg("%s", e.msg);
    static const char *const files[] = {"config.json", "vocab.txt", "pytorch_model.bin.index.json",
                                        "pytorch_model-00001-of-00002.bin",
                                        "pytorch_model-00002-of-00002.bin", NULL};
    for (int i = 0; files[i]; i++) {
        char src[1200];
        snprintf(src, sizeof src, "%s/hub/test/sharded/resolve/r1/%s", vnp_test_tmp("tree"),
                 files[i]);
        vnp_test_assert_files_equal(cache_file(o.cache_dir, "test-sharded", files[i]), src);
    }
    cJSON *man = load_manifest(o.cache_dir);
    cJSON *m = vnp_manifest_model(man, "test-sharded", 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "files")), 5);
    assert_true(vnp_hub_cached_ok(&cfg, &spec, man));
    cJSON_Delete(man);

    /* an index naming a file outside the model directory is refused */
    spec.name = "test-evil";
    spec.repo = "test/evil";
    spec.required[1] = NULL;
    assert_int_equal(vnp_hub_fetch_spec(&cfg, &spec, &e), VNP_EFORMAT);
    assert_contains(e.msg, "maps to an invalid shard name");
}

/* ---- other tools' caches, used in place ---- */
static void test_hf_and_torch_hub_caches_used_in_place(void **state)
{
    (void)state;
    const char *hf = fresh("hf_home");
    const char *torch = fresh("torch_home");
    const vnp_model_spec *esm = vnp_hub_spec("esm2_t36_3B_UR50D");
    char rel[1024], snap[2048];
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt", NULL};
    for (int i = 0; files[i]; i++) {
        char src[256];
        snprintf(rel, sizeof rel, "hub/models--facebook--esm2_t36_3B_UR50D/snapshots/%s/%s",
                 esm->revision, files[i]);
        snprintf(src, sizeof src, "golden/esm2/%s", files[i]);
        hub_tree_put(hf, rel, vnp_test_fixture(src));
    }
    /* DNABERT-S at another revision, found through refs/main; incomplete ESM elsewhere */
    hub_tree_put(hf, "hub/models--zhihan1996--DNABERT-S/snapshots/abc123/config.json",
                 vnp_test_fixture("golden/dnabert_s/config.json"));
    hub_tree_put(hf, "hub/models--zhihan1996--DNABERT-S/snapshots/abc123/tokenizer.json",
                 vnp_test_fixture("golden/dnabert_s/tokenizer.json"));
    hub_tree_put(hf, "hub/models--zhihan1996--DNABERT-S/snapshots/abc123/pytorch_model.bin",
                 vnp_test_fixture("golden/dnabert_s/pytorch_model.bin"));
    hub_tree_write(hf, "hub/models--zhihan1996--DNABERT-S/refs/main", "abc123\n", 7);
    hub_tree_put(torch, "hub/checkpoints/esm2_t36_3B_UR50D.pt",
                 vnp_test_fixture("golden/esm2_fairesm/esm2_t3_test_UR50D.pt"));

    char *old_hf = getenv("HF_HOME") ? strdup(getenv("HF_HOME")) : NULL;
    char *old_torch = getenv("TORCH_HOME") ? strdup(getenv("TORCH_HOME")) : NULL;
    setenv("HF_HOME", hf, 1);
    setenv("TORCH_HOME", torch, 1);
    vnp_hub_options o;
    opts_for(&o, fresh("c_external"));
    o.offline = 1;
    char path[4096];
    vnp_error e;
    assert_int_equal(vnp_models_resolve_with("esm2_t36_3B_UR50D", &o, path, sizeof path, &e),
                     VNP_OK);
    snprintf(snap, sizeof snap, "%s/hub/models--facebook--esm2_t36_3B_UR50D/snapshots/%s", hf,
             esm->revision);
    assert_string_equal(path, snap);
    assert_int_equal(vnp_models_resolve_with("dnabert-s", &o, path, sizeof path, &e), VNP_OK);
    snprintf(snap, sizeof snap, "%s/hub/models--zhihan1996--DNABERT-S/snapshots/abc123", hf);
    assert_string_equal(path, snap);
    vnp_model_info info;
    assert_int_equal(vnp_models_info("dnabert-s", &o, &info, &e), VNP_OK);
    assert_int_equal(info.state, VNP_MODEL_HF_CACHE);
    assert_string_equal(info.revision, "abc123");
    assert_int_equal(info.nfiles, 3);

    /* without the weights the snapshot is not used: the torch hub file is */
    char weights[2048];
    snprintf(weights, sizeof weights,
             "%s/hub/models--facebook--esm2_t36_3B_UR50D/snapshots/%s/model.safetensors", hf,
             esm->revision);
    assert_int_equal(unlink(weights), 0);
    assert_int_equal(vnp_models_resolve_with("esm2_t36_3B_UR50D", &o, path, sizeof path, &e),
                     VNP_OK);
    snprintf(snap, sizeof snap, "%s/hub/checkpoints/esm2_t36_3B_UR50D.pt", torch);
    assert_string_equal(path, snap);
    /* --no-external: neither */
    o.use_external = 0;
    assert_int_equal(vnp_models_resolve_with("esm2_t36_3B_UR50D", &o, path, sizeof path, &e),
                     VNP_ENOTFOUND);
    assert_contains(e.msg, "model esm2_t36_3B_UR50D is not in the cache");
    /* the classifiers never come from there */
    o.use_external = 1;
    assert_int_equal(vnp_models_resolve_with("classifier-300", &o, path, sizeof path, &e),
                     VNP_ENOTFOUND);

    /* `models fetch` does not download what another cache has ... */
    const char *suffix = hub_model_url_path("dnabert-s", "pytorch_model.bin");
    int gets = hub_log_count(&srv, "GET", 200, suffix);
    char env[1400], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "VIRNUCPRO_MODELS='%s'", fresh("c_external_cli"));
    assert_int_equal(cli(env, "models fetch dnabert-s", &out, &err), 0);
    assert_contains(err, "dnabert-s: using ");
    assert_contains(err, "in the Hugging Face hub cache in place (pass --no-external");
    free(out);
    free(err);
    assert_int_equal(cli(env, "models list", &out, &err), 0);
    assert_contains(out, "dnabert-s          hf-cache");
    free(out);
    free(err);
    assert_int_equal(hub_log_count(&srv, "GET", 200, suffix), gets);
    /* ... unless told to */
    assert_int_equal(cli(env, "models fetch dnabert-s --no-external --no-progress", &out, &err), 0);
    assert_contains(err, "fetched and verified");
    assert_int_equal(hub_log_count(&srv, "GET", 200, suffix), gets + 1);
    free(out);
    free(err);

    if (old_hf)
        setenv("HF_HOME", old_hf, 1);
    if (old_torch)
        setenv("TORCH_HOME", old_torch, 1);
    free(old_hf);
    free(old_torch);
}

/* A Hugging Face cache snapshot links each file to a blob named by its digest. */
static void test_hf_cache_snapshot_is_verified(void **state)
{
    (void)state;
    const char *hf = fresh("hf_verify");
    static const char *const files[] = {"config.json", "tokenizer.json", "pytorch_model.bin", NULL};
    char repo[2048];
    snprintf(repo, sizeof repo, "%s/hub/models--zhihan1996--DNABERT-S", hf);
    for (int i = 0; files[i]; i++) {
        char src[256], rel[1024], link[2300], target[300];
        snprintf(src, sizeof src, "golden/dnabert_s/%s", files[i]);
        vnp_digest d;
        assert_int_equal(vnp_hub_digest_file(vnp_test_fixture(src), &d, 1, NULL), VNP_OK);
        const char *blob = strstr(files[i], ".bin") ? d.sha256 : d.git_sha1;
        snprintf(rel, sizeof rel, "hub/models--zhihan1996--DNABERT-S/blobs/%s", blob);
        hub_tree_put(hf, rel, vnp_test_fixture(src));
        snprintf(link, sizeof link, "%s/snapshots/feed01/%s", repo, files[i]);
        snprintf(target, sizeof target, "../../blobs/%s", blob);
        if (i == 0) {
            char dir[2300];
            snprintf(dir, sizeof dir, "%s/snapshots/feed01", repo);
            hub_mkdirs(dir);
        }
        assert_int_equal(symlink(target, link), 0);
    }
    char env[3000], *out = NULL, *err = NULL;
    snprintf(env, sizeof env, "HF_HOME='%s' VIRNUCPRO_MODELS='%s'", hf, fresh("c_hf_verify"));
    assert_int_equal(cli(env, "models verify dnabert-s", &out, &err), 0);
    assert_contains(out, "dnabert-s          OK (3 files");
    free(out);
    free(err);
    char weights[2300];
    snprintf(weights, sizeof weights, "%s/snapshots/feed01/pytorch_model.bin", repo);
    flip_byte(weights, 4242, 1);
    assert_int_equal(cli(env, "models verify dnabert-s", &out, &err), 1);
    assert_contains(err, "dnabert-s: ");
    assert_contains(err, "feed01/pytorch_model.bin is corrupt: its SHA-256 is");
    assert_contains(err, "but the Hugging Face cache names it");
    free(out);
    free(err);
}

/* ---- options ---- */
static void test_cache_dir_and_bad_environment(void **state)
{
    (void)state;
    vnp_hub_options o;
    vnp_hub_options_init(&o);
    char dir[4096];
    vnp_error e;
    setenv("VIRNUCPRO_MODELS", "/x/models", 1);
    assert_int_equal(vnp_models_cache_dir(&o, dir, sizeof dir, &e), VNP_OK);
    assert_string_equal(dir, "/x/models");
    unsetenv("VIRNUCPRO_MODELS");
    setenv("XDG_CACHE_HOME", "/x/xdg", 1);
    assert_int_equal(vnp_models_cache_dir(&o, dir, sizeof dir, &e), VNP_OK);
    assert_string_equal(dir, "/x/xdg/virnucpro");
    unsetenv("XDG_CACHE_HOME");
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/x/home", 1);
    assert_int_equal(vnp_models_cache_dir(&o, dir, sizeof dir, &e), VNP_OK);
    assert_string_equal(dir, "/x/home/.cache/virnucpro");
    o.cache_dir = "/x/given";
    assert_int_equal(vnp_models_cache_dir(&o, dir, sizeof dir, &e), VNP_OK);
    assert_string_equal(dir, "/x/given");
    if (home)
        setenv("HOME", home, 1);
    free(home);

    vnp_hub_cfg cfg;
    setenv("VIRNUCPRO_HUB_RETRIES", "many", 1);
    assert_int_equal(vnp_hub_cfg_resolve(&o, &cfg, &e), VNP_EINVAL);
    assert_contains(e.msg, "VIRNUCPRO_HUB_RETRIES='many' is not a non-negative integer");
    unsetenv("VIRNUCPRO_HUB_RETRIES");
    assert_int_equal(vnp_models_fetch("esm3", &o, &e), VNP_EINVAL);
    assert_contains(e.msg, "unknown model 'esm3'");
    assert_string_equal(vnp_models_classifier_for_length(300), "classifier-300");
    assert_string_equal(vnp_models_classifier_for_length(500), "classifier-500");
    assert_null(vnp_models_classifier_for_length(400));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digests_match_git_and_sha256),
        cmocka_unit_test(test_cache_dir_and_bad_environment),
        cmocka_unit_test(test_full_fetch_list_path_verify),
        cmocka_unit_test(test_killed_download_resumes),
        cmocka_unit_test(test_concurrent_fetch_waits_then_resumes),
        cmocka_unit_test(test_corrupt_byte_fails_verify_and_is_refetched),
        cmocka_unit_test(test_redirect_carries_the_digest),
        cmocka_unit_test(test_404_is_clear_and_not_retried),
        cmocka_unit_test(test_500_is_retried_then_clear),
        cmocka_unit_test(test_stalled_server_fails_in_bounded_time),
        cmocka_unit_test(test_stall_mid_body_keeps_the_partial_file),
        cmocka_unit_test(test_not_enough_space_before_download),
        cmocka_unit_test(test_offline_names_every_missing_model),
        cmocka_unit_test(test_pinned_digests),
        cmocka_unit_test(test_pin_not_found_digest_matches),
        cmocka_unit_test(test_pin_not_found_digest_mismatch_refused),
        cmocka_unit_test(test_pin_not_found_no_digest_warns),
        cmocka_unit_test(test_entry_not_found_is_not_a_missing_revision),
        cmocka_unit_test(test_unresolvable_host_fails_fast),
        cmocka_unit_test(test_sharded_index_brings_its_shards),
        cmocka_unit_test(test_hf_and_torch_hub_caches_used_in_place),
        cmocka_unit_test(test_hf_cache_snapshot_is_verified),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
