/* sequences.tsv: one verdict per input sequence from its chunks' calls, and the
 * per-chunk call itself (the rule the derived outputs share). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "virnucpro/pipeline.h"

int vnp_chunk_viral(const vnp_chunk_score *s, float min_score)
{
    if (s->frames == 0)
        return 0;
    return min_score < 0 ? s->max_virus >= s->max_others : s->max_virus >= min_score;
}

const char *vnp_chunk_call(const vnp_chunk_score *s, float min_score)
{
    if (s->frames == 0)
        return "unscored";
    return vnp_chunk_viral(s, min_score) ? "virus" : "others";
}

void vnp_seq_tally_begin(vnp_seq_tally *t, size_t length, size_t chunks)
{
    memset(t, 0, sizeof *t);
    t->length = length;
    t->chunks = chunks;
    t->max_virus = -INFINITY;
}

void vnp_seq_tally_add(vnp_seq_tally *t, const vnp_chunk_score *s, int viral)
{
    if (s->frames == 0)
        return;
    t->chunks_scored++;
    t->chunks_viral += viral ? 1 : 0;
    if (s->max_virus > t->max_virus)
        t->max_virus = s->max_virus;
}

const char *vnp_seq_tally_verdict(const vnp_seq_tally *t)
{
    if (t->chunks_scored == 0)
        return "unscored";
    return 2 * t->chunks_viral >= t->chunks_scored ? "virus" : "others";
}

vnp_code vnp_sequences_write_header(FILE *f, const char *path, vnp_error *err)
{
    if (fputs("Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\tMax_virus_score\t"
              "Verdict\n",
              f) < 0)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
    return VNP_OK;
}

vnp_code vnp_sequences_write_row(FILE *f, const char *path, const char *id, size_t id_len,
                                 const vnp_seq_tally *t, vnp_error *err)
{
    char score[VNP_F32_STR_MAX] = "NA";
    if (t->chunks_scored > 0)
        vnp_format_f32(t->max_virus, score);
    if (fwrite(id, 1, id_len, f) != id_len ||
        fprintf(f, "\t%zu\t%zu\t%zu\t%zu\t%s\t%s\n", t->length, t->chunks, t->chunks_scored,
                t->chunks_viral, score, vnp_seq_tally_verdict(t)) < 0)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s", path, strerror(errno));
    return VNP_OK;
}
