/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal DER writer: tag-length-value elements appended to a growing buffer. */
#ifndef MESHLET_CA_DER_H
#define MESHLET_CA_DER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * struct der - bytes being written. Every call appends; the first allocation failure sets
 * failed and turns later calls into no-ops, so a writer checks once at the end. The
 * caller owns p (free()).
 */
struct der {
	unsigned char *p;
	size_t len, cap;
	bool failed;
};

/* der_put - append n raw bytes (already DER). */
void der_put(struct der *d, const void *bytes, size_t n);

/* der_tlv - append one element: tag (one byte), the DER length of n, then n bytes. */
void der_tlv(struct der *d, unsigned tag, const void *bytes, size_t n);

/*
 * der_begin - open a constructed element of tag (one byte) whose contents the calls up to
 * the matching der_end append. Returns a mark to give der_end. Elements nest.
 */
size_t der_begin(struct der *d, unsigned tag);

/* der_end - close the element that der_begin(d, ...) opened at mark: its length is set. */
void der_end(struct der *d, size_t mark);

#endif
