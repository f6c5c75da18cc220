/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/yamljson.c: YAML to JSON as Kubernetes reads it, JSON back to YAML. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "meshlet/yamljson.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

/* Parses yaml and returns its documents as "LINE JSON" lines (caller frees). */
static char *parse_lines(const char *yaml, size_t len)
{
	struct yamljson_doc *docs = NULL;
	size_t n = 0;
	struct err e = { 0 };
	char *all = strdup("");
	int rc = yamljson_parse("t.yaml", yaml, len, &docs, &n, &e);

	if (rc != 0)
		print_message("unexpected error %s: %s\n", err_name(rc), e.msg);
	assert_int_equal(rc, 0);
	for (size_t i = 0; i < n; i++) {
		char *json = json_dumps(docs[i].value, DUMP_FLAGS);
		char *joined = NULL;

		assert_non_null(json);
		assert_true(asprintf(&joined, "%s%s%u %s", all, i ? "\n" : "", docs[i].line, json) >
		            0);
		free(json);
		free(all);
		all = joined;
	}
	yamljson_docs_free(docs, n);
	return all;
}

/* Asserts that yaml is exactly the documents want ("LINE JSON" lines). */
static void expect_docs(const char *yaml, const char *want)
{
	char *got = parse_lines(yaml, strlen(yaml));

	assert_string_equal(got, want);
	free(got);
}

/* Asserts that yaml is one document whose JSON is want. */
static void expect_json(const char *yaml, const char *want)
{
	struct yamljson_doc *docs = NULL;
	size_t n = 0;
	struct err e = { 0 };
	char *json;
	int rc = yamljson_parse("t.yaml", yaml, strlen(yaml), &docs, &n, &e);

	if (rc != 0 || n != 1)
		print_message("input: %s\nerror: %s\n", yaml, e.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 1);
	json = json_dumps(docs[0].value, DUMP_FLAGS);
	if (strcmp(json, want) != 0)
		print_message("input: %s\n", yaml);
	assert_string_equal(json, want);
	free(json);
	yamljson_docs_free(docs, n);
}

/* Asserts that yaml fails with code and exactly message msg, leaving the outputs alone. */
static void expect_error_n(const char *yaml, size_t len, int code, const char *msg)
{
	struct yamljson_doc sentinel, *docs = &sentinel;
	size_t n = 77;
	struct err e = { 0 };
	int rc = yamljson_parse("t.yaml", yaml, len, &docs, &n, &e);

	if (rc != code)
		print_message("input: %.*s\ngot %s (%s)\n", (int)(len < 200 ? len : 200), yaml,
		              err_name(rc), e.msg);
	assert_int_equal(rc, code);
	assert_string_equal(e.msg, msg);
	assert_ptr_equal(docs, &sentinel);
	assert_int_equal(n, 77);
}

static void expect_error(const char *yaml, int code, const char *msg)
{
	expect_error_n(yaml, strlen(yaml), code, msg);
}

