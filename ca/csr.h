/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing and checking a workload's certificate signing request: no HTTP, no CA key. */
#ifndef MESHLET_CA_CSR_H
#define MESHLET_CA_CSR_H

#include <stddef.h>

#include <openssl/x509.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

/* The largest PEM text csr_parse reads, in bytes; a CSR is about 1 KiB (RSA-8192: 3 KiB). */
#define CSR_PEM_MAX (64 * 1024)

/* What csr_check learnt about a request, for the audit log. */
struct csr_info {
	char key_desc[24]; /* "ec-p256", "ec-p384", "rsa-2048"; "" when not known */
};

/*
 * struct csr - a decoded PKCS#10 request. Opaque. csr_parse decodes only the structure:
 * the public key stays bytes until csr_check judges it and builds the EVP_PKEY, which
 * spares OpenSSL 3.0's generic key decoder (most of the cost of an issuance).
 */
struct csr;

/*
 * csr_parse - decode len bytes of PEM text (no NUL needed) holding exactly one PKCS#10
 * request, labelled "CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST". Text outside PEM
 * blocks (as `openssl req -text` writes) is skipped; any other PEM block (a certificate, a
 * key), a second request, PEM headers, damaged base64, bytes after the DER, a version other
 * than 1, input over CSR_PEM_MAX bytes and empty input all fail with ERR_CSR_MALFORMED and
 * a message saying which. Nothing is checked beyond the encoding: call csr_check. Returns
 * the request, which the caller frees with csr_free, or NULL with e filled. OpenSSL's
 * error queue is left as it was.
 */
struct csr *csr_parse(const char *pem, size_t len, struct err *e);

/*
 * csr_parse_der - as csr_parse, for the len bytes of one DER request (no PEM around it):
 * bytes after the request and a version other than 1 give ERR_CSR_MALFORMED.
 */
struct csr *csr_parse_der(const unsigned char *der, size_t len, struct err *e);

/* csr_free - free a request from csr_parse; c may be NULL. */
void csr_free(struct csr *c);

/*
 * csr_check - decide whether c may be signed for the identity want (from the caller's
 * verified token). In this order:
 *   - the key must be EC P-256, EC P-384 (named curves, a valid point) or RSA of 2048 to
 *     8192 bits, else ERR_CSR_KEY with the key's type and size in the message;
 *   - the self-signature must use SHA-256, SHA-384, SHA-512 or RSA-PSS and must verify,
 *     else ERR_CSR_SIGNATURE;
 *   - the requested extensions may hold at most one subjectAltName, whose only entry may
 *     be one URI equal, byte for byte, to want; a URI naming anything else, several URIs,
 *     or any DNS, IP, email or other name give ERR_CSR_IDENTITY, as a workload
 *     certificate carries its SPIFFE ID and nothing else. A damaged or repeated extension
 *     request gives ERR_CSR_MALFORMED. Nothing requested is ever changed to fit.
 * A request with no subjectAltName at all is fine: the signer adds want. The subject and
 * every other requested extension are ignored (the signer sets them all). info, when not
 * NULL, gets the key's description as soon as it is known, also on a later failure.
 * Returns 0, one of the codes above, or -EINVAL for a NULL c or want.
 */
int csr_check(struct csr *c, const struct spiffe_id *want, struct csr_info *info, struct err *e);

/*
 * csr_pubkey - the request's public key, built by csr_check once the key passed (also
 * when a later check failed); NULL before. Owned by c.
 */
EVP_PKEY *csr_pubkey(const struct csr *c);

/*
 * csr_spki - the request's SubjectPublicKeyInfo as it was encoded: its algorithm and the
 * subjectPublicKey bits, for the signer to copy into the certificate as they are. Owned
 * by c.
 */
void csr_spki(const struct csr *c, const X509_ALGOR **alg, const ASN1_BIT_STRING **key);

#endif
