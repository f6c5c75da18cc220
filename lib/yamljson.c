/* SPDX-License-Identifier: Apache-2.0 */
/* YAML to jansson values, reading scalars as Kubernetes does, and jansson values to YAML. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "meshlet/yamljson.h"

#define YJ_TAG_PREFIX "tag:yaml.org,2002:"

/*
 * Scalar resolution, after go-yaml v2's resolve() (which sigs.k8s.io/yaml uses). The
 * comments name the Go functions whose behaviour each piece reproduces.
 */

enum yj_kind { YJ_STR, YJ_NULL, YJ_BOOL, YJ_INT, YJ_UINT, YJ_FLOAT, YJ_INF, YJ_NAN };

struct yj_scalar {
	enum yj_kind kind;
	bool b;     /* YJ_BOOL */
	int64_t i;  /* YJ_INT */
	uint64_t u; /* YJ_UINT: above INT64_MAX */
	double d;   /* YJ_FLOAT; the sign for YJ_INF */
};

/* go-yaml v2's resolveMap: words read as booleans, null and special floats. */
static const char yj_true[] = " y Y yes Yes YES true True TRUE on On ON ";
static const char yj_false[] = " n N no No NO false False FALSE off Off OFF ";
static const char yj_null[] = "  ~ null Null NULL ";
static const char yj_inf[] = " .inf .Inf .INF +.inf +.Inf +.INF ";
static const char yj_minus_inf[] = " -.inf -.Inf -.INF ";
static const char yj_nan[] = " .nan .NaN .NAN ";

/* Is s one of the space-separated words of list? */
static bool yj_in(const char *list, const char *s, size_t n)
{
	/* Without spaces and NULs in s, a match lies within list: w[n + 1] is in bounds. */
	if (memchr(s, ' ', n) != NULL || memchr(s, '\0', n) != NULL)
		return false;
	for (const char *w = list; (w = strchr(w, ' ')) != NULL && w[1] != '\0'; w++)
		if (strncmp(w + 1, s, n) == 0 && w[n + 1] == ' ')
			return true;
	return false;
}

/* go-yaml v2's resolveTable: the first byte decides what a plain scalar may be. */
static char yj_hint(unsigned char c)
{
	if (c == '+' || c == '-')
		return 'S';
	if (c >= '0' && c <= '9')
		return 'D';
	if (c == '.')
		return '.';
	return strchr("yYnNtTfFoO~", c) != NULL && c != '\0' ? 'M' : 0;
}

