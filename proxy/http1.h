/* SPDX-License-Identifier: Apache-2.0 */
/* A strict HTTP/1.1 message-head parser and chunked-body framer, for per-request policy. */
#ifndef MESHLET_PROXY_HTTP1_H
#define MESHLET_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The proxy reads request heads to decide on each request, and response heads only to
 * know where each response ends (so that a 403 it writes itself lands between two
 * responses of the application, never inside one). It never rewrites a message it lets
 * through.
 *
 * Requests are read as RFC 9112 says a server must, and refused (with the status in
 * http1_error) where two parsers could disagree on where a request ends, which is what
 * request smuggling exploits:
 * - lines end in CRLF; a bare LF or a bare CR anywhere in the head is refused (400);
 * - obsolete line folding (a field line starting with SP or HTAB) is refused (400);
 * - control characters other than HTAB in a field value, and any in the request line,
 *   are refused (400), as are field names that are not tokens, or whitespace before ':';
 * - Content-Length must be digits only; two Content-Length fields (even equal) and
 *   Transfer-Encoding together with Content-Length are refused (400);
 * - Transfer-Encoding must be exactly "chunked" (any other coding: 501); in an HTTP/1.0
 *   request it is refused (400);
 * - HTTP/1.1 requests need exactly one Host field (RFC 9112 3.2), HTTP/1.0 at most one;
 *   versions other than 1.0 and 1.1 get 505;
 * - a head over the limit, or with more than HTTP1_HEADERS_MAX fields, gets 431.
 * Empty lines (CRLF) before a request line are skipped, as RFC 9112 2.2 allows (at most
 * HTTP1_EMPTY_LINES_MAX).
 *
 * The proxy forwards requests unchanged, so it also refuses (400) what the application
 * could read differently from the policy: a path that is not in normal form (a "." or ".."
 * segment, "//", a backslash, a percent-encoded unreserved character such as %61), an
 * absolute-form target whose authority differs from Host, and an Upgrade to anything but
 * WebSocket (an h2c upgrade would carry requests nobody checks). CONNECT gets 405.
 */

#define HTTP1_HEADERS_MAX 100

/* Bytes of one trailer section of a chunked body, and of one chunk's extensions. */
#define HTTP1_TRAILER_MAX 8192
/* Empty lines (CRLF) allowed before a request line. */
#define HTTP1_EMPTY_LINES_MAX 4
#define HTTP1_CHUNK_EXT_MAX 256

/* A piece of the parsed buffer (not NUL-terminated). */
struct http1_str {
	const char *p;
	size_t len;
};

struct http1_header {
	struct http1_str name, value; /* value without leading and trailing whitespace */
};

enum http1_framing {
	HTTP1_BODY_NONE,
	HTTP1_BODY_LENGTH,  /* length bytes follow */
	HTTP1_BODY_CHUNKED, /* the chunked coding, feed it to http1_chunked_feed */
	HTTP1_BODY_EOF,     /* responses only: the body ends with the connection */
};

/* Why a head was refused: the status to answer and a short reason for logs. */
struct http1_error {
	int status; /* 400, 405, 431, 501 or 505 */
	const char *reason;
};

struct http1_request {
	struct http1_str method;
	struct http1_str target; /* as sent */
	struct http1_str path;   /* the target's path, without query ("" for authority-form and
	                            "*") */
	struct http1_str host;   /* Host (an absolute-form target's authority equals it) */
	int minor;               /* HTTP/1.<minor>: 0 or 1 */
	bool keep_alive;         /* the connection stays open after this exchange */
	bool upgrade;            /* Connection: upgrade with Upgrade: websocket */
	enum http1_framing framing;
	uint64_t length; /* for HTTP1_BODY_LENGTH */
	size_t nheaders;
	struct http1_header headers[HTTP1_HEADERS_MAX];
};

struct http1_response {
	int status;
	int minor;
	enum http1_framing framing;
	uint64_t length;
};

/*
 * http1_head_end - find where the head that starts at buf ends: the byte after its empty
 * line. *scan is where the previous call stopped (0 at first) so that a head that comes a
 * byte at a time is scanned once. Returns the head's length, 0 when more bytes are
 * needed (and fewer than limit have come), or -1 with *why (bare CR or LF: 400; no end
 * within limit bytes: 431).
 */
long http1_head_end(const char *buf, size_t len, size_t limit, size_t *scan,
                    struct http1_error *why);

/*
 * http1_parse_request - parse a complete request head of len bytes (from http1_head_end);
 * req's strings point into buf. Returns 0, or -1 with *why.
 */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req,
                        struct http1_error *why);

/*
 * http1_parse_response - parse a complete response head; head_request says the request
 * was HEAD, connect that it was CONNECT (both change where the response ends). Returns 0
 * or -1 with *why (the application broke HTTP: the proxy closes the connection).
 */
int http1_parse_response(const char *buf, size_t len, bool head_request, bool connect,
                         struct http1_response *resp, struct http1_error *why);

/* http1_header_get - the first field named name (any case) of req, or NULL. */
const struct http1_header *http1_header_get(const struct http1_request *req, const char *name);

/* A chunked body being read: zero it to start. */
struct http1_chunked {
	uint8_t state;
	uint8_t digits;
	uint16_t ext;
	uint32_t trailer;
	uint64_t remaining;
};

/*
 * http1_chunked_feed - read len bytes of a chunked body. Returns how many of them belong
 * to the body (all of them, unless it ended: then *done is true and the rest belongs to
 * what follows), or -1 on a malformed body (bad chunk size, bare LF, missing CRLF after
 * the data, control characters, an overlong extension or trailer section).
 */
long http1_chunked_feed(struct http1_chunked *c, const char *buf, size_t len, bool *done);

#endif
