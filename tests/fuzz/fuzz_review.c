/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the webhook's AdmissionReview handling: any bytes in, an answer out. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The fuzz rule of the Makefile compiles only the harness and lib/ (which has the JSON
 * reader and writer, jparse and jwrite), so the webhook's sources come in as source: the
 * review, its arena, the injector, its patch builder and its settings table.
 */
#include "../../webhook/settings.c"
#include "../../webhook/patch.c"
#include "../../webhook/inject.c"
#include "../../webhook/jarena.c"
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
	/* As the server does: the review's jansson values come from the per-thread arena. */
	jarena_install();
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

/*
 * The webhook reads JSON with its own reader: it must take exactly what jansson takes
 * (strict, duplicates refused), and read it to the same values. jansson skips NUL bytes
 * between tokens, which we refuse: inputs with one are left out of the comparison.
 */
static void fuzz_jparse_as_jansson(const uint8_t *data, size_t size)
{
	struct jparse_error e;
	json_error_t je;
	json_t *ours, *ref;

	if (memchr(data, 0, size) != NULL)
		return;
	ours = jparse_load((const char *)data, size, &e);
	ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if ((ours == NULL) != (ref == NULL) || (ours != NULL && !json_equal(ours, ref))) {
		fprintf(stderr, "fuzz_review: jparse %s (%s), jansson %s (%s)\n",
		        ours != NULL ? "accepts" : "refuses", ours != NULL ? "" : e.text,
		        ref != NULL ? "accepts" : "refuses", ref != NULL ? "" : je.text);
		abort();
	}
	json_decref(ours);
	json_decref(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct review_result r;
	json_t *answer;

	fuzz_jparse_as_jansson(data, size);

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
