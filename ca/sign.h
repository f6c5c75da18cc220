/* SPDX-License-Identifier: Apache-2.0 */
/* The signing CA: making one, loading one, and issuing X509-SVIDs; the only code that touches a
 * CA private key. */
#ifndef MESHLET_CA_SIGN_H
#define MESHLET_CA_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

/*
 * The files of a CA directory, the layout of Istio's `cacerts` secret:
 *   root-cert.pem   the trust bundle: one root, or several during a rotation
 *   root-key.pem    the root's key (0600); signs leaves when there is no ca-cert.pem
 *   ca-cert.pem     an intermediate that signs leaves, if there is one
 *   ca-key.pem      its key (0600)
 *   cert-chain.pem  the chain from ca-cert.pem up to the root: ca-cert.pem, any
 *                   intermediates above it, then the root
 */
#define SIGN_ROOT_CERT  "root-cert.pem"
#define SIGN_ROOT_KEY   "root-key.pem"
#define SIGN_CA_CERT    "ca-cert.pem"
#define SIGN_CA_KEY     "ca-key.pem"
#define SIGN_CERT_CHAIN "cert-chain.pem"

/* The most DNS names one leaf may carry. */
#define SIGN_DNS_MAX 64

enum sign_key_type { SIGN_KEY_EC_P256, SIGN_KEY_EC_P384, SIGN_KEY_RSA_3072 };

/*
 * sign_key_type_parse - the key type named s: "ec-p256", "ec-p384" or "rsa-3072".
 * Returns 0 and sets *out, or -EINVAL.
 */
int sign_key_type_parse(const char *s, enum sign_key_type *out);

/*
 * struct signer - a loaded CA: the signing certificate and key, the intermediates sent
 * after each leaf, and the roots. Immutable once loaded: any number of threads may call
 * sign_issue and the accessors on one signer at the same time.
 */
struct signer;

/*
 * sign_init - create a new CA in dir (made, mode 0755, if missing; its parent must exist)
 * for trust_domain, with keys of type and certificates valid for ttl seconds from now
 * (backdated by an hour for clock skew). Always a self-signed root (root-cert.pem,
 * root-key.pem); with intermediate, also an intermediate that the root signs (ca-cert.pem,
 * ca-key.pem, and cert-chain.pem holding ca-cert.pem then root-cert.pem), whose notAfter
 * is never past the root's. Both carry basicConstraints CA:TRUE (pathlen 0 on the
 * intermediate) and keyUsage keyCertSign and cRLSign, both critical; subject and
 * authority key identifiers (the root's naming itself, which tells apart the roots of a
 * trust domain, as they share a subject, in a bundle during a rotation); the URI SAN
 * spiffe://<trust_domain>; and the subject O=meshlet, CN=meshlet root CA <trust_domain>
 * (or "intermediate CA"; the trust domain is left out of the CN when it would pass 64
 * bytes). Keys are written 0600, certificates 0644. When any of the five files already
 * exists in dir, nothing is written and -EEXIST is returned with a message naming it.
 * Returns 0, or an error with e filled: the ERR_SPIFFE_* code of a bad trust domain,
 * ERR_SIGN_TTL, -errno; on failure the files this call wrote are removed.
 */
int sign_init(const char *dir, const char *trust_domain, enum sign_key_type type, int64_t ttl,
              bool intermediate, struct err *e);

/*
 * sign_load - load the CA in dir. When ca-cert.pem exists: ca-cert.pem (exactly one
 * certificate), ca-key.pem, cert-chain.pem and root-cert.pem; otherwise root-cert.pem and
 * root-key.pem, where the signing certificate is the one in root-cert.pem that matches
 * the key. Checks that the key matches the certificate (ERR_X509_KEY_MISMATCH), and then,
 * with ERR_SIGN_CA: that the signing certificate is a CA (basicConstraints CA:TRUE) whose
 * keyUsage has keyCertSign, is valid now, has an EC P-256/P-384/P-521 or RSA (2048 bits
 * or more) key, and chains through cert-chain.pem to a root in root-cert.pem (which may
 * hold several: a trust bundle during a rotation). Errors of reading a file pass through
 * from lib/x509.c (-ENOENT, ERR_KEY_PERMISSIONS, ERR_PEM_* ...). Every message names the
 * file and what is wrong. Returns the signer, which the caller frees with sign_free, or
 * NULL with e filled.
 */
struct signer *sign_load(const char *dir, struct err *e);

