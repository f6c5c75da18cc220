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
	free(r);
}

static void half_release(struct relay *r, struct relay_half *h, bool rst)
{
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
	free(h->peer_id);
	h->peer_id = NULL;
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

	if (r->state == R_CLOSED)
		return;
	r->state = R_CLOSED;
	/* After a 408 the connection ends as any other once both sides are done: say why. */
	if (result == RELAY_OK && r->http != NULL && r->http->head_timed_out) {
		result = RELAY_TIMEOUT;
		error = -ETIMEDOUT;
		reason = "request_head";
	}
	ERR_clear_error();
	loop_timer_stop(r->loop, &r->timer);
	/* Before on_close: once the last one has run, the count is 0. */
	if (r->flags & F_COUNTED)
		atomic_fetch_sub(&r->cfg->limit->active, 1);
	r->flags &= (uint8_t)~F_COUNTED;
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
		r->cfg->on_close(r, &st);
	}
	half_release(r, &r->down, result == RELAY_RESET);
	half_release(r, &r->up, result == RELAY_RESET);
	/* Events already fetched for our fds are dropped by the loop; the memory goes later. */
	loop_queue(r->loop, &r->task, relay_free_task);
}

void relay_close(struct relay *r, enum relay_result result)
{
	relay_end(r, result, RELAY_DOWN, 0, NULL);
}

/* TLS helpers */

static SSL *tls_new(SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	/*
	 * Partial writes and moving buffers: a write that would block is retried with the
	 * same bytes, which compaction may have moved. Released buffers: an idle TLS
	 * connection keeps no record buffers. Read-ahead: one read(2) per batch of records.
	 */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                      SSL_MODE_RELEASE_BUFFERS);
	SSL_set_read_ahead(ssl, 1);
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

static void relay_timeout(struct loop *loop, struct loop_timer *t)
{
	struct relay *r = container_of(t, struct relay, timer);

	(void)loop;
	switch (r->state) {
	case R_DOWN_HS:
	case R_PREAMBLE:
		relay_end(r, RELAY_TIMEOUT, RELAY_DOWN, -ETIMEDOUT, "handshake");
		return;
	case R_UP_HS:
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

static void relay_enter_relay(struct relay *r)
{
	r->state = R_RELAY;
	r->up.flags |= H_RD_READY | H_WR_READY;
	r->down.flags |= H_WR_READY;
	r->active_ms = loop_now(r->loop);
	/* The first request's head is counted from here: the handshake had its own. */
	if (r->http != NULL && r->http->head_wait)
		r->http->head_since = r->active_ms;
	relay_deadlines(r);
}

/* After a handshake: the peer's identity, then the hook. Returns 1, or -1 when closed. */
static int relay_handshake_done(struct relay *r, struct relay_half *h)
{
	struct relay_peer peer = { .side = relay_side_of(r, h), .ssl = h->ssl };
	struct spiffe_id id;
	char text[SPIFFE_ID_MAX + 1];
	int rc;

	peer.cert = SSL_get0_peer_certificate(h->ssl);
	peer.verified = peer.cert != NULL && SSL_get_verify_result(h->ssl) == X509_V_OK;
	if (peer.verified) {
		rc = x509_spiffe_id(peer.cert, &id);
		if (rc == 0)
			rc = spiffe_id_format(&id, text, sizeof(text));
		if (rc == 0) {
			h->peer_id = strdup(text);
			if (h->peer_id == NULL) {
				relay_end(r, RELAY_RESET, relay_side_of(r, h), -ENOMEM, NULL);
				return -1;
			}
			peer.id = &id;
			peer.id_text = h->peer_id;
		} else {
			peer.id_error = rc;
		}
	}
	if (r->cfg->on_handshake != NULL) {
		rc = r->cfg->on_handshake(r, &peer);
		if (rc < 0) {
			relay_end(r, RELAY_DENIED, peer.side, rc, NULL);
			return -1;
		}
	}
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
	ERR_clear_error();
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
			relay_end(r, RELAY_HANDSHAKE_FAILED, RELAY_DOWN, -ECONNRESET,
			          "connection closed before the preamble");
			return -1;
		}
		rc = relay_pump_read(r, d);
		if (rc <= 0)
			return rc;
	}
	r->preamble_port = p.port;
	r->flags &= (uint8_t)~F_UPSTREAM_SET;
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
	r->flags &= (uint8_t)~F_UPSTREAM_SET;
	if (r->attempts < RELAY_MAX_ATTEMPTS && r->cfg->on_upstream_failed != NULL) {
		rc = r->cfg->on_upstream_failed(r, err);
		if (rc == 0 && !(r->flags & F_UPSTREAM_SET))
			rc = err;
	}
	if (rc < 0)
		relay_end(r, RELAY_CONNECT_FAILED, RELAY_UP, err, NULL);
}

