/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648) in the standard and the URL-safe alphabet, with strict decoding. */
#ifndef MESHLET_BASE64_H
#define MESHLET_BASE64_H

#include <stddef.h>

/*
 * BASE64_STD is the alphabet of RFC 4648 section 4 ('+', '/'), always padded with '=' to
 * a multiple of 4 characters: Kubernetes JSON (patches, Secrets) and DER without PEM.
 * BASE64_URL is the alphabet of section 5 ('-', '_'), never padded: JWS and JWK
 * (RFC 7515 section 2). Neither ever has line breaks or whitespace.
 */
enum base64_variant {
	BASE64_STD,
	BASE64_URL,
};

/*
 * base64_encoded_len - the length of the encoding of n bytes in variant v, without the
 * terminating NUL. SIZE_MAX when that length, with its NUL, does not fit in a size_t.
 */
size_t base64_encoded_len(size_t n, enum base64_variant v);

/*
 * base64_decoded_max - an upper bound on the number of bytes that n characters of base64
 * (of either variant) decode to: the size of a buffer that is always large enough.
 */
size_t base64_decoded_max(size_t n);

/*
 * base64_encode - encode the n bytes at in (which may be NULL when n is 0) into out,
 * a buffer of out_size bytes that the caller owns, and NUL-terminate it.
 * Returns the length written (without the NUL); ERR_TRUNCATED when out_size is not at
 * least base64_encoded_len(n, v) + 1, leaving out an empty string if out_size > 0;
 * -EOVERFLOW when the length does not fit in an int; -EINVAL for an unknown variant.
 */
int base64_encode(const void *in, size_t n, char *out, size_t out_size, enum base64_variant v);

/*
 * base64_encode_alloc - like base64_encode, into a NUL-terminated string that the caller
 * frees with free(). NULL with errno set when memory runs out (ENOMEM) or v is not a
 * variant (EINVAL).
 */
char *base64_encode_alloc(const void *in, size_t n, enum base64_variant v);

/*
 * base64_decode - decode the n characters at in (no NUL needed; in may be NULL when n is
 * 0) into out, a buffer of out_size bytes that the caller owns, and store the number of
 * bytes decoded in *out_len (out_len may be NULL). Strict, so that each byte string has
 * exactly one accepted encoding (a JWS signature cannot be altered unnoticed):
 *   ERR_BASE64_CHAR          a character outside the alphabet, whitespace and line
 *                            breaks included;
 *   ERR_BASE64_PADDING       STD: not padded to a multiple of 4, the wrong number of
 *                            '=', or '=' before the end; URL: any '=' at all;
 *   ERR_BASE64_LENGTH        a number of characters (padding aside) that is 1 mod 4;
 *   ERR_BASE64_NONCANONICAL  non-zero bits in the unused low bits of the last character;
 *   ERR_TRUNCATED            out_size is too small; *out_len is then the size needed;
 *   -EINVAL                  an unknown variant.
 * A character outside the alphabet is reported before padding errors, so "Zg==\n" is
 * ERR_BASE64_CHAR. On any error out holds no decoded byte: input is decoded in one pass
 * that checks as it goes, and an error found on the way zeroes what was written (never
 * more than the decoded length); out is untouched on ERR_TRUNCATED. *out_len is untouched
 * on every error but ERR_TRUNCATED.
 * Characters are classified without lookup tables or data-dependent branches, so that
 * decoding a key does not leak its bytes through timing. Empty input is valid.
 * Returns 0 or one of the errors above.
 */
int base64_decode(const char *in, size_t n, void *out, size_t out_size, size_t *out_len,
                  enum base64_variant v);

#endif
