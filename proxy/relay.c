/* SPDX-License-Identifier: Apache-2.0 */
/* A proxied connection: the state machine, two symmetric halves, buffers and timeouts. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "meshlet/err.h"
#include "meshlet/x509.h"
#include "relay_impl.h"

const char *const relay_result_names[] = {
	[RELAY_OK] = "ok",
	[RELAY_CONNECT_FAILED] = "connect_failed",
	[RELAY_HANDSHAKE_FAILED] = "handshake_failed",
	[RELAY_DENIED] = "denied",
	[RELAY_TIMEOUT] = "timeout",
	[RELAY_RESET] = "reset",
	[RELAY_CLOSED] = "closed",
	[RELAY_RESULT_COUNT_] = NULL,
};

/* Addresses */

static int addr_from(struct relay_addr *a, const struct sockaddr *sa, socklen_t len)
{
	memset(a, 0, sizeof(*a));
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		a->family = AF_INET;
		a->port = ntohs(in->sin_port);
		memcpy(a->ip, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		a->family = AF_INET6;
		a->port = ntohs(in6->sin6_port);
		a->scope = in6->sin6_scope_id;
		memcpy(a->ip, &in6->sin6_addr, 16);
		return 0;
	}
	return -EINVAL;
}

static socklen_t addr_to(const struct relay_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->ip, 4);
		return sizeof(*in);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		in6->sin6_scope_id = a->scope;
		memcpy(&in6->sin6_addr, a->ip, 16);
		return sizeof(*in6);
	}
	ss->ss_family = AF_UNSPEC;
	return 0;
}

/* Closing */

static void relay_free_task(struct loop *loop, struct loop_task *t)
{
	struct relay *r = container_of(t, struct relay, task);

	(void)loop;
	relay_http_free(r);
	relay_replay_drop(r);
	free(r);
}

