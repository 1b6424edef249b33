/* sequences.tsv: one verdict per input sequence from its chunks' calls. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "virnucpro/pipeline.h"

void vnp_seq_tally_begin(vnp_seq_tally *t, size_t length, size_t chunks)
{
    memset(t, 0, sizeof *t);
    t->length = length;
    t->chunks = chunks;
    t->max_virus = -INFINITY;
}

static void close_chunk(vnp_seq_tally *t)
{
    if (!t->cur_open)
        return;
    t->chunks_scored++;
    if (t->cur_max2 >= t->cur_max1)
        t->chunks_viral++;
    t->cur_open = 0;
}

void vnp_seq_tally_add(vnp_seq_tally *t, size_t chunk, float p_others, float p_virus)
{
    if (t->cur_open && chunk != t->cur_chunk)
        close_chunk(t);
    if (!t->cur_open) {
        t->cur_open = 1;
        t->cur_chunk = chunk;
        t->cur_max1 = p_others;
        t->cur_max2 = p_virus;
    } else {
        if (p_others > t->cur_max1)
            t->cur_max1 = p_others;
        if (p_virus > t->cur_max2)
            t->cur_max2 = p_virus;
    }
    if (p_virus > t->max_virus)
        t->max_virus = p_virus;
}

void vnp_seq_tally_end(vnp_seq_tally *t) { close_chunk(t); }

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
