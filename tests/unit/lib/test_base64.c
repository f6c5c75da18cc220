/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/base64.c: RFC 4648 vectors, OpenSSL as a reference, and every strictness rule. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "meshlet/base64.h"
#include "meshlet/err.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A fixed-seed generator (splitmix64), so that a failure can be reproduced. */
static uint64_t rng_state = 0x6d6573686c6574; /* "meshlet" */

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
	return z ^ (z >> 31);
}

/* Decodes the NUL-terminated s, expecting the error code want. */
static void expect_decode_error(const char *s, size_t n, enum base64_variant v, int want)
{
	unsigned char out[64];
	size_t out_len = 12345;
	int rc;

	memset(out, 0xa5, sizeof(out));
	rc = base64_decode(s, n, out, sizeof(out), &out_len, v);
	if (rc != want)
		print_error("decoding \"%.*s\" (%s): got %s, want %s\n", (int)n, s,
		            v == BASE64_STD ? "STD" : "URL", err_name(rc), err_name(want));
	assert_int_equal(rc, want);
	/* Nothing decoded is left (what was written is zeroed) and the length was left alone. */
	assert_int_equal(out_len, 12345);
	for (size_t i = 0; i < sizeof(out); i++) {
		if (out[i] != 0xa5 && out[i] != 0)
			fail_msg("decoding \"%.*s\": out[%zu] is 0x%02x after an error", (int)n, s,
			         i, out[i]);
	}
}

/* Encodes and decodes the n bytes at raw, expecting the text want. */
static void expect_round_trip(const void *raw, size_t n, const char *want, enum base64_variant v)
{
	char enc[1024];
	unsigned char dec[768];
	size_t dec_len = 0;
	char *heap;

	assert_int_equal(base64_encoded_len(n, v), strlen(want));
	assert_int_equal(base64_encode(raw, n, enc, sizeof(enc), v), (int)strlen(want));
	assert_string_equal(enc, want);
	heap = base64_encode_alloc(raw, n, v);
	assert_non_null(heap);
	assert_string_equal(heap, want);
	free(heap);
	assert_int_equal(base64_decode(want, strlen(want), dec, sizeof(dec), &dec_len, v), 0);
	assert_int_equal(dec_len, n);
	assert_true(base64_decoded_max(strlen(want)) >= n);
	if (n > 0)
		assert_memory_equal(dec, raw, n);
}

static const struct {
	const char *raw, *std, *url;
} rfc4648[] = {
	/* RFC 4648 section 10; the URL forms are the same with the padding dropped. */
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void test_rfc4648_std(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rfc4648); i++)
		expect_round_trip(rfc4648[i].raw, strlen(rfc4648[i].raw), rfc4648[i].std,
		                  BASE64_STD);
}

static void test_rfc4648_url(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rfc4648); i++)
		expect_round_trip(rfc4648[i].raw, strlen(rfc4648[i].raw), rfc4648[i].url,
		                  BASE64_URL);
}

