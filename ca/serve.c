/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-ca serve`: configuration, start-up checks, the signal loop and JWKS reloads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meshlet/cli.h"
#include "meshlet/log.h"
#include "meshlet/time.h"

#include "api.h"
#include "jwksrc.h"
#include "serve.h"

#define PROG "meshlet-ca serve"
/* Identities whose rate-limit state is kept at once. */
#define SERVE_RATE_KEYS 100000

static const char serve_usage[] =
    "Usage: meshlet-ca serve [--config FILE] [--listen ADDR:PORT] [--ca-dir DIR]\n"
    "                        [--tls-cert FILE --tls-key FILE] [--jwks-file FILE]\n"
    "                        [--issuer ISS] [--audience AUD] [--trust-domain TD]\n"
    "                        [--audit-file FILE]\n"
    "Serve the certificate API over HTTPS. Flags override the configuration file; every\n"
    "key is in docs/configuration.md. Audit records go to stdout (and --audit-file),\n"
    "logs to stderr. SIGTERM or SIGINT stops it.\n"
    "\n"
    "  --config FILE        YAML configuration\n"
    "  --listen ADDR:PORT   where to serve (default 0.0.0.0:8443; port 0 picks one)\n"
    "  --ca-dir DIR         the signing CA, as made by 'meshlet-ca init'\n"
    "  --tls-cert FILE      serving certificate chain (re-read when it changes)\n"
    "  --tls-key FILE       serving key, mode 0600\n"
    "  --jwks-file FILE     the service-account issuer's public keys (JWKS)\n"
    "  --issuer ISS         required token issuer\n"
    "  --audience AUD       required token audience (default meshlet-ca)\n"
    "  --trust-domain TD    trust domain (default: the CA's own)\n"
    "  --audit-file FILE    also append every audit record here\n";

struct serve_keys {
	struct api *api;
	struct jwksrc *src;
};

/* Takes a new key set when one is due, and says what happened in the log. */
static void serve_poll_keys(struct api *a, struct jwksrc *src)
{
	if (src == NULL)
		return;
	struct err e = { 0 };
	struct jwks *k = jwksrc_poll(src, time_mono_ms(), &e);

	if (k != NULL) {
		api_set_jwks(a, k);
		log_info("token keys loaded", LOG_STR("from", jwksrc_where(src)),
		         LOG_INT("keys", jwks_count(k)));
	} else if (e.code < 0) {
		log_warnx(a->jwks != NULL ? "new token keys not loaded; keeping the current ones"
		                          : "token keys not loaded; not ready",
		          LOG_STR("reason", e.msg));
	}
}

static void serve_tick(void *arg)
{
	struct serve_keys *k = arg;

	serve_poll_keys(k->api, k->src);
}

int serve_main(int argc, char **argv)
{
	struct cli_flag flags[] = {
		{ "listen", NULL, "--listen" },
		{ "ca_dir", NULL, "--ca-dir" },
		{ "tls.cert_file", NULL, "--tls-cert" },
		{ "tls.key_file", NULL, "--tls-key" },
		{ "auth.jwks_file", NULL, "--jwks-file" },
		{ "auth.issuer", NULL, "--issuer" },
		{ "auth.audience", NULL, "--audience" },
		{ "trust_domain", NULL, "--trust-domain" },
		{ "audit_file", NULL, "--audit-file" },
	};
	const size_t nflags = sizeof(flags) / sizeof(flags[0]);
	struct settings cfg = { 0 };
	struct api a;
	bool api_ready = false;
	struct signer *signer = NULL;
	struct jwks *jwks = NULL;
	struct tokenreview *review = NULL;
	struct ratelimit *rl = NULL;
	struct audit *audit = NULL;
	struct jwksrc *src = NULL;
	struct err e = { 0 };
	const char *config = NULL;
	const char *ca_td;
	int status = 1;
	int rc;

	rc = cli_parse_flags(argc, argv, PROG, serve_usage, flags, nflags, &config);
	if (rc >= 0)
		return rc;
	if (cli_load_settings(&settings_schema, &cfg, config, flags, nflags) < 0)
		goto out;
	cli_log_apply("meshlet-ca", &cfg.log);
	if (cfg.tls_cert_file == NULL) {
		fprintf(stderr,
		        PROG ": the API is HTTPS only: give --tls-cert and --tls-key (or "
		             "tls.cert_file and tls.key_file); 'meshlet-ca issue' makes them\n");
		goto out;
	}
	if (cfg.auth_mode == SETTINGS_AUTH_JWKS && cfg.jwks_file == NULL && cfg.jwks_url == NULL) {
		fprintf(stderr, PROG
		        ": give --jwks-file (or auth.jwks_file or auth.jwks_url): the "
		        "public keys that workload tokens are verified with; or set auth.mode: "
		        "tokenreview\n");
		goto out;
	}
	signer = sign_load(cfg.ca_dir, &e);
	if (signer == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	/* The trust domain is the CA's own unless one is set, and then they must agree. */
	ca_td = sign_trust_domain(signer);
	if (cfg.trust_domain == NULL && ca_td == NULL) {
		fprintf(stderr, PROG ": the CA in %s names no trust domain: set --trust-domain\n",
		        cfg.ca_dir);
		goto out;
	}
	if (cfg.trust_domain == NULL) {
		cfg.trust_domain = strdup(ca_td);
		if (cfg.trust_domain == NULL)
			goto out;
	} else if (ca_td != NULL && strcmp(ca_td, cfg.trust_domain) != 0) {
		fprintf(stderr, PROG ": trust domain \"%s\" differs from the CA's \"%s\" in %s\n",
		        cfg.trust_domain, ca_td, cfg.ca_dir);
		goto out;
	}
	if (cfg.auth_mode == SETTINGS_AUTH_TOKENREVIEW) {
		review = tokenreview_new(&cfg, &e);
		if (review == NULL) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
	} else {
		src = jwksrc_new(&cfg, &e);
		if (src == NULL) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
		/* A file must load at start; a URL may come up later (not ready till then). */
		jwks = jwksrc_poll(src, time_mono_ms(), &e);
		if (jwks == NULL && cfg.jwks_url == NULL) {
			fprintf(stderr, PROG ": %s\n", e.msg);
			goto out;
		}
		if (jwks == NULL)
			log_warnx("token keys not loaded; not ready", LOG_STR("reason", e.msg));
	}
	rl = ratelimit_new((double)cfg.rate_per_second, (double)cfg.rate_burst, SERVE_RATE_KEYS);
	audit = audit_open(cfg.audit_file, &e);
	if (rl == NULL || audit == NULL) {
		fprintf(stderr, PROG ": %s\n", rl == NULL ? "out of memory" : e.msg);
		goto out;
	}
	rc = api_init(&a, &cfg, signer, jwks, review, rl, audit, &e);
	signer = NULL, jwks = NULL, review = NULL, rl = NULL, audit = NULL;
	api_ready = true;
	if (rc < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}

	/* Signals are taken by the loop alone, never by a server thread. */
	cli_daemon_signals();
	a.httpd = httpd_start(
	    &(struct httpd_options){
	        .name = "meshlet-ca",
	        .listen = cfg.listen,
	        .cert_file = cfg.tls_cert_file,
	        .key_file = cfg.tls_key_file,
	        .max_body = API_MAX_BODY,
	        .threads = (unsigned)cfg.workers,
	        .timeout = (unsigned)((cfg.request_timeout + 999) / 1000),
	        .max_connections = 8192,
	        .handler = api_handle,
	        .arg = &a,
	    },
	    &e);
	if (a.httpd == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	log_info("serving", LOG_STR("listen", cfg.listen), LOG_INT("port", httpd_port(a.httpd)),
	         LOG_STR("trust_domain", cfg.trust_domain), LOG_STR("ca_dir", cfg.ca_dir));
	cli_wait_signal(1000, serve_tick, &(struct serve_keys){ .api = &a, .src = src });
	status = 0;
	httpd_stop(a.httpd);
	a.httpd = NULL;
out:
	if (api_ready)
		api_free(&a);
	sign_free(signer);
	jwks_free(jwks);
	tokenreview_free(review);
	jwksrc_free(src);
	ratelimit_free(rl);
	audit_close(audit);
	config_free(&settings_schema, &cfg);
	return status;
}
