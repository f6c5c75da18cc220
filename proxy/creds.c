/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's TLS credentials: SVID checks, SSL_CTX building, SPIFFE peer checks and swaps. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "meshlet/time.h"
#include "meshlet/x509.h"

#include "creds.h"

/* Room for intermediates between a leaf and its root; more is a misconfiguration. */
#define CREDS_VERIFY_DEPTH 8
/* Sessions are resumable only by contexts that set this same id (all of ours do). */
static const unsigned char creds_sid_ctx[] = "meshlet-proxy";

/* One session-ticket key: its name in tickets, the AES-256-CBC and HMAC-SHA256 keys. */
struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	int64_t created; /* time_mono_ms */
	bool set;
};

/*
 * What a context needs while it handshakes: the trust domain, the ALPN and the ticket
 * keys. Shared by creds and every context built from it, and reference-counted, so that
 * a context (and its connections) may outlive creds_free. Ticket keys live here rather
 * than in each context so that a session survives an SVID rotation.
 */
struct creds_shared {
	atomic_int refs;
	char td[SPIFFE_TD_MAX + 1];
	unsigned char alpn[256]; /* wire form: each name after its length byte */
	unsigned alpn_len;       /* of the wire form */
	bool alpn_required;
	int (*client_new_session)(SSL *ssl, SSL_SESSION *sess);
	pthread_mutex_t ticket_mu;
	struct ticket_key cur, prev;
};

struct creds {
	struct creds_shared *sh;
	pthread_mutex_t mu; /* guards everything below */
	SSL_CTX *server, *client;
	int64_t not_after;
	char serial[CREDS_SERIAL_SIZE];
	struct spiffe_id id;
	uint64_t rotations;
};

/* Per connection, in the SSL's ex_data, made only when there is something to keep. */
struct creds_conn {
	enum creds_failure failure;
	char why[CREDS_REASON_SIZE];
	bool expect_set;
	struct spiffe_id expect;
};

static int creds_ctx_index = -1;
static int creds_conn_index = -1;
static pthread_once_t creds_index_once = PTHREAD_ONCE_INIT;

static const char *const creds_failure_names[] = {
	[CREDS_FAIL_NONE] = "none",
	[CREDS_FAIL_UNTRUSTED] = "untrusted",
	[CREDS_FAIL_EXPIRED] = "expired",
	[CREDS_FAIL_NO_SPIFFE_ID] = "no_spiffe_id",
	[CREDS_FAIL_TRUST_DOMAIN] = "trust_domain",
	[CREDS_FAIL_PEER_ID] = "peer_id",
	[CREDS_FAIL_NO_CERT] = "no_certificate",
	[CREDS_FAIL_ALPN] = "alpn",
	[CREDS_FAIL_PEER_REFUSED] = "peer_refused",
	[CREDS_FAIL_PROTOCOL] = "protocol",
};

const char *creds_failure_name(enum creds_failure f)
{
	if ((unsigned)f >= sizeof(creds_failure_names) / sizeof(creds_failure_names[0]))
		return "protocol";
	return creds_failure_names[f];
}

static void creds_shared_unref(struct creds_shared *sh)
{
	if (sh == NULL || atomic_fetch_sub(&sh->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&sh->ticket_mu);
	OPENSSL_cleanse(sh, sizeof(*sh));
	free(sh);
}

static void creds_ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	creds_shared_unref(ptr);
}

static void creds_conn_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                 void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

static void creds_index_init(void)
{
	creds_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, creds_ctx_data_free);
	creds_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, creds_conn_data_free);
}

static struct creds_shared *creds_shared_of(SSL *ssl)
{
	SSL_CTX *ctx = ssl != NULL ? SSL_get_SSL_CTX(ssl) : NULL;

	if (ctx == NULL || creds_ctx_index < 0)
		return NULL;
	return SSL_CTX_get_ex_data(ctx, creds_ctx_index);
}

static struct creds_conn *creds_conn_of(SSL *ssl, bool create)
{
	struct creds_conn *cc;

