/*
 * check_ingest.c - decoding datagrams into the aggregate (collector/
 * ingest.h): attribution to the kernel's pid, request classification
 * (route, method, ignored paths, errors, slow), and bad input counted and
 * dropped without harm.
 */
#include "config.h"
#include "check_suites.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agg.h"
#include "ap_config.h"
#include "ap_crash.h"
#include "ap_route.h"
#include "ap_wire.h"
#include "findings.h"
#include "inflight.h"
#include "ingest.h"
#include "profile.h"

#define WALL_OFF (1795335300LL * 1000000000LL) /* mono 0 = 2026-11-22T08:15:00Z */
#define MS 1000000ULL

static struct ap_config cfg;
static struct col_agg *agg;
static struct col_ingest *in;

static void setup(void)
{
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	agg = col_agg_new(cfg.max_routes);
	in = col_ingest_new(&cfg, agg);
	ck_assert_ptr_nonnull(agg);
	ck_assert_ptr_nonnull(in);
}

static void teardown(void)
{
	col_ingest_free(in);
	col_agg_free(agg);
	ap_config_free(&cfg);
}

/* A datagram under construction. */
struct dg {
	uint8_t b[AP_WIRE_MAX_DATAGRAM];
	size_t n;
};

static void dg_start(struct dg *d, uint32_t claimed_pid, const char *service)
{
	struct ap_batch_hdr h = { .seq = 1, .pid = claimed_pid, .wall_minus_mono_ns = WALL_OFF };
	d->n = ap_wire_put_batch_hdr(d->b, sizeof d->b, &h);
	ck_assert_uint_eq(d->n, AP_WIRE_BATCH_HDR);
	if (service) {
		struct ap_rec_hello hello = {
			.pid = claimed_pid, .ppid = 1, .start_mono_ns = 77,
			.service = { service, (uint16_t)strlen(service) },
			.exe = { "/usr/sbin/x", 11 },
		};
		size_t k = ap_wire_put_hello(d->b + d->n, sizeof d->b - d->n, &hello);
		ck_assert_uint_gt(k, 0);
		d->n += k;
	}
}

static void dg_req(struct dg *d, const char *method, const char *path, uint16_t status,
                   uint64_t start_ms, uint64_t dur_ms, uint16_t flags)
{
	struct ap_rec_request r = {
		.req_id = 1, .start_ns = start_ms * MS, .end_ns = (start_ms + dur_ms) * MS,
		.bytes_in = 10, .bytes_out = 20, .tid = 3, .status = status, .flags = flags,
		.method = { method, (uint16_t)strlen(method) },
		.path = { path, (uint16_t)strlen(path) },
	};
	size_t k = ap_wire_put_request(d->b + d->n, sizeof d->b - d->n, &r);
	ck_assert_uint_gt(k, 0);
	d->n += k;
}

static void feed(const struct dg *d, uint32_t pid)
{
	col_ingest_process(in, d->b, d->n, pid, 1000, 1000000000LL, WALL_OFF + 1000000000LL);
}

/* The row of (service, method, route) among all-time endpoints, or fails. */
static struct col_ep_row find_row(const char *svc, const char *method, const char *route,
                                  uint64_t *count)
{
	struct col_ep_rows rows;
	struct col_ep_row found = { 0 };
	ck_assert_int_eq(col_agg_endpoints(agg, NULL, &rows), 0);
	*count = 0;
	for (size_t i = 0; i < rows.n; i++) {
		if (!strcmp(rows.v[i].service, svc) && !strcmp(rows.v[i].method, method) &&
		    !strcmp(rows.v[i].route, route)) {
			found = rows.v[i];
			found.service = NULL;
			*count = found.count;
		}
	}
	col_ep_rows_free(&rows);
	return found;
}

