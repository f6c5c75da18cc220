/* SPDX-License-Identifier: Apache-2.0 */
/* Routes of meshlet-ca's API, its audit records and its Prometheus metrics. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509.h>

#include "meshlet/jwrite.h"
#include "meshlet/log.h"
#include "meshlet/metrics.h"
#include "meshlet/time.h"

#include "api.h"
#include "bundle.h"
#include "certify.h"

/* SPIFFE bundle refresh hint, seconds: how often relying parties should fetch again. */
#define API_REFRESH_HINT 300

enum api_outcome {
	API_ISSUED,
	API_BAD_REQUEST,
	API_UNAUTHENTICATED,
	API_FORBIDDEN,
	API_RATE_LIMITED,
	API_ERROR,
};
static const char *const api_outcomes[] = { "issued",    "bad_request",  "unauthenticated",
	                                    "forbidden", "rate_limited", "error",
	                                    NULL };
static struct metrics_counter api_requests =
    METRICS_COUNTER("meshlet_ca_certify_requests_total", "Certificate requests, by outcome.",
                    "outcome", api_outcomes);
static const double api_latency_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	                                     0.025,  0.05,  0.1,    0.25,  1 };
static struct metrics_histogram api_latency = METRICS_HISTOGRAM(
    "meshlet_ca_certify_duration_seconds",
    "Time to decide a certificate request, issuance included.", api_latency_bounds);

static enum api_outcome api_outcome_of(int status)
{
	switch (status) {
	case 200:
		return API_ISSUED;
	case 401:
		return API_UNAUTHENTICATED;
	case 403:
		return API_FORBIDDEN;
	case 429:
		return API_RATE_LIMITED;
	default:
		return status >= 500 ? API_ERROR : API_BAD_REQUEST;
	}
}

int api_init(struct api *a, const struct settings *cfg, struct signer *signer, struct jwks *jwks,
             struct tokenreview *review, struct ratelimit *rl, struct audit *audit, struct err *e)
{
	const STACK_OF(X509) *roots = sign_roots(signer);

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->signer = signer;
	a->jwks = jwks;
	a->review = review;
	a->rl = rl;
	a->audit = audit;
	pthread_rwlock_init(&a->jwks_lock, NULL);
	a->bundle_pem = bundle_pem(roots, e);
	if (a->bundle_pem == NULL)
		return e->code;
	a->bundle_jwks = bundle_jwks(roots, time(NULL), API_REFRESH_HINT, e);
	if (a->bundle_jwks == NULL)
		return e->code;
	a->chain_json = certify_pem_json(sign_chain(signer));
	a->bundle_json = certify_pem_json(roots);
	if (a->chain_json == NULL || a->bundle_json == NULL)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

void api_set_jwks(struct api *a, struct jwks *jwks)
{
	struct jwks *old;

	pthread_rwlock_wrlock(&a->jwks_lock);
	old = a->jwks;
	a->jwks = jwks;
	pthread_rwlock_unlock(&a->jwks_lock);
	jwks_free(old);
}

/* ,"key":"text", for an audit line. */
static void api_audit_str(struct jwrite *w, const char *key, const char *text)
{
	jwrite_raw(w, ",", 1);
	jwrite_str(w, key);
	jwrite_raw(w, ":", 1);
	jwrite_str(w, text);
}

/* One audit record per request to /v1/certify, written (as text) before the answer goes out. */
static void api_audit(struct api *a, const struct httpd_request *req,
                      const struct certify_result *r)
{
	struct jwrite w;
	char *text;
	size_t len = 0;

	jwrite_init(&w, 512);
	jwrite_lit(&w, "\"event\":\"certify\",\"outcome\":");
	jwrite_str(&w, api_outcomes[api_outcome_of(r->status)]);
	jwrite_lit(&w, ",\"status\":");
	jwrite_int(&w, r->status);
	api_audit_str(&w, "client", req->client);
	if (r->spiffe_id[0] != '\0')
		api_audit_str(&w, "spiffe_id", r->spiffe_id);
	if (r->pod_name[0] != '\0')
		api_audit_str(&w, "pod_name", r->pod_name);
	if (r->pod_uid[0] != '\0')
		api_audit_str(&w, "pod_uid", r->pod_uid);
	if (r->key_type[0] != '\0')
		api_audit_str(&w, "key_type", r->key_type);
	if (r->status == 200) {
		api_audit_str(&w, "serial", r->serial);
		api_audit_str(&w, "not_after", r->not_after);
	} else {
		api_audit_str(&w, "reason", r->code);
		api_audit_str(&w, "message", r->message);
	}
	text = jwrite_take(&w, &len);
	if (text == NULL || audit_write(a->audit, text, len) < 0)
		log_error("audit record not written", LOG_STR("spiffe_id", r->spiffe_id));
	free(text);
}

static void api_certify(struct api *a, const struct httpd_request *req, struct httpd_response *res)
{
	struct certify_result r;
	int64_t start = time_mono_ms();
	struct timespec t0, t1;
	const char *ct = req->content_type;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&r, 0, sizeof(r));
	if (strcmp(req->method, "POST") != 0) {
		r.status = 405;
		snprintf(r.code, sizeof(r.code), "method_not_allowed");
		snprintf(r.message, sizeof(r.message), "%s is not allowed here; use POST",
		         req->method);
		res->allow = "POST";
	} else if (req->body_too_large) {
		r.status = 413;
		snprintf(r.code, sizeof(r.code), "payload_too_large");
		snprintf(r.message, sizeof(r.message), "the body is larger than %d bytes",
		         API_MAX_BODY);
	} else if (ct == NULL || (strncasecmp(ct, "application/json", 16) != 0) ||
	           (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
		r.status = 415;
		snprintf(r.code, sizeof(r.code), "unsupported_media_type");
		snprintf(r.message, sizeof(r.message),
		         "Content-Type must be application/json, not %.64s",
		         ct != NULL ? ct : "(none)");
	} else {
		struct certify_deps d = {
			.cfg = a->cfg,
			.signer = a->signer,
			.chain_json = a->chain_json,
			.bundle_json = a->bundle_json,
			.review = a->review,
			.rl = a->rl,
			.now = time(NULL),
			.mono_ms = start,
		};

		pthread_rwlock_rdlock(&a->jwks_lock);
		d.jwks = a->jwks;
		certify(&d, req->authorization, req->body, req->body_len, &r);
		pthread_rwlock_unlock(&a->jwks_lock);
	}
	api_audit(a, req, &r);
	metrics_inc(&api_requests, api_outcome_of(r.status));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_observe(&api_latency, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
	                                         (t1.tv_nsec - t0.tv_nsec)));
	if (r.status == 200) {
		res->status = 200;
		res->content_type = "application/json";
		res->body = r.body;
		res->body_len = strlen(r.body);
		return;
	}
	if (r.status >= 500)
		log_error("certificate request failed", LOG_STR("client", req->client),
		          LOG_STR("reason", r.code), LOG_STR("detail", r.message));
	res->retry_after = r.retry_after;
	httpd_json_error(res, r.status, r.code, r.message);
}

