/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/creds.c: real TLS handshakes in memory between contexts from creds. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "meshlet/x509.h"
#include "proxy/creds.h"

#define TD     "example.org"
#define ALPN   "meshlet/1"
#define WEB_ID "spiffe://example.org/ns/default/sa/web"
#define DB_ID  "spiffe://example.org/ns/default/sa/db"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *h_ = (hay);                                                            \
		if (h_ == NULL || strstr(h_, (needle)) == NULL)                                    \
			fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));  \
	} while (0)

/* A certificate and its key; chain holds the certificate then its intermediates. */
struct cred {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *chain;
};

static struct {
	struct cred root, other_root, inter;
	struct cred web, web2, db, via_inter, other_td, from_other, expired, two_uris, dns_only,
	    leaf_ca;
	STACK_OF(X509) *roots, *other_roots;
} fx;

static long next_serial = 100;

/* A certificate for key, signed by issuer (NULL: self-signed), valid from nb to na seconds
 * from now; leaves get serverAuth and clientAuth. */
static X509 *make_cert(EVP_PKEY *key, const struct cred *issuer, const char *cn, const char *san,
                       bool ca, long nb, long na)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	struct {
		int nid;
		const char *value;
	} exts[] = {
		{ NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE" },
		{ NID_key_usage,
		  ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature" },
		{ ca ? NID_undef : NID_ext_key_usage, "serverAuth,clientAuth" },
		{ san != NULL ? NID_subject_alt_name : NID_undef, san },
	};

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
	name = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
	                                       -1, -1, 0));
	assert_true(
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : name));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer->cert : x, x, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *ext;

		if (exts[i].nid == NID_undef)
			continue;
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer != NULL ? issuer->key : key, EVP_sha256()) > 0);
	return x;
}

static void make_cred(struct cred *c, const struct cred *issuer, const char *cn, const char *san,
                      bool ca, long nb, long na)
{
	c->key = EVP_EC_gen("P-256");
	assert_non_null(c->key);
	c->cert = make_cert(c->key, issuer, cn, san, ca, nb, na);
	c->chain = sk_X509_new_null();
	assert_non_null(c->chain);
	assert_true(X509_up_ref(c->cert));
	assert_true(sk_X509_push(c->chain, c->cert) > 0);
	/* An intermediate issuer goes into the chain after the leaf. */
	if (issuer != NULL && issuer->chain != NULL &&
	    X509_check_issued(issuer->cert, issuer->cert) != X509_V_OK) {
		assert_true(X509_up_ref(issuer->cert));
		assert_true(sk_X509_push(c->chain, issuer->cert) > 0);
	}
}

static void free_cred(struct cred *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->cert);
	sk_X509_pop_free(c->chain, X509_free);
}

static STACK_OF(X509) *one(X509 *x)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	assert_non_null(s);
	assert_true(X509_up_ref(x));
	assert_true(sk_X509_push(s, x) > 0);
	return s;
}

static int setup(void **state)
{
	(void)state;
	make_cred(&fx.root, NULL, "root", "URI:spiffe://" TD, true, -60, 86400);
	make_cred(&fx.other_root, NULL, "other root", "URI:spiffe://" TD, true, -60, 86400);
	make_cred(&fx.inter, &fx.root, "intermediate", "URI:spiffe://" TD, true, -60, 86400);
	make_cred(&fx.web, &fx.root, "web", "URI:" WEB_ID, false, -60, 3600);
	make_cred(&fx.web2, &fx.root, "web2", "URI:" WEB_ID, false, -60, 7200);
	make_cred(&fx.db, &fx.root, "db", "URI:" DB_ID, false, -60, 3600);
	make_cred(&fx.via_inter, &fx.inter, "via", "URI:" DB_ID, false, -60, 3600);
	make_cred(&fx.other_td, &fx.root, "other", "URI:spiffe://other.org/ns/default/sa/web",
	          false, -60, 3600);
	make_cred(&fx.from_other, &fx.other_root, "from other", "URI:" DB_ID, false, -60, 3600);
	make_cred(&fx.expired, &fx.root, "expired", "URI:" DB_ID, false, -7200, -3600);
	make_cred(&fx.two_uris, &fx.root, "two", "URI:" DB_ID ",URI:" WEB_ID, false, -60, 3600);
	make_cred(&fx.dns_only, &fx.root, "dns", "DNS:db.default.svc", false, -60, 3600);
	make_cred(&fx.leaf_ca, &fx.root, "ca leaf", "URI:" DB_ID, true, -60, 3600);
	fx.roots = one(fx.root.cert);
	fx.other_roots = one(fx.root.cert);
	assert_true(X509_up_ref(fx.other_root.cert));
	assert_true(sk_X509_push(fx.other_roots, fx.other_root.cert) > 0);
	return 0;
}