static bool yj_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* strconv.ParseUint(s, 0, 64) on text without '_': true when s is such a number. */
static bool yj_go_uint(const char *s, size_t n, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (n == 0)
		return false;
	if (s[0] == '0') {
		char c = n >= 3 ? (char)(s[1] | 0x20) : '\0';
		size_t skip = c == 'b' || c == 'o' || c == 'x' ? 2 : 1;

		base = c == 'b' ? 2 : c == 'x' ? 16 : 8;
		s += skip;
		n -= skip;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
			d = (unsigned)((c | 0x20) - 'a') + 10;
		else
			return false;
		if (d >= base || v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

/* strconv.ParseInt(s, 0, 64) on text without '_'. */
static bool yj_go_int(const char *s, size_t n, int64_t *out)
{
	bool neg = n > 0 && s[0] == '-';
	uint64_t u;

	if (n > 0 && (s[0] == '+' || s[0] == '-'))
		s++, n--;
	if (!yj_go_uint(s, n, &u) || u > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return false;
	*out = neg ? (int64_t)(0 - u) : (int64_t)u;
	return true;
}

/*
 * Patterns: go-yaml v2's yamlStyleFloat, and strings that YAML 1.1 (PyYAML) or YAML 1.2
 * readers take for numbers or timestamps beyond what go-yaml does (sexagesimal 1:30,
 * 1_000, 0o17, 0x_1, 1e400, ._5, dates), which the emitter quotes.
 */
static const char yj_float_re[] = "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$";
static const char yj_number_re[] =
    "^[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|"
    "[0-9][0-9_]*(:[0-5]?[0-9])*(\\.[0-9_]*)?([eE][-+]?[0-9]+)?|"
    "\\.[0-9_]+([eE][-+]?[0-9]+)?|\\.(inf|Inf|INF)|\\.(nan|NaN|NAN))$|"
    "^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]*)?"
    "([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?$";
static regex_t yj_float_rx, yj_number_rx;
static bool yj_rx_ready;
static pthread_once_t yj_rx_once = PTHREAD_ONCE_INIT;

static void yj_rx_init(void)
{
	yj_rx_ready = regcomp(&yj_float_rx, yj_float_re, REG_EXTENDED | REG_NOSUB) == 0 &&
	              regcomp(&yj_number_rx, yj_number_re, REG_EXTENDED | REG_NOSUB) == 0;
}

/* Does s (NUL-terminated, n bytes) match rx? False when the patterns failed to compile. */
static bool yj_match(const regex_t *rx, const char *s, size_t n)
{
	pthread_once(&yj_rx_once, yj_rx_init);
	return yj_rx_ready && memchr(s, '\0', n) == NULL && regexec(rx, s, 0, NULL, 0) == 0;
}

/* Reads a plain scalar as go-yaml v2 does. Returns 0, or -ENOMEM. */
static int yj_resolve(const char *s, size_t n, struct yj_scalar *r)
{
	char small[64];
	char *plain = small;
	char hint = n == 0 ? 'N' : yj_hint((unsigned char)s[0]);
	size_t m = 0;

	memset(r, 0, sizeof(*r));
	r->kind = YJ_STR;
	if (hint == 0)
		return 0;
	r->b = yj_in(yj_true, s, n);
	r->d = yj_in(yj_minus_inf, s, n) ? -1 : 1;
	if (r->b || yj_in(yj_false, s, n))
		r->kind = YJ_BOOL;
	else if (yj_in(yj_null, s, n))
		r->kind = YJ_NULL;
	else if (yj_in(yj_inf, s, n) || r->d < 0)
		r->kind = YJ_INF;
	else if (yj_in(yj_nan, s, n))
		r->kind = YJ_NAN;
	if (r->kind != YJ_STR || hint == 'M')
		return 0;
	if (n >= sizeof(small) && (plain = malloc(n + 1)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		/* Numbers drop every '_'; strconv.ParseFloat (the '.' case) wants digits
		 * on both sides of one. */
		if (s[i] == '_' && hint == '.' &&
		    (i == 0 || !yj_is_digit(s[i - 1]) || i + 1 == n || !yj_is_digit(s[i + 1])))
			goto out;
		if (s[i] != '_')
			plain[m++] = s[i];
	}
	plain[m] = '\0';
	if (hint != '.' && yj_go_int(plain, m, &r->i)) {
		r->kind = YJ_INT;
	} else if (hint != '.' && yj_go_uint(plain, m, &r->u)) {
		r->kind = YJ_UINT;
	} else if (yj_match(&yj_float_rx, plain, m)) {
		/* strconv.ParseFloat fails on overflow, and go-yaml keeps the string. */
		double d = strtod(plain, NULL);

		if (!isinf(d)) {
			r->kind = YJ_FLOAT;
			r->d = d;
		}
	}
out:
	if (plain != small)
		free(plain);
	return 0;
}

/* strconv.FormatFloat(f, 'g', -1, 32), as sigs.k8s.io/yaml writes a float key. */
static void yj_go_float32(double value, char *buf, size_t size)
{
	float f = (float)value;
	char digits[32];
	int prec = 1, exp;

	if (!isfinite(f) || f == 0) {
		snprintf(buf, size, "%s",
		         isnan(f)     ? ".nan"
		         : isinf(f)   ? (f > 0 ? ".inf" : "-.inf")
		         : signbit(f) ? "-0"
		                      : "0");
		return;
	}
	/* The fewest digits that read back as the same float. */
	while (snprintf(digits, sizeof(digits), "%.*e", prec - 1, (double)f) > 0 &&
	       strtof(digits, NULL) != f && prec < 9)
		prec++;
	exp = atoi(strchr(digits, 'e') + 1);
	if (exp < -4 || exp >= 6)
		snprintf(buf, size, "%s", digits);
	else
		snprintf(buf, size, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, (double)f);
}

/*
 * The converter works on libyaml's events rather than its document API, so that depth,
 * anchors and aliases are checked as they come and nothing recurses on the input's
 * shape: open collections sit on an explicit stack of frames.
 */

struct yj_anchor {
	json_t *value; /* NULL while the node is open, or for .inf and .nan */
	size_t nodes;  /* values in it, and bytes of text, for the expansion budget */
	size_t bytes;
	unsigned height; /* 0 for a scalar, else 1 + the tallest child */
	int special;     /* .inf (1), -.inf (-1), .nan (2), or 0 */
	bool open;
};

struct yj_frame {
	json_t *value;  /* the array or object being filled */
	json_t *merged; /* object: keys that came from "<<", which the mapping may override */
	char *key;      /* the key waiting for its value */
	size_t keylen;
	unsigned key_line;
	bool has_key;
	bool merge;      /* the waiting key is "<<" */
	unsigned *lines; /* the line of each key, in the object's order, for messages */
	size_t nlines, clines;
	size_t anchor; /* 1 + index into anchors, or 0 */
	size_t nodes0, bytes0;
	unsigned height;
};

struct yj {
	const char *name;
	const char *text;
	size_t len;
	struct err *e;
	struct yj_frame *frames;
	size_t nframes, cframes;
	struct yj_anchor *anchors;
	size_t nanchors, canchors;
	json_t *anchor_index; /* anchor name -> index into anchors */
	json_t *root;
	unsigned line;                   /* of the document's first node */
	size_t nodes, bytes;             /* made in this document */
	size_t alias_nodes, alias_bytes; /* made by expanding aliases, in the whole input */
	struct yamljson_doc *docs;
	size_t ndocs, cdocs;
};

static int yj_fail(struct yj *p, int code, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int yj_fail(struct yj *p, int code, unsigned line, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(p->e, code, "%s:%u: %s", p->name, line, what);
}

static int yj_nomem(struct yj *p)
{
	return err_set(p->e, -ENOMEM, "%s: out of memory", p->name);
}

/* Copies text for a message: at most 40 bytes, unprintable bytes as \xNN. */
static const char *yj_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t pos = 0;

	for (size_t i = 0; i < len && pos + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 40) {
			snprintf(buf + pos, size - pos, "...");
			return buf;
		}
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			pos += (size_t)snprintf(buf + pos, size - pos, "\\x%02x", c);
		else
			buf[pos++] = (char)c;
	}
	buf[pos] = '\0';
	return buf;
}

/* A tag as it is usually written: "!!binary" rather than "tag:yaml.org,2002:binary". */
static const char *yj_tag_name(char *buf, size_t size, const char *tag)
{
	size_t n = strlen(YJ_TAG_PREFIX);

	if (strncmp(tag, YJ_TAG_PREFIX, n) == 0) {
		snprintf(buf, size, "!!");
		yj_quote(buf + 2, size - 2, tag + n, strlen(tag + n));
		return buf;
	}
	return yj_quote(buf, size, tag, strlen(tag));
}

/* Grows an array of n used elements to hold one more. */
static int yj_grow(void **array, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? *cap * 2 : 8;
	void *grown;

	if (n < *cap)
		return 0;
	grown = realloc(*array, want * size);
	if (grown == NULL)
		return -ENOMEM;
	*array = grown;
	*cap = want;
	return 0;
}

static struct yj_frame *yj_top(struct yj *p)
{
	return p->nframes > 0 ? &p->frames[p->nframes - 1] : NULL;
}

/* Is the next node a mapping's key? */
static bool yj_want_key(struct yj *p)
{
	struct yj_frame *f = yj_top(p);

	return f != NULL && json_is_object(f->value) && !f->has_key;
}

static void yj_anchors_clear(struct yj *p)
{
	for (size_t i = 0; i < p->nanchors; i++)
		json_decref(p->anchors[i].value);
	p->nanchors = 0;
	if (p->anchor_index != NULL)
		json_object_clear(p->anchor_index);
}

/* Starts an anchor (&name): aliases to it fail until yj_anchor_close. */
static int yj_anchor_open(struct yj *p, const yaml_char_t *name, size_t *slot)
{
	json_t *index;

	if (yj_grow((void **)&p->anchors, &p->canchors, p->nanchors, sizeof(*p->anchors)) < 0)
		return yj_nomem(p);
	index = json_integer((json_int_t)p->nanchors);
	if (json_object_set_new(p->anchor_index, (const char *)name, index) < 0)
		return yj_nomem(p);
	memset(&p->anchors[p->nanchors], 0, sizeof(*p->anchors));
	p->anchors[p->nanchors].open = true;
	*slot = ++p->nanchors;
	return 0;
}

static void yj_anchor_close(struct yj *p, size_t slot, json_t *value, size_t nodes, size_t bytes,
                            unsigned height, int special)
{
	struct yj_anchor *a = &p->anchors[slot - 1];

	a->value = json_incref(value);
	a->nodes = nodes;
	a->bytes = bytes;
	a->height = height;
	a->special = special;
	a->open = false;
}

/* Which line set the key at position idx of the frame's object? */
static unsigned yj_key_line(struct yj_frame *f, const char *key, size_t keylen)
{
	const char *k;
	size_t klen, i = 0;
	json_t *v;

	json_object_keylen_foreach(f->value, k, klen, v)
	{
		if (klen == keylen && memcmp(k, key, klen) == 0)
			return i < f->nlines ? f->lines[i] : 0;
		i++;
	}
	return 0;
}

static int yj_note_line(struct yj_frame *f, unsigned line)
{
	if (yj_grow((void **)&f->lines, &f->clines, f->nlines, sizeof(*f->lines)) < 0)
		return -ENOMEM;
	f->lines[f->nlines++] = line;
	return 0;
}

/* Sets the waiting key to v (which it takes). Keys from "<<" may be overridden once. */
static int yj_set(struct yj *p, struct yj_frame *f, json_t *v)
{
	char q[200];

	if (json_object_getn(f->value, f->key, f->keylen) != NULL) {
		if (f->merged == NULL || json_object_getn(f->merged, f->key, f->keylen) == NULL) {
			json_decref(v);
			return yj_fail(p, ERR_YAML_DUPLICATE_KEY, f->key_line,
			               "duplicate key \"%s\" (first at line %u)",
			               yj_quote(q, sizeof(q), f->key, f->keylen),
			               yj_key_line(f, f->key, f->keylen));
		}
		json_object_deln(f->merged, f->key, f->keylen);
	} else if (yj_note_line(f, f->key_line) < 0) {
		json_decref(v);
		return yj_nomem(p);
	}
	return json_object_setn_new(f->value, f->key, f->keylen, v) < 0 ? yj_nomem(p) : 0;
}

/* Copies the keys of src that the mapping does not have yet (earlier ones win). */
static int yj_merge_one(struct yj *p, struct yj_frame *f, json_t *src)
{
	const char *k;
	size_t klen;
	json_t *v;

	json_object_keylen_foreach(src, k, klen, v)
	{
		if (json_object_getn(f->value, k, klen) != NULL)
			continue;
		if (f->merged == NULL && (f->merged = json_object()) == NULL)
			return yj_nomem(p);
		if (json_object_setn_new(f->merged, k, klen, json_null()) < 0 ||
		    yj_note_line(f, f->key_line) < 0 || json_object_setn(f->value, k, klen, v) < 0)
			return yj_nomem(p);
	}
	return 0;
}

/* Applies "<<: v" (taking v): a mapping, an alias to one, or a list of mappings. */
static int yj_merge(struct yj *p, struct yj_frame *f, json_t *v, bool alias)
{
	size_t i;
	json_t *item;
	int rc = 0;

	if (json_is_array(v) && !alias) {
		json_array_foreach(v, i, item) {
			if (!json_is_object(item))
				rc = -1;
		}
		for (i = 0; rc == 0 && i < json_array_size(v); i++)
			rc = yj_merge_one(p, f, json_array_get(v, i));
	} else if (json_is_object(v)) {
		rc = yj_merge_one(p, f, v);
	} else {
		rc = -1;
	}
	json_decref(v);
	if (rc == -1)
		rc = yj_fail(p, ERR_YAML_MERGE, f->key_line,
		             "the value of a merge key (<<) must be a mapping, an alias to one, or "
		             "a list of those");
	return rc;
}

/* Hands v (taken) to the open collection, or makes it the document's root. */
static int yj_add(struct yj *p, json_t *v, unsigned height, bool alias)
{
	struct yj_frame *f = yj_top(p);
	int rc;

	if (f == NULL) {
		p->root = v;
		return 0;
	}
	if (height > f->height)
		f->height = height;
	if (json_is_array(f->value))
		return json_array_append_new(f->value, v) < 0 ? yj_nomem(p) : 0;
	rc = f->merge ? yj_merge(p, f, v, alias) : yj_set(p, f, v);
	free(f->key);
	f->key = NULL;
	f->has_key = f->merge = false;
	return rc;
}

/* A key's text from a value, as sigs.k8s.io/yaml writes it. Returns 0, -EINVAL, -ENOMEM. */
static int yj_key_text(const json_t *v, int special, char **key, size_t *len)
{
	char buf[64];
	const char *s = buf;
	size_t n;

	if (special != 0)
		s = special == 2 ? ".nan" : special > 0 ? ".inf" : "-.inf";
	else if (json_is_string(v))
		s = json_string_value(v);
	else if (json_is_integer(v))
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		yj_go_float32(json_real_value(v), buf, sizeof(buf));
	else if (json_is_boolean(v))
		s = json_is_true(v) ? "true" : "false";
	else
		return -EINVAL;
	n = json_is_string(v) && special == 0 ? json_string_length(v) : strlen(s);
	*key = malloc(n + 1);
	if (*key == NULL)
		return -ENOMEM;
	memcpy(*key, s, n);
	(*key)[n] = '\0';
	*len = n;
	return 0;
}

/* Makes v (a scalar's value, or an alias's) the waiting key of the top frame. */
static int yj_key(struct yj *p, const json_t *v, int special, bool merge, unsigned line)
{
	struct yj_frame *f = yj_top(p);
	int rc;

	f->key_line = line;
	if (merge) {
		f->has_key = f->merge = true;
		return 0;
	}
	rc = yj_key_text(v, special, &f->key, &f->keylen);
	if (rc == -ENOMEM)
		return yj_nomem(p);
	if (rc < 0)
		return yj_fail(p, ERR_YAML_KEY, line,
		               "a key must be a string, number or boolean, not %s",
		               json_is_null(v)     ? "null"
		               : json_is_object(v) ? "a mapping"
		                                   : "a list");
	/* jansson 2.14's json_deep_copy and json_equal cut keys at a NUL: refuse them. */
	if (memchr(f->key, '\0', f->keylen) != NULL)
		return yj_fail(p, ERR_YAML_KEY, line, "a key must not contain a NUL byte (\\0)");
	p->bytes += f->keylen;
	f->has_key = true;
	return 0;
}

/* Reads a scalar event's value, honouring its tag. Returns 0 or a negative code. */
static int yj_scalar_kind(struct yj *p, const yaml_event_t *ev, unsigned line, struct yj_scalar *r,
                          bool *merge)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *want;
	char q[200];
	enum yj_kind k;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

	*merge = false;
	memset(r, 0, sizeof(*r));
	r->kind = YJ_STR;
	if (tag == NULL) {
		*merge = plain && n == 2 && memcmp(s, "<<", 2) == 0;
		return plain && yj_resolve(s, n, r) < 0 ? yj_nomem(p) : 0;
	}
	if (strcmp(tag, "!") == 0 || strcmp(tag, YJ_TAG_PREFIX "str") == 0)
		return 0;
	if (strcmp(tag, YJ_TAG_PREFIX "merge") == 0) {
		*merge = true;
		return 0;
	}
	want = strncmp(tag, YJ_TAG_PREFIX, strlen(YJ_TAG_PREFIX)) == 0 ? tag + strlen(YJ_TAG_PREFIX)
	                                                               : "";
	if (strcmp(want, "int") != 0 && strcmp(want, "float") != 0 && strcmp(want, "bool") != 0 &&
	    strcmp(want, "null") != 0)
		return yj_fail(p, ERR_YAML_TAG, line, "unsupported tag %s",
		               yj_tag_name(q, sizeof(q), tag));
	if (yj_resolve(s, n, r) < 0)
		return yj_nomem(p);
	k = r->kind;
	if (want[0] == 'f' && (k == YJ_INT || k == YJ_UINT)) {
		r->d = k == YJ_INT ? (double)r->i : (double)r->u;
		r->kind = k = YJ_FLOAT;
	}
	if ((want[0] == 'i' && (k == YJ_INT || k == YJ_UINT)) ||
	    (want[0] == 'f' && (k == YJ_FLOAT || k == YJ_INF || k == YJ_NAN)) ||
	    (want[0] == 'b' && k == YJ_BOOL) || (want[0] == 'n' && k == YJ_NULL))
		return 0;
	return yj_fail(p, ERR_YAML_TAG, line, "\"%s\" cannot be read as !!%s",
	               yj_quote(q, sizeof(q), s, n), want);
}

static int yj_scalar(struct yj *p, const yaml_event_t *ev, unsigned line)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	struct yj_scalar r;
	int special = 0;
	bool merge;
	json_t *v = NULL;
	char q[200];
	int rc;

	if (p->nframes == 0) {
		p->line = line;
		/* An empty document: nothing, or only comments, after "---". */
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n == 0 &&
		    ev->data.scalar.tag == NULL && ev->data.scalar.anchor == NULL)
			return 0;
	}
	rc = yj_scalar_kind(p, ev, line, &r, &merge);
	if (rc < 0)
		return rc;
	switch (r.kind) {
	case YJ_INF:
	case YJ_NAN:
		special = r.kind == YJ_NAN ? 2 : r.d > 0 ? 1 : -1;
		break;
	default:
		v = r.kind == YJ_NULL    ? json_null()
		    : r.kind == YJ_BOOL  ? json_boolean(r.b)
		    : r.kind == YJ_INT   ? json_integer(r.i)
		    : r.kind == YJ_UINT  ? json_real((double)r.u)
		    : r.kind == YJ_FLOAT ? json_real(r.d)
		                         : json_stringn(s, n);
		if (v == NULL)
			return yj_nomem(p);
	}
	p->nodes++;
	p->bytes += n;
	if (ev->data.scalar.anchor != NULL) {
		size_t slot;

		rc = yj_anchor_open(p, ev->data.scalar.anchor, &slot);
		if (rc < 0)
			goto out;
		yj_anchor_close(p, slot, v, 1, n, 0, special);
	}
	if (yj_want_key(p)) {
		if (r.kind == YJ_NULL)
			rc = yj_fail(p, ERR_YAML_KEY, line, "a key cannot be null");
		else if (r.kind == YJ_UINT)
			rc = yj_fail(p, ERR_YAML_KEY, line, "integer key %s is too large",
			             yj_quote(q, sizeof(q), s, n));
		else
			rc = yj_key(p, v, special, merge, line);
		goto out;
	}
	if (merge && ev->data.scalar.tag != NULL) {
		rc = yj_fail(p, ERR_YAML_TAG, line, "!!merge is only allowed on a key");
		goto out;
	}
	if (special != 0) {
		rc = yj_fail(p, ERR_YAML_NUMBER, line,
		             "\"%s\" is infinite or not a number, which JSON cannot represent",
		             yj_quote(q, sizeof(q), s, n));
		goto out;
	}
	return yj_add(p, v, 0, false);
out:
	json_decref(v);
	return rc;
}

static int yj_alias(struct yj *p, const yaml_event_t *ev, unsigned line)
{
	const char *name = (const char *)ev->data.alias.anchor;
	json_t *index = json_object_get(p->anchor_index, name);
	struct yj_anchor *a;
	json_t *copy;

	if (p->nframes == 0)
		p->line = line;
	if (index == NULL)
		return yj_fail(p, ERR_YAML_ALIAS, line,
		               "alias *%s names no anchor &%s earlier in this document", name,
		               name);
	a = &p->anchors[json_integer_value(index)];
	if (a->open)
		return yj_fail(p, ERR_YAML_ALIAS, line,
		               "alias *%s is inside the node it names (a recursive structure)",
		               name);
	if (a->nodes > YAMLJSON_ALIAS_NODES_MAX - p->alias_nodes ||
	    a->bytes > YAMLJSON_ALIAS_BYTES_MAX - p->alias_bytes)
		return yj_fail(p, ERR_YAML_EXPANSION, line,
		               "aliases expand to more than %d values or %d bytes (is this a "
		               "\"billion laughs\" document?)",
		               YAMLJSON_ALIAS_NODES_MAX, YAMLJSON_ALIAS_BYTES_MAX);
	p->alias_nodes += a->nodes;
	p->alias_bytes += a->bytes;
	if (yj_want_key(p))
		return yj_key(p, a->value, a->special, false, line);
	if (a->special != 0)
		return yj_fail(p, ERR_YAML_NUMBER, line,
		               "alias *%s is infinite or not a number, which JSON cannot represent",
		               name);
	if (p->nframes + a->height > YAMLJSON_DEPTH_MAX)
		return yj_fail(p, ERR_YAML_TOO_DEEP, line,
		               "alias *%s makes collections nest deeper than %d levels", name,
		               YAMLJSON_DEPTH_MAX);
	copy = json_deep_copy(a->value);
	if (copy == NULL)
		return yj_nomem(p);
	p->nodes += a->nodes;
	p->bytes += a->bytes;
	return yj_add(p, copy, a->height, true);
}

static int yj_start(struct yj *p, const yaml_event_t *ev, unsigned line)
{
	bool map = ev->type == YAML_MAPPING_START_EVENT;
	const char *tag =
	    (const char *)(map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
	const yaml_char_t *anchor =
	    map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
	struct yj_frame *f;
	char q[200];

	if (p->nframes == 0)
		p->line = line;
	if (yj_want_key(p))
		return yj_fail(p, ERR_YAML_KEY, line,
		               "a key must be a string, number or boolean, not a %s",
		               map ? "mapping" : "list");
	if (tag != NULL && strcmp(tag, "!") != 0 &&
	    strcmp(tag, map ? YJ_TAG_PREFIX "map" : YJ_TAG_PREFIX "seq") != 0)
		return yj_fail(p, ERR_YAML_TAG, line, "unsupported tag %s on a %s",
		               yj_tag_name(q, sizeof(q), tag), map ? "mapping" : "list");
	if (p->nframes >= YAMLJSON_DEPTH_MAX)
		return yj_fail(p, ERR_YAML_TOO_DEEP, line, "collections nest deeper than %d levels",
		               YAMLJSON_DEPTH_MAX);
	if (yj_grow((void **)&p->frames, &p->cframes, p->nframes, sizeof(*p->frames)) < 0)
		return yj_nomem(p);
	f = &p->frames[p->nframes];
	memset(f, 0, sizeof(*f));
	f->value = map ? json_object() : json_array();
	if (f->value == NULL)
		return yj_nomem(p);
	p->nframes++;
	f->nodes0 = p->nodes++;
	f->bytes0 = p->bytes;
	return anchor != NULL ? yj_anchor_open(p, anchor, &f->anchor) : 0;
}

static void yj_frame_free(struct yj_frame *f)
{
	json_decref(f->value);
	json_decref(f->merged);
	free(f->key);
	free(f->lines);
	memset(f, 0, sizeof(*f));
}

static int yj_end(struct yj *p)
{
	struct yj_frame *f = yj_top(p);
	json_t *v = f->value;
	unsigned height = f->height + 1;

	if (f->anchor != 0)
		yj_anchor_close(p, f->anchor, v, p->nodes - f->nodes0, p->bytes - f->bytes0, height,
		                0);
	f->value = NULL;
	yj_frame_free(f);
	p->nframes--;
	return yj_add(p, v, height, false);
}

static int yj_doc_end(struct yj *p)
{
	json_t *root = p->root;

	p->root = NULL;
	yj_anchors_clear(p);
	if (root == NULL)
		return 0;
	if (yj_grow((void **)&p->docs, &p->cdocs, p->ndocs, sizeof(*p->docs)) < 0) {
		json_decref(root);
		return yj_nomem(p);
	}
	p->docs[p->ndocs].value = root;
	p->docs[p->ndocs].line = p->line;
	p->ndocs++;
	return 0;
}

static int yj_event(struct yj *p, const yaml_event_t *ev)
{
	unsigned line = (unsigned)ev->start_mark.line + 1;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		p->nodes = p->bytes = 0;
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		return yj_doc_end(p);
	case YAML_SCALAR_EVENT:
		return yj_scalar(p, ev, line);
	case YAML_ALIAS_EVENT:
		return yj_alias(p, ev, line);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return yj_start(p, ev, line);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return yj_end(p);
	default:
		return 0;
	}
}

/* Is the character at (line, column), both from 0, of the input a tab? */
static bool yj_tab_at(const struct yj *p, size_t line, size_t column)
{
	size_t i = 0;

	for (size_t l = 0; l < line && i < p->len; i++)
		if (p->text[i] == '\n')
			l++;
	/* Columns count characters: step over UTF-8 continuation bytes. */
	for (size_t c = 0; c < column && i < p->len && p->text[i] != '\n'; c++)
		while (++i < p->len && ((unsigned char)p->text[i] & 0xc0) == 0x80)
			;
	return i < p->len && p->text[i] == '\t';
}

static int yj_parser_error(struct yj *p, const yaml_parser_t *y)
{
	const char *problem = y->problem != NULL ? y->problem : "cannot parse";
	unsigned line = 1;

	if (y->error == YAML_MEMORY_ERROR)
		return yj_nomem(p);
	if (y->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset, not a line. */
		for (size_t i = 0; i < y->problem_offset && i < p->len; i++)
			if (p->text[i] == '\n')
				line++;
		if (y->problem_value == -1)
			return yj_fail(p, ERR_YAML_ENCODING, line, "%s (at byte %zu)", problem,
			               y->problem_offset);
		return yj_fail(p, ERR_YAML_ENCODING, line, "%s (0x%02X at byte %zu)", problem,
		               (unsigned)y->problem_value, y->problem_offset);
	}
	return yj_fail(p, ERR_YAML_SYNTAX, (unsigned)y->problem_mark.line + 1, "%s%s%s%s", problem,
	               y->context != NULL ? " " : "", y->context != NULL ? y->context : "",
	               yj_tab_at(p, y->problem_mark.line, y->problem_mark.column)
	                   ? " (a tab: YAML indents with spaces only)"
	                   : "");
}

void yamljson_docs_free(struct yamljson_doc *docs, size_t n)
{
	for (size_t i = 0; docs != NULL && i < n; i++)
		json_decref(docs[i].value);
	free(docs);
}

int yamljson_parse(const char *name, const char *text, size_t len, struct yamljson_doc **docs,
                   size_t *ndocs, struct err *e)
{
	struct yj p = { .name = name != NULL ? name : "<input>", .text = text, .len = len, .e = e };
	yaml_parser_t parser;
	yaml_event_t ev;
	bool parser_ready = false;
	int rc = 0;

	if (len > YAMLJSON_INPUT_MAX)
		return err_set(e, ERR_YAML_TOO_LARGE, "%s: input is larger than %d bytes", p.name,
		               YAMLJSON_INPUT_MAX);
	p.anchor_index = json_object();
	if (p.anchor_index == NULL || !yaml_parser_initialize(&parser)) {
		rc = yj_nomem(&p);
		goto out;
	}
	parser_ready = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text != NULL ? text : ""),
	                             text != NULL ? len : 0);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	for (;;) {
		bool end;

		if (!yaml_parser_parse(&parser, &ev)) {
			rc = yj_parser_error(&p, &parser);
			goto out;
		}
		end = ev.type == YAML_STREAM_END_EVENT;
		rc = yj_event(&p, &ev);
		yaml_event_delete(&ev);
		if (rc < 0)
			goto out;
		if (end)
			break;
	}
	*docs = p.docs;
	*ndocs = p.ndocs;
	p.docs = NULL;
	p.ndocs = 0;
