/* Open-addressing hash maps (linear probing, at most half full). */
#include <stdlib.h>
#include <string.h>

#include "tok/maps.h"

static size_t capacity_for(size_t expected, unsigned *log2)
{
    size_t cap = 16;
    unsigned l = 4;
    while (cap < 2 * expected + 2 && cap < ((size_t)1 << 40))
        cap <<= 1, l++;
    if (log2)
        *log2 = l;
    return cap;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int vnp_strmap_init(vnp_strmap *m, size_t expected)
{
    size_t cap = capacity_for(expected, NULL);
    m->slots = calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
    return m->slots ? 0 : -1;
}

static vnp_strmap_slot *strmap_find(const vnp_strmap *m, const char *key, size_t len)
{
    size_t i = (size_t)hash_bytes(key, len) & m->mask;
    for (;;) {
        vnp_strmap_slot *s = &m->slots[i];
        if (!s->key || (s->len == len && !memcmp(s->key, key, len)))
            return s;
        i = (i + 1) & m->mask;
    }
}

static int strmap_grow(vnp_strmap *m)
{
    size_t cap = (m->mask + 1) * 2;
    vnp_strmap old = *m;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) {
        *m = old;
        return -1;
    }
    m->mask = cap - 1;
    for (size_t i = 0; i <= old.mask; i++)
        if (old.slots[i].key)
            *strmap_find(m, old.slots[i].key, old.slots[i].len) = old.slots[i];
    free(old.slots);
    return 0;
}

int vnp_strmap_put(vnp_strmap *m, const char *key, size_t len, int32_t val)
{
    if (2 * (m->count + 1) > m->mask + 1 && strmap_grow(m))
        return -1;
    vnp_strmap_slot *s = strmap_find(m, key, len);
    if (!s->key) {
        char *k = malloc(len + 1);
        if (!k)
            return -1;
        memcpy(k, key, len);
        k[len] = '\0';
        s->key = k;
        s->len = len;
        m->count++;
    }
    s->val = val;
    return 0;
}

int32_t vnp_strmap_get(const vnp_strmap *m, const char *key, size_t len)
{
    const vnp_strmap_slot *s = strmap_find(m, key, len);
    return s->key ? s->val : -1;
}

void vnp_strmap_free(vnp_strmap *m)
{
    if (!m->slots)
        return;
    for (size_t i = 0; i <= m->mask; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

int vnp_pairmap_init(vnp_pairmap *m, size_t expected)
{
    unsigned l;
    size_t cap = capacity_for(expected, &l);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].key = VNP_PAIRMAP_EMPTY;
    m->mask = cap - 1;
    m->shift = 64 - l;
    m->count = 0;
    return 0;
}

static vnp_pairmap_slot *pairmap_find(const vnp_pairmap *m, uint64_t k)
{
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;;) {
        vnp_pairmap_slot *s = &m->slots[i];
        if (s->key == k || s->key == VNP_PAIRMAP_EMPTY)
            return s;
        i = (i + 1) & m->mask;
    }
}

int vnp_pairmap_put(vnp_pairmap *m, int32_t a, int32_t b, vnp_merge val)
{
    if (2 * (m->count + 1) > m->mask + 1) {
        vnp_pairmap old = *m;
        if (vnp_pairmap_init(m, (old.mask + 1)))
            return *m = old, -1;
        for (size_t i = 0; i <= old.mask; i++)
            if (old.slots[i].key != VNP_PAIRMAP_EMPTY) {
                *pairmap_find(m, old.slots[i].key) = old.slots[i];
                m->count++;
            }
        free(old.slots);
    }
    uint64_t k = vnp_pair_key(a, b);
    vnp_pairmap_slot *s = pairmap_find(m, k);
    if (s->key == VNP_PAIRMAP_EMPTY) {
        s->key = k;
        m->count++;
    }
    s->val = val;
    return 0;
}

void vnp_pairmap_free(vnp_pairmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}
