/* SPDX-License-Identifier: Apache-2.0 */
/* One epoll event loop per worker thread: fd watchers, timers, after-round tasks, buffers. */
#ifndef MESHLET_PROXY_LOOP_H
#define MESHLET_PROXY_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

/*
 * A loop belongs to one thread: every function here except loop_stop and loop_post must be
 * called from the thread that runs loop_run (or before it starts). Nothing here blocks but
 * epoll_wait. A round of the loop is: wait for events, call the watchers' callbacks, call
 * the timers that are due, then run the tasks queued with loop_queue (deferred frees).
 *
 * Watchers are level-triggered and kept in a table indexed by fd. An fd whose interest is
 * 0 is taken out of the epoll set (so a hung-up socket that nobody wants to read or write
 * cannot make the loop spin) and put back when its interest becomes non-zero again. Each
 * registration has a generation number: an event that was fetched for an fd whose watcher
 * was removed, or replaced by a new one on a reused fd number, earlier in the same round is
 * dropped rather than given to the wrong owner.
 */

#define LOOP_READ  EPOLLIN
#define LOOP_WRITE EPOLLOUT
/* Callbacks may also see these, whatever interest was asked for. */
#define LOOP_ERROR (EPOLLERR | EPOLLHUP)

/*
 * The size of the buffers of loop_buf_get (a relay's buffer per direction, taken only while
 * bytes wait in it), and how many free ones a loop keeps for reuse. Build-time knobs. 64 KiB
 * moves four TLS records per system call: a bulk transfer through a proxy pair costs the
 * kernel per call and per wakeup far more than per byte (bench/proxy.sh, bulk).
 */
#ifndef LOOP_BUF_SIZE
#define LOOP_BUF_SIZE 65536
#endif
#ifndef LOOP_BUF_CACHE
#define LOOP_BUF_CACHE 8
#endif

struct loop;

/* Called with the epoll events (LOOP_READ, LOOP_WRITE, LOOP_ERROR bits) of fd. */
typedef void loop_io_fn(struct loop *loop, int fd, uint32_t events, void *arg);

/* The struct that member p (a timer, a task) lives in, from its callback. */
#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/*
 * A timer lives inside its owner's struct (no allocation per timer); the loop keeps a
 * binary min-heap of the armed ones: arming, re-arming and stopping are O(log n).
 */
struct loop_timer {
	uint32_t slot; /* 1 + index in the heap, 0 when not armed */
	void (*fn)(struct loop *loop, struct loop_timer *t);
};

/* A task, also inside its owner's struct: run once after the current round's events. */
struct loop_task {
	struct loop_task *next;
	void (*fn)(struct loop *loop, struct loop_task *t);
	bool queued;
};

/*
 * loop_new - a loop with its epoll instance and an eventfd for loop_stop and loop_post.
 * Returns NULL with -errno in *err on failure. Free it with loop_free.
 */
struct loop *loop_new(int *err);

/*
 * loop_free - release the loop: runs the posted calls that never ran, then the tasks still
 * queued. Watchers' fds are not closed (their owners close them); the loop
 * must not be running. NULL is allowed.
 */
void loop_free(struct loop *loop);

/*
 * loop_run - run rounds until loop_stop. Returns 0 once stopped, or -errno when
 * epoll_wait fails for a reason other than EINTR.
 */
int loop_run(struct loop *loop);

/*
 * loop_stop - make loop_run return after the current round. Any thread may call it (it
 * writes the loop's eventfd); calling it before loop_run makes loop_run return at once.
 */
void loop_stop(struct loop *loop);

/*
 * loop_post - have fn(loop, arg) called on the loop's thread, in a coming round. Any thread
 * may call it; for control (drain, reload), not for the data path: each call allocates.
 * Returns 0 or -ENOMEM.
 */
int loop_post(struct loop *loop, void (*fn)(struct loop *loop, void *arg), void *arg);

/*
 * loop_watch - start watching fd for events (LOOP_READ, LOOP_WRITE or 0), calling
 * fn(loop, fd, events, arg) when some occur. Returns 0, -EEXIST when fd is watched
 * already, -EBADF for a negative fd, or -errno from epoll_ctl or from growing the table.
 */
int loop_watch(struct loop *loop, int fd, uint32_t events, loop_io_fn *fn, void *arg);

/*
 * loop_set_events - change the interest of a watched fd; a no-op (no system call) when it
 * does not change. 0 takes the fd out of the epoll set until the interest is non-zero
 * again. Returns 0, -ENOENT when fd is not watched, or -errno from epoll_ctl.
 */
int loop_set_events(struct loop *loop, int fd, uint32_t events);

/*
 * loop_unwatch - stop watching fd; call it before closing fd. Pending events of fd in the
 * current round are dropped. Unwatched fds are ignored.
 */
void loop_unwatch(struct loop *loop, int fd);

/* loop_now - CLOCK_MONOTONIC in milliseconds, read once per round (cheap). */
uint64_t loop_now(const struct loop *loop);

/* loop_timer_init - set t's callback; t is not armed. */
void loop_timer_init(struct loop_timer *t, void (*fn)(struct loop *loop, struct loop_timer *t));

/*
 * loop_timer_set - arm (or re-arm) t to fire once, ms milliseconds after loop_now (at
 * least 1). Returns 0, or -ENOMEM when the heap cannot grow (t is then not armed).
 */
int loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t ms);

/* loop_timer_stop - disarm t; a no-op when it is not armed. */
void loop_timer_stop(struct loop *loop, struct loop_timer *t);

/* loop_timer_armed - whether t is armed. */
bool loop_timer_armed(const struct loop_timer *t);

/*
 * loop_queue - run fn(loop, t) once, after the events and timers of the current round
 * (before the loop waits again); the owner may free t's container in fn. Queueing a task
 * that is queued already only changes its fn. A task queued while tasks run goes to the
 * next round, which then does not wait.
 */
void loop_queue(struct loop *loop, struct loop_task *t,
                void (*fn)(struct loop *loop, struct loop_task *t));

/*
 * loop_buf_get, loop_buf_put - a buffer of LOOP_BUF_SIZE bytes, from the loop's cache of
 * free ones or malloc (NULL when out of memory), and its return: the cache keeps at most
 * LOOP_BUF_CACHE, the rest is freed. put accepts NULL.
 */
void *loop_buf_get(struct loop *loop);
void loop_buf_put(struct loop *loop, void *buf);

/* Counters of a loop, for tests and metrics. */
struct loop_stats {
	uint64_t rounds;     /* epoll_wait calls */
	uint32_t watchers;   /* fds watched */
	uint32_t timers;     /* timers armed */
	uint32_t bufs_out;   /* buffers given out and not returned */
	uint32_t bufs_cache; /* free buffers kept */
};
void loop_stats(const struct loop *loop, struct loop_stats *out);

#endif