static void half_release(struct relay *r, struct relay_half *h, bool rst)
{
	if (h->ms != NULL) {
		mux_stream_release(h->ms, rst);
		h->ms = NULL;
	}
	/* A tunnel that carried streams ends with close_notify, as far as it goes at once. */
	if (!rst && h->ssl != NULL && relay_framed(h) && h->fd >= 0 &&
	    !(SSL_get_shutdown(h->ssl) & SSL_SENT_SHUTDOWN)) {
		(void)SSL_shutdown(h->ssl);
		ERR_clear_error();
	}
	if (h->fd >= 0) {
		loop_unwatch(r->loop, h->fd);
		if (rst) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			(void)setsockopt(h->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(h->fd);
		h->fd = -1;
	}
	SSL_free(h->ssl);
	h->ssl = NULL;
	loop_buf_put(r->loop, h->buf);
	h->buf = NULL;
	h->start = h->end = h->gate = 0;
	loop_buf_put(r->loop, h->wq);
	h->wq = NULL;
	free(h->peer_id);
	h->peer_id = NULL;
}

static void relay_recycle(struct relay *r);
static void relay_arm(struct relay *r, uint32_t ms);
static void relay_deadlines(struct relay *r);

/*
 * Whether the stream's tunnel may carry another: both ENDs went through, neither side said
 * it was the last, nothing is left over, and the certificates are good for a while.
 */
static bool relay_reusable(const struct relay *r, enum relay_result result)
{
	const struct relay_half *t = relay_framed(&r->up) ? &r->up : &r->down;
	struct timespec now;

	if ((r->flags & F_ABORT) ? !(r->flags & F_ABORT_DONE) : result != RELAY_OK)
		return false;
	if (!relay_framed(t) || (r->flags & F_SPENT) || t->fd < 0 ||
	    (t->flags & (H_END_IN | H_LAST_IN | H_WR_SHUT)) != (H_END_IN | H_WR_SHUT) ||
	    t->wq != NULL || t->frame_left != 0 || t->head_len != 0 || t->buf != NULL)
		return false;
	/* The server may hold the next stream's first bytes already; nothing comes to a client. */
	if (t == &r->up && SSL_has_pending(t->ssl))
		return false;
	clock_gettime(CLOCK_REALTIME, &now);
	return r->not_after > (int64_t)now.tv_sec + 1;
}

/* The framed side of a relay, or NULL. */
static struct relay_half *relay_tunnel_half(struct relay *r)
{
	return relay_framed(&r->up) ? &r->up : relay_framed(&r->down) ? &r->down : NULL;
}

/*
 * Whether a failure of the application side can be told to the peer with a RESET frame,
 * so that the tunnel lives on: the stream has begun on the tunnel (the client wrote its
 * preamble, the server read it), this side has not sent its end yet, and the tunnel is fine.
 */
static bool relay_may_abort(struct relay *r, enum relay_result result, enum relay_side side)
{
	struct relay_half *t = relay_tunnel_half(r);

	/* A refusal (a hook's) leaves the tunnel sound, whichever side it names. */
	if (t == NULL || (r->flags & (F_ABORT | F_SPENT)) || t->fd < 0 ||
	    (side == relay_side_of(r, t) && result != RELAY_DENIED) || (t->flags & H_WR_SHUT) ||
	    (t->wq != NULL && t->wq_end))
		return false;
	if (result != RELAY_RESET && result != RELAY_CONNECT_FAILED && result != RELAY_DENIED)
		return false;
	if (t == &r->up)
		return r->state == R_RELAY && r->pre_len == 0;
	return r->state > R_PREAMBLE && !(r->flags & F_IDLE);
}

/*
 * The application side failed (or the peer's did: RESET): reset it now, and let the
 * tunnel finish the stream (a RESET out unless this side ended already, the peer's end in)
 * before the relay ends with this result. Bytes for the application are dropped.
 */
void relay_abort(struct relay *r, enum relay_result result, enum relay_side side, int error,
                 const char *reason)
{
	struct relay_half *t = relay_tunnel_half(r), *a = relay_other(r, t);

	r->flags |= F_ABORT;
	r->abort_result = (uint8_t)result;
	r->abort_side = (uint8_t)side;
	r->abort_error = error;
	r->abort_reason = reason;
	half_release(r, a, true);
	a->flags = H_RD_EOF | H_WR_SHUT;
	loop_buf_put(r->loop, t->buf);
	t->buf = NULL;
	t->start = t->end = t->gate = 0;
	relay_http_free(r);
	loop_timer_stop(r->loop, &r->timer);
	r->state = R_RELAY;
	r->active_ms = loop_now(r->loop);
	t->flags |= H_WR_READY;
	relay_deadlines(r);
	loop_queue(r->loop, &r->task, relay_advance_task);
}

/* Whether a framed side ends in the middle of a stream (not idle, not both ENDs through). */
static bool relay_mid_stream(const struct relay_half *h, bool idle)
{
	return relay_framed(h) && !idle &&
	       (h->flags & (H_END_IN | H_WR_SHUT)) != (H_END_IN | H_WR_SHUT);
}

/*
 * Ends the relay, once: on_close with the stats, then both sockets are closed and the
 * memory is freed after the loop's round. A reset is passed on as a reset.
 */
void relay_end(struct relay *r, enum relay_result result, enum relay_side side, int error,
               const char *reason)
{
	struct relay_stats st = { 0 };
	struct timespec now;
	uint64_t pre;
	bool reusable, idle_end;

	if (r->state == R_CLOSED)
		return;
	if (relay_may_abort(r, result, side)) {
		relay_abort(r, result, side, error, reason);
		return;
	}
	/* After a 408 the connection ends as any other once both sides are done: say why. */
	if (result == RELAY_OK && r->http != NULL && r->http->head_timed_out) {
		result = RELAY_TIMEOUT;
		error = -ETIMEDOUT;
		reason = "request_head";
	}
	reusable = relay_reusable(r, result);
	/* A kept tunnel that ends before a byte of its next stream: no stream to report. */
	idle_end = ((r->flags & F_IDLE) && !(r->flags & F_PRE_IN)) || (r->flags & F_DETACHED);
	r->state = R_CLOSED;
	ERR_clear_error();
	loop_timer_stop(r->loop, &r->timer);
	/* For the stats, when the relay ends before its pump saw the connection up. */
	relay_stream_peer(r);
	/* Before on_close: once the last one has run, the count is 0. */
	if (r->flags & F_COUNTED)
		atomic_fetch_sub(&r->cfg->limit->active, 1);
	r->flags &= (uint16_t)~F_COUNTED;
	if (r->cfg->on_close != NULL) {
		st.result = result;
		st.side = side;
		st.error = error;
		st.reason = reason;
		pre = r->up.written < r->pre_len ? r->up.written : r->pre_len;
		st.bytes_up = r->up.written - pre;
		st.bytes_down = r->down.written;
		st.duration_ms = loop_now(r->loop) - r->start_ms;
		clock_gettime(CLOCK_REALTIME, &now);
		st.start.tv_sec = now.tv_sec - (time_t)(st.duration_ms / 1000);
		st.start.tv_nsec = now.tv_nsec - (long)(st.duration_ms % 1000) * 1000000;
		if (st.start.tv_nsec < 0) {
			st.start.tv_sec--;
			st.start.tv_nsec += 1000000000;
		}
		st.down_id = r->down.peer_id;
		st.up_id = r->up.peer_id;
		addr_to(&r->src, &st.src);
		addr_to(&r->dst, &st.dst);
		st.preamble_port = r->preamble_port;
		st.reusable = reusable;
		if (reusable)
			r->flags |= F_REUSABLE;
		st.reused = (r->flags & F_REUSED) != 0;
		st.idle_end = idle_end;
		r->cfg->on_close(r, &st);
		r->flags &= (uint16_t)~F_REUSABLE;
	}
	if (r->flags & F_NEXT) {
		relay_recycle(r);
		return;
	}
	/*
	 * A stream that was reset in the tunnel (RESET frames) leaves a sound tunnel. A tunnel
	 * closes with close_notify only between streams (idle, or its stream complete both
	 * ways): in the middle of one it is reset, so that a close_notify always tells the
	 * peer that a stream it started after our last one was not taken (relay_restart).
	 */
	half_release(r, &r->down,
	             (result == RELAY_RESET && !reusable) || relay_mid_stream(&r->down, idle_end));
	half_release(r, &r->up,
	             (result == RELAY_RESET && !reusable) || relay_mid_stream(&r->up, false));
	/* Events already fetched for our fds are dropped by the loop; the memory goes later. */
	loop_queue(r->loop, &r->task, relay_free_task);
}

void relay_replay_drop(struct relay *r)
{
	free(r->replay);
	r->replay = NULL;
	r->replay_len = 0;
	r->flags &= (uint16_t)~F_REPLAY;
}

/*
 * The peer closes a kept tunnel (close_notify) only between streams, before it reads the
 * next preamble: one that did so before a byte of our stream came back did not take the
 * stream, and nothing of it reached its application. So the stream starts again, as it
 * was, on a new connection that on_upstream_failed (ERR_RELAY_STALE) sets: the client's
 * bytes sent on the old tunnel (kept while no answer came) go first again, then those
 * not sent yet; the preamble is made anew. A stream with more than a buffer of them, or
 * that something else already touched (an abort), is not restarted.
 */
bool relay_restart(struct relay *r, int err)
{
	struct relay_half *d = &r->down;
	uint32_t pend = d->buf != NULL ? d->end - d->start - r->pre_len : 0;
	char *buf;
	int rc;

	if (!(r->flags & F_REPLAY) || (r->flags & (F_ABORT | F_SPENT)) || r->http != NULL ||
	    r->cfg->on_upstream_failed == NULL || r->attempts >= RELAY_MAX_ATTEMPTS ||
	    r->replay_len + pend > RELAY_EARLY_LIMIT || (buf = loop_buf_get(r->loop)) == NULL)
		return false;
	if (r->replay_len > 0)
		memcpy(buf, r->replay, r->replay_len);
	if (pend > 0)
		memcpy(buf + r->replay_len, d->buf + d->start + r->pre_len, pend);
	loop_buf_put(r->loop, d->buf);
	d->buf = buf;
	d->start = d->gate = 0;
	d->end = r->replay_len + pend;
	relay_pump_drop_buf(r, d);
	relay_replay_drop(r);
	r->pre_len = 0;
	half_release(r, &r->up, false);
	memset(&r->up, 0, sizeof(r->up));
	r->up.fd = -1;
	r->flags &= (uint16_t) ~(F_REUSED | F_UPSTREAM_SET | F_HAS_PRE);
	r->streams = 0;
	r->state = R_CONNECT;
	loop_timer_stop(r->loop, &r->timer);
	rc = r->cfg->on_upstream_failed(r, err);
	if (rc < 0 || !(r->flags & F_UPSTREAM_SET)) {
		if (err == ERR_RELAY_STALE || err == ERR_MUX_DOWNGRADE)
			relay_end(r, RELAY_RESET, RELAY_UP, -ECONNRESET,
			          "tunnel closed before the end of the stream");
		else
			relay_end(r, RELAY_CONNECT_FAILED, RELAY_UP, err, NULL);
		return true;
	}
	loop_queue(r->loop, &r->task, relay_advance_task);
	return true;
}

void relay_advance_task(struct loop *loop, struct loop_task *t)
{
	(void)loop;
	relay_advance(container_of(t, struct relay, task));
}

/*
 * relay_next_stream was called: the upstream goes, the tunnel stays and waits for its next
 * stream's preamble, as a new connection would after its handshake.
 */
static void relay_recycle(struct relay *r)
{
	struct relay_half *d = &r->down;
	struct timespec now;
	int64_t left;

	half_release(r, &r->up, false);
	memset(&r->up, 0, sizeof(r->up));
	r->up.fd = -1;
	relay_http_free(r);
	d->flags = H_FRAMED | H_RD_READY | H_WR_READY;
	d->written = 0;
	d->frame_left = 0;
	d->head_len = 0;
	/* An idle tunnel is not a connection: it holds no place in the limit until a stream. */
	r->flags = F_READ_PREAMBLE | F_REUSED | F_IDLE;
	r->pre_len = 0;
	r->attempts = 0;
	r->preamble_port = 0;
	memset(&r->dst, 0, sizeof(r->dst));
	r->start_ms = r->active_ms = loop_now(r->loop);
	r->state = R_PREAMBLE;
	/* Kept for RELAY_TUNNEL_KEEP_MS, and never past a certificate's notAfter. */
	clock_gettime(CLOCK_REALTIME, &now);
	left = (r->not_after - (int64_t)now.tv_sec) * 1000;
	relay_arm(r, left < RELAY_TUNNEL_KEEP_MS ? (uint32_t)(left > 1 ? left : 1)
	                                         : RELAY_TUNNEL_KEEP_MS);
	/* OpenSSL may hold the next preamble already: look at once. */
	loop_queue(r->loop, &r->task, relay_advance_task);
}

void relay_close(struct relay *r, enum relay_result result)
{
	relay_end(r, result, RELAY_DOWN, 0, NULL);
}

/* TLS helpers */

SSL *relay_tls_new(SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	/*
	 * Partial writes and moving buffers: a write that would block is retried with the
	 * same bytes, which compaction may have moved. Released buffers: an idle TLS
	 * connection keeps no record buffers. Read-ahead: one read(2) per batch of records,
	 * into a read buffer that holds a relay buffer's worth of them.
	 */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                      SSL_MODE_RELEASE_BUFFERS);
	SSL_set_read_ahead(ssl, 1);
	SSL_set_default_read_buffer_len(ssl, RELAY_TLS_READ_BUF);
	return ssl;
}

