/*
 * check_http.c - the incremental HTTP/1.x framing parsers (shared/http.c).
 *
 * Every case is a list of segments: the bytes, and the events the parser
 * must report once those bytes are in. Each case is fed whole, byte by byte
 * and in random splits under several fixed seeds; all must give the same
 * trace (events with the stream offset they happened at, and the results
 * valid at each), so the parser cannot depend on where the host's reads end.
 * Each chunk is copied to the very end of a heap buffer, so that
 * AddressSanitizer catches any read past the `len` the parser was given.
 */
#include "config.h"
#include "check_suites.h"
#include "ap_http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Check's ck_assert_* report every passing assertion to the parent process
 * (a write per call), far too slow for loops that feed megabytes a byte at a
 * time; the hot loops use this instead, which only costs on failure.
 */
#define CHECK(cond) \
	do { \
		if (!(cond)) \
			ck_abort_msg("assertion failed: %s", #cond); \
	} while (0)

/* --- splitting ----------------------------------------------------------- */

#define SPLIT_WHOLE 0
#define SPLIT_BYTES 1
#define SPLIT_RANDOM 2
#define SPLIT_AT 3 /* two pieces, the first of rng bytes (see split_at()) */

static const uint32_t seeds[] = { 1, 7, 42, 1234, 99991 };
#define NSPLITS (2 + (int)(sizeof seeds / sizeof seeds[0]))

struct splitter {
	int mode;
	uint32_t rng;
};

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* The i-th way of splitting: whole, bytes, then each seed. */
static struct splitter splitter(int i)
{
	struct splitter sp = { SPLIT_WHOLE, 0 };
	if (i == 1)
		sp.mode = SPLIT_BYTES;
	else if (i >= 2)
		sp = (struct splitter){ SPLIT_RANDOM, seeds[i - 2] };
	return sp;
}

/* Two reads, the first of k bytes (k == 0: one read). */
static struct splitter split_at(size_t k)
{
	return (struct splitter){ SPLIT_AT, (uint32_t)k };
}

/* Mostly tiny reads, now and then a big one, as hosts do. */
static size_t split_next(struct splitter *sp, size_t left)
{
	size_t n = left;
	if (sp->mode == SPLIT_BYTES) {
		n = 1;
	} else if (sp->mode == SPLIT_RANDOM) {
		uint32_t r = xorshift(&sp->rng);
		n = (r & 3) == 0 ? 1 + (r >> 8) % 4096 : 1 + (r >> 8) % 7;
	} else if (sp->mode == SPLIT_AT && sp->rng) {
		n = sp->rng;
		sp->rng = 0;
	}
	return n < left ? n : left;
}

/* Copies a chunk so that it ends where its heap buffer ends: one byte more
 * is a heap overflow under AddressSanitizer. One buffer per run, not per
 * chunk, keeps byte-at-a-time megabytes fast. */
static const char *place(char *arena, size_t cap, const char *src, size_t n)
{
	memcpy(arena + cap - n, src, n);
	return arena + cap - n;
}

/* --- traces -------------------------------------------------------------- */

struct trace {
	char s[8192];
	size_t len;
};

static void tr_add(struct trace *t, const char *fmt, ...)
{
	va_list ap;
	if (t->len)
		t->len += (size_t)snprintf(t->s + t->len, sizeof t->s - t->len, "; ");
	CHECK(t->len < sizeof t->s);
	va_start(ap, fmt);
	t->len += (size_t)vsnprintf(t->s + t->len, sizeof t->s - t->len, fmt, ap);
	va_end(ap);
	CHECK(t->len < sizeof t->s);
}

/* 1: req_run() and resp_run() drive the parsers through the shortcuts the
 * preload takes (ap_http_req_feed_head(), ap_http_req_end_bodyless() after
 * HEADERS_DONE or HEAD_DONE, ap_http_resp_feed_to_end()), which must give
 * the same events save the ones a shortcut exists to skip. */
static int shortcuts;

/* HEAD_DONEs req_run() has seen: the tests of ap_http_req_feed_head()
 * check that its fast path took part. */
static unsigned long heads_whole;

/* The parser's results must stay inside their bounds whatever it was fed. */
static void req_invariants(const struct ap_http_req *p)
{
	CHECK(p->method_len < AP_HTTP_METHOD_MAX);
	CHECK(p->target_len < AP_HTTP_TARGET_MAX);
	CHECK(strlen(p->method) == p->method_len);
	CHECK(strnlen(p->target, AP_HTTP_TARGET_MAX) == p->target_len);
}

static void req_event(const struct ap_http_req *p, enum ap_http_ev ev,
                      size_t off, struct trace *t)
{
	req_invariants(p);
	switch (ev) {
	case AP_HTTP_START_LINE:
		tr_add(t, "S:%s %s 1.%u%s@%zu", p->method, p->target, p->version_minor,
		       p->target_truncated ? "~" : "", off);
		break;
	case AP_HTTP_HEADERS_DONE:
		if (p->chunked)
			tr_add(t, "H:%s%s%s ch@%zu", p->keep_alive ? "ka" : "close",
			       p->expect_continue ? " ec" : "", p->profile ? " pr" : "", off);
		else
			tr_add(t, "H:%s%s%s cl=%llu@%zu", p->keep_alive ? "ka" : "close",
			       p->expect_continue ? " ec" : "", p->profile ? " pr" : "",
			       (unsigned long long)p->content_length, off);
		break;
	case AP_HTTP_MSG_DONE:
		tr_add(t, "D@%zu", off);
		break;
	default:
		tr_add(t, "E");
		break;
	}
}

/*
 * Feeds `in` to a fresh request parser in the pieces `sp` chooses, the way
 * the preload does: call until NEED_MORE, which must mean every byte of the
 * piece was taken. After an error, the next call must repeat it, taking
 * nothing. With shortcuts, ap_http_req_feed_head()'s HEAD_DONE is traced
 * as the START_LINE and HEADERS_DONE it stands for: the start line's
 * offset is past the first LF after where the call began (a whole head
 * comes only from a request line with nothing before it), so the trace
 * is comparable with ap_http_req_feed()'s, offsets included.
 */
static void req_run(const char *in, size_t len, struct splitter sp, struct trace *t)
{
	struct ap_http_req p;
	size_t pos = 0;
	int dead = 0;

	char *arena = malloc(len ? len : 1);
	CHECK(arena != NULL);
	ap_http_req_init(&p);
	t->len = 0;
	t->s[0] = '\0';
	while (pos < len && !dead) {
		size_t n = split_next(&sp, len - pos), o = 0;
		const char *chunk = place(arena, len, in + pos, n);
		for (;;) {
			enum ap_http_ev ev = AP_HTTP_ERROR;
			size_t k = shortcuts ? ap_http_req_feed_head(&p, chunk + o, n - o, &ev)
			                     : ap_http_req_feed(&p, chunk + o, n - o, &ev);
			CHECK(k <= n - o);
			CHECK(shortcuts || ev != AP_HTTP_HEAD_DONE);
			if (ev == AP_HTTP_HEAD_DONE) {
				heads_whole++;
				const char *lf = memchr(chunk + o, '\n', k);
				CHECK(lf != NULL);
				req_event(&p, AP_HTTP_START_LINE, pos + (size_t)(lf + 1 - chunk), t);
			}
			o += k;
			if (ev == AP_HTTP_NEED_MORE) {
				CHECK(o == n);
				break;
			}
			req_event(&p, ev == AP_HTTP_HEAD_DONE ? AP_HTTP_HEADERS_DONE : ev, pos + o, t);
			if (shortcuts && (ev == AP_HTTP_HEADERS_DONE || ev == AP_HTTP_HEAD_DONE) &&
			    ap_http_req_end_bodyless(&p))
				req_event(&p, AP_HTTP_MSG_DONE, pos + o, t);
			if (ev == AP_HTTP_ERROR) {
				CHECK(ap_http_req_feed(&p, chunk + o, n - o, &ev) == 0);
				CHECK(ev == AP_HTTP_ERROR);
				dead = 1;
				break;
			}
		}
		pos += n;
	}
	free(arena);
}

static void resp_event(const struct ap_http_resp *p, enum ap_http_ev ev,
                       size_t off, struct trace *t)
{
	CHECK(p->errbody_len <= AP_HTTP_ERRBODY_MAX);
	switch (ev) {
	case AP_HTTP_START_LINE:
		tr_add(t, "S:%u 1.%u@%zu", p->status, p->version_minor, off);
		break;
	case AP_HTTP_HEADERS_DONE:
		if (p->chunked)
			tr_add(t, "H:%s ch@%zu", p->keep_alive ? "ka" : "close", off);
		else if (p->until_close)
			tr_add(t, "H:%s uc@%zu", p->keep_alive ? "ka" : "close", off);
		else
			tr_add(t, "H:%s cl=%llu@%zu", p->keep_alive ? "ka" : "close",
			       (unsigned long long)p->content_length, off);
		break;
	case AP_HTTP_MSG_DONE:
		if (p->errbody_len)
			tr_add(t, "D:B=%.*s@%zu", (int)p->errbody_len, p->errbody, off);
		else
			tr_add(t, "D@%zu", off);
		break;
	default:
		tr_add(t, "E");
		break;
	}
}

/*
 * Feeds `in` to a response parser like req_run(). `heads` says, per final
 * response, what it answers: a HEAD ('1'), a CONNECT ('C') or anything else;
 * after each MSG_DONE the caller's ap_http_resp_begin() is called, with the
 * same flag after an interim 1xx.
 * At the end, "EOF" is traced if the connection closing would end the
 * response cleanly.
 */
static int answers(const char *heads, size_t i)
{
	if (!heads)
		return AP_HTTP_ANSWERS_OTHER;
	return heads[i] == '1' ? AP_HTTP_ANSWERS_HEAD
	       : heads[i] == 'C' ? AP_HTTP_ANSWERS_CONNECT : AP_HTTP_ANSWERS_OTHER;
}

static void resp_run(const char *in, size_t len, const char *heads,
                     struct splitter sp, struct trace *t)
{
	struct ap_http_resp p;
	size_t pos = 0, nresp = 0;
	int dead = 0;

	ap_http_resp_init(&p);
	char *arena = malloc(len ? len : 1);
	CHECK(arena != NULL);
	ap_http_resp_begin(&p, answers(heads, 0));
	t->len = 0;
	t->s[0] = '\0';
	while (pos < len && !dead) {
		size_t n = split_next(&sp, len - pos), o = 0;
		const char *chunk = place(arena, len, in + pos, n);
		for (;;) {
			enum ap_http_ev ev = AP_HTTP_ERROR;
			size_t k = shortcuts ? ap_http_resp_feed_to_end(&p, chunk + o, n - o, &ev)
			                     : ap_http_resp_feed(&p, chunk + o, n - o, &ev);
			CHECK(k <= n - o);
			CHECK(!shortcuts || (ev != AP_HTTP_START_LINE && ev != AP_HTTP_HEADERS_DONE));
			o += k;
			if (ev == AP_HTTP_NEED_MORE) {
				CHECK(o == n);
				break;
			}
			resp_event(&p, ev, pos + o, t);
			if (ev == AP_HTTP_ERROR) {
				CHECK(ap_http_resp_feed(&p, chunk + o, n - o, &ev) == 0);
				CHECK(ev == AP_HTTP_ERROR);
				dead = 1;
				break;
			}
			if (ev == AP_HTTP_MSG_DONE) {
				int interim = p.status >= 100 && p.status < 200 && p.status != 101;
				if (!interim && heads && heads[nresp] && heads[nresp + 1])
					nresp++;
				ap_http_resp_begin(&p, answers(heads, nresp));
			}
		}
		pos += n;
	}
	free(arena);
	if (!dead && ap_http_resp_eof(&p)) {
		if (p.errbody_len)
			tr_add(t, "EOF:B=%.*s", (int)p.errbody_len, p.errbody);
		else
			tr_add(t, "EOF");
	}
}

/* --- table-driven cases -------------------------------------------------- */

/* Bytes, and the events (';'-separated) due once they are all fed. Events
 * other than E and EOF get "@offset" appended when the trace is built. */
struct seg {
	const char *b;
	size_t len;
	const char *ev;
};
#define SEG(bytes, events) { bytes, sizeof(bytes) - 1, events }
#define MAXSEG 10

struct hcase {
	const char *name;
	const char *heads; /* responses: HEAD flags per final response */
	struct seg segs[MAXSEG];
};

/* Joins a case's bytes into one malloc'd buffer and builds its expected
 * trace, turning each segment's events into "event@offset". */
static char *case_build(const struct hcase *c, size_t *len, struct trace *want)
{
	size_t total = 0, off = 0;
	for (int i = 0; i < MAXSEG && c->segs[i].b; i++)
		total += c->segs[i].len;
	char *buf = malloc(total + 1);
	ck_assert_ptr_nonnull(buf);
	want->len = 0;
	want->s[0] = '\0';
	for (int i = 0; i < MAXSEG && c->segs[i].b; i++) {
		memcpy(buf + off, c->segs[i].b, c->segs[i].len);
		off += c->segs[i].len;
		char evs[1024];
		snprintf(evs, sizeof evs, "%s", c->segs[i].ev ? c->segs[i].ev : "");
		for (char *save = NULL, *e = strtok_r(evs, ";", &save); e;
		     e = strtok_r(NULL, ";", &save)) {
			if (strcmp(e, "E") == 0 || strncmp(e, "EOF", 3) == 0)
				tr_add(want, "%s", e);
			else
				tr_add(want, "%s@%zu", e, off);
		}
	}
	*len = total;
	return buf;
}

/* Every split of the input gives exactly the expected trace. */
static void must_parse_req(const struct hcase *c)
{
	struct trace want, got;
	size_t len;
	char *in = case_build(c, &len, &want);
	for (int i = 0; i < NSPLITS; i++) {
		req_run(in, len, splitter(i), &got);
		ck_assert_msg(strcmp(got.s, want.s) == 0,
		              "request case '%s', split %d:\n got: %s\nwant: %s",
		              c->name, i, got.s, want.s);
	}
	free(in);
}

static void must_parse_resp(const struct hcase *c)
{
	struct trace want, got;
	size_t len;
	char *in = case_build(c, &len, &want);
	for (int i = 0; i < NSPLITS; i++) {
		resp_run(in, len, c->heads, splitter(i), &got);
		ck_assert_msg(strcmp(got.s, want.s) == 0,
		              "response case '%s', split %d:\n got: %s\nwant: %s",
		              c->name, i, got.s, want.s);
	}
	free(in);
}

/* The expected trace must end in an error (guards the error tables). */
static void must_end_in_error(const struct hcase *c)
{
	struct trace want;
	size_t len;
	free(case_build(c, &len, &want));
	ck_assert_msg(want.len >= 1 && want.s[want.len - 1] == 'E',
	              "case '%s' is in an error table but expects no error", c->name);
}

static void must_not_parse_req(const struct hcase *c)
{
	must_end_in_error(c);
	must_parse_req(c);
}

static void must_not_parse_resp(const struct hcase *c)
{
	must_end_in_error(c);
	must_parse_resp(c);
}

#define GET_HDR "GET / HTTP/1.1\r\n"
/* Fillers for the sweeps: 160 letters, and a name of letters and '-'. */
#define LONG_A \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG_NAME "X-Abcdefghij-Klmnopqrst-Uvwxyz-Abcdefghijklmnop"
#define GET_S "S:GET / 1.1"

static const struct hcase req_ok[] = {
	{ "simple GET", NULL, {
		SEG("GET /hello HTTP/1.1\r\n", "S:GET /hello 1.1"),
		SEG("Host: example.com\r\nUser-Agent: t\r\n\r\n", "H:ka cl=0;D") } },
	{ "HTTP/1.0 defaults to close", NULL, {
		SEG("GET /a HTTP/1.0\r\n", "S:GET /a 1.0"),
		SEG("Host: x\r\n\r\n", "H:close cl=0;D") } },
	{ "HTTP/1.0 keep-alive, any case", NULL, {
		SEG("GET /a HTTP/1.0\r\n", "S:GET /a 1.0"),
		SEG("Connection: Keep-Alive\r\n\r\n", "H:ka cl=0;D") } },
	{ "HTTP/1.1 Connection: close", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("connection: CLOSE\r\n\r\n", "H:close cl=0;D") } },
	{ "Connection token list", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Connection: Upgrade,  close , TE\r\n\r\n", "H:close cl=0;D") } },
	{ "1.0 keep-alive in a list", NULL, {
		SEG("GET / HTTP/1.0\r\n", "S:GET / 1.0"),
		SEG("Connection: TE,keep-alive\r\n\r\n", "H:ka cl=0;D") } },
	{ "close wins over keep-alive", NULL, {
		SEG("GET / HTTP/1.0\r\n", "S:GET / 1.0"),
		SEG("Connection: keep-alive\r\nConnection: close\r\n\r\n", "H:close cl=0;D") } },
	{ "unrelated tokens are not close", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Connection: closed, x-close\r\nX-Connection: close\r\n\r\n", "H:ka cl=0;D") } },
	{ "bare LF line ends", NULL, {
		SEG("GET /lf HTTP/1.1\n", "S:GET /lf 1.1"),
		SEG("Host: x\n\n", "H:ka cl=0;D") } },
	{ "runs of SP in the request line (nginx and Tomcat serve it)", NULL, {
		SEG("GET  /a   HTTP/1.1\r\n", "S:GET /a 1.1"),
		SEG("Host: x\r\n\r\n", "H:ka cl=0;D"),
		SEG("POST   /b HTTP/1.0  \r\n", "S:POST /b 1.0"),
		SEG("Content-Length: 2\r\n\r\n", "H:close cl=2"),
		SEG("hi", "D") } },
	{ "SPs after the version, bare LF", NULL, {
		SEG("GET /c HTTP/1.1 \n", "S:GET /c 1.1"),
		SEG("\n", "H:ka cl=0;D") } },
	{ "empty lines before the request", NULL, {
		SEG("\r\n\r\n\nGET / HTTP/1.1\r\n", GET_S),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "two pipelined requests", NULL, {
		SEG("GET /1 HTTP/1.1\r\n", "S:GET /1 1.1"),
		SEG("Host: x\r\n\r\n", "H:ka cl=0;D"),
		SEG("GET /2 HTTP/1.1\r\n", "S:GET /2 1.1"),
		SEG("Host: x\r\n\r\n", "H:ka cl=0;D") } },
	{ "three pipelined requests with bodies", NULL, {
		SEG("POST /1 HTTP/1.1\r\n", "S:POST /1 1.1"),
		SEG("Content-Length: 3\r\n\r\n", "H:ka cl=3"),
		SEG("abc", "D"),
		SEG("PUT /2 HTTP/1.1\r\n", "S:PUT /2 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("2\r\nhi\r\n0\r\n\r\n", "D"),
		SEG("DELETE /3 HTTP/1.1\r\n", "S:DELETE /3 1.1"),
		SEG("Connection: close\r\n\r\n", "H:close cl=0;D") } },
	{ "Content-Length body", NULL, {
		SEG("POST /form HTTP/1.1\r\n", "S:POST /form 1.1"),
		SEG("Host: x\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\n", "H:ka cl=11"),
		SEG("hello", NULL),
		SEG(" world", "D") } },
	{ "Content-Length body that looks like a request", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 18\r\n\r\n", "H:ka cl=18"),
		SEG("GET /x HTTP/1.1\r\n\r", "D"),
		SEG("GET /y HTTP/1.1\r\n", "S:GET /y 1.1") } },
	{ "Content-Length: 0", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D") } },
	{ "Content-Length any case, OWS", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("CONTENT-length:\t 2 \t\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "repeated identical Content-Length", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 2, 2\r\nContent-Length: 02\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "largest Content-Length", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 18446744073709551615\r\n\r\n", "H:ka cl=18446744073709551615"),
		SEG("some body", NULL) } },
	{ "chunked with extensions and trailers", NULL, {
		SEG("POST /c HTTP/1.1\r\n", "S:POST /c 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("5;name=val\r\nhello\r\n", NULL),
		SEG("A ; a=\"b;c\" ;d\r\n0123456789\r\n", NULL),
		SEG("0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", "D"),
		SEG("GET /next HTTP/1.1\r\n", "S:GET /next 1.1") } },
	{ "chunked: hex case, leading zeros, bare LF", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("transfer-encoding: CHUNKED\r\n\r\n", "H:ka ch"),
		SEG("0000b\nhello world\n1F\r\n", NULL),
		SEG("0123456789abcdef0123456789abcde\r\n", NULL),
		SEG("000\n\n", "D") } },
	{ "chunked body containing CRLFs and zero lines", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("7\r\n0\r\n\r\n\r\n\r\n", NULL),
		SEG("0\r\n\r\n", "D") } },
	{ "chunked after other codings", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: gzip\r\nTransfer-Encoding: foo, chunked\r\n\r\n", "H:ka ch"),
		SEG("1\r\nx\r\n0\r\n\r\n", "D") } },
	{ "chunked wins over Content-Length", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("3\r\nabc\r\n0\r\n\r\n", "D"),
		SEG(GET_HDR, GET_S) } },
	{ "Expect: 100-continue", NULL, {
		SEG("PUT /up HTTP/1.1\r\n", "S:PUT /up 1.1"),
		SEG("Expect: 100-Continue\r\nContent-Length: 4\r\n\r\n", "H:ka ec cl=4"),
		SEG("data", "D") } },
	{ "other Expect values", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Expect: 200-ok\r\n\r\n", "H:ka cl=0;D") } },
	{ "X-Apiprof-Profile: 1", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("x-apiprof-PROFILE:  1 \r\n\r\n", "H:ka pr cl=0;D") } },
	{ "X-Apiprof-Profile other than 1", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("X-Apiprof-Profile: 0\r\nX-Apiprof-Profiles: 1\r\nX-Apiprof-Profile: 10\r\n\r\n",
		    "H:ka cl=0;D") } },
	{ "query string kept in target", NULL, {
		SEG("GET /a/b?x=1&y=%20z HTTP/1.1\r\n", "S:GET /a/b?x=1&y=%20z 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "absolute and asterisk targets", NULL, {
		SEG("GET http://h:8080/p?q HTTP/1.1\r\n", "S:GET http://h:8080/p?q 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("OPTIONS * HTTP/1.1\r\n", "S:OPTIONS * 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "UTF-8 bytes in target", NULL, {
		SEG("GET /caf\xc3\xa9 HTTP/1.1\r\n", "S:GET /caf\xc3\xa9 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "15-character method", NULL, {
		SEG("ABCDEFGHIJKLMNO / HTTP/1.1\r\n", "S:ABCDEFGHIJKLMNO / 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "folded unrelated header", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("X-Long: a\r\n  b\r\n\tc\r\nHost: x\r\n\r\n", "H:ka cl=0;D") } },
	{ "folded Connection continues its list", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Connection: upgrade,\r\n close\r\n\r\n", "H:close cl=0;D") } },
	{ "header value with odd bytes", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("X-Bin: \x01\xff\x7f:\r\nCookie: a=b; c\r\r\n\r\n", "H:ka cl=0;D") } },
	{ "empty header value", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("X-Empty:\r\nConnection:\r\n\r\n", "H:ka cl=0;D") } },
	{ "long header names stream through", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length-And-A-Great-Deal-More: 5\r\nX-Apiprof-Profile-Extra: 1\r\n\r\n",
		    "H:ka cl=0;D") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

static const struct hcase req_bad[] = {
	{ "TLS ClientHello", NULL, {
		SEG("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "E") } },
	{ "binary with NULs", NULL, {
		SEG("\0\0\0\x01\xff\xfe", "E") } },
	{ "binary after a method", NULL, {
		SEG("GET \x01\x02", "E") } },
	{ "garbage text", NULL, {
		SEG("hello there, this is not http\r\n\r\n", "E") } },
	{ "HTTP/0.9", NULL, {
		SEG("GET /\r\n", "E") } },
	{ "HTTP/2 preface", NULL, {
		SEG("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "E") } },
	{ "HTTP/1.2", NULL, {
		SEG("GET / HTTP/1.2\r\n\r\n", "E") } },
	{ "HTTP/3.0", NULL, {
		SEG("GET / HTTP/3.0\r\n\r\n", "E") } },
	{ "HTTP/1.10", NULL, {
		SEG("GET / HTTP/1.10\r\n\r\n", "E") } },
	{ "lower-case version", NULL, {
		SEG("GET / http/1.1\r\n\r\n", "E") } },
	{ "version missing", NULL, {
		SEG("GET / \r\n\r\n", "E") } },
	{ "a tab between method and target", NULL, {
		SEG("GET\t/ HTTP/1.1\r\n\r\n", "E") } },
	{ "a tab before the version", NULL, {
		SEG("GET /\tHTTP/1.1\r\n\r\n", "E") } },
	{ "spaces but no version", NULL, {
		SEG("GET /   \r\n\r\n", "E") } },
	{ "spaces but no target", NULL, {
		SEG("GET    HTTP/1.1\r\n\r\n", "E") } },
	{ "a space inside the version", NULL, {
		SEG("GET / HTTP/ 1.1\r\n\r\n", "E") } },
	{ "spaces before the method", NULL, {
		SEG("  GET / HTTP/1.1\r\n\r\n", "E") } },
	{ "CR without LF in request line", NULL, {
		SEG("GET / HTTP/1.1\rX\r\n", "E") } },
	{ "control byte in target", NULL, {
		SEG("GET /a\tb HTTP/1.1\r\n", "E") } },
	{ "method too long", NULL, {
		SEG("ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", "E") } },
	{ "method with a separator", NULL, {
		SEG("GE(T / HTTP/1.1\r\n\r\n", "E") } },
	{ "line without colon", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host example\r\n\r\n", "E") } },
	{ "space before colon", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length : 5\r\n\r\n", "E") } },
	{ "empty header name", NULL, {
		SEG(GET_HDR, GET_S),
		SEG(": x\r\n\r\n", "E") } },
	{ "fold before the first header", NULL, {
		SEG(GET_HDR, GET_S),
		SEG(" Host: x\r\n\r\n", "E") } },
	{ "folded Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 1\r\n 2\r\n\r\n", "E") } },
	{ "folded Transfer-Encoding", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Transfer-Encoding: gzip,\r\n chunked\r\n\r\n", "E") } },
	{ "CR without LF ending the headers", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("\rX", "E") } },
	{ "negative Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: -1\r\n\r\n", "E") } },
	{ "overflowing Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 18446744073709551616\r\n\r\n", "E") } },
	{ "huge Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 99999999999999999999999999999999\r\n\r\n", "E") } },
	{ "hex Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 0x10\r\n\r\n", "E") } },
	{ "Content-Length with junk", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 5abc\r\n\r\n", "E") } },
	{ "empty Content-Length", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: \r\n\r\n", "E") } },
	{ "conflicting Content-Length list", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 5, 6\r\n\r\n", "E") } },
	{ "conflicting Content-Length lines", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 5\r\nContent-Length: 50\r\n\r\n", "E") } },
	{ "Transfer-Encoding not ending in chunked", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Transfer-Encoding: chunked, gzip\r\n\r\n", "E") } },
	{ "empty Transfer-Encoding", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Transfer-Encoding:\r\n\r\n", "E") } },
	{ "bad chunk size", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("zz\r\n", "E") } },
	{ "missing chunk size", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG(";ext\r\n", "E") } },
	{ "negative chunk size", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("-5\r\n", "E") } },
	{ "overflowing chunk size", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("10000000000000000\r\n", "E") } },
	{ "chunk data not followed by CRLF", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("3\r\nabcd\r\n", "E") } },
	{ "chunk size with junk", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("5 x\r\n", "E") } },
	{ "bad request after a good one", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("GET / HTTP/2.0\r\n", "E") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

static const struct hcase resp_ok[] = {
	{ "200 with Content-Length", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 5\r\nContent-Type: text/plain\r\n\r\n", "H:ka cl=5"),
		SEG("hello", "D") } },
	{ "two responses back to back", "00", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D"),
		SEG("HTTP/1.1 404 Not Found\r\n", "S:404 1.1"),
		SEG("Content-Length: 9\r\n\r\n", "H:ka cl=9"),
		SEG("not found", "D") } },
	{ "chunked with trailers", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("4;x=y\r\nWiki\r\n5\r\npedia\r\n", NULL),
		SEG("0\r\nExpires: never\r\n\r\n", "D") } },
	{ "HTTP/1.0 until close", "0", {
		SEG("HTTP/1.0 200 OK\r\n", "S:200 1.0"),
		SEG("Content-Type: text/html\r\n\r\n", "H:close uc"),
		SEG("<html>HTTP/1.1 200 OK\r\n\r\n</html>", "EOF") } },
	{ "HTTP/1.1 without length runs until close", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("\r\n", "H:close uc"),
		SEG("data", "EOF") } },
	{ "unknown coding runs until close", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n", "H:close uc"),
		SEG("\x1f\x8b\x08", "EOF") } },
	{ "HTTP/1.0 keep-alive with length", "0", {
		SEG("HTTP/1.0 200 OK\r\n", "S:200 1.0"),
		SEG("Connection: keep-alive\r\nContent-Length: 1\r\n\r\n", "H:ka cl=1"),
		SEG("x", "D") } },
	{ "Connection: close", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Connection: close\r\nContent-Length: 1\r\n\r\n", "H:close cl=1"),
		SEG("x", "D") } },
	{ "Content-Length: 0", "00", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 201 Created\r\n", "S:201 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D") } },
	{ "HEAD response has no body", "10", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 1000\r\nContent-Type: text/html\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "CONNECT's 200 has no body, whatever its headers say", "C", {
		SEG("HTTP/1.1 200 Connection established\r\n", "S:200 1.1"),
		SEG("Content-Length: 5\r\n\r\n", "H:ka cl=0;D") } },
	{ "CONNECT's 407 has its body", "C0", {
		SEG("HTTP/1.1 407 Proxy Authentication Required\r\n", "S:407 1.1"),
		SEG("Content-Length: 6\r\n\r\n", "H:ka cl=6"),
		SEG("denied", "D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "HEAD response, chunked header", "1", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka cl=0;D") } },
	{ "204 has no body", "00", {
		SEG("HTTP/1.1 204 No Content\r\n", "S:204 1.1"),
		SEG("Content-Length: 10\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D") } },
	{ "304 has no body", "00", {
		SEG("HTTP/1.1 304 Not Modified\r\n", "S:304 1.1"),
		SEG("ETag: \"x\"\r\nContent-Length: 5000\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 304 Not Modified\r\n", "S:304 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka cl=0;D") } },
	{ "101 completes at end of headers", "0", {
		SEG("HTTP/1.1 101 Switching Protocols\r\n", "S:101 1.1"),
		SEG("Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "H:ka cl=0;D") } },
	{ "100 Continue then 200", "0", {
		SEG("HTTP/1.1 100 Continue\r\n", "S:100 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "1xx ignores framing headers", "0", {
		SEG("HTTP/1.1 103 Early Hints\r\n", "S:103 1.1"),
		SEG("Link: </s.css>; rel=preload\r\nContent-Length: 7\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 102 Processing\r\n", "S:102 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 1\r\n\r\n", "H:ka cl=1"),
		SEG("x", "D") } },
	{ "interim then HEAD final", "1", {
		SEG("HTTP/1.1 100 Continue\r\n", "S:100 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\n\r\n", "H:ka cl=0;D") } },
	{ "500 with plain body captured", "0", {
		SEG("HTTP/1.1 500 Internal Server Error\r\n", "S:500 1.1"),
		SEG("Content-Length: 26\r\n\r\n", "H:ka cl=26"),
		SEG("database is on fire (#42)\n", "D:B=database is on fire (#42)\n") } },
	{ "502 with chunked body captured de-chunked", "0", {
		SEG("HTTP/1.1 502 Bad Gateway\r\n", "S:502 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("5\r\nupstr\r\n3;x\r\neam\r\n5\r\n down\r\n0\r\n\r\n", "D:B=upstream down") } },
	{ "503 until close captured", "0", {
		SEG("HTTP/1.0 503 Service Unavailable\r\n", "S:503 1.0"),
		SEG("\r\n", "H:close uc"),
		SEG("try later", "EOF:B=try later") } },
	{ "404 body not captured", "0", {
		SEG("HTTP/1.1 404 Not Found\r\n", "S:404 1.1"),
		SEG("Content-Length: 4\r\n\r\n", "H:ka cl=4"),
		SEG("nope", "D") } },
	{ "HEAD 500 captures nothing", "1", {
		SEG("HTTP/1.1 500 Oops\r\n", "S:500 1.1"),
		SEG("Content-Length: 4\r\n\r\n", "H:ka cl=0;D") } },
	{ "status line without reason", "00", {
		SEG("HTTP/1.1 200\r\n", "S:200 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 204 \r\n", "S:204 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "nonstandard status code", "0", {
		SEG("HTTP/1.1 599 Whatever\n", "S:599 1.1"),
		SEG("Content-Length: 1\n\n", "H:ka cl=1"),
		SEG("!", "D:B=!") } },
	{ "empty lines between responses", "00", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 1\r\n\r\n", "H:ka cl=1"),
		SEG("x", "D"),
		SEG("\r\nHTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

static const struct hcase resp_bad[] = {
	{ "HTTP/2 status line", "0", { SEG("HTTP/2.0 200 OK\r\n\r\n", "E") } },
	{ "HTTP/1.2 status line", "0", { SEG("HTTP/1.2 200 OK\r\n\r\n", "E") } },
	{ "garbage", "0", { SEG("<html>hello</html>", "E") } },
	{ "binary", "0", { SEG("\x00\x00\x12\x04\x00\x00\x00\x00\x00", "E") } },
	{ "two-digit status", "0", { SEG("HTTP/1.1 20 OK\r\n\r\n", "E") } },
	{ "status below 100", "0", { SEG("HTTP/1.1 099 Low\r\n\r\n", "E") } },
	{ "four-digit status", "0", { SEG("HTTP/1.1 2000 OK\r\n\r\n", "E") } },
	{ "no space after version", "0", { SEG("HTTP/1.1200 OK\r\n\r\n", "E") } },
	{ "negative Content-Length", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: -1\r\n\r\n", "E") } },
	{ "overflowing Content-Length", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 184467440737095516150\r\n\r\n", "E") } },
	{ "bad chunk size", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("g\r\n", "E") } },
	{ "chunk data overrun", "0", {
		SEG("HTTP/1.1 500 Oops\r\n", "S:500 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("2\r\nabc\r\n", "E") } },
	{ "bad trailer end", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: chunked\r\n\r\n", "H:ka ch"),
		SEG("0\r\n\rX", "E") } },
	{ "websocket frames after 101", "0", {
		SEG("HTTP/1.1 101 Switching Protocols\r\n", "S:101 1.1"),
		SEG("Upgrade: websocket\r\n\r\n", "H:ka cl=0;D"),
		SEG("\x81\x05hello", "E") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

#define NCASES(t) ((int)(sizeof(t) / sizeof((t)[0])) - 1)

START_TEST(test_req_ok)
{
	must_parse_req(&req_ok[_i]);
}
END_TEST

START_TEST(test_req_bad)
{
	must_not_parse_req(&req_bad[_i]);
}
END_TEST

START_TEST(test_resp_ok)
{
	must_parse_resp(&resp_ok[_i]);
}
END_TEST

START_TEST(test_resp_bad)
{
	must_not_parse_resp(&resp_bad[_i]);
}
END_TEST

/* --- the fast paths ------------------------------------------------------ */

/*
 * http.c reads a line that lies whole in the buffer in one go and leaves
 * every other to its byte machines, so a case fed whole takes the fast
 * paths and the same case fed byte by byte does not: the splits of
 * must_parse_*() compare the two. These cases aim at the fast paths' own
 * decisions: which names might be interesting, which values they read
 * themselves, where their 16- and 32-byte windows fall, and what they must
 * leave to the byte machines.
 */
static const struct hcase fast_req[] = {
	{ "curl's GET, as the preload sees it from nginx", NULL, {
		SEG("GET /ok HTTP/1.1\r\n", "S:GET /ok 1.1"),
		SEG("Host: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n", "H:ka cl=0;D") } },
	{ "a browser's GET", NULL, {
		SEG("GET /products?page=2 HTTP/1.1\r\n", "S:GET /products?page=2 1.1"),
		SEG("Host: shop.example.com\r\n"
		    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
		    "Gecko/20100101 Firefox/128.0\r\n"
		    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
		    "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
		    "Cookie: session=3f2a9c1e7b5d4f608a1c2e3b4d5f6a7b; theme=dark; lang=en; cart=17\r\n"
		    "Referer: https://shop.example.com/\r\nConnection: keep-alive\r\n"
		    "Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\n"
		    "Sec-Fetch-Mode: navigate\r\nSec-Fetch-Site: same-origin\r\n\r\n",
		    "H:ka cl=0;D") } },
	{ "the headers we read, in any case", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("cOnTeNt-LeNgTh: 2\r\nCONNECTION: Close\r\nx-APIPROF-profile: 1\r\n"
		    "EXPECT: 100-CONTINUE\r\n\r\n", "H:close ec pr cl=2"),
		SEG("ok", "D"),
		SEG("PUT / HTTP/1.1\r\n", "S:PUT / 1.1"),
		SEG("TRANSFER-ENCODING: Chunked\r\n\r\n", "H:ka ch"),
		SEG("0\r\n\r\n", "D") } },
	{ "names one byte off are other headers", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Lengt: 5\r\nContent-Lengthh: 5\r\nConnectiom: close\r\n"
		    "Expecu: 100-continue\r\nX-Apiprof-Profilf: 1\r\nTransfer-Encodinf: chunked\r\n"
		    "Content_Length: 7\r\nC0ntent-Length: 9\r\nXonnection: close\r\n"
		    "Expect-: 100-continue\r\n\r\n", "H:ka cl=0;D") } },
	{ "token bytes other than letters and '-' in names", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("X_Under_Score: 1\r\nX.Dot!Bang#$%&'*+^`|~: 1\r\nX-B3-TraceId: 463a\r\n"
		    "123: x\r\nConnection: close\r\n\r\n", "H:close cl=0;D") } },
	{ "names around 16 and 32 bytes, lines over 64", NULL, {
		SEG("POST /0123456789abcdef HTTP/1.1\r\n", "S:POST /0123456789abcdef 1.1"),
		SEG("Fifteen-Bytes-N: 1\r\nSixteen-Bytes-Na: 1\r\nSeventeen-Bytes-N: 1\r\n"
		    "Thirty-One-Bytes-Of-Name-Here-X: 1\r\nThirty-Two-Bytes-Of-Name-Here-XY: 1\r\n"
		    "Thirty-Three-Bytes-Of-Name-Here-X: 1\r\n"
		    "X-Long: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
		    "Content-Length: 3\r\n\r\n", "H:ka cl=3"),
		SEG("abc", "D") } },
	{ "values left to the byte machine", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Connection: Upgrade, close\r\nConnection: keep-alive,\r\n"
		    "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
		    "Expect: 100-continue, x\r\nX-Apiprof-Profile: 1,1\r\n\r\n", "H:close ec pr ch"),
		SEG("0\r\n\r\n", "D") } },
	{ "Content-Length forms", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Content-Length: 007\r\nContent-Length:7\r\nContent-Length: \t7 \t\r\n"
		    "Content-Length: 7 \r\r\n\r\n", "H:ka cl=7"),
		SEG("abcdefg", "D") } },
	{ "19 digits, and CR as whitespace", NULL, {
		SEG("POST / HTTP/1.1\r\n", "S:POST / 1.1"),
		SEG("Connection: keep-alive\rclose\r\nX-Foo: a\rb\r\n"
		    "Content-Length: 1844674407370955161\r\n\r\n", "H:close cl=1844674407370955161"),
		SEG("x", NULL) } },
	{ "bare LF, CR CR LF", NULL, {
		SEG("GET / HTTP/1.1\n", GET_S),
		SEG("Host: x\nConnection: close\r\r\nContent-Length: 0\n\n", "H:close cl=0;D") } },
	{ "short messages, and pipelined ones", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("A: b\r\n\r\n", "H:ka cl=0;D"),
		SEG("GET /2 HTTP/1.0\r\n", "S:GET /2 1.0"),
		SEG("\r\n", "H:close cl=0;D"),
		SEG("POST /3 HTTP/1.1\r\n", "S:POST /3 1.1"),
		SEG("Content-Length: 1\r\n\r\n", "H:ka cl=1"),
		SEG("x", "D"),
		SEG("GET /4 HTTP/1.1\r\n", "S:GET /4 1.1"),
		SEG("Connection: close\r\n\r\n", "H:close cl=0;D") } },
	{ "long and odd targets", NULL, {
		SEG("GET /0123456789abcde HTTP/1.1\r\n", "S:GET /0123456789abcde 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("GET /0123456789abcdef0123456789abcdef?q=%20&r=\xc3\xa9 HTTP/1.1\r\n",
		    "S:GET /0123456789abcdef0123456789abcdef?q=%20&r=\xc3\xa9 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("M-SEARCH * HTTP/1.1\r\n", "S:M-SEARCH * 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("GE_T / HTTP/1.1\r\n", "S:GE_T / 1.1"),
		SEG("\r\n", "H:ka cl=0;D") } },
	{ "blank line astride the header loop's 64-byte window", NULL, {
		/* its CR the window's last byte (the window starts after the
		 * request line), its LF the next window's first */
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\nX-Pad: 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI\r\n\r\n",
		    "H:ka cl=0;D") } },
	{ "CR inside a name", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\nContent\rLength: 5\r\n\r\n", "E") } },
	{ "space before the colon of a name we ignore", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host : x\r\n\r\n", "E") } },
	{ "byte >= 0x80 in a name", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Ho\x80st: x\r\n\r\n", "E") } },
	{ "DEL ending a name", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host\x7f: x\r\n\r\n", "E") } },
	{ "empty name after good lines", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\nAccept: */*\r\n: y\r\n\r\n", "E") } },
	{ "no colon after good lines", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\nAccept */*\r\n\r\n", "E") } },
	{ "fold after a Transfer-Encoding read in one go", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\nTransfer-Encoding: chunked\r\n\tgzip\r\n\r\n", "E") } },
	{ "20 digits over the maximum", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Content-Length: 18446744073709551616\r\n\r\n", "E") } },
	{ "CR ending the header block wrongly", NULL, {
		SEG(GET_HDR, GET_S),
		SEG("Host: x\r\n\rHost: y\r\n\r\n", "E") } },
	{ "DEL in a target", NULL, {
		SEG("GET /\x7f HTTP/1.1\r\n\r\n", "E") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

static const struct hcase fast_resp[] = {
	{ "nginx's reply: headers and body in two iovecs", "0", {
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Server: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 08:23:47 GMT\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
		    "H:ka cl=3"),
		SEG("ok\n", "D") } },
	{ "reasons over 32 and 64 bytes, framing in any case", "00", {
		SEG("HTTP/1.1 500 Internal Server Error, And Then Some More Words To Pass 64\r\n",
		    "S:500 1.1"),
		SEG("CONTENT-LENGTH: 4\r\nconnection: CLOSE\r\n\r\n", "H:close cl=4"),
		SEG("oops", "D:B=oops"),
		SEG("HTTP/1.1 200 Fine, Thanks For Asking\r\n", "S:200 1.1"),
		SEG("Transfer-Encoding: CHUNKED\r\n\r\n", "H:ka ch"),
		SEG("2\r\nok\r\n0\r\n\r\n", "D") } },
	{ "blank line astride the first and the second 64-byte windows", "00", {
		/* from each response's first byte (a read starting there, as
		 * every_split() makes one): CR at 63, LF at 64; then CR at
		 * 127, LF at 128 */
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\nX-Pad: 0123456789abcdefgh\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D"),
		SEG("HTTP/1.1 200 OK\r\n", "S:200 1.1"),
		SEG("Content-Length: 2\r\nX-Pad-One: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		    "X-Pad-Two: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n", "H:ka cl=2"),
		SEG("ok", "D") } },
	{ "short replies back to back", "000", {
		SEG("HTTP/1.1 204 No Content\r\n", "S:204 1.1"),
		SEG("\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.1 200\r\n", "S:200 1.1"),
		SEG("Content-Length: 0\r\n\r\n", "H:ka cl=0;D"),
		SEG("HTTP/1.0 200 OK\n", "S:200 1.0"),
		SEG("Connection: keep-alive\nContent-Length: 1\n\n", "H:ka cl=1"),
		SEG("x", "D") } },
	{ NULL, NULL, { SEG("", NULL) } }
};

START_TEST(test_fast_req)
{
	must_parse_req(&fast_req[_i]);
}
END_TEST

START_TEST(test_fast_resp)
{
	must_parse_resp(&fast_resp[_i]);
}
END_TEST

/*
 * Every case of every table, split in two at every position: wherever a
 * read ends, inside a line or right before or after one, the fast paths
 * and the byte machines must hand over without a trace of the seam.
 */
static void every_split(const struct hcase *c, int is_req)
{
	struct trace want, got;
	size_t len;
	char *in = case_build(c, &len, &want);
	for (size_t k = 1; k < len; k++) {
		if (is_req)
			req_run(in, len, split_at(k), &got);
		else
			resp_run(in, len, c->heads, split_at(k), &got);
		if (strcmp(got.s, want.s) != 0)
			ck_abort_msg("case '%s' split at %zu:\n got: %s\nwant: %s", c->name, k,
			             got.s, want.s);
	}
	free(in);
}

static const struct hcase *const req_tables[] = { req_ok, req_bad, fast_req };
static const struct hcase *const resp_tables[] = { resp_ok, resp_bad, fast_resp };

START_TEST(test_every_split)
{
	for (size_t t = 0; t < 3; t++) {
		for (const struct hcase *c = req_tables[t]; c->name; c++)
			every_split(c, 1);
		for (const struct hcase *c = resp_tables[t]; c->name; c++)
			every_split(c, 0);
	}
}
END_TEST

/*
 * Header blocks nobody wrote by hand, from lines made to sit on the fast
 * paths' decisions (names that almost are the ones we read, odd bytes
 * where a name ends, values the fast path reads or leaves alone), must
 * trace the same fed whole (fast paths), byte by byte (byte machines) and
 * in two pieces split anywhere.
 */
static const char *const gen_names[] = {
	"Host", "A", "User-Agent", "Accept", "Fifteen-Bytes-N", "Sixteen-Bytes-Na",
	"Thirty-Three-Bytes-Of-Name-Here-X", "X_Y", "X.Y", "X-B3-Id", "1",
	"Content-Length", "content-LENGTH", "Content-Lengt", "Content-Lengthh",
	"Connection", "CONNECTION", "Connectiom", "Transfer-Encoding", "transfer-encodinG",
	"Transfer-Encodinf", "Expect", "eXPECT", "Expecu", "X-Apiprof-Profile",
	"x-apiprof-profile", "X-Apiprof-Profilf", "Content_Length",
	/* from here on, names that make the line invalid */
	"Content\rLength", "Host ", "Ho\x80st", "Host\x7f", "", "Bad\x01",
};
#define GEN_GOOD_NAMES 28
static const char *const gen_values[] = {
	"", " ", " x", " 0", " 7", " 007", "\t7 ", " 1844674407370955161", " close",
	" Close", " keep-alive", " keep-alive, close", " Upgrade", " \t close \t ",
	" chunked", " CHUNKED", " gzip", " gzip, chunked", " 100-continue",
	" 100-Continue", " 200-ok", " 1", " 1 ", " 11", " a\rb", " 7\r7", " 7,7",
	" 7, 8", " 18446744073709551616", " -1", " +7", " \x01\xff",
	" Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static size_t gen_block(uint32_t *rng, int is_req, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "%s", is_req ? "POST /p HTTP/1.1\r\n"
	                                                      : "HTTP/1.1 200 OK\r\n");
	int lines = (int)(xorshift(rng) % 12);
	for (int l = 0; l < lines && n + 200 < cap; l++) {
		uint32_t r = xorshift(rng);
		/* mostly valid names, so that blocks often get to their end */
		size_t nn = r % 16 ? GEN_GOOD_NAMES : NELEM(gen_names);
		const char *name = gen_names[(r >> 4) % nn];
		const char *value = gen_values[(r >> 12) % NELEM(gen_values)];
		const char *eol = (r >> 24) % 4 ? "\r\n" : "\n";
		if ((r >> 28) == 0)
			n += (size_t)snprintf(buf + n, cap - n, " folded%s", eol);
		else
			n += (size_t)snprintf(buf + n, cap - n, "%s:%s%s", name, value, eol);
	}
	n += (size_t)snprintf(buf + n, cap - n, "\r\n0\r\n\r\n");
	return n;
}

START_TEST(test_fast_matches_bytes)
{
	enum { ROUNDS = 400, CAP = 4096 };
	static char buf[CAP];
	static struct trace want, got;
	uint32_t rng = 0x1b873593u;
	int done = 0;

	for (int round = 0; round < ROUNDS; round++) {
		int is_req = round % 2 == 0;
		size_t n = gen_block(&rng, is_req, buf, CAP);
		if (is_req)
			req_run(buf, n, splitter(0), &want);
		else
			resp_run(buf, n, "0", splitter(0), &want);
		done += strstr(want.s, "H:") != NULL;
		for (size_t k = 0; k < n; k++) {
			/* k == 0: byte by byte; else two pieces */
			struct splitter sp = k ? split_at(k) : splitter(1);
			if (is_req)
				req_run(buf, n, sp, &got);
			else
				resp_run(buf, n, "0", sp, &got);
			if (strcmp(got.s, want.s) != 0)
				ck_abort_msg("round %d split %zu:\n got: %.400s\nwant: %.400s",
				             round, k, got.s, want.s);
		}
	}
	/* both outcomes must be common, or the comparison proves little */
	ck_assert_int_gt(done, ROUNDS / 4);
	ck_assert_int_lt(done, ROUNDS - ROUNDS / 8);
}
END_TEST

START_TEST(test_reused_parsers)
{
	/* init and begin leave no trace of the previous message in results */
	struct ap_http_req rq;
	struct ap_http_resp rs;
	enum ap_http_ev ev;
	const char *big = "PROPPATCH /a/much/longer/target/than/the/next/one HTTP/1.1\r\n";
	const char *small = "GET / HTTP/1.1\r\n";
	const char *e1 = "HTTP/1.1 500 E\r\nContent-Length: 6\r\n\r\nabcdef";
	const char *e2 = "HTTP/1.1 502 E\r\nContent-Length: 2\r\n\r\nxy";

	memset(&rq, 0x5a, sizeof rq);
	ap_http_req_init(&rq);
	ck_assert_uint_eq(ap_http_req_feed(&rq, big, strlen(big), &ev), strlen(big));
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ap_http_req_init(&rq);
	ck_assert_str_eq(rq.method, "");
	ck_assert_str_eq(rq.target, "");
	ck_assert_uint_eq(ap_http_req_feed(&rq, small, strlen(small), &ev), strlen(small));
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_str_eq(rq.method, "GET");
	ck_assert_str_eq(rq.target, "/");
	ck_assert_uint_eq(rq.method_len, 3);
	ck_assert_uint_eq(rq.target_len, 1);

	memset(&rs, 0xa5, sizeof rs);
	ap_http_resp_init(&rs);
	for (int r = 0; r < 2; r++) {
		const char *in = r ? e2 : e1;
		size_t off = 0, len = strlen(in);
		ap_http_resp_begin(&rs, 0);
		ck_assert_uint_eq(rs.errbody_len, 0);
		ck_assert_uint_eq(rs.status, 0);
		do
			off += ap_http_resp_feed(&rs, in + off, len - off, &ev);
		while (ev != AP_HTTP_MSG_DONE && ev != AP_HTTP_ERROR);
		ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
		ck_assert_uint_eq(rs.errbody_len, r ? 2 : 6);
		ck_assert_int_eq(memcmp(rs.errbody, r ? "xy" : "abcdef", rs.errbody_len), 0);
	}
}
END_TEST

/* --- cases too big for the tables ---------------------------------------- */

/* Builds prefix + n copies of `fill` + suffix in a malloc'd buffer. */
static char *build(const char *prefix, size_t n, char fill, const char *suffix, size_t *len)
{
	size_t a = strlen(prefix), c = strlen(suffix);
	char *b = malloc(a + n + c + 1);
	ck_assert_ptr_nonnull(b);
	memcpy(b, prefix, a);
	memset(b + a, fill, n);
	memcpy(b + a + n, suffix, c + 1);
	*len = a + n + c;
	return b;
}

/* Every split of `in` traces `want`. */
static void req_all_splits(const char *in, size_t len, const char *want)
{
	struct trace got;
	for (int i = 0; i < NSPLITS; i++) {
		req_run(in, len, splitter(i), &got);
		ck_assert_msg(strcmp(got.s, want) == 0, "split %d:\n got: %.300s\nwant: %.300s",
		              i, got.s, want);
	}
}

static void resp_all_splits(const char *in, size_t len, const char *heads, const char *want)
{
	struct trace got;
	for (int i = 0; i < NSPLITS; i++) {
		resp_run(in, len, heads, splitter(i), &got);
		ck_assert_msg(strcmp(got.s, want) == 0, "split %d:\n got: %.300s\nwant: %.300s",
		              i, got.s, want);
	}
}

#define MB (1024 * 1024)

START_TEST(test_req_1mb_header)
{
	/* a 1 MB cookie, then the framing header must still be seen */
	size_t len;
	char *in = build("GET /big HTTP/1.1\r\nCookie: ", MB, 'c',
	                 "\r\nContent-Length: 2\r\n\r\nokGET /n HTTP/1.1\r\n", &len);
	char want[256];
	size_t hdr_end = 19 + 8 + MB + 2 + 19 + 2;
	snprintf(want, sizeof want,
	         "S:GET /big 1.1@19; H:ka cl=2@%zu; D@%zu; S:GET /n 1.1@%zu",
	         hdr_end, hdr_end + 2, len);
	req_all_splits(in, len, want);
	free(in);
}
END_TEST

START_TEST(test_req_1mb_interesting_header)
{
	/* a 1 MB Connection value is read token by token, never stored */
	size_t len;
	char *in = build("GET / HTTP/1.1\r\nConnection: ", MB, 'k', ", close\r\n\r\n", &len);
	char want[256];
	snprintf(want, sizeof want, "S:GET / 1.1@16; H:close cl=0@%zu; D@%zu", len, len);
	req_all_splits(in, len, want);
	free(in);
}
END_TEST

START_TEST(test_req_1mb_body)
{
	size_t len;
	char *in = build("POST /upload HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n", MB, 'x',
	                 "GET /after HTTP/1.1\r\n\r\n", &len);
	char want[256];
	size_t body_at = 23 + 25 + 2;
	snprintf(want, sizeof want,
	         "S:POST /upload 1.1@23; H:ka cl=1048576@%zu; D@%zu; "
	         "S:GET /after 1.1@%zu; H:ka cl=0@%zu; D@%zu",
	         body_at, body_at + MB, body_at + MB + 21, len, len);
	req_all_splits(in, len, want);
	free(in);
}
END_TEST

START_TEST(test_req_1mb_chunk)
{
	/* one 1 MB chunk, its size split anywhere */
	size_t len;
	char *in = build("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n", MB,
	                 'z', "\r\n0\r\n\r\n", &len);
	char want[256];
	snprintf(want, sizeof want, "S:POST / 1.1@17; H:ka ch@47; D@%zu", len);
	req_all_splits(in, len, want);
	free(in);
}
END_TEST

START_TEST(test_req_huge_chunk_size)
{
	/* the largest chunk size fits; the parser just keeps skipping */
	const char in[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	                  "ffffffffffffffff\r\nsome data";
	req_all_splits(in, sizeof in - 1, "S:POST / 1.1@17; H:ka ch@47");
}
END_TEST

/* A request line whose target has `n` bytes, the trace it must give. */
static void target_of(size_t n, int truncated)
{
	size_t len;
	char *in = build("GET /", n - 1, 'a', " HTTP/1.1\r\n\r\n", &len);
	size_t kept = n < AP_HTTP_TARGET_MAX - 1 ? n : AP_HTTP_TARGET_MAX - 1;
	char want[1024];
	int w = snprintf(want, sizeof want, "S:GET %.*s 1.1%s@%zu; H:ka cl=0@%zu; D@%zu",
	                 (int)kept, in + 4, truncated ? "~" : "", len - 2, len, len);
	ck_assert_int_lt(w, (int)sizeof want);
	req_all_splits(in, len, want);

	struct ap_http_req p;
	enum ap_http_ev ev;
	ap_http_req_init(&p);
	ap_http_req_feed(&p, in, len, &ev);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_uint_eq(p.target_len, kept);
	ck_assert_uint_eq(p.target_truncated, truncated);
	ck_assert_uint_eq(strlen(p.target), kept);
	free(in);
}

START_TEST(test_req_target_truncation)
{
	target_of(510, 0);
	target_of(511, 0);
	target_of(512, 1);
	target_of(600, 1);
	target_of(MB, 1);
}
END_TEST

/*
 * The fast paths' own edges, swept rather than picked: http.c finds LFs
 * 64 bytes at a time (windows that follow each other from the start of
 * the header block, the last one moved back to end with the buffer), a
 * name's end with one 16-byte load at the line's start (moved back near the
 * end of the buffer), and the request line's method, SP and target end
 * with one 16-byte load at its start. A pad of every length from 0 to 150
 * puts each LF, name end, blank line and target end on every position
 * around those edges; each message is fed whole, byte by byte, in random
 * pieces and split in two at every offset, and must trace as written here
 * (worked out without the parser).
 */
static void sweep_req(const char *in, size_t len, const char *want)
{
	struct trace got;
	req_all_splits(in, len, want);
	for (size_t k = 1; k < len; k++) {
		req_run(in, len, split_at(k), &got);
		ck_assert_msg(strcmp(got.s, want) == 0,
		              "split at %zu of\n%s\n got: %.300s\nwant: %.300s", k, in, got.s,
		              want);
	}
}

static void sweep_resp(const char *in, size_t len, const char *want)
{
	struct trace got;
	resp_all_splits(in, len, "0", want);
	for (size_t k = 1; k < len; k++) {
		resp_run(in, len, "0", split_at(k), &got);
		ck_assert_msg(strcmp(got.s, want) == 0,
		              "split at %zu of\n%s\n got: %.300s\nwant: %.300s", k, in, got.s,
		              want);
	}
}

START_TEST(test_fast_edges_values)
{
	/* a value of every length before the lines we read: their LFs and the
	 * blank line fall on and around 16, 32, 64 and 128 */
	static const char *const eol[] = { "\r\n", "\n" };
	for (int e = 0; e < 2; e++) {
		for (size_t pad = 0; pad <= 150; pad++) {
			char in[512], want[256];
			int n = snprintf(in, sizeof in,
			                 "GET / HTTP/1.1\r\nX-Pad: %.*s%sConnection: close%s"
			                 "Content-Length: 1%s%sx",
			                 (int)pad, LONG_A, eol[e], eol[e], eol[e], eol[e]);
			size_t hdr_end = (size_t)n - 1;
			snprintf(want, sizeof want, "S:GET / 1.1@16; H:close cl=1@%zu; D@%zu",
			         hdr_end, (size_t)n);
			sweep_req(in, (size_t)n, want);

			n = snprintf(in, sizeof in,
			             "HTTP/1.1 200 OK\r\nServer: %.*s%sContent-Length: 2%s"
			             "Connection: keep-alive%s%sok",
			             (int)pad, LONG_A, eol[e], eol[e], eol[e], eol[e]);
			snprintf(want, sizeof want, "S:200 1.1@17; H:ka cl=2@%zu; D@%zu",
			         (size_t)n - 2, (size_t)n);
			sweep_resp(in, (size_t)n, want);
		}
	}
}
END_TEST

START_TEST(test_fast_edges_names)
{
	/* names of every length from 1 to 40 (letters, '-', then a digit or
	 * '_' in them), before and after a framing header, and a bad byte at
	 * every position of a name */
	for (size_t len = 1; len <= 40; len++) {
		char name[64], in[512], want[256];
		memcpy(name, LONG_NAME, len);
		name[len] = '\0';
		int n = snprintf(in, sizeof in,
		                 "POST /p HTTP/1.1\r\n%s: v\r\nContent-Length: 3\r\n%s: w\r\n\r\nabc",
		                 name, name);
		snprintf(want, sizeof want, "S:POST /p 1.1@18; H:ka cl=3@%zu; D@%zu",
		         (size_t)n - 3, (size_t)n);
		sweep_req(in, (size_t)n, want);

		for (size_t at = 0; at < len; at++) {
			static const char odd[] = { '7', '_', ' ', '@', '\x80' };
			for (size_t o = 0; o < sizeof odd; o++) {
				char bad[64];
				memcpy(bad, name, len + 1);
				bad[at] = odd[o];
				n = snprintf(in, sizeof in,
				             "HTTP/1.1 200 OK\r\nA: b\r\n%s: x\r\nContent-Length: 0\r\n\r\n",
				             bad);
				/* '7' and '_' are token bytes; SP, '@' and 0x80 are not,
				 * but an SP first folds the line into the one before */
				if (o < 2 || (at == 0 && odd[o] == ' '))
					snprintf(want, sizeof want, "S:200 1.1@17; H:ka cl=0@%d; D@%d", n, n);
				else
					snprintf(want, sizeof want, "S:200 1.1@17; E");
				sweep_resp(in, (size_t)n, want);
			}
		}
	}
}
END_TEST

START_TEST(test_fast_edges_request_line)
{
	/* methods of 1 to 16 bytes, upper-case or not, and targets of every
	 * length to 40: the SP and the target's end on and around byte 16 */
	static const char *const methods[] = {
		"G", "GET", "M-SEARCH", "get", "ABCDEFGHIJKLMN", "ABCDEFGHIJKLMNO",
		"ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNo",
	};
	for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
		for (size_t t = 1; t <= 40; t++) {
			char in[256], want[256];
			int n = snprintf(in, sizeof in, "%s /%.*s HTTP/1.1\r\nHost: x\r\n\r\n",
			                 methods[m], (int)t - 1, LONG_A);
			if (strlen(methods[m]) > AP_HTTP_METHOD_MAX - 1)
				snprintf(want, sizeof want, "E"); /* methods are short */
			else
				snprintf(want, sizeof want, "S:%s /%.*s 1.1@%d; H:ka cl=0@%d; D@%d",
				         methods[m], (int)t - 1, LONG_A, n - 11, n, n);
			sweep_req(in, (size_t)n, want);

			/* no method: an SP first, before the method or instead */
			char sp[256];
			int k = snprintf(sp, sizeof sp, " %s", in);
			sweep_req(sp, (size_t)k, "E");
			k = snprintf(sp, sizeof sp, " /%.*s HTTP/1.1\r\n\r\n", (int)t - 1, LONG_A);
			sweep_req(sp, (size_t)k, "E");

			/* a DEL or a control byte ending the target too early */
			if (t >= 2) {
				in[strlen(methods[m]) + t] = t % 2 ? '\x7f' : '\x01';
				sweep_req(in, (size_t)n, "E");
			}
		}
	}
}
END_TEST

START_TEST(test_req_results_until_next_line)
{
	/* method and target stay readable after MSG_DONE, through the next
	 * request's leading empty lines */
	const char in[] = "DELETE /items/7?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\r\n";
	struct ap_http_req p;
	enum ap_http_ev ev;
	size_t off = 0;
	ap_http_req_init(&p);
	off += ap_http_req_feed(&p, in + off, sizeof in - 1 - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_str_eq(p.method, "DELETE");
	ck_assert_uint_eq(p.method_len, 6);
	ck_assert_str_eq(p.target, "/items/7?x=1");
	ck_assert_uint_eq(p.target_len, 12);
	ck_assert_uint_eq(p.version_minor, 0);
	off += ap_http_req_feed(&p, in + off, sizeof in - 1 - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_HEADERS_DONE);
	ck_assert_uint_eq(p.keep_alive, 1);
	ck_assert_uint_eq(ap_http_req_feed(&p, in + off, sizeof in - 1 - off, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	off += ap_http_req_feed(&p, in + off, sizeof in - 1 - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_uint_eq(off, sizeof in - 1);
	ck_assert_str_eq(p.method, "DELETE");
	ck_assert_str_eq(p.target, "/items/7?x=1");
}
END_TEST

START_TEST(test_zeroed_parsers_work)
{
	/* embedded in zeroed connection records, without an init call */
	struct ap_http_req rq;
	struct ap_http_resp rs;
	enum ap_http_ev ev;
	memset(&rq, 0, sizeof rq);
	memset(&rs, 0, sizeof rs);
	ck_assert_uint_eq(ap_http_req_feed(&rq, "GET / HTTP/1.1\r\n", 16, &ev), 16);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_uint_eq(ap_http_resp_feed(&rs, "HTTP/1.1 200 OK\r\n", 17, &ev), 17);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_uint_eq(rs.status, 200);
}
END_TEST

START_TEST(test_empty_feeds)
{
	struct ap_http_req rq;
	struct ap_http_resp rs;
	enum ap_http_ev ev = AP_HTTP_ERROR;
	ap_http_req_init(&rq);
	ap_http_resp_init(&rs);
	ck_assert_uint_eq(ap_http_req_feed(&rq, "", 0, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ev = AP_HTTP_ERROR;
	ck_assert_uint_eq(ap_http_req_feed(&rq, NULL, 10, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ev = AP_HTTP_ERROR;
	ck_assert_uint_eq(ap_http_resp_feed(&rs, NULL, 0, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_int_eq(ap_http_resp_eof(&rs), 0);
}
END_TEST

START_TEST(test_errors_are_sticky)
{
	struct ap_http_req rq;
	struct ap_http_resp rs;
	enum ap_http_ev ev;
	ap_http_req_init(&rq);
	ap_http_req_feed(&rq, "GET / HTTP/9.9\r\n", 16, &ev);
	ck_assert_int_eq(ev, AP_HTTP_ERROR);
	ck_assert_uint_eq(ap_http_req_feed(&rq, "GET / HTTP/1.1\r\n", 16, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_ERROR);

	ap_http_resp_init(&rs);
	ap_http_resp_feed(&rs, "SSH-2.0-OpenSSH\r\n", 17, &ev);
	ck_assert_int_eq(ev, AP_HTTP_ERROR);
	/* a new response cannot be found once framing is lost */
	ap_http_resp_begin(&rs, 0);
	ck_assert_uint_eq(ap_http_resp_feed(&rs, "HTTP/1.1 200 OK\r\n", 17, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_ERROR);
	/* init is the explicit reset */
	ap_http_resp_init(&rs);
	ck_assert_uint_eq(ap_http_resp_feed(&rs, "HTTP/1.1 200 OK\r\n", 17, &ev), 17);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
}
END_TEST

START_TEST(test_resp_errbody_capped)
{
	/* 300 bytes of body: exactly the first 200 kept, plain and chunked */
	char body[301];
	for (int i = 0; i < 300; i++)
		body[i] = (char)('a' + i % 26);
	body[300] = '\0';
	char in[1024], want[1024];
	int n = snprintf(in, sizeof in, "HTTP/1.1 500 E\r\nContent-Length: 300\r\n\r\n%s", body);
	snprintf(want, sizeof want, "S:500 1.1@16; H:ka cl=300@39; D:B=%.200s@%d", body, n);
	resp_all_splits(in, (size_t)n, "0", want);

	/* chunks of 7 bytes: the chunk framing never reaches errbody */
	int o = snprintf(in, sizeof in, "HTTP/1.1 504 E\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 300; i += 7) {
		int k = 300 - i < 7 ? 300 - i : 7;
		o += snprintf(in + o, sizeof in - (size_t)o, "%x;e=1\r\n%.*s\r\n", k, k, body + i);
		ck_assert_int_lt(o, (int)sizeof in - 64);
	}
	o += snprintf(in + o, sizeof in - (size_t)o, "0\r\n\r\n");
	snprintf(want, sizeof want, "S:504 1.1@16; H:ka ch@46; D:B=%.200s@%d", body, o);
	resp_all_splits(in, (size_t)o, "0", want);

	struct ap_http_resp p;
	enum ap_http_ev ev;
	ap_http_resp_init(&p);
	size_t off = 0;
	do
		off += ap_http_resp_feed(&p, in + off, (size_t)o - off, &ev);
	while (ev != AP_HTTP_MSG_DONE && ev != AP_HTTP_ERROR && off < (size_t)o);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	ck_assert_uint_eq(p.errbody_len, AP_HTTP_ERRBODY_MAX);
	ck_assert_int_eq(memcmp(p.errbody, body, AP_HTTP_ERRBODY_MAX), 0);
}
END_TEST

START_TEST(test_resp_eof)
{
	struct ap_http_resp p;
	enum ap_http_ev ev;
	const char *h = "HTTP/1.0 200 OK\r\nServer: x\r\n";
	ap_http_resp_init(&p);
	ap_http_resp_begin(&p, 0);
	ck_assert_int_eq(ap_http_resp_eof(&p), 0);
	ap_http_resp_feed(&p, h, strlen(h), &ev); /* status line only */
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_int_eq(ap_http_resp_eof(&p), 0);
	ap_http_resp_feed(&p, h + 17, strlen(h) - 17, &ev);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_int_eq(ap_http_resp_eof(&p), 0); /* headers unfinished */
	ck_assert_uint_eq(ap_http_resp_feed(&p, "\r\n", 2, &ev), 2);
	ck_assert_int_eq(ev, AP_HTTP_HEADERS_DONE);
	ck_assert_uint_eq(p.until_close, 1);
	ck_assert_uint_eq(p.keep_alive, 0);
	ck_assert_int_eq(ap_http_resp_eof(&p), 1);
	ck_assert_uint_eq(ap_http_resp_feed(&p, "body", 4, &ev), 4);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE); /* never MSG_DONE */
	ck_assert_int_eq(ap_http_resp_eof(&p), 1);

	/* a length-delimited body cut short does not end cleanly */
	const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	ap_http_resp_begin(&p, 0);
	size_t off = ap_http_resp_feed(&p, cl, strlen(cl), &ev);
	off += ap_http_resp_feed(&p, cl + off, strlen(cl) - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_HEADERS_DONE);
	off += ap_http_resp_feed(&p, cl + off, strlen(cl) - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_uint_eq(off, strlen(cl));
	ck_assert_int_eq(ap_http_resp_eof(&p), 0);
}
END_TEST

START_TEST(test_resp_next_without_begin)
{
	/* bytes after MSG_DONE with no begin() start the next response and keep
	 * the HEAD flag, as after an interim 1xx */
	const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
	                  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	struct ap_http_resp p;
	enum ap_http_ev ev;
	size_t off = 0, len = sizeof in - 1;
	ap_http_resp_init(&p);
	ap_http_resp_begin(&p, 1);
	for (int i = 0; i < 3; i++)
		off += ap_http_resp_feed(&p, in + off, len - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	ck_assert_uint_eq(p.status, 100);
	off += ap_http_resp_feed(&p, in + off, len - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_START_LINE);
	ck_assert_uint_eq(p.status, 200);
	off += ap_http_resp_feed(&p, in + off, len - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_HEADERS_DONE);
	ck_assert_uint_eq(off, len);
	ck_assert_uint_eq(ap_http_resp_feed(&p, in + off, 0, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE); /* HEAD: no body */
}
END_TEST

START_TEST(test_expect_continue_exchange)
{
	/* the client waits for 100 Continue before sending its body */
	struct ap_http_req rq;
	struct ap_http_resp rs;
	enum ap_http_ev ev;
	const char *req = "PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
	const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";
	const char *fin = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";

	ap_http_req_init(&rq);
	ap_http_resp_init(&rs);
	size_t off = ap_http_req_feed(&rq, req, strlen(req), &ev);
	off += ap_http_req_feed(&rq, req + off, strlen(req) - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_HEADERS_DONE);
	ck_assert_uint_eq(off, strlen(req));
	ck_assert_uint_eq(rq.expect_continue, 1);
	ck_assert_uint_eq(rq.content_length, 3);
	ck_assert_uint_eq(ap_http_req_feed(&rq, "", 0, &ev), 0);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE); /* body still due */

	ap_http_resp_begin(&rs, 0);
	off = 0;
	for (int i = 0; i < 3; i++)
		off += ap_http_resp_feed(&rs, cont + off, strlen(cont) - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	ck_assert_uint_eq(rs.status, 100);

	ck_assert_uint_eq(ap_http_req_feed(&rq, "abc", 3, &ev), 3);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);

	ap_http_resp_begin(&rs, 0);
	off = 0;
	for (int i = 0; i < 3; i++)
		off += ap_http_resp_feed(&rs, fin + off, strlen(fin) - off, &ev);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	ck_assert_uint_eq(rs.status, 201);
	ck_assert_uint_eq(off, strlen(fin));
}
END_TEST

/* --- fuzzing --------------------------------------------------------------- */

static const char *const fuzz_req_seeds[] = {
	"GET /a?b=c HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
	"POST /p HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
	"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n",
	"\r\nOPTIONS * HTTP/1.1\nX-Apiprof-Profile: 1\nX: a\n b\n\n",
};
static const char *const fuzz_resp_seeds[] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.0 503 E\r\n\r\nbody until close",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/*
 * One round's input: random bytes, or a few well-formed messages of the
 * parser's direction with random bytes overwritten by the ones framing
 * depends on. Parsers must stay inside their input and their fields either
 * way.
 */
static size_t fuzz_input(uint32_t *rng, int is_req, char *buf, size_t cap)
{
	const char *const *seed = is_req ? fuzz_req_seeds : fuzz_resp_seeds;
	size_t nseed = is_req ? NELEM(fuzz_req_seeds) : NELEM(fuzz_resp_seeds);
	size_t n = 0;

	if (xorshift(rng) % 4 == 0) {
		n = 1 + xorshift(rng) % cap;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)xorshift(rng);
		return n;
	}
	for (;;) {
		const char *s = seed[xorshift(rng) % nseed];
		size_t k = strlen(s);
		if (n + k > cap)
			break;
		memcpy(buf + n, s, k);
		n += k;
	}
	for (uint32_t m = xorshift(rng) % 3; m > 0; m--)
		buf[xorshift(rng) % n] = "\r\n :;,0fF\x00\xff"[xorshift(rng) % 11];
	return n;
}

/* Feeds one piece to parser `who` (requests first, then responses) until it
 * is used up or the parser fails. Returns the events reported. */
static size_t fuzz_feed(struct ap_http_req *rq, struct ap_http_resp *rs, uint32_t *rng,
                        const char *chunk, size_t k, int *failed)
{
	size_t o = 0, events = 0;
	for (int calls = 0;; calls++) {
		enum ap_http_ev ev;
		size_t got;
		CHECK(calls < 100000); /* always progresses */
		if (rq) {
			got = ap_http_req_feed(rq, chunk + o, k - o, &ev);
			req_invariants(rq);
		} else {
			got = ap_http_resp_feed(rs, chunk + o, k - o, &ev);
			CHECK(rs->errbody_len <= AP_HTTP_ERRBODY_MAX);
			if (ev == AP_HTTP_MSG_DONE)
				ap_http_resp_begin(rs, (int)(xorshift(rng) % 8 == 0));
		}
		CHECK(got <= k - o);
		o += got;
		if (ev == AP_HTTP_NEED_MORE) {
			CHECK(o == k);
			return events;
		}
		if (ev == AP_HTTP_ERROR) {
			*failed = 1;
			return events;
		}
		events++;
	}
}

START_TEST(test_fuzz)
{
	enum { NPARSERS = 20, ROUNDS = 600, CAP = 4096 };
	static struct ap_http_req rq[NPARSERS / 2];
	static struct ap_http_resp rs[NPARSERS / 2];
	static char buf[CAP], arena[CAP];
	uint32_t rng = 0x9e3779b9u;
	size_t events = 0, errors = 0;

	for (int i = 0; i < NPARSERS / 2; i++) {
		ap_http_req_init(&rq[i]);
		ap_http_resp_init(&rs[i]);
	}
	for (int round = 0; round < ROUNDS; round++) {
		int who = (int)(xorshift(&rng) % NPARSERS), is_req = who < NPARSERS / 2;
		struct ap_http_req *q = is_req ? &rq[who] : NULL;
		struct ap_http_resp *r = is_req ? NULL : &rs[who - NPARSERS / 2];
		size_t n = fuzz_input(&rng, is_req, buf, CAP), pos = 0;
		struct splitter sp = { SPLIT_RANDOM, xorshift(&rng) | 1 };
		int failed = 0;
		while (pos < n && !failed) {
			size_t k = split_next(&sp, n - pos);
			events += fuzz_feed(q, r, &rng, place(arena, CAP, buf + pos, k), k, &failed);
			pos += k;
		}
		errors += (size_t)failed;
		/* a failed connection is dropped; its record serves the next one */
		if (failed || xorshift(&rng) % 4 == 0) {
			if (q)
				ap_http_req_init(q);
			else
				ap_http_resp_init(r);
		}
	}
	/* both outcomes must be common, or the fuzzing proves little */
	ck_assert_uint_gt(events, 2000);
	ck_assert_uint_gt(errors, 100);
}
END_TEST

/*
 * The property the tables check, on inputs nobody wrote by hand: mutated
 * messages must give the same trace (events, their offsets and results, and
 * which one fails) whether fed whole, byte by byte or in random pieces.
 */
START_TEST(test_fuzz_split_invariance)
{
	enum { ROUNDS = 300, CAP = 1024 };
	static char buf[CAP];
	static struct trace want, got;
	uint32_t rng = 0x2545f491u;

	for (int round = 0; round < ROUNDS; round++) {
		int is_req = round % 2 == 0;
		size_t n = fuzz_input(&rng, is_req, buf, CAP);
		for (int i = 0; i < NSPLITS; i++) {
			struct trace *t = i == 0 ? &want : &got;
			if (is_req)
				req_run(buf, n, splitter(i), t);
			else
				resp_run(buf, n, "0", splitter(i), t);
			if (i > 0 && strcmp(got.s, want.s) != 0)
				ck_abort_msg("round %d split %d:\n got: %.400s\nwant: %.400s",
				             round, i, got.s, want.s);
		}
	}
}
END_TEST

/* The trace without its START_LINE and HEADERS_DONE events, which
 * ap_http_resp_feed_to_end() does not report. */
static void drop_start_and_headers(struct trace *t)
{
	struct trace kept = { .len = 0 };
	kept.s[0] = '\0';
	char *save = NULL;
	for (char *e = strtok_r(t->s, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
		while (*e == ' ')
			e++;
		if (strncmp(e, "S:", 2) != 0 && strncmp(e, "H:", 2) != 0)
			tr_add(&kept, "%s", e);
	}
	*t = kept;
}

/* Every table's requests, in every split, through the preload's
 * shortcuts (ap_http_req_feed_head(), ap_http_req_end_bodyless()): the
 * same trace, MSG_DONE and errors included, with calls fewer. */
START_TEST(test_req_end_bodyless)
{
	const struct hcase *tables[] = { req_ok, fast_req, req_bad };
	const size_t sizes[] = { NCASES(req_ok), NCASES(fast_req), NCASES(req_bad) };
	shortcuts = 1;
	for (size_t t = 0; t < 3; t++)
		for (size_t i = 0; i < sizes[t]; i++)
			must_parse_req(&tables[t][i]);
	shortcuts = 0;
}
END_TEST

/* Only a whole status line makes the status valid: "HTTP/1.1 2" leaves a
 * partial number in status, which the preload must not report if the
 * connection closes there. */
START_TEST(test_resp_status_seen)
{
	struct ap_http_resp p;
	enum ap_http_ev ev;
	ap_http_resp_init(&p);
	ap_http_resp_begin(&p, 0);
	ck_assert_int_eq(ap_http_resp_status_seen(&p), 0);
	ck_assert_uint_eq(ap_http_resp_feed_to_end(&p, "HTTP/1.1 2", 10, &ev), 10);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_int_eq(ap_http_resp_status_seen(&p), 0);
	ck_assert_uint_eq(ap_http_resp_feed_to_end(&p, "04 No Content\r\n", 15, &ev), 15);
	ck_assert_int_eq(ev, AP_HTTP_NEED_MORE);
	ck_assert_int_eq(ap_http_resp_status_seen(&p), 1);
	ck_assert_uint_eq(p.status, 204);
	ck_assert_uint_eq(ap_http_resp_feed_to_end(&p, "\r\n", 2, &ev), 2);
	ck_assert_int_eq(ev, AP_HTTP_MSG_DONE);
	ck_assert_int_eq(ap_http_resp_status_seen(&p), 0);
	ap_http_resp_begin(&p, 0);
	ck_assert_int_eq(ap_http_resp_status_seen(&p), 0);
}
END_TEST

/* Which completed responses end HTTP on their connection: a 101, and a 2xx
 * answering CONNECT (then a tunnel), not a CONNECT's 407 or a GET's 200. */
START_TEST(test_resp_tunnels)
{
	static const struct {
		int answers;
		const char *head;
		int tunnels;
	} cases[] = {
		{ AP_HTTP_ANSWERS_CONNECT, "HTTP/1.1 200 Connection established\r\n\r\n", 1 },
		{ AP_HTTP_ANSWERS_CONNECT, "HTTP/1.0 204 OK\r\nContent-Length: 3\r\n\r\n", 1 },
		{ AP_HTTP_ANSWERS_CONNECT, "HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n", 0 },
		{ AP_HTTP_ANSWERS_OTHER, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0 },
		{ AP_HTTP_ANSWERS_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 0 },
		{ AP_HTTP_ANSWERS_OTHER, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ap_http_resp p;
		enum ap_http_ev ev;
		size_t n = strlen(cases[i].head);
		ap_http_resp_init(&p);
		ap_http_resp_begin(&p, cases[i].answers);
		ck_assert_uint_eq(ap_http_resp_feed_to_end(&p, cases[i].head, n, &ev), n);
		ck_assert_msg(ev == AP_HTTP_MSG_DONE, "case %zu: not done", i);
		ck_assert_msg(ap_http_resp_tunnels(&p) == cases[i].tunnels, "case %zu", i);
	}
}
END_TEST

/* Every table's responses, in every split, through
 * ap_http_resp_feed_to_end(): the same MSG_DONEs and errors at the same
 * offsets, the same end-of-connection verdict, no other events. */
START_TEST(test_resp_feed_to_end)
{
	const struct hcase *tables[] = { resp_ok, fast_resp, resp_bad };
	const size_t sizes[] = { NCASES(resp_ok), NCASES(fast_resp), NCASES(resp_bad) };
	for (size_t t = 0; t < 3; t++)
		for (size_t i = 0; i < sizes[t]; i++) {
			const struct hcase *c = &tables[t][i];
			struct trace want, got;
			size_t len;
			char *in = case_build(c, &len, &want);
			drop_start_and_headers(&want);
			for (int k = 0; k < NSPLITS; k++) {
				shortcuts = 1;
				resp_run(in, len, c->heads, splitter(k), &got);
				shortcuts = 0;
				ck_assert_msg(strcmp(got.s, want.s) == 0,
				              "response case '%s', split %d, to the end:\n got: %s\nwant: %s",
				              c->name, k, got.s, want.s);
			}
			free(in);
		}
}
END_TEST

/* --- whole heads through ap_http_resp_feed_to_end() ---------------------- */

/*
 * ap_http_resp_feed_to_end() reads a response head that lies whole in one
 * buffer in one go (resp_head(): status line, header lines and framing),
 * and a Content-Length body without the dispatch. Its reference is the
 * byte machine: ap_http_resp_feed() given one byte at a time. fte_trace()
 * runs either and records, at each MSG_DONE, everything the response says
 * (status, version, keep-alive, framing, length, error body), errors, and
 * at the end what the preload asks when the connection closes.
 */
static void fte_done(const struct ap_http_resp *p, size_t off, struct trace *t)
{
	tr_add(t, "D:%u 1.%u %s%s%s cl=%llu B=%.*s@%zu", p->status, p->version_minor,
	       p->keep_alive ? "ka" : "close", p->chunked ? " ch" : "",
	       p->until_close ? " uc" : "", (unsigned long long)p->content_length,
	       (int)p->errbody_len, p->errbody, off);
}

/* by_bytes: the reference (ap_http_resp_feed(), one byte per call); else
 * ap_http_resp_feed_to_end() in two pieces, the first of k bytes (k == 0:
 * whole), each at the very end of a heap buffer. */
static void fte_trace(const char *in, size_t len, int by_bytes, size_t k, struct trace *t)
{
	struct ap_http_resp p;
	struct splitter sp = by_bytes ? splitter(1) : split_at(k);
	size_t pos = 0;
	int dead = 0;
	char *arena = malloc(len ? len : 1);
	CHECK(arena != NULL);
	t->len = 0;
	t->s[0] = '\0';
	ap_http_resp_init(&p);
	ap_http_resp_begin(&p, 0);
	while (pos < len && !dead) {
		size_t n = split_next(&sp, len - pos), o = 0;
		const char *chunk = place(arena, len, in + pos, n);
		while (!dead) {
			enum ap_http_ev ev = AP_HTTP_ERROR;
			size_t used = by_bytes ? ap_http_resp_feed(&p, chunk + o, n - o, &ev)
			                       : ap_http_resp_feed_to_end(&p, chunk + o, n - o, &ev);
			CHECK(used <= n - o);
			o += used;
			if (ev == AP_HTTP_NEED_MORE) {
				CHECK(o == n);
				break;
			}
			if (ev == AP_HTTP_MSG_DONE) {
				fte_done(&p, pos + o, t);
				ap_http_resp_begin(&p, 0);
			} else if (ev == AP_HTTP_ERROR) {
				/* where, the other tests do not pin down either: a
				 * whole line declined fails at its start */
				tr_add(t, "E");
				dead = 1;
			} else {
				CHECK(by_bytes); /* feed_to_end reports nothing else */
			}
		}
		pos += n;
	}
	free(arena);
	if (!dead)
		tr_add(t, "end:seen=%d st=%u eof=%d", ap_http_resp_status_seen(&p),
		       ap_http_resp_status_seen(&p) ? p.status : 0, ap_http_resp_eof(&p));
}

/* `in` through ap_http_resp_feed_to_end() whole and split in two at every
 * offset must trace as the byte machine does. Returns 1 if that trace
 * reached a MSG_DONE. */
static int fte_sweep(const char *in, size_t len)
{
	static struct trace want, got;
	fte_trace(in, len, 1, 0, &want);
	for (size_t k = 0; k < len; k++) {
		fte_trace(in, len, 0, k, &got);
		if (strcmp(got.s, want.s) != 0)
			ck_abort_msg("split at %zu of\n%.300s\n got: %.400s\nwant: %.400s", k, in,
			             got.s, want.s);
	}
	return strstr(want.s, "D:") != NULL;
}

START_TEST(test_fast_status_lines)
{
	/* status lines of every shape resp_head() and status_fast() judge:
	 * versions, codes (three digits, 1..9 first), what follows the code,
	 * bare LF, empty lines first, a status line whose LF is past the first
	 * 64 bytes; each before a Content-Length head and a second response
	 * in the same buffer */
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1/",
	                                        "HTTP/2.0", "http/1.1", "HTTP/1.",  "HTTPS/1.1",
	                                        "HTTP/1.\x31" "1", "HTTP/1.\xb1" };
	static const char *const codes[] = { "200", "204", "304", "100", "101", "199", "302",
	                                     "500", "099", "000", "999", "20",  "2000", "2a0",
	                                     "2:0", "/00", ":00", "20/", "20:" };
	static const char *const afters[] = { " OK", "", " ", "\t", "x", " \x01\xff weird",
	                                      " " LONG_A, "  OK" };
	static const char *const eols[] = { "\r\n", "\n", "\r" };
	static const char *const leads[] = { "", "\r\n", "\n" };
	int done = 0, total = 0;
	for (size_t v = 0; v < NELEM(versions); v++)
		for (size_t c = 0; c < NELEM(codes); c++)
			for (size_t a = 0; a < NELEM(afters); a++)
				for (size_t e = 0; e < NELEM(eols); e++) {
					char in[1024];
					const char *lead = leads[(v + c + a) % NELEM(leads)];
					int n = snprintf(in, sizeof in,
					                 "%s%s %s%s%sServer: t\r\nContent-Length: 2\r\n"
					                 "Connection: keep-alive\r\n\r\nok"
					                 "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
					                 lead, versions[v], codes[c], afters[a], eols[e]);
					/* no SP before the code: "HTTP/1.1200" */
					if ((a + e) % 5 == 0)
						memmove(in + strlen(lead) + strlen(versions[v]),
						        in + strlen(lead) + strlen(versions[v]) + 1,
						        (size_t)n - strlen(lead) - strlen(versions[v]));
					done += fte_sweep(in, strlen(in));
					total++;
				}
	/* both outcomes common (most of these shapes are errors), or the
	 * comparison proves little */
	ck_assert_int_gt(done, total / 20);
	ck_assert_int_lt(done, total - total / 10);
}
END_TEST

/*
 * The framing headers every response carries are read inside the header
 * loop in their usual shape (known_fast(): `Content-Length: DIGITS CRLF`,
 * `Connection: keep-alive CRLF` or `close CRLF`), and everything else by
 * header_id() and value_fast(), or the byte machine. Names in every case,
 * values in that shape and just off it (whitespace, digits, near tokens,
 * lists, overflow), in requests and responses, whole and split anywhere,
 * must trace as the byte machine does.
 */
START_TEST(test_fast_known_headers)
{
	static const char *const names[] = {
		"Content-Length", "content-length", "CONTENT-LENGTH", "cONTENT-lENGTH",
		"Content-Lengtx", "Content-Lengt", "Content_Length", "Connection",
		"connection", "CONNECTION", "cOnNeCtIoN", "Connectioo", "Connectio",
		"Transfer-Encoding", "Expect",
	};
	static const char *const values[] = {
		" 3", " 0", " 03", "3", "  3", "\t3", " 3 ", " 3\t", " 1234567890123456789",
		" 12345678901234567890", " 99999999999999999999", " 18446744073709551615",
		" ", "", " 3,3", " 3, 4", " 4", " x", " -3", " 3\r", " keep-alive",
		" Keep-Alive", " KEEP-ALIVE", " close", " Close", " CLOSE", " keep-alive ",
		"keep-alive", " keep-alivex", " closex", " clos", " keep-aliv", " keep_alive",
		" close, keep-alive", " upgrade", " keep-alive\r", "\tclose", " close\t",
		" chunked", " 100-continue", " kEEP-aLIVE", " cl\x6fse", " c\x4fSE",
	};
	static const char *const eols[] = { "\r\n", "\n" };
	static struct trace want, got;
	int done = 0, total = 0;
	for (size_t nm = 0; nm < NELEM(names); nm++)
		for (size_t v = 0; v < NELEM(values); v++)
			for (size_t e = 0; e < NELEM(eols); e++) {
				char in[512];
				/* a response: the line between two others, a body of 3 */
				int n = snprintf(in, sizeof in,
				                 "HTTP/1.%d 200 OK\r\nServer: t\r\n%s:%s%s"
				                 "Content-Length: 3\r\n\r\nabc"
				                 "HTTP/1.1 204 No Content\r\n\r\n",
				                 (int)(v % 2), names[nm], values[v], eols[e]);
				done += fte_sweep(in, (size_t)n);
				total++;
				resp_run(in, (size_t)n, "0", splitter(1), &want);
				for (size_t k = 0; k < (size_t)n; k++) {
					resp_run(in, (size_t)n, "0", split_at(k), &got);
					if (strcmp(got.s, want.s) != 0)
						ck_abort_msg("split at %zu of\n%s\n got: %s\nwant: %s", k, in,
						             got.s, want.s);
				}

				/* a request: the line last, then the body its
				 * Content-Length says if it says one */
				n = snprintf(in, sizeof in,
				             "GET /k HTTP/1.%d\r\nHost: x\r\n%s:%s%s\r\nabcGET / "
				             "HTTP/1.1\r\n\r\n",
				             (int)(nm % 2), names[nm], values[v], eols[e]);
				req_run(in, (size_t)n, splitter(1), &want);
				for (size_t k = 0; k < (size_t)n; k++) {
					req_run(in, (size_t)n, split_at(k), &got);
					if (strcmp(got.s, want.s) != 0)
						ck_abort_msg("split at %zu of\n%s\n got: %s\nwant: %s", k, in,
						             got.s, want.s);
				}
			}
	ck_assert_int_gt(done, total / 4);
	ck_assert_int_lt(done, total - total / 10);
}
END_TEST

/*
 * Heads of every length through ap_http_resp_feed_to_end(): header lines
 * of generated names and values (gen_block()'s, so known and unknown,
 * valid and not), behind a status line, with a body, split at every
 * offset; resp_head()'s LF windows run from the status line, so their
 * edges fall elsewhere than in test_fast_matches_bytes.
 */
START_TEST(test_fast_heads_to_end)
{
	enum { ROUNDS = 300, CAP = 4096 };
	static char buf[CAP];
	uint32_t rng = 0x85ebca6bu;
	int done = 0;
	for (int round = 0; round < ROUNDS; round++) {
		size_t n = (size_t)snprintf(buf, CAP, "HTTP/1.%d %s\r\n", round % 2,
		                            round % 3 ? "200 OK" : "500 Oops");
		int lines = (int)(xorshift(&rng) % 10);
		for (int l = 0; l < lines && n + 300 < CAP; l++) {
			uint32_t r = xorshift(&rng);
			size_t nn = r % 16 ? GEN_GOOD_NAMES : NELEM(gen_names);
			const char *eol = (r >> 24) % 4 ? "\r\n" : "\n";
			n += (size_t)snprintf(buf + n, CAP - n, "%s:%s%s", gen_names[(r >> 4) % nn],
			                      gen_values[(r >> 12) % NELEM(gen_values)], eol);
		}
		/* a length of its own most of the time, then a body and more */
		n += (size_t)snprintf(buf + n, CAP - n, "%s\r\n0123456789HTTP/1.1 200 OK\r\n\r\n",
		                      round % 4 ? "Content-Length: 10\r\n" : "");
		done += fte_sweep(buf, n);
	}
	ck_assert_int_gt(done, ROUNDS / 4);
	ck_assert_int_lt(done, ROUNDS - ROUNDS / 10);
}
END_TEST

/* --- whole request heads through ap_http_req_feed_head() ---------------- */

/*
 * ap_http_req_feed_head() reads a request's head whole in one buffer in
 * one call (request line, header lines, framing). Its
 * reference is the byte machine: ap_http_req_feed() given one byte at a
 * time. `in` through ap_http_req_feed_head() (and ap_http_req_end_bodyless(),
 * as the preload calls them) whole and split in two at every offset must
 * trace as the reference does: every event, its offset and the results
 * valid at it (req_run()). Returns 1 if that trace reached a HEADERS_DONE,
 * and adds to *whole the requests the whole input's run read as HEAD_DONE.
 */
static int rh_sweep(const char *in, size_t len, unsigned long *whole)
{
	static struct trace want, got;
	req_run(in, len, splitter(1), &want);
	shortcuts = 1;
	for (size_t k = 0; k < len; k++) {
		unsigned long before = heads_whole;
		req_run(in, len, split_at(k), &got);
		if (k == 0)
			*whole += heads_whole - before;
		if (strcmp(got.s, want.s) != 0) {
			shortcuts = 0;
			ck_abort_msg("split at %zu of\n%.300s\n got: %.400s\nwant: %.400s", k, in,
			             got.s, want.s);
		}
	}
	shortcuts = 0;
	return strstr(want.s, "H:") != NULL;
}

/* Request lines of every shape req_line_fast() and
 * ap_http_req_feed_head() judge: methods (upper-case, other token bytes,
 * 15 and 16 bytes, none, a bad byte first, inside or last), targets (query
 * strings, past 16, 64 and 511 bytes, bytes >= 0x80, DEL, a tab),
 * versions, line ends, empty lines first; each before a head that says a
 * body, that body and a second request. */
START_TEST(test_fast_request_lines)
{
	static const char *const methods[] = { "GET", "POST", "OPTIONS", "M-SEARCH", "get",
	                                       "ABCDEFGHIJKLMNO", "ABCDEFGHIJKLMNOP", "G@T",
	                                       "", "PROPPATCH", "GE@", "@ET", "GE\x80" };
	static const char *const targets[] = {
		"/", "/ok", "/a/b?c=d&e=f#g", "*", "/" LONG_A, "/" LONG_A LONG_A LONG_A LONG_A,
		"/\x80\xff\xc3\xa9", "/a\x7f", "/a\tb", "http://h:8/x?y", "",
		"/sixteen-bytes/x", "/fifteen-bytes/",
	};
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0",
	                                        "http/1.1", "HTTP/1.1 ", "HTTP/1.\xb1" };
	static const char *const eols[] = { "\r\n", "\n", "\r" };
	static const char *const leads[] = { "", "", "\r\n", "\n" };
	int done = 0, total = 0;
	unsigned long whole = 0;
	for (size_t m = 0; m < NELEM(methods); m++)
		for (size_t t = 0; t < NELEM(targets); t++)
			for (size_t v = 0; v < NELEM(versions); v++)
				for (size_t e = 0; e < NELEM(eols); e++) {
					static char in[4096];
					const char *lead = leads[(m + t + v + e) % NELEM(leads)];
					int n = snprintf(in, sizeof in,
					                 "%s%s %s %s%sHost: x\r\nContent-Length: 3\r\n"
					                 "Connection: close\r\n\r\nabc"
					                 "GET /2 HTTP/1.1\r\nHost: y\r\n\r\n",
					                 lead, methods[m], targets[t], versions[v], eols[e]);
					ck_assert_int_lt(n, (int)sizeof in);
					done += rh_sweep(in, (size_t)n, &whole);
					total++;
				}
	/* both outcomes common (most of these shapes are errors), or the
	 * comparison proves little; and the fast path took most of the heads
	 * that parse */
	ck_assert_int_gt(done, total / 20);
	ck_assert_int_lt(done, total - total / 10);
	ck_assert_uint_gt(whole, (unsigned long)done / 2);
}
END_TEST

/*
 * Heads of generated header lines (gen_names and gen_values, so known and
 * unknown names, valid and not, Content-Length, Transfer-Encoding,
 * Connection, Expect and X-Apiprof-Profile in and out of their usual
 * shape, folds, lines without a colon, bare LFs) behind request lines of
 * several lengths, so that the LF windows, which start at the line's end,
 * have their edges everywhere; then a body as their Content-Length or
 * chunking says, or not, and a second request.
 */
START_TEST(test_fast_request_heads)
{
	enum { ROUNDS = 400, CAP = 4096 };
	static const char *const lines[] = {
		"GET / HTTP/1.1", "GET /ok HTTP/1.1", "POST /api/v1/items?id=42 HTTP/1.0",
		"PUT /" LONG_A " HTTP/1.1", "DELETE /x HTTP/1.1",
	};
	static const char *const odd[] = {
		" folded", "\tfolded", "NoColon", ": empty name", "Host : x", "X-Apiprof-Profile: 1",
		"Expect: 100-continue", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip",
		"Connection: keep-alive", "Content-Length: 5", "content-length:5",
	};
	static char buf[CAP];
	uint32_t rng = 0x27d4eb2du;
	int done = 0;
	unsigned long whole = 0;
	for (int round = 0; round < ROUNDS; round++) {
		uint32_t r0 = xorshift(&rng);
		size_t n = (size_t)snprintf(buf, CAP, "%s%s", lines[r0 % NELEM(lines)],
		                            (r0 >> 8) % 8 ? "\r\n" : "\n");
		int nl = (int)((r0 >> 12) % 10);
		for (int l = 0; l < nl && n + 300 < CAP; l++) {
			uint32_t r = xorshift(&rng);
			const char *eol = (r >> 24) % 4 ? "\r\n" : "\n";
			if ((r >> 28) < 2) {
				n += (size_t)snprintf(buf + n, CAP - n, "%s%s", odd[(r >> 4) % NELEM(odd)],
				                      eol);
				continue;
			}
			size_t nn = r % 16 ? GEN_GOOD_NAMES : NELEM(gen_names);
			n += (size_t)snprintf(buf + n, CAP - n, "%s:%s%s", gen_names[(r >> 4) % nn],
			                      gen_values[(r >> 12) % NELEM(gen_values)], eol);
		}
		/* a length of its own often, then the blank line, a body that
		 * fits either framing's start, and more */
		n += (size_t)snprintf(buf + n, CAP - n, "%s%s5\r\nhello\r\n0\r\n\r\n"
		                      "GET /next HTTP/1.1\r\nHost: y\r\n\r\n",
		                      (r0 >> 16) % 3 ? "Content-Length: 15\r\n" : "",
		                      (r0 >> 20) % 4 ? "\r\n" : "\n");
		done += rh_sweep(buf, n, &whole);
	}
	ck_assert_int_gt(done, ROUNDS / 4);
	ck_assert_int_lt(done, ROUNDS - ROUNDS / 10);
	ck_assert_uint_gt(whole, (unsigned long)done / 2);
}
END_TEST

/*
 * The SSE2 and word loads (lf_window(), name_end16(), status_fast(),
 * known_fast(), resp_head(), req_line_fast(), ap_http_req_feed_head())
 * must never read past the `len` they were given, even by a byte that is never used: a host's
 * buffer can end at the end of a mapping. Each piece is copied to the very
 * end of a page followed by a PROT_NONE page, so a stray read is a SIGSEGV
 * in every build, not only under AddressSanitizer. Every input, in two
 * pieces split at every point, through each entry point.
 */
static const char *const guard_inputs[] = {
	"GET / HTTP/1.1\r\n\r\n",
	"GET /a HTTP/1.0\r\nHost: x\r\n\r\n",
	"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
	"POST /api/v1/items?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
	"Connection: keep-alive\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
	"PUT /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	"5\r\nhello\r\n0\r\n\r\n",
	"GET /ok HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
	"GET /a/rather/long/path/that/goes/past/the/first/sixty/four/bytes?q=1 HTTP/1.0\r\n"
	"Connection: keep-alive\r\nX-Apiprof-Profile: 1\r\nExpect: 100-continue\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nA:b\n\nGET /x HTTP/1.1\nContent-Length: 2\n\nab",
	"OPTIONS * HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nX: y\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
	"hello world!",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\n"
	"Content-Length: 9\r\nConnection: close\r\n\r\nboom boom",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\nX: y\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nContent-Type: text/html; charset=utf-8\r\n"
	"Set-Cookie: sessionid=0123456789abcdef0123456789abcdef0123456789abcdef; Path=/\r\n"
	"Content-Length: 2\r\n\r\nno",
	"HTTP/1.1 200\r\n:\r\n\r\n",
	"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
};

/* Copies s[0..n) to the end of page `pg` (its last byte just before the
 * guard page) and returns where. */
static const char *guard_place(char *pg, size_t page, const char *s, size_t n)
{
	char *at = pg + page - n;
	memcpy(at, s, n);
	return at;
}

/* Feeds s[0..n) placed at the page's end to every parser entry point. */
static void guard_feed(char *pg, size_t page, const char *s, size_t n,
                       struct ap_http_req *rq, struct ap_http_req *rh, struct ap_http_resp *rs,
                       struct ap_http_resp *rt)
{
	enum ap_http_ev ev;
	const char *b = guard_place(pg, page, s, n);
	for (size_t off = 0, i = 0; off < n && i < 64; i++) {
		size_t used = ap_http_req_feed(rq, b + off, n - off, &ev);
		off += used;
		if (ev == AP_HTTP_ERROR)
			break;
		if (ev == AP_HTTP_HEADERS_DONE)
			(void)ap_http_req_end_bodyless(rq);
	}
	b = guard_place(pg, page, s, n);
	for (size_t off = 0, i = 0; off < n && i < 64; i++) {
		off += ap_http_req_feed_head(rh, b + off, n - off, &ev);
		if (ev == AP_HTTP_ERROR)
			break;
		if (ev == AP_HTTP_HEADERS_DONE || ev == AP_HTTP_HEAD_DONE)
			(void)ap_http_req_end_bodyless(rh);
	}
	b = guard_place(pg, page, s, n);
	for (size_t off = 0, i = 0; off < n && i < 64; i++) {
		off += ap_http_resp_feed(rs, b + off, n - off, &ev);
		if (ev == AP_HTTP_ERROR)
			break;
	}
	b = guard_place(pg, page, s, n);
	for (size_t off = 0, i = 0; off < n && i < 64; i++) {
		off += ap_http_resp_feed_to_end(rt, b + off, n - off, &ev);
		if (ev == AP_HTTP_ERROR)
			break;
		if (ev == AP_HTTP_MSG_DONE)
			ap_http_resp_begin(rt, 0);
	}
}

/* Fresh parsers fed s[0..cut) and then s[cut..n), each piece at the
 * page's end (an empty piece is not fed). */
static void guard_split(char *pg, size_t page, const char *s, size_t n, size_t cut)
{
	struct ap_http_req rq, rh;
	struct ap_http_resp rs, rt;
	ap_http_req_init(&rq);
	ap_http_req_init(&rh);
	ap_http_resp_init(&rs);
	ap_http_resp_init(&rt);
	ap_http_resp_begin(&rs, 0);
	ap_http_resp_begin(&rt, 0);
	if (cut)
		guard_feed(pg, page, s, cut, &rq, &rh, &rs, &rt);
	if (cut < n)
		guard_feed(pg, page, s + cut, n - cut, &rq, &rh, &rs, &rt);
}

START_TEST(test_guard_page_reads)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_int_eq(mprotect(m + page, page, PROT_NONE), 0);
	for (size_t k = 0; k < NELEM(guard_inputs); k++) {
		const char *in = guard_inputs[k];
		size_t len = strlen(in);
		for (size_t cut = 0; cut <= len; cut++) {
			guard_split(m, page, in, len, cut);
			guard_split(m, page, in, cut, cut); /* every prefix alone */
		}
	}
	/* every length 1..70 of bytes that keep the loads going: lines of
	 * letters, digits and colons, CRLF and bare LF */
	static const char fill[] = "HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nconnection:close\r\na:b\n";
	char src[80];
	for (size_t n = 1; n <= 70; n++) {
		for (size_t i = 0; i < n; i++)
			src[i] = fill[i % (sizeof fill - 1)];
		for (size_t cut = 0; cut <= n; cut++)
			guard_split(m, page, src, n, cut);
	}
	munmap(m, 2 * page);
}
END_TEST

/* ap_http_req_in_head(): from a request's START_LINE until its head is
 * complete, and for good once an error came in its head (the preload
 * never notes such a request in flight: a 400 answering it must not be
 * taken for the end of another); not after an error elsewhere. Each case
 * fed whole (HEAD_DONE's path) and a byte at a time. */
static int in_head_after(const char *req, int bytewise, enum ap_http_ev *last)
{
	struct ap_http_req p;
	ap_http_req_init(&p);
	size_t n = strlen(req), i = 0;
	*last = AP_HTTP_NEED_MORE;
	while (i < n && *last != AP_HTTP_ERROR) {
		size_t len = bytewise ? 1 : n - i;
		size_t used = ap_http_req_feed_head(&p, req + i, len, last);
		if (*last == AP_HTTP_NEED_MORE && used == 0)
			break;
		i += used;
	}
	return ap_http_req_in_head(&p);
}

START_TEST(test_req_in_head)
{
	static const struct {
		const char *req;
		enum ap_http_ev last;
		int in_head;
	} t[] = {
		{ "GET /a HTTP/1.1\r\nHost: x\r\n", AP_HTTP_NEED_MORE, 1 },
		{ "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", AP_HTTP_MSG_DONE, 0 },
		{ "GET /a HTTP/1.1\r\nNoColon\r\n\r\n", AP_HTTP_ERROR, 1 },
		{ "GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", AP_HTTP_ERROR, 1 },
		{ "GET /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", AP_HTTP_ERROR, 1 },
		{ "GET /a\r\n", AP_HTTP_ERROR, 0 },
		{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", AP_HTTP_ERROR, 0 },
	};
	for (unsigned k = 0; k < sizeof t / sizeof t[0]; k++)
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			enum ap_http_ev last;
			int got = in_head_after(t[k].req, bytewise, &last);
			if (t[k].last != AP_HTTP_MSG_DONE) /* a bodyless request's ends early */
				ck_assert_msg(last == t[k].last, "case %u (bytewise %d): event %d, not %d",
				              k, bytewise, (int)last, (int)t[k].last);
			ck_assert_msg(got == t[k].in_head, "case %u (bytewise %d): in_head %d, not %d",
			              k, bytewise, got, t[k].in_head);
		}
}
END_TEST

Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("tables");
	tcase_add_loop_test(tc, test_req_ok, 0, NCASES(req_ok));
	tcase_add_loop_test(tc, test_req_bad, 0, NCASES(req_bad));
	tcase_add_loop_test(tc, test_resp_ok, 0, NCASES(resp_ok));
	tcase_add_loop_test(tc, test_resp_bad, 0, NCASES(resp_bad));
	tcase_add_test(tc, test_req_in_head);
	suite_add_tcase(s, tc);

	tc = tcase_create("fast");
	tcase_set_timeout(tc, 60); /* every split of every case, under sanitizers */
	tcase_add_loop_test(tc, test_fast_req, 0, NCASES(fast_req));
	tcase_add_loop_test(tc, test_fast_resp, 0, NCASES(fast_resp));
	tcase_add_test(tc, test_every_split);
	tcase_add_test(tc, test_fast_matches_bytes);
	tcase_add_test(tc, test_reused_parsers);
	tcase_add_test(tc, test_guard_page_reads);
	suite_add_tcase(s, tc);

	tc = tcase_create("large");
	tcase_set_timeout(tc, 60); /* byte-at-a-time megabytes under sanitizers */
	tcase_add_test(tc, test_req_1mb_header);
	tcase_add_test(tc, test_req_1mb_interesting_header);
	tcase_add_test(tc, test_req_1mb_body);
	tcase_add_test(tc, test_req_1mb_chunk);
	tcase_add_test(tc, test_req_huge_chunk_size);
	tcase_add_test(tc, test_req_target_truncation);
	tcase_add_test(tc, test_fast_edges_values);
	tcase_add_test(tc, test_fast_edges_names);
	tcase_add_test(tc, test_fast_edges_request_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_req_results_until_next_line);
	tcase_add_test(tc, test_zeroed_parsers_work);
	tcase_add_test(tc, test_empty_feeds);
	tcase_add_test(tc, test_errors_are_sticky);
	tcase_add_test(tc, test_resp_errbody_capped);
	tcase_add_test(tc, test_resp_eof);
	tcase_add_test(tc, test_resp_next_without_begin);
	tcase_add_test(tc, test_expect_continue_exchange);
	tcase_add_test(tc, test_fuzz);
	tcase_add_test(tc, test_fuzz_split_invariance);
	tcase_add_test(tc, test_req_end_bodyless);
	tcase_add_test(tc, test_resp_feed_to_end);
	tcase_add_test(tc, test_resp_status_seen);
	tcase_add_test(tc, test_resp_tunnels);
	tcase_add_test(tc, test_fast_status_lines);
	tcase_add_test(tc, test_fast_known_headers);
	tcase_add_test(tc, test_fast_heads_to_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("request heads");
	tcase_set_timeout(tc, 120); /* every split of thousands of requests */
	tcase_add_test(tc, test_fast_request_lines);
	tcase_add_test(tc, test_fast_request_heads);
	suite_add_tcase(s, tc);
	return s;
}

#ifdef STANDALONE
/* Runs this suite alone: gcc ... -DSTANDALONE (see the file's header). */
int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
