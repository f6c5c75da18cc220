/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's admin port: readiness, metrics, and the app's probes that the webhook rewrote. */
#ifndef MESHLET_PROXY_ADMIN_H
#define MESHLET_PROXY_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#include "meshlet/err.h"

struct admin_options {
	const char *listen;                  /* "0.0.0.0:15021" */
	const char *app_probes;              /* MESHLET_APP_PROBES: JSON, or NULL */
	bool (*ready)(void *arg);            /* /healthz/ready */
	void (*metrics)(FILE *f, void *arg); /* /metrics: writes metrics_write_* */
	void *arg;
};

struct admin;

/*
 * admin_start - serve plain HTTP on o->listen: GET /healthz/ready (200 when o->ready says
 * so, else 503), GET /metrics, and GET /app-health/<container>/<livez|readyz|startupz>,
 * which runs the app's original probe named in app_probes (an httpGet to 127.0.0.1, 200
 * to 399 counting as success as the kubelet counts it, or a tcpSocket connect) and
 * answers 200 or 503. A malformed app_probes is an error at start. NULL with e on failure.
 */
struct admin *admin_start(const struct admin_options *o, struct err *e);

/* admin_port - the port listened on. */
int admin_port(const struct admin *a);

/* admin_stop - stop serving and free a; a may be NULL. */
void admin_stop(struct admin *a);

#endif
