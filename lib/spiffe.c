/* SPDX-License-Identifier: Apache-2.0 */
/* SPIFFE IDs: a strict parser, validators, formatting and the Kubernetes ns/sa mapping. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

#define SCHEME_PREFIX     "spiffe://"
#define SCHEME_PREFIX_LEN (sizeof(SCHEME_PREFIX) - 1)

/* The longest path an ID can hold: the ID minus the prefix and a one-byte trust domain. */
#define ID_PATH_MAX (SPIFFE_ID_MAX - SCHEME_PREFIX_LEN - 1)

#define K8S_NS_PREFIX  "/ns/"
#define K8S_SA_PREFIX  "/sa/"
#define K8S_PREFIX_LEN 4

/* Character classes are spelled out rather than taken from <ctype.h>, which follows the locale. */
static bool is_trust_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool is_path_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool is_dot_segment(const char *seg, size_t len)
{
	return (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.');
}

/* Copy len bytes and a NUL into dst of size bytes; ERR_TRUNCATED if they do not fit. */
static int copy_string(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return ERR_TRUNCATED;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/*
 * The first '?' starts a query and the first '#' a fragment, wherever they are: both end
 * the path in a URI, so the user is told about them rather than about a bad character.
 */
static int check_query_fragment(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '?')
			return ERR_SPIFFE_QUERY;
		if (s[i] == '#')
			return ERR_SPIFFE_FRAGMENT;
	}
	return 0;
}

/*
 * A trust domain is the whole authority of the URI. Userinfo and port are looked for
 * before the character set so that "user@host" and "host:443" get their own errors.
 */
static int check_trust_domain(const char *td, size_t len)
{
	if (len == 0)
		return ERR_SPIFFE_TD_EMPTY;
	if (memchr(td, '@', len) != NULL)
		return ERR_SPIFFE_USERINFO;
	/* An IPv6 literal "[::1]" is not a trust domain; its colons are not a port. */
	if (td[0] == '[')
		return ERR_SPIFFE_TD_CHAR;
	for (size_t i = 0; i < len; i++) {
		if (td[i] != ':')
			continue;
		/* "spiffe://example.org" given where a bare name was expected. */
		if (len - i >= 3 && td[i + 1] == '/' && td[i + 2] == '/')
			return ERR_SPIFFE_TD_CHAR;
		return ERR_SPIFFE_PORT;
	}
	if (len > SPIFFE_TD_MAX)
		return ERR_SPIFFE_TD_TOO_LONG;
	for (size_t i = 0; i < len; i++) {
		if (!is_trust_domain_char((unsigned char)td[i]))
			return ERR_SPIFFE_TD_CHAR;
	}
	return 0;
}

/* One non-empty segment that is known to hold no '/'. */
static int check_segment_body(const char *seg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!is_path_char((unsigned char)seg[i]))
			return ERR_SPIFFE_PATH_CHAR;
	}
	if (is_dot_segment(seg, len))
		return ERR_SPIFFE_PATH_DOT_SEGMENT;
	return 0;
}

int spiffe_td_validate(const char *td, size_t len)
{
	if (td == NULL && len > 0)
		return -EINVAL;
	return check_trust_domain(td, len);
}

int spiffe_segment_validate(const char *seg, size_t len)
{
	if (seg == NULL && len > 0)
		return -EINVAL;
	if (len == 0)
		return ERR_SPIFFE_PATH_EMPTY_SEGMENT;
	if (len > ID_PATH_MAX - 1)
		return ERR_SPIFFE_TOO_LONG;
	return check_segment_body(seg, len);
}

