/* record -> chunk -> six frames -> kept frames -> token ids: the one path by which
 * predict and validate-precision turn a sequence into the items they embed. */
#include <stdio.h>
#include <string.h>

#include "pipeline/predict_internal.h"

static vnp_code add_frame(vnp_window *w, const vnp_bpe *bpe, const vnp_record *rec, size_t chunk,
                          const vnp_frame *f, vnp_error *err)
{
    vnp_win_orf *o;
    vnp_code rc = vnp_window_add_orf(w, &o, err);
    if (rc)
        return rc;
    char suffix[48];
    int n = snprintf(suffix, sizeof suffix, "_chunk_%zu%s", chunk + 1, vnp_frame_name(f->frame));
    o->chunk = chunk;
    size_t unused;
    if ((rc = vnp_window_text(w, rec->id, rec->id_len, &o->id_off, err)) ||
        (rc = vnp_window_text(w, suffix, (size_t)n, &unused, err)))
        return rc;
    o->id_len = rec->id_len + (size_t)n;
    o->dna_off = w->dna.n;
    if (bpe && (rc = vnp_bpe_encode(bpe, f->nucleotide, f->nucleotide_len, &w->dna, err))) {
        vnp_error_prefix(err, "tokenizing the DNA of %.*s: ", (int)o->id_len, w->text + o->id_off);
        return rc;
    }
    o->dna_len = w->dna.n - o->dna_off;
    o->esm_off = w->esm.n;
    if ((rc = vnp_esm_encode(f->protein, f->protein_len, &w->esm, err))) {
        vnp_error_prefix(err, "tokenizing the protein of %.*s: ", (int)o->id_len,
                         w->text + o->id_off);
        return rc;
    }
    o->esm_len = w->esm.n - o->esm_off;
    return VNP_OK;
}

vnp_code vnp_orfs_add_chunk(vnp_window *w, const vnp_bpe *bpe, const vnp_record *rec,
                            size_t chunk_len, size_t chunk, vnp_frames *fr, size_t *added,
                            vnp_error *err)
{
    *added = 0;
    vnp_chunk ch = vnp_chunk_at(rec->len, chunk_len, chunk);
    vnp_code rc = vnp_six_frames(rec->seq + ch.start, ch.len, fr, err);
    if (rc) {
        vnp_error_prefix(err, "record '%s' chunk %zu: ", rec->id, chunk + 1);
        return rc;
    }
    for (int k = 0; k < fr->n; k++) {
        if ((rc = add_frame(w, bpe, rec, chunk, &fr->frame[k], err)))
            return rc;
        (*added)++;
    }
    return VNP_OK;
}
