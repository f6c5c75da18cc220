/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-webhook's configuration: the values' parsers, the table, and the rules that span keys. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "meshlet/err.h"
#include "meshlet/log.h"

#include "settings.h"

static const char *const settings_policies[] = { "enabled", "disabled", NULL };

const char *const settings_pull_policy_names[] = { "IfNotPresent", "Always", "Never", NULL };

/* Copies s for a message: at most 64 bytes, unprintable bytes and '"' as \xNN. */
const char *settings_quote(char *buf, size_t size, const char *s)
{
	size_t pos = 0;

	for (size_t i = 0; s[i] != '\0' && pos + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == 64) {
			snprintf(buf + pos, size - pos, "...");
			return buf;
		}
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			pos += (size_t)snprintf(buf + pos, size - pos, "\\x%02x", ch);
		else
			buf[pos++] = (char)ch;
	}
	buf[pos] = '\0';
	return buf;
}

static bool settings_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool settings_is_alnum(char c)
{
	return settings_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- Kubernetes resource quantities ---- */

int settings_quantity_parse(const char *s, struct settings_quantity *out, struct err *e)
{
	static const struct {
		const char *suffix;
		long double mult;
	} suffixes[] = {
		{ "Ki", 1024.0L },
		{ "Mi", 1024.0L * 1024 },
		{ "Gi", 1024.0L * 1024 * 1024 },
		{ "Ti", 1024.0L * 1024 * 1024 * 1024 },
		{ "Pi", 1024.0L * 1024 * 1024 * 1024 * 1024 },
		{ "Ei", 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024 },
		{ "n", 1e-9L },
		{ "u", 1e-6L },
		{ "m", 1e-3L },
		{ "", 1.0L },
		{ "k", 1e3L },
		{ "M", 1e6L },
		{ "G", 1e9L },
		{ "T", 1e12L },
		{ "P", 1e15L },
		{ "E", 1e18L },
	};
	static const char bad[] = "is not a resource quantity (a number and an optional "
	                          "suffix, like 100m, 0.5, 128Mi, 1.5G or 1e3)";
	const char *p = s;
	long double value = 0;
	int frac = 0;
	bool digits = false;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if (strlen(s) > SETTINGS_QUANTITY_MAX)
		return err_set(e, ERR_SETTINGS_QUANTITY, "is longer than %d bytes",
		               SETTINGS_QUANTITY_MAX);
	if (*p == '-')
		return err_set(e, ERR_SETTINGS_QUANTITY, "is negative");
	if (*p == '+')
		p++;
	for (; settings_is_digit(*p); p++, digits = true)
		value = value * 10 + (*p - '0');
	if (*p == '.') {
		for (p++; settings_is_digit(*p); p++, digits = true, frac++)
			value = value * 10 + (*p - '0');
	}
	if (!digits)
		return err_set(e, ERR_SETTINGS_QUANTITY, "%s", bad);
	for (; frac > 0; frac--)
		value /= 10;

	/* An exponent: 'e' or 'E', a sign, digits ("1E" alone is the suffix exa). */
	if ((*p == 'e' || *p == 'E') && (settings_is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') &&
	                                                             settings_is_digit(p[2])))) {
		bool neg = p[1] == '-';
		int exp = 0;
		int n = 0;

		p += (p[1] == '+' || p[1] == '-') ? 2 : 1;
		for (; settings_is_digit(*p); p++, n++)
			exp = exp * 10 + (*p - '0');
		if (*p != '\0' || n > 3)
			return err_set(e, ERR_SETTINGS_QUANTITY, "%s", bad);
		for (; exp > 0; exp--)
			value = neg ? value / 10 : value * 10;
		found = true;
	} else {
		for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
			if (strcmp(p, suffixes[i].suffix) == 0) {
				value *= suffixes[i].mult;
				found = true;
				break;
			}
		}
	}
	if (!found)
		return err_set(e, ERR_SETTINGS_QUANTITY, "%s", bad);
	if (value > 1e30L)
		return err_set(e, ERR_SETTINGS_QUANTITY, "is too large");
	snprintf(out->text, sizeof(out->text), "%s", s);
	out->value = value;
	return 0;
}

