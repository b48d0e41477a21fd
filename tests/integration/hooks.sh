#!/bin/bash
# The socket hooks' contract with their caller on a followed connection
# (tests/servers/hookcalls.c, built here, run preloaded): the real call's
# return value and errno come back unchanged, through a whole request and
# response (event built and shipped inside the hook, a 5xx too), EAGAIN,
# MSG_PEEK, recvmsg and sendmsg given a NULL msghdr (EFAULT, not a
# SIGSEGV in the hook), and recv with MSG_TRUNC, which on TCP may pass no
# buffer and on SOCK_SEQPACKET returns more than the buffer holds: the
# hook must read no byte the call did not put in the buffer.
#  - the program passes every check without the preload (the checks are
#    right), then with it, exiting 0 (no SIGSEGV);
#  - the collector counted exactly the three answered requests (one of
#    them the 503) and the one request read whole (after the MSG_PEEK) and
#    left unanswered at close; none of the bytes the MSG_TRUNC calls
#    consumed;
#  - the exchanges of hookcalls.c's part 5 (pipelining with HEAD, a
#    chunked response a byte per send, 100-continue then a 503 body in
#    pieces, a close mid-body, a close after a 100 Continue, a 101 then
#    nothing followed, sendfile) have the records they must: status,
#    bytes in and out, aborted, and the 503's body as its error message;
#  - a process that exits while a thread serves requests exits cleanly
#    (under ThreadSanitizer: with no race between the exit flush and the
#    thread appending events);
#  - a SIGALRM handler writing responses every 50 us, landing inside the
#    preload's own work on the same thread (a connection's lock or the
#    buffer's held), neither hangs the program nor corrupts anything: the
#    connection it wrote on is no longer followed, and counted untracked.
. "$(dirname "$0")/lib.sh"

HC=$AP_TMP/hookcalls
ap_require cc jq curl
ap_require_build
cc -O2 -Wall -pthread -o "$HC" "$AP_SRCDIR/tests/servers/hookcalls.c" 2>"$AP_TMP/cc.log" ||
	ap_fail "cannot build hookcalls.c (see $AP_TMP/cc.log)"

"$HC" >"$AP_TMP/plain.log" 2>&1 || { cat "$AP_TMP/plain.log"; ap_fail "hookcalls fails without the preload"; }
ap_log "without the preload: $(grep -c '^ok' "$AP_TMP/plain.log") checks pass"

ap_start_collector
# Under ThreadSanitizer (a runtime preloaded first), vfork() is a fork and
# part 5's children start the shipper thread, which TSan refuses in the
# child of a multi-threaded process unless told otherwise. And the CPU
# profiler is off for this run: TSan defers asynchronous signals to its own
# safe points, so the sampling handler copies a stack that has moved on
# since the timer fired, and unwinding such a copy crashed inside TSan's
# own access check: 5 runs in 40 once the dup checks changed which request
# is the 20th (the one profiled), 2 in 25 before them with every request
# profiled; the plain library ran 40 of 40 with every request profiled.
# The profiler's TSan checks are the exit run's below (every request
# profiled, 25 of 25 clean).
tsan_env=()
[ -n "$AP_PRELOAD_FIRST" ] &&
	tsan_env=(TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}die_after_fork=0" APIPROF_PROFILE_EVERY=0)
rc=0
env "${tsan_env[@]}" LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$AP_SERVICE" \
	"$HC" >"$AP_TMP/preloaded.log" 2>&1 || rc=$?
cat "$AP_TMP/preloaded.log"
[ "$rc" = 0 ] || ap_fail "hookcalls under the preload exited with $rc (a signal is 128+N)"
ap_assert_eq "checks passed under the preload" "$(grep -c '^ok' "$AP_TMP/preloaded.log")" \
	"$(grep -c '^ok' "$AP_TMP/plain.log")"

ap_expect_counts <<<"GET /hookcalls 3
GET /dup 1
GET /unanswered 1
GET /p1 1
HEAD /p2 1
GET /p3 1
POST /p4 1
GET /p5 1
POST /p6 1
GET /ws 1
CONNECT origin.test:80 2
GET /file 1
GET /after 1
GET /vfork 1
GET /passed 2
GET /forkclose 1
GET /forkserve 1
POST /splice 1
GET /after-splice 1
GET /ts1 1
GET /ts2 1
GET /oob 1"
ap_api /api/v1/requests --data-urlencode limit=100 >"$AP_TMP/requests.json"
ap_api /api/v1/errors >"$AP_TMP/errors.json"
# Each exchange's record: status, bytes in and out (the lengths of the
# program's byte strings: /p1's 38-byte head and 2-byte body; /p2's head
# alone, as HEAD; /p3's 60 bytes sent one by one; /p4's 71-byte head and
# 3-byte body in, 25-byte interim and 70-byte 503 out; /p5 cut after 50
# of its 140 bytes; /p6's 71-byte head in and 25-byte interim out, then
# the close: aborted with no status, the interim one not being its own; /file's 41-byte head and 4,096 sendfile bytes), aborted.
# /splice's 54-byte head and 10-byte body (spliced to a pipe) in, 39-byte
# head and 10-byte body (spliced from a pipe) out; /after-splice after it.
# /vfork was answered after a vfork() child closed its connection (and
# every fd): not aborted. /dup (30 bytes in, 40 out) was read on a
# duplicate and answered on another after the other numbers closed: not
# aborted.
got=$(jq -r --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s and
	(.route | test("^/(dup|p[0-9]|ws|file|after|vfork|splice|after-splice)$")))] | sort_by(.id)[] |
	"\(.method) \(.route) \(.status) \(.bytes_in) \(.bytes_out) \(.aborted)"' "$AP_TMP/requests.json")
