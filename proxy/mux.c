/* SPDX-License-Identifier: Apache-2.0 */
/* Tunnel protocol 3: frames of many streams on one TLS connection, flow control, GOAWAY. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "meshlet/err.h"
#include "mux.h"
#include "relay_impl.h"

#define MUX_BUCKETS 64
/* Streams stop writing once this much waits in the connection's buffer. */
#define MUX_WBUF_SOFT LOOP_BUF_SIZE
/* Reads per wakeup before other connections get their turn. */
#define MUX_READ_ROUNDS 8
/* A grant goes back once the owner took this much of a stream. */
#define MUX_GRANT (MUX_WINDOW / 2)
/* Received bytes are kept in chunks of at least this much. */
#define MUX_CHUNK_MIN 4096
/*
 * Past this much waiting to be written (data stops at MUX_WBUF_SOFT; the rest is control
 * frames, at most a few per stream), the peer is not reading: the connection is reset.
 */
#define MUX_WBUF_HARD (1024 * 1024)
/* A server takes more streams at once than a client opens: ends and OPENs cross. */
#define MUX_SERVER_STREAMS (2 * MUX_MAX_STREAMS)
/* Data frames of this much fill a TLS record each (16 KiB with their header). */
#define MUX_DATA_CHUNK (MUX_FRAME_MAX - MUX_HEAD)

static const unsigned char mux_alpn[] = "meshlet/3";

/* Bytes of a stream received and not yet read by its owner. */
struct mux_chunk {
	struct mux_chunk *next;
	uint32_t len, off, cap;
	bool granted; /* counts against the window (the preamble does not) */
	char data[];
};

enum mux_state { M_CONNECTING, M_HANDSHAKE, M_OPEN, M_CLOSING, M_DEAD };

/* Connection flags. */
enum {
	MF_SERVER = 1 << 0,
	MF_RD_READY = 1 << 1,
	MF_WR_READY = 1 << 2,
	MF_READ_WANTS_WRITE = 1 << 3,
	MF_WRITE_WANTS_READ = 1 << 4,
	MF_HS_WANTS_WRITE = 1 << 5,
	MF_GOAWAY = 1 << 6,   /* no new streams: GOAWAY sent (server) or received (client) */
	MF_CORK = 1 << 7,     /* TLS records gather under the socket (relay_tls_cork) */
	MF_FLUSHING = 1 << 8, /* the flush task is queued */
	MF_PARSING = 1 << 9   /* frames of the read buffer are being dispatched */
};

/* Stream flags. */
enum {
	MS_END_IN = 1 << 0,
	MS_END_OUT = 1 << 1,
	MS_RESET_IN = 1 << 2,
	MS_RESET_OUT = 1 << 3,
	MS_ANSWERED = 1 << 4, /* the peer sent a frame of it, or took it (GOAWAY) */
	MS_BLOCKED = 1 << 5,  /* on the list of streams waiting for room */
	MS_STOPPED = 1 << 6,  /* RESET after the peer's END: it reads nothing more of ours */
};

struct mux {
	struct loop *loop;
	const struct mux_config *cfg;
	void *arg;
	int fd;
	SSL *ssl;
	uint8_t state;
	uint16_t flags;
	char *peer_id;
	int64_t not_after;
	struct mux_stream *table[MUX_BUCKETS];
	size_t nstreams;
	uint64_t total;
	uint32_t last_id; /* client: the last opened; server: the last OPEN seen */
	uint32_t taken;   /* server: the last stream taken (GOAWAY names it) */
	struct mux_stream *blocked;
	struct mux_stream *calling; /* the stream whose owner's call is running: not woken */
	char *rbuf;
	uint32_t rlen;
	char *wbuf;
	uint32_t wlen, woff, wcap;
	struct loop_timer timer;
	struct loop_task flush_task, gone_task;
};

/* The stream table */

static struct mux_stream **mux_slot(struct mux *m, uint32_t id)
{
	return &m->table[id % MUX_BUCKETS];
}

static struct mux_stream *mux_find(struct mux *m, uint32_t id)
{
	struct mux_stream *s = *mux_slot(m, id);

	while (s != NULL && s->id != id)
		s = s->hnext;
	return s;
}

static void mux_unblock(struct mux *m, struct mux_stream *s)
{
	if (!(s->flags & MS_BLOCKED))
		return;
	if (s->bprev != NULL)
		s->bprev->bnext = s->bnext;
	else
		m->blocked = s->bnext;
	if (s->bnext != NULL)
		s->bnext->bprev = s->bprev;
	s->bnext = s->bprev = NULL;
	s->flags &= (uint16_t)~MS_BLOCKED;
}

static void mux_block(struct mux *m, struct mux_stream *s)
{
	if (s->flags & MS_BLOCKED)
		return;
	s->bprev = NULL;
	s->bnext = m->blocked;
	if (m->blocked != NULL)
		m->blocked->bprev = s;
	m->blocked = s;
	s->flags |= MS_BLOCKED;
}

/* Takes s out of the table: it belongs to its owner alone from now on. */
static void mux_remove(struct mux *m, struct mux_stream *s)
{
	struct mux_stream **pp = mux_slot(m, s->id);

	while (*pp != NULL && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp == s)
		*pp = s->hnext;
	s->hnext = NULL;
	mux_unblock(m, s);
	s->mux = NULL;
	m->nstreams--;
}

/* Never from inside the owner's own call on s: it learns from what the call returns. */
static void mux_wake(const struct mux *m, struct mux_stream *s)
{
	if (s->wake != NULL && m->calling != s)
		s->wake(s->arg);
}