/* Emits v (asserting success) and returns the text. */
static char *emit(const json_t *v)
{
	char *out = NULL;
	size_t len = 0;
	struct err e = { 0 };
	int rc = yamljson_emit(v, &out, &len, &e);

	if (rc != 0)
		print_message("emit failed: %s\n", e.msg);
	assert_int_equal(rc, 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

/* Asserts that v is written and read back as an equal value. */
static void round_trip(const json_t *v)
{
	char *out = emit(v);
	struct yamljson_doc *docs = NULL;
	size_t n = 0;
	struct err e = { 0 };
	int rc = yamljson_parse("emitted", out, strlen(out), &docs, &n, &e);

	if (rc != 0 || n != 1 || !json_equal(docs[0].value, v)) {
		char *json = json_dumps(v, DUMP_FLAGS);

		print_message("value: %s\nemitted:\n%s\nerror: %s\n", json, out, e.msg);
		free(json);
		fail();
	}
	yamljson_docs_free(docs, n);
	free(out);
}

/* Asserts that the JSON text json is written exactly as yaml, and reads back equal. */
static void expect_emit(const char *json, const char *yaml)
{
	json_error_t jerr;
	json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	char *out;

	if (v == NULL)
		print_message("bad test JSON %s: %s\n", json, jerr.text);
	assert_non_null(v);
	out = emit(v);
	if (strcmp(out, yaml) != 0)
		print_message("value: %s\n", json);
	assert_string_equal(out, yaml);
	round_trip(v);
	free(out);
	json_decref(v);
}

static void test_manifests(void **state)
{
	(void)state;
	expect_docs(
	    "# A Deployment, a Service and a ConfigMap.\n"
	    "apiVersion: apps/v1\n"
	    "kind: Deployment\n"
	    "metadata:\n"
	    "  name: web\n"
	    "  labels: {app: web}\n"
	    "spec:\n"
	    "  replicas: 3\n"
	    "  template:\n"
	    "    spec:\n"
	    "      containers:\n"
	    "      - name: web\n"
	    "        image: nginx:1.25\n"
	    "        ports:\n"
	    "        - containerPort: 8080\n"
	    "---\n"
	    "apiVersion: v1\n"
	    "kind: Service\n"
	    "metadata:\n"
	    "  name: web\n"
	    "spec:\n"
	    "  ports:\n"
	    "  - port: 80\n"
	    "    targetPort: 8080\n"
	    "---\n"
	    "apiVersion: v1\n"
	    "kind: ConfigMap\n"
	    "metadata: {name: cfg}\n"
	    "data:\n"
	    "  enabled: \"true\"\n"
	    "  port: \"8080\"\n"
	    "  script: |\n"
	    "    #!/bin/sh\n"
	    "    echo hi\n",
	    "2 {\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
	    "\"web\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":3,\"template\":{"
	    "\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\","
	    "\"ports\":[{\"containerPort\":8080}]}]}}}}\n"
	    "17 {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},"
	    "\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080}]}}\n"
	    "26 {\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cfg\"},"
	    "\"data\":{\"enabled\":\"true\",\"port\":\"8080\",\"script\":"
	    "\"#!/bin/sh\\necho hi\\n\"}}");
}

static void test_json_input(void **state)
{
	(void)state;
	/* JSON is YAML: escapes (\/ and \u too), numbers, nesting, tabs between tokens. */
	expect_docs("{\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"a\\/b\\u00e9\"},\n"
	            "\t\"n\": [1, -0, 2.5, 1e3, 1E-2, true, false, null, {}, []]\n}\n",
	            "1 {\"kind\":\"Pod\",\"metadata\":{\"name\":\"a/bé\"},\"n\":[1,0,2.5,1000.0,"
	            "0.01,true,false,null,{},[]]}");
	/* Several JSON documents, as kubectl writes them with "---". */
	expect_docs("{\"a\": 1}\n---\n[\"x\"]\n", "1 {\"a\":1}\n3 [\"x\"]");
}

static void test_list(void **state)
{
	(void)state;
	expect_docs("apiVersion: v1\n"
	            "kind: List\n"
	            "items:\n"
	            "- apiVersion: v1\n"
	            "  kind: Pod\n"
	            "  metadata: {name: a}\n"
	            "- apiVersion: v1\n"
	            "  kind: Pod\n"
	            "  metadata: {name: b}\n",
	            "1 {\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\","
	            "\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}},{\"apiVersion\":\"v1\","
	            "\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\"}}]}");
}

static void test_comments_and_empty_documents(void **state)
{
	char *got;

	(void)state;
	expect_docs("# only a comment\n", "");
	expect_docs("", "");
	expect_docs("---\n---\n# nothing\n---\n...\n", "");
	expect_docs("# head\n---\n# x\na: 1 # trailing\n# between\nb: \"#not\" # c\n---\n---\n"
	            "c: [1, # in flow\n  2]\n...\n",
	            "4 {\"a\":1,\"b\":\"#not\"}\n9 {\"c\":[1,2]}");
	/* An explicit null, an anchored empty node or a tagged one is a document. */
	expect_docs("--- ~\n--- null\n--- &a\n--- !!str\n", "1 null\n2 null\n3 null\n4 \"\"");
	/* A NULL text of length 0 is an empty input. */
	got = parse_lines(NULL, 0);
	assert_string_equal(got, "");
	free(got);
}

static void test_block_scalars(void **state)
{
	(void)state;
	expect_json(
	    "a: |\n  x\n   y\n\n"
	    "b: |-\n  x\n\n"
	    "c: |+\n  x\n\n"
	    "d: >\n  folded\n  words\n\n  para\n"
	    "e: >-\n  x\n  y\n"
	    "f: >+\n  x\n\n"
	    "g: |2\n    indented\n"
	    "h: |\n  # not a comment\n",
	    "{\"a\":\"x\\n y\\n\",\"b\":\"x\",\"c\":\"x\\n\\n\",\"d\":\"folded words\\npara\\n\","
	    "\"e\":\"x y\",\"f\":\"x\\n\\n\",\"g\":\"  indented\\n\",\"h\":\"# not a "
	    "comment\\n\"}");
}

static void test_flow_collections(void **state)
{
	(void)state;
	expect_json("{a: [1, two, {b: c}], d: {}, e: [], f: [a: 1], \"g\": 'h'}",
	            "{\"a\":[1,\"two\",{\"b\":\"c\"}],\"d\":{},\"e\":[],\"f\":[{\"a\":1}],"
	            "\"g\":\"h\"}");
	expect_json("[a, b]", "[\"a\",\"b\"]");
	expect_json("{a, b: }", "{\"a\":null,\"b\":null}");
}

static void test_anchors_and_aliases(void **state)
{
	struct yamljson_doc *docs = NULL;
	size_t n = 0;
	struct err e = { 0 };
	const char *yaml = "base: &b {image: nginx, ports: [80]}\n"
	                   "one: *b\n"
	                   "two: *b\n"
	                   "name: &n web\n"
	                   "names: [*n, *n]\n"
	                   "*n : key from an alias\n";

	(void)state;
	expect_json(yaml, "{\"base\":{\"image\":\"nginx\",\"ports\":[80]},\"one\":{\"image\":"
	                  "\"nginx\",\"ports\":[80]},\"two\":{\"image\":\"nginx\",\"ports\":[80]},"
	                  "\"name\":\"web\",\"names\":[\"web\",\"web\"],\"web\":\"key from an "
	                  "alias\"}");
	/* Each alias is an independent copy: changing one changes no other. */
	assert_int_equal(yamljson_parse("t.yaml", yaml, strlen(yaml), &docs, &n, &e), 0);
	json_array_append_new(json_object_get(json_object_get(docs[0].value, "one"), "ports"),
	                      json_integer(443));
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(docs[0].value, "two"), "ports")), 1);
	assert_int_equal(
	    json_array_size(json_object_get(json_object_get(docs[0].value, "base"), "ports")), 1);
	yamljson_docs_free(docs, n);
	/* Anchors may be redefined; an alias takes the latest. Anchors end with a document. */
	expect_json("- &a 1\n- *a\n- &a 2\n- *a\n", "[1,1,2,2]");
	expect_error("a: &x 1\n---\nb: *x\n", ERR_YAML_ALIAS,
	             "t.yaml:3: alias *x names no anchor &x earlier in this document");
}

