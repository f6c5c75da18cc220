/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/sniff.c: holding accepted loopback connections until their first bytes decide. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "proxy/sniff.h"

/* ClientHellos made by OpenSSL at setup: ALPN "meshlet/1", "h2", and a big one. */
static struct {
	uint8_t meshlet[2048], h2[2048], big[HELLO_MAX];
	size_t meshlet_len, h2_len, big_len;
} hellos;

/* Whether done is running inside sniff_start (the bytes were in before it). */
static bool starting;

static uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One ClientHello record from an OpenSSL client offering the ALPN list alpn (wire format). */
static size_t make_hello(const uint8_t *alpn, size_t alpn_len, uint8_t *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	SSL *ssl;
	int n;

	assert_non_null(ctx);
	assert_non_null(rbio);
	assert_non_null(wbio);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	assert_int_equal(SSL_set_alpn_protos(ssl, alpn, (unsigned int)alpn_len), 0);
	assert_true(SSL_do_handshake(ssl) <= 0);
	assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
	n = BIO_read(wbio, out, (int)cap);
	assert_true(n > 0);
	/* The tests rely on it: one handshake record holding the whole ClientHello. */
	assert_int_equal(BIO_pending(wbio), 0);
	assert_int_equal(out[0], 22);
	assert_int_equal(5 + (out[3] << 8 | out[4]), n);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

static int setup(void **state)
{
	uint8_t alpn[8192];
	size_t len = 0;

	(void)state;
	hellos.meshlet_len = make_hello((const uint8_t *)"\x09meshlet/1", 10, hellos.meshlet,
	                                sizeof(hellos.meshlet));
	hellos.h2_len = make_hello((const uint8_t *)"\x02h2", 3, hellos.h2, sizeof(hellos.h2));
	/* A ClientHello of several kilobytes: 40 other protocols before ours. */
	for (int i = 0; i < 40; i++) {
		alpn[len++] = 200;
		memset(alpn + len, 'a' + i % 26, 200);
		len += 200;
	}
	memcpy(alpn + len, "\x09meshlet/1", 10);
	len += 10;
	hellos.big_len = make_hello(alpn, len, hellos.big, sizeof(hellos.big));
	/* Preconditions (hello.c has tests of its own). */
	if (hellos.meshlet_len <= 100 || hellos.big_len < 8000 ||
	    hello_classify(hellos.meshlet, hellos.meshlet_len, "meshlet/") != HELLO_MESHLET ||
	    hello_classify(hellos.big, hellos.big_len, "meshlet/") != HELLO_MESHLET ||
	    hello_classify(hellos.h2, hellos.h2_len, "meshlet/") != HELLO_OTHER) {
		fprintf(stderr, "setup: unexpected hellos (%zu, %zu, %zu bytes)\n",
		        hellos.meshlet_len, hellos.h2_len, hellos.big_len);
		return -1;
	}
	return 0;
}

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

/* Runs the loop for about ms. */
static void run_for(struct loop *loop, uint64_t ms)
{
	struct watchdog w = { .fired = false };

	loop_timer_init(&w.t, watchdog_fire);
	assert_int_equal(loop_timer_set(loop, &w.t, ms), 0);
	assert_int_equal(loop_run(loop), 0);
	loop_timer_stop(loop, &w.t);
}

/* A round, so that loop_now (read once per round) is now when a sniff starts. */
static void fresh(struct loop *loop)
{
	run_for(loop, 1);
}

/* Loopback TCP: a client (blocking) and the accepted side (non-blocking), as the proxy has. */
struct conn {
	int cli, srv;
};

static struct conn conn_open(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct timeval tv = { .tv_sec = 5 };
	struct conn c;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	c.cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.cli >= 0);
	assert_int_equal(setsockopt(c.cli, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(c.cli, (struct sockaddr *)&sin, sizeof(sin)), 0);
	c.srv = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(c.srv >= 0);
	close(lfd);
	return c;
}

static void conn_close(struct conn *c)
{
	if (c->cli >= 0)
		close(c->cli);
	if (c->srv >= 0)
		close(c->srv);
	c->cli = c->srv = -1;
}

/* Sends len bytes and waits until the accepted side has at least `total` bytes in. */
static void send_wait(struct conn *c, const void *p, size_t len, size_t total)
{
	uint64_t end = clock_ms() + 5000;
	int in = 0;

	assert_int_equal(send(c->cli, p, len, MSG_NOSIGNAL), (ssize_t)len);
	for (;;) {
		assert_int_equal(ioctl(c->srv, FIONREAD, &in), 0);
		if ((size_t)in >= total)
			return;
		if (clock_ms() > end)
			fail_msg("only %d of %zu bytes arrived", in, total);
		usleep(1000);
	}
}

/* Asserts that exactly the len bytes at p are waiting on fd: the sniff consumed nothing. */
static void assert_unread(int fd, const uint8_t *p, size_t len)
{
	static uint8_t buf[HELLO_MAX + 1];
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0)
			fail_msg("recv after %zu of %zu bytes: %zd (%s)", got, len, n,
			         n < 0 ? strerror(errno) : "end");
		got += (size_t)n;
	}
	assert_int_equal(got, len);
	assert_memory_equal(buf, p, len);
	/* And nothing more. */
	assert_int_equal(recv(fd, buf, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
}

static int rcvlowat(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len), 0);
	return v;
}

