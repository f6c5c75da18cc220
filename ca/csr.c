/* SPDX-License-Identifier: Apache-2.0 */
/* A workload's certificate signing request: strict PEM decoding and the checks before signing. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "csr.h"

#define KEYS_ALLOWED "allowed: EC P-256, EC P-384, RSA 2048 to 8192 bits"
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192

/*
 * A PKCS#10 request (RFC 2986) decoded by our own templates. They are OpenSSL's X509_REQ
 * ones but for the SubjectPublicKeyInfo, which stays an algorithm and bits: X509_REQ
 * decodes the key at once through OpenSSL 3.0's provider decoder, whose set-up alone cost
 * 1.2 million instructions per request (a third of an issuance), and takes locks that
 * every server thread contends for. csr_check builds the key itself, once it knows the
 * kind is one we accept.
 */
typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *public_key;
} CSR_SPKI;

typedef struct {
	ASN1_ENCODING enc; /* the DER as it came: what the signature covers */
	ASN1_INTEGER *version;
	X509_NAME *subject;
	CSR_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} CSR_INFO;

typedef struct {
	CSR_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} CSR_DER;

/* RSAPublicKey (RFC 8017 A.1.1), as OpenSSL's own template reads it. */
typedef struct {
	BIGNUM *n;
	BIGNUM *e;
} CSR_RSA_KEY;

ASN1_SEQUENCE(CSR_SPKI) = {
	ASN1_SIMPLE(CSR_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(CSR_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_SPKI)

ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
	ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(CSR_INFO, subject, X509_NAME),
	ASN1_SIMPLE(CSR_INFO, spki, CSR_SPKI),
	/* Not optional in RFC 2986, but OpenSSL lets requests without it through too. */
	ASN1_IMP_SET_OF_OPT(CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR_DER) = {
	ASN1_SIMPLE(CSR_DER, info, CSR_INFO),
	ASN1_SIMPLE(CSR_DER, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(CSR_DER, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_DER)

ASN1_SEQUENCE(CSR_RSA_KEY) = {
	ASN1_SIMPLE(CSR_RSA_KEY, n, BIGNUM),
	ASN1_SIMPLE(CSR_RSA_KEY, e, BIGNUM),
} static_ASN1_SEQUENCE_END(CSR_RSA_KEY)

struct csr {
	CSR_DER *der;
	EVP_PKEY *key; /* built by csr_check */
};

/*
 * Keys holding only the domain parameters of P-256 and P-384, made once. A request's EC
 * key is a copy of one with its point set: building the curve anew (Montgomery set-up
 * included) cost four times as much as copying it. Never modified once made, so threads
 * share them.
 */
static EVP_PKEY *curve_keys[2];
static pthread_once_t curve_keys_once = PTHREAD_ONCE_INIT;

static void make_curve_keys(void)
{
	static const char *const names[2] = { "P-256", "P-384" };
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

	for (size_t i = 0; i < 2 && ctx != NULL; i++) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
			                                 (char *)(uintptr_t)names[i], 0),
			OSSL_PARAM_construct_end(),
		};

		if (EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &curve_keys[i], EVP_PKEY_KEY_PARAMETERS, params) != 1)
			curve_keys[i] = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
}

/*
 * Copies len bytes of untrusted src into dst for a message: at most 64 of them, bytes
 * outside printable ASCII (and '"' and '\\') as '?', and "..." when cut.
 */
static void printable(char *dst, size_t size, const char *src, size_t len)
{
	size_t i, n = len > 64 ? 64 : len;

	if (size < 4) {
		if (size > 0)
			dst[0] = '\0';
		return;
	}
	if (n > size - 4)
		n = size - 4;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
	}
	if (n < len) {
		memcpy(dst + i, "...", 3);
		i += 3;
	}
	dst[i] = '\0';
}

static bool is_request_label(const char *name)
{
	return strcmp(name, "CERTIFICATE REQUEST") == 0 ||
	       strcmp(name, "NEW CERTIFICATE REQUEST") == 0;
}

struct csr *csr_parse_der(const unsigned char *der, size_t len, struct err *e)
{
	const unsigned char *p = der;
	struct csr *c = NULL;
	long version;

