/* Stage 1: sequences in (FASTA/FASTQ; plain, gzip, bzip2, xz or zstd; stdin), chunks and
 * six-frame ORFs out. */
#ifndef VIRNUCPRO_SEQ_H
#define VIRNUCPRO_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reader ----
 * Streaming FASTA / FASTQ (format from the first non-blank line: '>' or '@'), multi-line
 * records, blank lines. Line breaks are LF, CRLF or a lone CR (old Mac), mixed freely, as
 * Python's universal newlines read them; a UTF-8 byte order mark at the start is skipped.
 * Compression is told from the first bytes, not the name: gzip (zlib), bzip2 (libbz2), xz
 * (liblzma) and zstd (libzstd), each decoded as a stream (memory does not grow with the
 * file), concatenated streams/members of one format read one after the other and zero
 * padding after a stream skipped. Memory is bounded by the current record. Errors name the
 * file and line ("reads.fq:12: ..."): binary or non-sequence input, a FASTQ quality length
 * that differs from the sequence, a truncated or corrupt compressed stream, data after a
 * compressed stream that is neither another stream nor zero padding, and, when the caller
 * asks for nucleotides (vnp_seq_set_nucleotide_only), a record that looks like protein. */
typedef struct vnp_seq_reader vnp_seq_reader;

/* One record. Pointers stay valid until the next vnp_seq_read / close. */
typedef struct vnp_record {
    const char *id;   /* first whitespace-delimited word of the header, NUL-terminated
                       * ("" when the header has no word, as Biopython) */
    size_t id_len;
    const char *desc; /* rest of the header after the ID, trimmed ("" if none) */
    const char *seq;  /* residues, NUL-terminated; line breaks and whitespace removed, case kept */
    size_t len;
    const char *qual; /* FASTQ quality string (len bytes, NUL-terminated), NULL for FASTA */
    size_t line;      /* 1-based line number of the header */
} vnp_record;

/* path "-" reads stdin. The compression is detected from the content, not the name. */
vnp_code vnp_seq_open(const char *path, vnp_seq_reader **out, vnp_error *err);
/* on != 0: a record that looks like protein (vnp_seq_looks_like_protein) ends reading with
 * VNP_EFORMAT, "FILE:LINE: record 'ID' looks like protein, not nucleotides: ...; predict
 * takes nucleotide FASTA/FASTQ ..." (LINE: its header). For inputs that must be DNA/RNA
 * (predict, preprocess); off by default (embed reads protein FASTA). Call before the first
 * vnp_seq_read. vnp_preprocess turns it on itself. */
void vnp_seq_set_nucleotide_only(vnp_seq_reader *r, int on);
/* fd >= 0: while the reader waits for input (a pipe or terminal that has nothing yet), fd
 * becoming readable (or hung up) ends the wait: the read fails with VNP_EINTERRUPTED,
 * "FILE:LINE: reading stopped: the run is stopping", and later reads return it again. The
 * reader never reads fd. For a run that must stop (a signal, every worker failed) while
 * stdin stalls. -1 (the default): reads block as read(2) does. */
void vnp_seq_set_stop_fd(vnp_seq_reader *r, int fd);
/* 1 when seq[0..len) looks like protein rather than nucleotides: it has at least 20
 * letters other than X/x, and at least 10% of those are E F I J L O P Q or Z (either case),
 * the amino-acid codes that are not nucleotide codes. Nucleotide text (A C G T U, N, the
 * IUPAC ambiguity codes R Y S W K M B D H V, any case, gaps and other non-letters) can
 * never reach it, whatever its ambiguity codes; X (masked DNA, unknown residue) is not
 * counted either way. Proteins have about 35% such letters (L alone ~10%). */
int vnp_seq_looks_like_protein(const char *seq, size_t len);
/* on != 0: no warnings (empty records, empty input): for a second reading of an input
 * whose first reading warned already. Call before the first vnp_seq_read. */
void vnp_seq_set_quiet(vnp_seq_reader *r, int on);
/* Returns 1 with a record, 0 at end of input, or -(vnp_code) on error with err set
 * (an error is final: later calls return it again). Records with an empty sequence are skipped with a warning naming them
 * ("FILE:LINE: record 'ID' has an empty sequence; skipped"); an input with no
 * record at all logs "FILE: no sequences in the input" once and returns 0. */
int vnp_seq_read(vnp_seq_reader *r, vnp_record *rec, vnp_error *err);
/* Records returned so far / records skipped (empty). A reader is used by one
 * thread at a time; distinct readers and vnp_six_frames are thread-safe. */
