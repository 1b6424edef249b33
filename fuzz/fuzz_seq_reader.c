/* libFuzzer: the FASTA/FASTQ reader on arbitrary bytes, then the chunk plan and six-frame
 * translation of every record it returns.
 *
 * Each input is read as it is (plain text, or gzip / bzip2 / xz / zstd when it starts like
 * one: the seed corpus has each), and, differentially, in variants that must read the same:
 *   - its LF line breaks turned into CR or CRLF (when it holds no CR of its own);
 *   - compressed by this harness into one of gzip, bzip2, xz, zstd, as one stream or two
 *     concatenated ones, sometimes followed by zero padding.
 * Variants give the same records (IDs, descriptions, sequences, qualities, header lines),
 * the same skipped count, and the same error code and message apart from the file name.
 * A variant cut short must end in an error (or, cut between streams, in fewer records).
 * Which variants run, the compression and the nucleotide-only option follow from a hash
 * of the input, so every input is reproducible. The reader takes a path: each variant goes
 * through a scratch file (tmpfs when there is one). */
#include <bzlib.h>
#include <lzma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "virnucpro/seq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[2][64];

static void quiet(vnp_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)msg;
    (void)user;
}

static int scratch(void)
{
    if (g_path[0][0])
        return 0;
    for (int i = 0; i < 2; i++) {
        snprintf(g_path[i], sizeof g_path[i], "%s/vnp-fuzz-seq%d.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", i);
        int fd = mkstemp(g_path[i]);
        if (fd < 0)
            return -1;
        close(fd);
    }
    vnp_log_set_handler(quiet, NULL);
    return 0;
}

typedef struct buf {
    unsigned char *d;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->d = realloc(b->d, b->cap);
        if (!b->d)
            abort();
    }
    if (n)
        memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = 0;
}

static void check_record(const vnp_record *rec, vnp_frames *fr)
{
    if (rec->len == 0 || strlen(rec->seq) != rec->len || strlen(rec->id) != rec->id_len ||
        (rec->qual && strlen(rec->qual) != rec->len))
        __builtin_trap();
    size_t sizes[2] = {300, 7};
    for (int s = 0; s < 2; s++) {
        size_t n = vnp_chunk_count(rec->len, sizes[s]);
        for (size_t i = 0; i < n; i++) {
            vnp_chunk c = vnp_chunk_at(rec->len, sizes[s], i);
            if (c.len == 0 || c.len > sizes[s] || c.start + c.len > rec->len)
                __builtin_trap();
            if (vnp_six_frames(rec->seq + c.start, c.len, fr, NULL) != VNP_OK)
                return;
            for (int k = 0; k < fr->n; k++) {
                const vnp_frame *f = &fr->frame[k];
                if (f->protein_len == 0 || memchr(f->protein, '*', f->protein_len) ||
                    f->nucleotide_len > 3 * f->protein_len + 1)
                    __builtin_trap();
            }
        }
    }
}

/* What reading a file gave: a dump of its records, the skipped count, the final result
 * and the error message without the file name. */
typedef struct outcome {
    buf dump;
    size_t skipped;
    int rc;
    char msg[1024];
} outcome;

static void read_file(int slot, const unsigned char *d, size_t n, int nucleotide_only,
                      vnp_frames *fr, outcome *o)
{
    memset(o, 0, sizeof *o);
    put(&o->dump, "", 0);
    const char *path = g_path[slot];
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n)
        abort();
    fclose(f);
    vnp_seq_reader *r;
    vnp_error err;
    if (vnp_seq_open(path, &r, &err) != VNP_OK)
        abort();
    vnp_seq_set_nucleotide_only(r, nucleotide_only);
    vnp_record rec;
    int rc;
    char num[32];
    while ((rc = vnp_seq_read(r, &rec, &err)) == 1) {
        check_record(&rec, fr);
        if (nucleotide_only && vnp_seq_looks_like_protein(rec.seq, rec.len))
            __builtin_trap();
        put(&o->dump, rec.id, rec.id_len + 1);
        put(&o->dump, rec.desc, strlen(rec.desc) + 1);
        put(&o->dump, rec.seq, rec.len + 1);
        if (rec.qual)
            put(&o->dump, rec.qual, rec.len + 1);
        snprintf(num, sizeof num, "@%zu\n", rec.line);
        put(&o->dump, num, strlen(num));
    }
    /* an error is final; the end stays the end */
    if (vnp_seq_read(r, &rec, &err) != (rc < 0 ? rc : 0))
        __builtin_trap();
    o->rc = rc;
    o->skipped = vnp_seq_skipped(r);
    if (rc < 0) {
        /* an error names the file and a line */
        size_t pl = strlen(path);
        if (strncmp(err.msg, path, pl) != 0 || err.msg[pl] != ':')
            __builtin_trap();
        snprintf(o->msg, sizeof o->msg, "%s", err.msg + pl);
    }
    vnp_seq_close(r);
}