	if (creds_conn_index < 0)
		return NULL;
	cc = SSL_get_ex_data(ssl, creds_conn_index);
	if (cc == NULL && create) {
		cc = calloc(1, sizeof(*cc));
		if (cc != NULL && !SSL_set_ex_data(ssl, creds_conn_index, cc)) {
			free(cc);
			cc = NULL;
		}
	}
	return cc;
}

/* Records why the handshake on ssl fails; the first cause wins. */
static void creds_fail(SSL *ssl, enum creds_failure f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void creds_fail(SSL *ssl, enum creds_failure f, const char *fmt, ...)
{
	struct creds_conn *cc = creds_conn_of(ssl, true);
	va_list ap;

	if (cc == NULL || cc->failure != CREDS_FAIL_NONE)
		return;
	cc->failure = f;
	va_start(ap, fmt);
	vsnprintf(cc->why, sizeof(cc->why), fmt, ap);
	va_end(ap);
}

/* "peer spiffe://td/path" when cert has a SPIFFE ID, else "peer certificate". */
static void creds_peer_name(X509 *cert, char *buf, size_t size)
{
	struct spiffe_id id;
	char s[SPIFFE_ID_MAX + 1];

	if (cert != NULL && x509_spiffe_id(cert, &id) == 0 &&
	    spiffe_id_format(&id, s, sizeof(s)) == 0)
		snprintf(buf, size, "peer %s", s);
	else
		snprintf(buf, size, "peer certificate");
}

/*
 * The SPIFFE rules for the peer's leaf, which OpenSSL has verified to our roots when
 * this runs: one workload SPIFFE ID, in our trust domain (or the one expected), and not
 * a CA. Returns true when they hold; otherwise records why.
 */
static bool creds_check_leaf(SSL *ssl, const struct creds_shared *sh, X509 *leaf)
{
	struct creds_conn *cc = creds_conn_of(ssl, false);
	struct spiffe_id id;
	char s[SPIFFE_ID_MAX + 1], want[SPIFFE_ID_MAX + 1];
	int rc;

	if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0) {
		creds_fail(ssl, CREDS_FAIL_NO_SPIFFE_ID,
		           "peer certificate is a CA certificate, not a workload's");
		return false;
	}
	rc = x509_spiffe_id(leaf, &id);
	if (rc == 0 && id.path[0] == '\0')
		rc = ERR_SPIFFE_NO_PATH;
	if (rc < 0 || spiffe_id_format(&id, s, sizeof(s)) < 0) {
		creds_fail(ssl, CREDS_FAIL_NO_SPIFFE_ID,
		           "peer certificate has no workload SPIFFE ID: %s", err_str(rc));
		return false;
	}
	if (!spiffe_id_member_of(&id, sh->td)) {
		creds_fail(ssl, CREDS_FAIL_TRUST_DOMAIN, "peer %s is not in trust domain %s", s,
		           sh->td);
		return false;
	}
	if (cc != NULL && cc->expect_set && !spiffe_id_equal(&id, &cc->expect)) {
		if (spiffe_id_format(&cc->expect, want, sizeof(want)) < 0)
			snprintf(want, sizeof(want), "(invalid)");
		creds_fail(ssl, CREDS_FAIL_PEER_ID, "peer %s is not the expected %s", s, want);
		return false;
	}
	return true;
}

/*
 * OpenSSL's verify callback: it has checked each certificate of the chain against the
 * roots (ok says how that went). Chain failures are recorded as they are; at the leaf,
 * the SPIFFE rules run. A SPIFFE refusal is reported as X509_V_ERR_CERT_REJECTED, so the
 * peer gets a bad_certificate alert.
 */
