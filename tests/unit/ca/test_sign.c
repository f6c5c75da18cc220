/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for ca/sign.c: CAs made with sign_init in a temporary directory, loaded and used. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
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

#include "meshlet/time.h"
#include "meshlet/x509.h"
#include "ca/csr.h"
#include "ca/sign.h"

#define TD     "example.org"
#define WEB_ID "spiffe://" TD "/ns/default/sa/web"
#define TEN_Y  ((int64_t)87600 * 3600)

/* The six CAs: each key type, root only and with an intermediate. */
enum { P256_ROOT, P256_INTER, P384_ROOT, P384_INTER, RSA_ROOT, RSA_INTER, NCAS };

static const struct {
	const char *name;
	enum sign_key_type type;
	bool inter;
	int sig_nid; /* of everything the CA signs */
} cas[NCAS] = {
	{ "p256-root", SIGN_KEY_EC_P256, false, NID_ecdsa_with_SHA256 },
	{ "p256-inter", SIGN_KEY_EC_P256, true, NID_ecdsa_with_SHA256 },
	{ "p384-root", SIGN_KEY_EC_P384, false, NID_ecdsa_with_SHA384 },
	{ "p384-inter", SIGN_KEY_EC_P384, true, NID_ecdsa_with_SHA384 },
	{ "rsa-root", SIGN_KEY_RSA_3072, false, NID_sha256WithRSAEncryption },
	{ "rsa-inter", SIGN_KEY_RSA_3072, true, NID_sha256WithRSAEncryption },
};

static struct {
	char dir[64];
	struct signer *s[NCAS];
	EVP_PKEY *ec_key, *rsa_key;
	struct spiffe_id web;
	int64_t created; /* when sign_init ran */
} fx;

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (strstr((hay), (needle)) == NULL)                                               \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

#define assert_no_openssl_errors() assert_int_equal(ERR_peek_error(), 0)

