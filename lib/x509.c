/* SPDX-License-Identifier: Apache-2.0 */
/* Certificates and private keys: PEM files in and out, key-file permissions, SVID fields. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "meshlet/time.h"
#include "meshlet/x509.h"

/* One PEM block as found in the text: its label, where it starts and ends, and its line. */
struct pem_block {
	const char *label; /* not NUL-terminated: label_len bytes */
	size_t label_len;
	const char *text; /* from the BEGIN line through the END line */
	size_t len;
	unsigned line;  /* of the BEGIN line, from 1 */
	int n;          /* the block's number in the text, from 1 */
	bool complete;  /* has its END line */
	bool encrypted; /* has a "Proc-Type: 4,ENCRYPTED" header */
};

struct pem_scan {
	const char *text;
	size_t len;
	size_t pos;
	unsigned line;
	int blocks;
};

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t pn = strlen(prefix);

	return n >= pn && memcmp(s, prefix, pn) == 0;
}

static bool label_is(const struct pem_block *b, const char *label)
{
	return b->label_len == strlen(label) && memcmp(b->label, label, b->label_len) == 0;
}

/* The next line of the text without its line end and trailing blanks; false at the end. */
static bool next_line(struct pem_scan *s, const char **line, size_t *n)
{
	const char *p, *nl;
	size_t rest, len;

	if (s->pos >= s->len)
		return false;
	p = s->text + s->pos;
	rest = s->len - s->pos;
	nl = memchr(p, '\n', rest);
	len = nl != NULL ? (size_t)(nl - p) : rest;
	s->pos += nl != NULL ? len + 1 : len;
	s->line++;
	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	*line = p;
	*n = len;
	return true;
}

/*
 * Finds the next "-----BEGIN x-----" line and the END line that closes it, as OpenSSL's
 * PEM reader does (markers at the start of a line). Text between blocks is skipped. A
 * block cut short by the end of the text or by another BEGIN line is returned with
 * complete false; the scan then resumes at that BEGIN line.
 */
static bool pem_next(struct pem_scan *s, struct pem_block *b)
{
	const char *line;
	size_t n, before;

	while (next_line(s, &line, &n)) {
		if (n < 16 || !has_prefix(line, n, "-----BEGIN ") ||
		    memcmp(line + n - 5, "-----", 5) != 0)
			continue;
		memset(b, 0, sizeof(*b));
		b->label = line + 11;
		b->label_len = n - 16;
		b->text = line;
		b->line = s->line;
		b->n = ++s->blocks;
		for (;;) {
			before = s->pos;
			if (!next_line(s, &line, &n))
				break;
			if (has_prefix(line, n, "-----BEGIN ")) {
				s->pos = before;
				s->line--;
				break;
			}
			if (has_prefix(line, n, "-----END ") && n == b->label_len + 14 &&
			    memcmp(line + 9, b->label, b->label_len) == 0 &&
			    memcmp(line + n - 5, "-----", 5) == 0) {
				b->complete = true;
				break;
			}
			if (has_prefix(line, n, "Proc-Type:") && memmem(line, n, "ENCRYPTED", 9))
				b->encrypted = true;
		}
		b->len = (size_t)(s->text + s->pos - b->text);
		return true;
	}
	return false;
}

/* OpenSSL's reason for the last failure since our mark, for a message. */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "unknown reason";
}

/*
 * Opens path for reading and checks that it is a regular file (following symlinks, as
 * Kubernetes mounts secrets through them). O_NONBLOCK keeps a FIFO from blocking the
 * open; regular files ignore it. Returns the descriptor, or a negative code with e filled.
 */