/* ---- comma-separated lists of ports and of CIDRs ---- */

/* Adds one item of len bytes (no spaces) to a list; the phrase in e follows the item. */
typedef int (*settings_item_fn)(void *list, const char *item, size_t len, struct err *e);

static int settings_port_item(void *list, const char *s, size_t len, struct err *e)
{
	struct settings_ports *out = list;
	unsigned long v = 0;

	if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (!settings_is_digit(s[i]))
			goto bad;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		goto bad;
	for (size_t i = 0; i < out->n; i++)
		if (out->port[i] == v)
			return 0;
	if (out->n == SETTINGS_PORTS_MAX)
		return err_set(e, ERR_SETTINGS_PORTS, "has more than %d ports", SETTINGS_PORTS_MAX);
	out->port[out->n++] = (uint16_t)v;
	return 0;
bad:
	return err_set(e, ERR_SETTINGS_PORTS,
	               "is not a port number (1 to 65535, decimal, no leading zero)");
}

static int settings_cidr_item(void *list, const char *s, size_t len, struct err *e)
{
	struct settings_cidrs *out = list;
	struct settings_cidr c = { 0 };
	char buf[64];
	char *slash;
	unsigned long prefix = 0;
	const char *d;

	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash == NULL)
		return err_set(e, ERR_SETTINGS_CIDRS,
		               "is not a CIDR: it needs a prefix length (like 10.0.0.0/8, "
		               "10.1.2.3/32 or fd00::/8)");
	*slash = '\0';
	c.family = strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, buf, c.addr) != 1)
		goto bad;
	d = slash + 1;
	if (*d == '\0' || (d[0] == '0' && d[1] != '\0') || strlen(d) > 3)
		goto bad;
	for (; *d != '\0'; d++) {
		if (!settings_is_digit(*d))
			goto bad;
		prefix = prefix * 10 + (unsigned long)(*d - '0');
	}
	if (prefix > (c.family == AF_INET ? 32UL : 128UL))
		goto bad;
	c.prefix = (unsigned)prefix;
	if (out->n == SETTINGS_CIDRS_MAX)
		return err_set(e, ERR_SETTINGS_CIDRS, "has more than %d CIDRs", SETTINGS_CIDRS_MAX);
	out->cidr[out->n++] = c;
	return 0;
bad:
	return err_set(e, ERR_SETTINGS_CIDRS,
	               "is not a CIDR (an IPv4 or IPv6 address, '/', a prefix length: like "
	               "10.0.0.0/8 or fd00::/8)");
}

void settings_ports_add(struct settings_ports *p, uint16_t port)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->port[i] == port)
			return;
	if (p->n < sizeof(p->port) / sizeof(p->port[0]))
		p->port[p->n++] = port;
}

static bool settings_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Parses a comma-separated list through fn: "" (or only spaces) is the empty list, "*"
 * alone sets *all when star_ok, spaces around items are dropped. For a list of more than
 * one item, the phrase of a bad item names it: has "x", which is not ...
 */