static void test_merge_keys(void **state)
{
	(void)state;
	/* Keys written in the mapping win, wherever they are; earlier merged maps win. */
	expect_json("base: &b {cpu: 1, mem: 2}\n"
	            "c:\n"
	            "  <<: *b\n"
	            "  mem: 3\n"
	            "d:\n"
	            "  mem: 4\n"
	            "  <<: [*b, {gpu: 5, cpu: 9}]\n"
	            "e: {<<: {x: 1}, '<<': quoted is a key}\n",
	            "{\"base\":{\"cpu\":1,\"mem\":2},\"c\":{\"cpu\":1,\"mem\":3},\"d\":{\"mem\":4,"
	            "\"cpu\":1,\"gpu\":5},\"e\":{\"x\":1,\"<<\":\"quoted is a key\"}}");
	/* A merged key may be overridden once; a second time is a duplicate. */
	expect_error("b: &b {x: 1}\nc:\n  <<: *b\n  x: 2\n  x: 3\n", ERR_YAML_DUPLICATE_KEY,
	             "t.yaml:5: duplicate key \"x\" (first at line 3)");
	expect_error("c: {<<: 5}\n", ERR_YAML_MERGE,
	             "t.yaml:1: the value of a merge key (<<) must be a mapping, an alias to one, "
	             "or a list of those");
	expect_error("l: &l [{a: 1}]\nc: {<<: *l}\n", ERR_YAML_MERGE,
	             "t.yaml:2: the value of a merge key (<<) must be a mapping, an alias to one, "
	             "or a list of those");
	expect_error("c: {<<: [{a: 1}, [x]]}\n", ERR_YAML_MERGE,
	             "t.yaml:1: the value of a merge key (<<) must be a mapping, an alias to one, "
	             "or a list of those");
	/* Several merge keys all merge (go-yaml and PyYAML take them too). */
	expect_json("c:\n  <<: {a: 1}\n  <<: {a: 2, b: 1}\n", "{\"c\":{\"a\":1,\"b\":1}}");
}

/* How each plain scalar is read: the table that go-yaml v2's resolve() implies. */
static void test_scalar_resolution(void **state)
{
	static const struct {
		const char *yaml, *json;
	} rows[] = {
		/* null */
		{ "", "null" },
		{ "~", "null" },
		{ "null", "null" },
		{ "Null", "null" },
		{ "NULL", "null" },
		{ "nULL", "\"nULL\"" },
		/* booleans, YAML 1.1 words included (as in Kubernetes) */
		{ "true", "true" },
		{ "True", "true" },
		{ "TRUE", "true" },
		{ "tRUE", "\"tRUE\"" },
		{ "false", "false" },
		{ "yes", "true" },
		{ "Yes", "true" },
		{ "YES", "true" },
		{ "y", "true" },
		{ "Y", "true" },
		{ "on", "true" },
		{ "On", "true" },
		{ "ON", "true" },
		{ "no", "false" },
		{ "No", "false" },
		{ "NO", "false" },
		{ "n", "false" },
		{ "N", "false" },
		{ "off", "false" },
		{ "Off", "false" },
		{ "OFF", "false" },
		{ "yEs", "\"yEs\"" },
		/* integers */
		{ "0", "0" },
		{ "-0", "0" },
		{ "+7", "7" },
		{ "42", "42" },
		{ "-42", "-42" },
		{ "0x1F", "31" },
		{ "0X1f", "31" },
		{ "-0x10", "-16" },
		{ "0o17", "15" },
		{ "0O17", "15" },
		{ "017", "15" },
		{ "0644", "420" },
		{ "0b101", "5" },
		{ "-0b101", "-5" },
		{ "1_000", "1000" },
		{ "1_", "1" },
		{ "0x_1f", "31" },
		{ "9223372036854775807", "9223372036854775807" },
		{ "-9223372036854775808", "-9223372036854775808" },
		/* beyond int64: reals, as in Kubernetes */
		{ "9223372036854775808", "9.2233720368547758e18" },
		{ "18446744073709551615", "1.8446744073709552e19" },
		{ "99999999999999999999", "1e20" },
		{ "-9223372036854775809", "-9.2233720368547758e18" },
		/* hex beyond uint64 is not a number */
		{ "0x10000000000000000", "\"0x10000000000000000\"" },
		/* floats */
		{ "1.5", "1.5" },
		{ "-1.5", "-1.5" },
		{ "1.", "1.0" },
		{ ".5", "0.5" },
		{ "+.5", "0.5" },
		{ "-.5e1", "-5.0" },
		{ "1e3", "1000.0" },
		{ "1E+3", "1000.0" },
		{ "2.5e-1", "0.25" },
		{ "1_0.5", "10.5" },
		{ ".2_5", "0.25" },
		{ "08", "8.0" },
		{ "09.5", "9.5" },
		{ "0778", "778.0" },
		{ "1.0", "1.0" },
		{ "1e400", "\"1e400\"" },
		{ "._5", "\"._5\"" },
		/* strings */
		{ "1e", "\"1e\"" },
		{ "0x", "\"0x\"" },
		{ "0b2", "\"0b2\"" },
		{ "+", "\"+\"" },
		{ "-x", "\"-x\"" },
		{ ".", "\".\"" },
		{ "1.2.3", "\"1.2.3\"" },
		{ "10.0.0.1", "\"10.0.0.1\"" },
		{ "1:30", "\"1:30\"" },
		{ "2024-01-02", "\"2024-01-02\"" },
		{ "2001-12-14t21:59:43.10-05:00", "\"2001-12-14t21:59:43.10-05:00\"" },
		{ "nan", "\"nan\"" },
		{ "inf", "\"inf\"" },
		{ "_1", "\"_1\"" },
		{ "<<", "\"<<\"" },
		{ "=", "\"=\"" },
		{ "nginx:1.25", "\"nginx:1.25\"" },
		{ "hello world", "\"hello world\"" },
		{ "héllo", "\"héllo\"" },
	};
	char yaml[128], want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(yaml, sizeof(yaml), "v: %s\n", rows[i].yaml);
		snprintf(want, sizeof(want), "{\"v\":%s}", rows[i].json);
		expect_json(yaml, want);
	}
	/* The same text as a whole document, and in a flow sequence. */
	expect_json("yes", "true");
	expect_json("[0x10, no, ~, 1.5]", "[16,false,null,1.5]");
}

