/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/loop.c: watchers, stale events, interest 0, timers, tasks, threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/loop.h"

static struct loop *new_loop(void)
{
	int err = 0;
	struct loop *loop = loop_new(&err);

	if (loop == NULL)
		fail_msg("loop_new: %s", strerror(-err));
	return loop;
}

/* A watchdog: stops the loop after ms, so that a broken test fails instead of hanging. */
struct watchdog {
	struct loop_timer t;
	bool fired;
};

static void watchdog_fire(struct loop *loop, struct loop_timer *t)
{
	struct watchdog *w = (struct watchdog *)t;

	w->fired = true;
	loop_stop(loop);
}

static void watchdog_arm(struct loop *loop, struct watchdog *w, uint64_t ms)
{
	w->fired = false;
	loop_timer_init(&w->t, watchdog_fire);
	assert_int_equal(loop_timer_set(loop, &w->t, ms), 0);
}

/* Watchers */

struct rec {
	int calls;
	int fd;
	uint32_t events;
	char data[16];
};

static void on_readable(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct rec *r = arg;
	ssize_t n;

	r->calls++;
	r->fd = fd;
	r->events = events;
	n = read(fd, r->data, sizeof(r->data) - 1);
	if (n > 0)
		r->data[n] = '\0';
	loop_stop(loop);
}

static void test_watch(void **state)
{
	struct loop *loop = new_loop();
	struct watchdog wd;
	struct rec rec = { 0 };
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(loop_watch(loop, sv[0], LOOP_READ, on_readable, &rec), 0);
	assert_int_equal(loop_watch(loop, sv[0], LOOP_READ, on_readable, &rec), -EEXIST);
	assert_int_equal(loop_watch(loop, -1, LOOP_READ, on_readable, &rec), -EBADF);
	assert_int_equal(loop_set_events(loop, sv[1], LOOP_READ), -ENOENT);
	assert_int_equal(write(sv[1], "hello", 5), 5);
	watchdog_arm(loop, &wd, 2000);
	assert_int_equal(loop_run(loop), 0);
	assert_false(wd.fired);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.fd, sv[0]);
	assert_true(rec.events & LOOP_READ);
	assert_string_equal(rec.data, "hello");

	/* Interest in writing only: the socket is writable at once. */
	assert_int_equal(loop_set_events(loop, sv[0], LOOP_WRITE), 0);
	rec.calls = 0;
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(rec.calls, 1);
	assert_true(rec.events & LOOP_WRITE);
	loop_timer_stop(loop, &wd.t);
	loop_unwatch(loop, sv[0]);
	loop_unwatch(loop, sv[0]); /* twice is harmless */
	close(sv[0]);
	close(sv[1]);
	loop_free(loop);
}

/* A socket that is hung up but wanted by nobody must not make the loop spin. */
static void on_hup(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct rec *r = arg;

	r->calls++;
	r->events = events;
	assert_int_equal(loop_set_events(loop, fd, 0), 0);
}

static void test_interest_zero(void **state)
{
	struct loop *loop = new_loop();
	struct loop_stats st0, st1;
	struct watchdog wd;
	struct rec rec = { 0 };
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	close(sv[1]); /* sv[0] is now readable (EOF) and hung up, for ever */
	assert_int_equal(loop_watch(loop, sv[0], LOOP_READ, on_hup, &rec), 0);
	loop_stats(loop, &st0);
	watchdog_arm(loop, &wd, 100);
	assert_int_equal(loop_run(loop), 0);
	assert_true(wd.fired);
	loop_stats(loop, &st1);
	assert_int_equal(rec.calls, 1);
	assert_true(rec.events & EPOLLHUP);
	/* One round for the event, one for the watchdog (and maybe a spurious wakeup). */
	if (st1.rounds - st0.rounds > 4)
		fail_msg("the loop spun: %llu rounds in 100 ms",
		         (unsigned long long)(st1.rounds - st0.rounds));
	/* Back in the set, it is reported again. */
	assert_int_equal(loop_set_events(loop, sv[0], LOOP_READ), 0);
	watchdog_arm(loop, &wd, 100);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(st1.watchers, 1);
	loop_unwatch(loop, sv[0]);
	close(sv[0]);
	loop_free(loop);
}

/*
 * Two sockets are readable in the same round. Whichever callback runs first closes the
 * other socket and watches a new one on the same fd number: the old socket's event, already
 * fetched, must not reach the new watcher.
 */
struct stale {
	int a[2], b[2], c[2];
	int first_calls, reused_calls, new_fd;
};

static void on_reused(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct stale *s = arg;

	(void)loop;
	(void)fd;
	(void)events;
	s->reused_calls++;
}