/* A sniff and what became of it. */
struct probe {
	struct sniff s;
	struct sniff **list;
	struct loop *loop;
	int fd;
	int calls;
	enum hello_verdict verdict;
	uint64_t started, at; /* loop_now at sniff_start and at done */
	bool sync;            /* done ran inside sniff_start */
	bool unwatched;       /* fd was no longer watched when done ran */
	bool out_of_list;     /* s was no longer in the list when done ran */
};

static size_t list_len(struct sniff *list, const struct sniff *find, bool *found)
{
	size_t n = 0;

	*found = false;
	for (struct sniff *s = list; s != NULL; s = s->next) {
		if (s == find)
			*found = true;
		if (s->next != NULL)
			assert_ptr_equal(s->next->prev, s);
		n++;
	}
	return n;
}

static void on_done(struct sniff *s, enum hello_verdict verdict)
{
	struct probe *p = (struct probe *)(void *)((char *)s - offsetof(struct probe, s));
	bool found;

	p->calls++;
	p->verdict = verdict;
	p->at = loop_now(p->loop);
	p->sync = starting;
	p->unwatched = loop_set_events(p->loop, p->fd, LOOP_READ) == -ENOENT;
	(void)list_len(*p->list, s, &found);
	p->out_of_list = !found;
	/* A stop before loop_run would end the test's next run at once. */
	if (!starting)
		loop_stop(p->loop);
}

static int start(struct probe *p, struct sniff **list, struct loop *loop, int fd, uint32_t wait_ms,
                 uint32_t hello_ms)
{
	int rc;

	*p = (struct probe){ .list = list, .loop = loop, .fd = fd, .started = loop_now(loop) };
	starting = true;
	rc = sniff_start(&p->s, list, loop, fd, wait_ms, hello_ms, on_done);
	starting = false;
	return rc;
}

/* Runs the loop until p's verdict, for at most ms. */
static void run_until_done(struct loop *loop, struct probe *p, uint64_t ms)
{
	struct watchdog w = { .fired = false };

	if (p->calls > 0)
		return;
	loop_timer_init(&w.t, watchdog_fire);
	assert_int_equal(loop_timer_set(loop, &w.t, ms), 0);
	assert_int_equal(loop_run(loop), 0);
	loop_timer_stop(loop, &w.t);
	if (p->calls == 0)
		fail_msg("no verdict in %llu ms", (unsigned long long)ms);
}

/* Checks what holds after every verdict: once, out of the list, unwatched, loop clean. */
static void assert_verdict(const struct probe *p, enum hello_verdict want)
{
	struct loop_stats st;

	assert_int_equal(p->calls, 1);
	assert_int_equal(p->verdict, want);
	assert_true(p->unwatched);
	assert_true(p->out_of_list);
	loop_stats(p->loop, &st);
	assert_int_equal(st.bufs_out, 0);
	/* The proxy's next reader reads byte by byte again. */
	assert_int_equal(rcvlowat(p->fd), 1);
}

