/* SPDX-License-Identifier: Apache-2.0 */
/* The certify decision: a token and a CSR in, a certificate or a refusal with its reason out. */
#ifndef MESHLET_CA_CERTIFY_H
#define MESHLET_CA_CERTIFY_H

#include <stdint.h>

#include "meshlet/jwt.h"
#include "meshlet/spiffe.h"
#include "meshlet/x509.h"

#include "ratelimit.h"
#include "settings.h"
#include "sign.h"
#include "tokenreview.h"

/* What a decision needs. Everything is borrowed; the caller keeps it alive. */
struct certify_deps {
	const struct settings *cfg;
	const struct signer *signer;
	const char *chain_json;     /* certify_pem_json(sign_chain(signer)) */
	const char *bundle_json;    /* certify_pem_json(sign_roots(signer)) */
	const struct jwks *jwks;    /* jwks mode */
	struct tokenreview *review; /* tokenreview mode: used instead of jwks when set */
	struct ratelimit *rl;
	int64_t now;     /* unix seconds */
	int64_t mono_ms; /* monotonic milliseconds, for the rate limit */
};

/* The outcome, with what the audit record needs. */
struct certify_result {
	int status;        /* HTTP status */
	char code[48];     /* "" when issued; else the API error code ("jwt_expired") */
	char message[512]; /* what was wrong, for the client and the audit record */
	char *body;        /* JSON answer when issued: malloc'd, the caller frees it */
	int retry_after;   /* seconds, with 429 */
	char spiffe_id[SPIFFE_ID_MAX + 16];
	char pod_name[254];
	char pod_uid[64];
	char serial[X509_SERIAL_HEX_SIZE];
	char not_after[32];
	char key_type[24];
};

/*
 * certify - decide one POST /v1/certify: verify the bearer token (authorization is the
 * whole header, or NULL), check the namespace and the rate limit, parse the body
 * {"csr": PEM, "ttl_seconds": N}, check the CSR against the token's identity and sign.
 * Fills r; never fails otherwise.
 */
void certify(const struct certify_deps *d, const char *authorization, const char *body, size_t len,
             struct certify_result *r);

/*
 * certify_pem_json - certs as a compact JSON array of PEM strings, as an answer carries
 * them: made once per CA for certify_deps. malloc'd, the caller frees it; NULL when out of
 * memory.
 */
char *certify_pem_json(const STACK_OF(X509) *certs);

/* certify_code - the API error code for one of our error codes: "jwt_expired". */
void certify_code(int err, char *buf, size_t size);

#endif