/* A path in the temporary directory; eight rotating buffers so that a call may use several. */
static const char *path_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *path_of(const char *fmt, ...)
{
	static char bufs[8][512];
	static int next;
	char *p = bufs[next++ % 8], rel[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(p, sizeof(bufs[0]), "%s/%s", fx.dir, rel);
	return p;
}

static int setup(void **state)
{
	struct err e = { 0 };

	(void)state;
	strcpy(fx.dir, "/tmp/meshlet-test-sign-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	fx.created = time_now_ms() / 1000;
	for (int i = 0; i < NCAS; i++) {
		if (sign_init(path_of("%s", cas[i].name), TD, cas[i].type, TEN_Y, cas[i].inter,
		              &e) != 0) {
			fprintf(stderr, "sign_init %s: %s\n", cas[i].name, e.msg);
			return -1;
		}
		fx.s[i] = sign_load(path_of("%s", cas[i].name), &e);
		if (fx.s[i] == NULL) {
			fprintf(stderr, "sign_load %s: %s\n", cas[i].name, e.msg);
			return -1;
		}
	}
	fx.ec_key = EVP_EC_gen("P-256");
	fx.rsa_key = EVP_RSA_gen(2048);
	if (fx.ec_key == NULL || fx.rsa_key == NULL)
		return -1;
	return spiffe_id_parse(WEB_ID, strlen(WEB_ID), &fx.web);
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
	for (int i = 0; i < NCAS; i++)
		sign_free(fx.s[i]);
	EVP_PKEY_free(fx.ec_key);
	EVP_PKEY_free(fx.rsa_key);
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Helpers: files */

static STACK_OF(X509) *certs_in(const char *path)
{
	struct err e = { 0 };
	STACK_OF(X509) *certs = x509_read_chain(path, &e);

	if (certs == NULL)
		fail_msg("%s: %s", path, e.msg);
	return certs;
}

/* The first certificate of the file at path; the caller frees it. */
static X509 *cert_in(const char *path)
{
	STACK_OF(X509) *certs = certs_in(path);
	X509 *x = sk_X509_shift(certs);

	sk_X509_pop_free(certs, X509_free);
	return x;
}

static EVP_PKEY *key_in(const char *path)
{
	struct err e = { 0 };
	EVP_PKEY *key = x509_read_key(path, &e);

	if (key == NULL)
		fail_msg("%s: %s", path, e.msg);
	return key;
}

static void put_text(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(x509_write_file(path, text, strlen(text), mode, NULL), 0);
}

static void put_cert(const char *path, X509 *x)
{
	char *pem = x509_cert_pem(x);

	put_text(path, pem, 0644);
	free(pem);
}

static void put_key(const char *path, EVP_PKEY *key)
{
	char *pem = x509_key_pem(key);

	put_text(path, pem, 0600);
	x509_free_secret(pem);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Copies the file from to the file to, with mode. */
static void copy_file(const char *from, const char *to, mode_t mode)
{
	char *text = slurp(from);

	put_text(to, text, mode);
	free(text);
}

/* Copies the CA files of the directory src into a new directory dst. */
static void copy_ca(const char *src, const char *dst)
{
	static const char *const names[] = { SIGN_ROOT_CERT, SIGN_ROOT_KEY, SIGN_CA_CERT,
		                             SIGN_CA_KEY, SIGN_CERT_CHAIN };
	char from[512], to[512];
	struct stat st;

	assert_int_equal(mkdir(dst, 0755), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", src, names[i]);
		snprintf(to, sizeof(to), "%s/%s", dst, names[i]);
		if (stat(from, &st) < 0)
			continue;
		copy_file(from, to, st.st_mode & 0777);
	}
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Helpers: certificate fields */

static int64_t unix_of(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return time_from_utc_tm(&tm);
}

static X509_EXTENSION *ext_of(X509 *x, int nid, bool critical)
{
	int i = X509_get_ext_by_NID(x, nid, -1);
	X509_EXTENSION *ext;

	if (i < 0)
		fail_msg("no %s extension", OBJ_nid2sn(nid));
	/* Never twice. */
	assert_int_equal(X509_get_ext_by_NID(x, nid, i), -1);
	ext = X509_get_ext(x, i);
	if (X509_EXTENSION_get_critical(ext) != critical)
		fail_msg("%s: critical is %d, want %d", OBJ_nid2sn(nid),
		         X509_EXTENSION_get_critical(ext), critical);
	return ext;
}

static void check_basic_constraints(X509 *x, bool ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext_of(x, NID_basic_constraints, true));

	assert_non_null(bc);
	assert_int_equal(bc->ca != 0, ca);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	BASIC_CONSTRAINTS_free(bc);
}

/* The SAN holds exactly one name, of type with value. */
static void check_one_san(X509 *x, int type, const char *value)
{
	GENERAL_NAMES *names = X509V3_EXT_d2i(ext_of(x, NID_subject_alt_name, false));
	GENERAL_NAME *gn;
	const ASN1_STRING *s;

	assert_non_null(names);
	assert_int_equal(sk_GENERAL_NAME_num(names), 1);
	gn = sk_GENERAL_NAME_value(names, 0);
	assert_int_equal(gn->type, type);
	s = gn->d.ia5;
	assert_int_equal(ASN1_STRING_length(s), strlen(value));
	assert_memory_equal(ASN1_STRING_get0_data(s), value, strlen(value));
	GENERAL_NAMES_free(names);
}

static const ASN1_OCTET_STRING *ski_of(X509 *x)
{
	const ASN1_OCTET_STRING *ski;

	ext_of(x, NID_subject_key_identifier, false);
	ski = X509_get0_subject_key_id(x);
	assert_non_null(ski);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	return ski;
}

static void check_aki(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *aki;

	ext_of(x, NID_authority_key_identifier, false);
	aki = X509_get0_authority_key_id(x);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski_of(issuer)), 0);
}

/* O=meshlet, and a CN containing cn_part if that is not NULL, else no CN. */
static void check_subject(X509 *x, const char *cn_part)
{
	X509_NAME *name = X509_get_subject_name(x);
	char buf[256];

	assert_int_equal(X509_NAME_get_text_by_NID(name, NID_organizationName, buf, sizeof(buf)),
	                 7);
	assert_string_equal(buf, "meshlet");
	if (cn_part == NULL) {
		assert_int_equal(X509_NAME_entry_count(name), 1);
		return;
	}
	assert_int_equal(X509_NAME_entry_count(name), 2);
	assert_true(X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof(buf)) > 0);
	assert_contains(buf, cn_part);
}

/* The certificate that signs for s: the first of its chain, else its root. */
static X509 *signing_cert(const struct signer *s)
{
	const STACK_OF(X509) *chain = sign_chain(s);

	return sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : sk_X509_value(sign_roots(s), 0);
}

/* X509_verify_cert of leaf against s's roots with s's chain as untrusted, for purpose. */
static int verify(const struct signer *s, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_dup(sign_chain(s));
	int ok;

	for (int i = 0; i < sk_X509_num(sign_roots(s)); i++)
		assert_true(X509_STORE_add_cert(store, sk_X509_value(sign_roots(s), i)));
	assert_true(X509_STORE_CTX_init(ctx, store, leaf, untrusted));
	assert_true(X509_STORE_CTX_set_purpose(ctx, purpose));
	ok = X509_verify_cert(ctx);
	if (ok != 1)
		fprintf(stderr, "verify: %s\n",
		        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return ok;
}

static X509 *issue(const struct signer *s, EVP_PKEY *key, int64_t now, int64_t ttl)
{
	struct sign_request r = {
		.pubkey = key, .id = &fx.web, .now = now, .ttl = ttl, .backdate = 300
	};
	struct err e = { 0 };
	X509 *leaf = NULL;

	if (sign_issue(s, &r, &leaf, &e) != 0)
		fail_msg("sign_issue: %s (%s)", e.msg, err_name(e.code));
	assert_non_null(leaf);
	return leaf;
}

/* sign_key_type_parse */

static void test_key_type_parse(void **state)
{
	enum sign_key_type t = SIGN_KEY_EC_P256;

	(void)state;
	assert_int_equal(sign_key_type_parse("ec-p384", &t), 0);
	assert_int_equal(t, SIGN_KEY_EC_P384);
	assert_int_equal(sign_key_type_parse("rsa-3072", &t), 0);
	assert_int_equal(t, SIGN_KEY_RSA_3072);
	assert_int_equal(sign_key_type_parse("ec-p256", &t), 0);
	assert_int_equal(t, SIGN_KEY_EC_P256);
	assert_int_equal(sign_key_type_parse("rsa-2048", &t), -EINVAL);
	assert_int_equal(sign_key_type_parse("EC-P256", &t), -EINVAL);
	assert_int_equal(sign_key_type_parse("", &t), -EINVAL);
	assert_int_equal(sign_key_type_parse(NULL, &t), -EINVAL);
	assert_int_equal(t, SIGN_KEY_EC_P256);
}

/* sign_init */

static void test_init_files(void **state)
{
	(void)state;
	for (int i = 0; i < NCAS; i++) {
		assert_int_equal(mode_of(path_of("%s/root-cert.pem", cas[i].name)), 0644);
		assert_int_equal(mode_of(path_of("%s/root-key.pem", cas[i].name)), 0600);
		if (!cas[i].inter) {
			assert_int_equal(access(path_of("%s/ca-cert.pem", cas[i].name), F_OK), -1);
			assert_int_equal(access(path_of("%s/ca-key.pem", cas[i].name), F_OK), -1);
			assert_int_equal(access(path_of("%s/cert-chain.pem", cas[i].name), F_OK),
			                 -1);
			continue;
		}
		assert_int_equal(mode_of(path_of("%s/ca-cert.pem", cas[i].name)), 0644);
		assert_int_equal(mode_of(path_of("%s/ca-key.pem", cas[i].name)), 0600);
		assert_int_equal(mode_of(path_of("%s/cert-chain.pem", cas[i].name)), 0644);
	}
}

static void test_init_root_cert(void **state)
{
	static const int key_ids[NCAS] = { EVP_PKEY_EC, EVP_PKEY_EC,  EVP_PKEY_EC,
		                           EVP_PKEY_EC, EVP_PKEY_RSA, EVP_PKEY_RSA };
	static const int bits[NCAS] = { 256, 256, 384, 384, 3072, 3072 };
	X509 *root;
	int64_t nb, na;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		root = cert_in(path_of("%s/root-cert.pem", cas[i].name));
		assert_int_equal(X509_get_version(root), X509_VERSION_3);
		/* Self-signed, and the signature checks out. */
		assert_int_equal(
		    X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)), 0);
		assert_int_equal(X509_verify(root, X509_get0_pubkey(root)), 1);
		assert_int_equal(X509_get_signature_nid(root), cas[i].sig_nid);
		assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(root)), key_ids[i]);
		assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(root)), bits[i]);
		check_basic_constraints(root, true, -1);
		ext_of(root, NID_key_usage, true);
		assert_int_equal(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		/* The authority key identifier names the root itself. */
		check_aki(root, root);
		check_one_san(root, GEN_URI, "spiffe://" TD);
		check_subject(root, "meshlet root CA " TD);
		nb = unix_of(X509_get0_notBefore(root));
		na = unix_of(X509_get0_notAfter(root));
		/* Backdated an hour from when sign_init ran, which was after fx.created. */
		assert_true(nb >= fx.created - 3600 && nb <= fx.created - 3600 + 300);
		assert_int_equal(na - nb, TEN_Y + 3600);
		X509_free(root);
	}
	assert_no_openssl_errors();
}

