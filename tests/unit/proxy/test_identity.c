/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proxy/identity.c: files mode on temporary files, ca mode against a real meshlet-ca. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/x509v3.h>

#include "meshlet/file.h"
#include "meshlet/log.h"
#include "meshlet/time.h"
#include "meshlet/x509.h"
#include "proxy/identity.h"

#define TD     "example.org"
#define WEB_ID "spiffe://example.org/ns/default/sa/web"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *h_ = (hay);                                                            \
		if (h_ == NULL || strstr(h_, (needle)) == NULL)                                    \
			fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));  \
	} while (0)

extern char **environ;

static struct {
	char dir[64];
	char bin[PATH_MAX];
	int log_fd;
	EVP_PKEY *root_key;
	X509 *root;
} fx;

static long next_serial = 1000;

static const char *path_of(const char *name)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *p = bufs[next++ % 8];

	snprintf(p, PATH_MAX, "%s/%s", fx.dir, name);
	return p;
}

static X509 *make_cert(EVP_PKEY *key, const char *san, bool ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	const struct {
		int nid;
		const char *value;
	} exts[] = {
		{ NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE" },
		{ NID_key_usage, ca ? "critical,keyCertSign" : "critical,digitalSignature" },
		{ NID_subject_alt_name, san },
	};

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_true(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                                       (const unsigned char *)(ca ? "root" : "leaf"), -1,
	                                       -1, 0));
	assert_true(X509_set_issuer_name(x, X509_get_subject_name(ca ? x : fx.root)));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, ca ? x : fx.root, x, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid, exts[i].value);

		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, ca ? key : fx.root_key, EVP_sha256()) > 0);
	return x;
}

static void put_text(const char *path, const char *text, mode_t mode)
{
	struct err e = { 0 };

	if (x509_write_file(path, text, strlen(text), mode, &e) != 0)
		fail_msg("%s", e.msg);
}

static void put_cert(const char *path, X509 *x)
{
	char *pem = x509_cert_pem(x);

	assert_non_null(pem);
	put_text(path, pem, 0644);
	free(pem);
}

static void put_key(const char *path, EVP_PKEY *key, mode_t mode)
{
	char *pem = x509_key_pem(key);

	assert_non_null(pem);
	put_text(path, pem, mode);
	x509_free_secret(pem);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len;
	struct err e = { 0 };

	if (file_read(path, 1 << 24, &buf, &len, &e) != 0)
		fail_msg("%s", e.msg);
	return buf;
}

/* A new leaf for id with a new key, written as name.crt and name.key; returns its serial. */
static void new_leaf(const char *name, const char *san, char serial[CREDS_SERIAL_SIZE])
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x;
	char file[64];

	assert_non_null(key);
	x = make_cert(key, san, false);
	snprintf(file, sizeof(file), "%s.crt", name);
	put_cert(path_of(file), x);
	snprintf(file, sizeof(file), "%s.key", name);
	put_key(path_of(file), key, 0600);
	if (serial != NULL)
		assert_int_equal(x509_serial_hex(x, serial, CREDS_SERIAL_SIZE), 0);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* Where meshlet-ca is: $MESHLET_BIN_DIR, else the bin/ of the build this test is in. */
