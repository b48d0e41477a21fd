/*
 * cli_check.c - `apiprof check`, a performance budget for CI pipelines and
 * a Nagios/Icinga plugin (SPEC section 7) (`apiprof aggregate` is cli_aggregate.c).
 *
 * check reads /api/v1/endpoints over the last --since (default 5m) and
 * prints one line in the Nagios plugin format:
 *
 *   APIPROF CRITICAL - p95 of GET /slow 812ms > 500ms | requests=40;;;0 ...
 *
 * Exit codes are Nagios's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the
 * collector could not be asked, refused us, answered something else, or the
 * command line is wrong: a plugin never turns a typo into CRITICAL).
 *
 * Thresholds are upper bounds, "[WARN:]CRIT", each passed when the value is
 * above it (not at it). Durations are milliseconds unless suffixed (ms, s);
 * rates are fractions (0.05) or percentages (5%). A --max-p95 ROUTE is a
 * route as the collector shows it (/api/users/{id}), optionally preceded by
 * a method ("GET /x"), or "*" for every endpoint; the worst matching
 * endpoint counts. A route without requests in the period is no failure
 * (its perfdata value is U). The error rate is that of all the requests
 * selected (--service narrows them); aborted requests count as errors as
 * everywhere in apiprof. --no-n-plus-one makes any request with an N+1
 * pattern in the period CRITICAL.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "col.h"

#define CHECK_MAX_RULES 64
#define MSG_MAX 4096

enum { ST_OK = 0, ST_WARNING = 1, ST_CRITICAL = 2, ST_UNKNOWN = 3 };
static const char *const ST_NAME[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

struct threshold {
	double warn, crit;   /* NAN: not set */
};

struct p95_rule {
	const char *arg;     /* as given, for messages */
	char method[16];     /* "" : any */
	char route[1024];    /* "*" : any */
	struct threshold t;
	double worst;        /* NAN: no request matched */
	char worst_ep[1100];
};

void cli_usage_check(FILE *out)
{
	fprintf(out,
	        "usage: apiprof check [--url URL] [--since DURATION] [--service NAME]\n"
	        "                     [--max-p95 ROUTE=[WARN:]CRIT ...]\n"
	        "                     [--max-error-rate [WARN:]CRIT] [--no-n-plus-one]\n"
	        "\n"
	        "Checks the last DURATION of traffic against performance budgets and prints\n"
	        "one Nagios-style line with perfdata. Exit status: 0 OK, 1 WARNING (a warning\n"
	        "threshold passed), 2 CRITICAL (a critical threshold passed, or an N+1 seen\n"
	        "with --no-n-plus-one), 3 UNKNOWN (the collector could not be asked, or a bad\n"
	        "option).\n"
	        "\n"
	        "  --url URL          the collector (default $APIPROF_URL, else " CLI_DEFAULT_URL ")\n"
	        "  --since DURATION   the period looked at, back from now (default 5m; 30s,\n"
	        "                     15m, 2h, 7d, 1w, or an RFC 3339 start time)\n"
	        "  --service NAME     only this service's requests\n"
	        "  --max-p95 ROUTE=[WARN:]CRIT\n"
	        "                     the p95 latency of ROUTE (\"/api/users/{id}\", \"GET /x\",\n"
	        "                     or \"*\" for every endpoint) must not exceed CRIT (and\n"
	        "                     WARN); milliseconds, or with a unit: 250ms, 1.5s.\n"
	        "                     Repeatable.\n"
	        "  --max-error-rate [WARN:]CRIT\n"
	        "                     the share of requests answered >= 500 or aborted must\n"
	        "                     not exceed CRIT (and WARN): 0.05 or 5%%\n"
	        "  --no-n-plus-one    CRITICAL when any request had an N+1 query pattern\n"
	        "\n"
	        "$APIPROF_TOKEN is sent as a bearer token when set.\n"
	        "Example: apiprof check --since 10m --max-p95 'GET /api/items=200:500' \\\n"
	        "             --max-error-rate 1%%:5%% --no-n-plus-one\n");
}

/* A number with an optional unit. kind 't': ms (default), "ms", "s";
 * kind 'r': a fraction, or "N%". Returns 0, or -1. */
static int parse_value(const char *s, size_t len, int kind, double *out)
{
	char tmp[64];
	if (len == 0 || len >= sizeof tmp)
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	char *end;
	errno = 0;
	double v = strtod(tmp, &end);
	if (end == tmp || errno != 0 || !isfinite(v) || v < 0 ||
	    !(isdigit((unsigned char)tmp[0]) || tmp[0] == '.'))
		return -1;
	if (kind == 't') {
		if (*end == '\0' || strcmp(end, "ms") == 0)
			*out = v;
		else if (strcmp(end, "s") == 0)
			*out = v * 1000;
		else
			return -1;
	} else {
		if (*end == '\0')
			*out = v;
		else if (strcmp(end, "%") == 0)
			*out = v / 100;
		else
			return -1;
	}
	return 0;
}