static int settings_list_parse(const char *s, bool star_ok, bool *all, void *list,
                               settings_item_fn fn, int code, struct err *e)
{
	const char *end = s + strlen(s);
	bool many = strchr(s, ',') != NULL;
	char q[300];

	while (s < end && settings_is_space(*s))
		s++;
	while (end > s && settings_is_space(end[-1]))
		end--;
	if (s == end)
		return 0;
	while (s <= end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma != NULL ? comma : end;
		const char *a = s, *b = stop;
		struct err ie = { 0 };
		char item[256];
		int rc;

		while (a < b && settings_is_space(*a))
			a++;
		while (b > a && settings_is_space(b[-1]))
			b--;
		if (a == b)
			return err_set(e, code, "has an empty item");
		if (b - a == 1 && *a == '*') {
			if (!star_ok)
				return err_set(e, code, "may not hold \"*\" here: list the items");
			if (many)
				return err_set(e, code, "has \"*\", which must be the only item");
			*all = true;
			return 0;
		}
		rc = fn(list, a, (size_t)(b - a), &ie);
		if (rc < 0) {
			if (!many || e == NULL)
				return err_set(e, rc, "%s", ie.msg);
			snprintf(item, sizeof(item), "%.*s", (int)(b - a), a);
			return err_set(e, rc, "has \"%s\", which %s",
			               settings_quote(q, sizeof(q), item), ie.msg);
		}
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	return 0;
}

/* The same for a list from the configuration: each item is a whole item. */
static int settings_list_from(const struct config_strlist *l, bool star_ok, bool *all, void *list,
                              settings_item_fn fn, int code, struct err *e)
{
	char q[300];

	for (size_t i = 0; i < l->n; i++) {
		const char *item = l->items[i];
		struct err ie = { 0 };
		int rc;

		if (strcmp(item, "*") == 0) {
			if (!star_ok)
				return err_set(e, code, "may not hold \"*\": list the items");
			if (l->n != 1)
				return err_set(e, code, "has \"*\", which must be the only item");
			*all = true;
			return 0;
		}
		rc = fn(list, item, strlen(item), &ie);
		if (rc < 0)
			return err_set(e, rc, "item %zu \"%s\" %s", i + 1,
			               settings_quote(q, sizeof(q), item), ie.msg);
	}
	return 0;
}

int settings_ports_parse(const char *s, bool star_ok, struct settings_ports *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	return settings_list_parse(s, star_ok, &out->all, out, settings_port_item,
	                           ERR_SETTINGS_PORTS, e);
}

int settings_ports_from_list(const struct config_strlist *l, bool star_ok,
                             struct settings_ports *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	return settings_list_from(l, star_ok, &out->all, out, settings_port_item,
	                          ERR_SETTINGS_PORTS, e);
}

int settings_cidrs_parse(const char *s, bool star_ok, struct settings_cidrs *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	return settings_list_parse(s, star_ok, &out->all, out, settings_cidr_item,
	                           ERR_SETTINGS_CIDRS, e);
}

int settings_cidrs_from_list(const struct config_strlist *l, bool star_ok,
                             struct settings_cidrs *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	return settings_list_from(l, star_ok, &out->all, out, settings_cidr_item,
	                          ERR_SETTINGS_CIDRS, e);
}

/* Writes a port list as meshlet-init reads it: "*", "" or "80,443". */
void settings_ports_format(const struct settings_ports *p, char *buf, size_t size)
{
	size_t pos = 0;

	buf[0] = '\0';
	if (p->all) {
		snprintf(buf, size, "*");
		return;
	}
	for (size_t i = 0; i < p->n && pos < size; i++)
		pos += (size_t)snprintf(buf + pos, size - pos, "%s%u", i ? "," : "",
		                        (unsigned)p->port[i]);
}

void settings_cidrs_format(const struct settings_cidrs *c, char *buf, size_t size)
{
	size_t pos = 0;

	buf[0] = '\0';
	if (c->all) {
		snprintf(buf, size, "*");
		return;
	}
	for (size_t i = 0; i < c->n && pos < size; i++) {
		char addr[INET6_ADDRSTRLEN];

		if (inet_ntop(c->cidr[i].family, c->cidr[i].addr, addr, sizeof(addr)) == NULL)
			continue;
		pos += (size_t)snprintf(buf + pos, size - pos, "%s%s/%u", i ? "," : "", addr,
		                        c->cidr[i].prefix);
	}
}

/* ---- label selectors and image references ---- */

/* A label name or value: up to 63 of [A-Za-z0-9._-], alphanumeric at both ends. */
static bool settings_label_name(const char *s, size_t len, bool empty_ok)
{
	if (len == 0)
		return empty_ok;
	if (len > 63 || !settings_is_alnum(s[0]) || !settings_is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!settings_is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* A DNS subdomain: dot-separated lowercase labels, at most 253 bytes. */
static bool settings_dns_subdomain(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			bool ok =
			    (s[i] >= 'a' && s[i] <= 'z') || settings_is_digit(s[i]) || s[i] == '-';

			if (!ok)
				return false;
			continue;
		}
		if (i == start || i - start > 63 || s[start] == '-' || s[i - 1] == '-')
			return false;
		start = i + 1;
	}
	return true;
}

int settings_selector_parse(const char *s, struct settings_selector *out, struct err *e)
{
	const char *eq = strchr(s, '=');
	size_t klen = eq != NULL ? (size_t)(eq - s) : strlen(s);
	const char *slash = memchr(s, '/', klen);
	const char *name = slash != NULL ? slash + 1 : s;
	size_t nlen = klen - (size_t)(name - s);

	memset(out, 0, sizeof(*out));
	if ((slash != NULL && !settings_dns_subdomain(s, (size_t)(slash - s))) ||
	    !settings_label_name(name, nlen, false))
		return err_set(e, ERR_SETTINGS_SELECTOR,
		               "is not a label selector: write key or key=value, where key is a "
		               "label key such as app or example.com/tier");
	if (eq != NULL && !settings_label_name(eq + 1, strlen(eq + 1), true))
		return err_set(e, ERR_SETTINGS_SELECTOR,
		               "is not a label selector: the value after '=' must be a label value "
		               "(up to 63 of A-Z a-z 0-9 . _ -, alphanumeric at both ends)");
	memcpy(out->key, s, klen);
	out->key[klen] = '\0';
	if (eq != NULL) {
		snprintf(out->value, sizeof(out->value), "%s", eq + 1);
		out->has_value = true;
	}
	return 0;
}

int settings_image_check(const char *s, struct err *e)
{
	size_t len = strlen(s);

	if (len == 0)
		return err_set(e, ERR_SETTINGS_IMAGE, "is not an image reference: it is empty");
	if (len > SETTINGS_IMAGE_MAX)
		return err_set(e, ERR_SETTINGS_IMAGE, "is longer than %d bytes",
		               SETTINGS_IMAGE_MAX);
	if (!settings_is_alnum(s[0]))
		return err_set(e, ERR_SETTINGS_IMAGE,
		               "is not an image reference: it must start with a letter or digit");
	for (size_t i = 0; i < len; i++) {
		if (!settings_is_alnum(s[i]) && strchr("._-/:@", s[i]) == NULL)
			return err_set(
			    e, ERR_SETTINGS_IMAGE,
			    "is not an image reference: byte %zu (0x%02x) is not a letter, "
			    "digit or one of . _ - / : @",
			    i + 1, (unsigned char)s[i]);
	}
	return 0;
}

/*
 * The validators below call the parsers above, which the injector also uses for the pod
 * annotations of the same meaning: a value is good in the file exactly when it is good in
 * an annotation. Each gives the parser's phrase ("is not a port number ...") as why.
 */
static bool settings_why(int rc, const struct err *e, char *why, size_t why_size)
{
	if (rc < 0)
		snprintf(why, why_size, "%s", e->msg);
	return rc == 0;
}

static bool settings_valid_quantity(const char *value, char *why, size_t why_size)
{
	struct settings_quantity q;
	struct err e = { 0 };

	return settings_why(settings_quantity_parse(value, &q, &e), &e, why, why_size);
}

/* A limit may also be "": no limit at all. */
static bool settings_valid_limit(const char *value, char *why, size_t why_size)
{
	return *value == '\0' || settings_valid_quantity(value, why, why_size);
}

static bool settings_valid_port(const char *value, char *why, size_t why_size)
{
	struct settings_ports p;
	struct err e = { 0 };

	return settings_why(settings_ports_parse(value, false, &p, &e), &e, why, why_size);
}

static bool settings_valid_port_or_star(const char *value, char *why, size_t why_size)
{
	struct settings_ports p;
	struct err e = { 0 };

	return settings_why(settings_ports_parse(value, true, &p, &e), &e, why, why_size);
}

static bool settings_valid_cidr(const char *value, char *why, size_t why_size)
{
	struct settings_cidrs c;
	struct err e = { 0 };

	return settings_why(settings_cidrs_parse(value, false, &c, &e), &e, why, why_size);
}

static bool settings_valid_cidr_or_star(const char *value, char *why, size_t why_size)
{
	struct settings_cidrs c;
	struct err e = { 0 };

	return settings_why(settings_cidrs_parse(value, true, &c, &e), &e, why, why_size);
}

static bool settings_valid_selector(const char *value, char *why, size_t why_size)
{
	struct settings_selector s;
	struct err e = { 0 };

	return settings_why(settings_selector_parse(value, &s, &e), &e, why, why_size);
}

static bool settings_valid_image(const char *value, char *why, size_t why_size)
{
	struct err e = { 0 };

	return settings_why(settings_image_check(value, &e), &e, why, why_size);
}

/* A token audience: any printable text without spaces, as the API server compares bytes. */
static bool settings_valid_audience(const char *value, char *why, size_t why_size)
{
	if (*value == '\0') {
		snprintf(why, why_size, "is empty");
		return false;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			snprintf(why, why_size, "must be printable ASCII without spaces");
			return false;
		}
	}
	return true;
}

