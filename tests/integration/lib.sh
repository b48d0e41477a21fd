# tests/integration/lib.sh - helpers sourced by the integration tests (bash).
#
# Every test gets a private temp dir ($AP_TMP), free ports chosen at run time,
# its own collector, and a cleanup trap that stops every process it started
# (by pid) and removes the temp dir. The logs of every process live in
# $AP_TMP/*.log and are printed when a test fails, so `make check` keeps them
# in the test's .log file.
#
# Exit codes follow the Automake test harness: 0 pass, 1 fail, 77 skip. A test
# skips only when a program it needs is missing and we are not root; as root,
# scripts/test.sh installs every program the tests use, so a missing one is a
# failure.
#
# Environment: APIPROF_TOP_BUILDDIR and APIPROF_TOP_SRCDIR (exported by
# tests/Makefile.am; default: the repository holding this file, built in
# tree); AP_KEEP_TMP=1 keeps the temp dir; AP_DEBUG=1 sets APIPROF_DEBUG=1
# in the preloaded servers; AP_TIMEOUT (default 240) seconds before a test is
# stopped as hung.
#
# Waits are generous and end as soon as their condition holds: two tests
# at a time beside compilers, or a sanitizer build, make everything two to
# three times slower than on an idle machine, and a wait that runs out
# fails the test. The watchdog, too, is only there for hung tests.

set -u
set -o pipefail
umask 022
# nginx lives in /usr/sbin, which is not in every user's PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH=$PATH:/usr/sbin:/sbin ;;
esac

AP_NAME=$(basename "$0" .sh)
AP_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AP_SRCDIR=${APIPROF_TOP_SRCDIR:-$(cd "$AP_LIBDIR/../.." && pwd)}
AP_BUILDDIR=${APIPROF_TOP_BUILDDIR:-$AP_SRCDIR}
AP_COLLECTOR=$AP_BUILDDIR/collector/apiprof-collector
AP_CLI=$AP_BUILDDIR/collector/apiprof
AP_THREADED=$AP_BUILDDIR/tests/servers/threaded_server
AP_NODE_SERVER=$AP_SRCDIR/tests/servers/node_server.js
# Debian's python3 for our helper scripts: a pyenv shim first in PATH costs
# seconds per start on a loaded machine.
AP_PY=python3
[ -x /usr/bin/python3 ] && AP_PY=/usr/bin/python3
AP_START=$(date +%s)

AP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/apiprof-$AP_NAME.XXXXXX") || exit 99
# Readable by other users: nginx workers run as www-data when we are root and
# must reach the collector's socket and the files they serve.
chmod 755 "$AP_TMP"
AP_SOCK=$AP_TMP/apiprof.sock
AP_PIDS=""
AP_PIDFILES=""
AP_SERVICE=${AP_SERVICE:-it-$AP_NAME}

ap_log() { printf '%s: %s\n' "$AP_NAME" "$*"; }

# Prints the tail of every log in the temp dir (collector, servers, clients).
ap_dump_logs() {
	local f
	for f in "$AP_TMP"/*.log "$AP_TMP"/*/error.log; do
		[ -s "$f" ] || continue
		printf -- '----- %s (last 60 lines) -----\n' "${f#"$AP_TMP"/}" >&2
		tail -n 60 "$f" >&2
	done
}

# Fails the test, also from inside $(...) or a pipeline: a subshell signals
# the test's shell, whose trap exits; the exit trap prints the logs.
ap_fail() {
	printf '%s: FAIL: %s\n' "$AP_NAME" "$*" >&2
	if [ "$BASHPID" != "$$" ]; then
		kill -USR1 $$ 2>/dev/null
	fi
	exit 1
}

ap_skip() {
	printf '%s: SKIP: %s\n' "$AP_NAME" "$*"
	exit 77
}