static int creds_verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct creds_shared *sh = creds_shared_of(ssl);
	char peer[SPIFFE_ID_MAX + 16];
	int err, depth = X509_STORE_CTX_get_error_depth(store);

	if (ssl == NULL || sh == NULL)
		return 0;
	if (!ok) {
		err = X509_STORE_CTX_get_error(store);
		creds_peer_name(X509_STORE_CTX_get0_cert(store), peer, sizeof(peer));
		creds_fail(ssl,
		           err == X509_V_ERR_CERT_HAS_EXPIRED ||
		                   err == X509_V_ERR_CERT_NOT_YET_VALID
		               ? CREDS_FAIL_EXPIRED
		               : CREDS_FAIL_UNTRUSTED,
		           "%s: certificate verify failed: %s%s", peer,
		           X509_verify_cert_error_string(err), depth > 0 ? " (in its chain)" : "");
		return 0;
	}
	if (depth > 0)
		return 1;
	if (!creds_check_leaf(ssl, sh, X509_STORE_CTX_get_current_cert(store))) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	return 1;
}

/* Server: a client that sends no ALPN extension at all never reaches the select callback. */
static int creds_client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	const struct creds_shared *sh = arg;
	const unsigned char *p;
	size_t len;

	if (!sh->alpn_required ||
	    SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
	                              &len) == 1)
		return SSL_CLIENT_HELLO_SUCCESS;
	creds_fail(ssl, CREDS_FAIL_ALPN, "peer offered no application protocol; %.*s is required",
	           (int)sh->alpn[0], (const char *)sh->alpn + 1);
	*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

/* Whether the ALPN list in (wire form) holds the protocol p of n bytes. */
static bool creds_alpn_has(const unsigned char *in, unsigned int inlen, const unsigned char *p,
                           unsigned int n)
{
	for (unsigned int i = 0; i < inlen;) {
		unsigned int m = in[i];

		if (m == 0 || i + 1 + m > inlen)
			return false;
		if (m == n && memcmp(in + i + 1, p, n) == 0)
			return true;
		i += 1 + m;
	}
	return false;
}

/* Server: the first of our protocols (our order of preference) that the client offers. */
static int creds_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                             const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct creds_shared *sh = arg;

	for (unsigned int i = 0; i < sh->alpn_len; i += 1u + sh->alpn[i]) {
		if (creds_alpn_has(in, inlen, sh->alpn + i + 1, sh->alpn[i])) {
			*out = sh->alpn + i + 1;
			*outlen = sh->alpn[i];
			return SSL_TLSEXT_ERR_OK;
		}
	}
	if (!sh->alpn_required)
		return SSL_TLSEXT_ERR_NOACK;
	creds_fail(ssl, CREDS_FAIL_ALPN, "peer does not offer the application protocol %.*s",
	           (int)sh->alpn[0], (const char *)sh->alpn + 1);
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int creds_ticket_key_new(struct ticket_key *k, int64_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) <= 0 || RAND_bytes(k->aes, sizeof(k->aes)) <= 0 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) <= 0)
		return -1;
	k->created = now;
	k->set = true;
	return 0;
}

/* A ticket key decrypts while it is younger than two rotation periods. */
static bool creds_ticket_key_usable(const struct ticket_key *k, const unsigned char *name,
                                    int64_t now)
{
	return k->set && now - k->created < 2 * CREDS_TICKET_ROTATE * 1000LL &&
	       CRYPTO_memcmp(k->name, name, sizeof(k->name)) == 0;
}

/*
 * Server: encrypts new tickets with the current key (made, or rotated, when it is due)
 * and decrypts with the current or the previous one; a ticket under the previous key
 * is renewed. Returns 1 (or 2: renew), 0 (no ticket / cannot decrypt: full handshake)
 * or -1.
 */
