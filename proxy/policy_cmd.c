/* SPDX-License-Identifier: Apache-2.0 */
/* `meshlet-proxy policy check|explain`: policy files validated and decisions explained. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "policy.h"
#include "policy_cmd.h"

#define PROG "meshlet-proxy policy"
#define MAX_ITEMS 256

static const char usage[] =
    "Usage: meshlet-proxy policy check FILE|DIR...\n"
    "       meshlet-proxy policy explain --policy FILE|DIR... [--namespace NS]\n"
    "                 [--labels k=v,...] [--principal ID] [--source-ip IP] --port N\n"
    "                 [--method M] [--path P] [--host H] [--header k=v]...\n"
    "check: validate AuthorizationPolicy and PeerAuthentication files; print every error\n"
    "  with file:line, or a summary. Exit 0 when valid, 1 when not.\n"
    "explain: decide one connection or request as the proxy would, for the workload in\n"
    "  --namespace (default \"default\") with --labels. The first line is allow or deny,\n"
    "  then the policy and rule that decided. --principal is the caller's SPIFFE ID\n"
    "  (none: a plaintext caller). With --method, --path, --host or --header the query is\n"
    "  an HTTP request, else a TCP connection (fields that only HTTP has then decide\n"
    "  nothing). Exit 0 for allow, 1 for deny, 2 for an error (as kubectl auth can-i).\n"
    "See docs/policy.md.\n";

static void print_errors(const struct policy_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
}

static int check(int argc, char **argv)
{
	struct policy_set *s = NULL;
	struct policy_errors errs = { 0 };
	size_t na, np;
	int rc;

	if (argc < 2) {
		fprintf(stderr, PROG " check: name at least one file or directory\n");
		return 2;
	}
	rc = policy_load((const char *const *)argv + 1, (size_t)argc - 1, &s, &errs);
	if (rc < 0) {
		print_errors(&errs);
		fprintf(stderr, PROG " check: %zu error%s\n", errs.n, errs.n == 1 ? "" : "s");
		policy_errors_free(&errs);
		return 1;
	}
	policy_count(s, &na, &np);
	printf("policy OK: %zu AuthorizationPolicy, %zu PeerAuthentication\n", na, np);
	policy_set_unref(s);
	return 0;
}

struct query {
	const char *paths[MAX_ITEMS];
	size_t npaths;
	const char *namespace_;
	char *labels[MAX_ITEMS];
	size_t nlabels;
	const char *principal;
	const char *source_ip;
	long port;
	const char *method, *path, *host;
	const char *headers[MAX_ITEMS];
	size_t nheaders;
};

static int split_labels(struct query *q, char *text)
{
	for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strchr(tok, '=') == NULL || tok[0] == '=' || q->nlabels == MAX_ITEMS) {
			fprintf(stderr, PROG " explain: --labels wants key=value pairs, "
			                "comma-separated: \"%s\"\n",
			        tok);
			return -1;
		}
		q->labels[q->nlabels++] = tok;
	}
	return 0;
}

static int parse_query(int argc, char **argv, struct query *q)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'f' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "labels", required_argument, NULL, 'l' },
		{ "principal", required_argument, NULL, 'p' },
		{ "source-ip", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'P' },
		{ "method", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 'u' },
		{ "host", required_argument, NULL, 'H' },
		{ "header", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	char *end;

	memset(q, 0, sizeof(*q));
	q->namespace_ = "default";
	q->port = -1;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (q->npaths == MAX_ITEMS)
				return -1;
			q->paths[q->npaths++] = optarg;
			break;
		case 'n':
			q->namespace_ = optarg;
			break;
		case 'l':
			if (split_labels(q, optarg) < 0)
				return -1;
			break;
		case 'p':
			q->principal = strncmp(optarg, "spiffe://", 9) == 0 ? optarg + 9 : optarg;
			break;
		case 's':
			q->source_ip = optarg;
			break;
		case 'P':
			errno = 0;
			q->port = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || q->port < 1 || q->port > 65535) {
				fprintf(stderr, PROG " explain: --port \"%s\" is not a port (1 to 65535)\n",
				        optarg);
				return -1;
			}
			break;
		case 'm':
			q->method = optarg;
			break;
		case 'u':
			q->path = optarg;
			break;
		case 'H':
			q->host = optarg;
			break;
		case 'e':
			if (strchr(optarg, '=') == NULL || optarg[0] == '=' ||
			    q->nheaders == MAX_ITEMS) {
				fprintf(stderr, PROG " explain: --header wants name=value: \"%s\"\n",
				        optarg);
				return -1;
			}
			q->headers[q->nheaders++] = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		case ':':
			fprintf(stderr, PROG " explain: %s needs a value\n", argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, PROG " explain: unknown option %s\n", argv[optind - 1]);
			return -1;
		}
	}
	while (optind < argc && q->npaths < MAX_ITEMS)
		q->paths[q->npaths++] = argv[optind++];
	if (q->npaths == 0) {
		fprintf(stderr, PROG " explain: --policy FILE is required\n");
		return -1;
	}
	if (q->port < 0) {
		fprintf(stderr, PROG " explain: --port is required\n");
		return -1;
	}
	return 0;
}

/* The HTTP request of the query, as text, so that the proxy's own parser reads it. */
static int build_head(const struct query *q, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (f == NULL)
		return -1;
	fprintf(f, "%s %s HTTP/1.1\r\nHost: %s\r\n", q->method != NULL ? q->method : "GET",
	        q->path != NULL ? q->path : "/", q->host != NULL ? q->host : "localhost");
	for (size_t i = 0; i < q->nheaders; i++) {
		const char *eq = strchr(q->headers[i], '=');

		fprintf(f, "%.*s: %s\r\n", (int)(eq - q->headers[i]), q->headers[i], eq + 1);
	}
	fputs("\r\n", f);
	return fclose(f) == 0 ? 0 : -1;
}

