/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes service-account tokens (JWT): strict verification against a JWKS, and minting. */
#ifndef MESHLET_JWT_H
#define MESHLET_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "meshlet/err.h"

/*
 * Limits. A Kubernetes projected token is about 1 KiB; a token beyond JWT_MAX_LEN is refused
 * before anything is decoded. A JWKS served by an API server holds a few keys.
 */
#define JWT_MAX_LEN       16384        /* bytes of compact token */
#define JWT_KID_MAX       256          /* bytes of a "kid", in a token header or a JWK */
#define JWT_KID_SIZE      44           /* room for jwt_kid's output: 43 characters and the NUL */
#define JWKS_MAX_LEN      (256 * 1024) /* bytes of JWKS JSON */
#define JWKS_MAX_KEYS     64           /* entries in "keys", usable or not */
#define JWKS_RSA_MIN_BITS 2048
#define JWKS_RSA_MAX_BITS 16384

/*
 * struct jwks - a parsed, immutable key set: RSA keys (for RS256) and EC P-256 keys (for
 * ES256). Opaque. Once parsed it is never modified, so any number of threads may verify
 * tokens against one key set at the same time.
 */
struct jwks;

/*
 * jwks_parse - parse len bytes of json (no NUL needed) as a JWKS, {"keys": [...]}, as an
 * API server serves it at /openid/v1/jwks. Duplicate JSON object keys are refused. Per key:
 *   - "kty" is required (its absence is an error). "RSA" and "EC" are read; any other type
 *     (such as "oct" or "OKP") is skipped, never an error;
 *   - "use", when present, must be a string; a key whose "use" is not "sig" is skipped;
 *   - "alg", when present, must be a string; an RSA key whose alg is not RS256 and an EC
 *     key whose alg is not ES256 are skipped (they may not verify our algorithms);
 *   - "kid", when present, is a string of 1 to JWT_KID_MAX bytes, unique in the set (even
 *     among skipped keys); keys without a kid are allowed;
 *   - an EC key must have a "crv"; one whose crv is not "P-256" is skipped; for P-256, "x"
 *     and "y" are strict base64url of exactly 32 bytes each and must be a point on the curve;
 *   - an RSA key's "n" and "e" are strict base64url of big-endian integers without leading
 *     zero bytes; n has JWKS_RSA_MIN_BITS to JWKS_RSA_MAX_BITS bits and passes OpenSSL's
 *     public key check; e is odd, from 65537 to 2^32 - 1;
 *   - a key with private material ("d") is refused: a JWKS is public;
 *   - members of a wrong JSON type are errors; other members (x5c, key_ops...) are ignored.
 * A set with no usable key at all, more than JWKS_MAX_KEYS entries or more than JWKS_MAX_LEN
 * bytes is also refused. Returns the key set, which the caller frees with jwks_free, or NULL
 * with e filled: ERR_JWKS_MALFORMED (the message names the key index and what is wrong),
 * -ENOMEM or -EINVAL (json NULL).
 */
struct jwks *jwks_parse(const char *json, size_t len, struct err *e);

/* jwks_free - free a key set from jwks_parse; k may be NULL. */
void jwks_free(struct jwks *k);

/* jwks_count - the number of usable keys in k (skipped ones not counted); 0 for NULL. */
size_t jwks_count(const struct jwks *k);

/* What a verified token says about the workload: plain data, NUL-terminated strings. */
struct jwt_identity {
	char namespace_[64];       /* a DNS label, at most 63 bytes */
	char service_account[254]; /* a DNS subdomain, at most 253 bytes */
	char pod_name[254];        /* "" when the token has no pod binding */
	char pod_uid[64];          /* "" when the token has no pod binding */
	int64_t exp;               /* unix seconds */
};

/* What jwt_verify requires of a token's claims. */
struct jwt_verify_opts {
	const char *issuer;   /* required exact "iss"; not NULL, not empty */
	const char *audience; /* must be in "aud" (a string or an array); not NULL, not empty */
	int64_t now;          /* unix seconds, >= 0 */
	int64_t skew;         /* seconds of tolerance for exp, nbf and iat, 0 to 86400 */
};

