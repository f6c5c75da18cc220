/* SPDX-License-Identifier: Apache-2.0 */
/* Telling a meshlet proxy's TLS ClientHello from any other first bytes of a connection. */
#ifndef MESHLET_PROXY_HELLO_H
#define MESHLET_PROXY_HELLO_H

#include <stddef.h>
#include <stdint.h>

/*
 * A client proxy reaches a Kubernetes Service on the Service's own port (kube-proxy only
 * translates those), so the server proxy's inbound capture port receives both plaintext
 * from clients without a sidecar and mutual TLS from meshed ones. It tells them apart by
 * the first bytes: a TLS handshake record holding a whole ClientHello that offers an ALPN
 * protocol of ours ("meshlet/..."). Anything else, an application's own TLS included,
 * goes to the application untouched.
 *
 * The ClientHello must be in the first record: our proxies (OpenSSL) never fragment it. A
 * record is at most 16,384 bytes, so HELLO_MAX bytes always decide.
 */
#define HELLO_MAX (5 + 16384)

enum hello_verdict {
	HELLO_MORE = 0,    /* a TLS handshake record has begun: its end decides */
	HELLO_MESHLET = 1, /* a whole ClientHello that offers a protocol with the prefix */
	HELLO_OTHER = 2,   /* anything else: not TLS, another ALPN or none, malformed */
};

/*
 * hello_classify - what the n bytes at p, the first a client sent, are. prefix is the
 * start of the ALPN protocols that count ("meshlet/"). Reads nothing past p[n]; decides as
 * soon as the bytes do: a first byte other than 22 (handshake) is HELLO_OTHER at once.
 * Once it returns HELLO_MESHLET or HELLO_OTHER, longer inputs give the same answer.
 */
enum hello_verdict hello_classify(const uint8_t *p, size_t n, const char *prefix);

#endif
