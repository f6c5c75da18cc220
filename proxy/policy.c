/* SPDX-License-Identifier: Apache-2.0 */
/* Policy sets: the compiled form of AuthorizationPolicy and PeerAuthentication, and decisions. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "meshlet/err.h"

#include "policy.h"
#include "policy_impl.h"

const char *const policy_action_names[] = { "ALLOW", "DENY", "AUDIT", NULL };
const char *const policy_mtls_names[] = { "UNSET", "STRICT", "PERMISSIVE", "DISABLE", NULL };

/* Arena */

#define CHUNK_SIZE 16384

struct policy_chunk {
	struct policy_chunk *next;
	size_t used, size;
	_Alignas(16) char data[];
};

void *policy_alloc(struct policy_set *s, size_t n)
{
	struct policy_chunk *c = s->chunks;

	n = (n + 15) & ~(size_t)15;
	if (c == NULL || c->size - c->used < n) {
		size_t size = n > CHUNK_SIZE ? n : CHUNK_SIZE;

		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->next = s->chunks;
		c->used = 0;
		c->size = size;
		s->chunks = c;
	}
	c->used += n;
	return memset(c->data + c->used - n, 0, n);
}

char *policy_strndup(struct policy_set *s, const char *p, size_t n)
{
	char *d = policy_alloc(s, n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

struct policy_set *policy_set_new(void)
{
	struct policy_set *s = calloc(1, sizeof(*s));

	if (s != NULL)
		atomic_init(&s->refs, 1);
	return s;
}

struct policy_set *policy_set_ref(struct policy_set *s)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void policy_set_unref(struct policy_set *s)
{
	if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	while (s->chunks != NULL) {
		struct policy_chunk *c = s->chunks;

		s->chunks = c->next;
		free(c);
	}
	free(s->authz);
	free(s->peers);
	free(s);
}

void policy_count(const struct policy_set *s, size_t *authz, size_t *peer)
{
	*authz = s != NULL ? s->nauthz : 0;
	*peer = s != NULL ? s->npeers : 0;
}

void policy_errors_free(struct policy_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
	e->lost = 0;
}

/* Matching */

static bool str_match(const struct policy_str *m, const char *s, size_t len, bool nocase)
{
	int (*cmp)(const char *, const char *, size_t) = nocase ? strncasecmp : strncmp;

	switch (m->kind) {
	case POLICY_MATCH_ANY:
		return true; /* present: an absent value never gets here */
	case POLICY_MATCH_PREFIX:
		return len >= m->len && cmp(s, m->text, m->len) == 0;
	case POLICY_MATCH_SUFFIX:
		return len >= m->len && cmp(s + len - m->len, m->text, m->len) == 0;
	default:
		return len == m->len && cmp(s, m->text, m->len) == 0;
	}
}

/* Does any value of l match s? A NULL s (absent) matches nothing. */
static bool strs_any(const struct policy_strs *l, const char *s, size_t len, bool nocase)
{
	if (s == NULL)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (str_match(&l->v[i], s, len, nocase))
			return true;
	return false;
}

/* The positive and negative forms of a field: unset passes; not-field passes when no
 * value matches. */
static bool strs_field(const struct policy_strs *yes, const struct policy_strs *no, const char *s,
                       size_t len, bool nocase)
{
	if (yes->set && !strs_any(yes, s, len, nocase))
		return false;
	if (no->set && strs_any(no, s, len, nocase))
		return false;
	return true;
}

static bool cidr_match(const struct policy_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *ip;
	uint8_t mapped[16];
	unsigned bits = c->bits;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		ip = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		if (c->family != AF_INET)
			return false;
	} else if (sa->sa_family == AF_INET6) {
		ip = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		/* An IPv4-mapped address is its IPv4 address. */
		if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)ip)) {
			memcpy(mapped, ip + 12, 4);
			ip = mapped;
		} else if (c->family != AF_INET6) {
			return false;
		}
	} else {
		return false;
	}
	for (unsigned i = 0; i < bits / 8; i++)
		if (ip[i] != c->addr[i])
			return false;
	if (bits % 8 != 0) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));

		if ((ip[bits / 8] & mask) != c->addr[bits / 8])
			return false;
	}
	return true;
}

static bool cidrs_any(const struct policy_cidrs *l, const struct sockaddr *sa)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], sa))
			return true;
	return false;
}

static bool cidrs_field(const struct policy_cidrs *yes, const struct policy_cidrs *no,
                        const struct sockaddr *sa)
{
	if (yes->set && !cidrs_any(yes, sa))
		return false;
	if (no->set && cidrs_any(no, sa))
		return false;
	return true;
}