START_TEST(test_attribution)
{
	struct dg d;
	dg_start(&d, 1 /* the payload lies */, "api");
	dg_req(&d, "GET", "/users/42", 200, 5, 12, 0);
	feed(&d, 4242);
	struct col_proc_info *p;
	size_t n;
	ck_assert_int_eq(col_agg_processes(agg, 1000000000LL, &p, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(p[0].pid, 4242);
	ck_assert_uint_eq(p[0].uid, 1000);
	ck_assert_str_eq(p[0].service, "api");
	ck_assert_str_eq(p[0].exe, "/usr/sbin/x");
	ck_assert_uint_eq(p[0].requests, 1);
	ck_assert_int_eq(p[0].connected, 1);
	free(p);
	uint64_t c;
	struct col_ep_row r = find_row("api", "GET", "/users/{id}", &c);
	ck_assert_uint_eq(c, 1);
	ck_assert(r.min_ms == 12 && r.max_ms == 12);

	/* Without a HELLO ever, the service is "unknown". */
	dg_start(&d, 7, NULL);
	dg_req(&d, "GET", "/x", 200, 5, 1, 0);
	feed(&d, 7);
	find_row("unknown", "GET", "/x", &c);
	ck_assert_uint_eq(c, 1);
}
END_TEST

START_TEST(test_classification)
{
	struct dg d;
	dg_start(&d, 1, "svc");
	dg_req(&d, "GET", "/a", 503, 0, 1, 0);                  /* error */
	dg_req(&d, "GET", "/a", 499, 0, 1, 0);                  /* not an error */
	dg_req(&d, "GET", "/a", 0, 0, 1, AP_REQF_ABORTED);      /* aborted: error */
	dg_req(&d, "GET", "/a", 200, 0, 1000, 0);               /* slow: at the threshold */
	dg_req(&d, "GET", "/a", 200, 0, 999, 0);
	dg_req(&d, "get", "/a", 200, 0, 1, 0);                  /* OTHER */
	dg_req(&d, "BREW", "/a", 200, 0, 1, 0);                 /* OTHER */
	dg_req(&d, "GET", "/favicon.ico", 200, 0, 1, 0);        /* ignored */
	dg_req(&d, "GET", "/search?q=42", 200, 0, 1, AP_REQF_QUERY_KEPT);
	dg_req(&d, "GET", "/bad\n\xff/7", 200, 0, 1, 0);        /* cleaned */
	feed(&d, 100);
	uint64_t c;
	struct col_ep_row r = find_row("svc", "GET", "/a", &c);
	ck_assert_uint_eq(c, 5);
	ck_assert_uint_eq(r.error_count, 2);
	ck_assert_uint_eq(r.slow_count, 1);
	find_row("svc", "OTHER", "/a", &c);
	ck_assert_uint_eq(c, 2);
	find_row("svc", "GET", "/favicon.ico", &c);
	ck_assert_uint_eq(c, 0);
	find_row("svc", "GET", "/search", &c);
	ck_assert_uint_eq(c, 1);
	find_row("svc", "GET", "/bad%0A%FF/{id}", &c);
	ck_assert_uint_eq(c, 1);
	struct col_ingest_counters ic;
	col_ingest_counters(in, &ic);
	ck_assert_uint_eq(ic.requests, 9);
	ck_assert_uint_eq(ic.requests_ignored, 1);
	ck_assert_uint_eq(ic.records, 11);
	ck_assert_uint_eq(ic.datagrams_bad, 0);

	/* Minutes are those of the request's own wall time: mono + offset. */
	struct col_epset *pend = col_epset_new(), *taken = col_epset_new();
	uint64_t id;
	int64_t m0 = WALL_OFF / 1000000000LL;
	col_agg_minutes_copy(agg, m0, m0 + 60, "svc", pend, taken, &id);
	ck_assert_uint_eq(col_epset_get(pend, "svc", "GET", "/a", 0)->st.count, 5);
	col_epset_free(pend);
	col_epset_free(taken);
}
END_TEST

/* The configured route templates (SPEC 4, `routes`) are what ingest
 * groups by; paths no template matches get the automatic rules. */
START_TEST(test_configured_routes)
{
	char err[256];
	ck_assert_int_eq(ap_config_set(&cfg, "routes", "/u/{user}/posts, /static/{file}", err,
	                               sizeof err), 0);
	struct dg d;
	dg_start(&d, 1, "svc");
	dg_req(&d, "GET", "/u/bob/posts", 200, 0, 1, 0);
	dg_req(&d, "GET", "/u/42/posts?x=1", 200, 0, 1, AP_REQF_QUERY_KEPT);
	dg_req(&d, "GET", "/static/app.css", 200, 0, 1, 0);
	dg_req(&d, "GET", "/u/42/likes", 200, 0, 1, 0);
	feed(&d, 100);
	uint64_t c;
	find_row("svc", "GET", "/u/{user}/posts", &c);
	ck_assert_uint_eq(c, 2);
	find_row("svc", "GET", "/static/{file}", &c);
	ck_assert_uint_eq(c, 1);
	find_row("svc", "GET", "/u/{id}/likes", &c);
	ck_assert_uint_eq(c, 1);
}
END_TEST

START_TEST(test_bad_input)
{
	struct dg d;
	struct col_ingest_counters ic;
	dg_start(&d, 1, "svc");
	dg_req(&d, "GET", "/a", 200, 0, 1, 0);
	/* Every truncation: a cut header is a bad datagram, a cut record is a
	 * bad record; nothing crashes, and nothing is counted twice. */
	for (size_t n = 0; n < d.n; n++)
		col_ingest_process(in, d.b, n, 9, 0, 0, WALL_OFF);
	col_ingest_counters(in, &ic);
	ck_assert_uint_eq(ic.datagrams, d.n);
	ck_assert_uint_eq(ic.datagrams_bad, AP_WIRE_BATCH_HDR);
	ck_assert_uint_eq(ic.requests, 0);
	ck_assert_uint_gt(ic.records_bad, 0);

	/* Unknown version, bad magic. */
	struct dg v = d;
	v.b[4] = 2;
	col_ingest_process(in, v.b, v.n, 9, 0, 0, WALL_OFF);
	v.b[4] = 1;
	v.b[0] ^= 0xff;
	col_ingest_process(in, v.b, v.n, 9, 0, 0, WALL_OFF);
	col_ingest_counters(in, &ic);
	ck_assert_uint_eq(ic.bad_version, 1);
	ck_assert_uint_eq(ic.bad_magic, 1);

	/* An unknown record type is skipped, the records after it are read. */
	static const uint8_t unknown[] = { 99, 0, 0, 0, 3, 0, 0, 0, 'x', 'y', 'z' };
	dg_start(&v, 1, "svc");
	memcpy(v.b + v.n, unknown, sizeof unknown);
	v.n += sizeof unknown;
	dg_req(&v, "GET", "/after", 200, 0, 1, 0);
	col_ingest_process(in, v.b, v.n, 9, 0, 0, WALL_OFF);
	col_ingest_counters(in, &ic);
	ck_assert_uint_eq(ic.records_unknown, 1);
	ck_assert_uint_eq(ic.requests, 1);

	/* Random garbage, and garbage after a valid header. */
	uint64_t x = 12345;
	for (int i = 0; i < 5000; i++) {
		uint8_t buf[300];
		size_t n = (size_t)(i % 300);
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		if (i % 2 && n >= AP_WIRE_BATCH_HDR)
			memcpy(buf, d.b, AP_WIRE_BATCH_HDR);
		col_ingest_process(in, buf, n, 9, 0, 0, WALL_OFF);
	}
	col_ingest_counters(in, &ic);
	ck_assert_uint_gt(ic.datagrams_bad, 2500);
}
END_TEST

/* Records dated more than retention_days before the collector's clock, or
 * more than a day after it, are refused and counted: any local sender
 * could otherwise make minutes and partitions that retention never
 * deletes. Dates inside the bounds, a backlog of days among them, count. */
START_TEST(test_misdated)
{
	const int64_t day = 86400 * 1000000000LL;
	const int64_t now = WALL_OFF + 1000000000LL; /* feed()'s clock */
	static const struct {
		int64_t off;  /* added to the batch's wall-minus-mono offset */
		int counted;
	} cases[] = {
		{ 0, 1 },
		{ -6 * day, 1 },               /* a buffered backlog, within retention_days (7) */
		{ -7 * day + 1000000000LL, 1 },
		{ -8 * day, 0 },
		{ day - 1000000000LL, 1 },
		{ day + 1000000000LL, 0 },
		{ INT64_MAX / 2, 0 },          /* 2172 */
		{ -WALL_OFF - 1000000000LL, 0 },/* before 1970 */
	};
	uint64_t want_req = 0, want_bad = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dg d;
		dg_start(&d, 1, "svc");
		struct ap_batch_hdr h = { .seq = 1, .pid = 1,
		                          .wall_minus_mono_ns = WALL_OFF + cases[i].off };
		ap_wire_put_batch_hdr(d.b, sizeof d.b, &h);
		struct ap_rec_sql q = { .req_id = 1, .start_ns = 6 * MS, .end_ns = 7 * MS,
		                        .fingerprint = 0xab, .db = AP_DB_POSTGRES,
		                        .sql = { "SELECT ?", 8 } };
		size_t k = ap_wire_put_sql(d.b + d.n, sizeof d.b - d.n, &q);
		ck_assert_uint_gt(k, 0);
		d.n += k;
		dg_req(&d, "GET", "/t", 200, 5, 12, 0);
		col_ingest_process(in, d.b, d.n, 9, 0, 1000000000LL, now);
		want_req += (uint64_t)cases[i].counted;
		want_bad += cases[i].counted ? 0 : 2;
		struct col_ingest_counters ic;
		col_ingest_counters(in, &ic);
		ck_assert_msg(ic.requests == want_req && ic.statements == want_req,
		              "case %zu: %llu requests, %llu statements", i,
		              (unsigned long long)ic.requests, (unsigned long long)ic.statements);
		ck_assert_uint_eq(ic.records_misdated, want_bad);
		ck_assert_uint_eq(ic.records_bad, want_bad);
	}
	uint64_t c;
	struct col_ep_row r = find_row("svc", "GET", "/t", &c);
	ck_assert_uint_eq(c, want_req);
	ck_assert_uint_eq(r.sql_count, want_req);
}
END_TEST

/* A profiled stack is text the sender chose: it reaches the folded
 * (text/plain) output cleaned, without ESC, C1 CSI, newlines or bad UTF-8. */
START_TEST(test_profile_stack_cleaned)
{
	struct dg d;
	dg_start(&d, 42, "svc");
	static const char st[] = "main;\x1b[31mevil\nx;f\xff\xc2\x9b" "2J;g\xc3\xa9";
	struct ap_rec_profile pr = {
		.req_id = 1, .tid = 3, .count = 5,
		.method = { "GET", 3 }, .path = { "/p", 2 },
		.stack = { st, (uint16_t)(sizeof st - 1) },
	};
	size_t k = ap_wire_put_profile(d.b + d.n, sizeof d.b - d.n, &pr);
	ck_assert_uint_gt(k, 0);
	d.n += k;
	feed(&d, 42);
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(col_agg_profiles(agg), NULL, NULL, NULL, &rows), 0);
	size_t len;
	char *txt = col_prof_collapsed(&rows, &len);
	ck_assert_ptr_nonnull(txt);
	ck_assert_str_eq(txt, "main;?[31mevil?x;f??2J;g\xc3\xa9 5\n");
	free(txt);
	col_prof_rows_free(&rows);
}
END_TEST

