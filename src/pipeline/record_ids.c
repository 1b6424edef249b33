/* Duplicate record IDs renamed "<id>_dup<k>" (record_ids.h). */
#include "pipeline/record_ids.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vnp_record_ids_init(vnp_record_ids *t) { memset(t, 0, sizeof *t); }

void vnp_record_ids_free(vnp_record_ids *t)
{
    free(t->seen);
    free(t->seen_count);
    free(t->renamed);
    memset(t, 0, sizeof *t);
}

static uint64_t id_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1; /* 0 marks an empty slot */
}

/* Returns how many times this ID was seen before (0 the first time); -1 out of memory. */
static long count_id(vnp_record_ids *s, const char *id, size_t n)
{
    if (2 * (s->seen_n + 1) > s->seen_cap) {
        size_t cap = s->seen_cap ? 2 * s->seen_cap : 1024;
        uint64_t *t = calloc(cap, sizeof *t);
        uint32_t *c = calloc(cap, sizeof *c);
        if (!t || !c) {
            free(t);
            free(c);
            return -1;
        }
        for (size_t i = 0; i < s->seen_cap; i++)
            if (s->seen[i]) {
                size_t k = s->seen[i] & (cap - 1);
                while (t[k])
                    k = (k + 1) & (cap - 1);
                t[k] = s->seen[i];
                c[k] = s->seen_count[i];
            }
        free(s->seen);
        free(s->seen_count);
        s->seen = t;
        s->seen_count = c;
        s->seen_cap = cap;
    }
    uint64_t h = id_hash(id, n);
    size_t k = h & (s->seen_cap - 1);
    while (s->seen[k] && s->seen[k] != h)
        k = (k + 1) & (s->seen_cap - 1);
    if (!s->seen[k]) {
        s->seen[k] = h;
        s->seen_n++;
    }
    return (long)s->seen_count[k]++;
}

vnp_code vnp_record_ids_dedup(vnp_record_ids *s, vnp_record *rec, vnp_error *err)
{
    s->records++;
    long before = count_id(s, rec->id, rec->id_len);
    if (before < 0)
        return vnp_fail(err, VNP_ENOMEM, "out of memory tracking record IDs");
    if (before == 0)
        return VNP_OK;
    if (s->dups++ == 0) {
        snprintf(s->first_dup, sizeof s->first_dup, "%.*s", (int)rec->id_len, rec->id);
        s->first_dup_record = s->records;
    }
    size_t need = rec->id_len + 32;
    if (need > s->renamed_cap) {
        char *r = realloc(s->renamed, need);
        if (!r)
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        s->renamed = r;
        s->renamed_cap = need;
    }
    int n = snprintf(s->renamed, need, "%.*s_dup%ld", (int)rec->id_len, rec->id, before + 1);
    rec->id = s->renamed;
    rec->id_len = (size_t)n;
    return VNP_OK;
}

vnp_code vnp_record_hash(EVP_MD_CTX *sha, const vnp_record *rec, vnp_error *err)
{
    uint64_t n[2] = {rec->id_len, rec->len};
    if (EVP_DigestUpdate(sha, n, sizeof n) != 1 || EVP_DigestUpdate(sha, rec->id, rec->id_len) != 1 ||
        EVP_DigestUpdate(sha, rec->seq, rec->len) != 1)
        return vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed");
    return VNP_OK;
}
