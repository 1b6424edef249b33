/* Stage 1: sequences in (FASTA/FASTQ, gzip, stdin), chunks and six-frame ORFs out. */
#ifndef VIRNUCPRO_SEQ_H
#define VIRNUCPRO_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reader ---- */
typedef struct vnp_seq_reader vnp_seq_reader;

/* One record. Pointers stay valid until the next vnp_seq_read / close. */
typedef struct vnp_record {
    const char *id;   /* first whitespace-delimited word of the header */
    size_t id_len;
    const char *desc; /* rest of the header after the ID ("" if none) */
    const char *seq;  /* residues, line breaks and whitespace removed, case kept */
    size_t len;
    const char *qual; /* FASTQ quality string, NULL for FASTA */
    size_t line;      /* 1-based line number of the header */
} vnp_record;

/* path "-" reads stdin. gzip is detected from the content, not the name. */
vnp_code vnp_seq_open(const char *path, vnp_seq_reader **out, vnp_error *err);
/* Returns 1 with a record, 0 at end of input, or -(vnp_code) on error with err set.
 * Records with an empty sequence are skipped with a warning naming them. */
int vnp_seq_read(vnp_seq_reader *r, vnp_record *rec, vnp_error *err);
/* Records returned so far / records skipped (empty). */
size_t vnp_seq_records(const vnp_seq_reader *r);
size_t vnp_seq_skipped(const vnp_seq_reader *r);
void vnp_seq_close(vnp_seq_reader *r);

/* ---- chunking (the original VirNucPro overlap rule) ---- */
typedef struct vnp_chunk {
    size_t start; /* 0-based offset into the sequence */
    size_t len;   /* may be < chunk size for the quirky short last chunk */
} vnp_chunk;

/* Number of chunks for a sequence of length len (ceil(len / chunk), at least 1 when len > 0). */
size_t vnp_chunk_count(size_t len, size_t chunk);
/* Fills out[0..vnp_chunk_count) ; returns the count. */
size_t vnp_chunk_plan(size_t len, size_t chunk, vnp_chunk *out);

/* ---- six-frame translation ---- */
/* Frame index 0..5 = F1 F2 F3 R1 R2 R3. */
typedef struct vnp_frame {
    int frame;          /* 0..5 */
    char *protein;      /* NUL-terminated, no '*' */
    size_t protein_len;
    char *nucleotide;   /* strand[k-1 : k+3p] (3p+1 bases, clipped), NUL-terminated */
    size_t nucleotide_len;
} vnp_frame;

typedef struct vnp_frames {
    vnp_frame frame[6];
    int n;              /* kept frames, in F1..F3, R1..R3 order */
    /* scratch owned by the struct; reuse it across calls */
    char *buf;
    size_t cap;
} vnp_frames;

void vnp_frames_init(vnp_frames *f);
void vnp_frames_free(vnp_frames *f);
/* Translates chunk (any case) in six frames and keeps those with a non-empty,
 * stop-free protein. */
vnp_code vnp_six_frames(const char *chunk, size_t len, vnp_frames *out, vnp_error *err);
/* "F1".."R3" */
const char *vnp_frame_name(int frame);

#ifdef __cplusplus
}
#endif
#endif
