/* Buffered output files that appear under their final name only when complete. */
#include "seq/text_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUF (1u << 20)

vnp_code vnp_text_out_open(vnp_text_out *o, const char *path, vnp_error *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    size_t n = strlen(path);
    o->path = strdup(path);
    o->tmp_path = malloc(n + 16);
    o->buf = malloc(OUT_BUF);
    if (!o->path || !o->tmp_path || !o->buf) {
        vnp_text_out_abort(o);
        return vnp_fail(err, VNP_ENOMEM, "out of memory opening '%s'", path);
    }
    snprintf(o->tmp_path, n + 16, "%s.partial", path);
    o->cap = OUT_BUF;
    o->fd = open(o->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        int e = errno;
        vnp_text_out_abort(o);
        return vnp_fail(err, VNP_EIO, "cannot create '%s.partial': %s; check that the output "
                        "directory is writable", path, strerror(e));
    }
    o->created = 1;
    return VNP_OK;
}

static void drain(vnp_text_out *o)
{
    size_t done = 0;
    while (done < o->len && !o->failed) {
        ssize_t w = write(o->fd, o->buf + done, o->len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            o->failed = 1;
            o->saved_errno = errno;
            break;
        }
        done += (size_t)w;
    }
    o->len = 0;
}

void vnp_text_out_put_slow(vnp_text_out *o, const char *s, size_t n)
{
    while (n) {
        if (o->len == o->cap)
            drain(o);
        size_t room = o->cap - o->len, take = n < room ? n : room;
        memcpy(o->buf + o->len, s, take);
        o->len += take;
        s += take;
        n -= take;
    }
}

void vnp_text_out_header(vnp_text_out *o, const char *id, size_t id_len, const char *suffix)
{
    vnp_text_out_put(o, ">", 1);
    vnp_text_out_put(o, id, id_len);
    vnp_text_out_put(o, suffix, strlen(suffix));
    vnp_text_out_put(o, "\n", 1);
}

void vnp_text_out_wrapped(vnp_text_out *o, const char *s, size_t n, size_t width)
{
    for (size_t i = 0; i < n; i += width) {
        size_t take = n - i < width ? n - i : width;
        if (o->cap - o->len > take) { /* fast path: line and newline fit */
            memcpy(o->buf + o->len, s + i, take);
            o->len += take;
            o->buf[o->len++] = '\n';
        } else {
            vnp_text_out_put(o, s + i, take);
            vnp_text_out_put(o, "\n", 1);
        }
    }
}

vnp_code vnp_text_out_finish(vnp_text_out *o, vnp_error *err)
{
    drain(o);
    vnp_code rc = VNP_OK;
    if (o->failed)
        rc = vnp_fail(err, VNP_EIO, "cannot write '%s': %s; check free space", o->path,
                      strerror(o->saved_errno));
    if (close(o->fd) != 0 && rc == VNP_OK)
        rc = vnp_fail(err, VNP_EIO, "cannot write '%s': %s; check free space", o->path,
                      strerror(errno));
    o->fd = -1;
    return rc;
}

vnp_code vnp_text_out_commit(vnp_text_out *o, vnp_error *err)
{
    if (o->fd >= 0) {
        vnp_code rc = vnp_text_out_finish(o, err);
        if (rc != VNP_OK)
            return rc;
    }
    /* Replacing a file by rename makes ext4 flush the new data first (its
     * auto_da_alloc heuristic), which costs more than the whole preprocess;
     * remove the old output instead: these files are outputs, not state. */
    if (unlink(o->path) != 0 && errno != ENOENT)
        return vnp_fail(err, VNP_EIO, "cannot replace '%s': %s", o->path, strerror(errno));
    if (rename(o->tmp_path, o->path) != 0)
        return vnp_fail(err, VNP_EIO, "cannot rename '%s' to '%s': %s", o->tmp_path, o->path,
                        strerror(errno));
    free(o->path);
    free(o->tmp_path);
    free(o->buf);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    return VNP_OK;
}

void vnp_text_out_abort(vnp_text_out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    if (o->created)
        unlink(o->tmp_path);
    free(o->path);
    free(o->tmp_path);
    free(o->buf);
    memset(o, 0, sizeof *o);
    o->fd = -1;
}
