/*
 * forklocks.c - a threaded host that forks while its threads run SQL
 * through libpq, run by integration/forklocks.sh with and without the
 * preload. Two threads call PQexecPrepared() without pause; the main
 * thread forks 200 times, and each child makes the same call once and
 * exits. Only the forking thread survives a fork, so a lock another
 * thread held at that moment stays taken in the child: a child whose call
 * does not return within a second (SIGALRM kills it) is a hang.
 *
 * The calls pass a NULL connection: libpq answers NULL at once, takes no
 * lock of its own and needs no server, while the preload's hook still
 * does all its work (the prepared statement's text looked up under its
 * lock, the statement normalised and appended to the event buffer).
 *
 * Prints "N forks, H children hung" and exits 0 when H is 0, else 1 at the
 * first hung child.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 200

static void *hammer(void *arg)
{
	for (;;)
		PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
	return arg;
}

int main(void)
{
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, hammer, NULL) != 0)
			return 2;
	usleep(10000);
	for (int i = 0; i < FORKS; i++) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 2;
		}
		if (p == 0) {
			alarm(1);
			PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
			_exit(0);
		}
		int status;
		if (waitpid(p, &status, 0) != p)
			return 2;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("%d forks, 1 children hung (status 0x%x)\n", i + 1, (unsigned)status);
			return 1;
		}
	}
	printf("%d forks, 0 children hung\n", FORKS);
	return 0;
}
