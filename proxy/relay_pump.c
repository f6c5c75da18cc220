/* SPDX-License-Identifier: Apache-2.0 */
/* A relay's bytes: reads, writes, back-pressure, half-close, and the epoll interest. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "meshlet/err.h"
#include "relay_impl.h"

static bool half_may_read(const struct relay *r, const struct relay_half *h)
{
	if (h->flags & H_RD_EOF)
		return false;
	if (h == &r->down)
		return r->state == R_CONNECTING || r->state == R_UP_HS || r->state == R_RELAY;
	return r->state == R_RELAY;
}

static uint32_t half_limit(const struct relay *r)
{
	/* A stream whose connection is not up yet may have to start again elsewhere. */
	if (r->up.ms != NULL && !mux_stream_ready(r->up.ms))
		return RELAY_EARLY_LIMIT;
	return r->state == R_RELAY ? LOOP_BUF_SIZE : RELAY_EARLY_LIMIT;
}

static bool half_has_room(const struct relay *r, const struct relay_half *h)
{
	return h->buf == NULL || h->end < half_limit(r) || h->start > 0;
}

void relay_pump_drop_buf(struct relay *r, struct relay_half *h)
{
	if (h->buf != NULL && h->start == h->end) {
		loop_buf_put(r->loop, h->buf);
		h->buf = NULL;
		h->start = h->end = h->gate = 0;
	}
}

static void half_fail(struct relay *r, struct relay_half *h, int error, const char *reason)
{
	relay_end(r, RELAY_RESET, relay_side_of(r, h), error, reason);
}

static unsigned be16(const void *p)
{
	const uint8_t *b = p;

	return (unsigned)b[0] << 8 | b[1];
}

static void put16(char *p, unsigned v)
{
	p[0] = (char)(v >> 8);
	p[1] = (char)v;
}

/* After a TLS read that returned a record's bytes: whether OpenSSL holds more. */
static void tls_read_done(struct relay *r, struct relay_half *h)
{
	h->flags &= (uint16_t)~H_READ_WANTS_WRITE;
	/*
	 * Level-triggered epoll cannot see what OpenSSL has buffered already: what it holds
	 * says whether another read may make progress (a read after an earlier one found
	 * nothing buffered may have brought in several records).
	 */
	if (SSL_has_pending(h->ssl))
		h->flags |= H_RD_READY;
	else
		h->flags &= (uint16_t)~H_RD_READY;
	r->active_ms = loop_now(r->loop);
}

/*
 * A TLS read that returned rc <= 0. Returns 0 to wait, 1 for the end of the stream, -1 when
 * the relay was closed.
 */
static int tls_read_failed(struct relay *r, struct relay_half *h, int rc)
{
	int e = SSL_get_error(h->ssl, rc);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		h->flags &= (uint16_t) ~(H_RD_READY | H_READ_WANTS_WRITE);
		relay_pump_drop_buf(r, h);
		/*
		 * A read that found nothing leaves OpenSSL's 17 KiB record buffer allocated
		 * (RELEASE_BUFFERS frees it only after a whole record): free it, so that an
		 * idle connection holds none.
		 */
		relay_tls_release(h->ssl);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		h->flags = (uint16_t)((h->flags | H_READ_WANTS_WRITE) & ~H_RD_READY);
		relay_pump_drop_buf(r, h);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		/*
		 * Framed, a stream ends with its END: a close_notify before it is a truncation,
		 * also while the server is still connecting (it reads the stream early).
		 */
		if (relay_framed(h) && r->state != R_PREAMBLE) {
			/* Before a byte of our stream came back: the peer did not take it. */
			if (h == &r->up && relay_restart(r, ERR_RELAY_STALE))
				return -1;
			half_fail(r, h, -ECONNRESET, "tunnel closed before the end of the stream");
			return -1;
		}
		h->flags |= H_RD_EOF;
		relay_pump_drop_buf(r, h);
		return 1;
	default:
		/* Includes an end of stream without close_notify: a truncation. */
		half_fail(r, h, relay_tls_error(e), relay_tls_reason(h->ssl, e, rc));
		return -1;
	}
}

