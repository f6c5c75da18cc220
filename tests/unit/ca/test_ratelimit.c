/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for ca/ratelimit.c: burst, refill, independent keys, and the table limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ca/ratelimit.h"

static void test_burst_then_refill(void **state)
{
	struct ratelimit *rl = ratelimit_new(2, 3, 100);
	int64_t retry = 0;

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < 3; i++)
		assert_true(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 1000, NULL));
	assert_false(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 1000, &retry));
	assert_int_equal(retry, 501);
	/* Another identity has its own bucket. */
	assert_true(ratelimit_allow(rl, "spiffe://td/ns/a/sa/y", 1000, NULL));
	/* Half a second later one token has come back, and only one. */
	assert_true(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 1500, NULL));
	assert_false(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 1500, NULL));
	/* Long idle: back to a full burst, not more. */
	for (int i = 0; i < 3; i++)
		assert_true(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 100000, NULL));
	assert_false(ratelimit_allow(rl, "spiffe://td/ns/a/sa/x", 100000, NULL));
	ratelimit_free(rl);
}

static void test_off(void **state)
{
	struct ratelimit *rl = ratelimit_new(0, 1, 10);

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_true(ratelimit_allow(rl, "k", 0, NULL));
	ratelimit_free(rl);
}

static void test_table_limit(void **state)
{
	struct ratelimit *rl = ratelimit_new(1, 2, 4);
	char key[32];

	(void)state;
	/* Four busy identities fill the table... */
	for (int k = 0; k < 4; k++) {
		snprintf(key, sizeof(key), "id-%d", k);
		assert_true(ratelimit_allow(rl, key, 0, NULL));
	}
	/* ...a fifth is let through rather than starved... */
	assert_true(ratelimit_allow(rl, "id-new", 0, NULL));
	assert_true(ratelimit_allow(rl, "id-new", 0, NULL));
	assert_true(ratelimit_allow(rl, "id-new", 0, NULL));
	/* ...and once the others are idle, it gets a bucket of its own. */
	assert_true(ratelimit_allow(rl, "id-new", 10000, NULL));
	assert_true(ratelimit_allow(rl, "id-new", 10000, NULL));
	assert_false(ratelimit_allow(rl, "id-new", 10000, NULL));
	/* id-0 was forgotten while idle, and comes back with a full bucket. */
	assert_true(ratelimit_allow(rl, "id-0", 10000, NULL));
	ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_table_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
