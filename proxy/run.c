/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-proxy run`: settings from file, environment and flags; workers, listeners, drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshlet/cli.h"
#include "meshlet/file.h"
#include "meshlet/log.h"
#include "meshlet/metrics.h"
#include "meshlet/time.h"
#include "meshlet/x509.h"

#include "admin.h"
#include "authz.h"
#include "capture.h"
#include "creds.h"
#include "identity.h"
#include "listener.h"
#include "mux.h"
#include "pool.h"
#include "relay.h"
#include "run.h"
#include "settings.h"
#include "sniff.h"

#define PROG "meshlet-proxy run"
/*
 * What a server picks, best first: tunnel protocol 3 (streams at once on one connection),
 * 2 (streams one after another on kept connections), 1 for older peers. A client offers
 * 3 only on the connections it multiplexes (mux.c), and 2 and 1 on the others.
 */
#define RUN_ALPN_MUX "meshlet/3,meshlet/2,meshlet/1"
#define RUN_ALPN     "meshlet/2,meshlet/1"
#define RUN_ALPN_V1  "meshlet/1"
#define RUN_ALPN_2   "meshlet/2"
#define RUN_ALPN_3   "meshlet/3"
static const unsigned char run_alpn_kept[] = "\x09meshlet/2\x09meshlet/1";
/* A Service's connections with tunnel.service_streams 0: one TLS connection each. */
static const unsigned char run_alpn_service[] = "\x09meshlet/1";
#define RUN_MAX_STATIC  16
#define RUN_MAX_WORKERS 64
/* Destinations remembered as having no sidecar, per worker. */
#define RUN_FALLBACK_SLOTS 1024
/* TLS sessions kept for resumption, one per upstream address, per worker. */
#define RUN_SESSION_SLOTS 256
/* Idle tunnels kept per worker for later streams (protocol 2). */
#define RUN_POOL_MAX 1024
/* Client connections of protocol 3 by destination, and peers remembered as older. */
#define RUN_MUX_BUCKETS 64
#define RUN_NOMUX_SLOTS 256

enum run_kind { RUN_OUTBOUND, RUN_INBOUND, RUN_TUNNEL, RUN_ORIGINATE, RUN_TERMINATE, RUN_KINDS };
static const char *const run_kind_names[] = { "outbound",  "inbound",   "tunnel",
	                                      "originate", "terminate", NULL };

static struct metrics_counter run_conns_mtls = METRICS_COUNTER(
    "meshlet_proxy_mtls_connections_total", "Connections carried over mutual TLS, by listener.",
    "listener", run_kind_names);
static struct metrics_counter run_conns_plain = METRICS_COUNTER(
    "meshlet_proxy_plain_connections_total",
    "Connections carried as plain TCP (outbound pass-through and fallback, permissive "
    "inbound), by listener.",
    "listener", run_kind_names);
static struct metrics_counter run_results =
    METRICS_COUNTER("meshlet_proxy_connection_results_total", "Closed connections, by result.",
                    "result", relay_result_names);
static struct metrics_counter run_bytes_up =
    METRICS_COUNTER("meshlet_proxy_bytes_sent_upstream_total",
                    "Bytes from clients to upstreams, by listener.", "listener", run_kind_names);
static struct metrics_counter run_bytes_down =
    METRICS_COUNTER("meshlet_proxy_bytes_sent_downstream_total",
                    "Bytes from upstreams to clients, by listener.", "listener", run_kind_names);
static const char *const run_failure_names[] = {
	"none",    "untrusted",      "expired", "no_spiffe_id", "trust_domain",
	"peer_id", "no_certificate", "alpn",    "peer_refused", "protocol",
	NULL
};
static struct metrics_counter run_handshake_failures =
    METRICS_COUNTER("meshlet_proxy_handshake_failures_total", "Failed TLS handshakes, by reason.",
                    "reason", run_failure_names);
static struct metrics_counter run_denials =
    METRICS_COUNTER("meshlet_proxy_authorization_denials_total",
                    "Connections refused by authorization.", NULL, NULL);
static const char *const run_decision_names[] = { "allow", "deny", NULL };
static struct metrics_counter run_policy_checks = METRICS_COUNTER(
    "meshlet_proxy_policy_checks_total",
    "Policy decisions on connections (TCP ports) and requests (HTTP ports), by decision.",
    "decision", run_decision_names);
static struct metrics_counter run_fallbacks = METRICS_COUNTER(
    "meshlet_proxy_plain_fallbacks_total",
    "Outbound connections that fell back to plain TCP: the destination had no sidecar.", NULL,
    NULL);
static struct metrics_counter run_restarts = METRICS_COUNTER(
    "meshlet_proxy_stream_restarts_total",
    "Connections started again on a new TLS connection because the peer closed the one "
    "they were started on before it took them (a kept one of tunnel protocol 2, or GOAWAY "
    "in protocol 3).",
    NULL, NULL);
static struct metrics_counter run_strict_refusals = METRICS_COUNTER(
    "meshlet_proxy_strict_refusals_total",
    "Plaintext inbound connections refused because mutual TLS is STRICT.", NULL, NULL);
static const char *const run_tunnel_names[] = { "new", "reused", NULL };
static struct metrics_counter run_tunnel_streams = METRICS_COUNTER(
    "meshlet_proxy_tunnel_streams_total",
    "Connections carried in mutual TLS, by whether their TLS connection was new or had "
    "carried an earlier connection (tunnel protocols 2 and 3), by listener side (client: "
    "outbound and originate; server: tunnel and terminate).",
    "tunnel", run_tunnel_names);

/* A static listener's target. */
struct run_static {
	enum run_kind kind;
	char listen[128];
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
	bool has_id;
	struct spiffe_id id;
};

struct run;

/* What a relay carries for us: which listener made it, and what it was sent to. */
struct run_conn {
	struct run_worker *w;
	struct relay *r;
	enum run_kind kind;
	uint16_t app_port; /* server side: the application's port, for policy */
	int rule;          /* the rule of policy that allowed the connection, or -1 */
	char policy[128];  /* the policy that decided the connection (TCP ports), or "" */
	const struct run_static *st;
	bool mtls;
	bool fell_back;
	bool service;   /* outbound: to a Service address, on its own port (probed) */
	bool restarted; /* started again after its kept tunnel closed (run_restart) */
	bool captured;  /* inbound: mutual TLS that came to the capture port (via a Service) */
	bool muxed;     /* a stream of tunnel protocol 3 */
	bool mux_fresh; /* client: its connection was made for it */
	struct run_conn *idle_next, *idle_prev; /* server side: a kept tunnel between streams */
	bool idle;
	struct sockaddr_storage orig; /* outbound: the original destination */
	struct sockaddr_storage up;   /* the upstream a TLS session is for */
};

/* The SSL ex_data index that points an upstream TLS connection at its struct run_conn. */
static int run_conn_index = -1;
/* The same for a client connection of protocol 3, at its struct run_mux. */
static int run_mux_index = -1;

struct run_fallback {
	struct sockaddr_storage addr;
	uint64_t until_ms;
};

/*
 * A session ticket from an upstream proxy, to resume the next connection to the same
 * address: a resumed TLS 1.3 handshake skips both certificates' parsing and checks and
 * both signatures, most of what a new connection costs.
 */
struct run_session {
	struct sockaddr_storage addr;
	SSL_SESSION *sess;
};

/* An inbound connection whose first bytes are awaited (sniff.h). */
struct run_sniff {
	struct sniff s;
	struct run_listen *ls;
	struct sockaddr_storage peer;
	socklen_t plen;
};

/*
 * A connection of tunnel protocol 3 (mux.h) and what its streams are: a client's goes to
 * addr for the listener st, made from ctx (compared, not held: the mux's TLS state holds
 * it); a server's streams are those of the listener that accepted it.
 */
struct run_mux {
	struct run_worker *w;
	struct mux *m;
	struct run_mux *next, *prev;
	bool server;
	enum run_kind kind;
	const struct run_static *st;
	bool captured;
	struct sockaddr_storage orig;
	struct sockaddr_storage addr;
};

/* A peer that answered protocol 3 with an older one: not asked again for a while. */
struct run_nomux {
	struct sockaddr_storage addr;
	uint64_t until_ms;
};

/* One listening socket of a worker, and what its connections are. */
struct run_listen {
	struct run_worker *w;
	enum run_kind kind;
	const struct run_static *st; /* static listeners */
	struct listener *l;
};

struct run_worker {
	struct run *run;
	struct loop *loop;
	pthread_t thread;
	bool started;
	struct run_listen listens[6 + RUN_MAX_STATIC];
	size_t nlistens;
	struct run_fallback fallback[RUN_FALLBACK_SLOTS];
	struct run_session sessions[RUN_SESSION_SLOTS];
	struct pool *pool;                      /* client side: idle tunnels to start streams on */
	struct run_conn *idle;                  /* server side: kept tunnels waiting for a stream */
	struct run_mux *muxes[RUN_MUX_BUCKETS]; /* client side: protocol 3, by destination */
	struct run_mux *server_muxes;           /* server side: protocol 3 */
	struct run_nomux nomux[RUN_NOMUX_SLOTS];
	struct sniff *sniffs; /* inbound connections whose first bytes are awaited */
};

struct run {
	struct settings cfg;
	struct authz *authz;
	struct creds *creds;
	struct identity *identity;
	struct admin *admin;
	struct relay_config relay_cfg;
	struct mux_config mux_cfg, mux_server_cfg;
	struct relay_limit limit;
	struct capture_cidrs mesh, required, services;
	struct run_static statics[RUN_MAX_STATIC];
	size_t nstatics;
	struct run_worker workers[RUN_MAX_WORKERS];
	size_t nworkers;
	_Atomic bool draining;
	_Atomic bool stopping; /* the workers are stopped: nothing new starts */
};

static bool run_cidr_match(const struct capture_cidrs *set, const struct sockaddr_storage *ss)
{
	const unsigned char *a;
	size_t len;

	if (set->all)
		return true;
	if (ss->ss_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
		len = 4;
	} else {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		len = 16;
	}
	for (size_t i = 0; i < set->n; i++) {
		const struct capture_cidr *c = &set->cidr[i];
		unsigned bits = c->prefix;
		size_t k;

		if (c->family != ss->ss_family)
			continue;
		for (k = 0; k < len && bits >= 8; k++, bits -= 8)
			if (a[k] != c->addr[k])
				break;
		if (k < len && bits >= 8)
			continue;
		if (bits == 0 || k == len ||
		    ((a[k] ^ c->addr[k]) & (0xff << (8 - bits)) & 0xff) == 0)
			return true;
	}
	return false;
}

static void run_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static uint16_t run_port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
	                                      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static socklen_t run_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void run_addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host,
		          sizeof(host));
	else {
		snprintf(buf, size, "-");
		return;
	}
	snprintf(buf, size, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, run_port_of(ss));
}

/* A slot for an address (IP and port) among n. */
static size_t run_addr_slot(const struct sockaddr_storage *a, size_t n)
{
	const unsigned char *p = (const unsigned char *)a;
	size_t len = run_len(a);
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h % n;
}

static bool run_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	return a->ss_family == b->ss_family && memcmp(a, b, run_len(a)) == 0;
}

/* creds calls this with each session an upstream gives us: keep it for its address. */
static int run_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct run_conn *c = SSL_get_ex_data(ssl, run_conn_index);
	struct run_mux *rm = SSL_get_ex_data(ssl, run_mux_index);
	struct run_worker *w = c != NULL ? c->w : rm != NULL ? rm->w : NULL;
	const struct sockaddr_storage *up = c != NULL ? &c->up : rm != NULL ? &rm->addr : NULL;
	struct run_session *slot;

	if (w == NULL || up->ss_family == AF_UNSPEC)
		return 0;
	slot = &w->sessions[run_addr_slot(up, RUN_SESSION_SLOTS)];
	SSL_SESSION_free(slot->sess);
	slot->addr = *up;
	slot->sess = sess;
	return 1;
}

/* The session kept for up, when there is a fresh one. */
static SSL_SESSION *run_session_for(struct run_worker *w, const struct sockaddr_storage *up)
{
	struct run_session *slot = &w->sessions[run_addr_slot(up, RUN_SESSION_SLOTS)];

	if (slot->sess != NULL && run_same_addr(&slot->addr, up) &&
	    SSL_SESSION_is_resumable(slot->sess) &&
	    (time_t)(SSL_SESSION_get_time(slot->sess) + SSL_SESSION_get_timeout(slot->sess)) >
	        time(NULL))
		return slot->sess;
	return NULL;
}

/* Offers the session kept for the upstream of c, when there is a fresh one. */
static void run_resume(struct relay *r, struct run_conn *c, const struct sockaddr_storage *up)
{
	SSL *ssl = relay_ssl(r, RELAY_UP);
	SSL_SESSION *sess;

	if (ssl == NULL)
		return;
	c->up = *up;
	SSL_set_ex_data(ssl, run_conn_index, c);
	sess = run_session_for(c->w, up);
	if (sess != NULL)
		creds_resume(ssl, sess);
}

/*
 * The slot of the remembered "no sidecar here" answer for a destination: its IP (a pod
 * has a sidecar or not, on every port), or its IP and port (a Service's ports may lead to
 * ports of its backends that are captured or not).
 */
static struct run_fallback *run_fallback_slot(struct run_worker *w,
                                              const struct sockaddr_storage *dst, bool port)
{
	uint32_t h = port ? run_port_of(dst) : 2166136261u;
	const unsigned char *p =
	    dst->ss_family == AF_INET
	        ? (const unsigned char *)&((const struct sockaddr_in *)dst)->sin_addr
	        : (const unsigned char *)&((const struct sockaddr_in6 *)dst)->sin6_addr;
	size_t n = dst->ss_family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return &w->fallback[h % RUN_FALLBACK_SLOTS];
}

static bool run_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		              &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The peer's SPIFFE ID as policies name principals: without "spiffe://". */
static const char *run_principal(struct relay *r)
{
	const char *id = relay_peer_id(r, RELAY_DOWN);

	return id != NULL && strncmp(id, "spiffe://", 9) == 0 ? id + 9 : id;
}

/*
 * The policy's decision for a connection to port (h NULL) or for one HTTP request, counted
 * and, when an AUDIT policy matched, logged. Returns the set the decision points into:
 * the caller unrefs it once done with d.
 */
static struct policy_set *run_decide(struct run_conn *c, uint16_t port,
                                     const struct http1_request *h, struct policy_decision *d)
{
	struct run *run = c->w->run;
	struct sockaddr_storage src;
	struct policy_set *set = authz_current(run->authz);
	char name[128], method[32] = "", path[512] = "";

	relay_source(c->r, &src);
	policy_decide(set, authz_workload(run->authz),
	              &(struct policy_request){
	                  .principal = run_principal(c->r),
	                  .source = src.ss_family != AF_UNSPEC ? (struct sockaddr *)&src : NULL,
	                  .port = port,
	                  .http = h },
	              d);
	metrics_inc(&run_policy_checks, d->allow ? 0 : 1);
	if (d->audit != NULL) {
		if (h != NULL) {
			snprintf(method, sizeof(method), "%.*s", (int)h->method.len, h->method.p);
			snprintf(path, sizeof(path), "%.*s", (int)h->target.len, h->target.p);
		}
		log_info("policy audit",
		         LOG_STR("policy", authz_policy_name(d->audit, name, sizeof(name))),
		         LOG_INT("rule", d->audit_rule),
		         LOG_STR("peer", relay_peer_id(c->r, RELAY_DOWN)), LOG_INT("port", port),
		         LOG_STR("method", h != NULL ? method : NULL),
		         LOG_STR("path", h != NULL ? path : NULL), LOG_BOOL("allowed", d->allow));
	}
	return set;
}

/* One HTTP request on an HTTP port: the policy's decision, logged when asked. */
static bool run_decide_http(void *arg, const struct http1_request *h)
{
	struct run_conn *c = arg;
	struct policy_decision d;
	struct policy_set *set = run_decide(c, c->app_port, h, &d);
	char name[128], method[32], path[512], host[256];

	if (c->w->run->cfg.access_log) {
		snprintf(method, sizeof(method), "%.*s", (int)h->method.len, h->method.p);
		snprintf(path, sizeof(path), "%.*s", (int)h->target.len, h->target.p);
		snprintf(host, sizeof(host), "%.*s", (int)h->host.len, h->host.p);
		log_info("request", LOG_STR("listener", run_kind_names[c->kind]),
		         LOG_STR("peer", relay_peer_id(c->r, RELAY_DOWN)),
		         LOG_INT("port", c->app_port), LOG_STR("method", method),
		         LOG_STR("path", path), LOG_STR("host", host),
		         LOG_STR("decision", d.allow ? "allow" : "deny"),
		         LOG_STR("policy", authz_policy_name(d.policy, name, sizeof(name))),
		         LOG_INT("rule", d.rule), LOG_STR("why", d.why));
	}
	policy_set_unref(set);
	return d.allow;
}

/*
 * Policy for a connection to the application's port: per request on HTTP ports (the
 * relay follows HTTP), else decided now, with what TCP shows. Returns 0 or -EACCES.
 */
static int run_authorize(struct relay *r, struct run_conn *c, uint16_t port)
{
	struct run *run = c->w->run;
	struct policy_set *set;
	struct policy_decision d;
	char name[128];

	c->app_port = port;
	if (authz_is_http(run->authz, port))
		return relay_http_set(r, run_decide_http, c, authz_head_limit(run->authz));
	set = run_decide(c, port, NULL, &d);
	snprintf(c->policy, sizeof(c->policy), "%s",
	         d.policy != NULL ? authz_policy_name(d.policy, name, sizeof(name)) : "");
	c->rule = d.rule;
	if (!d.allow)
		log_warnx("connection denied by policy",
		          LOG_STR("listener", run_kind_names[c->kind]),
		          LOG_STR("peer", relay_peer_id(r, RELAY_DOWN)), LOG_INT("port", port),
		          LOG_STR("policy", c->policy[0] != '\0' ? c->policy : NULL),
		          LOG_INT("rule", d.rule), LOG_STR("why", d.why));
	policy_set_unref(set);
	return d.allow ? 0 : -EACCES;
}

/* Server side: a kept tunnel joins (or leaves) its worker's list of idle ones. */
static void run_idle_link(struct run_conn *c)
{
	struct run_worker *w = c->w;

	c->idle = true;
	c->idle_prev = NULL;
	c->idle_next = w->idle;
	if (w->idle != NULL)
		w->idle->idle_prev = c;
	w->idle = c;
}

static void run_idle_unlink(struct run_conn *c)
{
	if (!c->idle)
		return;
	if (c->idle_prev != NULL)
		c->idle_prev->idle_next = c->idle_next;
	else
		c->w->idle = c->idle_next;
	if (c->idle_next != NULL)
		c->idle_next->idle_prev = c->idle_prev;
	c->idle = false;
}

/*
 * Server side: whether a TLS connection (ssl) was made with the identity and trust bundle
 * in force now. One made before a change takes no more streams (clients make new ones).
 */
static bool run_server_ctx_current(struct run *run, SSL *ssl)
{
	SSL_CTX *now = creds_server_ctx(run->creds);
	bool same = now != NULL && ssl != NULL && SSL_get_SSL_CTX(ssl) == now;

	SSL_CTX_free(now);
	return same;
}

/* Whether the handshake on ssl chose tunnel protocol 2. */
static bool run_alpn_2(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(RUN_ALPN_2) - 1 && memcmp(p, RUN_ALPN_2, n) == 0;
}

/* Whether the handshake on ssl chose one of our protocols (any: we offered only ours). */
static bool run_alpn_ours(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n > 0;
}

/* Whether the handshake on ssl chose tunnel protocol 3. */
static bool run_alpn_3(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(RUN_ALPN_3) - 1 && memcmp(p, RUN_ALPN_3, n) == 0;
}

/*
 * A TLS peer must have a verified SPIFFE ID of our trust domain, and a static originate
 * listener's upstream (st) must be the ID it names. Returns 0, or -EACCES, logged.
 */
static int run_check_peer(struct run *run, enum run_kind kind, const struct run_static *st,
                          const struct relay_peer *peer)
{
	if (peer->id == NULL || !spiffe_id_member_of(peer->id, run->cfg.trust_domain) ||
	    (peer->side == RELAY_UP && st != NULL && st->has_id &&
	     !spiffe_id_equal(peer->id, &st->id))) {
		metrics_inc(&run_denials, 0);
		log_warnx("peer refused", LOG_STR("listener", run_kind_names[kind]),
		          LOG_STR("peer", peer->id_text != NULL ? peer->id_text : "(none)"));
		return -EACCES;
	}
	return 0;
}

static int run_mux_accept(struct relay *r, struct run_conn *c, const struct relay_peer *peer);

/* Authorization hook: run_check_peer, then the protocol the handshake chose. */
static int run_on_handshake(struct relay *r, const struct relay_peer *peer)
{
	struct run_conn *c = relay_data(r);

	if (run_check_peer(c->w->run, c->kind, c->st, peer) < 0)
		return -EACCES;
	/* Behind a Service, a TLS server of the mesh that is no proxy would take our preamble
	 * for its application's bytes. */
	if (peer->side == RELAY_UP && c->service && !run_alpn_ours(peer->ssl)) {
		log_warnx("peer refused", LOG_STR("listener", run_kind_names[c->kind]),
		          LOG_STR("peer", peer->id_text),
		          LOG_STR("why", "a Service backend that is not a meshlet proxy (no "
		                         "meshlet ALPN) but holds a certificate of the mesh"));
		return -EACCES;
	}
	/* Protocol 3: the connection carries streams of its own (run_mux_on_open). */
	if (peer->side == RELAY_DOWN && run_alpn_3(peer->ssl))
		return run_mux_accept(r, c, peer);
	metrics_inc(&run_tunnel_streams, 0);
	/* Protocol 2: streams; a terminate listener authorizes each (on_preamble). */
	if (run_alpn_2(peer->ssl))
		return relay_set_framed(r, peer->side);
	/* A static terminate listener: the application's port is its upstream's. */
	if (peer->side == RELAY_DOWN && c->kind == RUN_TERMINATE)
		return run_authorize(r, c, run_port_of(&c->st->upstream));
	return 0;
}

/*
 * Tunnel: the preamble names the application's port; connect to it on this pod. A static
 * terminate listener (protocol 2) goes to its upstream whatever the port.
 */
static int run_on_preamble(struct relay *r, const struct preamble *p)
{
	struct run_conn *c = relay_data(r);
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	if (c->idle) {
		run_idle_unlink(c);
		metrics_inc(&run_tunnel_streams, 1);
	}
	if (c->kind == RUN_TERMINATE) {
		if (run_authorize(r, c, run_port_of(&c->st->upstream)) < 0)
			return -EACCES;
		return relay_set_upstream(r, (const struct sockaddr *)&c->st->upstream,
		                          c->st->upstream_len, NULL, NULL);
	}
	/*
	 * Through a Service: the connection came to the application's own port (kube-proxy
	 * chose it: the targetPort), which the preamble, naming the Service's port, cannot
	 * know. The preamble's port is the client's view, for nothing but its logs.
	 */
	if (c->captured) {
		if (run_authorize(r, c, run_port_of(&c->orig)) < 0)
			return -EACCES;
		return relay_set_upstream(r, (struct sockaddr *)&c->orig, run_len(&c->orig), NULL,
		                          NULL);
	}
	/* The address the tunnel connection came to is this pod's own address. */
	if (getsockname(relay_fd(r, RELAY_DOWN), (struct sockaddr *)&local, &len) < 0)
		return -errno;
	if (run_authorize(r, relay_data(r), p->port) < 0)
		return -EACCES;
	run_set_port(&local, p->port);
	return relay_set_upstream(r, (struct sockaddr *)&local, run_len(&local), NULL, NULL);
}

/* Protocol 3 connections of a worker */

static struct run_mux **run_mux_list(struct run_mux *rm)
{
	return rm->server ? &rm->w->server_muxes
	                  : &rm->w->muxes[run_addr_slot(&rm->addr, RUN_MUX_BUCKETS)];
}

static void run_mux_link(struct run_mux *rm)
{
	struct run_mux **head = run_mux_list(rm);

	rm->prev = NULL;
	rm->next = *head;
	if (*head != NULL)
		(*head)->prev = rm;
	*head = rm;
}

static void run_mux_unlink(struct run_mux *rm)
{
	if (rm->prev != NULL)
		rm->prev->next = rm->next;
	else
		*run_mux_list(rm) = rm->next;
	if (rm->next != NULL)
		rm->next->prev = rm->prev;
}

static struct run_nomux *run_nomux_slot(struct run_worker *w, const struct sockaddr_storage *a)
{
	return &w->nomux[run_addr_slot(a, RUN_NOMUX_SLOTS)];
}

/* A peer that spoke an older protocol is asked again after outbound.fallback_ttl. */
static bool run_nomux(struct run_worker *w, const struct sockaddr_storage *a)
{
	struct run_nomux *slot = run_nomux_slot(w, a);

	return slot->until_ms > loop_now(w->loop) && run_same_addr(&slot->addr, a);
}

/* Client: the handshake of a protocol 3 connection is done: the same checks as a relay's. */
static int run_mux_on_handshake(struct mux *m, const struct relay_peer *peer)
{
	struct run_mux *rm = mux_arg(m);

	return run_check_peer(rm->w->run, rm->kind, rm->st, peer);
}

/*
 * A protocol 3 connection ends: it is no longer found; a handshake that failed is counted
 * once (its streams do not count it again); an older peer is remembered.
 */
static void run_mux_on_gone(struct mux *m, enum mux_fail how)
{
	struct run_mux *rm = mux_arg(m);
	struct run_worker *w = rm->w;
	char dst[64];

	run_mux_unlink(rm);
	if (how == MUX_FAIL_HANDSHAKE && mux_ssl(m) != NULL)
		metrics_inc(&run_handshake_failures, creds_handshake_failure(mux_ssl(m), NULL, 0));
	if (how == MUX_FAIL_DOWNGRADE) {
		struct run_nomux *slot = run_nomux_slot(w, &rm->addr);
		struct relay_tunnel *t;
		int fd;
		SSL *ssl;

		/* Protocol 2: the connection is kept for the first of its streams to start again.
		 */
		if (run_alpn_2(mux_ssl(m)) && (t = calloc(1, sizeof(*t))) != NULL) {
			if (mux_take(m, &fd, &ssl) == 0) {
				SSL_set_ex_data(ssl, run_mux_index, NULL);
				relay_tls_keepalive(fd);
				t->fd = fd;
				t->ssl = ssl;
				t->peer_id = mux_peer_id(m) != NULL ? strdup(mux_peer_id(m)) : NULL;
				t->not_after = relay_tls_not_after(ssl);
				t->idle_since = loop_now(w->loop);
				pool_put(w->pool, (const struct sockaddr *)&rm->addr, rm->st, t);
			} else {
				free(t);
			}
		}
		slot->addr = rm->addr;
		slot->until_ms = loop_now(w->loop) + (uint64_t)w->run->cfg.fallback_ttl;
		run_addr_text(&rm->addr, dst, sizeof(dst));
		log_info("peer proxy speaks an older tunnel protocol: one TLS connection per "
		         "connection",
		         LOG_STR("destination", dst),
		         LOG_INT("remembered_ms", w->run->cfg.fallback_ttl));
	}
	if (mux_ssl(m) != NULL)
		SSL_set_ex_data(mux_ssl(m), run_mux_index, NULL);
	free(rm);
}

/* Server: a new stream on a protocol 3 connection is a relay of its own. */
static int run_mux_on_open(struct mux *m, struct mux_stream *s)
{
	struct run_mux *rm = mux_arg(m);
	struct run_worker *w = rm->w;
	struct run *run = w->run;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	bool reused = mux_streams_total(m) > 1;
	struct run_conn *c;
	struct relay *r;
	int err;

	if (atomic_load(&run->draining) || !run_server_ctx_current(run, mux_ssl(m)))
		return MUX_OPEN_GOAWAY;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->w = w;
	c->kind = rm->kind;
	c->st = rm->st;
	c->mtls = true;
	c->muxed = true;
	c->rule = -1;
	c->captured = rm->captured;
	c->orig = rm->orig;
	if (getpeername(mux_fd(m), (struct sockaddr *)&peer, &plen) < 0)
		peer.ss_family = AF_UNSPEC;
	r = relay_new_stream(w->loop, &run->relay_cfg, s,
	                     peer.ss_family != AF_UNSPEC ? (struct sockaddr *)&peer : NULL, reused,
	                     c, &err);
	if (r == NULL) {
		free(c);
		return err;
	}
	c->r = r;
	metrics_inc(&run_tunnel_streams, reused ? 1 : 0);
	relay_start(r);
	return 0;
}

/* Server: the handshake chose protocol 3: the connection becomes a mux, the relay ends. */
static int run_mux_accept(struct relay *r, struct run_conn *c, const struct relay_peer *peer)
{
	struct run_worker *w = c->w;
	struct run_mux *rm = calloc(1, sizeof(*rm));
	int fd, err;
	SSL *ssl;

	if (rm == NULL)
		return -ENOMEM;
	if (relay_detach(r, RELAY_DOWN, &fd, &ssl) < 0) {
		free(rm);
		return -EINVAL;
	}
	rm->w = w;
	rm->server = true;
	rm->kind = c->kind;
	rm->st = c->st;
	rm->captured = c->captured;
	rm->orig = c->orig;
	rm->m = mux_accept(w->loop, &w->run->mux_server_cfg, fd, ssl, peer->id_text,
	                   relay_tls_not_after(ssl), rm, &err);
	if (rm->m == NULL) {
		free(rm);
		return 0; /* the relay ends anyway: detached */
	}
	run_mux_link(rm);
	return 0;
}

/* Client: a protocol 3 connection to up for the listener st, from ctx, or NULL. */
static struct run_mux *run_mux_find(struct run_worker *w, const struct sockaddr_storage *up,
                                    const struct run_static *st, SSL_CTX *ctx)
{
	struct run_mux *rm = w->muxes[run_addr_slot(up, RUN_MUX_BUCKETS)], *next;

	for (; rm != NULL; rm = next) {
		next = rm->next;
		if (rm->st != st || !run_same_addr(&rm->addr, up))
			continue;
		/*
		 * Made with an identity or trust bundle that changed since, or with a certificate
		 * too near its end: retired (it closes once its streams are done). A full one
		 * stays for its streams.
		 */
		if (SSL_get_SSL_CTX(mux_ssl(rm->m)) != ctx) {
			mux_goaway(rm->m);
			continue;
		}
		if (mux_usable(rm->m, RELAY_TUNNEL_CERT_MARGIN_S))
			return rm;
		if (mux_streams(rm->m) < MUX_MAX_STREAMS)
			mux_goaway(rm->m);
	}
	return NULL;
}

/* Client: a new protocol 3 connection to up (it connects in the background), or NULL. */
static struct run_mux *run_mux_dial(struct run_worker *w, const struct sockaddr_storage *up,
                                    const struct run_static *st, enum run_kind kind, SSL_CTX *ctx)
{
	struct run_mux *rm = calloc(1, sizeof(*rm));
	SSL *ssl = rm != NULL ? relay_tls_new(ctx) : NULL;
	SSL_SESSION *sess;
	int err;

	if (ssl == NULL) {
		free(rm);
		return NULL;
	}
	rm->w = w;
	rm->kind = kind;
	rm->st = st;
	rm->addr = *up;
	SSL_set_ex_data(ssl, run_mux_index, rm);
	sess = run_session_for(w, up);
	if (sess != NULL)
		creds_resume(ssl, sess);
	rm->m = mux_connect(w->loop, &w->run->mux_cfg, (const struct sockaddr *)up, run_len(up),
	                    ssl, rm, &err);
	if (rm->m == NULL) {
		free(rm);
		return NULL;
	}
	run_mux_link(rm);
	return rm;
}

/* Draining: no new streams on any protocol 3 connection; each closes once it has none. */
static void run_mux_goaway_all(struct run_worker *w)
{
	for (size_t i = 0; i <= RUN_MUX_BUCKETS; i++) {
		struct run_mux *rm = i < RUN_MUX_BUCKETS ? w->muxes[i] : w->server_muxes, *next;

		for (; rm != NULL; rm = next) {
			next = rm->next;
			mux_goaway(rm->m);
		}
	}
}

/* Stopping: what is left closes now. */
static void run_mux_abort_all(struct run_worker *w)
{
	for (size_t i = 0; i <= RUN_MUX_BUCKETS; i++) {
		struct run_mux **head = i < RUN_MUX_BUCKETS ? &w->muxes[i] : &w->server_muxes;

		while (*head != NULL)
			mux_abort((*head)->m); /* on_gone unlinks it */
	}
}

/*
 * The destination has no sidecar (why): plain TCP to the original port, remembered for
 * outbound.fallback_ttl when the answer was a clear one (remember); unless it is in an
 * mTLS-required range (fail closed: err).
 */
static int run_fall_back(struct relay *r, struct run_conn *c, int err, const char *why,
                         bool remember)
{
	struct run *run = c->w->run;
	struct run_fallback *slot;
	char dst[64];

	run_addr_text(&c->orig, dst, sizeof(dst));
	if (run->cfg.mtls_required_ranges != NULL && run_cidr_match(&run->required, &c->orig)) {
		log_warnx("no sidecar at an mTLS-required destination: refused",
		          LOG_STR("destination", dst), LOG_STR("why", why));
		return err;
	}
	if (remember) {
		slot = run_fallback_slot(c->w, &c->orig, c->service);
		slot->addr = c->orig;
		slot->until_ms = loop_now(c->w->loop) + (uint64_t)run->cfg.fallback_ttl;
	}
	c->mtls = false;
	c->fell_back = true;
	metrics_inc(&run_fallbacks, 0);
	log_info("no sidecar at the destination: plain TCP", LOG_STR("destination", dst),
	         LOG_STR("why", why),
	         LOG_INT("remembered_ms", remember ? run->cfg.fallback_ttl : 0));
	return relay_set_upstream(r, (struct sockaddr *)&c->orig, run_len(&c->orig), NULL, NULL);
}

/*
 * A mutual TLS upstream for c, made from ctx: a kept tunnel when pooled and the pool has one
 * (protocol 2, no handshake), else a new TLS connection that resumes the session kept for
 * its address. A static originate listener's goes to its upstream; an outbound one to the
 * destination's tunnel port with a preamble naming the original port, or, for a Service,
 * to its own port, probed (run_on_probe_failed), and with tunnel.service_streams 0 as
 * meshlet/1 only.
 */
static int run_upstream(struct relay *r, struct run_conn *c, SSL_CTX *ctx, bool pooled)
{
	struct run *run = c->w->run;
	struct sockaddr_storage up = c->kind == RUN_ORIGINATE ? c->st->upstream : c->orig;
	const struct sockaddr *to = (const struct sockaddr *)&up;
	struct preamble pre, *p = NULL;
	struct relay_tunnel *t;
	int err;

	if (c->kind != RUN_ORIGINATE) {
		preamble_from_sockaddr(&pre, (struct sockaddr *)&c->orig);
		p = &pre;
		if (!c->service)
			run_set_port(&up, (uint16_t)run->cfg.port_tunnel);
	}
	/*
	 * Protocol 3: the stream goes on a connection to the peer that carries others at once
	 * (or one that is connecting: it waits for it). Not for Services: kube-proxy balances
	 * TLS connections, so every connection of the client would go to one backend.
	 */
	c->muxed = false;
	if (run->cfg.tunnel_multiplex && run->cfg.tunnel_reuse && !c->service &&
	    !run_nomux(c->w, &up)) {
		struct run_mux *rm = run_mux_find(c->w, &up, c->st, ctx);
		bool fresh = rm == NULL;

		if (rm == NULL)
			rm = run_mux_dial(c->w, &up, c->st, c->kind, ctx);
		/* Counted as it ends, once its connection was up (run_on_close). */
		if (rm != NULL && relay_use_stream(r, to, run_len(&up), rm->m, p) == 0) {
			c->muxed = true;
			c->mux_fresh = fresh;
			return 0;
		}
	}
	t = pooled ? pool_take(c->w->pool, to, c->st, ctx) : NULL;
	if (t != NULL) {
		/* One that a protocol 3 connection left (an older peer) carried no stream yet. */
		bool fresh = t->streams == 0;

		err = relay_use_tunnel(r, to, run_len(&up), t, p);
		if (err == 0)
			metrics_inc(&run_tunnel_streams, fresh ? 0 : 1);
		return err;
	}
	err = relay_set_upstream(r, to, run_len(&up), ctx, p);
	if (err == 0 && c->service)
		err = relay_probe_upstream(r, (uint32_t)run->cfg.service_probe_timeout);
	/* The client context offers protocol 3 only on connections it multiplexes. */
	if (err == 0 && run->cfg.tunnel_reuse &&
	    (c->service && run->cfg.service_streams == 0
	         ? SSL_set_alpn_protos(relay_ssl(r, RELAY_UP), run_alpn_service,
	                               sizeof(run_alpn_service) - 1)
	         : SSL_set_alpn_protos(relay_ssl(r, RELAY_UP), run_alpn_kept,
	                               sizeof(run_alpn_kept) - 1)) != 0)
		err = -ENOMEM;
	if (err == 0)
		run_resume(r, c, &up);
	return err;
}

/*
 * A kept tunnel was closed by the peer before it took the stream (ERR_RELAY_STALE): the
 * stream starts again on a new TLS connection to the same place, as the first of a tunnel
 * would (a Service's is probed again: kube-proxy may pick another backend).
 */
static int run_restart(struct relay *r, struct run_conn *c)
{
	SSL_CTX *ctx = creds_client_ctx(c->w->run->creds);
	char text[64];
	int err;

	if (ctx == NULL)
		return ERR_RELAY_STALE;
	c->restarted = true;
	err = run_upstream(r, c, ctx, false);
	SSL_CTX_free(ctx);
	if (err < 0)
		return err;
	metrics_inc(&run_restarts, 0);
	run_addr_text(c->kind == RUN_ORIGINATE ? &c->st->upstream : &c->orig, text, sizeof(text));
	log_info("kept connection closed by the peer before it took the stream: starting it on "
	         "a new one",
	         LOG_STR("listener", run_kind_names[c->kind]), LOG_STR("destination", text));
	return 0;
}

/* Outbound: a refused tunnel port means no sidecar there: plain to the original port. */
static int run_on_upstream_failed(struct relay *r, int err)
{
	struct run_conn *c = relay_data(r);

	/* The process stops: the loop's last tasks start nothing new. */
	if (atomic_load(&c->w->run->stopping))
		return err;

	if (err == ERR_RELAY_STALE && (c->kind == RUN_OUTBOUND || c->kind == RUN_ORIGINATE))
		return run_restart(r, c);
	/* The peer answered protocol 3 with an older one (remembered): a connection of its own. */
	if (err == ERR_MUX_DOWNGRADE && (c->kind == RUN_OUTBOUND || c->kind == RUN_ORIGINATE)) {
		SSL_CTX *ctx = creds_client_ctx(c->w->run->creds);

		if (ctx == NULL)
			return err;
		err = run_upstream(r, c, ctx, true);
		SSL_CTX_free(ctx);
		return err;
	}

	/*
	 * A restarted stream's pod refusing its tunnel port is a pod going away (it closed our
	 * kept connection as it drains), not one without a sidecar: no plain fallback.
	 */
	if (c->kind != RUN_OUTBOUND || !c->mtls || c->fell_back || c->service || c->restarted ||
	    err != -ECONNREFUSED)
		return err;
	return run_fall_back(r, c, err, "the tunnel port refused the connection", true);
}

/*
 * Outbound to a Service: what answered our TLS hello on the Service's port is not a proxy
 * of ours (an application without a sidecar: it answered something that is not our TLS,
 * kept silent, or closed). A peer that chose our protocol is one of ours: the relay keeps
 * its failures (a certificate we refuse) and never asks. An answer or a silence is
 * remembered; a close is not, as a proxy of ours closes too when it is at its connection
 * limit or going away: this connection goes in plain TCP (which such a proxy refuses in
 * STRICT mode), the next one tries mutual TLS again.
 */
static int run_on_probe_failed(struct relay *r, int err)
{
	struct run_conn *c = relay_data(r);
	char why[160];

	if (atomic_load(&c->w->run->stopping))
		return err;

	if (c->kind != RUN_OUTBOUND || !c->service || c->fell_back)
		return err;
	snprintf(why, sizeof(why), "the Service's backend %s",
	         err == -ETIMEDOUT ? "did not answer the TLS hello in time"
	         : err == -EPROTO  ? "answered the TLS hello with something else"
	                           : "closed on the TLS hello");
	return run_fall_back(r, c, err, why, err == -ETIMEDOUT || err == -EPROTO);
}

static void run_on_close(struct relay *r, const struct relay_stats *st)
{
	struct run_conn *c = relay_data(r);
	struct run_worker *w = c->w;
	SSL *up_ssl = relay_ssl(r, RELAY_UP);
	char src[64], dst[64];

	if (up_ssl != NULL)
		SSL_set_ex_data(up_ssl, run_conn_index, NULL);
	/* A kept tunnel that ended between streams: there is no connection to report. */
	if (st->idle_end) {
		run_idle_unlink(c);
		free(c);
		return;
	}

	metrics_inc(&run_results, st->result);
	if (c->muxed && (c->kind == RUN_OUTBOUND || c->kind == RUN_ORIGINATE) && st->up_id != NULL)
		metrics_inc(&run_tunnel_streams, c->mux_fresh ? 0 : 1);
	metrics_add(&run_bytes_up, c->kind, st->bytes_up);
	metrics_add(&run_bytes_down, c->kind, st->bytes_down);
	if (st->result == RELAY_OK || st->result == RELAY_CLOSED)
		metrics_inc(c->mtls ? &run_conns_mtls : &run_conns_plain, c->kind);
	/* A protocol 3 connection counts its own failed handshake, once (run_mux_on_gone). */
	if (st->result == RELAY_HANDSHAKE_FAILED && !c->muxed) {
		SSL *ssl = relay_ssl(r, st->side);
		enum creds_failure f =
		    ssl != NULL ? creds_handshake_failure(ssl, NULL, 0) : CREDS_FAIL_PROTOCOL;

		metrics_inc(&run_handshake_failures, f);
	}
	if (c->w->run->cfg.access_log) {
		run_addr_text(&st->src, src, sizeof(src));
		/* Outbound: the destination the app dialled, not the tunnel port it went through.
		 */
		run_addr_text(c->kind == RUN_OUTBOUND && c->orig.ss_family != AF_UNSPEC ? &c->orig
		                                                                        : &st->dst,
		              dst, sizeof(dst));
		log_info("connection", LOG_STR("listener", run_kind_names[c->kind]),
		         LOG_STR("mode", c->mtls        ? "mtls"
		                         : c->fell_back ? "fallback"
		                                        : "plain"),
		         LOG_STR("source", src), LOG_STR("destination", dst),
		         LOG_STR("peer", st->down_id != NULL ? st->down_id : st->up_id),
		         LOG_INT("bytes_up", st->bytes_up), LOG_INT("bytes_down", st->bytes_down),
		         LOG_INT("duration_ms", st->duration_ms),
		         LOG_BOOL("resumed", up_ssl != NULL && SSL_session_reused(up_ssl)),
		         LOG_BOOL("reused", st->reused),
		         LOG_STR("policy", c->policy[0] != '\0' ? c->policy : NULL),
		         LOG_INT("rule", c->rule),
		         LOG_STR("result", relay_result_names[st->result]),
		         /* Without a reason of its own, the error says why (connect_failed). */
		         LOG_STR("reason", st->reason != NULL ? st->reason
		                           : st->error < 0    ? err_str(st->error)
		                                              : ""));
	}
	/* Protocol 2: the TLS connection carries the next stream, unless we are going. */
	if (st->reusable && !atomic_load(&w->run->draining)) {
		if ((c->kind == RUN_TUNNEL || c->kind == RUN_TERMINATE || c->captured) &&
		    run_server_ctx_current(w->run, relay_ssl(r, RELAY_DOWN)) &&
		    relay_next_stream(r) == 0) {
			c->app_port = 0;
			c->rule = -1;
			c->policy[0] = '\0';
			run_idle_link(c);
			return;
		}
		if (c->kind == RUN_OUTBOUND || c->kind == RUN_ORIGINATE) {
			struct relay_tunnel *t = relay_take_tunnel(r);

			/* A Service's: kube-proxy balances TLS connections, so each carries few. */
			if (t != NULL && c->service &&
			    t->streams >= (uint64_t)w->run->cfg.service_streams)
				relay_tunnel_close(t);
			else
				pool_put(w->pool, (const struct sockaddr *)&st->dst, c->st, t);
		}
	}
	/* A kept tunnel that ends with part of a preamble in is still on the idle list. */
	run_idle_unlink(c);
	free(c);
}

/*
 * Starts the relay of one accepted connection, as its listener's kind says. mesh: an
 * inbound connection that opens with a ClientHello of our protocol (sniff.h).
 */
static void run_start(struct run_listen *ls, int fd, const struct sockaddr *peer, socklen_t plen,
                      bool mesh)
{
	struct run_worker *w = ls->w;
	struct run *run = w->run;
	struct run_conn *c = calloc(1, sizeof(*c));
	SSL_CTX *down = NULL, *up = NULL;
	struct relay *r = NULL;
	struct sockaddr_storage dst;
	unsigned flags = 0;
	bool svc;
	int err = 0;

	if (c == NULL) {
		close(fd);
		return;
	}
	c->w = w;
	c->kind = ls->kind;
	c->st = ls->st;
	switch (c->kind) {
	case RUN_TUNNEL:
	case RUN_TERMINATE:
		down = creds_server_ctx(run->creds);
		if (down == NULL)
			goto refuse; /* no identity yet: not ready */
		c->mtls = true;
		flags = c->kind == RUN_TUNNEL ? RELAY_READ_PREAMBLE : 0;
		break;
	case RUN_INBOUND: {
		char by[128], reason[192];

		if (listener_original_dst(fd, &dst) < 0)
			goto refuse;
		if (mesh) {
			/* A client proxy through a Service: mutual TLS, then its preamble. */
			down = creds_server_ctx(run->creds);
			if (down == NULL)
				goto refuse;
			c->mtls = true;
			c->captured = true;
			c->orig = dst;
			flags = RELAY_READ_PREAMBLE;
			break;
		}
		if (authz_mtls(run->authz, run_port_of(&dst), by, sizeof(by)) ==
		    SETTINGS_MTLS_STRICT) {
			char src[64];

			metrics_inc(&run_strict_refusals, 0);
			if (run->cfg.access_log) {
				struct sockaddr_storage ss = { 0 };

				if (peer != NULL)
					memcpy(&ss, peer, plen < sizeof(ss) ? plen : sizeof(ss));
				run_addr_text(&ss, src, sizeof(src));
				snprintf(reason, sizeof(reason), "mTLS is STRICT (%s)",
				         by[0] != '\0' ? by : "mtls.mode");
				log_info("connection", LOG_STR("listener", "inbound"),
				         LOG_STR("mode", "plain"), LOG_STR("source", src),
				         LOG_INT("port", run_port_of(&dst)),
				         LOG_STR("result", "denied"), LOG_STR("reason", reason));
			}
			goto refuse;
		}
		break;
	}
	default:
		break;
	}
	c->rule = -1;
	r = relay_new(w->loop, &run->relay_cfg, fd, peer, down, flags, c, &err);
	SSL_CTX_free(down);
	if (r == NULL) {
		free(c);
		return;
	}
	c->r = r;
	switch (c->kind) {
	case RUN_OUTBOUND:
		if (listener_original_dst(relay_fd(r, RELAY_DOWN), &c->orig) < 0)
			goto close;
		dst = c->orig;
		svc = run_cidr_match(&run->services, &dst);
		if (run->cfg.mtls_mode != SETTINGS_MTLS_DISABLE &&
		    run_cidr_match(&run->mesh, &dst)) {
			struct run_fallback *slot = run_fallback_slot(w, &dst, svc);

			if (!(slot->until_ms > loop_now(w->loop) &&
			      (svc ? run_same_addr(&slot->addr, &dst)
			           : run_same_ip(&slot->addr, &dst))))
				up = creds_client_ctx(run->creds);
		}
		if (up != NULL) {
			/*
			 * A Service goes to its own port, to whichever backend kube-proxy picks,
			 * which may have no sidecar; or on a kept TLS connection that has carried
			 * fewer than tunnel.service_streams.
			 */
			c->mtls = true;
			c->service = svc;
			err = run_upstream(r, c, up, true);
		} else {
			err = relay_set_upstream(r, (struct sockaddr *)&dst, run_len(&dst), NULL,
			                         NULL);
		}
		break;
	case RUN_INBOUND:
		if (mesh)
			break; /* the preamble comes first */
		err = run_authorize(r, c, run_port_of(&dst));
		if (err == 0)
			err = relay_set_upstream(r, (struct sockaddr *)&dst, run_len(&dst), NULL,
			                         NULL);
		break;
	case RUN_ORIGINATE:
		up = creds_client_ctx(run->creds);
		if (up == NULL)
			goto close;
		c->mtls = true;
		err = run_upstream(r, c, up, true);
		break;
	case RUN_TERMINATE:
		err = relay_set_upstream(r, (const struct sockaddr *)&c->st->upstream,
		                         c->st->upstream_len, NULL, NULL);
		break;
	default:
		break;
	}
	SSL_CTX_free(up);
	up = NULL;
	if (err < 0)
		goto close;
	relay_start(r);
	return;
close:
	SSL_CTX_free(up);
	relay_close(r, RELAY_DENIED);
	return;
refuse:
	SSL_CTX_free(down);
	close(fd);
	free(c);
}

/* The first bytes of an inbound connection came (or did not in time): it starts. */
static void run_sniffed(struct sniff *s, enum hello_verdict verdict)
{
	struct run_sniff *rs = (struct run_sniff *)(void *)s;

	atomic_fetch_sub(&rs->ls->w->run->limit.active, 1);
	run_start(rs->ls, s->fd, rs->plen > 0 ? (struct sockaddr *)&rs->peer : NULL, rs->plen,
	          verdict == HELLO_MESHLET);
	free(rs);
}

/*
 * An accepted connection. The inbound capture port first waits for the client's first
 * bytes (sniff.h): mutual TLS from a client proxy that came through a Service, or
 * plaintext; it holds a place in the connection limit meanwhile.
 */
static void run_accept(struct listener *l, int fd, const struct sockaddr *peer, socklen_t plen,
                       void *arg)
{
	struct run_listen *ls = arg;
	struct run *run = ls->w->run;
	struct sockaddr_storage dst;
	struct run_sniff *rs;
	uint32_t n, wait = (uint32_t)run->cfg.detect_timeout;
	char by[128];

	(void)l;
	if (ls->kind != RUN_INBOUND || run->cfg.detect_timeout == 0) {
		run_start(ls, fd, peer, plen, false);
		return;
	}
	n = atomic_fetch_add(&run->limit.active, 1);
	rs = n < run->limit.max || run->limit.max == 0 ? calloc(1, sizeof(*rs)) : NULL;
	if (rs == NULL) {
		if (n >= run->limit.max && run->limit.max != 0)
			atomic_fetch_add(&run->limit.refused, 1);
		atomic_fetch_sub(&run->limit.active, 1);
		close(fd);
		return;
	}
	rs->ls = ls;
	/*
	 * A STRICT port refuses plaintext anyway: no client there waits for the server to
	 * speak first, and a hello that comes late (a lost segment) is still taken for one.
	 */
	if (listener_original_dst(fd, &dst) == 0 &&
	    authz_mtls(run->authz, run_port_of(&dst), by, sizeof(by)) == SETTINGS_MTLS_STRICT)
		wait = (uint32_t)run->cfg.handshake_timeout;
	if (peer != NULL) {
		rs->plen = plen < sizeof(rs->peer) ? plen : sizeof(rs->peer);
		memcpy(&rs->peer, peer, rs->plen);
	}
	if (sniff_start(&rs->s, &ls->w->sniffs, ls->w->loop, fd, wait,
	                (uint32_t)run->cfg.handshake_timeout, run_sniffed) < 0) {
		atomic_fetch_sub(&run->limit.active, 1);
		free(rs);
		close(fd);
	}
}

static void *run_worker_main(void *arg)
{
	struct run_worker *w = arg;

	loop_run(w->loop);
	return NULL;
}

/*
 * A listening socket for addr ("host:port"), one per worker with SO_REUSEPORT. flags:
 * LISTENER_V6ONLY for the IPv6 half of a capture port. Returns 0 or an error in e.
 */
static int run_listen_on(struct run_worker *w, const char *addr, enum run_kind kind,
                         const struct run_static *st, unsigned flags, struct err *e)
{
	struct run_listen *ls = &w->listens[w->nlistens];
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc;

	rc = listener_resolve(addr, &ss, &len);
	if (rc < 0)
		return err_set(e, rc, "%s: not a listening address", addr);
	fd = listener_socket((struct sockaddr *)&ss, len, LISTENER_REUSEPORT | flags,
	                     LISTENER_BACKLOG);
	if (fd < 0)
		return err_set(e, fd, "cannot listen on %s: %s", addr, err_str(fd));
	*ls = (struct run_listen){ .w = w, .kind = kind, .st = st };
	ls->l = listener_new(w->loop, fd, run_accept, ls, &rc);
	if (ls->l == NULL)
		return err_set(e, rc, "cannot listen on %s: %s", addr, err_str(rc));
	w->nlistens++;
	return 0;
}

/*
 * The capture ports, in both families: iptables REDIRECT sends IPv4 to 127.0.0.1 (outbound)
 * or the pod's IPv4 address, and IPv6 (ip6tables, which `init` writes when the pod has
 * IPv6) to ::1 or the pod's IPv6 address. Each family has sockets of its own, so that
 * addresses stay as they are (no IPv4-mapped IPv6). A host without IPv6 gets IPv4 only.
 */
static int run_listen_capture(struct run *run, struct run_worker *w, bool first, struct err *e)
{
	const struct {
		enum run_kind kind;
		int64_t port;
		const char *v4, *v6;
	} ports[] = {
		{ RUN_OUTBOUND, run->cfg.port_outbound, "127.0.0.1", "[::1]" },
		{ RUN_INBOUND, run->cfg.port_inbound, "0.0.0.0", "[::]" },
		{ RUN_TUNNEL, run->cfg.port_tunnel, "0.0.0.0", "[::]" },
	};
	char addr[64];

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		snprintf(addr, sizeof(addr), "%s:%lld", ports[i].v4, (long long)ports[i].port);
		if (run_listen_on(w, addr, ports[i].kind, NULL, 0, e) < 0)
			return e->code;
		snprintf(addr, sizeof(addr), "%s:%lld", ports[i].v6, (long long)ports[i].port);
		if (run_listen_on(w, addr, ports[i].kind, NULL, LISTENER_V6ONLY, e) < 0) {
			if (e->code != -EAFNOSUPPORT && e->code != -EADDRNOTAVAIL)
				return e->code;
			if (first)
				log_info("no IPv6 here: the capture ports take IPv4 only",
				         LOG_STR("listen", addr), LOG_STR("why", err_str(e->code)));
			*e = (struct err){ 0 };
		}
	}
	return 0;
}

static int run_parse_static(struct run *run, struct err *e)
{
	for (size_t i = 0; i < run->cfg.static_listeners.n; i++) {
		struct run_static *st = &run->statics[run->nstatics];
		char mode[16], upstream[128], id[2100] = "";
		int n;

		if (run->nstatics == RUN_MAX_STATIC)
			return err_set(e, -EINVAL, "at most %d static listeners", RUN_MAX_STATIC);
		n = sscanf(run->cfg.static_listeners.items[i], "%15s %127s %127s %2099s", mode,
		           st->listen, upstream, id);
		st->kind = strcmp(mode, "originate") == 0 ? RUN_ORIGINATE : RUN_TERMINATE;
		if (n < 3 || listener_resolve(upstream, &st->upstream, &st->upstream_len) < 0)
			return err_set(e, -EINVAL, "listeners.static: \"%s\" is not usable",
			               run->cfg.static_listeners.items[i]);
		if (n == 4) {
			st->has_id = true;
			if (spiffe_id_parse(id, strlen(id), &st->id) < 0)
				return err_set(e, -EINVAL,
				               "listeners.static: %s is not a SPIFFE ID", id);
		}
		run->nstatics++;
	}
	return 0;
}

static bool run_ready(void *arg)
{
	struct run *run = arg;

	/* An expired certificate is as good as none: peers would refuse it. */
	return creds_ready(run->creds) && creds_not_after(run->creds) > time(NULL) &&
	       !atomic_load(&run->draining);
}

static void run_metrics(FILE *f, void *arg)
{
	struct run *run = arg;
	int64_t not_after = creds_not_after(run->creds);

	metrics_write_counter(f, &run_conns_mtls);
	metrics_write_counter(f, &run_conns_plain);
	metrics_write_counter(f, &run_results);
	metrics_write_counter(f, &run_bytes_up);
	metrics_write_counter(f, &run_bytes_down);
	metrics_write_counter(f, &run_handshake_failures);
	metrics_write_counter(f, &run_denials);
	metrics_write_counter(f, &run_fallbacks);
	metrics_write_counter(f, &run_restarts);
	metrics_write_counter(f, &run_strict_refusals);
	metrics_write_counter(f, &run_tunnel_streams);
	metrics_write_counter(f, &run_policy_checks);
	authz_metrics(run->authz, f);
	metrics_write_gauge(f, "meshlet_proxy_active_connections", "Connections open now.",
	                    (double)atomic_load(&run->limit.active));
	metrics_write_gauge(f, "meshlet_proxy_refused_connections",
	                    "Connections refused over limits.max_connections.",
	                    (double)atomic_load(&run->limit.refused));
	metrics_write_gauge(f, "meshlet_proxy_svid_expiry_seconds",
	                    "Seconds until the workload certificate expires (0 before the first).",
	                    not_after > 0 ? (double)(not_after - time(NULL)) : 0);
	metrics_write_gauge(f, "meshlet_proxy_svid_rotations",
	                    "Workload certificates renewed since start (the first is not one).",
	                    (double)creds_rotations(run->creds));
	metrics_write_gauge(f, "meshlet_proxy_ca_errors",
	                    "Failed requests to meshlet-ca since start.",
	                    run->identity != NULL ? (double)identity_ca_errors(run->identity) : 0);
}

static const char run_usage[] =
    "Usage: meshlet-proxy run [--config FILE] [--trust-domain TD] [--ca-address HOST:PORT]\n"
    "                         [--token-file FILE] [--namespace NS] [--service-account SA]\n"
    "                         [--static \"originate|terminate LISTEN UPSTREAM [ID]\"]\n"
    "Run the sidecar: get and rotate the workload certificate, serve the outbound (15001),\n"
    "inbound (15006) and tunnel (15008) ports and the admin port (15021), or static\n"
    "listeners. Settings come from the file, then the environment the webhook sets\n"
    "(MESHLET_TRUST_DOMAIN, MESHLET_CA_ADDRESS, MESHLET_TOKEN_FILE, MESHLET_POD_NAMESPACE,\n"
    "MESHLET_SERVICE_ACCOUNT, MESHLET_LOG_LEVEL, MESHLET_TRUST_BUNDLE, MESHLET_APP_PROBES,\n"
    "MESHLET_POLICY_PATHS, MESHLET_POD_LABELS_FILE, MESHLET_HTTP_PORTS,\n"
    "MESHLET_SERVICE_RANGES),\n"
    "then flags. SIGTERM stops accepting and lets connections finish (timeouts.drain).\n"
    "\n"
    "  --config FILE          YAML configuration (docs/configuration.md)\n"
    "  --trust-domain TD      trust domain of this workload and its peers\n"
    "  --ca-address HOST:PORT meshlet-ca\n"
    "  --token-file FILE      the projected service-account token\n"
    "  --namespace NS         this pod's namespace\n"
    "  --service-account SA   this pod's service account\n"
    "  --bundle-file FILE     trust bundle (PEM), when MESHLET_TRUST_BUNDLE is not set\n"
    "  --static SPEC          one static listener (replaces listeners.static)\n"
    "  --admin-port N         the admin port (default 15021)\n";

/* The environment the webhook sets, as configuration with the variable as its origin. */
static const struct {
	const char *env, *key;
} run_env[] = {
	{ "MESHLET_TRUST_DOMAIN", "trust_domain" },
	{ "MESHLET_CA_ADDRESS", "identity.ca_address" },
	{ "MESHLET_TOKEN_FILE", "identity.token_file" },
	{ "MESHLET_POD_NAMESPACE", "identity.namespace" },
	{ "MESHLET_SERVICE_ACCOUNT", "identity.service_account" },
	{ "MESHLET_LOG_LEVEL", "log.level" },
	{ "MESHLET_POLICY_PATHS", "policy.paths" },
	{ "MESHLET_POD_LABELS_FILE", "policy.labels_file" },
	{ "MESHLET_HTTP_PORTS", "policy.http_ports" },
	{ "MESHLET_SERVICE_RANGES", "outbound.service_ranges" },
};

static int run_settings(struct run *run, int argc, char **argv)
{
	struct cli_flag flags[] = {
		{ "trust_domain", NULL, "--trust-domain" },
		{ "identity.ca_address", NULL, "--ca-address" },
		{ "identity.token_file", NULL, "--token-file" },
		{ "identity.namespace", NULL, "--namespace" },
		{ "identity.service_account", NULL, "--service-account" },
		{ "identity.bundle_file", NULL, "--bundle-file" },
		{ "listeners.static", NULL, "--static" },
		{ "ports.admin", NULL, "--admin-port" },
	};
	const size_t nflags = sizeof(flags) / sizeof(flags[0]);
	const size_t nenv = sizeof(run_env) / sizeof(run_env[0]);
	struct cli_flag
	    all[sizeof(run_env) / sizeof(run_env[0]) + sizeof(flags) / sizeof(flags[0])];
	const char *config = NULL;
	int rc;

	rc = cli_parse_flags(argc, argv, PROG, run_usage, flags, nflags, &config);
	if (rc >= 0)
		return rc;
	for (size_t i = 0; i < nenv; i++)
		all[i] =
		    (struct cli_flag){ run_env[i].key, getenv(run_env[i].env), run_env[i].env };
	memcpy(all + nenv, flags, sizeof(flags));
	if (cli_load_settings(&settings_schema, &run->cfg, config, all, nenv + nflags) < 0)
		return 1;
	return -1;
}

static int run_identity(struct run *run, struct err *e)
{
	const struct settings *cfg = &run->cfg;
	const char *bundle = getenv("MESHLET_TRUST_BUNDLE");
	char url[300];
	struct identity_options o = {
		.mode =
		    cfg->identity_mode == SETTINGS_IDENTITY_FILES ? IDENTITY_FILES : IDENTITY_CA,
		.ca_url = url,
		.ca_server_name = cfg->ca_server_name,
		.token_file = cfg->token_file,
		.trust_bundle_pem = bundle,
		.trust_domain = cfg->trust_domain,
		.namespace_ = cfg->namespace_,
		.service_account = cfg->service_account,
		.ttl = cfg->svid_ttl / 1000,
		.cert_file = cfg->cert_file,
		.key_file = cfg->key_file,
		.bundle_file = cfg->bundle_file,
	};
	char *text = NULL;

	snprintf(url, sizeof(url), "https://%s", cfg->ca_address);
	if (o.mode == IDENTITY_CA) {
		if (cfg->namespace_ == NULL || cfg->service_account == NULL)
			return err_set(e, -EINVAL,
			               "ca mode needs the pod's namespace and service account "
			               "(MESHLET_POD_NAMESPACE, MESHLET_SERVICE_ACCOUNT)");
		if (bundle == NULL && cfg->bundle_file != NULL) {
			STACK_OF(X509) *roots = x509_read_chain(cfg->bundle_file, e);

			if (roots == NULL)
				return e->code;
			sk_X509_pop_free(roots, X509_free);
			if (file_read(cfg->bundle_file, 1024 * 1024, &text, &(size_t){ 0 }, e) < 0)
				return e->code;
			o.trust_bundle_pem = text;
		}
		if (o.trust_bundle_pem == NULL)
			return err_set(e, -EINVAL,
			               "ca mode needs the trust bundle: MESHLET_TRUST_BUNDLE or "
			               "identity.bundle_file");
	}
	run->identity = identity_start(&o, run->creds, e);
	free(text);
	return run->identity != NULL ? 0 : e->code;
}

static void run_close_listener(struct loop *loop, void *arg)
{
	(void)loop;
	listener_free(arg);
}

/* Draining, on a worker's thread: idle tunnels go now, client and server side. */
static void run_close_idle(struct loop *loop, void *arg)
{
	struct run_worker *w = arg;

	(void)loop;
	pool_flush(w->pool);
	run_mux_goaway_all(w);
	while (w->idle != NULL) {
		struct run_conn *c = w->idle;

		run_idle_unlink(c);
		relay_close(c->r, RELAY_CLOSED); /* on_close frees c */
	}
}

/* After SIGTERM: stop accepting, report not ready, let connections end or time out. */
static void run_drain(struct run *run)
{
	int64_t deadline = time_mono_ms() + run->cfg.drain_timeout;

	atomic_store(&run->draining, true);
	log_info("draining", LOG_INT("connections", atomic_load(&run->limit.active)));
	for (size_t i = 0; i < run->nworkers; i++) {
		for (size_t j = 0; j < run->workers[i].nlistens; j++) {
			/* A listener belongs to its loop's thread: close it there. */
			if (loop_post(run->workers[i].loop, run_close_listener,
			              run->workers[i].listens[j].l) == 0)
				run->workers[i].listens[j].l = NULL;
		}
		(void)loop_post(run->workers[i].loop, run_close_idle, &run->workers[i]);
	}
	while (atomic_load(&run->limit.active) > 0 && time_mono_ms() < deadline)
		usleep(50 * 1000);
}

int run_main(int argc, char **argv)
{
	struct run *run = calloc(1, sizeof(*run));
	char admin_listen[32];
	struct err e = { 0 };
	int status = 1, rc;

	if (run == NULL)
		return 1;
	rc = run_settings(run, argc, argv);
	if (rc >= 0) {
		status = rc;
		goto out;
	}
	cli_log_apply("meshlet-proxy", &run->cfg.log);
	if (capture_parse_cidrs("outbound.mesh_ranges", run->cfg.mesh_ranges, true, &run->mesh,
	                        &e) < 0 ||
	    (run->cfg.mtls_required_ranges != NULL &&
	     capture_parse_cidrs("outbound.mtls_required_ranges", run->cfg.mtls_required_ranges,
	                         true, &run->required, &e) < 0) ||
	    (run->cfg.service_ranges != NULL && run->cfg.service_ranges[0] != '\0' &&
	     capture_parse_cidrs("outbound.service_ranges", run->cfg.service_ranges, true,
	                         &run->services, &e) < 0) ||
	    run_parse_static(run, &e) < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	run->authz = authz_new(&run->cfg, &e);
	if (run->authz == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	cli_daemon_signals();

	run_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	run_mux_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	run->creds =
	    creds_new(&(struct creds_options){ .trust_domain = run->cfg.trust_domain,
	                                       .alpn = !run->cfg.tunnel_reuse      ? RUN_ALPN_V1
	                                               : run->cfg.tunnel_multiplex ? RUN_ALPN_MUX
	                                                                           : RUN_ALPN,
	                                       .client_new_session = run_new_session });
	if (run->creds == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	/* The admin port first: readiness is answered (not ready) while the identity comes. */
	snprintf(admin_listen, sizeof(admin_listen), "0.0.0.0:%lld",
	         (long long)run->cfg.port_admin);
	run->admin =
	    admin_start(&(struct admin_options){ .listen = admin_listen,
	                                         .app_probes = getenv("MESHLET_APP_PROBES"),
	                                         .ready = run_ready,
	                                         .metrics = run_metrics,
	                                         .arg = run },
	                &e);
	if (run->admin == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	if (run_identity(run, &e) < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	run->limit.max = (uint32_t)run->cfg.max_connections;
	run->relay_cfg = (struct relay_config){
		.connect_timeout_ms = (uint32_t)run->cfg.connect_timeout,
		.handshake_timeout_ms = (uint32_t)run->cfg.handshake_timeout,
		.idle_timeout_ms = (uint32_t)run->cfg.idle_timeout,
		.request_head_timeout_ms = (uint32_t)run->cfg.request_head_timeout,
		.limit = &run->limit,
		.on_handshake = run_on_handshake,
		.on_preamble = run_on_preamble,
		.on_upstream_failed = run_on_upstream_failed,
		.on_probe_failed = run_on_probe_failed,
		.on_close = run_on_close,
	};
	run->mux_cfg = (struct mux_config){
		.connect_timeout_ms = (uint32_t)run->cfg.connect_timeout,
		.handshake_timeout_ms = (uint32_t)run->cfg.handshake_timeout,
		.idle_ms = RELAY_TUNNEL_REUSE_MS,
		.on_handshake = run_mux_on_handshake,
		.on_open = run_mux_on_open,
		.on_gone = run_mux_on_gone,
	};
	/* A server keeps an idle connection longer than its client does: the client closes. */
	run->mux_server_cfg = run->mux_cfg;
	run->mux_server_cfg.idle_ms = RELAY_TUNNEL_KEEP_MS;
	run->nworkers = (size_t)run->cfg.workers;
	for (size_t i = 0; i < run->nworkers; i++) {
		struct run_worker *w = &run->workers[i];

		w->run = run;
		w->loop = loop_new(&rc);
		if (w->loop == NULL) {
			fprintf(stderr, PROG ": cannot start a worker: %s\n", err_str(rc));
			goto out;
		}
		w->pool = pool_new(w->loop, RUN_POOL_MAX, RELAY_TUNNEL_REUSE_MS);
		if (w->pool == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto out;
		}
		if (run->cfg.capture && run_listen_capture(run, w, i == 0, &e) < 0) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
		for (size_t j = 0; j < run->nstatics; j++) {
			if (run_listen_on(w, run->statics[j].listen, run->statics[j].kind,
			                  &run->statics[j], 0, &e) < 0) {
				fprintf(stderr, PROG ": %s\n", e.msg);
				goto out;
			}
		}
	}
	for (size_t i = 0; i < run->nworkers; i++) {
		if (pthread_create(&run->workers[i].thread, NULL, run_worker_main,
		                   &run->workers[i]) != 0) {
			fprintf(stderr, PROG ": cannot start a worker thread\n");
			goto out;
		}
		run->workers[i].started = true;
	}
	log_info("running", LOG_INT("workers", run->nworkers),
	         LOG_INT("admin_port", admin_port(run->admin)),
	         LOG_BOOL("capture", run->cfg.capture), LOG_INT("static", run->nstatics),
	         LOG_STR("trust_domain", run->cfg.trust_domain));
	cli_wait_signal(0, NULL, NULL);
	run_drain(run);
	status = 0;
out:
	atomic_store(&run->stopping, true);
	for (size_t i = 0; i < run->nworkers; i++) {
		struct run_worker *w = &run->workers[i];

		if (w->started) {
			loop_stop(w->loop);
			pthread_join(w->thread, NULL);
		}
		for (size_t j = 0; j < w->nlistens; j++)
			listener_free(w->listens[j].l);
		/* The loop's thread is gone: close what is kept idle here, then free the loop
		 * (which runs the posted calls and the relays' frees), then the empty pool. */
		if (w->pool != NULL) {
			run_close_idle(w->loop, w);
			run_mux_abort_all(w);
		}
		while (w->sniffs != NULL) {
			struct run_sniff *rs = (struct run_sniff *)(void *)w->sniffs;

			sniff_cancel(&rs->s);
			close(rs->s.fd);
			atomic_fetch_sub(&run->limit.active, 1);
			free(rs);
		}
		loop_free(w->loop);
		pool_free(w->pool);
		/* After the loop's last tasks, which may still look for a session. */
		for (size_t j = 0; j < RUN_SESSION_SLOTS; j++)
			SSL_SESSION_free(w->sessions[j].sess);
	}
	admin_stop(run->admin);
	identity_stop(run->identity);
	creds_free(run->creds);
	authz_free(run->authz);
	config_free(&settings_schema, &run->cfg);
	free(run);
	return status;
}