static int teardown(void **state)
{
	struct cred *all[] = { &fx.root,       &fx.other_root, &fx.inter,     &fx.web,
		               &fx.web2,       &fx.db,         &fx.via_inter, &fx.other_td,
		               &fx.from_other, &fx.expired,    &fx.two_uris,  &fx.dns_only,
		               &fx.leaf_ca };

	(void)state;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free_cred(all[i]);
	sk_X509_pop_free(fx.roots, X509_free);
	sk_X509_pop_free(fx.other_roots, X509_free);
	return 0;
}

static struct creds *new_creds(const char *td, bool alpn_required)
{
	struct creds *c = creds_new(&(struct creds_options){
	    .trust_domain = td, .alpn = ALPN, .alpn_required = alpn_required });

	assert_non_null(c);
	return c;
}

/* creds holding cred's identity, with roots. */
static struct creds *creds_with(const char *td, const struct cred *cr, STACK_OF(X509) *roots)
{
	struct creds *c = new_creds(td, true);
	struct err e = { 0 };

	if (creds_install(c, cr->chain, cr->key, roots, &e) != 0)
		fail_msg("creds_install: %s (%s)", e.msg, err_name(e.code));
	return c;
}

/* A plain context that does none of our checks, for peers that misbehave. */
static SSL_CTX *raw_ctx(bool server, const struct cred *cr, const char *alpn)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	assert_non_null(ctx);
	assert_true(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION));
	if (cr != NULL)
		assert_true(SSL_CTX_use_cert_and_key(ctx, cr->cert, cr->key, NULL, 1));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (alpn != NULL) {
		unsigned char wire[64];

		wire[0] = (unsigned char)strlen(alpn);
		memcpy(wire + 1, alpn, strlen(alpn));
		assert_int_equal(SSL_CTX_set_alpn_protos(ctx, wire, wire[0] + 1u), 0);
	}
	return ctx;
}

/* Both ends of a connection in memory, and how each side's handshake ended. */
struct hs {
	SSL *c, *s;
	int cdone, sdone; /* 1: done, -1: failed */
	enum creds_failure cfail, sfail;
	char cwhy[CREDS_REASON_SIZE], swhy[CREDS_REASON_SIZE];
};

static int step(SSL *ssl, enum creds_failure *f, char *why)
{
	int r = SSL_do_handshake(ssl);

	if (r == 1)
		return 1;
	r = SSL_get_error(ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE)
		return 0;
	*f = creds_handshake_failure(ssl, why, CREDS_REASON_SIZE);
	return -1;
}

/* Starts a connection from cctx to sctx; session, when not NULL, is offered. */
static void hs_start(struct hs *h, SSL_CTX *cctx, SSL_CTX *sctx)
{
	BIO *b1, *b2;

	memset(h, 0, sizeof(*h));
	h->c = SSL_new(cctx);
	h->s = SSL_new(sctx);
	assert_non_null(h->c);
	assert_non_null(h->s);
	assert_true(BIO_new_bio_pair(&b1, 0, &b2, 0));
	SSL_set_bio(h->c, b1, b1);
	SSL_set_bio(h->s, b2, b2);
	SSL_set_connect_state(h->c);
	SSL_set_accept_state(h->s);
}

/* Steps both sides until each is done or has failed; then, as a TLS 1.3 client learns
 * of its refusal only when it reads, has the client read once. Returns true when both
 * sides completed. */
