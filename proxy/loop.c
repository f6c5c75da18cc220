/* SPDX-License-Identifier: Apache-2.0 */
/* The epoll event loop: a watcher table indexed by fd, a timer heap, tasks, a buffer cache. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define LOOP_EVENTS 128 /* events fetched per epoll_wait */

struct loop_watcher {
	loop_io_fn *fn; /* NULL when the fd is not watched */
	void *arg;
	uint32_t events; /* the interest in the epoll set; 0 when not in it */
	uint32_t gen;
};

struct loop_heap_entry {
	uint64_t when;
	struct loop_timer *t;
};

struct loop_post {
	struct loop_post *next;
	void (*fn)(struct loop *loop, void *arg);
	void *arg;
};

struct loop_free_buf {
	struct loop_free_buf *next;
};

struct loop {
	int epfd;
	int evfd;
	atomic_bool stop;
	uint64_t now;
	uint64_t rounds;
	uint32_t gen;
	uint32_t nwatched;

	struct loop_watcher *w; /* indexed by fd */
	size_t nw;

	struct loop_heap_entry *heap;
	size_t nheap, capheap;

	struct loop_task *tasks, **tasks_tail;

	pthread_mutex_t posts_lock;
	struct loop_post *posts;

	struct loop_free_buf *bufs;
	uint32_t nbufs, bufs_out;

	struct epoll_event events[LOOP_EVENTS];
};

static uint64_t loop_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An event's key: the fd, and the generation of its watcher when it was registered. */
static uint64_t loop_key(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

static void loop_run_posts(struct loop *loop)
{
	struct loop_post *p, *next;

	pthread_mutex_lock(&loop->posts_lock);
	p = loop->posts;
	loop->posts = NULL;
	pthread_mutex_unlock(&loop->posts_lock);
	/* The list was built by pushing at the head: reverse it to keep the posting order. */
	struct loop_post *rev = NULL;
	for (; p != NULL; p = next) {
		next = p->next;
		p->next = rev;
		rev = p;
	}
	for (p = rev; p != NULL; p = next) {
		next = p->next;
		p->fn(loop, p->arg);
		free(p);
	}
}

static void loop_wakeup(struct loop *loop, int fd, uint32_t events, void *arg)
{
	uint64_t v;

	(void)events;
	(void)arg;
	/* Reading resets the counter; EAGAIN only means another round read it first. */
	(void)!read(fd, &v, sizeof(v));
	loop_run_posts(loop);
}

struct loop *loop_new(int *err)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	int rc;

	if (loop == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	loop->epfd = -1;
	loop->evfd = -1;
	loop->tasks_tail = &loop->tasks;
	atomic_init(&loop->stop, false);
	pthread_mutex_init(&loop->posts_lock, NULL);
	loop->now = loop_clock_ms();
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		rc = -errno;
		goto fail;
	}
	loop->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->evfd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = loop_watch(loop, loop->evfd, LOOP_READ, loop_wakeup, NULL);
	if (rc < 0)
		goto fail;
	return loop;
fail:
	loop_free(loop);
	*err = rc;
	return NULL;
}

static void loop_run_tasks(struct loop *loop)
{
	struct loop_task *t = loop->tasks, *next;

	/* Tasks queued from here on go to a fresh list, for the next round. */
	loop->tasks = NULL;
	loop->tasks_tail = &loop->tasks;
	for (; t != NULL; t = next) {
		next = t->next;
		t->next = NULL;
		t->queued = false;
		t->fn(loop, t);
	}
}

void loop_free(struct loop *loop)
{
	struct loop_free_buf *b, *bn;

	if (loop == NULL)
		return;
	/*
	 * Posted calls are control (closing a listener on drain): one posted just before the
	 * loop stopped still owes its work, so it runs here, then the tasks it queued.
	 */
	loop_run_posts(loop);
	while (loop->tasks != NULL)
		loop_run_tasks(loop);
	for (b = loop->bufs; b != NULL; b = bn) {
		bn = b->next;
		free(b);
	}
	if (loop->evfd >= 0) {
		loop_unwatch(loop, loop->evfd);
		close(loop->evfd);
	}
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->posts_lock);
	free(loop->w);
	free(loop->heap);
	free(loop);
}