	if (der == NULL && len > 0) {
		err_set(e, -EINVAL, "csr_parse_der: no DER given");
		return NULL;
	}
	if (len == 0 || len > CSR_PEM_MAX) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is %zu bytes; the limit is %d", len,
		        CSR_PEM_MAX);
		return NULL;
	}
	ERR_set_mark();
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		err_set(e, -ENOMEM, "certificate signing request: out of memory");
		goto out;
	}
	c->der = (CSR_DER *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CSR_DER));
	if (c->der == NULL) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is damaged: its contents are not a PKCS#10 "
		        "request (%s)",
		        ERR_reason_error_string(ERR_peek_last_error()) != NULL
		            ? ERR_reason_error_string(ERR_peek_last_error())
		            : "unknown reason");
		goto fail;
	}
	if (p != der + len) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is damaged: %ld extra bytes follow it",
		        (long)(der + len - p));
		goto fail;
	}
	version = ASN1_INTEGER_get(c->der->info->version);
	if (version != X509_REQ_VERSION_1) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request has version %ld; PKCS#10 knows only 1 (0)",
		        version + 1);
		goto fail;
	}
	goto out;
fail:
	csr_free(c);
	c = NULL;
out:
	ERR_pop_to_mark();
	return c;
}

void csr_free(struct csr *c)
{
	if (c == NULL)
		return;
	ASN1_item_free((ASN1_VALUE *)c->der, ASN1_ITEM_rptr(CSR_DER));
	EVP_PKEY_free(c->key);
	free(c);
}

EVP_PKEY *csr_pubkey(const struct csr *c)
{
	return c->key;
}

void csr_spki(const struct csr *c, const X509_ALGOR **alg, const ASN1_BIT_STRING **key)
{
	*alg = c->der->info->spki->algor;
	*key = c->der->info->spki->public_key;
}

struct csr *csr_parse(const char *pem, size_t len, struct err *e)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL, shown[72];
	unsigned char *data = NULL, *der = NULL;
	long dlen = 0, der_len = 0;
	unsigned long last;
	struct csr *req = NULL;
	int block = 0;

	if (pem == NULL && len > 0) {
		err_set(e, -EINVAL, "csr_parse: no text given");
		return NULL;
	}
	if (len == 0) {
		err_set(e, ERR_CSR_MALFORMED, "certificate signing request is empty");
		return NULL;
	}
	if (len > CSR_PEM_MAX) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is %zu bytes; the limit is %d", len,
		        CSR_PEM_MAX);
		return NULL;
	}
	ERR_set_mark();
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL) {
		err_set(e, -ENOMEM, "certificate signing request: out of memory");
		goto out;
	}
	/* A request has no PEM headers: one is refused below, as ONLY_B64 lets it through. */
	for (;;) {
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
		if (!PEM_read_bio_ex(bio, &name, &header, &data, &dlen, PEM_FLAG_ONLY_B64))
			break;
		block++;
		if (!is_request_label(name)) {
			printable(shown, sizeof(shown), name, strlen(name));
			err_set(e, ERR_CSR_MALFORMED,
			        "expected a PEM \"CERTIFICATE REQUEST\" only, but PEM block %d is "
			        "a \"%s\"",
			        block, shown);
			goto out;
		}
		if (header != NULL && header[0] != '\0') {
			err_set(e, ERR_CSR_MALFORMED,
			        "PEM block %d has headers (\"Proc-Type:\" or the like); a request "
			        "has none",
			        block);
			goto out;
		}
		if (der != NULL) {
			err_set(e, ERR_CSR_MALFORMED,
			        "holds more than one certificate signing request (PEM block %d is "
			        "another); send exactly one",
			        block);
			goto out;
		}
		der = data;
		der_len = dlen;
		data = NULL;
	}
	/* The loop ends on the first failure: the end of the text, or a damaged block. */
	last = ERR_peek_last_error();
	if (ERR_GET_LIB(last) != ERR_LIB_PEM || ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
		err_set(e, ERR_CSR_MALFORMED, "PEM block %d is damaged: %s", block + 1,
		        ERR_reason_error_string(last) != NULL ? ERR_reason_error_string(last)
		                                              : "unknown reason");
		goto out;
	}
	if (der == NULL) {
		err_set(e, ERR_CSR_MALFORMED,
		        "no certificate signing request found (no \"-----BEGIN CERTIFICATE "
		        "REQUEST-----\" line)");
		goto out;
	}
	req = csr_parse_der(der, (size_t)der_len, e);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_pop_to_mark();
	return req;
}

#define KEY_UNDECODABLE                                                                            \
	"certificate signing request's public key cannot be decoded (an unknown "                  \
	"algorithm?); " KEYS_ALLOWED

