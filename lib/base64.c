/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 encoding and strict, constant-time decoding in the STD and URL alphabets. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "meshlet/base64.h"
#include "meshlet/err.h"

/*
 * Masks for constant-time character classes: each helper takes values below 256 and
 * returns 0xff for true, 0 for false, without branching on them.
 */
static unsigned int ct_lt(unsigned int a, unsigned int b)
{
	/* a - b wraps around to a huge value exactly when a < b. */
	return ((a - b) >> 8) & 0xff;
}

static unsigned int ct_eq(unsigned int a, unsigned int b)
{
	return (((a ^ b) - 1) >> 8) & 0xff;
}

static unsigned int ct_in(unsigned int c, unsigned int lo, unsigned int hi)
{
	return ~ct_lt(c, lo) & ~ct_lt(hi, c) & 0xff;
}

static unsigned int char62(enum base64_variant v)
{
	return v == BASE64_URL ? '-' : '+';
}

static unsigned int char63(enum base64_variant v)
{
	return v == BASE64_URL ? '_' : '/';
}

/* The character for the six bits x (0-63). */
static char enc_sextet(unsigned int x, enum base64_variant v)
{
	unsigned int c;

	c = (ct_lt(x, 26) & (x + 'A')) | (ct_in(x, 26, 51) & (x - 26 + 'a')) |
	    (ct_in(x, 52, 61) & (x - 52 + '0')) | (ct_eq(x, 62) & char62(v)) |
	    (ct_eq(x, 63) & char63(v));
	return (char)c;
}

/* The six bits that the character c stands for (0-63), or a value above 63 if none. */
static unsigned int dec_char(unsigned char c, enum base64_variant v)
{
	unsigned int upper = ct_in(c, 'A', 'Z'), lower = ct_in(c, 'a', 'z');
	unsigned int digit = ct_in(c, '0', '9');
	unsigned int c62 = ct_eq(c, char62(v)), c63 = ct_eq(c, char63(v));
	unsigned int val, valid;

	val = (upper & (c - 'A')) | (lower & (c - 'a' + 26)) | (digit & (c - '0' + 52)) |
	      (c62 & 62) | (c63 & 63);
	valid = upper | lower | digit | c62 | c63;
	return val | ((valid ^ 0xff) << 8);
}

static int variant_ok(enum base64_variant v)
{
	return v == BASE64_STD || v == BASE64_URL;
}

size_t base64_encoded_len(size_t n, enum base64_variant v)
{
	size_t groups = n / 3, rem = n % 3, tail;

	tail = rem == 0 ? 0 : v == BASE64_URL ? rem + 1 : 4;
	if (groups > (SIZE_MAX - tail) / 4)
		return SIZE_MAX;
	return groups * 4 + tail;
}

size_t base64_decoded_max(size_t n)
{
	/* Exact for unpadded input; padding only makes the result shorter. */
	return n / 4 * 3 + (n % 4 * 3) / 4;
}

/* Writes the encoding of in[0..n) and a NUL to out, which has room for both. */
static void encode(const unsigned char *in, size_t n, char *out, enum base64_variant v)
{
	size_t i;
	uint32_t x;

	for (i = 0; i + 3 <= n; i += 3) {
		x = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = enc_sextet(x >> 18, v);
		*out++ = enc_sextet(x >> 12 & 0x3f, v);
		*out++ = enc_sextet(x >> 6 & 0x3f, v);
		*out++ = enc_sextet(x & 0x3f, v);
	}
	if (n - i == 1) {
		x = (uint32_t)in[i] << 16;
		*out++ = enc_sextet(x >> 18, v);
		*out++ = enc_sextet(x >> 12 & 0x3f, v);
		if (v == BASE64_STD) {
			*out++ = '=';
			*out++ = '=';
		}
	} else if (n - i == 2) {
		x = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*out++ = enc_sextet(x >> 18, v);
		*out++ = enc_sextet(x >> 12 & 0x3f, v);
		*out++ = enc_sextet(x >> 6 & 0x3f, v);
		if (v == BASE64_STD)
			*out++ = '=';
	}
	*out = '\0';
}

int base64_encode(const void *in, size_t n, char *out, size_t out_size, enum base64_variant v)
{
	size_t len;

	if (!variant_ok(v))
		return -EINVAL;
	len = base64_encoded_len(n, v);
	if (len >= out_size) {
		if (out_size > 0)
			out[0] = '\0';
		return ERR_TRUNCATED;
	}
	if (len > INT_MAX)
		return -EOVERFLOW;
	encode(in, n, out, v);
	return (int)len;
}

char *base64_encode_alloc(const void *in, size_t n, enum base64_variant v)
{
	size_t len;
	char *out;

	if (!variant_ok(v)) {
		errno = EINVAL;
		return NULL;
	}
	len = base64_encoded_len(n, v);
	if (len == SIZE_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	encode(in, n, out, v);
	return out;
}

int base64_decode(const char *in, size_t n, void *out, size_t out_size, size_t *out_len,
                  enum base64_variant v)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char *o = out;
	size_t data = n, pad = 0, rem, len, i;
	bool bad_pad = false;
	uint32_t x;

	if (!variant_ok(v))
		return -EINVAL;
	if (v == BASE64_STD) {
		while (data > 0 && p[data - 1] == '=') {
			data--;
			pad++;
		}
	}
	/*
	 * A stray character is reported before misplaced padding, so that "Zg==\n" is
	 * blamed on its newline. Branching on validity is fine: valid input, secret or not,
	 * always goes the same way.
	 */
	for (i = 0; i < n; i++) {
		if (dec_char(p[i], v) > 63) {
			if (p[i] != '=')
				return ERR_BASE64_CHAR;
			if (i < data)
				bad_pad = true;
		}
	}
	if (bad_pad)
		return ERR_BASE64_PADDING;
	rem = data % 4;
	if (rem == 1)
		return ERR_BASE64_LENGTH;
	if (v == BASE64_STD && pad != (4 - rem) % 4)
		return ERR_BASE64_PADDING;
	/* Two leftover characters carry 12 bits for one byte, three carry 18 for two. */
	if ((rem == 2 && (dec_char(p[data - 1], v) & 0x0f) != 0) ||
	    (rem == 3 && (dec_char(p[data - 1], v) & 0x03) != 0))
		return ERR_BASE64_NONCANONICAL;

	len = data / 4 * 3 + (rem ? rem - 1 : 0);
	if (len > out_size) {
		if (out_len != NULL)
			*out_len = len;
		return ERR_TRUNCATED;
	}
	for (i = 0; i + 4 <= data; i += 4) {
		x = dec_char(p[i], v) << 18 | dec_char(p[i + 1], v) << 12 |
		    dec_char(p[i + 2], v) << 6 | dec_char(p[i + 3], v);
		*o++ = (unsigned char)(x >> 16);
		*o++ = (unsigned char)(x >> 8);
		*o++ = (unsigned char)x;
	}
	if (rem >= 2) {
		x = dec_char(p[i], v) << 18 | dec_char(p[i + 1], v) << 12;
		if (rem == 3)
			x |= dec_char(p[i + 2], v) << 6;
		*o++ = (unsigned char)(x >> 16);
		if (rem == 3)
			*o++ = (unsigned char)(x >> 8);
	}
	if (out_len != NULL)
		*out_len = len;
	return 0;
}
