/* SPDX-License-Identifier: Apache-2.0 */
/* A proxied connection: two halves, each plain or TLS, joined by buffers, with hooks. */
#ifndef MESHLET_PROXY_RELAY_H
#define MESHLET_PROXY_RELAY_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "meshlet/spiffe.h"
#include "httpflow.h"
#include "loop.h"
#include "preamble.h"

/*
 * A relay joins the downstream socket (accepted from a client) to an upstream socket (that
 * the relay connects), on one loop. Either side may be TLS (an SSL_CTX from the caller:
 * a server one downstream, a client one upstream) or plain (NULL). Its life:
 *
 *	DOWN_HANDSHAKE  downstream TLS handshake, then on_handshake(DOWN)    [handshake timeout]
 *	PREAMBLE        when RELAY_READ_PREAMBLE: read the tunnel preamble, then on_preamble,
 *	                which sets the upstream                         [same handshake timeout]
 *	CONNECT         non-blocking connect to the upstream; a failure    [connect timeout]
 *	                goes to on_upstream_failed, which may set another upstream (retry)
 *	UP_HANDSHAKE    upstream TLS handshake, then on_handshake(UP)      [handshake timeout]
 *	                (a probed upstream's failure goes to on_probe_failed: retry, as above)
 *	RELAY           bytes both ways; a preamble given to relay_set_upstream goes first
 *	                                [idle timeout; with HTTP, also the request head's]
 *	closed          on_close(stats) once, then the relay is freed after the loop's round
 *
 * Bytes: per direction one buffer of LOOP_BUF_SIZE bytes, taken from the loop when a read
 * is about to happen and given back as soon as it is empty, so an idle relay holds none;
 * TLS sides release OpenSSL's record buffers too (SSL_MODE_RELEASE_BUFFERS, and
 * SSL_free_buffers after a read that found nothing). A side is not read while the buffer of
 * its direction is full (back-pressure). The end of the stream on one side shuts the write
 * side of the other (TLS: close_notify, then a TCP FIN) once its buffer is written, and the
 * other direction goes on until it ends too: a client that shuts its write side still
 * receives the whole answer. A reset or an error on either side closes both at once, and
 * the other side is reset too (SO_LINGER 0), so that a truncated stream never looks like a
 * complete one. A TLS side that ends without close_notify counts as a reset (truncation).
 *
 * TLS contexts are the caller's: verification (SSL_VERIFY_PEER, the trust bundle), minimum
 * version, ALPN, session tickets. A server context that verifies clients needs
 * SSL_CTX_set_session_id_context, or OpenSSL refuses every resumed session; a client
 * reuses sessions when the caller sets one on relay_ssl(r, RELAY_UP) after
 * relay_set_upstream. The peer identity of a resumed session is that of its first
 * handshake, as OpenSSL keeps it.
 *
 * Hooks run on the loop's thread and must not block. They must not call relay_close (they
 * return an error instead); relay_set_upstream and the getters are what they may call.
 *
 * The process must ignore SIGPIPE: OpenSSL writes to sockets with write(2).
 *
 * Tunnel protocol 2 ("meshlet/2")
 * -------------------------------
 * A TLS side that a hook marks with relay_set_framed carries streams, one after another,
 * instead of one stream to the end of the connection, so that proxy pairs keep their
 * connections and a new connection of the application costs no TLS handshake. A stream
 * is a version 2 tunnel preamble from the client proxy (preamble.h), then frames both
 * ways. A frame is a 2-byte big-endian length, then that many bytes of the stream:
 *
 *	1 to 16380     data
 *	0              END: the sender's direction of this stream is over (its half-close)
 *	65535          END, and the sender closes the connection after this stream: the
 *	               client must not start another stream on it
 *	65534          RESET: the sender's application connection was reset, or could not
 *	               be made, or was refused; the receiver resets its own, and the
 *	               stream is over both ways (data frames that cross it are dropped)
 *	anything else  a protocol error: the connection is reset
 *
 * Each side ends its direction of a stream with one END or RESET, never both, and sends
 * nothing more for that stream after it; a side that receives a RESET before it sent its
 * own end sends a RESET. A stream is over when both ends went through. Only then may the
 * client send the next stream's preamble, and only on a connection that no END 65535 came
 * on. An application connection that resets after its side already sent END resets the
 * whole TLS connection (and with it, the other application connection), as in version 1;
 * so does a timeout (the connection ends in the middle of a stream, which the peer takes
 * as a reset). Frames may span TLS records, and a record may hold several frames.
 *
 * A server keeps a connection with no stream open for RELAY_TUNNEL_KEEP_MS from when it has
 * read the client's end of the last stream, unless it shuts down, its identity or trust
 * bundle changed, or a certificate expires. A client starts a stream only on a connection
 * whose last end it sent less than RELAY_TUNNEL_REUSE_MS ago and whose certificates are
 * good for RELAY_TUNNEL_CERT_MARGIN_S more (the clocks of two nodes differ), so that a
 * server does not close a connection that a stream is starting on, but when it shuts down
 * or a peer vanished. A side closes a connection with close_notify only between streams
 * (idle, or its last stream over both ways); in the middle of a stream it resets it. So a
 * close_notify that comes before any byte of a stream the client started tells it that
 * the server closed the connection idle and never read the stream: the client starts the
 * stream again on a new connection (relay_restart, ERR_RELAY_STALE), with the bytes it
 * had sent, which it keeps until the first byte of the answer (if they fit in a buffer,
 * RELAY_EARLY_LIMIT). After that byte nothing is ever sent again. A stream
 * on a kept connection is authorized as any other (on_preamble); the peer's identity is
 * the one its handshake proved, and no stream starts on a connection past either
 * certificate's notAfter (a running one goes on, as a long connection does).
 */

