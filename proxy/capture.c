/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-proxy init: parse the capture flags, write the nat rules, run iptables-restore. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"

#define PROG "meshlet-proxy init"

/* Our chains, in the order they are declared. */
#define CHAIN_INBOUND     CAPTURE_CHAIN_PREFIX "INBOUND"
#define CHAIN_IN_REDIRECT CAPTURE_CHAIN_PREFIX "IN_REDIRECT"
#define CHAIN_OUTPUT      CAPTURE_CHAIN_PREFIX "OUTPUT"
#define CHAIN_REDIRECT    CAPTURE_CHAIN_PREFIX "REDIRECT"
static const char *const capture_chains[] = { CHAIN_INBOUND, CHAIN_IN_REDIRECT, CHAIN_OUTPUT,
	                                      CHAIN_REDIRECT, NULL };

const char capture_usage[] =
    "Usage: meshlet-proxy init --proxy-uid UID --proxy-gid GID --inbound-port PORT\n"
    "                          --outbound-port PORT --include-inbound-ports PORTS|*\n"
    "                          --include-outbound-cidrs CIDRS|* [OPTION]...\n"
    "       meshlet-proxy init --cleanup [--ipv6 auto|on|off]\n"
    "Capture the pod's TCP for the proxy: write the nat table's rules in one atomic\n"
    "iptables-restore per address family. Inbound TCP goes to the inbound port, outbound\n"
    "TCP to the outbound port; the proxy's own traffic, loopback and the proxy's ports\n"
    "are left alone. Run it in the pod's network namespace with NET_ADMIN. Running it\n"
    "again replaces the rules, never adding a second set.\n"
    "\n"
    "  --proxy-uid UID                 the proxy's user ID: its traffic is never captured\n"
    "  --proxy-gid GID                 the proxy's group ID: likewise\n"
    "  --inbound-port PORT             where captured inbound TCP goes (like 15006)\n"
    "  --outbound-port PORT            where captured outbound TCP goes (like 15001)\n"
    "  --tunnel-port PORT              peers' mTLS port, never captured (default 15008)\n"
    "  --admin-port PORT               health and metrics port, never captured\n"
    "                                  (default 15021)\n"
    "  --include-inbound-ports PORTS   inbound ports captured, or * for every port\n"
    "  --exclude-inbound-ports PORTS   inbound ports never captured\n"
    "  --exclude-outbound-ports PORTS  outbound destination ports never captured\n"
    "  --include-outbound-cidrs CIDRS  outbound destinations captured, or * for all\n"
    "  --exclude-outbound-cidrs CIDRS  outbound destinations never captured\n"
    "  --ipv6 auto|on|off              also write ip6tables rules; auto (the default)\n"
    "                                  does when the pod has a global or unique-local\n"
    "                                  IPv6 address\n"
    "  --dry-run                       print the iptables-restore input, change nothing\n"
    "  --cleanup                       remove every chain and jump init added\n"
    "  -h, --help                      show this help\n"
    "\n"
    "Lists are comma-separated, like 80,8080 or 10.0.0.0/8,fd00::/8; \"\" is empty.\n"
    "Exclusions win over inclusions. docs/proxy.md describes the rules.\n";

/* A growing string; after a failed allocation every append is a no-op. */
struct capture_buf {
	char *s;
	size_t len;
	size_t cap;
	bool failed;
};

__attribute__((format(printf, 2, 3))) static void capture_add(struct capture_buf *b,
                                                              const char *fmt, ...)
{
	va_list ap;
	size_t cap;
	char *s;
	int n;

	while (!b->failed) {
		va_start(ap, fmt);
		n = vsnprintf(b->s != NULL ? b->s + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
		} else if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		} else {
			for (cap = b->cap ? b->cap * 2 : 4096; cap - b->len <= (size_t)n; cap *= 2)
				;
			s = realloc(b->s, cap);
			if (s == NULL) {
				b->failed = true;
			} else {
				b->s = s;
				b->cap = cap;
			}
		}
	}
}

