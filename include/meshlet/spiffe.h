/* SPDX-License-Identifier: Apache-2.0 */
/* SPIFFE IDs: a strict parser, validators, formatting and the Kubernetes ns/sa mapping. */
#ifndef MESHLET_SPIFFE_H
#define MESHLET_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The rules are those of the SPIFFE-ID standard (spiffe/spiffe, standards/SPIFFE-ID.md):
 *
 *   spiffe://<trust domain><path>
 *
 * - The scheme is the literal, lowercase "spiffe://" (as go-spiffe requires); "SPIFFE://"
 *   is refused so that one identity has one spelling.
 * - The trust domain is 1 to 255 bytes of [a-z0-9._-]: no uppercase, no percent-encoding,
 *   no userinfo ('@'), no port (':'), no IP literal ('[').
 * - The path is empty or a sequence of "/segment"; a segment is 1 or more bytes of
 *   [a-zA-Z0-9._-] and is neither "." nor "..". No trailing '/', no percent-encoding.
 * - No query ('?') and no fragment ('#') anywhere.
 * - The whole ID is at most 2048 bytes.
 *
 * Nothing is normalised: a string parses only if it is already in the one canonical form,
 * so that formatting a parsed ID gives back exactly the bytes that were parsed. All checks
 * are on bytes, independent of the locale. Every function returns 0 or a negative code
 * (an ERR_SPIFFE_* code from meshlet/err.h, ERR_TRUNCATED, or -EINVAL for a NULL argument).
 * When an input breaks several rules, the first one met from left to right is reported,
 * except that a query, fragment, userinfo or port is named even when an earlier byte is bad.
 */

#define SPIFFE_ID_MAX 2048 /* bytes, whole ID */
#define SPIFFE_TD_MAX 255  /* bytes, trust domain */

/* A parsed SPIFFE ID: two NUL-terminated strings, plain data that may be copied freely. */
struct spiffe_id {
	char td[SPIFFE_TD_MAX + 1];   /* "example.org" */
	char path[SPIFFE_ID_MAX + 1]; /* "" or "/ns/default/sa/web" */
};

/*
 * spiffe_id_parse - parse len bytes of s as a SPIFFE ID into *out.
 * s need not be NUL-terminated; a NUL byte inside the len bytes is a bad character
 * (ERR_SPIFFE_SCHEME, ERR_SPIFFE_TD_CHAR or ERR_SPIFFE_PATH_CHAR by where it falls), so
 * "spiffe://good.org\0.evil.org" is refused rather than read as spiffe://good.org.
 * The caller owns s and *out, which must not overlap. An ID with an empty path, which
 * names the trust domain itself, is valid; use spiffe_id_parse_workload to refuse it.
 * Returns 0 and fills *out, or an error and leaves *out zeroed.
 */
int spiffe_id_parse(const char *s, size_t len, struct spiffe_id *out);

/*
 * spiffe_id_parse_workload - spiffe_id_parse, and the ID must name a workload: a path
 * that is empty gives ERR_SPIFFE_NO_PATH (and *out zeroed).
 */
int spiffe_id_parse_workload(const char *s, size_t len, struct spiffe_id *out);

/*
 * spiffe_td_validate - check len bytes of td as a bare trust domain name, as written in
 * a configuration file: "example.org", not "spiffe://example.org" (that gives
 * ERR_SPIFFE_TD_CHAR). Returns 0 or ERR_SPIFFE_TD_EMPTY, ERR_SPIFFE_TD_TOO_LONG,
 * ERR_SPIFFE_USERINFO, ERR_SPIFFE_PORT or ERR_SPIFFE_TD_CHAR.
 */
int spiffe_td_validate(const char *td, size_t len);

/*
 * spiffe_path_validate - check len bytes of path as the path of a SPIFFE ID: "" or
 * "/a/b". Here '?' and '#' are bad characters (ERR_SPIFFE_PATH_CHAR). A path longer than
 * 2038 bytes gives ERR_SPIFFE_TOO_LONG, as no ID could hold it. Returns 0 or one of the
 * ERR_SPIFFE_PATH_* codes or ERR_SPIFFE_TOO_LONG.
 */
int spiffe_path_validate(const char *path, size_t len);

/*
 * spiffe_segment_validate - check len bytes of seg as one path segment ("web", no '/').
 * Returns 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT, ERR_SPIFFE_PATH_DOT_SEGMENT,
 * ERR_SPIFFE_PATH_CHAR (a '/' included) or ERR_SPIFFE_TOO_LONG.
 */
int spiffe_segment_validate(const char *seg, size_t len);

/*
 * spiffe_id_format - write id as "spiffe://<td><path>" and a NUL into buf (size bytes,
 * owned by the caller). The struct is validated first, so a hand-filled one that is not a
 * valid ID gives that ID's error rather than a bad string. A buf of SPIFFE_ID_MAX + 1
 * bytes always suffices. Returns 0, an ERR_SPIFFE_* code, or ERR_TRUNCATED if buf is too
 * small; on failure buf holds "" (when size > 0).
 */
int spiffe_id_format(const struct spiffe_id *id, char *buf, size_t size);

/*
 * spiffe_id_from_k8s - build spiffe://<td>/ns/<ns>/sa/<sa> from three NUL-terminated
 * strings into *out. td must be a valid trust domain and ns and sa valid path segments;
 * the whole ID must fit in SPIFFE_ID_MAX bytes (else ERR_SPIFFE_TOO_LONG). Kubernetes'
 * own, narrower naming rules are not checked here. Returns 0, or an error and *out zeroed.
 */
int spiffe_id_from_k8s(const char *td, const char *ns, const char *sa, struct spiffe_id *out);

/*
 * spiffe_id_to_k8s - the namespace and service account of an ID whose path is exactly
 * /ns/<ns>/sa/<sa>, copied with a NUL into ns (ns_size bytes) and sa (sa_size bytes).
 * The trust domain is not looked at: check it with spiffe_id_member_of, as the same
 * names in another trust domain are another identity. Returns 0, ERR_SPIFFE_NOT_K8S for
 * any other path (extra or missing segments, other order, other case), an error from
 * spiffe_path_validate for a hand-filled struct whose path is invalid, or ERR_TRUNCATED;
 * on failure ns and sa hold "" (when their size > 0).
 */
int spiffe_id_to_k8s(const struct spiffe_id *id, char *ns, size_t ns_size, char *sa,
                     size_t sa_size);

/* spiffe_id_equal - whether a and b are the same ID, byte for byte; false if either is NULL. */
bool spiffe_id_equal(const struct spiffe_id *a, const struct spiffe_id *b);

/*
 * spiffe_id_member_of - whether id belongs to the trust domain named td (a bare,
 * NUL-terminated name such as "example.org"): an exact match, so "a.example.org" is not a
 * member of "example.org". False if either is NULL or td is empty.
 */
bool spiffe_id_member_of(const struct spiffe_id *id, const char *td);

#endif
