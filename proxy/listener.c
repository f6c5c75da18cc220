/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets: accept4 in batches, a timed pause on EMFILE, SO_ORIGINAL_DST. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "meshlet/log.h"
#include "listener.h"

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* Connections accepted per wakeup, so that one busy listener does not starve the relays. */
#define LISTENER_BATCH 64

/* A pause is logged at most this often (ms), with how many pauses it stands for. */
#define LISTENER_LOG_EVERY 10000

struct listener {
	struct loop *loop;
	int fd;
	listener_accept_fn *fn;
	void *arg;
	struct loop_timer pause;
	struct loop_task free_task;
	uint64_t accepted, pauses, logged_pauses, last_log;
	bool closed;
};

int listener_resolve(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(text, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
		                  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	size_t hlen;
	int rc;

	if (colon == NULL)
		return -EINVAL;
	hlen = (size_t)(colon - text);
	if (hlen >= 2 && text[0] == '[' && colon[-1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(hlen - 2), text + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hlen, text);
	rc = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai);
	if (rc != 0)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int listener_socket(const struct sockaddr *addr, socklen_t len, unsigned flags, int backlog)
{
	int fd, one = 1, rc;

	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if ((flags & LISTENER_REUSEPORT) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if ((flags & LISTENER_V6ONLY) && addr->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	/* Accepted sockets inherit it: no setsockopt per connection. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, addr, len) < 0)
		goto fail;
	if (listen(fd, backlog > 0 ? backlog : LISTENER_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

static void listener_pause(struct listener *l, int err)
{
	uint64_t now = loop_now(l->loop);

	(void)loop_set_events(l->loop, l->fd, 0);
	l->pauses++;
	if (l->last_log == 0 || now - l->last_log >= LISTENER_LOG_EVERY) {
		errno = -err;
		log_warn("cannot accept connections: pausing",
		         LOG_INT("pause_ms", LISTENER_PAUSE_MS),
		         LOG_INT("pauses", l->pauses - l->logged_pauses));
		l->logged_pauses = l->pauses;
		l->last_log = now;
	}
	/* Without the timer nothing would resume; the next event retries if it fails. */
	if (loop_timer_set(l->loop, &l->pause, LISTENER_PAUSE_MS) < 0)
		(void)loop_set_events(l->loop, l->fd, LOOP_READ);
}

static void listener_resume(struct loop *loop, struct loop_timer *t)
{
	struct listener *l = container_of(t, struct listener, pause);

	(void)loop_set_events(loop, l->fd, LOOP_READ);
}

static void listener_accept(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct listener *l = arg;

	(void)loop;
	(void)events;
	for (int i = 0; i < LISTENER_BATCH && !l->closed; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			switch (errno) {
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listener_pause(l, -errno);
				return;
			case EAGAIN:
				return;
			default:
				/* ECONNABORTED, EPROTO, EINTR...: that connection, not ours. */
				continue;
			}
		}
		l->accepted++;
		l->fn(l, c, (struct sockaddr *)&ss, len, l->arg);
	}
}

struct listener *listener_new(struct loop *loop, int fd, listener_accept_fn *fn, void *arg,
                              int *err)
{
	struct listener *l = calloc(1, sizeof(*l));
	int rc;

	if (l == NULL) {
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	l->loop = loop;
	l->fd = fd;
	l->fn = fn;
	l->arg = arg;
	loop_timer_init(&l->pause, listener_resume);
	rc = loop_watch(loop, fd, LOOP_READ, listener_accept, l);
	if (rc < 0) {
		close(fd);
		free(l);
		*err = rc;
		return NULL;
	}
	return l;
}

static void listener_free_task(struct loop *loop, struct loop_task *t)
{
	(void)loop;
	free(container_of(t, struct listener, free_task));
}

void listener_free(struct listener *l)
{
	if (l == NULL || l->closed)
		return;
	l->closed = true;
	loop_timer_stop(l->loop, &l->pause);
	loop_unwatch(l->loop, l->fd);
	close(l->fd);
	l->fd = -1;
	loop_queue(l->loop, &l->free_task, listener_free_task);
}

int listener_fd(const struct listener *l)
{
	return l->fd;
}

int listener_port(const struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}

void listener_stats(const struct listener *l, struct listener_stats *out)
{
	out->accepted = l->accepted;
	out->pauses = l->pauses;
	out->paused = loop_timer_armed(&l->pause);
}

int listener_original_dst(int fd, struct sockaddr_storage *out)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	bool v4;

	memset(out, 0, sizeof(*out));
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
		return -errno;
	if (local.ss_family == AF_INET)
		v4 = true;
	else if (local.ss_family == AF_INET6)
		v4 = IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr);
	else
		return -EAFNOSUPPORT;
	if (v4) {
		len = sizeof(struct sockaddr_in);
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len) < 0)
			return -errno;
	} else {
		len = sizeof(struct sockaddr_in6);
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len) < 0)
			return -errno;
	}
	return 0;
}
