#!/bin/bash
# CPU profiles per endpoint (SPEC section 3, "CPU samples"; GET /api/v1/profile).
#
# tests/servers/prof_server.c, built -O2 -fomit-frame-pointer, has /sin, which
# burns CPU in burn_sin() (a static function of the PIE, visible only in its
# .symtab) calling libm's sin(), and /spin, which burns CPU in spin_plain()
# calling nothing. Asserts:
#  1. APIPROF_PROFILE_EVERY=1: every request is profiled; /sin's samples sit
#     under burn_sin, and most of them under burn_sin AND inside libm, which
#     only DWARF CFI unwinding gives (a frame-pointer walk from inside libm
#     skips the caller); /spin's profile never contains burn_sin; the
#     collapsed, speedscope and top-functions formats agree.
#  2. APIPROF_PROFILE_EVERY=3: one request in three is profiled, also in a
#     server that starts a thread per connection (counted per process).
#  1b. A profiled request whose thread blocks in poll, epoll_wait and
#     nanosleep between bursts of CPU (calls SA_RESTART does not restart)
#     is sampled, and none of those calls fails with EINTR.
#  2c. A host resetting every real-time signal to its default while it runs
#     is not killed by a profile started afterwards.
#  2d. The same while a profile starts, its timer not yet armed.
#  2e. A host claiming the sampling signal while a profiled request is being
#     sampled (its own handler by sigaction() or signal(), or the default
#     back): no sample reaches the host's handler, and the host lives.
#  3. APIPROF_PROFILE_EVERY=0: nothing is profiled, except a request carrying
#     X-Apiprof-Profile: 1.
. "$(dirname "$0")/lib.sh"

AP_PROF_SERVER=$AP_BUILDDIR/tests/servers/prof_server
ap_require curl jq
ap_require_build "$AP_PROF_SERVER"
if ! grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h"; then
	[ "$(id -u)" -eq 0 ] && ap_fail "built without libdw: CPU profiles are compiled out (scripts/test.sh installs libdw-dev)"
	ap_skip "built without libdw (apt-get install libdw-dev, then configure again)"
fi

ap_start_collector

# start_prof NAME EVERY : a prof_server under the preload as service
# it-profile-NAME; sets PORT.
start_prof() {
	AP_SERVICE=it-profile-$1
	PORT=$(ap_free_port)
	ap_bg_preloaded "$1" env APIPROF_PROFILE_EVERY="$2" "$AP_PROF_SERVER" --port "$PORT"
	ap_wait_log "$1" '^listening on'
}

# profile SERVICE ROUTE [ARGS...] : GET /api/v1/profile for one endpoint.
profile() {
	local svc=$1 route=$2
	shift 2
	ap_api /api/v1/profile --data-urlencode "service=$svc" --data-urlencode "method=GET" \
		--data-urlencode "route=$route" "$@"
}

# wait_requests SERVICE ROUTE N : until N profiled requests of the endpoint
# arrived (stacks are shipped after unwinding, shortly after the response).
wait_requests() {
	local i got=0
	for i in $(seq 100); do
		got=$(profile "$1" "$2" | jq '.requests')
		[ "$got" -ge "$3" ] && break
		sleep 0.2
	done
	sleep 1
	profile "$1" "$2" | jq '.requests'
}

# 1. Every request profiled.
start_prof every1 1
for i in 1 2 3; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/sin?ms=150" || ap_fail "GET /sin failed"
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/spin?ms=150" || ap_fail "GET /spin failed"
done
printf 'GET /sin 3\nGET /spin 3\n' | ap_expect_counts
ap_assert_eq "/sin requests profiled" "$(wait_requests it-profile-every1 /sin 3)" 3
ap_assert_eq "/spin requests profiled" "$(wait_requests it-profile-every1 /spin 3)" 3

