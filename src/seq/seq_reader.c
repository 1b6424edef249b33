/* Streaming FASTA/FASTQ reader over zlib (plain or gzip input, files or stdin).
 *
 * Input is pulled through one large buffer; lines are found with memchr and,
 * when a line straddles two buffer fills, assembled in a line buffer. Memory is
 * bounded by the longest record. Sequence bytes are filtered through a class
 * table (keep / drop whitespace / reject) in one pass. */
#include "virnucpro/seq.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define READ_CHUNK (1u << 20)

enum { FMT_UNKNOWN = 0, FMT_FASTA, FMT_FASTQ };

/* Byte classes of sequence and quality lines. */
enum { C_KEEP = 0, C_SPACE = 1, C_BAD = 2 };

struct vnp_seq_reader {
    gzFile gz;
    char *name;
    unsigned char *buf;
    size_t pos, end;
    int eof;
    uint64_t bytes;
    size_t line; /* lines handed out so far = number of the last line */

    char *lbuf; /* a line assembled across buffer fills */
    size_t lcap;

    int format;
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
        r->name = strdup(name);
        r->buf = malloc(READ_CHUNK);
    }
    if (!r || !r->name || !r->buf) {
        close(fd);
        vnp_seq_close(r);
        return vnp_fail(err, VNP_ENOMEM, "out of memory opening '%s'", name);
    }
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        close(fd);
        vnp_seq_close(r);
        return vnp_fail(err, VNP_ENOMEM, "cannot start reading '%s' (zlib: out of memory)", name);
    }
    gzbuffer(r->gz, 1u << 18);
    r->pending = -1;
    *out = r;
    return VNP_OK;
}

void vnp_seq_close(vnp_seq_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose(r->gz);
    free(r->name);
    free(r->buf);
    free(r->lbuf);
    free(r->hdr[0]);
    free(r->hdr[1]);
    free(r->seq);
    free(r->qual);
    free(r);
}

size_t vnp_seq_records(const vnp_seq_reader *r) { return r->records; }
size_t vnp_seq_skipped(const vnp_seq_reader *r) { return r->skipped; }
/* Bytes read into the buffer minus those not parsed yet: the position of the parser, not
 * of the last 1 MiB refill (predict's ETA reads it as records go by). */
uint64_t vnp_seq_bytes(const vnp_seq_reader *r) { return r->bytes - (uint64_t)(r->end - r->pos); }
const char *vnp_seq_name(const vnp_seq_reader *r) { return r->name; }

/* Refills the buffer. Returns bytes read, 0 at the end, or -(code). */
static int refill(vnp_seq_reader *r, vnp_error *err)
{
    r->pos = r->end = 0;
    if (r->eof)
        return 0;
    int n = gzread(r->gz, r->buf, READ_CHUNK);
    if (n > 0) { /* data first; an error after it comes back from the next call */
        r->end = (size_t)n;
        r->bytes += (uint64_t)n;
        return n;
    }
    r->eof = 1;
    int zerr = Z_OK;
    const char *zmsg = gzerror(r->gz, &zerr);
    const char *colon = strrchr(zmsg, ':'); /* drop zlib's "<fd:N>: " prefix */
    if (colon && colon[1] == ' ')
        zmsg = colon + 2;
    if (zerr == Z_ERRNO)
        return -(int)vnp_fail(err, VNP_EIO, "%s:%zu: read error: %s", r->name, r->line + 1,
                              strerror(errno));
    if (zerr == Z_BUF_ERROR) /* zlib's report of input that stops inside the stream */
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: the gzip stream ends unexpectedly: the file is "
                              "truncated; re-download or re-compress the input",
                              r->name, r->line + 1);
    if (n < 0 || zerr != Z_OK)
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: the gzip stream is corrupt (zlib: %s); re-download or "
                              "re-compress the input",
                              r->name, r->line + 1, zmsg);
    return 0;
}

/* Next line without its '\n'. Returns 1, 0 at the end of input, or -(code). */
static int next_line(vnp_seq_reader *r, const char **line, size_t *len, vnp_error *err)
{
    if (r->pos == r->end) {
        int n = refill(r, err);
        if (n <= 0)
            return n;
    }
    const unsigned char *start = r->buf + r->pos;
    const unsigned char *nl = memchr(start, '\n', r->end - r->pos);
    if (nl) {
        *line = (const char *)start;
        *len = (size_t)(nl - start);
        r->pos = (size_t)(nl - r->buf) + 1;
        r->line++;
        return 1;
    }
    /* The line continues past this fill: assemble it. */
    size_t have = 0;
    for (;;) {
        size_t avail = r->end - r->pos;
        const unsigned char *p = r->buf + r->pos;
        nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (grow(&r->lbuf, &r->lcap, have + take + 1))
            return nomem(r, err);
        memcpy(r->lbuf + have, p, take);
        have += take;
        if (nl) {
            r->pos += take + 1;
            break;
        }
        int n = refill(r, err);
        if (n < 0)
            return n;
        if (n == 0)
            break; /* last line without a newline */
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

/* Reads the body of the FASTQ record whose header is pending. */
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
        if (grow(&r->qual, &r->qual_cap, r->qual_len + n + 1))
            return nomem(r, err);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)l[i];
            if (c <= 0x20 || c >= 0x7f)
                return -(int)vnp_fail(err, VNP_EFORMAT,
                                      "%s:%zu: byte 0x%02x at column %zu is not a quality "
                                      "character; the input looks binary or is not FASTQ",
                                      r->name, r->line, c, i + 1);
        }
        memcpy(r->qual + r->qual_len, l, n);
        r->qual_len += n;
        if (n == 0 && r->qual_len < r->seq_len)
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: FASTQ record '%s' (line %zu) has %zu bases but %zu "
                                  "quality characters; the lengths must match",
                                  r->name, r->line, r->hdr[cur], r->hline[cur], r->seq_len,
                                  r->qual_len);
    }
    if (r->qual_len != r->seq_len)
        return -(int)vnp_fail(err, VNP_EFORMAT,
                              "%s:%zu: FASTQ record '%s' (line %zu) has %zu bases but %zu "
                              "quality characters; the lengths must match",
                              r->name, r->line, r->hdr[cur], r->hline[cur], r->seq_len,
                              r->qual_len);
    if (grow(&r->qual, &r->qual_cap, r->qual_len + 1))
        return nomem(r, err);
    r->qual[r->qual_len] = '\0';
    /* The next non-blank line must start the next record. */
    while ((rc = next_line(r, &l, &n, err)) == 1) {
        if (is_blank(l, n))
            continue;
        if (l[0] != '@')
            return -(int)vnp_fail(err, VNP_EFORMAT,
                                  "%s:%zu: expected '@' starting the FASTQ record after '%s' "
                                  "(line %zu); the quality line is longer than the sequence or "
                                  "the file is not FASTQ",
                                  r->name, r->line, r->hdr[cur], r->hline[cur]);
        rc = store_header(r, cur ^ 1, l, n, err);
        return rc < 0 ? rc : cur;
    }
    return rc < 0 ? rc : cur;
}

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
            vnp_warn("%s:%zu: record '%s' has an empty sequence; skipped", r->name, r->hline[slot],
                     r->hdr[slot]);
            continue;
        }
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
    if (r->records == 0 && r->skipped == 0)
        vnp_warn("%s: no sequences in the input", r->name);
    else if (r->records == 0)
        vnp_warn("%s: every record has an empty sequence; nothing to process", r->name);
    return 0;
}
