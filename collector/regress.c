/*
 * regress.c - the regression rules (regress.h).
 */
#include "config.h"
#include "regress.h"
#include "ap_config.h"

#include <math.h>
#include <string.h>

static const char *const type_names[COL_REG_TYPES] = {
	"response_time", "error_rate", "p95", "n_plus_one",
};

const char *col_reg_type_name(int type)
{
	return type >= 0 && type < COL_REG_TYPES ? type_names[type] : "?";
}

int col_reg_type_lookup(const char *s)
{
	for (int i = 0; i < COL_REG_TYPES; i++)
		if (strcmp(s, type_names[i]) == 0)
			return i;
	return -1;
}

double col_win_error_rate(const struct col_win_sum *s)
{
	return s->count ? (double)s->error_count / (double)s->count : 0;
}

/* a > b beyond floating-point noise. */
static int above(double a, double b)
{
	return a > b + 1e-9 * fmax(1.0, fabs(b));
}

static void hit(struct col_reg_hit *out, size_t cap, size_t *n, int type, uint64_t fp)
{
	if (*n < cap) {
		out[*n].type = type;
		out[*n].fingerprint = fp;
	}
	(*n)++;
}

size_t col_regress_detect(const struct col_reg_rules *r, const struct col_win_sum *prev,
                          const struct col_win_sum *cur, struct col_reg_hit *out, size_t cap)
{
	size_t n = 0;
	uint64_t min = r->min_requests ? r->min_requests : 1;
	if (prev == NULL || prev->count < min || cur->count < min)
		return 0;
	int slower = above(cur->avg_ms, r->factor * prev->avg_ms);
	if (slower)
		hit(out, cap, &n, COL_REG_RESPONSE_TIME, 0);
	if (above(col_win_error_rate(cur) - col_win_error_rate(prev), r->delta))
		hit(out, cap, &n, COL_REG_ERROR_RATE, 0);
	if (!slower && above(cur->p95_ms, r->factor * prev->p95_ms))
		hit(out, cap, &n, COL_REG_P95, 0);
	for (uint32_t i = 0; i < cur->nn1 && i < COL_WIN_MAX_N1; i++) {
		int seen = 0;
		for (uint32_t j = 0; j < prev->nn1 && j < COL_WIN_MAX_N1 && !seen; j++)
			seen = prev->n1[j] == cur->n1[i];
		if (!seen)
			hit(out, cap, &n, COL_REG_N_PLUS_ONE, cur->n1[i]);
	}
	return n;
}

struct col_reg_rules col_reg_rules_of(const struct ap_config *cfg)
{
	struct col_reg_rules r = {
		.factor = cfg->regression_response_time_factor,
		.delta = cfg->regression_error_rate_delta,
		.min_requests = (uint64_t)cfg->regression_min_requests,
	};
	return r;
}
