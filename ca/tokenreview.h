/* SPDX-License-Identifier: Apache-2.0 */
/* Token verification by the Kubernetes API (authentication.k8s.io/v1 TokenReview). */
#ifndef MESHLET_CA_TOKENREVIEW_H
#define MESHLET_CA_TOKENREVIEW_H

#include <stdint.h>

#include "meshlet/jwt.h"

#include "settings.h"

/* The longest a positive answer is remembered, seconds; never past the token's exp. */
#define TOKENREVIEW_CACHE_MAX 60

struct tokenreview;

/*
 * tokenreview_new - prepare to ask the API server in cfg (auth.api_server), trusting
 * auth.api_ca_file and authenticating with the token in auth.api_token_file (read again
 * for every review: the kubelet rotates it). Returns NULL with e on failure.
 */
struct tokenreview *tokenreview_new(const struct settings *cfg, struct err *e);

/*
 * tokenreview_check - have the API server review token for the configured audience and
 * fill *out with the service account (and pod, when the token is bound to one). A
 * positive answer is cached for at most TOKENREVIEW_CACHE_MAX seconds and never past
 * the token's own expiry. Returns 0, ERR_TOKENREVIEW_DENIED (the API said no: a 401),
 * ERR_TOKENREVIEW_UNAVAILABLE (the API could not be asked or answered oddly: a 503),
 * or ERR_JWT_NO_IDENTITY; e says what happened. Safe from many threads.
 */
int tokenreview_check(struct tokenreview *t, const char *token, int64_t now,
                      struct jwt_identity *out, struct err *e);

/* tokenreview_free - free t; t may be NULL. */
void tokenreview_free(struct tokenreview *t);

#endif
