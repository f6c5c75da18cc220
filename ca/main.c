/* SPDX-License-Identifier: Apache-2.0 */
/* meshlet-ca's entry point: the commands init, serve, issue, token and jwks. */
#include <stdio.h>

#include <microhttpd.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meshlet/cli.h"
#include "meshlet/jwt.h"
#include "meshlet/x509.h"

#include "serve.h"
#include "settings.h"
#include "sign.h"

#define PROG "meshlet-ca"

static const char usage[] =
    "Usage: " PROG " COMMAND [OPTION]...\n"
    "       " PROG " [--check-config FILE | --config-reference | --help | --version]\n"
    "The meshlet certificate authority: issues short-lived SPIFFE X.509 identities.\n"
    "\n"
    "Commands (each has --help):\n"
    "  init    make a root CA, and optionally an intermediate, in a directory\n"
    "  serve   run the HTTPS API that workloads ask for certificates\n"
    "  issue   issue a certificate offline (for the webhook's and the CA's own TLS)\n"
    "  token   mint a Kubernetes-shaped service-account token (development only)\n"
    "  jwks    print the JWKS that verifies tokens minted with a key (development only)\n"
    "\n"
    "Options:\n"
    "  --check-config FILE  parse and validate a configuration file, print\n"
    "                       'configuration OK' or every error with file:line\n"
    "  --config-reference   print every configuration key as a Markdown table\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version and the libraries in use\n";

/* Prints a usage error for a command and returns the exit status for it. */
static int bad_usage(const char *cmd, const char *what)
{
	fprintf(stderr, PROG " %s: %s\nRun '" PROG " %s --help' for usage.\n", cmd, what, cmd);
	return 2;
}

/* getopt's complaint about argv[optind - 1], in our words. */
static int bad_option(const char *cmd, char **argv, int opt)
{
	char what[256];

	snprintf(what, sizeof(what), opt == ':' ? "option %s needs a value" : "unknown option %s",
	         argv[optind - 1]);
	return bad_usage(cmd, what);
}

static const char init_usage[] =
    "Usage: " PROG " init --dir DIR --trust-domain TD [--key-type TYPE] [--ttl D]\n"
    "                  [--intermediate]\n"
    "Make a root CA in DIR (root-cert.pem, root-key.pem), and with --intermediate an\n"
    "intermediate signed by it (ca-cert.pem, ca-key.pem, cert-chain.pem): the layout of\n"
    "Istio's cacerts secret, so that an intermediate from your PKI can be dropped in.\n"
    "\n"
    "  --dir DIR            where to write; an existing CA there is never overwritten\n"
    "  --trust-domain TD    the SPIFFE trust domain, like cluster.local\n"
    "  --key-type TYPE      ec-p256 (default), ec-p384 or rsa-3072\n"
    "  --ttl D              the root's lifetime (default 87600h, ten years)\n"
    "  --intermediate       also make an intermediate CA that does the signing\n";

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "trust-domain", required_argument, NULL, 't' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "ttl", required_argument, NULL, 'l' },
		{ "intermediate", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *td = NULL;
	enum sign_key_type type = SIGN_KEY_EC_P256;
	int64_t ttl = 87600LL * 3600;
	bool intermediate = false;
	struct err e = { 0 };
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 't':
			td = optarg;
			break;
		case 'k':
			if (sign_key_type_parse(optarg, &type) < 0)
				return bad_usage("init", "--key-type must be ec-p256, ec-p384 or "
				                         "rsa-3072");
			break;
		case 'l':
			if (cli_duration_seconds(PROG " init", "--ttl", optarg, &ttl) < 0)
				return 2;
			break;
		case 'i':
			intermediate = true;
			break;
		case 'h':
			fputs(init_usage, stdout);
			return 0;
		default:
			return bad_option("init", argv, opt);
		}
	}
	if (optind < argc)
		return bad_usage("init", "unexpected argument");
	if (dir == NULL || td == NULL)
		return bad_usage("init", "--dir and --trust-domain are required");
	if (sign_init(dir, td, type, ttl, intermediate, &e) < 0) {
		fprintf(stderr, PROG " init: %s\n", e.msg);
		return 1;
	}
	printf("made a %s CA for spiffe://%s in %s\n",
	       intermediate ? "root and intermediate" : "root", td, dir);
	return 0;
}