static int creds_ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
                           EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	static char digest[] = "SHA256";
	struct creds_shared *sh = creds_shared_of(ssl);
	int64_t now = time_mono_ms();
	struct ticket_key k;
	OSSL_PARAM params[3];
	int rc = 1;

	if (sh == NULL)
		return -1;
	pthread_mutex_lock(&sh->ticket_mu);
	if (enc && (!sh->cur.set || now - sh->cur.created >= CREDS_TICKET_ROTATE * 1000LL)) {
		struct ticket_key next;

		if (creds_ticket_key_new(&next, now) == 0) {
			sh->prev = sh->cur;
			sh->cur = next;
		}
		OPENSSL_cleanse(&next, sizeof(next));
	}
	if (enc && sh->cur.set) {
		k = sh->cur;
	} else if (!enc && creds_ticket_key_usable(&sh->cur, name, now)) {
		k = sh->cur;
	} else if (!enc && creds_ticket_key_usable(&sh->prev, name, now)) {
		k = sh->prev;
		rc = 2;
	} else {
		pthread_mutex_unlock(&sh->ticket_mu);
		return 0;
	}
	pthread_mutex_unlock(&sh->ticket_mu);

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		/* Without a ticket the handshake still completes; it just cannot resume. */
		if (RAND_bytes(iv, 16) <= 0 ||
		    !EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv))
			rc = 0;
	} else if (!EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv)) {
		rc = -1;
	}
	if (rc > 0 && !EVP_MAC_CTX_set_params(hctx, params))
		rc = enc ? 0 : -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/*
 * Client: hands a copy of each new session to the caller's callback. OpenSSL marks a
 * session not resumable when its connection is freed without a close_notify sent (a
 * reset, a timeout), and a copy is immune to that.
 */
static int creds_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct creds_shared *sh = creds_shared_of(ssl);
	SSL_SESSION *copy;

	if (sh == NULL || sh->client_new_session == NULL)
		return 0;
	copy = SSL_SESSION_dup(sess);
	if (copy != NULL && !sh->client_new_session(ssl, copy))
		SSL_SESSION_free(copy);
	return 0;
}

int creds_resume(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION *copy = SSL_SESSION_dup(sess);
	int ok;

	if (copy == NULL)
		return -ENOMEM;
	ok = SSL_set_session(ssl, copy);
	SSL_SESSION_free(copy);
	return ok ? 0 : -EINVAL;
}

struct creds *creds_new(const struct creds_options *o)
{
	struct creds *c = NULL;
	struct creds_shared *sh = NULL;
	size_t alen;

	pthread_once(&creds_index_once, creds_index_init);
	if (creds_ctx_index < 0 || creds_conn_index < 0 || o == NULL || o->trust_domain == NULL ||
	    o->alpn == NULL)
		return NULL;
	alen = strlen(o->alpn);
	if (spiffe_td_validate(o->trust_domain, strlen(o->trust_domain)) < 0 || alen == 0 ||
	    alen > 254)
		return NULL;
	c = calloc(1, sizeof(*c));
	sh = calloc(1, sizeof(*sh));
	if (c == NULL || sh == NULL)
		goto fail;
	atomic_init(&sh->refs, 1);
	snprintf(sh->td, sizeof(sh->td), "%s", o->trust_domain);
	/* "a,b" becomes the wire form: each name after its length byte. */
	for (const char *p = o->alpn, *comma;; p = comma + 1) {
		size_t n;

		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n > 255)
			goto fail;
		sh->alpn[sh->alpn_len] = (unsigned char)n;
		memcpy(sh->alpn + sh->alpn_len + 1, p, n);
		sh->alpn_len += (unsigned)n + 1;
		if (comma == NULL)
			break;
	}
	sh->alpn_required = o->alpn_required;
	if (pthread_mutex_init(&sh->ticket_mu, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		pthread_mutex_destroy(&sh->ticket_mu);
		goto fail;
	}
	sh->client_new_session = o->client_new_session;
	c->sh = sh;
	return c;
fail:
	free(sh);
	free(c);
	return NULL;
}

void creds_free(struct creds *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->server);
	SSL_CTX_free(c->client);
	pthread_mutex_destroy(&c->mu);
	creds_shared_unref(c->sh);
	free(c);
}

/* OpenSSL's reason for the last failure, for a message. */
static const char *creds_ossl_reason(void)
{
	unsigned long err = ERR_peek_last_error();
	const char *r = err != 0 ? ERR_reason_error_string(err) : NULL;

	return r != NULL ? r : "unknown error";
}

