/* SPDX-License-Identifier: Apache-2.0 */
/* Holding an accepted connection until its first bytes say what it is (hello.h). */
#ifndef MESHLET_PROXY_SNIFF_H
#define MESHLET_PROXY_SNIFF_H

#include <stdbool.h>
#include <stdint.h>

#include "hello.h"
#include "loop.h"

/*
 * The inbound capture port receives plaintext from clients without a sidecar and mutual
 * TLS from client proxies that reached this pod through a Service. A sniff watches the
 * accepted socket and peeks at it (MSG_PEEK: nothing is consumed, whoever takes the socket
 * reads every byte) until hello_classify decides. A client that sends nothing first (a
 * protocol where the server speaks first) is taken as plaintext after wait_ms; a hello
 * that has begun has until hello_ms from the accept to be whole, and is then plaintext
 * too. While a hello is partly in, SO_RCVLOWAT makes the socket readable only once the
 * whole record is there, so the loop never spins on bytes it leaves in place.
 *
 * A sniff lives in its owner's struct, as a loop_timer does; a sniff list is the owner's
 * set of them, for closing the ones still waiting when the loop ends.
 */
struct sniff;
typedef void sniff_done_fn(struct sniff *s, enum hello_verdict verdict);

struct sniff {
	struct loop *loop;
	struct sniff **list;
	struct sniff *next, *prev;
	struct loop_timer timer;
	sniff_done_fn *done;
	uint64_t since;
	uint32_t wait_ms, hello_ms;
	uint32_t seen; /* bytes in at the last look */
	int fd;
	bool paused; /* not watched for a moment: it woke without a new byte */
};

/*
 * sniff_start - watch fd (accepted, non-blocking) on loop; s joins *list. done(s, verdict)
 * is called once, on the loop's thread, with s out of the list and fd no longer watched
 * (HELLO_MESHLET or HELLO_OTHER; a socket that fails or ends is HELLO_OTHER: its taker finds
 * out). From then on fd and s are done's; done may run before sniff_start returns (the
 * bytes were in already). Returns 0, or -errno with nothing started (fd is still the
 * caller's).
 */
int sniff_start(struct sniff *s, struct sniff **list, struct loop *loop, int fd, uint32_t wait_ms,
                uint32_t hello_ms, sniff_done_fn *done);

/*
 * sniff_cancel - stop watching s's socket and take it out of its list; fd is not closed,
 * and reads as usual again (SO_RCVLOWAT 1).
 * For the owner's cleanup when the loop ends (done is not called).
 */
void sniff_cancel(struct sniff *s);

#endif