static void test_init_intermediate_cert(void **state)
{
	STACK_OF(X509) *chain;
	X509 *root, *ca;
	EVP_PKEY *key;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		if (!cas[i].inter)
			continue;
		root = cert_in(path_of("%s/root-cert.pem", cas[i].name));
		ca = cert_in(path_of("%s/ca-cert.pem", cas[i].name));
		assert_int_equal(
		    X509_NAME_cmp(X509_get_issuer_name(ca), X509_get_subject_name(root)), 0);
		assert_int_equal(X509_verify(ca, X509_get0_pubkey(root)), 1);
		assert_int_equal(X509_get_signature_nid(ca), cas[i].sig_nid);
		check_basic_constraints(ca, true, 0);
		ext_of(ca, NID_key_usage, true);
		assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		check_aki(ca, root);
		assert_int_not_equal(ASN1_OCTET_STRING_cmp(ski_of(ca), ski_of(root)), 0);
		check_one_san(ca, GEN_URI, "spiffe://" TD);
		check_subject(ca, "meshlet intermediate CA " TD);
		assert_true(unix_of(X509_get0_notAfter(ca)) <= unix_of(X509_get0_notAfter(root)));
		/* Its own key, not the root's. */
		key = key_in(path_of("%s/ca-key.pem", cas[i].name));
		assert_int_equal(x509_check_key(ca, key), 0);
		EVP_PKEY_free(key);
		/* cert-chain.pem: the intermediate, then the root (Istio's cacerts layout). */
		chain = certs_in(path_of("%s/cert-chain.pem", cas[i].name));
		assert_int_equal(sk_X509_num(chain), 2);
		assert_int_equal(X509_cmp(sk_X509_value(chain, 0), ca), 0);
		assert_int_equal(X509_cmp(sk_X509_value(chain, 1), root), 0);
		sk_X509_pop_free(chain, X509_free);
		X509_free(ca);
		X509_free(root);
	}
	assert_no_openssl_errors();
}

static void test_init_refuses_overwrite(void **state)
{
	char *before = slurp(path_of("p256-root/root-cert.pem")), *after;
	struct err e = { 0 };

	(void)state;
	assert_int_equal(sign_init(path_of("p256-root"), TD, SIGN_KEY_EC_P256, TEN_Y, true, &e),
	                 -EEXIST);
	assert_int_equal(e.code, -EEXIST);
	assert_contains(e.msg, path_of("p256-root/root-key.pem"));
	assert_contains(e.msg, "already exists; meshlet-ca init never replaces a CA");
	after = slurp(path_of("p256-root/root-cert.pem"));
	assert_string_equal(before, after);
	assert_int_equal(access(path_of("p256-root/ca-cert.pem"), F_OK), -1);
	free(after);
	free(before);

	/* Any one of the five files is enough to refuse, and nothing else is written. */
	assert_int_equal(mkdir(path_of("half"), 0755), 0);
	put_text(path_of("half/cert-chain.pem"), "", 0644);
	assert_int_equal(sign_init(path_of("half"), TD, SIGN_KEY_EC_P256, TEN_Y, false, &e),
	                 -EEXIST);
	assert_contains(e.msg, path_of("half/cert-chain.pem"));
	assert_int_equal(access(path_of("half/root-cert.pem"), F_OK), -1);
	assert_int_equal(access(path_of("half/root-key.pem"), F_OK), -1);
}

