/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/hello.c: real OpenSSL ClientHellos, early decisions, malformed hellos. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "proxy/hello.h"

#define PREFIX "meshlet/"
/* ALPN in wire format: each protocol behind a length byte. */
#define ALPN_OURS "\x09meshlet/2\x09meshlet/1"
#define EXT_ALPN  16
#define EXT_SNI   0
#define EXT_PAD   21
#define BUF_MAX   (HELLO_MAX + 256)

static const char *verdict_name(enum hello_verdict v)
{
	return v == HELLO_MORE      ? "MORE"
	       : v == HELLO_MESHLET ? "MESHLET"
	       : v == HELLO_OTHER   ? "OTHER"
	                            : "?";
}

/* Fails with both sides and the prefix length when hello_classify does not say want. */
static void expect(const uint8_t *p, size_t n, enum hello_verdict want, const char *what)
{
	enum hello_verdict got = hello_classify(p, n, PREFIX);

	if (got != want)
		fail_msg("%s, %zu bytes: got %s (%d), want %s (%d)", what, n, verdict_name(got),
		         (int)got, verdict_name(want), (int)want);
}

/*
 * Every prefix shorter than at says MORE, and every prefix from at to n says want (the
 * first decisive prefix is at; want must not be MORE).
 */
static void expect_from(const uint8_t *p, size_t n, size_t at, enum hello_verdict want,
                        const char *what)
{
	for (size_t k = 0; k <= n; k++)
		expect(p, k, k < at ? HELLO_MORE : want, what);
}

/* Once some prefix decides, every longer one gives the same answer; returns the first. */
static size_t expect_monotonic(const uint8_t *p, size_t n, const char *what)
{
	enum hello_verdict first = HELLO_MORE;
	size_t at = 0;

	for (size_t k = 0; k <= n; k++) {
		enum hello_verdict v = hello_classify(p, k, PREFIX);

		if (first == HELLO_MORE && v != HELLO_MORE) {
			first = v;
			at = k;
		}
		if (first != HELLO_MORE && v != first)
			fail_msg("%s: prefix %zu decided %s, prefix %zu says %s", what, at,
			         verdict_name(first), k, verdict_name(v));
	}
	return at;
}

struct hello_opts {
	int max_version;  /* 0: OpenSSL's highest */
	const char *alpn; /* wire format, NULL: no ALPN */
	size_t alpn_len;
	char *sni; /* NULL: no server_name (not const: SSL_set_tlsext_host_name casts) */
};

