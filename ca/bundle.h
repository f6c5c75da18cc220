/* SPDX-License-Identifier: Apache-2.0 */
/* The trust bundle that the CA serves: PEM roots, and the SPIFFE bundle (a JWK Set). */
#ifndef MESHLET_CA_BUNDLE_H
#define MESHLET_CA_BUNDLE_H

#include <stdint.h>

#include <openssl/x509.h>

#include "meshlet/err.h"

/* bundle_pem - the roots as concatenated PEM, malloc'd; NULL with e when out of memory. */
char *bundle_pem(const STACK_OF(X509) *roots, struct err *e);

/*
 * bundle_jwks - the roots in the SPIFFE trust bundle format: a JWK Set with
 * spiffe_sequence and spiffe_refresh_hint (seconds), one key per root with use
 * "x509-svid", its public key (EC P-256, P-384, P-521 or RSA) and the certificate
 * alone in x5c. Returns malloc'd JSON text, or NULL with e.
 */
char *bundle_jwks(const STACK_OF(X509) *roots, int64_t sequence, int64_t refresh_hint,
                  struct err *e);

#endif
