/*
 * floors.c - what two leaner designs of the preload's HTTP side would cost
 * at the least, on the benchmark's exchange (the request kaclient.py sends,
 * nginx's 5-line reply to it: scripts/bench.sh part 1).
 *
 * The instruction target of issue 2 (+5% on nginx's ~8,500 instructions per
 * request, so ~426) is measured on about the cheapest request a server can
 * answer. These are not parts of the preload: they are the smallest code
 * doing each job, to say which design could meet that target at all
 * (BENCHMARKS.md, "What the numbers say").
 *
 *   frame   find each head's end and read Content-Length/Transfer-Encoding
 *           with no validation at all: one pass of 16-byte blocks, looking
 *           only at lines whose first letter is c or t (SSE2): about
 *           the least that framing in the process can cost with plain
 *           code.
 *   frame32 the same 32 bytes at a time (AVX2).
 *   record  no parsing: each read/write call becomes a record (fd, op,
 *           length, clock) plus a copy of its first 256 bytes, appended
 *           to a process buffer under a spinlock, for a collector to parse.
 *           Those copies would carry query strings, cookies and
 *           Authorization headers out of the process, which SPEC and the
 *           README promise never happens: a floor, not a design.
 *
 * Not part of `make check`; scripts/bench.sh part 1 runs all three and
 * prints a row. By hand:
 *
 *   gcc -O2 tests/bench/floors.c -o floors
 *   for n in 1000 2000; do
 *       valgrind --tool=callgrind --callgrind-out-file=cg.$n ./floors frame $n
 *   done
 *
 * then (totals of cg.2000 - totals of cg.1000) / 1000 is the cost of one
 * exchange (request and response), start-up and the loop's few
 * instructions included. `floors frame 1` prints 218, what the scan found
 * (a broken scan shows). Measured on 2026-12-06: frame 465, frame32 380,
 * record 240 (three calls: the read, the head, the body). For comparison,
 * shared/http.c's validating parsers cost 902 on the same exchange, and the
 * whole preload about 1,700 (hooks, bookkeeping, the event and the
 * thread's +191 included).
 */
#include <emmintrin.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char req[] =
	"GET /ok HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";
static const char head[] =
	"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 09:47:35 GMT\r\n"
	"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n";

static inline uint64_t load8(const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

#define LOWER8 0x2020202020202020ull

/*
 * The lines after the LFs at s[b + k] for each bit k of m: a blank one ends
 * the head (returns 1, *end past its LF, 0 when that LF is past n); a
 * Content-Length or Transfer-Encoding one is read. Returns 0 to go on.
 */
__attribute__((always_inline)) static inline int read_lines(const unsigned char *s, size_t n,
                                                            size_t b, unsigned m, size_t *end,
                                                            long *cl, int *te)
{
	while (m) {
		size_t j = b + (size_t)__builtin_ctz(m) + 1;
		m &= m - 1;
		if (s[j] == '\r') {
			*end = j + 2 <= n ? j + 2 : 0;
			return 1;
		}
		if ((load8(s + j) | LOWER8) == load8((const unsigned char *)"content-") &&
		    (load8(s + j + 7) | (LOWER8 >> 8)) == load8((const unsigned char *)"-length:")) {
			const unsigned char *p = s + j + 15;
			long v10 = 0;
			while (*p == ' ')
				p++;
			while ((unsigned)(*p - '0') < 10)
				v10 = v10 * 10 + (*p++ - '0');
			*cl = v10;
		} else if ((load8(s + j) | LOWER8) == load8((const unsigned char *)"transfer")) {
			*te = 1;
		}
	}
	return 0;
}

/*
 * The head in s[0..n) (readable up to n + 16): returns the length of the
 * head through its blank line, 0 if it has none; *cl is its Content-Length
 * (-1 for none), *te 1 when it has a Transfer-Encoding.
 */
__attribute__((noinline)) static size_t frame(const unsigned char *s, size_t n, long *cl,
                                              int *te)
{
	const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
	const __m128i lower = _mm_set1_epi8(0x20), c = _mm_set1_epi8('c'), t = _mm_set1_epi8('t');
	*cl = -1;
	*te = 0;
	for (size_t b = 0; b < n; b += 16) {
		/* bit j: s[b+j] is LF and the line after it starts with c, t or CR */
		__m128i v = _mm_loadu_si128((const __m128i *)(s + b));
		__m128i next = _mm_loadu_si128((const __m128i *)(s + b + 1));
		__m128i nl = _mm_or_si128(next, lower);
		__m128i want = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(nl, c), _mm_cmpeq_epi8(nl, t)),
		                            _mm_cmpeq_epi8(next, cr));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(v, lf), want));
		size_t end;
		if (read_lines(s, n, b, m, &end, cl, te))
			return end;
	}
	return 0;
}

