/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 encoding and strict, constant-time decoding in the STD and URL alphabets. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * Decoding classifies eight characters at once, one in each byte ("lane") of a uint64_t,
 * the first in the lowest lane (SWAR). In a lane below 0x80, adding 0x80 - k sets the lane's
 * top bit exactly when the lane is at least k, and never carries into the next lane.
 */
#define LANES(b) (0x0101010101010101ULL * (uint8_t)(b))
#define TOP      LANES(0x80)

/* 0x80 in each lane of w (all lanes below 0x80) from lo to hi (1 to 0x7f), 0 elsewhere. */
static inline uint64_t lanes_in(uint64_t w, unsigned int lo, unsigned int hi)
{
	/* At least lo, xor above hi: a lane above hi is also at least lo. */
	return ((w + LANES(0x80 - lo)) ^ (w + LANES(0x7f - hi))) & TOP;
}

/*
 * The six-bit values (0-63) of the eight characters in the lanes of w, lane for lane. ORs
 * into *bad the top bit of each lane whose character is not in the alphabet of v; such a
 * lane's value is meaningless. Arithmetic only: what the characters are changes neither
 * the path nor the time taken.
 */
static inline uint64_t dec_lanes(uint64_t w, enum base64_variant v, uint64_t *bad)
{
	unsigned int c62 = char62(v), c63 = char63(v);
	uint64_t ascii = w & ~TOP, upper, lower, digit, is62, is63, add;

	upper = lanes_in(ascii, 'A', 'Z');
	lower = lanes_in(ascii, 'a', 'z');
	digit = lanes_in(ascii, '0', '9');
	is62 = lanes_in(ascii, c62, c62);
	is63 = lanes_in(ascii, c63, c63);
	/* A byte of 0x80 or more may look like a letter once its top bit is gone. */
	*bad |= (~(upper | lower | digit | is62 | is63) & TOP) | (w & TOP);
	/* What to add to each lane, modulo 256: the classes are disjoint, so no lane carries. */
	add = (upper >> 7) * (uint8_t)(0 - 'A') + (lower >> 7) * (uint8_t)(26 - 'a') +
	      (digit >> 7) * (uint8_t)(52 - '0') + (is62 >> 7) * (uint8_t)(62 - c62) +
	      (is63 >> 7) * (uint8_t)(63 - c63);
	/* ascii + add lane by lane: two 7-bit halves cannot carry out of their lane. */
	return (ascii + (add & ~TOP)) ^ (add & TOP);
}

/* The six bits that the character c stands for (0-63), or a value above 63 if none. */
static unsigned int dec_char(unsigned char c, enum base64_variant v)
{
	uint64_t bad = 0, x = dec_lanes((LANES('A') & ~0xffULL) | c, v, &bad);

	return (unsigned int)(x & 0x3f) | (bad != 0 ? 0x100 : 0);
}

