/*
 * config.c - the collector's configuration (ap_config.h, SPEC section 4).
 *
 * Every key is one row of a table: its kind, where it lives in the struct
 * and its bounds. ap_config_set() validates a value completely into locals
 * before touching the struct, so a rejected value leaves the previous one in
 * place; the file loader and the command-line flags both go through it, and
 * the defaults are set through it too, so they obey the same rules.
 *
 * Choices the header leaves open:
 *  - numbers: strtod/strtol over the whole value, no leading space, finite;
 *    aggregation_window_minutes is also capped at one year and
 *    retention_days at 100 years, so the collector can turn them into
 *    nanoseconds without overflow;
 *  - list values (ignored_paths, latency_buckets, routes) are comma-
 *    separated with whitespace around entries ignored; an empty entry is an
 *    error, an empty value an empty list (latency_buckets needs one bucket).
 *    A `~REGEX` entry therefore cannot contain a comma;
 *  - a prefix in ignored_paths must start with '/', like every path;
 *  - webhook_url must be empty or http(s)://, so a typo cannot make libcurl
 *    post to file:// or another scheme;
 *  - http is ADDR:PORT split at the last ':', an IPv6 ADDR in brackets;
 *    socket must fit sockaddr_un.sun_path; host_name and db are non-empty;
 *  - a file may start with a UTF-8 byte order mark; a NUL byte in a line is
 *    an error.
 */
#include "config.h"
#include "ap_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define IGNORED_MATCH_MAX 2048 /* bytes of a path a regex is run on */
#define WINDOW_MAX_MINUTES (366.0 * 24 * 60)

enum kind { K_DOUBLE, K_INT, K_STR, K_IGNORED, K_BUCKETS, K_ROUTES };

struct key {
	const char *name;
	enum kind kind;
	size_t off;          /* of the field in struct ap_config */
	double lo, hi;       /* numbers: allowed range */
	int lo_open;         /* numbers: lo itself is excluded */
	const char *expect;  /* numbers: "expected ..." in the message */
	/* strings: NULL when valid, else why not */
	const char *(*check)(const char *v);
};

static const char *check_http(const char *v);
static const char *check_socket(const char *v);
static const char *check_nonempty(const char *v);
static const char *check_namespace(const char *v);
static const char *check_webhook(const char *v);

#define F(field) offsetof(struct ap_config, field)
static const struct key keys[] = {
	{ "slow_request_threshold_ms", K_DOUBLE, F(slow_request_threshold_ms),
	  0, HUGE_VAL, 0, "a number >= 0", NULL },
	{ "slow_query_threshold_ms", K_DOUBLE, F(slow_query_threshold_ms),
	  0, HUGE_VAL, 0, "a number >= 0", NULL },
	{ "aggregation_window_minutes", K_DOUBLE, F(aggregation_window_minutes),
	  0.05, WINDOW_MAX_MINUTES, 0, "a number of minutes from 0.05 to 527040", NULL },
	{ "ignored_paths", K_IGNORED, 0, 0, 0, 0, NULL, NULL },
	{ "n_plus_one_threshold", K_INT, F(n_plus_one_threshold),
	  2, INT_MAX, 0, "an integer >= 2", NULL },
	{ "regression_response_time_factor", K_DOUBLE, F(regression_response_time_factor),
	  1, HUGE_VAL, 1, "a number > 1", NULL },
	{ "regression_error_rate_delta", K_DOUBLE, F(regression_error_rate_delta),
	  0, 1, 0, "a number from 0 to 1", NULL },
	{ "regression_min_requests", K_INT, F(regression_min_requests),
	  1, INT_MAX, 0, "a positive integer", NULL },
	{ "webhook_url", K_STR, F(webhook_url), 0, 0, 0, NULL, check_webhook },
	{ "latency_buckets", K_BUCKETS, 0, 0, 0, 0, NULL, NULL },
	{ "metric_namespace", K_STR, F(metric_namespace), 0, 0, 0, NULL, check_namespace },
	{ "routes", K_ROUTES, 0, 0, 0, 0, NULL, NULL },
	{ "max_routes", K_INT, F(max_routes), 1, INT_MAX, 0, "a positive integer", NULL },
	{ "retention_days", K_INT, F(retention_days), 1, AP_CONFIG_MAX_RETENTION_DAYS, 0,
	  "a number of days from 1 to 36500", NULL },
	{ "max_stored_requests_per_second", K_INT, F(max_stored_requests_per_second),
	  0, INT_MAX, 0, "a non-negative integer", NULL },
	{ "auth_token", K_STR, F(auth_token), 0, 0, 0, NULL, NULL },
	{ "host_name", K_STR, F(host_name), 0, 0, 0, NULL, check_nonempty },
	{ "socket", K_STR, F(socket), 0, 0, 0, NULL, check_socket },
	{ "http", K_STR, F(http), 0, 0, 0, NULL, check_http },
	{ "db", K_STR, F(db), 0, 0, 0, NULL, check_nonempty },
};
#undef F