/* How long a server keeps an idle protocol 2 tunnel; clients reuse idle ones for less. */
#define RELAY_TUNNEL_KEEP_MS       90000
#define RELAY_TUNNEL_REUSE_MS      60000
#define RELAY_TUNNEL_CERT_MARGIN_S 15

/* The largest data frame: with its header and an END, 16 KiB. */
#define RELAY_FRAME_MAX 16380

enum relay_side { RELAY_DOWN, RELAY_UP };

enum relay_result {
	RELAY_OK,               /* both directions ended cleanly */
	RELAY_CONNECT_FAILED,   /* no upstream connected: stats.error, -ETIMEDOUT for a timeout */
	RELAY_HANDSHAKE_FAILED, /* TLS handshake or tunnel preamble failed (stats.reason) */
	RELAY_DENIED,           /* a hook refused (stats.error is its code), or no upstream */
	RELAY_TIMEOUT,          /* stats.reason: "handshake" (with the preamble), "idle" or
	                         * "request_head" (relay_http_set) */
	RELAY_RESET,            /* a side reset, or an I/O error (stats.error, stats.reason) */
	RELAY_CLOSED,           /* closed by relay_close (shutdown, drain timeout) */
	RELAY_RESULT_COUNT_
};

/* "ok", "connect_failed", "handshake_failed", "denied", "timeout", "reset", "closed", NULL. */
extern const char *const relay_result_names[];

/* Flags of relay_new. */
#define RELAY_READ_PREAMBLE 0x1u /* read a tunnel preamble from the downstream first */

/* The other party of a completed TLS handshake, for on_handshake. Borrowed, for the call. */
struct relay_peer {
	enum relay_side side;
	SSL *ssl;                   /* for the protocol version, cipher, ALPN */
	X509 *cert;                 /* the peer's leaf, or NULL when it sent none */
	bool verified;              /* cert is present and its chain verified (verify result OK) */
	const struct spiffe_id *id; /* the SPIFFE ID of a verified cert, or NULL */
	const char *id_text;        /* the same as a string, or NULL */
	int id_error;               /* why id is NULL: ERR_X509_* or ERR_SPIFFE_* or 0 */
};

/* What on_close gets: built when the relay closes. Strings are valid during the call. */
struct relay_stats {
	enum relay_result result;
	enum relay_side side;        /* the side that failed, timed out or reset */
	int error;                   /* -errno or ERR_* code behind the result, or 0 */
	const char *reason;          /* static text for handshake failures and timeouts */
	uint64_t bytes_up;           /* the client's bytes written to the upstream */
	uint64_t bytes_down;         /* the upstream's bytes written to the client */
	struct timespec start;       /* CLOCK_REALTIME when the relay was created */
	uint64_t duration_ms;        /* from creation to close */
	const char *down_id;         /* SPIFFE ID of a verified downstream TLS peer, or NULL */
	const char *up_id;           /* SPIFFE ID of a verified upstream TLS peer, or NULL */
	struct sockaddr_storage src; /* the downstream peer (AF_UNSPEC when unknown) */
	struct sockaddr_storage dst; /* the upstream last tried (AF_UNSPEC when none) */
	uint16_t preamble_port;      /* the port a read preamble named, or 0 */
	/*
	 * Protocol 2: the stream ended cleanly and its tunnel may carry another: on_close
	 * may call relay_take_tunnel (the tunnel is the upstream) or relay_next_stream
	 * (the downstream), or let it be closed.
	 */
	bool reusable;
	bool reused;   /* the stream ran on a tunnel that had carried one before */
	bool idle_end; /* no stream: a tunnel kept by relay_next_stream ended between streams */
};

