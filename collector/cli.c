/*
 * cli.c - apiprof, the command-line client (SPEC section 7).
 *
 *   apiprof run [--service NAME] [--socket PATH] [--url URL] -- COMMAND [ARGS...]
 *   apiprof report [--url URL] [--sort p95|count|errors] [--since WHEN]
 *                  [--service NAME]
 *   apiprof aggregate [--url URL]            (cli_aggregate.c)
 *   apiprof check [--url URL] [--since ...] [--max-p95 ...] ...   (cli_check.c)
 *
 * `run` execs COMMAND with libapiprof.so preloaded; `report` prints the
 * collector's endpoint table. Exit codes: 0 ok, 1 a local error (e.g. the
 * library is missing), 2 a usage error (unknown command or option, bad
 * value, or a parameter the collector rejected), 3 the collector could not be
 * asked (unreachable, refused, or an answer that is not an endpoint list);
 * `run` exits 126/127 when COMMAND cannot be executed, like env(1).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "col.h"

#ifndef AP_PKGLIBDIR
#define AP_PKGLIBDIR "/usr/local/lib/apiprof"
#endif

#define CLI_MAX_ANSWER (64u << 20)     /* bytes of JSON we accept */


static void cli_usage(FILE *out)
{
	fprintf(out,
	        "usage: apiprof <command> [options]\n"
	        "\n"
	        "Commands:\n"
	        "  run [--service NAME] [--socket PATH] [--url URL] -- COMMAND [ARGS...]\n"
	        "        run COMMAND with the apiprof preload (libapiprof.so)\n"
	        "  report [--url URL] [--sort p95|count|errors] [--since WHEN] [--service NAME]\n"
	        "        print the collector's per-endpoint table\n"
	        "  aggregate [--url URL]\n"
	        "        close every finished window now (summaries, regression detection)\n"
	        "  check [--url URL] [--since DURATION] [--max-p95 ROUTE=[WARN:]CRIT ...]\n"
	        "        [--max-error-rate [WARN:]CRIT] [--no-n-plus-one] [--service NAME]\n"
	        "        a CI gate and Nagios/Icinga plugin: exit 0 ok, 1 warning,\n"
	        "        2 critical, 3 unknown (the collector could not be asked)\n"
	        "\n"
	        "Options:\n"
	        "  -h, --help       this text; `apiprof <command> --help` for a command\n"
	        "  -V, --version    print the version\n"
	        "\n"
	        "Environment: APIPROF_URL (default " CLI_DEFAULT_URL "), APIPROF_TOKEN (sent as\n"
	        "a bearer token), APIPROF_LIB (the library `run` preloads), NO_COLOR.\n");
}

static void cli_usage_run(FILE *out)
{
	fprintf(out,
	        "usage: apiprof run [--service NAME] [--socket PATH] [--url URL]\n"
	        "                   -- COMMAND [ARGS...]\n"
	        "\n"
	        "Executes COMMAND with libapiprof.so added in front of LD_PRELOAD, so\n"
	        "every HTTP request it serves is reported to the collector.\n"
	        "\n"
	        "  --service NAME   the service label (APIPROF_SERVICE; default: the\n"
	        "                   program's name)\n"
	        "  --socket PATH    the collector's Unix socket (APIPROF_SOCKET)\n"
	        "  --url URL        the collector's HTTP API, exported to COMMAND as\n"
	        "                   APIPROF_URL, so an `apiprof report` or `apiprof check`\n"
	        "                   that COMMAND runs asks that collector (run itself\n"
	        "                   never asks it)\n"
	        "\n"
	        "The library is $APIPROF_LIB when set, else %s/libapiprof.so.\n",
	        AP_PKGLIBDIR);
}

static void cli_usage_report(FILE *out)
{
	fprintf(out,
	        "usage: apiprof report [--url URL] [--sort p95|count|errors] [--since WHEN]\n"
	        "                      [--service NAME]\n"
	        "\n"
	        "Prints one row per service, method and route: requests, error rate,\n"
	        "latency (average, p50, p95, p99, max), SQL statements per request and\n"
	        "requests with an N+1 pattern.\n"
	        "\n"
	        "  --url URL        the collector (default $APIPROF_URL, else " CLI_DEFAULT_URL ")\n"
	        "  --sort KEY       count (default), p95 or errors; highest first\n"
	        "  --since WHEN     a duration back from now (30s, 15m, 2h, 7d, 1w) or an\n"
	        "                   RFC 3339 time (2024-05-01T12:00:00Z); default: all\n"
	        "  --service NAME   only this service\n"
	        "\n"
	        "$APIPROF_TOKEN is sent as a bearer token when set. Exits 3 when the\n"
	        "collector cannot be asked.\n");
}

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]. Returns 1 and sets
 * *val (advancing *i past a separate value), 0 when argv[*i] is another
 * option, -1 when the value is missing (message printed). */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "apiprof: %s needs a value\n", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

