/* SPDX-License-Identifier: Apache-2.0 */
/* The SVID's source: a background thread that renews it from meshlet-ca or reloads files. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "meshlet/file.h"
#include "meshlet/httpc.h"
#include "meshlet/log.h"
#include "meshlet/time.h"
#include "meshlet/x509.h"

#include "identity.h"

/* While the CA keeps failing for the same reason, only every this many-th failure is logged. */
#define IDENTITY_LOG_EVERY 10

/* What tells a file from its next version: the file a symlink leads to, and its times. */
struct identity_stamp {
	bool ok; /* stat succeeded */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

struct identity {
	enum identity_mode mode;
	struct creds *creds;
	/* ca mode */
	char *url, *server_name, *token_file;
	struct httpc_tls *tls;
	struct spiffe_id want;
	char want_s[SPIFFE_ID_MAX + 1];
	int64_t ttl;
	/* files mode */
	char *cert_file, *key_file, *bundle_file;
	struct identity_stamp seen[3];
	char *output_dir;

	atomic_uint_fast64_t errors;
	char last_error[sizeof(((struct err *)0)->msg)]; /* of the current failure streak */
	unsigned failures;                               /* in a row */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool stop;
};

static int identity_dup(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst != NULL ? 0 : -ENOMEM;
}

/* A uniform random number in [lo, hi]. */
static int64_t identity_random(int64_t lo, int64_t hi)
{
	uint32_t r = 0;

	if (hi <= lo)
		return lo;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) <= 0)
		r = (uint32_t)time_mono_ms();
	return lo + (int64_t)((double)r / UINT32_MAX * (double)(hi - lo));
}

/* The current SVID's ID, serial and expiry, for a log line. */
static void identity_log_installed(struct identity *id, const char *msg, const char *from,
                                   int64_t renew_ms)
{
	struct spiffe_id sid;
	char ids[SPIFFE_ID_MAX + 1] = "", serial[CREDS_SERIAL_SIZE], exp[TIME_RFC3339_MAX] = "";
	char renew[TIME_DURATION_MAX] = "";
	struct timespec t = { .tv_sec = (time_t)creds_not_after(id->creds) };

	if (creds_id(id->creds, &sid) == 0)
		spiffe_id_format(&sid, ids, sizeof(ids));
	creds_serial(id->creds, serial, sizeof(serial));
	time_format_rfc3339(&t, false, exp, sizeof(exp));
	if (renew_ms > 0)
		time_format_duration(renew_ms, renew, sizeof(renew));
	log_info(msg, LOG_STR("spiffe_id", ids), LOG_STR("serial", serial),
	         LOG_STR("expires_at", exp), LOG_STR("from", from),
	         LOG_INT("rotations", creds_rotations(id->creds)),
	         LOG_STR("renew_in", renew_ms > 0 ? renew : "-"));
}

/* Text of the certificates in certs, one PEM block after another; NULL when out of memory. */
static char *identity_pems(STACK_OF(X509) *certs)
{
	size_t len = 0;
	char *all = calloc(1, 1);

	for (int i = 0; all != NULL && i < sk_X509_num(certs); i++) {
		char *pem = x509_cert_pem(sk_X509_value(certs, i)), *grown;
		size_t n = pem != NULL ? strlen(pem) : 0;

		grown = pem != NULL ? realloc(all, len + n + 1) : NULL;
		if (grown == NULL) {
			free(all);
			all = NULL;
		} else {
			all = grown;
			memcpy(all + len, pem, n + 1);
			len += n;
		}
		free(pem);
	}
	return all;
}

/* Writes bundle.pem, svid-key.pem and svid.pem into output_dir, in that order. */
static int identity_write_output(struct identity *id, STACK_OF(X509) *chain, EVP_PKEY *key,
                                 STACK_OF(X509) *roots, struct err *e)
{
	char *bundle = identity_pems(roots), *svid = identity_pems(chain),
	     *pkey = x509_key_pem(key);
	char path[PATH_MAX];
	int rc = -ENOMEM;

	if (bundle == NULL || svid == NULL || pkey == NULL) {
		err_set(e, rc, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/bundle.pem", id->output_dir);
	rc = x509_write_file(path, bundle, strlen(bundle), 0644, e);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/svid-key.pem", id->output_dir);
		rc = x509_write_file(path, pkey, strlen(pkey), 0600, e);
	}
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/svid.pem", id->output_dir);
		rc = x509_write_file(path, svid, strlen(svid), 0644, e);
	}
out:
	free(bundle);
	free(svid);
	x509_free_secret(pkey);
	return rc;
}