struct relay;

/*
 * The connection limit of a process, shared by every relay of every loop (atomics). Set
 * max (0: no limit); active and refused are counters for metrics, and active also tells a
 * draining process when every connection has ended. A refused connection is closed by
 * relay_new and has no relay, hence no on_close: count it from refused.
 */
struct relay_limit {
	uint32_t max;
	_Atomic uint32_t active;
	_Atomic uint64_t refused;
};

/*
 * What relays of one kind (a listener's) share: read-only once relays use it, any number
 * of loops may share it. Timeouts are in milliseconds; 0 means none. Hooks may be NULL.
 */
struct relay_config {
	uint32_t connect_timeout_ms;
	uint32_t handshake_timeout_ms; /* from accept to the end of handshake and preamble */
	uint32_t idle_timeout_ms;      /* no byte either way for this long closes */
	/*
	 * With relay_http_set: how long a client may take over a request head. The first
	 * request's counts from the RELAY state (after the handshake, the preamble and the
	 * connect); each later one's from its first byte. Time spent waiting on the
	 * application (a full pipeline, a reply behind responses) does not count, and
	 * neither does the time between requests (the idle timeout's). Past it, the client
	 * gets 408 with connection: close, and the relay ends with RELAY_TIMEOUT and
	 * "request_head" once both sides are done; when not a byte of the first request
	 * came, it closes at once without a reply.
	 */
	uint32_t request_head_timeout_ms;
	struct relay_limit *limit; /* NULL: no limit */

	/*
	 * After each TLS handshake (authorization: identity, relay_source): return 0 to go
	 * on, or a negative code to close with RELAY_DENIED. NULL allows everything.
	 */
	int (*on_handshake)(struct relay *r, const struct relay_peer *peer);

	/*
	 * With RELAY_READ_PREAMBLE, once the preamble is read: call relay_set_upstream (the
	 * application's port is p->port) and return 0, or return a negative code to close
	 * with RELAY_DENIED. Required for relays that read a preamble.
	 */
	int (*on_preamble)(struct relay *r, const struct preamble *p);

	/*
	 * The upstream could not be connected (err: -ECONNREFUSED, -ETIMEDOUT, ...), before
	 * any byte was relayed. Call relay_set_upstream with another target and return 0 to
	 * try it, or return a negative code to close with RELAY_CONNECT_FAILED. NULL gives
	 * up. A relay tries at most RELAY_MAX_ATTEMPTS targets. A TLS handshake that fails
	 * after the connect succeeded is not retried (RELAY_HANDSHAKE_FAILED), unless the
	 * upstream was probed (on_probe_failed).
	 *
	 * err is ERR_RELAY_STALE for a stream started on a kept tunnel (relay_use_tunnel) that
	 * the peer closed with close_notify before a byte of the stream came back: the peer
	 * closed it between streams, so it did not take this one. The client's bytes are back
	 * in the relay's buffer: set a new upstream (not another kept tunnel) to start the
	 * stream again, or return the code to reset the client.
	 */
	int (*on_upstream_failed)(struct relay *r, int err);

	/*
	 * The handshake with an upstream marked by relay_probe_upstream failed (err: -EPROTO
	 * for an answer that is not our TLS, -ECONNRESET or another -errno for a peer that
	 * closed) or got no answer in time (-ETIMEDOUT), before any byte was relayed. relay_ssl(r,
	 * RELAY_UP) is still the failed TLS connection (how far did it get?), its socket closed. As
	 * with on_upstream_failed, relay_set_upstream and 0 try another target; a negative code
	 * ends the relay with RELAY_HANDSHAKE_FAILED (RELAY_TIMEOUT for -ETIMEDOUT). NULL:
	 * the failure stands.
	 */
	int (*on_probe_failed)(struct relay *r, int err);

	/* Once, when the relay closes, whatever the result; the relay is freed soon after. */
	void (*on_close)(struct relay *r, const struct relay_stats *stats);
};

#define RELAY_MAX_ATTEMPTS 4

/*
 * relay_new - a relay for the accepted, non-blocking socket fd on loop. It takes fd in
 * every case: on failure fd is closed. src is the client's address (from accept; NULL
 * for unknown). tls is the server context for a TLS downstream, or NULL for plain; the
 * relay takes its own reference. flags: RELAY_READ_PREAMBLE or 0. data is the caller's
 * (relay_data). Nothing happens until relay_start. Returns NULL with *err: ERR_RELAY_LIMIT
 * (cfg->limit is full: the connection is refused and counted), -ENOMEM, or -errno.
 */
