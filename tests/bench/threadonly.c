/*
 * threadonly.c - a control for the callgrind benchmark: a preload that does
 * nothing but start one thread that sleeps forever.
 *
 * glibc takes shorter paths while a process has a single thread: no
 * cancellation bookkeeping around recv/writev/epoll_wait, no locking in
 * malloc/free. libapiprof.so starts a shipper thread in every process that
 * serves HTTP, so part of what it adds to nginx's instructions per request
 * is only this; scripts/bench.sh measures it on its own with this library.
 *
 * Build: gcc -O2 -shared -fPIC -o libthreadonly.so threadonly.c -lpthread
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((constructor)) static void threadonly_start(void)
{
	/* Like the preload's shipper: every signal blocked, so the host's
	 * handlers never run here. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	if (pthread_create(&t, NULL, sleeper, NULL) == 0)
		pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}
