/*
 * cli.h - what the `apiprof` subcommands share (cli.c): option matching,
 * --since, and one HTTP exchange with the collector; and the subcommands
 * that live in files of their own. Exit codes: CLI_*. Not thread-safe (a
 * command-line program); strings are the caller's.
 */
#ifndef COL_CLI_H
#define COL_CLI_H

#include <stddef.h>
#include <stdio.h>

#define CLI_DEFAULT_URL "http://127.0.0.1:9747"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2, CLI_UNREACHABLE = 3 };

/* An answer's body, NUL-terminated (data NULL when empty); free(data). */
struct cli_buf {
	char *data;
	size_t len;
	int too_big;
};

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]. Returns 1 and sets
 * *val (advancing *i past a separate value), 0 when argv[*i] is another
 * option, -1 when the value is missing (message printed). */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* How to name an argument a subcommand does not take, for its message:
 * "unknown option" when it looks like one ("-x", "--frobnicate"), else
 * "unexpected argument". Never NULL. */
const char *cli_bad_arg_kind(const char *arg);

/* Turns --since into the API's `since`: a duration ("90s", "15m", "2h",
 * "1.5d", "1w", "500ms") becomes the RFC 3339 UTC time that long ago; an
 * RFC 3339 time passes through. Returns 0, or -1 with err filled. */
int cli_since(const char *in, char *out, size_t outlen, char *err, size_t errlen);

/* Sends `method` ("GET" or "POST", an empty body) to url, with
 * $APIPROF_TOKEN as the bearer token when set, into *b; *status is the HTTP
 * status. Returns CLI_OK, or CLI_UNREACHABLE / CLI_ERROR with a message
 * naming base printed on stderr. curl_global_init() must have been called. */
int cli_http(const char *method, const char *base, const char *url, struct cli_buf *b,
             long *status);

/* The collector's URL: --url, else $APIPROF_URL, else CLI_DEFAULT_URL. */
const char *cli_base_url(const char *opt);

/* `apiprof check` (cli_check.c) and `apiprof aggregate` (cli_aggregate.c). */
int cli_check(int argc, char **argv);
int cli_aggregate(int argc, char **argv);
void cli_usage_check(FILE *out);

#endif /* COL_CLI_H */
