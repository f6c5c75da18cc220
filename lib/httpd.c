/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd glue: TLS from files with live reload, whole-body requests, one handler. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "meshlet/httpd.h"
#include "meshlet/log.h"
#include "meshlet/metrics.h"
#include "meshlet/time.h"
#include "meshlet/x509.h"

/* GnuTLS priorities: TLS 1.2 and 1.3 only. */
#define HTTPD_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* A replaced daemon is stopped once idle, or after this many seconds at the latest. */
#define HTTPD_DRAIN_SECONDS 60
#define HTTPD_MAX_DRAINING  8
/* An oversize body is read and dropped up to this much, so its client sees the 413. */
#define HTTPD_DISCARD_MAX (8 * 1024 * 1024)
/* Between requests, the deadline trails libmicrohttpd's idle timeout by this much. */
#define HTTPD_KEEPALIVE_GRACE_MS 2000
/* Connections cut for being late are logged one by one up to this many a second. */
#define HTTPD_CUT_LOG_MAX 32

/* The identity of a file as it is now, to notice when it is replaced. */
struct httpd_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct httpd_daemon {
	struct MHD_Daemon *mhd;
	char *cert_pem;
	char *key_pem;
	time_t retired; /* when it stopped accepting; 0 while current */
};

/*
 * A connection from accept to close, with the time by which the request it is receiving
 * must be in. libmicrohttpd's own timeout restarts with every byte, so a client sending
 * its TLS handshake or request a byte at a time would hold its connection for ever; the
 * watcher shuts down a connection that passes this deadline.
 */
struct httpd_conn {
	struct httpd_conn *prev, *next;
	int fd;
	_Atomic int64_t deadline; /* time_mono_ms(); 0 while a request is being answered */
	bool cut;                 /* shut down for being late */
	char client[64];
};

struct httpd {
	struct httpd_options o;
	int fd;
	int port;
	struct httpd_daemon current;
	struct httpd_daemon draining[HTTPD_MAX_DRAINING];
	struct httpd_stamp cert_stamp, key_stamp;
	_Atomic uint64_t reloads;
	pthread_t watcher;
	bool watching;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	pthread_mutex_t conns_lock; /* guards the list of connections, not their deadlines */
	struct httpd_conn *conns;
};

/* Per-request state, kept by libmicrohttpd between calls for one request. */
struct httpd_call {
	char *body;
	size_t len;
	size_t seen;    /* body bytes received, kept or not */
	bool too_large; /* the body passed max_body */
	bool answered;
	int corked; /* the socket held with TCP_CORK until the response is out, or -1 */
};

static void httpd_stamp_of(const char *path, struct httpd_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->size = st.st_size;
		s->mtime = st.st_mtim;
	}
}

