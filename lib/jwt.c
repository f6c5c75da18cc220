/* SPDX-License-Identifier: Apache-2.0 */
/* Service-account tokens: strict RS256/ES256 JWT verification against a JWKS, and minting. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "meshlet/base64.h"
#include "meshlet/jparse.h"
#include "meshlet/jwt.h"
#include "meshlet/time.h"

#define P256_COORD    32   /* bytes of an x or y coordinate, and of r and s */
#define JWK_FIELD_MAX 4096 /* base64url characters of n, e, x or y */
#define SHOWN_MAX     64   /* bytes of an untrusted value quoted in a message */
#define SHOWN_SIZE    (SHOWN_MAX + 4)
#define SA_PREFIX     "system:serviceaccount:"
#define MAX_SKEW      86400

enum key_type { KEY_RSA, KEY_EC };

struct jwk {
	EVP_PKEY *pkey;
	/*
	 * Set up once to verify with pkey and SHA-256, and copied for each token: setting one
	 * up fetches the algorithms again, under OpenSSL's locks, each time.
	 */
	EVP_MD_CTX *verify;
	enum key_type type;
	bool has_kid;
	char kid[JWT_KID_MAX + 1];
};

struct jwks {
	size_t n;
	struct jwk keys[];
};

/* Untrusted text (a kid, alg, iss, aud) for a message: printable ASCII but '"' and '\\'. */
static const char *shown(char *dst, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < SHOWN_MAX; i++)
		dst[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? s[i] : '?';
	strcpy(dst + i, i < len ? "..." : "");
	return dst;
}

static const char *shown_json(char *dst, const json_t *s)
{
	return shown(dst, json_string_value(s), json_string_length(s));
}

/* A unix time as "1767225600 (2026-01-01T00:00:00Z)", or only the number out of range. */
static const char *when(char *dst, size_t size, int64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)t, .tv_nsec = 0 };
	char iso[TIME_RFC3339_MAX];

	if (time_format_rfc3339(&ts, false, iso, sizeof(iso)) > 0)
		snprintf(dst, size, "%lld (%s)", (long long)t, iso);
	else
		snprintf(dst, size, "%lld", (long long)t);
	return dst;
}

/*
 * Parses len bytes as a JSON object without duplicate keys into *out (a new reference).
 * Returns 0, or code (-ENOMEM when memory runs out) with e filled and *out NULL. jparse is
 * as strict as json_loadb(JSON_REJECT_DUPLICATES) and several times faster; its messages
 * are fixed phrases that never quote the input, which may be a token.
 */
static int load_object(const void *buf, size_t len, const char *what, int code, json_t **out,
                       struct err *e)
{
	struct jparse_error je;
	json_t *j = jparse_load(buf, len, &je);
	const char *why = je.text;

	*out = NULL;
	if (j == NULL) {
		if (strcmp(je.text, "out of memory") == 0)
			return err_set(e, -ENOMEM, "%s: out of memory", what);
		if (strcmp(je.text, "duplicate object key") == 0)
			why = "a duplicate key";
		else if (strstr(je.text, "UTF-8") != NULL)
			why = "invalid UTF-8";
		else if (strstr(je.text, "\\u0000") != NULL ||
		         (je.offset < len && ((const char *)buf)[je.offset] == '\0'))
			why = "a NUL character";
		return err_set(e, code, "%s is not valid JSON: %s at byte %zu", what, why,
		               je.offset);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return err_set(e, code, "%s is not a JSON object", what);
	}
	*out = j;
	return 0;
}

/* String member name of JSON object j into *out (NULL when absent); code when not a string. */
static int str_member(json_t *j, const char *name, const char *where, int code, json_t **out,
                      struct err *e)
{
	*out = json_object_get(j, name);
	if (*out == NULL || json_is_string(*out))
		return 0;
	*out = NULL;
	return err_set(e, code, "%s\"%s\" is not a string", where, name);
}

