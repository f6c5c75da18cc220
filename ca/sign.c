/* SPDX-License-Identifier: Apache-2.0 */
/* The signing CA: creating a root (and intermediate), loading and checking one, issuing leaves. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "der.h"
#include "meshlet/time.h"
#include "meshlet/x509.h"
#include "sign.h"

/* CA certificates start an hour in the past, so that a node whose clock lags accepts them. */
#define CA_BACKDATE 3600
/* The longest CA lifetime sign_init makes: a hundred years. */
#define CA_TTL_MAX ((int64_t)100 * 366 * 86400)
/* Serial numbers: 20 bytes, the most RFC 5280 allows, with the top bit cleared. */
#define SERIAL_BYTES 20

/* Bits of the keyUsage BIT STRING (RFC 5280, 4.2.1.3). */
#define KU_BIT_DIGITAL_SIGNATURE 0
#define KU_BIT_KEY_ENCIPHERMENT  2
#define KU_BIT_KEY_CERT_SIGN     5
#define KU_BIT_CRL_SIGN          6
#define KU(bit)                  (1u << (bit))

struct signer {
	X509 *cert;                /* signs leaves */
	EVP_PKEY *key;             /* its private key */
	const EVP_MD *md;          /* the digest that goes with key */
	EVP_MD_CTX *sign_ctx;      /* set up once to sign with key and md; copied per leaf */
	X509_NAME *subject;        /* the leaves' subject, O=meshlet */
	X509_NAME *issuer;         /* cert's subject, the leaves' issuer */
	ASN1_OCTET_STRING *key_id; /* cert's subject key identifier, the leaves' AKI */
	STACK_OF(X509) *chain;     /* sent after a leaf: cert and intermediates, no root */
	STACK_OF(X509) *roots;     /* root-cert.pem */
	int64_t not_after;         /* cert's */
	bool has_td;
	char td[SPIFFE_TD_MAX + 1];
	/* What every leaf repeats, encoded once at load (sign_issue_der). */
	struct der sigalg;      /* the signature AlgorithmIdentifier for key and md */
	struct der issuer_der;  /* issuer, as a Name */
	struct der subject_der; /* subject, as a Name */
	struct der aki_ext;     /* the authorityKeyIdentifier Extension, of key_id */
};

/* The CA certificate build_cert makes (leaves are written by der_leaf). */
struct cert_spec {
	EVP_PKEY *pubkey;
	const X509_NAME *subject;
	const X509_NAME *issuer;                /* NULL: self-signed */
	const ASN1_OCTET_STRING *issuer_key_id; /* for the AKI; ignored when self-signed */
	int64_t not_before, not_after;
	long pathlen;       /* -1: no path length constraint */
	unsigned key_usage; /* KU() bits */
	GENERAL_NAMES *san;
	EVP_PKEY *sign_key;
	const EVP_MD *md;
};

int sign_key_type_parse(const char *s, enum sign_key_type *out)
{
	if (s == NULL || out == NULL)
		return -EINVAL;
	if (strcmp(s, "ec-p256") == 0)
		*out = SIGN_KEY_EC_P256;
	else if (strcmp(s, "ec-p384") == 0)
		*out = SIGN_KEY_EC_P384;
	else if (strcmp(s, "rsa-3072") == 0)
		*out = SIGN_KEY_RSA_3072;
	else
		return -EINVAL;
	return 0;
}

/* dir/name into buf; -ENAMETOOLONG when it does not fit. */
static int join(char *buf, size_t size, const char *dir, const char *name, struct err *e)
{
	if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size)
		return err_set(e, -ENAMETOOLONG, "%s/%s: path too long", dir, name);
	return 0;
}

static int unix_time(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	/* ASN1_TIME_to_tm reads the clock when given NULL: never let it. */
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return ERR_X509_BAD_TIME;
	*out = time_from_utc_tm(&tm);
	return 0;
}

static const char *rfc3339(int64_t secs, char *buf, size_t size)
{
	struct timespec ts = { .tv_sec = (time_t)secs };

	if (time_format_rfc3339(&ts, false, buf, size) < 0)
		snprintf(buf, size, "%lld (Unix time)", (long long)secs);
	return buf;
}

