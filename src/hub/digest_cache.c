/* SHA-256 of files that are hashed again and again (model checkpoints, to tell that
 * a resumed run uses the same models): remembered in <model cache>/digests.tsv by
 * path, size, modification and change times and inode, so an unchanged 11 GB checkpoint
 * is read once, not at every run. The change time (ctime) is the kernel's: an in-place
 * edit whose mtime was put back (touch -r, rsync -t) still changes it. A line:
 * sha256 \t size \t mtime_ns \t ctime_ns \t inode \t path. A cache that cannot be read
 * or written only costs the hashing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/fs.h"
#include "hub/hub_internal.h"
#include "virnucpro/hub.h"

static int cache_path(char *out, size_t cap)
{
    vnp_error e;
    char dir[4096];
    if (vnp_models_cache_dir(NULL, dir, sizeof dir, &e) != VNP_OK)
        return 0;
    int n = snprintf(out, cap, "%s/digests.tsv", dir);
    return n > 0 && (size_t)n < cap && vnp_mkdirs(dir, "model cache directory", &e) == VNP_OK;
}

static int lookup(const char *cache, const char *path, const struct stat *st, char *hex)
{
    FILE *f = fopen(cache, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    long long mt = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    long long ct = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
    while (!found && getline(&line, &cap, f) > 0) {
        char h[65], p[4096];
        unsigned long long size, ino;
        long long m, cc;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "%64[0-9a-f]\t%llu\t%lld\t%lld\t%llu\t%4095[^\n]", h, &size, &m, &cc,
                   &ino, p) == 6 &&
            strlen(h) == 64 && !strcmp(p, path) && size == (unsigned long long)st->st_size &&
            m == mt && cc == ct && ino == (unsigned long long)st->st_ino) {
            memcpy(hex, h, 65);
            found = 1;
        }
    }
    free(line);
    fclose(f);
    return found;
}

static void remember(const char *cache, const char *path, const struct stat *st, const char *hex)
{
    if (strchr(path, '\n') || strchr(path, '\t'))
        return;
    int fd = open(cache, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[4400];
    int n = snprintf(line, sizeof line, "%s\t%llu\t%lld\t%lld\t%llu\t%s\n", hex,
                     (unsigned long long)st->st_size,
                     (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
                     (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
                     (unsigned long long)st->st_ino, path);
    if (n > 0 && (size_t)n < sizeof line && flock(fd, LOCK_EX) == 0) {
        ssize_t w = write(fd, line, (size_t)n); /* one append: other runs may add too */
        (void)w;
        flock(fd, LOCK_UN);
    }
    close(fd);
}

vnp_code vnp_file_sha256_cached(const char *path, char hex[65], vnp_error *err)
{
    char abs[4096];
    if (!realpath(path, abs))
        return vnp_fail(err, VNP_EIO, "cannot resolve %s: %s", path, strerror(errno));
    struct stat st;
    if (stat(abs, &st) != 0)
        return vnp_fail(err, VNP_EIO, "cannot stat %s: %s", path, strerror(errno));
    char cache[4200];
    int have_cache = cache_path(cache, sizeof cache);
    if (have_cache && lookup(cache, abs, &st, hex))
        return VNP_OK;
    vnp_digest d;
    vnp_code rc = vnp_hub_digest_file(abs, &d, 0, err);
    if (rc)
        return rc;
    memcpy(hex, d.sha256, 65);
    struct stat after;
    if (have_cache && stat(abs, &after) == 0 && after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
        after.st_mtim.tv_nsec == st.st_mtim.tv_nsec && after.st_ctim.tv_sec == st.st_ctim.tv_sec &&
        after.st_ctim.tv_nsec == st.st_ctim.tv_nsec && after.st_size == st.st_size)
        remember(cache, abs, &st, hex);
    return VNP_OK;
}

vnp_code vnp_file_sha256(const char *path, char hex[65], vnp_error *err)
{
    vnp_digest d;
    vnp_code rc = vnp_hub_digest_file(path, &d, 0, err);
    if (!rc)
        memcpy(hex, d.sha256, 65);
    return rc;
}

vnp_code vnp_sha256_hex(const void *data, size_t n, char hex[65], vnp_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    if (EVP_Digest(data, n, md, &mdn, EVP_sha256(), NULL) != 1 || mdn != 32)
        return vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_hex_lower(md, 32, hex);
    return VNP_OK;
}
