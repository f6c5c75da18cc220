/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for proxy/preamble.c: any bytes as a tunnel preamble, and round trips. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The fuzz rule of the Makefile compiles only the harness and lib/: the parser comes as source. */
#include "../../proxy/preamble.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, size_t k, int rc)
{
	fprintf(stderr, "fuzz_preamble: %s (prefix %zu: %s, %d)\n", what, k, err_name(rc), rc);
	abort();
}

static bool known_code(int rc)
{
	return rc == ERR_PREAMBLE_MAGIC || rc == ERR_PREAMBLE_VERSION || rc == ERR_PREAMBLE_FLAGS ||
	       rc == ERR_PREAMBLE_TOO_LARGE || rc == ERR_PREAMBLE_MALFORMED;
}

static bool same(const struct preamble *a, const struct preamble *b)
{
	size_t alen = a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;

	return a->version == b->version && a->port == b->port && a->flags == b->flags && a->family == b->family &&
	       memcmp(a->addr, b->addr, alen) == 0;
}

/* Encoding p and parsing the result gives p back, and exactly the encoded length. */
static void round_trip(const struct preamble *p)
{
	uint8_t buf[PREAMBLE_MAX];
	struct preamble q;
	int n = preamble_encode(p, buf, sizeof(buf)), rc;

	if (n < 0)
		return;
	rc = preamble_parse(buf, (size_t)n, &q);
	if (rc != n || !same(p, &q))
		fail("an encoded preamble does not parse back", (size_t)n, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct preamble p, q;
	int rc, prev = 0;

	if (size > 2 * PREAMBLE_MAX)
		size = 2 * PREAMBLE_MAX;
	rc = preamble_parse(data, size, &p);
	if (rc < 0 && !known_code(rc))
		fail("unknown error code", size, rc);
	if (rc > PREAMBLE_MAX)
		fail("longer than PREAMBLE_MAX", size, rc);
	/*
	 * Incremental: every prefix says "more" until the first byte that decides, and every
	 * longer prefix then gives the same answer.
	 */
	for (size_t k = 0; k <= size; k++) {
		int r = preamble_parse(data, k, &q);

		if (prev != 0 && r != prev)
			fail("a longer prefix changed the answer", k, r);
		prev = r;
	}
	if (prev != rc)
		fail("the whole input and its prefixes disagree", size, rc);
	if (rc > 0) {
		uint8_t buf[PREAMBLE_MAX];
		int n = preamble_encode(&p, buf, sizeof(buf));

		if (n < 0)
			fail("a parsed preamble does not encode", size, n);
		round_trip(&p);
		/* Without optional fields the encoding is the only one: the same bytes. */
		if (n == rc && memcmp(buf, data, (size_t)n) != 0)
			fail("encoding differs from the canonical input", size, rc);
	}
	/* The other way: a struct made from the bytes. */
	if (size >= 20) {
		memset(&p, 0, sizeof(p));
		p.version = (uint8_t)(1 + data[2] / 3 % 2);
		p.port = (uint16_t)(data[0] << 8 | data[1]);
		p.family = data[2] % 3 == 0 ? AF_UNSPEC : data[2] % 3 == 1 ? AF_INET : AF_INET6;
		memcpy(p.addr, data + 3, 16);
		round_trip(&p);
	}
	return 0;
}
