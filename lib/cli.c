/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line pieces shared by meshlet-ca, meshlet-webhook and meshlet-proxy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "meshlet/cli.h"
#include "meshlet/log.h"

void cli_version(const char *prog, FILE *f)
{
	fprintf(f, "%s %s\n", prog, MESHLET_VERSION);
	fprintf(f, "built with %s, libmicrohttpd %s, jansson %s, libyaml %s\n",
	        OpenSSL_version(OPENSSL_VERSION), MHD_get_version(), jansson_version_str(),
	        yaml_get_version_string());
}

int cli_check_config(const struct config_schema *schema, void *obj, const char *path)
{
	struct config c;
	int status;

	if (config_init(&c, schema, obj) < 0) {
		fprintf(stderr, "%s: out of memory\n", schema->program);
		return 1;
	}
	config_load_file(&c, path);
	/* Rules that span keys only mean something once every key read cleanly. */
	if (c.nerrors == 0)
		config_check(&c);
	if (c.nerrors == 0) {
		printf("configuration OK\n");
		status = 0;
	} else {
		config_print_errors(&c, stderr);
		fprintf(stderr, "%s: %zu error%s in %s\n", schema->program, c.nerrors,
		        c.nerrors == 1 ? "" : "s", path);
		status = 1;
	}
	config_release(&c);
	config_free(schema, obj);
	return status;
}

void cli_log_apply(const char *prog, const struct cli_log *l)
{
	log_init(prog, (enum log_level)l->level, (enum log_format)l->format, 2);
}

int cli_main(int argc, char **argv, const struct cli_program *p)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "check-config", required_argument, NULL, 'c' },
		{ "config-reference", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	void *settings;
	int opt;
	int status;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(p->usage, stdout);
			return 0;
		case 'V':
			cli_version(p->name, stdout);
			return 0;
		case 'R':
			config_describe(p->schema, stdout);
			return 0;
		case 'c':
			settings = calloc(1, p->settings_size);
			if (settings == NULL) {
				fprintf(stderr, "%s: out of memory\n", p->name);
				return 1;
			}
			status = cli_check_config(p->schema, settings, optarg);
			free(settings);
			return status;
		case ':':
			fprintf(stderr, "%s: option %s needs a value\n", p->name, argv[optind - 1]);
			goto usage;
		default:
			fprintf(stderr, "%s: unknown option %s\n", p->name, argv[optind - 1]);
			goto usage;
		}
	}
	if (optind < argc)
		fprintf(stderr, "%s: unknown command \"%s\"\n", p->name, argv[optind]);
	else
		fprintf(stderr, "%s: nothing to do\n", p->name);
usage:
	fprintf(stderr, "Run '%s --help' for usage.\n", p->name);
	return 2;
}
