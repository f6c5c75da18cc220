/* SPDX-License-Identifier: Apache-2.0 */
/* A workload's certificate signing request: strict PEM decoding and the checks before signing. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "csr.h"

#define KEYS_ALLOWED "allowed: EC P-256, EC P-384, RSA 2048 to 8192 bits"
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192

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

/* Decodes the DER of one request; the whole of it must be the request. */
static X509_REQ *decode_request(const unsigned char *der, long len, struct err *e)
{
	const unsigned char *p = der;
	X509_REQ *req;

	req = d2i_X509_REQ(NULL, &p, len);
	if (req == NULL) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is damaged: its contents are not a PKCS#10 "
		        "request (%s)",
		        ERR_reason_error_string(ERR_peek_last_error()) != NULL
		            ? ERR_reason_error_string(ERR_peek_last_error())
		            : "unknown reason");
		return NULL;
	}
	if (p != der + len) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request is damaged: %ld extra bytes follow it",
		        (long)(der + len - p));
		goto fail;
	}
	if (X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		err_set(e, ERR_CSR_MALFORMED,
		        "certificate signing request has version %ld; PKCS#10 knows only 1 (0)",
		        X509_REQ_get_version(req) + 1);
		goto fail;
	}
	return req;
fail:
	X509_REQ_free(req);
	return NULL;
}

X509_REQ *csr_parse(const char *pem, size_t len, struct err *e)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL, shown[72];
	unsigned char *data = NULL, *der = NULL;
	long dlen = 0, der_len = 0;
	unsigned long last;
	X509_REQ *req = NULL;
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
	req = decode_request(der, der_len, e);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_pop_to_mark();
	return req;
}

/*
 * OpenSSL decodes the point at infinity as a public key, and with it a "signature" anyone
 * can make would verify. The quick check (not infinity, on the curve) is the whole check
 * on P-256 and P-384, whose cofactor is 1.
 */
static int check_point(EVP_PKEY *key, struct err *e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	int ok = ctx != NULL && EVP_PKEY_public_check_quick(ctx) == 1;

	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return err_set(e, ERR_CSR_KEY,
		               "certificate signing request's EC public key is not a valid point "
		               "of its curve");
	return 0;
}

/* Checks the key against the allowed kinds and describes it into info. */
static int check_key(EVP_PKEY *key, struct csr_info *info, struct err *e)
{
	char group[64] = "", shown[72];
	const char *type;
	size_t glen = 0;
	int nid, bits;

	if (key == NULL)
		return err_set(e, ERR_CSR_KEY,
		               "certificate signing request's public key cannot be decoded (an "
		               "unknown algorithm?); " KEYS_ALLOWED);
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		/* Explicit curve parameters (RFC 5480 forbids them) have no group name. */
		if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &glen))
			return err_set(e, ERR_CSR_KEY,
			               "certificate signing request has an EC key with explicit "
			               "curve parameters; " KEYS_ALLOWED " (named curves)");
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1) {
			snprintf(info->key_desc, sizeof(info->key_desc), "ec-p%d",
			         nid == NID_secp384r1 ? 384 : 256);
			return check_point(key, e);
		}
		printable(shown, sizeof(shown), group, strlen(group));
		if (nid != NID_undef && EC_curve_nid2nist(nid) != NULL)
			printable(shown, sizeof(shown), EC_curve_nid2nist(nid),
			          strlen(EC_curve_nid2nist(nid)));
		return err_set(e, ERR_CSR_KEY, "certificate signing request has an EC %s key; %s",
		               shown, KEYS_ALLOWED);
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(key);
		if (bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS) {
			snprintf(info->key_desc, sizeof(info->key_desc), "rsa-%d", bits);
			return 0;
		}
		return err_set(e, ERR_CSR_KEY, "certificate signing request has an RSA-%d key; %s",
		               bits, KEYS_ALLOWED);
	case EVP_PKEY_ED25519:
		type = "Ed25519";
		break;
	case EVP_PKEY_ED448:
		type = "Ed448";
		break;
	case EVP_PKEY_RSA_PSS:
		type = "RSA-PSS (restricted RSA)";
		break;
	default:
		type = EVP_PKEY_get0_type_name(key);
		if (type == NULL)
			type = "unknown";
		break;
	}
	printable(shown, sizeof(shown), type, strlen(type));
	return err_set(e, ERR_CSR_KEY, "certificate signing request has an %s key; %s", shown,
	               KEYS_ALLOWED);
}

/* The self-signature: a digest we accept, and it must verify with the request's own key. */
static int check_signature(X509_REQ *req, EVP_PKEY *key, struct err *e)
{
	int sig_nid = X509_REQ_get_signature_nid(req), md_nid = NID_undef, pk_nid = NID_undef;
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
	if (X509_REQ_verify(req, key) != 1)
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
 * The extension request. There must be at most one such attribute with one value, so that
 * a second one cannot carry names that OpenSSL (which reads the first) would not show us.
 */
static int check_extensions(X509_REQ *req, const char *want, struct err *e)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_ATTRIBUTE *attr;
	X509_EXTENSION *ext;
	GENERAL_NAMES *names = NULL;
	int nattrs = 0, nsans = 0, nid, rc = 0;

	for (int i = 0; i < X509_REQ_get_attr_count(req); i++) {
		attr = X509_REQ_get_attr(req, i);
		nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr));
		if (nid != NID_ext_req && nid != NID_ms_ext_req)
			continue;
		if (++nattrs > 1 || X509_ATTRIBUTE_count(attr) != 1)
			return err_set(
			    e, ERR_CSR_MALFORMED,
			    "certificate signing request's extension request is repeated "
			    "or has several values");
	}
	if (nattrs == 0)
		return 0;
	exts = X509_REQ_get_extensions(req);
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

int csr_check(X509_REQ *req, const struct spiffe_id *want, struct csr_info *info, struct err *e)
{
	struct csr_info scratch;
	char want_uri[SPIFFE_ID_MAX + 1];
	EVP_PKEY *key;
	int rc;

	if (info == NULL)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (req == NULL || want == NULL)
		return err_set(e, -EINVAL, "csr_check: no request or no identity");
	rc = spiffe_id_format(want, want_uri, sizeof(want_uri));
	if (rc < 0)
		return err_set(e, rc, "csr_check: the wanted identity is invalid: %s", err_str(rc));
	ERR_set_mark();
	/* The key is judged first, so that no work is spent verifying with a refused one. */
	key = X509_REQ_get0_pubkey(req);
	rc = check_key(key, info, e);
	if (rc == 0)
		rc = check_signature(req, key, e);
	if (rc == 0)
		rc = check_extensions(req, want_uri, e);
	ERR_pop_to_mark();
	return rc;
}