/* ---- validators ---- */

static const char *check_nonempty(const char *v)
{
	return *v ? NULL : "expected a non-empty value";
}

static const char *check_socket(const char *v)
{
	if (*v == '\0')
		return "expected a socket path";
	if (strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return "path too long for a Unix socket (at most 107 bytes)";
	return NULL;
}

static const char *check_http(const char *v)
{
	const char *colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return "expected ADDR:PORT, e.g. 127.0.0.1:9747";
	for (const char *p = v; p < colon; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "expected ADDR:PORT, e.g. 127.0.0.1:9747";
	if (memchr(v, ':', (size_t)(colon - v)) != NULL &&
	    (v[0] != '[' || colon[-1] != ']'))
		return "an IPv6 address needs brackets, e.g. [::1]:9747";
	const char *port = colon + 1;
	size_t n = strlen(port);
	if (n == 0 || n > 5 || strspn(port, "0123456789") != n)
		return "expected a port from 1 to 65535 after ':'";
	long p = strtol(port, NULL, 10);
	if (p < 1 || p > 65535)
		return "expected a port from 1 to 65535 after ':'";
	return NULL;
}

static const char *check_namespace(const char *v)
{
	/* Empty, or a Prometheus metric name without colons, which are
	 * reserved for recording rules (promtool check metrics refuses them
	 * in an exporter's output): [a-zA-Z_][a-zA-Z0-9_]*. Bounded: the
	 * collector's prefix buffer cut a longer one, underscore first. */
	if (strlen(v) > AP_CONFIG_MAX_NAMESPACE)
		return "at most 126 characters";
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		         (p > v && c >= '0' && c <= '9');
		if (!ok)
			return "expected a Prometheus name without colons: [a-zA-Z_][a-zA-Z0-9_]*";
	}
	return NULL;
}

static const char *check_webhook(const char *v)
{
	if (*v == '\0')
		return NULL;
	size_t scheme = strncasecmp(v, "https://", 8) == 0 ? 8 :
	                strncasecmp(v, "http://", 7) == 0 ? 7 : 0;
	if (scheme == 0 || v[scheme] == '\0')
		return "expected an http:// or https:// URL";
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "a URL cannot contain spaces or control characters";
	return NULL;
}

/* ---- numbers ---- */

static int parse_double(const char *v, double *out)
{
	if (*v == '\0' || isspace((unsigned char)*v))
		return -EINVAL;
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(d))
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_long(const char *v, long *out)
{
	if (*v == '\0' || isspace((unsigned char)*v))
		return -EINVAL;
	char *end;
	errno = 0;
	long l = strtol(v, &end, 10);
	if (*end != '\0' || errno == ERANGE)
		return -EINVAL;
	*out = l;
	return 0;
}

/* ---- list values ---- */

/* Calls fn on every comma-separated entry of v, trimmed; stops at the first
 * non-zero return. Blank v has no entries; an empty entry is -EINVAL with
 * err filled. */
static int each_entry(const char *key, const char *v,
                      int (*fn)(void *ctx, const char *e, size_t n, char *err, size_t errlen),
                      void *ctx, char *err, size_t errlen)
{
	const char *p = v;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return 0;
	p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *b = p, *e = comma ? comma : p + strlen(p);
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e) {
			snprintf(err, errlen, "%s: empty entry in the list", key);
			return -EINVAL;
		}
		int rc = fn(ctx, b, (size_t)(e - b), err, errlen);
		if (rc != 0)
			return rc;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

struct buckets {
	double v[AP_CONFIG_MAX_BUCKETS];
	size_t n;
};

static int add_bucket(void *ctx, const char *e, size_t n, char *err, size_t errlen)
{
	struct buckets *b = ctx;
	char tmp[64];
	double d = 0;
	int rc = -EINVAL;
	if (n < sizeof(tmp)) {
		memcpy(tmp, e, n);
		tmp[n] = '\0';
		rc = parse_double(tmp, &d);
	}
	if (rc != 0 || d <= 0) {
		snprintf(err, errlen, "latency_buckets: expected a positive number of seconds, got '%.*s'",
		         n > 64 ? 64 : (int)n, e);
		return -EINVAL;
	}
	if (b->n == AP_CONFIG_MAX_BUCKETS) {
		snprintf(err, errlen, "latency_buckets: at most %d buckets", AP_CONFIG_MAX_BUCKETS);
		return -EINVAL;
	}
	if (b->n > 0 && d <= b->v[b->n - 1]) {
		snprintf(err, errlen, "latency_buckets: must be strictly increasing, got '%s' after '%g'",
		         tmp, b->v[b->n - 1]);
		return -EINVAL;
	}
	b->v[b->n++] = d;
	return 0;
}

struct ignored_list {
	struct ap_ignored *e;
	size_t n, cap;
};

static void free_ignored(struct ap_ignored *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].is_regex)
			regfree(&e[i].re);
		free(e[i].prefix);
	}
	free(e);
}

