/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/capture.c: init's flags and the iptables-restore text they make. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "proxy/capture.h"

#define MAX_ARGS 40

/* What the webhook passes, as in the init container it injects. */
#define WEBHOOK                                                                                    \
	"--proxy-uid", "1337", "--proxy-gid", "1337", "--inbound-port", "15006",                   \
	    "--outbound-port", "15001", "--include-inbound-ports", "*",                            \
	    "--include-outbound-cidrs", "*"

/* Parses "init" and args (NULL-terminated) into c; returns the code, e holds the message. */
static int parse(const char *const *args, struct capture_config *c, struct err *e)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0, rc;

	argv[argc++] = strdup("init");
	for (; *args != NULL && argc <= MAX_ARGS; args++)
		argv[argc++] = strdup(*args);
	argv[argc] = NULL;
	memset(e, 0, sizeof(*e));
	rc = capture_parse_args(argc, argv, c, e);
	/* getopt_long permutes argv, but every pointer is still there to free. */
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return rc;
}

#define PARSE(c, e, ...) parse((const char *const[]){ __VA_ARGS__, NULL }, (c), (e))

static void test_parse_webhook_flags(void **state)
{
	struct capture_config c;
	struct err e;

	(void)state;
	assert_int_equal(PARSE(&c, &e, WEBHOOK, "--exclude-inbound-ports", "15008,15021",
	                       "--exclude-outbound-ports", "5432", "--exclude-outbound-cidrs",
	                       "169.254.169.254/32"),
	                 0);
	assert_int_equal(c.proxy_uid, 1337);
	assert_int_equal(c.proxy_gid, 1337);
	assert_int_equal(c.inbound_port, 15006);
	assert_int_equal(c.outbound_port, 15001);
	assert_int_equal(c.tunnel_port, 15008);
	assert_int_equal(c.admin_port, 15021);
	assert_true(c.include_inbound_ports.all);
	assert_int_equal(c.include_inbound_ports.n, 0);
	assert_int_equal(c.exclude_inbound_ports.n, 2);
	assert_int_equal(c.exclude_outbound_ports.port[0], 5432);
	assert_true(c.include_outbound_cidrs.all);
	assert_int_equal(c.exclude_outbound_cidrs.n, 1);
	assert_int_equal(c.exclude_outbound_cidrs.cidr[0].prefix, 32);
	assert_int_equal(c.ipv6, CAPTURE_IPV6_AUTO);
	assert_false(c.dry_run || c.cleanup || c.help);

	assert_int_equal(PARSE(&c, &e, WEBHOOK, "--tunnel-port", "16008", "--admin-port", "16021",
	                       "--ipv6", "on", "--dry-run"),
	                 0);
	assert_int_equal(c.tunnel_port, 16008);
	assert_int_equal(c.admin_port, 16021);
	assert_int_equal(c.ipv6, CAPTURE_IPV6_ON);
	assert_true(c.dry_run);
	/* --cleanup needs nothing else; --help stops parsing. */
	assert_int_equal(PARSE(&c, &e, "--cleanup", "--ipv6", "off"), 0);
	assert_true(c.cleanup);
	assert_int_equal(c.ipv6, CAPTURE_IPV6_OFF);
	assert_int_equal(PARSE(&c, &e, "--help", "--frobnicate"), 0);
	assert_true(c.help);
}

struct bad_case {
	const char *args[MAX_ARGS];
	const char *msg;
};

