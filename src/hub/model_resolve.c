/* The public entry points: fetch, verify, and resolve a model to the path to load
 * (cache first, then other tools' caches, then a download unless offline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_internal.h"

static vnp_code lookup(const char *name, const vnp_model_spec **spec, vnp_error *err)
{
    *spec = vnp_hub_spec(name);
    if (!*spec)
        return vnp_fail(err, VNP_EINVAL,
                        "unknown model '%s'; the known models are esm2_t36_3B_UR50D, dnabert-s, "
                        "classifier-300 and classifier-500",
                        name ? name : "(null)");
    return VNP_OK;
}

static int external_copy(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, char *path,
                         size_t cap, const char **kind)
{
    char dir[VNP_HUB_PATH], rev[128];
    if (!cfg->use_external)
        return 0;
    if (vnp_hub_find_hf_snapshot(spec, dir, sizeof dir, rev, sizeof rev)) {
        vnp_hub_load_path(spec, dir, path, cap);
        *kind = "Hugging Face hub cache";
        return 1;
    }
    if (vnp_hub_find_torch_hub(spec, path, cap)) {
        *kind = "torch hub cache";
        return 1;
    }
    return 0;
}

vnp_code vnp_models_fetch(const char *name, const vnp_hub_options *opt, vnp_error *err)
{
    const vnp_model_spec *spec;
    vnp_hub_cfg cfg;
    vnp_code rc;
    if ((rc = lookup(name, &spec, err)) || (rc = vnp_hub_cfg_resolve(opt, &cfg, err)))
        return rc;
    cJSON *man = NULL;
    if ((rc = vnp_manifest_load(cfg.cache_dir, &man, err)))
        return rc;
    int cached = vnp_hub_cached_ok(&cfg, spec, man);
    cJSON_Delete(man);
    char path[VNP_HUB_PATH];
    const char *kind;
    if (!cached && external_copy(&cfg, spec, path, sizeof path, &kind)) {
        vnp_hub_note(&cfg, "%s: using %s in the %s in place (pass --no-external to download a "
                           "copy into %s)",
                     spec->name, path, kind, cfg.cache_dir);
        return VNP_OK;
    }
    return vnp_hub_fetch_spec(&cfg, spec, err);
}

vnp_code vnp_models_verify(const char *name, const vnp_hub_options *opt, int *nfiles,
                           uint64_t *bytes, vnp_error *err)
{
    const vnp_model_spec *spec;
    vnp_hub_cfg cfg;
    vnp_code rc;
    if ((rc = lookup(name, &spec, err)) || (rc = vnp_hub_cfg_resolve(opt, &cfg, err)))
        return rc;
    rc = vnp_hub_verify_spec(&cfg, spec, nfiles, bytes, err);
    char dir[VNP_HUB_PATH], rev[128];
    if (rc == VNP_ENOTFOUND && cfg.use_external &&
        vnp_hub_find_hf_snapshot(spec, dir, sizeof dir, rev, sizeof rev)) {
        /* not in this cache, but used in place from the Hugging Face one */
        int n = 0;
        uint64_t b = 0;
        rc = vnp_hub_verify_hf_snapshot(dir, &n, &b, err);
        if (nfiles)
            *nfiles = n;
        if (bytes)
            *bytes = b;
        if (rc)
            vnp_error_prefix(err, "%s: ", spec->name);
    }
    return rc;
}