/* Strictly decodes n characters of base64url into a new buffer (freed by the caller). */
static int b64url_alloc(const char *in, size_t n, unsigned char **out, size_t *out_len)
{
	size_t max = base64_decoded_max(n);
	unsigned char *buf = malloc(max + 1);
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	rc = base64_decode(in, n, buf, max + 1, out_len, BASE64_URL);
	if (rc != 0)
		free(buf);
	else
		*out = buf;
	return rc;
}

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* An RFC 1123 label as Kubernetes checks it, without the length limit. */
static bool dns_label_chars(const char *s, size_t n)
{
	if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

/* A namespace: a DNS label of at most 63 bytes. */
static bool valid_label(const char *s, size_t n)
{
	return n <= 63 && dns_label_chars(s, n);
}

/* A service account or pod name: Kubernetes' IsDNS1123Subdomain (labels, at most 253 bytes). */
static bool valid_subdomain(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!dns_label_chars(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* A Kubernetes uid (a UUID in practice): 1 to 63 letters, digits and '-'. */
static bool valid_uid(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!lower_alnum(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '-')
			return false;
	}
	return true;
}

/* Keys: built from their public numbers, and those numbers read back. */

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An RSA public key from big-endian n and e. */
static EVP_PKEY *rsa_from(const unsigned char *n, size_t nlen, const unsigned char *ev, size_t elen)
{
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(ev, (int)elen, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (bn != NULL && be != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = pkey_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

/* A P-256 public key from 32-byte x and y; NULL also when the point is not on the curve. */
static EVP_PKEY *p256_from(const unsigned char *x, const unsigned char *y)
{
	unsigned char pt[1 + 2 * P256_COORD] = { 0x04 }; /* uncompressed */
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	memcpy(pt + 1, x, P256_COORD);
	memcpy(pt + 1 + P256_COORD, y, P256_COORD);
	if (bld != NULL &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
	                                    0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)))
		pkey = pkey_fromdata("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

/* OpenSSL's own public key validation: on the curve for EC, SP 800-56B for RSA. */
static bool public_check(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* The public numbers of a key: n and e (minimal), or x and y (32 bytes each). */
struct pub_parts {
	enum key_type type;
	unsigned char *a, *b;
	size_t alen, blen;
};

static unsigned char *bn_bytes(const BIGNUM *bn, size_t pad, size_t *len)
{
	size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
	unsigned char *buf = bn != NULL ? malloc(n + 1) : NULL;

	if (buf != NULL && BN_bn2binpad(bn, buf, (int)n) < 0) {
		free(buf);
		buf = NULL;
	}
	*len = n;
	return buf;
}

/* Reads the public numbers of key, which must be an RSA key of our sizes or P-256. */
static int pub_parts_get(EVP_PKEY *key, struct pub_parts *p, struct err *e)
{
	char group[64] = "";
	BIGNUM *a = NULL, *b = NULL;
	int rc = 0, bits = key != NULL ? EVP_PKEY_get_bits(key) : 0;
	size_t pad = P256_COORD;

	memset(p, 0, sizeof(*p));
	if (key == NULL)
		return err_set(e, -EINVAL, "no key given");
	if (EVP_PKEY_is_a(key, "RSA")) {
		if (bits < JWKS_RSA_MIN_BITS || bits > JWKS_RSA_MAX_BITS)
			return err_set(e, ERR_JWT_ALG_UNSUPPORTED,
			               "RSA key has %d bits; %d to %d are supported", bits,
			               JWKS_RSA_MIN_BITS, JWKS_RSA_MAX_BITS);
		p->type = KEY_RSA;
		pad = 0;
		EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a);
		EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b);
	} else if (EVP_PKEY_is_a(key, "EC")) {
		EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                               sizeof(group), NULL);
		if (strcmp(group, SN_X9_62_prime256v1) != 0)
			return err_set(e, ERR_JWT_ALG_UNSUPPORTED,
			               "EC key is not on P-256, the only curve supported");
		p->type = KEY_EC;
		EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a);
		EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b);
	} else {
		return err_set(e, ERR_JWT_ALG_UNSUPPORTED,
		               "%s keys are not supported: only RSA and EC P-256",
		               EVP_PKEY_get0_type_name(key));
	}
	p->a = bn_bytes(a, pad, &p->alen);
	p->b = bn_bytes(b, pad, &p->blen);
	if (p->a == NULL || p->b == NULL) {
		rc = err_set(e, ERR_INTERNAL, "cannot read the key's public numbers");
		free(p->a);
		free(p->b);
		p->a = p->b = NULL;
	}
	BN_free(a);
	BN_free(b);
	return rc;
}

/* JWKS */

/* Reads the required base64url member name of a JWK into a new buffer. */
static int jwk_b64(json_t *j, const char *name, const char *where, unsigned char **out, size_t *len,
                   struct err *e)
{
	json_t *v;
	int rc = str_member(j, name, where, ERR_JWKS_MALFORMED, &v, e);

	if (rc != 0)
		return rc;
	if (v == NULL || json_string_length(v) > JWK_FIELD_MAX)
		return err_set(e, ERR_JWKS_MALFORMED, "%s\"%s\" is %s", where, name,
		               v == NULL ? "missing" : "too long");
	rc = b64url_alloc(json_string_value(v), json_string_length(v), out, len);
	if (rc != 0)
		return err_set(e, rc == -ENOMEM ? rc : ERR_JWKS_MALFORMED,
		               "%s\"%s\" is not strict base64url: %s", where, name, err_str(rc));
	return 0;
}

/* Reads the numbers of an RSA (n, e) or P-256 (x, y) JWK and builds the key into *out. */
static int jwk_key(json_t *j, enum key_type t, const char *where, struct jwk *out, struct err *e)
{
	unsigned char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0, bits;
	uint64_t exp = 0;
	int rc;

	rc = jwk_b64(j, t == KEY_RSA ? "n" : "x", where, &a, &alen, e);
	if (rc == 0)
		rc = jwk_b64(j, t == KEY_RSA ? "e" : "y", where, &b, &blen, e);
	if (rc != 0)
		goto out;
	out->type = t;
	if (t == KEY_EC) {
		/* RFC 7518 6.2.1.2: coordinates are full size, 32 bytes for P-256. */
		if (alen != P256_COORD || blen != P256_COORD)
			rc = err_set(e, ERR_JWKS_MALFORMED,
			             "%s\"x\" and \"y\" must be 32 bytes, not %zu and %zu", where,
			             alen, blen);
		else if ((out->pkey = p256_from(a, b)) == NULL || !public_check(out->pkey))
			rc = err_set(e, ERR_JWKS_MALFORMED, "%s(x, y) is not a point on P-256",
			             where);
		goto out;
	}
	/* RFC 7518 6.3.1: a Base64urlUInt has the fewest octets, so no leading zero. */
	if (alen == 0 || a[0] == 0 || blen == 0 || b[0] == 0) {
		rc = err_set(e, ERR_JWKS_MALFORMED, "%s\"%s\" is empty or has a leading zero",
		             where, alen == 0 || a[0] == 0 ? "n" : "e");
		goto out;
	}
	bits = alen * 8;
	for (unsigned char top = a[0]; !(top & 0x80); top <<= 1)
		bits--;
	for (size_t i = 0; i < blen && blen <= 4; i++)
		exp = exp << 8 | b[i];
	/* OpenSSL outside FIPS mode allows any odd e > 1; we want SP 800-56B's e > 2^16. */
	if (bits < JWKS_RSA_MIN_BITS || bits > JWKS_RSA_MAX_BITS)
		rc = err_set(e, ERR_JWKS_MALFORMED, "%sRSA modulus has %zu bits; %d to %d are OK",
		             where, bits, JWKS_RSA_MIN_BITS, JWKS_RSA_MAX_BITS);
	else if (blen > 4 || exp <= 65536 || !(exp & 1))
		rc = err_set(e, ERR_JWKS_MALFORMED, "%sRSA exponent must be odd, 65537 to 2^32-1",
		             where);
	else if ((out->pkey = rsa_from(a, alen, b, blen)) == NULL || !public_check(out->pkey))
		rc = err_set(e, ERR_JWKS_MALFORMED, "%snot a valid RSA public key", where);
out:
	if (rc == 0 &&
	    ((out->verify = EVP_MD_CTX_new()) == NULL ||
	     EVP_DigestVerifyInit(out->verify, NULL, EVP_sha256(), NULL, out->pkey) != 1))
		rc = err_set(e, -ENOMEM, "%scannot set up verification: out of memory", where);
	free(a);
	free(b);
	return rc;
}

/* Parses entry i of "keys" into *out. Returns 0 (usable), 1 (skipped) or an error. */
static int jwk_parse(json_t *j, size_t i, json_t **kids, size_t *nkids, struct jwk *out,
                     struct err *e)
{
	char where[SHOWN_SIZE + 32], buf[SHOWN_SIZE];
	json_t *kty, *kid, *use, *alg, *crv;
	const char *want_alg;
	int rc;

	snprintf(where, sizeof(where), "key %zu: ", i);
	if (!json_is_object(j))
		return err_set(e, ERR_JWKS_MALFORMED, "key %zu is not a JSON object", i);
	rc = str_member(j, "kid", where, ERR_JWKS_MALFORMED, &kid, e);
	if (rc != 0)
		return rc;
	if (kid != NULL) {
		if (json_string_length(kid) == 0 || json_string_length(kid) > JWT_KID_MAX)
			return err_set(e, ERR_JWKS_MALFORMED, "%s\"kid\" must have 1 to %d bytes",
			               where, JWT_KID_MAX);
		snprintf(where, sizeof(where), "key %zu (kid \"%s\"): ", i, shown_json(buf, kid));
		for (size_t k = 0; k < *nkids; k++) {
			if (json_equal(kids[k], kid))
				return err_set(e, ERR_JWKS_MALFORMED, "%sthe kid is used twice",
				               where);
		}
		kids[(*nkids)++] = kid;
		out->has_kid = true;
		memcpy(out->kid, json_string_value(kid), json_string_length(kid) + 1);
	}
	if (json_object_get(j, "d") != NULL)
		return err_set(e, ERR_JWKS_MALFORMED,
		               "%sholds private key material (\"d\"): a JWKS must be public",
		               where);
	if ((rc = str_member(j, "kty", where, ERR_JWKS_MALFORMED, &kty, e)) != 0 ||
	    (rc = str_member(j, "use", where, ERR_JWKS_MALFORMED, &use, e)) != 0 ||
	    (rc = str_member(j, "alg", where, ERR_JWKS_MALFORMED, &alg, e)) != 0 ||
	    (rc = str_member(j, "crv", where, ERR_JWKS_MALFORMED, &crv, e)) != 0)
		return rc;
	if (kty == NULL)
		return err_set(e, ERR_JWKS_MALFORMED, "%s\"kty\" is missing", where);
	if (use != NULL && strcmp(json_string_value(use), "sig") != 0)
		return 1;
	if (strcmp(json_string_value(kty), "RSA") == 0) {
		want_alg = "RS256";
	} else if (strcmp(json_string_value(kty), "EC") == 0) {
		if (crv == NULL)
			return err_set(e, ERR_JWKS_MALFORMED, "%s\"crv\" is missing", where);
		if (strcmp(json_string_value(crv), "P-256") != 0)
			return 1;
		want_alg = "ES256";
	} else {
		return 1;
	}
	/* A key meant for another algorithm (RS512, PS256...) must not verify ours. */
	if (alg != NULL && strcmp(json_string_value(alg), want_alg) != 0)
		return 1;
	return jwk_key(j, want_alg[0] == 'R' ? KEY_RSA : KEY_EC, where, out, e);
}

struct jwks *jwks_parse(const char *json, size_t len, struct err *e)
{
	json_t *root = NULL, *arr, *kids[JWKS_MAX_KEYS];
	struct jwks *k = NULL, *ret = NULL;
	size_t count, nkids = 0;
	int rc;

	ERR_set_mark();
	if (json == NULL) {
		err_set(e, -EINVAL, "no JWKS given");
		goto out;
	}
	if (len > JWKS_MAX_LEN) {
		err_set(e, ERR_JWKS_MALFORMED, "JWKS is %zu bytes; at most %d are accepted", len,
		        JWKS_MAX_LEN);
		goto out;
	}
	if (load_object(json, len, "JWKS", ERR_JWKS_MALFORMED, &root, e) != 0)
		goto out;
	arr = json_object_get(root, "keys");
	count = json_array_size(arr);
	if (!json_is_array(arr) || count > JWKS_MAX_KEYS) {
		err_set(e, ERR_JWKS_MALFORMED, "JWKS needs a \"keys\" array of at most %d keys",
		        JWKS_MAX_KEYS);
		goto out;
	}
	/* One spare entry: jwks_free looks at keys[n], which a failed key may have filled. */
	k = calloc(1, sizeof(*k) + (count + 1) * sizeof(k->keys[0]));
	if (k == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		rc = jwk_parse(json_array_get(arr, i), i, kids, &nkids, &k->keys[k->n], e);
		if (rc < 0)
			goto out;
		if (rc == 0)
			k->n++;
		else
			memset(&k->keys[k->n], 0, sizeof(k->keys[0]));
	}
	if (k->n == 0) {
		err_set(e, ERR_JWKS_MALFORMED,
		        "JWKS has no usable key among its %zu: only RSA (RS256) and EC P-256 "
		        "(ES256) signing keys are used",
		        count);
		goto out;
	}
	ret = k;
	k = NULL;
out:
	jwks_free(k);
	json_decref(root);
	ERR_pop_to_mark();
	return ret;
}

void jwks_free(struct jwks *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i <= k->n; i++) {
		EVP_MD_CTX_free(k->keys[i].verify);
		EVP_PKEY_free(k->keys[i].pkey);
	}
	free(k);
}

