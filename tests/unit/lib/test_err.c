/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/err.c: every code has a distinct name and message, errno passes through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"

static void test_codes_are_negative_and_distinct(void **state)
{
	static const int codes[] = {
#define ERR_CODE_(name, text) name,
		ERR_TABLE(ERR_CODE_)
#undef ERR_CODE_
	};
	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_true(codes[i] <= -ERR_BASE);
		assert_string_not_equal(err_name(codes[i]), "errno");
		for (size_t j = i + 1; j < sizeof(codes) / sizeof(codes[0]); j++)
			assert_int_not_equal(codes[i], codes[j]);
	}
}

static void test_messages(void **state)
{
	(void)state;
	assert_string_equal(err_name(ERR_SPIFFE_SCHEME), "ERR_SPIFFE_SCHEME");
	assert_string_equal(err_str(ERR_KEY_PERMISSIONS),
	                    "private key file is readable by group or others");
	assert_string_equal(err_str(-ENOENT), strerror(ENOENT));
	assert_string_equal(err_name(-ENOENT), "errno");
	assert_string_equal(err_str(0), "success");
	assert_string_equal(err_str(-ERR_BASE - ERR_COUNT_), "unknown error");
	assert_string_equal(err_str(1), "unknown error");
}

static void test_err_set(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_int_equal(err_set(&e, ERR_PEM_NO_CERT, "%s: %d", "x.pem", 3), ERR_PEM_NO_CERT);
	assert_int_equal(e.code, ERR_PEM_NO_CERT);
	assert_string_equal(e.msg, "x.pem: 3");
	assert_int_equal(err_set(NULL, -EINVAL, "ignored"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_are_negative_and_distinct),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_err_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