static void test_parse_bad_flags(void **state)
{
	static const struct bad_case cases[] = {
		{ { WEBHOOK, "--frobnicate" }, "unknown option --frobnicate" },
		{ { WEBHOOK, "-x" }, "unknown option -x" },
		{ { WEBHOOK, "--tunnel-port" }, "option --tunnel-port needs a value" },
		{ { WEBHOOK, "extra" }, "unexpected argument \"extra\"" },
		{ { WEBHOOK, "--tunnel-port", "0" },
		  "--tunnel-port: \"0\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--admin-port", "70000" },
		  "--admin-port: \"70000\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--admin-port", "http" },
		  "--admin-port: \"http\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--admin-port", "080" },
		  "--admin-port: \"080\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--admin-port", "" },
		  "--admin-port: \"\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--admin-port", "15001" },
		  "--admin-port: \"15001\" is already the --outbound-port" },
		{ { WEBHOOK, "--exclude-inbound-ports", "80," },
		  "--exclude-inbound-ports \"80,\": empty item (separate items with single "
		  "commas)" },
		{ { WEBHOOK, "--exclude-inbound-ports", ",80" },
		  "--exclude-inbound-ports \",80\": empty item (separate items with single "
		  "commas)" },
		{ { WEBHOOK, "--exclude-inbound-ports", "80, ,90" },
		  "--exclude-inbound-ports \"80, ,90\": empty item (separate items with single "
		  "commas)" },
		{ { WEBHOOK, "--exclude-inbound-ports", "0" },
		  "--exclude-inbound-ports: \"0\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--exclude-outbound-ports", "443,70000" },
		  "--exclude-outbound-ports \"443,70000\": \"70000\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--exclude-outbound-ports", "443, http " },
		  "--exclude-outbound-ports \"443, http \": \"http\" is not a port (1 to 65535)" },
		{ { WEBHOOK, "--exclude-outbound-ports", "*" },
		  "--exclude-outbound-ports: \"*\" (everything) is allowed only in an include "
		  "list" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "*" },
		  "--exclude-outbound-cidrs: \"*\" (everything) is allowed only in an include "
		  "list" },
		{ { "--proxy-uid", "1337", "--proxy-gid", "1337", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "80,*",
		    "--include-outbound-cidrs", "*" },
		  "--include-inbound-ports \"80,*\": \"*\" must be the only item" },
		{ { "--proxy-uid", "1337", "--proxy-gid", "1337", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "*",
		    "--include-outbound-cidrs", "*,10.0.0.0/8" },
		  "--include-outbound-cidrs \"*,10.0.0.0/8\": \"*\" must be the only item" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "10.0.0.0/33" },
		  "--exclude-outbound-cidrs: \"10.0.0.0/33\" has a prefix length over 32" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "fd00::/129" },
		  "--exclude-outbound-cidrs: \"fd00::/129\" has a prefix length over 128" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "300.1.1.1/8" },
		  "--exclude-outbound-cidrs: \"300.1.1.1/8\" is not a CIDR (like 10.0.0.0/8 or "
		  "fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "10.0.0.0/8,junk" },
		  "--exclude-outbound-cidrs \"10.0.0.0/8,junk\": \"junk\" is not a CIDR (like "
		  "10.0.0.0/8 or fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "010.0.0.0/8" },
		  "--exclude-outbound-cidrs: \"010.0.0.0/8\" is not a CIDR (like 10.0.0.0/8 or "
		  "fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "10.0.0.0/08" },
		  "--exclude-outbound-cidrs: \"10.0.0.0/08\" is not a CIDR (like 10.0.0.0/8 or "
		  "fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "10.0.0.0/" },
		  "--exclude-outbound-cidrs: \"10.0.0.0/\" is not a CIDR (like 10.0.0.0/8 or "
		  "fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "fe80::1%eth0/64" },
		  "--exclude-outbound-cidrs: \"fe80::1%eth0/64\" is not a CIDR (like 10.0.0.0/8 or "
		  "fd00::/8)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "10.1.2.3" },
		  "--exclude-outbound-cidrs: \"10.1.2.3\" has no prefix length (like "
		  "10.1.2.3/32)" },
		{ { WEBHOOK, "--exclude-outbound-cidrs", "fd00::1" },
		  "--exclude-outbound-cidrs: \"fd00::1\" has no prefix length (like fd00::1/128)" },
		{ { "--proxy-uid", "0", "--proxy-gid", "1337", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "*",
		    "--include-outbound-cidrs", "*" },
		  "--proxy-uid: \"0\" is root: every such process would bypass the proxy" },
		{ { "--proxy-uid", "1337", "--proxy-gid", "0", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "*",
		    "--include-outbound-cidrs", "*" },
		  "--proxy-gid: \"0\" is the root group: every such process would bypass the "
		  "proxy" },
		{ { "--proxy-uid", "4294967295", "--proxy-gid", "1337", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "*",
		    "--include-outbound-cidrs", "*" },
		  "--proxy-uid: \"4294967295\" is not a number from 1 to 4294967294" },
		{ { "--proxy-uid", "proxy", "--proxy-gid", "1337", "--inbound-port", "15006",
		    "--outbound-port", "15001", "--include-inbound-ports", "*",
		    "--include-outbound-cidrs", "*" },
		  "--proxy-uid: \"proxy\" is not a number from 1 to 4294967294" },
		{ { WEBHOOK, "--ipv6", "yes" }, "--ipv6: \"yes\" is not auto, on or off" },
		{ { WEBHOOK, "--proxy-uid", "1337" }, "--proxy-uid is given more than once" },
		{ { WEBHOOK, "--dry-run", "--cleanup" },
		  "--dry-run and --cleanup cannot be combined: --dry-run prints the rules init "
		  "would write" },
		{ { "--proxy-gid", "1337", "--inbound-port", "15006", "--outbound-port", "15001",
		    "--include-inbound-ports", "*", "--include-outbound-cidrs", "*" },
		  "required flag missing: --proxy-uid" },
		{ { "--dry-run" },
		  "required flags missing: --proxy-uid, --proxy-gid, --inbound-port, "
		  "--outbound-port, --include-inbound-ports, --include-outbound-cidrs" },
		{ { "--cleanup", "--inbound-port", "15001" },
		  "--outbound-port: \"15001\" is already the --inbound-port" },
	};
	struct capture_config c;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].args, &c, &e), ERR_CAPTURE_FLAG);
		assert_string_equal(e.msg, cases[i].msg);
	}
}

