/* SPDX-License-Identifier: Apache-2.0 */
/* AdmissionReview handling: validation of the request, the injector's decision, the answer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meshlet/jparse.h"

#include "jarena.h"
#include "meshlet/jwrite.h"
#include "review.h"

#define REVIEW_API_VERSION "admission.k8s.io/v1"

static void review_error(struct review_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void review_error(struct review_result *r, const char *fmt, ...)
{
	struct jwrite w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	r->status = 400;
	r->decision = "error";
	snprintf(r->reason, sizeof(r->reason), "malformed");
	jwrite_init(&w, sizeof(r->message) + 64);
	jwrite_lit(&w, "{\"error\":\"bad_request\",\"message\":");
	jwrite_str(&w, r->message);
	jwrite_lit(&w, "}");
	free(r->body);
	r->body = jwrite_take(&w, NULL);
}

/* Copies a string member into buf when it is one; returns whether it was. */
static bool review_str(json_t *obj, const char *key, char *buf, size_t size)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s == NULL)
		return false;
	snprintf(buf, size, "%s", s);
	return true;
}

/* The wrong type of an optional member, or NULL when it is absent or of the right type. */
static const char *review_bad_type(json_t *obj, const char *key, json_type want)
{
	json_t *v = json_object_get(obj, key);

	return v == NULL || json_typeof(v) == want ? NULL : key;
}

/*
 * Writes the answer: an AdmissionReview whose response has uid (the request's, whole),
 * allowed, the audit annotations, then patchType, status, warnings and the base64 patch
 * when they are given. Written as text in one buffer: building jansson trees for it and
 * dumping them, with the patch through a constant-time base64, was most of a review's time.
 */