static void api_metrics_fill(FILE *f, void *arg)
{
	struct api *a = arg;

	metrics_write_counter(f, &api_requests);
	metrics_write_histogram(f, &api_latency);
	metrics_write_gauge(f, "meshlet_ca_signing_certificate_expiry_seconds",
	                    "Seconds until the signing certificate expires.",
	                    (double)(sign_not_after(a->signer) - time(NULL)));
	metrics_write_gauge(f, "meshlet_ca_serving_certificate_reloads",
	                    "Times the serving certificate was replaced without a restart.",
	                    a->httpd != NULL ? (double)httpd_reloads(a->httpd) : 0);
}

/* Can tokens be verified? In jwks mode only once a key set has loaded. */
static bool api_has_keys(struct api *a)
{
	bool ok;

	pthread_rwlock_rdlock(&a->jwks_lock);
	ok = a->review != NULL || a->jwks != NULL;
	pthread_rwlock_unlock(&a->jwks_lock);
	return ok;
}

void api_handle(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
	struct api *a = arg;
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

	if (strcmp(req->path, "/v1/certify") == 0) {
		api_certify(a, req, res);
		return;
	}
	if (strcmp(req->path, "/v1/bundle") != 0 && strcmp(req->path, "/v1/bundle.jwks") != 0 &&
	    strcmp(req->path, "/healthz") != 0 && strcmp(req->path, "/readyz") != 0 &&
	    strcmp(req->path, "/metrics") != 0) {
		httpd_json_error(res, 404, "not_found", "no such path");
		return;
	}
	if (!get) {
		httpd_json_error(res, 405, "method_not_allowed", "use GET");
		res->allow = "GET, HEAD";
		return;
	}
	if (strcmp(req->path, "/v1/bundle") == 0)
		httpd_text(res, 200, "application/x-pem-file", a->bundle_pem);
	else if (strcmp(req->path, "/v1/bundle.jwks") == 0)
		httpd_text(res, 200, "application/json", a->bundle_jwks);
	else if (strcmp(req->path, "/metrics") == 0)
		httpd_metrics(res, api_metrics_fill, a);
	else if (strcmp(req->path, "/readyz") == 0 && sign_not_after(a->signer) <= time(NULL))
		httpd_text(res, 503, "text/plain", "signing certificate expired\n");
	else if (strcmp(req->path, "/readyz") == 0 && !api_has_keys(a))
		httpd_text(res, 503, "text/plain", "token keys not loaded yet\n");
	else
		httpd_text(res, 200, "text/plain", "ok\n");
}

void api_free(struct api *a)
{
	sign_free(a->signer);
	jwks_free(a->jwks);
	tokenreview_free(a->review);
	ratelimit_free(a->rl);
	audit_close(a->audit);
	free(a->bundle_pem);
	free(a->bundle_jwks);
	free(a->chain_json);
	free(a->bundle_json);
	pthread_rwlock_destroy(&a->jwks_lock);
	memset(a, 0, sizeof(*a));
}
