/* SPDX-License-Identifier: Apache-2.0 */
/* Where the token verification keys come from: a file that is watched, or a URL polled. */
#ifndef MESHLET_CA_JWKSRC_H
#define MESHLET_CA_JWKSRC_H

#include <stdbool.h>
#include <stdint.h>

#include "meshlet/jwt.h"

#include "settings.h"

/* After a failed fetch from a URL, the next try comes this soon (milliseconds). */
#define JWKSRC_RETRY_MS 5000

struct jwksrc;

/*
 * jwksrc_new - the key source that cfg names: auth.jwks_file, or auth.jwks_url (fetched
 * every auth.jwks_refresh, trusting auth.api_ca_file, with the CA's own token from
 * auth.api_token_file as a bearer token when that file exists). NULL with e on failure.
 */
struct jwksrc *jwksrc_new(const struct settings *cfg, struct err *e);

/*
 * jwksrc_poll - load the keys when they are due (the first call, a changed file, the
 * URL's refresh time) and return the new set, which the caller owns; NULL when nothing
 * is due or the load failed (then e says why, and e->code is negative).
 */
struct jwks *jwksrc_poll(struct jwksrc *s, int64_t now_ms, struct err *e);

/* jwksrc_where - the file or URL, for log lines. */
const char *jwksrc_where(const struct jwksrc *s);

/* jwksrc_free - free s; s may be NULL. */
void jwksrc_free(struct jwksrc *s);

#endif