void loop_stop(struct loop *loop)
{
	uint64_t one = 1;

	atomic_store(&loop->stop, true);
	(void)!write(loop->evfd, &one, sizeof(one));
}

int loop_post(struct loop *loop, void (*fn)(struct loop *loop, void *arg), void *arg)
{
	struct loop_post *p = malloc(sizeof(*p));
	uint64_t one = 1;

	if (p == NULL)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->posts_lock);
	p->next = loop->posts;
	loop->posts = p;
	pthread_mutex_unlock(&loop->posts_lock);
	(void)!write(loop->evfd, &one, sizeof(one));
	return 0;
}

static int loop_grow(struct loop *loop, int fd)
{
	size_t n = loop->nw ? loop->nw : 64;
	struct loop_watcher *w;

	while (n <= (size_t)fd)
		n *= 2;
	w = realloc(loop->w, n * sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	memset(w + loop->nw, 0, (n - loop->nw) * sizeof(*w));
	loop->w = w;
	loop->nw = n;
	return 0;
}

static int loop_ctl(struct loop *loop, int op, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = loop_key(fd, loop->w[fd].gen) };

	return epoll_ctl(loop->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int loop_watch(struct loop *loop, int fd, uint32_t events, loop_io_fn *fn, void *arg)
{
	struct loop_watcher *w;
	int rc;

	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= loop->nw && (rc = loop_grow(loop, fd)) < 0)
		return rc;
	w = &loop->w[fd];
	if (w->fn != NULL)
		return -EEXIST;
	w->gen = ++loop->gen;
	w->events = 0;
	if (events != 0) {
		rc = loop_ctl(loop, EPOLL_CTL_ADD, fd, events);
		if (rc < 0)
			return rc;
		w->events = events;
	}
	w->fn = fn;
	w->arg = arg;
	loop->nwatched++;
	return 0;
}

int loop_set_events(struct loop *loop, int fd, uint32_t events)
{
	struct loop_watcher *w;
	int rc;

	if (fd < 0 || (size_t)fd >= loop->nw || loop->w[fd].fn == NULL)
		return -ENOENT;
	w = &loop->w[fd];
	if (w->events == events)
		return 0;
	if (events == 0)
		rc = loop_ctl(loop, EPOLL_CTL_DEL, fd, 0);
	else
		rc = loop_ctl(loop, w->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, events);
	if (rc < 0)
		return rc;
	w->events = events;
	return 0;
}

void loop_unwatch(struct loop *loop, int fd)
{
	struct loop_watcher *w;

	if (fd < 0 || (size_t)fd >= loop->nw || loop->w[fd].fn == NULL)
		return;
	w = &loop->w[fd];
	if (w->events != 0)
		(void)loop_ctl(loop, EPOLL_CTL_DEL, fd, 0);
	w->fn = NULL;
	w->arg = NULL;
	w->events = 0;
	/* A new generation: events already fetched for this fd no longer match. */
	w->gen = ++loop->gen;
	loop->nwatched--;
}

uint64_t loop_now(const struct loop *loop)
{
	return loop->now;
}

/* Timers: a binary min-heap on the deadline; each timer knows its slot. */

static void heap_place(struct loop *loop, size_t i, struct loop_heap_entry e)
{
	loop->heap[i] = e;
	e.t->slot = (uint32_t)i + 1;
}

static void heap_up(struct loop *loop, size_t i)
{
	struct loop_heap_entry e = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (loop->heap[parent].when <= e.when)
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, e);
}

static void heap_down(struct loop *loop, size_t i)
{
	struct loop_heap_entry e = loop->heap[i];
	size_t n = loop->nheap;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && loop->heap[c + 1].when < loop->heap[c].when)
			c++;
		if (e.when <= loop->heap[c].when)
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, e);
}

