#!/bin/bash
# scripts/bench.sh - what the preload costs its host, and how fast the
# collector answers. Results go into BENCHMARKS.md.
#
# Nine measurements, each explained where it runs below:
#   1. callgrind: user-space instructions per request nginx executes, plain
#      vs preloaded with a live collector, (I(N2) - I(N1)) / (N2 - N1) so
#      start-up cancels; plus where the preload's instructions go.
#   2. wrk: nginx `return 200`, plain vs preloaded, alternating runs.
#   3. hookbench: a hooked call on an untracked fd, ns added.
#   4. the preload's CPU per request: estimated from (1), and measured from
#      the nginx worker's utime+stime during the runs of (2).
#   5. /api/v1/endpoints latency with a million stored requests.
#   6. the preload's cost per SQL statement (libpq PQexec against a
#      throwaway PostgreSQL 15): client instructions plain vs preloaded
#      (callgrind), the hook timed in-process against a stub libpq, client
#      CPU in alternating runs, and the normaliser alone.
#   7. request rows stored per second, SQLite and PostgreSQL.
#   8. callgrind on Node's http module: the same added instructions against
#      a server that does more per request than nginx's `return 200`.
#   9. callgrind on nginx over HTTP/2 (h2c): the same as (1), one stream at
#      a time.
# It uses an existing build (it never builds the project itself) and
# starts everything it needs on free ports in one temp dir, removed at exit
# unless --keep. The last thing printed is a Markdown summary block.
set -uo pipefail

usage() {
	cat <<'EOF'
usage: scripts/bench.sh [--build DIR] [--collector PATH] [--only LIST] [--keep] [options]

Measures the apiprof preload's cost in nginx and per libpq statement, and
the collector's answer time; prints progress, then a Markdown summary for
BENCHMARKS.md.

  --build DIR        an existing build tree (default: the source tree's
                     in-tree build); needs preload/.libs/libapiprof.so,
                     and collector/apiprof-collector for parts 1, 2, 5 and 6
                     (1 and 2 fall back to a stand-in datagram sink; 5 and
                     6 are skipped without it)
  --collector PATH   apiprof-collector to use instead of the build's (e.g.
                     from another build while this one's does not link)
  --only LIST        comma-separated parts to run: cg, wrk, hook, api, sql,
                     store, node, h2 (default: all; the CPU per request
                     comes with cg + wrk)
  --cg-requests A,B  request counts of the two callgrind runs (2000,6000)
  --wrk-pairs N      alternating plain/preloaded wrk pairs (5)
  --wrk-seconds S    length of each wrk run (5)
  --wrk-conns C      wrk connections (16; one wrk thread)
  --api-requests N   request events fed to the collector for part 5 (1000000)
  --api-routes R     routes they are spread over (200)
  --api-calls N      timed GET /api/v1/endpoints calls (50)
  --sql-statements A,B  statements per callgrind run of part 6 (1000,3000)
  --sql-pairs N      alternating plain/preloaded client CPU pairs, part 6 (9)
  --sql-n N          statements per client CPU run, part 6 (10000)
  --store-requests N request rows stored per backend, part 7 (200000)
  --node-requests A,B  request counts of part 8's callgrind runs (1000,3000)
  --node-rounds N    alternating plain/preloaded rounds of part 8 (3)
  --keep             keep the temp dir (callgrind profiles, logs, summary)
  -h, --help         this text
EOF
}

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib-deps.sh
. "$TOP/scripts/lib-deps.sh"

BUILD=""
COLLECTOR=""
ONLY="cg,wrk,hook,api,sql,store,node,h2"
NODE_N1=1000
NODE_N2=3000
NODE_ROUNDS=3
CG_N1=2000
CG_N2=6000
WRK_PAIRS=5
WRK_SECONDS=5
WRK_CONNS=16
API_REQUESTS=1000000
API_ROUTES=200
API_CALLS=50
SQL_N1=1000
SQL_N2=3000
SQL_PAIRS=9
SQL_RUN=10000
STORE_N=200000
KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	--build | --build-dir) BUILD=${2:?$1 needs a value}; shift ;;
	--only) ONLY=${2:?--only needs a value}; shift ;;
	--collector) COLLECTOR=${2:?--collector needs a value}; shift ;;
	--cg-requests)
		CG_N1=${2%%,*}; CG_N2=${2##*,}; shift ;;
	--wrk-pairs) WRK_PAIRS=${2:?}; shift ;;
	--wrk-seconds) WRK_SECONDS=${2:?}; shift ;;
	--wrk-conns) WRK_CONNS=${2:?}; shift ;;
	--api-requests) API_REQUESTS=${2:?}; shift ;;
	--api-routes) API_ROUTES=${2:?}; shift ;;
	--api-calls) API_CALLS=${2:?}; shift ;;
	--sql-statements)
		SQL_N1=${2%%,*}; SQL_N2=${2##*,}; shift ;;
	--sql-pairs) SQL_PAIRS=${2:?}; shift ;;
	--sql-n) SQL_RUN=${2:?}; shift ;;
	--store-requests) STORE_N=${2:?}; shift ;;
	--node-requests)
		NODE_N1=${2%%,*}; NODE_N2=${2##*,}; shift ;;
	--node-rounds) NODE_ROUNDS=${2:?}; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
for v in CG_N1 CG_N2 WRK_PAIRS WRK_SECONDS WRK_CONNS API_REQUESTS API_ROUTES API_CALLS \
	SQL_N1 SQL_N2 SQL_PAIRS SQL_RUN STORE_N NODE_N1 NODE_N2 NODE_ROUNDS; do
	case ${!v} in
	'' | *[!0-9]*) echo "bench.sh: $v must be a positive integer" >&2; exit 2 ;;
	esac
done
[ "$CG_N2" -gt "$CG_N1" ] || { echo "bench.sh: --cg-requests A,B needs A < B" >&2; exit 2; }
[ "$SQL_N2" -gt "$SQL_N1" ] || { echo "bench.sh: --sql-statements A,B needs A < B" >&2; exit 2; }
[ "$NODE_N2" -gt "$NODE_N1" ] || { echo "bench.sh: --node-requests A,B needs A < B" >&2; exit 2; }
[ "$NODE_ROUNDS" -ge 1 ] || { echo "bench.sh: --node-rounds must be at least 1" >&2; exit 2; }
if [ "$SQL_PAIRS" -lt 1 ] || [ "$SQL_RUN" -lt 1 ]; then
	echo "bench.sh: --sql-pairs and --sql-n must be at least 1" >&2
	exit 2
fi
for p in ${ONLY//,/ }; do
	case $p in
	cg | wrk | hook | api | sql | store | node | h2) ;;
	*) echo "bench.sh: --only: unknown part '$p' (cg, wrk, hook, api, sql, store, node, h2)" >&2; exit 2 ;;
	esac
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'bench.sh: %s\n' "$*" >&2
	exit 1
}

# ---- processes and the temp dir -------------------------------------------------
T=""
PIDS=""
# stop PID [SIGNAL] : signals one process we started and waits for it.
stop() {
	local pid=$1 sig=${2:-TERM} i
	kill -"$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local p rest=""
	for p in $PIDS; do
		[ "$p" = "$pid" ] || rest="$rest $p"
	done
	PIDS=$rest
	return 0
}
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM HUP
	for pid in $PIDS; do
		stop "$pid"
	done
	if [ -n "$T" ]; then
		if [ "$KEEP" = 1 ]; then
			echo "bench.sh: kept $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

show_log() {
	[ -s "$1" ] && { echo "----- ${1##*/} -----" >&2; tail -n 20 "$1" >&2; }
	return 0
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- arithmetic and statistics (awk) ---------------------------------------
calc() { awk "BEGIN { printf \"%s\", $* }" </dev/null; }
fmt() { awk -v f="$1" -v x="$2" 'BEGIN { printf f, x }' </dev/null; }
# stats < numbers : "median p95 max" (nearest rank)
stats() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan nan nan"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.95 * NR + 0.999999); if (r < 1) r = 1
		print m, v[r], v[NR] }'
}
median() { stats | awk '{ print $1 }'; }
# verdict VALUE OP LIMIT : "met" / "missed"
verdict() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
	ok = (op == "<") ? v < l : (op == "<=") ? v <= l : (op == ">=") ? v >= l : 0
	print (v == "" || v == "nan") ? "n/a" : ok ? "met" : "**missed**" }' </dev/null; }

# ---- dependencies, build, machine ------------------------------------------
# shellcheck disable=SC2086 # lists of words
ap_deps_ensure $AP_PKGS_BENCH python3:python3 gcc:gcc || exit 1
if [ -n "$BUILD" ]; then
	BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || die "no build dir $BUILD"
else
	BUILD=$TOP
fi
LIB=$BUILD/preload/.libs/libapiprof.so
if [ -n "$COLLECTOR" ]; then
	[ -x "$COLLECTOR" ] || die "--collector $COLLECTOR is not an executable"
	COLLECTOR=$(cd "$(dirname "$COLLECTOR")" && pwd)/$(basename "$COLLECTOR")
else
	COLLECTOR=$BUILD/collector/apiprof-collector
fi
[ -e "$LIB" ] || die "$LIB is missing: build first (./configure && make, or make -C shared && make -C preload), or pass --build DIR"
[ -e "$BUILD/config.h" ] || die "$BUILD/config.h is missing: not a configured build tree"
HAVE_COLLECTOR=0
[ -x "$COLLECTOR" ] && HAVE_COLLECTOR=1

T=$(mktemp -d "${TMPDIR:-/tmp}/apiprof-bench.XXXXXX") || die "mktemp failed"
# nginx workers run as nobody when we are root: they must reach the socket.
chmod 755 "$T"
SUMMARY=$T/summary.md
: >"$SUMMARY"
: >"$T/table.md"
: >"$T/details.md"
row() { printf '%s\n' "$*" >>"$T/table.md"; }
detail() { printf '%s\n' "$*" >>"$T/details.md"; }

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
CPU_MHZ=$(awk -F': ' '/^cpu MHz/ { printf "%.0f", $2; exit }' /proc/cpuinfo)
NPROC=$(nproc)
KERNEL=$(uname -r)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
VALGRIND_VERSION=$(valgrind --version 2>/dev/null)
WRK_VERSION=$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
REV=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Read-only look (plumbing: never rewrites the index) for local changes.
if [ "$REV" != unknown ] && ! git -C "$TOP" diff-index --quiet HEAD -- 2>/dev/null; then
	REV="$REV with uncommitted changes"
fi
CLK_TCK=$(getconf CLK_TCK)

say "apiprof benchmarks: build $BUILD, temp dir $T"
[ "$HAVE_COLLECTOR" = 1 ] && note "collector: $COLLECTOR"
note "machine: $NPROC CPUs, $CPU_MODEL, kernel $KERNEL, $NGINX_VERSION; load average $LOAD_START"

