/* Unit tests for shared/wire.c: the preload -> collector protocol. The golden
 * arrays below are the format written out by hand from ap_wire.h; if one of
 * them has to change, the protocol changed and AP_WIRE_VERSION with it. */
#include "config.h"
#include "ap_wire.h"
#include "check_suites.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STR(s) ((struct ap_str){ (s), (uint16_t)(sizeof(s) - 1) })

/* ---- the golden records ---- */

static const struct ap_batch_hdr g_hdr = {
	.seq = 0x01020304u,
	.pid = 0x0A0B0C0Du,
	.wall_minus_mono_ns = -2,
};
static const uint8_t g_hdr_bytes[AP_WIRE_BATCH_HDR] = {
	0x41, 0x50, 0x52, 0x46,                         /* magic "APRF" */
	0x01,                                           /* version */
	0x00,                                           /* reserved */
	0x18, 0x00,                                     /* header length 24 */
	0x04, 0x03, 0x02, 0x01,                         /* seq */
	0x0D, 0x0C, 0x0B, 0x0A,                         /* pid */
	0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* -2 */
};

static const struct ap_rec_hello g_hello = {
	.pid = 0x1234,
	.ppid = 1,
	.start_mono_ns = 0x0102030405060708ull,
	.service = STR("api"),
	.exe = STR("/bin/x"),
};
static const uint8_t g_hello_bytes[] = {
	0x01, 0x00, 0x00, 0x00,                         /* type HELLO, reserved */
	0x1D, 0x00, 0x00, 0x00,                         /* payload length 29 */
	0x34, 0x12, 0x00, 0x00,                         /* pid */
	0x01, 0x00, 0x00, 0x00,                         /* ppid */
	0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* start_mono_ns */
	0x03, 0x00, 'a', 'p', 'i',                      /* service */
	0x06, 0x00, '/', 'b', 'i', 'n', '/', 'x',       /* exe */
};

static const struct ap_rec_request g_req = {
	.req_id = 1,
	.start_ns = 0x100,
	.end_ns = 0x200,
	.bytes_in = 10,
	.bytes_out = 0x1122334455667788ull,
	.tid = 0x99,
	.status = 200,
	.flags = AP_REQF_ABORTED | AP_REQF_PROFILE,
	.method = STR("GET"),
	.path = STR("/a/1"),
	.message = STR("x"),
};
static const uint8_t g_req_bytes[] = {
	0x02, 0x00, 0x00, 0x00,                         /* type REQUEST, reserved */
	0x3E, 0x00, 0x00, 0x00,                         /* payload length 62 */
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* req_id */
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* start_ns */
	0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* end_ns */
	0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* bytes_in */
	0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* bytes_out */
	0x99, 0x00, 0x00, 0x00,                         /* tid */
	0xC8, 0x00,                                     /* status 200 */
	0x05, 0x00,                                     /* flags */
	0x03, 0x00, 'G', 'E', 'T',                      /* method */
	0x04, 0x00, '/', 'a', '/', '1',                 /* path */
	0x01, 0x00, 'x',                                /* message (appended) */
};

static const struct ap_rec_stats g_stats = {
	.events = 7,
	.dropped = 0x100,
	.untracked_conns = 0xFFFFFFFFFFFFFFFFull,
};
static const uint8_t g_stats_bytes[] = {
	0x03, 0x00, 0x00, 0x00,                         /* type STATS, reserved */
	0x18, 0x00, 0x00, 0x00,                         /* payload length 24 */
	0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* events */
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* dropped */
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* untracked_conns */
};

static void assert_bytes(const uint8_t *got, size_t n, const uint8_t *want, size_t wn)
{
	ck_assert_uint_eq(n, wn);
	/* one assertion, at the first difference: in Check's fork mode every
	 * assertion is a write to a pipe, and test_request_padded compares
	 * 8,160 records (a per-byte assertion took 4 s of system time) */
	size_t i = 0;
	while (i < n && got[i] == want[i])
		i++;
	ck_assert_msg(i == n, "byte %zu: 0x%02x, expected 0x%02x", i, i < n ? got[i] : 0,
	              i < n ? want[i] : 0);
}

static void assert_str(struct ap_str got, struct ap_str want)
{
	ck_assert_uint_eq(got.len, want.len);
	if (want.len)
		ck_assert_int_eq(memcmp(got.p, want.p, want.len), 0);
}

static void assert_hello_eq(const struct ap_rec_hello *a, const struct ap_rec_hello *b)
{
	ck_assert_uint_eq(a->pid, b->pid);
	ck_assert_uint_eq(a->ppid, b->ppid);
	ck_assert_uint_eq(a->start_mono_ns, b->start_mono_ns);
	assert_str(a->service, b->service);
	assert_str(a->exe, b->exe);
}

static void assert_req_eq(const struct ap_rec_request *a, const struct ap_rec_request *b)
{
	ck_assert_uint_eq(a->req_id, b->req_id);
	ck_assert_uint_eq(a->start_ns, b->start_ns);
	ck_assert_uint_eq(a->end_ns, b->end_ns);
	ck_assert_uint_eq(a->bytes_in, b->bytes_in);
	ck_assert_uint_eq(a->bytes_out, b->bytes_out);
	ck_assert_uint_eq(a->tid, b->tid);
	ck_assert_uint_eq(a->status, b->status);
	ck_assert_uint_eq(a->flags, b->flags);
	assert_str(a->method, b->method);
	assert_str(a->path, b->path);
	assert_str(a->message, b->message);
}

