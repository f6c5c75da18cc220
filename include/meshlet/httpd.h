/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS server of meshlet-ca and meshlet-webhook (libmicrohttpd), as a request handler. */
#ifndef MESHLET_HTTPD_H
#define MESHLET_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "meshlet/err.h"

/* One request, whole: what a handler decides on. Everything is valid during the call. */
struct httpd_request {
	const char *method;
	const char *path;          /* without the query string */
	const char *content_type;  /* NULL when absent */
	const char *authorization; /* NULL when absent */
	const char *body;          /* NUL-terminated for convenience; may hold NULs */
	size_t body_len;
	bool body_too_large; /* the body passed max_body: it was not read, body is empty */
	char client[64];     /* "ip:port" of the peer */
};

/* The handler's answer. body is malloc'd and handed over; the server frees it. */
struct httpd_response {
	int status;
	const char *content_type;
	char *body;
	size_t body_len;
	const char *allow; /* an Allow header, for 405 */
	int retry_after;   /* seconds, for 429 and 503; 0 for none */
};

typedef void (*httpd_handler_fn)(void *arg, const struct httpd_request *req,
                                 struct httpd_response *res);

struct httpd_options {
	const char *name;   /* for log lines: "meshlet-ca" */
	const char *listen; /* "host:port", "[v6]:port"; port 0 picks a free port */
	const char
	    *cert_file; /* PEM chain, leaf first; NULL: plain HTTP, one thread (admin ports) */
	const char *key_file; /* PEM key, mode 0600 */
	size_t max_body;      /* larger bodies are not read: body_too_large */
	unsigned threads;     /* worker threads; 0: one per core */
	unsigned timeout;     /* seconds a connection may be idle, and a deadline: the TLS
	                         handshake and a whole request (head and body) must arrive within
	                         it of connecting or of the previous request's end */
	unsigned max_connections;
	httpd_handler_fn handler;
	void *arg;
};

struct httpd;

/*
 * httpd_start - listen and serve HTTPS (TLS 1.2 and 1.3) with the certificate and key
 * read from their files, which are checked like every meshlet key (mode 0600, key
 * matches certificate). A background thread looks at both files every second; when
 * they change (as cert-manager and the kubelet replace them), the new pair is loaded
 * and new connections get it, while open ones finish on the old one. A pair that does
 * not load is logged and the old one stays. Returns NULL and fills e on failure.
 */
struct httpd *httpd_start(const struct httpd_options *o, struct err *e);

/* httpd_port - the port actually listened on (useful with port 0). */
int httpd_port(const struct httpd *h);

/* httpd_reloads - how many times a new certificate was loaded. */
uint64_t httpd_reloads(const struct httpd *h);

/* httpd_stop - stop accepting, close every connection and free h. */
void httpd_stop(struct httpd *h);

/* httpd_json_error - fill res with {"error": code, "message": message} and status. */
void httpd_json_error(struct httpd_response *res, int status, const char *code,
                      const char *message);

/* httpd_text - fill res with a copy of text, of the given status and content type. */
void httpd_text(struct httpd_response *res, int status, const char *content_type, const char *text);

/*
 * httpd_metrics - fill res with a Prometheus page: fill(f, arg) writes the metrics
 * (see metrics.h). 500 when out of memory.
 */
void httpd_metrics(struct httpd_response *res, void (*fill)(FILE *f, void *arg), void *arg);

#endif