static const char issue_usage[] =
    "Usage: " PROG " issue --dir DIR (--dns NAME... | --spiffe-id ID) --out PREFIX\n"
    "                   [--ttl D]\n"
    "Issue a certificate with the CA in DIR, for bootstrap: the webhook's and the CA's own\n"
    "serving certificates. Writes PREFIX.crt (the certificate, then any intermediates)\n"
    "and PREFIX.key (a new EC P-256 key, mode 0600).\n"
    "\n"
    "  --dir DIR         the CA, as made by init (or an Istio-style cacerts directory)\n"
    "  --dns NAME        a DNS name for the certificate; repeat for more\n"
    "  --spiffe-id ID    a SPIFFE ID for the certificate instead\n"
    "  --out PREFIX      where to write PREFIX.crt and PREFIX.key\n"
    "  --ttl D           lifetime (default 2160h, 90 days), never past the CA's own\n";

static int cmd_issue(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "dns", required_argument, NULL, 'n' },
		{ "spiffe-id", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "ttl", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *out = NULL, *sid = NULL;
	const char *dns[SIGN_DNS_MAX];
	size_t ndns = 0;
	struct spiffe_id id;
	struct sign_request r = { 0 };
	struct signer *s = NULL;
	struct err e = { 0 };
	int64_t ttl = 2160LL * 3600;
	int opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			if (ndns == SIGN_DNS_MAX)
				return bad_usage("issue", "too many --dns names");
			dns[ndns++] = optarg;
			break;
		case 's':
			sid = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'l':
			if (cli_duration_seconds(PROG " issue", "--ttl", optarg, &ttl) < 0)
				return 2;
			break;
		case 'h':
			fputs(issue_usage, stdout);
			return 0;
		default:
			return bad_option("issue", argv, opt);
		}
	}
	if (optind < argc)
		return bad_usage("issue", "unexpected argument");
	if (dir == NULL || out == NULL)
		return bad_usage("issue", "--dir and --out are required");
	if ((ndns == 0) == (sid == NULL))
		return bad_usage("issue", "give either --dns names or one --spiffe-id");
	if (sid != NULL) {
		rc = spiffe_id_parse(sid, strlen(sid), &id);
		if (rc < 0) {
			fprintf(stderr, PROG " issue: --spiffe-id %s: %s\n", sid, err_str(rc));
			return 2;
		}
		r.id = &id;
	}
	r.dns = dns;
	r.ndns = ndns;
	r.now = time(NULL);
	r.ttl = ttl;
	s = sign_load(dir, &e);
	if (s == NULL || sign_issue_files(s, &r, out, &e) < 0) {
		fprintf(stderr, PROG " issue: %s\n", e.msg);
		sign_free(s);
		return 1;
	}
	sign_free(s);
	printf("wrote %s.crt and %s.key\n", out, out);
	return 0;
}

static const char token_usage[] =
    "Usage: " PROG " token --key FILE --issuer ISS --audience AUD --namespace NS\n"
    "                   --service-account SA [--pod NAME --pod-uid UID] [--ttl D]\n"
    "FOR DEVELOPMENT AND TESTS ONLY, never for a cluster: mint a token shaped like a\n"
    "Kubernetes projected service-account token (the same claims, kubernetes.io block\n"
    "included), signed with a local issuer key (EC P-256 or RSA, mode 0600). In a cluster\n"
    "the kubelet mounts the real token. Prints the token. '" PROG " jwks --key FILE'\n"
    "prints the key set that '" PROG " serve --jwks-file' needs to accept it.\n"
    "\n"
    "  --ttl D     lifetime (default 1h)\n";