static SSL_CTX *creds_ctx_build(struct creds *c, bool server, X509 *leaf, EVP_PKEY *key,
                                STACK_OF(X509) *inter, X509_STORE *store, struct err *e)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	int mode = SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);

	if (ctx == NULL || !SSL_CTX_set_ex_data(ctx, creds_ctx_index, c->sh))
		goto fail;
	/* The context holds a reference from now on; its ex_data free callback drops it. */
	atomic_fetch_add(&c->sh->refs, 1);
	/*
	 * AES-128-GCM first: as strong as a mesh hop needs, and it costs less than OpenSSL's
	 * default first choice, AES-256-GCM, on every byte (bench/proxy.sh, bulk).
	 */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
	                                   "TLS_CHACHA20_POLY1305_SHA256") ||
	    !SSL_CTX_use_cert_and_key(ctx, leaf, key, inter, 1) ||
	    !SSL_CTX_set_session_id_context(ctx, creds_sid_ctx, sizeof(creds_sid_ctx) - 1))
		goto fail;
	SSL_CTX_set1_cert_store(ctx, store);
	SSL_CTX_set_verify(ctx, mode, creds_verify_cb);
	SSL_CTX_set_verify_depth(ctx, CREDS_VERIFY_DEPTH);
	SSL_CTX_set_timeout(ctx, CREDS_SESSION_TIMEOUT);
	if (server) {
		/* One ticket per handshake is all a proxy pair needs (OpenSSL sends two). */
		if (!SSL_CTX_set_num_tickets(ctx, 1) ||
		    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, creds_ticket_cb))
			goto fail;
		SSL_CTX_set_client_hello_cb(ctx, creds_client_hello_cb, c->sh);
		SSL_CTX_set_alpn_select_cb(ctx, creds_alpn_select, c->sh);
	} else {
		if (SSL_CTX_set_alpn_protos(ctx, c->sh->alpn, c->sh->alpn_len) != 0)
			goto fail;
		if (c->sh->client_new_session != NULL) {
			SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
			                                        SSL_SESS_CACHE_NO_INTERNAL_STORE);
			SSL_CTX_sess_set_new_cb(ctx, creds_new_session);
		}
	}
	return ctx;
fail:
	err_set(e, ERR_INTERNAL, "cannot build the TLS %s context: %s",
	        server ? "server" : "client", creds_ossl_reason());
	SSL_CTX_free(ctx);
	return NULL;
}

/* Verifies leaf and the intermediates in chain to the roots in store, now. */
static int creds_verify_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) *inter, struct err *e)
{
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int rc = 0;

	if (vctx == NULL || !X509_STORE_CTX_init(vctx, store, leaf, inter) ||
	    !X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_CLIENT)) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (X509_verify_cert(vctx) != 1) {
		int err = X509_STORE_CTX_get_error(vctx);

		rc = err_set(e, ERR_CREDS_CHAIN,
		             "the certificate chain does not verify against the trust bundle: %s%s",
		             X509_verify_cert_error_string(err),
		             X509_STORE_CTX_get_error_depth(vctx) > 0 ? " (in the chain)" : "");
		goto out;
	}
	if (X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1)
		rc = err_set(e, ERR_CREDS_CHAIN,
		             "the certificate may not be used by a TLS server (its extended key "
		             "usage lacks serverAuth)");
out:
	X509_STORE_CTX_free(vctx);
	return rc;
}

int creds_install(struct creds *c, STACK_OF(X509) *chain, EVP_PKEY *key, STACK_OF(X509) *roots,
                  struct err *e)
{
	STACK_OF(X509) *inter = NULL;
	X509_STORE *store = NULL;
	SSL_CTX *server = NULL, *client = NULL, *old_server, *old_client;
	struct spiffe_id id;
	char ids[SPIFFE_ID_MAX + 1], serial[CREDS_SERIAL_SIZE];
	int64_t not_after;
	X509 *leaf;
	int rc;