/*
 * SSL_free_buffers of OpenSSL before 3.0.14, 3.1.6, 3.2.2 and 3.3.1 could free the read
 * buffer under a partly received record (CVE-2024-4741): call it only where it is fixed.
 */
static bool tls_can_free_buffers(void)
{
	unsigned long v = OpenSSL_version_num(); /* 0xMNN00PP0 */
	unsigned long major = v >> 28, minor = (v >> 20) & 0xff, patch = (v >> 4) & 0xff;

	if (major != 3)
		return major > 3;
	switch (minor) {
	case 0:
		return patch >= 14;
	case 1:
		return patch >= 6;
	case 2:
		return patch >= 2;
	case 3:
		return patch >= 1;
	default:
		return true;
	}
}

void relay_tls_release(SSL *ssl)
{
	if (tls_can_free_buffers())
		(void)SSL_free_buffers(ssl);
}

int relay_tls_cork(SSL *ssl)
{
	BIO *w = SSL_get_wbio(ssl), *b = BIO_new(BIO_f_buffer());

	if (b == NULL || w == NULL || BIO_set_write_buffer_size(b, RELAY_TLS_READ_BUF) <= 0) {
		BIO_free(b);
		ERR_clear_error();
		return -ENOMEM;
	}
	/* The chain takes a reference to the socket BIO; SSL_set0_wbio drops the SSL's. */
	BIO_up_ref(w);
	BIO_push(b, w);
	SSL_set0_wbio(ssl, b);
	return 0;
}

int relay_tls_uncork(SSL *ssl)
{
	BIO *b = SSL_get_wbio(ssl);

	if (BIO_flush(b) <= 0) {
		if (BIO_should_retry(b))
			return 0;
		ERR_clear_error();
		return -EPIPE;
	}
	/* The chain's reference to the socket BIO becomes the SSL's; the buffer goes. */
	SSL_set0_wbio(ssl, BIO_pop(b));
	return 1;
}

/* Why a TLS operation failed, as static text (OpenSSL's tables). */
const char *relay_tls_reason(SSL *ssl, int sslerr, int rc)
{
	const char *s;
	long v;

	if (sslerr == SSL_ERROR_SSL) {
		v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			return X509_verify_cert_error_string(v);
		s = ERR_reason_error_string(ERR_peek_error());
		return s != NULL ? s : "TLS protocol error";
	}
	if (sslerr == SSL_ERROR_ZERO_RETURN || (sslerr == SSL_ERROR_SYSCALL && rc == 0))
		return "connection closed";
	return "connection error";
}

/* The -errno or code behind a TLS failure. */
int relay_tls_error(int sslerr)
{
	if (sslerr == SSL_ERROR_SYSCALL && errno != 0)
		return -errno;
	return sslerr == SSL_ERROR_SSL ? -EPROTO : -ECONNRESET;
}

/*
 * A probed handshake's failure, for on_probe_failed: -ECONNRESET for a peer that closed
 * (OpenSSL 3 reports an EOF as a protocol error: "unexpected eof while reading"), -EPROTO
 * for one that answered something else than our TLS. Before the error queue is read.
 */
