/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/spiffe.c: a valid and an invalid example for each rule of the SPIFFE ID spec. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One parser case: the input (len 0 means strlen), the code we want and, if 0, the parts. */
struct parse_case {
	const char *in;
	size_t len;
	int want;
	const char *td;
	const char *path;
};

static const char *code_name(int code)
{
	return code == 0 ? "0 (success)" : err_name(code);
}

/* The input as printable text for a failure message: bytes outside ASCII as \xNN. */
static const char *show(const char *s, size_t len)
{
	static char buf[256];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 16 < sizeof(buf); i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f)
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
	}
	if (o + 16 >= sizeof(buf))
		snprintf(buf + o, sizeof(buf) - o, "...(%zu bytes)", len);
	else
		buf[o] = '\0';
	return buf;
}

/*
 * Run each case through spiffe_id_parse and check the code, the parts on success (and
 * that formatting gives back the very input), and a zeroed result on failure. Every
 * failing case is printed with both sides before the test fails.
 */
static void check_parse_cases(const struct parse_case *cases, size_t n)
{
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		const struct parse_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct spiffe_id id;
		char buf[SPIFFE_ID_MAX + 1];
		int rc;

		memset(&id, 0x55, sizeof(id));
		rc = spiffe_id_parse(c->in, len, &id);
		if (rc != c->want) {
			print_error("parse \"%s\": got %s, want %s\n", show(c->in, len),
			            code_name(rc), code_name(c->want));
			failures++;
			continue;
		}
		if (rc != 0) {
			if (id.td[0] != '\0' || id.path[0] != '\0') {
				print_error("parse \"%s\": result not zeroed on error\n",
				            show(c->in, len));
				failures++;
			}
			continue;
		}
		if ((c->td != NULL && strcmp(id.td, c->td) != 0) ||
		    (c->path != NULL && strcmp(id.path, c->path) != 0)) {
			print_error("parse \"%s\": got td \"%s\" path \"%s\", want \"%s\" \"%s\"\n",
			            show(c->in, len), id.td, id.path, c->td ? c->td : "(any)",
			            c->path ? c->path : "(any)");
			failures++;
		}
		rc = spiffe_id_format(&id, buf, sizeof(buf));
		if (rc != 0 || strlen(buf) != len || memcmp(buf, c->in, len) != 0) {
			print_error("format(parse(\"%s\")) gave %s \"%s\"\n", show(c->in, len),
			            code_name(rc), buf);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

#define CHECK_PARSE(cases) check_parse_cases(cases, ARRAY_LEN(cases))

/* A validator case: the input (len 0 means strlen) and the code we want. */
struct check_case {
	const char *in;
	size_t len;
	int want;
};

static void check_validator(const char *what, int (*fn)(const char *, size_t),
                            const struct check_case *cases, size_t n)
{
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		int rc = fn(cases[i].in, len);

		if (rc != cases[i].want) {
			print_error("%s \"%s\": got %s, want %s\n", what, show(cases[i].in, len),
			            code_name(rc), code_name(cases[i].want));
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

#define CHECK_VALIDATOR(fn, cases) check_validator(#fn, fn, cases, ARRAY_LEN(cases))

/* Writes "spiffe://" + td_len x 'a' + "/" + path_len - 1 x 'b' (no path if path_len is 0). */
static const char *make_id(char *buf, size_t size, size_t td_len, size_t path_len)
{
	size_t o = 0;

	assert_true(9 + td_len + path_len < size);
	memcpy(buf, "spiffe://", 9);
	o = 9;
	memset(buf + o, 'a', td_len);
	o += td_len;
	if (path_len > 0) {
		buf[o++] = '/';
		memset(buf + o, 'b', path_len - 1);
		o += path_len - 1;
	}
	buf[o] = '\0';
	return buf;
}

static const char *make_string(char *buf, size_t size, char c, size_t len)
{
	assert_true(len < size);
	memset(buf, c, len);
	buf[len] = '\0';
	return buf;
}

/* Rule: the input must not be empty. */
static void test_empty_input(void **state)
{
	static const struct parse_case cases[] = {
		{ "", 0, ERR_SPIFFE_EMPTY, NULL, NULL },
		{ "spiffe://a", 0, 0, "a", "" },
	};
	struct spiffe_id id;

	(void)state;
	CHECK_PARSE(cases);
	assert_int_equal(spiffe_id_parse(NULL, 0, &id), ERR_SPIFFE_EMPTY);
	assert_int_equal(spiffe_id_parse(NULL, 3, &id), -EINVAL);
	assert_int_equal(spiffe_id_parse("spiffe://a", 10, NULL), -EINVAL);
}

/* Rule: the scheme is "spiffe", written as the literal lowercase prefix "spiffe://". */
static void test_scheme_is_lowercase_spiffe(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "SPIFFE://example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "Spiffe://example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "http://example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "spiffes://example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "spiffe:/example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "spiffe:example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "spiffe//example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ " spiffe://example.org/web", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "spiffe:/", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ "s", 0, ERR_SPIFFE_SCHEME, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the trust domain holds only [a-z0-9.-_]; IPv4 is allowed, IPv6 is not. */
static void test_trust_domain_charset(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://a-b_c.0123456789.xyz/web", 0, 0, "a-b_c.0123456789.xyz", "/web" },
		{ "spiffe://192.168.0.1/web", 0, 0, "192.168.0.1", "/web" },
		{ "spiffe://k8s-west.example.com", 0, 0, "k8s-west.example.com", "" },
		{ "spiffe://exa mple.org/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://example!org/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://example~org/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://ex\xc3\xa9.org/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://example.org\\web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://[::1]/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://[::1]:8443/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: letters in the trust domain are lowercase; the path may use both cases. */
static void test_uppercase_allowed_in_path_not_in_trust_domain(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/Web/API", 0, 0, "example.org", "/Web/API" },
		{ "spiffe://Example.org/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ "spiffe://EXAMPLE.ORG/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the trust domain is not empty. */
static void test_trust_domain_not_empty(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://a/web", 0, 0, "a", "/web" },
		{ "spiffe://", 0, ERR_SPIFFE_TD_EMPTY, NULL, NULL },
		{ "spiffe:///web", 0, ERR_SPIFFE_TD_EMPTY, NULL, NULL },
		{ "spiffe:////", 0, ERR_SPIFFE_TD_EMPTY, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the trust domain is at most 255 bytes. */
static void test_trust_domain_at_most_255_bytes(void **state)
{
	static char ok[300], bad[300], ok_td[256];
	const struct parse_case cases[] = {
		{ make_id(ok, sizeof(ok), 255, 4), 0, 0,
		  make_string(ok_td, sizeof(ok_td), 'a', 255), "/bbb" },
		{ make_id(bad, sizeof(bad), 256, 4), 0, ERR_SPIFFE_TD_TOO_LONG, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the authority has no port, and no ':' at all. A ':' in the path is just a bad char. */
static void test_no_port(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "spiffe://example.org:8443/web", 0, ERR_SPIFFE_PORT, NULL, NULL },
		{ "spiffe://example.org:8443", 0, ERR_SPIFFE_PORT, NULL, NULL },
		{ "spiffe://example.org:/web", 0, ERR_SPIFFE_PORT, NULL, NULL },
		{ "spiffe://:8443/web", 0, ERR_SPIFFE_PORT, NULL, NULL },
		{ "spiffe://Example.org:8443/web", 0, ERR_SPIFFE_PORT, NULL, NULL },
		{ "spiffe://example.org/web:8443", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the authority has no userinfo. An '@' in the path is just a bad char. */
static void test_no_userinfo(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "spiffe://user@example.org/web", 0, ERR_SPIFFE_USERINFO, NULL, NULL },
		{ "spiffe://user:secret@example.org/web", 0, ERR_SPIFFE_USERINFO, NULL, NULL },
		{ "spiffe://@example.org", 0, ERR_SPIFFE_USERINFO, NULL, NULL },
		{ "spiffe://example.org@evil.org/web", 0, ERR_SPIFFE_USERINFO, NULL, NULL },
		{ "spiffe://example.org/web@evil.org", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no query, wherever the '?' is; it wins over any other fault but the scheme. */
static void test_no_query(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "spiffe://example.org/web?x=1", 0, ERR_SPIFFE_QUERY, NULL, NULL },
		{ "spiffe://example.org?x=1", 0, ERR_SPIFFE_QUERY, NULL, NULL },
		{ "spiffe://example.org/?", 0, ERR_SPIFFE_QUERY, NULL, NULL },
		{ "spiffe://example.org/web?", 0, ERR_SPIFFE_QUERY, NULL, NULL },
		{ "spiffe://?", 0, ERR_SPIFFE_QUERY, NULL, NULL },
		{ "spiffe://Example.org/web?x#y", 0, ERR_SPIFFE_QUERY, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no fragment; a '?' after the '#' belongs to the fragment. */
static void test_no_fragment(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "spiffe://example.org/web#frag", 0, ERR_SPIFFE_FRAGMENT, NULL, NULL },
		{ "spiffe://example.org#frag", 0, ERR_SPIFFE_FRAGMENT, NULL, NULL },
		{ "spiffe://example.org/web#", 0, ERR_SPIFFE_FRAGMENT, NULL, NULL },
		{ "spiffe://example.org/web#x?y", 0, ERR_SPIFFE_FRAGMENT, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: path segments hold only [a-zA-Z0-9.-_], not even RFC 3986's other unreserved '~'. */
static void test_path_charset(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/a-b_c.d/0123456789/XYZxyz", 0, 0, "example.org",
		  "/a-b_c.d/0123456789/XYZxyz" },
		{ "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453", 0, 0, "example.com",
		  "/9eebccd2-12bf-40a6-b262-65fe0487d453" },
		{ "spiffe://example.org/web server", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/~web", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/w!e$b&'()*+,;=", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/a\\b", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/caf\xc3\xa9", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/a\tb", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/web\n", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no percent-encoding, in the trust domain or the path: '%' is a bad character. */
static void test_no_percent_encoding(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/a-20b", 0, 0, "example.org", "/a-20b" },
		{ "spiffe://example.org/a%20b", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/%2e%2e", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example.org/a%2Fb", 0, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ "spiffe://example%2eorg/web", 0, ERR_SPIFFE_TD_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no empty segment, so no "//" anywhere in the path. */
static void test_no_empty_segment(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/a/b/c", 0, 0, "example.org", "/a/b/c" },
		{ "spiffe://example.org//web", 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/a//b", 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/a//", 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no "." or ".." segment; other segments of dots, or with dots, are fine. */
static void test_no_dot_segments(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/...", 0, 0, "example.org", "/..." },
		{ "spiffe://example.org/.a/a./..a/a..b", 0, 0, "example.org", "/.a/a./..a/a..b" },
		{ "spiffe://example.org/.well-known/x", 0, 0, "example.org", "/.well-known/x" },
		{ "spiffe://example.org/.", 0, ERR_SPIFFE_PATH_DOT_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/..", 0, ERR_SPIFFE_PATH_DOT_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/a/./b", 0, ERR_SPIFFE_PATH_DOT_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/a/../b", 0, ERR_SPIFFE_PATH_DOT_SEGMENT, NULL, NULL },
		{ "spiffe://example.org/a/..", 0, ERR_SPIFFE_PATH_DOT_SEGMENT, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: no trailing '/', which also makes "spiffe://td/" invalid. */
static void test_no_trailing_slash(void **state)
{
	static const struct parse_case cases[] = {
		{ "spiffe://example.org/web", 0, 0, "example.org", "/web" },
		{ "spiffe://example.org", 0, 0, "example.org", "" },
		{ "spiffe://example.org/", 0, ERR_SPIFFE_PATH_TRAILING_SLASH, NULL, NULL },
		{ "spiffe://example.org/web/", 0, ERR_SPIFFE_PATH_TRAILING_SLASH, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* Rule: the whole ID is at most 2048 bytes. */
static void test_id_at_most_2048_bytes(void **state)
{
	static char ok[2100], bad[2100], ok_short_td[2100], ok_long_td[2100], bad_long_td[2100];
	/* 9 bytes of "spiffe://", then trust domain, then path. */
	const struct parse_case cases[] = {
		{ make_id(ok, sizeof(ok), 11, 2028), 0, 0, NULL, NULL },
		{ make_id(ok_short_td, sizeof(ok_short_td), 1, 2038), 0, 0, "a", NULL },
		{ make_id(ok_long_td, sizeof(ok_long_td), 255, 1784), 0, 0, NULL, NULL },
		{ make_id(bad, sizeof(bad), 11, 2029), 0, ERR_SPIFFE_TOO_LONG, NULL, NULL },
		{ make_id(bad_long_td, sizeof(bad_long_td), 255, 1785), 0, ERR_SPIFFE_TOO_LONG,
		  NULL, NULL },
	};

	(void)state;
	assert_int_equal(strlen(ok), 2048);
	assert_int_equal(strlen(bad), 2049);
	CHECK_PARSE(cases);
}

/* Rule: a NUL byte inside the input is a bad character, wherever it is. */
static void test_embedded_nul(void **state)
{
	static const char td_nul[] = "spiffe://example.org\0.evil.org/web";
	static const char path_nul[] = "spiffe://example.org/web\0/admin";
	static const char scheme_nul[] = "spif\0fe://example.org/web";
	static const char trailing_nul[] = "spiffe://example.org/web";
	const struct parse_case cases[] = {
		{ td_nul, 20, 0, "example.org", "" },
		{ path_nul, 24, 0, "example.org", "/web" },
		{ td_nul, sizeof(td_nul) - 1, ERR_SPIFFE_TD_CHAR, NULL, NULL },
		{ path_nul, sizeof(path_nul) - 1, ERR_SPIFFE_PATH_CHAR, NULL, NULL },
		{ scheme_nul, sizeof(scheme_nul) - 1, ERR_SPIFFE_SCHEME, NULL, NULL },
		{ trailing_nul, sizeof(trailing_nul), ERR_SPIFFE_PATH_CHAR, NULL, NULL },
	};

	(void)state;
	CHECK_PARSE(cases);
}

/* The input is len bytes and need not be NUL-terminated. */
static void test_input_need_not_be_nul_terminated(void **state)
{
	static const char raw[] = { 's', 'p', 'i', 'f', 'f', 'e', ':', '/', '/', 'a', '/', 'b' };
	static const char longer[] = "spiffe://example.org/web/extra";
	struct spiffe_id id;

	(void)state;
	assert_int_equal(spiffe_id_parse(raw, sizeof(raw), &id), 0);
	assert_string_equal(id.td, "a");
	assert_string_equal(id.path, "/b");
	assert_int_equal(spiffe_id_parse(longer, 24, &id), 0);
	assert_string_equal(id.path, "/web");
	assert_int_equal(spiffe_id_parse(longer, 25, &id), ERR_SPIFFE_PATH_TRAILING_SLASH);
}

/* An empty path names the trust domain itself: valid, unless a workload is required. */
static void test_empty_path_is_valid_unless_workload_required(void **state)
{
	static const char td_only[] = "spiffe://example.org";
	static const char workload[] = "spiffe://example.org/web";
	struct spiffe_id id;

	(void)state;
	assert_int_equal(spiffe_id_parse(td_only, strlen(td_only), &id), 0);
	assert_string_equal(id.td, "example.org");
	assert_string_equal(id.path, "");
	memset(&id, 0x55, sizeof(id));
	assert_int_equal(spiffe_id_parse_workload(td_only, strlen(td_only), &id),
	                 ERR_SPIFFE_NO_PATH);
	assert_string_equal(id.td, "");
	assert_int_equal(spiffe_id_parse_workload(workload, strlen(workload), &id), 0);
	assert_string_equal(id.path, "/web");
	assert_int_equal(spiffe_id_parse_workload("spiffe://Example.org", 20, &id),
	                 ERR_SPIFFE_TD_CHAR);
}

/* spiffe_td_validate takes a bare name, with the same rules as the authority of an ID. */
static void test_td_validate(void **state)
{
	static char ok255[300], bad256[300];
	const struct check_case cases[] = {
		{ "example.org", 0, 0 },
		{ "a", 0, 0 },
		{ "trust_domain-1.example.com", 0, 0 },
		{ make_string(ok255, sizeof(ok255), 'a', 255), 0, 0 },
		{ make_string(bad256, sizeof(bad256), 'a', 256), 0, ERR_SPIFFE_TD_TOO_LONG },
		{ "", 0, ERR_SPIFFE_TD_EMPTY },
		{ "Example.org", 0, ERR_SPIFFE_TD_CHAR },
		{ "example.org:8443", 0, ERR_SPIFFE_PORT },
		{ "user@example.org", 0, ERR_SPIFFE_USERINFO },
		{ "spiffe://example.org", 0, ERR_SPIFFE_TD_CHAR },
		{ "example.org/web", 0, ERR_SPIFFE_TD_CHAR },
		{ "example.org?x", 0, ERR_SPIFFE_TD_CHAR },
		{ "example%2eorg", 0, ERR_SPIFFE_TD_CHAR },
		{ "example.org ", 0, ERR_SPIFFE_TD_CHAR },
		{ "[::1]", 0, ERR_SPIFFE_TD_CHAR },
		{ "example.org\0evil", 16, ERR_SPIFFE_TD_CHAR },
	};

	(void)state;
	CHECK_VALIDATOR(spiffe_td_validate, cases);
	assert_int_equal(spiffe_td_validate(NULL, 0), ERR_SPIFFE_TD_EMPTY);
	assert_int_equal(spiffe_td_validate(NULL, 1), -EINVAL);
}

/* spiffe_path_validate takes "" or "/a/b"; the longest path any ID can hold is 2038 bytes. */
static void test_path_validate(void **state)
{
	static char ok[2100], bad[2100];
	const struct check_case cases[] = {
		{ "", 0, 0 },
		{ "/web", 0, 0 },
		{ "/ns/default/sa/web", 0, 0 },
		{ "/...", 0, 0 },
		{ make_id(ok, sizeof(ok), 0, 2038) + 9, 0, 0 },
		{ make_id(bad, sizeof(bad), 0, 2039) + 9, 0, ERR_SPIFFE_TOO_LONG },
		{ "web", 0, ERR_SPIFFE_PATH_NO_SLASH },
		{ "/", 0, ERR_SPIFFE_PATH_TRAILING_SLASH },
		{ "/web/", 0, ERR_SPIFFE_PATH_TRAILING_SLASH },
		{ "//web", 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT },
		{ "/a/../b", 0, ERR_SPIFFE_PATH_DOT_SEGMENT },
		{ "/.", 0, ERR_SPIFFE_PATH_DOT_SEGMENT },
		{ "/a?b", 0, ERR_SPIFFE_PATH_CHAR },
		{ "/a#b", 0, ERR_SPIFFE_PATH_CHAR },
		{ "/a%20b", 0, ERR_SPIFFE_PATH_CHAR },
		{ "/a\0b", 4, ERR_SPIFFE_PATH_CHAR },
		/* The first fault from the left is the one reported. */
		{ "/a b/./", 0, ERR_SPIFFE_PATH_CHAR },
		{ "/./a b", 0, ERR_SPIFFE_PATH_DOT_SEGMENT },
	};

	(void)state;
	CHECK_VALIDATOR(spiffe_path_validate, cases);
	assert_int_equal(spiffe_path_validate(NULL, 0), 0);
}

/* spiffe_segment_validate takes one segment: no '/', not empty, not "." or "..". */
static void test_segment_validate(void **state)
{
	static char ok[2100], bad[2100];
	const struct check_case cases[] = {
		{ "web", 0, 0 },
		{ "Web-1_x.y", 0, 0 },
		{ "...", 0, 0 },
		{ ".a", 0, 0 },
		{ make_string(ok, sizeof(ok), 'x', 2037), 0, 0 },
		{ make_string(bad, sizeof(bad), 'x', 2038), 0, ERR_SPIFFE_TOO_LONG },
		{ "", 0, ERR_SPIFFE_PATH_EMPTY_SEGMENT },
		{ ".", 0, ERR_SPIFFE_PATH_DOT_SEGMENT },
		{ "..", 0, ERR_SPIFFE_PATH_DOT_SEGMENT },
		{ "a/b", 0, ERR_SPIFFE_PATH_CHAR },
		{ "/web", 0, ERR_SPIFFE_PATH_CHAR },
		{ "a%2Fb", 0, ERR_SPIFFE_PATH_CHAR },
		{ "a b", 0, ERR_SPIFFE_PATH_CHAR },
	};

	(void)state;
	CHECK_VALIDATOR(spiffe_segment_validate, cases);
}

static void set_id(struct spiffe_id *id, const char *td, const char *path)
{
	memset(id, 0, sizeof(*id));
	snprintf(id->td, sizeof(id->td), "%s", td);
	snprintf(id->path, sizeof(id->path), "%s", path);
}

static void test_format(void **state)
{
	struct spiffe_id id;
	char buf[SPIFFE_ID_MAX + 1];
	char small[32];
	static const char want[] = "spiffe://example.org/ns/a/sa/b";

	(void)state;
	set_id(&id, "example.org", "/ns/a/sa/b");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);

	/* Exactly enough room, then one byte short. */
	assert_int_equal(spiffe_id_format(&id, small, sizeof(want)), 0);
	assert_string_equal(small, want);
	memset(small, 'x', sizeof(small));
	assert_int_equal(spiffe_id_format(&id, small, sizeof(want) - 1), ERR_TRUNCATED);
	assert_string_equal(small, "");
	assert_int_equal(spiffe_id_format(&id, NULL, 0), ERR_TRUNCATED);
	assert_int_equal(spiffe_id_format(&id, NULL, 1), -EINVAL);
	assert_int_equal(spiffe_id_format(NULL, buf, sizeof(buf)), -EINVAL);

	set_id(&id, "example.org", "");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "spiffe://example.org");
}

/* A struct filled by hand is checked before it is written out. */
static void test_format_refuses_invalid_struct(void **state)
{
	struct spiffe_id id;
	char buf[SPIFFE_ID_MAX + 1];

	(void)state;
	set_id(&id, "Example.org", "/web");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_TD_CHAR);
	assert_string_equal(buf, "");
	set_id(&id, "", "/web");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_TD_EMPTY);
	set_id(&id, "example.org", "web");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_PATH_NO_SLASH);
	set_id(&id, "example.org", "/a/../b");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_PATH_DOT_SEGMENT);

	/* Unterminated arrays. */
	set_id(&id, "example.org", "/web");
	memset(id.td, 'a', sizeof(id.td));
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_TD_TOO_LONG);
	set_id(&id, "example.org", "/");
	memset(id.path + 1, 'a', sizeof(id.path) - 1);
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_TOO_LONG);

	/* Each part within its own limit, but the two together over 2048 bytes. */
	set_id(&id, "", "/");
	memset(id.td, 'a', SPIFFE_TD_MAX);
	memset(id.path + 1, 'b', 2000);
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), ERR_SPIFFE_TOO_LONG);
}

static void test_from_k8s(void **state)
{
	struct spiffe_id id, parsed;
	char buf[SPIFFE_ID_MAX + 1];
	static const char want[] = "spiffe://cluster.local/ns/default/sa/web";

	(void)state;
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "default", "web", &id), 0);
	assert_string_equal(id.td, "cluster.local");
	assert_string_equal(id.path, "/ns/default/sa/web");
	assert_int_equal(spiffe_id_format(&id, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
	assert_int_equal(spiffe_id_parse(want, strlen(want), &parsed), 0);
	assert_true(spiffe_id_equal(&id, &parsed));
}

static void test_from_k8s_refuses_bad_names(void **state)
{
	struct spiffe_id id;
	static char ns[1100], sa[1100];

	(void)state;
	memset(&id, 0x55, sizeof(id));
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "my ns", "web", &id),
	                 ERR_SPIFFE_PATH_CHAR);
	assert_string_equal(id.td, "");
	assert_string_equal(id.path, "");
	/* A '/' in a name would smuggle in a segment: spiffe://td/ns/a/sa/b/sa/web. */
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "a/sa/b", "web", &id),
	                 ERR_SPIFFE_PATH_CHAR);
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "default", "web/x", &id),
	                 ERR_SPIFFE_PATH_CHAR);
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "", "web", &id),
	                 ERR_SPIFFE_PATH_EMPTY_SEGMENT);
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "default", "..", &id),
	                 ERR_SPIFFE_PATH_DOT_SEGMENT);
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "d%65fault", "web", &id),
	                 ERR_SPIFFE_PATH_CHAR);
	assert_int_equal(spiffe_id_from_k8s("Cluster.local", "default", "web", &id),
	                 ERR_SPIFFE_TD_CHAR);
	assert_int_equal(spiffe_id_from_k8s("", "default", "web", &id), ERR_SPIFFE_TD_EMPTY);
	assert_int_equal(spiffe_id_from_k8s("cluster.local:443", "default", "web", &id),
	                 ERR_SPIFFE_PORT);
	assert_int_equal(spiffe_id_from_k8s(NULL, "default", "web", &id), -EINVAL);
	assert_int_equal(spiffe_id_from_k8s("cluster.local", "default", "web", NULL), -EINVAL);

	/* "spiffe://a/ns/" + ns + "/sa/" + sa is 18 bytes plus the two names. */
	make_string(ns, sizeof(ns), 'n', 1000);
	make_string(sa, sizeof(sa), 's', 1030);
	assert_int_equal(spiffe_id_from_k8s("a", ns, sa, &id), 0);
	make_string(sa, sizeof(sa), 's', 1031);
	assert_int_equal(spiffe_id_from_k8s("a", ns, sa, &id), ERR_SPIFFE_TOO_LONG);
}

static void test_to_k8s(void **state)
{
	struct spiffe_id id;
	char ns[64], sa[64];

	(void)state;
	set_id(&id, "cluster.local", "/ns/default/sa/web");
	assert_int_equal(spiffe_id_to_k8s(&id, ns, sizeof(ns), sa, sizeof(sa)), 0);
	assert_string_equal(ns, "default");
	assert_string_equal(sa, "web");

	/* Round trip: the names come back and build the same ID. */
	{
		struct spiffe_id back;

		assert_int_equal(spiffe_id_from_k8s(id.td, ns, sa, &back), 0);
		assert_true(spiffe_id_equal(&id, &back));
	}

	/* Exactly enough room, then one byte short for either name. */
	assert_int_equal(spiffe_id_to_k8s(&id, ns, 8, sa, 4), 0);
	assert_int_equal(spiffe_id_to_k8s(&id, ns, 7, sa, 4), ERR_TRUNCATED);
	assert_string_equal(ns, "");
	assert_string_equal(sa, "");
	assert_int_equal(spiffe_id_to_k8s(&id, ns, 8, sa, 3), ERR_TRUNCATED);
	assert_string_equal(ns, "");
	assert_string_equal(sa, "");
	assert_int_equal(spiffe_id_to_k8s(NULL, ns, sizeof(ns), sa, sizeof(sa)), -EINVAL);
}

static void test_to_k8s_refuses_other_paths(void **state)
{
	static const char *const paths[] = {
		"",
		"/web",
		"/ns/default",
		"/ns/default/sa",
		"/ns/default/sa/web/extra",
		"/extra/ns/default/sa/web",
		"/sa/web/ns/default",
		"/NS/default/SA/web",
		"/ns/default/svc/web",
		"/namespace/default/sa/web",
		"/ns/default/sa/web/sa/other",
	};
	struct spiffe_id id;
	char ns[64], sa[64];
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
		int rc;

		set_id(&id, "cluster.local", paths[i]);
		strcpy(ns, "junk");
		strcpy(sa, "junk");
		rc = spiffe_id_to_k8s(&id, ns, sizeof(ns), sa, sizeof(sa));
		if (rc != ERR_SPIFFE_NOT_K8S || ns[0] != '\0' || sa[0] != '\0') {
			print_error("to_k8s \"%s\": got %s ns \"%s\" sa \"%s\", want %s\n",
			            paths[i], code_name(rc), ns, sa, code_name(ERR_SPIFFE_NOT_K8S));
			failures++;
		}
	}
	assert_int_equal(failures, 0);

	/* A hand-filled struct with an invalid path gives the path's own error. */
	set_id(&id, "cluster.local", "/ns/../sa/web");
	assert_int_equal(spiffe_id_to_k8s(&id, ns, sizeof(ns), sa, sizeof(sa)),
	                 ERR_SPIFFE_PATH_DOT_SEGMENT);
}

static void test_equal(void **state)
{
	struct spiffe_id a, b;

	(void)state;
	set_id(&a, "example.org", "/web");
	set_id(&b, "example.org", "/web");
	/* Bytes after the terminator do not count. */
	b.path[10] = 'x';
	assert_true(spiffe_id_equal(&a, &b));
	set_id(&b, "example.org", "/Web");
	assert_false(spiffe_id_equal(&a, &b));
	set_id(&b, "example.org", "/web/x");
	assert_false(spiffe_id_equal(&a, &b));
	set_id(&b, "example.com", "/web");
	assert_false(spiffe_id_equal(&a, &b));
	set_id(&b, "example.org", "");
	assert_false(spiffe_id_equal(&a, &b));
	assert_false(spiffe_id_equal(&a, NULL));
	assert_false(spiffe_id_equal(NULL, &a));
}

static void test_member_of(void **state)
{
	struct spiffe_id id;

	(void)state;
	set_id(&id, "example.org", "/web");
	assert_true(spiffe_id_member_of(&id, "example.org"));
	assert_false(spiffe_id_member_of(&id, "example.com"));
	assert_false(spiffe_id_member_of(&id, "a.example.org"));
	assert_false(spiffe_id_member_of(&id, "org"));
	assert_false(spiffe_id_member_of(&id, "example.or"));
	assert_false(spiffe_id_member_of(&id, "example.org.evil"));
	assert_false(spiffe_id_member_of(&id, "Example.org"));
	assert_false(spiffe_id_member_of(&id, "spiffe://example.org"));
	assert_false(spiffe_id_member_of(&id, ""));
	assert_false(spiffe_id_member_of(&id, NULL));
	assert_false(spiffe_id_member_of(NULL, "example.org"));
	set_id(&id, "example.org", "");
	assert_true(spiffe_id_member_of(&id, "example.org"));
	set_id(&id, "", "");
	assert_false(spiffe_id_member_of(&id, ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_scheme_is_lowercase_spiffe),
		cmocka_unit_test(test_trust_domain_charset),
		cmocka_unit_test(test_uppercase_allowed_in_path_not_in_trust_domain),
		cmocka_unit_test(test_trust_domain_not_empty),
		cmocka_unit_test(test_trust_domain_at_most_255_bytes),
		cmocka_unit_test(test_no_port),
		cmocka_unit_test(test_no_userinfo),
		cmocka_unit_test(test_no_query),
		cmocka_unit_test(test_no_fragment),
		cmocka_unit_test(test_path_charset),
		cmocka_unit_test(test_no_percent_encoding),
		cmocka_unit_test(test_no_empty_segment),
		cmocka_unit_test(test_no_dot_segments),
		cmocka_unit_test(test_no_trailing_slash),
		cmocka_unit_test(test_id_at_most_2048_bytes),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_input_need_not_be_nul_terminated),
		cmocka_unit_test(test_empty_path_is_valid_unless_workload_required),
		cmocka_unit_test(test_td_validate),
		cmocka_unit_test(test_path_validate),
		cmocka_unit_test(test_segment_validate),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_refuses_invalid_struct),
		cmocka_unit_test(test_from_k8s),
		cmocka_unit_test(test_from_k8s_refuses_bad_names),
		cmocka_unit_test(test_to_k8s),
		cmocka_unit_test(test_to_k8s_refuses_other_paths),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_member_of),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