/* The first flight of an OpenSSL client (its ClientHello record) into out; its length. */
static size_t make_hello(const struct hello_opts *o, uint8_t *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rbio, *wbio;
	int r, n;

	assert_non_null(ctx);
	if (o->max_version != 0)
		assert_true(SSL_CTX_set_max_proto_version(ctx, o->max_version));
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	if (o->alpn != NULL)
		assert_int_equal(
		    SSL_set_alpn_protos(ssl, (const unsigned char *)o->alpn, (unsigned)o->alpn_len),
		    0);
	if (o->sni != NULL)
		assert_true(SSL_set_tlsext_host_name(ssl, o->sni));
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	assert_non_null(rbio);
	assert_non_null(wbio);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	r = SSL_do_handshake(ssl);
	assert_int_equal(r, -1);
	assert_int_equal(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
	n = BIO_read(wbio, out, (int)cap);
	assert_true(n > 9);
	assert_int_equal(BIO_pending(wbio), 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	/* One record that holds the whole ClientHello and nothing else. */
	assert_int_equal(out[0], 22);
	assert_int_equal(out[5], 1);
	assert_int_equal((size_t)n, 5 + (size_t)(out[3] << 8 | out[4]));
	assert_int_equal((size_t)n, 9 + (size_t)(out[6] << 16 | out[7] << 8 | out[8]));
	return (size_t)n;
}

static size_t make_ours(int max_version, uint8_t *out)
{
	return make_hello(
	    &(struct hello_opts){ max_version, ALPN_OURS, sizeof(ALPN_OURS) - 1, NULL }, out,
	    BUF_MAX);
}

static void put16(uint8_t *p, size_t v)
{
	assert_true(v <= 0xffff);
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t get16(const uint8_t *p)
{
	return (size_t)p[0] << 8 | p[1];
}

/*
 * A ClientHello taken apart: the body up to its extensions (version, random, session id,
 * cipher suites, compression), and each extension. The test's own parser, so that the
 * cases below can change one part and put the lengths around it right again.
 */
struct ext {
	size_t type;
	const uint8_t *body;
	size_t len;
};

struct parts {
	const uint8_t *head;
	size_t head_len;
	struct ext ext[64];
	size_t n_ext;
};

static void split(const uint8_t *p, size_t n, struct parts *pt)
{
	size_t off = 9 + 2 + 32, end, exts_end;

	assert_true(n > off);
	off += 1 + p[off];         /* session id */
	off += 2 + get16(p + off); /* cipher suites */
	off += 1 + p[off];         /* compression methods */
	assert_true(off + 2 <= n);
	pt->head = p + 9;
	pt->head_len = off - 9;
	exts_end = off + 2 + get16(p + off);
	assert_int_equal(exts_end, n);
	pt->n_ext = 0;
	for (off += 2; off < exts_end; off = end) {
		struct ext *e;

		assert_true(pt->n_ext < 64);
		e = &pt->ext[pt->n_ext++];
		e->type = get16(p + off);
		e->len = get16(p + off + 2);
		e->body = p + off + 4;
		end = off + 4 + e->len;
		assert_true(end <= exts_end);
	}
}

/* Puts the parts back together behind right lengths; the length of the record. */
static size_t join(const struct parts *pt, uint8_t *out)
{
	size_t off = 9, mlen;

	memcpy(out + off, pt->head, pt->head_len);
	off += pt->head_len + 2;
	for (size_t i = 0; i < pt->n_ext; i++) {
		assert_true(off + 4 + pt->ext[i].len <= BUF_MAX);
		put16(out + off, pt->ext[i].type);
		put16(out + off + 2, pt->ext[i].len);
		memcpy(out + off + 4, pt->ext[i].body, pt->ext[i].len);
		off += 4 + pt->ext[i].len;
	}
	put16(out + 9 + pt->head_len, off - 9 - pt->head_len - 2);
	mlen = off - 9;
	out[0] = 22;
	out[1] = 3;
	out[2] = 1;
	put16(out + 3, off - 5);
	out[5] = 1;
	out[6] = (uint8_t)(mlen >> 16);
	out[7] = (uint8_t)(mlen >> 8);
	out[8] = (uint8_t)mlen;
	return off;
}

static struct ext *find_ext(struct parts *pt, size_t type)
{
	for (size_t i = 0; i < pt->n_ext; i++)
		if (pt->ext[i].type == type)
			return &pt->ext[i];
	return NULL;
}

/* Our real hello with its ALPN extension's body replaced by len bytes at body. */
static size_t with_alpn_body(const uint8_t *body, size_t len, uint8_t *out)
{
	static uint8_t real[BUF_MAX];
	size_t n = make_ours(0, real);
	struct parts pt;
	struct ext *alpn;

	split(real, n, &pt);
	alpn = find_ext(&pt, EXT_ALPN);
	assert_non_null(alpn);
	alpn->body = body;
	alpn->len = len;
	return join(&pt, out);
}

static void test_real_hello(void **state)
{
	static const int versions[] = { 0, TLS1_3_VERSION, TLS1_2_VERSION };
	static uint8_t buf[BUF_MAX];
	(void)state;

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		size_t n = make_ours(versions[i], buf);
		char what[64];

		snprintf(what, sizeof(what), "a real hello, max version %#x", versions[i]);
		/* A valid hello cannot be told from a longer one until its record is whole. */
		expect_from(buf, n, n, HELLO_MESHLET, what);
		/* Whatever follows the record does not count: more records, data, garbage. */
		memset(buf + n, 0xff, 200);
		expect(buf, n + 200, HELLO_MESHLET, what);
		memcpy(buf + n, buf, n);
		expect(buf, 2 * n, HELLO_MESHLET, what);
		expect_monotonic(buf, 2 * n, what);
	}
}

static void test_alpn(void **state)
{
	static const struct {
		const char *name;
		const char *alpn;
		size_t len;
		enum hello_verdict want;
	} cases[] = {
		{ "h2 and http/1.1", "\x02h2\x08http/1.1", 12, HELLO_OTHER },
		{ "no ALPN", NULL, 0, HELLO_OTHER },
		{ "meshlet without a slash", "\x07meshlet", 8, HELLO_OTHER },
		{ "meshle/1", "\x08meshle/1", 9, HELLO_OTHER },
		{ "Meshlet/1 (case)", "\x09Meshlet/1", 10, HELLO_OTHER },
		{ "x then meshlet/9", "\x01x\x09meshlet/9", 12, HELLO_MESHLET },
		{ "h2 then meshlet/1", "\x02h2\x09meshlet/1", 13, HELLO_MESHLET },
		{ "the bare prefix", "\x08meshlet/", 9, HELLO_MESHLET },
		{ "meshlet/1 only", "\x09meshlet/1", 10, HELLO_MESHLET },
	};
	static uint8_t buf[BUF_MAX];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = make_hello(&(struct hello_opts){ 0, cases[i].alpn, cases[i].len, NULL },
		                      buf, sizeof(buf));

		expect_from(buf, n, n, cases[i].want, cases[i].name);
	}
}

static void test_big_hellos(void **state)
{
	static uint8_t buf[BUF_MAX], alpn[4096];
	char host[201];
	size_t n, len = 0;
	(void)state;

	/* A 200-character host name in server_name, before the ALPN extension. */
	for (size_t i = 0; i < 200; i++)
		host[i] = i % 50 == 49 ? '.' : (char)('a' + i % 26);
	host[200] = '\0';
	n = make_hello(&(struct hello_opts){ 0, ALPN_OURS, sizeof(ALPN_OURS) - 1, host }, buf,
	               sizeof(buf));
	assert_true(n > 400);
	expect_from(buf, n, n, HELLO_MESHLET, "a 200-character SNI");
	n = make_hello(&(struct hello_opts){ TLS1_2_VERSION, "\x02h2", 3, host }, buf, sizeof(buf));
	expect_from(buf, n, n, HELLO_OTHER, "a 200-character SNI, h2");

	/* 300 other protocols, ours last. */
	for (int i = 0; i < 300; i++)
		len += (size_t)sprintf((char *)alpn + len, "%cproto-%03d", 9, i);
	len += (size_t)sprintf((char *)alpn + len, "%cmeshlet/1", 9);
	n = make_hello(&(struct hello_opts){ 0, (char *)alpn, len, NULL }, buf, sizeof(buf));
	assert_true(n > 3000);
	expect_from(buf, n, n, HELLO_MESHLET, "300 protocols, then ours");
}

/* The largest record: a padding extension makes our hello exactly HELLO_MAX bytes. */
static void test_largest(void **state)
{
	static uint8_t real[BUF_MAX], buf[BUF_MAX], pad[HELLO_MAX];
	size_t n = make_ours(0, real);
	struct parts pt;
	(void)state;

	split(real, n, &pt);
	pt.ext[pt.n_ext++] = (struct ext){ EXT_PAD, pad, HELLO_MAX - n - 4 };
	n = join(&pt, buf);
	assert_int_equal(n, HELLO_MAX);
	expect_from(buf, n, n, HELLO_MESHLET, "a hello of HELLO_MAX bytes");
	expect(buf, n + 10, HELLO_MESHLET, "a hello of HELLO_MAX bytes and more");

	/* One byte more does not fit a record: the record length says so at once. */
	pt.ext[pt.n_ext - 1].len++;
	n = join(&pt, buf);
	assert_int_equal(n, HELLO_MAX + 1);
	expect_from(buf, n, 5, HELLO_OTHER, "a hello one byte too long");
}

static void test_early(void **state)
{
	static const struct {
		const char *name;
		uint8_t bytes[16];
		size_t len;
		size_t at; /* the shortest prefix that decides */
	} cases[] = {
		{ "an HTTP request", "GET / HTTP/1.1\r\n", 16, 1 },
		{ "a PROXY header", "PROXY TCP4 ", 11, 1 },
		{ "an SSLv2 hello", { 0x80, 0x2e, 0x01, 0x00, 0x02 }, 5, 1 },
		{ "an alert record", { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 }, 7, 1 },
		{ "application data", { 0x17, 0x03, 0x03, 0x00, 0x01, 0x00 }, 6, 1 },
		{ "record version 2", { 0x16, 0x02 }, 2, 2 },
		{ "record version 4", { 0x16, 0x04, 0x01, 0x00, 0x10, 0x01 }, 6, 2 },
		{ "record length 0", { 0x16, 0x03, 0x01, 0x00, 0x00, 0x01, 0x00 }, 7, 5 },
		{ "record length 16385", { 0x16, 0x03, 0x01, 0x40, 0x01, 0x01 }, 6, 5 },
		{ "record length 65535", { 0x16, 0x03, 0x03, 0xff, 0xff }, 5, 5 },
		{ "a ServerHello", { 0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00 }, 7, 6 },
		{ "a HelloRequest",
		  { 0x16, 0x03, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00 },
		  9,
		  6 },
		{ "a record of 1 byte", { 0x16, 0x03, 0x01, 0x00, 0x01, 0x01, 0xff }, 7, 6 },
		{ "a record of 4 bytes",
		  { 0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00 },
		  9,
		  9 },
	};
	static uint8_t big[HELLO_MAX + 1];
	(void)state;

	expect(NULL, 0, HELLO_MORE, "nothing");
	expect((const uint8_t *)"", 0, HELLO_MORE, "nothing");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_from(cases[i].bytes, cases[i].len, cases[i].at, HELLO_OTHER, cases[i].name);

	/* The longest record allowed waits for all of its 16,384 bytes. */
	memcpy(big, "\x16\x03\x01\x40\x00\x01", 6);
	expect(big, 5, HELLO_MORE, "record length 16384");
	expect(big, 6, HELLO_MORE, "record length 16384");
	expect(big, HELLO_MAX - 1, HELLO_MORE, "record length 16384");
	expect(big, HELLO_MAX, HELLO_OTHER, "record length 16384 of zeros");
	expect(big, HELLO_MAX + 1, HELLO_OTHER, "record length 16384 of zeros");
}

/* A ClientHello split over two records, as a client with a small fragment length sends it. */
static void test_fragmented(void **state)
{
	static uint8_t real[BUF_MAX], buf[BUF_MAX];
	size_t n = make_ours(0, real);
	(void)state;

	/* The handshake length says one byte more than the record holds. */
	memcpy(buf, real, n);
	buf[8]++;
	expect_from(buf, n, n, HELLO_OTHER, "handshake length + 1");
	expect_monotonic(buf, n, "handshake length + 1");
	/* And a great deal more. */
	buf[6] = 0xff;
	expect_from(buf, n, n, HELLO_OTHER, "handshake length 16M");

	/* The first record carries the first bytes of the message, the second the rest. */
	for (size_t first = 4; first < n - 5; first += 37) {
		memcpy(buf, real, 5 + first);
		put16(buf + 3, first);
		buf[5 + first] = 22;
		buf[5 + first + 1] = 3;
		buf[5 + first + 2] = 3;
		put16(buf + 5 + first + 3, n - 5 - first);
		memcpy(buf + 5 + first + 5, real + 5 + first, n - 5 - first);
		expect_from(buf, n + 5, 5 + first, HELLO_OTHER, "a fragmented hello");
	}
}

/* The message cut short at every byte, with the record and handshake lengths made to match. */
static void test_cut(void **state)
{
	static uint8_t real[BUF_MAX], buf[BUF_MAX];
	size_t n = make_ours(0, real);
	(void)state;

	for (size_t mlen = 0; mlen < n - 9; mlen++) {
		memcpy(buf, real, 9 + mlen);
		put16(buf + 3, 4 + mlen);
		buf[6] = 0;
		put16(buf + 7, mlen);
		expect_from(buf, 9 + mlen, 9 + mlen, HELLO_OTHER, "a hello cut short");
	}
}

/* The extension list's own length wrong, or the list cut inside an extension. */
static void test_extension_list(void **state)
{
	static const long deltas[] = { 1, -1, 2, -4 };
	static uint8_t real[BUF_MAX], buf[BUF_MAX];
	size_t n = make_ours(0, real), at;
	struct parts pt;
	(void)state;

	split(real, n, &pt);
	at = 9 + pt.head_len; /* where the list's length is */

	/* A little more or less than the extensions take. */
	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		memcpy(buf, real, n);
		put16(buf + at, (size_t)((long)get16(real + at) + deltas[i]));
		expect_from(buf, n, n, HELLO_OTHER, "extension list length off");
		expect_monotonic(buf, n, "extension list length off");
	}
	memcpy(buf, real, n);
	put16(buf + at, 0);
	expect_from(buf, n, n, HELLO_OTHER, "extension list length 0");
	put16(buf + at, 0xffff);
	expect_from(buf, n, n, HELLO_OTHER, "extension list length 65535");

	/* Only one byte of the list's length. */
	memcpy(buf, real, at + 1);
	put16(buf + 3, at + 1 - 5);
	buf[6] = 0;
	put16(buf + 7, at + 1 - 9);
	expect_from(buf, at + 1, at + 1, HELLO_OTHER, "one byte of the list length");

	/* No extensions at all (legal, but no ALPN). */
	memcpy(buf, real, at);
	put16(buf + 3, at - 5);
	buf[6] = 0;
	put16(buf + 7, at - 9);
	expect_from(buf, at, at, HELLO_OTHER, "no extension list");

	/* The first extension, before ALPN, says one byte more than it has. */
	memcpy(buf, real, n);
	assert_true(pt.ext[0].type != EXT_ALPN);
	put16(buf + at + 4, pt.ext[0].len + 1);
	expect_from(buf, n, n, HELLO_OTHER, "first extension overruns the list");
}

