/* SPDX-License-Identifier: Apache-2.0 */
/* Whole-file reads with a size limit, for files that are read at start and on change. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "meshlet/file.h"

int file_read(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	/* One byte past the limit tells a file at the limit from one over it. */
	size_t cap = max + 1;
	char *buf = malloc(cap + 1);
	size_t n = 0;
	int fd = -1;
	int rc = 0;

	*out = NULL;
	*len = 0;
	if (buf == NULL)
		return err_set(e, -ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		rc = -errno;
	while (rc == 0 && n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		else if (r == 0)
			break;
		else
			n += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	if (rc == 0 && n > max)
		rc = -EFBIG;
	if (rc < 0) {
		free(buf);
		if (rc == -EFBIG)
			return err_set(e, rc, "%s: larger than %zu bytes", path, max);
		return err_set(e, rc, "%s: cannot read: %s", path, err_str(rc));
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}