size_t jwks_count(const struct jwks *k)
{
	return k != NULL ? k->n : 0;
}

/* Verification */

/* Header structure (alg a string, kid and typ well-formed, no crit), then the alg. */
static int check_header(json_t *hdr, enum key_type *t, json_t **kid, struct err *e)
{
	const char *w = "token header: ", *s;
	json_t *alg, *typ;
	char buf[SHOWN_SIZE];
	int rc;

	if (json_object_get(hdr, "crit") != NULL)
		return err_set(e, ERR_JWT_MALFORMED,
		               "%s\"crit\" is present, and no critical extension is supported", w);
	if ((rc = str_member(hdr, "alg", w, ERR_JWT_MALFORMED, &alg, e)) != 0 ||
	    (rc = str_member(hdr, "kid", w, ERR_JWT_MALFORMED, kid, e)) != 0 ||
	    (rc = str_member(hdr, "typ", w, ERR_JWT_MALFORMED, &typ, e)) != 0)
		return rc;
	if (alg == NULL)
		return err_set(e, ERR_JWT_MALFORMED, "%s\"alg\" is missing", w);
	if (*kid != NULL &&
	    (json_string_length(*kid) == 0 || json_string_length(*kid) > JWT_KID_MAX))
		return err_set(e, ERR_JWT_MALFORMED, "%s\"kid\" must have 1 to %d bytes", w,
		               JWT_KID_MAX);
	if (typ != NULL && strcasecmp(json_string_value(typ), "JWT") != 0)
		return err_set(e, ERR_JWT_MALFORMED, "%s\"typ\" is not \"JWT\"", w);
	s = json_string_value(alg);
	*t = strcmp(s, "ES256") == 0 ? KEY_EC : KEY_RSA;
	if (strcmp(s, "RS256") == 0 || strcmp(s, "ES256") == 0)
		return 0;
	/* Refusals match in any case, so that "None" is reported for what it is. */
	if (strcasecmp(s, "none") == 0)
		return err_set(e, ERR_JWT_ALG_NONE,
		               "%salg \"%s\": unsigned tokens are never accepted", w,
		               shown_json(buf, alg));
	if (strcasecmp(s, "HS256") == 0 || strcasecmp(s, "HS384") == 0 ||
	    strcasecmp(s, "HS512") == 0)
		return err_set(e, ERR_JWT_ALG_HMAC, "%salg \"%s\": HMAC tokens are never accepted",
		               w, shown_json(buf, alg));
	return err_set(e, ERR_JWT_ALG_UNSUPPORTED,
	               "%salg \"%s\": only RS256 and ES256 are accepted", w, shown_json(buf, alg));
}

