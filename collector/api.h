/*
 * api.h - the HTTP API (SPEC section 5) on libmicrohttpd, JSON by jansson.
 *
 * Handlers run on libmicrohttpd's threads (one per connection, at most
 * COL_API_MAX_CONNECTIONS). They read the aggregate through its copying
 * accessors and the database through the query pool: no handler holds the
 * aggregate's lock while formatting or doing I/O. Every response but
 * /healthz is application/json; a bad parameter is a 400 {"error": ...}.
 */
#ifndef COL_API_H
#define COL_API_H

#include <stddef.h>
#include <stdint.h>

struct ap_config;
struct col_agg;
struct col_ingest;
struct col_query;
struct col_store;
struct col_api;

#define COL_API_MAX_CONNECTIONS 128

/* What the handlers read. Everything must outlive the API (col_api_stop). */
struct col_api_ctx {
	const struct ap_config *cfg;   /* auth_token, host_name */
	struct col_agg *agg;
	struct col_query *query;
	struct col_ingest *ingest;     /* for counters; may be NULL */
	struct col_store *store;       /* for counters; may be NULL */
	const char *socket_path;       /* shown in /status */
	const char *db_path;
	int64_t start_mono_ns, start_real_ns;
};

/* Binds and listens on "ADDR:PORT" ("127.0.0.1:9747", "[::1]:9747",
 * "localhost:9747", "0.0.0.0:9747"; an empty ADDR also means every
 * address, though the config's validation refuses it). Returns the listening
 * socket, or a negative errno with err filled, naming ADDR:PORT (e.g.
 * "http 127.0.0.1:9747: address already in use"). The URL it serves
 * ("http://127.0.0.1:9747") is written to url when not NULL. */
int col_api_listen(const char *addr_port, char *url, size_t urllen,
                   char *err, size_t errlen);

/* Starts serving on listen_fd (which the API owns from here, even on
 * failure). Returns NULL with err filled on failure. */
struct col_api *col_api_start(int listen_fd, const struct col_api_ctx *ctx,
                              char *err, size_t errlen);

/* Stops accepting, waits for handlers in progress, frees. NULL is a no-op. */
void col_api_stop(struct col_api *api);

#endif /* COL_API_H */