/*
 * Framed, in a stream: reads the next frame's header when one is due. Returns 1 when data
 * may be read (h->frame_left > 0) or the END came (H_RD_EOF), 0 to wait, -1 when closed.
 */
static int frame_head(struct relay *r, struct relay_half *h)
{
	while (h->frame_left == 0) {
		unsigned len;
		int rc;

		if (h->head_len < FRAME_HEAD) {
			relay_tls_clear();
			rc = SSL_read(h->ssl, h->head + h->head_len, FRAME_HEAD - h->head_len);
			if (rc <= 0)
				return tls_read_failed(r, h, rc) < 0 ? -1 : 0;
			/* The peer answered the stream: it took it. */
			if (r->flags & F_REPLAY)
				relay_replay_drop(r);
			h->head_len = (uint8_t)(h->head_len + rc);
			tls_read_done(r, h);
			continue;
		}
		len = be16(h->head);
		h->head_len = 0;
		if (len == FRAME_END || len == FRAME_END_LAST) {
			h->flags |= H_RD_EOF | H_END_IN;
			if (len == FRAME_END_LAST)
				h->flags |= H_LAST_IN;
			return 1;
		}
		if (len == FRAME_RESET) {
			h->flags |= H_RD_EOF | H_END_IN | H_RESET_IN;
			if (!(r->flags & F_ABORT))
				relay_abort(r, RELAY_RESET, relay_side_of(r, h), -ECONNRESET,
				            "reset by the peer's application");
			return 1;
		}
		if (len > RELAY_FRAME_MAX) {
			half_fail(r, h, -EPROTO, "tunnel frame of a length beyond the limit");
			return -1;
		}
		h->frame_left = (uint16_t)len;
	}
	return 1;
}

/* Framed, reading a preamble: the bytes still to come (read exactly, no byte beyond it). */
static size_t preamble_need(const struct relay_half *h);

/*
 * Reads from a TLS side into its buffer (which has room up to limit): as many records as
 * OpenSSL has or gets with one read(2), since SSL_read returns one record at a time. A
 * framed side gets only the data of its frames, and a preamble is read to its last byte and
 * no further. Returns as relay_pump_read.
 */
static int tls_read(struct relay *r, struct relay_half *h, uint32_t limit)
{
	uint32_t got = 0;
	int rc;

	for (;;) {
		size_t want = limit - h->end;

		if (relay_framed(h) && r->state == R_PREAMBLE) {
			if (want > preamble_need(h))
				want = preamble_need(h);
		} else if (relay_framed(h)) {
			rc = frame_head(r, h);
			if (rc < 0)
				return -1;
			if (rc == 0)
				return got > 0 ? 1 : 0;
			if (h->flags & H_RD_EOF) {
				relay_pump_drop_buf(r, h);
				return 1;
			}
			if (want > h->frame_left)
				want = h->frame_left;
		}
		relay_tls_clear();
		rc = SSL_read(h->ssl, h->buf + h->end, (int)want);
		if (rc <= 0) {
			/* A failure after some bytes is seen again on the next call. */
			if (got > 0) {
				if (SSL_get_error(h->ssl, rc) == SSL_ERROR_WANT_READ)
					h->flags &= (uint16_t)~H_RD_READY;
				ERR_clear_error();
				return 1;
			}
			return tls_read_failed(r, h, rc);
		}
		h->end += (uint32_t)rc;
		got += (uint32_t)rc;
		if (relay_framed(h) && r->state != R_PREAMBLE)
			h->frame_left = (uint16_t)(h->frame_left - rc);
		tls_read_done(r, h);
		/* Aborting: what the peer sent before it saw our RESET goes nowhere. */
		if (r->flags & F_ABORT) {
			h->start = h->end = h->gate = 0;
			got = 0;
		}
		if (h->end >= limit || !(h->flags & H_RD_READY) || r->state == R_PREAMBLE)
			break;
	}
	if (r->flags & F_ABORT)
		relay_pump_drop_buf(r, h);
	return 1;
}

