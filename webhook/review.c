/* SPDX-License-Identifier: Apache-2.0 */
/* AdmissionReview handling: validation of the request, the injector's decision, the answer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meshlet/base64.h"

#include "review.h"

#define REVIEW_API_VERSION "admission.k8s.io/v1"

static void review_error(struct review_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void review_error(struct review_result *r, const char *fmt, ...)
{
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	r->status = 400;
	r->decision = "error";
	snprintf(r->reason, sizeof(r->reason), "malformed");
	o = json_pack("{s:s, s:s}", "error", "bad_request", "message", r->message);
	r->body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
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
 * Builds the answer around response (whose reference it takes), with the base64 patch, when
 * there is one, added as the last member of response. The patch is spliced in as text:
 * base64 needs no escaping, and putting a few KiB through the JSON writer again was a
 * sixth of the time of a review.
 */
static void review_answer(struct review_result *r, json_t *response, const char *patch_b64)
{
	json_t *doc = json_pack("{s:s, s:s, s:o}", "apiVersion", REVIEW_API_VERSION, "kind",
	                        "AdmissionReview", "response", response);
	char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	size_t len = text != NULL ? strlen(text) : 0;

	json_decref(doc);
	r->status = 200;
	if (patch_b64 == NULL || text == NULL || len < 2) {
		r->body = text;
		return;
	}
	/* text ends with the "}}" that close response and the document. */
	if (asprintf(&r->body, "%.*s,\"patch\":\"%s\"}}", (int)(len - 2), text, patch_b64) < 0)
		r->body = NULL;
	free(text);
}

/* auditAnnotations keys have no '/': the API server prefixes them with the webhook's name. */
static json_t *review_response(const struct review_result *r, bool allowed)
{
	return json_pack("{s:s, s:b, s:{s:s, s:s}}", "uid", r->uid, "allowed", allowed,
	                 "auditAnnotations", "decision", r->decision, "reason", r->reason);
}

void review_handle(const struct injector *in, const char *body, size_t len, struct review_result *r)
{
	struct inject_result ir = { 0 };
	json_t *doc, *req, *kind, *pod, *resp = NULL;
	json_error_t je;
	const char *bad;
	char group[64] = "", version[16] = "", resource[64] = "", subresource[64] = "";
	char *patch_text = NULL, *patch_b64 = NULL;

	memset(r, 0, sizeof(*r));
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL) {
		review_error(r, "the body is not JSON: %s (line %d, column %d)", je.text, je.line,
		             je.column);
		return;
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
		review_answer(r, review_response(r, true), NULL);
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

	if (injector_pod(in, pod, r->namespace_, &ir) < 0) {
		review_error(r, "the pod could not be read: %s", ir.message);
		goto out;
	}
	snprintf(r->reason, sizeof(r->reason), "%s", ir.reason);
	snprintf(r->message, sizeof(r->message), "%s", ir.message);
	switch (ir.decision) {
	case INJECT_INJECTED:
		r->decision = "injected";
		r->patch_ops = json_array_size(ir.patch);
		patch_text = json_dumps(ir.patch, JSON_COMPACT | JSON_PRESERVE_ORDER);
		patch_b64 = patch_text != NULL
		                ? base64_encode_alloc(patch_text, strlen(patch_text), BASE64_STD)
		                : NULL;
		resp = review_response(r, true);
		if (patch_b64 == NULL || resp == NULL) {
			json_decref(resp);
			review_error(r, "out of memory");
			goto out;
		}
		json_object_set_new(resp, "patchType", json_string("JSONPatch"));
		break;
	case INJECT_SKIPPED:
		r->decision = "skipped";
		resp = review_response(r, true);
		break;
	case INJECT_DENIED:
		r->decision = "denied";
		resp = review_response(r, false);
		if (resp != NULL)
			json_object_set_new(resp, "status",
			                    json_pack("{s:i, s:s, s:s}", "code", 400, "reason",
			                              "BadRequest", "message", r->message));
		break;
	}
	if (resp != NULL && json_array_size(ir.warnings) > 0)
		json_object_set(resp, "warnings", ir.warnings);
	if (resp == NULL) {
		review_error(r, "out of memory");
		goto out;
	}
	review_answer(r, resp, patch_b64);
out:
	free(patch_text);
	free(patch_b64);
	inject_result_clear(&ir);
	json_decref(doc);
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
