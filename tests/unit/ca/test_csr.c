/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for ca/csr.c, on requests made at run time with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "ca/csr.h"

#define WEB_ID "spiffe://example.org/ns/default/sa/web"
#define DB_ID  "spiffe://example.org/ns/default/sa/db"

static struct {
	EVP_PKEY *p256, *p384, *p521, *k256, *rsa2048, *rsa1024, *ed25519;
	struct spiffe_id web;
} fx;

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* Our functions leave OpenSSL's error queue as they found it. */
#define assert_no_openssl_errors() assert_int_equal(ERR_peek_error(), 0)

static int setup(void **state)
{
	(void)state;
	fx.p256 = EVP_EC_gen("P-256");
	fx.p384 = EVP_EC_gen("P-384");
	fx.p521 = EVP_EC_gen("P-521");
	fx.k256 = EVP_EC_gen("secp256k1");
	fx.rsa2048 = EVP_RSA_gen(2048);
	fx.rsa1024 = EVP_RSA_gen(1024);
	fx.ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (fx.p256 == NULL || fx.p384 == NULL || fx.p521 == NULL || fx.k256 == NULL ||
	    fx.rsa2048 == NULL || fx.rsa1024 == NULL || fx.ed25519 == NULL)
		return -1;
	return spiffe_id_parse(WEB_ID, strlen(WEB_ID), &fx.web);
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(fx.p256);
	EVP_PKEY_free(fx.p384);
	EVP_PKEY_free(fx.p521);
	EVP_PKEY_free(fx.k256);
	EVP_PKEY_free(fx.rsa2048);
	EVP_PKEY_free(fx.rsa1024);
	EVP_PKEY_free(fx.ed25519);
	return 0;
}

/* A request for key with the subjectAltName san (in openssl's config syntax) or none. */
static X509_REQ *make_req(EVP_PKEY *key, const char *san, const EVP_MD *md)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts;
	X509_EXTENSION *ext;
	X509V3_CTX ctx;

	assert_non_null(req);
	assert_true(X509_REQ_set_version(req, X509_REQ_VERSION_1));
	/* A subject that looks like an identity: it must be ignored, never copied. */
	assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	                                       (const unsigned char *)DB_ID, -1, -1, 0));
	assert_true(X509_REQ_set_pubkey(req, key));
	if (san != NULL) {
		X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		exts = sk_X509_EXTENSION_new_null();
		assert_non_null(exts);
		assert_true(sk_X509_EXTENSION_push(exts, ext));
		assert_true(X509_REQ_add_extensions(req, exts));
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	assert_true(X509_REQ_sign(req, key, md) > 0);
	return req;
}

static char *req_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	assert_true(PEM_write_bio_X509_REQ(bio, req));
	n = BIO_get_mem_data(bio, &data);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	BIO_free(bio);
	return s;
}

/* Makes a request, writes it as PEM, parses it back with csr_parse and checks it. */
static int round_trip(EVP_PKEY *key, const char *san, const EVP_MD *md, struct csr_info *info,
                      struct err *e)
{
	X509_REQ *req = make_req(key, san, md);
	struct csr *back;
	char *pem = req_pem(req);
	int rc;

	memset(e, 0, sizeof(*e));
	back = csr_parse(pem, strlen(pem), e);
	if (back == NULL)
		fail_msg("csr_parse: %s (%s)", e->msg, err_name(e->code));
	rc = csr_check(back, &fx.web, info, e);
	assert_no_openssl_errors();
	csr_free(back);
	X509_REQ_free(req);
	free(pem);
	return rc;
}

static void expect(EVP_PKEY *key, const char *san, const EVP_MD *md, int code, const char *msg)
{
	struct csr_info info;
	struct err e;
	int rc = round_trip(key, san, md, &info, &e);

	if (rc != code)
		fail_msg("got %s (%s), want %s", err_name(rc), e.msg, err_name(code));
	if (code != 0) {
		assert_int_equal(e.code, code);
		assert_contains(e.msg, msg);
	} else {
		assert_string_equal(info.key_desc, msg);
	}
}

/* Keys */

