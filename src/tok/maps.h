/* Hash maps of the BPE tokenizer: token string -> id, and id pair -> merge. */
#ifndef VNP_TOK_MAPS_H
#define VNP_TOK_MAPS_H

#include <stddef.h>
#include <stdint.h>

/* String -> id. Keys are copied into the map. */
typedef struct vnp_strmap_slot {
    char *key; /* NULL: empty slot */
    size_t len;
    int32_t val;
} vnp_strmap_slot;

typedef struct vnp_strmap {
    vnp_strmap_slot *slots;
    size_t mask;  /* capacity - 1 (capacity is a power of two) */
    size_t count;
} vnp_strmap;

/* Returns 0, or -1 when out of memory. */
int vnp_strmap_init(vnp_strmap *m, size_t expected);
/* Sets key -> val (replacing an existing value). Returns 0, or -1 when out of memory. */
int vnp_strmap_put(vnp_strmap *m, const char *key, size_t len, int32_t val);
/* The value of key, or -1. */
int32_t vnp_strmap_get(const vnp_strmap *m, const char *key, size_t len);
void vnp_strmap_free(vnp_strmap *m);

/* (left id, right id) -> (rank, merged id). */
typedef struct vnp_merge {
    uint32_t rank;
    int32_t id;
} vnp_merge;

typedef struct vnp_pairmap_slot {
    uint64_t key; /* VNP_PAIRMAP_EMPTY: empty slot */
    vnp_merge val;
} vnp_pairmap_slot;

#define VNP_PAIRMAP_EMPTY UINT64_MAX

typedef struct vnp_pairmap {
    vnp_pairmap_slot *slots;
    size_t mask;
    unsigned shift; /* 64 - log2(capacity) */
    size_t count;
} vnp_pairmap;

int vnp_pairmap_init(vnp_pairmap *m, size_t expected);
/* Sets (a, b) -> val, replacing an existing value (a later merge of the same pair
 * wins, as when `tokenizers` collects its merge map). Returns 0 or -1 (no memory). */
int vnp_pairmap_put(vnp_pairmap *m, int32_t a, int32_t b, vnp_merge val);
void vnp_pairmap_free(vnp_pairmap *m);

static inline uint64_t vnp_pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* The merge of (a, b), or NULL. */
static inline const vnp_merge *vnp_pairmap_get(const vnp_pairmap *m, int32_t a, int32_t b)
{
    uint64_t k = vnp_pair_key(a, b);
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ull) >> m->shift);
    for (;;) {
        const vnp_pairmap_slot *s = &m->slots[i];
        if (s->key == k)
            return &s->val;
        if (s->key == VNP_PAIRMAP_EMPTY)
            return NULL;
        i = (i + 1) & m->mask;
    }
}

#endif