static size_t preamble_need(const struct relay_half *h)
{
	uint32_t have = h->buf != NULL ? h->end - h->start : 0;
	size_t total;

	if (have < PREAMBLE_HEADER)
		return PREAMBLE_HEADER - have;
	total = PREAMBLE_HEADER + be16(h->buf + h->start + 8);
	/* The parser refuses a length beyond the limit before this is asked. */
	return total > have ? total - have : 1;
}

void relay_stream_failed(struct relay *r, struct relay_half *h)
{
	struct mux_stream *s = h->ms;
	int err = s->error;

	switch (s->fail) {
	case MUX_FAIL_CONNECT:
	case MUX_FAIL_DOWNGRADE:
	case MUX_FAIL_REFUSED:
		/* Nothing of the stream reached an application: it starts again elsewhere. */
		if (h == &r->up && relay_restart(r, err))
			return;
		if (s->fail == MUX_FAIL_CONNECT) {
			relay_end(r, RELAY_CONNECT_FAILED, RELAY_UP, err, NULL);
			return;
		}
		relay_end(r, RELAY_RESET, relay_side_of(r, h), -ECONNRESET,
		          "tunnel closed before the end of the stream");
		return;
	case MUX_FAIL_HANDSHAKE:
		relay_end(r, err == -ETIMEDOUT ? RELAY_TIMEOUT : RELAY_HANDSHAKE_FAILED,
		          relay_side_of(r, h), err, s->reason);
		return;
	case MUX_FAIL_DENIED:
		relay_end(r, RELAY_DENIED, relay_side_of(r, h), err, NULL);
		return;
	default:
		half_fail(r, h, err != 0 ? err : -ECONNRESET, s->reason);
		return;
	}
}

/* Reads from a protocol 3 stream into h's buffer (which has room up to limit). */
static int stream_read(struct relay *r, struct relay_half *h, uint32_t limit)
{
	ssize_t n = mux_stream_read(h->ms, h->buf != NULL ? h->buf + h->end : NULL,
	                            h->buf != NULL ? limit - h->end : 0);

	/* Bytes: the next call (no system call) finds the end, a failure or nothing. */
	if (n > 0) {
		h->end += (uint32_t)n;
		r->active_ms = loop_now(r->loop);
		return 1;
	}
	relay_pump_drop_buf(r, h);
	if (n == MUX_EOF) {
		h->flags |= H_RD_EOF;
		return 1;
	}
	if (n < 0) {
		relay_stream_failed(r, h);
		return -1;
	}
	h->flags &= (uint16_t)~H_RD_READY;
	return 0;
}

/*
 * Reads from h into its buffer. Returns 1 when something happened (bytes or the end of
 * the stream), 0 when nothing could be read now, -1 when the relay was closed.
 */