int spiffe_path_validate(const char *path, size_t len)
{
	const char *seg, *end, *slash;
	int rc;

	if (path == NULL && len > 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len > ID_PATH_MAX)
		return ERR_SPIFFE_TOO_LONG;
	if (path[0] != '/')
		return ERR_SPIFFE_PATH_NO_SLASH;

	/* Walk the segments after each '/', left to right, and report the first fault. */
	end = path + len;
	for (seg = path + 1;; seg = slash + 1) {
		slash = memchr(seg, '/', (size_t)(end - seg));
		if (slash == NULL) {
			if (seg == end)
				return ERR_SPIFFE_PATH_TRAILING_SLASH;
			return check_segment_body(seg, (size_t)(end - seg));
		}
		if (slash == seg)
			return ERR_SPIFFE_PATH_EMPTY_SEGMENT;
		rc = check_segment_body(seg, (size_t)(slash - seg));
		if (rc != 0)
			return rc;
	}
}

int spiffe_id_parse(const char *s, size_t len, struct spiffe_id *out)
{
	const char *td, *path, *end;
	size_t td_len, path_len;
	int rc;

	if (out == NULL || (s == NULL && len > 0))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return ERR_SPIFFE_EMPTY;
	/* The literal lowercase prefix, as go-spiffe: one identity, one spelling. */
	if (len < SCHEME_PREFIX_LEN || memcmp(s, SCHEME_PREFIX, SCHEME_PREFIX_LEN) != 0)
		return ERR_SPIFFE_SCHEME;
	if (len > SPIFFE_ID_MAX)
		return ERR_SPIFFE_TOO_LONG;
	rc = check_query_fragment(s, len);
	if (rc != 0)
		return rc;

	td = s + SCHEME_PREFIX_LEN;
	end = s + len;
	path = memchr(td, '/', (size_t)(end - td));
	if (path == NULL)
		path = end;
	td_len = (size_t)(path - td);
	path_len = (size_t)(end - path);

	rc = check_trust_domain(td, td_len);
	if (rc != 0)
		return rc;
	rc = spiffe_path_validate(path, path_len);
	if (rc != 0)
		return rc;

	/* Both fit: td_len <= SPIFFE_TD_MAX, and path_len < len <= SPIFFE_ID_MAX. */
	memcpy(out->td, td, td_len);
	memcpy(out->path, path, path_len);
	return 0;
}

int spiffe_id_parse_workload(const char *s, size_t len, struct spiffe_id *out)
{
	int rc = spiffe_id_parse(s, len, out);

	if (rc != 0)
		return rc;
	if (out->path[0] == '\0') {
		memset(out, 0, sizeof(*out));
		return ERR_SPIFFE_NO_PATH;
	}
	return 0;
}

/*
 * Check a struct that may have been filled by hand: both strings terminated within their
 * arrays, each valid, and the whole ID within the limit. Gives the lengths on success.
 */
static int check_id(const struct spiffe_id *id, size_t *td_len, size_t *path_len)
{
	int rc;

	*td_len = strnlen(id->td, sizeof(id->td));
	*path_len = strnlen(id->path, sizeof(id->path));
	if (*td_len == sizeof(id->td))
		return ERR_SPIFFE_TD_TOO_LONG;
	if (*path_len == sizeof(id->path))
		return ERR_SPIFFE_TOO_LONG;
	rc = check_trust_domain(id->td, *td_len);
	if (rc != 0)
		return rc;
	rc = spiffe_path_validate(id->path, *path_len);
	if (rc != 0)
		return rc;
	if (SCHEME_PREFIX_LEN + *td_len + *path_len > SPIFFE_ID_MAX)
		return ERR_SPIFFE_TOO_LONG;
	return 0;
}

int spiffe_id_format(const struct spiffe_id *id, char *buf, size_t size)
{
	size_t td_len, path_len;
	int rc;

	if (id == NULL || (buf == NULL && size > 0))
		return -EINVAL;
	if (size > 0)
		buf[0] = '\0';
	rc = check_id(id, &td_len, &path_len);
	if (rc != 0)
		return rc;
	if (SCHEME_PREFIX_LEN + td_len + path_len >= size)
		return ERR_TRUNCATED;
	memcpy(buf, SCHEME_PREFIX, SCHEME_PREFIX_LEN);
	memcpy(buf + SCHEME_PREFIX_LEN, id->td, td_len);
	memcpy(buf + SCHEME_PREFIX_LEN + td_len, id->path, path_len + 1);
	return 0;
}