/*
 * The EC key of a request, on P-256 (i = 0) or P-384 (i = 1), from its encoded point. A
 * copy of the curve's key gets the point, which OpenSSL checks is on the curve; the point
 * at infinity (the one byte 00), which OpenSSL would take and with which a "signature"
 * anyone can make would verify, is refused first. P-256 and P-384 have cofactor 1, so
 * that is the whole public key check.
 */
static int ec_key(struct csr *c, size_t i, const ASN1_BIT_STRING *bits, struct err *e)
{
	const unsigned char *p = ASN1_STRING_get0_data(bits);
	int len = ASN1_STRING_length(bits);

	if (c->key != NULL)
		return 0;
	pthread_once(&curve_keys_once, make_curve_keys);
	if (curve_keys[i] == NULL || (c->key = EVP_PKEY_dup(curve_keys[i])) == NULL)
		return err_set(e, -ENOMEM, "certificate signing request: out of memory");
	if (len < 2 || p[0] == 0x00 ||
	    EVP_PKEY_set1_encoded_public_key(c->key, p, (size_t)len) != 1) {
		EVP_PKEY_free(c->key);
		c->key = NULL;
		return err_set(e, ERR_CSR_KEY,
		               "certificate signing request's EC public key is not a valid point "
		               "of its curve");
	}
	return 0;
}

/* An EC key: named P-256 or P-384 only; info gets its description. */
static int check_ec_key(struct csr *c, const X509_ALGOR *alg, const ASN1_BIT_STRING *bits,
                        struct csr_info *info, struct err *e)
{
	const void *pval = NULL;
	const char *name;
	char shown[72];
	int ptype = V_ASN1_UNDEF, nid;

	X509_ALGOR_get0(NULL, &ptype, &pval, alg);
	/* Explicit curve parameters (RFC 5480 forbids them) have no name. */
	if (ptype == V_ASN1_SEQUENCE)
		return err_set(e, ERR_CSR_KEY,
		               "certificate signing request has an EC key with explicit curve "
		               "parameters; " KEYS_ALLOWED " (named curves)");
	nid = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
	if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1) {
		snprintf(info->key_desc, sizeof(info->key_desc), "ec-p%d",
		         nid == NID_secp384r1 ? 384 : 256);
		return ec_key(c, nid == NID_secp384r1 ? 1 : 0, bits, e);
	}
	name = EC_curve_nid2nist(nid) != NULL ? EC_curve_nid2nist(nid) : OBJ_nid2sn(nid);
	if (nid == NID_undef || name == NULL)
		return err_set(e, ERR_CSR_KEY, KEY_UNDECODABLE);
	printable(shown, sizeof(shown), name, strlen(name));
	return err_set(e, ERR_CSR_KEY, "certificate signing request has an EC %s key; %s", shown,
	               KEYS_ALLOWED);
}

/* An RSA key of RSA_MIN_BITS to RSA_MAX_BITS; info gets its description. */
static int check_rsa_key(struct csr *c, const ASN1_BIT_STRING *bits, struct csr_info *info,
                         struct err *e)
{
	const unsigned char *p = ASN1_STRING_get0_data(bits);
	CSR_RSA_KEY *rsa = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int rc, n;

	rsa = (CSR_RSA_KEY *)ASN1_item_d2i(NULL, &p, ASN1_STRING_length(bits),
	                                   ASN1_ITEM_rptr(CSR_RSA_KEY));
	if (rsa == NULL || BN_is_zero(rsa->e)) {
		rc = err_set(e, ERR_CSR_KEY, KEY_UNDECODABLE);
		goto out;
	}
	n = BN_num_bits(rsa->n);
	if (n < RSA_MIN_BITS || n > RSA_MAX_BITS) {
		rc = err_set(e, ERR_CSR_KEY, "certificate signing request has an RSA-%d key; %s", n,
		             KEYS_ALLOWED);
		goto out;
	}
	snprintf(info->key_desc, sizeof(info->key_desc), "rsa-%d", n);
	rc = 0;
	if (c->key != NULL)
		goto out;
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, rsa->n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, rsa->e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &c->key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		rc = err_set(e, -ENOMEM, "certificate signing request: out of memory");
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	ASN1_item_free((ASN1_VALUE *)rsa, ASN1_ITEM_rptr(CSR_RSA_KEY));
	return rc;
}