static void test_allowed_keys(void **state)
{
	(void)state;
	expect(fx.p256, NULL, EVP_sha256(), 0, "ec-p256");
	expect(fx.p384, NULL, EVP_sha384(), 0, "ec-p384");
	expect(fx.rsa2048, NULL, EVP_sha256(), 0, "rsa-2048");
	/* The digest need not match the curve; SHA-512 is fine too. */
	expect(fx.p256, NULL, EVP_sha512(), 0, "ec-p256");
}

static void test_refused_keys(void **state)
{
	static const char allowed[] = "allowed: EC P-256, EC P-384, RSA 2048 to 8192 bits";
	struct csr_info info;
	struct err e;

	(void)state;
	expect(fx.rsa1024, NULL, EVP_sha256(), ERR_CSR_KEY, "RSA-1024 key; allowed");
	expect(fx.ed25519, NULL, NULL, ERR_CSR_KEY, "Ed25519 key");
	expect(fx.p521, NULL, EVP_sha512(), ERR_CSR_KEY, "EC P-521 key");
	expect(fx.k256, NULL, EVP_sha256(), ERR_CSR_KEY, "EC secp256k1 key");
	assert_int_equal(round_trip(fx.rsa1024, NULL, EVP_sha256(), &info, &e), ERR_CSR_KEY);
	assert_string_equal(e.msg, "certificate signing request has an RSA-1024 key; allowed: "
	                           "EC P-256, EC P-384, RSA 2048 to 8192 bits");
	assert_contains(e.msg, allowed);
	assert_string_equal(info.key_desc, "");
}

static struct csr *parse_der(const unsigned char *der, int len)
{
	struct err e = { 0 };
	struct csr *c = csr_parse_der(der, (size_t)len, &e);

	if (c == NULL)
		fail_msg("csr_parse_der: %s (%s)", e.msg, err_name(e.code));
	return c;
}

/* The request OpenSSL made, as csr_parse_der reads it back. */
static struct csr *parse_req(X509_REQ *req)
{
	unsigned char *der = NULL;
	int len = i2d_X509_REQ(req, &der);
	struct csr *c;

	assert_true(len > 0);
	c = parse_der(der, len);
	OPENSSL_free(der);
	return c;
}

static void test_point_at_infinity(void **state)
{
	/*
	 * A request whose key is id-ecPublicKey on P-256 with the point 00, infinity, and the
	 * signature (r, s) = (1, 1). OpenSSL decodes the key (it cannot encode one, so the
	 * request is written out by hand); csr_check must refuse it before any signature.
	 */
	static const unsigned char der[] = {
		0x30, 0x3b, 0x30, 0x22, 0x02, 0x01, 0x00, 0x30, 0x00, 0x30, 0x19, 0x30, 0x13,
		0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
		0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x02, 0x00, 0x00, 0xa0, 0x00, 0x30,
		0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x09,
		0x00, 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01,
	};
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, sizeof(der));
	struct csr *c = parse_der(der, sizeof(der));
	struct err e = { 0 };

	(void)state;
	assert_non_null(req);
	assert_non_null(X509_REQ_get0_pubkey(req));
	assert_int_equal(csr_check(c, &fx.web, NULL, &e), ERR_CSR_KEY);
	assert_contains(e.msg, "not a valid point");
	assert_null(csr_pubkey(c));
	assert_no_openssl_errors();
	csr_free(c);
	X509_REQ_free(req);
}

/* A key BIT STRING with unused bits: no key we issue for, refused as the key (400). */
static void test_key_with_unused_bits(void **state)
{
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	unsigned char *der = NULL, *p;
	struct err e = { 0 };
	struct csr *c;
	int len;

	(void)state;
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	/* The uncompressed P-256 point: BIT STRING, 66 bytes, 0 unused bits, 0x04. */
	p = memmem(der, (size_t)len, "\x03\x42\x00\x04", 4);
	assert_non_null(p);
	p[2] = 0x01;
	c = parse_der(der, (size_t)len);
	assert_int_equal(csr_check(c, &fx.web, NULL, &e), ERR_CSR_KEY);
	assert_contains(e.msg, "unused bits");
	csr_free(c);
	OPENSSL_free(der);
	X509_REQ_free(req);
}

/* Signatures */