static void heap_remove(struct loop *loop, size_t i)
{
	struct loop_heap_entry last = loop->heap[--loop->nheap];

	loop->heap[i].t->slot = 0;
	if (i == loop->nheap)
		return;
	heap_place(loop, i, last);
	if (i > 0 && loop->heap[(i - 1) / 2].when > last.when)
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

void loop_timer_init(struct loop_timer *t, void (*fn)(struct loop *loop, struct loop_timer *t))
{
	t->slot = 0;
	t->fn = fn;
}

int loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t ms)
{
	uint64_t when = loop->now + (ms > 0 ? ms : 1);

	if (t->slot != 0) {
		size_t i = t->slot - 1;
		uint64_t old = loop->heap[i].when;

		loop->heap[i].when = when;
		if (when < old)
			heap_up(loop, i);
		else
			heap_down(loop, i);
		return 0;
	}
	if (loop->nheap == loop->capheap) {
		size_t cap = loop->capheap ? loop->capheap * 2 : 64;
		struct loop_heap_entry *h = realloc(loop->heap, cap * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		loop->heap = h;
		loop->capheap = cap;
	}
	loop->heap[loop->nheap] = (struct loop_heap_entry){ .when = when, .t = t };
	heap_up(loop, loop->nheap++);
	return 0;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
	if (t->slot != 0)
		heap_remove(loop, t->slot - 1);
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->slot != 0;
}

static void loop_run_timers(struct loop *loop)
{
	/* A timer re-armed by its callback is due at now + 1 at the earliest: this ends. */
	while (loop->nheap > 0 && loop->heap[0].when <= loop->now) {
		struct loop_timer *t = loop->heap[0].t;

		heap_remove(loop, 0);
		t->fn(loop, t);
	}
}

void loop_queue(struct loop *loop, struct loop_task *t,
                void (*fn)(struct loop *loop, struct loop_task *t))
{
	t->fn = fn;
	if (t->queued)
		return;
	t->queued = true;
	t->next = NULL;
	*loop->tasks_tail = t;
	loop->tasks_tail = &t->next;
}

void *loop_buf_get(struct loop *loop)
{
	struct loop_free_buf *b = loop->bufs;

	if (b != NULL) {
		loop->bufs = b->next;
		loop->nbufs--;
	} else {
		b = malloc(LOOP_BUF_SIZE);
		if (b == NULL)
			return NULL;
	}
	loop->bufs_out++;
	return b;
}

void loop_buf_put(struct loop *loop, void *buf)
{
	struct loop_free_buf *b = buf;

	if (b == NULL)
		return;
	loop->bufs_out--;
	if (loop->nbufs >= LOOP_BUF_CACHE) {
		free(b);
		return;
	}
	b->next = loop->bufs;
	loop->bufs = b;
	loop->nbufs++;
}

static void loop_dispatch(struct loop *loop, const struct epoll_event *ev)
{
	int fd = (int)(uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	struct loop_watcher *w;

	/*
	 * Read the entry afresh for each event: an earlier callback of this round may have
	 * unwatched this fd, or closed it and watched a new socket with the same number.
	 */
	if ((size_t)fd >= loop->nw)
		return;
	w = &loop->w[fd];
	if (w->fn == NULL || w->gen != gen)
		return;
	w->fn(loop, fd, ev->events, w->arg);
}

int loop_run(struct loop *loop)
{
	while (!atomic_load_explicit(&loop->stop, memory_order_acquire)) {
		int timeout = -1, n;

		if (loop->tasks != NULL) {
			timeout = 0;
		} else if (loop->nheap > 0) {
			uint64_t when = loop->heap[0].when;

			timeout = when <= loop->now              ? 0
			          : when - loop->now > INT32_MAX ? INT32_MAX
			                                         : (int)(when - loop->now);
		}
		n = epoll_wait(loop->epfd, loop->events, LOOP_EVENTS, timeout);
		loop->rounds++;
		if (n < 0 && errno != EINTR)
			return -errno;
		loop->now = loop_clock_ms();
		for (int i = 0; i < n; i++)
			loop_dispatch(loop, &loop->events[i]);
		loop_run_timers(loop);
		loop_run_tasks(loop);
	}
	/* Stopped: a later loop_run runs again until the next loop_stop. */
	atomic_store(&loop->stop, false);
	return 0;
}

void loop_stats(const struct loop *loop, struct loop_stats *out)
{
	out->rounds = loop->rounds;
	out->watchers = loop->nwatched - 1; /* not the loop's own eventfd */
	out->timers = (uint32_t)loop->nheap;
	out->bufs_out = loop->bufs_out;
	out->bufs_cache = loop->nbufs;
}