static void test_quoted_and_block_scalars_are_strings(void **state)
{
	(void)state;
	expect_json("a: \"1\"\nb: '1.5'\nc: \"true\"\nd: 'no'\ne: \"~\"\nf: ''\ng: \"null\"\n"
	            "h: |\n  42\ni: >-\n  yes\nj: \"0x10\"\n",
	            "{\"a\":\"1\",\"b\":\"1.5\",\"c\":\"true\",\"d\":\"no\",\"e\":\"~\",\"f\":\"\","
	            "\"g\":\"null\",\"h\":\"42\\n\",\"i\":\"yes\",\"j\":\"0x10\"}");
	/* Escapes, including NUL, in values. */
	expect_json("a: \"tab\\there\\u00e9\\x41\\0\"\nb: 'it''s'\n",
	            "{\"a\":\"tab\\thereéA\\u0000\",\"b\":\"it's\"}");
}

static void test_tags(void **state)
{
	(void)state;
	expect_json("[!!str 123, !!str yes, !!str , !!int \"12\", !!int 0x10, !!float 1, "
	            "!!float \"2.5\", !!bool \"yes\", !!bool false, !!null ~, !!null \"\", ! 12, "
	            "!!map {a: 1}, !!seq [1], ! [2], !<tag:yaml.org,2002:str> 7]",
	            "[\"123\",\"yes\",\"\",12,16,1.0,2.5,true,false,null,null,\"12\",{\"a\":1},[1],"
	            "[2],\"7\"]");
	expect_error("a: !!int 1.5\n", ERR_YAML_TAG, "t.yaml:1: \"1.5\" cannot be read as !!int");
	expect_error("a: !!bool 1\n", ERR_YAML_TAG, "t.yaml:1: \"1\" cannot be read as !!bool");
	expect_error("a: !!null x\n", ERR_YAML_TAG, "t.yaml:1: \"x\" cannot be read as !!null");
	expect_error("a: !!float abc\n", ERR_YAML_TAG,
	             "t.yaml:1: \"abc\" cannot be read as !!float");
	expect_error("a: !!binary aGk=\n", ERR_YAML_TAG, "t.yaml:1: unsupported tag !!binary");
	expect_error("a: !!timestamp 2024-01-02\n", ERR_YAML_TAG,
	             "t.yaml:1: unsupported tag !!timestamp");
	expect_error("a:\n  b: !Ref x\n", ERR_YAML_TAG, "t.yaml:2: unsupported tag !Ref");
	expect_error("a: !!seq {b: 1}\n", ERR_YAML_TAG,
	             "t.yaml:1: unsupported tag !!seq on a mapping");
	expect_error("a: !custom [1]\n", ERR_YAML_TAG,
	             "t.yaml:1: unsupported tag !custom on a list");
	expect_error("a: !!merge x\n", ERR_YAML_TAG, "t.yaml:1: !!merge is only allowed on a key");
}

static void test_keys(void **state)
{
	(void)state;
	/* Non-string keys become the strings sigs.k8s.io/yaml makes of them. */
	expect_json(
	    "1: a\n0x10: b\n-5: c\nyes: d\nOff: e\n1.5: f\n1e3: g\n1e6: h\n"
	    "3.14159265358979: i\n0.00001: j\n.inf: k\n-.inf: l\n.nan: m\n\"2\": z\n",
	    "{\"1\":\"a\",\"16\":\"b\",\"-5\":\"c\",\"true\":\"d\",\"false\":\"e\","
	    "\"1.5\":\"f\",\"1000\":\"g\",\"1e+06\":\"h\",\"3.1415927\":\"i\",\"1e-05\":\"j\","
	    "\".inf\":\"k\",\"-.inf\":\"l\",\".nan\":\"m\",\"2\":\"z\"}");
	/* The famous one: a key "y" is the boolean true, so it becomes "true". */
	expect_json("x: 1\ny: 2\n", "{\"x\":1,\"true\":2}");
}

