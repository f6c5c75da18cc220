/* SPDX-License-Identifier: Apache-2.0 */
/* The CA's trust bundle as PEM text and as a SPIFFE JWK Set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "meshlet/base64.h"
#include "meshlet/x509.h"

#include "bundle.h"

char *bundle_pem(const STACK_OF(X509) *roots, struct err *e)
{
	char *out = NULL;
	size_t len = 0;

	for (int i = 0; i < sk_X509_num(roots); i++) {
		char *pem = x509_cert_pem(sk_X509_value(roots, i));
		char *grown = pem != NULL ? realloc(out, len + strlen(pem) + 1) : NULL;

		if (grown == NULL) {
			free(pem);
			free(out);
			err_set(e, -ENOMEM, "out of memory");
			return NULL;
		}
		out = grown;
		memcpy(out + len, pem, strlen(pem) + 1);
		len += strlen(pem);
		free(pem);
	}
	return out;
}

static json_t *bundle_b64url(const unsigned char *p, size_t n)
{
	char *s = base64_encode_alloc(p, n, BASE64_URL);
	json_t *j = s != NULL ? json_string(s) : NULL;

	free(s);
	return j;
}

static json_t *bundle_bn(EVP_PKEY *key, const char *name)
{
	BIGNUM *bn = NULL;
	unsigned char *buf = NULL;
	json_t *j = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
		return NULL;
	n = BN_num_bytes(bn);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && BN_bn2bin(bn, buf) == n)
		j = bundle_b64url(buf, (size_t)n);
	free(buf);
	BN_free(bn);
	return j;
}

/* The public half of key as JWK members (RFC 7518 section 6), added to jwk. */
static int bundle_key(EVP_PKEY *key, json_t *jwk)
{
	static const struct {
		const char *group, *crv;
		size_t size;
	} curves[] = { { "prime256v1", "P-256", 32 },
		       { "secp384r1", "P-384", 48 },
		       { "secp521r1", "P-521", 66 } };
	unsigned char point[1 + 2 * 66];
	char group[32];
	size_t len = 0;

	if (EVP_PKEY_is_a(key, "RSA")) {
		json_object_set_new(jwk, "kty", json_string("RSA"));
		json_object_set_new(jwk, "n", bundle_bn(key, OSSL_PKEY_PARAM_RSA_N));
		json_object_set_new(jwk, "e", bundle_bn(key, OSSL_PKEY_PARAM_RSA_E));
		return json_object_get(jwk, "n") != NULL && json_object_get(jwk, "e") != NULL ? 0
		                                                                              : -1;
	}
	if (!EVP_PKEY_is_a(key, "EC") ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   NULL) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
		if (strcmp(group, curves[i].group) != 0)
			continue;
		/* The uncompressed point: 0x04, then x and y of the curve's size each. */
		EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		                               "uncompressed");
		if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point,
		                                    sizeof(point), &len) != 1 ||
		    len != 1 + 2 * curves[i].size || point[0] != 0x04)
			return -1;
		json_object_set_new(jwk, "kty", json_string("EC"));
		json_object_set_new(jwk, "crv", json_string(curves[i].crv));
		json_object_set_new(jwk, "x", bundle_b64url(point + 1, curves[i].size));
		json_object_set_new(jwk, "y",
		                    bundle_b64url(point + 1 + curves[i].size, curves[i].size));
		return json_object_get(jwk, "x") != NULL && json_object_get(jwk, "y") != NULL ? 0
		                                                                              : -1;
	}
	return -1;
}

char *bundle_jwks(const STACK_OF(X509) *roots, int64_t sequence, int64_t refresh_hint,
                  struct err *e)
{
	json_t *doc = json_pack("{s:I, s:I, s:[]}", "spiffe_sequence", (json_int_t)sequence,
	                        "spiffe_refresh_hint", (json_int_t)refresh_hint, "keys");
	json_t *keys = json_object_get(doc, "keys");
	char *out = NULL;

	for (int i = 0; doc != NULL && i < sk_X509_num(roots); i++) {
		X509 *cert = sk_X509_value(roots, i);
		unsigned char *der = NULL;
		int der_len = i2d_X509(cert, &der);
		char *b64 =
		    der_len > 0 ? base64_encode_alloc(der, (size_t)der_len, BASE64_STD) : NULL;
		json_t *jwk = json_pack("{s:s}", "use", "x509-svid");

		OPENSSL_free(der);
		if (b64 == NULL || jwk == NULL || bundle_key(X509_get0_pubkey(cert), jwk) < 0 ||
		    json_object_set_new(jwk, "x5c", json_pack("[s]", b64)) < 0 ||
		    json_array_append_new(keys, jwk) < 0) {
			free(b64);
			json_decref(jwk);
			err_set(e, ERR_INTERNAL, "root %d: its key cannot be written as a JWK",
			        i + 1);
			json_decref(doc);
			return NULL;
		}
		free(b64);
	}
	out = doc != NULL ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (out == NULL && e != NULL && e->code == 0)
		err_set(e, -ENOMEM, "out of memory");
	return out;
}