/* Eight characters from p, the first in the lowest lane. */
static inline uint64_t load8(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/*
 * The two 24-bit groups that the eight six-bit values in the lanes of x stand for: the
 * first four characters' in the low 32 bits, the next four's above.
 */
static inline uint64_t lanes_pack(uint64_t x)
{
	x = (x & 0x003f003f003f003fULL) << 6 | (x >> 8 & 0x003f003f003f003fULL);
	return (x & 0x00000fff00000fffULL) << 12 | (x >> 16 & 0x00000fff00000fffULL);
}

/* Decoded byte k (0-5) of the groups in x, from lanes_pack. */
static inline unsigned char group_byte(uint64_t x, size_t k)
{
	return (unsigned char)(x >> (32 * (k / 3) + 16 - 8 * (k % 3)));
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

/*
 * Finds the first error in the n characters at p, in the order that base64.h documents:
 * data characters, then (STD) the pad trailing '='. Returns it, or 0 when the input is
 * valid. Errors and short buffers come here, so branching on validity is fine: valid
 * input, secret or not, always goes the same way.
 */
static int check(const unsigned char *p, size_t n, size_t data, size_t pad, enum base64_variant v)
{
	size_t rem = data % 4, i;
	bool bad_pad = false;

	/* A stray character is reported before misplaced padding: "Zg==\n" is its newline's. */
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
	if (rem == 1)
		return ERR_BASE64_LENGTH;
	if (v == BASE64_STD && pad != (4 - rem) % 4)
		return ERR_BASE64_PADDING;
	/* Two leftover characters carry 12 bits for one byte, three carry 18 for two. */
	if ((rem == 2 && (dec_char(p[data - 1], v) & 0x0f) != 0) ||
	    (rem == 3 && (dec_char(p[data - 1], v) & 0x03) != 0))
		return ERR_BASE64_NONCANONICAL;
	return 0;
}

/*
 * Decodes the data characters at p (data is not 1 mod 4) into o, which has room, eight at
 * a time. Returns false if a character is outside the alphabet or the last one has unused
 * bits set; o then holds garbage. No branch depends on the characters.
 */
static bool decode(const unsigned char *p, size_t data, unsigned char *o, enum base64_variant v)
{
	uint64_t bad = 0, w, x;
	size_t i, k, t, bytes;

	for (i = 0; i + 8 <= data; i += 8, o += 6) {
		x = lanes_pack(dec_lanes(load8(p + i), v, &bad));
		o[0] = (unsigned char)(x >> 16);
		o[1] = (unsigned char)(x >> 8);
		o[2] = (unsigned char)x;
		o[3] = (unsigned char)(x >> 48);
		o[4] = (unsigned char)(x >> 40);
		o[5] = (unsigned char)(x >> 32);
	}
	/* The last 0 to 7 characters, with 'A's (zero bits) after them. */
	t = data - i;
	w = LANES('A');
	for (k = 0; k < t; k++)
		w = (w & ~(0xffULL << 8 * k)) | (uint64_t)p[i + k] << 8 * k;
	x = lanes_pack(dec_lanes(w, v, &bad));
	bytes = t / 4 * 3 + (t % 4 != 0 ? t % 4 - 1 : 0);
	for (k = 0; k < bytes; k++)
		o[k] = group_byte(x, k);
	/*
	 * The unused low bits of a last group of two or three characters land in the byte
	 * after the last one decoded; with four, that byte is all 'A's: zero either way.
	 */
	bad |= group_byte(x, bytes);
	return bad == 0;
}

int base64_decode(const char *in, size_t n, void *out, size_t out_size, size_t *out_len,
                  enum base64_variant v)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t data = n, pad = 0, rem, len;
	int rc;

	if (!variant_ok(v))
		return -EINVAL;
	if (v == BASE64_STD) {
		while (data > 0 && p[data - 1] == '=') {
			data--;
			pad++;
		}
	}
	rem = data % 4;
	len = data / 4 * 3 + (rem != 0 ? rem - 1 : 0);
	/* What the length alone shows goes to check(), which puts errors in their order. */
	if (rem == 1 || (v == BASE64_STD && pad != (4 - rem) % 4) || len > out_size) {
		rc = check(p, n, data, pad, v);
		if (rc == 0) {
			if (out_len != NULL)
				*out_len = len;
			rc = ERR_TRUNCATED;
		}
		return rc;
	}
	/*
	 * The common case, valid input, takes one pass that decodes as it checks. On an error,
	 * what it wrote is wiped and check() says what is wrong; it cannot find nothing, as
	 * both classify with dec_lanes, but if it did the input would still be refused.
	 */
	if (!decode(p, data, out, v)) {
		if (len > 0)
			memset(out, 0, len);
		rc = check(p, n, data, pad, v);
		return rc != 0 ? rc : ERR_BASE64_CHAR;
	}
	if (out_len != NULL)
		*out_len = len;
	return 0;
}
