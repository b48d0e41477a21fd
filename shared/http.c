/*
 * http.c - incremental HTTP/1.x framing, one direction at a time (ap_http.h).
 *
 * Each direction has its own start-line machine (request line, status line);
 * the header block and the body are one machine shared through struct
 * ap_http_core. Every machine is a byte loop over a 256-entry class table,
 * with memchr() wherever the bytes up to the next LF do not matter (other
 * headers, reason phrases, chunk extensions, trailers) and plain counting for
 * bodies, so a 1 MB header or body costs one pass and no copies.
 *
 * Nothing here allocates or keeps a pointer to the caller's buffer, and no
 * loop reads at or past the `n` it was given: a parser can stop after any
 * byte and resume with the next call. Where the framing of a message would be
 * ambiguous (conflicting Content-Length, folded framing headers, a request
 * Transfer-Encoding not ending in chunked, bad chunk sizes) the parser fails
 * with AP_HTTP_ERROR instead of guessing, since a wrong guess would misparse
 * every later message on the connection.
 */
#include "config.h"
#include "ap_http.h"

#include <string.h>

/* core.state; ST_LINE is 0 so that an all-zero parser is a fresh one. */
enum {
	ST_LINE = 0,   /* request or status line: sub is RL_* or SL_* */
	ST_HEADERS,    /* header block: sub is H_* */
	ST_PENDING,    /* bodyless message: the next feed reports MSG_DONE */
	ST_BODY_CL,    /* `remaining` Content-Length bytes to skip */
	ST_CHUNK_SIZE, /* chunk-size line: sub is CS_* */
	ST_CHUNK_DATA, /* `remaining` bytes of chunk data */
	ST_CHUNK_END,  /* the CRLF after chunk data: sub 1 once CR was seen */
	ST_TRAILERS,   /* trailer section after the last chunk: sub is TR_* */
	ST_BODY_EOF,   /* response body that runs until the connection closes */
	ST_IDLE,       /* response complete, waiting for the next one */
	ST_ERROR
};

/* Steps of the request line. */
enum { RL_LEAD = 0, RL_LEAD_LF, RL_METHOD, RL_TARGET, RL_VERSION, RL_MINOR,
       RL_CR, RL_LF };

/* Steps of the status line. */
enum { SL_LEAD = 0, SL_LEAD_LF, SL_VERSION, SL_MINOR, SL_SP, SL_STATUS,
       SL_AFTER, SL_REASON, SL_LF };

/* Steps of the header block. */
enum { H_LINE = 0, H_LINE_CR, H_NAME, H_SKIP, H_VALUE };

/* Steps of a chunk-size line and of the trailer section. */
enum { CS_DIGITS = 0, CS_WS, CS_EXT, CS_LF };
enum { TR_LINE = 0, TR_CR, TR_SKIP };

/* core.hdr: the header whose value we are reading. HDR_FIRST means no
 * header line yet, where a folded line is invalid (RFC 9112 2.2). */
enum { HDR_OTHER = 0, HDR_CL, HDR_TE, HDR_CONN, HDR_EXPECT, HDR_PROFILE,
       HDR_FIRST };

/* core.flags: what the header block said, combined over repeated lines. */
#define HF_CL         0x0001 /* a Content-Length was seen (in remaining) */
#define HF_TE         0x0002 /* a Transfer-Encoding was seen */
#define HF_TE_CHUNKED 0x0004 /* ... and its last coding so far is chunked */
#define HF_CLOSE      0x0008 /* Connection: close */
#define HF_KEEPALIVE  0x0010 /* Connection: keep-alive */
#define HF_EXPECT     0x0020 /* Expect: 100-continue */
#define HF_PROFILE    0x0040 /* X-Apiprof-Profile: 1 */
#define HF_LINE_TOKEN 0x0080 /* this Content-Length line had a value */

/* Byte classes: C_TCHAR for tokens (RFC 9110 5.6.2: methods, header names),
 * C_TARGET for request-target bytes (visible ASCII and, as nginx and Node
 * accept raw UTF-8, every byte >= 0x80). */
#define C_TCHAR  1
#define C_TARGET 2
static const uint8_t cls[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
	2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static const char http1[] = "HTTP/1."; /* both start lines carry it */

/* ASCII lower case; names and the tokens we look for are ASCII only. */
static inline unsigned char lower(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch | 0x20) : ch;
}

