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
 * The byte machines are the reference, and they are slow for what the
 * parser is for: it runs inside the host server on every request, where a
 * few hundred instructions are the whole budget. So the usual message takes
 * fast paths instead: a request line, status line or header line that lies
 * whole in the buffer and looks ordinary is read in one go, with SSE2 16
 * bytes at a time (and a header block's LFs 64 at a time), and any other
 * (split by the end of a read, unusual or wrong) is left to the byte
 * machine from its first byte. A response head whole in one buffer, as
 * servers write it, goes through ap_http_resp_feed_to_end() in one call,
 * status line, header lines and framing (resp_head()); a request head
 * whole in one read, as clients send it, through ap_http_req_feed_head()
 * (AP_HTTP_HEAD_DONE: request line, header lines and framing). A fast path
 * commits nothing for a line it declines, and accepts only what the byte
 * machine would have accepted, with the same results, which the tests check
 * by comparing every input fed whole with the same fed byte by byte.
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
#include "ap_copy.h"

#include <stddef.h>
#include <string.h>

/* SSE2 is part of x86-64, so every x86-64 build has it. Elsewhere, or with
 * -DAP_HTTP_NO_SIMD (worth running the tests that way too), the fast paths
 * use memchr and the class table instead, with the same results. */
#if defined(__SSE2__) && !defined(AP_HTTP_NO_SIMD)
#define HTTP_SSE2 1
#include <emmintrin.h>
#else
#define HTTP_SSE2 0
#endif

/* Kept out of the functions that call them: the feed functions run several
 * times per message and mostly just dispatch, and with these inlined every
 * call would set up their registers and stack frame. */
#define NOINLINE __attribute__((noinline))
/* And the steps of the header fast path are forced inline, where the
 * compiler would call them with their results in memory. */
#define ALWAYS_INLINE __attribute__((always_inline))

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

/* The error is sticky: every later feed sees ST_ERROR and reports it.
 * sub, which no state reads after an error, keeps the state it came in
 * (ap_http_req_in_head()). */
static void fail(struct ap_http_core *c, enum ap_http_ev *ev)
{
	c->sub = c->state;
	c->state = ST_ERROR;
	*ev = AP_HTTP_ERROR;
}

/* Starts a header block; called once the start line's LF is consumed.
 * scratch is left as it is: only its first nlen bytes are ever read, and
 * nlen is 0 (a memset of the whole struct became `rep stos` here). */
static void headers_begin(struct ap_http_core *c)
{
	c->remaining = 0;
	c->num = 0;
	c->flags = 0;
	c->nlen = 0;
	c->state = ST_HEADERS;
	c->sub = H_LINE;
	c->hdr = HDR_FIRST;
}

/* --- comparing with literals, eight bytes at a time ------------------ */

/*
 * Header names and value tokens are compared with the few we look for a
 * word at a time, not byte by byte. LITW(lit, k) is bytes k..k+7 of a
 * string literal as a little-endian word, zero past its end; FOLDW(lit, k)
 * has 0x20 in the bytes where the literal holds a lower-case letter. Both
 * fold to constants at compile time.
 */
#define LB_(s, i) ((i) < sizeof(s) - 1 ? (uint64_t)(unsigned char)(s)[i] : 0)
#define FB_(s, i) \
	((i) < sizeof(s) - 1 && (s)[i] >= 'a' && (s)[i] <= 'z' ? (uint64_t)0x20 : 0)
#define W8_(B, s, k) \
	(B(s, k) | B(s, k + 1) << 8 | B(s, k + 2) << 16 | B(s, k + 3) << 24 | \
	 B(s, k + 4) << 32 | B(s, k + 5) << 40 | B(s, k + 6) << 48 | B(s, k + 7) << 56)
#define LITW(lit, k) W8_(LB_, lit, k)
#define FOLDW(lit, k) W8_(FB_, lit, k)

/* Bytes p[0..len), len <= 8, as a little-endian word, zero-extended. */
static inline uint64_t load_le(const unsigned char *p, size_t len)
{
	uint64_t w = 0;
	memcpy(&w, p, len);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w); /* the bytes p[0..len) were the high ones */
#endif
	return w;
}

/*
 * p[0..len) equals the lower-case literal whose words and fold masks are
 * given, ignoring ASCII case: (bytes | fold) == literal matches a letter in
 * either case and any other byte only itself, so this is exact for any
 * input bytes. len <= 24 and constant at every call (see IEQ). Past 8
 * bytes the words overlap rather than end in a short one: w1 is the word
 * at len - 8 (or at 8 when len > 16), w2 the one at len - 8, so every load
 * is a whole 8-byte one.
 */
static inline int ieq_(const unsigned char *p, size_t len, uint64_t w0, uint64_t f0,
                       uint64_t w1, uint64_t f1, uint64_t w2, uint64_t f2)
{
	if (len < 8)
		return (load_le(p, len) | f0) == w0;
	if ((load_le(p, 8) | f0) != w0)
		return 0;
	if (len > 8 && (load_le(p + (len <= 16 ? len - 8 : 8), 8) | f1) != w1)
		return 0;
	return len <= 16 || (load_le(p + len - 8, 8) | f2) == w2;
}

/* p[0..sizeof(lit) - 1) equals the lower-case string literal lit, ignoring
 * ASCII case. The caller has checked the length. */
#define IEQ_LEN(lit) (sizeof(lit) - 1)
#define IEQ_W1(lit) (IEQ_LEN(lit) <= 8 ? 0 : IEQ_LEN(lit) <= 16 ? IEQ_LEN(lit) - 8 : 8)
#define IEQ_W2(lit) (IEQ_LEN(lit) <= 8 ? 0 : IEQ_LEN(lit) - 8)
#define IEQ(p, lit) \
	ieq_((p), IEQ_LEN(lit), LITW(lit, 0), FOLDW(lit, 0), LITW(lit, IEQ_W1(lit)), \
	     FOLDW(lit, IEQ_W1(lit)), LITW(lit, IEQ_W2(lit)), FOLDW(lit, IEQ_W2(lit)))

/* --- scanning whole lines ---------------------------------------------- */

/*
 * The fast paths below look at a line only once it lies whole in the
 * buffer, and find line ends and name ends 16 bytes at a time: glibc's
 * memchr costs 20-40 instructions of setup per call, half of what a whole
 * header line costs here, so it is left to lines too long for a 32-byte
 * window. Loads never reach past the buffer: near its end they are moved
 * back to end with it, and the bit masks shifted to match. Without SSE2
 * the same helpers use memchr and the class table.
 */
#if HTTP_SSE2
/* Trailing zeros of x != 0, as the size_t every caller adds it to. */
#if defined(__x86_64__)
/* bsf straight into the size_t: __builtin_ctz's int costs a zeroing xor
 * and a sign extension around every use, in loops run once per line. */
static inline size_t ctz64(uint64_t x)
{
	uint64_t r;
	__asm__("bsfq %1, %0" : "=r"(r) : "rm"(x) : "cc");
	return (size_t)r;
}

static inline size_t ctz32(uint32_t x)
{
	return ctz64(x);
}
#else
static inline size_t ctz32(uint32_t x)
{
	return (unsigned)__builtin_ctz(x);
}

static inline size_t ctz64(uint64_t x)
{
	return (unsigned)__builtin_ctzll(x);
}
#endif

/* Bit k set when byte k of the 16 at p equals ch. */
static inline uint32_t eq16(const unsigned char *p, char ch)
{
	__m128i v = _mm_loadu_si128((const __m128i *)p);
	return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(ch)));
}

/* Bit k set when byte k of the 16 at p is an ASCII letter or '-': token
 * bytes (RFC 9110 5.6.2), and all that nearly every header name is made
 * of. */
