/* SPDX-License-Identifier: Apache-2.0 */
/* What every meshlet program's command line shares: version, config checks, log setup. */
#ifndef MESHLET_CLI_H
#define MESHLET_CLI_H

#include <stdint.h>
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

/* A subcommand: "meshlet-ca serve ...". run gets argv from the command's name on. */
struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
};

/* What a program tells cli_main about itself. */
struct cli_program {
	const char *name;                   /* "meshlet-ca" */
	const char *usage;                  /* the --help text */
	const struct config_schema *schema; /* its configuration keys */
	size_t settings_size;               /* the size of the struct the schema fills */
	const struct cli_command *commands; /* NULL-named row ends it; may be NULL */
	/* "libmicrohttpd X.Y.Z" for --version, or NULL: a program that serves no HTTPS does
	 * not link an HTTP server library at all. */
	const char *(*http_library)(void);
};

/*
 * cli_main - run the subcommand named by argv[1], or handle the options every program
 * has: --help, --version, --check-config FILE and --config-reference. Returns the exit
 * status; an unknown option or command is an error with a hint (status 2).
 */
int cli_main(int argc, char **argv, const struct cli_program *p);

/* cli_version - print "PROG VERSION" and the versions of the libraries in use. */
void cli_version(const struct cli_program *p, FILE *f);

/*
 * cli_check_config - load path into obj (zeroed by the caller) through schema, run its
 * cross-key rules, and print "configuration OK" on stdout or every error on stderr.
 * Returns the exit status: 0 when clean, 1 otherwise. obj's values are freed.
 */
int cli_check_config(const struct config_schema *schema, void *obj, const char *path);

/*
 * cli_duration_seconds - parse a duration flag ("90s", "87600h") into whole seconds,
 * printing "PROG: FLAG: ..." on stderr when it is not one. Returns 0 or -1.
 */
int cli_duration_seconds(const char *prog, const char *flag, const char *text, int64_t *out);

/*
 * cli_load_settings - fill obj from the defaults, the file at path (when not NULL) and
 * the flags given as key/value/origin triples (values NULL are skipped), then check the
 * cross-key rules. On errors prints them all and returns -1; the caller frees obj with
 * config_free in every case.
 */
struct cli_flag {
	const char *key;    /* configuration key: "listen" */
	const char *value;  /* NULL when the flag was not given */
	const char *origin; /* "--listen" */
};
/*
 * cli_parse_flags - parse a daemon command's options: --config FILE into *config, --help
 * (prints usage), and each flag of flags, a long option whose name is its origin
 * ("--listen") and whose value sets its configuration key. prog names the command in
 * messages ("meshlet-ca serve"). Returns -1 when the command should go on, or the exit
 * status to end with: 0 after --help, 2 after a usage error (which it printed).
 */
int cli_parse_flags(int argc, char **argv, const char *prog, const char *usage,
                    struct cli_flag *flags, size_t nflags, const char **config);

int cli_load_settings(const struct config_schema *schema, void *obj, const char *path,
                      const struct cli_flag *flags, size_t nflags);

/*
 * cli_daemon_signals - for a daemon about to start threads: block SIGTERM and SIGINT in
 * every thread (cli_wait_signal takes them) and ignore SIGPIPE (OpenSSL and sockets
 * report a closed peer as an error instead). Call it before the first thread starts.
 */
void cli_daemon_signals(void);

/*
 * cli_wait_signal - wait for SIGTERM or SIGINT, calling tick(arg) every tick_ms
 * milliseconds meanwhile when tick is not NULL; log "stopping" with the signal's name.
 */
void cli_wait_signal(int tick_ms, void (*tick)(void *arg), void *arg);

/* cli_log_apply - start logging to stderr for prog with the configured settings. */
void cli_log_apply(const char *prog, const struct cli_log *l);

#endif
