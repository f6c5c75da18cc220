/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking HTTPS/1.1 client: one connection per request, one deadline, strict parsing. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "meshlet/httpc.h"
#include "meshlet/x509.h"

/* Interim (1xx) responses skipped before the final one; more is a misbehaving server. */
#define MAX_INTERIM 8
/* The longest chunk-size line (with extensions) we read. */
#define MAX_CHUNK_LINE 4096
/* read_line's result at the end of the stream. */
#define LINE_EOF 1

struct httpc_tls {
	SSL_CTX *ctx;
};

/* How one stage of the exchange is named in messages. */
struct phase {
	const char *during; /* "timed out after N ms <during> host:port" */
	const char *doing;  /* "<doing> host:port: connection reset by peer" */
};

static const struct phase RESOLVE = { "while resolving", "resolve" };
static const struct phase CONNECT = { "while connecting to", "connect to" };
static const struct phase HANDSHAKE = { "during the TLS handshake with", "TLS handshake with" };
static const struct phase SEND = { "while sending the request to", "send the request to" };
static const struct phase RECEIVE = { "while reading the response from", "read the response from" };

/* One connection and its deadline; the I/O functions fill e when they fail. */
struct conn {
	int fd;
	SSL *ssl;
	int64_t deadline; /* CLOCK_MONOTONIC, ms */
	int timeout_ms;
	const char *where; /* "host:port" for messages */
	const struct phase *phase;
	bool eof; /* the peer closed: FIN, or in TLS close_notify or FIN alone */
	struct err *e;
};

/* Buffered reading of the response: unread bytes are buf[start, end). */
struct reader {
	struct conn *c;
	char *buf;
	size_t cap, start, end;
	size_t got; /* bytes received in all */
};

/* The response body as it grows, limited to max bytes. */
struct body {
	char *p;
	size_t len, cap, max;
};

