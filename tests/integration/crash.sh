#!/bin/bash
# Error tracking of what kills a server (tests/servers/crash_server.c, a C
# server built without frame pointers, one thread per connection):
#  - SIGSEGV, SIGABRT (abort), SIGFPE, SIGILL and SIGBUS on a route (and a
#    stack overflow, the handler on an alternate stack) become
#    /api/v1/errors rows of that method and route, typed by the signal,
#    whose message is the stack unwound and symbolised by the collector (through libc, which
#    has no frame pointers), and apiprof_http_errors_total series;
#  - the server still dies exactly as it would without the preload (the
#    shell sees the same signal);
#  - what it finished before is still delivered (the handler flushes the
#    event buffer first), and the request it died serving is an aborted
#    request of its endpoint (an error there), the signal row's example,
#    with no second "aborted" row or errors_total series; the requests
#    other threads were serving are aborted requests of their endpoints,
#    also in a process that crashes before it ever buffered an event;
#  - a second thread crashing while the first crash is reported waits for
#    that report instead of killing the process under it, and the child of
#    a fork made meanwhile reports a crash of its own;
#  - a crash with any value in the frame-pointer register (-16) is still
#    reported: the preload's frame walk stays inside its stack copy;
#  - an asynchronous SIGBUS (a memory error, BUS_MCEERR_AO), or a SIGSEGV
#    the kernel sends with no fault to repeat (SI_KERNEL), still kills;
#  - the server sees the default disposition where ours is (sigaction()
#    queries), the kernel our handler;
#  - a server with its own SIGSEGV handler keeps it (exit 42, no report),
#    one that installs it later and chains to the previous one finds the
#    default there and puts it back, which puts ours back (reported), and
#    an ignored SIGABRT stays ignored (the handler goes only where the
#    disposition is the default);
#  - a handler installed before serving that puts the default back and
#    raises the signal again (signal(), then raise(), or kill(getpid()) as
#    Apache does, also when it then calls _exit(), or when the kernel
#    hands that signal to a thread in poll()) dies through ours,
#    reported; so do Node (a real fault in a native module) and Python
#    with faulthandler (whose traceback is still written);
#  - a server that installs a SIGSEGV handler before it serves, the way the
#    JVM does, never finds ours as its previous handler: its own fatal
#    error path (HotSpot's hs_err report, then abort()) runs as without us,
#    and the abort() is reported;
#  - a connection the server closes without answering is an `aborted` row;
#  - the child of a fork made by another thread while the handlers are
#    being installed catches the same signals as its parent.
. "$(dirname "$0")/lib.sh"

AP_CRASH_SERVER=$AP_BUILDDIR/tests/servers/crash_server
ap_require curl jq python3
ap_require_build "$AP_CRASH_SERVER"

ap_start_collector
BASE_SERVICE=$AP_SERVICE

# start_crash NAME SERVICE [ARGS...]: the crash server under the preload.
start_crash() {
	local name=$1 svc=$2
	shift 2
	AP_PORT=$(ap_free_port)
	AP_SERVICE=$svc ap_bg_preloaded "$name" "$AP_CRASH_SERVER" --port "$AP_PORT" "$@"
	AP_SERVER_PID=$AP_BG_PID
	ap_wait_log "$name" '^listening on'
}
get() { curl -s --max-time 10 "http://127.0.0.1:$AP_PORT$1"; }
# Sets EXIT to the exit status of the server, once it is gone (not in a
# subshell: only this shell can wait for its children).
server_exit() {
	local i
	for i in $(seq 300); do
		kill -0 "$AP_SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$AP_SERVER_PID" 2>/dev/null
	EXIT=$?
}
errors_of() { # SERVICE: its /api/v1/errors rows, one JSON per line
	ap_api /api/v1/errors -G --data-urlencode "service=$1" | jq -c '.errors[]'
}
routes_of() { # SERVICE: "METHOD ROUTE COUNT" of its endpoints, sorted, comma-separated
	ap_api /api/v1/endpoints -G --data-urlencode "service=$1" |
		jq -r '[.endpoints[] | "\(.method) \(.route) \(.count)"] | sort | join(",")'
}
# caught SIGNAL...: 1 if the server's kernel disposition of each is a
# handler (SigCgt), else 0. The server itself sees the default where ours
# is (/sigstate); the kernel shows what is really there.
caught() {
	local cgt s
	cgt=$(awk '/^SigCgt:/ {print $2}' "/proc/$AP_SERVER_PID/status")
	for s in "$@"; do
		printf '%s' "$(( (0x$cgt >> ($(kill -l "$s") - 1)) & 1 ))"
	done
	echo
}
rows_of() { # SERVICE: "TYPE METHOD ROUTE COUNT" of its error rows, comma-separated
	errors_of "$1" | jq -r '"\(.type) \(.method) \(.route) \(.count)"' | paste -sd,
}
wait_error() { # SERVICE TYPE: until a row of that type shows
	local i
	for i in $(seq 150); do
		# -s and any(): jq -e alone exits 0 on an empty answer (no rows yet)
		errors_of "$1" | jq -s -e --arg t "$2" 'any(.[]; .type == $t)' >/dev/null && return 0
		sleep 0.2
	done
	ap_fail "no $2 row for $1: $(errors_of "$1")"
}

