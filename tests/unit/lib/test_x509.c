/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/x509.c, on certificates and keys made at run time in a temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "meshlet/x509.h"

#define WEB_ID "spiffe://example.org/ns/default/sa/web"

static struct {
	char dir[64];
	EVP_PKEY *root_key, *leaf_key, *rsa_key;
	X509 *root, *leaf, *rsa_leaf, *two_uris, *no_san, *dns_only, *https_uri;
} fx;

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

/* Our functions leave OpenSSL's error queue as they found it. */
#define assert_no_openssl_errors() assert_int_equal(ERR_peek_error(), 0)

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                       const char *san, int ca, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	name = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
	                                       -1, -1, 0));
	assert_true(X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_basic_constraints,
	                           ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	assert_non_null(ext);
	assert_true(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
	if (san != NULL) {
		ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		assert_true(X509_add_ext(x, ext, -1));
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static int setup(void **state)
{
	(void)state;
	strcpy(fx.dir, "/tmp/meshlet-test-x509-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	fx.root_key = EVP_EC_gen("P-256");
	fx.leaf_key = EVP_EC_gen("P-256");
	fx.rsa_key = EVP_RSA_gen(2048);
	if (fx.root_key == NULL || fx.leaf_key == NULL || fx.rsa_key == NULL)
		return -1;
	fx.root = make_cert(fx.root_key, fx.root_key, NULL, "meshlet test root", NULL, 1, 1);
	fx.leaf = make_cert(fx.leaf_key, fx.root_key, fx.root, "web", "URI:" WEB_ID, 0, 2);
	fx.rsa_leaf = make_cert(fx.rsa_key, fx.root_key, fx.root, "rsa", "URI:" WEB_ID, 0, 3);
	fx.two_uris = make_cert(fx.leaf_key, fx.root_key, fx.root, "two",
	                        "URI:" WEB_ID ",URI:spiffe://example.org/ns/default/sa/db", 0, 4);
	fx.no_san = make_cert(fx.leaf_key, fx.root_key, fx.root, "none", NULL, 0, 5);
	fx.dns_only =
	    make_cert(fx.leaf_key, fx.root_key, fx.root, "dns", "DNS:web.default.svc", 0, 6);
	fx.https_uri = make_cert(fx.leaf_key, fx.root_key, fx.root, "https",
	                         "URI:https://example.org/web", 0, 7);
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	X509_free(fx.root);
	X509_free(fx.leaf);
	X509_free(fx.rsa_leaf);
	X509_free(fx.two_uris);
	X509_free(fx.no_san);
	X509_free(fx.dns_only);
	X509_free(fx.https_uri);
	EVP_PKEY_free(fx.root_key);
	EVP_PKEY_free(fx.leaf_key);
	EVP_PKEY_free(fx.rsa_key);
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path in the temporary directory; four rotating buffers so that a call may use several. */
static const char *path_of(const char *name)
{
	static char bufs[4][256];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", fx.dir, name);
	return p;
}

/* Writes text into the temporary directory with exactly mode; returns the path. */
static const char *put(const char *name, const char *text, mode_t mode)
{
	const char *path = path_of(name);
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *bio_text(BIO *bio)
{
	char *data, *s;
	long n = BIO_get_mem_data(bio, &data);

	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	BIO_free(bio);
	return s;
}

static char *cert_text(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_true(PEM_write_bio_X509(bio, x));
	return bio_text(bio);
}

enum key_format { PKCS8, TRADITIONAL };

static char *key_text(EVP_PKEY *key, enum key_format format, const char *password)
{
	BIO *bio = BIO_new(BIO_s_mem());
	const EVP_CIPHER *cipher = password != NULL ? EVP_aes_256_cbc() : NULL;
	unsigned char *pass = (unsigned char *)(uintptr_t)password;
	int plen = password != NULL ? (int)strlen(password) : 0;

	if (format == PKCS8)
		assert_true(PEM_write_bio_PrivateKey(bio, key, cipher, pass, plen, NULL, NULL));
	else
		assert_true(
		    PEM_write_bio_PrivateKey_traditional(bio, key, cipher, pass, plen, NULL, NULL));
	return bio_text(bio);
}

static char *concat(const char *a, const char *b)
{
	char *s = malloc(strlen(a) + strlen(b) + 1);

	assert_non_null(s);
	strcpy(s, a);
	strcat(s, b);
	return s;
}

/* The start of the nth (from 1) line of s that begins with prefix. */
static char *nth_line(char *s, const char *prefix, int n)
{
	char *p = s;

	for (;;) {
		if (strncmp(p, prefix, strlen(prefix)) == 0 && --n == 0)
			return p;
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
}

static STACK_OF(X509) *chain_of(const char *text)
{
	struct err e = { 0 };
	STACK_OF(X509) *chain = x509_parse_chain(text, strlen(text), "test", &e);

	if (chain == NULL)
		fail_msg("x509_parse_chain: %s (%s)", e.msg, err_name(e.code));
	return chain;
}

/* Certificate chains */

static void test_chain_two_in_order(void **state)
{
	char *leaf = cert_text(fx.leaf), *root = cert_text(fx.root), *both = concat(leaf, root);
	struct err e = { 0 };
	STACK_OF(X509) *chain;

	(void)state;
	chain = x509_read_chain(put("chain.pem", both, 0644), &e);
	assert_non_null(chain);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), fx.leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), fx.root), 0);
	assert_int_equal(e.code, 0);
	assert_no_openssl_errors();
	sk_X509_pop_free(chain, X509_free);
	free(both);
	free(root);
	free(leaf);
}

static void test_chain_skips_other_text(void **state)
{
	char *leaf = cert_text(fx.leaf), *root = cert_text(fx.root);
	char *key = key_text(fx.leaf_key, PKCS8, NULL), *text, *crlf, *p, *q;
	STACK_OF(X509) *chain;

	(void)state;
	/* Comments, a key block in between, and CRLF line ends, as some tools write. */
	text = malloc(strlen(leaf) + strlen(root) + strlen(key) + 64);
	assert_non_null(text);
	sprintf(text, "subject=CN = web\n%s%s# the root\n%s", leaf, key, root);
	crlf = malloc(2 * strlen(text) + 1);
	assert_non_null(crlf);
	for (p = text, q = crlf; *p != '\0'; p++) {
		if (*p == '\n')
			*q++ = '\r';
		*q++ = *p;
	}
	*q = '\0';
	chain = chain_of(crlf);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), fx.leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), fx.root), 0);
	sk_X509_pop_free(chain, X509_free);
	/* The length alone bounds the text, which may lack its last line end. */
	chain = x509_parse_chain(leaf, strlen(leaf) - 1, "test", NULL);
	assert_non_null(chain);
	assert_int_equal(sk_X509_num(chain), 1);
	sk_X509_pop_free(chain, X509_free);
	free(crlf);
	free(text);
	free(key);
	free(root);
	free(leaf);
}

