/* The state of a cached model: a quick check (sizes and modification times
 * against the manifest) for every use, and a full re-hash for `models verify`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/hub_internal.h"

static int string_is(const cJSON *obj, const char *key, const char *want)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(s) && !strcmp(s->valuestring, want);
}

static double number_of(const cJSON *obj, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(n) ? n->valuedouble : -1.0;
}

/* The manifest entry of a model when it is complete and of the pinned revision. */
static cJSON *complete_entry(const vnp_model_spec *spec, const cJSON *manifest)
{
    cJSON *m = manifest ? vnp_manifest_model((cJSON *)manifest, spec->name, 0) : NULL;
    if (!m || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "complete")) ||
        !string_is(m, "repo", spec->repo) || !string_is(m, "revision", spec->revision))
        return NULL;
    cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    return cJSON_IsObject(files) && files->child ? m : NULL;
}

int vnp_hub_cached_ok(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, const cJSON *manifest)
{
    cJSON *m = complete_entry(spec, manifest);
    if (!m)
        return 0;
    char dir[VNP_HUB_PATH];
    vnp_hub_model_dir(cfg, spec, dir, sizeof dir);
    cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    for (cJSON *e = files->child; e; e = e->next) {
        char path[VNP_HUB_PATH];
        snprintf(path, sizeof path, "%s/%s", dir, e->string);
        struct stat st;
        if (stat(path, &st) != 0 || (double)st.st_size != number_of(e, "size"))
            return 0;
        if ((double)st.st_mtim.tv_sec != number_of(e, "mtime_s") ||
            (double)st.st_mtim.tv_nsec != number_of(e, "mtime_ns"))
            return 0;
    }
    return 1;
}

/* After a full re-hash: when it matched, record the files' current dates so that
 * the quick check trusts them again; when `damaged` names a file, forget that
 * file's date (best effort: skipped when another process holds the cache or it is
 * read-only). */
static void refresh_dates(const vnp_hub_cfg *cfg, const vnp_model_spec *spec,
                          const char *damaged)
{
    char lockpath[VNP_HUB_PATH];
    snprintf(lockpath, sizeof lockpath, "%s/.lock", cfg->cache_dir);
    int fd = open(lockpath, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return;
    }
    cJSON *man = NULL;
    if (vnp_manifest_load(cfg->cache_dir, &man, NULL) == VNP_OK) {
        cJSON *m = vnp_manifest_model(man, spec->name, 0);
        cJSON *files = m ? cJSON_GetObjectItemCaseSensitive(m, "files") : NULL;
        char dir[VNP_HUB_PATH];
        vnp_hub_model_dir(cfg, spec, dir, sizeof dir);
        int changed = 0;
        for (cJSON *e = cJSON_IsObject(files) ? files->child : NULL; e; e = e->next) {
            char path[VNP_HUB_PATH];
            snprintf(path, sizeof path, "%s/%s", dir, e->string);
            struct stat st;
            if (damaged) {
                /* forget its date: no quick check trusts it, the next fetch re-hashes it */
                if (!strcmp(e->string, damaged)) {
                    cJSON_ReplaceItemInObjectCaseSensitive(e, "mtime_s", cJSON_CreateNumber(-1));
                    changed = 1;
                }
                continue;
            }
            if (stat(path, &st) != 0 || (double)st.st_size != number_of(e, "size"))
                continue;
            cJSON_ReplaceItemInObjectCaseSensitive(e, "mtime_s",
                                                   cJSON_CreateNumber((double)st.st_mtim.tv_sec));
            cJSON_ReplaceItemInObjectCaseSensitive(e, "mtime_ns",
                                                   cJSON_CreateNumber((double)st.st_mtim.tv_nsec));
            changed = 1;
        }
        if (changed)
            vnp_manifest_save(cfg->cache_dir, man, NULL);
    }
    cJSON_Delete(man);
    flock(fd, LOCK_UN);
    close(fd);
}

vnp_code vnp_hub_verify_spec(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, int *nfiles,
                             uint64_t *bytes, vnp_error *err)
{
    if (nfiles)
        *nfiles = 0;
    if (bytes)
        *bytes = 0;
    cJSON *man = NULL;
    vnp_code rc = vnp_manifest_load(cfg->cache_dir, &man, err);
    if (rc)
        return rc;
    cJSON *m = vnp_manifest_model(man, spec->name, 0);
    cJSON *files = m ? cJSON_GetObjectItemCaseSensitive(m, "files") : NULL;
    if (!m || !cJSON_IsObject(files) || !files->child) {
        cJSON_Delete(man);
        return vnp_fail(err, VNP_ENOTFOUND,
                        "model %s is not in the cache %s; fetch it with `virnucpro models fetch "
                        "%s`",
                        spec->name, cfg->cache_dir, spec->name);
    }
    if (!complete_entry(spec, man)) {
        int other_rev = !string_is(m, "revision", spec->revision);
        cJSON_Delete(man);
        return vnp_fail(err, VNP_EINTEGRITY,
                        "model %s in %s is %s; run `virnucpro models fetch %s` to complete it",
                        spec->name, cfg->cache_dir,
                        other_rev ? "of another revision than this virnucpro pins"
                                  : "incomplete (an interrupted fetch)",
                        spec->name);
    }
    char dir[VNP_HUB_PATH];
    vnp_hub_model_dir(cfg, spec, dir, sizeof dir);
    int n = 0;
    uint64_t total = 0;
    char bad[512] = "";
    for (cJSON *e = files->child; e && !rc; e = e->next) {
        snprintf(bad, sizeof bad, "%s", e->string);
        char path[VNP_HUB_PATH];
        snprintf(path, sizeof path, "%s/%s", dir, e->string);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = vnp_fail(err, VNP_EINTEGRITY,
                          "%s: %s is missing; run `virnucpro models fetch %s` to download it "
                          "again",
                          spec->name, path, spec->name);
            break;
        }
        if ((double)st.st_size != number_of(e, "size")) {
            rc = vnp_fail(err, VNP_EINTEGRITY,
                          "%s: %s has %lld bytes, %.0f when it was fetched; it is damaged: run "
                          "`virnucpro models fetch %s` to download it again",
                          spec->name, path, (long long)st.st_size, number_of(e, "size"),
                          spec->name);
            break;
        }
        vnp_digest d;
        if ((rc = vnp_hub_digest_file(path, &d, 0, err)))
            break;
        if (!cJSON_IsString(want) || strcmp(want->valuestring, d.sha256)) {
            rc = vnp_fail(err, VNP_EINTEGRITY,
                          "%s: %s is corrupt: its SHA-256 is %s, but was %s when it was fetched "
                          "and verified; run `virnucpro models fetch %s` to download it again",
                          spec->name, path, d.sha256,
                          cJSON_IsString(want) ? want->valuestring : "(not recorded)", spec->name);
            break;
        }
        n++;
        total += d.size;
        bad[0] = 0;
    }
    cJSON_Delete(man);
    if (!rc)
        refresh_dates(cfg, spec, NULL);
    else if (rc == VNP_EINTEGRITY && bad[0])
        refresh_dates(cfg, spec, bad);
    if (nfiles)
        *nfiles = n;
    if (bytes)
        *bytes = total;
    return rc;
}