# 1. The crashes, one server each.
for case in "crash SIGSEGV 139 crash_store_null <- crash_deeper <- crash_handler <- serve" \
	"abort SIGABRT 134 abort <- crash_abort_route" \
	"fpe SIGFPE 136 crash_divide <- serve" \
	"ill SIGILL 132 crash_trap <- serve" \
	"bus SIGBUS 135 crash_bus_read <- serve" \
	"overflow SIGSEGV 139 crash_recurse"; do
	set -- $case
	route=$1 sig=$2 code=$3
	shift 3
	frames="$*"
	svc=$BASE_SERVICE-$route
	start_crash "server-$route" "$svc"
	ap_assert_eq "GET /ok before the $sig" "$(get /ok)" "ok"
	ap_assert_eq "dispositions as the server sees them (as without us)" "$(get /sigstate)" \
		"SIGSEGV=default SIGABRT=default SIGFPE=default"
	ap_assert_eq "SIGSEGV SIGABRT SIGBUS SIGFPE SIGILL caught" "$(caught SEGV ABRT BUS FPE ILL)" 11111
	get "/$route" >/dev/null && ap_fail "/$route answered"
	server_exit
	ap_assert_eq "exit status after /$route (the same signal as without us)" "$EXIT" "$code"
	wait_error "$svc" "$sig"
	row=$(errors_of "$svc" | jq -c --arg t "$sig" 'select(.type == $t)')
	ap_log "$sig: $row"
	ap_assert_eq "$sig row method and route" "$(jq -r '"\(.method) \(.route) \(.count)"' <<<"$row")" \
		"GET /$route 1"
	msg=$(jq -r .message <<<"$row")
	# Without libdw (optional) frames are named by module only.
	grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h" || frames="(crash_server)"
	case "$msg" in
	"$sig ("*") in "*"$frames"*) ;;
	*) ap_fail "$sig message '$msg' lacks the frames '$frames'" ;;
	esac
	grep -q "crash of pid .* (service $svc) during GET /$route: $sig" "$AP_TMP/collector.log" ||
		ap_fail "no backtrace of the $sig in the collector's log"
	# The requests it finished before, still in its event buffer at the
	# crash (the shipper sends every 100 ms), were handed over first, and
	# the one it died serving is an aborted request of its endpoint: an
	# error there, whose error group is the signal's (no "aborted" row),
	# and the signal row's example.
	ap_assert_eq "requests of the $sig server" "$(routes_of "$svc")" \
		"$(printf 'GET /%s 1\nGET /ok 1\nGET /sigstate 1\n' "$route" | sort | paste -sd,)"
	ap_assert_eq "/$route's error_count" "$(ap_api /api/v1/endpoints -G --data-urlencode "service=$svc" |
		jq -r --arg r "/$route" '.endpoints[] | select(.route == $r) | .error_count')" 1
	ap_assert_eq "error rows of the $sig server" "$(errors_of "$svc" | jq -r .type | sort | paste -sd,)" "$sig"
	ex=$(jq -r .example_request_id <<<"$row")
	[ "$ex" != null ] || ap_fail "the $sig row has no example request"
	# The error row is counted as the event is read; the request itself
	# is a stored row, committed within the store's next 200 ms.
	for i in $(seq 150); do
		curl -sf --max-time 10 -o /dev/null "$AP_URL/api/v1/requests/$ex" && break
		sleep 0.1
	done
	ap_assert_jq "the $sig row's example: the aborted GET /$route" \
		".route == \"/$route\" and .method == \"GET\" and .error.type == \"aborted\"" \
		"$(ap_api "/api/v1/requests/$ex")"
