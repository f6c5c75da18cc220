/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/certify as a pure decision: token, namespace, rate, body, CSR, then signing. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "meshlet/err.h"
#include "meshlet/time.h"

#include "certify.h"
#include "csr.h"

/* The shortest lifetime a request may ask for: short enough for rotation tests. */
#define CERTIFY_MIN_TTL 10

void certify_code(int err, char *buf, size_t size)
{
	const char *name = err_name(err);
	size_t i;

	if (strncmp(name, "ERR_", 4) == 0)
		name += 4;
	else
		name = "internal";
	for (i = 0; name[i] != '\0' && i + 1 < size; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
}

static void certify_refuse(struct certify_result *r, int status, const char *code, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
static void certify_refuse(struct certify_result *r, int status, const char *code, const char *fmt,
                           ...)
{
	va_list ap;

	r->status = status;
	snprintf(r->code, sizeof(r->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/* A refusal named after one of our error codes, with its detailed message. */
static void certify_refuse_err(struct certify_result *r, int status, const struct err *e)
{
	char code[48];

	certify_code(e->code, code, sizeof(code));
	certify_refuse(r, status, code, "%s", e->msg[0] != '\0' ? e->msg : err_str(e->code));
}

static bool certify_listed(const struct config_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

/* The token from "Authorization: Bearer <token>" (the scheme is case-insensitive). */
static const char *certify_bearer(const char *authorization)
{
	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	authorization += 7;
	while (*authorization == ' ')
		authorization++;
	return *authorization != '\0' ? authorization : NULL;
}

static json_t *certify_pems(const STACK_OF(X509) *certs, X509 *first)
{
	json_t *a = json_array();
	char *pem;

	if (a == NULL)
		return NULL;
	if (first != NULL) {
		pem = x509_cert_pem(first);
		if (pem == NULL || json_array_append_new(a, json_string(pem)) < 0)
			goto fail;
		free(pem);
	}
	for (int i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
		pem = x509_cert_pem(sk_X509_value(certs, i));
		if (pem == NULL || json_array_append_new(a, json_string(pem)) < 0)
			goto fail;
		free(pem);
	}
	return a;
fail:
	free(pem);
	json_decref(a);
	return NULL;
}

/* Reads {"csr": "...", "ttl_seconds": N}; unknown fields are ignored, as JSON APIs do. */
static int certify_body(const struct certify_deps *d, const char *body, size_t len,
                        const char **csr, int64_t *ttl, json_t **root, struct certify_result *r)
{
	json_error_t je;
	json_t *v;
	int64_t max = d->cfg->max_ttl / 1000;

	*root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (*root == NULL) {
		certify_refuse(r, 400, "invalid_json", "the body is not JSON: %s (line %d)",
		               je.text, je.line);
		return -1;
	}
	if (!json_is_object(*root)) {
		certify_refuse(r, 400, "invalid_request", "the body must be a JSON object");
		return -1;
	}
	v = json_object_get(*root, "csr");
	if (!json_is_string(v)) {
		certify_refuse(r, 400, "invalid_request",
		               v == NULL ? "the body has no \"csr\""
		                         : "\"csr\" must be a string holding a PEM CSR");
		return -1;
	}
	*csr = json_string_value(v);
	*ttl = d->cfg->default_ttl / 1000;
	v = json_object_get(*root, "ttl_seconds");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v)) {
			certify_refuse(r, 400, "invalid_request",
			               "\"ttl_seconds\" must be an integer number of seconds");
			return -1;
		}
		*ttl = json_integer_value(v);
		if (*ttl > max) {
			char words[32];

			time_format_duration(d->cfg->max_ttl, words, sizeof(words));
			certify_refuse(r, 400, "ttl_too_long",
			               "ttl_seconds %lld is over the maximum of %lld (%s)",
			               (long long)*ttl, (long long)max, words);
			return -1;
		}
		if (*ttl < CERTIFY_MIN_TTL) {
			certify_refuse(r, 400, "ttl_too_short",
			               "ttl_seconds %lld is under the minimum of %d",
			               (long long)*ttl, CERTIFY_MIN_TTL);
			return -1;
		}
	}
	return 0;
}

static int certify_answer(const struct certify_deps *d, X509 *leaf, struct certify_result *r)
{
	json_t *o = NULL;
	json_t *chain = certify_pems(sign_chain(d->signer), leaf);
	json_t *bundle = certify_pems(sign_roots(d->signer), NULL);
	struct timespec ts = { 0 };
	int64_t not_after;
	int rc = -1;

	if (chain == NULL || bundle == NULL || x509_not_after(leaf, &not_after) < 0)
		goto out;
	ts.tv_sec = (time_t)not_after;
	if (time_format_rfc3339(&ts, false, r->not_after, sizeof(r->not_after)) < 0 ||
	    x509_serial_hex(leaf, r->serial, sizeof(r->serial)) < 0)
		goto out;
	o = json_pack("{s:s, s:O, s:O, s:s}", "spiffe_id", r->spiffe_id, "cert_chain", chain,
	              "trust_bundle", bundle, "expires_at", r->not_after);
	if (o == NULL)
		goto out;
	r->body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	rc = r->body != NULL ? 0 : -1;
out:
	json_decref(o);
	json_decref(chain);
	json_decref(bundle);
	return rc;
}

void certify(const struct certify_deps *d, const char *authorization, const char *body, size_t len,
             struct certify_result *r)
{
	const struct settings *cfg = d->cfg;
	struct jwt_verify_opts vo = {
		.issuer = cfg->issuer,
		.audience = cfg->audience,
		.now = d->now,
		.skew = cfg->clock_skew / 1000,
	};
	struct jwt_identity who;
	struct spiffe_id id;
	struct sign_request sr = { 0 };
	struct csr_info info = { { 0 } };
	struct err e = { 0 };
	const char *token = certify_bearer(authorization);
	const char *csr_pem = NULL;
	X509_REQ *req = NULL;
	X509 *leaf = NULL;
	json_t *root = NULL;
	int64_t ttl = 0, retry_ms = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if (token == NULL) {
		certify_refuse(r, 401, "missing_token",
		               authorization == NULL
		                   ? "no Authorization header: send the pod's service-account "
		                     "token as \"Authorization: Bearer <token>\""
		                   : "the Authorization header is not \"Bearer <token>\"");
		goto out;
	}
	if (d->review == NULL && d->jwks == NULL) {
		r->retry_after = 5;
		certify_refuse(r, 503, "jwks_unavailable",
		               "the keys that verify tokens have not been loaded yet");
		goto out;
	}
	if (d->review != NULL)
		rc = tokenreview_check(d->review, token, d->now, &who, &e);
	else
		rc = jwt_verify(token, strlen(token), d->jwks, &vo, &who, &e);
	if (rc == ERR_TOKENREVIEW_UNAVAILABLE) {
		r->retry_after = 1;
		certify_refuse_err(r, 503, &e);
		goto out;
	}
	if (rc < 0) {
		certify_refuse_err(r, 401, &e);
		goto out;
	}
	snprintf(r->pod_name, sizeof(r->pod_name), "%s", who.pod_name);
	snprintf(r->pod_uid, sizeof(r->pod_uid), "%s", who.pod_uid);
	rc = spiffe_id_from_k8s(cfg->trust_domain, who.namespace_, who.service_account, &id);
	if (rc < 0 || spiffe_id_format(&id, r->spiffe_id, sizeof(r->spiffe_id)) < 0) {
		certify_refuse(
		    r, 403, "invalid_identity",
		    "namespace \"%s\" and service account \"%s\" make no valid SPIFFE ID",
		    who.namespace_, who.service_account);
		goto out;
	}
	if (certify_listed(&cfg->denied_namespaces, who.namespace_) ||
	    (cfg->allowed_namespaces.n > 0 &&
	     !certify_listed(&cfg->allowed_namespaces, who.namespace_))) {
		certify_refuse(r, 403, "namespace_denied",
		               "namespace \"%s\" may not get certificates from this CA",
		               who.namespace_);
		goto out;
	}
	if (!ratelimit_allow(d->rl, r->spiffe_id, d->mono_ms, &retry_ms)) {
		r->retry_after = (int)((retry_ms + 999) / 1000);
		certify_refuse(r, 429, "rate_limited", "%s asks too often; retry in %d s",
		               r->spiffe_id, r->retry_after);
		goto out;
	}
	if (certify_body(d, body, len, &csr_pem, &ttl, &root, r) < 0)
		goto out;
	req = csr_parse(csr_pem, strlen(csr_pem), &e);
	if (req == NULL) {
		certify_refuse_err(r, 400, &e);
		goto out;
	}
	rc = csr_check(req, &id, &info, &e);
	snprintf(r->key_type, sizeof(r->key_type), "%s", info.key_desc);
	if (rc < 0) {
		certify_refuse_err(r, rc == ERR_CSR_IDENTITY ? 403 : 400, &e);
		goto out;
	}
	sr.pubkey = X509_REQ_get0_pubkey(req);
	sr.spki = X509_REQ_get_X509_PUBKEY(req);
	sr.id = &id;
	sr.now = d->now;
	sr.ttl = ttl;
	sr.backdate = cfg->backdate / 1000;
	if (sign_issue(d->signer, &sr, &leaf, &e) < 0) {
		certify_refuse_err(r, 500, &e);
		goto out;
	}
	if (certify_answer(d, leaf, r) < 0) {
		certify_refuse(r, 500, "internal", "out of memory while writing the answer");
		goto out;
	}
	r->status = 200;
out:
	json_decref(root);
	X509_REQ_free(req);
	X509_free(leaf);
	OPENSSL_cleanse(&e, sizeof(e));
}
