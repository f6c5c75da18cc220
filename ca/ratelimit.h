/* SPDX-License-Identifier: Apache-2.0 */
/* A token bucket per identity, so that one workload cannot keep the CA busy. */
#ifndef MESHLET_CA_RATELIMIT_H
#define MESHLET_CA_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/*
 * ratelimit_new - buckets that refill at rate tokens a second up to burst, one per key,
 * at most max_keys of them (full buckets are forgotten first). rate 0 turns limiting
 * off. Returns NULL when out of memory.
 */
struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys);

/*
 * ratelimit_allow - take one token from key's bucket at time now_ms (monotonic). Returns
 * true when the request may go on; false, with *retry_ms (when not NULL) set to the wait
 * until a token is there, when it must not. Safe from many threads.
 */
bool ratelimit_allow(struct ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_ms);

/* ratelimit_free - free rl; rl may be NULL. */
void ratelimit_free(struct ratelimit *rl);

#endif
