/* Small file-system helpers: mkdir -p with messages that name the directory, listing. */
#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

vnp_code vnp_mkdirs(const char *dir, const char *what, vnp_error *err)
{
    char *p = strdup(dir);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc = VNP_OK;
    size_t n = strlen(p);
    for (size_t i = 1; i <= n && rc == VNP_OK; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = vnp_fail(err, VNP_EIO, "cannot create %s '%s': %s", what, p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = vnp_fail(err, VNP_EIO, "%s path '%s' exists and is not a directory", what, p);
        p[i] = c;
    }
    free(p);
    return rc;
}

int vnp_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

vnp_code vnp_list_dir(const char *dir, char ***names, int *count, vnp_error *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return vnp_fail(err, VNP_EIO, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    int cap = 0;
    vnp_code rc = VNP_OK;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            char **n = realloc(*names, (size_t)cap * sizeof *n);
            if (!n) {
                rc = vnp_fail(err, VNP_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *names = n;
        }
        if (!((*names)[*count] = strdup(e->d_name))) {
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory listing %s", dir);
            break;
        }
        (*count)++;
    }
    closedir(d);
    if (rc) {
        vnp_list_dir_free(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return rc;
}

void vnp_list_dir_free(char **names, int count)
{
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
