/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/jwt.c: keys made at run time, tokens minted and built by hand, every refusal. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "meshlet/base64.h"
#include "meshlet/jwt.h"

#define ISS  "https://kubernetes.default.svc.cluster.local"
#define AUD  "meshlet-ca"
#define NOW  1767225600 /* 2026-01-01T00:00:00Z */
#define SKEW 60

/* A fixed P-256 key (PEM, uncompressed and compressed) and RSA key, with the kid that Python
 * computed for them as Kubernetes does: urlsafe_b64encode(sha256(DER SPKI)) without '='. */
static const char kat_ec_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExBA6spiljc4zsX6HEsSIXAI6tvxt\n"
    "BpHBupjlE53lonn3IELgJFgZ6k2TltOZ9QQjidm9+sIvzKESmnae/YnRIw==\n"
    "-----END PUBLIC KEY-----\n";
static const char kat_ec_compressed_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgADxBA6spiljc4zsX6HEsSIXAI6tvxt\n"
    "BpHBupjlE53lonk=\n"
    "-----END PUBLIC KEY-----\n";
static const char kat_ec_kid[] = "vPT9AULsmA-RJbrBRh7eb8ev7x2f9aHXqIovg4y6XBM";
static const char kat_rsa_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA7VfKSWtTjtt63thMZfZR\n"
    "YmS7TJ87tOQ5O/5OD3772YO6f6syWPd4/1zeaho/AgNAxGL4+esmZNf95Ss1MvYc\n"
    "OhzEBGhS6vcxig6IYajpGCmwEScQNgrfbOMJHsY5HnQmbUaymmCQfY00CYfh37r0\n"
    "xOQ9VnD3cgM7hepMAaAwTI/aEuvJ8Jkxm7DQR38sr0bRz7Omc/l6z/Q+8BasBVTB\n"
    "nesaWToO5ut2XIitIDEB26UzZLGJYKoCD5csmLqHSs+NQlh7j3bFMCAHa7MsuwaY\n"
    "Gu0er4P2Xa1lBIOnGuGn+VE5Xr4lpxQuwKWSGe0PPu8eZ4o3jnbW7ssJ9G0rzBCC\n"
    "xQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char kat_rsa_kid[] = "j-HDidGQ78iKBdUBkg09s4ZbMzcyHAJHFdP0IceaxtI";

static struct {
	EVP_PKEY *rsa, *ec, *rsa2, *ec2, *rsa1024, *p384;
	char rsa_kid[JWT_KID_SIZE], ec_kid[JWT_KID_SIZE];
	struct jwks *keys; /* rsa and ec */
} fx;

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* Our functions leave OpenSSL's error queue as they found it. */
#define assert_no_openssl_errors() assert_int_equal(ERR_peek_error(), 0)

/* Helpers: base64url, JSON text, keys and tokens built by hand. */

static char *b64u(const void *data, size_t n)
{
	char *s = base64_encode_alloc(data, n, BASE64_URL);

	assert_non_null(s);
	return s;
}

static char *b64u_str(const char *s)
{
	return b64u(s, strlen(s));
}

static char *cat(const char *a, const char *b, const char *c)
{
	char *s = malloc(strlen(a) + strlen(b) + strlen(c) + 1);

	assert_non_null(s);
	strcpy(s, a);
	strcat(s, b);
	strcat(s, c);
	return s;
}

/* Decodes base64url text in a test, where it is known to be valid. */
static char *unb64u(const char *s, size_t n, size_t *len)
{
	char *out = calloc(1, n + 1);
	size_t got = 0;

	assert_non_null(out);
	assert_int_equal(base64_decode(s, n, out, n + 1, &got, BASE64_URL), 0);
	if (len != NULL)
		*len = got;
	return out;
}

static char *json_text(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	assert_non_null(s);
	json_decref(j);
	return s;
}

static EVP_PKEY *pem_public(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);

	assert_non_null(k);
	BIO_free(bio);
	return k;
}

enum sig_form { SIG_JWS, SIG_DER, SIG_EMPTY };

/* The signature of input by key with SHA-256: PKCS#1 v1.5 for RSA; ECDSA raw r||s or DER. */
static unsigned char *sign_input(EVP_PKEY *key, const char *input, enum sig_form form, size_t *len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig, *raw;
	const unsigned char *p;
	ECDSA_SIG *es;

	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(
	    EVP_DigestSign(ctx, NULL, len, (const unsigned char *)input, strlen(input)), 1);
	sig = malloc(*len);
	assert_non_null(sig);
	assert_int_equal(EVP_DigestSign(ctx, sig, len, (const unsigned char *)input, strlen(input)),
	                 1);
	EVP_MD_CTX_free(ctx);
	if (!EVP_PKEY_is_a(key, "EC") || form == SIG_DER)
		return sig;
	p = sig;
	es = d2i_ECDSA_SIG(NULL, &p, (long)*len);
	assert_non_null(es);
	raw = malloc(64);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
	ECDSA_SIG_free(es);
	free(sig);
	*len = 64;
	return raw;
}

/* header.payload from JSON texts, then '.', then the signature by key (none if NULL). */
static char *build(const char *hdr, const char *payload, EVP_PKEY *key, enum sig_form form)
{
	char *h = b64u_str(hdr), *p = b64u_str(payload), *input = cat(h, ".", p), *s, *tok;
	unsigned char *sig = NULL;
	size_t len = 0;

	if (key != NULL && form != SIG_EMPTY)
		sig = sign_input(key, input, form, &len);
	s = b64u(sig, len);
	tok = cat(input, ".", s);
	free(h);
	free(p);
	free(input);
	free(s);
	free(sig);
	return tok;
}

static const char *kid_of(EVP_PKEY *key)
{
	return key == fx.rsa ? fx.rsa_kid : key == fx.ec ? fx.ec_kid : "other";
}

/* The header Kubernetes writes for key, as text. */
static char *header_for(EVP_PKEY *key)
{
	return json_text(json_pack(
	    "{s:s, s:s}", "alg", EVP_PKEY_is_a(key, "EC") ? "ES256" : "RS256", "kid", kid_of(key)));
}

/* The claims of a Kubernetes projected token bound to a pod, valid at NOW. */
static json_t *std_claims(void)
{
	json_t *c = json_pack(
	    "{s:[s], s:I, s:I, s:s, s:s, s:{s:s, s:{s:s, s:s}, s:{s:s, s:s}, "
	    "s:{s:s, s:s}}, s:I, s:s}",
	    "aud", AUD, "exp", (json_int_t)NOW + 3600, "iat", (json_int_t)NOW, "iss", ISS, "jti",
	    "6f4e3ad0-5c62-4a39-9b1d-3c2d4e5f6a7b", "kubernetes.io", "namespace", "default", "node",
	    "name", "node-1", "uid", "2d1e0c5f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", "pod", "name",
	    "web-7d4b9c8f5-x2x9z", "uid", "0b8f0c1e-2d3a-4b5c-9d6e-7f8091a2b3c4", "serviceaccount",
	    "name", "web", "uid", "a47d63f6-29a4-4e95-94a6-35e39ee6d77c", "nbf", (json_int_t)NOW,
	    "sub", "system:serviceaccount:default:web");

	assert_non_null(c);
	return c;
}

/* A token signed by key with its Kubernetes header and the given claims (consumed). */
static char *token_with(EVP_PKEY *key, json_t *claims)
{
	char *h = header_for(key), *p = json_text(claims), *tok = build(h, p, key, SIG_JWS);

	free(h);
	free(p);
	return tok;
}

/* std_claims with one claim set (v consumed) or removed (v NULL), signed by fx.rsa. */
static char *token_claim(const char *name, json_t *v)
{
	json_t *c = std_claims();

	if (v != NULL)
		json_object_set_new(c, name, v);
	else
		json_object_del(c, name);
	return token_with(fx.rsa, c);
}

/* std_claims with kubernetes.io changed by a JSON Pointer-ish path of two levels. */
static char *token_k8s(const char *obj, const char *name, json_t *v)
{
	json_t *c = std_claims(), *k = json_object_get(c, "kubernetes.io");

	if (obj != NULL)
		k = json_object_get(k, obj);
	if (v != NULL)
		json_object_set_new(k, name, v);
	else
		json_object_del(k, name);
	return token_with(fx.rsa, c);
}

static struct jwt_verify_opts opts(void)
{
	return (struct jwt_verify_opts){ .issuer = ISS, .audience = AUD, .now = NOW, .skew = SKEW };
}

