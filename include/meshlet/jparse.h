/* SPDX-License-Identifier: Apache-2.0 */
/* A strict JSON reader that builds jansson values, several times faster than json_loadb. */
#ifndef MESHLET_JPARSE_H
#define MESHLET_JPARSE_H

#include <stddef.h>

#include <jansson.h>

/*
 * Where and why a text is not JSON. The text is one of a fixed set of phrases and never
 * quotes the input, which may be a token or a Secret.
 */
struct jparse_error {
	char text[96]; /* what is wrong: "invalid escape", "duplicate object key" ... */
	int line;      /* 1-based */
	int column;    /* 1-based, in bytes */
	size_t offset; /* 0-based, in bytes from the start of the text */
};

/* Objects and arrays nest at most this deep, as in jansson. */
#define JPARSE_MAX_DEPTH 2048

/*
 * jparse_load - read the len bytes of text as one JSON object or array, with whitespace
 * around it and nothing else, into jansson values (a new reference). As strict as
 * json_loadb(JSON_REJECT_DUPLICATES): RFC 8259 grammar, valid UTF-8 only, no "\u0000"
 * and no lone surrogate escapes, no duplicate keys, integers that fit a json_int_t, finite
 * reals, at most JPARSE_MAX_DEPTH levels. Member order is kept. Returns NULL with e filled
 * when the text is not such JSON, or when memory runs out ("out of memory"). A byte that
 * is not UTF-8 where a token should start is "invalid UTF-8", as jansson says too.
 *
 * Why not json_loadb: jansson reads a byte at a time through a stream and checks every
 * string again when it makes the value, some 200 instructions a byte: a third of a
 * webhook review, and most of the JSON cost of verifying a service-account token. This
 * reader scans strings in runs and builds values with jansson's nocheck constructors once
 * it has checked them itself.
 */
json_t *jparse_load(const char *text, size_t len, struct jparse_error *e);

/*
 * jparse_utf8_len - the length of the valid UTF-8 sequence at s, whose first byte is
 * >= 0x80 and which has n bytes left, or 0 (overlong forms, surrogates and code points past
 * U+10FFFF are not UTF-8). The webhook's JSON writer judges UTF-8 with it too, so that
 * what one accepts the other writes.
 */
size_t jparse_utf8_len(const unsigned char *s, size_t n);

#endif
