#!/bin/bash
# scripts/demo.sh - see apiprof work in one command.
#
# Installs what is missing (as root), builds if needed, starts
# apiprof-collector and two example servers under the preload: nginx with two
# workers (service demo-nginx), and the Django API of tests/servers/djangoapp
# under gunicorn with two sync workers (service demo-django) on a throwaway
# PostgreSQL 15, whose GET /books/ has an N+1 (one author query per book).
# Drives a few hundred requests, prints the endpoint table, the N+1 patterns,
# the top statement shapes and the URLs to explore, then keeps a trickle of
# traffic going until Ctrl-C. Everything lives in one temp dir (PostgreSQL's
# data included), removed at exit once every process has stopped.
#
# PostgreSQL and the Django app start with the SQL integration tests' own
# helpers (tests/integration/dblib.sh), over stand-ins for the few helpers of
# tests/integration/lib.sh they use. As root, PostgreSQL runs as `postgres`.
set -uo pipefail

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--once] [--port N] [--build-dir DIR] [--help]

Starts apiprof-collector and, under the apiprof preload, nginx (service
demo-nginx) and a Django API under gunicorn (service demo-django) on a
throwaway PostgreSQL 15; drives traffic, including an endpoint with an N+1
(GET /books/), prints the endpoint table, the N+1 patterns, the top SQL
statement shapes and the URLs to explore, then keeps running (with a trickle
of traffic) until Ctrl-C. Everything stays in one temp dir, removed at exit.

  --once           exit after printing the report
  --port N         the collector's HTTP port (default 9747, or a free one
                   when 9747 is busy)
  --build-dir DIR  use this (already built) build tree instead of building
                   in the source tree
  --help           this text
EOF
}

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib-deps.sh
. "$TOP/scripts/lib-deps.sh"

ONCE=0
WANT_PORT=9747
BUILD=${APIPROF_BUILD_DIR:-}
while [ $# -gt 0 ]; do
	case $1 in
	--once) ONCE=1 ;;
	--port) WANT_PORT=${2:?--port needs a value}; shift ;;
	--build-dir) BUILD=${2:?--build-dir needs a value}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

SERVICE=demo-nginx
DJANGO_SERVICE=demo-django
T=""
PIDS=""
TRICKLE=0

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'demo.sh: %s\n' "$*" >&2
	exit 1
}

