/* Models that are already on disk in other tools' caches, used in place:
 * a Hugging Face hub cache snapshot (models--owner--name/snapshots/<rev>/) and a
 * fair-esm torch hub checkpoint (hub/checkpoints/esm2_t36_3B_UR50D.pt). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hub/hub_internal.h"

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

void vnp_hub_hf_cache_root(char *out, size_t cap)
{
    const char *v;
    if ((v = env_nonempty("HF_HUB_CACHE")) || (v = env_nonempty("HUGGINGFACE_HUB_CACHE")))
        snprintf(out, cap, "%s", v);
    else if ((v = env_nonempty("HF_HOME")))
        snprintf(out, cap, "%s/hub", v);
    else if ((v = env_nonempty("XDG_CACHE_HOME")))
        snprintf(out, cap, "%s/huggingface/hub", v);
    else if ((v = env_nonempty("HOME")))
        snprintf(out, cap, "%s/.cache/huggingface/hub", v);
    else
        out[0] = 0;
}

static int is_file(const char *dir, const char *name)
{
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Every shard a *.index.json in dir names is present. */
static int shards_present(const char *dir, const char *index)
{
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/%s", dir, index);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = malloc(16 << 20);
    size_t n = buf ? fread(buf, 1, (16 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return 0;
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    int ok = cJSON_IsObject(map) && map->child;
    for (cJSON *it = ok ? map->child : NULL; it && ok; it = it->next)
        ok = cJSON_IsString(it) && !strchr(it->valuestring, '/') &&
             is_file(dir, it->valuestring);
    cJSON_Delete(root);
    return ok;
}

static int snapshot_complete(const vnp_model_spec *spec, const char *dir)
{
    for (int i = 0; spec->required[i]; i++)
        if (!is_file(dir, spec->required[i]))
            return 0;
    if (!spec->weights[0])
        return 1;
    for (int i = 0; spec->weights[i]; i++) {
        if (!is_file(dir, spec->weights[i]))
            continue;
        if (!strstr(spec->weights[i], ".index.json") || shards_present(dir, spec->weights[i]))
            return 1;
    }
    return 0;
}

static int try_snapshot(const vnp_model_spec *spec, const char *repo_dir, const char *rev,
                        char *dir, size_t cap, char *revout, size_t revcap)
{
    if (!rev[0] || rev[0] == '.' || strchr(rev, '/'))
        return 0;
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/snapshots/%s", repo_dir, rev);
    if (!snapshot_complete(spec, path))
        return 0;
    snprintf(dir, cap, "%s", path);
    snprintf(revout, revcap, "%s", rev);
    return 1;
}

int vnp_hub_find_hf_snapshot(const vnp_model_spec *spec, char *dir, size_t cap, char *rev,
                             size_t revcap)
{
    if (spec->source != VNP_SOURCE_HF_HUB)
        return 0;
    char root[VNP_HUB_PATH];
    vnp_hub_hf_cache_root(root, sizeof root);
    if (!root[0])
        return 0;
    char repo_dir[VNP_HUB_PATH], name[512];
    snprintf(name, sizeof name, "%s", spec->repo);
    char *slash = strchr(name, '/');
    if (!slash)
        return 0;
    *slash = 0;
    snprintf(repo_dir, sizeof repo_dir, "%s/models--%s--%s", root, name, slash + 1);
    /* the pinned revision, then the one refs/main points to, then any complete one */
    if (try_snapshot(spec, repo_dir, spec->revision, dir, cap, rev, revcap))
        return 1;
    char refpath[VNP_HUB_PATH], ref[128] = "";
    snprintf(refpath, sizeof refpath, "%s/refs/main", repo_dir);
    FILE *f = fopen(refpath, "r");
    if (f) {
        if (fgets(ref, sizeof ref, f))
            ref[strcspn(ref, "\r\n")] = 0;
        fclose(f);
        if (try_snapshot(spec, repo_dir, ref, dir, cap, rev, revcap))
            return 1;
    }
    char snaps[VNP_HUB_PATH];
    snprintf(snaps, sizeof snaps, "%s/snapshots", repo_dir);
    DIR *d = opendir(snaps);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        if (de->d_name[0] != '.')
            found = try_snapshot(spec, repo_dir, de->d_name, dir, cap, rev, revcap);
    closedir(d);
    return found;
}

int vnp_hub_find_torch_hub(const vnp_model_spec *spec, char *file, size_t cap)
{
    if (!spec->torch_hub_file)
        return 0;
    const char *v;
    char dir[VNP_HUB_PATH];
    if ((v = env_nonempty("TORCH_HOME")))
        snprintf(dir, sizeof dir, "%s/hub/checkpoints", v);
    else if ((v = env_nonempty("XDG_CACHE_HOME")))
        snprintf(dir, sizeof dir, "%s/torch/hub/checkpoints", v);
    else if ((v = env_nonempty("HOME")))
        snprintf(dir, sizeof dir, "%s/.cache/torch/hub/checkpoints", v);
    else
        return 0;
    if (!is_file(dir, spec->torch_hub_file))
        return 0;
    snprintf(file, cap, "%s/%s", dir, spec->torch_hub_file);
    return 1;
}

vnp_code vnp_hub_verify_hf_snapshot(const char *dir, int *nfiles, uint64_t *bytes, vnp_error *err)
{
    *nfiles = 0;
    *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return vnp_fail(err, VNP_EIO, "cannot read %s", dir);
    vnp_code rc = VNP_OK;
    int unverifiable = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[VNP_HUB_PATH], target[VNP_HUB_PATH];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = vnp_fail(err, VNP_EINTEGRITY, "%s is a dangling link (its blob is missing)",
                          path);
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        /* the hub cache names each blob by its ETag: SHA-256 (LFS) or git blob id */
        ssize_t n = readlink(path, target, sizeof target - 1);
        const char *blob = NULL;
        if (n > 0) {
            target[n] = 0;
            const char *slash = strrchr(target, '/');
            blob = slash ? slash + 1 : target;
        }
        int is256 = blob && vnp_hub_is_hex(blob, 64), is1 = blob && vnp_hub_is_hex(blob, 40);
        if (!is256 && !is1) {
            unverifiable++;
            continue;
        }
        vnp_digest dg;
        if ((rc = vnp_hub_digest_file(path, &dg, is1, err)))
            break;
        const char *got = is256 ? dg.sha256 : dg.git_sha1;
        if (strcasecmp(got, blob) != 0) {
            rc = vnp_fail(err, VNP_EINTEGRITY,
                          "%s is corrupt: its %s is %s, but the Hugging Face cache names it %s; "
                          "remove the snapshot (or fetch into this tool's cache with "
                          "`virnucpro models fetch --no-external`)",
                          path, is256 ? "SHA-256" : "git blob id", got, blob);
            break;
        }
        (*nfiles)++;
        *bytes += dg.size;
    }
    closedir(d);
    if (!rc && *nfiles == 0)
        rc = vnp_fail(err, VNP_EINTEGRITY,
                      "%s: none of its %d files links to a blob named by its digest; it "
                      "cannot be verified",
                      dir, unverifiable);
    return rc;
}
