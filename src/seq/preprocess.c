/* The preprocess stage as files: chunks, kept frames' nucleotides and proteins,
 * byte-identical to the original VirNucPro intermediate files. */
#include "core/fs.h"
#include "virnucpro/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq/text_out.h"

#define FASTA_WIDTH 60 /* Biopython's FASTA line width */

vnp_code vnp_preprocess_stem(const char *input, char *out, size_t cap, vnp_error *err)
{
    if (!strcmp(input, "-")) {
        if (cap < 6)
            return vnp_fail(err, VNP_EINVAL, "output name buffer too small");
        memcpy(out, "stdin", 6);
        return VNP_OK;
    }
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    size_t n = strlen(base);
    const char *fa = strstr(base, ".fa");
    if (fa) {
        n = (size_t)(fa - base); /* the original: name.split('.fa')[0] */
    } else {
        static const char *const zext[] = {".gz", ".bz2", ".xz", ".zst"};
        for (size_t z = 0; z < sizeof zext / sizeof zext[0]; z++) {
            size_t k = strlen(zext[z]);
            if (n > k && !memcmp(base + n - k, zext[z], k)) {
                n -= k;
                break;
            }
        }
        for (size_t i = n; i > 1; i--)
            if (base[i - 1] == '.') {
                n = i - 1;
                break;
            }
    }
    if (n == 0)
        return vnp_fail(err, VNP_EINVAL,
                        "cannot derive an output name from '%s'; give one with --name", input);
    if (n + 1 > cap)
        return vnp_fail(err, VNP_EINVAL, "the output name from '%s' is too long", input);
    memcpy(out, base, n);
    out[n] = '\0';
    return VNP_OK;
}

typedef struct outputs {
    vnp_text_out chunked, nucleotide, protein;
} outputs;

static vnp_code open_outputs(outputs *o, const char *dir, const char *stem, size_t chunk,
                             vnp_error *err)
{
    size_t n = strlen(dir) + strlen(stem) + 64;
    char *path = malloc(n);
    if (!path)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    o->chunked.fd = o->nucleotide.fd = o->protein.fd = -1;
    snprintf(path, n, "%s/%s_chunked%zu.fa", dir, stem, chunk);
    vnp_code rc = vnp_text_out_open(&o->chunked, path, err);
    if (rc == VNP_OK) {
        snprintf(path, n, "%s/%s_identified_nucleotide.fa", dir, stem);
        rc = vnp_text_out_open(&o->nucleotide, path, err);
    }
    if (rc == VNP_OK) {
        snprintf(path, n, "%s/%s_identified_protein.faa", dir, stem);
        rc = vnp_text_out_open(&o->protein, path, err);
    }
    free(path);
    return rc;
}

static void abort_outputs(outputs *o)
{
    vnp_text_out_abort(&o->chunked);
    vnp_text_out_abort(&o->nucleotide);
    vnp_text_out_abort(&o->protein);
}

/* Writes "_chunk_<k>" (NUL-terminated) and returns its length. */
static size_t chunk_suffix(char *out, size_t k)
{
    char digits[24];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + k % 10);
        k /= 10;
    } while (k);
    memcpy(out, "_chunk_", 7);
    for (size_t i = 0; i < nd; i++)
        out[7 + i] = digits[nd - 1 - i];
    out[7 + nd] = '\0';
    return 7 + nd;
}

/* Chunks one record and writes its chunks and kept frames. */
static vnp_code emit_record(outputs *o, const vnp_record *rec, size_t chunk, vnp_frames *fr,
                            vnp_preprocess_stats *st, vnp_error *err)
{
    size_t n = vnp_chunk_count(rec->len, chunk);
    for (size_t i = 0; i < n; i++) {
        vnp_chunk c = vnp_chunk_at(rec->len, chunk, i);
        char suffix[40];
        size_t sl = chunk_suffix(suffix, i + 1);
        vnp_text_out_header(&o->chunked, rec->id, rec->id_len, suffix);
        vnp_text_out_wrapped(&o->chunked, rec->seq + c.start, c.len, FASTA_WIDTH);
        vnp_code rc = vnp_six_frames(rec->seq + c.start, c.len, fr, err);
        if (rc != VNP_OK)
            return rc;
        for (int k = 0; k < fr->n; k++) {
            const vnp_frame *f = &fr->frame[k];
            memcpy(suffix + sl, vnp_frame_name(f->frame), 3);
            vnp_text_out_header(&o->nucleotide, rec->id, rec->id_len, suffix);
            vnp_text_out_put(&o->nucleotide, f->nucleotide, f->nucleotide_len);
            vnp_text_out_put(&o->nucleotide, "\n", 1);
            vnp_text_out_header(&o->protein, rec->id, rec->id_len, suffix);
            vnp_text_out_put(&o->protein, f->protein, f->protein_len);
            vnp_text_out_put(&o->protein, "\n", 1);
            suffix[sl] = '\0';
        }
        st->frames += (size_t)fr->n;
    }
    st->chunks += n;
    st->records++;
    st->bases += rec->len;
    return VNP_OK;
}