out:
	if (parser_ready)
		yaml_parser_delete(&parser);
	while (p.nframes > 0)
		yj_frame_free(&p.frames[--p.nframes]);
	free(p.frames);
	yj_anchors_clear(&p);
	free(p.anchors);
	json_decref(p.anchor_index);
	json_decref(p.root);
	yamljson_docs_free(p.docs, p.ndocs);
	return rc;
}

/*
 * Emitting. libyaml's emitter does the writing and escaping; we only pick each string's
 * style, because libyaml's own choice does not know which plain scalars a reader would
 * take for numbers, booleans or null.
 */

struct yj_emitter {
	yaml_emitter_t y;
	char *data;
	size_t len, cap;
	struct err *e;
};

/* Would a plain scalar s read back as something other than this string? */
static bool yj_needs_quotes(const char *s, size_t len)
{
	struct yj_scalar r;

	if (len == 0 || (len == 2 && memcmp(s, "<<", 2) == 0) || (len == 1 && s[0] == '='))
		return true;
	if (yj_resolve(s, len, &r) < 0 || r.kind != YJ_STR)
		return true;
	if (!yj_is_digit(s[0]) && s[0] != '-' && s[0] != '+' && s[0] != '.')
		return false;
	pthread_once(&yj_rx_once, yj_rx_init);
	return !yj_rx_ready || yj_match(&yj_number_rx, s, len);
}

