/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal DER writer for the certificates the CA issues (see der.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "der.h"

/* der_begin leaves room for the longest length it writes: 0x84 and four bytes. */
#define LEN_ROOM 5

static bool der_grow(struct der *d, size_t n)
{
	size_t cap = d->cap > 0 ? d->cap : 512;
	unsigned char *p;

	if (d->failed)
		return false;
	if (n <= d->cap - d->len)
		return true;
	while (cap - d->len < n) {
		if (cap > SIZE_MAX / 2) {
			d->failed = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(d->p, cap);
	if (p == NULL) {
		d->failed = true;
		return false;
	}
	d->p = p;
	d->cap = cap;
	return true;
}

/* The bytes of the DER length n into out (room for LEN_ROOM); returns how many. */
static size_t der_len_bytes(size_t n, unsigned char *out)
{
	size_t k = 0;

	if (n < 0x80) {
		out[0] = (unsigned char)n;
		return 1;
	}
	for (size_t v = n; v > 0; v >>= 8)
		k++;
	out[0] = (unsigned char)(0x80 | k);
	for (size_t i = 0; i < k; i++)
		out[k - i] = (unsigned char)(n >> (8 * i));
	return k + 1;
}

void der_put(struct der *d, const void *bytes, size_t n)
{
	if (n == 0 || !der_grow(d, n))
		return;
	memcpy(d->p + d->len, bytes, n);
	d->len += n;
}

void der_tlv(struct der *d, unsigned tag, const void *bytes, size_t n)
{
	unsigned char head[1 + LEN_ROOM];
	size_t h;

	/* Nothing we issue comes near 4 GiB; a length that large is a bug, not a certificate. */
	if (n > UINT32_MAX) {
		d->failed = true;
		return;
	}
	head[0] = (unsigned char)tag;
	h = 1 + der_len_bytes(n, head + 1);
	der_put(d, head, h);
	der_put(d, bytes, n);
}

size_t der_begin(struct der *d, unsigned tag)
{
	size_t mark = d->len;

	if (!der_grow(d, 1 + LEN_ROOM))
		return mark;
	d->p[d->len] = (unsigned char)tag;
	d->len += 1 + LEN_ROOM;
	return mark;
}

void der_end(struct der *d, size_t mark)
{
	unsigned char len[LEN_ROOM];
	size_t start = mark + 1 + LEN_ROOM, n, k;

	if (d->failed)
		return;
	n = d->len - start;
	if (n > UINT32_MAX) {
		d->failed = true;
		return;
	}
	k = der_len_bytes(n, len);
	/* The contents move back over the room that the minimal length does not use. */
	memmove(d->p + mark + 1 + k, d->p + start, n);
	memcpy(d->p + mark + 1, len, k);
	d->len = mark + 1 + k + n;
}
