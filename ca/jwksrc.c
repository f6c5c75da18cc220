/* SPDX-License-Identifier: Apache-2.0 */
/* Loading the service-account issuer's JWKS from a watched file or a polled HTTPS URL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "meshlet/file.h"
#include "meshlet/httpc.h"

#include "jwksrc.h"

/* A key set is a few KiB; a megabyte is a wrong file. */
#define JWKSRC_MAX       (1024 * 1024)
#define JWKSRC_TOKEN_MAX (64 * 1024)

struct jwksrc {
	char *file;
	char *url;
	char *token_file;
	struct httpc_tls *tls;
	int64_t refresh_ms;
	int64_t next_ms; /* URL: when to fetch next; 0: now */
	struct stat st;  /* file: what was loaded last */
	bool loaded;
};

struct jwksrc *jwksrc_new(const struct settings *cfg, struct err *e)
{
	struct jwksrc *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	s->refresh_ms = cfg->jwks_refresh;
	if (cfg->jwks_url != NULL) {
		s->url = strdup(cfg->jwks_url);
		s->token_file = strdup(cfg->api_token_file);
		s->tls = httpc_tls_new(NULL, 0, cfg->api_ca_file, NULL, NULL, e);
		if (s->tls == NULL) {
			jwksrc_free(s);
			return NULL;
		}
		if (s->url == NULL || s->token_file == NULL)
			goto nomem;
	} else {
		s->file = strdup(cfg->jwks_file);
		if (s->file == NULL)
			goto nomem;
	}
	return s;
nomem:
	jwksrc_free(s);
	err_set(e, -ENOMEM, "out of memory");
	return NULL;
}

const char *jwksrc_where(const struct jwksrc *s)
{
	return s->url != NULL ? s->url : s->file;
}

static struct jwks *jwksrc_parse(const char *where, const char *text, size_t len, struct err *e)
{
	struct jwks *k = jwks_parse(text, len, e);

	if (k == NULL) {
		char detail[sizeof(e->msg)];

		snprintf(detail, sizeof(detail), "%s", e->msg);
		err_set(e, e->code, "%s: %s", where, detail);
	}
	return k;
}

static struct jwks *jwksrc_fetch(struct jwksrc *s, struct err *e)
{
	struct httpc_response res = { 0 };
	struct httpc_header hdr[2] = { { "Accept", "application/json" } };
	size_t nhdr = 1;
	char *token = NULL, *auth = NULL;
	size_t token_len = 0;
	struct jwks *k = NULL;

	/* The API server wants a token for its JWKS unless anonymous access was granted. */
	if (access(s->token_file, R_OK) == 0 &&
	    file_read(s->token_file, JWKSRC_TOKEN_MAX, &token, &token_len, NULL) == 0) {
		while (token_len > 0 &&
		       (token[token_len - 1] == '\n' || token[token_len - 1] == '\r'))
			token[--token_len] = '\0';
		if (asprintf(&auth, "Bearer %s", token) < 0)
			auth = NULL;
		if (auth != NULL)
			hdr[nhdr++] = (struct httpc_header){ "Authorization", auth };
	}
	if (httpc_do(&(struct httpc_request){ .method = "GET",
	                                      .url = s->url,
	                                      .headers = hdr,
	                                      .nheaders = nhdr,
	                                      .timeout_ms = 5000,
	                                      .max_response = JWKSRC_MAX,
	                                      .tls = s->tls },
	             &res, e) < 0)
		goto out;
	if (res.status != 200) {
		err_set(e, ERR_JWKS_MALFORMED, "%s answered HTTP %d", s->url, res.status);
		goto out;
	}
	k = jwksrc_parse(s->url, res.body, res.body_len, e);
out:
	if (token != NULL) {
		OPENSSL_cleanse(token, token_len);
		free(token);
	}
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	httpc_response_free(&res);
	return k;
}

struct jwks *jwksrc_poll(struct jwksrc *s, int64_t now_ms, struct err *e)
{
	struct jwks *k;
	struct stat st;
	char *text = NULL;
	size_t len = 0;

	if (s->url != NULL) {
		if (s->next_ms > now_ms)
			return NULL;
		k = jwksrc_fetch(s, e);
		s->next_ms = now_ms + (k != NULL ? s->refresh_ms : JWKSRC_RETRY_MS);
		return k;
	}
	if (stat(s->file, &st) < 0) {
		err_set(e, -errno, "%s: cannot read: %s", s->file, err_str(-errno));
		return NULL;
	}
	/* The kubelet swaps a mounted file by renaming: compare the whole identity. */
	if (s->loaded && st.st_ino == s->st.st_ino && st.st_dev == s->st.st_dev &&
	    st.st_size == s->st.st_size && st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec)
		return NULL;
	s->st = st;
	s->loaded = true;
	if (file_read(s->file, JWKSRC_MAX, &text, &len, e) < 0)
		return NULL;
	k = jwksrc_parse(s->file, text, len, e);
	free(text);
	return k;
}

void jwksrc_free(struct jwksrc *s)
{
	if (s == NULL)
		return;
	free(s->file);
	free(s->url);
	free(s->token_file);
	httpc_tls_free(s->tls);
	free(s);
}
