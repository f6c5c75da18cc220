/* SPDX-License-Identifier: Apache-2.0 */
/* YAML (or JSON) text to jansson values and back, reading scalars as Kubernetes does. */
#ifndef MESHLET_YAMLJSON_H
#define MESHLET_YAMLJSON_H

#include <stddef.h>

#include <jansson.h>

#include "meshlet/err.h"

/*
 * How YAML becomes JSON. Kubernetes reads manifests with sigs.k8s.io/yaml, which decodes
 * YAML with (a fork of) go-yaml v2 and then converts the result to JSON; this module
 * follows that, so that a manifest means here what it means to kubectl.
 *
 * Plain (unquoted) scalars, by go-yaml v2's resolve():
 * - null: empty, ~, null, Null, NULL.
 * - booleans: true/false, y/n, yes/no, on/off, each as lower, Capitalised or UPPER case
 *   ("y", "Y", "yes", "Yes", "YES", ...). So `country: no` is false, as in Kubernetes
 *   (the "Norway problem"); write "no" in quotes for the string.
 * - integers: after every '_' is removed, what Go's strconv.ParseInt(s, 0, 64) takes:
 *   decimal with optional sign, 0x/0X hex, 0o/0O octal, 0b/0B binary, and a leading 0
 *   meaning octal (0644 is 420). Integers beyond int64 but within uint64 and decimal
 *   integers beyond that become JSON reals (Kubernetes ends up with a float64 too).
 * - floats: [-+]?(.d+|d+(.d*)?)([eE][-+]?d+)? after '_' removal, and .5-style floats;
 *   so 1e3, 1. and 08 (not octal) are reals. A float too large for a double stays a
 *   string, as in go-yaml. .inf, -.inf and .nan are floats JSON cannot hold: an error.
 * - everything else is a string, including dates (go-yaml hands them over as strings).
 * Quoted and block (| >) scalars are always strings.
 *
 * Tags: !!str, !!int, !!float, !!bool, !!null on scalars (the text must read as that
 * type; !!float takes integers too), !!map and !!seq on their collections, and "!" (a
 * string). Any other tag (!!binary, !!timestamp, !custom) is an error.
 *
 * Keys: a plain key resolves like a value and is then written as a string the way
 * sigs.k8s.io/yaml does: 1 and 0x1 -> "1", yes -> "true", 1.5 -> "1.5" (floats through
 * Go's FormatFloat(f, 'g', -1, 32)), .inf -> ".inf". Null keys, integer keys beyond int64
 * and collections as keys are errors, and so are keys holding a NUL byte (jansson 2.14's
 * json_deep_copy and json_equal cut keys at a NUL, so such a key would later turn into
 * another one). Two keys that end up as the same string are a duplicate, which is an
 * error (Kubernetes' strict decoding refuses duplicates too).
 *
 * Merge keys: `<<: *base` (or a list of mappings) copies keys that the mapping does
 * not set itself; keys written in the mapping win wherever they appear, and among
 * several merged mappings (or several `<<` keys) the first wins: the YAML merge-key
 * specification, as Python and go-yaml v3 do it. go-yaml v2 differs in two corner
 * cases: it lets a `<<` written after a key override that key, and in strict mode it
 * refuses any override.
 *
 * Anchors and aliases are expanded into independent copies (changing one copy never
 * changes another). An alias to its own enclosing node is an error.
 *
 * JSON is read as YAML, so two things JSON allows fail as they do in go-yaml: a key
 * longer than 1024 characters ("key": value is an implicit YAML key), and \uD800 to
 * \uDFFF escapes (surrogate pairs); write such characters as UTF-8.
 */

/* Larger inputs are refused. */
#define YAMLJSON_INPUT_MAX (16 * 1024 * 1024)
/* Collections nest no deeper than this, aliases included. */
#define YAMLJSON_DEPTH_MAX 512
/* Values that expanding aliases may create in one call, and their text in bytes. */
#define YAMLJSON_ALIAS_NODES_MAX 1000000
#define YAMLJSON_ALIAS_BYTES_MAX (64 * 1024 * 1024)

/* One YAML document converted to JSON, with the line of its first node in the input. */
struct yamljson_doc {
	json_t *value;
	unsigned line;
};

/*
 * yamljson_parse - convert every document of len bytes of YAML (or JSON) text, which
 * must be UTF-8 (a leading byte-order mark is allowed). Empty documents ("---" alone,
 * or only comments) are skipped; an explicit `null` document is kept. name stands for
 * the input in messages ("deploy.yaml", "<stdin>").
 * Returns 0 with *docs, a malloc'd array of *ndocs documents (NULL when there are none)
 * that the caller frees with yamljson_docs_free; or a negative code (ERR_YAML_*, or
 * -ENOMEM) with e->msg saying "NAME:LINE: what is wrong", and *docs, *ndocs untouched.
 */
int yamljson_parse(const char *name, const char *text, size_t len, struct yamljson_doc **docs,
                   size_t *ndocs, struct err *e);

/* yamljson_docs_free - release n documents and the array from yamljson_parse. */
void yamljson_docs_free(struct yamljson_doc *docs, size_t n);

/*
 * yamljson_emit - write value as one YAML document: block style, 2-space indent, keys
 * in the object's order. Strings are plain when that reads back as the same string
 * (`name: web`), and quoted when a plain scalar would be read as something else by
 * Kubernetes, YAML 1.1 or YAML 1.2 readers ("true", "no", "1.0", "0x10", "~", "",
 * "2024-01-02", "12:30", leading or trailing spaces, ": ", " #", a leading indicator
 * like '-' or '*'). Multi-line strings are literal block scalars (|, |-, |+) when
 * YAML can hold them exactly that way, else double-quoted. Reals are written with
 * enough digits to read back the same double, and always with a '.' ("3.0", "1.0e+20").
 * Keys longer than 128 characters become explicit "? key" entries, and a document that
 * holds a |+ block ends with "..." (libyaml's choices; both are plain YAML). Keys
 * holding a NUL byte are refused (yamljson_parse could not read them back).
 * Appends to *out: NULL (a new buffer) or a malloc'd buffer from an earlier call
 * holding *len bytes; a non-empty buffer gets a "---" line first. The text is always
 * NUL-terminated (the NUL is not counted in *len); the caller frees *out.
 * Returns 0, or a negative code (ERR_YAML_TOO_DEEP, ERR_YAML_EMIT, -ENOMEM) with *len
 * and the text in *out as they were.
 */
int yamljson_emit(const json_t *value, char **out, size_t *len, struct err *e);

/* yamljson_emit_docs - the same for n values, as documents separated by "---" lines. */
int yamljson_emit_docs(json_t *const *values, size_t n, char **out, size_t *len, struct err *e);

#endif
