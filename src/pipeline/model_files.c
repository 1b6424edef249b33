/* A model's files and their SHA-256 (model_files.h). */
#include "pipeline/model_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "virnucpro/hub.h"

#define MAX_FILES 64

static int by_path(const void *a, const void *b)
{
    return strcmp(((const vnp_model_file *)a)->path, ((const vnp_model_file *)b)->path);
}

void vnp_model_files_free(vnp_model_file *f, int n)
{
    for (int i = 0; f && i < n; i++)
        free(f[i].path);
    free(f);
}

static vnp_code add(vnp_model_file *f, int *n, const char *dir, const char *name, vnp_error *err)
{
    if (*n == MAX_FILES)
        return vnp_fail(err, VNP_EUNSUPPORTED, "%s has more than %d model files", dir, MAX_FILES);
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(len);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (dir)
        snprintf(p, len, "%s/%s", dir, name);
    else
        snprintf(p, len, "%s", name);
    f[*n].path = p;
    (*n)++;
    return VNP_OK;
}

vnp_code vnp_model_files(const char *path, const char *what, vnp_model_file **out, int *nout,
                         vnp_error *err)
{
    *out = NULL;
    *nout = 0;
    vnp_model_file *f = calloc(MAX_FILES, sizeof *f);
    if (!f)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    int n = 0;
    vnp_code rc = VNP_OK;
    if (vnp_is_dir(path)) {
        static const char *const ext[] = {".safetensors", ".bin", ".json", ".pt", ".pth",
                                          ".txt", ".model"};
        char **names = NULL;
        int count = 0;
        if ((rc = vnp_list_dir(path, &names, &count, err))) {
            free(f);
            return rc;
        }
        for (int i = 0; i < count && !rc; i++) {
            size_t nl = strlen(names[i]);
            int want = 0;
            for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++) {
                size_t el = strlen(ext[k]);
                want |= nl > el && !strcmp(names[i] + nl - el, ext[k]);
            }
            if (want)
                rc = add(f, &n, path, names[i], err);
        }
        vnp_list_dir_free(names, count);
    } else {
        rc = add(f, &n, NULL, path, err);
    }
    if (!rc)
        qsort(f, (size_t)n, sizeof *f, by_path);
    for (int i = 0; i < n && !rc; i++) {
        const char *base = strrchr(f[i].path, '/');
        f[i].name = base ? base + 1 : f[i].path;
        struct stat st;
        if ((rc = vnp_file_sha256_cached(f[i].path, f[i].sha256, err))) {
            vnp_error_prefix(err, "%s model: ", what);
            break;
        }
        f[i].bytes = stat(f[i].path, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    if (rc) {
        vnp_model_files_free(f, n);
        return rc;
    }
    *out = f;
    *nout = n;
    return VNP_OK;
}
