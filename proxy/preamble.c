/* SPDX-License-Identifier: Apache-2.0 */
/* The tunnel preamble: a strict, incremental parser and the encoder (format in preamble.h). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "meshlet/err.h"
#include "preamble.h"

/* The largest length field: the whole preamble stays within PREAMBLE_MAX. */
#define PREAMBLE_FIELDS_MAX (PREAMBLE_MAX - PREAMBLE_HEADER)

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/*
 * The fields area, of which avail bytes of flen are here. Checks every field as far as
 * its bytes go; returns 0 when all flen bytes were valid, or an error.
 */
static int preamble_fields(const uint8_t *f, size_t avail, size_t flen, struct preamble *p)
{
	size_t i = 0;
	int last = -1;

	while (i < avail) {
		unsigned type = f[i], len;

		if ((int)type <= last || type == 0)
			return ERR_PREAMBLE_MALFORMED;
		if (type < 0x80 && type != PREAMBLE_FIELD_IPV4 && type != PREAMBLE_FIELD_IPV6)
			return ERR_PREAMBLE_MALFORMED; /* a required field we do not know */
		if (type == PREAMBLE_FIELD_IPV6 && last == PREAMBLE_FIELD_IPV4)
			return ERR_PREAMBLE_MALFORMED;
		if (i + 1 >= avail)
			break; /* the length byte is still to come */
		len = f[i + 1];
		if (i + 2 + len > flen)
			return ERR_PREAMBLE_MALFORMED;
		if ((type == PREAMBLE_FIELD_IPV4 && len != 4) ||
		    (type == PREAMBLE_FIELD_IPV6 && len != 16))
			return ERR_PREAMBLE_MALFORMED;
		if (i + 2 + len > avail)
			break; /* the value is still to come */
		if (type == PREAMBLE_FIELD_IPV4) {
			p->family = AF_INET;
			memcpy(p->addr, f + i + 2, 4);
		} else if (type == PREAMBLE_FIELD_IPV6) {
			p->family = AF_INET6;
			memcpy(p->addr, f + i + 2, 16);
		}
		last = (int)type;
		i += 2 + len;
	}
	return 0;
}

int preamble_parse(const uint8_t *buf, size_t len, struct preamble *out)
{
	struct preamble p = { .family = AF_UNSPEC };
	size_t flen, n;
	int rc;

	/* Each check runs as soon as its bytes are here, so errors come at the first proof. */
	n = len < 4 ? len : 4;
	if (memcmp(buf, PREAMBLE_MAGIC, n) != 0)
		return ERR_PREAMBLE_MAGIC;
	if (len < 5)
		return 0;
	if (buf[4] != PREAMBLE_VERSION && buf[4] != PREAMBLE_VERSION_2 &&
	    buf[4] != PREAMBLE_VERSION_3)
		return ERR_PREAMBLE_VERSION;
	p.version = buf[4];
	if (len < 6)
		return 0;
	if (buf[5] != 0)
		return ERR_PREAMBLE_FLAGS;
	if (len < 8)
		return 0;
	p.port = (uint16_t)be16(buf + 6);
	if (p.port == 0)
		return ERR_PREAMBLE_MALFORMED;
	if (len < PREAMBLE_HEADER)
		return 0;
	flen = be16(buf + 8);
	if (flen > PREAMBLE_FIELDS_MAX)
		return ERR_PREAMBLE_TOO_LARGE;
	n = len - PREAMBLE_HEADER < flen ? len - PREAMBLE_HEADER : flen;
	rc = preamble_fields(buf + PREAMBLE_HEADER, n, flen, &p);
	if (rc < 0)
		return rc;
	if (n < flen)
		return 0;
	*out = p;
	return (int)(PREAMBLE_HEADER + flen);
}

int preamble_encode(const struct preamble *p, uint8_t *buf, size_t size)
{
	size_t alen, flen, total;
	uint8_t version = p->version == 0 ? PREAMBLE_VERSION : p->version;

	if (p->port == 0 || p->flags != 0 ||
	    (version != PREAMBLE_VERSION && version != PREAMBLE_VERSION_2 &&
	     version != PREAMBLE_VERSION_3))
		return -EINVAL;
	switch (p->family) {
	case AF_UNSPEC:
		alen = 0;
		break;
	case AF_INET:
		alen = 4;
		break;
	case AF_INET6:
		alen = 16;
		break;
	default:
		return -EINVAL;
	}
	flen = alen ? 2 + alen : 0;
	total = PREAMBLE_HEADER + flen;
	if (size < total)
		return ERR_TRUNCATED;
	memcpy(buf, PREAMBLE_MAGIC, 4);
	buf[4] = version;
	buf[5] = 0;
	buf[6] = (uint8_t)(p->port >> 8);
	buf[7] = (uint8_t)p->port;
	buf[8] = (uint8_t)(flen >> 8);
	buf[9] = (uint8_t)flen;
	if (alen) {
		buf[10] = p->family == AF_INET ? PREAMBLE_FIELD_IPV4 : PREAMBLE_FIELD_IPV6;
		buf[11] = (uint8_t)alen;
		memcpy(buf + 12, p->addr, alen);
	}
	return (int)total;
}

int preamble_from_sockaddr(struct preamble *p, const struct sockaddr *sa)
{
	memset(p, 0, sizeof(*p));
	p->version = PREAMBLE_VERSION;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		p->family = AF_INET;
		p->port = ntohs(in->sin_port);
		memcpy(p->addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		p->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			p->family = AF_INET;
			memcpy(p->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			p->family = AF_INET6;
			memcpy(p->addr, &in6->sin6_addr, 16);
		}
	} else {
		return -EINVAL;
	}
	return p->port != 0 ? 0 : -EINVAL;
}
