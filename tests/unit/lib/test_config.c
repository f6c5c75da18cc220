/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/config.c: types, bounds, defaults, file:line errors, all in one pass. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshlet/config.h"
#include "meshlet/err.h"

struct sample {
	bool flag;
	int64_t workers;
	char *name;
	int mode;
	int64_t ttl;
	int64_t body;
	struct config_strlist names;
	char *listen;
	char *td;
	char *tls_cert;
	char *tls_key;
	int64_t deep;
};

static const char *const sample_modes[] = { "fast", "safe", NULL };

#define S struct sample
static const struct config_key sample_keys[] = {
	CONFIG_BOOL("flag", S, flag, "false", "a boolean"),
	CONFIG_INT("workers", S, workers, 1, 64, "4", "an integer"),
	CONFIG_STRING("name", S, name, 8, "x", NULL, "a short string"),
	CONFIG_ENUM("mode", S, mode, sample_modes, "safe", "an enum"),
	CONFIG_DURATION("cert.ttl", S, ttl, CONFIG_SECONDS(10), CONFIG_HOURS(24), "1h",
	                "a duration"),
	CONFIG_SIZE("limits.body", S, body, 1, 4 * 1024 * 1024, "64KiB", "a size"),
	CONFIG_STRLIST("names", S, names, 63, "a,b", config_valid_dns_label, "a list"),
	CONFIG_STRING("listen", S, listen, 0, "0.0.0.0:80", config_valid_listen, "host:port"),
	CONFIG_STRING("trust_domain", S, td, 255, "example.org", config_valid_trust_domain, "td"),
	CONFIG_STRING("tls.cert_file", S, tls_cert, 0, NULL, NULL, "cert"),
	CONFIG_STRING("tls.key_file", S, tls_key, 0, NULL, NULL, "key"),
	CONFIG_INT("a.b.c", S, deep, 0, 10, "0", "three levels"),
	{ .name = NULL },
};
#undef S

static void sample_check(struct config *c)
{
	const struct sample *s = c->obj;

	if ((s->tls_cert == NULL) != (s->tls_key == NULL))
		config_error(c, s->tls_cert != NULL ? "tls.cert_file" : "tls.key_file",
		             "tls.cert_file and tls.key_file must be set together");
}

static const struct config_schema sample_schema = {
	.program = "sample",
	.keys = sample_keys,
	.check = sample_check,
};

struct fixture {
	struct config c;
	struct sample s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(config_init(&f->c, &sample_schema, &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_release(&f->c);
	config_free(&sample_schema, &f->s);
	free(f);
	return 0;
}

static int load(struct fixture *f, const char *yaml)
{
	return config_load_string(&f->c, "t.yaml", yaml, strlen(yaml));
}

/* Asserts that the recorded errors are exactly the given lines, in order. */
static void expect_errors(const struct config *c, const char *const *want, size_t n)
{
	for (size_t i = 0; i < c->nerrors && i < n; i++)
		assert_string_equal(c->errors[i], want[i]);
	if (c->nerrors != n) {
		for (size_t i = 0; i < c->nerrors; i++)
			print_message("got error: %s\n", c->errors[i]);
		assert_int_equal(c->nerrors, n);
	}
}
#define EXPECT(c, ...)                                                                             \
	do {                                                                                       \
		const char *const want_[] = { __VA_ARGS__ };                                       \
		expect_errors((c), want_, sizeof(want_) / sizeof(want_[0]));                       \
	} while (0)

static void test_defaults(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->c.nerrors, 0);
	assert_false(f->s.flag);
	assert_int_equal(f->s.workers, 4);
	assert_string_equal(f->s.name, "x");
	assert_int_equal(f->s.mode, 1);
	assert_int_equal(f->s.ttl, CONFIG_HOURS(1));
	assert_int_equal(f->s.body, 65536);
	assert_int_equal(f->s.names.n, 2);
	assert_string_equal(f->s.names.items[1], "b");
	assert_null(f->s.tls_cert);
	assert_false(config_is_set(&f->c, "workers"));
}

static void test_every_type_read(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "flag: true\n"
	                         "workers: 64\n"
	                         "name: 12345678\n"
	                         "mode: fast\n"
	                         "cert:\n"
	                         "  ttl: 1h30m\n"
	                         "limits: {body: 3MiB}\n"
	                         "names: [kube-system, default]\n"
	                         "listen: '[::1]:8443'\n"
	                         "trust_domain: prod.example.com\n"
	                         "a:\n"
	                         "  b:\n"
	                         "    c: 10\n"),
	                 0);
	assert_int_equal(f->c.nerrors, 0);
	assert_true(f->s.flag);
	assert_int_equal(f->s.workers, 64);
	assert_string_equal(f->s.name, "12345678");
	assert_int_equal(f->s.mode, 0);
	assert_int_equal(f->s.ttl, CONFIG_MINUTES(90));
	assert_int_equal(f->s.body, 3 * 1024 * 1024);
	assert_int_equal(f->s.names.n, 2);
	assert_string_equal(f->s.names.items[0], "kube-system");
	assert_string_equal(f->s.listen, "[::1]:8443");
	assert_int_equal(f->s.deep, 10);
	assert_true(config_is_set(&f->c, "workers"));
	assert_false(config_is_set(&f->c, "tls.cert_file"));
}