static const struct ap_rec_sql g_sql = {
	.req_id = 3,
	.start_ns = 0x10,
	.end_ns = 0x20,
	.rows = 2,
	.fingerprint = 0x0102030405060708ull,
	.tid = 0x99,
	.db = AP_DB_POSTGRES,
	.flags = AP_SQLF_ERROR,
	.error_code = STR("42P01"),
	.error_message = STR("m"),
	.sql = STR("SELECT ?"),
};
static const uint8_t g_sql_bytes[] = {
	0x04, 0x00, 0x00, 0x00,                         /* type SQL, reserved */
	0x42, 0x00, 0x00, 0x00,                         /* payload length 66 */
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* req_id */
	0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* start_ns */
	0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* end_ns */
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* rows */
	0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* fingerprint */
	0x99, 0x00, 0x00, 0x00,                         /* tid */
	0x01, 0x01,                                     /* db, flags */
	0x05, 0x00, '4', '2', 'P', '0', '1',            /* error_code */
	0x01, 0x00, 'm',                                /* error_message */
	0x08, 0x00, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '?', /* sql */
};

START_TEST(test_golden_sql)
{
	uint8_t b[128];
	size_t n = ap_wire_put_sql(b, sizeof b, &g_sql);
	assert_bytes(b, n, g_sql_bytes, sizeof g_sql_bytes);
	ck_assert_uint_eq(ap_wire_sql_size(&g_sql), sizeof g_sql_bytes);
	struct ap_rec_sql q;
	ck_assert_int_eq(ap_wire_get_sql(b + AP_WIRE_REC_HDR, (uint32_t)(n - AP_WIRE_REC_HDR), &q), 0);
	ck_assert_uint_eq(q.req_id, g_sql.req_id);
	ck_assert_uint_eq(q.fingerprint, g_sql.fingerprint);
	ck_assert_uint_eq(q.db, g_sql.db);
	ck_assert_uint_eq(q.flags, g_sql.flags);
	assert_str(q.error_code, g_sql.error_code);
	assert_str(q.error_message, g_sql.error_message);
	assert_str(q.sql, g_sql.sql);
	/* Every truncation is rejected, and every too-small buffer refused. */
	for (size_t len = 0; len < n - AP_WIRE_REC_HDR; len++)
		ck_assert_int_eq(ap_wire_get_sql(b + AP_WIRE_REC_HDR, (uint32_t)len, &q), -EBADMSG);
	for (size_t cap = 0; cap < n; cap++)
		ck_assert_uint_eq(ap_wire_put_sql(b, cap, &g_sql), 0);
}
END_TEST

static const struct ap_rec_inflight g_infl = {
	.round_ns = 0x0A0B,
	.req_id = 0x1122334455667788ull,
	.start_ns = 0x0900,
	.bytes_in = 77,
	.flags = 0,
	.req_flags = AP_REQF_QUERY_KEPT,
	.method = STR("GET"),
	.path = STR("/hang"),
};
static const uint8_t g_infl_bytes[] = {
	0x08, 0x00, 0x00, 0x00,                         /* type INFLIGHT, reserved */
	0x30, 0x00, 0x00, 0x00,                         /* payload length 48 */
	0x0B, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* round_ns */
	0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* req_id */
	0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* start_ns */
	0x4D, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* bytes_in */
	0x00, 0x00,                                     /* flags */
	0x08, 0x00,                                     /* req_flags: QUERY_KEPT */
	0x03, 0x00, 'G', 'E', 'T',                      /* method */
	0x05, 0x00, '/', 'h', 'a', 'n', 'g',            /* path */
};

static uint8_t *exact(const uint8_t *p, size_t n);

/* The in-flight announcement (AP_REC_INFLIGHT): its bytes, its size, its
 * round trip, and every truncation rejected; the FINAL marker's flag. */