static void test_bad_signature(void **state)
{
	X509_REQ *req = make_req(fx.p256, "URI:" WEB_ID, EVP_sha256()), *bad;
	const unsigned char *p;
	struct csr *back;
	unsigned char *der = NULL;
	struct csr_info info;
	struct err e = { 0 };
	char *pem;
	int len;

	(void)state;
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	/* The last byte is the signature's s value: the DER stays valid, the signature not. */
	der[len - 1] ^= 0x01;
	p = der;
	bad = d2i_X509_REQ(NULL, &p, len);
	assert_non_null(bad);
	pem = req_pem(bad);
	X509_REQ_free(bad);
	back = csr_parse(pem, strlen(pem), &e);
	assert_non_null(back);
	assert_int_equal(csr_check(back, &fx.web, &info, &e), ERR_CSR_SIGNATURE);
	assert_int_equal(e.code, ERR_CSR_SIGNATURE);
	assert_contains(e.msg, "does not verify");
	/* The key was fine, and the audit log may say which it was. */
	assert_string_equal(info.key_desc, "ec-p256");
	assert_no_openssl_errors();
	csr_free(back);
	free(pem);
	OPENSSL_free(der);
	X509_REQ_free(req);
}

static void test_signed_with_another_key(void **state)
{
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	struct err e = { 0 };

	(void)state;
	/* Signed by one key, claiming another: no proof of possession. */
	struct csr *c;

	assert_true(X509_REQ_set_pubkey(req, fx.p384));
	c = parse_req(req);
	assert_int_equal(csr_check(c, &fx.web, NULL, &e), ERR_CSR_SIGNATURE);
	assert_no_openssl_errors();
	csr_free(c);
	X509_REQ_free(req);
}

static void test_weak_digest(void **state)
{
	(void)state;
	expect(fx.p256, NULL, EVP_sha1(), ERR_CSR_SIGNATURE, "signed with SHA1");
	expect(fx.rsa2048, NULL, EVP_sha224(), ERR_CSR_SIGNATURE, "signed with SHA224");
}

/* Identities */

static void test_same_identity(void **state)
{
	(void)state;
	expect(fx.p256, NULL, EVP_sha256(), 0, "ec-p256");
	expect(fx.p256, "URI:" WEB_ID, EVP_sha256(), 0, "ec-p256");
	expect(fx.rsa2048, "critical,URI:" WEB_ID, EVP_sha256(), 0, "rsa-2048");
}

static void test_other_identity(void **state)
{
	(void)state;
	expect(fx.p256, "URI:" DB_ID, EVP_sha256(), ERR_CSR_IDENTITY,
	       "asks for the identity \"" DB_ID "\", but the caller is " WEB_ID);
	expect(fx.p256, "URI:spiffe://other.org/ns/default/sa/web", EVP_sha256(), ERR_CSR_IDENTITY,
	       "spiffe://other.org/ns/default/sa/web");
	/* Case, a trailing slash, another scheme: byte for byte or not at all. */
	expect(fx.p256, "URI:spiffe://example.org/ns/default/sa/Web", EVP_sha256(),
	       ERR_CSR_IDENTITY, "identity");
	expect(fx.p256, "URI:" WEB_ID "/", EVP_sha256(), ERR_CSR_IDENTITY, "identity");
	expect(fx.p256, "URI:https://example.org/ns/default/sa/web", EVP_sha256(), ERR_CSR_IDENTITY,
	       "identity");
}

static void test_two_uris(void **state)
{
	(void)state;
	expect(fx.p256, "URI:" WEB_ID ",URI:" DB_ID, EVP_sha256(), ERR_CSR_IDENTITY,
	       "asks for 2 URI subject alternative names");
	expect(fx.p256, "URI:" WEB_ID ",URI:" WEB_ID, EVP_sha256(), ERR_CSR_IDENTITY,
	       "asks for 2 URI");
}

static void test_other_name_types(void **state)
{
	(void)state;
	expect(fx.p256, "DNS:web.default.svc", EVP_sha256(), ERR_CSR_IDENTITY,
	       "asks for a DNS name (\"web.default.svc\")");
	expect(fx.p256, "URI:" WEB_ID ",DNS:web.default.svc", EVP_sha256(), ERR_CSR_IDENTITY,
	       "a workload certificate carries only its SPIFFE ID (" WEB_ID ")");
	expect(fx.p256, "IP:10.0.0.1", EVP_sha256(), ERR_CSR_IDENTITY, "an IP address");
	expect(fx.p256, "email:web@example.org", EVP_sha256(), ERR_CSR_IDENTITY,
	       "an email address");
}