done
# libc's frames are named too: unwound with CFI, not frame pointers.
if grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h"; then
	errors_of "$BASE_SERVICE-abort" | jq -r .message | grep -q 'raise <- abort <- crash_abort_route' ||
		ap_fail "abort's libc frames were not unwound"
fi
curl -sf --max-time 10 "$AP_URL/metrics" >"$AP_TMP/metrics.txt" || ap_fail "GET /metrics failed"
grep -qxF "apiprof_http_errors_total{service=\"$BASE_SERVICE-crash\",route=\"/crash\",type=\"SIGSEGV\"} 1" \
	"$AP_TMP/metrics.txt" || ap_fail "no SIGSEGV in apiprof_http_errors_total"
# The request it ended is aborted in apiprof_http_requests_total, not a
# second error: the signal is its error type.
grep -qxF "apiprof_http_requests_total{service=\"$BASE_SERVICE-crash\",method=\"GET\",route=\"/crash\",status=\"aborted\"} 1" \
	"$AP_TMP/metrics.txt" || ap_fail "the crashed request is not in apiprof_http_requests_total"
! grep -q "^apiprof_http_errors_total{service=\"$BASE_SERVICE-crash\",route=\"/crash\",type=\"aborted\"}" \
	"$AP_TMP/metrics.txt" || ap_fail "the crash is counted twice in apiprof_http_errors_total"

# 1a. The requests other threads were serving die with the process: each
#     an aborted request of its endpoint (their connections close), an
#     "aborted" row; the crash is the crashing thread's. (They were lost
#     before: the process died with them in flight.)
svc=$BASE_SERVICE-others
start_crash server-others "$svc"
hangs=""
for i in 1 2; do
	get /hang >/dev/null &
	hangs="$hangs $!"
done
for i in $(seq 300); do
	[ "$(grep -c '^hanging' "$AP_TMP/server-others.log")" -ge 2 ] && break
	sleep 0.05
done
get /crash >/dev/null && ap_fail "/crash answered"
server_exit
ap_assert_eq "exit status after /crash with two requests in flight" "$EXIT" 139
wait_error "$svc" SIGSEGV
for i in $(seq 150); do
	[ "$(routes_of "$svc")" = "GET /crash 1,GET /hang 2" ] && break
	sleep 0.1
done
ap_assert_eq "requests of the server that crashed with two in flight" "$(routes_of "$svc")" \
	"GET /crash 1,GET /hang 2"
ap_assert_eq "its error rows" \
	"$(errors_of "$svc" | jq -r '"\(.type) \(.route) \(.count)"' | sort | paste -sd,)" \
	"SIGSEGV /crash 1,aborted /hang 2"
wait $hangs

# 1b. A second thread crashing while the first one's crash is reported
#     (here 20 ms after it, with the collector stopped and its queue full,
#     so that the handler is still waiting to send) waits for that report:
#     the crash is reported once, by the first thread, and the process dies
#     of it. (A fault restored to the default disposition at once killed the
#     process under the report: no row.)
svc=$BASE_SERVICE-double
start_crash server-double "$svc"
ap_assert_eq "GET /ok before the double crash" "$(get /ok)" "ok"
for i in $(seq 150); do # shipped (100 ms; longer on a loaded machine)
	[ "$(routes_of "$svc")" = "GET /ok 1" ] && break
	sleep 0.1
done
# stall_collector: stops the collector with its queue full, so that a
# crash report waits to be sent (kill -CONT "$AP_COLLECTOR_PID" resumes).
stall_collector() {
	kill -STOP "$AP_COLLECTOR_PID"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setblocking(False)
try:
    for i in range(100000):
        s.sendto(b"fill", sys.argv[1])
except BlockingIOError:
    pass' "$AP_SOCK" || { kill -CONT "$AP_COLLECTOR_PID"; ap_fail "cannot fill the collector's queue"; }
}
stall_collector
get /double >/dev/null &
sleep 0.15
kill -CONT "$AP_COLLECTOR_PID"
server_exit
ap_assert_eq "exit status after /double" "$EXIT" 139
wait_error "$svc" SIGSEGV
ap_assert_eq "the double crash's rows" \
	"$(rows_of "$svc")" "SIGSEGV GET /double 1"

