/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/mux.c: tunnel protocol 3 frames, and muxes against scripted peers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "meshlet/err.h"
#include "meshlet/log.h"
#include "proxy/loop.h"
#include "proxy/mux.h"
#include "proxy/preamble.h"
#include "proxy/relay.h"

#define CLIENT_ID "spiffe://example.org/ns/default/sa/client"
#define SERVER_ID "spiffe://example.org/ns/default/sa/server"
/* Bounds every wait: the peers' socket timeouts and the loop runs (valgrind is slow). */
#define IO_TIMEOUT_SEC 10
#define RUN_MS         8000
/* The last frame type of mux.h's table: every type above it is invalid. */
#define LAST_TYPE MUX_STOP
/* A receiver grants in batches of this much (mux.h: "in grants of MUX_WINDOW / 2"). */
#define GRANT (MUX_WINDOW / 2)

/* Frame headers */

/* Parses the 8 bytes of a header given as its fields (flags included), all of them. */
static int parse_fields(uint8_t type, uint8_t flags, uint16_t len, uint32_t stream,
                        struct mux_frame *f)
{
	uint8_t b[MUX_HEAD] = { type,
		                flags,
		                (uint8_t)(len >> 8),
		                (uint8_t)len,
		                (uint8_t)(stream >> 24),
		                (uint8_t)(stream >> 16),
		                (uint8_t)(stream >> 8),
		                (uint8_t)stream };

	return mux_frame_parse(b, sizeof(b), f);
}

static void expect_valid(uint8_t type, uint16_t len, uint32_t stream)
{
	struct mux_frame f = { 0xee, 0xeeee, 0xeeeeeeee };
	int rc = parse_fields(type, 0, len, stream, &f);

	if (rc != MUX_HEAD)
		fail_msg("type %u len %u stream %u: %d (%s), want MUX_HEAD", type, len, stream, rc,
		         err_str(rc));
	assert_int_equal(f.type, type);
	assert_int_equal(f.len, len);
	assert_int_equal(f.stream, stream);
}

static void expect_invalid(uint8_t type, uint8_t flags, uint16_t len, uint32_t stream)
{
	struct mux_frame f = { 0xee, 0xeeee, 0xeeeeeeee };
	int rc = parse_fields(type, flags, len, stream, &f);

	if (rc != ERR_MUX_FRAME)
		fail_msg("type %u flags %#x len %u stream %u: %d, want ERR_MUX_FRAME", type, flags,
		         len, stream, rc);
	/* A header that fails leaves *f alone. */
	assert_int_equal(f.type, 0xee);
	assert_int_equal(f.len, 0xeeee);
	assert_int_equal(f.stream, 0xeeeeeeee);
}

/* Proves every frame type of the table in mux.h (DATA to STOP) is accepted at both ends of its
 * lengths, with any stream ID of the right kind, and that the fields come out as sent. */
static void test_frame_valid(void **state)
{
	(void)state;
	expect_valid(MUX_DATA, 1, 1);
	expect_valid(MUX_DATA, MUX_FRAME_MAX, 1);
	expect_valid(MUX_DATA, 16384, 0xffffffffu);
	expect_valid(MUX_DATA, 777, 0x80000000u);
	expect_valid(MUX_OPEN, 10, 1);
	expect_valid(MUX_OPEN, 256, 0x7fffffffu);
	expect_valid(MUX_OPEN, PREAMBLE_HEADER, 3);
	expect_valid(MUX_OPEN, PREAMBLE_MAX, 3);
	expect_valid(MUX_END, 0, 1);
	expect_valid(MUX_END, 0, 0xffffffffu);
	expect_valid(MUX_RESET, 0, 1);
	expect_valid(MUX_RESET, 0, 0x01020304u);
	expect_valid(MUX_WINDOW_UPDATE, 4, 1);
	expect_valid(MUX_WINDOW_UPDATE, 4, 0xffffffffu);
	expect_valid(MUX_GOAWAY, 4, 0);
	expect_valid(MUX_STOP, 0, 1);
	expect_valid(MUX_STOP, 0, 0xffffffffu);
}

/* Proves that every header the table forbids is refused with ERR_MUX_FRAME: unknown types,
 * any flag bit, lengths just outside each range, stream 0 where a stream is needed, and a
 * stream on GOAWAY. */
static void test_frame_invalid(void **state)
{
	static const uint8_t bad_types[] = {
		LAST_TYPE + 1, LAST_TYPE + 2, 0x10, 0x7f, 0x80, 0xfe, 0xff,
	};
	static const struct {
		uint8_t type;
		uint16_t len;
		uint32_t stream;
	} good[] = {
		{ MUX_DATA, 1, 1 },  { MUX_OPEN, 10, 1 },         { MUX_END, 0, 1 },
		{ MUX_RESET, 0, 1 }, { MUX_WINDOW_UPDATE, 4, 1 }, { MUX_GOAWAY, 4, 0 },
		{ MUX_STOP, 0, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad_types); i++)
		for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++)
			expect_invalid(bad_types[i], 0, good[g].len, good[g].stream);
	for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++)
		for (unsigned bit = 0; bit < 8; bit++)
			expect_invalid(good[g].type, (uint8_t)(1u << bit), good[g].len,
			               good[g].stream);
	for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++)
		expect_invalid(good[g].type, 0xff, good[g].len, good[g].stream);
	/* Lengths. */
	expect_invalid(MUX_DATA, 0, 0, 1);
	expect_invalid(MUX_DATA, 0, MUX_FRAME_MAX + 1, 1);
	expect_invalid(MUX_DATA, 0, 0xffff, 1);
	expect_invalid(MUX_OPEN, 0, 0, 1);
	expect_invalid(MUX_OPEN, 0, 9, 1);
	expect_invalid(MUX_OPEN, 0, 257, 1);
	expect_invalid(MUX_OPEN, 0, 0xffff, 1);
	expect_invalid(MUX_END, 0, 1, 1);
	expect_invalid(MUX_END, 0, 4, 1);
	expect_invalid(MUX_END, 0, 0x100, 1);
	expect_invalid(MUX_RESET, 0, 1, 1);
	expect_invalid(MUX_RESET, 0, 0x100, 1);
	expect_invalid(MUX_STOP, 0, 1, 1);
	expect_invalid(MUX_STOP, 0, 4, 1);
	expect_invalid(MUX_WINDOW_UPDATE, 0, 0, 1);
	expect_invalid(MUX_WINDOW_UPDATE, 0, 3, 1);
	expect_invalid(MUX_WINDOW_UPDATE, 0, 5, 1);
	expect_invalid(MUX_WINDOW_UPDATE, 0, 0x0104, 1);
	expect_invalid(MUX_GOAWAY, 0, 0, 0);
	expect_invalid(MUX_GOAWAY, 0, 3, 0);
	expect_invalid(MUX_GOAWAY, 0, 5, 0);
	expect_invalid(MUX_GOAWAY, 0, 0x0104, 0);
	/* Stream IDs of the wrong kind. */
	expect_invalid(MUX_DATA, 0, 1, 0);
	expect_invalid(MUX_OPEN, 0, 10, 0);
	expect_invalid(MUX_END, 0, 0, 0);
	expect_invalid(MUX_RESET, 0, 0, 0);
	expect_invalid(MUX_WINDOW_UPDATE, 0, 4, 0);
	expect_invalid(MUX_STOP, 0, 0, 0);
	expect_invalid(MUX_GOAWAY, 0, 4, 1);
	expect_invalid(MUX_GOAWAY, 0, 4, 0x80000000u);
	expect_invalid(MUX_GOAWAY, 0, 4, 0xffffffffu);
}

/* Proves the incremental contract: a partial header is 0 ("more"), except that a bad type
 * fails at byte 1 and bad flags at byte 2; the length and stream are judged at byte 8;
 * bytes after the header change nothing. Checked for every (type, flags) pair. */
static void test_frame_partial(void **state)
{
	uint8_t b[64] = { 0 };
	struct mux_frame f;

	(void)state;
	assert_int_equal(mux_frame_parse(b, 0, &f), 0);
	for (unsigned type = 0; type < 256; type++) {
		for (unsigned flags = 0; flags < 256; flags++) {
			bool type_ok = type <= LAST_TYPE;

			b[0] = (uint8_t)type;
			b[1] = (uint8_t)flags;
			assert_int_equal(mux_frame_parse(b, 1, &f), type_ok ? 0 : ERR_MUX_FRAME);
			assert_int_equal(mux_frame_parse(b, 2, &f),
			                 type_ok && flags == 0 ? 0 : ERR_MUX_FRAME);
		}
	}
	/* A valid DATA header: 0 up to 7 bytes, then MUX_HEAD whatever follows. */
	memset(b, 0xa5, sizeof(b));
	mux_frame_put(b, MUX_DATA, 300, 7);
	for (size_t n = 0; n < MUX_HEAD; n++) {
		f.len = 0xeeee;
		assert_int_equal(mux_frame_parse(b, n, &f), 0);
		assert_int_equal(f.len, 0xeeee); /* nothing filled before it is whole */
	}
	for (size_t n = MUX_HEAD; n <= sizeof(b); n++) {
		assert_int_equal(mux_frame_parse(b, n, &f), MUX_HEAD);
		assert_int_equal(f.len, 300);
		assert_int_equal(f.stream, 7);
	}
	/* A length or stream that is wrong is not seen before the header is whole. */
	mux_frame_put(b, MUX_DATA, 0, 0);
	for (size_t n = 0; n < MUX_HEAD; n++)
		assert_int_equal(mux_frame_parse(b, n, &f), 0);
	assert_int_equal(mux_frame_parse(b, MUX_HEAD, &f), ERR_MUX_FRAME);
	assert_int_equal(mux_frame_parse(b, sizeof(b), &f), ERR_MUX_FRAME);
	/* A bad type fails with one byte, and keeps failing with more. */
	b[0] = LAST_TYPE + 1;
	for (size_t n = 1; n <= sizeof(b); n++)
		assert_int_equal(mux_frame_parse(b, n, &f), ERR_MUX_FRAME);
	/* Bad flags: the first byte alone is fine, the second fails. */
	mux_frame_put(b, MUX_END, 0, 1);
	b[1] = 0x40;
	assert_int_equal(mux_frame_parse(b, 1, &f), 0);
	for (size_t n = 2; n <= sizeof(b); n++)
		assert_int_equal(mux_frame_parse(b, n, &f), ERR_MUX_FRAME);
}

/* Proves mux_frame_put writes the documented big-endian layout, and that what it writes
 * parses back to the same fields. */
static void test_frame_put(void **state)
{
	static const struct {
		enum mux_type type;
		uint16_t len;
		uint32_t stream;
	} cases[] = {
		{ MUX_DATA, 1, 1 },
		{ MUX_DATA, 0x1234, 0xdeadbeef },
		{ MUX_DATA, MUX_FRAME_MAX, 0xffffffffu },
		{ MUX_OPEN, 10, 2 },
		{ MUX_OPEN, 256, 0x00010000u },
		{ MUX_END, 0, 3 },
		{ MUX_RESET, 0, 0x80000001u },
		{ MUX_WINDOW_UPDATE, 4, 0x7fffffffu },
		{ MUX_GOAWAY, 4, 0 },
		{ MUX_STOP, 0, 9 },
	};
	static const uint8_t want[MUX_HEAD] = { 0, 0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef };
	uint8_t b[MUX_HEAD + 1];
	struct mux_frame f;

	(void)state;
	memset(b, 0x5a, sizeof(b));
	mux_frame_put(b, MUX_DATA, 0x1234, 0xdeadbeef);
	assert_memory_equal(b, want, MUX_HEAD);
	assert_int_equal(b[MUX_HEAD], 0x5a); /* exactly 8 bytes written */
	mux_frame_put(b, MUX_GOAWAY, 4, 0);
	assert_memory_equal(b, "\x05\x00\x00\x04\x00\x00\x00\x00", MUX_HEAD);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(b, 0xff, sizeof(b));
		mux_frame_put(b, cases[i].type, cases[i].len, cases[i].stream);
		assert_int_equal(mux_frame_parse(b, MUX_HEAD, &f), MUX_HEAD);
		assert_int_equal(f.type, cases[i].type);
		assert_int_equal(f.len, cases[i].len);
		assert_int_equal(f.stream, cases[i].stream);
	}
}

/* Certificates made at run time: a CA, a server leaf and a client leaf with SPIFFE IDs. */

