/* Streaming FASTA/FASTQ reader: plain text, gzip, bzip2, xz or zstd (told apart by their
 * first bytes, not the file name), files or stdin.
 *
 * Compressed input is read from the descriptor into an input buffer and decoded into one
 * large text buffer (1 MiB fills); plain input is read straight into the text buffer.
 * Concatenated streams/members of the same format are decoded one after the other (zero
 * padding between or after them is skipped), as gzip/bzip2/xz/zstd themselves do.
 *
 * Lines are found with memchr and end at '\n', "\r\n" or a lone '\r' (Python's universal
 * newlines, through which the original tool reads); the next '\n' and the next '\r' of a
 * fill are cached separately, so each byte is scanned once for each. A line that
 * straddles two fills is assembled in a line buffer. Memory is bounded by the longest
 * record. Sequence bytes are filtered through a class table (keep / drop whitespace /
 * reject) in one pass. */
#include "virnucpro/seq.h"

#include <bzlib.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* 64 KiB buffers, as kseq's 16 KiB ones: large enough that a read costs nothing beside the
 * parse, small enough that an open does not map (and fault in) megabytes. */
#define READ_CHUNK (1u << 16) /* decoded text per fill */
#define IN_CHUNK (1u << 16)   /* compressed input per read */
#define MAGIC_MAX 6
/* The most memory an xz stream may ask for (xz -9 needs 65 MiB to decompress). */
#define XZ_MEMLIMIT (1ull << 30)

enum { FMT_UNKNOWN = 0, FMT_FASTA, FMT_FASTQ };

/* Input compression; Z_NONE until the first bytes have been looked at. */
enum { Z_NONE = 0, Z_PLAIN, Z_GZIP, Z_BZIP2, Z_XZ, Z_ZSTD };
static const char *const k_zname[] = {"", "plain", "gzip", "bzip2", "xz", "zstd"};
static const char *const k_zlib[] = {"", "", "zlib", "libbz2", "liblzma", "libzstd"};

/* Input-side failures, turned into a message when the parser reaches them. */
enum { E_NONE = 0, E_READ, E_NOMEM, E_TRUNC, E_CORRUPT, E_TRAILING, E_LIMIT, E_STOPPED };

/* Byte classes of sequence and quality lines. */
enum { C_KEEP = 0, C_SPACE = 1, C_BAD = 2 };

struct vnp_seq_reader {
    int fd;
    int stop_fd; /* readable = stop waiting for input (vnp_seq_set_stop_fd); -1: none */
    char *name;

    /* compressed side */
    int comp;
    int dec_live;  /* the decoder of comp is initialised */
    int in_stream; /* inside a compressed stream whose end has not been seen */
    uint64_t streams;
    unsigned char *in;
    size_t in_pos, in_end;
    int in_eof;
    uint64_t in_total; /* compressed bytes consumed */
    z_stream zs;
    bz_stream bz;
    lzma_stream xz;
    ZSTD_DStream *zd;
    int ekind; /* pending input failure (E_*), reported once the text before it is parsed */
    char edetail[200];

    /* text side */
    unsigned char *buf;
    size_t pos, end;
    size_t lf_at, cr_at; /* next '\n' / '\r' at or after pos (end: none); SIZE_MAX: not looked */
    int skip_lf;         /* the last line ended at a '\r' that ended a fill */
    int eof;
    uint64_t bytes;
    size_t line; /* lines handed out so far = number of the last line */

    char *lbuf; /* a line assembled across buffer fills */
    size_t lcap;

    int format;
    int nucleotide_only;
    int quiet; /* no warnings (a second reading of an input already warned about) */
    /* Two header slots: the record being returned and the header read ahead. */
    char *hdr[2];
    size_t hcap[2];
    size_t hid_len[2], hdesc_off[2], hline[2];
    int pending; /* slot holding the next record's header, or -1 */

    char *seq;
    size_t seq_len, seq_cap;
    char *qual;
    size_t qual_len, qual_cap;

    size_t records, skipped;
    int finished;
    vnp_error failure; /* the first error, returned again by later calls */
};

static unsigned char g_class[256];
static pthread_once_t g_class_once = PTHREAD_ONCE_INIT;

static void class_build(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char k;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n')
            k = C_SPACE;
        else if (c < 0x20 || c >= 0x7f)
            k = C_BAD;
        else
            k = C_KEEP;
        g_class[c] = k;
    }
}