#define S struct settings
static const struct config_key settings_keys[] = {
	CONFIG_STRING("listen", S, listen, 0, "0.0.0.0:9443", config_valid_listen,
	              "address and port of the HTTPS admission endpoint"),
	CONFIG_STRING("tls.cert_file", S, tls_cert_file, 0, NULL, NULL,
	              "serving certificate chain (PEM)"),
	CONFIG_STRING("tls.key_file", S, tls_key_file, 0, NULL, NULL,
	              "serving private key (PEM, mode 0600)"),
	CONFIG_ENUM("inject.policy", S, policy, settings_policies, "enabled",
	            "whether pods without a `meshlet.io/inject` label or annotation are injected"),
	CONFIG_STRLIST("inject.ignore_namespaces", S, ignore_namespaces, 63,
	               "kube-system,kube-public,kube-node-lease,meshlet-system",
	               config_valid_dns_label, "namespaces whose pods are never injected"),
	CONFIG_BOOL("inject.native_sidecar", S, native_sidecar, "true",
	            "run the proxy as a native sidecar (an init container with restartPolicy "
	            "Always, started before the app's init containers); false appends it to "
	            "the containers. Annotation `meshlet.io/native-sidecar`"),
	CONFIG_BOOL("inject.rewrite_probes", S, rewrite_probes, "true",
	            "point the app's httpGet and tcpSocket probes at the proxy's health port, "
	            "so that kubelet probes pass under STRICT mTLS. Annotation "
	            "`meshlet.io/rewrite-probes`"),
	CONFIG_STRLIST("inject.never_selectors", S, never_selectors, 0, NULL,
	               settings_valid_selector,
	               "label selectors (`key` or `key=value`): a pod that matches any is not "
	               "injected, unless its `meshlet.io/inject` label or annotation says so; "
	               "wins over inject.always_selectors"),
	CONFIG_STRLIST("inject.always_selectors", S, always_selectors, 0, NULL,
	               settings_valid_selector,
	               "label selectors (`key` or `key=value`): a pod that matches any is "
	               "injected even when inject.policy is disabled"),
	CONFIG_STRING("mesh.trust_domain", S, trust_domain, 255, "cluster.local",
	              config_valid_trust_domain, "trust domain given to injected proxies"),
	CONFIG_STRING("mesh.ca_address", S, ca_address, 0, "meshlet-ca.meshlet-system.svc:8443",
	              config_valid_listen, "host:port of meshlet-ca, given to injected proxies"),
	CONFIG_STRING("mesh.trust_bundle_file", S, trust_bundle_file, 0,
	              "/etc/meshlet/ca/root-cert.pem", NULL,
	              "root certificates (PEM) that injected proxies trust, passed to them in "
	              "MESHLET_TRUST_BUNDLE"),
	CONFIG_STRING("mesh.token_audience", S, token_audience, 253, "meshlet-ca",
	              settings_valid_audience,
	              "audience of the service-account token projected into injected pods; "
	              "meshlet-ca's auth.audience must be the same"),
	CONFIG_STRLIST("mesh.service_ranges", S, service_ranges, 0, "10.96.0.0/12",
	               settings_valid_cidr,
	               "the cluster's Service IP ranges (kube-apiserver "
	               "--service-cluster-ip-range; the default is kubeadm's, kind's and "
	               "minikube's), passed to injected proxies in MESHLET_SERVICE_RANGES: they "
	               "reach Services on the Service's own port with mutual TLS, as they "
	               "cannot reach a ClusterIP's tunnel port. An empty list sets no variable"),
	CONFIG_STRING("proxy.image", S, proxy_image, SETTINGS_IMAGE_MAX,
	              "meshlet/meshlet:" MESHLET_VERSION, settings_valid_image,
	              "image of the injected proxy and init containers. Annotation "
	              "`meshlet.io/proxy-image`"),
	CONFIG_ENUM("proxy.image_pull_policy", S, proxy_image_pull_policy,
	            settings_pull_policy_names, "IfNotPresent",
	            "imagePullPolicy of the injected containers"),
	CONFIG_STRING("proxy.cpu_request", S, proxy_cpu_request, SETTINGS_QUANTITY_MAX, "100m",
	              settings_valid_quantity,
	              "CPU request of the proxy (a quantity). Annotation "
	              "`meshlet.io/proxy-cpu-request`"),
	CONFIG_STRING("proxy.memory_request", S, proxy_memory_request, SETTINGS_QUANTITY_MAX,
	              "32Mi", settings_valid_quantity,
	              "memory request of the proxy. Annotation `meshlet.io/proxy-memory-request`"),
	CONFIG_STRING("proxy.cpu_limit", S, proxy_cpu_limit, SETTINGS_QUANTITY_MAX, NULL,
	              settings_valid_limit,
	              "CPU limit of the proxy; none by default, as a CFS quota throttles the "
	              "proxy and adds latency to every request. Annotation "
	              "`meshlet.io/proxy-cpu-limit`"),
	CONFIG_STRING("proxy.memory_limit", S, proxy_memory_limit, SETTINGS_QUANTITY_MAX, "128Mi",
	              settings_valid_limit,
	              "memory limit of the proxy; \"\" for none. Annotation "
	              "`meshlet.io/proxy-memory-limit`"),
	CONFIG_ENUM("proxy.log_level", S, proxy_log_level, log_level_names, "info",
	            "log level of injected proxies (MESHLET_LOG_LEVEL). Annotation "
	            "`meshlet.io/log-level`"),
	CONFIG_STRLIST("capture.include_inbound_ports", S, include_inbound_ports, 0, "*",
	               settings_valid_port_or_star,
	               "inbound ports redirected to the proxy, or `*` for all. Annotation "
	               "`meshlet.io/include-inbound-ports`"),
	CONFIG_STRLIST("capture.exclude_inbound_ports", S, exclude_inbound_ports, 0, NULL,
	               settings_valid_port,
	               "inbound ports never redirected (the proxy's 15008 and 15021 always "
	               "are). Annotation `meshlet.io/exclude-inbound-ports`"),
	CONFIG_STRLIST("capture.exclude_outbound_ports", S, exclude_outbound_ports, 0, NULL,
	               settings_valid_port,
	               "outbound ports never redirected. Annotation "
	               "`meshlet.io/exclude-outbound-ports`"),
	CONFIG_STRLIST("capture.include_outbound_ip_ranges", S, include_outbound_ip_ranges, 0, "*",
	               settings_valid_cidr_or_star,
	               "outbound destinations (CIDRs) redirected to the proxy, or `*` for all. "
	               "Annotation `meshlet.io/include-outbound-ip-ranges`"),
	CONFIG_STRLIST("capture.exclude_outbound_ip_ranges", S, exclude_outbound_ip_ranges, 0, NULL,
	               settings_valid_cidr,
	               "outbound destinations (CIDRs) never redirected. Annotation "
	               "`meshlet.io/exclude-outbound-ip-ranges`"),
	CONFIG_DURATION(
	    "timeouts.request", S, request_timeout, CONFIG_SECONDS(1), CONFIG_MINUTES(5), "30s",
	    "time a client has to finish the TLS handshake and send a whole request (head "
	    "and body), counted from connecting or from the end of its previous request; "
	    "also how long an idle connection is kept. Rounded up to whole seconds"),
	CONFIG_STRING("audit_file", S, audit_file, 0, NULL, NULL,
	              "file that every audit record is also appended to"),
	CLI_LOG_KEYS(S),
	{ .name = NULL },
};
#undef S