static int relay_probe_error(int sslerr)
{
	if (sslerr == SSL_ERROR_SSL &&
	    ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return -ECONNRESET;
	return relay_tls_error(sslerr);
}

/* Whether a handshake got as far as an application protocol (ALPN) agreed with the peer. */
static bool relay_alpn_agreed(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n > 0;
}

/* Timers: one per relay, for the deadline of its current state */

static void relay_arm(struct relay *r, uint32_t ms)
{
	if (ms == 0) {
		loop_timer_stop(r->loop, &r->timer);
		return;
	}
	if (loop_timer_set(r->loop, &r->timer, ms) < 0)
		relay_end(r, RELAY_RESET, RELAY_DOWN, -ENOMEM, NULL);
}

/*
 * The deadlines of the RELAY state: no byte either way for idle_timeout_ms; on HTTP ports
 * also a request head that takes longer than request_head_timeout_ms. Bytes do not move
 * the timer (a heap update per read): it fires at the earliest deadline that may have
 * come, and this works out whether one has, or when the next is. While no head is
 * awaited, one may begin at any moment, so the timer comes back a head's time from now
 * at the latest: a connection kept alive between requests wakes up that often.
 */
static void relay_deadlines(struct relay *r)
{
	uint64_t now = loop_now(r->loop), next = UINT64_MAX;
	uint32_t idle = r->cfg->idle_timeout_ms, head = r->cfg->request_head_timeout_ms;
	struct httpflow *f = r->http;

	if (f != NULL && head != 0) {
		next = now + head;
		if (f->head_wait && now - f->head_since >= head) {
			/*
			 * Not a byte of the first request: close without a word, like nginx (a
			 * reply could cross a request sent at that moment). Else a 408.
			 */
			if (r->down.buf == NULL || r->down.end == r->down.gate) {
				relay_end(r, RELAY_TIMEOUT, RELAY_DOWN, -ETIMEDOUT, "request_head");
				return;
			}
			httpflow_head_timeout(f);
			relay_deadlines(r); /* once more: no head is awaited now */
			relay_advance(r);   /* the 408 goes out (or waits for responses) */
			return;
		}
		if (f->head_wait)
			next = f->head_since + head;
	}
	if (idle != 0) {
		if (now - r->active_ms >= idle) {
			relay_end(r, RELAY_TIMEOUT, RELAY_DOWN, -ETIMEDOUT, "idle");
			return;
		}
		if (r->active_ms + idle < next)
			next = r->active_ms + idle;
	}
	if (next == UINT64_MAX)
		loop_timer_stop(r->loop, &r->timer);
	else
		relay_arm(r, (uint32_t)(next - now));
}

static void relay_upstream_failed(struct relay *r, int err);
static bool relay_probe_failed(struct relay *r, int err, const char *reason);

/* Whether a probed upstream's deadline comes before the handshake timeout (0: none). */
static bool relay_probe_first(const struct relay *r)
{
	uint32_t hs = r->cfg->handshake_timeout_ms;

	return (r->flags & F_PROBE) && (hs == 0 || r->probe_ms < hs);
}

static void relay_timeout(struct loop *loop, struct loop_timer *t)
{
	struct relay *r = container_of(t, struct relay, timer);

	(void)loop;
	switch (r->state) {
	case R_DOWN_HS:
	case R_PREAMBLE:
		/* A kept tunnel with no byte of a next stream: its keep time is over. */
		if ((r->flags & (F_IDLE | F_PRE_IN)) == F_IDLE) {
			relay_end(r, RELAY_CLOSED, RELAY_DOWN, 0, "idle tunnel");
			return;
		}
		relay_end(r, RELAY_TIMEOUT, RELAY_DOWN, -ETIMEDOUT, "handshake");
		return;
	case R_UP_HS:
		/*
		 * A probed peer that agreed to an application protocol is a TLS server, not an
		 * application in silence: the rest of the handshake timeout is its.
		 */
		if (relay_probe_first(r) && relay_alpn_agreed(r->up.ssl)) {
			uint32_t hs = r->cfg->handshake_timeout_ms;

			r->flags &= (uint16_t)~F_PROBE;
			relay_arm(r, hs == 0 ? 0 : hs - r->probe_ms);
			return;
		}
		if (relay_probe_failed(r, -ETIMEDOUT, "handshake")) {
			relay_advance(r);
			return;
		}
		relay_end(r, RELAY_TIMEOUT, RELAY_UP, -ETIMEDOUT, "handshake");
		return;
	case R_CONNECTING:
		relay_upstream_failed(r, -ETIMEDOUT);
		relay_advance(r);
		return;
	case R_RELAY:
		relay_deadlines(r);
		return;
	default:
		return;
	}
}

/* The states */

/*
 * Puts the preamble at the front of the client's bytes, once the upstream is ready: version
 * 2 on a framed upstream (one naming the upstream's port when none was given), version 1
 * when one was given. Returns 0 or -ENOMEM.
 */
static int relay_put_preamble(struct relay *r)
{
	struct relay_half *d = &r->down;
	struct preamble pre = r->pre;
	uint8_t enc[PREAMBLE_MAX];
	int plen;

	if (relay_framed(&r->up)) {
		if (!(r->flags & F_HAS_PRE))
			pre = (struct preamble){ .port = r->dst.port };
		pre.version = PREAMBLE_VERSION_2;
	} else if (r->flags & F_HAS_PRE) {
		pre.version = PREAMBLE_VERSION;
	} else {
		return 0;
	}
	r->flags &= (uint16_t)~F_HAS_PRE;
	plen = preamble_encode(&pre, enc, sizeof(enc));
	if (plen < 0)
		return plen;
	if (d->buf == NULL) {
		d->buf = loop_buf_get(r->loop);
		if (d->buf == NULL)
			return -ENOMEM;
		d->start = d->end = d->gate = 0;
	}
	/* Early reads leave PREAMBLE_MAX bytes free, so this always fits. */
	if (d->start < (uint32_t)plen) {
		memmove(d->buf + plen, d->buf + d->start, d->end - d->start);
		d->end = d->end - d->start + (uint32_t)plen;
		d->start = (uint32_t)plen;
	}
	d->start -= (uint32_t)plen;
	memcpy(d->buf + d->start, enc, (size_t)plen);
	r->pre_len = (uint8_t)plen;
	return 0;
}

static void relay_enter_relay(struct relay *r)
{
	int rc = relay_put_preamble(r);

	if (rc < 0) {
		relay_end(r, RELAY_RESET, RELAY_UP, rc, NULL);
		return;
	}
	r->state = R_RELAY;
	r->up.flags |= H_RD_READY | H_WR_READY;
	r->down.flags |= H_WR_READY;
	r->active_ms = loop_now(r->loop);
	/* The first request's head is counted from here: the handshake had its own. */
	if (r->http != NULL && r->http->head_wait)
		r->http->head_since = r->active_ms;
	relay_deadlines(r);
}

void relay_peer_fill(SSL *ssl, enum relay_side side, struct relay_peer *peer, struct spiffe_id *id,
                     char text[SPIFFE_ID_MAX + 1])
{
	int rc;

	*peer = (struct relay_peer){ .side = side, .ssl = ssl };
	peer->cert = SSL_get0_peer_certificate(ssl);
	peer->verified = peer->cert != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
	if (!peer->verified)
		return;
	rc = x509_spiffe_id(peer->cert, id);
	if (rc == 0)
		rc = spiffe_id_format(id, text, SPIFFE_ID_MAX + 1);
	if (rc == 0) {
		peer->id = id;
		peer->id_text = text;
	} else {
		peer->id_error = rc;
	}
}

int64_t relay_tls_not_after(SSL *ssl)
{
	X509 *certs[2] = { SSL_get0_peer_certificate(ssl), SSL_get_certificate(ssl) };
	int64_t na = INT64_MAX, t;

	for (int i = 0; i < 2; i++) {
		if (certs[i] == NULL || x509_not_after(certs[i], &t) < 0)
			return 0;
		if (t < na)
			na = t;
	}
	return na;
}

void relay_tls_keepalive(int fd)
{
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &(int){ 1 }, sizeof(int));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &(int){ 10 }, sizeof(int));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &(int){ 5 }, sizeof(int));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &(int){ 2 }, sizeof(int));
}