/* Python's str.split()/rstrip() whitespace, restricted to ASCII. */
static int is_ws(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    char *q = realloc(*p, n);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int nomem(vnp_seq_reader *r, vnp_error *err)
{
    return -(int)vnp_fail(err, VNP_ENOMEM, "%s:%zu: out of memory while reading a record",
                          r->name, r->line);
}

vnp_code vnp_seq_open(const char *path, vnp_seq_reader **out, vnp_error *err)
{
    *out = NULL;
    pthread_once(&g_class_once, class_build);
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    int fd = is_stdin ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return vnp_fail(err, e == ENOENT ? VNP_ENOTFOUND : VNP_EIO,
                        "cannot open input '%s': %s; check the path", name, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return vnp_fail(err, VNP_EINVAL,
                        "input '%s' is a directory; give a FASTA/FASTQ file (or '-' for stdin)",
                        name);
    }
    vnp_seq_reader *r = calloc(1, sizeof *r);
    if (r) {
        r->fd = fd;
        r->stop_fd = -1;
        r->name = strdup(name);
        r->buf = malloc(READ_CHUNK);
        r->in = malloc(IN_CHUNK);
    }
    if (!r || !r->name || !r->buf || !r->in) {
        if (r)
            vnp_seq_close(r);
        else
            close(fd);
        return vnp_fail(err, VNP_ENOMEM, "out of memory opening '%s'", name);
    }
    r->pending = -1;
    r->lf_at = r->cr_at = SIZE_MAX;
    *out = r;
    return VNP_OK;
}

static void dec_free(vnp_seq_reader *r)
{
    if (!r->dec_live)
        return;
    switch (r->comp) {
    case Z_GZIP: inflateEnd(&r->zs); break;
    case Z_BZIP2: BZ2_bzDecompressEnd(&r->bz); break;
    case Z_XZ: lzma_end(&r->xz); break;
    case Z_ZSTD: ZSTD_freeDStream(r->zd); break;
    default: break;
    }
    r->dec_live = 0;
}

void vnp_seq_close(vnp_seq_reader *r)
{
    if (!r)
        return;
    dec_free(r);
    close(r->fd);
    free(r->name);
    free(r->in);
    free(r->buf);
    free(r->lbuf);
    free(r->hdr[0]);
    free(r->hdr[1]);
    free(r->seq);
    free(r->qual);
    free(r);
}

void vnp_seq_set_nucleotide_only(vnp_seq_reader *r, int on) { r->nucleotide_only = on != 0; }
void vnp_seq_set_stop_fd(vnp_seq_reader *r, int fd) { r->stop_fd = fd; }

void vnp_seq_set_quiet(vnp_seq_reader *r, int on) { r->quiet = on != 0; }
size_t vnp_seq_records(const vnp_seq_reader *r) { return r->records; }
size_t vnp_seq_skipped(const vnp_seq_reader *r) { return r->skipped; }
/* Bytes read into the buffer minus those not parsed yet: the position of the parser, not
 * of the last 1 MiB refill (predict's ETA reads it as records go by). */
uint64_t vnp_seq_bytes(const vnp_seq_reader *r) { return r->bytes - (uint64_t)(r->end - r->pos); }
const char *vnp_seq_name(const vnp_seq_reader *r) { return r->name; }

/* ---- compressed input ---- */

/* Records an input failure (reported by src_report); returns -1. */
static int src_fail(vnp_seq_reader *r, int kind, const char *detail)
{
    r->ekind = kind;
    snprintf(r->edetail, sizeof r->edetail, "%s", detail ? detail : "");
    return -1;
}

/* One read(2) of up to cap bytes into buf (retried on EINTR); *n = 0 marks the end of
 * the input. -1 with the failure recorded. */
static int read_some(vnp_seq_reader *r, unsigned char *buf, size_t cap, size_t *n)
{
    for (;;) {
        if (r->stop_fd >= 0) {
            /* Wait for input or for the stop; a regular file is always readable. */
            struct pollfd p[2] = {{.fd = r->fd, .events = POLLIN}, {.fd = r->stop_fd, .events = POLLIN}};
            int k = poll(p, 2, -1);
            if (k < 0 && errno != EINTR)
                return src_fail(r, E_READ, strerror(errno));
            if (k > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
                return src_fail(r, E_STOPPED, NULL);
            if (k <= 0)
                continue;
        }
        ssize_t k = read(r->fd, buf, cap);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return src_fail(r, E_READ, strerror(errno));
        if (k == 0)
            r->in_eof = 1;
        *n = (size_t)k;
        return 0;
    }
}

/* The message of the pending input failure, located at the line being parsed. */
static int src_report(vnp_seq_reader *r, vnp_error *err)
{
    size_t line = r->line + 1;
    const char *f = k_zname[r->comp];
    switch (r->ekind) {
    case E_READ:
        return -(int)vnp_fail(err, VNP_EIO, "%s:%zu: read error: %s", r->name, line, r->edetail);
    case E_STOPPED:
        return -(int)vnp_fail(err, VNP_EINTERRUPTED,
                              "%s:%zu: reading stopped: the run is stopping", r->name, line);
    case E_NOMEM:
        return -(int)vnp_fail(err, VNP_ENOMEM, "%s:%zu: out of memory decompressing the %s input",
                              r->name, line, f);
    case E_TRUNC:
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: the %s stream ends unexpectedly: the file is truncated; "
                              "re-download or re-compress the input",
                              r->name, line, f);
    case E_CORRUPT:
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: the %s stream is corrupt (%s: %s); re-download or "
                              "re-compress the input",
                              r->name, line, f, k_zlib[r->comp], r->edetail);
    case E_TRAILING:
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: the %s data is followed by %s; the file is damaged or "
                              "something was appended to it: re-download or re-compress the input",
                              r->name, line, f, r->edetail);
    default:
        return -(int)vnp_fail(err, VNP_EUNSUPPORTED,
                              "%s:%zu: the %s stream %s; re-compress the input with the "
                              "default settings",
                              r->name, line, f, r->edetail);
    }
}