static void on_first(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct stale *s = arg;
	int victim = fd == s->a[0] ? s->b[0] : s->a[0];
	char c;

	(void)events;
	assert_int_equal(read(fd, &c, 1), 1);
	s->first_calls++;
	if (s->first_calls > 1)
		return;
	loop_unwatch(loop, victim);
	close(victim);
	/* The lowest free number is the one just closed. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s->c), 0);
	s->new_fd = s->c[0] == victim ? s->c[0] : s->c[1];
	assert_int_equal(s->new_fd, victim);
	/* Interested in writing, which it can: but not in this round's stale event. */
	assert_int_equal(loop_watch(loop, s->new_fd, 0, on_reused, s), 0);
	if (victim == s->a[0])
		s->a[0] = -1;
	else
		s->b[0] = -1;
}

static void test_stale_event(void **state)
{
	struct loop *loop = new_loop();
	struct watchdog wd;
	struct stale s = { .new_fd = -1 };

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s.a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s.b), 0);
	assert_int_equal(loop_watch(loop, s.a[0], LOOP_READ, on_first, &s), 0);
	assert_int_equal(loop_watch(loop, s.b[0], LOOP_READ, on_first, &s), 0);
	assert_int_equal(write(s.a[1], "x", 1), 1);
	assert_int_equal(write(s.b[1], "x", 1), 1);
	watchdog_arm(loop, &wd, 50);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(s.first_calls, 1);
	assert_int_equal(s.reused_calls, 0);
	for (int *fd = &s.a[0]; fd <= &s.c[1]; fd++) {
		if (*fd >= 0) {
			loop_unwatch(loop, *fd);
			close(*fd);
		}
	}
	loop_free(loop);
}

/* Timers */

#define NTIMERS 500

struct ttimer {
	struct loop_timer t;
	uint64_t due;
	int fired;
	bool stopped;
};

static struct {
	uint64_t last_due;
	int fired;
	bool order_ok;
} tt;

static void ttimer_fire(struct loop *loop, struct loop_timer *t)
{
	struct ttimer *x = (struct ttimer *)t;

	x->fired++;
	tt.fired++;
	if (x->due < tt.last_due || loop_now(loop) < x->due)
		tt.order_ok = false;
	tt.last_due = x->due;
}

static void test_timers(void **state)
{
	struct loop *loop = new_loop();
	struct ttimer *ts = calloc(NTIMERS, sizeof(*ts));
	struct loop_stats st;
	struct watchdog wd;
	int expected = 0;

	(void)state;
	assert_non_null(ts);
	srand(7);
	tt.last_due = 0;
	tt.fired = 0;
	tt.order_ok = true;
	for (int i = 0; i < NTIMERS; i++) {
		uint64_t ms = (uint64_t)(rand() % 200);

		loop_timer_init(&ts[i].t, ttimer_fire);
		assert_false(loop_timer_armed(&ts[i].t));
		assert_int_equal(loop_timer_set(loop, &ts[i].t, ms), 0);
		ts[i].due = loop_now(loop) + (ms ? ms : 1);
	}
	/* Stop a third, re-arm a third (earlier or later). */
	for (int i = 0; i < NTIMERS; i++) {
		if (i % 3 == 0) {
			loop_timer_stop(loop, &ts[i].t);
			loop_timer_stop(loop, &ts[i].t);
			ts[i].stopped = true;
		} else if (i % 3 == 1) {
			uint64_t ms = (uint64_t)(rand() % 200) + 1;

			assert_int_equal(loop_timer_set(loop, &ts[i].t, ms), 0);
			ts[i].due = loop_now(loop) + ms;
		}
		if (!ts[i].stopped)
			expected++;
	}
	loop_stats(loop, &st);
	assert_int_equal(st.timers, expected);
	watchdog_arm(loop, &wd, 400);
	assert_int_equal(loop_run(loop), 0);
	assert_true(wd.fired);
	assert_true(tt.order_ok);
	assert_int_equal(tt.fired, expected);
	for (int i = 0; i < NTIMERS; i++) {
		assert_int_equal(ts[i].fired, ts[i].stopped ? 0 : 1);
		assert_false(loop_timer_armed(&ts[i].t));
	}
	loop_stats(loop, &st);
	assert_int_equal(st.timers, 0);
	free(ts);
	loop_free(loop);
}

/* A timer that re-arms itself from its callback fires once per round at most. */
struct rearm {
	struct loop_timer t;
	int n;
};

static void rearm_fire(struct loop *loop, struct loop_timer *t)
{
	struct rearm *r = (struct rearm *)t;

	if (++r->n < 5)
		assert_int_equal(loop_timer_set(loop, t, 0), 0);
	else
		loop_stop(loop);
}

static void test_timer_rearm(void **state)
{
	struct loop *loop = new_loop();
	struct rearm r = { .n = 0 };
	struct watchdog wd;

	(void)state;
	loop_timer_init(&r.t, rearm_fire);
	assert_int_equal(loop_timer_set(loop, &r.t, 0), 0);
	watchdog_arm(loop, &wd, 2000);
	assert_int_equal(loop_run(loop), 0);
	assert_false(wd.fired);
	assert_int_equal(r.n, 5);
	loop_timer_stop(loop, &wd.t);
	loop_free(loop);
}

