/* SPDX-License-Identifier: Apache-2.0 */
/* Telling a meshlet proxy's TLS ClientHello from other first bytes (RFC 8446, 4.1.2). */
#include <string.h>

#include "hello.h"

#define HELLO_RECORD_HANDSHAKE 22
#define HELLO_CLIENT_HELLO     1
#define HELLO_EXT_ALPN         16

/* A cursor over bytes that are all there: reads fail, not overrun, at the end. */
struct hello_cur {
	const uint8_t *p;
	size_t n;
};

static int hello_u8(struct hello_cur *c, size_t *v)
{
	if (c->n < 1)
		return -1;
	*v = c->p[0];
	c->p++;
	c->n--;
	return 0;
}

static int hello_u16(struct hello_cur *c, size_t *v)
{
	if (c->n < 2)
		return -1;
	*v = (size_t)c->p[0] << 8 | c->p[1];
	c->p += 2;
	c->n -= 2;
	return 0;
}

/* Splits the next len bytes off c into sub. */
static int hello_sub(struct hello_cur *c, size_t len, struct hello_cur *sub)
{
	if (c->n < len)
		return -1;
	sub->p = c->p;
	sub->n = len;
	c->p += len;
	c->n -= len;
	return 0;
}

/* A vector with a length of `width` bytes in front: split off, or skipped when sub is NULL. */
static int hello_vec(struct hello_cur *c, int width, struct hello_cur *sub)
{
	struct hello_cur tmp;
	size_t len;

	if ((width == 1 ? hello_u8(c, &len) : hello_u16(c, &len)) < 0)
		return -1;
	return hello_sub(c, len, sub != NULL ? sub : &tmp);
}

/* Whether an ALPN extension's body lists a protocol that starts with prefix. */
static int hello_alpn_has(struct hello_cur ext, const char *prefix)
{
	struct hello_cur list, name;
	size_t plen = strlen(prefix);
	int found = 0;

	if (hello_vec(&ext, 2, &list) < 0 || ext.n != 0 || list.n == 0)
		return -1;
	while (list.n > 0) {
		if (hello_vec(&list, 1, &name) < 0 || name.n == 0)
			return -1;
		if (name.n >= plen && memcmp(name.p, prefix, plen) == 0)
			found = 1;
	}
	return found;
}

enum hello_verdict hello_classify(const uint8_t *p, size_t n, const char *prefix)
{
	struct hello_cur rec, msg, body, exts, ext;
	size_t rlen, mlen, type, len, legacy;
	int alpn = 0; /* 0: no ALPN extension yet; 1: one that offers ours; -1: one that does not */

	if (n == 0)
		return HELLO_MORE;
	if (p[0] != HELLO_RECORD_HANDSHAKE)
		return HELLO_OTHER;
	/* The record's version: 3.x (TLS 1.0 to 1.3 all say 3.1 to 3.3 here). */
	if (n >= 2 && p[1] != 3)
		return HELLO_OTHER;
	if (n < 5)
		return HELLO_MORE;
	rlen = (size_t)p[3] << 8 | p[4];
	if (rlen == 0 || rlen > HELLO_MAX - 5)
		return HELLO_OTHER;
	/* The handshake message's type decides before the record is whole. */
	if (n >= 6 && p[5] != HELLO_CLIENT_HELLO)
		return HELLO_OTHER;
	if (n < 5 + rlen)
		return HELLO_MORE;
	rec = (struct hello_cur){ p + 5, rlen };
	if (hello_u8(&rec, &type) < 0 || rec.n < 3)
		return HELLO_OTHER;
	mlen = (size_t)rec.p[0] << 16 | (size_t)rec.p[1] << 8 | rec.p[2];
	rec.p += 3;
	rec.n -= 3;
	/* A ClientHello that goes on in a later record is not one of ours. */
	if (hello_sub(&rec, mlen, &msg) < 0)
		return HELLO_OTHER;
	/* legacy_version, random, legacy_session_id, cipher_suites, compression_methods */
	if (hello_u16(&msg, &legacy) < 0 || legacy >> 8 != 3 || hello_sub(&msg, 32, &body) < 0 ||
	    hello_vec(&msg, 1, NULL) < 0 || hello_vec(&msg, 2, NULL) < 0 ||
	    hello_vec(&msg, 1, NULL) < 0)
		return HELLO_OTHER;
	/* No extensions at all: no ALPN. */
	if (msg.n == 0)
		return HELLO_OTHER;
	if (hello_vec(&msg, 2, &exts) < 0 || msg.n != 0)
		return HELLO_OTHER;
	/* Every extension is walked: one that overruns makes the whole hello malformed. */
	while (exts.n > 0) {
		if (hello_u16(&exts, &type) < 0 || hello_u16(&exts, &len) < 0 ||
		    hello_sub(&exts, len, &ext) < 0)
			return HELLO_OTHER;
		if (type == HELLO_EXT_ALPN) {
			if (alpn != 0) /* RFC 8446, 4.2: at most one extension of a type */
				return HELLO_OTHER;
			alpn = hello_alpn_has(ext, prefix) == 1 ? 1 : -1;
		}
	}
	return alpn == 1 ? HELLO_MESHLET : HELLO_OTHER;
}