/* The digest to sign with a CA key; NULL for a key meshlet will not sign with. */
static const EVP_MD *md_for_key(EVP_PKEY *key)
{
	char group[64];
	size_t len;
	int nid;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		return EVP_PKEY_get_bits(key) >= 2048 ? EVP_sha256() : NULL;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_group_name(key, group, sizeof(group), &len))
		return NULL;
	nid = OBJ_sn2nid(group);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(group);
	switch (nid) {
	case NID_X9_62_prime256v1:
		return EVP_sha256();
	case NID_secp384r1:
		return EVP_sha384();
	case NID_secp521r1:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* The SHA-1 of the subjectPublicKey bits: RFC 5280's first method for key identifiers. */
static ASN1_OCTET_STRING *key_id_of(const X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	ASN1_OCTET_STRING *id;

	if (!X509_pubkey_digest(x, EVP_sha1(), md, &n))
		return NULL;
	id = ASN1_OCTET_STRING_new();
	if (id != NULL && !ASN1_OCTET_STRING_set(id, md, (int)n)) {
		ASN1_OCTET_STRING_free(id);
		id = NULL;
	}
	return id;
}

/* A serial number: positive (top bit clear) and always 159 bits long, so never zero. */
static bool serial_bytes(unsigned char b[SERIAL_BYTES])
{
	if (RAND_bytes(b, SERIAL_BYTES) != 1)
		return false;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	return true;
}

static bool random_serial(X509 *x)
{
	unsigned char b[SERIAL_BYTES];
	BIGNUM *bn = NULL;
	bool ok;

	if (!serial_bytes(b))
		return false;
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static bool set_time(ASN1_TIME *t, int64_t secs)
{
	time_t tt = (time_t)secs;

	return (int64_t)tt == secs && ASN1_TIME_set(t, tt) != NULL;
}

static bool add_ext(X509 *x, int nid, void *value, bool critical)
{
	return X509_add1_ext_i2d(x, nid, value, critical, X509V3_ADD_DEFAULT) == 1;
}

/* The extensions of CA certificate c, in the order that `openssl x509 -text` shows them. */
static bool add_extensions(X509 *x, const struct cert_spec *c)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *aki = NULL;
	bool ok = false;

	if (bc == NULL || ku == NULL)
		goto out;
	bc->ca = 0xff;
	if (c->pathlen >= 0 && ((bc->pathlen = ASN1_INTEGER_new()) == NULL ||
	                        !ASN1_INTEGER_set(bc->pathlen, c->pathlen)))
		goto out;
	if (!add_ext(x, NID_basic_constraints, bc, true))
		goto out;
	for (int bit = 0; bit < 9; bit++)
		if ((c->key_usage & KU(bit)) && !ASN1_BIT_STRING_set_bit(ku, bit, 1))
			goto out;
	if (!add_ext(x, NID_key_usage, ku, true))
		goto out;
	ski = key_id_of(x);
	if (ski == NULL || !add_ext(x, NID_subject_key_identifier, ski, false))
		goto out;
	/*
	 * A root names itself too, as `openssl req -x509` does: roots of one trust domain share
	 * a subject, and during a rotation the key identifier is what tells them apart.
	 */
	aki = AUTHORITY_KEYID_new();
	if (aki == NULL ||
	    (aki->keyid = ASN1_OCTET_STRING_dup(c->issuer != NULL ? c->issuer_key_id : ski)) ==
	        NULL ||
	    !add_ext(x, NID_authority_key_identifier, aki, false))
		goto out;
	/* Never critical: every certificate we make has a non-empty subject. */
	ok = add_ext(x, NID_subject_alt_name, c->san, false);
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(aki);
	return ok;
}

/* Builds and signs the CA certificate c describes; NULL when OpenSSL fails (out of memory). */
static X509 *build_cert(const struct cert_spec *c)
{
	X509 *x = X509_new();

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) || !random_serial(x) ||
	    !X509_set_subject_name(x, c->subject) ||
	    !X509_set_issuer_name(x, c->issuer != NULL ? c->issuer : c->subject) ||
	    !set_time(X509_getm_notBefore(x), c->not_before) ||
	    !set_time(X509_getm_notAfter(x), c->not_after) || !X509_set_pubkey(x, c->pubkey) ||
	    !add_extensions(x, c) || X509_sign(x, c->sign_key, c->md) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* O=meshlet, and CN=cn when cn is not NULL. */
static X509_NAME *make_name(const char *cn)
{
	X509_NAME *name = X509_NAME_new();

	if (name == NULL ||
	    !X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
	                                (const unsigned char *)"meshlet", -1, -1, 0) ||
	    (cn != NULL && !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	                                               (const unsigned char *)cn, -1, -1, 0))) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

static bool add_name(GENERAL_NAMES *names, int type, const char *value)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (gn == NULL || s == NULL || !ASN1_STRING_set(s, value, (int)strlen(value)))
		goto fail;
	GENERAL_NAME_set0_value(gn, type, s);
	s = NULL;
	if (sk_GENERAL_NAME_push(names, gn) <= 0)
		goto fail;
	return true;
fail:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(gn);
	return false;
}

/* A host name in lower case: labels of [a-z0-9-] (no '-' at either end), "*" first allowed. */
static bool valid_dns_name(const char *name)
{
	size_t len = strlen(name), label = 0;
	const char *p = name;

	if (len == 0 || len > 253)
		return false;
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	for (; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
		if (++label > 63 || (label == 1 && *p == '-'))
			return false;
	}
	return label > 0 && p[-1] != '-';
}

static EVP_PKEY *generate_key(enum sign_key_type type)
{
	switch (type) {
	case SIGN_KEY_EC_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case SIGN_KEY_EC_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	case SIGN_KEY_RSA_3072:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	}
	return NULL;
}

/* A CA certificate for sign_init: the root when issuer is NULL, else the intermediate. */
static X509 *make_ca_cert(EVP_PKEY *key, const char *td, X509 *issuer, EVP_PKEY *issuer_key,
                          int64_t not_before, int64_t not_after)
{
	char cn[128], uri[SPIFFE_ID_MAX + 1];
	const char *what = issuer == NULL ? "root" : "intermediate";
	struct cert_spec c = {
		.pubkey = key,
		.not_before = not_before,
		.not_after = not_after,
		.pathlen = issuer == NULL ? -1 : 0,
		.key_usage = KU(KU_BIT_KEY_CERT_SIGN) | KU(KU_BIT_CRL_SIGN),
		.sign_key = issuer_key != NULL ? issuer_key : key,
		.md = md_for_key(issuer_key != NULL ? issuer_key : key),
	};
	X509_NAME *subject = NULL;
	ASN1_OCTET_STRING *issuer_id = NULL;
	X509 *x = NULL;

	/* A CN holds at most 64 characters (RFC 5280's ub-common-name). */
	snprintf(cn, sizeof(cn), "meshlet %s CA %s", what, td);
	if (strlen(cn) > 64)
		snprintf(cn, sizeof(cn), "meshlet %s CA", what);
	snprintf(uri, sizeof(uri), "spiffe://%s", td);
	subject = make_name(cn);
	c.san = GENERAL_NAMES_new();
	if (subject == NULL || c.san == NULL || !add_name(c.san, GEN_URI, uri))
		goto out;
	c.subject = subject;
	if (issuer != NULL) {
		c.issuer = X509_get_subject_name(issuer);
		issuer_id = key_id_of(issuer);
		if (issuer_id == NULL)
			goto out;
		c.issuer_key_id = issuer_id;
	}
	x = build_cert(&c);
out:
	X509_NAME_free(subject);
	GENERAL_NAMES_free(c.san);
	ASN1_OCTET_STRING_free(issuer_id);
	return x;
}