int relay_pump_read(struct relay *r, struct relay_half *h)
{
	uint32_t limit = half_limit(r);
	size_t want;
	ssize_t n;

	if (!(h->flags & H_RD_READY) || (h->flags & H_RD_EOF))
		return 0;
	/* Nothing queued: no buffer is needed to learn that. */
	if (h->ms != NULL && h->ms->head == NULL)
		return stream_read(r, h, 0);
	if (h->buf == NULL) {
		h->buf = loop_buf_get(r->loop);
		if (h->buf == NULL) {
			half_fail(r, h, -ENOMEM, NULL);
			return -1;
		}
		h->start = h->end = h->gate = 0;
	} else if (h->end >= limit) {
		if (h->start == 0)
			return 0; /* full: the other side must take some first */
		memmove(h->buf, h->buf + h->start, h->end - h->start);
		h->end -= h->start;
		h->gate -= h->start;
		h->start = 0;
	}
	want = limit - h->end;
	if (h->ms != NULL)
		return stream_read(r, h, limit);
	if (h->ssl != NULL)
		return tls_read(r, h, limit);
	n = read(h->fd, h->buf + h->end, want);
	if (n > 0) {
		h->end += (uint32_t)n;
		/* A short read emptied the socket; epoll says when more comes. */
		if ((size_t)n < want)
			h->flags &= (uint16_t)~H_RD_READY;
		r->active_ms = loop_now(r->loop);
		return 1;
	}
	if (n == 0) {
		h->flags |= H_RD_EOF;
		relay_pump_drop_buf(r, h);
		return 1;
	}
	if (errno == EAGAIN || errno == EINTR) {
		h->flags &= (uint16_t)~H_RD_READY;
		relay_pump_drop_buf(r, h);
		return 0;
	}
	half_fail(r, h, -errno, NULL);
	return -1;
}

/* Keeps n bytes sent on a kept tunnel that has not answered (relay_restart). */
static void frame_keep(struct relay *r, const char *p, uint32_t n)
{
	char *grown;

	if (r->replay_len + n > RELAY_EARLY_LIMIT ||
	    (grown = realloc(r->replay, r->replay_len + n)) == NULL) {
		relay_replay_drop(r); /* too much to start again: the stream stands or falls */
		return;
	}
	r->replay = grown;
	memcpy(r->replay + r->replay_len, p, n);
	r->replay_len += n;
}

/*
 * Framed: moves what may go of s's buffer into a frame for h (h->wq): the preamble first
 * (bytes that go as they are), then a data frame, then the END when s has ended and this
 * takes its last bytes. Returns 1 when a frame was made, 0 when there is nothing to send,
 * -1 when the relay was closed.
 */
static int frame_compose(struct relay *r, struct relay_half *h, struct relay_half *s)
{
	uint32_t raw = h == &r->up ? r->pre_len : 0, n = relay_ready(r, s), len = 0, took = 0;
	bool end;

	if ((h->flags & H_WR_SHUT) || n < raw)
		return 0;
	n -= raw;
	/* Frames of what fits in one buffer, each header before its data, room for the END. */
	while (took < n && len + raw + FRAME_HEAD + 1 + FRAME_HEAD <= LOOP_BUF_SIZE) {
		uint32_t k = n - took, room = LOOP_BUF_SIZE - raw - len - 2 * FRAME_HEAD;

		if (k > RELAY_FRAME_MAX)
			k = RELAY_FRAME_MAX;
		if (k > room)
			k = room;
		len += FRAME_HEAD + k;
		took += k;
	}
	end = (s->flags & H_RD_EOF) && (s->buf == NULL || s->start + raw + took == s->end);
	if (raw == 0 && took == 0 && !end)
		return 0;
	h->wq = loop_buf_get(r->loop);
	if (h->wq == NULL) {
		half_fail(r, h, -ENOMEM, NULL);
		return -1;
	}
	len = 0;
	if (raw > 0) {
		memcpy(h->wq, s->buf + s->start, raw);
		len = raw;
	}
	for (uint32_t done = 0; done < took;) {
		uint32_t k = took - done;

		if (k > RELAY_FRAME_MAX)
			k = RELAY_FRAME_MAX;
		put16(h->wq + len, k);
		memcpy(h->wq + len + FRAME_HEAD, s->buf + s->start + raw + done, k);
		len += FRAME_HEAD + k;
		done += k;
	}
	if (end) {
		put16(h->wq + len, (r->flags & F_ABORT)   ? FRAME_RESET
		                   : (r->flags & F_SPENT) ? FRAME_END_LAST
		                                          : FRAME_END);
		len += FRAME_HEAD;
	}
	h->wq_off = 0;
	h->wq_len = len;
	h->wq_end = end;
	/* Until the peer answers, what goes out on a kept tunnel is kept for a restart. */
	if ((r->flags & F_REPLAY) && h == &r->up && took > 0)
		frame_keep(r, s->buf + s->start + raw, took);
	if (s->buf != NULL) {
		s->start += raw + took;
		relay_pump_drop_buf(r, s);
	}
	r->pre_len = (uint8_t)(r->pre_len - raw);
	h->written += took;
	return 1;
}