/* Verifies tok against keys and checks the code; the message must not quote the token. */
static void expect_with(const struct jwks *keys, const char *tok, size_t len, int want,
                        const char *msg_part)
{
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;
	struct err e = { 0 };
	const char *dot;
	int rc;

	memset(&id, 0x5a, sizeof(id));
	rc = jwt_verify(tok, len, keys, &o, &id, &e);
	if (rc != want)
		fail_msg("jwt_verify: got %s (%s), want %s", err_name(rc), e.msg, err_name(want));
	if (want != 0) {
		assert_int_equal(e.code, want);
		assert_true(e.msg[0] != '\0');
		if (msg_part != NULL)
			assert_contains(e.msg, msg_part);
		/* *out is untouched on failure. */
		assert_int_equal((unsigned char)id.namespace_[0], 0x5a);
		/* Neither the payload nor the signature appears in the message. */
		dot = memchr(tok, '.', len);
		if (dot != NULL && strlen(dot + 1) > 16) {
			char part[17];

			memcpy(part, dot + 1, 16);
			part[16] = '\0';
			assert_null(strstr(e.msg, part));
		}
		dot = tok + len;
		while (dot > tok && dot[-1] != '.')
			dot--;
		if (tok + len - dot > 16)
			assert_null(strstr(e.msg, dot));
	}
	assert_no_openssl_errors();
}

static void expect(const char *tok, int want, const char *msg_part)
{
	expect_with(fx.keys, tok, strlen(tok), want, msg_part);
}

/* expect, then free tok. */
static void expect_free(char *tok, int want, const char *msg_part)
{
	expect(tok, want, msg_part);
	free(tok);
}

static struct jwt_identity verify_ok(const struct jwks *keys, const char *tok)
{
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;
	struct err e = { 0 };
	int rc = jwt_verify(tok, strlen(tok), keys, &o, &id, &e);

	if (rc != 0)
		fail_msg("jwt_verify: %s (%s)", err_name(rc), e.msg);
	assert_no_openssl_errors();
	return id;
}

/* A JWKS document with the keys of jwks_from_key for each key, in order. */
static char *jwks_text(EVP_PKEY *const *keys, size_t n)
{
	json_t *all = json_array(), *doc;
	struct err e = { 0 };
	char *one;

	for (size_t i = 0; i < n; i++) {
		one = jwks_from_key(keys[i], &e);
		assert_non_null(one);
		doc = json_loads(one, 0, NULL);
		assert_non_null(doc);
		json_array_extend(all, json_object_get(doc, "keys"));
		json_decref(doc);
		free(one);
	}
	return json_text(json_pack("{s:o}", "keys", all));
}

static struct jwks *parse_ok(const char *text)
{
	struct err e = { 0 };
	struct jwks *k = jwks_parse(text, strlen(text), &e);

	if (k == NULL)
		fail_msg("jwks_parse: %s (%s)", e.msg, err_name(e.code));
	assert_no_openssl_errors();
	return k;
}

static void parse_fails(const char *text, const char *msg_part)
{
	struct err e = { 0 };
	struct jwks *k = jwks_parse(text, strlen(text), &e);

	if (k != NULL)
		fail_msg("jwks_parse accepted %s", text);
	assert_int_equal(e.code, ERR_JWKS_MALFORMED);
	if (msg_part != NULL)
		assert_contains(e.msg, msg_part);
	assert_no_openssl_errors();
}

/* One JWK of key as a JSON object (new reference), from jwks_from_key. */
static json_t *jwk_of(EVP_PKEY *key)
{
	char *text = jwks_from_key(key, NULL);
	json_t *doc, *k;

	assert_non_null(text);
	doc = json_loads(text, 0, NULL);
	k = json_incref(json_array_get(json_object_get(doc, "keys"), 0));
	json_decref(doc);
	free(text);
	return k;
}

/* A JWKS of JWK objects (consumed), as text. */
static char *jwks_of(json_t *a, json_t *b)
{
	json_t *arr = json_array();

	json_array_append_new(arr, a);
	if (b != NULL)
		json_array_append_new(arr, b);
	return json_text(json_pack("{s:o}", "keys", arr));
}

/* The numbers of an RSA key as a JWK, built here rather than by jwks_from_key. */
static json_t *rsa_jwk_by_hand(EVP_PKEY *key, const char *kid)
{
	BIGNUM *n = NULL, *e = NULL;
	unsigned char nb[2048], eb[16];
	int nl, el;
	char *n64, *e64;
	json_t *j;

	assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n));
	assert_true(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e));
	nl = BN_bn2bin(n, nb);
	el = BN_bn2bin(e, eb);
	n64 = b64u(nb, (size_t)nl);
	e64 = b64u(eb, (size_t)el);
	j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "n", n64, "e", e64);
	free(n64);
	free(e64);
	BN_free(n);
	BN_free(e);
	return j;
}

static int setup(void **state)
{
	EVP_PKEY *both[2];
	char *text;

	(void)state;
	fx.rsa = EVP_RSA_gen(2048);
	fx.ec = EVP_EC_gen("P-256");
	fx.rsa2 = EVP_RSA_gen(2048);
	fx.ec2 = EVP_EC_gen("P-256");
	fx.rsa1024 = EVP_RSA_gen(1024);
	fx.p384 = EVP_EC_gen("P-384");
	if (fx.rsa == NULL || fx.ec == NULL || fx.rsa2 == NULL || fx.ec2 == NULL ||
	    fx.rsa1024 == NULL || fx.p384 == NULL)
		return -1;
	if (jwt_kid(fx.rsa, fx.rsa_kid, sizeof(fx.rsa_kid)) != 0 ||
	    jwt_kid(fx.ec, fx.ec_kid, sizeof(fx.ec_kid)) != 0)
		return -1;
	both[0] = fx.rsa;
	both[1] = fx.ec;
	text = jwks_text(both, 2);
	fx.keys = jwks_parse(text, strlen(text), NULL);
	free(text);
	return fx.keys == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	jwks_free(fx.keys);
	EVP_PKEY_free(fx.rsa);
	EVP_PKEY_free(fx.ec);
	EVP_PKEY_free(fx.rsa2);
	EVP_PKEY_free(fx.ec2);
	EVP_PKEY_free(fx.rsa1024);
	EVP_PKEY_free(fx.p384);
	return 0;
}

static char *mint(EVP_PKEY *key, const char *pod)
{
	struct jwt_mint m = { .issuer = ISS,
		              .audience = AUD,
		              .namespace_ = "default",
		              .service_account = "web",
		              .pod_name = pod,
		              .now = NOW,
		              .ttl = 3600 };
	struct err e = { 0 };
	char *tok = jwt_mint(key, &m, &e);

	if (tok == NULL)
		fail_msg("jwt_mint: %s (%s)", e.msg, err_name(e.code));
	assert_no_openssl_errors();
	return tok;
}

/* Minting and the round trip */

static void test_mint_verify_rsa_and_ec(void **state)
{
	EVP_PKEY *keys[2] = { fx.rsa, fx.ec };

	(void)state;
	for (int i = 0; i < 2; i++) {
		char *tok = mint(keys[i], "web-0");
		struct jwt_identity id = verify_ok(fx.keys, tok);

		assert_string_equal(id.namespace_, "default");
		assert_string_equal(id.service_account, "web");
		assert_string_equal(id.pod_name, "web-0");
		assert_int_equal(strlen(id.pod_uid), 36);
		assert_int_equal(id.exp, NOW + 3600);
		free(tok);
	}
}

static void test_round_trip_own_jwks(void **state)
{
	EVP_PKEY *keys[2] = { fx.rsa, fx.ec };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct err e = { 0 };
		char *doc = jwks_from_key(keys[i], &e), *tok = mint(keys[i], NULL);
		struct jwks *k;
		struct jwt_identity id;

		assert_non_null(doc);
		k = parse_ok(doc);
		assert_int_equal(jwks_count(k), 1);
		id = verify_ok(k, tok);
		assert_string_equal(id.service_account, "web");
		assert_string_equal(id.pod_name, "");
		assert_string_equal(id.pod_uid, "");
		jwks_free(k);
		free(doc);
		free(tok);
	}
}