static bool hs_run(struct hs *h)
{
	for (int i = 0; i < 50 && (h->cdone == 0 || h->sdone == 0); i++) {
		if (h->cdone == 0)
			h->cdone = step(h->c, &h->cfail, h->cwhy);
		if (h->sdone == 0)
			h->sdone = step(h->s, &h->sfail, h->swhy);
		if (h->cdone < 0 || h->sdone < 0) {
			/* Let the other side read the alert. */
			if (h->cdone == 0)
				h->cdone = step(h->c, &h->cfail, h->cwhy);
			if (h->sdone == 0)
				h->sdone = step(h->s, &h->sfail, h->swhy);
			break;
		}
	}
	if (h->cdone == 1 && h->sdone < 0) {
		char buf[8];
		int r = SSL_read(h->c, buf, sizeof(buf));

		if (r <= 0 && SSL_get_error(h->c, r) == SSL_ERROR_SSL) {
			h->cdone = -1;
			h->cfail = creds_handshake_failure(h->c, h->cwhy, sizeof(h->cwhy));
		}
	}
	ERR_clear_error();
	return h->cdone == 1 && h->sdone == 1;
}

/* One byte each way, which also delivers the server's session ticket to the client. */
static void hs_exchange(struct hs *h)
{
	char buf[8];

	assert_int_equal(SSL_write(h->c, "p", 1), 1);
	assert_int_equal(SSL_read(h->s, buf, sizeof(buf)), 1);
	assert_int_equal(SSL_write(h->s, "q", 1), 1);
	assert_int_equal(SSL_read(h->c, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'q');
}

static void hs_free(struct hs *h)
{
	SSL_free(h->c);
	SSL_free(h->s);
}

static void assert_peer(SSL *ssl, const char *want)
{
	struct spiffe_id id;
	char s[SPIFFE_ID_MAX + 1];
	int rc = creds_peer_id(ssl, &id);

	if (rc != 0)
		fail_msg("creds_peer_id: %s", err_str(rc));
	assert_int_equal(spiffe_id_format(&id, s, sizeof(s)), 0);
	assert_string_equal(s, want);
}

static void peer_serial(SSL *ssl, char *buf)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);

	assert_non_null(peer);
	assert_int_equal(x509_serial_hex(peer, buf, CREDS_SERIAL_SIZE), 0);
}

