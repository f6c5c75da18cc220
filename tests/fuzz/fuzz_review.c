/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the webhook's AdmissionReview handling: any bytes in, an answer out. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The fuzz rule of the Makefile compiles only the harness and lib/, so the webhook's sources
 * come in as source: the review, the injector, its patch builder and its settings table.
 */
#include "../../webhook/settings.c"
#include "../../webhook/patch.c"
#include "../../webhook/inject.c"
#include "../../webhook/review.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char bundle[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBAzCBqqADAgECAgEBMAoGCCqGSM49BAMCMAAwHhcNMjYwMTAxMDAwMDAwWhcN\n"
                             "-----END CERTIFICATE-----\n";

static struct injector *fuzz_injector(void)
{
	static struct settings cfg;
	static struct injector *in;
	struct config c;
	struct err e = { 0 };

	if (in != NULL)
		return in;
	if (config_init(&c, &settings_schema, &cfg) < 0 || c.nerrors != 0)
		abort();
	config_release(&c);
	in = injector_new(&cfg, bundle, &e);
	if (in == NULL) {
		fprintf(stderr, "fuzz_review: %s\n", e.msg);
		abort();
	}
	return in;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct review_result r;
	json_t *answer;

	review_handle(fuzz_injector(), (const char *)data, size, &r);
	/* Every answer is JSON, and a 200 is an AdmissionReview with a response. */
	answer = r.body != NULL ? json_loads(r.body, 0, NULL) : NULL;
	if (answer == NULL ||
	    (r.status == 200 && !json_is_object(json_object_get(answer, "response"))) ||
	    r.decision == NULL)
		abort();
	json_decref(answer);
	review_result_clear(&r);
	return 0;
}