static void test_mint_shape(void **state)
{
	char *tok = mint(fx.ec, "web-0"), *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	char *hdr = unb64u(tok, (size_t)(d1 - tok), NULL);
	char *pl = unb64u(d1 + 1, (size_t)(d2 - d1 - 1), NULL), want_hdr[128];
	json_t *c = json_loads(pl, JSON_REJECT_DUPLICATES, NULL), *k;
	const char *jti, *sa_uid;

	(void)state;
	snprintf(want_hdr, sizeof(want_hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", fx.ec_kid);
	assert_string_equal(hdr, want_hdr);
	/* Compact and sorted, as Kubernetes writes it. */
	assert_true(strncmp(pl, "{\"aud\":[\"" AUD "\"],\"exp\":", 28) == 0);
	assert_non_null(c);
	assert_int_equal(json_object_size(c), 8);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), NOW + 3600);
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), NOW);
	assert_int_equal(json_integer_value(json_object_get(c, "nbf")), NOW);
	assert_string_equal(json_string_value(json_object_get(c, "iss")), ISS);
	assert_string_equal(json_string_value(json_object_get(c, "sub")),
	                    "system:serviceaccount:default:web");
	assert_int_equal(json_array_size(json_object_get(c, "aud")), 1);
	jti = json_string_value(json_object_get(c, "jti"));
	assert_non_null(jti);
	assert_int_equal(strlen(jti), 36);
	assert_int_equal(jti[14], '4'); /* a version 4 UUID */
	k = json_object_get(c, "kubernetes.io");
	assert_string_equal(json_string_value(json_object_get(k, "namespace")), "default");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(k, "serviceaccount"), "name")),
	    "web");
	sa_uid = json_string_value(json_object_get(json_object_get(k, "serviceaccount"), "uid"));
	assert_non_null(sa_uid);
	assert_int_equal(strlen(sa_uid), 36);
	assert_string_equal(json_string_value(json_object_get(json_object_get(k, "pod"), "name")),
	                    "web-0");
	assert_int_equal(strlen(d2 + 1), 86); /* 64 bytes of r||s */
	json_decref(c);
	free(hdr);
	free(pl);
	free(tok);

	/* Without a pod, no "pod"; given uids are used as they are. */
	{
		struct jwt_mint m = { .issuer = ISS,
			              .audience = AUD,
			              .namespace_ = "kube-system",
			              .service_account = "coredns",
			              .sa_uid = "1234",
			              .now = NOW,
			              .ttl = 600 };

		tok = jwt_mint(fx.rsa, &m, NULL);
		assert_non_null(tok);
		d1 = strchr(tok, '.');
		d2 = strchr(d1 + 1, '.');
		pl = unb64u(d1 + 1, (size_t)(d2 - d1 - 1), NULL);
		assert_contains(pl, "\"kubernetes.io\":{\"namespace\":\"kube-system\","
		                    "\"serviceaccount\":{\"name\":\"coredns\",\"uid\":\"1234\"}}");
		assert_null(strstr(pl, "pod"));
		free(pl);
		free(tok);
	}
}

