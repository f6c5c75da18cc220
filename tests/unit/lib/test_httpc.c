/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/httpc.c against a scripted HTTP(S) server on a thread of the test process. */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "meshlet/httpc.h"

static struct {
	char dir[64];
	EVP_PKEY *root_key, *other_key, *server_key, *client_key;
	X509 *root, *other, *server, *client;
	char *root_pem, *other_pem;
	SSL_CTX *server_ctx, *mtls_ctx;
	struct httpc_tls *tls; /* trusts root */
} fx;

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* rc is want; on failure both names and e's message are printed. */
#define assert_code(rc, want, e)                                                                   \
	do {                                                                                       \
		int rc_ = (rc), want_ = (want);                                                    \
		if (rc_ != want_)                                                                  \
			fail_msg("got %s (%d): \"%s\"; want %s (%d)", err_name(rc_), rc_, (e).msg, \
			         err_name(want_), want_);                                          \
	} while (0)

#define assert_no_openssl_errors() assert_int_equal(ERR_peek_error(), 0)

/* Certificates made at run time */

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                       const char *san, int ca, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
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

static char *bio_text(BIO *bio)
{
	char *data, *s;
	long n = BIO_get_mem_data(bio, &data);

	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	BIO_free(bio);
	return s;
}

static char *cert_text(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_true(PEM_write_bio_X509(bio, x));
	return bio_text(bio);
}