SIN_TOP=$(profile it-profile-every1 /sin)
# method is case-insensitive, as in /requests; an unknown one is a 400.
ap_assert_eq "method=get finds GET's samples" \
	"$(ap_api /api/v1/profile --data-urlencode service=it-profile-every1 --data-urlencode method=get \
		--data-urlencode route=/sin | jq .samples)" "$(jq .samples <<<"$SIN_TOP")"
ap_assert_eq "method=FETCH" "$(curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/profile?method=FETCH")" 400
SIN_FOLDED=$(profile it-profile-every1 /sin --data-urlencode format=collapsed)
SPIN_FOLDED=$(profile it-profile-every1 /spin --data-urlencode format=collapsed)
printf '%s\n' "$SIN_FOLDED" >"$AP_TMP/sin.folded"
printf '%s\n' "$SPIN_FOLDED" >"$AP_TMP/spin.folded"
ap_log "/sin stacks: $(head -c 1500 "$AP_TMP/sin.folded")"

# About 1 kHz of CPU time: 3 x 150 ms is about 450 samples (weighted by the
# timer's overruns); allow for a loaded machine's accounting.
ap_assert_jq "/sin has about 450 samples" '.samples >= 250 and .samples <= 700' "$SIN_TOP"
# flamegraph.pl's format: "frame;frame;... COUNT" per line.
grep -Evq '^[^ ]+ [0-9]+$' "$AP_TMP/sin.folded" &&
	ap_fail "collapsed output has a line that is not 'stack count'"
folded_sum() { awk '{ n += $NF } END { print n + 0 }' "$1"; }
folded_with() { awk -v re="$2" '{ s = $0; sub(/ [0-9]+$/, "", s); if (s ~ re) n += $NF } END { print n + 0 }' "$1"; }
SIN_ALL=$(folded_sum "$AP_TMP/sin.folded")
ap_assert_eq "collapsed total = samples" "$SIN_ALL" "$(jq .samples <<<"$SIN_TOP")"
SIN_IN_BURN=$(folded_with "$AP_TMP/sin.folded" '(^|;)burn_sin(;|$)')
SIN_IN_LIBM=$(folded_with "$AP_TMP/sin.folded" '(^|;)burn_sin;.*(libm|sin)')
ap_log "/sin: $SIN_ALL samples, $SIN_IN_BURN under burn_sin, $SIN_IN_LIBM under burn_sin inside libm"
[ $(( SIN_IN_BURN * 100 )) -ge $(( SIN_ALL * 90 )) ] ||
	ap_fail "/sin: only $SIN_IN_BURN of $SIN_ALL samples under burn_sin (want >= 90%)"
[ $(( SIN_IN_LIBM * 100 )) -ge $(( SIN_ALL * 50 )) ] ||
	ap_fail "/sin: only $SIN_IN_LIBM of $SIN_ALL samples show burn_sin calling into libm (DWARF unwinding through libm)"
# serve_run and what of its loops the compiler kept apart: the accept loop
# of tests/servers/serve.c.
grep -Eq '^_start;.*main;(serve_[a-z_]+;)+serve;burn_sin' "$AP_TMP/sin.folded" ||
	ap_fail "/sin: no stack unwound all the way from _start through main to burn_sin"
ap_assert_jq "/sin top functions: burn_sin in every stack" \
	'[.functions[] | select(.function == "burn_sin")][0].total_fraction >= 0.9' "$SIN_TOP"
ap_assert_jq "/sin top by self: led by libm or burn_sin" \
	'.functions[0].function | test("libm|sin")' "$SIN_TOP"

SPIN_ALL=$(folded_sum "$AP_TMP/spin.folded")
[ "$SPIN_ALL" -ge 250 ] || ap_fail "/spin: only $SPIN_ALL samples"
grep -q 'burn_sin' "$AP_TMP/spin.folded" && ap_fail "/spin's profile contains burn_sin"
SPIN_IN=$(folded_with "$AP_TMP/spin.folded" '(^|;)spin_plain(;|$)')
[ $(( SPIN_IN * 100 )) -ge $(( SPIN_ALL * 90 )) ] ||
	ap_fail "/spin: only $SPIN_IN of $SPIN_ALL samples under spin_plain"
