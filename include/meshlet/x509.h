/* SPDX-License-Identifier: Apache-2.0 */
/* Certificates and private keys on disk and in PEM: reading, writing and the few checks a mesh
 * needs. */
#ifndef MESHLET_X509_H
#define MESHLET_X509_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "meshlet/err.h"
#include "meshlet/spiffe.h"

/*
 * The largest certificate or key file we read, in bytes; a bigger file is refused with
 * -EFBIG (a chain or key is a few kilobytes; this catches a wrong path such as a log).
 */
#define X509_FILE_MAX (1024 * 1024)

/*
 * A buffer this large always holds x509_serial_hex's output for a certificate that follows
 * RFC 5280 (at most 20 octets): 40 hex digits, a sign and the NUL.
 */
#define X509_SERIAL_HEX_SIZE 48

/*
 * x509_read_chain - read every CERTIFICATE PEM block of the file at path, in file order
 * (leaf first, as cert-chain files are); blocks with other labels are skipped. On failure
 * returns NULL and fills e: ERR_PEM_NO_CERT when the file holds no certificate,
 * ERR_PEM_BAD_CERT for a damaged block (the message names the file, the block number and
 * its line), -errno when the file cannot be opened or read (-EISDIR for a directory,
 * -EFBIG beyond X509_FILE_MAX). The caller frees the result with
 * sk_X509_pop_free(chain, X509_free).
 */
STACK_OF(X509) *x509_read_chain(const char *path, struct err *e);

/*
 * x509_parse_chain - the same as x509_read_chain, from len bytes of PEM text in memory
 * (need not be NUL-terminated); what names the source in messages ("ca.pem", "the CA's
 * answer").
 */
STACK_OF(X509) *x509_parse_chain(const char *pem, size_t len, const char *what, struct err *e);

/*
 * x509_read_key - read the private key in the file at path: PKCS#8 ("PRIVATE KEY") or
 * traditional ("EC PRIVATE KEY", "RSA PRIVATE KEY"); other PEM blocks (EC PARAMETERS, a
 * certificate) are skipped. The mode of the file actually opened is checked (fstat on the
 * open descriptor, so a symlink is judged by its target) before a byte is read: if group
 * or others may read or write it, fails with ERR_KEY_PERMISSIONS and a message naming the
 * file, its mode and the chmod that fixes it; except that a file owned by root may be
 * readable (only) by its group, as PostgreSQL allows for its key and as Kubernetes mounts
 * a Secret for a pod with an fsGroup (root, group fsGroup, 0440). Other failures: -errno (-EISDIR for a
 * directory, -EINVAL for anything but a regular file, -EFBIG beyond X509_FILE_MAX),
 * ERR_PEM_NO_KEY, ERR_PEM_KEY_ENCRYPTED, ERR_PEM_BAD_KEY (damaged, unsupported format or
 * more than one key). Returns NULL and fills e on failure; the caller frees the key with
 * EVP_PKEY_free. The file's bytes are wiped from memory before this returns.
 */
EVP_PKEY *x509_read_key(const char *path, struct err *e);

/*
 * x509_write_file - replace the file at path with len bytes of data, atomically: the
 * data goes to a temporary file in the same directory (".<name>.XXXXXX"), which gets
 * exactly mode (0600 for keys, 0644 for certificates; the umask does not apply), is
 * fsync'ed and renamed over path; then the directory is fsync'ed. Readers see the old
 * file or the new one, never a part. Returns 0, or -errno with e naming the file; on
 * failure the temporary file is removed and path is untouched.
 */
int x509_write_file(const char *path, const char *data, size_t len, mode_t mode, struct err *e);

/*
 * x509_cert_pem - the PEM text of one certificate, NUL-terminated and malloc'd: the
 * caller frees it. NULL when out of memory.
 */
char *x509_cert_pem(X509 *cert);

/*
 * x509_key_pem - the unencrypted PKCS#8 PEM text ("PRIVATE KEY") of a private key,
 * NUL-terminated and malloc'd: the caller frees it with x509_free_secret, which wipes it.
 * NULL when out of memory or when key has no private part.
 */
char *x509_key_pem(EVP_PKEY *key);

/* x509_free_secret - wipe the NUL-terminated string s and free it; s may be NULL. */
void x509_free_secret(char *s);

/*
 * x509_spiffe_id - the SPIFFE ID in cert's single URI subject alternative name (the
 * X509-SVID rule), parsed into out. Returns 0, ERR_X509_NO_URI_SAN, ERR_X509_MANY_URI_SANS,
 * ERR_X509_BAD_SAN (the extension is damaged or present twice) or the ERR_SPIFFE_* code of
 * spiffe_id_parse (a URI that is not a SPIFFE ID). out is written only on success.
 */
int x509_spiffe_id(X509 *cert, struct spiffe_id *out);

/*
 * x509_serial_hex - cert's serial number in lowercase hex without leading zeros into buf
 * ("0" for zero; a negative serial, which RFC 5280 forbids but parsers accept, gets a
 * '-'). Returns 0, or ERR_TRUNCATED when size is too small (buf then holds "" if size > 0).
 */
int x509_serial_hex(X509 *cert, char *buf, size_t size);

/*
 * x509_not_after - cert's notAfter as seconds since the Unix epoch into *unix_seconds.
 * Returns 0 or ERR_X509_BAD_TIME.
 */
int x509_not_after(X509 *cert, int64_t *unix_seconds);

/*
 * x509_check_key - does cert's public key belong to the private key key? Returns 0 when
 * it does, ERR_X509_KEY_MISMATCH when it does not (including keys of different types).
 */
int x509_check_key(X509 *cert, EVP_PKEY *key);

#endif