START_TEST(test_golden_inflight)
{
	uint8_t b[128];
	size_t n = ap_wire_put_inflight(b, sizeof b, &g_infl);
	assert_bytes(b, n, g_infl_bytes, sizeof g_infl_bytes);
	ck_assert_uint_eq(ap_wire_inflight_size(&g_infl), sizeof g_infl_bytes);
	struct ap_rec_inflight q;
	ck_assert_int_eq(ap_wire_get_inflight(b + AP_WIRE_REC_HDR, (uint32_t)(n - AP_WIRE_REC_HDR),
	                                      &q), 0);
	ck_assert_uint_eq(q.round_ns, g_infl.round_ns);
	ck_assert_uint_eq(q.req_id, g_infl.req_id);
	ck_assert_uint_eq(q.start_ns, g_infl.start_ns);
	ck_assert_uint_eq(q.bytes_in, g_infl.bytes_in);
	ck_assert_uint_eq(q.flags, g_infl.flags);
	ck_assert_uint_eq(q.req_flags, g_infl.req_flags);
	assert_str(q.method, g_infl.method);
	assert_str(q.path, g_infl.path);
	for (uint32_t len = 0; len < n - AP_WIRE_REC_HDR; len++) {
		uint8_t *c = exact(b + AP_WIRE_REC_HDR, len);
		ck_assert_msg(ap_wire_get_inflight(c, len, &q) == -EBADMSG, "inflight prefix %u", len);
		free(c);
	}
	for (size_t cap = 0; cap < n; cap++)
		ck_assert_uint_eq(ap_wire_put_inflight(b, cap, &g_infl), 0);
	/* A string running past the payload. */
	memcpy(b, g_infl_bytes, sizeof g_infl_bytes);
	b[sizeof g_infl_bytes - 6] = 6; /* path length 6, 5 bytes there */
	ck_assert_int_eq(ap_wire_get_inflight(b + AP_WIRE_REC_HDR,
	                                      (uint32_t)(sizeof g_infl_bytes - AP_WIRE_REC_HDR), &q),
	                 -EBADMSG);
	/* The FINAL marker: no request, no strings. */
	struct ap_rec_inflight fin = { .round_ns = 5, .flags = AP_INFLF_FINAL };
	n = ap_wire_put_inflight(b, sizeof b, &fin);
	ck_assert_uint_eq(n, AP_WIRE_REC_HDR + 40);
	ck_assert_uint_eq(b[AP_WIRE_REC_HDR + 32], 1);
	ck_assert_int_eq(ap_wire_get_inflight(b + AP_WIRE_REC_HDR, (uint32_t)(n - AP_WIRE_REC_HDR),
	                                      &q), 0);
	ck_assert_uint_eq(q.req_id, 0);
	ck_assert_uint_eq(q.flags, AP_INFLF_FINAL);
}
END_TEST

static void assert_stats_eq(const struct ap_rec_stats *a, const struct ap_rec_stats *b)
{
	ck_assert_uint_eq(a->events, b->events);
	ck_assert_uint_eq(a->dropped, b->dropped);
	ck_assert_uint_eq(a->untracked_conns, b->untracked_conns);
}

