/*
 * webhook.c - the alert queue and its delivery thread (webhook.h).
 *
 * The queue is a small array (it is bounded by queue_cap and rarely holds
 * more than one alert): the worker picks the alert due first, POSTs it
 * without holding the lock, and either removes it or schedules its retry
 * on CLOCK_MONOTONIC.
 */
#include "config.h"
#include "webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "col.h"
#include "log.h"

#define MAX_DELAY_MS 60000
#define FIRST_DELAY_MS 1000

struct alert {
	int64_t id;
	char *body;
	int attempts;
	int64_t due_mono;
};

struct col_webhook {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t thread;
	int stopping;
	char *url;
	long timeout_ms;
	int64_t scale_pct;
	col_webhook_cb cb;
	void *arg;
	struct alert *q;
	size_t n, cap;
	uint64_t delivered, failed, attempts_failed, dropped;
};

static const char *const status_names[] = { "none", "pending", "delivered", "failed" };

const char *col_webhook_status_name(int status)
{
	return status >= 0 && status <= COL_WEBHOOK_FAILED ? status_names[status] : "none";
}

int col_webhook_status_lookup(const char *s)
{
	for (int i = 0; i <= COL_WEBHOOK_FAILED; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

int64_t col_webhook_retry_delay_ms(int attempt)
{
	if (attempt < 1 || attempt >= COL_WEBHOOK_ATTEMPTS)
		return -1;
	int64_t d = FIRST_DELAY_MS;
	for (int i = 1; i < attempt && d < MAX_DELAY_MS; i++)
		d *= 2;
	return d < MAX_DELAY_MS ? d : MAX_DELAY_MS;
}

/* SPEC 5: "a failed delivery is retried ... 8 attempts in all". Every
 * answer but a 2xx is a failed delivery, a 4xx included: a receiver behind
 * a proxy answers 404 or 403 while it restarts or its route is redeployed,
 * and eight attempts over about two minutes cost nothing. */
int col_webhook_retryable(long http_status)
{
	return http_status < 200 || http_status >= 300;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct col_webhook *w = arg;
	return __atomic_load_n(&w->stopping, __ATOMIC_RELAXED) ? 1 : 0;
}

/* One POST; the HTTP status, or 0 with why filled on a transport error. */
static long post(struct col_webhook *w, CURL *h, const char *body, char *why, size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, w->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, w->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms < 5000 ? w->timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "apiprof-collector/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		snprintf(why, whylen, "HTTP %ld", status);
	} else {
		snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	curl_slist_free_all(hdrs);
	return status;
}

static void timed_wait(struct col_webhook *w, int64_t deadline_mono)
{
	struct timespec ts = {
		.tv_sec = deadline_mono / COL_NS_PER_S,
		.tv_nsec = deadline_mono % COL_NS_PER_S,
	};
	pthread_cond_timedwait(&w->wake, &w->mu, &ts);
}

static void *worker(void *arg)
{
	struct col_webhook *w = arg;
	CURL *h = curl_easy_init();
	if (h == NULL)
		col_log(COL_LOG_ERROR, "webhook: cannot initialise libcurl; alerts will not be sent");
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		size_t best = w->n;
		for (size_t i = 0; i < w->n; i++)
			if (best == w->n || w->q[i].due_mono < w->q[best].due_mono)
				best = i;
		int64_t now = col_clock_mono_ns();
		if (best == w->n || h == NULL) {
			timed_wait(w, now + 60 * COL_NS_PER_S);
			continue;
		}
		if (w->q[best].due_mono > now) {
			timed_wait(w, w->q[best].due_mono);
			continue;
		}
		struct alert a = w->q[best];
		pthread_mutex_unlock(&w->mu);
		char why[CURL_ERROR_SIZE + 32];
		long st = post(w, h, a.body, why, sizeof why);
		a.attempts++;
		int ok = st >= 200 && st < 300;
		int64_t delay = ok || !col_webhook_retryable(st) ? -1
		                : col_webhook_retry_delay_ms(a.attempts);
		pthread_mutex_lock(&w->mu);
		/* An interrupted transfer is not a failure; but a 2xx that came
		 * before the stop is a delivery and is settled as one (left
		 * unsettled, it stayed pending and the next start sent it
		 * again). The loop ends after it. */
		if (w->stopping && !ok)
			break;
		/* The queue may have grown meanwhile, but only at its end. */
		size_t i;
		for (i = 0; i < w->n && w->q[i].id != a.id; i++)
			;
		if (i == w->n)
			continue; /* impossible: only this thread removes */
		if (!ok)
			w->attempts_failed++;
		if (ok || delay < 0) {
			free(w->q[i].body);
			w->q[i] = w->q[--w->n];
			if (ok)
				w->delivered++;
			else
				w->failed++;
			pthread_mutex_unlock(&w->mu);
			if (ok)
				col_log(COL_LOG_INFO, "webhook: alert %lld delivered (attempt %d)",
				        (long long)a.id, a.attempts);
			else
				col_log(COL_LOG_WARN, "webhook: alert %lld failed after %d attempts: %s",
				        (long long)a.id, a.attempts, why);
			if (w->cb)
				w->cb(w->arg, a.id, ok ? COL_WEBHOOK_DELIVERED : COL_WEBHOOK_FAILED,
				      a.attempts);
			pthread_mutex_lock(&w->mu);
		} else {
			int64_t d = delay * w->scale_pct / 100;
			w->q[i].attempts = a.attempts;
			w->q[i].due_mono = col_clock_mono_ns() + d * 1000000LL;
			pthread_mutex_unlock(&w->mu);
			col_log(COL_LOG_WARN, "webhook: alert %lld attempt %d failed (%s); retrying in %.1f s",
			        (long long)a.id, a.attempts, why, (double)d / 1000);
			/* Still pending, but the attempts made so far show at once
			 * (the regression's webhook_attempts), not only at the end. */
			if (w->cb)
				w->cb(w->arg, a.id, COL_WEBHOOK_PENDING, a.attempts);
			pthread_mutex_lock(&w->mu);
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct col_webhook *col_webhook_start(const struct col_webhook_opts *o,
                                      char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init_once);
	struct col_webhook *w = calloc(1, sizeof *w);
	if (w == NULL)
		goto oom;
	w->cap = o->queue_cap ? o->queue_cap : COL_WEBHOOK_QUEUE;
	w->q = calloc(w->cap, sizeof *w->q);
	w->url = strdup(o->url);
	if (w->q == NULL || w->url == NULL)
		goto oom;
	w->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : COL_WEBHOOK_TIMEOUT_MS;
	w->scale_pct = o->delay_scale_pct > 0 ? o->delay_scale_pct : 100;
	w->cb = o->cb;
	w->arg = o->arg;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&w->thread, NULL, worker, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "webhook: starting its thread: %s", strerror(rc));
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->mu);
		free(w->q);
		free(w->url);
		free(w);
		return NULL;
	}
	return w;
oom:
	if (w) {
		free(w->q);
		free(w->url);
		free(w);
	}
	snprintf(err, errlen, "webhook: out of memory");
	return NULL;
}

