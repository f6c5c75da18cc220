/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/jparse.c: what it accepts, what it refuses and why, against jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/jparse.h"

/* Reads text with both readers and checks they agree on the value. */
static void accepts(const char *text)
{
	struct jparse_error e;
	json_error_t je;
	json_t *ours = jparse_load(text, strlen(text), &e);
	json_t *ref = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (ours == NULL)
		fail_msg("%s: refused: %s", text, e.text);
	if (ref == NULL)
		fail_msg("%s: jansson refuses it: %s", text, je.text);
	if (!json_equal(ours, ref))
		fail_msg("%s: read differently from jansson", text);
	json_decref(ours);
	json_decref(ref);
}

/* Checks that len bytes of text are refused with a message containing why. */
static void refuses_n(const char *text, size_t len, const char *why)
{
	struct jparse_error e;
	json_t *v = jparse_load(text, len, &e);

	if (v != NULL)
		fail_msg("%s: accepted", text);
	if (strstr(e.text, why) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", text, e.text, why);
	assert_true(e.line >= 1 && e.column >= 1);
}

static void refuses(const char *text, const char *why)
{
	refuses_n(text, strlen(text), why);
}

static void test_accepts(void **state)
{
	(void)state;
	accepts("{}");
	accepts("[]");
	accepts(" \t\r\n{\"a\" : [1, -0, 2.5, -1e3, 1E+2, true, false, null, \"\"]} \n");
	accepts("{\"k\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u2028\\ud83d\\ude00\"}");
	accepts("{\"\\u0041\":1,\"A\\u0042\":2}"); /* escaped keys */
	accepts("[\"caf\xc3\xa9\",\"\xe2\x82\xac\",\"\xf0\x9f\x98\x80\"]");
	accepts("[9223372036854775807,-9223372036854775808,1.7976931348623157e308]");
	accepts("{\"a\":{\"b\":{\"c\":[[[]]]}},\"d\":1}");
}

static void test_member_order_kept(void **state)
{
	struct jparse_error e;
	json_t *v = jparse_load("{\"z\":1,\"a\":2,\"m\":3}", 19, &e);
	const char *want[] = { "z", "a", "m" };
	size_t i = 0;
	const char *key;
	json_t *value;

	(void)state;
	assert_non_null(v);
	json_object_foreach(v, key, value) {
		assert_string_equal(key, want[i]);
		assert_int_equal(json_integer_value(value), (json_int_t)i + 1);
		i++;
	}
	assert_int_equal(i, 3);
	json_decref(v);
}

static void test_refuses(void **state)
{
	(void)state;
	refuses("", "'[' or '{' expected");
	refuses("\"text\"", "'[' or '{' expected");
	refuses("42", "'[' or '{' expected");
	refuses("{\"a\":1", "expected");
	refuses("{\"a\":1}x", "end of file expected");
	refuses("{\"a\":1,}", "string or '}' expected");
	refuses("[1,]", "invalid token");
	refuses("{\"a\" 1}", "':' expected");
	refuses("{\"a\":1,\"a\":2}", "duplicate object key");
	refuses("{\"a\":1,\"\\u0061\":2}", "duplicate object key");
	refuses("[01]", "',' or ']' expected");
	refuses("[1.]", "no digit after '.'");
	refuses("[1e]", "no digit in the exponent");
	refuses("[-]", "invalid number");
	refuses("[+1]", "invalid token");
	refuses("[9223372036854775808]", "too big integer");
	refuses("[-9223372036854775809]", "too big negative integer");
	refuses("[1e999]", "real number overflow");
	refuses("[tru]", "invalid token");
	refuses("[\"a\\x\"]", "invalid escape");
	refuses("[\"\\u12\"]", "invalid \\u escape");
	refuses("[\"\\u0000\"]", "\\u0000 is not allowed");
	refuses("[\"\\ud83d\"]", "lone high surrogate");
	refuses("[\"\\ude00\"]", "lone low surrogate");
	refuses("[\"a\tb\"]", "control character");
	refuses("[\"\xc3\"]", "invalid UTF-8");
	refuses("[\"\xc0\xaf\"]", "invalid UTF-8");         /* overlong '/' */
	refuses("[\"\xed\xa0\x80\"]", "invalid UTF-8");     /* a surrogate in UTF-8 */
	refuses("[\"\xf4\x90\x80\x80\"]", "invalid UTF-8"); /* past U+10FFFF */
	refuses("[\"abc", "premature end of input");
	refuses_n("[1]\0", 4, "end of file expected"); /* jansson skips NUL bytes; we do not */
	/* Outside strings, a byte that is no UTF-8 is called that, as jansson calls it. */
	refuses("\xff\xfe", "invalid UTF-8");
	refuses("{\"a\":1,\xff}", "invalid UTF-8");
	refuses("[1,2\xc3]", "invalid UTF-8");
	refuses("[tr\xff]", "invalid token");         /* the token began before it */
	refuses("{\"a\":\xc3\xa9}", "invalid token"); /* UTF-8, but no token */
}

static void test_error_position(void **state)
{
	struct jparse_error e;

	(void)state;
	assert_null(jparse_load("{\n  \"a\": 1,\n  \"b\": x\n}", 22, &e));
	assert_string_equal(e.text, "invalid token");
	assert_int_equal(e.line, 3);
	assert_int_equal(e.column, 8);
	assert_int_equal(e.offset, 19);
	assert_null(jparse_load("{\"a\":1,\"a\":2}", 13, &e));
	assert_string_equal(e.text, "duplicate object key");
	assert_int_equal(e.offset, 12);
	assert_null(jparse_load("[\"abc", 5, &e));
	assert_int_equal(e.offset, 5);
}

static void test_utf8_len(void **state)
{
	(void)state;
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xc3\xa9", 1), 0); /* cut */
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\x80", 1), 0);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xc1\xbf", 2), 0); /* overlong */
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xe0\x9f\xbf", 3), 0);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
	assert_int_equal(jparse_utf8_len((const unsigned char *)"\xc3\x28", 2), 0);
}

static void test_depth(void **state)
{
	size_t n = JPARSE_MAX_DEPTH + 1;
	char *deep = malloc(2 * n + 1);
	struct jparse_error e;
	json_t *v;

	(void)state;
	assert_non_null(deep);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	refuses(deep, "maximum parsing depth reached");
	/* One level less is fine. */
	v = jparse_load(deep + 1, 2 * n - 2, &e);
	assert_non_null(v);
	json_decref(v);
	free(deep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),  cmocka_unit_test(test_member_order_kept),
		cmocka_unit_test(test_refuses),  cmocka_unit_test(test_error_position),
		cmocka_unit_test(test_utf8_len), cmocka_unit_test(test_depth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