static void test_chain_no_cert(void **state)
{
	char *key = key_text(fx.leaf_key, PKCS8, NULL);
	struct err e = { 0 };
	const char *path;

	(void)state;
	path = put("empty.pem", "", 0644);
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, ERR_PEM_NO_CERT);
	assert_contains(e.msg, path);
	assert_contains(e.msg, "empty");

	path = put("key-only.pem", key, 0600);
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, ERR_PEM_NO_CERT);
	assert_contains(e.msg, path);
	assert_contains(e.msg, "\"PRIVATE KEY\"");

	path = put("text.pem", "this is not PEM\n", 0644);
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, ERR_PEM_NO_CERT);
	assert_contains(e.msg, path);
	assert_no_openssl_errors();
	free(key);
}

static void test_chain_damaged_base64(void **state)
{
	char *leaf = cert_text(fx.leaf), *root = cert_text(fx.root), *both = concat(leaf, root);
	struct err e = { 0 };
	const char *path;
	char *line;

	(void)state;
	/* A character outside the base64 alphabet in the second block's third line. */
	line = nth_line(both, "-----BEGIN CERTIFICATE-----", 2);
	line = strchr(strchr(strchr(line, '\n') + 1, '\n') + 1, '\n') + 1;
	line[10] = '!';
	path = put("damaged.pem", both, 0644);
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, ERR_PEM_BAD_CERT);
	assert_contains(e.msg, path);
	assert_contains(e.msg, "block 2");
	assert_contains(e.msg, "damaged");
	assert_no_openssl_errors();
	free(both);
	free(root);
	free(leaf);
}