ap_log "ok: /spin: $SPIN_IN of $SPIN_ALL samples under spin_plain, none under burn_sin"

# speedscope: frame indices in range, weights summing to the samples, one
# profile per endpoint (the whole service: two).
SS=$(profile it-profile-every1 /sin --data-urlencode format=speedscope)
ap_assert_jq "speedscope file is consistent" \
	'(.shared.frames | length) as $n | .profiles | length == 1 and
	 (.[0].type == "sampled") and ([.[0].samples[][]] | all(. >= 0 and . < $n)) and
	 ((.[0].weights | add) == .[0].endValue) and (.[0].samples | length) == (.[0].weights | length)' "$SS"
ap_assert_jq "speedscope names burn_sin" '[.shared.frames[].name] | index("burn_sin") != null' "$SS"
SS_ALL=$(ap_api /api/v1/profile --data-urlencode service=it-profile-every1 --data-urlencode format=speedscope)
ap_assert_jq "speedscope: one profile per endpoint" '[.profiles[].name] | sort == ["GET /sin (it-profile-every1)", "GET /spin (it-profile-every1)"]' "$SS_ALL"
ap_assert_jq "sort=total puts the outermost frames first" \
	'.functions[0].total_fraction == 1' "$(profile it-profile-every1 /sin --data-urlencode sort=total)"
curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/profile?format=svg" | grep -qx 400 ||
	ap_fail "format=svg is not a 400"

# 1b. The sampling signal makes no blocking call fail. (With the timer on
#     the wall clock, CLOCK_MONOTONIC, 655 of /wait's 1,038 calls did.)
WAIT_BODY=$(curl -sf --max-time 20 "http://127.0.0.1:$PORT/wait?ms=200") || ap_fail "GET /wait failed"
ap_log "/wait: $WAIT_BODY"
case "$WAIT_BODY" in
"eintr=0 calls="[1-9]*) ;;
*) ap_fail "/wait under the profiler: $WAIT_BODY (a blocking call failed with EINTR)" ;;
esac
ap_assert_eq "/wait requests profiled" "$(wait_requests it-profile-every1 /wait 1)" 1
ap_assert_jq "/wait was sampled" '.samples >= 60' "$(profile it-profile-every1 /wait)"

# 2. One request in three.
start_prof every3 3
for i in 1 2 3 4 5 6; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/spin?ms=60" || ap_fail "GET /spin failed"
done
printf 'GET /spin 6\n' | ap_expect_counts
ap_assert_eq "APIPROF_PROFILE_EVERY=3: requests profiled" "$(wait_requests it-profile-every3 /spin 2)" 2

# burn_server NAME EVERY CLASS : a Python server under the preload, of
# http.server's CLASS (HTTPServer or ThreadingHTTPServer), burning 60 ms of
# CPU per request, except /reset, which puts every real-time signal's
# default disposition back with the raw rt_sigaction system call, which the
# preload's sigaction() and signal() hooks do not see (part 2e has those):
# the shipper thread's check must find it; sets PORT.
BURN_ENV=()
burn_server() {
	PORT=$(ap_free_port)
	ap_bg_preloaded "$1" env APIPROF_PROFILE_EVERY="$2" "${BURN_ENV[@]}" "$AP_PY" -c '
import ctypes, signal, sys, time
import http.server
libc = ctypes.CDLL(None)
libc.syscall.restype = ctypes.c_long
# the kernel'"'"'s struct sigaction on x86-64: handler (0: SIG_DFL), flags,
# restorer, mask
SIG_DFL_ACT = (ctypes.c_ulong * 4)()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/reset":
            # rt_sigaction (13) itself: Python'"'"'s signal.signal() works only
            # on the main thread, and ThreadingHTTPServer answers on others.
            for s in range(signal.SIGRTMIN, signal.SIGRTMAX + 1):
                libc.syscall(ctypes.c_long(13), ctypes.c_long(s), ctypes.byref(SIG_DFL_ACT),
                             None, ctypes.c_long(8))
        else:
            end = time.process_time() + 0.06
            while time.process_time() < end:
                pass
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
s = getattr(http.server, sys.argv[2])(("127.0.0.1", int(sys.argv[1])), H)
print("listening on", sys.argv[1], flush=True)
s.serve_forever()' "$PORT" "$3"
}

