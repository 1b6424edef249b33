/* File digests with OpenSSL EVP: SHA-256 (what the hub reports for LFS files and
 * what the manifest records) and the git blob SHA-1 (the id of a non-LFS file on
 * the hub and of any file in a git repository), both in one read of the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "hub/hub_internal.h"
#include "virnucpro/hub.h"

int vnp_hub_is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

void vnp_hex_lower(const unsigned char *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

vnp_code vnp_hub_digest_file(const char *path, vnp_digest *d, int want_git_sha1, vnp_error *err)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return vnp_fail(err, VNP_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    EVP_MD_CTX *s256 = EVP_MD_CTX_new(), *s1 = want_git_sha1 ? EVP_MD_CTX_new() : NULL;
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    vnp_code rc = VNP_OK;
    if (!s256 || (want_git_sha1 && !s1) || !buf) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory hashing %s", path);
        goto done;
    }
    char hdr[64];
    int hn = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)st.st_size);
    if (EVP_DigestInit_ex(s256, EVP_sha256(), NULL) != 1 ||
        (s1 && (EVP_DigestInit_ex(s1, EVP_sha1(), NULL) != 1 ||
                EVP_DigestUpdate(s1, hdr, (size_t)hn + 1) != 1))) { /* header with its NUL */
        rc = vnp_fail(err, VNP_EIO, "OpenSSL digest initialisation failed for %s", path);
        goto done;
    }
    uint64_t total = 0;
    for (;;) {
        size_t n = fread(buf, 1, cap, f);
        if (n > 0 && (EVP_DigestUpdate(s256, buf, n) != 1 ||
                      (s1 && EVP_DigestUpdate(s1, buf, n) != 1))) {
            rc = vnp_fail(err, VNP_EIO, "OpenSSL digest update failed for %s", path);
            goto done;
        }
        total += n;
        if (n < cap) {
            if (ferror(f)) {
                rc = vnp_fail(err, VNP_EIO, "read error in %s: %s", path, strerror(errno));
                goto done;
            }
            break;
        }
    }
    if (total != (uint64_t)st.st_size) {
        rc = vnp_fail(err, VNP_EIO, "%s changed size while it was being hashed", path);
        goto done;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    if (EVP_DigestFinal_ex(s256, md, &mdn) != 1 || mdn != 32) {
        rc = vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed for %s", path);
        goto done;
    }
    vnp_hex_lower(md, mdn, d->sha256);
    if (s1) {
        if (EVP_DigestFinal_ex(s1, md, &mdn) != 1 || mdn != 20) {
            rc = vnp_fail(err, VNP_EIO, "OpenSSL SHA-1 failed for %s", path);
            goto done;
        }
        vnp_hex_lower(md, mdn, d->git_sha1);
    }
    d->size = total;
done:
    free(buf);
    EVP_MD_CTX_free(s256);
    EVP_MD_CTX_free(s1);
    fclose(f);
    return rc;
}
