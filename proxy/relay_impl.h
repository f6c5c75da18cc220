/* SPDX-License-Identifier: Apache-2.0 */
/* The insides of a relay, shared by relay.c (its states) and relay_pump.c (its bytes). */
#ifndef MESHLET_PROXY_RELAY_IMPL_H
#define MESHLET_PROXY_RELAY_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "relay.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Rounds of reading and writing per wakeup before other connections get their turn. */
#define RELAY_PUMP_ROUNDS 8

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
};

/* Relay flags. */
enum {
	F_READ_PREAMBLE = 1 << 0,
	F_UPSTREAM_SET = 1 << 1,
	F_COUNTED = 1 << 2, /* holds a place in cfg->limit */
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
	uint32_t start, end;
	uint32_t gate; /* with HTTP: bytes before gate may be written, the rest wait for the flow */
	char *buf;
	SSL *ssl;
	uint64_t written; /* bytes written to this side */
	char *peer_id;    /* the verified SPIFFE ID of a TLS peer, or NULL */
};

struct relay {
	struct relay_half down, up;
	struct loop *loop;
	const struct relay_config *cfg;
	void *data;
	struct loop_timer timer;
	struct loop_task task; /* a deferred pump, then the deferred free */
	uint64_t start_ms, active_ms;
	uint8_t state, flags, pre_len, attempts;
	uint16_t preamble_port;
	struct relay_addr src, dst;
	struct httpflow *http; /* HTTP/1.1 followed request by request, or NULL */
};

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

/* Why a TLS call failed, as static text; and the -errno or code behind it. */
const char *relay_tls_reason(SSL *ssl, int sslerr, int rc);
int relay_tls_error(int sslerr);

/* Frees OpenSSL's record buffers of an idle connection (a no-op while they hold data). */
void relay_tls_release(SSL *ssl);

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