int spiffe_id_from_k8s(const char *td, const char *ns, const char *sa, struct spiffe_id *out)
{
	size_t td_len, ns_len, sa_len;
	int rc;

	if (td == NULL || ns == NULL || sa == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));

	/* Bounded lengths: one byte over each limit is enough to report it. */
	td_len = strnlen(td, SPIFFE_TD_MAX + 1);
	ns_len = strnlen(ns, SPIFFE_ID_MAX + 1);
	sa_len = strnlen(sa, SPIFFE_ID_MAX + 1);
	rc = check_trust_domain(td, td_len);
	if (rc != 0)
		return rc;
	rc = spiffe_segment_validate(ns, ns_len);
	if (rc != 0)
		return rc;
	rc = spiffe_segment_validate(sa, sa_len);
	if (rc != 0)
		return rc;
	if (SCHEME_PREFIX_LEN + td_len + 2 * K8S_PREFIX_LEN + ns_len + sa_len > SPIFFE_ID_MAX)
		return ERR_SPIFFE_TOO_LONG;

	memcpy(out->td, td, td_len);
	snprintf(out->path, sizeof(out->path), K8S_NS_PREFIX "%s" K8S_SA_PREFIX "%s", ns, sa);
	return 0;
}

int spiffe_id_to_k8s(const struct spiffe_id *id, char *ns, size_t ns_size, char *sa, size_t sa_size)
{
	const char *path, *end, *ns_start, *ns_end, *sa_start;
	size_t path_len;
	int rc;

	if (id == NULL || (ns == NULL && ns_size > 0) || (sa == NULL && sa_size > 0))
		return -EINVAL;
	if (ns_size > 0)
		ns[0] = '\0';
	if (sa_size > 0)
		sa[0] = '\0';

	path = id->path;
	path_len = strnlen(path, sizeof(id->path));
	if (path_len == sizeof(id->path))
		return ERR_SPIFFE_TOO_LONG;
	rc = spiffe_path_validate(path, path_len);
	if (rc != 0)
		return rc;

	/* A valid path has no empty segment, so both names below are non-empty. */
	end = path + path_len;
	if (path_len < K8S_PREFIX_LEN || memcmp(path, K8S_NS_PREFIX, K8S_PREFIX_LEN) != 0)
		return ERR_SPIFFE_NOT_K8S;
	ns_start = path + K8S_PREFIX_LEN;
	ns_end = memchr(ns_start, '/', (size_t)(end - ns_start));
	if (ns_end == NULL || (size_t)(end - ns_end) < K8S_PREFIX_LEN ||
	    memcmp(ns_end, K8S_SA_PREFIX, K8S_PREFIX_LEN) != 0)
		return ERR_SPIFFE_NOT_K8S;
	sa_start = ns_end + K8S_PREFIX_LEN;
	if (memchr(sa_start, '/', (size_t)(end - sa_start)) != NULL)
		return ERR_SPIFFE_NOT_K8S;

	rc = copy_string(ns, ns_size, ns_start, (size_t)(ns_end - ns_start));
	if (rc == 0)
		rc = copy_string(sa, sa_size, sa_start, (size_t)(end - sa_start));
	if (rc != 0) {
		if (ns_size > 0)
			ns[0] = '\0';
		return rc;
	}
	return 0;
}

bool spiffe_id_equal(const struct spiffe_id *a, const struct spiffe_id *b)
{
	if (a == NULL || b == NULL)
		return false;
	return strncmp(a->td, b->td, sizeof(a->td)) == 0 &&
	       strncmp(a->path, b->path, sizeof(a->path)) == 0;
}

bool spiffe_id_member_of(const struct spiffe_id *id, const char *td)
{
	size_t len;

	if (id == NULL || td == NULL || td[0] == '\0')
		return false;
	len = strnlen(id->td, sizeof(id->td));
	return strlen(td) == len && memcmp(id->td, td, len) == 0;
}