/* A heap copy of exactly n bytes, so ASan reports any read past it. */
static uint8_t *exact(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* ---- golden bytes ---- */

START_TEST(test_golden_batch_hdr)
{
	uint8_t buf[64];
	size_t n = ap_wire_put_batch_hdr(buf, sizeof(buf), &g_hdr);
	assert_bytes(buf, n, g_hdr_bytes, sizeof(g_hdr_bytes));

	struct ap_batch_hdr h;
	ck_assert_int_eq(ap_wire_get_batch_hdr(g_hdr_bytes, sizeof(g_hdr_bytes), &h),
	                 AP_WIRE_BATCH_HDR);
	ck_assert_uint_eq(h.seq, g_hdr.seq);
	ck_assert_uint_eq(h.pid, g_hdr.pid);
	ck_assert_int_eq(h.wall_minus_mono_ns, -2);
}
END_TEST

START_TEST(test_golden_hello)
{
	uint8_t buf[128];
	size_t n = ap_wire_put_hello(buf, sizeof(buf), &g_hello);
	assert_bytes(buf, n, g_hello_bytes, sizeof(g_hello_bytes));
}
END_TEST

START_TEST(test_golden_request)
{
	uint8_t buf[128];
	size_t n = ap_wire_put_request(buf, sizeof(buf), &g_req);
	assert_bytes(buf, n, g_req_bytes, sizeof(g_req_bytes));
	ck_assert_uint_eq(ap_wire_request_size(&g_req), sizeof(g_req_bytes));
}
END_TEST

START_TEST(test_golden_stats)
{
	uint8_t buf[128];
	size_t n = ap_wire_put_stats(buf, sizeof(buf), &g_stats);
	assert_bytes(buf, n, g_stats_bytes, sizeof(g_stats_bytes));
}
END_TEST

/* ---- round trips ---- */

/* Decodes one golden record through ap_wire_next_rec. */
static void golden_rec(const uint8_t *bytes, size_t n, uint16_t want_type,
                       const uint8_t **payload, uint32_t *plen)
{
	size_t off = 0;
	uint16_t type = 0;
	ck_assert_int_eq(ap_wire_next_rec(bytes, n, &off, &type, payload, plen), 1);
	ck_assert_uint_eq(type, want_type);
	ck_assert_uint_eq(*plen, n - AP_WIRE_REC_HDR);
	ck_assert_ptr_eq(*payload, bytes + AP_WIRE_REC_HDR);
	ck_assert_uint_eq(off, n);
	ck_assert_int_eq(ap_wire_next_rec(bytes, n, &off, &type, payload, plen), 0);
}

START_TEST(test_decode_golden)
{
	const uint8_t *p;
	uint32_t plen;
	struct ap_rec_hello h;
	golden_rec(g_hello_bytes, sizeof(g_hello_bytes), AP_REC_HELLO, &p, &plen);
	ck_assert_int_eq(ap_wire_get_hello(p, plen, &h), 0);
	assert_hello_eq(&h, &g_hello);
	/* Strings point into the decoded buffer. */
	ck_assert_ptr_eq(h.service.p, (const char *)g_hello_bytes + 26);

	struct ap_rec_request q;
	golden_rec(g_req_bytes, sizeof(g_req_bytes), AP_REC_REQUEST, &p, &plen);
	ck_assert_int_eq(ap_wire_get_request(p, plen, &q), 0);
	assert_req_eq(&q, &g_req);

	struct ap_rec_stats s;
	golden_rec(g_stats_bytes, sizeof(g_stats_bytes), AP_REC_STATS, &p, &plen);
	ck_assert_int_eq(ap_wire_get_stats(p, plen, &s), 0);
	assert_stats_eq(&s, &g_stats);
}
END_TEST

/* A whole datagram: header, every record type, an unknown one. */
static size_t build_datagram(uint8_t *buf, size_t cap, size_t *bounds, size_t *nb)
{
	size_t off = ap_wire_put_batch_hdr(buf, cap, &g_hdr);
	*nb = 0;
	bounds[(*nb)++] = off;
	off += ap_wire_put_hello(buf + off, cap - off, &g_hello);
	bounds[(*nb)++] = off;
	off += ap_wire_put_request(buf + off, cap - off, &g_req);
	bounds[(*nb)++] = off;
	/* A record type from the future, skipped by length. */
	static const uint8_t unknown[] = { 0x63, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
	                                   'f', 'u', 't', 'u', 'r' };
	memcpy(buf + off, unknown, sizeof(unknown));
	off += sizeof(unknown);
	bounds[(*nb)++] = off;
	/* An all-zero request: empty strings with NULL pointers must encode
	 * (memcpy from NULL, even of 0 bytes, is undefined: UBSan catches it). */
	struct ap_rec_request empty = { .status = 0, .method = { NULL, 0 }, .path = { NULL, 0 } };
	off += ap_wire_put_request(buf + off, cap - off, &empty);
	bounds[(*nb)++] = off;
	off += ap_wire_put_stats(buf + off, cap - off, &g_stats);
	bounds[(*nb)++] = off;
	return off;
}

START_TEST(test_round_trip_datagram)
{
	uint8_t buf[512];
	size_t bounds[8], nb;
	size_t len = build_datagram(buf, sizeof(buf), bounds, &nb);
	ck_assert_uint_eq(len, AP_WIRE_BATCH_HDR + sizeof(g_hello_bytes) + sizeof(g_req_bytes) +
	                       13 + 8 + 40 + 4 + 2 + 2 + 2 + 2 + 2 + sizeof(g_stats_bytes));

	struct ap_batch_hdr h;
	int rc = ap_wire_get_batch_hdr(buf, len, &h);
	ck_assert_int_eq(rc, AP_WIRE_BATCH_HDR);
	size_t off = (size_t)rc;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	static const uint16_t want[] = { AP_REC_HELLO, AP_REC_REQUEST, 99, AP_REC_REQUEST,
	                                 AP_REC_STATS };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(ap_wire_next_rec(buf, len, &off, &type, &p, &plen), 1);
		ck_assert_uint_eq(type, want[i]);
		ck_assert_uint_eq(off, bounds[i + 1]);
		if (type == AP_REC_HELLO) {
			struct ap_rec_hello r;
			ck_assert_int_eq(ap_wire_get_hello(p, plen, &r), 0);
			assert_hello_eq(&r, &g_hello);
		} else if (type == AP_REC_REQUEST && i == 1) {
			struct ap_rec_request r;
			ck_assert_int_eq(ap_wire_get_request(p, plen, &r), 0);
			assert_req_eq(&r, &g_req);
		} else if (type == AP_REC_REQUEST) {
			struct ap_rec_request r;
			ck_assert_int_eq(ap_wire_get_request(p, plen, &r), 0);
			ck_assert_uint_eq(r.method.len, 0);
			ck_assert_uint_eq(r.path.len, 0);
		} else if (type == AP_REC_STATS) {
			struct ap_rec_stats r;
			ck_assert_int_eq(ap_wire_get_stats(p, plen, &r), 0);
			assert_stats_eq(&r, &g_stats);
		} else {
			ck_assert_uint_eq(plen, 5);
			ck_assert_int_eq(memcmp(p, "futur", 5), 0);
		}
	}
	ck_assert_int_eq(ap_wire_next_rec(buf, len, &off, &type, &p, &plen), 0);
	/* An offset past the end is the end too. */
	off = len + 100;
	ck_assert_int_eq(ap_wire_next_rec(buf, len, &off, &type, &p, &plen), 0);
}
END_TEST