static void test_key_order_preserved(void **state)
{
	char *out;
	json_t *v = json_object();

	(void)state;
	expect_json("zeta: 1\nalpha: 2\nmid: 3\n", "{\"zeta\":1,\"alpha\":2,\"mid\":3}");
	json_object_set_new(v, "zeta", json_integer(1));
	json_object_set_new(v, "alpha", json_integer(2));
	json_object_set_new(v, "mid", json_integer(3));
	out = emit(v);
	assert_string_equal(out, "zeta: 1\nalpha: 2\nmid: 3\n");
	free(out);
	json_decref(v);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("a:\n\tb: 1\n", ERR_YAML_SYNTAX,
	             "t.yaml:2: found character that cannot start any token while scanning for "
	             "the next token (a tab: YAML indents with spaces only)");
	expect_error("a: 1\nb: 2\na: 3\n", ERR_YAML_DUPLICATE_KEY,
	             "t.yaml:3: duplicate key \"a\" (first at line 1)");
	expect_error("x:\n  1: a\n  \"1\": b\n", ERR_YAML_DUPLICATE_KEY,
	             "t.yaml:3: duplicate key \"1\" (first at line 2)");
	expect_error("yes: a\ntrue: b\n", ERR_YAML_DUPLICATE_KEY,
	             "t.yaml:2: duplicate key \"true\" (first at line 1)");
	expect_error("a: 1\n? [x, y]\n: 2\n", ERR_YAML_KEY,
	             "t.yaml:2: a key must be a string, number or boolean, not a list");
	expect_error("{a: 1}: x\n", ERR_YAML_KEY,
	             "t.yaml:1: a key must be a string, number or boolean, not a mapping");
	expect_error("a: &m {b: 1}\n*m : x\n", ERR_YAML_KEY,
	             "t.yaml:2: a key must be a string, number or boolean, not a mapping");
	expect_error("a: 1\n~: 2\n", ERR_YAML_KEY, "t.yaml:2: a key cannot be null");
	expect_error("18446744073709551615: x\n", ERR_YAML_KEY,
	             "t.yaml:1: integer key 18446744073709551615 is too large");
	expect_error("\"a\\0b\": x\n", ERR_YAML_KEY,
	             "t.yaml:1: a key must not contain a NUL byte (\\0)");
	expect_error("a: 1\nb: \xff\n", ERR_YAML_ENCODING,
	             "t.yaml:2: invalid leading UTF-8 octet (0xFF at byte 8)");
	expect_error("a: \xc3\n", ERR_YAML_ENCODING,
	             "t.yaml:1: invalid trailing UTF-8 octet (0x0A at byte 4)");
	expect_error("a: \xc3", ERR_YAML_ENCODING,
	             "t.yaml:1: incomplete UTF-8 octet sequence (at byte 3)");
	expect_error("a: 1\nb: x\x01y\n", ERR_YAML_ENCODING,
	             "t.yaml:2: control characters are not allowed (0x01 at byte 9)");
	expect_error_n("a: 1\n\0", 6, ERR_YAML_ENCODING,
	               "t.yaml:2: control characters are not allowed (0x00 at byte 5)");
	expect_error("a:\n  b: .inf\n", ERR_YAML_NUMBER,
	             "t.yaml:2: \".inf\" is infinite or not a number, which JSON cannot represent");
	expect_error(
	    "- -.Inf\n", ERR_YAML_NUMBER,
	    "t.yaml:1: \"-.Inf\" is infinite or not a number, which JSON cannot represent");
	expect_error("- .NaN\n", ERR_YAML_NUMBER,
	             "t.yaml:1: \".NaN\" is infinite or not a number, which JSON cannot represent");
	expect_error("- !!float .nan\n", ERR_YAML_NUMBER,
	             "t.yaml:1: \".nan\" is infinite or not a number, which JSON cannot represent");
	expect_error("a: &x .inf\nb: *x\n", ERR_YAML_NUMBER,
	             "t.yaml:1: \".inf\" is infinite or not a number, which JSON cannot represent");
	expect_error("a: *nope\n", ERR_YAML_ALIAS,
	             "t.yaml:1: alias *nope names no anchor &nope earlier in this document");
	expect_error("a: &r\n  b: *r\n", ERR_YAML_ALIAS,
	             "t.yaml:2: alias *r is inside the node it names (a recursive structure)");
	expect_error("a: x\n b: y\n", ERR_YAML_SYNTAX,
	             "t.yaml:2: mapping values are not allowed in this context");
	expect_error("a: [1, 2\nb: 3\n", ERR_YAML_SYNTAX,
	             "t.yaml:2: did not find expected ',' or ']' while parsing a flow sequence");
	expect_error("a: \"\\ud83d\\ude00\"\n", ERR_YAML_SYNTAX,
	             "t.yaml:1: found invalid Unicode character escape code while parsing a quoted "
	             "scalar");
	/* A problem in a later document still fails the whole input. */
	expect_error("a: 1\n---\nb: 2\n---\nc: [\n", ERR_YAML_SYNTAX,
	             "t.yaml:6: did not find expected node content while parsing a flow node");
}

static void test_alias_bomb(void **state)
{
	char yaml[1024];
	size_t pos;

	(void)state;
	pos = (size_t)snprintf(yaml, sizeof(yaml), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 10; i++) {
		pos += (size_t)snprintf(yaml + pos, sizeof(yaml) - pos, "a%d: &a%d [", i, i);
		for (int j = 0; j < 10; j++)
			pos += (size_t)snprintf(yaml + pos, sizeof(yaml) - pos, "%s*a%d",
			                        j ? ", " : "", i - 1);
		pos += (size_t)snprintf(yaml + pos, sizeof(yaml) - pos, "]\n");
	}
	expect_error(yaml, ERR_YAML_EXPANSION,
	             "t.yaml:6: aliases expand to more than 1000000 values or 67108864 bytes (is "
	             "this a \"billion laughs\" document?)");
}

static void test_big_string_aliases(void **state)
{
	size_t big = 1024 * 1024, len;
	char *yaml = malloc(big + 16 + 100 * 5);

	(void)state;
	assert_non_null(yaml);
	memcpy(yaml, "- &s \"", 6);
	memset(yaml + 6, 'x', big);
	len = 6 + big;
	memcpy(yaml + len, "\"\n", 2);
	len += 2;
	for (int i = 0; i < 100; i++, len += 5)
		memcpy(yaml + len, "- *s\n", 5);
	expect_error_n(yaml, len, ERR_YAML_EXPANSION,
	               "t.yaml:66: aliases expand to more than 1000000 values or 67108864 bytes "
	               "(is this a \"billion laughs\" document?)");
	free(yaml);
}

