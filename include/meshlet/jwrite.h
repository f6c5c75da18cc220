/* SPDX-License-Identifier: Apache-2.0 */
/* A growing buffer of JSON text: the answers, patches and audit lines of the hot path. */
#ifndef MESHLET_JWRITE_H
#define MESHLET_JWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/*
 * The writer adds no separators of its own: the caller writes the commas and colons with
 * jwrite_lit, which keeps the answer's layout readable where it is built. A writer that
 * ran out of memory remembers it, ignores further writes, and jwrite_take returns NULL:
 * callers check once, at the end. The text is what json_dumps(JSON_COMPACT) writes for the
 * same values, member order kept, in a fraction of the time.
 */
struct jwrite {
	char *buf;
	size_t len, cap;
	bool failed;
};

/* jwrite_init - an empty writer with room for about hint bytes (0: a default). */
void jwrite_init(struct jwrite *w, size_t hint);

/* jwrite_free - release what w holds; it may then be initialised again. */
void jwrite_free(struct jwrite *w);

/* jwrite_raw - append n bytes as they are. */
void jwrite_raw(struct jwrite *w, const char *s, size_t n);

/* jwrite_lit - append a string literal as it is. */
#define jwrite_lit(w, lit) jwrite_raw((w), "" lit, sizeof(lit) - 1)

/*
 * jwrite_string - append the n bytes of s as a quoted JSON string: quotes, backslashes and
 * control characters escaped, bytes that are not valid UTF-8 replaced with U+FFFD.
 */
void jwrite_string(struct jwrite *w, const char *s, size_t n);

/* jwrite_str - jwrite_string of a NUL-terminated string. */
void jwrite_str(struct jwrite *w, const char *s);

/* jwrite_int - append a decimal integer. */
void jwrite_int(struct jwrite *w, long long v);

/* jwrite_value - append a jansson value (read only; jansson iterates no const objects). */
void jwrite_value(struct jwrite *w, json_t *v);

/*
 * jwrite_base64 - append the n bytes of data as a quoted base64 string (standard alphabet,
 * padded). Not constant-time, unlike lib/base64.c: for public data such as a patch.
 */
void jwrite_base64(struct jwrite *w, const void *data, size_t n);

/*
 * jwrite_take - the text, NUL-terminated and malloc'd (the caller frees it), with its
 * length in *len when len is not NULL; w is left empty. NULL when a write ran out of memory.
 */
char *jwrite_take(struct jwrite *w, size_t *len);

#endif