const char *cli_bad_arg_kind(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0' ? "unknown option" : "unexpected argument";
}

/* ---- run ------------------------------------------------------------------ */

/* 1 when the LD_PRELOAD list (separated by ':' or spaces) holds `lib`. */
static int cli_preload_has(const char *list, const char *lib)
{
	size_t n = strlen(lib);
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ": ");
		if (len == n && strncmp(p, lib, n) == 0)
			return 1;
		p += len;
		p += strspn(p, ": ");
	}
	return 0;
}

/* An absolute version of path (the library and socket must stay valid if the
 * command changes directory). Returns a malloc'd string or NULL. */
static char *cli_absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	size_t len = strlen(cwd) + strlen(path) + 2;
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "%s/%s", cwd, path);
	return out;
}

/* `apiprof run`: sets LD_PRELOAD (ours first), APIPROF_SERVICE,
 * APIPROF_SOCKET and APIPROF_URL, then execvp()s COMMAND. Returns only on
 * failure. --url is taken because SPEC 7 gives every subcommand one; run
 * sends nothing over HTTP, so it passes the URL on to what COMMAND runs. */
static int cli_run(int argc, char **argv)
{
	const char *service = NULL, *sock = NULL, *url = NULL;
	int i, r;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_usage_run(stdout);
			return CLI_OK;
		}
		if ((r = cli_opt(argc, argv, &i, "--service", &service)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--socket", &sock)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--url", &url)) != 0) {
			if (r < 0)
				return CLI_USAGE;
			continue;
		}
		if (a[0] == '-') {
			fprintf(stderr, "apiprof run: unknown option '%s'\n", a);
			cli_usage_run(stderr);
			return CLI_USAGE;
		}
		break;              /* COMMAND without "--" */
	}
	if (i >= argc) {
		fprintf(stderr, "apiprof run: no COMMAND given\n");
		cli_usage_run(stderr);
		return CLI_USAGE;
	}

	const char *lib = getenv("APIPROF_LIB");
	if (!lib || !*lib)
		lib = AP_PKGLIBDIR "/libapiprof.so";
	if (access(lib, R_OK) != 0) {
		fprintf(stderr,
		        "apiprof run: cannot use the preload library %s: %s\n"
		        "apiprof run: install apiprof (make install), or set APIPROF_LIB to the\n"
		        "apiprof run: path of libapiprof.so (in a build tree: preload/.libs/libapiprof.so)\n",
		        lib, strerror(errno));
		return CLI_ERROR;
	}
	char *abs_lib = cli_absolute(lib);
	char *abs_sock = sock ? cli_absolute(sock) : NULL;
	if (!abs_lib || (sock && !abs_sock)) {
		fprintf(stderr, "apiprof run: out of memory\n");
		return CLI_ERROR;
	}

	/* Ours goes first; whatever the user preloads already keeps working. */
	const char *old = getenv("LD_PRELOAD");
	char *preload;
	if (old && *old && !cli_preload_has(old, abs_lib)) {
		size_t len = strlen(abs_lib) + strlen(old) + 2;
		preload = malloc(len);
		if (preload)
			snprintf(preload, len, "%s:%s", abs_lib, old);
	} else if (old && *old) {
		preload = strdup(old);
	} else {
		preload = strdup(abs_lib);
	}
	if (!preload || setenv("LD_PRELOAD", preload, 1) != 0 ||
	    (service && setenv("APIPROF_SERVICE", service, 1) != 0) ||
	    (abs_sock && setenv("APIPROF_SOCKET", abs_sock, 1) != 0) ||
	    (url && setenv("APIPROF_URL", url, 1) != 0)) {
		fprintf(stderr, "apiprof run: cannot set the environment: %s\n", strerror(errno));
		return CLI_ERROR;
	}
	execvp(argv[i], &argv[i]);
	int e = errno;
	fprintf(stderr, "apiprof run: cannot run %s: %s\n", argv[i], strerror(e));
	return e == ENOENT ? 127 : 126;
}