static void review_answer(struct review_result *r, const json_t *uid, bool allowed,
                          json_t *warnings, const char *patch, size_t patch_len)
{
	struct jwrite w;

	jwrite_init(&w, 1024 + patch_len / 3 * 4);
	jwrite_lit(&w, "{\"apiVersion\":\"" REVIEW_API_VERSION
	               "\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
	jwrite_string(&w, json_string_value(uid), json_string_length(uid));
	if (allowed)
		jwrite_lit(&w, ",\"allowed\":true");
	else
		jwrite_lit(&w, ",\"allowed\":false");
	/* auditAnnotations keys have no '/': the API server prefixes them with the webhook's name.
	 */
	jwrite_lit(&w, ",\"auditAnnotations\":{\"decision\":");
	jwrite_str(&w, r->decision);
	jwrite_lit(&w, ",\"reason\":");
	jwrite_str(&w, r->reason);
	jwrite_lit(&w, "}");
	if (patch != NULL)
		jwrite_lit(&w, ",\"patchType\":\"JSONPatch\"");
	if (!allowed) {
		jwrite_lit(&w, ",\"status\":{\"code\":400,\"reason\":\"BadRequest\",\"message\":");
		jwrite_str(&w, r->message);
		jwrite_lit(&w, "}");
	}
	if (json_array_size(warnings) > 0) {
		jwrite_lit(&w, ",\"warnings\":");
		jwrite_value(&w, warnings);
	}
	if (patch != NULL) {
		jwrite_lit(&w, ",\"patch\":");
		jwrite_base64(&w, patch, patch_len);
	}
	jwrite_lit(&w, "}}");
	r->status = 200;
	r->body = jwrite_take(&w, NULL);
	if (r->body == NULL)
		review_error(r, "out of memory");
}

void review_handle(const struct injector *in, const char *body, size_t len, struct review_result *r)
{
	struct inject_result ir = { 0 };
	json_t *doc, *req, *kind, *pod;
	struct jparse_error je;
	const char *bad;
	char group[64] = "", version[16] = "", resource[64] = "", subresource[64] = "";

	memset(r, 0, sizeof(*r));
	/* Every jansson value of this review is released before jarena_end, at out. */
	jarena_begin();
	doc = jparse_load(body, len, &je);
	if (doc == NULL) {
		review_error(r, "the body is not JSON: %s (line %d, column %d)", je.text, je.line,
		             je.column);
		goto out;
	}
	if (!json_is_object(doc)) {
		review_error(r, "the body must be a JSON object (an AdmissionReview)");
		goto out;
	}
	if (json_string_value(json_object_get(doc, "kind")) == NULL ||
	    strcmp(json_string_value(json_object_get(doc, "kind")), "AdmissionReview") != 0 ||
	    json_string_value(json_object_get(doc, "apiVersion")) == NULL ||
	    strcmp(json_string_value(json_object_get(doc, "apiVersion")), REVIEW_API_VERSION) !=
	        0) {
		review_error(r, "expected kind AdmissionReview and apiVersion %s",
		             REVIEW_API_VERSION);
		goto out;
	}
	req = json_object_get(doc, "request");
	if (!json_is_object(req)) {
		review_error(r, req == NULL ? "the AdmissionReview has no request"
		                            : "request must be an object");
		goto out;
	}
	if (!review_str(req, "uid", r->uid, sizeof(r->uid)) || r->uid[0] == '\0') {
		review_error(r, "request.uid must be a non-empty string");
		goto out;
	}
	if ((bad = review_bad_type(req, "kind", JSON_OBJECT)) != NULL ||
	    (bad = review_bad_type(req, "resource", JSON_OBJECT)) != NULL ||
	    (bad = review_bad_type(req, "userInfo", JSON_OBJECT)) != NULL ||
	    (bad = review_bad_type(req, "namespace", JSON_STRING)) != NULL ||
	    (bad = review_bad_type(req, "name", JSON_STRING)) != NULL ||
	    (bad = review_bad_type(req, "subResource", JSON_STRING)) != NULL) {
		review_error(r, "request.%s has the wrong type", bad);
		goto out;
	}
	if (!review_str(req, "operation", r->operation, sizeof(r->operation))) {
		review_error(r, "request.operation must be a string");
		goto out;
	}
	kind = json_object_get(req, "kind");
	review_str(kind, "group", group, sizeof(group));
	review_str(kind, "version", version, sizeof(version));
	review_str(kind, "kind", r->kind, sizeof(r->kind));
	review_str(json_object_get(req, "resource"), "resource", resource, sizeof(resource));
	review_str(req, "subResource", subresource, sizeof(subresource));
	review_str(req, "namespace", r->namespace_, sizeof(r->namespace_));
	review_str(json_object_get(req, "userInfo"), "username", r->user, sizeof(r->user));

	/* 1. Only the creation of a Pod itself is ours to change. */
	if (strcmp(group, "") != 0 || strcmp(r->kind, "Pod") != 0 ||
	    strcmp(resource, "pods") != 0 || subresource[0] != '\0' ||
	    strcmp(r->operation, "CREATE") != 0) {
		r->decision = "skipped";
		snprintf(r->reason, sizeof(r->reason), "%s",
		         strcmp(r->operation, "CREATE") != 0 ? "not_create" : "not_a_pod");
		snprintf(r->message, sizeof(r->message), "%s of %s%s%s is not a pod creation",
		         r->operation, r->kind, subresource[0] != '\0' ? "/" : "", subresource);
		review_answer(r, json_object_get(req, "uid"), true, NULL, NULL, 0);
		goto out;
	}
	pod = json_object_get(req, "object");
	if (!json_is_object(pod) || !json_is_object(json_object_get(pod, "metadata")) ||
	    !json_is_object(json_object_get(pod, "spec"))) {
		review_error(
		    r, pod == NULL || json_is_null(pod)
		           ? "request.object is missing: a Pod CREATE carries the pod"
		           : "request.object is not a pod (an object with metadata and spec)");
		goto out;
	}
	if (!review_str(json_object_get(pod, "metadata"), "name", r->name, sizeof(r->name)) &&
	    !review_str(json_object_get(pod, "metadata"), "generateName", r->name, sizeof(r->name)))
		review_str(req, "name", r->name, sizeof(r->name));

	if (injector_pod_text(in, pod, r->namespace_, &ir) < 0) {
		review_error(r, "the pod could not be read: %s", ir.message);
		goto out;
	}
	snprintf(r->reason, sizeof(r->reason), "%s", ir.reason);
	snprintf(r->message, sizeof(r->message), "%s", ir.message);
	switch (ir.decision) {
	case INJECT_INJECTED:
		r->decision = "injected";
		r->patch_ops = ir.patch_ops;
		break;
	case INJECT_SKIPPED:
		r->decision = "skipped";
		break;
	case INJECT_DENIED:
		r->decision = "denied";
		break;
	}
	review_answer(r, json_object_get(req, "uid"), ir.decision != INJECT_DENIED, ir.warnings,
	              ir.patch_text, ir.patch_len);
out:
	inject_result_clear(&ir);
	json_decref(doc);
	jarena_end();
	if (r->body == NULL && r->status != 0) {
		r->status = 500;
		r->body = strdup("{\"error\":\"internal\",\"message\":\"out of memory\"}");
	}
}

void review_result_clear(struct review_result *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}