/* Handshakes from a client creds to a server creds; returns the result in h. */
static bool creds_pair(struct hs *h, struct creds *client, struct creds *server)
{
	SSL_CTX *cctx = creds_client_ctx(client), *sctx = creds_server_ctx(server);

	assert_non_null(cctx);
	assert_non_null(sctx);
	hs_start(h, cctx, sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	return hs_run(h);
}

static void test_good_peers(void **state)
{
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct creds *db = creds_with(TD, &fx.db, fx.roots);
	const unsigned char *alpn;
	unsigned int alen;
	struct hs h;

	(void)state;
	/* db calls web, and the other way round. */
	assert_true(creds_pair(&h, db, web));
	assert_peer(h.s, DB_ID);
	assert_peer(h.c, WEB_ID);
	assert_int_equal(SSL_version(h.c), TLS1_3_VERSION);
	SSL_get0_alpn_selected(h.s, &alpn, &alen);
	assert_int_equal(alen, strlen(ALPN));
	assert_memory_equal(alpn, ALPN, alen);
	assert_null(creds_verify_error(h.s));
	assert_null(creds_verify_error(h.c));
	hs_exchange(&h);
	hs_free(&h);
	assert_true(creds_pair(&h, web, db));
	assert_peer(h.s, WEB_ID);
	assert_peer(h.c, DB_ID);
	hs_free(&h);
	creds_free(web);
	creds_free(db);
}

static void test_intermediate_chain(void **state)
{
	struct creds *via = creds_with(TD, &fx.via_inter, fx.roots);
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct hs h;

	(void)state;
	assert_int_equal(sk_X509_num(fx.via_inter.chain), 2);
	assert_true(creds_pair(&h, via, web));
	assert_peer(h.s, DB_ID);
	hs_free(&h);
	assert_true(creds_pair(&h, web, via));
	assert_peer(h.c, DB_ID);
	hs_free(&h);
	creds_free(via);
	creds_free(web);
}

static void test_client_from_other_ca(void **state)
{
	/* The client trusts both roots, but the server only its own. */
	struct creds *client = creds_with(TD, &fx.from_other, fx.other_roots);
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct hs h;

	(void)state;
	assert_false(creds_pair(&h, client, web));
	assert_int_equal(h.sdone, -1);
	assert_int_equal(h.sfail, CREDS_FAIL_UNTRUSTED);
	assert_contains(creds_verify_error(h.s), "peer " DB_ID ": certificate verify failed: "
	                                         "unable to get local issuer certificate");
	assert_string_equal(h.swhy, creds_verify_error(h.s));
	/* A cause our callback recorded is still there later, and buf may be NULL. */
	assert_int_equal(creds_handshake_failure(h.s, NULL, 0), CREDS_FAIL_UNTRUSTED);
	assert_int_equal(h.cdone, -1);
	assert_int_equal(h.cfail, CREDS_FAIL_PEER_REFUSED);
	assert_contains(h.cwhy, "peer refused our certificate");
	hs_free(&h);
	creds_free(client);
	creds_free(web);
}

/* A misbehaving client (a plain context, presenting cr) against our web server. */
static void raw_client(const struct cred *cr, const char *alpn, bool alpn_required, struct hs *h)
{
	struct creds *web = new_creds(TD, alpn_required);
	SSL_CTX *cctx = raw_ctx(false, cr, alpn), *sctx;
	struct err e = { 0 };

	assert_int_equal(creds_install(web, fx.web.chain, fx.web.key, fx.roots, &e), 0);
	sctx = creds_server_ctx(web);
	hs_start(h, cctx, sctx);
	hs_run(h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	creds_free(web);
}

static void test_other_trust_domain(void **state)
{
	struct creds *other = creds_with("other.org", &fx.other_td, fx.roots);
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct hs h;

	(void)state;
	/* A client from other.org (that does not check us back): our server refuses it. */
	raw_client(&fx.other_td, ALPN, true, &h);
	assert_int_equal(h.sdone, -1);
	assert_int_equal(h.sfail, CREDS_FAIL_TRUST_DOMAIN);
	assert_string_equal(creds_verify_error(h.s), "peer spiffe://other.org/ns/default/sa/web "
	                                             "is not in trust domain example.org");
	assert_string_equal(h.swhy, creds_verify_error(h.s));
	assert_int_equal(h.cfail, CREDS_FAIL_PEER_REFUSED);
	assert_string_equal(h.cwhy, "peer refused our certificate: sslv3 alert bad certificate");
	hs_free(&h);
	/* A server from other.org: our client refuses it. */
	assert_false(creds_pair(&h, web, other));
	assert_int_equal(h.cfail, CREDS_FAIL_TRUST_DOMAIN);
	assert_string_equal(creds_verify_error(h.c), "peer spiffe://other.org/ns/default/sa/web "
	                                             "is not in trust domain example.org");
	assert_int_equal(h.sfail, CREDS_FAIL_PEER_REFUSED);
	hs_free(&h);
	/* Our client, seen from a creds server in other.org, the other way round. */
	assert_false(creds_pair(&h, other, web));
	assert_int_equal(h.cfail, CREDS_FAIL_TRUST_DOMAIN);
	assert_string_equal(creds_verify_error(h.c), "peer " WEB_ID " is not in trust domain "
	                                             "other.org");
	hs_free(&h);
	creds_free(other);
	creds_free(web);
}

static void test_expired_peer(void **state)
{
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	SSL_CTX *sctx, *cctx;
	struct hs h;

	(void)state;
	raw_client(&fx.expired, ALPN, true, &h);
	assert_int_equal(h.sdone, -1);
	assert_int_equal(h.sfail, CREDS_FAIL_EXPIRED);
	assert_string_equal(creds_verify_error(h.s),
	                    "peer " DB_ID ": certificate verify failed: certificate has expired");
	hs_free(&h);
	/* An expired server, for our client. */
	sctx = raw_ctx(true, &fx.expired, NULL);
	cctx = creds_client_ctx(web);
	hs_start(&h, cctx, sctx);
	assert_false(hs_run(&h));
	assert_int_equal(h.cfail, CREDS_FAIL_EXPIRED);
	assert_contains(creds_verify_error(h.c), "certificate has expired");
	hs_free(&h);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	creds_free(web);
}

static void test_bad_peer_certificates(void **state)
{
	static const struct {
		const struct cred *cr;
		const char *why;
	} cases[] = {
		{ &fx.two_uris, "peer certificate has no workload SPIFFE ID: certificate has more "
		                "than one URI subject alternative name" },
		{ &fx.dns_only,
		  "peer certificate has no workload SPIFFE ID: certificate has no URI "
		  "subject alternative name" },
	};
	struct hs h;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_client(cases[i].cr, ALPN, true, &h);
		assert_int_equal(h.sdone, -1);
		assert_int_equal(h.sfail, CREDS_FAIL_NO_SPIFFE_ID);
		assert_string_equal(creds_verify_error(h.s), cases[i].why);
		hs_free(&h);
	}
	/* A CA certificate as a leaf: OpenSSL's purpose check refuses it before ours would. */
	raw_client(&fx.leaf_ca, ALPN, true, &h);
	assert_int_equal(h.sdone, -1);
	assert_int_equal(h.sfail, CREDS_FAIL_UNTRUSTED);
	assert_string_equal(creds_verify_error(h.s), "peer " DB_ID ": certificate verify failed: "
	                                             "unsuitable certificate purpose");
	hs_free(&h);
}

static void test_expect_peer(void **state)
{
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct creds *db = creds_with(TD, &fx.db, fx.roots);
	SSL_CTX *cctx = creds_client_ctx(db), *sctx = creds_server_ctx(web);
	struct spiffe_id want;
	struct hs h;

	(void)state;
	assert_int_equal(spiffe_id_parse(DB_ID, strlen(DB_ID), &want), 0);
	hs_start(&h, cctx, sctx);
	assert_int_equal(creds_expect_peer(h.c, &want), 0);
	assert_false(hs_run(&h));
	assert_int_equal(h.cfail, CREDS_FAIL_PEER_ID);
	assert_string_equal(creds_verify_error(h.c), "peer " WEB_ID " is not the expected " DB_ID);
	assert_int_equal(h.sdone, -1);
	hs_free(&h);

	assert_int_equal(spiffe_id_parse(WEB_ID, strlen(WEB_ID), &want), 0);
	hs_start(&h, cctx, sctx);
	assert_int_equal(creds_expect_peer(h.c, &want), 0);
	assert_true(hs_run(&h));
	assert_peer(h.c, WEB_ID);
	hs_free(&h);
	/* NULL clears the expectation. */
	assert_int_equal(spiffe_id_parse(DB_ID, strlen(DB_ID), &want), 0);
	hs_start(&h, cctx, sctx);
	assert_int_equal(creds_expect_peer(h.c, &want), 0);
	assert_int_equal(creds_expect_peer(h.c, NULL), 0);
	assert_true(hs_run(&h));
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	creds_free(web);
	creds_free(db);
}

static void test_no_client_certificate(void **state)
{
	struct hs h;

	(void)state;
	raw_client(NULL, ALPN, true, &h);
	assert_int_equal(h.sdone, -1);
	assert_int_equal(h.sfail, CREDS_FAIL_NO_CERT);
	assert_string_equal(h.swhy, "peer did not return a certificate");
	assert_null(creds_verify_error(h.s));
	assert_int_equal(h.cfail, CREDS_FAIL_PEER_REFUSED);
	assert_int_equal(creds_peer_id(h.s, &(struct spiffe_id){ 0 }), ERR_CREDS_NO_PEER);
	hs_free(&h);
}

static void test_alpn(void **state)
{
	struct hs h;

	(void)state;
	raw_client(&fx.db, NULL, true, &h);
	assert_int_equal(h.sfail, CREDS_FAIL_ALPN);
	assert_string_equal(h.swhy, "peer offered no application protocol; meshlet/1 is required");
	assert_int_equal(h.cfail, CREDS_FAIL_ALPN);
	hs_free(&h);
	raw_client(&fx.db, "h2", true, &h);
	assert_int_equal(h.sfail, CREDS_FAIL_ALPN);
	assert_string_equal(h.swhy, "peer does not offer the application protocol meshlet/1");
	assert_int_equal(h.cfail, CREDS_FAIL_ALPN);
	hs_free(&h);
	/* Not required: the handshake goes on without one. */
	raw_client(&fx.db, "h2", false, &h);
	assert_int_equal(h.sdone, 1);
	assert_int_equal(h.cdone, 1);
	assert_peer(h.s, DB_ID);
	hs_free(&h);
	raw_client(&fx.db, ALPN, true, &h);
	assert_int_equal(h.sdone, 1);
	hs_free(&h);
}

static void test_rotation(void **state)
{
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct creds *db = creds_with(TD, &fx.db, fx.roots);
	char s1[CREDS_SERIAL_SIZE], s2[CREDS_SERIAL_SIZE], got[CREDS_SERIAL_SIZE];
	SSL_CTX *old, *cctx;
	struct err e = { 0 };
	struct hs h;
	int64_t na1;

	(void)state;
	assert_int_equal(x509_serial_hex(fx.web.cert, s1, sizeof(s1)), 0);
	assert_int_equal(x509_serial_hex(fx.web2.cert, s2, sizeof(s2)), 0);
	creds_serial(web, got, sizeof(got));
	assert_string_equal(got, s1);
	assert_int_equal(creds_rotations(web), 0);
	na1 = creds_not_after(web);
	old = creds_server_ctx(web);
	assert_int_equal(creds_install(web, fx.web2.chain, fx.web2.key, fx.roots, &e), 0);
	assert_int_equal(creds_rotations(web), 1);
	creds_serial(web, got, sizeof(got));
	assert_string_equal(got, s2);
	assert_true(creds_not_after(web) > na1 + 3000);

	/* New handshakes present the new leaf. */
	assert_true(creds_pair(&h, db, web));
	peer_serial(h.c, got);
	assert_string_equal(got, s2);
	hs_exchange(&h);
	/* A connection made before the swap keeps working. */
	hs_free(&h);
	cctx = creds_client_ctx(db);
	hs_start(&h, cctx, old);
	/* The old context lives on by its own reference, even after creds is freed. */
	creds_free(web);
	SSL_CTX_free(old);
	assert_true(hs_run(&h));
	peer_serial(h.c, got);
	assert_string_equal(got, s1);
	hs_exchange(&h);
	hs_free(&h);
	SSL_CTX_free(cctx);
	creds_free(db);
}

static void expect_install_error(struct creds *c, const struct cred *cr, EVP_PKEY *key,
                                 STACK_OF(X509) *roots, int code, const char *msg)
{
	struct err e = { 0 };

	assert_int_equal(creds_install(c, cr->chain, key, roots, &e), code);
	assert_int_equal(e.code, code);
	assert_contains(e.msg, msg);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_install_refuses(void **state)
{
	struct creds *c = new_creds(TD, true);
	char serial[CREDS_SERIAL_SIZE], want[CREDS_SERIAL_SIZE];
	struct spiffe_id id;
	struct err e = { 0 };

	(void)state;
	assert_false(creds_ready(c));
	assert_null(creds_server_ctx(c));
	assert_null(creds_client_ctx(c));
	assert_int_equal(creds_not_after(c), 0);
	creds_serial(c, serial, sizeof(serial));
	assert_string_equal(serial, "");
	assert_int_equal(creds_id(c, &id), -ENOENT);

	expect_install_error(c, &fx.web, fx.db.key, fx.roots, ERR_X509_KEY_MISMATCH,
	                     "the private key does not match the certificate");
	expect_install_error(c, &fx.from_other, fx.from_other.key, fx.roots, ERR_CREDS_CHAIN,
	                     "does not verify against the trust bundle: unable to get local "
	                     "issuer certificate");
	expect_install_error(c, &fx.expired, fx.expired.key, fx.roots, ERR_CREDS_CHAIN,
	                     "certificate has expired");
	expect_install_error(c, &fx.other_td, fx.other_td.key, fx.roots, ERR_CREDS_TRUST_DOMAIN,
	                     "the certificate's SPIFFE ID spiffe://other.org/ns/default/sa/web is "
	                     "not in trust domain example.org");
	expect_install_error(c, &fx.leaf_ca, fx.leaf_ca.key, fx.roots, ERR_CREDS_NOT_LEAF,
	                     "CA certificate");
	expect_install_error(c, &fx.two_uris, fx.two_uris.key, fx.roots, ERR_X509_MANY_URI_SANS,
	                     "no workload SPIFFE ID");
	/* An intermediate's chain without the intermediate does not verify. */
	{
		STACK_OF(X509) *leaf_only = one(fx.via_inter.cert);
		assert_int_equal(creds_install(c, leaf_only, fx.via_inter.key, fx.roots, &e),
		                 ERR_CREDS_CHAIN);
		sk_X509_pop_free(leaf_only, X509_free);
	}
	assert_false(creds_ready(c));

	/* A refused install leaves the current identity alone. */
	assert_int_equal(creds_install(c, fx.web.chain, fx.web.key, fx.roots, &e), 0);
	expect_install_error(c, &fx.from_other, fx.from_other.key, fx.roots, ERR_CREDS_CHAIN,
	                     "unable to get local issuer certificate");
	creds_serial(c, serial, sizeof(serial));
	assert_int_equal(x509_serial_hex(fx.web.cert, want, sizeof(want)), 0);
	assert_string_equal(serial, want);
	assert_int_equal(creds_rotations(c), 0);
	assert_int_equal(creds_id(c, &id), 0);
	assert_string_equal(id.path, "/ns/default/sa/web");
	creds_free(c);
}

/* The protocol a server of our ALPN list picks for a client that offers wire. */
static void alpn_pick(const char *ours, const unsigned char *wire, unsigned len,
                      const char *want)
{
	struct creds *web = creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = ours });
	SSL_CTX *cctx = raw_ctx(false, &fx.db, NULL), *sctx;
	const unsigned char *alpn;
	unsigned int alen;
	struct err e = { 0 };
	struct hs h;

	assert_non_null(web);
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, wire, len), 0);
	assert_int_equal(creds_install(web, fx.web.chain, fx.web.key, fx.roots, &e), 0);
	sctx = creds_server_ctx(web);
	hs_start(&h, cctx, sctx);
	hs_run(&h);
	assert_int_equal(h.sdone, 1);
	SSL_get0_alpn_selected(h.s, &alpn, &alen);
	assert_int_equal(alen, strlen(want));
	assert_memory_equal(alpn, want, alen);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	creds_free(web);
}