static bool httpd_stamp_equal(const struct httpd_stamp *a, const struct httpd_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Reads and checks the certificate and key, into PEM text for GnuTLS. */
static int httpd_load_pair(const struct httpd_options *o, char **cert_pem, char **key_pem,
                           struct err *e)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	char *certs = NULL;
	size_t len = 0;
	int rc = 0;

	*cert_pem = NULL;
	*key_pem = NULL;
	chain = x509_read_chain(o->cert_file, e);
	if (chain == NULL)
		return e != NULL ? e->code : ERR_PEM_NO_CERT;
	key = x509_read_key(o->key_file, e);
	if (key == NULL) {
		rc = e != NULL ? e->code : ERR_PEM_NO_KEY;
		goto out;
	}
	rc = x509_check_key(sk_X509_value(chain, 0), key);
	if (rc < 0) {
		err_set(e, rc, "%s: the key does not belong to the certificate in %s", o->key_file,
		        o->cert_file);
		goto out;
	}
	for (int i = 0; i < sk_X509_num(chain); i++) {
		char *pem = x509_cert_pem(sk_X509_value(chain, i));
		char *grown;

		if (pem == NULL || (grown = realloc(certs, len + strlen(pem) + 1)) == NULL) {
			free(pem);
			rc = err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
		certs = grown;
		memcpy(certs + len, pem, strlen(pem) + 1);
		len += strlen(pem);
		free(pem);
	}
	*key_pem = x509_key_pem(key);
	if (*key_pem == NULL) {
		rc = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	*cert_pem = certs;
	certs = NULL;
out:
	free(certs);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static void httpd_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
	const struct httpd *h = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("http server", LOG_STR("server", h->o.name), LOG_STR("detail", msg));
}

static void httpd_client(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[INET6_ADDRSTRLEN], serv[8];
	socklen_t len;

	snprintf(buf, size, "unknown");
	if (ci == NULL || ci->client_addr == NULL)
		return;
	len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                             : sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	if (ci->client_addr->sa_family == AF_INET6)
		snprintf(buf, size, "[%.46s]:%.7s", host, serv);
	else
		snprintf(buf, size, "%.46s:%.7s", host, serv);
}

/*
 * The deadline of a request starting now, extra ms later; 0 (none) when the timeout is 0,
 * as for libmicrohttpd.
 */
static int64_t httpd_deadline(const struct httpd *h, int64_t extra)
{
	return h->o.timeout > 0 ? time_mono_ms() + (int64_t)h->o.timeout * 1000 + extra : 0;
}

/* Sets the deadline of the request that conn is receiving (extra ms late), or clears it. */
static void httpd_conn_deadline(const struct httpd *h, struct MHD_Connection *conn, bool armed,
                                int64_t extra)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct httpd_conn *c = ci != NULL ? ci->socket_context : NULL;

	if (c != NULL)
		atomic_store(&c->deadline, armed ? httpd_deadline(h, extra) : 0);
}

/* Keeps the list of open connections: each starts with the deadline of its first request. */
static void httpd_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
	struct httpd *h = cls;
	struct httpd_conn *c = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Without memory the connection still has libmicrohttpd's idle timeout. */
		if (ci == NULL || (c = calloc(1, sizeof(*c))) == NULL)
			return;
		c->fd = ci->connect_fd;
		atomic_store(&c->deadline, httpd_deadline(h, 0));
		httpd_client(conn, c->client, sizeof(c->client));
		pthread_mutex_lock(&h->conns_lock);
		c->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->conns_lock);
		*socket_context = c;
		return;
	}
	if (c == NULL)
		return;
	/* libmicrohttpd closes the socket after this: the watcher never sees a reused fd. */
	pthread_mutex_lock(&h->conns_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&h->conns_lock);
	free(c);
	*socket_context = NULL;
}

/*
 * Shuts down the connections whose request is late, in the TLS handshake or in the
 * request itself; libmicrohttpd then reads the end of the stream and closes them.
 */
static void httpd_expire(struct httpd *h)
{
	char late[HTTPD_CUT_LOG_MAX][64];
	int64_t now = time_mono_ms();
	size_t n = 0, more = 0;

	pthread_mutex_lock(&h->conns_lock);
	for (struct httpd_conn *c = h->conns; c != NULL; c = c->next) {
		int64_t deadline = atomic_load(&c->deadline);

		if (c->cut || deadline == 0 || now < deadline)
			continue;
		c->cut = true;
		(void)shutdown(c->fd, SHUT_RDWR);
		if (n < HTTPD_CUT_LOG_MAX)
			memcpy(late[n++], c->client, sizeof(late[0]));
		else
			more++;
	}
	pthread_mutex_unlock(&h->conns_lock);
	for (size_t i = 0; i < n; i++)
		log_warnx("connection closed: no whole request in time",
		          LOG_STR("server", h->o.name), LOG_STR("client", late[i]),
		          LOG_INT("timeout_seconds", h->o.timeout));
	if (more > 0)
		log_warnx("more connections closed: no whole request in time",
		          LOG_STR("server", h->o.name), LOG_INT("connections", more),
		          LOG_INT("timeout_seconds", h->o.timeout));
}

/*
 * Over TLS, libmicrohttpd sends the response head and body as two records with a send
 * each. Corking the socket until the response is complete (httpd_completed uncorks it)
 * puts both records in one segment: the client wakes once per response, not twice.
 */
static void httpd_cork(const struct httpd *h, struct MHD_Connection *conn, struct httpd_call *call)
{
	const union MHD_ConnectionInfo *ci;
	int on = 1;

	if (h->o.cert_file == NULL || call->corked >= 0)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL || setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) != 0)
		return;
	call->corked = ci->connect_fd;
}

