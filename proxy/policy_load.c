/* SPDX-License-Identifier: Apache-2.0 */
/* Loading policy files: Kubernetes-style YAML into a policy set, with every error at file:line. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <yaml.h>

#include "meshlet/file.h"
#include "meshlet/yamljson.h"

#include "policy_impl.h"

#define POLICY_FILE_MAX (4 * 1024 * 1024)
#define PATH_DEPTH      16

/* Where the loader is: the document, and the path of keys and indices to the value. */
struct loader {
	struct policy_set *set;
	struct policy_errors *errs;
	const char *file;
	yaml_document_t *ydoc; /* for lines; NULL when unavailable */
	unsigned doc_line;
	const char *keys[PATH_DEPTH]; /* NULL for an index */
	size_t idx[PATH_DEPTH];
	int depth;
	int nerrors;
	bool oom;
};

static void push_key(struct loader *L, const char *key)
{
	if (L->depth < PATH_DEPTH) {
		L->keys[L->depth] = key;
		L->idx[L->depth] = 0;
	}
	L->depth++;
}

static void push_idx(struct loader *L, size_t i)
{
	if (L->depth < PATH_DEPTH) {
		L->keys[L->depth] = NULL;
		L->idx[L->depth] = i;
	}
	L->depth++;
}

static void pop(struct loader *L)
{
	L->depth--;
}

/* The line of the value at the current path, found by walking libyaml's node tree. */
static unsigned path_line(const struct loader *L)
{
	yaml_node_t *n;
	unsigned line = L->doc_line;

	if (L->ydoc == NULL || (n = yaml_document_get_root_node(L->ydoc)) == NULL)
		return line;
	line = (unsigned)n->start_mark.line + 1;
	for (int d = 0; d < L->depth && d < PATH_DEPTH; d++) {
		yaml_node_t *next = NULL;

		if (L->keys[d] != NULL && n->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
			     p < n->data.mapping.pairs.top && next == NULL; p++) {
				yaml_node_t *k = yaml_document_get_node(L->ydoc, p->key);

				if (k != NULL && k->type == YAML_SCALAR_NODE &&
				    strlen(L->keys[d]) == k->data.scalar.length &&
				    memcmp(k->data.scalar.value, L->keys[d], k->data.scalar.length) == 0)
					next = yaml_document_get_node(L->ydoc, p->value);
			}
		} else if (L->keys[d] == NULL && n->type == YAML_SEQUENCE_NODE &&
		           L->idx[d] < (size_t)(n->data.sequence.items.top -
		                                n->data.sequence.items.start)) {
			next = yaml_document_get_node(L->ydoc,
			                              n->data.sequence.items.start[L->idx[d]]);
		}
		if (next == NULL)
			break;
		n = next;
		line = (unsigned)n->start_mark.line + 1;
	}
	return line;
}

