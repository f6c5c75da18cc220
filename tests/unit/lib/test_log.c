/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/log.c: JSON lines that any JSON parser reads, levels, errno, text form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "meshlet/log.h"
#include "meshlet/time.h"

/* Log into a memory file; captured() returns everything written since. */
static int log_fd = -1;

static int setup(void **state)
{
	(void)state;
	log_fd = memfd_create("log", 0);
	assert_true(log_fd >= 0);
	log_init("test", LOG_DEBUG, LOG_FORMAT_JSON, log_fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(log_fd);
	log_init("test", LOG_INFO, LOG_FORMAT_JSON, 2);
	return 0;
}

static char *captured(void)
{
	off_t len = lseek(log_fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);

	assert_non_null(buf);
	assert_int_equal(pread(log_fd, buf, (size_t)len, 0), len);
	assert_int_equal(ftruncate(log_fd, 0), 0);
	lseek(log_fd, 0, SEEK_SET);
	return buf;
}

/* Parses the one line written, checking that it is one line of valid JSON. */
static json_t *one_line(void)
{
	char *text = captured();
	size_t len = strlen(text);
	json_error_t error;
	json_t *obj;

	assert_true(len > 0);
	assert_int_equal(text[len - 1], '\n');
	assert_null(memchr(text, '\n', len - 1));
	obj = json_loads(text, 0, &error);
	if (obj == NULL)
		fail_msg("not JSON (%s): %s", error.text, text);
	free(text);
	return obj;
}

static void test_json_fields(void **state)
{
	json_t *o;
	struct timespec ts;
	const char *t;

	(void)state;
	log_info("listening", LOG_STR("addr", "0.0.0.0:8443"), LOG_INT("port", 8443),
	         LOG_BOOL("tls", true), LOG_INT("neg", -5));
	o = one_line();
	assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "listening");
	assert_string_equal(json_string_value(json_object_get(o, "addr")), "0.0.0.0:8443");
	assert_int_equal(json_integer_value(json_object_get(o, "port")), 8443);
	assert_int_equal(json_integer_value(json_object_get(o, "neg")), -5);
	assert_true(json_is_true(json_object_get(o, "tls")));
	t = json_string_value(json_object_get(o, "ts"));
	assert_non_null(t);
	assert_int_equal(time_parse_rfc3339(t, strlen(t), &ts), 0);
	assert_int_equal(json_object_size(o), 7);
	json_decref(o);

	log_info("no fields");
	o = one_line();
	assert_int_equal(json_object_size(o), 3);
	json_decref(o);
}

static void test_levels(void **state)
{
	char *text;

	(void)state;
	log_init("test", LOG_WARN, LOG_FORMAT_JSON, log_fd);
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_ERROR));
	log_debug("hidden");
	log_info("hidden");
	text = captured();
	assert_string_equal(text, "");
	free(text);
	log_warnx("shown");
	log_errorx("shown");
	text = captured();
	assert_non_null(strstr(text, "\"level\":\"warn\""));
	assert_non_null(strstr(text, "\"level\":\"error\""));
	free(text);
}

static void test_errno_kept_and_reported(void **state)
{
	json_t *o;

	(void)state;
	errno = ECONNREFUSED;
	log_warn("connect failed", LOG_STR("peer", "10.0.0.1:15008"));
	assert_int_equal(errno, ECONNREFUSED);
	o = one_line();
	assert_string_equal(json_string_value(json_object_get(o, "error")), strerror(ECONNREFUSED));
	json_decref(o);

	errno = EPIPE;
	log_warnx("no error field");
	assert_int_equal(errno, EPIPE);
	o = one_line();
	assert_null(json_object_get(o, "error"));
	json_decref(o);
}

static void test_hostile_strings(void **state)
{
	json_t *o;

	(void)state;
	/* Quotes, backslashes, control characters, a newline (log injection), bad UTF-8. */
	log_info("quote\" and \\", LOG_STR("path", "/a\"b\\c\n{\"level\":\"error\"}\x01\x7f"),
	         LOG_STR("bytes", "\xff\xfe ok \xc3\xa9 \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98\x80"),
	         LOG_STR("null", NULL));
	o = one_line();
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "quote\" and \\");
	assert_string_equal(json_string_value(json_object_get(o, "path")),
	                    "/a\"b\\c\n{\"level\":\"error\"}\x01\x7f");
	/* Invalid bytes become U+FFFD; valid multi-byte characters stay as they are. */
	assert_string_equal(json_string_value(json_object_get(o, "bytes")),
	                    "\xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd "
	                    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80");
	assert_null(json_object_get(o, "null"));
	json_decref(o);
}

static void test_truncation_keeps_json_valid(void **state)
{
	size_t n = 40000;
	char *big = malloc(n + 1);
	json_t *o;

	(void)state;
	assert_non_null(big);
	/* Commas and quotes inside the cut field must not confuse the truncation. */
	for (size_t i = 0; i < n; i++)
		big[i] = ",\"a"[i % 3];
	big[n] = '\0';
	log_info("big", LOG_STR("first", "kept"), LOG_STR("huge", big), LOG_STR("after", "x"));
	o = one_line();
	assert_string_equal(json_string_value(json_object_get(o, "first")), "kept");
	assert_null(json_object_get(o, "huge"));
	assert_true(json_is_true(json_object_get(o, "truncated")));
	json_decref(o);
	free(big);
}

static void test_text_format(void **state)
{
	char *text;

	(void)state;
	log_init("test", LOG_DEBUG, LOG_FORMAT_TEXT, log_fd);
	log_info("started", LOG_STR("addr", "[::]:8443"), LOG_STR("note", "two words"),
	         LOG_STR("empty", ""), LOG_INT("n", 3));
	text = captured();
	assert_non_null(strstr(text, "Z INFO  started addr=[::]:8443 note=\"two words\" "
	                             "empty=\"\" n=3\n"));
	assert_int_equal(text[4], '-');
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno_kept_and_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_keeps_json_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_format, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