/* Tasks */

struct ttask {
	struct loop_task t;
	int *log;
	int *nlog;
	int id;
	int requeue;
};

static void ttask_run(struct loop *loop, struct loop_task *t)
{
	struct ttask *x = (struct ttask *)t;

	x->log[(*x->nlog)++] = x->id;
	if (x->requeue-- > 0)
		loop_queue(loop, t, ttask_run);
}

static void ttask_other(struct loop *loop, struct loop_task *t)
{
	struct ttask *x = (struct ttask *)t;

	(void)loop;
	x->log[(*x->nlog)++] = 100 + x->id;
}

static void test_tasks(void **state)
{
	struct loop *loop = new_loop();
	int log[16], nlog = 0;
	struct ttask a = { .log = log, .nlog = &nlog, .id = 1, .requeue = 2 };
	struct ttask b = { .log = log, .nlog = &nlog, .id = 2 };
	struct watchdog wd;
	struct loop_stats st0, st1;

	(void)state;
	loop_queue(loop, &a.t, ttask_run);
	loop_queue(loop, &b.t, ttask_run);
	loop_queue(loop, &b.t, ttask_other); /* queued already: only the function changes */
	loop_stats(loop, &st0);
	watchdog_arm(loop, &wd, 30);
	assert_int_equal(loop_run(loop), 0);
	loop_stats(loop, &st1);
	/* a, b (as other), then a twice more in the next rounds, which did not wait. */
	assert_int_equal(nlog, 4);
	assert_int_equal(log[0], 1);
	assert_int_equal(log[1], 102);
	assert_int_equal(log[2], 1);
	assert_int_equal(log[3], 1);
	/* Freeing a loop runs what is still queued. */
	loop_queue(loop, &b.t, ttask_run);
	loop_free(loop);
	assert_int_equal(nlog, 5);
	assert_int_equal(log[4], 2);
}

/* Threads: loop_stop and loop_post from another thread */

struct posted {
	pthread_t thread;
	int runs;
};

static int thread_rc = -1;

static void *run_thread(void *arg)
{
	thread_rc = loop_run(arg);
	return NULL;
}

static void on_post(struct loop *loop, void *arg)
{
	struct posted *p = arg;

	(void)loop;
	p->thread = pthread_self();
	p->runs++;
}

static void test_threads(void **state)
{
	struct loop *loop = new_loop();
	struct posted p = { .runs = 0 };
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, run_thread, loop), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(loop_post(loop, on_post, &p), 0);
	usleep(50 * 1000);
	loop_stop(loop);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(thread_rc, 0);
	assert_int_equal(p.runs, 10);
	assert_true(pthread_equal(p.thread, th));
	/* Stopped before it runs: returns at once. */
	loop_stop(loop);
	assert_int_equal(loop_run(loop), 0);
	loop_free(loop);
}

/* A call posted just before the loop stopped is not lost: loop_free runs it. */
static void test_free_runs_late_posts(void **state)
{
	struct loop *loop = new_loop();
	struct posted p = { .runs = 0 };

	(void)state;
	assert_int_equal(loop_post(loop, on_post, &p), 0);
	assert_int_equal(loop_post(loop, on_post, &p), 0);
	loop_free(loop);
	assert_int_equal(p.runs, 2);
}

static void test_bufs(void **state)
{
	struct loop *loop = new_loop();
	void *b[LOOP_BUF_CACHE + 4];
	struct loop_stats st;

	(void)state;
	for (int i = 0; i < LOOP_BUF_CACHE + 4; i++) {
		b[i] = loop_buf_get(loop);
		assert_non_null(b[i]);
		memset(b[i], i, LOOP_BUF_SIZE);
	}
	loop_stats(loop, &st);
	assert_int_equal(st.bufs_out, LOOP_BUF_CACHE + 4);
	for (int i = 0; i < LOOP_BUF_CACHE + 4; i++)
		loop_buf_put(loop, b[i]);
	loop_buf_put(loop, NULL);
	loop_stats(loop, &st);
	assert_int_equal(st.bufs_out, 0);
	assert_int_equal(st.bufs_cache, LOOP_BUF_CACHE);
	/* Reuse comes from the cache. */
	b[0] = loop_buf_get(loop);
	loop_stats(loop, &st);
	assert_int_equal(st.bufs_cache, LOOP_BUF_CACHE - 1);
	loop_buf_put(loop, b[0]);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch),       cmocka_unit_test(test_interest_zero),
		cmocka_unit_test(test_stale_event), cmocka_unit_test(test_timers),
		cmocka_unit_test(test_timer_rearm), cmocka_unit_test(test_tasks),
		cmocka_unit_test(test_threads),     cmocka_unit_test(test_free_runs_late_posts),
		cmocka_unit_test(test_bufs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