# Helpers compiled here, with gcc directly (they are not part of `make check`).
BIN=$T/bin
mkdir -p "$BIN"
CC=${CC:-gcc}
build_helpers() {
	"$CC" -O2 -Wall -U_FORTIFY_SOURCE -shared -fPIC -o "$BIN/libfakeio.so" \
		"$TOP/tests/bench/fakeio.c" -ldl &&
		"$CC" -O2 -Wall -U_FORTIFY_SOURCE -o "$BIN/hookbench" \
			"$TOP/tests/bench/hookbench.c" -ldl &&
		"$CC" -O2 -Wall -I"$BUILD" -I"$TOP/shared" -o "$BIN/feed" \
			"$TOP/tests/bench/feed.c" "$TOP/shared/wire.c" -lm &&
		"$CC" -O2 -Wall -shared -fPIC -o "$BIN/libthreadonly.so" \
			"$TOP/tests/bench/threadonly.c" -lpthread &&
		"$CC" -O2 -Wall -o "$BIN/floors" "$TOP/tests/bench/floors.c"
}
say "compiling the benchmark helpers (tests/bench/*.c)"
build_helpers >"$T/helpers.log" 2>&1 || { show_log "$T/helpers.log"; die "compiling the helpers failed"; }

# ---- the collector (or the stand-in) -----------------------------------------
# start_collector DIR [CONFIG] : sets COL_PID, COL_URL, COL_SOCK.
# start_collector DIR [CONF] [DB] : DB defaults to DIR/apiprof.db (SQLite).
start_collector() {
	local d=$1 conf=${2:-} db=${3:-$1/apiprof.db} port i
	mkdir -p "$d"
	chmod 755 "$d"
	port=$(free_port) || die "no free port"
	COL_URL=http://127.0.0.1:$port
	COL_SOCK=$d/apiprof.sock
	# shellcheck disable=SC2086 # optional words
	"$COLLECTOR" ${conf:+--config "$conf"} --socket "$COL_SOCK" --http "127.0.0.1:$port" \
		--db "$db" --log-level warn >"$d/collector.log" 2>&1 &
	COL_PID=$!
	PIDS="$PIDS $COL_PID"
	for i in $(seq 100); do
		curl -sf --max-time 2 "$COL_URL/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$COL_PID" 2>/dev/null || { show_log "$d/collector.log"; die "the collector exited"; }
		sleep 0.1
	done
	show_log "$d/collector.log"
	die "the collector did not answer on $COL_URL/healthz"
}

start_sink() {
	local d=$1 i
	mkdir -p "$d"
	chmod 755 "$d"
	COL_SOCK=$d/apiprof.sock
	COL_URL=""
	python3 "$TOP/tests/bench/sink.py" "$COL_SOCK" "$d/sink.count" >"$d/sink.log" 2>&1 &
	COL_PID=$!
	PIDS="$PIDS $COL_PID"
	for i in $(seq 50); do
		[ -S "$COL_SOCK" ] && return 0
		sleep 0.1
	done
	show_log "$d/sink.log"
	die "the stand-in sink did not start"
}

# events SERVICE : requests the collector counted for SERVICE ("" with the sink).
events() {
	[ -n "$COL_URL" ] || return 0
	curl -sf --max-time 10 "$COL_URL/api/v1/endpoints?service=$1" |
		jq '[.endpoints[].count] | add // 0' 2>/dev/null
}
# proc_cpu PID : utime+stime in clock ticks.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }

LIVE=""
if want cg || want wrk || want node || want h2; then
	if [ "$HAVE_COLLECTOR" = 1 ]; then
		start_collector "$T/col"
		LIVE="a live apiprof-collector"
		say "collector for parts 1-2: $COL_URL, socket $COL_SOCK"
	else
		start_sink "$T/col"
		LIVE="a python3 datagram sink standing in for apiprof-collector (not built in $BUILD)"
		say "apiprof-collector is not built: using $LIVE"
	fi
fi
# CPU profiles at the default rate (every 20th request) unless the caller's
# environment sets APIPROF_PROFILE_EVERY: the wrk ratio is issue 7's
# "default sampling vs no preload" figure.
PROFILE_EVERY=${APIPROF_PROFILE_EVERY:-20}
PRELOAD_ENV=(LD_PRELOAD="$LIB" APIPROF_SOCKET="$T/col/apiprof.sock" APIPROF_PROFILE_EVERY="$PROFILE_EVERY")

# nginx_conf DIR PORT SINGLE [LISTEN] : writes DIR/nginx.conf for `return
# 200`; LISTEN adds to the listen directive (part 9: "http2").
nginx_conf() {
	local d=$1 port=$2 single=$3 listen=${4:-} head
	mkdir -p "$d/tmp"
	if [ "$single" = 1 ]; then
		head="master_process off;"
	else
		head=""
	fi
	cat >"$d/nginx.conf" <<CONF
$head
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$port $listen;
        location / { return 200 "ok\n"; }
    }
}
CONF
}

# cg_drive WHAT PID PORT N PATH LOG PROFILE SIGNAL : N keep-alive requests
# for PATH (tests/bench/kaclient.py) to a server running under callgrind as
# PID (its output in LOG), then stops it with SIGNAL, which makes callgrind
# write PROFILE; sets CG_TOTAL to the profile's total instructions. Dies,
# showing the logs, when the client or the profile fails.
CG_TOTAL=""
cg_drive() {
	local what=$1 pid=$2 port=$3 n=$4 path=$5 log=$6 profile=$7 sig=$8
	if ! python3 "$TOP/tests/bench/kaclient.py" "$port" "$n" "$path" 2>"$T/client.log"; then
		show_log "$T/client.log"
		show_log "$log"
		die "the keep-alive client failed against $what under callgrind"
	fi
	stop "$pid" "$sig"
	CG_TOTAL=$(awk '/^totals:/ { print $2 }' "$profile")
	[ -n "$CG_TOTAL" ] || { show_log "$log"; die "no callgrind totals for $what, N=$n"; }
}

