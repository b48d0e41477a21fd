/*
 * h2conn.c - one HTTP/2 connection: from its frames to request events.
 *
 * conn.c hands a connection over here when its first bytes are the HTTP/2
 * client preface (prior knowledge on a plain socket, or inside TLS once
 * ALPN chose h2). Both directions go through shared/h2.c's frame parser;
 * every client stream that carries a request head becomes a struct
 * pl_pending, as an HTTP/1 request does, and conn.c's pl_request_end()
 * sends its event:
 *
 *   start      the read that held the first byte of its HEADERS frame
 *   method     :method;  path: :path, query string dropped as for HTTP/1
 *   status     the first final (>= 200) :status the server sent on it
 *   bytes_in   every frame the client sent on the stream, 9-byte headers
 *              included; bytes_out: the same for the server's frames
 *   end        the write that finished the server's END_STREAM frame;
 *              aborted at a RST_STREAM from either side before that, or
 *              when the connection ends
 *
 * Server-pushed streams (even ids) are not requests. A stream whose head
 * lacks :method or :path, or whose value the HPACK mirror lost, is not
 * recorded (APIPROF_DEBUG says so).
 *
 * Memory: a state per connection (both parsers with their HPACK mirrors,
 * PL_H2_INLINE open streams), mapped when needed and reused, PL_H2_KEEP
 * of them kept when idle and the others returned to the system, taken
 * from the connection pool's budget (pl_pool_reserve()) with the stream
 * blocks: at most half of it goes to HTTP/2. Returning idle states gives
 * their share back to the blocks: after many connections at once, a
 * later one may still follow more than PL_H2_INLINE streams.
 */
#include "config.h"
#include "pl.h"
#include "ap_h2.h"

#include <string.h>
#include <sys/mman.h>

/* Open streams: PL_H2_INLINE in the state, then blocks of
 * PL_H2_PER_BLOCK, each a connection record taken from the pool while the
 * connection needs it. 6 + 22 * 6 = 138: nginx allows 128 at once
 * (http2_max_concurrent_streams), browsers open 6 to 100. A stream
 * beyond them is not recorded. */
#define PL_H2_INLINE 6
#define PL_H2_PER_BLOCK 6
#define PL_H2_BLOCKS 22

struct pl_h2_stream {
	uint32_t sid;      /* 0: free */
	uint8_t head;      /* its request head was read: r is valid */
	struct pl_pending r;
};

/* A pool record holding streams. Its header stays the pool's: a hook
 * that raced with the record's previous life as a connection may still
 * lock and unlock it (fdtable.c), so the block is used unlocked. */
struct pl_h2_block {
	struct pl_pool_hdr hdr;
	struct pl_h2_stream s[PL_H2_PER_BLOCK];
};

struct pl_h2 {
	struct pl_h2 *next_free;
	uint32_t last_sid;          /* highest client stream opened */
	uint8_t out_started;        /* a frame of the server's was seen */
	/* The start of one 5xx response's body at a time (its error
	 * message): the stream it belongs to (0: none) and the bytes. */
	uint32_t err_sid;
	uint16_t err_len;
	char err[AP_HTTP_ERRBODY_MAX];
	struct ap_h2 in, out;       /* client -> server, server -> client */
	unsigned n_blocks;
	struct pl_h2_block *blk[PL_H2_BLOCKS];
	struct pl_h2_stream s[PL_H2_INLINE];
};
_Static_assert(sizeof(struct pl_h2) <= 3 * 4096, "a state is 12 KiB (README, pool budget)");

/* Slot i of h, 0 <= i < slots(h). */
static unsigned slots(const struct pl_h2 *h)
{
	return PL_H2_INLINE + PL_H2_PER_BLOCK * h->n_blocks;
}

static struct pl_h2_stream *slot_at(struct pl_h2 *h, unsigned i)
{
	if (i < PL_H2_INLINE)
		return &h->s[i];
	i -= PL_H2_INLINE;
	return &h->blk[i / PL_H2_PER_BLOCK]->s[i % PL_H2_PER_BLOCK];
}

/* One more block of free slots; NULL when PL_H2_BLOCKS, or HTTP/2's half
 * of the pool, is spent. */
