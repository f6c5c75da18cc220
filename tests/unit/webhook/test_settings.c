/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for webhook/settings.c: the defaults pass their own checks, and the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "webhook/settings.h"

static void test_defaults(void **state)
{
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(c.nerrors, 0);
	assert_int_equal(config_check(&c), 0);
	assert_string_equal(s.listen, "0.0.0.0:9443");
	assert_int_equal(s.policy, SETTINGS_POLICY_ENABLED);
	assert_int_equal(s.ignore_namespaces.n, 4);
	assert_string_equal(s.ignore_namespaces.items[0], "kube-system");
	assert_string_equal(s.ignore_namespaces.items[3], "meshlet-system");
	config_release(&c);
	config_free(&settings_schema, &s);
}

static void test_tls_pair_rule(void **state)
{
	static const char yaml[] = "tls:\n  key_file: /k\n";
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_load_string(&c, "w.yaml", yaml, strlen(yaml)), 0);
	assert_int_equal(config_check(&c), ERR_CONFIG_INVALID);
	assert_string_equal(c.errors[0], "w.yaml:2: tls.key_file: tls.cert_file and tls.key_file "
	                                 "must be set together");
	config_release(&c);
	config_free(&settings_schema, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_tls_pair_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
