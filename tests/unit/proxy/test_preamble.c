/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/preamble.c: valid and invalid encodings, byte by byte, and round trips. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "proxy/preamble.h"

#define H(port_hi, port_lo, len_hi, len_lo)                                                        \
	'M', 'S', 'H', 'L', 1, 0, port_hi, port_lo, len_hi, len_lo

struct valid {
	const char *name;
	uint8_t bytes[PREAMBLE_MAX];
	size_t len;
	struct preamble want;
};

struct invalid {
	const char *name;
	uint8_t bytes[PREAMBLE_MAX + 8];
	size_t len;
	int code;
	size_t at; /* the length of the shortest prefix that shows the error */
};

static const struct valid valids[] = {
	{ "port only", { H(0x1f, 0x90, 0, 0) }, 10, { .version = 1, .port = 8080 } },
	{ "version 2",
	  { 'M', 'S', 'H', 'L', 2, 0, 0x1f, 0x90, 0, 6, 0x01, 4, 10, 0, 0, 9 },
	  16,
	  { .version = 2, .port = 8080, .family = AF_INET, .addr = { 10, 0, 0, 9 } } },
	{ "port 1", { H(0, 1, 0, 0) }, 10, { .version = 1, .port = 1 } },
	{ "port 65535", { H(0xff, 0xff, 0, 0) }, 10, { .version = 1, .port = 65535 } },
	{ "IPv4",
	  { H(0, 80, 0, 6), 0x01, 4, 10, 0, 0, 7 },
	  16,
	  { .version = 1, .port = 80, .family = AF_INET, .addr = { 10, 0, 0, 7 } } },
	{ "IPv6",
	  { H(0x01, 0xbb, 0, 18), 0x02, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
	  28,
	  { .version = 1, .port = 443, .family = AF_INET6, .addr = { 0xfd, [15] = 1 } } },
	{ "optional field skipped",
	  { H(0, 22, 0, 5), 0x80, 3, 'a', 'b', 'c' },
	  15,
	  { .version = 1, .port = 22 } },
	{ "empty optional field", { H(0, 22, 0, 2), 0xff, 0 }, 12, { .version = 1, .port = 22 } },
	{ "IPv4 then optional fields",
	  { H(0, 53, 0, 9), 0x01, 4, 192, 168, 1, 1, 0x81, 1, 'x' },
	  19,
	  { .version = 1, .port = 53, .family = AF_INET, .addr = { 192, 168, 1, 1 } } },
};

static const struct invalid invalids[] = {
	{ "first byte", { 'X' }, 1, ERR_PREAMBLE_MAGIC, 1 },
	{ "lowercase magic", { 'm', 'S', 'H', 'L', 1 }, 5, ERR_PREAMBLE_MAGIC, 1 },
	{ "fourth byte", { 'M', 'S', 'H', 'X', 1, 0 }, 6, ERR_PREAMBLE_MAGIC, 4 },
	{ "an HTTP request", "GET / HTTP/1.1\r\n", 16, ERR_PREAMBLE_MAGIC, 1 },
	{ "a TLS record", { 0x16, 0x03, 0x01, 0x00, 0xc8 }, 5, ERR_PREAMBLE_MAGIC, 1 },
	{ "version 0", { 'M', 'S', 'H', 'L', 0, 0, 0, 80, 0, 0 }, 10, ERR_PREAMBLE_VERSION, 5 },
	{ "version 4", { 'M', 'S', 'H', 'L', 4, 0, 0, 80, 0, 0 }, 10, ERR_PREAMBLE_VERSION, 5 },
	{ "version 255", { 'M', 'S', 'H', 'L', 255 }, 5, ERR_PREAMBLE_VERSION, 5 },
	{ "flag bit 0", { 'M', 'S', 'H', 'L', 1, 1, 0, 80, 0, 0 }, 10, ERR_PREAMBLE_FLAGS, 6 },
	{ "flag bit 7", { 'M', 'S', 'H', 'L', 1, 0x80, 0, 80, 0, 0 }, 10, ERR_PREAMBLE_FLAGS, 6 },
	{ "port 0", { H(0, 0, 0, 0) }, 10, ERR_PREAMBLE_MALFORMED, 8 },
	{ "length 247", { H(0, 80, 0, 247) }, 10, ERR_PREAMBLE_TOO_LARGE, 10 },
	{ "length 65535", { H(0, 80, 0xff, 0xff) }, 10, ERR_PREAMBLE_TOO_LARGE, 10 },
	{ "field type 0", { H(0, 80, 0, 2), 0, 0 }, 12, ERR_PREAMBLE_MALFORMED, 11 },
	{ "unknown required field", { H(0, 80, 0, 2), 0x03, 0 }, 12, ERR_PREAMBLE_MALFORMED, 11 },
	{ "unknown required 0x7f", { H(0, 80, 0, 2), 0x7f, 0 }, 12, ERR_PREAMBLE_MALFORMED, 11 },
	{ "IPv4 of 3 bytes", { H(0, 80, 0, 5), 0x01, 3, 1, 2, 3 }, 15, ERR_PREAMBLE_MALFORMED, 12 },
	{ "IPv4 of 5 bytes",
	  { H(0, 80, 0, 7), 0x01, 5, 1, 2, 3, 4, 5 },
	  17,
	  ERR_PREAMBLE_MALFORMED,
	  12 },
	{ "IPv6 of 4 bytes",
	  { H(0, 80, 0, 6), 0x02, 4, 1, 2, 3, 4 },
	  16,
	  ERR_PREAMBLE_MALFORMED,
	  12 },
	{ "IPv4 and IPv6",
	  { H(0, 80, 0, 24), 0x01, 4, 1, 2, 3, 4, 0x02, 16 },
	  18,
	  ERR_PREAMBLE_MALFORMED,
	  17 },
	{ "IPv4 twice",
	  { H(0, 80, 0, 12), 0x01, 4, 1, 2, 3, 4, 0x01, 4, 1, 2, 3, 4 },
	  22,
	  ERR_PREAMBLE_MALFORMED,
	  17 },
	{ "fields out of order",
	  { H(0, 80, 0, 8), 0x90, 0, 0x01, 4, 1, 2, 3, 4 },
	  18,
	  ERR_PREAMBLE_MALFORMED,
	  13 },
	{ "field beyond the length",
	  { H(0, 80, 0, 4), 0x01, 4, 1, 2, 3, 4 },
	  16,
	  ERR_PREAMBLE_MALFORMED,
	  12 },
	{ "optional field beyond the length",
	  { H(0, 80, 0, 3), 0x80, 2, 'a', 'b' },
	  14,
	  ERR_PREAMBLE_MALFORMED,
	  12 },
};

static void check_valid(const struct valid *v)
{
	uint8_t buf[PREAMBLE_MAX + 4];
	struct preamble got;

	for (size_t k = 0; k < v->len; k++) {
		int rc = preamble_parse(v->bytes, k, &got);

		if (rc != 0)
			fail_msg("%s: prefix of %zu bytes gives %s (%d), want 0 (more)", v->name, k,
			         err_name(rc), rc);
	}
	memset(&got, 0xaa, sizeof(got));
	assert_int_equal(preamble_parse(v->bytes, v->len, &got), (int)v->len);
	assert_int_equal(got.version, v->want.version);
	assert_int_equal(got.port, v->want.port);
	assert_int_equal(got.flags, 0);
	assert_int_equal(got.family, v->want.family);
	if (got.family != AF_UNSPEC)
		assert_memory_equal(got.addr, v->want.addr, got.family == AF_INET ? 4 : 16);
	/* Bytes after it are the application's: not looked at. */
	memcpy(buf, v->bytes, v->len);
	memcpy(buf + v->len, "\x16\x03\x01\x00", 4);
	assert_int_equal(preamble_parse(buf, v->len + 4, &got), (int)v->len);
}

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valids) / sizeof(valids[0]); i++)
		check_valid(&valids[i]);
}