/* What a response head says. */
struct head {
	int status, minor;
	bool has_length, chunked;
	uint64_t length;
	int nheaders, ntransfer;
	char *content_type, *retry_after;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(int c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* The value of a hex digit, or -1. */
static int hex_value(int c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 9110's tchar: what header names and methods are made of. */
static bool is_tchar(int c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A header value or reason phrase byte: HTAB, SP, visible ASCII or obs-text. */
static bool is_field_char(int c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ip(const char *s)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* s (n bytes, from a peer or a caller) made printable for a message, cut at ~60 bytes. */
static const char *quote(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (o > 60) {
			o += (size_t)snprintf(out + o, size - o, "...");
			break;
		}
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", ch);
	}
	out[o < size ? o : size - 1] = '\0';
	return out;
}

/* strerror's words for -rc with a lowercase first letter, to sit after a colon. */
static const char *reason_of(int rc, char *buf, size_t size)
{
	snprintf(buf, size, "%s", err_str(rc));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

/* OpenSSL's reason for the last error in this thread's queue. */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "unknown TLS error";
}

/* URLs */

#define URL_BAD(reason)                                                                            \
	do {                                                                                       \
		*why = (reason);                                                                   \
		return ERR_HTTPC_URL;                                                              \
	} while (0)

static int parse_url(const char *url, char *host, size_t host_size, int *port, char *path,
                     size_t path_size, bool *tls, const char **why)
{
	const char *p, *end, *q;
	char h[HTTPC_HOST_MAX];
	size_t hlen, plen;
	bool secure, slash;
	long portv = 0;

	if (url == NULL ||
	    (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0))
		URL_BAD("it must start with https://");
	secure = url[4] == 's' || url[4] == 'S';
	p = url + (secure ? 8 : 7);
	for (q = p; *q != '\0'; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			URL_BAD("it contains a space, a control character or a non-ASCII byte "
			        "(percent-encode them)");
	if (strchr(p, '#') != NULL)
		URL_BAD("it has a fragment ('#')");
	end = p + strcspn(p, "/?");
	if (memchr(p, '@', (size_t)(end - p)) != NULL)
		URL_BAD("it has userinfo ('@'), which is not supported");
	if (*p == '[') {
		q = memchr(p, ']', (size_t)(end - p));
		hlen = q != NULL ? (size_t)(q - p - 1) : 0;
		if (hlen == 0 || hlen >= sizeof(h))
			URL_BAD("its IPv6 address is empty, too long or has no closing ']'");
		snprintf(h, sizeof(h), "%.*s", (int)hlen, p + 1);
		if (!is_ip(h) || strchr(h, ':') == NULL)
			URL_BAD("its host in brackets is not an IPv6 address");
		q++;
	} else {
		q = memchr(p, ':', (size_t)(end - p));
		q = q != NULL ? q : end;
		hlen = (size_t)(q - p);
		if (hlen == 0 || hlen > 253)
			URL_BAD("its host is empty or longer than 253 bytes");
		for (size_t i = 0; i < hlen; i++)
			if (!is_alnum(p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
				URL_BAD("its host has a character other than letters, digits, '-', "
				        "'.' and '_'");
		snprintf(h, sizeof(h), "%.*s", (int)hlen, p);
	}
	if (q < end) {
		if (*q != ':' || q + 1 == end)
			URL_BAD("its host is followed by junk or an empty port");
		for (q++; q < end; q++)
			if (!is_digit(*q) || (portv = portv * 10 + (*q - '0')) > 65535)
				URL_BAD("its port is not a number from 1 to 65535");
		if (portv == 0)
			URL_BAD("its port is not a number from 1 to 65535");
	}
	slash = *end != '/';
	plen = strlen(end) + slash;
	if (hlen >= host_size || plen >= path_size) {
		*why = "its host or path is too long";
		return ERR_TRUNCATED;
	}
	memcpy(host, h, hlen + 1);
	snprintf(path, path_size, "%s%s", slash ? "/" : "", end);
	*port = portv != 0 ? (int)portv : secure ? 443 : 80;
	*tls = secure;
	return 0;
}

int httpc_parse_url(const char *url, char *host, size_t host_size, int *port, char *path,
                    size_t path_size, bool *tls)
{
	const char *why;

	return parse_url(url, host, host_size, port, path, path_size, tls, &why);
}

/* TLS configuration */

/* Loads the client certificate chain and key into ctx; fills e on failure. */
static int use_client_cert(SSL_CTX *ctx, const char *cert_file, const char *key_file, struct err *e)
{
	STACK_OF(X509) *chain = x509_read_chain(cert_file, e);
	EVP_PKEY *key = NULL;
	int rc = 0;

	if (chain == NULL)
		return e->code;
	key = x509_read_key(key_file, e);
	if (key == NULL) {
		rc = e->code;
	} else if (x509_check_key(sk_X509_value(chain, 0), key) != 0) {
		rc = err_set(e, ERR_X509_KEY_MISMATCH,
		             "%s: the client certificate does not match the private key in %s",
		             cert_file, key_file);
	} else if (!SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) ||
	           !SSL_CTX_use_PrivateKey(ctx, key)) {
		rc = err_set(e, ERR_HTTPC_TLS, "%s: OpenSSL refuses the client certificate: %s",
		             cert_file, ossl_reason());
	}
	for (int i = 1; rc == 0 && i < sk_X509_num(chain); i++)
		if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)))
			rc = err_set(e, ERR_HTTPC_TLS, "%s: OpenSSL refuses certificate %d: %s",
			             cert_file, i + 1, ossl_reason());
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

struct httpc_tls *httpc_tls_new(const char *ca_pem, size_t ca_len, const char *ca_file,
                                const char *cert_file, const char *key_file, struct err *e)
{
	const char *what = ca_pem != NULL ? "trusted CA PEM" : ca_file;
	struct httpc_tls *t = NULL;
	STACK_OF(X509) *roots = NULL;
	SSL_CTX *ctx = NULL;
	struct err local;

	if (e == NULL)
		e = &local;
	if ((cert_file == NULL) != (key_file == NULL)) {
		err_set(e, -EINVAL,
		        "a client certificate needs both a certificate file and a key file; "
		        "only the %s was given",
		        cert_file != NULL ? "certificate" : "key");
		return NULL;
	}
	ERR_set_mark();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		err_set(e, ERR_HTTPC_TLS, "cannot create a TLS context: %s", ossl_reason());
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (what != NULL) {
		roots = ca_pem != NULL ? x509_parse_chain(ca_pem, ca_len, what, e)
		                       : x509_read_chain(ca_file, e);
		if (roots == NULL)
			goto out;
		for (int i = 0; i < sk_X509_num(roots); i++) {
			if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx),
			                         sk_X509_value(roots, i))) {
				err_set(e, ERR_HTTPC_TLS, "%s: cannot trust certificate %d: %s",
				        what, i + 1, ossl_reason());
				goto out;
			}
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		err_set(e, ERR_HTTPC_TLS, "cannot load the system's trusted CAs: %s",
		        ossl_reason());
		goto out;
	}
	if (cert_file != NULL && use_client_cert(ctx, cert_file, key_file, e) != 0)
		goto out;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	t->ctx = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	sk_X509_pop_free(roots, X509_free);
	ERR_pop_to_mark();
	return t;
}

void httpc_tls_free(struct httpc_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* SIGPIPE: a TLS write to a closed socket raises it, and OpenSSL offers no MSG_NOSIGNAL. */

struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
	sigemptyset(&pending);
	g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	/* A SIGPIPE pending now that was not before is ours: take it before unblocking. */
	if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1)
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Connection I/O under the deadline */

enum io { IO_HANDSHAKE, IO_WRITE, IO_READ };

static int timed_out(struct conn *c)
{
	return err_set(c->e, ERR_HTTPC_TIMEOUT, "timed out after %d ms %s %s", c->timeout_ms,
	               c->phase->during, c->where);
}

static int sys_error(struct conn *c, int rc)
{
	char buf[128];

	if (rc == -ECONNREFUSED && c->phase == &CONNECT)
		return err_set(c->e, rc, "%s %s: connection refused", c->phase->doing, c->where);
	return err_set(c->e, ERR_HTTPC_CONNECT, "%s %s: %s", c->phase->doing, c->where,
	               reason_of(rc, buf, sizeof(buf)));
}

/* Polls fd for events until the time until: 0 when ready, -ETIMEDOUT, or -errno. */
static int poll_until(int fd, short events, int64_t until)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		left = until - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int wait_fd(struct conn *c, short events)
{
	int rc = poll_until(c->fd, events, c->deadline);

	return rc == -ETIMEDOUT ? timed_out(c) : rc < 0 ? sys_error(c, rc) : 0;
}

/* Is this SSL failure the peer closing the TCP connection without a close_notify? */
static bool unexpected_eof(int err, int saved_errno)
{
	if (err == SSL_ERROR_SSL)
		return ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
	return err == SSL_ERROR_SYSCALL && saved_errno == 0 && ERR_peek_error() == 0;
}

/* After a failed SSL call: wait when OpenSSL asks to (returns 0), else fill e. */
static int tls_step(struct conn *c, int err, int saved_errno)
{
	long verify = SSL_get_verify_result(c->ssl);

	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return wait_fd(c, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
	if (err == SSL_ERROR_SYSCALL && saved_errno != 0)
		return sys_error(c, -saved_errno);
	if (unexpected_eof(err, saved_errno) || err == SSL_ERROR_ZERO_RETURN)
		return err_set(c->e, ERR_HTTPC_TLS, "%s %s: the server closed the connection",
		               c->phase->doing, c->where);
	if (c->phase == &HANDSHAKE && verify != X509_V_OK)
		return err_set(c->e, ERR_HTTPC_TLS, "%s %s: certificate verify failed (%s)",
		               c->phase->doing, c->where, X509_verify_cert_error_string(verify));
	return err_set(c->e, ERR_HTTPC_TLS, "%s %s: %s", c->phase->doing, c->where, ossl_reason());
}

/*
 * One TLS handshake, or one write or read of up to len bytes (*n says how many moved; a
 * read of 0 means the end of the stream, with c->eof set), waiting under the deadline.
 */
static int conn_io(struct conn *c, enum io op, char *buf, size_t len, size_t *n)
{
	int ret, err, saved, rc;
	ssize_t r;

	for (*n = 0;;) {
		if (c->ssl == NULL) {
			r = op == IO_WRITE ? send(c->fd, buf, len, MSG_NOSIGNAL)
			                   : recv(c->fd, buf, len, 0);
			if (r >= 0) {
				*n = (size_t)r;
				if (op == IO_READ && r == 0)
					c->eof = true;
				return 0;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return sys_error(c, -errno);
			rc = wait_fd(c, op == IO_WRITE ? POLLOUT : POLLIN);
		} else {
			ERR_clear_error();
			errno = 0;
			/* A retry repeats the same buffer and length, as OpenSSL requires. */
			if (op == IO_HANDSHAKE)
				ret = SSL_connect(c->ssl);
			else if (op == IO_WRITE)
				ret = SSL_write_ex(c->ssl, buf, len, n);
			else
				ret = SSL_read_ex(c->ssl, buf, len, n);
			if (ret == 1)
				return 0;
			saved = errno;
			err = SSL_get_error(c->ssl, ret);
			if (op == IO_READ &&
			    (err == SSL_ERROR_ZERO_RETURN || unexpected_eof(err, saved))) {
				/* Whether an unclean end is acceptable is up to the framing. */
				c->eof = true;
				ERR_clear_error();
				return 0;
			}
			rc = tls_step(c, err, saved);
		}
		if (rc < 0)
			return rc;
	}
}

static int conn_write(struct conn *c, char *buf, size_t len)
{
	size_t n;
	int rc;

	for (; len > 0; buf += n, len -= n)
		if ((rc = conn_io(c, IO_WRITE, buf, len, &n)) < 0)
			return rc;
	return 0;
}

/* Tries one address until the time until; returns 0 with c->fd set, or -errno. */
static int connect_one(struct conn *c, const struct addrinfo *ai, int64_t until)
{
	int fd, rc = 0, soerr = 0, one = 1;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = errno == EINPROGRESS ? poll_until(fd, POLLOUT, until) : -errno;
		if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			rc = -errno;
		else if (rc == 0 && soerr != 0)
			rc = -soerr;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	/* The request goes out in one piece; do not hold its tail back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	return 0;
}

/* Resolves host and connects to its addresses in turn, sharing out the time left. */
static int conn_open(struct conn *c, const char *host, int port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *list = NULL, *ai;
	char portstr[8], addr[INET6_ADDRSTRLEN], target[HTTPC_HOST_MAX + 80], buf[128];
	const char *where;
	int r, rc = -EHOSTUNREACH, n = 0;
	bool numeric = is_ip(host);

	c->phase = &RESOLVE;
	hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%d", port);
	r = getaddrinfo(host, portstr, &hints, &list);
	if (r != 0) {
		rc = r == EAI_SYSTEM ? -errno : 0;
		return err_set(c->e, ERR_HTTPC_CONNECT, "resolve %s: %s", host,
		               rc != 0 ? reason_of(rc, buf, sizeof(buf)) : gai_strerror(r));
	}
	if (now_ms() >= c->deadline) {
		rc = timed_out(c);
		goto out;
	}
	c->phase = &CONNECT;
	for (ai = list; ai != NULL; ai = ai->ai_next)
		n++;
	snprintf(target, sizeof(target), "%s", c->where);
	for (ai = list; ai != NULL; ai = ai->ai_next, n--) {
		int64_t now = now_ms();

		if (now >= c->deadline)
			break;
		rc = connect_one(c, ai, now + (c->deadline - now) / n);
		if (rc == 0)
			goto out;
		if (!numeric && getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL,
		                            0, NI_NUMERICHOST) == 0)
			snprintf(target, sizeof(target), "%s (%s)", c->where, addr);
	}
	if (rc == -ETIMEDOUT || now_ms() >= c->deadline) {
		rc = timed_out(c);
	} else {
		where = c->where;
		c->where = target;
		rc = sys_error(c, rc);
		c->where = where;
	}
out:
	freeaddrinfo(list);
	return rc;
}

/* Starts TLS on the connected socket, verifying the server's name or address. */
static int conn_tls(struct conn *c, const struct httpc_request *req, const char *host)
{
	char name[HTTPC_HOST_MAX];
	const char *want = req->server_name != NULL ? req->server_name : host;
	size_t n;

	c->phase = &HANDSHAKE;
	if (*want == '\0' || strlen(want) >= sizeof(name))
		return err_set(c->e, -EINVAL, "server_name is empty or too long");
	snprintf(name, sizeof(name), "%s", want);
	c->ssl = SSL_new(req->tls->ctx);
	if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd))
		return err_set(c->e, ERR_HTTPC_TLS, "TLS setup for %s: %s", c->where,
		               ossl_reason());
	if (is_ip(name)) {
		/* An address is matched against IP SANs only, and never sent as SNI. */
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name))
			return err_set(c->e, ERR_HTTPC_TLS, "TLS setup for %s: bad address %s",
			               c->where, name);
	} else {
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (!SSL_set1_host(c->ssl, name) || !SSL_set_tlsext_host_name(c->ssl, name))
			return err_set(c->e, ERR_HTTPC_TLS, "TLS setup for %s: bad server name %s",
			               c->where, name);
	}
	return conn_io(c, IO_HANDSHAKE, NULL, 0, &n);
}