static enum MHD_Result httpd_respond(struct httpd *h, struct MHD_Connection *conn,
                                     const char *method, const char *url, struct httpd_call *call)
{
	struct httpd_request req = {
		.method = method,
		.path = url,
		.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                            MHD_HTTP_HEADER_CONTENT_TYPE),
		.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_AUTHORIZATION),
		.body = call->body != NULL && !call->too_large ? call->body : "",
		.body_len = call->too_large ? 0 : call->len,
		.body_too_large = call->too_large,
	};
	struct httpd_response res = { 0 };
	struct MHD_Response *r;
	enum MHD_Result ret;
	char num[16];

	httpd_client(conn, req.client, sizeof(req.client));
	h->o.handler(h->o.arg, &req, &res);
	if (res.status == 0)
		httpd_json_error(&res, 500, "internal", "the handler gave no answer");
	r = MHD_create_response_from_buffer(res.body_len, res.body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(res.body);
		return MHD_NO;
	}
	if (res.content_type != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res.content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (res.allow != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res.allow);
	if (res.retry_after > 0) {
		snprintf(num, sizeof(num), "%d", res.retry_after);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num);
	}
	/* A body we did not read cannot be skipped on a kept-alive connection. */
	if (call->too_large)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	httpd_cork(h, conn, call);
	ret = MHD_queue_response(conn, (unsigned)res.status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_call *call = *con_cls;
	const char *cl;

	(void)version;
	if (call == NULL) {
		call = calloc(1, sizeof(*call));
		if (call == NULL)
			return MHD_NO;
		call->corked = -1;
		*con_cls = call;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > h->o.max_body) {
			call->too_large = true;
			/* Past the discard limit, answer now and let the connection close. */
			if (strtoull(cl, NULL, 10) > HTTPD_DISCARD_MAX) {
				call->answered = true;
				return httpd_respond(h, conn, method, url, call);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (call->answered) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		call->seen += *upload_data_size;
		if (!call->too_large && call->len + *upload_data_size <= h->o.max_body) {
			char *grown = realloc(call->body, call->len + *upload_data_size + 1);

			if (grown == NULL)
				return MHD_NO;
			call->body = grown;
			memcpy(call->body + call->len, upload_data, *upload_data_size);
			call->len += *upload_data_size;
			call->body[call->len] = '\0';
			*upload_data_size = 0;
			return MHD_YES;
		}
		/*
		 * Too large: read the rest and drop it, so that the client, which is still
		 * sending, gets to read our answer; only past a hard limit answer at once.
		 */
		*upload_data_size = 0;
		call->too_large = true;
		if (call->seen > HTTPD_DISCARD_MAX) {
			call->answered = true;
			return httpd_respond(h, conn, method, url, call);
		}
		return MHD_YES;
	}
	if (call->answered)
		return MHD_YES;
	call->answered = true;
	/* The whole request is in: the time to answer it is not the client's to count. */
	httpd_conn_deadline(h, conn, false, 0);
	return httpd_respond(h, conn, method, url, call);
}

static void httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
	struct httpd_call *call = *con_cls;
	int off = 0;

	(void)toe;
	/*
	 * A kept-alive connection has as long again for its next request. libmicrohttpd's idle
	 * timeout, as long, closes one that stays silent; the deadline comes a little later, so
	 * that it (and its warning) is only for clients that trickle bytes to stay open.
	 */
	httpd_conn_deadline(cls, conn, true, HTTPD_KEEPALIVE_GRACE_MS);
	if (call != NULL) {
		if (call->corked >= 0)
			(void)setsockopt(call->corked, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
		free(call->body);
		free(call);
		*con_cls = NULL;
	}
}

static struct MHD_Daemon *httpd_mhd_start(struct httpd *h, const char *cert_pem,
                                          const char *key_pem)
{
	unsigned threads = h->o.threads;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	if (h->o.cert_file == NULL)
		return MHD_start_daemon(
		    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
		    NULL, httpd_access, h, MHD_OPTION_LISTEN_SOCKET, h->fd,
		    MHD_OPTION_CONNECTION_TIMEOUT, h->o.timeout, MHD_OPTION_CONNECTION_LIMIT,
		    h->o.max_connections, MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h,
		    MHD_OPTION_NOTIFY_CONNECTION, httpd_notify, h, MHD_OPTION_EXTERNAL_LOGGER,
		    httpd_mhd_log, h, MHD_OPTION_END);
	/*
	 * poll(2), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon (a certificate reload)
	 * races with its own epoll workers, which remove the listening socket from their epoll
	 * sets too; the loser aborts the process ("Failed to remove listen FD from epoll set"),
	 * as a CA did in CI. With poll, quiescing only sets a flag the workers read. Each
	 * worker polls its own connections (tens, not thousands): bench/webhook.sh measured
	 * no loss, and a lower p99.
	 */
	return MHD_start_daemon(
	    MHD_USE_TLS | MHD_USE_POLL_INTERNALLY | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    httpd_access, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
	    MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_PRIORITIES, HTTPD_PRIORITIES,
	    MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, h->o.timeout,
	    MHD_OPTION_CONNECTION_LIMIT, h->o.max_connections, MHD_OPTION_NOTIFY_COMPLETED,
	    httpd_completed, h, MHD_OPTION_NOTIFY_CONNECTION, httpd_notify, h,
	    MHD_OPTION_EXTERNAL_LOGGER, httpd_mhd_log, h, MHD_OPTION_END);
}

/*
 * Stops d. A daemon whose listening socket another daemon uses (or will) is quiesced first,
 * so that stopping it does not close the socket; the last one to go (last: true) closes it.
 */
static void httpd_daemon_free(struct httpd_daemon *d, bool last)
{
	if (d->mhd != NULL) {
		if (!last)
			MHD_quiesce_daemon(d->mhd);
		MHD_stop_daemon(d->mhd);
	}
	free(d->cert_pem);
	if (d->key_pem != NULL) {
		OPENSSL_cleanse(d->key_pem, strlen(d->key_pem));
		free(d->key_pem);
	}
	memset(d, 0, sizeof(*d));
}

static int httpd_listen(struct httpd *h, struct err *e)
{
	char host[256];
	const char *colon = strrchr(h->o.listen, ':');
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
		                  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	size_t hlen;
	int one = 1;
	int rc;

	if (colon == NULL)
		return err_set(e, -EINVAL, "%s: listen address must be host:port", h->o.listen);
	hlen = (size_t)(colon - h->o.listen);
	if (hlen >= 2 && h->o.listen[0] == '[' && colon[-1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(hlen - 2), h->o.listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hlen, h->o.listen);
	rc = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai);
	if (rc != 0)
		return err_set(e, -EINVAL, "%s: %s", h->o.listen, gai_strerror(rc));
	h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->fd < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(h->fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(h->fd, 1024) < 0 ||
	    getsockname(h->fd, (struct sockaddr *)&ss, &sslen) < 0) {
		rc = -errno;
		goto fail;
	}
	h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	freeaddrinfo(ai);
	return 0;
fail:
	freeaddrinfo(ai);
	return err_set(e, rc, "cannot listen on %s: %s", h->o.listen, err_str(rc));
}

/* Loads the files again if they changed; on success the new pair takes new connections. */
static void httpd_reload(struct httpd *h)
{
	struct httpd_stamp cs, ks;
	struct httpd_daemon next = { 0 };
	struct err e = { 0 };
	size_t slot;

	httpd_stamp_of(h->o.cert_file, &cs);
	httpd_stamp_of(h->o.key_file, &ks);
	if (httpd_stamp_equal(&cs, &h->cert_stamp) && httpd_stamp_equal(&ks, &h->key_stamp))
		return;
	if (httpd_load_pair(&h->o, &next.cert_pem, &next.key_pem, &e) < 0) {
		/* A pair caught half-written is read again at the next look. */
		log_warnx("new serving certificate not loaded; keeping the current one",
		          LOG_STR("server", h->o.name), LOG_STR("reason", e.msg));
		httpd_daemon_free(&next, false);
		h->cert_stamp = cs;
		h->key_stamp = ks;
		return;
	}
	for (slot = 0; slot < HTTPD_MAX_DRAINING && h->draining[slot].mhd != NULL; slot++)
		;
	if (slot == HTTPD_MAX_DRAINING) {
		log_warnx("certificate reload deferred: too many servers still draining",
		          LOG_STR("server", h->o.name));
		httpd_daemon_free(&next, false);
		return;
	}
	next.mhd = httpd_mhd_start(h, next.cert_pem, next.key_pem);
	if (next.mhd == NULL) {
		log_warnx("new serving certificate refused by the TLS library; keeping the current "
		          "one",
		          LOG_STR("server", h->o.name));
		httpd_daemon_free(&next, false);
		h->cert_stamp = cs;
		h->key_stamp = ks;
		return;
	}
	/* The old daemon stops accepting; its connections finish on the old certificate. */
	MHD_quiesce_daemon(h->current.mhd);
	h->current.retired = time(NULL);
	h->draining[slot] = h->current;
	h->current = next;
	h->cert_stamp = cs;
	h->key_stamp = ks;
	atomic_fetch_add(&h->reloads, 1);
	log_info("serving certificate reloaded", LOG_STR("server", h->o.name),
	         LOG_STR("cert_file", h->o.cert_file));
}

/* Stops replaced daemons once their connections are gone, or after the drain limit. */
static void httpd_reap(struct httpd *h)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < HTTPD_MAX_DRAINING; i++) {
		struct httpd_daemon *d = &h->draining[i];
		const union MHD_DaemonInfo *info;

		if (d->mhd == NULL)
			continue;
		info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if ((info != NULL && info->num_connections == 0) ||
		    now - d->retired >= HTTPD_DRAIN_SECONDS)
			httpd_daemon_free(d, false);
	}
}