static uint64_t elapsed(const struct probe *p)
{
	return p->at - p->started;
}

/* A whole meshlet hello in before sniff_start: MESHLET, and every byte still there. */
static void test_meshlet_hello_in_already(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct loop_stats st;
	struct probe p;

	(void)state;
	send_wait(&c, hellos.meshlet, hellos.meshlet_len, hellos.meshlet_len);
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	run_until_done(loop, &p, 2000);
	assert_verdict(&p, HELLO_MESHLET);
	assert_null(list);
	assert_true(elapsed(&p) < 1000);
	loop_stats(loop, &st);
	assert_int_equal(st.watchers, 0);
	assert_int_equal(st.timers, 0);
	assert_unread(c.srv, hellos.meshlet, hellos.meshlet_len);
	conn_close(&c);
	loop_free(loop);
}

/*
 * Runs the loop for 100 ms, in which it must not spin on what is in (what): one round for
 * the bytes, one for run_for's timer, and maybe a spurious wakeup.
 */
static void run_quietly(struct loop *loop, const char *what)
{
	struct loop_stats st0, st1;

	loop_stats(loop, &st0);
	run_for(loop, 100);
	loop_stats(loop, &st1);
	if (st1.rounds - st0.rounds > 4)
		fail_msg("the loop spun on %s: %llu rounds in 100 ms", what,
		         (unsigned long long)(st1.rounds - st0.rounds));
}

/*
 * The hello in three parts with loop time in between: no verdict until it is whole, and the
 * loop sleeps meanwhile (SO_RCVLOWAT: the bytes left in place do not wake it again).
 */
static void test_meshlet_hello_in_parts(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct probe p;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	assert_int_equal(p.calls, 0);
	assert_ptr_equal(list, &p.s);

	send_wait(&c, hellos.meshlet, 3, 3);
	run_quietly(loop, "3 bytes");
	assert_int_equal(p.calls, 0);
	assert_true(rcvlowat(c.srv) > 3);

	send_wait(&c, hellos.meshlet + 3, 97, 100);
	run_quietly(loop, "100 bytes");
	assert_int_equal(p.calls, 0);
	/* The header is in: the socket wakes once the whole record is. */
	assert_int_equal(rcvlowat(c.srv), (int)hellos.meshlet_len);

	send_wait(&c, hellos.meshlet + 100, hellos.meshlet_len - 100, hellos.meshlet_len);
	run_until_done(loop, &p, 2000);
	assert_verdict(&p, HELLO_MESHLET);
	assert_false(p.sync);
	assert_null(list);
	assert_unread(c.srv, hellos.meshlet, hellos.meshlet_len);
	conn_close(&c);
	loop_free(loop);
}

/* A hello of 8 KB arriving 1 KB at a time, with ALPN "meshlet/1" last in a long list. */
static void test_big_hello_trickles_in(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct loop_stats st0, st1;
	struct probe p;
	size_t off = 0, parts = 0;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 10000), 0);
	loop_stats(loop, &st0);
	while (off < hellos.big_len) {
		size_t n = hellos.big_len - off < 1000 ? hellos.big_len - off : 1000;

		assert_int_equal(p.calls, 0);
		send_wait(&c, hellos.big + off, n, off + n);
		off += n;
		parts++;
		if (off < hellos.big_len)
			run_for(loop, 20);
	}
	run_until_done(loop, &p, 2000);
	loop_stats(loop, &st1);
	assert_verdict(&p, HELLO_MESHLET);
	/* A round per part for run_for's timer, one for the first bytes, one for the last. */
	if (st1.rounds - st0.rounds > 2 * parts + 4)
		fail_msg("the loop spun: %llu rounds for %zu parts",
		         (unsigned long long)(st1.rounds - st0.rounds), parts);
	assert_null(list);
	assert_unread(c.srv, hellos.big, hellos.big_len);
	conn_close(&c);
	loop_free(loop);
}

