/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/http1.c: request heads (smuggling and malformed input), responses, chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http1.h"

#define LIMIT 8192

/* Parses a whole head: the length, or -1 with *why. */
static long parse(const char *text, struct http1_request *req, struct http1_error *why)
{
	size_t scan = 0, len = strlen(text);
	long n = http1_head_end(text, len, LIMIT, &scan, why);

	if (n <= 0)
		return n == 0 ? -2 : -1;
	return http1_parse_request(text, (size_t)n, req, why) < 0 ? -1 : n;
}

static void assert_str(struct http1_str s, const char *want)
{
	char got[256];

	snprintf(got, sizeof(got), "%.*s", (int)s.len, s.p);
	assert_string_equal(got, want);
}

struct bad {
	const char *name;
	const char *head;
	int status;
	const char *reason;
};

static const struct bad bads[] = {
	{ "repeated Content-Length, equal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, "repeated Content-Length" },
	{ "conflicting Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "repeated Content-Length" },
	{ "Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, "malformed Content-Length" },
	{ "Content-Length with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, "malformed Content-Length" },
	{ "Content-Length hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400, "malformed Content-Length" },
	{ "Content-Length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "malformed Content-Length" },
	{ "Content-Length overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, "malformed Content-Length" },
	{ "Transfer-Encoding with Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding with Content-Length" },
	{ "Content-Length after Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "Transfer-Encoding with Content-Length" },
	{ "repeated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "repeated Transfer-Encoding" },
	{ "Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding other than chunked" },
	{ "Transfer-Encoding xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, "Transfer-Encoding other than chunked" },
	{ "Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in an HTTP/1.0 request" },
	{ "Transfer-Encoding with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, "whitespace before ':' in a field" },
	{ "obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", 400, "obsolete line folding" },
	{ "obsolete folding with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 400, "obsolete line folding" },
	{ "bare LF ending a field", "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", 400, "bare LF in the head" },
	{ "bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF in the head" },
	{ "bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF in the head" },
	{ "bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", 400, "bare CR in the head" },
	{ "NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\0012\r\n\r\n", 400, "control character in a field value" },
	{ "escape in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \033[31m\r\n\r\n", 400, "control character in a field value" },
	{ "DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\177\r\n\r\n", 400, "control character in a field value" },
	{ "control character in the target", "GET /a\001b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "tab as a separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "trailing space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version not supported" },
	{ "HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "HTTP version not supported" },
	{ "HTTP/0.9 style", "GET /\r\n\r\n", 400, "malformed request line" },
	{ "no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, "HTTP/1.1 request without Host" },
	{ "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "repeated Host" },
	{ "Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "malformed Host" },
	{ "Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "malformed Host" },
	{ "empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400, "malformed field name" },
	{ "field name with a space", "GET / HTTP/1.1\r\nHost: a\r\nX A: x\r\n\r\n", 400, "malformed field name" },
	{ "field without a colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400, "malformed field name" },
	{ "field name with a non-token byte", "GET / HTTP/1.1\r\nHost: a\r\nX(A): x\r\n\r\n", 400, "malformed field name" },
	{ "fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment in the request target" },
	{ "relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request target" },
	{ "asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "'*' is a target only for OPTIONS" },
	{ "CONNECT", "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n", 405, "CONNECT is not supported on HTTP ports" },
	{ "h2c upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", 400, "Upgrade to a protocol other than WebSocket" },
	{ "upgrade without Connection", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", 400, "Upgrade to a protocol other than WebSocket" },
	{ "Host differs from the target", "GET http://public.example/x HTTP/1.1\r\nHost: admin.example\r\n\r\n", 400, "Host differs from the request target's authority" },
	{ "dot-dot segment", "GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "dot segment", "GET /./admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "trailing dot-dot", "GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "empty segment", "GET /a//b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "backslash", "GET /a\\..\\admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "encoded unreserved", "GET /%61dmin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "encoded dot", "GET /a/%2e%2e/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "bad escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "cut escape", "GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "dot-dot in an absolute form", "GET http://a/x/../y HTTP/1.1\r\nHost: a\r\n\r\n", 400, "path is not in normal form" },
	{ "many empty lines first", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "too many empty lines before the request" },
	{ "absolute form with userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed authority in the request target" },
	{ "method with a slash", "GE/T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "high byte in the target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line" },
	{ "repeated Connection", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", 400, "repeated Connection" },
};

static void test_bad_heads(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct http1_request req;
		struct http1_error why = { 0 };
		long n = parse(bads[i].head, &req, &why);

		if (n != -1 || why.status != bads[i].status ||
		    strcmp(why.reason, bads[i].reason) != 0)
			fail_msg("%s: got %ld, %d \"%s\"; want %d \"%s\"", bads[i].name, n,
			         why.status, why.reason != NULL ? why.reason : "", bads[i].status,
			         bads[i].reason);
	}
}

static void test_good_head(void **state)
{
	static const char head[] = "\r\nPOST /api/v1/items?x=1&y=2 HTTP/1.1\r\n"
	                           "Host: Example.COM:8080\r\n"
	                           "X-Team:  payments \r\n"
	                           "Content-Length: 12\r\n"
	                           "X-Team: ops\r\n\r\nbody";
	struct http1_request req;
	struct http1_error why = { 0 };
	long n = parse(head, &req, &why);

	(void)state;
	assert_int_equal(n, (long)strlen(head) - 4);
	assert_str(req.method, "POST");
	assert_str(req.target, "/api/v1/items?x=1&y=2");
	assert_str(req.path, "/api/v1/items");
	assert_str(req.host, "Example.COM:8080");
	assert_int_equal(req.minor, 1);
	assert_true(req.keep_alive);
	assert_false(req.upgrade);
	assert_int_equal(req.framing, HTTP1_BODY_LENGTH);
	assert_int_equal(req.length, 12);
	assert_int_equal(req.nheaders, 4);
	assert_str(http1_header_get(&req, "x-team")->value, "payments");
	assert_null(http1_header_get(&req, "x-none"));
}

static void test_forms(void **state)
{
	struct http1_request req;
	struct http1_error why = { 0 };

	(void)state;
	assert_true(parse("GET http://svc.ns:80/a/b?q HTTP/1.1\r\nHost: SVC.ns:80\r\n\r\n", &req,
	                  &why) > 0);
	assert_str(req.host, "svc.ns:80"); /* the target's authority; Host agrees (any case) */
	assert_str(req.path, "/a/b");
	assert_true(parse("GET http://svc HTTP/1.1\r\nHost: svc\r\n\r\n", &req, &why) > 0);
	assert_str(req.path, "/");
	assert_true(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why) > 0);
	assert_str(req.path, "");
	/* Encoded reserved characters are not unreserved ones: they stay as sent. */
	assert_true(parse("GET /a%2Fb%20c/d.txt HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why) > 0);
	assert_str(req.path, "/a%2Fb%20c/d.txt");
	assert_true(parse("GET /.well-known/x/..z HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why) > 0);
	assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req, &why) > 0);
	assert_false(req.keep_alive);
	assert_str(req.host, "");
	assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req, &why) > 0);
	assert_true(req.keep_alive);
	assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n", &req,
	                  &why) > 0);
	assert_false(req.keep_alive);
	assert_true(parse("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: "
	                  "websocket\r\n\r\n",
	                  &req, &why) > 0);
	assert_true(req.upgrade);
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
	                  &req, &why) > 0);
	assert_int_equal(req.framing, HTTP1_BODY_CHUNKED);
	assert_true(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req, &why) >
	            0);
	assert_int_equal(req.framing, HTTP1_BODY_NONE);
	assert_true(parse("get / HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why) > 0);
	assert_str(req.method, "get"); /* a method is any token, case kept */
}

/* A head that comes a byte at a time is found once it is whole, and not before. */
static void test_head_bytewise(void **state)
{
	static const char head[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
	size_t scan = 0, full = strlen(head) - 4;
	struct http1_error why = { 0 };

	(void)state;
	for (size_t len = 1; len < full; len++)
		assert_int_equal(http1_head_end(head, len, LIMIT, &scan, &why), 0);
	assert_int_equal(http1_head_end(head, full, LIMIT, &scan, &why), (long)full);
	scan = 0;
	assert_int_equal(http1_head_end(head, strlen(head), LIMIT, &scan, &why), (long)full);
}

static void test_head_limit(void **state)
{
	char big[LIMIT + 64];
	size_t scan = 0;
	struct http1_error why = { 0 };
	struct http1_request req;

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(http1_head_end(big, LIMIT - 1, LIMIT, &scan, &why), 0);
	assert_int_equal(http1_head_end(big, sizeof(big), LIMIT, &scan, &why), -1);
	assert_int_equal(why.status, 431);

	/* More fields than HTTP1_HEADERS_MAX. */
	char many[4096];
	size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP1_HEADERS_MAX; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "X-%d: v\r\n", i);
	snprintf(many + n, sizeof(many) - n, "\r\n");
	assert_int_equal(parse(many, &req, &why), -1);
	assert_int_equal(why.status, 431);
	assert_string_equal(why.reason, "too many header fields");
}

struct chunk_case {
	const char *name;
	const char *body;
	long want; /* bytes of the body, or -1 */
};

static const struct chunk_case chunks[] = {
	{ "one chunk", "5\r\nhello\r\n0\r\n\r\nNEXT", 15 },
	{ "hex sizes", "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", 35 },
	{ "extension", "5;name=value\r\nhello\r\n0;x\r\n\r\n", 28 },
	{ "whitespace before an extension", "5 ;a\r\nhello\r\n0\r\n\r\n", 18 },
	{ "trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n", 33 },
	{ "bare LF after the size", "5\nhello\r\n0\r\n\r\n", -1 },
	{ "bare LF after the data", "5\r\nhello\n0\r\n\r\n", -1 },
	{ "data longer than the size", "5\r\nhello!\r\n0\r\n\r\n", -1 },
	{ "no size", "\r\nhello\r\n", -1 },
	{ "negative size", "-5\r\nhello\r\n", -1 },
	{ "size with 0x", "0x5\r\nhello\r\n", -1 },
	{ "size overflow", "10000000000000000\r\n", -1 },
	{ "whitespace then garbage", "5 x\r\n", -1 },
	{ "control character in an extension", "5;a\001\r\nhello\r\n", -1 },
	{ "folded trailer", "0\r\nX: 1\r\n 2\r\n\r\n", -1 },
	{ "bare LF ending the trailers", "0\r\nX: 1\r\n\n", -1 },
	{ "trailer without a name", "0\r\n: 1\r\n\r\n", -1 },
};

static void test_chunked(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		const char *b = chunks[i].body;
		size_t len = strlen(b);
		long got;
		bool done = false;

		/* Whole, then a byte at a time: the same answer. */
		struct http1_chunked c = { 0 };

		got = http1_chunked_feed(&c, b, len, &done);
		if (got >= 0 && !done)
			got = -3;
		if (got != chunks[i].want)
			fail_msg("%s (whole): got %ld, want %ld", chunks[i].name, got,
			         chunks[i].want);
		memset(&c, 0, sizeof(c));
		got = -3;
		for (size_t j = 0; j < len; j++) {
			long n = http1_chunked_feed(&c, b + j, 1, &done);

			if (n < 0) {
				got = -1;
				break;
			}
			if (done) {
				got = (long)j + 1;
				break;
			}
		}
		if (got != chunks[i].want)
			fail_msg("%s (bytewise): got %ld, want %ld", chunks[i].name, got,
			         chunks[i].want);
	}
}

static void test_responses(void **state)
{
	struct http1_response r;
	struct http1_error why = { 0 };

	(void)state;
	assert_int_equal(http1_parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 38,
	                                      false, false, &r, &why),
	                 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.framing, HTTP1_BODY_LENGTH);
	assert_int_equal(r.length, 5);
	assert_int_equal(http1_parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 38,
	                                      true, false, &r, &why),
	                 0);
	assert_int_equal(r.framing, HTTP1_BODY_NONE); /* HEAD */
	assert_int_equal(http1_parse_response("HTTP/1.1 204 No Content\r\n\r\n", 27, false, false,
	                                      &r, &why),
	                 0);
	assert_int_equal(r.framing, HTTP1_BODY_NONE);
	assert_int_equal(http1_parse_response("HTTP/1.1 100 Continue\r\n\r\n", 25, false, false, &r,
	                                      &why),
	                 0);
	assert_int_equal(r.status, 100);
	assert_int_equal(r.framing, HTTP1_BODY_NONE);
	assert_int_equal(http1_parse_response("HTTP/1.0 200 OK\r\n\r\n", 19, false, false, &r,
	                                      &why),
	                 0);
	assert_int_equal(r.framing, HTTP1_BODY_EOF);
	assert_int_equal(
	    http1_parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 52,
	                         false, false, &r, &why),
	    0);
	assert_int_equal(r.framing, HTTP1_BODY_CHUNKED);
	assert_int_equal(http1_parse_response("HTTP/1.1 200\r\n\r\n", 16, false, true, &r, &why),
	                 0);
	assert_int_equal(r.framing, HTTP1_BODY_NONE); /* CONNECT established */
	assert_int_equal(http1_parse_response("HTTP/1.1 2xx OK\r\n\r\n", 19, false, false, &r,
	                                      &why),
	                 -1);
	assert_int_equal(why.status, 502);
	assert_int_equal(
	    http1_parse_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	                         57, false, false, &r, &why),
	    -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_heads),    cmocka_unit_test(test_good_head),
		cmocka_unit_test(test_forms),        cmocka_unit_test(test_head_bytewise),
		cmocka_unit_test(test_head_limit),   cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_responses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
