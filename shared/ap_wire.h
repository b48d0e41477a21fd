/*
 * ap_wire.h - the binary protocol from the preload to the collector.
 *
 * Transport: one AF_UNIX SOCK_DGRAM datagram per batch, sent with
 * MSG_DONTWAIT|MSG_NOSIGNAL to the collector's socket path. Datagrams keep
 * batches whole, need no connection state in the host (a restarted collector
 * is reached by the next send), and with SO_PASSCRED on the collector's side
 * the kernel attaches the sender's real pid and uid to every datagram.
 *
 * A datagram is a batch header followed by records:
 *
 *   batch header (AP_WIRE_BATCH_HDR = 24 bytes, little-endian):
 *     0  u32 magic   "APRF" (0x46525041)
 *     4  u8  version AP_WIRE_VERSION
 *     5  u8  reserved (0)
 *     6  u16 header length (24; a newer sender may send more, skipped)
 *     8  u32 seq     batch number within the sending process
 *    12  u32 pid     as the sender believes (the collector trusts the kernel)
 *    16  i64 wall_minus_mono_ns  CLOCK_REALTIME - CLOCK_MONOTONIC, read when
 *                    the batch was sent: record times are CLOCK_MONOTONIC
 *                    nanoseconds, wall time = mono + this offset
 *   record (AP_WIRE_REC_HDR = 8 bytes, then `len` payload bytes):
 *     0  u16 type    enum ap_rec_type
 *     2  u16 reserved (0)
 *     4  u32 len     payload bytes
 *
 * Integers are written and read byte by byte (never by casting a buffer to a
 * struct). Strings are u16 length + bytes, no NUL. New fields are appended to
 * a record's payload only: a decoder accepts and ignores trailing bytes it
 * does not know, and rejects a payload shorter than its version requires.
 * Unknown record types are skipped by length.
 */
#ifndef AP_WIRE_H
#define AP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ap_copy.h"

#define AP_WIRE_MAGIC 0x46525041u /* "APRF" in memory order */
#define AP_WIRE_VERSION 1
#define AP_WIRE_BATCH_HDR 24
#define AP_WIRE_REC_HDR 8
#define AP_WIRE_MAX_DATAGRAM (64 * 1024) /* a sender never exceeds this */

enum ap_rec_type {
	AP_REC_HELLO = 1,   /* once per process (and again after fork) */
	AP_REC_REQUEST = 2, /* one finished (or aborted) HTTP request */
	AP_REC_STATS = 3,   /* the process's cumulative counters, ~1/s */
	AP_REC_SQL = 4,     /* one SQL statement (or prepare) that finished */
	AP_REC_CRASH = 5,   /* a fatal signal of the process (ap_crash.h) */
	AP_REC_PROFILE = 7, /* one folded call stack of a profiled request */
	AP_REC_INFLIGHT = 8,/* a request still in flight, announced ~1/s
	                       (struct ap_rec_inflight) */
};

enum ap_sql_db {
	AP_DB_POSTGRES = 1,
	AP_DB_MYSQL = 2,
	AP_DB_SQLITE = 3,
};

enum ap_sql_flags {
	AP_SQLF_ERROR = 1 << 0,      /* the statement failed */
	AP_SQLF_TRUNCATED = 1 << 1,  /* text cut at APIPROF_MAX_SQL_BYTES */
	AP_SQLF_PREPARE = 1 << 2,    /* a prepare round trip, not an execution */
	AP_SQLF_AMBIGUOUS = 1 << 3,  /* several requests were in flight on the
	                                thread: counted for the service only */
	AP_SQLF_VALUES_KEPT = 1 << 4,/* APIPROF_CAPTURE_SQL_VALUES=1 */
	AP_SQLF_ROWS_UNKNOWN = 1 << 5,
};

enum ap_req_flags {
	AP_REQF_ABORTED = 1 << 0,        /* closed before a complete response */
	AP_REQF_TARGET_TRUNCATED = 1 << 1,
	AP_REQF_PROFILE = 1 << 2,        /* X-Apiprof-Profile: 1 */
	AP_REQF_QUERY_KEPT = 1 << 3,     /* APIPROF_CAPTURE_QUERY_STRING=1 */
	AP_REQF_CRASHED = 1 << 4,        /* with ABORTED: the process died of a
	                                    fatal signal while serving it; its
	                                    CRASH record (same pid, req_id)
	                                    follows and is its error group */
	AP_REQF_KILLED = 1 << 5,         /* with ABORTED: made by the collector,
	                                    never sent: the process died without
	                                    a word (SIGKILL) while this request,
	                                    announced in flight, was unanswered */
};

/* Strings in decoded records point into the decoded buffer: not NUL-
 * terminated, valid while that buffer is. */
struct ap_str {
	const char *p;
	uint16_t len;
};

struct ap_batch_hdr {
	uint32_t seq;
	uint32_t pid;
	int64_t wall_minus_mono_ns;
};

struct ap_rec_hello {
	uint32_t pid;
	uint32_t ppid;
	uint64_t start_mono_ns;   /* when the preload initialised (or forked) */
	struct ap_str service;    /* APIPROF_SERVICE or the program's name */
	struct ap_str exe;        /* /proc/self/exe, possibly truncated */
};

