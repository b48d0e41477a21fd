/*
 * exec_server.c - a server that execs, for integration/exec.sh: what the
 * preload buffered must reach the collector before an exec replaces the
 * process image, through every exec function, and neither a failed exec
 * nor a vfork() child's exec may disturb the buffer; nor may an exec
 * made with syscall(SYS_execve) or syscall(SYS_execveat) lose it.
 *
 *   exec_server --port PORT STEP...
 *
 * listens on 127.0.0.1:PORT (0: any), prints "listening on PORT", then
 * runs the steps in order:
 *
 *   serve:N    accepts N connections, one at a time, and answers each
 *              request with 200 "ok" (Connection: close)
 *   fail:FN    an exec through FN (execve, execv, execvp, execvpe, execl,
 *              execlp, execle, fexecve, execveat, or sys_execve and
 *              sys_execveat: syscall() with SYS_execve, SYS_execveat) that
 *              must fail: -1 and the errno glibc gives (ENOENT; EACCES for
 *              fexecve of /dev/null); prints how long it took, then goes on
 *   spawn      posix_spawn() of /bin/true, a vfork() child that execve()s
 *              /bin/true, and one whose execve() fails and that _exit()s
 *              127; waits for them (statuses 0, 0, 127)
 *   exec:FN    execs itself through FN, keeping the listening socket, with
 *              the steps left: the new image goes on with them
 *
 * and once the steps are done, answers requests until it is killed. The
 * state crosses the exec in the environment (EXEC_SERVER_STATE: the
 * listening fd and the steps left), since execl's arguments are fixed
 * here; the arguments are always "--resume", "a b" and "" after argv[0],
 * which the new image checks (an exec must pass them untouched). The
 * p-functions find the program by its name through PATH (its directory is
 * put first). Each image prints "image N pid P"; a step that goes wrong
 * prints "FAIL ..." and exits 1.
 */
#include "config.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char self[PATH_MAX];     /* this program's path */
static const char *self_name;   /* its last component, found through PATH */

static void fail(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static void serve_n(int ls, long n)
{
	for (long i = 0; i < n; i++) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				i--;
				continue;
			}
			fail("accept");
		}
		char head[4096];
		if (serve_read_head(fd, head, sizeof head) >= 0)
			serve_reply(fd, 200, "ok\n");
		close(fd);
	}
}

/* environ plus EXEC_SERVER_STATE=state, for the functions given an envp
 * (static: it must outlive the exec). */
static char **env_with(const char *state)
{
	static char *envp[512];
	static char var[8192];
	size_t n = 0;
	snprintf(var, sizeof var, "EXEC_SERVER_STATE=%s", state);
	for (char **e = environ; *e && n < 510; e++)
		if (strncmp(*e, "EXEC_SERVER_STATE=", 18) != 0)
			envp[n++] = *e;
	envp[n++] = var;
	envp[n] = NULL;
	return envp;
}

/* One exec through fn of path (name, for the p-functions) with `state`
 * handed over; returns only when it failed. */