static void test_parse_lists(void **state)
{
	static char many[(CAPTURE_PORTS_MAX + 1) * 6];
	struct capture_ports p;
	struct capture_cidrs c;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(capture_parse_ports("--x", " 80 ,\t8080,80 ", false, &p, &e), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.port[0], 80);
	assert_int_equal(p.port[1], 8080);
	assert_int_equal(capture_parse_ports("--x", "", false, &p, &e), 0);
	assert_int_equal(p.n, 0);
	assert_false(p.all);
	assert_int_equal(capture_parse_ports("--x", " * ", true, &p, &e), 0);
	assert_true(p.all);
	assert_int_equal(capture_parse_ports("--x", "1,65535", true, &p, &e), 0);
	assert_int_equal(p.port[1], 65535);
	/* One port over the limit. */
	for (size_t i = 0, pos = 0; i <= CAPTURE_PORTS_MAX; i++)
		pos +=
		    (size_t)snprintf(many + pos, sizeof(many) - pos, "%s%zu", i ? "," : "", i + 1);
	assert_int_equal(capture_parse_ports("--x", many, false, &p, &e), ERR_CAPTURE_FLAG);
	assert_string_equal(e.msg, "--x: more than 1024 ports");
	many[strlen(many) - strlen(",1025")] = '\0';
	assert_int_equal(capture_parse_ports("--x", many, false, &p, &e), 0);
	assert_int_equal(p.n, CAPTURE_PORTS_MAX);

	assert_int_equal(
	    capture_parse_cidrs("--x", "10.1.2.3/8, 10.0.0.0/8,fd00::1/8,0.0.0.0/0", false, &c, &e),
	    0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.cidr[0].family, AF_INET);
	assert_memory_equal(c.cidr[0].addr, "\x0a\x00\x00\x00", 4);
	assert_int_equal(c.cidr[1].family, AF_INET6);
	assert_int_equal(c.cidr[1].addr[0], 0xfd);
	assert_int_equal(c.cidr[1].addr[15], 0);
	assert_int_equal(c.cidr[2].prefix, 0);
}