# 1b'. A thread forking while another thread's crash is being reported
#      (20 ms after it, the collector stalled as in 1b): the child is a
#      process of its own, whose own crash 1 s later is reported too. (Its
#      copy of the parent's state said a report was under way: the child
#      waited 600 ms for it, then died unreported.)
svc=$BASE_SERVICE-forkcrash
start_crash server-forkcrash "$svc"
ap_assert_eq "GET /ok before the crash and fork" "$(get /ok)" "ok"
for i in $(seq 150); do
	[ "$(routes_of "$svc")" = "GET /ok 1" ] && break
	sleep 0.1
done
stall_collector
get /forkcrash >/dev/null &
sleep 0.15
kill -CONT "$AP_COLLECTOR_PID"
server_exit
ap_assert_eq "exit status after /forkcrash" "$EXIT" 139
# The child's thread served no request: a row of no route.
for i in $(seq 150); do
	[ "$(errors_of "$svc" | jq -s 'map(select(.type == "SIGSEGV")) | length')" = 2 ] && break
	sleep 0.2
done
ap_assert_eq "the crash rows of the parent and of its child" \
	"$(errors_of "$svc" | jq -r 'select(.type == "SIGSEGV") | "\(.method) \(.route) \(.count)"' | sort | paste -sd,)" \
	"GET /forkcrash 1,null null 1"

# 1c. A crash with a frame pointer register of -16: the walk of frame
# pointers must not follow it out of the stack copy (it wrapped past 2^64
# and faulted inside the handler: no report).
svc=$BASE_SERVICE-badfp
start_crash server-badfp "$svc"
get /badfp >/dev/null && ap_fail "/badfp answered"
server_exit
ap_assert_eq "exit status after /badfp" "$EXIT" 139
wait_error "$svc" SIGSEGV