/* The acceptance case: an unknown key, a wrong type and a value out of range, together. */
static void test_three_errors_one_pass(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "# comment\n"
	                         "wokers: 4\n"
	                         "flag: yes\n"
	                         "cert:\n"
	                         "  ttl: 48h\n"),
	                 ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:2: unknown key \"wokers\" (did you mean \"workers\"?)",
	       "t.yaml:3: flag: expected true or false, got \"yes\"",
	       "t.yaml:5: cert.ttl: 48h is out of range (10s to 24h)");
	/* What was wrong kept its default. */
	assert_false(f->s.flag);
	assert_int_equal(f->s.ttl, CONFIG_HOURS(1));
}

static void test_wrong_types(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "workers: four\n"
	                         "flag: \"true\"\n"
	                         "name: [a]\n"
	                         "names: kube-system\n"
	                         "cert: 5\n"
	                         "workers2: 1\n"
	                         "mode: turbo\n"
	                         "limits:\n"
	                         "  body: lots\n"
	                         "workers: '4'\n"),
	                 ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: workers: expected an integer, got \"four\"",
	       "t.yaml:2: flag: expected true or false, got the string \"true\"",
	       "t.yaml:3: name: expected a string, got a list",
	       "t.yaml:4: names: expected a list of strings, got a scalar",
	       "t.yaml:5: cert: expected a mapping of settings, got a scalar",
	       "t.yaml:6: unknown key \"workers2\" (did you mean \"workers\"?)",
	       "t.yaml:7: mode: \"turbo\" is not one of: fast, safe",
	       "t.yaml:9: limits.body: expected a size in bytes (like 4096, 64KiB or 3MiB), got "
	       "\"lots\"",
	       "t.yaml:10: duplicate key \"workers\" (first set at line 1)");
}

static void test_bounds(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "workers: 0\n"
	                         "name: 123456789\n"
	                         "cert: {ttl: 9s}\n"
	                         "limits: {body: 5MiB}\n"
	                         "a: {b: {c: 99999999999999999999}}\n"),
	                 ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: workers: 0 is out of range (1 to 64)",
	       "t.yaml:2: name: \"123456789\" is longer than 8 bytes",
	       "t.yaml:3: cert.ttl: 9s is out of range (10s to 24h)",
	       "t.yaml:4: limits.body: 5MiB is out of range (1 to 4MiB)",
	       "t.yaml:5: a.b.c: 99999999999999999999 is out of range (0 to 10)");
	/* The edges themselves are allowed. */
	config_release(&f->c);
	config_init(&f->c, &sample_schema, &f->s);
	assert_int_equal(load(f, "workers: 1\nname: '12345678'\ncert: {ttl: 10s}\n"
	                         "limits: {body: 4MiB}\n"),
	                 0);
	assert_int_equal(load(f, "workers: 64\ncert: {ttl: 24h}\nlimits: {body: 1}\n"), 0);
}

static void test_nulls_and_lists(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "name:\n"
	                         "listen: ~\n"
	                         "names:\n"
	                         "  - default\n"
	                         "  -\n"
	                         "  - Not_A_Label\n"
	                         "  - {a: b}\n"),
	                 ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: name: has no value; expected a string",
	       "t.yaml:2: listen: has no value; expected a string",
	       "t.yaml:5: names: item 2 has no value",
	       "t.yaml:6: names: item 3 \"Not_A_Label\" is not a DNS label (lowercase letters, "
	       "digits and '-', starting and ending with a letter or digit)",
	       "t.yaml:7: names: item 4: expected a string, got a mapping");
	/* A list with errors is not applied at all. */
	assert_int_equal(f->s.names.n, 2);
	assert_string_equal(f->s.names.items[0], "a");
	/* An empty list and an explicitly empty string are values. */
	assert_int_equal(load(f, "names: []\nname: ''\n"), 0);
	assert_int_equal(f->s.names.n, 0);
	assert_string_equal(f->s.name, "");
}