static bool ports_any(const struct policy_ports *l, uint16_t port)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == port)
			return true;
	return false;
}

static bool ports_field(const struct policy_ports *yes, const struct policy_ports *no,
                        uint16_t port)
{
	if (yes->set && !ports_any(yes, port))
		return false;
	if (no->set && ports_any(no, port))
		return false;
	return true;
}

/* "td/ns/<ns>/sa/<sa>": the namespace part, or NULL. */
static const char *principal_namespace(const char *p, size_t *len)
{
	const char *ns = p != NULL ? strstr(p, "/ns/") : NULL;
	const char *end;

	if (ns == NULL)
		return NULL;
	ns += 4;
	end = strchr(ns, '/');
	*len = end != NULL ? (size_t)(end - ns) : strlen(ns);
	return ns;
}

size_t policy_normalize_path(const char *path, size_t len, char *out, size_t size)
{
	size_t n = 0, i = 0;

	if (size == 0)
		return 0;
	/* Decode percent-encoded unreserved characters, upper-case the other escapes. */
	while (i < len && n + 1 < size) {
		char c = path[i];

		if (c == '%' && i + 2 < len && isxdigit((unsigned char)path[i + 1]) &&
		    isxdigit((unsigned char)path[i + 2])) {
			char hex[3] = { path[i + 1], path[i + 2], 0 };
			int v = (int)strtol(hex, NULL, 16);

			if ((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') ||
			    (v >= '0' && v <= '9') || v == '-' || v == '.' || v == '_' || v == '~') {
				out[n++] = (char)v;
			} else {
				if (n + 3 >= size)
					break;
				out[n++] = '%';
				out[n++] = (char)(hex[0] >= 'a' ? hex[0] - 32 : hex[0]);
				out[n++] = (char)(hex[1] >= 'a' ? hex[1] - 32 : hex[1]);
			}
			i += 3;
			continue;
		}
		out[n++] = c;
		i++;
	}
	out[n] = '\0';
	/* Remove dot segments (RFC 3986 5.2.4), in place: out only shrinks. */
	{
		size_t r = 0, w = 0;

		while (r < n) {
			if (strncmp(out + r, "../", 3) == 0) {
				r += 3;
			} else if (strncmp(out + r, "./", 2) == 0) {
				r += 2;
			} else if (strncmp(out + r, "/./", 3) == 0) {
				r += 2;
			} else if (r + 2 == n && strncmp(out + r, "/.", 2) == 0) {
				out[r + 1] = '/';
				r += 1;
			} else if (strncmp(out + r, "/../", 4) == 0 ||
			           (r + 3 == n && strncmp(out + r, "/..", 3) == 0)) {
				if (r + 3 == n) {
					out[r + 2] = '/';
					r += 2;
				} else {
					r += 3;
				}
				while (w > 0 && out[w - 1] != '/')
					w--;
				if (w > 0)
					w--;
			} else if ((r + 1 == n && out[r] == '.') ||
			           (r + 2 == n && strncmp(out + r, "..", 2) == 0)) {
				r = n;
			} else {
				do
					out[w++] = out[r++];
				while (r < n && out[r] != '/');
			}
		}
		n = w;
		out[n] = '\0';
	}
	return n;
}

/* Header values of name joined by "," (as Envoy sees repeated fields), or NULL. */
static const char *header_value(const struct http1_request *h, const char *name, char *buf,
                                size_t size, size_t *len)
{
	size_t n = 0, nlen = strlen(name);
	bool found = false;

	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http1_header *f = &h->headers[i];

		if (f->name.len != nlen || strncasecmp(f->name.p, name, nlen) != 0)
			continue;
		if (found && n + 1 < size)
			buf[n++] = ',';
		size_t take = f->value.len < size - 1 - n ? f->value.len : size - 1 - n;
		memcpy(buf + n, f->value.p, take);
		n += take;
		found = true;
	}
	buf[n] = '\0';
	*len = n;
	return found ? buf : NULL;
}

static bool source_match(const struct policy_source *src, const struct policy_request *req)
{
	size_t plen = req->principal != NULL ? strlen(req->principal) : 0, nslen = 0;
	const char *ns = principal_namespace(req->principal, &nslen);

	return strs_field(&src->principals, &src->not_principals, req->principal, plen, false) &&
	       strs_field(&src->namespaces, &src->not_namespaces, ns, nslen, false) &&
	       cidrs_field(&src->ip_blocks, &src->not_ip_blocks, req->source);
}

