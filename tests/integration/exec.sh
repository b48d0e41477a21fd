#!/bin/bash
# What a process buffered reaches the collector before an exec replaces
# its image (preload/hook_exec.c, pl_ship_before_exec in ship.c), under
# tests/servers/exec_server.c, preloaded, on one listening socket it keeps
# across its execs:
# 1. it serves 3 requests, then 9 execs that fail (one through each exec
#    function), then 3 more requests, then runs children that exec:
#    posix_spawn, vfork+execve, vfork+failed execve+_exit. Each failed
#    exec returns -1 with its errno; the 6 requests are counted exactly
#    (the shipper goes on after the failed execs' flushes, nothing sent
#    twice), and no flush ran in a vfork() child (the debug lines of the
#    flushes all carry the server's pid, 9 of them so far).
# 2. then, 3 requests before each exec, it replaces itself 9 times, once
#    through each of execve, execv, execvp, execvpe, execl, execlp,
#    execle, fexecve and execveat, each exec right after its third
#    response (well within the shipper's 100 ms): every image's requests
#    are counted exactly (without the flush, 10 of these 30 were lost), the
#    arguments and environment reach the new image untouched (it checks
#    them), nothing is counted dropped.
. "$(dirname "$0")/lib.sh"

ES=$AP_BUILDDIR/tests/servers/exec_server
ap_require curl jq python3
ap_require_build "$ES"

ap_start_collector
PORT=$(ap_free_port)
FNS="execve execv execvp execvpe execl execlp execle fexecve execveat"
steps=(serve:3)
for f in $FNS; do steps+=("fail:$f"); done
steps+=(serve:3 spawn serve:3)
for f in $FNS; do steps+=("exec:$f" serve:3); done
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
ap_wait_log server '^ok execveat failed'
get /after-fail
ap_wait_log server '^ok spawn'
grep -q '^FAIL' "$AP_TMP/server.log" && ap_fail "exec_server: $(grep '^FAIL' "$AP_TMP/server.log")"
ap_wait_counts <<E
GET /before-fail 3
GET /after-fail 3
E
ap_assert_eq "requests before 9 failed execs" "$(ap_count GET /before-fail)" 3
ap_assert_eq "requests after them (the shipper's)" "$(ap_count GET /after-fail)" 3
flushes() { grep -Eo 'apiprof\[[0-9]+\]: exec:' "$AP_TMP/server.log" | sort | uniq -c | awk '{print $1, $2}'; }
ap_assert_eq "flushes of the failed execs, none in a vfork() child" "$(flushes)" \
	"9 apiprof[$SERVER_PID]:"

# ---- 2. nine execs, 3 requests before each ----
get /after-spawn
for f in $FNS; do
	get "/by-$f"
done
ap_wait_log server '^image 9 '
kill -0 "$SERVER_PID" 2>/dev/null || ap_fail "the server did not survive its execs"
grep -q '^FAIL' "$AP_TMP/server.log" && ap_fail "exec_server: $(grep '^FAIL' "$AP_TMP/server.log")"
ap_assert_eq "statuses" "$(sort -u "$AP_TMP/codes.out")" 200
{
	echo "GET /before-fail 3"
	echo "GET /after-fail 3"
	echo "GET /after-spawn 3"
	for f in $FNS; do echo "GET /by-$f 3"; done
} | ap_expect_counts
ap_assert_eq "flushes: the failed execs' and the execs'" "$(flushes)" "18 apiprof[$SERVER_PID]:"
st=$(ap_api /api/v1/status)
ap_assert_jq "one process, nothing dropped" \
	"[.processes[] | select(.service == \"$AP_SERVICE\")] | length == 1 and .[0].dropped == 0" "$st"