/* After a handshake: the peer's identity, then the hook. Returns 1, or -1 when closed. */
static int relay_handshake_done(struct relay *r, struct relay_half *h)
{
	struct relay_peer peer;
	struct spiffe_id id;
	char text[SPIFFE_ID_MAX + 1];
	int rc;

	relay_peer_fill(h->ssl, relay_side_of(r, h), &peer, &id, text);
	if (peer.id_text != NULL) {
		h->peer_id = strdup(text);
		if (h->peer_id == NULL) {
			relay_end(r, RELAY_RESET, relay_side_of(r, h), -ENOMEM, NULL);
			return -1;
		}
		peer.id_text = h->peer_id;
	}
	if (r->cfg->on_handshake != NULL) {
		rc = r->cfg->on_handshake(r, &peer);
		if (rc < 0) {
			relay_end(r, RELAY_DENIED, peer.side, rc, NULL);
			return -1;
		}
		/* The hook took the connection (protocol 3): nothing is left to relay. */
		if (r->flags & F_DETACHED) {
			relay_end(r, RELAY_CLOSED, peer.side, 0, NULL);
			return -1;
		}
	}
	if (h == &r->up)
		r->flags &= (uint16_t)~F_PROBE;
	/* OpenSSL may hold bytes that arrived with the handshake's last flight. */
	h->flags |= H_RD_READY | H_WR_READY;
	relay_tls_release(h->ssl);
	h->flags &= (uint16_t)~H_HS_WANTS_WRITE;
	return 1;
}

/* One step of h's handshake. Returns 1 when done, 0 to wait, -1 when closed. */
static int relay_handshake(struct relay *r, struct relay_half *h)
{
	int rc, e;

	if (!(h->flags & ((h->flags & H_HS_WANTS_WRITE) ? H_WR_READY : H_RD_READY)))
		return 0;
	relay_tls_clear();
	rc = SSL_do_handshake(h->ssl);
	if (rc == 1)
		return relay_handshake_done(r, h);
	e = SSL_get_error(h->ssl, rc);
	if (e == SSL_ERROR_WANT_READ) {
		h->flags &= (uint16_t) ~(H_HS_WANTS_WRITE | H_RD_READY);
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		h->flags = (uint16_t)((h->flags | H_HS_WANTS_WRITE) & ~H_WR_READY);
		return 0;
	}
	/* A probed peer that agreed to an application protocol is a TLS server: no probe. */
	if (h == &r->up && (r->flags & F_PROBE) && !relay_alpn_agreed(h->ssl) &&
	    relay_probe_failed(r, relay_probe_error(e), relay_tls_reason(h->ssl, e, rc)))
		return -1;
	relay_end(r, RELAY_HANDSHAKE_FAILED, relay_side_of(r, h), relay_tls_error(e),
	          relay_tls_reason(h->ssl, e, rc));
	return -1;
}

/* Reads and parses the tunnel preamble. Returns 1 when done, 0 to wait, -1 when closed. */
static int relay_read_preamble(struct relay *r)
{
	struct relay_half *d = &r->down;
	struct preamble p;
	int rc;

	for (;;) {
		if (d->buf != NULL) {
			rc = preamble_parse((const uint8_t *)d->buf + d->start, d->end - d->start,
			                    &p);
			if (rc < 0) {
				relay_end(r, RELAY_HANDSHAKE_FAILED, RELAY_DOWN, rc, err_str(rc));
				return -1;
			}
			if (rc > 0) {
				d->start += (uint32_t)rc;
				relay_pump_drop_buf(r, d);
				break;
			}
		}
		if (d->flags & H_RD_EOF) {
			/* A kept tunnel that the client closes between streams ends quietly. */
			if ((r->flags & (F_IDLE | F_PRE_IN)) == F_IDLE)
				relay_end(r, RELAY_CLOSED, RELAY_DOWN, 0, "idle tunnel closed");
			else
				relay_end(r, RELAY_HANDSHAKE_FAILED, RELAY_DOWN, -ECONNRESET,
				          "connection closed before the preamble");
			return -1;
		}
		rc = relay_pump_read(r, d);
		if (rc <= 0)
			return rc;
		/* A kept tunnel's next stream has begun: its preamble has the handshake's time. */
		if ((r->flags & F_IDLE) && !(r->flags & F_PRE_IN) && d->buf != NULL) {
			r->flags |= F_PRE_IN;
			relay_arm(r, r->cfg->handshake_timeout_ms);
			if (r->state == R_CLOSED)
				return -1;
		}
	}
	/* The tunnel's protocol (ALPN) says which version its preambles are. */
	if (p.version != (d->ms != NULL     ? PREAMBLE_VERSION_3
	                  : relay_framed(d) ? PREAMBLE_VERSION_2
	                                    : PREAMBLE_VERSION)) {
		relay_end(r, RELAY_HANDSHAKE_FAILED, RELAY_DOWN, ERR_PREAMBLE_VERSION,
		          err_str(ERR_PREAMBLE_VERSION));
		return -1;
	}
	if (r->flags & F_IDLE) {
		/*
		 * The next stream: it is reported from now on, its time counts from here, and it
		 * takes a place in the limit (a refusal goes back in the stream, as a RESET).
		 */
		r->flags &= (uint16_t) ~(F_IDLE | F_PRE_IN);
		r->start_ms = r->active_ms = loop_now(r->loop);
		if (r->cfg->limit != NULL) {
			uint32_t n = atomic_fetch_add(&r->cfg->limit->active, 1);

			r->flags |= F_COUNTED;
			if (r->cfg->limit->max != 0 && n >= r->cfg->limit->max) {
				atomic_fetch_add(&r->cfg->limit->refused, 1);
				r->state = R_CONNECT;
				relay_end(r, RELAY_DENIED, RELAY_DOWN, ERR_RELAY_LIMIT, NULL);
				return -1;
			}
		}
	}
	r->preamble_port = p.port;
	r->flags &= (uint16_t)~F_UPSTREAM_SET;
	/* The stream has begun: a refusal from here on is told in it (RESET, protocol 2). */
	r->state = R_CONNECT;
	rc = r->cfg->on_preamble != NULL ? r->cfg->on_preamble(r, &p) : -ENOSYS;
	if (rc == 0 && !(r->flags & F_UPSTREAM_SET))
		rc = -EDESTADDRREQ;
	if (rc < 0) {
		relay_end(r, RELAY_DENIED, RELAY_DOWN, rc, NULL);
		return -1;
	}
	return 1;
}