static bool operation_match(const struct policy_operation *op, const struct policy_request *req)
{
	const struct http1_request *h = req->http;
	char path[HTTP1_PATH_NORM_MAX];
	size_t plen;

	if (!ports_field(&op->ports, &op->not_ports, req->port))
		return false;
	if (h == NULL)
		return true; /* HTTP-only fields on TCP: see rule_match */
	if (!strs_field(&op->methods, &op->not_methods, h->method.p, h->method.len, false))
		return false;
	if (!strs_field(&op->hosts, &op->not_hosts, h->host.p, h->host.len, true))
		return false;
	if (op->paths.set || op->not_paths.set) {
		plen = policy_normalize_path(h->path.p, h->path.len, path, sizeof(path));
		if (!strs_field(&op->paths, &op->not_paths, path, plen, false))
			return false;
	}
	return true;
}

static bool condition_match(const struct policy_condition *c, const struct policy_request *req)
{
	char buf[HTTP1_PATH_NORM_MAX];
	const char *v;
	size_t len = 0;

	switch (c->key) {
	case POLICY_KEY_HEADER:
		if (req->http == NULL)
			return true; /* see rule_match */
		v = header_value(req->http, c->header, buf, sizeof(buf), &len);
		return strs_field(&c->values, &c->not_values, v, len, false);
	case POLICY_KEY_SOURCE_IP:
		return cidrs_field(&c->ips, &c->not_ips, req->source);
	case POLICY_KEY_SOURCE_NAMESPACE:
		v = principal_namespace(req->principal, &len);
		return strs_field(&c->values, &c->not_values, v, len, false);
	case POLICY_KEY_SOURCE_PRINCIPAL:
		v = req->principal;
		len = v != NULL ? strlen(v) : 0;
		return strs_field(&c->values, &c->not_values, v, len, false);
	case POLICY_KEY_DESTINATION_PORT:
		return ports_field(&c->ports, &c->not_ports, req->port);
	}
	return false;
}

static bool rule_match(const struct policy_rule *rule, enum policy_action action,
                       const struct policy_request *req)
{
	bool any;

	/* An ALLOW rule that needs HTTP cannot match a TCP connection. */
	if (req->http == NULL && rule->http_only && action == POLICY_ALLOW)
		return false;
	if (rule->nfrom > 0) {
		any = false;
		for (size_t i = 0; i < rule->nfrom && !any; i++)
			any = source_match(&rule->from[i], req);
		if (!any)
			return false;
	}
	if (rule->nto > 0) {
		any = false;
		for (size_t i = 0; i < rule->nto && !any; i++)
			any = operation_match(&rule->to[i], req);
		if (!any)
			return false;
	}
	for (size_t i = 0; i < rule->nwhen; i++)
		if (!condition_match(&rule->when[i], req))
			return false;
	return true;
}