static void test_depth(void **state)
{
	char *yaml = malloc(2 * 600 + 2);

	(void)state;
	assert_non_null(yaml);
	/* 512 levels are fine, 513 are not; block style counts the same. */
	memset(yaml, '[', 512);
	memset(yaml + 512, ']', 512);
	yaml[1024] = '\0';
	{
		char *got = parse_lines(yaml, strlen(yaml));

		assert_int_equal(strlen(got), 2 + 1024);
		free(got);
	}
	memset(yaml, '[', 600);
	memset(yaml + 600, ']', 600);
	yaml[1200] = '\0';
	expect_error(yaml, ERR_YAML_TOO_DEEP, "t.yaml:1: collections nest deeper than 512 levels");
	free(yaml);
	yaml = malloc(514 * 520 + 16);
	assert_non_null(yaml);
	yaml[0] = '\0';
	for (size_t i = 0, pos = 0; i < 514; i++)
		pos += (size_t)sprintf(yaml + pos, "%*sk:\n", (int)(2 * i), "");
	expect_error(yaml, ERR_YAML_TOO_DEEP,
	             "t.yaml:513: collections nest deeper than 512 levels");
	free(yaml);
	/* Aliases count: an anchored 300-deep list used 250 levels down is too deep. */
	yaml = malloc(2048);
	assert_non_null(yaml);
	strcpy(yaml, "a: &a ");
	memset(yaml + 6, '[', 300);
	memset(yaml + 306, ']', 300);
	strcpy(yaml + 606, "\nb: ");
	memset(yaml + 610, '[', 250);
	strcpy(yaml + 860, "*a");
	memset(yaml + 862, ']', 250);
	strcpy(yaml + 1112, "\n");
	expect_error(yaml, ERR_YAML_TOO_DEEP,
	             "t.yaml:2: alias *a makes collections nest deeper than 512 levels");
	free(yaml);
}

static void test_too_large(void **state)
{
	size_t len = YAMLJSON_INPUT_MAX + 1;
	char *yaml = malloc(len);

	(void)state;
	assert_non_null(yaml);
	memset(yaml, ' ', len);
	expect_error_n(yaml, len, ERR_YAML_TOO_LARGE,
	               "t.yaml: input is larger than 16777216 bytes");
	free(yaml);
}

/* Strings and how they are written: plain when that reads back the same, else quoted. */
static void test_emit_quoting(void **state)
{
	static const struct {
		const char *json, *yaml;
	} rows[] = {
		/* plain, as a human writes them */
		{ "\"web\"", "web" },
		{ "\"nginx:1.25\"", "nginx:1.25" },
		{ "\"10.0.0.1\"", "10.0.0.1" },
		{ "\"1.2.3\"", "1.2.3" },
		{ "\"-c\"", "-c" },
		{ "\"echo hello world\"", "echo hello world" },
		{ "\"http://x/y?z=1#f\"", "http://x/y?z=1#f" },
		{ "\"héllo ☃\"", "héllo ☃" },
		{ "\"a-b_c\"", "a-b_c" },
		{ "\"?x\"", "?x" },
		/* would be read as something else */
		{ "\"\"", "\"\"" },
		{ "\"true\"", "\"true\"" },
		{ "\"False\"", "\"False\"" },
		{ "\"no\"", "\"no\"" },
		{ "\"yes\"", "\"yes\"" },
		{ "\"y\"", "\"y\"" },
		{ "\"N\"", "\"N\"" },
		{ "\"on\"", "\"on\"" },
		{ "\"OFF\"", "\"OFF\"" },
		{ "\"~\"", "\"~\"" },
		{ "\"null\"", "\"null\"" },
		{ "\"NULL\"", "\"NULL\"" },
		{ "\"1\"", "\"1\"" },
		{ "\"-1\"", "\"-1\"" },
		{ "\"+1\"", "\"+1\"" },
		{ "\"1.0\"", "\"1.0\"" },
		{ "\"0x10\"", "\"0x10\"" },
		{ "\"0o17\"", "\"0o17\"" },
		{ "\"017\"", "\"017\"" },
		{ "\"08\"", "\"08\"" },
		{ "\"0b1\"", "\"0b1\"" },
		{ "\"1_000\"", "\"1_000\"" },
		{ "\"1e3\"", "\"1e3\"" },
		{ "\"1e400\"", "\"1e400\"" },
		{ "\".5\"", "\".5\"" },
		{ "\".inf\"", "\".inf\"" },
		{ "\"-.Inf\"", "\"-.Inf\"" },
		{ "\".NaN\"", "\".NaN\"" },
		{ "\"12:30\"", "\"12:30\"" },
		{ "\"2024-01-02\"", "\"2024-01-02\"" },
		{ "\"2001-12-14 21:59:43.10 -5\"", "\"2001-12-14 21:59:43.10 -5\"" },
		{ "\"<<\"", "\"<<\"" },
		{ "\"=\"", "\"=\"" },
		/* libyaml's own rules: spaces at the ends, ": ", " #", indicators */
		{ "\" lead\"", "' lead'" },
		{ "\"trail \"", "'trail '" },
		{ "\"a: b\"", "'a: b'" },
		{ "\"a:\"", "'a:'" },
		{ "\"a #b\"", "'a #b'" },
		{ "\"#x\"", "'#x'" },
		{ "\"- x\"", "'- x'" },
		{ "\"-\"", "'-'" },
		{ "\"*x\"", "'*x'" },
		{ "\"&x\"", "'&x'" },
		{ "\"!x\"", "'!x'" },
		{ "\"%x\"", "'%x'" },
		{ "\"@x\"", "'@x'" },
		{ "\"`x\"", "'`x'" },
		{ "\"{x}\"", "'{x}'" },
		{ "\"[x]\"", "'[x]'" },
		{ "\"|x\"", "'|x'" },
		{ "\">x\"", "'>x'" },
		{ "\"'x'\"", "'''x'''" },
		{ "\"\\\"x\"", "'\"x'" },
		{ "\"a, b\"", "a, b" },
		/* control characters and odd line breaks: double-quoted with escapes */
		{ "\"tab\\there\"", "\"tab\\there\"" },
		{ "\"nul\\u0000\"", "\"nul\\0\"" },
		{ "\"a\\r\\nb\"", "\"a\\r\\nb\"" },
		{ "\"a\\u2028b\"", "\"a\\Lb\"" },
		{ "\"\\ufeffbom\"", "\"\\uFEFFbom\"" },
	};
	char json[128], yaml[128];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(json, sizeof(json), "{\"v\": %s}", rows[i].json);
		snprintf(yaml, sizeof(yaml), "v: %s\n", rows[i].yaml);
		expect_emit(json, yaml);
		/* Keys follow the same rules; test_emit_multiline has keys with line breaks,
		 * and keys may not hold a NUL. */
		if (strstr(rows[i].json, "u0000") != NULL || strstr(rows[i].json, "\\r") != NULL ||
		    strstr(rows[i].json, "u2028") != NULL)
			continue;
		snprintf(json, sizeof(json), "{%s: 1}", rows[i].json);
		snprintf(yaml, sizeof(yaml), "%s: 1\n", rows[i].yaml);
		expect_emit(json, yaml);
	}
}

