/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the policy loader (proxy/policy_load.c) and decisions (policy.c). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The fuzz rule of the Makefile compiles only the harness and lib/: the policy code comes as
 * source. */
#include "../../proxy/http1.c"
#include "../../proxy/policy.c"
#include "../../proxy/policy_load.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char head[] = "POST /api/admin/%2Fx?q=1 HTTP/1.1\r\nHost: Web.Prod:8080\r\n"
                           "X-Team: ops\r\nX-Team: dev\r\nContent-Length: 3\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = { "app=web", "version=v1" };
	static const struct policy_workload w = { "prod", labels, 2 };
	struct policy_set *s = NULL;
	struct policy_errors errs = { 0 };
	struct http1_request req;
	struct http1_error why = { 0 };
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = { htonl(0x0a000001) } };
	int rc;

	if (size > 64 * 1024)
		return 0;
	rc = policy_load_text("fuzz.yaml", (const char *)data, size, &s, &errs);
	if ((rc == 0) != (s != NULL) || (rc == 0 && errs.n != 0) || (rc < 0 && errs.n + errs.lost == 0 && rc != -ENOMEM)) {
		fprintf(stderr, "fuzz_policy: rc %d with %zu errors\n", rc, errs.n);
		abort();
	}
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.msgs[i], "fuzz.yaml", 9) != 0) {
			fprintf(stderr, "fuzz_policy: an error without its file: %s\n", errs.msgs[i]);
			abort();
		}
	policy_errors_free(&errs);
	if (s == NULL)
		return 0;
	if (http1_parse_request(head, sizeof(head) - 1, &req, &why) != 0)
		abort();
	for (int http = 0; http < 2; http++)
		for (int plain = 0; plain < 2; plain++) {
			struct policy_decision d;
			const struct policy_meta *by;

			policy_decide(s, &w,
			              &(struct policy_request){
			                  .principal = plain ? NULL : "cluster.local/ns/a/sa/b",
			                  .source = (struct sockaddr *)&src,
			                  .port = 8080,
			                  .http = http ? &req : NULL },
			              &d);
			if ((d.policy == NULL) != (d.rule < 0))
				abort();
			(void)policy_mtls_mode(s, &w, 8080, &by);
		}
	policy_set_unref(s);
	return 0;
}
