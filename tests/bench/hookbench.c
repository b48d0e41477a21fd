/*
 * hookbench.c - what a hooked call costs on a descriptor the preload does
 * not follow (the common case: files, pipes, the host's own client sockets).
 *
 * usage: hookbench [--fake PATH/libfakeio.so] [--iters N] [--rounds R]
 *        hookbench --clock
 *
 * Each measurement times the same call two ways in one process, in
 * alternating rounds:
 *   base    straight to the function the preload would call next, resolved
 *           with dlsym() on that object's handle (libc, or libfakeio.so);
 *   hooked  through the symbol the program sees (`read`, resolved like any
 *           call from the host: to libapiprof.so's hook when it is preloaded,
 *           else to the same function as `base`).
 * Both are indirect calls through a pointer the compiler cannot see
 * through, so without the preload the two columns agree (that run is the
 * noise floor) and with it, hooked - base is what the hook adds.
 *
 * Operations: read(fd, buf, 0) and write(fd, buf, 1) on /dev/null and
 * recv(fd, buf, 1, 0) on /dev/null (not a socket: ENOTSOCK). With --fake
 * (LD_PRELOAD=libapiprof.so:libfakeio.so) the same calls go to FAKEIO_FD,
 * which libfakeio.so answers without a system call, so the figure is not
 * buried in the kernel's variance.
 *
 * Each is measured twice: with the preload's fd table still empty (no
 * accepted socket yet: the look-up stops at the top-level pointer), then
 * after accepting a loopback connection (the table chunk holding the fd
 * exists, as in a server that has accepted: the look-up reads the entry).
 *
 * Output: one line per case, `key=value` words, e.g.
 *   hookbench op=read target=fake table=mapped base_ns=1.62 hooked_ns=2.71 added_ns=1.09
 * where added_ns is the median over rounds of (hooked - base) in one round.
 *
 * --clock prints what one clock_gettime(CLOCK_MONOTONIC) costs here (the
 * preload reads the clock twice per request; under callgrind the vDSO is
 * not used, so instruction counts do not show this cost):
 *   hookbench op=clock_gettime ns=24.10
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fakeio.h"

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);

enum op { OP_READ, OP_WRITE, OP_RECV, OP_N };
static const char *const op_name[OP_N] = { "read", "write", "recv" };

/* Function pointers read through volatile so that the compiler cannot
 * turn an indirect call into a direct one (and so treat the two paths
 * differently). */
static void *volatile fn_base[OP_N], *volatile fn_hooked[OP_N];
static volatile long sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ns per call of `iters` calls of fn. */
static double run(enum op op, void *fn, int fd, long iters)
{
	char buf[8] = { 0 };
	long acc = 0;
	int saved = errno;
	double t0 = now_ns();
	switch (op) {
	case OP_READ: {
		read_fn f = (read_fn)fn;
		for (long i = 0; i < iters; i++)
			acc += f(fd, buf, 0);
		break;
	}
	case OP_WRITE: {
		write_fn f = (write_fn)fn;
		for (long i = 0; i < iters; i++)
			acc += f(fd, buf, 1);
		break;
	}
	case OP_RECV: {
		recv_fn f = (recv_fn)fn;
		for (long i = 0; i < iters; i++)
			acc += f(fd, buf, 1, 0);
		break;
	}
	default:
		break;
	}
	double t = now_ns() - t0;
	errno = saved;
	sink += acc;
	return t / (double)iters;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void measure(enum op op, int fd, const char *target, const char *table,
                    long iters, int rounds)
{
	double b[rounds], h[rounds], d[rounds];
	/* Warm both paths (lazy binding, caches) before timing. */
	run(op, fn_base[op], fd, iters / 10 + 1);
	run(op, fn_hooked[op], fd, iters / 10 + 1);
	for (int r = 0; r < rounds; r++) {
		/* Alternate which goes first so drift in the machine's speed
		 * does not favour one side. */
		if (r % 2) {
			h[r] = run(op, fn_hooked[op], fd, iters);
			b[r] = run(op, fn_base[op], fd, iters);
		} else {
			b[r] = run(op, fn_base[op], fd, iters);
			h[r] = run(op, fn_hooked[op], fd, iters);
		}
		d[r] = h[r] - b[r];
	}
	double mb = median(b, rounds), mh = median(h, rounds), md = median(d, rounds);
	printf("hookbench op=%s target=%s table=%s base_ns=%.2f hooked_ns=%.2f added_ns=%.2f"
	       " iters=%ld rounds=%d\n",
	       op_name[op], target, table, mb, mh, md, iters, rounds);
	fflush(stdout);
}

static int find_preload(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "libapiprof"))
		*(const char **)data = info->dlpi_name;
	return 0;
}