START_TEST(test_round_trip_extremes)
{
	/* Longest strings, all-ones integers. */
	static char big[65535];
	memset(big, 'x', sizeof(big));
	struct ap_rec_request r = {
		.req_id = UINT64_MAX, .start_ns = UINT64_MAX, .end_ns = UINT64_MAX,
		.bytes_in = UINT64_MAX, .bytes_out = UINT64_MAX, .tid = UINT32_MAX,
		.status = UINT16_MAX, .flags = UINT16_MAX,
		.method = { big, 65535 }, .path = { big, 65535 },
	};
	size_t need = ap_wire_request_size(&r);
	uint8_t *buf = malloc(need);
	ck_assert_uint_eq(ap_wire_put_request(buf, need, &r), need);
	struct ap_rec_request d;
	ck_assert_int_eq(ap_wire_get_request(buf + AP_WIRE_REC_HDR,
	                                     (uint32_t)(need - AP_WIRE_REC_HDR), &d), 0);
	assert_req_eq(&d, &r);
	free(buf);

	struct ap_batch_hdr h = { UINT32_MAX, UINT32_MAX, INT64_MIN }, hd;
	uint8_t hb[AP_WIRE_BATCH_HDR];
	ck_assert_uint_eq(ap_wire_put_batch_hdr(hb, sizeof(hb), &h), sizeof(hb));
	ck_assert_int_eq(ap_wire_get_batch_hdr(hb, sizeof(hb), &hd), AP_WIRE_BATCH_HDR);
	ck_assert_uint_eq(hd.seq, UINT32_MAX);
	ck_assert(hd.wall_minus_mono_ns == INT64_MIN);
}
END_TEST

/* ---- truncation ---- */

START_TEST(test_truncated_payloads)
{
	/* Every strict prefix of every payload is rejected, and never read past
	 * (the copies are exactly as long as the prefix). */
	const uint8_t *hp = g_hello_bytes + AP_WIRE_REC_HDR;
	for (uint32_t n = 0; n < sizeof(g_hello_bytes) - AP_WIRE_REC_HDR; n++) {
		uint8_t *c = exact(hp, n);
		struct ap_rec_hello r;
		ck_assert_msg(ap_wire_get_hello(c, n, &r) == -EBADMSG, "hello prefix %u", n);
		free(c);
	}
	const uint8_t *qp = g_req_bytes + AP_WIRE_REC_HDR;
	/* The one valid prefix is the record without its appended message
	 * (what a sender of the first format writes). */
	const uint32_t v10_len = sizeof(g_req_bytes) - AP_WIRE_REC_HDR - 3;
	for (uint32_t n = 0; n < sizeof(g_req_bytes) - AP_WIRE_REC_HDR; n++) {
		uint8_t *c = exact(qp, n);
		struct ap_rec_request r;
		ck_assert_msg(ap_wire_get_request(c, n, &r) == (n == v10_len ? 0 : -EBADMSG),
		              "request prefix %u", n);
		free(c);
	}
	const uint8_t *sp = g_stats_bytes + AP_WIRE_REC_HDR;
	for (uint32_t n = 0; n < sizeof(g_stats_bytes) - AP_WIRE_REC_HDR; n++) {
		uint8_t *c = exact(sp, n);
		struct ap_rec_stats r;
		ck_assert_msg(ap_wire_get_stats(c, n, &r) == -EBADMSG, "stats prefix %u", n);
		free(c);
	}
}
END_TEST

START_TEST(test_truncated_batch_hdr)
{
	for (size_t n = 0; n < AP_WIRE_BATCH_HDR; n++) {
		uint8_t *c = exact(g_hdr_bytes, n);
		struct ap_batch_hdr h;
		ck_assert_msg(ap_wire_get_batch_hdr(c, n, &h) == -EBADMSG, "header prefix %zu", n);
		free(c);
	}
}
END_TEST

/* Walks a whole datagram the way the collector does; returns the number of
 * records decoded, or a negative errno at the first error. */
static int walk(const uint8_t *buf, size_t len)
{
	struct ap_batch_hdr h;
	int rc = ap_wire_get_batch_hdr(buf, len, &h);
	if (rc < 0)
		return rc;
	size_t off = (size_t)rc;
	int count = 0;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	while ((rc = ap_wire_next_rec(buf, len, &off, &type, &p, &plen)) == 1) {
		union {
			struct ap_rec_hello h;
			struct ap_rec_request q;
			struct ap_rec_stats s;
		} u;
		int drc = 0;
		if (type == AP_REC_HELLO)
			drc = ap_wire_get_hello(p, plen, &u.h);
		else if (type == AP_REC_REQUEST)
			drc = ap_wire_get_request(p, plen, &u.q);
		else if (type == AP_REC_STATS)
			drc = ap_wire_get_stats(p, plen, &u.s);
		if (drc != 0)
			return drc;
		count++;
	}
	return rc < 0 ? rc : count;
}

START_TEST(test_truncated_datagram)
{
	uint8_t buf[512];
	size_t bounds[8], nb;
	size_t len = build_datagram(buf, sizeof(buf), bounds, &nb);
	ck_assert_int_eq(walk(buf, len), 5);
	/* A datagram cut anywhere but a record boundary is an error; at a
	 * boundary it is a shorter, valid batch. Either way nothing past the
	 * cut is read. */
	for (size_t n = 0; n < len; n++) {
		uint8_t *c = exact(buf, n);
		int rc = walk(c, n);
		int boundary = -1;
		for (size_t i = 0; i < nb; i++)
			if (bounds[i] == n)
				boundary = (int)i;
		if (boundary >= 0)
			ck_assert_msg(rc == boundary, "cut at %zu: %d records, expected %d", n, rc,
			              boundary);
		else
			ck_assert_msg(rc == -EBADMSG, "cut at %zu gave %d", n, rc);
		free(c);
	}
}
END_TEST

/* ---- malformed input ---- */

