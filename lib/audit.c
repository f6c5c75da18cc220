/* SPDX-License-Identifier: Apache-2.0 */
/* Audit trail writer: whole JSON lines to stdout and an append-only file. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meshlet/audit.h"
#include "meshlet/time.h"

/* Lines up to PIPE_BUF bytes are written by one atomic write(). */
#define AUDIT_ATOMIC_MAX 4096

struct audit {
	int fd; /* the audit file, or -1 */
	pthread_rwlock_t lock;
};

struct audit *audit_open(const char *path, struct err *e)
{
	struct audit *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	a->fd = -1;
	pthread_rwlock_init(&a->lock, NULL);
	if (path != NULL) {
		a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (a->fd < 0) {
			err_set(e, -errno, "%s: cannot open the audit file: %s", path,
			        err_str(-errno));
			audit_close(a);
			return NULL;
		}
	}
	return a;
}

static int audit_put(int fd, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

int audit_write(struct audit *a, const char *members, size_t len)
{
	char stack[2048], *line = stack, ts[TIME_RFC3339_MAX];
	struct timespec now;
	size_t n, at;
	int tn, rc = 0, rc2;

	clock_gettime(CLOCK_REALTIME, &now);
	tn = time_format_rfc3339(&now, true, ts, sizeof(ts));
	if (tn < 0)
		return -EINVAL;
	/* {"ts":"...",<members>}\n */
	n = 8 + (size_t)tn + 2 + len + 2;
	if (n > sizeof(stack)) {
		line = malloc(n);
		if (line == NULL)
			return -ENOMEM;
	}
	memcpy(line, "{\"ts\":\"", 7);
	at = 7;
	memcpy(line + at, ts, (size_t)tn);
	at += (size_t)tn;
	line[at++] = '"';
	if (len > 0) {
		line[at++] = ',';
		memcpy(line + at, members, len);
		at += len;
	}
	line[at++] = '}';
	line[at++] = '\n';
	/*
	 * A line written by one write() never mixes with another thread's: appends to a
	 * regular file are atomic, and so are pipe writes up to PIPE_BUF. So lines that fit
	 * share the lock (threads do not queue on each other for every request), and only
	 * longer ones, which a pipe may split, take it alone.
	 */
	if (at > AUDIT_ATOMIC_MAX)
		pthread_rwlock_wrlock(&a->lock);
	else
		pthread_rwlock_rdlock(&a->lock);
	rc = audit_put(STDOUT_FILENO, line, at);
	if (a->fd >= 0) {
		rc2 = audit_put(a->fd, line, at);
		if (rc2 < 0)
			rc = rc2;
	}
	pthread_rwlock_unlock(&a->lock);
	if (line != stack)
		free(line);
	return rc;
}

void audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	pthread_rwlock_destroy(&a->lock);
	free(a);
}