# ap_require PROGRAM... : each must be runnable (a name in PATH or a path).
ap_require() {
	local p
	for p in "$@"; do
		if ! command -v "$p" >/dev/null 2>&1; then
			if [ "$(id -u)" -eq 0 ]; then
				ap_fail "required program '$p' is missing (scripts/test.sh installs it)"
			fi
			ap_skip "required program '$p' is missing (run scripts/test.sh as root to install it)"
		fi
	done
}

# The build products every integration test needs. They are part of the
# build, never optional: a missing one is a failure.
ap_require_build() {
	local f
	for f in "$(ap_preload)" "$AP_COLLECTOR" "$@"; do
		[ -e "$f" ] || ap_fail "$f is missing: build the project first (make, then make check)"
	done
}

# ap_require_dynamic_busybox : fails unless `busybox` is Debian's busybox
# package. busybox-static's is linked statically: it never calls the hooked
# functions (README, What it cannot see).
ap_require_dynamic_busybox() {
	ldd "$(command -v busybox)" >/dev/null 2>&1 ||
		ap_fail "$(command -v busybox) is statically linked: install Debian's busybox package (scripts/test.sh does)"
}

# The library to preload. APIPROF_TEST_PRELOAD overrides it: a sanitizer
# build (scripts/test.sh) runs its own collector with the plain build's
# library, since an ASan-built library cannot be preloaded into nginx.
ap_preload() { printf '%s\n' "${APIPROF_TEST_PRELOAD:-$AP_BUILDDIR/preload/.libs/libapiprof.so}"; }

# What LD_PRELOAD holds for a preloaded process: the library, after
# APIPROF_TEST_PRELOAD_FIRST when set. The ThreadSanitizer stage of
# scripts/test.sh sets it to libtsan.so.N: a TSan-built library in an
# uninstrumented program needs the TSan runtime loaded before libc, or its
# interceptors are never reached and the first thread crashes.
AP_PRELOAD_FIRST=${APIPROF_TEST_PRELOAD_FIRST:-}
ap_preload_env() { printf '%s\n' "${AP_PRELOAD_FIRST:+$AP_PRELOAD_FIRST:}$(ap_preload)"; }

# Stops a process by pid: TERM, then KILL after 15 s (a loaded sanitizer
# build's collector takes seconds to flush and exit).
ap_stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

