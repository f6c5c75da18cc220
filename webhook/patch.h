/* SPDX-License-Identifier: Apache-2.0 */
/* JSON Patch (RFC 6902) for admission: operations a real API server accepts, and a strict applier.
 */
#ifndef MESHLET_WEBHOOK_PATCH_H
#define MESHLET_WEBHOOK_PATCH_H

#include <stddef.h>

#include <jansson.h>

#include "meshlet/err.h"

#include "meshlet/jwrite.h"

/*
 * The builder's rules, which the API server holds us to:
 *   - an object or array that is absent (or null) is added whole, at the first missing
 *     level: an `add` under a missing parent fails the pod with a 500, even under
 *     failurePolicy Ignore;
 *   - what exists is never replaced wholesale: members are added one by one, array items
 *     inserted at an index or appended with "-";
 *   - keys are escaped as RFC 6901 says: '~' as "~0", '/' as "~1".
 * A pointer is given as an array of n raw (unescaped) keys from the document's root, such
 * as { "spec", "initContainers" }. The patch is written as JSON text as it is built (the
 * webhook sends it as text, and building jansson values only to dump them was most of a
 * review's time); the values are given as JSON text too. The builder functions return 0,
 * -ENOMEM, ERR_TRUNCATED (a pointer over PATCH_POINTER_MAX bytes) or ERR_PATCH_PATH when
 * an existing value on the way is not an object (or, at the end, not the object or array
 * asked for). A patch that a call failed on is to be dropped.
 */

/* The longest JSON Pointer the builder writes, in bytes with the NUL. */
#define PATCH_POINTER_MAX 1024

/* For patch_insert: append at the end of the array ("-"). */
#define PATCH_END ((size_t)-1)

/* A JSON Patch being written. */
struct patch {
	struct jwrite w; /* "[" and the operations so far */
	size_t ops;      /* how many */
};

/* A value as JSON text, and for patch_add_members the (raw) key it is added under. */
struct patch_value {
	const char *key;
	const char *text;
	size_t len;
};

/*
 * patch_pointer - write the pointer to the n keys of segs ("/metadata/annotations") and a
 * NUL into buf (size bytes). n == 0 gives "" (the whole document). Returns 0 or
 * ERR_TRUNCATED.
 */
int patch_pointer(const char *const *segs, size_t n, char *buf, size_t size);

/*
 * patch_escape_into - append key, escaped, to the pointer text in buf (which holds a NUL-
 * terminated pointer already), preceded by '/'. Returns 0 or ERR_TRUNCATED.
 */
int patch_escape_into(char *buf, size_t size, const char *key);

/* patch_init - an empty patch. */
void patch_init(struct patch *p);

/* patch_free - release what p holds. */
void patch_free(struct patch *p);

/*
 * patch_finish - the patch as JSON text ("[...]"), malloc'd and NUL-terminated, with its
 * length in *len; p is left empty. NULL when memory ran out on the way.
 */
char *patch_finish(struct patch *p, size_t *len);

/*
 * patch_op - append {"op": op, "path": path, "value": the len bytes of JSON text value}
 * (no value when value is NULL, for "remove"). Returns 0 or -ENOMEM.
 */
int patch_op(struct patch *p, const char *op, const char *path, const char *value, size_t len);

/*
 * patch_add_members - make the n_members values (with their keys, which must differ) members
 * of the object at segs in doc: one add per member when that object exists, else one add of
 * the missing part, whole (say doc has no metadata.annotations: {"op":"add",
 * "path":"/metadata/annotations","value":{members}}). Members that the object already has
 * are overwritten by their add: the caller leaves out those it must keep.
 */
int patch_add_members(struct patch *p, const json_t *doc, const char *const *segs, size_t n,
                      const struct patch_value *members, size_t n_members);

/*
 * patch_insert - put the n_items values into the array at segs in doc: starting at index at,
 * one after the other (at must not be beyond the array's end), or appended when at is
 * PATCH_END. When the array is absent or null, the items are added as the whole array,
 * whatever at says.
 */
int patch_insert(struct patch *p, const json_t *doc, const char *const *segs, size_t n, size_t at,
                 const struct patch_value *items, size_t n_items);

/*
 * patch_apply - apply patch to a deep copy of doc and return the copy (a new reference),
 * or NULL with e filled: ERR_PATCH_MALFORMED (not an array of operations, an unknown or
 * unsupported op, a bad pointer such as "a", "~2" or an array index "01"), ERR_PATCH_PATH
 * (a path whose parent is missing, a member or index that an op needs and the document
 * lacks, an index past the end) or ERR_PATCH_TEST (a "test" whose value differs), naming
 * the operation by its index, or -ENOMEM. The operations are add, remove, replace and
 * test with RFC 6901 pointers, "-" for the end of an array (add only) and ~0/~1 escapes;
 * move and copy are refused. As a real API server, it is strict: nothing is created on
 * the way to a path. doc itself is never changed: on failure nothing is applied.
 */
json_t *patch_apply(const json_t *doc, const json_t *patch, struct err *e);

#endif