static void relay_drop_upstream(struct relay *r)
{
	if (r->up.fd >= 0) {
		loop_unwatch(r->loop, r->up.fd);
		close(r->up.fd);
		r->up.fd = -1;
	}
	r->up.flags = 0;
}

/*
 * The connect failed: ask the hook for another target. Leaves the relay in R_CONNECT to
 * try again, or closed.
 */
static void relay_upstream_failed(struct relay *r, int err)
{
	int rc = err;

	relay_drop_upstream(r);
	r->state = R_CONNECT;
	r->flags &= (uint16_t)~F_UPSTREAM_SET;
	if (r->attempts < RELAY_MAX_ATTEMPTS && r->cfg->on_upstream_failed != NULL) {
		rc = r->cfg->on_upstream_failed(r, err);
		if (rc == 0 && !(r->flags & F_UPSTREAM_SET))
			rc = err;
	}
	if (rc < 0)
		relay_end(r, RELAY_CONNECT_FAILED, RELAY_UP, err, NULL);
}

/*
 * A probed upstream's handshake failed (err, reason), or it did not answer in time
 * (-ETIMEDOUT): on_probe_failed, with the failed TLS connection still at
 * relay_ssl(r, RELAY_UP), may set another target. Returns false for an upstream that is not
 * probed (the caller ends the relay); true when the relay is in R_CONNECT to try again, or
 * closed (the failure stands).
 */
static bool relay_probe_failed(struct relay *r, int err, const char *reason)
{
	int rc = err;

	if (!(r->flags & F_PROBE))
		return false;
	ERR_clear_error();
	r->flags &= (uint16_t) ~(F_PROBE | F_UPSTREAM_SET);
	relay_drop_upstream(r);
	r->state = R_CONNECT;
	if (r->attempts < RELAY_MAX_ATTEMPTS && r->cfg->on_probe_failed != NULL) {
		rc = r->cfg->on_probe_failed(r, err);
		if (rc == 0 && !(r->flags & F_UPSTREAM_SET))
			rc = err;
	}
	if (rc < 0)
		relay_end(r, err == -ETIMEDOUT ? RELAY_TIMEOUT : RELAY_HANDSHAKE_FAILED, RELAY_UP,
		          err, reason);
	return true;
}

static void relay_connected(struct relay *r)
{
	loop_timer_stop(r->loop, &r->timer);
	if (r->up.ssl != NULL) {
		r->state = R_UP_HS;
		r->up.flags |= H_RD_READY | H_WR_READY;
		relay_arm(r, relay_probe_first(r) ? r->probe_ms : r->cfg->handshake_timeout_ms);
	} else {
		relay_enter_relay(r);
	}
}

static void relay_io(struct loop *loop, int fd, uint32_t events, void *arg);

/* Starts connecting to r->dst. Leaves the relay in a later state, R_CONNECT or closed. */
static void relay_connect(struct relay *r)
{
	struct sockaddr_storage ss;
	socklen_t len = addr_to(&r->dst, &ss);
	int fd, rc, one = 1;
	bool now;

	r->attempts++;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		relay_upstream_failed(r, -errno);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = connect(fd, (struct sockaddr *)&ss, len);
	if (rc < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		relay_upstream_failed(r, rc);
		return;
	}
	now = rc == 0;
	r->up.fd = fd;
	rc = loop_watch(r->loop, fd, 0, relay_io, r);
	if (rc == 0 && r->up.ssl != NULL && !SSL_set_fd(r->up.ssl, fd))
		rc = -ENOMEM;
	if (rc < 0) {
		relay_end(r, RELAY_RESET, RELAY_UP, rc, NULL);
		return;
	}
	if (now) {
		relay_connected(r);
		return;
	}
	r->state = R_CONNECTING;
	relay_arm(r, r->cfg->connect_timeout_ms);
}

/* Whether the connect finished. Returns 1 when the state moved on, 0 to wait. */
static int relay_connect_check(struct relay *r)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (!(r->up.flags & (H_WR_READY | H_RD_READY)))
		return 0;
	if (getsockopt(r->up.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY) {
		r->up.flags &= (uint16_t) ~(H_WR_READY | H_RD_READY);
		return 0;
	}
	if (err != 0)
		relay_upstream_failed(r, -err);
	else
		relay_connected(r);
	return 1;
}

/* Runs the state machine as far as it goes without waiting, then moves bytes. */
void relay_advance(struct relay *r)
{
	int rc;

	for (;;) {
		switch (r->state) {
		case R_DOWN_HS:
			rc = relay_handshake(r, &r->down);
			if (rc <= 0)
				goto wait;
			r->state = (r->flags & F_READ_PREAMBLE) ? R_PREAMBLE : R_CONNECT;
			break;
		case R_PREAMBLE:
			rc = relay_read_preamble(r);
			if (rc <= 0)
				goto wait;
			r->state = R_CONNECT;
			break;
		case R_CONNECT:
			loop_timer_stop(r->loop, &r->timer);
			/* A kept tunnel (relay_use_tunnel) or a stream (relay_use_stream). */
			if (r->up.fd >= 0 || r->up.ms != NULL)
				relay_enter_relay(r);
			else
				relay_connect(r);
			break;
		case R_CONNECTING:
			if (relay_connect_check(r) == 0)
				goto wait;
			break;
		case R_UP_HS:
			rc = relay_handshake(r, &r->up);
			if (rc < 0 && r->state == R_CONNECT)
				break; /* a probe failed: another upstream is set */
			if (rc <= 0)
				goto wait;
			relay_enter_relay(r);
			break;
		case R_RELAY:
			relay_pump(r);
			return;
		default:
			return;
		}
	}
wait:
	if (r->state == R_CLOSED)
		return;
	if (r->state == R_CONNECTING || r->state == R_UP_HS)
		relay_pump(r); /* early bytes from the client, or its end or reset */
	else
		relay_pump_update(r);
}