static char *key_text(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_true(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
	return bio_text(bio);
}

/* A path in the temporary directory; four rotating buffers so that a call may use several. */
static const char *path_of(const char *name)
{
	static char bufs[4][256];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", fx.dir, name);
	return p;
}

/* Writes text into the temporary directory with exactly mode; returns the path. */
static const char *put(const char *name, const char *text, mode_t mode)
{
	const char *path = path_of(name);
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static SSL_CTX *server_ctx(bool require_client_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_true(SSL_CTX_use_certificate(ctx, fx.server));
	assert_true(SSL_CTX_use_PrivateKey(ctx, fx.server_key));
	if (require_client_cert) {
		assert_true(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), fx.root));
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
}

static int setup(void **state)
{
	struct err e = { 0 };

	(void)state;
	/* meshlet daemons ignore SIGPIPE; so does the test server's thread. */
	signal(SIGPIPE, SIG_IGN);
	strcpy(fx.dir, "/tmp/meshlet-test-httpc-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	fx.root_key = EVP_EC_gen("P-256");
	fx.other_key = EVP_EC_gen("P-256");
	fx.server_key = EVP_EC_gen("P-256");
	fx.client_key = EVP_EC_gen("P-256");
	if (!fx.root_key || !fx.other_key || !fx.server_key || !fx.client_key)
		return -1;
	fx.root = make_cert(fx.root_key, fx.root_key, NULL, "meshlet test root", NULL, 1, 1);
	fx.other = make_cert(fx.other_key, fx.other_key, NULL, "another root", NULL, 1, 1);
	fx.server = make_cert(fx.server_key, fx.root_key, fx.root, "localhost",
	                      "DNS:localhost,IP:127.0.0.1", 0, 2);
	fx.client = make_cert(fx.client_key, fx.root_key, fx.root, "meshlet-proxy",
	                      "URI:spiffe://example.org/ns/default/sa/web", 0, 3);
	fx.root_pem = cert_text(fx.root);
	fx.other_pem = cert_text(fx.other);
	fx.server_ctx = server_ctx(false);
	fx.mtls_ctx = server_ctx(true);
	fx.tls = httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, NULL, NULL, &e);
	if (fx.tls == NULL) {
		fprintf(stderr, "httpc_tls_new: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	httpc_tls_free(fx.tls);
	SSL_CTX_free(fx.server_ctx);
	SSL_CTX_free(fx.mtls_ctx);
	free(fx.root_pem);
	free(fx.other_pem);
	X509_free(fx.root);
	X509_free(fx.other);
	X509_free(fx.server);
	X509_free(fx.client);
	EVP_PKEY_free(fx.root_key);
	EVP_PKEY_free(fx.other_key);
	EVP_PKEY_free(fx.server_key);
	EVP_PKEY_free(fx.client_key);
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The test server: accepts on 127.0.0.1, reads a request, answers from its script. */

enum srv_mode {
	SRV_REPLY,  /* write reply, then close */
	SRV_ECHO,   /* answer 200 with the request's body */
	SRV_SILENT, /* read the request, answer nothing until the client goes */
	SRV_BLURT,  /* write reply at once, without reading anything, then close */
	SRV_HANGUP, /* close right after the TLS handshake */
};

#define SRV_REQUEST_MAX (1024 * 1024)

struct srv {
	int lfd, port;
	SSL_CTX *ctx; /* NULL: plain HTTP */
	enum srv_mode mode;
	const char *reply;
	size_t reply_len;
	atomic_bool no_close_notify; /* end TLS by closing the socket only */
	pthread_t thread;
	pthread_mutex_t lock; /* held while a connection is served */
	atomic_bool stop;
	atomic_int connections;
	atomic_bool handshake_failed;
	char peer_cn[128]; /* the client certificate's CN */
	char *request;     /* what the last connection sent, NUL-terminated */
	size_t request_len;
};

static ssize_t srv_read(SSL *ssl, int fd, char *buf, size_t n)
{
	if (ssl == NULL)
		return recv(fd, buf, n, 0);
	return SSL_read(ssl, buf, (int)n);
}

static void srv_write(SSL *ssl, int fd, const char *buf, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = ssl != NULL ? SSL_write(ssl, buf, (int)n) : send(fd, buf, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

/* Waits (at most 3 s) for the client to close its side, reading and dropping what it sends. */
static void srv_drain(SSL *ssl, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[4096];

	for (int i = 0; i < 60 && poll(&p, 1, 50) >= 0; i++)
		if ((p.revents & POLLIN) && srv_read(ssl, fd, buf, sizeof(buf)) <= 0)
			return;
}

static size_t content_length(const char *head)
{
	const char *p = strcasestr(head, "\r\nContent-Length:");

	return p != NULL ? strtoul(p + 17, NULL, 10) : 0;
}

static void serve(struct srv *s, int fd)
{
	struct timeval tv = { .tv_sec = 5 };
	char *end = NULL, *resp;
	size_t want = 0;
	SSL *ssl = NULL;
	X509 *peer;
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	s->request_len = 0;
	s->request[0] = '\0';
	if (s->ctx != NULL) {
		ssl = SSL_new(s->ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1) {
			atomic_store(&s->handshake_failed, true);
			srv_drain(NULL, fd);
			goto out;
		}
		peer = SSL_get0_peer_certificate(ssl);
		if (peer != NULL)
			X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
			                          s->peer_cn, sizeof(s->peer_cn));
	}
	if (s->mode == SRV_HANGUP) {
		if (ssl != NULL)
			SSL_shutdown(ssl);
		goto out;
	}
	if (s->mode == SRV_BLURT) {
		srv_write(ssl, fd, s->reply, s->reply_len);
		srv_drain(ssl, fd);
		goto out;
	}
	/* The head, then as much of the body as Content-Length announces. */
	while (s->request_len < SRV_REQUEST_MAX) {
		if (end == NULL && (end = strstr(s->request, "\r\n\r\n")) != NULL) {
			want = (size_t)(end + 4 - s->request) + content_length(s->request);
		}
		if (end != NULL && s->request_len >= want)
			break;
		n = srv_read(ssl, fd, s->request + s->request_len,
		             SRV_REQUEST_MAX - s->request_len);
		if (n <= 0)
			goto out;
		s->request_len += (size_t)n;
		s->request[s->request_len] = '\0';
	}
	if (s->mode == SRV_SILENT) {
		srv_drain(ssl, fd);
		goto out;
	}
	if (s->mode == SRV_ECHO) {
		n = asprintf(&resp,
		             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		             "Content-Length: %zu\r\n\r\n",
		             s->request_len - (size_t)(end + 4 - s->request));
		srv_write(ssl, fd, resp, (size_t)n);
		srv_write(ssl, fd, end + 4, s->request_len - (size_t)(end + 4 - s->request));
		free(resp);
	} else {
		srv_write(ssl, fd, s->reply, s->reply_len);
	}
	if (ssl != NULL && !atomic_load(&s->no_close_notify))
		SSL_shutdown(ssl);
out:
	SSL_free(ssl);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	int fd;

	while (!atomic_load(&s->stop)) {
		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->connections, 1);
		pthread_mutex_lock(&s->lock);
		serve(s, fd);
		close(fd);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* A socket bound to 127.0.0.1 on a free port, listening when listening is set. */
static int loopback_socket(int *port, bool listening)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct srv *srv_start_n(SSL_CTX *ctx, enum srv_mode mode, const char *reply, size_t len)
{
	struct srv *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->request = malloc(SRV_REQUEST_MAX + 1);
	assert_non_null(s->request);
	s->request[0] = '\0';
	s->ctx = ctx;
	s->mode = mode;
	s->reply = reply;
	s->reply_len = len;
	s->lfd = loopback_socket(&s->port, true);
	assert_int_equal(pthread_mutex_init(&s->lock, NULL), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

static struct srv *srv_start(SSL_CTX *ctx, enum srv_mode mode, const char *reply)
{
	return srv_start_n(ctx, mode, reply, reply != NULL ? strlen(reply) : 0);
}

static void srv_stop(struct srv *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	close(s->lfd);
	free(s->request);
	free(s);
}

/*
 * The server, once done with the connection it is serving (it holds the lock from accept
 * on, so a client that has its answer finds the record complete).
 */
static struct srv *srv_done(struct srv *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_mutex_unlock(&s->lock);
	return s;
}

/* A URL on the test server; rotating buffers. */
static const char *url_of(const struct srv *s, const char *scheme, const char *host,
                          const char *path)
{
	static char bufs[4][256];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s://%s:%d%s", scheme, host, s->port, path);
	return p;
}

static struct httpc_request get_of(const char *url)
{
	return (struct httpc_request){ .method = "GET",
		                       .url = url,
		                       .timeout_ms = 5000,
		                       .max_response = 64 * 1024,
		                       .tls = fx.tls,
		                       .allow_plain = true };
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One GET of /x from a fresh server answering reply (over TLS when ctx is set). */
static int fetch(SSL_CTX *ctx, const char *reply, size_t len, size_t max,
                 struct httpc_response *res, struct err *e)
{
	struct srv *s = srv_start_n(ctx, SRV_REPLY, reply, len);
	struct httpc_request req = get_of(url_of(s, ctx ? "https" : "http", "localhost", "/x"));
	int rc;

	memset(e, 0, sizeof(*e));
	req.max_response = max;
	rc = httpc_do(&req, res, e);
	srv_stop(s);
	return rc;
}

/* URLs */

static void test_parse_url(void **state)
{
	static const struct {
		const char *url, *host, *path;
		int port;
		bool tls;
	} good[] = {
		{ "https://example.com", "example.com", "/", 443, true },
		{ "https://example.com/", "example.com", "/", 443, true },
		{ "https://meshlet-ca.meshlet-system.svc:8443/v1/certify",
		  "meshlet-ca.meshlet-system.svc", "/v1/certify", 8443, true },
		{ "https://example.com?x=1", "example.com", "/?x=1", 443, true },
		{ "https://example.com/a/b?x=1&y=%20", "example.com", "/a/b?x=1&y=%20", 443, true },
		{ "HTTPS://Example.COM/x", "Example.COM", "/x", 443, true },
		{ "http://10.0.0.1:8080/x", "10.0.0.1", "/x", 8080, false },
		{ "http://10.0.0.1", "10.0.0.1", "/", 80, false },
		{ "https://[::1]:8443/x", "::1", "/x", 8443, true },
		{ "https://[fe80::1]", "fe80::1", "/", 443, true },
		{ "https://host_1:65535/", "host_1", "/", 65535, true },
		{ "https://h:1", "h", "/", 1, true },
	};
	static const char *const bad[] = {
		"",
		"example.com/x",
		"ftp://example.com/",
		"https:/example.com/",
		"https://",
		"https:///path",
		"https://:443/",
		"https://host:/",
		"https://host:0/",
		"https://host:65536/",
		"https://host:99999999999999999999/",
		"https://host:12a/",
		"https://host:-1/",
		"https://user@host/",
		"https://user:pw@host/",
		"https://host/a b",
		"https://host/a\tb",
		"https://host/\xc3\xa9",
		"https://host/#frag",
		"https://[::1/",
		"https://[]/",
		"https://[nothex]/",
		"https://[1.2.3.4]/",
		"https://[::1]x/",
		"https://[::1]:/",
		"https://[fe80::1%25eth0]/",
		"https://ho$t/",
		"https://ho%74/",
		"https://host\n/",
		"https://host:443:443/",
	};
	char host[HTTPC_HOST_MAX] = "untouched", path[64] = "untouched";
	int port = -1;
	bool tls = false;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (httpc_parse_url(good[i].url, host, sizeof(host), &port, path, sizeof(path),
		                    &tls) != 0)
			fail_msg("refused %s", good[i].url);
		assert_string_equal(host, good[i].host);
		assert_string_equal(path, good[i].path);
		assert_int_equal(port, good[i].port);
		assert_int_equal(tls, good[i].tls);
	}
	strcpy(host, "untouched");
	strcpy(path, "untouched");
	port = -1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc =
		    httpc_parse_url(bad[i], host, sizeof(host), &port, path, sizeof(path), &tls);
		if (rc != ERR_HTTPC_URL)
			fail_msg("\"%s\": got %s, want ERR_HTTPC_URL", bad[i], err_name(rc));
	}
	assert_int_equal(httpc_parse_url(NULL, host, sizeof(host), &port, path, sizeof(path), &tls),
	                 ERR_HTTPC_URL);
	/* Failures write nothing. */
	assert_string_equal(host, "untouched");
	assert_string_equal(path, "untouched");
	assert_int_equal(port, -1);
	/* Buffers too small for the host or the path. */
	assert_int_equal(
	    httpc_parse_url("https://example.com/", host, 11, &port, path, sizeof(path), &tls),
	    ERR_TRUNCATED);
	assert_int_equal(
	    httpc_parse_url("https://example.com/", host, 12, &port, path, sizeof(path), &tls), 0);
	assert_int_equal(httpc_parse_url("https://h/abc", host, sizeof(host), &port, path, 4, &tls),
	                 ERR_TRUNCATED);
	assert_int_equal(httpc_parse_url("https://h/abc", host, sizeof(host), &port, path, 5, &tls),
	                 0);
	assert_string_equal(path, "/abc");
}

/* Requests and well-formed responses */

static void test_get(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                            "Content-Length: 11\r\nX-Other: y\r\n\r\n{\"ok\":true}";
	struct srv *s = srv_start(fx.server_ctx, SRV_REPLY, reply);
	struct httpc_header hdr[] = { { "Accept", "application/json" }, { "X-Trace", "a b\tc" } };
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/openid/v1/jwks?x=1"));
	struct httpc_response res;
	struct err e = { 0 };
	char host[64];

	(void)state;
	req.headers = hdr;
	req.nheaders = 2;
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.content_type, "application/json");
	assert_string_equal(res.body, "{\"ok\":true}");
	assert_int_equal(res.body_len, 11);
	assert_null(res.retry_after);
	assert_no_openssl_errors();
	/* What the server saw. */
	srv_done(s);
	assert_true(strncmp(s->request, "GET /openid/v1/jwks?x=1 HTTP/1.1\r\n", 34) == 0);
	snprintf(host, sizeof(host), "\r\nHost: localhost:%d\r\n", s->port);
	assert_contains(s->request, host);
	assert_contains(s->request, "\r\nAccept: application/json\r\n");
	assert_contains(s->request, "\r\nX-Trace: a b\tc\r\n");
	assert_contains(s->request, "\r\nConnection: close\r\n\r\n");
	assert_null(strcasestr(s->request, "Content-Length"));
	httpc_response_free(&res);
	assert_null(res.body);
	httpc_response_free(&res);
	httpc_response_free(NULL);
	srv_stop(s);
}

static void test_post_json(void **state)
{
	static const char body[] = "{\"apiVersion\":\"authentication.k8s.io/v1\","
	                           "\"kind\":\"TokenReview\",\"spec\":{\"token\":\"abc.def\"}}";
	struct srv *s = srv_start(fx.server_ctx, SRV_ECHO, NULL);
	struct httpc_header hdr[] = { { "Authorization", "Bearer sa-token" },
		                      { "Content-Type", "application/json" } };
	struct httpc_request req =
	    get_of(url_of(s, "https", "127.0.0.1", "/apis/authentication.k8s.io/v1/tokenreviews"));
	struct httpc_response res;
	struct err e = { 0 };
	char want[64];

	(void)state;
	req.method = "POST";
	req.headers = hdr;
	req.nheaders = 2;
	req.body = body;
	req.body_len = strlen(body);
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.body_len, strlen(body));
	assert_string_equal(res.body, body);
	srv_done(s);
	assert_true(strncmp(s->request,
	                    "POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\n",
	                    59) == 0);
	snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", s->port);
	assert_contains(s->request, want);
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
	assert_contains(s->request, want);
	assert_contains(s->request, "\r\nAuthorization: Bearer sa-token\r\n");
	assert_contains(s->request, "\r\nContent-Type: application/json\r\n");
	httpc_response_free(&res);

	/* A POST without a body still says so. */
	req.body = NULL;
	req.body_len = 0;
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_contains(srv_done(s)->request, "\r\nContent-Length: 0\r\n");
	assert_int_equal(res.body_len, 0);
	assert_string_equal(res.body, "");
	httpc_response_free(&res);
	srv_stop(s);
}

static void test_chunked(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
	                            "5\r\nhello\r\n"
	                            "1;name=value;other\r\n,\r\n"
	                            "00006 ; ext\r\n world\r\n"
	                            "a\r\n from a 10\r\n"
	                            "0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n";
	struct httpc_response res;
	struct err e;

	(void)state;
	assert_code(fetch(fx.server_ctx, reply, strlen(reply), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, "hello, world from a 10");
	assert_int_equal(res.body_len, 22);
	httpc_response_free(&res);

	/* Exactly at the limit is fine. */
	assert_code(fetch(NULL, reply, strlen(reply), 22, &res, &e), 0, e);
	httpc_response_free(&res);
}

static void test_read_until_close(void **state)
{
	static const char reply[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
	                            "all of this, until the end";
	struct httpc_response res;
	struct srv *s;
	struct httpc_request req;
	struct err e;

	(void)state;
	assert_code(fetch(fx.server_ctx, reply, strlen(reply), 1024, &res, &e), 0, e);
	assert_string_equal(res.body, "all of this, until the end");
	assert_string_equal(res.content_type, "text/plain");
	httpc_response_free(&res);
	assert_code(fetch(NULL, reply, strlen(reply), 1024, &res, &e), 0, e);
	assert_string_equal(res.body, "all of this, until the end");
	httpc_response_free(&res);

	/* Without close_notify: the framing says the end of the connection is the end. */
	s = srv_start(fx.server_ctx, SRV_REPLY, reply);
	atomic_store(&s->no_close_notify, true);
	req = get_of(url_of(s, "https", "localhost", "/"));
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_string_equal(res.body, "all of this, until the end");
	httpc_response_free(&res);
	assert_no_openssl_errors();
	srv_stop(s);
}

static void test_interim_responses(void **state)
{
	static const char continued[] = "HTTP/1.1 100 Continue\r\n\r\n"
	                                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
	                                "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
	char many[1024] = "";
	struct httpc_response res;
	struct err e;

	(void)state;
	assert_code(fetch(fx.server_ctx, continued, strlen(continued), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 201);
	assert_string_equal(res.body, "ok");
	httpc_response_free(&res);

	for (int i = 0; i < 9; i++)
		strcat(many, "HTTP/1.1 100 Continue\r\n\r\n");
	strcat(many, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_code(fetch(NULL, many, strlen(many), 1024, &res, &e), ERR_HTTPC_PROTOCOL, e);
	assert_contains(e.msg, "interim");
}

static void test_error_statuses(void **state)
{
	static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n"
	                                "not found";
	static const char unavailable[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
	                                  "Content-Type: application/json\r\n"
	                                  "Content-Length: 2\r\n\r\n{}";
	static const char no_content[] = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
	static const char no_reason[] = "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx";
	struct httpc_response res;
	struct err e;

	(void)state;
	assert_code(fetch(fx.server_ctx, not_found, strlen(not_found), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 404);
	assert_string_equal(res.body, "not found");
	httpc_response_free(&res);

	assert_code(fetch(fx.server_ctx, unavailable, strlen(unavailable), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 503);
	assert_string_equal(res.retry_after, "7");
	assert_string_equal(res.content_type, "application/json");
	httpc_response_free(&res);

	/* 204 has no body, whatever its headers say. */
	assert_code(fetch(NULL, no_content, strlen(no_content), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 204);
	assert_int_equal(res.body_len, 0);
	httpc_response_free(&res);

	assert_code(fetch(NULL, no_reason, strlen(no_reason), 1024, &res, &e), 0, e);
	assert_int_equal(res.status, 200);
	httpc_response_free(&res);
}

static void test_head_request(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
	struct srv *s = srv_start(NULL, SRV_REPLY, reply);
	struct httpc_request req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	struct httpc_response res;
	struct err e = { 0 };

	(void)state;
	req.method = "HEAD";
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.body_len, 0);
	httpc_response_free(&res);
	srv_stop(s);
}

static void test_too_large(void **state)
{
	static const char *const replies[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
		"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n",
		("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n"
		 "6\r\n56789a\r\n0\r\n\r\n"),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffff\r\n",
		"HTTP/1.1 200 OK\r\n\r\n0123456789a",
	};
	struct httpc_response res;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		assert_code(fetch(i % 2 ? fx.server_ctx : NULL, replies[i], strlen(replies[i]), 10,
		                  &res, &e),
		            ERR_HTTPC_TOO_LARGE, e);
		assert_contains(e.msg, "limit of 10 bytes");
		assert_null(res.body);
	}
}

/* Hostile or broken servers */

static void test_protocol_errors(void **state)
{
	static const struct {
		const char *reply, *says;
	} cases[] = {
		{ "", "no response" },
		{ "garbage\r\n\r\n", "malformed status line" },
		{ "HTTP/2.0 200 OK\r\n\r\n", "malformed status line" },
		{ "HTTP/1.1 20 OK\r\n\r\n", "malformed status line" },
		{ "HTTP/1.1 2000 OK\r\n\r\n", "malformed status line" },
		{ "HTTP/1.1  200 OK\r\n\r\n", "malformed status line" },
		{ "http/1.1 200 OK\r\n\r\n", "malformed status line" },
		{ "HTTP/1.1 099 Low\r\n\r\n", "status code out of range" },
		{ "HTTP/1.1 600 High\r\n\r\n", "status code out of range" },
		{ "HTTP/1.1 200 O\x01K\r\n\r\n", "control character in the status line" },
		{ "HTTP/1.1 200 OK\n\n", "not ended by CRLF" },
		{ "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "bare CR" },
		{ "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "obs-fold" },
		{ "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "without a name" },
		{ "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "without a name" },
		{ "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header name" },
		{ "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", "malformed header name" },
		{ "HTTP/1.1 200 OK\r\nA: \x7f\r\n\r\n", "control character in a header value" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		  "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nxy",
		  "two different Content-Length values" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "0\r\n\r\n",
		  "both Content-Length and Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		  "Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
		  "chunked\r\n\r\n",
		  "Transfer-Encoding" },
		{ "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0" },
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "protocol switch" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
		  "malformed chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
		  "malformed chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
		  "malformed chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
		  "malformed chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 2\r\n",
		  "malformed chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
		  "overflowing chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "ffffffffffffffffffffffffffffffff1\r\n",
		  "overflowing chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
		  "chunk data not followed by CRLF" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "truncated" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "truncated" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
		  "truncated" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "truncated body" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "truncated response head" },
		{ "HTTP/1.1 200 OK", "truncated response head" },
	};
	struct httpc_response res;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = fetch(NULL, cases[i].reply, strlen(cases[i].reply), 1024, &res, &e);

		if (rc != ERR_HTTPC_PROTOCOL || strstr(e.msg, cases[i].says) == NULL)
			fail_msg("case %zu: got %s \"%s\"; want ERR_HTTPC_PROTOCOL \"%s\"", i,
			         err_name(rc), e.msg, cases[i].says);
		assert_contains(e.msg, "from localhost:");
		assert_null(res.body);
	}
}

static void test_protocol_limits(void **state)
{
	size_t big = HTTPC_MAX_HEAD + 100;
	char *reply = malloc(3 * HTTPC_MAX_HEAD), *p;
	struct httpc_response res;
	struct err e;

	(void)state;
	assert_non_null(reply);
	/* One huge header line. */
	p = reply + sprintf(reply, "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(p, 'a', big);
	strcpy(p + big, "\r\n\r\n");
	assert_code(fetch(NULL, reply, strlen(reply), 1024, &res, &e), ERR_HTTPC_PROTOCOL, e);
	assert_contains(e.msg, "response head larger than 65536 bytes");

	/* Many small ones that add up, and too many of them. */
	p = reply + sprintf(reply, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 95; i++)
		p += sprintf(p, "X-%d: %0700d\r\n", i, 0);
	strcpy(p, "\r\n");
	assert_code(fetch(fx.server_ctx, reply, strlen(reply), 1024, &res, &e), ERR_HTTPC_PROTOCOL,
	            e);
	assert_contains(e.msg, "response head larger than");

	p = reply + sprintf(reply, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < HTTPC_MAX_HEADERS + 1; i++)
		p += sprintf(p, "X-%d: y\r\n", i);
	strcpy(p, "\r\n");
	assert_code(fetch(NULL, reply, strlen(reply), 1024, &res, &e), ERR_HTTPC_PROTOCOL, e);
	assert_contains(e.msg, "more than 100 header lines");

	/* A chunk-size line that never ends. */
	p = reply + sprintf(reply, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	memset(p, 'e', 5000);
	strcpy(p + 5000, "\r\nx\r\n0\r\n\r\n");
	assert_code(fetch(NULL, reply, strlen(reply), 1024, &res, &e), ERR_HTTPC_PROTOCOL, e);
	assert_contains(e.msg, "chunk-size line larger than");
	free(reply);
}

static void test_truncated_tls(void **state)
{
	static const char *const replies[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
	};
	struct httpc_response res;
	struct httpc_request req;
	struct err e = { 0 };
	struct srv *s;

	(void)state;
	/* Cut short with or without close_notify, a framed body is an error either way. */
	for (int notify = 0; notify < 2; notify++) {
		for (size_t i = 0; i < 2; i++) {
			s = srv_start(fx.server_ctx, SRV_REPLY, replies[i]);
			atomic_store(&s->no_close_notify, !notify);
			req = get_of(url_of(s, "https", "localhost", "/"));
			assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_PROTOCOL, e);
			assert_contains(e.msg, "truncated");
			assert_no_openssl_errors();
			srv_stop(s);
		}
	}
}

static void test_garbage_to_tls(void **state)
{
	static const char reply[] = "HTTP/1.1 400 Bad Request\r\n\r\nplain text here";
	struct httpc_response res;
	struct err e;
	struct srv *s = srv_start(NULL, SRV_BLURT, reply);
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/"));

	(void)state;
	/* A plain-text server behind an https:// URL. */
	memset(&e, 0, sizeof(e));
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "TLS handshake with localhost:");
	assert_no_openssl_errors();
	srv_stop(s);
}

/* Deadlines and unreachable servers */

static void test_timeout_silent_server(void **state)
{
	struct srv *s = srv_start(fx.server_ctx, SRV_SILENT, NULL);
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/"));
	struct httpc_response res;
	struct err e = { 0 };
	int64_t t0, elapsed;

	(void)state;
	req.timeout_ms = 300;
	t0 = now_ms();
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TIMEOUT, e);
	elapsed = now_ms() - t0;
	if (elapsed < 280 || elapsed > 2000)
		fail_msg("timed out after %lld ms, want about 300", (long long)elapsed);
	assert_contains(e.msg, "timed out after 300 ms while reading the response from localhost:");
	srv_stop(s);
}

static void test_timeout_handshake(void **state)
{
	struct httpc_request req;
	struct httpc_response res;
	struct err e = { 0 };
	char url[64];
	int64_t t0, elapsed;
	int port, fd = loopback_socket(&port, true);

	(void)state;
	/* The kernel completes the TCP handshake; nobody ever answers the ClientHello. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	req = get_of(url);
	req.timeout_ms = 250;
	t0 = now_ms();
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TIMEOUT, e);
	elapsed = now_ms() - t0;
	if (elapsed < 230 || elapsed > 2000)
		fail_msg("timed out after %lld ms, want about 250", (long long)elapsed);
	assert_contains(e.msg, "timed out after 250 ms during the TLS handshake with 127.0.0.1:");
	close(fd);
}

static void test_connection_refused(void **state)
{
	struct httpc_request req;
	struct httpc_response res;
	struct err e = { 0 };
	char url[64], want[64];
	int64_t t0;
	int port, fd = loopback_socket(&port, false);

	(void)state;
	close(fd);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/certify", port);
	req = get_of(url);
	t0 = now_ms();
	assert_code(httpc_do(&req, &res, &e), -ECONNREFUSED, e);
	assert_true(now_ms() - t0 < 1000);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: connection refused", port);
	assert_string_equal(e.msg, want);

	/* By name: the message adds the address. */
	snprintf(url, sizeof(url), "http://localhost:%d/", port);
	req = get_of(url);
	assert_code(httpc_do(&req, &res, &e), -ECONNREFUSED, e);
	snprintf(want, sizeof(want), "connect to localhost:%d (", port);
	assert_contains(e.msg, want);
	assert_contains(e.msg, "connection refused");
}

/* Trust */

static void test_wrong_trust(void **state)
{
	struct srv *s = srv_start(fx.server_ctx, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\n");
	struct err e = { 0 };
	struct httpc_tls *other =
	    httpc_tls_new(fx.other_pem, strlen(fx.other_pem), NULL, NULL, NULL, &e);
	struct httpc_tls *system = httpc_tls_new(NULL, 0, NULL, NULL, NULL, &e);
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/"));
	struct httpc_response res;

	(void)state;
	assert_non_null(other);
	assert_non_null(system);
	req.tls = other;
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "TLS handshake with localhost:");
	assert_contains(e.msg,
	                "certificate verify failed (unable to get local issuer certificate)");
	assert_no_openssl_errors();
	/* The system's store does not know the test root either. */
	req.tls = system;
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "verify");
	req.tls = NULL;
	assert_code(httpc_do(&req, &res, &e), -EINVAL, e);
	assert_int_equal(atomic_load(&s->connections), 2);
	httpc_tls_free(other);
	httpc_tls_free(system);
	httpc_tls_free(NULL);
	srv_stop(s);
}

static void test_name_mismatch(void **state)
{
	struct srv *s = srv_start(fx.server_ctx, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\n");
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/"));
	struct httpc_response res;
	struct err e = { 0 };

	(void)state;
	req.server_name = "other.example";
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "certificate verify failed (hostname mismatch)");
	/* The right name, given explicitly, for a URL whose host is an address. */
	req = get_of(url_of(s, "https", "127.0.0.1", "/"));
	req.server_name = "localhost";
	assert_code(httpc_do(&req, &res, &e), 0, e);
	httpc_response_free(&res);
	srv_stop(s);
}

static void test_ip_san(void **state)
{
	struct srv *s = srv_start(fx.server_ctx, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\nip");
	struct httpc_request req = get_of(url_of(s, "https", "127.0.0.1", "/"));
	struct httpc_response res;
	struct err e = { 0 };

	(void)state;
	/* The certificate has IP:127.0.0.1: the URL's address is checked against it. */
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_string_equal(res.body, "ip");
	httpc_response_free(&res);
	req.server_name = "127.0.0.2";
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "certificate verify failed (IP address mismatch)");
	/* An address is never matched against DNS names (the certificate has "localhost"). */
	req.server_name = "::1";
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "IP address mismatch");
	srv_stop(s);
}

static void test_trust_from_file(void **state)
{
	struct srv *s = srv_start(fx.server_ctx, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\nfile");
	struct err e = { 0 };
	const char *path = put("ca.pem", fx.root_pem, 0644);
	struct httpc_tls *t = httpc_tls_new(NULL, 0, path, NULL, NULL, &e);
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/"));
	struct httpc_response res;
	char *both;

	(void)state;
	assert_non_null(t);
	req.tls = t;
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_string_equal(res.body, "file");
	httpc_response_free(&res);
	httpc_tls_free(t);

	/* ca_pem wins over ca_file; a bundle of two roots trusts both. */
	assert_true(asprintf(&both, "%s%s", fx.other_pem, fx.root_pem) > 0);
	t = httpc_tls_new(both, strlen(both), put("other.pem", fx.other_pem, 0644), NULL, NULL, &e);
	assert_non_null(t);
	req.tls = t;
	assert_code(httpc_do(&req, &res, &e), 0, e);
	httpc_response_free(&res);
	httpc_tls_free(t);
	free(both);
	assert_no_openssl_errors();
	srv_stop(s);
}

static void test_tls_new_errors(void **state)
{
	char *client_pem = cert_text(fx.client), *key_pem = key_text(fx.client_key);
	char *other_key = key_text(fx.other_key);
	char cert[256], key[256], loose[256], wrong[256], missing[256];
	struct err e = { 0 };

	(void)state;
	snprintf(cert, sizeof(cert), "%s", put("client.pem", client_pem, 0644));
	snprintf(key, sizeof(key), "%s", put("client.key", key_pem, 0600));
	snprintf(loose, sizeof(loose), "%s", put("loose.key", key_pem, 0644));
	snprintf(wrong, sizeof(wrong), "%s", put("wrong.key", other_key, 0600));
	snprintf(missing, sizeof(missing), "%s", path_of("missing.pem"));
	assert_null(httpc_tls_new(NULL, 0, missing, NULL, NULL, &e));
	assert_code(e.code, -ENOENT, e);
	assert_contains(e.msg, missing);
	assert_null(httpc_tls_new("junk", 4, NULL, NULL, NULL, &e));
	assert_code(e.code, ERR_PEM_NO_CERT, e);
	assert_contains(e.msg, "trusted CA PEM");
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, cert, NULL, &e));
	assert_code(e.code, -EINVAL, e);
	assert_contains(e.msg, "only the certificate");
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, NULL, key, &e));
	assert_code(e.code, -EINVAL, e);
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, cert, loose, &e));
	assert_code(e.code, ERR_KEY_PERMISSIONS, e);
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, cert, wrong, &e));
	assert_code(e.code, ERR_X509_KEY_MISMATCH, e);
	assert_contains(e.msg, cert);
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, key, key, &e));
	assert_code(e.code, ERR_PEM_NO_CERT, e);
	assert_null(httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, cert,
	                          put("cert-as-key.pem", client_pem, 0600), &e));
	assert_code(e.code, ERR_PEM_NO_KEY, e);
	assert_no_openssl_errors();
	free(client_pem);
	free(key_pem);
	free(other_key);
}