/* Value of a hex digit, or -1. */
static inline int hexval(unsigned char ch)
{
	if ((unsigned)(ch - '0') < 10u)
		return ch - '0';
	ch |= 0x20;
	if ((unsigned)(ch - 'a') < 6u)
		return ch - 'a' + 10;
	return -1;
}

/* The error is sticky: every later feed sees ST_ERROR and reports it. */
static void fail(struct ap_http_core *c, enum ap_http_ev *ev)
{
	c->state = ST_ERROR;
	*ev = AP_HTTP_ERROR;
}

/* Starts a header block; called once the start line's LF is consumed. */
static void headers_begin(struct ap_http_core *c)
{
	memset(c, 0, sizeof *c);
	c->state = ST_HEADERS;
	c->sub = H_LINE;
	c->hdr = HDR_FIRST;
}

/* --- header block, shared by both directions ------------------------- */

/* The scratch token equals the lower-case literal `lit`. */
#define TOKEN_IS(c, lit) \
	((c)->nlen == sizeof(lit) - 1 && memcmp((c)->scratch, lit, sizeof(lit) - 1) == 0)

/*
 * name[0..len), token bytes only, equals the literal `lit` (lower-case
 * letters and '-') ignoring ASCII case. OR-ing 0x20 is exact here: among
 * token bytes only the letters map to a letter, and only '-' maps to '-'.
 */
static int name_is(const unsigned char *name, const char *lit, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if ((name[k] | 0x20) != (unsigned char)lit[k])
			return 0;
	return 1;
}

/* Which of the headers we care about a name is. Most names are rejected by
 * their length, or at their first letter. */
static uint8_t header_id(const unsigned char *name, size_t len)
{
	switch (len) {
	case 6:
		return name_is(name, "expect", 6) ? HDR_EXPECT : HDR_OTHER;
	case 10:
		return name_is(name, "connection", 10) ? HDR_CONN : HDR_OTHER;
	case 14:
		return name_is(name, "content-length", 14) ? HDR_CL : HDR_OTHER;
	case 17:
		if (name_is(name, "transfer-encoding", 17))
			return HDR_TE;
		return name_is(name, "x-apiprof-profile", 17) ? HDR_PROFILE : HDR_OTHER;
	}
	return HDR_OTHER;
}

/*
 * One list element of an interesting header's value has ended. Returns 0
 * when it makes the framing invalid. Content-Length may repeat (as a list or
 * as several lines) only with one value (RFC 9112 6.3 item 5); the last
 * Transfer-Encoding coding decides chunked, over all lines (RFC 9112 6.1).
 */
static int token_end(struct ap_http_core *c)
{
	switch (c->hdr) {
	case HDR_CL:
		if ((c->flags & HF_CL) && c->remaining != c->num)
			return 0;
		c->remaining = c->num;
		c->num = 0;
		c->flags |= HF_CL | HF_LINE_TOKEN;
		break;
	case HDR_TE:
		if (TOKEN_IS(c, "chunked"))
			c->flags |= HF_TE_CHUNKED;
		else
			c->flags &= (uint16_t)~HF_TE_CHUNKED;
		break;
	case HDR_CONN:
		if (TOKEN_IS(c, "close"))
			c->flags |= HF_CLOSE;
		else if (TOKEN_IS(c, "keep-alive"))
			c->flags |= HF_KEEPALIVE;
		break;
	case HDR_EXPECT:
		if (TOKEN_IS(c, "100-continue"))
			c->flags |= HF_EXPECT;
		break;
	case HDR_PROFILE:
		if (TOKEN_IS(c, "1"))
			c->flags |= HF_PROFILE;
		break;
	}
	c->nlen = 0;
	return 1;
}

/* A header name ended at its ':'; choose how to read the value. */
static void name_end(struct ap_http_core *c, uint8_t hdr)
{
	c->hdr = hdr;
	c->nlen = 0;
	c->num = 0;
	c->flags &= (uint16_t)~HF_LINE_TOKEN;
	if (hdr == HDR_TE)
		c->flags |= HF_TE;
	c->sub = hdr == HDR_OTHER ? H_SKIP : H_VALUE;
}