/* Plaintext HTTP is OTHER at once, whether in before sniff_start or after. */
static void test_http_is_other_at_once(void **state)
{
	static const char get[] = "GET / HTTP/1.1\r\n";
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open(), d = conn_open();
	struct probe p, q;

	(void)state;
	send_wait(&c, get, strlen(get), strlen(get));
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	run_until_done(loop, &p, 2000);
	assert_verdict(&p, HELLO_OTHER);
	assert_true(elapsed(&p) < 1000);
	assert_null(list);
	assert_unread(c.srv, (const uint8_t *)get, strlen(get));

	/* Arriving while the sniff waits: one byte decides. */
	fresh(loop);
	assert_int_equal(start(&q, &list, loop, d.srv, 2000, 5000), 0);
	run_for(loop, 20);
	assert_int_equal(q.calls, 0);
	send_wait(&d, get, 1, 1);
	run_until_done(loop, &q, 2000);
	assert_verdict(&q, HELLO_OTHER);
	assert_false(q.sync);
	assert_true(elapsed(&q) < 1000);
	assert_null(list);
	assert_unread(d.srv, (const uint8_t *)get, 1);
	conn_close(&c);
	conn_close(&d);
	loop_free(loop);
}

/* Somebody else's TLS (ALPN h2) is the application's: OTHER, untouched. */
static void test_h2_hello_is_other(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct probe p;

	(void)state;
	send_wait(&c, hellos.h2, hellos.h2_len, hellos.h2_len);
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	run_until_done(loop, &p, 2000);
	assert_verdict(&p, HELLO_OTHER);
	assert_true(elapsed(&p) < 1000);
	assert_null(list);
	assert_unread(c.srv, hellos.h2, hellos.h2_len);
	conn_close(&c);
	loop_free(loop);
}

/* A client that waits for the server to speak: OTHER after wait_ms, not hello_ms. */
static void test_silent_client(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct probe p;
	char x;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 50, 2000), 0);
	assert_int_equal(p.calls, 0);
	run_until_done(loop, &p, 5000);
	assert_verdict(&p, HELLO_OTHER);
	if (elapsed(&p) < 50 || elapsed(&p) >= 1000)
		fail_msg(
		    "verdict after %llu ms: expected wait_ms (50), well before hello_ms (2000)",
		    (unsigned long long)elapsed(&p));
	assert_null(list);
	/* The socket is as it was. */
	assert_int_equal(recv(c.srv, &x, 1, 0), -1);
	assert_int_equal(errno, EAGAIN);
	conn_close(&c);
	loop_free(loop);
}

/* A hello that began but never ends: OTHER at hello_ms from the start, not at wait_ms. */
static void test_partial_hello_times_out(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open(), d = conn_open();
	struct probe p, q;

	(void)state;
	/* In before sniff_start. */
	send_wait(&c, hellos.meshlet, 50, 50);
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 50, 150), 0);
	assert_int_equal(p.calls, 0);
	run_until_done(loop, &p, 5000);
	assert_verdict(&p, HELLO_OTHER);
	if (elapsed(&p) < 150 || elapsed(&p) >= 2000)
		fail_msg("verdict after %llu ms: expected hello_ms (150), not wait_ms (50)",
		         (unsigned long long)elapsed(&p));
	assert_null(list);
	assert_unread(c.srv, hellos.meshlet, 50);

	/* Arriving while the sniff waits (before wait_ms): the deadline is still hello_ms. */
	fresh(loop);
	assert_int_equal(start(&q, &list, loop, d.srv, 50, 150), 0);
	run_for(loop, 10);
	send_wait(&d, hellos.meshlet, 50, 50);
	run_until_done(loop, &q, 5000);
	assert_verdict(&q, HELLO_OTHER);
	if (elapsed(&q) < 150 || elapsed(&q) >= 2000)
		fail_msg("verdict after %llu ms: expected hello_ms (150), not wait_ms (50)",
		         (unsigned long long)elapsed(&q));
	assert_null(list);
	assert_unread(d.srv, hellos.meshlet, 50);
	conn_close(&c);
	conn_close(&d);
	loop_free(loop);
}

