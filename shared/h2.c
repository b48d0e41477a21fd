/*
 * h2.c - HTTP/2 framing, one direction at a time (see ap_h2.h).
 *
 * A frame is a 9-byte header (24-bit length, type, flags, 31-bit stream)
 * and its payload. Only header blocks are looked into (fed to HPACK, which
 * must see every one to keep its table in step), and the few fixed-size
 * payloads that end streams or size the other direction's table:
 * RST_STREAM, GOAWAY, SETTINGS. Everything else, DATA included, is
 * counted and skipped.
 */
#include "config.h"
#include "ap_h2.h"

#include <string.h>

enum {
	ST_PREFACE,   /* client only: the 24 preface bytes */
	ST_HEADER,    /* the next frame's 9-byte header */
	ST_PADLEN,    /* PADDED: the pad length byte */
	ST_FRONT,     /* HEADERS/PUSH_PROMISE: priority or promised id */
	ST_BLOCK,     /* a header block fragment, to HPACK */
	ST_SKIP,      /* bytes nobody looks at (DATA, padding, PING...) */
	ST_DATA,      /* a server's DATA, reported (AP_H2_DATA) */
	ST_SMALL,     /* RST_STREAM's or GOAWAY's fixed part */
	ST_SETTINGS,  /* SETTINGS entries, 6 bytes each */
	ST_ERROR,
};

enum {
	FL_END_STREAM = 0x1,
	FL_ACK = 0x1,
	FL_END_HEADERS = 0x4,
	FL_PADDED = 0x8,
	FL_PRIORITY = 0x20,
};

#define SETTINGS_HEADER_TABLE_SIZE 0x1

void ap_h2_init(struct ap_h2 *p, enum ap_h2_side side)
{
	memset(p, 0, offsetof(struct ap_h2, hpack));
	p->side = (uint8_t)side;
	p->state = side == AP_H2_FROM_CLIENT ? ST_PREFACE : ST_HEADER;
	ap_hpack_init(&p->hpack);
}

