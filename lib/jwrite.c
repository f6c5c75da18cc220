/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text written straight into one growing buffer: escaping, jansson values, base64. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/jparse.h"

#include "meshlet/jwrite.h"

#define JWRITE_DEFAULT_CAP 4096

void jwrite_init(struct jwrite *w, size_t hint)
{
	memset(w, 0, sizeof(*w));
	w->cap = hint > 0 ? hint : JWRITE_DEFAULT_CAP;
	w->buf = malloc(w->cap);
	if (w->buf == NULL) {
		w->cap = 0;
		w->failed = true;
	}
}

void jwrite_free(struct jwrite *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

/* Makes room for n more bytes and a NUL; false (and failed) when there is none. */
static bool jwrite_room(struct jwrite *w, size_t n)
{
	size_t cap;
	char *grown;

	if (w->failed)
		return false;
	if (n < w->cap - w->len)
		return true;
	if (n > SIZE_MAX / 2 - w->len) {
		w->failed = true;
		return false;
	}
	cap = w->cap > 0 ? w->cap : JWRITE_DEFAULT_CAP;
	while (cap - w->len <= n)
		cap *= 2;
	grown = realloc(w->buf, cap);
	if (grown == NULL) {
		w->failed = true;
		return false;
	}
	w->buf = grown;
	w->cap = cap;
	return true;
}

void jwrite_raw(struct jwrite *w, const char *s, size_t n)
{
	if (!jwrite_room(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/*
 * 1 for the bytes a JSON string holds as they are: ASCII from the space on, but '"' and '\\'.
 * A table, because this loop sees every byte of every answer.
 */
static const unsigned char jwrite_plain[256] = {
	[' ' ... '!'] = 1,
	['#' ... '['] = 1,
	[']' ... 0x7f] = 1,
};

void jwrite_string(struct jwrite *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	/* The worst case is six bytes per input byte ("\u001f"); one reservation covers it. */
	if (n > SIZE_MAX / 8 || !jwrite_room(w, n * 6 + 2))
		return;
	w->buf[w->len++] = '"';
	while (i < n) {
		size_t run = i;
		char *out;

		while (run < n && jwrite_plain[p[run]])
			run++;
		memcpy(w->buf + w->len, p + i, run - i);
		w->len += run - i;
		i = run;
		if (i == n)
			break;
		out = w->buf + w->len;
		if (p[i] >= 0x80) {
			size_t len = jparse_utf8_len(p + i, n - i);

			if (len > 0) {
				memcpy(out, p + i, len);
				w->len += len;
				i += len;
			} else {
				/* U+FFFD in UTF-8, three bytes: fewer than the six reserved. */
				memcpy(out, "\xef\xbf\xbd", 3);
				w->len += 3;
				i++;
			}
			continue;
		}
		out[0] = '\\';
		switch (p[i]) {
		case '"':
		case '\\':
			out[1] = (char)p[i];
			break;
		case '\b':
			out[1] = 'b';
			break;
		case '\f':
			out[1] = 'f';
			break;
		case '\n':
			out[1] = 'n';
			break;
		case '\r':
			out[1] = 'r';
			break;
		case '\t':
			out[1] = 't';
			break;
		default:
			memcpy(out + 1, "u00", 3);
			out[4] = hex[p[i] >> 4];
			out[5] = hex[p[i] & 0xf];
			w->len += 4;
			break;
		}
		w->len += 2;
		i++;
	}
	w->buf[w->len++] = '"';
}

void jwrite_str(struct jwrite *w, const char *s)
{
	jwrite_string(w, s, strlen(s));
}

void jwrite_int(struct jwrite *w, long long v)
{
	char tmp[24];
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t pos = sizeof(tmp);

	do {
		tmp[--pos] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		tmp[--pos] = '-';
	jwrite_raw(w, tmp + pos, sizeof(tmp) - pos);
}

/* As jansson writes a real: 17 significant digits, ".0" when it would read as an integer. */
static void jwrite_real(struct jwrite *w, double v)
{
	char tmp[40], *expo;
	int n;

	if (!isfinite(v)) {
		w->failed = true;
		return;
	}
	n = snprintf(tmp, sizeof(tmp), "%.17g", v);
	if (n < 0 || (size_t)n >= sizeof(tmp) - 2) {
		w->failed = true;
		return;
	}
	if (strspn(tmp, "0123456789-") == (size_t)n) {
		memcpy(tmp + n, ".0", 3);
		n += 2;
	}
	/* jansson writes the exponent without '+' and leading zeros: 1e100, 1e-5. */
	expo = strchr(tmp, 'e');
	if (expo != NULL) {
		char *to = expo + 1, *from = expo + 1;

		if (*from == '+')
			from++;
		else if (*from == '-')
			to = ++from;
		while (from[0] == '0' && from[1] != '\0')
			from++;
		memmove(to, from, strlen(from) + 1);
		n = (int)strlen(tmp);
	}
	jwrite_raw(w, tmp, (size_t)n);
}

void jwrite_value(struct jwrite *w, json_t *v)
{
	size_t i, n;
	const char *key;
	json_t *item;
	bool first = true;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		jwrite_lit(w, "{");
		/* jansson keeps members in insertion order; the iterator walks them so. */
		for (void *it = json_object_iter(v); it != NULL;
		     it = json_object_iter_next(v, it)) {
			if (!first)
				jwrite_lit(w, ",");
			first = false;
			key = json_object_iter_key(it);
			jwrite_string(w, key, json_object_iter_key_len(it));
			jwrite_lit(w, ":");
			jwrite_value(w, json_object_iter_value(it));
		}
		jwrite_lit(w, "}");
		break;
	case JSON_ARRAY:
		jwrite_lit(w, "[");
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			item = json_array_get(v, i);
			if (i > 0)
				jwrite_lit(w, ",");
			jwrite_value(w, item);
		}
		jwrite_lit(w, "]");
		break;
	case JSON_STRING:
		jwrite_string(w, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		jwrite_int(w, (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		jwrite_real(w, json_real_value(v));
		break;
	case JSON_TRUE:
		jwrite_lit(w, "true");
		break;
	case JSON_FALSE:
		jwrite_lit(w, "false");
		break;
	case JSON_NULL:
		jwrite_lit(w, "null");
		break;
	}
}

static const char jwrite_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/* The two characters of every 12 bits: half the lookups of one table of 64. */
static char jwrite_b64_pairs[4096][2];
static pthread_once_t jwrite_b64_once = PTHREAD_ONCE_INIT;

static void jwrite_b64_init(void)
{
	for (size_t i = 0; i < 4096; i++) {
		jwrite_b64_pairs[i][0] = jwrite_b64[i >> 6];
		jwrite_b64_pairs[i][1] = jwrite_b64[i & 0x3f];
	}
}

void jwrite_base64(struct jwrite *w, const void *data, size_t n)
{
	const char *alphabet = jwrite_b64;
	const unsigned char *p = data;
	size_t i = 0;
	char *out;

	if (n > SIZE_MAX / 2 || !jwrite_room(w, (n + 2) / 3 * 4 + 2))
		return;
	pthread_once(&jwrite_b64_once, jwrite_b64_init);
	out = w->buf + w->len;
	*out++ = '"';
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		memcpy(out, jwrite_b64_pairs[v >> 12], 2);
		memcpy(out + 2, jwrite_b64_pairs[v & 0xfff], 2);
		out += 4;
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		out[0] = alphabet[v >> 18];
		out[1] = alphabet[(v >> 12) & 0x3f];
		out[2] = i + 1 < n ? alphabet[(v >> 6) & 0x3f] : '=';
		out[3] = '=';
		out += 4;
	}
	*out++ = '"';
	w->len = (size_t)(out - w->buf);
}

char *jwrite_take(struct jwrite *w, size_t *len)
{
	char *text;

	if (!jwrite_room(w, 0)) {
		jwrite_free(w);
		return NULL;
	}
	w->buf[w->len] = '\0';
	text = w->buf;
	if (len != NULL)
		*len = w->len;
	memset(w, 0, sizeof(*w));
	return text;
}
