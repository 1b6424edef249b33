/* Tokenizer throughput on one core: bench_tok TOKENIZER_JSON [FASTA ...]
 *
 * Without FASTA files it tokenizes 32 MiB of random ACGT in 3000-base records;
 * with them, every record of each file (gzip allowed) cut into 500-base chunks,
 * the longest ORF nucleotide strings the pipeline tokenizes. Reports MB/s of
 * input for DNABERT-S BPE, and for the ESM-2 alphabet on random proteins.
 * Times are the thread's CPU time (one core; robust on a shared machine), best
 * of at least three passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fasta_lite.h"
#include "test_support.h"
#include "virnucpro/tok.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct piece {
    const char *s;
    size_t n;
} piece;

/* Tokenizes every piece, repeated until at least a second has passed; best pass. */
static void run(const char *label, const vnp_bpe *bpe, const piece *p, size_t np)
{
    size_t bytes = 0;
    for (size_t i = 0; i < np; i++)
        bytes += p[i].n;
    vnp_ids ids = {0};
    double best = 1e30, t_all = 0;
    size_t tokens = 0;
    for (int rep = 0; rep < 20 && (rep < 3 || t_all < 1.0); rep++) {
        tokens = 0;
        double t0 = now();
        for (size_t i = 0; i < np; i++) {
            ids.n = 0;
            vnp_error err;
            vnp_code c = bpe ? vnp_bpe_encode(bpe, p[i].s, p[i].n, &ids, &err)
                             : vnp_esm_encode(p[i].s, p[i].n, &ids, &err);
            if (c) {
                fprintf(stderr, "%s\n", err.msg);
                exit(1);
            }
            tokens += ids.n;
        }
        double t = now() - t0;
        t_all += t;
        if (t < best)
            best = t;
    }
    printf("%-40s %10zu bytes %9zu tokens  %8.1f MB/s  %6.2f Mtokens/s\n", label, bytes, tokens,
           (double)bytes / best / 1e6, (double)tokens / best / 1e6);
    vnp_ids_free(&ids);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tok TOKENIZER_JSON [FASTA ...]\n");
        return 2;
    }
    vnp_bpe *bpe;
    vnp_error err;
    if (vnp_bpe_load(argv[1], &bpe, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const size_t total = 32u << 20, rec = 3000;
    char *dna = malloc(total);
    piece *p = malloc((total / 1000 + 1) * sizeof *p); /* room for the 1000-residue proteins too */
    size_t np = 0;
    for (size_t i = 0; i < total; i++)
        dna[i] = "ACGT"[xorshift() & 3];
    for (size_t off = 0; off + rec <= total; off += rec)
        p[np++] = (piece){dna + off, rec};
    run("DNABERT-S BPE, random 3000-base records", bpe, p, np);

    for (int a = 2; a < argc; a++) {
        fasta_rec *recs;
        int n = fasta_lite_read(argv[a], &recs);
        if (n < 0) {
            fprintf(stderr, "cannot read %s\n", argv[a]);
            return 1;
        }
        size_t nc = 0;
        for (int i = 0; i < n; i++)
            nc += (recs[i].len + 499) / 500;
        piece *c = malloc((nc + 1) * sizeof *c);
        nc = 0;
        for (int i = 0; i < n; i++)
            for (size_t off = 0; off < recs[i].len; off += 500)
                c[nc++] = (piece){recs[i].seq + off,
                                  recs[i].len - off < 500 ? recs[i].len - off : 500};
        char label[64];
        const char *base = strrchr(argv[a], '/');
        snprintf(label, sizeof label, "DNABERT-S BPE, %s in 500-base chunks",
                 base ? base + 1 : argv[a]);
        run(label, bpe, c, nc);
        free(c);
        fasta_lite_free(recs, n);
    }

    static const char aa[] = "LAGVSERTIDPKQNFYMHWC";
    for (size_t i = 0; i < total; i++)
        dna[i] = aa[xorshift() % 20];
    np = 0;
    for (size_t off = 0; off + 1000 <= total; off += 1000)
        p[np++] = (piece){dna + off, 1000};
    run("ESM-2 alphabet, random 1000-residue proteins", NULL, p, np);
    free(p);
    free(dna);
    vnp_bpe_free(bpe);
    return 0;
}