static void mux_chunks_free(struct mux_stream *s)
{
	while (s->head != NULL) {
		struct mux_chunk *c = s->head;

		s->head = c->next;
		free(c);
	}
	s->tail = NULL;
	s->queued = 0;
}

/* Lifetime */

static void mux_io(struct loop *loop, int fd, uint32_t events, void *arg);
static void mux_update(struct mux *m);
static void mux_idle_check(struct mux *m);
static void mux_arm(struct mux *m, uint32_t ms);

static void mux_gone_task(struct loop *loop, struct loop_task *t)
{
	struct mux *m = container_of(t, struct mux, gone_task);

	(void)loop;
	free(m->peer_id);
	free(m);
}

/*
 * The connection ends (a failure: fail, error, reason, or a clean close: MUX_FAIL_NONE):
 * every stream still on it fails with how it ended, unless refused (GOAWAY, set before),
 * and the socket closes (reset unless clean).
 */
static void mux_die(struct mux *m, enum mux_fail fail, int error, const char *reason)
{
	bool clean = fail == MUX_FAIL_NONE;

	if (m->state == M_DEAD)
		return;
	m->state = M_DEAD;
	for (size_t i = 0; i < MUX_BUCKETS; i++) {
		while (m->table[i] != NULL) {
			struct mux_stream *s = m->table[i];

			mux_remove(m, s);
			/*
			 * Done both ways but for its owner's last steps (the peer's END and ours,
			 * or its STOP, went through): it stays as it is.
			 */
			if ((s->flags & MS_END_IN) && (s->flags & (MS_END_OUT | MS_STOPPED))) {
				mux_wake(m, s);
				continue;
			}
			if (s->fail == MUX_FAIL_NONE) {
				s->fail = (uint8_t)(clean ? MUX_FAIL_RESET : fail);
				s->error = clean ? -ECONNRESET : error;
				s->reason =
				    clean ? "tunnel closed before the end of the stream" : reason;
			}
			mux_wake(m, s);
		}
	}
	if (m->cfg->on_gone != NULL)
		m->cfg->on_gone(m, fail);
	loop_timer_stop(m->loop, &m->timer);
	/* An older proxy's connection nobody took: between its streams a close is no harm. */
	if (fail == MUX_FAIL_DOWNGRADE && m->ssl != NULL) {
		relay_tls_clear();
		(void)SSL_shutdown(m->ssl);
		clean = true;
	}
	if (m->fd >= 0) {
		loop_unwatch(m->loop, m->fd);
		if (!clean) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			(void)setsockopt(m->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(m->fd);
		m->fd = -1;
	}
	SSL_free(m->ssl);
	m->ssl = NULL;
	ERR_clear_error();
	loop_buf_put(m->loop, m->rbuf);
	m->rbuf = NULL;
	free(m->wbuf);
	m->wbuf = NULL;
	m->wlen = m->woff = m->wcap = 0;
	loop_queue(m->loop, &m->gone_task, mux_gone_task);
}

/* The TLS connection failed: every stream resets. */
static void mux_fail_tls(struct mux *m, int sslerr, int rc)
{
	mux_die(m,
	        m->state == M_OPEN || m->state == M_CLOSING ? MUX_FAIL_RESET : MUX_FAIL_HANDSHAKE,
	        relay_tls_error(sslerr), relay_tls_reason(m->ssl, sslerr, rc));
}

static void mux_protocol_error(struct mux *m, const char *reason)
{
	mux_die(m, MUX_FAIL_RESET, ERR_MUX_FRAME, reason);
}

/* Writing */

/* Whether bytes wait to go out: in the buffer, or records in the cork over the socket. */
static bool mux_pending(const struct mux *m)
{
	return m->woff < m->wlen || (m->flags & MF_CORK);
}

static void mux_flush_task(struct loop *loop, struct loop_task *t);

static int mux_reserve(struct mux *m, uint32_t n)
{
	char *grown;
	uint32_t cap;

	if (m->wlen + n <= m->wcap)
		return 0;
	if (m->wlen + n > MUX_WBUF_HARD)
		return -ENOBUFS;
	cap = m->wcap == 0 ? MUX_WBUF_SOFT : m->wcap;
	while (cap < m->wlen + n)
		cap *= 2;
	grown = realloc(m->wbuf, cap);
	if (grown == NULL)
		return -ENOMEM;
	m->wbuf = grown;
	m->wcap = cap;
	return 0;
}

static void mux_schedule(struct mux *m)
{
	if (!(m->flags & MF_FLUSHING) && m->state != M_DEAD) {
		m->flags |= MF_FLUSHING;
		loop_queue(m->loop, &m->flush_task, mux_flush_task);
	}
}

/*
 * Appends a frame (whatever the buffer holds: control frames are never held back). Returns
 * 0, or -1 when it could not, and the connection is reset: out of memory, or a peer that
 * does not read what it is sent.
 */
static int mux_put(struct mux *m, enum mux_type type, uint32_t stream, const void *payload,
                   uint16_t len)
{
	int rc = mux_reserve(m, MUX_HEAD + (uint32_t)len);

	if (rc < 0) {
		mux_die(m, MUX_FAIL_RESET, rc,
		        rc == -ENOBUFS ? "the peer does not read what it is sent" : NULL);
		return -1;
	}
	mux_frame_put((uint8_t *)m->wbuf + m->wlen, type, len, stream);
	if (len > 0)
		memcpy(m->wbuf + m->wlen + MUX_HEAD, payload, len);
	m->wlen += MUX_HEAD + (uint32_t)len;
	mux_schedule(m);
	return 0;
}

static void mux_put_u32(struct mux *m, enum mux_type type, uint32_t stream, uint32_t v)
{
	uint8_t b[4];

	mux_set32(b, v);
	(void)mux_put(m, type, stream, b, 4);
}

/* Closes a connection with no stream: GOAWAY (server), close_notify, then the socket. */
static void mux_close(struct mux *m)
{
	if (m->state != M_OPEN)
		return;
	if ((m->flags & MF_SERVER) && !(m->flags & MF_GOAWAY)) {
		m->flags |= MF_GOAWAY;
		mux_put_u32(m, MUX_GOAWAY, 0, m->taken);
	}
	if (m->state == M_DEAD)
		return;
	m->state = M_CLOSING;
	/* A peer that does not take our last frames in time is reset (mux_timeout). */
	mux_arm(m, m->cfg->handshake_timeout_ms != 0 ? m->cfg->handshake_timeout_ms : 10000);
	mux_schedule(m);
}

/*
 * Writes what the buffer holds; more than a record's worth is corked, so that one write(2)
 * takes the records. Then wakes the streams that waited for room.
 */
static void mux_flush(struct mux *m)
{
	int rc, e;

	while (m->woff < m->wlen) {
		if (!(m->flags & MF_WR_READY))
			return;
		if (!(m->flags & MF_CORK) && m->wlen - m->woff > SSL3_RT_MAX_PLAIN_LENGTH &&
		    relay_tls_cork(m->ssl) == 0)
			m->flags |= MF_CORK;
		relay_tls_clear();
		rc = SSL_write(m->ssl, m->wbuf + m->woff, (int)(m->wlen - m->woff));
		if (rc <= 0) {
			e = SSL_get_error(m->ssl, rc);
			if (e == SSL_ERROR_WANT_WRITE) {
				m->flags &= (uint16_t)~MF_WR_READY;
				return;
			}
			if (e == SSL_ERROR_WANT_READ) {
				m->flags =
				    (uint16_t)((m->flags | MF_WRITE_WANTS_READ) & ~MF_WR_READY);
				return;
			}
			mux_fail_tls(m, e, rc);
			return;
		}
		m->flags &= (uint16_t)~MF_WRITE_WANTS_READ;
		m->woff += (uint32_t)rc;
	}
	if (m->flags & MF_CORK) {
		rc = relay_tls_uncork(m->ssl);
		if (rc < 0) {
			mux_die(m, MUX_FAIL_RESET, rc, NULL);
			return;
		}
		if (rc == 0) {
			m->flags &= (uint16_t)~MF_WR_READY;
			return;
		}
		m->flags &= (uint16_t)~MF_CORK;
	}
	m->wlen = m->woff = 0;
	/* An idle connection holds no buffer. */
	if (m->nstreams == 0) {
		free(m->wbuf);
		m->wbuf = NULL;
		m->wcap = 0;
	}
	while (m->blocked != NULL) {
		struct mux_stream *s = m->blocked;

		mux_unblock(m, s);
		mux_wake(m, s);
	}
	if (m->state == M_CLOSING && m->nstreams == 0) {
		relay_tls_clear();
		(void)SSL_shutdown(m->ssl);
		mux_die(m, MUX_FAIL_NONE, 0, NULL);
	}
}

static void mux_read(struct mux *m);

/*
 * After the round's events: what OpenSSL holds already is read (epoll cannot see it), then
 * the frames that the round's streams made go out together.
 */
static void mux_flush_task(struct loop *loop, struct loop_task *t)
{
	struct mux *m = container_of(t, struct mux, flush_task);

	(void)loop;
	m->flags &= (uint16_t)~MF_FLUSHING;
	if (m->state != M_OPEN && m->state != M_CLOSING)
		return;
	if ((m->flags & MF_RD_READY) && SSL_has_pending(m->ssl))
		mux_read(m);
	if (m->state != M_DEAD && (mux_pending(m) || m->state == M_CLOSING))
		mux_flush(m);
	if (m->state != M_DEAD)
		mux_update(m);
}

/* Reading */

/* Client: streams above last were not taken: they start again elsewhere. */
static void mux_refuse_above(struct mux *m, uint32_t last)
{
	for (size_t i = 0; i < MUX_BUCKETS; i++) {
		struct mux_stream *s = m->table[i];

		while (s != NULL) {
			struct mux_stream *next = s->hnext;

			if (s->id > last && !(s->flags & MS_ANSWERED)) {
				mux_remove(m, s);
				s->fail = MUX_FAIL_REFUSED;
				s->error = ERR_RELAY_STALE;
				s->reason = "the peer did not take the stream (GOAWAY)";
				mux_wake(m, s);
			} else if (s->id <= last) {
				s->flags |= MS_ANSWERED;
			}
			s = next;
		}
	}
}

/*
 * Keeps n bytes of the stream. Small frames share chunks of MUX_CHUNK_MIN, so that what a
 * stream holds stays near what its window allows, however the peer cuts its data.
 */
static int mux_queue(struct mux_stream *s, const char *p, uint32_t n, bool granted)
{
	struct mux_chunk *c = s->tail;

	if (c != NULL && c->granted == granted && c->cap - c->len >= n) {
		memcpy(c->data + c->len, p, n);
		c->len += n;
		s->queued += n;
		return 0;
	}
	c = malloc(sizeof(*c) + (n > MUX_CHUNK_MIN ? n : MUX_CHUNK_MIN));
	if (c == NULL)
		return -ENOMEM;
	c->next = NULL;
	c->len = n;
	c->off = 0;
	c->cap = n > MUX_CHUNK_MIN ? n : MUX_CHUNK_MIN;
	c->granted = granted;
	memcpy(c->data, p, n);
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->queued += n;
	return 0;
}

/* Server: a new stream. */
static void mux_on_open(struct mux *m, uint32_t id, const char *pre, uint16_t len)
{
	struct mux_stream *s;
	uint32_t taken = m->taken;
	int rc;

	if (id <= m->last_id) {
		mux_protocol_error(m, "tunnel stream IDs must go up");
		return;
	}
	m->last_id = id;
	/* After GOAWAY: not taken; the client starts it again elsewhere. */
	if (m->flags & MF_GOAWAY)
		return;
	m->taken = id;
	if (m->nstreams >= MUX_SERVER_STREAMS || (s = calloc(1, sizeof(*s))) == NULL) {
		(void)mux_put(m, MUX_RESET, id, NULL, 0);
		return;
	}
	s->id = id;
	s->mux = m;
	s->send_window = MUX_WINDOW;
	s->recv_left = MUX_WINDOW;
	if (mux_queue(s, pre, len, false) < 0) {
		free(s);
		(void)mux_put(m, MUX_RESET, id, NULL, 0);
		return;
	}
	s->hnext = *mux_slot(m, id);
	*mux_slot(m, id) = s;
	m->nstreams++;
	m->total++;
	loop_timer_stop(m->loop, &m->timer);
	rc = m->cfg->on_open != NULL ? m->cfg->on_open(m, s) : -ENOSYS;
	if (rc == 0)
		return;
	/* Not taken by anyone: the stream is ours to reset (or leave) and free. */
	if (s->mux == m)
		mux_remove(m, s);
	mux_chunks_free(s);
	free(s);
	if (m->state == M_DEAD)
		return;
	if (rc == MUX_OPEN_GOAWAY) {
		m->taken = taken;
		mux_goaway(m);
		return;
	}
	if (mux_put(m, MUX_RESET, id, NULL, 0) < 0)
		return;
	mux_idle_check(m);
}

/* One whole frame. Returns 0, or -1 when the connection died. */
static int mux_dispatch(struct mux *m, const struct mux_frame *f, const char *payload)
{
	struct mux_stream *s;
	bool server = m->flags & MF_SERVER;
	uint32_t v;

	if (f->type == MUX_GOAWAY) {
		if (server) {
			mux_protocol_error(m, "a tunnel client sent GOAWAY");
			return -1;
		}
		m->flags |= MF_GOAWAY;
		mux_refuse_above(m, mux_get32((const uint8_t *)payload));
		mux_idle_check(m);
		return m->state == M_DEAD ? -1 : 0;
	}
	if (f->type == MUX_OPEN) {
		if (!server) {
			mux_protocol_error(m, "a tunnel server sent OPEN");
			return -1;
		}
		mux_on_open(m, f->stream, payload, f->len);
		return m->state == M_DEAD ? -1 : 0;
	}
	s = mux_find(m, f->stream);
	if (s == NULL) {
		/* A stream that ended (or was never taken) may still get frames that crossed. */
		if (f->stream <= m->last_id)
			return 0;
		mux_protocol_error(m, "tunnel frame for a stream that was never opened");
		return -1;
	}
	if (s->flags & MS_RESET_IN)
		return 0;
	s->flags |= MS_ANSWERED;
	switch (f->type) {
	case MUX_DATA:
		if (s->flags & MS_END_IN) {
			mux_protocol_error(m, "tunnel data after the end of the stream");
			return -1;
		}
		if (f->len > s->recv_left) {
			mux_protocol_error(m, "tunnel data beyond the stream's window");
			return -1;
		}
		/* Our side reset it and the RESET is on its way: nobody reads these. */
		if (s->flags & MS_RESET_OUT)
			return 0;
		if (mux_queue(s, payload, f->len, true) < 0) {
			mux_die(m, MUX_FAIL_RESET, -ENOMEM, NULL);
			return -1;
		}
		s->recv_left -= f->len;
		break;
	case MUX_END:
		if (s->flags & MS_END_IN) {
			mux_protocol_error(m, "tunnel stream ended twice");
			return -1;
		}
		s->flags |= MS_END_IN;
		break;
	case MUX_STOP:
		/* What the peer sent is whole; ours goes nowhere from now on. */
		if (!(s->flags & MS_END_IN)) {
			mux_protocol_error(m, "tunnel stream stopped before its end");
			return -1;
		}
		s->flags |= MS_STOPPED;
		mux_unblock(m, s);
		break;
	case MUX_RESET:
		s->flags |= MS_RESET_IN;
		if (s->fail == MUX_FAIL_NONE) {
			s->fail = MUX_FAIL_RESET;
			s->error = -ECONNRESET;
			s->reason = "reset by the peer's application";
		}
		mux_chunks_free(s);
		break;
	default: /* MUX_WINDOW_UPDATE */
		v = mux_get32((const uint8_t *)payload);
		if (v == 0 || v > INT32_MAX || s->send_window > INT32_MAX - v) {
			mux_protocol_error(m, "tunnel window out of range");
			return -1;
		}
		s->send_window += v;
		break;
	}
	mux_wake(m, s);
	return 0;
}

/* Parses the whole frames in the read buffer; keeps a partial one at its front. */
static int mux_parse(struct mux *m)
{
	uint32_t off = 0;

	while (m->rlen - off >= 1) {
		struct mux_frame f;
		int rc = mux_frame_parse((const uint8_t *)m->rbuf + off, m->rlen - off, &f);

		if (rc < 0) {
			mux_protocol_error(m, "tunnel frame is malformed");
			return -1;
		}
		if (rc == 0 || m->rlen - off < MUX_HEAD + (uint32_t)f.len)
			break;
		if (mux_dispatch(m, &f, m->rbuf + off + MUX_HEAD) < 0)
			return -1;
		off += MUX_HEAD + f.len;
	}
	if (off > 0) {
		memmove(m->rbuf, m->rbuf + off, m->rlen - off);
		m->rlen -= off;
	}
	return 0;
}

/* The peer's close_notify: streams it did not end are reset, and we close too. */
static void mux_peer_closed(struct mux *m)
{
	if (m->nstreams == 0 && (m->state == M_OPEN || m->state == M_CLOSING)) {
		m->state = M_CLOSING;
		mux_flush(m);
		return;
	}
	mux_die(m, MUX_FAIL_RESET, -ECONNRESET, "tunnel closed before the end of the stream");
}

static void mux_read(struct mux *m)
{
	for (int round = 0; round < MUX_READ_ROUNDS; round++) {
		int rc, e;

		if (!(m->flags & MF_RD_READY) || m->state == M_DEAD)
			return;
		if (m->rbuf == NULL) {
			m->rbuf = loop_buf_get(m->loop);
			if (m->rbuf == NULL) {
				mux_die(m, MUX_FAIL_RESET, -ENOMEM, NULL);
				return;
			}
			m->rlen = 0;
		}
		relay_tls_clear();
		rc = SSL_read(m->ssl, m->rbuf + m->rlen, (int)(LOOP_BUF_SIZE - m->rlen));
		if (rc <= 0) {
			e = SSL_get_error(m->ssl, rc);
			if (e == SSL_ERROR_WANT_READ) {
				m->flags &= (uint16_t) ~(MF_RD_READY | MF_READ_WANTS_WRITE);
			} else if (e == SSL_ERROR_WANT_WRITE) {
				m->flags =
				    (uint16_t)((m->flags | MF_READ_WANTS_WRITE) & ~MF_RD_READY);
			} else if (e == SSL_ERROR_ZERO_RETURN) {
				mux_peer_closed(m);
				return;
			} else {
				mux_fail_tls(m, e, rc);
				return;
			}
			if (m->rlen == 0) {
				loop_buf_put(m->loop, m->rbuf);
				m->rbuf = NULL;
				relay_tls_release(m->ssl);
			}
			return;
		}
		m->flags &= (uint16_t)~MF_READ_WANTS_WRITE;
		m->rlen += (uint32_t)rc;
		if (SSL_has_pending(m->ssl))
			m->flags |= MF_RD_READY;
		m->flags |= MF_PARSING;
		rc = mux_parse(m);
		m->flags &= (uint16_t)~MF_PARSING;
		if (rc < 0)
			return;
	}
	/* Enough for this wakeup: the rest after the other connections had theirs. */
	if (m->flags & MF_RD_READY)
		mux_schedule(m);
}

/* Connecting and the handshake (client) */

static void mux_arm(struct mux *m, uint32_t ms)
{
	if (ms == 0)
		loop_timer_stop(m->loop, &m->timer);
	else if (loop_timer_set(m->loop, &m->timer, ms) < 0)
		mux_die(m, MUX_FAIL_RESET, -ENOMEM, NULL);
}

static bool mux_alpn_3(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(mux_alpn) - 1 && memcmp(p, mux_alpn, n) == 0;
}

static void mux_established(struct mux *m)
{
	struct relay_peer peer;
	struct spiffe_id id;
	char text[SPIFFE_ID_MAX + 1];
	int rc;

	loop_timer_stop(m->loop, &m->timer);
	relay_peer_fill(m->ssl, RELAY_UP, &peer, &id, text);
	if (peer.id_text != NULL && (m->peer_id = strdup(peer.id_text)) == NULL) {
		mux_die(m, MUX_FAIL_RESET, -ENOMEM, NULL);
		return;
	}
	rc = m->cfg->on_handshake != NULL ? m->cfg->on_handshake(m, &peer) : 0;
	if (rc < 0) {
		mux_die(m, MUX_FAIL_DENIED, rc, "peer refused");
		return;
	}
	if (!mux_alpn_3(m->ssl)) {
		/* An older proxy: on_gone may take the connection (mux_take). */
		mux_die(m, MUX_FAIL_DOWNGRADE, ERR_MUX_DOWNGRADE, NULL);
		return;
	}
	m->not_after = relay_tls_not_after(m->ssl);
	relay_tls_keepalive(m->fd);
	relay_tls_release(m->ssl);
	m->state = M_OPEN;
	m->flags |= MF_RD_READY | MF_WR_READY;
	/* The OPENs queued meanwhile go out; streams may now write. */
	for (size_t i = 0; i < MUX_BUCKETS; i++)
		for (struct mux_stream *s = m->table[i]; s != NULL; s = s->hnext)
			mux_wake(m, s);
	mux_schedule(m);
	if (m->nstreams == 0)
		mux_idle_check(m);
}

static void mux_handshake(struct mux *m)
{
	int rc, e;

	if (!(m->flags & ((m->flags & MF_HS_WANTS_WRITE) ? MF_WR_READY : MF_RD_READY)))
		return;
	relay_tls_clear();
	rc = SSL_do_handshake(m->ssl);
	if (rc == 1) {
		m->flags &= (uint16_t)~MF_HS_WANTS_WRITE;
		mux_established(m);
		return;
	}
	e = SSL_get_error(m->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		m->flags &= (uint16_t) ~(MF_HS_WANTS_WRITE | MF_RD_READY);
	else if (e == SSL_ERROR_WANT_WRITE)
		m->flags = (uint16_t)((m->flags | MF_HS_WANTS_WRITE) & ~MF_WR_READY);
	else
		mux_fail_tls(m, e, rc);
}

static void mux_connect_check(struct mux *m)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (!(m->flags & (MF_WR_READY | MF_RD_READY)))
		return;
	if (getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY) {
		m->flags &= (uint16_t) ~(MF_WR_READY | MF_RD_READY);
		return;
	}
	if (err != 0) {
		mux_die(m, MUX_FAIL_CONNECT, -err, NULL);
		return;
	}
	m->state = M_HANDSHAKE;
	m->flags |= MF_RD_READY | MF_WR_READY;
	mux_arm(m, m->cfg->handshake_timeout_ms);
}

static void mux_timeout(struct loop *loop, struct loop_timer *t)
{
	struct mux *m = container_of(t, struct mux, timer);

	(void)loop;
	switch (m->state) {
	case M_CONNECTING:
		mux_die(m, MUX_FAIL_CONNECT, -ETIMEDOUT, NULL);
		return;
	case M_HANDSHAKE:
		mux_die(m, MUX_FAIL_HANDSHAKE, -ETIMEDOUT, "handshake");
		return;
	case M_OPEN:
		if (m->nstreams == 0)
			mux_close(m);
		if (m->state != M_DEAD)
			mux_update(m);
		return;
	default: /* closing: the peer does not take our last frames */
		mux_die(m, MUX_FAIL_RESET, -ETIMEDOUT, "the peer did not take the close in time");
		return;
	}
}

/*
 * A connection with no stream: closed at once when going away, or (a client's) when it
 * takes no new streams anyway, its certificates being too near their end; else after
 * idle_ms.
 */
static void mux_idle_check(struct mux *m)
{
	if (m->nstreams > 0 || (m->state != M_OPEN))
		return;
	if ((m->flags & MF_GOAWAY) ||
	    (!(m->flags & MF_SERVER) && !mux_usable(m, RELAY_TUNNEL_CERT_MARGIN_S)))
		mux_close(m);
	else
		mux_arm(m, m->cfg->idle_ms);
}

/* Events */

static void mux_update(struct mux *m)
{
	uint32_t ev = 0;

	switch (m->state) {
	case M_CONNECTING:
		ev = LOOP_WRITE;
		break;
	case M_HANDSHAKE:
		ev = (m->flags & MF_HS_WANTS_WRITE) ? LOOP_WRITE : LOOP_READ;
		break;
	case M_OPEN:
	case M_CLOSING:
		ev = (m->flags & MF_READ_WANTS_WRITE) ? LOOP_WRITE : LOOP_READ;
		if (mux_pending(m) && !(m->flags & MF_WR_READY))
			ev |= (m->flags & MF_WRITE_WANTS_READ) ? LOOP_READ : LOOP_WRITE;
		break;
	default:
		return;
	}
	if (loop_set_events(m->loop, m->fd, ev) < 0)
		mux_die(m, MUX_FAIL_RESET, -ENOMEM, NULL);
}

static void mux_advance(struct mux *m)
{
	switch (m->state) {
	case M_CONNECTING:
		mux_connect_check(m);
		if (m->state != M_HANDSHAKE)
			break;
		/* fall through */
	case M_HANDSHAKE:
		mux_handshake(m);
		if (m->state != M_OPEN)
			break;
		/* fall through */
	case M_OPEN:
	case M_CLOSING:
		mux_read(m);
		if (m->state != M_DEAD && (mux_pending(m) || m->state == M_CLOSING))
			mux_flush(m);
		break;
	default:
		return;
	}
	if (m->state != M_DEAD)
		mux_update(m);
}

static void mux_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct mux *m = arg;

	(void)loop;
	(void)fd;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		m->flags |= MF_RD_READY;
		if (m->flags & MF_WRITE_WANTS_READ)
			m->flags |= MF_WR_READY;
	}
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		m->flags |= MF_WR_READY;
		if (m->flags & MF_READ_WANTS_WRITE)
			m->flags |= MF_RD_READY;
	}
	mux_advance(m);
}