/* Checks the key against the allowed kinds, describes it into info and builds c->key. */
static int check_key(struct csr *c, struct csr_info *info, struct err *e)
{
	const CSR_SPKI *spki = c->der->info->spki;
	const char *type;
	char shown[72];

	/* A key is whole bytes: a BIT STRING with unused bits is no key encoding we issue for. */
	if ((spki->public_key->flags & ASN1_STRING_FLAG_BITS_LEFT) &&
	    (spki->public_key->flags & 0x07) != 0)
		return err_set(e, ERR_CSR_KEY,
		               "certificate signing request's public key is a BIT STRING with "
		               "unused bits; keys are whole bytes");
	switch (OBJ_obj2nid(spki->algor->algorithm)) {
	case NID_X9_62_id_ecPublicKey:
		return check_ec_key(c, spki->algor, spki->public_key, info, e);
	case NID_rsaEncryption:
		return check_rsa_key(c, spki->public_key, info, e);
	case NID_ED25519:
		type = "Ed25519";
		break;
	case NID_ED448:
		type = "Ed448";
		break;
	case NID_rsassaPss:
		type = "RSA-PSS (restricted RSA)";
		break;
	case NID_undef:
		return err_set(e, ERR_CSR_KEY, KEY_UNDECODABLE);
	default:
		type = OBJ_nid2sn(OBJ_obj2nid(spki->algor->algorithm));
		break;
	}
	printable(shown, sizeof(shown), type, strlen(type));
	return err_set(e, ERR_CSR_KEY, "certificate signing request has an %s key; %s", shown,
	               KEYS_ALLOWED);
}

/*
 * The self-signature: a digest we accept, and it must verify with the request's own key
 * over the CertificationRequestInfo exactly as it was encoded (as X509_REQ_verify does).
 */
static int check_signature(const struct csr *c, struct err *e)
{
	const CSR_DER *der = c->der;
	int sig_nid = OBJ_obj2nid(der->sig_alg->algorithm), md_nid = NID_undef;
	int pk_nid = NID_undef;
	const char *sn;

	if (sig_nid != NID_rsassaPss) {
		if (!OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid) ||
		    (md_nid != NID_sha256 && md_nid != NID_sha384 && md_nid != NID_sha512)) {
			sn = md_nid != NID_undef ? OBJ_nid2sn(md_nid) : OBJ_nid2sn(sig_nid);
			return err_set(e, ERR_CSR_SIGNATURE,
			               "certificate signing request is signed with %s; allowed "
			               "digests: SHA-256, SHA-384, SHA-512",
			               sn != NULL && sig_nid != NID_undef ? sn
			                                                  : "an unknown algorithm");
		}
	}
	if (ASN1_item_verify_ex(ASN1_ITEM_rptr(CSR_INFO), der->sig_alg, der->signature, der->info,
	                        NULL, c->key, NULL, NULL) != 1)
		return err_set(e, ERR_CSR_SIGNATURE,
		               "certificate signing request's signature does not verify with its "
		               "own public key");
	return 0;
}

static const char *gen_type_name(int type)
{
	switch (type) {
	case GEN_DNS:
		return "a DNS name";
	case GEN_IPADD:
		return "an IP address";
	case GEN_EMAIL:
		return "an email address";
	case GEN_DIRNAME:
		return "a directory name";
	case GEN_RID:
		return "a registered ID";
	case GEN_OTHERNAME:
		return "an other name";
	default:
		return "an unusual name";
	}
}

/* The names of one subjectAltName the request asks for: want's URI or nothing. */
static int check_names(const GENERAL_NAMES *names, const char *want, struct err *e)
{
	const GENERAL_NAME *gn, *uri = NULL;
	const ASN1_STRING *s;
	char shown[72];
	int nuris = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_URI) {
			nuris++;
			if (uri == NULL)
				uri = gn;
			continue;
		}
		shown[0] = '\0';
		if (gn->type == GEN_DNS || gn->type == GEN_EMAIL) {
			s = gn->d.ia5;
			printable(shown, sizeof(shown), (const char *)ASN1_STRING_get0_data(s),
			          (size_t)ASN1_STRING_length(s));
		}
		return err_set(e, ERR_CSR_IDENTITY,
		               "certificate signing request asks for %s%s%s%s in its subject "
		               "alternative names; a workload certificate carries only its SPIFFE "
		               "ID (%s)",
		               gen_type_name(gn->type), shown[0] ? " (\"" : "", shown,
		               shown[0] ? "\")" : "", want);
	}
	if (nuris > 1)
		return err_set(e, ERR_CSR_IDENTITY,
		               "certificate signing request asks for %d URI subject alternative "
		               "names; a workload certificate carries exactly one, its SPIFFE ID "
		               "(%s)",
		               nuris, want);
	if (uri == NULL)
		return 0;
	s = uri->d.uniformResourceIdentifier;
	if ((size_t)ASN1_STRING_length(s) != strlen(want) ||
	    memcmp(ASN1_STRING_get0_data(s), want, strlen(want)) != 0) {
		printable(shown, sizeof(shown), (const char *)ASN1_STRING_get0_data(s),
		          (size_t)ASN1_STRING_length(s));
		return err_set(e, ERR_CSR_IDENTITY,
		               "certificate signing request asks for the identity \"%s\", but the "
		               "caller is %s",
		               shown, want);
	}
	return 0;
}

