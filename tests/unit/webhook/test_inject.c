/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for webhook/inject.c and webhook/patch.c: decisions, patches, and applying them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "webhook/inject.h"
#include "webhook/patch.h"
#include "webhook/settings.h"

#define BUNDLE "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* Compares two JSON values, printing both when they differ. */
#define assert_json_equal(a, b)                                                                    \
	do {                                                                                       \
		const json_t *a_ = (a), *b_ = (b);                                                 \
		if (!json_equal(a_, b_)) {                                                         \
			char *sa_ = json_dumps(a_, JSON_COMPACT | JSON_ENCODE_ANY);                \
			char *sb_ = json_dumps(b_, JSON_COMPACT | JSON_ENCODE_ANY);                \
			print_error("%s\n  != %s\n", sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");  \
			free(sa_);                                                                 \
			free(sb_);                                                                 \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- helpers ---- */

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, 0, &je);

	if (v == NULL)
		fail_msg("bad JSON in the test, line %d: %s", je.line, je.text);
	return v;
}

/*
 * An injector from the default settings with some keys set as flags would set them:
 * kv is "key", "value", ..., NULL.
 */
static struct injector *injector_with(const char *const *kv)
{
	struct settings s = { 0 };
	struct config c;
	struct err e = { 0 };
	struct injector *in;

	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2)
		if (config_set(&c, kv[i], kv[i + 1], "test") != 0)
			fail_msg("%s=%s: %s", kv[i], kv[i + 1], c.errors[c.nerrors - 1]);
	assert_int_equal(config_check(&c), 0);
	in = injector_new(&s, BUNDLE, &e);
	if (in == NULL)
		fail_msg("injector_new: %s", e.msg);
	config_release(&c);
	config_free(&settings_schema, &s);
	return in;
}

/* An injector from settings written as a configuration file. */
static struct injector *injector_yaml(const char *yaml)
{
	struct settings s = { 0 };
	struct config c;
	struct err e = { 0 };
	struct injector *in;

	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	if (config_load_string(&c, "t.yaml", yaml, strlen(yaml)) != 0 || config_check(&c) != 0)
		fail_msg("%s", c.errors[0]);
	in = injector_new(&s, BUNDLE, &e);
	if (in == NULL)
		fail_msg("injector_new: %s", e.msg);
	config_release(&c);
	config_free(&settings_schema, &s);
	return in;
}

static struct injector *injector_default(void)
{
	return injector_with(NULL);
}

/*
 * A patch from one builder call: members added to the object at segs when at is 0 and the
 * values have keys, else items inserted at at. The patch, parsed, or a failed test.
 */
static json_t *build(const json_t *doc, const char *const *segs, size_t n, size_t at,
                     const struct patch_value *v, size_t nv)
{
	struct patch p;
	json_t *patch;
	char *text;
	size_t len;

	patch_init(&p);
	if (v[0].key != NULL)
		assert_int_equal(patch_add_members(&p, doc, segs, n, v, nv), 0);
	else
		assert_int_equal(patch_insert(&p, doc, segs, n, at, v, nv), 0);
	text = patch_finish(&p, &len);
	assert_non_null(text);
	patch = load(text);
	free(text);
	return patch;
}

/* Runs the injector on a pod written as JSON text. */
static json_t *run(const struct injector *in, const char *pod_text, const char *ns,
                   struct inject_result *r)
{
	json_t *pod = load(pod_text);
	json_t *before = json_deep_copy(pod);

	assert_int_equal(injector_pod(in, pod, ns, r), 0);
	assert_non_null(r->warnings);
	assert_true(json_is_array(r->warnings));
	assert_json_equal(pod, before); /* the pod is not changed */
	json_decref(before);
	if (r->decision == INJECT_INJECTED)
		assert_true(json_is_array(r->patch));
	else
		assert_null(r->patch);
	return pod;
}

static const json_t *find_named(const json_t *list, const char *name)
{
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *item = json_array_get(list, i);

		if (strcmp(json_string_value(json_object_get(item, "name")), name) == 0)
			return item;
	}
	return NULL;
}

static size_t count_named(const json_t *spec, const char *name)
{
	const char *lists[] = { "containers", "initContainers" };
	size_t n = 0;

	for (size_t l = 0; l < 2; l++) {
		const json_t *list = json_object_get(spec, lists[l]);

		for (size_t i = 0; i < json_array_size(list); i++)
			n += strcmp(json_string_value(
			                json_object_get(json_array_get(list, i), "name")),
			            name) == 0;
	}
	return n;
}

static const char *env_value(const json_t *container, const char *name)
{
	const json_t *v = find_named(json_object_get(container, "env"), name);

	return v != NULL ? json_string_value(json_object_get(v, "value")) : NULL;
}

static const char *annotation(const json_t *pod, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), key));
}

/* The value at a pointer without escapes ("/spec/volumes") in doc, or NULL. */
static const json_t *lookup(const json_t *doc, const char *path)
{
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, "/", &save); k != NULL && doc != NULL;
	     k = strtok_r(NULL, "/", &save))
		doc = json_object_get(doc, k);
	return doc;
}

/* A user's container after injection: the same, but for rewritten probes' handlers. */
static void assert_user_container_kept(const json_t *orig, const json_t *now)
{
	static const char *const probes[] = { "livenessProbe", "readinessProbe", "startupProbe" };
	json_t *a = json_deep_copy(orig), *b = json_deep_copy(now);

	assert_non_null(now);
	for (size_t k = 0; k < 3; k++) {
		json_t *pa = json_object_get(a, probes[k]), *pb = json_object_get(b, probes[k]);
		const char *path =
		    json_string_value(json_object_get(json_object_get(pb, "httpGet"), "path"));

		if (pa != NULL && pb != NULL && path != NULL &&
		    strncmp(path, "/app-health/", 12) == 0) {
			json_object_del(pa, "httpGet");
			json_object_del(pa, "tcpSocket");
			json_object_del(pb, "httpGet");
		}
	}
	assert_json_equal(a, b);
	json_decref(a);
	json_decref(b);
}

/*
 * What every injected pod must satisfy, checked on the pod that the patch gives: one
 * meshlet-proxy and one meshlet-init; unique container names; every volumeMount names a
 * volume; the user's containers, init containers, volumes and annotations kept; no
 * existing array or object replaced wholesale; the status annotation present. Returns
 * the patched pod.
 */
static json_t *check_injected(const json_t *pod, const struct inject_result *r)
{
	static const char *const whole[] = { "/metadata",        "/metadata/annotations",
		                             "/spec/containers", "/spec/initContainers",
		                             "/spec/volumes",    "/spec" };
	const char *lists[] = { "containers", "initContainers" };
	struct err e = { 0 };
	const json_t *spec, *volumes;
	json_t *patched, *status, *orig_ann;
	size_t i, j;

	if (r->decision != INJECT_INJECTED)
		fail_msg("not injected: %s: %s", r->reason, r->message);
	assert_string_equal(r->reason, "injected");
	patched = inject_apply_patch(pod, r->patch, &e);
	if (patched == NULL)
		fail_msg("the patch does not apply: %s", e.msg);
	spec = json_object_get(patched, "spec");
	assert_int_equal(count_named(spec, "meshlet-proxy"), 1);
	assert_int_equal(count_named(spec, "meshlet-init"), 1);
	for (size_t l = 0; l < 2; l++) {
		const json_t *now = json_object_get(spec, lists[l]);
		const json_t *was = json_object_get(json_object_get(pod, "spec"), lists[l]);

		for (i = 0; i < json_array_size(now); i++) {
			const json_t *c = json_array_get(now, i);
			const json_t *mounts = json_object_get(c, "volumeMounts");

			assert_int_equal(
			    count_named(spec, json_string_value(json_object_get(c, "name"))), 1);
			for (j = 0; j < json_array_size(mounts); j++) {
				const char *m = json_string_value(
				    json_object_get(json_array_get(mounts, j), "name"));

				if (find_named(json_object_get(spec, "volumes"), m) == NULL)
					fail_msg("volumeMount %s names no volume", m);
			}
		}
		for (i = 0; i < json_array_size(was); i++) {
			const json_t *c = json_array_get(was, i);

			assert_user_container_kept(
			    c, find_named(now, json_string_value(json_object_get(c, "name"))));
		}
	}
	volumes = json_object_get(json_object_get(pod, "spec"), "volumes");
	for (i = 0; i < json_array_size(volumes); i++)
		assert_json_equal(json_array_get(volumes, i),
		                  json_array_get(json_object_get(spec, "volumes"), i));
	orig_ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	for (void *it = json_object_iter(orig_ann); it != NULL;
	     it = json_object_iter_next(orig_ann, it))
		assert_json_equal(
		    json_object_iter_value(it),
		    json_object_get(
		        json_object_get(json_object_get(patched, "metadata"), "annotations"),
		        json_object_iter_key(it)));
	for (i = 0; i < json_array_size(r->patch); i++) {
		const json_t *op = json_array_get(r->patch, i);
		const char *path = json_string_value(json_object_get(op, "path"));
		const char *kind = json_string_value(json_object_get(op, "op"));

		/* An add at a path that the pod has (not null) would replace the user's value. */
		for (size_t w = 0; w < sizeof(whole) / sizeof(whole[0]); w++) {
			const json_t *there = lookup(pod, path);

			if (strcmp(path, whole[w]) == 0 && there != NULL && !json_is_null(there))
				fail_msg("op %zu replaces %s, which the pod has", i, path);
		}
		if (strcmp(kind, "replace") == 0 && strstr(path, "Probe") == NULL)
			fail_msg("op %zu replaces %s", i, path);
		assert_true(strcmp(kind, "add") == 0 || strcmp(kind, "replace") == 0);
	}
	status = load(annotation(patched, INJECT_STATUS_KEY));
	assert_string_equal(json_string_value(json_object_get(status, "version")), MESHLET_VERSION);
	json_decref(status);
	return patched;
}

