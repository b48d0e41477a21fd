/*
 * check_regress.c - the regression rules (collector/regress.h) at and
 * around each threshold, the min-requests guard, the p95-only rule and new
 * N+1 patterns; the webhook retry schedule (collector/webhook.h), its
 * giving up, and a delivery answered just before a stop.
 */
#include "config.h"
#include "check_suites.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "ap_config.h"
#include "col.h"
#include "regress.h"
#include "webhook.h"

static const struct col_reg_rules R = { .factor = 2.0, .delta = 0.1, .min_requests = 20 };

static struct col_win_sum sum(uint64_t count, uint64_t errors, double avg, double p95)
{
	struct col_win_sum s = { .count = count, .error_count = errors, .avg_ms = avg, .p95_ms = p95 };
	return s;
}

static size_t detect(const struct col_win_sum *prev, const struct col_win_sum *cur,
                     struct col_reg_hit *h)
{
	return col_regress_detect(&R, prev, cur, h, 8);
}

START_TEST(test_names)
{
	ck_assert_str_eq(col_reg_type_name(COL_REG_RESPONSE_TIME), "response_time");
	ck_assert_str_eq(col_reg_type_name(COL_REG_ERROR_RATE), "error_rate");
	ck_assert_str_eq(col_reg_type_name(COL_REG_P95), "p95");
	ck_assert_str_eq(col_reg_type_name(COL_REG_N_PLUS_ONE), "n_plus_one");
	ck_assert_str_eq(col_reg_type_name(9), "?");
	ck_assert_int_eq(col_reg_type_lookup("p95"), COL_REG_P95);
	ck_assert_int_eq(col_reg_type_lookup("slow"), -1);
}
END_TEST

/* Average: strictly above factor x previous. */
START_TEST(test_response_time_threshold)
{
	static const struct { double prev, cur; int hit; } t[] = {
		{ 100, 199.9, 0 },
		{ 100, 200.0, 0 },       /* exactly at the factor */
		{ 100, 200.001, 1 },
		{ 120.5, 890.3, 1 },
		{ 0.3, 0.6, 0 },         /* 2 x 0.3 is 0.6 in floating point too */
		{ 0.1, 0.3, 1 },
		{ 100, 50, 0 },          /* faster */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		/* p95 moves with the average, so only response_time can fire */
		struct col_win_sum p = sum(20, 0, t[i].prev, t[i].prev),
		                   c = sum(20, 0, t[i].cur, t[i].cur);
		struct col_reg_hit h[8];
		size_t n = detect(&p, &c, h);
		ck_assert_msg(n == (size_t)t[i].hit, "case %zu: %zu hits", i, n);
		if (n)
			ck_assert_int_eq(h[0].type, COL_REG_RESPONSE_TIME);
	}
}
END_TEST

/* Error rate: current - previous strictly above delta. */
START_TEST(test_error_rate_threshold)
{
	static const struct { uint64_t pe, ce; int hit; } t[] = {
		{ 0, 2, 0 },    /* 0.10: at the delta */
		{ 0, 3, 1 },    /* 0.15 */
		{ 2, 4, 0 },    /* 0.20 - 0.10 */
		{ 2, 5, 1 },
		{ 6, 8, 0 },    /* 0.4 - 0.3: not exactly 0.1 in floating point */
		{ 6, 9, 1 },
		{ 10, 0, 0 },   /* better */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct col_win_sum p = sum(20, t[i].pe, 10, 12), c = sum(20, t[i].ce, 10, 12);
		struct col_reg_hit h[8];
		size_t n = detect(&p, &c, h);
		ck_assert_msg(n == (size_t)t[i].hit, "case %zu: %zu hits", i, n);
		if (n)
			ck_assert_int_eq(h[0].type, COL_REG_ERROR_RATE);
	}
}
END_TEST

/* The daemon's rules are the configuration's regression_* keys (SPEC 4),
 * defaults 2.0, 0.1 and 20. */
START_TEST(test_rules_of_config)
{
	struct ap_config cfg;
	char err[256];
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	struct col_reg_rules r = col_reg_rules_of(&cfg);
	ck_assert(r.factor == 2.0 && r.delta == 0.1);
	ck_assert_uint_eq(r.min_requests, 20);
	ck_assert_int_eq(ap_config_set(&cfg, "regression_response_time_factor", "3.5", err,
	                               sizeof err), 0);
	ck_assert_int_eq(ap_config_set(&cfg, "regression_error_rate_delta", "0.25", err,
	                               sizeof err), 0);
	ck_assert_int_eq(ap_config_set(&cfg, "regression_min_requests", "7", err, sizeof err), 0);
	r = col_reg_rules_of(&cfg);
	ck_assert(r.factor == 3.5 && r.delta == 0.25);
	ck_assert_uint_eq(r.min_requests, 7);
	ap_config_free(&cfg);
}
END_TEST