ap_cleanup() {
	local rc=$? pid f
	# USR1 ignored, not reset: when several subshells fail at once (checks
	# run in parallel), the second one's ap_fail signal would otherwise
	# kill this shell by the default action in the middle of the cleanup,
	# leaving the servers running and the temp dir behind.
	trap - EXIT INT TERM
	trap '' USR1
	for f in $AP_PIDFILES; do
		[ -s "$f" ] && AP_PIDS="$(cat "$f") $AP_PIDS"
	done
	for pid in $AP_PIDS; do
		ap_stop_pid "$pid"
	done
	# In a sanitizer build, a report from the collector (or any process we
	# ran) fails the test, even if everything else passed. ThreadSanitizer
	# reports races as WARNINGs.
	local san_re='ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:'
	if [ "$rc" = 0 ] && grep -lE "$san_re" "$AP_TMP"/*.log >/dev/null 2>&1; then
		printf '%s: FAIL: sanitizer report in %s\n' "$AP_NAME" \
			"$(grep -lE "$san_re" "$AP_TMP"/*.log | tr '\n' ' ')" >&2
		rc=1
	fi
	if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
		ap_dump_logs
	fi
	if [ "${AP_KEEP_TMP:-0}" = 1 ]; then
		printf '%s: temp dir kept: %s\n' "$AP_NAME" "$AP_TMP" >&2
	else
		rm -rf "$AP_TMP"
	fi
	printf '%s: finished in %ss (exit %s)\n' "$AP_NAME" "$(( $(date +%s) - AP_START ))" "$rc"
	exit "$rc"
}
trap ap_cleanup EXIT
trap 'printf "%s: interrupted\n" "$AP_NAME" >&2; exit 1' INT TERM
trap 'exit 1' USR1

# A watchdog: a hung test fails instead of blocking `make check`.
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "${AP_TIMEOUT:-240}" &
	sp=$!
	wait "$sp"
	printf '%s: FAIL: timed out after %ss\n' "$AP_NAME" "${AP_TIMEOUT:-240}" >&2
	kill -TERM $$ 2>/dev/null
) &
AP_PIDS="$!"

# ap_bg NAME COMMAND... : runs COMMAND in the background with stdout and
# stderr in $AP_TMP/NAME.log; its pid is in $AP_BG_PID and stopped at exit.
ap_bg() {
	local name=$1
	shift
	"$@" >"$AP_TMP/$name.log" 2>&1 &
	AP_BG_PID=$!
	AP_PIDS="$AP_BG_PID $AP_PIDS"
}

# ap_bg_preloaded NAME COMMAND... : the same, with the preload in COMMAND's
# environment (service $AP_SERVICE, socket $AP_SOCK). Only that process and
# its children see LD_PRELOAD, never our clients.
ap_bg_preloaded() {
	local name=$1
	shift
	local dbg=()
	[ "${AP_DEBUG:-0}" = 1 ] && dbg=(APIPROF_DEBUG=1)
	ap_bg "$name" env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
		APIPROF_SERVICE="$AP_SERVICE" "${dbg[@]}" "$@"
}

# ap_children PID : the pids of PID's children (from /proc: no procps needed).
# Read through cat, which goes on past a process that exited since the glob:
# awk stops with a fatal error at the first file it cannot open, so this
# printed nothing at all whenever an unrelated short-lived process (a curl,
# a python client) ended meanwhile.
ap_children() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '$4 == pp {print $1}'
}

ap_free_port() {
	"$AP_PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# ap_wait_port PORT [SECONDS] : until something accepts on 127.0.0.1:PORT
# (default 30 s). The probe connects and closes without sending a byte, so a
# preloaded server does not count it as a request.
ap_wait_port() {
	local port=$1 tries=$(( ${2:-30} * 10 )) i
	for i in $(seq "$tries"); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	ap_fail "nothing listens on 127.0.0.1:$port after ${2:-30}s"
}

# ap_wait_log NAME REGEX [SECONDS] : until $AP_TMP/NAME.log has a matching
# line (default 30 s).
ap_wait_log() {
	local f=$AP_TMP/$1.log tries=$(( ${3:-30} * 10 )) i
	for i in $(seq "$tries"); do
		grep -Eq "$2" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	ap_fail "no line matching '$2' in $1.log after ${3:-30}s"
}

# ap_start_threaded NAME [ARGS...] : the C test server under the preload;
# sets AP_PORT and AP_SERVER_PID.
ap_start_threaded() {
	local name=$1
	shift
	AP_PORT=$(ap_free_port)
	ap_bg_preloaded "$name" "$AP_THREADED" --port "$AP_PORT" "$@"
	AP_SERVER_PID=$AP_BG_PID
	ap_wait_log "$name" '^listening on'
}

# ap_start_collector [ARGS...] : a collector on $AP_SOCK with its database in
# the temp dir and the HTTP API on a free port; sets AP_URL, AP_HTTP_PORT and
# AP_COLLECTOR_PID, and waits (up to 30 s) until /healthz answers.
# Starts Debian's Prometheus with the configuration file $1 (data under
# $AP_TMP/prom/data) on a free port, and waits until it is ready; sets
# AP_PROM_URL.
ap_start_prometheus() {
	local port i
	port=$(ap_free_port)
	ap_bg prometheus prometheus --config.file="$1" --storage.tsdb.path="$AP_TMP/prom/data" \
		--web.listen-address="127.0.0.1:$port" --log.level=warn
	AP_PROM_URL=http://127.0.0.1:$port
	for i in $(seq 150); do
		curl -sf --max-time 2 "$AP_PROM_URL/-/ready" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	ap_fail "Prometheus not ready after 30s"
}

ap_start_collector() {
	AP_HTTP_PORT=$(ap_free_port)
	AP_URL=http://127.0.0.1:$AP_HTTP_PORT
	ap_bg collector "$AP_COLLECTOR" --socket "$AP_SOCK" --http "127.0.0.1:$AP_HTTP_PORT" \
		--db "$AP_TMP/apiprof.db" "$@"
	AP_COLLECTOR_PID=$AP_BG_PID
	local i
	for i in $(seq 300); do
		if curl -sf --max-time 2 "$AP_URL/healthz" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$AP_COLLECTOR_PID" 2>/dev/null || ap_fail "the collector exited at start"
		sleep 0.1
	done
	ap_fail "the collector's /healthz did not answer within 30s"
}

# ap_sleep_into W MARGIN : sleeps until MARGIN seconds into the next
# W-second epoch-aligned interval (a summary window of W seconds); prints
# that interval's start (Unix seconds).
ap_sleep_into() {
	local now
	now=$(date +%s.%N)
	awk -v n="$now" -v w="$1" -v m="$2" 'BEGIN {
		s = int(n / w) * w; if (n - s > m) s += w; printf "%d %.3f\n", s, s + m - n }' |
		{ read -r start d; sleep "$d"; echo "$start"; }
}

# ap_rfc3339 SECONDS : Unix seconds as the API writes window times.
ap_rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.000Z; }

# ap_api PATH [CURL ARGS...] : GET from the collector's API (-G: extra
# --data-urlencode arguments become the query string). Fails the test when
# the API does not answer 2xx.
ap_api() {
	local path=$1
	shift
	curl -sf --max-time 10 -G "$AP_URL$path" "$@" ||
		ap_fail "GET $path failed (curl exit $?)"
}

# ap_count METHOD ROUTE : the endpoint count of this test's service (0 if absent).
ap_count() {
	ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE" --arg m "$1" --arg r "$2" \
		'[.endpoints[] | select(.service == $s and .method == $m and .route == $r) | .count] | add // 0'
}

# ap_wait_count ROUTE N [METHOD] [SECONDS] : polls /api/v1/endpoints until the
# route's count reaches N (or SECONDS, default 30, pass), then settles 1.5 s
# (events arrive within 1 s) and prints the count then, so the caller can
# assert exact equality, overshoot included.
ap_wait_count() {
	local route=$1 n=$2 method=${3:-GET} tries=$(( ${4:-30} * 5 )) i c
	for i in $(seq "$tries"); do
		c=$(ap_count "$method" "$route")
		[ "$c" -ge "$n" ] && break
		sleep 0.2
	done
	sleep 1.5
	ap_count "$method" "$route"
}

# ap_wait_counts [SECONDS] : reads lines "METHOD ROUTE N" on stdin and polls
# /api/v1/endpoints until every one of this service's routes has reached
# its N (or SECONDS, default 30, pass), then settles 1.5 s, so the caller
# can read and compare them exactly (ap_count, ap_field) while none of
# them is still in flight.
ap_wait_counts() {
	local want method route n i ok json tries=$(( ${1:-30} * 5 ))
	want=$(grep -v '^[[:space:]]*$')
	for i in $(seq "$tries"); do
		json=$(ap_api /api/v1/endpoints)
		ok=1
		while read -r method route n; do
			[ "$(jq --arg s "$AP_SERVICE" --arg m "$method" --arg r "$route" \
				'[.endpoints[] | select(.service == $s and .method == $m and .route == $r) | .count] | add // 0' \
				<<<"$json")" -ge "$n" ] || { ok=0; break; }
		done <<<"$want"
		[ "$ok" = 1 ] && break
		sleep 0.2
	done
	sleep 1.5
}

# ap_expect_counts : reads lines "METHOD ROUTE N" on stdin and asserts that
# this service's endpoints are exactly those, with exactly those counts:
# waits (up to 30 s) until every count is reached, settles 1.5 s, then
# compares, so a missing, extra or double-counted request fails.
ap_expect_counts() {
	local want method route n i got ok json total=0
	want=$(grep -v '^[[:space:]]*$')
	for i in $(seq 150); do
		json=$(ap_api /api/v1/endpoints)
		ok=1
		while read -r method route n; do
			got=$(jq --arg s "$AP_SERVICE" --arg m "$method" --arg r "$route" \
				'[.endpoints[] | select(.service == $s and .method == $m and .route == $r) | .count] | add // 0' <<<"$json")
			[ "$got" -ge "$n" ] || { ok=0; break; }
		done <<<"$want"
		[ "$ok" = 1 ] && break
		sleep 0.2
	done
	sleep 1.5
	json=$(ap_api /api/v1/endpoints)
	printf '%s\n' "$json" >"$AP_TMP/endpoints.json"
	ok=1
	while read -r method route n; do
		got=$(jq --arg s "$AP_SERVICE" --arg m "$method" --arg r "$route" \
			'[.endpoints[] | select(.service == $s and .method == $m and .route == $r) | .count] | add // 0' <<<"$json")
		if [ "$got" != "$n" ]; then
			printf '%s: %s %s: count %s, expected %s\n' "$AP_NAME" "$method" "$route" "$got" "$n" >&2
			ok=0
		else
			ap_log "ok: $method $route count $got"
		fi
		total=$(( total + n ))
	done <<<"$want"
	got=$(jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add // 0' <<<"$json")
	if [ "$got" != "$total" ]; then
		printf '%s: service %s: %s requests in all, expected %s\n' "$AP_NAME" "$AP_SERVICE" "$got" "$total" >&2
		ok=0
	fi
	if [ "$ok" != 1 ]; then
		printf '%s: /api/v1/endpoints was:\n' "$AP_NAME" >&2
		jq -c '.endpoints[]' <<<"$json" >&2
		ap_fail "endpoint counts differ from the traffic sent"
	fi
}

# ap_field METHOD ROUTE FIELD : one field of this service's endpoint row.
ap_field() {
	ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE" --arg m "$1" --arg r "$2" --arg f "$3" \
		'[.endpoints[] | select(.service == $s and .method == $m and .route == $r)][0][$f]'
}

# ap_requests ROUTE [METHOD] : this service's raw requests of ROUTE as a JSON
# array (newest first, at most 1000).
ap_requests() {
	local json
	json=$(ap_api /api/v1/requests --data-urlencode "route=$1" --data-urlencode "limit=1000")
	jq --arg s "$AP_SERVICE" --arg r "$1" --arg m "${2:-}" \
		'[.requests[] | select(.service == $s and .route == $r and ($m == "" or .method == $m))]' <<<"$json"
}

# ap_assert_pids_among PIDS WORKERS WHAT : each pid of the list PIDS (the
# pids requests were attributed to) is one of the list WORKERS, which WHAT
# names ("an nginx worker").
ap_assert_pids_among() {
	local p
	for p in $1; do
		case " $2 " in
		*" $p "*) ;;
		*) ap_fail "request attributed to pid $p, which is not $3 ($2)" ;;
		esac
	done
}

# ap_assert_eq WHAT GOT EXPECTED
ap_assert_eq() {
	[ "$2" = "$3" ] || ap_fail "$1: got '$2', expected '$3'"
	ap_log "ok: $1 = $3"
}

# ap_assert_jq WHAT JQ-FILTER JSON : the filter must print true. Empty
# input fails too: jq -e (1.6) exits 0 when it reads no value at all, so an
# empty answer would otherwise pass any filter.
ap_assert_jq() {
	local r
	r=$(jq -e "$2" <<<"$3" 2>&1) && [ -n "$r" ] || {
		printf '%s: %s: jq %s gave %s on:\n%s\n' "$AP_NAME" "$1" "$2" "$r" "$(jq -c . <<<"$3" | head -c 4000)" >&2
		ap_fail "$1"
	}
	ap_log "ok: $1"
}

# ap_curl_many OUT URL... : fetches every URL on one keep-alive connection
# (curl reuses it), bodies discarded; writes "code connects size_up size_req
# size_header size_download" per URL to OUT and fails unless exactly one TCP
# connection was opened.
ap_curl_many() {
	local out=$1 args=() u
	shift
	for u in "$@"; do
		args+=(-o /dev/null "$u")
	done
	curl -s --max-time 30 -w '%{http_code} %{num_connects} %{size_upload} %{size_request} %{size_header} %{size_download}\n' \
		"${args[@]}" >"$out" || ap_fail "curl failed on $*"
	local conns
	conns=$(awk '{s += $2} END {print s}' "$out")
	[ "$conns" = 1 ] || ap_fail "curl opened $conns connections for $# URLs, expected 1 (keep-alive)"
}

# ap_raw PORT [--pipeline] [--dump FILE] REQUEST... : a raw HTTP/1.x client.
# A REQUEST is either "METHOD TARGET" (sent as HTTP/1.1 with a Host header)
# or a whole request with \r\n escapes. By default requests go one after the
# other on one connection; --pipeline sends them all in one write first.
# Prints "STATUS BYTES" per response (BYTES: the whole raw response, interim
# 1xx responses included); --dump writes the raw responses with the Date
# header's value masked.
ap_raw() {
	"$AP_PY" "$AP_TMP/rawhttp.py" "$@" || ap_fail "raw HTTP exchange failed: $*"
}

cat >"$AP_TMP/rawhttp.py" <<'PY'
import re, socket, sys

def parse_args(argv):
    port = int(argv[0]); pipeline = False; dump = None; reqs = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--pipeline": pipeline = True
        elif a == "--dump": i += 1; dump = argv[i]
        else: reqs.append(a)
        i += 1
    return port, pipeline, dump, reqs

def build(r):
    if "\\r\\n" in r:
        return r.encode().decode("unicode_escape").encode("latin-1")
    method, target = r.split(None, 1)
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n" % (method, target)).encode()

class Reader:
    def __init__(self, s): self.s = s; self.buf = b""
    def fill(self):
        d = self.s.recv(65536)
        if not d: raise EOFError("connection closed")
        self.buf += d
    def until(self, sep):
        while sep not in self.buf: self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out
    def exactly(self, n):
        while len(self.buf) < n: self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out
    def rest(self):
        try:
            while True: self.fill()
        except EOFError:
            out, self.buf = self.buf, b""
            return out

def response(rd, method):
    raw = b""
    while True:
        head = rd.until(b"\r\n\r\n")
        raw += head
        status = int(head.split(b" ", 2)[1])
        if 100 <= status < 200 and status != 101: continue
        break
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            hdrs[k.strip().lower()] = v.strip()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, raw
    if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            line = rd.until(b"\r\n"); raw += line
            n = int(line.split(b";")[0], 16)
            raw += rd.exactly(n + 2)
            if n == 0: break
        return status, raw
    if b"content-length" in hdrs:
        return status, raw + rd.exactly(int(hdrs[b"content-length"]))
    return status, raw + rd.rest()

def main():
    port, pipeline, dump, reqs = parse_args(sys.argv[1:])
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    rd = Reader(s)
    wire = [build(r) for r in reqs]
    methods = [w.split(b" ", 1)[0].decode() for w in wire]
    out = []
    if pipeline:
        s.sendall(b"".join(wire))
        for m in methods: out.append(response(rd, m))
    else:
        for w, m in zip(wire, methods):
            s.sendall(w); out.append(response(rd, m))
    s.close()
    for st, raw in out: print(st, len(raw))
    if dump:
        with open(dump, "wb") as f:
            for st, raw in out:
                f.write(re.sub(rb"(?im)^(date:)[^\r\n]*", rb"\1 <masked>", raw))

main()
PY

# ap_make_cert PREFIX : a self-signed certificate for 127.0.0.1 (2 days,
# RSA 2048) in PREFIX.crt with its key in PREFIX.key, as the TLS and
# HTTP/2 tests give nginx (AP_NGINX_CERT) and their own servers.
ap_make_cert() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" \
		-days 2 -subj /CN=127.0.0.1 >"$AP_TMP/openssl.log" 2>&1 ||
		ap_fail "making a certificate failed: $(cat "$AP_TMP/openssl.log")"
}

# ---- nginx ------------------------------------------------------------------

# ap_start_nginx NAME PRELOAD(1|0) : nginx with 2 workers in $AP_TMP/NAME/,
# daemonized as in production (the master forks twice after our constructor),
# workers as www-data when we are root. Serves:
#   /api/items            200 JSON (return)
#   /api/users/<n>        200 JSON (return)
#   /upload               200 (return; the body, up to 2 MiB, is discarded,
#                         possibly after the response)
#   /error                500 (nginx's error page; closes keep-alive)
#   /static/big.bin       a 256 KiB file, sent with sendfile
#   anything else         404
# Sets AP_PORT and AP_NGINX_PID (the master).
ap_start_nginx() {
	local name=$1 preload=$2 d=$AP_TMP/$1 user=""
	mkdir -p "$d/www/static" "$d/tmp"
	[ -e "$AP_TMP/big.bin" ] || head -c 262144 /dev/urandom >"$AP_TMP/big.bin"
	cp -p "$AP_TMP/big.bin" "$d/www/static/big.bin"
	if [ "$(id -u)" -eq 0 ]; then
		user="user www-data;"
		chown www-data "$d/tmp"
	fi
	AP_PORT=$(ap_free_port)
	# With AP_NGINX_CERT=PREFIX (PREFIX.crt and PREFIX.key), the same
	# server also listens for HTTPS on AP_TLS_PORT, with the directives in
	# AP_NGINX_TLS_CONF, if any, in its server block. AP_NGINX_SERVER_CONF:
	# more directives for the server block; AP_NGINX_WORKERS: how many
	# workers (2).
	local tls=""
	if [ -n "${AP_NGINX_CERT:-}" ]; then
		AP_TLS_PORT=$(ap_free_port)
		tls="listen 127.0.0.1:$AP_TLS_PORT ssl; ssl_certificate $AP_NGINX_CERT.crt; ssl_certificate_key $AP_NGINX_CERT.key; ${AP_NGINX_TLS_CONF:-}"
	fi
	cat >"$d/nginx.conf" <<CONF
worker_processes ${AP_NGINX_WORKERS:-2};
$user
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 512; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 60;
    keepalive_requests 10000;
    server {
        listen 127.0.0.1:$AP_PORT;
        $tls
        ${AP_NGINX_SERVER_CONF:-}
        root $d/www;
        location = /api/items { default_type application/json; return 200 '{"items": [1, 2, 3]}\n'; }
        location ~ ^/api/users/([0-9]+)\$ { default_type application/json; return 200 '{"id": \$1}\n'; }
        location = /upload { client_max_body_size 2m; return 200 'uploaded\n'; }
        location = /error { return 500; }
        location /static/ { }
    }
}
CONF
	AP_PIDFILES="$AP_PIDFILES $d/nginx.pid"
	if [ "$preload" = 1 ]; then
		ap_bg_preloaded "$name" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
	else
		ap_bg "$name" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
	fi
	wait "$AP_BG_PID" || ap_fail "nginx did not start: $(cat "$AP_TMP/$name.log" "$d/error.log" 2>/dev/null)"
	ap_wait_port "$AP_PORT"
	local i
	for i in $(seq 300); do
		[ -s "$d/nginx.pid" ] && break
		sleep 0.1
	done
	AP_NGINX_PID=$(cat "$d/nginx.pid")
	# every worker up
	for i in $(seq 300); do
		[ "$(ap_children "$AP_NGINX_PID" | wc -l)" -ge "${AP_NGINX_WORKERS:-2}" ] && break
		sleep 0.1
	done
}
