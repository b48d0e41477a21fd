/*
 * route.c - request path -> low-cardinality route (ap_route.h, SPEC 4).
 *
 * Paths and templates are both handled as a sequence of segments split on
 * '/': "/api/users/42" is "", "api", "users", "42", and "/books/17/" ends
 * with an empty segment, which is how a trailing slash is kept. Working on
 * segments of the caller's buffer means ap_route_of() never allocates, so
 * the collector can call it per event on its ingest thread.
 *
 * Decisions the header leaves to us, kept in one place:
 *  - the path ends at the first '?', '#' or NUL byte, so the returned
 *    length is always strlen(out);
 *  - an empty path gives an empty route (no segment to rewrite);
 *  - every other byte is an ordinary byte: no decoding, no validation;
 *  - a cut route ends at the end of a segment ("/a/b", never "/a/b/"), so
 *    a cut never invents a trailing slash; when not even the first segment
 *    after the leading one fits, the route is "" (or what precedes it).
 */
#include "config.h"
#include "ap_route.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One segment of a template: either a literal compared byte for byte, or a
 * `{name}` parameter matching any non-empty segment. */
struct tseg {
	size_t off, len; /* into the template text */
	int param;
};

struct tmpl {
	char *text;      /* NUL-terminated; the route produced on a match */
	size_t len;
	struct tseg *segs;
	size_t nseg;
};

struct ap_route_set {
	struct tmpl *t;
	size_t n;
};

static void set_err(char *err, size_t errlen, const char *s, size_t n, const char *why)
{
	if (err == NULL || errlen == 0)
		return;
	/* Quote at most 80 bytes of the offending template: it came from a
	 * config file and could be anything. */
	int shown = n > 80 ? 80 : (int)n;
	snprintf(err, errlen, "template '%.*s%s': %s", shown, s, n > 80 ? "..." : "", why);
}

/* Splits text[0..len) into t; returns 0, -EINVAL with err filled for a
 * malformed template, or -ENOMEM. t owns what it holds even on failure. */
static int tmpl_compile(struct tmpl *t, const char *text, size_t len,
                        char *err, size_t errlen)
{
	if (text[0] != '/') {
		set_err(err, errlen, text, len, "must start with '/'");
		return -EINVAL;
	}
	if (len >= AP_ROUTE_MAX) {
		set_err(err, errlen, text, len, "longer than 511 bytes");
		return -EINVAL;
	}
	size_t nseg = 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		/* A request target ends at '?' or '#' and cannot hold a space or a
		 * control byte, so such a template could never match. */
		if (ch == '?' || ch == '#' || ch <= ' ' || ch == 0x7f) {
			set_err(err, errlen, text, len,
			        "'?', '#', spaces and control characters cannot match a path");
			return -EINVAL;
		}
		if (ch == '/')
			nseg++;
	}

	t->segs = calloc(nseg, sizeof(*t->segs));
	t->text = malloc(len + 1);
	if (t->segs == NULL || t->text == NULL)
		return -ENOMEM;
	memcpy(t->text, text, len);
	t->text[len] = '\0';
	t->len = len;
	t->nseg = nseg;

	size_t pos = 0;
	for (size_t i = 0; i < nseg; i++) {
		const char *slash = memchr(text + pos, '/', len - pos);
		size_t end = slash ? (size_t)(slash - text) : len;
		const char *s = text + pos;
		size_t n = end - pos;
		const char *ob = memchr(s, '{', n), *cb = memchr(s, '}', n);
		if (ob != NULL || cb != NULL) {
			if (n < 2 || s[0] != '{' || s[n - 1] != '}' ||
			    memchr(s + 1, '{', n - 2) || memchr(s + 1, '}', n - 2)) {
				set_err(err, errlen, text, len, "a {name} must span a whole segment");
				return -EINVAL;
			}
			if (n == 2) {
				set_err(err, errlen, text, len, "a {name} needs a name");
				return -EINVAL;
			}
			t->segs[i].param = 1;
		}
		t->segs[i].off = pos;
		t->segs[i].len = n;
		pos = end + 1;
	}
	return 0;
}

static void tmpl_free(struct tmpl *t)
{
	free(t->text);
	free(t->segs);
}

void ap_route_set_free(struct ap_route_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		tmpl_free(&set->t[i]);
	free(set->t);
	free(set);
}

struct ap_route_set *ap_route_set_new(const char *spec, char *err, size_t errlen)
{
	struct ap_route_set *set = NULL;
	int oom = 0;

