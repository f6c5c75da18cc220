/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for webhook/settings.c: defaults, the value parsers, file:line errors and the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "meshlet/log.h"
#include "webhook/settings.h"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

static void test_defaults(void **state)
{
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(c.nerrors, 0);
	assert_int_equal(config_check(&c), 0);
	assert_int_equal(c.nerrors, 0);
	assert_string_equal(s.listen, "0.0.0.0:9443");
	assert_int_equal(s.policy, SETTINGS_POLICY_ENABLED);
	assert_int_equal(s.ignore_namespaces.n, 4);
	assert_string_equal(s.ignore_namespaces.items[0], "kube-system");
	assert_string_equal(s.ignore_namespaces.items[3], "meshlet-system");
	assert_true(s.native_sidecar);
	assert_true(s.rewrite_probes);
	assert_int_equal(s.never_selectors.n, 0);
	assert_int_equal(s.always_selectors.n, 0);
	assert_string_equal(s.trust_bundle_file, "/etc/meshlet/ca/root-cert.pem");
	assert_string_equal(s.token_audience, "meshlet-ca");
	assert_int_equal(s.service_ranges.n, 1);
	assert_string_equal(s.service_ranges.items[0], "10.96.0.0/12");
	assert_string_equal(s.proxy_image, "meshlet/meshlet:" MESHLET_VERSION);
	assert_int_equal(s.proxy_image_pull_policy, SETTINGS_PULL_IF_NOT_PRESENT);
	assert_string_equal(s.proxy_cpu_request, "100m");
	assert_string_equal(s.proxy_memory_request, "32Mi");
	assert_null(s.proxy_cpu_limit);
	assert_string_equal(s.proxy_memory_limit, "128Mi");
	assert_int_equal(s.proxy_log_level, LOG_INFO);
	assert_int_equal(s.include_inbound_ports.n, 1);
	assert_string_equal(s.include_inbound_ports.items[0], "*");
	assert_int_equal(s.exclude_inbound_ports.n, 0);
	assert_int_equal(s.exclude_outbound_ports.n, 0);
	assert_int_equal(s.include_outbound_ip_ranges.n, 1);
	assert_string_equal(s.include_outbound_ip_ranges.items[0], "*");
	assert_int_equal(s.exclude_outbound_ip_ranges.n, 0);
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

/* A file that sets every new key to a good value loads cleanly. */
static void test_good_file(void **state)
{
	static const char yaml[] = "inject:\n"
	                           "  native_sidecar: false\n"
	                           "  rewrite_probes: false\n"
	                           "  never_selectors: [\"app=db\", example.com/batch]\n"
	                           "  always_selectors: [\"tier=\"]\n"
	                           "mesh:\n"
	                           "  token_audience: other-aud\n"
	                           "  trust_bundle_file: /roots.pem\n"
	                           "  service_ranges: [10.0.0.0/16, \"fd00:10:96::/112\"]\n"
	                           "proxy:\n"
	                           "  image: registry.example.com:5000/meshlet@sha256:abc\n"
	                           "  image_pull_policy: Always\n"
	                           "  cpu_request: \"0.25\"\n"
	                           "  memory_request: 1e8\n"
	                           "  cpu_limit: \"2\"\n"
	                           "  memory_limit: \"\"\n"
	                           "  log_level: debug\n"
	                           "capture:\n"
	                           "  include_inbound_ports: [80, 443]\n"
	                           "  exclude_inbound_ports: [9090]\n"
	                           "  exclude_outbound_ports: [5432, 6379]\n"
	                           "  include_outbound_ip_ranges: [10.0.0.0/8, \"fd00::/8\"]\n"
	                           "  exclude_outbound_ip_ranges: [169.254.169.254/32]\n";
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_load_string(&c, "w.yaml", yaml, strlen(yaml)), 0);
	assert_int_equal(config_check(&c), 0);
	for (size_t i = 0; i < c.nerrors; i++)
		print_message("%s\n", c.errors[i]);
	assert_int_equal(c.nerrors, 0);
	assert_false(s.native_sidecar);
	assert_false(s.rewrite_probes);
	assert_int_equal(s.never_selectors.n, 2);
	assert_string_equal(s.never_selectors.items[1], "example.com/batch");
	assert_int_equal(s.proxy_image_pull_policy, SETTINGS_PULL_ALWAYS);
	assert_string_equal(s.proxy_memory_limit, "");
	assert_int_equal(s.proxy_log_level, LOG_DEBUG);
	assert_int_equal(s.include_inbound_ports.n, 2);
	assert_string_equal(s.include_outbound_ip_ranges.items[1], "fd00::/8");
	assert_int_equal(s.service_ranges.n, 2);
	assert_string_equal(s.service_ranges.items[1], "fd00:10:96::/112");
	config_release(&c);
	config_free(&settings_schema, &s);
}