struct relay *relay_new(struct loop *loop, const struct relay_config *cfg, int fd,
                        const struct sockaddr *src, SSL_CTX *tls, unsigned flags, void *data,
                        int *err);

/*
 * relay_set_upstream - where to connect: addr (AF_INET or AF_INET6; copied), with TLS
 * when tls is a client context (the relay takes its own reference) and plain when NULL.
 * When pre is not NULL it is encoded and written on the upstream before the client's
 * bytes (pre needs TLS in practice, but is not tied to it). Call it before relay_start
 * (unless the relay reads a preamble), or from on_preamble or on_upstream_failed; a later
 * call replaces the target. Returns 0, -EINVAL (bad address or preamble), -EBUSY (the
 * relay is past connecting) or -ENOMEM.
 */
int relay_set_upstream(struct relay *r, const struct sockaddr *addr, socklen_t len, SSL_CTX *tls,
                       const struct preamble *pre);

/*
 * relay_probe_upstream - the TLS upstream just set may not be a TLS server at all (a
 * Service's backend without a sidecar, reached on the application's own port): a
 * handshake that fails, or that is not done within timeout_ms (when shorter than the
 * handshake timeout), goes to on_probe_failed, which may set a plain upstream instead.
 * A peer that agreed to an application protocol (ALPN) by then is a TLS server: it gets
 * the rest of the handshake timeout, and its failures stand, as any upstream's.
 * Call after relay_set_upstream (a later relay_set_upstream undoes it). Returns 0, or
 * -EINVAL when no TLS upstream is set or timeout_ms is 0.
 */
int relay_probe_upstream(struct relay *r, uint32_t timeout_ms);

/*
 * relay_start - begin: handshake, preamble, connect as set up. Failures from here on end
 * in on_close. A relay without an upstream that reads no preamble closes with
 * RELAY_DENIED and -EDESTADDRREQ.
 */
void relay_start(struct relay *r);

/* relay_close - close now with result (e.g. RELAY_CLOSED); on_close runs. Not from hooks. */
void relay_close(struct relay *r, enum relay_result result);

/*
 * relay_http_set - follow the connection as HTTP/1.1 to the application (httpflow.h):
 * decide(arg, head) is called for each request head, on the loop's thread; a denied
 * request is answered with 403 by the relay, a malformed one with its 4xx/5xx status, a
 * head that takes longer than cfg->request_head_timeout_ms with 408, and the application
 * never sees any of them. Call before relay_start, or from on_preamble or on_handshake.
 * Returns 0, -EBUSY (already set) or -ENOMEM.
 */
int relay_http_set(struct relay *r, httpflow_decide_fn decide, void *arg, size_t head_limit);

/*
 * relay_set_framed - the TLS side speaks tunnel protocol 2 (above): call it from on_handshake
 * for that side once ALPN chose "meshlet/2". The upstream then gets a version 2 preamble
 * (the one given to relay_set_upstream, or one naming the upstream's port) and frames; the
 * downstream is read as a version 2 preamble, then frames. Returns 0, or -EINVAL for a side
 * that is not TLS.
 */
int relay_set_framed(struct relay *r, enum relay_side side);

/* An idle protocol 2 tunnel that a client proxy keeps for another stream: plain data. */
struct relay_tunnel {
	int fd;
	SSL *ssl;
	char *peer_id;       /* the peer's verified SPIFFE ID, or NULL */
	int64_t not_after;   /* the earlier notAfter of both certificates, Unix seconds */
	uint64_t idle_since; /* loop_now when our end of the last stream was written: the
	                      * server's keep time starts later, once it has read it */
	uint32_t streams;    /* the streams it carried */
};

/*
 * relay_take_tunnel - from on_close of a stream with stats.reusable, on the client side:
 * the upstream tunnel, detached from the relay and from the loop (not watched). The caller
 * owns it: relay_use_tunnel or relay_tunnel_close. Returns NULL when there is none.
 */
struct relay_tunnel *relay_take_tunnel(struct relay *r);

/*
 * relay_use_tunnel - like relay_set_upstream, but the upstream is t, a tunnel from
 * relay_take_tunnel that is not watched by any loop, to the same kind of peer. The relay
 * owns t from this call on, whatever it returns. pre is the preamble (its version is set
 * to 2; NULL: one naming addr's port). The stream starts at once at relay_start. Returns 0,
 * -EINVAL or -EBUSY (as relay_set_upstream; t is then closed).
 */
int relay_use_tunnel(struct relay *r, const struct sockaddr *addr, socklen_t len,
                     struct relay_tunnel *t, const struct preamble *pre);

