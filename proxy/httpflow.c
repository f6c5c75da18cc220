/* SPDX-License-Identifier: Apache-2.0 */
/* Following an HTTP/1.1 connection request by request: framing, decisions, our own replies. */
#include <stdio.h>
#include <string.h>

#include "httpflow.h"

/* Request states. */
enum {
	Q_HEAD,
	Q_BODY_LEN,
	Q_BODY_CHUNKED,
	Q_SKIP_LEN,     /* a denied request's body, dropped */
	Q_SKIP_CHUNKED,
	Q_UPGRADE_WAIT, /* an upgrade request went through: wait for its response */
	Q_TUNNEL,
	Q_CLOSED, /* after a reply that closes: everything else is dropped */
};

/* Response states. */
enum { S_HEAD, S_BODY_LEN, S_BODY_CHUNKED, S_BODY_EOF, S_TUNNEL };

/* What a waiting request changes about its response. */
enum { K_HEAD = 1, K_CONNECT = 2, K_UPGRADE = 4 };

/* Our own answers, by status. */
static const struct {
	int status;
	const char *line, *body;
} replies[] = {
	{ 403, "403 Forbidden", "meshlet: access denied\n" },
	{ 400, "400 Bad Request", "meshlet: malformed request\n" },
	{ 408, "408 Request Timeout", "meshlet: request head not received in time\n" },
	{ 405, "405 Method Not Allowed", "meshlet: CONNECT is not supported on HTTP ports\n" },
	{ 431, "431 Request Header Fields Too Large", "meshlet: request head too large\n" },
	{ 501, "501 Not Implemented", "meshlet: transfer coding not supported\n" },
	{ 505, "505 HTTP Version Not Supported", "meshlet: HTTP version not supported\n" },
};

void httpflow_init(struct httpflow *f, httpflow_decide_fn decide, void *arg, size_t head_limit)
{
	memset(f, 0, sizeof(*f));
	f->decide = decide;
	f->arg = arg;
	f->head_limit = head_limit;
	f->head_wait = true; /* the first request's head, from the start */
}

static void step(struct httpflow_step *st, enum httpflow_act act, size_t n)
{
	st->act = act;
	st->n = n;
}

/* Queues a reply of status; it is written once no response is pending. */
static void want_reply(struct httpflow *f, int status, bool close, const char *why)
{
	f->reply_status = status;
	f->reply_close = close;
	f->reply_why = why;
}

static bool reply_step(struct httpflow *f, struct httpflow_step *st)
{
	size_t i = 0;
	int n;

	if (f->reply_status == 0)
		return false;
	if (f->outstanding > 0) {
		step(st, HTTPFLOW_MORE, 0);
		return true;
	}
	while (i + 1 < sizeof(replies) / sizeof(replies[0]) && replies[i].status != f->reply_status)
		i++;
	if (replies[i].status != f->reply_status)
		i = 1; /* 400 */
	n = snprintf(f->reply, sizeof(f->reply),
	             "HTTP/1.1 %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n%s\r\n%s",
	             replies[i].line, strlen(replies[i].body),
	             f->reply_close ? "connection: close\r\n" : "", replies[i].body);
	step(st, HTTPFLOW_REPLY, 0);
	st->reply = f->reply;
	st->reply_len = n > 0 && (size_t)n < sizeof(f->reply) ? (size_t)n : 0;
	st->close = f->reply_close;
	st->why = f->reply_why;
	return true;
}

bool httpflow_app_closed(struct httpflow *f)
{
	if (f->q == Q_TUNNEL)
		return false; /* a tunnel half-closes like any TCP stream */
	f->q = Q_CLOSED;
	f->reply_status = 0;
	f->head_wait = false;
	return true;
}

void httpflow_head_timeout(struct httpflow *f)
{
	want_reply(f, 408, true, "request head timeout");
	f->q = Q_CLOSED;
	f->head_wait = false;
	f->head_timed_out = true;
}

void httpflow_replied(struct httpflow *f)
{
	if (f->reply_close) {
		f->q = Q_CLOSED;
		f->head_wait = false;
	}
	f->reply_status = 0;
}

/* The flow waits on the client for the rest of a head: the clock runs from now if it did not. */
static void head_waits(struct httpflow *f)
{
	if (!f->head_wait) {
		f->head_wait = true;
		f->head_since = f->now;
	}
}

/* A request head: parse, decide, and set up its body. */
static void request_head(struct httpflow *f, const char *buf, size_t len, bool eof,
                         struct httpflow_step *st)
{
	/* Large, and needed only during this call: one per thread, not one per connection. */
	static __thread struct http1_request req;
	struct http1_error why = { 0 };
	long n;
	bool allow;
	uint8_t kind = 0;

