/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's configuration: every key, its type, bounds and default. */
#ifndef MESHLET_WEBHOOK_SETTINGS_H
#define MESHLET_WEBHOOK_SETTINGS_H

#include "meshlet/cli.h"
#include "meshlet/config.h"

enum settings_policy { SETTINGS_POLICY_ENABLED, SETTINGS_POLICY_DISABLED };

struct settings {
	char *listen;
	char *tls_cert_file;
	char *tls_key_file;
	int policy; /* enum settings_policy */
	struct config_strlist ignore_namespaces;
	char *trust_domain;
	char *ca_address;
	char *audit_file;
	struct cli_log log;
};

/* The table of meshlet-webhook's keys, with the rules that span them. */
extern const struct config_schema settings_schema;

#endif