/* One file sign_init writes. */
struct init_file {
	const char *name;
	char *data;
	mode_t mode;
	char path[PATH_MAX];
	bool written;
};

/* Makes dir if it is missing; *made tells whether this call made it. */
/* Encodes what every leaf of s repeats: the signature algorithm, the names, the AKI. */
static bool leaf_parts(struct signer *s)
{
	static const unsigned char aki_oid[] = { 0x06, 0x03, 0x55, 0x1d, 0x23 };
	X509_ALGOR *alg = X509_ALGOR_new();
	unsigned char *p = NULL;
	int signid = NID_undef, len;
	size_t m, o, k;
	bool rsa = EVP_PKEY_get_base_id(s->key) == EVP_PKEY_RSA, ok = false;

	if (alg == NULL ||
	    !OBJ_find_sigid_by_algs(&signid, EVP_MD_get_type(s->md),
	                            EVP_PKEY_get_base_id(s->key)) ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(signid), rsa ? V_ASN1_NULL : V_ASN1_UNDEF, NULL))
		goto out;
	if ((len = i2d_X509_ALGOR(alg, &p)) <= 0)
		goto out;
	der_put(&s->sigalg, p, (size_t)len);
	OPENSSL_free(p);
	p = NULL;
	if ((len = i2d_X509_NAME(s->issuer, &p)) <= 0)
		goto out;
	der_put(&s->issuer_der, p, (size_t)len);
	OPENSSL_free(p);
	p = NULL;
	if ((len = i2d_X509_NAME(s->subject, &p)) <= 0)
		goto out;
	der_put(&s->subject_der, p, (size_t)len);
	m = der_begin(&s->aki_ext, 0x30);
	der_put(&s->aki_ext, aki_oid, sizeof(aki_oid));
	o = der_begin(&s->aki_ext, 0x04);
	k = der_begin(&s->aki_ext, 0x30);
	der_tlv(&s->aki_ext, 0x80, ASN1_STRING_get0_data(s->key_id),
	        (size_t)ASN1_STRING_length(s->key_id));
	der_end(&s->aki_ext, k);
	der_end(&s->aki_ext, o);
	der_end(&s->aki_ext, m);
	ok = !s->sigalg.failed && !s->issuer_der.failed && !s->subject_der.failed &&
	     !s->aki_ext.failed;
out:
	OPENSSL_free(p);
	X509_ALGOR_free(alg);
	return ok;
}

static int ensure_dir(const char *dir, bool *made, struct err *e)
{
	struct stat st;
	int rc;

	*made = false;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return err_set(e, -ENOTDIR, "%s: exists and is not a directory", dir);
		return 0;
	}
	if (errno != ENOENT || mkdir(dir, 0755) < 0) {
		rc = -errno;
		return err_set(e, rc, "%s: cannot make the directory: %s", dir, err_str(rc));
	}
	*made = true;
	return 0;
}

int sign_init(const char *dir, const char *trust_domain, enum sign_key_type type, int64_t ttl,
              bool intermediate, struct err *e)
{
	struct init_file files[] = {
		{ .name = SIGN_ROOT_KEY, .mode = 0600 }, { .name = SIGN_ROOT_CERT, .mode = 0644 },
		{ .name = SIGN_CA_KEY, .mode = 0600 },   { .name = SIGN_CERT_CHAIN, .mode = 0644 },
		{ .name = SIGN_CA_CERT, .mode = 0644 },
	};
	const size_t nfiles = sizeof(files) / sizeof(files[0]);
	EVP_PKEY *root_key = NULL, *ca_key = NULL;
	X509 *root = NULL, *ca = NULL;
	int64_t now = time_now_ms() / 1000;
	bool made_dir = false;
	struct stat st;
	size_t n;
	int rc;

	if (dir == NULL || trust_domain == NULL)
		return err_set(e, -EINVAL, "sign_init: no directory or no trust domain");
	rc = spiffe_td_validate(trust_domain, strlen(trust_domain));
	if (rc < 0)
		return err_set(e, rc, "trust domain \"%s\": %s", trust_domain, err_str(rc));
	if (ttl < 1 || ttl > CA_TTL_MAX)
		return err_set(
		    e, ERR_SIGN_TTL,
		    "CA lifetime of %lld seconds is out of bounds (1 second to 100 years)",
		    (long long)ttl);
	if (type != SIGN_KEY_EC_P256 && type != SIGN_KEY_EC_P384 && type != SIGN_KEY_RSA_3072)
		return err_set(e, -EINVAL, "sign_init: unknown key type %d", (int)type);
	for (size_t i = 0; i < nfiles; i++) {
		rc = join(files[i].path, sizeof(files[i].path), dir, files[i].name, e);
		if (rc < 0)
			return rc;
	}
	rc = ensure_dir(dir, &made_dir, e);
	if (rc < 0)
		return rc;
	/* lstat: a dangling symlink, as a half-removed Kubernetes secret leaves, counts too. */
	for (size_t i = 0; i < nfiles; i++) {
		if (lstat(files[i].path, &st) == 0) {
			rc = err_set(e, -EEXIST,
			             "%s already exists; meshlet-ca init never replaces a CA: move "
			             "the old one away or choose another directory",
			             files[i].path);
			goto out;
		}
		if (errno != ENOENT) {
			rc = -errno;
			err_set(e, rc, "%s: %s", files[i].path, err_str(rc));
			goto out;
		}
	}

	ERR_set_mark();
	root_key = generate_key(type);
	if (root_key == NULL)
		goto failed;
	root = make_ca_cert(root_key, trust_domain, NULL, NULL, now - CA_BACKDATE, now + ttl);
	if (root == NULL)
		goto failed;
	files[0].data = x509_key_pem(root_key);
	files[1].data = x509_cert_pem(root);
	n = 2;
	if (intermediate) {
		ca_key = generate_key(type);
		if (ca_key == NULL)
			goto failed;
		/* The same lifetime as the root's, so never past it. */
		ca = make_ca_cert(ca_key, trust_domain, root, root_key, now - CA_BACKDATE,
		                  now + ttl);
		if (ca == NULL)
			goto failed;
		files[2].data = x509_key_pem(ca_key);
		files[4].data = x509_cert_pem(ca);
		if (files[4].data != NULL && files[1].data != NULL) {
			files[3].data = malloc(strlen(files[4].data) + strlen(files[1].data) + 1);
			if (files[3].data != NULL)
				strcat(strcpy(files[3].data, files[4].data), files[1].data);
		}
		n = nfiles;
	}
	for (size_t i = 0; i < n; i++)
		if (files[i].data == NULL)
			goto failed;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = x509_write_file(files[i].path, files[i].data, strlen(files[i].data),
		                     files[i].mode, e);
		files[i].written = rc == 0;
	}
	goto out_mark;
