/* SPDX-License-Identifier: Apache-2.0 */
/* Tunnel protocol 3's frame headers: parsed and written, nothing else (no I/O). */
#include "meshlet/err.h"
#include "mux.h"
#include "preamble.h"

int mux_frame_parse(const uint8_t *p, size_t n, struct mux_frame *f)
{
	uint16_t len;
	uint32_t id;
	bool ok;

	/* Each byte is checked as it comes: a peer that speaks something else fails early. */
	if (n >= 1 && p[0] > MUX_STOP)
		return ERR_MUX_FRAME;
	if (n >= 2 && p[1] != 0)
		return ERR_MUX_FRAME;
	if (n < MUX_HEAD)
		return 0;
	len = (uint16_t)(p[2] << 8 | p[3]);
	id = mux_get32(p + 4);
	switch (p[0]) {
	case MUX_DATA:
		ok = id != 0 && len >= 1 && len <= MUX_FRAME_MAX;
		break;
	case MUX_OPEN:
		ok = id != 0 && len >= PREAMBLE_HEADER && len <= PREAMBLE_MAX;
		break;
	case MUX_END:
	case MUX_RESET:
	case MUX_STOP:
		ok = id != 0 && len == 0;
		break;
	case MUX_WINDOW_UPDATE:
		ok = id != 0 && len == 4;
		break;
	default: /* MUX_GOAWAY */
		ok = id == 0 && len == 4;
		break;
	}
	if (!ok)
		return ERR_MUX_FRAME;
	f->type = p[0];
	f->len = len;
	f->stream = id;
	return MUX_HEAD;
}

void mux_frame_put(uint8_t *p, enum mux_type type, uint16_t len, uint32_t stream)
{
	p[0] = (uint8_t)type;
	p[1] = 0;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	mux_set32(p + 4, stream);
}
