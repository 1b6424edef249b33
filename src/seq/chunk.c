/* Chunk plan: the original VirNucPro rule for cutting a sequence into
 * fixed-size, overlapping chunks (see include/virnucpro/seq.h). */
#include "virnucpro/seq.h"

size_t vnp_chunk_count(size_t len, size_t chunk)
{
    if (chunk == 0)
        return 0;
    return len / chunk + (len % chunk != 0);
}

/* The overlap to take back, R, is shared as shifts: the first `need` chunks
 * move the following ones back by lo+1, the rest by lo. */
typedef struct shift_rule {
    size_t lo, need;
} shift_rule;

static shift_rule rule_for(size_t len, size_t chunk, size_t n)
{
    size_t overlap = n * chunk - len;
    shift_rule s;
    s.lo = overlap / n;
    s.need = overlap - s.lo * (n - 1);
    return s;
}

static vnp_chunk clip(size_t start, size_t len, size_t chunk)
{
    vnp_chunk c;
    c.start = start;
    c.len = start + chunk <= len ? chunk : len - start;
    return c;
}

vnp_chunk vnp_chunk_at(size_t len, size_t chunk, size_t i)
{
    size_t n = vnp_chunk_count(len, chunk);
    shift_rule s = rule_for(len, chunk, n);
    /* Shifts of chunks 0..i-1: min(i, need) of lo+1, the others lo. */
    size_t big = i < s.need ? i : s.need;
    size_t back = big * (s.lo + 1) + (i - big) * s.lo;
    return clip(i * chunk - back, len, chunk);
}

size_t vnp_chunk_plan(size_t len, size_t chunk, vnp_chunk *out)
{
    size_t n = vnp_chunk_count(len, chunk);
    if (n == 0)
        return 0;
    shift_rule s = rule_for(len, chunk, n);
    size_t back = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = clip(i * chunk - back, len, chunk);
        back += i < s.need ? s.lo + 1 : s.lo;
    }
    return n;
}
