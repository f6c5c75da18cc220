/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-ca's HTTPS API: routes, audit records and metrics around the certify decision. */
#ifndef MESHLET_CA_API_H
#define MESHLET_CA_API_H

#include <pthread.h>
#include <stdbool.h>

#include "meshlet/audit.h"
#include "meshlet/httpd.h"
#include "meshlet/jwt.h"

#include "ratelimit.h"
#include "settings.h"
#include "sign.h"
#include "tokenreview.h"

/* The largest request body: a CSR and a TTL fit in a few KiB. */
#define API_MAX_BODY (64 * 1024)

/* The running CA. The JWKS may be replaced while requests are served. */
struct api {
	const struct settings *cfg;
	struct signer *signer;
	struct ratelimit *rl;
	struct audit *audit;
	struct httpd *httpd;
	pthread_rwlock_t jwks_lock;
	struct jwks *jwks;          /* under jwks_lock; NULL in tokenreview mode */
	struct tokenreview *review; /* tokenreview mode */
	char *bundle_pem;           /* GET /v1/bundle, made once */
	char *bundle_jwks;          /* GET /v1/bundle.jwks, made once */
	char *chain_json;           /* every answer's cert_chain after the leaf, made once */
	char *bundle_json;          /* every answer's trust_bundle, made once */
};

/*
 * api_init - prepare the answers and parts of answers that do not change (the trust
 * bundle in PEM, JWKS and JSON form, the chain after each leaf). signer, jwks, review, rl
 * and audit are handed over, even on failure: api_free frees them. One of jwks and review
 * is NULL.
 */
int api_init(struct api *a, const struct settings *cfg, struct signer *signer, struct jwks *jwks,
             struct tokenreview *review, struct ratelimit *rl, struct audit *audit, struct err *e);

/* api_set_jwks - replace the token verification keys; the old set is freed. */
void api_set_jwks(struct api *a, struct jwks *jwks);

/* api_handle - the httpd handler: every route of the API. arg is the struct api. */
void api_handle(void *arg, const struct httpd_request *req, struct httpd_response *res);

/* api_free - free what api_init was given and made. */
void api_free(struct api *a);

#endif
