/* SPDX-License-Identifier: Apache-2.0 */
/* An AdmissionReview in, an AdmissionReview out: the webhook's protocol, without I/O. */
#ifndef MESHLET_WEBHOOK_REVIEW_H
#define MESHLET_WEBHOOK_REVIEW_H

#include <stddef.h>

#include "inject.h"

/* What one review decided, for the HTTP answer and the audit record. */
struct review_result {
	int status;           /* HTTP status: 200, or 400 for a body that is no AdmissionReview */
	char *body;           /* the answer (JSON), malloc'd: the caller frees it */
	const char *decision; /* "injected", "skipped", "denied" or "error" */
	char reason[48];      /* short code: "injected", "host_network", "malformed" ... */
	char message[512];    /* a sentence saying why */
	char uid[128];
	char namespace_[64];
	char name[256]; /* the pod's name, or its generateName when it has none yet */
	char kind[64];
	char operation[16];
	char user[256];
	size_t patch_ops;
};

/*
 * review_handle - answer len bytes of an admission.k8s.io/v1 AdmissionReview with the
 * AdmissionReview the API server expects: response.uid is request.uid; for a Pod CREATE
 * the injector decides, and a JSON Patch (patchType and base64 patch together) comes
 * only when something changes; a denial is allowed: false with code 400 and a message;
 * the decision and reason go to response.auditAnnotations, skips the user would want to
 * know about to response.warnings. A body that is not such a review gets status 400 and
 * {"error", "message"}. Fills r; never fails otherwise.
 */
void review_handle(const struct injector *in, const char *body, size_t len,
                   struct review_result *r);

/* review_result_clear - free what r holds. */
void review_result_clear(struct review_result *r);

#endif