static const char *op_path(const struct inject_result *r, size_t i)
{
	return json_string_value(json_object_get(json_array_get(r->patch, i), "path"));
}

static const json_t *op_value(const struct inject_result *r, size_t i)
{
	return json_object_get(json_array_get(r->patch, i), "value");
}

/* ---- pods ---- */

static const char pod_minimal[] = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
                                  "\"metadata\":{\"name\":\"web\"},"
                                  "\"spec\":{\"containers\":[{\"name\":\"app\","
                                  "\"image\":\"nginx\"}]}}";

static const char pod_full[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
    "\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\","
    "\"labels\":{\"app\":\"web\"},"
    "\"annotations\":{\"team\":\"a\",\"kubectl.kubernetes.io/default-container\":\"side\"}},"
    "\"spec\":{\"serviceAccountName\":\"web\","
    "\"securityContext\":{\"fsGroup\":1234},"
    "\"initContainers\":[{\"name\":\"setup\",\"image\":\"busybox\","
    "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\"}]}],"
    "\"containers\":[{\"name\":\"app\",\"image\":\"nginx\","
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080}],"
    "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\"}]},"
    "{\"name\":\"side\",\"image\":\"busybox\"}],"
    "\"volumes\":[{\"name\":\"data\",\"emptyDir\":{}}]}}";

/* ---- tests: what is injected ---- */

static void test_minimal_pod(void **state)
{
	static const char *const want_args[] = {
		"--proxy-uid",
		"1337",
		"--proxy-gid",
		"1337",
		"--inbound-port",
		"15006",
		"--outbound-port",
		"15001",
		"--include-inbound-ports",
		"*",
		"--exclude-inbound-ports",
		"15008,15021",
		"--include-outbound-cidrs",
		"*",
	};
	struct injector *in = injector_default();
	struct inject_result r;
	json_t *pod = run(in, pod_minimal, "shop", &r);
	json_t *patched = check_injected(pod, &r);
	const json_t *spec = json_object_get(patched, "spec");
	const json_t *init = json_object_get(spec, "initContainers");
	const json_t *proxy = json_array_get(init, 1);
	const json_t *args = json_object_get(json_array_get(init, 0), "args");
	json_t *want;

	(void)state;
	/* Each absent array or object is added whole: three operations. */
	assert_int_equal(json_array_size(r.patch), 3);
	assert_string_equal(op_path(&r, 0), "/spec/initContainers");
	assert_string_equal(op_path(&r, 1), "/spec/volumes");
	assert_string_equal(op_path(&r, 2), "/metadata/annotations");
	assert_int_equal(json_array_size(op_value(&r, 0)), 2);
	assert_int_equal(json_array_size(op_value(&r, 1)), 4);
	assert_int_equal(json_array_size(json_object_get(spec, "containers")), 1);
	assert_contains(r.message, "native sidecar");
	assert_contains(r.message, "inject.policy is enabled");
	assert_int_equal(json_array_size(r.warnings), 0);

	/* Native mode: meshlet-init, then the proxy with restartPolicy Always. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(init, 0), "name")),
	                    "meshlet-init");
	assert_string_equal(json_string_value(json_object_get(proxy, "name")), "meshlet-proxy");
	assert_string_equal(json_string_value(json_object_get(proxy, "restartPolicy")), "Always");
	assert_string_equal(json_string_value(json_object_get(proxy, "image")),
	                    "meshlet/meshlet:" MESHLET_VERSION);
	assert_string_equal(json_string_value(json_object_get(proxy, "imagePullPolicy")),
	                    "IfNotPresent");
	assert_int_equal(json_array_size(args), sizeof(want_args) / sizeof(want_args[0]));
	for (size_t i = 0; i < sizeof(want_args) / sizeof(want_args[0]); i++)
		assert_string_equal(json_string_value(json_array_get(args, i)), want_args[i]);

	want = load("{\"capabilities\":{\"add\":[\"NET_ADMIN\",\"NET_RAW\"],\"drop\":[\"ALL\"]},"
	            "\"runAsUser\":0,\"runAsGroup\":0,\"runAsNonRoot\":false,"
	            "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
	            "\"privileged\":false}");
	assert_json_equal(json_object_get(json_array_get(init, 0), "securityContext"), want);
	json_decref(want);
	want = load("{\"requests\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},"
	            "\"limits\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"}}");
	assert_json_equal(json_object_get(json_array_get(init, 0), "resources"), want);
	json_decref(want);

	want = load("{\"runAsUser\":1337,\"runAsGroup\":1337,\"runAsNonRoot\":true,"
	            "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
	            "\"capabilities\":{\"drop\":[\"ALL\"]},\"privileged\":false}");
	assert_json_equal(json_object_get(proxy, "securityContext"), want);
	json_decref(want);
	want = load("{\"requests\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},"
	            "\"limits\":{\"memory\":\"128Mi\"}}");
	assert_json_equal(json_object_get(proxy, "resources"), want);
	json_decref(want);
	want = load("[{\"containerPort\":15008,\"name\":\"meshlet-tunnel\",\"protocol\":\"TCP\"},"
	            "{\"containerPort\":15021,\"name\":\"meshlet-admin\",\"protocol\":\"TCP\"}]");
	assert_json_equal(json_object_get(proxy, "ports"), want);
	json_decref(want);
	want = load("{\"httpGet\":{\"path\":\"/healthz/ready\",\"port\":15021,\"scheme\":\"HTTP\"},"
	            "\"periodSeconds\":1,\"failureThreshold\":60}");
	assert_json_equal(json_object_get(proxy, "startupProbe"), want);
	json_decref(want);
	want =
	    load("{\"httpGet\":{\"path\":\"/healthz/ready\",\"port\":15021,\"scheme\":\"HTTP\"}}");
	assert_json_equal(json_object_get(proxy, "readinessProbe"), want);
	json_decref(want);
	want = load("[{\"name\":\"meshlet-token\",\"mountPath\":"
	            "\"/var/run/secrets/meshlet.io/token\",\"readOnly\":true},"
	            "{\"name\":\"meshlet-certs\",\"mountPath\":\"/var/run/meshlet/certs\"},"
	            "{\"name\":\"meshlet-podinfo\",\"mountPath\":\"/etc/meshlet/podinfo\","
	            "\"readOnly\":true},"
	            "{\"name\":\"meshlet-policy\",\"mountPath\":\"/etc/meshlet/policy\","
	            "\"readOnly\":true}]");
	assert_json_equal(json_object_get(proxy, "volumeMounts"), want);
	json_decref(want);
	want =
	    load("[{\"name\":\"meshlet-token\",\"projected\":{\"sources\":[{"
	         "\"serviceAccountToken\":{\"audience\":\"meshlet-ca\","
	         "\"expirationSeconds\":3600,\"path\":\"token\"}}]}},"
	         "{\"name\":\"meshlet-certs\",\"emptyDir\":{\"medium\":\"Memory\"}},"
	         "{\"name\":\"meshlet-podinfo\",\"downwardAPI\":{\"items\":[{\"path\":\"labels\","
	         "\"fieldRef\":{\"fieldPath\":\"metadata.labels\"}}]}},"
	         "{\"name\":\"meshlet-policy\",\"configMap\":{\"name\":\"meshlet-policy\","
	         "\"optional\":true}}]");
	assert_json_equal(json_object_get(spec, "volumes"), want);
	json_decref(want);

	assert_string_equal(env_value(proxy, "MESHLET_CA_ADDRESS"),
	                    "meshlet-ca.meshlet-system.svc:8443");
	assert_string_equal(env_value(proxy, "MESHLET_TRUST_DOMAIN"), "cluster.local");
	assert_string_equal(env_value(proxy, "MESHLET_TRUST_BUNDLE"), BUNDLE);
	assert_string_equal(env_value(proxy, "MESHLET_TOKEN_FILE"),
	                    "/var/run/secrets/meshlet.io/token/token");
	assert_string_equal(env_value(proxy, "MESHLET_LOG_LEVEL"), "info");
	assert_string_equal(env_value(proxy, "MESHLET_SERVICE_RANGES"), "10.96.0.0/12");
	assert_null(env_value(proxy, "MESHLET_APP_PROBES"));
	want = load("{\"name\":\"MESHLET_POD_IP\",\"valueFrom\":{\"fieldRef\":"
	            "{\"fieldPath\":\"status.podIP\"}}}");
	assert_json_equal(find_named(json_object_get(proxy, "env"), "MESHLET_POD_IP"), want);
	json_decref(want);
	assert_non_null(find_named(json_object_get(proxy, "env"), "MESHLET_POD_NAME"));
	assert_non_null(find_named(json_object_get(proxy, "env"), "MESHLET_POD_NAMESPACE"));
	assert_non_null(find_named(json_object_get(proxy, "env"), "MESHLET_SERVICE_ACCOUNT"));

	assert_string_equal(annotation(patched, "kubectl.kubernetes.io/default-container"), "app");
	want = load("{\"version\":\"" MESHLET_VERSION "\",\"initContainers\":[\"meshlet-init\","
	            "\"meshlet-proxy\"],\"containers\":[],\"volumes\":[\"meshlet-token\","
	            "\"meshlet-certs\",\"meshlet-podinfo\",\"meshlet-policy\"]}");
	{
		json_t *status = load(annotation(patched, INJECT_STATUS_KEY));

		assert_json_equal(status, want);
		json_decref(status);
	}
	json_decref(want);

	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

/* A pod with existing annotations, volumes and init containers gets one add per item. */
static void test_existing_items(void **state)
{
	static const char *const want[] = {
		"/spec/initContainers/0",
		"/spec/initContainers/1",
		"/spec/volumes/-",
		"/spec/volumes/-",
		"/spec/volumes/-",
		"/spec/volumes/-",
		"/metadata/annotations/meshlet.io~1status",
	};
	struct injector *in = injector_default();
	struct inject_result r;
	json_t *pod = run(in, pod_full, NULL, &r);
	json_t *patched = check_injected(pod, &r);
	const json_t *init = json_object_get(json_object_get(patched, "spec"), "initContainers");

	(void)state;
	assert_int_equal(json_array_size(r.patch), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(op_path(&r, i), want[i]);
	/* The proxy runs before the user's init containers. */
	assert_int_equal(json_array_size(init), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(init, 2), "name")),
	                    "setup");
	/* The user's choice of default container is kept. */
	assert_string_equal(annotation(patched, "kubectl.kubernetes.io/default-container"), "side");
	assert_json_equal(json_object_get(json_object_get(patched, "spec"), "securityContext"),
	                  json_object_get(json_object_get(pod, "spec"), "securityContext"));
	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

/* A pod with annotations but without the default-container one gets an add per key. */
static void test_annotation_keys_escaped(void **state)
{
	static const char pod_text[] =
	    "{\"metadata\":{\"generateName\":\"web-\",\"annotations\":{\"a~b/c\":\"x\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}";
	struct injector *in = injector_default();
	struct inject_result r;
	json_t *pod = run(in, pod_text, "shop", &r);
	json_t *patched = check_injected(pod, &r);
	size_t n = json_array_size(r.patch);
	json_t *doc, *patch, *out;
	struct err e = { 0 };
	char buf[64];
	const char *segs[] = { "metadata", "annotations" };

	(void)state;
	assert_string_equal(op_path(&r, n - 2), "/metadata/annotations/meshlet.io~1status");
	assert_string_equal(op_path(&r, n - 1),
	                    "/metadata/annotations/kubectl.kubernetes.io~1default-container");
	assert_string_equal(annotation(patched, "a~b/c"), "x");

	/* '~' and '/' in a key, through the builder and back through the applier. */
	assert_int_equal(patch_pointer((const char *const[]){ "a~b/c", "~1" }, 2, buf, sizeof(buf)),
	                 0);
	assert_string_equal(buf, "/a~0b~1c/~01");
	assert_int_equal(patch_pointer((const char *const[]){ "abcdef" }, 1, buf, 6),
	                 ERR_TRUNCATED);
	patch = build(pod, segs, 2, 0, &(struct patch_value){ "k~/", "\"v\"", 3 }, 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(patch, 0), "path")),
	                    "/metadata/annotations/k~0~1");
	doc = inject_apply_patch(pod, patch, &e);
	assert_non_null(doc);
	assert_string_equal(annotation(doc, "k~/"), "v");
	json_decref(doc);
	json_decref(patch);

	/* A pod with no metadata at all: the whole of it is added. */
	doc = load("{\"spec\":{\"containers\":[]}}");
	patch = build(doc, segs, 2, 0, &(struct patch_value){ "k", "\"v\"", 3 }, 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(patch, 0), "path")),
	                    "/metadata");
	out = inject_apply_patch(doc, patch, &e);
	assert_non_null(out);
	assert_string_equal(annotation(out, "k"), "v");
	json_decref(out);
	json_decref(patch);
	json_decref(doc);

	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