START_TEST(test_bad_magic)
{
	uint8_t b[AP_WIRE_BATCH_HDR];
	struct ap_batch_hdr h;
	for (size_t i = 0; i < 4; i++) {
		memcpy(b, g_hdr_bytes, sizeof(b));
		b[i] ^= 0x20;
		ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EPROTO);
	}
	/* Byte-swapped magic (a big-endian sender) is not ours either. */
	static const uint8_t swapped[4] = { 0x46, 0x52, 0x50, 0x41 };
	memcpy(b, g_hdr_bytes, sizeof(b));
	memcpy(b, swapped, 4);
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EPROTO);
	/* Even when that is all there is. */
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, 4, &h), -EPROTO);
}
END_TEST

START_TEST(test_unknown_version)
{
	uint8_t b[AP_WIRE_BATCH_HDR];
	struct ap_batch_hdr h;
	static const uint8_t versions[] = { 0, 2, 0xFF };
	for (size_t i = 0; i < sizeof(versions); i++) {
		memcpy(b, g_hdr_bytes, sizeof(b));
		b[4] = versions[i];
		ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EPROTONOSUPPORT);
	}
}
END_TEST

START_TEST(test_header_length)
{
	uint8_t b[AP_WIRE_BATCH_HDR + 4 + sizeof(g_stats_bytes)];
	struct ap_batch_hdr h;
	/* A newer sender's longer header: the extra bytes are skipped. */
	memcpy(b, g_hdr_bytes, AP_WIRE_BATCH_HDR);
	b[6] = AP_WIRE_BATCH_HDR + 4;
	memset(b + AP_WIRE_BATCH_HDR, 0xEE, 4);
	memcpy(b + AP_WIRE_BATCH_HDR + 4, g_stats_bytes, sizeof(g_stats_bytes));
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), AP_WIRE_BATCH_HDR + 4);
	ck_assert_int_eq(walk(b, sizeof(b)), 1);
	/* Shorter than version 1's header, or longer than the datagram. */
	b[6] = AP_WIRE_BATCH_HDR - 1;
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EBADMSG);
	b[6] = 0;
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EBADMSG);
	b[6] = (uint8_t)(sizeof(b) + 1);
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EBADMSG);
	b[6] = 0xFF;
	b[7] = 0xFF;
	ck_assert_int_eq(ap_wire_get_batch_hdr(b, sizeof(b), &h), -EBADMSG);
}
END_TEST

START_TEST(test_record_length_past_end)
{
	uint8_t b[sizeof(g_stats_bytes)];
	size_t off;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	static const uint32_t lens[] = { 25, 0x7FFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFF8u };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memcpy(b, g_stats_bytes, sizeof(b));
		for (int k = 0; k < 4; k++)
			b[4 + k] = (uint8_t)(lens[i] >> (8 * k));
		off = 0;
		ck_assert_int_eq(ap_wire_next_rec(b, sizeof(b), &off, &type, &p, &plen), -EBADMSG);
		ck_assert_uint_eq(off, 0); /* not advanced */
	}
	/* A zero-length record is fine (and its payload too short for STATS). */
	memcpy(b, g_stats_bytes, sizeof(b));
	memset(b + 4, 0, 4);
	off = 0;
	ck_assert_int_eq(ap_wire_next_rec(b, AP_WIRE_REC_HDR, &off, &type, &p, &plen), 1);
	ck_assert_uint_eq(plen, 0);
	struct ap_rec_stats s;
	ck_assert_int_eq(ap_wire_get_stats(p, plen, &s), -EBADMSG);
}
END_TEST

START_TEST(test_unknown_types_skipped)
{
	/* Header, then types 0, 4 and 0xFFFF with odd payloads, then STATS. */
	uint8_t b[256];
	size_t len = ap_wire_put_batch_hdr(b, sizeof(b), &g_hdr);
	static const uint8_t r0[] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
	static const uint8_t r4[] = { 0x04, 0x00, 0xAB, 0xCD, 0x03, 0x00, 0x00, 0x00, 1, 2, 3 };
	static const uint8_t rf[] = { 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02 };
	memcpy(b + len, r0, sizeof(r0));
	len += sizeof(r0);
	memcpy(b + len, r4, sizeof(r4));
	len += sizeof(r4);
	memcpy(b + len, rf, sizeof(rf));
	len += sizeof(rf);
	memcpy(b + len, g_stats_bytes, sizeof(g_stats_bytes));
	len += sizeof(g_stats_bytes);

	size_t off = AP_WIRE_BATCH_HDR;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	static const uint16_t want[] = { 0, 4, 0xFFFF, AP_REC_STATS };
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(ap_wire_next_rec(b, len, &off, &type, &p, &plen), 1);
		ck_assert_uint_eq(type, want[i]);
	}
	struct ap_rec_stats s;
	ck_assert_int_eq(ap_wire_get_stats(p, plen, &s), 0);
	assert_stats_eq(&s, &g_stats);
	ck_assert_int_eq(ap_wire_next_rec(b, len, &off, &type, &p, &plen), 0);
}
END_TEST