static yaml_scalar_style_t yj_string_style(const char *s, size_t len)
{
	bool lines = false;

	for (size_t i = 0; i < len; i++) {
		const unsigned char *u = (const unsigned char *)s + i;

		/* Other line breaks (\r, NEL, LS, PS) would not survive a literal block. */
		if (u[0] == '\r' || (u[0] == 0xc2 && i + 1 < len && u[1] == 0x85) ||
		    (u[0] == 0xe2 && i + 2 < len && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9)))
			return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		if (u[0] == '\n')
			lines = true;
	}
	if (lines)
		return YAML_LITERAL_SCALAR_STYLE;
	/* libyaml itself falls back to quotes when plain is impossible (": ", " #"...). */
	return yj_needs_quotes(s, len) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE;
}

/*
 * The shortest text that reads back as the same double, always with a '.' so that it
 * reads back as a real: 3.0, 0.25, 1000.0, 1.0e+20, 1.5e-07 (fixed notation from 1e-4
 * up to 1e16, like Python's repr).
 */
static void yj_format_real(double d, char *buf, size_t size)
{
	int prec = 1, exp;
	char *e;

	while (snprintf(buf, size, "%.*e", prec - 1, d) > 0 && strtod(buf, NULL) != d && prec < 17)
		prec++;
	e = strchr(buf, 'e');
	exp = atoi(e + 1);
	if (exp >= -4 && exp < 16) {
		snprintf(buf, size, "%.*f", prec - 1 - exp > 1 ? prec - 1 - exp : 1, d);
	} else if (prec == 1) {
		char tail[16];

		snprintf(tail, sizeof(tail), "%s", e);
		snprintf(e, size - (size_t)(e - buf), ".0%s", tail);
	}
}

