/* SPDX-License-Identifier: Apache-2.0 */
/* Audit records: one JSON object per line on stdout and appended to an audit file. */
#ifndef MESHLET_AUDIT_H
#define MESHLET_AUDIT_H

#include <stddef.h>

#include "meshlet/err.h"

struct audit;

/*
 * audit_open - start an audit trail: records go to stdout, and also to the file at path
 * when path is not NULL (created with mode 0600, opened for appending). Returns NULL and
 * fills e when the file cannot be opened.
 */
struct audit *audit_open(const char *path, struct err *e);

/*
 * audit_write - write one record as one line: {"ts": RFC 3339 UTC with milliseconds,
 * then the record's members}. members holds len bytes of the members as JSON text without
 * the braces ("\"event\":\"x\",\"n\":1"; len 0 for none), as a JSON writer made them
 * (jwrite, which also replaces bytes that are not UTF-8). Each line reaches the kernel with
 * one write(2) per sink before this returns, so that a crash right after an answer never
 * loses its record. Safe from many threads. Returns 0, or -errno when a sink failed (the
 * other still got the line).
 */
int audit_write(struct audit *a, const char *members, size_t len);

/* audit_close - close the file and free a; a may be NULL. */
void audit_close(struct audit *a);

#endif