	if (f->outstanding == HTTPFLOW_PIPELINE) {
		/* Waiting on the application, not on the client. */
		f->head_wait = false;
		step(st, HTTPFLOW_MORE, 0);
		return;
	}
	n = http1_head_end(buf, len, f->head_limit, &f->qscan, &why);
	if (n == 0) {
		/* A head cut short by the end of the stream: nothing to forward. */
		step(st, eof && len > 0 ? HTTPFLOW_DROP : HTTPFLOW_MORE, eof ? len : 0);
		if (eof)
			f->head_wait = false;
		else
			head_waits(f);
		return;
	}
	f->qscan = 0;
	f->head_wait = false;
	if (n < 0 || http1_parse_request(buf, (size_t)n, &req, &why) < 0) {
		want_reply(f, why.status, true, why.reason);
		f->q = Q_CLOSED;
		reply_step(f, st);
		return;
	}
	allow = f->decide(f->arg, &req);
	if (!allow && req.framing != HTTP1_BODY_NONE && http1_header_get(&req, "expect") != NULL) {
		/*
		 * The client waits for 100 Continue before it sends the body, so skipping the
		 * body first would stall; and after a final answer it may never send it. Answer
		 * now and close: framing stays certain either way.
		 */
		want_reply(f, 403, true, "denied");
		f->q = Q_CLOSED;
		step(st, HTTPFLOW_DROP, (size_t)n);
		return;
	}
	if (!allow) {
		want_reply(f, 403, !req.keep_alive, "denied");
		if (req.framing == HTTP1_BODY_LENGTH) {
			f->q = Q_SKIP_LEN;
			f->qleft = req.length;
		} else if (req.framing == HTTP1_BODY_CHUNKED) {
			f->q = Q_SKIP_CHUNKED;
			memset(&f->qc, 0, sizeof(f->qc));
		}
		step(st, HTTPFLOW_DROP, (size_t)n);
		return;
	}
	if (req.method.len == 4 && memcmp(req.method.p, "HEAD", 4) == 0)
		kind |= K_HEAD;
	if (req.method.len == 7 && memcmp(req.method.p, "CONNECT", 7) == 0)
		kind |= K_CONNECT;
	if (req.upgrade)
		kind |= K_UPGRADE;
	f->kinds[(f->first + f->outstanding) % HTTPFLOW_PIPELINE] = kind;
	f->outstanding++;
	if (req.framing == HTTP1_BODY_LENGTH) {
		f->q = Q_BODY_LEN;
		f->qleft = req.length;
	} else if (req.framing == HTTP1_BODY_CHUNKED) {
		f->q = Q_BODY_CHUNKED;
		memset(&f->qc, 0, sizeof(f->qc));
	}
	/* Bytes after an upgrade request are the new protocol's only once it is accepted. */
	if ((kind & (K_UPGRADE | K_CONNECT)) && f->q == Q_HEAD)
		f->q = Q_UPGRADE_WAIT;
	step(st, HTTPFLOW_FORWARD, (size_t)n);
}

void httpflow_request(struct httpflow *f, const char *buf, size_t len, bool eof,
                      struct httpflow_step *st)
{
	long n;
	bool done = false;

	memset(st, 0, sizeof(*st));
	switch (f->q) {
	case Q_HEAD:
		if (reply_step(f, st)) {
			f->head_wait = false; /* the next head is looked at after the reply */
			return;
		}
		if (len == 0) {
			/*
			 * No byte of a head: the first request's wait goes on, but between
			 * requests no head is awaited (the caller's idle timeout applies).
			 */
			if (eof)
				f->head_wait = false;
			step(st, HTTPFLOW_MORE, 0);
			return;
		}
		request_head(f, buf, len, eof, st);
		return;
	case Q_BODY_LEN:
	case Q_SKIP_LEN:
		n = (long)(len < f->qleft ? len : f->qleft);
		f->qleft -= (uint64_t)n;
		step(st, f->q == Q_BODY_LEN ? HTTPFLOW_FORWARD : HTTPFLOW_DROP, (size_t)n);
		if (f->qleft == 0)
			f->q = Q_HEAD;
		if (n == 0)
			st->act = HTTPFLOW_MORE;
		return;
	case Q_BODY_CHUNKED:
	case Q_SKIP_CHUNKED:
		if (len == 0) {
			step(st, HTTPFLOW_MORE, 0);
			return;
		}
		n = http1_chunked_feed(&f->qc, buf, len, &done);
		if (n < 0) {
			if (f->q == Q_SKIP_CHUNKED) {
				/* Nothing of this request reached the application: say why. */
				want_reply(f, 400, true, "malformed chunked body");
				f->q = Q_CLOSED;
				reply_step(f, st);
				return;
			}
			step(st, HTTPFLOW_ABORT, 0);
			st->why = "malformed chunked body";
			return;
		}
		step(st, f->q == Q_BODY_CHUNKED ? HTTPFLOW_FORWARD : HTTPFLOW_DROP, (size_t)n);
		if (done)
			f->q = Q_HEAD;
		return;
	case Q_UPGRADE_WAIT:
		step(st, HTTPFLOW_MORE, 0);
		return;
	case Q_TUNNEL:
		step(st, len > 0 ? HTTPFLOW_FORWARD : HTTPFLOW_MORE, len);
		return;
	default: /* Q_CLOSED */
		if (reply_step(f, st))
			return;
		step(st, len > 0 ? HTTPFLOW_DROP : HTTPFLOW_MORE, len);
		return;
	}
}

