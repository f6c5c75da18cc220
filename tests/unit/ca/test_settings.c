/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for ca/settings.c: the defaults pass their own checks, and the cross-key rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "ca/settings.h"

static int check(const char *yaml, struct config *c, struct settings *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(config_init(c, &settings_schema, s), 0);
	assert_int_equal(c->nerrors, 0);
	if (config_load_string(c, "ca.yaml", yaml, strlen(yaml)) < 0)
		return -1;
	return config_check(c);
}

static void done(struct config *c, struct settings *s)
{
	config_release(c);
	config_free(&settings_schema, s);
}

static void test_defaults(void **state)
{
	struct settings s;
	struct config c;

	(void)state;
	assert_int_equal(check("auth: {jwks_file: /etc/meshlet/jwks.json}\n", &c, &s), 0);
	assert_string_equal(s.listen, "0.0.0.0:8443");
	assert_null(s.trust_domain);
	assert_int_equal(s.default_ttl, 3600 * 1000);
	assert_int_equal(s.max_ttl, 24 * 3600 * 1000);
	assert_int_equal(s.clock_skew, 60 * 1000);
	assert_string_equal(s.audience, "meshlet-ca");
	assert_int_equal(s.rate_per_second, 20);
	assert_int_equal(s.rate_burst, 200);
	done(&c, &s);
}

static void test_rules(void **state)
{
	struct settings s;
	struct config c;

	(void)state;
	assert_int_equal(check("tls: {cert_file: /c}\n"
	                       "cert: {default_ttl: 48h, max_ttl: 24h}\n"
	                       "auth:\n"
	                       "  jwks_file: /j\n"
	                       "  allowed_namespaces: [a, b]\n"
	                       "  denied_namespaces: [b]\n",
	                       &c, &s),
	                 ERR_CONFIG_INVALID);
	assert_int_equal(c.nerrors, 3);
	assert_string_equal(c.errors[0], "ca.yaml:1: tls.cert_file: tls.cert_file and "
	                                 "tls.key_file must be set together");
	assert_string_equal(c.errors[1],
	                    "ca.yaml:2: cert.default_ttl: is longer than cert.max_ttl");
	assert_string_equal(c.errors[2], "ca.yaml:6: auth.denied_namespaces: namespace \"b\" is "
	                                 "also in auth.allowed_namespaces");
	done(&c, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
