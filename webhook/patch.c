/* SPDX-License-Identifier: Apache-2.0 */
/* JSON Patch (RFC 6902): the operation builder the injector uses, and a strict applier. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

int patch_escape_into(char *buf, size_t size, const char *key)
{
	size_t start = strlen(buf);
	size_t pos = start;

	if (pos + 1 >= size)
		return ERR_TRUNCATED;
	buf[pos++] = '/';
	for (const char *p = key; *p != '\0'; p++) {
		const char *rep = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
		size_t len = rep != NULL ? 2 : 1;

		if (pos + len >= size) {
			buf[start] = '\0';
			return ERR_TRUNCATED;
		}
		if (rep != NULL)
			memcpy(buf + pos, rep, 2);
		else
			buf[pos] = *p;
		pos += len;
	}
	buf[pos] = '\0';
	return 0;
}

int patch_pointer(const char *const *segs, size_t n, char *buf, size_t size)
{
	if (size == 0)
		return ERR_TRUNCATED;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int rc = patch_escape_into(buf, size, segs[i]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

void patch_init(struct patch *p)
{
	jwrite_init(&p->w, 8192);
	jwrite_lit(&p->w, "[");
	p->ops = 0;
}

void patch_free(struct patch *p)
{
	jwrite_free(&p->w);
	p->ops = 0;
}

char *patch_finish(struct patch *p, size_t *len)
{
	jwrite_lit(&p->w, "]");
	p->ops = 0;
	return jwrite_take(&p->w, len);
}

/* Writes {"op":op,"path":path and then ,"value": (the caller writes it and the '}') or '}'. */
static void patch_begin(struct patch *p, const char *op, const char *path, bool value)
{
	if (p->ops++ > 0)
		jwrite_lit(&p->w, ",");
	jwrite_lit(&p->w, "{\"op\":");
	jwrite_str(&p->w, op);
	jwrite_lit(&p->w, ",\"path\":");
	jwrite_str(&p->w, path);
	if (value)
		jwrite_lit(&p->w, ",\"value\":");
	else
		jwrite_lit(&p->w, "}");
}

int patch_op(struct patch *p, const char *op, const char *path, const char *value, size_t len)
{
	patch_begin(p, op, path, value != NULL);
	if (value != NULL) {
		jwrite_raw(&p->w, value, len);
		jwrite_lit(&p->w, "}");
	}
	return p->w.failed ? -ENOMEM : 0;
}

/*
 * Follows segs through doc's objects: *found is how many of them exist (a null counts as
 * missing, as the API server's patcher sees it), *at the value reached. A value on the way
 * that is neither an object nor null is ERR_PATCH_PATH.
 */
static int patch_walk(const json_t *doc, const char *const *segs, size_t n, size_t *found,
                      const json_t **at)
{
	const json_t *cur = doc;
	size_t i;

	for (i = 0; i < n; i++) {
		const json_t *next;

		if (!json_is_object(cur))
			return ERR_PATCH_PATH;
		next = json_object_get(cur, segs[i]);
		if (next == NULL || json_is_null(next))
			break;
		cur = next;
	}
	*found = i;
	*at = cur;
	return 0;
}

/*
 * Adds the values as the missing part of segs, whole: segs[0 .. found-1] exist, so the add
 * goes to segs[0 .. found], its value the object (members) or array (items) of the values
 * wrapped in one object per deeper key.
 */