static void test_largest(void **state)
{
	struct valid v = { .name = "largest", .len = PREAMBLE_MAX, .want = { .version = 1, .port = 9 } };
	uint8_t *f = v.bytes + PREAMBLE_HEADER;

	(void)state;
	memcpy(v.bytes, (const uint8_t[]){ H(0, 9, 0, PREAMBLE_MAX - PREAMBLE_HEADER) }, 10);
	/* 0x80: 2 + 244 bytes fill the 246 bytes of fields. */
	f[0] = 0x80;
	f[1] = PREAMBLE_MAX - PREAMBLE_HEADER - 2;
	memset(f + 2, 'z', f[1]);
	check_valid(&v);
}

static void test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalids) / sizeof(invalids[0]); i++) {
		const struct invalid *t = &invalids[i];
		struct preamble got = { .port = 4242 };

		for (size_t k = 0; k <= t->len; k++) {
			int rc = preamble_parse(t->bytes, k, &got);
			int want = k < t->at ? 0 : t->code;

			if (rc != want)
				fail_msg("%s: prefix of %zu bytes gives %s (%d), want %s (%d)",
				         t->name, k, err_name(rc), rc, err_name(want), want);
		}
		/* Never written on failure. */
		assert_int_equal(got.port, 4242);
		assert_true(err_str(t->code)[0] != '\0');
	}
}