/* The captured log of a test (log_capture_end). */
static char log_text[256 * 1024];

/* Where a test's log is captured. */
static void log_path(char *path, size_t len)
{
	snprintf(path, len, "/tmp/check_ingest_log.%d", (int)getpid());
}

/* Any local process may send CRASH records, hundreds a datagram (found
 * by fuzz_wire, whose log grew by 20 MB a minute): each is counted, but at
 * most COL_INGEST_CRASH_LOG_PER_MIN a minute are logged; the first held
 * back says so, and the next minute's first line counts them. */
START_TEST(test_crash_log_limited)
{
	char logpath[64];
	log_path(logpath, sizeof logpath);
	int saved = log_capture_start(logpath);
	struct dg d;
	struct ap_rec_crash cr;
	memset(&cr, 0, sizeof cr);
	cr.signo = 11;
	cr.tid = 3;
	cr.time_ns = 5 * MS;
	cr.service = (struct ap_str){ "svc", 3 };
	const int sent = COL_INGEST_CRASH_LOG_PER_MIN + 15;
	for (int minute = 0; minute < 2; minute++) {
		dg_start(&d, 42, "svc");
		for (int i = 0; i < (minute ? 1 : sent); i++) {
			size_t k = ap_wire_put_crash(d.b + d.n, sizeof d.b - d.n, &cr);
			ck_assert_uint_gt(k, 0);
			d.n += k;
		}
		col_ingest_process(in, d.b, d.n, 42, 1000, 1000000000LL + minute * 61000000000LL,
		                   WALL_OFF + 1000000000LL);
	}
	log_capture_end(saved, logpath, log_text, sizeof log_text);
	int logged = count_in(log_text, "crash of pid 42");
	int held = count_in(log_text, "crash reports in a minute: the rest are not logged");
	int counted = count_in(log_text, "15 more crash reports were not logged");
	ck_assert_int_eq(logged, COL_INGEST_CRASH_LOG_PER_MIN + 1);
	ck_assert_int_eq(held, 1);
	ck_assert_int_eq(counted, 1);
}
END_TEST


