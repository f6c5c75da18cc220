/* SPDX-License-Identifier: Apache-2.0 */
/* The admission decision for one pod and the JSON Patch that injects meshlet: no I/O. */
#ifndef MESHLET_WEBHOOK_INJECT_H
#define MESHLET_WEBHOOK_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meshlet/config.h"
#include "meshlet/err.h"

#include "settings.h"

/*
 * The contract with meshlet-proxy: its ports, its user and what it is called.
 */
#define INJECT_PORT_OUTBOUND 15001 /* outbound capture */
#define INJECT_PORT_INBOUND  15006 /* inbound capture */
#define INJECT_PORT_TUNNEL   15008 /* mTLS between proxies */
#define INJECT_PORT_ADMIN    15021 /* health; rewritten probes under /app-health/ */
#define INJECT_PROXY_UID     1337
#define INJECT_PROXY_GID     1337
#define INJECT_PROXY_NAME    "meshlet-proxy"
#define INJECT_INIT_NAME     "meshlet-init"
#define INJECT_STATUS_KEY    "meshlet.io/status"

/*
 * When a pod is injected, in this order (the tests follow it; the user documentation
 * should say the same). The caller has already made sure that the object is a Pod and the
 * operation CREATE.
 *
 * 1. Skipped, no patch (decision INJECT_SKIPPED):
 *    a. spec.hostNetwork is true ("host_network", with a warning): the init container's
 *       iptables rules would capture the node's own traffic;
 *    b. the namespace is on inject.ignore_namespaces ("namespace_ignored");
 *    c. the pod is already injected ("already_injected"): it has the meshlet.io/status
 *       annotation, or a container or init container named meshlet-proxy.
 * 2. The label, else the annotation, meshlet.io/inject decides: "enabled" injects,
 *    "disabled" skips ("disabled_by_label", "disabled_by_annotation"). Any other value of
 *    either denies the pod ("bad_annotation"), even when the other one is valid.
 * 3. Otherwise label selectors, then the policy: a pod whose labels match any of
 *    inject.never_selectors is skipped ("never_selector"); else one that matches any of
 *    inject.always_selectors is injected; else inject.policy decides ("policy_disabled").
 *    A selector "key" matches a pod that has the label key, whatever its value (also "");
 *    "key=value" one whose label key has exactly that value. Never wins over always.
 * 4. A pod that is to be injected has its override annotations checked (below); every bad
 *    value is named in the message and the pod is denied ("bad_annotation"), as is a proxy
 *    request above its limit once the annotations are applied. Unknown annotations under
 *    meshlet.io/ only give a warning. A pod that is skipped is not checked.
 * 5. Denied ("name_conflict") when a container or init container is already named
 *    meshlet-init, or a volume has one of the names meshlet injects (meshlet-token,
 *    meshlet-certs, meshlet-podinfo, meshlet-policy): renaming ours would break what the
 *    proxy expects, and skipping would leave the pod outside the mesh unnoticed. Denied
 *    ("port_conflict") when a container declares one of the proxy's ports (15001, 15006,
 *    15008, 15021): the proxy could not listen.
 * 6. Injected ("injected"); the message says which rule decided.
 * A pod whose JSON lacks what every pod has (an object spec, a non-empty array of
 * containers with string names) or has a member of the wrong type is denied
 * ("malformed_pod").
 *
 * The override annotations (a bad value denies the pod):
 *   meshlet.io/include-inbound-ports      ports (1 to 65535), comma-separated, or "*"
 *   meshlet.io/exclude-inbound-ports      ports
 *   meshlet.io/exclude-outbound-ports     ports
 *   meshlet.io/include-outbound-ip-ranges IPv4/IPv6 CIDRs, comma-separated, or "*"
 *   meshlet.io/exclude-outbound-ip-ranges CIDRs
 *   meshlet.io/proxy-cpu-request, proxy-memory-request, proxy-cpu-limit,
 *   proxy-memory-limit                    Kubernetes quantities
 *   meshlet.io/native-sidecar, meshlet.io/rewrite-probes   "true" or "false"
 *   meshlet.io/proxy-image                an image reference
 *   meshlet.io/log-level                  debug, info, warn or error
 * Lists may be empty ("": nothing) and may have spaces around their items.
 */

/*
 * struct injector - the settings, parsed once: lists, quantities, selectors, strings and
 * the trust bundle. Immutable after injector_new, so threads share one freely.
 */
struct injector;

/*
 * injector_new - prepare an injector from validated settings (cfg is copied: the caller
 * may free it afterwards) and the PEM text of the root certificates that the proxies will
 * trust (required, at most 64 KiB). Returns the injector, or NULL with e set:
 * ERR_INJECT_SETTINGS naming the bad setting, ERR_INJECT_BUNDLE, or -ENOMEM.
 */
struct injector *injector_new(const struct settings *cfg, const char *trust_bundle_pem,
                              struct err *e);

/* injector_free - release an injector; NULL is fine. */
void injector_free(struct injector *in);

enum inject_decision { INJECT_INJECTED, INJECT_SKIPPED, INJECT_DENIED };

/* What injector_pod decided. */
struct inject_result {
	enum inject_decision decision;
	/*
	 * A short code for audit and metrics: "injected"; "host_network",
	 * "namespace_ignored", "already_injected", "disabled_by_label",
	 * "disabled_by_annotation", "never_selector", "policy_disabled" (skipped);
	 * "bad_annotation", "name_conflict", "port_conflict", "malformed_pod" (denied).
	 */
	char reason[48];
	char message[512]; /* a sentence for the user and the audit log: why */
	json_t *patch;     /* JSON Patch array when injected, else NULL (injector_pod only) */
	char *patch_text;  /* the same patch as JSON text, when injected, else NULL */
	size_t patch_len;  /* its length */
	size_t patch_ops;  /* how many operations it has */
	json_t *warnings;  /* array of strings for the user, never NULL after success */
};

/*
 * injector_pod - decide for one pod, as the API server sends it in an AdmissionReview
 * (defaulted, maybe with only generateName, maybe without metadata.namespace), and build
 * the patch that injects it. namespace_ is the request's namespace; when NULL or "" the
 * pod's metadata.namespace is used, and when that is absent too no namespace is ignored.
 * The pod is not changed. Fills *out (which need not be initialised); the caller releases
 * it with inject_result_clear. The patch follows the rules of patch.h, so that it applies
 * to the pod as it was sent. Returns 0 (whatever the decision), or -ENOMEM (*out cleared
 * but for message, which says why).
 * Safe to call from many threads at once with the same injector.
 */
int injector_pod(const struct injector *in, const json_t *pod, const char *namespace_,
                 struct inject_result *out);

/*
 * injector_pod_text - as injector_pod, but the patch comes as text only (patch_text,
 * patch_len, patch_ops; patch stays NULL): the server sends it as it is, base64-encoded,
 * without building jansson values for it.
 */
int injector_pod_text(const struct injector *in, const json_t *pod, const char *namespace_,
                      struct inject_result *out);

/* inject_result_clear - drop the patch and warnings of r; r may then be reused. */
void inject_result_clear(struct inject_result *r);

/*
 * inject_apply_patch - apply a JSON Patch made by injector_pod to a copy of doc, strictly
 * as the API server does (see patch_apply in patch.h): for offline injection and tests.
 * Returns a new reference, or NULL with e set.
 */
json_t *inject_apply_patch(const json_t *doc, const json_t *patch, struct err *e);

#endif
