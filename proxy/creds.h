/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's TLS credentials: the current SVID and trust bundle as hot-swappable SSL_CTXs. */
#ifndef MESHLET_PROXY_CREDS_H
#define MESHLET_PROXY_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

/*
 * Sessions resumed from a ticket skip certificate verification, so a ticket is good for
 * this long only (TLS 1.3 ticket lifetime and SSL_SESSION timeout), in seconds.
 */
#define CREDS_SESSION_TIMEOUT 300
/* The key that encrypts session tickets is replaced this often (seconds); the one before
 * it still decrypts, so tickets survive one rotation (and any SVID rotation). */
#define CREDS_TICKET_ROTATE 600
/* A buffer this large holds creds_serial's output and any creds_handshake_failure text. */
#define CREDS_SERIAL_SIZE 48
#define CREDS_REASON_SIZE 384

/*
 * struct creds - the current identity: the SVID chain and key, the trust bundle (roots),
 * and a server and a client SSL_CTX built from them. Opaque and thread-safe: any thread
 * may take contexts while another installs a new identity. Installing swaps in new
 * contexts; each SSL keeps the SSL_CTX it was made from (OpenSSL reference-counts them),
 * so open connections are never disturbed.
 */
struct creds;

struct creds_options {
	const char *trust_domain; /* peers must be spiffe://<trust_domain>/...; copied */
	/*
	 * The application protocols, comma-separated in order of preference, e.g.
	 * "meshlet/2,meshlet/1" (at most 254 bytes; copied). A client offers them all; a
	 * server picks the first of them that the client offers.
	 */
	const char *alpn;
	bool alpn_required; /* the server refuses a client that offers none of them */
	/*
	 * Optional, for client-side session resumption: called with each session a server
	 * sends on a connection from a client context (the internal client cache stays off).
	 * sess is a copy that the callback owns: return 1 to keep it (SSL_SESSION_free it
	 * later), 0 to have it freed. Being a copy, it stays resumable even when its own
	 * connection ends without a close_notify. Offer it on a later connection to the same
	 * destination with creds_resume.
	 */
	int (*client_new_session)(SSL *ssl, SSL_SESSION *sess);
};

/*
 * creds_new - empty credentials (creds_ready false) that check peers against o. Returns
 * NULL when o is bad (a trust domain that spiffe_td_validate refuses, an empty or
 * overlong alpn, an empty name in it) or memory is short. Free with creds_free once no other thread uses it.
 */
struct creds *creds_new(const struct creds_options *o);

/* creds_free - free c (NULL is allowed). Contexts taken from it stay valid until freed. */
void creds_free(struct creds *c);

/*
 * creds_install - make chain (leaf first, then intermediates; at least the leaf), key
 * and roots (at least one) the current identity. Checks, in this order: key matches the
 * leaf (ERR_X509_KEY_MISMATCH); the leaf is not a CA (ERR_CREDS_NOT_LEAF); it has exactly
 * one URI SAN that is a workload SPIFFE ID (the codes of x509_spiffe_id, ERR_SPIFFE_NO_PATH)
 * in our trust domain (ERR_CREDS_TRUST_DOMAIN); the chain verifies to the roots now, for
 * TLS client and server use (ERR_CREDS_CHAIN, saying why). Then builds both contexts and
 * swaps them in. Nothing is taken over: the caller still owns and frees its arguments.
 * Returns 0, or a negative code with e saying what is wrong; the current identity is then
 * untouched.
 */
int creds_install(struct creds *c, STACK_OF(X509) *chain, EVP_PKEY *key, STACK_OF(X509) *roots,
                  struct err *e);

/*
 * creds_server_ctx, creds_client_ctx - a new reference to the current context, which the
 * caller releases with SSL_CTX_free; NULL before the first install. Both are TLS 1.3 only
 * and check the peer's chain against the roots and its SPIFFE ID (below) during the
 * handshake. The server requires a client certificate, requires the ALPN when
 * alpn_required, and issues session tickets; the client offers the ALPN. Do not change
 * the contexts: they are shared. Per-connection settings go on the SSL.
 */
SSL_CTX *creds_server_ctx(struct creds *c);
SSL_CTX *creds_client_ctx(struct creds *c);

