/* Sharded Hugging Face checkpoints: "*.index.json" ({"weight_map": {tensor: shard}})
 * next to the shard files, as the hub stores large models (ESM-2 3B is two
 * pytorch_model-0000N-of-00002.bin files). The shards are loaded one by one and their
 * tensors gathered into one map, which keeps each shard's map alive. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "virnucpro/weights.h"

static void release_map(void *m) { vnp_tensor_map_free(m); }

static char *read_small(const char *path, size_t max, size_t *len, vnp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        vnp_fail(err, e == ENOENT ? VNP_ENOTFOUND : VNP_EIO, "%s: cannot open: %s", path,
                 strerror(e));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        vnp_fail(err, VNP_ENOMEM, "out of memory reading %s", path);
        return NULL;
    }
    if (bad || n > max) {
        free(buf);
        vnp_fail(err, bad ? VNP_EIO : VNP_EFORMAT, "%s: %s", path,
                 bad ? "read error" : "too large for a shard index");
        return NULL;
    }
    *len = n;
    return buf;
}

/* A shard must be a plain file name beside the index. */
static int plain_name(const char *s)
{
    return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') &&
           !strstr(s, ".index.json");
}

vnp_code vnp_sharded_checkpoint_load(const char *index_path, vnp_tensor_map **out,
                                     vnp_error *err)
{
    *out = NULL;
    size_t len;
    char *text = read_small(index_path, 64u << 20, &len, err);
    if (!text)
        return err ? err->code : VNP_EIO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm) || !wm->child) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EFORMAT, "%s: no \"weight_map\" object naming the shards",
                        index_path);
    }
    char dir[4096];
    const char *slash = strrchr(index_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - index_path) : 1,
             slash ? index_path : ".");

    vnp_tensor_map *all = vnp_tensor_map_new();
    vnp_code rc = all ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (const cJSON *it = wm->child; it && !rc; it = it->next) {
        if (!cJSON_IsString(it) || !plain_name(it->valuestring)) {
            rc = vnp_fail(err, VNP_EFORMAT, "%s: tensor '%s' maps to an invalid shard name",
                          index_path, it->string ? it->string : "?");
            break;
        }
        int seen = 0; /* each shard once, at its first mention */
        for (const cJSON *p = wm->child; p != it && !seen; p = p->next)
            seen = cJSON_IsString(p) && !strcmp(p->valuestring, it->valuestring);
        if (seen)
            continue;
        char shard[4600];
        snprintf(shard, sizeof shard, "%s/%s", dir, it->valuestring);
        vnp_tensor_map *m = NULL;
        if ((rc = vnp_checkpoint_load(shard, &m, err))) {
            vnp_error_prefix(err, "shard of %s: ", index_path);
            break;
        }
        for (size_t i = 0; i < vnp_tensor_map_count(m) && !rc; i++) {
            const vnp_tensor *t = vnp_tensor_map_at(m, i);
            if (vnp_tensor_map_get(all, t->name))
                rc = vnp_fail(err, VNP_EFORMAT, "%s: tensor '%s' is in more than one shard",
                              index_path, t->name);
            else
                rc = vnp_tensor_map_add(all, t->name, t->dtype, t->ndim, t->shape, t->data, NULL,
                                        err);
        }
        if (rc) {
            vnp_tensor_map_free(m);
            break;
        }
        if ((rc = vnp_tensor_map_hold(all, m, release_map, err)))
            break; /* hold has already released m */
    }
    /* every tensor the index names is where it says */
    for (const cJSON *it = wm->child; it && !rc; it = it->next)
        if (!vnp_tensor_map_get(all, it->string))
            rc = vnp_fail(err, VNP_ESHAPE, "%s: tensor '%s' is missing from its shard %s",
                          index_path, it->string, it->valuestring);
    cJSON_Delete(root);
    if (rc) {
        vnp_tensor_map_free(all);
        return rc;
    }
    *out = all;
    return VNP_OK;
}