static void find_bin(void)
{
	const char *env = getenv("MESHLET_BIN_DIR");
	char exe[PATH_MAX - 16];
	ssize_t n;

	if (env != NULL && env[0] != '\0') {
		snprintf(fx.bin, sizeof(fx.bin), "%s", env);
		return;
	}
	/* This binary is <build>/tests/unit/proxy/test_identity. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (int i = 0; i < 4; i++)
			dirname(exe);
		snprintf(fx.bin, sizeof(fx.bin), "%s/bin", exe);
		return;
	}
	snprintf(fx.bin, sizeof(fx.bin), "build/bin");
}

static int setup(void **state)
{
	(void)state;
	strcpy(fx.dir, "/tmp/meshlet-test-identity-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	find_bin();
	/* Log lines go to a file, so that tests can check what is (and is not) in them. */
	fx.log_fd = open(path_of("test.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fx.log_fd < 0)
		return -1;
	log_init("test_identity", LOG_DEBUG, LOG_FORMAT_JSON, fx.log_fd);
	fx.root_key = EVP_EC_gen("P-256");
	if (fx.root_key == NULL)
		return -1;
	fx.root = make_cert(fx.root_key, "URI:spiffe://" TD, true);
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	X509_free(fx.root);
	EVP_PKEY_free(fx.root_key);
	close(fx.log_fd);
	if (getenv("KEEP_TEST_DIR") != NULL)
		return 0;
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct creds *new_creds(void)
{
	struct creds *c = creds_new(&(struct creds_options){ .trust_domain = TD, .alpn = "m/1" });

	assert_non_null(c);
	return c;
}

static void serial_of(struct creds *c, char *buf)
{
	creds_serial(c, buf, CREDS_SERIAL_SIZE);
}

/* Polls cond every 50 ms for up to ms milliseconds. */
#define wait_for(cond, ms)                                                                         \
	do {                                                                                       \
		int64_t until_ = time_mono_ms() + (ms);                                            \
		while (!(cond) && time_mono_ms() < until_)                                         \
			usleep(50 * 1000);                                                         \
		if (!(cond))                                                                       \
			fail_msg("still false after %d ms: %s", (ms), #cond);                      \
	} while (0)

static bool serial_is(struct creds *c, const char *want)
{
	char got[CREDS_SERIAL_SIZE];

	serial_of(c, got);
	return strcmp(got, want) == 0;
}

/* Whether the certificate file at path starts with the serial want (written last). */
static bool file_serial_is(const char *path, const char *want)
{
	STACK_OF(X509) *chain = x509_read_chain(path, NULL);
	char got[CREDS_SERIAL_SIZE] = "";

	if (chain != NULL)
		x509_serial_hex(sk_X509_value(chain, 0), got, sizeof(got));
	sk_X509_pop_free(chain, X509_free);
	return strcmp(got, want) == 0;
}

/* ---- files mode ---- */

static struct identity_options files_options(const char *prefix, const char *out)
{
	static char cert[PATH_MAX], key[PATH_MAX];
	struct identity_options o = { .mode = IDENTITY_FILES, .output_dir = out };

	snprintf(cert, sizeof(cert), "%s", path_of(prefix));
	strcat(cert, ".crt");
	snprintf(key, sizeof(key), "%s", path_of(prefix));
	strcat(key, ".key");
	o.cert_file = cert;
	o.key_file = key;
	o.bundle_file = path_of("bundle.pem");
	return o;
}

static void test_files_rotate(void **state)
{
	char s1[CREDS_SERIAL_SIZE], s2[CREDS_SERIAL_SIZE], s3[CREDS_SERIAL_SIZE];
	char out[PATH_MAX], *text, *want;
	struct identity_options o;
	struct creds *c = new_creds();
	struct identity *id;
	struct err e = { 0 };
	struct stat st;
	EVP_PKEY *k;
	STACK_OF(X509) *svid;

	(void)state;
	put_cert(path_of("bundle.pem"), fx.root);
	new_leaf("svid", "URI:" WEB_ID, s1);
	snprintf(out, sizeof(out), "%s", path_of("out"));
	assert_int_equal(mkdir(out, 0755), 0);
	o = files_options("svid", out);
	id = identity_start(&o, c, &e);
	if (id == NULL)
		fail_msg("identity_start: %s", e.msg);
	assert_true(creds_ready(c));
	assert_true(serial_is(c, s1));

	/* A new pair, written in place one file after the other. */
	new_leaf("svid", "URI:" WEB_ID, s2);
	wait_for(serial_is(c, s2), 3500);
	assert_int_equal(creds_rotations(c), 1);

	/* A bad new pair (the new certificate with the old key) keeps the current one. */
	assert_int_equal(rename(path_of("svid.key"), path_of("old.key")), 0);
	new_leaf("svid", "URI:" WEB_ID, s3);
	assert_int_equal(rename(path_of("old.key"), path_of("svid.key")), 0);
	wait_for(identity_ca_errors(id) >= 1, 3000);
	usleep(1200 * 1000);
	assert_true(serial_is(c, s2));
	/* A certificate in another trust domain does not install either. */
	new_leaf("other", "URI:spiffe://other.org/ns/default/sa/web", NULL);
	text = slurp(path_of("other.crt"));
	put_text(path_of("svid.crt"), text, 0644);
	free(text);
	text = slurp(path_of("other.key"));
	put_text(path_of("svid.key"), text, 0600);
	x509_free_secret(text);
	usleep(2200 * 1000);
	assert_true(serial_is(c, s2));
	/* Then a good pair again. */
	new_leaf("svid", "URI:" WEB_ID, s3);
	wait_for(serial_is(c, s3), 3500);

	/* The output directory holds the current SVID (written just after it is installed). */
	wait_for(file_serial_is(path_of("out/svid.pem"), s3), 1000);
	svid = x509_read_chain(path_of("out/svid.pem"), &e);
	assert_non_null(svid);
	k = x509_read_key(path_of("out/svid-key.pem"), &e);
	assert_non_null(k);
	assert_int_equal(x509_check_key(sk_X509_value(svid, 0), k), 0);
	assert_int_equal(stat(path_of("out/svid-key.pem"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path_of("out/bundle.pem"));
	want = slurp(path_of("bundle.pem"));
	assert_string_equal(text, want);
	free(text);
	free(want);
	EVP_PKEY_free(k);
	sk_X509_pop_free(svid, X509_free);

	identity_stop(id);
	creds_free(c);
	text = slurp(path_of("test.log"));
	assert_contains(text, "new SVID files do not load; keeping the current SVID");
	assert_contains(text, "not in trust domain example.org");
	assert_contains(text, "\"msg\":\"SVID reloaded\"");
	assert_null(strstr(text, "PRIVATE KEY"));
	free(text);
}

static void expect_start_error(struct identity_options *o, int code, const char *msg)
{
	struct creds *c = new_creds();
	struct err e = { 0 };

	assert_null(identity_start(o, c, &e));
	assert_int_equal(e.code, code);
	assert_contains(e.msg, msg);
	assert_false(creds_ready(c));
	creds_free(c);
}

static void test_files_bad_at_start(void **state)
{
	struct identity_options o;
	char missing[PATH_MAX];

	(void)state;
	put_cert(path_of("bundle.pem"), fx.root);
	new_leaf("start", "URI:" WEB_ID, NULL);
	snprintf(missing, sizeof(missing), "%s", path_of("missing.pem"));

	o = files_options("start", NULL);
	o.cert_file = missing;
	expect_start_error(&o, -ENOENT, missing);
	o = files_options("start", NULL);
	o.key_file = missing;
	expect_start_error(&o, -ENOENT, missing);
	o = files_options("start", NULL);
	o.bundle_file = missing;
	expect_start_error(&o, -ENOENT, missing);

	o = files_options("start", NULL);
	assert_int_equal(chmod(o.key_file, 0644), 0);
	expect_start_error(&o, ERR_KEY_PERMISSIONS, o.key_file);
	assert_int_equal(chmod(o.key_file, 0600), 0);

	/* The key of another pair: the message names the files and the mismatch. */
	new_leaf("start2", "URI:" WEB_ID, NULL);
	o = files_options("start", NULL);
	o.key_file = path_of("start2.key");
	expect_start_error(&o, ERR_X509_KEY_MISMATCH, "does not match");
	expect_start_error(&o, ERR_X509_KEY_MISMATCH, o.cert_file);

	o = files_options("start", NULL);
	o.bundle_file = NULL;
	expect_start_error(&o, -EINVAL, "files mode needs");
}

static void test_ca_bad_options(void **state)
{
	struct identity_options o = {
		.mode = IDENTITY_CA,
		.ca_url = "https://127.0.0.1:1",
		.token_file = "/nonexistent",
		.trust_bundle_pem = NULL,
		.trust_domain = TD,
		.namespace_ = "default",
		.service_account = "web",
	};
	char *bundle;

	(void)state;
	expect_start_error(&o, -EINVAL, "needs the trust bundle");
	put_cert(path_of("bundle.pem"), fx.root);
	bundle = slurp(path_of("bundle.pem"));
	o.trust_bundle_pem = bundle;
	o.ca_url = "http://127.0.0.1:1";
	expect_start_error(&o, ERR_HTTPC_URL, "http://127.0.0.1:1");
	o.ca_url = "https://127.0.0.1:1";
	o.namespace_ = "Bad/Namespace";
	expect_start_error(&o, ERR_SPIFFE_PATH_CHAR, "Bad/Namespace");
	o.namespace_ = "default";
	o.trust_bundle_pem = "not PEM";
	expect_start_error(&o, ERR_PEM_NO_CERT, "");
	o.trust_bundle_pem = bundle;
	o.ttl = -1;
	expect_start_error(&o, -EINVAL, "negative");
	free(bundle);
}

/* ---- ca mode, against a real meshlet-ca ---- */

/* Runs bin/meshlet-ca with args, stdout into out_path (NULL: the log); returns its pid. */
static pid_t spawn_ca(const char *const *args, const char *out_path, bool wait)
{
	char prog[PATH_MAX + 16];
	const char *argv[24];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, n = 0;

	snprintf(prog, sizeof(prog), "%s/meshlet-ca", fx.bin);
	if (access(prog, X_OK) != 0)
		fail_msg("%s is not there: build it first (make), or set MESHLET_BIN_DIR", prog);
	argv[n++] = prog;
	for (; args[n - 1] != NULL && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1,
	                                                  out_path ? out_path : path_of("ca.log"),
	                                                  O_WRONLY | O_CREAT | O_TRUNC, 0600),
	                 0);
	assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, path_of("ca.log"),
	                                                  O_WRONLY | O_CREAT | O_APPEND, 0600),
	                 0);
	assert_int_equal(
	    posix_spawn(&pid, prog, &fa, NULL, (char *const *)(uintptr_t)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	if (!wait)
		return pid;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("meshlet-ca %s failed: %s", args[0], slurp(path_of("ca.log")));
	return 0;
}

/* A port on 127.0.0.1 that nothing listens on (now). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* `meshlet-ca serve` on port; returns once it logs that it serves. */
static pid_t start_ca(int port)
{
	char listen[32], cadir[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], jwks[PATH_MAX];
	const char *args[] = { "serve", "--listen",  listen, "--ca-dir",    cadir, "--tls-cert",
		               cert,    "--tls-key", key,    "--jwks-file", jwks,  NULL };
	pid_t pid;
	int64_t until = time_mono_ms() + 10000;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(cadir, sizeof(cadir), "%s", path_of("ca"));
	snprintf(cert, sizeof(cert), "%s", path_of("serving.crt"));
	snprintf(key, sizeof(key), "%s", path_of("serving.key"));
	snprintf(jwks, sizeof(jwks), "%s", path_of("jwks.json"));
	unlink(path_of("ca.log"));
	pid = spawn_ca(args, path_of("audit.log"), false);
	for (;;) {
		char *log = slurp(path_of("ca.log"));
		bool up = strstr(log, "\"msg\":\"serving\"") != NULL;
		int status;

		if (up) {
			free(log);
			return pid;
		}
		if (waitpid(pid, &status, WNOHANG) == pid || time_mono_ms() > until)
			fail_msg("meshlet-ca serve did not start: %s", log);
		free(log);
		usleep(20 * 1000);
	}
}

static void stop_ca(pid_t pid)
{
	int status;

	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* A CA directory, a serving certificate for localhost, a token issuer and its JWKS. */
static void make_ca(void)
{
	EVP_PKEY *issuer = EVP_EC_gen("P-256");
	char cadir[PATH_MAX], serving[PATH_MAX], ikey[PATH_MAX];

	snprintf(cadir, sizeof(cadir), "%s", path_of("ca"));
	snprintf(serving, sizeof(serving), "%s", path_of("serving"));
	snprintf(ikey, sizeof(ikey), "%s", path_of("issuer.key"));
	spawn_ca((const char *[]){ "init", "--dir", cadir, "--trust-domain", TD, NULL }, NULL,
	         true);
	spawn_ca((const char *[]){ "issue", "--dir", cadir, "--dns", "localhost", "--out", serving,
	                           NULL },
	         NULL, true);
	assert_non_null(issuer);
	put_key(ikey, issuer, 0600);
	EVP_PKEY_free(issuer);
	spawn_ca((const char *[]){ "jwks", "--key", ikey, NULL }, path_of("jwks.json"), true);
	spawn_ca((const char *[]){ "token", "--key", ikey, "--issuer",
	                           "https://kubernetes.default.svc.cluster.local", "--audience",
	                           "meshlet-ca", "--namespace", "default", "--service-account",
	                           "web", NULL },
	         path_of("token.txt"), true);
	spawn_ca((const char *[]){ "token", "--key", ikey, "--issuer",
	                           "https://kubernetes.default.svc.cluster.local", "--audience",
	                           "meshlet-ca", "--namespace", "default", "--service-account",
	                           "db", NULL },
	         path_of("db-token.txt"), true);
}

static struct identity_options ca_options(int port, const char *bundle, char *url, size_t size)
{
	snprintf(url, size, "https://127.0.0.1:%d", port);
	return (struct identity_options){
		.mode = IDENTITY_CA,
		.ca_url = url,
		.ca_server_name = "localhost",
		.token_file = path_of("token"),
		.trust_bundle_pem = bundle,
		.trust_domain = TD,
		.namespace_ = "default",
		.service_account = "web",
		.ttl = 10,
	};
}

static void test_ca_down_at_start(void **state)
{
	char url[64], want[96], *bundle, *text;
	int port;
	struct creds *c = new_creds();
	struct identity_options o;
	struct identity *id;
	struct err e = { 0 };
	int64_t t0;

	(void)state;
	put_cert(path_of("bundle.pem"), fx.root);
	put_text(path_of("token"), "a.b.c\n", 0600);
	bundle = slurp(path_of("bundle.pem"));
	port = free_port();
	o = ca_options(port, bundle, url, sizeof(url));
	id = identity_start(&o, c, &e);
	assert_non_null(id);
	wait_for(identity_ca_errors(id) >= 2, 3500);
	assert_false(creds_ready(c));
	text = slurp(path_of("test.log"));
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: connection refused", port);
	if (strstr(text, want) == NULL)
		fail_msg("the log does not say \"%s\"; it ends with: %s", want,
		         strlen(text) > 600 ? text + strlen(text) - 600 : text);
	free(text);
	/* identity_stop wakes the waiting thread at once. */
	t0 = time_mono_ms();
	identity_stop(id);
	assert_true(time_mono_ms() - t0 < 500);
	creds_free(c);
	free(bundle);
}

static void test_ca_mode(void **state)
{
	char url[64], *bundle, *text, *token, s1[CREDS_SERIAL_SIZE], s2[CREDS_SERIAL_SIZE];
	char out[PATH_MAX], ids[SPIFFE_ID_MAX + 1];
	struct creds *c = new_creds();
	struct identity_options o;
	struct identity *id;
	struct spiffe_id sid;
	struct err e = { 0 };
	STACK_OF(X509) *svid;
	EVP_PKEY *k;
	uint64_t errors;
	int port;
	pid_t ca;

	(void)state;
	make_ca();
	port = free_port();
	ca = start_ca(port);
	bundle = slurp(path_of("ca/root-cert.pem"));
	o = ca_options(port, bundle, url, sizeof(url));
	snprintf(out, sizeof(out), "%s", path_of("ca-out"));
	assert_int_equal(mkdir(out, 0755), 0);
	o.output_dir = out;

	/* No token yet: not ready, and it says why. */
	unlink(path_of("token"));
	id = identity_start(&o, c, &e);
	if (id == NULL)
		fail_msg("identity_start: %s", e.msg);
	wait_for(identity_ca_errors(id) >= 1, 2000);
	assert_false(creds_ready(c));
	/* The token file is read for each request: another service account's is refused. */
	text = slurp(path_of("db-token.txt"));
	put_text(path_of("token"), text, 0600);
	free(text);
	wait_for(identity_ca_errors(id) >= 2, 3000);
	assert_false(creds_ready(c));
	token = slurp(path_of("token.txt"));
	put_text(path_of("token"), token, 0600);
	wait_for(creds_ready(c), 6000);
	assert_int_equal(creds_id(c, &sid), 0);
	assert_int_equal(spiffe_id_format(&sid, ids, sizeof(ids)), 0);
	assert_string_equal(ids, WEB_ID);
	assert_true(creds_not_after(c) <= time_now_ms() / 1000 + 11);
	assert_true(creds_not_after(c) > time_now_ms() / 1000 + 5);
	serial_of(c, s1);
	wait_for(file_serial_is(path_of("ca-out/svid.pem"), s1), 1000);
	svid = x509_read_chain(path_of("ca-out/svid.pem"), &e);
	assert_non_null(svid);
	k = x509_read_key(path_of("ca-out/svid-key.pem"), &e);
	assert_non_null(k);
	assert_int_equal(x509_check_key(sk_X509_value(svid, 0), k), 0);
	EVP_PKEY_free(k);
	sk_X509_pop_free(svid, X509_free);

	/* Renewed at about half of the 10 s lifetime. */
	wait_for(creds_rotations(c) >= 1, 8000);
	serial_of(c, s2);
	assert_string_not_equal(s1, s2);

	/* The CA goes away: the current SVID stays, failures are counted. */
	stop_ca(ca);
	errors = identity_ca_errors(id);
	wait_for(identity_ca_errors(id) > errors, 8000);
	assert_true(creds_ready(c));
	assert_true(serial_is(c, s2));
	assert_true(creds_not_after(c) > time_now_ms() / 1000);
	/* It comes back: a new SVID follows. */
	ca = start_ca(port);
	wait_for(!serial_is(c, s2), 6000);
	identity_stop(id);
	stop_ca(ca);

	text = slurp(path_of("test.log"));
	assert_contains(text, "cannot get an SVID from meshlet-ca");
	assert_contains(text, "connection refused");
	assert_contains(text, "meshlet-ca answered 403 csr_identity");
	assert_contains(text, "SVID request succeeded again");
	assert_contains(text, "\"msg\":\"SVID issued\"");
	/* Neither the token nor a key is ever logged. */
	token[strcspn(token, "\n")] = '\0';
	assert_null(strstr(text, token));
	assert_null(strstr(text, strchr(token, '.')));
	assert_null(strstr(text, "PRIVATE KEY"));
	free(text);
	free(token);
	free(bundle);
	creds_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_rotate),   cmocka_unit_test(test_files_bad_at_start),
		cmocka_unit_test(test_ca_bad_options), cmocka_unit_test(test_ca_down_at_start),
		cmocka_unit_test(test_ca_mode),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
