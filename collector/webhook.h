/*
 * webhook.h - regression alerts POSTed to webhook_url (SPEC section 5) by
 * one worker thread with libcurl, so that ingestion and window closing
 * never wait for the network.
 *
 * An alert is queued with col_webhook_send() (bounded queue; a full queue
 * drops the alert and counts it, and the caller settles its outcome: it
 * never reaches the callback). The worker POSTs it as application/json; a
 * 2xx answer is a delivery. Anything else (a transport error, a timeout of
 * COL_WEBHOOK_TIMEOUT_MS, any other status, a 4xx included) is a failed
 * attempt, retried after 1 s, then after doubling delays capped at 60 s
 * (1, 2, 4, 8, 16, 32, 60 s: COL_WEBHOOK_ATTEMPTS attempts in all, counting
 * those an earlier run made). While one alert waits for its retry, others
 * are delivered. Each retried attempt (status PENDING, the attempts so far)
 * and the outcome of each queued alert (once) are reported through the
 * status callback, from the worker thread.
 *
 * Stopping interrupts a transfer in progress; alerts not yet delivered
 * keep the status they had (pending), so the owner can resend them after a
 * restart with the attempts they had. A transfer that got its 2xx before
 * the stop is reported DELIVERED, from the stopping call's wait for the
 * worker. Thread-safe unless noted.
 */
#ifndef COL_WEBHOOK_H
#define COL_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#define COL_WEBHOOK_ATTEMPTS 8
#define COL_WEBHOOK_TIMEOUT_MS 10000
#define COL_WEBHOOK_QUEUE 256

enum col_webhook_status {
	COL_WEBHOOK_NONE,       /* no webhook_url */
	COL_WEBHOOK_PENDING,
	COL_WEBHOOK_DELIVERED,
	COL_WEBHOOK_FAILED,
};

/* "none", "pending", "delivered", "failed". */
const char *col_webhook_status_name(int status);
/* The status named s, or -1. */
int col_webhook_status_lookup(const char *s);

/* The delay before attempt `attempt` + 1 after attempt `attempt` (1-based)
 * failed, in milliseconds, or -1 once COL_WEBHOOK_ATTEMPTS were made. */
int64_t col_webhook_retry_delay_ms(int attempt);

/* 1 when an HTTP answer (0: none, a transport error or timeout) is a
 * failed attempt, to retry while attempts remain: anything but a 2xx. */
int col_webhook_retryable(long http_status);

typedef void (*col_webhook_cb)(void *arg, int64_t id, int status, int attempts);

struct col_webhook_opts {
	const char *url;         /* http:// or https:// */
	size_t queue_cap;        /* 0: COL_WEBHOOK_QUEUE */
	long timeout_ms;         /* 0: COL_WEBHOOK_TIMEOUT_MS */
	int64_t delay_scale_pct; /* retry delays in percent of the schedule; 0: 100 (tests) */
	col_webhook_cb cb;       /* called with PENDING after each failed attempt
	                            that is retried, then once with DELIVERED or
	                            FAILED; may be NULL */
	void *arg;
};

struct col_webhook;

/* Starts the worker. NULL with err filled on failure. */
struct col_webhook *col_webhook_start(const struct col_webhook_opts *o,
                                      char *err, size_t errlen);

/* Queues alert `id` with a copy of body (JSON), due now; `attempts` were
 * made already (by an earlier run: 0 for a new alert), so it gets the rest
 * of COL_WEBHOOK_ATTEMPTS (at least one). 0, -ENOSPC (queue full: dropped
 * and counted in `dropped`), -ENOMEM, or -ESHUTDOWN once stopping. On an
 * error the callback is never called for this alert. */
int col_webhook_send(struct col_webhook *w, int64_t id, const char *body, int attempts);

/* Stops the worker (interrupting a transfer), frees everything. Undelivered
 * alerts are dropped without a callback; one whose 2xx came just before
 * is reported DELIVERED before this returns. NULL is a no-op. */
void col_webhook_stop(struct col_webhook *w);

struct col_webhook_counters {
	uint64_t delivered;     /* alerts delivered */
	uint64_t failed;        /* alerts given up on */
	uint64_t attempts_failed; /* attempts that failed, retried or not */
	uint64_t dropped;       /* queue full */
	size_t queued;          /* waiting now (including retries) */
};

/* NULL w gives zeros. */
void col_webhook_counters(struct col_webhook *w, struct col_webhook_counters *c);

#endif /* COL_WEBHOOK_H */