/*
 * creds_resume - offer sess (from client_new_session) on the client SSL ssl before its
 * handshake. A copy is offered: OpenSSL marks the session of a connection that is freed
 * without a close_notify sent as not resumable, and this keeps that from spoiling sess
 * for later connections. The server decides whether to resume (SSL_session_reused).
 * Returns 0, -ENOMEM or -EINVAL (a session of another protocol version).
 */
int creds_resume(SSL *ssl, SSL_SESSION *sess);

/* creds_ready - whether an identity has been installed. */
bool creds_ready(struct creds *c);

/* creds_not_after - the current leaf's notAfter in Unix seconds; 0 before install. */
int64_t creds_not_after(struct creds *c);

/* creds_serial - the current leaf's serial in hex into buf (CREDS_SERIAL_SIZE); "" before. */
void creds_serial(struct creds *c, char *buf, size_t size);

/* creds_id - the current SPIFFE ID into *out; returns 0, or -ENOENT before install. */
int creds_id(struct creds *c, struct spiffe_id *out);

/* creds_rotations - installs that replaced an identity (the first install is not one). */
uint64_t creds_rotations(struct creds *c);

/*
 * creds_expect_peer - on a client SSL made from a creds context, before the handshake:
 * the server must be exactly id (copied), not just any ID in the trust domain. NULL
 * clears it. Returns 0 or -ENOMEM.
 */
int creds_expect_peer(SSL *ssl, const struct spiffe_id *id);

/*
 * creds_peer_id - after a completed handshake: the peer's SPIFFE ID into *out, checked
 * again against the trust domain and creds_expect_peer (a resumed session skips the
 * handshake's verification). Returns 0, ERR_CREDS_NO_PEER (no peer certificate), the
 * codes of x509_spiffe_id, ERR_CREDS_TRUST_DOMAIN, ERR_CREDS_PEER_ID, or -EINVAL for an
 * SSL that did not come from creds.
 */
int creds_peer_id(SSL *ssl, struct spiffe_id *out);

/*
 * creds_verify_error - why our verification refused the peer's certificate on this SSL,
 * e.g. "peer spiffe://other.org/ns/a/sa/b is not in trust domain example.org"; NULL when
 * it refused nothing (the handshake may still have failed otherwise: see below). The
 * string lives as long as the SSL.
 */
const char *creds_verify_error(SSL *ssl);

/* Why a handshake failed, by cause; creds_failure_name gives a metric label for each. */
enum creds_failure {
	CREDS_FAIL_NONE,         /* "none": no failure recorded */
	CREDS_FAIL_UNTRUSTED,    /* "untrusted": the chain does not verify to our roots */
	CREDS_FAIL_EXPIRED,      /* "expired": a certificate expired or is not valid yet */
	CREDS_FAIL_NO_SPIFFE_ID, /* "no_spiffe_id": not one workload SPIFFE ID, or a CA */
	CREDS_FAIL_TRUST_DOMAIN, /* "trust_domain": an ID from another trust domain */
	CREDS_FAIL_PEER_ID,      /* "peer_id": not the ID creds_expect_peer asked for */
	CREDS_FAIL_NO_CERT,      /* "no_certificate": the client sent no certificate */
	CREDS_FAIL_ALPN,         /* "alpn": no common application protocol */
	CREDS_FAIL_PEER_REFUSED, /* "peer_refused": the peer refused our certificate */
	CREDS_FAIL_PROTOCOL,     /* "protocol": anything else (versions, broken records) */
};

/* creds_failure_name - the label of f ("untrusted", ...), never NULL. */
const char *creds_failure_name(enum creds_failure f);

/*
 * creds_handshake_failure - after SSL_do_handshake (or a first read) failed with
 * SSL_ERROR_SSL: its cause, and one line for a log into buf (size bytes, CREDS_REASON_SIZE
 * is enough; buf may be NULL when size is 0), such as "peer spiffe://example.org/ns/a/sa/b:
 * certificate verify failed: certificate has expired" or "peer did not return a
 * certificate". A cause that our callbacks recorded (verification, ALPN) stays with the
 * SSL and is reliable at any later time; the others come from the thread's OpenSSL error
 * queue, so call this right after the failing call, in the same thread. Clears that queue.
 */
enum creds_failure creds_handshake_failure(SSL *ssl, char *buf, size_t size);

#endif