failed:
	rc = err_set(e, -ENOMEM, "%s: cannot make the CA: out of memory or OpenSSL failed", dir);
out_mark:
	ERR_pop_to_mark();
out:
	for (size_t i = 0; i < nfiles; i++) {
		if (rc < 0 && files[i].written)
			unlink(files[i].path);
		x509_free_secret(files[i].data);
	}
	if (rc < 0 && made_dir)
		rmdir(dir);
	X509_free(root);
	X509_free(ca);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(ca_key);
	return rc;
}

/* The checks on the signing certificate itself, with path naming its file. */
static int check_signing_cert(X509 *cert, const char *path, int64_t now, struct err *e)
{
	uint32_t flags = X509_get_extension_flags(cert);
	int64_t not_before, not_after;
	char when[TIME_RFC3339_MAX + 32];

	if (flags & EXFLAG_INVALID)
		return err_set(e, ERR_SIGN_CA, "%s: the certificate has malformed extensions",
		               path);
	if (!(flags & EXFLAG_CA))
		return err_set(e, ERR_SIGN_CA,
		               "%s: is not a CA certificate (no basicConstraints CA:TRUE), so it "
		               "cannot sign certificates",
		               path);
	if (!(flags & EXFLAG_KUSAGE))
		return err_set(e, ERR_SIGN_CA,
		               "%s: the CA certificate has no keyUsage extension; it needs one "
		               "with keyCertSign",
		               path);
	if (!(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN))
		return err_set(e, ERR_SIGN_CA,
		               "%s: the CA certificate's keyUsage lacks keyCertSign, so it cannot "
		               "sign certificates",
		               path);
	if (unix_time(X509_get0_notBefore(cert), &not_before) < 0 ||
	    unix_time(X509_get0_notAfter(cert), &not_after) < 0)
		return err_set(e, ERR_SIGN_CA, "%s: the certificate has a malformed validity date",
		               path);
	if (now < not_before)
		return err_set(e, ERR_SIGN_CA, "%s: the CA certificate is not valid before %s",
		               path, rfc3339(not_before, when, sizeof(when)));
	if (now >= not_after)
		return err_set(e, ERR_SIGN_CA, "%s: the CA certificate expired at %s", path,
		               rfc3339(not_after, when, sizeof(when)));
	return 0;
}

/*
 * Verifies s->cert up to a root of s->roots through the untrusted certificates, and keeps
 * the path it found, less the root, as what goes after each leaf.
 */
static int verify_chain(struct signer *s, STACK_OF(X509) *untrusted, int64_t now,
                        const char *cert_path, const char *roots_path, struct err *e)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *bad, *anchor;
	char subject[256] = "";
	int rc = -ENOMEM, verr;

	if (store == NULL || ctx == NULL)
		goto nomem;
	for (int i = 0; i < sk_X509_num(s->roots); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(s->roots, i)))
			goto nomem;
	if (!X509_STORE_CTX_init(ctx, store, s->cert, untrusted))
		goto nomem;
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
	if (X509_verify_cert(ctx) != 1) {
		verr = X509_STORE_CTX_get_error(ctx);
		bad = X509_STORE_CTX_get_current_cert(ctx);
		if (bad != NULL)
			X509_NAME_oneline(X509_get_subject_name(bad), subject, sizeof(subject));
		rc = err_set(e, ERR_SIGN_CA,
		             "%s does not chain to a root in %s: %s (at depth %d, subject \"%s\")",
		             cert_path, roots_path, X509_verify_cert_error_string(verr),
		             X509_STORE_CTX_get_error_depth(ctx), subject);
		goto out;
	}
	s->chain = X509_STORE_CTX_get1_chain(ctx);
	if (s->chain == NULL)
		goto nomem;
	anchor = sk_X509_pop(s->chain);
	X509_free(anchor);
	rc = 0;
	goto out;
