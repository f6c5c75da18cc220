/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-ca's configuration table and the rules that span its keys. */
#include <string.h>

#include "settings.h"

static const char *const settings_auth_modes[] = { "jwks", "tokenreview", NULL };

#define S struct settings
static const struct config_key settings_keys[] = {
	CONFIG_STRING("listen", S, listen, 0, "0.0.0.0:8443", config_valid_listen,
	              "address and port of the HTTPS API"),
	CONFIG_STRING("trust_domain", S, trust_domain, 255, NULL, config_valid_trust_domain,
	              "trust domain of the SPIFFE IDs it issues; by default the CA's own (the "
	              "URI SAN of its certificate)"),
	CONFIG_STRING("ca_dir", S, ca_dir, 0, "/etc/meshlet/ca", NULL,
	              "directory of the signing CA (root-cert.pem, or ca-cert.pem and "
	              "cert-chain.pem for an intermediate)"),
	CONFIG_STRING("tls.cert_file", S, tls_cert_file, 0, NULL, NULL,
	              "serving certificate chain (PEM); re-read when it changes"),
	CONFIG_STRING("tls.key_file", S, tls_key_file, 0, NULL, NULL,
	              "serving private key (PEM, mode 0600)"),
	CONFIG_ENUM("auth.mode", S, auth_mode, settings_auth_modes, "jwks",
	            "how workload tokens are verified: `jwks` (signatures checked here against "
	            "auth.jwks_file) or `tokenreview` (the Kubernetes API reviews each token)"),
	CONFIG_STRING("auth.jwks_file", S, jwks_file, 0, NULL, NULL,
	              "JWKS file with the service-account issuer's public keys (the API server "
	              "serves them at /openid/v1/jwks); re-read when it changes"),
	CONFIG_STRING("auth.jwks_url", S, jwks_url, 0, NULL, NULL,
	              "HTTPS URL of the issuer's JWKS instead of a file, like "
	              "https://kubernetes.default.svc/openid/v1/jwks; trusted through "
	              "auth.api_ca_file, with auth.api_token_file as the bearer token"),
	CONFIG_DURATION("auth.jwks_refresh", S, jwks_refresh, CONFIG_SECONDS(1), CONFIG_HOURS(24),
	                "5m", "how often auth.jwks_url is fetched again"),
	CONFIG_STRING("auth.api_server", S, api_server, 0, "https://kubernetes.default.svc", NULL,
	              "Kubernetes API for `tokenreview` (needs RBAC: create tokenreviews)"),
	CONFIG_STRING("auth.api_ca_file", S, api_ca_file, 0,
	              "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", NULL,
	              "CA bundle that the Kubernetes API's certificate is checked against"),
	CONFIG_STRING("auth.api_token_file", S, api_token_file, 0,
	              "/var/run/secrets/kubernetes.io/serviceaccount/token", NULL,
	              "the CA's own token for the Kubernetes API, read again for every review"),
	CONFIG_DURATION("auth.review_timeout", S, review_timeout, CONFIG_SECONDS(1) / 10,
	                CONFIG_SECONDS(30), "5s", "time allowed for one TokenReview"),
	CONFIG_STRING("auth.issuer", S, issuer, 0, "https://kubernetes.default.svc.cluster.local",
	              NULL, "required `iss` of workload tokens (`jwks` mode)"),
	CONFIG_STRING("auth.audience", S, audience, 0, "meshlet-ca", NULL,
	              "audience that workload tokens must carry in `aud`"),
	CONFIG_DURATION("auth.clock_skew", S, clock_skew, 0, CONFIG_MINUTES(10), "60s",
	                "tolerance for token `exp` and `nbf`"),
	CONFIG_STRLIST("auth.allowed_namespaces", S, allowed_namespaces, 63, NULL,
	               config_valid_dns_label,
	               "when set, only workloads in these namespaces get certificates"),
	CONFIG_STRLIST("auth.denied_namespaces", S, denied_namespaces, 63, NULL,
	               config_valid_dns_label,
	               "workloads in these namespaces never get certificates"),
	CONFIG_DURATION("cert.default_ttl", S, default_ttl, CONFIG_SECONDS(10),
	                CONFIG_HOURS(24 * 7), "1h",
	                "lifetime of a workload certificate when the request names none"),
	CONFIG_DURATION("cert.max_ttl", S, max_ttl, CONFIG_SECONDS(10), CONFIG_HOURS(24 * 7), "24h",
	                "longest lifetime a request may ask for"),
	CONFIG_DURATION("cert.backdate", S, backdate, 0, CONFIG_MINUTES(10), "60s",
	                "notBefore is set this far in the past, for clock skew between nodes"),
	CONFIG_INT("rate_limit.per_second", S, rate_per_second, 0, 100000, "20",
	           "certificate requests a second allowed per identity (a service account's "
	           "SPIFFE ID) once its burst is spent; 0 turns the limit off"),
	CONFIG_INT("rate_limit.burst", S, rate_burst, 1, 100000, "200",
	           "requests an identity may make at once: room for a Deployment's replicas "
	           "starting together"),
	CONFIG_INT("workers", S, workers, 0, 256, "0", "HTTPS worker threads; 0: one per core"),
	CONFIG_DURATION(
	    "timeouts.request", S, request_timeout, CONFIG_SECONDS(1), CONFIG_MINUTES(5), "30s",
	    "time a client has to finish the TLS handshake and send a whole request (head "
	    "and body), counted from connecting or from the end of its previous request; "
	    "also how long an idle connection is kept. Rounded up to whole seconds"),
	CONFIG_STRING("audit_file", S, audit_file, 0, NULL, NULL,
	              "file that every audit record is also appended to"),
	CLI_LOG_KEYS(S),
	{ .name = NULL },
};
#undef S

static void settings_check(struct config *c)
{
	const struct settings *s = c->obj;

	if (s->jwks_file != NULL && s->jwks_url != NULL)
		config_error(c, "auth.jwks_url", "set auth.jwks_file or auth.jwks_url, not both");
	if (s->jwks_url != NULL && strncmp(s->jwks_url, "https://", 8) != 0)
		config_error(c, "auth.jwks_url", "must be an https:// URL");
	if (s->api_server != NULL && strncmp(s->api_server, "https://", 8) != 0)
		config_error(c, "auth.api_server", "must be an https:// URL");
	if ((s->tls_cert_file == NULL) != (s->tls_key_file == NULL))
		config_error(c, s->tls_cert_file != NULL ? "tls.cert_file" : "tls.key_file",
		             "tls.cert_file and tls.key_file must be set together");
	if (s->default_ttl > s->max_ttl)
		config_error(c, "cert.default_ttl", "is longer than cert.max_ttl");
	for (size_t i = 0; i < s->allowed_namespaces.n; i++)
		for (size_t j = 0; j < s->denied_namespaces.n; j++)
			if (strcmp(s->allowed_namespaces.items[i], s->denied_namespaces.items[j]) ==
			    0)
				config_error(c, "auth.denied_namespaces",
				             "namespace \"%s\" is also in auth.allowed_namespaces",
				             s->denied_namespaces.items[j]);
}

const struct config_schema settings_schema = {
	.program = "meshlet-ca",
	.keys = settings_keys,
	.check = settings_check,
};
