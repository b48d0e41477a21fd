/*
 * twocopies - two copies of one client library in one process, for
 * tests/integration/twosqlite.sh and twopq.sh (helpers in twolib.sh).
 *
 * DIR holds libmodA.so and libmodB.so (tests/servers/twosqlite_mod.c or
 * twopq_mod.c), each linked against its own renamed copy of the library
 * (libcopyA.so.0, libcopyB.so.0). Both are dlopen()ed RTLD_LOCAL, A first,
 * so copy A is the first one in the link map and neither is in the global
 * scope. Each module exports twocopies_run(ARG, out, cap), which runs its
 * statements (ARG: a directory for its database, or a conninfo) and writes
 * one line, and may export twocopies_end(), called before it is unloaded.
 *
 * Usage:
 *   twocopies DIR ARG            runs module B, then A, then B and A again
 *                                (B first: its statements run before copy A
 *                                has done anything); then dlcloses module B
 *                                (and with it copy B), dlopens a fourth copy
 *                                (libcopyD.so.0, unused: it takes the freed
 *                                addresses) and module C (copy C), and runs
 *                                C. Prints each run's line; exit 0 when all
 *                                ran
 *   twocopies DIR ARG --port N   an HTTP/1.1 server on 127.0.0.1:N (0: any free
 *                            port), one connection at a time, printing
 *                            "listening on PORT": GET /a runs module A,
 *                            GET /b module B, GET /ab B then A (200 with the
 *                            lines; 500 when a run failed); anything else 404
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

typedef int (*run_fn)(const char *arg, char *out, size_t cap);

static run_fn run_a, run_b;
static const char *arg;

static void *open_local(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "twocopies: %s\n", dlerror());
		exit(2);
	}
	return h;
}

static run_fn load(const char *dir, const char *name, void **handle)
{
	void *h = open_local(dir, name);
	if (handle)
		*handle = h;
	run_fn f = (run_fn)dlsym(h, "twocopies_run");
	if (!f) {
		fprintf(stderr, "twocopies: %s: no twocopies_run\n", name);
		exit(2);
	}
	return f;
}

/* Appends one run's line to out; 0 when it ran as expected. */
static int run(run_fn f, char *out, size_t cap)
{
	char line[1024];
	int rc = f(arg, line, sizeof line);
	size_t n = strlen(out);
	snprintf(out + n, cap - n, "%s\n", line);
	return rc;
}

static void respond(int fd, int status, const char *body)
{
	if (serve_reply(fd, status, body) < 0)
		perror("twocopies: write");
}

static void serve(int fd, void *unused)
{
	(void)unused;
	char req[8192];
	if (serve_read_head(fd, req, sizeof req) < 0)
		return;
	char body[4096] = "";
	int bad = 0;
	if (strncmp(req, "GET /a ", 7) == 0) {
		bad = run(run_a, body, sizeof body);
	} else if (strncmp(req, "GET /b ", 7) == 0) {
		bad = run(run_b, body, sizeof body);
	} else if (strncmp(req, "GET /ab ", 8) == 0) {
		bad = run(run_b, body, sizeof body);
		bad |= run(run_a, body, sizeof body);
	} else {
		respond(fd, 404, "not found\n");
		return;
	}
	respond(fd, bad ? 500 : 200, body);
}

int main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--port") == 0)) {
		fprintf(stderr, "usage: twocopies DIR ARG [--port N]\n");
		return 2;
	}
	arg = argv[2];
	void *hb;
	run_a = load(argv[1], "libmodA.so", NULL);
	run_b = load(argv[1], "libmodB.so", &hb);

	if (argc == 3) {
		char out[8192] = "";
		int bad = run(run_b, out, sizeof out);
		bad |= run(run_a, out, sizeof out);
		bad |= run(run_b, out, sizeof out);
		bad |= run(run_a, out, sizeof out);
		/* Module B and copy B go; another copy and module C come, in
		 * the addresses they left: each must be resolved afresh. */
		void (*end)(void) = (void (*)(void))dlsym(hb, "twocopies_end");
		if (end)
			end(); /* the library's own state, freed before it goes */
		if (dlclose(hb) != 0) {
			fprintf(stderr, "twocopies: dlclose: %s\n", dlerror());
			return 2;
		}
		open_local(argv[1], "libcopyD.so.0");
		bad |= run(load(argv[1], "libmodC.so", NULL), out, sizeof out);
		fputs(out, stdout);
		return bad ? 1 : 0;
	}

	serve_run("twocopies", atoi(argv[4]), 16, SERVE_ONE_AT_A_TIME, serve, NULL);
	return 1;
}