nomem:
	rc = err_set(e, -ENOMEM, "%s: out of memory", cert_path);
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/* The intermediate layout: ca-cert.pem, ca-key.pem and cert-chain.pem. */
static int load_intermediate(struct signer *s, const char *cert_path, const char *key_path,
                             const char *chain_path, STACK_OF(X509) **untrusted, struct err *e)
{
	STACK_OF(X509) *certs = x509_read_chain(cert_path, e);
	int n;

	if (certs == NULL)
		return e->code;
	n = sk_X509_num(certs);
	s->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (n != 1)
		return err_set(e, ERR_SIGN_CA,
		               "%s: holds %d certificates; it must hold only the signing "
		               "certificate (the rest of the chain goes into %s)",
		               cert_path, n, SIGN_CERT_CHAIN);
	s->key = x509_read_key(key_path, e);
	if (s->key == NULL)
		return e->code;
	if (x509_check_key(s->cert, s->key) < 0)
		return err_set(e, ERR_X509_KEY_MISMATCH, "%s: the key does not match %s", key_path,
		               cert_path);
	*untrusted = x509_read_chain(chain_path, e);
	if (*untrusted == NULL)
		return e->code;
	return 0;
}

/* The root-only layout: the signing certificate is the root that root-key.pem matches. */
static int load_root(struct signer *s, const char *roots_path, const char *key_path, struct err *e)
{
	X509 *root;

	s->key = x509_read_key(key_path, e);
	if (s->key == NULL)
		return e->code;
	for (int i = 0; i < sk_X509_num(s->roots) && s->cert == NULL; i++) {
		root = sk_X509_value(s->roots, i);
		if (x509_check_key(root, s->key) == 0 && X509_up_ref(root))
			s->cert = root;
	}
	if (s->cert == NULL)
		return err_set(e, ERR_X509_KEY_MISMATCH, "%s: the key matches no certificate in %s",
		               key_path, roots_path);
	return 0;
}

struct signer *sign_load(const char *dir, struct err *e)
{
	char roots_path[PATH_MAX], root_key[PATH_MAX], ca_cert[PATH_MAX], ca_key[PATH_MAX];
	char chain_path[PATH_MAX];
	const char *cert_path, *key_path;
	STACK_OF(X509) *untrusted = NULL;
	struct signer *s = NULL;
	struct spiffe_id id;
	struct err scratch;
	int64_t now = time_now_ms() / 1000;
	struct stat st;
	bool layered;
	int rc;

	/* The helpers below pass on e->code, so there is always an e. */
	if (e == NULL)
		e = &scratch;
	if (dir == NULL) {
		err_set(e, -EINVAL, "sign_load: no directory");
		return NULL;
	}
	if (join(roots_path, sizeof(roots_path), dir, SIGN_ROOT_CERT, e) < 0 ||
	    join(root_key, sizeof(root_key), dir, SIGN_ROOT_KEY, e) < 0 ||
	    join(ca_cert, sizeof(ca_cert), dir, SIGN_CA_CERT, e) < 0 ||
	    join(ca_key, sizeof(ca_key), dir, SIGN_CA_KEY, e) < 0 ||
	    join(chain_path, sizeof(chain_path), dir, SIGN_CERT_CHAIN, e) < 0)
		return NULL;
	/* lstat: a dangling ca-cert.pem link means the intermediate layout, and its error. */
	if (lstat(ca_cert, &st) == 0) {
		layered = true;
	} else if (errno == ENOENT) {
		layered = false;
	} else {
		rc = -errno;
		err_set(e, rc, "%s: %s", ca_cert, err_str(rc));
		return NULL;
	}
	cert_path = layered ? ca_cert : roots_path;
	key_path = layered ? ca_key : root_key;

	ERR_set_mark();
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = err_set(e, -ENOMEM, "%s: out of memory", dir);
		goto fail;
	}
	s->roots = x509_read_chain(roots_path, e);
	if (s->roots == NULL)
		goto fail;
	if (layered)
		rc = load_intermediate(s, ca_cert, ca_key, chain_path, &untrusted, e);
	else
		rc = load_root(s, roots_path, root_key, e);
	if (rc < 0)
		goto fail;
	rc = check_signing_cert(s->cert, cert_path, now, e);
	if (rc < 0)
		goto fail;
	s->md = md_for_key(s->key);
	if (s->md == NULL) {
		err_set(e, ERR_SIGN_CA,
		        "%s: meshlet signs only with EC P-256, P-384 or P-521 or RSA keys of 2048 "
		        "bits or more; this is a %d-bit %s key",
		        key_path, EVP_PKEY_get_bits(s->key),
		        EVP_PKEY_get0_type_name(s->key) != NULL ? EVP_PKEY_get0_type_name(s->key)
		                                                : "unknown");
		goto fail;
	}
	if (verify_chain(s, untrusted, now, cert_path, roots_path, e) < 0)
		goto fail;
	s->sign_ctx = EVP_MD_CTX_new();
	if (s->sign_ctx == NULL ||
	    EVP_DigestSignInit(s->sign_ctx, NULL, s->md, NULL, s->key) != 1) {
		err_set(e, ERR_SIGN_CA, "%s: cannot set up signing with this key", key_path);
		goto fail;
	}
	s->subject = make_name(NULL);
	s->issuer = X509_NAME_dup(X509_get_subject_name(s->cert));
	s->key_id = X509_get0_subject_key_id(s->cert) != NULL
	                ? ASN1_OCTET_STRING_dup(X509_get0_subject_key_id(s->cert))
	                : key_id_of(s->cert);
	if (s->subject == NULL || s->issuer == NULL || s->key_id == NULL) {
		err_set(e, -ENOMEM, "%s: out of memory", dir);
		goto fail;
	}
	if (!leaf_parts(s)) {
		err_set(e, -ENOMEM, "%s: out of memory", dir);
		goto fail;
	}
	if (x509_not_after(s->cert, &s->not_after) < 0) {
		err_set(e, ERR_SIGN_CA, "%s: the certificate has a malformed notAfter", cert_path);
		goto fail;
	}
	if (x509_spiffe_id(s->cert, &id) == 0) {
		s->has_td = true;
		memcpy(s->td, id.td, sizeof(s->td));
	}
	sk_X509_pop_free(untrusted, X509_free);
	ERR_pop_to_mark();
	return s;
