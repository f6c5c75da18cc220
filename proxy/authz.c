/* SPDX-License-Identifier: Apache-2.0 */
/* The proxy's policies at run time: load, watch, swap, and the workload they apply to. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "meshlet/file.h"
#include "meshlet/log.h"

#include "authz.h"

#define LABELS_MAX (256 * 1024)

struct authz {
	const struct settings *cfg;
	pthread_mutex_t lock; /* guards set */
	struct policy_set *set;
	char **labels;
	struct policy_workload workload;
	uint16_t http_ports[64];
	size_t nhttp;
	uint64_t stamp;   /* what the files looked like when set was loaded */
	uint64_t settling; /* a change seen once, loaded when it looks the same next time */
	pthread_t thread;
	bool started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stop;
	_Atomic uint64_t reloads_ok, reloads_failed;
};

/* A hash of the files' names, sizes, times and inodes: a change in any gives another. */
static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t stamp_path(uint64_t h, const char *path, int depth)
{
	struct stat st;

	for (const char *c = path; *c != '\0'; c++)
		h = mix(h, (unsigned char)*c);
	if (stat(path, &st) < 0)
		return mix(h, 1);
	h = mix(h, (uint64_t)st.st_ino);
	h = mix(h, (uint64_t)st.st_size);
	h = mix(h, (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec);
	if (S_ISDIR(st.st_mode) && depth == 0) {
		struct dirent **names = NULL;
		int n = scandir(path, &names, NULL, alphasort);

		for (int i = 0; i < n; i++) {
			char sub[4096];

			if (names[i]->d_name[0] != '.' &&
			    snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name) <
			        (int)sizeof(sub))
				h = stamp_path(h, sub, 1);
			free(names[i]);
		}
		free(names);
	}
	return h;
}

static uint64_t stamp_all(const struct settings *cfg)
{
	uint64_t h = 0;

	for (size_t i = 0; i < cfg->policy_paths.n; i++)
		h = stamp_path(h, cfg->policy_paths.items[i], 0);
	return h;
}

static int load(const struct settings *cfg, struct policy_set **out, struct policy_errors *errs)
{
	return policy_load((const char *const *)cfg->policy_paths.items, cfg->policy_paths.n, out,
	                   errs);
}

static void log_loaded(const struct policy_set *s, const char *what)
{
	size_t na, np;

	policy_count(s, &na, &np);
	log_info(what, LOG_INT("authorization_policies", na),
	         LOG_INT("peer_authentications", np));
}

static void reload(struct authz *a)
{
	struct policy_errors errs = { 0 };
	struct policy_set *s = NULL, *old;
	uint64_t stamp = stamp_all(a->cfg);
	int rc;

	if (stamp == a->stamp)
		return;
	/* A file being written shows up half-written: load a change once it has settled. */
	if (stamp != a->settling) {
		a->settling = stamp;
		return;
	}
	rc = load(a->cfg, &s, &errs);
	a->stamp = stamp;
	if (rc < 0) {
		atomic_fetch_add(&a->reloads_failed, 1);
		for (size_t i = 0; i < errs.n; i++)
			log_warnx("policy refused, the previous one stays",
			          LOG_STR("error", errs.msgs[i]));
		policy_errors_free(&errs);
		return;
	}
	atomic_fetch_add(&a->reloads_ok, 1);
	pthread_mutex_lock(&a->lock);
	old = a->set;
	policy_carry_counts(s, old);
	a->set = s;
	pthread_mutex_unlock(&a->lock);
	policy_set_unref(old);
	log_loaded(s, "policy reloaded");
}

static void *watch(void *arg)
{
	struct authz *a = arg;

	pthread_mutex_lock(&a->stop_lock);
	while (!a->stop) {
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += a->cfg->policy_reload_interval / 1000;
		until.tv_nsec += (a->cfg->policy_reload_interval % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&a->stop_cond, &a->stop_lock, &until);
		if (a->stop)
			break;
		pthread_mutex_unlock(&a->stop_lock);
		reload(a);
		pthread_mutex_lock(&a->stop_lock);
	}
	pthread_mutex_unlock(&a->stop_lock);
	return NULL;
}