static inline uint32_t namebytes16(const unsigned char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)p);
	/* letters: (v | 0x20) in 'a'..'z', moved to -128..-103 to be one
	 * signed comparison */
	__m128i t = _mm_add_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)),
	                         _mm_set1_epi8((char)(0x80 - 'a')));
	__m128i letter = _mm_cmpgt_epi8(_mm_set1_epi8((char)(-128 + 26)), t);
	__m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
	return (uint32_t)_mm_movemask_epi8(_mm_or_si128(letter, dash));
}

static inline uint32_t lf16(const unsigned char *p)
{
	return eq16(p, '\n');
}
#endif

/* Index of the first LF in s[i..n), n if none: memchr past a first
 * 32-byte window, which holds the whole of most lines. */
static inline size_t find_lf(const unsigned char *s, size_t i, size_t n)
{
#if HTTP_SSE2
	if (n >= 32) {
		size_t at = n - i >= 32 ? i : n - 32;
		uint32_t lf = (lf16(s + at) | lf16(s + at + 16) << 16) >> (i - at);
		if (lf)
			return i + ctz32(lf);
		i = at + 32;
	}
#endif
	const unsigned char *p = i < n ? memchr(s + i, '\n', n - i) : NULL;
	return p ? (size_t)(p - s) : n;
}

#if HTTP_SSE2
/*
 * scan_line() on the 32-byte window s[at..at+32), which holds s[i] and
 * lies inside the buffer s[0..n): at == i unless i is near the end.
 */
static inline size_t scan32(const unsigned char *s, size_t i, size_t at, size_t n,
                            size_t *name)
{
	unsigned shift = (unsigned)(i - at);
	uint32_t lf = (lf16(s + at) | lf16(s + at + 16) << 16) >> shift;
	uint64_t nm = namebytes16(s + at) >> shift;
	if (nm == 0xffffu >> shift) /* rare: the name goes on past 16 bytes */
		nm = (namebytes16(s + at) | namebytes16(s + at + 16) << 16) >> shift;
	/* nm is 0 past the window, where the prefix must stop */
	*name = i + ctz64(~nm);
	if (lf)
		return i + ctz32(lf);
	/* a long line: memchr's setup pays off */
	i = at + 32;
	const unsigned char *p = i < n ? memchr(s + i, '\n', n - i) : NULL;
	return p ? (size_t)(p - s) : n;
}
#endif

/*
 * Scans the line starting at s[i]: returns the index of its LF, n if it
 * has none in s[0..n), and sets *name past a prefix of its name made of
 * bytes that are certainly token bytes (maybe an empty one). The LF is no
 * token byte, so a byte loop continuing from *name stops at it at the
 * latest.
 */
static inline size_t scan_line(const unsigned char *s, size_t i, size_t n, size_t *name)
{
#if HTTP_SSE2
	if (n - i >= 32)
		return scan32(s, i, i, n, name);
	if (n >= 32) /* near the end: a window that ends with the buffer */
		return scan32(s, i, n - 32, n, name);
#endif
	*name = i;
	return find_lf(s, i, n);
}

/*
 * Index of the first byte of s[i..n) that cannot be in a request target
 * (controls, SP, DEL: see cls[]), n if none.
 */
static size_t target_end(const unsigned char *s, size_t i, size_t n)
{
#if HTTP_SSE2
	const __m128i sp = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f);
	while (i < n && n >= 16) {
		/* the 16 bytes from i, or near the end the 16 that end the buffer */
		size_t at = n - i >= 16 ? i : n - 16;
		__m128i v = _mm_loadu_si128((const __m128i *)(s + at));
		/* max(v, SP) == SP: v <= SP as an unsigned byte */
		__m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, sp), sp),
		                           _mm_cmpeq_epi8(v, del));
		uint32_t m = (uint32_t)_mm_movemask_epi8(bad) >> (i - at);
		if (m)
			return i + ctz32(m);
		i = at + 16;
	}
#endif
	while (i < n && (cls[s[i]] & C_TARGET))
		i++;
	return i;
}

/* --- header block, shared by both directions ------------------------- */

/*
 * A cheap first look at a name of `len` bytes starting with `first`: could
 * it be one header_id() knows? For each length, the set of their first
 * letters, as bits indexed by the letter's low five bits (which ignore
 * ASCII case; the few other bytes that alias a letter just get compared).
 * Nearly every name fails this, and is never compared.
 */
#define LETTER_BIT(ch) (1u << ((ch) & 31))
static const uint32_t hdr_first[18] = {
	[6] = LETTER_BIT('e'),
	[10] = LETTER_BIT('c'),
	[14] = LETTER_BIT('c'),
	[17] = LETTER_BIT('t') | LETTER_BIT('x'),
};

static inline int header_maybe(unsigned char first, size_t len)
{
	/* the lengths first: one bit test that nearly every name fails */
	const uint32_t lens = 1u << 6 | 1u << 10 | 1u << 14 | 1u << 17;
	return len < 32 && (lens >> len & 1) && (hdr_first[len] & LETTER_BIT(first));
}

/* Which of the headers we care about a name is. */
static inline uint8_t header_id(const unsigned char *name, size_t len)
{
	switch (len) {
	case 6:
		return IEQ(name, "expect") ? HDR_EXPECT : HDR_OTHER;
	case 10:
		return IEQ(name, "connection") ? HDR_CONN : HDR_OTHER;
	case 14:
		return IEQ(name, "content-length") ? HDR_CL : HDR_OTHER;
	case 17:
		if (IEQ(name, "transfer-encoding"))
			return HDR_TE;
		return IEQ(name, "x-apiprof-profile") ? HDR_PROFILE : HDR_OTHER;
	}
	return HDR_OTHER;
}

/* The flag a value token of header `hdr` stands for, 0 for none. For
 * Transfer-Encoding, HF_TE_CHUNKED: the coding is chunked. */
static inline uint16_t token_flag(uint8_t hdr, const unsigned char *t, size_t len)
{
	switch (hdr) {
	case HDR_TE:
		return len == 7 && IEQ(t, "chunked") ? HF_TE_CHUNKED : 0;
	case HDR_CONN:
		if (len == 5 && IEQ(t, "close"))
			return HF_CLOSE;
		return len == 10 && IEQ(t, "keep-alive") ? HF_KEEPALIVE : 0;
	case HDR_EXPECT:
		return len == 12 && IEQ(t, "100-continue") ? HF_EXPECT : 0;
	case HDR_PROFILE:
		return len == 1 && t[0] == '1' ? HF_PROFILE : 0;
	}
	return 0;
}

/* Records a Transfer-Encoding, Connection, Expect or X-Apiprof-Profile
 * token whose flag token_flag() gave. The last coding decides chunked. */
static void token_apply(struct ap_http_core *c, uint8_t hdr, uint16_t flag)
{
	if (hdr == HDR_TE)
		c->flags = (uint16_t)((c->flags & ~HF_TE_CHUNKED) | flag);
	else
		c->flags |= flag;
}

/* Records a Content-Length value; 0, changing nothing, when it conflicts
 * with an earlier one (RFC 9112 6.3 item 5: repeats are fine only with one
 * value). */
static int content_length(struct ap_http_core *c, uint64_t v)
{
	if ((c->flags & HF_CL) && c->remaining != v)
		return 0;
	c->remaining = v;
	c->flags |= HF_CL | HF_LINE_TOKEN;
	return 1;
}

/*
 * One list element of an interesting header's value has ended. Returns 0
 * when it makes the framing invalid. Content-Length may repeat (as a list or
 * as several lines) only with one value; the last Transfer-Encoding coding
 * decides chunked, over all lines (RFC 9112 6.1).
 */