/* Reads more compressed input after what is buffered. Returns 0 or -1. */
static int in_fill(vnp_seq_reader *r)
{
    if (r->in_pos) {
        memmove(r->in, r->in + r->in_pos, r->in_end - r->in_pos);
        r->in_end -= r->in_pos;
        r->in_pos = 0;
    }
    size_t n;
    if (read_some(r, r->in + r->in_end, IN_CHUNK - r->in_end, &n))
        return -1;
    r->in_end += n;
    return 0;
}

/* Buffers at least need bytes of input unless the input ends first. */
static int in_want(vnp_seq_reader *r, size_t need)
{
    while (r->in_end - r->in_pos < need && !r->in_eof)
        if (in_fill(r) < 0)
            return -1;
    return 0;
}

/* The compression whose magic bytes p[0..n) start with, Z_PLAIN if none. *partial gets the
 * format whose magic p is a proper prefix of (at least 2 bytes), else Z_NONE. */
static int sniff(const unsigned char *p, size_t n, int *partial)
{
    static const unsigned char xz[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
    static const unsigned char zst[4] = {0x28, 0xb5, 0x2f, 0xfd};
    *partial = Z_NONE;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return Z_GZIP;
    if (n >= 4 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' && p[3] >= '1' && p[3] <= '9')
        return Z_BZIP2;
    if (n >= 6 && !memcmp(p, xz, 6))
        return Z_XZ;
    /* a zstd frame, or a skippable frame (magic 0x184D2A50..5F, little-endian) */
    if (n >= 4 && (!memcmp(p, zst, 4) || ((p[0] & 0xf0) == 0x50 && p[1] == 0x2a &&
                                           p[2] == 0x4d && p[3] == 0x18)))
        return Z_ZSTD;
    if (n >= 2 && n < 4 && !memcmp(p, "BZh", n))
        *partial = Z_BZIP2;
    else if (n >= 2 && n < 6 && !memcmp(p, xz, n))
        *partial = Z_XZ;
    else if (n >= 2 && n < 4 && !memcmp(p, zst, n))
        *partial = Z_ZSTD;
    return Z_PLAIN;
}

/* Starts (first) or restarts (later streams) the decoder of r->comp. */
static int dec_start(vnp_seq_reader *r)
{
    int ok = 1;
    switch (r->comp) {
    case Z_GZIP:
        if (r->dec_live)
            ok = inflateReset(&r->zs) == Z_OK;
        else
            ok = inflateInit2(&r->zs, 15 + 16) == Z_OK; /* gzip wrapper only */
        break;
    case Z_BZIP2:
        if (r->dec_live)
            BZ2_bzDecompressEnd(&r->bz);
        memset(&r->bz, 0, sizeof r->bz);
        ok = BZ2_bzDecompressInit(&r->bz, 0, 0) == BZ_OK;
        if (!ok)
            r->dec_live = 0;
        break;
    case Z_XZ:
        if (!r->dec_live) {
            lzma_stream init = LZMA_STREAM_INIT;
            r->xz = init;
            r->dec_live = 1; /* lzma_end is safe on it from here on */
        }
        ok = lzma_stream_decoder(&r->xz, XZ_MEMLIMIT, 0) == LZMA_OK;
        break;
    case Z_ZSTD:
        if (!r->dec_live && (r->zd = ZSTD_createDStream()) != NULL)
            r->dec_live = 1;
        ok = r->zd && !ZSTD_isError(ZSTD_initDStream(r->zd));
        break;
    default: break;
    }
    if (!ok)
        return src_fail(r, E_NOMEM, NULL);
    r->dec_live = 1;
    return 0;
}

/* One decoder call on the buffered input into out[0..cap). *made: bytes decoded. Returns
 * 0, 1 at the end of a stream (or zstd frame), -1 on failure. */
static int dec_step(vnp_seq_reader *r, unsigned char *out, size_t cap, size_t *made,
                    size_t *used)
{
    unsigned char *in = r->in + r->in_pos;
    size_t avail = r->in_end - r->in_pos;
    int end = 0;
    char msg[96];
    switch (r->comp) {
    case Z_GZIP: {
        z_stream *z = &r->zs;
        z->next_in = in;
        z->avail_in = (uInt)avail;
        z->next_out = out;
        z->avail_out = (uInt)cap;
        int zr = inflate(z, Z_NO_FLUSH);
        *used = avail - z->avail_in;
        *made = cap - z->avail_out;
        if (zr == Z_STREAM_END)
            end = 1;
        else if (zr == Z_MEM_ERROR)
            return src_fail(r, E_NOMEM, NULL);
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return src_fail(r, E_CORRUPT, z->msg ? z->msg : zError(zr));
        break;
    }
    case Z_BZIP2: {
        bz_stream *b = &r->bz;
        b->next_in = (char *)in;
        b->avail_in = (unsigned)avail;
        b->next_out = (char *)out;
        b->avail_out = (unsigned)cap;
        int br = BZ2_bzDecompress(b);
        *used = avail - b->avail_in;
        *made = cap - b->avail_out;
        if (br == BZ_STREAM_END)
            end = 1;
        else if (br == BZ_MEM_ERROR)
            return src_fail(r, E_NOMEM, NULL);
        else if (br == BZ_DATA_ERROR_MAGIC)
            return src_fail(r, E_CORRUPT, "bad block header");
        else if (br == BZ_DATA_ERROR)
            return src_fail(r, E_CORRUPT, "data integrity (CRC) error in the data");
        else if (br != BZ_OK) {
            snprintf(msg, sizeof msg, "error %d", br);
            return src_fail(r, E_CORRUPT, msg);
        }
        break;
    }
    case Z_XZ: {
        lzma_stream *x = &r->xz;
        x->next_in = in;
        x->avail_in = avail;
        x->next_out = out;
        x->avail_out = cap;
        lzma_ret lr = lzma_code(x, r->in_eof ? LZMA_FINISH : LZMA_RUN);
        *used = avail - x->avail_in;
        *made = cap - x->avail_out;
        switch (lr) {
        case LZMA_OK:
        case LZMA_BUF_ERROR: break; /* no progress: more input, or the stream is cut */
        case LZMA_STREAM_END: end = 1; break;
        case LZMA_MEM_ERROR: return src_fail(r, E_NOMEM, NULL);
        case LZMA_MEMLIMIT_ERROR:
            snprintf(msg, sizeof msg, "needs %llu MiB of memory to decompress (at most %llu)",
                     (unsigned long long)(lzma_memusage(x) >> 20), XZ_MEMLIMIT >> 20);
            return src_fail(r, E_LIMIT, msg);
        case LZMA_FORMAT_ERROR: return src_fail(r, E_CORRUPT, "not in the .xz format");
        case LZMA_OPTIONS_ERROR: return src_fail(r, E_CORRUPT, "unsupported compression options");
        case LZMA_DATA_ERROR: return src_fail(r, E_CORRUPT, "compressed data is corrupt");
        default:
            snprintf(msg, sizeof msg, "error %d", (int)lr);
            return src_fail(r, E_CORRUPT, msg);
        }
        break;
    }
    case Z_ZSTD: {
        ZSTD_inBuffer zi = {in, avail, 0};
        ZSTD_outBuffer zo = {out, cap, 0};
        size_t zr = ZSTD_decompressStream(r->zd, &zo, &zi);
        *used = zi.pos;
        *made = zo.pos;
        if (ZSTD_isError(zr)) {
            ZSTD_ErrorCode c = ZSTD_getErrorCode(zr);
            if (c == ZSTD_error_memory_allocation)
                return src_fail(r, E_NOMEM, NULL);
            if (c == ZSTD_error_frameParameter_windowTooLarge)
                return src_fail(r, E_LIMIT, "needs a window larger than 128 MiB (zstd --long=28 "
                                            "or more)");
            return src_fail(r, E_CORRUPT, ZSTD_getErrorName(zr));
        }
        end = zr == 0;
        break;
    }
    default: break;
    }
    r->in_pos += *used;
    r->in_total += *used;
    return end;
}

/* Decodes up to cap bytes into out; *got counts them. Returns 0 (end of input when *got
 * stays 0) or -1. */
static int dec_read(vnp_seq_reader *r, unsigned char *out, size_t cap, size_t *got)
{
    int stalled = 0;
    while (*got < cap) {
        if (!r->in_stream) {
            /* At the start or between streams: the next one, zero padding, or the end.
             * Text already decoded goes out before a read that may wait (a pipe). */
            if (*got && r->in_end - r->in_pos < MAGIC_MAX && !r->in_eof)
                return 0;
            if (in_want(r, MAGIC_MAX) < 0)
                return -1;
            size_t avail = r->in_end - r->in_pos;
            if (avail == 0)
                return 0;
            const unsigned char *p = r->in + r->in_pos;
            int partial, m = sniff(p, avail, &partial);
            if (m == r->comp) {
                if (r->streams && dec_start(r) < 0)
                    return -1;
                r->in_stream = 1;
            } else if (p[0] == 0) {
                while (r->in_pos < r->in_end && r->in[r->in_pos] == 0) {
                    r->in_pos++;
                    r->in_total++;
                }
                continue;
            } else if (partial == r->comp) {
                return src_fail(r, E_TRUNC, NULL);
            } else {
                char d[160];
                snprintf(d, sizeof d,
                         "bytes that are neither %s nor zero padding (0x%02x at byte %llu)",
                         k_zname[r->comp], p[0], (unsigned long long)r->in_total);
                return src_fail(r, E_TRAILING, d);
            }
        }
        if (r->in_pos == r->in_end && !r->in_eof) {
            if (*got)
                return 0; /* hand out what is decoded before waiting for more input */
            if (in_fill(r) < 0)
                return -1;
        }
        size_t made = 0, used = 0;
        int st = dec_step(r, out + *got, cap - *got, &made, &used);
        *got += made;
        if (st < 0)
            return -1;
        if (st == 1) {
            r->in_stream = 0;
            r->streams++;
            stalled = 0;
            continue;
        }
        if (made || used) {
            stalled = 0;
            continue;
        }
        if (r->in_pos == r->in_end && r->in_eof)
            return src_fail(r, E_TRUNC, NULL);
        /* No progress although input is buffered (or was just read): a decoder in this
         * state is stuck on its data. */
        if (r->in_pos < r->in_end && ++stalled > 2)
            return src_fail(r, E_CORRUPT, "the decoder makes no progress");
    }
    return 0;
}

/* Plain input: what the format check buffered, else one read straight into out. */
static int plain_read(vnp_seq_reader *r, unsigned char *out, size_t cap, size_t *got)
{
    size_t k = r->in_end - r->in_pos;
    if (k) {
        k = k < cap ? k : cap;
        memcpy(out, r->in + r->in_pos, k);
        r->in_pos += k;
        *got = k;
    }
    /* One read when nothing is buffered: what a pipe has now is parsed at once, not held
     * until the buffer is full (a stalled or slow producer). */
    while (*got == 0 && !r->in_eof) {
        size_t n;
        if (read_some(r, out + *got, cap - *got, &n))
            return -1;
        *got += n;
    }
    return 0;
}

/* Reads the first bytes and decides the compression. Returns 0 or -1. */
static int sniff_input(vnp_seq_reader *r)
{
    if (in_want(r, MAGIC_MAX) < 0)
        return -1;
    int partial;
    r->comp = sniff(r->in, r->in_end, &partial);
    if (r->comp == Z_PLAIN && partial != Z_NONE && r->in_eof) {
        r->comp = partial;
        return src_fail(r, E_TRUNC, NULL);
    }
    return r->comp == Z_PLAIN ? 0 : dec_start(r);
}

const char *vnp_seq_compression(vnp_seq_reader *r)
{
    if (r->comp == Z_NONE && !r->ekind)
        sniff_input(r); /* a failure is reported by vnp_seq_read */
    return r->comp == Z_NONE ? "plain" : k_zname[r->comp];
}

uint64_t vnp_seq_file_bytes(const vnp_seq_reader *r)
{
    return r->comp == Z_PLAIN || r->comp == Z_NONE ? vnp_seq_bytes(r) : r->in_total;
}

/* Refills the text buffer. Returns bytes read, 0 at the end, or -(code). Text before a
 * failure comes first; the failure is reported by the next call. */
static int refill(vnp_seq_reader *r, vnp_error *err)
{
    r->pos = r->end = 0;
    r->lf_at = r->cr_at = SIZE_MAX;
    if (r->ekind)
        return src_report(r, err);
    if (r->eof)
        return 0;
    size_t got = 0;
    int rc = r->comp == Z_NONE ? sniff_input(r) : 0;
    if (rc == 0)
        rc = r->comp == Z_PLAIN ? plain_read(r, r->buf, READ_CHUNK, &got)
                                : dec_read(r, r->buf, READ_CHUNK, &got);
    if (got) {
        r->end = got;
        r->bytes += got;
        return (int)got;
    }
    if (rc < 0)
        return src_report(r, err);
    r->eof = 1;
    return 0;
}

/* ---- lines ---- */

/* Index of the first line break ('\n' or '\r') at or after pos, or end. */
static size_t find_eol(vnp_seq_reader *r)
{
    if (r->lf_at == SIZE_MAX || r->lf_at < r->pos) {
        const unsigned char *p = memchr(r->buf + r->pos, '\n', r->end - r->pos);
        r->lf_at = p ? (size_t)(p - r->buf) : r->end;
    }
    if (r->cr_at == SIZE_MAX || r->cr_at < r->pos) {
        const unsigned char *p = memchr(r->buf + r->pos, '\r', r->end - r->pos);
        r->cr_at = p ? (size_t)(p - r->buf) : r->end;
    }
    return r->lf_at < r->cr_at ? r->lf_at : r->cr_at;
}

/* Moves past the line break at e (< end): "\n", "\r\n" or a lone "\r". */
static void eat_eol(vnp_seq_reader *r, size_t e)
{
    r->pos = e + 1;
    if (r->buf[e] == '\r') {
        if (e + 1 < r->end)
            r->pos += r->buf[e + 1] == '\n';
        else
            r->skip_lf = 1; /* a '\n' starting the next fill belongs to this break */
    }
}

/* Next line without its line break. Returns 1, 0 at the end of input, or -(code). */
static int next_line(vnp_seq_reader *r, const char **line, size_t *len, vnp_error *err)
{
    for (;;) {
        if (r->pos == r->end) {
            int n = refill(r, err);
            if (n <= 0)
                return n;
        }
        if (!r->skip_lf)
            break;
        r->skip_lf = 0;
        r->pos += r->buf[r->pos] == '\n';
    }
    size_t start = r->pos, e = find_eol(r);
    if (e < r->end) {
        *line = (const char *)r->buf + start;
        *len = e - start;
        eat_eol(r, e);
        r->line++;
        return 1;
    }
    /* The line continues past this fill: assemble it. */
    size_t have = 0;
    for (;;) {
        e = find_eol(r);
        size_t take = e - r->pos;
        if (grow(&r->lbuf, &r->lcap, have + take + 1))
            return nomem(r, err);
        memcpy(r->lbuf + have, r->buf + r->pos, take);
        have += take;
        if (e < r->end) {
            eat_eol(r, e);
            break;
        }
        r->pos = r->end;
        int n = refill(r, err);
        if (n < 0)
            return n;
        if (n == 0)
            break; /* last line without a line break */
    }
    *line = r->lbuf;
    *len = have;
    r->line++;
    return 1;
}

static size_t rstrip(const char *s, size_t n)
{
    while (n && is_ws((unsigned char)s[n - 1]))
        n--;
    return n;
}

static int is_blank(const char *s, size_t n) { return rstrip(s, n) == 0; }

static int bad_byte(vnp_seq_reader *r, const char *s, size_t n, vnp_error *err)
{
    size_t i = 0;
    while (i < n && g_class[(unsigned char)s[i]] != C_BAD)
        i++;
    unsigned c = i < n ? (unsigned char)s[i] : 0;
    return -(int)vnp_fail(err, VNP_EFORMAT,
                          "%s:%zu: byte 0x%02x at column %zu is not sequence text; the input "
                          "looks binary or is not FASTA/FASTQ",
                          r->name, r->line, c, i + 1);
}

/* Stores a header line (with its '>'/'@') in slot s: ID NUL-terminated, description after. */
static int store_header(vnp_seq_reader *r, int s, const char *line, size_t len, vnp_error *err)
{
    const char *t = line + 1;
    size_t n = rstrip(t, len - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if ((c < 0x20 && !is_ws(c)) || c == 0x7f)
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: control byte 0x%02x in a header; the input looks "
                                  "binary or is not FASTA/FASTQ",
                                  r->name, r->line, c);
    }
    size_t a = 0;
    while (a < n && is_ws((unsigned char)t[a]))
        a++;
    size_t b = a;
    while (b < n && !is_ws((unsigned char)t[b]))
        b++;
    size_t d = b;
    while (d < n && is_ws((unsigned char)t[d]))
        d++;
    /* layout: id '\0' desc '\0' */
    size_t idn = b - a, dn = n - d;
    if (grow(&r->hdr[s], &r->hcap[s], idn + dn + 2))
        return nomem(r, err);
    memcpy(r->hdr[s], t + a, idn);
    r->hdr[s][idn] = '\0';
    memcpy(r->hdr[s] + idn + 1, t + d, dn);
    r->hdr[s][idn + 1 + dn] = '\0';
    r->hid_len[s] = idn;
    r->hdesc_off[s] = idn + 1;
    r->hline[s] = r->line;
    r->pending = s;
    return 0;
}

/* 1 when every byte is printable ASCII other than space (the common case of a
 * clean sequence line); written so that the compiler can vectorise it. */
static int all_graphic(const unsigned char *s, size_t n)
{
    unsigned char ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= (unsigned char)(s[i] - 0x21u) < 0x5eu;
    return ok;
}

/* Appends a sequence line, dropping whitespace and rejecting binary bytes. */
static int append_seq(vnp_seq_reader *r, const char *s, size_t n, vnp_error *err)
{
    if (grow(&r->seq, &r->seq_cap, r->seq_len + n + 1))
        return nomem(r, err);
    if (all_graphic((const unsigned char *)s, n)) {
        memcpy(r->seq + r->seq_len, s, n);
        r->seq_len += n;
        return 0;
    }
    char *dst = r->seq + r->seq_len;
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned k = g_class[c];
        *dst = (char)c;
        dst += k == C_KEEP;
        bad |= k & C_BAD;
    }
    if (bad)
        return bad_byte(r, s, n, err);
    r->seq_len = (size_t)(dst - r->seq);
    return 0;
}

