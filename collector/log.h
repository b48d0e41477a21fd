/*
 * log.h - the collector's log: timestamped lines on stderr with a level.
 *
 *   2026-11-22T08:15:02.123Z apiprof-collector[4242]: warn: message
 *
 * Each line goes out in one write(2), so lines of concurrent threads never
 * interleave. All functions are thread-safe; none is async-signal-safe.
 */
#ifndef COL_LOG_H
#define COL_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum col_log_level {
	COL_LOG_ERROR,
	COL_LOG_WARN,
	COL_LOG_INFO,
	COL_LOG_DEBUG,
};

/* The level named s ("error", "warn" or "warning", "info", "debug",
 * case-insensitive), or -1. */
int col_log_parse_level(const char *s);

/* Sets the most verbose level that is written (default COL_LOG_INFO). Meant
 * to be called once at startup; later calls are safe but racy by nature. */
void col_log_set_level(int level);

/* 1 when a message at `level` would be written (to skip costly formatting). */
int col_log_enabled(int level);

/* Writes one line (a trailing newline in fmt is not needed; longer lines
 * are cut at about 4 KiB). */
void col_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void col_logv(int level, const char *fmt, va_list ap);

/* A budget of lines a minute for a message any client can cause (one per
 * connection, one per record), which could otherwise fill the log and the
 * disk under it. Zero-initialised but for the four constant fields; the
 * caller serialises the calls on one budget. */
struct col_log_budget {
	unsigned per_min;        /* lines a minute */
	int level;               /* of the two lines below */
	const char *held_fmt;    /* "%llu ...": how many were held back, logged
	                          * by the next minute's first call */
	const char *full_fmt;    /* "%d ..." (per_min): logged at the first line
	                          * held back in a minute */
	int64_t start;           /* monotonic ns: the minute's first call */
	unsigned logged;         /* lines allowed in that minute */
	unsigned long long held; /* lines held back in it */
};

/* 1 when one more line may be logged now (now_mono: the monotonic clock,
 * ns), counting it; 0 when it is held back. */
int col_log_budget_take(struct col_log_budget *b, int64_t now_mono);

#endif /* COL_LOG_H */
