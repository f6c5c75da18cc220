/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line pieces shared by meshlet-ca, meshlet-webhook and meshlet-proxy. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "meshlet/cli.h"
#include "meshlet/log.h"
#include "meshlet/time.h"

void cli_version(const struct cli_program *p, FILE *f)
{
	fprintf(f, "%s %s\n", p->name, MESHLET_VERSION);
	fprintf(f, "built with %s, %s%sjansson %s, libyaml %s\n", OpenSSL_version(OPENSSL_VERSION),
	        p->http_library != NULL ? p->http_library() : "",
	        p->http_library != NULL ? ", " : "", jansson_version_str(),
	        yaml_get_version_string());
}

int cli_check_config(const struct config_schema *schema, void *obj, const char *path)
{
	int rc = cli_load_settings(schema, obj, path, NULL, 0);

	if (rc == 0)
		printf("configuration OK\n");
	config_free(schema, obj);
	return rc == 0 ? 0 : 1;
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

	if (argc > 1 && argv[1][0] != '-' && p->commands != NULL) {
		for (const struct cli_command *c = p->commands; c->name != NULL; c++)
			if (strcmp(c->name, argv[1]) == 0)
				return c->run(argc - 1, argv + 1);
	}
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(p->usage, stdout);
			return 0;
		case 'V':
			cli_version(p, stdout);
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

int cli_duration_seconds(const char *prog, const char *flag, const char *text, int64_t *out)
{
	int64_t ms;

	if (time_parse_duration(text, strlen(text), &ms) < 0 || ms < 1000) {
		fprintf(
		    stderr,
		    "%s: %s: \"%s\" is not a duration of at least 1s (like 90s, 1h30m or 87600h)\n",
		    prog, flag, text);
		return -1;
	}
	*out = ms / 1000;
	return 0;
}

int cli_load_settings(const struct config_schema *schema, void *obj, const char *path,
                      const struct cli_flag *flags, size_t nflags)
{
	struct config c;
	int rc = 0;

	if (config_init(&c, schema, obj) < 0) {
		fprintf(stderr, "%s: out of memory\n", schema->program);
		return -1;
	}
	if (path != NULL)
		config_load_file(&c, path);
	for (size_t i = 0; i < nflags; i++)
		if (flags[i].value != NULL)
			config_set(&c, flags[i].key, flags[i].value, flags[i].origin);
	/* Rules that span keys only mean something once every key read cleanly. */
	if (c.nerrors == 0)
		config_check(&c);
	if (c.nerrors > 0) {
		config_print_errors(&c, stderr);
		fprintf(stderr, "%s: %zu configuration error%s\n", schema->program, c.nerrors,
		        c.nerrors == 1 ? "" : "s");
		rc = -1;
	}
	config_release(&c);
	return rc;
}

int cli_parse_flags(int argc, char **argv, const char *prog, const char *usage,
                    struct cli_flag *flags, size_t nflags, const char **config)
{
	struct option *opts = calloc(nflags + 3, sizeof(*opts));
	int opt, status = -1;

	if (opts == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	for (size_t i = 0; i < nflags; i++)
		opts[i] = (struct option){ flags[i].origin + 2, required_argument, NULL, (int)i };
	opts[nflags] = (struct option){ "config", required_argument, NULL, 'c' + 1000 };
	opts[nflags + 1] = (struct option){ "help", no_argument, NULL, 'h' };
	optind = 1;
	opterr = 0;
	while (status < 0 && (opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (opt >= 0 && (size_t)opt < nflags) {
			flags[opt].value = optarg;
		} else if (opt == 'c' + 1000) {
			*config = optarg;
		} else if (opt == 'h') {
			fputs(usage, stdout);
			status = 0;
		} else {
			fprintf(stderr, "%s: %s %s\nRun '%s --help' for usage.\n", prog,
			        opt == ':' ? "option needs a value:" : "unknown option",
			        argv[optind - 1], prog);
			status = 2;
		}
	}
	if (status < 0 && optind < argc) {
		fprintf(stderr, "%s: unexpected argument %s\nRun '%s --help' for usage.\n", prog,
		        argv[optind], prog);
		status = 2;
	}
	free(opts);
	return status;
}

static void cli_stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

void cli_daemon_signals(void)
{
	sigset_t set;

	cli_stop_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void cli_wait_signal(int tick_ms, void (*tick)(void *arg), void *arg)
{
	struct timespec t = { .tv_sec = tick_ms / 1000,
		              .tv_nsec = (long)(tick_ms % 1000) * 1000000 };
	sigset_t set;
	int sig;

	cli_stop_signals(&set);
	for (;;) {
		sig = tick != NULL ? sigtimedwait(&set, NULL, &t) : sigwaitinfo(&set, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig < 0 && errno == EAGAIN && tick != NULL)
			tick(arg);
	}
	log_info("stopping", LOG_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
}