/*
 * The extensions of the one extension request attribute, as X509_REQ_get_extensions reads
 * them: a SEQUENCE of extensions as its first value. NULL when it is damaged.
 */
static STACK_OF(X509_EXTENSION) *request_extensions(X509_ATTRIBUTE *attr)
{
	const ASN1_TYPE *value = X509_ATTRIBUTE_get0_type(attr, 0);
	const unsigned char *p;

	if (value == NULL || value->type != V_ASN1_SEQUENCE)
		return NULL;
	p = value->value.sequence->data;
	return (STACK_OF(X509_EXTENSION) *)ASN1_item_d2i(NULL, &p, value->value.sequence->length,
	                                                 ASN1_ITEM_rptr(X509_EXTENSIONS));
}

/*
 * The extension request. There must be at most one such attribute with one value, so that
 * a second one cannot carry names that a reader of only the first would not show us.
 */
static int check_extensions(const struct csr *c, const char *want, struct err *e)
{
	const STACK_OF(X509_ATTRIBUTE) *attrs = c->der->info->attributes;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_ATTRIBUTE *attr, *request = NULL;
	X509_EXTENSION *ext;
	GENERAL_NAMES *names = NULL;
	int nsans = 0, nid, rc = 0;

	for (int i = 0; i < sk_X509_ATTRIBUTE_num(attrs); i++) {
		attr = sk_X509_ATTRIBUTE_value(attrs, i);
		nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr));
		if (nid != NID_ext_req && nid != NID_ms_ext_req)
			continue;
		if (request != NULL || X509_ATTRIBUTE_count(attr) != 1)
			return err_set(
			    e, ERR_CSR_MALFORMED,
			    "certificate signing request's extension request is repeated "
			    "or has several values");
		request = attr;
	}
	if (request == NULL)
		return 0;
	exts = request_extensions(request);
	if (exts == NULL)
		return err_set(e, ERR_CSR_MALFORMED,
		               "certificate signing request's extension request is damaged");
	for (int i = 0; i < sk_X509_EXTENSION_num(exts) && rc == 0; i++) {
		ext = sk_X509_EXTENSION_value(exts, i);
		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
			continue;
		if (++nsans > 1) {
			rc = err_set(e, ERR_CSR_MALFORMED,
			             "certificate signing request asks for two subjectAltName "
			             "extensions");
			break;
		}
		names = X509V3_EXT_d2i(ext);
		if (names == NULL) {
			rc = err_set(e, ERR_CSR_MALFORMED,
			             "certificate signing request's subjectAltName is damaged");
			break;
		}
		rc = check_names(names, want, e);
		GENERAL_NAMES_free(names);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

int csr_check(struct csr *c, const struct spiffe_id *want, struct csr_info *info, struct err *e)
{
	struct csr_info scratch;
	char want_uri[SPIFFE_ID_MAX + 1];
	int rc;

	if (info == NULL)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (c == NULL || want == NULL)
		return err_set(e, -EINVAL, "csr_check: no request or no identity");
	rc = spiffe_id_format(want, want_uri, sizeof(want_uri));
	if (rc < 0)
		return err_set(e, rc, "csr_check: the wanted identity is invalid: %s", err_str(rc));
	ERR_set_mark();
	/* The key is judged first, so that no work is spent verifying with a refused one. */
	rc = check_key(c, info, e);
	if (rc == 0)
		rc = check_signature(c, e);
	if (rc == 0)
		rc = check_extensions(c, want_uri, e);
	ERR_pop_to_mark();
	return rc;
}