static void test_mint_errors(void **state)
{
	struct jwt_mint m = { .issuer = ISS,
		              .audience = AUD,
		              .namespace_ = "default",
		              .service_account = "web",
		              .now = NOW,
		              .ttl = 3600 };
	struct jwt_mint bad;
	struct err e = { 0 };
	EVP_PKEY *pub = pem_public(kat_rsa_pem);

	(void)state;
	bad = m;
	bad.namespace_ = "Default";
	assert_null(jwt_mint(fx.rsa, &bad, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_contains(e.msg, "namespace");
	bad = m;
	bad.service_account = "a_b";
	assert_null(jwt_mint(fx.rsa, &bad, &e));
	assert_int_equal(e.code, -EINVAL);
	bad = m;
	bad.ttl = 0;
	assert_null(jwt_mint(fx.rsa, &bad, &e));
	assert_int_equal(e.code, -EINVAL);
	bad = m;
	bad.issuer = "";
	assert_null(jwt_mint(fx.rsa, &bad, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_null(jwt_mint(fx.rsa, NULL, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_null(jwt_mint(NULL, &m, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_null(jwt_mint(fx.p384, &m, &e));
	assert_int_equal(e.code, ERR_JWT_ALG_UNSUPPORTED);
	assert_contains(e.msg, "P-256");
	assert_null(jwt_mint(fx.rsa1024, &m, &e));
	assert_int_equal(e.code, ERR_JWT_ALG_UNSUPPORTED);
	assert_contains(e.msg, "1024 bits");
	/* A public key cannot sign. */
	assert_null(jwt_mint(pub, &m, &e));
	assert_int_equal(e.code, ERR_INTERNAL);
	assert_contains(e.msg, "private");
	assert_no_openssl_errors();
	EVP_PKEY_free(pub);
}

/* Key ids */

/* base64url of SHA-256 of i2d_PUBKEY, with OpenSSL's own base64 rather than ours. */
static void independent_kid(EVP_PKEY *key, char out[64])
{
	unsigned char *der = NULL, md[32];
	int n = i2d_PUBKEY(key, &der);

	assert_true(n > 0);
	assert_int_equal(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)out, md, 32), 44);
	assert_int_equal(out[43], '=');
	out[43] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	OPENSSL_free(der);
}

static void test_kid(void **state)
{
	EVP_PKEY *ec = pem_public(kat_ec_pem), *ecc = pem_public(kat_ec_compressed_pem);
	EVP_PKEY *rsa = pem_public(kat_rsa_pem);
	char kid[JWT_KID_SIZE], want[64];

	(void)state;
	independent_kid(fx.rsa, want);
	assert_string_equal(fx.rsa_kid, want);
	independent_kid(fx.ec, want);
	assert_string_equal(fx.ec_kid, want);
	/* Known answers from Python, for fixed keys. */
	assert_int_equal(jwt_kid(ec, kid, sizeof(kid)), 0);
	assert_string_equal(kid, kat_ec_kid);
	assert_int_equal(jwt_kid(rsa, kid, sizeof(kid)), 0);
	assert_string_equal(kid, kat_rsa_kid);
	/* A key read from a compressed point still gets Go's (uncompressed) kid. */
	assert_int_equal(jwt_kid(ecc, kid, sizeof(kid)), 0);
	assert_string_equal(kid, kat_ec_kid);
	assert_int_equal(jwt_kid(fx.rsa, kid, 43), ERR_TRUNCATED);
	assert_string_equal(kid, "");
	assert_int_equal(jwt_kid(fx.p384, kid, sizeof(kid)), ERR_JWT_ALG_UNSUPPORTED);
	assert_int_equal(jwt_kid(fx.rsa1024, kid, sizeof(kid)), ERR_JWT_ALG_UNSUPPORTED);
	assert_int_equal(jwt_kid(NULL, kid, sizeof(kid)), -EINVAL);
	assert_no_openssl_errors();
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ecc);
	EVP_PKEY_free(rsa);
}

static void test_jwks_from_key(void **state)
{
	char *text = jwks_from_key(fx.rsa, NULL), *ec_text = jwks_from_key(fx.ec, NULL);
	json_t *doc = json_loads(text, 0, NULL),
	       *k = json_array_get(json_object_get(doc, "keys"), 0);
	struct err e = { 0 };

	(void)state;
	assert_true(strncmp(text, "{\"keys\":[{\"use\":\"sig\",\"kty\":\"RSA\",\"kid\":\"", 41) ==
	            0);
	assert_string_equal(json_string_value(json_object_get(k, "kid")), fx.rsa_kid);
	assert_string_equal(json_string_value(json_object_get(k, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(k, "e")), "AQAB");
	assert_int_equal(strlen(json_string_value(json_object_get(k, "n"))), 342); /* 256 bytes */
	assert_contains(ec_text, "\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":\"");
	assert_null(jwks_from_key(fx.p384, &e));
	assert_int_equal(e.code, ERR_JWT_ALG_UNSUPPORTED);
	json_decref(doc);
	free(text);
	free(ec_text);
}

/* Times */

static void test_expired(void **state)
{
	struct jwt_identity id;
	char *tok;

	(void)state;
	expect_free(token_claim("exp", json_integer(NOW - SKEW - 1)), ERR_JWT_EXPIRED,
	            "2025-12-31T23:58:59Z");
	/* exp + skew must be after now: exactly now is expired. */
	expect_free(token_claim("exp", json_integer(NOW - SKEW)), ERR_JWT_EXPIRED, "skew 60 s");
	/* Expired, but within the skew. */
	tok = token_claim("exp", json_integer(NOW - SKEW + 1));
	id = verify_ok(fx.keys, tok);
	assert_int_equal(id.exp, NOW - SKEW + 1);
	free(tok);
	expect_free(token_claim("exp", json_integer(-1)), ERR_JWT_EXPIRED, NULL);
	expect_free(token_claim("exp", NULL), ERR_JWT_MALFORMED, "\"exp\"");
	expect_free(token_claim("exp", json_string("1767229200")), ERR_JWT_MALFORMED,
	            "claim \"exp\" is not an integer");
	expect_free(token_claim("exp", json_real(1767229200.5)), ERR_JWT_MALFORMED,
	            "claim \"exp\" is not an integer NumericDate");
	expect_free(token_claim("exp", json_null()), ERR_JWT_MALFORMED, "\"exp\"");
}

static void test_not_yet_valid(void **state)
{
	char *tok;

	(void)state;
	expect_free(token_claim("nbf", json_integer(NOW + SKEW + 1)), ERR_JWT_NOT_YET_VALID,
	            "not valid before");
	tok = token_claim("nbf", json_integer(NOW + SKEW));
	verify_ok(fx.keys, tok);
	free(tok);
	tok = token_claim("nbf", NULL);
	verify_ok(fx.keys, tok);
	free(tok);
	expect_free(token_claim("iat", json_integer(NOW + 3000)), ERR_JWT_NOT_YET_VALID,
	            "issued in the future");
	expect_free(token_claim("nbf", json_string("now")), ERR_JWT_MALFORMED, "\"nbf\"");
	expect_free(token_claim("iat", json_true()), ERR_JWT_MALFORMED, "\"iat\"");
}

/* Issuer and audience */

static void test_issuer(void **state)
{
	(void)state;
	expect_free(token_claim("iss", json_string("https://evil.example")), ERR_JWT_ISSUER,
	            "\"https://evil.example\", not \"" ISS "\"");
	expect_free(token_claim("iss", json_string(ISS "/")), ERR_JWT_ISSUER, NULL);
	expect_free(token_claim("iss", json_string("HTTPS://kubernetes.default.svc.cluster.local")),
	            ERR_JWT_ISSUER, NULL);
	expect_free(token_claim("iss", NULL), ERR_JWT_ISSUER, "missing");
	expect_free(token_claim("iss", json_pack("[s]", ISS)), ERR_JWT_MALFORMED, "\"iss\"");
}

static void test_audience(void **state)
{
	char *tok;

	(void)state;
	expect_free(token_claim("aud", json_string("vault")), ERR_JWT_AUDIENCE,
	            "\"vault\", not \"" AUD "\"");
	expect_free(token_claim("aud", json_pack("[s, s]", "vault", "api")), ERR_JWT_AUDIENCE,
	            "[\"vault\", ...] does not include \"" AUD "\"");
	expect_free(token_claim("aud", json_array()), ERR_JWT_AUDIENCE, "[]");
	expect_free(token_claim("aud", NULL), ERR_JWT_AUDIENCE, "no \"aud\"");
	expect_free(token_claim("aud", json_string(AUD "x")), ERR_JWT_AUDIENCE, NULL);
	expect_free(token_claim("aud", json_pack("[s, i]", AUD, 5)), ERR_JWT_MALFORMED,
	            "claim \"aud\" is not a string or an array of strings");
	expect_free(token_claim("aud", json_integer(5)), ERR_JWT_MALFORMED, "\"aud\"");
	tok = token_claim("aud", json_string(AUD));
	verify_ok(fx.keys, tok);
	free(tok);
	tok = token_claim("aud", json_pack("[s, s, s]", "api", AUD, "vault"));
	verify_ok(fx.keys, tok);
	free(tok);
}

/* Algorithms */

static void test_alg_none(void **state)
{
	char *payload = json_text(std_claims()), *tok, *two;

	(void)state;
	/* Unsigned: an empty signature part. */
	expect_free(build("{\"alg\":\"none\"}", payload, NULL, SIG_EMPTY), ERR_JWT_ALG_NONE,
	            "\"none\"");
	/* With some signature part, even a real one. */
	expect_free(build("{\"alg\":\"none\",\"kid\":\"x\"}", payload, fx.rsa, SIG_JWS),
	            ERR_JWT_ALG_NONE, NULL);
	expect_free(build("{\"alg\":\"None\"}", payload, NULL, SIG_EMPTY), ERR_JWT_ALG_NONE, NULL);
	expect_free(build("{\"alg\":\"NONE\"}", payload, NULL, SIG_EMPTY), ERR_JWT_ALG_NONE, NULL);
	/* Without the third part at all, it is not even a JWS. */
	tok = build("{\"alg\":\"none\"}", payload, NULL, SIG_EMPTY);
	two = strdup(tok);
	two[strlen(two) - 1] = '\0';
	expect_free(two, ERR_JWT_MALFORMED, "fewer than 3 parts");
	free(tok);
	free(payload);
}

/* The classic attack: HS256 with the verifier's public key as the HMAC secret. */
static void test_hmac_with_public_key(void **state)
{
	static const struct {
		const char *alg;
		const EVP_MD *(*md)(void);
	} algs[] = { { "HS256", EVP_sha256 }, { "HS384", EVP_sha384 }, { "HS512", EVP_sha512 } };
	char *payload = json_text(std_claims()), *pem, *hdr, *h, *p, *input, *s, *tok;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len;
	BIO *bio = BIO_new(BIO_s_mem());
	long pem_len;

	(void)state;
	assert_true(PEM_write_bio_PUBKEY(bio, fx.rsa));
	pem_len = BIO_get_mem_data(bio, &pem);
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		hdr = json_text(json_pack("{s:s, s:s}", "alg", algs[i].alg, "kid", fx.rsa_kid));
		h = b64u_str(hdr);
		p = b64u_str(payload);
		input = cat(h, ".", p);
		assert_non_null(HMAC(algs[i].md(), pem, (int)pem_len, (unsigned char *)input,
		                     strlen(input), mac, &mac_len));
		s = b64u(mac, mac_len);
		tok = cat(input, ".", s);
		expect_free(tok, ERR_JWT_ALG_HMAC, algs[i].alg);
		free(hdr);
		free(h);
		free(p);
		free(input);
		free(s);
	}
	expect_free(build("{\"alg\":\"hs256\"}", payload, NULL, SIG_EMPTY), ERR_JWT_ALG_HMAC, NULL);
	BIO_free(bio);
	free(payload);
}

static void test_alg_unsupported(void **state)
{
	static const char *const algs[] = { "RS384", "RS512", "PS256",  "ES384", "ES512",
		                            "EdDSA", "rs256", "ES256K", "",      "RS256 " };
	char *payload = json_text(std_claims()), *hdr;

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		hdr = json_text(json_pack("{s:s, s:s}", "alg", algs[i], "kid", fx.rsa_kid));
		expect_free(build(hdr, payload, fx.rsa, SIG_JWS), ERR_JWT_ALG_UNSUPPORTED,
		            "only RS256 and ES256");
		free(hdr);
	}
	expect_free(build("{\"alg\":256}", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "\"alg\" is not a string");
	expect_free(build("{\"kid\":\"x\"}", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "\"alg\" is missing");
	free(payload);
}

static void test_header_checks(void **state)
{
	char *payload = json_text(std_claims()), *hdr, *tok;

	(void)state;
	hdr = json_text(
	    json_pack("{s:s, s:s, s:[s]}", "alg", "RS256", "kid", fx.rsa_kid, "crit", "exp"));
	expect_free(build(hdr, payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "\"crit\"");
	free(hdr);
	hdr = json_text(
	    json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid", fx.rsa_kid, "typ", "at+jwt"));
	expect_free(build(hdr, payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "\"typ\"");
	free(hdr);
	hdr = json_text(
	    json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid", fx.rsa_kid, "typ", "JWT"));
	tok = build(hdr, payload, fx.rsa, SIG_JWS);
	verify_ok(fx.keys, tok);
	free(tok);
	free(hdr);
	expect_free(build("{\"alg\":\"RS256\",\"kid\":5}", payload, fx.rsa, SIG_JWS),
	            ERR_JWT_MALFORMED, "\"kid\" is not a string");
	expect_free(build("{\"alg\":\"RS256\",\"kid\":\"\"}", payload, fx.rsa, SIG_JWS),
	            ERR_JWT_MALFORMED, "\"kid\"");
	free(payload);
}

/* Keys */

static void test_unknown_kid(void **state)
{
	char *payload = json_text(std_claims()), *tok, *hdr;
	EVP_PKEY *two[2] = { fx.rsa, fx.rsa2 };
	char *text = jwks_text(two, 2);
	struct jwks *k = parse_ok(text);

	(void)state;
	expect_free(build("{\"alg\":\"RS256\",\"kid\":\"nope\"}", payload, fx.rsa, SIG_JWS),
	            ERR_JWT_UNKNOWN_KID, "\"nope\"");
	/* Another key's own kid, signed by that key. */
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "kid", "other"));
	expect_free(build(hdr, payload, fx.rsa2, SIG_JWS), ERR_JWT_UNKNOWN_KID, NULL);
	free(hdr);
	/* No kid: accepted when exactly one key has the alg's type... */
	tok = build("{\"alg\":\"RS256\"}", payload, fx.rsa, SIG_JWS);
	verify_ok(fx.keys, tok);
	/* ...and refused when there are two. */
	expect_with(k, tok, strlen(tok), ERR_JWT_UNKNOWN_KID, "2 RSA keys");
	free(tok);
	tok = build("{\"alg\":\"ES256\"}", payload, fx.ec, SIG_JWS);
	verify_ok(fx.keys, tok);
	expect_with(k, tok, strlen(tok), ERR_JWT_UNKNOWN_KID, "0 EC P-256 keys");
	free(tok);
	jwks_free(k);
	free(text);
	free(payload);
}

static void test_alg_key_mismatch(void **state)
{
	char *payload = json_text(std_claims()), *hdr;

	(void)state;
	/* ES256 naming the RSA key's kid, signed with an EC key. */
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "ES256", "kid", fx.rsa_kid));
	expect_free(build(hdr, payload, fx.ec, SIG_JWS), ERR_JWT_SIGNATURE, "is an RSA key");
	free(hdr);
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "kid", fx.ec_kid));
	expect_free(build(hdr, payload, fx.rsa, SIG_JWS), ERR_JWT_SIGNATURE, "is an EC P-256 key");
	free(hdr);
	free(payload);
}

/* Signatures */

static void test_signature_wrong_key(void **state)
{
	char *payload = json_text(std_claims()), *hdr;

	(void)state;
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "kid", fx.rsa_kid));
	expect_free(build(hdr, payload, fx.rsa2, SIG_JWS), ERR_JWT_SIGNATURE, "does not verify");
	free(hdr);
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "ES256", "kid", fx.ec_kid));
	expect_free(build(hdr, payload, fx.ec2, SIG_JWS), ERR_JWT_SIGNATURE, "does not verify");
	free(hdr);
	free(payload);
}