/* Finds the first header of the file and decides the format. */
static int read_first_header(vnp_seq_reader *r, vnp_error *err)
{
    const char *l;
    size_t n;
    int rc;
    while ((rc = next_line(r, &l, &n, err)) == 1) {
        if (r->line == 1) {
            if (n >= 3 && !memcmp(l, "\xef\xbb\xbf", 3)) { /* UTF-8 byte order mark */
                l += 3;
                n -= 3;
            } else if (n >= 2 && ((unsigned char)l[0] ^ (unsigned char)l[1]) == 0x01 &&
                       ((unsigned char)l[0] & 0xfe) == 0xfe) {
                return -(int)vnp_fail(err, VNP_EFORMAT,
                                      "%s:1: the input is UTF-16 text (byte order mark 0x%02x "
                                      "0x%02x); save it as plain ASCII/UTF-8 FASTA/FASTQ",
                                      r->name, (unsigned char)l[0], (unsigned char)l[1]);
            }
        }
        if (n && (l[0] == '>' || l[0] == '@')) {
            r->format = l[0] == '>' ? FMT_FASTA : FMT_FASTQ;
            return store_header(r, 0, l, n, err);
        }
        for (size_t i = 0; i < n; i++)
            if (g_class[(unsigned char)l[i]] == C_BAD)
                return bad_byte(r, l, n, err);
        if (is_blank(l, n))
            continue;
        size_t show = rstrip(l, n) < 20 ? rstrip(l, n) : 20;
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: expected a FASTA header ('>') or a FASTQ header ('@'), "
                              "found '%.*s'; the input is not FASTA/FASTQ",
                              r->name, r->line, (int)show, l);
    }
    return rc;
}

