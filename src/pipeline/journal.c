/* The resume journal of predict: a small text file replaced atomically. */
#include "pipeline/journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAGIC "virnucpro predict journal 1\n"

vnp_code vnp_journal_describe(const vnp_predict_options *o, vnp_journal *j, vnp_error *err)
{
    memset(j, 0, sizeof *j);
    if (!strcmp(o->input, "-"))
        return vnp_fail(err, VNP_EUNSUPPORTED, "a run reading stdin cannot be resumed");
    struct stat st;
    if (stat(o->input, &st) != 0)
        return vnp_fail(err, VNP_EIO, "cannot stat %s: %s", o->input, strerror(errno));
    int n = snprintf(j->run, sizeof j->run,
                     "input=%s size=%lld mtime=%lld.%09ld length=%d esm=%s dnabert=%s "
                     "classifier=%s embeddings=%d intermediate=%d",
                     o->input, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, o->chunk_len, o->esm, o->dnabert, o->classifier,
                     o->embeddings, o->keep_intermediate);
    if (n < 0 || (size_t)n >= sizeof j->run || strchr(j->run, '\n'))
        return vnp_fail(err, VNP_EUNSUPPORTED, "paths too long or with line breaks to journal");
    return VNP_OK;
}

vnp_code vnp_journal_write(const char *path, const vnp_journal *j, vnp_error *err)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fprintf(f, MAGIC "run %s\nrecords %" PRIu64 "\nresults %" PRIu64
                               "\nsequences %" PRIu64 "\n",
                            j->run, j->records, j->results_bytes, j->sequences_bytes) < 0;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad || rename(tmp, path) != 0) {
        vnp_code rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    return VNP_OK;
}

vnp_code vnp_journal_read(const char *path, vnp_journal *j, vnp_error *err)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return vnp_fail(err, VNP_ENOTFOUND, "no journal %s", path);
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    char line[sizeof j->run + 16];
    int ok = fgets(line, sizeof line, f) && !strcmp(line, MAGIC) && fgets(line, sizeof line, f) &&
             !strncmp(line, "run ", 4);
    if (ok) {
        line[strcspn(line, "\n")] = 0;
        snprintf(j->run, sizeof j->run, "%s", line + 4);
        ok = fscanf(f, "records %" SCNu64 " results %" SCNu64 " sequences %" SCNu64, &j->records,
                    &j->results_bytes, &j->sequences_bytes) == 3;
    }
    fclose(f);
    if (!ok)
        return vnp_fail(err, VNP_EFORMAT, "%s is not a predict journal (or is damaged); remove it "
                        "to start over", path);
    return VNP_OK;
}