/*
 * A line starting with SP or HT continues the previous value (obsolete line
 * folding, RFC 9112 5.2). Harmless for the list headers, which read it as one
 * more separator, but a folded Content-Length or Transfer-Encoding is exactly
 * the ambiguity request smuggling uses, and a fold before any header is
 * invalid: those fail. Returns 0 on failure.
 */
static int fold(struct ap_http_core *c)
{
	if (c->hdr == HDR_FIRST || c->hdr == HDR_CL || c->hdr == HDR_TE)
		return 0;
	c->sub = c->hdr == HDR_OTHER ? H_SKIP : H_VALUE;
	c->nlen = 0;
	return 1;
}

/*
 * Reads a header name from s[0..n). A name that lies whole in this buffer
 * (the usual case) is classified in place; one split across reads has its
 * first bytes kept in scratch and the rest only counted, so names of any
 * length stream through. Returns the bytes consumed (the ':' included), or
 * n + 1 for an invalid name (a space before the colon, a line without a
 * colon: RFC 9112 5.1 says reject).
 */
static size_t header_name(struct ap_http_core *c, const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (cls[s[i]] & C_TCHAR))
		i++;
	if (c->nlen == 0 && i < n) {
		if (s[i] != ':' || i == 0)
			return n + 1;
		name_end(c, header_id(s, i));
		return i + 1;
	}
	size_t keep = 0;
	if (c->nlen < sizeof c->scratch) {
		keep = sizeof c->scratch - c->nlen;
		keep = i < keep ? i : keep;
		memcpy(c->scratch + c->nlen, s, keep);
		c->nlen = (uint16_t)(c->nlen + keep);
	}
	if (keep < i)
		c->nlen = sizeof c->scratch + 1; /* longer than any we look for */
	if (i == n)
		return n;
	if (s[i] != ':' || c->nlen == 0)
		return n + 1;
	name_end(c, c->nlen <= sizeof c->scratch
	                ? header_id((const unsigned char *)c->scratch, c->nlen)
	                : HDR_OTHER);
	return i + 1;
}

/*
 * One byte of an interesting header's value. Values are lists of tokens
 * split by commas and whitespace; CR counts as whitespace so the line's own
 * CRLF ends the last token. Returns 0 when the byte makes the framing
 * invalid.
 */
static int value_byte(struct ap_http_core *c, unsigned char ch)
{
	if (ch == ',' || ch == ' ' || ch == '\t' || ch == '\r')
		return c->nlen ? token_end(c) : 1;
	if (c->hdr == HDR_CL) {
		/* digits only (no sign, no hex), and no wrap-around */
		unsigned d = (unsigned)(ch - '0');
		if (d > 9 || c->num > (UINT64_MAX - d) / 10)
			return 0;
		c->num = c->num * 10 + d;
		c->nlen = 1;
		return 1;
	}
	if (c->nlen < sizeof c->scratch)
		c->scratch[c->nlen] = (char)lower(ch);
	if (c->nlen <= sizeof c->scratch)
		c->nlen++;
	return 1;
}

/* The LF of an interesting header line: an empty Content-Length fails. */
static int value_end(struct ap_http_core *c)
{
	if (c->nlen && !token_end(c))
		return 0;
	if (c->hdr == HDR_CL && !(c->flags & HF_LINE_TOKEN))
		return 0;
	c->sub = H_LINE;
	return 1;
}

/*
 * Consumes header-block bytes. *ev becomes HEADERS_DONE right after the
 * blank line, ERROR on a malformed line; the caller then decides framing.
 */
static size_t headers(struct ap_http_core *c, const unsigned char *s, size_t n,
                      enum ap_http_ev *ev)
{
	size_t i = 0;
	while (i < n) {
		unsigned char ch = s[i];
		switch (c->sub) {
		case H_LINE:
			if (ch == '\r') {
				c->sub = H_LINE_CR;
			} else if (ch == '\n') {
				*ev = AP_HTTP_HEADERS_DONE;
				return i + 1;
			} else if (ch == ' ' || ch == '\t') {
				if (!fold(c))
					goto bad;
			} else {
				c->nlen = 0;
				c->sub = H_NAME;
				continue; /* this byte starts the name */
			}
			break;
		case H_LINE_CR:
			if (ch != '\n')
				goto bad;
			*ev = AP_HTTP_HEADERS_DONE;
			return i + 1;
		case H_NAME: {
			size_t k = header_name(c, s + i, n - i);
			if (k > n - i)
				goto bad;
			i += k;
			continue;
		}
		case H_SKIP: {
			/* a header we ignore: its value, however long, is skipped */
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			i = (size_t)(lf - s);
			c->sub = H_LINE;
			break;
		}
		case H_VALUE:
			if (ch == '\n' ? !value_end(c) : !value_byte(c, ch))
				goto bad;
			break;
		}
		i++;
	}
	return n;
bad:
	fail(c, ev);
	return i;
}