static void test_chain_damaged_blocks(void **state)
{
	static const char junk[] = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n"
	                           "-----END CERTIFICATE-----\n";
	static const char mixed[] = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n"
	                            "-----END PRIVATE KEY-----\n";
	char *leaf = cert_text(fx.leaf), *root = cert_text(fx.root), *both = concat(leaf, root);
	struct err e = { 0 };

	(void)state;
	/* The second block has lost its END line. */
	*nth_line(both, "-----END CERTIFICATE-----", 2) = '\0';
	assert_null(x509_parse_chain(both, strlen(both), "cut.pem", &e));
	assert_int_equal(e.code, ERR_PEM_BAD_CERT);
	assert_contains(e.msg, "cut.pem: certificate block 2");
	assert_contains(e.msg, "no END line");

	/* Valid base64 of something that is not a certificate. */
	assert_null(x509_parse_chain(junk, strlen(junk), "junk.pem", &e));
	assert_int_equal(e.code, ERR_PEM_BAD_CERT);
	assert_contains(e.msg, "junk.pem: certificate block 1 (line 1)");

	/* The END line names another label: the block never ends. */
	assert_null(x509_parse_chain(mixed, strlen(mixed), "mixed.pem", &e));
	assert_int_equal(e.code, ERR_PEM_BAD_CERT);
	assert_no_openssl_errors();
	free(both);
	free(root);
	free(leaf);
}

static void test_chain_file_errors(void **state)
{
	struct err e = { 0 };
	const char *path = path_of("no-such-file.pem");
	int fd;

	(void)state;
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, -ENOENT);
	assert_contains(e.msg, path);
	assert_contains(e.msg, strerror(ENOENT));
	assert_null(x509_read_chain(path, NULL));

	assert_null(x509_read_chain(fx.dir, &e));
	assert_int_equal(e.code, -EISDIR);
	assert_contains(e.msg, fx.dir);

	path = path_of("huge.pem");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, X509_FILE_MAX + 1), 0);
	close(fd);
	assert_null(x509_read_chain(path, &e));
	assert_int_equal(e.code, -EFBIG);
	assert_contains(e.msg, path);
	unlink(path);
}

/* Private keys: permissions */

static void test_key_mode_0600_ok(void **state)
{
	char *pem = key_text(fx.leaf_key, PKCS8, NULL);
	struct err e = { 0 };
	EVP_PKEY *key;

	(void)state;
	key = x509_read_key(put("key.pem", pem, 0600), &e);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_eq(key, fx.leaf_key), 1);
	assert_int_equal(e.code, 0);
	EVP_PKEY_free(key);
	key = x509_read_key(put("key.pem", pem, 0400), &e);
	assert_non_null(key);
	EVP_PKEY_free(key);
	/* Owned by root, readable by its group: how Kubernetes mounts a Secret with fsGroup. */
	if (geteuid() == 0) {
		const char *path = put("secret.pem", pem, 0440);

		assert_int_equal(chown(path, 0, 1337), 0);
		key = x509_read_key(path, &e);
		assert_non_null(key);
		EVP_PKEY_free(key);
		assert_int_equal(chmod(path, 0640), 0);
		key = x509_read_key(path, &e);
		assert_non_null(key);
		EVP_PKEY_free(key);
		/* Not group write, and never others, even for root's files. */
		assert_int_equal(chmod(path, 0460), 0);
		assert_null(x509_read_key(path, &e));
		assert_int_equal(e.code, ERR_KEY_PERMISSIONS);
		assert_int_equal(chmod(path, 0444), 0);
		assert_null(x509_read_key(path, &e));
		assert_int_equal(e.code, ERR_KEY_PERMISSIONS);
	}
	assert_no_openssl_errors();
	free(pem);
}