static int open_regular(const char *path, struct stat *st, struct err *e)
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		return err_set(e, rc, "%s: cannot open: %s", path, err_str(rc));
	}
	if (fstat(fd, st) < 0) {
		rc = -errno;
		close(fd);
		return err_set(e, rc, "%s: cannot stat: %s", path, err_str(rc));
	}
	if (S_ISDIR(st->st_mode)) {
		close(fd);
		return err_set(e, -EISDIR, "%s: is a directory, not a PEM file", path);
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return err_set(e, -EINVAL, "%s: is not a regular file", path);
	}
	if (st->st_size > X509_FILE_MAX) {
		close(fd);
		return err_set(e, -EFBIG, "%s: is larger than %d bytes; is this the right file?",
		               path, X509_FILE_MAX);
	}
	return fd;
}

static void free_buf(char *buf, size_t size, bool secret)
{
	if (buf != NULL && secret)
		OPENSSL_cleanse(buf, size);
	free(buf);
}

/*
 * Reads fd to its end into a malloc'd, NUL-terminated buffer of at most X509_FILE_MAX
 * bytes. For a secret every buffer it lets go of is wiped first (no realloc, which would
 * leave a copy behind). The caller frees *out (wiping *len + 1 bytes for a secret).
 */
static int read_all(int fd, size_t hint, bool secret, const char *path, char **out, size_t *len,
                    struct err *e)
{
	/* At most the file's limit, one byte more that shows it was passed, and the NUL. */
	const size_t limit = (size_t)X509_FILE_MAX + 2;
	size_t cap = hint + 2 > 4096 ? hint + 2 : 4096, n = 0;
	char *buf = NULL, *bigger;
	ssize_t r;
	int rc;

