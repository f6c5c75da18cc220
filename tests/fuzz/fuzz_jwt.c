/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/jwt.c: tokens, JWKS documents, and claims signed on the fly. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "meshlet/base64.h"
#include "meshlet/err.h"
#include "meshlet/jwt.h"

/*
 * A fixed key set, generated once with jwt_mint and jwks_from_key: an RSA-2048 key and an
 * EC P-256 key. Two tokens they signed (exp in 2126) must verify at start-up. The EC private
 * key, a test key used nowhere else, signs fuzzed claims so that the claim checks are reached.
 */
static const char fuzz_jwks[] =
    "{\"keys\":[{\"use\":\"sig\",\"kty\":\"RSA\",\"kid\":\"BOH3Ld2Zd4SCJ1YbWkW_1KSTfoH5_DL"
    "0R6le0Zg-ynY\",\"alg\":\"RS256\",\"n\":\"jiACr-68VEH7y6Jw4i07BPF4eea2SMwZqMau78P"
    "p4DTInZTNTvaJIzSYyi36tNwkzsJpNZbWmzF2imAJlcSXuobij3k3L6U7LdfaPyAlQThLD9w"
    "xnwba5a1rCCEKvg4XsgT0pvY37-Y5Oa1lkDuc81k9vgtydfVaehfxef4dDF24GMzBQWMqrBC"
    "YfhBn0k-O9VDbaDyHR0UFo-a_hO6jE1tMwO6KwlT54iqEkfF01bnI9ljzqIQGrQE1T_CMW6Q"
    "iDvsAM3Cqb_-26w9KIKkUs9FPPaFNrT73ZqSYPquaJN8HLWGuH06Tktf6Qzj5TAWWZZwl9eH"
    "u66l4GFbwBWiLLQ\",\"e\":\"AQAB\"},{\"use\":\"sig\",\"kty\":\"EC\",\"kid\":\"T6WrX-_4GfzQ"
    "BIEn2eNBdY7XeEGZlo1Gt44yvtpSpBs\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":\"_uWfKh"
    "ZrObUXag_npnRkX6dXefjBorFv8dUX93rZT0s\",\"y\":\"QZf6yJVW9Rv33kyo1nUN1qdvjRsj"
    "y-stvplqtdKj_Y4\"}]}";

