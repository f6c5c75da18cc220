/* SPDX-License-Identifier: Apache-2.0 */
/* Following an HTTP/1.1 connection request by request, to decide on each (no sockets here). */
#ifndef MESHLET_PROXY_HTTPFLOW_H
#define MESHLET_PROXY_HTTPFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"

/*
 * An httpflow watches both directions of one connection to an HTTP/1.1 application: the
 * client's bytes (requests) and the application's (responses). The relay hands it the
 * bytes it has not let through yet, and the flow says what to do with the first of them:
 * forward n bytes, drop n bytes, wait for more, write a reply of its own to the client,
 * or abort the connection. It never changes a byte it forwards.
 *
 * Each request head is parsed strictly (http1.h) and given to decide(). An allowed request
 * goes on with its body (Content-Length or chunked, checked as it passes); a denied one is
 * dropped with its body and answered with 403. A malformed head is answered with its
 * status (400, 431, 501, 505) and the connection is closed after it. Replies are written
 * only between two responses: when requests are still waiting for their responses, the
 * reply waits until they have all ended. Pipelining works; at most HTTPFLOW_PIPELINE
 * requests wait for responses, the next waits in the buffer. After a 101 to an upgrade
 * request, or a 2xx to CONNECT, both directions are passed through untouched.
 *
 * The flow also says when it waits on the client for a request head (head_wait), so that
 * the caller can give heads a deadline; past it, httpflow_head_timeout answers 408.
 */

#define HTTPFLOW_PIPELINE 32

/* The application's response heads may be this long: the relay's whole buffer. */
#define HTTPFLOW_RESPONSE_HEAD_MAX 16384

enum httpflow_act {
	HTTPFLOW_FORWARD, /* let n bytes through */
	HTTPFLOW_DROP,    /* discard n bytes */
	HTTPFLOW_MORE,    /* nothing to do until more bytes come or the other direction moves */
	HTTPFLOW_REPLY,   /* write reply to the client, then call httpflow_replied */
	HTTPFLOW_ABORT,   /* the stream broke HTTP after part of it went through: reset */
};

struct httpflow_step {
	enum httpflow_act act;
	size_t n;
	const char *reply; /* text in the flow, valid until the next call */
	size_t reply_len;
	bool close;        /* HTTPFLOW_REPLY: no more requests; end the client's stream */
	const char *why;   /* HTTPFLOW_ABORT, and the reply's reason */
};

/* decide - return true to let the request through. Called once per request head. */
typedef bool (*httpflow_decide_fn)(void *arg, const struct http1_request *req);

struct httpflow {
	httpflow_decide_fn decide;
	void *arg;
	size_t head_limit;
	uint8_t q, s; /* request and response states */
	bool reply_close;
	int reply_status; /* a reply waiting for the responses before it, or 0 */
	const char *reply_why;
	size_t qscan, sscan;
	uint64_t qleft, sleft;
	struct http1_chunked qc, sc;
	uint32_t outstanding, first;     /* requests waiting for a response, from first */
	uint8_t kinds[HTTPFLOW_PIPELINE]; /* HEAD, CONNECT, upgrade flags of each */
	char reply[192];                  /* the reply being written */

	/*
	 * head_wait: the flow waits on the client for (the rest of) a request head. True from
	 * the start until the first head is whole, then from the first byte of each later
	 * head until it is whole; false while the flow waits on the application instead (a
	 * full pipeline, a reply behind responses) and between requests. head_since: the
	 * value of now (the caller's clock, set before each call) when that wait began; the
	 * caller may move it (the first request's wait counts from when the caller says).
	 */
	uint64_t now, head_since;
	bool head_wait;
	bool head_timed_out; /* httpflow_head_timeout was called */
};

/* httpflow_init - a flow at the start of a connection; heads longer than head_limit get 431. */
void httpflow_init(struct httpflow *f, httpflow_decide_fn decide, void *arg, size_t head_limit);

/*
 * httpflow_request, httpflow_response - what to do with the first of the len bytes at buf
 * from the client (requests) or from the application (responses) that have not been
 * let through; eof: that side's stream has ended. Call again after acting on the step,
 * until it says HTTPFLOW_MORE.
 */
void httpflow_request(struct httpflow *f, const char *buf, size_t len, bool eof,
                      struct httpflow_step *st);
void httpflow_response(struct httpflow *f, const char *buf, size_t len, bool eof,
                       struct httpflow_step *st);

/*
 * httpflow_head_timeout - the client took too long over a request head (call it only while
 * head_wait): it is answered with 408 and connection: close, once the responses before it
 * are through, like a malformed head; what the client sends from now on is dropped.
 */
void httpflow_head_timeout(struct httpflow *f);

/* httpflow_replied - the reply of the last HTTPFLOW_REPLY step is written (queued). */
void httpflow_replied(struct httpflow *f);

/*
 * httpflow_app_closed - the application's side has ended and all of it was let through:
 * unless the connection became a tunnel, no request can be answered any more. Returns
 * true when the client's remaining bytes should be dropped and its side closed.
 */
bool httpflow_app_closed(struct httpflow *f);

#endif
