/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-proxy's entry point: the command line and its commands. */
#include "meshlet/cli.h"

#include "capture.h"
#include "policy_cmd.h"
#include "run.h"
#include "settings.h"

static const char usage[] =
    "Usage: meshlet-proxy COMMAND [OPTION]...\n"
    "       meshlet-proxy [--check-config FILE | --config-reference | --help | --version]\n"
    "The meshlet sidecar proxy: mutual TLS and authorization for a pod's traffic.\n"
    "\n"
    "Commands (each has --help):\n"
    "  init    write the pod's iptables rules that capture its TCP for the proxy\n"
    "  run     the sidecar: identity, mutual TLS between proxies, traffic capture\n"
    "  policy  check policy files, or explain what they decide (check, explain)\n"
    "\n"
    "Options:\n"
    "  --check-config FILE  parse and validate a configuration file, print\n"
    "                       'configuration OK' or every error with file:line\n"
    "  --config-reference   print every configuration key as a Markdown table\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version and the libraries in use\n";

int main(int argc, char **argv)
{
	/* One row per command; the NULL row ends the table. */
	static const struct cli_command commands[] = {
		{ "init", capture_main },
		{ "run", run_main },
		{ "policy", policy_cmd_main },
		{ NULL, NULL },
	};
	static const struct cli_program program = {
		.name = "meshlet-proxy",
		.usage = usage,
		.schema = &settings_schema,
		.settings_size = sizeof(struct settings),
		.commands = commands,
	};

	return cli_main(argc, argv, &program);
}
