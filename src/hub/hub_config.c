/* Options of the model hub: environment, defaults, cache directory, URLs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/hub_internal.h"

#define DEFAULT_HUB_URL "https://huggingface.co"
#define DEFAULT_GITHUB_URL "https://raw.githubusercontent.com"

void vnp_hub_options_init(vnp_hub_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->cache_dir = NULL;
    opt->offline = -1;
    opt->progress = -1;
    opt->retries = -1;
    opt->retry_delay_ms = -1;
    opt->stall_seconds = -1;
    opt->use_external = -1;
    opt->quiet = 0;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

static int env_truthy(const char *name)
{
    const char *v = env_nonempty(name);
    if (!v)
        return 0;
    return !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "on");
}

/* A non-negative integer from the environment; def when unset; -2 when malformed. */
static int env_int(const char *name, int def)
{
    const char *v = env_nonempty(name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < 0 || x > 1000000000L)
        return -2;
    return (int)x;
}

static vnp_code pick_int(int given, const char *env, int def, int *out, vnp_error *err)
{
    if (given >= 0) {
        *out = given;
        return VNP_OK;
    }
    int v = env_int(env, def);
    if (v == -2)
        return vnp_fail(err, VNP_EINVAL, "%s='%s' is not a non-negative integer", env,
                        getenv(env));
    *out = v;
    return VNP_OK;
}

static void copy_base_url(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
    size_t n = strlen(dst);
    while (n > 0 && dst[n - 1] == '/')
        dst[--n] = 0;
}

vnp_code vnp_models_cache_dir(const vnp_hub_options *opt, char *path, size_t cap, vnp_error *err)
{
    const char *dir = opt ? opt->cache_dir : NULL;
    int n;
    if (dir && *dir)
        n = snprintf(path, cap, "%s", dir);
    else if ((dir = env_nonempty("VIRNUCPRO_MODELS")))
        n = snprintf(path, cap, "%s", dir);
    else if ((dir = env_nonempty("XDG_CACHE_HOME")))
        n = snprintf(path, cap, "%s/virnucpro", dir);
    else if ((dir = env_nonempty("HOME")))
        n = snprintf(path, cap, "%s/.cache/virnucpro", dir);
    else
        return vnp_fail(err, VNP_EINVAL,
                        "no cache directory for models: set VIRNUCPRO_MODELS (or HOME), or "
                        "pass --dir");
    if (n < 0 || (size_t)n >= cap)
        return vnp_fail(err, VNP_EINVAL, "model cache path is too long: %s", dir);
    return VNP_OK;
}

vnp_code vnp_hub_cfg_resolve(const vnp_hub_options *opt, vnp_hub_cfg *cfg, vnp_error *err)
{
    vnp_hub_options defaults;
    if (!opt) {
        vnp_hub_options_init(&defaults);
        opt = &defaults;
    }
    memset(cfg, 0, sizeof *cfg);
    vnp_code rc = vnp_models_cache_dir(opt, cfg->cache_dir, sizeof cfg->cache_dir, err);
    if (rc)
        return rc;

    const char *hub = env_nonempty("VIRNUCPRO_HUB_URL");
    if (!hub)
        hub = env_nonempty("HF_ENDPOINT");
    copy_base_url(cfg->hub_url, sizeof cfg->hub_url, hub ? hub : DEFAULT_HUB_URL);
    cfg->hub_is_default = !strcmp(cfg->hub_url, DEFAULT_HUB_URL);
    const char *gh = env_nonempty("VIRNUCPRO_GITHUB_URL");
    copy_base_url(cfg->github_url, sizeof cfg->github_url, gh ? gh : DEFAULT_GITHUB_URL);
    cfg->github_is_default = !strcmp(cfg->github_url, DEFAULT_GITHUB_URL);

    cfg->offline = opt->offline >= 0 ? opt->offline : env_truthy("VIRNUCPRO_OFFLINE");
    cfg->progress = opt->progress >= 0 ? opt->progress : isatty(STDERR_FILENO);
    cfg->use_external = opt->use_external >= 0 ? opt->use_external : 1;
    cfg->quiet = opt->quiet;
    if ((rc = pick_int(opt->retries, "VIRNUCPRO_HUB_RETRIES", 5, &cfg->retries, err)) ||
        (rc = pick_int(opt->retry_delay_ms, "VIRNUCPRO_HUB_RETRY_DELAY_MS", 1000,
                       &cfg->retry_delay_ms, err)) ||
        (rc = pick_int(opt->stall_seconds, "VIRNUCPRO_HUB_STALL_SECONDS", 60,
                       &cfg->stall_seconds, err)))
        return rc;
    if (cfg->stall_seconds < 1)
        cfg->stall_seconds = 1;
    return VNP_OK;
}

void vnp_hub_file_url(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, const char *rev,
                      const char *file, char *url, size_t cap)
{
    if (spec->source == VNP_SOURCE_HF_HUB)
        snprintf(url, cap, "%s/%s/resolve/%s/%s", cfg->hub_url, spec->repo, rev, file);
    else
        snprintf(url, cap, "%s/%s/%s/%s", cfg->github_url, spec->repo, rev, file);
}

const char *vnp_hub_default_branch(const vnp_model_spec *spec)
{
    return spec->default_branch ? spec->default_branch : "main";
}

int vnp_hub_pins_apply(const vnp_hub_cfg *cfg, const vnp_model_spec *spec)
{
    return spec->source == VNP_SOURCE_HF_HUB ? cfg->hub_is_default : cfg->github_is_default;
}

void vnp_hub_model_dir(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", cfg->cache_dir, spec->name);
}

void vnp_hub_load_path(const vnp_model_spec *spec, const char *dir, char *out, size_t cap)
{
    if (spec->load_file)
        snprintf(out, cap, "%s/%s", dir, spec->load_file);
    else
        snprintf(out, cap, "%s", dir);
}

void vnp_hub_note(const vnp_hub_cfg *cfg, const char *fmt, ...)
{
    if (cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("virnucpro: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void vnp_hub_human_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000.0 && u < 5) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, cap, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}