/* --- bodies, shared by both directions -------------------------------- */

/* Where a 5xx body's first bytes go; NULL pointers when not kept. */
struct sink {
	char *buf;
	uint16_t *len;
};

static void sink_put(struct sink *k, const unsigned char *s, size_t n)
{
	if (!k->buf || *k->len >= AP_HTTP_ERRBODY_MAX)
		return;
	size_t room = AP_HTTP_ERRBODY_MAX - *k->len;
	if (n > room)
		n = room;
	memcpy(k->buf + *k->len, s, n);
	*k->len = (uint16_t)(*k->len + n);
}

/* Sets up chunked decoding of the body that starts now. */
static void chunked_begin(struct ap_http_core *c)
{
	c->state = ST_CHUNK_SIZE;
	c->sub = CS_DIGITS;
	c->remaining = 0;
	c->nlen = 0;
}

/* A chunk-size line ended: data follows, or the last chunk's trailers. */
static void chunk_size_end(struct ap_http_core *c)
{
	c->state = c->remaining ? ST_CHUNK_DATA : ST_TRAILERS;
	c->sub = 0;
}

/*
 * Consumes a chunk-size line: `1*HEXDIG [BWS] [; ext] CRLF` (RFC 9112 7.1).
 * Extensions are skipped unread. A size beyond 64 bits, a missing size or
 * stray bytes fail: the rest of the stream could not be delimited.
 */
static size_t chunk_size(struct ap_http_core *c, const unsigned char *s, size_t n,
                         enum ap_http_ev *ev)
{
	size_t i;
	for (i = 0; i < n; i++) {
		unsigned char ch = s[i];
		int d;
		switch (c->sub) {
		case CS_DIGITS:
			if ((d = hexval(ch)) >= 0) {
				if (c->remaining >> 60) /* a 17th significant digit */
					goto bad;
				c->remaining = c->remaining << 4 | (unsigned)d;
				c->nlen = 1;
				continue;
			}
			if (!c->nlen)
				goto bad;
			/* the size ended: this byte is whitespace, ';' or EOL */
			/* fall through */
		case CS_WS:
			if (ch == ' ' || ch == '\t')
				c->sub = CS_WS;
			else if (ch == ';')
				c->sub = CS_EXT;
			else if (ch == '\r')
				c->sub = CS_LF;
			else if (ch == '\n')
				goto end;
			else
				goto bad;
			break;
		case CS_EXT: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			i = (size_t)(lf - s);
			goto end;
		}
		case CS_LF:
			if (ch != '\n')
				goto bad;
			goto end;
		}
	}
	return n;
end:
	chunk_size_end(c);
	return i + 1;
bad:
	fail(c, ev);
	return i;
}

/* Consumes the CRLF (or bare LF) that must follow each chunk's data. */
static size_t chunk_end(struct ap_http_core *c, unsigned char ch, enum ap_http_ev *ev)
{
	if (ch == '\r' && c->sub == 0) {
		c->sub = 1;
		return 1;
	}
	if (ch != '\n') {
		fail(c, ev);
		return 0;
	}
	chunked_begin(c);
	return 1;
}

/* Consumes trailer lines up to and including the blank line ending them. */
static size_t trailers(struct ap_http_core *c, const unsigned char *s, size_t n,
                       enum ap_http_ev *ev)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = s[i];
		switch (c->sub) {
		case TR_LINE:
			if (ch == '\n') {
				*ev = AP_HTTP_MSG_DONE;
				return i + 1;
			}
			c->sub = ch == '\r' ? TR_CR : TR_SKIP;
			break;
		case TR_CR:
			if (ch != '\n') {
				fail(c, ev);
				return i;
			}
			*ev = AP_HTTP_MSG_DONE;
			return i + 1;
		case TR_SKIP: {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			i = (size_t)(lf - s);
			c->sub = TR_LINE;
			break;
		}
		}
	}
	return n;
}