static void *httpd_watch(void *arg)
{
	struct httpd *h = arg;
	struct timespec deadline;

	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		pthread_cond_timedwait(&h->wake, &h->lock, &deadline);
		if (h->stopping)
			break;
		if (h->o.cert_file != NULL) {
			httpd_reload(h);
			httpd_reap(h);
		}
		httpd_expire(h);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct httpd *httpd_start(const struct httpd_options *o, struct err *e)
{
	struct httpd *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	h->o = *o;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->wake, NULL);
	pthread_mutex_init(&h->conns_lock, NULL);
	if (o->cert_file != NULL) {
		httpd_stamp_of(o->cert_file, &h->cert_stamp);
		httpd_stamp_of(o->key_file, &h->key_stamp);
		if (httpd_load_pair(o, &h->current.cert_pem, &h->current.key_pem, e) < 0)
			goto fail;
	}
	if (httpd_listen(h, e) < 0)
		goto fail;
	h->current.mhd = httpd_mhd_start(h, h->current.cert_pem, h->current.key_pem);
	if (h->current.mhd == NULL) {
		err_set(e, ERR_INTERNAL, "%s: the HTTP server did not start (see the log)",
		        o->name);
		goto fail;
	}
	if (pthread_create(&h->watcher, NULL, httpd_watch, h) != 0) {
		err_set(e, -EAGAIN, "cannot start the watcher thread");
		goto fail;
	}
	h->watching = true;
	return h;
fail:
	httpd_stop(h);
	return NULL;
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

uint64_t httpd_reloads(const struct httpd *h)
{
	return atomic_load(&h->reloads);
}

void httpd_stop(struct httpd *h)
{
	if (h == NULL)
		return;
	if (h->watching) {
		pthread_mutex_lock(&h->lock);
		h->stopping = true;
		pthread_cond_signal(&h->wake);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->watcher, NULL);
	}
	for (size_t i = 0; i < HTTPD_MAX_DRAINING; i++)
		httpd_daemon_free(&h->draining[i], false);
	/* The current daemon closes the listening socket as it stops. */
	if (h->current.mhd != NULL)
		h->fd = -1;
	httpd_daemon_free(&h->current, true);
	if (h->fd >= 0)
		close(h->fd);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->conns_lock);
	free(h);
}