/* Emits ev (which libyaml always consumes). */
static int yj_put(struct yj_emitter *em, yaml_event_t *ev)
{
	if (yaml_emitter_emit(&em->y, ev))
		return 0;
	if (em->y.error == YAML_MEMORY_ERROR || em->y.error == YAML_WRITER_ERROR)
		return err_set(em->e, -ENOMEM, "cannot write YAML: out of memory");
	return err_set(em->e, ERR_YAML_EMIT, "cannot write YAML: %s",
	               em->y.problem != NULL ? em->y.problem : "emitter error");
}

static int yj_put_scalar(struct yj_emitter *em, const char *s, size_t len,
                         yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (len > INT_MAX)
		return err_set(em->e, ERR_YAML_EMIT, "cannot write a string of %zu bytes", len);
	/* libyaml takes the text as non-const, though it only copies it. */
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)s, (int)len, 1,
	                                  1, style))
		return err_set(em->e, ERR_YAML_EMIT,
		               "cannot write a string that is not valid UTF-8");
	return yj_put(em, &ev);
}

static int yj_emit_value(struct yj_emitter *em, const json_t *v, unsigned depth)
{
	bool map = json_is_object(v),
	     empty = json_is_object(v) ? json_object_size(v) == 0 : json_array_size(v) == 0;
	yaml_event_t ev;
	const char *key;
	size_t klen, i;
	json_t *child;
	char num[64];
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return yj_put_scalar(em, json_string_value(v), json_string_length(v),
		                     yj_string_style(json_string_value(v), json_string_length(v)));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return yj_put_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		yj_format_real(json_real_value(v), num, sizeof(num));
		return yj_put_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_NULL:
		key = json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false";
		return yj_put_scalar(em, key, strlen(key), YAML_PLAIN_SCALAR_STYLE);
	case JSON_OBJECT:
	case JSON_ARRAY:
		break;
	}
	if (depth > YAMLJSON_DEPTH_MAX)
		return err_set(em->e, ERR_YAML_TOO_DEEP,
		               "cannot write YAML: collections nest deeper than %d levels",
		               YAMLJSON_DEPTH_MAX);
	if (map)
		yaml_mapping_start_event_initialize(
		    &ev, NULL, NULL, 1, empty ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
	else
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
		                                     empty ? YAML_FLOW_SEQUENCE_STYLE
		                                           : YAML_BLOCK_SEQUENCE_STYLE);
	if ((rc = yj_put(em, &ev)) < 0)
		return rc;
	if (map) {
		/* json_object_iter wants a non-const object, though it only reads it. */
		json_object_keylen_foreach((json_t *)(uintptr_t)v, key, klen, child)
		{
			/* yamljson_parse refuses such keys (see yj_key). */
			if (memchr(key, '\0', klen) != NULL)
				return err_set(em->e, ERR_YAML_EMIT,
				               "cannot write YAML: a key contains a NUL byte");
			rc = yj_put_scalar(em, key, klen, yj_string_style(key, klen));
			if (rc < 0 || (rc = yj_emit_value(em, child, depth + 1)) < 0)
				return rc;
		}
		yaml_mapping_end_event_initialize(&ev);
	} else {
		json_array_foreach(v, i, child) {
			if ((rc = yj_emit_value(em, child, depth + 1)) < 0)
				return rc;
		}
		yaml_sequence_end_event_initialize(&ev);
	}
	return yj_put(em, &ev);
}

