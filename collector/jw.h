/*
 * jw.h - a streaming JSON writer for the API's large responses.
 *
 * Why not jansson there: /api/v1/endpoints must answer in under 50 ms, and
 * with 10,000 endpoints jansson spends about 100 ms allocating, dumping and
 * freeing 170,000 values, where appending to one buffer takes a few ms.
 * Small documents (status, errors) still go through jansson. Numbers are
 * written exactly as the jansson paths write them (reals rounded to 1e-3
 * or 1e-6, shortest form, always with a fraction: 25.5, 1.0), so a client
 * cannot tell which path produced a response.
 *
 * Commas are automatic: values and keys are written in order and the
 * writer tracks nesting. Any failure (out of memory, nesting deeper than
 * JW_MAX_DEPTH) latches: later calls do nothing and jw_finish() returns
 * NULL. Not thread-safe; one writer per response.
 */
#ifndef COL_JW_H
#define COL_JW_H

#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 16

struct jw {
	char *buf;
	size_t len, cap;
	int failed;
	int depth;
	uint8_t first[JW_MAX_DEPTH]; /* no element yet at this level */
	int after_key;               /* the next value follows a key */
};

void jw_init(struct jw *w);
/* Frees the buffer (when jw_finish() was not called or failed). */
void jw_release(struct jw *w);

void jw_obj(struct jw *w);         /* { */
void jw_obj_end(struct jw *w);     /* } */
void jw_arr(struct jw *w);         /* [ */
void jw_arr_end(struct jw *w);     /* ] */
void jw_key(struct jw *w, const char *k); /* k: plain ASCII, written as is */

/* Strings: valid UTF-8 is kept, '"', '\\' and control characters are
 * escaped, invalid bytes become '?'. NULL writes "". */
void jw_str(struct jw *w, const char *s);
void jw_int(struct jw *w, int64_t v);
void jw_uint(struct jw *w, uint64_t v);
void jw_bool(struct jw *w, int v);
void jw_null(struct jw *w);
/* A real rounded to `decimals` (3 for milliseconds, 6 for rates; at most
 * 9). NaN and infinities, which JSON cannot hold, are written as 0.0. */
void jw_real(struct jw *w, double v, int decimals);

/* The document (NUL-terminated, malloc'ed, the caller frees) and its
 * length, or NULL after any failure (the buffer is then freed). */
char *jw_finish(struct jw *w, size_t *len);

#endif /* COL_JW_H */