void httpd_json_error(struct httpd_response *res, int status, const char *code, const char *message)
{
	/* Our own escaper, which also mends invalid UTF-8 in a message that quotes input. */
	static const char mid[] = "\",\"message\":\"";
	char buf[2048];
	size_t pos;

	memcpy(buf, "{\"error\":\"", 10);
	pos = 10;
	log_json_escape(buf, 256, &pos, code);
	memcpy(buf + pos, mid, sizeof(mid) - 1);
	pos += sizeof(mid) - 1;
	log_json_escape(buf, sizeof(buf) - 3, &pos, message);
	memcpy(buf + pos, "\"}", 3);
	free(res->body);
	res->status = status;
	res->content_type = "application/json";
	res->body = strdup(buf);
	res->body_len = res->body != NULL ? strlen(res->body) : 0;
}

void httpd_text(struct httpd_response *res, int status, const char *content_type, const char *text)
{
	free(res->body);
	res->status = status;
	res->content_type = content_type;
	res->body = strdup(text);
	res->body_len = res->body != NULL ? strlen(res->body) : 0;
}

void httpd_metrics(struct httpd_response *res, void (*fill)(FILE *f, void *arg), void *arg)
{
	size_t len = 0;
	char *text = metrics_page(fill, arg, &len);

	if (text == NULL) {
		httpd_json_error(res, 500, "internal", "out of memory");
		return;
	}
	free(res->body);
	res->status = 200;
	res->content_type = METRICS_CONTENT_TYPE;
	res->body = text;
	res->body_len = len;
}
