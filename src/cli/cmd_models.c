/* virnucpro models: fetch, verify, list and locate the published checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void models_usage(FILE *f)
{
    fprintf(f,
            "Usage: virnucpro models <action> [options]\n\n"
            "Actions:\n"
            "  fetch [NAME...|all]   download and verify models (default: all)\n"
            "  verify [NAME...|all]  re-hash cached models against the manifest (default: all cached)\n"
            "  list                  what is cached, where, how big, verified or not\n"
            "  path NAME             print the path predict would load for NAME\n\n"
            "Models: esm2_t36_3B_UR50D, dnabert-s, classifier-300, classifier-500\n\n"
            "Options:\n"
            "  --dir DIR       cache directory (default: $VIRNUCPRO_MODELS, else\n"
            "                  $XDG_CACHE_HOME/virnucpro, else ~/.cache/virnucpro)\n"
            "  --no-external   do not use Hugging Face / torch hub caches in place\n"
            "  --offline       never touch the network (as VIRNUCPRO_OFFLINE=1)\n"
            "  --no-progress   no progress bar\n"
            "  -q, --quiet     errors only\n\n"
            "Environment: VIRNUCPRO_HUB_URL, VIRNUCPRO_GITHUB_URL (mirrors), VIRNUCPRO_OFFLINE,\n"
            "VIRNUCPRO_HUB_RETRIES, VIRNUCPRO_HUB_RETRY_DELAY_MS, VIRNUCPRO_HUB_STALL_SECONDS,\n"
            "https_proxy / no_proxy. See docs/MODELS.md.\n");
}

/* Expands "all" / no names into every model; checks the names. */
static int collect_names(int argc, char **argv, const char **names, int *n)
{
    *n = 0;
    int all = argc == 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "all")) {
            all = 1;
            continue;
        }
        if (!vnp_models_is_known(argv[i])) {
            vnp_cli_error("unknown model '%s'; the models are esm2_t36_3B_UR50D, dnabert-s, "
                          "classifier-300, classifier-500 (or 'all')",
                          argv[i]);
            return 2;
        }
        int dup = 0;
        for (int k = 0; k < *n; k++)
            dup |= !strcmp(names[k], argv[i]);
        if (!dup)
            names[(*n)++] = argv[i];
    }
    if (all) {
        *n = 0;
        for (const char *const *p = vnp_models_names(); *p; p++)
            names[(*n)++] = *p;
    }
    return 0;
}

static int do_fetch(const vnp_hub_options *opt, int argc, char **argv)
{
    const char *names[8];
    int n, rc = collect_names(argc, argv, names, &n);
    if (rc)
        return rc;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        vnp_error err;
        vnp_error_clear(&err);
        if (vnp_models_fetch(names[i], opt, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            failed++;
        }
    }
    return failed ? 1 : 0;
}

static int do_verify(const vnp_hub_options *opt, int argc, char **argv)
{
    const char *names[8];
    int n, rc = collect_names(argc, argv, names, &n);
    if (rc)
        return rc;
    int explicit_names = argc > 0;
    for (int i = 0; i < argc; i++)
        explicit_names &= strcmp(argv[i], "all") != 0;
    int failed = 0, checked = 0;
    for (int i = 0; i < n; i++) {
        vnp_error err;
        int nfiles = 0;
        uint64_t bytes = 0;
        vnp_error_clear(&err);
        vnp_code c = vnp_models_verify(names[i], opt, &nfiles, &bytes, &err);
        if (c == VNP_OK) {
            char sz[32];
            snprintf(sz, sizeof sz, "%.2f GB", (double)bytes / 1e9);
            if (bytes < 100000000ull)
                snprintf(sz, sizeof sz, "%.1f MB", (double)bytes / 1e6);
            printf("%-18s OK (%d file%s, %s)\n", names[i], nfiles, nfiles == 1 ? "" : "s", sz);
            checked++;
        } else if (c == VNP_ENOTFOUND && explicit_names) {
            printf("%-18s not fetched\n", names[i]);
            vnp_cli_error("%s", err.msg);
            failed++;
        } else if (c == VNP_ENOTFOUND) {
            vnp_model_info info;
            vnp_error e2;
            if (vnp_models_info(names[i], opt, &info, &e2) == VNP_OK &&
                (info.state == VNP_MODEL_HF_CACHE || info.state == VNP_MODEL_TORCH_HUB))
                printf("%-18s not in the cache (used in place from %s, not verified)\n",
                       names[i], info.path);
            else
                printf("%-18s not fetched\n", names[i]);
        } else {
            printf("%-18s FAILED\n", names[i]);
            vnp_cli_error("%s", err.msg);
            failed++;
        }
    }
    fflush(stdout);
    if (failed)
        return 1;
    if (!checked && explicit_names)
        return 1;
    return 0;
}

