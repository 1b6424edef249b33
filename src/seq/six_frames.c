/* Six-frame translation of a chunk, keeping the frames whose protein is
 * non-empty and stop-free, as VirNucPro selects them. */
#include "virnucpro/seq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Standard genetic code, codons indexed 16*b1 + 4*b2 + b3 with T=0 C=1 A=2 G=3. */
static const char k_code[65] = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG";

/* Base codes T=0 C=1 A=2 G=3 (either case), 4 for anything else. On this coding
 * the complement of a base is code ^ 2, and an invalid code stays >= 4. */
typedef struct frame_tables {
    unsigned char upper[256];
    unsigned char comp_upper[256]; /* complement of the upper-cased base: only ACGT change */
    unsigned char base[256];
} frame_tables;

static frame_tables g_t;
static pthread_once_t g_t_once = PTHREAD_ONCE_INIT;

static void tables_build(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char u = (unsigned char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        g_t.upper[c] = u;
        g_t.comp_upper[c] = u;
        g_t.base[c] = 4;
    }
    static const char bases[4] = {'T', 'C', 'A', 'G'};
    for (int k = 0; k < 4; k++) {
        unsigned char up = (unsigned char)bases[k], lo = (unsigned char)(bases[k] + 32);
        unsigned char comp = (unsigned char)bases[k ^ 2];
        g_t.base[up] = g_t.base[lo] = (unsigned char)k;
        g_t.comp_upper[up] = g_t.comp_upper[lo] = comp;
    }
}

/* Safe from any number of threads. */
static void tables_init(void) { pthread_once(&g_t_once, tables_build); }

void vnp_frames_init(vnp_frames *f)
{
    memset(f, 0, sizeof *f);
    tables_init();
}

void vnp_frames_free(vnp_frames *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const char *vnp_frame_name(int frame)
{
    static const char *const names[6] = {"F1", "F2", "F3", "R1", "R2", "R3"};
    return frame >= 0 && frame < 6 ? names[frame] : "?";
}

/* Translates frame f (0..5) of s; codons with a base outside ACGT add nothing.
 * Reverse frames read the reverse complement in place: position i of the
 * reverse strand is s[len-1-i] complemented. Returns the protein length, or -1
 * at the first stop codon (the frame is dropped, so translation stops there). */
static long translate(const unsigned char *s, size_t len, int f, char *prot)
{
    const unsigned char *b = g_t.base;
    size_t off = (size_t)(f % 3), p = 0;
    if (f < 3) {
        for (size_t i = off; i + 3 <= len; i += 3) {
            unsigned x = b[s[i]], y = b[s[i + 1]], z = b[s[i + 2]];
            if ((x | y | z) & 4)
                continue;
            char aa = k_code[x * 16 + y * 4 + z];
            if (aa == '*')
                return -1;
            prot[p++] = aa;
        }
    } else {
        for (size_t i = off; i + 3 <= len; i += 3) {
            const unsigned char *q = s + (len - 1 - i);
            unsigned x = b[q[0]] ^ 2, y = b[q[-1]] ^ 2, z = b[q[-2]] ^ 2;
            if ((x | y | z) & 4)
                continue;
            char aa = k_code[x * 16 + y * 4 + z];
            if (aa == '*')
                return -1;
            prot[p++] = aa;
        }
    }
    return (long)p;
}

/* dst = upper(src[0..n)). */
static void copy_upper(char *restrict dst, const unsigned char *restrict src, size_t n)
{
    const unsigned char *restrict t = g_t.upper;
    for (size_t j = 0; j < n; j++)
        dst[j] = (char)t[src[j]];
}

/* dst = reverse complement of upper(src[0..n)), complementing only ACGT. */
static void copy_revcomp(char *restrict dst, const unsigned char *restrict src, size_t n)
{
    const unsigned char *restrict t = g_t.comp_upper;
    for (size_t j = 0; j < n; j++)
        dst[j] = (char)t[src[n - 1 - j]];
}

vnp_code vnp_six_frames(const char *chunk, size_t len, vnp_frames *out, vnp_error *err)
{
    tables_init();
    out->n = 0;
    size_t prot_cap = len / 3 + 1, nuc_cap = len + 2;
    size_t need = 6 * (prot_cap + nuc_cap);
    if (need > out->cap) {
        char *nb = realloc(out->buf, need);
        if (!nb)
            return vnp_fail(err, VNP_ENOMEM, "out of memory translating a %zu-base chunk", len);
        out->buf = nb;
        out->cap = need;
    }
    const unsigned char *in = (const unsigned char *)chunk;
    char *work = out->buf;
    for (int f = 0; f < 6; f++) {
        char *prot = work;
        long p = translate(in, len, f, prot);
        if (p <= 0)
            continue;
        /* The original keeps strand[k-1 : k+3p] of the upper-cased strand for
         * frame k: one base more than the translated codons, clipped at the end. */
        size_t off = (size_t)(f % 3), end = off + 1 + 3 * (size_t)p;
        if (end > len)
            end = len;
        size_t m = end - off;
        char *nuc = prot + p + 1;
        prot[p] = '\0';
        if (f < 3)
            copy_upper(nuc, in + off, m);
        else
            copy_revcomp(nuc, in + (len - off - m), m);
        nuc[m] = '\0';
        vnp_frame *fr = &out->frame[out->n++];
        fr->frame = f;
        fr->protein = prot;
        fr->protein_len = (size_t)p;
        fr->nucleotide = nuc;
        fr->nucleotide_len = m;
        work = nuc + m + 1;
    }
    return VNP_OK;
}