/* Every bad value is reported with its file:line, all in one pass. */
static void test_bad_values_file_line(void **state)
{
	static const char yaml[] = "proxy:\n"
	                           "  cpu_request: 10mi\n"
	                           "  memory_limit: \"1 Gi\"\n"
	                           "  image: \"bad image\"\n"
	                           "capture:\n"
	                           "  exclude_outbound_ip_ranges:\n"
	                           "    - 10.0.0.0/8\n"
	                           "    - 10.0.0.0/33\n"
	                           "  exclude_inbound_ports: [80, 0]\n"
	                           "inject:\n"
	                           "  never_selectors: [\"app!=web\"]\n";
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_load_string(&c, "w.yaml", yaml, strlen(yaml)), ERR_CONFIG_INVALID);
	assert_int_equal(c.nerrors, 6);
	assert_string_equal(c.errors[0],
	                    "w.yaml:2: proxy.cpu_request: \"10mi\" is not a resource quantity (a "
	                    "number and an optional suffix, like 100m, 0.5, 128Mi, 1.5G or 1e3)");
	assert_string_equal(c.errors[1],
	                    "w.yaml:3: proxy.memory_limit: \"1 Gi\" is not a resource quantity (a "
	                    "number and an optional suffix, like 100m, 0.5, 128Mi, 1.5G or 1e3)");
	assert_contains(c.errors[2], "w.yaml:4: proxy.image: \"bad image\" is not an image "
	                             "reference: byte 4 (0x20)");
	assert_contains(c.errors[3], "w.yaml:8: capture.exclude_outbound_ip_ranges: item 2 "
	                             "\"10.0.0.0/33\" is not a CIDR");
	assert_contains(c.errors[4], "w.yaml:9: capture.exclude_inbound_ports: item 2 \"0\" is not "
	                             "a port number (1 to 65535");
	assert_contains(c.errors[5],
	                "w.yaml:11: inject.never_selectors: item 1 \"app!=web\" is not "
	                "a label selector");
	config_release(&c);
	config_free(&settings_schema, &s);
}

static void test_cross_key_rules(void **state)
{
	static const char yaml[] = "proxy:\n"
	                           "  cpu_request: \"2\"\n"
	                           "  cpu_limit: 1500m\n"
	                           "  memory_limit: 16Mi\n"
	                           "capture:\n"
	                           "  include_inbound_ports: [\"*\", 80]\n"
	                           "  include_outbound_ip_ranges: [\"*\", 10.0.0.0/8]\n";
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_load_string(&c, "w.yaml", yaml, strlen(yaml)), 0);
	assert_int_equal(config_check(&c), ERR_CONFIG_INVALID);
	assert_int_equal(c.nerrors, 4);
	assert_string_equal(c.errors[0], "w.yaml:6: capture.include_inbound_ports: has \"*\", "
	                                 "which must be the only item");
	assert_string_equal(c.errors[1], "w.yaml:7: capture.include_outbound_ip_ranges: has \"*\", "
	                                 "which must be the only item");
	assert_string_equal(c.errors[2], "w.yaml:2: proxy.cpu_request: the cpu request \"2\" is "
	                                 "more than the cpu limit \"1500m\"");
	assert_string_equal(c.errors[3], "w.yaml:4: proxy.memory_limit: the memory request "
	                                 "\"32Mi\" is more than the memory limit \"16Mi\"");
	config_release(&c);
	config_free(&settings_schema, &s);
}

/*
 * mesh.service_ranges: CIDRs, IPv4 and IPv6, or none at all; never "*" (a proxy cannot
 * treat every destination as a Service). Bad items are named with file:line.
 */
