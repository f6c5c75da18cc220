/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for lib/spiffe.c: whatever parses must format back to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz_spiffe: %s (%s)\n", what, err_name(rc));
	abort();
}

/* The k8s mapping, when it applies, must lead back to the same ID. */
static void check_k8s(const struct spiffe_id *id)
{
	char ns[SPIFFE_ID_MAX + 1], sa[SPIFFE_ID_MAX + 1];
	struct spiffe_id back;
	int rc;

	rc = spiffe_id_to_k8s(id, ns, sizeof(ns), sa, sizeof(sa));
	if (rc == ERR_SPIFFE_NOT_K8S)
		return;
	if (rc != 0)
		fail("to_k8s failed on a parsed ID", rc);
	rc = spiffe_id_from_k8s(id->td, ns, sa, &back);
	if (rc != 0)
		fail("from_k8s refused what to_k8s gave", rc);
	if (!spiffe_id_equal(id, &back))
		fail("from_k8s(to_k8s(id)) differs from id", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct spiffe_id id, again;
	char buf[SPIFFE_ID_MAX + 1];
	int rc;

	/* The validators must not crash on any bytes either. */
	(void)spiffe_td_validate(s, size);
	(void)spiffe_path_validate(s, size);
	(void)spiffe_segment_validate(s, size);

	if (spiffe_id_parse(s, size, &id) != 0)
		return 0;

	rc = spiffe_td_validate(id.td, strlen(id.td));
	if (rc != 0)
		fail("parsed trust domain does not validate", rc);
	rc = spiffe_path_validate(id.path, strlen(id.path));
	if (rc != 0)
		fail("parsed path does not validate", rc);
	if (!spiffe_id_member_of(&id, id.td))
		fail("ID is not a member of its own trust domain", 0);

	rc = spiffe_id_format(&id, buf, sizeof(buf));
	if (rc != 0)
		fail("format failed on a parsed ID", rc);
	/* Nothing is normalised, so the canonical form is the input itself. */
	if (strlen(buf) != size || memcmp(buf, data, size) != 0)
		fail("format(parse(s)) != s", 0);
	rc = spiffe_id_parse(buf, strlen(buf), &again);
	if (rc != 0)
		fail("formatted ID does not parse", rc);
	if (!spiffe_id_equal(&id, &again))
		fail("parse(format(id)) != id", 0);

	check_k8s(&id);
	return 0;
}