/* Skips up to `remaining` (or, until close, all) body bytes, keeping the
 * first ones in the sink. */
static size_t body_bytes(struct ap_http_core *c, const unsigned char *s, size_t n,
                         struct sink *k)
{
	if (c->state != ST_BODY_EOF && n > c->remaining)
		n = (size_t)c->remaining;
	sink_put(k, s, n);
	if (c->state != ST_BODY_EOF)
		c->remaining -= n;
	return n;
}

/*
 * Consumes body bytes in any body state. *ev becomes MSG_DONE after the last
 * one (the caller moves on to the next message), ERROR on broken chunking.
 */
static size_t body(struct ap_http_core *c, const unsigned char *s, size_t n,
                   enum ap_http_ev *ev, struct sink *k)
{
	size_t i = 0;
	while (i < n && *ev == AP_HTTP_NEED_MORE) {
		switch (c->state) {
		case ST_BODY_CL:
		case ST_CHUNK_DATA:
		case ST_BODY_EOF:
			i += body_bytes(c, s + i, n - i, k);
			if (c->remaining == 0 && c->state == ST_BODY_CL)
				*ev = AP_HTTP_MSG_DONE;
			else if (c->remaining == 0 && c->state == ST_CHUNK_DATA)
				c->state = ST_CHUNK_END, c->sub = 0;
			break;
		case ST_CHUNK_SIZE:
			i += chunk_size(c, s + i, n - i, ev);
			break;
		case ST_CHUNK_END:
			i += chunk_end(c, s[i], ev);
			break;
		case ST_TRAILERS:
			i += trailers(c, s + i, n - i, ev);
			break;
		default: /* impossible: the feeds only call us in body states */
			fail(c, ev);
			break;
		}
	}
	return i;
}

/* --- requests ---------------------------------------------------------- */

/* Same as zeroing: a zeroed parser is a fresh one. */
void ap_http_req_init(struct ap_http_req *p)
{
	memset(p, 0, sizeof *p);
}

/* A new request line has begun: the previous request's results go. */
static void req_line_begin(struct ap_http_req *p)
{
	p->method_len = 0;
	p->method[0] = '\0';
	p->target_len = 0;
	p->target[0] = '\0';
	p->target_truncated = 0;
	p->version_minor = 0;
	p->core.sub = RL_METHOD;
}

/*
 * Appends request-target bytes from s[0..n) up to the first byte that cannot
 * be in a target. Beyond AP_HTTP_TARGET_MAX - 1 bytes the target is only
 * counted as truncated. Returns the bytes taken.
 */
static size_t req_target(struct ap_http_req *p, const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (cls[s[i]] & C_TARGET))
		i++;
	size_t room = AP_HTTP_TARGET_MAX - 1 - p->target_len;
	size_t keep = i < room ? i : room;
	memcpy(p->target + p->target_len, s, keep);
	p->target_len = (uint16_t)(p->target_len + keep);
	p->target[p->target_len] = '\0';
	if (keep < i)
		p->target_truncated = 1;
	return i;
}

/* One byte of `method SP target SP HTTP/1.d CRLF` that the tight loops of
 * req_line() left. Returns 0 if it cannot belong there, 2 after the line's
 * LF, 1 otherwise. */
static int req_line_byte(struct ap_http_req *p, unsigned char ch)
{
	struct ap_http_core *c = &p->core;
	switch (c->sub) {
	case RL_LEAD: /* RFC 9112 2.2: empty lines before a request are skipped */
		if (ch == '\r')
			c->sub = RL_LEAD_LF;
		return ch == '\r' || ch == '\n';
	case RL_LEAD_LF:
		c->sub = RL_LEAD;
		return ch == '\n';
	case RL_METHOD: /* the byte after the method (req_method() took it) */
		if (ch == ' ' && p->method_len) {
			c->sub = RL_TARGET;
			return 1;
		}
		/* not a token byte, or a 16th: methods are short tokens */
		return 0;
	case RL_TARGET: /* the target's own bytes went through req_target() */
		if (ch != ' ' || p->target_len == 0)
			return 0; /* CR/LF here is HTTP/0.9 */
		c->sub = RL_VERSION;
		c->nlen = 0;
		return 1;
	case RL_VERSION:
		if (ch != (unsigned char)http1[c->nlen])
			return 0;
		if (++c->nlen == sizeof http1 - 1)
			c->sub = RL_MINOR;
		return 1;
	case RL_MINOR:
		if (ch != '0' && ch != '1')
			return 0;
		p->version_minor = (uint8_t)(ch - '0');
		c->sub = RL_CR;
		return 1;
	case RL_CR:
		if (ch == '\r') {
			c->sub = RL_LF;
			return 1;
		}
		return ch == '\n' ? 2 : 0;
	case RL_LF:
		return ch == '\n' ? 2 : 0;
	}
	return 0; /* impossible */
}

