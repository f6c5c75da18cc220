/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-proxy's configuration table and the rules that span its keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/spiffe.h"

#include "capture.h"
#include "settings.h"

static const char *const settings_identity_modes[] = { "ca", "files", NULL };
static const char *const settings_mtls_modes[] = { "strict", "permissive", "disable", NULL };

/* "originate LISTEN UPSTREAM [SPIFFE-ID]" or "terminate LISTEN UPSTREAM". */
static bool settings_valid_static(const char *value, char *why, size_t why_size)
{
	char mode[16], listen[128], upstream[128], id[2100], extra[8];
	int n = sscanf(value, "%15s %127s %127s %2099s %7s", mode, listen, upstream, id, extra);

	if (n < 3 || n > 4 || (strcmp(mode, "originate") != 0 && strcmp(mode, "terminate") != 0) ||
	    (n == 4 && strcmp(mode, "originate") != 0)) {
		snprintf(why, why_size,
		         "must be \"originate LISTEN UPSTREAM [SPIFFE-ID]\" or \"terminate LISTEN "
		         "UPSTREAM\"");
		return false;
	}
	if (!config_valid_listen(listen, why, why_size) ||
	    !config_valid_listen(upstream, why, why_size))
		return false;
	if (n == 4 && spiffe_id_parse(id, strlen(id), &(struct spiffe_id){ 0 }) < 0) {
		snprintf(why, why_size, "names \"%.64s\", which is not a SPIFFE ID", id);
		return false;
	}
	return true;
}

static bool settings_valid_cidrs(const char *value, char *why, size_t why_size)
{
	static struct capture_cidrs cidrs; /* large: kept off the stack */
	struct err e = { 0 };

	if (capture_parse_cidrs("", value, true, &cidrs, &e) < 0) {
		snprintf(why, why_size, "is not a list of CIDRs: %s", e.msg);
		return false;
	}
	return true;
}

/* "80,8080": ports, comma-separated. */
static bool settings_valid_ports(const char *value, char *why, size_t why_size)
{
	const char *p = value;
	int n = 0;

	while (*p != '\0') {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v < 1 || v > 65535 || (*end != ',' && *end != '\0') || ++n > 64) {
			snprintf(why, why_size,
			         "must be ports from 1 to 65535, comma-separated (at "
			         "most 64), like \"80,8080\"");
			return false;
		}
		p = *end == ',' ? end + 1 : end;
	}
	return true;
}

