/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's policies at run time: the current set, its reloads, and what one decision needs. */
#ifndef MESHLET_PROXY_AUTHZ_H
#define MESHLET_PROXY_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "meshlet/err.h"

#include "policy.h"
#include "settings.h"

/*
 * The workload's policies: loaded from settings' policy.paths at start (errors there stop
 * the proxy: it never runs with a policy other than the one written), then watched: a
 * thread looks at the files every policy.reload_interval and loads them again when a
 * change has settled (the same at two looks in a row, so a file caught half-written is
 * not loaded). A set that loads cleanly replaces the old one for every new connection and
 * every new request; a set with errors is refused, each error logged with file:line, and
 * the old set stays (meshlet_proxy_policy_reloads_total{result="error"} counts it).
 */
struct authz;

/*
 * authz_new - load the policies and the workload's labels (policy.labels_file, the
 * downward API's `key="value"` lines) as cfg says, and start watching. cfg must outlive
 * the authz. Returns NULL with e saying why (every policy error, one per line).
 */
struct authz *authz_new(const struct settings *cfg, struct err *e);

void authz_free(struct authz *a);

/* authz_workload - the workload policies are matched against (valid while a lives). */
const struct policy_workload *authz_workload(const struct authz *a);

/* authz_current - the current set, referenced: policy_set_unref it when done. */
struct policy_set *authz_current(struct authz *a);

/* authz_is_http - whether port is one of policy.http_ports. */
bool authz_is_http(const struct authz *a, uint16_t port);

/* authz_head_limit - policy.max_header_bytes. */
size_t authz_head_limit(const struct authz *a);

/*
 * authz_mtls - the mTLS mode for plaintext arriving at port: PeerAuthentication's, or
 * the configured mtls.mode (as enum settings_mtls_mode). *by names the policy, or NULL.
 */
int authz_mtls(struct authz *a, uint16_t port, char *by, size_t size);

/* authz_metrics - decisions by policy, and reloads by result. */
void authz_metrics(struct authz *a, FILE *f);

/* authz_policy_name - "ns/name" (or "name") of m into buf, for logs. */
const char *authz_policy_name(const struct policy_meta *m, char *buf, size_t size);

/* authz_labels_parse - the downward API's labels file text into "key=value" strings (for
 * tests). Returns the count, or -1 on a malformed line; *out is malloc'd, each string too. */
int authz_labels_parse(const char *text, char ***out);

#endif