static void test_key_mode_refused(void **state)
{
	static const struct {
		mode_t mode;
		const char *shown, *verb;
	} cases[] = {
		{ 0644, "0644", "read" },   { 0640, "0640", "read" },
		{ 0604, "0604", "read" },   { 0620, "0620", "write" },
		{ 0602, "0602", "write" },  { 0666, "0666", "read" },
		{ 0610, "0610", "access" }, { 0644 | S_ISVTX, "1644", "read" },
		{ 0660, "0660", "read" },   { 0440 | 04, "0444", "read" },
	};
	char *pem = key_text(fx.leaf_key, PKCS8, NULL), want[512];
	struct err e;
	const char *path;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		path = put("loose.pem", pem, cases[i].mode);
		/* Group read alone is allowed for root's files only: the tests' file is not root's. */
		if (geteuid() == 0)
			assert_int_equal(chown(path, 1000, 1000), 0);
		assert_null(x509_read_key(path, &e));
		assert_int_equal(e.code, ERR_KEY_PERMISSIONS);
		snprintf(want, sizeof(want),
		         "%s: mode %s lets group or others %s the private key; chmod 600 %s", path,
		         cases[i].shown, cases[i].verb, path);
		assert_string_equal(e.msg, want);
	}
	free(pem);
}

static void test_key_symlinks(void **state)
{
	char *pem = key_text(fx.leaf_key, PKCS8, NULL);
	struct err e = { 0 };
	EVP_PKEY *key;

	(void)state;
	/* As Kubernetes mounts a secret: tls.key -> ..data/tls.key, ..data -> ..2026_01_01. */
	assert_int_equal(mkdir(path_of("..2026_01_01"), 0755), 0);
	put("..2026_01_01/tls.key", pem, 0600);
	assert_int_equal(symlink("..2026_01_01", path_of("..data")), 0);
	assert_int_equal(symlink("..data/tls.key", path_of("tls.key")), 0);
	key = x509_read_key(path_of("tls.key"), &e);
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_eq(key, fx.leaf_key), 1);
	EVP_PKEY_free(key);

	/* A link is judged by what it points to, whose mode the message shows. */
	put("..2026_01_01/tls.key", pem, 0644);
	assert_null(x509_read_key(path_of("tls.key"), &e));
	assert_int_equal(e.code, ERR_KEY_PERMISSIONS);
	assert_contains(e.msg, path_of("tls.key"));
	assert_contains(e.msg, "0644");
	free(pem);
}

static void test_key_file_errors(void **state)
{
	struct err e = { 0 };
	const char *path = path_of("no-such-key.pem");

	(void)state;
	assert_null(x509_read_key(fx.dir, &e));
	assert_int_equal(e.code, -EISDIR);
	assert_contains(e.msg, fx.dir);

	assert_null(x509_read_key(path, &e));
	assert_int_equal(e.code, -ENOENT);
	assert_contains(e.msg, path);

	path = path_of("fifo.pem");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(x509_read_key(path, &e));
	assert_int_equal(e.code, -EINVAL);
	assert_contains(e.msg, path);
	unlink(path);
	assert_null(x509_read_key(path, NULL));
}

/* Private keys: formats */

static void check_key_format(EVP_PKEY *want, enum key_format format, const char *label)
{
	char *pem = key_text(want, format, NULL), begin[64];
	struct err e = { 0 };
	EVP_PKEY *key;

	snprintf(begin, sizeof(begin), "-----BEGIN %s-----\n", label);
	assert_contains(pem, begin);
	key = x509_read_key(put("format.pem", pem, 0600), &e);
	if (key == NULL)
		fail_msg("%s: %s", label, e.msg);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_get_base_id(want));
	assert_int_equal(EVP_PKEY_eq(key, want), 1);
	assert_no_openssl_errors();
	EVP_PKEY_free(key);
	free(pem);
}