struct ap_rec_request {
	uint64_t req_id;          /* unique within the process */
	uint64_t start_ns;        /* CLOCK_MONOTONIC: first byte of the request */
	uint64_t end_ns;          /* last byte of the response (or the abort) */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint32_t tid;
	uint16_t status;          /* 0 when aborted before a status line */
	uint16_t flags;           /* enum ap_req_flags */
	struct ap_str method;
	struct ap_str path;       /* query string already dropped unless kept */
	/* appended in protocol version 1.1 (absent: empty) */
	struct ap_str message;    /* 5xx: first bytes of the body, scrubbed */
};

/* A statement. Emitted in the process's order, so the statements of a
 * request always precede the request's own record. */
struct ap_rec_sql {
	uint64_t req_id;          /* the request it ran for; 0: none or ambiguous */
	uint64_t start_ns;        /* CLOCK_MONOTONIC */
	uint64_t end_ns;
	uint64_t rows;            /* returned or affected */
	uint64_t fingerprint;     /* of the normalised text (shared/ap_sql.h) */
	uint32_t tid;
	uint8_t db;               /* enum ap_sql_db */
	uint8_t flags;            /* enum ap_sql_flags */
	struct ap_str error_code; /* SQLSTATE, MySQL errno, SQLite code; or empty */
	struct ap_str error_message; /* primary message, scrubbed */
	struct ap_str sql;        /* normalised text (literals replaced) */
};

struct ap_rec_stats {
	uint64_t events;          /* records produced since start (or fork) */
	uint64_t dropped;         /* records dropped: buffer full or send failed */
	uint64_t untracked_conns; /* connections beyond the preload's bound */
};

/* One distinct call stack sampled while a profiled request was in flight,
 * and how many samples had it. A request's stacks follow its REQUEST
 * record (they are unwound after it ended). */
struct ap_rec_profile {
	uint64_t req_id;          /* the request sampled */
	uint32_t tid;             /* the thread sampled */
	uint32_t count;           /* samples with this stack */
	uint16_t flags;           /* enum ap_prof_flags */
	struct ap_str method;
	struct ap_str path;       /* as in the request record */
	struct ap_str stack;      /* folded: "outermost;...;innermost" function
	                             names, as flamegraph.pl reads them */
};

/*
 * A request in flight for a while (the preload's shipper announces those
 * older than about a second, once a second, and never on a host thread).
 * The records a process sends with one round_ns are its whole set of
 * such requests at that moment (as many as fit a bound): a newer round
 * replaces the set, a REQUEST record with the same req_id takes its entry
 * out, and when the process is found gone with entries left (SIGKILL:
 * nothing in it could report), the collector records each as an aborted
 * request (AP_REQF_KILLED). A round with none, after one with some, is
 * one record with req_id 0; AP_INFLF_FINAL (req_id 0) says the process
 * exits or execs knowingly: forget its set. Collectors that predate the
 * type skip it (unknown record types are skipped by length).
 */
struct ap_rec_inflight {
	uint64_t round_ns;        /* CLOCK_MONOTONIC: when this set was taken */
	uint64_t req_id;          /* 0: none (an empty round, or FINAL) */
	uint64_t start_ns;        /* as in the request record */
	uint64_t bytes_in;        /* so far */
	uint16_t flags;           /* enum ap_inflight_flags */
	uint16_t req_flags;       /* the request's enum ap_req_flags so far */
	struct ap_str method;
	struct ap_str path;       /* as in the request record */
};

enum ap_inflight_flags {
	AP_INFLF_FINAL = 1 << 0,  /* the process exits or execs: forget its set */
};

enum ap_prof_flags {
	AP_PROFF_HEADER = 1 << 0,    /* chosen by X-Apiprof-Profile: 1 */
	AP_PROFF_TRUNCATED = 1 << 1, /* the stack was cut (depth or stack copy) */
};

/* ---- encoding (preload side; no allocation, async-signal-safe) ---- */

/* Each returns the bytes written at `out`, or 0 when `cap` is too small
 * (nothing useful is written then). */
size_t ap_wire_put_batch_hdr(uint8_t *out, size_t cap, const struct ap_batch_hdr *h);
size_t ap_wire_put_hello(uint8_t *out, size_t cap, const struct ap_rec_hello *r);
size_t ap_wire_put_request(uint8_t *out, size_t cap, const struct ap_rec_request *r);
size_t ap_wire_put_stats(uint8_t *out, size_t cap, const struct ap_rec_stats *r);
size_t ap_wire_put_sql(uint8_t *out, size_t cap, const struct ap_rec_sql *r);
size_t ap_wire_sql_size(const struct ap_rec_sql *r);
size_t ap_wire_put_profile(uint8_t *out, size_t cap, const struct ap_rec_profile *r);
size_t ap_wire_profile_size(const struct ap_rec_profile *r);
size_t ap_wire_put_inflight(uint8_t *out, size_t cap, const struct ap_rec_inflight *r);
size_t ap_wire_inflight_size(const struct ap_rec_inflight *r);
/* Bytes ap_wire_put_request() will need for r (header included), or for
 * a request with strings of these lengths. Inline: the preload asks once
 * per request before it takes its buffer's lock. */