/* The error group of service svc in the findings (NULL: none); *rows is
 * freed by the caller. */
static const struct col_error_row *group_of(struct col_error_rows *rows, const char *svc)
{
	for (size_t i = 0; i < rows->n; i++)
		if (strcmp(rows->v[i].service, svc) == 0)
			return &rows->v[i];
	return NULL;
}

/* Sends n CRASH records of services svc0, svc1... (or all svc0 when
 * same), in datagrams, at minute `minute` of the monotonic clock. */
static void send_crashes(const struct ap_rec_crash *base, int n, int same, int minute)
{
	struct dg d;
	int i = 0;
	while (i < n) {
		dg_start(&d, 42, NULL);
		for (; i < n; i++) {
			struct ap_rec_crash cr = *base;
			char svc[16];
			snprintf(svc, sizeof svc, "svc%d", same ? 0 : i);
			cr.service = (struct ap_str){ svc, (uint16_t)strlen(svc) };
			size_t k = ap_wire_put_crash(d.b + d.n, sizeof d.b - d.n, &cr);
			if (k == 0)
				break;
			d.n += k;
		}
		col_ingest_process(in, d.b, d.n, 42, 1000, 1000000000LL + minute * 61000000000LL,
		                   WALL_OFF + 1000000000LL);
	}
}

/* Sends one report of base's as service svc, in the second minute: 1
 * when svc's group then still has the "not symbolised" message. */
static int marked_after(const struct ap_rec_crash *base, const char *svc)
{
	struct ap_rec_crash cr = *base;
	cr.service = (struct ap_str){ svc, (uint16_t)strlen(svc) };
	struct dg d;
	dg_start(&d, 42, NULL);
	d.n += ap_wire_put_crash(d.b + d.n, sizeof d.b - d.n, &cr);
	col_ingest_process(in, d.b, d.n, 42, 1000, 1000000000LL + 61000000000LL,
	                   WALL_OFF + 1000000000LL);
	struct col_find_filter flt = { .since_ns = INT64_MIN, .until_ns = INT64_MAX };
	struct col_error_rows rows = { 0 };
	ck_assert_int_eq(col_findings_errors(col_agg_findings(agg), &flt, &rows), 0);
	const struct col_error_row *g = group_of(&rows, svc);
	ck_assert_ptr_nonnull(g);
	int marked = strstr(g->message, "not symbolised") != NULL;
	col_error_rows_free(&rows);
	return marked;
}