static const char valid_rs256[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkJPSDNMZDJaZDRTQ0oxWWJXa1dfMUtTVGZvSDVfREww"
    "UjZsZTBaZy15blkifQ.eyJhdWQiOlsibWVzaGxldC1jYSJdLCJleHAiOjQ5MjI5ODU2MDAsI"
    "mlhdCI6MTc2NzIyNTYwMCwiaXNzIjoiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjL"
    "mNsdXN0ZXIubG9jYWwiLCJqdGkiOiJmY2YyNTA3YS1hOGRlLTQzNmUtOGM2Ny1lODY4YWU0M"
    "DlmNWQiLCJrdWJlcm5ldGVzLmlvIjp7Im5hbWVzcGFjZSI6ImRlZmF1bHQiLCJwb2QiOnsib"
    "mFtZSI6IndlYi03ZDRiOWM4ZjUteDJ4OXoiLCJ1aWQiOiIwYjhmMGMxZS0yZDNhLTRiNWMtO"
    "WQ2ZS03ZjgwOTFhMmIzYzQifSwic2VydmljZWFjY291bnQiOnsibmFtZSI6IndlYiIsInVpZ"
    "CI6ImE0N2Q2M2Y2LTI5YTQtNGU5NS05NGE2LTM1ZTM5ZWU2ZDc3YyJ9fSwibmJmIjoxNzY3M"
    "jI1NjAwLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3ZWIifQ.YkOGzE"
    "QsA0jb4J2wiMvHcgna4qGdZCiL4vgl3ID3J00m5ug8rZsJLLp5G9rZe3g0pE3J-b48vgL0CK"
    "-zroxaSQrlAb8r4AvDrnXmYkvSYxqoBeKGfNVcmmVNevAALbXWORYz6jJUkZXGclRJMForcS"
    "OGhn8RWhrfL4NUgq_0b16r3M2FjRm4xz3BCA-MGl5DAl6omz0i94BXpV-DG5T1ohwvQjeh1S"
    "gH9pEclrBuGf81NAC9Sk5jh1GmOXCBy_ROAikbjoIbTeu3zQjvdrpYzozVXWtSmLQn4UV0pJ"
    "rruS1c4VxAAiZfvPKAnpQ9dFyydRdfdxMO7Isv35gpdcweVQ";

static const char valid_es256[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6IlQ2V3JYLV80R2Z6UUJJRW4yZU5CZFk3WGVFR1psbzFH"
    "dDQ0eXZ0cFNwQnMifQ.eyJhdWQiOlsibWVzaGxldC1jYSJdLCJleHAiOjQ5MjI5ODU2MDAsI"
    "mlhdCI6MTc2NzIyNTYwMCwiaXNzIjoiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjL"
    "mNsdXN0ZXIubG9jYWwiLCJqdGkiOiJjOTBjNDEyNC03MjczLTQ0MTItODc2Mi00OGFkODViZ"
    "TE1NjUiLCJrdWJlcm5ldGVzLmlvIjp7Im5hbWVzcGFjZSI6ImRlZmF1bHQiLCJzZXJ2aWNlY"
    "WNjb3VudCI6eyJuYW1lIjoid2ViIiwidWlkIjoiYTQ3ZDYzZjYtMjlhNC00ZTk1LTk0YTYtM"
    "zVlMzllZTZkNzdjIn19LCJuYmYiOjE3NjcyMjU2MDAsInN1YiI6InN5c3RlbTpzZXJ2aWNlY"
    "WNjb3VudDpkZWZhdWx0OndlYiJ9.SNvMbAM57_QcKrSeH9FPQSat8bkWscd-TTBMjabUqKxB"
    "3tUmS-STgUl652cliFSs7J94ZvkJBZ9kVeSpWoG4jw";

static const char ec_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc8JkJHoF/0ck6CqI\n"
    "DBy8Jnp91rXEFJX90R0N+hhhFs2hRANCAAT+5Z8qFms5tRdqD+emdGRfp1d5+MGi\n"
    "sW/x1Rf3etlPS0GX+siVVvUb995MqNZ1Ddanb40bI8vrLb6ZarXSo/2O\n"
    "-----END PRIVATE KEY-----\n";

#define NOW  1767225600 /* 2026-01-01T00:00:00Z */
#define SKEW 60

static struct jwks *keys;
static EVP_PKEY *ec_key;
static char *es256_header; /* base64url of {"alg":"ES256","kid":<the EC key's>} */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int rc, const struct err *e)
{
	fprintf(stderr, "fuzz_jwt: %s: %s (%s)\n", what, err_name(rc), e != NULL ? e->msg : "");
	abort();
}

static const struct jwt_verify_opts opts = {
	.issuer = "https://kubernetes.default.svc.cluster.local",
	.audience = "meshlet-ca",
	.now = NOW,
	.skew = SKEW,
};

/* jwt_verify's result must be one of its documented codes, and a success must make sense. */
static void check_result(int rc, const struct jwt_identity *id, const struct err *e)
{
	switch (rc) {
	case 0:
		if (id->namespace_[0] == '\0' || strlen(id->namespace_) > 63 ||
		    id->service_account[0] == '\0' || strlen(id->service_account) > 253 ||
		    (id->pod_name[0] == '\0') != (id->pod_uid[0] == '\0') || id->exp <= NOW - SKEW)
			fail("accepted a token with an impossible identity", rc, e);
		return;
	case ERR_JWT_MALFORMED:
	case ERR_JWT_ALG_NONE:
	case ERR_JWT_ALG_HMAC:
	case ERR_JWT_ALG_UNSUPPORTED:
	case ERR_JWT_UNKNOWN_KID:
	case ERR_JWT_SIGNATURE:
	case ERR_JWT_EXPIRED:
	case ERR_JWT_NOT_YET_VALID:
	case ERR_JWT_ISSUER:
	case ERR_JWT_AUDIENCE:
	case ERR_JWT_NO_IDENTITY:
	case -ENOMEM:
		if (e->code != rc || e->msg[0] == '\0')
			fail("error without its message", rc, e);
		return;
	default:
		fail("undocumented result", rc, e);
	}
}

static int verify(const char *tok, size_t len, const struct jwks *k, struct jwt_identity *id)
{
	struct err e = { 0 };
	int rc = jwt_verify(tok, len, k, &opts, id, &e);

	check_result(rc, id, &e);
	return rc;
}

/* Signs "<es256_header>.<base64url of claims>" with the EC key: a raw r||s JWS. */
static char *sign_claims(const uint8_t *claims, size_t size)
{
	char *p64 = base64_encode_alloc(claims, size, BASE64_URL), *input = NULL, *s64, *tok = NULL;
	unsigned char der[80], raw[64];
	const unsigned char *q = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;

	if (p64 == NULL || ctx == NULL || asprintf(&input, "%s.%s", es256_header, p64) < 0)
		abort();
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec_key) != 1 ||
	    EVP_DigestSign(ctx, der, &der_len, (unsigned char *)input, strlen(input)) != 1 ||
	    (sig = d2i_ECDSA_SIG(NULL, &q, (long)der_len)) == NULL ||
	    BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32)
		abort();
	s64 = base64_encode_alloc(raw, sizeof(raw), BASE64_URL);
	if (s64 == NULL || asprintf(&tok, "%s.%s", input, s64) < 0)
		abort();
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	free(p64);
	free(input);
	free(s64);
	return tok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct jwt_identity id;
	struct err e = { 0 };
	char kid[JWT_KID_SIZE], *hdr = NULL;
	BIO *bio = BIO_new_mem_buf(ec_key_pem, -1);

	(void)argc;
	(void)argv;
	keys = jwks_parse(fuzz_jwks, strlen(fuzz_jwks), &e);
	if (keys == NULL || jwks_count(keys) != 2)
		fail("the embedded JWKS does not parse", e.code, &e);
	if (verify(valid_rs256, strlen(valid_rs256), keys, &id) != 0 ||
	    strcmp(id.pod_name, "web-7d4b9c8f5-x2x9z") != 0 ||
	    verify(valid_es256, strlen(valid_es256), keys, &id) != 0 ||
	    strcmp(id.service_account, "web") != 0)
		fail("an embedded valid token does not verify", 0, NULL);
	ec_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (ec_key == NULL || jwt_kid(ec_key, kid, sizeof(kid)) != 0 ||
	    asprintf(&hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid) < 0 ||
	    (es256_header = base64_encode_alloc(hdr, strlen(hdr), BASE64_URL)) == NULL)
		fail("cannot set up the EC key", 0, NULL);
	free(hdr);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_identity id;
	struct err e = { 0 };
	struct jwks *k;
	char *tok;

	/* The input as a token. */
	verify((const char *)data, size, keys, &id);

	/* The input as a JWKS; a key set that parses must verify (or refuse) cleanly. */
	k = jwks_parse((const char *)data, size, &e);
	if (k != NULL) {
		if (jwks_count(k) == 0)
			fail("an empty key set parsed", 0, NULL);
		verify(valid_es256, strlen(valid_es256), k, &id);
		verify(valid_rs256, strlen(valid_rs256), k, &id);
		jwks_free(k);
	} else if (e.code != ERR_JWKS_MALFORMED && e.code != -ENOMEM) {
		fail("jwks_parse: undocumented result", e.code, &e);
	}

	/* The input as the claims of a token that the trusted EC key signed. */
	if (size <= 4096) {
		tok = sign_claims(data, size);
		verify(tok, strlen(tok), keys, &id);
		free(tok);
	}
	return 0;
}