static struct {
	EVP_PKEY *ca_key, *server_key, *client_key;
	X509 *ca, *server, *client;
	SSL_CTX *srv3_ctx; /* server leaf, selects meshlet/3, requires a client certificate */
	SSL_CTX *srv2_ctx; /* the same, but selects meshlet/2: an older proxy */
	SSL_CTX *cli_ctx;  /* client leaf; verifies the server against ca */
} pki;

static unsigned char alpn3[] = "\x09meshlet/3";
static unsigned char alpn2[] = "\x09meshlet/2";

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                       const char *san, int ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	name = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
	                                       -1, -1, 0));
	assert_true(X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_basic_constraints,
	                           ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	assert_non_null(ext);
	assert_true(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
	if (san != NULL) {
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

/* The server's ALPN choice: the protocol in arg (length-prefixed) if the client offers it. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *want = arg;

	(void)ssl;
	for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
		if (i + 1u + in[i] <= inlen && in[i] == want[0] &&
		    memcmp(in + i + 1, want + 1, want[0]) == 0) {
			*out = in + i + 1;
			*outlen = in[i];
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *make_ctx(bool server, X509 *cert, EVP_PKEY *key, unsigned char *alpn)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	assert_non_null(ctx);
	assert_true(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION));
	assert_true(SSL_CTX_use_certificate(ctx, cert));
	assert_true(SSL_CTX_use_PrivateKey(ctx, key));
	assert_true(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), pki.ca));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (alpn != NULL)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, alpn);
	return ctx;
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	log_init("test_mux", LOG_ERROR, LOG_FORMAT_TEXT, 2);
	pki.ca_key = EVP_EC_gen("P-256");
	pki.server_key = EVP_EC_gen("P-256");
	pki.client_key = EVP_EC_gen("P-256");
	if (!pki.ca_key || !pki.server_key || !pki.client_key)
		return -1;
	pki.ca = make_cert(pki.ca_key, pki.ca_key, NULL, "test CA", NULL, 1);
	pki.server = make_cert(pki.server_key, pki.ca_key, pki.ca, "server", "URI:" SERVER_ID, 0);
	pki.client = make_cert(pki.client_key, pki.ca_key, pki.ca, "client", "URI:" CLIENT_ID, 0);
	pki.srv3_ctx = make_ctx(true, pki.server, pki.server_key, alpn3);
	pki.srv2_ctx = make_ctx(true, pki.server, pki.server_key, alpn2);
	pki.cli_ctx = make_ctx(false, pki.client, pki.client_key, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	SSL_CTX_free(pki.srv3_ctx);
	SSL_CTX_free(pki.srv2_ctx);
	SSL_CTX_free(pki.cli_ctx);
	X509_free(pki.ca);
	X509_free(pki.server);
	X509_free(pki.client);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.server_key);
	EVP_PKEY_free(pki.client_key);
	return 0;
}

/* Sockets */

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/*
 * A socket bound to 127.0.0.1 on a free port; listening when listen_too, with a receive
 * buffer of rcvbuf bytes (0: the default) for the connections it accepts.
 */
static int bind_loopback_rcvbuf(bool listen_too, int rcvbuf, int *port)
{
	struct sockaddr_in sin = loopback(0);
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (listen_too)
		assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int bind_loopback(bool listen_too, int *port)
{
	return bind_loopback_rcvbuf(listen_too, 0, port);
}

static void io_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A version 3 preamble naming port (and 10.0.0.1 as the original address). */
static size_t pre3(uint8_t *buf, uint16_t port)
{
	struct preamble p = { .version = PREAMBLE_VERSION_3, .port = port, .family = AF_INET };
	int n;

	memcpy(p.addr, "\x0a\x00\x00\x01", 4);
	n = preamble_encode(&p, buf, PREAMBLE_MAX);
	assert_true(n >= PREAMBLE_HEADER);
	return (size_t)n;
}

/* The bytes of a stream that tests send in bulk: a function of the stream and offset. */
static uint8_t pat(uint32_t id, uint64_t off)
{
	return (uint8_t)(off * 131u + (off >> 9) + id * 7u);
}

/*
 * The scripted peer: a thread with a blocking TLS connection that reads and writes raw
 * frames. It never asserts (cmocka's asserts belong to the test's thread): it records what
 * it saw, and the first thing that went wrong in err, for the test to check after the join.
 */

#define NSTREAM 8 /* streams 1..7 */
#define NLOG    64

enum peer_end {
	PEER_OPEN,         /* not ended (yet) */
	PEER_CLOSE_NOTIFY, /* a clean TLS close */
	PEER_EOF,          /* the TCP connection ended without close_notify */
	PEER_RESET,        /* ECONNRESET */
	PEER_TIMEOUT,      /* nothing came for IO_TIMEOUT_SEC */
	PEER_OTHER,
};

struct peer {
	bool client; /* a scripted client (the server tests) rather than a server */
	int lfd, port;
	SSL_CTX *ctx;
	void (*script)(struct peer *p, SSL *ssl);
	uint32_t arg; /* an input of the script */
	pthread_t th;
	atomic_int stage; /* how far the script got */
	atomic_int go;    /* how far the test lets it go */
	atomic_bool done;
	/* What it saw: the test reads these after the join. */
	char err[256];
	bool handshake_ok;
	char alpn[32];
	struct {
		uint32_t id;
		uint16_t len;
		uint8_t pre[PREAMBLE_MAX];
	} open[NSTREAM];
	int nopen;
	uint8_t *data[NSTREAM];
	size_t data_len[NSTREAM], data_cap[NSTREAM];
	int end[NSTREAM], reset[NSTREAM], stop[NSTREAM];
	uint64_t window_sum[NSTREAM];
	uint32_t window_min;
	int nwindow;
	int goaway;
	uint32_t goaway_last;
	uint8_t log_type[NLOG];
	uint32_t log_id[NLOG];
	int nlog;
	uint64_t sum1; /* the flow control script: what the first phase granted */
	int nwindow1;
	uint8_t raw[64]; /* the downgrade script: the first application bytes */
	size_t raw_len;
	enum peer_end how;
	int sys_errno;
};

static void peer_fail(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void peer_fail(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

/* How a read failed: the end of the connection, as the peer saw it. */
static enum peer_end peer_end_of(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc), saved = errno;
	unsigned long q = ERR_peek_error();

	if (e == SSL_ERROR_ZERO_RETURN)
		return PEER_CLOSE_NOTIFY;
	if (saved == ECONNRESET || saved == EPIPE)
		return PEER_RESET;
	if (saved == EAGAIN || saved == EWOULDBLOCK)
		return PEER_TIMEOUT;
	if (e == SSL_ERROR_SYSCALL && saved == 0)
		return PEER_EOF;
	if (e == SSL_ERROR_SSL && ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return PEER_EOF;
	return PEER_OTHER;
}

/* Reads exactly n bytes. Returns 1, or 0 when the connection ended (p->how says how). */
static int peer_read_full(struct peer *p, SSL *ssl, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		size_t k = 0;
		int rc;

		errno = 0;
		ERR_clear_error();
		rc = SSL_read_ex(ssl, (char *)buf + got, n - got, &k);
		if (rc <= 0) {
			p->sys_errno = errno;
			p->how = peer_end_of(ssl, rc);
			if (got > 0)
				peer_fail(p, "the connection ended inside a frame");
			return 0;
		}
		got += k;
	}
	return 1;
}

static bool peer_write(SSL *ssl, const void *buf, size_t n)
{
	size_t done = 0;

	ERR_clear_error();
	return SSL_write_ex(ssl, buf, n, &done) == 1 && done == n;
}

static bool peer_send(SSL *ssl, enum mux_type type, uint32_t id, const void *payload, uint16_t len)
{
	uint8_t b[MUX_HEAD + MUX_FRAME_MAX];

	mux_frame_put(b, type, len, id);
	if (len > 0)
		memcpy(b + MUX_HEAD, payload, len);
	return peer_write(ssl, b, MUX_HEAD + (size_t)len);
}

static bool peer_send_u32(SSL *ssl, enum mux_type type, uint32_t id, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return peer_send(ssl, type, id, b, 4);
}

static bool peer_send_text(SSL *ssl, uint32_t id, const char *text)
{
	return peer_send(ssl, MUX_DATA, id, text, (uint16_t)strlen(text));
}

/* Sends the bytes [from, from + n) of the stream's pattern in frames of at most 16 KiB. */
static bool peer_send_bulk(SSL *ssl, uint32_t id, uint64_t from, uint64_t n)
{
	static _Thread_local uint8_t buf[MUX_FRAME_MAX];

	for (uint64_t off = from; off < from + n;) {
		size_t k =
		    from + n - off < MUX_FRAME_MAX ? (size_t)(from + n - off) : MUX_FRAME_MAX;

		for (size_t i = 0; i < k; i++)
			buf[i] = pat(id, off + i);
		if (!peer_send(ssl, MUX_DATA, id, buf, (uint16_t)k))
			return false;
		off += k;
	}
	return true;
}

static void peer_data(struct peer *p, uint32_t id, const uint8_t *b, size_t n)
{
	if (p->data_len[id] + n > p->data_cap[id]) {
		size_t cap = (p->data_len[id] + n) * 2;
		uint8_t *grown = realloc(p->data[id], cap);

		if (grown == NULL)
			abort(); /* not a cmocka assert: this is the peer's thread */
		p->data[id] = grown;
		p->data_cap[id] = cap;
	}
	memcpy(p->data[id] + p->data_len[id], b, n);
	p->data_len[id] += n;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads one frame from the mux and records it. Returns 1, or 0 when the connection ended. */
static int peer_frame(struct peer *p, SSL *ssl)
{
	uint8_t head[MUX_HEAD], payload[MUX_FRAME_MAX];
	struct mux_frame f;
	int rc;

	if (!peer_read_full(p, ssl, head, sizeof(head)))
		return 0;
	rc = mux_frame_parse(head, sizeof(head), &f);
	if (rc != MUX_HEAD) {
		peer_fail(p, "the mux sent a bad header %02x %02x %02x %02x %02x %02x %02x %02x",
		          head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]);
		return 0;
	}
	if (f.len > 0 && !peer_read_full(p, ssl, payload, f.len)) {
		peer_fail(p, "the connection ended inside a frame's payload");
		return 0;
	}
	if (p->nlog < NLOG) {
		p->log_type[p->nlog] = f.type;
		p->log_id[p->nlog] = f.stream;
		p->nlog++;
	}
	if (f.stream >= NSTREAM) {
		peer_fail(p, "a frame for stream %u", f.stream);
		return 1;
	}
	switch (f.type) {
	case MUX_OPEN:
		if (p->nopen < NSTREAM) {
			p->open[p->nopen].id = f.stream;
			p->open[p->nopen].len = f.len;
			memcpy(p->open[p->nopen].pre, payload, f.len);
			p->nopen++;
		}
		break;
	case MUX_DATA:
		peer_data(p, f.stream, payload, f.len);
		break;
	case MUX_END:
		p->end[f.stream]++;
		break;
	case MUX_RESET:
		p->reset[f.stream]++;
		break;
	case MUX_STOP:
		p->stop[f.stream]++;
		break;
	case MUX_WINDOW_UPDATE: {
		uint32_t v = be32(payload);

		p->window_sum[f.stream] += v;
		if (p->nwindow == 0 || v < p->window_min)
			p->window_min = v;
		p->nwindow++;
		break;
	}
	default: /* MUX_GOAWAY */
		p->goaway++;
		p->goaway_last = be32(payload);
		break;
	}
	return 1;
}

/* Reads frames until cond holds. */
static bool peer_until(struct peer *p, SSL *ssl, bool (*cond)(const struct peer *p),
                       const char *what)
{
	while (!cond(p)) {
		if (!peer_frame(p, ssl)) {
			peer_fail(p, "the connection ended (%d) while waiting for %s", (int)p->how,
			          what);
			return false;
		}
	}
	return true;
}

/* Reads frames until the connection ends; p->how says how. */
static void peer_drain(struct peer *p, SSL *ssl)
{
	while (peer_frame(p, ssl))
		;
}

/* Waits until the test's thread sets go to at least v. */
static bool peer_wait_go(struct peer *p, int v)
{
	for (int i = 0; i < IO_TIMEOUT_SEC * 1000; i++) {
		if (atomic_load(&p->go) >= v)
			return true;
		usleep(1000);
	}
	peer_fail(p, "the test never let the script go to %d", v);
	return false;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	SSL *ssl = NULL;
	int fd = -1;

	if (p->client) {
		struct sockaddr_in a = loopback(p->port);

		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			peer_fail(p, "connect: %s", strerror(errno));
			goto out;
		}
	} else {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };

		if (poll(&pf, 1, IO_TIMEOUT_SEC * 1000) != 1 ||
		    (fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			peer_fail(p, "nobody connected");
			goto out;
		}
	}
	io_timeouts(fd);
	ssl = SSL_new(p->ctx);
	if (ssl == NULL || !SSL_set_fd(ssl, fd) ||
	    (p->client && SSL_set_alpn_protos(ssl, alpn3, sizeof(alpn3) - 1) != 0)) {
		peer_fail(p, "SSL_new");
		goto out;
	}
	if ((p->client ? SSL_connect(ssl) : SSL_accept(ssl)) != 1) {
		peer_fail(p, "handshake: %s", ERR_reason_error_string(ERR_peek_error()));
		goto out;
	}
	p->handshake_ok = true;
	{
		const unsigned char *a;
		unsigned int n;

		SSL_get0_alpn_selected(ssl, &a, &n);
		if (n < sizeof(p->alpn)) {
			memcpy(p->alpn, a, n);
			p->alpn[n] = '\0';
		}
	}
	p->script(p, ssl);
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	atomic_store(&p->done, true);
	return NULL;
}

static struct peer *peer_new(void (*script)(struct peer *p, SSL *ssl))
{
	struct peer *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->script = script;
	p->lfd = -1;
	return p;
}

/* A scripted server on a free port of 127.0.0.1, with ctx (which picks the protocol). */
static struct peer *peer_server(SSL_CTX *ctx, void (*script)(struct peer *p, SSL *ssl))
{
	struct peer *p = peer_new(script);

	p->ctx = ctx;
	p->lfd = bind_loopback(true, &p->port);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	return p;
}

/* A scripted client of port: ALPN meshlet/3 and the client certificate. */
static struct peer *peer_client(int port, void (*script)(struct peer *p, SSL *ssl))
{
	struct peer *p = peer_new(script);

	p->client = true;
	p->ctx = pki.cli_ctx;
	p->port = port;
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	return p;
}

static void peer_free(struct peer *p)
{
	if (p->lfd >= 0)
		close(p->lfd);
	for (int i = 0; i < NSTREAM; i++)
		free(p->data[i]);
	free(p);
}

static void assert_peer_ok(const struct peer *p)
{
	if (p->err[0] != '\0')
		fail_msg("peer: %s", p->err);
	assert_true(p->handshake_ok);
}

/* The peer got exactly text on the stream. */
static void assert_peer_data(const struct peer *p, uint32_t id, const char *text)
{
	if (p->data_len[id] != strlen(text) ||
	    (p->data_len[id] > 0 && memcmp(p->data[id], text, p->data_len[id]) != 0))
		fail_msg("stream %u: the peer got %zu bytes \"%.*s\", want \"%s\"", id,
		         p->data_len[id], (int)p->data_len[id],
		         p->data[id] != NULL ? (char *)p->data[id] : "", text);
}

/*
 * The mux's side: owners of streams, driven by a 1 ms tick on the loop of the test's
 * thread. An owner acts when its stream woke it (wake itself only counts: it must not call
 * into the mux), or when kicked by the test.
 */

struct owner {
	struct mux_stream *s;
	int wakes, seen;
	bool kick;
	int wake_in_call; /* wakes that came from inside a call of its own on the stream */
	/* The stream's end, copied when seen (the stream goes with its release). */
	int fail, error;
	/* Reading */
	bool paused;  /* reads nothing: the window stays used */
	size_t chunk; /* bytes per mux_stream_read; 0: 4096 */
	uint8_t *in;
	size_t in_len, in_cap;
	bool eof, rd_fail;
	/* Writing */
	char text[64];
	const uint8_t *out;
	size_t out_len, out_off;
	bool end_out;         /* END once out is written */
	bool reply_after_eof; /* write only once the peer's END was read */
	bool ended, wr_fail;
	int wakes_at_first_write; /* -1: nothing written yet */
	/* The end */
	bool release_done;  /* release the stream once it is over both ways */
	bool release_ended; /* release it (rst false) once our END went, whatever came */
	bool released;
};

static struct owner *calling; /* the owner inside a call on its stream, or NULL */

static void owner_wake(void *arg)
{
	struct owner *o = arg;

	o->wakes++;
	if (calling == o)
		o->wake_in_call++;
}

static void owner_init(struct owner *o, const char *text, bool end_out)
{
	memset(o, 0, sizeof(*o));
	o->wakes_at_first_write = -1;
	if (text != NULL) {
		snprintf(o->text, sizeof(o->text), "%s", text);
		o->out = (const uint8_t *)o->text;
		o->out_len = strlen(o->text);
	}
	o->end_out = end_out;
}

static void owner_note(struct owner *o)
{
	if (o->s != NULL && o->s->fail != MUX_FAIL_NONE && o->fail == MUX_FAIL_NONE) {
		o->fail = o->s->fail;
		o->error = o->s->error;
	}
}

static void owner_release(struct owner *o, bool rst)
{
	if (o->s == NULL)
		return;
	owner_note(o);
	calling = o;
	mux_stream_release(o->s, rst);
	calling = NULL;
	o->s = NULL;
	o->released = true;
}

static void owner_pump(struct owner *o)
{
	static uint8_t buf[65536];
	size_t chunk = o->chunk != 0 ? o->chunk : 4096;
	ssize_t n;

	if (o->s == NULL || (o->wakes == o->seen && !o->kick))
		return;
	o->seen = o->wakes;
	o->kick = false;
	owner_note(o);
	while (!o->paused && !o->eof && !o->rd_fail) {
		calling = o;
		n = mux_stream_read(o->s, buf, chunk);
		calling = NULL;
		if (n > 0) {
			if (o->in_len + (size_t)n > o->in_cap) {
				o->in_cap = (o->in_len + (size_t)n) * 2;
				o->in = realloc(o->in, o->in_cap);
				assert_non_null(o->in);
			}
			memcpy(o->in + o->in_len, buf, (size_t)n);
			o->in_len += (size_t)n;
			continue;
		}
		if (n == MUX_EOF)
			o->eof = true;
		else if (n < 0)
			o->rd_fail = true;
		break;
	}
	owner_note(o);
	if (o->fail != MUX_FAIL_NONE || (o->reply_after_eof && !o->eof))
		return;
	while (o->out_off < o->out_len && !o->wr_fail) {
		calling = o;
		n = mux_stream_write(o->s, o->out + o->out_off, o->out_len - o->out_off);
		calling = NULL;
		if (n < 0)
			o->wr_fail = true;
		if (n <= 0)
			break;
		if (o->wakes_at_first_write < 0)
			o->wakes_at_first_write = o->wakes;
		o->out_off += (size_t)n;
	}
	if (o->out_off == o->out_len && o->end_out && !o->ended && !o->wr_fail) {
		int rc;

		calling = o;
		rc = mux_stream_end(o->s);
		calling = NULL;
		if (rc == 1)
			o->ended = true;
		else if (rc < 0)
			o->wr_fail = true;
	}
	if ((o->release_done && o->eof && o->ended) || (o->release_ended && o->ended))
		owner_release(o, false);
}

static void assert_owner_in(const struct owner *o, const void *want, size_t len)
{
	if (o->in_len != len || (len > 0 && memcmp(o->in, want, len) != 0))
		fail_msg("the owner read %zu bytes \"%.*s\", want %zu bytes \"%.*s\"", o->in_len,
		         (int)o->in_len, o->in != NULL ? (char *)o->in : "", len, (int)len,
		         (const char *)want);
}

/* The owners that the tick drives, and what the hooks saw. */

static struct {
	struct owner *o[NSTREAM];
	int n;
	struct loop_timer tick;
	bool (*pred)(void *arg);
	void *arg;
	uint64_t deadline;
	bool met;
} run;

static struct {
	int calls;
	enum mux_fail how;
	bool ssl_present;     /* mux_ssl still answered in on_gone */
	bool streams_settled; /* every stream of a registered owner was off the connection */
	bool take;            /* call mux_take */
	int take_rc, fd;
	SSL *ssl;
} gone;

static struct {
	int calls;
	char id[256];
	bool verified;
	char alpn[32];
} hs;

/* The server's on_open: what the n-th call returns, and the owners of those it takes. */
static struct {
	int calls;
	int rc[NSTREAM];
	bool early[NSTREAM]; /* answer at once and release after our END (STOP) */
	bool keep[NSTREAM];  /* the test releases the stream itself */
	uint32_t ids[NSTREAM];
	uint32_t queued[NSTREAM];
	struct owner owners[NSTREAM];
} so;

static void watch(struct owner *o)
{
	assert_true(run.n < NSTREAM);
	run.o[run.n++] = o;
}

static void reset_state(void)
{
	memset(&run, 0, sizeof(run));
	memset(&gone, 0, sizeof(gone));
	gone.fd = -1;
	memset(&hs, 0, sizeof(hs));
	memset(&so, 0, sizeof(so));
	calling = NULL;
}

static void on_gone(struct mux *m, enum mux_fail how)
{
	gone.calls++;
	gone.how = how;
	gone.ssl_present = mux_ssl(m) != NULL;
	gone.streams_settled = true;
	for (int i = 0; i < run.n; i++) {
		struct mux_stream *s = run.o[i]->s;

		if (s != NULL && s->mux != NULL)
			gone.streams_settled = false;
	}
	if (gone.take)
		gone.take_rc = mux_take(m, &gone.fd, &gone.ssl);
}

static int on_handshake(struct mux *m, const struct relay_peer *peer)
{
	const unsigned char *a;
	unsigned int n;

	(void)m;
	hs.calls++;
	hs.verified = peer->verified;
	snprintf(hs.id, sizeof(hs.id), "%s", peer->id_text != NULL ? peer->id_text : "");
	SSL_get0_alpn_selected(peer->ssl, &a, &n);
	if (n < sizeof(hs.alpn)) {
		memcpy(hs.alpn, a, n);
		hs.alpn[n] = '\0';
	}
	return 0;
}

static int on_open(struct mux *m, struct mux_stream *s)
{
	int i = so.calls++;
	struct owner *o;
	char text[32];

	(void)m;
	if (i >= NSTREAM)
		return -EMFILE;
	so.ids[i] = s->id;
	so.queued[i] = s->queued;
	if (so.rc[i] != 0)
		return so.rc[i];
	/* Taken: read the preamble and the bytes to the end, then answer and end. */
	o = &so.owners[i];
	snprintf(text, sizeof(text), "reply-%u", s->id);
	owner_init(o, text, true);
	o->reply_after_eof = !so.early[i];
	o->release_done = !so.early[i] && !so.keep[i];
	o->release_ended = so.early[i];
	o->kick = true;
	o->s = s;
	s->wake = owner_wake;
	s->arg = o;
	if (run.n < NSTREAM)
		run.o[run.n++] = o;
	return 0;
}

static const struct mux_config client_cfg = {
	.connect_timeout_ms = 5000,
	.handshake_timeout_ms = 5000,
	.idle_ms = 60000,
	.on_handshake = on_handshake,
	.on_gone = on_gone,
};

static const struct mux_config server_cfg = {
	.connect_timeout_ms = 5000,
	.handshake_timeout_ms = 5000,
	.idle_ms = 60000,
	.on_open = on_open,
	.on_gone = on_gone,
};

static void run_tick(struct loop *loop, struct loop_timer *t)
{
	for (int i = 0; i < run.n; i++)
		owner_pump(run.o[i]);
	if (run.pred(run.arg)) {
		run.met = true;
		loop_stop(loop);
		return;
	}
	if (loop_now(loop) >= run.deadline) {
		loop_stop(loop);
		return;
	}
	assert_int_equal(loop_timer_set(loop, t, 1), 0);
}

/* Runs the loop until pred holds (checked each ms, after the owners acted) or ms passed. */
static bool run_until(struct loop *loop, bool (*pred)(void *arg), void *arg, uint64_t ms)
{
	run.pred = pred;
	run.arg = arg;
	run.met = false;
	run.deadline = loop_now(loop) + ms;
	loop_timer_init(&run.tick, run_tick);
	assert_int_equal(loop_timer_set(loop, &run.tick, 1), 0);
	assert_int_equal(loop_run(loop), 0);
	loop_timer_stop(loop, &run.tick);
	return run.met;
}

static bool peer_done(void *arg)
{
	return atomic_load(&((struct peer *)arg)->done);
}

static bool peer_stage1(void *arg)
{
	return atomic_load(&((struct peer *)arg)->stage) >= 1;
}

static bool is_gone(void *arg)
{
	(void)arg;
	return gone.calls > 0;
}

static bool gone_and_peer_done(void *arg)
{
	return gone.calls > 0 && peer_done(arg);
}

static struct loop *new_loop(void)
{
	int err = 0;
	struct loop *loop = loop_new(&err);

	assert_non_null(loop);
	return loop;
}

static struct mux *client_mux(struct loop *loop, const struct mux_config *cfg, int port)
{
	struct sockaddr_in a = loopback(port);
	SSL *ssl = relay_tls_new(pki.cli_ctx);
	struct mux *m;
	int err = 0;

	assert_non_null(ssl);
	m = mux_connect(loop, cfg, (struct sockaddr *)&a, sizeof(a), ssl, NULL, &err);
	if (m == NULL)
		fail_msg("mux_connect: %d (%s)", err, err_str(err));
	return m;
}

static struct mux_stream *open_stream(struct mux *m, uint16_t port, struct owner *o)
{
	uint8_t pre[PREAMBLE_MAX];
	size_t n = pre3(pre, port);
	int err = 0;
	struct mux_stream *s = mux_open(m, pre, n, owner_wake, o, &err);

	if (s == NULL)
		fail_msg("mux_open: %d (%s)", err, err_str(err));
	o->s = s;
	watch(o);
	return s;
}

static const char *const end_names[] = {
	"nothing (still open)", "close_notify", "EOF without close_notify", "a reset", "a timeout",
	"another error",
};

/* How the mux had ended before finish_peer (it aborts one still there). */
struct ending {
	int gone_calls;
	enum mux_fail how;
};

/*
 * The end of a test with a mux m and a peer p: first up to ms for both to end by
 * themselves; then a mux still there is aborted (the peer sees the end), and the peer
 * finishes and is joined. So nothing is left behind whatever happened; the test then
 * checks what both saw.
 */
static struct ending finish_peer(struct loop *loop, struct mux *m, struct peer *p, uint64_t ms)
{
	struct ending e;
	bool done;

	if (ms > 0)
		(void)run_until(loop, gone_and_peer_done, p, ms);
	e.gone_calls = gone.calls;
	e.how = gone.how;
	if (gone.calls == 0)
		mux_abort(m);
	done = run_until(loop, peer_done, p, RUN_MS);
	pthread_join(p->th, NULL);
	assert_true(done);
	assert_int_equal(gone.calls, 1);
	return e;
}

/*
 * Releases the owners' streams and frees their memory, then the loop (and so the mux) and
 * the peer p (NULL: none). Then checks the contract of wake in mux.h for every owner of the
 * test: "never from inside a call of the owner's on the stream" (after freeing everything,
 * so that a failure leaks nothing).
 */
static void cleanup(struct loop *loop, struct peer *p)
{
	int inside = 0;

	for (int i = 0; i < run.n; i++) {
		inside += run.o[i]->wake_in_call;
		owner_release(run.o[i], true);
		free(run.o[i]->in);
		run.o[i]->in = NULL;
	}
	run.n = 0;
	loop_free(loop);
	if (p != NULL)
		peer_free(p);
	if (inside != 0)
		fail_msg("a stream's wake was called %d times from inside a call of its owner's on "
		         "it (mux_stream_read, _write, _end or _release)",
		         inside);
}

/* Client muxes against a scripted server */

static bool got_opens2(const struct peer *p)
{
	return p->nopen >= 2;
}

static bool got_opens1(const struct peer *p)
{
	return p->nopen >= 1;
}

static bool got_end1(const struct peer *p)
{
	return p->end[1] > 0;
}

static bool got_end12(const struct peer *p)
{
	return p->end[1] > 0 && p->end[2] > 0;
}

/* Both streams opened; answers each (stream 2 first), reads both to their ENDs. */
static void script_two_streams(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_opens2, "two OPENs"))
		return;
	if (!peer_send_text(ssl, 2, "to stream two") || !peer_send_text(ssl, 1, "to one") ||
	    !peer_send(ssl, MUX_END, 2, NULL, 0) || !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end12, "both ENDs"))
		return;
	atomic_store(&p->stage, 1);
	/* The client closes the idle connection: close_notify, which is answered. */
	peer_drain(p, ssl);
	if (p->how == PEER_CLOSE_NOTIFY)
		(void)SSL_shutdown(ssl);
}

static bool two_released(void *arg)
{
	struct owner **o = arg;

	return o[0]->released && o[1]->released;
}

/*
 * (a) Proves that two streams opened with mux_open carry their own bytes both ways: the
 * peer sees one OPEN per stream, IDs 1 and 2, whose payload is the preamble given; each
 * stream reads only its own bytes, then MUX_EOF; each of its writes arrives on its ID, then
 * END. Then the connection, idle for idle_ms, closes cleanly: close_notify, on_gone
 * with MUX_FAIL_NONE.
 */
static void test_client_two_streams(void **state)
{
	struct mux_config cfg = client_cfg;
	struct loop *loop = new_loop();
	struct owner o1, o2;
	struct peer *p = peer_server(pki.srv3_ctx, script_two_streams);
	uint8_t pre1[PREAMBLE_MAX], pre2[PREAMBLE_MAX];
	size_t n1 = pre3(pre1, 1001), n2 = pre3(pre2, 1002);
	struct mux *m;
	struct mux_stream *s1, *s2;
	struct ending e;
	enum peer_end peer_how;

	(void)state;
	reset_state();
	cfg.idle_ms = 200;
	m = client_mux(loop, &cfg, p->port);
	owner_init(&o1, "from one", true);
	owner_init(&o2, "from stream two", true);
	o1.release_done = o2.release_done = true;
	s1 = open_stream(m, 1001, &o1);
	s2 = open_stream(m, 1002, &o2);
	assert_int_equal(s1->id, 1);
	assert_int_equal(s2->id, 2);
	assert_int_equal(mux_streams(m), 2);
	assert_true(run_until(loop, two_released, (struct owner *[]){ &o1, &o2 }, RUN_MS));
	/* Both streams over both ways and released: the mux idles, and is still there. */
	assert_int_equal(gone.calls, 0);
	assert_int_equal(mux_streams(m), 0);
	assert_int_equal(mux_streams_total(m), 2);
	assert_non_null(mux_peer_id(m));
	assert_string_equal(mux_peer_id(m), SERVER_ID);
	assert_true(mux_not_after(m) > (int64_t)time(NULL));
	assert_true(mux_usable(m, 60));
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_int_equal(o2.fail, MUX_FAIL_NONE);
	assert_true(o1.eof && o2.eof);
	assert_owner_in(&o1, "to one", 6);
	assert_owner_in(&o2, "to stream two", 13);
	assert_int_equal(hs.calls, 1);
	assert_true(hs.verified);
	assert_string_equal(hs.id, SERVER_ID);
	assert_string_equal(hs.alpn, "meshlet/3");
	/* Idle for idle_ms (200): the client closes, cleanly. */
	e = finish_peer(loop, m, p, 3000);
	assert_peer_ok(p);
	assert_int_equal(p->nopen, 2);
	assert_int_equal(p->open[0].id, 1);
	assert_int_equal(p->open[0].len, n1);
	assert_memory_equal(p->open[0].pre, pre1, n1);
	assert_int_equal(p->open[1].id, 2);
	assert_int_equal(p->open[1].len, n2);
	assert_memory_equal(p->open[1].pre, pre2, n2);
	assert_peer_data(p, 1, "from one");
	assert_peer_data(p, 2, "from stream two");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->end[2], 1);
	assert_int_equal(p->reset[1] + p->reset[2], 0);
	assert_int_equal(p->nwindow, 0);
	peer_how = p->how;
	cleanup(loop, p);
	if (e.gone_calls != 1 || e.how != MUX_FAIL_NONE || peer_how != PEER_CLOSE_NOTIFY)
		fail_msg(
		    "idle for 3 s with idle_ms 200: on_gone called %d times (how %d), the peer "
		    "saw %s; want on_gone(MUX_FAIL_NONE) and close_notify",
		    e.gone_calls, (int)e.how, end_names[peer_how]);
}