# 1d. A SIGBUS the kernel sends for a memory error found asynchronously
#     (BUS_MCEERR_AO, "action optional": no instruction repeats it) kills
#     the process by default: it still does, after the report. (The handler
#     re-raised only signals with a code <= 0, and the server went on
#     running: exit 3.)
# 1d'. The same for the SIGSEGV the kernel sends when it cannot write a
#      signal's frame (force_sigsegv(), code SI_KERNEL: nothing repeats
#      it either; the server survived it too).
# killed_by PATH EXIT SIGNAL: the server sends itself that signal at PATH.
killed_by() {
	svc=$BASE_SERVICE-${1#/}
	start_crash "server-${1#/}" "$svc"
	get "$1" >/dev/null
	server_exit
	ap_assert_eq "exit status after $1 ($3 of a code with nothing to repeat)" "$EXIT" "$2"
	wait_error "$svc" "$3"
}
killed_by /mceao 135 SIGBUS
killed_by /sikernel 139 SIGSEGV

# 2. The host's own handler wins: installed after ours, it replaces it.
start_crash server-own "$BASE_SERVICE-own" --own-handler
ap_assert_eq "own handler in place" "$(get /sigstate)" "SIGSEGV=handler SIGABRT=default SIGFPE=default"
get /crash >/dev/null
server_exit
ap_assert_eq "exit status with the server's own handler" "$EXIT" 42
grep -q '^own handler: SIGSEGV' "$AP_TMP/server-own.log" || ap_fail "the server's handler did not run"

# 3. A host that installs its handler once it serves (ours in place) and
#    chains to the one it replaced: it finds the default there, not ours,
#    and puts it back for the fault to repeat; ours goes back in its place
#    and reports. (Before the sigaction() hooks, it found ours, called it,
#    and the process died unreported: an `aborted /crash` row only.)
svc=$BASE_SERVICE-chain
start_crash server-chain "$svc" --chain
get /ok >/dev/null
get /crash >/dev/null
server_exit
ap_assert_eq "exit status with a chaining handler" "$EXIT" 139
grep -q '^chained handler' "$AP_TMP/server-chain.log" || ap_fail "the chaining handler did not run"
wait_error "$svc" SIGSEGV
ap_assert_eq "requests of the chaining server" "$(routes_of "$svc")" "GET /crash 1,GET /ok 1"
ap_assert_eq "error rows of the chaining server" \
	"$(errors_of "$svc" | jq -r '"\(.type) \(.route) \(.count)"' | paste -sd,)" "SIGSEGV /crash 1"

# 3a. A handler installed before the server serves, that chains to the
#     handler it found unless that was the default and otherwise makes its
#     own fatal-error report and aborts (HotSpot's JVM_handle_linux_signal):
#     ours is installed only at the first accepted connection, so the
#     server finds the default and its report and abort() happen as without
#     us (exit 134), the abort() reported as a SIGABRT of the request. (With
#     ours installed by the constructor, the server chained to it, took the
#     fault as handled and died of the SIGSEGV again: exit 139, no report of
#     its own; a JVM lost its hs_err_pid*.log.)
svc=$BASE_SERVICE-hotspot
start_crash server-hotspot "$svc" --hotspot
get /crash >/dev/null && ap_fail "/crash answered"
server_exit
ap_assert_eq "exit status with a HotSpot-style handler (abort after its own report)" "$EXIT" 134
grep -q '^hotspot: fatal error SIGSEGV' "$AP_TMP/server-hotspot.log" ||
	ap_fail "the HotSpot-style handler did not make its own fatal-error report"
wait_error "$svc" SIGABRT
ap_assert_eq "the HotSpot-style server's rows" \
	"$(rows_of "$svc")" "SIGABRT GET /crash 1"

# 3b. A handler installed before the server serves (so ours never went in
#     for SIGSEGV) that ends by putting the default back with signal() and
#     raising the signal again: ours takes the default's place, and the
#     crash is reported; the process dies of it as before.
svc=$BASE_SERVICE-reraise
start_crash server-reraise "$svc" --reraise
ap_assert_eq "the reraising server's own handler, as it sees it" "$(get /sigstate)" \
	"SIGSEGV=handler SIGABRT=default SIGFPE=default"
get /crash >/dev/null && ap_fail "/crash answered"
server_exit
ap_assert_eq "exit status with a handler that raises again" "$EXIT" 139
grep -q '^reraise handler' "$AP_TMP/server-reraise.log" || ap_fail "the reraising handler did not run"
wait_error "$svc" SIGSEGV
ap_assert_eq "error rows of the reraising server" \
	"$(rows_of "$svc")" "SIGSEGV GET /crash 1"

# 3c. The same, the signal sent again Apache's way, kill(getpid(), sig):
#     the kernel hands it to another thread (the faulting one blocks it in
#     the handler), the main thread waiting in accept(). Ours passes it
#     back to the thread that put the default back, where it arrives when
#     that thread's handler returns, in the faulting context: the row is
#     the crashed request's, its stack the fault's. (Reported by the
#     thread that got it: a row of no request, the stack of accept().)
svc=$BASE_SERVICE-coredump
start_crash server-coredump "$svc" --coredump
get /crash >/dev/null && ap_fail "/crash answered"
server_exit
ap_assert_eq "exit status with a handler that kill()s its process" "$EXIT" 139
grep -q '^coredump handler' "$AP_TMP/server-coredump.log" || ap_fail "the kill()ing handler did not run"
wait_error "$svc" SIGSEGV
ap_assert_eq "error rows of the kill()ing server" "$(rows_of "$svc")" "SIGSEGV GET /crash 1"
msg=$(errors_of "$svc" | jq -r 'select(.type == "SIGSEGV") | .message')
grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h" && case "$msg" in
*"crash_store_null <- crash_deeper <- crash_handler"*) ;;
*) ap_fail "the kill()ing server's stack is not the fault's: $msg" ;;
esac

# 3d. The same handler, which then waits 100 ms and calls _exit(3): the
#     thread the kernel handed the signal to kills the process at once by
#     default (status 139). Ours passed it back to the handler's thread,
#     which takes it in its _exit(): the process still dies of it,
#     reported. (It exited 3, unreported, while ours waited for the
#     handler to return.)
svc=$BASE_SERVICE-coredump-exit
start_crash server-coredump-exit "$svc" --coredump-exit
get /crash >/dev/null && ap_fail "/crash answered"
server_exit
ap_assert_eq "exit status with a handler that kill()s its process, then _exit()s" "$EXIT" 139
wait_error "$svc" SIGSEGV
ap_assert_eq "error rows of the kill()ing, _exit()ing server" "$(rows_of "$svc")" "SIGSEGV GET /crash 1"