# ---- 1. callgrind ----------------------------------------------------------------
CG_PLAIN="" CG_PRE="" CG_ADDED=""
part_callgrind() {
	local d=$T/cg port mode n pid svc=bench-callgrind got
	say "[1/6] callgrind: nginx (one process) serving $CG_N1 and $CG_N2 keep-alive requests, plain and preloaded"
	port=$(free_port) || die "no free port"
	nginx_conf "$d" "$port" 1
	# threadonly: the control, a preload that only starts one idle thread.
	# noprof: preloaded without the every-Nth-request CPU profiler, whose
	# samples come from a CPU-time timer: under valgrind their number
	# depends on the machine's speed and load, so this is the figure that
	# repeats exactly.
	for mode in plain preloaded noprof threadonly; do
		for n in "$CG_N1" "$CG_N2"; do
			note "$mode, N=$n"
			local envs=()
			[ "$mode" = preloaded ] && envs=("${PRELOAD_ENV[@]}" "APIPROF_SERVICE=$svc")
			[ "$mode" = noprof ] && envs=("${PRELOAD_ENV[@]}" "APIPROF_SERVICE=$svc-noprof"
				APIPROF_PROFILE_EVERY=0)
			[ "$mode" = threadonly ] && envs=(LD_PRELOAD="$BIN/libthreadonly.so")
			env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.$mode.$n" \
				nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/valgrind.$mode.$n.log" 2>&1 &
			pid=$!
			PIDS="$PIDS $pid"
			# SIGQUIT: graceful shutdown, callgrind writes its profile at exit.
			cg_drive "nginx ($mode)" "$pid" "$port" "$n" /ok "$d/valgrind.$mode.$n.log" \
				"$d/callgrind.$mode.$n" QUIT
			eval "CG_${mode}_$n=$CG_TOTAL"
		done
	done
	local p1 p2 q1 q2 dn=$((CG_N2 - CG_N1))
	eval "p1=\$CG_plain_$CG_N1 p2=\$CG_plain_$CG_N2 q1=\$CG_preloaded_$CG_N1 q2=\$CG_preloaded_$CG_N2"
	CG_PLAIN=$(calc "($p2 - $p1) / $dn")
	CG_PRE=$(calc "($q2 - $q1) / $dn")
	CG_ADDED=$(calc "$CG_PRE - $CG_PLAIN")
	CG_PCT=$(calc "100 * ($CG_PRE - $CG_PLAIN) / $CG_PLAIN")
	local t1 t2
	eval "t1=\$CG_threadonly_$CG_N1 t2=\$CG_threadonly_$CG_N2"
	CG_THREAD=$(calc "($t2 - $t1) / $dn")
	CG_THREAD_ADDED=$(calc "$CG_THREAD - $CG_PLAIN")
	local r1 r2
	eval "r1=\$CG_noprof_$CG_N1 r2=\$CG_noprof_$CG_N2"
	CG_NOPROF=$(calc "($r2 - $r1) / $dn")
	CG_NOPROF_ADDED=$(calc "$CG_NOPROF - $CG_PLAIN")
	note "plain $(fmt %.0f "$CG_PLAIN") instr/request, preloaded $(fmt %.0f "$CG_PRE") ($(fmt %+.1f "$CG_PCT")%)"
	note "control, one idle thread only: $(fmt %+.0f "$CG_THREAD_ADDED") instr/request ($(fmt %+.1f "$(calc "100 * $CG_THREAD_ADDED / $CG_PLAIN")")%)"

	# Did the preload deliver under callgrind? (The sink cannot tell.)
	sleep 1.5
	got=$(events "$svc")
	CG_DELIVERED=${got:-"(not counted: stand-in sink)"}

	say "per-function costs (callgrind_annotate)"
	python3 "$TOP/tests/bench/cgdiff.py" "$CG_N1" "$CG_N2" \
		"$d/callgrind.plain.$CG_N1" "$d/callgrind.plain.$CG_N2" \
		"$d/callgrind.preloaded.$CG_N1" "$d/callgrind.preloaded.$CG_N2" 12 >"$d/cgdiff.md" 2>"$d/cgdiff.log" ||
		{ show_log "$d/cgdiff.log"; echo "(cgdiff.py failed)" >"$d/cgdiff.md"; }
	sed -n '/^The preload.s own functions/,/^| all /p' "$d/cgdiff.md" | sed -n '1,10p' | sed 's/^/    /'

	row "| nginx instructions per request (callgrind, ($CG_N2 - $CG_N1 requests) / $((CG_N2 - CG_N1))) | $(fmt %.0f "$CG_PLAIN") | $(fmt %.0f "$CG_PRE") | $(fmt %+.0f "$CG_ADDED") ($(fmt %+.1f "$CG_PCT")%) | <= +5% (goal +2%) | $(verdict "$CG_PCT" "<=" 5) |"
	row "| preloaded with APIPROF_PROFILE_EVERY=0 (no CPU profiler: the figure that repeats exactly) | $(fmt %.0f "$CG_PLAIN") | $(fmt %.0f "$CG_NOPROF") | $(fmt %+.0f "$CG_NOPROF_ADDED") ($(fmt %+.1f "$(calc "100 * $CG_NOPROF_ADDED / $CG_PLAIN")")%) | | |"
	row "| of which: glibc's multi-threaded paths (control: a preload that only starts one idle thread) | $(fmt %.0f "$CG_PLAIN") | $(fmt %.0f "$CG_THREAD") | $(fmt %+.0f "$CG_THREAD_ADDED") ($(fmt %+.1f "$(calc "100 * $CG_THREAD_ADDED / $CG_PLAIN")")%) | | |"
	# What two leaner designs would cost at the least on the same exchange
	# (tests/bench/floors.c): one exchange per iteration, 1000 and 2000.
	local m f1 f2 floors=""
	for m in frame frame32 record; do
		if [ "$m" = frame32 ] && ! grep -qw avx2 /proc/cpuinfo; then
			floors="$floors / -"
			continue
		fi
		for n in 1000 2000; do
			valgrind --tool=callgrind --callgrind-out-file="$d/floors.$m.$n" \
				"$BIN/floors" "$m" "$n" >"$d/floors.$m.$n.log" 2>&1 ||
				{ show_log "$d/floors.$m.$n.log"; die "floors $m failed under callgrind"; }
		done
		f1=$(awk '/^totals:/ { print $2 }' "$d/floors.$m.1000")
		f2=$(awk '/^totals:/ { print $2 }' "$d/floors.$m.2000")
		floors="$floors / $(fmt %.0f "$(calc "($f2 - $f1) / 1000")")"
	done
	floors=${floors# / }
	note "floors (tests/bench/floors.c), instructions per exchange: framing without validation SSE2 / AVX2, recording calls: $floors"
	row "| the least two leaner designs would cost on this exchange (tests/bench/floors.c): framing with no validation, SSE2 / AVX2; recording each call with a 256-byte copy, no parsing | | | $floors | | |"
	detail "### 1. Instructions per request (callgrind)"
	detail ""
	detail "nginx \`master_process off; worker_processes 1; keepalive_requests 1000000; access_log off\`, \`location / { return 200 \"ok\\n\"; }\`, one keep-alive connection (tests/bench/kaclient.py), stopped with SIGQUIT. Preloaded: with $LIVE; events it counted for the two preloaded runs: $CG_DELIVERED of $((CG_N1 + CG_N2)). Control: \`LD_PRELOAD=libthreadonly.so\`, which only starts one idle thread, as the preload's shipper does. With APIPROF_PROFILE_EVERY=0 (no CPU profiler) counts repeat exactly for the same environment; with the default every-20th-request profiler they move by a few hundred instructions per request from run to run, because its samples come from a timer on the thread's CPU time, which valgrind's slowness and the machine's load stretch. The plain figure moves by up to ~2% (malloc's work) when paths or environment change the heap layout: compare plain and preloaded from the same run."
	detail ""
	detail "| run | N=$CG_N1 | N=$CG_N2 | per request |"
	detail "| --- | ---: | ---: | ---: |"
	detail "| plain | $p1 | $p2 | $(fmt %.1f "$CG_PLAIN") |"
	detail "| preloaded | $q1 | $q2 | $(fmt %.1f "$CG_PRE") |"
	detail "| preloaded, APIPROF_PROFILE_EVERY=0 | $r1 | $r2 | $(fmt %.1f "$CG_NOPROF") |"
	detail "| control: one idle thread (tests/bench/threadonly.c) | $t1 | $t2 | $(fmt %.1f "$CG_THREAD") |"
	detail ""
	cat "$d/cgdiff.md" >>"$T/details.md"
	detail ""
}

# ---- 9. callgrind on nginx over HTTP/2 -----------------------------------------
# Part 1's nginx with `listen ... http2` (prior knowledge, h2c), driven by
# h2load over one connection, one stream at a time (-c 1 -m 1), so that
# each request is one HEADERS frame in and HEADERS + DATA out. No CPU
# profiler, so the counts repeat.
part_h2() {
	local d=$T/h2 port mode n pid p1 p2 q1 q2 dn=$((CG_N2 - CG_N1)) svc=bench-h2 got
	say "[9] callgrind: nginx over HTTP/2 (h2c) serving $CG_N1 and $CG_N2 requests on one connection, plain and preloaded"
	command -v h2load >/dev/null || { say "SKIPPED: no h2load (Debian's nghttp2-client)"; return 0; }
	port=$(free_port) || die "no free port"
	nginx_conf "$d" "$port" 1 http2
	for mode in plain noprof; do
		for n in "$CG_N1" "$CG_N2"; do
			note "$mode, N=$n"
			local envs=()
			[ "$mode" = noprof ] && envs=("${PRELOAD_ENV[@]}" "APIPROF_SERVICE=$svc" APIPROF_PROFILE_EVERY=0)
			env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.$mode.$n" \
				nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/valgrind.$mode.$n.log" 2>&1 &
			pid=$!
			PIDS="$PIDS $pid"
			local i
			for i in $(seq 150); do
				curl -sf --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$port/" && break
				sleep 0.2
			done
			if ! h2load -n "$n" -c 1 -m 1 "http://127.0.0.1:$port/ok" >"$d/h2load.$mode.$n.log" 2>&1 ||
				! grep -q "^requests: $n total, $n started, $n done, $n succeeded" "$d/h2load.$mode.$n.log"; then
				show_log "$d/h2load.$mode.$n.log"
				show_log "$d/valgrind.$mode.$n.log"
				die "h2load failed against nginx ($mode) under callgrind"
			fi
			stop "$pid" QUIT
			CG_TOTAL=$(awk '/^totals:/ { print $2 }' "$d/callgrind.$mode.$n")
			[ -n "$CG_TOTAL" ] || { show_log "$d/valgrind.$mode.$n.log"; die "no callgrind totals for nginx h2 ($mode), N=$n"; }
			eval "H2_${mode}_$n=$CG_TOTAL"
		done
	done
	eval "p1=\$H2_plain_$CG_N1 p2=\$H2_plain_$CG_N2 q1=\$H2_noprof_$CG_N1 q2=\$H2_noprof_$CG_N2"
	local plain pre added pct
	plain=$(calc "($p2 - $p1) / $dn")
	pre=$(calc "($q2 - $q1) / $dn")
	added=$(calc "$pre - $plain")
	pct=$(calc "100 * $added / $plain")
	note "plain $(fmt %.0f "$plain") instr/request, preloaded $(fmt %.0f "$pre") ($(fmt %+.1f "$pct")%)"
	sleep 1.5
	got=$(events "$svc")
	python3 "$TOP/tests/bench/cgdiff.py" "$CG_N1" "$CG_N2" \
		"$d/callgrind.plain.$CG_N1" "$d/callgrind.plain.$CG_N2" \
		"$d/callgrind.noprof.$CG_N1" "$d/callgrind.noprof.$CG_N2" 12 >"$d/cgdiff.md" 2>"$d/cgdiff.log" ||
		{ show_log "$d/cgdiff.log"; echo "(cgdiff.py failed)" >"$d/cgdiff.md"; }
	row "| nginx over HTTP/2 (h2c, h2load, one stream at a time), instructions per request, APIPROF_PROFILE_EVERY=0 | $(fmt %.0f "$plain") | $(fmt %.0f "$pre") | $(fmt %+.0f "$added") ($(fmt %+.1f "$pct")%) | | |"
	detail "### 9. Instructions per HTTP/2 request (callgrind)"
	detail ""
	detail "Part 1's nginx with \`listen ... http2\` (prior knowledge), \`h2load -n N -c 1 -m 1\`: one connection, one stream at a time; preloaded with APIPROF_PROFILE_EVERY=0 and $LIVE (events counted: ${got:-"(not counted: stand-in sink)"} of $((CG_N1 + CG_N2)))."
	detail ""
	detail "| run | N=$CG_N1 | N=$CG_N2 | per request |"
	detail "| --- | ---: | ---: | ---: |"
	detail "| plain | $p1 | $p2 | $(fmt %.1f "$plain") |"
	detail "| preloaded, APIPROF_PROFILE_EVERY=0 | $q1 | $q2 | $(fmt %.1f "$pre") |"
	detail ""
	cat "$d/cgdiff.md" >>"$T/details.md"
	detail ""
}

# ---- 8. callgrind on Node ----------------------------------------------------
# Node's http module serving /fast (tests/servers/node_server.js) under
# callgrind, plain and preloaded, NODE_N1 and NODE_N2 keep-alive requests,
# as part 1 does with nginx. V8's JIT and garbage collector make each count
# move by thousands of instructions from run to run, so NODE_ROUNDS rounds
# alternate plain and preloaded and the medians are reported, beside the
# preload's own instructions (its functions' self cost, which the JIT does
# not move). Node already runs threads of its own: the +189 of part 1's
# control does not apply.
part_node() {
	local d=$T/node mode n r pid port i dn=$((NODE_N2 - NODE_N1))
	local plain_v="" pre_v="" self_v="" diff_v="" rounds="" p1 p2 q1 q2 s1 s2
	say "[8] callgrind: Node's http module serving $NODE_N1 and $NODE_N2 keep-alive requests, plain and preloaded, $NODE_ROUNDS rounds"
	mkdir -p "$d"
	command -v node >/dev/null || { note "node is not installed: part 8 skipped"; return 0; }
	# own PROFILE: self instructions of the preload's functions in it
	own() {
		callgrind_annotate --threshold=100 --auto=no "$1" 2>/dev/null |
			awk '/libapiprof/ { gsub(",", "", $1); s += $1 } END { print s + 0 }'
	}
	for r in $(seq "$NODE_ROUNDS"); do
		for mode in plain preloaded; do
			for n in "$NODE_N1" "$NODE_N2"; do
				local envs=()
				[ "$mode" = preloaded ] && envs=("${PRELOAD_ENV[@]}" "APIPROF_SERVICE=bench-node"
					APIPROF_PROFILE_EVERY=0)
				port=$(free_port) || die "no free port"
				env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.$mode.$n.$r" \
					node "$TOP/tests/servers/node_server.js" --port "$port" >"$d/node.$mode.$n.$r.log" 2>&1 &
				pid=$!
				PIDS="$PIDS $pid"
				for i in $(seq 600); do
					grep -q listening "$d/node.$mode.$n.$r.log" && break
					kill -0 "$pid" 2>/dev/null || break
					sleep 0.2
				done
				cg_drive "Node ($mode)" "$pid" "$port" "$n" /fast "$d/node.$mode.$n.$r.log" \
					"$d/callgrind.$mode.$n.$r" TERM
				eval "total_${mode}_$n=$CG_TOTAL"
			done
		done
		eval "p1=\$total_plain_$NODE_N1 p2=\$total_plain_$NODE_N2"
		eval "q1=\$total_preloaded_$NODE_N1 q2=\$total_preloaded_$NODE_N2"
		s1=$(own "$d/callgrind.preloaded.$NODE_N1.$r")
		s2=$(own "$d/callgrind.preloaded.$NODE_N2.$r")
		local pv qv sv
		pv=$(calc "($p2 - $p1) / $dn")
		qv=$(calc "($q2 - $q1) / $dn")
		sv=$(calc "($s2 - $s1) / $dn")
		note "round $r: plain $(fmt %.0f "$pv"), preloaded $(fmt %.0f "$qv") ($(fmt %+.0f "$(calc "$qv - $pv")")), the preload's own $(fmt %.0f "$sv")"
		plain_v="$plain_v $pv" pre_v="$pre_v $qv" self_v="$self_v $sv" diff_v="$diff_v $(calc "$qv - $pv")"
		rounds="$rounds| $r | $(fmt %.0f "$pv") | $(fmt %.0f "$qv") | $(fmt %+.0f "$(calc "$qv - $pv")") | $(fmt %.0f "$sv") |
"
	done
	# Did the preload deliver? (The stand-in sink cannot tell.)
	sleep 1.5
	local got
	got=$(events bench-node)
	got=${got:-"(not counted: stand-in sink)"}
	local mp mq md ms
	mp=$(printf '%s\n' $plain_v | median)
	mq=$(printf '%s\n' $pre_v | median)
	md=$(printf '%s\n' $diff_v | median)
	ms=$(printf '%s\n' $self_v | median)
	row "| Node http module \`/fast\`, instructions per request (callgrind, median of $NODE_ROUNDS rounds; APIPROF_PROFILE_EVERY=0) | $(fmt %.0f "$mp") | $(fmt %.0f "$mq") | $(fmt %+.0f "$md") ($(fmt %+.1f "$(calc "100 * $md / $mp")")%) | | |"
	row "| ... of which the preload's own functions (self, median) | | | $(fmt %.0f "$ms") ($(fmt %.2f "$(calc "100 * $ms / $mp")")%) | | |"
	detail "### 8. Instructions per request in Node (callgrind)"
	detail ""
	detail "\`node tests/servers/node_server.js\` (Node $(node --version)), \`GET /fast\` on one keep-alive connection (tests/bench/kaclient.py), $NODE_N1 and $NODE_N2 requests, (I($NODE_N2) - I($NODE_N1)) / $dn, stopped with SIGTERM; preloaded with $LIVE (events it counted: $got of $((NODE_ROUNDS * (NODE_N1 + NODE_N2)))) and APIPROF_PROFILE_EVERY=0. V8's JIT and garbage collector move each count by thousands of instructions from run to run: compare the medians, and the preload's own functions, which the JIT does not move. Node runs threads of its own, so part 1's +189 for a second thread does not apply."
	detail ""
	detail "| round | plain | preloaded | added | the preload's own |"
	detail "| ---: | ---: | ---: | ---: | ---: |"
	printf '%s' "$rounds" >>"$T/details.md"
	detail ""
}

# ---- 2 + 4. wrk, and CPU per request ------------------------------------------
WRK_RATIO="" CPU_PLAIN="" CPU_PRE="" CPU_ADDED=""
# start_nginx NAME PORT [ENV...] : master/worker nginx; sets NG_PID, NG_WORKER.
start_nginx() {
	local name=$1 port=$2 d=$T/$1 i
	shift 2
	nginx_conf "$d" "$port" 0
	env "$@" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/nginx.log" 2>&1 &
	NG_PID=$!
	PIDS="$PIDS $NG_PID"
	NG_WORKER=""
	for i in $(seq 100); do
		if port_open "$port"; then
			NG_WORKER=$(pgrep -P "$NG_PID" | head -n 1)
			[ -n "$NG_WORKER" ] && return 0
		fi
		kill -0 "$NG_PID" 2>/dev/null || { show_log "$d/nginx.log"; show_log "$d/error.log"; die "nginx ($name) exited"; }
		sleep 0.1
	done
	die "nginx ($name) did not start"
}

# wrk_run PORT WORKER SECONDS : prints "REQ_PER_S REQUESTS CPU_TICKS ERRORS".
wrk_run() {
	local port=$1 worker=$2 secs=$3 c0 c1 out rps reqs errs
	c0=$(proc_cpu "$worker")
	out=$(wrk -t1 -c"$WRK_CONNS" -d"${secs}s" "http://127.0.0.1:$port/ok" 2>&1)
	c1=$(proc_cpu "$worker")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	reqs=$(awk '/ requests in / { print $1 }' <<<"$out")
	errs=$(awk '/Non-2xx|Socket errors/ { e = e $0 "; " } END { print e == "" ? "none" : e }' <<<"$out")
	if [ -z "$rps" ] || [ -z "$reqs" ]; then
		echo "$out" >&2
		return 1
	fi
	echo "$rps $reqs $((c1 - c0)) ${errs// /_}"
}

part_wrk() {
	local pport qport plain_pid pre_pid plain_w pre_w i order who r rps reqs ticks errs
	local svc=bench-wrk ev0 ev1 col0 col1 pre_reqs=0
	say "[2/6] wrk: nginx (master + 1 worker) plain vs preloaded, $WRK_PAIRS alternating pairs of ${WRK_SECONDS}s, wrk -t1 -c$WRK_CONNS"
	pport=$(free_port) || die "no free port"
	qport=$(free_port) || die "no free port"
	start_nginx plain "$pport"
	plain_pid=$NG_PID plain_w=$NG_WORKER
	start_nginx preloaded "$qport" "${PRELOAD_ENV[@]}" APIPROF_SERVICE=$svc
	pre_pid=$NG_PID pre_w=$NG_WORKER
	note "plain nginx on :$pport (worker $plain_w), preloaded on :$qport (worker $pre_w); 1 s warm-up each"
	wrk_run "$pport" "$plain_w" 1 >/dev/null || die "wrk failed (plain)"
	wrk_run "$qport" "$pre_w" 1 >/dev/null || die "wrk failed (preloaded)"
	sleep 0.5
	ev0=$(events "$svc")
	col0=$(proc_cpu "$COL_PID")
	: >"$T/wrk.runs"
	for i in $(seq "$WRK_PAIRS"); do
		if [ $((i % 2)) = 1 ]; then order="plain preloaded"; else order="preloaded plain"; fi
		for who in $order; do
			if [ "$who" = plain ]; then
				r=$(wrk_run "$pport" "$plain_w" "$WRK_SECONDS") || die "wrk failed"
			else
				r=$(wrk_run "$qport" "$pre_w" "$WRK_SECONDS") || die "wrk failed"
			fi
			read -r rps reqs ticks errs <<<"$r"
			[ "$who" = preloaded ] && pre_reqs=$((pre_reqs + reqs))
			echo "$i $who $rps $reqs $ticks $errs" >>"$T/wrk.runs"
			note "pair $i $(printf '%-9s' "$who") $(fmt %8.0f "$rps") req/s, worker CPU $(calc "$ticks * 1e6 / $CLK_TCK / $reqs" | xargs printf '%.2f') us/request${errs:+ (errors: ${errs//_/ })}"
		done
	done
	# Stop nginx first: the worker hands over what it buffered as it exits.
	stop "$plain_pid" QUIT
	stop "$pre_pid" QUIT
	sleep 1.5
	ev1=$(events "$svc")
	col1=$(proc_cpu "$COL_PID")
	# The preload's own account (its STATS records): events made, dropped.
	local pl_stats=""
	if [ -n "$COL_URL" ]; then
		pl_stats=$(curl -sf --max-time 10 "$COL_URL/api/v1/status" | jq -r --arg s "$svc" \
			'[.processes[] | select(.service == $s)] | "\(map(.events // 0) | add // 0) \(map(.dropped // 0) | add // 0)"' 2>/dev/null)
	fi

	# Per pair: ratio of req/s, and CPU per request (us) of each side.
	awk -v tck="$CLK_TCK" '
		{ rps[$1, $2] = $3; cpu[$1, $2] = $5 * 1e6 / tck / $4; n = $1 }
		END { for (i = 1; i <= n; i++)
			print i, rps[i, "plain"], rps[i, "preloaded"], rps[i, "preloaded"] / rps[i, "plain"],
			      cpu[i, "plain"], cpu[i, "preloaded"], cpu[i, "preloaded"] - cpu[i, "plain"] }' \
		"$T/wrk.runs" >"$T/wrk.pairs"
	WRK_RATIO=$(awk '{ print $4 }' "$T/wrk.pairs" | median)
	WRK_PLAIN=$(awk '{ print $2 }' "$T/wrk.pairs" | median)
	WRK_PRE=$(awk '{ print $3 }' "$T/wrk.pairs" | median)
	CPU_PLAIN=$(awk '{ print $5 }' "$T/wrk.pairs" | median)
	CPU_PRE=$(awk '{ print $6 }' "$T/wrk.pairs" | median)
	CPU_ADDED=$(awk '{ print $7 }' "$T/wrk.pairs" | median)
	local spread_p spread_q
	spread_p=$(awk '{ print $2 }' "$T/wrk.pairs" | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f%%", 100 * (v[NR] - v[1]) / v[1] }')
	spread_q=$(awk '{ print $3 }' "$T/wrk.pairs" | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f%%", 100 * (v[NR] - v[1]) / v[1] }')
	note "median req/s: plain $(fmt %.0f "$WRK_PLAIN"), preloaded $(fmt %.0f "$WRK_PRE"); median ratio $(fmt %.3f "$WRK_RATIO")"
	note "worker CPU per request (median): plain $(fmt %.2f "$CPU_PLAIN") us, preloaded $(fmt %.2f "$CPU_PRE") us, added $(fmt %+.2f "$CPU_ADDED") us"

	local col_line="" evs=""
	if [ -n "$COL_URL" ] && [ -n "$ev0" ] && [ -n "$ev1" ]; then
		evs=$((ev1 - ev0))
		col_line="The collector counted $evs events for the $pre_reqs requests wrk completed against the preloaded nginx (wrk does not count the few in flight when it stops) and used $(calc "($col1 - $col0) * 1e6 / $CLK_TCK / ($evs > 0 ? $evs : 1)" | xargs printf '%.2f') us of CPU per event (utime+stime, on the same 2 CPUs as nginx and wrk)."
		note "collector: $evs events for $pre_reqs completed requests; $(calc "($col1 - $col0) * 1e6 / $CLK_TCK / ($evs > 0 ? $evs : 1)" | xargs printf '%.2f') us CPU per event"
		local pe pd
		read -r pe pd <<<"${pl_stats:-0 0}"
		if [ "${pe:-0}" -gt 0 ]; then
			WRK_DROP_PCT=$(calc "100 * $pd / $pe")
			note "the preload's own count (warm-up included): $pe events, $pd dropped ($(fmt %.1f "$WRK_DROP_PCT")%)"
			col_line="$col_line The preload itself reported $pe events made and $pd dropped ($(fmt %.1f "$WRK_DROP_PCT")%, warm-up runs included)."
		fi
	fi
	[ -n "${WRK_DROP_PCT:-}" ] &&
		row "| events lost by the preload under the wrk load (its own STATS: dropped / made) | | | $(fmt %.1f "$WRK_DROP_PCT")% | 0% | $(verdict "$WRK_DROP_PCT" "<" 0.001) |"
	row "| wrk \`return 200\`, req/s (median of $WRK_PAIRS alternating ${WRK_SECONDS}s pairs; CPU profile of every ${PROFILE_EVERY}th request) | $(fmt %.0f "$WRK_PLAIN") | $(fmt %.0f "$WRK_PRE") | ratio $(fmt %.3f "$WRK_RATIO") (median of pairs) | >= 0.97 (noisy on a shared machine) | $(verdict "$WRK_RATIO" ">=" 0.97) |"
	row "| nginx worker CPU per request, measured (utime+stime / requests, wrk runs) | $(fmt %.2f "$CPU_PLAIN") us | $(fmt %.2f "$CPU_PRE") us | $(fmt %+.2f "$CPU_ADDED") us (median of pairs) | < 1 us | $(verdict "$CPU_ADDED" "<" 1) |"
	detail "### 2. wrk, and 4. CPU per request measured"
	detail ""
	detail "nginx \`worker_processes 1\` (master + worker), same \`return 200\` server, \`wrk -t1 -c$WRK_CONNS -d${WRK_SECONDS}s\`, plain and preloaded running side by side on their own ports, runs alternating (odd pairs plain first). CPU = the worker's utime+stime from /proc/PID/stat (${CLK_TCK} Hz ticks) over the requests wrk completed. Spread between runs: plain $spread_p, preloaded $spread_q. $col_line"
	detail ""
	detail "| pair | plain req/s | preloaded req/s | ratio | plain us CPU/req | preloaded us CPU/req | added us |"
	detail "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	awk '{ printf "| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %+.2f |\n", $1, $2, $3, $4, $5, $6, $7 }' "$T/wrk.pairs" >>"$T/details.md"
	detail ""
}

# ---- 3. hookbench ----------------------------------------------------------------
HOOK_ADDED="" CLOCK_NS=""
part_hook() {
	local f=$T/hookbench.out
	say "[3/6] hookbench: a hooked call on an untracked fd"
	: >"$f"
	note "clock_gettime(CLOCK_MONOTONIC) cost"
	"$BIN/hookbench" --clock >>"$f" || die "hookbench --clock failed"
	note "read/write/recv answered in user space (libfakeio.so), without and with the preload"
	env LD_PRELOAD="$BIN/libfakeio.so" "$BIN/hookbench" --fake "$BIN/libfakeio.so" >>"$f" ||
		die "hookbench failed (fake, plain)"
	env LD_PRELOAD="$LIB:$BIN/libfakeio.so" APIPROF_SOCKET="$T/nowhere.sock" \
		"$BIN/hookbench" --fake "$BIN/libfakeio.so" >>"$f" || die "hookbench failed (fake, preloaded)"
	note "the same through the real system calls on /dev/null"
	"$BIN/hookbench" >>"$f" || die "hookbench failed (plain)"
	env LD_PRELOAD="$LIB" APIPROF_SOCKET="$T/nowhere.sock" "$BIN/hookbench" >>"$f" ||
		die "hookbench failed (preloaded)"
	CLOCK_NS=$(awk '/op=clock_gettime/ { sub(/ns=/, "", $3); print $3 }' "$f")
	# Rows: mode (the header line before them says which preload), op, target, table.
	awk '
		/^hookbench preload=/ { pre = ($2 == "preload=none") ? "plain" : "preloaded"; next }
		/op=(read|write|recv) / {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			print pre, v["op"], v["target"], v["table"], v["base_ns"], v["hooked_ns"], v["added_ns"] }' \
		"$f" >"$T/hook.rows"
	HOOK_ADDED=$(awk '$1 == "preloaded" && $3 == "fake" && $4 == "mapped" { print $7 }' "$T/hook.rows" | sort -g | tail -n 1)
	local floor
	floor=$(awk '$1 == "plain" && $3 == "fake" { x = $7 < 0 ? -$7 : $7; if (x > m) m = x } END { printf "%.2f", m }' "$T/hook.rows")
	sed 's/^/    /' "$T/hook.rows" | awk '$1 == "preloaded"'
	row "| hooked read/write/recv on an untracked fd, ns added (worst of the three, fd table chunk mapped, no syscall) | - | - | $(fmt %+.2f "$HOOK_ADDED") ns | < 5 ns | $(verdict "$HOOK_ADDED" "<" 5) |"
	row "| \`clock_gettime(CLOCK_MONOTONIC)\` (2 per request in the preload) | | | $(fmt %.1f "$CLOCK_NS") ns each | | |"
	detail "### 3. A hooked call on an untracked fd (tests/bench/hookbench.c)"
	detail ""
	detail "Median ns per call over 15 alternating rounds, in one process: *base* calls the next definition directly (libc, or libfakeio.so which answers fd $(awk '/define FAKEIO_FD/ { print $3 }' "$TOP/tests/bench/fakeio.h") without a system call), *hooked* calls the symbol the program sees (the preload's hook when preloaded). *added* is the median of per-round differences. Without the preload both paths are the same function: the largest |added| there, $floor ns, is the noise floor. *empty*: no accepted socket yet (the look-up stops at the table's top pointer); *mapped*: after one accept, so the chunk holding the fd exists, as in a server. The /dev/null rows include a real system call and vary by several ns from run to run."
	detail ""
	detail "| preload | call | target | fd table | base ns | hooked ns | added ns |"
	detail "| --- | --- | --- | --- | ---: | ---: | ---: |"
	awk '{ printf "| %s | %s | %s | %s | %s | %s | %+.2f |\n", $1, $2, $3, $4, $5, $6, $7 }' "$T/hook.rows" >>"$T/details.md"
	detail ""
	detail "\`clock_gettime(CLOCK_MONOTONIC)\`: $(fmt %.1f "$CLOCK_NS") ns per call."
	detail ""
}

# ---- 4. estimate from instructions ---------------------------------------------
part_estimate() {
	[ -n "$CG_ADDED" ] || return 0
	local ghz est clocks=2
	ghz=$(calc "${CPU_MHZ:-3000} / 1000")
	# Under valgrind clock_gettime is a plain system call (no vDSO): its
	# instructions do not show the ~24 ns each costs natively.
	est=$(calc "$CG_ADDED / $ghz + $clocks * ${CLOCK_NS:-24}")
	say "[4/6] preload CPU per request, estimated: $(fmt %.0f "$CG_ADDED") instructions at 1 per cycle at $(fmt %.2f "$ghz") GHz + $clocks clock reads = $(fmt %.0f "$est") ns"
	row "| preload CPU per request, estimated from (1): added instructions at IPC 1 and $(fmt %.2f "$ghz") GHz, + 2 clock reads | | | $(fmt %.2f "$(calc "$est / 1000")") us | < 1 us | $(verdict "$(calc "$est / 1000")" "<" 1) |"
	detail "### 4. CPU per request, estimated"
	detail ""
	detail "$(fmt %.0f "$CG_ADDED") added instructions per request at one instruction per cycle at the $(fmt %.2f "$ghz") GHz /proc/cpuinfo reports = $(fmt %.0f "$(calc "$CG_ADDED / $ghz")") ns, plus 2 \`clock_gettime\` calls at $(fmt %.1f "${CLOCK_NS:-24}") ns that callgrind cannot see (valgrind hides the vDSO, so they count as a few instructions of a system call) = **$(fmt %.0f "$est") ns**. IPC 1 is an assumption: there are no hardware counters here; short branchy parsing code on a warm cache often runs faster, so this is more likely an upper bound. The measured figure is in section 2."
	detail ""
}

# ---- 5. /api/v1/endpoints with a million stored requests -----------------------
# time_calls DIR LABEL URL : API_CALLS sequential timed GETs; prints
# "median p95 max" in ms (and logs them).
time_calls() {
	local d=$1 label=$2 url=$3 _ med p95 max
	for _ in $(seq "$API_CALLS"); do
		curl -s -o /dev/null -w '%{time_total}\n' --max-time 10 "$url"
	done | awk '{ print $1 * 1000 }' | stats >"$d/lat.$label"
	read -r med p95 max <"$d/lat.$label"
	note "$label: median $(fmt %.1f "$med") ms, p95 $(fmt %.1f "$p95") ms, max $(fmt %.1f "$max") ms" >&2
	echo "$med $p95 $max"
}
# ms_cells "MED P95 MAX" : three Markdown table cells.
ms_cells() {
	local med p95 max
	read -r med p95 max <<<"$1"
	echo "$(fmt %.1f "$med") | $(fmt %.1f "$p95") | $(fmt %.1f "$max")"
}

part_api() {
	local d=$T/api i got rows q since n_ok
	say "[5/6] /api/v1/endpoints with $API_REQUESTS stored requests over $API_ROUTES routes"
	if [ "$HAVE_COLLECTOR" != 1 ]; then
		say "SKIPPED: $COLLECTOR is not built (build the collector, then rerun with --only api)"
		row "| \`GET /api/v1/endpoints\` with $API_REQUESTS stored requests | | | skipped: collector not built | < 50 ms | n/a |"
		return 0
	fi
	mkdir -p "$d"
	# Store every raw row (the default samples 1000 per second), so the
	# database really holds them all.
	printf 'max_stored_requests_per_second = 100000000\n' >"$d/collector.conf"
	start_collector "$d" "$d/collector.conf"
	local api_pid=$COL_PID
	note "feeding $API_REQUESTS events dated over the last hour (tests/bench/feed.c, the wire format of shared/wire.c)"
	"$BIN/feed" --socket "$COL_SOCK" --requests "$API_REQUESTS" --routes "$API_ROUTES" \
		--http "${COL_URL#http://}" --spread-s 3600 --service bench-feed >"$d/feed.log" 2>&1 ||
		{ show_log "$d/feed.log"; die "feeding the collector failed"; }
	note "$(cat "$d/feed.log")"
	for i in $(seq 240); do
		q=$(curl -sf --max-time 10 "$COL_URL/api/v1/status" |
			jq -r '"\(.totals.requests) \(.store.rows_written // 0) \(.store.rows_dropped // 0) \(.store.queue_depth // 0)"' 2>/dev/null)
		read -r got rows dropped depth <<<"${q:-0 0 0 0}"
		[ "$got" = "$API_REQUESTS" ] && [ "$depth" = 0 ] && [ "$((rows + dropped))" -ge "$API_REQUESTS" ] && break
		sleep 0.5
	done
	note "collector: totals.requests = $got, rows written = $rows, rows dropped = $dropped"
	sleep 1 # let the writer finish the minute summaries it was on
	API_VERIFIED="totals.requests $got of $API_REQUESTS, $rows raw rows stored"
	[ "$got" = "$API_REQUESTS" ] || API_VERIFIED="$API_VERIFIED (**not all arrived**)"
	n_ok=$(curl -sf --max-time 10 "$COL_URL/api/v1/endpoints" | jq '.endpoints | length')
	since=$(($(date +%s) - 7200))
	curl -s -o "$d/endpoints.json" "$COL_URL/api/v1/endpoints"
	local bytes
	bytes=$(wc -c <"$d/endpoints.json")
	local all period restarted
	all=$(time_calls "$d" all "$COL_URL/api/v1/endpoints")
	period=$(time_calls "$d" period "$COL_URL/api/v1/endpoints?since=$since")
	note "restarting the collector on the same database"
	stop "$api_pid" TERM
	local t0 t1
	t0=$(date +%s.%N)
	start_collector "$d" "$d/collector.conf"
	t1=$(date +%s.%N)
	restarted=$(time_calls "$d" restarted "$COL_URL/api/v1/endpoints")
	local rcount
	rcount=$(curl -sf --max-time 10 "$COL_URL/api/v1/endpoints" | jq '[.endpoints[].count] | add // 0')
	stop "$COL_PID" TERM
	local dbsize
	dbsize=$(du -sm "$d" | awk '{ print $1 }')
	local med p95 max
	read -r med p95 max <<<"$all"
	row "| \`GET /api/v1/endpoints\`, $API_REQUESTS stored requests, $n_ok rows, $API_CALLS calls: median / p95 / max | | | $(fmt %.1f "$med") / $(fmt %.1f "$p95") / $(fmt %.1f "$max") ms | < 50 ms (p95) | $(verdict "$p95" "<" 50) |"
	detail "### 5. \`GET /api/v1/endpoints\` with a million stored requests"
	detail ""
	detail "A fresh collector (\`max_stored_requests_per_second = 100000000\` so every raw row is stored) fed $API_REQUESTS request events by tests/bench/feed.c over $API_ROUTES routes (Zipf-like mix, ids templated to \`{id}\`), dated evenly over the last hour so that minute summaries are closed and stored; the feeder waits whenever the store's queue passes 20000 rows. Verified: $API_VERIFIED; database dir ${dbsize} MiB. $API_CALLS sequential \`curl\` calls each (\`%{time_total}\`, connection set-up included); the answer is $bytes bytes."
	detail ""
	detail "| call | median ms | p95 ms | max ms |"
	detail "| --- | ---: | ---: | ---: |"
	detail "| \`/api/v1/endpoints\` (all time, from memory) | $(ms_cells "$all") |"
	detail "| \`/api/v1/endpoints?since=<2 h ago>\` (stored minute sketches merged) | $(ms_cells "$period") |"
	detail "| \`/api/v1/endpoints\` after a restart ($(fmt %.1f "$(calc "$t1 - $t0")") s to answer /healthz; counts $rcount) | $(ms_cells "$restarted") |"
	detail ""
}

# ---- 6. SQL: the preload's cost per libpq statement ------------------------------
PG_BINDIR=${AP_PG_BINDIR:-/usr/lib/postgresql/15/bin}
SQL_NAMES="select1 where orm"
declare -A SQLV=()

# start_pg DIR : a throwaway PostgreSQL 15 in DIR (as `postgres` when we are
# root, as tests/integration/dblib.sh runs it), trust authentication, fsync
# off, on 127.0.0.1 at a free port; sets PG_PID and PG_PORT.
start_pg() {
	local d=$1 i as=()
	mkdir -p "$d"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "there is no 'postgres' user (package postgresql-15 creates it)"
		chown postgres: "$d"
		as=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
	fi
	"${as[@]}" env LC_ALL=C "$PG_BINDIR/initdb" -D "$d/data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync --no-instructions >"$d/initdb.log" 2>&1 ||
		{ show_log "$d/initdb.log"; die "initdb failed"; }
	PG_PORT=$(free_port) || die "no free port"
	"${as[@]}" "$PG_BINDIR/postgres" -D "$d/data" -c listen_addresses=127.0.0.1 \
		-c port="$PG_PORT" -c unix_socket_directories="$d" -c fsync=off \
		-c synchronous_commit=off -c full_page_writes=off -c max_connections=20 \
		-c shared_buffers=16MB -c logging_collector=off >"$d/postgres.log" 2>&1 &
	PG_PID=$!
	PIDS="$PIDS $PG_PID"
	for i in $(seq 150); do
		"$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres && return 0
		kill -0 "$PG_PID" 2>/dev/null || { show_log "$d/postgres.log"; die "PostgreSQL exited at start"; }
		sleep 0.1
	done
	show_log "$d/postgres.log"
	die "PostgreSQL did not accept connections within 15 s"
}

# shellcheck disable=SC2086 # compiler flags are words
build_pqbench() {
	local pq
	pq=$(pkg-config --cflags --libs libpq 2>/dev/null) || pq="-I$(pg_config --includedir) -lpq"
	"$CC" -O2 -Wall -shared -fPIC -o "$BIN/libfakepq.so" "$TOP/tests/bench/fakepq.c" -ldl &&
		"$CC" -O2 -Wall -I"$BUILD" -I"$TOP/shared" -o "$BIN/pqbench" \
			"$TOP/tests/bench/pqbench.c" "$TOP/shared/sql.c" $pq -ldl
}

# cg_incl PROFILE FUNCTION : the function's inclusive instructions.
cg_incl() {
	callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null |
		awk -v f="$2" '$1 ~ /^[0-9,]+$/ {
			for (i = 2; i <= NF; i++) {
				spec = $i; sub(/\047[0-9]+$/, "", spec); n = split(spec, p, ":")
				if (n > 1 && p[n] == f) { v = $1; gsub(",", "", v); if (v + 0 > m) m = v + 0 }
			} }
			END { print m + 0 }'
}

# kv LINE KEY : the value of KEY=VALUE in a pqbench output line.
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1; }

# queries_calls SERVICE : "CALLS SHAPE" the collector holds for SERVICE.
queries_calls() {
	curl -sf --max-time 10 --get --data-urlencode "service=$1" "$COL_URL/api/v1/queries" |
		jq -r '"\([.queries[].calls] | add // 0) \(.queries[0].sql // "")"' 2>/dev/null
}

# sql_all KEY [FORMAT] : "a / b / c", KEY's value for each statement.
sql_all() {
	local k=$1 f=${2:-%.0f} out="" x
	for x in $SQL_NAMES; do
		out="$out${out:+ / }$(fmt "$f" "${SQLV[$x.$k]}")"
	done
	echo "$out"
}
# sql_cpu_verdicts LIMIT : sql_verdicts of the client CPU added, but
# "noisy" for a statement whose pairs spread by more than LIMIT: the median
# of such pairs cannot tell the target from its miss.
sql_cpu_verdicts() {
	local out="" x v
	for x in $SQL_NAMES; do
		v=$(verdict "${SQLV[$x.ca]}" "<" "$1")
		awk -v w="${SQLV[$x.cspread]}" -v l="$1" 'BEGIN { exit !(w > l) }' </dev/null && v=noisy
		out="$out${out:+ / }$v"
	done
	echo "$out"
}
# sql_verdicts KEY LIMIT : "met / met / **missed**", KEY's value < LIMIT
# for each statement.
sql_verdicts() {
	local out="" x
	for x in $SQL_NAMES; do
		out="$out${out:+ / }$(verdict "${SQLV[$x.$1]}" "<" "$2")"
	done
	echo "$out"
}

# need_collector_and_pg PART ROW : 1 (the part skipped, ROW in the table)
# without a built collector; dies without PostgreSQL 15's server programs.
need_collector_and_pg() {
	local prog
	if [ "$HAVE_COLLECTOR" != 1 ]; then
		say "SKIPPED: $COLLECTOR is not built (build the collector, then rerun with --only $1)"
		row "$2"
		return 1
	fi
	for prog in initdb postgres pg_isready; do
		[ -x "$PG_BINDIR/$prog" ] || die "$PG_BINDIR/$prog is missing (package postgresql-15)"
	done
}

part_sql() {
	local d=$T/sql s mode n total conninfo who i order r
	say "[6/6] SQL: the preload's cost per libpq PQexec statement, against a throwaway PostgreSQL 15"
	need_collector_and_pg sql \
		"| libpq \`PQexec\`: the preload's cost per statement | | | skipped: collector not built | < 2 us | n/a |" ||
		return 0
	mkdir -p "$d"
	chmod 755 "$d"
	build_pqbench >"$d/build.log" 2>&1 ||
		{ show_log "$d/build.log"; die "compiling tests/bench/pqbench.c failed (libpq-dev installed?)"; }
	start_collector "$d/col"
	local col_pid=$COL_PID
	start_pg "$d/pg"
	local pg_version
	pg_version=$("$PG_BINDIR/postgres" --version | awk '{ print $3 }')
	note "collector $COL_URL, PostgreSQL $pg_version (pid $PG_PID) on 127.0.0.1:$PG_PORT"
	conninfo="host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres sslmode=disable gssencmode=disable connect_timeout=10"
	"$BIN/pqbench" --conninfo "$conninfo" --setup >"$d/setup.log" 2>&1 ||
		{ show_log "$d/setup.log"; die "pqbench --setup failed"; }
	"$BIN/pqbench" --list >"$d/statements.txt"
	local pre=(LD_PRELOAD="$LIB" APIPROF_SOCKET="$COL_SOCK")
	local dn=$((SQL_N2 - SQL_N1))

	# (a) Instructions. The server is another process: only the client's
	# instructions are counted, so database time is excluded by
	# construction; two statement counts so start-up cancels.
	note "callgrind: pqbench running $SQL_N1 and $SQL_N2 statements, plain and preloaded"
	for s in $SQL_NAMES; do
		for mode in plain preloaded; do
			for n in "$SQL_N1" "$SQL_N2"; do
				local envs=()
				[ "$mode" = preloaded ] && envs=("${pre[@]}" "APIPROF_SERVICE=bench-sql-cg-$s")
				env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.$s.$mode.$n" \
					"$BIN/pqbench" --conninfo "$conninfo" --sql "$s" --n "$n" --warm 100 \
					>"$d/valgrind.$s.$mode.$n.log" 2>&1 ||
					{ show_log "$d/valgrind.$s.$mode.$n.log"; die "pqbench failed under callgrind ($s, $mode, N=$n)"; }
				total=$(awk '/^totals:/ { print $2 }' "$d/callgrind.$s.$mode.$n")
				[ -n "$total" ] || { show_log "$d/valgrind.$s.$mode.$n.log"; die "no callgrind totals for $s $mode N=$n"; }
				SQLV[$s.cg.$mode.$n]=$total
			done
		done
		SQLV[$s.ip]=$(calc "(${SQLV[$s.cg.plain.$SQL_N2]} - ${SQLV[$s.cg.plain.$SQL_N1]}) / $dn")
		SQLV[$s.iq]=$(calc "(${SQLV[$s.cg.preloaded.$SQL_N2]} - ${SQLV[$s.cg.preloaded.$SQL_N1]}) / $dn")
		SQLV[$s.ia]=$(calc "${SQLV[$s.iq]} - ${SQLV[$s.ip]}")
		local f
		# ap_sql_normalize_fp fingerprints as it writes (the preload's
		# call); ap_sql_normalize + ap_sql_fingerprint, a second pass,
		# is what sources before 2026-12-07 called
		for f in ap_sql_normalize_fp ap_sql_normalize ap_sql_fingerprint; do
			SQLV[$s.$f]=$(calc "($(cg_incl "$d/callgrind.$s.preloaded.$SQL_N2" "$f") - $(cg_incl "$d/callgrind.$s.preloaded.$SQL_N1" "$f")) / $dn")
		done
		SQLV[$s.normfp]=$(calc "${SQLV[$s.ap_sql_normalize_fp]} + ${SQLV[$s.ap_sql_normalize]}")
		note "$(printf '%-8s' "$s") plain $(fmt %.0f "${SQLV[$s.ip]}") instr/statement, preloaded $(fmt %.0f "${SQLV[$s.iq]}"), added $(fmt %+.0f "${SQLV[$s.ia]}") (normalise $(fmt %.0f "${SQLV[$s.normfp]}"), fingerprint as a second pass $(fmt %.0f "${SQLV[$s.ap_sql_fingerprint]}"))"
	done
	python3 "$TOP/tests/bench/cgdiff.py" "$SQL_N1" "$SQL_N2" \
		"$d/callgrind.where.plain.$SQL_N1" "$d/callgrind.where.plain.$SQL_N2" \
		"$d/callgrind.where.preloaded.$SQL_N1" "$d/callgrind.where.preloaded.$SQL_N2" 12 \
		2>"$d/cgdiff.log" | sed 's/per request/per statement/g; s/instr\/request/instr\/statement/g; s/calls\/request/calls\/statement/g; s/(+\([0-9]*\)\/request)/(+\1\/statement)/' >"$d/cgdiff.md" ||
		{ show_log "$d/cgdiff.log"; echo "(cgdiff.py failed)" >"$d/cgdiff.md"; }

	# (b) The hook's own time, in one process, against a stub libpq.
	note "in-process against a stub libpq (tests/bench/fakepq.c): PQexec through the hook minus direct"
	r=$(env LD_PRELOAD="$BIN/libfakepq.so" "$BIN/pqbench" --fake "$BIN/libfakepq.so" --sql where \
		--rounds 5 --pause-ms 0) || die "pqbench --fake failed (no preload)"
	SQLV[fake.floor]=$(kv "$r" added_ns)
	for s in $SQL_NAMES; do
		r=$(env APIPROF_SOCKET="$COL_SOCK" APIPROF_SERVICE="bench-sql-fake-$s" \
			LD_PRELOAD="$LIB:$BIN/libfakepq.so" "$BIN/pqbench" --fake "$BIN/libfakepq.so" --sql "$s") ||
			die "pqbench --fake failed ($s, preloaded)"
		SQLV[$s.fake]=$(kv "$r" added_ns)
		SQLV[$s.fakeus]=$(calc "${SQLV[$s.fake]} / 1000")
		SQLV[$s.norm]=$(kv "$r" normalize_ns)
		SQLV[$s.fake.calls]=$(kv "$r" calls)
		SQLV[$s.bytes]=$(kv "$r" bytes)
		note "$(printf '%-8s' "$s") $(fmt %.0f "${SQLV[$s.fake]}") ns added per statement (direct $(kv "$r" base_ns) ns, hooked $(kv "$r" hooked_ns) ns); normalise + fingerprint alone $(fmt %.0f "${SQLV[$s.norm]}") ns"
		r=$("$BIN/pqbench" --normalize "$s" --n 1 --rounds 1) || die "pqbench --normalize $s failed"
		SQLV[$s.shape]=$(sed -n 's/.* shape="\(.*\)"$/\1/p' <<<"$r")
	done

	# (c) Client CPU against the server, plain and preloaded alternating.
	note "client CPU (utime+stime, every thread): $SQL_PAIRS alternating pairs of $SQL_RUN statements each"
	: >"$d/cpu.runs"
	for s in $SQL_NAMES; do
		for i in $(seq "$SQL_PAIRS"); do
			if [ $((i % 2)) = 1 ]; then order="plain preloaded"; else order="preloaded plain"; fi
			for who in $order; do
				if [ "$who" = plain ]; then
					r=$("$BIN/pqbench" --conninfo "$conninfo" --sql "$s" --n "$SQL_RUN" --warm 500)
				else
					r=$(env "${pre[@]}" "APIPROF_SERVICE=bench-sql-cpu-$s" "$BIN/pqbench" \
						--conninfo "$conninfo" --sql "$s" --n "$SQL_RUN" --warm 500)
				fi || die "pqbench failed ($s, $who)"
				echo "$s $i $who $(kv "$r" cpu_ns) $(kv "$r" wall_ns)" >>"$d/cpu.runs"
			done
		done
		awk -v s="$s" -v n="$SQL_RUN" '$1 == s { c[$2, $3] = $4 / n / 1000; k = $2 }
			END { for (i = 1; i <= k; i++) print i, c[i, "plain"], c[i, "preloaded"], c[i, "preloaded"] - c[i, "plain"] }' \
			"$d/cpu.runs" >"$d/cpu.$s.pairs"
		SQLV[$s.cp]=$(awk '{ print $2 }' "$d/cpu.$s.pairs" | median)
		SQLV[$s.cq]=$(awk '{ print $3 }' "$d/cpu.$s.pairs" | median)
		SQLV[$s.ca]=$(awk '{ print $4 }' "$d/cpu.$s.pairs" | median)
		SQLV[$s.crange]=$(awk '{ print $4 }' "$d/cpu.$s.pairs" | sort -g | awk '{ v[NR] = $1 } END { printf "%+.2f to %+.2f", v[1], v[NR] }')
		SQLV[$s.cspread]=$(awk '{ print $4 }' "$d/cpu.$s.pairs" | sort -g | awk '{ v[NR] = $1 } END { print v[NR] - v[1] }')
		note "$(printf '%-8s' "$s") plain $(fmt %.2f "${SQLV[$s.cp]}") us, preloaded $(fmt %.2f "${SQLV[$s.cq]}") us, added $(fmt %+.2f "${SQLV[$s.ca]}") us (median of pairs; pairs ${SQLV[$s.crange]} us)"
	done

	# Were the statements captured? Every process has exited (each hands
	# over what it buffered as it exits); give the collector a moment.
	sleep 1.5
	local kind want_calls got shape verified="" bad=0
	for s in $SQL_NAMES; do
		for kind in cg fake cpu; do
			case $kind in
			cg) want_calls=$((SQL_N1 + SQL_N2 + 200)) ;;
			fake) want_calls=${SQLV[$s.fake.calls]} ;;
			cpu) want_calls=$((SQL_PAIRS * (SQL_RUN + 500))) ;;
			esac
			read -r got shape <<<"$(queries_calls "bench-sql-$kind-$s")"
			SQLV[$s.$kind.got]=${got:-0}
			[ "${got:-0}" = "$want_calls" ] || bad=1
			[ "$kind" = cg ] && SQLV[$s.colshape]=$shape
			verified="$verified $s/$kind ${got:-0}/$want_calls;"
		done
	done
	local pl_stats pe pd
	pl_stats=$(curl -sf --max-time 10 "$COL_URL/api/v1/status" | jq -r \
		'[.processes[] | select(.service | startswith("bench-sql-"))] | "\(map(.events // 0) | add // 0) \(map(.dropped // 0) | add // 0)"' 2>/dev/null)
	read -r pe pd <<<"${pl_stats:-0 0}"
	note "statements the collector counted (got/sent):$verified"
	note "the preloaded processes' own count: $pe events, $pd dropped"
	local captured
	if [ "$bad" = 0 ]; then
		captured="every statement sent reached the collector: /api/v1/queries counted, for each statement's service, $((SQL_N1 + SQL_N2 + 200)) calls over the two preloaded callgrind runs, ${SQLV[where.fake.calls]} in the in-process run and $((SQL_PAIRS * (SQL_RUN + 500))) over the client CPU runs (warm-up included)"
	else
		captured="**not every statement reached the collector**: /api/v1/queries counted (got / sent, warm-up included):$verified"
	fi
	stop "$PG_PID" INT
	stop "$col_pid" TERM

	# Clock reads: 2 per statement, invisible to callgrind (no vDSO).
	if [ -z "$CLOCK_NS" ]; then
		CLOCK_NS=$("$BIN/hookbench" --clock | awk '/op=clock_gettime/ { sub(/ns=/, "", $3); print $3 }')
	fi
	local ghz
	ghz=$(calc "${CPU_MHZ:-3000} / 1000")
	for s in $SQL_NAMES; do
		SQLV[$s.est]=$(calc "(${SQLV[$s.ia]} / $ghz + 2 * ${CLOCK_NS:-24}) / 1000")
	done

	local label="\`SELECT 1\` / \`where\` (${SQLV[where.bytes]} B) / \`orm\` (${SQLV[orm.bytes]} B)"
	row "| libpq \`PQexec\`, client instructions per statement (callgrind, ($SQL_N2 - $SQL_N1 statements) / $dn; the server is another process): $label | $(sql_all ip) | $(sql_all iq) | $(sql_all ia %+.0f) | | |"
	row "| preload CPU per \`PQexec\` statement, measured in-process against a stub libpq (warm, median of 21 rounds): $label | | | $(sql_all fakeus '%.2f') us | < 2 us | $(sql_verdicts fakeus 2) |"
	row "| preload CPU per \`PQexec\` statement, estimated from the instructions at IPC 1 and $(fmt %.2f "$ghz") GHz + 2 clock reads (an upper bound): $label | | | $(sql_all est '%.2f') us | < 2 us | $(sql_verdicts est 2) |"
	row "| preload CPU per \`PQexec\` statement, measured: client utime+stime against PostgreSQL (median of $SQL_PAIRS alternating pairs of $SQL_RUN): $label | $(sql_all cp %.2f) us | $(sql_all cq %.2f) us | $(sql_all ca %+.2f) us | < 2 us | $(sql_cpu_verdicts 2) |"
	row "| of which the normaliser + fingerprint alone (\`ap_sql_normalize_fp\`, in-process, warm): $label | | | $(sql_all norm) ns | | |"

	detail "### 6. Cost per SQL statement (libpq \`PQexec\`)"
	detail ""
	detail "tests/bench/pqbench.c runs \`PQexec\` + \`PQclear\` of one statement over and over on one connection to a throwaway PostgreSQL $pg_version (127.0.0.1, TCP, \`sslmode=disable\`, fsync off), each result checked (one row). Preloaded: with a live apiprof-collector and default settings (literals stripped). The statements:"
	detail ""
	for s in $SQL_NAMES; do
		detail "- \`$s\` (${SQLV[$s.bytes]} bytes): \`$(awk -F'\t' -v s="$s" '$1 == s { print $2 }' "$d/statements.txt")\` -> shape \`${SQLV[$s.shape]}\`"
	done
	detail ""
	detail "Three measurements: **instructions**: \`valgrind --tool=callgrind\` of the client with $SQL_N1 and $SQL_N2 statements (+100 warm-up), plain and preloaded, per statement = (I($SQL_N2) - I($SQL_N1)) / $dn; the server is another process, so its time is excluded by construction, and everything the preload does in the client (its shipper thread included) is in. *normalise* is the inclusive instructions per statement, in the preloaded runs, of \`ap_sql_normalize_fp\` (which fingerprints the shape as it writes it; with an older source, of \`ap_sql_normalize\`), *fingerprint* those of \`ap_sql_fingerprint\`, which the preload calls now only for a cut shape (older sources: a second pass over every shape). **Estimated** time: the added instructions at one per cycle at the $(fmt %.2f "$ghz") GHz /proc/cpuinfo reports, plus the 2 \`clock_gettime\` calls per statement at $(fmt %.1f "${CLOCK_NS:-24}") ns that callgrind cannot see. **In-process**: \`pqbench --fake\` with \`LD_PRELOAD=libapiprof.so:libfakepq.so\` (tests/bench/fakepq.c answers \`PQexec\` on a magic connection with a one-row result, no server): \`PQexec\` through the hook minus \`PQexec\` called directly, median of the per-round differences over 21 alternating rounds of 5000, a 150 ms pause after each round so the shipper drains the buffer (no statement dropped for want of room); without the preload the same reads $(fmt %+.2f "${SQLV[fake.floor]}") ns. The stub's \`PQexec\` does not call \`PQsendQuery\`/\`PQgetResult\` as libpq's does, so the hooks' pass-through of those inner calls (about 110 instructions) and glibc's multi-threaded paths in libpq's system calls (about 100, see below) are not in this figure; the same statement repeated trains the branch predictor, so this is the warm, best case. **Client CPU**: \`CLOCK_PROCESS_CPUTIME_ID\` (utime+stime of every thread, the shipper included) over $SQL_RUN statements after 500 warm-up, plain and preloaded runs alternating, $SQL_PAIRS pairs per statement; the round trip's system calls make most of it. *Normaliser alone*: in the same rounds of \`pqbench --fake\`, \`ap_sql_normalize_fp\` called on the statement as \`pl_stmt_end\` calls it (shared/sql.c compiled into pqbench with -O2), median ns per statement: a tight loop over one statement, which runs the same instructions faster than the hook does between its other work, so a floor rather than a share. A verdict reads *noisy* where the client CPU pairs spread by more than the 2 us target."
	detail ""
	detail "| statement | bytes | instr plain | instr preloaded | added | of which normalise | fingerprint | estimate (IPC 1) |"
	detail "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for s in $SQL_NAMES; do
		detail "| \`$s\` | ${SQLV[$s.bytes]} | $(fmt %.1f "${SQLV[$s.ip]}") | $(fmt %.1f "${SQLV[$s.iq]}") | $(fmt %+.1f "${SQLV[$s.ia]}") | $(fmt %.1f "${SQLV[$s.normfp]}") | $(fmt %.1f "${SQLV[$s.ap_sql_fingerprint]}") | $(fmt %.2f "${SQLV[$s.est]}") us |"
	done
	detail ""
	detail "| statement | in-process, hook added | normaliser + fingerprint alone | client CPU plain | client CPU preloaded | added (median of pairs) | pairs range |"
	detail "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for s in $SQL_NAMES; do
		detail "| \`$s\` | $(fmt %.0f "${SQLV[$s.fake]}") ns | $(fmt %.0f "${SQLV[$s.norm]}") ns | $(fmt %.2f "${SQLV[$s.cp]}") us | $(fmt %.2f "${SQLV[$s.cq]}") us | $(fmt %+.2f "${SQLV[$s.ca]}") us | ${SQLV[$s.crange]} us |"
	done
	detail ""
	detail "Captured: $captured; the preloaded processes reported $pe events made and $pd dropped. The shape the collector shows for \`where\`: \`${SQLV[where.colshape]}\`."
	detail ""
	detail "Where the added instructions of \`where\` go (callgrind, preloaded - plain):"
	detail ""
	cat "$d/cgdiff.md" >>"$T/details.md"
	detail ""
}