/* Appends method bytes from s[0..n) while they are token bytes and fit;
 * req_line_byte() judges the byte that stops it. Returns the bytes taken. */
static size_t req_method(struct ap_http_req *p, const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (cls[s[i]] & C_TCHAR) && p->method_len < AP_HTTP_METHOD_MAX - 1)
		p->method[p->method_len++] = (char)s[i++];
	p->method[p->method_len] = '\0';
	return i;
}

/* The common `HTTP/1.d CRLF` whole in one buffer of at least 10 bytes: one
 * comparison instead of ten steps. 0 leaves the bytes to the slow path. */
static int req_version(struct ap_http_req *p, const unsigned char *s)
{
	if (memcmp(s, http1, sizeof http1 - 1) != 0 || (s[7] != '0' && s[7] != '1') ||
	    s[8] != '\r' || s[9] != '\n')
		return 0;
	p->version_minor = (uint8_t)(s[7] - '0');
	return 1;
}

/*
 * Consumes request-line bytes; *ev becomes START_LINE after its LF. The
 * method, target and usual version go through tight loops; the bytes between
 * them, and anything unusual, through req_line_byte().
 */
static size_t req_line(struct ap_http_req *p, const unsigned char *s, size_t n,
                       enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	size_t i = 0;
	while (i < n) {
		switch (c->sub) {
		case RL_LEAD:
			if (s[i] == '\r' || s[i] == '\n')
				break;
			req_line_begin(p);
			/* fall through */
		case RL_METHOD:
			i += req_method(p, s + i, n - i);
			break;
		case RL_TARGET:
			i += req_target(p, s + i, n - i);
			break;
		case RL_VERSION:
			if (c->nlen == 0 && n - i >= 10 && req_version(p, s + i)) {
				i += 10;
				goto done;
			}
			break;
		}
		if (i == n)
			break;
		int r = req_line_byte(p, s[i]);
		if (r == 0) {
			fail(c, ev);
			return i;
		}
		i++;
		if (r == 2)
			goto done;
	}
	return i;
done:
	headers_begin(c);
	*ev = AP_HTTP_START_LINE;
	return i;
}

/*
 * The blank line ended a request's header block: publish what it said and
 * choose the body framing (RFC 9112 6.3). A Transfer-Encoding whose last
 * coding is not chunked leaves the length unknowable: an error, as servers
 * answer 400 and close.
 */
static void req_headers_done(struct ap_http_req *p, enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	uint16_t f = c->flags;

	p->keep_alive = (f & HF_CLOSE) ? 0 : p->version_minor ? 1 : !!(f & HF_KEEPALIVE);
	p->expect_continue = !!(f & HF_EXPECT);
	p->profile = !!(f & HF_PROFILE);
	p->chunked = 0;
	p->content_length = 0;
	if (f & HF_TE) {
		if (!(f & HF_TE_CHUNKED)) {
			fail(c, ev);
			return;
		}
		p->chunked = 1; /* and any Content-Length is ignored */
		chunked_begin(c);
	} else if (c->remaining) {
		p->content_length = c->remaining;
		c->state = ST_BODY_CL;
	} else {
		c->state = ST_PENDING;
	}
}

/* A request ended: the next bytes are the next pipelined request's. */
static void req_done(struct ap_http_req *p)
{
	memset(&p->core, 0, sizeof p->core);
}

/*
 * Runs the state machines until one has something to report. A bodyless
 * request's MSG_DONE is held back one call (ST_PENDING) so that HEADERS_DONE
 * and MSG_DONE are separate events, as the header promises. The call that
 * fails consumes the bytes before the offending one; later calls consume
 * nothing.
 */
