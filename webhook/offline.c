/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-webhook inject`: the same injection into manifests on disk, YAML in and out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meshlet/cli.h"
#include "meshlet/file.h"
#include "meshlet/yamljson.h"

#include "inject.h"
#include "offline.h"
#include "settings.h"

#define PROG               "meshlet-webhook inject"
#define OFFLINE_INPUT_MAX  (16 * 1024 * 1024)
#define OFFLINE_BUNDLE_MAX (1024 * 1024)
/* Lists inside lists are not Kubernetes, but bound them anyway. */
#define OFFLINE_DEPTH_MAX 4

static const char offline_usage[] =
    "Usage: meshlet-webhook inject -f FILE|- [-o FILE] [--config FILE]\n"
    "Inject the meshlet sidecar into the pod templates of Kubernetes manifests, with the\n"
    "same code and configuration as the admission webhook, and write them as YAML.\n"
    "Reads multi-document YAML or JSON: Pod, Deployment, StatefulSet, DaemonSet,\n"
    "ReplicaSet, ReplicationController, Job, CronJob and List; other kinds pass through\n"
    "unchanged. Skips are reported on stderr; a pod the webhook would deny is an error.\n"
    "\n"
    "  -f, --filename FILE   the manifests ('-' reads standard input)\n"
    "  -o, --output FILE     where to write (default standard output)\n"
    "  --config FILE         the webhook's configuration (docs/configuration.md)\n";

struct offline {
	const struct injector *in;
	const char *source;
	int denied;
	int injected;
};

/* Where a workload keeps its pod template, by kind. */
static json_t *offline_template(json_t *obj, const char *kind)
{
	static const char *const direct[] = { "Deployment", "StatefulSet",           "DaemonSet",
		                              "ReplicaSet", "ReplicationController", "Job" };

	for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
		if (strcmp(kind, direct[i]) == 0)
			return json_object_get(json_object_get(obj, "spec"), "template");
	if (strcmp(kind, "CronJob") == 0)
		return json_object_get(
		    json_object_get(json_object_get(json_object_get(obj, "spec"), "jobTemplate"),
		                    "spec"),
		    "template");
	return NULL;
}

/* Injects into one pod-shaped object in place (a Pod, or a template). */
static void offline_pod(struct offline *o, json_t *pod, const char *kind, const char *ns,
                        const char *name)
{
	struct inject_result r = { 0 };
	struct err e = { 0 };
	json_t *patched, *v;
	const char *key;
	size_t i;

	if (!json_is_object(json_object_get(pod, "metadata")))
		json_object_set_new(pod, "metadata", json_object());
	if (injector_pod(o->in, pod, ns, &r) < 0) {
		fprintf(stderr, "%s: %s %s/%s: cannot read the pod: %s\n", o->source, kind, ns,
		        name, r.message);
		o->denied++;
		goto out;
	}
	json_array_foreach(r.warnings, i, v)
		fprintf(stderr, "%s: %s %s/%s: warning: %s\n", o->source, kind, ns, name,
		        json_string_value(v));
	if (r.decision == INJECT_DENIED) {
		fprintf(stderr, "%s: %s %s/%s: denied: %s\n", o->source, kind, ns, name, r.message);
		o->denied++;
		goto out;
	}
	if (r.decision == INJECT_SKIPPED) {
		fprintf(stderr, "%s: %s %s/%s: skipped: %s\n", o->source, kind, ns, name,
		        r.message);
		goto out;
	}
	patched = inject_apply_patch(pod, r.patch, &e);
	if (patched == NULL) {
		fprintf(stderr, "%s: %s %s/%s: %s\n", o->source, kind, ns, name, e.msg);
		o->denied++;
		goto out;
	}
	/* Replace the members in place, so that the document keeps its other keys' order. */
	json_object_clear(pod);
	json_object_foreach(patched, key, v)
		json_object_set(pod, key, v);
	json_decref(patched);
	o->injected++;
out:
	inject_result_clear(&r);
}

static void offline_object(struct offline *o, json_t *obj, unsigned depth)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	json_t *tmpl, *item;
	size_t i;

	if (kind == NULL || depth > OFFLINE_DEPTH_MAX)
		return;
	if (ns == NULL)
		ns = "default";
	if (name == NULL)
		name = "(unnamed)";
	if (strcmp(kind, "List") == 0 ||
	    (strlen(kind) > 4 && !strcmp(kind + strlen(kind) - 4, "List"))) {
		json_array_foreach(json_object_get(obj, "items"), i, item)
			offline_object(o, item, depth + 1);
		return;
	}
	if (strcmp(kind, "Pod") == 0) {
		offline_pod(o, obj, kind, ns, name);
		return;
	}
	tmpl = offline_template(obj, kind);
	if (json_is_object(tmpl))
		offline_pod(o, tmpl, kind, ns, name);
}

int offline_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *input = NULL, *output = NULL, *config = NULL;
	struct settings cfg = { 0 };
	struct offline o = { 0 };
	struct injector *in = NULL;
	struct yamljson_doc *docs = NULL;
	size_t ndocs = 0, len = 0, bundle_len = 0, out_len = 0;
	char *text = NULL, *bundle = NULL, *out = NULL;
	json_t **values = NULL;
	struct err e = { 0 };
	FILE *f = NULL;
	int status = 1;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":f:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			input = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			fputs(offline_usage, stdout);
			return 0;
		default:
			fprintf(stderr,
			        PROG ": %s %s\nRun 'meshlet-webhook inject --help' for usage.\n",
			        opt == ':' ? "option needs a value:" : "unknown option",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (input == NULL || optind < argc) {
		fprintf(stderr, PROG ": give the manifests with -f FILE (or -f - for standard "
		                     "input)\nRun 'meshlet-webhook inject --help' for usage.\n");
		return 2;
	}
	if (cli_load_settings(&settings_schema, &cfg, config, NULL, 0) < 0)
		goto out;
	if (file_read(cfg.trust_bundle_file, OFFLINE_BUNDLE_MAX, &bundle, &bundle_len, &e) < 0) {
		fprintf(stderr, PROG ": mesh.trust_bundle_file: %s\n", e.msg);
		goto out;
	}
	in = injector_new(&cfg, bundle, &e);
	if (in == NULL) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	o.in = in;
	o.source = strcmp(input, "-") == 0 ? "<stdin>" : input;
	if (file_read(strcmp(input, "-") == 0 ? "/dev/stdin" : input, OFFLINE_INPUT_MAX, &text,
	              &len, &e) < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	if (yamljson_parse(o.source, text, len, &docs, &ndocs, &e) < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	values = calloc(ndocs + 1, sizeof(*values));
	if (values == NULL)
		goto out;
	for (size_t i = 0; i < ndocs; i++) {
		offline_object(&o, docs[i].value, 0);
		values[i] = docs[i].value;
	}
	if (o.denied > 0) {
		fprintf(stderr, PROG ": %d pod%s would be denied; nothing written\n", o.denied,
		        o.denied == 1 ? "" : "s");
		goto out;
	}
	if (yamljson_emit_docs(values, ndocs, &out, &out_len, &e) < 0) {
		fprintf(stderr, PROG ": %s\n", e.msg);
		goto out;
	}
	f = output != NULL ? fopen(output, "w") : stdout;
	if (f == NULL || fwrite(out, 1, out_len, f) != out_len || fflush(f) != 0) {
		fprintf(stderr, PROG ": cannot write %s\n", output != NULL ? output : "the output");
		goto out;
	}
	status = 0;
out:
	if (f != NULL && f != stdout)
		fclose(f);
	free(out);
	free(values);
	yamljson_docs_free(docs, ndocs);
	free(text);
	free(bundle);
	injector_free(in);
	config_free(&settings_schema, &cfg);
	return status;
}
