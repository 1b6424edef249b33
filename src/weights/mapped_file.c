/* Read-only whole-file memory mappings for checkpoint readers. */
#include "weights/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

vnp_code vnp_mapped_file_open(const char *path, vnp_mapped_file **out, vnp_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return vnp_fail(err, e == ENOENT ? VNP_ENOTFOUND : VNP_EIO, "%s: cannot open: %s",
                        path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vnp_fail(err, VNP_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vnp_fail(err, VNP_EIO, "%s: not a regular file; give the checkpoint file itself",
                        path);
    }
    vnp_mapped_file *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(m);
            return vnp_fail(err, VNP_EIO, "%s: cannot memory-map %zu bytes: %s", path,
                            (size_t)st.st_size, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    *out = m;
    return VNP_OK;
}

void vnp_mapped_file_release(void *mapped_file)
{
    vnp_mapped_file *m = mapped_file;
    if (!m)
        return;
    if (m->data)
        munmap((void *)m->data, m->size);
    free(m);
}

vnp_code vnp_mapped_file_parse(vnp_mapped_file *f, const char *path, vnp_mapped_parser parse,
                               vnp_tensor_map **out, vnp_error *err)
{
    *out = NULL;
    vnp_tensor_map *m = vnp_tensor_map_new();
    if (!m) {
        vnp_mapped_file_release(f);
        return vnp_fail(err, VNP_ENOMEM, "%s: out of memory", path);
    }
    vnp_code rc = vnp_tensor_map_hold(m, f, vnp_mapped_file_release, err);
    if (rc == VNP_OK)
        rc = parse(f->data, f->size, path, m, err);
    if (rc) {
        vnp_tensor_map_free(m);
        return rc;
    }
    *out = m;
    return VNP_OK;
}
