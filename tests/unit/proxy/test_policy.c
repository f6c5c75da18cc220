/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/policy.c and policy_load.c: Istio's semantics, case by case, and load errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http1.h"
#include "proxy/policy.h"

/* Policy documents, in flow style to keep each case on a few lines. */
#define DOC(kind, name, spec)                                                                      \
	"---\napiVersion: security.istio.io/v1\nkind: " kind "\nmetadata: {name: " name             \
	", namespace: prod}\nspec: " spec "\n"
#define AP(name, spec) DOC("AuthorizationPolicy", name, spec)
#define ALLOW(name, rules) AP(name, "{action: ALLOW, rules: " rules "}")
#define DENY(name, rules)  AP(name, "{action: DENY, rules: " rules "}")

#define PB "cluster.local/ns/b/sa/web"
#define PC "cluster.local/ns/c/sa/api"

#define GET(path)       "GET " path " HTTP/1.1\r\nHost: web.prod\r\n\r\n"
#define REQ(m, p, more) m " " p " HTTP/1.1\r\n" more "\r\n"

struct dcase {
	const char *name;
	const char *policy;
	const char *principal;
	const char *ip;
	uint16_t port;
	const char *head; /* NULL: a TCP connection */
	bool allow;
	const char *by; /* the deciding policy's name, or NULL */
	int rule;
};