/* Both windows need min_requests: 19 never compares, 20 does. */
START_TEST(test_min_requests)
{
	struct col_reg_hit h[8];
	struct col_win_sum p = sum(20, 0, 10, 10), c = sum(20, 20, 100, 100);
	ck_assert_uint_eq(detect(&p, &c, h), 2);
	c.count = 19;
	c.error_count = 19;
	ck_assert_uint_eq(detect(&p, &c, h), 0);
	c = sum(20, 20, 100, 100);
	p.count = 19;
	ck_assert_uint_eq(detect(&p, &c, h), 0);
	p.count = 1000;
	ck_assert_uint_eq(detect(&p, &c, h), 2);
	ck_assert_uint_eq(detect(NULL, &c, h), 0);  /* a first window */
	struct col_reg_rules one = R;
	one.min_requests = 1;
	p = sum(1, 0, 10, 10);
	c = sum(1, 0, 30, 30);
	ck_assert_uint_eq(col_regress_detect(&one, &p, &c, h, 8), 1);
	one.min_requests = 0;    /* treated as 1 */
	ck_assert_uint_eq(col_regress_detect(&one, &p, &c, h, 8), 1);
}
END_TEST

/* p95 beyond the factor while the average is not: a p95 regression; when
 * both cross, only response_time. */
START_TEST(test_p95)
{
	struct col_reg_hit h[8];
	struct col_win_sum p = sum(50, 0, 10, 20), c = sum(50, 0, 15, 40.0);
	ck_assert_uint_eq(detect(&p, &c, h), 0);         /* at the factor */
	c.p95_ms = 40.01;
	ck_assert_uint_eq(detect(&p, &c, h), 1);
	ck_assert_int_eq(h[0].type, COL_REG_P95);
	c.avg_ms = 25;                                   /* the average crossed too */
	ck_assert_uint_eq(detect(&p, &c, h), 1);
	ck_assert_int_eq(h[0].type, COL_REG_RESPONSE_TIME);
	c = sum(50, 10, 15, 100);                        /* p95 and error rate */
	ck_assert_uint_eq(detect(&p, &c, h), 2);
	ck_assert_int_eq(h[0].type, COL_REG_ERROR_RATE);
	ck_assert_int_eq(h[1].type, COL_REG_P95);
}
END_TEST

/* Every N+1 fingerprint the previous window did not have, one each. */
START_TEST(test_n_plus_one)
{
	struct col_reg_hit h[8];
	struct col_win_sum p = sum(20, 0, 10, 10), c = sum(20, 0, 10, 10);
	p.nn1 = 1;
	p.n1[0] = 0xaaaa;
	c.nn1 = 3;
	c.n1[0] = 0xbbbb;
	c.n1[1] = 0xaaaa;
	c.n1[2] = 0xcccc;
	ck_assert_uint_eq(detect(&p, &c, h), 2);
	ck_assert_int_eq(h[0].type, COL_REG_N_PLUS_ONE);
	ck_assert_uint_eq(h[0].fingerprint, 0xbbbb);
	ck_assert_uint_eq(h[1].fingerprint, 0xcccc);
	p.nn1 = 0;
	ck_assert_uint_eq(detect(&p, &c, h), 3);
	c.count = 5;                                     /* the guard applies */
	ck_assert_uint_eq(detect(&p, &c, h), 0);
	/* a fingerprint that goes away is not a regression */
	c = sum(20, 0, 10, 10);
	p.nn1 = 1;
	ck_assert_uint_eq(detect(&p, &c, h), 0);
	/* more hits than room: counted, not written */
	c.nn1 = 3;
	c.n1[0] = 1;
	c.n1[1] = 2;
	c.n1[2] = 3;
	ck_assert_uint_eq(col_regress_detect(&R, &p, &c, h, 1), 3);
}
END_TEST