static vnp_code resolve_cfg(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, char *path,
                            size_t cap, vnp_error *err)
{
    cJSON *man = NULL;
    vnp_code rc = vnp_manifest_load(cfg->cache_dir, &man, err);
    if (rc)
        return rc;
    int cached = vnp_hub_cached_ok(cfg, spec, man);
    cJSON *entry = vnp_manifest_model(man, spec->name, 0);
    int in_manifest = entry && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "complete"));
    cJSON_Delete(man);
    char dir[VNP_HUB_PATH];
    vnp_hub_model_dir(cfg, spec, dir, sizeof dir);
    if (cached) {
        vnp_hub_load_path(spec, dir, path, cap);
        return VNP_OK;
    }
    if (in_manifest) {
        /* complete once, but a file changed since: hash it before trusting it */
        vnp_error verr;
        if (vnp_hub_verify_spec(cfg, spec, NULL, NULL, &verr) == VNP_OK) {
            vnp_hub_load_path(spec, dir, path, cap);
            return VNP_OK;
        }
        if (cfg->offline)
            return vnp_fail(err, verr.code, "%s (VIRNUCPRO_OFFLINE=1 forbids downloading it now)",
                            verr.msg);
        vnp_hub_note(cfg, "%s", verr.msg);
    } else {
        const char *kind;
        if (external_copy(cfg, spec, path, cap, &kind))
            return VNP_OK;
    }
    if (cfg->offline)
        return vnp_hub_fetch_spec(cfg, spec, err); /* the offline message */
    /* the size first (the pinned sizes: ESM-2 3B is 11.4 GB), then the download */
    uint64_t pinned = 0;
    for (int i = 0; i < 6 && spec->pins[i].file; i++)
        pinned += spec->pins[i].size;
    char size[64] = "";
    if (pinned > 0)
        snprintf(size, sizeof size, "%.1f GB, ", (double)pinned / 1e9);
    vnp_hub_note(cfg, "%s is not cached yet: fetching it into %s (%sonce; resumable; "
                      "VIRNUCPRO_OFFLINE=1 or models fetch --dir elsewhere for machines "
                      "without internet)",
                 spec->name, dir, size);
    if ((rc = vnp_hub_fetch_spec(cfg, spec, err)))
        return rc;
    vnp_hub_load_path(spec, dir, path, cap);
    return VNP_OK;
}

vnp_code vnp_models_resolve_with(const char *name, const vnp_hub_options *opt, char *path,
                                 size_t cap, vnp_error *err)
{
    const vnp_model_spec *spec;
    vnp_hub_cfg cfg;
    vnp_code rc;
    if ((rc = lookup(name, &spec, err)) || (rc = vnp_hub_cfg_resolve(opt, &cfg, err)))
        return rc;
    char tmp[VNP_HUB_PATH];
    if ((rc = resolve_cfg(&cfg, spec, tmp, sizeof tmp, err)))
        return rc;
    if (strlen(tmp) >= cap)
        return vnp_fail(err, VNP_EINVAL, "path of model %s is too long for the buffer: %s",
                        name, tmp);
    memcpy(path, tmp, strlen(tmp) + 1);
    return VNP_OK;
}

vnp_code vnp_models_resolve(const char *name, char *path, size_t cap, vnp_error *err)
{
    return vnp_models_resolve_with(name, NULL, path, cap, err);
}

vnp_code vnp_models_resolve_all(const char *const *names, size_t n, const vnp_hub_options *opt,
                                char (*paths)[4096], vnp_error *err)
{
    vnp_hub_cfg cfg;
    vnp_code rc = vnp_hub_cfg_resolve(opt, &cfg, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const vnp_model_spec *spec;
        if ((rc = lookup(names[i], &spec, err)))
            return rc;
    }
    if (!cfg.offline) {
        for (size_t i = 0; i < n; i++)
            if ((rc = resolve_cfg(&cfg, vnp_hub_spec(names[i]), paths[i], 4096, err)))
                return rc;
        return VNP_OK;
    }
    /* offline: name every missing model at once */
    char missing[512] = "";
    size_t nmissing = 0;
    vnp_error first;
    vnp_code first_rc = VNP_OK;
    for (size_t i = 0; i < n; i++) {
        vnp_error e;
        vnp_code r = resolve_cfg(&cfg, vnp_hub_spec(names[i]), paths[i], 4096, &e);
        if (r == VNP_ENOTFOUND) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof missing - len, "%s%s", nmissing ? " " : "", names[i]);
            nmissing++;
        } else if (r && !first_rc) {
            first_rc = r;
            first = e;
        }
    }
    if (nmissing)
        return vnp_fail(err, VNP_ENOTFOUND,
                        "%zu model%s not in the cache %s and VIRNUCPRO_OFFLINE=1 forbids "
                        "downloading: %s; on a machine with internet run `virnucpro models fetch "
                        "%s --dir DIR` and copy DIR here (or point VIRNUCPRO_MODELS at it), or "
                        "give the model paths explicitly",
                        nmissing, nmissing == 1 ? " is" : "s are", cfg.cache_dir, missing, missing);
    if (first_rc)
        return vnp_fail(err, first_rc, "%s", first.msg);
    return VNP_OK;
}
