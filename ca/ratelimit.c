/* SPDX-License-Identifier: Apache-2.0 */
/* Token buckets per identity in an open-addressing table guarded by one mutex. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

/* A SPIFFE ID is at most 2048 bytes; keys are hashed, and stored whole to compare. */
struct ratelimit_bucket {
	char *key;
	double tokens;
	int64_t updated_ms;
};

struct ratelimit {
	double rate, burst;
	size_t max_keys, nkeys, cap;
	struct ratelimit_bucket *slots;
	pthread_mutex_t lock;
};

static uint64_t ratelimit_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	if (rl == NULL)
		return NULL;
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	rl->max_keys = max_keys;
	/* Twice the keys, rounded up to a power of two: the table stays half empty. */
	for (rl->cap = 16; rl->cap < 2 * max_keys; rl->cap *= 2)
		;
	rl->slots = calloc(rl->cap, sizeof(*rl->slots));
	if (rl->slots == NULL) {
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

static double ratelimit_level(const struct ratelimit *rl, const struct ratelimit_bucket *b,
                              int64_t now_ms)
{
	double t = b->tokens + rl->rate * (double)(now_ms - b->updated_ms) / 1000.0;

	return t > rl->burst ? rl->burst : t;
}

/* Rebuilds the table without the buckets that are full again (idle identities). */
static void ratelimit_sweep(struct ratelimit *rl, int64_t now_ms)
{
	struct ratelimit_bucket *old = rl->slots;
	struct ratelimit_bucket *fresh = calloc(rl->cap, sizeof(*fresh));

	if (fresh == NULL)
		return;
	rl->slots = fresh;
	rl->nkeys = 0;
	for (size_t i = 0; i < rl->cap; i++) {
		size_t j;

		if (old[i].key == NULL)
			continue;
		if (ratelimit_level(rl, &old[i], now_ms) >= rl->burst) {
			free(old[i].key);
			continue;
		}
		for (j = ratelimit_hash(old[i].key) & (rl->cap - 1); fresh[j].key != NULL;
		     j = (j + 1) & (rl->cap - 1))
			;
		fresh[j] = old[i];
		rl->nkeys++;
	}
	free(old);
}

bool ratelimit_allow(struct ratelimit *rl, const char *key, int64_t now_ms, int64_t *retry_ms)
{
	struct ratelimit_bucket *b = NULL;
	bool ok = true;
	size_t i;

	if (rl->rate <= 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	for (i = ratelimit_hash(key) & (rl->cap - 1); rl->slots[i].key != NULL;
	     i = (i + 1) & (rl->cap - 1)) {
		if (strcmp(rl->slots[i].key, key) == 0) {
			b = &rl->slots[i];
			break;
		}
	}
	if (b == NULL) {
		if (rl->nkeys >= rl->max_keys) {
			ratelimit_sweep(rl, now_ms);
			/* Every known identity is busy: do not let new ones starve. */
			if (rl->nkeys >= rl->max_keys)
				goto out;
			for (i = ratelimit_hash(key) & (rl->cap - 1); rl->slots[i].key != NULL;
			     i = (i + 1) & (rl->cap - 1))
				;
		}
		rl->slots[i].key = strdup(key);
		if (rl->slots[i].key == NULL)
			goto out;
		rl->slots[i].tokens = rl->burst;
		rl->slots[i].updated_ms = now_ms;
		rl->nkeys++;
		b = &rl->slots[i];
	}
	b->tokens = ratelimit_level(rl, b, now_ms);
	b->updated_ms = now_ms;
	if (b->tokens >= 1) {
		b->tokens -= 1;
	} else {
		ok = false;
		if (retry_ms != NULL)
			*retry_ms = (int64_t)((1 - b->tokens) * 1000.0 / rl->rate) + 1;
	}
out:
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (size_t i = 0; i < rl->cap; i++)
		free(rl->slots[i].key);
	free(rl->slots);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}