/* A pod as a controller makes it: no name, no namespace, no metadata beyond generateName. */
static void test_generate_name_and_no_metadata(void **state)
{
	static const char *const pods[] = {
		"{\"metadata\":{\"generateName\":\"web-7d4b9c-\",\"creationTimestamp\":null},"
		"\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
		"{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
		"{\"metadata\":null,\"spec\":{\"initContainers\":null,\"volumes\":null,"
		"\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
	};
	struct injector *in = injector_default();

	(void)state;
	for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
		struct inject_result r;
		json_t *pod = run(in, pods[i], NULL, &r);
		json_t *patched = check_injected(pod, &r);

		json_decref(patched);
		json_decref(pod);
		inject_result_clear(&r);
	}
	injector_free(in);
}

/* Native or classic, from the configuration and the annotation. */
static void test_native_and_classic(void **state)
{
	static const struct {
		const char *config;     /* inject.native_sidecar */
		const char *annotation; /* meshlet.io/native-sidecar, or NULL */
		bool native;
	} rows[] = {
		{ "true", NULL, true },    { "false", NULL, false }, { "true", "false", false },
		{ "false", "true", true }, { "true", "true", true }, { "false", "false", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *kv[] = { "inject.native_sidecar", rows[i].config, NULL };
		struct injector *in = injector_with(kv);
		struct inject_result r;
		char text[1024];
		json_t *pod, *patched;
		const json_t *spec, *init, *containers, *proxy;

		snprintf(text, sizeof(text),
		         "{\"metadata\":{\"annotations\":{%s%s%s}},\"spec\":{"
		         "\"initContainers\":[{\"name\":\"setup\",\"image\":\"busybox\"}],"
		         "\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
		         rows[i].annotation ? "\"meshlet.io/native-sidecar\":\"" : "",
		         rows[i].annotation ? rows[i].annotation : "",
		         rows[i].annotation ? "\"" : "");
		pod = run(in, text, NULL, &r);
		patched = check_injected(pod, &r);
		spec = json_object_get(patched, "spec");
		init = json_object_get(spec, "initContainers");
		containers = json_object_get(spec, "containers");
		if (rows[i].native) {
			assert_int_equal(json_array_size(init), 3);
			assert_int_equal(json_array_size(containers), 1);
			proxy = json_array_get(init, 1);
			assert_string_equal(
			    json_string_value(json_object_get(json_array_get(init, 0), "name")),
			    "meshlet-init");
			assert_string_equal(
			    json_string_value(json_object_get(proxy, "restartPolicy")), "Always");
			assert_contains(annotation(patched, INJECT_STATUS_KEY),
			                "\"initContainers\":[\"meshlet-init\",\"meshlet-proxy\"]");
		} else {
			/* meshlet-init last among the init containers; the proxy a container. */
			assert_int_equal(json_array_size(init), 2);
			assert_int_equal(json_array_size(containers), 2);
			assert_string_equal(
			    json_string_value(json_object_get(json_array_get(init, 0), "name")),
			    "setup");
			assert_string_equal(
			    json_string_value(json_object_get(json_array_get(init, 1), "name")),
			    "meshlet-init");
			proxy = json_array_get(containers, 1);
			assert_string_equal(json_string_value(json_object_get(proxy, "name")),
			                    "meshlet-proxy");
			assert_null(json_object_get(proxy, "restartPolicy"));
			assert_contains(annotation(patched, INJECT_STATUS_KEY),
			                "\"containers\":[\"meshlet-proxy\"]");
			assert_contains(r.message, "classic sidecar");
			/* The first app container stays the default, not the proxy. */
			assert_string_equal(
			    annotation(patched, "kubectl.kubernetes.io/default-container"), "app");
		}
		json_decref(patched);
		json_decref(pod);
		inject_result_clear(&r);
		injector_free(in);
	}
}

/* ---- tests: when nothing is injected ---- */

static void test_reinject_gives_no_patch(void **state)
{
	static const char *const pods[] = { pod_minimal, pod_full };
	static const char *const mode[] = { "true", "false" };

	(void)state;
	for (size_t m = 0; m < 2; m++) {
		const char *kv[] = { "inject.native_sidecar", mode[m], NULL };
		struct injector *in = injector_with(kv);

		for (size_t i = 0; i < 2; i++) {
			struct inject_result r, again;
			json_t *pod = run(in, pods[i], NULL, &r);
			json_t *patched = check_injected(pod, &r);

			assert_int_equal(injector_pod(in, patched, NULL, &again), 0);
			assert_int_equal(again.decision, INJECT_SKIPPED);
			assert_string_equal(again.reason, "already_injected");
			assert_null(again.patch);
			inject_result_clear(&again);

			/* Without the annotation, the proxy container alone tells. */
			json_object_del(
			    json_object_get(json_object_get(patched, "metadata"), "annotations"),
			    INJECT_STATUS_KEY);
			assert_int_equal(injector_pod(in, patched, NULL, &again), 0);
			assert_int_equal(again.decision, INJECT_SKIPPED);
			assert_string_equal(again.reason, "already_injected");
			assert_contains(again.message, "meshlet-proxy");
			assert_null(again.patch);
			inject_result_clear(&again);

			json_decref(patched);
			json_decref(pod);
			inject_result_clear(&r);
		}
		injector_free(in);
	}
}

static void test_skips(void **state)
{
	static const struct {
		const char *pod;
		const char *ns;
		const char *reason;
		size_t warnings;
	} rows[] = {
		{ "{\"spec\":{\"hostNetwork\":true,\"containers\":[{\"name\":\"a\"}]}}", "shop",
		  "host_network", 1 },
		{ "{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}", "kube-system",
		  "namespace_ignored", 0 },
		{ "{\"metadata\":{\"namespace\":\"meshlet-system\"},"
		  "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
		  NULL, "namespace_ignored", 0 },
		/* The request's namespace wins over the object's. */
		{ "{\"metadata\":{\"namespace\":\"shop\"},"
		  "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
		  "kube-public", "namespace_ignored", 0 },
		{ "{\"metadata\":{\"annotations\":{\"meshlet.io/status\":\"{}\"}},"
		  "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
		  "shop", "already_injected", 0 },
		{ "{\"spec\":{\"initContainers\":[{\"name\":\"meshlet-proxy\"}],"
		  "\"containers\":[{\"name\":\"a\"}]}}",
		  "shop", "already_injected", 0 },
		/* hostNetwork is looked at first, even with bad annotations. */
		{ "{\"metadata\":{\"annotations\":{\"meshlet.io/inject\":\"bogus\"}},"
		  "\"spec\":{\"hostNetwork\":true,\"containers\":[{\"name\":\"a\"}]}}",
		  "shop", "host_network", 1 },
	};
	struct injector *in = injector_default();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct inject_result r;
		json_t *pod = run(in, rows[i].pod, rows[i].ns, &r);

		if (r.decision != INJECT_SKIPPED || strcmp(r.reason, rows[i].reason) != 0)
			fail_msg("row %zu: %d %s (%s), want skipped %s", i, r.decision, r.reason,
			         r.message, rows[i].reason);
		assert_int_equal(json_array_size(r.warnings), rows[i].warnings);
		if (rows[i].warnings > 0)
			assert_contains(json_string_value(json_array_get(r.warnings, 0)),
			                "hostNetwork: true");
		json_decref(pod);
		inject_result_clear(&r);
	}
	injector_free(in);
}