/*
 * relay_tunnel_close - close t: close_notify when it can go at once, then the socket; frees
 * t (NULL is allowed).
 */
void relay_tunnel_close(struct relay_tunnel *t);

/*
 * relay_next_stream - from on_close of a stream with stats.reusable, on the server side:
 * keep the relay and its downstream tunnel for the tunnel's next stream instead of closing
 * them. The upstream is closed; the caller's data stays (reset what is per stream). The
 * relay waits up to RELAY_TUNNEL_KEEP_MS for the next preamble (then on_preamble as for a
 * new connection, with relay_http_set to call again if wanted), and when it ends before
 * one comes, on_close gets stats.idle_end. Returns 0, or -EINVAL when not reusable.
 */
int relay_next_stream(struct relay *r);

/*
 * Tunnel protocol 3 (mux.h): many streams at once on one TLS connection.
 *
 * relay_detach - from on_handshake of a TLS side: take its connection (socket, unwatched,
 * and TLS state) to carry protocol 3 streams; the relay then ends at once, with on_close
 * seeing stats.idle_end (nothing to report). Returns 0, or -EINVAL outside a handshake.
 */
int relay_detach(struct relay *r, enum relay_side side, int *fd, SSL **ssl);

struct mux;
struct mux_stream;

/*
 * relay_use_stream - like relay_set_upstream, but the upstream is a new stream on m (a
 * client connection, up or still connecting), opened with pre (version 3; NULL: one
 * naming addr's port). The stream starts at relay_start. If m fails before the peer took
 * the stream (its connection was refused, or is an older protocol, or the peer said
 * GOAWAY), the relay starts it again through on_upstream_failed (the connect's -errno,
 * ERR_MUX_DOWNGRADE or ERR_RELAY_STALE) with the bytes it sent, kept until then (up to
 * RELAY_EARLY_LIMIT). Returns 0, -EBUSY (m takes no new streams), -EINVAL or -ENOMEM.
 */
int relay_use_stream(struct relay *r, const struct sockaddr *addr, socklen_t len, struct mux *m,
                     const struct preamble *pre);

/*
 * relay_new_stream - a server relay for the stream s that a mux's on_open gives, whose
 * first bytes are its preamble: like relay_new with RELAY_READ_PREAMBLE on a TLS
 * downstream whose handshake is done (peer: the connection's). reused: the connection
 * carried streams before. Returns NULL with *err (ERR_RELAY_LIMIT: refused and counted);
 * s is then still the caller's.
 */
struct relay *relay_new_stream(struct loop *loop, const struct relay_config *cfg,
                               struct mux_stream *s, const struct sockaddr *src, bool reused,
                               void *data, int *err);

/* TLS helpers shared with mux.c. */
SSL *relay_tls_new(SSL_CTX *ctx); /* partial writes, released buffers, read-ahead */
/* The peer of a completed handshake on ssl; id and text hold what peer points to. */
void relay_peer_fill(SSL *ssl, enum relay_side side, struct relay_peer *peer, struct spiffe_id *id,
                     char text[SPIFFE_ID_MAX + 1]);
/* The earlier notAfter of both certificates (Unix seconds), 0 when unknown. */
int64_t relay_tls_not_after(SSL *ssl);
/* TCP keep-alive for a kept connection: a peer that vanished is found within ~20 s. */
void relay_tls_keepalive(int fd);

/* relay_peer_id - the verified SPIFFE ID of a side's TLS peer, or NULL. */
const char *relay_peer_id(const struct relay *r, enum relay_side side);

/* relay_data - the caller's pointer given to relay_new. */
void *relay_data(const struct relay *r);

/* relay_loop - the loop the relay runs on. */
struct loop *relay_loop(const struct relay *r);

/*
 * relay_fd - the socket of a side (of a protocol 3 stream: its connection's), or -1
 * (upstream not connected yet, or closed).
 */
int relay_fd(const struct relay *r, enum relay_side side);

/* relay_ssl - the TLS connection of a side (to set SNI, ALPN or a session), or NULL. */
SSL *relay_ssl(const struct relay *r, enum relay_side side);

/* relay_source - the client's address into *out; AF_UNSPEC when unknown. */
void relay_source(const struct relay *r, struct sockaddr_storage *out);

/*
 * relay_buffered - bytes the relay holds in its buffers, both directions (at most
 * 2 * LOOP_BUF_SIZE; OpenSSL's own record buffers are not counted).
 */
size_t relay_buffered(const struct relay *r);

/* relay_size - sizeof(struct relay), for memory accounting. */
size_t relay_size(void);

#endif