/* Accepts one loopback connection and keeps both ends open: the preload
 * then follows the accepted fd, and its table chunk for low fds exists. */
static int accept_one(void)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	return accept(l, NULL, NULL) < 0 ? -1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: hookbench [--fake PATH/libfakeio.so] [--iters N] [--rounds R]\n"
	                "       hookbench --clock\n");
	exit(2);
}

/* Median over rounds of the ns per clock_gettime(CLOCK_MONOTONIC). */
static int clock_cost(void)
{
	enum { ROUNDS = 15, ITERS = 1000000 };
	double v[ROUNDS];
	struct timespec ts;
	for (int r = 0; r < ROUNDS; r++) {
		long acc = 0;
		double t0 = now_ns();
		for (int i = 0; i < ITERS; i++) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			acc += ts.tv_nsec;
		}
		v[r] = (now_ns() - t0) / ITERS;
		sink += acc;
	}
	printf("hookbench op=clock_gettime ns=%.2f\n", median(v, ROUNDS));
	return 0;
}

int main(int argc, char **argv)
{
	const char *fake = NULL;
	long iters = 0;
	int rounds = 15;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--fake") == 0 && i + 1 < argc)
			fake = argv[++i];
		else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--clock") == 0)
			return clock_cost();
		else
			usage();
	}
	if (rounds < 1 || rounds > 1000)
		usage();
	if (iters <= 0)
		iters = fake ? 2000000 : 100000;

	/* The object the preload passes calls on to. */
	void *next = fake ? dlopen(fake, RTLD_LAZY | RTLD_NOLOAD)
	                  : dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	if (!next) {
		fprintf(stderr, "hookbench: %s is not loaded (%s)%s\n", fake ? fake : "libc.so.6",
		        dlerror(), fake ? ": run with LD_PRELOAD=[libapiprof.so:]libfakeio.so" : "");
		return 1;
	}
	const char *names[OP_N] = { "read", "write", "recv" };
	for (int op = 0; op < OP_N; op++) {
		fn_base[op] = dlsym(next, names[op]);
		/* What a call from this program reaches: the first definition
		 * in the global scope (the preload's hook when preloaded). */
		fn_hooked[op] = dlsym(RTLD_DEFAULT, names[op]);
		if (!fn_base[op] || !fn_hooked[op]) {
			fprintf(stderr, "hookbench: cannot resolve %s\n", names[op]);
			return 1;
		}
	}
	const char *preload = NULL;
	dl_iterate_phdr(find_preload, &preload);
	printf("hookbench preload=%s target=%s hooked_is_base=%s\n",
	       preload ? preload : "none", fake ? "fake" : "devnull",
	       fn_hooked[OP_READ] == fn_base[OP_READ] ? "yes" : "no");

	int fd = FAKEIO_FD;
	if (!fake) {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0) {
			perror("hookbench: /dev/null");
			return 1;
		}
	}
	const char *target = fake ? "fake" : "devnull";
	for (int op = 0; op < OP_N; op++)
		measure((enum op)op, fd, target, "empty", iters, rounds);
	if (accept_one() < 0) {
		perror("hookbench: loopback accept");
		return 1;
	}
	for (int op = 0; op < OP_N; op++)
		measure((enum op)op, fd, target, "mapped", iters, rounds);
	return 0;
}