static struct pl_h2_stream *more_slots(struct pl_h2 *h)
{
	if (h->n_blocks == PL_H2_BLOCKS || sizeof(struct pl_h2_block) > pl_conn_size())
		return NULL;
	struct pl_h2_block *b = (struct pl_h2_block *)pl_pool_borrow();
	if (!b)
		return NULL;
	pl_conn_unlock((struct pl_conn *)b);
	for (unsigned i = 0; i < PL_H2_PER_BLOCK; i++)
		b->s[i].sid = b->s[i].head = 0;
	h->blk[h->n_blocks++] = b;
	return &b->s[0];
}

/* The pool of states. Global: shared by every connection of the process.
 * The lock guards free_list only, taken when a connection begins and ends
 * HTTP/2, never per frame. */
static int pool_lock;
static struct pl_h2 *free_list;
static unsigned n_free;     /* states on free_list */
#define PL_H2_KEEP 8        /* idle states kept, not unmapped */

/* Records of the pool's budget one state takes. */
static size_t state_records(void)
{
	return (pl_h2_size() + pl_conn_size() - 1) / pl_conn_size();
}

size_t pl_h2_size(void)
{
	return (sizeof(struct pl_h2) + 4095) & ~(size_t)4095;
}

struct pl_h2 *pl_h2_new(void)
{
	pl_spin_lock(&pool_lock);
	struct pl_h2 *h = free_list;
	if (h) {
		free_list = h->next_free;
		n_free--;
	}
	pl_spin_unlock(&pool_lock);
	if (!h) {
		if (!pl_pool_reserve(state_records()))
			return NULL;
		void *m = mmap(NULL, pl_h2_size(), PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			pl_pool_unreserve(state_records());
			return NULL;
		}
		h = m;
	}
	h->last_sid = 0;
	h->out_started = 0;
	h->err_sid = 0;
	h->n_blocks = 0;
	ap_h2_init(&h->in, AP_H2_FROM_CLIENT);
	ap_h2_init(&h->out, AP_H2_FROM_SERVER);
	/* Until the server's first frame is seen, what its SETTINGS allowed
	 * the client's encoder is unknown (server_preface()). */
	ap_hpack_set_limit(&h->in.hpack, UINT32_MAX);
	for (unsigned i = 0; i < PL_H2_INLINE; i++)
		h->s[i].sid = h->s[i].head = 0;
	return h;
}

/* Frees slot st; a request in flight stops its profile, without event. */
static void stream_free(struct pl_h2_stream *st)
{
	if (st->head && st->r.prof)
		pl_prof_end(st->r.prof, st->r.id);
	st->sid = 0;
	st->head = 0;
}

void pl_h2_free(struct pl_h2 *h)
{
	for (unsigned i = 0; i < slots(h); i++)
		if (slot_at(h, i)->sid)
			stream_free(slot_at(h, i));
	for (unsigned b = 0; b < h->n_blocks; b++) {
		pl_conn_lock((struct pl_conn *)h->blk[b]);
		pl_pool_give_back((struct pl_conn *)h->blk[b]);
	}
	h->n_blocks = 0;
	pl_spin_lock(&pool_lock);
	int keep = n_free < PL_H2_KEEP;
	if (keep) {
		h->next_free = free_list;
		free_list = h;
		n_free++;
	}
	pl_spin_unlock(&pool_lock);
	if (!keep) {
		/* nothing else points into h: the record's union no longer
		 * names it (proto_drop()) */
		munmap(h, pl_h2_size());
		pl_pool_unreserve(state_records());
	}
}

void pl_h2_atfork_child(void)
{
	pool_lock = 0;
}

static struct pl_h2_stream *stream_find(struct pl_h2 *h, uint32_t sid)
{
	if (sid == 0)
		return NULL;
	for (unsigned i = 0, n = slots(h); i < n; i++) {
		struct pl_h2_stream *st = slot_at(h, i);
		if (st->sid == sid)
			return st;
	}
	return NULL;
}

/* A client HEADERS frame on a stream we do not follow yet: a new request,
 * if it is a new client stream and a slot is free. */