static void test_init_bad_arguments(void **state)
{
	struct err e = { 0 };
	char cn[128];
	X509 *root;

	(void)state;
	assert_int_equal(
	    sign_init(path_of("bad1"), "Example.org", SIGN_KEY_EC_P256, TEN_Y, false, &e),
	    ERR_SPIFFE_TD_CHAR);
	assert_contains(e.msg, "Example.org");
	assert_int_equal(
	    sign_init(path_of("bad1"), "spiffe://example.org", SIGN_KEY_EC_P256, TEN_Y, false, &e),
	    ERR_SPIFFE_TD_CHAR);
	assert_int_equal(sign_init(path_of("bad1"), TD, SIGN_KEY_EC_P256, 0, false, &e),
	                 ERR_SIGN_TTL);
	assert_int_equal(sign_init(path_of("bad1"), TD, SIGN_KEY_EC_P256, -5, false, &e),
	                 ERR_SIGN_TTL);
	assert_int_equal(access(path_of("bad1"), F_OK), -1);
	assert_int_equal(sign_init(path_of("no/such/dir"), TD, SIGN_KEY_EC_P256, TEN_Y, false, &e),
	                 -ENOENT);
	assert_contains(e.msg, path_of("no/such/dir"));
	/* A long trust domain is left out of the CN (64 characters at most), not refused. */
	assert_int_equal(
	    sign_init(path_of("long"),
	              "a-trust-domain-name-that-is-long-enough-to-overflow.example.org",
	              SIGN_KEY_EC_P256, 3600, false, &e),
	    0);
	root = cert_in(path_of("long/root-cert.pem"));
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn,
	                                      sizeof(cn)) > 0);
	assert_string_equal(cn, "meshlet root CA");
	X509_free(root);
}

/* sign_load */

static void test_load_layouts(void **state)
{
	const STACK_OF(X509) *chain;
	X509 *root, *ca;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		assert_string_equal(sign_trust_domain(fx.s[i]), TD);
		root = cert_in(path_of("%s/root-cert.pem", cas[i].name));
		assert_int_equal(sk_X509_num(sign_roots(fx.s[i])), 1);
		assert_int_equal(X509_cmp(sk_X509_value(sign_roots(fx.s[i]), 0), root), 0);
		chain = sign_chain(fx.s[i]);
		if (cas[i].inter) {
			/* The intermediate goes after each leaf; the root never does. */
			ca = cert_in(path_of("%s/ca-cert.pem", cas[i].name));
			assert_int_equal(sk_X509_num(chain), 1);
			assert_int_equal(X509_cmp(sk_X509_value(chain, 0), ca), 0);
			assert_int_equal(sign_not_after(fx.s[i]), unix_of(X509_get0_notAfter(ca)));
			X509_free(ca);
		} else {
			assert_int_equal(sk_X509_num(chain), 0);
			assert_int_equal(sign_not_after(fx.s[i]),
			                 unix_of(X509_get0_notAfter(root)));
		}
		X509_free(root);
	}
}

static void expect_load_error(const char *dir, int code, const char *msg1, const char *msg2)
{
	struct err e = { 0 };
	struct signer *s = sign_load(dir, &e);

	if (s != NULL)
		fail_msg("%s loaded, want %s", dir, err_name(code));
	if (e.code != code)
		fail_msg("%s: got %s (%s), want %s", dir, err_name(e.code), e.msg, err_name(code));
	assert_contains(e.msg, msg1);
	if (msg2 != NULL)
		assert_contains(e.msg, msg2);
	assert_no_openssl_errors();
}

static void test_load_missing_files(void **state)
{
	(void)state;
	copy_ca(path_of("p256-inter"), path_of("m1"));
	unlink(path_of("m1/cert-chain.pem"));
	expect_load_error(path_of("m1"), -ENOENT, path_of("m1/cert-chain.pem"), "cannot open");
	unlink(path_of("m1/ca-key.pem"));
	expect_load_error(path_of("m1"), -ENOENT, path_of("m1/ca-key.pem"), NULL);

	copy_ca(path_of("p256-root"), path_of("m2"));
	unlink(path_of("m2/root-key.pem"));
	expect_load_error(path_of("m2"), -ENOENT, path_of("m2/root-key.pem"), NULL);
	unlink(path_of("m2/root-cert.pem"));
	expect_load_error(path_of("m2"), -ENOENT, path_of("m2/root-cert.pem"), NULL);
	expect_load_error(path_of("no-such-ca"), -ENOENT, path_of("no-such-ca/root-cert.pem"),
	                  NULL);
	assert_null(sign_load(path_of("no-such-ca"), NULL));
}

static void test_load_key_mode(void **state)
{
	(void)state;
	copy_ca(path_of("p256-root"), path_of("mode1"));
	assert_int_equal(chmod(path_of("mode1/root-key.pem"), 0644), 0);
	expect_load_error(path_of("mode1"), ERR_KEY_PERMISSIONS, path_of("mode1/root-key.pem"),
	                  "mode 0644");
	copy_ca(path_of("p256-inter"), path_of("mode2"));
	assert_int_equal(chmod(path_of("mode2/ca-key.pem"), 0640), 0);
	/* Group read is allowed for root's files only (x509_read_key): not root's here. */
	if (geteuid() == 0)
		assert_int_equal(chown(path_of("mode2/ca-key.pem"), 1000, 1000), 0);
	expect_load_error(path_of("mode2"), ERR_KEY_PERMISSIONS, path_of("mode2/ca-key.pem"),
	                  "mode 0640");
}

static void test_load_key_mismatch(void **state)
{
	EVP_PKEY *other = key_in(path_of("p384-root/root-key.pem"));

	(void)state;
	copy_ca(path_of("p256-root"), path_of("mis1"));
	put_key(path_of("mis1/root-key.pem"), other);
	expect_load_error(path_of("mis1"), ERR_X509_KEY_MISMATCH, path_of("mis1/root-key.pem"),
	                  "matches no certificate in");
	/* The root's key in place of the intermediate's. */
	copy_ca(path_of("p256-inter"), path_of("mis2"));
	copy_file(path_of("mis2/root-key.pem"), path_of("mis2/ca-key.pem"), 0600);
	expect_load_error(path_of("mis2"), ERR_X509_KEY_MISMATCH, path_of("mis2/ca-key.pem"),
	                  "does not match");
	EVP_PKEY_free(other);
}