static int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "issuer", required_argument, NULL, 'i' },
		{ "audience", required_argument, NULL, 'a' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "service-account", required_argument, NULL, 's' },
		{ "pod", required_argument, NULL, 'p' },
		{ "pod-uid", required_argument, NULL, 'u' },
		{ "ttl", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct jwt_mint m = { 0 };
	const char *key_file = NULL;
	struct err e = { 0 };
	EVP_PKEY *key;
	char *token;
	int64_t ttl = 3600;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			key_file = optarg;
			break;
		case 'i':
			m.issuer = optarg;
			break;
		case 'a':
			m.audience = optarg;
			break;
		case 'n':
			m.namespace_ = optarg;
			break;
		case 's':
			m.service_account = optarg;
			break;
		case 'p':
			m.pod_name = optarg;
			break;
		case 'u':
			m.pod_uid = optarg;
			break;
		case 'l':
			if (cli_duration_seconds(PROG " token", "--ttl", optarg, &ttl) < 0)
				return 2;
			break;
		case 'h':
			fputs(token_usage, stdout);
			return 0;
		default:
			return bad_option("token", argv, opt);
		}
	}
	if (optind < argc)
		return bad_usage("token", "unexpected argument");
	if (key_file == NULL || m.issuer == NULL || m.audience == NULL || m.namespace_ == NULL ||
	    m.service_account == NULL)
		return bad_usage("token", "--key, --issuer, --audience, --namespace and "
		                          "--service-account are required");
	if (m.pod_uid != NULL && m.pod_name == NULL)
		return bad_usage("token", "--pod-uid needs --pod");
	m.now = time(NULL);
	m.ttl = ttl;
	key = x509_read_key(key_file, &e);
	if (key == NULL) {
		fprintf(stderr, PROG " token: %s\n", e.msg);
		return 1;
	}
	token = jwt_mint(key, &m, &e);
	EVP_PKEY_free(key);
	if (token == NULL) {
		fprintf(stderr, PROG " token: %s\n", e.msg);
		return 1;
	}
	printf("%s\n", token);
	free(token);
	return 0;
}

static const char jwks_usage[] =
    "Usage: " PROG " jwks --key FILE\n"
    "FOR DEVELOPMENT AND TESTS ONLY: print the JWKS (public keys) that verifies tokens\n"
    "minted by '" PROG " token' with this key, for '" PROG " serve --jwks-file'. In a\n"
    "cluster, the API server serves its own at /openid/v1/jwks.\n";

static int cmd_jwks(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key_file = NULL;
	struct err e = { 0 };
	EVP_PKEY *key;
	char *jwks;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			key_file = optarg;
			break;
		case 'h':
			fputs(jwks_usage, stdout);
			return 0;
		default:
			return bad_option("jwks", argv, opt);
		}
	}
	if (optind < argc || key_file == NULL)
		return bad_usage("jwks", "--key is required");
	key = x509_read_key(key_file, &e);
	jwks = key != NULL ? jwks_from_key(key, &e) : NULL;
	EVP_PKEY_free(key);
	if (jwks == NULL) {
		fprintf(stderr, PROG " jwks: %s\n", e.msg);
		return 1;
	}
	printf("%s\n", jwks);
	free(jwks);
	return 0;
}

/* For --version: the HTTP server library this daemon serves HTTPS with. */
static const char *main_http_library(void)
{
	static char text[64];

	snprintf(text, sizeof(text), "libmicrohttpd %s", MHD_get_version());
	return text;
}

int main(int argc, char **argv)
{
	static const struct cli_command commands[] = {
		{ "init", cmd_init },   { "serve", serve_main }, { "issue", cmd_issue },
		{ "token", cmd_token }, { "jwks", cmd_jwks },    { NULL, NULL },
	};
	static const struct cli_program program = {
		.name = PROG,
		.usage = usage,
		.schema = &settings_schema,
		.settings_size = sizeof(struct settings),
		.commands = commands,
		.http_library = main_http_library,
	};

	return cli_main(argc, argv, &program);
}
