/* SPDX-License-Identifier: Apache-2.0 */
/* Loads YAML configuration (libyaml) into a struct described by a table of keys. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "meshlet/config.h"
#include "meshlet/err.h"
#include "meshlet/file.h"
#include "meshlet/spiffe.h"
#include "meshlet/time.h"

#define CONFIG_STRING_MAX 4096
#define CONFIG_NAME_MAX   256
/* Mappings nest no deeper than this; the tables use two or three levels. */
#define CONFIG_DEPTH_MAX 8

static size_t config_nkeys(const struct config_schema *s)
{
	size_t n = 0;

	while (s->keys[n].name != NULL)
		n++;
	return n;
}

static int config_index(const struct config_schema *s, const char *name)
{
	for (size_t i = 0; s->keys[i].name != NULL; i++)
		if (strcmp(s->keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

const struct config_key *config_find(const struct config_schema *s, const char *name)
{
	int i = config_index(s, name);

	return i < 0 ? NULL : &s->keys[i];
}

/* Is name a mapping that holds keys ("tls" when "tls.cert_file" exists)? */
static bool config_is_section(const struct config_schema *s, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; s->keys[i].name != NULL; i++)
		if (strncmp(s->keys[i].name, name, n) == 0 && s->keys[i].name[n] == '.')
			return true;
	return false;
}

/* Copies a value for a message: at most 60 bytes, with unprintable bytes as \xNN. */
static void config_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t pos = 0;

	for (size_t i = 0; i < len && pos + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == 60) {
			memcpy(buf + pos, "...", 3);
			pos += 3;
			break;
		}
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			pos += (size_t)snprintf(buf + pos, size - pos, "\\x%02x", ch);
		else
			buf[pos++] = (char)ch;
	}
	buf[pos] = '\0';
}