/* The response at the front of the pipeline has ended. */
static void response_done(struct httpflow *f)
{
	uint8_t kind = f->kinds[f->first];

	f->first = (f->first + 1) % HTTPFLOW_PIPELINE;
	f->outstanding--;
	f->s = S_HEAD;
	if ((kind & (K_UPGRADE | K_CONNECT)) && f->q == Q_UPGRADE_WAIT)
		f->q = Q_HEAD; /* the upgrade was declined: HTTP goes on */
}

static void response_head(struct httpflow *f, const char *buf, size_t len, bool eof,
                          struct httpflow_step *st)
{
	struct http1_error why = { 0 };
	struct http1_response resp;
	uint8_t kind;
	long n;

	if (f->outstanding == 0) {
		/* Bytes nobody asked for (a 408 before the server closes, say): pass them
		 * and everything after, and take no more requests on this connection. */
		f->s = S_TUNNEL;
		if (f->q != Q_TUNNEL)
			f->q = Q_CLOSED;
		step(st, HTTPFLOW_FORWARD, len);
		return;
	}
	kind = f->kinds[f->first];
	n = http1_head_end(buf, len, HTTPFLOW_RESPONSE_HEAD_MAX, &f->sscan, &why);
	if (n == 0 && !eof) {
		step(st, HTTPFLOW_MORE, 0);
		return;
	}
	if (n == 0) {
		step(st, HTTPFLOW_FORWARD, len); /* cut short by the end: pass what there is */
		return;
	}
	f->sscan = 0;
	if (n < 0 ||
	    http1_parse_response(buf, (size_t)n, kind & K_HEAD, kind & K_CONNECT, &resp, &why) < 0) {
		step(st, HTTPFLOW_ABORT, 0);
		st->why = "malformed response from the application";
		return;
	}
	step(st, HTTPFLOW_FORWARD, (size_t)n);
	if ((resp.status == 101 && (kind & K_UPGRADE)) ||
	    ((kind & K_CONNECT) && resp.status >= 200 && resp.status < 300)) {
		f->s = S_TUNNEL;
		f->q = Q_TUNNEL;
		return;
	}
	if (resp.status >= 100 && resp.status < 200)
		return; /* an interim response: the final one follows */
	switch (resp.framing) {
	case HTTP1_BODY_LENGTH:
		f->s = S_BODY_LEN;
		f->sleft = resp.length;
		break;
	case HTTP1_BODY_CHUNKED:
		f->s = S_BODY_CHUNKED;
		memset(&f->sc, 0, sizeof(f->sc));
		break;
	case HTTP1_BODY_EOF:
		f->s = S_BODY_EOF;
		break;
	default:
		response_done(f);
		break;
	}
}

void httpflow_response(struct httpflow *f, const char *buf, size_t len, bool eof,
                       struct httpflow_step *st)
{
	long n;
	bool done = false;

	memset(st, 0, sizeof(*st));
	if (len == 0) {
		step(st, HTTPFLOW_MORE, 0);
		return;
	}
	switch (f->s) {
	case S_HEAD:
		response_head(f, buf, len, eof, st);
		return;
	case S_BODY_LEN:
		n = (long)(len < f->sleft ? len : f->sleft);
		f->sleft -= (uint64_t)n;
		step(st, HTTPFLOW_FORWARD, (size_t)n);
		if (f->sleft == 0)
			response_done(f);
		return;
	case S_BODY_CHUNKED:
		n = http1_chunked_feed(&f->sc, buf, len, &done);
		if (n < 0) {
			step(st, HTTPFLOW_ABORT, 0);
			st->why = "malformed chunked response from the application";
			return;
		}
		step(st, HTTPFLOW_FORWARD, (size_t)n);
		if (done)
			response_done(f);
		return;
	default: /* S_BODY_EOF, S_TUNNEL */
		step(st, HTTPFLOW_FORWARD, len);
		return;
	}
}