/* The decision table: label, annotation, selectors, policy. */
static void test_decisions(void **state)
{
	static const struct {
		const char *policy, *never, *always; /* settings; "" for an empty list */
		const char *labels, *annotations;    /* JSON objects */
		enum inject_decision want;
		const char *reason;
		const char *message; /* a part of the message */
	} rows[] = {
		{ "enabled", "", "", "{}", "{}", INJECT_INJECTED, "injected", "inject.policy" },
		{ "disabled", "", "", "{}", "{}", INJECT_SKIPPED, "policy_disabled", "policy" },
		/* The label wins over the annotation, both ways. */
		{ "enabled", "", "", "{\"meshlet.io/inject\":\"disabled\"}",
		  "{\"meshlet.io/inject\":\"enabled\"}", INJECT_SKIPPED, "disabled_by_label",
		  "label" },
		{ "enabled", "", "", "{\"meshlet.io/inject\":\"enabled\"}",
		  "{\"meshlet.io/inject\":\"disabled\"}", INJECT_INJECTED, "injected", "label" },
		{ "enabled", "", "", "{}", "{\"meshlet.io/inject\":\"disabled\"}", INJECT_SKIPPED,
		  "disabled_by_annotation", "annotation" },
		{ "disabled", "", "", "{}", "{\"meshlet.io/inject\":\"enabled\"}", INJECT_INJECTED,
		  "injected", "annotation meshlet.io/inject is enabled" },
		{ "disabled", "", "", "{\"meshlet.io/inject\":\"enabled\"}", "{}", INJECT_INJECTED,
		  "injected", "label meshlet.io/inject is enabled" },
		/* Selectors: never wins over always; both give way to label and annotation. */
		{ "enabled", "app=db", "", "{\"app\":\"db\"}", "{}", INJECT_SKIPPED,
		  "never_selector", "\"app=db\"" },
		{ "enabled", "app=db", "", "{\"app\":\"web\"}", "{}", INJECT_INJECTED, "injected",
		  "policy" },
		{ "enabled", "canary", "", "{\"canary\":\"\"}", "{}", INJECT_SKIPPED,
		  "never_selector", "canary" },
		{ "disabled", "", "tier=web,mesh", "{\"mesh\":\"x\"}", "{}", INJECT_INJECTED,
		  "injected", "\"mesh\" of inject.always_selectors" },
		{ "disabled", "", "tier=web", "{\"tier\":\"db\"}", "{}", INJECT_SKIPPED,
		  "policy_disabled", "policy" },
		{ "disabled", "app", "app", "{\"app\":\"web\"}", "{}", INJECT_SKIPPED,
		  "never_selector", "never" },
		{ "enabled", "app", "", "{\"app\":\"web\"}", "{\"meshlet.io/inject\":\"enabled\"}",
		  INJECT_INJECTED, "injected", "annotation" },
		{ "disabled", "", "app", "{\"app\":\"web\"}",
		  "{\"meshlet.io/inject\":\"disabled\"}", INJECT_SKIPPED, "disabled_by_annotation",
		  "annotation" },
		{ "enabled", "example.com/batch=true", "", "{\"example.com/batch\":\"true\"}", "{}",
		  INJECT_SKIPPED, "never_selector", "example.com/batch=true" },
		/* A bad value of meshlet.io/inject denies, from either place. */
		{ "enabled", "", "", "{\"meshlet.io/inject\":\"yes\"}", "{}", INJECT_DENIED,
		  "bad_annotation",
		  "bad label meshlet.io/inject: \"yes\" must be enabled or disabled" },
		{ "enabled", "", "", "{\"meshlet.io/inject\":\"enabled\"}",
		  "{\"meshlet.io/inject\":\"true\"}", INJECT_DENIED, "bad_annotation",
		  "bad annotation meshlet.io/inject: \"true\"" },
		{ "enabled", "", "", "{}", "{\"meshlet.io/inject\":true}", INJECT_DENIED,
		  "bad_annotation", "must be the string enabled or disabled" },
		{ "enabled", "", "", "{}", "{\"meshlet.io/inject\":\"Enabled\"}", INJECT_DENIED,
		  "bad_annotation", "\"Enabled\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *kv[] = { "inject.policy",
			             rows[i].policy,
			             "inject.never_selectors",
			             rows[i].never,
			             "inject.always_selectors",
			             rows[i].always,
			             NULL };
		struct injector *in = injector_with(kv);
		struct inject_result r;
		char text[1024];
		json_t *pod;

		snprintf(text, sizeof(text),
		         "{\"metadata\":{\"name\":\"p\",\"labels\":%s,\"annotations\":%s},"
		         "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
		         rows[i].labels, rows[i].annotations);
		pod = run(in, text, "shop", &r);
		if (r.decision != rows[i].want || strcmp(r.reason, rows[i].reason) != 0)
			fail_msg("row %zu: %d %s (%s), want %d %s", i, r.decision, r.reason,
			         r.message, rows[i].want, rows[i].reason);
		assert_contains(r.message, rows[i].message);
		if (r.decision == INJECT_INJECTED)
			json_decref(check_injected(pod, &r));
		json_decref(pod);
		inject_result_clear(&r);
		injector_free(in);
	}
}

