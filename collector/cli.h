/*
 * cli.h - subcommands of `apiprof` that live in their own files. Each takes
 * the arguments after `apiprof` (argv[0] is the subcommand's name) and
 * returns the process's exit code.
 */
#ifndef COL_CLI_H
#define COL_CLI_H

int cli_aggregate(int argc, char **argv);

#endif /* COL_CLI_H */
