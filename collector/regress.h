/*
 * regress.h - the regression rules (SPEC sections 4 and 5): one endpoint's
 * summary in a closed window compared with its summary in the previous
 * window of that endpoint.
 *
 *   response_time  current avg > factor x previous avg
 *   error_rate     current error rate - previous error rate > delta
 *   p95            current p95 > factor x previous p95 while the average
 *                  did not cross the factor (a tail-only slowdown)
 *   n_plus_one     an N+1 fingerprint in the current window that the
 *                  previous window did not have (one regression each)
 *
 * Every rule compares only when both windows have at least min_requests
 * requests. Comparisons are strict: a value exactly at the threshold is not
 * a regression (a relative tolerance of 1e-9 absorbs floating-point noise,
 * so 0.3 - 0.1 against a delta of 0.2 is "at", not "above").
 *
 * Pure functions, no allocation, thread-safe.
 */
#ifndef COL_REGRESS_H
#define COL_REGRESS_H

#include <stddef.h>
#include <stdint.h>

enum col_reg_type {
	COL_REG_RESPONSE_TIME,
	COL_REG_ERROR_RATE,
	COL_REG_P95,
	COL_REG_N_PLUS_ONE,
	COL_REG_TYPES
};

#define COL_WIN_MAX_N1 16   /* N+1 fingerprints remembered per endpoint and window */

/* "response_time", "error_rate", "p95", "n_plus_one"; "?" out of range. */
const char *col_reg_type_name(int type);
/* The type named s, or -1. */
int col_reg_type_lookup(const char *s);

/* What the rules read of one endpoint in one window. */
struct col_win_sum {
	uint64_t count;
	uint64_t error_count;
	double avg_ms;
	double p95_ms;
	uint32_t nn1;                     /* N+1 fingerprints seen, <= COL_WIN_MAX_N1 */
	uint64_t n1[COL_WIN_MAX_N1];
};

struct col_reg_rules {
	double factor;          /* regression_response_time_factor, > 1 */
	double delta;           /* regression_error_rate_delta */
	uint64_t min_requests;  /* regression_min_requests, >= 1 */
};

struct col_reg_hit {
	int type;               /* enum col_reg_type */
	uint64_t fingerprint;   /* COL_REG_N_PLUS_ONE only, else 0 */
};

/* The error rate of s (0 when it has no requests). */
double col_win_error_rate(const struct col_win_sum *s);

/* Applies the rules to cur against prev (NULL: no previous window, so
 * nothing to compare). Writes at most cap hits into out, in the order
 * response_time, error_rate, p95, then n_plus_one by cur's fingerprint
 * order, and returns how many there are in all (which may exceed cap). */
size_t col_regress_detect(const struct col_reg_rules *r, const struct col_win_sum *prev,
                          const struct col_win_sum *cur, struct col_reg_hit *out, size_t cap);

/* The rules a loaded configuration sets (its regression_* keys). */
struct ap_config;
struct col_reg_rules col_reg_rules_of(const struct ap_config *cfg);

#endif /* COL_REGRESS_H */