START_TEST(test_trailing_payload_accepted)
{
	/* A newer sender appends fields: the known prefix decodes the same. */
	uint8_t b[256];
	static const uint8_t extra[] = { 0xDE, 0xAD, 0xBE };

	memcpy(b, g_req_bytes + AP_WIRE_REC_HDR, sizeof(g_req_bytes) - AP_WIRE_REC_HDR);
	memcpy(b + sizeof(g_req_bytes) - AP_WIRE_REC_HDR, extra, sizeof(extra));
	struct ap_rec_request q;
	ck_assert_int_eq(ap_wire_get_request(b, sizeof(g_req_bytes) - AP_WIRE_REC_HDR + 3, &q), 0);
	assert_req_eq(&q, &g_req);

	/* An older sender without the appended message: it decodes as empty. */
	ck_assert_int_eq(ap_wire_get_request(b, sizeof(g_req_bytes) - AP_WIRE_REC_HDR - 3, &q), 0);
	ck_assert_uint_eq(q.message.len, 0);
	ck_assert_uint_eq(q.status, g_req.status);

	memcpy(b, g_hello_bytes + AP_WIRE_REC_HDR, sizeof(g_hello_bytes) - AP_WIRE_REC_HDR);
	memcpy(b + sizeof(g_hello_bytes) - AP_WIRE_REC_HDR, extra, sizeof(extra));
	struct ap_rec_hello h;
	ck_assert_int_eq(ap_wire_get_hello(b, sizeof(g_hello_bytes) - AP_WIRE_REC_HDR + 3, &h), 0);
	assert_hello_eq(&h, &g_hello);

	memcpy(b, g_stats_bytes + AP_WIRE_REC_HDR, sizeof(g_stats_bytes) - AP_WIRE_REC_HDR);
	memcpy(b + sizeof(g_stats_bytes) - AP_WIRE_REC_HDR, extra, sizeof(extra));
	struct ap_rec_stats s;
	ck_assert_int_eq(ap_wire_get_stats(b, sizeof(g_stats_bytes) - AP_WIRE_REC_HDR + 3, &s), 0);
	assert_stats_eq(&s, &g_stats);

	/* And through the record iterator, with the length patched. */
	uint8_t rec[sizeof(g_stats_bytes) + 3];
	memcpy(rec, g_stats_bytes, sizeof(g_stats_bytes));
	memcpy(rec + sizeof(g_stats_bytes), extra, 3);
	rec[4] = 0x18 + 3;
	size_t off = 0;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	ck_assert_int_eq(ap_wire_next_rec(rec, sizeof(rec), &off, &type, &p, &plen), 1);
	ck_assert_uint_eq(plen, 27);
	ck_assert_int_eq(ap_wire_get_stats(p, plen, &s), 0);
	assert_stats_eq(&s, &g_stats);
}
END_TEST

START_TEST(test_string_past_payload)
{
	struct ap_rec_request q;
	struct ap_rec_hello h;
	const uint32_t qn = sizeof(g_req_bytes) - AP_WIRE_REC_HDR;
	const uint32_t hn = sizeof(g_hello_bytes) - AP_WIRE_REC_HDR;
	uint8_t *b;

	/* message claims 2 bytes where 1 remains */
	b = exact(g_req_bytes + AP_WIRE_REC_HDR, qn);
	b[qn - 3] = 2;
	ck_assert_int_eq(ap_wire_get_request(b, qn, &q), -EBADMSG);
	b[qn - 3] = 0xFF;
	b[qn - 2] = 0xFF;
	ck_assert_int_eq(ap_wire_get_request(b, qn, &q), -EBADMSG);
	/* method claims more than the rest of the payload */
	b[qn - 3] = 1;
	b[qn - 2] = 0;
	b[qn - 14] = 14;
	ck_assert_int_eq(ap_wire_get_request(b, qn, &q), -EBADMSG);
	free(b);

	/* hello: service and exe */
	b = exact(g_hello_bytes + AP_WIRE_REC_HDR, hn);
	b[16] = 0xFF;
	ck_assert_int_eq(ap_wire_get_hello(b, hn, &h), -EBADMSG);
	b[16] = 3;
	b[hn - 8] = 7;
	ck_assert_int_eq(ap_wire_get_hello(b, hn, &h), -EBADMSG);
	b[hn - 8] = 6;
	ck_assert_int_eq(ap_wire_get_hello(b, hn, &h), 0);
	free(b);
}
END_TEST

/* ---- encoders and small buffers ---- */

START_TEST(test_encoders_small_cap)
{
	uint8_t full[128];
	size_t need;

	need = ap_wire_put_batch_hdr(full, sizeof(full), &g_hdr);
	ck_assert_uint_eq(need, AP_WIRE_BATCH_HDR);
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1); /* ASan: no write past cap */
		ck_assert_uint_eq(ap_wire_put_batch_hdr(b, cap, &g_hdr), 0);
		free(b);
	}

	need = ap_wire_put_hello(full, sizeof(full), &g_hello);
	ck_assert_uint_eq(need, sizeof(g_hello_bytes));
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1);
		ck_assert_uint_eq(ap_wire_put_hello(b, cap, &g_hello), 0);
		free(b);
	}

	need = ap_wire_put_request(full, sizeof(full), &g_req);
	ck_assert_uint_eq(need, ap_wire_request_size(&g_req));
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1);
		ck_assert_uint_eq(ap_wire_put_request(b, cap, &g_req), 0);
		free(b);
	}

	need = ap_wire_put_stats(full, sizeof(full), &g_stats);
	ck_assert_uint_eq(need, sizeof(g_stats_bytes));
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1);
		ck_assert_uint_eq(ap_wire_put_stats(b, cap, &g_stats), 0);
		free(b);
	}

	/* Exactly enough is enough. */
	uint8_t *b = malloc(sizeof(g_req_bytes));
	ck_assert_uint_eq(ap_wire_put_request(b, sizeof(g_req_bytes), &g_req), sizeof(g_req_bytes));
	assert_bytes(b, sizeof(g_req_bytes), g_req_bytes, sizeof(g_req_bytes));
	free(b);
}
END_TEST