/*
 * A hello that goes wrong after a good ALPN extension is malformed all the same: the list
 * cut inside a later extension, with every length around it (record, handshake, extension
 * list) made to match, or a second ALPN extension (RFC 8446 4.2: at most one of a type).
 */
static void test_after_alpn(void **state)
{
	static const uint8_t second[] = "\x00\x0a\x09meshlet/2";
	static uint8_t real[BUF_MAX], buf[BUF_MAX];
	size_t n = make_ours(0, real), last;
	struct parts pt;
	(void)state;

	split(real, n, &pt);
	assert_int_not_equal(pt.ext[pt.n_ext - 1].type, EXT_ALPN);
	/* The last extension says one byte more than the list holds. */
	last = n - pt.ext[pt.n_ext - 1].len - 4;
	memcpy(buf, real, n);
	put16(buf + last + 2, pt.ext[pt.n_ext - 1].len + 1);
	expect_from(buf, n, n, HELLO_OTHER, "last extension overruns the list");

	/* Only 1 to 3 bytes of the last extension's header. */
	for (size_t keep = 1; keep < 4; keep++) {
		size_t m = last + keep;

		memcpy(buf, real, m);
		put16(buf + 3, m - 5);
		buf[6] = 0;
		put16(buf + 7, m - 9);
		put16(buf + 9 + pt.head_len, m - 9 - pt.head_len - 2);
		expect_from(buf, m, m, HELLO_OTHER, "last extension header cut");
	}

	/* Two ALPN extensions, both ours. */
	pt.ext[pt.n_ext++] = (struct ext){ EXT_ALPN, second, sizeof(second) - 1 };
	n = join(&pt, buf);
	expect_from(buf, n, n, HELLO_OTHER, "two ALPN extensions");
}

