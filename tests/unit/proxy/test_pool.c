/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/pool.c: keeping idle tunnels by destination, and letting them go. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "proxy/pool.h"

static SSL_CTX *ctx_a, *ctx_b;
static struct loop *cur_loop; /* the test's: tunnels are idle since its now */

static int setup(void **state)
{
	(void)state;
	ctx_a = SSL_CTX_new(TLS_client_method());
	ctx_b = SSL_CTX_new(TLS_client_method());
	return ctx_a != NULL && ctx_b != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	SSL_CTX_free(ctx_a);
	SSL_CTX_free(ctx_b);
	return 0;
}

static struct loop *new_loop(void)
{
	int err = 0;
	struct loop *loop = loop_new(&err);

	assert_non_null(loop);
	cur_loop = loop;
	return loop;
}

/* A tunnel over one end of a socket pair, idle since now; *peer is the other end. */
static struct relay_tunnel *tunnel(SSL_CTX *ctx, int64_t not_after, int *peer)
{
	struct relay_tunnel *t = calloc(1, sizeof(*t));
	int sv[2];

	assert_non_null(t);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	t->fd = sv[0];
	t->ssl = SSL_new(ctx);
	assert_non_null(t->ssl);
	assert_true(SSL_set_fd(t->ssl, sv[0]));
	SSL_set_connect_state(t->ssl);
	t->not_after = not_after;
	t->idle_since = loop_now(cur_loop);
	*peer = sv[1];
	return t;
}

static struct sockaddr_in addr(const char *ip, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &in.sin_addr);
	return in;
}

static int64_t later(void)
{
	return (int64_t)time(NULL) + 3600;
}

static void stop(struct loop *loop, struct loop_timer *t)
{
	(void)t;
	loop_stop(loop);
}

/* Runs the loop for about ms. */
static void run_for(struct loop *loop, uint64_t ms)
{
	struct loop_timer t;

	loop_timer_init(&t, stop);
	assert_int_equal(loop_timer_set(loop, &t, ms), 0);
	assert_int_equal(loop_run(loop), 0);
}

/* Closes n tunnels taken back and their peers, then the pool and the loop. */
static void finish(struct loop *loop, struct pool *p, struct relay_tunnel **ts, const int *peers,
                   size_t n)
{
	for (size_t i = 0; i < n; i++) {
		relay_tunnel_close(ts[i]);
		close(peers[i]);
	}
	pool_free(p);
	loop_free(loop);
}

static void test_kept_by_destination_and_owner(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 8, 60000);
	struct sockaddr_in a = addr("10.0.0.1", 15008), b = addr("10.0.0.2", 15008);
	struct relay_tunnel *t1, *t2, *got;
	int owner = 0, peer1, peer2;

	(void)state;
	t1 = tunnel(ctx_a, later(), &peer1);
	t2 = tunnel(ctx_a, later(), &peer2);
	pool_put(p, (struct sockaddr *)&a, NULL, t1);
	pool_put(p, (struct sockaddr *)&a, &owner, t2);
	assert_int_equal(pool_size(p), 2);
	/* Another destination, or the same one for another owner: none. */
	assert_null(pool_take(p, (struct sockaddr *)&b, NULL, ctx_a));
	assert_int_equal(pool_size(p), 2);
	/* The padding of the address does not matter, only address and port. */
	memset(a.sin_zero, 0x55, sizeof(a.sin_zero));
	got = pool_take(p, (struct sockaddr *)&a, &owner, ctx_a);
	assert_ptr_equal(got, t2);
	got = pool_take(p, (struct sockaddr *)&a, NULL, ctx_a);
	assert_ptr_equal(got, t1);
	assert_null(pool_take(p, (struct sockaddr *)&a, NULL, ctx_a));
	assert_int_equal(pool_size(p), 0);
	finish(loop, p, (struct relay_tunnel *[]){ t1, t2 }, (int[]){ peer1, peer2 }, 2);
}

static void test_most_recent_first(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 8, 60000);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(15008) };
	struct relay_tunnel *t1, *t2;
	int peer1, peer2;

	(void)state;
	inet_pton(AF_INET6, "fd00::7", &a.sin6_addr);
	t1 = tunnel(ctx_a, later(), &peer1);
	t2 = tunnel(ctx_a, later(), &peer2);
	pool_put(p, (struct sockaddr *)&a, NULL, t1);
	pool_put(p, (struct sockaddr *)&a, NULL, t2);
	/* A flow label is not part of the destination. */
	a.sin6_flowinfo = htonl(0x12345);
	assert_ptr_equal(pool_take(p, (struct sockaddr *)&a, NULL, ctx_a), t2);
	assert_ptr_equal(pool_take(p, (struct sockaddr *)&a, NULL, ctx_a), t1);
	finish(loop, p, (struct relay_tunnel *[]){ t1, t2 }, (int[]){ peer1, peer2 }, 2);
}