# 3e. The same handler's kill(), handed to a thread waiting in poll() (not
#     restarted after a handler: it fails with EINTR, on which this server
#     exits 1), the report slow (the collector stalled as in 1b). Ours
#     passes it back and stays in the handler until the report is done:
#     the process dies of it (139), reported. (That thread went back to
#     poll() at once, which failed: exit 1, the report cut short.)
svc=$BASE_SERVICE-coredump-poll
start_crash server-coredump-poll "$svc" --coredump-poll
stall_collector
get /crash >/dev/null &
sleep 0.15
kill -CONT "$AP_COLLECTOR_PID"
server_exit
grep '^poll:' "$AP_TMP/server-coredump-poll.log" && ap_fail "poll() failed in the dying server"
ap_assert_eq "exit status with a kill()ed signal on a thread in poll()" "$EXIT" 139
wait_error "$svc" SIGSEGV
ap_assert_eq "error rows of the kill()ing server, poll()ing" "$(rows_of "$svc")" "SIGSEGV GET /crash 1"

# 4. An ignored signal stays ignored; without the preload nothing changes.
AP_PORT=$(ap_free_port)
ap_bg server-ign env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE="$BASE_SERVICE-ign" python3 -c '
import os, signal, sys
signal.signal(signal.SIGABRT, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])' "$AP_CRASH_SERVER" --port "$AP_PORT"
AP_SERVER_PID=$AP_BG_PID
ap_wait_log server-ign '^listening on'
ap_assert_eq "dispositions with SIGABRT ignored" "$(get /sigstate)" \
	"SIGSEGV=default SIGABRT=ignored SIGFPE=default"
ap_assert_eq "SIGSEGV and SIGFPE caught, SIGABRT not" "$(caught SEGV ABRT FPE)" 101
ap_stop_pid "$AP_SERVER_PID"
AP_PORT=$(ap_free_port)
ap_bg server-plain "$AP_CRASH_SERVER" --port "$AP_PORT"
AP_SERVER_PID=$AP_BG_PID
ap_wait_log server-plain '^listening on'
ap_assert_eq "dispositions without the preload" "$(get /sigstate)" \
	"SIGSEGV=default SIGABRT=default SIGFPE=default"
ap_stop_pid "$AP_SERVER_PID"

# 5. Closed without an answer: aborted.
start_crash server-drop "$BASE_SERVICE-drop"
get /drop >/dev/null
get /ok >/dev/null
wait_error "$BASE_SERVICE-drop" aborted
ap_assert_eq "aborted row" \
	"$(errors_of "$BASE_SERVICE-drop" | jq -r 'select(.type == "aborted") | "\(.method) \(.route) \(.count)"')" \
	"GET /drop 1"
ap_stop_pid "$AP_SERVER_PID"

# 6. A fork in another thread while the handlers go in (the few
#    microseconds from the first sigaction to the last):
#    tests/servers/forkinstall.so forks from a thread of its own just
#    before SIGABRT's, SIGSEGV's being in. The child, which has no
#    installing thread, must catch what its parent catches once the
#    install is done: all five, not SIGSEGV alone.
FORKINST=$AP_BUILDDIR/tests/servers/.libs/forkinstall.so
ap_require_build "$FORKINST"
AP_PRELOAD_FIRST=${AP_PRELOAD_FIRST:+$AP_PRELOAD_FIRST:}$FORKINST \
FORKINSTALL_OUT=$AP_TMP/forkinstall.sigcgt \
	start_crash server-forkinstall "$BASE_SERVICE-forkinstall"
ap_assert_eq "GET /ok, a fork inside the install behind it" "$(get /ok)" ok
[ -s "$AP_TMP/forkinstall.sigcgt" ] || ap_fail "the child forked inside the install wrote nothing"
parent=$(grep '^SigCgt:' "/proc/$AP_SERVER_PID/status")
ap_assert_eq "the parent catches SIGSEGV, SIGABRT, SIGBUS, SIGFPE and SIGILL" \
	"$(( 0x${parent##*[[:space:]]} & 0x4e8 ))" "$(( 0x4e8 ))"
ap_assert_eq "the signals the child of a fork inside the install catches" \
	"$(cat "$AP_TMP/forkinstall.sigcgt")" "$parent"
