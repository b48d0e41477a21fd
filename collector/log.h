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

#endif /* COL_LOG_H */
