/* Test helpers: text compressed with gzip, bzip2, xz or zstd (as their command-line tools
 * write it), optionally as several concatenated streams. */
#ifndef VNP_TEST_COMPRESS_SUPPORT_H
#define VNP_TEST_COMPRESS_SUPPORT_H

#include <bzlib.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

enum { TZ_PLAIN = 0, TZ_GZIP, TZ_BZIP2, TZ_XZ, TZ_ZSTD, TZ_COUNT };
static const char *const tz_name[TZ_COUNT] = {"plain", "gzip", "bzip2", "xz", "zstd"};
static const char *const tz_ext[TZ_COUNT] = {"", ".gz", ".bz2", ".xz", ".zst"};

/* Compresses src[0..n) as one stream appended to out (capacity grown); returns 0 or -1. */
static int tz_stream(int fmt, const unsigned char *src, size_t n, unsigned char **out,
                     size_t *len, size_t *cap)
{
    size_t bound = n + n / 2 + 4096;
    if (*len + bound > *cap) {
        *cap = (*len + bound) * 2;
        *out = realloc(*out, *cap);
        if (!*out)
            return -1;
    }
    unsigned char *dst = *out + *len;
    size_t room = *cap - *len, made = 0;
    switch (fmt) {
    case TZ_PLAIN:
        memcpy(dst, src, n);
        made = n;
        break;
    case TZ_GZIP: {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        zs.next_in = (unsigned char *)src;
        zs.avail_in = (uInt)n;
        zs.next_out = dst;
        zs.avail_out = (uInt)room;
        int rc = deflate(&zs, Z_FINISH);
        made = zs.total_out;
        deflateEnd(&zs);
        if (rc != Z_STREAM_END)
            return -1;
        break;
    }
    case TZ_BZIP2: {
        unsigned dl = (unsigned)room;
        /* 100k blocks: a few MB of text makes several blocks */
        if (BZ2_bzBuffToBuffCompress((char *)dst, &dl, (char *)src, (unsigned)n, 1, 0, 30) !=
            BZ_OK)
            return -1;
        made = dl;
        break;
    }
    case TZ_XZ:
        if (lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, src, n, dst, &made, room) !=
            LZMA_OK)
            return -1;
        break;
    case TZ_ZSTD: {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1); /* as the zstd tool writes */
        made = ZSTD_compress2(c, dst, room, src, n);
        ZSTD_freeCCtx(c);
        if (ZSTD_isError(made))
            return -1;
        break;
    }
    default: return -1;
    }
    *len += made;
    return 0;
}

/* src in `streams` concatenated streams (cut at even offsets, so mid-line); malloc'd. */
static unsigned char *tz_compress(int fmt, const void *src, size_t n, int streams, size_t *out_len)
{
    unsigned char *out = NULL;
    size_t len = 0, cap = 0;
    *out_len = 0;
    size_t per = streams > 1 ? (n + (size_t)streams - 1) / (size_t)streams : n;
    size_t off = 0;
    do {
        size_t k = n - off < per ? n - off : per;
        if (tz_stream(fmt, (const unsigned char *)src + off, k, &out, &len, &cap) != 0) {
            free(out);
            return NULL;
        }
        off += k;
    } while (off < n);
    *out_len = len;
    return out;
}

#endif