static void test_service_ranges(void **state)
{
	static const struct {
		const char *yaml;
		const char *error; /* the first error, or NULL when the file is good */
		size_t n;          /* items when good */
	} rows[] = {
		{ "mesh:\n  service_ranges: []\n", NULL, 0 },
		{ "mesh:\n  service_ranges: [10.96.0.0/12]\n", NULL, 1 },
		{ "mesh:\n  service_ranges: [10.96.0.0/12, \"fd00:10:96::/112\"]\n", NULL, 2 },
		{ "mesh:\n  service_ranges: [\"*\"]\n",
		  "w.yaml:2: mesh.service_ranges: item 1 \"*\" may not hold \"*\" here: list the "
		  "items",
		  0 },
		{ "mesh:\n  service_ranges:\n    - 10.96.0.0/12\n    - 10.96.0.0/33\n",
		  "w.yaml:4: mesh.service_ranges: item 2 \"10.96.0.0/33\" is not a CIDR (an "
		  "IPv4 or IPv6 address, '/', a prefix length: like 10.0.0.0/8 or fd00::/8)",
		  0 },
		{ "mesh:\n  service_ranges: [10.96.0.0]\n",
		  "w.yaml:2: mesh.service_ranges: item 1 \"10.96.0.0\" is not a CIDR: it needs a "
		  "prefix length (like 10.0.0.0/8, 10.1.2.3/32 or fd00::/8)",
		  0 },
		{ "mesh:\n  service_ranges: [kubernetes.default.svc/32]\n",
		  "w.yaml:2: mesh.service_ranges: item 1 \"kubernetes.default.svc/32\" is not "
		  "a CIDR",
		  0 },
		{ "mesh:\n  service_ranges: 10.96.0.0/12\n",
		  "w.yaml:2: mesh.service_ranges: expected a list of strings, got a scalar", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct settings s = { 0 };
		struct config c;
		int rc;

		assert_int_equal(config_init(&c, &settings_schema, &s), 0);
		rc = config_load_string(&c, "w.yaml", rows[i].yaml, strlen(rows[i].yaml));
		if (rc == 0)
			rc = config_check(&c);
		if (rows[i].error == NULL) {
			if (rc != 0)
				fail_msg("row %zu refused: %s", i, c.errors[0]);
			assert_int_equal(s.service_ranges.n, rows[i].n);
		} else {
			if (rc == 0)
				fail_msg("row %zu accepted", i);
			assert_int_equal(c.nerrors, 1);
			assert_contains(c.errors[0], rows[i].error);
		}
		config_release(&c);
		config_free(&settings_schema, &s);
	}
}

/* Flags write lists comma-separated and go through the same validators. */
static void test_flags(void **state)
{
	struct settings s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_int_equal(config_set(&c, "capture.exclude_outbound_ports", "9090,9091", "--x"), 0);
	assert_int_equal(s.exclude_outbound_ports.n, 2);
	assert_int_equal(config_set(&c, "capture.exclude_outbound_ports", "9090,http", "--x"),
	                 ERR_CONFIG_INVALID);
	assert_int_equal(config_set(&c, "proxy.cpu_limit", "-1", "--cpu-limit"),
	                 ERR_CONFIG_INVALID);
	assert_string_equal(c.errors[1], "--cpu-limit: \"-1\" is negative");
	assert_int_equal(config_set(&c, "mesh.service_ranges", "10.0.0.0/16,fd00::/108", "--x"), 0);
	assert_int_equal(s.service_ranges.n, 2);
	assert_string_equal(s.service_ranges.items[1], "fd00::/108");
	assert_int_equal(config_set(&c, "mesh.service_ranges", "", "--x"), 0);
	assert_int_equal(s.service_ranges.n, 0);
	assert_int_equal(config_set(&c, "mesh.service_ranges", "*", "--x"), ERR_CONFIG_INVALID);
	assert_int_equal(config_set(&c, "mesh.service_ranges", "10.0.0.0/16,10.0.0.0/99", "--x"),
	                 ERR_CONFIG_INVALID);
	assert_contains(c.errors[3], "\"10.0.0.0/99\" is not a CIDR");
	config_release(&c);
	config_free(&settings_schema, &s);
}

/* ---- the value parsers ---- */

static void test_quantity_table(void **state)
{
	static const struct {
		const char *text;
		long double value;
	} good[] = {
		{ "100m", 0.1L },
		{ "0.5", 0.5L },
		{ "1Gi", 1073741824.0L },
		{ "128Mi", 134217728.0L },
		{ "1e3", 1000.0L },
		{ "1.5G", 1.5e9L },
		{ "0", 0.0L },
		{ "+1", 1.0L },
		{ ".5", 0.5L },
		{ "5.", 5.0L },
		{ "1E", 1e18L },
		{ "2Ei", 2305843009213693952.0L },
		{ "1e-3", 0.001L },
		{ "1E+2", 100.0L },
		{ "500u", 0.0005L },
		{ "10n", 1e-8L },
		{ "1k", 1000.0L },
		{ "1.5Ki", 1536.0L },
	};
	static const char *const bad[] = {
		"-1",
		"1.2.3",
		"10mi",
		"Mi",
		"",
		"1 Gi",
		" 1",
		"1 ",
		"1K",
		"1e",
		"1e3Mi",
		".",
		"+",
		"1ee3",
		"0x10",
		"1e1000",
		"1Gb",
		"inf",
		"NaN",
		"1,5",
		"--1",
		"1i",
		"1234567890123456789012345678901234567890123456789012345678901234567890",
	};
	struct settings_quantity q;
	struct err e = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (settings_quantity_parse(good[i].text, &q, &e) != 0)
			fail_msg("\"%s\" refused: %s", good[i].text, e.msg);
		assert_string_equal(q.text, good[i].text);
		if (q.value - good[i].value > good[i].value * 1e-12L ||
		    good[i].value - q.value > good[i].value * 1e-12L)
			fail_msg("\"%s\" is %Lg, want %Lg", good[i].text, q.value, good[i].value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (settings_quantity_parse(bad[i], &q, &e) != ERR_SETTINGS_QUANTITY)
			fail_msg("\"%s\" accepted as %Lg", bad[i], q.value);
	}
	assert_int_equal(settings_quantity_parse("-1", &q, &e), ERR_SETTINGS_QUANTITY);
	assert_string_equal(e.msg, "is negative");
}

static void test_ports_table(void **state)
{
	static const struct {
		const char *text;
		bool star_ok;
		const char *want; /* formatted, or NULL when refused */
	} rows[] = {
		{ "80", false, "80" },
		{ "80,443", false, "80,443" },
		{ " 80 , 443 ", false, "80,443" },
		{ "1,65535", false, "1,65535" },
		{ "80,80,81", false, "80,81" },
		{ "", false, "" },
		{ "   ", false, "" },
		{ "*", true, "*" },
		{ " * ", true, "*" },
		{ "*", false, NULL },
		{ "*,80", true, NULL },
		{ "0", false, NULL },
		{ "65536", false, NULL },
		{ "080", false, NULL },
		{ "80,", false, NULL },
		{ ",80", false, NULL },
		{ "80;443", false, NULL },
		{ "http", false, NULL },
		{ "-1", false, NULL },
		{ "8 0", false, NULL },
		{ "100000", false, NULL },
	};
	struct settings_ports p;
	struct err e = { 0 };
	char buf[2048];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc = settings_ports_parse(rows[i].text, rows[i].star_ok, &p, &e);

		if (rows[i].want == NULL) {
			if (rc != ERR_SETTINGS_PORTS)
				fail_msg("\"%s\" accepted", rows[i].text);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\" refused: %s", rows[i].text, e.msg);
		settings_ports_format(&p, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].want);
	}
	assert_int_equal(settings_ports_parse("80,http", false, &p, &e), ERR_SETTINGS_PORTS);
	assert_string_equal(e.msg, "has \"http\", which is not a port number (1 to 65535, decimal, "
	                           "no leading zero)");
}

