#!/bin/bash
# scripts/demo.sh - see apiprof work in one command.
#
# Installs what is missing (as root), builds if needed, starts
# apiprof-collector and an example server under the preload (nginx with two
# workers for now; PostgreSQL and an API server with SQL come with SQL
# capture), drives a few hundred requests over keep-alive, prints the
# endpoint table and the URLs to explore, then keeps a trickle of traffic
# going until Ctrl-C. Everything lives in one temp dir, removed at exit.
set -uo pipefail

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--once] [--port N] [--build-dir DIR] [--help]

Starts apiprof-collector and nginx under the apiprof preload, drives traffic,
prints the endpoint table and the URLs to explore, then keeps running (with a
trickle of traffic) until Ctrl-C.

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

# The seam for later issues: PostgreSQL and an example API server with SQL
# (an N+1 endpoint included) start here, under the preload like nginx.
start_servers() {
	start_nginx
}

# ---- traffic ---------------------------------------------------------------
# routes N : N random request paths of the demo's mix.
routes() {
	local n=$1 i r
	for i in $(seq "$n"); do
		r=$(( RANDOM % 100 ))
		if [ $r -lt 45 ]; then echo "/api/users/$(( RANDOM % 50 + 1 ))"
		elif [ $r -lt 72 ]; then echo "/api/items"
		elif [ $r -lt 84 ]; then echo "/static/logo.png"
		elif [ $r -lt 91 ]; then echo "/api/fail"
		elif [ $r -lt 98 ]; then echo "/nowhere"
		else echo "/downloads/report.bin"
		fi
	done
}

# drive N CONNECTIONS [all] : N requests spread over CONNECTIONS keep-alive
# connections (one curl each, run at once); with "all", every route at
# least once.
drive() {
	local n=$1 conns=$2 c pids=""
	{
		if [ "${3:-}" = all ]; then
			printf '%s\n' /api/users/1 /api/items /static/logo.png /api/fail /nowhere /downloads/report.bin
			n=$(( n - 6 ))
		fi
		routes "$n"
	} | awk -v c="$conns" -v dir="$T" -v app="$APP" \
		'{ f = dir "/urls." (NR % c); printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", app, $0 > f }'
	for c in $(seq 0 $(( conns - 1 ))); do
		curl -s --max-time 60 -K "$T/urls.$c" &
		pids="$pids $!"
	done
	for c in $pids; do
		wait "$c"
	done
	rm -f "$T"/urls.*
}

# total : requests of the demo's service the collector has counted.
total() {
	curl -sf --max-time 5 "$URL/api/v1/endpoints" |
		jq --arg s "$SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add // 0' 2>/dev/null
}

# ---- the report ---------------------------------------------------------------
# The table from the API with jq, for when `apiprof report` is not available.
fallback_table() {
	curl -sf --max-time 10 "$URL/api/v1/endpoints" | jq -r '
		(["SERVICE", "METHOD", "ROUTE", "COUNT", "ERR%", "AVG", "P50", "P95", "P99", "MAX"] | @tsv),
		(.endpoints[] | [.service, .method, .route, (.count | tostring),
			((.error_rate // 0) * 1000 | round / 10 | tostring) + "%",
			(.avg_ms, .p50_ms, .p95_ms, .p99_ms, .max_ms | (. // 0) * 100 | round / 100 | tostring + "ms")] | @tsv)' |
		awk -F'\t' '{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; nf = NF }
			END { for (r = 1; r <= n; r++) { line = ""
				for (i = 1; i <= nf; i++) line = line sprintf(i <= 3 ? "%-*s  " : "%*s  ", w[i], cell[r, i])
				sub(/ +$/, "", line); print line } }'
}

report() {
	echo
	if [ -x "$CLI" ] && "$CLI" report --url "$URL" 2>"$T/report.err"; then
		:
	else
		fallback_table || die "cannot read $URL/api/v1/endpoints"
	fi
	echo
	echo "Explore:"
	echo "  endpoints      $URL/api/v1/endpoints"
	echo "  requests       $URL/api/v1/requests"
	echo "  one request    $URL/api/v1/requests/{id}"
	echo "  status         $URL/api/v1/status"
	echo "  health         $URL/healthz"
	# Shown once the collector serves them.
	if curl -sf --max-time 2 -o /dev/null "$URL/metrics"; then
		echo "  metrics        $URL/metrics"
	fi
	if curl -sf --max-time 2 "$URL/" 2>/dev/null | grep -qi '<html'; then
		echo "  dashboard      $URL/"
	fi
	echo "  the server     $APP/api/users/1"
	echo "  the report     $CLI report --url $URL"
	echo
}

# ---- main -----------------------------------------------------------------------
start_collector
start_servers

N=300
say "driving $N requests over 4 keep-alive connections"
drive "$N" 4 all
for i in $(seq 50); do
	[ "$(total)" -ge "$N" ] 2>/dev/null && break
	sleep 0.2
done
got=$(total)
[ "${got:-0}" -ge "$N" ] 2>/dev/null || say "the collector has counted ${got:-0} of $N requests so far"
report

if [ "$ONCE" = 1 ]; then
	exit 0
fi
say "running: a trickle of traffic goes on; press Ctrl-C to stop"
TRICKLE=1
while :; do
	drive 3 1
	sleep 1
done