static void test_repeated_extension_request(void **state)
{
	X509_REQ *req = make_req(fx.p256, "URI:" WEB_ID, EVP_sha256());
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, "URI:" DB_ID);
	struct err e = { 0 };
	struct csr *c;

	(void)state;
	/*
	 * A second extension request, under Microsoft's OID: OpenSSL reads only the first it
	 * finds, so the second must not slip through unseen.
	 */
	assert_non_null(ext);
	assert_true(sk_X509_EXTENSION_push(exts, ext));
	assert_true(X509_REQ_add_extensions_nid(req, exts, NID_ms_ext_req));
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	assert_true(X509_REQ_sign(req, fx.p256, EVP_sha256()) > 0);
	c = parse_req(req);
	assert_int_equal(csr_check(c, &fx.web, NULL, &e), ERR_CSR_MALFORMED);
	assert_contains(e.msg, "extension request is repeated");
	assert_no_openssl_errors();
	csr_free(c);
	X509_REQ_free(req);
}

static void test_check_arguments(void **state)
{
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	struct csr *c = parse_req(req);
	struct spiffe_id bad;

	(void)state;
	assert_int_equal(csr_check(NULL, &fx.web, NULL, NULL), -EINVAL);
	assert_int_equal(csr_check(c, NULL, NULL, NULL), -EINVAL);
	memset(&bad, 0, sizeof(bad));
	assert_int_equal(csr_check(c, &bad, NULL, NULL), ERR_SPIFFE_TD_EMPTY);
	/* Checked twice, the same answer and the same key. */
	assert_int_equal(csr_check(c, &fx.web, NULL, NULL), 0);
	assert_non_null(csr_pubkey(c));
	assert_int_equal(EVP_PKEY_eq(csr_pubkey(c), fx.p256), 1);
	assert_int_equal(csr_check(c, &fx.web, NULL, NULL), 0);
	assert_int_equal(EVP_PKEY_eq(csr_pubkey(c), fx.p256), 1);
	csr_free(c);
	X509_REQ_free(req);
}

/* Parsing */

static void expect_malformed(const char *text, size_t len, const char *msg)
{
	struct err e = { 0 };

	assert_null(csr_parse(text, len, &e));
	assert_int_equal(e.code, ERR_CSR_MALFORMED);
	assert_contains(e.msg, msg);
	assert_no_openssl_errors();
}

static char *cat3(const char *a, const char *b, const char *c)
{
	char *s = malloc(strlen(a) + strlen(b) + strlen(c) + 1);

	assert_non_null(s);
	strcat(strcat(strcpy(s, a), b), c);
	return s;
}

static void test_parse_labels_and_text(void **state)
{
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	struct csr *back;
	char *pem = req_pem(req), *text, *body;
	struct err e = { 0 };

	(void)state;
	/* Text around the block, as `openssl req -text` writes it. */
	text = cat3("Certificate Request:\n    Data: ...\n", pem, "trailing words\n");
	back = csr_parse(text, strlen(text), &e);
	assert_non_null(back);
	csr_free(back);
	free(text);

	/* The old "NEW CERTIFICATE REQUEST" label of Netscape and Microsoft tools. */
	body = strchr(pem, '\n') + 1;
	*strstr(body, "-----END") = '\0';
	text = cat3("-----BEGIN NEW CERTIFICATE REQUEST-----\n", body,
	            "-----END NEW CERTIFICATE REQUEST-----\n");
	back = csr_parse(text, strlen(text) - 1, &e);
	assert_non_null(back);
	assert_int_equal(csr_check(back, &fx.web, NULL, &e), 0);
	csr_free(back);
	free(text);
	assert_no_openssl_errors();
	free(pem);
	X509_REQ_free(req);
}