int col_webhook_send(struct col_webhook *w, int64_t id, const char *body, int attempts)
{
	if (attempts < 0)
		attempts = 0;
	if (attempts > COL_WEBHOOK_ATTEMPTS - 1)
		attempts = COL_WEBHOOK_ATTEMPTS - 1;
	char *copy = strdup(body);
	if (copy == NULL)
		return -ENOMEM;
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		rc = -ESHUTDOWN;
	} else if (w->n >= w->cap) {
		w->dropped++;
		rc = -ENOSPC;
	} else {
		w->q[w->n++] = (struct alert){ id, copy, attempts, col_clock_mono_ns() };
		copy = NULL;
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->mu);
	free(copy);
	return rc;
}

void col_webhook_stop(struct col_webhook *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	__atomic_store_n(&w->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	for (size_t i = 0; i < w->n; i++)
		free(w->q[i].body);
	free(w->q);
	free(w->url);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void col_webhook_counters(struct col_webhook *w, struct col_webhook_counters *c)
{
	memset(c, 0, sizeof *c);
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	c->delivered = w->delivered;
	c->failed = w->failed;
	c->attempts_failed = w->attempts_failed;
	c->dropped = w->dropped;
	c->queued = w->n;
	pthread_mutex_unlock(&w->mu);
}