/* Reads the body of the FASTA record whose header is pending. */
static int read_fasta_body(vnp_seq_reader *r, vnp_error *err)
{
    int cur = r->pending;
    r->pending = -1;
    const char *l;
    size_t n;
    int rc;
    while ((rc = next_line(r, &l, &n, err)) == 1) {
        if (n && l[0] == '>') {
            rc = store_header(r, cur ^ 1, l, n, err);
            return rc < 0 ? rc : cur;
        }
        if ((rc = append_seq(r, l, n, err)) < 0)
            return rc;
    }
    return rc < 0 ? rc : cur;
}

static int qual_mismatch(vnp_seq_reader *r, int cur, size_t line, size_t qual, vnp_error *err)
{
    return -(int)vnp_fail(err, VNP_EFORMAT,
                          "%s:%zu: FASTQ record '%s' (line %zu) has %zu bases but %zu quality "
                          "characters; the lengths must match",
                          r->name, line, r->hdr[cur], r->hline[cur], r->seq_len, qual);
}

/* First byte of s[0..n) that cannot be a quality character, or n. */
static size_t bad_qual_at(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return i;
    }
    return n;
}

/* Reads the body of the FASTQ record whose header is pending.
 *
 * Quality may span several lines (as Biopython reads FASTQ), and a quality line may start
 * with '@', so where the quality ends is inferred as Biopython does: lines are added until
 * there are as many quality characters as bases. To count a short or missing quality line
 * right (the next header is not quality), a later quality line that starts with '@' and
 * would overshoot the sequence, or holds a byte no quality line can (a space), is taken as
 * the next header; so is a first quality line that starts with '@' when the line after it
 * overshoots (4-line FASTQ whose quality line is missing: 0 quality characters). */