START_TEST(test_webhook_schedule)
{
	static const int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 60000 };
	for (int a = 1; a < COL_WEBHOOK_ATTEMPTS; a++)
		ck_assert_int_eq(col_webhook_retry_delay_ms(a), want[a - 1]);
	ck_assert_int_eq(COL_WEBHOOK_ATTEMPTS, 8);
	ck_assert_int_eq(col_webhook_retry_delay_ms(8), -1);
	ck_assert_int_eq(col_webhook_retry_delay_ms(0), -1);
	/* the first retry is within 2 s (SPEC 5) */
	ck_assert_int_le(col_webhook_retry_delay_ms(1), 2000);
	ck_assert(col_webhook_retryable(0));
	ck_assert(col_webhook_retryable(500));
	ck_assert(col_webhook_retryable(503));
	ck_assert(col_webhook_retryable(429));
	ck_assert(col_webhook_retryable(404));
	ck_assert(col_webhook_retryable(400));
	ck_assert(col_webhook_retryable(302));
	ck_assert(!col_webhook_retryable(200));
	ck_assert(!col_webhook_retryable(204));
	ck_assert_str_eq(col_webhook_status_name(COL_WEBHOOK_DELIVERED), "delivered");
	ck_assert_int_eq(col_webhook_status_lookup("pending"), COL_WEBHOOK_PENDING);
	ck_assert_int_eq(col_webhook_status_lookup("x"), -1);
}
END_TEST

struct outcome {
	pthread_mutex_t mu;
	int64_t id;
	int status, attempts, calls;
	int pending_calls;      /* PENDING reports, one per retried attempt */
	int pending_attempts;   /* the attempts of each alert, reported in order */
	int pending_bad;        /* a PENDING report out of that order */
};

static void on_outcome(void *arg, int64_t id, int status, int attempts)
{
	struct outcome *o = arg;
	pthread_mutex_lock(&o->mu);
	if (status == COL_WEBHOOK_PENDING) {
		/* Alerts 7 and 8 retry interleaved; each counts 1, 2, ... 7. */
		o->pending_calls++;
		o->pending_attempts += attempts;
		if (attempts < 1 || attempts >= COL_WEBHOOK_ATTEMPTS)
			o->pending_bad++;
	} else {
		o->id = id;
		o->status = status;
		o->attempts = attempts;
		o->calls++;
	}
	pthread_mutex_unlock(&o->mu);
}

/* A TCP socket bound to a free port of 127.0.0.1, into sa. */
static int loopback_socket(struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	*sa = (struct sockaddr_in){ .sin_family = AF_INET,
	                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof *sa;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sa, &sl), 0);
	return fd;
}

/* A port nobody listens on refuses every attempt: all 8 are made (on a
 * schedule shortened to 1 %), then the alert fails, once. Each of the 7
 * retried attempts is reported as PENDING with the attempts so far, so
 * the regression's webhook_attempts is right while it waits. */