# Stops every process we started (by pid), then removes the temp dir.
cleanup() {
	local rc=$? pid i
	trap - EXIT INT TERM HUP
	trap '' PIPE          # stdout may be gone: cleaning up matters more
	[ -n "$PIDS" ] && say "stopping" 2>/dev/null
	for pid in $PIDS; do
		kill -TERM "$pid" 2>/dev/null || continue
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	[ -n "$T" ] && rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
# Ctrl-C is how the demo is meant to end: exit 0 then, unless still starting.
trap 'if [ "$TRICKLE" = 1 ]; then exit 0; else exit 130; fi' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE   # e.g. `demo.sh | head`: still clean up

# show_log FILE : the tail of a process's log, when it failed.
show_log() {
	[ -s "$1" ] && { echo "----- ${1##*/} -----" >&2; tail -n 30 "$1" >&2; }
	return 0
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null && return 0
	local p
	for p in $(seq 20000 20999); do
		port_busy "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# ---- PostgreSQL and the Django app: the SQL tests' helpers -----------------
# tests/integration/dblib.sh needs these of tests/integration/lib.sh, which
# the demo cannot source (it makes a test's temp dir, exit trap and watchdog);
# here they log with say, fail with die, and run processes in the demo's temp
# dir (AP_TMP, set once it exists), stopped at exit like the others.
AP_SRCDIR=$TOP
AP_SERVICE=$DJANGO_SERVICE
ap_log() { say "$@"; }
ap_fail() {
	local f
	for f in "$T"/pg*.log "$T"/django*.log; do
		show_log "$f"
	done
	die "$@"
}
ap_skip() { die "$@"; }
ap_require() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || die "$p is missing (scripts/demo.sh installs it when run as root)"
	done
}
ap_free_port() { free_port; }
ap_bg() {
	local name=$1
	shift
	"$@" >"$T/$name.log" 2>&1 &
	AP_BG_PID=$!
	PIDS="$AP_BG_PID $PIDS"
}
ap_bg_preloaded() {
	local name=$1
	shift
	ap_bg "$name" env LD_PRELOAD="$LIB" APIPROF_SOCKET="$SOCK" APIPROF_SERVICE="$AP_SERVICE" "$@"
}
ap_wait_port() {
	local i
	for i in $(seq $(( ${2:-10} * 10 ))); do
		port_busy "$1" && return 0
		sleep 0.1
	done
	ap_fail "nothing listens on 127.0.0.1:$1 after ${2:-10}s"
}
ap_children() { awk -v pp="$1" '$4 == pp {print $1}' /proc/[0-9]*/stat 2>/dev/null; }
# shellcheck source=tests/integration/dblib.sh
. "$TOP/tests/integration/dblib.sh"

# ---- dependencies and build -----------------------------------------------
say "checking Debian packages"
# shellcheck disable=SC2086 # lists of words
ap_deps_ensure $AP_PKGS_BUILD $AP_PKGS_DEMO || exit 1

if [ -n "$BUILD" ]; then
	BUILD=$(cd "$BUILD" && pwd) || die "no build dir $BUILD"
else
	BUILD=$TOP
	ap_build "$TOP" || exit 1
fi
LIB=$BUILD/preload/.libs/libapiprof.so
COLLECTOR=$BUILD/collector/apiprof-collector
CLI=$BUILD/collector/apiprof
for f in "$LIB" "$COLLECTOR"; do
	[ -e "$f" ] || die "$f is missing: build first (./configure && make)"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/apiprof-demo.XXXXXX") || die "mktemp failed"
AP_TMP=$T
# nginx workers run as www-data when we are root: they must reach the
# collector's socket and the files they serve.
chmod 755 "$T"

# ---- the collector ----------------------------------------------------------
start_collector() {
	PORT=$WANT_PORT
	if port_busy "$PORT"; then
		PORT=$(free_port) || die "no free port for the collector"
		say "port $WANT_PORT is busy: the collector uses port $PORT instead"
	fi
	URL=http://127.0.0.1:$PORT
	SOCK=$T/apiprof.sock
	say "starting apiprof-collector on $URL (socket $SOCK)"
	"$COLLECTOR" --socket "$SOCK" --http "127.0.0.1:$PORT" --db "$T/apiprof.db" \
		>"$T/collector.log" 2>&1 &
	COLLECTOR_PID=$!
	PIDS="$COLLECTOR_PID $PIDS"
	local i
	for i in $(seq 100); do
		curl -sf --max-time 2 "$URL/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$COLLECTOR_PID" 2>/dev/null || { show_log "$T/collector.log"; die "the collector exited"; }
		sleep 0.1
	done
	show_log "$T/collector.log"
	die "the collector did not answer on $URL/healthz"
}

# ---- the servers under the preload -----------------------------------------
# nginx: two workers, JSON answers from `return`, a static file with sendfile,
# a slow download (limit_rate), a 500 and 404s.
start_nginx() {
	local d=$T/nginx user=""
	mkdir -p "$d/www/static" "$d/www/downloads" "$d/tmp"
	head -c 40000 /dev/urandom >"$d/www/static/logo.png"
	head -c 393216 /dev/urandom >"$d/www/downloads/report.bin"
	if [ "$(id -u)" -eq 0 ]; then
		user="user www-data;"
		chown www-data "$d/tmp"
	fi
	APP_PORT=8080
	port_busy "$APP_PORT" && APP_PORT=$(free_port)
	APP=http://127.0.0.1:$APP_PORT
	cat >"$d/nginx.conf" <<CONF
worker_processes 2;
$user
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:$APP_PORT;
        root $d/www;
        location ~ ^/api/users/([0-9]+)\$ {
            default_type application/json;
            return 200 '{"id": \$1, "name": "user \$1"}\n';
        }
        location = /api/items {
            default_type application/json;
            return 200 '{"items": [{"id": 1}, {"id": 2}, {"id": 3}]}\n';
        }
        location = /api/fail { return 500; }
        location /static/ { }
        location /downloads/ { limit_rate 256k; }
    }
}
CONF
	say "starting nginx on $APP under the preload (service $SERVICE)"
	env LD_PRELOAD="$LIB" APIPROF_SOCKET="$SOCK" APIPROF_SERVICE="$SERVICE" \
		nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" -g 'daemon off;' >"$T/nginx.log" 2>&1 &
	NGINX_PID=$!
	PIDS="$NGINX_PID $PIDS"
	local i
	for i in $(seq 100); do
		port_busy "$APP_PORT" && return 0
		kill -0 "$NGINX_PID" 2>/dev/null || { show_log "$T/nginx.log"; show_log "$d/error.log"; die "nginx exited"; }
		sleep 0.1
	done
	die "nginx did not listen on $APP"
}

