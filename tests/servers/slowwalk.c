/*
 * slowwalk.c - a test interposer on dl_iterate_phdr, preloaded before
 * libapiprof.so by integration/forklocks.sh: each walk of the loaded
 * objects waits SLOWWALK_MS milliseconds (environment, default 0) at its
 * first object, still inside the real dl_iterate_phdr and so holding the
 * loader's lock. That turns the few microseconds in which a fork can catch
 * another thread mid-walk into a window a test can hit every time. With
 * SLOWWALK_MAIN=1 only the main thread's walks wait (not the shipper's).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct walk {
	int (*cb)(struct dl_phdr_info *, size_t, void *);
	void *arg;
	int first;
};

static long delay_ms(void)
{
	const char *s = getenv("SLOWWALK_MS"), *m = getenv("SLOWWALK_MAIN");
	if (m && m[0] == '1' && syscall(SYS_gettid) != getpid())
		return 0;
	return s ? atol(s) : 0;
}

static int slow_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct walk *w = arg;
	if (w->first) {
		w->first = 0;
		long ms = delay_ms();
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		while (ms > 0 && nanosleep(&ts, &ts) != 0)
			;
	}
	return w->cb(info, size, w->arg);
}

int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
	static int (*real)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "dl_iterate_phdr");
	struct walk w = { cb, arg, 1 };
	return real(slow_cb, &w);
}