/* sign_free - free s and wipe its key; s may be NULL. */
void sign_free(struct signer *s);

/* What sign_issue is asked for. All times are seconds (Unix time for now). */
struct sign_request {
	EVP_PKEY *pubkey; /* the leaf's key: from the CSR, or one we made */
	/*
	 * Optional: the same key as the CSR encoded it, its algorithm and subjectPublicKey
	 * bits, copied into the certificate as they are (much faster than encoding pubkey).
	 */
	const X509_ALGOR *spki_alg;
	const ASN1_BIT_STRING *spki_key;
	const struct spiffe_id *id; /* the URI SAN, or NULL */
	const char *const *dns;     /* DNS SANs (the issue command only) */
	size_t ndns;                /* how many, 0 to SIGN_DNS_MAX */
	int64_t now, ttl, backdate; /* ttl >= 1, backdate >= 0 */
};

/*
 * sign_issue - issue a leaf for r, signed by s (SHA-256, or SHA-384 for a P-384 CA key
 * and SHA-512 for P-521). The leaf has: a random positive 159-bit serial (20 bytes from
 * RAND_bytes, 158 of them random); subject O=meshlet and no CN (SPIFFE does not use the
 * subject; being non-empty, it lets the SAN stay non-critical); issuer the signing
 * certificate's subject; notBefore now - backdate and notAfter now + ttl, cut back to
 * the signing certificate's notAfter; basicConstraints CA:FALSE and keyUsage
 * digitalSignature (plus keyEncipherment for an RSA key), both critical; extendedKeyUsage
 * serverAuth and clientAuth; subject and authority key identifiers (the latter the
 * signing certificate's own); and a subjectAltName of the URI of r->id (if given)
 * followed by r->dns. r->id must have a path and, when the CA names its trust domain in
 * its URI SAN, be in it (else ERR_CSR_IDENTITY); DNS names must be lower-case host names,
 * "*." allowed as the first label (else -EINVAL). Returns 0 and *out (the caller frees
 * it with X509_free), or: ERR_SIGN_TTL for ttl < 1, backdate < 0 or times out of range;
 * ERR_SIGN_CA when the signing certificate has expired at r->now or signing fails;
 * ERR_SPIFFE_NO_PATH; -EINVAL for a missing argument or neither an ID nor a DNS name.
 * Safe to call from many threads on one signer.
 */
int sign_issue(const struct signer *s, const struct sign_request *r, X509 **out, struct err *e);

/* A leaf as sign_issue_der makes it. */
struct sign_leaf {
	unsigned char *der; /* the certificate, DER; the caller frees it with free() */
	size_t len;         /* bytes of der */
	int64_t not_after;  /* Unix seconds */
	char serial[41];    /* the serial number in lower-case hex, as x509_serial_hex */
};

/*
 * sign_issue_der - sign_issue without the X509 object: the same certificate, written as
 * DER directly (an order of magnitude less work than building it through OpenSSL's
 * object model), with its notAfter and serial. Same arguments, checks and errors; *out is
 * zeroed on failure.
 */
int sign_issue_der(const struct signer *s, const struct sign_request *r, struct sign_leaf *out,
                   struct err *e);

/*
 * sign_chain - the certificates to send after a leaf: the signing certificate and any
 * intermediates above it, up to but never including the root; empty when a root signs.
 * Owned by s.
 */
const STACK_OF(X509) *sign_chain(const struct signer *s);

/* sign_roots - the trust bundle: every certificate of root-cert.pem. Owned by s. */
const STACK_OF(X509) *sign_roots(const struct signer *s);

/*
 * sign_not_after - the signing certificate's notAfter in Unix seconds, for the metric
 * of seconds until it expires.
 */
int64_t sign_not_after(const struct signer *s);

/*
 * sign_trust_domain - the trust domain in the signing certificate's URI SAN (a SPIFFE
 * ID, normally spiffe://<td> with no path), or NULL when it has none. Owned by s.
 */
const char *sign_trust_domain(const struct signer *s);

/*
 * sign_issue_files - for `meshlet-ca issue`: make a fresh EC P-256 key, issue a leaf for
 * r (whose pubkey is ignored) and write PREFIX.key (the key, PKCS#8, mode 0600) and then
 * PREFIX.crt (the leaf, then sign_chain; mode 0644), each replaced atomically. Returns 0
 * or an error of sign_issue or of writing, with e filled.
 */
int sign_issue_files(const struct signer *s, const struct sign_request *r, const char *prefix,
                     struct err *e);

#endif
