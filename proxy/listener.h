/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets on a loop: accept4, a pause when fds run out, the original destination. */
#ifndef MESHLET_PROXY_LISTENER_H
#define MESHLET_PROXY_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

/*
 * Each worker thread has its own loop and its own listening sockets, bound to the same
 * address with SO_REUSEPORT: the kernel spreads connections over them, and no state is
 * shared. Accepted sockets are non-blocking, close-on-exec and have TCP_NODELAY.
 *
 * When accept4 fails with EMFILE or ENFILE (or ENOBUFS, ENOMEM), the listener stops
 * watching its socket for LISTENER_PAUSE_MS rather than spinning on a connection it cannot
 * take: the connections wait in the backlog, open connections keep working, and accepting
 * resumes by itself. The connection limit is the relays' (struct relay_limit): a
 * connection over the limit is accepted and closed at once.
 */

#define LISTENER_PAUSE_MS 100
#define LISTENER_BACKLOG  4096

/* Flags of listener_socket. */
#define LISTENER_REUSEPORT 0x1u /* one socket per worker on the same address */
#define LISTENER_V6ONLY    0x2u /* an IPv6 socket takes IPv6 only (IPv4 has its own) */

struct listener;

/*
 * Called for each accepted socket fd, which the callback now owns (hand it to relay_new,
 * which closes it in every case, or close it). peer is the client's address.
 */
typedef void listener_accept_fn(struct listener *l, int fd, const struct sockaddr *peer,
                                socklen_t peer_len, void *arg);

/*
 * listener_resolve - "host:port", "[v6]:port" or ":port" (any address) as a numeric-port
 * address to listen on into *ss and *len. Returns 0, or -EINVAL.
 */
int listener_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/*
 * listener_socket - a non-blocking, close-on-exec TCP socket bound to addr and listening
 * (backlog 0 means LISTENER_BACKLOG), with SO_REUSEADDR, SO_REUSEPORT when flags has
 * LISTENER_REUSEPORT, and IPV6_V6ONLY on an IPv6 address with LISTENER_V6ONLY. Returns the
 * fd, or -errno (-EAFNOSUPPORT or -EADDRNOTAVAIL where the host has no IPv6).
 */
int listener_socket(const struct sockaddr *addr, socklen_t len, unsigned flags, int backlog);

/*
 * listener_new - accept on the listening socket fd from loop, calling fn for each
 * connection. Takes fd (closed on failure too). Returns NULL with -errno in *err.
 */
struct listener *listener_new(struct loop *loop, int fd, listener_accept_fn *fn, void *arg,
                              int *err);

/*
 * listener_free - stop accepting and close the socket (for a drain: connections already
 * accepted go on). Must run on the loop's thread; the memory goes after the loop's round,
 * so it may be called from the listener's own callback. NULL is allowed.
 */
void listener_free(struct listener *l);

/* listener_fd - the listening socket. */
int listener_fd(const struct listener *l);

/* listener_port - the port the socket is bound to (useful after binding port 0), or -errno. */
int listener_port(const struct listener *l);

/* Counters of a listener. */
struct listener_stats {
	uint64_t accepted; /* connections handed to the callback */
	uint64_t pauses;   /* times accepting paused because fds or memory ran out */
	bool paused;       /* paused now */
};
void listener_stats(const struct listener *l, struct listener_stats *out);

/*
 * listener_original_dst - the destination a client dialled before iptables REDIRECT sent
 * its connection to us: SO_ORIGINAL_DST for IPv4 (also on an IPv6 socket holding an
 * IPv4-mapped connection), IP6T_SO_ORIGINAL_DST for IPv6. Returns 0 and fills *out, or
 * -ENOENT when the connection was not redirected (no NAT entry), or another -errno.
 */
int listener_original_dst(int fd, struct sockaddr_storage *out);

#endif