/* The request */

/* A method or header name: one or more tchars. */
static bool is_token(const char *s, size_t max)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (!is_tchar(s[i]))
			return false;
	return n > 0 && n <= max;
}

static int check_request(const struct httpc_request *req, struct err *e)
{
	static const char *const ours[] = { "Host", "Content-Length", "Transfer-Encoding",
		                            "Connection" };
	const struct httpc_header *h;
	char q[128];

	if (!is_token(req->method, 32))
		return err_set(e, ERR_HTTPC_REQUEST, "bad method \"%s\"",
		               quote(req->method, strlen(req->method), q, sizeof(q)));
	if ((req->nheaders > 0 && req->headers == NULL) || (req->body_len > 0 && req->body == NULL))
		return err_set(e, -EINVAL,
		               "httpc_do: headers or body is NULL but its length is not 0");
	for (size_t i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if (h->name == NULL || h->value == NULL)
			return err_set(e, ERR_HTTPC_REQUEST, "header %zu has no name or no value",
			               i + 1);
		if (!is_token(h->name, 256))
			return err_set(e, ERR_HTTPC_REQUEST, "bad header name \"%s\"",
			               quote(h->name, strlen(h->name), q, sizeof(q)));
		for (size_t j = 0; j < sizeof(ours) / sizeof(ours[0]); j++)
			if (strcasecmp(h->name, ours[j]) == 0)
				return err_set(e, ERR_HTTPC_REQUEST,
				               "header %s is set by the HTTP client itself",
				               ours[j]);
		/* The value may be a secret (a bearer token): name it, never print it. */
		for (const char *v = h->value; *v != '\0'; v++)
			if (!is_field_char((unsigned char)*v))
				return err_set(e, ERR_HTTPC_REQUEST,
				               "header %s: the value contains CR, LF or another "
				               "control character",
				               h->name);
	}
	return 0;
}