static void config_add_error(struct config *c, char *text)
{
	char **grown;

	if (text == NULL)
		return;
	grown = realloc(c->errors, (c->nerrors + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(text);
		return;
	}
	c->errors = grown;
	c->errors[c->nerrors++] = text;
}

static void config_verror(struct config *c, const char *where, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void config_verror(struct config *c, const char *where, const char *fmt, va_list ap)
{
	char *body = NULL;
	char *text = NULL;

	if (vasprintf(&body, fmt, ap) < 0)
		return;
	if (asprintf(&text, "%s: %s", where, body) < 0)
		text = NULL;
	free(body);
	config_add_error(c, text);
}

/* Records an error at a line of the file being loaded. */
static void config_error_at(struct config *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void config_error_at(struct config *c, unsigned line, const char *fmt, ...)
{
	char where[PATH_MAX + 32];
	va_list ap;

	if (line > 0)
		snprintf(where, sizeof(where), "%s:%u", c->file, line);
	else
		snprintf(where, sizeof(where), "%s", c->file);
	va_start(ap, fmt);
	config_verror(c, where, fmt, ap);
	va_end(ap);
}

void config_error(struct config *c, const char *key, const char *fmt, ...)
{
	char where[PATH_MAX + CONFIG_NAME_MAX + 32];
	int i = config_index(c->schema, key);
	va_list ap;

	if (i >= 0 && c->origin[i] != NULL)
		snprintf(where, sizeof(where), "%s", c->origin[i]);
	else if (i >= 0 && c->line[i] != 0)
		snprintf(where, sizeof(where), "%s:%u: %s", c->file, c->line[i], key);
	else
		snprintf(where, sizeof(where), "%s", key);
	va_start(ap, fmt);
	config_verror(c, where, fmt, ap);
	va_end(ap);
}

bool config_is_set(const struct config *c, const char *key)
{
	int i = config_index(c->schema, key);

	return i >= 0 && (c->line[i] != 0 || c->origin[i] != NULL);
}

static void config_strlist_free(struct config_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

void config_free(const struct config_schema *schema, void *obj)
{
	for (const struct config_key *k = schema->keys; k->name != NULL; k++) {
		void *field = (char *)obj + k->offset;

		if (k->type == CONFIG_T_STRING) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (k->type == CONFIG_T_STRLIST) {
			config_strlist_free(field);
		}
	}
}

/* YAML's null: an empty plain scalar, "~" or "null". */
static bool config_is_null(const char *s, size_t len, bool plain)
{
	return plain && (len == 0 || (len == 1 && s[0] == '~') ||
	                 (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
	                               memcmp(s, "NULL", 4) == 0)));
}

/* What a key expects, for messages: "an integer", "one of debug|info|warn|error". */
static const char *config_type_name(const struct config_key *k)
{
	static __thread char words[256];

	switch (k->type) {
	case CONFIG_T_BOOL:
		return "true or false";
	case CONFIG_T_INT:
		return "an integer";
	case CONFIG_T_STRING:
		return "a string";
	case CONFIG_T_ENUM: {
		size_t pos = (size_t)snprintf(words, sizeof(words), "one of ");

		for (int i = 0; k->choices[i] != NULL && pos < sizeof(words); i++)
			pos += (size_t)snprintf(words + pos, sizeof(words) - pos, "%s%s",
			                        i ? "|" : "", k->choices[i]);
		return words;
	}
	case CONFIG_T_DURATION:
		return "a duration (like 90s, 15m or 1h30m)";
	case CONFIG_T_SIZE:
		return "a size (like 4096, 64KiB or 3MiB)";
	case CONFIG_T_STRLIST:
		return "a list of strings";
	}
	return "a value";
}

/* Parses a decimal integer, with an optional '-', and nothing else. */
static int config_parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Parses "512", "64KiB", "64Ki", "3MiB", "1GiB" into bytes. */
static int config_parse_size(const char *s, int64_t *out)
{
	static const struct {
		const char *suffix;
		int64_t mult;
	} units[] = { { "", 1 },
		      { "B", 1 },
		      { "KiB", 1024 },
		      { "Ki", 1024 },
		      { "MiB", 1024 * 1024 },
		      { "Mi", 1024 * 1024 },
		      { "GiB", 1024LL << 20 },
		      { "Gi", 1024LL << 20 } };
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > INT64_MAX / units[i].mult)
				return -ERANGE;
			*out = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

static void config_format_size(int64_t v, char *buf, size_t size)
{
	if (v != 0 && v % (1024LL << 20) == 0)
		snprintf(buf, size, "%" PRId64 "GiB", v >> 30);
	else if (v != 0 && v % (1024 * 1024) == 0)
		snprintf(buf, size, "%" PRId64 "MiB", v >> 20);
	else if (v != 0 && v % 1024 == 0)
		snprintf(buf, size, "%" PRId64 "KiB", v >> 10);
	else
		snprintf(buf, size, "%" PRId64, v);
}

static void config_format_number(const struct config_key *k, int64_t v, char *buf, size_t size)
{
	if (k->type == CONFIG_T_DURATION) {
		if (time_format_duration(v, buf, size) < 0)
			snprintf(buf, size, "%" PRId64 "ms", v);
	} else if (k->type == CONFIG_T_SIZE) {
		config_format_size(v, buf, size);
	} else {
		snprintf(buf, size, "%" PRId64, v);
	}
}

/* Checks one string (a STRING value or a list item): no NUL, length, validator. */
static bool config_check_string(const struct config_key *k, const char *s, size_t len, char *why,
                                size_t why_size)
{
	size_t max = k->max > 0 ? (size_t)k->max : CONFIG_STRING_MAX;

	if (memchr(s, '\0', len) != NULL) {
		snprintf(why, why_size, "contains a NUL byte");
		return false;
	}
	if (len > max) {
		snprintf(why, why_size, "is longer than %zu bytes", max);
		return false;
	}
	return k->validate == NULL || k->validate(s, why, why_size);
}

/*
 * Parses text into a scalar key's field. plain says that the YAML scalar was not quoted
 * (flags count as plain): numbers and booleans must be plain, as in Kubernetes objects.
 * Returns true, or false with why saying what is wrong.
 */
static bool config_store_scalar(struct config *c, const struct config_key *k, const char *s,
                                size_t len, bool plain, char *why, size_t why_size)
{
	void *field = (char *)c->obj + k->offset;
	char q[256];
	char lo[32], hi[32], val[32];
	int64_t v = 0;
	char *copy;
	int rc;

	config_quote(q, sizeof(q), s, len);
	if (config_is_null(s, len, plain)) {
		snprintf(why, why_size, "has no value; expected %s", config_type_name(k));
		return false;
	}
	if (memchr(s, '\0', len) != NULL) {
		snprintf(why, why_size, "contains a NUL byte");
		return false;
	}
	switch (k->type) {
	case CONFIG_T_BOOL:
		if (plain &&
		    (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)) {
			*(bool *)field = true;
			return true;
		}
		if (plain && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
		              strcmp(s, "FALSE") == 0)) {
			*(bool *)field = false;
			return true;
		}
		snprintf(why, why_size, "expected true or false, got %s\"%s\"",
		         plain ? "" : "the string ", q);
		return false;
	case CONFIG_T_INT:
		rc = plain ? config_parse_int(s, &v) : -EINVAL;
		if (rc == -ERANGE)
			goto out_of_range;
		if (rc < 0) {
			snprintf(why, why_size, "expected an integer, got %s\"%s\"",
			         plain ? "" : "the string ", q);
			return false;
		}
		break;
	case CONFIG_T_DURATION:
		rc = time_parse_duration(s, len, &v);
		if (rc == ERR_DURATION_RANGE)
			goto out_of_range;
		if (rc < 0) {
			snprintf(
			    why, why_size,
			    "expected a duration with a unit (ms, s, m, h; like 90s or 1h30m), "
			    "got \"%s\"",
			    q);
			return false;
		}
		break;
	case CONFIG_T_SIZE:
		rc = config_parse_size(s, &v);
		if (rc == -ERANGE)
			goto out_of_range;
		if (rc < 0) {
			snprintf(why, why_size,
			         "expected a size in bytes (like 4096, 64KiB or 3MiB), got \"%s\"",
			         q);
			return false;
		}
		break;
	case CONFIG_T_ENUM:
		for (int i = 0; k->choices[i] != NULL; i++) {
			if (strcmp(k->choices[i], s) == 0) {
				*(int *)field = i;
				return true;
			}
		}
		rc = snprintf(why, why_size, "\"%s\" is not one of:", q);
		for (int i = 0; k->choices[i] != NULL && rc > 0 && (size_t)rc < why_size; i++)
			rc += snprintf(why + rc, why_size - (size_t)rc, "%s %s", i ? "," : "",
			               k->choices[i]);
		return false;
	case CONFIG_T_STRING:
		if (!config_check_string(k, s, len, why, why_size)) {
			char detail[200];

			snprintf(detail, sizeof(detail), "%s", why);
			snprintf(why, why_size, "\"%.200s\" %s", q, detail);
			return false;
		}
		copy = strndup(s, len);
		if (copy == NULL) {
			snprintf(why, why_size, "out of memory");
			return false;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return true;
	case CONFIG_T_STRLIST:
		snprintf(why, why_size, "expected a list");
		return false;
	}
	if (v < k->min || v > k->max) {
		config_format_number(k, v, val, sizeof(val));
		goto range_message;
	}
	*(int64_t *)field = v;
	return true;

out_of_range:
	snprintf(val, sizeof(val), "%.20s", q);
range_message:
	config_format_number(k, k->min, lo, sizeof(lo));
	config_format_number(k, k->max, hi, sizeof(hi));
	snprintf(why, why_size, "%s is out of range (%s to %s)", val, lo, hi);
	return false;
}

/* Replaces a list with the given items (already checked). Takes ownership of items. */
static void config_store_list(struct config *c, const struct config_key *k, char **items, size_t n)
{
	struct config_strlist *l = (struct config_strlist *)((char *)c->obj + k->offset);

	config_strlist_free(l);
	l->items = items;
	l->n = n;
}

/* Splits "a,b,c" (a flag or a default) into a list; empty text is the empty list. */
static bool config_store_csv(struct config *c, const struct config_key *k, const char *s, char *why,
                             size_t why_size)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = s;
	bool ok = true;

	while (ok && *s != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char **grown = realloc(items, (n + 1) * sizeof(*items));

		if (grown == NULL || (items = grown, items[n] = strndup(p, len)) == NULL) {
			snprintf(why, why_size, "out of memory");
			ok = false;
			break;
		}
		n++;
		if (len == 0) {
			snprintf(why, why_size, "has an empty item");
			ok = false;
		} else if (!config_check_string(k, items[n - 1], len, why, why_size)) {
			char detail[200], q[256];

			config_quote(q, sizeof(q), items[n - 1], len);
			snprintf(detail, sizeof(detail), "%s", why);
			snprintf(why, why_size, "\"%.200s\" %s", q, detail);
			ok = false;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(items[i]);
		free(items);
		return false;
	}
	config_store_list(c, k, items, n);
	return true;
}

int config_init(struct config *c, const struct config_schema *schema, void *obj)
{
	size_t n = config_nkeys(schema);
	char why[512];

	memset(c, 0, sizeof(*c));
	c->schema = schema;
	c->obj = obj;
	c->line = calloc(n + 1, sizeof(*c->line));
	c->origin = calloc(n + 1, sizeof(*c->origin));
	if (c->line == NULL || c->origin == NULL) {
		config_release(c);
		return -ENOMEM;
	}
	for (const struct config_key *k = schema->keys; k->name != NULL; k++) {
		bool ok;

		if (k->def == NULL)
			continue;
		if (k->type == CONFIG_T_STRLIST)
			ok = config_store_csv(c, k, k->def, why, sizeof(why));
		else
			ok = config_store_scalar(c, k, k->def, strlen(k->def), true, why,
			                         sizeof(why));
		if (!ok)
			config_error(c, k->name, "built-in default \"%s\" %s", k->def, why);
	}
	return 0;
}

int config_set(struct config *c, const char *key, const char *value, const char *origin)
{
	int i = config_index(c->schema, key);
	const struct config_key *k;
	char why[512];
	bool ok;

	if (i < 0) {
		config_add_error(c, strdup("unknown configuration key"));
		return ERR_CONFIG_UNKNOWN_KEY;
	}
	k = &c->schema->keys[i];
	c->origin[i] = origin;
	if (k->type == CONFIG_T_STRLIST)
		ok = config_store_csv(c, k, value, why, sizeof(why));
	else
		ok = config_store_scalar(c, k, value, strlen(value), true, why, sizeof(why));
	if (!ok) {
		config_error(c, key, "%s", why);
		return ERR_CONFIG_INVALID;
	}
	return 0;
}

/* Edit distance, for "did you mean". Names are short; a row of 257 ints suffices. */
static size_t config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[CONFIG_NAME_MAX + 1];

	if (la > CONFIG_NAME_MAX || lb > CONFIG_NAME_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The last dotted segment of a name. */
static const char *config_base(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot != NULL ? dot + 1 : name;
}

/*
 * The known key or section closest to an unknown name, or NULL when none is close: a
 * typo ("lisen"), or the right name in the wrong place ("cert_file" for "tls.cert_file").
 */
static const char *config_suggest(const struct config_schema *s, const char *name, char *buf,
                                  size_t size)
{
	size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
	size_t best = SIZE_MAX;
	char cand[CONFIG_NAME_MAX];

	for (const struct config_key *k = s->keys; k->name != NULL; k++) {
		/* The key's full name, then each section above it ("a.b.c", "a.b", "a"). */
		snprintf(cand, sizeof(cand), "%s", k->name);
		for (;;) {
			size_t d = config_distance(name, cand);
			char *dot;

			if (d > 1 && strcmp(config_base(cand), config_base(name)) == 0)
				d = 1;
			if (d > 0 && d < best) {
				best = d;
				snprintf(buf, size, "%s", cand);
			}
			dot = strrchr(cand, '.');
			if (dot == NULL)
				break;
			*dot = '\0';
		}
	}
	return best <= limit ? buf : NULL;
}

struct config_walk {
	struct config *c;
	yaml_document_t *doc;
};

static void config_walk_mapping(struct config_walk *w, yaml_node_t *map, const char *prefix,
                                unsigned depth);

static const char *config_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a scalar";
	}
}

static void config_set_list(struct config_walk *w, const struct config_key *k, yaml_node_t *v)
{
	struct config *c = w->c;
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	char **items = calloc(n + 1, sizeof(*items));
	size_t got = 0;
	bool ok = items != NULL;
	char why[512];

	if (items == NULL) {
		config_error_at(c, (unsigned)v->start_mark.line + 1, "%s: out of memory", k->name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
		unsigned line = (unsigned)item->start_mark.line + 1;
		const char *s;
		size_t len;

		if (item->type != YAML_SCALAR_NODE) {
			config_error_at(c, line, "%s: item %zu: expected a string, got %s", k->name,
			                i + 1, config_node_kind(item));
			ok = false;
			continue;
		}
		s = (const char *)item->data.scalar.value;
		len = item->data.scalar.length;
		if (config_is_null(s, len, item->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)) {
			config_error_at(c, line, "%s: item %zu has no value", k->name, i + 1);
			ok = false;
			continue;
		}
		if (!config_check_string(k, s, len, why, sizeof(why))) {
			char q[256];

			config_quote(q, sizeof(q), s, len);
			config_error_at(c, line, "%s: item %zu \"%s\" %s", k->name, i + 1, q, why);
			ok = false;
			continue;
		}
		items[got] = strndup(s, len);
		if (items[got] == NULL) {
			ok = false;
			break;
		}
		got++;
	}
	if (!ok) {
		for (size_t i = 0; i < got; i++)
			free(items[i]);
		free(items);
		return;
	}
	config_store_list(c, k, items, got);
}

static void config_set_node(struct config_walk *w, int idx, yaml_node_t *key, yaml_node_t *v)
{
	struct config *c = w->c;
	const struct config_key *k = &c->schema->keys[idx];
	unsigned line = (unsigned)v->start_mark.line + 1;
	char why[512];

	c->line[idx] = (unsigned)key->start_mark.line + 1;
	c->origin[idx] = NULL;
	if (k->type == CONFIG_T_STRLIST) {
		if (v->type != YAML_SEQUENCE_NODE)
			config_error_at(c, line, "%s: expected a list of strings, got %s", k->name,
			                config_node_kind(v));
		else
			config_set_list(w, k, v);
		return;
	}
	if (v->type != YAML_SCALAR_NODE) {
		config_error_at(c, line, "%s: expected %s, got %s", k->name, config_type_name(k),
		                config_node_kind(v));
		return;
	}
	if (!config_store_scalar(c, k, (const char *)v->data.scalar.value, v->data.scalar.length,
	                         v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, why, sizeof(why)))
		config_error_at(c, line, "%s: %s", k->name, why);
}

static void config_walk_mapping(struct config_walk *w, yaml_node_t *map, const char *prefix,
                                unsigned depth)
{
	struct config *c = w->c;
	yaml_node_pair_t *start = map->data.mapping.pairs.start;
	yaml_node_pair_t *top = map->data.mapping.pairs.top;

	for (yaml_node_pair_t *p = start; p < top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		unsigned line = (unsigned)k->start_mark.line + 1;
		char full[CONFIG_NAME_MAX];
		char q[256];
		char hint[CONFIG_NAME_MAX];
		const char *name;
		bool dup = false;
		int idx;

		if (k->type != YAML_SCALAR_NODE) {
			config_error_at(c, line, "a key must be a name, not %s",
			                config_node_kind(k));
			continue;
		}
		name = (const char *)k->data.scalar.value;
		config_quote(q, sizeof(q), name, k->data.scalar.length);
		if (strlen(name) != k->data.scalar.length ||
		    (size_t)snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "",
		                     name) >= sizeof(full)) {
			config_error_at(c, line, "unknown key \"%s\"", q);
			continue;
		}
		for (yaml_node_pair_t *e = start; e < p && !dup; e++) {
			yaml_node_t *ek = yaml_document_get_node(w->doc, e->key);

			if (ek->type == YAML_SCALAR_NODE &&
			    ek->data.scalar.length == k->data.scalar.length &&
			    memcmp(ek->data.scalar.value, name, k->data.scalar.length) == 0) {
				config_error_at(c, line,
				                "duplicate key \"%s\" (first set at line %u)", full,
				                (unsigned)ek->start_mark.line + 1);
				dup = true;
			}
		}
		if (dup)
			continue;
		idx = config_index(c->schema, full);
		if (idx >= 0) {
			config_set_node(w, idx, k, v);
		} else if (config_is_section(c->schema, full)) {
			if (v->type != YAML_MAPPING_NODE)
				config_error_at(c, (unsigned)v->start_mark.line + 1,
				                "%s: expected a mapping of settings, got %s", full,
				                config_node_kind(v));
			else if (depth >= CONFIG_DEPTH_MAX)
				config_error_at(c, line, "%s: nested too deeply", full);
			else
				config_walk_mapping(w, v, full, depth + 1);
		} else if (config_suggest(c->schema, full, hint, sizeof(hint)) != NULL) {
			config_error_at(c, line, "unknown key \"%s\" (did you mean \"%s\"?)", full,
			                hint);
		} else {
			config_error_at(c, line, "unknown key \"%s\"", full);
		}
	}
}

int config_load_string(struct config *c, const char *name, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	size_t before = c->nerrors;
	struct config_walk w = { .c = c, .doc = &doc };
	char *file = strdup(name);

	if (file == NULL)
		return -ENOMEM;
	free(c->file);
	c->file = file;
	if (len > CONFIG_FILE_MAX) {
		config_error_at(c, 1, "file is larger than %d bytes", CONFIG_FILE_MAX);
		return ERR_CONFIG_INVALID;
	}
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		config_error_at(c, (unsigned)parser.problem_mark.line + 1, "not valid YAML: %s%s%s",
		                parser.problem != NULL ? parser.problem : "parse error",
		                parser.context != NULL ? " " : "",
		                parser.context != NULL ? parser.context : "");
		yaml_parser_delete(&parser);
		return ERR_CONFIG_INVALID;
	}
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && root->type == YAML_MAPPING_NODE)
		config_walk_mapping(&w, root, "", 0);
	else if (root != NULL &&
	         !(root->type == YAML_SCALAR_NODE &&
	           config_is_null((const char *)root->data.scalar.value, root->data.scalar.length,
	                          root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)))
		config_error_at(c, (unsigned)root->start_mark.line + 1,
		                "expected a mapping of settings at the top level, got %s",
		                config_node_kind(root));
	yaml_document_delete(&doc);

	/* A second document would be ignored silently by a naive reader: refuse it. */
	if (root != NULL) {
		if (!yaml_parser_load(&parser, &doc)) {
			config_error_at(c, (unsigned)parser.problem_mark.line + 1,
			                "not valid YAML: %s",
			                parser.problem != NULL ? parser.problem : "parse error");
		} else {
			yaml_node_t *next = yaml_document_get_root_node(&doc);

			if (next != NULL)
				config_error_at(c, (unsigned)next->start_mark.line + 1,
				                "only one YAML document is allowed");
			yaml_document_delete(&doc);
		}
	}
	yaml_parser_delete(&parser);
	return c->nerrors > before ? ERR_CONFIG_INVALID : 0;
}