static void test_tampered_payload(void **state)
{
	EVP_PKEY *keys[2] = { fx.rsa, fx.ec };

	(void)state;
	for (int i = 0; i < 2; i++) {
		char *tok = mint(keys[i], NULL), *other = NULL, *d1 = strchr(tok, '.');
		char *d2 = strchr(d1 + 1, '.');
		struct jwt_mint m = { .issuer = ISS,
			              .audience = AUD,
			              .namespace_ = "kube-system",
			              .service_account = "admin",
			              .now = NOW,
			              .ttl = 3600 };
		char *mine, *od1, *od2, *forged;

		/* Another identity's payload under this token's header and signature. */
		other = jwt_mint(keys[i], &m, NULL);
		od1 = strchr(other, '.');
		od2 = strchr(od1 + 1, '.');
		*od2 = '\0';
		*d1 = '\0';
		mine = cat(tok, ".", od1 + 1);
		forged = cat(mine, d2, "");
		*d1 = '.';
		expect_free(forged, ERR_JWT_SIGNATURE, "does not verify");
		free(mine);
		/* One changed byte in the payload: "default" becomes "defaulu". */
		{
			char *pl = unb64u(d1 + 1, (size_t)(d2 - d1 - 1), NULL), *at, *p64, *h;

			at = strstr(pl, "\"default\"");
			assert_non_null(at);
			at[7] = 'u';
			p64 = b64u_str(pl);
			*d1 = '\0';
			h = cat(tok, ".", p64);
			*d1 = '.';
			expect_free(cat(h, d2, ""), ERR_JWT_SIGNATURE, "does not verify");
			free(h);
			free(p64);
			free(pl);
		}
		free(other);
		free(tok);
	}
}

static void test_tampered_signature(void **state)
{
	EVP_PKEY *keys[2] = { fx.rsa, fx.ec };

	(void)state;
	for (int i = 0; i < 2; i++) {
		char *tok = mint(keys[i], NULL), *sig = strrchr(tok, '.') + 1;

		sig[10] = sig[10] == 'A' ? 'B' : 'A';
		expect(tok, ERR_JWT_SIGNATURE, "does not verify");
		free(tok);
	}
}

static void test_signature_lengths(void **state)
{
	char *payload = json_text(std_claims()), *hdr = header_for(fx.ec), *tok, *s, *cut;
	unsigned char sig[512] = { 1 };

	(void)state;
	/* ES256 with the DER signature OpenSSL makes, not the raw r||s of JWS. */
	expect_free(build(hdr, payload, fx.ec, SIG_DER), ERR_JWT_SIGNATURE, "raw r||s");
	/* Raw lengths around 64, and an empty signature. */
	tok = build(hdr, payload, fx.ec, SIG_JWS);
	*strrchr(tok, '.') = '\0';
	for (size_t n = 0; n <= 66; n += 1) {
		if (n == 64)
			continue;
		s = b64u(sig, n);
		cut = cat(tok, ".", s);
		expect_free(cut, ERR_JWT_SIGNATURE, n == 0 ? "0 bytes" : NULL);
		free(s);
	}
	/* All zero r and s, of the right length. */
	memset(sig, 0, 64);
	s = b64u(sig, 64);
	expect_free(cat(tok, ".", s), ERR_JWT_SIGNATURE, "does not verify");
	free(s);
	free(tok);
	free(hdr);
	/* RS256 one byte short and one too long. */
	hdr = header_for(fx.rsa);
	tok = build(hdr, payload, fx.rsa, SIG_EMPTY);
	for (size_t n = 255; n <= 257; n += 2) {
		s = b64u(sig, n);
		cut = cat(tok, s, "");
		expect_free(cut, ERR_JWT_SIGNATURE, "needs 256");
		free(s);
	}
	free(tok);
	free(hdr);
	free(payload);
}

/* Structure */

static void test_base64_strictness(void **state)
{
	char *tok = mint(fx.rsa, NULL), *bad, *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	size_t len = strlen(tok);

	(void)state;
	/* Padding: a 256-byte signature encodes to 342 characters, so "==" would complete it. */
	expect_free(cat(tok, "==", ""), ERR_JWT_MALFORMED, "padding");
	*d1 = '\0';
	bad = malloc(len + 3);
	snprintf(bad, len + 3, "%s=.%s", tok, d1 + 1);
	*d1 = '.';
	expect_free(bad, ERR_JWT_MALFORMED, "header is not strict base64url");
	/* The standard alphabet's '+' and '/'. */
	bad = strdup(tok);
	bad[d2 - tok + 3] = '+';
	expect_free(bad, ERR_JWT_MALFORMED, "signature is not strict base64url");
	bad = strdup(tok);
	bad[3] = '/';
	expect_free(bad, ERR_JWT_MALFORMED, "header");
	/*
	 * Non-canonical: 256 bytes leave 4 unused low bits in the last character. Setting one
	 * gives another string for the same bytes, which must not verify as the same token.
	 */
	bad = strdup(tok);
	assert_true(strchr("AQgw", bad[len - 1]) != NULL);
	bad[len - 1] = (char)(bad[len - 1] + 1);
	expect_free(bad, ERR_JWT_MALFORMED, "trailing bits");
	/* Whitespace and line breaks. */
	expect_free(cat(tok, "\n", ""), ERR_JWT_MALFORMED, NULL);
	expect_free(cat(" ", tok, ""), ERR_JWT_MALFORMED, NULL);
	bad = strdup(tok);
	bad[10] = '\0';
	expect_with(fx.keys, bad, len, ERR_JWT_MALFORMED, NULL);
	free(bad);
	free(tok);
}

