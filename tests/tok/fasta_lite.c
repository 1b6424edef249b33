/* A minimal FASTA reader for the tokenizer tests. */
#include "fasta_lite.h"

#include <stdlib.h>
#include <string.h>

#include "test_support.h"

int fasta_lite_read(const char *path, fasta_rec **out)
{
    size_t len;
    char *data = vnp_test_read_file(path, &len);
    if (!data)
        return -1;
    int n = 0, cap = 0;
    fasta_rec *recs = NULL;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        if (line[0] == '>') {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                recs = realloc(recs, (size_t)cap * sizeof *recs);
            }
            size_t idl = strcspn(line + 1, " \t");
            recs[n].id = strndup(line + 1, idl);
            recs[n].seq = calloc(1, 1);
            recs[n].len = 0;
            n++;
        } else if (n > 0) {
            fasta_rec *r = &recs[n - 1];
            r->seq = realloc(r->seq, r->len + l + 1);
            memcpy(r->seq + r->len, line, l + 1);
            r->len += l;
        }
    }
    free(data);
    *out = recs;
    return n;
}

void fasta_lite_free(fasta_rec *recs, int n)
{
    for (int i = 0; i < n; i++) {
        free(recs[i].id);
        free(recs[i].seq);
    }
    free(recs);
}