# 2b. The count is the process's, not a thread's: Python's
#     ThreadingHTTPServer starts a thread per connection (HTTP/1.0, one
#     request each), so no thread ever reads a 3rd request.
AP_SERVICE=it-profile-threads
burn_server threads 3 ThreadingHTTPServer
ap_wait_log threads '^listening on'
for i in 1 2 3 4 5 6; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/burn" || ap_fail "GET /burn failed"
done
printf 'GET /burn 6\n' | ap_expect_counts
ap_assert_eq "APIPROF_PROFILE_EVERY=3, a thread per connection: requests profiled" \
	"$(wait_requests it-profile-threads /burn 2)" 2

# 2c. A host that puts every real-time signal back to its default while
#     it runs (the sampling signal's default action terminates the
#     process): the shipper thread notices within its next pass (100 ms)
#     and profiling stops, and the next profiled request does not kill the
#     host. (The check ran only as a profile started, at most once a
#     second: the request after the reset armed the timer and the server
#     died of signal 63.)
#     The preload's debug line says when it noticed: waited for, rather
#     than a fixed pause that a shipper thread starved on a loaded machine
#     could outlast.
AP_SERVICE=it-profile-reset
AP_DEBUG=1 burn_server reset 1 HTTPServer
RESET_PID=$AP_BG_PID
ap_wait_log reset '^listening on'
for path in /burn /reset; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT$path" || ap_fail "GET $path failed"
done
ap_wait_log reset 'profiler: signal [0-9]+ taken over by the host' 10
for path in /burn /burn; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT$path" ||
		ap_fail "GET $path after the reset failed (server alive: $(kill -0 "$RESET_PID" 2>/dev/null && echo yes || echo no))"
done
kill -0 "$RESET_PID" 2>/dev/null || ap_fail "the server died after resetting its signals"
printf 'GET /burn 3\nGET /reset 1\n' | ap_expect_counts

# 2d. The same reset while a profile is starting: between the session
#     marked live and its timer armed (tests/servers/slowarm.so, preloaded
#     first, holds that arming 1.5 s), the shipper finds the signal lost
#     and stops the session, which had no timer yet to stop. The request
#     must then disarm the timer it arms, or its 60 ms of CPU meet the
#     default action of signal 63 and the server dies. (A shipper starved
#     for the whole 1.5 s stops the armed timer itself: the test then
#     passes without looking at the race, never fails.)
SLOWARM=$AP_BUILDDIR/tests/servers/.libs/slowarm.so
ap_require_build "$SLOWARM"
AP_SERVICE=it-profile-race
BURN_ENV=(LD_PRELOAD="$SLOWARM $(ap_preload_env)" SLOWARM_FLAG="$AP_TMP/slowarm")
AP_DEBUG=1 burn_server race 1 ThreadingHTTPServer
BURN_ENV=()
RACE_PID=$AP_BG_PID
ap_wait_log race '^listening on'
: >"$AP_TMP/slowarm"
curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/burn" &
SLOW_CURL=$!
for i in $(seq 100); do
	[ -e "$AP_TMP/slowarm" ] || break
	sleep 0.05