static int read_fastq_body(vnp_seq_reader *r, vnp_error *err)
{
    int cur = r->pending;
    r->pending = -1;
    const char *l;
    size_t n;
    int rc;
    for (;;) {
        rc = next_line(r, &l, &n, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: FASTQ record '%s' (line %zu) ends without its '+' "
                                  "line; the file is truncated or not FASTQ",
                                  r->name, r->line, r->hdr[cur], r->hline[cur]);
        if (n && l[0] == '+')
            break;
        if (n && l[0] == '@')
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: FASTQ record '%s' (line %zu) has no '+' line before "
                                  "the next record; the file is not valid FASTQ",
                                  r->name, r->line, r->hdr[cur], r->hline[cur]);
        if ((rc = append_seq(r, l, n, err)) < 0)
            return rc;
    }
    r->qual_len = 0;
    size_t k = 0;                 /* quality lines read */
    int first_at = 0;             /* the first quality line starts with '@' */
    size_t at_qual = SIZE_MAX;    /* quality before the last later line starting with '@' */
    size_t at_line = 0;           /* the line before that one */
    while (r->qual_len < r->seq_len) {
        rc = next_line(r, &l, &n, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: FASTQ record '%s' (line %zu) has %zu bases but the "
                                  "file ends after %zu quality characters; the file is truncated",
                                  r->name, r->line, r->hdr[cur], r->hline[cur], r->seq_len,
                                  r->qual_len);
        n = rstrip(l, n);
        size_t bad = bad_qual_at(l, n);
        int over = r->qual_len + n > r->seq_len;
        if (n && l[0] == '@' && ((k > 0 && over) || bad < n))
            return qual_mismatch(r, cur, r->line - 1, r->qual_len, err);
        if (n && k == 1 && first_at && over) /* the line after '+' was the next header */
            return qual_mismatch(r, cur, r->line - 2, 0, err);
        if (bad < n)
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: byte 0x%02x at column %zu is not a quality "
                                  "character; the input looks binary or is not FASTQ",
                                  r->name, r->line, (unsigned char)l[bad], bad + 1);
        if (n == 0)
            return qual_mismatch(r, cur, r->line, r->qual_len, err);
        if (k == 0)
            first_at = l[0] == '@';
        else if (l[0] == '@') {
            at_qual = r->qual_len;
            at_line = r->line - 1;
        }
        if (grow(&r->qual, &r->qual_cap, r->qual_len + n + 1))
            return nomem(r, err);
        memcpy(r->qual + r->qual_len, l, n);
        r->qual_len += n;
        k++;
    }
    if (r->qual_len != r->seq_len)
        return qual_mismatch(r, cur, r->line, r->qual_len, err);
    if (grow(&r->qual, &r->qual_cap, r->qual_len + 1))
        return nomem(r, err);
    r->qual[r->qual_len] = '\0';
    /* The next non-blank line must start the next record. */
    while ((rc = next_line(r, &l, &n, err)) == 1) {
        if (is_blank(l, n))
            continue;
        if (l[0] != '@') {
            /* A quality line taken for its '@' was the next header after all. */
            if (at_qual != SIZE_MAX)
                return qual_mismatch(r, cur, at_line, at_qual, err);
            size_t show = rstrip(l, n) < 20 ? rstrip(l, n) : 20;
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: expected '@' starting the FASTQ record after '%s' "
                                  "(line %zu), found '%.*s'; the quality is longer than the "
                                  "sequence (%zu bases) or the file is not FASTQ",
                                  r->name, r->line, r->hdr[cur], r->hline[cur], (int)show, l,
                                  r->seq_len);
        }
        rc = store_header(r, cur ^ 1, l, n, err);
        return rc < 0 ? rc : cur;
    }
    return rc < 0 ? rc : cur;
}