ap_stop_pid "$AP_SERVER_PID"

# 7. Runtimes whose SIGSEGV handler, installed at startup, ends a fault
#    not their own by putting the default back and raising the signal
#    again: Node (a real fault, in a native module's constructor loaded
#    while serving) and Python with faulthandler (which still prints its
#    traceback). Both now die through ours, reported; before, unreported.
SEGVLOAD=$AP_BUILDDIR/tests/servers/.libs/segvload.so
ap_require_build "$SEGVLOAD"
ap_require node
svc=$BASE_SERVICE-node
AP_PORT=$(ap_free_port)
AP_SERVICE=$svc ap_bg_preloaded server-node node -e '
const http = require("http");
http.createServer((req, res) => {
	if (req.url === "/segv")
		process.dlopen({ exports: {} }, process.argv[2]);
	res.end("ok\n");
}).listen(+process.argv[1], "127.0.0.1", () => console.log("listening on " + process.argv[1]));
' "$AP_PORT" "$SEGVLOAD"
# runtime_crash NAME WHO ROUTE SIG STATUS FRAMES: the server just started
# as NAME answers /ok, dies of SIG on ROUTE (exit STATUS, as without us),
# reported as its row, whose stack has FRAMES (the crash's, with libdw).
runtime_crash() {
	AP_SERVER_PID=$AP_BG_PID
	ap_wait_log "$1" '^listening on'
	ap_assert_eq "$2: GET /ok" "$(get /ok)" ok
	get "$3" >/dev/null && ap_fail "$2's $3 answered"
	server_exit
	ap_assert_eq "$2's exit status ($4, as without us)" "$EXIT" "$5"
	wait_error "$svc" "$4"
	ap_assert_eq "$2's error rows" "$(rows_of "$svc")" "$4 GET $3 1"
	local msg
	msg=$(errors_of "$svc" | jq -r --arg t "$4" 'select(.type == $t) | .message')
	ap_log "$2: $msg"
	grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h" && case "$msg" in
	*"$6"*) ;;
	*) ap_fail "$2's stack is not the crash's (no '$6'): $msg" ;;
	esac
	return 0
}
# Node raises the signal again while it blocks it: it arrives when Node's
# handler returns, in the faulting context.
runtime_crash server-node Node /segv SIGSEGV 139 "in segvload <- call_init"

# Python with faulthandler, twice: a fault, and os.abort().
PYSRV='
import ctypes, http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/segv":
            ctypes.string_at(0)
        if self.path == "/abort":
            os.abort()
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening on", sys.argv[1], flush=True)
s.serve_forever()
'
# faulthandler raises it at once (SA_NODEFER) on its alternate stack: ours
# reports the context faulthandler's handler was given (in the frame the
# kernel made for it), not faulthandler's own frames: `raise <-
# __restore_rt <- __strlen_evex`, cut short at the alternate stack's end,
# before the preload looked for that frame. Its handler is not SA_SIGINFO,
# so the frame's signal is told by its trap (#PF) for the fault, and for
# abort() by the system call it interrupted (tgkill of SIGABRT).
for c in "segv SIGSEGV 139 ffi_call <- " "abort SIGABRT 134 raise <- abort <- "; do
	set -- $c
	route=$1 sig=$2 code=$3
	shift 3
	svc=$BASE_SERVICE-faulthandler-$route
	AP_PORT=$(ap_free_port)
	AP_SERVICE=$svc ap_bg_preloaded "server-faulthandler-$route" \
		/usr/bin/python3 -X faulthandler -c "$PYSRV" "$AP_PORT"
	runtime_crash "server-faulthandler-$route" "Python ($route)" "/$route" "$sig" "$code" "$*"
	grep -q '^Fatal Python error: ' "$AP_TMP/server-faulthandler-$route.log" ||
		ap_fail "faulthandler wrote no traceback for /$route"
done

# Nothing reported for the server that handled its SIGSEGV.
sleep 1
n=$(errors_of "$BASE_SERVICE-own" | jq -s 'map(select(.type | startswith("SIG"))) | length')
ap_assert_eq "signal rows of the own-handler server" "$n" 0
ap_log "SIGSEGV, SIGABRT, SIGFPE, SIGILL and SIGBUS reported and symbolised, also through handlers that chain or raise again (Node, faulthandler); a handler of the server's own respected"
