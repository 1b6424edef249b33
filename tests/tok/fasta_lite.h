/* A minimal FASTA reader for the tokenizer tests, so that they do not depend on
 * the seq stage: whole file in memory, records as (id, sequence) pairs. */
#ifndef VNP_TEST_FASTA_LITE_H
#define VNP_TEST_FASTA_LITE_H

#include <stddef.h>

typedef struct fasta_rec {
    char *id;
    char *seq;
    size_t len;
} fasta_rec;

/* Returns the number of records (malloc'd array in *out), or -1 when the file
 * cannot be read. */
int fasta_lite_read(const char *path, fasta_rec **out);
void fasta_lite_free(fasta_rec *recs, int n);

#endif