/* ---- nucleotide check ---- */

/* Letters counted (every letter but X, which masks DNA and marks unknown residues) and,
 * of those, the amino-acid codes that are not nucleotide codes: E F I J L O P Q Z, any case.
 * Blocks of at most 255 bytes with byte counters, so that the compiler vectorises the
 * loop over byte lanes (~0.3 ns a byte); it runs only on readers that ask for the check. */
static void count_letters(const char *s, size_t n, size_t *letters, size_t *amino)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t l = 0, a = 0;
    while (n) {
        size_t k = n < 255 ? n : 255;
        unsigned char bl = 0, ba = 0;
        for (size_t i = 0; i < k; i++) {
            /* disjoint ranges summed one by one: written as one test, GCC turns them into
             * a 64-bit mask shift that does not vectorise */
            unsigned char u = p[i] | 0x20;
            bl += (unsigned char)(u - 'a') < 26;
            bl -= u == 'x';
            ba += (unsigned char)(u - 'e') < 2;
            ba += (unsigned char)(u - 'i') < 2;
            ba += u == 'l';
            ba += (unsigned char)(u - 'o') < 3;
            ba += u == 'z';
        }
        l += bl;
        a += ba;
        p += k;
        n -= k;
    }
    *letters = l;
    *amino = a;
}