static void test_emit_multiline(void **state)
{
	(void)state;
	expect_emit("{\"a\": \"line1\\nline2\"}", "a: |-\n  line1\n  line2\n");
	expect_emit("{\"a\": \"line1\\nline2\\n\", \"b\": 1}", "a: |\n  line1\n  line2\nb: 1\n");
	/* After a |+ block, libyaml ends the document with "...". */
	expect_emit("{\"a\": \"x\\n\\n\", \"b\": 1}", "a: |+\n  x\n\nb: 1\n...\n");
	expect_emit("{\"a\": \"  indented\\nx\"}", "a: |2-\n    indented\n  x\n");
	expect_emit("[\"#!/bin/sh\\necho hi\\n\"]", "- |\n  #!/bin/sh\n  echo hi\n");
	/* What a literal block cannot hold exactly is double-quoted. */
	expect_emit("{\"a\": \"trailing \\nspace\"}", "a: \"trailing \\nspace\"\n");
	expect_emit("{\"a\": \"tab\\n\\tindent\"}", "a: \"tab\\n\\tindent\"\n");
	expect_emit("{\"a\": \"cr\\r\\nlf\"}", "a: \"cr\\r\\nlf\"\n");
	/* A multi-line key. */
	expect_emit("{\"a\\nb\": 1}", "? |-\n  a\n  b\n: 1\n");
	expect_emit("{\"a\\r\\nb\": 1}", "? \"a\\r\\nb\"\n: 1\n");
}

static void test_emit_scalars(void **state)
{
	(void)state;
	expect_emit("[1, -42, 9223372036854775807, -9223372036854775808, 0]",
	            "- 1\n- -42\n- 9223372036854775807\n- -9223372036854775808\n- 0\n");
	expect_emit("[3.0, 0.1, 2.5, -0.0, 1000.0, 1e20, 1.5e-7, 0.0001, 123456789.125, "
	            "1.7976931348623157e308, 5e-324]",
	            "- 3.0\n- 0.1\n- 2.5\n- -0.0\n- 1000.0\n- 1.0e+20\n- 1.5e-07\n- 0.0001\n"
	            "- 123456789.125\n- 1.7976931348623157e+308\n- 5.0e-324\n");
	expect_emit("[true, false, null, {}, []]", "- true\n- false\n- null\n- {}\n- []\n");
	/* Top-level scalars are documents too. */
	expect_emit("\"hello\"", "hello\n");
	expect_emit("\"true\"", "\"true\"\n");
	expect_emit("42", "42\n");
	expect_emit("null", "null\n");
	expect_emit("{}", "{}\n");
}

static void test_emit_manifest(void **state)
{
	(void)state;
	expect_emit("{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\": "
	            "{\"name\": \"web\", \"labels\": {\"app\": \"web\", \"version\": \"1.0\"}, "
	            "\"annotations\": {\"sidecar.meshlet.io/inject\": \"true\"}}, \"spec\": "
	            "{\"replicas\": 3, \"template\": {\"spec\": {\"containers\": [{\"name\": "
	            "\"web\", \"image\": \"nginx:1.25\", \"args\": [\"-c\", \"echo hi\"], "
	            "\"ports\": [{\"containerPort\": 8080}], \"resources\": {}}]}}}}",
	            "apiVersion: apps/v1\n"
	            "kind: Deployment\n"
	            "metadata:\n"
	            "  name: web\n"
	            "  labels:\n"
	            "    app: web\n"
	            "    version: \"1.0\"\n"
	            "  annotations:\n"
	            "    sidecar.meshlet.io/inject: \"true\"\n"
	            "spec:\n"
	            "  replicas: 3\n"
	            "  template:\n"
	            "    spec:\n"
	            "      containers:\n"
	            "      - name: web\n"
	            "        image: nginx:1.25\n"
	            "        args:\n"
	            "        - -c\n"
	            "        - echo hi\n"
	            "        ports:\n"
	            "        - containerPort: 8080\n"
	            "        resources: {}\n");
}