static void same(const outcome *a, const outcome *b)
{
    if (a->rc != b->rc || a->skipped != b->skipped || a->dump.n != b->dump.n ||
        memcmp(a->dump.d, b->dump.d, a->dump.n) != 0 || strcmp(a->msg, b->msg) != 0)
        __builtin_trap();
}

/* Appends src compressed as one stream of format fmt (0 gzip, 1 bzip2, 2 xz, 3 zstd). */
static void compress_into(int fmt, const unsigned char *src, size_t n, buf *out)
{
    size_t room = n + n / 2 + 1024;
    put(out, NULL, 0);
    if (out->n + room + 1 > out->cap) {
        out->cap = out->n + room + 1;
        out->d = realloc(out->d, out->cap);
        if (!out->d)
            abort();
    }
    unsigned char *dst = out->d + out->n;
    size_t made = 0;
    switch (fmt) {
    case 0: {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (deflateInit2(&zs, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            abort();
        zs.next_in = (unsigned char *)src;
        zs.avail_in = (uInt)n;
        zs.next_out = dst;
        zs.avail_out = (uInt)room;
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
            abort();
        made = zs.total_out;
        deflateEnd(&zs);
        break;
    }
    case 1: {
        unsigned dl = (unsigned)room;
        if (BZ2_bzBuffToBuffCompress((char *)dst, &dl, (char *)src, (unsigned)n, 1, 0, 30) !=
            BZ_OK)
            abort();
        made = dl;
        break;
    }
    case 2:
        if (lzma_easy_buffer_encode(0, LZMA_CHECK_CRC32, NULL, src, n, dst, &made, room) !=
            LZMA_OK)
            abort();
        break;
    default:
        made = ZSTD_compress(dst, room, src, n, 1);
        if (ZSTD_isError(made))
            abort();
        break;
    }
    out->n += made;
}

/* The input starts like a compressed stream (then its variants are not the same text). */
static int magic_start(const uint8_t *d, size_t n)
{
    return n && (d[0] == 0x1f || d[0] == 'B' || d[0] == 0xfd || d[0] == 0x28 ||
                 (d[0] & 0xf0) == 0x50);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scratch() != 0)
        return 0;
    uint32_t h = 2166136261u; /* FNV-1a: picks the variants */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    int nuc = (h >> 3) & 1;
    vnp_frames fr;
    vnp_frames_init(&fr);
    outcome ref, var;
    read_file(0, data, size, nuc, &fr, &ref);

    int comparable = !magic_start(data, size);
    /* line breaks: every LF as CR (h bit 0) or CRLF */
    if (!memchr(data, '\r', size)) {
        buf t = {0};
        put(&t, "", 0);
        for (size_t i = 0; i < size; i++) {
            if (data[i] == '\n')
                put(&t, (h & 1) ? "\r" : "\r\n", (h & 1) ? 1 : 2);
            else
                put(&t, data + i, 1);
        }
        read_file(1, t.d, t.n, nuc, &fr, &var);
        if (comparable)
            same(&ref, &var);
        free(var.dump.d);
        free(t.d);
    }
    /* compressed: format h bits 1-2, two streams (bit 4), zero padding (bit 5), cut (bit 6) */
    {
        int fmt = (h >> 1) & 3;
        buf z = {0};
        if ((h >> 4) & 1) {
            size_t half = size / 2;
            compress_into(fmt, data, half, &z);
            compress_into(fmt, data + half, size - half, &z);
        } else {
            compress_into(fmt, data, size, &z);
        }
        if ((h >> 5) & 1) {
            static const unsigned char zeros[16];
            put(&z, zeros, 1 + (h >> 8) % 16);
        }
        int cut = (h >> 6) & 1 && (h >> 7) & 1; /* one input in four */
        if (cut)
            z.n = (h >> 12) % z.n;
        read_file(1, z.d, z.n, nuc, &fr, &var);
        if (!cut && comparable)
            same(&ref, &var);
        free(var.dump.d);
        free(z.d);
    }
    free(ref.dump.d);
    vnp_frames_free(&fr);
    return 0;
}
