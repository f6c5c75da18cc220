/* SPDX-License-Identifier: Apache-2.0 */
/* Audit records: one JSON object per line on stdout and appended to an audit file. */
#ifndef MESHLET_AUDIT_H
#define MESHLET_AUDIT_H

#include <jansson.h>

#include "meshlet/err.h"

struct audit;

/*
 * audit_open - start an audit trail: records go to stdout, and also to the file at path
 * when path is not NULL (created with mode 0600, opened for appending). Returns NULL and
 * fills e when the file cannot be opened.
 */
struct audit *audit_open(const char *path, struct err *e);

/*
 * audit_write - write record (borrowed) as one line, with "ts" (RFC 3339 UTC with
 * milliseconds) put first. Each line reaches the kernel with one write(2) per sink
 * before this returns, so that a crash right after an answer never loses its record.
 * Safe from many threads. Returns 0, or -errno when a sink failed (the other still got
 * the line).
 */
int audit_write(struct audit *a, json_t *record);

/* audit_close - close the file and free a; a may be NULL. */
void audit_close(struct audit *a);

/*
 * audit_string - a JSON string of text that came from outside (a header, a name in a
 * token): bytes that are not valid UTF-8 become '?', so the field is never lost.
 * NULL text gives JSON null. Returns a new reference.
 */
json_t *audit_string(const char *text);

#endif