/*
 * Framed: writes h's frames, making the next ones first when none are pending. Frames the
 * socket takes only in part stay in h->wq, and no others are made until they are out:
 * SSL_write is retried with the same bytes. More than a record's worth is written corked
 * (one write(2) for the records), and h->wq is kept until the cork is out too, so that an
 * END counts as sent (H_WR_SHUT) only once it is on the socket. Returns as relay_pump_read.
 */
static int frame_write(struct relay *r, struct relay_half *h)
{
	struct relay_half *s = relay_other(r, h);
	int rc, e, progress = 0;

	if (!(h->flags & H_WR_READY))
		return 0;
	if (h->wq == NULL) {
		progress = frame_compose(r, h, s);
		if (progress <= 0)
			return progress;
		if (h->wq_len > SSL3_RT_MAX_PLAIN_LENGTH && relay_tls_cork(h->ssl) == 0)
			h->flags |= H_WR_CORK;
	}
	while (h->wq_off < h->wq_len) {
		relay_tls_clear();
		rc = SSL_write(h->ssl, h->wq + h->wq_off, (int)(h->wq_len - h->wq_off));
		if (rc <= 0) {
			e = SSL_get_error(h->ssl, rc);
			if (e == SSL_ERROR_WANT_WRITE) {
				h->flags &= (uint16_t)~H_WR_READY;
				return progress;
			}
			if (e == SSL_ERROR_WANT_READ) {
				h->flags =
				    (uint16_t)((h->flags | H_WRITE_WANTS_READ) & ~H_WR_READY);
				return progress;
			}
			half_fail(r, h, relay_tls_error(e), relay_tls_reason(h->ssl, e, rc));
			return -1;
		}
		h->flags &= (uint16_t)~H_WRITE_WANTS_READ;
		h->wq_off += (uint32_t)rc;
		r->active_ms = loop_now(r->loop);
		progress = 1;
	}
	if (h->flags & H_WR_CORK) {
		rc = relay_tls_uncork(h->ssl);
		if (rc < 0) {
			half_fail(r, h, rc, NULL);
			return -1;
		}
		if (rc == 0) {
			h->flags &= (uint16_t)~H_WR_READY;
			return progress;
		}
		h->flags &= (uint16_t)~H_WR_CORK;
	}
	loop_buf_put(r->loop, h->wq);
	h->wq = NULL;
	if (h->wq_end) {
		h->flags |= H_WR_SHUT;
		r->end_out_ms = loop_now(r->loop);
	}
	return 1;
}