int vnp_seq_looks_like_protein(const char *seq, size_t len)
{
    size_t letters, amino;
    count_letters(seq, len, &letters, &amino);
    return letters >= 20 && amino * 10 >= letters;
}

static int protein_error(vnp_seq_reader *r, int slot, vnp_error *err)
{
    size_t letters, amino, i = 0;
    count_letters(r->seq, r->seq_len, &letters, &amino);
    while (i < r->seq_len && !strchr("EFIJLOPQZefijlopqz", r->seq[i]))
        i++;
    return -(int)vnp_fail(err, VNP_EFORMAT,
                          "%s:%zu: record '%s' looks like protein, not nucleotides: %zu of its "
                          "%zu letters are amino-acid codes, not nucleotide codes (the "
                          "first, '%c', at residue %zu); predict and preprocess take nucleotide "
                          "FASTA/FASTQ (DNA or RNA contigs or reads), not protein sequences",
                          r->name, r->hline[slot], r->hdr[slot], amino, letters,
                          i < r->seq_len ? r->seq[i] : '?', i + 1);
}

/* ---- records ---- */

static int read_record(vnp_seq_reader *r, vnp_record *rec, vnp_error *err);

int vnp_seq_read(vnp_seq_reader *r, vnp_record *rec, vnp_error *err)
{
    if (r->failure.code != VNP_OK) {
        if (err)
            *err = r->failure;
        return -(int)r->failure.code;
    }
    if (r->finished)
        return 0;
    vnp_error local;
    vnp_error *e = err ? err : &local;
    int rc = read_record(r, rec, e);
    if (rc < 0) {
        r->failure = *e;
        r->failure.code = (vnp_code)-rc;
    }
    return rc;
}

static int read_record(vnp_seq_reader *r, vnp_record *rec, vnp_error *err)
{
    if (r->format == FMT_UNKNOWN && r->pending < 0) {
        int rc = read_first_header(r, err);
        if (rc < 0)
            return rc;
    }
    while (r->pending >= 0) {
        r->seq_len = 0;
        int slot = r->format == FMT_FASTA ? read_fasta_body(r, err) : read_fastq_body(r, err);
        if (slot < 0)
            return slot;
        if (r->seq_len == 0) {
            r->skipped++;
            if (!r->quiet)
                vnp_warn("%s:%zu: record '%s' has an empty sequence; skipped", r->name,
                         r->hline[slot], r->hdr[slot]);
            continue;
        }
        if (r->nucleotide_only && vnp_seq_looks_like_protein(r->seq, r->seq_len))
            return protein_error(r, slot, err);
        r->seq[r->seq_len] = '\0';
        rec->id = r->hdr[slot];
        rec->id_len = r->hid_len[slot];
        rec->desc = r->hdr[slot] + r->hdesc_off[slot];
        rec->seq = r->seq;
        rec->len = r->seq_len;
        rec->qual = r->format == FMT_FASTQ ? r->qual : NULL;
        rec->line = r->hline[slot];
        r->records++;
        return 1;
    }
    r->finished = 1;
    if (r->quiet)
        ;
    else if (r->records == 0 && r->skipped == 0)
        vnp_warn("%s: no sequences in the input", r->name);
    else if (r->records == 0)
        vnp_warn("%s: every record has an empty sequence; nothing to process", r->name);
    return 0;
}
