/* SPDX-License-Identifier: Apache-2.0 */
/* Decides whether a pod joins the mesh and builds the JSON Patch that injects meshlet. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/jparse.h"
#include "meshlet/log.h"

#include "inject.h"
#include "meshlet/jwrite.h"
#include "patch.h"

/* The rest of the contract with meshlet-proxy: where it finds what the pod gives it. */
#define INJECT_TOKEN_DIR         "/var/run/secrets/meshlet.io/token"
#define INJECT_CERTS_DIR         "/var/run/meshlet/certs"
#define INJECT_PODINFO_DIR       "/etc/meshlet/podinfo"
#define INJECT_POLICY_DIR        "/etc/meshlet/policy"
#define INJECT_TOKEN_SECONDS     3600
#define INJECT_STARTUP_FAILURES  60
#define INJECT_BUNDLE_MAX        (64 * 1024)
#define INJECT_ANNOTATION_NS     "meshlet.io/"
#define INJECT_KEY               "meshlet.io/inject"
#define INJECT_DEFAULT_CONTAINER "kubectl.kubernetes.io/default-container"

static const char *const inject_volume_names[] = { "meshlet-token", "meshlet-certs",
	                                           "meshlet-podinfo", "meshlet-policy" };
#define INJECT_N_VOLUMES (sizeof(inject_volume_names) / sizeof(inject_volume_names[0]))

/* A number as the text of a JSON literal: INJECT_STR(INJECT_PORT_ADMIN) is "15021". */
#define INJECT_STR_(x) #x
#define INJECT_STR(x)  INJECT_STR_(x)

/* ---- the injector ---- */

struct injector {
	int policy;
	bool native_sidecar, rewrite_probes;
	char **ignore_ns;
	size_t n_ignore;
	struct settings_selector *never, *always;
	size_t n_never, n_always;
	char *trust_domain, *ca_address, *token_audience, *bundle, *image;
	const char *pull_policy;
	int log_level;
	struct settings_quantity cpu_request, memory_request, cpu_limit, memory_limit;
	struct settings_ports include_inbound, exclude_inbound, exclude_outbound;
	struct settings_cidrs include_outbound_cidrs, exclude_outbound_cidrs;
	struct settings_cidrs service_ranges; /* MESHLET_SERVICE_RANGES; none: not set */
	/*
	 * What no annotation changes, written as JSON text once: the volumes, the proxy's env
	 * up to the log level ("[{...},...,{...}]": the trust bundle is escaped here, not per
	 * pod) and the meshlet.io/status annotation's value ([0] classic, [1] native).
	 */
	char *volume_text[INJECT_N_VOLUMES];
	size_t volume_len[INJECT_N_VOLUMES];
	char *proxy_env;
	size_t proxy_env_len;
	char *status_text[2];
	size_t status_len[2];
};

static int inject_parts_new(struct injector *in);

void injector_free(struct injector *in)
{
	if (in == NULL)
		return;
	for (size_t i = 0; i < INJECT_N_VOLUMES; i++)
		free(in->volume_text[i]);
	free(in->proxy_env);
	free(in->status_text[0]);
	free(in->status_text[1]);
	for (size_t i = 0; i < in->n_ignore; i++)
		free(in->ignore_ns[i]);
	free(in->ignore_ns);
	free(in->never);
	free(in->always);
	free(in->trust_domain);
	free(in->ca_address);
	free(in->token_audience);
	free(in->bundle);
	free(in->image);
	free(in);
}

static int inject_selectors(const struct config_strlist *l, const char *key,
                            struct settings_selector **out, size_t *n, struct err *e)
{
	struct err se = { 0 };

	*n = 0;
	*out = calloc(l->n + 1, sizeof(**out));
	if (*out == NULL)
		return err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n; i++) {
		if (settings_selector_parse(l->items[i], &(*out)[i], &se) < 0)
			return err_set(e, ERR_INJECT_SETTINGS, "%s: \"%s\" %s", key, l->items[i],
			               se.msg);
	}
	*n = l->n;
	return 0;
}

/* A quantity setting: NULL or "" is unset (limits only; requests always have a default). */
static int inject_setting_quantity(const char *text, const char *key, struct settings_quantity *q,
                                   struct err *e)
{
	struct err qe = { 0 };

	memset(q, 0, sizeof(*q));
	if (text == NULL || *text == '\0')
		return 0;
	if (settings_quantity_parse(text, q, &qe) < 0)
		return err_set(e, ERR_INJECT_SETTINGS, "%s: \"%s\" %s", key, text, qe.msg);
	return 0;
}

struct injector *injector_new(const struct settings *cfg, const char *trust_bundle_pem,
                              struct err *e)
{
	struct injector *in = calloc(1, sizeof(*in));
	struct err le = { 0 };
	int rc = -ENOMEM;

