/* SPDX-License-Identifier: Apache-2.0 */
/* TokenReview requests to the Kubernetes API, with a small cache of positive answers. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "meshlet/base64.h"
#include "meshlet/file.h"
#include "meshlet/httpc.h"

#include "tokenreview.h"

#define TOKENREVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
/* Cache slots, chosen by the token's hash; a collision just evicts. */
#define TOKENREVIEW_SLOTS     4096
#define TOKENREVIEW_TOKEN_MAX (64 * 1024)
#define SA_PREFIX             "system:serviceaccount:"

struct tokenreview_slot {
	unsigned char digest[SHA256_DIGEST_LENGTH];
	int64_t expires;
	struct jwt_identity who;
};

struct tokenreview {
	char *url;
	char *audience;
	char *token_file;
	int timeout_ms;
	struct httpc_tls *tls;
	pthread_mutex_t lock;
	struct tokenreview_slot slots[TOKENREVIEW_SLOTS];
};

struct tokenreview *tokenreview_new(const struct settings *cfg, struct err *e)
{
	struct tokenreview *t = calloc(1, sizeof(*t));
	size_t n;

	if (t == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	n = strlen(cfg->api_server);
	while (n > 0 && cfg->api_server[n - 1] == '/')
		n--;
	if (asprintf(&t->url, "%.*s%s", (int)n, cfg->api_server, TOKENREVIEW_PATH) < 0) {
		t->url = NULL;
		goto nomem;
	}
	t->audience = strdup(cfg->audience);
	t->token_file = strdup(cfg->api_token_file);
	if (t->audience == NULL || t->token_file == NULL)
		goto nomem;
	t->timeout_ms = (int)cfg->review_timeout;
	t->tls = httpc_tls_new(NULL, 0, cfg->api_ca_file, NULL, NULL, e);
	if (t->tls == NULL) {
		tokenreview_free(t);
		return NULL;
	}
	return t;
nomem:
	tokenreview_free(t);
	err_set(e, -ENOMEM, "out of memory");
	return NULL;
}

void tokenreview_free(struct tokenreview *t)
{
	if (t == NULL)
		return;
	free(t->url);
	free(t->audience);
	free(t->token_file);
	httpc_tls_free(t->tls);
	pthread_mutex_destroy(&t->lock);
	OPENSSL_cleanse(t->slots, sizeof(t->slots));
	free(t);
}

/*
 * The token's own exp, read without verifying it: the API server has verified the token,
 * and this only bounds how long its answer is remembered. 0 when there is none.
 */
static int64_t tokenreview_exp(const char *token)
{
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
	unsigned char buf[8192];
	size_t len = 0;
	json_t *claims, *exp;
	int64_t v = 0;

	if (dot2 == NULL ||
	    (size_t)(dot2 - dot1 - 1) > base64_encoded_len(sizeof(buf) - 1, BASE64_URL) ||
	    base64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, sizeof(buf), &len, BASE64_URL) <
	        0)
		return 0;
	claims = json_loadb((const char *)buf, len, 0, NULL);
	exp = json_object_get(claims, "exp");
	if (json_is_integer(exp))
		v = json_integer_value(exp);
	json_decref(claims);
	OPENSSL_cleanse(buf, sizeof(buf));
	return v;
}

/* The first string of a user.extra list, or NULL. */
static const char *tokenreview_extra(json_t *user, const char *key)
{
	return json_string_value(
	    json_array_get(json_object_get(json_object_get(user, "extra"), key), 0));
}

/* Reads the API server's answer into *out. */
static int tokenreview_answer(struct tokenreview *t, const struct httpc_response *res,
                              struct jwt_identity *out, struct err *e)
{
	json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
	json_t *status = json_object_get(doc, "status");
	json_t *user = json_object_get(status, "user");
	json_t *auds = json_object_get(status, "audiences");
	const char *username = json_string_value(json_object_get(user, "username"));
	const char *why = json_string_value(json_object_get(status, "error"));
	char ns[64], sa[254];
	const char *colon;
	bool aud_ok = auds == NULL;
	int rc;