static const char *type_name(enum key_type t)
{
	return t == KEY_RSA ? "RSA" : "EC P-256";
}

static const char *alg_name(enum key_type t)
{
	return t == KEY_RSA ? "RS256" : "ES256";
}

/* The key for a token: by kid, or without a kid the only key of the alg's type (t). */
static int choose_key(const struct jwks *k, enum key_type t, const json_t *kid,
                      const struct jwk **out, struct err *e)
{
	char buf[SHOWN_SIZE];
	size_t found = 0;

	for (size_t i = 0; i < k->n; i++) {
		const struct jwk *key = &k->keys[i];

		if (kid != NULL && key->has_kid && strcmp(key->kid, json_string_value(kid)) == 0) {
			*out = key;
			return 0;
		}
		if (kid == NULL && key->type == t && found++ == 0)
			*out = key;
	}
	if (kid != NULL)
		return err_set(e, ERR_JWT_UNKNOWN_KID, "no trusted key has kid \"%s\"",
		               shown_json(buf, kid));
	if (found != 1)
		return err_set(e, ERR_JWT_UNKNOWN_KID,
		               "token has no kid, and the key set has %zu %s keys where that needs "
		               "exactly one",
		               found, type_name(t));
	return 0;
}

/* RFC 7518 3.4: an ES256 signature is r||s, 32 bytes each; OpenSSL wants DER. */
static int ecdsa_raw_to_der(const unsigned char *sig, unsigned char **der, size_t *der_len)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, P256_COORD, NULL);
	BIGNUM *sv = BN_bin2bn(sig + P256_COORD, P256_COORD, NULL);
	int len = -1;

	if (s != NULL && r != NULL && sv != NULL && ECDSA_SIG_set0(s, r, sv)) {
		r = sv = NULL;
		len = i2d_ECDSA_SIG(s, der);
	}
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	*der_len = len > 0 ? (size_t)len : 0;
	return len > 0 ? 0 : -ENOMEM;
}

static int verify_sig(const struct jwk *key, enum key_type t, const char *input, size_t input_len,
                      const unsigned char *sig, size_t sig_len, struct err *e)
{
	char kid[SHOWN_SIZE + 16] = "the key without kid", buf[SHOWN_SIZE];
	unsigned char *der = NULL;
	EVP_MD_CTX *ctx = NULL;
	int rc = 0, want = t == KEY_RSA ? EVP_PKEY_get_size(key->pkey) : 2 * P256_COORD;

	if (key->has_kid)
		snprintf(kid, sizeof(kid), "key \"%s\"", shown(buf, key->kid, strlen(key->kid)));
	if (key->type != t)
		return err_set(e, ERR_JWT_SIGNATURE, "token's alg is %s but %s is an %s key",
		               alg_name(t), kid, type_name(key->type));
	if (want <= 0 || sig_len != (size_t)want)
		return err_set(e, ERR_JWT_SIGNATURE, "%s signature is %zu bytes; %s needs %d%s",
		               alg_name(t), sig_len, kid, want,
		               t == KEY_EC ? " (raw r||s, RFC 7518 section 3.4)" : "");
	if (t == KEY_EC) {
		if ((rc = ecdsa_raw_to_der(sig, &der, &sig_len)) != 0) {
			err_set(e, rc, "out of memory");
			goto out;
		}
		sig = der;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_MD_CTX_copy_ex(ctx, key->verify) != 1)
		rc = err_set(e, ERR_INTERNAL, "cannot set up %s verification", alg_name(t));
	else if (EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) != 1)
		rc = err_set(e, ERR_JWT_SIGNATURE, "%s signature does not verify with %s",
		             alg_name(t), kid);
out:
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	return rc;
}

/* The claims jwt_verify reads: where each is (its parent, or -1 for the payload) and its type. */
enum { C_EXP, C_NBF, C_IAT, C_ISS, C_SUB, C_AUD, C_K8S, C_NS, C_SA, C_SAN, C_POD, C_PN, C_PU, C_N };