/* A list that holds "*" must hold nothing else, and lists have a length limit. */
static void settings_check_ports(struct config *c, const char *key, const struct config_strlist *l,
                                 bool star_ok)
{
	struct settings_ports p;
	struct err e = { 0 };

	if (settings_ports_from_list(l, star_ok, &p, &e) < 0)
		config_error(c, key, "%s", e.msg);
}

static void settings_check_cidrs(struct config *c, const char *key, const struct config_strlist *l,
                                 bool star_ok)
{
	struct settings_cidrs p;
	struct err e = { 0 };

	if (settings_cidrs_from_list(l, star_ok, &p, &e) < 0)
		config_error(c, key, "%s", e.msg);
}

/* Kubernetes refuses a container whose request is more than its limit: so do we, earlier. */
static void settings_check_resource(struct config *c, const char *what, const char *req_key,
                                    const char *req, const char *lim_key, const char *lim)
{
	struct settings_quantity r, l;

	if (req == NULL || lim == NULL || *lim == '\0')
		return;
	if (settings_quantity_parse(req, &r, NULL) < 0 ||
	    settings_quantity_parse(lim, &l, NULL) < 0)
		return; /* already reported */
	if (r.value > l.value)
		config_error(c, config_is_set(c, req_key) ? req_key : lim_key,
		             "the %s request \"%s\" is more than the %s limit \"%s\"", what, req,
		             what, lim);
}

