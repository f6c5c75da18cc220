/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for proxy/http1.c and httpflow.c: any bytes as requests and responses. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The fuzz rule of the Makefile compiles only the harness and lib/: the parsers come as source. */
#include "../../proxy/http1.c"
#include "../../proxy/httpflow.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 4096

static void die(const char *what)
{
	fprintf(stderr, "fuzz_http1: %s\n", what);
	abort();
}

static bool inside(const struct http1_str *s, const char *buf, size_t len)
{
	return s->len == 0 || (s->p >= buf && s->p + s->len <= buf + len);
}

/* Whole or a byte at a time, the head ends at the same place with the same verdict. */
static void check_head(const char *buf, size_t size)
{
	struct http1_error why = { 0 }, why2 = { 0 };
	struct http1_request req;
	size_t scan = 0, scan2 = 0;
	long whole = http1_head_end(buf, size, LIMIT, &scan, &why), part = 0;

	for (size_t len = 1; len <= size; len++) {
		part = http1_head_end(buf, len, LIMIT, &scan2, &why2);
		if (part != 0)
			break;
	}
	if (whole != part || (whole < 0 && why.status != why2.status))
		die("a head found differently whole and byte by byte");
	if (whole > 0 && http1_parse_request(buf, (size_t)whole, &req, &why) == 0) {
		if (!inside(&req.method, buf, (size_t)whole) || !inside(&req.target, buf, (size_t)whole) ||
		    /* An absolute-form target without a path has the path "/", from no byte. */
		    !(inside(&req.path, buf, (size_t)whole) ||
		      (req.path.len == 1 && req.path.p[0] == '/')) ||
		    req.nheaders > HTTP1_HEADERS_MAX ||
		    (req.framing == HTTP1_BODY_CHUNKED && req.minor != 1))
			die("a parsed request points outside its head");
		for (size_t i = 0; i < req.nheaders; i++)
			if (!inside(&req.headers[i].name, buf, (size_t)whole) ||
			    !inside(&req.headers[i].value, buf, (size_t)whole))
				die("a field points outside its head");
	}
}

static void check_chunked(const char *buf, size_t size)
{
	struct http1_chunked a = { 0 }, b = { 0 };
	bool done = false, done2 = false;
	long whole = http1_chunked_feed(&a, buf, size, &done), at = -2;

	for (size_t i = 0; i < size; i++) {
		long n = http1_chunked_feed(&b, buf + i, 1, &done2);

		if (n < 0) {
			at = -1;
			break;
		}
		if (done2) {
			at = (long)i + 1;
			break;
		}
	}
	if (whole >= 0 && !done)
		whole = -2;
	if (whole != at)
		die("a chunked body read differently whole and byte by byte");
}

static bool decide(void *arg, const struct http1_request *req)
{
	(void)arg;
	return req->path.len % 2 == 0;
}

/* Both directions of a flow over the same bytes: every step stays within what it was given. */
static void check_flow(const char *buf, size_t size)
{
	struct httpflow f;
	size_t q = 0, s = 0;

	httpflow_init(&f, decide, NULL, LIMIT);
	for (int round = 0; round < 10000; round++) {
		struct httpflow_step st;
		bool moved = false;

		httpflow_request(&f, buf + q, size - q, true, &st);
		if (st.act == HTTPFLOW_FORWARD || st.act == HTTPFLOW_DROP) {
			if (st.n > size - q)
				die("a request step beyond its bytes");
			moved = st.n > 0;
			q += st.n;
		} else if (st.act == HTTPFLOW_REPLY) {
			if (st.reply_len == 0 || st.reply_len >= sizeof(f.reply))
				die("an empty or cut reply");
			httpflow_replied(&f);
			moved = true;
		} else if (st.act == HTTPFLOW_ABORT) {
			return;
		}
		httpflow_response(&f, buf + s, size - s, true, &st);
		if (st.act == HTTPFLOW_FORWARD) {
			if (st.n > size - s)
				die("a response step beyond its bytes");
			moved = moved || st.n > 0;
			s += st.n;
		} else if (st.act == HTTPFLOW_ABORT) {
			return;
		}
		if (!moved)
			return;
	}
	die("a flow that never settles");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	if (size > 3 * LIMIT)
		return 0;
	check_head(buf, size);
	check_chunked(buf, size);
	check_flow(buf, size);
	return 0;
}