static void test_alpn_malformed(void **state)
{
	static const struct {
		const char *name;
		uint8_t body[32];
		size_t len;
		enum hello_verdict want;
	} cases[] = {
		/* The control: the rebuilt hello is right. */
		{ "meshlet/2", "\x00\x0a\x09meshlet/2", 12, HELLO_MESHLET },
		{ "empty extension", "", 0, HELLO_OTHER },
		{ "one byte of the list length", "\x00", 1, HELLO_OTHER },
		{ "an empty list", "\x00\x00", 2, HELLO_OTHER },
		{ "a zero-length name", "\x00\x01\x00", 3, HELLO_OTHER },
		{ "ours then a zero-length name", "\x00\x0b\x09meshlet/2\x00", 13, HELLO_OTHER },
		{ "a zero-length name then ours", "\x00\x0b\x00\x09meshlet/2", 13, HELLO_OTHER },
		{ "trailing garbage", "\x00\x0a\x09meshlet/2x", 13, HELLO_OTHER },
		{ "trailing zero", "\x00\x0a\x09meshlet/2\x00", 13, HELLO_OTHER },
		{ "list length past the extension", "\x00\x0b\x09meshlet/2", 12, HELLO_OTHER },
		{ "list length short", "\x00\x09\x09meshlet/2", 12, HELLO_OTHER },
		{ "name past the list", "\x00\x0a\x0ameshlet/2", 12, HELLO_OTHER },
		{ "name past the list, then ours", "\x00\x0c\x0a\x01x\x09meshlet/2", 14,
		  HELLO_OTHER },
	};
	static uint8_t buf[BUF_MAX];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = with_alpn_body(cases[i].body, cases[i].len, buf);

		expect_from(buf, n, n, cases[i].want, cases[i].name);
	}
}