static void relay_connected(struct relay *r)
{
	loop_timer_stop(r->loop, &r->timer);
	if (r->up.ssl != NULL) {
		r->state = R_UP_HS;
		r->up.flags |= H_RD_READY | H_WR_READY;
		relay_arm(r, r->cfg->handshake_timeout_ms);
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
			relay_connect(r);
			break;
		case R_CONNECTING:
			if (relay_connect_check(r) == 0)
				goto wait;
			break;
		case R_UP_HS:
			rc = relay_handshake(r, &r->up);
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

struct relay *relay_new(struct loop *loop, const struct relay_config *cfg, int fd,
                        const struct sockaddr *src, SSL_CTX *tls, unsigned flags, void *data,
                        int *err)
{
	struct relay *r = NULL;
	bool counted = false;
	int rc;

	if (cfg->limit != NULL) {
		uint32_t n = atomic_fetch_add(&cfg->limit->active, 1);

		counted = true;
		if (cfg->limit->max != 0 && n >= cfg->limit->max) {
			atomic_fetch_add(&cfg->limit->refused, 1);
			rc = ERR_RELAY_LIMIT;
			goto fail;
		}
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	r->loop = loop;
	r->cfg = cfg;
	r->data = data;
	r->down.fd = -1;
	r->up.fd = -1;
	r->start_ms = r->active_ms = loop_now(loop);
	loop_timer_init(&r->timer, relay_timeout);
	if (flags & RELAY_READ_PREAMBLE)
		r->flags |= F_READ_PREAMBLE;
	if (src != NULL)
		(void)addr_from(&r->src, src, sizeof(struct sockaddr_storage));
	if (tls != NULL) {
		r->down.ssl = tls_new(tls);
		if (r->down.ssl == NULL || !SSL_set_fd(r->down.ssl, fd)) {
			rc = -ENOMEM;
			goto fail;
		}
		SSL_set_accept_state(r->down.ssl);
	}
	rc = loop_watch(loop, fd, 0, relay_io, r);
	if (rc < 0)
		goto fail;
	r->down.fd = fd;
	if (counted)
		r->flags |= F_COUNTED;
	return r;
fail:
	/* Counters first: whoever sees the socket close sees them right. */
	if (counted)
		atomic_fetch_sub(&cfg->limit->active, 1);
	close(fd);
	if (r != NULL)
		SSL_free(r->down.ssl);
	free(r);
	ERR_clear_error();
	*err = rc;
	return NULL;
}

int relay_set_upstream(struct relay *r, const struct sockaddr *addr, socklen_t len, SSL_CTX *tls,
                       const struct preamble *pre)
{
	struct relay_half *d = &r->down;
	struct relay_addr dst;
	uint8_t enc[PREAMBLE_MAX];
	int plen = 0;
	SSL *ssl = NULL;

	if (r->state > R_CONNECT)
		return -EBUSY;
	if (addr == NULL || addr_from(&dst, addr, len) < 0 || dst.family == AF_UNSPEC)
		return -EINVAL;
	if (pre != NULL && (plen = preamble_encode(pre, enc, sizeof(enc))) < 0)
		return -EINVAL;
	if (tls != NULL && (ssl = tls_new(tls)) == NULL)
		return -ENOMEM;
	/* The previous target's preamble, if any, sits at the front of the buffer. */
	if (r->pre_len > 0) {
		d->start += r->pre_len;
		r->pre_len = 0;
		relay_pump_drop_buf(r, d);
	}
	if (plen > 0) {
		if (d->buf == NULL) {
			d->buf = loop_buf_get(r->loop);
			if (d->buf == NULL) {
				SSL_free(ssl);
				return -ENOMEM;
			}
			d->start = d->end = 0;
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
	}
	SSL_free(r->up.ssl);
	r->up.ssl = ssl;
	if (ssl != NULL)
		SSL_set_connect_state(ssl);
	r->dst = dst;
	r->flags |= F_UPSTREAM_SET;
	return 0;
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
	return side == RELAY_DOWN ? r->down.fd : r->up.fd;
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