int config_load_file(struct config *c, const char *path)
{
	struct err e = { 0 };
	char *buf = NULL;
	size_t len = 0;
	char *file = strdup(path);
	int rc;

	if (file == NULL)
		return -ENOMEM;
	free(c->file);
	c->file = file;
	rc = file_read(path, CONFIG_FILE_MAX, &buf, &len, &e);
	if (rc == -EFBIG) {
		config_error_at(c, 0, "file is larger than %d bytes", CONFIG_FILE_MAX);
		return ERR_CONFIG_INVALID;
	}
	if (rc < 0) {
		config_error_at(c, 0, "cannot read: %s", err_str(rc));
		return rc;
	}
	rc = config_load_string(c, path, buf, len);
	free(buf);
	return rc;
}

int config_check(struct config *c)
{
	size_t before = c->nerrors;

	if (c->schema->check != NULL)
		c->schema->check(c);
	return c->nerrors > before ? ERR_CONFIG_INVALID : 0;
}

void config_print_errors(const struct config *c, FILE *f)
{
	for (size_t i = 0; i < c->nerrors; i++)
		fprintf(f, "%s\n", c->errors[i]);
}

void config_release(struct config *c)
{
	for (size_t i = 0; i < c->nerrors; i++)
		free(c->errors[i]);
	free(c->errors);
	free(c->line);
	free(c->origin);
	free(c->file);
	memset(c, 0, sizeof(*c));
}