/* Past this estimated size a regex is refused. Real ignored_paths
 * patterns cost tens to hundreds. */
#define RE_MAX_COST 20000

/*
 * An upper estimate of the nodes glibc's regcomp() builds for an ERE.
 * It copies a repeated atom once per repetition (`x+` is `xx*`, `x{2,5}`
 * five copies), so stacked and nested repetitions multiply: a 150-byte
 * `^/a++++...+` asked for 2^140 nodes, and regcomp() ate every byte of
 * memory before failing (found by tests/fuzz/fuzz_config). Returns 1 when
 * the estimate passes RE_MAX_COST or groups nest too deep; malformed
 * syntax is left for regcomp() to report.
 */
static int re_too_big(const char *re)
{
	enum { MAXD = 32 };
	double sum[MAXD], last[MAXD]; /* per open group: its cost so far, and
	                                 the cost of its last atom */
	int d = 0;
	sum[0] = last[0] = 0;
	for (const char *p = re; *p; p++) {
		double k = 0; /* a repetition factor, or 0 for an atom */
		double atom = 1;
		switch (*p) {
		case '\\':
			if (p[1])
				p++;
			break;
		case '[': { /* a bracket expression is one node */
			const char *q = p + 1;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']') {
				if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
					char c = q[1];
					for (q += 2; *q && !(*q == c && q[1] == ']'); q++)
						;
					if (*q)
						q++;
				}
				if (*q)
					q++;
			}
			if (*q == '\0')
				return 0; /* unbalanced: regcomp() says so */
			p = q;
			break;
		}
		case '(':
			if (d + 1 >= MAXD)
				return 1;
			d++;
			sum[d] = last[d] = 0;
			continue;
		case ')':
			if (d == 0)
				break;
			atom = sum[d] + 1;
			d--;
			break;
		case '|':
			last[d] = 0;
			continue;
		case '*':
		case '?':
			k = 1;
			break;
		case '+':
			k = 2;
			break;
		case '{': {
			char *end;
			double lo = strtod(p + 1, &end), hi = lo;
			if (end == p + 1)
				break; /* not a bound: a literal '{' */
			if (*end == ',') {
				const char *h = end + 1;
				hi = strtod(h, &end);
				if (end == h)
					hi = lo + 1; /* {n,}: n copies and a star */
			}
			if (*end != '}')
				break;
			k = hi > lo ? hi : lo;
			if (k < 1)
				k = 1;
			p = end;
			break;
		}
		default:
			break;
		}
		if (k > 0) { /* the last atom is repeated k times */
			sum[d] += last[d] * (k - 1) + 1;
			last[d] = last[d] * k + 1;
		} else {
			sum[d] += atom;
			last[d] = atom;
		}
		if (sum[d] > RE_MAX_COST || last[d] > RE_MAX_COST)
			return 1;
	}
	return 0;
}