static const struct {
	const char *path, *name;
	int parent;
	json_type type;
} claim_spec[C_N] = {
	[C_EXP] = { "exp", "exp", -1, JSON_INTEGER },
	[C_NBF] = { "nbf", "nbf", -1, JSON_INTEGER },
	[C_IAT] = { "iat", "iat", -1, JSON_INTEGER },
	[C_ISS] = { "iss", "iss", -1, JSON_STRING },
	[C_SUB] = { "sub", "sub", -1, JSON_STRING },
	[C_AUD] = { "aud", "aud", -1, JSON_ARRAY }, /* or a string */
	[C_K8S] = { "kubernetes.io", "kubernetes.io", -1, JSON_OBJECT },
	[C_NS] = { "kubernetes.io.namespace", "namespace", C_K8S, JSON_STRING },
	[C_SA] = { "kubernetes.io.serviceaccount", "serviceaccount", C_K8S, JSON_OBJECT },
	[C_SAN] = { "kubernetes.io.serviceaccount.name", "name", C_SA, JSON_STRING },
	[C_POD] = { "kubernetes.io.pod", "pod", C_K8S, JSON_OBJECT },
	[C_PN] = { "kubernetes.io.pod.name", "name", C_POD, JSON_STRING },
	[C_PU] = { "kubernetes.io.pod.uid", "uid", C_POD, JSON_STRING },
};

/* Finds each claim of claim_spec in the payload c, checking its type; absent ones are NULL. */
static int read_claims(json_t *c, json_t *cl[C_N], struct err *e)
{
	for (int i = 0; i < C_N; i++) {
		json_t *parent = claim_spec[i].parent < 0 ? c : cl[claim_spec[i].parent];
		json_t *v = json_object_get(parent, claim_spec[i].name);
		bool ok = v == NULL || json_typeof(v) == claim_spec[i].type ||
		          (i == C_AUD && json_is_string(v));

		for (size_t k = 0; ok && i == C_AUD && k < json_array_size(v); k++)
			ok = json_is_string(json_array_get(v, k));
		if (!ok)
			return err_set(
			    e, ERR_JWT_MALFORMED, "claim \"%s\" is not %s", claim_spec[i].path,
			    i == C_AUD                           ? "a string or an array of strings"
			    : claim_spec[i].type == JSON_INTEGER ? "an integer NumericDate"
			    : claim_spec[i].type == JSON_STRING  ? "a string"
			                                         : "an object");
		cl[i] = v;
	}
	return 0;
}

/* exp, nbf and iat against now; jwt_verify bounds now and skew, so nothing overflows. */
static int check_times(json_t *const cl[C_N], const struct jwt_verify_opts *o, struct err *e)
{
	int64_t exp = json_integer_value(cl[C_EXP]), nbf = json_integer_value(cl[C_NBF]);
	int64_t iat = json_integer_value(cl[C_IAT]);
	char t1[64], t2[64];

	if (cl[C_EXP] == NULL)
		return err_set(
		    e, ERR_JWT_MALFORMED,
		    "token has no \"exp\" claim: tokens that never expire are not accepted");
	if (exp <= o->now - o->skew)
		return err_set(e, ERR_JWT_EXPIRED, "token expired at %s; now is %s (skew %lld s)",
		               when(t1, sizeof(t1), exp), when(t2, sizeof(t2), o->now),
		               (long long)o->skew);
	if (cl[C_NBF] != NULL && nbf > o->now + o->skew)
		return err_set(e, ERR_JWT_NOT_YET_VALID,
		               "token is not valid before %s; now is %s (skew %lld s)",
		               when(t1, sizeof(t1), nbf), when(t2, sizeof(t2), o->now),
		               (long long)o->skew);
	if (cl[C_IAT] != NULL && iat > o->now + o->skew)
		return err_set(e, ERR_JWT_NOT_YET_VALID,
		               "token was issued in the future, at %s; now is %s (skew %lld s)",
		               when(t1, sizeof(t1), iat), when(t2, sizeof(t2), o->now),
		               (long long)o->skew);
	return 0;
}

static bool json_str_is(const json_t *j, const char *s)
{
	return json_string_length(j) == strlen(s) && strcmp(json_string_value(j), s) == 0;
}

static int check_iss_aud(json_t *const cl[C_N], const struct jwt_verify_opts *o, struct err *e)
{
	const json_t *iss = cl[C_ISS], *aud = cl[C_AUD];
	char got[SHOWN_SIZE], want[SHOWN_SIZE];
	size_t n = json_array_size(aud);

	if (iss == NULL || !json_str_is(iss, o->issuer))
		return err_set(e, ERR_JWT_ISSUER, "token's issuer is %s%s%s, not \"%s\"",
		               iss ? "\"" : "", iss ? shown_json(got, iss) : "missing",
		               iss ? "\"" : "", shown(want, o->issuer, strlen(o->issuer)));
	shown(want, o->audience, strlen(o->audience));
	if (aud == NULL)
		return err_set(e, ERR_JWT_AUDIENCE, "token has no \"aud\" claim; expected \"%s\"",
		               want);
	if (json_is_string(aud)) {
		if (json_str_is(aud, o->audience))
			return 0;
		return err_set(e, ERR_JWT_AUDIENCE, "token's audience is \"%s\", not \"%s\"",
		               shown_json(got, aud), want);
	}
	for (size_t i = 0; i < n; i++) {
		if (json_str_is(json_array_get(aud, i), o->audience))
			return 0;
	}
	if (n == 0)
		return err_set(e, ERR_JWT_AUDIENCE, "token's audience is [], not \"%s\"", want);
	return err_set(e, ERR_JWT_AUDIENCE, "token's audience [\"%s\"%s] does not include \"%s\"",
	               shown_json(got, json_array_get(aud, 0)), n > 1 ? ", ..." : "", want);
}

/* A name: the bytes of a string, not NUL-terminated. */
struct name {
	const char *s;
	size_t n;
};

static bool name_eq(struct name a, struct name b)
{
	return a.n == b.n && memcmp(a.s, b.s, a.n) == 0;
}

static struct name json_name(const json_t *j)
{
	return (struct name){ json_string_value(j), json_string_length(j) };
}