/* The buffer's string for the caller to free, or NULL with e set. */
static char *capture_buf_take(struct capture_buf *b, struct err *e)
{
	if (!b->failed && b->s == NULL)
		capture_add(b, "%s", "");
	if (b->failed) {
		free(b->s);
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	return b->s;
}

/* Parses a decimal number of 1 to 10 digits without a leading zero, at most max. */
static bool capture_number(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

static bool capture_port(const char *s, size_t len, uint16_t *out)
{
	uint64_t v;

	if (!capture_number(s, len, 65535, &v) || v == 0)
		return false;
	*out = (uint16_t)v;
	return true;
}

/*
 * A message about one item of a list: the value is quoted too when it has more in it. A
 * flag of "" is a caller that names the value itself: the item alone.
 */
static int capture_item_error(struct err *e, const char *flag, const char *s, const char *item,
                              size_t len, const char *problem)
{
	if (flag[0] == '\0')
		return err_set(e, ERR_CAPTURE_FLAG, "\"%.*s\" %s", (int)len, item, problem);
	if (strlen(s) == len && memcmp(s, item, len) == 0)
		return err_set(e, ERR_CAPTURE_FLAG, "%s: \"%.*s\" %s", flag, (int)len, item,
		               problem);
	return err_set(e, ERR_CAPTURE_FLAG, "%s \"%s\": \"%.*s\" %s", flag, s, (int)len, item,
	               problem);
}

/*
 * Splits s at commas and calls item() on each item, trimmed of spaces; checks what every
 * list shares: "" is empty, no item is empty, "*" stands alone and only where allowed.
 */
static int capture_split(const char *flag, const char *s, bool star_ok, bool *all,
                         int (*item)(const char *flag, const char *s, const char *it, size_t len,
                                     void *out, struct err *e),
                         void *out, struct err *e)
{
	const char *p = s, *end, *it;
	size_t len;
	int rc;

	*all = false;
	if (s[strspn(s, " \t")] == '\0')
		return 0;
	for (;;) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		for (it = p; it < end && (*it == ' ' || *it == '\t'); it++)
			;
		for (len = (size_t)(end - it);
		     len > 0 && (it[len - 1] == ' ' || it[len - 1] == '\t'); len--)
			;
		if (len == 0)
			return err_set(e, ERR_CAPTURE_FLAG,
			               "%s \"%s\": empty item (separate items with single commas)",
			               flag, s);
		if (len == 1 && *it == '*') {
			if (!star_ok)
				return capture_item_error(
				    e, flag, s, it, len,
				    "(everything) is allowed only in an include "
				    "list");
			if (p != s || *end != '\0')
				return capture_item_error(e, flag, s, it, len,
				                          "must be the only item");
			*all = true;
		} else {
			rc = item(flag, s, it, len, out, e);
			if (rc < 0)
				return rc;
		}
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

static int capture_port_item(const char *flag, const char *s, const char *it, size_t len, void *out,
                             struct err *e)
{
	struct capture_ports *l = out;
	uint16_t port;

	if (!capture_port(it, len, &port))
		return capture_item_error(e, flag, s, it, len, "is not a port (1 to 65535)");
	for (size_t i = 0; i < l->n; i++)
		if (l->port[i] == port)
			return 0;
	if (l->n == CAPTURE_PORTS_MAX)
		return err_set(e, ERR_CAPTURE_FLAG, "%s: more than %d ports", flag,
		               CAPTURE_PORTS_MAX);
	l->port[l->n++] = port;
	return 0;
}

int capture_parse_ports(const char *flag, const char *s, bool star_ok, struct capture_ports *out,
                        struct err *e)
{
	memset(out, 0, sizeof(*out));
	return capture_split(flag, s, star_ok, &out->all, capture_port_item, out, e);
}

static int capture_cidr_item(const char *flag, const char *s, const char *it, size_t len, void *out,
                             struct err *e)
{
	struct capture_cidrs *l = out;
	struct capture_cidr c = { 0 };
	char addr[INET6_ADDRSTRLEN + 8], problem[96];
	const char *slash = memchr(it, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - it) : len;
	uint64_t prefix;
	unsigned max;

	if (alen >= sizeof(addr))
		goto bad;
	memcpy(addr, it, alen);
	addr[alen] = '\0';
	c.family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	max = c.family == AF_INET6 ? 128 : 32;
	if (inet_pton(c.family, addr, c.addr) != 1)
		goto bad;
	if (slash == NULL) {
		snprintf(problem, sizeof(problem), "has no prefix length (like %s/%u)", addr, max);
		return capture_item_error(e, flag, s, it, len, problem);
	}
	if (!capture_number(slash + 1, len - alen - 1, UINT32_MAX, &prefix))
		goto bad;
	if (prefix > max) {
		snprintf(problem, sizeof(problem), "has a prefix length over %u", max);
		return capture_item_error(e, flag, s, it, len, problem);
	}
	c.prefix = (unsigned)prefix;
	/* Clear the host bits, as iptables would, so that the rule text is canonical. */
	for (unsigned bit = c.prefix; bit < max; bit++)
		c.addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	for (size_t i = 0; i < l->n; i++)
		if (memcmp(&l->cidr[i], &c, sizeof(c)) == 0)
			return 0;
	if (l->n == CAPTURE_CIDRS_MAX)
		return err_set(e, ERR_CAPTURE_FLAG, "%s%smore than %d ranges", flag,
		               flag[0] != '\0' ? ": " : "", CAPTURE_CIDRS_MAX);
	l->cidr[l->n++] = c;
	return 0;
bad:
	return capture_item_error(e, flag, s, it, len,
	                          "is not a CIDR (like 10.0.0.0/8 or fd00::/8)");
}

int capture_parse_cidrs(const char *flag, const char *s, bool star_ok, struct capture_cidrs *out,
                        struct err *e)
{
	memset(out, 0, sizeof(*out));
	return capture_split(flag, s, star_ok, &out->all, capture_cidr_item, out, e);
}

enum {
	OPT_PROXY_UID,
	OPT_PROXY_GID,
	OPT_INBOUND_PORT,
	OPT_OUTBOUND_PORT,
	OPT_TUNNEL_PORT,
	OPT_ADMIN_PORT,
	OPT_INCLUDE_INBOUND_PORTS,
	OPT_EXCLUDE_INBOUND_PORTS,
	OPT_EXCLUDE_OUTBOUND_PORTS,
	OPT_INCLUDE_OUTBOUND_CIDRS,
	OPT_EXCLUDE_OUTBOUND_CIDRS,
	OPT_IPV6,
	OPT_DRY_RUN,
	OPT_CLEANUP,
	OPT_COUNT_
};

/* Indexed by OPT_*, then --help. */
static const struct option capture_options[] = {
	{ "proxy-uid", required_argument, NULL, OPT_PROXY_UID },
	{ "proxy-gid", required_argument, NULL, OPT_PROXY_GID },
	{ "inbound-port", required_argument, NULL, OPT_INBOUND_PORT },
	{ "outbound-port", required_argument, NULL, OPT_OUTBOUND_PORT },
	{ "tunnel-port", required_argument, NULL, OPT_TUNNEL_PORT },
	{ "admin-port", required_argument, NULL, OPT_ADMIN_PORT },
	{ "include-inbound-ports", required_argument, NULL, OPT_INCLUDE_INBOUND_PORTS },
	{ "exclude-inbound-ports", required_argument, NULL, OPT_EXCLUDE_INBOUND_PORTS },
	{ "exclude-outbound-ports", required_argument, NULL, OPT_EXCLUDE_OUTBOUND_PORTS },
	{ "include-outbound-cidrs", required_argument, NULL, OPT_INCLUDE_OUTBOUND_CIDRS },
	{ "exclude-outbound-cidrs", required_argument, NULL, OPT_EXCLUDE_OUTBOUND_CIDRS },
	{ "ipv6", required_argument, NULL, OPT_IPV6 },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "cleanup", no_argument, NULL, OPT_CLEANUP },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The values of --ipv6, in enum capture_ipv6 order. */
static const char *const capture_ipv6_names[] = { "auto", "on", "off", NULL };

/* What must be given unless --cleanup: what the webhook always passes. */
static const unsigned capture_required =
    1u << OPT_PROXY_UID | 1u << OPT_PROXY_GID | 1u << OPT_INBOUND_PORT | 1u << OPT_OUTBOUND_PORT |
    1u << OPT_INCLUDE_INBOUND_PORTS | 1u << OPT_INCLUDE_OUTBOUND_CIDRS;

static int capture_id(const char *flag, const char *s, const char *root, uint32_t *out,
                      struct err *e)
{
	uint64_t v;

	if (!capture_number(s, strlen(s), 4294967294u, &v))
		return err_set(e, ERR_CAPTURE_FLAG,
		               "%s: \"%s\" is not a number from 1 to 4294967294", flag, s);
	if (v == 0)
		return err_set(e, ERR_CAPTURE_FLAG,
		               "%s: \"%s\" is %s: every such process would bypass the proxy", flag,
		               s, root);
	*out = (uint32_t)v;
	return 0;
}

/* Parses the value of one flag into c. */
static int capture_set(struct capture_config *c, int opt, const char *v, struct err *e)
{
	char flag[40];
	uint16_t *port[] = {
		[OPT_INBOUND_PORT] = &c->inbound_port,
		[OPT_OUTBOUND_PORT] = &c->outbound_port,
		[OPT_TUNNEL_PORT] = &c->tunnel_port,
		[OPT_ADMIN_PORT] = &c->admin_port,
	};

	snprintf(flag, sizeof(flag), "--%s", capture_options[opt].name);
	switch (opt) {
	case OPT_PROXY_UID:
		return capture_id(flag, v, "root", &c->proxy_uid, e);
	case OPT_PROXY_GID:
		return capture_id(flag, v, "the root group", &c->proxy_gid, e);
	case OPT_INBOUND_PORT:
	case OPT_OUTBOUND_PORT:
	case OPT_TUNNEL_PORT:
	case OPT_ADMIN_PORT:
		if (!capture_port(v, strlen(v), port[opt]))
			return err_set(e, ERR_CAPTURE_FLAG, "%s: \"%s\" is not a port (1 to 65535)",
			               flag, v);
		return 0;
	case OPT_INCLUDE_INBOUND_PORTS:
		return capture_parse_ports(flag, v, true, &c->include_inbound_ports, e);
	case OPT_EXCLUDE_INBOUND_PORTS:
		return capture_parse_ports(flag, v, false, &c->exclude_inbound_ports, e);
	case OPT_EXCLUDE_OUTBOUND_PORTS:
		return capture_parse_ports(flag, v, false, &c->exclude_outbound_ports, e);
	case OPT_INCLUDE_OUTBOUND_CIDRS:
		return capture_parse_cidrs(flag, v, true, &c->include_outbound_cidrs, e);
	case OPT_EXCLUDE_OUTBOUND_CIDRS:
		return capture_parse_cidrs(flag, v, false, &c->exclude_outbound_cidrs, e);
	case OPT_IPV6:
		for (int i = 0; capture_ipv6_names[i] != NULL; i++)
			if (strcmp(v, capture_ipv6_names[i]) == 0) {
				c->ipv6 = (enum capture_ipv6)i;
				return 0;
			}
		return err_set(e, ERR_CAPTURE_FLAG, "%s: \"%s\" is not auto, on or off", flag, v);
	case OPT_DRY_RUN:
		c->dry_run = true;
		return 0;
	case OPT_CLEANUP:
		c->cleanup = true;
		return 0;
	}
	return err_set(e, ERR_INTERNAL, "unhandled option %d", opt);
}

/* The rules that span flags: the four ports differ, required flags are there. */
static int capture_check(const struct capture_config *c, const bool *seen, struct err *e)
{
	static const int order[] = { OPT_INBOUND_PORT, OPT_OUTBOUND_PORT, OPT_TUNNEL_PORT,
		                     OPT_ADMIN_PORT };
	const uint16_t ports[] = { c->inbound_port, c->outbound_port, c->tunnel_port,
		                   c->admin_port };
	char missing[256] = "";
	size_t nmissing = 0, len = 0;

	if (c->dry_run && c->cleanup)
		return err_set(e, ERR_CAPTURE_FLAG,
		               "--dry-run and --cleanup cannot be combined: --dry-run prints the "
		               "rules init would write");
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < i; j++)
			if (ports[i] == ports[j])
				return err_set(e, ERR_CAPTURE_FLAG,
				               "--%s: \"%u\" is already the --%s",
				               capture_options[order[i]].name, ports[i],
				               capture_options[order[j]].name);
	if (c->cleanup)
		return 0;
	for (int i = 0; i < OPT_COUNT_; i++)
		if ((capture_required & 1u << i) && !seen[i])
			len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s--%s",
			                        nmissing++ ? ", " : "", capture_options[i].name);
	if (nmissing > 0)
		return err_set(e, ERR_CAPTURE_FLAG, "required flag%s missing: %s",
		               nmissing > 1 ? "s" : "", missing);
	return 0;
}

int capture_parse_args(int argc, char **argv, struct capture_config *c, struct err *e)
{
	bool seen[OPT_COUNT_] = { false };
	int opt, rc;

	memset(c, 0, sizeof(*c));
	c->proxy_uid = 1337;
	c->proxy_gid = 1337;
	c->inbound_port = 15006;
	c->outbound_port = 15001;
	c->tunnel_port = 15008;
	c->admin_port = 15021;
	c->include_inbound_ports.all = true;
	c->include_outbound_cidrs.all = true;
	c->ipv6 = CAPTURE_IPV6_AUTO;
	/* 0, not 1: glibc then forgets a half-parsed "-xy" of an earlier call too. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", capture_options, NULL)) != -1) {
		if (opt == 'h') {
			c->help = true;
			return 0;
		}
		if (opt == ':')
			return err_set(e, ERR_CAPTURE_FLAG, "option %s needs a value",
			               argv[optind - 1]);
		if (opt < 0 || opt >= OPT_COUNT_)
			return err_set(e, ERR_CAPTURE_FLAG, "unknown option %s", argv[optind - 1]);
		if (seen[opt])
			return err_set(e, ERR_CAPTURE_FLAG, "--%s is given more than once",
			               capture_options[opt].name);
		seen[opt] = true;
		rc = capture_set(c, opt, optarg, e);
		if (rc < 0)
			return rc;
	}
	if (optind < argc)
		return err_set(e, ERR_CAPTURE_FLAG, "unexpected argument \"%s\"", argv[optind]);
	return capture_check(c, seen, e);
}

/* What to take from iptables-save's nat table. */
enum capture_saved_what {
	SAVED_FLUSH,         /* ":CHAIN - [0:0]" for each of our chains, which flushes it */
	SAVED_DELETE_JUMPS,  /* "-D ..." for each jump to ours from a chain not ours */
	SAVED_DELETE_CHAINS, /* "-X CHAIN" for each of our chains */
};

static bool capture_ours(const char *name, size_t len)
{
	return len >= strlen(CAPTURE_CHAIN_PREFIX) &&
	       memcmp(name, CAPTURE_CHAIN_PREFIX, strlen(CAPTURE_CHAIN_PREFIX)) == 0;
}

/* Is name (len bytes) one of keep? keep may be NULL. */
static bool capture_kept(const char *name, size_t len, const char *const *keep)
{
	for (; keep != NULL && *keep != NULL; keep++)
		if (strlen(*keep) == len && memcmp(*keep, name, len) == 0)
			return true;
	return false;
}

/* Does this rule jump or go to one of our chains? */
static bool capture_jumps_to_ours(const char *line, size_t len)
{
	static const char *const targets[] = { " -j " CAPTURE_CHAIN_PREFIX,
		                               " -g " CAPTURE_CHAIN_PREFIX };

	for (size_t i = 0; i < 2; i++)
		if (memmem(line, len, targets[i], strlen(targets[i])) != NULL)
			return true;
	return false;
}

/*
 * Appends to b (when not NULL) what the lines of saved's nat table call for, leaving out
 * the chains in keep; returns how many lines that is.
 */
static size_t capture_saved(struct capture_buf *b, const char *saved, enum capture_saved_what what,
                            const char *const *keep)
{
	const char *line = saved, *end, *name;
	bool nat = false;
	size_t len, nlen, n = 0;

	for (; line != NULL && *line != '\0'; line = *end != '\0' ? end + 1 : end) {
		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		len = (size_t)(end - line);
		if (line[0] == '*')
			nat = len == 4 && memcmp(line, "*nat", 4) == 0;
		if (!nat)
			continue;
		if (line[0] == ':' && what != SAVED_DELETE_JUMPS) {
			name = line + 1;
			nlen = strcspn(name, " \n");
			if (!capture_ours(name, nlen) || capture_kept(name, nlen, keep))
				continue;
			n++;
			if (b != NULL && what == SAVED_FLUSH)
				capture_add(b, ":%.*s - [0:0]\n", (int)nlen, name);
			else if (b != NULL)
				capture_add(b, "-X %.*s\n", (int)nlen, name);
		} else if (what == SAVED_DELETE_JUMPS && len > 3 && memcmp(line, "-A ", 3) == 0) {
			name = line + 3;
			nlen = strcspn(name, " \n");
			if (capture_ours(name, nlen) || !capture_jumps_to_ours(line, len))
				continue;
			n++;
			if (b != NULL)
				capture_add(b, "-D %.*s\n", (int)(len - 3), line + 3);
		}
	}
	return n;
}

static bool capture_has_port(const uint16_t *ports, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* Writes "-d ADDR/PREFIX" for the ranges of family in l, each followed by target. */
static void capture_cidr_rules(struct capture_buf *b, const struct capture_cidrs *l, int family,
                               const char *target)
{
	char addr[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < l->n; i++) {
		if (l->cidr[i].family != family)
			continue;
		inet_ntop(family, l->cidr[i].addr, addr, sizeof(addr));
		capture_add(b, "-A " CHAIN_OUTPUT " -d %s/%u -j %s\n", addr, l->cidr[i].prefix,
		            target);
	}
}

char *capture_rules(const struct capture_config *c, int family, const char *saved, struct err *e)
{
	struct capture_buf b = { 0 };
	uint16_t skip[CAPTURE_PORTS_MAX + 4];
	size_t nskip = 0;

	/* The proxy's own ports first, then the excluded ones, each once. */
	skip[nskip++] = c->tunnel_port;
	skip[nskip++] = c->admin_port;
	skip[nskip++] = c->inbound_port;
	skip[nskip++] = c->outbound_port;
	for (size_t i = 0; i < c->exclude_inbound_ports.n; i++)
		if (!capture_has_port(skip, nskip, c->exclude_inbound_ports.port[i]))
			skip[nskip++] = c->exclude_inbound_ports.port[i];

	capture_add(&b, "# meshlet-proxy capture rules (%s): %s --noflush\n*nat\n",
	            family == AF_INET6 ? "IPv6" : "IPv4",
	            family == AF_INET6 ? "ip6tables-restore" : "iptables-restore");
	for (size_t i = 0; capture_chains[i] != NULL; i++)
		capture_add(&b, ":%s - [0:0]\n", capture_chains[i]);
	/* A run before this one left its jumps, and maybe chains of another version. */
	capture_saved(&b, saved, SAVED_FLUSH, capture_chains);
	capture_saved(&b, saved, SAVED_DELETE_JUMPS, NULL);
	capture_saved(&b, saved, SAVED_DELETE_CHAINS, capture_chains);
	capture_add(&b, "-A PREROUTING -p tcp -j " CHAIN_INBOUND "\n");
	capture_add(&b, "-A OUTPUT -p tcp -j " CHAIN_OUTPUT "\n");

	for (size_t i = 0; i < nskip; i++)
		capture_add(&b, "-A " CHAIN_INBOUND " -p tcp --dport %u -j RETURN\n", skip[i]);
	if (c->include_inbound_ports.all)
		capture_add(&b, "-A " CHAIN_INBOUND " -p tcp -j " CHAIN_IN_REDIRECT "\n");
	for (size_t i = 0; i < c->include_inbound_ports.n; i++)
		if (!capture_has_port(skip, nskip, c->include_inbound_ports.port[i]))
			capture_add(
			    &b, "-A " CHAIN_INBOUND " -p tcp --dport %u -j " CHAIN_IN_REDIRECT "\n",
			    c->include_inbound_ports.port[i]);
	capture_add(&b, "-A " CHAIN_IN_REDIRECT " -p tcp -j REDIRECT --to-ports %u\n",
	            c->inbound_port);

	capture_add(&b, "-A " CHAIN_OUTPUT " -m owner --uid-owner %u -j RETURN\n", c->proxy_uid);
	capture_add(&b, "-A " CHAIN_OUTPUT " -m owner --gid-owner %u -j RETURN\n", c->proxy_gid);
	/* Loopback, the pod's own addresses included: the traffic never leaves the pod. */
	capture_add(&b, "-A " CHAIN_OUTPUT " -o lo -j RETURN\n");
	for (size_t i = 0; i < c->exclude_outbound_ports.n; i++)
		capture_add(&b, "-A " CHAIN_OUTPUT " -p tcp --dport %u -j RETURN\n",
		            c->exclude_outbound_ports.port[i]);
	capture_cidr_rules(&b, &c->exclude_outbound_cidrs, family, "RETURN");
	if (c->include_outbound_cidrs.all)
		capture_add(&b, "-A " CHAIN_OUTPUT " -j " CHAIN_REDIRECT "\n");
	capture_cidr_rules(&b, &c->include_outbound_cidrs, family, CHAIN_REDIRECT);
	capture_add(&b, "-A " CHAIN_REDIRECT " -p tcp -j REDIRECT --to-ports %u\n",
	            c->outbound_port);
	capture_add(&b, "COMMIT\n");
	return capture_buf_take(&b, e);
}

char *capture_cleanup_rules(const char *saved, struct err *e)
{
	struct capture_buf b = { 0 };

	if (capture_saved(NULL, saved, SAVED_FLUSH, NULL) +
	        capture_saved(NULL, saved, SAVED_DELETE_JUMPS, NULL) >
	    0) {
		capture_add(&b, "*nat\n");
		capture_saved(&b, saved, SAVED_FLUSH, NULL);
		capture_saved(&b, saved, SAVED_DELETE_JUMPS, NULL);
		capture_saved(&b, saved, SAVED_DELETE_CHAINS, NULL);
		capture_add(&b, "COMMIT\n");
	}
	return capture_buf_take(&b, e);
}

/* An address family's tools. */
struct capture_family {
	int family;
	const char *name;
	char *save[4];    /* argv of iptables-save for its nat table */
	char *restore[3]; /* argv of iptables-restore --noflush */
};

static const struct capture_family capture_v4 = { AF_INET,
	                                          "IPv4",
	                                          { "iptables-save", "-t", "nat", NULL },
	                                          { "iptables-restore", "--noflush", NULL } };
static const struct capture_family capture_v6 = { AF_INET6,
	                                          "IPv6",
	                                          { "ip6tables-save", "-t", "nat", NULL },
	                                          { "ip6tables-restore", "--noflush", NULL } };

/* An anonymous file holding data, read from its start. Returns the fd, or -1 and errno. */
static int capture_memfd(const char *data)
{
	size_t len = data != NULL ? strlen(data) : 0, done = 0;
	int fd = memfd_create("meshlet-capture", MFD_CLOEXEC), saved_errno;
	ssize_t n;

	while (fd >= 0 && done < len) {
		n = write(fd, data + done, len - done);
		if (n < 0 && errno != EINTR)
			goto fail;
		done += n > 0 ? (size_t)n : 0;
	}
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0)
		goto fail;
	return fd;
fail:
	saved_errno = errno;
	close(fd);
	errno = saved_errno;
	return -1;
}

/* The whole content of fd as a string, or NULL. */
static char *capture_slurp(int fd)
{
	struct stat st;
	size_t done = 0;
	ssize_t n;
	char *s;

	if (fstat(fd, &st) < 0 || (s = malloc((size_t)st.st_size + 1)) == NULL)
		return NULL;
	while (done < (size_t)st.st_size) {
		n = pread(fd, s + done, (size_t)st.st_size - done, (off_t)done);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		done += n > 0 ? (size_t)n : 0;
	}
	s[done] = '\0';
	return s;
}

/* Says why argv, which ran, failed: its status and its words, and what it lacked. */
static void capture_report(char *const argv[], int status, const char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	fprintf(stderr, PROG ": %s %s%s%s failed with exit status %d%s%.*s\n", argv[0], argv[1],
	        argv[2] != NULL ? " " : "", argv[2] != NULL ? argv[2] : "", status,
	        len > 0 ? ": " : "", (int)len, msg);
	if (strstr(msg, "Permission denied") != NULL || strstr(msg, "must be root") != NULL ||
	    strstr(msg, "Operation not permitted") != NULL)
		fprintf(stderr,
		        PROG ": changing iptables rules needs the NET_ADMIN capability: run "
		             "init as root, or with NET_ADMIN and NET_RAW added to its "
		             "securityContext\n");
}

/*
 * Runs argv (fork and exec, no shell) with input on its standard input and, when out is
 * not NULL, hands over its standard output. Input and output are anonymous files in
 * memory, so no pipe can fill up and block either side. argv[0] is looked up in PATH,
 * then /usr/sbin and /sbin (where Debian puts iptables, outside a non-root PATH).
 * Returns 0, or -1 after saying why (unless quiet) when it cannot run or fails.
 */
static int capture_run(char *const argv[], const char *input, bool quiet, char **out)
{
	char usr_sbin[64], sbin[64], *text = NULL, *errors = NULL;
	int in = -1, outfd = -1, errfd = -1, report[2] = { -1, -1 };
	int rc = -1, child_errno = 0, status;
	ssize_t n;
	pid_t pid;

	snprintf(usr_sbin, sizeof(usr_sbin), "/usr/sbin/%s", argv[0]);
	snprintf(sbin, sizeof(sbin), "/sbin/%s", argv[0]);
	if ((in = capture_memfd(input)) < 0 || (outfd = capture_memfd(NULL)) < 0 ||
	    (errfd = capture_memfd(NULL)) < 0 || pipe2(report, O_CLOEXEC) < 0 ||
	    (pid = fork()) < 0) {
		child_errno = errno;
		goto cannot;
	}
	if (pid == 0) {
		/* The child: only async-signal-safe calls from here on. */
		if (dup2(in, 0) >= 0 && dup2(outfd, 1) >= 0 && dup2(errfd, 2) >= 0) {
			execvp(argv[0], argv);
			if (errno == ENOENT)
				execv(usr_sbin, argv);
			if (errno == ENOENT)
				execv(sbin, argv);
		}
		child_errno = errno;
		n = write(report[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	close(report[1]);
	report[1] = -1;
	/* The report pipe closes on a successful exec, or brings the child's errno. */
	do
		n = read(report[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			child_errno = errno;
			goto cannot;
		}
	if (n == (ssize_t)sizeof(child_errno))
		goto cannot;
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if ((text = capture_slurp(outfd)) == NULL || (errors = capture_slurp(errfd)) == NULL) {
		child_errno = ENOMEM;
		goto cannot;
	}
	if (status != 0) {
		if (!quiet)
			capture_report(argv, status, errors);
		goto out;
	}
	if (out != NULL) {
		*out = text;
		text = NULL;
	}
	rc = 0;
	goto out;
cannot:
	if (quiet)
		goto out;
	if (child_errno == ENOENT)
		fprintf(stderr,
		        PROG ": %s is not installed (looked in PATH, /usr/sbin and /sbin)\n",
		        argv[0]);
	else
		fprintf(stderr, PROG ": cannot run %s: %s\n", argv[0], strerror(child_errno));
out:
	free(text);
	free(errors);
	for (int i = 0, fds[] = { in, outfd, errfd, report[0], report[1] }; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

/*
 * Finds an IPv6 address that reaches beyond the pod: not loopback, link-local, multicast
 * or unspecified (so global, or unique-local fc00::/7). Writes it and its interface to
 * why. Returns 1 when there is one, 0 when not, -1 when the addresses cannot be read.
 */
static int capture_routable_ipv6(char *why, size_t size)
{
	struct ifaddrs *all, *i;
	const struct in6_addr *a;
	char addr[INET6_ADDRSTRLEN];
	int found = 0;

	if (getifaddrs(&all) < 0)
		return -1;
	for (i = all; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET6)
			continue;
		a = &((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
		    IN6_IS_ADDR_MULTICAST(a) || IN6_IS_ADDR_UNSPECIFIED(a))
			continue;
		inet_ntop(AF_INET6, a, addr, sizeof(addr));
		snprintf(why, size, "%s on %s", addr, i->ifa_name);
		found = 1;
	}
	freeifaddrs(all);
	return found;
}

static int capture_init(const struct capture_config *c)
{
	const struct capture_family *fams[2] = { &capture_v4, NULL };
	char *saved[2] = { NULL, NULL }, *text[2] = { NULL, NULL };
	char why[INET6_ADDRSTRLEN + IF_NAMESIZE + 8] = "";
	FILE *notes = c->dry_run ? stderr : stdout;
	struct err e = { 0 };
	int status = 1, v6 = c->ipv6 == CAPTURE_IPV6_ON;

	if (c->ipv6 == CAPTURE_IPV6_AUTO) {
		v6 = capture_routable_ipv6(why, sizeof(why));
		if (v6 < 0) {
			fprintf(stderr, PROG ": cannot list the pod's addresses: %s\n",
			        strerror(errno));
			goto out;
		}
	}
	if (v6)
		fams[1] = &capture_v6;
	/* Read both families before changing either: a missing privilege shows at once. */
	for (int i = 0; i < 2 && fams[i] != NULL && !c->dry_run; i++)
		if (capture_run(fams[i]->save, NULL, false, &saved[i]) < 0)
			goto out;
	for (int i = 0; i < 2 && fams[i] != NULL; i++) {
		text[i] = capture_rules(c, fams[i]->family, saved[i], &e);
		if (text[i] == NULL) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
		if (c->dry_run)
			fputs(text[i], stdout);
		else if (capture_run(fams[i]->restore, text[i], false, NULL) < 0)
			goto out;
		else
			printf(PROG ": %s: capture rules written\n", fams[i]->name);
	}
	if (c->ipv6 == CAPTURE_IPV6_AUTO && v6)
		fprintf(notes, PROG ": IPv6: the pod has %s\n", why);
	else if (!v6)
		fprintf(notes, PROG ": IPv6: %s\n",
		        c->ipv6 == CAPTURE_IPV6_OFF
		            ? "not captured (--ipv6 off)"
		            : "not captured: the pod has no global or unique-local IPv6 address "
		              "(--ipv6 on captures it anyway)");
	status = 0;
out:
	for (int i = 0; i < 2; i++) {
		free(saved[i]);
		free(text[i]);
	}
	return status;
}

static int capture_cleanup(const struct capture_config *c)
{
	const struct capture_family *fams[2] = { &capture_v4, &capture_v6 };
	struct err e = { 0 };
	char *saved = NULL, *text = NULL;
	int status = 1;
	bool quiet;

	for (int i = 0; i < 2; i++) {
		if (i == 1 && c->ipv6 == CAPTURE_IPV6_OFF)
			break;
		/* Under auto, a kernel without IPv6 nat has no rules of ours to remove. */
		quiet = i == 1 && c->ipv6 == CAPTURE_IPV6_AUTO;
		if (capture_run(fams[i]->save, NULL, quiet, &saved) < 0) {
			if (!quiet)
				goto out;
			printf(PROG ": IPv6: ip6tables is not usable here; nothing to remove\n");
			break;
		}
		if ((text = capture_cleanup_rules(saved, &e)) == NULL) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
		if (text[0] == '\0')
			printf(PROG ": %s: nothing to remove\n", fams[i]->name);
		else if (capture_run(fams[i]->restore, text, false, NULL) < 0)
			goto out;
		else
			printf(PROG ": %s: capture rules removed\n", fams[i]->name);
		free(saved);
		free(text);
		saved = text = NULL;
	}
	status = 0;
out:
	free(saved);
	free(text);
	return status;
}

int capture_main(int argc, char **argv)
{
	struct capture_config c;
	struct err e = { 0 };

	if (capture_parse_args(argc, argv, &c, &e) < 0) {
		fprintf(stderr, PROG ": %s\nRun '" PROG " --help' for usage.\n", e.msg);
		return 2;
	}
	if (c.help) {
		fputs(capture_usage, stdout);
		return 0;
	}
	/* A container's log interleaves both streams: keep them in the order written. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return c.cleanup ? capture_cleanup(&c) : capture_init(&c);
}