/* The request's bytes: head, then body; malloc'd into *out. */
static int build_request(const struct httpc_request *req, const char *host, int port, bool tls,
                         const char *path, char **out, size_t *len, struct err *e)
{
	size_t size = strlen(req->method) + strlen(path) + strlen(host) + 128 + req->body_len;
	bool v6 = strchr(host, ':') != NULL, length;
	char *buf;
	size_t o;

	for (size_t i = 0; i < req->nheaders; i++)
		size += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 4;
	buf = malloc(size);
	if (buf == NULL)
		return err_set(e, -ENOMEM, "out of memory for a request of %zu bytes", size);
	o = (size_t)snprintf(buf, size, "%s %s HTTP/1.1\r\nHost: %s%s%s", req->method, path,
	                     v6 ? "[" : "", host, v6 ? "]" : "");
	if (port != (tls ? 443 : 80))
		o += (size_t)snprintf(buf + o, size - o, ":%d", port);
	o += (size_t)snprintf(buf + o, size - o, "\r\n");
	for (size_t i = 0; i < req->nheaders; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s: %s\r\n", req->headers[i].name,
		                      req->headers[i].value);
	/* A body, or a method that defines one, gets a length, so the server need not guess. */
	length = req->body != NULL || strcmp(req->method, "POST") == 0 ||
	         strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
	if (length)
		o += (size_t)snprintf(buf + o, size - o, "Content-Length: %zu\r\n", req->body_len);
	o += (size_t)snprintf(buf + o, size - o, "Connection: close\r\n\r\n");
	if (req->body_len > 0)
		memcpy(buf + o, req->body, req->body_len);
	*out = buf;
	*len = o + req->body_len;
	return 0;
}