static void test_structure(void **state)
{
	char *tok = mint(fx.rsa, NULL), *big, *payload = json_text(std_claims());

	(void)state;
	expect_free(cat(tok, ".", ""), ERR_JWT_MALFORMED, "more than 3 parts");
	expect_free(cat(tok, ".abc", ""), ERR_JWT_MALFORMED, "more than 3 parts");
	expect("", ERR_JWT_MALFORMED, "0 bytes");
	expect(".", ERR_JWT_MALFORMED, "fewer than 3");
	expect("..", ERR_JWT_MALFORMED, "header is not valid JSON");
	expect("abc", ERR_JWT_MALFORMED, "fewer than 3");
	/* Huge: one byte beyond the limit is refused before anything else. */
	big = malloc(JWT_MAX_LEN + 2);
	memset(big, 'A', JWT_MAX_LEN + 1);
	big[JWT_MAX_LEN + 1] = '\0';
	memcpy(big, tok, strlen(tok));
	expect_free(big, ERR_JWT_MALFORMED, "16385 bytes");
	/* Header and payload must be JSON objects. */
	expect_free(build("[\"RS256\"]", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "header is not a JSON object");
	expect_free(build("\"RS256\"", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "header");
	expect_free(build("{\"alg\":\"RS256\"", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "header is not valid JSON");
	expect_free(build("{\"alg\":\"RS256\"} x", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "header is not valid JSON");
	expect_free(build("{\"alg\":\"RS256\"}", "[1]", fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "payload is not a JSON object");
	expect_free(build("{\"alg\":\"RS256\"}", "\xff\xfe", fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "UTF-8");
	expect_free(build("{\"alg\":\"RS256\"}", "{\"sub\":\"a\\u0000b\"}", fx.rsa, SIG_JWS),
	            ERR_JWT_MALFORMED, "NUL");
	free(payload);
	free(tok);
}

/* tok is refused as malformed with exactly msg, which quotes nothing of it. */
static void expect_json_error(const char *tok, const char *msg)
{
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;
	struct err e = { 0 };

	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, &e), ERR_JWT_MALFORMED);
	assert_string_equal(e.msg, msg);
	assert_null(strstr(e.msg, "SECRET"));
}

/*
 * JSON errors in the header and payload: what is wrong and where, in words of our own that
 * quote nothing of the token.
 */
static void test_json_errors(void **state)
{
	char *hdr = header_for(fx.rsa), *payload = json_text(std_claims()), *h, *p, *tok;
	static const char nul_payload[] = "{\"sub\":\"x\"}\0";
	char deep[2 * 3000 + 1];

	(void)state;
	expect_free(build("{\"alg\":\"RS256\"", payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "token header is not valid JSON: ',' or '}' expected at byte 14");
	tok = build("{\"alg\":\"RS256\",\"kid\":\"SECRETVALUE\" x}", payload, fx.rsa, SIG_JWS);
	expect_json_error(tok, "token header is not valid JSON: ',' or '}' expected at byte 35");
	free(tok);
	tok = build(hdr, "{\"sub\":\"SECRETVALUE\",}", fx.rsa, SIG_JWS);
	expect_json_error(tok,
	                  "token payload is not valid JSON: string or '}' expected at byte 21");
	free(tok);
	/* Invalid UTF-8 inside a string and where a token should start. */
	expect_free(build("{\"alg\":\"RS256\",\"kid\":\"\xc3\"}", payload, fx.rsa, SIG_JWS),
	            ERR_JWT_MALFORMED, "header is not valid JSON: invalid UTF-8 at byte 22");
	expect_free(build(hdr, "{\"sub\":1,\xff}", fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "payload is not valid JSON: invalid UTF-8 at byte 9");
	/* A NUL byte, escaped or not. */
	h = b64u_str(hdr);
	p = b64u(nul_payload, sizeof(nul_payload) - 1);
	tok = cat(h, ".", p);
	free(p);
	p = tok;
	tok = cat(p, ".", "c2ln");
	free(p);
	expect_free(tok, ERR_JWT_MALFORMED,
	            "payload is not valid JSON: a NUL character at byte 11");
	expect_free(build(hdr, "{\"sub\":\"a\x01\"}", fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "control character in a string");
	/* Nesting deeper than jansson's limit is refused, not a stack overflow. */
	memset(deep, '[', 3000);
	memset(deep + 3000, ']', 3000);
	deep[6000] = '\0';
	expect_free(build(hdr, deep, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED,
	            "maximum parsing depth reached");
	/* Whitespace around the object is JSON too. */
	p = cat(" \n", payload, "\t ");
	expect_free(build(hdr, p, fx.rsa, SIG_JWS), 0, NULL);
	free(p);
	free(h);
	free(hdr);
	free(payload);
}

static void test_duplicate_keys(void **state)
{
	char *hdr = header_for(fx.rsa), *payload = json_text(std_claims()), *dup;

	(void)state;
	/* A second exp after the first: some parsers keep the last one. */
	payload[strlen(payload) - 1] = '\0';
	dup = cat(payload, ",\"exp\":4102444800}", "");
	expect_free(build(hdr, dup, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "duplicate key");
	free(dup);
	dup = cat(payload, ",\"sub\":\"system:serviceaccount:kube-system:admin\"}", "");
	expect_free(build(hdr, dup, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "duplicate key");
	free(dup);
	dup = cat("{\"alg\":\"RS256\",\"alg\":\"RS256\",\"kid\":\"", fx.rsa_kid, "\"}");
	payload[strlen(payload)] = '}';
	expect_free(build(dup, payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "duplicate key");
	free(dup);
	/* Nested, inside kubernetes.io. */
	expect_free(
	    build(hdr,
	          "{\"aud\":\"" AUD "\",\"exp\":1767229200,\"iss\":\"" ISS "\","
	          "\"kubernetes.io\":{\"namespace\":\"default\",\"namespace\":\"kube-system\","
	          "\"serviceaccount\":{\"name\":\"web\"}}}",
	          fx.rsa, SIG_JWS),
	    ERR_JWT_MALFORMED, "duplicate key");
	free(hdr);
	free(payload);
}

/* Identity */

static void test_identity_sources(void **state)
{
	json_t *c;
	char *tok;
	struct jwt_identity id;

	(void)state;
	/* sub only, as a token from another issuer may have. */
	c = std_claims();
	json_object_del(c, "kubernetes.io");
	tok = token_with(fx.rsa, c);
	id = verify_ok(fx.keys, tok);
	assert_string_equal(id.namespace_, "default");
	assert_string_equal(id.service_account, "web");
	assert_string_equal(id.pod_name, "");
	assert_string_equal(id.pod_uid, "");
	free(tok);
	/* kubernetes.io only. */
	tok = token_claim("sub", NULL);
	id = verify_ok(fx.keys, tok);
	assert_string_equal(id.namespace_, "default");
	assert_string_equal(id.service_account, "web");
	assert_string_equal(id.pod_name, "web-7d4b9c8f5-x2x9z");
	assert_string_equal(id.pod_uid, "0b8f0c1e-2d3a-4b5c-9d6e-7f8091a2b3c4");
	assert_int_equal(id.exp, NOW + 3600);
	free(tok);
	/* Neither. */
	c = std_claims();
	json_object_del(c, "kubernetes.io");
	json_object_del(c, "sub");
	expect_free(token_with(fx.rsa, c), ERR_JWT_NO_IDENTITY, "no \"kubernetes.io\"");
	/* sub of another kind, alone. */
	c = std_claims();
	json_object_del(c, "kubernetes.io");
	json_object_set_new(c, "sub", json_string("system:node:node-1"));
	expect_free(token_with(fx.rsa, c), ERR_JWT_NO_IDENTITY, "system:node:node-1");
	/* No pod: names only. */
	tok = token_k8s(NULL, "pod", NULL);
	id = verify_ok(fx.keys, tok);
	assert_string_equal(id.pod_name, "");
	free(tok);
	/* A service account name that is a subdomain. */
	c = std_claims();
	json_object_set_new(c, "sub", json_string("system:serviceaccount:default:web.v2"));
	json_object_set_new(json_object_get(json_object_get(c, "kubernetes.io"), "serviceaccount"),
	                    "name", json_string("web.v2"));
	tok = token_with(fx.rsa, c);
	id = verify_ok(fx.keys, tok);
	assert_string_equal(id.service_account, "web.v2");
	free(tok);
}

static void test_identity_mismatch(void **state)
{
	(void)state;
	expect_free(token_claim("sub", json_string("system:serviceaccount:kube-system:web")),
	            ERR_JWT_NO_IDENTITY, "another account");
	expect_free(token_claim("sub", json_string("system:serviceaccount:default:admin")),
	            ERR_JWT_NO_IDENTITY, "another account");
	expect_free(token_claim("sub", json_string("system:serviceaccount:default:web:x")),
	            ERR_JWT_NO_IDENTITY, NULL);
	expect_free(token_claim("sub", json_string("system:serviceaccount:default")),
	            ERR_JWT_NO_IDENTITY, NULL);
	expect_free(token_claim("sub", json_string("web")), ERR_JWT_NO_IDENTITY, NULL);
	expect_free(token_claim("sub", json_integer(5)), ERR_JWT_MALFORMED, "\"sub\"");
	expect_free(token_k8s(NULL, "namespace", json_string("kube-system")), ERR_JWT_NO_IDENTITY,
	            "another account");
	expect_free(token_k8s("serviceaccount", "name", json_string("admin")), ERR_JWT_NO_IDENTITY,
	            "another account");
}

static void test_identity_bad_names(void **state)
{
	static const char *const bad_ns[] = {
		"Default",
		"-default",
		"default-",
		"de_fault",
		"a.b",
		"",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */
	};
	static const char *const bad_sa[] = {
		"Web", "web_1", "web..x", ".web", "web.", "web/x", ""
	};
	char sub[400], long_sa[256];
	json_t *c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_ns) / sizeof(bad_ns[0]); i++) {
		c = std_claims();
		snprintf(sub, sizeof(sub), "system:serviceaccount:%s:web", bad_ns[i]);
		json_object_set_new(c, "sub", json_string(sub));
		json_object_set_new(json_object_get(c, "kubernetes.io"), "namespace",
		                    json_string(bad_ns[i]));
		expect_free(token_with(fx.rsa, c), ERR_JWT_NO_IDENTITY, "not a DNS label");
	}
	for (size_t i = 0; i < sizeof(bad_sa) / sizeof(bad_sa[0]); i++) {
		c = std_claims();
		json_object_del(c, "kubernetes.io");
		snprintf(sub, sizeof(sub), "system:serviceaccount:default:%s", bad_sa[i]);
		json_object_set_new(c, "sub", json_string(sub));
		expect_free(token_with(fx.rsa, c), ERR_JWT_NO_IDENTITY, NULL);
	}
	/* 253 bytes is the limit of a subdomain. */
	for (int n = 253; n <= 254; n++) {
		memset(long_sa, 'a', (size_t)n);
		long_sa[n] = '\0';
		c = std_claims();
		json_object_del(c, "kubernetes.io");
		snprintf(sub, sizeof(sub), "system:serviceaccount:default:%s", long_sa);
		json_object_set_new(c, "sub", json_string(sub));
		if (n == 253) {
			char *tok = token_with(fx.rsa, c);

			assert_int_equal(strlen(verify_ok(fx.keys, tok).service_account), 253);
			free(tok);
		} else {
			expect_free(token_with(fx.rsa, c), ERR_JWT_NO_IDENTITY, "DNS subdomain");
		}
	}
	/* Pod binding fields. */
	expect_free(token_k8s("pod", "uid", NULL), ERR_JWT_NO_IDENTITY, "\"kubernetes.io.pod\"");
	expect_free(token_k8s("pod", "name", NULL), ERR_JWT_NO_IDENTITY, "\"kubernetes.io.pod\"");
	expect_free(token_k8s("pod", "name", json_string("Web")), ERR_JWT_NO_IDENTITY,
	            "\"kubernetes.io.pod\"");
	expect_free(token_k8s("pod", "uid", json_string("a b")), ERR_JWT_NO_IDENTITY,
	            "\"kubernetes.io.pod\"");
	/* Claims of the wrong JSON type. */
	expect_free(token_k8s("pod", "uid", json_integer(1)), ERR_JWT_MALFORMED,
	            "claim \"kubernetes.io.pod.uid\" is not a string");
	expect_free(token_k8s(NULL, "pod", json_string("web-0")), ERR_JWT_MALFORMED,
	            "claim \"kubernetes.io.pod\" is not an object");
	expect_free(token_k8s(NULL, "namespace", json_integer(1)), ERR_JWT_MALFORMED,
	            "claim \"kubernetes.io.namespace\" is not a string");
	expect_free(token_k8s("serviceaccount", "name", json_false()), ERR_JWT_MALFORMED,
	            "claim \"kubernetes.io.serviceaccount.name\" is not a string");
	expect_free(token_claim("kubernetes.io", json_string("default")), ERR_JWT_MALFORMED,
	            "claim \"kubernetes.io\" is not an object");
	/* kubernetes.io without the names. */
	expect_free(token_k8s(NULL, "namespace", NULL), ERR_JWT_NO_IDENTITY, "lacks \"namespace\"");
	expect_free(token_k8s(NULL, "serviceaccount", NULL), ERR_JWT_NO_IDENTITY,
	            "lacks \"serviceaccount.name\"");
	expect_free(token_k8s("serviceaccount", "name", NULL), ERR_JWT_NO_IDENTITY,
	            "lacks \"serviceaccount.name\"");
}

/* Claims are read only after the signature verifies. */
static void test_order_of_checks(void **state)
{
	json_t *c = std_claims();
	char *hdr = header_for(fx.rsa), *p, *tok;

	(void)state;
	json_object_set_new(c, "exp", json_string("never"));
	p = json_text(c);
	tok = build(hdr, p, fx.rsa2, SIG_JWS);
	expect_free(tok, ERR_JWT_SIGNATURE, NULL);
	/* Expired and for another audience: expiry comes first. */
	c = std_claims();
	json_object_set_new(c, "exp", json_integer(NOW - 3600));
	json_object_set_new(c, "aud", json_string("vault"));
	expect_free(token_with(fx.rsa, c), ERR_JWT_EXPIRED, NULL);
	free(hdr);
	free(p);
}

static void test_verify_bad_args(void **state)
{
	char *tok = mint(fx.rsa, NULL);
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(jwt_verify(NULL, 0, fx.keys, &o, &id, &e), -EINVAL);
	assert_int_equal(jwt_verify(tok, strlen(tok), NULL, &o, &id, &e), -EINVAL);
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, NULL, &id, &e), -EINVAL);
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, NULL, &e), -EINVAL);
	o.skew = -1;
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, &e), -EINVAL);
	o = opts();
	o.audience = "";
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, &e), -EINVAL);
	o = opts();
	o.issuer = NULL;
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, NULL), -EINVAL);
	/* A NULL struct err is fine on every path. */
	o = opts();
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, NULL), 0);
	assert_int_equal(jwt_verify("x.y.z", 5, fx.keys, &o, &id, NULL), ERR_JWT_MALFORMED);
	free(tok);
}