#define DEFAULT_RULES                                                                              \
	"*nat\n"                                                                                   \
	":MESHLET_INBOUND - [0:0]\n"                                                               \
	":MESHLET_IN_REDIRECT - [0:0]\n"                                                           \
	":MESHLET_OUTPUT - [0:0]\n"                                                                \
	":MESHLET_REDIRECT - [0:0]\n"                                                              \
	"-A PREROUTING -p tcp -j MESHLET_INBOUND\n"                                                \
	"-A OUTPUT -p tcp -j MESHLET_OUTPUT\n"                                                     \
	"-A MESHLET_INBOUND -p tcp --dport 15008 -j RETURN\n"                                      \
	"-A MESHLET_INBOUND -p tcp --dport 15021 -j RETURN\n"                                      \
	"-A MESHLET_INBOUND -p tcp --dport 15006 -j RETURN\n"                                      \
	"-A MESHLET_INBOUND -p tcp --dport 15001 -j RETURN\n"                                      \
	"-A MESHLET_INBOUND -p tcp -j MESHLET_IN_REDIRECT\n"                                       \
	"-A MESHLET_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"                             \
	"-A MESHLET_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"                                  \
	"-A MESHLET_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"                                  \
	"-A MESHLET_OUTPUT -o lo -j RETURN\n"                                                      \
	"-A MESHLET_OUTPUT -j MESHLET_REDIRECT\n"                                                  \
	"-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"                                \
	"COMMIT\n"

/* The rules for family from the webhook's flags with args (pairs) replaced or added. */
static char *rules_for(int family, const char *const *args)
{
	const char *all[MAX_ARGS] = { WEBHOOK };
	size_t n = 12, i;
	struct capture_config c;
	struct err e;
	char *text;

	for (; args != NULL && *args != NULL; args += 2) {
		for (i = 0; i < n && strcmp(all[i], args[0]) != 0; i += 2)
			;
		if (i == n) {
			all[n++] = args[0];
			n++;
		}
		all[i + 1] = args[1];
	}
	all[n] = NULL;
	if (parse(all, &c, &e) != 0)
		fail_msg("%s", e.msg);
	text = capture_rules(&c, family, NULL, &e);
	assert_non_null(text);
	return text;
}

#define RULES(family, ...) rules_for((family), (const char *const[]){ __VA_ARGS__, NULL })

static void assert_has(const char *text, const char *line)
{
	if (strstr(text, line) == NULL)
		fail_msg("expected the line\n%sin\n%s", line, text);
}

static void assert_lacks(const char *text, const char *part)
{
	if (strstr(text, part) != NULL)
		fail_msg("did not expect \"%s\" in\n%s", part, text);
}

static void test_rules_default(void **state)
{
	char *v4 = rules_for(AF_INET, NULL), *v6 = rules_for(AF_INET6, NULL);

	(void)state;
	assert_string_equal(
	    v4, "# meshlet-proxy capture rules (IPv4): iptables-restore --noflush\n" DEFAULT_RULES);
	assert_string_equal(
	    v6,
	    "# meshlet-proxy capture rules (IPv6): ip6tables-restore --noflush\n" DEFAULT_RULES);
	free(v4);
	free(v6);
}

static void test_rules_inbound_ports(void **state)
{
	char *t;

	(void)state;
	t = RULES(AF_INET, "--include-inbound-ports", "8080,9090,15008", "--exclude-inbound-ports",
	          "9090,22,15021");
	assert_has(t, "-A MESHLET_INBOUND -p tcp --dport 15001 -j RETURN\n"
	              "-A MESHLET_INBOUND -p tcp --dport 9090 -j RETURN\n"
	              "-A MESHLET_INBOUND -p tcp --dport 22 -j RETURN\n"
	              "-A MESHLET_INBOUND -p tcp --dport 8080 -j MESHLET_IN_REDIRECT\n"
	              "-A MESHLET_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n");
	/* Exclusion wins; the proxy's own ports are never redirected, and listed once. */
	assert_lacks(t, "--dport 9090 -j MESHLET_IN_REDIRECT");
	assert_lacks(t, "--dport 15008 -j MESHLET_IN_REDIRECT");
	assert_lacks(t, "-A MESHLET_INBOUND -p tcp -j MESHLET_IN_REDIRECT");
	assert_null(strstr(strstr(t, "--dport 15021 ") + 1, "--dport 15021 "));
	free(t);
	t = RULES(AF_INET, "--include-inbound-ports", "");
	assert_lacks(t, "-j MESHLET_IN_REDIRECT");
	free(t);
	t = RULES(AF_INET, "--tunnel-port", "16008", "--admin-port", "16021");
	assert_has(t, "-A MESHLET_INBOUND -p tcp --dport 16008 -j RETURN\n"
	              "-A MESHLET_INBOUND -p tcp --dport 16021 -j RETURN\n");
	assert_lacks(t, "15008");
	free(t);
}

