/* SPDX-License-Identifier: Apache-2.0 */
/* Holding an accepted connection until its first bytes say what it is. */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sniff.h"

#define SNIFF_PREFIX "meshlet/"

#define sniff_of_timer(t) ((struct sniff *)(void *)((char *)(t)-offsetof(struct sniff, timer)))

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

/* Peeks at what is in; decides, or waits for the rest of the record. */
static void sniff_look(struct sniff *s)
{
	uint8_t *buf = loop_buf_get(s->loop);
	enum hello_verdict v = HELLO_OTHER;
	uint64_t now, end;
	ssize_t n;
	int want = 5;

	if (buf == NULL) {
		sniff_finish(s, HELLO_OTHER);
		return;
	}
	n = recv(s->fd, buf, HELLO_MAX, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		loop_buf_put(s->loop, buf);
		return;
	}
	if (n > 0 && (size_t)n != s->seen) {
		v = hello_classify(buf, (size_t)n, SNIFF_PREFIX);
		if (n >= 5)
			want = 5 + (buf[3] << 8 | buf[4]);
	}
	loop_buf_put(s->loop, buf);
	/*
	 * The end, an error, or no more bytes than last time although the socket woke (the
	 * client ended or failed in the middle of a hello): its taker sees how.
	 */
	if (n <= 0 || (size_t)n == s->seen || v != HELLO_MORE) {
		s->seen = n > 0 ? (uint32_t)n : s->seen;
		sniff_finish(s, v);
		return;
	}
	s->seen = (uint32_t)n;
	/* Wake when the whole record is in (its header says how long it is), or at the end. */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want));
	now = loop_now(s->loop);
	end = s->since + s->hello_ms;
	if (loop_timer_set(s->loop, &s->timer, end > now ? end - now : 1) < 0)
		sniff_finish(s, HELLO_OTHER);
}

static void sniff_io(struct loop *loop, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	sniff_look(arg);
}

/* No first byte in time (a client that waits for the server), or no whole hello. */
static void sniff_timeout(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	sniff_finish(sniff_of_timer(t), HELLO_OTHER);
}

int sniff_start(struct sniff *s, struct sniff **list, struct loop *loop, int fd, uint32_t wait_ms,
                uint32_t hello_ms, sniff_done_fn *done)
{
	int rc;

	*s = (struct sniff){
		.loop = loop, .fd = fd, .done = done, .hello_ms = hello_ms, .since = loop_now(loop)
	};
	loop_timer_init(&s->timer, sniff_timeout);
	rc = loop_watch(loop, fd, LOOP_READ, sniff_io, s);
	if (rc < 0)
		return rc;
	rc = loop_timer_set(loop, &s->timer, wait_ms > 0 ? wait_ms : 1);
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
	sniff_look(s);
	return 0;
}