static int token_end(struct ap_http_core *c)
{
	if (c->hdr == HDR_CL) {
		if (!content_length(c, c->num))
			return 0;
		c->num = 0;
	} else {
		const unsigned char *t = (const unsigned char *)c->scratch;
		token_apply(c, c->hdr, token_flag(c->hdr, t, c->nlen));
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
		c->scratch[c->nlen] = (char)ch;
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

/* --- header block: whole lines fast, the rest byte by byte ------------- */

/*
 * The value of an interesting header whose line lies whole in the buffer:
 * v[0..end) runs from after the colon to the line's LF. Handles the common
 * shape only, one token between optional whitespace (the slow path treats
 * CR as whitespace too), and commits nothing unless the value is one it
 * fully understands and accepts: a Content-Length of at most 19 digits (no
 * overflow possible) agreeing with any earlier one, or one of the tokens
 * token_flag() knows. Returns 0, having changed nothing, for anything else
 * (lists, unknown tokens, errors): the byte machine then reads the line.
 */
ALWAYS_INLINE static inline int value_fast(struct ap_http_core *c,
                                          uint8_t hdr, const unsigned char *v,
                                          const unsigned char *end)
{
	if (v[0] == ' ' && end - v >= 3 && end[-1] == '\r' && v[1] > ' ' && end[-2] > ' ') {
		/* the usual `: token CRLF`: what the loops below would trim */
		v++;
		end--;
	} else {
		/* the LF at `end` stops the first loop; `end > v` guards the
		 * second */
		while (*v == ' ' || *v == '\t')
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
	}
	size_t len = (size_t)(end - v);
	if (len == 0)
		return 0;
	if (hdr == HDR_CL) {
		uint64_t num = 0;
		if (len > 19)
			return 0;
		for (; v < end; v++) {
			unsigned d = (unsigned)(*v - '0');
			if (d > 9)
				return 0;
			num = num * 10 + d;
		}
		if (!content_length(c, num))
			return 0;
	} else {
		uint16_t flag = token_flag(hdr, v, len);
		if (!flag)
			return 0;
		if (hdr == HDR_TE)
			c->flags |= HF_TE;
		token_apply(c, hdr, flag);
	}
	return 1;
}

/*
 * The two framing headers every response carries, in the shape servers
 * send them, read in the header loop itself (line_fast() and
 * line_fast16()) without header_id() and value_fast(): the name as two
 * words, `: DIGITS CRLF` with 1..19 digits, and `: keep-alive CRLF` or
 * `: close CRLF` as two words and one from the colon (case folded in the
 * letters only). For a name header_maybe() lets through, ending at k in a
 * colon, of the line s[i..lf]. Returns the header, having read what
 * value_fast() would, or -2 having changed nothing for anything else
 * (line_known() reads it). Measured: the nginx response's two such lines
 * went from 131 instructions (line_known() with header_id() and
 * value_fast()) to about 45 more than two ordinary lines.
 */
ALWAYS_INLINE static inline int known_fast(struct ap_http_core *c, const unsigned char *s,
                                           size_t i, size_t k, size_t lf)
{
	const unsigned char *v = s + k; /* the colon */
	if (k - i == 14) {
		size_t digits = lf - k - 3; /* between `: ` and CRLF */
		if (!IEQ(s + i, "content-length") || v[1] != ' ' || s[lf - 1] != '\r' ||
		    digits - 1 >= 19)
			return -2;
		uint64_t num = (unsigned)(v[2] - '0');
		if (num > 9)
			return -2;
		const unsigned char *d = v + 3, *e = v + 2 + digits;
		for (; d < e; d++) { /* the rest of them, often none */
			unsigned dv = (unsigned)(*d - '0');
			if (dv > 9)
				return -2;
			num = num * 10 + dv;
		}
		return content_length(c, num) ? HDR_CL : -2;
	}
	if (k - i == 10 && IEQ(s + i, "connection")) {
		if (lf - k == 13 &&
		    (load_le(v, 8) | FOLDW(": keep-a", 0)) == LITW(": keep-a", 0) &&
		    (load_le(v + 6, 8) | FOLDW("-alive\r\n", 0)) == LITW("-alive\r\n", 0)) {
			c->flags |= HF_KEEPALIVE;
			return HDR_CONN;
		}
		if (lf - k == 8 && (load_le(v, 8) | FOLDW(": close\r", 0)) == LITW(": close\r", 0)) {
			c->flags |= HF_CLOSE;
			return HDR_CONN;
		}
	}
	return -2;
}

/*
 * The rare cases of line_fast(), kept out of its loop. line_known(): a
 * name header_maybe() lets through, ending at k in a colon, that
 * known_fast() declined; line_odd(): a name ending at k in another byte
 * than a colon (a token byte other than a letter or '-', or none), or an
 * empty one. Same contract as line_fast().
 */
NOINLINE static int line_known(struct ap_http_core *c, const unsigned char *s, size_t i,
                               size_t k, size_t lf)
{
	uint8_t h = header_id(s + i, k - i);
	if (h != HDR_OTHER && !value_fast(c, h, s + k + 1, s + lf))
		return -1;
	return h;
}

NOINLINE static int line_odd(struct ap_http_core *c, const unsigned char *s, size_t i,
                             size_t k, size_t lf)
{
	while (cls[s[k]] & C_TCHAR)
		k++;
	if (s[k] != ':' || k == i)
		return -1; /* a fold, a bad name, no colon, an empty name */
	if (!header_maybe(s[i], k - i))
		return HDR_OTHER;
	return line_known(c, s, i, k, lf);
}

/*
 * One header line s[i..lf], whole in the buffer with its LF at lf, whose
 * name ends at k if all of it is letters and '-' (k <= lf: the LF is no
 * name byte). Reads it as headers_fast() does, below, and returns the
 * header it was (HDR_*), or -1 without a change for a line the byte
 * machine must read.
 */
ALWAYS_INLINE static inline int line_fast(struct ap_http_core *c, const unsigned char *s,
                                          size_t i, size_t k, size_t lf)
{
	if (__builtin_expect(s[k] != ':' || k == i, 0))
		return line_odd(c, s, i, k, lf);
	if (__builtin_expect(header_maybe(s[i], k - i), 0)) {
		int h = known_fast(c, s, i, k, lf);
		return h != -2 ? h : line_known(c, s, i, k, lf);
	}
	return HDR_OTHER; /* nearly every line */
}

/* line_fast16()'s first look at a name of at most 16 bytes: the first
 * letter, lower case, of the one name header_id() knows of each length
 * (hdr_first[] with one letter per length up to 16), else 0, which no
 * byte | 0x20 is; and ':' at 0, the first byte of an empty name's line.
 * One byte compared costs 2 instructions a line less than hdr_first[]'s
 * bit test. */
static const unsigned char hdr_first16[17] = {
	[0] = ':', [6] = 'e', [10] = 'c', [14] = 'c',
};

/* line_fast() for a name end k <= i + 16 (name_end16()'s): the length
 * needs no bounds check, and no test of its own, before hdr_first16[]
 * (cheaper than header_maybe()'s test of the length first). An empty name
 * (k == i, a line starting with ':') passes that test too, which spares
 * every line a comparison, and goes to line_odd(). */
ALWAYS_INLINE static inline int line_fast16(struct ap_http_core *c,
                                            const unsigned char *s, size_t i, size_t k,
                                            size_t next)
{
	size_t len = k - i;
	if (__builtin_expect(s[k] != ':', 0))
		return line_odd(c, s, i, k, next - 1);
	if (__builtin_expect((s[i] | 0x20) == hdr_first16[len], 0)) {
		if (!len)
			return line_odd(c, s, i, k, next - 1);
		int h = known_fast(c, s, i, k, next - 1);
		return h != -2 ? h : line_known(c, s, i, k, next - 1);
	}
	return HDR_OTHER;
}

#if HTTP_SSE2
/*
 * The LFs of the 64-byte window s[b..b+64) of the buffer s[0..n), b < n,
 * n >= 16: bit j set when s[b+j] is LF, clear past n. Near the end of the
 * buffer, loads that would reach past n are moved back to end at n (they
 * may then start before b, never before s) and their bits shifted into
 * place.
 */
/* lf_window() of a buffer of 64 bytes or more: what the header loop's
 * later windows need (a shorter buffer is one window), without the
 * short buffer's offsets, which the compiler computes ahead of the branch. */
ALWAYS_INLINE static inline uint64_t lf_window64(const unsigned char *s, size_t b, size_t n)
{
	if (n - b >= 64)
		return lf16(s + b) | (uint64_t)lf16(s + b + 16) << 16 |
		       (uint64_t)lf16(s + b + 32) << 32 |
		       (uint64_t)lf16(s + b + 48) << 48;
	/* the 64 bytes ending the buffer, moved into place */
	const unsigned char *e = s + n - 64;
	uint64_t l = lf16(e) | (uint64_t)lf16(e + 16) << 16 |
	             (uint64_t)lf16(e + 32) << 32 | (uint64_t)lf16(e + 48) << 48;
	return l >> (b - (n - 64));
}

ALWAYS_INLINE static inline uint64_t lf_window(const unsigned char *s, size_t b, size_t n)
{
	if (n >= 64)
		return lf_window64(s, b, n);
	/* a buffer of 16 to 63 bytes: the LFs of all of it from four loads,
	 * at 0, 16 and 32 or, where those would reach past n, at n - 16 (the
	 * overlaps agree), then moved to start at b */
	size_t o1 = n < 32 ? n - 16 : 16, o2 = n < 48 ? n - 16 : 32;
	uint64_t l = lf16(s) | (uint64_t)lf16(s + o1) << o1 | (uint64_t)lf16(s + o2) << o2 |
	             (uint64_t)lf16(s + n - 16) << (n - 16);
	return l >> b;
}

/* Index of the first LF in s[from..n), from < n, or n: out of the header
 * loop, which only comes here for lines over 128 bytes. */
NOINLINE static size_t lf_after(const unsigned char *s, size_t from, size_t n)
{
	const unsigned char *p = memchr(s + from, '\n', n - from);
	return p ? (size_t)(p - s) : n;
}

/*
 * Where the name of the line starting at s[i] ends, i < n, n >= 16: at the
 * first byte of its first 16 that is no letter or '-', or i + 16 if there
 * is none (a long name, or an odd byte: line_odd() then goes on). Near the
 * end of the buffer the 16 bytes ending it are looked at instead.
 */
ALWAYS_INLINE static inline size_t name_end16(const unsigned char *s, size_t i, size_t n)
{
	uint32_t nm;
	if (__builtin_expect(i <= n - 16, 1))
		nm = namebytes16(s + i);
	else
		nm = namebytes16(s + n - 16) >> (i - (n - 16));
	return i + ctz32(~nm); /* ~nm has bit 16 set at the latest */
}
#endif

#if HTTP_SSE2
/*
 * The loop of headers_fast() with SSE2, from the line starting at s[i] of
 * s[0..n), n >= 16, where the LF window is s[b..we) and lfs holds its LFs
 * from i on. Windows need not start at the header block: the whole-head
 * paths (resp_head()) begin them at the start line. Returns where it
 * stopped: at the blank line, at the end of the buffer, or at the start of
 * a line it leaves to the byte machine.
 */
ALWAYS_INLINE static inline size_t lines_sse(struct ap_http_core *c, const unsigned char *s,
                                             size_t i, size_t n, size_t b, size_t we,
                                             uint64_t lfs)
{
	uint8_t hdr = c->hdr;
	/* the line after the LF at bit j of lfs starts at b1 + j: kept
	 * instead of b, it spares each line an addition */
	size_t b1 = b + 1;
	for (;;) {
		if (__builtin_expect(!lfs, 0)) {
			/* a line going on past the window (or the blank line's
			 * LF in the next one); i <= we, and i == n only when
			 * we == n */
			do {
				if (we == n)
					goto out; /* the rest is still to come */
				if (__builtin_expect(we - i >= 128, 0)) {
					/* a long line (a cookie, a token): memchr's
					 * setup pays off; a window of its LF alone */
					b = lf_after(s, we, n);
					if (b == n)
						goto out;
					we = b + 1;
					b1 = b + 1;
					lfs = 1;
					break;
				}
				/* we < n: the first window was 64 bytes, and so
				 * is the buffer */
				b1 = we + 1;
				lfs = lf_window64(s, we, n);
				we = n - we < 64 ? n : we + 64;
			} while (!lfs);
		}
		/* CR and LF start the blank line; the other bytes <= CR, a name
		 * never. While an LF not yet passed is in the window, i is
		 * before it, so s[i] needs no check against n. */
		if (s[i] <= '\r')
			goto out;
		size_t next = b1 + ctz64(lfs);
		lfs &= lfs - 1;
		int h = line_fast16(c, s, i, name_end16(s, i, n), next);
		if (h < 0)
			goto out;
		hdr = (uint8_t)h;
		i = next;
	}
out:
	c->hdr = hdr;
	return i;
}
#endif

/* The blank line ending the block, if it starts at s[i] and is whole in
 * s[0..n): returns the index past it, with *ev HEADERS_DONE; else i. */
ALWAYS_INLINE static inline size_t block_end(const unsigned char *s, size_t i, size_t n,
                                             enum ap_http_ev *ev)
{
	size_t end = i + (i < n && s[i] == '\r');
	if (end < n && s[end] == '\n') {
		*ev = AP_HTTP_HEADERS_DONE;
		return end + 1;
	}
	return i;
}

/*
 * Reads the header lines that lie whole in s[0..n) as long as they look
 * ordinary, and stops at the start of the first that does not: one split
 * by the end of the buffer, a folded line, a name with bytes other than
 * token bytes, a value value_fast() declines. The byte machine,
 * headers_slow(), takes over from there; it is the reference, and all done
 * here is what it would have done with the same line, whose name it would
 * have scanned byte by byte, and whose value, for the headers we ignore
 * (nearly all of them), it would have skipped to the LF as here.
 *
 * With SSE2 the LFs are found 64 bytes at a time (lf_window()), in
 * windows that follow each other from the start of the block, so each
 * byte is compared once and a line's LF is a bit scan; a line's name is checked
 * with one 16-byte load at its start (name_end16()). Names of letters and
 * '-' only, not one of the few we read, are all this loop looks at; the
 * rest go to line_odd() and line_known(). Buffers under 16 bytes, and
 * builds without SSE2, scan each line on its own (scan_line()).
 *
 * Measured with callgrind on the benchmark's nginx exchange (a 3-line
 * request header block, a 5-line response one; scripts/bench.sh --only cg):
 * the parser as a whole went from 1401 to about 1180 instructions per
 * request with this loop (it was one 32-byte window and name mask per
 * line, about 95 instructions a line; now about 38, plus the windows).
 * A window of LF and name masks walked by bit tricks for all its lines
 * (tried: the name ends of all lines at once as (names + line starts) &
 * ~names) cost more: SSE2's two-operand instructions make each 16 bytes of
 * name classification about 16 instructions, which the bytes of the values
 * pay for too.
 *
 * Then (branch perf-parse, same exchange, APIPROF_PROFILE_EVERY=0): 1199 ->
 * 902 for the whole parser (nginx preloaded 10735 -> 10441, plain 8519).
 * The response head, whole in nginx's iov[0], now goes through resp_head()
 * in one call (status line and lines in one run of windows from byte 0,
 * framing decided), and the body in iov[1] without the dispatch: 390
 * (headers) + 95 (status line) + 102 + 27 (feed_to_end, resp_step_body) +
 * 131 (line_known) = 745 -> 527 (resp_head() 499, feed_to_end 28).
 * Content-Length and Connection in their usual shape are read in the
 * loop (known_fast(); was line_known() at 65 a line); the line loop
 * lost its bounds and empty-name tests (an LF still in the window means i
 * is in the buffer; hdr_first[0], now hdr_first16[0], sends empty names
 * to line_odd()), about 31 instructions a line now; a buffer under 64
 * bytes has its LFs from four loads (was a loop, 46 for the request's 52-byte block), and later
 * windows skip that case's offsets, which the compiler hoisted into every
 * refill. The request: req_step_headers() 268 -> 215, req_step_line() and
 * req_line_fast() 134 -> 114 (one frame), ap_http_req_feed() 28 -> 22.
 * Tried and dropped: reading a request's header block ahead in the
 * start-line call, for the next feed to take whole (+28: the loop costs
 * the same in either frame, and the second call keeps its own); a 16-byte
 * name test without the constant copies (gcc turned the compare around and
 * added a negation: +24).
 *
 * Then (branch perf-req): the request's lines cost what the response's do,
 * about 33 instructions each; of req_step_headers()' 215 for the 3-line
 * block, the rest was its call, its first window, the blank line and the
 * framing. So the whole request head goes in one call too
 * (ap_http_req_feed_head(), its windows starting after the request line,
 * and a short target stored from the request line's one load, the
 * method's letters tested as one bit scan): 360 -> 307 per request
 * (req_step_line 114 + req_step_headers 215 + feed 22 + end_bodyless 9 ->
 * feed_head 298 + end_bodyless 9), nginx preloaded 10203 -> 10135 (8519
 * plain), pl_conn_recv 108 -> 91 (one feed call fewer). Tried and dropped there: windows from byte 0 as in resp_head()
 * (+42: the 69-byte head then needs a second window), the window's end
 * worked out in the loop instead of kept (+8 for the request, -6 for the
 * response), and the name test as a mask of the other bytes with an
 * and-not (+9, and +15 for the response).
 *
 * Then (branch h1shave, 2026-12-07): 34 -> 33 instructions a line. The
 * first-letter test compares one byte (hdr_first16[], was a bit of
 * hdr_first[]: -1 a line), the blank-line test after a window's refill
 * instead of before it (-2 a refill), the next line's start kept per
 * window as b1 = b + 1, with the LF passed on as next - 1 to the rare
 * paths only (-1 a line): resp_head() 499 -> 493, ap_http_req_feed_head()
 * 297 -> 292. Tried and dropped: the first-letter test as a bit test
 * written `>> & 1` (gcc makes it shr and and, no bt: no change). Not
 * worth trying: the blank line left to line_odd() (-2 a line, about +25
 * for the blank one, by the instructions a line runs before its colon).
 *
 * Of the state a line leaves, only hdr (for a fold) and the framing in
 * flags and remaining are read after it, so those are all that is kept up.
 * Returns the bytes consumed; *ev becomes HEADERS_DONE after the blank line.
 */
ALWAYS_INLINE static inline size_t headers_fast(struct ap_http_core *c,
                                                const unsigned char *s, size_t n,
                                                enum ap_http_ev *ev)
{
	size_t i = 0;
#if HTTP_SSE2
	if (n >= 16)
		return block_end(s, lines_sse(c, s, 0, n, 0, n < 64 ? n : 64, lf_window(s, 0, n)),
		                 n, ev);
#endif
	uint8_t hdr = c->hdr;
	/* CR and LF start the blank line; the other bytes <= CR, a name never */
	while (i < n && s[i] > '\r') {
		size_t k, lf = scan_line(s, i, n, &k);
		if (lf == n)
			break; /* the rest of the line is still to come */
		int h = line_fast(c, s, i, k, lf);
		if (h < 0)
			break;
		hdr = (uint8_t)h;
		i = lf + 1;
	}
	c->hdr = hdr;
	return block_end(s, i, n, ev);
}

/*
 * The byte machine for the header block: consumes header-block bytes, from
 * wherever a line was split or headers_fast() stopped. *ev becomes
 * HEADERS_DONE right after the blank line, ERROR on a malformed line.
 * Whenever it is back at the start of a line it gives headers_fast() a go.
 */
NOINLINE static size_t headers_slow(struct ap_http_core *c, const unsigned char *s,
                                    size_t n, enum ap_http_ev *ev)
{
	size_t i = 0, refused = c->sub == H_LINE ? 0 : SIZE_MAX;
	while (i < n) {
		if (c->sub == H_LINE && i != refused) {
			/* whole ordinary lines go fast; the rest byte by byte */
			i += headers_fast(c, s + i, n - i, ev);
			if (*ev != AP_HTTP_NEED_MORE)
				return i;
			refused = i;
			continue;
		}
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

/*
 * Consumes header-block bytes. *ev becomes HEADERS_DONE right after the
 * blank line, ERROR on a malformed line; the caller then decides framing.
 */
ALWAYS_INLINE static inline size_t headers(struct ap_http_core *c, const unsigned char *s,
                                           size_t n, enum ap_http_ev *ev)
{
	size_t i = 0;
	if (c->sub == H_LINE) {
		i = headers_fast(c, s, n, ev);
		if (i == n || *ev != AP_HTTP_NEED_MORE)
			return i;
	}
	return i + headers_slow(c, s + i, n - i, ev);
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
NOINLINE static size_t body_machine(struct ap_http_core *c, const unsigned char *s,
                                    size_t n, enum ap_http_ev *ev, struct sink *k)
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

/* body_machine(), with the usual Content-Length body taken in one go. */
static size_t body(struct ap_http_core *c, const unsigned char *s, size_t n,
                   enum ap_http_ev *ev, struct sink *k)
{
	if (c->state == ST_BODY_CL) {
		n = body_bytes(c, s, n, k);
		if (c->remaining == 0)
			*ev = AP_HTTP_MSG_DONE;
		return n;
	}
	return body_machine(c, s, n, ev, k);
}

/* --- requests ---------------------------------------------------------- */

/* Same as zeroing, as far as anyone can tell: the bytes past the NULs of
 * method and target are no part of the results, and clearing all 500 of
 * them cost more than the rest of a small request's parse. */
void ap_http_req_init(struct ap_http_req *p)
{
	p->method[0] = '\0';
	p->target[0] = '\0';
	p->method_len = 0;
	p->target_len = 0;
	p->target_truncated = 0;
	p->version_minor = 0;
	p->keep_alive = 0;
	p->expect_continue = 0;
	p->profile = 0;
	p->chunked = 0;
	p->content_length = 0;
	memset(&p->core, 0, sizeof p->core);
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
	size_t i = target_end(s, 0, n);
	size_t room = AP_HTTP_TARGET_MAX - 1 - p->target_len;
	size_t keep = i < room ? i : room;
	memcpy(p->target + p->target_len, s, keep);
	p->target_len = (uint16_t)(p->target_len + keep);
	p->target[p->target_len] = '\0';
	if (keep < i)
		p->target_truncated = 1;
	return i;
}

/* One byte of `method SP target SP HTTP/1.d CRLF` (each SP maybe a run of
 * them, and SPs before the CRLF) that the tight loops of req_line() left.
 * Returns 0 if it cannot belong there, 2 after the line's LF, 1 otherwise. */
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
		if (ch != ' ')
			return 0; /* CR/LF here is HTTP/0.9 */
		/* RFC 9112 3: a server may split the line on runs of SP rather
		 * than single ones, and nginx, Tomcat, HAProxy, Twisted, aiohttp
		 * and uvicorn serve `GET  /a  HTTP/1.1`; nginx and Twisted also
		 * take SPs before the CRLF (RL_CR). Taking them too keeps such a
		 * connection followed (and records the 400 of a server that
		 * refuses them). HTAB is no separator here: most refuse it. */
		if (p->target_len == 0)
			return 1; /* more SPs before the target */
		c->sub = RL_VERSION;
		c->nlen = 0;
		return 1;
	case RL_VERSION:
		if (ch == ' ' && c->nlen == 0)
			return 1; /* more SPs before the version */
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
		if (ch == ' ')
			return 1; /* SPs after the version (see RL_TARGET) */
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
 * The end of a request line from the SP at s[e] on, e < n: `SP HTTP/1.d
 * CRLF`, 11 bytes, whole in s[0..n)? Returns the version's minor digit
 * (0 or 1), or -1. Two words that overlap at the '.': ` HTTP/1.` and
 * `.d CRLF`, where 1.0 and 1.1 differ only in the low bit of the digit
 * (see status_fast()): 5 instructions fewer than the SP, the version
 * word and CR and LF tested apart.
 */
ALWAYS_INLINE static inline int req_line_end(const unsigned char *s, size_t e, size_t n)
{
	if (n - e < 11)
		return -1;
	uint64_t w = load_le(s + e, 8);
	uint32_t v = (uint32_t)load_le(s + e + 7, 4);
	if (w != LITW(" HTTP/1.", 0) || (v | 1u << 8) != (uint32_t)LITW(".1\r\n", 0))
		return -1;
	return (int)(v >> 8 & 1);
}

/* req_line_fast() below stores the method and a short target with two
 * 16-byte stores that rely on target following method. */
_Static_assert(offsetof(struct ap_http_req, target) ==
                       offsetof(struct ap_http_req, method) + AP_HTTP_METHOD_MAX,
               "target right after method");

/*
 * The request line whole at the start of s[0..n), in its usual shape
 * `METHOD SP TARGET SP HTTP/1.d CRLF`: read in one go, without the byte
 * machine below. Returns the bytes it took (the line), or 0, having
 * changed no result, for anything else, which req_line() then reads: empty
 * lines before the request, a bare LF, a line split by the end of the
 * buffer, any error.
 */
ALWAYS_INLINE static inline size_t req_line_fast(struct ap_http_req *p,
                                                 const unsigned char *s, size_t n)
{
	size_t m = 0, t, e;
	int minor;
#if HTTP_SSE2
	if (n >= 16) {
		/* the first 16 bytes hold the usual method and the start of the
		 * target: one load finds the SP after the method, checks it is
		 * upper-case letters (token bytes; others go the slow way below),
		 * and finds the target's end if it is in there */
		const __m128i sp = _mm_set1_epi8(' ');
		__m128i v = _mm_loadu_si128((const __m128i *)s);
		__m128i up = _mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - 'A')));
		up = _mm_cmpgt_epi8(_mm_set1_epi8((char)(-128 + 26)), up);
		/* max(v, SP) == SP: v <= SP as an unsigned byte; and DEL */
		__m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, sp), sp),
		                           _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
		uint32_t ups = (uint32_t)_mm_movemask_epi8(up);
		uint32_t ends = (uint32_t)_mm_movemask_epi8(bad);
		m = ctz32(ends | 0x10000);
		/* a method of 1..15 upper-case letters ending at an SP: the
		 * first byte that is no such letter (~ups has bit 16 set) is
		 * at m or later */
		if (m != 0 && m < 16 && s[m] == ' ' && ctz32(~ups) >= m) {
			t = m + 1;
			uint32_t rest = ends >> t; /* t <= 16 */
			if (__builtin_expect(!rest, 0)) {
				e = target_end(s, 16, n);
				goto target;
			}
			/* the target ends in these 16 bytes too (e <= 15), the
			 * usual short path: v holds the method and the target,
			 * stored as it is. At target - t it puts s[t..16) at
			 * target[0..16 - t), and s[0..t) over the end of
			 * method, which v stored at method then overwrites. */
			e = t + ctz32(rest);
			if (e == t || (minor = req_line_end(s, e, n)) < 0)
				return 0;
			_mm_storeu_si128((__m128i *)(void *)((char *)p +
			                                     offsetof(struct ap_http_req, target) - t),
			                 v);
			_mm_storeu_si128((__m128i *)(void *)p->method, v);
			p->method[m] = '\0';
			p->method_len = (uint16_t)m;
			p->target[e - t] = '\0';
			p->target_len = (uint16_t)(e - t);
			p->target_truncated = 0;
			p->version_minor = (uint8_t)minor;
			return e + 11;
		}
		m = 0;
	}
#endif
	while (m < n && (cls[s[m]] & C_TCHAR) && m < AP_HTTP_METHOD_MAX - 1)
		m++;
	if (m == 0 || m == n || s[m] != ' ')
		return 0;
	t = m + 1;
	e = target_end(s, t, n);
#if HTTP_SSE2
target:
#endif
	if (e == t || (minor = req_line_end(s, e, n)) < 0)
		return 0;

	size_t tlen = e - t, keep = tlen;
	if (keep > AP_HTTP_TARGET_MAX - 1)
		keep = AP_HTTP_TARGET_MAX - 1;
	ap_copy_padded(p->method, s, m, n);
	p->method[m] = '\0';
	p->method_len = (uint16_t)m;
	ap_copy_padded(p->target, s + t, keep, n - t);
	p->target[keep] = '\0';
	p->target_len = (uint16_t)keep;
	p->target_truncated = keep < tlen;
	p->version_minor = (uint8_t)minor;
	return e + 11;
}