int ap_h2_is_preface(const uint8_t *buf, size_t len)
{
	size_t n = len < AP_H2_PREFACE_LEN ? len : AP_H2_PREFACE_LEN;
	return n > 0 && memcmp(buf, AP_H2_PREFACE, n) == 0;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static enum ap_h2_ev fail(struct ap_h2 *p)
{
	p->state = ST_ERROR;
	return AP_H2_ERROR;
}

/* The frame header h (9 bytes) is complete: check it against an open
 * header block and choose how its payload is read. */
static enum ap_h2_ev frame_begin(struct ap_h2 *p, const uint8_t *h)
{
	uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
	p->type = h[3];
	p->flags = h[4];
	p->stream = be32(h + 5) & 0x7fffffffu;
	p->left = len;
	p->frame_bytes = AP_H2_FRAME_HEADER + len;
	p->pad = 0;
	p->skip_front = 0;
	p->small_n = 0;
	/* A header block's frames are contiguous (RFC 9113 6.10). */
	if (p->block_open != (p->type == AP_H2_F_CONTINUATION) ||
	    (p->block_open && p->stream != p->block_stream))
		return fail(p);
	switch (p->type) {
	case AP_H2_F_HEADERS:
	case AP_H2_F_PUSH_PROMISE:
		if (p->stream == 0)
			return fail(p);
		ap_hpack_block_begin(&p->hpack);
		p->block_stream = p->stream;
		p->block_push = p->type == AP_H2_F_PUSH_PROMISE;
		p->block_end_stream = p->type == AP_H2_F_HEADERS && (p->flags & FL_END_STREAM);
		if (p->type == AP_H2_F_PUSH_PROMISE)
			p->skip_front = 4;
		else if (p->flags & FL_PRIORITY)
			p->skip_front = 5;
		/* ST_FRONT reads skip_front bytes whatever is left: a frame too
		 * short for them would have it read into the next frame */
		if (p->skip_front > len)
			return fail(p);
		p->state = (p->flags & FL_PADDED) ? ST_PADLEN : ST_FRONT;
		break;
	case AP_H2_F_CONTINUATION:
		p->state = ST_BLOCK;
		break;
	case AP_H2_F_DATA:
		/* skipped, pad length and padding too, unless wanted */
		if (p->stream != p->data_stream || p->stream == 0)
			p->state = ST_SKIP;
		else
			p->state = (p->flags & FL_PADDED) ? ST_PADLEN : ST_DATA;
		break;
	case AP_H2_F_RST_STREAM:
		if (len != 4)
			return fail(p);
		p->state = ST_SMALL;
		break;
	case AP_H2_F_GOAWAY:
		if (len < 8)
			return fail(p);
		p->state = ST_SMALL;
		break;
	case AP_H2_F_SETTINGS:
		if (p->flags & FL_ACK)
			p->state = ST_SKIP;
		else if (len % 6 != 0)
			return fail(p);
		else
			p->state = ST_SETTINGS;
		break;
	default: /* PRIORITY, PING, WINDOW_UPDATE, extensions */
		p->state = ST_SKIP;
		break;
	}
	return AP_H2_FRAME;
}

/* Every payload byte of the current frame was consumed. */
static enum ap_h2_ev frame_end(struct ap_h2 *p)
{
	p->state = ST_HEADER;
	p->hlen = 0;
	switch (p->type) {
	case AP_H2_F_HEADERS:
	case AP_H2_F_PUSH_PROMISE:
	case AP_H2_F_CONTINUATION:
		if (!(p->flags & FL_END_HEADERS)) {
			p->block_open = 1;
			return AP_H2_NEED_MORE;
		}
		p->block_open = 0;
		if (ap_hpack_block_end(&p->hpack) != 0)
			return fail(p);
		if (p->block_push)
			return AP_H2_NEED_MORE;
		p->stream = p->block_stream;
		p->end_pending = p->block_end_stream;
		return AP_H2_HEADERS;
	case AP_H2_F_DATA:
		return (p->flags & FL_END_STREAM) ? AP_H2_END_STREAM : AP_H2_NEED_MORE;
	case AP_H2_F_RST_STREAM:
		p->value = be32(p->small);
		return AP_H2_RESET;
	case AP_H2_F_GOAWAY:
		p->stream = be32(p->small) & 0x7fffffffu;
		p->value = be32(p->small + 4);
		return AP_H2_GOAWAY;
	default:
		return AP_H2_NEED_MORE;
	}
}

size_t ap_h2_feed(struct ap_h2 *p, const uint8_t *buf, size_t len, enum ap_h2_ev *ev)
{
	size_t i = 0;
	*ev = AP_H2_NEED_MORE;
	if (p->state == ST_ERROR) {
		*ev = AP_H2_ERROR;
		return 0;
	}
	if (p->end_pending) {
		p->end_pending = 0;
		*ev = AP_H2_END_STREAM; /* p->stream is still the block's */
		return 0;
	}
	for (;;) {
		size_t avail = len - i;
		enum ap_h2_ev e = AP_H2_NEED_MORE;
		switch (p->state) {
		case ST_PREFACE: {
			if (avail == 0)
				return i;
			size_t take = AP_H2_PREFACE_LEN - p->preface_got;
			if (take > avail)
				take = avail;
			if (memcmp(buf + i, AP_H2_PREFACE + p->preface_got, take) != 0) {
				*ev = fail(p);
				return i;
			}
			i += take;
			p->preface_got += (uint32_t)take;
			if (p->preface_got == AP_H2_PREFACE_LEN)
				p->state = ST_HEADER;
			continue;
		}
		case ST_HEADER: {
			if (avail == 0)
				return i;
			if (p->hlen == 0 && avail >= AP_H2_FRAME_HEADER) {
				/* whole here, as usual: no copy */
				i += AP_H2_FRAME_HEADER;
				*ev = frame_begin(p, buf + i - AP_H2_FRAME_HEADER);
				return i;
			}
			size_t take = AP_H2_FRAME_HEADER - p->hlen;
			if (take > avail)
				take = avail;
			memcpy(p->hdr + p->hlen, buf + i, take);
			i += take;
			p->hlen = (uint8_t)(p->hlen + take);
			if (p->hlen < AP_H2_FRAME_HEADER)
				return i;
			*ev = frame_begin(p, p->hdr);
			return i;
		}
		case ST_ERROR:
			*ev = AP_H2_ERROR;
			return i;
		default:
			break;
		}

		/* In a payload. */
		if (p->left == 0) {
			e = frame_end(p);
			if (e != AP_H2_NEED_MORE) {
				*ev = e;
				return i;
			}
			continue;
		}
		if (avail == 0)
			return i;
		switch (p->state) {
		case ST_PADLEN:
			p->pad = buf[i++];
			p->left--;
			if ((uint32_t)p->pad + p->skip_front > p->left) {
				*ev = fail(p);
				return i;
			}
			p->state = p->type == AP_H2_F_DATA ? ST_DATA : ST_FRONT;
			break;
		case ST_DATA: {
			uint32_t data = p->left - p->pad;
			size_t take = data < avail ? data : avail;
			i += take;
			p->left -= (uint32_t)take;
			if (p->left == p->pad)
				p->state = ST_SKIP; /* the padding */
			if (take) {
				p->value = (uint32_t)take;
				*ev = AP_H2_DATA;
				return i;
			}
			break;
		}
		case ST_FRONT: {
			size_t take = p->skip_front < avail ? p->skip_front : avail;
			i += take;
			p->left -= (uint32_t)take;
			p->skip_front = (uint8_t)(p->skip_front - take);
			if (p->skip_front == 0)
				p->state = ST_BLOCK;
			break;
		}
		case ST_BLOCK: {
			uint32_t frag = p->left - p->pad;
			size_t take = frag < avail ? frag : avail;
			if (take && ap_hpack_feed(&p->hpack, buf + i, take) != 0) {
				*ev = fail(p);
				return i;
			}
			i += take;
			p->left -= (uint32_t)take;
			if (p->left == p->pad)
				p->state = ST_SKIP; /* the padding */
			break;
		}
		case ST_SKIP: {
			size_t take = p->left < avail ? p->left : avail;
			i += take;
			p->left -= (uint32_t)take;
			break;
		}
		case ST_SMALL: {
			size_t want = sizeof p->small - p->small_n;
			if (p->type == AP_H2_F_RST_STREAM)
				want = 4u - p->small_n;
			size_t take = want < avail ? want : avail;
			memcpy(p->small + p->small_n, buf + i, take);
			i += take;
			p->small_n = (uint8_t)(p->small_n + take);
			p->left -= (uint32_t)take;
			if (p->small_n == (p->type == AP_H2_F_RST_STREAM ? 4 : 8))
				p->state = ST_SKIP; /* GOAWAY's debug data */
			break;
		}
		case ST_SETTINGS: {
			size_t take = 6u - p->small_n;
			if (take > avail)
				take = avail;
			memcpy(p->small + p->small_n, buf + i, take);
			i += take;
			p->small_n = (uint8_t)(p->small_n + take);
			p->left -= (uint32_t)take;
			if (p->small_n == 6) {
				p->small_n = 0;
				if ((p->small[0] << 8 | p->small[1]) == SETTINGS_HEADER_TABLE_SIZE) {
					p->value = be32(p->small + 2);
					*ev = AP_H2_TABLE_SIZE;
					return i;
				}
			}
			break;
		}
		}
	}
}