static inline size_t ap_wire_request_size_of(size_t method_len, size_t path_len,
                                             size_t message_len)
{
	return AP_WIRE_REC_HDR + 5 * 8 + 4 + 2 + 2 + 2 + method_len + 2 + path_len +
	       2 + message_len;
}

static inline size_t ap_wire_request_size(const struct ap_rec_request *r)
{
	return ap_wire_request_size_of(r->method.len, r->path.len, r->message.len);
}

/*
 * Straight stores for the request record, which the preload writes inside
 * the host for every request: its size is known before it starts, so one
 * check (or none, below) replaces a cursor's check per field. Each returns
 * the byte after what it wrote. The one description of the record's layout:
 * ap_wire_put_request() and ap_wire_put_request_padded() both use it.
 */
static inline uint8_t *ap_wire_st_(uint8_t *q, uint64_t v, unsigned nbytes)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(q, &v, nbytes);
#else
	for (unsigned i = 0; i < nbytes; i++)
		q[i] = (uint8_t)(v >> (8 * i));
#endif
	return q + nbytes;
}

/* The record header and every field before the strings; `size` is
 * ap_wire_request_size(r). */
static inline uint8_t *ap_wire_request_fixed_(uint8_t *q, size_t size,
                                              const struct ap_rec_request *r)
{
	q = ap_wire_st_(q, AP_REC_REQUEST, 2);
	q = ap_wire_st_(q, 0, 2);
	q = ap_wire_st_(q, size - AP_WIRE_REC_HDR, 4);
	q = ap_wire_st_(q, r->req_id, 8);
	q = ap_wire_st_(q, r->start_ns, 8);
	q = ap_wire_st_(q, r->end_ns, 8);
	q = ap_wire_st_(q, r->bytes_in, 8);
	q = ap_wire_st_(q, r->bytes_out, 8);
	q = ap_wire_st_(q, r->tid, 4);
	q = ap_wire_st_(q, r->status, 2);
	return ap_wire_st_(q, r->flags, 2);
}

/* Bytes past a record that ap_wire_put_request_padded() may overwrite. */
#define AP_WIRE_PAD 32

/*
 * ap_wire_put_request() for the preload's hot path: the same bytes, with
 * no capacity check and each short string copied in one or two fixed-size
 * moves instead of a length-dependent sequence. The caller guarantees the
 * slack: `out` has room for ap_wire_request_size(r) + AP_WIRE_PAD bytes
 * (the AP_WIRE_PAD after the record hold garbage afterwards), r->method.p
 * is readable for 16 bytes and r->path.p for 32 (fixed arrays at least
 * that long), whatever their lengths; r->message is copied exactly.
 * Returns ap_wire_request_size(r).
 */
static inline __attribute__((always_inline)) size_t
ap_wire_put_request_padded(uint8_t *out, const struct ap_rec_request *r)
{
	size_t size = ap_wire_request_size(r);
	uint8_t *q = ap_wire_request_fixed_(out, size, r);
	q = ap_wire_st_(q, r->method.len, 2);
	ap_copy_padded(q, r->method.p, r->method.len, 16);
	q = ap_wire_st_(q + r->method.len, r->path.len, 2);
	ap_copy_padded(q, r->path.p, r->path.len, 32);
	q = ap_wire_st_(q + r->path.len, r->message.len, 2);
	if (r->message.len) /* usually empty, and then p may be NULL */
		ap_copy_exact(q, r->message.p, r->message.len);
	return size;
}

/* ---- decoding (collector side) ---- */

/* Reads the batch header of a datagram. Returns the offset of the first
 * record, or -EPROTO (bad magic), -EPROTONOSUPPORT (unknown version), or
 * -EBADMSG (truncated). */
int ap_wire_get_batch_hdr(const uint8_t *buf, size_t len, struct ap_batch_hdr *h);

/* Iterates records: at *off, returns 1 and fills type/payload/plen and
 * advances *off; returns 0 at the end of the datagram; -EBADMSG when the
 * record header or its length runs past the end (the rest is lost). */
int ap_wire_next_rec(const uint8_t *buf, size_t len, size_t *off,
                     uint16_t *type, const uint8_t **payload, uint32_t *plen);

/* Each returns 0, or -EBADMSG when the payload is too short or a string runs
 * past its end. */
int ap_wire_get_hello(const uint8_t *p, uint32_t len, struct ap_rec_hello *r);
int ap_wire_get_request(const uint8_t *p, uint32_t len, struct ap_rec_request *r);
int ap_wire_get_stats(const uint8_t *p, uint32_t len, struct ap_rec_stats *r);
int ap_wire_get_sql(const uint8_t *p, uint32_t len, struct ap_rec_sql *r);
int ap_wire_get_profile(const uint8_t *p, uint32_t len, struct ap_rec_profile *r);
int ap_wire_get_inflight(const uint8_t *p, uint32_t len, struct ap_rec_inflight *r);

#endif /* AP_WIRE_H */
