/*
 * wire.c - encode and decode the preload -> collector protocol (ap_wire.h).
 *
 * Every integer goes through the put_/st_ and get_ helpers in little-endian
 * order, so the format does not depend on struct layout or host alignment.
 */
#include "config.h"
#include "ap_wire.h"
#include "ap_copy.h"

#include <errno.h>
#include <string.h>

/* A cursor over an output buffer; `bad` latches once anything did not fit,
 * so encoders write straight-line code and check once at the end. */
struct wout {
	uint8_t *p;
	size_t cap, off;
	int bad;
};

static void put_bytes(struct wout *w, const void *src, size_t n)
{
	if (w->bad || n > w->cap - w->off) {
		w->bad = 1;
		return;
	}
	if (n == 0)
		return; /* an empty ap_str may carry p == NULL: memcpy(.., NULL, 0) is UB */
	memcpy(w->p + w->off, src, n);
	w->off += n;
}

static void put_uint(struct wout *w, uint64_t v, unsigned nbytes)
{
	uint8_t b[8];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* The wire order is the host order here: one store instead of a loop
	 * (this runs for every field of every event inside the host). */
	memcpy(b, &v, 8);
#else
	for (unsigned i = 0; i < nbytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
#endif
	put_bytes(w, b, nbytes);
}

static void put_u16(struct wout *w, uint16_t v) { put_uint(w, v, 2); }
static void put_u32(struct wout *w, uint32_t v) { put_uint(w, v, 4); }
static void put_u64(struct wout *w, uint64_t v) { put_uint(w, v, 8); }

static void put_str(struct wout *w, struct ap_str s)
{
	put_u16(w, s.len);
	put_bytes(w, s.p, s.len);
}

/* Writes a record header with a length patched in by rec_end(). */
static size_t rec_begin(struct wout *w, uint16_t type)
{
	put_u16(w, type);
	put_u16(w, 0);
	size_t at = w->off;
	put_u32(w, 0);
	return at;
}

static size_t rec_end(struct wout *w, size_t len_at)
{
	if (w->bad)
		return 0;
	uint32_t plen = (uint32_t)(w->off - len_at - 4);
	for (unsigned i = 0; i < 4; i++)
		w->p[len_at + i] = (uint8_t)(plen >> (8 * i));
	return w->off;
}

size_t ap_wire_put_batch_hdr(uint8_t *out, size_t cap, const struct ap_batch_hdr *h)
{
	struct wout w = { out, cap, 0, 0 };
	put_u32(&w, AP_WIRE_MAGIC);
	uint8_t vr[2] = { AP_WIRE_VERSION, 0 };
	put_bytes(&w, vr, 2);
	put_u16(&w, AP_WIRE_BATCH_HDR);
	put_u32(&w, h->seq);
	put_u32(&w, h->pid);
	put_u64(&w, (uint64_t)h->wall_minus_mono_ns);
	return w.bad ? 0 : w.off;
}

size_t ap_wire_put_hello(uint8_t *out, size_t cap, const struct ap_rec_hello *r)
{
	struct wout w = { out, cap, 0, 0 };
	size_t at = rec_begin(&w, AP_REC_HELLO);
	put_u32(&w, r->pid);
	put_u32(&w, r->ppid);
	put_u64(&w, r->start_mono_ns);
	put_str(&w, r->service);
	put_str(&w, r->exe);
	return rec_end(&w, at);
}

/* Strings of a request record: exactly their bytes (the destination may be
 * the end of the caller's buffer). */
static inline uint8_t *st_str(uint8_t *q, struct ap_str s)
{
	q = ap_wire_st_(q, s.len, 2);
	ap_copy_exact(q, s.p, s.len); /* an empty ap_str may carry p == NULL */
	return q + s.len;
}

size_t ap_wire_put_request(uint8_t *out, size_t cap, const struct ap_rec_request *r)
{
	size_t size = ap_wire_request_size(r);
	if (size > cap)
		return 0;
	uint8_t *q = ap_wire_request_fixed_(out, size, r);
	q = st_str(q, r->method);
	q = st_str(q, r->path);
	q = st_str(q, r->message);
	return (size_t)(q - out);
}

size_t ap_wire_sql_size(const struct ap_rec_sql *r)
{
	return AP_WIRE_REC_HDR + 5 * 8 + 4 + 1 + 1 + 2 + r->error_code.len + 2 +
	       r->error_message.len + 2 + r->sql.len;
}

size_t ap_wire_put_sql(uint8_t *out, size_t cap, const struct ap_rec_sql *r)
{
	struct wout w = { out, cap, 0, 0 };
	size_t at = rec_begin(&w, AP_REC_SQL);
	put_u64(&w, r->req_id);
	put_u64(&w, r->start_ns);
	put_u64(&w, r->end_ns);
	put_u64(&w, r->rows);
	put_u64(&w, r->fingerprint);
	put_u32(&w, r->tid);
	uint8_t df[2] = { r->db, r->flags };
	put_bytes(&w, df, 2);
	put_str(&w, r->error_code);
	put_str(&w, r->error_message);
	put_str(&w, r->sql);
	return rec_end(&w, at);
}

size_t ap_wire_profile_size(const struct ap_rec_profile *r)
{
	return AP_WIRE_REC_HDR + 8 + 4 + 4 + 2 + 2 + r->method.len + 2 + r->path.len +
	       2 + r->stack.len;
}

size_t ap_wire_put_profile(uint8_t *out, size_t cap, const struct ap_rec_profile *r)
{
	struct wout w = { out, cap, 0, 0 };
	size_t at = rec_begin(&w, AP_REC_PROFILE);
	put_u64(&w, r->req_id);
	put_u32(&w, r->tid);
	put_u32(&w, r->count);
	put_u16(&w, r->flags);
	put_str(&w, r->method);
	put_str(&w, r->path);
	put_str(&w, r->stack);
	return rec_end(&w, at);
}

size_t ap_wire_inflight_size(const struct ap_rec_inflight *r)
{
	return AP_WIRE_REC_HDR + 4 * 8 + 2 + 2 + 2 + r->method.len + 2 + r->path.len;
}

size_t ap_wire_put_inflight(uint8_t *out, size_t cap, const struct ap_rec_inflight *r)
{
	struct wout w = { out, cap, 0, 0 };
	size_t at = rec_begin(&w, AP_REC_INFLIGHT);
	put_u64(&w, r->round_ns);
	put_u64(&w, r->req_id);
	put_u64(&w, r->start_ns);
	put_u64(&w, r->bytes_in);
	put_u16(&w, r->flags);
	put_u16(&w, r->req_flags);
	put_str(&w, r->method);
	put_str(&w, r->path);
	return rec_end(&w, at);
}

size_t ap_wire_put_stats(uint8_t *out, size_t cap, const struct ap_rec_stats *r)
{
	struct wout w = { out, cap, 0, 0 };
	size_t at = rec_begin(&w, AP_REC_STATS);
	put_u64(&w, r->events);
	put_u64(&w, r->dropped);
	put_u64(&w, r->untracked_conns);
	return rec_end(&w, at);
}

/* ---- decoding ---- */

struct win {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static uint64_t get_uint(struct win *r, unsigned nbytes)
{
	if (r->bad || nbytes > r->len - r->off) {
		r->bad = 1;
		return 0;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < nbytes; i++)
		v |= (uint64_t)r->p[r->off + i] << (8 * i);
	r->off += nbytes;
	return v;
}

static uint16_t get_u16(struct win *r) { return (uint16_t)get_uint(r, 2); }
static uint32_t get_u32(struct win *r) { return (uint32_t)get_uint(r, 4); }
static uint64_t get_u64(struct win *r) { return get_uint(r, 8); }

static struct ap_str get_str(struct win *r)
{
	struct ap_str s = { "", 0 };
	uint16_t n = get_u16(r);
	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return s;
	}
	s.p = (const char *)r->p + r->off;
	s.len = n;
	r->off += n;
	return s;
}

int ap_wire_get_batch_hdr(const uint8_t *buf, size_t len, struct ap_batch_hdr *h)
{
	struct win r = { buf, len, 0, 0 };
	uint32_t magic = get_u32(&r);
	if (r.bad)
		return -EBADMSG;
	if (magic != AP_WIRE_MAGIC)
		return -EPROTO;
	uint8_t version = (uint8_t)get_uint(&r, 1);
	(void)get_uint(&r, 1);
	uint16_t hlen = get_u16(&r);
	if (r.bad)
		return -EBADMSG;
	if (version != AP_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	h->seq = get_u32(&r);
	h->pid = get_u32(&r);
	h->wall_minus_mono_ns = (int64_t)get_u64(&r);
	if (r.bad || hlen < AP_WIRE_BATCH_HDR || hlen > len)
		return -EBADMSG;
	return hlen;
}

int ap_wire_next_rec(const uint8_t *buf, size_t len, size_t *off,
                     uint16_t *type, const uint8_t **payload, uint32_t *plen)
{
	if (*off >= len)
		return 0;
	struct win r = { buf, len, *off, 0 };
	uint16_t t = get_u16(&r);
	(void)get_u16(&r);
	uint32_t n = get_u32(&r);
	if (r.bad || n > len - r.off)
		return -EBADMSG;
	*type = t;
	*payload = buf + r.off;
	*plen = n;
	*off = r.off + n;
	return 1;
}

int ap_wire_get_hello(const uint8_t *p, uint32_t len, struct ap_rec_hello *h)
{
	struct win r = { p, len, 0, 0 };
	h->pid = get_u32(&r);
	h->ppid = get_u32(&r);
	h->start_mono_ns = get_u64(&r);
	h->service = get_str(&r);
	h->exe = get_str(&r);
	return r.bad ? -EBADMSG : 0;
}

int ap_wire_get_request(const uint8_t *p, uint32_t len, struct ap_rec_request *q)
{
	struct win r = { p, len, 0, 0 };
	q->req_id = get_u64(&r);
	q->start_ns = get_u64(&r);
	q->end_ns = get_u64(&r);
	q->bytes_in = get_u64(&r);
	q->bytes_out = get_u64(&r);
	q->tid = get_u32(&r);
	q->status = get_u16(&r);
	q->flags = get_u16(&r);
	q->method = get_str(&r);
	q->path = get_str(&r);
	/* Optional trailing fields: absent in older senders. */
	q->message = (struct ap_str){ "", 0 };
	if (!r.bad && r.off < r.len)
		q->message = get_str(&r);
	return r.bad ? -EBADMSG : 0;
}

int ap_wire_get_sql(const uint8_t *p, uint32_t len, struct ap_rec_sql *q)
{
	struct win r = { p, len, 0, 0 };
	q->req_id = get_u64(&r);
	q->start_ns = get_u64(&r);
	q->end_ns = get_u64(&r);
	q->rows = get_u64(&r);
	q->fingerprint = get_u64(&r);
	q->tid = get_u32(&r);
	q->db = (uint8_t)get_uint(&r, 1);
	q->flags = (uint8_t)get_uint(&r, 1);
	q->error_code = get_str(&r);
	q->error_message = get_str(&r);
	q->sql = get_str(&r);
	return r.bad ? -EBADMSG : 0;
}

int ap_wire_get_stats(const uint8_t *p, uint32_t len, struct ap_rec_stats *s)
{
	struct win r = { p, len, 0, 0 };
	s->events = get_u64(&r);
	s->dropped = get_u64(&r);
	s->untracked_conns = get_u64(&r);
	return r.bad ? -EBADMSG : 0;
}

int ap_wire_get_profile(const uint8_t *p, uint32_t len, struct ap_rec_profile *q)
{
	struct win r = { p, len, 0, 0 };
	q->req_id = get_u64(&r);
	q->tid = get_u32(&r);
	q->count = get_u32(&r);
	q->flags = get_u16(&r);
	q->method = get_str(&r);
	q->path = get_str(&r);
	q->stack = get_str(&r);
	return r.bad ? -EBADMSG : 0;
}

int ap_wire_get_inflight(const uint8_t *p, uint32_t len, struct ap_rec_inflight *q)
{
	struct win r = { p, len, 0, 0 };
	q->round_ns = get_u64(&r);
	q->req_id = get_u64(&r);
	q->start_ns = get_u64(&r);
	q->bytes_in = get_u64(&r);
	q->flags = get_u16(&r);
	q->req_flags = get_u16(&r);
	q->method = get_str(&r);
	q->path = get_str(&r);
	return r.bad ? -EBADMSG : 0;
}