/* Symbolising a crash report reads its modules' ELF files, about a
 * millisecond each (a thousand request records' worth), and any local
 * process may send hundreds a datagram: only the reports logged and the
 * first reports of new error groups (COL_INGEST_CRASH_NEW_PER_MIN a
 * minute) are symbolised. The others are named by module only, and the
 * group they join keeps its symbolised message; a new group past the
 * budget gets a message that says so, replaced by the next logged report.
 * The module here is this program, the frame in ingest_suite(). */
START_TEST(test_crash_symbolise_bounded)
{
	char logpath[64];
	log_path(logpath, sizeof logpath);
	int saved = log_capture_start(logpath);
	Dl_info di;
	ck_assert_int_ne(dladdr((void *)ingest_suite, &di), 0);
	struct ap_crash_module mod = { (uintptr_t)di.dli_fbase, (uintptr_t)di.dli_fbase,
	                               (uintptr_t)di.dli_fbase + 0x10000000,
	                               { di.dli_fname, (uint16_t)strlen(di.dli_fname) } };
	struct ap_rec_crash cr;
	memset(&cr, 0, sizeof cr);
	cr.signo = 11;
	cr.tid = 3;
	cr.time_ns = 5 * MS;
	cr.nframes = 1;
	cr.frames[0] = (uintptr_t)ingest_suite + 4;
	cr.mods = &mod;
	cr.nmods = 1;

	/* One group, 25 reports: the 10 logged are symbolised. */
	const int one = COL_INGEST_CRASH_LOG_PER_MIN + 15;
	send_crashes(&cr, one, 1, 0);
	struct col_ingest_counters c;
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.crashes_symbolised, COL_INGEST_CRASH_LOG_PER_MIN);
	ck_assert_uint_eq(c.crashes_unsymbolised, 15);
	/* Then svc0 again and 69 new groups in the same minute: 60 of these
	 * symbolised, 9 say they are not. */
	const int many = COL_INGEST_CRASH_NEW_PER_MIN + 10;
	send_crashes(&cr, many, 0, 0);
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.crashes_symbolised,
	                  COL_INGEST_CRASH_LOG_PER_MIN + COL_INGEST_CRASH_NEW_PER_MIN);
	ck_assert_uint_eq(c.crashes_unsymbolised, 15 + 10);

	struct col_find_filter flt = { .since_ns = INT64_MIN, .until_ns = INT64_MAX };
	struct col_error_rows rows = { 0 };
	ck_assert_int_eq(col_findings_errors(col_agg_findings(agg), &flt, &rows), 0);
	const struct col_error_row *g = group_of(&rows, "svc0");
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->count, one + 1); /* every report counted */
	ck_assert_ptr_null(strstr(g->message, "not symbolised"));
#ifdef HAVE_LIBDW
	ck_assert_msg(strstr(g->message, "in ingest_suite") != NULL, "%s", g->message);
#endif
	int marked = 0;
	for (int i = 1; i < many; i++) {
		char svc[16];
		snprintf(svc, sizeof svc, "svc%d", i);
		g = group_of(&rows, svc);
		ck_assert_ptr_nonnull(g);
		marked += strstr(g->message, COL_INGEST_CRASH_UNSYMBOLISED) != NULL;
	}
	ck_assert_int_eq(marked, 9);
	col_error_rows_free(&rows);

	/* The next minute, a report of a marked group is logged, symbolised,
	 * and replaces its message. */
	ck_assert_msg(!marked_after(&cr, "svc69"), "svc69 still marked");
	/* Still that minute, the log's budget spent by svc0: a report of
	 * another marked group is symbolised from the new groups' budget,
	 * which a marked message does not use up (it would keep the marked
	 * message as long as others' reports took every logged line). */
	send_crashes(&cr, COL_INGEST_CRASH_LOG_PER_MIN - 1, 1, 1);
	ck_assert_msg(!marked_after(&cr, "svc68"), "svc68 still marked");

	log_capture_end(saved, logpath, log_text, sizeof log_text);
	int full = count_in(log_text, "crash reports of new error groups in a minute");
	ck_assert_int_eq(full, 1);
}
END_TEST

/* ---- requests in flight in a process killed without a word ---- */

static void dg_infl(struct dg *d, uint64_t round_ms, uint64_t req_id, uint64_t start_ms,
                    const char *path, uint16_t flags)
{
	struct ap_rec_inflight a = {
		.round_ns = round_ms * MS, .req_id = req_id, .start_ns = start_ms * MS,
		.bytes_in = 50, .flags = flags,
		.method = { "GET", req_id ? 3 : 0 },
		.path = { path, (uint16_t)(path ? strlen(path) : 0) },
	};
	size_t k = ap_wire_put_inflight(d->b + d->n, sizeof d->b - d->n, &a);
	ck_assert_uint_gt(k, 0);
	d->n += k;
}