static void test_key_formats(void **state)
{
	(void)state;
	check_key_format(fx.leaf_key, PKCS8, "PRIVATE KEY");
	check_key_format(fx.leaf_key, TRADITIONAL, "EC PRIVATE KEY");
	check_key_format(fx.rsa_key, PKCS8, "PRIVATE KEY");
	check_key_format(fx.rsa_key, TRADITIONAL, "RSA PRIVATE KEY");
}

static void test_key_with_other_blocks(void **state)
{
	char *key = key_text(fx.leaf_key, TRADITIONAL, NULL), *cert = cert_text(fx.leaf);
	char *params, *combined;
	EVP_PKEY *got;

	(void)state;
	/* "openssl ecparam -genkey" writes the curve first; a combined file holds the cert. */
	params = concat("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
	                "-----END EC PARAMETERS-----\n",
	                key);
	combined = concat(cert, params);
	got = x509_read_key(put("combined.pem", combined, 0600), NULL);
	assert_non_null(got);
	assert_int_equal(EVP_PKEY_eq(got, fx.leaf_key), 1);
	EVP_PKEY_free(got);
	free(combined);
	free(params);
	free(cert);
	free(key);
}

static void test_key_encrypted(void **state)
{
	char *p8 = key_text(fx.leaf_key, PKCS8, "hunter2");
	char *trad = key_text(fx.rsa_key, TRADITIONAL, "hunter2");
	struct err e = { 0 };
	const char *path;

	(void)state;
	assert_contains(p8, "-----BEGIN ENCRYPTED PRIVATE KEY-----");
	path = put("enc-p8.pem", p8, 0600);
	assert_null(x509_read_key(path, &e));
	assert_int_equal(e.code, ERR_PEM_KEY_ENCRYPTED);
	assert_contains(e.msg, path);
	assert_contains(e.msg, "encrypted");

	assert_contains(trad, "Proc-Type: 4,ENCRYPTED");
	path = put("enc-trad.pem", trad, 0600);
	assert_null(x509_read_key(path, &e));
	assert_int_equal(e.code, ERR_PEM_KEY_ENCRYPTED);
	assert_contains(e.msg, path);
	assert_no_openssl_errors();
	free(trad);
	free(p8);
}

static void test_key_garbage(void **state)
{
	static const struct {
		const char *text;
		int code;
		const char *says;
	} cases[] = {
		{ "", ERR_PEM_NO_KEY, "no private key" },
		{ "hello, world\n", ERR_PEM_NO_KEY, "no private key" },
		{ "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n",
		  ERR_PEM_BAD_KEY, "block 1 (line 1) is damaged" },
		{ "-----BEGIN EC PRIVATE KEY-----\nAAECAwQF\n-----END EC PRIVATE KEY-----\n",
		  ERR_PEM_BAD_KEY, "damaged" },
		{ "-----BEGIN RSA PRIVATE KEY-----\nAAECAwQF\n-----END RSA PRIVATE KEY-----\n",
		  ERR_PEM_BAD_KEY, "damaged" },
		{ "\n-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
		  ERR_PEM_BAD_KEY, "block 1 (line 2) is damaged" },
		{ "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n", ERR_PEM_BAD_KEY, "no END line" },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nAAECAwQF\n"
		  "-----END OPENSSH PRIVATE KEY-----\n",
		  ERR_PEM_BAD_KEY, "\"OPENSSH PRIVATE KEY\", which meshlet cannot read" },
	};
	struct err e;
	const char *path;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		path = put("garbage.pem", cases[i].text, 0600);
		assert_null(x509_read_key(path, &e));
		if (e.code != cases[i].code)
			fail_msg("case %zu: got %s (%s), want %s", i, err_name(e.code), e.msg,
			         err_name(cases[i].code));
		assert_contains(e.msg, path);
		assert_contains(e.msg, cases[i].says);
	}
	assert_no_openssl_errors();
}