size_t vnp_seq_records(const vnp_seq_reader *r);
size_t vnp_seq_skipped(const vnp_seq_reader *r);
/* Uncompressed input bytes consumed so far. */
uint64_t vnp_seq_bytes(const vnp_seq_reader *r);
/* The input's compression, told from its first bytes: "plain", "gzip", "bzip2", "xz" or
 * "zstd". Reads those bytes if nothing has been read yet (a read failure is left for
 * vnp_seq_read to report). */
const char *vnp_seq_compression(vnp_seq_reader *r);
/* Bytes of the input file consumed so far: compressed bytes for compressed input (those the
 * decoder has taken, at most one 1 MiB text fill ahead of the records returned), as
 * vnp_seq_bytes for plain input. Over the file's size, the progress for any compression. */
uint64_t vnp_seq_file_bytes(const vnp_seq_reader *r);
/* The name used in messages: the path, or "<stdin>". */
const char *vnp_seq_name(const vnp_seq_reader *r);
void vnp_seq_close(vnp_seq_reader *r);

/* ---- chunking (the original VirNucPro overlap rule) ----
 * n = ceil(len/chunk) chunks; the overlap R = n*chunk - len is taken back by
 * per-chunk shifts [lo+1]*need + [lo]*(n-1-need) (lo = R/n, need = R - lo*(n-1));
 * chunk i starts at i*chunk minus the earlier shifts and is clipped at len. When
 * need > n-1 the last chunk comes out short (e.g. len 301, chunk 300: [0,300)
 * and [150,301)), exactly as the original. Chunk i is named "<id>_chunk_<i+1>". */
typedef struct vnp_chunk {
    size_t start; /* 0-based offset into the sequence */
    size_t len;   /* may be < chunk size for the quirky short last chunk */
} vnp_chunk;

/* Number of chunks for a sequence of length len (ceil(len / chunk); 0 when len or chunk is 0). */
size_t vnp_chunk_count(size_t len, size_t chunk);
/* Fills out[0..vnp_chunk_count) ; returns the count. */
size_t vnp_chunk_plan(size_t len, size_t chunk, vnp_chunk *out);
/* The i-th chunk (0-based, i < vnp_chunk_count) without building the whole plan. */
vnp_chunk vnp_chunk_at(size_t len, size_t chunk, size_t i);

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

/* ---- preprocess: the original tool's three intermediate files ----
 * For input stem S and chunk size C, writes into outdir (created if missing):
 *   S_chunked<C>.fa              chunks, 60-column lines (as Biopython writes FASTA)
 *   S_identified_nucleotide.fa   kept frames' nucleotides, one line per sequence
 *   S_identified_protein.faa     kept frames' proteins, one line per sequence
 * byte-identical to VirNucPro's. Files are written under temporary names and
 * renamed when complete; on error none of them is left behind. */
typedef struct vnp_preprocess_stats {
    size_t records;   /* records chunked */
    size_t skipped;   /* empty records skipped */
    size_t chunks;
    size_t frames;    /* kept frames (lines of the protein file / 2) */
    uint64_t bases;   /* residues read */
    uint64_t bytes;   /* uncompressed input bytes */
} vnp_preprocess_stats;

/* The output stem the original derives from an input path: the file name up to
 * its first ".fa" ("x.fasta.gz" -> "x"); otherwise the name without ".gz" (".bz2", ".xz",
 * ".zst") and its last extension ("reads.fq.gz" -> "reads"); "stdin" for "-". Writes a
 * NUL-terminated stem into out; VNP_EINVAL if it would be empty or too long. */
vnp_code vnp_preprocess_stem(const char *input, char *out, size_t cap, vnp_error *err);

/* stem NULL derives it from input with vnp_preprocess_stem. stats may be NULL. */
vnp_code vnp_preprocess(const char *input, const char *outdir, const char *stem, size_t chunk,
                        vnp_preprocess_stats *stats, vnp_error *err);

/* The same three files written record by record, for a caller that reads the
 * input itself (predict --keep-intermediate). Files appear under their final
 * names only at commit; free without commit removes them. */
typedef struct vnp_preprocess_writer vnp_preprocess_writer;

/* Creates outdir if missing; stem as for vnp_preprocess (not NULL). */
vnp_code vnp_preprocess_writer_open(const char *outdir, const char *stem, size_t chunk,
                                    vnp_preprocess_writer **out, vnp_error *err);
/* Chunks and translates rec and appends its chunks and kept frames. */
vnp_code vnp_preprocess_writer_add(vnp_preprocess_writer *w, const vnp_record *rec,
                                   vnp_error *err);
vnp_code vnp_preprocess_writer_commit(vnp_preprocess_writer *w, vnp_error *err);
void vnp_preprocess_writer_free(vnp_preprocess_writer *w);

#ifdef __cplusplus
}
#endif
#endif
