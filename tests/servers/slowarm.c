/*
 * slowarm.c - a test interposer on timer_settime, preloaded before
 * libapiprof.so by integration/profile.sh (part 2d). The first call that
 * arms a timer once the file named by $SLOWARM_FLAG exists removes the
 * file and sleeps $SLOWARM_MS milliseconds (default 1500) before arming:
 * the test acts between a profile's start marking its session live and
 * its timer running (profile.c, pl_prof_begin). Other calls (disarming,
 * or with no flag file) pass straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int timer_settime(timer_t t, int flags, const struct itimerspec *nv, struct itimerspec *ov)
{
	static int (*real)(timer_t, int, const struct itimerspec *, struct itimerspec *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "timer_settime");
	const char *flag = getenv("SLOWARM_FLAG");
	if (flag && nv && (nv->it_value.tv_sec || nv->it_value.tv_nsec) && unlink(flag) == 0) {
		const char *ms = getenv("SLOWARM_MS");
		long n = ms ? strtol(ms, NULL, 10) : 1500;
		struct timespec ts = { n / 1000, (n % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return real(t, flags, nv, ov);
}
