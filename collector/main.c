/*
 * main.c - apiprof-collector: flags, configuration, startup checks, signals
 * and the shutdown order.
 *
 * Startup binds the HTTP port first and the datagram socket second, so a
 * second collector fails fast with a clear message before touching the
 * database. Shutdown runs the data flow from its source: the API stops
 * answering, ingest unlinks the socket and drains every datagram already
 * queued, then the store writes every row and minute and closes. So every
 * event received is written before the process exits.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agg.h"
#include "api.h"
#include "ap_config.h"
#include "col.h"
#include "ingest.h"
#include "metrics.h"
#include "pg.h"
#include "log.h"
#include "query.h"
#include "store.h"
#include "store_int.h"
#include "timeseries.h"
#include "windows.h"

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 1 /* a second SIGTERM/SIGINT cut the shutdown short */
#define READ_CONNECTIONS 4
#define PG_LOCAL_DB_NAME "apiprof.db"

/* Exported (-Wl,--export-dynamic-symbol): the preload looks it up with
 * dlsym(RTLD_DEFAULT) in its constructor and stands down, so a collector
 * started under LD_PRELOAD=libapiprof.so, whatever its file is named,
 * never captures its own HTTP API, libpq or SQLite calls. */
__attribute__((visibility("default"), used))
const char apiprof_collector_self[] = "apiprof-collector";


static void usage(FILE *f)
{
	fprintf(f,
"Usage: " COL_PROG " [OPTION]...\n"
"Receive events from processes running under the apiprof preload\n"
"(LD_PRELOAD=libapiprof.so), aggregate them per endpoint, store them in SQLite\n"
"(or in a PostgreSQL database shared by a fleet of collectors) and serve them\n"
"as JSON over HTTP. Runs in the foreground and logs to stderr;\n"
"SIGTERM or SIGINT stops it after writing every event received (a second\n"
"one exits at once, logging what it did not write).\n"
"\n"
"Options (each overrides the same key of the configuration file):\n"
"  --config FILE         read settings from FILE (`key = value` lines, `#`\n"
"                        comments); unknown keys and bad values are errors\n"
"  --socket PATH         the Unix datagram socket the preload sends to\n"
"                        (default: " COL_SOCKET_RUN " when " COL_SOCKET_DIR "\n"
"                        can be created, i.e. as root, else " COL_SOCKET_TMP ")\n"
"  --http ADDR:PORT      address of the HTTP API (default: 127.0.0.1:9747;\n"
"                        [::1]:PORT for IPv6, 0.0.0.0:PORT for every address)\n"
"  --db PATH|URI         SQLite database file, created if missing, WAL mode\n"
"                        (default: ./apiprof.db), or a PostgreSQL URI\n"
"                        (postgresql://user@host:port/dbname) shared by a\n"
"                        fleet of collectors, one per host (host_name)\n"
"  --socket-mode MODE    permissions of the socket, octal (default: 0666: any\n"
"                        local process may send, like a local statsd port)\n"
"  --socket-group GROUP  group owning the socket (name or number; default:\n"
"                        the collector's); use with --socket-mode 0660\n"
"  --log-level LEVEL     error, warn, info or debug (default: info)\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Configuration keys: slow_request_threshold_ms (1000), slow_query_threshold_ms\n"
"(100), aggregation_window_minutes (60), ignored_paths (/favicon.ico),\n"
"n_plus_one_threshold (3), regression_response_time_factor (2.0),\n"
"regression_error_rate_delta (0.1), regression_min_requests (20), webhook_url,\n"
"latency_buckets, metric_namespace, routes, max_routes (1000), retention_days\n"
"(7), max_stored_requests_per_second (1000), auth_token, host_name (the\n"
"hostname), socket, http, db.\n"
"\n"
"HTTP API: GET /healthz, /api/v1/status, /api/v1/endpoints, /api/v1/requests,\n"
"/api/v1/requests/ID, /api/v1/queries, /api/v1/n-plus-one, /api/v1/errors,\n"
"/api/v1/timeseries, /api/v1/summaries, /api/v1/regressions,\n"
"/api/v1/profile, /metrics (Prometheus), / (the dashboard); POST\n"
"/api/v1/aggregate.\n"
"Exit status: 0 after a clean stop, 1 when a second SIGTERM or SIGINT\n"
"cut the final write short, 2 when it cannot start (bad flag or setting,\n"
"socket or port in use, database unusable).\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(COL_PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(EXIT_USAGE);
}

static mode_t parse_mode(const char *s)
{
	if (s[0] == '\0' || strlen(s) > 4)
		die("--socket-mode: expected an octal mode such as 0666 or 0660, got '%s'", s);
	unsigned v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			die("--socket-mode: expected an octal mode such as 0666 or 0660, got '%s'", s);
		v = v * 8 + (unsigned)(*p - '0');
	}
	if (v > 0777)
		die("--socket-mode: only permission bits (at most 0777), got '%s'", s);
	return (mode_t)v;
}

