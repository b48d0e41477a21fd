/*
 * log.c - leveled, timestamped lines on stderr (log.h).
 */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "col.h"

/* The one piece of global state in the collector's library: the log level
 * is process-wide by nature (every module logs, and threading a logger
 * through every call would buy nothing). Set at startup, then only read;
 * a relaxed atomic keeps a late change well-defined. */
static int log_level = COL_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int col_log_parse_level(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "warning") == 0)
		return COL_LOG_WARN;
	for (int i = 0; i <= COL_LOG_DEBUG; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void col_log_set_level(int level)
{
	if (level < COL_LOG_ERROR)
		level = COL_LOG_ERROR;
	if (level > COL_LOG_DEBUG)
		level = COL_LOG_DEBUG;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int col_log_enabled(int level)
{
	return level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void col_logv(int level, const char *fmt, va_list ap)
{
	if (!col_log_enabled(level))
		return;
	if (level < COL_LOG_ERROR)
		level = COL_LOG_ERROR;
	if (level > COL_LOG_DEBUG)
		level = COL_LOG_DEBUG;
	int saved = errno; /* callers may log between a failure and its errno */
	char line[4096];
	char ts[COL_TIME_BUF];
	col_time_format(col_clock_real_ns(), ts, sizeof ts);
	int n = snprintf(line, sizeof line, "%s %s[%ld]: %s: ", ts, COL_PROG,
	                 (long)getpid(), level_names[level]);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof line) {
		int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	line[n++] = '\n';
	ssize_t off = 0;
	while (off < n) {
		ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	errno = saved;
}

void col_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	col_logv(level, fmt, ap);
	va_end(ap);
}

int col_log_budget_take(struct col_log_budget *b, int64_t now_mono)
{
	if (b->logged == 0 || now_mono - b->start >= 60 * COL_NS_PER_S) {
		if (b->held > 0)
			col_log(b->level, b->held_fmt, b->held);
		b->start = now_mono;
		b->logged = 0;
		b->held = 0;
	}
	if (b->logged < b->per_min) {
		b->logged++;
		return 1;
	}
	if (b->held++ == 0)
		col_log(b->level, b->full_fmt, (int)b->per_min);
	return 0;
}
