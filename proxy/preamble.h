/* SPDX-License-Identifier: Apache-2.0 */
/* The tunnel preamble: what a client proxy tells the server proxy before relaying bytes. */
#ifndef MESHLET_PROXY_PREAMBLE_H
#define MESHLET_PROXY_PREAMBLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The tunnel preamble, versions 1 and 2
 * =====================================
 *
 * A meshed pod's proxy that opens mutual TLS to a peer's tunnel port (15008) sends this
 * header as the first bytes of the TLS stream, right after the handshake and before any
 * byte of the application. It names the port the application dialled, which the tunnel
 * port cannot tell: the server proxy forwards the stream to that port on its pod's own
 * address (the one the tunnel connection came to). Nothing
 * comes back: the server proxy answers by relaying, or by closing the connection.
 *
 *	offset  size  field
 *	0       4     magic: "MSHL" (0x4d 0x53 0x48 0x4c)
 *	4       1     version: 1 or 2 (below)
 *	5       1     flags: none are defined in version 1; every bit must be 0
 *	6       2     port: the original destination port, 1 to 65535, big-endian
 *	8       2     length: the number of bytes of fields that follow, big-endian, <= 246
 *	10      ...   fields: each is type (1 byte), length (1 byte), value (length bytes)
 *
 * The header and its fields are at most PREAMBLE_MAX (256) bytes. The fields fill exactly
 * `length` bytes, in strictly ascending order of type (so each type appears once). Types
 * 0x01 to 0x7f are required: a receiver that does not know one refuses the preamble.
 * Types 0x80 to 0xff are optional: a receiver that does not know one skips it, so that a
 * later sender can add information for logs without breaking older receivers. Version 1
 * defines:
 *
 *	0x01  original destination IPv4 address, 4 bytes
 *	0x02  original destination IPv6 address, 16 bytes (not together with 0x01)
 *
 * Both are informational (access logs): the server proxy never connects to them.
 *
 * A receiver fails closed: another magic, another version, a flag it does not know, a
 * length beyond the limit, a port of 0, a field that overruns, comes out of order, has the
 * wrong length or is an unknown required type, all refuse the connection. Errors are found
 * at the first byte that proves them, so a peer that speaks something else (an HTTP
 * request, a TLS record) is refused after its first bytes, without waiting for more.
 *
 * A new version gets a new number; receivers refuse versions they do not know, so a sender
 * must only use a version its peers accept: the ALPN protocol of the tunnel says which.
 * "meshlet/1": version 1, and the stream's bytes follow as they are, to the end of the TLS
 * connection. "meshlet/2": version 2, which has the same layout; the stream's bytes follow
 * in frames, and the connection carries one stream after another (relay.h, "Tunnel
 * protocol 2").
 */

#define PREAMBLE_MAGIC      "MSHL"
#define PREAMBLE_VERSION    1 /* the version of "meshlet/1" tunnels */
#define PREAMBLE_VERSION_2  2 /* the version of "meshlet/2" tunnels */
#define PREAMBLE_VERSION_3  3 /* the version of "meshlet/3" streams (an OPEN's payload) */
#define PREAMBLE_HEADER     10
#define PREAMBLE_MAX        256
#define PREAMBLE_FIELD_IPV4 0x01
#define PREAMBLE_FIELD_IPV6 0x02

/* A parsed preamble: plain data. */
struct preamble {
	uint8_t version;  /* 1, 2 or 3 (preamble_encode takes 0 as 1) */
	uint16_t port;    /* original destination port, 1 to 65535 */
	uint8_t flags;    /* 0: version 1 defines no flags */
	uint8_t family;   /* AF_UNSPEC (no address), AF_INET or AF_INET6 */
	uint8_t addr[16]; /* the original destination address: 4 or 16 bytes by family */
};

/*
 * preamble_parse - parse the preamble at the start of the len bytes at buf, which may hold
 * only its first bytes (it arrives in pieces) or more than it (the application's bytes
 * follow). Returns the preamble's length (> 0, at most PREAMBLE_MAX) and fills *out when it
 * is complete; 0 when every byte so far is valid but more are needed (call again with
 * more); or an error: ERR_PREAMBLE_MAGIC, ERR_PREAMBLE_VERSION, ERR_PREAMBLE_FLAGS,
 * ERR_PREAMBLE_TOO_LARGE, ERR_PREAMBLE_MALFORMED. Once a prefix gives an error, every
 * longer input does too, with the same code. *out is written only when complete.
 */
int preamble_parse(const uint8_t *buf, size_t len, struct preamble *out);

/*
 * preamble_encode - write p as a preamble of its version into buf (size bytes). Returns the
 * length written, -EINVAL for a port of 0, flags, an unknown version or family, or
 * ERR_TRUNCATED when size is too small (PREAMBLE_MAX always suffices).
 */
int preamble_encode(const struct preamble *p, uint8_t *buf, size_t size);

/*
 * preamble_from_sockaddr - fill *p (version 1) from an original destination address
 * (AF_INET or AF_INET6; an IPv4-mapped IPv6 address becomes AF_INET). Returns 0 or -EINVAL.
 */
int preamble_from_sockaddr(struct preamble *p, const struct sockaddr *sa);

#endif