static void test_unusable_ones_are_closed(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 8, 60000);
	struct sockaddr_in a = addr("10.0.0.1", 15008);
	int peer1, peer2, peer3;
	char c;

	(void)state;
	/* Made from another context (an identity since replaced), expiring, closed by the
	 * peer: each is closed when found, and none is handed out. */
	pool_put(p, (struct sockaddr *)&a, NULL, tunnel(ctx_b, later(), &peer1));
	pool_put(p, (struct sockaddr *)&a, NULL, tunnel(ctx_a, (int64_t)time(NULL) + 2, &peer2));
	pool_put(p, (struct sockaddr *)&a, NULL, tunnel(ctx_a, later(), &peer3));
	assert_int_equal(write(peer3, "x", 1), 1);
	assert_int_equal(pool_size(p), 3);
	assert_null(pool_take(p, (struct sockaddr *)&a, NULL, ctx_a));
	assert_int_equal(pool_size(p), 0);
	/* Closed: the peers see the end. */
	assert_int_equal(read(peer1, &c, 1), 0);
	assert_int_equal(read(peer2, &c, 1), 0);
	close(peer1);
	close(peer2);
	close(peer3);
	pool_free(p);
	loop_free(loop);
}

static void test_peer_close_and_idle_time(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 8, 200);
	struct sockaddr_in a = addr("10.0.0.1", 15008), b = addr("10.0.0.2", 15008);
	int peer1, peer2;

	(void)state;
	pool_put(p, (struct sockaddr *)&a, NULL, tunnel(ctx_a, later(), &peer1));
	pool_put(p, (struct sockaddr *)&b, NULL, tunnel(ctx_a, later(), &peer2));
	/* The peer closes one: the pool notices without being asked. */
	close(peer1);
	run_for(loop, 50);
	assert_int_equal(pool_size(p), 1);
	/* The other is closed once idle for the pool's idle time. */
	run_for(loop, 400);
	assert_int_equal(pool_size(p), 0);
	close(peer2);
	pool_free(p);
	loop_free(loop);
}

static void test_idle_since(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 8, 300);
	struct sockaddr_in a = addr("10.0.0.1", 15008);
	struct relay_tunnel *t;
	int peer1, peer2;
	char c;

	(void)state;
	/* Its end went out longer ago than the idle time: closed at once. */
	t = tunnel(ctx_a, later(), &peer1);
	t->idle_since -= 300;
	pool_put(p, (struct sockaddr *)&a, NULL, t);
	assert_int_equal(pool_size(p), 0);
	assert_int_equal(read(peer1, &c, 1), 0);
	/* 200 ms ago: kept for the 100 ms left, not for 300 more. */
	t = tunnel(ctx_a, later(), &peer2);
	t->idle_since -= 200;
	pool_put(p, (struct sockaddr *)&a, NULL, t);
	assert_int_equal(pool_size(p), 1);
	run_for(loop, 180);
	assert_int_equal(pool_size(p), 0);
	close(peer1);
	close(peer2);
	pool_free(p);
	loop_free(loop);
}

static void test_full_and_flush(void **state)
{
	struct loop *loop = new_loop();
	struct pool *p = pool_new(loop, 2, 60000);
	struct sockaddr_in a = addr("10.0.0.1", 15008);
	int peers[3];
	char c;

	(void)state;
	for (int i = 0; i < 3; i++)
		pool_put(p, (struct sockaddr *)&a, NULL, tunnel(ctx_a, later(), &peers[i]));
	/* The third found the pool full and was closed at once. */
	assert_int_equal(pool_size(p), 2);
	assert_int_equal(read(peers[2], &c, 1), 0);
	pool_put(p, (struct sockaddr *)&a, NULL, NULL); /* nothing to keep */
	pool_flush(p);
	assert_int_equal(pool_size(p), 0);
	assert_int_equal(read(peers[0], &c, 1), 0);
	assert_int_equal(read(peers[1], &c, 1), 0);
	for (int i = 0; i < 3; i++)
		close(peers[i]);
	pool_free(p);
	pool_free(NULL);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_by_destination_and_owner),
		cmocka_unit_test(test_most_recent_first),
		cmocka_unit_test(test_unusable_ones_are_closed),
		cmocka_unit_test(test_peer_close_and_idle_time),
		cmocka_unit_test(test_idle_since),
		cmocka_unit_test(test_full_and_flush),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