static void test_ports_limit(void **state)
{
	struct settings_ports p;
	struct err e = { 0 };
	char text[4096] = "";
	size_t pos = 0;

	(void)state;
	for (int i = 1; i <= SETTINGS_PORTS_MAX; i++)
		pos +=
		    (size_t)snprintf(text + pos, sizeof(text) - pos, "%s%d", i > 1 ? "," : "", i);
	assert_int_equal(settings_ports_parse(text, false, &p, &e), 0);
	assert_int_equal(p.n, SETTINGS_PORTS_MAX);
	snprintf(text + pos, sizeof(text) - pos, ",9999");
	assert_int_equal(settings_ports_parse(text, false, &p, &e), ERR_SETTINGS_PORTS);
	assert_contains(e.msg, "more than 256 ports");
}

static void test_cidrs_table(void **state)
{
	static const struct {
		const char *text;
		bool star_ok;
		const char *want;
	} rows[] = {
		{ "10.0.0.0/8", false, "10.0.0.0/8" },
		{ "0.0.0.0/0", false, "0.0.0.0/0" },
		{ "192.168.1.1/32", false, "192.168.1.1/32" },
		{ "fd00::/8", false, "fd00::/8" },
		{ "FD00::/8", false, "fd00::/8" },
		{ "::/0", false, "::/0" },
		{ "2001:db8::1/128", false, "2001:db8::1/128" },
		{ "::ffff:10.0.0.0/104", false, "::ffff:10.0.0.0/104" },
		{ "10.0.0.0/8, fd00::/8", false, "10.0.0.0/8,fd00::/8" },
		{ "", false, "" },
		{ "*", true, "*" },
		{ "*", false, NULL },
		{ "*,10.0.0.0/8", true, NULL },
		{ "10.0.0.0", false, NULL },
		{ "10.0.0.0/33", false, NULL },
		{ "fd00::/129", false, NULL },
		{ "10.0.0.0/08", false, NULL },
		{ "010.0.0.0/8", false, NULL },
		{ "10.0.0/8", false, NULL },
		{ "fe80::1%eth0/64", false, NULL },
		{ "10.0.0.0/-1", false, NULL },
		{ "10.0.0.0/", false, NULL },
		{ "/8", false, NULL },
		{ "10.0.0.0/8,", false, NULL },
		{ "a.b.c.d/8", false, NULL },
		{ "10.0.0.0/8/8", false, NULL },
		{ "[::1]/128", false, NULL },
	};
	struct settings_cidrs c;
	struct err e = { 0 };
	char buf[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc = settings_cidrs_parse(rows[i].text, rows[i].star_ok, &c, &e);

		if (rows[i].want == NULL) {
			if (rc != ERR_SETTINGS_CIDRS)
				fail_msg("\"%s\" accepted", rows[i].text);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\" refused: %s", rows[i].text, e.msg);
		settings_cidrs_format(&c, buf, sizeof(buf));
		assert_string_equal(buf, rows[i].want);
	}
	assert_int_equal(settings_cidrs_parse("10.0.0.0", false, &c, &e), ERR_SETTINGS_CIDRS);
	assert_contains(e.msg, "needs a prefix length");
}

