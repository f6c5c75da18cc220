/* SPDX-License-Identifier: Apache-2.0 */
/* Admin endpoints of meshlet-proxy over plain HTTP, and the app probes run on the kubelet's behalf.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "meshlet/httpc.h"
#include "meshlet/log.h"

#include "admin.h"
#include "http1.h"
#include "listener.h"

#define ADMIN_PROBE_PREFIX "/app-health/"
/* The kubelet's own default probe timeout is 1 s; the proxy answers within it. */
#define ADMIN_PROBE_TIMEOUT_MS 1000

/* Connections served at once; more wait in the listen queue. */
#define ADMIN_MAX_CONNS 64
/* A whole request head must come within this, and fit in ADMIN_HEAD_MAX bytes. */
#define ADMIN_HEAD_TIMEOUT_MS 3000
#define ADMIN_IO_TIMEOUT_S 10
#define ADMIN_HEAD_MAX 8192

/*
 * The admin port is served by a thread of its own with plain sockets, one short-lived
 * thread per connection (the kubelet and Prometheus make a few requests a second), and
 * every answer closes its connection. This keeps an HTTP server library (and its TLS
 * library) out of the sidecar: the proxy's TLS is OpenSSL's, and this port is plain.
 */
struct admin {
	struct admin_options o;
	json_t *probes; /* path -> {"httpGet": {...}} or {"tcpSocket": {...}} */
	int fd;
	int port;
	int wake[2]; /* admin_stop writes here to end the accept thread */
	pthread_t thread;
	bool started;
	_Atomic int conns;
};

/* One answer, formed by a handler. */
struct admin_response {
	int status;
	const char *type;
	char *body; /* malloc'd */
	size_t len;
	const char *allow;
};

static void admin_text(struct admin_response *res, int status, const char *type,
                       const char *text)
{
	res->status = status;
	res->type = type;
	res->body = strdup(text);
	res->len = res->body != NULL ? strlen(text) : 0;
}

/* A TCP connect to 127.0.0.1:port within the probe timeout. */
static bool admin_tcp_probe(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_port = htons((uint16_t)port),
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct pollfd pfd;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = 0;
	socklen_t len = sizeof(err);
	bool ok = false;

	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		ok = true;
	} else if (errno == EINPROGRESS) {
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		ok = poll(&pfd, 1, ADMIN_PROBE_TIMEOUT_MS) == 1 &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
	}
	close(fd);
	return ok;
}

/* The app's httpGet probe, sent to 127.0.0.1 as the kubelet would send it to the pod. */
static bool admin_http_probe(json_t *get)
{
	const char *path = json_string_value(json_object_get(get, "path"));
	const char *scheme = json_string_value(json_object_get(get, "scheme"));
	json_t *headers = json_object_get(get, "httpHeaders");
	struct httpc_header hdr[16];
	struct httpc_response res = { 0 };
	size_t n = 0, i;
	json_t *h;
	char url[1024];
	bool ok;

	if (scheme != NULL && strcasecmp(scheme, "HTTP") != 0)
		return false; /* HTTPS probes are not rewritten by the webhook */
	snprintf(url, sizeof(url), "http://127.0.0.1:%lld%s%s",
	         (long long)json_integer_value(json_object_get(get, "port")),
	         path != NULL && path[0] == '/' ? "" : "/", path != NULL ? path : "");
	json_array_foreach(headers, i, h) {
		if (n == sizeof(hdr) / sizeof(hdr[0]))
			break;
		hdr[n].name = json_string_value(json_object_get(h, "name"));
		hdr[n].value = json_string_value(json_object_get(h, "value"));
		if (hdr[n].name != NULL && hdr[n].value != NULL)
			n++;
	}
	ok = httpc_do(&(struct httpc_request){ .method = "GET",
	                                       .url = url,
	                                       .headers = hdr,
	                                       .nheaders = n,
	                                       .timeout_ms = ADMIN_PROBE_TIMEOUT_MS,
	                                       .max_response = 64 * 1024,
	                                       .allow_plain = true },
	              &res, NULL) == 0 &&
	     res.status >= 200 && res.status < 400;
	httpc_response_free(&res);
	return ok;
}