static void test_load_leaf_as_ca(void **state)
{
	/* Backdated as the CA does, so that a clock that steps back cannot make it future. */
	struct sign_request r = {
		.id = &fx.web, .now = time_now_ms() / 1000, .ttl = 3600, .backdate = 300
	};
	struct err e = { 0 };
	X509 *leaf;

	(void)state;
	copy_ca(path_of("p256-inter"), path_of("leafca"));
	assert_int_equal(sign_issue_files(fx.s[P256_INTER], &r, path_of("leafca/leaf"), &e), 0);
	leaf = cert_in(path_of("leafca/leaf.crt"));
	put_cert(path_of("leafca/ca-cert.pem"), leaf);
	copy_file(path_of("leafca/leaf.key"), path_of("leafca/ca-key.pem"), 0600);
	expect_load_error(path_of("leafca"), ERR_SIGN_CA, path_of("leafca/ca-cert.pem"),
	                  "is not a CA certificate");
	X509_free(leaf);
}

/* Re-signs x with key, valid from nb to na. */
static void resign(X509 *x, EVP_PKEY *key, int64_t nb, int64_t na)
{
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
}

static void test_load_expired(void **state)
{
	int64_t now = time_now_ms() / 1000;
	EVP_PKEY *key;
	X509 *x;

	(void)state;
	copy_ca(path_of("p256-root"), path_of("exp1"));
	x = cert_in(path_of("exp1/root-cert.pem"));
	key = key_in(path_of("exp1/root-key.pem"));
	resign(x, key, now - 7200, now - 60);
	put_cert(path_of("exp1/root-cert.pem"), x);
	expect_load_error(path_of("exp1"), ERR_SIGN_CA, path_of("exp1/root-cert.pem"),
	                  "the CA certificate expired at ");
	/* Not valid yet either. */
	resign(x, key, now + 3600, now + 7200);
	put_cert(path_of("exp1/root-cert.pem"), x);
	expect_load_error(path_of("exp1"), ERR_SIGN_CA, path_of("exp1/root-cert.pem"),
	                  "is not valid before");
	X509_free(x);
	EVP_PKEY_free(key);

	/* An expired intermediate, signed again by its root. */
	copy_ca(path_of("p256-inter"), path_of("exp2"));
	x = cert_in(path_of("exp2/ca-cert.pem"));
	key = key_in(path_of("exp2/root-key.pem"));
	resign(x, key, now - 7200, now - 1);
	put_cert(path_of("exp2/ca-cert.pem"), x);
	expect_load_error(path_of("exp2"), ERR_SIGN_CA, path_of("exp2/ca-cert.pem"), "expired");
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_load_bad_chains(void **state)
{
	char *other_root = slurp(path_of("p384-root/root-cert.pem"));
	char *ca = slurp(path_of("p256-inter/ca-cert.pem"));

	(void)state;
	/* The intermediate does not chain to this root. */
	copy_ca(path_of("p256-inter"), path_of("chain1"));
	put_text(path_of("chain1/root-cert.pem"), other_root, 0644);
	expect_load_error(path_of("chain1"), ERR_SIGN_CA, path_of("chain1/ca-cert.pem"),
	                  "does not chain to a root in");

	/* ca-cert.pem holding a whole chain. */
	copy_ca(path_of("p256-inter"), path_of("chain2"));
	copy_file(path_of("chain2/cert-chain.pem"), path_of("chain2/ca-cert.pem"), 0644);
	expect_load_error(path_of("chain2"), ERR_SIGN_CA, "holds 2 certificates", NULL);

	/* The intermediate's certificate as "root": not self-signed, so it anchors nothing. */
	copy_ca(path_of("p256-inter"), path_of("chain3"));
	put_text(path_of("chain3/root-cert.pem"), ca, 0644);
	put_text(path_of("chain3/cert-chain.pem"), ca, 0644);
	expect_load_error(path_of("chain3"), ERR_SIGN_CA, "does not chain", NULL);

	/* The root-only layout holding an intermediate and its key: no root to anchor it. */
	copy_ca(path_of("p256-root"), path_of("chain4"));
	put_text(path_of("chain4/root-cert.pem"), ca, 0644);
	copy_file(path_of("p256-inter/ca-key.pem"), path_of("chain4/root-key.pem"), 0600);
	expect_load_error(path_of("chain4"), ERR_SIGN_CA, "does not chain", NULL);
	free(ca);
	free(other_root);
}

static void test_load_rotation_bundle(void **state)
{
	char *old_root = slurp(path_of("p384-root/root-cert.pem")), *bundle;
	char *root = slurp(path_of("p256-inter/root-cert.pem"));
	char *root2 = slurp(path_of("p256-root/root-cert.pem"));
	struct err e = { 0 };
	struct signer *s;
	X509 *leaf;

	(void)state;
	/* Two roots in root-cert.pem, either order: both are the trust bundle. */
	bundle = malloc(strlen(old_root) + strlen(root) + 1);
	strcat(strcpy(bundle, old_root), root);
	copy_ca(path_of("p256-inter"), path_of("rot1"));
	put_text(path_of("rot1/root-cert.pem"), bundle, 0644);
	s = sign_load(path_of("rot1"), &e);
	if (s == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(sk_X509_num(sign_roots(s)), 2);
	assert_int_equal(sk_X509_num(sign_chain(s)), 1);
	leaf = issue(s, fx.ec_key, time_now_ms() / 1000, 3600);
	assert_int_equal(verify(s, leaf, X509_PURPOSE_SSL_CLIENT), 1);
	X509_free(leaf);
	sign_free(s);

	/* Root only: the signing root is the one that root-key.pem matches. */
	copy_ca(path_of("p256-root"), path_of("rot2"));
	free(bundle);
	bundle = malloc(strlen(old_root) + strlen(root2) + 1);
	strcat(strcpy(bundle, old_root), root2);
	put_text(path_of("rot2/root-cert.pem"), bundle, 0644);
	s = sign_load(path_of("rot2"), &e);
	if (s == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(sk_X509_num(sign_roots(s)), 2);
	assert_int_equal(sk_X509_num(sign_chain(s)), 0);
	leaf = issue(s, fx.ec_key, time_now_ms() / 1000, 3600);
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	assert_int_equal(verify(s, leaf, X509_PURPOSE_SSL_SERVER), 1);
	X509_free(leaf);
	sign_free(s);
	free(bundle);
	free(root2);
	free(root);
	free(old_root);
}

/* sign_issue */

/* Every X509-SVID rule, on a leaf for key issued by CA i, valid from nb to na. */
static void check_svid(int i, EVP_PKEY *key, X509 *leaf, int64_t nb, int64_t na)
{
	X509 *signer = signing_cert(fx.s[i]);
	EXTENDED_KEY_USAGE *eku;
	struct spiffe_id id;
	BIGNUM *serial;

	assert_int_equal(X509_get_version(leaf), X509_VERSION_3);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
	/* Exactly one URI SAN, the SPIFFE ID, and no other name. */
	check_one_san(leaf, GEN_URI, WEB_ID);
	assert_int_equal(x509_spiffe_id(leaf, &id), 0);
	assert_true(spiffe_id_equal(&id, &fx.web));
	check_basic_constraints(leaf, false, -1);
	ext_of(leaf, NID_key_usage, true);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		assert_int_equal(X509_get_key_usage(leaf),
		                 KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	else
		assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	eku = X509V3_EXT_d2i(ext_of(leaf, NID_ext_key_usage, false));
	assert_non_null(eku);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)), NID_server_auth);
	assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 1)), NID_client_auth);
	EXTENDED_KEY_USAGE_free(eku);
	ski_of(leaf);
	check_aki(leaf, signer);
	assert_int_equal(X509_get_ext_count(leaf), 6);
	/* A positive serial of at least 128 bits (and at most RFC 5280's 20 octets). */
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	assert_non_null(serial);
	assert_false(BN_is_negative(serial));
	assert_true(BN_num_bits(serial) >= 128);
	assert_true(BN_num_bytes(serial) <= 20);
	BN_free(serial);
	check_subject(leaf, NULL);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(signer)),
	                 0);
	assert_int_equal(unix_of(X509_get0_notBefore(leaf)), nb);
	assert_int_equal(unix_of(X509_get0_notAfter(leaf)), na);
	assert_int_equal(X509_get_signature_nid(leaf), cas[i].sig_nid);
	assert_int_equal(verify(fx.s[i], leaf, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify(fx.s[i], leaf, X509_PURPOSE_SSL_SERVER), 1);
}