# PostgreSQL 15 and the Django app (tests/servers/djangoapp), as the SQL tests
# start them (dblib.sh): migrated and seeded (five authors, five books)
# without the preload, then gunicorn with two sync workers under it.
start_django() {
	say "starting a throwaway PostgreSQL 15 in $T/pg"
	ap_require_pg
	ap_start_pg pg books
	say "migrating and seeding the Django app, then starting gunicorn (2 workers) under the preload (service $DJANGO_SERVICE)"
	ap_start_django django postgresql "$AP_PG_PORT" books postgres ""
	DJANGO=http://127.0.0.1:$AP_PORT
}

start_servers() {
	start_nginx
	start_django
}

# ---- traffic ---------------------------------------------------------------
# pick N WEIGHT ENTRY... : N lines, each an ENTRY drawn at random with the
# odds of its WEIGHT (percentages adding up to 100). In an ENTRY, {K} stands
# for a random number from 1 to K.
pick() {
	local n=$1 i r k e
	shift
	local -a mix=("$@")
	for i in $(seq "$n"); do
		r=$(( RANDOM % 100 ))
		for (( k = 0; k < ${#mix[@]}; k += 2 )); do
			r=$(( r - mix[k] ))
			[ "$r" -lt 0 ] || continue
			e=${mix[k + 1]}
			while [[ $e =~ \{([0-9]+)\} ]]; do
				e=${e/"${BASH_REMATCH[0]}"/$(( RANDOM % BASH_REMATCH[1] + 1 ))}
			done
			echo "$e"
			break
		done
	done
}

# routes N : N random request paths of the nginx mix.
routes() {
	pick "$1" 45 '/api/users/{50}' 27 /api/items 12 /static/logo.png 7 /api/fail 7 /nowhere \
		2 /downloads/report.bin
}

# A new book by one of the five seeded authors (ids 917253001 to 917253005),
# as a request line of fetch: a POST of the form.
BOOK_POST='/books/new title=Demo+book+{9999}&author=91725300{5}&pages={500}'

# django_routes N : N random requests of the Django mix: the list with the
# N+1, book details, inserts, the view that fails (500) and the one that
# sleeps 200 ms in PostgreSQL.
django_routes() {
	pick "$1" 40 /books/ 35 '/books/{5}/' 12 "$BOOK_POST" 8 /boom/ 5 /slow/
}

# fetch NAME BASE CONNECTIONS : the requests read on stdin ("PATH", or
# "PATH FORM" for a POST of FORM) spread over CONNECTIONS curls run at once,
# each going through its share in order (over keep-alive where the server
# keeps it). NAME names its curl configs, so that two fetches can run at once.
fetch() {
	local cf=$T/urls.$1 base=$2 conns=$3 c pids=""
	rm -f "$cf".*
	# A POST stands in an operation of its own (`next`): curl's data option
	# would otherwise apply to every URL of the operation.
	awk -v c="$conns" -v cf="$cf" -v app="$base" '
		{ f = cf "." (NR % c)
		  if ((NF > 1 || post[f]) && n[f]++) print "next" > f
		  else n[f]++
		  printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", app, $1 > f
		  if (NF > 1) printf "data = \"%s\"\n", $2 > f
		  post[f] = NF > 1 }'
	for c in $(seq 0 $(( conns - 1 ))); do
		[ -e "$cf.$c" ] || continue
		curl -s --max-time 60 -K "$cf.$c" &
		pids="$pids $!"
	done
	for c in $pids; do
		wait "$c"
	done
	rm -f "$cf".*
}

# drive N CONNECTIONS [all] : N nginx requests over CONNECTIONS keep-alive
# connections; with "all", every route at least once.
drive() {
	local n=$1
	{
		if [ "${3:-}" = all ]; then
			printf '%s\n' /api/users/1 /api/items /static/logo.png /api/fail /nowhere /downloads/report.bin
			n=$(( n - 6 ))
		fi
		routes "$n"
	} | fetch nginx "$APP" "$2"
}

# drive_django N [all] : N Django requests over two curls at once (one per
# gunicorn worker; a sync worker closes the connection after each response);
# with "all", every route at least once.
drive_django() {
	local n=$1
	{
		if [ "${2:-}" = all ]; then
			printf '%s\n' /books/ /books/1/ "$(pick 1 100 "$BOOK_POST")" /boom/ /slow/
			n=$(( n - 5 ))
		fi
		django_routes "$n"
	} | fetch django "$DJANGO" 2
}

# total SERVICE : requests of SERVICE the collector has counted.
total() {
	curl -sf --max-time 5 "$URL/api/v1/endpoints" |
		jq --arg s "$1" '[.endpoints[] | select(.service == $s) | .count] | add // 0' 2>/dev/null
}

# wait_counted SERVICE N : until the collector has counted N requests of
# SERVICE (10 s at most); says so when it has not.
wait_counted() {
	local i got
	for i in $(seq 50); do
		[ "$(total "$1")" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.2
	done
	got=$(total "$1")
	say "the collector has counted ${got:-0} of $2 requests of $1 so far"
}

# ---- the report ---------------------------------------------------------------
# align LEFT [INDENT] : tab-separated lines as columns two blanks apart, the
# first LEFT left-aligned and the others right-aligned, but the last column
# left as it is (it may be long); INDENT before each line.
align() {
	awk -F'\t' -v left="$1" -v indent="${2:-}" '
		{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
		  n = NR; if (NF > nf) nf = NF }
		END { for (r = 1; r <= n; r++) { line = indent
			for (i = 1; i < nf; i++) line = line sprintf(i <= left ? "%-*s  " : "%*s  ", w[i], cell[r, i])
			line = line cell[r, nf]; sub(/ +$/, "", line); print line } }'
}

# The table from the API with jq, for when `apiprof report` is not available.
fallback_table() {
	curl -sf --max-time 10 "$URL/api/v1/endpoints" | jq -r '
		(["SERVICE", "METHOD", "ROUTE", "COUNT", "ERR%", "AVG", "P50", "P95", "P99", "MAX", "SQL/REQ", "N+1"] | @tsv),
		(.endpoints[] | [.service, .method, .route, (.count | tostring),
			((.error_rate // 0) * 1000 | round / 10 | tostring) + "%",
			(.avg_ms, .p50_ms, .p95_ms, .p99_ms, .max_ms | (. // 0) * 100 | round / 100 | tostring + "ms"),
			(.sql_per_request // 0 | . * 10 | round / 10 | tostring),
			(.n_plus_one_count // 0 | tostring)] | @tsv)' | align 3 | sed 's/ *$//'
}

# The N+1 patterns of every service: where, how often, the repeated statement
# and a request to look at.
n_plus_one_report() {
	local json
	json=$(curl -sf --max-time 10 "$URL/api/v1/n-plus-one") || { echo "(cannot read $URL/api/v1/n-plus-one)"; return 0; }
	echo "N+1 queries: the same statement run once per row, in one request"
	if [ "$(jq '.patterns | length' <<<"$json")" = 0 ]; then
		echo "  (none seen)"
		return 0
	fi
	jq -r --arg u "$URL" '.patterns[] |
		"  \(.service)  \(.method) \(.route): up to \(.max_repeats) times in one request, in \(.occurrences) requests",
		"    \(.sql)",
		"    example: \($u)/api/v1/requests/\(.example_request_id)"' <<<"$json"
}

# The eight statement shapes of the Django service that took the most time in
# all. Long select lists are elided (the API has every statement whole).
queries_report() {
	local json
	json=$(curl -sf --max-time 10 -G "$URL/api/v1/queries" --data-urlencode "service=$DJANGO_SERVICE") ||
		{ echo "(cannot read $URL/api/v1/queries)"; return 0; }
	echo "Top SQL statement shapes of $DJANGO_SERVICE by total time (literals replaced by ?):"
	{
		printf 'CALLS\tTOTAL\tMEAN\tP95\tROWS\tSQL\n'
		jq -r '.queries | sort_by(-.total_ms) | .[:8][] |
			[.calls, .total_ms, .mean_ms, .p95_ms, .rows,
			 (.sql | if length > 90 then sub("^(?<v>SELECT) .{30,}? FROM "; "\(.v) ... FROM ") else . end |
				if length > 110 then .[:107] + "..." else . end)] | @tsv' <<<"$json" |
			awk -F'\t' -v OFS='\t' '
				# milliseconds as `apiprof report` prints them: 0.42ms, 42.5ms, 310ms, 2.45s
				function ms(v) { return v == "" ? "-" : v < 9.995 ? sprintf("%.2fms", v) :
					v < 99.95 ? sprintf("%.1fms", v) : v < 999.5 ? sprintf("%.0fms", v) : sprintf("%.2fs", v / 1000) }
				{ $2 = ms($2); $3 = ms($3); $4 = ms($4); print }'
	} | align 0 "  "
}

report() {
	echo
	if [ -x "$CLI" ] && "$CLI" report --url "$URL" 2>"$T/report.err"; then
		:
	else
		fallback_table || die "cannot read $URL/api/v1/endpoints"
	fi
	echo
	n_plus_one_report
	echo
	queries_report
	echo
	echo "Explore:"
	echo "  endpoints      $URL/api/v1/endpoints"
	echo "  N+1 patterns   $URL/api/v1/n-plus-one"
	echo "  query shapes   $URL/api/v1/queries"
	echo "  errors         $URL/api/v1/errors"
	echo "  requests       $URL/api/v1/requests"
	echo "  one request    $URL/api/v1/requests/{id}"
	echo "  status         $URL/api/v1/status"
	echo "  health         $URL/healthz"
	# Shown once the collector serves them. (The page is read whole first:
	# `curl | grep -q` fails under pipefail when grep stops reading early.)
	if curl -sf --max-time 2 -o /dev/null "$URL/metrics"; then
		echo "  metrics        $URL/metrics"
	fi
	local page
	page=$(curl -sf --max-time 2 "$URL/" 2>/dev/null)
	case $page in
	*'<html'* | *'<HTML'*) echo "  dashboard      $URL/   (open it in a browser)" ;;
	esac
	echo "  nginx          $APP/api/users/1"
	echo "  Django (N+1)   $DJANGO/books/"
	echo "  the report     $CLI report --url $URL"
	echo
}

# ---- main -----------------------------------------------------------------------
start_collector
start_servers

N=300
ND=60
say "driving $N requests to nginx over 4 keep-alive connections, and $ND to Django over 2 connections at a time"
drive "$N" 4 all &
nginx_driver=$!
drive_django "$ND" all
wait "$nginx_driver"
wait_counted "$SERVICE" "$N"
wait_counted "$DJANGO_SERVICE" "$ND"
# The N+1 patterns and statement shapes show within 1 s of the events.
sleep 1
report

if [ "$ONCE" = 1 ]; then
	exit 0
fi
say "running: a trickle of traffic goes on; press Ctrl-C to stop"
TRICKLE=1
while :; do
	drive 3 1
	drive_django 1
	sleep 1
done