static void print_meta(const char *what, const struct policy_meta *m, int rule)
{
	printf("%s: ", what);
	if (m->namespace_ != NULL)
		printf("%s/", m->namespace_);
	printf("%s (%s:%u)", m->name, m->file, m->line);
	if (rule >= 0)
		printf(", rule %d", rule);
	putchar('\n');
}

static int explain(int argc, char **argv)
{
	struct query q;
	struct policy_set *s = NULL;
	struct policy_errors errs = { 0 };
	struct sockaddr_storage src = { 0 };
	struct http1_request *http = NULL;
	char *head = NULL;
	size_t head_len = 0;
	struct policy_decision d;
	const struct policy_meta *by = NULL;
	enum policy_mtls mode;
	int rc = parse_query(argc, argv, &q), status = 2;

	if (rc != 0)
		return rc > 0 ? 0 : 2;
	if (q.source_ip != NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;

		if (inet_pton(AF_INET, q.source_ip, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, q.source_ip, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
		} else {
			fprintf(stderr, PROG " explain: --source-ip \"%s\" is not an IP address\n",
			        q.source_ip);
			return 2;
		}
	}
	if (q.method != NULL || q.path != NULL || q.host != NULL || q.nheaders > 0) {
		struct http1_error why = { 0 };
		size_t scan = 0;
		long n;

		http = malloc(sizeof(*http));
		if (http == NULL || build_head(&q, &head, &head_len) < 0)
			goto out;
		if (head_len > 15360) {
			fprintf(stderr, PROG " explain: the request head is %zu bytes, more than the "
			                "proxy ever reads (15360)\n",
			        head_len);
			goto out;
		}
		n = http1_head_end(head, head_len, head_len + 1, &scan, &why);
		if (n <= 0 || http1_parse_request(head, (size_t)n, http, &why) < 0) {
			fprintf(stderr, PROG " explain: the request is not valid HTTP/1.1 (%s): the "
			                "proxy would answer %d\n",
			        why.reason != NULL ? why.reason : "?", why.status);
			goto out;
		}
	}
	if (policy_load(q.paths, q.npaths, &s, &errs) < 0) {
		print_errors(&errs);
		goto out;
	}
	struct policy_workload w = { q.namespace_, (const char *const *)q.labels, q.nlabels };
	mode = policy_mtls_mode(s, &w, (uint16_t)q.port, &by);
	if (q.principal == NULL && mode == POLICY_MTLS_STRICT) {
		printf("deny\nreason: a plaintext caller, and mTLS is STRICT on port %ld\n", q.port);
		print_meta("peer authentication", by, -1);
		status = 1;
		goto out;
	}
	policy_decide(s, &w,
	              &(struct policy_request){ .principal = q.principal,
	                                        .source = src.ss_family != AF_UNSPEC
	                                                      ? (struct sockaddr *)&src
	                                                      : NULL,
	                                        .port = (uint16_t)q.port,
	                                        .http = http },
	              &d);
	printf("%s\n", d.allow ? "allow" : "deny");
	if (d.policy != NULL)
		print_meta("policy", d.policy, d.rule);
	printf("reason: %s\n", d.why);
	if (d.audit != NULL)
		print_meta("audit", d.audit, d.audit_rule);
	if (http == NULL)
		printf("query: a TCP connection to port %ld (fields only HTTP has decide nothing)\n",
		       q.port);
	status = d.allow ? 0 : 1;
out:
	policy_errors_free(&errs);
	policy_set_unref(s);
	free(http);
	free(head);
	return status;
}

int policy_cmd_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "check") == 0)
		return check(argc - 1, argv + 1);
	if (strcmp(argv[1], "explain") == 0)
		return explain(argc - 1, argv + 1);
	fprintf(stderr, PROG ": unknown command \"%s\" (check, explain)\n", argv[1]);
	return 2;
}