static int do_list(const vnp_hub_options *opt)
{
    vnp_error err;
    char dir[4096];
    if (vnp_models_cache_dir(opt, dir, sizeof dir, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        return 1;
    }
    printf("cache: %s\n", dir);
    printf("%-18s %-10s %10s  %s\n", "NAME", "STATE", "SIZE", "PATH");
    for (const char *const *p = vnp_models_names(); *p; p++) {
        vnp_model_info info;
        if (vnp_models_info(*p, opt, &info, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            return 1;
        }
        char sz[32] = "-";
        if (info.bytes >= 1000000000ull)
            snprintf(sz, sizeof sz, "%.2f GB", (double)info.bytes / 1e9);
        else if (info.bytes > 0)
            snprintf(sz, sizeof sz, "%.1f MB", (double)info.bytes / 1e6);
        const char *where = info.path;
        char hint[160];
        if (info.state == VNP_MODEL_MISSING || info.state == VNP_MODEL_PARTIAL) {
            snprintf(hint, sizeof hint, "(virnucpro models fetch %s)", *p);
            where = hint;
        }
        printf("%-18s %-10s %10s  %s\n", *p, vnp_model_state_name(info.state), sz, where);
    }
    return 0;
}

static int do_path(const vnp_hub_options *opt, int argc, char **argv)
{
    if (argc != 1) {
        vnp_cli_error("models path takes one model name");
        return 2;
    }
    if (!vnp_models_is_known(argv[0])) {
        vnp_cli_error("unknown model '%s'; the models are esm2_t36_3B_UR50D, dnabert-s, "
                      "classifier-300, classifier-500",
                      argv[0]);
        return 2;
    }
    vnp_model_info info;
    vnp_error err;
    if (vnp_models_info(argv[0], opt, &info, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        return 1;
    }
    if (info.state == VNP_MODEL_MISSING || info.state == VNP_MODEL_PARTIAL) {
        vnp_cli_error("model %s is not available (%s); fetch it with `virnucpro models fetch %s`",
                      argv[0], vnp_model_state_name(info.state), argv[0]);
        return 1;
    }
    printf("%s\n", info.path);
    return 0;
}

int vnp_cmd_models(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        models_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *action = argv[1];
    vnp_hub_options opt;
    vnp_hub_options_init(&opt);
    char **rest = malloc(sizeof(char *) * (size_t)argc);
    if (!rest) {
        vnp_cli_error("out of memory");
        return 1;
    }
    int nrest = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dir") || !strncmp(a, "--dir=", 6)) {
            const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                vnp_cli_error("--dir needs a directory");
                free(rest);
                return 2;
            }
            opt.cache_dir = v;
        } else if (!strcmp(a, "--no-external")) {
            opt.use_external = 0;
        } else if (!strcmp(a, "--offline")) {
            opt.offline = 1;
        } else if (!strcmp(a, "--no-progress")) {
            opt.progress = 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            opt.quiet = 1;
            opt.progress = 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            models_usage(stdout);
            free(rest);
            return 0;
        } else if (a[0] == '-') {
            vnp_cli_error("unknown option '%s' for models %s; see 'virnucpro models --help'", a,
                          action);
            free(rest);
            return 2;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    int rc;
    if (!strcmp(action, "fetch"))
        rc = do_fetch(&opt, nrest, rest);
    else if (!strcmp(action, "verify"))
        rc = do_verify(&opt, nrest, rest);
    else if (!strcmp(action, "list"))
        rc = nrest ? (vnp_cli_error("models list takes no names"), 2) : do_list(&opt);
    else if (!strcmp(action, "path"))
        rc = do_path(&opt, nrest, rest);
    else {
        vnp_cli_error("unknown action 'models %s'; the actions are fetch, verify, list, path",
                      action);
        rc = 2;
    }
    free(rest);
    return rc;
}