static int yj_write(void *data, unsigned char *buffer, size_t size)
{
	struct yj_emitter *em = data;
	size_t cap = em->cap > 0 ? em->cap : 256;
	char *grown;

	while (cap - em->len <= size) {
		if (cap > SIZE_MAX / 2)
			return 0;
		cap *= 2;
	}
	if (cap != em->cap) {
		if ((grown = realloc(em->data, cap)) == NULL)
			return 0;
		em->data = grown;
		em->cap = cap;
	}
	memcpy(em->data + em->len, buffer, size);
	em->len += size;
	em->data[em->len] = '\0';
	return 1;
}

/* Writes one (value) or n (values) documents after the text in *out. */
static int yj_emit(const json_t *value, json_t *const *values, size_t n, char **out, size_t *len,
                   struct err *e)
{
	struct yj_emitter em = { .data = *out, .e = e };
	yaml_event_t ev;
	int rc = -ENOMEM;

	em.len = *out != NULL ? *len : 0;
	em.cap = *out != NULL ? *len + 1 : 0;
	/* Even an empty result is a buffer. */
	if (!yj_write(&em, (unsigned char *)"", 0) || !yaml_emitter_initialize(&em.y)) {
		err_set(e, rc, "cannot write YAML: out of memory");
		goto out;
	}
	yaml_emitter_set_output(&em.y, yj_write, &em);
	yaml_emitter_set_unicode(&em.y, 1);
	yaml_emitter_set_indent(&em.y, 2);
	yaml_emitter_set_width(&em.y, -1);
	yaml_emitter_set_break(&em.y, YAML_LN_BREAK);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	rc = yj_put(&em, &ev);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const json_t *v = values != NULL ? values[i] : value;

		if (v == NULL) {
			rc = err_set(e, ERR_YAML_EMIT, "cannot write YAML: no value");
			break;
		}
		/* After earlier text, the first document needs its "---" too. */
		yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, em.len == 0);
		if ((rc = yj_put(&em, &ev)) < 0 || (rc = yj_emit_value(&em, v, 1)) < 0)
			break;
		yaml_document_end_event_initialize(&ev, 1);
		rc = yj_put(&em, &ev);
	}
	if (rc == 0) {
		yaml_stream_end_event_initialize(&ev);
		rc = yj_put(&em, &ev);
	}
	yaml_emitter_delete(&em.y);
out:
	if (rc < 0 && *out == NULL) {
		free(em.data);
		em.data = NULL;
	} else if (rc < 0 && em.data != NULL) {
		em.data[*len] = '\0';
	}
	*out = em.data;
	if (rc == 0)
		*len = em.len;
	return rc;
}

int yamljson_emit(const json_t *value, char **out, size_t *len, struct err *e)
{
	return yj_emit(value, NULL, 1, out, len, e);
}

int yamljson_emit_docs(json_t *const *values, size_t n, char **out, size_t *len, struct err *e)
{
	return yj_emit(NULL, values, n, out, len, e);
}