	if (!json_is_object(status)) {
		rc = err_set(e, ERR_TOKENREVIEW_UNAVAILABLE,
		             "the Kubernetes API answered a TokenReview without a status");
		goto out;
	}
	if (!json_is_true(json_object_get(status, "authenticated"))) {
		rc = err_set(e, ERR_TOKENREVIEW_DENIED,
		             "the Kubernetes API did not authenticate the token%s%.200s",
		             why != NULL ? ": " : "", why != NULL ? why : "");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(auds); i++)
		if (json_is_string(json_array_get(auds, i)) &&
		    strcmp(json_string_value(json_array_get(auds, i)), t->audience) == 0)
			aud_ok = true;
	if (!aud_ok) {
		rc = err_set(e, ERR_TOKENREVIEW_DENIED,
		             "the token is not meant for audience \"%s\"", t->audience);
		goto out;
	}
	if (username == NULL || strncmp(username, SA_PREFIX, strlen(SA_PREFIX)) != 0 ||
	    (colon = strchr(username + strlen(SA_PREFIX), ':')) == NULL ||
	    (size_t)(colon - username - strlen(SA_PREFIX)) >= sizeof(ns) ||
	    strlen(colon + 1) >= sizeof(sa)) {
		rc = err_set(e, ERR_TOKENREVIEW_DENIED,
		             "the token is not a service account's (user \"%.100s\")",
		             username != NULL ? username : "");
		goto out;
	}
	snprintf(ns, sizeof(ns), "%.*s", (int)(colon - username - strlen(SA_PREFIX)),
	         username + strlen(SA_PREFIX));
	snprintf(sa, sizeof(sa), "%s", colon + 1);
	rc = jwt_identity_fill(out, ns, sa,
	                       tokenreview_extra(user, "authentication.kubernetes.io/pod-name"),
	                       tokenreview_extra(user, "authentication.kubernetes.io/pod-uid"), e);
out:
	json_decref(doc);
	return rc;
}

int tokenreview_check(struct tokenreview *t, const char *token, int64_t now,
                      struct jwt_identity *out, struct err *e)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	struct tokenreview_slot *slot;
	struct httpc_response res = { 0 };
	struct httpc_header hdr[2];
	char *own = NULL, *auth = NULL, *body = NULL;
	size_t own_len = 0;
	json_t *req = NULL;
	int64_t exp;
	int rc;

	SHA256((const unsigned char *)token, strlen(token), digest);
	slot = &t->slots[(digest[0] | digest[1] << 8) % TOKENREVIEW_SLOTS];
	pthread_mutex_lock(&t->lock);
	if (slot->expires > now && CRYPTO_memcmp(slot->digest, digest, sizeof(digest)) == 0) {
		*out = slot->who;
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	pthread_mutex_unlock(&t->lock);

	rc = file_read(t->token_file, TOKENREVIEW_TOKEN_MAX, &own, &own_len, e);
	if (rc < 0) {
		char detail[sizeof(e->msg)];

		snprintf(detail, sizeof(detail), "%s", e->msg);
		rc = err_set(e, ERR_TOKENREVIEW_UNAVAILABLE, "the CA's own API token: %s", detail);
		goto out;
	}
	while (own_len > 0 && (own[own_len - 1] == '\n' || own[own_len - 1] == '\r'))
		own[--own_len] = '\0';
	req = json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "apiVersion", "authentication.k8s.io/v1",
	                "kind", "TokenReview", "spec", "token", token, "audiences", t->audience);
	body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	if (body == NULL || asprintf(&auth, "Bearer %s", own) < 0) {
		auth = NULL;
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	hdr[0] = (struct httpc_header){ "Authorization", auth };
	hdr[1] = (struct httpc_header){ "Content-Type", "application/json" };
	rc = httpc_do(&(struct httpc_request){ .method = "POST",
	                                       .url = t->url,
	                                       .headers = hdr,
	                                       .nheaders = 2,
	                                       .body = body,
	                                       .body_len = strlen(body),
	                                       .timeout_ms = t->timeout_ms,
	                                       .max_response = 256 * 1024,
	                                       .tls = t->tls },
	              &res, e);
	if (rc < 0) {
		char detail[sizeof(e->msg)];

		snprintf(detail, sizeof(detail), "%s", e->msg);
		rc = err_set(e, ERR_TOKENREVIEW_UNAVAILABLE, "cannot ask the Kubernetes API: %s",
		             detail);
		goto out;
	}
	if (res.status != 200 && res.status != 201) {
		rc =
		    err_set(e, ERR_TOKENREVIEW_UNAVAILABLE,
		            "the Kubernetes API answered the TokenReview with HTTP %d", res.status);
		goto out;
	}
	rc = tokenreview_answer(t, &res, out, e);
	if (rc < 0)
		goto out;
	exp = tokenreview_exp(token);
	if (exp > now) {
		pthread_mutex_lock(&t->lock);
		memcpy(slot->digest, digest, sizeof(digest));
		slot->who = *out;
		slot->expires =
		    exp < now + TOKENREVIEW_CACHE_MAX ? exp : now + TOKENREVIEW_CACHE_MAX;
		pthread_mutex_unlock(&t->lock);
	}
out:
	if (own != NULL) {
		OPENSSL_cleanse(own, own_len);
		free(own);
	}
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	if (body != NULL) {
		OPENSSL_cleanse(body, strlen(body));
		free(body);
	}
	json_decref(req);
	httpc_response_free(&res);
	return rc;
}