/* GOAWAY naming stream 1 while 1 and 2 are open; then stream 1 goes on both ways. */
static void script_goaway(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_opens2, "two OPENs"))
		return;
	if (!peer_send_u32(ssl, MUX_GOAWAY, 0, 1)) {
		peer_fail(p, "write failed");
		return;
	}
	atomic_store(&p->stage, 1);
	if (!peer_wait_go(p, 1))
		return;
	if (!peer_send_text(ssl, 1, "one only") || !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1, "END 1"))
		return;
	peer_drain(p, ssl);
	if (p->how == PEER_CLOSE_NOTIFY)
		(void)SSL_shutdown(ssl);
}

static bool owner_failed(void *arg)
{
	return ((struct owner *)arg)->s != NULL && ((struct owner *)arg)->s->fail != MUX_FAIL_NONE;
}

/*
 * (b) Proves GOAWAY: the peer names stream 1 as the last it took while 1 and 2 are open.
 * Stream 2 fails with MUX_FAIL_REFUSED and ERR_RELAY_STALE (not answered: it may start
 * again elsewhere), the mux takes no new stream (-EBUSY), stream 1 still carries bytes both
 * ways; nothing more of stream 2 reaches the peer; once stream 1 is done the client closes
 * the connection cleanly (mux.h: "A side closes the connection with close_notify once no
 * stream of its is open").
 */