# store_rate DIR DB : feeds STORE_N request events to a fresh collector
# storing into DB and prints "rows seconds dropped": rows written, seconds
# from the first event sent to the last row committed, rows dropped.
store_rate() {
	local d=$1 db=$2 t0 t1 i q rows dropped depth
	printf 'max_stored_requests_per_second = 100000000\n' >"$d.conf"
	start_collector "$d" "$d.conf" "$db"
	t0=$(date +%s.%N)
	"$BIN/feed" --socket "$COL_SOCK" --requests "$STORE_N" --routes 200 \
		--http "${COL_URL#http://}" --service bench-store >"$d/feed.log" 2>&1 ||
		{ show_log "$d/feed.log"; die "feeding the collector failed"; }
	for i in $(seq 1200); do
		q=$(curl -sf --max-time 10 "$COL_URL/api/v1/status" |
			jq -r '"\(.store.rows_written // 0) \(.store.rows_dropped // 0) \(.store.queue_depth // 0)"' 2>/dev/null)
		read -r rows dropped depth <<<"${q:-0 0 0}"
		[ "$depth" = 0 ] && [ "$((rows + dropped))" -ge "$STORE_N" ] && break
		sleep 0.1
	done
	t1=$(date +%s.%N)
	stop "$COL_PID" TERM
	printf '%s %s %s\n' "$rows" "$(calc "$t1 - $t0")" "$dropped"
}