static bool selector_match(const struct policy_selector *sel, const struct policy_workload *w)
{
	for (size_t i = 0; i < sel->n; i++) {
		bool found = false;

		for (size_t j = 0; j < w->nlabels && !found; j++)
			found = strcmp(w->labels[j], sel->labels[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

static bool applies(const struct policy_meta *m, const struct policy_selector *sel,
                    const struct policy_workload *w)
{
	if (m->namespace_ != NULL &&
	    (w->namespace_ == NULL || strcmp(m->namespace_, w->namespace_) != 0))
		return false;
	return selector_match(sel, w);
}

/* The index of p's first rule that matches req, or -1. */
static int first_rule(const struct policy_authz *p, const struct policy_request *req)
{
	for (size_t i = 0; i < p->nrules; i++)
		if (rule_match(&p->rules[i], p->action, req))
			return (int)i;
	return -1;
}

void policy_decide(struct policy_set *s, const struct policy_workload *w,
                   const struct policy_request *req, struct policy_decision *d)
{
	struct policy_authz *allow_match = NULL;
	bool any_allow = false, any = false;
	int rule, allow_rule = -1;

	memset(d, 0, sizeof(*d));
	d->rule = d->audit_rule = -1;
	d->allow = true;
	d->why = "no policy applies";
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nauthz; i++) {
		struct policy_authz *p = &s->authz[i];

		if (!applies(&p->meta, &p->selector, w))
			continue;
		any = true;
		if (p->action == POLICY_AUDIT) {
			if (d->audit == NULL && (rule = first_rule(p, req)) >= 0) {
				d->audit = &p->meta;
				d->audit_rule = rule;
			}
			continue;
		}
		if (p->action == POLICY_ALLOW) {
			any_allow = true;
			if (allow_match == NULL && (rule = first_rule(p, req)) >= 0) {
				allow_match = p;
				allow_rule = rule;
			}
			continue;
		}
		if (d->policy == NULL && (rule = first_rule(p, req)) >= 0) {
			d->allow = false;
			d->policy = &p->meta;
			d->rule = rule;
			d->why = "matched a DENY policy";
			atomic_fetch_add_explicit(&p->denied, 1, memory_order_relaxed);
		}
	}
	if (!d->allow)
		return;
	if (allow_match != NULL) {
		d->policy = &allow_match->meta;
		d->rule = allow_rule;
		d->why = "matched an ALLOW policy";
		atomic_fetch_add_explicit(&allow_match->allowed, 1, memory_order_relaxed);
	} else if (any_allow) {
		d->allow = false;
		d->why = "no ALLOW policy matched";
		atomic_fetch_add_explicit(&s->denied_no_match, 1, memory_order_relaxed);
	} else {
		if (any)
			d->why = "no DENY policy matched, and no ALLOW policy applies";
		atomic_fetch_add_explicit(&s->allowed_no_policy, 1, memory_order_relaxed);
	}
}

enum policy_mtls policy_mtls_mode(const struct policy_set *s, const struct policy_workload *w,
                                  uint16_t port, const struct policy_meta **by)
{
	const struct policy_peer *wl = NULL, *ns = NULL;

	*by = NULL;
	if (s == NULL)
		return POLICY_MTLS_UNSET;
	for (size_t i = 0; i < s->npeers; i++) {
		const struct policy_peer *p = &s->peers[i];

		if (!applies(&p->meta, &p->selector, w))
			continue;
		if (p->has_selector && wl == NULL)
			wl = p;
		else if (!p->has_selector && ns == NULL)
			ns = p;
	}
	if (wl != NULL) {
		for (size_t i = 0; i < wl->nports; i++) {
			if (wl->ports[i].port == port && wl->ports[i].mode != POLICY_MTLS_UNSET) {
				*by = &wl->meta;
				return wl->ports[i].mode;
			}
		}
		if (wl->mode != POLICY_MTLS_UNSET) {
			*by = &wl->meta;
			return wl->mode;
		}
	}
	if (ns != NULL && ns->mode != POLICY_MTLS_UNSET) {
		*by = &ns->meta;
		return ns->mode;
	}
	return POLICY_MTLS_UNSET;
}

static void metric_line(FILE *f, const struct policy_meta *m, const char *decision, uint64_t n)
{
	fprintf(f, "meshlet_proxy_policy_decisions_total{policy=\"");
	if (m == NULL) {
		fputs("none", f);
	} else {
		if (m->namespace_ != NULL)
			fprintf(f, "%s/", m->namespace_);
		fputs(m->name, f); /* names are DNS labels: nothing to escape */
	}
	fprintf(f, "\",decision=\"%s\"} %llu\n", decision, (unsigned long long)n);
}

void policy_metrics(const struct policy_set *s, FILE *f)
{
	fprintf(f, "# HELP meshlet_proxy_policy_decisions_total Authorization decisions, by the "
	           "policy that decided (\"none\": no policy applied, or no ALLOW policy "
	           "matched).\n# TYPE meshlet_proxy_policy_decisions_total counter\n");
	metric_line(f, NULL, "allow", s != NULL ? atomic_load(&s->allowed_no_policy) : 0);
	metric_line(f, NULL, "deny", s != NULL ? atomic_load(&s->denied_no_match) : 0);
	for (size_t i = 0; s != NULL && i < s->nauthz; i++) {
		const struct policy_authz *p = &s->authz[i];

		if (p->action == POLICY_ALLOW)
			metric_line(f, &p->meta, "allow", atomic_load(&p->allowed));
		else if (p->action == POLICY_DENY)
			metric_line(f, &p->meta, "deny", atomic_load(&p->denied));
	}
}

static bool same_meta(const struct policy_meta *a, const struct policy_meta *b)
{
	return strcmp(a->name, b->name) == 0 &&
	       (a->namespace_ == NULL ? b->namespace_ == NULL
	                              : b->namespace_ != NULL &&
	                                    strcmp(a->namespace_, b->namespace_) == 0);
}

void policy_carry_counts(struct policy_set *new_set, const struct policy_set *old)
{
	if (new_set == NULL || old == NULL)
		return;
	atomic_store(&new_set->allowed_no_policy, atomic_load(&old->allowed_no_policy));
	atomic_store(&new_set->denied_no_match, atomic_load(&old->denied_no_match));
	for (size_t i = 0; i < new_set->nauthz; i++)
		for (size_t j = 0; j < old->nauthz; j++)
			if (same_meta(&new_set->authz[i].meta, &old->authz[j].meta)) {
				atomic_store(&new_set->authz[i].allowed,
				             atomic_load(&old->authz[j].allowed));
				atomic_store(&new_set->authz[i].denied,
				             atomic_load(&old->authz[j].denied));
				break;
			}
}