static void test_client_goaway(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1, o2;
	struct peer *p = peer_server(pki.srv3_ctx, script_goaway);
	uint8_t pre[PREAMBLE_MAX];
	struct mux *m;
	int err = 0;
	char c;
	struct ending e;
	enum peer_end peer_how;

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, "up one", true);
	o1.release_done = true;
	owner_init(&o2, NULL, false);
	open_stream(m, 1001, &o1);
	open_stream(m, 1002, &o2);
	assert_true(run_until(loop, owner_failed, &o2, RUN_MS));
	assert_int_equal(o2.fail, MUX_FAIL_REFUSED);
	assert_int_equal(o2.error, ERR_RELAY_STALE);
	assert_null(o2.s->mux);
	assert_false(mux_stream_answered(o2.s));
	assert_false(mux_stream_ended(o2.s));
	calling = &o2;
	assert_int_equal(mux_stream_write(o2.s, "x", 1), -1);
	assert_int_equal(mux_stream_read(o2.s, &c, 1), -1);
	calling = NULL;
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_true(mux_stream_answered(o1.s));
	assert_int_equal(gone.calls, 0);
	assert_int_equal(mux_streams(m), 1);
	assert_false(mux_usable(m, 0));
	assert_null(mux_open(m, pre, pre3(pre, 1003), owner_wake, &o2, &err));
	assert_int_equal(err, -EBUSY);
	/* Stream 1 goes on; once it is done, the client closes. */
	atomic_store(&p->go, 1);
	e = finish_peer(loop, m, p, 3000);
	assert_peer_ok(p);
	assert_true(o1.released);
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_owner_in(&o1, "one only", 8);
	assert_peer_data(p, 1, "up one");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->data_len[2], 0);
	assert_int_equal(p->end[2] + p->reset[2] + p->reset[1], 0);
	peer_how = p->how;
	cleanup(loop, p);
	if (e.gone_calls != 1 || e.how != MUX_FAIL_NONE || peer_how != PEER_CLOSE_NOTIFY)
		fail_msg("GOAWAY and the last stream released: on_gone called %d times (how %d) in "
		         "3 s, the peer saw %s; want on_gone(MUX_FAIL_NONE) and close_notify",
		         e.gone_calls, (int)e.how, end_names[peer_how]);
}

/* A whole window of stream 1 with no WINDOW back; then, when let go, one byte more. */
static void script_overflow(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_opens2, "two OPENs"))
		return;
	if (!peer_send_bulk(ssl, 1, 0, MUX_WINDOW)) {
		peer_fail(p, "write failed");
		return;
	}
	atomic_store(&p->stage, 1);
	if (!peer_wait_go(p, 1))
		return;
	(void)peer_send_bulk(ssl, 1, MUX_WINDOW, 1); /* may fail: the mux resets */
	peer_drain(p, ssl);
}