/* ---- report ----------------------------------------------------------------- */

static size_t cli_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct cli_buf *b = userdata;
	size_t n = size * nmemb;
	if (b->len + n > CLI_MAX_ANSWER) {
		b->too_big = 1;
		return 0;
	}
	char *d = realloc(b->data, b->len + n + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, ptr, n);
	b->len += n;
	d[b->len] = '\0';
	b->data = d;
	return n;
}

/* Turns --since into the API's `since`: a duration ("90s", "15m", "2h",
 * "1.5d", "1w", "500ms") becomes the RFC 3339 UTC time that long ago; an
 * RFC 3339 time passes through. Returns 0, or -1 with err filled. */
int cli_since(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	double v = strtod(in, &end);
	if (end != in && isdigit((unsigned char)in[0]) && errno == 0 && v >= 0) {
		double unit = 0;
		if (strcmp(end, "ms") == 0)
			unit = 0.001;
		else if (strcmp(end, "s") == 0)
			unit = 1;
		else if (strcmp(end, "m") == 0)
			unit = 60;
		else if (strcmp(end, "h") == 0)
			unit = 3600;
		else if (strcmp(end, "d") == 0)
			unit = 86400;
		else if (strcmp(end, "w") == 0)
			unit = 7 * 86400;
		/* "2024-05-01T..." also starts with digits: fall through to it. */
		if (unit > 0) {
			/* "1e19s" is finite but no time_t: converting it would be
			 * undefined, so compare as doubles first. */
			time_t now = time(NULL);
			double ago = v * unit;
			time_t t = ago >= (double)now ? 0 : now - (time_t)ago;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
			return 0;
		}
	}
	/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	const char *p = in;
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	int ok = strlen(in) >= sizeof shape - 1;
	for (size_t k = 0; ok && k < sizeof shape - 1; k++, p++) {
		if (shape[k] == 'd')
			ok = isdigit((unsigned char)*p);
		else if (shape[k] == 'T')
			ok = *p == 'T' || *p == 't' || *p == ' ';
		else
			ok = *p == shape[k];
	}
	if (ok && *p == '.') {
		p++;
		ok = isdigit((unsigned char)*p);
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (ok) {
		if (*p == 'Z' || *p == 'z')
			ok = p[1] == '\0';
		else if (*p == '+' || *p == '-')
			ok = strlen(p) == 6 && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
			     p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]);
		else
			ok = 0;
	}
	if (!ok || strlen(in) >= outlen) {
		snprintf(err, errlen,
		         "--since '%s': expected a duration (30s, 15m, 2h, 7d, 1w) or an RFC 3339 time "
		         "(2024-05-01T12:00:00Z)", in);
		return -1;
	}
	snprintf(out, outlen, "%s", in);
	return 0;
}

/* One table row, parsed from an /api/v1/endpoints entry. The strings point
 * into the JSON document, which outlives the rows. */
struct cli_row {
	const char *service, *method, *route;
	double count, error_count, error_rate;
	double avg, p50, p95, p99, max;
	double sql_per_request, n_plus_one;
	int has_sql, has_n1;
};

