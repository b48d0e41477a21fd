/*
 * jw.c - streaming JSON writer (jw.h).
 */
#include "config.h"
#include "jw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col.h"

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof *w);
	w->first[0] = 1;
}

void jw_release(struct jw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

static int reserve(struct jw *w, size_t n)
{
	if (w->failed)
		return -1;
	if (w->len + n + 1 <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + n + 1)
		cap *= 2;
	char *b = realloc(w->buf, cap);
	if (b == NULL) {
		w->failed = 1;
		return -1;
	}
	w->buf = b;
	w->cap = cap;
	return 0;
}

static void put(struct jw *w, const char *s, size_t n)
{
	if (reserve(w, n) < 0)
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void putc1(struct jw *w, char c)
{
	if (reserve(w, 1) < 0)
		return;
	w->buf[w->len++] = c;
}

/* The separator before a value (or key) at the current level. */
static void sep(struct jw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (!w->first[w->depth])
		putc1(w, ',');
	w->first[w->depth] = 0;
}

static void open_level(struct jw *w, char c)
{
	sep(w);
	if (w->depth + 1 >= JW_MAX_DEPTH) {
		w->failed = 1;
		return;
	}
	putc1(w, c);
	w->first[++w->depth] = 1;
}

static void close_level(struct jw *w, char c)
{
	if (w->depth == 0) {
		w->failed = 1;
		return;
	}
	w->depth--;
	putc1(w, c);
}

void jw_obj(struct jw *w) { open_level(w, '{'); }
void jw_obj_end(struct jw *w) { close_level(w, '}'); }
void jw_arr(struct jw *w) { open_level(w, '['); }
void jw_arr_end(struct jw *w) { close_level(w, ']'); }

void jw_key(struct jw *w, const char *k)
{
	sep(w);
	putc1(w, '"');
	put(w, k, strlen(k));
	put(w, "\":", 2);
	w->after_key = 1;
}

void jw_str(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sep(w);
	if (s == NULL)
		s = "";
	size_t n = strlen(s);
	/* Worst case: every byte a \u00XX escape. */
	if (reserve(w, 6 * n + 2) < 0)
		return;
	char *o = w->buf + w->len;
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			o += 6;
			i++;
		} else if (c < 0x80) {
			*o++ = (char)c;
			i++;
		} else {
			size_t k = col_utf8_len(s + i, n - i);
			if (k == 0) {
				*o++ = '?';
				i++;
			} else {
				memcpy(o, s + i, k);
				o += k;
				i += k;
			}
		}
	}
	*o++ = '"';
	w->len = (size_t)(o - w->buf);
}

void jw_int(struct jw *w, int64_t v)
{
	char b[24];
	sep(w);
	put(w, b, (size_t)snprintf(b, sizeof b, "%" PRId64, v));
}

void jw_uint(struct jw *w, uint64_t v)
{
	jw_int(w, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

void jw_bool(struct jw *w, int v)
{
	sep(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void jw_null(struct jw *w)
{
	sep(w);
	put(w, "null", 4);
}

void jw_real(struct jw *w, double v, int decimals)
{
	static const double scale[10] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
	char b[48];
	sep(w);
	if (!isfinite(v))
		v = 0;
	if (decimals < 0)
		decimals = 0;
	if (decimals > 9)
		decimals = 9;
	double sc = v * scale[decimals];
	if (fabs(sc) >= 9e15) { /* beyond exact integers: like jansson, %.15g */
		int n = snprintf(b, sizeof b, "%.15g", v);
		/* Within 1e-15 of DBL_MAX, 15 digits round up past it, to a
		 * number JSON parsers reject (jansson: "real number overflow")
		 * or read as infinity; 17 digits are exact. */
		if (isinf(strtod(b, NULL)))
			n = snprintf(b, sizeof b, "%.17g", v);
		put(w, b, (size_t)n);
		if (!strpbrk(b, ".eE"))
			put(w, ".0", 2);
		return;
	}
	/* Integer arithmetic on the rounded value: exact, and much faster
	 * than printf's floating-point conversion. */
	int64_t m = llround(sc);
	int neg = m < 0;
	uint64_t u = neg ? (uint64_t)(-m) : (uint64_t)m;
	uint64_t p = (uint64_t)scale[decimals];
	uint64_t ip = u / p, fp = u % p;
	int n = snprintf(b, sizeof b, "%s%" PRIu64 ".", neg && u ? "-" : "", ip);
	/* Fraction digits, trailing zeros trimmed, at least one. */
	char f[12];
	int nd = decimals;
	for (int i = decimals - 1; i >= 0; i--) {
		f[i] = (char)('0' + fp % 10);
		fp /= 10;
	}
	while (nd > 1 && f[nd - 1] == '0')
		nd--;
	if (nd == 0)
		f[nd++] = '0';
	memcpy(b + n, f, (size_t)nd);
	put(w, b, (size_t)n + (size_t)nd);
}

char *jw_finish(struct jw *w, size_t *len)
{
	if (w->depth != 0)
		w->failed = 1;
	if (w->failed || reserve(w, 0) < 0) {
		jw_release(w);
		return NULL;
	}
	w->buf[w->len] = '\0';
	char *b = w->buf;
	if (len)
		*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return b;
}