part_store() {
	local d=$T/store lite pg pg_version
	say "[7/7] store: request rows stored per second, SQLite and PostgreSQL"
	need_collector_and_pg store \
		"| request rows stored per second: SQLite / PostgreSQL | | | skipped: collector not built | | n/a |" ||
		return 0
	mkdir -p "$d"
	chmod 755 "$d"
	lite=$(store_rate "$d/sqlite" "$d/sqlite/apiprof.db")
	note "SQLite: rows seconds dropped = $lite"
	start_pg "$d/pg"
	pg_version=$("$PG_BINDIR/postgres" --version | awk '{ print $3 }')
	PGCONNECT_TIMEOUT=10 psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
		-c "CREATE DATABASE bench" >/dev/null || die "creating the PostgreSQL database failed"
	pg=$(store_rate "$d/postgresql" "postgresql://postgres@127.0.0.1:$PG_PORT/bench")
	note "PostgreSQL $pg_version: rows seconds dropped = $pg"
	stop "$PG_PID" INT
	local lr ls ld pr ps pd
	read -r lr ls ld <<<"$lite"
	read -r pr ps pd <<<"$pg"
	row "| request rows stored per second (no statements), end to end: SQLite / PostgreSQL | | | $(fmt %.0f "$(calc "$lr / $ls")") / $(fmt %.0f "$(calc "$pr / $ps")") rows/s | | |"
	detail "### 7. Request rows stored per second"
	detail ""
	detail "A fresh collector per backend (\`max_stored_requests_per_second = 100000000\`: every raw row stored) fed $STORE_N request events (no statements) by tests/bench/feed.c over 200 routes, the feeder waiting whenever the store's queue passes 20000 rows; timed from the first event sent until every row is committed (\`/api/v1/status\` polled every 0.1 s). SQLite: a WAL file in the temp dir; PostgreSQL $pg_version on 127.0.0.1 (TCP, fsync off, as in part 6), batches written with COPY in one transaction each, partitions by day. Dropped rows would be counted here, not stored."
	detail ""
	detail "| backend | rows stored | seconds | rows/s | dropped |"
	detail "| --- | ---: | ---: | ---: | ---: |"
	detail "| SQLite | $lr | $(fmt %.1f "$ls") | $(fmt %.0f "$(calc "$lr / $ls")") | $ld |"
	detail "| PostgreSQL $pg_version | $pr | $(fmt %.1f "$ps") | $(fmt %.0f "$(calc "$pr / $ps")") | $pd |"
	detail ""
}

