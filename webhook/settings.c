/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's configuration table and the rules that span its keys. */
#include "settings.h"

static const char *const settings_policies[] = { "enabled", "disabled", NULL };

#define S struct settings
static const struct config_key settings_keys[] = {
	CONFIG_STRING("listen", S, listen, 0, "0.0.0.0:9443", config_valid_listen,
	              "address and port of the HTTPS admission endpoint"),
	CONFIG_STRING("tls.cert_file", S, tls_cert_file, 0, NULL, NULL,
	              "serving certificate chain (PEM)"),
	CONFIG_STRING("tls.key_file", S, tls_key_file, 0, NULL, NULL,
	              "serving private key (PEM, mode 0600)"),
	CONFIG_ENUM("inject.policy", S, policy, settings_policies, "enabled",
	            "whether pods without a `meshlet.io/inject` label or annotation are injected"),
	CONFIG_STRLIST("inject.ignore_namespaces", S, ignore_namespaces, 63,
	               "kube-system,kube-public,kube-node-lease,meshlet-system",
	               config_valid_dns_label, "namespaces whose pods are never injected"),
	CONFIG_STRING("mesh.trust_domain", S, trust_domain, 255, "cluster.local",
	              config_valid_trust_domain, "trust domain given to injected proxies"),
	CONFIG_STRING("mesh.ca_address", S, ca_address, 0, "meshlet-ca.meshlet-system.svc:8443",
	              config_valid_listen, "host:port of meshlet-ca, given to injected proxies"),
	CONFIG_STRING("audit_file", S, audit_file, 0, NULL, NULL,
	              "file that every audit record is also appended to"),
	CLI_LOG_KEYS(S),
	{ .name = NULL },
};
#undef S

static void settings_check(struct config *c)
{
	const struct settings *s = c->obj;

	if ((s->tls_cert_file == NULL) != (s->tls_key_file == NULL))
		config_error(c, s->tls_cert_file != NULL ? "tls.cert_file" : "tls.key_file",
		             "tls.cert_file and tls.key_file must be set together");
}

const struct config_schema settings_schema = {
	.program = "meshlet-webhook",
	.keys = settings_keys,
	.check = settings_check,
};