/* Writes the other side's buffer to h. Returns as relay_pump_read. */
static int half_write(struct relay *r, struct relay_half *h)
{
	struct relay_half *s = relay_other(r, h);
	size_t len;
	ssize_t n;

	if (relay_framed(h))
		return frame_write(r, h);
	len = relay_ready(r, s);
	if (len == 0 || !(h->flags & H_WR_READY))
		return 0;
	if (h->ms != NULL) {
		n = mux_stream_write(h->ms, s->buf + s->start, len);
		if (n < 0) {
			relay_stream_failed(r, h);
			return -1;
		}
		if (n == 0) {
			h->flags &= (uint16_t)~H_WR_READY;
			return 0;
		}
		/* Until the peer takes the stream, what went out is kept for a restart. */
		if (r->flags & F_REPLAY) {
			if (mux_stream_answered(h->ms))
				relay_replay_drop(r);
			else
				frame_keep(r, s->buf + s->start, (uint32_t)n);
		}
	} else if (h->ssl != NULL) {
		int rc, e;

		relay_tls_clear();
		rc = SSL_write(h->ssl, s->buf + s->start, (int)len);
		if (rc <= 0) {
			e = SSL_get_error(h->ssl, rc);
			if (e == SSL_ERROR_WANT_WRITE) {
				h->flags &= (uint16_t)~H_WR_READY;
				return 0;
			}
			if (e == SSL_ERROR_WANT_READ) {
				h->flags =
				    (uint16_t)((h->flags | H_WRITE_WANTS_READ) & ~H_WR_READY);
				return 0;
			}
			half_fail(r, h, relay_tls_error(e), relay_tls_reason(h->ssl, e, rc));
			return -1;
		}
		/* With partial writes SSL_write returns after each record: not a full socket. */
		n = rc;
		h->flags &= (uint16_t)~H_WRITE_WANTS_READ;
	} else {
		n = send(h->fd, s->buf + s->start, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				h->flags &= (uint16_t)~H_WR_READY;
				return 0;
			}
			half_fail(r, h, -errno, NULL);
			return -1;
		}
		if ((size_t)n < len)
			h->flags &= (uint16_t)~H_WR_READY;
	}
	s->start += (uint32_t)n;
	h->written += (uint64_t)n;
	r->active_ms = loop_now(r->loop);
	relay_pump_drop_buf(r, s);
	return 1;
}

/*
 * Once the other side has ended and all its bytes are written to h, shut h's write side:
 * close_notify first on TLS, then a FIN. Returns as relay_pump_read.
 */
static int half_shut(struct relay *r, struct relay_half *h)
{
	struct relay_half *s = relay_other(r, h);

	/* A framed side ends its direction with an END frame (frame_write), not a shutdown. */
	if ((h->flags & H_WR_SHUT) || !(s->flags & H_RD_EOF) || s->buf != NULL || relay_framed(h))
		return 0;
	if (h->ms != NULL) {
		int rc;

		if (!(h->flags & H_WR_READY))
			return 0;
		rc = mux_stream_end(h->ms);
		if (rc < 0) {
			relay_stream_failed(r, h);
			return -1;
		}
		if (rc == 0) {
			h->flags &= (uint16_t)~H_WR_READY;
			return 0;
		}
		h->flags |= H_WR_SHUT;
		return 1;
	}
	if (h->ssl != NULL) {
		int rc, e;

		if (!(h->flags & H_WR_READY))
			return 0;
		relay_tls_clear();
		rc = SSL_shutdown(h->ssl);
		if (rc < 0) {
			e = SSL_get_error(h->ssl, rc);
			if (e == SSL_ERROR_WANT_WRITE) {
				h->flags &= (uint16_t)~H_WR_READY;
				return 0;
			}
			/*
			 * Anything else (the peer is gone): this direction is over anyway,
			 * and the other direction finds out by itself.
			 */
			ERR_clear_error();
		}
	}
	(void)shutdown(h->fd, SHUT_WR);
	h->flags |= H_WR_SHUT;
	return 1;
}

/* Epoll interest */

