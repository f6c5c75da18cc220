/* SPDX-License-Identifier: Apache-2.0 */
/* The insides of a policy set, shared by policy.c (deciding) and policy_load.c (loading). */
#ifndef MESHLET_PROXY_POLICY_IMPL_H
#define MESHLET_PROXY_POLICY_IMPL_H

#include "policy.h"

/*
 * Room for a normalized path or a joined header value: more than a whole request head
 * (policy.max_header_bytes is at most 15360), so nothing is ever cut.
 */
#define HTTP1_PATH_NORM_MAX 16384

enum policy_match_kind { POLICY_MATCH_EXACT, POLICY_MATCH_PREFIX, POLICY_MATCH_SUFFIX, POLICY_MATCH_ANY };

/* One string to match: the text without its '*'. */
struct policy_str {
	const char *text;
	size_t len;
	uint8_t kind;
};

/* A list field; set tells an absent field from an empty list. */
struct policy_strs {
	struct policy_str *v;
	size_t n;
	bool set;
};

struct policy_cidr {
	uint8_t family, bits;
	uint8_t addr[16]; /* masked */
};

struct policy_cidrs {
	struct policy_cidr *v;
	size_t n;
	bool set;
};

struct policy_ports {
	uint16_t *v;
	size_t n;
	bool set;
};

struct policy_source {
	struct policy_strs principals, not_principals, namespaces, not_namespaces;
	struct policy_cidrs ip_blocks, not_ip_blocks;
};

struct policy_operation {
	struct policy_ports ports, not_ports;
	struct policy_strs methods, not_methods, paths, not_paths, hosts, not_hosts;
};

enum policy_key {
	POLICY_KEY_HEADER,
	POLICY_KEY_SOURCE_IP,
	POLICY_KEY_SOURCE_NAMESPACE,
	POLICY_KEY_SOURCE_PRINCIPAL,
	POLICY_KEY_DESTINATION_PORT,
};

struct policy_condition {
	enum policy_key key;
	const char *header; /* POLICY_KEY_HEADER: the field name */
	struct policy_strs values, not_values;
	struct policy_cidrs ips, not_ips;
	struct policy_ports ports, not_ports;
};

struct policy_rule {
	struct policy_source *from;
	size_t nfrom;
	struct policy_operation *to;
	size_t nto;
	struct policy_condition *when;
	size_t nwhen;
	bool http_only; /* uses a field that only HTTP has */
};

/* matchLabels as "key=value" strings. */
struct policy_selector {
	const char **labels;
	size_t n;
};

struct policy_authz {
	struct policy_meta meta;
	struct policy_selector selector;
	enum policy_action action;
	struct policy_rule *rules;
	size_t nrules;
	_Atomic uint64_t allowed, denied;
};

struct policy_port_mode {
	uint16_t port;
	enum policy_mtls mode;
};

struct policy_peer {
	struct policy_meta meta;
	struct policy_selector selector;
	bool has_selector;
	enum policy_mtls mode;
	struct policy_port_mode *ports;
	size_t nports;
};

struct policy_chunk;

struct policy_set {
	_Atomic unsigned refs;
	struct policy_chunk *chunks; /* every string and array of the set */
	struct policy_authz *authz;  /* malloc'd */
	size_t nauthz, cap_authz;
	struct policy_peer *peers; /* malloc'd */
	size_t npeers, cap_peers;
	_Atomic uint64_t allowed_no_policy, denied_no_match;
};

/* An empty set with one reference. */
struct policy_set *policy_set_new(void);

/* Zeroed memory from the set's arena, freed with the set; NULL when out of memory. */
void *policy_alloc(struct policy_set *s, size_t n);
char *policy_strndup(struct policy_set *s, const char *p, size_t n);

#endif
