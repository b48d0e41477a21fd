/*
 * ap_http.h - incremental HTTP/1.x message framing, one direction at a time.
 *
 * The preload feeds these parsers the bytes a host server actually read from
 * (requests) and wrote to (responses) an accepted socket, in whatever pieces
 * the host used: one byte at a time, several pipelined messages in one read,
 * or a 1 MB header across hundreds of reads. The parsers never allocate,
 * never look at more than they are given, copy only bounded prefixes (method,
 * target, the start of a 5xx body) and skip bodies without copying them.
 *
 * Pull style: ap_http_*_feed() consumes bytes until it has something to
 * report, returns how many bytes it consumed and sets *ev. The caller handles
 * the event and calls again with the remaining bytes. A return of `len` with
 * AP_HTTP_NEED_MORE means every byte was consumed and nothing happened yet.
 *
 * Both parsers are plain structs (no pointers inside), so they can be zeroed,
 * copied and embedded in preallocated connection records. Not thread-safe:
 * one parser per connection direction, used under the connection's lock.
 */
#ifndef AP_HTTP_H
#define AP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AP_HTTP_METHOD_MAX 16   /* longest method kept, including the NUL */
#define AP_HTTP_TARGET_MAX 512  /* longest request target kept, incl. NUL */
#define AP_HTTP_ERRBODY_MAX 200 /* bytes of a 5xx body kept as its message */

enum ap_http_ev {
	AP_HTTP_NEED_MORE = 0, /* all bytes consumed, nothing to report */
	AP_HTTP_START_LINE,    /* request line / status line complete */
	AP_HTTP_HEADERS_DONE,  /* end of the header block; framing known */
	AP_HTTP_MSG_DONE,      /* last byte of the message (body included) */
	AP_HTTP_ERROR,         /* not HTTP/1.x, or framing we cannot follow;
	                          sticky: every later feed returns it again */
	AP_HTTP_HEAD_DONE      /* ap_http_req_feed_head() only: START_LINE and
	                          HEADERS_DONE of one request, in one call */
};

/*
 * Private: the header-block and body state both directions share, so one
 * state machine in http.c serves both. Callers never touch it; all-zero is
 * the state of a freshly initialised parser.
 */
struct ap_http_core {
	uint64_t remaining;        /* body or chunk bytes left; in the header
	                              block, the Content-Length agreed so far */
	uint64_t num;              /* Content-Length value being read */
	uint16_t flags;            /* what the header block said */
	uint16_t nlen;             /* bytes of the current name / token / literal */
	uint8_t state;
	uint8_t sub;               /* step within the state */
	uint8_t hdr;               /* which interesting header we are in */
	char scratch[24];          /* prefix of a header name split across
	                              reads, or of a value token (as sent) */
};

/*
 * Request direction (client -> server).
 *
 * AP_HTTP_START_LINE: method, target, version_minor are valid and stay valid
 *   until the next request's start line.  A request line is
 *   `TOKEN SP TARGET SP HTTP/1.<digit> CRLF` (bare LF accepted; empty lines
 *   before it are skipped as RFC 9112 allows). Anything else, HTTP/0.9,
 *   HTTP/2 prefaces and HTTP/1.x versions other than 1.0 and 1.1 included,
 *   is AP_HTTP_ERROR.
 * AP_HTTP_HEADERS_DONE: keep_alive, expect_continue, profile, chunked,
 *   content_length are valid.
 * AP_HTTP_MSG_DONE: the body (Content-Length bytes, or chunked up to and
 *   including its trailers) has been consumed; the parser is ready for the
 *   next pipelined request. A request without Content-Length or chunked
 *   encoding has no body, so MSG_DONE follows HEADERS_DONE at once (a feed
 *   call returning HEADERS_DONE and the next one MSG_DONE with 0 bytes
 *   consumed).
 */
struct ap_http_req {
	/* results */
	char method[AP_HTTP_METHOD_MAX];
	char target[AP_HTTP_TARGET_MAX];
	uint16_t method_len;
	uint16_t target_len;       /* bytes kept in target (<= MAX-1) */
	uint8_t target_truncated;  /* the real target was longer */
	uint8_t version_minor;     /* 0 or 1 */
	uint8_t keep_alive;        /* 1.1 without "Connection: close", or 1.0
	                              with "Connection: keep-alive" */
	uint8_t expect_continue;   /* "Expect: 100-continue" */
	uint8_t profile;           /* "X-Apiprof-Profile: 1" */
	uint8_t chunked;           /* Transfer-Encoding ends in chunked */
	uint64_t content_length;   /* valid when !chunked */

	/* private state */
	struct ap_http_core core;
};

void ap_http_req_init(struct ap_http_req *p);
size_t ap_http_req_feed(struct ap_http_req *p, const char *buf, size_t len,
                        enum ap_http_ev *ev);
/* Right after AP_HTTP_HEADERS_DONE: when the request has no body, ends it
 * as the next feed's MSG_DONE would and returns 1 (the parser is ready for
 * the next request, and that MSG_DONE does not come); else 0, changing
 * nothing. Saves a feed call for each bodyless request. Inline (nearly
 * every request asks): AP_HTTP_CORE_PENDING is http.c's state of a
 * bodyless request whose MSG_DONE is due, and zeroing the core is what
 * the next feed would do. */
#define AP_HTTP_CORE_PENDING 2
static inline int ap_http_req_end_bodyless(struct ap_http_req *p)
{
	if (p->core.state != AP_HTTP_CORE_PENDING)
		return 0;
	memset(&p->core, 0, sizeof p->core);
	return 1;
}
/* 1 between a request's START_LINE and its HEADERS_DONE: its head is not
 * complete yet; also after an ERROR in it (a header refused, a framing
 * header that cannot be followed), the head then never completing. */