#define S struct settings
static const struct config_key settings_keys[] = {
	CONFIG_STRING("trust_domain", S, trust_domain, 255, "cluster.local",
	              config_valid_trust_domain, "trust domain of this workload and its peers"),
	CONFIG_ENUM("identity.mode", S, identity_mode, settings_identity_modes, "ca",
	            "`ca`: fetch and rotate the certificate from meshlet-ca; `files`: read it "
	            "from identity.cert_file, identity.key_file and identity.bundle_file"),
	CONFIG_STRING("identity.ca_address", S, ca_address, 0, "meshlet-ca.meshlet-system.svc:8443",
	              config_valid_listen, "host:port of meshlet-ca"),
	CONFIG_STRING("identity.token_file", S, token_file, 0,
	              "/var/run/secrets/meshlet.io/token/token", NULL,
	              "projected service-account token sent to meshlet-ca"),
	CONFIG_STRING("identity.cert_file", S, cert_file, 0, NULL, NULL,
	              "certificate chain (PEM) in `files` mode"),
	CONFIG_STRING("identity.key_file", S, key_file, 0, NULL, NULL,
	              "private key (PEM, mode 0600) in `files` mode"),
	CONFIG_STRING("identity.bundle_file", S, bundle_file, 0, NULL, NULL,
	              "trust bundle (PEM roots) in `files` mode"),
	CONFIG_INT("ports.outbound", S, port_outbound, 1, 65535, "15001",
	           "port that captured outbound connections are redirected to"),
	CONFIG_INT("ports.inbound", S, port_inbound, 1, 65535, "15006",
	           "port that captured inbound connections are redirected to"),
	CONFIG_INT("ports.tunnel", S, port_tunnel, 1, 65535, "15008",
	           "port on which peers' proxies connect with mutual TLS"),
	CONFIG_INT("ports.admin", S, port_admin, 1, 65535, "15021",
	           "port of the health and metrics endpoint"),
	CONFIG_INT("workers", S, workers, 1, 64, "1", "event-loop threads"),
	CONFIG_ENUM(
	    "mtls.mode", S, mtls_mode, settings_mtls_modes, "permissive",
	    "inbound plaintext: `strict` refuses it, `permissive` accepts it; `disable` "
	    "also sends outbound traffic as plain TCP (the tunnel port still serves peers)"),
	CONFIG_DURATION("timeouts.connect", S, connect_timeout, CONFIG_SECONDS(1) / 10,
	                CONFIG_MINUTES(5), "10s", "time allowed to connect to an upstream"),
	CONFIG_DURATION("timeouts.handshake", S, handshake_timeout, CONFIG_SECONDS(1) / 10,
	                CONFIG_MINUTES(5), "10s", "time allowed for a TLS handshake"),
	CONFIG_DURATION("timeouts.idle", S, idle_timeout, CONFIG_SECONDS(1), CONFIG_HOURS(24), "1h",
	                "a connection with no traffic either way for this long is closed"),
	CONFIG_DURATION("timeouts.request_head", S, request_head_timeout, CONFIG_SECONDS(1),
	                CONFIG_MINUTES(5), "30s",
	                "on policy.http_ports: time a client has to send a whole request head, "
	                "from its first byte (the first request's: from when the connection is "
	                "set up); past it the client gets 408 and is closed"),
	CONFIG_INT("limits.max_connections", S, max_connections, 1, 1000000, "65536",
	           "connections held at once; more are refused"),
	CONFIG_STRING("identity.namespace", S, namespace_, 63, NULL, config_valid_dns_label,
	              "the pod's namespace, for its SPIFFE ID (MESHLET_POD_NAMESPACE)"),
	CONFIG_STRING("identity.service_account", S, service_account, 253, NULL, NULL,
	              "the pod's service account, for its SPIFFE ID (MESHLET_SERVICE_ACCOUNT)"),
	CONFIG_STRING("identity.ca_server_name", S, ca_server_name, 253, NULL, NULL,
	              "name meshlet-ca's certificate must carry; default: the host of "
	              "identity.ca_address"),
	CONFIG_DURATION("identity.ttl", S, svid_ttl, 0, CONFIG_HOURS(24), "0",
	                "certificate lifetime asked of meshlet-ca; 0: the CA's default"),
	CONFIG_BOOL("listeners.capture", S, capture, "true",
	            "serve the ports that iptables captures to (outbound, inbound) and the tunnel"),
	CONFIG_STRLIST("listeners.static", S, static_listeners, 256, NULL, settings_valid_static,
	               "fixed listeners, like stunnel: \"originate LISTEN UPSTREAM [SPIFFE-ID]\" "
	               "(plain in, mutual TLS out) or \"terminate LISTEN UPSTREAM\" (mutual TLS "
	               "in, plain out)"),
	CONFIG_STRING("outbound.mesh_ranges", S, mesh_ranges, 0, "*", settings_valid_cidrs,
	              "destinations (CIDRs, comma-separated, or *) tried through their tunnel "
	              "port first; others pass through as plain TCP"),
	CONFIG_STRING("outbound.mtls_required_ranges", S, mtls_required_ranges, 0, NULL,
	              settings_valid_cidrs,
	              "destinations that must be reached with mutual TLS: no plain fallback"),
	CONFIG_STRING("outbound.service_ranges", S, service_ranges, 0, NULL, settings_valid_cidrs,
	              "Kubernetes Service addresses (the cluster's --service-cluster-ip-range; "
	              "CIDRs, comma-separated; MESHLET_SERVICE_RANGES): a destination there that "
	              "is in outbound.mesh_ranges gets mutual TLS on its own port, as kube-proxy "
	              "forwards only a Service's ports, and plain TCP when what answers is not a "
	              "proxy of ours"),
	CONFIG_DURATION("outbound.service_probe_timeout", S, service_probe_timeout,
	                CONFIG_SECONDS(1) / 10, CONFIG_MINUTES(1), "1s",
	                "how long a Service's backend has to answer our TLS hello before it "
	                "counts as having no sidecar (an application that waits in silence)"),
	CONFIG_DURATION("inbound.detect_timeout", S, detect_timeout, 0, CONFIG_SECONDS(10), "500ms",
	                "how long the inbound capture port waits for a client's first bytes to "
	                "tell mutual TLS from a client proxy (Services) from plaintext, on "
	                "permissive ports (strict ones wait up to timeouts.handshake); a client "
	                "that waits for the server to speak first is served as plaintext after "
	                "it. 0: no detection: inbound capture is plaintext only, so Services reach "
	                "this pod in plain TCP on permissive ports and not at all on strict ones"),
	CONFIG_DURATION("outbound.fallback_ttl", S, fallback_ttl, CONFIG_SECONDS(1),
	                CONFIG_HOURS(1), "60s",
	                "how long a destination without a sidecar is remembered as one"),
	CONFIG_BOOL("tunnel.reuse", S, tunnel_reuse, "true",
	            "keep mutual TLS connections between proxies and start later connections "
	            "on them (tunnel protocol 2: no handshake per connection); false: one TLS "
	            "connection per proxied connection (protocol 1)"),
	CONFIG_BOOL("tunnel.multiplex", S, tunnel_multiplex, "true",
	            "carry the connections to a peer proxy at once on one mutual TLS connection "
	            "(tunnel protocol 3: the bytes of many connections go in one TLS write); "
	            "false: protocol 2, one kept TLS connection per open connection. Services "
	            "always use protocol 2 (tunnel.service_streams). Needs tunnel.reuse"),
	CONFIG_INT("tunnel.service_streams", S, service_streams, 0, 1000000, "100",
	           "at most this many connections to a Service start on one kept TLS "
	           "connection: kube-proxy balances TLS connections across the Service's "
	           "backends, and this bounds how many of a client's connections in a row go to "
	           "the same one; 0: a TLS connection each (meshlet/1), as with tunnel.reuse: "
	           "false, which applies to Services too"),
	CONFIG_DURATION("timeouts.drain", S, drain_timeout, 0, CONFIG_MINUTES(10), "30s",
	                "after SIGTERM, how long open connections may finish"),
	CONFIG_BOOL("access_log", S, access_log, "false",
	            "log one JSON line per connection, and per request on HTTP ports"),
	CONFIG_STRLIST("policy.paths", S, policy_paths, 4096, NULL, NULL,
	               "AuthorizationPolicy and PeerAuthentication files, or directories of "
	               "them (docs/policy.md); none: every connection is allowed"),
	CONFIG_STRING("policy.labels_file", S, policy_labels_file, 4096, NULL, NULL,
	              "the pod's labels, as the downward API writes them, for policy "
	              "selectors"),
	CONFIG_STRING("policy.http_ports", S, policy_http_ports, 0, NULL, settings_valid_ports,
	              "application ports that speak HTTP/1.1 (comma-separated): policies are "
	              "checked per request there, per connection elsewhere"),
	CONFIG_INT("policy.max_header_bytes", S, policy_max_header_bytes, 1024, 15360, "8192",
	           "request heads longer than this get 431 on HTTP ports"),
	CONFIG_DURATION("policy.reload_interval", S, policy_reload_interval, CONFIG_SECONDS(1) / 10,
	                CONFIG_MINUTES(10), "1s", "how often policy files are checked for changes"),
	CLI_LOG_KEYS(S),
	{ .name = NULL },
};
#undef S

static void settings_check(struct config *c)
{
	const struct settings *s = c->obj;
	static const char *const port_keys[] = { "ports.outbound", "ports.inbound", "ports.tunnel",
		                                 "ports.admin" };
	const int64_t ports[] = { s->port_outbound, s->port_inbound, s->port_tunnel,
		                  s->port_admin };

	for (size_t i = 0; i < 4; i++)
		for (size_t j = i + 1; j < 4; j++)
			if (ports[i] == ports[j])
				config_error(c, port_keys[j], "is the same port as %s",
				             port_keys[i]);
	if (s->identity_mode == SETTINGS_IDENTITY_FILES) {
		if (s->cert_file == NULL)
			config_error(c, "identity.cert_file",
			             "is required when identity.mode is files");
		if (s->key_file == NULL)
			config_error(c, "identity.key_file",
			             "is required when identity.mode is files");
		if (s->bundle_file == NULL)
			config_error(c, "identity.bundle_file",
			             "is required when identity.mode is files");
	}
}

const struct config_schema settings_schema = {
	.program = "meshlet-proxy",
	.keys = settings_keys,
	.check = settings_check,
};