/* A hello that began, then the client ends (half-close, close or reset): OTHER at once. */
enum end_how { END_SHUTDOWN, END_CLOSE, END_RESET };

static void partial_then_end(enum end_how how)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct probe p;
	char x;

	send_wait(&c, hellos.meshlet, 50, 50);
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 50, 3000), 0);
	run_for(loop, 20);
	assert_int_equal(p.calls, 0);
	if (how == END_SHUTDOWN) {
		assert_int_equal(shutdown(c.cli, SHUT_WR), 0);
	} else {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		if (how == END_RESET)
			assert_int_equal(setsockopt(c.cli, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
			                 0);
		close(c.cli);
		c.cli = -1;
	}
	run_until_done(loop, &p, 5000);
	assert_verdict(&p, HELLO_OTHER);
	if (elapsed(&p) >= 1500)
		fail_msg("verdict %llu ms after the client ended: expected at once, not at "
		         "hello_ms (3000)",
		         (unsigned long long)elapsed(&p));
	assert_null(list);
	/* Its taker reads the bytes, then the end (after a reset, the reset). */
	if (how != END_RESET)
		assert_int_equal(recv(c.srv, &x, 1, MSG_PEEK), 1);
	assert_int_equal(rcvlowat(c.srv), 1);
	conn_close(&c);
	loop_free(loop);
}

static void test_partial_hello_then_shutdown(void **state)
{
	(void)state;
	partial_then_end(END_SHUTDOWN);
}

static void test_partial_hello_then_close(void **state)
{
	(void)state;
	partial_then_end(END_CLOSE);
}

static void test_partial_hello_then_reset(void **state)
{
	(void)state;
	partial_then_end(END_RESET);
}

/* An end with no byte at all is OTHER too, at once. */
static void test_close_before_any_byte(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct probe p;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	run_for(loop, 10);
	close(c.cli);
	c.cli = -1;
	run_until_done(loop, &p, 5000);
	assert_verdict(&p, HELLO_OTHER);
	assert_true(elapsed(&p) < 1000);
	assert_null(list);
	conn_close(&c);
	loop_free(loop);
}

/* Cancelled: done never runs, the fd stays open and usable, nothing is left on the loop. */
static void test_cancel(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open(), d = conn_open();
	struct loop_stats st;
	struct probe p, q;
	char buf[8];

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 50, 100), 0);
	run_for(loop, 10);
	sniff_cancel(&p.s);
	assert_null(list);
	loop_stats(loop, &st);
	assert_int_equal(st.watchers, 0);
	assert_int_equal(st.timers, 0);
	/* Past both deadlines, and with bytes coming in: nothing. */
	send_wait(&c, "x", 1, 1);
	run_for(loop, 200);
	assert_int_equal(p.calls, 0);
	assert_true(fcntl(c.srv, F_GETFD) >= 0);
	assert_int_equal(recv(c.srv, buf, sizeof(buf), 0), 1);
	assert_int_equal(buf[0], 'x');

	/* Cancelled with a hello partly in. */
	send_wait(&d, hellos.meshlet, 50, 50);
	fresh(loop);
	assert_int_equal(start(&q, &list, loop, d.srv, 50, 100), 0);
	assert_int_equal(q.calls, 0);
	sniff_cancel(&q.s);
	assert_null(list);
	send_wait(&d, hellos.meshlet + 50, hellos.meshlet_len - 50, hellos.meshlet_len);
	run_for(loop, 200);
	assert_int_equal(q.calls, 0);
	loop_stats(loop, &st);
	assert_int_equal(st.watchers, 0);
	assert_int_equal(st.timers, 0);
	assert_true(fcntl(d.srv, F_GETFD) >= 0);
	conn_close(&c);
	conn_close(&d);
	loop_free(loop);
}