/*
 * jwt_verify - verify len bytes of token (compact JWS, no NUL needed) against keys, then
 * check its claims against o, and fill *out (only on success). The caller owns everything.
 * Checks, in this order, each with its own code:
 *   1. structure -> ERR_JWT_MALFORMED: 1 to JWT_MAX_LEN bytes; exactly three parts split by
 *      '.'; each strict base64url (no '=', no whitespace, canonical trailing bits); header
 *      and payload are JSON objects without duplicate keys; the header's "alg" is a string,
 *      "kid" (when present) a string of 1 to JWT_KID_MAX bytes, "typ" (when present) "JWT"
 *      in any case; a "crit" header is refused, as we implement no extension;
 *   2. alg "none" (in any case) -> ERR_JWT_ALG_NONE, with a signature part or without (an
 *      empty one); HS256/HS384/HS512 (in any case) -> ERR_JWT_ALG_HMAC, whatever the secret;
 *      any alg but exactly "RS256" or "ES256" -> ERR_JWT_ALG_UNSUPPORTED;
 *   3. key choice -> ERR_JWT_UNKNOWN_KID: with a kid, the key with exactly that kid; without
 *      one, the only key in the set of the alg's type (RSA for RS256, P-256 for ES256), and
 *      if there are none or several of that type, this error. Keys come from keys alone:
 *      header parameters that carry or point to a key (jwk, jku, x5c, x5u) are ignored;
 *   4. signature -> ERR_JWT_SIGNATURE: also when the kid's key is of the other type than
 *      the alg needs (RS256 naming an EC key's kid); an RS256 signature must be as long as the
 *      modulus; an ES256 signature must be raw r||s of exactly 64 bytes (RFC 7518 3.4), so
 *      a DER-encoded one is refused;
 *   5. claims, now authenticated (a claim of the wrong JSON type is ERR_JWT_MALFORMED; the
 *      times must be JSON integers): "exp" is required (a token without it is
 *      ERR_JWT_MALFORMED) and exp + skew > now, else ERR_JWT_EXPIRED; "nbf" and "iat", when
 * present, must satisfy t - skew <= now, else ERR_JWT_NOT_YET_VALID; "iss" must be present and
 * equal o->issuer exactly, else ERR_JWT_ISSUER; o->audience must be "aud" or one of its elements
 * (byte for byte), else ERR_JWT_AUDIENCE (also when "aud" is missing or []);
 *   6. identity -> ERR_JWT_NO_IDENTITY: from "kubernetes.io" when present (it must then give
 *      "namespace" and "serviceaccount"."name"; "pod", when present, must give "name" and
 *      "uid"), else from "sub" = "system:serviceaccount:<ns>:<sa>"; when both are present
 *      they must name the same account. The namespace must be a DNS label (RFC 1123, at
 *      most 63 bytes), the service account and pod names DNS subdomains (at most 253
 *      bytes), the pod uid 1 to 63 bytes of letters, digits and '-'.
 * e->msg says precisely what is wrong; it may quote the kid, alg, iss, aud and sub (cut at
 * 64 bytes, with unprintable bytes, '"' and '\\' shown as '?') and times, never the token's
 * parts or its signature. Returns 0, one of the codes above, -EINVAL (a NULL argument, an
 * empty issuer or audience, now < 0, skew outside 0 to 86400) or -ENOMEM.
 */
int jwt_verify(const char *token, size_t len, const struct jwks *keys,
               const struct jwt_verify_opts *o, struct jwt_identity *out, struct err *e);

/*
 * jwt_identity_fill - check Kubernetes names as jwt_verify does (the namespace a DNS
 * label, the service account and pod DNS subdomains, the pod uid letters, digits and
 * '-'; pod name and uid together or neither) and copy them into *out, for identities
 * that come from elsewhere (a TokenReview). Returns 0 or ERR_JWT_NO_IDENTITY with e.
 */
int jwt_identity_fill(struct jwt_identity *out, const char *ns, const char *sa,
                      const char *pod_name, const char *pod_uid, struct err *e);

/* The arguments of jwt_mint; the strings are NUL-terminated and stay the caller's. */
struct jwt_mint {
	const char *issuer;          /* "iss", not empty */
	const char *audience;        /* the one element of "aud", not empty */
	const char *namespace_;      /* a DNS label */
	const char *service_account; /* a DNS subdomain */
	const char *sa_uid;          /* the service account's uid; NULL: a random UUID */
	const char *pod_name;        /* NULL or a DNS subdomain: binds the token to a pod */
	const char *pod_uid;         /* with pod_name; NULL: a random UUID */
	int64_t now, ttl;            /* unix seconds; ttl > 0 */
};

/*
 * jwt_mint - for `meshlet-ca token` (development only): sign a token shaped exactly like a
 * Kubernetes projected service-account token with key, a private RSA key (at least
 * JWKS_RSA_MIN_BITS; RS256) or EC P-256 key (ES256). Header {"alg", "kid": jwt_kid(key)};
 * claims, in Kubernetes' sorted order: aud [audience], exp now+ttl, iat now, iss, jti (a
 * random UUID, as Kubernetes 1.29+ sets), kubernetes.io {namespace, pod {name, uid} when
 * pod_name is set, serviceaccount {name, uid}}, nbf now, sub
 * "system:serviceaccount:<ns>:<sa>". Returns the malloc'd NUL-terminated token, which the
 * caller frees, or NULL with e filled: -EINVAL (bad arguments, the message says which),
 * ERR_JWT_ALG_UNSUPPORTED (another key type, curve or a small RSA key), ERR_INTERNAL
 * (signing failed, e.g. key has no private half; no randomness) or -ENOMEM.
 */
char *jwt_mint(EVP_PKEY *key, const struct jwt_mint *m, struct err *e);

/*
 * jwt_kid - the Kubernetes key id of key's public half into buf (size bytes, the caller's):
 * base64url without padding of SHA-256 over the DER SubjectPublicKeyInfo, with an EC point
 * uncompressed and a named curve, as Go's x509.MarshalPKIXPublicKey writes it. Only keys
 * that jwt_mint accepts. Returns 0, ERR_TRUNCATED when size < JWT_KID_SIZE (buf then holds
 * "" if size > 0), ERR_JWT_ALG_UNSUPPORTED for another key type, -EINVAL for a NULL key,
 * or ERR_INTERNAL.
 */
int jwt_kid(EVP_PKEY *key, char *buf, size_t size);

/*
 * jwks_from_key - the JWKS that an API server's /openid/v1/jwks serves for key (only its
 * public half is used): {"keys":[{"use":"sig","kty",kid,"alg", then n/e or crv/x/y}]}, as
 * compact JSON text. Returns it malloc'd (the caller frees it) or NULL with e filled:
 * ERR_JWT_ALG_UNSUPPORTED for a key jwt_mint would refuse, ERR_INTERNAL or -ENOMEM.
 */
char *jwks_from_key(EVP_PKEY *key, struct err *e);

#endif