/* Readiness becomes flags; the TLS "wants" flags say which operation it unblocks. */
static void relay_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct relay *r = arg;
	struct relay_half *h = fd == r->down.fd ? &r->down : &r->up;

	(void)loop;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		h->flags |= H_RD_READY;
		if (h->flags & H_WRITE_WANTS_READ)
			h->flags |= H_WR_READY;
	}
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		h->flags |= H_WR_READY;
		if (h->flags & H_READ_WANTS_WRITE)
			h->flags |= H_RD_READY;
	}
	relay_advance(r);
}

/* The API */

/*
 * A relay with nothing set up yet, holding a place in cfg->limit (F_COUNTED). NULL with
 * *err: ERR_RELAY_LIMIT (the limit is full: counted as refused) or -ENOMEM.
 */
static struct relay *relay_alloc(struct loop *loop, const struct relay_config *cfg,
                                 const struct sockaddr *src, void *data, int *err)
{
	struct relay *r;

	if (cfg->limit != NULL) {
		uint32_t n = atomic_fetch_add(&cfg->limit->active, 1);

		if (cfg->limit->max != 0 && n >= cfg->limit->max) {
			atomic_fetch_add(&cfg->limit->refused, 1);
			atomic_fetch_sub(&cfg->limit->active, 1);
			*err = ERR_RELAY_LIMIT;
			return NULL;
		}
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		if (cfg->limit != NULL)
			atomic_fetch_sub(&cfg->limit->active, 1);
		*err = -ENOMEM;
		return NULL;
	}
	r->loop = loop;
	r->cfg = cfg;
	r->data = data;
	r->down.fd = -1;
	r->up.fd = -1;
	r->start_ms = r->active_ms = loop_now(loop);
	loop_timer_init(&r->timer, relay_timeout);
	if (cfg->limit != NULL)
		r->flags |= F_COUNTED;
	if (src != NULL)
		(void)addr_from(&r->src, src, sizeof(struct sockaddr_storage));
	return r;
}

/* Undoes relay_alloc (and what was set up since, but sockets). */
static void relay_unalloc(struct relay *r)
{
	/* Counters first: whoever sees the socket close sees them right. */
	if (r->flags & F_COUNTED)
		atomic_fetch_sub(&r->cfg->limit->active, 1);
	SSL_free(r->down.ssl);
	free(r->down.peer_id);
	free(r);
	ERR_clear_error();
}

struct relay *relay_new(struct loop *loop, const struct relay_config *cfg, int fd,
                        const struct sockaddr *src, SSL_CTX *tls, unsigned flags, void *data,
                        int *err)
{
	struct relay *r = relay_alloc(loop, cfg, src, data, err);
	int rc = -ENOMEM;

	if (r == NULL) {
		close(fd);
		return NULL;
	}
	if (flags & RELAY_READ_PREAMBLE)
		r->flags |= F_READ_PREAMBLE;
	if (tls != NULL) {
		r->down.ssl = relay_tls_new(tls);
		if (r->down.ssl == NULL || !SSL_set_fd(r->down.ssl, fd))
			goto fail;
		SSL_set_accept_state(r->down.ssl);
	}
	rc = loop_watch(loop, fd, 0, relay_io, r);
	if (rc < 0)
		goto fail;
	r->down.fd = fd;
	return r;
fail:
	relay_unalloc(r);
	close(fd);
	*err = rc;
	return NULL;
}

int relay_set_upstream(struct relay *r, const struct sockaddr *addr, socklen_t len, SSL_CTX *tls,
                       const struct preamble *pre)
{
	struct relay_addr dst;
	uint8_t enc[PREAMBLE_MAX];
	SSL *ssl = NULL;

	if (r->state > R_CONNECT || r->up.fd >= 0 || r->up.ms != NULL)
		return -EBUSY;
	if (addr == NULL || addr_from(&dst, addr, len) < 0 || dst.family == AF_UNSPEC)
		return -EINVAL;
	if (pre != NULL && preamble_encode(pre, enc, sizeof(enc)) < 0)
		return -EINVAL;
	if (tls != NULL && (ssl = relay_tls_new(tls)) == NULL)
		return -ENOMEM;
	/* The preamble is put in front of the client's bytes once the upstream is ready. */
	r->flags &= (uint16_t)~F_HAS_PRE;
	if (pre != NULL) {
		r->pre = *pre;
		r->flags |= F_HAS_PRE;
	}
	SSL_free(r->up.ssl);
	r->up.ssl = ssl;
	if (ssl != NULL)
		SSL_set_connect_state(ssl);
	r->flags &= (uint16_t)~F_PROBE;
	r->dst = dst;
	r->flags |= F_UPSTREAM_SET;
	return 0;
}

int relay_use_tunnel(struct relay *r, const struct sockaddr *addr, socklen_t len,
                     struct relay_tunnel *t, const struct preamble *pre)
{
	int rc = relay_set_upstream(r, addr, len, NULL, pre);

	if (rc == 0)
		rc = loop_watch(r->loop, t->fd, 0, relay_io, r);
	if (rc < 0) {
		r->flags &= (uint16_t) ~(F_UPSTREAM_SET | F_HAS_PRE);
		relay_tunnel_close(t);
		return rc;
	}
	r->up.fd = t->fd;
	r->up.ssl = t->ssl;
	r->up.peer_id = t->peer_id;
	r->not_after = t->not_after;
	r->streams = t->streams;
	/* Until the peer answers, the stream may have to start again elsewhere. */
	r->flags |= F_REPLAY;
	r->up.flags = H_FRAMED;
	if (t->streams > 0)
		r->flags |= F_REUSED;
	free(t);
	return 0;
}

int relay_probe_upstream(struct relay *r, uint32_t timeout_ms)
{
	if (!(r->flags & F_UPSTREAM_SET) || r->up.ssl == NULL || r->up.fd >= 0 || timeout_ms == 0)
		return -EINVAL;
	r->flags |= F_PROBE;
	r->probe_ms = timeout_ms;
	return 0;
}

struct relay_tunnel *relay_take_tunnel(struct relay *r)
{
	struct relay_half *u = &r->up;
	struct relay_tunnel *t;