size_t ap_http_req_feed(struct ap_http_req *p, const char *buf, size_t len,
                        enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	const unsigned char *s = (const unsigned char *)buf;
	enum ap_http_ev e = AP_HTTP_NEED_MORE;
	size_t off = 0;

	if (!buf)
		len = 0;
	while (e == AP_HTTP_NEED_MORE) {
		if (c->state == ST_ERROR) {
			e = AP_HTTP_ERROR;
		} else if (c->state == ST_PENDING) {
			e = AP_HTTP_MSG_DONE;
			req_done(p);
		} else if (off == len) {
			break;
		} else if (c->state == ST_LINE) {
			off += req_line(p, s + off, len - off, &e);
		} else if (c->state == ST_HEADERS) {
			off += headers(c, s + off, len - off, &e);
			if (e == AP_HTTP_HEADERS_DONE)
				req_headers_done(p, &e);
		} else {
			struct sink none = { NULL, NULL };
			off += body(c, s + off, len - off, &e, &none);
			if (e == AP_HTTP_MSG_DONE)
				req_done(p);
		}
	}
	*ev = e;
	return off;
}

/* --- responses --------------------------------------------------------- */

/* Same as zeroing: ready for a response to a non-HEAD request. */
void ap_http_resp_init(struct ap_http_resp *p)
{
	memset(p, 0, sizeof *p);
}

/* Clears the previous response's results, but not an error: after one we
 * cannot know where the next response starts, so only init resets it. */
void ap_http_resp_begin(struct ap_http_resp *p, int answers_head)
{
	if (p->core.state == ST_ERROR)
		return;
	memset(p, 0, sizeof *p);
	p->head = answers_head ? 1 : 0;
}

/* One byte of `HTTP/1.d SP 3DIGIT [SP reason] CRLF`. The reason phrase goes
 * through memchr in resp_line(). Returns 0 if the byte cannot be there, 2
 * after the line's LF, 1 otherwise. */
static int status_line_byte(struct ap_http_resp *p, unsigned char ch)
{
	struct ap_http_core *c = &p->core;
	switch (c->sub) {
	case SL_LEAD: /* tolerate stray empty lines between responses */
		if (ch == '\r' || ch == '\n') {
			c->sub = ch == '\r' ? SL_LEAD_LF : SL_LEAD;
			return 1;
		}
		c->sub = SL_VERSION;
		c->nlen = 0;
		/* fall through */
	case SL_VERSION:
		if (ch != (unsigned char)http1[c->nlen])
			return 0;
		if (++c->nlen == sizeof http1 - 1)
			c->sub = SL_MINOR;
		return 1;
	case SL_LEAD_LF:
		c->sub = SL_LEAD;
		return ch == '\n';
	case SL_MINOR:
		if (ch != '0' && ch != '1')
			return 0;
		p->version_minor = (uint8_t)(ch - '0');
		c->sub = SL_SP;
		return 1;
	case SL_SP:
		c->sub = SL_STATUS;
		c->nlen = 0;
		return ch == ' ';
	case SL_STATUS: /* 100-999: RFC 9110 15 lets clients handle unknown codes */
		if ((unsigned)(ch - '0') > 9 || (c->nlen == 0 && ch == '0'))
			return 0;
		p->status = (uint16_t)(p->status * 10 + (ch - '0'));
		if (++c->nlen == 3)
			c->sub = SL_AFTER;
		return 1;
	case SL_AFTER: /* some servers send "HTTP/1.1 200" with no reason */
		if (ch == ' ')
			c->sub = SL_REASON;
		else if (ch == '\r')
			c->sub = SL_LF;
		else
			return ch == '\n' ? 2 : 0;
		return 1;
	case SL_LF:
		return ch == '\n' ? 2 : 0;
	}
	return 0; /* impossible: SL_REASON is handled by the caller */
}

/* The common `HTTP/1.d SP 3DIGIT` whole in one buffer of at least 12 bytes:
 * one comparison instead of twelve steps. 0 leaves it to the slow path. */