static int patch_add_missing(struct patch *p, const char *const *segs, size_t n, size_t found,
                             const struct patch_value *v, size_t nv, bool members)
{
	char path[PATCH_POINTER_MAX];
	int rc;

	rc = patch_pointer(segs, found + 1, path, sizeof(path));
	if (rc < 0)
		return rc;
	patch_begin(p, "add", path, true);
	for (size_t k = found + 1; k < n; k++) {
		jwrite_lit(&p->w, "{");
		jwrite_str(&p->w, segs[k]);
		jwrite_lit(&p->w, ":");
	}
	jwrite_raw(&p->w, members ? "{" : "[", 1);
	for (size_t i = 0; i < nv; i++) {
		if (i > 0)
			jwrite_lit(&p->w, ",");
		if (members) {
			jwrite_str(&p->w, v[i].key);
			jwrite_lit(&p->w, ":");
		}
		jwrite_raw(&p->w, v[i].text, v[i].len);
	}
	jwrite_raw(&p->w, members ? "}" : "]", 1);
	for (size_t k = found + 1; k < n; k++)
		jwrite_lit(&p->w, "}");
	jwrite_lit(&p->w, "}");
	return p->w.failed ? -ENOMEM : 0;
}

int patch_add_members(struct patch *p, const json_t *doc, const char *const *segs, size_t n,
                      const struct patch_value *members, size_t n_members)
{
	char base[PATCH_POINTER_MAX];
	char path[PATCH_POINTER_MAX];
	const json_t *at;
	size_t found;
	int rc;

	if (n == 0)
		return -EINVAL;
	rc = patch_walk(doc, segs, n, &found, &at);
	if (rc < 0)
		return rc;
	if (found < n)
		return patch_add_missing(p, segs, n, found, members, n_members, true);
	if (!json_is_object(at))
		return ERR_PATCH_PATH;
	rc = patch_pointer(segs, n, base, sizeof(base));
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n_members; i++) {
		memcpy(path, base, sizeof(path));
		rc = patch_escape_into(path, sizeof(path), members[i].key);
		if (rc < 0)
			return rc;
		rc = patch_op(p, "add", path, members[i].text, members[i].len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int patch_insert(struct patch *p, const json_t *doc, const char *const *segs, size_t n, size_t at,
                 const struct patch_value *items, size_t n_items)
{
	char base[PATCH_POINTER_MAX];
	char path[PATCH_POINTER_MAX + 24];
	const json_t *arr;
	size_t found;
	int rc;

	if (n == 0)
		return -EINVAL;
	rc = patch_walk(doc, segs, n, &found, &arr);
	if (rc < 0)
		return rc;
	if (found < n)
		return patch_add_missing(p, segs, n, found, items, n_items, false);
	if (!json_is_array(arr) || (at != PATCH_END && at > json_array_size(arr)))
		return ERR_PATCH_PATH;
	rc = patch_pointer(segs, n, base, sizeof(base));
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n_items; i++) {
		if (at == PATCH_END)
			snprintf(path, sizeof(path), "%s/-", base);
		else
			snprintf(path, sizeof(path), "%s/%zu", base, at + i);
		rc = patch_op(p, "add", path, items[i].text, items[i].len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A JSON Pointer split into its unescaped keys, which point into one buffer. */
struct patch_ptr {
	char *buf;
	char **segs;
	size_t n;
};

static void patch_ptr_free(struct patch_ptr *p)
{
	free(p->buf);
	free(p->segs);
	p->buf = NULL;
	p->segs = NULL;
	p->n = 0;
}

/* Parses an RFC 6901 pointer: "" or "/key/key", with "~0" for '~' and "~1" for '/'. */
static int patch_ptr_parse(const char *path, struct patch_ptr *p)
{
	size_t len = strlen(path);
	size_t n = 0;
	char *w;

	memset(p, 0, sizeof(*p));
	if (len == 0)
		return 0;
	if (path[0] != '/')
		return ERR_PATCH_MALFORMED;
	for (size_t i = 0; i < len; i++)
		n += path[i] == '/';
	p->buf = malloc(len + 1);
	p->segs = calloc(n, sizeof(*p->segs));
	if (p->buf == NULL || p->segs == NULL) {
		patch_ptr_free(p);
		return -ENOMEM;
	}
	w = p->buf;
	for (size_t i = 0; i < len; i++) {
		if (path[i] == '/') {
			*w++ = '\0';
			p->segs[p->n++] = w;
		} else if (path[i] == '~') {
			if (path[i + 1] != '0' && path[i + 1] != '1') {
				patch_ptr_free(p);
				return ERR_PATCH_MALFORMED;
			}
			*w++ = path[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			*w++ = path[i];
		}
	}
	*w = '\0';
	return 0;
}

/*
 * Reads an array index: "0", or digits without a leading zero; "-" (one past the end) only
 * when dash_ok. Returns 0, ERR_PATCH_MALFORMED for other text, or ERR_PATCH_PATH for "-"
 * where an existing element is needed.
 */
static int patch_index(const char *s, size_t size, bool dash_ok, size_t *out)
{
	size_t v = 0;

	if (strcmp(s, "-") == 0) {
		if (!dash_ok)
			return ERR_PATCH_PATH;
		*out = size;
		return 0;
	}
	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return ERR_PATCH_MALFORMED;
	for (const char *c = s; *c != '\0'; c++) {
		if (*c < '0' || *c > '9')
			return ERR_PATCH_MALFORMED;
		if (v > (SIZE_MAX - 9) / 10)
			return ERR_PATCH_PATH;
		v = v * 10 + (size_t)(*c - '0');
	}
	*out = v;
	return 0;
}

enum patch_kind { PATCH_ADD, PATCH_REMOVE, PATCH_REPLACE, PATCH_TEST };

/* Applies one operation to *root (which it may replace). Returns 0 or a code, with e set. */
static int patch_apply_one(json_t **root, const json_t *op, size_t idx, struct err *e)
{
	static const char *const kinds[] = { "add", "remove", "replace", "test" };
	const json_t *jop = json_object_get(op, "op");
	const json_t *jpath = json_object_get(op, "path");
	const json_t *value = json_object_get(op, "value");
	struct patch_ptr ptr = { 0 };
	const char *name, *path, *last;
	json_t *parent, *target = NULL;
	enum patch_kind kind = PATCH_ADD;
	size_t i, at = 0;
	bool known = false;
	int rc;

	if (!json_is_object(op) || !json_is_string(jop) || !json_is_string(jpath))
		return err_set(e, ERR_PATCH_MALFORMED,
		               "operation %zu is not an object with string \"op\" and \"path\"",
		               idx);
	name = json_string_value(jop);
	path = json_string_value(jpath);
	if (strlen(path) != json_string_length(jpath))
		return err_set(e, ERR_PATCH_MALFORMED, "operation %zu: path holds a NUL byte", idx);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(name, kinds[i]) == 0) {
			kind = (enum patch_kind)i;
			known = true;
		}
	}
	if (!known)
		return err_set(e, ERR_PATCH_MALFORMED, "operation %zu: op \"%.32s\" is %s", idx,
		               name,
		               strcmp(name, "move") == 0 || strcmp(name, "copy") == 0
		                   ? "not supported here"
		                   : "not a JSON Patch operation");
	if (kind != PATCH_REMOVE && value == NULL)
		return err_set(e, ERR_PATCH_MALFORMED, "operation %zu (%s %.200s) has no value",
		               idx, name, path);
	rc = patch_ptr_parse(path, &ptr);
	if (rc == -ENOMEM)
		return err_set(e, rc, "out of memory");
	if (rc < 0)
		return err_set(e, rc, "operation %zu: \"%.200s\" is not a JSON Pointer", idx, path);

	if (ptr.n == 0) {
		/* The whole document. */
		if (kind == PATCH_REMOVE) {
			rc = err_set(e, ERR_PATCH_PATH, "operation %zu: cannot remove the document",
			             idx);
		} else if (kind == PATCH_TEST) {
			if (!json_equal(*root, value))
				rc = err_set(e, ERR_PATCH_TEST,
				             "operation %zu: test of \"\" failed", idx);
		} else {
			json_t *copy = json_deep_copy(value);

			if (copy == NULL) {
				rc = err_set(e, -ENOMEM, "out of memory");
			} else {
				json_decref(*root);
				*root = copy;
			}
		}
		goto out;
	}

	parent = *root;
	for (i = 0; i + 1 < ptr.n; i++) {
		json_t *next = NULL;

		if (json_is_object(parent)) {
			next = json_object_get(parent, ptr.segs[i]);
		} else if (json_is_array(parent)) {
			rc = patch_index(ptr.segs[i], json_array_size(parent), false, &at);
			if (rc == ERR_PATCH_MALFORMED) {
				rc = err_set(e, rc,
				             "operation %zu (%s %.200s): \"%.32s\" is not an array "
				             "index",
				             idx, name, path, ptr.segs[i]);
				goto out;
			}
			if (rc == 0)
				next = json_array_get(parent, at);
		}
		if (next == NULL) {
			rc = err_set(
			    e, ERR_PATCH_PATH,
			    "operation %zu (%s %.200s): the parent \"%.32s\" does not exist", idx,
			    name, path, ptr.segs[i]);
			goto out;
		}
		parent = next;
	}
	last = ptr.segs[ptr.n - 1];

	if (json_is_object(parent)) {
		target = json_object_get(parent, last);
		if (target == NULL && kind != PATCH_ADD) {
			rc = err_set(e, ERR_PATCH_PATH,
			             "operation %zu (%s %.200s): no member \"%.64s\"", idx, name,
			             path, last);
			goto out;
		}
		if (kind == PATCH_REMOVE)
			rc = json_object_del(parent, last);
		else if (kind == PATCH_ADD || kind == PATCH_REPLACE)
			rc = json_object_set_new(parent, last, json_deep_copy(value));
		else if (!json_equal(target, value))
			rc = err_set(e, ERR_PATCH_TEST, "operation %zu: test of %.200s failed", idx,
			             path);
		if (rc == -1)
			rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (!json_is_array(parent)) {
		rc = err_set(
		    e, ERR_PATCH_PATH,
		    "operation %zu (%s %.200s): the parent is neither an object nor an array", idx,
		    name, path);
		goto out;
	}
	rc = patch_index(last, json_array_size(parent), kind == PATCH_ADD, &at);
	if (rc == ERR_PATCH_MALFORMED) {
		rc = err_set(e, rc, "operation %zu (%s %.200s): \"%.32s\" is not an array index",
		             idx, name, path, last);
		goto out;
	}
	if (rc < 0 || at > json_array_size(parent) ||
	    (kind != PATCH_ADD && at == json_array_size(parent))) {
		rc = err_set(e, ERR_PATCH_PATH,
		             "operation %zu (%s %.200s): index %.32s is past the end of the array "
		             "(%zu items)",
		             idx, name, path, last, json_array_size(parent));
		goto out;
	}
	if (kind == PATCH_ADD)
		rc = json_array_insert_new(parent, at, json_deep_copy(value));
	else if (kind == PATCH_REMOVE)
		rc = json_array_remove(parent, at);
	else if (kind == PATCH_REPLACE)
		rc = json_array_set_new(parent, at, json_deep_copy(value));
	else if (!json_equal(json_array_get(parent, at), value))
		rc = err_set(e, ERR_PATCH_TEST, "operation %zu: test of %.200s failed", idx, path);
	if (rc == -1)
		rc = err_set(e, -ENOMEM, "out of memory");
out:
	patch_ptr_free(&ptr);
	return rc;
}

json_t *patch_apply(const json_t *doc, const json_t *patch, struct err *e)
{
	json_t *root = NULL;
	size_t i;

	if (doc == NULL || !json_is_array(patch)) {
		err_set(e, ERR_PATCH_MALFORMED, "a JSON Patch is an array of operations");
		return NULL;
	}
	root = json_deep_copy(doc);
	if (root == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	for (i = 0; i < json_array_size(patch); i++) {
		if (patch_apply_one(&root, json_array_get(patch, i), i, e) < 0) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}
