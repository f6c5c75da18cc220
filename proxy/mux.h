/* SPDX-License-Identifier: Apache-2.0 */
/* Tunnel protocol 3 ("meshlet/3"): many streams at once on one mutual TLS connection. */
#ifndef MESHLET_PROXY_MUX_H
#define MESHLET_PROXY_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "loop.h"
#include "relay.h"

/*
 * Tunnel protocol 3 ("meshlet/3")
 * -------------------------------
 * Protocol 2 keeps a TLS connection per application connection at once: every request
 * costs each proxy a TLS write and a TLS read of its own, 2 of the 4 system calls a
 * proxy makes per request. Protocol 3 carries the streams of many application
 * connections at once on one TLS connection between two proxies: the frames of every
 * stream that had bytes in one round of the event loop leave in one TLS write, and arrive
 * with one read.
 *
 * Both sides send frames: an 8-byte header, then length bytes of payload.
 *
 *	offset  size  field
 *	0       1     type
 *	1       1     flags: none defined; every bit must be 0
 *	2       2     length of the payload, big-endian
 *	4       4     stream ID, big-endian: 0 for the connection, else a stream's
 *
 *	type        stream  length      meaning
 *	0 DATA      > 0     1..16384    bytes of the stream
 *	1 OPEN      > 0     10..256     (client only) a new stream; the payload is its tunnel
 *	                                preamble (version 3, preamble.h); IDs go up
 *	2 END       > 0     0           the sender's direction of the stream is over
 *	3 RESET     > 0     0           the stream is over both ways: the sender's application
 *	                                connection reset, or could not be made, or was refused
 *	4 WINDOW    > 0     4           the receiver took this many more bytes of the stream:
 *	                                the sender may send them (big-endian, 1..2^31-1)
 *	5 GOAWAY    0       4           (server only) the last stream ID it took: streams above
 *	                                it were not taken and never will be; no more OPENs
 *	6 STOP      > 0     0           after the sender's END: the stream is over for the
 *	                                sender, whose application reads nothing more of it (an
 *	                                HTTP server that stopped reading requests); the receiver
 *	                                delivers what came, drops what its application still
 *	                                sends, and sends nothing more of the stream
 *
 * Anything else (another type or flag, a length out of range, a stream ID of the wrong
 * kind, an OPEN whose ID does not go up, DATA beyond the window, a frame after the
 * stream's END in its direction, a STOP before it) is a protocol error: the connection is reset,
 *and so is every stream on it.
 *
 * Flow control is per stream: each side may have at most MUX_WINDOW bytes of a stream's
 * DATA sent and not yet granted back by WINDOW frames; a receiver grants bytes once its
 * application took them (in grants of MUX_WINDOW / 2: a sender that used its whole window
 * always gets one). So a slow application stalls its own stream, never the others,
 * and a stream holds at most MUX_WINDOW bytes in the receiving proxy.
 *
 * A stream ends once END or RESET went each way (RESET ends both ways at once). Frames
 * for a stream that ended, which may cross a RESET, are dropped. A server that stops
 * taking streams (it shuts down, its identity changed, it is at its stream limit for a
 * while, the connection idled) sends GOAWAY with the last ID it took: the client starts
 * the streams above it again on another connection, since nothing of them reached an
 * application, and opens no more here. A side closes the connection with close_notify
 * once no stream of its is open; the server sends GOAWAY first. A close_notify with
 * streams open (without GOAWAY naming them) resets them.
 */

#define MUX_HEAD      8
#define MUX_FRAME_MAX 16384
#define MUX_WINDOW    (256u * 1024u)
/*
 * Streams open at once on one connection: a client opens another connection beyond; a
 * server takes twice as many (an END and the next OPEN may cross), and resets the rest.
 */
#define MUX_MAX_STREAMS 256

enum mux_type {
	MUX_DATA = 0,
	MUX_OPEN = 1,
	MUX_END = 2,
	MUX_RESET = 3,
	MUX_WINDOW_UPDATE = 4,
	MUX_GOAWAY = 5,
	MUX_STOP = 6,
};