static const struct dcase dcases[] = {
	/* principals and namespaces */
	{ "no policy", "", PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "principal exact", ALLOW("p", "[{from: [{source: {principals: [\"" PB "\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "principal other", ALLOW("p", "[{from: [{source: {principals: [\"" PB "\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "principal prefix", ALLOW("p", "[{from: [{source: {principals: [\"cluster.local/ns/b/*\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "principal prefix other", ALLOW("p", "[{from: [{source: {principals: [\"cluster.local/ns/b/*\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "principal suffix", ALLOW("p", "[{from: [{source: {principals: [\"*/sa/web\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "principal any, mTLS", ALLOW("p", "[{from: [{source: {principals: [\"*\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "principal any, plaintext", ALLOW("p", "[{from: [{source: {principals: [\"*\"]}}]}]"), NULL, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "principals ORed", ALLOW("p", "[{from: [{source: {principals: [\"x\", \"" PC "\"]}}]}]"), PC, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "notPrincipals excludes", ALLOW("p", "[{from: [{source: {notPrincipals: [\"" PB "\"]}}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "notPrincipals others", ALLOW("p", "[{from: [{source: {notPrincipals: [\"" PB "\"]}}]}]"), PC, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "notPrincipals, plaintext", ALLOW("p", "[{from: [{source: {notPrincipals: [\"" PB "\"]}}]}]"), NULL, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "namespace", ALLOW("p", "[{from: [{source: {namespaces: [\"b\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "namespace other", ALLOW("p", "[{from: [{source: {namespaces: [\"b\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "namespace prefix", ALLOW("p", "[{from: [{source: {namespaces: [\"team-*\"]}}]}]"), "cluster.local/ns/team-x/sa/s", "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "namespace, plaintext", ALLOW("p", "[{from: [{source: {namespaces: [\"*\"]}}]}]"), NULL, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "notNamespaces", DENY("d", "[{from: [{source: {notNamespaces: [\"b\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "notNamespaces own", DENY("d", "[{from: [{source: {notNamespaces: [\"b\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	/* ipBlocks */
	{ "ipBlocks CIDR", ALLOW("p", "[{from: [{source: {ipBlocks: [\"10.0.0.0/8\"]}}]}]"), NULL, "10.9.8.7", 80, NULL, true, "p", 0 },
	{ "ipBlocks single", ALLOW("p", "[{from: [{source: {ipBlocks: [\"10.0.0.1\"]}}]}]"), NULL, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "ipBlocks other", ALLOW("p", "[{from: [{source: {ipBlocks: [\"10.0.0.0/24\"]}}]}]"), NULL, "10.0.1.1", 80, NULL, false, NULL, -1 },
	{ "ipBlocks /20", ALLOW("p", "[{from: [{source: {ipBlocks: [\"172.16.16.0/20\"]}}]}]"), NULL, "172.16.31.255", 80, NULL, true, "p", 0 },
	{ "notIpBlocks", DENY("d", "[{from: [{source: {notIpBlocks: [\"10.0.0.0/8\"]}}]}]"), NULL, "192.168.1.1", 80, NULL, false, "d", 0 },
	{ "ipBlocks IPv6", ALLOW("p", "[{from: [{source: {ipBlocks: [\"fd00::/8\"]}}]}]"), NULL, "fd12::1", 80, NULL, true, "p", 0 },
	{ "ipBlocks IPv4-mapped", ALLOW("p", "[{from: [{source: {ipBlocks: [\"10.0.0.0/8\"]}}]}]"), NULL, "::ffff:10.1.1.1", 80, NULL, true, "p", 0 },
	/* operation on TCP */
	{ "ports", ALLOW("p", "[{to: [{operation: {ports: [\"5432\"]}}]}]"), PB, "10.0.0.1", 5432, NULL, true, "p", 0 },
	{ "ports other", ALLOW("p", "[{to: [{operation: {ports: [\"5432\"]}}]}]"), PB, "10.0.0.1", 5433, NULL, false, NULL, -1 },
	{ "notPorts", DENY("d", "[{to: [{operation: {notPorts: [\"8080\"]}}]}]"), PB, "10.0.0.1", 9090, NULL, false, "d", 0 },
	{ "notPorts listed", DENY("d", "[{to: [{operation: {notPorts: [\"8080\"]}}]}]"), PB, "10.0.0.1", 8080, NULL, true, NULL, -1 },
	/* operation on HTTP */
	{ "methods", ALLOW("p", "[{to: [{operation: {methods: [\"GET\"]}}]}]"), PB, "10.0.0.1", 80, GET("/"), true, "p", 0 },
	{ "methods other", ALLOW("p", "[{to: [{operation: {methods: [\"GET\"]}}]}]"), PB, "10.0.0.1", 80, REQ("POST", "/", "Host: a\r\nContent-Length: 0\r\n"), false, NULL, -1 },
	{ "methods are case-sensitive", ALLOW("p", "[{to: [{operation: {methods: [\"GET\"]}}]}]"), PB, "10.0.0.1", 80, REQ("get", "/", "Host: a\r\n"), false, NULL, -1 },
	{ "notMethods", DENY("d", "[{to: [{operation: {notMethods: [\"GET\", \"HEAD\"]}}]}]"), PB, "10.0.0.1", 80, REQ("DELETE", "/", "Host: a\r\n"), false, "d", 0 },
	{ "paths exact", ALLOW("p", "[{to: [{operation: {paths: [\"/healthz\"]}}]}]"), PB, "10.0.0.1", 80, GET("/healthz"), true, "p", 0 },
	{ "paths exact, longer", ALLOW("p", "[{to: [{operation: {paths: [\"/healthz\"]}}]}]"), PB, "10.0.0.1", 80, GET("/healthz/x"), false, NULL, -1 },
	{ "paths prefix", ALLOW("p", "[{to: [{operation: {paths: [\"/api/*\"]}}]}]"), PB, "10.0.0.1", 80, GET("/api/v1/items"), true, "p", 0 },
	{ "paths suffix", ALLOW("p", "[{to: [{operation: {paths: [\"*.css\"]}}]}]"), PB, "10.0.0.1", 80, GET("/static/site.css"), true, "p", 0 },
	{ "paths without the query", ALLOW("p", "[{to: [{operation: {paths: [\"/search\"]}}]}]"), PB, "10.0.0.1", 80, GET("/search?q=a"), true, "p", 0 },
	{ "paths prefix ends at the slash", DENY("d", "[{to: [{operation: {paths: [\"/admin/*\"]}}]}]"), PB, "10.0.0.1", 80, GET("/admin"), true, NULL, -1 },
	{ "paths encoded slash stays encoded", DENY("d", "[{to: [{operation: {paths: [\"/a/b\"]}}]}]"), PB, "10.0.0.1", 80, GET("/a%2Fb"), true, NULL, -1 },
	{ "paths absolute form", DENY("d", "[{to: [{operation: {paths: [\"/admin\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "http://web/admin", "Host: web\r\n"), false, "d", 0 },
	{ "notPaths", ALLOW("p", "[{to: [{operation: {notPaths: [\"/private/*\"]}}]}]"), PB, "10.0.0.1", 80, GET("/private/x"), false, NULL, -1 },
	{ "hosts any case", ALLOW("p", "[{to: [{operation: {hosts: [\"web.prod\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: WEB.Prod\r\n"), true, "p", 0 },
	{ "hosts with a port", ALLOW("p", "[{to: [{operation: {hosts: [\"web.prod\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: web.prod:80\r\n"), false, NULL, -1 },
	{ "hosts prefix for ports", ALLOW("p", "[{to: [{operation: {hosts: [\"web.prod:*\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: web.prod:80\r\n"), true, "p", 0 },
	{ "hosts suffix", ALLOW("p", "[{to: [{operation: {hosts: [\"*.example.com\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: a.example.com\r\n"), true, "p", 0 },
	{ "notHosts", DENY("d", "[{to: [{operation: {notHosts: [\"web.prod\"]}}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: evil\r\n"), false, "d", 0 },
	/* when */
	{ "header", ALLOW("p", "[{when: [{key: \"request.headers[x-team]\", values: [\"ops\"]}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: a\r\nX-Team: ops\r\n"), true, "p", 0 },
	{ "header present but empty, \"*\"", DENY("d", "[{when: [{key: \"request.headers[x-debug]\", values: [\"*\"]}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: a\r\nX-Debug:\r\n"), false, "d", 0 },
	{ "header missing", ALLOW("p", "[{when: [{key: \"request.headers[x-team]\", values: [\"*\"]}]}]"), PB, "10.0.0.1", 80, GET("/"), false, NULL, -1 },
	{ "header notValues", DENY("d", "[{when: [{key: \"request.headers[x-team]\", notValues: [\"ops\"]}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: a\r\nX-Team: dev\r\n"), false, "d", 0 },
	{ "header notValues, missing", DENY("d", "[{when: [{key: \"request.headers[x-team]\", notValues: [\"ops\"]}]}]"), PB, "10.0.0.1", 80, GET("/"), false, "d", 0 },
	{ "header repeated, joined", ALLOW("p", "[{when: [{key: \"request.headers[x-a]\", values: [\"1,2\"]}]}]"), PB, "10.0.0.1", 80, REQ("GET", "/", "Host: a\r\nX-A: 1\r\nX-A: 2\r\n"), true, "p", 0 },
	{ "source.ip", ALLOW("p", "[{when: [{key: source.ip, values: [\"10.0.0.0/8\"]}]}]"), NULL, "10.1.2.3", 80, NULL, true, "p", 0 },
	{ "source.ip notValues", ALLOW("p", "[{when: [{key: source.ip, notValues: [\"10.0.0.0/8\"]}]}]"), NULL, "10.1.2.3", 80, NULL, false, NULL, -1 },
	{ "source.namespace", ALLOW("p", "[{when: [{key: source.namespace, values: [\"c\"]}]}]"), PC, "10.0.0.1", 80, NULL, true, "p", 0 },
	{ "source.principal", DENY("d", "[{when: [{key: source.principal, values: [\"" PC "\"]}]}]"), PC, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "destination.port", ALLOW("p", "[{when: [{key: destination.port, values: [\"80\", \"443\"]}]}]"), PB, "10.0.0.1", 443, NULL, true, "p", 0 },
	{ "destination.port notValues", ALLOW("p", "[{when: [{key: destination.port, notValues: [\"22\"]}]}]"), PB, "10.0.0.1", 22, NULL, false, NULL, -1 },
	{ "when ANDed", ALLOW("p", "[{when: [{key: source.namespace, values: [\"b\"]}, {key: destination.port, values: [\"81\"]}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	/* HTTP-only fields on a TCP port */
	{ "ALLOW methods on TCP: rule dropped", ALLOW("p", "[{to: [{operation: {methods: [\"GET\"]}}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "ALLOW: the TCP rule still matches", ALLOW("p", "[{to: [{operation: {paths: [\"/x\"]}}]}, {to: [{operation: {ports: [\"80\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "p", 1 },
	{ "ALLOW header on TCP: rule dropped", ALLOW("p", "[{from: [{source: {principals: [\"" PB "\"]}}], when: [{key: \"request.headers[x]\", values: [\"1\"]}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "DENY methods on TCP: condition ignored", DENY("d", "[{to: [{operation: {methods: [\"DELETE\"]}}]}]"), PB, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "DENY paths on TCP, other principal", DENY("d", "[{from: [{source: {principals: [\"" PC "\"]}}], to: [{operation: {paths: [\"/admin\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "DENY paths on TCP, that principal", DENY("d", "[{from: [{source: {principals: [\"" PC "\"]}}], to: [{operation: {paths: [\"/admin\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "DENY header on TCP", DENY("d", "[{when: [{key: \"request.headers[x]\", values: [\"1\"]}]}]"), PB, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "DENY ports and methods on TCP", DENY("d", "[{to: [{operation: {ports: [\"9\"], methods: [\"GET\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	/* ALLOW, DENY and AUDIT together */
	{ "DENY wins over ALLOW", ALLOW("a", "[{}]") DENY("d", "[{from: [{source: {principals: [\"" PC "\"]}}]}]"), PC, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "ALLOW when DENY does not match", ALLOW("a", "[{}]") DENY("d", "[{from: [{source: {principals: [\"" PC "\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "a", 0 },
	{ "AUDIT does not decide", AP("au", "{action: AUDIT, rules: [{}]}"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "AUDIT with DENY", AP("au", "{action: AUDIT, rules: [{}]}") DENY("d", "[{}]"), PB, "10.0.0.1", 80, NULL, false, "d", 0 },
	{ "AUDIT with an unmatched ALLOW", AP("au", "{action: AUDIT, rules: [{}]}") ALLOW("a", "[{from: [{source: {principals: [\"x\"]}}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "spec {} allows nothing", AP("none", "{}"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "no spec allows nothing", "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: nospec}\n", PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "rules [{}] allows all", ALLOW("all", "[{}]"), NULL, "10.0.0.1", 80, NULL, true, "all", 0 },
	{ "rules [] allows nothing", ALLOW("a", "[]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "DENY without rules denies nothing", AP("d", "{action: DENY}"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "DENY rules [{}] denies all", DENY("d", "[{}]"), PB, "10.0.0.1", 80, GET("/"), false, "d", 0 },
	{ "action defaults to ALLOW", AP("a", "{rules: [{from: [{source: {namespaces: [\"c\"]}}]}]}"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "second ALLOW matches", ALLOW("a", "[{from: [{source: {namespaces: [\"x\"]}}]}]") ALLOW("b", "[{from: [{source: {namespaces: [\"b\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "b", 0 },
	{ "from entries ORed", ALLOW("a", "[{from: [{source: {namespaces: [\"x\"]}}, {source: {ipBlocks: [\"10.0.0.1\"]}}]}]"), PB, "10.0.0.1", 80, NULL, true, "a", 0 },
	{ "source fields ANDed", ALLOW("a", "[{from: [{source: {namespaces: [\"b\"], ipBlocks: [\"10.9.0.0/16\"]}}]}]"), PB, "10.0.0.1", 80, NULL, false, NULL, -1 },
	{ "from and to ANDed", ALLOW("a", "[{from: [{source: {namespaces: [\"b\"]}}], to: [{operation: {methods: [\"POST\"]}}]}]"), PB, "10.0.0.1", 80, GET("/"), false, NULL, -1 },
	{ "to entries ORed", ALLOW("a", "[{to: [{operation: {methods: [\"POST\"]}}, {operation: {paths: [\"/\"]}}]}]"), PB, "10.0.0.1", 80, GET("/"), true, "a", 0 },
	/* selectors and namespaces */
	{ "selector matches", AP("s", "{selector: {matchLabels: {app: web}}, action: DENY, rules: [{}]}"), PB, "10.0.0.1", 80, NULL, false, "s", 0 },
	{ "selector other workload", AP("s", "{selector: {matchLabels: {app: db}}, action: DENY, rules: [{}]}"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "selector needs every label", AP("s", "{selector: {matchLabels: {app: web, version: v2}}, action: DENY, rules: [{}]}"), PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "empty selector", AP("s", "{selector: {}, action: DENY, rules: [{}]}"), PB, "10.0.0.1", 80, NULL, false, "s", 0 },
	{ "other namespace", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: o, namespace: other}\nspec: {action: DENY, rules: [{}]}\n", PB, "10.0.0.1", 80, NULL, true, NULL, -1 },
	{ "meshlet apiVersion", "apiVersion: security.meshlet.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: m}\nspec: {action: DENY, rules: [{}]}\n", PB, "10.0.0.1", 80, NULL, false, "m", 0 },
};

static const char *const labels[] = { "app=web", "version=v1" };
static const struct policy_workload workload = { "prod", labels, 2 };

static void addr_of(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
}

static struct policy_set *load(const char *text)
{
	struct policy_set *s = NULL;
	struct policy_errors errs = { 0 };
	int rc = policy_load_text("case.yaml", text, strlen(text), &s, &errs);

	if (rc != 0)
		fail_msg("load failed: %s", errs.n > 0 ? errs.msgs[0] : "?");
	policy_errors_free(&errs);
	return s;
}

static void test_decisions(void **state)
{
	size_t n = sizeof(dcases) / sizeof(dcases[0]);

	(void)state;
	assert_true(n >= 60);
	for (size_t i = 0; i < n; i++) {
		const struct dcase *c = &dcases[i];
		struct policy_set *s = load(c->policy);
		struct sockaddr_storage src;
		struct http1_request *http = NULL;
		struct policy_decision d;

		addr_of(c->ip, 40000, &src);
		if (c->head != NULL) {
			struct http1_error why = { 0 };
			size_t scan = 0;
			long len = http1_head_end(c->head, strlen(c->head), 8192, &scan, &why);

			http = malloc(sizeof(*http));
			assert_non_null(http);
			if (len <= 0 || http1_parse_request(c->head, (size_t)len, http, &why) < 0)
				fail_msg("%s: bad head in the test: %s", c->name, why.reason);
		}
		struct policy_request req = {
			.principal = c->principal,
			.source = (struct sockaddr *)&src,
			.port = c->port,
			.http = http,
		};
		policy_decide(s, &workload, &req, &d);
		if (d.allow != c->allow ||
		    (c->by == NULL ? d.policy != NULL
		                   : d.policy == NULL || strcmp(d.policy->name, c->by) != 0) ||
		    d.rule != c->rule)
			fail_msg("%s: got %s by %s rule %d (%s); want %s by %s rule %d", c->name,
			         d.allow ? "allow" : "deny", d.policy ? d.policy->name : "none",
			         d.rule, d.why, c->allow ? "allow" : "deny",
			         c->by ? c->by : "none", c->rule);
		free(http);
		policy_set_unref(s);
	}
}

static void test_audit_reported(void **state)
{
	struct policy_set *s = load(AP("au", "{action: AUDIT, rules: [{to: [{operation: {ports: [\"81\"]}}]}, {}]}"));
	struct policy_request req = { .principal = PB, .port = 80 };
	struct policy_decision d;

	(void)state;
	policy_decide(s, &workload, &req, &d);
	assert_true(d.allow);
	assert_non_null(d.audit);
	assert_string_equal(d.audit->name, "au");
	assert_int_equal(d.audit_rule, 1);
	policy_set_unref(s);
}

struct bad {
	const char *name;
	const char *text;
	const char *want; /* a substring of the first error */
};

static const struct bad bads[] = {
	{ "unknown field", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - form: []\n", "case.yaml:6: spec.rules[0].form: unknown field" },
	{ "CUSTOM", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: CUSTOM\n", "case.yaml:5: spec.action: CUSTOM is not supported" },
	{ "provider", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  provider: {name: ext}\n", "case.yaml:5: spec.provider: not supported by meshlet" },
	{ "requestPrincipals", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n", "case.yaml:8: spec.rules[0].from[0].source.requestPrincipals: not supported" },
	{ "JWT claim condition", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when:\n    - key: request.auth.claims[iss]\n      values: [x]\n", "case.yaml:7: spec.rules[0].when[0].key: \"request.auth.claims[iss]\" is not supported" },
	{ "unknown key", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when:\n    - key: source.nope\n      values: [x]\n", "is not a known key" },
	{ "when without values", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when:\n    - key: source.ip\n", "needs values or notValues" },
	{ "bad CIDR", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/33\"]\n", "case.yaml:8: spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\" is not an IP address or CIDR block" },
	{ "port as a number", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - to:\n    - operation:\n        ports: [8080]\n", "must be a port number as a string" },
	{ "port out of range", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"70000\"]\n", "\"70000\" is not a port" },
	{ "wildcard in the middle", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - to:\n    - operation:\n        paths: [\"/a*b\"]\n", "'*' may only be the first or the last character" },
	{ "empty source", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - from:\n    - source: {}\n", "must set at least one field" },
	{ "no name", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {namespace: a}\nspec: {}\n", "case.yaml:3: metadata.name: is required" },
	{ "name read as a boolean", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no}\n", "case.yaml:3: metadata.name: must be a string (quote it: YAML reads this value as a boolean)" },
	{ "other kind", "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: a}\n", "\"RequestAuthentication\" is not a policy meshlet reads" },
	{ "other apiVersion", "apiVersion: security.istio.io/v2\nkind: AuthorizationPolicy\nmetadata: {name: a}\n", "case.yaml:1: apiVersion: must be" },
	{ "bad action", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: allow}\n", "must be ALLOW, DENY or AUDIT" },
	{ "label value not a string", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  selector:\n    matchLabels:\n      enabled: true\n", "case.yaml:7: spec.selector.matchLabels.enabled: must be a string" },
	{ "portLevelMtls without a selector", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  portLevelMtls:\n    8080: {mode: DISABLE}\n", "needs a selector" },
	{ "bad mTLS mode", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  mtls: {mode: strict}\n", "case.yaml:5: spec.mtls.mode: must be UNSET, STRICT, PERMISSIVE or DISABLE" },
	{ "YAML syntax", "apiVersion: [\n", "case.yaml:" },
	{ "empty list", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: DENY\n  rules:\n  - to:\n    - operation:\n        methods: [POST]\n        paths: []\n", "case.yaml:10: spec.rules[0].to[0].operation.paths: is an empty list, which Istio reads as absent" },
	{ "second document", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: b}\nspec:\n  bogus: 1\n", "case.yaml:9: spec.bogus: unknown field" },
};

static void test_load_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct policy_set *s = NULL;
		struct policy_errors errs = { 0 };
		int rc = policy_load_text("case.yaml", bads[i].text, strlen(bads[i].text), &s, &errs);

		if (rc >= 0 || s != NULL || errs.n == 0 || strstr(errs.msgs[0], bads[i].want) == NULL)
			fail_msg("%s: rc %d, first error \"%s\"; want \"%s\"", bads[i].name, rc,
			         errs.n > 0 ? errs.msgs[0] : "(none)", bads[i].want);
		policy_errors_free(&errs);
	}
}

/* Every error of a file is reported in one pass. */
static void test_all_errors(void **state)
{
	static const char text[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
	                           "metadata: {name: a}\nspec:\n  action: NOPE\n  rules:\n"
	                           "  - to:\n    - operation:\n        ports: [\"0\"]\n";
	struct policy_set *s = NULL;
	struct policy_errors errs = { 0 };

	(void)state;
	assert_true(policy_load_text("x.yaml", text, strlen(text), &s, &errs) < 0);
	assert_int_equal(errs.n, 2);
	assert_non_null(strstr(errs.msgs[0], "x.yaml:5: spec.action"));
	assert_non_null(strstr(errs.msgs[1], "x.yaml:9: spec.rules[0].to[0].operation.ports[0]"));
	policy_errors_free(&errs);
}

static void test_peer_authentication(void **state)
{
	static const char text[] =
	    DOC("PeerAuthentication", "ns-wide", "{mtls: {mode: STRICT}}")
	    DOC("PeerAuthentication", "web", "{selector: {matchLabels: {app: web}}, mtls: {mode: UNSET}, portLevelMtls: {8080: {mode: PERMISSIVE}, 9090: {mode: DISABLE}}}")
	    DOC("PeerAuthentication", "db", "{selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}");
	struct policy_set *s = load(text);
	const struct policy_meta *by;
	static const char *const db_labels[] = { "app=db" };
	static const char *const other_labels[] = { "app=other" };
	struct policy_workload db = { "prod", db_labels, 1 }, other = { "prod", other_labels, 1 },
	                       elsewhere = { "dev", labels, 2 };

	(void)state;
	assert_int_equal(policy_mtls_mode(s, &workload, 8080, &by), POLICY_MTLS_PERMISSIVE);
	assert_string_equal(by->name, "web");
	assert_int_equal(policy_mtls_mode(s, &workload, 9090, &by), POLICY_MTLS_DISABLE);
	/* UNSET at the workload inherits the namespace's mode. */
	assert_int_equal(policy_mtls_mode(s, &workload, 80, &by), POLICY_MTLS_STRICT);
	assert_string_equal(by->name, "ns-wide");
	assert_int_equal(policy_mtls_mode(s, &db, 80, &by), POLICY_MTLS_DISABLE);
	assert_int_equal(policy_mtls_mode(s, &other, 8080, &by), POLICY_MTLS_STRICT);
	assert_int_equal(policy_mtls_mode(s, &elsewhere, 8080, &by), POLICY_MTLS_UNSET);
	assert_null(by);
	assert_int_equal(policy_mtls_mode(NULL, &workload, 80, &by), POLICY_MTLS_UNSET);
	{
		/* An empty selector is the namespace's policy: a workload policy still wins. */
		static const char empty[] =
		    DOC("PeerAuthentication", "all", "{selector: {matchLabels: {}}, mtls: {mode: PERMISSIVE}}")
		    DOC("PeerAuthentication", "web", "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}");
		struct policy_set *e = load(empty);

		assert_int_equal(policy_mtls_mode(e, &workload, 80, &by), POLICY_MTLS_STRICT);
		assert_string_equal(by->name, "web");
		policy_set_unref(e);
	}
	policy_set_unref(s);
}

static void test_normalize(void **state)
{
	static const char *const cases[][2] = {
		{ "/a/b", "/a/b" },           { "/a/./b", "/a/b" },     { "/a/../b", "/b" },
		{ "/../a", "/a" },            { "/a/b/..", "/a/" },     { "/a/.", "/a/" },
		{ "/%61%62c", "/abc" },       { "/a%2fb", "/a%2Fb" },   { "/a%2e%2e/b", "/a../b" },
		{ "/%2e%2e/admin", "/admin" }, { "/a//b", "/a//b" },     { "/", "/" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_normalize_path(cases[i][0], strlen(cases[i][0]), out, sizeof(out));
		if (strcmp(out, cases[i][1]) != 0)
			fail_msg("%s: got %s, want %s", cases[i][0], out, cases[i][1]);
	}
}

static void test_metrics_and_carry(void **state)
{
	struct policy_set *a = load(DENY("d", "[{}]")), *b = load(DENY("d", "[{}]"));
	struct policy_request req = { .principal = PB, .port = 80 };
	struct policy_decision d;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	policy_decide(a, &workload, &req, &d);
	policy_decide(a, &workload, &req, &d);
	policy_carry_counts(b, a);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	policy_metrics(b, f);
	fclose(f);
	assert_non_null(strstr(text, "meshlet_proxy_policy_decisions_total{policy=\"prod/d\",decision=\"deny\"} 2\n"));
	free(text);
	policy_set_unref(a);
	policy_set_unref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decisions),       cmocka_unit_test(test_audit_reported),
		cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_all_errors),
		cmocka_unit_test(test_peer_authentication), cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_metrics_and_carry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