static gid_t parse_group(const char *s)
{
	long bufsz = sysconf(_SC_GETGR_R_SIZE_MAX);
	if (bufsz < 1024)
		bufsz = 16384;
	char *buf = malloc((size_t)bufsz);
	struct group gr, *res = NULL;
	if (buf == NULL)
		die("out of memory");
	int rc = getgrnam_r(s, &gr, buf, (size_t)bufsz, &res);
	gid_t gid = res ? res->gr_gid : (gid_t)-1;
	free(buf);
	if (res != NULL)
		return gid;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (s[0] != '\0' && *end == '\0' && errno == 0 && v < (gid_t)-1 && s[0] != '-')
		return (gid_t)v;
	die("--socket-group: no group '%s'%s%s", s, rc ? ": " : "", rc ? strerror(rc) : "");
}

struct flags {
	const char *config, *socket, *http, *db, *socket_mode, *socket_group, *log_level;
};

static void parse_flags(int argc, char **argv, struct flags *f)
{
	enum { O_CONFIG = 256, O_SOCKET, O_HTTP, O_DB, O_MODE, O_GROUP, O_LOG };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "http", required_argument, NULL, O_HTTP },
		{ "db", required_argument, NULL, O_DB },
		{ "socket-mode", required_argument, NULL, O_MODE },
		{ "socket-group", required_argument, NULL, O_GROUP },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: f->config = optarg; break;
		case O_SOCKET: f->socket = optarg; break;
		case O_HTTP: f->http = optarg; break;
		case O_DB: f->db = optarg; break;
		case O_MODE: f->socket_mode = optarg; break;
		case O_GROUP: f->socket_group = optarg; break;
		case O_LOG: f->log_level = optarg; break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("%s %s\n", COL_PROG, PACKAGE_VERSION);
			exit(0);
		case ':':
			die("option '%s' needs a value (see --help)", argv[optind - 1]);
		default:
			die("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
}

/* Applies a flag through the config's own validation, so flag and file
 * values obey the same rules and messages. */
static void set_key(struct ap_config *cfg, const char *key, const char *value)
{
	char err[512];
	if (value == NULL || ap_config_set(cfg, key, value, err, sizeof err) == 0)
		return;
	/* The message names the key ("http: ..."); name the flag instead. */
	size_t n = strlen(key);
	const char *why = strncmp(err, key, n) == 0 && err[n] == ':' ? err + n + 1 : err;
	while (*why == ' ')
		why++;
	die("--%s: %s", key, why);
}

/* The store of a shutdown in progress, until it has written everything
 * (under stop_mu; NULL from then on). */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static struct col_store *stop_store;

/* Started on the first SIGTERM or SIGINT, with both still blocked: a
 * second one while the shutdown writes (a final flush waiting on a locked
 * SQLite file or an unreachable PostgreSQL, retried for many seconds)
 * ends the process at once, saying what it leaves unwritten. After the
 * last write it is only consumed: the rest is freeing memory. */
