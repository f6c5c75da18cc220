/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-ca's configuration: every key, its type, bounds and default. */
#ifndef MESHLET_CA_SETTINGS_H
#define MESHLET_CA_SETTINGS_H

#include <stdint.h>

#include "meshlet/cli.h"
#include "meshlet/config.h"

enum settings_auth_mode { SETTINGS_AUTH_JWKS, SETTINGS_AUTH_TOKENREVIEW };

struct settings {
	char *listen;
	char *trust_domain;
	char *ca_dir;
	char *tls_cert_file;
	char *tls_key_file;
	int auth_mode; /* enum settings_auth_mode */
	char *jwks_file;
	char *jwks_url;
	int64_t jwks_refresh;
	char *api_server;
	char *api_ca_file;
	char *api_token_file;
	int64_t review_timeout;
	char *issuer;
	char *audience;
	int64_t clock_skew;
	struct config_strlist allowed_namespaces;
	struct config_strlist denied_namespaces;
	int64_t default_ttl;
	int64_t max_ttl;
	int64_t backdate;
	int64_t rate_per_second;
	int64_t rate_burst;
	int64_t workers;
	int64_t request_timeout;
	char *audit_file;
	struct cli_log log;
};

/* The table of meshlet-ca's keys, with the rules that span them. */
extern const struct config_schema settings_schema;

#endif
