/* SPDX-License-Identifier: Apache-2.0 */
/* Idle tunnels (protocol 2) that a client proxy keeps to start later streams on. */
#ifndef MESHLET_PROXY_POOL_H
#define MESHLET_PROXY_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "loop.h"
#include "relay.h"

/*
 * A pool belongs to one loop (a worker) and is used on its thread only. It keeps tunnels
 * whose stream ended cleanly (relay_take_tunnel), by the address they go to and an owner
 * (the listener whose checks the peer passed: tunnels made for one listener are not used
 * for another, which may expect another SPIFFE ID). The most recently kept goes first.
 * While kept, a tunnel is watched: anything the peer sends (a close_notify, a reset) closes
 * it, and so does having been idle for the pool's idle time. It is handed out only when
 * made from the client context the caller uses now (a new identity or trust bundle makes
 * new tunnels), its certificates are good for a while yet, and its socket shows nothing
 * waiting (a peek, so that a peer that closed just now is not picked).
 */
struct pool;

/*
 * pool_new - a pool on loop of at most max idle tunnels, each kept until idle_ms after its
 * idle_since (relay.h) at most.
 */
struct pool *pool_new(struct loop *loop, size_t max, uint32_t idle_ms);

/* pool_free - close every tunnel and free p (NULL is allowed). On the loop's thread, or
 * once the loop has stopped. */
void pool_free(struct pool *p);

/*
 * pool_put - keep t (taken from a relay, not watched) for streams to addr made for owner.
 * The pool owns t: when it is full, or t cannot be watched, t is closed at once.
 */
void pool_put(struct pool *p, const struct sockaddr *addr, const void *owner,
              struct relay_tunnel *t);

/*
 * pool_take - an idle tunnel to addr for owner made from ctx, or NULL. The caller owns it
 * (relay_use_tunnel). Tunnels found unusable on the way are closed.
 */
struct relay_tunnel *pool_take(struct pool *p, const struct sockaddr *addr, const void *owner,
                               SSL_CTX *ctx);

/* pool_flush - close every idle tunnel (draining). */
void pool_flush(struct pool *p);

/* pool_size - how many tunnels p keeps now. */
size_t pool_size(const struct pool *p);

#endif