static void test_selector_table(void **state)
{
	static const struct {
		const char *text;
		const char *key, *value; /* value NULL: "key" alone */
	} good[] = {
		{ "app", "app", NULL },
		{ "app=web", "app", "web" },
		{ "example.com/tier=backend", "example.com/tier", "backend" },
		{ "app=", "app", "" },
		{ "a.b_c-d=X.y", "a.b_c-d", "X.y" },
	};
	static const char *const bad[] = {
		"",          "=web",
		"app!=web",  "-app",
		"app=-web",  "Example.com/tier",
		"a/b/c",     "/app",
		"app=web=x", "app = web",
		"a_.com/x",  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct settings_selector s;
	struct err e = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (settings_selector_parse(good[i].text, &s, &e) != 0)
			fail_msg("\"%s\" refused: %s", good[i].text, e.msg);
		assert_string_equal(s.key, good[i].key);
		assert_int_equal(s.has_value, good[i].value != NULL);
		assert_string_equal(s.value, good[i].value != NULL ? good[i].value : "");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (settings_selector_parse(bad[i], &s, &e) != ERR_SETTINGS_SELECTOR)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_image_table(void **state)
{
	static const char *const good[] = {
		"meshlet/meshlet:0.1.0",
		"registry.example.com:5000/a/b@sha256:0123abcd",
		"busybox",
	};
	static const char *const bad[] = { "", " x", "x y", "-x", "x\ny", "x\ty", "/x", "x$(id)" };
	char longer[SETTINGS_IMAGE_MAX + 2];
	struct err e = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (settings_image_check(good[i], &e) != 0)
			fail_msg("\"%s\" refused: %s", good[i], e.msg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (settings_image_check(bad[i], &e) != ERR_SETTINGS_IMAGE)
			fail_msg("\"%s\" accepted", bad[i]);
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(settings_image_check(longer, &e), ERR_SETTINGS_IMAGE);
	longer[SETTINGS_IMAGE_MAX] = '\0';
	assert_int_equal(settings_image_check(longer, &e), 0);
}

static void test_quote(void **state)
{
	char buf[300];
	char longer[100];

	(void)state;
	assert_string_equal(settings_quote(buf, sizeof(buf), "a\"b\\c\n\xff"),
	                    "a\\x22b\\x5cc\\x0a\\xff");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(strlen(settings_quote(buf, sizeof(buf), longer)), 64 + 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),        cmocka_unit_test(test_tls_pair_rule),
		cmocka_unit_test(test_good_file),       cmocka_unit_test(test_bad_values_file_line),
		cmocka_unit_test(test_cross_key_rules), cmocka_unit_test(test_service_ranges),
		cmocka_unit_test(test_flags),           cmocka_unit_test(test_quantity_table),
		cmocka_unit_test(test_ports_table),     cmocka_unit_test(test_ports_limit),
		cmocka_unit_test(test_cidrs_table),     cmocka_unit_test(test_selector_table),
		cmocka_unit_test(test_image_table),     cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