static void test_rules_outbound(void **state)
{
	char *t;

	(void)state;
	t = RULES(AF_INET, "--exclude-outbound-ports", "5432,6379", "--exclude-outbound-cidrs",
	          "10.96.0.1/12,fd00::/8,169.254.169.254/32");
	assert_has(t, "-A MESHLET_OUTPUT -o lo -j RETURN\n"
	              "-A MESHLET_OUTPUT -p tcp --dport 5432 -j RETURN\n"
	              "-A MESHLET_OUTPUT -p tcp --dport 6379 -j RETURN\n"
	              "-A MESHLET_OUTPUT -d 10.96.0.0/12 -j RETURN\n"
	              "-A MESHLET_OUTPUT -d 169.254.169.254/32 -j RETURN\n"
	              "-A MESHLET_OUTPUT -j MESHLET_REDIRECT\n");
	assert_lacks(t, "fd00");
	free(t);
	t = RULES(AF_INET6, "--exclude-outbound-cidrs", "10.96.0.0/12,fd00::1/8");
	assert_has(t, "-A MESHLET_OUTPUT -d fd00::/8 -j RETURN\n"
	              "-A MESHLET_OUTPUT -j MESHLET_REDIRECT\n");
	assert_lacks(t, "10.96");
	free(t);
	t = RULES(AF_INET, "--include-outbound-cidrs", "10.0.0.0/8,fd00::/8,192.168.1.0/24");
	assert_has(t, "-A MESHLET_OUTPUT -o lo -j RETURN\n"
	              "-A MESHLET_OUTPUT -d 10.0.0.0/8 -j MESHLET_REDIRECT\n"
	              "-A MESHLET_OUTPUT -d 192.168.1.0/24 -j MESHLET_REDIRECT\n"
	              "-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n");
	assert_lacks(t, "-A MESHLET_OUTPUT -j MESHLET_REDIRECT");
	free(t);
	/* An include list with no range of this family captures none of its traffic. */
	t = RULES(AF_INET6, "--include-outbound-cidrs", "10.0.0.0/8");
	assert_lacks(t, "-j MESHLET_REDIRECT");
	assert_has(t, "-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n");
	free(t);
	t = RULES(AF_INET6, "--include-outbound-cidrs", "2001:db8::/32");
	assert_has(t, "-A MESHLET_OUTPUT -d 2001:db8::/32 -j MESHLET_REDIRECT\n");
	free(t);
}

static void test_rules_ids_and_ports(void **state)
{
	struct capture_config c;
	struct err e;
	char *t;

	(void)state;
	assert_int_equal(PARSE(&c, &e, "--proxy-uid", "2000", "--proxy-gid", "3000",
	                       "--inbound-port", "16006", "--outbound-port", "16001",
	                       "--include-inbound-ports", "*", "--include-outbound-cidrs", "*"),
	                 0);
	t = capture_rules(&c, AF_INET6, NULL, &e);
	assert_non_null(t);
	assert_has(t, "-A MESHLET_INBOUND -p tcp --dport 16006 -j RETURN\n"
	              "-A MESHLET_INBOUND -p tcp --dport 16001 -j RETURN\n");
	assert_has(t, "-A MESHLET_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n"
	              "-A MESHLET_OUTPUT -m owner --uid-owner 2000 -j RETURN\n"
	              "-A MESHLET_OUTPUT -m owner --gid-owner 3000 -j RETURN\n");
	assert_has(t, "-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n");
	free(t);
}