/* A child that waits to be killed. */
static pid_t sleeper(void)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static uint64_t killed_count(void)
{
	struct col_ingest_counters c;
	col_ingest_counters(in, &c);
	return c.requests_killed;
}

/* Two reaps a second apart: a process found gone is recorded at the
 * second (COL_INFLIGHT_GRACE_NS). */
static void reap_twice(int64_t at_s)
{
	col_ingest_reap(in, at_s * 1000000000LL, WALL_OFF + at_s * 1000000000LL);
	col_ingest_reap(in, (at_s + 1) * 1000000000LL, WALL_OFF + (at_s + 1) * 1000000000LL);
}

/* A process announces two requests; one ends (its REQUEST record, after
 * the announcement). Alive, nothing is recorded; killed (a zombie: its
 * parent has not reaped it, and kill(pid, 0) still succeeds), the other
 * is recorded once as an aborted request of its route, ending at the last
 * round, with the statement it ran, and the error group of its route says
 * it was killed; the one that ended is not recorded twice. */
START_TEST(test_killed_recorded)
{
	pid_t child = sleeper();
	struct dg d;
	dg_start(&d, (uint32_t)child, "k");
	dg_infl(&d, 2000, 7, 500, "/hang/42", 0);
	dg_infl(&d, 2000, 8, 900, "/done", 0);
	/* a statement of request 7: it waits for its request's record */
	struct ap_rec_sql q = {
		.req_id = 7, .start_ns = 600 * MS, .end_ns = 610 * MS, .fingerprint = 1,
		.tid = 3, .db = AP_DB_POSTGRES, .sql = { "SELECT ?", 8 },
	};
	d.n += ap_wire_put_sql(d.b + d.n, sizeof d.b - d.n, &q);
	feed(&d, (uint32_t)child);
	dg_start(&d, (uint32_t)child, "k");
	dg_infl(&d, 3000, 7, 500, "/hang/42", 0);
	dg_infl(&d, 3000, 8, 900, "/done", 0);
	dg_req(&d, "GET", "/done", 200, 900, 2200, 0); /* req_id 1: another */
	feed(&d, (uint32_t)child);
	/* The completion of request 8. */
	dg_start(&d, (uint32_t)child, "k");
	struct ap_rec_request r = {
		.req_id = 8, .start_ns = 900 * MS, .end_ns = 3100 * MS, .status = 200,
		.method = { "GET", 3 }, .path = { "/done", 5 },
	};
	d.n += ap_wire_put_request(d.b + d.n, sizeof d.b - d.n, &r);
	feed(&d, (uint32_t)child);
	struct col_ingest_counters c;
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.inflight_pending, 1);

	reap_twice(2);
	ck_assert_uint_eq(killed_count(), 0); /* alive */
	kill(child, SIGKILL);
	for (int i = 0; i < 200; i++) { /* until it is a zombie */
		char path[64], st[256];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
		FILE *f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		size_t n = fread(st, 1, sizeof st - 1, f);
		fclose(f);
		st[n] = '\0';
		if (strstr(st, ") Z "))
			break;
		usleep(5000);
	}
	col_ingest_reap(in, 4 * 1000000000LL, WALL_OFF + 4 * 1000000000LL);
	ck_assert_uint_eq(killed_count(), 0); /* the grace: queued records first */
	col_ingest_reap(in, 5 * 1000000000LL, WALL_OFF + 5 * 1000000000LL);
	ck_assert_uint_eq(killed_count(), 1);
	reap_twice(6);
	ck_assert_uint_eq(killed_count(), 1); /* once */
	ck_assert_int_eq(waitpid(child, NULL, 0), child);

	uint64_t n;
	struct col_ep_row row = find_row("k", "GET", "/hang/{id}", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(row.error_count, 1);
	ck_assert_uint_eq(row.slow_count, 1); /* 500 ms to the round at 3000 ms */
	ck_assert_uint_eq(row.sql_count, 1);  /* its statement, attached */
	ck_assert(row.sum_ms > 2499 && row.sum_ms < 2501);
	find_row("k", "GET", "/done", &n);
	ck_assert_uint_eq(n, 2); /* the two completions, not the announcement */
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.inflight_pending, 0);
	struct col_error_rows er;
	ck_assert_int_eq(col_findings_errors(col_agg_findings(agg), NULL, &er), 0);
	int found = 0;
	for (size_t i = 0; i < er.n; i++)
		if (er.v[i].route && !strcmp(er.v[i].route, "/hang/{id}")) {
			found++;
			ck_assert_str_eq(er.v[i].type, COL_ABORTED_TYPE);
			ck_assert_str_eq(er.v[i].message, COL_KILLED_MESSAGE);
		}
	ck_assert_int_eq(found, 1);
	col_error_rows_free(&er);
}
END_TEST

