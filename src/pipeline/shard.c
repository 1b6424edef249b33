/* predict --shard I/N: the record selection and the shard record (shard.txt). */
#include "pipeline/shard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/pipeline.h"

#define MAGIC "virnucpro shard 1\n"

int vnp_shard_takes(uint64_t index0, unsigned index, unsigned count)
{
    return count == 0 || index0 % count == (uint64_t)(index - 1);
}

uint64_t vnp_shard_size(uint64_t total, unsigned index, unsigned count)
{
    if (count == 0)
        return total;
    uint64_t first = index - 1;
    return total > first ? (total - first + count - 1) / count : 0;
}

vnp_code vnp_shard_parse(const char *spec, unsigned *index, unsigned *count, vnp_error *err)
{
    unsigned long i = 0, n = 0;
    char *end = NULL;
    errno = 0;
    if (spec && *spec >= '0' && *spec <= '9')
        i = strtoul(spec, &end, 10);
    if (end && *end == '/' && end[1] >= '0' && end[1] <= '9')
        n = strtoul(end + 1, &end, 10);
    else
        end = NULL;
    if (!end || *end || errno || n < 1 || n > 1000000 || i < 1 || i > n)
        return vnp_fail(err, VNP_EINVAL,
                        "--shard expects I/N with 1 <= I <= N <= 1000000 (this job's part of N, "
                        "e.g. --shard 2/8 or --shard $SLURM_ARRAY_TASK_ID/8), got '%s'",
                        spec ? spec : "");
    *index = (unsigned)i;
    *count = (unsigned)n;
    return VNP_OK;
}

vnp_code vnp_shard_record_write(const char *path, const vnp_shard_record *r, vnp_error *err)
{
    FILE *f = fopen(path, "w");
    int bad = !f;
    if (!bad)
        bad = fprintf(f,
                      MAGIC "shard %u/%u\nrecords %" PRIu64 "\ninput_records %" PRIu64
                            "\ninput_sha256 %s\n",
                      r->index, r->count, r->records, r->input_records, r->input_sha256) < 0;
    for (int i = 0; !bad && i < r->nident; i++)
        bad = fprintf(f, "ident %s %s\n", r->ident[i].key, r->ident[i].value) < 0;
    if (!bad)
        bad = fputs("end\n", f) < 0;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", path,
                        strerror(errno));
    return VNP_OK;
}

vnp_code vnp_shard_record_read(const char *path, vnp_shard_record *r, vnp_error *err)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return vnp_fail(err, VNP_ENOTFOUND, "no %s", path);
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    int ok = got > 0 && !strcmp(line, MAGIC), end = 0, have = 0;
    while (ok && !end && (got = getline(&line, &cap, f)) > 0) {
        line[strcspn(line, "\n")] = 0;
        char sha[80];
        if (!strncmp(line, "ident ", 6)) {
            char *key = line + 6, *sp = strchr(key, ' ');
            ok = sp && r->nident < VNP_JOURNAL_IDENT_MAX && (size_t)(sp - key) < 32 &&
                 strlen(sp + 1) < sizeof r->ident[0].value;
            if (ok) {
                *sp = 0;
                snprintf(r->ident[r->nident].key, sizeof r->ident[0].key, "%s", key);
                snprintf(r->ident[r->nident].value, sizeof r->ident[0].value, "%s", sp + 1);
                r->nident++;
            }
        } else if (sscanf(line, "shard %u/%u", &r->index, &r->count) == 2) {
            have |= 1;
        } else if (sscanf(line, "records %" SCNu64, &r->records) == 1) {
            have |= 2;
        } else if (sscanf(line, "input_records %" SCNu64, &r->input_records) == 1) {
            have |= 4;
        } else if (sscanf(line, "input_sha256 %79s", sha) == 1 && strlen(sha) == 64) {
            memcpy(r->input_sha256, sha, 65);
            have |= 8;
        } else if (!strcmp(line, "end")) {
            end = 1;
        } else {
            ok = 0;
        }
    }
    free(line);
    fclose(f);
    if (!ok || !end || have != 15 || r->count < 1 || r->index < 1 || r->index > r->count ||
        r->records != vnp_shard_size(r->input_records, r->index, r->count))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s is not a shard record of this version (or is damaged); run that "
                        "shard's predict again",
                        path);
    return VNP_OK;
}

const char *vnp_shard_ident(const vnp_shard_record *r, const char *key)
{
    for (int i = 0; i < r->nident; i++)
        if (!strcmp(r->ident[i].key, key))
            return r->ident[i].value;
    return NULL;
}
