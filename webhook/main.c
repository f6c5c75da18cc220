/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's entry point: the commands serve and inject. */
#include <stdio.h>

#include <microhttpd.h>

#include "meshlet/cli.h"

#include "offline.h"
#include "serve.h"
#include "settings.h"

#define PROG "meshlet-webhook"

static const char usage[] =
    "Usage: " PROG " COMMAND [OPTION]...\n"
    "       " PROG " [--check-config FILE | --config-reference | --help | --version]\n"
    "The meshlet admission webhook: injects the meshlet sidecar into pods.\n"
    "\n"
    "Commands (each has --help):\n"
    "  serve    run the HTTPS mutating admission webhook\n"
    "  inject   inject into manifests on disk (YAML or JSON in, YAML out)\n"
    "\n"
    "Options:\n"
    "  --check-config FILE  parse and validate a configuration file, print\n"
    "                       'configuration OK' or every error with file:line\n"
    "  --config-reference   print every configuration key as a Markdown table\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version and the libraries in use\n";

/* For --version: the HTTP server library this daemon serves HTTPS with. */
static const char *main_http_library(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "libmicrohttpd %s", MHD_get_version());
	return text;
}

int main(int argc, char **argv)
{
	static const struct cli_command commands[] = {
		{ "serve", serve_main },
		{ "inject", offline_main },
		{ NULL, NULL },
	};
	static const struct cli_program program = {
		.name = PROG,
		.usage = usage,
		.schema = &settings_schema,
		.settings_size = sizeof(struct settings),
		.commands = commands,
		.http_library = main_http_library,
	};

	return cli_main(argc, argv, &program);
}
