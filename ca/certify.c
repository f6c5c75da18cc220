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
#include "meshlet/jparse.h"
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

/*
 * A certificate's PEM text as the inside of a JSON string, written into out (NULL: only
 * measured): the lines of PEM_write_bio_X509, 64 base64 characters each, with each line end
 * escaped as \n. Base64 and the PEM lines need no other escape. Returns its length.
 */
#define PEM_BEGIN "-----BEGIN CERTIFICATE-----\\n"
#define PEM_END   "-----END CERTIFICATE-----\\n"
static size_t pem_json_string(char *out, const unsigned char *der, size_t len)
{
	size_t lines = (len + 47) / 48;
	size_t n = strlen(PEM_BEGIN) + (len + 2) / 3 * 4 + lines * 2 + strlen(PEM_END);
	int w;

	if (out == NULL)
		return n;
	memcpy(out, PEM_BEGIN, strlen(PEM_BEGIN));
	out += strlen(PEM_BEGIN);
	for (size_t i = 0; i < len; i += 48) {
		w = EVP_EncodeBlock((unsigned char *)out, der + i,
		                    (int)(len - i < 48 ? len - i : 48));
		out += w;
		memcpy(out, "\\n", 2);
		out += 2;
	}
	memcpy(out, PEM_END, strlen(PEM_END));
	return n;
}

char *certify_pem_json(const STACK_OF(X509) *certs)
{
	unsigned char *der = NULL;
	char *out = malloc(3), *grown;
	size_t at = 0, n;
	int len;

	if (out == NULL)
		return NULL;
	out[at++] = '[';
	for (int i = 0; i < sk_X509_num(certs); i++) {
		len = i2d_X509(sk_X509_value(certs, i), &der);
		n = len > 0 ? pem_json_string(NULL, der, (size_t)len) : 0;
		grown = len > 0 ? realloc(out, at + n + 6) : NULL;
		if (grown == NULL) {
			OPENSSL_free(der);
			free(out);
			return NULL;
		}
		out = grown;
		if (i > 0)
			out[at++] = ',';
		out[at++] = '"';
		at += pem_json_string(out + at, der, (size_t)len);
		out[at++] = '"';
		OPENSSL_free(der);
		der = NULL;
	}
	out[at++] = ']';
	out[at] = '\0';
	return out;
}

/* Reads {"csr": "...", "ttl_seconds": N}; unknown fields are ignored, as JSON APIs do. */
static int certify_body(const struct certify_deps *d, const char *body, size_t len,
                        const char **csr, int64_t *ttl, json_t **root, struct certify_result *r)
{
	struct jparse_error je;
	json_t *v;
	int64_t max = d->cfg->max_ttl / 1000;

	*root = jparse_load(body, len, &je);
	if (*root == NULL) {
		if (strcmp(je.text, "out of memory") == 0)
			certify_refuse(r, 500, "internal", "out of memory while reading the body");
		else
			certify_refuse(r, 400, "invalid_json",
			               "the body is not JSON: %s (line %d, column %d)", je.text,
			               je.line, je.column);
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

/*
 * The answer, {"spiffe_id", "cert_chain", "trust_bundle", "expires_at"}, put together as
 * text: the chain after the leaf and the bundle were made once (certify_pem_json), and
 * building the rest with jansson cost more than signing.
 */
static int certify_answer(const struct certify_deps *d, const struct sign_leaf *leaf,
                          struct certify_result *r)
{
	static const char k_id[] = "{\"spiffe_id\":", k_chain[] = ",\"cert_chain\":[\"",
	                  k_bundle[] = ",\"trust_bundle\":", k_expires[] = ",\"expires_at\":\"";
	const char *rest = d->chain_json + 1; /* after its '[': "]" or the intermediates */
	struct timespec ts = { .tv_sec = (time_t)leaf->not_after };
	const unsigned char *der = leaf->der;
	json_t *id = json_string(r->spiffe_id);
	char *id_json = NULL, *o;
	size_t size, len = leaf->len;
	int rc = -1;

	if (id == NULL || time_format_rfc3339(&ts, false, r->not_after, sizeof(r->not_after)) < 0)
		goto out;
	snprintf(r->serial, sizeof(r->serial), "%s", leaf->serial);
	id_json = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
	if (id_json == NULL)
		goto out;
	size = strlen(k_id) + strlen(id_json) + strlen(k_chain) + pem_json_string(NULL, der, len) +
	       1 + (*rest != ']') + strlen(rest) + strlen(k_bundle) + strlen(d->bundle_json) +
	       strlen(k_expires) + strlen(r->not_after) + 3;
	o = r->body = malloc(size);
	if (o == NULL)
		goto out;
	o = stpcpy(stpcpy(o, k_id), id_json);
	o = stpcpy(o, k_chain);
	o += pem_json_string(o, der, len);
	*o++ = '"';
	if (*rest != ']')
		*o++ = ',';
	o = stpcpy(o, rest);
	o = stpcpy(stpcpy(o, k_bundle), d->bundle_json);
	o = stpcpy(stpcpy(o, k_expires), r->not_after);
	stpcpy(o, "\"}");
	rc = 0;
out:
	free(id_json);
	json_decref(id);
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
	struct csr *req = NULL;
	struct sign_leaf leaf = { 0 };
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
	sr.pubkey = csr_pubkey(req);
	csr_spki(req, &sr.spki_alg, &sr.spki_key);
	sr.id = &id;
	sr.now = d->now;
	sr.ttl = ttl;
	sr.backdate = cfg->backdate / 1000;
	if (sign_issue_der(d->signer, &sr, &leaf, &e) < 0) {
		certify_refuse_err(r, 500, &e);
		goto out;
	}
	if (certify_answer(d, &leaf, r) < 0) {
		certify_refuse(r, 500, "internal", "out of memory while writing the answer");
		goto out;
	}
	r->status = 200;
out:
	json_decref(root);
	csr_free(req);
	free(leaf.der);
	OPENSSL_cleanse(&e, sizeof(e));
}
