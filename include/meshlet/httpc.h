/* SPDX-License-Identifier: Apache-2.0 */
/* A small, strict, blocking HTTPS/1.1 client with one deadline per request. */
#ifndef MESHLET_HTTPC_H
#define MESHLET_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "meshlet/err.h"

/* What httpc_do uses when a request leaves timeout_ms or max_response at 0. */
#define HTTPC_DEFAULT_TIMEOUT_MS   10000
#define HTTPC_DEFAULT_MAX_RESPONSE (1024 * 1024)
/* Limits on each response head (status line and headers, 1xx heads too) and trailers. */
#define HTTPC_MAX_HEAD    (64 * 1024)
#define HTTPC_MAX_HEADERS 100
/* Buffer sizes for httpc_parse_url's host and path that hold any URL httpc_do accepts. */
#define HTTPC_HOST_MAX 256
#define HTTPC_PATH_MAX 4096

/*
 * struct httpc_tls - whom requests trust and which client certificate they present. Built
 * once by httpc_tls_new and never changed after, so any number of threads may pass the
 * same one to httpc_do at the same time (each call makes its own SSL from the shared,
 * reference-counted SSL_CTX). Free it only after every call that uses it has returned.
 */
struct httpc_tls;

/*
 * httpc_tls_new - the trust and identity for requests. Trusted roots come from ca_pem
 * (ca_len bytes of PEM text, need not be NUL-terminated) when it is not NULL, else from
 * the PEM file ca_file, else from the system's default store. cert_file (a PEM chain,
 * leaf first) and key_file (mode 0600, as x509_read_key demands) give a client
 * certificate: both or neither. TLS 1.2 is the oldest version offered; the server's
 * certificate is always verified. Returns NULL on failure with e saying which input is
 * bad: the codes of x509_read_chain and x509_read_key (ERR_PEM_*, ERR_KEY_PERMISSIONS,
 * -errno), ERR_X509_KEY_MISMATCH, -EINVAL for a certificate without a key or the reverse,
 * ERR_HTTPC_TLS when OpenSSL refuses the material.
 */
struct httpc_tls *httpc_tls_new(const char *ca_pem, size_t ca_len, const char *ca_file,
                                const char *cert_file, const char *key_file, struct err *e);

/* httpc_tls_free - free t (NULL is allowed). */
void httpc_tls_free(struct httpc_tls *t);

/* One extra request header. */
struct httpc_header {
	const char *name, *value;
};

/* One request; nothing in it is kept after httpc_do returns. */
struct httpc_request {
	const char *method; /* "GET", "POST", "HEAD", ...: an HTTP token */
	/*
	 * https://host[:port]/path?query, where host is a DNS name, an IPv4 address or an
	 * [IPv6] address. http:// is refused with ERR_HTTPC_URL unless allow_plain is set.
	 */
	const char *url;
	/*
	 * Extra headers. Host, Content-Length, Transfer-Encoding and Connection are ours
	 * (httpc_do sends "Connection: close"); setting one, a name that is not an HTTP
	 * token, or a value with CR, LF or another control character but HTAB is refused
	 * with ERR_HTTPC_REQUEST before any connection is made.
	 */
	const struct httpc_header *headers;
	size_t nheaders;
	const char *body; /* body_len bytes; sent with a Content-Length */
	size_t body_len;
	/*
	 * One deadline for the whole exchange, in milliseconds (0: HTTPC_DEFAULT_TIMEOUT_MS):
	 * name resolution, connecting (each resolved address in turn; an address gets the
	 * time left divided among the addresses left), the TLS handshake, sending and
	 * receiving. Name resolution (getaddrinfo) blocks: its time counts against the
	 * deadline, but only the resolver's own timeouts (resolv.conf "options timeout:
	 * attempts:") bound it. IP-address hosts never reach the resolver.
	 */
	int timeout_ms;
	size_t max_response;         /* body limit in bytes (0: HTTPC_DEFAULT_MAX_RESPONSE) */
	const struct httpc_tls *tls; /* required for https:// */
	/*
	 * The name the server's certificate must carry; NULL: the URL's host. An IP address
	 * (from either) must be an IP subject alternative name, a DNS name a DNS one. A DNS
	 * name is also sent as SNI.
	 */
	const char *server_name;
	bool allow_plain; /* allow http:// (tests of plain servers only) */
};

/* A response; free it with httpc_response_free. */
struct httpc_response {
	int status;         /* 200..599: interim (1xx) responses are skipped */
	char *content_type; /* malloc'd, NULL when absent */
	char *body;         /* malloc'd, NUL-terminated (may also hold NULs); "" for none */
	size_t body_len;
	char *retry_after; /* malloc'd copy of the Retry-After header, NULL when absent */
};

/*
 * httpc_do - open one connection, send req, read one response, close. Returns 0 with res
 * filled for any status code, or a negative code with res emptied and e->msg saying what
 * failed and where, e.g. "connect to 10.0.0.1:8443: connection refused":
 *   -ECONNREFUSED        every address refused the connection (so callers can tell
 *                        "the server is down" from the rest);
 *   ERR_HTTPC_URL        bad URL, or http:// without allow_plain;
 *   ERR_HTTPC_REQUEST    bad method or header (refused before connecting);
 *   -EINVAL              no URL, method or tls; headers or body NULL with a length; an
 *                        empty or overlong server_name; a negative timeout;
 *   ERR_HTTPC_CONNECT    the name did not resolve, connecting failed otherwise, or the
 *                        connection broke while sending or receiving;
 *   ERR_HTTPC_TLS        handshake or TLS record failure; a failed certificate check says
 *                        "certificate verify failed (reason)";
 *   ERR_HTTPC_TIMEOUT    the deadline passed ("timed out after 2000 ms while reading the
 *                        response from host:port");
 *   ERR_HTTPC_PROTOCOL   the response is not well-formed HTTP/1.1 or 1.0, or is cut short;
 *   ERR_HTTPC_TOO_LARGE  the body is longer than max_response; -ENOMEM.
 * The response must be framed by Content-Length, by chunked Transfer-Encoding or, with
 * neither, by the end of the connection; only then is a TLS close without close_notify
 * taken as the end of the body. A HEAD request, and a 204 or 304 response, has no body.
 * The calling thread's OpenSSL error queue is cleared. SIGPIPE cannot end the process:
 * it is blocked in the calling thread during the call, and one that the call raised is
 * discarded (meshlet daemons ignore SIGPIPE anyway).
 */
int httpc_do(const struct httpc_request *req, struct httpc_response *res, struct err *e);

/* httpc_response_free - free what res holds and empty it; res may be NULL. */
void httpc_response_free(struct httpc_response *res);

/*
 * httpc_parse_url - split url ("https://host[:port][/path][?query]") into host (without
 * brackets for IPv6, for connecting and logging), port (default 443, or 80 for http://),
 * path (with the query; "/" when absent) and tls (true for https). The scheme is
 * case-insensitive; userinfo, fragments, empty or bad hosts (a DNS name has only letters,
 * digits, '-', '.' and '_'; an IPv6 literal must parse, with no zone), bad ports (1 to
 * 65535) and spaces or control characters are refused. Returns 0, ERR_HTTPC_URL, or
 * ERR_TRUNCATED when host or path does not fit its buffer. Outputs are written only on
 * success.
 */
int httpc_parse_url(const char *url, char *host, size_t host_size, int *port, char *path,
                    size_t path_size, bool *tls);

#endif