static void add_error(struct policy_errors *errs, char *msg)
{
	char **v;

	if (msg == NULL) {
		errs->lost++; /* still an error: the load fails */
		return;
	}
	v = realloc(errs->msgs, (errs->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(msg);
		errs->lost++;
		return;
	}
	errs->msgs = v;
	errs->msgs[errs->n++] = msg;
}

__attribute__((format(printf, 2, 3))) static void lerr(struct loader *L, const char *fmt, ...)
{
	char where[512] = "", what[512];
	size_t n = 0;
	char *msg = NULL;
	va_list ap;

	for (int d = 0; d < L->depth && d < PATH_DEPTH && n < sizeof(where) - 1; d++) {
		int w = L->keys[d] != NULL
		            ? snprintf(where + n, sizeof(where) - n, "%s%s", d > 0 ? "." : "",
		                       L->keys[d])
		            : snprintf(where + n, sizeof(where) - n, "[%zu]", L->idx[d]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (asprintf(&msg, "%s:%u: %s%s%s", L->file, path_line(L), where, n > 0 ? ": " : "",
	             what) < 0)
		msg = NULL;
	add_error(L->errs, msg);
	L->nerrors++;
}

/* Checks that obj is a mapping whose keys are all allowed; unsupported ones are named. */
static bool check_object(struct loader *L, json_t *obj, const char *const *allowed,
                         const char *const *unsupported)
{
	const char *key;
	json_t *v;
	bool ok = true;

	if (!json_is_object(obj)) {
		lerr(L, "must be a mapping");
		return false;
	}
	json_object_foreach(obj, key, v)
	{
		bool known = false;

		for (size_t i = 0; allowed[i] != NULL && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (known)
			continue;
		ok = false;
		push_key(L, key);
		for (size_t i = 0; unsupported != NULL && unsupported[i] != NULL; i++)
			if (strcmp(key, unsupported[i]) == 0) {
				lerr(L, "not supported by meshlet (see docs/policy.md)");
				known = true;
			}
		if (!known)
			lerr(L, "unknown field");
		pop(L);
	}
	return ok;
}

static void *alloc(struct loader *L, size_t n)
{
	void *p = policy_alloc(L->set, n);

	if (p == NULL)
		L->oom = true;
	return p;
}

/*
 * A list field: each element goes to item(), which fills its slot and returns true to keep
 * it (false after it reported an error). not_a_list is the error when the field is no list.
 */
static void load_items(struct loader *L, json_t *parent, const char *key, const char *not_a_list,
                       size_t elem, void **items, size_t *n, bool *set,
                       bool (*item)(struct loader *L, json_t *v, void *slot))
{
	json_t *arr = json_object_get(parent, key), *v;
	size_t i;
	char *out;

	if (arr == NULL)
		return;
	push_key(L, key);
	if (!json_is_array(arr)) {
		lerr(L, "%s", not_a_list);
		pop(L);
		return;
	}
	if (json_array_size(arr) == 0) {
		/* Istio cannot tell an empty list from an absent one; neither can a reader. */
		lerr(L, "is an empty list, which Istio reads as absent: remove it or give values");
		pop(L);
		return;
	}
	*set = true;
	out = alloc(L, (json_array_size(arr) + 1) * elem);
	*items = out;
	json_array_foreach(arr, i, v)
	{
		push_idx(L, i);
		if (out != NULL && item(L, v, out + *n * elem))
			(*n)++;
		pop(L);
	}
	pop(L);
}

/* A string with Istio's wildcards: exact, "prefix*", "*suffix" or "*". */
static bool str_item(struct loader *L, json_t *v, void *slot)
{
	struct policy_str *m = slot;
	const char *s, *star;
	size_t len;

	if (!json_is_string(v)) {
		lerr(L, "must be a string");
		return false;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	star = memchr(s, '*', len);
	if (len == 0) {
		lerr(L, "must not be empty");
		return false;
	}
	if (star != NULL && ((star != s && star != s + len - 1) ||
	                     memchr(star + 1, '*', (size_t)(s + len - star - 1)) != NULL)) {
		lerr(L, "\"%s\": '*' may only be the first or the last character", s);
		return false;
	}
	if (len == 1 && star != NULL) {
		m->kind = POLICY_MATCH_ANY;
		m->text = "";
		return true;
	}
	m->kind = star == s ? POLICY_MATCH_SUFFIX : star != NULL ? POLICY_MATCH_PREFIX
	                                                         : POLICY_MATCH_EXACT;
	m->len = star != NULL ? len - 1 : len;
	m->text = policy_strndup(L->set, star == s ? s + 1 : s, m->len);
	if (m->text == NULL)
		L->oom = true;
	return m->text != NULL;
}

static void load_strs(struct loader *L, json_t *parent, const char *key, struct policy_strs *out)
{
	void *items = NULL;

	load_items(L, parent, key, "must be a list of strings", sizeof(*out->v), &items, &out->n,
	           &out->set, str_item);
	out->v = items;
}

static bool parse_port(const char *s, uint16_t *out)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* A port as a string of digits ("8080"), as Istio writes them. */
static bool port_item(struct loader *L, json_t *v, void *slot)
{
	if (!json_is_string(v)) {
		lerr(L, "must be a port number as a string, like \"8080\"");
		return false;
	}
	if (!parse_port(json_string_value(v), slot)) {
		lerr(L, "\"%s\" is not a port (1 to 65535)", json_string_value(v));
		return false;
	}
	return true;
}

static void load_ports(struct loader *L, json_t *parent, const char *key, struct policy_ports *out)
{
	void *items = NULL;

	load_items(L, parent, key, "must be a list of port numbers as strings, like [\"8080\"]",
	           sizeof(*out->v), &items, &out->n, &out->set, port_item);
	out->v = items;
}

/* An IP address or CIDR block: "10.0.0.0/8", "10.1.2.3", "fd00::/8". */
static bool parse_cidr(const char *s, struct policy_cidr *c)
{
	char ip[64];
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned max;
	uint8_t addr[16] = { 0 };

	if (len == 0 || len >= sizeof(ip))
		return false;
	memcpy(ip, s, len);
	ip[len] = '\0';
	if (inet_pton(AF_INET, ip, addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	c->bits = (uint8_t)max;
	if (slash != NULL) {
		char *end;
		long bits;

		if (slash[1] < '0' || slash[1] > '9')
			return false;
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || bits < 0 || bits > (long)max)
			return false;
		c->bits = (uint8_t)bits;
	}
	memset(c->addr, 0, sizeof(c->addr));
	for (unsigned i = 0; i < c->bits / 8u; i++)
		c->addr[i] = addr[i];
	if (c->bits % 8 != 0)
		c->addr[c->bits / 8] = (uint8_t)(addr[c->bits / 8] & (0xff << (8 - c->bits % 8)));
	return true;
}

static bool cidr_item(struct loader *L, json_t *v, void *slot)
{
	if (!json_is_string(v)) {
		lerr(L, "must be a string");
		return false;
	}
	if (!parse_cidr(json_string_value(v), slot)) {
		lerr(L, "\"%s\" is not an IP address or CIDR block", json_string_value(v));
		return false;
	}
	return true;
}

static void load_cidrs(struct loader *L, json_t *parent, const char *key, struct policy_cidrs *out)
{
	void *items = NULL;

	load_items(L, parent, key, "must be a list of IP addresses or CIDR blocks",
	           sizeof(*out->v), &items, &out->n, &out->set, cidr_item);
	out->v = items;
}

static void load_source(struct loader *L, json_t *src, struct policy_source *s)
{
	static const char *const allowed[] = { "principals", "notPrincipals", "namespaces",
		                               "notNamespaces", "ipBlocks", "notIpBlocks", NULL };
	static const char *const unsupported[] = { "requestPrincipals", "notRequestPrincipals",
		                                   "remoteIpBlocks", "notRemoteIpBlocks",
		                                   "serviceAccounts", "notServiceAccounts", NULL };

	if (!check_object(L, src, allowed, unsupported))
		return;
	if (json_object_size(src) == 0)
		lerr(L, "must set at least one field");
	load_strs(L, src, "principals", &s->principals);
	load_strs(L, src, "notPrincipals", &s->not_principals);
	load_strs(L, src, "namespaces", &s->namespaces);
	load_strs(L, src, "notNamespaces", &s->not_namespaces);
	load_cidrs(L, src, "ipBlocks", &s->ip_blocks);
	load_cidrs(L, src, "notIpBlocks", &s->not_ip_blocks);
}

static void load_operation(struct loader *L, json_t *op, struct policy_operation *o, bool *http)
{
	static const char *const allowed[] = { "ports", "notPorts", "methods", "notMethods", "paths",
		                               "notPaths", "hosts",  "notHosts",   NULL };

	if (!check_object(L, op, allowed, NULL))
		return;
	if (json_object_size(op) == 0)
		lerr(L, "must set at least one field");
	load_ports(L, op, "ports", &o->ports);
	load_ports(L, op, "notPorts", &o->not_ports);
	load_strs(L, op, "methods", &o->methods);
	load_strs(L, op, "notMethods", &o->not_methods);
	load_strs(L, op, "paths", &o->paths);
	load_strs(L, op, "notPaths", &o->not_paths);
	load_strs(L, op, "hosts", &o->hosts);
	load_strs(L, op, "notHosts", &o->not_hosts);
	if (o->methods.set || o->not_methods.set || o->paths.set || o->not_paths.set ||
	    o->hosts.set || o->not_hosts.set)
		*http = true;
}

/* request.headers[name]: the name, or NULL. */
static const char *header_key(struct loader *L, const char *key)
{
	static const char prefix[] = "request.headers[";
	size_t n = strlen(key), plen = sizeof(prefix) - 1;

	if (n <= plen + 1 || strncmp(key, prefix, plen) != 0 || key[n - 1] != ']')
		return NULL;
	for (size_t i = plen; i < n - 1; i++)
		if (key[i] <= ' ' || key[i] >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", key[i]) != NULL)
			return NULL;
	return policy_strndup(L->set, key + plen, n - 1 - plen);
}

static void load_condition(struct loader *L, json_t *w, struct policy_condition *c, bool *http)
{
	static const char *const allowed[] = { "key", "values", "notValues", NULL };
	static const char *const unsupported_keys[] = { "request.auth.", "remote.ip",
		                                        "destination.ip", "connection.sni",
		                                        "experimental.", NULL };
	json_t *k;
	const char *key;

	if (!check_object(L, w, allowed, NULL))
		return;
	k = json_object_get(w, "key");
	if (!json_is_string(k)) {
		push_key(L, "key");
		lerr(L, k == NULL ? "is required" : "must be a string");
		pop(L);
		return;
	}
	if (json_object_get(w, "values") == NULL && json_object_get(w, "notValues") == NULL)
		lerr(L, "needs values or notValues");
	key = json_string_value(k);
	if (strcmp(key, "source.ip") == 0) {
		c->key = POLICY_KEY_SOURCE_IP;
		load_cidrs(L, w, "values", &c->ips);
		load_cidrs(L, w, "notValues", &c->not_ips);
		return;
	}
	if (strcmp(key, "destination.port") == 0) {
		c->key = POLICY_KEY_DESTINATION_PORT;
		load_ports(L, w, "values", &c->ports);
		load_ports(L, w, "notValues", &c->not_ports);
		return;
	}
	if (strcmp(key, "source.namespace") == 0) {
		c->key = POLICY_KEY_SOURCE_NAMESPACE;
	} else if (strcmp(key, "source.principal") == 0) {
		c->key = POLICY_KEY_SOURCE_PRINCIPAL;
	} else if ((c->header = header_key(L, key)) != NULL) {
		c->key = POLICY_KEY_HEADER;
		*http = true;
	} else {
		bool unsupported = false;

		for (size_t i = 0; unsupported_keys[i] != NULL && !unsupported; i++)
			unsupported = strncmp(key, unsupported_keys[i],
			                      strlen(unsupported_keys[i])) == 0;
		push_key(L, "key");
		lerr(L, unsupported ? "\"%s\" is not supported by meshlet (see docs/policy.md)"
		                    : "\"%s\" is not a known key",
		     key);
		pop(L);
		return;
	}
	load_strs(L, w, "values", &c->values);
	load_strs(L, w, "notValues", &c->not_values);
}

/* A list of mappings under key, each given to fn with its index. */
static size_t load_list(struct loader *L, json_t *parent, const char *key, size_t elem,
                        void **out, void (*fn)(struct loader *, json_t *, void *, bool *),
                        bool *http)
{
	json_t *arr = json_object_get(parent, key), *v;
	size_t i, n = 0;
	char *items;

	*out = NULL;
	if (arr == NULL)
		return 0;
	push_key(L, key);
	if (!json_is_array(arr)) {
		lerr(L, "must be a list");
		pop(L);
		return 0;
	}
	items = alloc(L, (json_array_size(arr) + 1) * elem);
	json_array_foreach(arr, i, v)
	{
		push_idx(L, i);
		if (items != NULL)
			fn(L, v, items + n++ * elem, http);
		pop(L);
	}
	pop(L);
	*out = items;
	return n;
}

static void from_entry(struct loader *L, json_t *v, void *out, bool *http)
{
	static const char *const allowed[] = { "source", NULL };

	(void)http;
	if (!check_object(L, v, allowed, NULL))
		return;
	if (json_object_get(v, "source") == NULL) {
		lerr(L, "needs a source");
		return;
	}
	push_key(L, "source");
	load_source(L, json_object_get(v, "source"), out);
	pop(L);
}

static void to_entry(struct loader *L, json_t *v, void *out, bool *http)
{
	static const char *const allowed[] = { "operation", NULL };

	if (!check_object(L, v, allowed, NULL))
		return;
	if (json_object_get(v, "operation") == NULL) {
		lerr(L, "needs an operation");
		return;
	}
	push_key(L, "operation");
	load_operation(L, json_object_get(v, "operation"), out, http);
	pop(L);
}

static void when_entry(struct loader *L, json_t *v, void *out, bool *http)
{
	load_condition(L, v, out, http);
}

static void rule_entry(struct loader *L, json_t *v, void *out, bool *http)
{
	static const char *const allowed[] = { "from", "to", "when", NULL };
	struct policy_rule *r = out;
	void *p;

	(void)http;
	if (!check_object(L, v, allowed, NULL))
		return;
	r->nfrom = load_list(L, v, "from", sizeof(struct policy_source), &p, from_entry,
	                     &r->http_only);
	r->from = p;
	r->nto = load_list(L, v, "to", sizeof(struct policy_operation), &p, to_entry,
	                   &r->http_only);
	r->to = p;
	r->nwhen = load_list(L, v, "when", sizeof(struct policy_condition), &p, when_entry,
	                     &r->http_only);
	r->when = p;
}

/* spec.selector: {matchLabels: {k: v}}. */
static bool load_selector(struct loader *L, json_t *spec, struct policy_selector *sel)
{
	static const char *const allowed[] = { "matchLabels", NULL };
	json_t *s = json_object_get(spec, "selector"), *labels, *v;
	const char *key;

	if (s == NULL)
		return false;
	push_key(L, "selector");
	if (!check_object(L, s, allowed, NULL)) {
		pop(L);
		return true;
	}
	labels = json_object_get(s, "matchLabels");
	if (labels != NULL) {
		push_key(L, "matchLabels");
		if (!json_is_object(labels)) {
			lerr(L, "must be a mapping of label names to values");
		} else {
			sel->labels = alloc(L, (json_object_size(labels) + 1) * sizeof(char *));
			json_object_foreach(labels, key, v)
			{
				char *kv;

				push_key(L, key);
				if (!json_is_string(v)) {
					lerr(L, "must be a string (quote it)");
				} else if (sel->labels != NULL &&
				           (kv = alloc(L, strlen(key) + json_string_length(v) + 2)) !=
				               NULL) {
					sprintf(kv, "%s=%s", key, json_string_value(v));
					sel->labels[sel->n++] = kv;
				}
				pop(L);
			}
		}
		pop(L);
	}
	pop(L);
	return true;
}

static int enum_of(const char *const *names, const char *s)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static void load_authz(struct loader *L, json_t *spec, struct policy_meta *meta)
{
	static const char *const allowed[] = { "selector", "action", "rules", NULL };
	static const char *const unsupported[] = { "provider", "targetRef", "targetRefs", NULL };
	struct policy_authz *p;
	json_t *action;
	void *rules;

	if (!check_object(L, spec, allowed, unsupported))
		return;
	if (L->set->nauthz == L->set->cap_authz) {
		size_t cap = L->set->cap_authz * 2 + 8;
		struct policy_authz *v = realloc(L->set->authz, cap * sizeof(*v));

		if (v == NULL) {
			L->oom = true;
			return;
		}
		L->set->authz = v;
		L->set->cap_authz = cap;
	}
	p = &L->set->authz[L->set->nauthz];
	memset(p, 0, sizeof(*p));
	p->meta = *meta;
	load_selector(L, spec, &p->selector);
	action = json_object_get(spec, "action");
	if (action != NULL) {
		int a = json_is_string(action) ? enum_of(policy_action_names, json_string_value(action))
		                               : -1;

		push_key(L, "action");
		if (json_is_string(action) && strcmp(json_string_value(action), "CUSTOM") == 0)
			lerr(L, "CUSTOM is not supported by meshlet (see docs/policy.md)");
		else if (a < 0)
			lerr(L, "must be ALLOW, DENY or AUDIT");
		else
			p->action = (enum policy_action)a;
		pop(L);
	}
	p->nrules = load_list(L, spec, "rules", sizeof(struct policy_rule), &rules, rule_entry, NULL);
	p->rules = rules;
	L->set->nauthz++;
}

static int mtls_mode(struct loader *L, json_t *m)
{
	static const char *const allowed[] = { "mode", NULL };
	json_t *mode;
	int v;

	if (!check_object(L, m, allowed, NULL))
		return POLICY_MTLS_UNSET;
	mode = json_object_get(m, "mode");
	if (mode == NULL)
		return POLICY_MTLS_UNSET;
	push_key(L, "mode");
	v = json_is_string(mode) ? enum_of(policy_mtls_names, json_string_value(mode)) : -1;
	if (v < 0) {
		lerr(L, "must be UNSET, STRICT, PERMISSIVE or DISABLE");
		v = POLICY_MTLS_UNSET;
	}
	pop(L);
	return v;
}

static void load_peer(struct loader *L, json_t *spec, struct policy_meta *meta)
{
	static const char *const allowed[] = { "selector", "mtls", "portLevelMtls", NULL };
	static const char *const unsupported[] = { "targetRef", "targetRefs", NULL };
	struct policy_peer *p;
	json_t *ports, *v;
	const char *key;

	if (!check_object(L, spec, allowed, unsupported))
		return;
	if (L->set->npeers == L->set->cap_peers) {
		size_t cap = L->set->cap_peers * 2 + 4;
		struct policy_peer *nv = realloc(L->set->peers, cap * sizeof(*nv));

		if (nv == NULL) {
			L->oom = true;
			return;
		}
		L->set->peers = nv;
		L->set->cap_peers = cap;
	}
	p = &L->set->peers[L->set->npeers];
	memset(p, 0, sizeof(*p));
	p->meta = *meta;
	/* An empty selector selects every workload: the namespace's policy, as in Istio. */
	p->has_selector = load_selector(L, spec, &p->selector) && p->selector.n > 0;
	if ((v = json_object_get(spec, "mtls")) != NULL) {
		push_key(L, "mtls");
		p->mode = (enum policy_mtls)mtls_mode(L, v);
		pop(L);
	}
	ports = json_object_get(spec, "portLevelMtls");
	if (ports != NULL) {
		push_key(L, "portLevelMtls");
		if (!json_is_object(ports)) {
			lerr(L, "must be a mapping of ports to {mode: ...}");
		} else if (!p->has_selector) {
			lerr(L, "needs a selector: port-level modes apply to chosen workloads");
		} else {
			p->ports = alloc(L, (json_object_size(ports) + 1) * sizeof(*p->ports));
			json_object_foreach(ports, key, v)
			{
				uint16_t port;

				push_key(L, key);
				if (!parse_port(key, &port)) {
					lerr(L, "\"%s\" is not a port (1 to 65535)", key);
				} else if (p->ports != NULL) {
					p->ports[p->nports].port = port;
					p->ports[p->nports++].mode = (enum policy_mtls)mtls_mode(L, v);
				}
				pop(L);
			}
		}
		pop(L);
	}
	L->set->npeers++;
}

static const char *meta_string(struct loader *L, json_t *meta, const char *key, bool required)
{
	json_t *v = json_object_get(meta, key);

	push_key(L, key);
	if (v == NULL) {
		if (required)
			lerr(L, "is required");
	} else if (json_is_boolean(v) || json_is_number(v)) {
		lerr(L, "must be a string (quote it: YAML reads this value as a %s)",
		     json_is_boolean(v) ? "boolean" : "number");
		v = NULL;
	} else if (!json_is_string(v) || json_string_length(v) == 0 ||
	           json_string_length(v) > 253) {
		lerr(L, "must be a non-empty string");
		v = NULL;
	} else {
		for (const char *c = json_string_value(v); *c != '\0'; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
			      *c == '.')) {
				lerr(L, "\"%s\" is not a Kubernetes name (lowercase letters, digits, "
				        "'-' and '.')",
				     json_string_value(v));
				v = NULL;
				break;
			}
	}
	pop(L);
	return v != NULL ? policy_strndup(L->set, json_string_value(v), json_string_length(v))
	                 : NULL;
}

static void load_doc(struct loader *L, json_t *doc)
{
	static const char *const allowed[] = { "apiVersion", "kind", "metadata", "spec", "status",
		                               NULL };
	static const char *const versions[] = { "security.meshlet.io/v1", "security.istio.io/v1",
		                                "security.istio.io/v1beta1", NULL };
	json_t *api, *kind, *meta, *spec;
	struct policy_meta m = { .file = L->file, .line = L->doc_line };
	const char *k;

	if (!json_is_object(doc)) {
		lerr(L, "a policy document must be a mapping");
		return;
	}
	check_object(L, doc, allowed, NULL);
	api = json_object_get(doc, "apiVersion");
	kind = json_object_get(doc, "kind");
	push_key(L, "apiVersion");
	if (!json_is_string(api) || enum_of(versions, json_string_value(api)) < 0)
		lerr(L, "must be security.meshlet.io/v1, security.istio.io/v1 or "
		        "security.istio.io/v1beta1");
	pop(L);
	k = json_is_string(kind) ? json_string_value(kind) : "";
	if (strcmp(k, "AuthorizationPolicy") != 0 && strcmp(k, "PeerAuthentication") != 0) {
		push_key(L, "kind");
		lerr(L, "\"%s\" is not a policy meshlet reads (AuthorizationPolicy, "
		        "PeerAuthentication)",
		     k);
		pop(L);
		return;
	}
	meta = json_object_get(doc, "metadata");
	push_key(L, "metadata");
	if (!json_is_object(meta)) {
		lerr(L, meta == NULL ? "is required" : "must be a mapping");
	} else {
		m.name = meta_string(L, meta, "name", true);
		m.namespace_ = meta_string(L, meta, "namespace", false);
	}
	pop(L);
	spec = json_object_get(doc, "spec");
	if (spec == NULL)
		spec = json_object(); /* a policy without spec is spec: {} */
	else
		json_incref(spec);
	if (spec == NULL) {
		L->oom = true;
		return;
	}
	push_key(L, "spec");
	if (m.name == NULL)
		m.name = "";
	if (strcmp(k, "AuthorizationPolicy") == 0)
		load_authz(L, spec, &m);
	else
		load_peer(L, spec, &m);
	pop(L);
	json_decref(spec);
}

/* Loads one file's text into set. */
static void load_text(struct policy_set *set, const char *name, const char *text, size_t len,
                      struct policy_errors *errs)
{
	struct yamljson_doc *docs = NULL;
	size_t ndocs = 0;
	struct err e = { 0 };
	yaml_parser_t parser;
	bool lines;
	const char *file = policy_strndup(set, name, strlen(name));

	if (file == NULL)
		file = "(policy)";
	if (yamljson_parse(name, text, len, &docs, &ndocs, &e) < 0) {
		add_error(errs, strdup(e.msg));
		return;
	}
	lines = yaml_parser_initialize(&parser) != 0;
	if (lines)
		yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (size_t i = 0; i < ndocs; i++) {
		yaml_document_t ydoc;
		bool have = false;

		/* The libyaml document that matches: yamljson skips empty ones too. */
		while (lines) {
			yaml_node_t *root;

			if (!yaml_parser_load(&parser, &ydoc)) {
				lines = false;
				break;
			}
			root = yaml_document_get_root_node(&ydoc);
			if (root != NULL &&
			    !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
			      root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)) {
				have = true;
				break;
			}
			yaml_document_delete(&ydoc);
			if (root == NULL)
				lines = false; /* the end of the stream */
		}
		struct loader L = {
			.set = set,
			.errs = errs,
			.file = file,
			.ydoc = have ? &ydoc : NULL,
			.doc_line = docs[i].line,
		};
		load_doc(&L, docs[i].value);
		if (L.oom)
			add_error(errs, strdup("out of memory loading policies"));
		if (have)
			yaml_document_delete(&ydoc);
	}
	yaml_parser_delete(&parser);
	yamljson_docs_free(docs, ndocs);
}

int policy_load_text(const char *name, const char *text, size_t len, struct policy_set **out,
                     struct policy_errors *errs)
{
	struct policy_set *set = policy_set_new();
	size_t before = errs->n + errs->lost;

	*out = NULL;
	if (set == NULL)
		return -ENOMEM;
	load_text(set, name, text, len, errs);
	if (errs->n + errs->lost > before) {
		policy_set_unref(set);
		return ERR_CONFIG_INVALID;
	}
	*out = set;
	return 0;
}

static int load_file(struct policy_set *set, const char *path, struct policy_errors *errs)
{
	char *text = NULL;
	size_t len = 0;
	struct err e = { 0 };
	int rc = file_read(path, POLICY_FILE_MAX, &text, &len, &e);

	if (rc < 0) {
		add_error(errs, strdup(e.msg));
		return rc;
	}
	load_text(set, path, text, len, errs);
	free(text);
	return 0;
}

static bool policy_name(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return false;
	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
	       (n > 5 && strcmp(name + n - 5, ".json") == 0);
}

static int load_dir(struct policy_set *set, const char *dir, struct policy_errors *errs)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	int rc = 0;

	if (n < 0) {
		char *msg = NULL;

		rc = -errno;
		if (asprintf(&msg, "%s: %s", dir, strerror(errno)) < 0)
			msg = NULL;
		add_error(errs, msg);
		return rc;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (rc == 0 && policy_name(names[i]->d_name) &&
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) <
		        (int)sizeof(path) &&
		    stat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc = load_file(set, path, errs);
		free(names[i]);
	}
	free(names);
	return rc;
}

int policy_load(const char *const *paths, size_t n, struct policy_set **out,
                struct policy_errors *errs)
{
	struct policy_set *set = policy_set_new();
	size_t before = errs->n + errs->lost;
	int rc = 0;

	*out = NULL;
	if (set == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct stat st;

		if (stat(paths[i], &st) < 0) {
			char *msg = NULL;

			rc = -errno;
			if (asprintf(&msg, "%s: %s", paths[i], strerror(errno)) < 0)
				msg = NULL;
			add_error(errs, msg);
		} else if (S_ISDIR(st.st_mode)) {
			rc = load_dir(set, paths[i], errs);
		} else {
			rc = load_file(set, paths[i], errs);
		}
	}
	if (rc == 0 && errs->n + errs->lost > before)
		rc = ERR_CONFIG_INVALID;
	if (rc < 0) {
		policy_set_unref(set);
		return rc;
	}
	*out = set;
	return 0;
}
