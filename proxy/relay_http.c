/* SPDX-License-Identifier: Apache-2.0 */
/* A relay that follows HTTP/1.1: gates each direction's bytes through its httpflow. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpflow.h"
#include "relay_impl.h"

int relay_http_set(struct relay *r, httpflow_decide_fn decide, void *arg, size_t head_limit)
{
	struct httpflow *f;

	if (r->http != NULL)
		return -EBUSY;
	f = malloc(sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	httpflow_init(f, decide, arg, head_limit);
	r->http = f;
	/* What was read before (none but early bytes) is looked at from the start. */
	r->down.gate = r->down.start;
	r->up.gate = r->up.start;
	return 0;
}

void relay_http_free(struct relay *r)
{
	free(r->http);
	r->http = NULL;
}

/*
 * The client's side is no longer read before its end. On a tunnel of protocol 2 the rest
 * of the stream would be left in it: the tunnel carries no other stream (END 65535).
 */
static void relay_http_stop_reading(struct relay *r)
{
	if (relay_framed(&r->down) && !(r->down.flags & H_END_IN))
		r->flags |= F_SPENT;
}

/* Appends our reply to what goes to the client. Returns false when there is no room yet. */
static bool reply_append(struct relay *r, const char *text, size_t len)
{
	struct relay_half *u = &r->up;

	if (u->buf == NULL) {
		u->buf = loop_buf_get(r->loop);
		if (u->buf == NULL)
			return false;
		u->start = u->end = u->gate = 0;
	}
	/* Only after every byte of the application's answers was let through. */
	if (u->gate != u->end)
		return false;
	if (LOOP_BUF_SIZE - u->end < len && u->start > 0) {
		memmove(u->buf, u->buf + u->start, u->end - u->start);
		u->end -= u->start;
		u->gate -= u->start;
		u->start = 0;
	}
	if (LOOP_BUF_SIZE - u->end < len)
		return false;
	memcpy(u->buf + u->end, text, len);
	u->end += (uint32_t)len;
	u->gate = u->end;
	return true;
}

/* Runs one direction until the flow waits. Returns as relay_http_run. */
static int run_side(struct relay *r, struct relay_half *h)
{
	bool request = h == &r->down;
	int progress = 0;

	for (;;) {
		struct httpflow_step st;
		uint32_t pending = h->buf != NULL ? h->end - h->gate : 0;
		const char *at = h->buf != NULL ? h->buf + h->gate : "";
		bool eof = (h->flags & H_RD_EOF) != 0;

		if (request)
			httpflow_request(r->http, at, pending, eof, &st);
		else
			httpflow_response(r->http, at, pending, eof, &st);
		switch (st.act) {
		case HTTPFLOW_FORWARD:
			h->gate += (uint32_t)st.n;
			break;
		case HTTPFLOW_DROP:
			memmove(h->buf + h->gate, h->buf + h->gate + st.n, pending - st.n);
			h->end -= (uint32_t)st.n;
			relay_pump_drop_buf(r, h);
			break;
		case HTTPFLOW_REPLY:
			if (!reply_append(r, st.reply, st.reply_len))
				return progress;
			httpflow_replied(r->http);
			if (st.close) {
				/* No more requests: what the client sends now is not read, and
				 * the application's side is shut once its answers are out. */
				relay_http_stop_reading(r);
				h->flags |= H_RD_EOF;
				h->end = h->gate;
				relay_pump_drop_buf(r, h);
			}
			break;
		case HTTPFLOW_ABORT:
			relay_end(r, RELAY_RESET, relay_side_of(r, h), -EPROTO, st.why);
			return -1;
		default:
			return progress;
		}
		progress = 1;
	}
}

int relay_http_run(struct relay *r)
{
	int progress = 0;

	/* The flow stamps the start of a request head's wait with it (relay.c's deadline). */
	r->http->now = loop_now(r->loop);

	/*
	 * The application has closed and everything it sent is through: requests still
	 * waiting (pipelined, or held behind a 403 that waits for their answers) will never be
	 * answered. Drop them and end the client's side, rather than wait for the idle timeout.
	 */
	if ((r->up.flags & H_RD_EOF) && r->up.buf == NULL && !(r->down.flags & H_RD_EOF) &&
	    httpflow_app_closed(r->http)) {
		relay_http_stop_reading(r);
		r->down.flags |= H_RD_EOF;
		r->down.end = r->down.gate;
		relay_pump_drop_buf(r, &r->down);
		progress = 1;
	}

	for (int i = 0; i < 4; i++) {
		int a, b;

		/* Responses first: one that ends may release a reply or a request. */
		a = run_side(r, &r->up);
		if (a < 0)
			return -1;
		b = run_side(r, &r->down);
		if (b < 0)
			return -1;
		if (!a && !b)
			break;
		progress = 1;
	}
	return progress;
}
