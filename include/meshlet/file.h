/* SPDX-License-Identifier: Apache-2.0 */
/* Reading whole small files (configuration, key sets), with a size limit. */
#ifndef MESHLET_FILE_H
#define MESHLET_FILE_H

#include <stddef.h>

#include "meshlet/err.h"

/*
 * file_read - read all of path (a file, a pipe or /dev/stdin alike) into a malloc'd
 * buffer with a NUL after the last byte, which the caller frees. A file longer than max
 * bytes is refused with -EFBIG. Returns 0, or -errno with e saying which file and why.
 */
int file_read(const char *path, size_t max, char **out, size_t *len, struct err *e);

#endif