	if (!relay_framed(u) || u->fd < 0 || u->ssl == NULL || !(r->flags & F_REUSABLE))
		return NULL;
	t = malloc(sizeof(*t));
	if (t == NULL)
		return NULL;
	loop_unwatch(r->loop, u->fd);
	t->fd = u->fd;
	t->ssl = u->ssl;
	t->peer_id = u->peer_id;
	t->not_after = r->not_after;
	t->idle_since = r->end_out_ms;
	t->streams = r->streams + 1;
	u->fd = -1;
	u->ssl = NULL;
	u->peer_id = NULL;
	return t;
}

void relay_tunnel_close(struct relay_tunnel *t)
{
	if (t == NULL)
		return;
	if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
		(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
	SSL_free(t->ssl);
	close(t->fd);
	free(t->peer_id);
	free(t);
}

int relay_next_stream(struct relay *r)
{
	struct relay_half *d = &r->down;

	if (!relay_framed(d) || d->fd < 0 || !(r->flags & F_REUSABLE))
		return -EINVAL;
	r->flags |= F_NEXT;
	return 0;
}

int relay_set_framed(struct relay *r, enum relay_side side)
{
	struct relay_half *h = side == RELAY_DOWN ? &r->down : &r->up;

	if (h->ssl == NULL)
		return -EINVAL;
	h->flags |= H_FRAMED;
	/*
	 * A kept tunnel may sit idle: TCP keep-alive finds a peer that vanished without a word
	 * (its node died) within about 20 s of quiet, and the idle tunnel is dropped then.
	 */
	relay_tls_keepalive(h->fd);
	if (side == RELAY_DOWN)
		r->flags |= F_READ_PREAMBLE;
	/* Never used past either certificate's notAfter. */
	r->not_after = relay_tls_not_after(h->ssl);
	return 0;
}

int relay_detach(struct relay *r, enum relay_side side, int *fd, SSL **ssl)
{
	struct relay_half *h = side == RELAY_DOWN ? &r->down : &r->up;

	if (h->fd < 0 || h->ssl == NULL || (r->state != R_DOWN_HS && r->state != R_UP_HS))
		return -EINVAL;
	loop_unwatch(r->loop, h->fd);
	*fd = h->fd;
	*ssl = h->ssl;
	h->fd = -1;
	h->ssl = NULL;
	r->flags |= F_DETACHED;
	return 0;
}

/* Protocol 3: the mux says something may have changed for the stream. */
static void relay_stream_wake(void *arg)
{
	struct relay *r = arg;
	struct relay_half *h = r->up.ms != NULL ? &r->up : &r->down;

	h->flags |= H_RD_READY | H_WR_READY;
	loop_queue(r->loop, &r->task, relay_advance_task);
}

int relay_use_stream(struct relay *r, const struct sockaddr *addr, socklen_t len, struct mux *m,
                     const struct preamble *pre)
{
	struct preamble p = pre != NULL ? *pre : (struct preamble){ 0 };
	uint8_t enc[PREAMBLE_MAX];
	bool reused = mux_streams_total(m) > 0;
	int rc = relay_set_upstream(r, addr, len, NULL, NULL), n;

	if (rc < 0)
		return rc;
	if (pre == NULL)
		p.port = r->dst.port;
	p.version = PREAMBLE_VERSION_3;
	n = preamble_encode(&p, enc, sizeof(enc));
	if (n < 0)
		rc = n;
	else if ((r->up.ms = mux_open(m, enc, (size_t)n, relay_stream_wake, r, &rc)) != NULL)
		rc = 0;
	if (rc < 0) {
		r->flags &= (uint16_t)~F_UPSTREAM_SET;
		return rc;
	}
	r->attempts++;
	/* Until the peer takes the stream, it may have to start again elsewhere. */
	r->flags |= F_REPLAY;
	if (reused)
		r->flags |= F_REUSED;
	return 0;
}

struct relay *relay_new_stream(struct loop *loop, const struct relay_config *cfg,
                               struct mux_stream *s, const struct sockaddr *src, bool reused,
                               void *data, int *err)
{
	struct relay *r = relay_alloc(loop, cfg, src, data, err);
	const char *peer = s->mux != NULL ? mux_peer_id(s->mux) : NULL;

	if (r == NULL)
		return NULL;
	if (peer != NULL && (r->down.peer_id = strdup(peer)) == NULL) {
		relay_unalloc(r);
		*err = -ENOMEM;
		return NULL;
	}
	r->flags |= F_READ_PREAMBLE | (reused ? F_REUSED : 0);
	r->down.ms = s;
	s->wake = relay_stream_wake;
	s->arg = r;
	return r;
}

void relay_start(struct relay *r)
{
	if (r->state != R_NEW)
		return;
	if (r->down.ssl != NULL) {
		r->state = R_DOWN_HS;
		r->down.flags |= H_RD_READY | H_WR_READY;
	} else if (r->flags & F_READ_PREAMBLE) {
		r->state = R_PREAMBLE;
		r->down.flags |= H_RD_READY;
	} else if (r->flags & F_UPSTREAM_SET) {
		r->state = R_CONNECT;
	} else {
		relay_end(r, RELAY_DENIED, RELAY_UP, -EDESTADDRREQ, NULL);
		return;
	}
	if (r->state != R_CONNECT)
		relay_arm(r, r->cfg->handshake_timeout_ms);
	relay_advance(r);
}

const char *relay_peer_id(const struct relay *r, enum relay_side side)
{
	return side == RELAY_DOWN ? r->down.peer_id : r->up.peer_id;
}

void *relay_data(const struct relay *r)
{
	return r->data;
}

struct loop *relay_loop(const struct relay *r)
{
	return r->loop;
}

int relay_fd(const struct relay *r, enum relay_side side)
{
	const struct relay_half *h = side == RELAY_DOWN ? &r->down : &r->up;

	if (h->ms != NULL)
		return h->ms->mux != NULL ? mux_fd(h->ms->mux) : -1;
	return h->fd;
}

SSL *relay_ssl(const struct relay *r, enum relay_side side)
{
	return side == RELAY_DOWN ? r->down.ssl : r->up.ssl;
}

void relay_source(const struct relay *r, struct sockaddr_storage *out)
{
	addr_to(&r->src, out);
}

size_t relay_buffered(const struct relay *r)
{
	return (size_t)(r->down.end - r->down.start) + (r->up.end - r->up.start);
}

size_t relay_size(void)
{
	return sizeof(struct relay);
}