static void test_alphabets_differ(void **state)
{
	/* Bits 111110 111111 111110 111111: the two characters where the alphabets differ. */
	static const unsigned char raw[] = { 0xfb, 0xff, 0xbf };
	/* A JWS header {"alg":"ES256"} as RFC 7515 writes it. */
	static const char jws[] = "{\"alg\":\"ES256\"}";

	(void)state;
	expect_round_trip(raw, sizeof(raw), "+/+/", BASE64_STD);
	expect_round_trip(raw, sizeof(raw), "-_-_", BASE64_URL);
	expect_round_trip(jws, strlen(jws), "eyJhbGciOiJFUzI1NiJ9", BASE64_URL);
	expect_decode_error("-_-_", 4, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("+/+/", 4, BASE64_URL, ERR_BASE64_CHAR);
	expect_decode_error("AA+_", 4, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("AA-/", 4, BASE64_URL, ERR_BASE64_CHAR);
}

/* Every byte value, alone and all together, survives both alphabets. */
static void test_every_byte_value(void **state)
{
	unsigned char all[256], dec[256];
	char enc[400], ref[400];
	size_t dec_len;

	(void)state;
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	EVP_EncodeBlock((unsigned char *)ref, all, sizeof(all));
	assert_int_equal(base64_encode(all, sizeof(all), enc, sizeof(enc), BASE64_STD),
	                 (int)strlen(ref));
	assert_string_equal(enc, ref);
	for (int v = BASE64_STD; v <= BASE64_URL; v++) {
		assert_true(base64_encode(all, sizeof(all), enc, sizeof(enc), v) > 0);
		assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof(dec), &dec_len, v), 0);
		assert_int_equal(dec_len, sizeof(all));
		assert_memory_equal(dec, all, sizeof(all));
		for (int i = 0; i < 256; i++) {
			assert_true(base64_encode(&all[i], 1, enc, sizeof(enc), v) > 0);
			assert_int_equal(
			    base64_decode(enc, strlen(enc), dec, sizeof(dec), &dec_len, v), 0);
			assert_int_equal(dec_len, 1);
			assert_int_equal(dec[0], i);
		}
	}
}

/*
 * Random bytes of every length from 0 to 300, several times each: STD must match
 * OpenSSL's EVP_EncodeBlock exactly, URL must match it with '+/' mapped to '-_' and the
 * padding dropped, and both must decode back.
 */
static void test_random_against_openssl(void **state)
{
	unsigned char raw[300], dec[300];
	char ref[512], enc[512];
	size_t dec_len, ref_len;
	int checked = 0;

	(void)state;
	for (size_t n = 0; n <= sizeof(raw); n++) {
		for (int round = 0; round < 8; round++) {
			for (size_t i = 0; i < n; i++)
				raw[i] = (unsigned char)rng();
			ref_len = (size_t)EVP_EncodeBlock((unsigned char *)ref, raw, (int)n);
			assert_int_equal(base64_encoded_len(n, BASE64_STD), ref_len);
			assert_int_equal(base64_encode(raw, n, enc, sizeof(enc), BASE64_STD),
			                 (int)ref_len);
			assert_string_equal(enc, ref);
			assert_int_equal(
			    base64_decode(enc, ref_len, dec, sizeof(dec), &dec_len, BASE64_STD), 0);
			assert_int_equal(dec_len, n);
			assert_memory_equal(dec, raw, n);

			while (ref_len > 0 && ref[ref_len - 1] == '=')
				ref[--ref_len] = '\0';
			for (size_t i = 0; i < ref_len; i++)
				ref[i] = ref[i] == '+' ? '-' : ref[i] == '/' ? '_' : ref[i];
			assert_int_equal(base64_encoded_len(n, BASE64_URL), ref_len);
			assert_int_equal(base64_encode(raw, n, enc, sizeof(enc), BASE64_URL),
			                 (int)ref_len);
			assert_string_equal(enc, ref);
			assert_int_equal(
			    base64_decode(enc, ref_len, dec, sizeof(dec), &dec_len, BASE64_URL), 0);
			assert_int_equal(dec_len, n);
			assert_memory_equal(dec, raw, n);
			assert_true(base64_decoded_max(ref_len) >= n);
			checked++;
		}
	}
	assert_int_equal(checked, 301 * 8);
}

