/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/settings.c: the defaults pass their own checks, and the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "proxy/settings.h"

static void test_defaults(void **state)
{
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(c.nerrors, 0);
	assert_int_equal(config_check(&c), 0);
	assert_int_equal(s.port_outbound, 15001);
	assert_int_equal(s.port_inbound, 15006);
	assert_int_equal(s.port_tunnel, 15008);
	assert_int_equal(s.port_admin, 15021);
	assert_int_equal(s.mtls_mode, SETTINGS_MTLS_PERMISSIVE);
	assert_int_equal(s.identity_mode, SETTINGS_IDENTITY_CA);
	config_release(&c);
	config_free(&settings_schema, &s);
}

static void test_rules(void **state)
{
	static const char yaml[] = "identity:\n"
	                           "  mode: files\n"
	                           "  cert_file: /c\n"
	                           "ports:\n"
	                           "  tunnel: 15001\n";
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_load_string(&c, "p.yaml", yaml, strlen(yaml)), 0);
	assert_int_equal(config_check(&c), ERR_CONFIG_INVALID);
	assert_int_equal(c.nerrors, 3);
	assert_string_equal(c.errors[0],
	                    "p.yaml:5: ports.tunnel: is the same port as ports.outbound");
	assert_string_equal(c.errors[1],
	                    "identity.key_file: is required when identity.mode is files");
	assert_string_equal(c.errors[2],
	                    "identity.bundle_file: is required when identity.mode is files");
	config_release(&c);
	config_free(&settings_schema, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
