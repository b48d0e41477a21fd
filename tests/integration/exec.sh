#!/bin/bash
# What a process buffered reaches the collector before an exec replaces
# its image (preload/hook_exec.c, pl_ship_before_exec in ship.c), under
# tests/servers/exec_server.c, preloaded, on one listening socket it keeps
# across its execs:
# 1. it serves 3 requests, then 11 execs that fail (one through each exec
#    function, then syscall(SYS_execve) and syscall(SYS_execveat)), then 3
#    more requests, then runs children that exec:
#    posix_spawn, vfork+execve, vfork+failed execve+_exit. Each failed
#    exec returns -1 with its errno; the 6 requests are counted exactly
#    (the shipper goes on after the failed execs' flushes, nothing sent
#    twice), and no flush ran in a vfork() child (the debug lines of the
#    flushes all carry the server's pid, 11 of them so far).
# 2. then, 3 requests before each exec, it replaces itself 11 times, once
#    through each of execve, execv, execvp, execvpe, execl, execlp,
#    execle, fexecve and execveat, then syscall(SYS_execve) and
#    syscall(SYS_execveat), each exec right after its third response
#    (well within the shipper's 100 ms): every image's requests are
#    counted exactly (without the flush, 10 of the first 30 were lost;
#    without syscall()'s, 2 of the 6 before them), the
#    arguments and environment reach the new image untouched (it checks
#    them), nothing is counted dropped (part 3 counts every drop).
# 3. with the collector stopped (SIGSTOP) and its socket's queue full, 3
#    requests and then a failed exec: the flush's sends fail with EAGAIN
#    and it gives up within its budget (the exec took less than 100 ms:
#    5 ms and the exec itself, on a loaded machine), and the 3 requests
#    are counted dropped (the shipper's next STATS says so once the
#    collector reads again), never received; the requests after it are.
#    A failed syscall(SYS_execveat) right after it, its sends failing too,
#    returns -1 with ENOENT as well.
#    (The server runs with APIPROF_DEBUG=1: its log says when the shipper
#    found the collector unreachable.)
. "$(dirname "$0")/lib.sh"

ES=$AP_BUILDDIR/tests/servers/exec_server
ap_require curl jq python3
ap_require_build "$ES"

ap_start_collector
PORT=$(ap_free_port)
FNS="execve execv execvp execvpe execl execlp execle fexecve execveat sys_execve sys_execveat"
steps=(serve:3)
for f in $FNS; do steps+=("fail:$f"); done
steps+=(serve:3 spawn serve:3)
for f in $FNS; do steps+=("exec:$f" serve:3); done
steps+=(serve:3 fail:execve fail:sys_execveat)
AP_DEBUG=1 ap_bg_preloaded server "$ES" --port "$PORT" "${steps[@]}"
SERVER_PID=$AP_BG_PID
ap_wait_log server '^listening on'

# get ROUTE : three requests, one connection each (the server closes).
get() {
	local i
	for i in 1 2 3; do
		curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT$1" ||
			ap_fail "GET $1 failed"
	done >>"$AP_TMP/codes.out"
}

# ---- 1. failed execs, a vfork() child's exec ----
get /before-fail
ap_wait_log server '^ok sys_execveat failed'
get /after-fail
ap_wait_log server '^ok spawn'
grep -q '^FAIL' "$AP_TMP/server.log" && ap_fail "exec_server: $(grep '^FAIL' "$AP_TMP/server.log")"
ap_wait_counts <<E
GET /before-fail 3
GET /after-fail 3
E
ap_assert_eq "requests before 11 failed execs" "$(ap_count GET /before-fail)" 3
ap_assert_eq "requests after them (the shipper's)" "$(ap_count GET /after-fail)" 3
flushes() { grep -Eo 'apiprof\[[0-9]+\]: exec:' "$AP_TMP/server.log" | sort | uniq -c | awk '{print $1, $2}'; }
ap_assert_eq "flushes of the failed execs, none in a vfork() child" "$(flushes)" \
	"11 apiprof[$SERVER_PID]:"

