/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's entry point: the command line. */
#include "meshlet/cli.h"

#include "settings.h"

static const char usage[] =
    "Usage: meshlet-webhook [OPTION]\n"
    "The meshlet admission webhook: injects the meshlet sidecar into pods.\n"
    "\n"
    "Options:\n"
    "  --check-config FILE  parse and validate a configuration file, print\n"
    "                       'configuration OK' or every error with file:line\n"
    "  --config-reference   print every configuration key as a Markdown table\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version and the libraries in use\n";

int main(int argc, char **argv)
{
	static const struct cli_program program = {
		.name = "meshlet-webhook",
		.usage = usage,
		.schema = &settings_schema,
		.settings_size = sizeof(struct settings),
	};

	return cli_main(argc, argv, &program);
}