static void settings_check(struct config *c)
{
	const struct settings *s = c->obj;

	if ((s->tls_cert_file == NULL) != (s->tls_key_file == NULL))
		config_error(c, s->tls_cert_file != NULL ? "tls.cert_file" : "tls.key_file",
		             "tls.cert_file and tls.key_file must be set together");
	settings_check_ports(c, "capture.include_inbound_ports", &s->include_inbound_ports, true);
	settings_check_ports(c, "capture.exclude_inbound_ports", &s->exclude_inbound_ports, false);
	settings_check_ports(c, "capture.exclude_outbound_ports", &s->exclude_outbound_ports,
	                     false);
	settings_check_cidrs(c, "capture.include_outbound_ip_ranges",
	                     &s->include_outbound_ip_ranges, true);
	settings_check_cidrs(c, "capture.exclude_outbound_ip_ranges",
	                     &s->exclude_outbound_ip_ranges, false);
	settings_check_cidrs(c, "mesh.service_ranges", &s->service_ranges, false);
	settings_check_resource(c, "cpu", "proxy.cpu_request", s->proxy_cpu_request,
	                        "proxy.cpu_limit", s->proxy_cpu_limit);
	settings_check_resource(c, "memory", "proxy.memory_request", s->proxy_memory_request,
	                        "proxy.memory_limit", s->proxy_memory_limit);
}

const struct config_schema settings_schema = {
	.program = "meshlet-webhook",
	.keys = settings_keys,
	.check = settings_check,
};
