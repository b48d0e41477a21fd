/*
 * util.c - the small pure helpers of col.h.
 */
#include "config.h"
#include "col.h"

#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <wchar.h>

static const char *const method_names[COL_METHOD_COUNT] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
	"PATCH", "OTHER",
};

const char *col_method_name(int m)
{
	if (m < 0 || m >= COL_METHOD_COUNT)
		return "OTHER";
	return method_names[m];
}

int col_method_of(const char *s, size_t len)
{
	for (int m = 0; m < COL_METHOD_OTHER; m++)
		if (strlen(method_names[m]) == len && memcmp(method_names[m], s, len) == 0)
			return m;
	return COL_METHOD_OTHER;
}

int col_method_lookup(const char *s)
{
	for (int m = 0; m < COL_METHOD_COUNT; m++)
		if (strcasecmp(method_names[m], s) == 0)
			return m;
	return -1;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * COL_NS_PER_S + ts.tv_nsec;
}

int64_t col_clock_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t col_clock_real_ns(void) { return clock_ns(CLOCK_REALTIME); }

/* ---- time ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): no timegm(), so no dependence on TZ or locale. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits at *p into *v. */
static int digits(const char **p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

/* ".ddd": up to 9 digits are kept, the rest must be digits and are ignored. */
static int fraction_ns(const char **p, int64_t *ns)
{
	const char *s = *p;
	int64_t v = 0;
	int n = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++, n++)
		if (n < 9)
			v = v * 10 + (*s - '0');
	for (; n < 9; n++)
		v *= 10;
	*ns = v;
	*p = s;
	return 0;
}

/* Largest Unix second whose nanoseconds fit an int64 (2262-04-11). */
#define MAX_UNIX_S 9223372035LL

static int parse_unix(const char *s, int64_t *out)
{
	int64_t sec = 0, frac = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		sec = sec * 10 + (*p - '0');
		if (sec > MAX_UNIX_S)
			return -EINVAL;
	}
	if (*p == '.') {
		p++;
		if (fraction_ns(&p, &frac) < 0)
			return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	*out = sec * COL_NS_PER_S + frac;
	return 0;
}

static int parse_rfc3339(const char *s, int64_t *out)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *p = s;
	int y, mo, d, h, mi, se, oh = 0, om = 0;
	int64_t frac = 0;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &se))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (fraction_ns(&p, &frac) < 0)
			return -EINVAL;
	}
	int sign = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && is_leap(y)) ||
	    h > 23 || mi > 59 || se > 60 || oh > 23 || om > 59)
		return -EINVAL;
	/* A leap second (:60) is read as the first second of the next minute,
	 * which is what every Unix clock does with it. */
	int64_t sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	sec -= sign * (oh * 3600 + om * 60);
	if (sec < 0 || sec > MAX_UNIX_S)
		return -EINVAL;
	*out = sec * COL_NS_PER_S + frac;
	return 0;
}

int col_time_parse(const char *s, int64_t *ns)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	/* "2026-..." has a '-' in the 5th place; Unix seconds never do. */
	if (strlen(s) > 4 && s[4] == '-')
		return parse_rfc3339(s, ns);
	return parse_unix(s, ns);
}

size_t col_time_format(int64_t ns, char *out, size_t outlen)
{
	int64_t sec = ns / COL_NS_PER_S, rem = ns % COL_NS_PER_S;
	if (rem < 0) {
		rem += COL_NS_PER_S;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (outlen == 0)
		return 0;
	if (gmtime_r(&t, &tm) == NULL) {
		out[0] = '\0';
		return 0;
	}
	size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0 || n + 6 > outlen) {
		out[0] = '\0';
		return 0;
	}
	int ms = (int)(rem / 1000000);
	out[n++] = '.';
	out[n++] = (char)('0' + ms / 100);
	out[n++] = (char)('0' + ms / 10 % 10);
	out[n++] = (char)('0' + ms % 10);
	out[n++] = 'Z';
	out[n] = '\0';
	return n;
}

/* ---- text ---- */

/* Where the path of an absolute-form target ("http://host:8080/a?b", RFC
 * 9112 3.2.2: what clients send proxies, and origin servers must accept)
 * starts in in[0..len): past the scheme and authority, at its '/' (or at
 * the '?' or '#' that follows the authority directly, *root then set: the
 * path is "/"). 0 for any other target. */
static size_t absolute_form_path(const char *in, size_t len, int *root)
{
	size_t s;
	*root = 0;
	if (len >= 7 && strncasecmp(in, "http://", 7) == 0)
		s = 7;
	else if (len >= 8 && strncasecmp(in, "https://", 8) == 0)
		s = 8;
	else
		return 0;
	while (s < len && in[s] != '/' && in[s] != '?' && in[s] != '#')
		s++;
	*root = s == len || in[s] != '/';
	return s;
}

size_t col_clean_path(const char *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (outlen == 0)
		return 0;
	int root;
	size_t from = absolute_form_path(in, len, &root);
	in += from;
	len -= from;
	if (root && outlen > 1)
		out[o++] = '/';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x21 && c <= 0x7e) {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				break;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

size_t col_utf8_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

int col_utf8_valid(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		size_t k = col_utf8_len(s + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

size_t col_text_width(const char *s)
{
	/* Made once and kept: the CLI asks for every cell of a table. NULL
	 * when C.UTF-8 is missing (glibc >= 2.35 always has it): then every
	 * character counts one. */
	static locale_t utf8;
	static int tried;
	if (!tried) {
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
		tried = 1;
	}
	locale_t old = utf8 ? uselocale(utf8) : (locale_t)0;
	size_t width = 0, len = strlen(s);
	for (size_t i = 0; i < len;) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t n = col_utf8_len(s + i, len - i);
		if (n <= 1) {
			width++;
			i++;
			continue;
		}
		uint32_t cp = u[0] & (0x7f >> n);
		for (size_t k = 1; k < n; k++)
			cp = cp << 6 | (u[k] & 0x3f);
		int w = utf8 ? wcwidth((wchar_t)cp) : 1;
		width += w < 0 ? 1 : (size_t)w;
		i += n;
	}
	if (utf8)
		uselocale(old);
	return width;
}

size_t col_clean_text(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, i = 0;
	if (outlen == 0)
		return 0;
	while (i < len) {
		/* Printable ASCII, nearly everything here, copies as is. */
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)s[i++];
			continue;
		}
		size_t n = col_utf8_len(in + i, len - i);
		if (n == 0 || (n == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
			if (o + 1 >= outlen)
				break;
			out[o++] = '?';
			i++;
			continue;
		}
		/* C1 controls (U+0080..U+009F, "\xc2\x80".."\xc2\x9f") are
		 * valid UTF-8, but a terminal reading UTF-8 takes U+009B as CSI,
		 * the start of an escape sequence: one '?' for the character. */
		if (n == 2 && s[i] == 0xc2 && s[i + 1] <= 0x9f) {
			if (o + 1 >= outlen)
				break;
			out[o++] = '?';
			i += 2;
			continue;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return o;
}