/* A frame header, parsed. */
struct mux_frame {
	uint8_t type;
	uint16_t len;
	uint32_t stream;
};

/*
 * mux_frame_parse - the header at p (n bytes available). Returns MUX_HEAD and fills *f
 * when it is whole and valid (the payload may still be coming); 0 when more bytes are
 * needed; ERR_MUX_FRAME for a header no sender of protocol 3 makes. Pure (mux_frame.c):
 * for tests and the fuzzer.
 */
int mux_frame_parse(const uint8_t *p, size_t n, struct mux_frame *f);

/* mux_frame_put - write a header at p (MUX_HEAD bytes). */
void mux_frame_put(uint8_t *p, enum mux_type type, uint16_t len, uint32_t stream);

/* Big-endian 32-bit fields (stream IDs, WINDOW and GOAWAY payloads). */
static inline uint32_t mux_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void mux_set32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct mux;
struct mux_chunk;

/* How a stream ended or failed, for its owner (mux_stream_failed). */
enum mux_fail {
	MUX_FAIL_NONE,
	MUX_FAIL_CONNECT,   /* the connection was never made: error is -errno (-ETIMEDOUT) */
	MUX_FAIL_HANDSHAKE, /* the TLS handshake failed or the peer was refused (reason) */
	MUX_FAIL_DENIED,    /* the peer was refused by the owner's check (error, reason) */
	MUX_FAIL_DOWNGRADE, /* the peer speaks an older protocol: ERR_MUX_DOWNGRADE */
	MUX_FAIL_REFUSED,   /* the peer did not take the stream (GOAWAY): start it elsewhere */
	MUX_FAIL_RESET,     /* the connection failed under the stream: error, reason */
};

/*
 * A stream: one application connection on a mux. Its owner (a relay) allocates nothing:
 * mux_open and the server's on_open give it, mux_stream_release frees it. wake(arg) is
 * called on the loop's thread, never from inside a call of the owner's on the stream,
 * when something may have changed: bytes or an end came, there is room to write, or the
 * stream failed. It must not call back into the mux; it queues work for later.
 */
struct mux_stream {
	struct mux *mux; /* NULL once the connection is gone (fail says why) */
	struct mux_stream *hnext;
	struct mux_stream *bnext, *bprev; /* waiting for room in the connection's buffer */
	uint32_t id;
	uint16_t flags;
	uint8_t fail; /* enum mux_fail */
	int error;
	const char *reason;
	uint32_t send_window; /* bytes we may send */
	uint32_t recv_left;   /* bytes the peer may send */
	uint32_t credit;      /* bytes taken by the owner and not yet granted */
	uint32_t queued;      /* bytes in the queue */
	struct mux_chunk *head, *tail;
	void (*wake)(void *arg);
	void *arg;
};

/* Settings and hooks of a mux; read-only while muxes use it. */
struct mux_config {
	uint32_t connect_timeout_ms;
	uint32_t handshake_timeout_ms;
	uint32_t idle_ms; /* a connection with no stream for this long is closed */
	/*
	 * Client: the TLS handshake is done (peer: its identity; ALPN says the protocol):
	 * return 0 to carry streams, or a negative code to refuse the peer (MUX_FAIL_DENIED).
	 */
	int (*on_handshake)(struct mux *m, const struct relay_peer *peer);
	/*
	 * Server: a new stream, whose queue holds its preamble (the OPEN's payload). Take it
	 * (set s->wake and s->arg) and return 0; return a negative code to reset it, or
	 * MUX_OPEN_GOAWAY to take no more streams on this connection, this one included
	 * (GOAWAY: the client starts it again on another).
	 */
	int (*on_open)(struct mux *m, struct mux_stream *s);
	/*
	 * The connection ends (how: MUX_FAIL_NONE when it closed cleanly): called once, before
	 * its TLS state goes (mux_ssl still answers); m is freed after the loop's round. Its
	 * streams have failed already.
	 */
	void (*on_gone)(struct mux *m, enum mux_fail how);
};

#define MUX_OPEN_GOAWAY 1