static void test_issue_svid(void **state)
{
	int64_t now = time_now_ms() / 1000;
	X509 *a, *b;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		a = issue(fx.s[i], fx.ec_key, now, 3600);
		check_svid(i, fx.ec_key, a, now - 300, now + 3600);
		b = issue(fx.s[i], fx.rsa_key, now, 3600);
		check_svid(i, fx.rsa_key, b, now - 300, now + 3600);
		/* Two issuances never share a serial. */
		assert_int_not_equal(
		    ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)), 0);
		X509_free(a);
		X509_free(b);
	}
	assert_no_openssl_errors();
}

static void test_issue_clamped(void **state)
{
	int64_t now = time_now_ms() / 1000;
	X509 *leaf;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		/* A lifetime past the CA's is cut back to the CA's notAfter. */
		leaf = issue(fx.s[i], fx.ec_key, now, 2 * TEN_Y);
		assert_int_equal(unix_of(X509_get0_notAfter(leaf)), sign_not_after(fx.s[i]));
		assert_int_equal(verify(fx.s[i], leaf, X509_PURPOSE_SSL_CLIENT), 1);
		X509_free(leaf);
		/* One second before the CA expires: a one-second certificate. */
		leaf = issue(fx.s[i], fx.ec_key, sign_not_after(fx.s[i]) - 1, 3600);
		assert_int_equal(unix_of(X509_get0_notAfter(leaf)), sign_not_after(fx.s[i]));
		X509_free(leaf);
	}
}

static void test_issue_dns(void **state)
{
	static const char *const dns[] = { "web.example.org", "*.web.example.org", "localhost" };
	/* Backdated as the CA does, so that a clock that steps back cannot make it future. */
	struct sign_request r = {
		.pubkey = fx.ec_key, .dns = dns, .ndns = 3, .ttl = 3600, .backdate = 300
	};
	struct err e = { 0 };
	GENERAL_NAMES *names;
	X509 *leaf = NULL;

	(void)state;
	r.now = time_now_ms() / 1000;
	assert_int_equal(sign_issue(fx.s[P256_INTER], &r, &leaf, &e), 0);
	names = X509V3_EXT_d2i(ext_of(leaf, NID_subject_alt_name, false));
	assert_int_equal(sk_GENERAL_NAME_num(names), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sk_GENERAL_NAME_value(names, i)->type, GEN_DNS);
		assert_string_equal(ASN1_STRING_get0_data(sk_GENERAL_NAME_value(names, i)->d.ia5),
		                    dns[i]);
	}
	GENERAL_NAMES_free(names);
	assert_int_equal(X509_check_host(leaf, "web.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "api.web.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "example.org", 0, 0, NULL), 0);
	check_basic_constraints(leaf, false, -1);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(verify(fx.s[P256_INTER], leaf, X509_PURPOSE_SSL_SERVER), 1);
	X509_free(leaf);

	/* An ID and DNS names: the URI first. */
	r.id = &fx.web;
	r.ndns = 1;
	assert_int_equal(sign_issue(fx.s[P256_ROOT], &r, &leaf, &e), 0);
	names = X509V3_EXT_d2i(ext_of(leaf, NID_subject_alt_name, false));
	assert_int_equal(sk_GENERAL_NAME_num(names), 2);
	assert_int_equal(sk_GENERAL_NAME_value(names, 0)->type, GEN_URI);
	assert_int_equal(sk_GENERAL_NAME_value(names, 1)->type, GEN_DNS);
	GENERAL_NAMES_free(names);
	X509_free(leaf);
	assert_no_openssl_errors();
}

