/* <cache>/manifest.json: what was fetched, from where, with every file's size,
 * modification time and SHA-256; and the lock that serialises fetches into one
 * cache directory.
 *
 * {"format": 1,
 *  "models": {"dnabert-s": {"repo": "...", "revision": "...", "complete": true,
 *                           "fetched": "2026-11-22T00:10:00Z",
 *                           "files": {"config.json": {"size": 1030, "mtime_s": ..., "mtime_ns": ...,
 *                                     "sha256": "...", "url": "...", "checked_against": "..."}}}}} */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hub/hub_internal.h"

#define MANIFEST_FORMAT 1

vnp_code vnp_manifest_load(const char *cache_dir, cJSON **out, vnp_error *err)
{
    *out = NULL;
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/manifest.json", cache_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT)
            return vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
        cJSON *root = cJSON_CreateObject();
        if (!root || !cJSON_AddNumberToObject(root, "format", MANIFEST_FORMAT) ||
            !cJSON_AddObjectToObject(root, "models")) {
            cJSON_Delete(root);
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        }
        *out = root;
        return VNP_OK;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return vnp_fail(err, VNP_ENOMEM, "out of memory reading %s", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap > (64u << 20)) {
            free(buf);
            fclose(f);
            return vnp_fail(err, VNP_EFORMAT, "%s is implausibly large; remove it and fetch again",
                            path);
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return vnp_fail(err, VNP_EIO, "read error in %s", path);
    }
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    cJSON *models = root ? cJSON_GetObjectItemCaseSensitive(root, "models") : NULL;
    cJSON *fmt = root ? cJSON_GetObjectItemCaseSensitive(root, "format") : NULL;
    if (!root || !cJSON_IsObject(root) || !cJSON_IsObject(models) || !cJSON_IsNumber(fmt)) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EFORMAT,
                        "%s is not a virnucpro model manifest (damaged?); remove it and run "
                        "`virnucpro models fetch` again (files are re-verified)",
                        path);
    }
    if (fmt->valuedouble != MANIFEST_FORMAT) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EUNSUPPORTED,
                        "%s has format %g, this virnucpro reads format %d; use a matching "
                        "version or another --dir",
                        path, fmt->valuedouble, MANIFEST_FORMAT);
    }
    *out = root;
    return VNP_OK;
}

vnp_code vnp_manifest_save(const char *cache_dir, const cJSON *root, vnp_error *err)
{
    char path[VNP_HUB_PATH], tmp[VNP_HUB_PATH + 32];
    snprintf(path, sizeof path, "%s/manifest.json", cache_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    char *text = cJSON_Print(root);
    if (!text)
        return vnp_fail(err, VNP_ENOMEM, "out of memory writing %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int e = errno;
    free(text);
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return VNP_OK;
}

cJSON *vnp_manifest_model(cJSON *root, const char *name, int create)
{
    cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsObject(models))
        return NULL;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(models, name);
    if (m && !cJSON_IsObject(m)) {
        cJSON_DeleteItemFromObjectCaseSensitive(models, name);
        m = NULL;
    }
    if (!m && create)
        m = cJSON_AddObjectToObject(models, name);
    return m;
}

cJSON *vnp_manifest_file(cJSON *model, const char *file, int create)
{
    cJSON *files = cJSON_GetObjectItemCaseSensitive(model, "files");
    if (!cJSON_IsObject(files)) {
        if (!create)
            return NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(model, "files");
        files = cJSON_AddObjectToObject(model, "files");
        if (!files)
            return NULL;
    }
    cJSON *e = cJSON_GetObjectItemCaseSensitive(files, file);
    if (e && !cJSON_IsObject(e)) {
        cJSON_DeleteItemFromObjectCaseSensitive(files, file);
        e = NULL;
    }
    if (!e && create)
        e = cJSON_AddObjectToObject(files, file);
    return e;
}

vnp_code vnp_cache_lock_take(const char *cache_dir, vnp_cache_lock *lk, int quiet,
                             vnp_error *err)
{
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/.lock", cache_dir);
    lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lk->fd < 0)
        return vnp_fail(err, VNP_EIO, "cannot create the lock file %s: %s", path,
                        strerror(errno));
    if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0)
        return VNP_OK;
    if (errno != EWOULDBLOCK) {
        int e = errno;
        close(lk->fd);
        lk->fd = -1;
        return vnp_fail(err, VNP_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    if (!quiet)
        fprintf(stderr, "virnucpro: waiting for another virnucpro that is fetching into %s\n",
                cache_dir);
    while (flock(lk->fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(lk->fd);
            lk->fd = -1;
            return vnp_fail(err, VNP_EIO, "cannot lock %s: %s", path, strerror(e));
        }
    }
    return VNP_OK;
}

void vnp_cache_lock_release(vnp_cache_lock *lk)
{
    if (lk->fd >= 0) {
        flock(lk->fd, LOCK_UN);
        close(lk->fd);
    }
    lk->fd = -1;
}