done
[ -e "$AP_TMP/slowarm" ] && ap_fail "the profiled /burn never armed its timer"
curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/reset" || ap_fail "GET /reset failed"
ap_wait_log race 'profiler: signal [0-9]+ taken over by the host' 10
wait "$SLOW_CURL" ||
	ap_fail "GET /burn whose timer was armed after the reset failed (server alive: $(kill -0 "$RACE_PID" 2>/dev/null && echo yes || echo no))"
curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/burn" || ap_fail "GET /burn after the race failed"
kill -0 "$RACE_PID" 2>/dev/null || ap_fail "the server died of a timer armed after the reset"
printf 'GET /burn 2\nGET /reset 1\n' | ap_expect_counts

# 2e. The host claims the sampling signal in the middle of a profiled
#     request, on the request's own thread, 100 ms into 200 ms of CPU
#     (tests/servers/prof_server.c, /take): with its own SA_SIGINFO handler,
#     with signal(), or putting the default back. The preload's sigaction()
#     and signal() hooks disarm the timer before the host's call is made,
#     so the host's handler counts no sample and the default kills no one.
#     (Before the hooks the timer ran on until the shipper's next pass, up
#     to 20 ms: about ten 1 kHz samples reached the host, or the first one
#     killed it.) The samples of the first 100 ms are still shipped.
for how in sigaction signal default; do
	start_prof "take-$how" 1
	TAKE_PID=$AP_BG_PID
	TAKE=$(curl -sf --max-time 20 "http://127.0.0.1:$PORT/take?how=$how&ms=200") ||
		ap_fail "GET /take?how=$how failed (server alive: $(kill -0 "$TAKE_PID" 2>/dev/null && echo yes || echo no))"
	case $TAKE in
	"sig="[1-9]*" hits=0") ;;
	*) ap_fail "/take?how=$how: the host's handler got samples of the preload's: $TAKE" ;;
	esac
	kill -0 "$TAKE_PID" 2>/dev/null || ap_fail "/take?how=$how: the server died"
	ap_assert_eq "/take?how=$how: the request was profiled" \
		"$(wait_requests "it-profile-take-$how" /take 1)" 1
	ap_assert_jq "/take?how=$how: the first 100 ms were sampled" '.samples >= 30' \
		"$(profile "it-profile-take-$how" /take)"
	ap_log "ok: /take?how=$how: $TAKE, the first half's samples shipped"
done

# 3. Sampling off; the header still profiles one request.
start_prof off 0
for i in 1 2; do
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/sin?ms=80" || ap_fail "GET /sin failed"
	curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PORT/spin?ms=80" || ap_fail "GET /spin failed"
done
curl -sf --max-time 20 -o /dev/null -H 'X-Apiprof-Profile: 1' "http://127.0.0.1:$PORT/sin?ms=150" ||
	ap_fail "GET /sin with the header failed"
printf 'GET /sin 3\nGET /spin 2\n' | ap_expect_counts
ap_assert_eq "header: /sin requests profiled" "$(wait_requests it-profile-off /sin 1)" 1
ap_assert_eq "sampling off: /spin requests profiled" "$(profile it-profile-off /spin | jq .requests)" 0
OFF_FOLDED=$(profile it-profile-off /sin --data-urlencode format=collapsed)
printf '%s\n' "$OFF_FOLDED" >"$AP_TMP/off.folded"
OFF_ALL=$(folded_sum "$AP_TMP/off.folded")
OFF_IN=$(folded_with "$AP_TMP/off.folded" '(^|;)burn_sin(;|$)')
[ "$OFF_ALL" -ge 80 ] && [ $(( OFF_IN * 100 )) -ge $(( OFF_ALL * 90 )) ] ||
	ap_fail "header-profiled /sin: $OFF_IN of $OFF_ALL samples under burn_sin"
ap_log "ok: the header profiled one request: $OFF_IN of $OFF_ALL samples under burn_sin"
ap_log "PASS"