	if (cap > limit)
		cap = limit;
	buf = malloc(cap);
	if (buf == NULL)
		return err_set(e, -ENOMEM, "%s: out of memory", path);
	for (;;) {
		if (n > X509_FILE_MAX) {
			rc = err_set(e, -EFBIG,
			             "%s: is larger than %d bytes; is this the right file?", path,
			             X509_FILE_MAX);
			goto fail;
		}
		if (n == cap - 1) {
			cap = cap * 2 < limit ? cap * 2 : limit;
			bigger = malloc(cap);
			if (bigger == NULL) {
				rc = err_set(e, -ENOMEM, "%s: out of memory", path);
				goto fail;
			}
			memcpy(bigger, buf, n);
			free_buf(buf, n, secret);
			buf = bigger;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			err_set(e, rc, "%s: cannot read: %s", path, err_str(rc));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	free_buf(buf, n, secret);
	return rc;
}

static bool is_cert_label(const struct pem_block *b)
{
	return label_is(b, "CERTIFICATE") || label_is(b, "X509 CERTIFICATE");
}

/* Decodes one complete CERTIFICATE block; on failure returns NULL and says why in *why. */
static X509 *decode_cert(const struct pem_block *b, const char **why)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long dlen = 0;
	X509 *cert = NULL;

	bio = BIO_new_mem_buf(b->text, (int)b->len);
	if (bio == NULL) {
		*why = "out of memory";
		goto out;
	}
	/* A certificate has no PEM headers; ONLY_B64 makes a stray one an error. */
	if (!PEM_read_bio_ex(bio, &name, &header, &data, &dlen, PEM_FLAG_ONLY_B64)) {
		*why = ossl_reason();
		goto out;
	}
	p = data;
	cert = d2i_X509(NULL, &p, dlen);
	if (cert == NULL) {
		*why = "its contents are not an X.509 certificate";
		goto out;
	}
	if (p != data + dlen) {
		X509_free(cert);
		cert = NULL;
		*why = "extra bytes follow the certificate";
	}
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return cert;
}

STACK_OF(X509) *x509_parse_chain(const char *pem, size_t len, const char *what, struct err *e)
{
	struct pem_scan s = { .text = pem, .len = len };
	struct pem_block b, other = { 0 };
	STACK_OF(X509) *chain = NULL;
	X509 *cert;
	const char *why;

	if (what == NULL)
		what = "PEM input";
	if (pem == NULL && len > 0) {
		err_set(e, -EINVAL, "%s: no PEM text given", what);
		return NULL;
	}
	if (len > X509_FILE_MAX) {
		err_set(e, -EFBIG, "%s: is larger than %d bytes", what, X509_FILE_MAX);
		return NULL;
	}
	ERR_set_mark();
	chain = sk_X509_new_null();
	if (chain == NULL) {
		err_set(e, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	while (pem_next(&s, &b)) {
		if (!is_cert_label(&b)) {
			if (other.label == NULL)
				other = b;
			continue;
		}
		if (!b.complete) {
			err_set(e, ERR_PEM_BAD_CERT,
			        "%s: certificate block %d (line %u) is damaged: it has no END line",
			        what, b.n, b.line);
			goto fail;
		}
		why = "";
		cert = decode_cert(&b, &why);
		if (cert == NULL) {
			err_set(e, ERR_PEM_BAD_CERT,
			        "%s: certificate block %d (line %u) is damaged: %s", what, b.n,
			        b.line, why);
			goto fail;
		}
		if (sk_X509_push(chain, cert) <= 0) {
			X509_free(cert);
			err_set(e, -ENOMEM, "%s: out of memory", what);
			goto fail;
		}
	}
	if (sk_X509_num(chain) > 0)
		goto out;
	if (len == 0)
		err_set(e, ERR_PEM_NO_CERT, "%s: no certificate found: the file is empty", what);
	else if (other.label != NULL)
		err_set(e, ERR_PEM_NO_CERT,
		        "%s: no certificate found; its first PEM block (line %u) is \"%.*s\"", what,
		        other.line, (int)(other.label_len > 64 ? 64 : other.label_len),
		        other.label);
	else
		err_set(e, ERR_PEM_NO_CERT,
		        "%s: no certificate found (no \"-----BEGIN CERTIFICATE-----\" line)", what);
fail:
	sk_X509_pop_free(chain, X509_free);
	chain = NULL;
out:
	ERR_pop_to_mark();
	return chain;
}

STACK_OF(X509) *x509_read_chain(const char *path, struct err *e)
{
	STACK_OF(X509) *chain = NULL;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	fd = open_regular(path, &st, e);
	if (fd < 0)
		return NULL;
	if (read_all(fd, (size_t)st.st_size, false, path, &buf, &len, e) == 0)
		chain = x509_parse_chain(buf, len, path, e);
	free(buf);
	close(fd);
	return chain;
}

static bool is_key_label(const struct pem_block *b)
{
	return label_is(b, "PRIVATE KEY") || label_is(b, "EC PRIVATE KEY") ||
	       label_is(b, "RSA PRIVATE KEY");
}

/*
 * Decodes one complete, unencrypted private-key block. The DER lives in OpenSSL's secure
 * heap and is wiped when freed. On failure returns NULL and says why in *why.
 */
static EVP_PKEY *decode_key(const struct pem_block *b, const char **why)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long dlen = 0;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *key = NULL;

	bio = BIO_new_mem_buf(b->text, (int)b->len);
	if (bio == NULL) {
		*why = "out of memory";
		goto out;
	}
	if (!PEM_read_bio_ex(bio, &name, &header, &data, &dlen, PEM_FLAG_SECURE)) {
		*why = ossl_reason();
		goto out;
	}
	p = data;
	if (label_is(b, "PRIVATE KEY")) {
		p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, dlen);
		if (p8 != NULL)
			key = EVP_PKCS82PKEY_ex(p8, NULL, NULL);
		if (key == NULL)
			*why =
			    "its contents are not a PKCS#8 private key of a kind OpenSSL supports";
	} else if (label_is(b, "EC PRIVATE KEY")) {
		key = d2i_PrivateKey_ex(EVP_PKEY_EC, NULL, &p, dlen, NULL, NULL);
		if (key == NULL)
			*why = "its contents are not an EC private key";
	} else {
		key = d2i_PrivateKey_ex(EVP_PKEY_RSA, NULL, &p, dlen, NULL, NULL);
		if (key == NULL)
			*why = "its contents are not an RSA private key";
	}
	if (key != NULL && p != data + dlen) {
		EVP_PKEY_free(key);
		key = NULL;
		*why = "extra bytes follow the key";
	}
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	OPENSSL_secure_free(name);
	OPENSSL_secure_free(header);
	OPENSSL_secure_clear_free(data, data != NULL ? (size_t)dlen : 0);
	BIO_free(bio);
	return key;
}

/* Finds the one private key in len bytes of PEM text from path. */
static EVP_PKEY *parse_key(const char *text, size_t len, const char *path, struct err *e)
{
	struct pem_scan s = { .text = text, .len = len };
	struct pem_block b;
	EVP_PKEY *key = NULL;
	const char *why;
	int found = 0;

	ERR_set_mark();
	while (pem_next(&s, &b)) {
		if (label_is(&b, "ENCRYPTED PRIVATE KEY") || (is_key_label(&b) && b.encrypted)) {
			err_set(
			    e, ERR_PEM_KEY_ENCRYPTED,
			    "%s: the private key (block %d, line %u) is encrypted; meshlet needs "
			    "it unencrypted (openssl pkey -in %s -out NEW_FILE decrypts it)",
			    path, b.n, b.line, path);
			goto fail;
		}
		if (!is_key_label(&b)) {
			if (b.label_len >= 11 &&
			    memcmp(b.label + b.label_len - 11, "PRIVATE KEY", 11) == 0) {
				err_set(
				    e, ERR_PEM_BAD_KEY,
				    "%s: block %d (line %u) is a \"%.*s\", which meshlet cannot "
				    "read; use PKCS#8 (\"PRIVATE KEY\"), \"EC PRIVATE KEY\" or "
				    "\"RSA PRIVATE KEY\"",
				    path, b.n, b.line, (int)(b.label_len > 64 ? 64 : b.label_len),
				    b.label);
				goto fail;
			}
			continue;
		}
		if (found++ > 0) {
			err_set(
			    e, ERR_PEM_BAD_KEY,
			    "%s: holds more than one private key (the second is block %d, line %u)",
			    path, b.n, b.line);
			goto fail;
		}
		if (!b.complete) {
			err_set(e, ERR_PEM_BAD_KEY,
			        "%s: private key block %d (line %u) is damaged: it has no END line",
			        path, b.n, b.line);
			goto fail;
		}
		why = "";
		key = decode_key(&b, &why);
		if (key == NULL) {
			err_set(e, ERR_PEM_BAD_KEY,
			        "%s: private key block %d (line %u) is damaged: %s", path, b.n,
			        b.line, why);
			goto fail;
		}
	}
	if (key == NULL)
		err_set(e, ERR_PEM_NO_KEY,
		        "%s: no private key found (no \"-----BEGIN PRIVATE KEY-----\" line)", path);
	goto out;
fail:
	EVP_PKEY_free(key);
	key = NULL;
out:
	ERR_pop_to_mark();
	return key;
}

EVP_PKEY *x509_read_key(const char *path, struct err *e)
{
	EVP_PKEY *key = NULL;
	struct stat st;
	char *buf = NULL;
	const char *verb;
	size_t len = 0;
	unsigned mode;
	int fd;

	/*
	 * The mode is that of the file we opened (fstat on our descriptor), so nothing can
	 * swap the file between the check and the read; and it is checked rather than left
	 * to open() because root, which runs the tests and often the daemons, reads any file.
	 */
	fd = open_regular(path, &st, e);
	if (fd < 0)
		return NULL;
	mode = (unsigned)(st.st_mode & 07777);
	/*
	 * Nobody else may touch a key, with one exception, PostgreSQL's for its server key: a
	 * file owned by root may be readable by its group (0640, 0440), since root chose that
	 * group. That is how Kubernetes mounts a Secret for a pod with an fsGroup: owned by
	 * root, group fsGroup, mode 0440; only the pod's processes are in that group.
	 */
	if ((mode & 077) && !(st.st_uid == 0 && (mode & 077) == 040)) {
		if (mode & 044)
			verb = "read";
		else if (mode & 022)
			verb = "write";
		else
			verb = "access";
		err_set(e, ERR_KEY_PERMISSIONS,
		        "%s: mode %04o lets group or others %s the private key; chmod 600 %s", path,
		        mode, verb, path);
		goto out;
	}
	if (read_all(fd, (size_t)st.st_size, true, path, &buf, &len, e) == 0)
		key = parse_key(buf, len, path, e);
out:
	free_buf(buf, buf != NULL ? len + 1 : 0, true);
	close(fd);
	return key;
}

static int write_all(int fd, const char *data, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = write(fd, data, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		data += r;
		len -= (size_t)r;
	}
	return 0;
}

int x509_write_file(const char *path, const char *data, size_t len, mode_t mode, struct err *e)
{
	const char *slash, *base;
	char *tmp = NULL, *dir = NULL;
	size_t dirlen, size;
	bool created = false;
	int fd = -1, rc;

	if (path == NULL || *path == '\0' || (data == NULL && len > 0))
		return err_set(e, -EINVAL, "x509_write_file: no path or no data");
	slash = strrchr(path, '/');
	base = slash != NULL ? slash + 1 : path;
	if (*base == '\0')
		return err_set(e, -EISDIR, "%s: names a directory, not a file", path);
	dirlen = slash != NULL ? (size_t)(slash - path) + 1 : 0;

	/* The temporary file is hidden, so that watchers of "*.pem" do not pick it up. */
	size = strlen(path) + sizeof("..XXXXXX");
	tmp = malloc(size);
	dir = malloc(dirlen + 2);
	if (tmp == NULL || dir == NULL) {
		rc = err_set(e, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	snprintf(tmp, size, "%.*s.%s.XXXXXX", (int)dirlen, path, base);
	if (dirlen > 0)
		snprintf(dir, dirlen + 2, "%.*s", (int)dirlen, path);
	else
		strcpy(dir, ".");

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		err_set(e, rc, "%s: cannot create a temporary file next to it: %s", path,
		        err_str(rc));
		goto out;
	}
	created = true;
	/* mkostemp made it 0600, so a key is never readable by others, even for a moment. */
	rc = fchmod(fd, mode & 0777) < 0 ? -errno : 0;
	if (rc == 0)
		rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	fd = -1;
	if (rc < 0) {
		err_set(e, rc, "%s: cannot write %s: %s", path, tmp, err_str(rc));
		goto out;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		err_set(e, rc, "%s: cannot replace it: %s", path, err_str(rc));
		goto out;
	}
	created = false;

	/* Make the rename itself durable. Some file systems cannot sync a directory (EINVAL). */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL)) {
		rc = -errno;
		err_set(e, rc, "%s: written, but cannot sync its directory %s: %s", path, dir,
		        err_str(rc));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(dir);
	return rc;
}

/* Copies a memory BIO's contents into a malloc'd, NUL-terminated string. */
static char *bio_string(BIO *bio)
{
	BUF_MEM *mem = NULL;
	char *s;

	if (BIO_get_mem_ptr(bio, &mem) <= 0 || mem == NULL)
		return NULL;
	s = malloc(mem->length + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, mem->data, mem->length);
	s[mem->length] = '\0';
	return s;
}

char *x509_cert_pem(X509 *cert)
{
	BIO *bio;
	char *s = NULL;

	if (cert == NULL)
		return NULL;
	ERR_set_mark();
	bio = BIO_new(BIO_s_mem());
	if (bio != NULL && PEM_write_bio_X509(bio, cert))
		s = bio_string(bio);
	BIO_free(bio);
	ERR_pop_to_mark();
	return s;
}

char *x509_key_pem(EVP_PKEY *key)
{
	BIO *bio;
	char *s = NULL;

	if (key == NULL)
		return NULL;
	ERR_set_mark();
	/* A secmem BIO wipes its buffer when it grows and when it is freed. */
	bio = BIO_new(BIO_s_secmem());
	if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		s = bio_string(bio);
	BIO_free(bio);
	ERR_pop_to_mark();
	return s;
}

void x509_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int x509_spiffe_id(X509 *cert, struct spiffe_id *out)
{
	GENERAL_NAMES *names;
	const GENERAL_NAME *gn;
	const ASN1_IA5STRING *uri = NULL;
	struct spiffe_id id;
	int crit = -1, count = 0, rc;

	if (cert == NULL || out == NULL)
		return -EINVAL;
	ERR_set_mark();
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	ERR_pop_to_mark();
	if (names == NULL)
		return crit == -1 ? ERR_X509_NO_URI_SAN : ERR_X509_BAD_SAN;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_URI) {
			uri = gn->d.uniformResourceIdentifier;
			count++;
		}
	}
	if (count == 0)
		rc = ERR_X509_NO_URI_SAN;
	else if (count > 1)
		rc = ERR_X509_MANY_URI_SANS;
	else
		rc = spiffe_id_parse((const char *)ASN1_STRING_get0_data(uri),
		                     (size_t)ASN1_STRING_length(uri), &id);
	if (rc == 0)
		*out = id;
	GENERAL_NAMES_free(names);
	return rc;
}