	if (c == NULL || chain == NULL || sk_X509_num(chain) < 1 || key == NULL || roots == NULL ||
	    sk_X509_num(roots) < 1)
		return err_set(e, -EINVAL, "an identity needs a certificate, a key and roots");
	ERR_set_mark();
	leaf = sk_X509_value(chain, 0);
	rc = x509_check_key(leaf, key);
	if (rc < 0) {
		err_set(e, rc, "the private key does not match the certificate");
		goto out;
	}
	if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0) {
		rc = err_set(e, ERR_CREDS_NOT_LEAF,
		             "the certificate is a CA certificate, not a workload's");
		goto out;
	}
	rc = x509_spiffe_id(leaf, &id);
	if (rc == 0 && id.path[0] == '\0')
		rc = ERR_SPIFFE_NO_PATH;
	if (rc == 0)
		rc = spiffe_id_format(&id, ids, sizeof(ids));
	if (rc < 0) {
		err_set(e, rc, "the certificate has no workload SPIFFE ID: %s", err_str(rc));
		goto out;
	}
	if (!spiffe_id_member_of(&id, c->sh->td)) {
		rc = err_set(e, ERR_CREDS_TRUST_DOMAIN,
		             "the certificate's SPIFFE ID %s is not in trust domain %s", ids,
		             c->sh->td);
		goto out;
	}
	if (x509_not_after(leaf, &not_after) < 0 ||
	    x509_serial_hex(leaf, serial, sizeof(serial)) < 0) {
		rc = err_set(e, ERR_X509_BAD_TIME,
		             "the certificate has a malformed validity or serial");
		goto out;
	}
	store = X509_STORE_new();
	inter = sk_X509_dup(chain);
	if (store == NULL || inter == NULL) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	sk_X509_shift(inter);
	for (int i = 0; i < sk_X509_num(roots); i++) {
		if (!X509_STORE_add_cert(store, sk_X509_value(roots, i))) {
			rc = err_set(e, ERR_CREDS_CHAIN, "cannot trust root %d of the bundle: %s",
			             i + 1, creds_ossl_reason());
			goto out;
		}
	}
	rc = creds_verify_chain(store, leaf, inter, e);
	if (rc < 0)
		goto out;
	server = creds_ctx_build(c, true, leaf, key, inter, store, e);
	client = server != NULL ? creds_ctx_build(c, false, leaf, key, inter, store, e) : NULL;
	if (client == NULL) {
		rc = ERR_INTERNAL;
		goto out;
	}

	pthread_mutex_lock(&c->mu);
	if (c->server != NULL)
		c->rotations++;
	old_server = c->server;
	old_client = c->client;
	c->server = server;
	c->client = client;
	c->not_after = not_after;
	c->id = id;
	memcpy(c->serial, serial, sizeof(serial));
	pthread_mutex_unlock(&c->mu);
	/* Connections made from the old contexts hold their own references. */
	server = old_server;
	client = old_client;
	rc = 0;
out:
	SSL_CTX_free(server);
	SSL_CTX_free(client);
	X509_STORE_free(store);
	sk_X509_free(inter);
	ERR_pop_to_mark();
	return rc;
}

static SSL_CTX *creds_take(struct creds *c, bool server)
{
	SSL_CTX *ctx;

	if (c == NULL)
		return NULL;
	pthread_mutex_lock(&c->mu);
	ctx = server ? c->server : c->client;
	if (ctx != NULL && !SSL_CTX_up_ref(ctx))
		ctx = NULL;
	pthread_mutex_unlock(&c->mu);
	return ctx;
}

SSL_CTX *creds_server_ctx(struct creds *c)
{
	return creds_take(c, true);
}

SSL_CTX *creds_client_ctx(struct creds *c)
{
	return creds_take(c, false);
}

bool creds_ready(struct creds *c)
{
	bool ready;

	pthread_mutex_lock(&c->mu);
	ready = c->server != NULL;
	pthread_mutex_unlock(&c->mu);
	return ready;
}

int64_t creds_not_after(struct creds *c)
{
	int64_t t;

	pthread_mutex_lock(&c->mu);
	t = c->not_after;
	pthread_mutex_unlock(&c->mu);
	return t;
}