static void test_client_cert(void **state)
{
	char *client_pem = cert_text(fx.client), *key_pem = key_text(fx.client_key);
	char *chain;
	struct srv *s = srv_start(fx.mtls_ctx, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\nmtls");
	struct err e = { 0 };
	struct httpc_tls *t;
	struct httpc_request req = get_of(url_of(s, "https", "localhost", "/v1/certify"));
	struct httpc_response res;

	(void)state;
	/* A chain file (leaf, then the root) and its key. */
	assert_true(asprintf(&chain, "%s%s", client_pem, fx.root_pem) > 0);
	t = httpc_tls_new(fx.root_pem, strlen(fx.root_pem), NULL, put("chain.pem", chain, 0644),
	                  put("client.key", key_pem, 0600), &e);
	if (t == NULL)
		fail_msg("httpc_tls_new: %s", e.msg);
	req.tls = t;
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_string_equal(res.body, "mtls");
	assert_string_equal(srv_done(s)->peer_cn, "meshlet-proxy");
	httpc_response_free(&res);

	/* Without one, the server refuses the handshake. */
	req.tls = fx.tls;
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_TLS, e);
	assert_contains(e.msg, "localhost:");
	assert_true(atomic_load(&srv_done(s)->handshake_failed));
	assert_no_openssl_errors();
	httpc_tls_free(t);
	free(chain);
	free(client_pem);
	free(key_pem);
	srv_stop(s);
}

