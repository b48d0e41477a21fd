/*
 * col.h - small pure helpers every collector module uses (util.c): HTTP
 * method normalisation, clocks, time parsing and formatting, and making
 * bytes from the wire safe to store and to put in JSON.
 *
 * Everything here is thread-safe and allocation-free.
 */
#ifndef COL_H
#define COL_H

#include <stddef.h>
#include <stdint.h>

#define COL_PROG "apiprof-collector"

/* ---- HTTP methods ---- */

/* The standard methods keep their name; anything else is OTHER, which keeps
 * the method label bounded (SPEC 6). */
enum col_method {
	COL_METHOD_GET,
	COL_METHOD_HEAD,
	COL_METHOD_POST,
	COL_METHOD_PUT,
	COL_METHOD_DELETE,
	COL_METHOD_CONNECT,
	COL_METHOD_OPTIONS,
	COL_METHOD_TRACE,
	COL_METHOD_PATCH,
	COL_METHOD_OTHER,
	COL_METHOD_COUNT
};

/* The name of method m ("GET" ... "OTHER"); "OTHER" for any out-of-range m.
 * The string is static. */
const char *col_method_name(int m);

/* Classifies a method exactly as it was sent. Methods are case-sensitive
 * tokens (RFC 9110), so "get" is OTHER. s need not be NUL-terminated. */
int col_method_of(const char *s, size_t len);

/* For API filters: the method named s, compared case-insensitively, "OTHER"
 * included; -1 when s names none of them. */
int col_method_lookup(const char *s);

/* What an API filter's error says of a method col_method_lookup() refused. */
#define COL_METHOD_EXPECTED \
	"method: expected GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH or OTHER"

/* ---- clocks and time ---- */

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
int64_t col_clock_mono_ns(void);
int64_t col_clock_real_ns(void);

#define COL_NS_PER_S 1000000000LL
#define COL_TIME_BUF 32 /* room for col_time_format() output */

/* Parses an API time: RFC 3339 ("2026-11-22T08:15:02Z", "...T08:15:02.5+01:00";
 * 't', 'z' and a space separator accepted; fraction digits beyond 9 are
 * ignored) or Unix seconds ("1763799302", "1763799302.25"). Returns 0 and
 * sets *ns (Unix nanoseconds), or -EINVAL for anything else, including a
 * time outside the years 1970..2262 (an int64 of nanoseconds). */
int col_time_parse(const char *s, int64_t *ns);

/* Writes ns as RFC 3339 UTC with milliseconds, "2026-11-22T08:15:02.123Z",
 * into out (outlen >= COL_TIME_BUF) and returns its length; milliseconds are
 * truncated, not rounded, so a time never moves into the next second. */
size_t col_time_format(int64_t ns, char *out, size_t outlen);

/* ---- text from the wire ---- */

/* Copies a request path so that it is printable ASCII: bytes outside
 * 0x21..0x7e are percent-encoded ("%0A"), as they would be in a URL, so the
 * result is valid UTF-8 and JSON-safe. An absolute-form target
 * ("http://host/a") becomes its path ("/a"; "/" when it has none), as the
 * server that answers it sees it. Stops before an escape that would not
 * fit. out is always NUL-terminated (outlen >= 1); returns its length. */
size_t col_clean_path(const char *in, size_t len, char *out, size_t outlen);

/* Copies a label (service name, executable path) keeping valid UTF-8 and
 * replacing control characters (C0, DEL and C1: nothing that a terminal
 * would act on) and invalid bytes by '?'. Never cuts a
 * character in two. out is NUL-terminated (outlen >= 1); returns length. */
size_t col_clean_text(const char *in, size_t len, char *out, size_t outlen);

/* Length of the valid UTF-8 sequence starting at s (at most n bytes, n >=
 * 1): 1..4, or 0 when it is invalid (overlong forms, surrogates and code
 * points past U+10FFFF are invalid). */
size_t col_utf8_len(const char *s, size_t n);

/* 1 when the NUL-terminated s is valid UTF-8 (col_utf8_len()'s rules). */
int col_utf8_valid(const char *s);

/* Terminal columns that the NUL-terminated text s (col_clean_text()'s
 * output) takes: what wcwidth() says of each character under C.UTF-8,
 * whatever the caller's locale (East Asian wide characters take two,
 * combining marks none), 1 for a character it does not know or an
 * invalid byte. Not thread-safe on its first call (it makes the locale
 * object once); the CLI calls it from its one thread. */
size_t col_text_width(const char *s);

#endif /* COL_H */
