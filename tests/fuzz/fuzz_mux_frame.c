/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for proxy/mux_frame.c's frame headers: any bytes, prefix by prefix. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without ASan (the fuzz rule always has it) the poisoning macros do nothing. */
#include <sanitizer/asan_interface.h>

/* The fuzz rule of the Makefile compiles only the harness and lib/: the parser comes as
 * source (proxy/mux_frame.c has no I/O and needs nothing else). */
#include "../../proxy/mux_frame.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Long enough for a few headers in a row; the parser itself never looks past 8 bytes. */
#define LIMIT 96

static void fail(const char *what, size_t off, size_t k, int rc)
{
	fprintf(stderr, "fuzz_mux_frame: %s (offset %zu, prefix %zu: %d)\n", what, off, k, rc);
	abort();
}

/*
 * The table of mux.h, written again independently of the parser: whether 8 header bytes
 * are a header that a sender of protocol 3 makes.
 */
static bool spec_valid(const uint8_t *p)
{
	uint16_t len = (uint16_t)(p[2] << 8 | p[3]);
	uint32_t id = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];

	if (p[1] != 0)
		return false;
	switch (p[0]) {
	case MUX_DATA:
		return id > 0 && len >= 1 && len <= 16384;
	case MUX_OPEN:
		return id > 0 && len >= 10 && len <= 256;
	case MUX_END:
	case MUX_RESET:
	case MUX_STOP:
		return id > 0 && len == 0;
	case MUX_WINDOW_UPDATE:
		return id > 0 && len == 4;
	case MUX_GOAWAY:
		return id == 0 && len == 4;
	default:
		return false;
	}
}

/*
 * Every prefix of the n bytes at p (an exact-size copy, its bytes past the prefix under
 * test poisoned): the answers, and what a header that parses says. Returns the answer for
 * all n bytes; *f is the header when that is MUX_HEAD.
 */
static int check_prefixes(uint8_t *p, size_t n, size_t off, struct mux_frame *out)
{
	int prev = 0;

	ASAN_POISON_MEMORY_REGION(p, n);
	for (size_t k = 0; k <= n; k++) {
		struct mux_frame f = { 0xee, 0xeeee, 0xeeeeeeee };
		int r;

		if (k > 0)
			ASAN_UNPOISON_MEMORY_REGION(p + k - 1, 1);
		r = mux_frame_parse(p, k, &f);
		if (r != 0 && r != MUX_HEAD && r != ERR_MUX_FRAME)
			fail("not an answer of mux_frame_parse", off, k, r);
		/* A decided answer stays: more bytes never change it. */
		if (prev != 0 && r != prev)
			fail("a longer prefix changed the answer", off, k, r);
		prev = r;
		if (k < MUX_HEAD) {
			/* Partial: "more", but a bad type fails at byte 1, bad flags at byte 2. */
			bool bad = (k >= 1 && p[0] > MUX_STOP) || (k >= 2 && p[1] != 0);

			if (r != (bad ? ERR_MUX_FRAME : 0))
				fail("a partial header was judged wrong", off, k, r);
		} else if ((r == MUX_HEAD) != spec_valid(p)) {
			fail("the parser and mux.h's table disagree", off, k, r);
		}
		if (r != MUX_HEAD) {
			if (f.type != 0xee || f.len != 0xeeee || f.stream != 0xeeeeeeee)
				fail("a header that did not parse was written", off, k, r);
			continue;
		}
		if (f.type != p[0] || f.len != (uint16_t)(p[2] << 8 | p[3]) ||
		    f.stream !=
		        ((uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7]))
			fail("the fields are not the header's", off, k, r);
		if (f.type > MUX_STOP || f.len > MUX_FRAME_MAX)
			fail("a field out of its range", off, k, r);
		if ((f.type == MUX_GOAWAY) != (f.stream == 0))
			fail("a stream ID of the wrong kind", off, k, r);
		*out = f;
	}
	return prev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	uint8_t *buf;

	if (size > LIMIT)
		size = LIMIT;
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	/* The input as a stream of frames, as mux.c reads it: a header, its payload, the next. */
	for (;;) {
		struct mux_frame f;
		uint8_t again[MUX_HEAD];
		int r = check_prefixes(buf + off, size - off, off, &f);

		ASAN_UNPOISON_MEMORY_REGION(buf, size > 0 ? size : 1);
		if (r != MUX_HEAD)
			break;
		/* What parses writes back to the same bytes. */
		mux_frame_put(again, (enum mux_type)f.type, f.len, f.stream);
		if (memcmp(again, buf + off, MUX_HEAD) != 0)
			fail("mux_frame_put does not give the header back", off, MUX_HEAD, r);
		if (size - off < MUX_HEAD + (size_t)f.len)
			break;
		off += MUX_HEAD + f.len;
	}
	free(buf);
	return 0;
}