	if (spec == NULL)
		spec = "";
	set = calloc(1, sizeof(*set));
	if (set == NULL) {
		oom = 1;
		goto fail;
	}

	/* Upper bound on entries: one more than the commas. */
	size_t cap = 1;
	for (const char *p = spec; *p; p++)
		cap += *p == ',';

	const char *p = spec;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return set; /* an empty (or blank) list: no templates */

	set->t = calloc(cap, sizeof(*set->t));
	if (set->t == NULL) {
		oom = 1;
		goto fail;
	}
	p = spec;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *b = p, *e = end;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "empty template in the list");
			goto fail;
		}
		int rc = tmpl_compile(&set->t[set->n], b, (size_t)(e - b), err, errlen);
		set->n++; /* so a half-built entry is freed too */
		if (rc == -ENOMEM)
			oom = 1;
		if (rc != 0)
			goto fail;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return set;

fail:
	if (oom && err != NULL && errlen > 0)
		snprintf(err, errlen, "out of memory");
	ap_route_set_free(set);
	return NULL;
}

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_uuid(const char *s, size_t len)
{
	if (len != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!is_hex(c)) {
			return 0;
		}
	}
	return 1;
}

int ap_route_segment_is_id(const char *s, size_t len)
{
	if (len == 0)
		return 0;

	int all_digits = 1, all_hex = 1, all_token = 1, has_digit = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* isdigit() and friends depend on the locale; these must not. */
		int digit = c >= '0' && c <= '9';
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int hex = is_hex(c);
		all_digits &= digit;
		all_hex &= hex;
		all_token &= digit || alpha || c == '_' || c == '-';
		has_digit |= digit;
		if (!all_token)
			break; /* every rule but the UUID needs this; UUIDs pass it too */
	}
	if (!all_token)
		return 0;
	if (all_digits)
		return 1;
	if (all_hex && len >= 12)
		return 1;
	if (len >= 16 && has_digit)
		return 1;
	return is_uuid(s, len);
}

/* Length of the path proper: up to the first '?', '#' or NUL. */
static size_t path_len(const char *path, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (path[i] == '?' || path[i] == '#' || path[i] == '\0')
			return i;
	return len;
}

static int tmpl_match(const struct tmpl *t, const char *p, size_t n)
{
	size_t pos = 0;
	for (size_t i = 0; i < t->nseg; i++) {
		if (pos > n)
			return 0; /* the path has fewer segments */
		const char *slash = memchr(p + pos, '/', n - pos);
		size_t end = slash ? (size_t)(slash - p) : n;
		size_t sl = end - pos;
		const struct tseg *s = &t->segs[i];
		if (s->param) {
			if (sl == 0)
				return 0;
		} else if (sl != s->len || memcmp(p + pos, t->text + s->off, sl) != 0) {
			return 0;
		}
		pos = end + 1; /* n + 1 once the last segment is consumed */
	}
	return pos == n + 1; /* and not more segments */
}

/* Writes p[0..n) segment by segment into out, rewriting id-like segments
 * when `rewrite`, stopping before the first segment that would not fit. */
static size_t emit(const char *p, size_t n, int rewrite, char *out, size_t outlen)
{
	if (outlen == 0)
		return 0;
	size_t o = 0, pos = 0;
	for (;;) {
		const char *slash = memchr(p + pos, '/', n - pos);
		size_t end = slash ? (size_t)(slash - p) : n;
		const char *seg = p + pos;
		size_t sl = end - pos;
		if (rewrite && ap_route_segment_is_id(seg, sl)) {
			seg = "{id}";
			sl = 4;
		}
		size_t need = (pos > 0) + sl;
		if (need > outlen - 1 - o)
			break;
		if (pos > 0)
			out[o++] = '/';
		memcpy(out + o, seg, sl);
		o += sl;
		if (slash == NULL)
			break;
		pos = end + 1;
	}
	out[o] = '\0';
	return o;
}

size_t ap_route_of(const struct ap_route_set *set, const char *path, size_t len,
                   char *out, size_t outlen)
{
	if (path == NULL)
		len = 0;
	size_t n = len ? path_len(path, len) : 0;
	if (n == 0) {
		if (outlen > 0)
			out[0] = '\0';
		return 0;
	}
	if (set != NULL) {
		for (size_t i = 0; i < set->n; i++)
			if (tmpl_match(&set->t[i], path, n))
				return emit(set->t[i].text, set->t[i].len, 0, out, outlen);
	}
	return emit(path, n, 1, out, outlen);
}