/* The API */

static struct mux *mux_alloc(struct loop *loop, const struct mux_config *cfg, void *arg)
{
	struct mux *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->loop = loop;
	m->cfg = cfg;
	m->arg = arg;
	m->fd = -1;
	loop_timer_init(&m->timer, mux_timeout);
	return m;
}

struct mux *mux_connect(struct loop *loop, const struct mux_config *cfg,
                        const struct sockaddr *addr, socklen_t len, SSL *ssl, void *arg, int *err)
{
	struct mux *m = mux_alloc(loop, cfg, arg);
	int fd = -1, rc, one = 1;

	if (m == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (SSL_set_alpn_protos(
	        ssl, (const unsigned char *)"\x09meshlet/3\x09meshlet/2\x09meshlet/1", 30) != 0 ||
	    !SSL_set_fd(ssl, fd)) {
		rc = -ENOMEM;
		goto fail;
	}
	SSL_set_connect_state(ssl);
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	/* Nothing may fail once watched: a failure here is the caller's alone (no on_gone). */
	if (cfg->connect_timeout_ms != 0 &&
	    loop_timer_set(loop, &m->timer, cfg->connect_timeout_ms) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = loop_watch(loop, fd, LOOP_WRITE, mux_io, m);
	if (rc < 0) {
		loop_timer_stop(loop, &m->timer);
		goto fail;
	}
	m->fd = fd;
	m->ssl = ssl;
	m->state = M_CONNECTING;
	return m;
fail:
	if (fd >= 0)
		close(fd);
	SSL_free(ssl);
	ERR_clear_error();
	free(m);
	*err = rc;
	return NULL;
}

struct mux *mux_accept(struct loop *loop, const struct mux_config *cfg, int fd, SSL *ssl,
                       const char *peer_id, int64_t not_after, void *arg, int *err)
{
	struct mux *m = mux_alloc(loop, cfg, arg);
	int rc = -ENOMEM;

	if (m == NULL || (peer_id != NULL && (m->peer_id = strdup(peer_id)) == NULL))
		goto fail;
	if (cfg->idle_ms != 0 && loop_timer_set(loop, &m->timer, cfg->idle_ms) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = loop_watch(loop, fd, LOOP_READ, mux_io, m);
	if (rc < 0) {
		loop_timer_stop(loop, &m->timer);
		goto fail;
	}
	m->fd = fd;
	m->ssl = ssl;
	m->not_after = not_after;
	m->flags = MF_SERVER | MF_RD_READY | MF_WR_READY;
	m->state = M_OPEN;
	relay_tls_keepalive(fd);
	/* OpenSSL may hold frames that came with the handshake's last flight. */
	mux_schedule(m);
	return m;
fail:
	if (m != NULL)
		free(m->peer_id);
	free(m);
	close(fd);
	SSL_free(ssl);
	ERR_clear_error();
	*err = rc;
	return NULL;
}

bool mux_usable(const struct mux *m, int64_t margin_s)
{
	struct timespec now;

	if (m->state == M_DEAD || m->state == M_CLOSING || (m->flags & MF_GOAWAY) ||
	    m->nstreams >= MUX_MAX_STREAMS || m->last_id >= INT32_MAX)
		return false;
	if (m->state != M_OPEN)
		return true;
	clock_gettime(CLOCK_REALTIME, &now);
	return m->not_after > (int64_t)now.tv_sec + margin_s;
}

struct mux_stream *mux_open(struct mux *m, const uint8_t *pre, size_t pre_len,
                            void (*wake)(void *arg), void *arg, int *err)
{
	struct mux_stream *s;

	if (!mux_usable(m, 0) || pre_len < PREAMBLE_HEADER || pre_len > PREAMBLE_MAX) {
		*err = -EBUSY;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || mux_put(m, MUX_OPEN, m->last_id + 1, pre, (uint16_t)pre_len) < 0) {
		free(s);
		*err = -ENOMEM;
		return NULL;
	}
	s->id = ++m->last_id;
	s->mux = m;
	s->send_window = MUX_WINDOW;
	s->recv_left = MUX_WINDOW;
	s->wake = wake;
	s->arg = arg;
	s->hnext = *mux_slot(m, s->id);
	*mux_slot(m, s->id) = s;
	m->nstreams++;
	m->total++;
	if (m->state == M_OPEN)
		loop_timer_stop(m->loop, &m->timer);
	return s;
}

ssize_t mux_stream_read(struct mux_stream *s, void *buf, size_t len)
{
	size_t got = 0, grant = 0;

	if (s->flags & MS_RESET_IN)
		return -1;
	while (got < len && s->head != NULL) {
		struct mux_chunk *c = s->head;
		size_t k = c->len - c->off;

		if (k > len - got)
			k = len - got;
		memcpy((char *)buf + got, c->data + c->off, k);
		c->off += (uint32_t)k;
		got += k;
		if (c->granted)
			grant += k;
		if (c->off == c->len) {
			s->head = c->next;
			if (s->head == NULL)
				s->tail = NULL;
			free(c);
		}
	}
	s->queued -= (uint32_t)got;
	s->credit += (uint32_t)grant;
	/* Granted in batches; a sender that used its whole window always gets one. */
	if (s->credit >= MUX_GRANT && s->mux != NULL && !(s->flags & MS_END_IN)) {
		struct mux *m = s->mux;

		s->recv_left += s->credit;
		m->calling = s;
		mux_put_u32(m, MUX_WINDOW_UPDATE, s->id, s->credit);
		m->calling = NULL;
		s->credit = 0;
	}
	if (got > 0)
		return (ssize_t)got;
	if (s->flags & MS_END_IN)
		return MUX_EOF;
	return s->fail != MUX_FAIL_NONE ? -1 : 0;
}

ssize_t mux_stream_write(struct mux_stream *s, const void *buf, size_t len)
{
	struct mux *m = s->mux;
	size_t n, done = 0, room, cap;

	/* The peer stopped reading: the bytes go nowhere, as to a socket shut for reading. */
	if ((s->flags & MS_STOPPED) && !(s->flags & MS_END_OUT))
		return (ssize_t)len;
	if (m == NULL || s->fail != MUX_FAIL_NONE || (s->flags & (MS_END_OUT | MS_RESET_IN))) {
		if (s->fail == MUX_FAIL_NONE) {
			s->fail = MUX_FAIL_RESET;
			s->error = -EPIPE;
		}
		return -1;
	}
	if (m->state != M_OPEN && m->state != M_CLOSING)
		return 0; /* still connecting: woken once it is up */
	n = len < s->send_window ? len : s->send_window;
	/*
	 * A full buffer goes out now rather than after the round: a stream with a lot to send
	 * keeps the socket busy. Not while frames are dispatched: a failure would free the
	 * read buffer under them.
	 */
	if (m->wlen >= MUX_WBUF_SOFT && n > 0 && !(m->flags & MF_PARSING)) {
		mux_unblock(m, s);
		m->calling = s;
		mux_flush(m);
		m->calling = NULL;
		if (m->state == M_DEAD)
			return -1;
	}
	if (m->wlen >= MUX_WBUF_SOFT) {
		mux_block(m, s);
		return 0;
	}
	/* What fits in the room left with its frames' headers: never more than n. */
	room = MUX_WBUF_SOFT - m->wlen;
	cap = room / MUX_FRAME_MAX * MUX_DATA_CHUNK +
	      (room % MUX_FRAME_MAX > MUX_HEAD ? room % MUX_FRAME_MAX - MUX_HEAD : 0);
	if (n > cap)
		n = cap;
	/* A window of 0: the peer's WINDOW wakes the stream. */
	if (n == 0)
		return 0;
	m->calling = s;
	while (done < n) {
		size_t k = n - done > MUX_DATA_CHUNK ? MUX_DATA_CHUNK : n - done;

		if (mux_put(m, MUX_DATA, s->id, (const char *)buf + done, (uint16_t)k) < 0)
			return -1; /* m is dead: calling no longer matters */
		done += k;
	}
	m->calling = NULL;
	s->send_window -= (uint32_t)n;
	return (ssize_t)n;
}

int mux_stream_end(struct mux_stream *s)
{
	struct mux *m = s->mux;

	if (s->flags & MS_END_OUT)
		return 1;
	if (s->flags & MS_STOPPED) {
		s->flags |= MS_END_OUT;
		return 1;
	}
	if (m == NULL || s->fail != MUX_FAIL_NONE || (s->flags & MS_RESET_IN))
		return -1;
	if (m->state != M_OPEN && m->state != M_CLOSING)
		return 0;
	if (m->wlen >= MUX_WBUF_SOFT) {
		mux_block(m, s);
		return 0;
	}
	m->calling = s;
	if (mux_put(m, MUX_END, s->id, NULL, 0) < 0)
		return -1;
	m->calling = NULL;
	s->flags |= MS_END_OUT;
	return 1;
}

bool mux_stream_ended(const struct mux_stream *s)
{
	return (s->flags & MS_END_IN) != 0;
}

bool mux_stream_answered(const struct mux_stream *s)
{
	return (s->flags & MS_ANSWERED) != 0;
}

bool mux_stream_ready(const struct mux_stream *s)
{
	return s->mux != NULL && (s->mux->state == M_OPEN || s->mux->state == M_CLOSING);
}

void mux_stream_release(struct mux_stream *s, bool rst)
{
	struct mux *m;

	if (s == NULL)
		return;
	m = s->mux;
	if (m != NULL) {
		bool over = (s->flags & (MS_RESET_IN | MS_STOPPED)) ||
		            (s->flags & (MS_END_IN | MS_END_OUT)) == (MS_END_IN | MS_END_OUT);
		bool stop = !rst && (s->flags & (MS_END_OUT | MS_END_IN)) == MS_END_OUT;

		mux_remove(m, s);
		/* Until it is up, nothing of the stream went out but its OPEN: reset it too. */
		if ((rst || !over) && !(s->flags & (MS_RESET_IN | MS_STOPPED)))
			(void)mux_put(m, stop ? MUX_STOP : MUX_RESET, s->id, NULL, 0);
		mux_idle_check(m);
	}
	mux_chunks_free(s);
	free(s);
}

void mux_goaway(struct mux *m)
{
	if (m->state == M_DEAD || (m->flags & MF_GOAWAY))
		return;
	if (m->state != M_OPEN && m->state != M_CLOSING) {
		/* Not up yet (client): no new streams; it closes once its streams are done. */
		m->flags |= MF_GOAWAY;
		return;
	}
	if (m->flags & MF_SERVER) {
		m->flags |= MF_GOAWAY;
		mux_put_u32(m, MUX_GOAWAY, 0, m->taken);
	} else {
		m->flags |= MF_GOAWAY;
	}
	mux_idle_check(m);
}

int mux_take(struct mux *m, int *fd, SSL **ssl)
{
	if (m->fd < 0 || m->ssl == NULL || m->state != M_DEAD)
		return -EINVAL;
	loop_unwatch(m->loop, m->fd);
	*fd = m->fd;
	*ssl = m->ssl;
	m->fd = -1;
	m->ssl = NULL;
	return 0;
}

void mux_abort(struct mux *m)
{
	mux_die(m, MUX_FAIL_RESET, -ECONNRESET, "proxy stopped");
}

void *mux_arg(const struct mux *m)
{
	return m->arg;
}

int mux_fd(const struct mux *m)
{
	return m->fd;
}

SSL *mux_ssl(const struct mux *m)
{
	return m->ssl;
}

const char *mux_peer_id(const struct mux *m)
{
	return m->peer_id;
}

int64_t mux_not_after(const struct mux *m)
{
	return m->not_after;
}

size_t mux_streams(const struct mux *m)
{
	return m->nstreams;
}

uint64_t mux_streams_total(const struct mux *m)
{
	return m->total;
}
