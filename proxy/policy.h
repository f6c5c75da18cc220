/* SPDX-License-Identifier: Apache-2.0 */
/* Authorization and peer authentication policies (Istio's subset): loading and deciding. */
#ifndef MESHLET_PROXY_POLICY_H
#define MESHLET_PROXY_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "http1.h"

/*
 * A policy set is what a directory of policy files says, loaded whole: AuthorizationPolicy
 * and PeerAuthentication documents (apiVersion security.meshlet.io/v1, or Istio's
 * security.istio.io/v1 and v1beta1, unchanged). It is immutable once loaded; the proxy
 * swaps sets when files change. See docs/policy.md for the fields and their meaning.
 *
 * Deciding follows Istio: a DENY policy that matches denies; else, when ALLOW policies
 * apply to the workload, one must match; else the request is allowed. AUDIT policies never
 * change the decision; the first that matches is reported. A policy applies to a workload
 * when its namespace is the workload's (a document without one means the workload's) and
 * its selector's matchLabels are all among the workload's labels (no selector: all).
 *
 * Within a rule, from, to and when are ANDed; the entries of from (and of to) are ORed;
 * the values of a field are ORed; a not-field matches when no value matches. Strings
 * match exactly, by "prefix*", "*suffix" or "*" (present, even empty; plaintext peers
 * have no principal and no namespace). An empty list is refused when loading. hosts match without regard to
 * case; paths match the request path without its query, normalized (RFC 3986 dot
 * segments removed, percent-encoded unreserved characters decoded).
 * Fields that only HTTP has (methods, paths, hosts, request.headers) decide nothing on a
 * TCP port: a rule of an ALLOW policy that uses one never matches there, and in a DENY
 * (or AUDIT) policy the condition counts as met.
 */

enum policy_action { POLICY_ALLOW, POLICY_DENY, POLICY_AUDIT };
enum policy_mtls { POLICY_MTLS_UNSET, POLICY_MTLS_STRICT, POLICY_MTLS_PERMISSIVE, POLICY_MTLS_DISABLE };

extern const char *const policy_action_names[];
extern const char *const policy_mtls_names[];

/* One document's identity, for messages, metrics and logs. */
struct policy_meta {
	const char *name;
	const char *namespace_; /* NULL: the workload's namespace */
	const char *file;
	unsigned line;
};

struct policy_authz;
struct policy_peer;

/* A loaded set. Reference-counted: policy_set_ref, policy_set_unref. */
struct policy_set;

/* What policies are matched against: the workload that receives. */
struct policy_workload {
	const char *namespace_;
	const char *const *labels; /* "key=value" strings */
	size_t nlabels;
};

/* What is being decided: a connection (http false) or one HTTP request. */
struct policy_request {
	const char *principal; /* the peer's SPIFFE ID without "spiffe://", NULL for plaintext */
	const struct sockaddr *source; /* the peer's address, or NULL when unknown */
	uint16_t port;                 /* the application's port */
	const struct http1_request *http; /* the request head, or NULL for a TCP connection */
};

struct policy_decision {
	bool allow;
	const struct policy_meta *policy; /* the deciding policy, NULL when none applied */
	int rule;                         /* its rule's index, or -1 */
	const struct policy_meta *audit;  /* the first AUDIT policy that matched, or NULL */
	int audit_rule;
	const char *why; /* static text: "matched a DENY policy", "no ALLOW policy matched",
	                    "matched an ALLOW policy", "no DENY policy matched, and no ALLOW
	                    policy applies", "no policy applies" */
};

/* Errors of one load, all of them: "file:line: what is wrong" each. */
struct policy_errors {
	char **msgs;
	size_t n;
	size_t lost; /* errors whose message could not be stored (out of memory) */
};

void policy_errors_free(struct policy_errors *e);

/*
 * policy_load - read the policy files at paths (files, or directories whose regular
 * files ending in .yaml, .yml or .json are read in name order; names starting with '.'
 * are skipped, as Kubernetes puts its own there when it mounts a ConfigMap). Every
 * error of every file is added to errs. Returns 0 with *out (an empty set when there
 * are no documents), or ERR_POLICY_INVALID (errors recorded) or -errno with errs saying
 * which path; *out is then NULL.
 */
int policy_load(const char *const *paths, size_t n, struct policy_set **out,
                struct policy_errors *errs);

/* policy_load_text - the same for one file's text, named name in messages. */
int policy_load_text(const char *name, const char *text, size_t len, struct policy_set **out,
                     struct policy_errors *errs);

struct policy_set *policy_set_ref(struct policy_set *s);
void policy_set_unref(struct policy_set *s);

/* policy_count - how many authorization and peer authentication policies s holds. */
void policy_count(const struct policy_set *s, size_t *authz, size_t *peer);

/*
 * policy_decide - the decision for req at workload w, as described above. s may be NULL
 * (no policies: allowed). Counts the decision on the deciding policy.
 */
void policy_decide(struct policy_set *s, const struct policy_workload *w,
                   const struct policy_request *req, struct policy_decision *d);

/*
 * policy_mtls_mode - the PeerAuthentication mode for port at w: a policy with a selector
 * that matches w wins over the namespace's policy without one; its portLevelMtls entry
 * for port wins over its mtls.mode; UNSET inherits from the level above. POLICY_MTLS_UNSET
 * when nothing says (the proxy's configured default applies), and *by names the policy.
 */
enum policy_mtls policy_mtls_mode(const struct policy_set *s, const struct policy_workload *w,
                                  uint16_t port, const struct policy_meta **by);

/*
 * policy_metrics - Prometheus lines for the decisions counted on each policy of s:
 * meshlet_proxy_policy_decisions_total{policy="ns/name",decision="allow|deny"}.
 */
void policy_metrics(const struct policy_set *s, FILE *f);

/* policy_carry_counts - copy the counts of policies of old that new has too (same name). */
void policy_carry_counts(struct policy_set *new_set, const struct policy_set *old);

/* policy_normalize_path - the normalized form of path (see above) into out (NUL-ended). */
size_t policy_normalize_path(const char *path, size_t len, char *out, size_t size);

#endif
