/*
 * ap_fcgi.h - following a FastCGI connection (FastCGI 1.0) from the
 * application server's side: php-fpm's workers, which nginx or Apache
 * talk to over a Unix or TCP socket.
 *
 * The preload feeds the bytes a server read from a connection that began
 * with a BEGIN_REQUEST record to ap_fcgi_feed_in() and the bytes it wrote
 * to ap_fcgi_feed_out(), in whatever pieces the server used. Like
 * ap_http.h's parsers it never allocates and reports in pull style: each
 * call consumes bytes until it has something to report, returns how many
 * it consumed and sets *ev; the caller handles the event and calls again
 * with the rest.
 *
 * One request at a time, as php-fpm serves them: a BEGIN_REQUEST while a
 * request is in progress (multiplexing), a record for another request, a
 * role other than RESPONDER, or anything malformed is AP_FCGI_ERROR
 * (sticky): the caller stops following the connection. Management records
 * (request id 0: FCGI_GET_VALUES and its result) are skipped.
 *
 * What is kept of FCGI_PARAMS: the values of REQUEST_METHOD, REQUEST_URI,
 * SCRIPT_NAME and PATH_INFO (bounded, flagged when cut), and whether
 * HTTP_X_APIPROF_PROFILE is "1". Every other value (HTTP_COOKIE,
 * HTTP_AUTHORIZATION...) is skipped unread: no byte of it is copied. The
 * request target (ap_fcgi_target()) is REQUEST_URI whole, query string
 * included (the caller drops it, as for HTTP), else SCRIPT_NAME followed
 * by PATH_INFO.
 *
 * On the server's side only FCGI_STDOUT matters: it carries the CGI
 * response, a head of `Name: value` lines ended by an empty line, then the
 * body. The status is the head's `Status:` (three digits), else 302 when
 * it has a `Location:`, else 200. bytes_out counts the STDOUT body after
 * the head; bytes_in the FCGI_STDIN content (the request body). The first
 * AP_FCGI_ERRBODY_MAX bytes of the body are kept (a 5xx's message).
 *
 * Plain data, no pointers: initialised by ap_fcgi_init(), embedded in the
 * preload's per-connection state. Not thread-safe.
 */
#ifndef AP_FCGI_H
#define AP_FCGI_H

#include <stddef.h>
#include <stdint.h>

#define AP_FCGI_HEADER_LEN 8
#define AP_FCGI_VERSION 1

/* Record types (FastCGI 1.0, 8). */
enum {
	AP_FCGI_BEGIN_REQUEST = 1,
	AP_FCGI_ABORT_REQUEST = 2,
	AP_FCGI_END_REQUEST = 3,
	AP_FCGI_PARAMS = 4,
	AP_FCGI_STDIN = 5,
	AP_FCGI_STDOUT = 6,
	AP_FCGI_STDERR = 7,
	AP_FCGI_DATA = 8,
	AP_FCGI_GET_VALUES = 9,
	AP_FCGI_GET_VALUES_RESULT = 10,
	AP_FCGI_UNKNOWN_TYPE = 11,
};

#define AP_FCGI_RESPONDER 1 /* BEGIN_REQUEST's role */
#define AP_FCGI_KEEP_CONN 1 /* BEGIN_REQUEST's flags */

#define AP_FCGI_METHOD_MAX 16   /* longest method kept, including a NUL */
#define AP_FCGI_TARGET_MAX 512  /* target bytes kept (the buffer's size) */
#define AP_FCGI_PART_MAX 256    /* SCRIPT_NAME or PATH_INFO bytes kept */
#define AP_FCGI_ERRBODY_MAX 200 /* body bytes kept as a 5xx's message */
#define AP_FCGI_NAME_KEEP 24    /* name bytes compared with the wanted ones */

enum ap_fcgi_ev {
	AP_FCGI_NEED_MORE = 0, /* every byte consumed, nothing to report */
	AP_FCGI_BEGIN,         /* in: a BEGIN_REQUEST's header was read: a
	                          request begins (id in req_id) */
	AP_FCGI_PARAMS_DONE,   /* in: the empty PARAMS record ending them was
	                          read: method, target and profile are valid */
	AP_FCGI_ABORT,         /* in: the client sent ABORT_REQUEST for it */
	AP_FCGI_HEAD_DONE,     /* out: the CGI head ended: status is valid */
	AP_FCGI_END,           /* out: END_REQUEST's content was read: the
	                          request is over; status, bytes valid */
	AP_FCGI_ERROR,         /* not FastCGI we follow; sticky */
};