static uint32_t half_interest(const struct relay *r, const struct relay_half *h)
{
	const struct relay_half *o = h == &r->down ? &r->up : &r->down;
	uint32_t ev = 0;

	if (h->fd < 0)
		return 0;
	if ((r->state == R_DOWN_HS && h == &r->down) || (r->state == R_UP_HS && h == &r->up))
		return (h->flags & H_HS_WANTS_WRITE) ? LOOP_WRITE : LOOP_READ;
	if (r->state == R_CONNECTING && h == &r->up)
		return LOOP_WRITE;
	if (r->state == R_PREAMBLE)
		return (h->flags & H_READ_WANTS_WRITE) ? LOOP_WRITE : LOOP_READ;
	if (half_may_read(r, h) && half_has_room(r, h))
		ev |= (h->flags & H_READ_WANTS_WRITE) ? LOOP_WRITE : LOOP_READ;
	if (r->state == R_RELAY && !(h->flags & H_WR_SHUT) &&
	    (relay_ready(r, o) > 0 || h->wq != NULL || ((o->flags & H_RD_EOF) && o->buf == NULL)))
		ev |= (h->flags & H_WRITE_WANTS_READ) ? LOOP_READ : LOOP_WRITE;
	return ev;
}

/* Tells epoll what both halves wait for: the one place that computes it. */
void relay_pump_update(struct relay *r)
{
	struct relay_half *hs[2] = { &r->down, &r->up };

	for (int i = 0; i < 2; i++) {
		int rc;

		if (hs[i]->fd < 0)
			continue;
		rc = loop_set_events(r->loop, hs[i]->fd, half_interest(r, hs[i]));
		if (rc < 0) {
			half_fail(r, hs[i], rc, NULL);
			return;
		}
	}
}

/*
 * Moves bytes as far as the sockets let it, then updates the interest. Before the relay
 * state only the downstream is read (early bytes are kept for the upstream).
 */
void relay_pump(struct relay *r)
{
	struct relay_half *sh = r->up.ms != NULL ? &r->up : r->down.ms != NULL ? &r->down : NULL;

	/*
	 * A stream that failed, with nothing left to read (the peer's end, when it came, goes
	 * to the application first), ends the relay now.
	 */
	if (sh != NULL && sh->ms->fail != MUX_FAIL_NONE && sh->ms->head == NULL &&
	    !(mux_stream_ended(sh->ms) && !(sh->flags & H_RD_EOF)) &&
	    !((sh->flags & H_RD_EOF) && (sh->flags & H_WR_SHUT))) {
		relay_stream_failed(r, sh);
		return;
	}
	if (sh != NULL && (r->flags & F_REPLAY) && mux_stream_answered(sh->ms))
		relay_replay_drop(r);
	relay_stream_peer(r);
	for (int round = 0; round < RELAY_PUMP_ROUNDS; round++) {
		int progress = 0;

		for (int i = 0; i < 2; i++) {
			struct relay_half *h = i == 0 ? &r->down : &r->up;
			int rc;

			if (half_may_read(r, h)) {
				rc = relay_pump_read(r, h);
				if (rc < 0)
					return;
				progress |= rc;
			}
			if (r->http != NULL) {
				rc = relay_http_run(r);
				if (rc < 0)
					return;
				progress |= rc;
			}
			if (r->state != R_RELAY)
				continue;
			rc = half_write(r, relay_other(r, h));
			if (rc < 0)
				return;
			progress |= rc;
			rc = half_shut(r, relay_other(r, h));
			if (rc < 0)
				return;
			progress |= rc;
		}
		if ((r->down.flags & H_WR_SHUT) && (r->up.flags & H_WR_SHUT)) {
			if (!(r->flags & F_ABORT)) {
				relay_end(r, RELAY_OK, RELAY_DOWN, 0, NULL);
				return;
			}
			/* Aborted: over once the peer's end came too. */
			if (relay_framed(&r->down) ? (r->down.flags & H_END_IN)
			                           : (r->up.flags & H_END_IN)) {
				r->flags |= F_ABORT_DONE;
				relay_end(r, (enum relay_result)r->abort_result,
				          (enum relay_side)r->abort_side, r->abort_error,
				          r->abort_reason);
				return;
			}
		}
		if (!progress) {
			relay_pump_update(r);
			return;
		}
	}
	/* Enough for this wakeup: come back after the other connections had theirs. */
	loop_queue(r->loop, &r->task, relay_advance_task);
	relay_pump_update(r);
}