void creds_serial(struct creds *c, char *buf, size_t size)
{
	if (size == 0)
		return;
	pthread_mutex_lock(&c->mu);
	snprintf(buf, size, "%s", c->serial);
	pthread_mutex_unlock(&c->mu);
}

int creds_id(struct creds *c, struct spiffe_id *out)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&c->mu);
	if (c->server != NULL) {
		*out = c->id;
		rc = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

uint64_t creds_rotations(struct creds *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->rotations;
	pthread_mutex_unlock(&c->mu);
	return n;
}

int creds_expect_peer(SSL *ssl, const struct spiffe_id *id)
{
	struct creds_conn *cc = creds_conn_of(ssl, id != NULL);

	if (cc == NULL)
		return id != NULL ? -ENOMEM : 0;
	cc->expect_set = id != NULL;
	if (id != NULL)
		cc->expect = *id;
	return 0;
}

int creds_peer_id(SSL *ssl, struct spiffe_id *out)
{
	const struct creds_shared *sh = creds_shared_of(ssl);
	const struct creds_conn *cc;
	X509 *peer;
	struct spiffe_id id;
	int rc;

	if (sh == NULL || out == NULL)
		return -EINVAL;
	peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL)
		return ERR_CREDS_NO_PEER;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return ERR_CREDS_CHAIN;
	rc = x509_spiffe_id(peer, &id);
	if (rc < 0)
		return rc;
	if (id.path[0] == '\0')
		return ERR_SPIFFE_NO_PATH;
	if (!spiffe_id_member_of(&id, sh->td))
		return ERR_CREDS_TRUST_DOMAIN;
	cc = creds_conn_of(ssl, false);
	if (cc != NULL && cc->expect_set && !spiffe_id_equal(&id, &cc->expect))
		return ERR_CREDS_PEER_ID;
	*out = id;
	return 0;
}

const char *creds_verify_error(SSL *ssl)
{
	const struct creds_conn *cc = ssl != NULL ? creds_conn_of(ssl, false) : NULL;

	return cc != NULL && cc->failure != CREDS_FAIL_NONE ? cc->why : NULL;
}

/* Alerts with which a peer says that it refuses our certificate. */
static bool creds_refusal_alert(int reason)
{
	switch (reason) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

enum creds_failure creds_handshake_failure(SSL *ssl, char *buf, size_t size)
{
	const struct creds_conn *cc = ssl != NULL ? creds_conn_of(ssl, false) : NULL;
	unsigned long err = ERR_peek_error();
	const char *text = err != 0 ? ERR_reason_error_string(err) : NULL;
	enum creds_failure f = CREDS_FAIL_PROTOCOL;
	long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	int reason = ERR_GET_REASON(err);

	if (text == NULL)
		text = "the connection closed during the handshake";
	if (cc != NULL && cc->failure != CREDS_FAIL_NONE) {
		f = cc->failure;
		snprintf(buf, size, "%s", cc->why);
	} else if (ERR_GET_LIB(err) != ERR_LIB_SSL) {
		snprintf(buf, size, "%s", text);
	} else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
		/* Only when our callback could not record the cause (out of memory). */
		f = vr == X509_V_ERR_CERT_HAS_EXPIRED || vr == X509_V_ERR_CERT_NOT_YET_VALID
		        ? CREDS_FAIL_EXPIRED
		        : CREDS_FAIL_UNTRUSTED;
		snprintf(buf, size, "certificate verify failed: %s",
		         X509_verify_cert_error_string(vr));
	} else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		f = CREDS_FAIL_NO_CERT;
		snprintf(buf, size, "peer did not return a certificate");
	} else if (reason == SSL_R_NO_APPLICATION_PROTOCOL ||
	           reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) {
		f = CREDS_FAIL_ALPN;
		snprintf(buf, size, "no common application protocol: %s", text);
	} else if (creds_refusal_alert(reason)) {
		f = CREDS_FAIL_PEER_REFUSED;
		snprintf(buf, size, "peer refused our certificate: %s", text);
	} else {
		snprintf(buf, size, "%s", text);
	}
	ERR_clear_error();
	return f;
}