fail:
	sk_X509_pop_free(untrusted, X509_free);
	sign_free(s);
	ERR_pop_to_mark();
	return NULL;
}

void sign_free(struct signer *s)
{
	if (s == NULL)
		return;
	/* EVP_PKEY_free wipes the private key as it frees it (the context holds it too). */
	EVP_MD_CTX_free(s->sign_ctx);
	EVP_PKEY_free(s->key);
	X509_NAME_free(s->subject);
	X509_free(s->cert);
	X509_NAME_free(s->issuer);
	ASN1_OCTET_STRING_free(s->key_id);
	sk_X509_pop_free(s->chain, X509_free);
	sk_X509_pop_free(s->roots, X509_free);
	free(s->sigalg.p);
	free(s->issuer_der.p);
	free(s->subject_der.p);
	free(s->aki_ext.p);
	free(s);
}

/* Checks the names of the leaf: r's SPIFFE ID (formatted into uri), then its DNS names. */
static int leaf_names(const struct signer *s, const struct sign_request *r,
                      char uri[SPIFFE_ID_MAX + 1], struct err *e)
{
	int rc;

	uri[0] = '\0';
	if (r->id != NULL) {
		rc = spiffe_id_format(r->id, uri, SPIFFE_ID_MAX + 1);
		if (rc < 0)
			return err_set(e, rc, "the SPIFFE ID to certify is invalid: %s",
			               err_str(rc));
		if (r->id->path[0] == '\0')
			return err_set(
			    e, ERR_SPIFFE_NO_PATH,
			    "%s names a trust domain, not a workload; leaves need a path", uri);
		if (s->has_td && strcmp(r->id->td, s->td) != 0)
			return err_set(e, ERR_CSR_IDENTITY,
			               "%s is not in the trust domain of this CA (%s)", uri, s->td);
	}
	for (size_t i = 0; i < r->ndns; i++)
		if (r->dns[i] == NULL || !valid_dns_name(r->dns[i]))
			return err_set(
			    e, -EINVAL,
			    "\"%.253s\" is not a DNS name a certificate can carry (lower-case "
			    "labels of letters, digits and '-'; \"*.\" may start it)",
			    r->dns[i] != NULL ? r->dns[i] : "(null)");
	return 0;
}

/* A time as RFC 5280 wants it: UTCTime for 1950 to 2049, GeneralizedTime otherwise. */
static bool der_time(struct der *d, int64_t secs)
{
	time_t t = (time_t)secs;
	char buf[32];
	struct tm tm;
	int year, n;

	if ((int64_t)t != secs || gmtime_r(&t, &tm) == NULL)
		return false;
	year = tm.tm_year + 1900;
	if (year < 0 || year > 9999)
		return false;
	if (year >= 1950 && year < 2050)
		n = snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d%02dZ", year % 100,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1,
		             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	der_tlv(d, year >= 1950 && year < 2050 ? 0x17 : 0x18, buf, (size_t)n);
	return true;
}

/*
 * The leaf's SubjectPublicKeyInfo and subject key identifier (SHA-1 of the key's bits,
 * RFC 5280's method 1). From the CSR's own encoding when r has it, else from r->pubkey.
 */