/* Splits sub "system:serviceaccount:<ns>:<sa>" at the first colon after the prefix. */
static bool parse_sub(const json_t *sub, struct name *ns, struct name *sa)
{
	const char *s = json_string_value(sub), *colon;
	size_t len = json_string_length(sub), plen = strlen(SA_PREFIX);

	if (sub == NULL || len <= plen || memcmp(s, SA_PREFIX, plen) != 0 ||
	    (colon = memchr(s + plen, ':', len - plen)) == NULL)
		return false;
	*ns = (struct name){ s + plen, (size_t)(colon - s) - plen };
	*sa = (struct name){ colon + 1, len - (size_t)(colon + 1 - s) };
	return true;
}

static void copy_name(char *dst, struct name n)
{
	memcpy(dst, n.s, n.n);
	dst[n.n] = '\0';
}

static int identity(json_t *const cl[C_N], struct jwt_identity *id, struct err *e)
{
	struct name ns, sa, sub_ns = { 0 }, sub_sa = { 0 };
	struct name pod_name = json_name(cl[C_PN]), pod_uid = json_name(cl[C_PU]);
	bool sub_ok = parse_sub(cl[C_SUB], &sub_ns, &sub_sa);
	char b1[SHOWN_SIZE], b2[SHOWN_SIZE];

	if (cl[C_K8S] != NULL) {
		if (cl[C_NS] == NULL || cl[C_SAN] == NULL)
			return err_set(e, ERR_JWT_NO_IDENTITY,
			               "claim \"kubernetes.io\" lacks \"%s\"",
			               cl[C_NS] == NULL ? "namespace" : "serviceaccount.name");
		ns = json_name(cl[C_NS]);
		sa = json_name(cl[C_SAN]);
		if (cl[C_SUB] != NULL && (!sub_ok || !name_eq(ns, sub_ns) || !name_eq(sa, sub_sa)))
			return err_set(e, ERR_JWT_NO_IDENTITY,
			               "claim \"sub\" (\"%s\") names another account than "
			               "\"kubernetes.io\" (namespace \"%s\")",
			               shown_json(b1, cl[C_SUB]), shown(b2, ns.s, ns.n));
	} else if (sub_ok) {
		ns = sub_ns;
		sa = sub_sa;
	} else {
		return err_set(e, ERR_JWT_NO_IDENTITY,
		               "token has no \"kubernetes.io\" claim, and its \"sub\" (\"%s\") is "
		               "not " SA_PREFIX "<namespace>:<name>",
		               cl[C_SUB] ? shown_json(b1, cl[C_SUB]) : "");
	}
	if (!valid_label(ns.s, ns.n))
		return err_set(e, ERR_JWT_NO_IDENTITY, "namespace \"%s\" is not a DNS label",
		               shown(b1, ns.s, ns.n));
	if (!valid_subdomain(sa.s, sa.n))
		return err_set(e, ERR_JWT_NO_IDENTITY,
		               "service account \"%s\" is not a DNS subdomain",
		               shown(b1, sa.s, sa.n));
	if (cl[C_POD] != NULL &&
	    (!valid_subdomain(pod_name.s, pod_name.n) || !valid_uid(pod_uid.s, pod_uid.n)))
		return err_set(
		    e, ERR_JWT_NO_IDENTITY,
		    "claim \"kubernetes.io.pod\" needs a \"name\" (a DNS subdomain) and a \"uid\"");
	memset(id, 0, sizeof(*id));
	copy_name(id->namespace_, ns);
	copy_name(id->service_account, sa);
	if (cl[C_POD] != NULL) {
		copy_name(id->pod_name, pod_name);
		copy_name(id->pod_uid, pod_uid);
	}
	return 0;
}

/* One part of a compact token: where it is, and its decoded bytes. */
struct part {
	const char *s;
	size_t n;
	unsigned char *raw;
	size_t raw_len;
};

static int split_decode(const char *token, size_t len, struct part p[3], struct err *e)
{
	static const char *const names[3] = { "header", "payload", "signature" };
	const char *end = token + len, *s = token, *dot;
	int rc;

	if (len == 0 || len > JWT_MAX_LEN)
		return err_set(e, ERR_JWT_MALFORMED, "token is %zu bytes; 1 to %d are accepted",
		               len, JWT_MAX_LEN);
	for (int i = 0; i < 3; i++) {
		dot = memchr(s, '.', (size_t)(end - s));
		if ((i < 2 && dot == NULL) || (i == 2 && dot != NULL))
			return err_set(
			    e, ERR_JWT_MALFORMED,
			    "token has %s 3 parts: a JWS has exactly 3, separated by '.'",
			    i < 2 ? "fewer than" : "more than");
		p[i].s = s;
		p[i].n = (size_t)((i < 2 ? dot : end) - s);
		s = i < 2 ? dot + 1 : end;
	}
	for (int i = 0; i < 3; i++) {
		rc = b64url_alloc(p[i].s, p[i].n, &p[i].raw, &p[i].raw_len);
		if (rc != 0)
			return err_set(e, rc == -ENOMEM ? rc : ERR_JWT_MALFORMED,
			               "token %s is not strict base64url: %s", names[i],
			               err_str(rc));
	}
	return 0;
}

