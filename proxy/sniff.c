/* SPDX-License-Identifier: Apache-2.0 */
/* Holding an accepted connection until its first bytes say what it is. */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sniff.h"

#define SNIFF_PREFIX "meshlet/"

/* The peek goes into a loop buffer: it must hold a whole record. */
_Static_assert(LOOP_BUF_SIZE >= HELLO_MAX, "LOOP_BUF_SIZE must hold a whole TLS record");

void sniff_cancel(struct sniff *s)
{
	int one = 1;

	/* Whoever takes the socket reads it byte by byte again. */
	if (s->seen > 0)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	loop_timer_stop(s->loop, &s->timer);
	loop_unwatch(s->loop, s->fd);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (s->list != NULL && *s->list == s)
		*s->list = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->list = NULL;
}

static void sniff_finish(struct sniff *s, enum hello_verdict v)
{
	sniff_cancel(s);
	s->done(s, v);
}

#define SNIFF_WATCH  (LOOP_READ | EPOLLRDHUP)
#define SNIFF_END    (EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define SNIFF_REPEEK 10 /* ms: a wake without new bytes and without an end: look again then */

/* The deadline that applies now: the hello's once a byte is in, else the first byte's. */
static uint64_t sniff_deadline(const struct sniff *s)
{
	return s->since + (s->seen > 0 ? s->hello_ms : s->wait_ms);
}

/* Arms the timer for the deadline, or for ms sooner. */
static void sniff_arm(struct sniff *s, uint64_t ms)
{
	uint64_t now = loop_now(s->loop), end = sniff_deadline(s);

	if (end <= now) {
		sniff_finish(s, HELLO_OTHER);
		return;
	}
	if (ms == 0 || ms > end - now)
		ms = end - now;
	if (loop_timer_set(s->loop, &s->timer, ms) < 0)
		sniff_finish(s, HELLO_OTHER);
}

/*
 * Peeks at what is in; decides, or waits for the rest of the record. events: what woke
 * us (0: a timer, or the start).
 */
static void sniff_look(struct sniff *s, uint32_t events)
{
	uint8_t *buf = loop_buf_get(s->loop);
	enum hello_verdict v = HELLO_MORE;
	ssize_t n;
	int want = 5;

	if (buf == NULL) {
		sniff_finish(s, HELLO_OTHER);
		return;
	}
	n = recv(s->fd, buf, HELLO_MAX, MSG_PEEK);
	if (n > 0 && (size_t)n != s->seen) {
		v = hello_classify(buf, (size_t)n, SNIFF_PREFIX);
		if (n >= 5)
			want = 5 + (buf[3] << 8 | buf[4]);
	}
	loop_buf_put(s->loop, buf);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	/* The end, or an error: the client's taker sees which. */
	if (n <= 0 || v != HELLO_MORE) {
		sniff_finish(s, n <= 0 ? HELLO_OTHER : v);
		return;
	}
	if ((size_t)n == s->seen) {
		/* No new byte: the client ended in the middle of a hello, or the socket woke
		 * below SO_RCVLOWAT (the kernel may, under memory pressure): stop watching it and
		 * look again in a moment, so that the loop never spins on it. */
		if (events & SNIFF_END) {
			sniff_finish(s, HELLO_OTHER);
			return;
		}
		if (events != 0) {
			(void)loop_set_events(s->loop, s->fd, 0);
			s->paused = true;
			sniff_arm(s, SNIFF_REPEEK);
		}
		return;
	}
	s->seen = (uint32_t)n;
	/* Wake when the whole record is in (its header says how long it is), or at the end. */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want));
	sniff_arm(s, 0);
}

static void sniff_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	sniff_look(arg, events);
}

/* A deadline (no first byte in time, no whole hello in time), or a look again. */
static void sniff_timeout(struct loop *loop, struct loop_timer *t)
{
	struct sniff *s = container_of(t, struct sniff, timer);

	if (s->paused && loop_now(loop) < sniff_deadline(s)) {
		s->paused = false;
		if (loop_set_events(loop, s->fd, SNIFF_WATCH) < 0) {
			sniff_finish(s, HELLO_OTHER);
			return;
		}
		sniff_arm(s, 0);
		return; /* the loop reports the socket if it is readable */
	}
	sniff_finish(s, HELLO_OTHER);
}

int sniff_start(struct sniff *s, struct sniff **list, struct loop *loop, int fd, uint32_t wait_ms,
                uint32_t hello_ms, sniff_done_fn *done)
{
	int rc;

	*s = (struct sniff){ .loop = loop,
		             .fd = fd,
		             .done = done,
		             .wait_ms = wait_ms > 0 ? wait_ms : 1,
		             .hello_ms = hello_ms > wait_ms ? hello_ms : wait_ms,
		             .since = loop_now(loop) };
	loop_timer_init(&s->timer, sniff_timeout);
	rc = loop_watch(loop, fd, SNIFF_WATCH, sniff_io, s);
	if (rc < 0)
		return rc;
	rc = loop_timer_set(loop, &s->timer, s->wait_ms);
	if (rc < 0) {
		loop_unwatch(loop, fd);
		return rc;
	}
	s->list = list;
	s->next = *list;
	if (*list != NULL)
		(*list)->prev = s;
	*list = s;
	/* The client's first bytes are often in before the accept: no round of waiting. */
	sniff_look(s, 0);
	return 0;
}
