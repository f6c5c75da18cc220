/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/httpflow.c: requests decided one by one, replies between responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/httpflow.h"

/* Denies requests whose path starts with /deny. */
static bool decide(void *arg, const struct http1_request *req)
{
	int *calls = arg;

	(*calls)++;
	return !(req->path.len >= 5 && memcmp(req->path.p, "/deny", 5) == 0);
}

/*
 * Runs one direction over text until the flow wants more, and writes what it did as
 * tokens: F<n> forward, D<n> drop, R<status> reply (C when it closes), A abort, M more.
 * Returns the bytes left.
 */
static size_t drive(struct httpflow *f, bool request, const char *text, bool eof, char *log,
                    size_t size)
{
	size_t len = strlen(text), pos = 0, n = 0;

	log[0] = '\0';
	for (int guard = 0; guard < 100; guard++) {
		struct httpflow_step st;

		if (request)
			httpflow_request(f, text + pos, len - pos, eof, &st);
		else
			httpflow_response(f, text + pos, len - pos, eof, &st);
		switch (st.act) {
		case HTTPFLOW_FORWARD:
			n += (size_t)snprintf(log + n, size - n, "F%zu ", st.n);
			pos += st.n;
			break;
		case HTTPFLOW_DROP:
			n += (size_t)snprintf(log + n, size - n, "D%zu ", st.n);
			pos += st.n;
			break;
		case HTTPFLOW_REPLY:
			n += (size_t)snprintf(log + n, size - n, "R%.3s%s ", st.reply + 9,
			                      st.close ? "C" : "");
			httpflow_replied(f);
			break;
		case HTTPFLOW_ABORT:
			snprintf(log + n, size - n, "A");
			return len - pos;
		case HTTPFLOW_MORE:
			snprintf(log + n, size - n, "M");
			return len - pos;
		}
	}
	fail_msg("no end: %s", log);
	return 0;
}

#define GET_OK   "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"   /* 29 bytes */
#define GET_DENY "GET /deny HTTP/1.1\r\nHost: a\r\n\r\n" /* 31 bytes */
#define RESP_OK  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" /* 38 + 2 */

static void expect(struct httpflow *f, bool request, const char *text, const char *want)
{
	char log[512];

	drive(f, request, text, false, log, sizeof(log));
	if (strcmp(log, want) != 0)
		fail_msg("%s %.40s: got \"%s\", want \"%s\"", request ? "request" : "response", text,
		         log, want);
}

static void test_allow_and_deny_on_one_connection(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, GET_OK, "F29 M");
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, GET_DENY, "D31 R403 M");
	expect(&f, true, GET_OK, "F29 M");
	assert_int_equal(calls, 3);
}

static void test_pipelined_deny_waits(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	/* The 403 may only go after the first response. */
	expect(&f, true, GET_OK GET_DENY GET_OK, "F29 D31 M");
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, GET_OK, "R403 F29 M");
}

static void test_denied_bodies_are_dropped(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	       "D51 D5 R403 M");
	expect(&f, true,
	       "POST /deny HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "5\r\nhello\r\n0\r\n\r\n",
	       "D60 D15 R403 M");
	/* Expect: 100-continue: the body would wait for us, so answer now and close. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true,
	       "POST /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
	       "D73 R403C M");
	/* Connection: close on a denied request: the reply closes. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "GET /deny HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" GET_OK,
	       "D50 R403C D29 M");
}

static void test_allowed_bodies_pass(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", "F49 F3 M");
	expect(&f, true, "lo" GET_OK, "F2 F29 M");
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true,
	       "POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "5\r\nhello\r\n0\r\n\r\n",
	       "F58 F15 M");
	/* A broken chunk after part of the request went through: the connection is reset. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true,
	       "POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX",
	       "F58 A");
}

static void test_malformed_closes(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	       "R400C D66 M");
	assert_int_equal(calls, 0);
	httpflow_init(&f, decide, &calls, 64);
	expect(&f, true, "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	       "R431C D80 M");
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "R501C D52 M");
	/* A malformed request after an allowed one waits for its response. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, GET_OK "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "F29 M");
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, "", "R505C M");
}

static void test_responses(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	/* HEAD: a Content-Length but no body. */
	expect(&f, true, "HEAD /ok HTTP/1.1\r\nHost: a\r\n\r\n", "F30 M");
	expect(&f, false, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "F39 M");
	expect(&f, true, GET_DENY, "D31 R403 M");
	/* 100 Continue, then the response; a chunked response. */
	expect(&f, true, GET_OK, "F29 M");
	expect(&f, false,
	       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	       "2\r\nok\r\n0\r\n\r\n",
	       "F25 F47 F12 M");
	expect(&f, true, GET_DENY, "D31 R403 M");
	/* A malformed response resets the connection. */
	expect(&f, true, GET_OK, "F29 M");
	expect(&f, false, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "A");
}