/* The response */

/* What a part of the response head may still use, and how it is named in messages. */
struct budget {
	size_t left, limit;
	const char *what;
};

/* Fills e with ERR_HTTPC_PROTOCOL: what is wrong, from where, and the offending text s. */
__attribute__((format(printf, 4, 5))) static int protocol_error(struct reader *r, const char *s,
                                                                size_t n, const char *fmt, ...)
{
	char what[128], q[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (s == NULL)
		return err_set(r->c->e, ERR_HTTPC_PROTOCOL, "%s from %s", what, r->c->where);
	return err_set(r->c->e, ERR_HTTPC_PROTOCOL, "%s from %s: \"%s\"", what, r->c->where,
	               quote(s, n, q, sizeof(q)));
}

/* Reads more bytes into the buffer, moving the unread ones to its start first. */
static int fill(struct reader *r)
{
	size_t n;
	int rc;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	rc = conn_io(r->c, IO_READ, r->buf + r->end, r->cap - r->end, &n);
	r->end += n;
	r->got += n;
	return rc;
}

/*
 * The next line, without its CRLF, valid until the next read; each line uses up its length
 * of the budget. Returns 0, LINE_EOF when the stream ends first, or an error.
 */
static int read_line(struct reader *r, const char **line, size_t *len, struct budget *b)
{
	char *p, *nl;
	size_t n;
	int rc;

	for (;;) {
		p = r->buf + r->start;
		nl = memchr(p, '\n', r->end - r->start);
		n = nl != NULL ? (size_t)(nl - p) + 1 : r->end - r->start;
		if (n > b->left || (nl == NULL && n == b->left))
			return protocol_error(r, NULL, 0, "%s larger than %zu bytes", b->what,
			                      b->limit);
		if (nl != NULL)
			break;
		if ((rc = fill(r)) < 0)
			return rc;
		if (r->c->eof)
			return LINE_EOF;
	}
	b->left -= n;
	r->start += n;
	if (n < 2 || p[n - 2] != '\r')
		return protocol_error(r, p, n - 1, "line not ended by CRLF");
	if (memchr(p, '\r', n - 2) != NULL)
		return protocol_error(r, p, n - 2, "bare CR in a line");
	*line = p;
	*len = n - 2;
	return 0;
}

/* Makes room for n more bytes of body (and the NUL), within the limit. */
static int body_reserve(struct reader *r, struct body *b, uint64_t n)
{
	size_t cap = b->cap > 0 ? b->cap : 4096;
	char *p;

	if (n > b->max - b->len)
		return err_set(r->c->e, ERR_HTTPC_TOO_LARGE,
		               "the response body from %s is larger than the limit of %zu bytes",
		               r->c->where, b->max);
	if (b->len + n + 1 <= b->cap)
		return 0;
	while (cap < b->len + n + 1)
		cap = cap > b->max / 2 ? b->max + 1 : cap * 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return err_set(r->c->e, -ENOMEM, "out of memory for a body of %zu bytes", cap);
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends exactly n more bytes of body to b; the stream ending first is a truncated body. */
static int read_exact(struct reader *r, struct body *b, uint64_t n)
{
	int rc = body_reserve(r, b, n);
	size_t take;

	while (rc == 0 && n > 0) {
		if (r->start == r->end && (rc = fill(r)) < 0)
			return rc;
		if (r->start == r->end)
			return protocol_error(
			    r, NULL, 0, "truncated body (the connection closed %llu bytes short)",
			    (unsigned long long)n);
		take = r->end - r->start < n ? r->end - r->start : (size_t)n;
		memcpy(b->p + b->len, r->buf + r->start, take);
		b->len += take;
		r->start += take;
		n -= take;
	}
	return rc;
}

/* The CRLF after a chunk's data. */
static int read_crlf(struct reader *r)
{
	int rc;

	while (r->end - r->start < 2) {
		if ((rc = fill(r)) < 0)
			return rc;
		if (r->c->eof)
			return protocol_error(r, NULL, 0, "truncated chunked body");
	}
	if (memcmp(r->buf + r->start, "\r\n", 2) != 0)
		return protocol_error(r, r->buf + r->start, r->end - r->start,
		                      "chunk data not followed by CRLF");
	r->start += 2;
	return 0;
}

static int read_chunked(struct reader *r, struct body *b)
{
	struct budget lb, tb = { HTTPC_MAX_HEAD, HTTPC_MAX_HEAD, "trailer section" };
	uint64_t size;
	const char *line;
	size_t len, i;
	int rc, d;

	for (;;) {
		lb = (struct budget){ MAX_CHUNK_LINE, MAX_CHUNK_LINE, "chunk-size line" };
		rc = read_line(r, &line, &len, &lb);
		if (rc == LINE_EOF)
			return protocol_error(r, NULL, 0, "truncated chunked body");
		if (rc < 0)
			return rc;
		for (i = 0, size = 0; i < len && (d = hex_value(line[i])) >= 0; i++) {
			if (size > UINT64_MAX >> 4)
				return protocol_error(r, line, len, "overflowing chunk size");
			size = size << 4 | (uint64_t)d;
		}
		while (i > 0 && i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		/* Chunk extensions (";name=value") are allowed and ignored. */
		if (i == 0 || (i < len && line[i] != ';'))
			return protocol_error(r, line, len, "malformed chunk size");
		if (size == 0)
			break;
		if ((rc = read_exact(r, b, size)) < 0 || (rc = read_crlf(r)) < 0)
			return rc;
	}
	/* Trailers are read and dropped: they may not change the framing anyway. */
	do {
		rc = read_line(r, &line, &len, &tb);
		if (rc == LINE_EOF)
			return protocol_error(r, NULL, 0,
			                      "truncated chunked body (in its trailers)");
		if (rc < 0)
			return rc;
	} while (len > 0);
	return 0;
}

static int read_until_close(struct reader *r, struct body *b)
{
	size_t n;
	int rc;

	for (;;) {
		n = r->end - r->start;
		if ((rc = body_reserve(r, b, n)) < 0)
			return rc;
		memcpy(b->p + b->len, r->buf + r->start, n);
		b->len += n;
		r->start = r->end = 0;
		if (r->c->eof)
			return 0;
		if ((rc = fill(r)) < 0)
			return rc;
	}
}

static int parse_status(struct reader *r, struct head *h, const char *s, size_t n)
{
	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
	    !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
		return protocol_error(r, s, n, "malformed status line");
	for (size_t i = 13; i < n; i++)
		if (!is_field_char((unsigned char)s[i]))
			return protocol_error(r, s, n, "control character in the status line");
	h->minor = s[7] - '0';
	h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (h->status < 100 || h->status > 599)
		return protocol_error(r, s, n, "status code out of range");
	return 0;
}

static bool name_is(const char *s, const char *colon, const char *name)
{
	return (size_t)(colon - s) == strlen(name) && strncasecmp(s, name, strlen(name)) == 0;
}

static int parse_header(struct reader *r, struct head *h, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n), *v;
	uint64_t length = 0;
	char **slot = NULL;
	size_t vn;

	if (s[0] == ' ' || s[0] == '\t')
		return protocol_error(r, s, n, "folded header line (obs-fold)");
	if (++h->nheaders > HTTPC_MAX_HEADERS)
		return protocol_error(r, NULL, 0, "more than %d header lines", HTTPC_MAX_HEADERS);
	if (colon == NULL || colon == s)
		return protocol_error(r, s, n, "header line without a name and ':'");
	for (const char *p = s; p < colon; p++)
		if (!is_tchar(*p))
			return protocol_error(r, s, n, "malformed header name");
	for (v = colon + 1; v < s + n && (*v == ' ' || *v == '\t'); v++)
		;
	for (vn = (size_t)(s + n - v); vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'); vn--)
		;
	for (size_t i = 0; i < vn; i++)
		if (!is_field_char((unsigned char)v[i]))
			return protocol_error(r, s, n, "control character in a header value");
	if (name_is(s, colon, "Content-Length")) {
		for (size_t i = 0; i < vn; i++) {
			if (!is_digit(v[i]) || vn > 18)
				return protocol_error(r, s, n, "bad Content-Length");
			length = length * 10 + (uint64_t)(v[i] - '0');
		}
		if (vn == 0)
			return protocol_error(r, s, n, "bad Content-Length");
		if (h->has_length && length != h->length)
			return protocol_error(r, s, n, "two different Content-Length values");
		h->has_length = true;
		h->length = length;
	} else if (name_is(s, colon, "Transfer-Encoding")) {
		if (vn != 7 || strncasecmp(v, "chunked", 7) != 0 || ++h->ntransfer > 1)
			return protocol_error(r, s, n,
			                      "unsupported Transfer-Encoding (only one "
			                      "\"chunked\" is accepted)");
		h->chunked = true;
	} else if (name_is(s, colon, "Content-Type")) {
		slot = &h->content_type;
	} else if (name_is(s, colon, "Retry-After")) {
		slot = &h->retry_after;
	}
	/* The first of a repeated header wins. */
	if (slot != NULL && *slot == NULL && (*slot = strndup(v, vn)) == NULL)
		return err_set(r->c->e, -ENOMEM, "out of memory");
	return 0;
}

static void head_clear(struct head *h)
{
	free(h->content_type);
	free(h->retry_after);
	memset(h, 0, sizeof(*h));
}

/* Reads one response head into h (which the caller cleared). */
static int read_head(struct reader *r, struct head *h)
{
	struct budget b = { HTTPC_MAX_HEAD, HTTPC_MAX_HEAD, "response head" };
	size_t len, before = r->got - (r->end - r->start);
	const char *line;
	int rc;

	rc = read_line(r, &line, &len, &b);
	if (rc == 0)
		rc = parse_status(r, h, line, len);
	while (rc == 0 && (rc = read_line(r, &line, &len, &b)) == 0 && len > 0)
		rc = parse_header(r, h, line, len);
	if (rc == LINE_EOF && r->got == before)
		return protocol_error(r, NULL, 0, "no response (the connection closed)");
	if (rc == LINE_EOF)
		return protocol_error(r, NULL, 0,
		                      "truncated response head (the connection closed)");
	if (rc < 0)
		return rc;
	if (h->chunked && h->has_length)
		return protocol_error(r, NULL, 0, "both Content-Length and Transfer-Encoding");
	if (h->chunked && h->minor == 0)
		return protocol_error(r, NULL, 0, "Transfer-Encoding in an HTTP/1.0 response");
	if (h->status == 101)
		return protocol_error(r, NULL, 0, "unrequested protocol switch (101)");
	return 0;
}

static int read_response(struct conn *c, const struct httpc_request *req, size_t max,
                         struct httpc_response *res)
{
	struct reader r = { .c = c, .cap = HTTPC_MAX_HEAD };
	struct body b = { .max = max < SIZE_MAX / 2 ? max : SIZE_MAX / 2 };
	struct head h = { 0 };
	int rc, interim = 0;

	r.buf = malloc(r.cap);
	if (r.buf == NULL)
		return err_set(c->e, -ENOMEM, "out of memory");
	do {
		head_clear(&h);
		if ((rc = read_head(&r, &h)) < 0)
			goto out;
	} while (h.status < 200 && ++interim <= MAX_INTERIM);
	if (h.status < 200) {
		rc = protocol_error(&r, NULL, 0, "too many interim (1xx) responses");
		goto out;
	}
	if ((rc = body_reserve(&r, &b, 0)) < 0)
		goto out;
	if (strcmp(req->method, "HEAD") == 0 || h.status == 204 || h.status == 304)
		rc = 0;
	else if (h.chunked)
		rc = read_chunked(&r, &b);
	else if (h.has_length)
		rc = read_exact(&r, &b, h.length);
	else
		rc = read_until_close(&r, &b);
	if (rc < 0)
		goto out;
	b.p[b.len] = '\0';
	res->status = h.status;
	res->content_type = h.content_type;
	res->retry_after = h.retry_after;
	res->body = b.p;
	res->body_len = b.len;
	h.content_type = h.retry_after = NULL;
	b.p = NULL;
out:
	head_clear(&h);
	free(b.p);
	free(r.buf);
	return rc;
}

int httpc_do(const struct httpc_request *req, struct httpc_response *res, struct err *e)
{
	char host[HTTPC_HOST_MAX], path[HTTPC_PATH_MAX], where[HTTPC_HOST_MAX + 16], q[160];
	struct conn c = { .fd = -1, .e = e };
	struct sigpipe_guard guard;
	char *request = NULL;
	size_t request_len = 0;
	const char *why = "";
	bool tls;
	int port, rc;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (req == NULL || res == NULL || req->url == NULL || req->method == NULL)
		return err_set(e, -EINVAL, "httpc_do: no request, response, URL or method");
	if (req->timeout_ms < 0)
		return err_set(e, -EINVAL, "httpc_do: negative timeout %d ms", req->timeout_ms);
	rc = parse_url(req->url, host, sizeof(host), &port, path, sizeof(path), &tls, &why);
	if (rc < 0)
		return err_set(e, ERR_HTTPC_URL, "URL \"%s\": %s",
		               quote(req->url, strlen(req->url), q, sizeof(q)), why);
	if (!tls && !req->allow_plain)
		return err_set(e, ERR_HTTPC_URL,
		               "URL \"%s\": plain http:// is refused; use https://",
		               quote(req->url, strlen(req->url), q, sizeof(q)));
	if (tls && req->tls == NULL)
		return err_set(e, -EINVAL,
		               "httpc_do: an https:// request needs a TLS configuration");
	rc = check_request(req, e);
	if (rc == 0)
		rc = build_request(req, host, port, tls, path, &request, &request_len, e);
	if (rc < 0)
		return rc;
	snprintf(where, sizeof(where), strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
	c.where = where;
	c.timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	c.deadline = now_ms() + c.timeout_ms;

	sigpipe_block(&guard);
	ERR_clear_error();
	rc = conn_open(&c, host, port);
	if (rc == 0 && tls)
		rc = conn_tls(&c, req, host);
	if (rc == 0) {
		c.phase = &SEND;
		rc = conn_write(&c, request, request_len);
	}
	if (rc == 0) {
		c.phase = &RECEIVE;
		rc = read_response(
		    &c, req, req->max_response > 0 ? req->max_response : HTTPC_DEFAULT_MAX_RESPONSE,
		    res);
	}
	/* Say goodbye politely, without waiting for the answer. */
	if (rc == 0 && c.ssl != NULL && !c.eof)
		SSL_shutdown(c.ssl);
	SSL_free(c.ssl);
	if (c.fd >= 0)
		close(c.fd);
	ERR_clear_error();
	sigpipe_unblock(&guard);
	/* The request may carry a bearer token or a token under review. */
	if (request != NULL)
		OPENSSL_cleanse(request, request_len);
	free(request);
	if (rc < 0)
		httpc_response_free(res);
	return rc;
}

void httpc_response_free(struct httpc_response *res)
{
	if (res == NULL)
		return;
	free(res->content_type);
	free(res->body);
	free(res->retry_after);
	memset(res, 0, sizeof(*res));
}