static void test_emit_docs_and_append(void **state)
{
	json_t *values[3] = { json_pack("{s:i}", "a", 1), json_string("x"), json_array() };
	char *out = NULL;
	size_t len = 0;
	struct err e = { 0 };
	char *lines;

	(void)state;
	assert_int_equal(yamljson_emit_docs(values, 3, &out, &len, &e), 0);
	assert_string_equal(out, "a: 1\n--- x\n--- []\n");
	assert_int_equal(len, strlen(out));
	/* Appending to earlier text adds a "---" first. */
	assert_int_equal(yamljson_emit(values[0], &out, &len, &e), 0);
	assert_string_equal(out, "a: 1\n--- x\n--- []\n---\na: 1\n");
	lines = parse_lines(out, len);
	assert_string_equal(lines, "1 {\"a\":1}\n2 \"x\"\n3 []\n5 {\"a\":1}");
	free(lines);
	free(out);
	/* No documents: an empty text, still a buffer. */
	out = NULL;
	len = 99;
	assert_int_equal(yamljson_emit_docs(values, 0, &out, &len, &e), 0);
	assert_non_null(out);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	free(out);
	for (int i = 0; i < 3; i++)
		json_decref(values[i]);
}

static void test_emit_errors(void **state)
{
	json_t *deep = json_array(), *bad = json_object(), *ok = json_pack("{s:i}", "a", 1);
	char *out = NULL;
	size_t len = 0;
	struct err e = { 0 };

	(void)state;
	for (int i = 1; i < 512; i++)
		deep = json_pack("[o]", deep);
	assert_int_equal(yamljson_emit(deep, &out, &len, &e), 0);
	free(out);
	out = NULL;
	deep = json_pack("[o]", deep);
	assert_int_equal(yamljson_emit(deep, &out, &len, &e), ERR_YAML_TOO_DEEP);
	assert_string_equal(e.msg, "cannot write YAML: collections nest deeper than 512 levels");
	assert_null(out);
	/* A failure leaves an existing buffer's text as it was. */
	assert_int_equal(yamljson_emit(ok, &out, &len, &e), 0);
	assert_int_equal(yamljson_emit(deep, &out, &len, &e), ERR_YAML_TOO_DEEP);
	assert_string_equal(out, "a: 1\n");
	assert_int_equal(len, 5);
	json_object_set_new(bad, "s", json_stringn_nocheck("\xff", 1));
	assert_int_equal(yamljson_emit(bad, &out, &len, &e), ERR_YAML_EMIT);
	assert_string_equal(e.msg, "cannot write a string that is not valid UTF-8");
	json_object_clear(bad);
	json_object_setn_new(bad, "a\0b", 3, json_true());
	assert_int_equal(yamljson_emit(bad, &out, &len, &e), ERR_YAML_EMIT);
	assert_string_equal(e.msg, "cannot write YAML: a key contains a NUL byte");
	assert_string_equal(out, "a: 1\n");
	assert_int_equal(yamljson_emit(NULL, &out, &len, &e), ERR_YAML_EMIT);
	assert_string_equal(out, "a: 1\n");
	free(out);
	json_decref(deep);
	json_decref(bad);
	json_decref(ok);
}

/* Every tricky value is written and read back equal. */
static void test_round_trip(void **state)
{
	static const char *const atoms[] = {
		" ",
		"\n",
		"\t",
		"-",
		":",
		"#",
		"'",
		"\"",
		"?",
		"!",
		"&",
		"*",
		"|",
		">",
		"%",
		"@",
		"`",
		",",
		"[",
		"{",
		"}",
		"]",
		"0",
		"1",
		".",
		"e",
		"x",
		"y",
		"~",
		"\r",
		"\\",
		"é",
		"\xc2\x85",
		"\xe2\x80\xa8",
		"\xef\xbb\xbf",
		"<",
		"=",
		"_",
		"+",
		"N",
	};
	const size_t na = sizeof(atoms) / sizeof(atoms[0]);
	json_t *keys = json_object(), *list = json_array(), *all;
	char s[32];
	json_error_t jerr;

	(void)state;
	/* Every string of up to three of these pieces, as a value and as a key. */
	for (size_t i = 0; i < na * na * na + na * na + na; i++) {
		size_t r = i, len = 0;

		s[0] = '\0';
		do {
			strcat(s, atoms[r % na]);
			len++;
			r /= na;
		} while (r > 0 && len < 3);
		json_array_append_new(list, json_string(s));
		json_object_set_new(keys, s, json_integer((json_int_t)i));
	}
	all = json_pack("{s:o, s:o}", "list", list, "keys", keys);
	round_trip(all);
	json_decref(all);
	/* Numbers at their limits, nesting, and the odd shapes. */
	all =
	    json_loads("[0.1, 1e-300, 1e300, -0.0, 2.5e-8, 9007199254740993, 1.0, 100.0, "
	               "-9223372036854775808, {\"\": \"\"}, [[[]]], [{}], {\"a\": [null]}, "
	               "\"nul\\u0000in\\u0000value\", \"\\u0001\\u001f\\u007f\", \"OFF \\u0000x\", "
	               "\"1 \\u0000\"]",
	               JSON_ALLOW_NUL, &jerr);
	assert_non_null(all);
	round_trip(all);
	for (size_t i = 0; i < json_array_size(all); i++)
		round_trip(json_array_get(all, i));
	json_decref(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifests),
		cmocka_unit_test(test_json_input),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_comments_and_empty_documents),
		cmocka_unit_test(test_block_scalars),
		cmocka_unit_test(test_flow_collections),
		cmocka_unit_test(test_anchors_and_aliases),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_scalar_resolution),
		cmocka_unit_test(test_quoted_and_block_scalars_are_strings),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_key_order_preserved),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_big_string_aliases),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_emit_quoting),
		cmocka_unit_test(test_emit_multiline),
		cmocka_unit_test(test_emit_scalars),
		cmocka_unit_test(test_emit_manifest),
		cmocka_unit_test(test_emit_docs_and_append),
		cmocka_unit_test(test_emit_errors),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