static void expect_issue_error(const struct sign_request *r, int code, const char *msg)
{
	struct err e = { 0 };
	X509 *leaf = (X509 *)1;
	int rc = sign_issue(fx.s[P256_INTER], r, &leaf, &e);

	if (rc != code)
		fail_msg("got %s (%s), want %s", err_name(rc), e.msg, err_name(code));
	assert_null(leaf);
	assert_int_equal(e.code, code);
	assert_contains(e.msg, msg);
	assert_no_openssl_errors();
}

static void test_issue_refusals(void **state)
{
	const char *bad_dns[] = {
		"Web.example.org",  "-web.example.org", "web..example.org",  "web-.example.org", "",
		"web.example.org.", "a.*.example.org",  "web_1.example.org", "10.0.0.1:443"
	};
	const char *good_dns[] = { "web.example.org" };
	struct sign_request base = { .pubkey = fx.ec_key, .id = &fx.web, .ttl = 3600 }, r;
	struct spiffe_id td_only, other;
	struct err e = { 0 };

	(void)state;
	base.now = time_now_ms() / 1000;
	r = base;
	r.ttl = 0;
	expect_issue_error(&r, ERR_SIGN_TTL, "lifetime 0 s");
	r = base;
	r.backdate = -1;
	expect_issue_error(&r, ERR_SIGN_TTL, "backdate -1 s");
	r = base;
	r.ttl = INT64_MAX;
	expect_issue_error(&r, ERR_SIGN_TTL, "out of range");
	r = base;
	r.now = sign_not_after(fx.s[P256_INTER]);
	expect_issue_error(&r, ERR_SIGN_CA, "the signing certificate expired at ");

	assert_int_equal(spiffe_id_parse("spiffe://" TD, strlen("spiffe://" TD), &td_only), 0);
	r = base;
	r.id = &td_only;
	expect_issue_error(&r, ERR_SPIFFE_NO_PATH, "names a trust domain, not a workload");
	assert_int_equal(spiffe_id_parse("spiffe://other.org/ns/a/sa/b", 28, &other), 0);
	r.id = &other;
	expect_issue_error(&r, ERR_CSR_IDENTITY,
	                   "spiffe://other.org/ns/a/sa/b is not in the trust domain of this CA "
	                   "(" TD ")");

	r = base;
	r.id = NULL;
	expect_issue_error(&r, -EINVAL, "neither a SPIFFE ID nor a DNS name");
	for (size_t i = 0; i < sizeof(bad_dns) / sizeof(bad_dns[0]); i++) {
		r.dns = &bad_dns[i];
		r.ndns = 1;
		expect_issue_error(&r, -EINVAL, "is not a DNS name a certificate can carry");
	}
	r.dns = good_dns;
	r.ndns = SIGN_DNS_MAX + 1;
	expect_issue_error(&r, -EINVAL, "at most");
	r = base;
	r.pubkey = NULL;
	expect_issue_error(&r, -EINVAL, "no signer");
	assert_int_equal(sign_issue(NULL, &base, NULL, &e), -EINVAL);
}

static void test_issue_files(void **state)
{
	struct sign_request r = { .id = &fx.web, .ttl = 3600, .backdate = 60 };
	STACK_OF(X509) *chain;
	struct err e = { 0 };
	EVP_PKEY *key;
	X509 *leaf;

	(void)state;
	r.now = time_now_ms() / 1000;
	for (int i = P256_ROOT; i <= P256_INTER; i++) {
		/* Twice: the second replaces the first. */
		for (int round = 0; round < 2; round++)
			assert_int_equal(sign_issue_files(fx.s[i], &r, path_of("out%d", i), &e), 0);
		assert_int_equal(mode_of(path_of("out%d.key", i)), 0600);
		assert_int_equal(mode_of(path_of("out%d.crt", i)), 0644);
		key = key_in(path_of("out%d.key", i));
		assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
		assert_int_equal(EVP_PKEY_get_bits(key), 256);
		/* The leaf, then the intermediate (if any); never the root. */
		chain = certs_in(path_of("out%d.crt", i));
		assert_int_equal(sk_X509_num(chain), 1 + sk_X509_num(sign_chain(fx.s[i])));
		leaf = sk_X509_value(chain, 0);
		assert_int_equal(x509_check_key(leaf, key), 0);
		if (cas[i].inter)
			assert_int_equal(X509_cmp(sk_X509_value(chain, 1), signing_cert(fx.s[i])),
			                 0);
		check_svid(i, key, leaf, r.now - 60, r.now + 3600);
		sk_X509_pop_free(chain, X509_free);
		EVP_PKEY_free(key);
	}
	assert_int_equal(sign_issue_files(fx.s[P256_ROOT], &r, path_of("no/such/dir/x"), &e),
	                 -ENOENT);
	assert_contains(e.msg, path_of("no/such/dir/x.key"));
	assert_no_openssl_errors();
}