static double cli_num(json_t *o, const char *key, int *present)
{
	json_t *v = json_object_get(o, key);
	if (present)
		*present = json_is_number(v);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static const char *cli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

enum cli_sort { SORT_COUNT, SORT_P95, SORT_ERRORS };
static enum cli_sort cli_sort_key;

static int cli_cmp_desc(double a, double b)
{
	return a < b ? 1 : a > b ? -1 : 0;
}

static int cli_row_cmp(const void *pa, const void *pb)
{
	const struct cli_row *a = pa, *b = pb;
	int c = 0;
	if (cli_sort_key == SORT_P95)
		c = cli_cmp_desc(a->p95, b->p95);
	else if (cli_sort_key == SORT_ERRORS) {
		c = cli_cmp_desc(a->error_count, b->error_count);
		if (!c)
			c = cli_cmp_desc(a->error_rate, b->error_rate);
	}
	if (!c)
		c = cli_cmp_desc(a->count, b->count);
	if (!c)
		c = strcmp(a->service, b->service);
	if (!c)
		c = strcmp(a->route, b->route);
	if (!c)
		c = strcmp(a->method, b->method);
	return c;
}

/* Milliseconds for people: 0.42ms, 8.31ms, 42.5ms, 310ms, 2.45s. */
static void cli_fmt_ms(char *out, size_t len, double ms)
{
	if (!isfinite(ms) || ms < 0)
		snprintf(out, len, "-");
	else if (ms < 9.995)            /* thresholds: what the format rounds to */
		snprintf(out, len, "%.2fms", ms);
	else if (ms < 99.95)
		snprintf(out, len, "%.1fms", ms);
	else if (ms < 999.5)
		snprintf(out, len, "%.0fms", ms);
	else
		snprintf(out, len, "%.2fs", ms / 1000);
}

#define CLI_COLS 12
#define CLI_CELL 64

enum cli_colour { COL_NONE, COL_YELLOW, COL_RED };

/* Latency cells turn yellow from 500 ms and red from 1 s (the collector's
 * default slow_request_threshold_ms); error rates yellow above 0, red from 5%. */
static enum cli_colour cli_ms_colour(double ms)
{
	return ms >= 1000 ? COL_RED : ms >= 500 ? COL_YELLOW : COL_NONE;
}

/* Prints the header and one line per row, columns padded to their widest
 * cell in terminal columns (a route of CJK characters is twice as wide as
 * its character count, one with combining accents narrower). Colour codes
 * are added around cells only when `colour` is set, and never count toward
 * the widths. */
static void cli_print_table(struct cli_row *rows, size_t n, int colour)
{
	static const char *const head[CLI_COLS] = {
		"SERVICE", "METHOD", "ROUTE", "COUNT", "ERR%", "AVG", "P50", "P95", "P99", "MAX",
		"SQL/REQ", "N+1",
	};
	char (*cell)[CLI_COLS][CLI_CELL] = calloc(n ? n : 1, sizeof *cell);
	enum cli_colour (*tint)[CLI_COLS] = calloc(n ? n : 1, sizeof *tint);
	size_t width[CLI_COLS];
	if (!cell || !tint) {
		fprintf(stderr, "apiprof: out of memory\n");
		free(cell);
		free(tint);
		return;
	}
	for (int c = 0; c < CLI_COLS; c++)
		width[c] = strlen(head[c]);

	for (size_t r = 0; r < n; r++) {
		struct cli_row *w = &rows[r];
		char (*s)[CLI_CELL] = cell[r];
		/* Routes longer than a cell are cut; the API has them whole.
		 * The text comes from whoever the profiled server talked to (or
		 * from whatever answers at --url): control characters, ESC and
		 * C1 ones included, become '?', so nothing reaches the terminal
		 * that it would act on, and a character is never cut in two. */
		col_clean_text(w->service, strlen(w->service), s[0], CLI_CELL);
		col_clean_text(w->method, strlen(w->method), s[1], CLI_CELL);
		col_clean_text(w->route, strlen(w->route), s[2], CLI_CELL);
		snprintf(s[3], CLI_CELL, "%.0f", w->count);
		snprintf(s[4], CLI_CELL, "%.1f%%", w->error_rate * 100);
		cli_fmt_ms(s[5], CLI_CELL, w->avg);
		cli_fmt_ms(s[6], CLI_CELL, w->p50);
		cli_fmt_ms(s[7], CLI_CELL, w->p95);
		cli_fmt_ms(s[8], CLI_CELL, w->p99);
		cli_fmt_ms(s[9], CLI_CELL, w->max);
		if (w->has_sql)
			snprintf(s[10], CLI_CELL, "%.1f", w->sql_per_request);
		else
			snprintf(s[10], CLI_CELL, "-");
		if (w->has_n1)
			snprintf(s[11], CLI_CELL, "%.0f", w->n_plus_one);
		else
			snprintf(s[11], CLI_CELL, "-");
		tint[r][4] = w->error_rate >= 0.05 ? COL_RED : w->error_rate > 0 ? COL_YELLOW : COL_NONE;
		tint[r][5] = cli_ms_colour(w->avg);
		tint[r][7] = cli_ms_colour(w->p95);
		tint[r][8] = cli_ms_colour(w->p99);
		tint[r][11] = w->n_plus_one > 0 ? COL_YELLOW : COL_NONE;
		for (int c = 0; c < CLI_COLS; c++) {
			size_t l = col_text_width(s[c]);
			if (l > width[c])
				width[c] = l;
		}
	}

	/* Text columns left-aligned, numbers right-aligned; no trailing blanks. */
	for (size_t r = 0; r <= n; r++) {
		for (int c = 0; c < CLI_COLS; c++) {
			const char *text = r == 0 ? head[c] : cell[r - 1][c];
			enum cli_colour t = r == 0 ? COL_NONE : tint[r - 1][c];
			int pad = (int)(width[c] - col_text_width(text));
			const char *on = "";
			if (colour && r == 0)
				on = "\033[1m";
			else if (colour && t == COL_RED)
				on = "\033[31m";
			else if (colour && t == COL_YELLOW)
				on = "\033[33m";
			const char *off = *on ? "\033[0m" : "";
			if (c > 0)
				fputs("  ", stdout);
			if (c < 3)
				printf("%s%s%s%*s", on, text, off, pad, "");
			else
				printf("%*s%s%s%s", pad, "", on, text, off);
		}
		fputc('\n', stdout);
	}
	free(cell);
	free(tint);
}

const char *cli_base_url(const char *opt)
{
	const char *base = opt ? opt : getenv("APIPROF_URL");
	return base && *base ? base : CLI_DEFAULT_URL;
}

int cli_http(const char *method, const char *base, const char *url, struct cli_buf *b,
             long *status)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	int rc = CLI_UNREACHABLE;
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "apiprof: cannot initialise libcurl\n");
		return CLI_ERROR;
	}
	const char *token = getenv("APIPROF_TOKEN");
	if (token && *token) {
		size_t len = strlen(token) + 32;
		char *auth = malloc(len);
		if (!auth)
			goto out;
		snprintf(auth, len, "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
		free(auth);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "apiprof/" PACKAGE_VERSION);
	CURLcode res = curl_easy_perform(h);
	if (res != CURLE_OK) {
		if (b->too_big)
			fprintf(stderr, "apiprof: the answer of the collector at %s is too large\n", base);
		else
			fprintf(stderr, "apiprof: cannot reach the collector at %s: %s\n", base,
			        errbuf[0] ? errbuf : curl_easy_strerror(res));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	rc = CLI_OK;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* `apiprof report`: GET /api/v1/endpoints (since and service passed to the
 * API, service also filtered here), sort, print. Returns a CLI_* exit code. */
static int cli_report(int argc, char **argv)
{
	const char *base = getenv("APIPROF_URL");
	const char *sort = "count", *since = NULL, *service = NULL;
	int r;
	if (!base || !*base)
		base = CLI_DEFAULT_URL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_usage_report(stdout);
			return CLI_OK;
		}
		if ((r = cli_opt(argc, argv, &i, "--url", &base)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--sort", &sort)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--since", &since)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "--service", &service)) != 0) {
			if (r < 0)
				return CLI_USAGE;
			continue;
		}
		fprintf(stderr, "apiprof report: %s '%s'\n", cli_bad_arg_kind(a), a);
		cli_usage_report(stderr);
		return CLI_USAGE;
	}
	if (strcmp(sort, "count") == 0)
		cli_sort_key = SORT_COUNT;
	else if (strcmp(sort, "p95") == 0)
		cli_sort_key = SORT_P95;
	else if (strcmp(sort, "errors") == 0)
		cli_sort_key = SORT_ERRORS;
	else {
		fprintf(stderr, "apiprof report: --sort '%s': expected p95, count or errors\n", sort);
		return CLI_USAGE;
	}
	char since_param[64] = "", err[256];
	if (since && cli_since(since, since_param, sizeof since_param, err, sizeof err) != 0) {
		fprintf(stderr, "apiprof report: %s\n", err);
		return CLI_USAGE;
	}

	int rc = CLI_ERROR;
	char *url = NULL;
	struct cli_buf b = { 0 };
	json_t *doc = NULL;
	struct cli_row *rows = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "apiprof: cannot initialise libcurl\n");
		return CLI_ERROR;
	}
	CURL *esc = curl_easy_init();
	char *q_since = esc && since ? curl_easy_escape(esc, since_param, 0) : NULL;
	char *q_service = esc && service ? curl_easy_escape(esc, service, 0) : NULL;
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	size_t len = blen + 64 + (q_since ? strlen(q_since) : 0) + (q_service ? strlen(q_service) : 0);
	url = malloc(len);
	if (!esc || !url || (since && !q_since) || (service && !q_service)) {
		fprintf(stderr, "apiprof: out of memory\n");
		goto out;
	}
	int off = snprintf(url, len, "%.*s/api/v1/endpoints", (int)blen, base);
	char sep = '?';
	if (q_since) {
		off += snprintf(url + off, len - (size_t)off, "%csince=%s", sep, q_since);
		sep = '&';
	}
	if (q_service)
		snprintf(url + off, len - (size_t)off, "%cservice=%s", sep, q_service);

	long status = 0;
	rc = cli_http("GET", base, url, &b, &status);
	if (rc != CLI_OK)
		goto out;
	rc = CLI_UNREACHABLE;
	json_error_t jerr;
	doc = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
	if (status == 401 || status == 403) {
		fprintf(stderr, "apiprof: the collector at %s refused the request (HTTP %ld): %s\n", base,
		        status, getenv("APIPROF_TOKEN") ? "is APIPROF_TOKEN its auth_token?"
		                                        : "set APIPROF_TOKEN to its auth_token");
		goto out;
	}
	if (status == 400) {
		const char *msg = json_string_value(json_object_get(doc, "error"));
		fprintf(stderr, "apiprof report: the collector rejected the request: %s\n",
		        msg ? msg : "HTTP 400");
		rc = CLI_USAGE;
		goto out;
	}
	if (status != 200) {
		fprintf(stderr, "apiprof: the collector at %s answered HTTP %ld to %s\n", base, status, url);
		goto out;
	}
	json_t *eps = json_object_get(doc, "endpoints");
	if (!json_is_array(eps)) {
		fprintf(stderr, "apiprof: %s did not answer with an endpoint list: is it an apiprof collector?\n",
		        base);
		goto out;
	}

	size_t n = 0, cap = json_array_size(eps);
	rows = calloc(cap ? cap : 1, sizeof *rows);
	if (!rows) {
		fprintf(stderr, "apiprof: out of memory\n");
		rc = CLI_ERROR;
		goto out;
	}
	size_t idx;
	json_t *e;
	json_array_foreach(eps, idx, e) {
		if (!json_is_object(e))
			continue;
		struct cli_row *w = &rows[n];
		w->service = cli_str(e, "service");
		if (service && strcmp(w->service, service) != 0)
			continue;
		w->method = cli_str(e, "method");
		w->route = cli_str(e, "route");
		w->count = cli_num(e, "count", NULL);
		w->error_count = cli_num(e, "error_count", NULL);
		w->error_rate = cli_num(e, "error_rate", NULL);
		w->avg = cli_num(e, "avg_ms", NULL);
		w->p50 = cli_num(e, "p50_ms", NULL);
		w->p95 = cli_num(e, "p95_ms", NULL);
		w->p99 = cli_num(e, "p99_ms", NULL);
		w->max = cli_num(e, "max_ms", NULL);
		w->sql_per_request = cli_num(e, "sql_per_request", &w->has_sql);
		w->n_plus_one = cli_num(e, "n_plus_one_count", &w->has_n1);
		n++;
	}
	rc = CLI_OK;
	if (n == 0) {
		printf("No requests recorded%s%s%s yet by the collector at %s.\n",
		       service ? " for service '" : "", service ? service : "", service ? "'" : "", base);
		goto out;
	}
	qsort(rows, n, sizeof *rows, cli_row_cmp);
	const char *no_color = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	int colour = isatty(STDOUT_FILENO) && !(no_color && *no_color) &&
	             !(term && strcmp(term, "dumb") == 0);
	cli_print_table(rows, n, colour);
	if (fflush(stdout) != 0)
		rc = CLI_ERROR;
out:
	free(rows);
	json_decref(doc);
	free(b.data);
	free(url);
	curl_free(q_since);
	curl_free(q_service);
	if (esc)
		curl_easy_cleanup(esc);
	curl_global_cleanup();
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		cli_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("apiprof %s\n", PACKAGE_VERSION);
		return CLI_OK;
	}
	if (strcmp(cmd, "run") == 0)
		return cli_run(argc - 1, argv + 1);
	if (strcmp(cmd, "report") == 0)
		return cli_report(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cli_check(argc - 1, argv + 1);
	if (strcmp(cmd, "aggregate") == 0)
		return cli_aggregate(argc - 1, argv + 1);
	fprintf(stderr, "apiprof: unknown command '%s'\n", cmd);
	cli_usage(stderr);
	return CLI_USAGE;
}