	if (in == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	if (trust_bundle_pem == NULL || strlen(trust_bundle_pem) > INJECT_BUNDLE_MAX ||
	    strstr(trust_bundle_pem, "-----BEGIN CERTIFICATE-----") == NULL) {
		rc = err_set(e, ERR_INJECT_BUNDLE,
		             "the trust bundle must be PEM certificates, at most %d bytes",
		             INJECT_BUNDLE_MAX);
		goto out;
	}
	if (cfg->trust_domain == NULL || cfg->ca_address == NULL || cfg->token_audience == NULL ||
	    cfg->proxy_image == NULL || cfg->proxy_cpu_request == NULL ||
	    cfg->proxy_memory_request == NULL || cfg->proxy_image_pull_policy < 0 ||
	    cfg->proxy_image_pull_policy > SETTINGS_PULL_NEVER ||
	    cfg->proxy_log_level < LOG_DEBUG || cfg->proxy_log_level > LOG_ERROR) {
		rc = err_set(e, ERR_INJECT_SETTINGS, "the settings were not loaded with defaults");
		goto out;
	}
	in->policy = cfg->policy;
	in->native_sidecar = cfg->native_sidecar;
	in->rewrite_probes = cfg->rewrite_probes;
	in->pull_policy = settings_pull_policy_names[cfg->proxy_image_pull_policy];
	in->log_level = cfg->proxy_log_level;
	in->ignore_ns = calloc(cfg->ignore_namespaces.n + 1, sizeof(*in->ignore_ns));
	if (in->ignore_ns == NULL)
		goto nomem;
	for (; in->n_ignore < cfg->ignore_namespaces.n; in->n_ignore++) {
		in->ignore_ns[in->n_ignore] = strdup(cfg->ignore_namespaces.items[in->n_ignore]);
		if (in->ignore_ns[in->n_ignore] == NULL)
			goto nomem;
	}
	in->trust_domain = strdup(cfg->trust_domain);
	in->ca_address = strdup(cfg->ca_address);
	in->token_audience = strdup(cfg->token_audience);
	in->bundle = strdup(trust_bundle_pem);
	in->image = strdup(cfg->proxy_image);
	if (in->trust_domain == NULL || in->ca_address == NULL || in->token_audience == NULL ||
	    in->bundle == NULL || in->image == NULL)
		goto nomem;
	if ((rc = inject_selectors(&cfg->never_selectors, "inject.never_selectors", &in->never,
	                           &in->n_never, e)) < 0 ||
	    (rc = inject_selectors(&cfg->always_selectors, "inject.always_selectors", &in->always,
	                           &in->n_always, e)) < 0 ||
	    (rc = inject_setting_quantity(cfg->proxy_cpu_request, "proxy.cpu_request",
	                                  &in->cpu_request, e)) < 0 ||
	    (rc = inject_setting_quantity(cfg->proxy_memory_request, "proxy.memory_request",
	                                  &in->memory_request, e)) < 0 ||
	    (rc = inject_setting_quantity(cfg->proxy_cpu_limit, "proxy.cpu_limit", &in->cpu_limit,
	                                  e)) < 0 ||
	    (rc = inject_setting_quantity(cfg->proxy_memory_limit, "proxy.memory_limit",
	                                  &in->memory_limit, e)) < 0)
		goto out;
	if ((rc = settings_image_check(in->image, &le)) < 0 ||
	    (rc = settings_ports_from_list(&cfg->include_inbound_ports, true, &in->include_inbound,
	                                   &le)) < 0 ||
	    (rc = settings_ports_from_list(&cfg->exclude_inbound_ports, false, &in->exclude_inbound,
	                                   &le)) < 0 ||
	    (rc = settings_ports_from_list(&cfg->exclude_outbound_ports, false,
	                                   &in->exclude_outbound, &le)) < 0 ||
	    (rc = settings_cidrs_from_list(&cfg->include_outbound_ip_ranges, true,
	                                   &in->include_outbound_cidrs, &le)) < 0 ||
	    (rc = settings_cidrs_from_list(&cfg->exclude_outbound_ip_ranges, false,
	                                   &in->exclude_outbound_cidrs, &le)) < 0) {
		rc = err_set(e, ERR_INJECT_SETTINGS, "a proxy or capture setting %s", le.msg);
		goto out;
	}
	rc = settings_cidrs_from_list(&cfg->service_ranges, false, &in->service_ranges, &le);
	if (rc < 0) {
		rc = err_set(e, ERR_INJECT_SETTINGS, "mesh.service_ranges: %s", le.msg);
		goto out;
	}
	if (inject_parts_new(in) < 0)
		goto nomem;
	return in;
nomem:
	rc = err_set(e, -ENOMEM, "out of memory");
out:
	injector_free(in);
	return NULL;
}

/* ---- one pod: reading it ---- */

/* The parts of a pod the decision looks at; every pointer is into the caller's pod. */
struct inject_pod {
	const json_t *pod;
	json_t *metadata, *annotations, *labels, *spec;
	json_t *containers, *init_containers, *volumes;
	const char *ns; /* NULL when not known */
};

/* The settings for this pod: the injector's, with the pod's annotations applied. */
struct inject_opts {
	bool native_sidecar, rewrite_probes;
	const char *image;
	int log_level;
	struct settings_quantity cpu_request, memory_request, cpu_limit, memory_limit;
	bool cpu_request_set, memory_request_set, cpu_limit_set, memory_limit_set;
	struct settings_ports include_inbound, exclude_inbound, exclude_outbound;
	struct settings_cidrs include_outbound_cidrs, exclude_outbound_cidrs;
	struct settings_ports http_ports; /* the app's HTTP/1.1 ports, for per-request policy */
	bool http_ports_set;              /* by the annotation */
	char why[448];                    /* why the pod is injected */
};

/* Fills r with a decision. Returns 1, which tells the steps of injector_pod to stop. */
static int inject_decide(struct inject_result *r, enum inject_decision d, const char *reason,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int inject_decide(struct inject_result *r, enum inject_decision d, const char *reason,
                         const char *fmt, ...)
{
	va_list ap;

	r->decision = d;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return 1;
}

static int inject_warn(struct inject_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int inject_warn(struct inject_result *r, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return json_array_append_new(r->warnings, json_string(text)) < 0 ? -ENOMEM : 0;
}

static int inject_malformed(struct inject_result *r, const char *what)
{
	return inject_decide(r, INJECT_DENIED, "malformed_pod", "the pod is malformed: %s", what);
}

/* A member that may be absent or null, else must be an object (want_array: an array). */
static bool inject_optional(const json_t *parent, const char *key, bool want_array, json_t **out)
{
	json_t *v = json_object_get(parent, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (want_array ? !json_is_array(v) : !json_is_object(v))
		return false;
	*out = v;
	return true;
}

/* Every item of a list of containers is an object with a non-empty string name. */
static bool inject_named_items(const json_t *list)
{
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *item = json_array_get(list, i);
		const json_t *name = json_object_get(item, "name");

		if (!json_is_object(item) || !json_is_string(name) || json_string_length(name) == 0)
			return false;
	}
	return true;
}

static int inject_read(const json_t *pod, const char *ns, struct inject_pod *p,
                       struct inject_result *r)
{
	const json_t *jns;

	memset(p, 0, sizeof(*p));
	p->pod = pod;
	if (!json_is_object(pod))
		return inject_malformed(r, "it is not a JSON object");
	if (!inject_optional(pod, "metadata", false, &p->metadata))
		return inject_malformed(r, "metadata is not an object");
	if (p->metadata != NULL &&
	    (!inject_optional(p->metadata, "annotations", false, &p->annotations) ||
	     !inject_optional(p->metadata, "labels", false, &p->labels)))
		return inject_malformed(r,
		                        "metadata.annotations or metadata.labels is not an object");
	p->spec = json_object_get(pod, "spec");
	if (!json_is_object(p->spec))
		return inject_malformed(r, "it has no spec object");
	p->containers = json_object_get(p->spec, "containers");
	if (!json_is_array(p->containers) || json_array_size(p->containers) == 0)
		return inject_malformed(r, "spec.containers is not a non-empty array");
	if (!inject_named_items(p->containers))
		return inject_malformed(r, "a container is not an object with a name");
	if (!inject_optional(p->spec, "initContainers", true, &p->init_containers) ||
	    (p->init_containers != NULL && !inject_named_items(p->init_containers)))
		return inject_malformed(r,
		                        "spec.initContainers is not an array of named containers");
	if (!inject_optional(p->spec, "volumes", true, &p->volumes) ||
	    (p->volumes != NULL && !inject_named_items(p->volumes)))
		return inject_malformed(r, "spec.volumes is not an array of named volumes");
	jns = p->metadata != NULL ? json_object_get(p->metadata, "namespace") : NULL;
	if (ns != NULL && *ns != '\0')
		p->ns = ns;
	else if (json_is_string(jns) && json_string_length(jns) > 0)
		p->ns = json_string_value(jns);
	return 0;
}

static const char *inject_string(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* Whether a container or init container is named name. */
static bool inject_has_container(const struct inject_pod *p, const char *name)
{
	const json_t *lists[] = { p->containers, p->init_containers };

	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; i < json_array_size(lists[l]); i++)
			if (strcmp(inject_string(json_array_get(lists[l], i), "name"), name) == 0)
				return true;
	return false;
}

/* ---- one pod: deciding ---- */

/* Step 1: pods that are never injected. */
static int inject_skip(const struct injector *in, const struct inject_pod *p,
                       struct inject_result *r)
{
	if (json_is_true(json_object_get(p->spec, "hostNetwork"))) {
		if (inject_warn(r, "meshlet: sidecar not injected: the pod uses the host's network "
		                   "(hostNetwork: true), where meshlet-init's iptables rules would "
		                   "capture the node's own traffic") < 0)
			return -ENOMEM;
		return inject_decide(r, INJECT_SKIPPED, "host_network",
		                     "not injected: the pod uses the host's network (hostNetwork: "
		                     "true), where the redirect would capture the node's traffic");
	}
	for (size_t i = 0; p->ns != NULL && i < in->n_ignore; i++)
		if (strcmp(p->ns, in->ignore_ns[i]) == 0)
			return inject_decide(r, INJECT_SKIPPED, "namespace_ignored",
			                     "not injected: namespace %s is on "
			                     "inject.ignore_namespaces",
			                     p->ns);
	if (json_object_get(p->annotations, INJECT_STATUS_KEY) != NULL)
		return inject_decide(r, INJECT_SKIPPED, "already_injected",
		                     "not injected again: the pod has the " INJECT_STATUS_KEY
		                     " annotation");
	if (inject_has_container(p, INJECT_PROXY_NAME))
		return inject_decide(r, INJECT_SKIPPED, "already_injected",
		                     "not injected again: the pod has a container "
		                     "named " INJECT_PROXY_NAME);
	return 0;
}

/* Reads meshlet.io/inject from labels or annotations: 1 enabled, 0 disabled, -1 absent. */
static int inject_switch(const json_t *obj, const char *what, struct inject_result *r, int *out)
{
	const json_t *v = json_object_get(obj, INJECT_KEY);
	char q[300];

	*out = -1;
	if (v == NULL)
		return 0;
	if (json_is_string(v) && strcmp(json_string_value(v), "enabled") == 0)
		*out = 1;
	else if (json_is_string(v) && strcmp(json_string_value(v), "disabled") == 0)
		*out = 0;
	else if (json_is_string(v))
		return inject_decide(r, INJECT_DENIED, "bad_annotation",
		                     "bad %s " INJECT_KEY ": \"%s\" must be enabled or disabled",
		                     what, settings_quote(q, sizeof(q), json_string_value(v)));
	else
		return inject_decide(r, INJECT_DENIED, "bad_annotation",
		                     "bad %s " INJECT_KEY
		                     ": its value must be the string enabled or "
		                     "disabled",
		                     what);
	return 0;
}

static bool inject_selector_matches(const struct settings_selector *s, const json_t *labels)
{
	const char *v = inject_string(labels, s->key);

	return v != NULL && (!s->has_value || strcmp(v, s->value) == 0);
}

static void inject_selector_text(const struct settings_selector *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s", s->key, s->has_value ? "=" : "", s->value);
}

/* Steps 2 and 3: does the pod want the mesh? Returns 0 (yes, o->why says why) or 1. */
static int inject_want(const struct injector *in, const struct inject_pod *p, struct inject_opts *o,
                       struct inject_result *r)
{
	char sel[384];
	int label, annotation;

	if (inject_switch(p->labels, "label", r, &label) != 0 ||
	    inject_switch(p->annotations, "annotation", r, &annotation) != 0)
		return 1;
	if (label == 0)
		return inject_decide(r, INJECT_SKIPPED, "disabled_by_label",
		                     "not injected: label " INJECT_KEY " is disabled");
	if (label == 1) {
		snprintf(o->why, sizeof(o->why), "label " INJECT_KEY " is enabled");
		return 0;
	}
	if (annotation == 0)
		return inject_decide(r, INJECT_SKIPPED, "disabled_by_annotation",
		                     "not injected: annotation " INJECT_KEY " is disabled");
	if (annotation == 1) {
		snprintf(o->why, sizeof(o->why), "annotation " INJECT_KEY " is enabled");
		return 0;
	}
	for (size_t i = 0; i < in->n_never; i++) {
		if (inject_selector_matches(&in->never[i], p->labels)) {
			inject_selector_text(&in->never[i], sel, sizeof(sel));
			return inject_decide(r, INJECT_SKIPPED, "never_selector",
			                     "not injected: the pod's labels match \"%s\" of "
			                     "inject.never_selectors",
			                     sel);
		}
	}
	for (size_t i = 0; i < in->n_always; i++) {
		if (inject_selector_matches(&in->always[i], p->labels)) {
			inject_selector_text(&in->always[i], sel, sizeof(sel));
			snprintf(o->why, sizeof(o->why),
			         "the pod's labels match \"%s\" of inject.always_selectors", sel);
			return 0;
		}
	}
	if (in->policy == SETTINGS_POLICY_DISABLED)
		return inject_decide(
		    r, INJECT_SKIPPED, "policy_disabled",
		    "not injected: inject.policy is disabled and nothing on the pod "
		    "asks for the mesh");
	snprintf(o->why, sizeof(o->why), "inject.policy is enabled");
	return 0;
}

/* ---- one pod: the override annotations ---- */

enum inject_ann {
	ANN_INCLUDE_INBOUND,
	ANN_EXCLUDE_INBOUND,
	ANN_EXCLUDE_OUTBOUND,
	ANN_INCLUDE_CIDRS,
	ANN_EXCLUDE_CIDRS,
	ANN_CPU_REQUEST,
	ANN_MEMORY_REQUEST,
	ANN_CPU_LIMIT,
	ANN_MEMORY_LIMIT,
	ANN_NATIVE_SIDECAR,
	ANN_REWRITE_PROBES,
	ANN_PROXY_IMAGE,
	ANN_LOG_LEVEL,
	ANN_HTTP_PORTS,
	ANN_COUNT_
};

static const char *const inject_ann_names[ANN_COUNT_] = {
	[ANN_INCLUDE_INBOUND] = "meshlet.io/include-inbound-ports",
	[ANN_EXCLUDE_INBOUND] = "meshlet.io/exclude-inbound-ports",
	[ANN_EXCLUDE_OUTBOUND] = "meshlet.io/exclude-outbound-ports",
	[ANN_INCLUDE_CIDRS] = "meshlet.io/include-outbound-ip-ranges",
	[ANN_EXCLUDE_CIDRS] = "meshlet.io/exclude-outbound-ip-ranges",
	[ANN_CPU_REQUEST] = "meshlet.io/proxy-cpu-request",
	[ANN_MEMORY_REQUEST] = "meshlet.io/proxy-memory-request",
	[ANN_CPU_LIMIT] = "meshlet.io/proxy-cpu-limit",
	[ANN_MEMORY_LIMIT] = "meshlet.io/proxy-memory-limit",
	[ANN_NATIVE_SIDECAR] = "meshlet.io/native-sidecar",
	[ANN_REWRITE_PROBES] = "meshlet.io/rewrite-probes",
	[ANN_PROXY_IMAGE] = "meshlet.io/proxy-image",
	[ANN_LOG_LEVEL] = "meshlet.io/log-level",
	[ANN_HTTP_PORTS] = "meshlet.io/http-ports",
};

static int inject_bool(const char *v, bool *out, struct err *e)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		*out = v[0] == 't';
		return 0;
	}
	return err_set(e, -EINVAL, "must be true or false");
}

static int inject_log_level(const char *v, int *out, struct err *e)
{
	for (int i = 0; log_level_names[i] != NULL; i++) {
		if (strcmp(v, log_level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return err_set(e, -EINVAL, "must be one of debug, info, warn, error");
}

/* Applies one annotation to o. Returns 0 or a code with e's phrase saying what is wrong. */
static int inject_ann_apply(enum inject_ann a, const char *v, struct inject_opts *o, struct err *e)
{
	switch (a) {
	case ANN_INCLUDE_INBOUND:
		return settings_ports_parse(v, true, &o->include_inbound, e);
	case ANN_EXCLUDE_INBOUND:
		return settings_ports_parse(v, false, &o->exclude_inbound, e);
	case ANN_EXCLUDE_OUTBOUND:
		return settings_ports_parse(v, false, &o->exclude_outbound, e);
	case ANN_INCLUDE_CIDRS:
		return settings_cidrs_parse(v, true, &o->include_outbound_cidrs, e);
	case ANN_EXCLUDE_CIDRS:
		return settings_cidrs_parse(v, false, &o->exclude_outbound_cidrs, e);
	case ANN_CPU_REQUEST:
		o->cpu_request_set = true;
		return settings_quantity_parse(v, &o->cpu_request, e);
	case ANN_MEMORY_REQUEST:
		o->memory_request_set = true;
		return settings_quantity_parse(v, &o->memory_request, e);
	case ANN_CPU_LIMIT:
		o->cpu_limit_set = true;
		return settings_quantity_parse(v, &o->cpu_limit, e);
	case ANN_MEMORY_LIMIT:
		o->memory_limit_set = true;
		return settings_quantity_parse(v, &o->memory_limit, e);
	case ANN_NATIVE_SIDECAR:
		return inject_bool(v, &o->native_sidecar, e);
	case ANN_REWRITE_PROBES:
		return inject_bool(v, &o->rewrite_probes, e);
	case ANN_PROXY_IMAGE:
		o->image = v;
		return settings_image_check(v, e);
	case ANN_LOG_LEVEL:
		return inject_log_level(v, &o->log_level, e);
	case ANN_HTTP_PORTS:
		o->http_ports_set = true;
		return settings_ports_parse(v, false, &o->http_ports, e);
	case ANN_COUNT_:
		break;
	}
	return -EINVAL;
}

/* Appends "; " and a formatted sentence to the message being built in buf. */
static void inject_append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void inject_append(char *buf, size_t size, const char *fmt, ...)
{
	size_t pos = strlen(buf);
	va_list ap;

	if (pos > 0 && pos + 2 < size)
		pos += (size_t)snprintf(buf + pos, size - pos, "; ");
	if (pos >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + pos, size - pos, fmt, ap);
	va_end(ap);
}

/* Kubernetes refuses a container whose request is above its limit: refuse it here first. */
static void inject_check_resource(const char *what, const struct settings_quantity *req,
                                  bool req_set, enum inject_ann req_ann,
                                  const struct settings_quantity *lim, bool lim_set,
                                  enum inject_ann lim_ann, char *msg, size_t size)
{
	if (lim->text[0] == '\0' || req->value <= lim->value)
		return;
	if (req_set)
		inject_append(msg, size,
		              "bad annotation %s: \"%s\" is more than the proxy's %s limit %s",
		              inject_ann_names[req_ann], req->text, what, lim->text);
	else if (lim_set)
		inject_append(msg, size,
		              "bad annotation %s: \"%s\" is less than the proxy's %s request %s",
		              inject_ann_names[lim_ann], lim->text, what, req->text);
}

/*
 * The app's ports that speak HTTP/1.1, as Istio reads a Service's ports: a container
 * port named "http" or "http-<suffix>", or with appProtocol "http". The proxy decides
 * policies per request there (MESHLET_HTTP_PORTS).
 */
static void inject_http_ports(const struct inject_pod *p, struct settings_ports *out)
{
	out->all = false;
	out->n = 0;
	for (size_t i = 0; i < json_array_size(p->containers); i++) {
		const json_t *cports = json_object_get(json_array_get(p->containers, i), "ports");

		for (size_t j = 0; j < json_array_size(cports); j++) {
			const json_t *port = json_array_get(cports, j);
			const char *name = inject_string(port, "name");
			const char *proto = inject_string(port, "appProtocol");
			json_int_t n = json_integer_value(json_object_get(port, "containerPort"));

			if (n >= 1 && n <= 65535 &&
			    ((name != NULL &&
			      (strcmp(name, "http") == 0 || strncmp(name, "http-", 5) == 0)) ||
			     (proto != NULL && strcmp(proto, "http") == 0)) &&
			    out->n < SETTINGS_PORTS_MAX)
				settings_ports_add(out, (uint16_t)n);
		}
	}
}

/* Step 4: the settings for this pod. Returns 0, 1 (denied) or -ENOMEM. */
static int inject_options(const struct injector *in, const struct inject_pod *p,
                          struct inject_opts *o, struct inject_result *r)
{
	char msg[sizeof(r->message)] = "";
	char q[300];

	o->native_sidecar = in->native_sidecar;
	o->rewrite_probes = in->rewrite_probes;
	o->image = in->image;
	o->log_level = in->log_level;
	o->cpu_request = in->cpu_request;
	o->memory_request = in->memory_request;
	o->cpu_limit = in->cpu_limit;
	o->memory_limit = in->memory_limit;
	o->include_inbound = in->include_inbound;
	o->exclude_inbound = in->exclude_inbound;
	o->exclude_outbound = in->exclude_outbound;
	o->include_outbound_cidrs = in->include_outbound_cidrs;
	o->exclude_outbound_cidrs = in->exclude_outbound_cidrs;

	for (void *it = json_object_iter(p->annotations); it != NULL;
	     it = json_object_iter_next(p->annotations, it)) {
		const char *key = json_object_iter_key(it);
		const json_t *value = json_object_iter_value(it);
		enum inject_ann a = ANN_COUNT_;
		struct err e = { 0 };

		if (strncmp(key, INJECT_ANNOTATION_NS, strlen(INJECT_ANNOTATION_NS)) != 0 ||
		    strcmp(key, INJECT_KEY) == 0 || strcmp(key, INJECT_STATUS_KEY) == 0)
			continue;
		for (int i = 0; i < ANN_COUNT_; i++)
			if (strcmp(key, inject_ann_names[i]) == 0)
				a = (enum inject_ann)i;
		if (a == ANN_COUNT_) {
			if (inject_warn(r, "meshlet: unknown annotation %s is ignored",
			                settings_quote(q, sizeof(q), key)) < 0)
				return -ENOMEM;
			continue;
		}
		if (!json_is_string(value))
			inject_append(msg, sizeof(msg),
			              "bad annotation %s: its value must be a string", key);
		else if (inject_ann_apply(a, json_string_value(value), o, &e) < 0)
			inject_append(msg, sizeof(msg), "bad annotation %s: \"%s\" %s", key,
			              settings_quote(q, sizeof(q), json_string_value(value)),
			              e.msg);
	}
	if (msg[0] == '\0') {
		inject_check_resource("cpu", &o->cpu_request, o->cpu_request_set, ANN_CPU_REQUEST,
		                      &o->cpu_limit, o->cpu_limit_set, ANN_CPU_LIMIT, msg,
		                      sizeof(msg));
		inject_check_resource("memory", &o->memory_request, o->memory_request_set,
		                      ANN_MEMORY_REQUEST, &o->memory_limit, o->memory_limit_set,
		                      ANN_MEMORY_LIMIT, msg, sizeof(msg));
	}
	if (msg[0] != '\0')
		return inject_decide(r, INJECT_DENIED, "bad_annotation", "%s", msg);
	if (!o->http_ports_set)
		inject_http_ports(p, &o->http_ports);
	return 0;
}

/* Step 5: names and ports that meshlet needs for itself. */
static int inject_conflicts(const struct inject_pod *p, struct inject_result *r)
{
	static const int ports[] = { INJECT_PORT_OUTBOUND, INJECT_PORT_INBOUND, INJECT_PORT_TUNNEL,
		                     INJECT_PORT_ADMIN };
	const json_t *lists[] = { p->containers, p->init_containers };
	const size_t nvol = sizeof(inject_volume_names) / sizeof(inject_volume_names[0]);

	if (inject_has_container(p, INJECT_INIT_NAME))
		return inject_decide(r, INJECT_DENIED, "name_conflict",
		                     "cannot inject: a container is already named " INJECT_INIT_NAME
		                     ", a name meshlet needs for its own init container; rename it "
		                     "or set " INJECT_KEY ": disabled");
	for (size_t i = 0; i < json_array_size(p->volumes); i++) {
		const char *name = inject_string(json_array_get(p->volumes, i), "name");

		for (size_t j = 0; j < nvol; j++)
			if (strcmp(name, inject_volume_names[j]) == 0)
				return inject_decide(
				    r, INJECT_DENIED, "name_conflict",
				    "cannot inject: a volume is already named %s, a "
				    "name meshlet needs; rename it or set " INJECT_KEY ": disabled",
				    name);
	}
	for (size_t l = 0; l < 2; l++) {
		for (size_t i = 0; i < json_array_size(lists[l]); i++) {
			const json_t *c = json_array_get(lists[l], i);
			const json_t *cports = json_object_get(c, "ports");

			for (size_t j = 0; j < json_array_size(cports); j++) {
				json_int_t n = json_integer_value(
				    json_object_get(json_array_get(cports, j), "containerPort"));

				for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++)
					if (n == ports[k])
						return inject_decide(
						    r, INJECT_DENIED, "port_conflict",
						    "cannot inject: container %s declares port %d, "
						    "which the meshlet proxy listens on (it needs "
						    "15001, 15006, 15008 and 15021)",
						    inject_string(c, "name"), ports[k]);
			}
		}
	}
	return 0;
}

/* ---- one pod: probes ---- */

static const struct {
	const char *field, *kind;
} inject_probe_kinds[] = {
	{ "livenessProbe", "livez" },
	{ "readinessProbe", "readyz" },
	{ "startupProbe", "startupz" },
};

/* A probe's port: a number, or the name of one of the container's ports. 0 if neither. */
static json_int_t inject_probe_port(const json_t *container, const json_t *port)
{
	const json_t *ports = json_object_get(container, "ports");
	size_t i;

	if (json_is_integer(port)) {
		json_int_t n = json_integer_value(port);

		return n >= 1 && n <= 65535 ? n : 0;
	}
	if (!json_is_string(port))
		return 0;
	for (i = 0; i < json_array_size(ports); i++) {
		const json_t *p = json_array_get(ports, i);
		const char *name = inject_string(p, "name");
		json_int_t n = json_integer_value(json_object_get(p, "containerPort"));

		if (name != NULL && strcmp(name, json_string_value(port)) == 0)
			return n >= 1 && n <= 65535 ? n : 0;
	}
	return 0;
}

/*
 * The replacement of the probe orig: the same but for its handler (type, and any other
 * httpGet member), which is an httpGet of health on the proxy's admin port, last. As JSON
 * text, malloc'd, or NULL when out of memory.
 */
static char *inject_probe_text(json_t *orig, const char *type, const char *health, size_t *len)
{
	struct jwrite w;
	bool first = true;

	jwrite_init(&w, 512);
	jwrite_lit(&w, "{");
	for (void *it = json_object_iter(orig); it != NULL; it = json_object_iter_next(orig, it)) {
		const char *key = json_object_iter_key(it);

		if (strcmp(key, type) == 0 || strcmp(key, "httpGet") == 0)
			continue;
		if (!first)
			jwrite_lit(&w, ",");
		first = false;
		jwrite_string(&w, key, json_object_iter_key_len(it));
		jwrite_lit(&w, ":");
		jwrite_value(&w, json_object_iter_value(it));
	}
	if (!first)
		jwrite_lit(&w, ",");
	jwrite_lit(&w, "\"httpGet\":{\"path\":");
	jwrite_str(&w, health);
	jwrite_lit(&w, ",\"port\":" INJECT_STR(INJECT_PORT_ADMIN) ",\"scheme\":\"HTTP\"}}");
	return jwrite_take(&w, len);
}

/*
 * Points the httpGet and tcpSocket probes of one container (list[idx]) at the proxy's
 * admin port: a replace of that probe, with only its handler changed, and the original
 * handler (its port as a number) saved in probes under the new path.
 */
static int inject_rewrite_container(const json_t *c, const char *list, size_t idx,
                                    struct patch *patch, json_t *probes, struct inject_result *r)
{
	const char *cname = inject_string(c, "name");
	json_t *saved = NULL, *handler = NULL;
	char *probe = NULL;
	size_t probe_len;
	char path[PATCH_POINTER_MAX], health[PATCH_POINTER_MAX], q[300];
	int rc = 0;

	for (size_t k = 0; k < sizeof(inject_probe_kinds) / sizeof(inject_probe_kinds[0]); k++) {
		json_t *orig = json_object_get(c, inject_probe_kinds[k].field);
		const json_t *http = json_object_get(orig, "httpGet");
		const json_t *tcp = json_object_get(orig, "tcpSocket");
		const json_t *action = json_is_object(http) ? http : tcp;
		const char *type = json_is_object(http) ? "httpGet" : "tcpSocket";
		const char *host;
		json_int_t port;

		if (!json_is_object(orig))
			continue;
		if (!json_is_object(action)) {
			if (json_object_get(orig, "grpc") != NULL &&
			    (rc =
			         inject_warn(r,
			                     "meshlet: container %s: the grpc %s is not rewritten: "
			                     "if inbound mTLS is STRICT, exclude its port with "
			                     "meshlet.io/exclude-inbound-ports",
			                     cname, inject_probe_kinds[k].field)) < 0)
				goto out;
			continue;
		}
		/* A probe of another host does not enter the pod: mTLS cannot break it. */
		host = inject_string(action, "host");
		if (host != NULL && *host != '\0')
			continue;
		port = inject_probe_port(c, json_object_get(action, "port"));
		if (port == 0) {
			const json_t *jp = json_object_get(action, "port");

			rc = inject_warn(
			    r,
			    "meshlet: container %s: %s port %s%s%s is not one of the "
			    "container's ports, so the probe is left as it is (it may fail "
			    "if inbound mTLS is STRICT)",
			    cname, inject_probe_kinds[k].field, json_is_string(jp) ? "\"" : "",
			    json_is_string(jp) ? settings_quote(q, sizeof(q), json_string_value(jp))
			                       : "(not a valid number)",
			    json_is_string(jp) ? "\"" : "");
			if (rc < 0)
				goto out;
			continue;
		}
		snprintf(health, sizeof(health), "/app-health/%s/%s", cname,
		         inject_probe_kinds[k].kind);
		snprintf(path, sizeof(path), "/spec/%s/%zu/%s", list, idx,
		         inject_probe_kinds[k].field);
		handler = json_deep_copy(action);
		saved = json_object();
		probe = inject_probe_text(orig, type, health, &probe_len);
		rc = -ENOMEM;
		if (handler == NULL || saved == NULL || probe == NULL ||
		    json_object_set_new(handler, "port", json_integer(port)) < 0 ||
		    json_object_set(saved, type, handler) < 0 ||
		    json_object_set(probes, health, saved) < 0)
			goto out;
		rc = patch_op(patch, "replace", path, probe, probe_len);
		if (rc < 0)
			goto out;
		json_decref(handler);
		json_decref(saved);
		free(probe);
		handler = saved = NULL;
		probe = NULL;
	}
out:
	json_decref(handler);
	json_decref(saved);
	free(probe);
	return rc;
}

/* ---- one pod: what is injected ---- */

static json_t *inject_env_value(const char *name, const char *value)
{
	return json_pack("{s:s, s:s}", "name", name, "value", value);
}

static json_t *inject_env_field(const char *name, const char *field)
{
	return json_pack("{s:s, s:{s:{s:s}}}", "name", name, "valueFrom", "fieldRef", "fieldPath",
	                 field);
}

/* An env entry {"name": name, "value": value}, as text. */
static void inject_write_env(struct jwrite *w, const char *name, const char *value)
{
	jwrite_lit(w, "{\"name\":");
	jwrite_str(w, name);
	jwrite_lit(w, ",\"value\":");
	jwrite_str(w, value);
	jwrite_lit(w, "}");
}

static void inject_write_resources(struct jwrite *w, const struct inject_opts *o)
{
	bool cpu = o->cpu_limit.text[0] != '\0', memory = o->memory_limit.text[0] != '\0';

	jwrite_lit(w, "{\"requests\":{\"cpu\":");
	jwrite_str(w, o->cpu_request.text);
	jwrite_lit(w, ",\"memory\":");
	jwrite_str(w, o->memory_request.text);
	jwrite_lit(w, "}");
	if (cpu || memory) {
		jwrite_lit(w, ",\"limits\":{");
		if (cpu) {
			jwrite_lit(w, "\"cpu\":");
			jwrite_str(w, o->cpu_limit.text);
		}
		if (memory) {
			if (cpu)
				jwrite_lit(w, ",");
			jwrite_lit(w, "\"memory\":");
			jwrite_str(w, o->memory_limit.text);
		}
		jwrite_lit(w, "}");
	}
	jwrite_lit(w, "}");
}

static void inject_write_init(const struct injector *in, const struct inject_opts *o,
                              struct jwrite *w)
{
	struct settings_ports exclude_inbound = o->exclude_inbound;
	char inc_in[SETTINGS_PORTS_MAX * 6 + 8], exc_in[(SETTINGS_PORTS_MAX + 2) * 6 + 8];
	char exc_out[SETTINGS_PORTS_MAX * 6 + 8];
	char inc_cidr[SETTINGS_CIDRS_MAX * 48 + 8], exc_cidr[SETTINGS_CIDRS_MAX * 48 + 8];

	/* The proxy's own ports are reached directly, never through the redirect. */
	settings_ports_add(&exclude_inbound, INJECT_PORT_TUNNEL);
	settings_ports_add(&exclude_inbound, INJECT_PORT_ADMIN);
	settings_ports_format(&o->include_inbound, inc_in, sizeof(inc_in));
	settings_ports_format(&exclude_inbound, exc_in, sizeof(exc_in));
	settings_ports_format(&o->exclude_outbound, exc_out, sizeof(exc_out));
	settings_cidrs_format(&o->include_outbound_cidrs, inc_cidr, sizeof(inc_cidr));
	settings_cidrs_format(&o->exclude_outbound_cidrs, exc_cidr, sizeof(exc_cidr));

	jwrite_lit(w, "{\"name\":\"" INJECT_INIT_NAME "\",\"image\":");
	jwrite_str(w, o->image);
	jwrite_lit(w, ",\"imagePullPolicy\":");
	jwrite_str(w, in->pull_policy);
	jwrite_lit(
	    w,
	    ",\"command\":[\"meshlet-proxy\",\"init\"],\"args\":["
	    "\"--proxy-uid\",\"" INJECT_STR(
	        INJECT_PROXY_UID) "\","
	                          "\"--proxy-gid\",\"" INJECT_STR(
	                              INJECT_PROXY_GID) "\","
	                                                "\"--inbound-port\",\"" INJECT_STR(
	                                                    INJECT_PORT_INBOUND) "\","
	                                                                         "\"--outbound-"
	                                                                         "port\","
	                                                                         "\"" INJECT_STR(
	                                                                             INJECT_PORT_OUTBOUND) "\","
	                                                                                                   "\"--include-inbound-ports\",");
	jwrite_str(w, inc_in);
	jwrite_lit(w, ",\"--exclude-inbound-ports\",");
	jwrite_str(w, exc_in);
	if (exc_out[0] != '\0') {
		jwrite_lit(w, ",\"--exclude-outbound-ports\",");
		jwrite_str(w, exc_out);
	}
	jwrite_lit(w, ",\"--include-outbound-cidrs\",");
	jwrite_str(w, inc_cidr);
	if (exc_cidr[0] != '\0') {
		jwrite_lit(w, ",\"--exclude-outbound-cidrs\",");
		jwrite_str(w, exc_cidr);
	}
	jwrite_lit(w, "],"
	              "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},"
	              "\"limits\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"}},"
	              "\"securityContext\":{"
	              "\"capabilities\":{\"add\":[\"NET_ADMIN\",\"NET_RAW\"],\"drop\":[\"ALL\"]},"
	              "\"runAsUser\":0,\"runAsGroup\":0,\"runAsNonRoot\":false,"
	              "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
	              "\"privileged\":false}}");
}

/* The proxy container; probes holds the app's rewritten probes, for the proxy to run. */
static int inject_write_proxy(const struct injector *in, const struct inject_opts *o,
                              json_t *probes, struct jwrite *w)
{
	char *probes_text = NULL;
	struct jwrite pw;

	if (json_object_size(probes) > 0) {
		jwrite_init(&pw, 512);
		jwrite_value(&pw, probes);
		probes_text = jwrite_take(&pw, NULL);
		if (probes_text == NULL)
			return -ENOMEM;
	}
	jwrite_lit(w, "{\"name\":\"" INJECT_PROXY_NAME "\",\"image\":");
	jwrite_str(w, o->image);
	jwrite_lit(w, ",\"imagePullPolicy\":");
	jwrite_str(w, in->pull_policy);
	jwrite_lit(w, ",\"command\":[\"meshlet-proxy\",\"run\"],\"ports\":["
	              "{\"containerPort\":" INJECT_STR(
	                  INJECT_PORT_TUNNEL) ","
	                                      "\"name\":\"meshlet-tunnel\",\"protocol\":\"TCP\"},"
	                                      "{\"containerPort\":" INJECT_STR(
	                                          INJECT_PORT_ADMIN) ","
	                                                             "\"name\":\"meshlet-admin\","
	                                                             "\"protocol\":\"TCP\"}],"
	                                                             "\"env\":");
	/* The shared entries, without their closing ']'. */
	jwrite_raw(w, in->proxy_env, in->proxy_env_len - 1);
	jwrite_lit(w, ",");
	inject_write_env(w, "MESHLET_LOG_LEVEL", log_level_names[o->log_level]);
	if (o->http_ports.n > 0) {
		char ports[SETTINGS_PORTS_MAX * 6 + 8];

		settings_ports_format(&o->http_ports, ports, sizeof(ports));
		jwrite_lit(w, ",");
		inject_write_env(w, "MESHLET_HTTP_PORTS", ports);
	}
	if (probes_text != NULL) {
		jwrite_lit(w, ",");
		inject_write_env(w, "MESHLET_APP_PROBES", probes_text);
	}
	jwrite_lit(
	    w, "],\"readinessProbe\":{\"httpGet\":{\"path\":\"/healthz/ready\","
	       "\"port\":" INJECT_STR(
	           INJECT_PORT_ADMIN) ",\"scheme\":\"HTTP\"}},"
	                              "\"startupProbe\":{\"httpGet\":{\"path\":\"/healthz/ready\","
	                              "\"port\":" INJECT_STR(
	                                  INJECT_PORT_ADMIN) ",\"scheme\":\"HTTP\"},"
	                                                     "\"periodSeconds\":1,"
	                                                     "\"failureThreshold\":" INJECT_STR(
	                                                         INJECT_STARTUP_FAILURES) "},"
	                                                                                  "\"resour"
	                                                                                  "ces\":");
	inject_write_resources(w, o);
	jwrite_lit(
	    w,
	    ",\"securityContext\":{"
	    "\"runAsUser\":" INJECT_STR(
	        INJECT_PROXY_UID) ","
	                          "\"runAsGroup\":" INJECT_STR(
	                              INJECT_PROXY_GID) ","
	                                                "\"runAsNonRoot\":true,"
	                                                "\"allowPrivilegeEscalation\":false,"
	                                                "\"readOnlyRootFilesystem\":true,"
	                                                "\"capabilities\":{\"drop\":[\"ALL\"]},"
	                                                "\"privileged\":false},"
	                                                "\"volumeMounts\":["
	                                                "{\"name\":\"meshlet-token\",\"mountPath\":"
	                                                "\"" INJECT_TOKEN_DIR "\","
	                                                "\"readOnly\":true},"
	                                                "{\"name\":\"meshlet-certs\",\"mountPath\":"
	                                                "\"" INJECT_CERTS_DIR "\"},"
	                                                "{\"name\":\"meshlet-podinfo\","
	                                                "\"mountPath\":\"" INJECT_PODINFO_DIR "\","
	                                                "\"readOnly\":true},"
	                                                "{\"name\":\"meshlet-policy\","
	                                                "\"mountPath\":\"" INJECT_POLICY_DIR "\","
	                                                "\"readOnly\":true}]");
	if (o->native_sidecar)
		jwrite_lit(w, ",\"restartPolicy\":\"Always\"");
	jwrite_lit(w, "}");
	free(probes_text);
	return 0;
}

static json_t *inject_volumes(const struct injector *in)
{
	return json_pack("[{s:s, s:{s:[{s:{s:s, s:i, s:s}}]}},"
	                 " {s:s, s:{s:s}},"
	                 " {s:s, s:{s:[{s:s, s:{s:s}}]}},"
	                 " {s:s, s:{s:s, s:b}}]",
	                 "name", "meshlet-token", "projected", "sources", "serviceAccountToken",
	                 "audience", in->token_audience, "expirationSeconds", INJECT_TOKEN_SECONDS,
	                 "path", "token", "name", "meshlet-certs", "emptyDir", "medium", "Memory",
	                 "name", "meshlet-podinfo", "downwardAPI", "items", "path", "labels",
	                 "fieldRef", "fieldPath", "metadata.labels", "name", "meshlet-policy",
	                 "configMap", "name", "meshlet-policy", "optional", 1);
}

/* The meshlet.io/status annotation's text: what was injected, by which version. */
static char *inject_status(bool native)
{
	json_t *s = json_pack("{s:s, s:[s], s:[], s:[s,s,s,s]}", "version", MESHLET_VERSION,
	                      "initContainers", INJECT_INIT_NAME, "containers", "volumes",
	                      inject_volume_names[0], inject_volume_names[1],
	                      inject_volume_names[2], inject_volume_names[3]);
	char *text = NULL;

	if (s != NULL &&
	    json_array_append_new(json_object_get(s, native ? "initContainers" : "containers"),
	                          json_string(INJECT_PROXY_NAME)) == 0)
		text = json_dumps(s, JSON_COMPACT);
	json_decref(s);
	return text;
}

/* JSON text of a jansson value, malloc'd, into *text and *len. Takes v. */
static int inject_text_of(json_t *v, char **text, size_t *len)
{
	struct jwrite w;

	if (v == NULL)
		return -ENOMEM;
	jwrite_init(&w, 0);
	jwrite_value(&w, v);
	json_decref(v);
	*text = jwrite_take(&w, len);
	return *text != NULL ? 0 : -ENOMEM;
}

/*
 * The proxy's env that every pod shares, in a fixed order; MESHLET_SERVICE_RANGES last,
 * and only when mesh.service_ranges lists any.
 */
static json_t *inject_shared_env(const struct injector *in)
{
	char ranges[SETTINGS_CIDRS_MAX * 48 + 8];
	json_t *env = json_pack(
	    "[o,o,o,o,o,o,o,o,o,o]", inject_env_field("MESHLET_POD_NAME", "metadata.name"),
	    inject_env_field("MESHLET_POD_NAMESPACE", "metadata.namespace"),
	    inject_env_field("MESHLET_POD_IP", "status.podIP"),
	    inject_env_field("MESHLET_SERVICE_ACCOUNT", "spec.serviceAccountName"),
	    inject_env_value("MESHLET_CA_ADDRESS", in->ca_address),
	    inject_env_value("MESHLET_TRUST_DOMAIN", in->trust_domain),
	    inject_env_value("MESHLET_TRUST_BUNDLE", in->bundle),
	    inject_env_value("MESHLET_TOKEN_FILE", INJECT_TOKEN_DIR "/token"),
	    inject_env_value("MESHLET_POLICY_PATHS", INJECT_POLICY_DIR),
	    inject_env_value("MESHLET_POD_LABELS_FILE", INJECT_PODINFO_DIR "/labels"));

	if (env == NULL || in->service_ranges.n == 0)
		return env;
	settings_cidrs_format(&in->service_ranges, ranges, sizeof(ranges));
	if (json_array_append_new(env, inject_env_value("MESHLET_SERVICE_RANGES", ranges)) < 0) {
		json_decref(env);
		return NULL;
	}
	return env;
}

/* Writes the parts of struct injector that every pod shares. Returns 0 or -ENOMEM. */
static int inject_parts_new(struct injector *in)
{
	json_t *volumes = inject_volumes(in);
	char *status;
	struct jwrite w;
	int rc = 0;

	for (size_t i = 0; i < INJECT_N_VOLUMES && rc == 0; i++)
		rc = inject_text_of(json_incref(json_array_get(volumes, i)), &in->volume_text[i],
		                    &in->volume_len[i]);
	json_decref(volumes);
	if (rc == 0)
		rc = inject_text_of(inject_shared_env(in), &in->proxy_env, &in->proxy_env_len);
	for (int native = 0; native < 2 && rc == 0; native++) {
		status = inject_status(native);
		if (status == NULL)
			return -ENOMEM;
		jwrite_init(&w, 0);
		jwrite_str(&w, status);
		free(status);
		in->status_text[native] = jwrite_take(&w, &in->status_len[native]);
		if (in->status_text[native] == NULL)
			rc = -ENOMEM;
	}
	return rc;
}

/*
 * Step 6: the patch. Its operations, in this order:
 *   1. probe rewrites, each a replace of one probe at the index the pod has now (so they
 *      come before any insertion that would shift an index);
 *   2. the init containers: native mode inserts meshlet-init at 0 and meshlet-proxy at 1,
 *      so that the proxy runs before the user's init containers and they reach the network
 *      through it. Classic mode appends meshlet-init after the user's init containers, as
 *      Istio does: there is no proxy yet while init containers run, so redirecting their
 *      traffic would send it to a port nobody listens on, and they would fail;
 *   3. classic mode: meshlet-proxy appended to the containers;
 *   4. the volumes, appended;
 *   5. the annotations meshlet.io/status and (when the pod names none)
 *      kubectl.kubernetes.io/default-container: the first app container, so that
 *      `kubectl logs` and `kubectl exec` do not land in the proxy.
 * Each absent array or object is added whole (patch.h). The patch is written as text.
 */
static int inject_build(const struct injector *in, const struct inject_pod *p,
                        const struct inject_opts *o, struct inject_result *r)
{
	static const char *const init_path[] = { "spec", "initContainers" };
	static const char *const containers_path[] = { "spec", "containers" };
	static const char *const volumes_path[] = { "spec", "volumes" };
	static const char *const annotations_path[] = { "metadata", "annotations" };
	json_t *probes = json_object();
	struct patch patch;
	struct jwrite init, proxy, name;
	struct patch_value items[2], volumes[INJECT_N_VOLUMES], members[2];
	size_t i, n_members = 0;
	int rc = -ENOMEM;

	patch_init(&patch);
	jwrite_init(&init, 1024);
	jwrite_init(&proxy, 4096 + in->proxy_env_len);
	jwrite_init(&name, 64);
	if (probes == NULL)
		goto out;
	if (o->rewrite_probes) {
		for (i = 0; i < json_array_size(p->containers); i++) {
			rc = inject_rewrite_container(json_array_get(p->containers, i),
			                              "containers", i, &patch, probes, r);
			if (rc < 0)
				goto out;
		}
		/*
		 * The user's own native sidecars are probed through the proxy too, but only
		 * when the proxy starts before them: in classic mode it starts after them.
		 */
		for (i = 0; o->native_sidecar && i < json_array_size(p->init_containers); i++) {
			const json_t *c = json_array_get(p->init_containers, i);
			const char *policy = inject_string(c, "restartPolicy");

			if (policy != NULL && strcmp(policy, "Always") == 0 &&
			    (rc = inject_rewrite_container(c, "initContainers", i, &patch, probes,
			                                   r)) < 0)
				goto out;
		}
	}
	rc = -ENOMEM;
	inject_write_init(in, o, &init);
	if (inject_write_proxy(in, o, probes, &proxy) < 0 || init.failed || proxy.failed)
		goto out;
	items[0] = (struct patch_value){ .text = init.buf, .len = init.len };
	items[1] = (struct patch_value){ .text = proxy.buf, .len = proxy.len };
	if (o->native_sidecar) {
		rc = patch_insert(&patch, p->pod, init_path, 2, 0, items, 2);
	} else {
		rc = patch_insert(&patch, p->pod, init_path, 2, PATCH_END, &items[0], 1);
		if (rc == 0)
			rc = patch_insert(&patch, p->pod, containers_path, 2, PATCH_END, &items[1],
			                  1);
	}
	if (rc < 0)
		goto out;
	for (i = 0; i < INJECT_N_VOLUMES; i++)
		volumes[i] =
		    (struct patch_value){ .text = in->volume_text[i], .len = in->volume_len[i] };
	rc = patch_insert(&patch, p->pod, volumes_path, 2, PATCH_END, volumes, INJECT_N_VOLUMES);
	if (rc < 0)
		goto out;
	members[n_members++] = (struct patch_value){ .key = INJECT_STATUS_KEY,
		                                     .text = in->status_text[o->native_sidecar],
		                                     .len = in->status_len[o->native_sidecar] };
	if (json_object_get(p->annotations, INJECT_DEFAULT_CONTAINER) == NULL) {
		jwrite_str(&name, inject_string(json_array_get(p->containers, 0), "name"));
		rc = -ENOMEM;
		if (name.failed)
			goto out;
		members[n_members++] = (struct patch_value){ .key = INJECT_DEFAULT_CONTAINER,
			                                     .text = name.buf,
			                                     .len = name.len };
	}
	rc = patch_add_members(&patch, p->pod, annotations_path, 2, members, n_members);
	if (rc < 0)
		goto out;
	r->patch_ops = patch.ops;
	r->patch_text = patch_finish(&patch, &r->patch_len);
	rc = -ENOMEM;
	if (r->patch_text == NULL)
		goto out;
	inject_decide(r, INJECT_INJECTED, "injected", "injected %s as a %s: %.400s",
	              INJECT_PROXY_NAME, o->native_sidecar ? "native sidecar" : "classic sidecar",
	              o->why);
	rc = 0;
out:
	patch_free(&patch);
	jwrite_free(&init);
	jwrite_free(&proxy);
	jwrite_free(&name);
	json_decref(probes);
	return rc;
}

/* ---- the entry points ---- */

int injector_pod_text(const struct injector *in, const json_t *pod, const char *namespace_,
                      struct inject_result *out)
{
	struct inject_pod p;
	struct inject_opts *o = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->warnings = json_array();
	/* The options hold every list at its largest, some KiB: keep them off a server thread's
	 * stack. */
	o = calloc(1, sizeof(*o));
	if (out->warnings == NULL || o == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = inject_read(pod, namespace_, &p, out);
	if (rc == 0)
		rc = inject_skip(in, &p, out);
	if (rc == 0)
		rc = inject_want(in, &p, o, out);
	if (rc == 0)
		rc = inject_options(in, &p, o, out);
	if (rc == 0)
		rc = inject_conflicts(&p, out);
	if (rc == 0)
		rc = inject_build(in, &p, o, out);
out:
	free(o);
	if (rc < 0) {
		inject_result_clear(out);
		snprintf(out->message, sizeof(out->message), "%s", err_str(rc));
		return rc;
	}
	return 0;
}

int injector_pod(const struct injector *in, const json_t *pod, const char *namespace_,
                 struct inject_result *out)
{
	struct jparse_error e;
	int rc = injector_pod_text(in, pod, namespace_, out);

	if (rc < 0 || out->patch_text == NULL)
		return rc;
	out->patch = jparse_load(out->patch_text, out->patch_len, &e);
	if (out->patch == NULL) {
		/* The text is ours and valid: only memory can be missing. */
		inject_result_clear(out);
		snprintf(out->message, sizeof(out->message), "%s", err_str(-ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

void inject_result_clear(struct inject_result *r)
{
	json_decref(r->patch);
	json_decref(r->warnings);
	free(r->patch_text);
	r->patch = NULL;
	r->warnings = NULL;
	r->patch_text = NULL;
	r->patch_len = 0;
	r->patch_ops = 0;
}

json_t *inject_apply_patch(const json_t *doc, const json_t *patch, struct err *e)
{
	return patch_apply(doc, patch, e);
}