/*
 * Consumes request-line bytes; *ev becomes START_LINE after its LF. The
 * method, target and usual version go through tight loops; the bytes between
 * them, and anything unusual, through req_line_byte().
 */
NOINLINE static size_t req_line(struct ap_http_req *p, const unsigned char *s,
                                size_t n, enum ap_http_ev *ev)
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
ALWAYS_INLINE static inline void req_headers_done(struct ap_http_req *p, enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	uint16_t f = c->flags;

	if (__builtin_expect(f == 0, 1)) {
		/* the usual request: no header we read, so no body (no
		 * Content-Length without HF_CL) and the version decides */
		p->keep_alive = p->version_minor;
		p->expect_continue = 0;
		p->profile = 0;
		p->chunked = 0;
		p->content_length = 0;
		c->state = ST_PENDING;
		return;
	}
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

/* A request ended: the next bytes are the next pipelined request's.
 * ap_http_req_end_bodyless() (ap_http.h) does the same inline. */
_Static_assert(ST_PENDING == AP_HTTP_CORE_PENDING, "ap_http.h knows ST_PENDING");
static void req_done(struct ap_http_req *p)
{
	memset(&p->core, 0, sizeof p->core);
}

/* The steps of ap_http_req_feed(), one per kind of state, each from the
 * start of s[0..n), n > 0, with *ev preset to NEED_MORE. */
NOINLINE static size_t req_step_line(struct ap_http_req *p, const unsigned char *s,
                                     size_t n, enum ap_http_ev *ev)
{
	size_t k = p->core.sub == RL_LEAD ? req_line_fast(p, s, n) : 0;
	if (!k)
		return req_line(p, s, n, ev);
	headers_begin(&p->core);
	*ev = AP_HTTP_START_LINE;
	return k;
}

NOINLINE static size_t req_step_headers(struct ap_http_req *p, const unsigned char *s,
                                        size_t n, enum ap_http_ev *ev)
{
	size_t k = headers(&p->core, s, n, ev);
	if (*ev == AP_HTTP_HEADERS_DONE)
		req_headers_done(p, ev);
	return k;
}

NOINLINE static size_t req_step_body(struct ap_http_req *p, const unsigned char *s,
                                     size_t n, enum ap_http_ev *ev)
{
	struct sink none = { NULL, NULL };
	size_t k = body(&p->core, s, n, ev, &none);
	if (*ev == AP_HTTP_MSG_DONE)
		req_done(p);
	return k;
}

/*
 * Runs the state machine of the current state until it has something to
 * report or has taken every byte: one step per call, as every machine
 * stops only at an event or the end of its bytes. A bodyless request's
 * MSG_DONE is held back one call (ST_PENDING) so that HEADERS_DONE and
 * MSG_DONE are separate events, as the header promises. The call that
 * fails consumes the bytes before the offending one; later calls consume
 * nothing. The steps are tail calls: this runs several times per message,
 * and so sets up no stack frame of its own.
 */
size_t ap_http_req_feed(struct ap_http_req *p, const char *buf, size_t len,
                        enum ap_http_ev *ev)
{
	const unsigned char *s = (const unsigned char *)buf;
	uint8_t st = p->core.state;

	*ev = AP_HTTP_NEED_MORE;
	/* the two states every request passes, tested first */
	if (__builtin_expect(st <= ST_HEADERS && buf && len, 1))
		return st == ST_LINE ? req_step_line(p, s, len, ev)
		                     : req_step_headers(p, s, len, ev);
	switch (st) {
	case ST_ERROR:
		*ev = AP_HTTP_ERROR;
		return 0;
	case ST_PENDING:
		req_done(p);
		*ev = AP_HTTP_MSG_DONE;
		return 0;
	}
	if (!buf || len == 0)
		return 0;
	return req_step_body(p, s, len, ev);
}

int ap_http_req_in_head(const struct ap_http_req *p)
{
	return p->core.state == ST_HEADERS ||
	       (p->core.state == ST_ERROR && p->core.sub == ST_HEADERS);
}

/*
 * ap_http_req_feed_head(): at the start of a request (nothing of its line
 * read yet), with bytes, the request line (req_line_fast()) and then
 * the header lines, with LF windows that start right after the line, and
 * the framing, in one call; what a curl or wrk request, whole in one
 * read, costs. A line req_line_fast() declines goes to req_line(), as in
 * req_step_line(). A head that does not end in this buffer, or whose
 * header block fails, is reported as the line alone: START_LINE, the bytes
 * of the line consumed, the header block state fresh (what the line's
 * step leaves), so that the next feed reads the block as
 * ap_http_req_feed() would, from its first byte, and reports what it
 * would at the offsets it would. The header work done here is then lost,
 * which only split heads and broken ones pay. In any other state (a
 * request begun), or without bytes, it is ap_http_req_feed().
 */
size_t ap_http_req_feed_head(struct ap_http_req *p, const char *buf, size_t n,
                             enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	const unsigned char *s = (const unsigned char *)buf;
	if (__builtin_expect(c->state != ST_LINE || c->sub != RL_LEAD, 0))
		return ap_http_req_feed(p, buf, n, ev);
	/* no bytes or no buffer: ap_http_req_feed()'s answer (n == 0 behind
	 * the n < 16 that req_line_fast() tests anyway: one branch fewer) */
	if (__builtin_expect(n < 16, 0) && n == 0)
		return ap_http_req_feed(p, buf, n, ev);
	if (__builtin_expect(!buf, 0))
		return ap_http_req_feed(p, buf, n, ev);
	size_t k = req_line_fast(p, s, n), i;
	if (!k) {
		*ev = AP_HTTP_NEED_MORE;
		return req_line(p, s, n, ev);
	}
	headers_begin(c);
	if (k == n)
		goto line_only;
	/* the events below in a local: *ev is written once, at the end */
	enum ap_http_ev e = AP_HTTP_NEED_MORE;
#if HTTP_SSE2
	if (n >= 16)
		i = block_end(s, lines_sse(c, s, k, n, k, n - k < 64 ? n : k + 64, lf_window(s, k, n)),
		              n, &e);
	else
#endif
		i = k + headers_fast(c, s + k, n - k, &e);
	if (__builtin_expect(e == AP_HTTP_NEED_MORE, 0)) {
		enum ap_http_ev slow = AP_HTTP_NEED_MORE;
		if (i < n)
			i += headers_slow(c, s + i, n - i, &slow);
		e = slow;
	}
	/* req_headers_done() fails on a Transfer-Encoding not ending in
	 * chunked: the next feed fails there instead (flags of 0, the usual
	 * request's, tested first) */
	if (e != AP_HTTP_HEADERS_DONE ||
	    (__builtin_expect(c->flags != 0, 0) && (c->flags & (HF_TE | HF_TE_CHUNKED)) == HF_TE))
		goto line_only;
	req_headers_done(p, &e);
	*ev = AP_HTTP_HEAD_DONE;
	return i;
line_only:
	headers_begin(c);
	*ev = AP_HTTP_START_LINE;
	return k;
}

/* --- responses --------------------------------------------------------- */

/* Same as zeroing: ready for a response to a non-HEAD request. */
void ap_http_resp_init(struct ap_http_resp *p)
{
	memset(p, 0, sizeof *p);
}

/* ap_http_resp_begin() is inline in ap_http.h. */
_Static_assert(ST_ERROR == AP_HTTP_CORE_ERROR, "ap_http.h knows ST_ERROR");

/* One byte of `HTTP/1.d SP 3DIGIT [SP reason] CRLF`. The reason phrase goes
 * through find_lf() in resp_line(). Returns 0 if the byte cannot be there, 2
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
ALWAYS_INLINE static inline int status_fast(struct ap_http_resp *p,
                                           const unsigned char *s)
{
	/* `HTTP/1.0` or `HTTP/1.1` as one word: they differ only in the low
	 * bit of the last byte ('0' | 1 and '1' are the only bytes giving '1') */
	uint64_t w = load_le(s, 8);
	if ((w | (uint64_t)1 << 56) != LITW("HTTP/1.1", 0))
		return 0;
	/* `SP 3DIGIT` as one word xor " 000": byte 0 zero, bytes 1..3 at
	 * most 15 (high nibble clear) and then at most 9 (+6 keeps it clear;
	 * no carry crosses a byte), and the first digit not 0 */
	uint32_t y = (uint32_t)load_le(s + 8, 4) ^ 0x30303020u;
	if ((y & 0xf0f0f0ffu) || ((y + 0x06060600u) & 0xf0f0f000u) || !(y & 0x0f00u))
		return 0;
	p->version_minor = (uint8_t)(w >> 56 & 1);
	/* in Horner's form: 2 instructions fewer than the sum of products */
	p->status = (uint16_t)(((y >> 8 & 0xf) * 10 + (y >> 16 & 0xf)) * 10 + (y >> 24));
	p->core.sub = SL_AFTER;
	return 1;
}

