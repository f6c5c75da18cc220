/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for ca/csr.c: any bytes as a workload's CSR, for a fixed identity. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * The fuzz rule of the Makefile compiles only the harness and the sources of lib/, so the CSR code
 * comes in as source. That also lets the harness reach the extension checks directly:
 * through csr_check they sit behind a signature that mutated input almost never keeps.
 */
#include "../../ca/csr.c"

#define WANT "spiffe://example.org/ns/default/sa/web"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const struct err *e)
{
	fprintf(stderr, "fuzz_csr: %s (%s: %s)\n", what, err_name(e->code), e->msg);
	abort();
}

/* The codes csr_check may give; anything else is a bug. */
static bool known_check_code(int rc)
{
	return rc == 0 || rc == ERR_CSR_KEY || rc == ERR_CSR_SIGNATURE || rc == ERR_CSR_IDENTITY ||
	       rc == ERR_CSR_MALFORMED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spiffe_id want;
	static bool ready;
	struct csr_info info;
	struct err e = { 0 };
	struct csr *req;
	int rc;

	if (!ready) {
		if (spiffe_id_parse(WANT, sizeof(WANT) - 1, &want) != 0)
			abort();
		ready = true;
	}
	req = csr_parse((const char *)data, size, &e);
	if (ERR_peek_error() != 0)
		fail("csr_parse left errors on OpenSSL's queue", &e);
	if (req == NULL) {
		if (e.code != ERR_CSR_MALFORMED || e.msg[0] == '\0')
			fail("csr_parse failed without ERR_CSR_MALFORMED and a message", &e);
		return 0;
	}
	rc = csr_check(req, &want, &info, &e);
	if (!known_check_code(rc) || (rc != 0 && e.code != rc))
		fail("csr_check returned an unexpected code", &e);
	if (rc == 0 && info.key_desc[0] == '\0')
		fail("csr_check accepted a key it did not describe", &e);
	/* The same checks without the signature in front, as csr_check runs them. */
	rc = check_extensions(req, WANT, &e);
	if (rc != 0 && rc != ERR_CSR_IDENTITY && rc != ERR_CSR_MALFORMED)
		fail("check_extensions returned an unexpected code", &e);
	memset(&info, 0, sizeof(info));
	(void)check_key(req, &info, &e);
	ERR_clear_error();
	csr_free(req);
	return 0;
}