static int add_ignored(void *ctx, const char *e, size_t n, char *err, size_t errlen)
{
	struct ignored_list *l = ctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct ap_ignored *ne = realloc(l->e, cap * sizeof(*ne));
		if (ne == NULL)
			goto oom;
		l->e = ne;
		l->cap = cap;
	}
	struct ap_ignored *it = &l->e[l->n];
	memset(it, 0, sizeof(*it));
	if (e[0] == '~') {
		if (n == 1) {
			snprintf(err, errlen, "ignored_paths: empty regex '~'");
			return -EINVAL;
		}
		char *re = strndup(e + 1, n - 1);
		if (re == NULL)
			goto oom;
		if (re_too_big(re)) {
			snprintf(err, errlen, "ignored_paths: regex '%.80s' is too large once its"
			         " repetitions are expanded", re);
			free(re);
			return -EINVAL;
		}
		int rc = regcomp(&it->re, re, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char why[128];
			regerror(rc, &it->re, why, sizeof(why));
			snprintf(err, errlen, "ignored_paths: bad regex '%.80s': %s", re, why);
			free(re);
			return -EINVAL;
		}
		free(re);
		it->is_regex = 1;
	} else {
		if (e[0] != '/') {
			snprintf(err, errlen, "ignored_paths: a prefix must start with '/', got '%.*s'",
			         n > 80 ? 80 : (int)n, e);
			return -EINVAL;
		}
		it->prefix = strndup(e, n);
		if (it->prefix == NULL)
			goto oom;
	}
	l->n++;
	return 0;
oom:
	snprintf(err, errlen, "ignored_paths: out of memory");
	return -ENOMEM;
}

/* ---- setting ---- */

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