static void admin_probe(struct admin *a, const char *path, struct admin_response *res)
{
	json_t *probe = json_object_get(a->probes, path);
	json_t *get = json_object_get(probe, "httpGet");
	json_t *tcp = json_object_get(probe, "tcpSocket");
	bool ok;

	if (probe == NULL) {
		admin_text(res, 404, "text/plain", "no such probe\n");
		return;
	}
	if (get != NULL)
		ok = admin_http_probe(get);
	else
		ok = admin_tcp_probe((int)json_integer_value(json_object_get(tcp, "port")));
	admin_text(res, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "probe failed\n");
}

static void admin_handle(struct admin *a, const char *method, const char *path,
                        struct admin_response *res)
{
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		admin_text(res, 405, "text/plain", "use GET\n");
		res->allow = "GET, HEAD";
	} else if (strcmp(path, "/healthz/ready") == 0) {
		bool ready = a->o.ready(a->o.arg);

		admin_text(res, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n");
	} else if (strcmp(path, "/metrics") == 0) {
		FILE *f = open_memstream(&res->body, &res->len);

		if (f == NULL) {
			admin_text(res, 500, "text/plain", "out of memory\n");
			return;
		}
		a->o.metrics(f, a->o.arg);
		if (fclose(f) != 0) {
			free(res->body);
			admin_text(res, 500, "text/plain", "out of memory\n");
			return;
		}
		res->status = 200;
		res->type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strncmp(path, ADMIN_PROBE_PREFIX, strlen(ADMIN_PROBE_PREFIX)) == 0) {
		admin_probe(a, path, res);
	} else {
		admin_text(res, 404, "text/plain", "no such path\n");
	}
}

static const char *admin_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Internal Server Error";
	}
}