static void *second_signal(void *arg)
{
	const sigset_t *sigs = arg;
	for (;;) {
		int sig = 0;
		if (sigwait(sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
			continue;
		pthread_mutex_lock(&stop_mu);
		if (stop_store != NULL) {
			struct col_store_counters sc;
			col_store_counters(stop_store, &sc);
			col_log(COL_LOG_ERROR, "%s received again: exiting at once; not written:"
			        " %zu request rows, and the minute statistics, summary windows,"
			        " error groups and N+1 patterns not yet stored", strsignal(sig),
			        sc.rows_held);
			_exit(EXIT_INTERRUPTED);
		}
		pthread_mutex_unlock(&stop_mu);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct flags fl = { 0 };
	char err[1024];
	parse_flags(argc, argv, &fl);

	if (fl.log_level != NULL) {
		int lvl = col_log_parse_level(fl.log_level);
		if (lvl < 0)
			die("--log-level: expected error, warn, info or debug, got '%s'", fl.log_level);
		col_log_set_level(lvl);
	}
	mode_t mode = fl.socket_mode ? parse_mode(fl.socket_mode) : 0666;
	gid_t gid = fl.socket_group ? parse_group(fl.socket_group) : (gid_t)-1;

	struct ap_config cfg;
	memset(&cfg, 0, sizeof cfg);
	if (ap_config_init(&cfg) < 0)
		die("out of memory");
	if (fl.config != NULL && ap_config_load(&cfg, fl.config, err, sizeof err) < 0)
		die("%s", err);
	set_key(&cfg, "socket", fl.socket);
	set_key(&cfg, "http", fl.http);
	set_key(&cfg, "db", fl.db);
	/* The URI as shown in the log and /api/v1/status: without a password. */
	char db_shown[1024];
	col_pg_redact(cfg.db, db_shown, sizeof db_shown);
	/* With PostgreSQL, window summaries and regressions are kept in a local
	 * SQLite file, which drives detection and alerts, and copied to the
	 * database for the fleet (README: "Past one machine"): apiprof.db in
	 * systemd's StateDirectory= (the shipped unit's /var/lib/apiprof; the
	 * working directory there is read-only), else the working directory. */
	char windows_db[1024];
	snprintf(windows_db, sizeof windows_db, "%s", cfg.db);
	if (col_store_is_pg(cfg.db)) {
		const char *state = getenv("STATE_DIRECTORY");
		size_t n = state ? strcspn(state, ":") : 0;
		if (n > 0)
			snprintf(windows_db, sizeof windows_db, "%.*s/%s", (int)n, state, PG_LOCAL_DB_NAME);
		else
			snprintf(windows_db, sizeof windows_db, "./%s", PG_LOCAL_DB_NAME);
	}

	/* Signals are taken synchronously by this thread (sigwait): block them
	 * before any thread starts so every thread inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (ulimit -f, LimitFSIZE=) must fail our writes with
	 * EFBIG, counted as storage errors, not kill us: the final flush runs on
	 * this thread, which does not block SIGXFSZ. */
	signal(SIGXFSZ, SIG_IGN);

	/* 1. The HTTP port: the cheapest way to find another collector. */
	char url[300];
	int http_fd = col_api_listen(cfg.http, url, sizeof url, err, sizeof err);
	if (http_fd < 0)
		die("%s", err);

	/* 2. The socket (refuses when a live collector holds it). */
	char socket_path[256];
	if (cfg.socket != NULL && cfg.socket[0] != '\0')
		snprintf(socket_path, sizeof socket_path, "%s", cfg.socket);
	else
		col_ingest_default_path(socket_path, sizeof socket_path);

	struct col_agg *agg = col_agg_new(cfg.max_routes);
	struct col_store *store = NULL;
	struct col_query *query = NULL;
	struct col_ingest *ingest = NULL;
	struct col_api *api = NULL;
	struct col_windows *windows = NULL;
	struct col_tseries *tseries = NULL;
	struct col_metrics *metrics = col_metrics_new(&cfg);
	int status = EXIT_USAGE;
	if (agg == NULL || metrics == NULL) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	struct col_store_opts so = {
		.path = cfg.db,
		.host = cfg.host_name,
		.retention_days = cfg.retention_days,
		.max_rows_per_s = cfg.max_stored_requests_per_second,
	};
	/* Ingest only reads once started; binding now keeps datagrams sent
	 * during the rest of startup in the socket's buffer. */
	ingest = col_ingest_new(&cfg, agg);
	if (ingest == NULL) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	if (col_ingest_listen(ingest, socket_path, mode, gid, err, sizeof err) < 0)
		goto fail;
	col_ingest_set_metrics(ingest, metrics);

	/* 3. The database, and the statistics stored so far. */
	store = col_store_open(&so, err, sizeof err);
	if (store == NULL || col_store_load(store, agg, err, sizeof err) < 0)
		goto fail;
	query = col_query_open(cfg.db, cfg.host_name, READ_CONNECTIONS, err, sizeof err);
	if (query == NULL)
		goto fail;
	struct col_windows_opts wo = {
		.db_path = windows_db,
		.host = cfg.host_name,
		.pg_uri = col_store_is_pg(cfg.db) ? cfg.db : NULL,
		.window_ns = col_windows_size_ns(cfg.aggregation_window_minutes),
		.grace_ns = -1,
		.rules = col_reg_rules_of(&cfg),
		.webhook_url = cfg.webhook_url,
		.metrics = metrics,
	};
	windows = col_windows_open(&wo, err, sizeof err);
	if (windows == NULL)
		goto fail;

	/* 4. Threads, downstream first. */
	int64_t start_mono = col_clock_mono_ns(), start_real = col_clock_real_ns();
	tseries = col_tseries_new(start_real);
	if (tseries == NULL) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	col_ingest_attach(ingest, windows, tseries);
	col_store_set_tseries(store, tseries);  /* a fleet's /timeseries */
	if (col_windows_start(windows, err, sizeof err) < 0 ||
	    col_store_start(store, agg, err, sizeof err) < 0 ||
	    col_ingest_start(ingest, store, err, sizeof err) < 0)
		goto fail;
	struct col_api_ctx ctx = {
		.cfg = &cfg,
		.agg = agg,
		.query = query,
		.ingest = ingest,
		.store = store,
		.metrics = metrics,
		.socket_path = socket_path,
		.db_path = db_shown,
		.start_mono_ns = start_mono,
		.start_real_ns = start_real,
		.timeseries = tseries,
		.windows = windows,
	};
	api = col_api_start(http_fd, &ctx, err, sizeof err);
	http_fd = -1;
	if (api == NULL)
		goto fail;

	col_log(COL_LOG_INFO, "%s %s listening: socket %s (mode %03o), http %s/, db %s, host %s",
	        COL_PROG, PACKAGE_VERSION, socket_path, (unsigned)mode, url, db_shown,
	        cfg.host_name);

	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			col_log(COL_LOG_INFO, "SIGHUP ignored: restart the collector to reload"
			        " its configuration");
			continue;
		}
		col_log(COL_LOG_INFO, "%s received: stopping (send it again to exit at once,"
		        " without writing what is still held)", strsignal(sig));
		break;
	}
	status = 0;
	stop_store = store;
	/* Static: the detached watcher waits on it again after each signal it
	 * only consumes, until the process ends, after main's frame is gone
	 * (exit() runs on the stack main used). */
	static sigset_t stop_sigs;
	stop_sigs = sigs;
	sigdelset(&stop_sigs, SIGHUP);
	pthread_t watcher;
	if (pthread_create(&watcher, NULL, second_signal, &stop_sigs) == 0)
		pthread_detach(watcher);
	goto stop;

fail:
	fprintf(stderr, "%s: %s\n", COL_PROG, err);
stop:
	col_api_stop(api);
	col_ingest_stop(ingest);
	col_windows_stop(windows);
	col_store_stop(store);
	pthread_mutex_lock(&stop_mu);
	stop_store = NULL;
	pthread_mutex_unlock(&stop_mu);
	if (status == 0 && store != NULL) {
		struct col_store_counters sc;
		struct col_totals t;
		col_store_counters(store, &sc);
		col_agg_totals(agg, &t);
		col_log(COL_LOG_INFO, "stopped: %llu requests received, %llu rows written,"
		        " %llu sampled out, %llu dropped",
		        (unsigned long long)t.requests, (unsigned long long)sc.rows_written,
		        (unsigned long long)sc.rows_sampled_out,
		        (unsigned long long)sc.rows_dropped);
	}
	col_ingest_free(ingest);
	col_windows_free(windows);
	col_tseries_free(tseries);
	col_query_free(query);
	col_store_free(store);
	col_agg_free(agg);
	col_metrics_free(metrics);
	if (http_fd >= 0)
		close(http_fd);
	ap_config_free(&cfg);
	return status;
}
