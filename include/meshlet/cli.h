/* SPDX-License-Identifier: Apache-2.0 */
/* What every meshlet program's command line shares: version, config checks, log setup. */
#ifndef MESHLET_CLI_H
#define MESHLET_CLI_H

#include <stdio.h>

#include "meshlet/config.h"
#include "meshlet/log.h"

/* The log settings every program's configuration has, as log.level and log.format. */
struct cli_log {
	int level;  /* enum log_level */
	int format; /* enum log_format */
};

/* The two rows of a configuration table for a struct cli_log member named `log`. */
#define CLI_LOG_KEYS(S)                                                                            \
	CONFIG_ENUM("log.level", S, log.level, log_level_names, "info",                            \
	            "lowest level logged: debug, info, warn or error"),                            \
	    CONFIG_ENUM("log.format", S, log.format, log_format_names, "auto",                     \
	                "json, text, or auto: text on a terminal, JSON otherwise")

/* What a program tells cli_main about itself. */
struct cli_program {
	const char *name;                   /* "meshlet-ca" */
	const char *usage;                  /* the --help text */
	const struct config_schema *schema; /* its configuration keys */
	size_t settings_size;               /* the size of the struct the schema fills */
};

/*
 * cli_main - handle the options every program has: --help, --version,
 * --check-config FILE and --config-reference. Returns the exit status; an unknown
 * option or argument is an error with a hint (status 2).
 */
int cli_main(int argc, char **argv, const struct cli_program *p);

/* cli_version - print "PROG VERSION" and the versions of the libraries in use. */
void cli_version(const char *prog, FILE *f);

/*
 * cli_check_config - load path into obj (zeroed by the caller) through schema, run its
 * cross-key rules, and print "configuration OK" on stdout or every error on stderr.
 * Returns the exit status: 0 when clean, 1 otherwise. obj's values are freed.
 */
int cli_check_config(const struct config_schema *schema, void *obj, const char *path);

/* cli_log_apply - start logging to stderr for prog with the configured settings. */
void cli_log_apply(const char *prog, const struct cli_log *l);

#endif