void config_describe(const struct config_schema *s, FILE *f)
{
	char lo[32], hi[32];

	fprintf(f, "| key | type | default | description |\n|---|---|---|---|\n");
	for (const struct config_key *k = s->keys; k->name != NULL; k++) {
		fprintf(f, "| `%s` | ", k->name);
		switch (k->type) {
		case CONFIG_T_BOOL:
			fprintf(f, "boolean");
			break;
		case CONFIG_T_INT:
		case CONFIG_T_DURATION:
		case CONFIG_T_SIZE:
			config_format_number(k, k->min, lo, sizeof(lo));
			config_format_number(k, k->max, hi, sizeof(hi));
			fprintf(f, "%s, %s to %s",
			        k->type == CONFIG_T_INT        ? "integer"
			        : k->type == CONFIG_T_DURATION ? "duration"
			                                       : "size",
			        lo, hi);
			break;
		case CONFIG_T_STRING:
			fprintf(f, "string");
			break;
		case CONFIG_T_ENUM:
			for (int i = 0; k->choices[i] != NULL; i++)
				fprintf(f, "%s`%s`", i ? " \\| " : "", k->choices[i]);
			break;
		case CONFIG_T_STRLIST:
			fprintf(f, "list of strings");
			break;
		}
		if (k->def == NULL || *k->def == '\0')
			fprintf(f, " | (none) | %s |\n", k->help);
		else
			fprintf(f, " | `%s` | %s |\n", k->def, k->help);
	}
}