/* ---- tests: annotations ---- */

static void test_bad_annotations(void **state)
{
	static const struct {
		const char *key, *value;
		const char *why;
	} rows[] = {
		{ "meshlet.io/include-inbound-ports", "80,http",
		  "has \"http\", which is not a port" },
		{ "meshlet.io/include-inbound-ports", "*,80", "must be the only item" },
		{ "meshlet.io/exclude-inbound-ports", "*", "may not hold \"*\"" },
		{ "meshlet.io/exclude-outbound-ports", "0", "is not a port number" },
		{ "meshlet.io/exclude-outbound-ports", "70000", "is not a port number" },
		{ "meshlet.io/include-outbound-ip-ranges", "10.0.0.0", "needs a prefix length" },
		{ "meshlet.io/include-outbound-ip-ranges", "10.0.0.0/8,fd00::/200",
		  "\"fd00::/200\"" },
		{ "meshlet.io/exclude-outbound-ip-ranges", "*", "may not hold \"*\"" },
		{ "meshlet.io/proxy-cpu-request", "-1", "is negative" },
		{ "meshlet.io/proxy-memory-request", "10mi", "is not a resource quantity" },
		{ "meshlet.io/proxy-cpu-limit", "1 Gi", "is not a resource quantity" },
		{ "meshlet.io/proxy-memory-limit", "Mi", "is not a resource quantity" },
		{ "meshlet.io/proxy-memory-limit", "", "is not a resource quantity" },
		{ "meshlet.io/native-sidecar", "yes", "must be true or false" },
		{ "meshlet.io/rewrite-probes", "1", "must be true or false" },
		{ "meshlet.io/proxy-image", "evil image", "is not an image reference" },
		{ "meshlet.io/proxy-image", "", "is empty" },
		{ "meshlet.io/log-level", "trace", "must be one of debug, info, warn, error" },
		/* Against the configured limit of 128Mi. */
		{ "meshlet.io/proxy-memory-request", "1Gi",
		  "is more than the proxy's memory limit" },
	};
	struct injector *in = injector_default();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct inject_result r;
		char text[1024], want[256];
		json_t *pod;

		snprintf(text, sizeof(text),
		         "{\"metadata\":{\"annotations\":{\"%s\":\"%s\"}},"
		         "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}]}}",
		         rows[i].key, rows[i].value);
		pod = run(in, text, "shop", &r);
		if (r.decision != INJECT_DENIED)
			fail_msg("row %zu (%s: %s): %s, not denied", i, rows[i].key, rows[i].value,
			         r.reason);
		assert_string_equal(r.reason, "bad_annotation");
		snprintf(want, sizeof(want), "bad annotation %s: \"%s\"", rows[i].key,
		         rows[i].value);
		assert_contains(r.message, want);
		assert_contains(r.message, rows[i].why);
		json_decref(pod);
		inject_result_clear(&r);
	}
	injector_free(in);
}