static void test_validators(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "listen: 8443\n"
	                         "trust_domain: Example.org\n"),
	                 ERR_CONFIG_INVALID);
	assert_int_equal(f->c.nerrors, 2);
	assert_string_equal(f->c.errors[0], "t.yaml:1: listen: \"8443\" must be ADDRESS:PORT "
	                                    "(like 0.0.0.0:8443 or [::]:8443)");
	assert_non_null(strstr(f->c.errors[1], "t.yaml:2: trust_domain: \"Example.org\" is not a "
	                                       "valid trust domain"));
}

static void test_listen_validator(void **state)
{
	static const char *const good[] = { "0.0.0.0:8443",
		                            "127.0.0.1:1",
		                            "[::]:65535",
		                            "[::1]:80",
		                            "localhost:8080",
		                            ":8443",
		                            "meshlet-ca.meshlet-system.svc:8443" };
	static const char *const bad[] = { "8443",     "0.0.0.0", "0.0.0.0:65536",
		                           "::1:80",   "[::1]80", "host:",
		                           "host:80x", "host:-1", "[::1:80" };
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!config_valid_listen(good[i], why, sizeof(why)))
			fail_msg("%s refused: %s", good[i], why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_valid_listen(bad[i], why, sizeof(why)))
			fail_msg("%s accepted", bad[i]);
}

static void test_dns_label_validator(void **state)
{
	char why[256];
	char long_label[65];

	(void)state;
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_true(config_valid_dns_label("default", why, sizeof(why)));
	assert_true(config_valid_dns_label("kube-system", why, sizeof(why)));
	assert_true(config_valid_dns_label("a1", why, sizeof(why)));
	assert_true(config_valid_dns_label(long_label + 1, why, sizeof(why)));
	assert_false(config_valid_dns_label(long_label, why, sizeof(why)));
	assert_false(config_valid_dns_label("", why, sizeof(why)));
	assert_false(config_valid_dns_label("-a", why, sizeof(why)));
	assert_false(config_valid_dns_label("a-", why, sizeof(why)));
	assert_false(config_valid_dns_label("A", why, sizeof(why)));
	assert_false(config_valid_dns_label("a.b", why, sizeof(why)));
}

static void test_documents(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, ""), 0);
	assert_int_equal(load(f, "# only a comment\n"), 0);
	assert_int_equal(load(f, "---\n"), 0);
	assert_int_equal(load(f, "workers: 2\n---\nworkers: 3\n"), ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:3: only one YAML document is allowed");
	assert_int_equal(f->s.workers, 2);
}

static void test_top_level_not_a_mapping(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "- workers\n"), ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: expected a mapping of settings at the top level, got a list");
}

static void test_syntax_error(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "workers: 2\nname: [x\nflag: true\n"), ERR_CONFIG_INVALID);
	assert_int_equal(f->c.nerrors, 1);
	assert_non_null(strstr(f->c.errors[0], "t.yaml:"));
	assert_non_null(strstr(f->c.errors[0], "not valid YAML"));
	/* Tabs for indentation are a classic mistake. */
	assert_int_equal(load(f, "cert:\n\tttl: 1h\n"), ERR_CONFIG_INVALID);
	assert_non_null(strstr(f->c.errors[1], "t.yaml:2: not valid YAML"));
}

static void test_suggestions(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "cert_file: x\n"
	                         "tsl: {cert_file: x}\n"
	                         "cert: {tll: 1h}\n"
	                         "completely_unrelated: 1\n"
	                         "? [a]\n"
	                         ": 1\n"),
	                 ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: unknown key \"cert_file\" (did you mean \"tls.cert_file\"?)",
	       "t.yaml:2: unknown key \"tsl\" (did you mean \"tls\"?)",
	       "t.yaml:3: unknown key \"cert.tll\" (did you mean \"cert.ttl\"?)",
	       "t.yaml:4: unknown key \"completely_unrelated\"",
	       "t.yaml:5: a key must be a name, not a list");
}

static void test_unprintable_values_are_escaped(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "mode: \"a\\x01\\\"b\"\n"), ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: mode: \"a\\x01\\x22b\" is not one of: fast, safe");
}

static void test_nul_in_value(void **state)
{
	struct fixture *f = *state;
	static const char yaml[] = "name: \"a\\0b\"\n";

	assert_int_equal(load(f, yaml), ERR_CONFIG_INVALID);
	EXPECT(&f->c, "t.yaml:1: name: contains a NUL byte");
}