/* Consumes status-line bytes; *ev becomes START_LINE after its LF. */
NOINLINE static size_t resp_line(struct ap_http_resp *p, const unsigned char *s,
                                 size_t n, enum ap_http_ev *ev)
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
			i = find_lf(s, i, n);
			if (i == n)
				return n;
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
 * The step of ap_http_resp_feed() for the status line: the usual
 * `HTTP/1.d NNN reason CRLF` whole in the buffer goes as one check and one
 * search for the LF; anything else through resp_line().
 */
NOINLINE static size_t resp_step_line(struct ap_http_resp *p, const unsigned char *s,
                                      size_t n, enum ap_http_ev *ev)
{
	size_t i = 0;
	if (p->core.sub == SL_LEAD && n >= 12 && status_fast(p, s)) {
		i = 12;
		if (n > 12 && s[12] == ' ') {
			size_t lf = find_lf(s, 13, n);
			if (lf < n) {
				headers_begin(&p->core);
				*ev = AP_HTTP_START_LINE;
				return lf + 1;
			}
		}
	}
	return i + resp_line(p, s + i, n - i, ev);
}

/*
 * The blank line ended a response's header block: choose the body framing
 * (RFC 9112 6.3). A body that only the connection's close can end makes the
 * connection non-persistent, whatever the headers said.
 */