# ---- 2. eleven execs, 3 requests before each ----
get /after-spawn
for f in $FNS; do
	get "/by-$f"
done
ap_wait_log server '^image 11 '
kill -0 "$SERVER_PID" 2>/dev/null || ap_fail "the server did not survive its execs"
grep -q '^FAIL' "$AP_TMP/server.log" && ap_fail "exec_server: $(grep '^FAIL' "$AP_TMP/server.log")"
ap_assert_eq "statuses" "$(sort -u "$AP_TMP/codes.out")" 200
ap_assert_eq "flushes: the failed execs' and the execs'" "$(flushes)" "22 apiprof[$SERVER_PID]:"
# (their counts are checked with part 3's, at the end)

# ---- 3. a failed exec while the collector is stopped, its queue full ----
kill -STOP "$AP_COLLECTOR_PID"
"$AP_PY" - "$AP_SOCK" >"$AP_TMP/fill.out" 2>&1 <<'PY' || ap_fail "cannot fill the collector's queue: $(cat "$AP_TMP/fill.out")"
import socket, sys
# Small datagrams from fresh sockets until a fresh one's first send fails:
# the queue is full (net.unix.max_dgram_qlen), not one sender's buffer.
total = 0
for k in range(2000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setblocking(False)
    n = 0
    try:
        while n < 100000:
            s.sendto(b"\0", sys.argv[1])
            n += 1
    except (BlockingIOError, OSError) as e:
        err = e
    s.close()
    total += n
    if n == 0:
        print(total, "datagrams queued, then", err)
        sys.exit(0)
sys.exit(1)
PY
# Once the shipper has found the collector unreachable it takes no half
# (it probes): the 3 records are all the flush's, none in a send of the
# shipper's that the SIGCONT below could complete.
unreach=$(grep -c 'unreachable' "$AP_TMP/server.log")
for i in $(seq 100); do
	[ "$(grep -c 'unreachable' "$AP_TMP/server.log")" -gt "$unreach" ] && break
	sleep 0.1
done
get /stalled
for i in $(seq 150); do # part 1's failed too
	[ "$(grep -c '^ok sys_execveat failed' "$AP_TMP/server.log")" = 2 ] && break
	sleep 0.1
done
us=$(grep -E '^ok execve failed' "$AP_TMP/server.log" | sed -n 2p | awk '{print $(NF-1)}')
[ -n "$us" ] || ap_fail "no second failed execve in server.log"
grep -q '^FAIL' "$AP_TMP/server.log" && ap_fail "exec_server: $(grep '^FAIL' "$AP_TMP/server.log")"
[ "$(grep -c '^ok sys_execveat failed' "$AP_TMP/server.log")" = 2 ] ||
	ap_fail "no second failed syscall(SYS_execveat) in server.log"
kill -CONT "$AP_COLLECTOR_PID"
ap_log "the failed exec with a full queue took $us us"
[ "$us" -lt 100000 ] || ap_fail "an exec with the collector's queue full waited $us us"
get /resumed
# /metrics: the drops of every image (those of a replaced one are kept
# for its service), so nothing dropped before either.
for i in $(seq 50); do
	dropped=$(ap_api /metrics |
		awk -v m="apiprof_events_dropped_total{service=\"$AP_SERVICE\"}" '$1 == m {n = $2} END {print n + 0}')
	[ "$dropped" -ge 3 ] && break
	sleep 0.2
done
ap_assert_eq "requests counted dropped, in all (those while the queue was full)" "$dropped" 3
ap_expect_counts <<E
GET /before-fail 3
GET /after-fail 3
GET /after-spawn 3
GET /by-execve 3
GET /by-execv 3
GET /by-execvp 3
GET /by-execvpe 3
GET /by-execl 3
GET /by-execlp 3
GET /by-execle 3
GET /by-fexecve 3
GET /by-execveat 3
GET /by-sys_execve 3
GET /by-sys_execveat 3
GET /resumed 3
E
ap_assert_jq "one process" \
	"[.processes[] | select(.service == \"$AP_SERVICE\")] | length == 1" "$(ap_api /api/v1/status)"