START_TEST(test_request_size)
{
	struct ap_rec_request r = g_req;
	for (uint16_t m = 0; m < 40; m += 7)
		for (uint16_t pl = 0; pl < 600; pl += 97) {
			static char text[600];
			r.method = (struct ap_str){ text, m };
			r.path = (struct ap_str){ text, pl };
			uint8_t buf[1024];
			ck_assert_uint_eq(ap_wire_put_request(buf, sizeof(buf), &r),
			                  ap_wire_request_size(&r));
		}
}
END_TEST

/* The preload's encoder writes the same bytes as ap_wire_put_request(),
 * the golden ones included, for every length of each string (the
 * fixed-size moves change at 16 and 32 bytes), and stays within the
 * record plus AP_WIRE_PAD. Sources are fixed arrays, as its contract asks. */
START_TEST(test_request_padded)
{
	static char method[16], path[256], msg[200];
	for (size_t i = 0; i < sizeof path; i++)
		path[i] = (char)('a' + i % 26);
	memcpy(method, "PROPFIND-XXXXXXX", 16);
	memset(msg, 'm', sizeof msg);
	struct ap_rec_request r = g_req;
	uint8_t want[600], got[600 + AP_WIRE_PAD + 1];

	r.method = (struct ap_str){ memcpy(method, "GET", 3), 3 };
	r.path = (struct ap_str){ memcpy(path, "/a/1", 4), 4 };
	r.message = (struct ap_str){ memcpy(msg, "x", 1), 1 };
	memset(got, 0xEE, sizeof got);
	size_t n = ap_wire_put_request_padded(got, &r);
	assert_bytes(got, n, g_req_bytes, sizeof(g_req_bytes));
	for (size_t i = 0; i < sizeof path; i++)
		path[i] = (char)('a' + i % 26);

	/* lengths around each move's size (16, 32) and the arrays' ends */
	static const uint16_t msgs[] = { 0, 1, 7, 8, 16, 17, 32, 33, 132, 200 };
	static const uint16_t longer[] = { 47, 48, 63, 64, 65, 127, 128, 200, 255, 256 };
	for (uint16_t m = 0; m < 16; m++)
		for (size_t pi = 0; pi < 41 + sizeof longer / sizeof longer[0]; pi++)
			for (size_t mi = 0; mi < sizeof msgs / sizeof msgs[0]; mi++) {
				uint16_t pl = pi < 41 ? (uint16_t)pi : longer[pi - 41];
				uint16_t ml = msgs[mi];
				r.method = (struct ap_str){ method, m };
				r.path = (struct ap_str){ path, pl };
				r.message = (struct ap_str){ ml ? msg : NULL, ml };
				size_t size = ap_wire_request_size(&r);
				ck_assert_uint_eq(ap_wire_put_request(want, sizeof want, &r), size);
				memset(got, 0xEE, sizeof got);
				ck_assert_uint_eq(ap_wire_put_request_padded(got, &r), size);
				assert_bytes(got, size, want, size);
				ck_assert_uint_eq(got[size + AP_WIRE_PAD], 0xEE);
			}
}
END_TEST

Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("golden");
	tcase_add_test(tc, test_golden_batch_hdr);
	tcase_add_test(tc, test_golden_hello);
	tcase_add_test(tc, test_golden_request);
	tcase_add_test(tc, test_golden_sql);
	tcase_add_test(tc, test_golden_stats);
	tcase_add_test(tc, test_golden_inflight);
	tcase_add_test(tc, test_decode_golden);
	suite_add_tcase(s, tc);

	tc = tcase_create("round trip");
	tcase_add_test(tc, test_round_trip_datagram);
	tcase_add_test(tc, test_round_trip_extremes);
	tcase_add_test(tc, test_request_size);
	tcase_add_test(tc, test_request_padded);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_test(tc, test_truncated_payloads);
	tcase_add_test(tc, test_truncated_batch_hdr);
	tcase_add_test(tc, test_truncated_datagram);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_unknown_version);
	tcase_add_test(tc, test_header_length);
	tcase_add_test(tc, test_record_length_past_end);
	tcase_add_test(tc, test_unknown_types_skipped);
	tcase_add_test(tc, test_trailing_payload_accepted);
	tcase_add_test(tc, test_string_past_payload);
	suite_add_tcase(s, tc);

	tc = tcase_create("encoders");
	tcase_add_test(tc, test_encoders_small_cap);
	suite_add_tcase(s, tc);
	return s;
}

#ifdef STANDALONE
int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