static int exec_by(const char *fn, const char *path, const char *name, const char *state)
{
	char *argv[] = { (char *)name, "--resume", "a b", "", NULL };
	char **envp = env_with(state);
	if (setenv("EXEC_SERVER_STATE", state, 1) != 0)
		fail("setenv");
	if (strcmp(fn, "execve") == 0)
		return execve(path, argv, envp);
	if (strcmp(fn, "execv") == 0)
		return execv(path, argv);
	if (strcmp(fn, "execvp") == 0)
		return execvp(name, argv);
	if (strcmp(fn, "execvpe") == 0)
		return execvpe(name, argv, envp);
	if (strcmp(fn, "execl") == 0)
		return execl(path, name, "--resume", "a b", "", (char *)NULL);
	if (strcmp(fn, "execlp") == 0)
		return execlp(name, name, "--resume", "a b", "", (char *)NULL);
	if (strcmp(fn, "execle") == 0)
		return execle(path, name, "--resume", "a b", "", (char *)NULL, envp);
	if (strcmp(fn, "fexecve") == 0 || strcmp(fn, "fexecve-fail") == 0) {
		int fd = open(fn[7] ? "/dev/null" : path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail("open");
		int r = fexecve(fd, argv, envp);
		int e = errno;
		close(fd);
		errno = e;
		return r;
	}
	if (strcmp(fn, "execveat") == 0)
		return execveat(AT_FDCWD, path, argv, envp, 0);
	if (strcmp(fn, "sys_execve") == 0)
		return (int)syscall(SYS_execve, path, argv, envp);
	if (strcmp(fn, "sys_execveat") == 0)
		return (int)syscall(SYS_execveat, AT_FDCWD, path, argv, envp, 0);
	errno = EINVAL;
	fail(fn);
	return -1;
}

static void spawn_children(void)
{
	char *argv[] = { "true", NULL };
	pid_t pids[3];
	if (posix_spawn(&pids[0], "/bin/true", NULL, NULL, argv, environ) != 0)
		fail("posix_spawn");
	if ((pids[1] = vfork()) == 0) {
		execve("/bin/true", argv, environ);
		_exit(126);
	}
	if ((pids[2] = vfork()) == 0) {
		execve("/nonexistent/true", argv, environ);
		_exit(127);
	}
	static const int want[3] = { 0, 0, 127 };
	for (int i = 0; i < 3; i++) {
		int st;
		if (pids[i] < 0 || waitpid(pids[i], &st, 0) != pids[i])
			fail("vfork or waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != want[i]) {
			printf("FAIL child %d: status %#x\n", i, st);
			exit(1);
		}
	}
	printf("ok spawn: posix_spawn, vfork+execve, vfork+failed execve\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int ls, image = 0, first, port = 0;
	char state[8192];
	const char *resumed = getenv("EXEC_SERVER_STATE");
	char **steps;
	int nsteps;
	static char *split[256];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl <= 0)
		fail("readlink");
	self[sl] = '\0';
	self_name = strrchr(self, '/') + 1;
	if (argc >= 2 && strcmp(argv[1], "--resume") == 0) {
		/* state: "FD IMAGE STEP..." */
		if (argc != 4 || strcmp(argv[2], "a b") != 0 || argv[3][0] != '\0' || !resumed ||
		    strcmp(argv[0], self_name) != 0) {
			printf("FAIL the exec's arguments or environment changed\n");
			return 1;
		}
		snprintf(state, sizeof state, "%s", resumed);
		nsteps = 0;
		for (char *t = strtok(state, " "); t && nsteps < 256; t = strtok(NULL, " "))
			split[nsteps++] = t;
		if (nsteps < 2)
			return 1;
		ls = atoi(split[0]);
		image = atoi(split[1]);
		steps = split + 2;
		nsteps -= 2;
		first = 0;
	} else {
		if (argc < 3 || strcmp(argv[1], "--port") != 0) {
			fprintf(stderr, "usage: exec_server --port PORT STEP...\n");
			return 2;
		}
		port = atoi(argv[2]);
		ls = serve_listen("exec_server", port, 64, &port);
		if (ls < 0)
			return 1;
		/* the p-functions find us through PATH */
		char path[PATH_MAX + 4096];
		const char *old = getenv("PATH");
		snprintf(path, sizeof path, "%.*s:%s", (int)(self_name - 1 - self), self,
		         old ? old : "/usr/bin:/bin");
		setenv("PATH", path, 1);
		steps = argv + 3;
		nsteps = argc - 3;
		first = 1;
	}
	printf("image %d pid %d\n", image, (int)getpid());
	fflush(stdout);
	if (first)
		serve_announce(port);
	for (int i = 0; i < nsteps; i++) {
		const char *s = steps[i];
		if (strncmp(s, "serve:", 6) == 0) {
			serve_n(ls, atol(s + 6));
		} else if (strcmp(s, "spawn") == 0) {
			spawn_children();
		} else if (strncmp(s, "fail:", 5) == 0) {
			const char *fn = s + 5;
			int fex = strcmp(fn, "fexecve") == 0;
			int want = fex ? EACCES : ENOENT;
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			errno = 0;
			int r = exec_by(fex ? "fexecve-fail" : fn, "/nonexistent/exec_server",
			                "no-such-exec-server", resumed ? resumed : "x");
			int e = errno;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (r != -1 || e != want) {
				printf("FAIL %s returned %d errno %d (%s), expected -1 errno %d\n", fn, r,
				       e, strerror(e), want);
				return 1;
			}
			printf("ok %s failed with errno %d in %ld us\n", fn, e,
			       (long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));
			fflush(stdout);
		} else if (strncmp(s, "exec:", 5) == 0) {
			/* the new image's state: the socket, its number, the steps left */
			int fl = fcntl(ls, F_GETFD);
			if (fl < 0 || fcntl(ls, F_SETFD, fl & ~FD_CLOEXEC) != 0)
				fail("fcntl");
			static char next[8192]; /* steps[] may point into state */
			int n = snprintf(next, sizeof next, "%d %d", ls, image + 1);
			for (int j = i + 1; j < nsteps && n < (int)sizeof next; j++)
				n += snprintf(next + n, sizeof next - (size_t)n, " %s", steps[j]);
			exec_by(s + 5, self, self_name, next);
			fail(s);
		} else {
			printf("FAIL unknown step %s\n", s);
			return 2;
		}
	}
	for (;;)
		serve_n(ls, 1);
}