static bool der_spki(struct der *d, const struct sign_request *r, unsigned char ski[20])
{
	const unsigned char *bits = NULL;
	const X509_ALGOR *alg = r->spki_alg;
	X509_ALGOR *alg_mut = NULL;
	X509_PUBKEY *xpk = NULL;
	unsigned char *alg_der = NULL;
	unsigned int md_len = 0;
	int nbits = 0, alg_len;
	size_t m, n;
	bool ok = false;

	if (r->spki_alg != NULL && r->spki_key != NULL) {
		/* Keys are whole bytes: a BIT STRING with unused bits is no key we signed for. */
		if ((r->spki_key->flags & ASN1_STRING_FLAG_BITS_LEFT) && (r->spki_key->flags & 7))
			return false;
		bits = ASN1_STRING_get0_data(r->spki_key);
		nbits = ASN1_STRING_length(r->spki_key);
	} else {
		if (X509_PUBKEY_set(&xpk, r->pubkey) != 1 ||
		    X509_PUBKEY_get0_param(NULL, &bits, &nbits, &alg_mut, xpk) != 1)
			goto out;
		alg = alg_mut;
	}
	alg_len = i2d_X509_ALGOR(alg, &alg_der);
	if (bits == NULL || nbits <= 0 || alg_len <= 0 ||
	    EVP_Digest(bits, (size_t)nbits, ski, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
		goto out;
	m = der_begin(d, 0x30);
	der_put(d, alg_der, (size_t)alg_len);
	n = der_begin(d, 0x03);
	der_put(d, "", 1); /* no unused bits */
	der_put(d, bits, (size_t)nbits);
	der_end(d, n);
	der_end(d, m);
	ok = true;
out:
	OPENSSL_free(alg_der);
	X509_PUBKEY_free(xpk);
	return ok;
}

/* Extensions every leaf has, in the order `openssl x509 -text` shows them. */
/* basicConstraints, critical, CA:FALSE */
static const unsigned char k_basic_constraints[] = { 0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13,
	                                             0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00 };
/* keyUsage, critical, digitalSignature; for RSA keys keyEncipherment too */
static const unsigned char k_key_usage_ec[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
	                                        0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80 };
static const unsigned char k_key_usage_rsa[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
	                                         0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x05, 0xa0 };
/* extKeyUsage serverAuth, clientAuth */
static const unsigned char k_ext_key_usage[] = { 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04,
	                                         0x16, 0x30, 0x14, 0x06, 0x08, 0x2b, 0x06, 0x01,
	                                         0x05, 0x05, 0x07, 0x03, 0x01, 0x06, 0x08, 0x2b,
	                                         0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };
static const unsigned char k_ski_oid[] = { 0x06, 0x03, 0x55, 0x1d, 0x0e };
static const unsigned char k_san_oid[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };
static const unsigned char k_version_3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };

/* The leaf's TBSCertificate, then its signature: the whole Certificate in d. */
static bool der_leaf(const struct signer *s, const struct sign_request *r, const char *uri,
                     const unsigned char serial[SERIAL_BYTES], int64_t not_before,
                     int64_t not_after, struct der *d)
{
	unsigned char ski[20], *sig = NULL;
	EVP_MD_CTX *ctx = NULL;
	size_t cert, tbs, m, ext, one, octets, names, sig_len = 0;
	bool ok = false;

	cert = der_begin(d, 0x30);
	tbs = der_begin(d, 0x30);
	der_put(d, k_version_3, sizeof(k_version_3));
	der_tlv(d, 0x02, serial, SERIAL_BYTES);
	der_put(d, s->sigalg.p, s->sigalg.len);
	der_put(d, s->issuer_der.p, s->issuer_der.len);
	m = der_begin(d, 0x30);
	if (!der_time(d, not_before) || !der_time(d, not_after))
		goto out;
	der_end(d, m);
	der_put(d, s->subject_der.p, s->subject_der.len);
	if (!der_spki(d, r, ski))
		goto out;
	ext = der_begin(d, 0xa3);
	m = der_begin(d, 0x30);
	der_put(d, k_basic_constraints, sizeof(k_basic_constraints));
	if (EVP_PKEY_get_base_id(r->pubkey) == EVP_PKEY_RSA)
		der_put(d, k_key_usage_rsa, sizeof(k_key_usage_rsa));
	else
		der_put(d, k_key_usage_ec, sizeof(k_key_usage_ec));
	der_put(d, k_ext_key_usage, sizeof(k_ext_key_usage));
	one = der_begin(d, 0x30);
	der_put(d, k_ski_oid, sizeof(k_ski_oid));
	octets = der_begin(d, 0x04);
	der_tlv(d, 0x04, ski, sizeof(ski));
	der_end(d, octets);
	der_end(d, one);
	der_put(d, s->aki_ext.p, s->aki_ext.len);
	/* Never critical: every certificate we make has a non-empty subject. */
	one = der_begin(d, 0x30);
	der_put(d, k_san_oid, sizeof(k_san_oid));
	octets = der_begin(d, 0x04);
	names = der_begin(d, 0x30);
	if (uri[0] != '\0')
		der_tlv(d, 0x86, uri, strlen(uri));
	for (size_t i = 0; i < r->ndns; i++)
		der_tlv(d, 0x82, r->dns[i], strlen(r->dns[i]));
	der_end(d, names);
	der_end(d, octets);
	der_end(d, one);
	der_end(d, m);
	der_end(d, ext);
	der_end(d, tbs);
	if (d->failed)
		goto out;
	/* A copy of a prepared context: fetching the algorithms again costs more in 3.0. */
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_MD_CTX_copy_ex(ctx, s->sign_ctx) != 1 ||
	    EVP_DigestSign(ctx, NULL, &sig_len, d->p + tbs, d->len - tbs) != 1 ||
	    (sig = OPENSSL_malloc(sig_len + 1)) == NULL ||
	    EVP_DigestSign(ctx, sig + 1, &sig_len, d->p + tbs, d->len - tbs) != 1)
		goto out;
	der_put(d, s->sigalg.p, s->sigalg.len);
	sig[0] = 0; /* no unused bits */
	der_tlv(d, 0x03, sig, sig_len + 1);
	der_end(d, cert);
	ok = !d->failed;
out:
	OPENSSL_free(sig);
	EVP_MD_CTX_free(ctx);
	return ok;
}