/* Two sniffs in one list: the one cancelled is gone, the other still decides. */
static void test_cancel_one_of_two(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open(), d = conn_open();
	struct probe p, q;
	bool found;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p, &list, loop, c.srv, 2000, 5000), 0);
	assert_int_equal(start(&q, &list, loop, d.srv, 2000, 5000), 0);
	assert_int_equal(list_len(list, &p.s, &found), 2);
	sniff_cancel(&p.s);
	assert_int_equal(list_len(list, &q.s, &found), 1);
	assert_true(found);
	assert_int_equal(list_len(list, &p.s, &found), 1);
	assert_false(found);
	send_wait(&c, hellos.meshlet, hellos.meshlet_len, hellos.meshlet_len);
	send_wait(&d, hellos.meshlet, hellos.meshlet_len, hellos.meshlet_len);
	run_until_done(loop, &q, 2000);
	assert_verdict(&q, HELLO_MESHLET);
	assert_null(list);
	run_for(loop, 50);
	assert_int_equal(p.calls, 0);
	assert_unread(d.srv, hellos.meshlet, hellos.meshlet_len);
	assert_unread(c.srv, hellos.meshlet, hellos.meshlet_len);
	conn_close(&c);
	conn_close(&d);
	loop_free(loop);
}

/* Three in a list: the middle one cancelled, the others end by bytes and by time. */
static void test_list_of_three(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c[3] = { conn_open(), conn_open(), conn_open() };
	struct probe p[3];
	bool found;

	(void)state;
	fresh(loop);
	assert_int_equal(start(&p[0], &list, loop, c[0].srv, 100, 5000), 0);
	assert_int_equal(start(&p[1], &list, loop, c[1].srv, 5000, 5000), 0);
	assert_int_equal(start(&p[2], &list, loop, c[2].srv, 5000, 5000), 0);
	assert_int_equal(list_len(list, &p[1].s, &found), 3);
	sniff_cancel(&p[1].s);
	assert_int_equal(list_len(list, &p[1].s, &found), 2);
	assert_false(found);
	/* The newest (the list's head) decides first. */
	send_wait(&c[2], hellos.h2, hellos.h2_len, hellos.h2_len);
	run_until_done(loop, &p[2], 2000);
	assert_verdict(&p[2], HELLO_OTHER);
	assert_int_equal(list_len(list, &p[0].s, &found), 1);
	assert_true(found);
	/* The oldest at its wait_ms. */
	run_until_done(loop, &p[0], 5000);
	assert_verdict(&p[0], HELLO_OTHER);
	assert_null(list);
	assert_int_equal(p[1].calls, 0);
	for (int i = 0; i < 3; i++)
		conn_close(&c[i]);
	loop_free(loop);
}

/* Nothing is started when the fd cannot be watched; the fd is still the caller's. */
static void test_start_errors(void **state)
{
	struct loop *loop = new_loop();
	struct sniff *list = NULL;
	struct conn c = conn_open();
	struct loop_stats st;
	struct probe p, q;

	(void)state;
	assert_int_equal(start(&p, &list, loop, -1, 50, 100), -EBADF);
	assert_null(list);
	/* A second sniff on a watched fd. */
	assert_int_equal(start(&p, &list, loop, c.srv, 50, 100), 0);
	assert_int_equal(start(&q, &list, loop, c.srv, 50, 100), -EEXIST);
	assert_ptr_equal(list, &p.s);
	assert_null(p.s.next);
	sniff_cancel(&p.s);
	assert_null(list);
	loop_stats(loop, &st);
	assert_int_equal(st.watchers, 0);
	assert_int_equal(st.timers, 0);
	run_for(loop, 150);
	assert_int_equal(p.calls, 0);
	assert_int_equal(q.calls, 0);
	conn_close(&c);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meshlet_hello_in_already),
		cmocka_unit_test(test_meshlet_hello_in_parts),
		cmocka_unit_test(test_big_hello_trickles_in),
		cmocka_unit_test(test_http_is_other_at_once),
		cmocka_unit_test(test_h2_hello_is_other),
		cmocka_unit_test(test_silent_client),
		cmocka_unit_test(test_partial_hello_times_out),
		cmocka_unit_test(test_partial_hello_then_shutdown),
		cmocka_unit_test(test_partial_hello_then_close),
		cmocka_unit_test(test_partial_hello_then_reset),
		cmocka_unit_test(test_close_before_any_byte),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_cancel_one_of_two),
		cmocka_unit_test(test_list_of_three),
		cmocka_unit_test(test_start_errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