struct overflow_wait {
	struct peer *p;
	struct owner *o;
};

static bool window_full(void *arg)
{
	struct overflow_wait *w = arg;

	return atomic_load(&w->p->stage) >= 1 && w->o->s->queued >= MUX_WINDOW;
}

static bool both_failed_and_done(void *arg)
{
	struct overflow_wait *w = arg;

	return w[0].o->fail != MUX_FAIL_NONE && w[1].o->fail != MUX_FAIL_NONE && gone.calls > 0 &&
	       atomic_load(&w->p->done);
}

/*
 * (c) Proves the receive window is enforced: a peer may have MUX_WINDOW bytes of a stream
 * outstanding (all of them arrive and the stream is fine), and one byte beyond it, with no
 * WINDOW from us (the owner reads nothing), is a protocol error: the connection is reset,
 * and every stream on it fails with MUX_FAIL_RESET and ERR_MUX_FRAME.
 */
static void test_client_window_overflow(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1, o2;
	struct peer *p = peer_server(pki.srv3_ctx, script_overflow);
	struct overflow_wait w[2] = { { p, &o1 }, { p, &o2 } };
	struct mux *m;

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, NULL, false);
	owner_init(&o2, NULL, false);
	o1.paused = o2.paused = true;
	open_stream(m, 1001, &o1);
	open_stream(m, 1002, &o2);
	/* Exactly a window: taken. */
	assert_true(run_until(loop, window_full, &w[0], RUN_MS));
	assert_int_equal(o1.s->queued, MUX_WINDOW);
	assert_int_equal(o1.s->fail, MUX_FAIL_NONE);
	assert_int_equal(gone.calls, 0);
	assert_true(o1.wakes > 0);
	/* One byte more: a protocol error. */
	atomic_store(&p->go, 1);
	assert_true(run_until(loop, both_failed_and_done, w, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_int_equal(o1.fail, MUX_FAIL_RESET);
	assert_int_equal(o1.error, ERR_MUX_FRAME);
	assert_int_equal(o2.fail, MUX_FAIL_RESET);
	assert_int_equal(o2.error, ERR_MUX_FRAME);
	assert_null(o1.s->mux);
	calling = &o1;
	assert_int_equal(mux_stream_write(o1.s, "x", 1), -1);
	calling = &o2;
	assert_int_equal(mux_stream_end(o2.s), -1);
	calling = NULL;
	assert_int_equal(gone.calls, 1);
	assert_int_equal(gone.how, MUX_FAIL_RESET);
	assert_true(gone.streams_settled);
	/* We granted nothing, and the peer saw a reset, not a clean close. */
	assert_int_equal(p->nwindow, 0);
	if (p->how != PEER_RESET && p->how != PEER_EOF)
		fail_msg("the peer saw the end as %d, want a reset", (int)p->how);
	cleanup(loop, p);
}

/* An older proxy (meshlet/2): the first application bytes, an answer, then its end. */
static void script_v2(struct peer *p, SSL *ssl)
{
	size_t k = 0;

	ERR_clear_error();
	if (SSL_read_ex(ssl, p->raw, 8, &k) != 1) {
		p->how = peer_end_of(ssl, 0);
		return;
	}
	p->raw_len = k;
	while (p->raw_len < 8) {
		if (SSL_read_ex(ssl, p->raw + p->raw_len, 8 - p->raw_len, &k) != 1) {
			p->how = peer_end_of(ssl, 0);
			return;
		}
		p->raw_len += k;
	}
	if (!peer_write(ssl, "v2-reply", 8)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

/*
 * (d) Proves the downgrade: the peer picks meshlet/2. Streams fail with MUX_FAIL_DOWNGRADE
 * (ERR_MUX_DOWNGRADE), on_gone gets MUX_FAIL_DOWNGRADE with the TLS state still there, and
 * mux_take from on_gone hands over the socket and the TLS connection, whose handshake is
 * done and on which nothing was written: our first bytes on it are the first the peer
 * reads, and its answer comes back. mux_take refuses a mux that is not dead (-EINVAL).
 */
static void test_client_downgrade_take(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv2_ctx, script_v2);
	const unsigned char *a;
	unsigned int alen;
	struct mux *m;
	SSL *ssl = NULL;
	char reply[8];
	size_t k = 0, got = 0;
	int fd = -1;

	(void)state;
	reset_state();
	gone.take = true;
	m = client_mux(loop, &client_cfg, p->port);
	assert_int_equal(mux_take(m, &fd, &ssl), -EINVAL);
	assert_int_equal(fd, -1);
	assert_null(ssl);
	owner_init(&o1, "never", true);
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, is_gone, NULL, RUN_MS));
	assert_int_equal(gone.how, MUX_FAIL_DOWNGRADE);
	assert_true(gone.ssl_present);
	assert_true(gone.streams_settled);
	assert_int_equal(o1.fail, MUX_FAIL_DOWNGRADE);
	assert_int_equal(o1.error, ERR_MUX_DOWNGRADE);
	assert_int_equal(hs.calls, 1);
	assert_string_equal(hs.alpn, "meshlet/2");
	assert_int_equal(gone.take_rc, 0);
	assert_true(gone.fd >= 0);
	assert_non_null(gone.ssl);
	/* The connection is ours now, as protocol 2's. */
	SSL_get0_alpn_selected(gone.ssl, &a, &alen);
	assert_int_equal(alen, 9);
	assert_memory_equal(a, "meshlet/2", 9);
	assert_int_equal(fcntl(gone.fd, F_SETFL, fcntl(gone.fd, F_GETFL) & ~O_NONBLOCK), 0);
	io_timeouts(gone.fd);
	assert_int_equal(SSL_write_ex(gone.ssl, "v2-hello", 8, &k), 1);
	while (got < sizeof(reply)) {
		if (SSL_read_ex(gone.ssl, reply + got, sizeof(reply) - got, &k) != 1)
			fail_msg("SSL_read on the taken connection: %d",
			         SSL_get_error(gone.ssl, 0));
		got += k;
	}
	assert_memory_equal(reply, "v2-reply", 8);
	(void)SSL_shutdown(gone.ssl);
	SSL_free(gone.ssl);
	close(gone.fd);
	assert_true(run_until(loop, peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_string_equal(p->alpn, "meshlet/2");
	assert_int_equal(p->raw_len, 8);
	assert_memory_equal(p->raw, "v2-hello", 8); /* the OPEN never went out */
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	cleanup(loop, p);
}

/*
 * (d') Proves the other path of a downgrade: nobody takes the connection in on_gone, and
 * the older peer sees a clean close (close_notify) with none of our bytes before it.
 */
static void test_client_downgrade_untaken(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv2_ctx, script_v2);
	struct mux *m;

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, "never", true);
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, gone_and_peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_int_equal(gone.how, MUX_FAIL_DOWNGRADE);
	assert_int_equal(o1.fail, MUX_FAIL_DOWNGRADE);
	assert_int_equal(p->raw_len, 0);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	cleanup(loop, p);
}

/*
 * (e) Proves a connection that cannot be made: connecting to a port with no listener
 * happens in the background (mux_connect returns a mux), then the stream opened meanwhile
 * fails with MUX_FAIL_CONNECT and -ECONNREFUSED, on_gone gets MUX_FAIL_CONNECT, and no
 * handshake hook ran.
 */
static void test_client_refused(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct mux *m;
	int port, fd = bind_loopback(false, &port); /* bound, not listening: refused */

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, port);
	owner_init(&o1, "never", true);
	open_stream(m, 1001, &o1);
	assert_true(mux_usable(m, 0)); /* unknown while connecting */
	assert_true(run_until(loop, is_gone, NULL, RUN_MS));
	assert_int_equal(gone.how, MUX_FAIL_CONNECT);
	assert_true(gone.streams_settled);
	assert_int_equal(o1.fail, MUX_FAIL_CONNECT);
	assert_int_equal(o1.error, -ECONNREFUSED);
	assert_int_equal(hs.calls, 0);
	calling = &o1;
	assert_int_equal(mux_stream_write(o1.s, "x", 1), -1);
	calling = NULL;
	assert_false(mux_stream_ready(o1.s));
	assert_false(mux_stream_answered(o1.s));
	close(fd);
	cleanup(loop, NULL);
}

/*
 * Proves the client's stream limit: MUX_MAX_STREAMS streams open at once on a connection
 * (IDs 1, 2, 3 ... in order), then mux_open says -EBUSY and mux_usable false, until one
 * is released; a preamble of the wrong size is refused.
 */
static void test_client_stream_limit(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port); /* never accepted: it stays connecting */
	struct mux_stream **ss = calloc(MUX_MAX_STREAMS + 1, sizeof(*ss));
	uint8_t pre[PREAMBLE_MAX + 1];
	size_t n = pre3(pre, 1001);
	struct owner o;
	struct mux *m;
	int err = 0;

	(void)state;
	assert_non_null(ss);
	reset_state();
	owner_init(&o, NULL, false);
	m = client_mux(loop, &client_cfg, port);
	assert_null(mux_open(m, pre, PREAMBLE_HEADER - 1, owner_wake, &o, &err));
	assert_null(mux_open(m, pre, PREAMBLE_MAX + 1, owner_wake, &o, &err));
	for (uint32_t i = 0; i < MUX_MAX_STREAMS; i++) {
		ss[i] = mux_open(m, pre, n, owner_wake, &o, &err);
		if (ss[i] == NULL)
			fail_msg("stream %u: %d (%s)", i + 1, err, err_str(err));
		assert_int_equal(ss[i]->id, i + 1);
	}
	assert_int_equal(mux_streams(m), MUX_MAX_STREAMS);
	assert_false(mux_usable(m, 0));
	err = 0;
	assert_null(mux_open(m, pre, n, owner_wake, &o, &err));
	assert_int_equal(err, -EBUSY);
	mux_stream_release(ss[7], true);
	assert_true(mux_usable(m, 0));
	ss[7] = mux_open(m, pre, n, owner_wake, &o, &err);
	assert_non_null(ss[7]);
	assert_int_equal(ss[7]->id, MUX_MAX_STREAMS + 1);
	assert_int_equal(mux_streams_total(m), MUX_MAX_STREAMS + 1);
	mux_abort(m);
	assert_int_equal(gone.calls, 1);
	for (uint32_t i = 0; i < MUX_MAX_STREAMS; i++) {
		assert_int_equal(ss[i]->fail, MUX_FAIL_RESET);
		mux_stream_release(ss[i], true);
	}
	assert_int_equal(o.wake_in_call, 0);
	free(ss);
	close(lfd);
	cleanup(loop, NULL);
}

/*
 * A window of stream 1; then the WINDOWs until our END; then as many bytes more as they
 * granted, and END; then, when let go, close_notify.
 */
static void script_window(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_opens1, "OPEN"))
		return;
	if (!peer_send_bulk(ssl, 1, 0, MUX_WINDOW)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1, "END 1"))
		return;
	p->sum1 = p->window_sum[1];
	p->nwindow1 = p->nwindow;
	if (!peer_send_bulk(ssl, 1, MUX_WINDOW, p->sum1) || !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	atomic_store(&p->stage, 1);
	if (!peer_wait_go(p, 1))
		return;
	(void)SSL_shutdown(ssl);
	peer_drain(p, ssl);
}

static bool read_window(void *arg)
{
	return ((struct owner *)arg)->in_len >= MUX_WINDOW;
}

static bool read_eof(void *arg)
{
	struct owner *o = arg;

	return o->eof || o->rd_fail || o->fail != MUX_FAIL_NONE;
}

/*
 * (f) Proves flow control from the reader's side: after the peer sent a whole window and
 * the owner read it with mux_stream_read (chunk bytes at a time), the peer has WINDOW
 * frames for the stream, each granting at least GRANT (MUX_WINDOW / 2), that add up to
 * what was read but less than GRANT (exactly, for reads that add up to GRANT); and the
 * grant is real: the peer's sending that many more bytes is no protocol error, and they
 * all arrive, in order.
 */