want="GET /dup 200 30 40 false
GET /p1 200 29 40 false
HEAD /p2 200 30 38 false
GET /p3 200 29 60 false
POST /p4 503 74 95 false
GET /p5 200 29 50 true
POST /p6 0 71 25 true
GET /ws 101 70 77 false
GET /file 200 31 4137 false
GET /after 200 32 38 false
POST /splice 200 64 49 false
GET /after-splice 200 39 38 false
GET /vfork 200 32 38 false"
[ "$got" = "$want" ] || { printf 'got:\n%s\nwant:\n%s\n' "$got" "$want" >&2; ap_fail "the exchanges' records differ"; }
ap_log "ok: the exchanges' records"
ap_assert_eq "the 503's message" "$(jq -r --arg s "$AP_SERVICE" \
	'[.errors[] | select(.service == $s and .route == "/p4")][0].message' "$AP_TMP/errors.json")" \
	"database down!"
ap_assert_eq "errors of /hookcalls (the 503)" "$(ap_field GET /hookcalls error_count)" 1
# A forward proxy's CONNECTs: the refused one's 407 carried a 6-byte body
# and the connection went on; the accepted one's 200 ended at its blank
# line, and the request sent through the tunnel was no request of this
# server's (GET /tunneled is in no count above).
ap_assert_eq "the CONNECTs' records" "$(jq -c --arg s "$AP_SERVICE" '[.requests[] |
	select(.service == $s and .method == "CONNECT")] | sort_by(.id) |
	map([.status, .bytes_out, .aborted])' "$AP_TMP/requests.json")" '[[407,71,false],[200,39,false]]'
# After a fork, whoever reads or writes a connection owns it: the helper
# child's close of /forkclose is no abort, and /forkserve is the answering
# child's, not aborted by its parent's close (exactly one record each).
forked=$(jq -c --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s and
	(.route == "/forkclose" or .route == "/forkserve")) | [.route, .status, .aborted]] | sort' \
	"$AP_TMP/requests.json")
ap_assert_eq "the records of /forkclose and /forkserve" "$forked" \
	'[["/forkclose",200,false],["/forkserve",200,false]]'
# /passed: served by a worker on a socket passed to it (SCM_RIGHTS)
ap_assert_eq "errors of /passed, answered by the worker" "$(ap_field GET /passed error_count)" 0

# The exit flush beside a thread still serving (and appending events),
# with every request profiled (APIPROF_PROFILE_EVERY=1): under TSan this
# also checks the profiler's slots, begun and ended by the serving thread
# hundreds of times, against the shipper's passes over them
# (pl_prof_begin()/pl_prof_end() against pl_prof_work()).
rc=0
env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$AP_SERVICE-exit" \
	APIPROF_PROFILE_EVERY=1 "$HC" --exit-while-serving >"$AP_TMP/exit.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$AP_TMP/exit.log"; ap_fail "hookcalls --exit-while-serving exited with $rc"; }
ap_log "ok: exit while a thread serves"

# A signal handler writing on followed connections while the thread it
# interrupts is inside the preload's work (hookcalls.c part 7): it must
# finish (it spun forever on the connection's lock, or the buffer's), and
# the connection whose bytes went unseen is counted as untracked.
rc=0
timeout 20 env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE="$AP_SERVICE-sig" "$HC" --signal-writes >"$AP_TMP/sig.log" 2>&1 || rc=$?
cat "$AP_TMP/sig.log"
[ "$rc" = 0 ] || ap_fail "hookcalls --signal-writes exited with $rc (124: it hung)"
for _ in $(seq 150); do
	untracked=$(ap_api /api/v1/status |
		jq --arg s "$AP_SERVICE-sig" '[.processes[] | select(.service == $s) | .untracked_connections] | add // 0')
	[ "$untracked" -ge 1 ] && break
	sleep 0.1
done
ap_assert_eq "connections left unseen by a signal handler's write, counted" \
	"$([ "$untracked" -ge 1 ] && echo yes || echo "no ($untracked)")" yes
ap_log "ok: signal handler writes inside the preload's work"
ap_log "PASS"