/* One direction's record framing. */
struct ap_fcgi_dir {
	uint8_t state;          /* reading a header, content or padding */
	uint8_t hlen;           /* bytes of hdr[] read */
	uint8_t hdr[AP_FCGI_HEADER_LEN];
	uint8_t type;           /* the current record's */
	uint8_t pad;            /* padding bytes left */
	uint8_t ours;           /* it belongs to the request in progress */
	uint8_t small_n;        /* BEGIN_REQUEST's body bytes read */
	uint8_t small[8];
	uint16_t left;          /* content bytes left */
};

struct ap_fcgi {
	/* results, valid as each event says */
	uint16_t req_id;        /* the request in progress, or the last one */
	uint8_t keep_conn;      /* its BEGIN_REQUEST had FCGI_KEEP_CONN */
	uint8_t profile;        /* HTTP_X_APIPROF_PROFILE was "1" */
	uint16_t status;        /* HEAD_DONE, END */
	uint8_t method_len;     /* 0: no (usable) REQUEST_METHOD */
	uint8_t target_truncated;
	uint16_t target_len;
	uint16_t errbody_len;
	uint64_t bytes_in;      /* STDIN content so far */
	uint64_t bytes_out;     /* STDOUT body (after the head) so far */
	char method[AP_FCGI_METHOD_MAX];
	char target[AP_FCGI_TARGET_MAX]; /* whole array readable */
	char errbody[AP_FCGI_ERRBODY_MAX];

	/* private */
	uint8_t error;
	uint8_t active;         /* between BEGIN_REQUEST and END_REQUEST */
	uint8_t params_done;
	uint8_t have_uri;       /* REQUEST_URI was given (target holds it) */
	/* FCGI_PARAMS name-value pairs */
	uint8_t ps;             /* what comes next */
	uint8_t plen_n;         /* bytes of a 4-byte length read */
	uint8_t slot;           /* where the current value goes */
	uint8_t method_over;    /* REQUEST_METHOD too long: unusable */
	uint32_t plen;          /* the length being read */
	uint32_t nlen, vlen;    /* current pair's */
	uint32_t got;           /* bytes of its name or value read */
	char name[AP_FCGI_NAME_KEEP];
	uint8_t prof_val[2];
	uint16_t script_len, pinfo_len;
	uint8_t parts_cut;      /* SCRIPT_NAME or PATH_INFO was cut */
	char script[AP_FCGI_PART_MAX];
	char pinfo[AP_FCGI_PART_MAX];
	/* the CGI head on STDOUT */
	uint8_t hs;             /* where in the head */
	uint8_t hname_n;
	uint8_t hkind;          /* the line's header: none, Status, Location */
	uint8_t st_digits;
	uint8_t location;
	char hname[9];
	uint16_t st_val;
	struct ap_fcgi_dir in, out;
};

/* A fresh parser: no request yet. */
void ap_fcgi_init(struct ap_fcgi *p);

/* Bytes the server read (_in) or wrote (_out), buf[0..len). */
size_t ap_fcgi_feed_in(struct ap_fcgi *p, const uint8_t *buf, size_t len, enum ap_fcgi_ev *ev);
size_t ap_fcgi_feed_out(struct ap_fcgi *p, const uint8_t *buf, size_t len, enum ap_fcgi_ev *ev);

/* 1 when buf[0..len) (len >= 2) begins like a FastCGI connection: version
 * 1, then BEGIN_REQUEST. No HTTP request begins with byte 1. */
static inline int ap_fcgi_is_begin(const uint8_t *buf, size_t len)
{
	return len >= 2 && buf[0] == AP_FCGI_VERSION && buf[1] == AP_FCGI_BEGIN_REQUEST;
}

/* The status the head gave so far (Status:, else 302 with a Location:,
 * else 200). */
uint16_t ap_fcgi_status(const struct ap_fcgi *p);

#endif /* AP_FCGI_H */
