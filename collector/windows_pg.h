/*
 * windows_pg.h - publishing a collector's closed summary windows and
 * regressions to a fleet's PostgreSQL database (tables window_summaries and
 * regressions, schema version 5, created by store_pg.c's migrations), so
 * that /api/v1/summaries and /api/v1/regressions of any collector answer
 * for every host (query_pg.c reads them).
 *
 * The local SQLite window file (windows.c) stays the source: it drives
 * regression detection and the webhook, and a window is published after it
 * is committed there. What was published is known from the database itself
 * (this host's newest window start and regression id there), so a window
 * written while PostgreSQL was away, or before a restart, is published at
 * the next attempt; inserts ignore rows already present, so publishing
 * twice is harmless. Webhook outcomes that change after publication are
 * copied on the next run.
 *
 * Not thread-safe but for col_winpub_webhook_changed(): windows.c calls the
 * others under its read_mu (the lock of the SQLite reader connection it
 * passes in; the publisher only reads SQLite).
 */
#ifndef COL_WINDOWS_PG_H
#define COL_WINDOWS_PG_H

#include <stdint.h>

struct sqlite3;
struct col_winpub;

/* A publisher for host's rows into the database at uri (a postgresql://
 * URI). Connects lazily, at the first col_winpub_run(). NULL when out of
 * memory. */
struct col_winpub *col_winpub_new(const char *uri, const char *host);

/* Copies this host's summaries and regressions of db (the windows' SQLite
 * file) that the database lacks, and pending webhook outcomes, in one
 * transaction. 0 (nothing to do included), -EAGAIN while backing off after
 * a failure (5 s), or -EIO (logged once per outage; the connection is
 * dropped and the next run after the backoff tries again). */
int col_winpub_run(struct col_winpub *p, struct sqlite3 *db);

/* A regression's webhook status changed in db: the next run copies it.
 * Any thread. */
void col_winpub_webhook_changed(struct col_winpub *p);

/* Closes the connection and frees p. NULL is a no-op. */
void col_winpub_free(struct col_winpub *p);

#endif /* COL_WINDOWS_PG_H */
