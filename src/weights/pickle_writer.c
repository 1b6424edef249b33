/* Pickle protocol 2 opcodes, as CPython's pickler writes them. */
#include <stdlib.h>
#include <string.h>

#include "weights/pickle_writer.h"

static void put(vnp_pkw *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n)
            cap *= 2;
        unsigned char *b = realloc(w->b, cap);
        if (!b) {
            w->failed = 1;
            return;
        }
        w->b = b;
        w->cap = cap;
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put_u8(vnp_pkw *w, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(w, &c, 1);
}

static void put_le(vnp_pkw *w, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        put_u8(w, (unsigned)(v >> (8 * i)) & 0xff);
}

void vnp_pkw_free(vnp_pkw *w)
{
    free(w->b);
    memset(w, 0, sizeof *w);
}

int vnp_pkw_ok(const vnp_pkw *w) { return !w->failed; }
void vnp_pkw_op(vnp_pkw *w, unsigned char op) { put_u8(w, op); }

void vnp_pkw_proto(vnp_pkw *w)
{
    put_u8(w, 0x80);
    put_u8(w, 2);
}

void vnp_pkw_stop(vnp_pkw *w) { put_u8(w, '.'); }

void vnp_pkw_global(vnp_pkw *w, const char *module, const char *name)
{
    put_u8(w, 'c');
    put(w, module, strlen(module));
    put_u8(w, '\n');
    put(w, name, strlen(name));
    put_u8(w, '\n');
}

void vnp_pkw_str(vnp_pkw *w, const char *s)
{
    size_t n = strlen(s);
    put_u8(w, 'X');
    put_le(w, n, 4);
    put(w, s, n);
}

void vnp_pkw_int(vnp_pkw *w, int64_t v)
{
    if (v >= 0 && v < 256) {
        put_u8(w, 'K'); /* BININT1 */
        put_u8(w, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        put_u8(w, 'M'); /* BININT2 */
        put_le(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        put_u8(w, 'J'); /* BININT */
        put_le(w, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        put_u8(w, 0x8a); /* LONG1, 8 bytes two's complement */
        put_u8(w, 8);
        put_le(w, (uint64_t)v, 8);
    }
}

void vnp_pkw_float(vnp_pkw *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u8(w, 'G'); /* BINFLOAT: big-endian IEEE double */
    for (int i = 7; i >= 0; i--)
        put_u8(w, (unsigned)(u >> (8 * i)) & 0xff);
}

void vnp_pkw_bool(vnp_pkw *w, int v) { put_u8(w, v ? 0x88 : 0x89); }
void vnp_pkw_none(vnp_pkw *w) { put_u8(w, 'N'); }