static void test_bad_annotation_details(void **state)
{
	struct injector *in = injector_default();
	const char *kv[] = { "proxy.cpu_limit", "1", NULL };
	struct injector *limited = injector_with(kv);
	struct inject_result r;
	json_t *pod;

	(void)state;
	/* Every bad annotation is named, in one message. */
	pod = run(in,
	          "{\"metadata\":{\"annotations\":{\"meshlet.io/log-level\":\"loud\","
	          "\"meshlet.io/proxy-cpu-request\":\"1.2.3\",\"meshlet.io/rewrite-probes\":true}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	          NULL, &r);
	assert_int_equal(r.decision, INJECT_DENIED);
	assert_string_equal(
	    r.message,
	    "bad annotation meshlet.io/log-level: \"loud\" must be one of debug, info, warn, "
	    "error; "
	    "bad annotation meshlet.io/proxy-cpu-request: \"1.2.3\" is not a resource quantity (a "
	    "number and an optional suffix, like 100m, 0.5, 128Mi, 1.5G or 1e3); bad annotation "
	    "meshlet.io/rewrite-probes: its value must be a string");
	json_decref(pod);
	inject_result_clear(&r);

	/* Control bytes in a value are escaped in the message. */
	pod = run(in,
	          "{\"metadata\":{\"annotations\":{\"meshlet.io/proxy-image\":\"a\\nb\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	          NULL, &r);
	assert_int_equal(r.decision, INJECT_DENIED);
	assert_contains(r.message, "\"a\\x0ab\"");
	json_decref(pod);
	inject_result_clear(&r);

	/* A limit from the annotation below the configured request. */
	pod = run(limited,
	          "{\"metadata\":{\"annotations\":{\"meshlet.io/proxy-cpu-limit\":\"50m\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	          NULL, &r);
	assert_int_equal(r.decision, INJECT_DENIED);
	assert_string_equal(r.message, "bad annotation meshlet.io/proxy-cpu-limit: \"50m\" is less "
	                               "than the proxy's cpu request 100m");
	json_decref(pod);
	inject_result_clear(&r);

	/* A request from the annotation above the configured limit. */
	pod = run(limited,
	          "{\"metadata\":{\"annotations\":{\"meshlet.io/proxy-cpu-request\":\"1001m\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	          NULL, &r);
	assert_int_equal(r.decision, INJECT_DENIED);
	assert_string_equal(r.message, "bad annotation meshlet.io/proxy-cpu-request: \"1001m\" is "
	                               "more than the proxy's cpu limit 1");
	json_decref(pod);
	inject_result_clear(&r);

	/* A skipped pod's annotations are not looked at. */
	pod = run(in,
	          "{\"metadata\":{\"labels\":{\"meshlet.io/inject\":\"disabled\"},"
	          "\"annotations\":{\"meshlet.io/log-level\":\"loud\"}},"
	          "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	          NULL, &r);
	assert_int_equal(r.decision, INJECT_SKIPPED);
	json_decref(pod);
	inject_result_clear(&r);

	injector_free(limited);
	injector_free(in);
}

/* Good overrides reach the init container's arguments and the proxy. */
static void test_good_annotations(void **state)
{
	static const char pod_text[] =
	    "{\"metadata\":{\"annotations\":{"
	    "\"meshlet.io/include-inbound-ports\":\"8080, 9090\","
	    "\"meshlet.io/exclude-inbound-ports\":\"9091,15021\","
	    "\"meshlet.io/exclude-outbound-ports\":\"5432\","
	    "\"meshlet.io/include-outbound-ip-ranges\":\"10.0.0.0/8,FD00::/8\","
	    "\"meshlet.io/exclude-outbound-ip-ranges\":\"169.254.169.254/32\","
	    "\"meshlet.io/proxy-cpu-request\":\"250m\","
	    "\"meshlet.io/proxy-memory-request\":\"64Mi\","
	    "\"meshlet.io/proxy-cpu-limit\":\"1\","
	    "\"meshlet.io/proxy-memory-limit\":\"0.25Gi\","
	    "\"meshlet.io/proxy-image\":\"registry.example.com/meshlet@sha256:abc\","
	    "\"meshlet.io/log-level\":\"debug\","
	    "\"meshlet.io/typo\":\"x\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}";
	static const char *const want_args[] = {
		"--proxy-uid",
		"1337",
		"--proxy-gid",
		"1337",
		"--inbound-port",
		"15006",
		"--outbound-port",
		"15001",
		"--include-inbound-ports",
		"8080,9090",
		"--exclude-inbound-ports",
		"9091,15021,15008",
		"--exclude-outbound-ports",
		"5432",
		"--include-outbound-cidrs",
		"10.0.0.0/8,fd00::/8",
		"--exclude-outbound-cidrs",
		"169.254.169.254/32",
	};
	struct injector *in = injector_default();
	struct inject_result r;
	json_t *pod = run(in, pod_text, NULL, &r);
	json_t *patched = check_injected(pod, &r);
	const json_t *init = json_object_get(json_object_get(patched, "spec"), "initContainers");
	const json_t *args = json_object_get(json_array_get(init, 0), "args");
	const json_t *proxy = json_array_get(init, 1);
	json_t *want;

	(void)state;
	assert_int_equal(json_array_size(args), sizeof(want_args) / sizeof(want_args[0]));
	for (size_t i = 0; i < sizeof(want_args) / sizeof(want_args[0]); i++)
		assert_string_equal(json_string_value(json_array_get(args, i)), want_args[i]);
	want = load("{\"requests\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"},"
	            "\"limits\":{\"cpu\":\"1\",\"memory\":\"0.25Gi\"}}");
	assert_json_equal(json_object_get(proxy, "resources"), want);
	json_decref(want);
	assert_string_equal(json_string_value(json_object_get(proxy, "image")),
	                    "registry.example.com/meshlet@sha256:abc");
	assert_string_equal(json_string_value(json_object_get(json_array_get(init, 0), "image")),
	                    "registry.example.com/meshlet@sha256:abc");
	assert_string_equal(env_value(proxy, "MESHLET_LOG_LEVEL"), "debug");
	/* An unknown meshlet.io/ annotation is a warning, not a denial. */
	assert_int_equal(json_array_size(r.warnings), 1);
	assert_contains(json_string_value(json_array_get(r.warnings, 0)), "meshlet.io/typo");
	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

/* Empty lists: no capture of anything inbound, the exclude flags left out. */
static void test_empty_lists(void **state)
{
	struct injector *in = injector_yaml("capture:\n  include_inbound_ports: []\n"
	                                    "proxy:\n  memory_limit: \"\"\n");
	struct inject_result r;
	json_t *pod = run(in,
	                  "{\"metadata\":{\"annotations\":{"
	                  "\"meshlet.io/include-outbound-ip-ranges\":\"\"}},"
	                  "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	                  NULL, &r);
	json_t *patched = check_injected(pod, &r);
	const json_t *init = json_object_get(json_object_get(patched, "spec"), "initContainers");
	json_t *want =
	    load("[\"--proxy-uid\",\"1337\",\"--proxy-gid\",\"1337\",\"--inbound-port\","
	         "\"15006\",\"--outbound-port\",\"15001\",\"--include-inbound-ports\",\"\","
	         "\"--exclude-inbound-ports\",\"15008,15021\","
	         "\"--include-outbound-cidrs\",\"\"]");

	(void)state;
	assert_json_equal(json_object_get(json_array_get(init, 0), "args"), want);
	json_decref(want);
	want = load("{\"requests\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"}}");
	assert_json_equal(json_object_get(json_array_get(init, 1), "resources"), want);
	json_decref(want);
	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

/* The proxy's env names, in order, as one comma-separated string. */
static void env_names(const json_t *container, char *buf, size_t size)
{
	const json_t *env = json_object_get(container, "env");
	size_t pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < json_array_size(env) && pos < size; i++)
		pos += (size_t)snprintf(
		    buf + pos, size - pos, "%s%s", i ? "," : "",
		    json_string_value(json_object_get(json_array_get(env, i), "name")));
}

/*
 * mesh.service_ranges reaches the proxy as MESHLET_SERVICE_RANGES: the CIDRs joined with
 * commas, addresses written canonically, at a fixed place in the env (after the shared
 * entries, before MESHLET_LOG_LEVEL); an empty list sets no variable.
 */
static void test_service_ranges(void **state)
{
	static const char want_names[] =
	    "MESHLET_POD_NAME,MESHLET_POD_NAMESPACE,MESHLET_POD_IP,MESHLET_SERVICE_ACCOUNT,"
	    "MESHLET_CA_ADDRESS,MESHLET_TRUST_DOMAIN,MESHLET_TRUST_BUNDLE,MESHLET_TOKEN_FILE,"
	    "MESHLET_POLICY_PATHS,MESHLET_POD_LABELS_FILE,MESHLET_SERVICE_RANGES,"
	    "MESHLET_LOG_LEVEL,MESHLET_HTTP_PORTS";
	static const char pod[] =
	    "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":\"app\","
	    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080}]}]}}";
	struct injector *in = injector_yaml("mesh:\n  service_ranges: [10.0.0.0/16, "
	                                    "\"FD00:10:96::/112\", 172.20.0.0/16]\n");
	struct injector *none = injector_yaml("mesh:\n  service_ranges: []\n");
	struct injector *flag = injector_with(
	    (const char *const[]){ "mesh.service_ranges", "192.168.0.0/20,fd00::/108", NULL });
	struct inject_result r, r2;
	json_t *p, *patched;
	const json_t *proxy;
	char names[1024];

	(void)state;
	p = run(in, pod, "shop", &r);
	patched = check_injected(p, &r);
	proxy =
	    json_array_get(json_object_get(json_object_get(patched, "spec"), "initContainers"), 1);
	assert_string_equal(env_value(proxy, "MESHLET_SERVICE_RANGES"),
	                    "10.0.0.0/16,fd00:10:96::/112,172.20.0.0/16");
	env_names(proxy, names, sizeof(names));
	assert_string_equal(names, want_names);
	/* The same pod gives the same patch, byte for byte, as text too. */
	assert_int_equal(injector_pod_text(in, p, "shop", &r2), 0);
	assert_non_null(r2.patch_text);
	assert_int_equal(r2.patch_len, r.patch_len);
	assert_memory_equal(r2.patch_text, r.patch_text, r.patch_len);
	inject_result_clear(&r2);
	json_decref(patched);
	json_decref(p);
	inject_result_clear(&r);

	/* Classic mode: the proxy container gets the same env. */
	p = run(in,
	        "{\"metadata\":{\"annotations\":{\"meshlet.io/native-sidecar\":\"false\"}},"
	        "\"spec\":{\"containers\":[{\"name\":\"app\"}]}}",
	        NULL, &r);
	patched = check_injected(p, &r);
	proxy = json_array_get(json_object_get(json_object_get(patched, "spec"), "containers"), 1);
	assert_string_equal(json_string_value(json_object_get(proxy, "name")), "meshlet-proxy");
	assert_string_equal(env_value(proxy, "MESHLET_SERVICE_RANGES"),
	                    "10.0.0.0/16,fd00:10:96::/112,172.20.0.0/16");
	json_decref(patched);
	json_decref(p);
	inject_result_clear(&r);

	/* Set as a flag would set it: comma-separated. */
	p = run(flag, pod_minimal, NULL, &r);
	patched = check_injected(p, &r);
	proxy =
	    json_array_get(json_object_get(json_object_get(patched, "spec"), "initContainers"), 1);
	assert_string_equal(env_value(proxy, "MESHLET_SERVICE_RANGES"),
	                    "192.168.0.0/20,fd00::/108");
	json_decref(patched);
	json_decref(p);
	inject_result_clear(&r);

	/* An empty list: no variable at all, and the rest of the env as before. */
	p = run(none, pod, "shop", &r);
	patched = check_injected(p, &r);
	proxy =
	    json_array_get(json_object_get(json_object_get(patched, "spec"), "initContainers"), 1);
	assert_null(find_named(json_object_get(proxy, "env"), "MESHLET_SERVICE_RANGES"));
	assert_null(strstr(r.patch_text, "MESHLET_SERVICE_RANGES"));
	env_names(proxy, names, sizeof(names));
	assert_string_equal(names, "MESHLET_POD_NAME,MESHLET_POD_NAMESPACE,MESHLET_POD_IP,"
	                           "MESHLET_SERVICE_ACCOUNT,MESHLET_CA_ADDRESS,"
	                           "MESHLET_TRUST_DOMAIN,MESHLET_TRUST_BUNDLE,MESHLET_TOKEN_FILE,"
	                           "MESHLET_POLICY_PATHS,MESHLET_POD_LABELS_FILE,"
	                           "MESHLET_LOG_LEVEL,MESHLET_HTTP_PORTS");
	json_decref(patched);
	json_decref(p);
	inject_result_clear(&r);

	injector_free(in);
	injector_free(none);
	injector_free(flag);
}

/* ---- tests: probes ---- */

static const char pod_probes[] =
    "{\"metadata\":{\"name\":\"p\"},\"spec\":{"
    "\"initContainers\":[{\"name\":\"setup\",\"image\":\"busybox\"},"
    "{\"name\":\"logship\",\"image\":\"ship\",\"restartPolicy\":\"Always\","
    "\"ports\":[{\"name\":\"admin\",\"containerPort\":9000}],"
    "\"readinessProbe\":{\"httpGet\":{\"path\":\"/ok\",\"port\":\"admin\"}}}],"
    "\"containers\":["
    "{\"name\":\"web\",\"image\":\"nginx\","
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080}],"
    "\"livenessProbe\":{\"httpGet\":{\"path\":\"/live\",\"port\":\"http\",\"scheme\":\"HTTP\","
    "\"httpHeaders\":[{\"name\":\"X-Probe\",\"value\":\"1\"}]},\"periodSeconds\":7,"
    "\"failureThreshold\":2},"
    "\"readinessProbe\":{\"tcpSocket\":{\"port\":8080},\"initialDelaySeconds\":3},"
    "\"startupProbe\":{\"exec\":{\"command\":[\"cat\",\"/ready\"]}}},"
    "{\"name\":\"db\",\"image\":\"postgres\","
    "\"ports\":[{\"containerPort\":5432}],"
    "\"readinessProbe\":{\"httpGet\":{\"path\":\"/m\",\"port\":\"metrics\"}},"
    "\"livenessProbe\":{\"grpc\":{\"port\":5000}},"
    "\"startupProbe\":{\"tcpSocket\":{\"port\":5432}}},"
    "{\"name\":\"ext\",\"image\":\"x\","
    "\"livenessProbe\":{\"httpGet\":{\"host\":\"example.com\",\"path\":\"/\",\"port\":80}}}"
    "]}}";

