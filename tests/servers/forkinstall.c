/*
 * forkinstall.c - a test interposer on sigaction, preloaded before
 * libapiprof.so by integration/crash.sh (part 6). With $FORKINSTALL_OUT
 * set, the first time the preload installs its crash handler for SIGABRT
 * (a handler whose code lies in libapiprof.so; SIGABRT is the second of
 * its five signals, after SIGSEGV), a thread of this library's own forks
 * while the installing thread waits for it: the fork lands inside the
 * install, every time, with SIGSEGV's handler in place and the other four
 * not yet. The child writes the "SigCgt:" line of its /proc/self/status
 * to $FORKINSTALL_OUT (under a temporary name, then renamed) and calls
 * _exit(0), using only async-signal-safe calls (it is the child of a
 * threaded process); the forking thread reaps it before the install goes
 * on. Every other call passes straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *out;
static char tmp[4096];

/* The child's SigCgt line, to `out`. */
static void child_report(void)
{
	static char buf[8192];
	size_t len = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	char *line = strstr(buf, "\nSigCgt:");
	if (!line)
		return;
	line++;
	char *end = strchr(line, '\n');
	size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
	int o = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o < 0)
		return;
	int ok = write(o, line, n) == (ssize_t)n;
	close(o);
	if (ok)
		rename(tmp, out);
}

static void *forker(void *unused)
{
	(void)unused;
	pid_t pid = fork();
	if (pid == 0) {
		child_report();
		_exit(0);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	return NULL;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	static int (*real)(int, const struct sigaction *, struct sigaction *);
	static int done;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "sigaction");
	Dl_info info;
	if (sig == SIGABRT && act && (act->sa_flags & SA_SIGINFO) && !done &&
	    (out = getenv("FORKINSTALL_OUT")) != NULL &&
	    dladdr((void *)act->sa_sigaction, &info) && info.dli_fname &&
	    strstr(info.dli_fname, "libapiprof")) {
		done = 1;
		snprintf(tmp, sizeof tmp, "%s.tmp", out);
		pthread_t t;
		if (pthread_create(&t, NULL, forker, NULL) == 0)
			pthread_join(t, NULL);
	}
	return real(sig, act, old);
}