const char *vnp_model_state_name(vnp_model_state s)
{
    switch (s) {
    case VNP_MODEL_MISSING:
        return "missing";
    case VNP_MODEL_PARTIAL:
        return "partial";
    case VNP_MODEL_CACHED:
        return "verified";
    case VNP_MODEL_MODIFIED:
        return "changed";
    case VNP_MODEL_HF_CACHE:
        return "hf-cache";
    case VNP_MODEL_TORCH_HUB:
        return "torch-hub";
    }
    return "?";
}

static void dir_totals(const char *dir, const cJSON *m, vnp_model_info *info)
{
    cJSON *files = m ? cJSON_GetObjectItemCaseSensitive(m, "files") : NULL;
    if (!cJSON_IsObject(files))
        return;
    for (cJSON *e = files->child; e; e = e->next) {
        char path[VNP_HUB_PATH];
        snprintf(path, sizeof path, "%s/%s", dir, e->string);
        struct stat st;
        if (stat(path, &st) == 0) {
            info->bytes += (uint64_t)st.st_size;
            info->nfiles++;
        }
    }
}

vnp_code vnp_models_info(const char *name, const vnp_hub_options *opt, vnp_model_info *info,
                         vnp_error *err)
{
    memset(info, 0, sizeof *info);
    const vnp_model_spec *spec = vnp_hub_spec(name);
    if (!spec)
        return vnp_fail(err, VNP_EINVAL, "unknown model '%s' (known: esm2_t36_3B_UR50D, "
                                         "dnabert-s, classifier-300, classifier-500)",
                        name ? name : "(null)");
    vnp_hub_cfg cfg;
    vnp_code rc = vnp_hub_cfg_resolve(opt, &cfg, err);
    if (rc)
        return rc;
    cJSON *man = NULL;
    if ((rc = vnp_manifest_load(cfg.cache_dir, &man, err)))
        return rc;
    char dir[VNP_HUB_PATH];
    vnp_hub_model_dir(&cfg, spec, dir, sizeof dir);
    snprintf(info->revision, sizeof info->revision, "%s", spec->revision);
    cJSON *m = vnp_manifest_model(man, spec->name, 0);
    if (vnp_hub_cached_ok(&cfg, spec, man)) {
        info->state = VNP_MODEL_CACHED;
    } else if (complete_entry(spec, man)) {
        info->state = VNP_MODEL_MODIFIED;
    } else if (cfg.use_external &&
               vnp_hub_find_hf_snapshot(spec, info->path, sizeof info->path, info->revision,
                                        sizeof info->revision)) {
        info->state = VNP_MODEL_HF_CACHE;
    } else if (cfg.use_external && vnp_hub_find_torch_hub(spec, info->path, sizeof info->path)) {
        info->state = VNP_MODEL_TORCH_HUB;
    } else {
        info->state = m ? VNP_MODEL_PARTIAL : VNP_MODEL_MISSING;
    }
    if (info->state == VNP_MODEL_HF_CACHE || info->state == VNP_MODEL_TORCH_HUB) {
        struct stat st;
        if (info->state == VNP_MODEL_TORCH_HUB && stat(info->path, &st) == 0) {
            info->bytes = (uint64_t)st.st_size;
            info->nfiles = 1;
        }
        if (info->state == VNP_MODEL_HF_CACHE) {
            char snap[VNP_HUB_PATH];
            snprintf(snap, sizeof snap, "%s", info->path);
            DIR *d = opendir(snap);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                char f[VNP_HUB_PATH + 260];
                snprintf(f, sizeof f, "%s/%s", snap, de->d_name);
                if (de->d_name[0] != '.' && stat(f, &st) == 0 && S_ISREG(st.st_mode)) {
                    info->bytes += (uint64_t)st.st_size;
                    info->nfiles++;
                }
            }
            if (d)
                closedir(d);
            vnp_hub_load_path(spec, snap, info->path, sizeof info->path);
        }
    } else {
        vnp_hub_load_path(spec, dir, info->path, sizeof info->path);
        dir_totals(dir, m, info);
    }
    cJSON_Delete(man);
    return VNP_OK;
}
