/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/jwrite.c and webhook/jarena.c: the text they write, the memory they use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/base64.h"
#include "webhook/jarena.h"
#include "meshlet/jwrite.h"

/* The text w holds, which the caller frees. */
static char *take(struct jwrite *w)
{
	char *text = jwrite_take(w, NULL);

	assert_non_null(text);
	return text;
}

static void string_is(const char *in, size_t n, const char *want)
{
	struct jwrite w;
	char *text;

	jwrite_init(&w, 1);
	jwrite_string(&w, in, n);
	text = take(&w);
	assert_string_equal(text, want);
	free(text);
}

static void test_strings(void **state)
{
	(void)state;
	string_is("plain", 5, "\"plain\"");
	string_is("", 0, "\"\"");
	string_is("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
	string_is("\b\f\n\r\t\x01\x1f\x7f", 8, "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
	string_is("a\0b", 3, "\"a\\u0000b\"");
	string_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
	          "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* What is not UTF-8 becomes U+FFFD, byte by byte. */
	string_is("a\xff"
	          "b",
	          3,
	          "\"a\xef\xbf\xbd"
	          "b\"");
	string_is("\xc3", 1, "\"\xef\xbf\xbd\"");
	string_is("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

static void test_numbers(void **state)
{
	struct jwrite w;
	char *text;

	(void)state;
	jwrite_init(&w, 0);
	jwrite_int(&w, 0);
	jwrite_lit(&w, ",");
	jwrite_int(&w, -42);
	jwrite_lit(&w, ",");
	jwrite_int(&w, INT64_MIN);
	jwrite_lit(&w, ",");
	jwrite_int(&w, INT64_MAX);
	text = take(&w);
	assert_string_equal(text, "0,-42,-9223372036854775808,9223372036854775807");
	free(text);
}

/* jwrite_value writes what json_dumps(JSON_COMPACT) writes. */
static void test_values_as_jansson(void **state)
{
	static const char *const docs[] = {
		"{}",
		"[]",
		"{\"z\":1,\"a\":[true,false,null,-3,2.5,1e+100,0.1],\"m\":{\"k\":\"v\\n\\u00e9\"}}",
		"[{\"op\":\"add\",\"path\":\"/a~1b\",\"value\":{\"x\":[1,2,{\"y\":\"\"}]}}]",
		"[100.0,-0.0,123456789.125,1e-5,2.5e-300,-7E+21,1.5e300]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *v = json_loads(docs[i], 0, NULL);
		char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		struct jwrite w;
		char *text;

		assert_non_null(v);
		jwrite_init(&w, 0);
		jwrite_value(&w, v);
		text = take(&w);
		assert_string_equal(text, want);
		free(text);
		free(want);
		json_decref(v);
	}
}

static void test_base64(void **state)
{
	static const char *const vectors[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	unsigned char bytes[300];

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		size_t n = strlen(vectors[i]);
		char *want = base64_encode_alloc(vectors[i], n, BASE64_STD);
		char *quoted = malloc(strlen(want) + 3);
		struct jwrite w;
		char *text;

		assert_non_null(quoted);
		sprintf(quoted, "\"%s\"", want);
		jwrite_init(&w, 0);
		jwrite_base64(&w, vectors[i], n);
		text = take(&w);
		assert_string_equal(text, quoted);
		free(text);
		free(quoted);
		free(want);
	}
	/* Every byte value, against lib/base64.c. */
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 7);
	{
		char *want = base64_encode_alloc(bytes, sizeof(bytes), BASE64_STD);
		struct jwrite w;
		char *text;

		jwrite_init(&w, 0);
		jwrite_base64(&w, bytes, sizeof(bytes));
		text = take(&w);
		assert_int_equal(strlen(text), strlen(want) + 2);
		assert_memory_equal(text + 1, want, strlen(want));
		free(text);
		free(want);
	}
}

static void test_growth(void **state)
{
	struct jwrite w;
	size_t len;
	char *text;

	(void)state;
	jwrite_init(&w, 1);
	for (int i = 0; i < 10000; i++)
		jwrite_lit(&w, "0123456789");
	text = jwrite_take(&w, &len);
	assert_non_null(text);
	assert_int_equal(len, 100000);
	assert_int_equal(strlen(text), 100000);
	free(text);
	/* A taken writer is empty, and may be written again. */
	jwrite_lit(&w, "x");
	text = take(&w);
	assert_string_equal(text, "x");
	free(text);
}

/*
 * jansson values made in the arena, with some made before it and released inside: no
 * crash, and (under the sanitizers) no leak and no free() of arena memory.
 */
static void test_arena(void **state)
{
	json_t *before = json_pack("{s:s}", "made", "before");

	(void)state;
	jarena_install();
	for (int round = 0; round < 3; round++) {
		json_t *a, *big;

		jarena_begin();
		a = json_pack("{s:[i,i,s], s:{s:b}}", "list", 1, 2, "three", "obj", "t", 1);
		assert_non_null(a);
		/* Past the first block: the arena grows, and gives the growth back at the end. */
		big = json_array();
		for (int i = 0; i < 20000; i++)
			assert_int_equal(json_array_append_new(big, json_integer(i)), 0);
		assert_int_equal(json_integer_value(json_array_get(big, 19999)), 19999);
		json_decref(big);
		json_decref(a);
		if (round == 1) {
			json_decref(before);
			before = NULL;
		}
		jarena_end();
	}
	/* Outside the arena, jansson uses malloc again. */
	before = json_string("after");
	assert_string_equal(json_string_value(before), "after");
	json_decref(before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_values_as_jansson),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