int ap_config_set(struct ap_config *c, const char *key, const char *value,
                  char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	const struct key *k = key ? find_key(key) : NULL;
	if (k == NULL) {
		snprintf(err, errlen, "unknown key '%.80s'", key ? key : "");
		return -ENOENT;
	}
	if (value == NULL) {
		snprintf(err, errlen, "%s: missing value", k->name);
		return -EINVAL;
	}
	char *field = (char *)c + k->off;

	switch (k->kind) {
	case K_DOUBLE: {
		double d;
		if (parse_double(value, &d) != 0 || d < k->lo || d > k->hi ||
		    (k->lo_open && d == k->lo))
			goto bad_number;
		*(double *)field = d;
		return 0;
	}
	case K_INT: {
		long l;
		if (parse_long(value, &l) != 0 || l < (long)k->lo || l > (long)k->hi)
			goto bad_number;
		*(int *)field = (int)l;
		return 0;
	}
	case K_STR: {
		const char *why = k->check ? k->check(value) : NULL;
		if (why != NULL) {
			snprintf(err, errlen, "%s: %s, got '%.80s'", k->name, why, value);
			return -EINVAL;
		}
		char *s = strdup(value);
		if (s == NULL)
			goto oom;
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	}
	case K_BUCKETS: {
		struct buckets b = { .n = 0 };
		int rc = each_entry(k->name, value, add_bucket, &b, err, errlen);
		if (rc != 0)
			return rc;
		if (b.n == 0) {
			snprintf(err, errlen, "latency_buckets: expected at least one bucket");
			return -EINVAL;
		}
		memcpy(c->latency_buckets, b.v, b.n * sizeof(b.v[0]));
		c->n_latency_buckets = b.n;
		return 0;
	}
	case K_IGNORED: {
		struct ignored_list l = { NULL, 0, 0 };
		int rc = each_entry(k->name, value, add_ignored, &l, err, errlen);
		if (rc != 0) {
			free_ignored(l.e, l.n);
			return rc;
		}
		free_ignored(c->ignored, c->n_ignored);
		c->ignored = l.e;
		c->n_ignored = l.n;
		return 0;
	}
	case K_ROUTES: {
		char why[256];
		struct ap_route_set *set = ap_route_set_new(value, why, sizeof(why));
		if (set == NULL) {
			snprintf(err, errlen, "routes: %s", why);
			return strcmp(why, "out of memory") == 0 ? -ENOMEM : -EINVAL;
		}
		char *s = strdup(value);
		if (s == NULL) {
			ap_route_set_free(set);
			goto oom;
		}
		ap_route_set_free(c->route_set);
		free(c->routes);
		c->route_set = set;
		c->routes = s;
		return 0;
	}
	}
	/* impossible: every kind is handled above */
	snprintf(err, errlen, "%s: internal error", k->name);
	return -EINVAL;

bad_number:
	snprintf(err, errlen, "%s: expected %s, got '%.80s'", k->name, k->expect, value);
	return -EINVAL;
oom:
	snprintf(err, errlen, "%s: out of memory", k->name);
	return -ENOMEM;
}

/* ---- defaults ---- */

void ap_config_free(struct ap_config *c)
{
	if (c == NULL)
		return;
	free_ignored(c->ignored, c->n_ignored);
	ap_route_set_free(c->route_set);
	free(c->webhook_url);
	free(c->metric_namespace);
	free(c->routes);
	free(c->auth_token);
	free(c->host_name);
	free(c->socket);
	free(c->http);
	free(c->db);
	memset(c, 0, sizeof(*c));
}