/* What iptables-save prints after a run, with leftovers of another version and others' rules. */
static const char saved[] =
    "# Generated by iptables-save v1.8.9 (nf_tables) on Thu Jan  1 00:00:00 2026\n"
    "*filter\n"
    ":INPUT ACCEPT [0:0]\n"
    ":MESHLET_FILTER - [0:0]\n"
    "-A INPUT -j MESHLET_FILTER\n"
    "COMMIT\n"
    "*nat\n"
    ":PREROUTING ACCEPT [0:0]\n"
    ":INPUT ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n"
    ":MESHLET_INBOUND - [0:0]\n"
    ":MESHLET_OLD - [0:0]\n"
    ":MESHLET_OUTPUT - [0:0]\n"
    ":OTHER - [0:0]\n"
    "-A PREROUTING -p tcp -j MESHLET_INBOUND\n"
    "-A OUTPUT -p udp -m udp --dport 53 -j RETURN\n"
    "-A OUTPUT -p tcp -j MESHLET_OUTPUT\n"
    "-A OUTPUT -p tcp -j MESHLET_OUTPUT\n"
    "-A OTHER -g MESHLET_OLD\n"
    "-A MESHLET_INBOUND -p tcp -m tcp --dport 15008 -j RETURN\n"
    "-A MESHLET_OLD -j MESHLET_OUTPUT\n"
    "COMMIT\n"
    "# Completed on Thu Jan  1 00:00:00 2026\n";

static void test_rules_replace_what_is_there(void **state)
{
	struct capture_config c;
	struct err e;
	char *t;

	(void)state;
	assert_int_equal(PARSE(&c, &e, WEBHOOK), 0);
	t = capture_rules(&c, AF_INET, saved, &e);
	assert_non_null(t);
	assert_has(t, "*nat\n"
	              ":MESHLET_INBOUND - [0:0]\n"
	              ":MESHLET_IN_REDIRECT - [0:0]\n"
	              ":MESHLET_OUTPUT - [0:0]\n"
	              ":MESHLET_REDIRECT - [0:0]\n"
	              ":MESHLET_OLD - [0:0]\n"
	              "-D PREROUTING -p tcp -j MESHLET_INBOUND\n"
	              "-D OUTPUT -p tcp -j MESHLET_OUTPUT\n"
	              "-D OUTPUT -p tcp -j MESHLET_OUTPUT\n"
	              "-D OTHER -g MESHLET_OLD\n"
	              "-X MESHLET_OLD\n"
	              "-A PREROUTING -p tcp -j MESHLET_INBOUND\n"
	              "-A OUTPUT -p tcp -j MESHLET_OUTPUT\n"
	              "-A MESHLET_INBOUND -p tcp --dport 15008 -j RETURN\n");
	/* Only the nat table, and only jumps to our chains. */
	assert_lacks(t, "FILTER");
	assert_lacks(t, "udp");
	assert_lacks(t, "-D MESHLET_");
	free(t);
}

static void test_cleanup_rules(void **state)
{
	struct err e;
	char *t;

	(void)state;
	t = capture_cleanup_rules(saved, &e);
	assert_non_null(t);
	assert_string_equal(t, "*nat\n"
	                       ":MESHLET_INBOUND - [0:0]\n"
	                       ":MESHLET_OLD - [0:0]\n"
	                       ":MESHLET_OUTPUT - [0:0]\n"
	                       "-D PREROUTING -p tcp -j MESHLET_INBOUND\n"
	                       "-D OUTPUT -p tcp -j MESHLET_OUTPUT\n"
	                       "-D OUTPUT -p tcp -j MESHLET_OUTPUT\n"
	                       "-D OTHER -g MESHLET_OLD\n"
	                       "-X MESHLET_INBOUND\n"
	                       "-X MESHLET_OLD\n"
	                       "-X MESHLET_OUTPUT\n"
	                       "COMMIT\n");
	free(t);
	/* Nothing of ours: nothing to do. */
	t = capture_cleanup_rules("*nat\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -j RETURN\nCOMMIT\n",
	                          &e);
	assert_non_null(t);
	assert_string_equal(t, "");
	free(t);
	t = capture_cleanup_rules("", &e);
	assert_string_equal(t, "");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_webhook_flags),
		cmocka_unit_test(test_parse_bad_flags),
		cmocka_unit_test(test_parse_lists),
		cmocka_unit_test(test_rules_default),
		cmocka_unit_test(test_rules_inbound_ports),
		cmocka_unit_test(test_rules_outbound),
		cmocka_unit_test(test_rules_ids_and_ports),
		cmocka_unit_test(test_rules_replace_what_is_there),
		cmocka_unit_test(test_cleanup_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