static void test_upgrade(void **state)
{
	struct httpflow f;
	int calls = 0;
#define UP "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, UP "frame", "F70 M");
	expect(&f, false, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nxyz",
	       "F56 F3 M");
	expect(&f, true, "frame", "F5 M");
	/* Declined: HTTP goes on. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, UP GET_DENY, "F70 M");
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, GET_DENY, "D31 R403 M");
}

static void test_unsolicited_response(void **state)
{
	struct httpflow f;
	int calls = 0;

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, false, "HTTP/1.1 408 Request Timeout\r\n\r\n", "F32 M");
	expect(&f, true, GET_OK, "D29 M");
}

static void test_split_head_and_pipeline_limit(void **state)
{
	struct httpflow f;
	int calls = 0;
	char many[HTTPFLOW_PIPELINE * 29 + 30];

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, "GET /ok HTTP/1.1\r\nHo", "M");
	expect(&f, true, GET_OK, "F29 M");
	/* A head cut by the end of the stream is dropped. */
	{
		char log[64];

		drive(&f, true, "GET /ok HT", true, log, sizeof(log));
		assert_string_equal(log, "D10 M");
	}
	httpflow_init(&f, decide, &calls, 8192);
	many[0] = '\0';
	for (int i = 0; i <= HTTPFLOW_PIPELINE; i++)
		strcat(many, GET_OK);
	{
		char log[2048], want[2048] = "";

		for (int i = 0; i < HTTPFLOW_PIPELINE; i++)
			strcat(want, "F29 ");
		strcat(want, "M");
		assert_int_equal(drive(&f, true, many, false, log, sizeof(log)), 29);
		assert_string_equal(log, want);
	}
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, GET_OK, "F29 M");
}

/* When the flow waits on the client for a head, and since when (the caller's clock). */
static void test_head_wait(void **state)
{
	struct httpflow f;
	int calls = 0;
	char many[(HTTPFLOW_PIPELINE + 1) * 29 + 8];

	(void)state;
	httpflow_init(&f, decide, &calls, 8192);
	/* The first head is awaited from the start; the caller says since when. */
	assert_true(f.head_wait);
	f.head_since = 50;
	f.now = 100;
	expect(&f, true, "", "M");
	expect(&f, true, "GET /ok HT", "M");
	assert_true(f.head_wait);
	assert_int_equal(f.head_since, 50);
	expect(&f, true, GET_OK, "F29 M");
	assert_false(f.head_wait);
	/* Between requests, and while a response is awaited, no head is. */
	f.now = 200;
	expect(&f, true, "", "M");
	assert_false(f.head_wait);
	/* A later head: from its first byte, not from the one before. */
	f.now = 300;
	expect(&f, true, "GET /ok", "M");
	assert_true(f.head_wait);
	assert_int_equal(f.head_since, 300);
	f.now = 400;
	expect(&f, true, "GET /ok HTTP/1.1\r\n", "M");
	assert_int_equal(f.head_since, 300);
	/* Too late: a 408 that closes, after the response before it. */
	httpflow_head_timeout(&f);
	assert_false(f.head_wait);
	assert_true(f.head_timed_out);
	expect(&f, true, "GET /ok HTTP/1.1\r\n", "M");
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, "GET /ok HTTP/1.1\r\n", "R408C D18 M");
	{
		struct httpflow_step st;

		httpflow_init(&f, decide, &calls, 8192);
		httpflow_head_timeout(&f);
		httpflow_request(&f, "", 0, false, &st);
		assert_int_equal(st.act, HTTPFLOW_REPLY);
		assert_true(st.close);
		assert_non_null(strstr(st.reply, "HTTP/1.1 408 Request Timeout\r\n"));
		assert_non_null(strstr(st.reply, "\r\nconnection: close\r\n"));
	}

	/* A head behind a full pipeline waits on the application: its time starts after. */
	httpflow_init(&f, decide, &calls, 8192);
	many[0] = '\0';
	for (int i = 0; i < HTTPFLOW_PIPELINE; i++)
		strcat(many, GET_OK);
	strcat(many, "GET /ok");
	f.now = 10;
	drive(&f, true, many, false, (char[4096]){ 0 }, 4096);
	assert_false(f.head_wait);
	f.now = 20;
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, "GET /ok", "M");
	assert_true(f.head_wait);
	assert_int_equal(f.head_since, 20);
	/* The end of the stream ends the wait. */
	expect(&f, true, "", "M");
	drive(&f, true, "GET /ok", true, (char[64]){ 0 }, 64);
	assert_false(f.head_wait);

	/* A denied request's 403 behind a response: the next head waits for it too. */
	httpflow_init(&f, decide, &calls, 8192);
	expect(&f, true, GET_OK GET_DENY "GET /o", "F29 D31 M");
	assert_false(f.head_wait);
	f.now = 30;
	expect(&f, false, RESP_OK, "F38 F2 M");
	expect(&f, true, "GET /o", "R403 M");
	assert_true(f.head_wait);
	assert_int_equal(f.head_since, 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allow_and_deny_on_one_connection),
		cmocka_unit_test(test_pipelined_deny_waits),
		cmocka_unit_test(test_denied_bodies_are_dropped),
		cmocka_unit_test(test_allowed_bodies_pass),
		cmocka_unit_test(test_malformed_closes),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_unsolicited_response),
		cmocka_unit_test(test_split_head_and_pipeline_limit),
		cmocka_unit_test(test_head_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