/* Requests refused before connecting */

static void test_bad_requests(void **state)
{
	static const struct {
		const char *method, *name, *value, *says;
	} cases[] = {
		{ "GET", "X-Evil", "a\r\nInjected: yes", "X-Evil: the value contains CR, LF" },
		{ "GET", "X-Evil", "a\nb", "CR, LF" },
		{ "GET", "X-Evil", "a\rb", "CR, LF" },
		{ "GET", "X-Evil", "a\x01", "control character" },
		{ "GET", "X-Evil\r\nInjected", "y",
		  "bad header name \"X-Evil\\x0d\\x0aInjected\"" },
		{ "GET", "X Evil", "y", "bad header name" },
		{ "GET", "X-Evil:", "y", "bad header name" },
		{ "GET", "", "y", "bad header name" },
		{ "GET", "Host", "evil.example", "Host is set by the HTTP client" },
		{ "GET", "content-length", "5", "Content-Length is set" },
		{ "GET", "Transfer-Encoding", "chunked", "Transfer-Encoding is set" },
		{ "GET", "CONNECTION", "keep-alive", "Connection is set" },
		{ "GET /x HTTP/1.1\r\nA:", "X", "y", "bad method" },
		{ "", "X", "y", "bad method" },
		{ "G\x7fT", "X", "y", "bad method" },
	};
	struct srv *s = srv_start(NULL, SRV_REPLY, "HTTP/1.1 200 OK\r\n\r\n");
	struct httpc_request req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	struct httpc_header hdr;
	struct httpc_response res;
	struct err e;

	(void)state;
	req.headers = &hdr;
	req.nheaders = 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		req.method = cases[i].method;
		hdr = (struct httpc_header){ cases[i].name, cases[i].value };
		int rc = httpc_do(&req, &res, &e);
		if (rc != ERR_HTTPC_REQUEST || strstr(e.msg, cases[i].says) == NULL)
			fail_msg("case %zu: got %s \"%s\"; want ERR_HTTPC_REQUEST \"%s\"", i,
			         err_name(rc), e.msg, cases[i].says);
		/* A header's value may be a secret: it never appears in the message. */
		if (strlen(cases[i].value) > 2)
			assert_null(strstr(e.msg, cases[i].value));
	}
	/* Bad URLs, and plain http:// unless allowed. */
	req = get_of("https://host name/");
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_URL, e);
	assert_contains(e.msg, "URL \"https://host name/\"");
	req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	req.allow_plain = false;
	assert_code(httpc_do(&req, &res, &e), ERR_HTTPC_URL, e);
	assert_contains(e.msg, "plain http:// is refused");
	req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	req.timeout_ms = -1;
	assert_code(httpc_do(&req, &res, &e), -EINVAL, e);
	req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	req.nheaders = 1;
	assert_code(httpc_do(&req, &res, &e), -EINVAL, e);
	req.nheaders = 0;
	req.body_len = 3;
	assert_code(httpc_do(&req, &res, &e), -EINVAL, e);
	assert_code(httpc_do(NULL, &res, &e), -EINVAL, e);
	assert_code(httpc_do(&req, NULL, &e), -EINVAL, e);
	assert_int_equal(atomic_load(&s->connections), 0);

	/* Allowed, plain works. */
	req = get_of(url_of(s, "http", "127.0.0.1", "/"));
	assert_code(httpc_do(&req, &res, &e), 0, e);
	assert_int_equal(atomic_load(&s->connections), 1);
	httpc_response_free(&res);
	srv_stop(s);
}