static int status_fast(struct ap_http_resp *p, const unsigned char *s)
{
	if (memcmp(s, http1, sizeof http1 - 1) != 0 || (s[7] != '0' && s[7] != '1') ||
	    s[8] != ' ' || (unsigned)(s[9] - '1') > 8 || (unsigned)(s[10] - '0') > 9 ||
	    (unsigned)(s[11] - '0') > 9)
		return 0;
	p->version_minor = (uint8_t)(s[7] - '0');
	p->status = (uint16_t)((s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0'));
	p->core.sub = SL_AFTER;
	return 1;
}

/* Consumes status-line bytes; *ev becomes START_LINE after its LF. */
static size_t resp_line(struct ap_http_resp *p, const unsigned char *s, size_t n,
                        enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	size_t i = 0;
	while (i < n) {
		int r;
		if (c->sub == SL_LEAD && n - i >= 12 && status_fast(p, s + i)) {
			i += 12;
			continue;
		}
		if (c->sub == SL_REASON) {
			const unsigned char *lf = memchr(s + i, '\n', n - i);
			if (!lf)
				return n;
			i = (size_t)(lf - s);
			r = 2;
		} else if ((r = status_line_byte(p, s[i])) == 0) {
			fail(c, ev);
			return i;
		}
		i++;
		if (r == 2) {
			headers_begin(c);
			*ev = AP_HTTP_START_LINE;
			break;
		}
	}
	return i;
}

/*
 * The blank line ended a response's header block: choose the body framing
 * (RFC 9112 6.3). A body that only the connection's close can end makes the
 * connection non-persistent, whatever the headers said.
 */
static void resp_headers_done(struct ap_http_resp *p)
{
	struct ap_http_core *c = &p->core;
	uint16_t f = c->flags;
	unsigned st = p->status;

	p->keep_alive = (f & HF_CLOSE) ? 0 : p->version_minor ? 1 : !!(f & HF_KEEPALIVE);
	p->chunked = 0;
	p->until_close = 0;
	p->content_length = 0;
	if (p->head || st < 200 || st == 204 || st == 304) {
		c->state = ST_PENDING; /* no body, whatever the headers say */
	} else if ((f & HF_TE) && (f & HF_TE_CHUNKED)) {
		p->chunked = 1;
		chunked_begin(c);
	} else if (!(f & HF_TE) && (f & HF_CL)) {
		p->content_length = c->remaining;
		c->state = c->remaining ? ST_BODY_CL : ST_PENDING;
	} else {
		p->until_close = 1; /* no length, or a coding we cannot undo */
		p->keep_alive = 0;
		c->state = ST_BODY_EOF;
	}
}

/* Like ap_http_req_feed(). Bytes fed after MSG_DONE without a begin()
 * start the next response as if begin() had been called with the same HEAD
 * flag. */
size_t ap_http_resp_feed(struct ap_http_resp *p, const char *buf, size_t len,
                         enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	const unsigned char *s = (const unsigned char *)buf;
	enum ap_http_ev e = AP_HTTP_NEED_MORE;
	size_t off = 0;

	if (!buf)
		len = 0;
	while (e == AP_HTTP_NEED_MORE) {
		if (c->state == ST_ERROR) {
			e = AP_HTTP_ERROR;
		} else if (c->state == ST_PENDING) {
			e = AP_HTTP_MSG_DONE;
			c->state = ST_IDLE;
		} else if (off == len) {
			break;
		} else if (c->state == ST_IDLE) {
			/* bytes without a begin(): a next response, same HEAD flag
			 * (what an interim 1xx needs anyway) */
			ap_http_resp_begin(p, p->head);
		} else if (c->state == ST_LINE) {
			off += resp_line(p, s + off, len - off, &e);
		} else if (c->state == ST_HEADERS) {
			off += headers(c, s + off, len - off, &e);
			if (e == AP_HTTP_HEADERS_DONE)
				resp_headers_done(p);
		} else {
			struct sink k = { NULL, NULL };
			if (p->status >= 500) {
				k.buf = p->errbody;
				k.len = &p->errbody_len;
			}
			off += body(c, s + off, len - off, &e, &k);
			if (e == AP_HTTP_MSG_DONE)
				c->state = ST_IDLE;
		}
	}
	*ev = e;
	return off;
}

/* Only a body that runs until close is ended cleanly by the close; a cut
 * Content-Length or chunked body, or unfinished headers, is not. */
int ap_http_resp_eof(const struct ap_http_resp *p)
{
	return p->until_close && p->core.state == ST_BODY_EOF;
}