/* Messages quote untrusted values safely and briefly. */
static void test_message_escaping(void **state)
{
	char kid[300];
	char *hdr, *payload = json_text(std_claims());
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;
	struct err e = { 0 };
	char *tok;

	(void)state;
	memset(kid, 'k', sizeof(kid) - 1);
	kid[sizeof(kid) - 1] = '\0';
	kid[0] = '\n';
	kid[1] = '"';
	kid[100] = '\0';
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "kid", kid));
	tok = build(hdr, payload, fx.rsa, SIG_JWS);
	assert_int_equal(jwt_verify(tok, strlen(tok), fx.keys, &o, &id, &e), ERR_JWT_UNKNOWN_KID);
	assert_null(strchr(e.msg, '\n'));
	assert_contains(e.msg, "\"??kkkk");
	assert_contains(e.msg, "k...\"");
	free(tok);
	free(hdr);
	/* A kid longer than JWT_KID_MAX is malformed. */
	kid[100] = 'k';
	hdr = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "kid", kid));
	expect_free(build(hdr, payload, fx.rsa, SIG_JWS), ERR_JWT_MALFORMED, "1 to 256 bytes");
	free(hdr);
	free(payload);
}

struct thread_arg {
	const char *tok;
	int failures;
};

static void *verify_many(void *p)
{
	struct thread_arg *a = p;
	struct jwt_verify_opts o = opts();
	struct jwt_identity id;

	for (int i = 0; i < 50; i++) {
		if (jwt_verify(a->tok, strlen(a->tok), fx.keys, &o, &id, NULL) != 0)
			a->failures++;
	}
	return NULL;
}

