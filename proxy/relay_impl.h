/* SPDX-License-Identifier: Apache-2.0 */
/* The insides of a relay, shared by relay.c (its states) and relay_pump.c (its bytes). */
#ifndef MESHLET_PROXY_RELAY_IMPL_H
#define MESHLET_PROXY_RELAY_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>

#include "mux.h"
#include "relay.h"

/* Rounds of reading and writing per wakeup before other connections get their turn. */
#define RELAY_PUMP_ROUNDS 8

/*
 * OpenSSL's read buffer with read-ahead: as many whole TLS 1.3 records (header, 16 KiB,
 * content type, tag) as a relay buffer holds plaintext, so that one read(2) brings in a
 * buffer's worth (OpenSSL's default holds one record: a read(2) per 16 KiB).
 */
#define RELAY_TLS_RECORD_MAX (SSL3_RT_HEADER_LENGTH + SSL3_RT_MAX_PLAIN_LENGTH + 1 + 16)
#define RELAY_TLS_READ_BUF                                                                         \
	(LOOP_BUF_SIZE > SSL3_RT_MAX_PLAIN_LENGTH                                                  \
	     ? LOOP_BUF_SIZE / SSL3_RT_MAX_PLAIN_LENGTH * RELAY_TLS_RECORD_MAX                     \
	     : RELAY_TLS_RECORD_MAX)

/* Until the upstream is ready, keep room at the front of the buffer for a preamble. */
#define RELAY_EARLY_LIMIT (LOOP_BUF_SIZE - PREAMBLE_MAX)

/* The relay's states, in the order a connection goes through them. */
enum relay_state {
	R_NEW,
	R_DOWN_HS,    /* downstream TLS handshake */
	R_PREAMBLE,   /* reading the tunnel preamble from the downstream */
	R_CONNECT,    /* an upstream is set and is to be connected (never waits here) */
	R_CONNECTING, /* connect(2) in progress */
	R_UP_HS,      /* upstream TLS handshake */
	R_RELAY,      /* bytes both ways */
	R_CLOSED,
};

/* Flags of a half. The TLS "wants" flags remember which readiness an SSL call waits for. */
enum {
	H_RD_READY = 1 << 0,         /* a read may make progress */
	H_WR_READY = 1 << 1,         /* a write may make progress */
	H_RD_EOF = 1 << 2,           /* the end of this side's stream was read */
	H_WR_SHUT = 1 << 3,          /* this socket's write side is shut */
	H_READ_WANTS_WRITE = 1 << 4, /* SSL_read needs the socket writable */
	H_WRITE_WANTS_READ = 1 << 5, /* SSL_write or SSL_shutdown needs it readable */
	H_HS_WANTS_WRITE = 1 << 6,   /* the handshake needs it writable (else readable) */
	H_FRAMED = 1 << 7,           /* tunnel protocol 2: a preamble, then frames */
	H_END_IN = 1 << 8,           /* framed: the peer's END came (H_RD_EOF is set too) */
	H_LAST_IN = 1 << 9,          /* framed: it was END 65535, no stream after this one */
	H_RESET_IN = 1 << 10,        /* framed: it was RESET: the peer's application reset */
	H_WR_CORK = 1 << 11,         /* framed: TLS records gather in a buffer (relay_tls_cork) */
};

/* Frame headers (relay.h, "Tunnel protocol 2"). */
#define FRAME_HEAD     2
#define FRAME_END      0
#define FRAME_END_LAST 0xffff
#define FRAME_RESET    0xfffe