int sign_issue_der(const struct signer *s, const struct sign_request *r, struct sign_leaf *out,
                   struct err *e)
{
	static const char hex[] = "0123456789abcdef";
	char when[TIME_RFC3339_MAX + 32], uri[SPIFFE_ID_MAX + 1];
	unsigned char serial[SERIAL_BYTES];
	struct der d = { 0 };
	int64_t not_before, not_after;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (s == NULL || r == NULL || out == NULL || r->pubkey == NULL)
		return err_set(e, -EINVAL, "sign_issue: no signer, request, key or output");
	if (r->id == NULL && r->ndns == 0)
		return err_set(e, -EINVAL,
		               "sign_issue: neither a SPIFFE ID nor a DNS name to certify");
	if (r->ndns > SIGN_DNS_MAX || (r->ndns > 0 && r->dns == NULL))
		return err_set(e, -EINVAL, "sign_issue: %zu DNS names; at most %d", r->ndns,
		               SIGN_DNS_MAX);
	if (r->ttl < 1 || r->backdate < 0)
		return err_set(e, ERR_SIGN_TTL,
		               "lifetime %lld s and backdate %lld s: the lifetime must be at least "
		               "1 s and the backdate not negative",
		               (long long)r->ttl, (long long)r->backdate);
	if (r->now > INT64_MAX - r->ttl || r->now < INT64_MIN + r->backdate)
		return err_set(e, ERR_SIGN_TTL, "lifetime %lld s from %lld is out of range",
		               (long long)r->ttl, (long long)r->now);
	/* An expired CA is the server's fault, not the caller's: ERR_SIGN_CA, not _TTL. */
	if (s->not_after <= r->now)
		return err_set(e, ERR_SIGN_CA, "the signing certificate expired at %s",
		               rfc3339(s->not_after, when, sizeof(when)));
	rc = leaf_names(s, r, uri, e);
	if (rc < 0)
		return rc;
	not_before = r->now - r->backdate;
	not_after = r->now + r->ttl < s->not_after ? r->now + r->ttl : s->not_after;
	ERR_set_mark();
	if (!serial_bytes(serial) || !der_leaf(s, r, uri, serial, not_before, not_after, &d)) {
		rc = err_set(e, ERR_SIGN_CA, "signing the certificate failed: %s",
		             d.failed ? "out of memory"
		             : ERR_reason_error_string(ERR_peek_last_error()) != NULL
		                 ? ERR_reason_error_string(ERR_peek_last_error())
		                 : "times out of range or a key OpenSSL cannot use");
		free(d.p);
		goto out;
	}
	out->der = d.p;
	out->len = d.len;
	out->not_after = not_after;
	for (size_t i = 0; i < SERIAL_BYTES; i++) {
		out->serial[2 * i] = hex[serial[i] >> 4];
		out->serial[2 * i + 1] = hex[serial[i] & 0x0f];
	}
	out->serial[2 * SERIAL_BYTES] = '\0';
	rc = 0;
out:
	ERR_pop_to_mark();
	return rc;
}

int sign_issue(const struct signer *s, const struct sign_request *r, X509 **out, struct err *e)
{
	struct sign_leaf leaf;
	const unsigned char *p;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (out == NULL)
		return err_set(e, -EINVAL, "sign_issue: no signer, request, key or output");
	rc = sign_issue_der(s, r, &leaf, e);
	if (rc < 0)
		return rc;
	p = leaf.der;
	ERR_set_mark();
	*out = d2i_X509(NULL, &p, (long)leaf.len);
	ERR_pop_to_mark();
	free(leaf.der);
	if (*out == NULL)
		return err_set(e, ERR_SIGN_CA, "the certificate just made does not decode");
	return 0;
}

const STACK_OF(X509) *sign_chain(const struct signer *s)
{
	return s->chain;
}

const STACK_OF(X509) *sign_roots(const struct signer *s)
{
	return s->roots;
}

int64_t sign_not_after(const struct signer *s)
{
	return s->not_after;
}

const char *sign_trust_domain(const struct signer *s)
{
	return s->has_td ? s->td : NULL;
}

/* The leaf's PEM followed by the chain's, malloc'd; NULL when out of memory. */
static char *chain_pem(const struct signer *s, X509 *leaf)
{
	char *text = x509_cert_pem(leaf), *one, *bigger;

	for (int i = 0; text != NULL && i < sk_X509_num(s->chain); i++) {
		one = x509_cert_pem(sk_X509_value(s->chain, i));
		bigger = one != NULL ? realloc(text, strlen(text) + strlen(one) + 1) : NULL;
		if (bigger != NULL)
			strcat(bigger, one);
		else
			free(text);
		text = bigger;
		free(one);
	}
	return text;
}

int sign_issue_files(const struct signer *s, const struct sign_request *r, const char *prefix,
                     struct err *e)
{
	char key_path[PATH_MAX], crt_path[PATH_MAX], *key_pem = NULL, *crt_pem = NULL;
	struct sign_request req;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	int rc;

	if (s == NULL || r == NULL || prefix == NULL || *prefix == '\0')
		return err_set(e, -EINVAL, "sign_issue_files: no signer, request or prefix");
	if ((size_t)snprintf(key_path, sizeof(key_path), "%s.key", prefix) >= sizeof(key_path) ||
	    (size_t)snprintf(crt_path, sizeof(crt_path), "%s.crt", prefix) >= sizeof(crt_path))
		return err_set(e, -ENAMETOOLONG, "%s: path too long", prefix);
	ERR_set_mark();
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL) {
		rc = err_set(e, -ENOMEM, "cannot make a key: out of memory or OpenSSL failed");
		goto out;
	}
	req = *r;
	req.pubkey = key;
	rc = sign_issue(s, &req, &leaf, e);
	if (rc < 0)
		goto out;
	key_pem = x509_key_pem(key);
	crt_pem = chain_pem(s, leaf);
	if (key_pem == NULL || crt_pem == NULL) {
		rc = err_set(e, -ENOMEM, "%s: out of memory", prefix);
		goto out;
	}
	/* The key first: a reader that sees the new certificate finds its key already there. */
	rc = x509_write_file(key_path, key_pem, strlen(key_pem), 0600, e);
	if (rc == 0)
		rc = x509_write_file(crt_path, crt_pem, strlen(crt_pem), 0644, e);
out:
	ERR_pop_to_mark();
	x509_free_secret(key_pem);
	free(crt_pem);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return rc;
}