static void test_probes_rewritten(void **state)
{
	struct injector *in = injector_default();
	struct inject_result r;
	json_t *pod = run(in, pod_probes, "shop", &r);
	json_t *patched = check_injected(pod, &r);
	const json_t *spec = json_object_get(patched, "spec");
	const json_t *containers = json_object_get(spec, "containers");
	const json_t *proxy = find_named(json_object_get(spec, "initContainers"), "meshlet-proxy");
	const json_t *db = json_array_get(containers, 1);
	json_t *want, *got;

	(void)state;
	/* Replaces first, at the indexes the pod has, then the insertions. */
	assert_string_equal(op_path(&r, 0), "/spec/containers/0/livenessProbe");
	assert_string_equal(op_path(&r, 1), "/spec/containers/0/readinessProbe");
	assert_string_equal(op_path(&r, 2), "/spec/containers/1/startupProbe");
	assert_string_equal(op_path(&r, 3), "/spec/initContainers/1/readinessProbe");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r.patch, 0), "op")),
	                    "replace");
	assert_string_equal(op_path(&r, 4), "/spec/initContainers/0");

	want = load("{\"httpGet\":{\"path\":\"/app-health/web/livez\",\"port\":15021,"
	            "\"scheme\":\"HTTP\"},\"periodSeconds\":7,\"failureThreshold\":2}");
	assert_json_equal(json_object_get(json_array_get(containers, 0), "livenessProbe"), want);
	json_decref(want);
	want = load("{\"httpGet\":{\"path\":\"/app-health/web/readyz\",\"port\":15021,"
	            "\"scheme\":\"HTTP\"},\"initialDelaySeconds\":3}");
	assert_json_equal(json_object_get(json_array_get(containers, 0), "readinessProbe"), want);
	json_decref(want);
	/* exec, grpc, an unknown named port and another host: left as they were. */
	assert_json_equal(
	    json_object_get(json_array_get(containers, 0), "startupProbe"),
	    json_object_get(
	        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0),
	        "startupProbe"));
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(db, "readinessProbe"), "httpGet"), "port")),
	    "metrics");
	assert_non_null(json_object_get(json_object_get(db, "livenessProbe"), "grpc"));
	assert_int_equal(
	    json_integer_value(json_object_get(
	        json_object_get(json_object_get(json_array_get(containers, 2), "livenessProbe"),
	                        "httpGet"),
	        "port")),
	    80);

	want =
	    load("{\"/app-health/web/livez\":{\"httpGet\":{\"path\":\"/live\",\"port\":8080,"
	         "\"scheme\":\"HTTP\",\"httpHeaders\":[{\"name\":\"X-Probe\",\"value\":\"1\"}]}},"
	         "\"/app-health/web/readyz\":{\"tcpSocket\":{\"port\":8080}},"
	         "\"/app-health/db/startupz\":{\"tcpSocket\":{\"port\":5432}},"
	         "\"/app-health/logship/readyz\":{\"httpGet\":{\"path\":\"/ok\",\"port\":9000}}}");
	assert_non_null(env_value(proxy, "MESHLET_APP_PROBES"));
	got = load(env_value(proxy, "MESHLET_APP_PROBES"));
	assert_json_equal(got, want);
	json_decref(got);
	json_decref(want);

	assert_int_equal(json_array_size(r.warnings), 2);
	assert_contains(json_string_value(json_array_get(r.warnings, 0)), "grpc livenessProbe");
	assert_contains(json_string_value(json_array_get(r.warnings, 1)),
	                "readinessProbe port \"metrics\" is not one of the container's ports");
	json_decref(patched);
	json_decref(pod);
	inject_result_clear(&r);
	injector_free(in);
}

static void test_probes_not_rewritten(void **state)
{
	static const struct {
		const char *config_rewrite, *config_native, *annotations;
		size_t replaces; /* probe replaces expected */
	} rows[] = {
		{ "true", "true", "{}", 4 },
		{ "false", "true", "{}", 0 },
		{ "true", "true", "{\"meshlet.io/rewrite-probes\":\"false\"}", 0 },
		{ "false", "true", "{\"meshlet.io/rewrite-probes\":\"true\"}", 4 },
		/* Classic mode: the user's sidecar starts before the proxy, so it is left. */
		{ "true", "false", "{}", 3 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *kv[] = { "inject.rewrite_probes", rows[i].config_rewrite,
			             "inject.native_sidecar", rows[i].config_native, NULL };
		struct injector *in = injector_with(kv);
		struct inject_result r;
		json_t *base = load(pod_probes), *pod, *patched;
		const json_t *proxy;
		size_t replaces = 0;
		char *text;

		json_object_set_new(json_object_get(base, "metadata"), "annotations",
		                    load(rows[i].annotations));
		text = json_dumps(base, JSON_COMPACT);
		pod = run(in, text, NULL, &r);
		patched = check_injected(pod, &r);
		for (size_t j = 0; j < json_array_size(r.patch); j++)
			replaces += strcmp(json_string_value(
			                       json_object_get(json_array_get(r.patch, j), "op")),
			                   "replace") == 0;
		if (replaces != rows[i].replaces)
			fail_msg("row %zu: %zu replaces, want %zu", i, replaces, rows[i].replaces);
		proxy = find_named(json_object_get(json_object_get(patched, "spec"),
		                                   strcmp(rows[i].config_native, "true") == 0
		                                       ? "initContainers"
		                                       : "containers"),
		                   "meshlet-proxy");
		assert_int_equal(env_value(proxy, "MESHLET_APP_PROBES") != NULL, replaces > 0);
		free(text);
		json_decref(base);
		json_decref(patched);
		json_decref(pod);
		inject_result_clear(&r);
		injector_free(in);
	}
}

/* ---- tests: denials ---- */

static void test_conflicts_and_malformed(void **state)
{
	static const struct {
		const char *pod;
		const char *reason;
		const char *message;
	} rows[] = {
		{ "{\"spec\":{\"containers\":[{\"name\":\"meshlet-init\"}]}}", "name_conflict",
		  "a container is already named meshlet-init" },
		{ "{\"spec\":{\"initContainers\":[{\"name\":\"meshlet-init\"}],"
		  "\"containers\":[{\"name\":\"a\"}]}}",
		  "name_conflict", "meshlet-init" },
		{ "{\"spec\":{\"volumes\":[{\"name\":\"meshlet-certs\"}],"
		  "\"containers\":[{\"name\":\"a\"}]}}",
		  "name_conflict", "a volume is already named meshlet-certs" },
		{ "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":15021}]"
		  "}]}}",
		  "port_conflict", "container a declares port 15021" },
		{ "[]", "malformed_pod", "not a JSON object" },
		{ "{\"metadata\":{}}", "malformed_pod", "no spec" },
		{ "{\"spec\":{\"containers\":[]}}", "malformed_pod", "spec.containers" },
		{ "{\"spec\":{\"containers\":{}}}", "malformed_pod", "spec.containers" },
		{ "{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}", "malformed_pod",
		  "with a name" },
		{ "{\"spec\":{\"containers\":[{\"name\":7}]}}", "malformed_pod", "with a name" },
		{ "{\"spec\":{\"containers\":[\"a\"]}}", "malformed_pod", "with a name" },
		{ "{\"metadata\":{\"annotations\":[]},\"spec\":{\"containers\":[{\"name\":\"a\"}]}"
		  "}",
		  "malformed_pod", "annotations" },
		{ "{\"metadata\":\"x\",\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
		  "malformed_pod", "metadata" },
		{ "{\"spec\":{\"initContainers\":{},\"containers\":[{\"name\":\"a\"}]}}",
		  "malformed_pod", "initContainers" },
		{ "{\"spec\":{\"volumes\":[{}],\"containers\":[{\"name\":\"a\"}]}}",
		  "malformed_pod", "volumes" },
	};
	struct injector *in = injector_default();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct inject_result r;
		json_t *pod = run(in, rows[i].pod, "shop", &r);

		if (r.decision != INJECT_DENIED || strcmp(r.reason, rows[i].reason) != 0)
			fail_msg("row %zu: %d %s (%s), want denied %s", i, r.decision, r.reason,
			         r.message, rows[i].reason);
		assert_contains(r.message, rows[i].message);
		json_decref(pod);
		inject_result_clear(&r);
	}
	injector_free(in);
}

