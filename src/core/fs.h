/* Small file-system helpers shared by the stages that write files. */
#ifndef VNP_CORE_FS_H
#define VNP_CORE_FS_H

#include "virnucpro/error.h"

/* mkdir -p: creates dir and its missing parents. `what` names the directory in
 * messages ("output directory", "model cache"). Fails when a component exists and
 * is not a directory. */
vnp_code vnp_mkdirs(const char *dir, const char *what, vnp_error *err);

/* 1 when path exists and is a directory (symbolic links followed). */
int vnp_is_dir(const char *path);

/* The names of the entries of dir (without "." and ".."), unsorted. */
vnp_code vnp_list_dir(const char *dir, char ***names, int *count, vnp_error *err);
void vnp_list_dir_free(char **names, int count);

#endif