static void test_alpn_list(void **state)
{
	static const unsigned char v1[] = "\x09meshlet/1";
	static const unsigned char v1_v2[] = "\x09meshlet/1\x09meshlet/2";
	static const unsigned char h2_v2[] = "\x02h2\x09meshlet/2";
	struct creds *both = creds_new(
	    &(struct creds_options){ .trust_domain = TD, .alpn = "meshlet/2,meshlet/1" });
	struct creds *old = creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = ALPN });
	struct err e = { 0 };
	const unsigned char *alpn;
	unsigned int alen;
	struct hs h;

	(void)state;
	/* The server's order decides: its first protocol that the client offers. */
	alpn_pick("meshlet/2,meshlet/1", v1, sizeof(v1) - 1, "meshlet/1");
	alpn_pick("meshlet/2,meshlet/1", v1_v2, sizeof(v1_v2) - 1, "meshlet/2");
	alpn_pick("meshlet/2,meshlet/1", h2_v2, sizeof(h2_v2) - 1, "meshlet/2");
	alpn_pick("meshlet/1", v1_v2, sizeof(v1_v2) - 1, "meshlet/1");
	/* A client of both protocols and a server of protocol 1 only agree on 1. */
	assert_non_null(both);
	assert_non_null(old);
	assert_int_equal(creds_install(both, fx.db.chain, fx.db.key, fx.roots, &e), 0);
	assert_int_equal(creds_install(old, fx.web.chain, fx.web.key, fx.roots, &e), 0);
	assert_true(creds_pair(&h, both, old));
	SSL_get0_alpn_selected(h.c, &alpn, &alen);
	assert_int_equal(alen, 9);
	assert_memory_equal(alpn, "meshlet/1", 9);
	hs_free(&h);
	creds_free(both);
	creds_free(old);
	/* Empty names are refused. */
	assert_null(creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = "a,,b" }));
	assert_null(creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = "a," }));
	assert_null(creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = ",a" }));
}