static void test_flags_override(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "workers: 2\nnames: [x]\n"), 0);
	assert_int_equal(config_set(&f->c, "workers", "8", "--workers"), 0);
	assert_int_equal(f->s.workers, 8);
	assert_int_equal(config_set(&f->c, "names", "kube-system,default", "--names"), 0);
	assert_int_equal(f->s.names.n, 2);
	assert_string_equal(f->s.names.items[1], "default");
	assert_int_equal(config_set(&f->c, "workers", "100", "--workers"), ERR_CONFIG_INVALID);
	assert_int_equal(config_set(&f->c, "names", "a,,b", "--names"), ERR_CONFIG_INVALID);
	assert_int_equal(config_set(&f->c, "names", "a,B", "--names"), ERR_CONFIG_INVALID);
	assert_int_equal(config_set(&f->c, "nope", "1", "--nope"), ERR_CONFIG_UNKNOWN_KEY);
	assert_int_equal(f->c.nerrors, 4);
	assert_string_equal(f->c.errors[0], "--workers: 100 is out of range (1 to 64)");
	assert_string_equal(f->c.errors[1], "--names: has an empty item");
	assert_int_equal(f->s.workers, 8);
	assert_int_equal(f->s.names.n, 2);
}

static void test_check_rules_point_at_lines(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f, "workers: 2\ntls:\n  cert_file: /a\n"), 0);
	assert_int_equal(config_check(&f->c), ERR_CONFIG_INVALID);
	EXPECT(&f->c,
	       "t.yaml:3: tls.cert_file: tls.cert_file and tls.key_file must be set together");
	assert_int_equal(config_set(&f->c, "tls.key_file", "/b", "--tls-key"), 0);
	assert_int_equal(config_check(&f->c), 0);
}

static void test_describe(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);

	(void)state;
	assert_non_null(mem);
	config_describe(&sample_schema, mem);
	fclose(mem);
	assert_non_null(strstr(text, "| `workers` | integer, 1 to 64 | `4` | an integer |\n"));
	assert_non_null(
	    strstr(text, "| `cert.ttl` | duration, 10s to 24h | `1h` | a duration |\n"));
	assert_non_null(strstr(text, "| `limits.body` | size, 1 to 4MiB | `64KiB` | a size |\n"));
	assert_non_null(strstr(text, "| `mode` | `fast` \\| `safe` | `safe` | an enum |\n"));
	assert_non_null(strstr(text, "| `tls.cert_file` | string | (none) | cert |\n"));
	free(text);
}

static void test_files(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/meshlet-config-XXXXXX";
	char path[64];
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	assert_int_equal(config_load_file(&f->c, path), -ENOENT);
	assert_int_equal(config_load_file(&f->c, dir), -EISDIR);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("workers: 3\nflag: 1\n", fp);
	fclose(fp);
	assert_int_equal(config_load_file(&f->c, path), ERR_CONFIG_INVALID);
	assert_int_equal(f->s.workers, 3);
	assert_int_equal(f->c.nerrors, 3);
	assert_non_null(strstr(f->c.errors[0], ": cannot read: No such file or directory"));
	assert_non_null(strstr(f->c.errors[1], ": cannot read: Is a directory"));
	assert_non_null(strstr(f->c.errors[2], "/c.yaml:2: flag: expected true or false"));
	/* A file over the limit is refused without being parsed. */
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < CONFIG_FILE_MAX / 16 + 1; i++)
		fputs("# padding line\n\n", fp);
	fclose(fp);
	assert_int_equal(config_load_file(&f->c, path), ERR_CONFIG_INVALID);
	assert_non_null(strstr(f->c.errors[3], "larger than"));
	/* Pipes and character devices are read like files. */
	assert_int_equal(config_load_file(&f->c, "/dev/null"), 0);
	unlink(path);
	rmdir(dir);
}

static const struct config_key bad_default_keys[] = {
	CONFIG_INT("workers", struct sample, workers, 1, 64, "0", "bad default"),
	{ .name = NULL },
};

static void test_bad_default_is_reported(void **state)
{
	static const struct config_schema schema = { .program = "x", .keys = bad_default_keys };
	struct sample s = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_init(&c, &schema, &s), 0);
	EXPECT(&c, "workers: built-in default \"0\" 0 is out of range (1 to 64)");
	config_release(&c);
	config_free(&schema, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_type_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_errors_one_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nulls_and_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validators, setup, teardown),
		cmocka_unit_test(test_listen_validator),
		cmocka_unit_test(test_dns_label_validator),
		cmocka_unit_test_setup_teardown(test_documents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_level_not_a_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suggestions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unprintable_values_are_escaped, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_rules_point_at_lines, setup, teardown),
		cmocka_unit_test(test_describe),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test(test_bad_default_is_reported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