/* What makes a set go without a record: a FINAL announcement (a clean
 * exit or an exec), an empty newer round, a newer round without it, a
 * HELLO of another process image under the pid, (the process alive) a
 * round older than COL_INFLIGHT_STALE_NS, and a sender seen as pid 0. Then, the control: a plain
 * announcement from the same gone process is recorded. */
START_TEST(test_killed_forgotten)
{
	pid_t gone = fork();
	ck_assert_int_ge(gone, 0);
	if (gone == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(gone, NULL, 0), gone);
	struct dg d;
	/* FINAL */
	dg_start(&d, (uint32_t)gone, "f");
	dg_infl(&d, 2000, 7, 500, "/a", 0);
	dg_infl(&d, 2100, 0, 0, NULL, AP_INFLF_FINAL);
	feed(&d, (uint32_t)gone);
	reap_twice(2);
	ck_assert_uint_eq(killed_count(), 0);
	/* an empty round */
	dg_start(&d, (uint32_t)gone, "f");
	dg_infl(&d, 3000, 7, 500, "/a", 0);
	dg_infl(&d, 4000, 0, 0, NULL, 0);
	feed(&d, (uint32_t)gone);
	reap_twice(4);
	ck_assert_uint_eq(killed_count(), 0);
	/* a newer round without it: only the other is recorded */
	dg_start(&d, (uint32_t)gone, "f");
	dg_infl(&d, 5000, 7, 500, "/a", 0);
	dg_infl(&d, 6000, 9, 5500, "/b", 0);
	feed(&d, (uint32_t)gone);
	reap_twice(6);
	ck_assert_uint_eq(killed_count(), 1);
	uint64_t n;
	find_row("f", "GET", "/b", &n);
	ck_assert_uint_eq(n, 1);
	find_row("f", "GET", "/a", &n);
	ck_assert_uint_eq(n, 0);
	/* another image (exec) under the pid */
	dg_start(&d, (uint32_t)gone, "f");
	dg_infl(&d, 7000, 7, 500, "/a", 0);
	feed(&d, (uint32_t)gone);
	dg_start(&d, (uint32_t)gone, "f"); /* start_mono_ns 77 */
	feed(&d, (uint32_t)gone);
	struct ap_batch_hdr h = { .seq = 2, .pid = 1, .wall_minus_mono_ns = WALL_OFF };
	d.n = ap_wire_put_batch_hdr(d.b, sizeof d.b, &h);
	struct ap_rec_hello hello = { .pid = 1, .start_mono_ns = 99, .service = { "f", 1 } };
	d.n += ap_wire_put_hello(d.b + d.n, sizeof d.b - d.n, &hello);
	feed(&d, (uint32_t)gone);
	reap_twice(8);
	ck_assert_uint_eq(killed_count(), 1);
	/* stale while alive: this very process */
	uint32_t me = (uint32_t)getpid();
	dg_start(&d, me, "f");
	dg_infl(&d, 9000, 7, 500, "/a", 0);
	feed(&d, me); /* received at our 1 s */
	col_ingest_reap(in, 1000000000LL + COL_INFLIGHT_STALE_NS - 1, WALL_OFF);
	struct col_ingest_counters c;
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.inflight_pending, 1);
	col_ingest_reap(in, 1000000000LL + COL_INFLIGHT_STALE_NS + 1, WALL_OFF);
	col_ingest_counters(in, &c);
	ck_assert_uint_eq(c.inflight_pending, 0);
	/* pid 0, a sender in another pid namespace: never probed, never
	 * recorded */
	dg_start(&d, 0, "f");
	dg_infl(&d, 9500, 7, 500, "/z", 0);
	col_ingest_process(in, d.b, d.n, 0, 1000, 1000000000LL, WALL_OFF + 1000000000LL);
	reap_twice(12);
	ck_assert_uint_eq(killed_count(), 1);
	/* the control */
	dg_start(&d, (uint32_t)gone, "f");
	dg_infl(&d, 10000, 7, 500, "/a", 0);
	feed(&d, (uint32_t)gone);
	reap_twice(20);
	ck_assert_uint_eq(killed_count(), 2);
	find_row("f", "GET", "/a", &n);
	ck_assert_uint_eq(n, 1);
	/* A REQUEST record claiming to be the collector's is not taken as
	 * such (the flag is cleared): an ordinary completed request. */
	dg_start(&d, (uint32_t)gone, "f");
	dg_req(&d, "GET", "/c", 200, 0, 1, AP_REQF_KILLED);
	feed(&d, (uint32_t)gone);
	struct col_ep_row row = find_row("f", "GET", "/c", &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(row.error_count, 0);
}
END_TEST

/* inflight.h alone, with a probe of ours: another start time under the
 * pid (reused by another process) is gone; the bounds refuse and count. */
static uint64_t fake_start;
static int fake_probe(uint32_t pid, uint64_t *start)
{
	(void)pid;
	*start = fake_start;
	return 1;
}