static void test_injector_new_errors(void **state)
{
	struct settings s = { 0 };
	struct config c;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(config_init(&c, &settings_schema, &s), 0);
	assert_null(injector_new(&s, NULL, &e));
	assert_int_equal(e.code, ERR_INJECT_BUNDLE);
	assert_null(injector_new(&s, "not pem", &e));
	assert_int_equal(e.code, ERR_INJECT_BUNDLE);
	/* Settings filled by hand, past the validators, are checked again. */
	free(s.proxy_cpu_request);
	s.proxy_cpu_request = strdup("lots");
	assert_null(injector_new(&s, BUNDLE, &e));
	assert_int_equal(e.code, ERR_INJECT_SETTINGS);
	assert_contains(e.msg, "proxy.cpu_request: \"lots\" is not a resource quantity");
	free(s.proxy_cpu_request);
	s.proxy_cpu_request = strdup("100m");
	free(s.service_ranges.items[0]);
	s.service_ranges.items[0] = strdup("*");
	assert_null(injector_new(&s, BUNDLE, &e));
	assert_int_equal(e.code, ERR_INJECT_SETTINGS);
	assert_contains(e.msg, "mesh.service_ranges: may not hold \"*\"");
	injector_free(NULL);
	config_release(&c);
	config_free(&settings_schema, &s);
}

/* ---- tests: the applier ---- */

static void test_apply_patch(void **state)
{
	static const struct {
		const char *doc, *patch;
		const char *want; /* the result, or NULL for an error */
		int code;
	} rows[] = {
		{ "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/-\",\"value\":3}]",
		  "{\"a\":[1,2,3]}", 0 },
		{ "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":0}]",
		  "{\"a\":[0,1,2]}", 0 },
		{ "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":3}]",
		  "{\"a\":[1,2,3]}", 0 },
		{ "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/3\",\"value\":3}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/01\",\"value\":3}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{\"a\":[1,2]}", "[{\"op\":\"replace\",\"path\":\"/a/1\",\"value\":5}]",
		  "{\"a\":[1,5]}", 0 },
		{ "{\"a\":[1,2]}", "[{\"op\":\"replace\",\"path\":\"/a/2\",\"value\":5}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"a\":[1,2]}", "[{\"op\":\"replace\",\"path\":\"/a/-\",\"value\":5}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/0\"}]", "{\"a\":[2]}", 0 },
		{ "{}", "[{\"op\":\"add\",\"path\":\"/m/k\",\"value\":1}]", NULL, ERR_PATCH_PATH },
		{ "{\"m\":null}", "[{\"op\":\"add\",\"path\":\"/m/k\",\"value\":1}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"m\":null}", "[{\"op\":\"add\",\"path\":\"/m\",\"value\":{\"k\":1}}]",
		  "{\"m\":{\"k\":1}}", 0 },
		{ "{}", "[{\"op\":\"replace\",\"path\":\"/x\",\"value\":1}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"x\":1}", "[{\"op\":\"remove\",\"path\":\"/y\"}]", NULL, ERR_PATCH_PATH },
		{ "{\"a/b\":{\"~\":1}}", "[{\"op\":\"replace\",\"path\":\"/a~1b/~0\",\"value\":2}]",
		  "{\"a/b\":{\"~\":2}}", 0 },
		{ "{}", "[{\"op\":\"add\",\"path\":\"/~2\",\"value\":1}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{}", "[{\"op\":\"add\",\"path\":\"/~\",\"value\":1}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{}", "[{\"op\":\"add\",\"path\":\"x\",\"value\":1}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{}", "[{\"op\":\"add\",\"path\":\"/x\"}]", NULL, ERR_PATCH_MALFORMED },
		{ "{}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/x\"}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{}", "[{\"op\":\"merge\",\"path\":\"/x\",\"value\":1}]", NULL,
		  ERR_PATCH_MALFORMED },
		{ "{}", "[{\"path\":\"/x\",\"value\":1}]", NULL, ERR_PATCH_MALFORMED },
		{ "{}", "{\"op\":\"add\"}", NULL, ERR_PATCH_MALFORMED },
		{ "{\"x\":{\"y\":[1]}}", "[{\"op\":\"test\",\"path\":\"/x/y\",\"value\":[1]}]",
		  "{\"x\":{\"y\":[1]}}", 0 },
		{ "{\"x\":{\"y\":[1]}}", "[{\"op\":\"test\",\"path\":\"/x/y/0\",\"value\":2}]",
		  NULL, ERR_PATCH_TEST },
		{ "{\"x\":1}", "[{\"op\":\"test\",\"path\":\"\",\"value\":{\"x\":1}}]", "{\"x\":1}",
		  0 },
		{ "{\"x\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[]}]", "[]", 0 },
		{ "{\"x\":\"s\"}", "[{\"op\":\"add\",\"path\":\"/x/y\",\"value\":1}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"a\":[{\"b\":1}]}", "[{\"op\":\"add\",\"path\":\"/a/0/c\",\"value\":2}]",
		  "{\"a\":[{\"b\":1,\"c\":2}]}", 0 },
		{ "{\"a\":[{\"b\":1}]}", "[{\"op\":\"add\",\"path\":\"/a/1/c\",\"value\":2}]", NULL,
		  ERR_PATCH_PATH },
		{ "{\"a\":[{\"b\":1}]}", "[{\"op\":\"add\",\"path\":\"/a/-/c\",\"value\":2}]", NULL,
		  ERR_PATCH_PATH },
		/* Atomic: a failure in the second op leaves nothing of the first. */
		{ "{\"a\":1}",
		  "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},{\"op\":\"remove\",\"path\":\"/"
		  "c\"}]",
		  NULL, ERR_PATCH_PATH },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *doc = load(rows[i].doc), *patch = load(rows[i].patch);
		json_t *before = json_deep_copy(doc);
		struct err e = { 0 };
		json_t *out = inject_apply_patch(doc, patch, &e);

		if (rows[i].want != NULL) {
			json_t *want = load(rows[i].want);

			if (out == NULL)
				fail_msg("row %zu: %s", i, e.msg);
			assert_json_equal(out, want);
			json_decref(want);
		} else {
			if (out != NULL || e.code != rows[i].code)
				fail_msg("row %zu: code %d (%s), want %d", i, e.code, e.msg,
				         rows[i].code);
		}
		assert_json_equal(doc, before);
		json_decref(out);
		json_decref(before);
		json_decref(doc);
		json_decref(patch);
	}
}

static void test_builder_errors(void **state)
{
	const char *segs[] = { "spec", "containers" };
	json_t *doc = load("{\"spec\":{\"containers\":\"x\"}}");
	json_t *doc2 = load("{\"spec\":{\"containers\":[1]}}");
	const struct patch_value one = { NULL, "1", 1 }, a = { "a", "1", 1 };
	const struct patch_value two_three[] = { { NULL, "2", 1 }, { NULL, "3", 1 } };
	struct patch p;
	json_t *patch;
	char *text;
	size_t len;

	(void)state;
	patch_init(&p);
	assert_int_equal(patch_insert(&p, doc, segs, 2, PATCH_END, &one, 1), ERR_PATCH_PATH);
	assert_int_equal(patch_add_members(&p, doc, segs, 2, &a, 1), ERR_PATCH_PATH);
	assert_int_equal(patch_insert(&p, doc2, segs, 2, 2, &one, 1), ERR_PATCH_PATH);
	assert_int_equal(patch_insert(&p, doc2, segs, 2, 1, two_three, 2), 0);
	text = patch_finish(&p, &len);
	assert_non_null(text);
	patch = load(text);
	assert_string_equal(json_string_value(json_object_get(json_array_get(patch, 1), "path")),
	                    "/spec/containers/2");
	assert_int_equal(json_array_size(patch), 2);
	assert_int_equal(p.ops, 0); /* patch_finish leaves it empty */
	free(text);
	json_decref(patch);
	json_decref(doc);
	json_decref(doc2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_pod),
		cmocka_unit_test(test_existing_items),
		cmocka_unit_test(test_annotation_keys_escaped),
		cmocka_unit_test(test_generate_name_and_no_metadata),
		cmocka_unit_test(test_native_and_classic),
		cmocka_unit_test(test_reinject_gives_no_patch),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_decisions),
		cmocka_unit_test(test_bad_annotations),
		cmocka_unit_test(test_bad_annotation_details),
		cmocka_unit_test(test_good_annotations),
		cmocka_unit_test(test_empty_lists),
		cmocka_unit_test(test_service_ranges),
		cmocka_unit_test(test_probes_rewritten),
		cmocka_unit_test(test_probes_not_rewritten),
		cmocka_unit_test(test_conflicts_and_malformed),
		cmocka_unit_test(test_injector_new_errors),
		cmocka_unit_test(test_apply_patch),
		cmocka_unit_test(test_builder_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