static void flow_control(size_t chunk)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv3_ctx, script_window);
	struct mux *m;

	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, NULL, false);
	o1.chunk = chunk;
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, read_window, &o1, RUN_MS));
	assert_int_equal(o1.in_len, MUX_WINDOW);
	/* All read: our END, which follows the WINDOWs. */
	o1.end_out = true;
	o1.kick = true;
	assert_true(run_until(loop, read_eof, &o1, RUN_MS));
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_true(o1.eof);
	assert_true(o1.ended);
	owner_release(&o1, false);
	atomic_store(&p->go, 1);
	assert_true(run_until(loop, gone_and_peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_true(p->nwindow1 > 0);
	if (p->window_min < GRANT || p->sum1 > MUX_WINDOW || MUX_WINDOW - p->sum1 >= GRANT)
		fail_msg("%zu bytes read: %d WINDOW frames granted %llu, the smallest %u; want "
		         "grants of at least %u adding up to within %u of what was read",
		         (size_t)MUX_WINDOW, p->nwindow1, (unsigned long long)p->sum1,
		         p->window_min, GRANT, GRANT);
	if (GRANT % chunk == 0) {
		assert_int_equal(p->sum1, MUX_WINDOW);
		assert_int_equal(p->nwindow1, MUX_WINDOW / GRANT);
	}
	assert_int_equal(o1.in_len, MUX_WINDOW + p->sum1);
	for (size_t i = 0; i < o1.in_len; i++)
		if (o1.in[i] != pat(1, i))
			fail_msg("byte %zu of the stream is %u, want %u", i, o1.in[i], pat(1, i));
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->reset[1], 0);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	cleanup(loop, p);
}

static void test_client_window_grants(void **state)
{
	(void)state;
	flow_control(16384);
}

/* (f, unaligned) The same with reads of 10000 bytes: grants come in batches of >= GRANT. */
static void test_client_window_grants_unaligned(void **state)
{
	(void)state;
	flow_control(10000);
}

/* Stream 1's bytes in frames of 1 to 200 bytes (SMALL_TOTAL in all), then END. */
#define SMALL_TOTAL 30000

static void script_small_frames(struct peer *p, SSL *ssl)
{
	uint8_t buf[256];

	if (!peer_until(p, ssl, got_opens1, "OPEN"))
		return;
	for (uint64_t off = 0, k = 1; off < SMALL_TOTAL; off += k, k = k % 200 + 1) {
		if (k > SMALL_TOTAL - off)
			k = SMALL_TOTAL - off;
		for (uint64_t i = 0; i < k; i++)
			buf[i] = pat(1, off + i);
		if (!peer_send(ssl, MUX_DATA, 1, buf, (uint16_t)k)) {
			peer_fail(p, "write failed");
			return;
		}
	}
	if (!peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

/*
 * Proves that many small DATA frames (the mux keeps them in shared chunks) read back as
 * the same bytes in the same order, in reads of a size that matches no frame, then
 * MUX_EOF.
 */
static void test_client_small_frames(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv3_ctx, script_small_frames);
	struct mux *m;

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, NULL, false);
	o1.chunk = 777;
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, read_eof, &o1, RUN_MS));
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_true(o1.eof);
	assert_true(mux_stream_ended(o1.s));
	(void)finish_peer(loop, m, p, 0);
	assert_peer_ok(p);
	assert_int_equal(o1.in_len, SMALL_TOTAL);
	for (size_t i = 0; i < o1.in_len; i++)
		if (o1.in[i] != pat(1, i))
			fail_msg("byte %zu of the stream is %u, want %u", i, o1.in[i], pat(1, i));
	cleanup(loop, p);
}

/* Reads stream 1 to its END, then ends it too. */
static void script_early(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_end1, "END 1"))
		return;
	if (!peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

static bool owner_released(void *arg)
{
	return ((struct owner *)arg)->released;
}

/*
 * (g) Proves that a stream may be written before its connection is up: mux_stream_write
 * and mux_stream_end return 0 ("not now"), not -1, and a read returns 0; the stream is
 * woken once the connection is up, and the bytes written then go out after its OPEN.
 */
static void test_client_write_while_connecting(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv3_ctx, script_early);
	struct mux *m;
	struct mux_stream *s;
	char c;

	(void)state;
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, "early bytes", true);
	o1.release_done = true;
	s = open_stream(m, 1001, &o1);
	assert_false(mux_stream_ready(s));
	calling = &o1;
	assert_int_equal(mux_stream_write(s, "early bytes", 11), 0);
	assert_int_equal(mux_stream_end(s), 0);
	assert_int_equal(mux_stream_read(s, &c, 1), 0);
	calling = NULL;
	assert_int_equal(s->fail, MUX_FAIL_NONE);
	assert_int_equal(o1.wakes, 0);
	assert_true(run_until(loop, owner_released, &o1, RUN_MS));
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	assert_true(o1.wakes_at_first_write >= 1); /* written after a wake */
	(void)finish_peer(loop, m, p, 0);
	assert_peer_ok(p);
	assert_int_equal(p->nopen, 1);
	assert_true(p->nlog >= 3);
	assert_int_equal(p->log_type[0], MUX_OPEN);
	assert_int_equal(p->log_type[1], MUX_DATA);
	assert_peer_data(p, 1, "early bytes");
	assert_int_equal(p->end[1], 1);
	cleanup(loop, p);
}

/*
 * Reads stream 1 to its END, granting back every 64 KiB as it comes, and checking that the
 * mux never has more than MUX_WINDOW bytes outstanding; then ends it too.
 */
static void script_upload(struct peer *p, SSL *ssl)
{
	uint64_t granted = 0;

	while (p->end[1] == 0) {
		if (!peer_frame(p, ssl)) {
			peer_fail(p, "the connection ended (%s) after %zu bytes, %llu granted",
			          end_names[p->how], p->data_len[1], (unsigned long long)granted);
			return;
		}
		if (p->data_len[1] - granted > MUX_WINDOW) {
			peer_fail(p, "%zu bytes sent beyond the window", p->data_len[1] - granted);
			return;
		}
		if (p->data_len[1] - granted >= MUX_WINDOW / 4 && p->end[1] == 0) {
			if (!peer_send_u32(ssl, MUX_WINDOW_UPDATE, 1,
			                   (uint32_t)(p->data_len[1] - granted))) {
				peer_fail(p, "write failed");
				return;
			}
			granted = p->data_len[1];
		}
	}
	if (!peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

/*
 * Proves flow control from the sender's side, and the connection's write buffer: total
 * bytes written on a stream, then END, arrive whole and in order, never more than
 * MUX_WINDOW ahead of the grants, the owner being woken when WINDOW frames or room come
 * (small: socket buffers of a few KiB, so that writes block in the kernel all along).
 */
static void bulk_upload(int small, size_t total)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_new(script_upload);
	uint8_t *big = malloc(total);
	struct ending e;
	struct mux *m;
	int fail, error;

	assert_non_null(big);
	for (size_t i = 0; i < total; i++)
		big[i] = pat(1, i);
	reset_state();
	p->ctx = pki.srv3_ctx;
	p->lfd = bind_loopback_rcvbuf(true, small, &p->port);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	m = client_mux(loop, &client_cfg, p->port);
	if (small != 0)
		assert_int_equal(
		    setsockopt(mux_fd(m), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	owner_init(&o1, NULL, true);
	o1.out = big;
	o1.out_len = total;
	o1.release_done = true;
	open_stream(m, 1001, &o1);
	(void)run_until(loop, owner_released, &o1, RUN_MS);
	owner_note(&o1);
	fail = o1.fail;
	error = o1.error;
	e = finish_peer(loop, m, p, 0);
	if (p->err[0] != '\0' || !o1.released)
		fail_msg(
		    "in %d ms: %zu of %zu bytes written, %zu arrived, released %d, stream fail "
		    "%d error %d, on_gone %d (how %d); the peer (once the mux was aborted): %s",
		    RUN_MS, o1.out_off, total, p->data_len[1], o1.released, fail, error,
		    e.gone_calls, (int)e.how, p->err);
	assert_int_equal(p->data_len[1], total);
	assert_memory_equal(p->data[1], big, total);
	assert_int_equal(p->end[1], 1);
	assert_int_equal(o1.fail, MUX_FAIL_NONE);
	free(big);
	cleanup(loop, p);
}

/* 1 MiB and 5 bytes through loopback's default buffers. */
static void test_client_bulk_upload(void **state)
{
	(void)state;
	bulk_upload(0, 1024 * 1024 + 5);
}

/* The same through socket buffers of 4 KiB: the kernel pushes back all along. */
static void test_client_bulk_upload_small_buffers(void **state)
{
	(void)state;
	bulk_upload(4096, 1024 * 1024 + 5);
}

/*
 * 40000 bytes and END through socket buffers of 4 KiB: the last frames of the stream are
 * more than a TLS record (so the mux corks them, relay_tls_cork) and less than the cork's
 * buffer, and the socket takes only part of them at once: the rest must still go out
 * once the socket has room, though no other frame follows them.
 */
static void test_client_upload_corked_tail(void **state)
{
	(void)state;
	bulk_upload(4096, 40000);
}

/* Reads the OPEN; when let go, resets the TCP connection (no close_notify). */
static void script_rst(struct peer *p, SSL *ssl)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (!peer_until(p, ssl, got_opens1, "OPEN"))
		return;
	atomic_store(&p->stage, 1);
	if (!peer_wait_go(p, 1))
		return;
	(void)setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	/* peer_main frees the SSL (no close_notify) and closes: a reset. */
}

/*
 * Proves the wake contract of mux.h ("never from inside a call of the owner's on the
 * stream") where a write fails: the peer reset the connection, and before the loop saw it
 * the owner writes more than the connection's buffer holds, so that mux_stream_write may
 * itself find the socket broken (it flushes a full buffer at once). The stream and the
 * connection fail with a reset, and the owner's wake comes after its write returned, not
 * from inside it.
 */
static void test_client_no_wake_inside_write(void **state)
{
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_server(pki.srv3_ctx, script_rst);
	uint8_t *big = calloc(1, MUX_WINDOW);
	struct mux *m;
	int wake_in_call;

	(void)state;
	assert_non_null(big);
	reset_state();
	m = client_mux(loop, &client_cfg, p->port);
	owner_init(&o1, NULL, false);
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, peer_stage1, p, RUN_MS));
	assert_true(mux_stream_ready(o1.s));
	/* The reset comes while the loop does not run. */
	atomic_store(&p->go, 1);
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	o1.out = big;
	o1.out_len = MUX_WINDOW;
	o1.kick = true;
	owner_pump(&o1); /* may fail at once (-1) or take bytes: either way, no wake inside */
	(void)run_until(loop, is_gone, NULL, RUN_MS);
	assert_int_equal(gone.calls, 1);
	assert_int_equal(gone.how, MUX_FAIL_RESET);
	owner_note(&o1);
	assert_int_equal(o1.fail, MUX_FAIL_RESET);
	wake_in_call = o1.wake_in_call;
	o1.wake_in_call = 0;
	free(big);
	cleanup(loop, p);
	if (wake_in_call != 0)
		fail_msg("the stream's wake was called %d times from inside its own "
		         "mux_stream_write",
		         wake_in_call);
}

