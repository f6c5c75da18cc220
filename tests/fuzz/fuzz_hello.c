/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for proxy/hello.c: any first bytes of a connection, prefix by prefix. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without ASan (the fuzz rule always has it) the poisoning macros do nothing. */
#include <sanitizer/asan_interface.h>

/* The fuzz rule of the Makefile compiles only the harness and lib/: the parser comes as source. */
#include "../../proxy/hello.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, size_t k, enum hello_verdict v)
{
	fprintf(stderr, "fuzz_hello: %s (prefix %zu: %d)\n", what, k, (int)v);
	abort();
}

static enum hello_verdict classify(const uint8_t *p, size_t n, const char *prefix)
{
	enum hello_verdict v = hello_classify(p, n, prefix);

	if (v != HELLO_MORE && v != HELLO_MESHLET && v != HELLO_OTHER)
		fail("not a verdict", n, v);
	return v;
}

/*
 * The prefix only picks protocols: the other prefixes wait exactly as long, and a protocol
 * that starts with "meshlet/" starts with "meshlet" and "" too.
 */
static void other_prefixes(const uint8_t *p, size_t n, enum hello_verdict v)
{
	enum hello_verdict shorter = classify(p, n, "meshlet"), empty = classify(p, n, "");

	if ((shorter == HELLO_MORE) != (v == HELLO_MORE) ||
	    (empty == HELLO_MORE) != (v == HELLO_MORE))
		fail("another prefix waits a different time", n, v);
	if (v == HELLO_MESHLET && (shorter != HELLO_MESHLET || empty != HELLO_MESHLET))
		fail("a shorter prefix does not match", n, v);
	if (empty == HELLO_OTHER && v != HELLO_OTHER)
		fail("the empty prefix says OTHER but meshlet/ does not", n, v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hello_verdict first = HELLO_MORE, v;
	size_t at = 0, big_len = HELLO_MAX + 1;
	uint8_t *buf, *big;

	if (size > HELLO_MAX + 64)
		size = HELLO_MAX + 64;
	/*
	 * An exact-size copy, and every byte past the prefix under test poisoned: ASan stops a
	 * read of p[n] or beyond for every prefix, not only for the whole input.
	 */
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	ASAN_POISON_MEMORY_REGION(buf, size > 0 ? size : 1);
	/*
	 * Incremental: every prefix says MORE until the first one that decides, and every longer
	 * prefix then gives the same answer.
	 */
	for (size_t k = 0; k <= size; k++) {
		if (k > 0)
			ASAN_UNPOISON_MEMORY_REGION(buf + k - 1, 1);
		v = classify(buf, k, "meshlet/");
		if (first == HELLO_MORE && v != HELLO_MORE) {
			first = v;
			at = k;
		}
		if (v != first)
			fail("a longer prefix changed the answer", k, v);
		if (k == 0 && v != HELLO_MORE)
			fail("no bytes decided", k, v);
		/* Two calls more: before and just after the decision (cheap), and at the end. */
		if (first == HELLO_MORE || k < at + 16 || k == size)
			other_prefixes(buf, k, v);
	}
	ASAN_UNPOISON_MEMORY_REGION(buf, size > 0 ? size : 1);
	if (size > HELLO_MAX && first == HELLO_MORE)
		fail("more than HELLO_MAX bytes and no answer", size, first);

	/*
	 * HELLO_MAX + 1 bytes that start with the input (then repeat it): always decided, and
	 * the same as the input if that was decided.
	 */
	big = malloc(big_len);
	if (big == NULL) {
		free(buf);
		return 0;
	}
	for (size_t i = 0; i < big_len; i++)
		big[i] = size > 0 ? buf[i % size] : 0;
	v = classify(big, big_len, "meshlet/");
	if (v == HELLO_MORE)
		fail("HELLO_MAX + 1 bytes and no answer", big_len, v);
	if (first != HELLO_MORE && v != first)
		fail("padding a decided input changed the answer", big_len, v);
	free(big);
	free(buf);
	return 0;
}