/* Installs an SVID into creds, then writes it out when asked; a failed write is logged. */
static int identity_install(struct identity *id, STACK_OF(X509) *chain, EVP_PKEY *key,
                            STACK_OF(X509) *roots, struct err *e)
{
	struct err we = { 0 };
	int rc = creds_install(id->creds, chain, key, roots, e);

	if (rc == 0 && id->output_dir != NULL &&
	    identity_write_output(id, chain, key, roots, &we) < 0)
		log_warnx("cannot write the SVID for the application", LOG_STR("reason", we.msg));
	return rc;
}

/* ---- files mode ---- */

static void identity_stamp(const char *path, struct identity_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->ok = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtim = st.st_mtim;
	s->ctim = st.st_ctim;
}

static bool identity_stamp_equal(const struct identity_stamp *a, const struct identity_stamp *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static void identity_stamps(const struct identity *id, struct identity_stamp s[3])
{
	identity_stamp(id->cert_file, &s[0]);
	identity_stamp(id->key_file, &s[1]);
	identity_stamp(id->bundle_file, &s[2]);
}

static int identity_files_load(struct identity *id, struct err *e)
{
	STACK_OF(X509) *chain = NULL, *roots = NULL;
	EVP_PKEY *key = NULL;
	struct err ie = { 0 };
	int rc;

	chain = x509_read_chain(id->cert_file, e);
	key = chain != NULL ? x509_read_key(id->key_file, e) : NULL;
	roots = key != NULL ? x509_read_chain(id->bundle_file, e) : NULL;
	if (roots == NULL) {
		rc = e != NULL && e->code < 0 ? e->code : ERR_INTERNAL;
		goto out;
	}
	rc = identity_install(id, chain, key, roots, &ie);
	if (rc < 0)
		err_set(e, rc, "%s with %s and %s: %s", id->cert_file, id->key_file,
		        id->bundle_file, ie.msg);
out:
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(roots, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

static void identity_files_poll(struct identity *id)
{
	struct identity_stamp now[3];
	struct err e = { 0 };

	identity_stamps(id, now);
	if (identity_stamp_equal(&now[0], &id->seen[0]) &&
	    identity_stamp_equal(&now[1], &id->seen[1]) &&
	    identity_stamp_equal(&now[2], &id->seen[2]))
		return;
	/* Taken before reading: a change during the read is seen at the next poll. */
	memcpy(id->seen, now, sizeof(now));
	if (identity_files_load(id, &e) == 0) {
		identity_log_installed(id, "SVID reloaded", id->cert_file, 0);
		return;
	}
	atomic_fetch_add(&id->errors, 1);
	log_warnx("new SVID files do not load; keeping the current SVID", LOG_STR("reason", e.msg));
}

/* ---- ca mode ---- */

/* The token, without surrounding whitespace, malloc'd; the caller wipes and frees it. */
static int identity_token(const struct identity *id, char **out, struct err *e)
{
	char *buf = NULL, *start;
	size_t len = 0, size;
	int rc = file_read(id->token_file, IDENTITY_TOKEN_MAX, &buf, &len, e);

	*out = NULL;
	if (rc < 0)
		return rc;
	size = len;
	start = buf;
	while (len > 0 && strchr(" \t\r\n", start[len - 1]) != NULL)
		start[--len] = '\0';
	while (len > 0 && strchr(" \t\r\n", *start) != NULL)
		start++, len--;
	if (len == 0 || memchr(start, '\0', len) != NULL) {
		OPENSSL_cleanse(buf, size);
		free(buf);
		return err_set(e, -EINVAL, "token file %s is empty or not text", id->token_file);
	}
	memmove(buf, start, len + 1);
	/* What the move left behind is token too. */
	if (size > len)
		OPENSSL_cleanse(buf + len + 1, size - len);
	*out = buf;
	return 0;
}

/* A PEM CSR for key asking for our SPIFFE ID as its one URI SAN; NULL when out of memory. */
static char *identity_csr(const struct identity *id, EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *name = GENERAL_NAME_new();
	ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
	X509_EXTENSION *ext = NULL;
	BIO *bio = NULL;
	char *pem = NULL, *data;
	long n;

	if (req == NULL || exts == NULL || names == NULL || name == NULL || uri == NULL ||
	    !ASN1_STRING_set(uri, id->want_s, -1))
		goto out;
	GENERAL_NAME_set0_value(name, GEN_URI, uri);
	uri = NULL;
	if (!sk_GENERAL_NAME_push(names, name))
		goto out;
	name = NULL;
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
	if (ext == NULL || !sk_X509_EXTENSION_push(exts, ext))
		goto out;
	ext = NULL;
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_ASC,
	                                (const unsigned char *)"meshlet", -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || !X509_REQ_add_extensions(req, exts) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req))
		goto out;
	n = BIO_get_mem_data(bio, &data);
	pem = n > 0 ? strndup(data, (size_t)n) : NULL;
out:
	BIO_free(bio);
	X509_EXTENSION_free(ext);
	ASN1_IA5STRING_free(uri);
	GENERAL_NAME_free(name);
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return pem;
}

/* The certificates in the JSON array doc[member], appended in order to a new stack. */
static STACK_OF(X509) *identity_certs(json_t *doc, const char *member, struct err *e)
{
	json_t *a = json_object_get(doc, member), *v;
	STACK_OF(X509) *all = sk_X509_new_null();
	char what[64];
	size_t i;

	if (all == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	if (!json_is_array(a) || json_array_size(a) == 0) {
		err_set(e, ERR_IDENTITY_ANSWER, "meshlet-ca's answer has no \"%s\" list", member);
		goto fail;
	}
	json_array_foreach(a, i, v) {
		STACK_OF(X509) *some;

		snprintf(what, sizeof(what), "meshlet-ca's %s[%zu]", member, i);
		if (!json_is_string(v)) {
			err_set(e, ERR_IDENTITY_ANSWER, "%s is not a string", what);
			goto fail;
		}
		some = x509_parse_chain(json_string_value(v), json_string_length(v), what, e);
		if (some == NULL) {
			e->code = ERR_IDENTITY_ANSWER;
			goto fail;
		}
		while (sk_X509_num(some) > 0) {
			X509 *x = sk_X509_shift(some);

			if (!sk_X509_push(all, x)) {
				X509_free(x);
				sk_X509_pop_free(some, X509_free);
				err_set(e, -ENOMEM, "out of memory");
				goto fail;
			}
		}
		sk_X509_free(some);
	}
	return all;
fail:
	sk_X509_pop_free(all, X509_free);
	return NULL;
}

/* A refusal: "meshlet-ca answered 401 jwt_expired: token has expired ..."; Retry-After. */
static int identity_refused(const struct httpc_response *res, int64_t *retry_ms, struct err *e)
{
	json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
	const char *code = json_string_value(json_object_get(doc, "error"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	long secs;
	char *end;

	if (res->retry_after != NULL) {
		errno = 0;
		secs = strtol(res->retry_after, &end, 10);
		if (errno == 0 && *end == '\0' && secs > 0 && secs < 86400)
			*retry_ms = secs * 1000;
	}
	err_set(e, ERR_IDENTITY_CA, "meshlet-ca answered %d %s: %.300s", res->status,
	        code != NULL ? code : "(no error code)", msg != NULL ? msg : "(no message)");
	json_decref(doc);
	return ERR_IDENTITY_CA;
}

/* One request for a new SVID; installs it. *retry_ms gets a Retry-After, if any. */
static int identity_renew(struct identity *id, int64_t *retry_ms, struct err *e)
{
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL, *roots = NULL;
	struct httpc_response res = { 0 };
	json_t *doc = NULL;
	char *token = NULL, *auth = NULL, *csr = NULL, *body = NULL;
	struct spiffe_id got;
	struct err ie = { 0 };
	size_t auth_len = 0;
	int rc;

	rc = identity_token(id, &token, e);
	if (rc < 0)
		goto out;
	key = EVP_EC_gen("P-256");
	csr = key != NULL ? identity_csr(id, key) : NULL;
	doc = csr != NULL ? json_pack("{s:s}", "csr", csr) : NULL;
	if (doc != NULL &&
	    (id->ttl == 0 || json_object_set_new(doc, "ttl_seconds", json_integer(id->ttl)) == 0))
		body = json_dumps(doc, JSON_COMPACT);
	auth_len = strlen(token) + sizeof("Bearer ");
	auth = body != NULL ? malloc(auth_len) : NULL;
	if (auth == NULL) {
		rc = err_set(e, -ENOMEM, "cannot make a key and a CSR: out of memory");
		goto out;
	}
	snprintf(auth, auth_len, "Bearer %s", token);
	{
		const struct httpc_header headers[] = { { "Authorization", auth },
			                                { "Content-Type", "application/json" } };
		const struct httpc_request req = {
			.method = "POST",
			.url = id->url,
			.headers = headers,
			.nheaders = 2,
			.body = body,
			.body_len = strlen(body),
			.timeout_ms = IDENTITY_CA_TIMEOUT_MS,
			.tls = id->tls,
			.server_name = id->server_name,
		};

		rc = httpc_do(&req, &res, e);
	}
	if (rc < 0)
		goto out;
	if (res.status != 200) {
		rc = identity_refused(&res, retry_ms, e);
		goto out;
	}
	json_decref(doc);
	doc = json_loadb(res.body, res.body_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc)) {
		rc = err_set(e, ERR_IDENTITY_ANSWER, "meshlet-ca's answer is not a JSON object");
		goto out;
	}
	chain = identity_certs(doc, "cert_chain", e);
	roots = chain != NULL ? identity_certs(doc, "trust_bundle", e) : NULL;
	if (roots == NULL) {
		rc = e->code;
		goto out;
	}
	if (x509_check_key(sk_X509_value(chain, 0), key) < 0) {
		rc = err_set(e, ERR_IDENTITY_ANSWER,
		             "meshlet-ca's certificate is not for the key we sent");
		goto out;
	}
	if (x509_spiffe_id(sk_X509_value(chain, 0), &got) < 0 ||
	    !spiffe_id_equal(&got, &id->want)) {
		rc = err_set(e, ERR_IDENTITY_ANSWER, "meshlet-ca's certificate is not for %s",
		             id->want_s);
		goto out;
	}
	rc = identity_install(id, chain, key, roots, &ie);
	if (rc < 0)
		err_set(e, rc, "meshlet-ca's certificate cannot be used: %s", ie.msg);
out:
	if (token != NULL)
		OPENSSL_cleanse(token, strlen(token));
	if (auth != NULL)
		OPENSSL_cleanse(auth, auth_len);
	free(token);
	free(auth);
	free(csr);
	free(body);
	json_decref(doc);
	httpc_response_free(&res);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(roots, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

/* One attempt; returns the milliseconds to wait before the next. */
static int64_t identity_ca_round(struct identity *id)
{
	struct err e = { 0 };
	int64_t retry_ms = 0, wait_ms, step;
	char retry[TIME_DURATION_MAX];
	bool same;

	if (identity_renew(id, &retry_ms, &e) == 0) {
		int64_t half = (creds_not_after(id->creds) * 1000 - time_now_ms()) / 2;

		wait_ms = identity_random(half - half / 10, half + half / 10);
		if (wait_ms < 1000)
			wait_ms = 1000;
		if (id->failures > 0)
			log_info("SVID request succeeded again", LOG_INT("failures", id->failures));
		id->failures = 0;
		id->last_error[0] = '\0';
		identity_log_installed(id, "SVID issued", id->url, wait_ms);
		return wait_ms;
	}
	atomic_fetch_add(&id->errors, 1);
	step = IDENTITY_BACKOFF_MIN_MS << (id->failures < 5 ? id->failures : 5);
	if (step > IDENTITY_BACKOFF_MAX_MS)
		step = IDENTITY_BACKOFF_MAX_MS;
	wait_ms = identity_random(step - step / 5, step + step / 5);
	if (retry_ms > wait_ms)
		wait_ms = retry_ms < IDENTITY_BACKOFF_MAX_MS ? retry_ms : IDENTITY_BACKOFF_MAX_MS;
	id->failures++;
	/* One line per new reason, then one in IDENTITY_LOG_EVERY while it stays the same. */
	same = strcmp(e.msg, id->last_error) == 0;
	if (!same || id->failures % IDENTITY_LOG_EVERY == 0) {
		int64_t left = creds_not_after(id->creds) - time_now_ms() / 1000;

		time_format_duration(wait_ms, retry, sizeof(retry));
		log_warnx("cannot get an SVID from meshlet-ca", LOG_STR("reason", e.msg),
		          LOG_INT("failures", id->failures), LOG_STR("retry_in", retry),
		          LOG_BOOL("serving", creds_ready(id->creds) && left > 0),
		          LOG_INT("expires_in_s", creds_ready(id->creds) ? left : 0));
		snprintf(id->last_error, sizeof(id->last_error), "%s", e.msg);
	}
	return wait_ms;
}

/* ---- the thread ---- */

/* Sleeps ms or until identity_stop; returns true when stopping. */
static bool identity_wait(struct identity *id, int64_t ms)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&id->mu);
	while (!id->stop && pthread_cond_timedwait(&id->cv, &id->mu, &until) != ETIMEDOUT)
		;
	stop = id->stop;
	pthread_mutex_unlock(&id->mu);
	return stop;
}

static void *identity_main(void *arg)
{
	struct identity *id = arg;
	int64_t wait_ms = id->mode == IDENTITY_CA ? 0 : IDENTITY_POLL_MS;

	while (!identity_wait(id, wait_ms)) {
		if (id->mode == IDENTITY_CA) {
			wait_ms = identity_ca_round(id);
		} else {
			identity_files_poll(id);
			wait_ms = IDENTITY_POLL_MS;
		}
		ERR_clear_error();
	}
	return NULL;
}

static void identity_free(struct identity *id)
{
	if (id == NULL)
		return;
	httpc_tls_free(id->tls);
	free(id->url);
	free(id->server_name);
	free(id->token_file);
	free(id->cert_file);
	free(id->key_file);
	free(id->bundle_file);
	free(id->output_dir);
	free(id);
}

/* Checks the ca mode options and prepares the URL, the ID and the TLS trust. */
static int identity_ca_init(struct identity *id, const struct identity_options *o, struct err *e)
{
	char host[HTTPC_HOST_MAX], path[HTTPC_PATH_MAX];
	bool tls;
	int port, rc;

	if (o->ca_url == NULL || o->token_file == NULL || o->trust_domain == NULL ||
	    o->namespace_ == NULL || o->service_account == NULL)
		return err_set(e, -EINVAL,
		               "identity: ca mode needs the CA's URL, the token file, "
		               "the trust domain, the namespace and the service account");
	if (o->trust_bundle_pem == NULL || o->trust_bundle_pem[0] == '\0')
		return err_set(e, -EINVAL,
		               "identity: ca mode needs the trust bundle (PEM) that "
		               "meshlet-ca's certificate chains to");
	if (o->ttl < 0)
		return err_set(e, -EINVAL, "identity: the requested lifetime is negative");
	rc = spiffe_id_from_k8s(o->trust_domain, o->namespace_, o->service_account, &id->want);
	if (rc == 0)
		rc = spiffe_id_format(&id->want, id->want_s, sizeof(id->want_s));
	if (rc < 0)
		return err_set(e, rc,
		               "identity: no SPIFFE ID for trust domain \"%s\", namespace "
		               "\"%s\" and service account \"%s\": %s",
		               o->trust_domain, o->namespace_, o->service_account, err_str(rc));
	rc = httpc_parse_url(o->ca_url, host, sizeof(host), &port, path, sizeof(path), &tls);
	if (rc < 0 || !tls)
		return err_set(e, ERR_HTTPC_URL,
		               "identity: %s: the CA's address must be an "
		               "https://host:port URL",
		               o->ca_url);
	if (asprintf(&id->url,
	             strchr(host, ':') != NULL ? "https://[%s]:%d/v1/certify"
	                                       : "https://%s:%d/v1/certify",
	             host, port) < 0) {
		id->url = NULL;
		return err_set(e, -ENOMEM, "out of memory");
	}
	id->ttl = o->ttl;
	id->tls =
	    httpc_tls_new(o->trust_bundle_pem, strlen(o->trust_bundle_pem), NULL, NULL, NULL, e);
	if (id->tls == NULL)
		return e != NULL ? e->code : ERR_INTERNAL;
	if (identity_dup(&id->server_name, o->ca_server_name) < 0 ||
	    identity_dup(&id->token_file, o->token_file) < 0)
		return err_set(e, -ENOMEM, "out of memory");
	return 0;
}

struct identity *identity_start(const struct identity_options *o, struct creds *c, struct err *e)
{
	struct identity *id = NULL;
	pthread_condattr_t ca;
	sigset_t all, old;
	bool sync_ready = false;
	int rc;

	if (o == NULL || c == NULL) {
		err_set(e, -EINVAL, "identity: no options or no credentials");
		return NULL;
	}
	id = calloc(1, sizeof(*id));
	if (id == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	id->mode = o->mode;
	id->creds = c;
	atomic_init(&id->errors, 0);
	if (identity_dup(&id->output_dir, o->output_dir) < 0) {
		err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	if (o->mode == IDENTITY_CA) {
		if (identity_ca_init(id, o, e) < 0)
			goto fail;
	} else if (o->mode == IDENTITY_FILES) {
		if (o->cert_file == NULL || o->key_file == NULL || o->bundle_file == NULL) {
			err_set(e, -EINVAL,
			        "identity: files mode needs the certificate, key and "
			        "bundle files");
			goto fail;
		}
		if (identity_dup(&id->cert_file, o->cert_file) < 0 ||
		    identity_dup(&id->key_file, o->key_file) < 0 ||
		    identity_dup(&id->bundle_file, o->bundle_file) < 0) {
			err_set(e, -ENOMEM, "out of memory");
			goto fail;
		}
		identity_stamps(id, id->seen);
		if (identity_files_load(id, e) < 0)
			goto fail;
		identity_log_installed(id, "SVID loaded", id->cert_file, 0);
	} else {
		err_set(e, -EINVAL, "identity: unknown mode %d", (int)o->mode);
		goto fail;
	}

	if (pthread_condattr_init(&ca) != 0) {
		err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_mutex_init(&id->mu, NULL);
	if (rc == 0) {
		rc = pthread_cond_init(&id->cv, &ca);
		if (rc != 0)
			pthread_mutex_destroy(&id->mu);
	}
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		err_set(e, -rc, "identity: %s", strerror(rc));
		goto fail;
	}
	sync_ready = true;
	/* The thread takes no signals: they are the main loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&id->thread, NULL, identity_main, id);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(e, -rc, "identity: cannot start its thread: %s", strerror(rc));
		goto fail;
	}
	id->started = true;
	return id;
fail:
	if (sync_ready) {
		pthread_cond_destroy(&id->cv);
		pthread_mutex_destroy(&id->mu);
	}
	identity_free(id);
	return NULL;
}

void identity_stop(struct identity *id)
{
	if (id == NULL)
		return;
	pthread_mutex_lock(&id->mu);
	id->stop = true;
	pthread_cond_signal(&id->cv);
	pthread_mutex_unlock(&id->mu);
	if (id->started)
		pthread_join(id->thread, NULL);
	pthread_cond_destroy(&id->cv);
	pthread_mutex_destroy(&id->mu);
	identity_free(id);
}

uint64_t identity_ca_errors(struct identity *id)
{
	return id != NULL ? (uint64_t)atomic_load(&id->errors) : 0;
}