/* ---- record-by-record writer (also what predict --keep-intermediate uses) ---- */

struct vnp_preprocess_writer {
    outputs o;
    size_t chunk;
    vnp_frames fr;
    vnp_preprocess_stats st;
    int committed;
};

vnp_code vnp_preprocess_writer_open(const char *outdir, const char *stem, size_t chunk,
                                    vnp_preprocess_writer **out, vnp_error *err)
{
    *out = NULL;
    if (chunk == 0)
        return vnp_fail(err, VNP_EINVAL, "the chunk length must be positive (300 or 500)");
    if (!outdir || !*outdir)
        return vnp_fail(err, VNP_EINVAL, "the output directory name is empty");
    vnp_code rc = vnp_mkdirs(outdir, "output", err);
    if (rc != VNP_OK)
        return rc;
    vnp_preprocess_writer *w = calloc(1, sizeof *w);
    if (!w)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    w->chunk = chunk;
    vnp_frames_init(&w->fr);
    rc = open_outputs(&w->o, outdir, stem, chunk, err);
    if (rc != VNP_OK) {
        vnp_preprocess_writer_free(w);
        return rc;
    }
    *out = w;
    return VNP_OK;
}

vnp_code vnp_preprocess_writer_add(vnp_preprocess_writer *w, const vnp_record *rec,
                                   vnp_error *err)
{
    return emit_record(&w->o, rec, w->chunk, &w->fr, &w->st, err);
}

vnp_code vnp_preprocess_writer_commit(vnp_preprocess_writer *w, vnp_error *err)
{
    /* Complete all three before any takes its final name. */
    vnp_code rc = vnp_text_out_finish(&w->o.chunked, err);
    if (rc == VNP_OK)
        rc = vnp_text_out_finish(&w->o.nucleotide, err);
    if (rc == VNP_OK)
        rc = vnp_text_out_finish(&w->o.protein, err);
    if (rc == VNP_OK)
        rc = vnp_text_out_commit(&w->o.chunked, err);
    if (rc == VNP_OK)
        rc = vnp_text_out_commit(&w->o.nucleotide, err);
    if (rc == VNP_OK)
        rc = vnp_text_out_commit(&w->o.protein, err);
    if (rc == VNP_OK)
        w->committed = 1;
    return rc;
}

void vnp_preprocess_writer_free(vnp_preprocess_writer *w)
{
    if (!w)
        return;
    if (!w->committed)
        abort_outputs(&w->o);
    vnp_frames_free(&w->fr);
    free(w);
}

vnp_code vnp_preprocess(const char *input, const char *outdir, const char *stem, size_t chunk,
                        vnp_preprocess_stats *stats, vnp_error *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    char derived[1024];
    if (!stem) {
        vnp_code rc = vnp_preprocess_stem(input, derived, sizeof derived, err);
        if (rc != VNP_OK)
            return rc;
        stem = derived;
    }
    vnp_seq_reader *r = NULL;
    vnp_code rc = vnp_seq_open(input, &r, err);
    if (rc != VNP_OK)
        return rc;
    vnp_seq_set_nucleotide_only(r, 1);
    vnp_preprocess_writer *w = NULL;
    rc = vnp_preprocess_writer_open(outdir, stem, chunk, &w, err);
    if (rc != VNP_OK) {
        vnp_seq_close(r);
        return rc;
    }
    vnp_record rec;
    int got;
    while ((got = vnp_seq_read(r, &rec, err)) == 1)
        if ((rc = vnp_preprocess_writer_add(w, &rec, err)) != VNP_OK)
            break;
    if (rc == VNP_OK && got < 0)
        rc = (vnp_code)-got;
    if (rc == VNP_OK)
        rc = vnp_preprocess_writer_commit(w, err);
    if (stats) {
        *stats = w->st;
        stats->skipped = vnp_seq_skipped(r);
        stats->bytes = vnp_seq_bytes(r);
    }
    vnp_preprocess_writer_free(w);
    vnp_seq_close(r);
    return rc;
}