ALWAYS_INLINE static inline void resp_headers_done(struct ap_http_resp *p)
{
	struct ap_http_core *c = &p->core;
	uint16_t f = c->flags;
	unsigned st = p->status;

	if ((f & (HF_CL | HF_TE)) == HF_CL && c->remaining && !p->head && st - 200u < 100u &&
	    st != 204) {
		/* the usual response: a 2xx with a Content-Length body */
		p->keep_alive = !(f & HF_CLOSE) && (p->version_minor || (f & HF_KEEPALIVE));
		p->chunked = 0;
		p->until_close = 0;
		p->content_length = c->remaining;
		c->state = ST_BODY_CL;
		return;
	}
	p->keep_alive = (f & HF_CLOSE) ? 0 : p->version_minor ? 1 : !!(f & HF_KEEPALIVE);
	p->chunked = 0;
	p->until_close = 0;
	p->content_length = 0;
	if (p->head == AP_HTTP_ANSWERS_HEAD || st < 200 || st == 204 || st == 304 ||
	    (p->head == AP_HTTP_ANSWERS_CONNECT && st < 300)) {
		/* no body, whatever the headers say (after a CONNECT's 2xx the
		 * bytes are the tunnel's) */
		c->state = ST_PENDING;
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

/* The steps of ap_http_resp_feed(), as for requests. */
NOINLINE static size_t resp_step_headers(struct ap_http_resp *p, const unsigned char *s,
                                         size_t n, enum ap_http_ev *ev)
{
	size_t k = headers(&p->core, s, n, ev);
	if (*ev == AP_HTTP_HEADERS_DONE)
		resp_headers_done(p);
	return k;
}

NOINLINE static size_t resp_step_body(struct ap_http_resp *p, const unsigned char *s,
                                      size_t n, enum ap_http_ev *ev)
{
	struct sink k = { NULL, NULL };
	if (p->status >= 500) {
		k.buf = p->errbody;
		k.len = &p->errbody_len;
	}
	size_t used = body(&p->core, s, n, ev, &k);
	if (*ev == AP_HTTP_MSG_DONE)
		p->core.state = ST_IDLE;
	return used;
}

/* Like ap_http_req_feed(). Bytes fed after MSG_DONE without a begin()
 * start the next response as if begin() had been called with the same HEAD
 * flag. */
static inline __attribute__((always_inline)) size_t
resp_feed(struct ap_http_resp *p, const char *buf, size_t len, enum ap_http_ev *ev)
{
	const unsigned char *s = (const unsigned char *)buf;

	*ev = AP_HTTP_NEED_MORE;
	switch (p->core.state) {
	case ST_ERROR:
		*ev = AP_HTTP_ERROR;
		return 0;
	case ST_PENDING:
		p->core.state = ST_IDLE;
		*ev = AP_HTTP_MSG_DONE;
		return 0;
	}
	if (!buf || len == 0)
		return 0;
	switch (p->core.state) {
	case ST_IDLE:
		/* bytes without a begin(): a next response, same HEAD flag (what
		 * an interim 1xx needs anyway) */
		ap_http_resp_begin(p, p->head);
		/* fall through */
	case ST_LINE:
		return resp_step_line(p, s, len, ev);
	case ST_HEADERS:
		return resp_step_headers(p, s, len, ev);
	default:
		return resp_step_body(p, s, len, ev);
	}
}

size_t ap_http_resp_feed(struct ap_http_resp *p, const char *buf, size_t len,
                         enum ap_http_ev *ev)
{
	return resp_feed(p, buf, len, ev);
}

/* Only a body that runs until close is ended cleanly by the close; a cut
 * Content-Length or chunked body, or unfinished headers, is not. */
int ap_http_resp_eof(const struct ap_http_resp *p)
{
	return p->until_close && p->core.state == ST_BODY_EOF;
}

int ap_http_resp_status_seen(const struct ap_http_resp *p)
{
	return p->core.state != ST_LINE && p->core.state != ST_IDLE;
}

/* ap_http_resp_feed_to_end() from any state, by the steps of resp_feed(). */
NOINLINE static size_t feed_to_end_slow(struct ap_http_resp *p, const char *buf, size_t len,
                                        enum ap_http_ev *ev)
{
	size_t used = resp_feed(p, buf, len, ev);
	/* A status line leaves the parser in the header block: straight to
	 * its step, without the dispatch. */
	if (*ev == AP_HTTP_START_LINE) {
		*ev = AP_HTTP_NEED_MORE;
		if (used == len)
			return used;
		used += resp_step_headers(p, (const unsigned char *)buf + used, len - used, ev);
	}
	/* The body, or a bodyless response's MSG_DONE; nothing after it can
	 * be START_LINE or HEADERS_DONE again. */
	if (*ev == AP_HTTP_HEADERS_DONE)
		used += resp_feed(p, buf + used, len - used, ev);
	return used;
}

#if HTTP_SSE2
/*
 * ap_http_resp_feed_to_end() at the start of a response (status line not
 * begun) when s[0..n), n >= 16, starts with `HTTP/1.d SP 3DIGIT SP` and
 * the status line's LF is in its first 64 bytes: the status line and the
 * header block are read with one run of LF windows from byte 0, and the
 * framing decided, with no return to the dispatch in between; what nginx's
 * writev of a whole response head costs. The header lines go as in
 * headers(): fast while they are ordinary, then headers_slow(); bytes after
 * the head go to the body step. A status line not so, resp_head() leaves
 * to feed_to_end_slow() (a tail call: its caller then keeps nothing
 * across the call). Same contract as ap_http_resp_feed_to_end().
 */
NOINLINE static size_t resp_head(struct ap_http_resp *p, const unsigned char *s, size_t n,
                                 enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	uint64_t lfs = lf_window(s, 0, n);
	/* status_fast() checks bytes 0..11, none of them an LF; it commits
	 * only when it accepts, so it goes last */
	if (!lfs || s[12] != ' ' || !status_fast(p, s))
		return feed_to_end_slow(p, (const char *)s, n, ev);
	size_t i = ctz64(lfs) + 1; /* past the status line: its LF is the first */
	headers_begin(c);
	/* the event in a local until the head is done: *ev is written once */
	enum ap_http_ev e = AP_HTTP_NEED_MORE;
	i = block_end(s, lines_sse(c, s, i, n, 0, n < 64 ? n : 64, lfs & (lfs - 1)), n, &e);
	if (e == AP_HTTP_NEED_MORE && i < n)
		i += headers_slow(c, s + i, n - i, &e);
	if (e != AP_HTTP_HEADERS_DONE) {
		*ev = e;
		return i;
	}
	/* as resp_feed() would go on after HEADERS_DONE */
	resp_headers_done(p);
	*ev = AP_HTTP_NEED_MORE;
	if (c->state == ST_PENDING) {
		c->state = ST_IDLE;
		*ev = AP_HTTP_MSG_DONE;
		return i;
	}
	if (i < n)
		i += resp_step_body(p, s + i, n - i, ev);
	return i;
}
#endif

/*
 * The two calls nginx makes per response go straight to their paths: the
 * head, whole in one buffer (resp_head()), and a Content-Length body (not
 * a 5xx one, whose start is kept) with no stack frame set up; anything
 * else through feed_to_end_slow().
 */
size_t ap_http_resp_feed_to_end(struct ap_http_resp *p, const char *buf, size_t len,
                                enum ap_http_ev *ev)
{
	struct ap_http_core *c = &p->core;
	if (c->state == ST_BODY_CL && buf && len && p->status < 500) {
		/* body() and resp_step_body() for this state */
		size_t used = len < c->remaining ? len : (size_t)c->remaining;
		c->remaining -= used;
		*ev = AP_HTTP_NEED_MORE;
		if (c->remaining == 0) {
			c->state = ST_IDLE;
			*ev = AP_HTTP_MSG_DONE;
		}
		return used;
	}
#if HTTP_SSE2
	if (c->state == ST_LINE && c->sub == SL_LEAD && len >= 16 && buf)
		return resp_head(p, (const unsigned char *)buf, len, ev);
#endif
	return feed_to_end_slow(p, buf, len, ev);
}