static void test_parse_refusals(void **state)
{
	static const char junk[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAECAwQF\n"
	                           "-----END CERTIFICATE REQUEST-----\n";
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	char *pem = req_pem(req), *two, *big, *text, *body;
	X509 *cert = X509_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *cert_pem;
	long n;

	(void)state;
	expect_malformed("", 0, "is empty");
	expect_malformed("hello, world\n", 13, "no certificate signing request found");
	expect_malformed("\n\n", 2, "no certificate signing request found");

	two = cat3(pem, "", pem);
	expect_malformed(two, strlen(two), "more than one certificate signing request");
	free(two);

	big = calloc(1, CSR_PEM_MAX + 2);
	assert_non_null(big);
	memset(big, 'A', CSR_PEM_MAX + 1);
	expect_malformed(big, CSR_PEM_MAX + 1, "the limit is 65536");
	/* The limit is on the input, not the request: a request padded past it is refused. */
	memcpy(big, pem, strlen(pem));
	expect_malformed(big, CSR_PEM_MAX + 1, "65537 bytes");
	free(big);

	/* A certificate where a request belongs. */
	assert_true(X509_set_pubkey(cert, fx.p256));
	assert_true(X509_sign(cert, fx.p256, EVP_sha256()) > 0);
	assert_true(PEM_write_bio_X509(bio, cert));
	n = BIO_get_mem_data(bio, &cert_pem);
	expect_malformed(cert_pem, (size_t)n, "PEM block 1 is a \"CERTIFICATE\"");

	/* A private key next to the request: refused rather than passed over. */
	assert_true(BIO_reset(bio));
	assert_true(PEM_write_bio_PrivateKey(bio, fx.p256, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(bio, &body);
	text = calloc(1, strlen(pem) + (size_t)n + 1);
	assert_non_null(text);
	memcpy(text, pem, strlen(pem));
	memcpy(text + strlen(pem), body, (size_t)n);
	expect_malformed(text, strlen(text), "PEM block 2 is a \"PRIVATE KEY\"");
	free(text);

	/* No END line. */
	text = strdup(pem);
	*strstr(text, "-----END") = '\0';
	expect_malformed(text, strlen(text), "PEM block 1 is damaged");
	free(text);

	/* A character outside base64. */
	text = strdup(pem);
	strchr(text, '\n')[5] = '*';
	expect_malformed(text, strlen(text), "damaged");
	free(text);

	/* A PEM header. */
	body = strchr(pem, '\n') + 1;
	text = cat3("-----BEGIN CERTIFICATE REQUEST-----\nProc-Type: 4,ENCRYPTED\n\n", body, "");
	expect_malformed(text, strlen(text), "PEM block 1 has headers");
	free(text);

	/* Valid base64 of something that is not a request. */
	expect_malformed(junk, sizeof(junk) - 1, "not a PKCS#10 request");
	BIO_free(bio);
	X509_free(cert);
	free(pem);
	X509_REQ_free(req);
}

static char *pem_of_der(const unsigned char *der, int len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	assert_true(PEM_write_bio(bio, "CERTIFICATE REQUEST", "", der, len));
	n = BIO_get_mem_data(bio, &data);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	BIO_free(bio);
	return s;
}

static void test_parse_der_damage(void **state)
{
	X509_REQ *req = make_req(fx.p256, NULL, EVP_sha256());
	unsigned char *der = NULL, *longer;
	char *pem;
	int len;

	(void)state;
	len = i2d_X509_REQ(req, &der);
	assert_true(len > 0);
	/* Bytes after the request. */
	longer = malloc((size_t)len + 2);
	assert_non_null(longer);
	memcpy(longer, der, (size_t)len);
	longer[len] = 0x05;
	longer[len + 1] = 0x00;
	pem = pem_of_der(longer, len + 2);
	expect_malformed(pem, strlen(pem), "2 extra bytes follow it");
	free(pem);
	/* Cut short. */
	pem = pem_of_der(der, len - 10);
	expect_malformed(pem, strlen(pem), "not a PKCS#10 request");
	free(pem);
	free(longer);
	OPENSSL_free(der);
	X509_REQ_free(req);
}

static void test_parse_null(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_null(csr_parse(NULL, 5, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_null(csr_parse(NULL, 0, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_keys),
		cmocka_unit_test(test_refused_keys),
		cmocka_unit_test(test_point_at_infinity),
		cmocka_unit_test(test_key_with_unused_bits),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_signed_with_another_key),
		cmocka_unit_test(test_weak_digest),
		cmocka_unit_test(test_same_identity),
		cmocka_unit_test(test_other_identity),
		cmocka_unit_test(test_two_uris),
		cmocka_unit_test(test_other_name_types),
		cmocka_unit_test(test_repeated_extension_request),
		cmocka_unit_test(test_check_arguments),
		cmocka_unit_test(test_parse_labels_and_text),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_der_damage),
		cmocka_unit_test(test_parse_null),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