static void test_lengths(void **state)
{
	static const struct {
		size_t n, std, url;
	} enc[] = {
		{ 0, 0, 0 }, { 1, 4, 2 }, { 2, 4, 3 },    { 3, 4, 4 },    { 4, 8, 6 },
		{ 5, 8, 7 }, { 6, 8, 8 }, { 32, 44, 43 }, { 64, 88, 86 }, { 256, 344, 342 },
	};
	static const struct {
		size_t n, max;
	} dec[] = {
		{ 0, 0 }, { 1, 0 }, { 2, 1 }, { 3, 2 },   { 4, 3 },
		{ 5, 3 }, { 6, 4 }, { 8, 6 }, { 43, 32 }, { 44, 33 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(enc); i++) {
		assert_int_equal(base64_encoded_len(enc[i].n, BASE64_STD), enc[i].std);
		assert_int_equal(base64_encoded_len(enc[i].n, BASE64_URL), enc[i].url);
	}
	for (size_t i = 0; i < ARRAY_SIZE(dec); i++)
		assert_int_equal(base64_decoded_max(dec[i].n), dec[i].max);
	/* Lengths that do not fit, and the largest inputs, do not wrap around. */
	assert_int_equal(base64_encoded_len(SIZE_MAX, BASE64_STD), SIZE_MAX);
	assert_int_equal(base64_encoded_len(SIZE_MAX / 4 * 3, BASE64_STD), SIZE_MAX - 3);
	assert_int_equal(base64_encoded_len(SIZE_MAX / 4 * 3, BASE64_URL), SIZE_MAX - 3);
	assert_int_equal(base64_encoded_len(SIZE_MAX / 4 * 3 + 1, BASE64_STD), SIZE_MAX);
	assert_int_equal(base64_encoded_len(SIZE_MAX / 4 * 3 + 1, BASE64_URL), SIZE_MAX - 1);
	assert_int_equal(base64_encoded_len(SIZE_MAX / 4 * 3 + 2, BASE64_URL), SIZE_MAX);
	assert_true(base64_decoded_max(SIZE_MAX) < SIZE_MAX);
	assert_true(base64_decoded_max(SIZE_MAX) >= SIZE_MAX / 4 * 3);
}

/* Each byte value in each position of a group: accepted exactly when in the alphabet. */
static void test_every_character(void **state)
{
	static const char std[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char dec[3];
	size_t dec_len;
	char in[4];
	int rc, want;

	(void)state;
	for (int v = BASE64_STD; v <= BASE64_URL; v++) {
		const char *alpha = v == BASE64_STD ? std : url;

		for (int c = 0; c < 256; c++) {
			const char *at = c != 0 ? strchr(alpha, c) : NULL;

			for (int pos = 0; pos < 4; pos++) {
				memcpy(in, "AAAA", 4);
				in[pos] = (char)c;
				want = at != NULL ? 0
				       : c == '=' ? ERR_BASE64_PADDING
				                  : ERR_BASE64_CHAR;
				/* "AA==" and "AAA=" are the valid STD encodings of 0 and 00. */
				if (c == '=' && v == BASE64_STD && pos == 3)
					want = 0;
				rc = base64_decode(in, 4, dec, sizeof(dec), &dec_len, v);
				if (rc != want)
					print_error("byte 0x%02x at %d: got %s, want %s\n", c, pos,
					            err_name(rc), err_name(want));
				assert_int_equal(rc, want);
				if (at != NULL) {
					unsigned int x = (unsigned int)(at - alpha)
					                 << (18 - 6 * pos);

					assert_int_equal(dec_len, 3);
					assert_int_equal(dec[0], x >> 16 & 0xff);
					assert_int_equal(dec[1], x >> 8 & 0xff);
					assert_int_equal(dec[2], x & 0xff);
				}
			}
		}
	}
}

/*
 * A plain decoder with lookup tables, written from base64.h, that the constant-time one
 * must agree with: the same code, the same bytes, the same *out_len.
 */
static int ref_decode(const char *in, size_t n, unsigned char *out, size_t out_size,
                      size_t *out_len, enum base64_variant v)
{
	static const char std[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *alpha = v == BASE64_STD ? std : url;
	int val[256];
	size_t data = n, pad = 0, len, rem, i;
	uint32_t acc = 0;
	int bits = 0;

	for (i = 0; i < 256; i++)
		val[i] = -1;
	for (i = 0; i < 64; i++)
		val[(unsigned char)alpha[i]] = (int)i;
	for (i = 0; i < n; i++) {
		if (val[(unsigned char)in[i]] < 0 && in[i] != '=')
			return ERR_BASE64_CHAR;
	}
	while (v == BASE64_STD && data > 0 && in[data - 1] == '=') {
		data--;
		pad++;
	}
	if (memchr(in, '=', data) != NULL)
		return ERR_BASE64_PADDING;
	rem = data % 4;
	if (rem == 1)
		return ERR_BASE64_LENGTH;
	if (v == BASE64_STD && pad != (4 - rem) % 4)
		return ERR_BASE64_PADDING;
	len = data / 4 * 3 + (rem != 0 ? rem - 1 : 0);
	if (rem != 0 && (val[(unsigned char)in[data - 1]] & (rem == 2 ? 0x0f : 0x03)) != 0)
		return ERR_BASE64_NONCANONICAL;
	*out_len = len;
	if (len > out_size)
		return ERR_TRUNCATED;
	for (i = 0, len = 0; i < data; i++) {
		acc = acc << 6 | (uint32_t)val[(unsigned char)in[i]];
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[len++] = (unsigned char)(acc >> bits);
		}
	}
	return 0;
}

/* Decodes n characters at in both ways, into a buffer of out_size, and compares. */
static void expect_as_ref(const char *in, size_t n, size_t out_size, enum base64_variant v)
{
	unsigned char out[64], ref[64];
	size_t out_len = 12345, ref_len = 12345;
	int rc, want;

	assert_true(out_size <= sizeof(out));
	memset(out, 0xa5, sizeof(out));
	want = ref_decode(in, n, ref, out_size, &ref_len, v);
	rc = base64_decode(in, n, out, out_size, &out_len, v);
	if (rc != want)
		fail_msg("decoding \"%.*s\" (%s) into %zu bytes: got %s, want %s", (int)n, in,
		         v == BASE64_STD ? "STD" : "URL", out_size, err_name(rc), err_name(want));
	if (rc == 0 || rc == ERR_TRUNCATED)
		assert_int_equal(out_len, ref_len);
	else
		assert_int_equal(out_len, 12345);
	if (rc == 0) {
		assert_memory_equal(out, ref, out_len);
		for (size_t i = out_len; i < sizeof(out); i++)
			assert_int_equal(out[i], 0xa5);
		return;
	}
	for (size_t i = 0; i < sizeof(out); i++) {
		if (out[i] != 0xa5 && out[i] != 0)
			fail_msg("decoding \"%.*s\": out[%zu] is 0x%02x after %s", (int)n, in, i,
			         out[i], err_name(rc));
	}
}

/*
 * Eight characters are decoded at once, and the last ones apart: every byte value in
 * every position of inputs that end in each way, as the first, a middle and the last
 * bad character.
 */
static void test_every_character_everywhere(void **state)
{
	static const char base[] = "Zm9vYmFyIGJhemZvb2JhcnF1eA";
	char in[32];

	(void)state;
	for (int v = BASE64_STD; v <= BASE64_URL; v++) {
		for (size_t n = 16; n <= 26; n++) {
			if (n % 4 == 1)
				continue;
			for (size_t pos = 0; pos < n; pos++) {
				for (int c = 0; c < 256; c++) {
					memcpy(in, base, n);
					/* Canonical endings: zero unused bits. */
					if (n % 4 == 2)
						in[n - 1] = 'A';
					else if (n % 4 == 3)
						in[n - 1] = 'E';
					in[pos] = (char)c;
					expect_as_ref(in, n, 64, (enum base64_variant)v);
				}
			}
		}
	}
}

/*
 * Random mixes of the alphabets, padding and stray bytes, into buffers of any size: mostly
 * well-formed, so that every outcome comes up many times.
 */
static void test_random_against_ref(void **state)
{
	static const char pool[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                           "0123456789+/-_=\n \t.\x80\xff";
	int seen[8] = { 0 };
	char in[48];

	(void)state;
	for (int round = 0; round < 100000; round++) {
		uint64_t r = rng();
		enum base64_variant v = (enum base64_variant)(r & 1);
		unsigned int odd = (unsigned int)(r >> 1 & 0xff); /* in 256 characters, odd stray */
		size_t data = (size_t)(r >> 16) % 40, n = data, out_size = (size_t)(r >> 24) % 40;
		unsigned char out[40];
		size_t out_len;
		int rc;

		for (size_t i = 0; i < data; i++) {
			uint64_t c = rng();

			in[i] = (c & 0xff) < odd / 16 ? pool[(c >> 8) % (sizeof(pool) - 1)]
			                              : pool[(c >> 8) % 62];
		}
		/* Usually a canonical end, and the right padding for STD. */
		if ((r >> 32 & 3) != 0 && data % 4 >= 2)
			in[data - 1] = data % 4 == 2 ? 'Q' : 'E';
		if ((r >> 34 & 3) != 0 && v == BASE64_STD && data % 4 != 1) {
			while (n % 4 != 0)
				in[n++] = '=';
		}
		expect_as_ref(in, n, out_size, v);
		rc = base64_decode(in, n, out, out_size, &out_len, v);
		seen[rc == 0                         ? 0
		     : rc == ERR_TRUNCATED           ? 1
		     : rc == ERR_BASE64_CHAR         ? 2
		     : rc == ERR_BASE64_PADDING      ? 3
		     : rc == ERR_BASE64_LENGTH       ? 4
		     : rc == ERR_BASE64_NONCANONICAL ? 5
		                                     : 6]++;
	}
	for (int i = 0; i < 6; i++) {
		if (seen[i] < 1000)
			fail_msg("outcome %d came up only %d times", i, seen[i]);
	}
	assert_int_equal(seen[6], 0);
}

static void test_whitespace_and_bad_characters(void **state)
{
	static const char *const bad[] = {
		"Zm9v\n",     "Zm9v\r\n",
		"\nZm9v",     "Zm9v Zm9v",
		" Zm9v",      "Zm9v ",
		"\tZm9v",     "Zm9v\nYmFy",
		"Zm9v\fYmFy", "Zm9v\vYmFy",
		"Zm.v",       "Zm9v*",
		"Zm9v\x80",   "Zm9v\xff\xff\xff\xff",
		"Zm9v%3D",    "Zm9v\\",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		expect_decode_error(bad[i], strlen(bad[i]), BASE64_STD, ERR_BASE64_CHAR);
		expect_decode_error(bad[i], strlen(bad[i]), BASE64_URL, ERR_BASE64_CHAR);
	}
	/* The length is given, so an embedded NUL is just another bad character. */
	expect_decode_error("Zm\0v", 4, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("Zm9v\0", 5, BASE64_URL, ERR_BASE64_CHAR);
	/* Whitespace is reported as whitespace, not as the padding it sits next to. */
	expect_decode_error("Zg==\n", 5, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("Zg\n==", 5, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("Zg=\nZg==", 8, BASE64_STD, ERR_BASE64_CHAR);
	expect_decode_error("Zg==\n", 5, BASE64_URL, ERR_BASE64_CHAR);
	expect_decode_error("Z\n", 2, BASE64_STD, ERR_BASE64_CHAR);
}

static void test_padding_errors(void **state)
{
	static const char *const std_bad[] = {
		"Zg",       "Zg=",  "Zg===",  "Zm8",     "Zm8==",   "Zm9v=",     "Zm9v==",
		"Zm9v====", "=",    "==",     "===",     "====",    "Zg==Zg==",  "Z=g=",
		"Zm=v",     "=Zm9", "Zm9vYg", "Zm9vYmE", "Zm9vYg=", "Zm9vYmE==", "Zg=a",
	};
	static const char *const url_bad[] = {
		"Zg==", "Zg=", "Zm8=", "=", "====", "Zm9v=", "Zm9vYg==", "Z=g", "=Zm9",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(std_bad); i++)
		expect_decode_error(std_bad[i], strlen(std_bad[i]), BASE64_STD, ERR_BASE64_PADDING);
	for (size_t i = 0; i < ARRAY_SIZE(url_bad); i++)
		expect_decode_error(url_bad[i], strlen(url_bad[i]), BASE64_URL, ERR_BASE64_PADDING);
}

static void test_length_errors(void **state)
{
	static const char *const std_bad[] = {
		"Z", "Zm9vZ", "Z===", "Z==", "Zm9vY===", "Zm9vYmFyZ"
	};
	static const char *const url_bad[] = { "Z", "Zm9vZ", "Zm9vYmFyZ" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(std_bad); i++)
		expect_decode_error(std_bad[i], strlen(std_bad[i]), BASE64_STD, ERR_BASE64_LENGTH);
	for (size_t i = 0; i < ARRAY_SIZE(url_bad); i++)
		expect_decode_error(url_bad[i], strlen(url_bad[i]), BASE64_URL, ERR_BASE64_LENGTH);
}

/*
 * "Zg==" is "f", and so would "Zh==" be if the unused bits were ignored. Of the 64
 * characters, 4 can end a two-character group (the low 4 bits are unused) and 16 a
 * three-character group (2 bits): each byte string has one encoding.
 */
static void test_noncanonical(void **state)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char in[5];
	unsigned char dec[3];
	size_t dec_len;
	int ok2 = 0, ok3 = 0;

	(void)state;
	expect_decode_error("Zh==", 4, BASE64_STD, ERR_BASE64_NONCANONICAL);
	expect_decode_error("Zm9=", 4, BASE64_STD, ERR_BASE64_NONCANONICAL);
	expect_decode_error("Zm9vYh==", 8, BASE64_STD, ERR_BASE64_NONCANONICAL);
	expect_decode_error("Zh", 2, BASE64_URL, ERR_BASE64_NONCANONICAL);
	expect_decode_error("Zm9", 3, BASE64_URL, ERR_BASE64_NONCANONICAL);
	expect_decode_error("Zm9vYmF", 7, BASE64_URL, ERR_BASE64_NONCANONICAL);
	for (int i = 0; i < 64; i++) {
		int rc2, rc3;

		memcpy(in, "Z?==", 4);
		in[1] = alpha[i];
		rc2 = base64_decode(in, 4, dec, sizeof(dec), &dec_len, BASE64_STD);
		assert_int_equal(rc2, i % 16 == 0 ? 0 : ERR_BASE64_NONCANONICAL);
		assert_int_equal(base64_decode(in, 2, dec, sizeof(dec), &dec_len, BASE64_URL),
		                 alpha[i] == '+' || alpha[i] == '/' ? ERR_BASE64_CHAR : rc2);
		memcpy(in, "Zm?=", 4);
		in[2] = alpha[i];
		rc3 = base64_decode(in, 4, dec, sizeof(dec), &dec_len, BASE64_STD);
		assert_int_equal(rc3, i % 4 == 0 ? 0 : ERR_BASE64_NONCANONICAL);
		ok2 += rc2 == 0;
		ok3 += rc3 == 0;
	}
	assert_int_equal(ok2, 4);
	assert_int_equal(ok3, 16);
}

static void test_encode_truncation(void **state)
{
	char out[16];

	(void)state;
	/* "foobar" is 8 characters and a NUL: 9 bytes fit exactly, 8 do not. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(base64_encode("foobar", 6, out, 9, BASE64_STD), 8);
	assert_string_equal(out, "Zm9vYmFy");
	memset(out, 'x', sizeof(out));
	assert_int_equal(base64_encode("foobar", 6, out, 8, BASE64_STD), ERR_TRUNCATED);
	assert_string_equal(out, "");
	assert_int_equal(out[1], 'x');
	assert_int_equal(base64_encode("f", 1, out, 3, BASE64_URL), 2);
	assert_string_equal(out, "Zg");
	assert_int_equal(base64_encode("f", 1, out, 2, BASE64_URL), ERR_TRUNCATED);
	assert_int_equal(base64_encode("f", 1, out, 4, BASE64_STD), ERR_TRUNCATED);
	assert_int_equal(base64_encode("f", 1, out, 5, BASE64_STD), 4);
	/* Even the empty string needs room for its NUL; out is not touched without it. */
	assert_int_equal(base64_encode(NULL, 0, NULL, 0, BASE64_STD), ERR_TRUNCATED);
	assert_int_equal(base64_encode(NULL, 0, out, 1, BASE64_URL), 0);
	assert_string_equal(out, "");
}

static void test_decode_truncation(void **state)
{
	unsigned char out[8];
	size_t out_len = 0;

	(void)state;
	/* "Zm9vYmE=" is 5 bytes: 5 fit exactly, 4 do not, and say that 5 are needed. */
	memset(out, 0xa5, sizeof(out));
	assert_int_equal(base64_decode("Zm9vYmE=", 8, out, 4, &out_len, BASE64_STD), ERR_TRUNCATED);
	assert_int_equal(out_len, 5);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xa5);
	out_len = 0;
	assert_int_equal(base64_decode("Zm9vYmE=", 8, out, 5, &out_len, BASE64_STD), 0);
	assert_int_equal(out_len, 5);
	assert_memory_equal(out, "fooba", 5);
	assert_int_equal(out[5], 0xa5);
	assert_int_equal(base64_decode("Zm9vYmE", 7, out, 4, &out_len, BASE64_URL), ERR_TRUNCATED);
	assert_int_equal(base64_decode("Zm9vYmE", 7, out, 5, NULL, BASE64_URL), 0);
	/* Empty input is valid and needs no buffer at all. */
	out_len = 99;
	assert_int_equal(base64_decode(NULL, 0, NULL, 0, &out_len, BASE64_STD), 0);
	assert_int_equal(out_len, 0);
	out_len = 99;
	assert_int_equal(base64_decode("", 0, NULL, 0, &out_len, BASE64_URL), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(base64_decode("Zg==", 4, NULL, 0, &out_len, BASE64_STD), ERR_TRUNCATED);
	assert_int_equal(out_len, 1);
}

static void test_bad_variant(void **state)
{
	char out[16];
	size_t out_len;

	(void)state;
	assert_int_equal(base64_encode("f", 1, out, sizeof(out), (enum base64_variant)7), -EINVAL);
	assert_int_equal(base64_decode("Zg", 2, out, sizeof(out), &out_len, (enum base64_variant)7),
	                 -EINVAL);
	errno = 0;
	assert_null(base64_encode_alloc("f", 1, (enum base64_variant)7));
	assert_int_equal(errno, EINVAL);
}

static void test_encode_alloc(void **state)
{
	char *s;

	(void)state;
	s = base64_encode_alloc(NULL, 0, BASE64_STD);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	s = base64_encode_alloc("foob", 4, BASE64_URL);
	assert_non_null(s);
	assert_string_equal(s, "Zm9vYg");
	free(s);
	errno = 0;
	assert_null(base64_encode_alloc("f", SIZE_MAX, BASE64_STD));
	assert_int_equal(errno, ENOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_std),
		cmocka_unit_test(test_rfc4648_url),
		cmocka_unit_test(test_alphabets_differ),
		cmocka_unit_test(test_every_byte_value),
		cmocka_unit_test(test_random_against_openssl),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_every_character),
		cmocka_unit_test(test_every_character_everywhere),
		cmocka_unit_test(test_random_against_ref),
		cmocka_unit_test(test_whitespace_and_bad_characters),
		cmocka_unit_test(test_padding_errors),
		cmocka_unit_test(test_length_errors),
		cmocka_unit_test(test_noncanonical),
		cmocka_unit_test(test_encode_truncation),
		cmocka_unit_test(test_decode_truncation),
		cmocka_unit_test(test_bad_variant),
		cmocka_unit_test(test_encode_alloc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