/* "[WARN:]CRIT". */
static int parse_threshold(const char *s, int kind, struct threshold *t)
{
	const char *colon = strchr(s, ':');
	t->warn = NAN;
	if (colon != NULL) {
		if (parse_value(s, (size_t)(colon - s), kind, &t->warn) < 0)
			return -1;
		s = colon + 1;
	}
	if (parse_value(s, strlen(s), kind, &t->crit) < 0)
		return -1;
	if (!isnan(t->warn) && t->warn > t->crit)
		return -1;
	return 0;
}

static int parse_p95(const char *arg, struct p95_rule *r)
{
	memset(r, 0, sizeof *r);
	r->arg = arg;
	r->worst = NAN;
	const char *eq = strrchr(arg, '=');
	if (eq == NULL || eq == arg || parse_threshold(eq + 1, 't', &r->t) < 0)
		return -1;
	const char *p = arg;
	const char *sp = memchr(arg, ' ', (size_t)(eq - arg));
	if (sp != NULL) {
		size_t ml = (size_t)(sp - arg);
		if (ml == 0 || ml >= sizeof r->method)
			return -1;
		memcpy(r->method, arg, ml);
		p = sp + 1;
		while (*p == ' ')
			p++;
	}
	size_t rl = (size_t)(eq - p);
	if (rl == 0 || rl >= sizeof r->route)
		return -1;
	memcpy(r->route, p, rl);
	r->route[rl] = '\0';
	if (strcmp(r->route, "*") != 0 && r->route[0] != '/')
		return -1;
	return 0;
}

/* The level a value reaches against t. */
static int level(double v, const struct threshold *t)
{
	if (isnan(v))
		return ST_OK;
	if (v > t->crit)
		return ST_CRITICAL;
	if (!isnan(t->warn) && v > t->warn)
		return ST_WARNING;
	return ST_OK;
}

struct out {
	char s[MSG_MAX];
	size_t n;
};