START_TEST(test_webhook_gives_up)
{
	struct sockaddr_in sa;
	close(loopback_socket(&sa));     /* the port is now (very likely) free */
	char url[64], err[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", ntohs(sa.sin_port));
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct col_webhook_opts wo = { .url = url, .delay_scale_pct = 1, .cb = on_outcome,
	                               .arg = &o, .queue_cap = 2 };
	struct col_webhook *w = col_webhook_start(&wo, err, sizeof err);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(col_webhook_send(w, 7, "{\"text\":\"x\"}", 0), 0);
	ck_assert_int_eq(col_webhook_send(w, 8, "{}", 0), 0);
	ck_assert_int_eq(col_webhook_send(w, 9, "{}", 0), -ENOSPC);   /* bounded */
	int64_t until = col_clock_mono_ns() + 10 * COL_NS_PER_S;
	for (;;) {
		pthread_mutex_lock(&o.mu);
		int calls = o.calls;
		pthread_mutex_unlock(&o.mu);
		if (calls >= 2 || col_clock_mono_ns() > until)
			break;
		usleep(20000);
	}
	struct col_webhook_counters c;
	col_webhook_counters(w, &c);
	col_webhook_stop(w);
	ck_assert_int_eq(o.calls, 2);
	ck_assert_int_eq(o.status, COL_WEBHOOK_FAILED);
	ck_assert_int_eq(o.attempts, COL_WEBHOOK_ATTEMPTS);
	ck_assert_int_eq(o.pending_calls, 2 * (COL_WEBHOOK_ATTEMPTS - 1));
	ck_assert_int_eq(o.pending_attempts, 2 * (COL_WEBHOOK_ATTEMPTS - 1) * COL_WEBHOOK_ATTEMPTS / 2);
	ck_assert_int_eq(o.pending_bad, 0);
	ck_assert_uint_eq(c.failed, 2);
	ck_assert_uint_eq(c.delivered, 0);
	ck_assert_uint_eq(c.attempts_failed, 2 * COL_WEBHOOK_ATTEMPTS);
	ck_assert_uint_eq(c.dropped, 1);
	ck_assert_uint_eq(c.queued, 0);
}
END_TEST

/* A test seam at link level: this program's curl_easy_perform() replaces
 * libcurl's for the webhook worker (the executable's definition wins; the
 * real one is found with RTLD_NEXT). Unarmed it only calls the real one.
 * Armed (hold_after_post), once a transfer has returned it posts
 * `posted` and holds the worker, its answer in hand, until the stop the
 * test then starts is visible (col_webhook_send() refuses with
 * -ESHUTDOWN; until then the full queue of one refuses with -ENOSPC), so
 * the worker goes on exactly as when a stop lands right after an answer.
 * The webhook cannot be freed meanwhile: col_webhook_stop() waits for
 * this thread. */
static struct col_webhook *hold_after_post;
static sem_t posted;

CURLcode curl_easy_perform(CURL *h)
{
	CURLcode (*real)(CURL *) = (CURLcode (*)(CURL *))dlsym(RTLD_NEXT, "curl_easy_perform");
	if (real == NULL)
		return CURLE_FAILED_INIT;
	CURLcode rc = real(h);
	struct col_webhook *w = __atomic_exchange_n(&hold_after_post, NULL, __ATOMIC_ACQ_REL);
	if (w != NULL) {
		sem_post(&posted);
		while (col_webhook_send(w, 99, "{}", 0) != -ESHUTDOWN)
			usleep(1000);
	}
	return rc;
}

/* A webhook receiver for one request: reads it, answers 200. */
static void *hook_200(void *arg)
{
	int lfd = *(int *)arg;
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char b[8192];
	size_t n = 0;
	for (;;) { /* the headers, then Content-Length bytes */
		ssize_t r = read(fd, b + n, sizeof b - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		b[n] = '\0';
		const char *end = strstr(b, "\r\n\r\n"), *cl = strstr(b, "Content-Length: ");
		if (end != NULL && cl != NULL && n >= (size_t)(end + 4 - b) + strtoul(cl + 16, NULL, 10))
			break;
	}
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	ck_assert_int_eq(write(fd, ok, sizeof ok - 1), (ssize_t)(sizeof ok - 1));
	close(fd);
	return NULL;
}

/* A stop that lands right after the receiver's 200 (the worker holds the
 * answer, not yet settled): the alert is DELIVERED, counted, and gone
 * from the queue. It was left pending without a callback (the worker
 * broke out at the stop), so the next start sent it again: a duplicate. */
START_TEST(test_webhook_delivered_at_stop)
{
	struct sockaddr_in sa;
	int lfd = loopback_socket(&sa);
	ck_assert_int_eq(listen(lfd, 1), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, hook_200, &lfd), 0);
	char url[64], err[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", ntohs(sa.sin_port));
	struct outcome o = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct col_webhook_opts wo = { .url = url, .cb = on_outcome, .arg = &o, .queue_cap = 1 };
	ck_assert_int_eq(sem_init(&posted, 0, 0), 0);
	struct col_webhook *w = col_webhook_start(&wo, err, sizeof err);
	ck_assert_ptr_nonnull(w);
	__atomic_store_n(&hold_after_post, w, __ATOMIC_RELEASE);
	ck_assert_int_eq(col_webhook_send(w, 7, "{\"text\":\"x\"}", 0), 0);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 15;
	ck_assert_int_eq(sem_timedwait(&posted, &dl), 0);
	struct col_webhook_counters c;
	col_webhook_counters(w, &c);
	ck_assert_uint_eq(c.queued, 1);       /* answered, not yet settled */
	col_webhook_stop(w);
	pthread_join(th, NULL);
	close(lfd);
	sem_destroy(&posted);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.id, 7);
	ck_assert_int_eq(o.status, COL_WEBHOOK_DELIVERED);
	ck_assert_int_eq(o.attempts, 1);
	ck_assert_int_eq(o.pending_calls, 0);
}
END_TEST

Suite *regress_suite(void)
{
	Suite *s = suite_create("regress");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_response_time_threshold);
	tcase_add_test(tc, test_error_rate_threshold);
	tcase_add_test(tc, test_min_requests);
	tcase_add_test(tc, test_rules_of_config);
	tcase_add_test(tc, test_p95);
	tcase_add_test(tc, test_n_plus_one);
	tcase_add_test(tc, test_webhook_schedule);
	suite_add_tcase(s, tc);
	TCase *tw = tcase_create("webhook");
	tcase_set_timeout(tw, 30);
	tcase_add_test(tw, test_webhook_gives_up);
	tcase_add_test(tw, test_webhook_delivered_at_stop);
	suite_add_tcase(s, tw);
	return s;
}