static void test_key_two_keys(void **state)
{
	char *a = key_text(fx.leaf_key, PKCS8, NULL), *b = key_text(fx.root_key, PKCS8, NULL);
	char *both = concat(a, b);
	struct err e = { 0 };

	(void)state;
	assert_null(x509_read_key(put("two-keys.pem", both, 0600), &e));
	assert_int_equal(e.code, ERR_PEM_BAD_KEY);
	assert_contains(e.msg, "more than one private key");
	free(both);
	free(b);
	free(a);
}

/* Writing files */

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_write_file_mode(void **state)
{
	char dir[256];
	const char *path;
	struct err e = { 0 };
	struct stat st;
	mode_t old;

	(void)state;
	snprintf(dir, sizeof(dir), "%s", path_of("out"));
	assert_int_equal(mkdir(dir, 0755), 0);
	/* The mode asked for is the mode given, whatever the umask. */
	old = umask(077);
	path = path_of("out/cert.pem");
	assert_int_equal(x509_write_file(path, "cert\n", 5, 0644, &e), 0);
	umask(0);
	assert_int_equal(x509_write_file(path_of("out/key.pem"), "key\n", 4, 0600, &e), 0);
	umask(old);
	assert_int_equal(stat(path_of("out/cert.pem"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(stat(path_of("out/key.pem"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_string_equal(slurp(path_of("out/cert.pem")), "cert\n");
	assert_string_equal(slurp(path_of("out/key.pem")), "key\n");
	assert_int_equal(x509_write_file(path_of("out/empty.pem"), NULL, 0, 0644, &e), 0);
	assert_string_equal(slurp(path_of("out/empty.pem")), "");
	assert_int_equal(count_entries(dir), 3);
}

static void test_write_file_atomic_replace(void **state)
{
	const char *path = put("replace.pem", "old contents\n", 0644);
	char buf[64] = { 0 };
	struct stat before, after;
	int fd;

	(void)state;
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &before), 0);
	assert_int_equal(x509_write_file(path, "new contents\n", 13, 0644, NULL), 0);
	/* A reader that had the old file open still reads it whole: a new inode replaced it. */
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 13);
	assert_string_equal(buf, "old contents\n");
	close(fd);
	assert_int_equal(stat(path, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	assert_string_equal(slurp(path), "new contents\n");
}

static void test_write_file_errors(void **state)
{
	char dir[256];
	const char *path;
	struct err e = { 0 };

	(void)state;
	snprintf(dir, sizeof(dir), "%s", path_of("werr"));
	path = path_of("no-such-dir/cert.pem");
	assert_int_equal(x509_write_file(path, "x", 1, 0644, &e), -ENOENT);
	assert_int_equal(e.code, -ENOENT);
	assert_contains(e.msg, path);

	/* Replacing a directory fails, and the temporary file does not stay behind. */
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(path_of("werr/sub"), 0755), 0);
	path = path_of("werr/sub");
	assert_int_equal(x509_write_file(path, "x", 1, 0644, &e), -EISDIR);
	assert_contains(e.msg, path);
	assert_int_equal(count_entries(dir), 1);

	path = path_of("werr/");
	assert_int_equal(x509_write_file(path, "x", 1, 0644, &e), -EISDIR);
	assert_contains(e.msg, path);
	assert_int_equal(x509_write_file(NULL, "x", 1, 0644, &e), -EINVAL);
}

/* PEM out */

static void test_cert_pem_round_trip(void **state)
{
	char *pem = x509_cert_pem(fx.leaf);
	STACK_OF(X509) *chain;

	(void)state;
	assert_non_null(pem);
	assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	chain = chain_of(pem);
	assert_int_equal(sk_X509_num(chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), fx.leaf), 0);
	sk_X509_pop_free(chain, X509_free);
	free(pem);
	assert_null(x509_cert_pem(NULL));
}

static void test_key_pem_round_trip(void **state)
{
	struct err e = { 0 };
	const char *path = path_of("round-trip.key");
	EVP_PKEY *keys[] = { fx.leaf_key, fx.rsa_key }, *got;
	STACK_OF(X509) *chain;
	char *pem;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		pem = x509_key_pem(keys[i]);
		assert_non_null(pem);
		assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
		assert_int_equal(x509_write_file(path, pem, strlen(pem), 0600, &e), 0);
		x509_free_secret(pem);
		got = x509_read_key(path, &e);
		assert_non_null(got);
		assert_int_equal(EVP_PKEY_eq(got, keys[i]), 1);
		EVP_PKEY_free(got);
	}
	/* A public key alone has no private PEM (a parsed certificate holds only that). */
	pem = x509_cert_pem(fx.leaf);
	chain = chain_of(pem);
	free(pem);
	assert_null(x509_key_pem(X509_get0_pubkey(sk_X509_value(chain, 0))));
	sk_X509_pop_free(chain, X509_free);
	assert_no_openssl_errors();
	x509_free_secret(NULL);
}

/* Certificate fields */

static void test_spiffe_id(void **state)
{
	struct spiffe_id id;

	(void)state;
	memset(&id, 0, sizeof(id));
	assert_int_equal(x509_spiffe_id(fx.leaf, &id), 0);
	assert_string_equal(id.td, "example.org");
	assert_string_equal(id.path, "/ns/default/sa/web");
	assert_int_equal(x509_spiffe_id(fx.no_san, &id), ERR_X509_NO_URI_SAN);
	assert_int_equal(x509_spiffe_id(fx.dns_only, &id), ERR_X509_NO_URI_SAN);
	assert_int_equal(x509_spiffe_id(fx.two_uris, &id), ERR_X509_MANY_URI_SANS);
	assert_int_equal(x509_spiffe_id(fx.https_uri, &id), ERR_SPIFFE_SCHEME);
	/* Failures leave out as it was. */
	assert_string_equal(id.path, "/ns/default/sa/web");
	assert_no_openssl_errors();
}

static void test_spiffe_id_duplicate_san(void **state)
{
	X509 *x = X509_dup(fx.leaf);
	X509_EXTENSION *ext =
	    X509_get_ext(fx.leaf, X509_get_ext_by_NID(fx.leaf, NID_subject_alt_name, -1));
	struct spiffe_id id;

	(void)state;
	/* Two SAN extensions (RFC 5280 forbids repeats): neither can be trusted. */
	assert_true(X509_add_ext(x, ext, -1));
	assert_int_equal(x509_spiffe_id(x, &id), ERR_X509_BAD_SAN);
	assert_no_openssl_errors();
	X509_free(x);
}

static void set_serial(X509 *x, const char *hex)
{
	BIGNUM *bn = NULL;

	assert_true(BN_hex2bn(&bn, hex) > 0);
	assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	BN_free(bn);
}

static void test_serial_hex(void **state)
{
	static const struct {
		const char *set, *want;
	} cases[] = {
		{ "0A1B2C", "a1b2c" },
		{ "0", "0" },
		{ "80", "80" },
		{ "1", "1" },
		{ "-5", "-5" },
		{ "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
		  "7fffffffffffffffffffffffffffffffffffffff" },
		{ "00000F", "f" },
	};
	X509 *x = X509_dup(fx.leaf);
	char buf[X509_SERIAL_HEX_SIZE];

	(void)state;
	assert_int_equal(x509_serial_hex(fx.leaf, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_serial(x, cases[i].set);
		assert_int_equal(x509_serial_hex(x, buf, sizeof(buf)), 0);
		assert_string_equal(buf, cases[i].want);
	}
	set_serial(x, "ABCDEF");
	assert_int_equal(x509_serial_hex(x, buf, 7), 0);
	assert_string_equal(buf, "abcdef");
	assert_int_equal(x509_serial_hex(x, buf, 6), ERR_TRUNCATED);
	assert_string_equal(buf, "");
	assert_int_equal(x509_serial_hex(x, buf, 0), ERR_TRUNCATED);
	set_serial(x, "0");
	assert_int_equal(x509_serial_hex(x, buf, 1), ERR_TRUNCATED);
	X509_free(x);
}

static void test_not_after(void **state)
{
	static const struct {
		const char *set;
		int64_t want;
	} cases[] = {
		{ "300101000000Z", 1893456000 },   /* UTCTime, 2030 */
		{ "20500101000000Z", 2524608000 }, /* GeneralizedTime, from 2050 */
		{ "20991231235959Z", 4102444799 }, /* a long-lived root */
		{ "700101000000Z", 0 },            /* the epoch */
		{ "500101000000Z", -631152000 },   /* UTCTime's first year */
		{ "20240229120000Z", 1709208000 }, /* a leap day */
	};
	X509 *x = X509_dup(fx.leaf);
	ASN1_TIME *t = X509_getm_notAfter(x);
	int64_t secs = 0;

	(void)state;
	assert_int_equal(x509_not_after(fx.leaf, &secs), 0);
	assert_true(secs > 1700000000);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(ASN1_TIME_set_string(t, cases[i].set));
		assert_int_equal(x509_not_after(x, &secs), 0);
		assert_int_equal(secs, cases[i].want);
	}
	assert_non_null(ASN1_TIME_set(t, 1893456000 + 59));
	assert_int_equal(x509_not_after(x, &secs), 0);
	assert_int_equal(secs, 1893456059);
	assert_true(ASN1_STRING_set(t, "garbage", 7));
	assert_int_equal(x509_not_after(x, &secs), ERR_X509_BAD_TIME);
	assert_no_openssl_errors();
	X509_free(x);
}

static void test_check_key(void **state)
{
	(void)state;
	assert_int_equal(x509_check_key(fx.leaf, fx.leaf_key), 0);
	assert_int_equal(x509_check_key(fx.root, fx.root_key), 0);
	assert_int_equal(x509_check_key(fx.rsa_leaf, fx.rsa_key), 0);
	assert_int_equal(x509_check_key(fx.leaf, fx.root_key), ERR_X509_KEY_MISMATCH);
	assert_int_equal(x509_check_key(fx.leaf, fx.rsa_key), ERR_X509_KEY_MISMATCH);
	assert_int_equal(x509_check_key(fx.rsa_leaf, fx.leaf_key), ERR_X509_KEY_MISMATCH);
	assert_int_equal(x509_check_key(NULL, fx.leaf_key), -EINVAL);
	assert_no_openssl_errors();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_two_in_order),
		cmocka_unit_test(test_chain_skips_other_text),
		cmocka_unit_test(test_chain_no_cert),
		cmocka_unit_test(test_chain_damaged_base64),
		cmocka_unit_test(test_chain_damaged_blocks),
		cmocka_unit_test(test_chain_file_errors),
		cmocka_unit_test(test_key_mode_0600_ok),
		cmocka_unit_test(test_key_mode_refused),
		cmocka_unit_test(test_key_symlinks),
		cmocka_unit_test(test_key_file_errors),
		cmocka_unit_test(test_key_formats),
		cmocka_unit_test(test_key_with_other_blocks),
		cmocka_unit_test(test_key_encrypted),
		cmocka_unit_test(test_key_garbage),
		cmocka_unit_test(test_key_two_keys),
		cmocka_unit_test(test_write_file_mode),
		cmocka_unit_test(test_write_file_atomic_replace),
		cmocka_unit_test(test_write_file_errors),
		cmocka_unit_test(test_cert_pem_round_trip),
		cmocka_unit_test(test_key_pem_round_trip),
		cmocka_unit_test(test_spiffe_id),
		cmocka_unit_test(test_spiffe_id_duplicate_san),
		cmocka_unit_test(test_serial_hex),
		cmocka_unit_test(test_not_after),
		cmocka_unit_test(test_check_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