__attribute__((format(printf, 2, 3)))
static void out_add(struct out *o, const char *fmt, ...)
{
	if (o->n >= sizeof o->s - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(o->s + o->n, sizeof o->s - o->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->n += (size_t)k < sizeof o->s - o->n ? (size_t)k : sizeof o->s - o->n - 1;
}

/* A perfdata label: quoted, with quotes doubled and '=' (which ends the
 * label in the format) replaced. */
static void out_label(struct out *o, const char *s)
{
	out_add(o, "'");
	for (; *s; s++) {
		if (*s == '\'')
			out_add(o, "''");
		else if (*s == '=')
			out_add(o, "_");
		else
			out_add(o, "%c", *s);
	}
	out_add(o, "'");
}

static void out_num(struct out *o, double v)
{
	if (isnan(v))
		return;
	out_add(o, "%.6g", v);
}

/* Durations for people, as in the report. */
static void fmt_ms(char *out, size_t len, double ms)
{
	if (ms < 9.995)
		snprintf(out, len, "%.2fms", ms);
	else if (ms < 99.95)
		snprintf(out, len, "%.1fms", ms);
	else if (ms < 999.5)
		snprintf(out, len, "%.0fms", ms);
	else
		snprintf(out, len, "%.2fs", ms / 1000);
}

static int have_token(void)
{
	const char *t = getenv("APIPROF_TOKEN");
	return t != NULL && *t != '\0';
}

/* Prints the UNKNOWN line and returns 3. */
__attribute__((format(printf, 1, 2)))
static int unknown(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	printf("APIPROF UNKNOWN - %s\n", msg);
	fflush(stdout);
	return ST_UNKNOWN;
}

/* GET or POST base + path; the JSON answer in *doc. Returns 0, or the
 * UNKNOWN exit code with its line printed. */
static int ask(const char *method, const char *base, const char *path, json_t **doc,
               long *status)
{
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	size_t len = blen + strlen(path) + 1;
	char *url = malloc(len);
	if (url == NULL)
		return CLI_ERROR;
	snprintf(url, len, "%.*s%s", (int)blen, base, path);
	struct cli_buf b = { 0 };
	int rc = cli_http(method, base, url, &b, status);
	free(url);
	if (rc != CLI_OK) {
		free(b.data);
		return rc;
	}
	json_error_t jerr;
	*doc = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
	free(b.data);
	return 0;
}

int cli_check(int argc, char **argv)
{
	const char *url_opt = NULL, *since = "5m", *service = NULL, *err_rate = NULL, *v;
	static struct p95_rule rules[CHECK_MAX_RULES];
	size_t nrules = 0;
	int no_n1 = 0, r;
	struct threshold er = { NAN, NAN };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_usage_check(stdout);
			return ST_OK;
		}
		if (strcmp(a, "--no-n-plus-one") == 0) {
			no_n1 = 1;
			continue;
		}
		if ((r = cli_opt(argc, argv, &i, "--max-p95", &v)) != 0) {
			if (r < 0)
				return unknown("--max-p95 needs a value");
			if (nrules == CHECK_MAX_RULES)
				return unknown("at most %d --max-p95 options", CHECK_MAX_RULES);
			if (parse_p95(v, &rules[nrules]) < 0)
				return unknown("--max-p95 '%s': expected ROUTE=[WARN:]CRIT, e.g. "
				               "'/api/users/{id}=200:500', 'GET /x=1s' or '*=300'", v);
			nrules++;
			continue;
		}
		if ((r = cli_opt(argc, argv, &i, "--url", &url_opt)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--since", &since)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--service", &service)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--max-error-rate", &err_rate)) != 0) {
			if (r < 0)
				return unknown("%s needs a value", a);
			continue;
		}
		fprintf(stderr, "apiprof check: %s '%s'\n", cli_bad_arg_kind(a), a);
		cli_usage_check(stderr);
		return unknown("%s '%s'", cli_bad_arg_kind(a), a);
	}
	if (err_rate != NULL && parse_threshold(err_rate, 'r', &er) < 0)
		return unknown("--max-error-rate '%s': expected [WARN:]CRIT as fractions (0.01:0.05) "
		               "or percentages (1%%:5%%)", err_rate);
	char since_param[64], err[256];
	if (cli_since(since, since_param, sizeof since_param, err, sizeof err) != 0)
		return unknown("%s", err);
	const char *base = cli_base_url(url_opt);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return unknown("cannot initialise libcurl");
	CURL *esc = curl_easy_init();
	char *q_since = esc ? curl_easy_escape(esc, since_param, 0) : NULL;
	char *q_service = esc && service ? curl_easy_escape(esc, service, 0) : NULL;
	char path[512];
	int st = ST_UNKNOWN;
	json_t *doc = NULL;
	long status = 0;
	if (q_since == NULL || (service && q_service == NULL) ||
	    strlen(q_since) + (q_service ? strlen(q_service) : 0) + 64 > sizeof path) {
		st = unknown("out of memory, or --service too long");
		goto out;
	}
	snprintf(path, sizeof path, "/api/v1/endpoints?since=%s%s%s", q_since,
	         q_service ? "&service=" : "", q_service ? q_service : "");
	int rc = ask("GET", base, path, &doc, &status);
	if (rc != 0) {
		st = unknown("cannot ask the collector at %s", base);
		goto out;
	}
	if (status == 401 || status == 403) {
		st = unknown("the collector at %s refused the request (HTTP %ld): %s", base, status,
		             have_token() ? "is APIPROF_TOKEN its auth_token?"
		                                     : "set APIPROF_TOKEN to its auth_token");
		goto out;
	}
	json_t *eps = json_object_get(doc, "endpoints");
	if (status != 200 || !json_is_array(eps)) {
		const char *msg = json_string_value(json_object_get(doc, "error"));
		st = unknown("the collector at %s answered HTTP %ld%s%s", base, status,
		             msg ? ": " : " without an endpoint list", msg ? msg : "");
		goto out;
	}

	double total = 0, errors = 0, n1 = 0;
	char n1_ep[1100] = "";
	double n1_max = 0;
	size_t idx;
	json_t *e;
	json_array_foreach(eps, idx, e) {
		const char *svc = json_string_value(json_object_get(e, "service"));
		const char *m = json_string_value(json_object_get(e, "method"));
		const char *rt = json_string_value(json_object_get(e, "route"));
		if (svc == NULL || m == NULL || rt == NULL)
			continue;
		if (service != NULL && strcmp(svc, service) != 0)
			continue;
		double cnt = json_number_value(json_object_get(e, "count"));
		double ec = json_number_value(json_object_get(e, "error_count"));
		double p95 = json_number_value(json_object_get(e, "p95_ms"));
		double nn = json_number_value(json_object_get(e, "n_plus_one_count"));
		total += cnt;
		errors += ec;
		n1 += nn;
		if (nn > n1_max) {
			n1_max = nn;
			snprintf(n1_ep, sizeof n1_ep, "%s %s", m, rt);
		}
		if (cnt <= 0)
			continue;
		for (size_t k = 0; k < nrules; k++) {
			struct p95_rule *ru = &rules[k];
			if (ru->method[0] && strcmp(ru->method, m) != 0)
				continue;
			if (strcmp(ru->route, "*") != 0 && strcmp(ru->route, rt) != 0)
				continue;
			if (isnan(ru->worst) || p95 > ru->worst) {
				ru->worst = p95;
				snprintf(ru->worst_ep, sizeof ru->worst_ep, "%s %s%s%s%s", m, rt,
				         service ? "" : " (", service ? "" : svc, service ? "" : ")");
			}
		}
	}

	/* The verdict, worst first in the message. */
	st = ST_OK;
	struct out msg = { .n = 0 }, perf = { .n = 0 };
	double rate = total > 0 ? errors / total : 0;
	for (int want = ST_CRITICAL; want >= ST_WARNING; want--) {
		for (size_t k = 0; k < nrules; k++) {
			struct p95_rule *ru = &rules[k];
			if (level(ru->worst, &ru->t) != want)
				continue;
			char a[32], b[32];
			fmt_ms(a, sizeof a, ru->worst);
			fmt_ms(b, sizeof b, want == ST_CRITICAL ? ru->t.crit : ru->t.warn);
			out_add(&msg, "%sp95 of %s %s > %s", msg.n ? "; " : "", ru->worst_ep, a, b);
		}
		if (err_rate != NULL && level(rate, &er) == want)
			out_add(&msg, "%serror rate %.2f%% > %.2f%%", msg.n ? "; " : "", rate * 100,
			        (want == ST_CRITICAL ? er.crit : er.warn) * 100);
		if (want == ST_CRITICAL && no_n1 && n1 > 0)
			out_add(&msg, "%s%.0f request%s with an N+1 query pattern (most: %s)",
			        msg.n ? "; " : "", n1, n1 == 1 ? "" : "s", n1_ep);
		if (msg.n > 0 && st == ST_OK)
			st = want;
	}
	if (st == ST_OK) {
		out_add(&msg, "%.0f request%s since %s, error rate %.2f%%", total,
		        total == 1 ? "" : "s", since, rate * 100);
		for (size_t k = 0; k < nrules; k++) {
			char a[32];
			if (isnan(rules[k].worst))
				continue;
			fmt_ms(a, sizeof a, rules[k].worst);
			out_add(&msg, ", p95 of %s %s", rules[k].worst_ep, a);
		}
		if (no_n1)
			out_add(&msg, ", no N+1");
	}

	/* Perfdata: 'label'=value[UOM];warn;crit;min;max */
	out_add(&perf, "requests=%.0f;;;0 errors=%.0f;;;0 error_rate=", total, errors);
	out_num(&perf, rate * 100);
	out_add(&perf, "%%;");
	if (err_rate != NULL) {
		out_num(&perf, er.warn * 100);
		out_add(&perf, ";");
		out_num(&perf, er.crit * 100);
	} else {
		out_add(&perf, ";");
	}
	out_add(&perf, ";0;100");
	for (size_t k = 0; k < nrules; k++) {
		char label[1100];
		snprintf(label, sizeof label, "p95 %s%s%s", rules[k].method,
		         rules[k].method[0] ? " " : "", rules[k].route);
		out_add(&perf, " ");
		out_label(&perf, label);
		if (isnan(rules[k].worst))
			out_add(&perf, "=U");
		else {
			out_add(&perf, "=");
			out_num(&perf, rules[k].worst);
			out_add(&perf, "ms");
		}
		out_add(&perf, ";");
		out_num(&perf, rules[k].t.warn);
		out_add(&perf, ";");
		out_num(&perf, rules[k].t.crit);
		out_add(&perf, ";0");
	}
	out_add(&perf, " n_plus_one=%.0f;;%s;0", n1, no_n1 ? "0" : "");
	/* The status text names routes and services, text chosen by the
	 * profiled server's clients: control characters (ESC, C1 CSI) become
	 * '?', and so does '|', which would start the perfdata early. The
	 * perfdata's labels come from the command line. */
	char text[MSG_MAX];
	col_clean_text(msg.s, msg.n, text, sizeof text);
	for (char *p = strchr(text, '|'); p != NULL; p = strchr(p + 1, '|'))
		*p = '?';
	printf("APIPROF %s - %s | %s\n", ST_NAME[st], text, perf.s);
	if (fflush(stdout) != 0)
		st = ST_UNKNOWN;
out:
	json_decref(doc);
	curl_free(q_since);
	curl_free(q_service);
	if (esc)
		curl_easy_cleanup(esc);
	curl_global_cleanup();
	return st;
}
