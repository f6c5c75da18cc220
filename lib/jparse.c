/* SPDX-License-Identifier: Apache-2.0 */
/* A strict, recursive-descent JSON reader that builds jansson values (see meshlet/jparse.h). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/jparse.h"

struct jparse {
	const unsigned char *start, *p, *end;
	char *scratch; /* decoded strings with escapes */
	size_t scratch_cap;
	struct jparse_error *e;
	bool failed;
};

size_t jparse_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Records the first error, at the current position. Returns NULL for the caller's return. */
static json_t *jparse_fail(struct jparse *j, const char *what)
{
	if (j->failed)
		return NULL;
	j->failed = true;
	/*
	 * Outside strings only ASCII is read, so a syntax error can sit on a byte that is not
	 * UTF-8 at all: say so, as jansson does, rather than name the token it is not.
	 */
	if (j->p < j->end && *j->p >= 0x80 && strstr(what, "UTF-8") == NULL &&
	    strcmp(what, "out of memory") != 0 &&
	    jparse_utf8_len(j->p, (size_t)(j->end - j->p)) == 0)
		what = "invalid UTF-8";
	snprintf(j->e->text, sizeof(j->e->text), "%s", what);
	j->e->offset = (size_t)((j->p < j->end ? j->p : j->end) - j->start);
	j->e->line = 1;
	j->e->column = 1;
	for (const unsigned char *c = j->start; c < j->p && c < j->end; c++) {
		if (*c == '\n') {
			j->e->line++;
			j->e->column = 1;
		} else {
			j->e->column++;
		}
	}
	return NULL;
}