int x509_serial_hex(X509 *cert, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const ASN1_INTEGER *serial;
	const unsigned char *d;
	size_t n, i = 0, need, pos = 0;
	bool neg;

	if (cert == NULL || buf == NULL)
		return -EINVAL;
	serial = X509_get0_serialNumber(cert);
	d = ASN1_STRING_get0_data(serial);
	n = d != NULL && ASN1_STRING_length(serial) > 0 ? (size_t)ASN1_STRING_length(serial) : 0;
	/* OpenSSL keeps the magnitude, big-endian; the sign is in the type. */
	while (i < n && d[i] == 0)
		i++;
	neg = i < n && ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	need = i == n ? 2 : neg + 2 * (n - i) - (d[i] < 0x10) + 1;
	if (size < need) {
		if (size > 0)
			buf[0] = '\0';
		return ERR_TRUNCATED;
	}
	if (i == n) {
		strcpy(buf, "0");
		return 0;
	}
	if (neg)
		buf[pos++] = '-';
	if (d[i] >= 0x10)
		buf[pos++] = hex[d[i] >> 4];
	buf[pos++] = hex[d[i] & 0xf];
	for (i++; i < n; i++) {
		buf[pos++] = hex[d[i] >> 4];
		buf[pos++] = hex[d[i] & 0xf];
	}
	buf[pos] = '\0';
	return 0;
}

int x509_not_after(X509 *cert, int64_t *unix_seconds)
{
	const ASN1_TIME *t;
	struct tm tm;
	int ok;

	if (cert == NULL || unix_seconds == NULL)
		return -EINVAL;
	t = X509_get0_notAfter(cert);
	/* ASN1_TIME_to_tm reads the current time when given NULL: never let it. */
	if (t == NULL)
		return ERR_X509_BAD_TIME;
	memset(&tm, 0, sizeof(tm));
	ERR_set_mark();
	ok = ASN1_TIME_to_tm(t, &tm);
	ERR_pop_to_mark();
	if (ok != 1)
		return ERR_X509_BAD_TIME;
	*unix_seconds = time_from_utc_tm(&tm);
	return 0;
}

int x509_check_key(X509 *cert, EVP_PKEY *key)
{
	EVP_PKEY *pub;
	int eq;

	if (cert == NULL || key == NULL)
		return -EINVAL;
	ERR_set_mark();
	pub = X509_get0_pubkey(cert);
	eq = pub != NULL ? EVP_PKEY_eq(pub, key) : 0;
	ERR_pop_to_mark();
	return eq == 1 ? 0 : ERR_X509_KEY_MISMATCH;
}
