/* Six-frame translation of a chunk, keeping the frames whose protein is
 * non-empty and stop-free, as VirNucPro selects them. */
#include "virnucpro/seq.h"

#include <stdlib.h>
#include <string.h>

/* Standard genetic code, codons indexed 16*b1 + 4*b2 + b3 with T=0 C=1 A=2 G=3. */
static const char k_code[65] = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG";

typedef struct frame_tables {
    unsigned char upper[256];
    unsigned char comp[256]; /* on upper-case input: A<->T, C<->G, others unchanged */
    unsigned char base[256]; /* 0..3 for T C A G, 4 for anything else */
} frame_tables;

static frame_tables g_t;
static int g_t_ready;

static void tables_init(void)
{
    if (g_t_ready)
        return;
    for (int c = 0; c < 256; c++) {
        g_t.upper[c] = (unsigned char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        g_t.comp[c] = (unsigned char)c;
        g_t.base[c] = 4;
    }
    g_t.comp['A'] = 'T';
    g_t.comp['T'] = 'A';
    g_t.comp['C'] = 'G';
    g_t.comp['G'] = 'C';
    g_t.base['T'] = 0;
    g_t.base['C'] = 1;
    g_t.base['A'] = 2;
    g_t.base['G'] = 3;
    g_t_ready = 1;
}

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

/* Translates strand from offset off; codons with a base outside ACGT add
 * nothing. Returns the protein length, or -1 at the first stop codon. */
static long translate(const unsigned char *s, size_t len, size_t off, char *prot)
{
    const unsigned char *b = g_t.base;
    size_t p = 0;
    for (size_t i = off; i + 3 <= len; i += 3) {
        unsigned x = b[s[i]], y = b[s[i + 1]], z = b[s[i + 2]];
        if ((x | y | z) & 4)
            continue;
        char aa = k_code[x * 16 + y * 4 + z];
        if (aa == '*')
            return -1;
        prot[p++] = aa;
    }
    return (long)p;
}

vnp_code vnp_six_frames(const char *chunk, size_t len, vnp_frames *out, vnp_error *err)
{
    tables_init();
    out->n = 0;
    size_t prot_cap = len / 3 + 1, nuc_cap = len + 2;
    size_t need = 2 * (len + 1) + 6 * (prot_cap + nuc_cap);
    if (need > out->cap) {
        char *nb = realloc(out->buf, need);
        if (!nb)
            return vnp_fail(err, VNP_ENOMEM, "out of memory translating a %zu-base chunk", len);
        out->buf = nb;
        out->cap = need;
    }
    unsigned char *up = (unsigned char *)out->buf;
    unsigned char *rc = up + len + 1;
    char *work = (char *)rc + len + 1;
    const unsigned char *in = (const unsigned char *)chunk;
    for (size_t i = 0; i < len; i++) {
        unsigned char u = g_t.upper[in[i]];
        up[i] = u;
        rc[len - 1 - i] = g_t.comp[u];
    }
    up[len] = rc[len] = '\0';

    for (int f = 0; f < 6; f++) {
        const unsigned char *strand = f < 3 ? up : rc;
        size_t off = (size_t)(f % 3);
        char *prot = work;
        long p = translate(strand, len, off, prot);
        if (p <= 0)
            continue;
        /* The original keeps strand[k-1 : k+3p] for frame k: one base more than
         * the translated codons, clipped at the end of the chunk. */
        size_t end = off + 1 + 3 * (size_t)p;
        if (end > len)
            end = len;
        char *nuc = prot + p + 1;
        prot[p] = '\0';
        memcpy(nuc, strand + off, end - off);
        nuc[end - off] = '\0';
        vnp_frame *fr = &out->frame[out->n++];
        fr->frame = f;
        fr->protein = prot;
        fr->protein_len = (size_t)p;
        fr->nucleotide = nuc;
        fr->nucleotide_len = end - off;
        work = nuc + (end - off) + 1;
    }
    return VNP_OK;
}