static void jparse_space(struct jparse *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int jparse_hex4(const unsigned char *s, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t jparse_put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* 1 for the bytes a string holds as they are and needs no look at: ASCII but '"', '\\'. */
static const unsigned char jparse_plain[256] = {
	[' ' ... '!'] = 1,
	['#' ... '['] = 1,
	[']' ... 0x7f] = 1,
};

/*
 * Reads the string that starts after the opening quote at j->p. *s and *n give its
 * bytes: inside the text when it has no escape, else in j->scratch. Returns 0 or -1.
 */
static int jparse_string(struct jparse *j, const char **s, size_t *n)
{
	const unsigned char *begin = j->p, *c = j->p;
	size_t len = 0;
	char *out;

	/* The common case: no escape, so the string is the text itself, checked. */
	while (c < j->end && *c != '"' && *c != '\\') {
		if (jparse_plain[*c]) {
			c++;
			continue;
		}
		if (*c < 0x20) {
			j->p = c;
			jparse_fail(j, "control character in a string");
			return -1;
		}
		if (*c >= 0x80) {
			size_t l = jparse_utf8_len(c, (size_t)(j->end - c));

			if (l == 0) {
				j->p = c;
				jparse_fail(j, "invalid UTF-8 in a string");
				return -1;
			}
			c += l;
		} else {
			c++;
		}
	}
	if (c == j->end) {
		j->p = c;
		jparse_fail(j, "premature end of input in a string");
		return -1;
	}
	if (*c == '"') {
		*s = (const char *)begin;
		*n = (size_t)(c - begin);
		j->p = c + 1;
		return 0;
	}
	/* Escapes: decode into scratch, which never needs more than the text's bytes. */
	if (j->scratch_cap < (size_t)(j->end - begin)) {
		size_t cap = (size_t)(j->end - begin);
		char *grown = realloc(j->scratch, cap);

		if (grown == NULL) {
			jparse_fail(j, "out of memory");
			return -1;
		}
		j->scratch = grown;
		j->scratch_cap = cap;
	}
	out = j->scratch;
	memcpy(out, begin, (size_t)(c - begin));
	len = (size_t)(c - begin);
	while (c < j->end && *c != '"') {
		if (*c == '\\') {
			uint32_t cp, lo;

			if (c + 1 >= j->end)
				break;
			switch (c[1]) {
			case '"':
			case '\\':
			case '/':
				out[len++] = (char)c[1];
				c += 2;
				continue;
			case 'b':
				out[len++] = '\b';
				c += 2;
				continue;
			case 'f':
				out[len++] = '\f';
				c += 2;
				continue;
			case 'n':
				out[len++] = '\n';
				c += 2;
				continue;
			case 'r':
				out[len++] = '\r';
				c += 2;
				continue;
			case 't':
				out[len++] = '\t';
				c += 2;
				continue;
			case 'u':
				break;
			default:
				j->p = c;
				jparse_fail(j, "invalid escape");
				return -1;
			}
			j->p = c;
			if (j->end - c < 6 || jparse_hex4(c + 2, &cp) < 0) {
				jparse_fail(j, "invalid \\u escape");
				return -1;
			}
			c += 6;
			if (cp == 0) {
				jparse_fail(j, "\\u0000 is not allowed");
				return -1;
			}
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				jparse_fail(j, "invalid Unicode: a lone low surrogate");
				return -1;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - c < 6 || c[0] != '\\' || c[1] != 'u' ||
				    jparse_hex4(c + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
					jparse_fail(j, "invalid Unicode: a lone high surrogate");
					return -1;
				}
				c += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			/* Six or twelve bytes of escape never make more than four of UTF-8. */
			len += jparse_put_utf8(out + len, cp);
			continue;
		}
		if (*c < 0x20) {
			j->p = c;
			jparse_fail(j, "control character in a string");
			return -1;
		}
		if (*c >= 0x80) {
			size_t l = jparse_utf8_len(c, (size_t)(j->end - c));

			if (l == 0) {
				j->p = c;
				jparse_fail(j, "invalid UTF-8 in a string");
				return -1;
			}
			memcpy(out + len, c, l);
			len += l;
			c += l;
			continue;
		}
		out[len++] = (char)*c++;
	}
	if (c >= j->end) {
		j->p = c;
		jparse_fail(j, "premature end of input in a string");
		return -1;
	}
	*s = j->scratch;
	*n = len;
	j->p = c + 1;
	return 0;
}

static json_t *jparse_number(struct jparse *j)
{
	const unsigned char *c = j->p;
	bool real = false;
	char tmp[64];
	size_t n;

	if (c < j->end && *c == '-')
		c++;
	if (c < j->end && *c == '0') {
		c++;
	} else if (c < j->end && *c >= '1' && *c <= '9') {
		while (c < j->end && *c >= '0' && *c <= '9')
			c++;
	} else {
		return jparse_fail(j, "invalid number");
	}
	if (c < j->end && *c == '.') {
		real = true;
		c++;
		if (c == j->end || *c < '0' || *c > '9') {
			j->p = c;
			return jparse_fail(j, "invalid number: no digit after '.'");
		}
		while (c < j->end && *c >= '0' && *c <= '9')
			c++;
	}
	if (c < j->end && (*c == 'e' || *c == 'E')) {
		real = true;
		c++;
		if (c < j->end && (*c == '+' || *c == '-'))
			c++;
		if (c == j->end || *c < '0' || *c > '9') {
			j->p = c;
			return jparse_fail(j, "invalid number: no digit in the exponent");
		}
		while (c < j->end && *c >= '0' && *c <= '9')
			c++;
	}
	n = (size_t)(c - j->p);
	if (n >= sizeof(tmp) && !real)
		return jparse_fail(j, "too big integer");
	if (!real) {
		long long v;

		memcpy(tmp, j->p, n);
		tmp[n] = '\0';
		errno = 0;
		v = strtoll(tmp, NULL, 10);
		if (errno == ERANGE)
			return jparse_fail(j,
			                   v < 0 ? "too big negative integer" : "too big integer");
		j->p = c;
		return json_integer((json_int_t)v);
	}
	{
		/* strtod needs a NUL: a real of any length is copied, the short ones on the stack.
		 */
		char *big = n < sizeof(tmp) ? tmp : malloc(n + 1);
		double d;

		if (big == NULL)
			return jparse_fail(j, "out of memory");
		memcpy(big, j->p, n);
		big[n] = '\0';
		d = strtod(big, NULL);
		if (big != tmp)
			free(big);
		if (!isfinite(d))
			return jparse_fail(j, "real number overflow");
		j->p = c;
		return json_real(d);
	}
}

static json_t *jparse_value(struct jparse *j, int depth);

static json_t *jparse_object(struct jparse *j, int depth)
{
	json_t *obj = json_object();

	if (obj == NULL)
		return jparse_fail(j, "out of memory");
	j->p++;
	jparse_space(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return obj;
	}
	for (;;) {
		const char *key;
		size_t klen, before;
		char *kcopy = NULL;
		json_t *v;

		if (j->p == j->end || *j->p != '"') {
			jparse_fail(j, "string or '}' expected");
			goto fail;
		}
		j->p++;
		if (jparse_string(j, &key, &klen) < 0)
			goto fail;
		/* The value's own strings reuse the scratch buffer: keep an escaped key apart. */
		if (key == j->scratch) {
			kcopy = malloc(klen + 1);
			if (kcopy == NULL) {
				jparse_fail(j, "out of memory");
				goto fail;
			}
			memcpy(kcopy, key, klen);
			key = kcopy;
		}
		jparse_space(j);
		if (j->p == j->end || *j->p != ':') {
			free(kcopy);
			jparse_fail(j, "':' expected");
			goto fail;
		}
		j->p++;
		v = jparse_value(j, depth);
		if (v == NULL) {
			free(kcopy);
			goto fail;
		}
		before = json_object_size(obj);
		if (json_object_setn_new_nocheck(obj, key, klen, v) < 0) {
			free(kcopy);
			jparse_fail(j, "out of memory");
			goto fail;
		}
		free(kcopy);
		if (json_object_size(obj) == before) {
			jparse_fail(j, "duplicate object key");
			goto fail;
		}
		jparse_space(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			jparse_space(j);
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return obj;
		}
		jparse_fail(j, "',' or '}' expected");
		goto fail;
	}
fail:
	json_decref(obj);
	return NULL;
}

static json_t *jparse_array(struct jparse *j, int depth)
{
	json_t *arr = json_array();

	if (arr == NULL)
		return jparse_fail(j, "out of memory");
	j->p++;
	jparse_space(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return arr;
	}
	for (;;) {
		json_t *v = jparse_value(j, depth);

		if (v == NULL)
			goto fail;
		if (json_array_append_new(arr, v) < 0) {
			jparse_fail(j, "out of memory");
			goto fail;
		}
		jparse_space(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return arr;
		}
		jparse_fail(j, "',' or ']' expected");
		goto fail;
	}
fail:
	json_decref(arr);
	return NULL;
}

static bool jparse_word(struct jparse *j, const char *word, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return false;
	j->p += n;
	return true;
}

/* One value after optional whitespace; depth counts the enclosing objects and arrays. */
static json_t *jparse_value(struct jparse *j, int depth)
{
	const char *s;
	size_t n;
	json_t *v;

	jparse_space(j);
	if (j->p == j->end)
		return jparse_fail(j, "premature end of input");
	switch (*j->p) {
	case '{':
	case '[':
		if (depth >= JPARSE_MAX_DEPTH)
			return jparse_fail(j, "maximum parsing depth reached");
		return *j->p == '{' ? jparse_object(j, depth + 1) : jparse_array(j, depth + 1);
	case '"':
		j->p++;
		if (jparse_string(j, &s, &n) < 0)
			return NULL;
		v = json_stringn_nocheck(s, n);
		return v != NULL ? v : jparse_fail(j, "out of memory");
	case 't':
		if (jparse_word(j, "true", 4))
			return json_true();
		break;
	case 'f':
		if (jparse_word(j, "false", 5))
			return json_false();
		break;
	case 'n':
		if (jparse_word(j, "null", 4))
			return json_null();
		break;
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return jparse_number(j);
		break;
	}
	return jparse_fail(j, "invalid token");
}

json_t *jparse_load(const char *text, size_t len, struct jparse_error *e)
{
	struct jparse j = {
		.start = (const unsigned char *)text,
		.p = (const unsigned char *)text,
		.end = (const unsigned char *)text + len,
		.e = e,
	};
	json_t *v = NULL;

	memset(e, 0, sizeof(*e));
	jparse_space(&j);
	if (j.p == j.end || (*j.p != '{' && *j.p != '['))
		jparse_fail(&j, "'[' or '{' expected");
	else
		v = jparse_value(&j, 0);
	if (v != NULL) {
		jparse_space(&j);
		if (j.p != j.end) {
			jparse_fail(&j, "end of file expected");
			json_decref(v);
			v = NULL;
		}
	}
	free(j.scratch);
	return v;
}