/* Reads the OPEN; when let go, reads stream 1 to its END, then ends it too. */
static void script_slow_reader(struct peer *p, SSL *ssl)
{
	if (!peer_until(p, ssl, got_opens1, "OPEN"))
		return;
	atomic_store(&p->stage, 1);
	if (!peer_wait_go(p, 1) || !peer_until(p, ssl, got_end1, "END 1"))
		return;
	if (!peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

/*
 * Proves the wake contract where a write finds room: socket buffers of 4 KiB and a peer
 * that does not read yet, so that a stream's write fills the connection's buffer and the
 * stream waits for room (its write returns 0); then, while the peer reads, the owner
 * tries again (as after any wake) each time the socket has room, without the loop running,
 * until its write goes through. The room it finds must not wake it from inside that write.
 * Then everything arrives.
 */
static void test_client_no_wake_inside_write_room(void **state)
{
	const size_t total = 100000; /* within the window: no WINDOW needed */
	struct loop *loop = new_loop();
	struct owner o1;
	struct peer *p = peer_new(script_slow_reader);
	uint8_t *big = malloc(total);
	int small = 4096, wake_in_call, tries = 0;
	size_t first;
	struct mux *m;

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < total; i++)
		big[i] = pat(1, i);
	reset_state();
	p->ctx = pki.srv3_ctx;
	p->lfd = bind_loopback_rcvbuf(true, small, &p->port);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	m = client_mux(loop, &client_cfg, p->port);
	assert_int_equal(setsockopt(mux_fd(m), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	owner_init(&o1, NULL, false);
	o1.release_done = true;
	open_stream(m, 1001, &o1);
	assert_true(run_until(loop, peer_stage1, p, RUN_MS));
	/* The peer reads nothing yet: the write stops short. */
	o1.out = big;
	o1.out_len = total;
	o1.end_out = true;
	o1.kick = true;
	owner_pump(&o1);
	first = o1.out_off;
	if (first == 0 || first >= total)
		fail_msg("the first write took %zu of %zu bytes", first, total);
	/* The peer reads; the owner tries again whenever the socket has room. */
	atomic_store(&p->go, 1);
	while (o1.out_off == first && o1.wake_in_call == 0 && tries++ < 1000) {
		struct pollfd pf = { .fd = mux_fd(m), .events = POLLOUT };

		assert_int_equal(poll(&pf, 1, IO_TIMEOUT_SEC * 1000), 1);
		o1.kick = true;
		owner_pump(&o1);
	}
	wake_in_call = o1.wake_in_call;
	o1.wake_in_call = 0;
	/* Then the loop again: all of it arrives. */
	(void)run_until(loop, owner_released, &o1, RUN_MS);
	(void)finish_peer(loop, m, p, 0);
	assert_peer_ok(p);
	assert_true(o1.out_off > first);
	assert_int_equal(p->data_len[1], total);
	assert_memory_equal(p->data[1], big, total);
	assert_int_equal(p->end[1], 1);
	free(big);
	cleanup(loop, p);
	if (wake_in_call != 0)
		fail_msg("the stream's wake was called %d times from inside its own "
		         "mux_stream_write (after %d tries)",
		         wake_in_call, tries);
}

/* Server muxes fed by a scripted client */

/* The mux side of a server test: accept, handshake (blocking), then mux_accept. */
static struct mux *server_mux(struct loop *loop, int lfd)
{
	struct pollfd pf = { .fd = lfd, .events = POLLIN };
	struct relay_peer peer;
	struct spiffe_id sid;
	char text[SPIFFE_ID_MAX + 1];
	struct mux *m;
	SSL *ssl;
	int fd, err = 0;

	assert_int_equal(poll(&pf, 1, IO_TIMEOUT_SEC * 1000), 1);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	io_timeouts(fd);
	ssl = relay_tls_new(pki.srv3_ctx);
	assert_non_null(ssl);
	assert_true(SSL_set_fd(ssl, fd));
	if (SSL_accept(ssl) != 1)
		fail_msg("SSL_accept: %s", ERR_reason_error_string(ERR_peek_error()));
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	relay_peer_fill(ssl, RELAY_DOWN, &peer, &sid, text);
	assert_non_null(peer.id_text);
	m = mux_accept(loop, &server_cfg, fd, ssl, peer.id_text, relay_tls_not_after(ssl), NULL,
	               &err);
	if (m == NULL)
		fail_msg("mux_accept: %d (%s)", err, err_str(err));
	return m;
}

static bool open_frame(SSL *ssl, uint32_t id, uint16_t port)
{
	uint8_t pre[PREAMBLE_MAX];
	struct preamble pr = { .version = PREAMBLE_VERSION_3, .port = port, .family = AF_INET };
	int n;

	memcpy(pr.addr, "\x0a\x00\x00\x01", 4);
	n = preamble_encode(&pr, pre, sizeof(pre));
	return n > 0 && peer_send(ssl, MUX_OPEN, id, pre, (uint16_t)n);
}

/* OPEN 1, DATA, END at once; reads the answer to its END; close_notify; the end. */
static void script_s_basic(struct peer *p, SSL *ssl)
{
	if (!open_frame(ssl, 1, 8080) || !peer_send_text(ssl, 1, "hello server") ||
	    !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1, "END 1"))
		return;
	(void)SSL_shutdown(ssl);
	peer_drain(p, ssl);
}

/*
 * Proves the server side of a stream: an OPEN with a version 3 preamble, DATA and END
 * (sent right after the handshake) reach on_open once, with only the preamble queued; the
 * stream's reads give the preamble, then the bytes, then MUX_EOF; its answer and END reach
 * the client on the same ID; the client's close_notify closes the mux cleanly.
 */
static void test_server_stream(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_basic);
	uint8_t want[PREAMBLE_MAX + 16];
	size_t n = pre3(want, 8080);
	struct preamble pr;
	struct owner *o = &so.owners[0];
	struct mux *m;

	(void)state;
	reset_state();
	m = server_mux(loop, lfd);
	assert_string_equal(mux_peer_id(m), CLIENT_ID);
	assert_true(mux_usable(m, 60));
	assert_true(run_until(loop, gone_and_peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_int_equal(so.calls, 1);
	assert_int_equal(so.ids[0], 1);
	assert_int_equal(so.queued[0], n);
	memcpy(want + n, "hello server", 12);
	assert_owner_in(o, want, n + 12);
	assert_true(o->eof);
	assert_int_equal(preamble_parse(o->in, o->in_len, &pr), (int)n);
	assert_int_equal(pr.version, PREAMBLE_VERSION_3);
	assert_int_equal(pr.port, 8080);
	assert_true(o->released);
	assert_int_equal(o->fail, MUX_FAIL_NONE);
	assert_peer_data(p, 1, "reply-1");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->reset[1], 0);
	assert_int_equal(p->nopen + p->goaway, 0);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	close(lfd);
	cleanup(loop, p);
}

static bool got_end1_reset2(const struct peer *p)
{
	return p->end[1] > 0 && p->reset[2] > 0;
}

/* Streams 1 and 2 (DATA for both); reads END 1 and RESET 2; close_notify; the end. */
static void script_s_refused(struct peer *p, SSL *ssl)
{
	if (!open_frame(ssl, 1, 1001) || !open_frame(ssl, 2, 1002) ||
	    !peer_send_text(ssl, 2, "dropped") || !peer_send_text(ssl, 1, "one") ||
	    !peer_send(ssl, MUX_END, 2, NULL, 0) || !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1_reset2, "END 1 and RESET 2"))
		return;
	(void)SSL_shutdown(ssl);
	peer_drain(p, ssl);
}

/*
 * Proves that on_open returning a negative code resets that stream only: the client gets
 * RESET for it (and nothing else of it: its bytes, which crossed, are dropped), while the
 * other stream on the connection is carried as usual.
 */
static void test_server_open_refused(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_refused);
	uint8_t want[PREAMBLE_MAX + 16];
	size_t n = pre3(want, 1001);
	struct mux *m;

	(void)state;
	reset_state();
	so.rc[1] = -EPERM;
	m = server_mux(loop, lfd);
	assert_true(run_until(loop, gone_and_peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_int_equal(so.calls, 2);
	assert_int_equal(so.ids[1], 2);
	memcpy(want + n, "one", 3);
	assert_owner_in(&so.owners[0], want, n + 3);
	assert_int_equal(p->reset[2], 1);
	assert_int_equal(p->data_len[2] + (size_t)p->end[2], 0);
	assert_peer_data(p, 1, "reply-1");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->reset[1], 0);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	(void)m;
	close(lfd);
	cleanup(loop, p);
}

static bool got_end1_goaway(const struct peer *p)
{
	return p->end[1] > 0 && p->goaway > 0;
}

/* Streams 1, 2 and 3; reads GOAWAY and END 1; then waits for the server to close. */
static void script_s_goaway(struct peer *p, SSL *ssl)
{
	if (!open_frame(ssl, 1, 1001) || !open_frame(ssl, 2, 1002) || !open_frame(ssl, 3, 1003) ||
	    !peer_send_text(ssl, 3, "three") || !peer_send_text(ssl, 1, "one") ||
	    !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1_goaway, "GOAWAY and END 1"))
		return;
	peer_drain(p, ssl);
	if (p->how == PEER_CLOSE_NOTIFY)
		(void)SSL_shutdown(ssl);
}

/*
 * Proves MUX_OPEN_GOAWAY: on_open refusing stream 2 that way makes the client receive
 * GOAWAY naming stream 1, the last taken before it; stream 3, opened after, never reaches
 * on_open and gets no RESET (the client starts it elsewhere); stream 1 still completes; and
 * once it is done the server closes the connection itself, cleanly.
 */
static void test_server_open_goaway(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_goaway);
	struct mux *m;

	(void)state;
	reset_state();
	so.rc[1] = MUX_OPEN_GOAWAY;
	m = server_mux(loop, lfd);
	assert_true(run_until(loop, gone_and_peer_done, p, RUN_MS));
	pthread_join(p->th, NULL);
	assert_peer_ok(p);
	assert_int_equal(so.calls, 2);
	assert_int_equal(p->goaway, 1);
	assert_int_equal(p->goaway_last, 1);
	assert_int_equal(p->reset[1] + p->reset[2] + p->reset[3], 0);
	assert_int_equal(p->data_len[2] + p->data_len[3], 0);
	assert_peer_data(p, 1, "reply-1");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	(void)m;
	close(lfd);
	cleanup(loop, p);
}

/* Stream 1 whole; reads GOAWAY and END 1; then waits for the server to close. */
static void script_s_drain(struct peer *p, SSL *ssl)
{
	if (!open_frame(ssl, 1, 1001) || !peer_send_text(ssl, 1, "one") ||
	    !peer_send(ssl, MUX_END, 1, NULL, 0)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end1_goaway, "GOAWAY and END 1"))
		return;
	atomic_store(&p->stage, 1);
	peer_drain(p, ssl);
	if (p->how == PEER_CLOSE_NOTIFY)
		(void)SSL_shutdown(ssl);
}

static bool stream_taken(void *arg)
{
	(void)arg;
	return so.calls > 0;
}

/*
 * Proves mux_goaway on a server with a stream open (a drain): the client gets GOAWAY naming
 * the stream, which still completes; when its owner releases it, after its last frames
 * went out, the server closes the connection by itself: close_notify, on_gone with
 * MUX_FAIL_NONE (mux.h: "close once none is open").
 */
static void test_server_goaway_drain(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_drain);
	struct owner *o = &so.owners[0];
	struct ending e;
	enum peer_end peer_how;
	struct mux *m;

	(void)state;
	reset_state();
	so.keep[0] = true;
	m = server_mux(loop, lfd);
	assert_true(run_until(loop, stream_taken, NULL, RUN_MS));
	mux_goaway(m);
	assert_false(mux_usable(m, 0));
	assert_true(run_until(loop, peer_stage1, p, RUN_MS));
	assert_true(o->eof && o->ended);
	assert_int_equal(gone.calls, 0);
	owner_release(o, false); /* over both ways: no frame */
	e = finish_peer(loop, m, p, 3000);
	assert_peer_ok(p);
	assert_int_equal(p->goaway, 1);
	assert_int_equal(p->goaway_last, 1);
	assert_peer_data(p, 1, "reply-1");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->reset[1] + p->stop[1], 0);
	peer_how = p->how;
	close(lfd);
	cleanup(loop, p);
	if (e.gone_calls != 1 || e.how != MUX_FAIL_NONE || peer_how != PEER_CLOSE_NOTIFY)
		fail_msg("GOAWAY and the last stream released: on_gone called %d times (how %d) in "
		         "3 s, the client saw %s; want on_gone(MUX_FAIL_NONE) and close_notify",
		         e.gone_calls, (int)e.how, end_names[peer_how]);
}

/* Appends a frame to buf (at *len): for scripts that send several in one TLS record. */
static void frame_add(uint8_t *buf, size_t *len, enum mux_type type, uint32_t id,
                      const void *payload, uint16_t n)
{
	mux_frame_put(buf + *len, type, n, id);
	if (n > 0)
		memcpy(buf + *len + MUX_HEAD, payload, n);
	*len += MUX_HEAD + (size_t)n;
}

static void frame_add_open(uint8_t *buf, size_t *len, uint32_t id, uint16_t port)
{
	uint8_t pre[PREAMBLE_MAX];
	size_t n = pre3(pre, port);

	frame_add(buf, len, MUX_OPEN, id, pre, (uint16_t)n);
}

static void frame_add_u32(uint8_t *buf, size_t *len, enum mux_type type, uint32_t id, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	frame_add(buf, len, type, id, b, 4);
}

