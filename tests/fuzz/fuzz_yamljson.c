/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/yamljson.c: whatever parses must be written and read back equal. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes docs (all at once, or one call per document appending) and reads them back. */
static void check_round_trip(const struct yamljson_doc *docs, size_t n, int append)
{
	json_t **values = calloc(n + 1, sizeof(*values));
	struct yamljson_doc *again = NULL;
	size_t nagain = 0;
	char *out = NULL;
	size_t len = 0;
	struct err e;

	if (values == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		values[i] = docs[i].value;
	if (!append && yamljson_emit_docs(values, n, &out, &len, &e) != 0)
		abort();
	for (size_t i = 0; append && i < n; i++)
		if (yamljson_emit(values[i], &out, &len, &e) != 0)
			abort();
	if ((out == NULL && n > 0) || (out != NULL && strlen(out) > len))
		abort();
	if (yamljson_parse("emitted", out, len, &again, &nagain, &e) != 0 || nagain != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!json_equal(docs[i].value, again[i].value))
			abort();
	yamljson_docs_free(again, nagain);
	free(out);
	free(values);
}

/* The input itself, as a string value and key, must be written and read back too. */
static void check_string(const uint8_t *data, size_t size)
{
	json_t *s = json_stringn((const char *)data, size);
	struct yamljson_doc doc = { .value = json_object(), .line = 1 };

	if (s == NULL || doc.value == NULL) {
		/* Not UTF-8, which a JSON string cannot be. */
		json_decref(s);
		json_decref(doc.value);
		return;
	}
	json_object_set_new(doc.value, "v", json_pack("[O]", s));
	/* Keys with a NUL are refused on purpose (see yamljson.h). */
	if (memchr(data, '\0', size) == NULL)
		json_object_setn(doc.value, (const char *)data, size, s);
	check_round_trip(&doc, 1, 0);
	json_decref(s);
	json_decref(doc.value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yamljson_doc *docs = NULL;
	size_t n = 0;
	struct err e;
	int rc;

	check_string(data, size);
	memset(&e, 0, sizeof(e));
	rc = yamljson_parse("fuzz.yaml", (const char *)data, size, &docs, &n, &e);
	if (rc != 0) {
		/* Every failure names the input, and only ours or ENOMEM are returned. */
		if (strncmp(e.msg, "fuzz.yaml:", 10) != 0 || docs != NULL || n != 0 ||
		    (rc != -ENOMEM && (rc > ERR_YAML_TOO_LARGE || rc < ERR_YAML_EMIT)))
			abort();
		return 0;
	}
	if ((n == 0) != (docs == NULL))
		abort();
	check_round_trip(docs, n, 0);
	check_round_trip(docs, n, 1);
	yamljson_docs_free(docs, n);
	return 0;
}