bool config_valid_listen(const char *value, char *why, size_t why_size)
{
	const char *colon = strrchr(value, ':');
	char *end;
	long port;

	if (colon == NULL) {
		snprintf(why, why_size, "must be ADDRESS:PORT (like 0.0.0.0:8443 or [::]:8443)");
		return false;
	}
	if (value[0] == '[') {
		if (colon == value || colon[-1] != ']') {
			snprintf(why, why_size, "an IPv6 address must be in brackets: [::1]:8443");
			return false;
		}
	} else if (memchr(value, ':', (size_t)(colon - value)) != NULL) {
		snprintf(why, why_size, "an IPv6 address must be in brackets: [::1]:8443");
		return false;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port < 0 ||
	    port > 65535) {
		snprintf(why, why_size, "has no valid port (0 to 65535) after the last ':'");
		return false;
	}
	return true;
}

bool config_valid_trust_domain(const char *value, char *why, size_t why_size)
{
	int rc = spiffe_td_validate(value, strlen(value));

	if (rc < 0) {
		snprintf(why, why_size, "is not a valid trust domain: %s", err_str(rc));
		return false;
	}
	return true;
}

bool config_valid_dns_label(const char *value, char *why, size_t why_size)
{
	size_t len = strlen(value);

	if (len == 0 || len > 63) {
		snprintf(why, why_size, "must be 1 to 63 characters");
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char ch = value[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && !(ch == '-' && i > 0 && i < len - 1)) {
			snprintf(why, why_size,
			         "is not a DNS label (lowercase letters, digits and '-', "
			         "starting and ending with a letter or digit)");
			return false;
		}
	}
	return true;
}