static void admin_send(int fd, const struct admin_response *res, bool head)
{
	char top[512];
	int n = snprintf(top, sizeof(top),
	                 "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n%s%s%s"
	                 "connection: close\r\n\r\n",
	                 res->status, admin_reason(res->status), res->type, res->len,
	                 res->allow != NULL ? "allow: " : "", res->allow != NULL ? res->allow : "",
	                 res->allow != NULL ? "\r\n" : "");
	size_t off = 0;

	if (n < 0 || (size_t)n >= sizeof(top))
		return;
	while (off < (size_t)n) {
		ssize_t w = send(fd, top + off, (size_t)n - off, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		off += (size_t)w;
	}
	for (off = 0; !head && off < res->len;) {
		ssize_t w = send(fd, res->body + off, res->len - off, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

struct admin_conn {
	struct admin *a;
	int fd;
};

/* One connection: read a head, answer it, close. */
static void *admin_conn_main(void *arg)
{
	struct admin_conn *c = arg;
	static __thread struct http1_request req;
	char buf[ADMIN_HEAD_MAX];
	size_t len = 0, scan = 0;
	long head = 0;
	struct http1_error why = { 0 };
	struct admin_response res = { .type = "text/plain" };
	char method[16] = "", path[1024];
	struct timespec start;

	/* One deadline for the whole head: a client sending a byte at a time cannot hold a
	 * slot for longer (the kubelet's probes must get through). */
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (head == 0 && len < sizeof(buf)) {
		struct timespec now;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = ADMIN_HEAD_TIMEOUT_MS - ((now.tv_sec - start.tv_sec) * 1000 +
		                                (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			admin_text(&res, 408, "text/plain", "request timeout\n");
			goto send;
		}
		n = recv(c->fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			goto send;
		len += (size_t)n;
		head = http1_head_end(buf, len, sizeof(buf), &scan, &why);
	}
	if (head <= 0 || http1_parse_request(buf, (size_t)head, &req, &why) < 0) {
		if (why.status == 0)
			why.status = 431;
		admin_text(&res, why.status, "text/plain", "malformed request\n");
		goto send;
	}
	snprintf(method, sizeof(method), "%.*s", (int)req.method.len, req.method.p);
	snprintf(path, sizeof(path), "%.*s", (int)req.path.len, req.path.p);
	admin_handle(c->a, method, path, &res);
send:
	if (res.status != 0)
		admin_send(c->fd, &res, strcmp(method, "HEAD") == 0 && res.status == 200);
	free(res.body);
	close(c->fd);
	atomic_fetch_sub(&c->a->conns, 1);
	free(c);
	return NULL;
}

static void *admin_accept_main(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2] = { { .fd = a->fd, .events = POLLIN },
		                 { .fd = a->wake[0], .events = POLLIN } };

	for (;;) {
		struct admin_conn *c;
		struct timeval tv = { .tv_sec = ADMIN_IO_TIMEOUT_S };
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (atomic_load(&a->conns) >= ADMIN_MAX_CONNS) {
			usleep(10 * 1000); /* the busy ones end within the timeouts */
			continue;
		}
		fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(100 * 1000); /* no descriptors: wait rather than spin */
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->a = a;
		c->fd = fd;
		atomic_fetch_add(&a->conns, 1);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&t, &attr, admin_conn_main, c) != 0) {
			atomic_fetch_sub(&a->conns, 1);
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

/* The listening socket for "host:port", as the proxy's other listeners make theirs. */
static int admin_listen(struct admin *a, const char *listen_on, struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (listener_resolve(listen_on, &ss, &len) < 0)
		return err_set(e, -EINVAL, "admin: \"%s\" is not ADDRESS:PORT", listen_on);
	a->fd = listener_socket((struct sockaddr *)&ss, len, 0, 64);
	if (a->fd < 0)
		return err_set(e, a->fd, "admin: cannot listen on %s: %s", listen_on,
		               strerror(-a->fd));
	len = sizeof(ss);
	if (getsockname(a->fd, (struct sockaddr *)&ss, &len) < 0)
		return err_set(e, -errno, "admin: %s", strerror(errno));
	a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* Checks MESHLET_APP_PROBES: an object of "/app-health/..." paths to one probe action each. */
static int admin_load_probes(struct admin *a, const char *text, struct err *e)
{
	json_error_t je;
	const char *path;
	json_t *probe;

	a->probes = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, &je) : json_object();
	if (a->probes == NULL)
		return err_set(e, -EINVAL, "MESHLET_APP_PROBES is not JSON: %s", je.text);
	if (!json_is_object(a->probes))
		return err_set(e, -EINVAL, "MESHLET_APP_PROBES must be a JSON object");
	json_object_foreach(a->probes, path, probe) {
		json_t *get = json_object_get(probe, "httpGet");
		json_t *tcp = json_object_get(probe, "tcpSocket");
		json_t *port = json_object_get(get != NULL ? get : tcp, "port");

		if (strncmp(path, ADMIN_PROBE_PREFIX, strlen(ADMIN_PROBE_PREFIX)) != 0 ||
		    (get == NULL) == (tcp == NULL) || !json_is_integer(port) ||
		    json_integer_value(port) < 1 || json_integer_value(port) > 65535)
			return err_set(
			    e, -EINVAL,
			    "MESHLET_APP_PROBES: %.200s: expected an httpGet or a tcpSocket "
			    "with a numeric port",
			    path);
	}
	return 0;
}

struct admin *admin_start(const struct admin_options *o, struct err *e)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	a->o = *o;
	a->fd = a->wake[0] = a->wake[1] = -1;
	if (admin_load_probes(a, o->app_probes, e) < 0 || admin_listen(a, o->listen, e) < 0)
		goto fail;
	if (pipe2(a->wake, O_CLOEXEC) < 0) {
		err_set(e, -errno, "admin: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&a->thread, NULL, admin_accept_main, a) != 0) {
		err_set(e, -EAGAIN, "admin: cannot start its thread");
		goto fail;
	}
	a->started = true;
	log_info("admin listening", LOG_STR("address", o->listen), LOG_INT("port", a->port));
	return a;
fail:
	admin_stop(a);
	return NULL;
}

int admin_port(const struct admin *a)
{
	return a->port;
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		(void)!write(a->wake[1], "x", 1);
		pthread_join(a->thread, NULL);
	}
	/* Connections still being answered end by themselves within their timeouts. */
	for (int i = 0; i < 100 && atomic_load(&a->conns) > 0; i++)
		usleep(20 * 1000);
	if (a->fd >= 0)
		close(a->fd);
	if (a->wake[0] >= 0)
		close(a->wake[0]);
	if (a->wake[1] >= 0)
		close(a->wake[1]);
	if (atomic_load(&a->conns) > 0)
		return; /* a connection still uses a: the process is ending, leave it */
	json_decref(a->probes);
	free(a);
}