int jwt_verify(const char *token, size_t len, const struct jwks *keys,
               const struct jwt_verify_opts *o, struct jwt_identity *out, struct err *e)
{
	struct part p[3] = { { 0 } };
	json_t *hdr = NULL, *payload = NULL, *kid = NULL;
	const struct jwk *key = NULL;
	enum key_type t = KEY_RSA;
	json_t *cl[C_N];
	struct jwt_identity id;
	int rc;

	ERR_set_mark();
	if (token == NULL || keys == NULL || o == NULL || out == NULL || o->issuer == NULL ||
	    o->issuer[0] == '\0' || o->audience == NULL || o->audience[0] == '\0' || o->skew < 0 ||
	    o->skew > MAX_SKEW || o->now < 0 || o->now > INT64_MAX - MAX_SKEW) {
		rc = err_set(e, -EINVAL,
		             "jwt_verify needs a token, keys, an issuer, an audience, now >= 0 and "
		             "a skew of 0 to %d s",
		             MAX_SKEW);
		goto out;
	}
	if ((rc = split_decode(token, len, p, e)) != 0)
		goto out;
	rc = load_object(p[0].raw, p[0].raw_len, "token header", ERR_JWT_MALFORMED, &hdr, e);
	if (rc == 0)
		rc = load_object(p[1].raw, p[1].raw_len, "token payload", ERR_JWT_MALFORMED,
		                 &payload, e);
	if (rc != 0 || (rc = check_header(hdr, &t, &kid, e)) != 0 ||
	    (rc = choose_key(keys, t, kid, &key, e)) != 0)
		goto out;
	/* The signing input is the first two parts exactly as they appear in the token. */
	rc = verify_sig(key, t, token, p[0].n + 1 + p[1].n, p[2].raw, p[2].raw_len, e);
	if (rc != 0 || (rc = read_claims(payload, cl, e)) != 0 ||
	    (rc = check_times(cl, o, e)) != 0 || (rc = check_iss_aud(cl, o, e)) != 0 ||
	    (rc = identity(cl, &id, e)) != 0)
		goto out;
	id.exp = json_integer_value(cl[C_EXP]);
	*out = id;
out:
	/* A token is a bearer credential: leave none of it in freed memory. */
	for (int i = 0; i < 3; i++) {
		if (p[i].raw != NULL)
			OPENSSL_cleanse(p[i].raw, p[i].raw_len);
		free(p[i].raw);
	}
	json_decref(hdr);
	json_decref(payload);
	ERR_pop_to_mark();
	return rc;
}

/* Minting */

/* A random (version 4) UUID, as Kubernetes gives objects; false when there is no randomness. */
static bool random_uuid(char out[37])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return false;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
	return true;
}

int jwt_kid(EVP_PKEY *key, char *buf, size_t size)
{
	struct pub_parts pp;
	EVP_PKEY *pub = NULL;
	unsigned char *der = NULL, md[32];
	int rc, der_len = -1;

	if (buf != NULL && size > 0)
		buf[0] = '\0';
	ERR_set_mark();
	rc = pub_parts_get(key, &pp, NULL);
	if (rc != 0)
		goto out;
	/* Rebuilt from its numbers, the key has Go's encoding: uncompressed, named curve. */
	pub = pp.type == KEY_RSA ? rsa_from(pp.a, pp.alen, pp.b, pp.blen) : p256_from(pp.a, pp.b);
	if (pub != NULL)
		der_len = i2d_PUBKEY(pub, &der);
	if (der_len <= 0 || EVP_Digest(der, (size_t)der_len, md, NULL, EVP_sha256(), NULL) != 1)
		rc = ERR_INTERNAL;
	else
		rc = base64_encode(md, sizeof(md), buf, size, BASE64_URL) < 0 ? ERR_TRUNCATED : 0;
	free(pp.a);
	free(pp.b);
out:
	EVP_PKEY_free(pub);
	OPENSSL_free(der);
	ERR_pop_to_mark();
	return rc;
}

/* Signs input with key; an EC signature becomes raw r||s. The caller frees *sig. */
static int sign(EVP_PKEY *key, enum key_type t, const char *input, unsigned char **sig,
                size_t *sig_len, struct err *e)
{
	const unsigned char *in = (const unsigned char *)input, *p;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *buf = NULL, *raw = NULL;
	ECDSA_SIG *es = NULL;
	size_t len = 0;
	int rc = 0;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &len, in, strlen(input)) != 1 ||
	    (buf = malloc(len)) == NULL || EVP_DigestSign(ctx, buf, &len, in, strlen(input)) != 1) {
		rc = err_set(e, ERR_INTERNAL, "signing failed: has the key its private half?");
		goto out;
	}
	if (t == KEY_EC) {
		p = buf;
		es = d2i_ECDSA_SIG(NULL, &p, (long)len);
		raw = malloc(2 * P256_COORD);
		if (es == NULL || raw == NULL ||
		    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, P256_COORD) != P256_COORD ||
		    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + P256_COORD, P256_COORD) !=
		        P256_COORD) {
			rc = err_set(e, ERR_INTERNAL, "cannot convert the ECDSA signature");
			goto out;
		}
		free(buf);
		buf = raw;
		raw = NULL;
		len = 2 * P256_COORD;
	}
	*sig = buf;
	*sig_len = len;
	buf = NULL;
out:
	free(buf);
	free(raw);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static int check_mint(const struct jwt_mint *m, struct err *e)
{
	if (m == NULL || m->issuer == NULL || m->issuer[0] == '\0' || m->audience == NULL ||
	    m->audience[0] == '\0')
		return err_set(e, -EINVAL, "an issuer and an audience are required");
	if (m->namespace_ == NULL || !valid_label(m->namespace_, strlen(m->namespace_)))
		return err_set(e, -EINVAL, "the namespace must be a DNS label");
	if (m->service_account == NULL ||
	    !valid_subdomain(m->service_account, strlen(m->service_account)))
		return err_set(e, -EINVAL, "the service account name must be a DNS subdomain");
	if (m->pod_name != NULL && !valid_subdomain(m->pod_name, strlen(m->pod_name)))
		return err_set(e, -EINVAL, "the pod name must be a DNS subdomain");
	if ((m->sa_uid != NULL && !valid_uid(m->sa_uid, strlen(m->sa_uid))) ||
	    (m->pod_uid != NULL && !valid_uid(m->pod_uid, strlen(m->pod_uid))))
		return err_set(e, -EINVAL, "a uid must be 1 to 63 letters, digits and '-'");
	if (m->ttl <= 0 || m->now < 0 || m->now > INT64_MAX - m->ttl)
		return err_set(e, -EINVAL, "ttl must be positive, and now + ttl representable");
	return 0;
}

/* Compact JSON with sorted keys, as Kubernetes (go-jose) writes it, in base64url. */
static char *json_b64(json_t *j)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	char *b64 = text != NULL ? base64_encode_alloc(text, strlen(text), BASE64_URL) : NULL;

	free(text);
	json_decref(j);
	return b64;
}