/* One `key="value"` line of the downward API; the value's escapes are Go's strconv.Quote. */
static int label_line(const char *line, size_t len, char **out)
{
	const char *eq = memchr(line, '=', len);
	char *s, *w;
	size_t klen;

	if (eq == NULL || eq == line || len - (size_t)(eq - line) < 3 || eq[1] != '"' ||
	    line[len - 1] != '"')
		return -1;
	klen = (size_t)(eq - line);
	s = malloc(len);
	if (s == NULL)
		return -1;
	memcpy(s, line, klen + 1);
	w = s + klen + 1;
	for (const char *p = eq + 2; p < line + len - 1; p++) {
		if (*p == '\\' && p + 1 < line + len - 1) {
			p++;
			*w++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	*out = s;
	return 0;
}

static void labels_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int authz_labels_parse(const char *text, char ***out)
{
	char **v = NULL;
	int n = 0;
	const char *p = text;

	*out = NULL;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (len > 0) {
			char **nv = realloc(v, (size_t)(n + 1) * sizeof(*v));

			if (nv == NULL) {
				labels_free(v, n);
				return -1;
			}
			v = nv;
			if (label_line(p, len, &v[n]) < 0) {
				labels_free(v, n);
				return -1;
			}
			n++;
		}
		p += len + (nl != NULL ? 1 : 0);
	}
	*out = v;
	return n;
}

static int parse_ports(struct authz *a, const char *text, struct err *e)
{
	const char *p = text;

	while (p != NULL && *p != '\0') {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v < 1 || v > 65535 || (*end != ',' && *end != '\0') ||
		    a->nhttp == sizeof(a->http_ports) / sizeof(a->http_ports[0]))
			return err_set(e, ERR_CONFIG_INVALID,
			               "policy.http_ports: \"%s\" is not a list of ports (at most "
			               "64, comma-separated)",
			               text);
		a->http_ports[a->nhttp++] = (uint16_t)v;
		p = *end == ',' ? end + 1 : NULL;
	}
	return 0;
}

struct authz *authz_new(const struct settings *cfg, struct err *e)
{
	struct authz *a = calloc(1, sizeof(*a));
	struct policy_errors errs = { 0 };
	int n;

	if (a == NULL) {
		err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	a->cfg = cfg;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->stop_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&a->stop_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	a->workload.namespace_ = cfg->namespace_;
	if (cfg->policy_paths.n > 0 && cfg->namespace_ == NULL) {
		/* Else a policy naming its namespace would silently never apply. */
		err_set(e, ERR_CONFIG_INVALID,
		        "policy.paths needs the workload's namespace: identity.namespace "
		        "(MESHLET_POD_NAMESPACE)");
		goto fail;
	}
	if (cfg->policy_http_ports != NULL && parse_ports(a, cfg->policy_http_ports, e) < 0)
		goto fail;
	if (cfg->policy_labels_file != NULL) {
		char *text = NULL;
		size_t len;

		if (file_read(cfg->policy_labels_file, LABELS_MAX, &text, &len, e) < 0)
			goto fail;
		n = authz_labels_parse(text, &a->labels);
		free(text);
		if (n < 0) {
			err_set(e, ERR_CONFIG_INVALID,
			        "%s: not a labels file (key=\"value\" lines, as the downward API "
			        "writes)",
			        cfg->policy_labels_file);
			goto fail;
		}
		a->workload.labels = (const char *const *)a->labels;
		a->workload.nlabels = (size_t)n;
	}
	a->stamp = stamp_all(cfg);
	if (load(cfg, &a->set, &errs) < 0) {
		size_t len = 0;

		e->code = ERR_CONFIG_INVALID;
		e->msg[0] = '\0';
		for (size_t i = 0; i < errs.n && len < sizeof(e->msg) - 1; i++)
			len += (size_t)snprintf(e->msg + len, sizeof(e->msg) - len, "%s%s",
			                        i > 0 ? "\n" : "", errs.msgs[i]);
		if (e->msg[0] == '\0')
			snprintf(e->msg, sizeof(e->msg), "out of memory loading policies");
		policy_errors_free(&errs);
		goto fail;
	}
	if (cfg->policy_paths.n > 0) {
		log_loaded(a->set, "policy loaded");
		if (pthread_create(&a->thread, NULL, watch, a) != 0) {
			err_set(e, -EAGAIN, "cannot start the policy watcher");
			goto fail;
		}
		a->started = true;
	}
	return a;
fail:
	authz_free(a);
	return NULL;
}

void authz_free(struct authz *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->stop_lock);
		a->stop = true;
		pthread_cond_signal(&a->stop_cond);
		pthread_mutex_unlock(&a->stop_lock);
		pthread_join(a->thread, NULL);
	}
	policy_set_unref(a->set);
	for (size_t i = 0; i < a->workload.nlabels; i++)
		free(a->labels[i]);
	free(a->labels);
	pthread_cond_destroy(&a->stop_cond);
	pthread_mutex_destroy(&a->stop_lock);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

