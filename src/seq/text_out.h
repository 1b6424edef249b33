/* Buffered text output to a file written under a temporary name and renamed
 * into place when complete (internal to src/seq). */
#ifndef VNP_SEQ_TEXT_OUT_H
#define VNP_SEQ_TEXT_OUT_H

#include <stddef.h>
#include <string.h>

#include "virnucpro/error.h"

typedef struct vnp_text_out {
    int fd;
    char *path;     /* final name */
    char *tmp_path; /* name while being written */
    char *buf;
    size_t len, cap;
    int failed;     /* a write failed; the error is reported at flush/commit */
    int saved_errno;
    int created;    /* the temporary file exists */
} vnp_text_out;

/* Creates path's temporary sibling for writing. */
vnp_code vnp_text_out_open(vnp_text_out *o, const char *path, vnp_error *err);
/* Appends bytes (buffered). Errors surface at vnp_text_out_finish/commit. */
void vnp_text_out_put_slow(vnp_text_out *o, const char *s, size_t n);
static inline void vnp_text_out_put(vnp_text_out *o, const char *s, size_t n)
{
    if (o->cap - o->len >= n) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
    } else {
        vnp_text_out_put_slow(o, s, n);
    }
}
/* Appends ">" id suffix "\n". */
void vnp_text_out_header(vnp_text_out *o, const char *id, size_t id_len, const char *suffix);
/* Appends s as lines of at most width characters, each ending in '\n'. */
void vnp_text_out_wrapped(vnp_text_out *o, const char *s, size_t n, size_t width);
/* Flushes and closes the temporary file (the file stays under its temporary name). */
vnp_code vnp_text_out_finish(vnp_text_out *o, vnp_error *err);
/* Finishes if needed and renames the file to its final name. On error the
 * caller still owns o (call vnp_text_out_abort). */
vnp_code vnp_text_out_commit(vnp_text_out *o, vnp_error *err);
/* Closes and removes the temporary file; frees o (no-op after a successful commit). */
void vnp_text_out_abort(vnp_text_out *o);

#endif