int ap_config_init(struct ap_config *c)
{
	static const char *const defaults[][2] = {
		{ "slow_request_threshold_ms", "1000" },
		{ "slow_query_threshold_ms", "100" },
		{ "aggregation_window_minutes", "60" },
		{ "ignored_paths", "/favicon.ico" },
		{ "n_plus_one_threshold", "3" },
		{ "regression_response_time_factor", "2.0" },
		{ "regression_error_rate_delta", "0.1" },
		{ "regression_min_requests", "20" },
		{ "webhook_url", "" },
		{ "latency_buckets", "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10" },
		{ "metric_namespace", "" },
		{ "routes", "" },
		{ "max_routes", "1000" },
		{ "retention_days", "7" },
		{ "max_stored_requests_per_second", "1000" },
		{ "auth_token", "" },
		{ "http", "127.0.0.1:9747" },
		{ "db", "./apiprof.db" },
	};
	char err[256];
	char host[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (ap_config_set(c, defaults[i][0], defaults[i][1], err, sizeof(err)) != 0)
			goto fail; /* only out of memory: the defaults are valid */

	/* gethostname() need not terminate a truncated name. */
	if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	if (ap_config_set(c, "host_name", host, err, sizeof(err)) != 0)
		goto fail;
	return 0;

fail:
	ap_config_free(c);
	return -ENOMEM;
}

/* ---- files ---- */

/* Cuts a comment: '#' at the start or after whitespace. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			return;
		}
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	return s;
}

/* Reads one line, its '\n' included, into *buf (grown as needed, up to
 * AP_CONFIG_MAX_LINE + 1 bytes). Returns its length; 0 at the end of the
 * file; -1 on a read error (errno set); -2 when the line is longer than
 * AP_CONFIG_MAX_LINE (getline() would grow without bound on a file such as
 * /dev/zero). */
static ssize_t read_line(FILE *f, char **buf, size_t *cap)
{
	size_t n = 0;
	int ch = EOF;
	while ((ch = getc(f)) != EOF) {
		if (n + 2 > *cap) {
			if (*cap > AP_CONFIG_MAX_LINE)
				return -2;
			size_t ncap = *cap ? *cap * 2 : 256;
			if (ncap > AP_CONFIG_MAX_LINE + 2)
				ncap = AP_CONFIG_MAX_LINE + 2;
			char *nb = realloc(*buf, ncap);
			if (nb == NULL)
				return -1;
			*buf = nb;
			*cap = ncap;
		}
		(*buf)[n++] = (char)ch;
		if (ch == '\n')
			break;
		if (n > AP_CONFIG_MAX_LINE)
			return -2;
	}
	if (ch == EOF && ferror(f))
		return -1;
	if (*buf)
		(*buf)[n] = '\0';
	return (ssize_t)n;
}

int ap_config_load(struct ap_config *c, const char *path, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int rc = 0;

	FILE *f = fopen(path, "re");
	if (f == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	size_t total = 0;
	for (;;) {
		errno = 0;
		ssize_t n = read_line(f, &line, &cap);
		if (n == -2) {
			snprintf(err, errlen, "%s:%lu: line longer than %d bytes: not a configuration file",
			         path, lineno + 1, AP_CONFIG_MAX_LINE);
			rc = -EFBIG;
			break;
		}
		if (n < 0) {
			rc = errno ? -errno : -EIO;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			break;
		}
		if (n == 0)
			break;
		lineno++;
		total += (size_t)n;
		if (total > AP_CONFIG_MAX_FILE) {
			snprintf(err, errlen, "%s:%lu: longer than %d bytes: not a configuration file",
			         path, lineno, AP_CONFIG_MAX_FILE);
			rc = -EFBIG;
			break;
		}
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errlen, "%s:%lu: NUL byte in the line", path, lineno);
			rc = -EINVAL;
			break;
		}
		char *s = line;
		if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* UTF-8 byte order mark, as some Windows editors write */
		strip_comment(s);
		s = trim(s);
		if (*s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%lu: expected 'key = value', got '%.80s'",
			         path, lineno, s);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		if (*key == '\0') {
			snprintf(err, errlen, "%s:%lu: expected a key before '='", path, lineno);
			rc = -EINVAL;
			break;
		}
		char why[512];
		rc = ap_config_set(c, key, value, why, sizeof(why));
		if (rc != 0) {
			snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

int ap_config_path_ignored(const struct ap_config *c, const char *path, size_t len)
{
	const char *q = len ? memchr(path, '?', len) : NULL;
	if (q != NULL)
		len = (size_t)(q - path);

	char buf[IGNORED_MATCH_MAX + 1];
	int have_buf = 0;
	for (size_t i = 0; i < c->n_ignored; i++) {
		const struct ap_ignored *it = &c->ignored[i];
		if (!it->is_regex) {
			size_t pl = strlen(it->prefix);
			if (pl <= len && memcmp(path, it->prefix, pl) == 0)
				return 1;
			continue;
		}
		if (!have_buf) {
			/* regexec needs a NUL-terminated string; paths past 2 KiB are
			 * matched on their first 2 KiB. */
			size_t n = len < IGNORED_MATCH_MAX ? len : IGNORED_MATCH_MAX;
			if (n)
				memcpy(buf, path, n);
			buf[n] = '\0';
			have_buf = 1;
		}
		if (regexec(&it->re, buf, 0, NULL, 0) == 0)
			return 1;
	}
	return 0;
}