const struct policy_workload *authz_workload(const struct authz *a)
{
	return &a->workload;
}

struct policy_set *authz_current(struct authz *a)
{
	struct policy_set *s;

	pthread_mutex_lock(&a->lock);
	s = policy_set_ref(a->set);
	pthread_mutex_unlock(&a->lock);
	return s;
}

bool authz_is_http(const struct authz *a, uint16_t port)
{
	for (size_t i = 0; i < a->nhttp; i++)
		if (a->http_ports[i] == port)
			return true;
	return false;
}

size_t authz_head_limit(const struct authz *a)
{
	return (size_t)a->cfg->policy_max_header_bytes;
}

const char *authz_policy_name(const struct policy_meta *m, char *buf, size_t size)
{
	if (m == NULL)
		return NULL;
	if (m->namespace_ != NULL)
		snprintf(buf, size, "%s/%s", m->namespace_, m->name);
	else
		snprintf(buf, size, "%s", m->name);
	return buf;
}

int authz_mtls(struct authz *a, uint16_t port, char *by, size_t size)
{
	struct policy_set *s = authz_current(a);
	const struct policy_meta *m = NULL;
	enum policy_mtls mode = policy_mtls_mode(s, &a->workload, port, &m);
	int out = a->cfg->mtls_mode;

	if (by != NULL && size > 0)
		by[0] = '\0';
	if (mode != POLICY_MTLS_UNSET) {
		out = mode == POLICY_MTLS_STRICT       ? SETTINGS_MTLS_STRICT
		      : mode == POLICY_MTLS_PERMISSIVE ? SETTINGS_MTLS_PERMISSIVE
		                                       : SETTINGS_MTLS_DISABLE;
		if (by != NULL)
			authz_policy_name(m, by, size);
	}
	policy_set_unref(s);
	return out;
}

void authz_metrics(struct authz *a, FILE *f)
{
	struct policy_set *s = authz_current(a);

	policy_metrics(s, f);
	policy_set_unref(s);
	fprintf(f,
	        "# HELP meshlet_proxy_policy_reloads_total Policy files loaded again after a "
	        "change, by result (error: refused, the previous policy stays).\n"
	        "# TYPE meshlet_proxy_policy_reloads_total counter\n"
	        "meshlet_proxy_policy_reloads_total{result=\"ok\"} %llu\n"
	        "meshlet_proxy_policy_reloads_total{result=\"error\"} %llu\n",
	        (unsigned long long)atomic_load(&a->reloads_ok),
	        (unsigned long long)atomic_load(&a->reloads_failed));
}
