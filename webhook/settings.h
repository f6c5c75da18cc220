/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's configuration: every key, its type, bounds and default. */
#ifndef MESHLET_WEBHOOK_SETTINGS_H
#define MESHLET_WEBHOOK_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshlet/cli.h"
#include "meshlet/config.h"
#include "meshlet/err.h"

enum settings_policy { SETTINGS_POLICY_ENABLED, SETTINGS_POLICY_DISABLED };

enum settings_pull_policy {
	SETTINGS_PULL_IF_NOT_PRESENT,
	SETTINGS_PULL_ALWAYS,
	SETTINGS_PULL_NEVER,
};

/* The words of enum settings_pull_policy, as Kubernetes spells them; NULL-terminated. */
extern const char *const settings_pull_policy_names[];

struct settings {
	char *listen;
	char *tls_cert_file;
	char *tls_key_file;
	int policy; /* enum settings_policy */
	struct config_strlist ignore_namespaces;
	char *trust_domain;
	char *ca_address;
	char *audit_file;
	int64_t request_timeout;
	struct cli_log log;

	/* What is injected, and when. */
	bool native_sidecar;
	bool rewrite_probes;
	struct config_strlist never_selectors;  /* "key" or "key=value" */
	struct config_strlist always_selectors; /* "key" or "key=value" */
	char *trust_bundle_file;                /* root PEM, read by the caller */
	char *token_audience;
	struct config_strlist service_ranges; /* CIDRs of Service ClusterIPs, no "*" */
	char *proxy_image;
	int proxy_image_pull_policy; /* enum settings_pull_policy */
	char *proxy_cpu_request;     /* Kubernetes quantities */
	char *proxy_memory_request;
	char *proxy_cpu_limit;                       /* NULL or "": no limit */
	char *proxy_memory_limit;                    /* NULL or "": no limit */
	int proxy_log_level;                         /* enum log_level */
	struct config_strlist include_inbound_ports; /* ports, or the one item "*" */
	struct config_strlist exclude_inbound_ports;
	struct config_strlist exclude_outbound_ports;
	struct config_strlist include_outbound_ip_ranges; /* CIDRs, or the one item "*" */
	struct config_strlist exclude_outbound_ip_ranges;
};

/* The longest quantity, image reference, and the most items of a port or CIDR list. */
#define SETTINGS_QUANTITY_MAX 64
#define SETTINGS_IMAGE_MAX    512
#define SETTINGS_PORTS_MAX    256
#define SETTINGS_CIDRS_MAX    64

/* A Kubernetes resource quantity, as written and as a number. */
struct settings_quantity {
	char text[SETTINGS_QUANTITY_MAX + 1]; /* as written; "" when unset */
	long double value;                    /* in base units: cores, bytes */
};

/* A list of ports without duplicates, in the order written; all means "*". */
struct settings_ports {
	bool all;
	size_t n;
	uint16_t port[SETTINGS_PORTS_MAX + 2]; /* room for the proxy's two own ports */
};

/* One CIDR: family AF_INET or AF_INET6, the address as written, the prefix length. */
struct settings_cidr {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

/* A list of CIDRs in the order written; all means "*". */
struct settings_cidrs {
	bool all;
	size_t n;
	struct settings_cidr cidr[SETTINGS_CIDRS_MAX];
};

/* A label selector: the label key exists (has_value false), or has exactly value. */
struct settings_selector {
	char key[318]; /* [prefix/]name: prefix up to 253 bytes, name up to 63 */
	char value[64];
	bool has_value;
};

/*
 * The parsers below serve the configuration file's validators and the pod annotations
 * alike. Each returns 0, or its ERR_SETTINGS_* code with a phrase in e->msg that follows the
 * quoted value: "\"10mi\" is not a resource quantity (...)". e may be NULL.
 */

/*
 * settings_quantity_parse - a Kubernetes resource quantity, by its grammar: a number
 * ("1", "1.5", "1.", ".5", with an optional '+'), then nothing, a binary suffix (Ki Mi Gi
 * Ti Pi Ei), a decimal one (n u m k M G T P E) or an exponent ("e3", "E-2"). No sign '-',
 * no spaces, at most SETTINGS_QUANTITY_MAX bytes.
 */
int settings_quantity_parse(const char *s, struct settings_quantity *out, struct err *e);

/*
 * settings_ports_parse - a comma-separated list of ports (1 to 65535, decimal, no leading
 * zero), spaces around items allowed, duplicates dropped; "" is the empty list; "*" alone
 * is every port when star_ok. At most SETTINGS_PORTS_MAX items.
 */
int settings_ports_parse(const char *s, bool star_ok, struct settings_ports *out, struct err *e);

/* settings_ports_from_list - the same for a list from the configuration, item by item. */
int settings_ports_from_list(const struct config_strlist *l, bool star_ok,
                             struct settings_ports *out, struct err *e);

/*
 * settings_ports_add - add port to p unless p has it: beyond SETTINGS_PORTS_MAX items, two
 * more fit (the proxy's own ports), then it is full and port is dropped.
 */
void settings_ports_add(struct settings_ports *p, uint16_t port);

/* settings_ports_format - write p as meshlet-init reads it: "*", "" or "80,443". */
void settings_ports_format(const struct settings_ports *p, char *buf, size_t size);

/*
 * settings_cidrs_parse - a comma-separated list of CIDRs: an IPv4 address (no leading
 * zeros) or an IPv6 address (no zone), '/', a prefix length (0-32 or 0-128). Host bits
 * may be set (iptables ignores them, as Go's ParseCIDR does). "" and "*" as for ports.
 */
int settings_cidrs_parse(const char *s, bool star_ok, struct settings_cidrs *out, struct err *e);

/* settings_cidrs_from_list - the same for a list from the configuration, item by item. */
int settings_cidrs_from_list(const struct config_strlist *l, bool star_ok,
                             struct settings_cidrs *out, struct err *e);

/* settings_cidrs_format - write c as "*", "" or "10.0.0.0/8,fd00::/8" (canonical addresses). */
void settings_cidrs_format(const struct settings_cidrs *c, char *buf, size_t size);

/*
 * settings_quote - copy s into buf for a message: at most 64 bytes, then "...", with
 * control bytes, non-ASCII, '"' and '\\' as \xNN. Returns buf.
 */
const char *settings_quote(char *buf, size_t size, const char *s);

/*
 * settings_selector_parse - "key" or "key=value", where key is a Kubernetes label key
 * (an optional DNS-subdomain prefix and '/', then a name of 1 to 63 characters
 * [A-Za-z0-9._-] that starts and ends with a letter or digit) and value a label value (the
 * same rules, or empty).
 */
int settings_selector_parse(const char *s, struct settings_selector *out, struct err *e);

/*
 * settings_image_check - a plausible container image reference: 1 to SETTINGS_IMAGE_MAX
 * bytes of letters, digits and . _ - / : @, starting with a letter or digit.
 */
int settings_image_check(const char *s, struct err *e);

/* The table of meshlet-webhook's keys, with the rules that span them. */
extern const struct config_schema settings_schema;

#endif