/* What a client does wrong, after OPEN 2 and DATA 2 (one TLS record for all). */
enum bad_seq {
	BAD_SAME_ID = 1,     /* OPEN 2 again */
	BAD_LOWER_ID,        /* OPEN 1 */
	BAD_STOP_BEFORE_END, /* STOP 2 without its END */
	BAD_END_TWICE,       /* END 2, END 2 */
	BAD_DATA_AFTER_END,  /* END 2, DATA 2 */
	BAD_NEVER_OPENED,    /* DATA 5: above every ID opened */
	BAD_WINDOW_ZERO,     /* WINDOW 2 of 0 */
	BAD_WINDOW_OVERFLOW, /* WINDOW 2 of 2^31-1 on top of MUX_WINDOW */
	BAD_CLIENT_GOAWAY,   /* GOAWAY from a client */
	BAD_SEQ_COUNT_
};

static void script_s_bad(struct peer *p, SSL *ssl)
{
	uint8_t buf[4096];
	size_t len = 0;

	frame_add_open(buf, &len, 2, 1002);
	frame_add(buf, &len, MUX_DATA, 2, "x", 1);
	switch ((enum bad_seq)p->arg) {
	case BAD_SAME_ID:
		frame_add_open(buf, &len, 2, 1001);
		break;
	case BAD_LOWER_ID:
		frame_add_open(buf, &len, 1, 1001);
		break;
	case BAD_STOP_BEFORE_END:
		frame_add(buf, &len, MUX_STOP, 2, NULL, 0);
		break;
	case BAD_END_TWICE:
		frame_add(buf, &len, MUX_END, 2, NULL, 0);
		frame_add(buf, &len, MUX_END, 2, NULL, 0);
		break;
	case BAD_DATA_AFTER_END:
		frame_add(buf, &len, MUX_END, 2, NULL, 0);
		frame_add(buf, &len, MUX_DATA, 2, "y", 1);
		break;
	case BAD_NEVER_OPENED:
		frame_add(buf, &len, MUX_DATA, 5, "y", 1);
		break;
	case BAD_WINDOW_ZERO:
		frame_add_u32(buf, &len, MUX_WINDOW_UPDATE, 2, 0);
		break;
	case BAD_WINDOW_OVERFLOW:
		frame_add_u32(buf, &len, MUX_WINDOW_UPDATE, 2, 0x7fffffffu);
		break;
	default: /* BAD_CLIENT_GOAWAY */
		frame_add_u32(buf, &len, MUX_GOAWAY, 0, 0);
		break;
	}
	if (!peer_write(ssl, buf, len)) {
		peer_fail(p, "write failed");
		return;
	}
	peer_drain(p, ssl);
}

static const char *const bad_names[] = {
	NULL,
	"same OPEN ID",
	"lower OPEN ID",
	"STOP before END",
	"END twice",
	"DATA after END",
	"DATA for a stream never opened",
	"WINDOW of 0",
	"WINDOW beyond 2^31-1",
	"GOAWAY from the client",
};

/*
 * A server mux fed one protocol error after OPEN 2: the connection dies with a reset, the
 * stream on_open took fails with MUX_FAIL_RESET and ERR_MUX_FRAME, on_gone gets
 * MUX_FAIL_RESET, and the client sees its TCP connection reset (or closed), with no
 * close_notify and no frame.
 */
static void protocol_error(enum bad_seq seq)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	const char *what = bad_names[seq];
	struct peer *p;
	struct mux *m;

	reset_state();
	p = peer_new(script_s_bad);
	p->client = true;
	p->ctx = pki.cli_ctx;
	p->port = port;
	p->arg = seq;
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
	m = server_mux(loop, lfd);
	(void)finish_peer(loop, m, p, RUN_MS);
	if (p->err[0] != '\0')
		fail_msg("%s: peer: %s", what, p->err);
	if (so.calls != 1 || so.ids[0] != 2)
		fail_msg("%s: on_open called %d times", what, so.calls);
	if (so.owners[0].fail != MUX_FAIL_RESET || so.owners[0].error != ERR_MUX_FRAME)
		fail_msg("%s: the stream failed with %d, %d (%s); want MUX_FAIL_RESET, "
		         "ERR_MUX_FRAME",
		         what, so.owners[0].fail, so.owners[0].error, err_str(so.owners[0].error));
	if (gone.how != MUX_FAIL_RESET || !gone.streams_settled)
		fail_msg("%s: on_gone(%d)", what, (int)gone.how);
	if (p->nlog != 0)
		fail_msg("%s: the client got %d frames", what, p->nlog);
	if (p->how != PEER_RESET && p->how != PEER_EOF)
		fail_msg("%s: the client saw %s, want a reset", what, end_names[p->how]);
	close(lfd);
	cleanup(loop, p);
}

/* Proves that an OPEN whose ID equals the last one kills the connection (and its streams). */
static void test_server_open_same_id(void **state)
{
	(void)state;
	protocol_error(BAD_SAME_ID);
}

/* Proves that an OPEN whose ID is below the last one kills the connection too. */
static void test_server_open_lower_id(void **state)
{
	(void)state;
	protocol_error(BAD_LOWER_ID);
}

/*
 * Proves the other protocol errors of mux.h's list kill the connection the same way: STOP
 * before the sender's END, a second END, DATA after END, a frame for a stream above every
 * ID opened, a WINDOW of 0 or one that takes the window beyond 2^31-1, GOAWAY from a client.
 */
static void test_server_protocol_errors(void **state)
{
	(void)state;
	for (int seq = BAD_STOP_BEFORE_END; seq < BAD_SEQ_COUNT_; seq++)
		protocol_error((enum bad_seq)seq);
}

static bool got_stop1(const struct peer *p)
{
	return p->end[1] > 0 && p->stop[1] > 0;
}

static bool got_end2(const struct peer *p)
{
	return p->end[2] > 0;
}

/*
 * Stream 1 without our END; reads END and STOP; then our bytes and END for it, which cross
 * the STOP; stream 2 whole; close_notify once it is answered.
 */
static void script_s_stop_sent(struct peer *p, SSL *ssl)
{
	uint8_t buf[1024];
	size_t len = 0;

	frame_add_open(buf, &len, 1, 1001);
	frame_add(buf, &len, MUX_DATA, 1, "req", 3);
	if (!peer_write(ssl, buf, len)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_stop1, "END 1 and STOP 1"))
		return;
	len = 0;
	frame_add(buf, &len, MUX_DATA, 1, "late", 4);
	frame_add(buf, &len, MUX_END, 1, NULL, 0);
	frame_add_open(buf, &len, 2, 1002);
	frame_add(buf, &len, MUX_DATA, 2, "two", 3);
	frame_add(buf, &len, MUX_END, 2, NULL, 0);
	if (!peer_write(ssl, buf, len)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end2, "END 2"))
		return;
	(void)SSL_shutdown(ssl);
	peer_drain(p, ssl);
}

/*
 * Proves STOP from the server: a stream released without rst after our END, while the
 * client's direction is still open, sends STOP after the END (not RESET); the client's
 * bytes and END that cross it are dropped without harm to the connection, which carries
 * the next stream and closes cleanly.
 */
static void test_server_sends_stop(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_stop_sent);
	uint8_t want[PREAMBLE_MAX + 16];
	size_t n = pre3(want, 1002);
	int end_at = -1, stop_at = -1;
	struct mux *m;

	(void)state;
	reset_state();
	so.early[0] = true;
	m = server_mux(loop, lfd);
	(void)finish_peer(loop, m, p, RUN_MS);
	assert_peer_ok(p);
	assert_int_equal(so.calls, 2);
	assert_true(so.owners[0].released);
	assert_int_equal(so.owners[0].fail, MUX_FAIL_NONE);
	assert_peer_data(p, 1, "reply-1");
	assert_int_equal(p->end[1], 1);
	assert_int_equal(p->stop[1], 1);
	assert_int_equal(p->reset[1], 0);
	for (int i = 0; i < p->nlog; i++) {
		if (p->log_id[i] == 1 && p->log_type[i] == MUX_END)
			end_at = i;
		if (p->log_id[i] == 1 && p->log_type[i] == MUX_STOP)
			stop_at = i;
	}
	assert_true(end_at >= 0 && stop_at > end_at);
	memcpy(want + n, "two", 3);
	assert_owner_in(&so.owners[1], want, n + 3);
	assert_peer_data(p, 2, "reply-2");
	assert_int_equal(p->end[2], 1);
	assert_int_equal(p->reset[2] + p->stop[2], 0);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	close(lfd);
	cleanup(loop, p);
}

/* OPEN 1, END 1, STOP 1 in one record; then stream 2 whole; close_notify once answered. */
static void script_s_stop_received(struct peer *p, SSL *ssl)
{
	uint8_t buf[1024];
	size_t len = 0;

	frame_add_open(buf, &len, 1, 1001);
	frame_add(buf, &len, MUX_END, 1, NULL, 0);
	frame_add(buf, &len, MUX_STOP, 1, NULL, 0);
	if (!peer_write(ssl, buf, len)) {
		peer_fail(p, "write failed");
		return;
	}
	len = 0;
	frame_add_open(buf, &len, 2, 1002);
	frame_add(buf, &len, MUX_DATA, 2, "two", 3);
	frame_add(buf, &len, MUX_END, 2, NULL, 0);
	if (!peer_write(ssl, buf, len)) {
		peer_fail(p, "write failed");
		return;
	}
	if (!peer_until(p, ssl, got_end2, "END 2"))
		return;
	(void)SSL_shutdown(ssl);
	peer_drain(p, ssl);
}

/*
 * Proves STOP from the client: after END and STOP, the stream reads its preamble then
 * MUX_EOF; what its owner writes is taken (the whole length, as by a socket shut for
 * reading) and goes nowhere; its END and release send nothing either (no DATA, END or
 * RESET reach the client), and the connection goes on.
 */
static void test_server_stop_received(void **state)
{
	struct loop *loop = new_loop();
	int port, lfd = bind_loopback(true, &port);
	struct peer *p = peer_client(port, script_s_stop_received);
	uint8_t want[PREAMBLE_MAX];
	size_t n = pre3(want, 1001);
	struct owner *o = &so.owners[0];
	struct mux *m;

	(void)state;
	reset_state();
	m = server_mux(loop, lfd);
	(void)finish_peer(loop, m, p, RUN_MS);
	assert_peer_ok(p);
	assert_int_equal(so.calls, 2);
	assert_owner_in(o, want, n);
	assert_true(o->eof);
	assert_int_equal(o->out_off, o->out_len); /* "reply-1", taken */
	assert_false(o->wr_fail);
	assert_true(o->ended);
	assert_true(o->released);
	assert_int_equal(o->fail, MUX_FAIL_NONE);
	assert_int_equal(p->data_len[1], 0);
	assert_int_equal(p->end[1] + p->reset[1] + p->stop[1], 0);
	assert_peer_data(p, 2, "reply-2");
	assert_int_equal(p->end[2], 1);
	assert_int_equal(gone.how, MUX_FAIL_NONE);
	assert_int_equal(p->how, PEER_CLOSE_NOTIFY);
	close(lfd);
	cleanup(loop, p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_valid),
		cmocka_unit_test(test_frame_invalid),
		cmocka_unit_test(test_frame_partial),
		cmocka_unit_test(test_frame_put),
		cmocka_unit_test(test_client_two_streams),
		cmocka_unit_test(test_client_goaway),
		cmocka_unit_test(test_client_window_overflow),
		cmocka_unit_test(test_client_downgrade_take),
		cmocka_unit_test(test_client_downgrade_untaken),
		cmocka_unit_test(test_client_refused),
		cmocka_unit_test(test_client_stream_limit),
		cmocka_unit_test(test_client_window_grants),
		cmocka_unit_test(test_client_window_grants_unaligned),
		cmocka_unit_test(test_client_small_frames),
		cmocka_unit_test(test_client_write_while_connecting),
		cmocka_unit_test(test_client_bulk_upload),
		cmocka_unit_test(test_client_bulk_upload_small_buffers),
		cmocka_unit_test(test_client_upload_corked_tail),
		cmocka_unit_test(test_client_no_wake_inside_write),
		cmocka_unit_test(test_client_no_wake_inside_write_room),
		cmocka_unit_test(test_server_stream),
		cmocka_unit_test(test_server_open_refused),
		cmocka_unit_test(test_server_open_goaway),
		cmocka_unit_test(test_server_goaway_drain),
		cmocka_unit_test(test_server_open_same_id),
		cmocka_unit_test(test_server_open_lower_id),
		cmocka_unit_test(test_server_protocol_errors),
		cmocka_unit_test(test_server_sends_stop),
		cmocka_unit_test(test_server_stop_received),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