/* Prefixes, bytes of the hello changed one at a time: answers never change once given. */
static void test_monotonic(void **state)
{
	static uint8_t real[BUF_MAX], buf[BUF_MAX];
	size_t n = make_ours(TLS1_2_VERSION, real);
	(void)state;

	memset(real + n, 0x16, 64);
	for (size_t i = 0; i < n + 64; i += 3) {
		memcpy(buf, real, n + 64);
		buf[i] ^= 0x5a;
		expect_monotonic(buf, n + 64, "a hello with one byte changed");
		buf[i] = 0;
		expect_monotonic(buf, n + 64, "a hello with one byte zeroed");
	}
}

/* The prefix is the caller's: other prefixes, and the empty one that any name starts with. */
static void test_prefix(void **state)
{
	static uint8_t buf[BUF_MAX];
	size_t n =
	    make_hello(&(struct hello_opts){ 0, "\x02h2\x08http/1.1", 12, NULL }, buf, sizeof(buf));
	(void)state;

	assert_int_equal(hello_classify(buf, n, "h2"), HELLO_MESHLET);
	assert_int_equal(hello_classify(buf, n, "http/"), HELLO_MESHLET);
	assert_int_equal(hello_classify(buf, n, ""), HELLO_MESHLET);
	assert_int_equal(hello_classify(buf, n, "http/1.1+"), HELLO_OTHER);
	assert_int_equal(hello_classify(buf, n - 1, ""), HELLO_MORE);
	n = make_hello(&(struct hello_opts){ 0, NULL, 0, NULL }, buf, sizeof(buf));
	assert_int_equal(hello_classify(buf, n, ""), HELLO_OTHER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hello), cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_big_hellos), cmocka_unit_test(test_largest),
		cmocka_unit_test(test_early),      cmocka_unit_test(test_fragmented),
		cmocka_unit_test(test_cut),        cmocka_unit_test(test_extension_list),
		cmocka_unit_test(test_after_alpn), cmocka_unit_test(test_alpn_malformed),
		cmocka_unit_test(test_monotonic),  cmocka_unit_test(test_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