want cg && part_callgrind
want wrk && part_wrk
want node && part_node
want h2 && part_h2
# The collector of parts 1-2 and 8 is idle from here on: stop it anyway.
[ -n "$LIVE" ] && stop "$COL_PID" TERM
want hook && part_hook
want cg && part_estimate
want api && part_api
want sql && part_sql
want store && part_store

# ---- the summary -------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "<!-- scripts/bench.sh summary: begin -->"
	echo "Run $DATE on $NPROC CPUs ($CPU_MODEL, ${CPU_MHZ} MHz), kernel $KERNEL, $NGINX_VERSION, $VALGRIND_VERSION, $WRK_VERSION; source $REV, build \`$BUILD\`, collector \`$([ "$HAVE_COLLECTOR" = 1 ] && echo "$COLLECTOR" || echo "not built")\`. Load average at start $LOAD_START, at end $LOAD_END."
	echo
	echo "| measure | plain | preloaded | added / result | target | verdict |"
	echo "| --- | ---: | ---: | ---: | --- | --- |"
	cat "$T/table.md"
	echo
	cat "$T/details.md"
	echo "<!-- scripts/bench.sh summary: end -->"
} >"$SUMMARY"
echo
say "summary (Markdown, for BENCHMARKS.md)"
echo
cat "$SUMMARY"
