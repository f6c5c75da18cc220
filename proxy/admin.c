/* SPDX-License-Identifier: Apache-2.0 */
/* Admin endpoints of meshlet-proxy over plain HTTP, and the app probes run on the kubelet's behalf.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "meshlet/httpc.h"
#include "meshlet/httpd.h"
#include "meshlet/log.h"

#include "admin.h"

#define ADMIN_PROBE_PREFIX "/app-health/"
/* The kubelet's own default probe timeout is 1 s; the proxy answers within it. */
#define ADMIN_PROBE_TIMEOUT_MS 1000

struct admin {
	struct admin_options o;
	json_t *probes; /* path -> {"httpGet": {...}} or {"tcpSocket": {...}} */
	struct httpd *httpd;
};

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

static void admin_probe(struct admin *a, const char *path, struct httpd_response *res)
{
	json_t *probe = json_object_get(a->probes, path);
	json_t *get = json_object_get(probe, "httpGet");
	json_t *tcp = json_object_get(probe, "tcpSocket");
	bool ok;

	if (probe == NULL) {
		httpd_text(res, 404, "text/plain", "no such probe\n");
		return;
	}
	if (get != NULL)
		ok = admin_http_probe(get);
	else
		ok = admin_tcp_probe((int)json_integer_value(json_object_get(tcp, "port")));
	httpd_text(res, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "probe failed\n");
}

static void admin_handle(void *arg, const struct httpd_request *req, struct httpd_response *res)
{
	struct admin *a = arg;

	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		httpd_json_error(res, 405, "method_not_allowed", "use GET");
		res->allow = "GET, HEAD";
	} else if (strcmp(req->path, "/healthz/ready") == 0) {
		bool ready = a->o.ready(a->o.arg);

		httpd_text(res, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n");
	} else if (strcmp(req->path, "/metrics") == 0) {
		httpd_metrics(res, a->o.metrics, a->o.arg);
	} else if (strncmp(req->path, ADMIN_PROBE_PREFIX, strlen(ADMIN_PROBE_PREFIX)) == 0) {
		admin_probe(a, req->path, res);
	} else {
		httpd_json_error(res, 404, "not_found", "no such path");
	}
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
	if (admin_load_probes(a, o->app_probes, e) < 0)
		goto fail;
	a->httpd = httpd_start(&(struct httpd_options){ .name = "meshlet-proxy admin",
	                                                .listen = o->listen,
	                                                .max_body = 0,
	                                                .timeout = 10,
	                                                .max_connections = 64,
	                                                .handler = admin_handle,
	                                                .arg = a },
	                       e);
	if (a->httpd == NULL)
		goto fail;
	return a;
fail:
	admin_stop(a);
	return NULL;
}

int admin_port(const struct admin *a)
{
	return httpd_port(a->httpd);
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	httpd_stop(a->httpd);
	json_decref(a->probes);
	free(a);
}
