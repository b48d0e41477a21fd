/*
 * ap_h2.h - following an HTTP/2 connection (RFC 9113) one direction at a
 * time: its frames, and the header blocks inside them.
 *
 * The preload feeds the bytes a server read from a connection that began
 * with the HTTP/2 client preface to one parser (AP_H2_FROM_CLIENT) and the
 * bytes it wrote to another (AP_H2_FROM_SERVER), in whatever pieces the
 * server used. Like ap_http.h's parsers it never allocates, copies nothing
 * but what the HPACK decoder keeps (:method, :path, :status), and reports
 * in pull style: ap_h2_feed() consumes bytes until it has something to
 * report, returns how many it consumed and sets *ev; the caller handles the
 * event and calls again with the rest.
 *
 * It checks only what it must to stay in step: frame lengths, header
 * blocks (HEADERS or PUSH_PROMISE, then CONTINUATION frames on the same
 * stream up to END_HEADERS) and HPACK. Flow control, stream states and
 * priorities are the endpoints' business.
 *
 * Plain data, no pointers: zeroed by ap_h2_init(), embedded in the
 * preload's per-connection state. Not thread-safe.
 */
#ifndef AP_H2_H
#define AP_H2_H

#include <stddef.h>
#include <stdint.h>

#include "ap_hpack.h"

#define AP_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define AP_H2_PREFACE_LEN 24
#define AP_H2_FRAME_HEADER 9

/* Frame types (RFC 9113 6). */
enum {
	AP_H2_F_DATA = 0x0,
	AP_H2_F_HEADERS = 0x1,
	AP_H2_F_PRIORITY = 0x2,
	AP_H2_F_RST_STREAM = 0x3,
	AP_H2_F_SETTINGS = 0x4,
	AP_H2_F_PUSH_PROMISE = 0x5,
	AP_H2_F_PING = 0x6,
	AP_H2_F_GOAWAY = 0x7,
	AP_H2_F_WINDOW_UPDATE = 0x8,
	AP_H2_F_CONTINUATION = 0x9,
};

enum ap_h2_side {
	AP_H2_FROM_CLIENT = 0, /* begins with the preface */
	AP_H2_FROM_SERVER = 1,
};

enum ap_h2_ev {
	AP_H2_NEED_MORE = 0, /* every byte consumed, nothing to report */
	AP_H2_FRAME,         /* a frame's header was read: stream, type,
	                        flags and frame_bytes (9 + its length) are
	                        valid; the frame's payload follows */
	AP_H2_HEADERS,       /* a header block on `stream` is complete (its
	                        END_HEADERS frame consumed): hpack's results
	                        are valid until the next event. Not reported
	                        for PUSH_PROMISE blocks. */
	AP_H2_END_STREAM,    /* the frame that carried END_STREAM on `stream`
	                        was consumed whole (for HEADERS, after its
	                        block's AP_H2_HEADERS) */
	AP_H2_RESET,         /* a RST_STREAM on `stream` was consumed;
	                        `value` is its error code */
	AP_H2_GOAWAY,        /* a GOAWAY was consumed: `stream` is its last
	                        stream id, `value` its error code */
	AP_H2_DATA,          /* the last `value` bytes consumed (just before
	                        the returned offset) are data of a DATA frame
	                        on `stream` (its padding excluded); only for
	                        the stream named in data_stream */
	AP_H2_TABLE_SIZE,    /* a SETTINGS frame (not an ACK) set
	                        SETTINGS_HEADER_TABLE_SIZE to `value`: the
	                        other direction's encoder may use that much
	                        (ap_hpack_set_limit() on the other parser) */
	AP_H2_ERROR,         /* not HTTP/2, or a header block or HPACK we
	                        cannot follow; sticky */
};

struct ap_h2 {
	/* results, valid as each event says */
	uint32_t stream;
	uint32_t frame_bytes;
	uint32_t value;
	uint8_t type;
	uint8_t flags;          /* the current frame's (as type) */

	/* set by the caller: the stream whose DATA is reported (AP_H2_DATA),
	 * 0 for none; read at each DATA frame's header */
	uint32_t data_stream;

	/* private */
	uint8_t side;
	uint8_t state;
	uint8_t hlen;           /* bytes of hdr[] read */
	uint8_t hdr[AP_H2_FRAME_HEADER];
	uint8_t pad;            /* padding bytes at the payload's end */
	uint8_t skip_front;     /* bytes before the block fragment (pad
	                           length, priority, promised id) */
	uint8_t block_open;     /* a header block waits for CONTINUATION */
	uint8_t block_push;     /* ... and it is a PUSH_PROMISE's */
	uint8_t block_end_stream; /* ... and its HEADERS had END_STREAM */
	uint8_t end_pending;    /* AP_H2_END_STREAM to report next */
	uint8_t small_n;        /* bytes of small[] read */
	uint8_t small[8];       /* RST_STREAM, GOAWAY, SETTINGS entry */
	uint32_t block_stream;
	uint32_t left;          /* payload bytes of the frame left */
	uint32_t preface_got;   /* bytes of the preface read */
	struct ap_hpack hpack;  /* this direction's header blocks */
};

/* A fresh parser for one direction. */
void ap_h2_init(struct ap_h2 *p, enum ap_h2_side side);

size_t ap_h2_feed(struct ap_h2 *p, const uint8_t *buf, size_t len, enum ap_h2_ev *ev);

/* 1 when buf[0..len) (len > 0) is the client preface or its beginning:
 * a connection whose first bytes these are speaks HTTP/2 (RFC 9113 3.4). */
int ap_h2_is_preface(const uint8_t *buf, size_t len);

#endif /* AP_H2_H */