/* header.payload of a minted token, malloc'd; NULL when out of memory or randomness. */
static char *mint_input(const char *kid, enum key_type t, const struct jwt_mint *m)
{
	char sa_uid[37], pod_uid[37], jti[37], sub[sizeof(SA_PREFIX) + 64 + 254];
	char *h64, *c64, *input = NULL;
	json_t *k8s, *pod = NULL;

	if (!random_uuid(sa_uid) || !random_uuid(pod_uid) || !random_uuid(jti))
		return NULL;
	snprintf(sub, sizeof(sub), SA_PREFIX "%s:%s", m->namespace_, m->service_account);
	if (m->pod_name != NULL)
		pod = json_pack("{s:s, s:s}", "name", m->pod_name, "uid",
		                m->pod_uid ? m->pod_uid : pod_uid);
	k8s = json_pack("{s:s, s:{s:s, s:s}, s:o*}", "namespace", m->namespace_, "serviceaccount",
	                "name", m->service_account, "uid", m->sa_uid ? m->sa_uid : sa_uid, "pod",
	                pod);
	h64 = json_b64(json_pack("{s:s, s:s}", "alg", alg_name(t), "kid", kid));
	c64 = json_b64(json_pack("{s:[s], s:I, s:I, s:s, s:s, s:o, s:I, s:s}", "aud", m->audience,
	                         "exp", (json_int_t)(m->now + m->ttl), "iat", (json_int_t)m->now,
	                         "iss", m->issuer, "jti", jti, "kubernetes.io", k8s, "nbf",
	                         (json_int_t)m->now, "sub", sub));
	if (h64 != NULL && c64 != NULL && asprintf(&input, "%s.%s", h64, c64) < 0)
		input = NULL;
	free(h64);
	free(c64);
	return input;
}

char *jwt_mint(EVP_PKEY *key, const struct jwt_mint *m, struct err *e)
{
	char kid[JWT_KID_SIZE], *input = NULL, *s64 = NULL, *token = NULL;
	struct pub_parts pp = { 0 };
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	ERR_set_mark();
	if (check_mint(m, e) != 0 || pub_parts_get(key, &pp, e) != 0)
		goto out;
	if (jwt_kid(key, kid, sizeof(kid)) != 0) {
		err_set(e, ERR_INTERNAL, "cannot compute the key id");
		goto out;
	}
	input = mint_input(kid, pp.type, m);
	if (input == NULL) {
		err_set(e, ERR_INTERNAL, "cannot build the claims: out of memory or randomness");
		goto out;
	}
	if (sign(key, pp.type, input, &sig, &sig_len, e) != 0)
		goto out;
	s64 = base64_encode_alloc(sig, sig_len, BASE64_URL);
	if (s64 == NULL || asprintf(&token, "%s.%s", input, s64) < 0) {
		token = NULL;
		err_set(e, -ENOMEM, "out of memory");
	}
out:
	/* Together, these pieces are the token: a bearer credential. */
	if (input != NULL)
		OPENSSL_cleanse(input, strlen(input));
	if (s64 != NULL)
		OPENSSL_cleanse(s64, strlen(s64));
	if (sig != NULL)
		OPENSSL_cleanse(sig, sig_len);
	free(sig);
	free(pp.a);
	free(pp.b);
	free(input);
	free(s64);
	ERR_pop_to_mark();
	return token;
}

char *jwks_from_key(EVP_PKEY *key, struct err *e)
{
	char kid[JWT_KID_SIZE], *a64 = NULL, *b64 = NULL, *text = NULL;
	struct pub_parts pp = { 0 };
	json_t *doc = NULL;

	ERR_set_mark();
	if (pub_parts_get(key, &pp, e) != 0)
		goto out;
	if (jwt_kid(key, kid, sizeof(kid)) != 0) {
		err_set(e, ERR_INTERNAL, "cannot compute the key id");
		goto out;
	}
	a64 = base64_encode_alloc(pp.a, pp.alen, BASE64_URL);
	b64 = base64_encode_alloc(pp.b, pp.blen, BASE64_URL);
	/* The members in go-jose's order, as the API server serves them. */
	if (a64 != NULL && b64 != NULL && pp.type == KEY_RSA)
		doc = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "use", "sig", "kty",
		                "RSA", "kid", kid, "alg", "RS256", "n", a64, "e", b64);
	else if (a64 != NULL && b64 != NULL)
		doc = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "use", "sig",
		                "kty", "EC", "kid", kid, "crv", "P-256", "alg", "ES256", "x", a64,
		                "y", b64);
	text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (text == NULL)
		err_set(e, -ENOMEM, "out of memory");
out:
	free(pp.a);
	free(pp.b);
	free(a64);
	free(b64);
	json_decref(doc);
	ERR_pop_to_mark();
	return text;
}

int jwt_identity_fill(struct jwt_identity *out, const char *ns, const char *sa,
                      const char *pod_name, const char *pod_uid, struct err *e)
{
	if (ns == NULL || !valid_label(ns, strlen(ns)))
		return err_set(e, ERR_JWT_NO_IDENTITY, "the namespace is not a DNS label");
	if (sa == NULL || !valid_subdomain(sa, strlen(sa)))
		return err_set(e, ERR_JWT_NO_IDENTITY,
		               "the service account name is not a DNS subdomain");
	if ((pod_name == NULL) != (pod_uid == NULL) ||
	    (pod_name != NULL && (!valid_subdomain(pod_name, strlen(pod_name)) ||
	                          !valid_uid(pod_uid, strlen(pod_uid)))))
		return err_set(e, ERR_JWT_NO_IDENTITY, "the pod binding has a bad name or uid");
	memset(out, 0, sizeof(*out));
	snprintf(out->namespace_, sizeof(out->namespace_), "%s", ns);
	snprintf(out->service_account, sizeof(out->service_account), "%s", sa);
	if (pod_name != NULL) {
		snprintf(out->pod_name, sizeof(out->pod_name), "%s", pod_name);
		snprintf(out->pod_uid, sizeof(out->pod_uid), "%s", pod_uid);
	}
	return 0;
}