static void stream_open(struct pl_h2 *h, uint32_t sid, uint32_t frame_bytes, uint64_t now)
{
	if ((sid & 1) == 0 || sid <= h->last_sid)
		return; /* trailers of a stream we dropped, or not a client's */
	h->last_sid = sid;
	struct pl_h2_stream *st = NULL;
	for (unsigned i = 0, n = slots(h); i < n && !st; i++)
		if (slot_at(h, i)->sid == 0)
			st = slot_at(h, i);
	if (!st)
		st = more_slots(h);
	if (!st) {
		pl_debug("HTTP/2 stream %u: %u streams open, no room for more; not recorded", sid,
		         slots(h));
		return;
	}
	st->sid = sid;
	st->head = 0;
	st->r.start_ns = now;
	st->r.bytes_in = frame_bytes;
	st->r.bytes_out = 0;
	st->r.prof = 0;
}

/* The request head of st is complete in hp: the request starts. */
static void stream_head(struct pl_h2_stream *st, int fd, const struct ap_hpack *hp)
{
	if (hp->method_len == 0 || hp->method_lost || !hp->path_seen || hp->path_lost) {
		pl_debug("HTTP/2 stream %u: no :method or :path known; not recorded", st->sid);
		st->sid = 0;
		return;
	}
	uint64_t start = st->r.start_ns, in = st->r.bytes_in;
	pl_request_open(&st->r, fd, hp->method, hp->method_len, hp->path, hp->path_len,
	                hp->path_truncated);
	st->r.start_ns = start;
	st->r.bytes_in = in;
	st->r.bytes_out = 0;
	st->head = 1;
	if (hp->profile)
		st->r.flags |= AP_REQF_PROFILE;
	if (pl_prof_want(hp->profile))
		st->r.prof = (uint8_t)pl_prof_begin(st->r.id, hp->profile, st->r.method,
		                                    st->r.method_len, st->r.path, st->r.path_len);
}

/* st's response ended (extra 0) or the stream was reset (AP_REQF_ABORTED). */
static void stream_end(struct pl_h2 *h, struct pl_h2_stream *st, uint16_t extra)
{
	int mine = h->err_sid == st->sid;
	if (st->head)
		pl_request_end(&st->r, pl_now_ns(), extra, mine ? h->err : NULL, mine ? h->err_len : 0);
	if (mine)
		h->err_sid = h->out.data_stream = 0;
	st->sid = 0;
	st->head = 0;
}

int pl_h2_read(struct pl_h2 *h, int fd, const uint8_t *p, size_t n)
{
	uint64_t now = 0;
	for (;;) {
		enum ap_h2_ev ev;
		size_t used = ap_h2_feed(&h->in, p, n, &ev);
		p += used;
		n -= used;
		struct pl_h2_stream *st;
		switch (ev) {
		case AP_H2_NEED_MORE:
			return 0;
		case AP_H2_FRAME:
			st = stream_find(h, h->in.stream);
			if (st)
				st->r.bytes_in += h->in.frame_bytes;
			else if (h->in.type == AP_H2_F_HEADERS) {
				if (now == 0)
					now = pl_now_ns();
				stream_open(h, h->in.stream, h->in.frame_bytes, now);
			}
			break;
		case AP_H2_HEADERS:
			st = stream_find(h, h->in.stream);
			if (st && !st->head)
				stream_head(st, fd, &h->in.hpack);
			break;
		case AP_H2_RESET:
			st = stream_find(h, h->in.stream);
			if (st)
				stream_end(h, st, AP_REQF_ABORTED);
			break;
		case AP_H2_TABLE_SIZE:
			/* the client's decoder: what the server's encoder may use */
			ap_hpack_set_limit(&h->out.hpack, h->in.value);
			break;
		case AP_H2_ERROR:
			pl_debug("fd %d: HTTP/2 from the client that cannot be followed", fd);
			return -1;
		default: /* END_STREAM (the request's), GOAWAY */
			break;
		}
	}
}