/* Relay flags. */
enum {
	F_READ_PREAMBLE = 1 << 0,
	F_UPSTREAM_SET = 1 << 1,
	F_COUNTED = 1 << 2,     /* holds a place in cfg->limit */
	F_HAS_PRE = 1 << 3,     /* r->pre is to be sent before the client's bytes */
	F_SPENT = 1 << 4,       /* framed: this stream ends the tunnel (the flow stopped reading) */
	F_REUSED = 1 << 5,      /* the stream runs on a tunnel that carried one before */
	F_IDLE = 1 << 6,        /* a kept tunnel waits for its next stream (relay_next_stream) */
	F_NEXT = 1 << 7,        /* on_close called relay_next_stream */
	F_REUSABLE = 1 << 8,    /* in on_close: the stream's tunnel may carry another */
	F_ABORT = 1 << 9,       /* framed: the application side is reset; the tunnel finishes */
	F_ABORT_DONE = 1 << 10, /* both ends of the aborted stream went through */
	F_PRE_IN = 1 << 11,     /* a kept tunnel got a byte of its next preamble */
	F_PROBE = 1 << 12,      /* the upstream may not speak TLS to us (relay_probe_upstream) */
	F_REPLAY = 1 << 13,     /* on a kept tunnel, the peer has not answered: keep what we sent */
	F_DETACHED = 1 << 14,   /* on_handshake took the downstream connection (relay_detach) */
};

/* An address, small: the relay keeps two. */
struct relay_addr {
	uint8_t family; /* AF_UNSPEC, AF_INET, AF_INET6 */
	uint16_t port;  /* host order */
	uint32_t scope;
	uint8_t ip[16];
};

/*
 * One side of the connection. buf holds bytes read from this side that are still to be
 * written to the other: [start, end). It is NULL whenever it is empty.
 */
struct relay_half {
	int fd;
	uint16_t flags;
	uint16_t frame_left; /* framed: data bytes of the frame being read; 0: a header is next */
	uint32_t start, end;
	uint32_t gate; /* with HTTP: bytes before gate may be written, the rest wait for the flow */
	uint32_t wq_off, wq_len;            /* framed: the frames in wq, and how much is out */
	uint8_t head[FRAME_HEAD], head_len; /* framed: a frame header read in part */
	bool wq_end; /* framed: the frame in wq ends the stream's direction */
	char *buf;
	SSL *ssl;
	char *wq;              /* framed: a frame made for this side (a loop buffer), or NULL */
	uint64_t written;      /* bytes of the stream written to this side */
	char *peer_id;         /* the verified SPIFFE ID of a TLS peer, or NULL */
	struct mux_stream *ms; /* a stream of tunnel protocol 3 instead of a socket (fd -1) */
};

struct relay {
	struct relay_half down, up;
	struct loop *loop;
	const struct relay_config *cfg;
	void *data;
	struct loop_timer timer;
	struct loop_task task; /* a deferred pump, then the deferred free */
	uint64_t start_ms, active_ms;
	uint8_t state, pre_len, attempts;
	uint16_t flags;
	uint16_t preamble_port;
	uint32_t probe_ms;   /* with F_PROBE: the time the upstream has to answer the hello */
	struct preamble pre; /* with F_HAS_PRE: sent once the upstream is ready */
	int64_t not_after;   /* the framed side's: the earlier notAfter of both certificates */
	uint32_t streams;    /* a kept tunnel's (client side): the streams before this one */
	uint32_t replay_len;
	char *replay;        /* with F_REPLAY: the stream's bytes sent so far (malloc'd) */
	uint64_t end_out_ms; /* framed: when this side's END (or RESET) was all written */
	/* With F_ABORT: how the stream ended, for on_close once the tunnel is through. */
	const char *abort_reason;
	int abort_error;
	uint8_t abort_result, abort_side;
	struct relay_addr src, dst;
	struct httpflow *http; /* HTTP/1.1 followed request by request, or NULL */
};

/* Whether a side speaks tunnel protocol 2. */
static inline bool relay_framed(const struct relay_half *h)
{
	return (h->flags & H_FRAMED) != 0;
}

/* The stream's bytes kept for a restart are no longer needed (or cannot all be kept). */
void relay_replay_drop(struct relay *r);

/*
 * A kept tunnel ended with the peer's close_notify before a byte of this stream came back
 * (F_REPLAY), or a protocol 3 stream was not taken or its connection never came up: start
 * the stream again on a new connection, which on_upstream_failed(err) sets. Returns true
 * when it did (or closed the relay trying), false when the stream cannot be restarted.
 */
bool relay_restart(struct relay *r, int err);