static void test_new_bad_options(void **state)
{
	(void)state;
	assert_null(
	    creds_new(&(struct creds_options){ .trust_domain = "Example.org", .alpn = ALPN }));
	assert_null(creds_new(
	    &(struct creds_options){ .trust_domain = "spiffe://example.org", .alpn = ALPN }));
	assert_null(creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = "" }));
	assert_null(creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = NULL }));
	assert_null(creds_new(NULL));
}

static SSL_SESSION *saved_session;

static int keep_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	SSL_SESSION_free(saved_session);
	saved_session = sess;
	return 1;
}

static void test_resumption(void **state)
{
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct creds *db = creds_new(&(struct creds_options){
	    .trust_domain = TD, .alpn = ALPN, .client_new_session = keep_session });
	SSL_CTX *cctx, *sctx;
	struct spiffe_id other;
	struct err e = { 0 };
	struct hs h;

	(void)state;
	assert_non_null(db);
	assert_int_equal(creds_install(db, fx.db.chain, fx.db.key, fx.roots, &e), 0);
	assert_true(creds_pair(&h, db, web));
	assert_false(SSL_session_reused(h.c));
	hs_exchange(&h);
	hs_free(&h);
	assert_non_null(saved_session);
	assert_true(SSL_SESSION_get_timeout(saved_session) <= CREDS_SESSION_TIMEOUT);

	/* Resumed, also after the server's SVID rotated; the peer ID is still known. */
	assert_int_equal(creds_install(web, fx.web2.chain, fx.web2.key, fx.roots, &e), 0);
	for (int i = 0; i < 2; i++) {
		cctx = creds_client_ctx(db);
		sctx = creds_server_ctx(web);
		hs_start(&h, cctx, sctx);
		assert_int_equal(creds_resume(h.c, saved_session), 0);
		if (i == 1) {
			/* A resumed session skips verification; creds_peer_id checks again. */
			assert_int_equal(spiffe_id_parse(DB_ID, strlen(DB_ID), &other), 0);
			assert_int_equal(creds_expect_peer(h.c, &other), 0);
		}
		assert_true(hs_run(&h));
		assert_true(SSL_session_reused(h.c));
		assert_true(SSL_session_reused(h.s));
		assert_peer(h.s, DB_ID);
		if (i == 0)
			assert_peer(h.c, WEB_ID);
		else
			assert_int_equal(creds_peer_id(h.c, &other), ERR_CREDS_PEER_ID);
		hs_exchange(&h);
		hs_free(&h);
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
	}
	SSL_SESSION_free(saved_session);
	saved_session = NULL;
	creds_free(web);
	creds_free(db);
}