/* frame() 32 bytes at a time with AVX2 (the preload would need to choose
 * it at run time: every x86-64 has SSE2, not every one AVX2). s must be
 * readable up to n + 32. */
__attribute__((noinline, target("avx2"))) static size_t frame32(const unsigned char *s, size_t n,
                                                               long *cl, int *te)
{
	const __m256i lf = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r');
	const __m256i lower = _mm256_set1_epi8(0x20), c = _mm256_set1_epi8('c'),
	              t = _mm256_set1_epi8('t');
	*cl = -1;
	*te = 0;
	for (size_t b = 0; b < n; b += 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(s + b));
		__m256i next = _mm256_loadu_si256((const __m256i *)(s + b + 1));
		__m256i nl = _mm256_or_si256(next, lower);
		__m256i want = _mm256_or_si256(
			_mm256_or_si256(_mm256_cmpeq_epi8(nl, c), _mm256_cmpeq_epi8(nl, t)),
			_mm256_cmpeq_epi8(next, cr));
		unsigned m = (unsigned)_mm256_movemask_epi8(
			_mm256_and_si256(_mm256_cmpeq_epi8(v, lf), want));
		size_t end;
		if (read_lines(s, n, b, m, &end, cl, te))
			return end;
	}
	return 0;
}

/* The recorder's buffer: a stand-in for the preload's event buffer. */
static unsigned char ring[1 << 20];
static size_t ring_pos;
static int ring_lock;

struct call_rec {
	uint32_t fd;
	uint16_t op, copied;
	uint64_t len, t_ns;
};

__attribute__((noinline)) static void record(int fd, int op, const void *buf, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	size_t cp = len < 256 ? len : 256;
	while (__atomic_exchange_n(&ring_lock, 1, __ATOMIC_ACQUIRE))
		;
	if (ring_pos + sizeof(struct call_rec) + 256 > sizeof ring)
		ring_pos = 0;
	struct call_rec *r = (struct call_rec *)(ring + ring_pos);
	r->fd = (uint32_t)fd;
	r->op = (uint16_t)op;
	r->copied = (uint16_t)cp;
	r->len = len;
	r->t_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	memcpy(r + 1, buf, cp);
	ring_pos += (sizeof *r + cp + 7) & ~(size_t)7;
	__atomic_store_n(&ring_lock, 0, __ATOMIC_RELEASE);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "frame") && strcmp(argv[1], "frame32") &&
	                  strcmp(argv[1], "record"))) {
		fprintf(stderr, "usage: floors frame|frame32|record ITERATIONS\n");
		return 2;
	}
	int framing = strcmp(argv[1], "record") != 0;
	size_t (*scan)(const unsigned char *, size_t, long *, int *) =
		strcmp(argv[1], "frame32") == 0 ? frame32 : frame;
	long iters = atol(argv[2]);
	/* zero padding past each head: the scans load up to 32 bytes past its end */
	static unsigned char rq[256], rs[256];
	memcpy(rq, req, sizeof req - 1);
	memcpy(rs, head, sizeof head - 1);
	long sum = 0;
	for (long i = 0; i < iters; i++) {
		if (framing) {
			long cl;
			int te;
			sum += (long)scan(rq, sizeof req - 1, &cl, &te) + cl + te;
			sum += (long)scan(rs, sizeof head - 1, &cl, &te) + cl + te;
		} else {
			record(7, 1, rq, sizeof req - 1);
			record(7, 2, rs, sizeof head - 1);
			record(7, 2, "ok\n", 3);
		}
	}
	/* what frame() found, so a broken scan shows: 69 + (-1) + 147 + 3 = 218
	 * (the two heads' lengths and Content-Lengths) */
	printf("%s: %ld\n", argv[1], framing ? sum / (iters ? iters : 1) : (long)ring_pos);
	return 0;
}
