/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-webhook serve`: the HTTPS admission endpoint, its audit trail and metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "meshlet/audit.h"
#include "meshlet/cli.h"
#include "meshlet/file.h"
#include "meshlet/httpd.h"
#include "meshlet/jwrite.h"
#include "meshlet/log.h"
#include "meshlet/metrics.h"

#include "jarena.h"
#include "review.h"
#include "serve.h"
#include "settings.h"

#define PROG "meshlet-webhook serve"
/* The API server sends at most about 3 MiB; a pod is a few KiB. */
#define SERVE_MAX_BODY   (3 * 1024 * 1024)
#define SERVE_BUNDLE_MAX (1024 * 1024)

static const char *const serve_decisions[] = { "injected", "skipped", "denied", "error", NULL };
static struct metrics_counter serve_reviews =
    METRICS_COUNTER("meshlet_webhook_reviews_total", "Admission reviews, by decision.", "decision",
                    serve_decisions);
static const double serve_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	                               0.005,  0.01,    0.025,  0.1 };
static struct metrics_histogram serve_latency = METRICS_HISTOGRAM(
    "meshlet_webhook_review_duration_seconds", "Time to decide an admission review.", serve_bounds);

struct serve {
	const struct settings *cfg;
	struct injector *injector;
	struct audit *audit;
};

static const char serve_usage[] =
    "Usage: meshlet-webhook serve [--config FILE] [--listen ADDR:PORT]\n"
    "                             [--tls-cert FILE --tls-key FILE]\n"
    "Serve the mutating admission webhook over HTTPS: POST /inject takes an\n"
    "admission.k8s.io/v1 AdmissionReview. Flags override the configuration file; with no\n"
    "file the documented defaults apply. Audit records go to stdout (and audit_file),\n"
    "logs to stderr. SIGTERM or SIGINT stops it.\n"
    "\n"
    "  --config FILE        YAML configuration (docs/configuration.md)\n"
    "  --listen ADDR:PORT   where to serve (default 0.0.0.0:9443; port 0 picks one)\n"
    "  --tls-cert FILE      serving certificate chain (re-read when it changes)\n"
    "  --tls-key FILE       serving key, mode 0600\n";

static size_t serve_decision_index(const char *decision)
{
	for (size_t i = 0; serve_decisions[i] != NULL; i++)
		if (strcmp(serve_decisions[i], decision) == 0)
			return i;
	return 3;
}

/* ,"key":"text" (text NULL: null), for an audit line. */
static void serve_audit_str(struct jwrite *w, const char *key, const char *text)
{
	jwrite_raw(w, ",", 1);
	jwrite_str(w, key);
	jwrite_raw(w, ":", 1);
	if (text != NULL)
		jwrite_str(w, text);
	else
		jwrite_lit(w, "null");
}

/*
 * One audit line per review, written before the answer goes out: as text, since building
 * and dumping a JSON tree for it cost a tenth of a review.
 */
static void serve_audit(struct serve *s, const struct httpd_request *req,
                        const struct review_result *r, uint64_t latency_us)
{
	struct jwrite w;
	char *text;
	size_t len = 0;

	jwrite_init(&w, 1024);
	jwrite_lit(&w, "\"event\":\"admission\"");
	serve_audit_str(&w, "decision", r->decision);
	serve_audit_str(&w, "uid", r->uid);
	serve_audit_str(&w, "namespace", r->namespace_);
	serve_audit_str(&w, "name", r->name);
	serve_audit_str(&w, "kind", r->kind);
	serve_audit_str(&w, "operation", r->operation);
	serve_audit_str(&w, "user", r->user);
	serve_audit_str(&w, "reason", r->reason);
	serve_audit_str(&w, "message", r->message);
	jwrite_lit(&w, ",\"patch_ops\":");
	jwrite_int(&w, (long long)r->patch_ops);
	jwrite_lit(&w, ",\"latency_us\":");
	jwrite_int(&w, (long long)latency_us);
	serve_audit_str(&w, "client", req->client);
	text = jwrite_take(&w, &len);
	if (text == NULL || audit_write(s->audit, text, len) < 0)
		log_error("audit record not written", LOG_STR("uid", r->uid));
	free(text);
}

static void serve_inject(struct serve *s, const struct httpd_request *req,
                         struct httpd_response *res)
{
	struct review_result r = { 0 };
	const char *ct = req->content_type;
	struct timespec t0, t1;
	uint64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (strcmp(req->method, "POST") != 0) {
		httpd_json_error(res, 405, "method_not_allowed", "use POST");
		res->allow = "POST";
		return;
	}
	if (req->body_too_large) {
		httpd_json_error(res, 413, "payload_too_large",
		                 "the AdmissionReview is larger than 3 MiB");
		r.decision = "error";
		snprintf(r.reason, sizeof(r.reason), "too_large");
		snprintf(r.message, sizeof(r.message), "body over %d bytes", SERVE_MAX_BODY);
	} else if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	           (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
		httpd_json_error(res, 415, "unsupported_media_type",
		                 "Content-Type must be application/json");
		r.decision = "error";
		snprintf(r.reason, sizeof(r.reason), "unsupported_media_type");
		snprintf(r.message, sizeof(r.message), "Content-Type %.64s",
		         ct != NULL ? ct : "(none)");
	} else {
		review_handle(s->injector, req->body, req->body_len, &r);
		res->status = r.status;
		res->content_type = "application/json";
		res->body = r.body;
		res->body_len = r.body != NULL ? strlen(r.body) : 0;
		r.body = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	serve_audit(s, req, &r, ns / 1000);
	metrics_inc(&serve_reviews, serve_decision_index(r.decision));
	metrics_observe(&serve_latency, ns);
	if (strcmp(r.decision, "error") == 0)
		log_warnx("admission review refused", LOG_STR("client", req->client),
		          LOG_STR("reason", r.reason), LOG_STR("detail", r.message));
	review_result_clear(&r);
}

static void serve_metrics_fill(FILE *f, void *arg)
{
	(void)arg;
	metrics_write_counter(f, &serve_reviews);
	metrics_write_histogram(f, &serve_latency);
}

static void serve_handle(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
	struct serve *s = arg;

	if (strcmp(req->path, "/inject") == 0) {
		serve_inject(s, req, res);
		return;
	}
	if (strcmp(req->path, "/healthz") != 0 && strcmp(req->path, "/readyz") != 0 &&
	    strcmp(req->path, "/metrics") != 0) {
		httpd_json_error(res, 404, "not_found", "no such path");
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		httpd_json_error(res, 405, "method_not_allowed", "use GET");
		res->allow = "GET, HEAD";
		return;
	}
	if (strcmp(req->path, "/metrics") == 0)
		httpd_metrics(res, serve_metrics_fill, NULL);
	else
		httpd_text(res, 200, "text/plain", "ok\n");
}

int serve_main(int argc, char **argv)
{
	struct cli_flag flags[] = {
		{ "listen", NULL, "--listen" },
		{ "tls.cert_file", NULL, "--tls-cert" },
		{ "tls.key_file", NULL, "--tls-key" },
	};
	const size_t nflags = sizeof(flags) / sizeof(flags[0]);
	struct settings cfg = { 0 };
	struct serve s = { .cfg = &cfg };
	struct httpd *httpd = NULL;
	struct err e = { 0 };
	const char *config = NULL;
	char *bundle = NULL;
	size_t bundle_len = 0;
	int status;

	status = cli_parse_flags(argc, argv, PROG, serve_usage, flags, nflags, &config);
	if (status >= 0)
		return status;
	status = 1;
	if (cli_load_settings(&settings_schema, &cfg, config, flags, nflags) < 0)
		goto out;
	cli_log_apply("meshlet-webhook", &cfg.log);
	/* Before any other thread runs: jansson's allocator is process-wide. */
	jarena_install();
	if (cfg.tls_cert_file == NULL) {
		fprintf(stderr,
		        PROG ": the webhook is HTTPS only: give --tls-cert and --tls-key (or "
		             "tls.cert_file and tls.key_file); 'meshlet-ca issue' makes them\n");
		goto out;
	}
	if (file_read(cfg.trust_bundle_file, SERVE_BUNDLE_MAX, &bundle, &bundle_len, &e) < 0) {
		fprintf(stderr, PROG ": mesh.trust_bundle_file: %s\n", e.msg);
		goto out;
	}
	s.injector = injector_new(&cfg, bundle, &e);
	if (s.injector == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	s.audit = audit_open(cfg.audit_file, &e);
	if (s.audit == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	cli_daemon_signals();
	httpd = httpd_start(
	    &(struct httpd_options){
	        .name = "meshlet-webhook",
	        .listen = cfg.listen,
	        .cert_file = cfg.tls_cert_file,
	        .key_file = cfg.tls_key_file,
	        .max_body = SERVE_MAX_BODY,
	        .timeout = (unsigned)((cfg.request_timeout + 999) / 1000),
	        .max_connections = 8192,
	        .handler = serve_handle,
	        .arg = &s,
	    },
	    &e);
	if (httpd == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	log_info("serving", LOG_STR("listen", cfg.listen), LOG_INT("port", httpd_port(httpd)));
	cli_wait_signal(0, NULL, NULL);
	status = 0;
	httpd_stop(httpd);
out:
	injector_free(s.injector);
	audit_close(s.audit);
	free(bundle);
	config_free(&settings_schema, &cfg);
	return status;
}
