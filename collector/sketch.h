/*
 * sketch.h - a DDSketch of durations in milliseconds: quantiles with a
 * bounded relative error, mergeable, serialisable.
 *
 * Values fall into logarithmically spaced buckets: bucket i holds
 * (gamma^(i-1), gamma^i] with gamma = (1 + a) / (1 - a), and answers with
 * 2 gamma^i / (gamma + 1), which is within a relative error a = 0.99 % of
 * every value in the bucket (Masson, Rim, Lee: "DDSketch", VLDB 2019). So
 * col_sketch_quantile(q) is within 0.99 % of the exact quantile, the value of
 * rank floor(q * (n - 1)) (0-based) in sorted order, for values in
 * [COL_SKETCH_MIN_MS, COL_SKETCH_MAX_MS]. Below the range, values count in a
 * "zero" bucket answered by the exact minimum; above it, in the top bucket
 * (the answer is then clamped to the exact maximum). Answers are always
 * within [min, max], and q = 0 and q = 1 give the exact min and max.
 *
 * Memory: one u64 per bucket between the smallest and largest value seen,
 * at most COL_SKETCH_MAX_BINS (about 11 KiB); typically a few hundred
 * bytes to 3 KiB. Merging adds bucket counts, so the sketch of a union is
 * the merge of the sketches (exactly, not approximately).
 *
 * A struct col_sketch is plain data: a zeroed one is an empty sketch, and
 * it may be embedded in other structs. Its fields are private. Not
 * thread-safe: callers serialise access to one sketch.
 */
#ifndef COL_SKETCH_H
#define COL_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define COL_SKETCH_ALPHA 0.0099   /* relative accuracy */
#define COL_SKETCH_MIN_MS 1e-3    /* 1 us: smaller values go to the zero bucket */
#define COL_SKETCH_MAX_MS 1e9     /* about 11.6 days */
#define COL_SKETCH_MAX_BINS 1400  /* buckets spanning MIN..MAX */

struct col_sketch {
	uint64_t count;   /* every value added, zero bucket included */
	uint64_t zero;    /* values below COL_SKETCH_MIN_MS */
	double min, max;  /* exact; meaningless while count == 0 */
	int32_t lo;       /* bucket index of bins[0] */
	uint32_t nbins;   /* buckets allocated */
	uint64_t *bins;   /* owned */
};

/* Makes s empty without freeing (s must be zeroed or released before). */
void col_sketch_init(struct col_sketch *s);
/* Frees what s holds and leaves it empty; safe on an empty sketch. */
void col_sketch_release(struct col_sketch *s);

/* Heap versions: _new returns an empty sketch or NULL (out of memory);
 * _free(NULL) is a no-op. */
struct col_sketch *col_sketch_new(void);
void col_sketch_free(struct col_sketch *s);

/* Adds one value (milliseconds; negative and NaN count as 0). Returns 0, or
 * -ENOMEM with s unchanged. */
int col_sketch_add(struct col_sketch *s, double v);

/* Adds every value of src to dst. Returns 0, or -ENOMEM with dst unchanged. */
int col_sketch_merge(struct col_sketch *dst, const struct col_sketch *src);

/* Makes dst (released or zeroed) a copy of src. 0 or -ENOMEM (dst empty). */
int col_sketch_copy(struct col_sketch *dst, const struct col_sketch *src);

uint64_t col_sketch_count(const struct col_sketch *s);

/* The q-quantile (q clamped to [0, 1]); 0 for an empty sketch. */
double col_sketch_quantile(const struct col_sketch *s, double q);

/* n quantiles in one pass: qs must be ascending; out[i] gets quantile qs[i]. */
void col_sketch_quantiles(const struct col_sketch *s, const double *qs,
                          double *out, size_t n);

/* Serialises s into a malloc'ed blob (*out, *len; caller frees). Format
 * version 1, little-endian, portable: u8 version, u8 flags (0), varint
 * count, varint zero, f64 min, f64 max, varint number of non-empty buckets,
 * then per bucket a zigzag varint index delta and a varint count. Returns 0
 * or -ENOMEM. */
int col_sketch_encode(const struct col_sketch *s, uint8_t **out, size_t *len);

/* Adds the sketch encoded in blob[0..len) to dst. Returns 0, -EINVAL for a
 * blob that is not a valid version-1 sketch (dst unchanged), or -ENOMEM. */
int col_sketch_merge_encoded(struct col_sketch *dst, const uint8_t *blob, size_t len);

#endif /* COL_SKETCH_H */
