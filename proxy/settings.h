/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-proxy's configuration: every key, its type, bounds and default. */
#ifndef MESHLET_PROXY_SETTINGS_H
#define MESHLET_PROXY_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "meshlet/cli.h"
#include "meshlet/config.h"

enum settings_identity_mode { SETTINGS_IDENTITY_CA, SETTINGS_IDENTITY_FILES };
enum settings_mtls_mode { SETTINGS_MTLS_STRICT, SETTINGS_MTLS_PERMISSIVE, SETTINGS_MTLS_DISABLE };

struct settings {
	char *trust_domain;
	int identity_mode; /* enum settings_identity_mode */
	char *ca_address;
	char *token_file;
	char *cert_file;
	char *key_file;
	char *bundle_file;
	int64_t port_outbound;
	int64_t port_inbound;
	int64_t port_tunnel;
	int64_t port_admin;
	int64_t workers;
	int mtls_mode; /* enum settings_mtls_mode */
	int64_t connect_timeout;
	int64_t handshake_timeout;
	int64_t idle_timeout;
	int64_t request_head_timeout;
	int64_t max_connections;
	char *namespace_;
	char *service_account;
	char *ca_server_name;
	int64_t svid_ttl;
	bool capture;
	bool tunnel_reuse;
	bool tunnel_multiplex;
	int64_t service_streams;
	struct config_strlist static_listeners;
	char *mesh_ranges;
	char *mtls_required_ranges;
	char *service_ranges;
	int64_t service_probe_timeout;
	int64_t fallback_ttl;
	int64_t detect_timeout;
	int64_t drain_timeout;
	bool access_log;
	struct config_strlist policy_paths;
	char *policy_labels_file;
	char *policy_http_ports;
	int64_t policy_max_header_bytes;
	int64_t policy_reload_interval;
	struct cli_log log;
};

/* The table of meshlet-proxy's keys, with the rules that span them. */
extern const struct config_schema settings_schema;

#endif