int ap_http_req_in_head(const struct ap_http_req *p);
/*
 * ap_http_req_feed() for a caller that handles START_LINE and then
 * HEADERS_DONE anyway: when a request's whole head (request line and header
 * block) is in buf, in its usual shape, one call reads it and reports
 * AP_HTTP_HEAD_DONE, which stands for START_LINE followed by HEADERS_DONE at
 * the end of the head: every result of both is valid, and
 * ap_http_req_end_bodyless() applies as after HEADERS_DONE. Otherwise it
 * does exactly what ap_http_req_feed() does with the same bytes: a head
 * split across reads, or one the fast path does not take (empty lines
 * before it, an error in its header block), gives START_LINE and
 * HEADERS_DONE (or ERROR) from separate calls, at the same offsets. The two
 * functions can be mixed on one parser. ap_http_req_feed() never reports
 * HEAD_DONE.
 */
size_t ap_http_req_feed_head(struct ap_http_req *p, const char *buf, size_t len,
                             enum ap_http_ev *ev);

/*
 * Response direction (server -> client).
 *
 * Call ap_http_resp_begin() before each response, saying what it answers:
 * AP_HTTP_ANSWERS_OTHER, AP_HTTP_ANSWERS_HEAD (a response to HEAD has no body
 * whatever its headers say) or AP_HTTP_ANSWERS_CONNECT (a 2xx response to
 * CONNECT has none either: the connection becomes a tunnel right after its
 * blank line, RFC 9112 6.3; other statuses are framed as usual).
 * AP_HTTP_START_LINE: status is valid (`HTTP/1.x SP 3DIGIT ...`).
 * AP_HTTP_HEADERS_DONE: framing known.
 * AP_HTTP_MSG_DONE: the response is complete. If 100 <= status < 200 and
 *   status != 101 it was an interim response: the final one follows, call
 *   ap_http_resp_begin() again with the same argument. A 101 completes at
 *   the end of its headers (the connection then stops being HTTP). 1xx, 204,
 *   304 and responses to HEAD have no body; otherwise Content-Length,
 *   chunked, or, lacking both, the body runs until the connection closes:
 *   until_close is set and MSG_DONE never comes; ap_http_resp_eof() then
 *   says whether the message was complete when the connection ended.
 * errbody holds the first AP_HTTP_ERRBODY_MAX bytes of the (de-chunked)
 * body when status >= 500, for error messages.
 */
struct ap_http_resp {
	/* results */
	uint16_t status;
	uint8_t version_minor;
	uint8_t keep_alive;        /* the response does not say it will close */
	uint8_t chunked;
	uint8_t until_close;
	uint64_t content_length;
	uint16_t errbody_len;
	char errbody[AP_HTTP_ERRBODY_MAX];

	/* private state */
	uint8_t head;              /* enum ap_http_answers: what this answers */
	struct ap_http_core core;
};

void ap_http_resp_init(struct ap_http_resp *p);
enum ap_http_answers {
	AP_HTTP_ANSWERS_OTHER = 0,
	AP_HTTP_ANSWERS_HEAD = 1,
	AP_HTTP_ANSWERS_CONNECT = 2,
};
/* Inline: once per response. AP_HTTP_CORE_ERROR is http.c's error state,
 * which only init leaves: after an error we cannot know where the next
 * response starts. */
#define AP_HTTP_CORE_ERROR 10
static inline void ap_http_resp_begin(struct ap_http_resp *p, int answers)
{
	if (p->core.state == AP_HTTP_CORE_ERROR)
		return;
	/* errbody past errbody_len is no result: left as it was */
	p->status = 0;
	p->version_minor = 0;
	p->keep_alive = 0;
	p->chunked = 0;
	p->until_close = 0;
	p->content_length = 0;
	p->errbody_len = 0;
	/* as given: every value but HEAD and CONNECT acts as OTHER */
	p->head = (uint8_t)answers;
	memset(&p->core, 0, sizeof p->core);
}
size_t ap_http_resp_feed(struct ap_http_resp *p, const char *buf, size_t len,
                         enum ap_http_ev *ev);
/* After AP_HTTP_MSG_DONE: 1 when the connection stops carrying HTTP after
 * this response, a 101 (Switching Protocols) or a 2xx answering CONNECT
 * (a tunnel); nothing after it is a request or a response. */
static inline int ap_http_resp_tunnels(const struct ap_http_resp *p)
{
	return p->status == 101 ||
	       (p->head == AP_HTTP_ANSWERS_CONNECT && p->status >= 200 && p->status < 300);
}

/* 1 when the connection closing now ends the response cleanly: a response
 * whose body runs until close and whose headers are complete. */
int ap_http_resp_eof(const struct ap_http_resp *p);
/* 1 while a response is in progress whose status line was complete (what
 * AP_HTTP_START_LINE reports): status is valid. 0 before that, and once
 * MSG_DONE has been reported. */
int ap_http_resp_status_seen(const struct ap_http_resp *p);
/* For a caller that acts only when a response ends: ap_http_resp_feed()
 * that goes on past AP_HTTP_START_LINE and AP_HTTP_HEADERS_DONE (status and
 * framing are readable in p from then on, as usual), so *ev is only ever
 * MSG_DONE, ERROR or NEED_MORE. One call instead of three per message. */
size_t ap_http_resp_feed_to_end(struct ap_http_resp *p, const char *buf, size_t len,
                                enum ap_http_ev *ev);

#endif /* AP_HTTP_H */