/* The peer of a client stream is its connection's: taken once that is up. */
static inline void relay_stream_peer(struct relay *r)
{
	if (r->up.ms != NULL && r->up.peer_id == NULL && mux_stream_ready(r->up.ms) &&
	    mux_peer_id(r->up.ms->mux) != NULL)
		r->up.peer_id = strdup(mux_peer_id(r->up.ms->mux));
}

/* A protocol 3 stream of h failed (h->ms->fail): restart, or end the relay. */
void relay_stream_failed(struct relay *r, struct relay_half *h);

/* Bytes of h's buffer that may be written to the other side now. */
static inline uint32_t relay_ready(const struct relay *r, const struct relay_half *h)
{
	if (h->buf == NULL)
		return 0;
	return (r->http != NULL ? h->gate : h->end) - h->start;
}

static inline struct relay_half *relay_other(struct relay *r, struct relay_half *h)
{
	return h == &r->down ? &r->up : &r->down;
}

static inline enum relay_side relay_side_of(const struct relay *r, const struct relay_half *h)
{
	return h == &r->down ? RELAY_DOWN : RELAY_UP;
}

/* relay.c */

/* Ends the relay once: on_close, then both sockets closed; the memory goes after the round. */
void relay_end(struct relay *r, enum relay_result result, enum relay_side side, int error,
               const char *reason);

/* Runs the state machine as far as it goes without waiting. */
void relay_advance(struct relay *r);

/* A loop task (r->task) that runs relay_advance: a deferred pump, or a look at a kept tunnel. */
void relay_advance_task(struct loop *loop, struct loop_task *t);

/*
 * Framed: the application side failed, or the peer's did (RESET): reset the application
 * side and finish the stream on the tunnel; the relay ends with result once it is through.
 */
void relay_abort(struct relay *r, enum relay_result result, enum relay_side side, int error,
                 const char *reason);

/* Why a TLS call failed, as static text; and the -errno or code behind it. */
const char *relay_tls_reason(SSL *ssl, int sslerr, int rc);
int relay_tls_error(int sslerr);

/*
 * Before a TLS call: an empty error queue, or SSL_get_error cannot tell what failed.
 * ERR_clear_error costs about 800 instructions even on an empty queue (OpenSSL 3.0 clears
 * every slot), three times per proxied request; a look first costs a fraction of that, and
 * the queue is empty but after failures.
 */
static inline void relay_tls_clear(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* Frees OpenSSL's record buffers of an idle connection (a no-op while they hold data). */
void relay_tls_release(SSL *ssl);

/*
 * relay_tls_cork - gather the TLS records that SSL_write makes (a write(2) each) in a
 * buffer of RELAY_TLS_READ_BUF bytes over the socket, written when full or by
 * relay_tls_uncork. Returns 0, or -ENOMEM (then nothing changed).
 * relay_tls_uncork - write what is gathered and take the buffer away: 1 when done, 0 when
 * the socket would block (call again once writable), -EPIPE when the socket failed.
 */
int relay_tls_cork(SSL *ssl);
int relay_tls_uncork(SSL *ssl);

/* relay_http.c */

/*
 * relay_http_run - let the flow look at what both directions read and it has not seen:
 * moves gates, drops bytes, queues its replies. Returns 1 when something changed, 0 when
 * not, -1 when the relay was closed.
 */
int relay_http_run(struct relay *r);

/* relay_http_free - the flow's memory, when the relay goes. */
void relay_http_free(struct relay *r);

/* relay_pump.c */

/*
 * relay_pump - move bytes as far as the sockets let it, then update the epoll interest.
 * Before the RELAY state only the downstream is read (early bytes wait for the upstream).
 * May close the relay.
 */
void relay_pump(struct relay *r);

/* relay_pump_read - read from h into its buffer: 1 when something happened (bytes or the
 * end), 0 when nothing could be read now, -1 when the relay was closed. */
int relay_pump_read(struct relay *r, struct relay_half *h);

/* relay_pump_update - tell epoll what both halves wait for. May close the relay. */
void relay_pump_update(struct relay *r);

/* relay_pump_drop_buf - give h's buffer back to the loop if it is empty. */
void relay_pump_drop_buf(struct relay *r, struct relay_half *h);

#endif