/* One key set, many verifying threads. */
static void test_threads(void **state)
{
	char *toks[2] = { mint(fx.rsa, "web-0"), mint(fx.ec, "web-1") };
	struct thread_arg args[4];
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ .tok = toks[i % 2] };
		assert_int_equal(pthread_create(&t[i], NULL, verify_many, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	free(toks[0]);
	free(toks[1]);
}

/* JWKS parsing */

static void test_jwks_ok(void **state)
{
	EVP_PKEY *keys[4] = { fx.rsa, fx.ec, fx.rsa2, fx.ec2 };
	char *text = jwks_text(keys, 4), *t2;
	struct jwks *k = parse_ok(text);
	json_t *a, *b;

	(void)state;
	assert_int_equal(jwks_count(k), 4);
	jwks_free(k);
	free(text);
	/* Without kid, use or alg; with extra members; from a hand-built RSA JWK. */
	a = jwk_of(fx.ec);
	json_object_del(a, "kid");
	json_object_del(a, "use");
	json_object_del(a, "alg");
	json_object_set_new(a, "x5t", json_string("ignored"));
	b = rsa_jwk_by_hand(fx.rsa2, "rsa2");
	t2 = jwks_of(a, b);
	k = parse_ok(t2);
	assert_int_equal(jwks_count(k), 2);
	jwks_free(k);
	free(t2);
	assert_int_equal(jwks_count(NULL), 0);
	jwks_free(NULL);
}

static void test_jwks_refusals(void **state)
{
	json_t *a;
	char *t;

	(void)state;
	/* RSA-1024, built by hand since jwks_from_key refuses it. */
	t = jwks_of(rsa_jwk_by_hand(fx.rsa1024, "small"), jwk_of(fx.ec));
	parse_fails(t, "key 0 (kid \"small\"): RSA modulus has 1024 bits");
	free(t);
	/* A point off the curve: y changed. */
	a = jwk_of(fx.ec);
	json_object_set_new(a, "y", json_string(json_string_value(json_object_get(a, "x"))));
	t = jwks_of(jwk_of(fx.rsa), a);
	parse_fails(t, "key 1");
	parse_fails(t, "not a point on P-256");
	free(t);
	/* Duplicate kid. */
	a = jwk_of(fx.ec2);
	json_object_set_new(a, "kid", json_string(fx.ec_kid));
	t = jwks_of(jwk_of(fx.ec), a);
	parse_fails(t, "used twice");
	free(t);
	/* Private material. */
	a = jwk_of(fx.ec);
	json_object_set_new(a, "d", json_string("AAAA"));
	t = jwks_of(a, NULL);
	parse_fails(t, "private");
	free(t);
	/* Coordinates of the wrong size, modulus with a leading zero, non-canonical base64. */
	a = jwk_of(fx.ec);
	json_object_set_new(a, "x", json_string("AAAA"));
	t = jwks_of(a, NULL);
	parse_fails(t, "must be 32 bytes");
	free(t);
	a = jwk_of(fx.rsa);
	{
		const char *n64 = json_string_value(json_object_get(a, "n"));
		size_t len;
		char *n = unb64u(n64, strlen(n64), &len), *z = calloc(1, len + 1), *z64;

		memcpy(z + 1, n, len);
		z64 = b64u(z, len + 1);
		json_object_set_new(a, "n", json_string(z64));
		free(n);
		free(z);
		free(z64);
	}
	t = jwks_of(a, NULL);
	parse_fails(t, "\"n\" is empty or has a leading zero");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "e", json_string("AAEAAQ"));
	t = jwks_of(a, NULL);
	parse_fails(t, "leading zero");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "e", json_string("AQAC"));
	t = jwks_of(a, NULL);
	parse_fails(t, "RSA exponent must be odd");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "e", json_string("Aw"));
	t = jwks_of(a, NULL);
	parse_fails(t, "RSA exponent must be odd");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "e", json_string("AQAAAAE")); /* 2^32 + 1 */
	t = jwks_of(a, NULL);
	parse_fails(t, "RSA exponent must be odd");
	free(t);
	/* An even modulus: OpenSSL's check. */
	a = jwk_of(fx.rsa);
	{
		const char *n64 = json_string_value(json_object_get(a, "n"));
		size_t len;
		char *n = unb64u(n64, strlen(n64), &len), *e64;

		n[len - 1] &= (char)0xfe;
		e64 = b64u(n, len);
		json_object_set_new(a, "n", json_string(e64));
		free(n);
		free(e64);
	}
	t = jwks_of(a, NULL);
	parse_fails(t, "not a valid RSA public key");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "e", json_string("AQAB="));
	t = jwks_of(a, NULL);
	parse_fails(t, "\"e\" is not strict base64url");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "n", json_string("AQAB-"));
	t = jwks_of(a, NULL);
	parse_fails(t, "\"n\" is not strict base64url");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_del(a, "n");
	t = jwks_of(a, NULL);
	parse_fails(t, "\"n\" is missing");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_del(a, "kty");
	t = jwks_of(a, NULL);
	parse_fails(t, "\"kty\" is missing");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "kty", json_integer(1));
	t = jwks_of(a, NULL);
	parse_fails(t, "\"kty\" is not a string");
	free(t);
	a = jwk_of(fx.ec);
	json_object_del(a, "crv");
	t = jwks_of(a, NULL);
	parse_fails(t, "\"crv\" is missing");
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "kid", json_string(""));
	t = jwks_of(a, NULL);
	parse_fails(t, "\"kid\"");
	free(t);
}

static void test_jwks_skipped(void **state)
{
	json_t *a, *b;
	char *t;
	struct jwks *k;

	(void)state;
	/* P-384 is skipped; alone it leaves nothing usable. */
	a = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "kid", "p384", "x",
	              "AAAA", "y", "AAAA");
	t = jwks_of(json_deep_copy(a), jwk_of(fx.rsa));
	k = parse_ok(t);
	assert_int_equal(jwks_count(k), 1);
	jwks_free(k);
	free(t);
	t = jwks_of(a, NULL);
	parse_fails(t, "no usable key");
	free(t);
	/* use "enc", and keys for other algorithms, are skipped. */
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "use", json_string("enc"));
	b = jwk_of(fx.ec);
	t = jwks_of(a, b);
	k = parse_ok(t);
	assert_int_equal(jwks_count(k), 1);
	jwks_free(k);
	free(t);
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "alg", json_string("RS512"));
	t = jwks_of(a, NULL);
	parse_fails(t, "no usable key");
	free(t);
	a = jwk_of(fx.ec);
	json_object_set_new(a, "alg", json_string("ES384"));
	t = jwks_of(a, NULL);
	parse_fails(t, "no usable key");
	free(t);
	/* Symmetric and other key types. */
	t = jwks_of(json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0"),
	            json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", "AAAA"));
	parse_fails(t, "no usable key among its 2");
	free(t);
	/* A skipped key still takes part in the duplicate kid check. */
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "use", json_string("enc"));
	b = jwk_of(fx.rsa);
	t = jwks_of(a, b);
	parse_fails(t, "used twice");
	free(t);
	/* A token whose kid names a skipped key is an unknown kid. */
	a = jwk_of(fx.rsa);
	json_object_set_new(a, "use", json_string("enc"));
	t = jwks_of(a, jwk_of(fx.ec));
	k = parse_ok(t);
	{
		char *tok = mint(fx.rsa, NULL);

		expect_with(k, tok, strlen(tok), ERR_JWT_UNKNOWN_KID, NULL);
		free(tok);
	}
	jwks_free(k);
	free(t);
}

static void test_jwks_not_json(void **state)
{
	static const char *const bad[] = { "",
		                           "nope",
		                           "[]",
		                           "{}",
		                           "{\"keys\":5}",
		                           "{\"keys\":{}}",
		                           "{\"keys\":[]}",
		                           "{\"keys\":[5]}",
		                           "{\"keys\":[],\"keys\":[]}",
		                           "{\"keys\":[]} trailing" };
	struct err e = { 0 };
	char *big;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_fails(bad[i], NULL);
	parse_fails("{\"keys\":[5]}", "key 0 is not a JSON object");
	parse_fails("{\"keys\":[],\"keys\":[]}", "duplicate key");
	assert_null(jwks_parse(NULL, 0, &e));
	assert_int_equal(e.code, -EINVAL);
	big = calloc(1, JWKS_MAX_LEN + 2);
	memset(big, ' ', JWKS_MAX_LEN + 1);
	parse_fails(big, "at most");
	free(big);
	{
		json_t *arr = json_array();
		char *t;

		for (int i = 0; i <= JWKS_MAX_KEYS; i++)
			json_array_append_new(arr, json_pack("{s:s}", "kty", "oct"));
		t = json_text(json_pack("{s:o}", "keys", arr));
		parse_fails(t, "at most 64 keys");
		free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mint_verify_rsa_and_ec),
		cmocka_unit_test(test_round_trip_own_jwks),
		cmocka_unit_test(test_mint_shape),
		cmocka_unit_test(test_mint_errors),
		cmocka_unit_test(test_kid),
		cmocka_unit_test(test_jwks_from_key),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_hmac_with_public_key),
		cmocka_unit_test(test_alg_unsupported),
		cmocka_unit_test(test_header_checks),
		cmocka_unit_test(test_unknown_kid),
		cmocka_unit_test(test_alg_key_mismatch),
		cmocka_unit_test(test_signature_wrong_key),
		cmocka_unit_test(test_tampered_payload),
		cmocka_unit_test(test_tampered_signature),
		cmocka_unit_test(test_signature_lengths),
		cmocka_unit_test(test_base64_strictness),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_identity_sources),
		cmocka_unit_test(test_identity_mismatch),
		cmocka_unit_test(test_identity_bad_names),
		cmocka_unit_test(test_order_of_checks),
		cmocka_unit_test(test_verify_bad_args),
		cmocka_unit_test(test_message_escaping),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_jwks_ok),
		cmocka_unit_test(test_jwks_refusals),
		cmocka_unit_test(test_jwks_skipped),
		cmocka_unit_test(test_jwks_not_json),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