static void test_round_trip(void **state)
{
	static const uint16_t ports[] = { 1, 80, 15008, 65535 };
	static const uint8_t families[] = { AF_UNSPEC, AF_INET, AF_INET6 };
	uint8_t buf[PREAMBLE_MAX];
	struct preamble p, got;

	(void)state;
	for (size_t i = 0; i < 8; i++) {
		for (size_t j = 0; j < 3; j++) {
			int n;

			memset(&p, 0, sizeof(p));
			p.version = i < 4 ? 1 : 2;
			p.port = ports[i % 4];
			p.family = families[j];
			for (int b = 0; b < 16; b++)
				p.addr[b] = (uint8_t)(b * 17 + i);
			n = preamble_encode(&p, buf, sizeof(buf));
			assert_int_equal(n, families[j] == AF_UNSPEC ? 10
			                    : families[j] == AF_INET ? 16
			                                             : 28);
			assert_int_equal(preamble_parse(buf, (size_t)n, &got), n);
			assert_int_equal(got.version, p.version);
			assert_int_equal(got.port, p.port);
			assert_int_equal(got.family, p.family);
			if (p.family != AF_UNSPEC)
				assert_memory_equal(got.addr, p.addr, p.family == AF_INET ? 4 : 16);
			/* Too small a buffer: every size short of n. */
			for (int k = 0; k < n; k++)
				assert_int_equal(preamble_encode(&p, buf, (size_t)k),
				                 ERR_TRUNCATED);
		}
	}
}

static void test_encode_errors(void **state)
{
	uint8_t buf[PREAMBLE_MAX];
	struct preamble p = { .port = 0 };

	(void)state;
	assert_int_equal(preamble_encode(&p, buf, sizeof(buf)), -EINVAL);
	p.port = 80;
	p.flags = 1;
	assert_int_equal(preamble_encode(&p, buf, sizeof(buf)), -EINVAL);
	p.flags = 0;
	p.version = 4;
	assert_int_equal(preamble_encode(&p, buf, sizeof(buf)), -EINVAL);
	/* 0 is version 1, for callers that fill only the port. */
	p.version = 0;
	assert_int_equal(preamble_encode(&p, buf, sizeof(buf)), 10);
	assert_int_equal(buf[4], 1);
	p.family = AF_UNIX;
	assert_int_equal(preamble_encode(&p, buf, sizeof(buf)), -EINVAL);
}

static void test_from_sockaddr(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct preamble p;

	(void)state;
	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	assert_int_equal(preamble_from_sockaddr(&p, (struct sockaddr *)&in), 0);
	assert_int_equal(p.port, 8080);
	assert_int_equal(p.family, AF_INET);
	assert_memory_equal(p.addr, "\x0a\x01\x02\x03", 4);

	inet_pton(AF_INET6, "fd00::9", &in6.sin6_addr);
	assert_int_equal(preamble_from_sockaddr(&p, (struct sockaddr *)&in6), 0);
	assert_int_equal(p.port, 443);
	assert_int_equal(p.family, AF_INET6);
	assert_memory_equal(p.addr, &in6.sin6_addr, 16);

	inet_pton(AF_INET6, "::ffff:10.9.8.7", &in6.sin6_addr);
	assert_int_equal(preamble_from_sockaddr(&p, (struct sockaddr *)&in6), 0);
	assert_int_equal(p.family, AF_INET);
	assert_memory_equal(p.addr, "\x0a\x09\x08\x07", 4);

	assert_int_equal(preamble_from_sockaddr(&p, (struct sockaddr *)&un), -EINVAL);
	in.sin_port = 0;
	assert_int_equal(preamble_from_sockaddr(&p, (struct sockaddr *)&in), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),         cmocka_unit_test(test_largest),
		cmocka_unit_test(test_invalid),       cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_errors), cmocka_unit_test(test_from_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