static unsigned emitted;
static void count_emit(void *arg, uint32_t pid, const struct col_inflight_req *q, uint64_t end_ns,
                       int64_t wall_minus_mono)
{
	(void)arg;
	(void)pid;
	(void)wall_minus_mono;
	ck_assert_uint_ge(end_ns, q->start_ns);
	emitted++;
}

static void *pause_forever(void *unused)
{
	(void)unused;
	for (;;)
		pause();
	return NULL;
}

/* The stat line's state of pid (0 when unreadable). */
static char proc_state(pid_t pid)
{
	char path[64], st[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(st, 1, sizeof st - 1, f);
	fclose(f);
	st[n] = '\0';
	char *p = strrchr(st, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* A process whose main thread returned through pthread_exit() while
 * another thread serves: its /proc/PID/stat says Z, yet it lives (ps
 * shows "Zl"), and its requests must not be recorded as killed. Once
 * killed it is gone. */
START_TEST(test_inflight_probe_zombie_leader)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, pause_forever, NULL) != 0)
			_exit(1);
		pthread_exit(NULL);
	}
	for (int i = 0; i < 400 && proc_state(pid) != 'Z'; i++)
		usleep(5000);
	ck_assert_int_eq(proc_state(pid), 'Z');
	uint64_t start = 0;
	ck_assert_int_eq(col_inflight_proc_probe((uint32_t)pid, &start), 1);
	ck_assert_uint_ne(start, 0);
	kill(pid, SIGKILL);
	int r = 0;
	for (int i = 0; i < 400 && (r = col_inflight_proc_probe((uint32_t)pid, &start)) >= 0; i++)
		usleep(5000);
	ck_assert_int_eq(r, -1);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

START_TEST(test_inflight_pid_reuse_and_bounds)
{
	struct col_inflight *f = col_inflight_new(fake_probe);
	ck_assert_ptr_nonnull(f);
	fake_start = 5;
	struct ap_rec_inflight a = { .round_ns = 10, .start_ns = 1, .method = { "GET", 3 },
	                             .path = { "/p", 2 } };
	for (uint64_t id = 1; id <= COL_INFLIGHT_PER_PROC + 3; id++) {
		a.req_id = id;
		col_inflight_note(f, 100, 0, &a, 0, 0);
	}
	a.req_id = 1; /* again in the same round: once */
	col_inflight_note(f, 100, 0, &a, 0, 0);
	struct col_inflight_counters c;
	col_inflight_counters(f, &c);
	ck_assert_uint_eq(c.pending, COL_INFLIGHT_PER_PROC);
	ck_assert_uint_eq(c.refused, 3);
	emitted = 0;
	ck_assert_uint_eq(col_inflight_reap(f, 1000000000LL, count_emit, NULL), 0);
	ck_assert_uint_eq(col_inflight_reap(f, 2000000000LL, count_emit, NULL), 0);
	fake_start = 6; /* another process under pid 100 */
	ck_assert_uint_eq(col_inflight_reap(f, 3000000000LL, count_emit, NULL), 0);
	ck_assert_uint_eq(col_inflight_reap(f, 4000000000LL, count_emit, NULL), COL_INFLIGHT_PER_PROC);
	ck_assert_uint_eq(emitted, COL_INFLIGHT_PER_PROC);
	/* Processes beyond the bound. */
	for (uint32_t pid = 1; pid <= COL_INFLIGHT_MAX_PROCS + 2; pid++)
		col_inflight_note(f, pid, 0, &a, 0, 0);
	col_inflight_counters(f, &c);
	ck_assert_uint_eq(c.processes, COL_INFLIGHT_MAX_PROCS);
	ck_assert_uint_eq(c.refused, 5);
	/* FINAL forgets a process whatever its round (a sender's clock). */
	struct ap_rec_inflight fin = { .round_ns = 0, .flags = AP_INFLF_FINAL };
	col_inflight_note(f, 1, 0, &fin, 0, 0);
	col_inflight_counters(f, &c);
	ck_assert_uint_eq(c.processes, COL_INFLIGHT_MAX_PROCS - 1);
	ck_assert_uint_eq(c.pending, COL_INFLIGHT_MAX_PROCS - 1);
	col_inflight_free(f);
}
END_TEST

Suite *ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("decode");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_attribution);
	tcase_add_test(tc, test_classification);
	tcase_add_test(tc, test_configured_routes);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_misdated);
	tcase_add_test(tc, test_profile_stack_cleaned);
	tcase_add_test(tc, test_crash_log_limited);
	tcase_add_test(tc, test_crash_symbolise_bounded);
	tcase_add_test(tc, test_killed_recorded);
	tcase_add_test(tc, test_killed_forgotten);
	tcase_add_test(tc, test_inflight_pid_reuse_and_bounds);
	tcase_add_test(tc, test_inflight_probe_zombie_leader);
	suite_add_tcase(s, tc);
	return s;
}
