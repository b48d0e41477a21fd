/*
 * ap_copy.h - copies of short strings without a call to memcpy.
 *
 * The preload copies a method, a target or a path for every request, and
 * glibc's memcpy costs about 17 instructions a call there, as much as the
 * rest of a field's work. These do it in one or two fixed-size moves,
 * which the compiler turns into plain loads and stores. Header-only, for
 * inlining into the hot paths of shared/ and preload/.
 */
#ifndef AP_COPY_H
#define AP_COPY_H

#include <stdint.h>
#include <string.h>

/*
 * Copies src[0..len) to dst when the caller guarantees slack on both sides:
 * `avail` bytes readable at src (avail >= len), and room for 32 bytes at
 * dst. Short strings, the usual case, go as one 16- or 32-byte move that
 * may read and write past len; the bytes past dst[len] are then garbage.
 */
static inline void ap_copy_padded(void *dst, const void *src, size_t len, size_t avail)
{
	if (len <= 16 && avail >= 16)
		memcpy(dst, src, 16);
	else if (len <= 32 && avail >= 32)
		memcpy(dst, src, 32);
	else
		memcpy(dst, src, len);
}

/* Two possibly overlapping moves of a T: the first and the last sizeof(T)
 * bytes, covering any length from sizeof(T) to twice it. */
#define AP_COPY_ENDS_(T, dst, src, n) \
	do { \
		T a_, b_; \
		memcpy(&a_, (src), sizeof a_); \
		memcpy(&b_, (src) + (n) - sizeof b_, sizeof b_); \
		memcpy((dst), &a_, sizeof a_); \
		memcpy((dst) + (n) - sizeof b_, &b_, sizeof b_); \
	} while (0)

/*
 * Copies exactly src[0..n) to dst[0..n), touching no byte outside either
 * (for a destination with no slack, such as the next record of a buffer).
 * n == 0 reads nothing: src may be NULL then.
 */
static inline void ap_copy_exact(void *dst_, const void *src_, size_t n)
{
	struct ap_w128 { uint64_t w[2]; };
	unsigned char *dst = dst_;
	const unsigned char *src = src_;
	if (n < 8) {
		if (n >= 4)
			AP_COPY_ENDS_(uint32_t, dst, src, n);
		else if (n >= 2)
			AP_COPY_ENDS_(uint16_t, dst, src, n);
		else if (n)
			dst[0] = src[0];
	} else if (n <= 16) {
		AP_COPY_ENDS_(uint64_t, dst, src, n);
	} else if (n <= 32) {
		AP_COPY_ENDS_(struct ap_w128, dst, src, n);
	} else {
		memcpy(dst, src, n);
	}
}

#endif /* AP_COPY_H */