/* The first frame the server's parser reads. The server's preface is a
 * SETTINGS frame, its first (RFC 9113 3.4); a server that writes it as it
 * accepts, before the connection's first read, writes it before we know
 * the connection (conn.c), so the first frame seen is another (its ACK of
 * the client's SETTINGS, a response), and the client's requests may all
 * be read before it (Node reads the preface and three HEADERS in one
 * read, then answers). The table size that SETTINGS allowed the client's
 * encoder is then unknown: so the client's decoder mirror starts with no
 * limit (pl_h2_new()), and any size update the client sends is taken (the
 * mirror stays bounded whatever the size), rather than failing at one
 * above the default, which would stop the following of a valid
 * connection. Seeing the preface itself sets the RFC's default, its
 * HEADER_TABLE_SIZE then what it says; unless the client already used
 * more, which only an unseen SETTINGS could have allowed. */
static void server_preface(struct pl_h2 *h)
{
	h->out_started = 1;
	if (h->out.type == AP_H2_F_SETTINGS && !(h->out.flags & 0x1 /* ACK */) &&
	    h->in.hpack.max_size <= AP_HPACK_DEFAULT_TABLE)
		ap_hpack_set_limit(&h->in.hpack, AP_HPACK_DEFAULT_TABLE);
}

int pl_h2_write(struct pl_h2 *h, const uint8_t *p, size_t n)
{
	for (;;) {
		enum ap_h2_ev ev;
		size_t used = ap_h2_feed(&h->out, p, n, &ev);
		p += used;
		n -= used;
		struct pl_h2_stream *st;
		switch (ev) {
		case AP_H2_NEED_MORE:
			return 0;
		case AP_H2_FRAME:
			if (PL_UNLIKELY(!h->out_started))
				server_preface(h);
			st = stream_find(h, h->out.stream);
			if (st)
				st->r.bytes_out += h->out.frame_bytes;
			break;
		case AP_H2_HEADERS:
			st = stream_find(h, h->out.stream);
			if (st && st->r.status == 0 && h->out.hpack.status >= 200) {
				st->r.status = h->out.hpack.status; /* 1xx are interim */
				if (st->r.status >= 500 && h->err_sid == 0) {
					h->err_sid = st->sid;
					h->err_len = 0;
					h->out.data_stream = st->sid; /* its DATA, please */
				}
			}
			break;
		case AP_H2_DATA:
			/* the data just consumed: p[-value, 0) */
			if (h->out.stream == h->err_sid && h->err_len < sizeof h->err) {
				size_t take = sizeof h->err - h->err_len;
				if (take > h->out.value)
					take = h->out.value;
				memcpy(h->err + h->err_len, p - h->out.value, take);
				h->err_len = (uint16_t)(h->err_len + take);
			}
			break;
		case AP_H2_END_STREAM:
			st = stream_find(h, h->out.stream);
			if (st)
				stream_end(h, st, 0);
			break;
		case AP_H2_RESET:
			st = stream_find(h, h->out.stream);
			if (st)
				stream_end(h, st, AP_REQF_ABORTED);
			break;
		case AP_H2_TABLE_SIZE:
			ap_hpack_set_limit(&h->in.hpack, h->out.value);
			break;
		case AP_H2_ERROR:
			pl_debug("HTTP/2 from the server that cannot be followed");
			return -1;
		default: /* GOAWAY: the streams it gives up end with the connection */
			break;
		}
	}
}

void pl_h2_finish(struct pl_h2 *h, int shared)
{
	uint64_t now = 0;
	h->err_sid = h->out.data_stream = 0;
	for (unsigned i = 0; i < slots(h); i++) {
		struct pl_h2_stream *st = slot_at(h, i);
		if (!st->sid)
			continue;
		if (st->head && !shared) {
			if (now == 0)
				now = pl_now_ns();
			pl_request_end(&st->r, now, AP_REQF_ABORTED, NULL, 0);
		} else {
			stream_free(st);
		}
		st->sid = 0;
		st->head = 0;
	}
}

const struct pl_pending *pl_h2_pending(struct pl_h2 *h, uint64_t id)
{
	unsigned n = slots(h);
	if (n > PL_H2_INLINE + PL_H2_PER_BLOCK * PL_H2_BLOCKS)
		return NULL; /* read mid-change, unlocked */
	for (unsigned i = 0; i < n; i++) {
		const struct pl_h2_stream *st = slot_at(h, i);
		if (st->sid && st->head && st->r.id == id)
			return &st->r;
	}
	return NULL;
}

int pl_h2_in_flight(struct pl_h2 *h, uint64_t id)
{
	return pl_h2_pending(h, id) != NULL;
}