struct taker {
	struct creds *web, *db;
	int handshakes;
};

/* cmocka's asserts belong to the main thread: this one only counts. */
static void *take_loop(void *arg)
{
	struct taker *t = arg;

	for (int i = 0; i < 40; i++) {
		SSL_CTX *cctx = creds_client_ctx(t->db), *sctx = creds_server_ctx(t->web);
		struct hs h = { 0 };
		BIO *b1, *b2;

		h.c = SSL_new(cctx);
		h.s = SSL_new(sctx);
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
		if (h.c == NULL || h.s == NULL || !BIO_new_bio_pair(&b1, 0, &b2, 0)) {
			hs_free(&h);
			continue;
		}
		SSL_set_bio(h.c, b1, b1);
		SSL_set_bio(h.s, b2, b2);
		SSL_set_connect_state(h.c);
		SSL_set_accept_state(h.s);
		if (hs_run(&h))
			t->handshakes++;
		hs_free(&h);
	}
	return NULL;
}

/* Handshakes in threads while another thread swaps identities under them. */
static void test_concurrent_swaps(void **state)
{
	struct taker t[3];
	pthread_t th[3];
	struct creds *web = creds_with(TD, &fx.web, fx.roots);
	struct creds *db = creds_with(TD, &fx.db, fx.roots);
	struct err e = { 0 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		t[i] = (struct taker){ .web = web, .db = db };
		assert_int_equal(pthread_create(&th[i], NULL, take_loop, &t[i]), 0);
	}
	for (int i = 0; i < 30; i++) {
		const struct cred *cr = i % 2 ? &fx.web : &fx.web2;

		assert_int_equal(creds_install(web, cr->chain, cr->key, fx.roots, &e), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].handshakes, 40);
	}
	assert_int_equal(creds_rotations(web), 30);
	creds_free(web);
	creds_free(db);
}

static void test_failure_names(void **state)
{
	(void)state;
	assert_string_equal(creds_failure_name(CREDS_FAIL_NONE), "none");
	assert_string_equal(creds_failure_name(CREDS_FAIL_TRUST_DOMAIN), "trust_domain");
	assert_string_equal(creds_failure_name(CREDS_FAIL_NO_CERT), "no_certificate");
	assert_string_equal(creds_failure_name(CREDS_FAIL_PROTOCOL), "protocol");
	assert_string_equal(creds_failure_name((enum creds_failure)99), "protocol");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_peers),
		cmocka_unit_test(test_intermediate_chain),
		cmocka_unit_test(test_client_from_other_ca),
		cmocka_unit_test(test_other_trust_domain),
		cmocka_unit_test(test_expired_peer),
		cmocka_unit_test(test_bad_peer_certificates),
		cmocka_unit_test(test_expect_peer),
		cmocka_unit_test(test_no_client_certificate),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_alpn_list),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_install_refuses),
		cmocka_unit_test(test_new_bad_options),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_concurrent_swaps),
		cmocka_unit_test(test_failure_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