/*
 * mux_connect - a client connection to addr on loop, with ssl (a client TLS connection set
 * up by the caller: ALPN, SNI, a session to resume; the mux takes it). It connects and
 * handshakes in the background; streams opened meanwhile wait. arg: mux_arg. Returns NULL
 * (ssl freed) with *err.
 */
struct mux *mux_connect(struct loop *loop, const struct mux_config *cfg,
                        const struct sockaddr *addr, socklen_t len, SSL *ssl, void *arg, int *err);

/*
 * mux_accept - a server connection on fd, whose TLS handshake (ssl) is done and whose peer
 * (peer_id, strdup'd) was checked; it reads OPENs from now on. not_after: the earlier
 * notAfter of both certificates. Takes fd and ssl whatever happens; NULL with *err.
 */
struct mux *mux_accept(struct loop *loop, const struct mux_config *cfg, int fd, SSL *ssl,
                       const char *peer_id, int64_t not_after, void *arg, int *err);

/*
 * mux_open - client: a new stream on m with the preamble pre (encoded, version 3). The
 * OPEN goes out with the next frames. Returns NULL with *err: -EBUSY when m takes no new
 * streams (GOAWAY, closing, full, failed), -ENOMEM.
 */
struct mux_stream *mux_open(struct mux *m, const uint8_t *pre, size_t pre_len,
                            void (*wake)(void *arg), void *arg, int *err);

/*
 * mux_usable - whether m takes new streams now: not going away, fewer than
 * MUX_MAX_STREAMS, both certificates good for margin_s more (unknown while connecting).
 */
bool mux_usable(const struct mux *m, int64_t margin_s);

/* Reading: up to len bytes of the stream into buf. Returns the bytes (> 0); 0 when none
 * are queued now; MUX_EOF once the peer's END came and everything before it was read;
 * -1 when the stream failed (s->fail, s->error, s->reason) or was reset (MUX_FAIL_RESET,
 * -ECONNRESET). Bytes read are granted back to the peer. */
#define MUX_EOF (-2)
ssize_t mux_stream_read(struct mux_stream *s, void *buf, size_t len);

/*
 * mux_stream_write - send up to len bytes: as many as the window and the connection's
 * buffer take (0: none now; wake comes when more may go). -1 when failed, as above.
 */
ssize_t mux_stream_write(struct mux_stream *s, const void *buf, size_t len);

/* mux_stream_end - our direction is over (END). Returns 1 when sent, 0 to try again on
 * wake, -1 when failed. */
int mux_stream_end(struct mux_stream *s);

/* Whether the peer's END came (what it sent is whole). */
bool mux_stream_ended(const struct mux_stream *s);

/* Whether the peer sent anything for the stream (it took it): no restart is possible. */
bool mux_stream_answered(const struct mux_stream *s);

/* Whether the stream's connection is up (it may send bytes); false while it connects. */
bool mux_stream_ready(const struct mux_stream *s);

/*
 * mux_stream_release - the owner is done with s; its memory is freed (NULL is allowed). A
 * stream not over both ways is reset (RESET), unless our END went out, rst is false and
 * only the peer's direction is left: then the peer is told to stop (STOP).
 */
void mux_stream_release(struct mux_stream *s, bool rst);

/* mux_goaway - take no new streams (GOAWAY on a server), close once none is open. */
void mux_goaway(struct mux *m);

/*
 * mux_take - from on_gone of a client connection whose peer chose an older protocol
 * (MUX_FAIL_DOWNGRADE): take its socket (unwatched) and TLS state, whose handshake is
 * done, to use it as that protocol's; nothing was written on it. Returns 0 or -EINVAL.
 */
int mux_take(struct mux *m, int *fd, SSL **ssl);

/* mux_abort - close now (a reset): every stream fails. For a process that stops. */
void mux_abort(struct mux *m);

void *mux_arg(const struct mux *m);
int mux_fd(const struct mux *m);
SSL *mux_ssl(const struct mux *m);
const char *mux_peer_id(const struct mux *m);
int64_t mux_not_after(const struct mux *m);
size_t mux_streams(const struct mux *m);
/* Streams the connection carried in all, the open ones included. */
uint64_t mux_streams_total(const struct mux *m);

#endif
