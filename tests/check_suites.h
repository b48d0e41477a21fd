/* One suite-building function per module (STYLE item 15). */
#ifndef AP_CHECK_SUITES_H
#define AP_CHECK_SUITES_H

#include <check.h>
#include <stddef.h>

Suite *wire_suite(void);
Suite *http_suite(void);
Suite *route_suite(void);
Suite *config_suite(void);
Suite *sketch_suite(void);
Suite *agg_suite(void);
Suite *colutil_suite(void);
Suite *ingest_suite(void);
Suite *store_suite(void);
Suite *sql_suite(void);
Suite *sqlreq_suite(void);
Suite *sqlagg_suite(void);
Suite *sqlstore_suite(void);
Suite *sqlingest_suite(void);
Suite *regress_suite(void);
Suite *windows_suite(void);
Suite *metrics_suite(void);
Suite *crash_suite(void);
Suite *profile_suite(void);
Suite *h2_suite(void);
Suite *hpack_suite(void);
Suite *fcgi_suite(void);

/* For a test that reads the collector's log (stderr): log_capture_start()
 * sends stderr into a new file at path and returns what
 * log_capture_end() needs to restore it; log_capture_end() restores
 * stderr, reads the file into buf (NUL-terminated, cut at len - 1 bytes)
 * and removes it. Check runs each test in a child process of its own
 * (or, with CK_FORK=no, one after another), so nothing else writes to
 * stderr meanwhile. */
int log_capture_start(const char *path);
void log_capture_end(int saved, const char *path, char *buf, size_t len);
/* Occurrences of needle in text (a captured log: its lines that say so,
 * when needle occurs at most once a line). */
int count_in(const char *text, const char *needle);

#endif