/*
 * A server that hangs up right after the handshake. TLS 1.2 makes the timing certain: the
 * server speaks last, so its FIN arrives before the request; the writes then meet an RST
 * on a half-closed socket, which the kernel answers with EPIPE and SIGPIPE.
 */
static void test_sigpipe(void **state)
{
	size_t len = 4 * 1024 * 1024;
	char *body = malloc(len);
	SSL_CTX *tls12 = server_ctx(false);
	struct srv *s;
	struct httpc_request req;
	struct httpc_response res;
	struct err e = { 0 };
	sigset_t pending;
	int rc;

	(void)state;
	assert_non_null(body);
	memset(body, 'x', len);
	assert_true(SSL_CTX_set_max_proto_version(tls12, TLS1_2_VERSION));
	s = srv_start(tls12, SRV_HANGUP, NULL);
	/* Were SIGPIPE delivered, its default action would end this process. */
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 3; i++) {
		req = get_of(url_of(s, "https", "localhost", "/"));
		req.method = "POST";
		req.body = body;
		req.body_len = len;
		rc = httpc_do(&req, &res, &e);
		if (rc != ERR_HTTPC_CONNECT && rc != ERR_HTTPC_TLS)
			fail_msg("got %s: %s", err_name(rc), e.msg);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&pending);
	assert_int_equal(sigpending(&pending), 0);
	assert_false(sigismember(&pending, SIGPIPE));
	free(body);
	srv_stop(s);
	SSL_CTX_free(tls12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_post_json),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_read_until_close),
		cmocka_unit_test(test_interim_responses),
		cmocka_unit_test(test_error_statuses),
		cmocka_unit_test(test_head_request),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_protocol_limits),
		cmocka_unit_test(test_truncated_tls),
		cmocka_unit_test(test_garbage_to_tls),
		cmocka_unit_test(test_timeout_silent_server),
		cmocka_unit_test(test_timeout_handshake),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_wrong_trust),
		cmocka_unit_test(test_name_mismatch),
		cmocka_unit_test(test_ip_san),
		cmocka_unit_test(test_trust_from_file),
		cmocka_unit_test(test_tls_new_errors),
		cmocka_unit_test(test_client_cert),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_sigpipe),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
