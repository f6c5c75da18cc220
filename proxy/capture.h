/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-proxy init: the pod's traffic capture rules, from flags to iptables-restore. */
#ifndef MESHLET_PROXY_CAPTURE_H
#define MESHLET_PROXY_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshlet/err.h"

/* Generous: the webhook passes at most 256 ports and 64 ranges in a list. */
#define CAPTURE_PORTS_MAX 1024
#define CAPTURE_CIDRS_MAX 256

/* Every chain we own in the nat table starts with this; nothing else of ours exists. */
#define CAPTURE_CHAIN_PREFIX "MESHLET_"

enum capture_ipv6 { CAPTURE_IPV6_AUTO, CAPTURE_IPV6_ON, CAPTURE_IPV6_OFF };

/* A list of ports without duplicates, in the order written; all means "*". */
struct capture_ports {
	bool all;
	size_t n;
	uint16_t port[CAPTURE_PORTS_MAX];
};

/* One IP range: family AF_INET or AF_INET6, the network address (host bits cleared). */
struct capture_cidr {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

/* A list of IP ranges without duplicates, in the order written; all means "*". */
struct capture_cidrs {
	bool all;
	size_t n;
	struct capture_cidr cidr[CAPTURE_CIDRS_MAX];
};

/* What `meshlet-proxy init` was asked to do. */
struct capture_config {
	uint32_t proxy_uid;
	uint32_t proxy_gid;
	uint16_t inbound_port;  /* captured inbound TCP goes here (15006) */
	uint16_t outbound_port; /* captured outbound TCP goes here (15001) */
	uint16_t tunnel_port;   /* peers' mTLS, never captured (15008) */
	uint16_t admin_port;    /* health and metrics, never captured (15021) */
	struct capture_ports include_inbound_ports;
	struct capture_ports exclude_inbound_ports;
	struct capture_ports exclude_outbound_ports;
	struct capture_cidrs include_outbound_cidrs;
	struct capture_cidrs exclude_outbound_cidrs;
	enum capture_ipv6 ipv6;
	bool dry_run;
	bool cleanup;
	bool help; /* --help: print capture_usage and do nothing else */
};

/* The text of `meshlet-proxy init --help`. */
extern const char capture_usage[];

/*
 * capture_parse_ports - a comma-separated list of ports (1 to 65535, decimal, no leading
 * zero) into out; spaces around items are allowed, duplicates dropped, "" is the empty
 * list, and "*" alone is every port when star_ok. flag names the list in messages.
 * Returns 0, or ERR_CAPTURE_FLAG with a message in e that names flag and value.
 */
int capture_parse_ports(const char *flag, const char *s, bool star_ok, struct capture_ports *out,
                        struct err *e);

/*
 * capture_parse_cidrs - the same for IP ranges: ADDRESS/PREFIX, IPv4 (0-32) or IPv6
 * (0-128). Host bits may be set and are cleared; duplicates are dropped. With a flag of
 * "", messages name the item at fault alone, for a caller that names the value itself.
 */
int capture_parse_cidrs(const char *flag, const char *s, bool star_ok, struct capture_cidrs *out,
                        struct err *e);

/*
 * capture_parse_args - parse init's command line (argv[0] is "init") into c, with the
 * defaults for what is not given, and check the rules that span flags. Uses getopt_long,
 * so argv may be permuted. Returns 0 (c->help may be set), or ERR_CAPTURE_FLAG with the
 * message, which names the flag and its value, in e.
 */
int capture_parse_args(int argc, char **argv, struct capture_config *c, struct err *e);

/*
 * capture_rules - the iptables-restore --noflush input that installs our capture for
 * family (AF_INET or AF_INET6), in one transaction: our chains created or flushed, every
 * jump to them that saved (the output of iptables-save -t nat; NULL or "" for none)
 * shows deleted, leftover MESHLET_ chains removed, then one jump from PREROUTING and one
 * from OUTPUT and our rules. A pure function. Returns a string the caller frees, or NULL
 * with e set (out of memory).
 */
char *capture_rules(const struct capture_config *c, int family, const char *saved, struct err *e);

/*
 * capture_cleanup_rules - the iptables-restore --noflush input that removes every
 * MESHLET_ chain and every jump to one that saved shows. A pure function. Returns ""
 * (still to be freed) when there is nothing to remove, or NULL with e set.
 */
char *capture_cleanup_rules(const char *saved, struct err *e);

/* capture_main - the `init` command: argv[0] is "init". Returns the exit status. */
int capture_main(int argc, char **argv);

#endif