static void test_issue_from_csr(void **state)
{
	X509_REQ *req = X509_REQ_new();
	struct csr *parsed;
	int64_t now = time_now_ms() / 1000;
	struct sign_request r = { .id = &fx.web, .now = now, .ttl = 3600, .backdate = 300 };
	struct csr_info info;
	struct err e = { 0 };
	X509 *leaf = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	const unsigned char *p;
	char *pem;
	long n;

	(void)state;
	/* The whole path a workload's request takes, with a subject that must not be copied. */
	assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	                                       (const unsigned char *)"evil", -1, -1, 0));
	assert_true(X509_REQ_set_pubkey(req, fx.rsa_key));
	assert_true(X509_REQ_sign(req, fx.rsa_key, EVP_sha256()) > 0);
	assert_true(PEM_write_bio_X509_REQ(bio, req));
	n = BIO_get_mem_data(bio, &pem);
	parsed = csr_parse(pem, (size_t)n, &e);
	assert_non_null(parsed);
	assert_int_equal(csr_check(parsed, &fx.web, &info, &e), 0);
	assert_string_equal(info.key_desc, "rsa-2048");
	r.pubkey = csr_pubkey(parsed);
	assert_int_equal(sign_issue(fx.s[RSA_INTER], &r, &leaf, &e), 0);
	check_svid(RSA_INTER, fx.rsa_key, leaf, now - 300, now + 3600);
	X509_free(leaf);
	/*
	 * As meshlet-ca issues: the key's encoding copied from the request. The leaf holds no
	 * decoded key then, so it is read back from its DER as a client would.
	 */
	csr_spki(parsed, &r.spki_alg, &r.spki_key);
	assert_int_equal(sign_issue(fx.s[RSA_INTER], &r, &leaf, &e), 0);
	n = i2d_X509(leaf, &der);
	assert_true(n > 0);
	X509_free(leaf);
	p = der;
	leaf = d2i_X509(NULL, &p, n);
	assert_non_null(leaf);
	check_svid(RSA_INTER, fx.rsa_key, leaf, now - 300, now + 3600);
	X509_free(leaf);
	OPENSSL_free(der);
	csr_free(parsed);
	BIO_free(bio);
	X509_REQ_free(req);
}

/* Many threads issue from one signer at once. */
static void *issue_many(void *arg)
{
	struct sign_request r = { .pubkey = arg, .id = &fx.web, .ttl = 3600 };
	X509 *leaf;
	long failures = 0;

	r.now = time_now_ms() / 1000;
	for (int i = 0; i < 25; i++) {
		leaf = NULL;
		if (sign_issue(fx.s[P256_INTER], &r, &leaf, NULL) != 0 ||
		    X509_verify(leaf, X509_get0_pubkey(signing_cert(fx.s[P256_INTER]))) != 1)
			failures++;
		X509_free(leaf);
	}
	return (void *)failures;
}

/*
 * sign_issue_der writes the certificate itself: it must be the DER OpenSSL would write
 * for the same fields (re-encoding the parsed TBSCertificate gives the same bytes), for
 * every kind of CA and leaf key, names of every kind included.
 */
static void test_issue_der_is_canonical(void **state)
{
	static const char *const dns[] = { "web.shop.svc", "*.example.com" };
	EVP_PKEY *keys[2] = { fx.ec_key, fx.rsa_key };
	/* Backdated as the CA does: verify() reads a clock that may lag the one now came from. */
	struct sign_request r = {
		.id = &fx.web, .now = time_now_ms() / 1000, .ttl = 3600, .backdate = 60
	};
	struct sign_leaf leaf;
	struct err e = { 0 };
	unsigned char *tbs = NULL;
	const unsigned char *p;
	size_t hdr;
	char hex[X509_SERIAL_HEX_SIZE];
	int64_t na;
	X509 *x;
	int n;

	(void)state;
	for (int i = 0; i < NCAS; i++) {
		for (int k = 0; k < 4; k++) {
			r.pubkey = keys[k % 2];
			r.dns = k >= 2 ? dns : NULL;
			r.ndns = k >= 2 ? 2 : 0;
			/* Far dates take GeneralizedTime, near ones UTCTime. */
			r.ttl = k == 3 ? (int64_t)40 * 366 * 86400 : 3600;
			if (sign_issue_der(fx.s[i], &r, &leaf, &e) != 0)
				fail_msg("sign_issue_der: %s", e.msg);
			p = leaf.der;
			x = d2i_X509(NULL, &p, (long)leaf.len);
			assert_non_null(x);
			assert_ptr_equal(p, leaf.der + leaf.len);
			n = i2d_re_X509_tbs(x, &tbs);
			assert_true(n > 0);
			hdr = 2 + ((leaf.der[1] & 0x80) ? (leaf.der[1] & 0x7f) : 0);
			assert_true(hdr + (size_t)n < leaf.len);
			assert_memory_equal(leaf.der + hdr, tbs, (size_t)n);
			assert_int_equal(x509_serial_hex(x, hex, sizeof(hex)), 0);
			assert_string_equal(hex, leaf.serial);
			assert_int_equal(x509_not_after(x, &na), 0);
			assert_int_equal(na, leaf.not_after);
			assert_int_equal(verify(fx.s[i], x, X509_PURPOSE_SSL_CLIENT), 1);
			OPENSSL_free(tbs);
			tbs = NULL;
			X509_free(x);
			free(leaf.der);
		}
	}
	assert_no_openssl_errors();
}

static void test_issue_threads(void **state)
{
	pthread_t threads[4];
	void *failures;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&threads[i], NULL, issue_many, i % 2 ? fx.ec_key : fx.rsa_key),
		    0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(threads[i], &failures), 0);
		assert_null(failures);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_type_parse),
		cmocka_unit_test(test_init_files),
		cmocka_unit_test(test_init_root_cert),
		cmocka_unit_test(test_init_intermediate_cert),
		cmocka_unit_test(test_init_refuses_overwrite),
		cmocka_unit_test(test_init_bad_arguments),
		cmocka_unit_test(test_load_layouts),
		cmocka_unit_test(test_load_missing_files),
		cmocka_unit_test(test_load_key_mode),
		cmocka_unit_test(test_load_key_mismatch),
		cmocka_unit_test(test_load_leaf_as_ca),
		cmocka_unit_test(test_load_expired),
		cmocka_unit_test(test_load_bad_chains),
		cmocka_unit_test(test_load_rotation_bundle),
		cmocka_unit_test(test_issue_svid),
		cmocka_unit_test(test_issue_clamped),
		cmocka_unit_test(test_issue_dns),
		cmocka_unit_test(test_issue_refusals),
		cmocka_unit_test(test_issue_files),
		cmocka_unit_test(test_issue_from_csr),
		cmocka_unit_test(test_issue_der_is_canonical),
		cmocka_unit_test(test_issue_threads),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
