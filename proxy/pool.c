/* SPDX-License-Identifier: Apache-2.0 */
/* Idle tunnels (protocol 2) kept by a worker, by destination, for later streams. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "relay_impl.h"

#define POOL_BUCKETS 64

struct pool_entry {
	struct pool_entry *next, *prev; /* in its bucket, most recent first */
	struct pool *pool;
	struct sockaddr_storage addr;
	const void *owner;
	struct relay_tunnel *t;
	struct loop_timer timer;
};

struct pool {
	struct loop *loop;
	size_t n, max;
	uint32_t idle_ms;
	struct pool_entry *buckets[POOL_BUCKETS];
};

static socklen_t addr_len(const struct sockaddr *a)
{
	return a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* The bytes that name a destination: address and port (and scope), not padding or flows. */
static size_t addr_key(const struct sockaddr *a, unsigned char key[24])
{
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;

		memcpy(key, &in6->sin6_addr, 16);
		memcpy(key + 16, &in6->sin6_port, 2);
		memcpy(key + 18, &in6->sin6_scope_id, 4);
		return 22;
	}
	memcpy(key, &((const struct sockaddr_in *)a)->sin_addr, 4);
	memcpy(key + 4, &((const struct sockaddr_in *)a)->sin_port, 2);
	return 6;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	unsigned char ka[24], kb[24];
	size_t n = addr_key(a, ka);

	return a->sa_family == b->sa_family && addr_key(b, kb) == n && memcmp(ka, kb, n) == 0;
}

static size_t bucket_of(const struct sockaddr *a, const void *owner)
{
	unsigned char key[24];
	size_t n = addr_key(a, key);
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ key[i]) * 16777619u;
	h ^= (uint32_t)((uintptr_t)owner >> 4);
	return ((h * 2654435761u) >> 16) % POOL_BUCKETS;
}

/* Out of the pool: unwatched, the timer stopped; the entry is freed, the tunnel kept. */
static struct relay_tunnel *entry_remove(struct pool_entry *e)
{
	struct pool *p = e->pool;
	struct relay_tunnel *t = e->t;

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		p->buckets[bucket_of((struct sockaddr *)&e->addr, e->owner)] = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	loop_timer_stop(p->loop, &e->timer);
	loop_unwatch(p->loop, t->fd);
	p->n--;
	free(e);
	return t;
}

static bool tunnel_quiet(const struct relay_tunnel *t);

/*
 * The peer said something while the tunnel was idle: a TLS message of its own (a session
 * ticket, which a server sends after the handshake) is taken; anything else (a close, a
 * reset, data) means it is over.
 */
static void pool_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct pool_entry *e = arg;

	(void)loop;
	(void)fd;
	(void)events;
	if (!tunnel_quiet(e->t))
		relay_tunnel_close(entry_remove(e));
}

static void pool_expire(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	relay_tunnel_close(entry_remove(container_of(t, struct pool_entry, timer)));
}

struct pool *pool_new(struct loop *loop, size_t max, uint32_t idle_ms)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->max = max;
	p->idle_ms = idle_ms;
	return p;
}

void pool_flush(struct pool *p)
{
	for (size_t i = 0; i < POOL_BUCKETS; i++)
		while (p->buckets[i] != NULL)
			relay_tunnel_close(entry_remove(p->buckets[i]));
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	pool_flush(p);
	free(p);
}

size_t pool_size(const struct pool *p)
{
	return p->n;
}

void pool_put(struct pool *p, const struct sockaddr *addr, const void *owner,
              struct relay_tunnel *t)
{
	struct pool_entry *e = NULL;
	size_t b = bucket_of(addr, owner);
	uint64_t idle;

	if (t == NULL)
		return;
	/* Idle since our end of the last stream went out, maybe a while ago (a slow reader). */
	idle = loop_now(p->loop) - t->idle_since;
	if (p->n >= p->max || idle >= p->idle_ms || (e = calloc(1, sizeof(*e))) == NULL) {
		relay_tunnel_close(t);
		return;
	}
	if (loop_watch(p->loop, t->fd, LOOP_READ, pool_io, e) < 0) {
		free(e);
		relay_tunnel_close(t);
		return;
	}
	e->pool = p;
	memcpy(&e->addr, addr, addr_len(addr));
	e->owner = owner;
	e->t = t;
	loop_timer_init(&e->timer, pool_expire);
	if (loop_timer_set(p->loop, &e->timer, p->idle_ms - idle) < 0) {
		loop_unwatch(p->loop, t->fd);
		free(e);
		relay_tunnel_close(t);
		return;
	}
	e->next = p->buckets[b];
	if (e->next != NULL)
		e->next->prev = e;
	p->buckets[b] = e;
	p->n++;
}

/*
 * Whether the tunnel is quiet: no byte of data, end or error waiting (the peer has not
 * closed). What came is read without taking data (SSL_peek): a session ticket is no data.
 */
static bool tunnel_quiet(const struct relay_tunnel *t)
{
	char c;
	int rc, e;

	if (!SSL_has_pending(t->ssl) && recv(t->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK))
		return true;
	if (!SSL_is_init_finished(t->ssl))
		return false;
	relay_tls_clear();
	rc = SSL_peek(t->ssl, &c, 1);
	e = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, rc);
	ERR_clear_error();
	relay_tls_release(t->ssl);
	return e == SSL_ERROR_WANT_READ;
}

struct relay_tunnel *pool_take(struct pool *p, const struct sockaddr *addr, const void *owner,
                               SSL_CTX *ctx)
{
	size_t b = bucket_of(addr, owner);
	struct pool_entry *e = p->buckets[b], *next;
	time_t now = time(NULL);

	for (; e != NULL; e = next) {
		struct relay_tunnel *t;

		next = e->next;
		if (e->owner != owner || !same_addr((struct sockaddr *)&e->addr, addr))
			continue;
		t = entry_remove(e);
		if (SSL_get_SSL_CTX(t->ssl) == ctx &&
		    t->not_after > now + RELAY_TUNNEL_CERT_MARGIN_S && tunnel_quiet(t))
			return t;
		relay_tunnel_close(t);
	}
	return NULL;
}
