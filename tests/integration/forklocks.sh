#!/bin/bash
# A threaded host that forks while its other threads are inside SQL hooks
# (tests/servers/forklocks.c): only the forking thread survives a fork, so
# a spin lock of the preload's that another thread held at that moment
# stayed taken in the child, whose first statement then spun forever on it
# (the texts of prepared statements, libpq's async statements, SQLite's
# executions, the definitions scan: init.c's atfork child handler clears
# them). 200 forks, each child making one libpq call under a 5 s alarm:
#  - without the preload every child exits at once (the check is right);
#  - with it too, and the whole run takes seconds;
#  - with a collector to send to (the parent's shipper thread sending much
#    of the time, without the buffer's lock), the children's _exit does not
#    wait the exit flush's 100 ms for a shipper that is not theirs: fewer
#    than 5 of the 200 children take 90 ms sleeping (about 20 did); those
#    a loaded machine preempted as long do not count;
#  - forks while another thread walks the loaded objects, a fork from a
#    signal handler that interrupted its own thread's walk, and a write
#    from one while another thread's fork waits for that walk (below);
#  - signal handlers that fork, or write, while their own thread holds
#    the event buffer's lock (tests/servers/sigfork.c, last).
. "$(dirname "$0")/lib.sh"

FL=$AP_BUILDDIR/tests/servers/forklocks
ap_require_build "$FL"

out=$(timeout 60 "$FL") || ap_fail "forklocks fails without the preload: $out"
ap_log "without the preload: $out"
rc=0
out=$(timeout 60 env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_TMP/absent.sock" \
	APIPROF_SERVICE="$AP_SERVICE" "$FL") || rc=$?
[ "$rc" = 0 ] || ap_fail "forklocks under the preload exited with $rc: $out"
ap_log "ok: under the preload: $out"
# The loader's lock: glibc resets two of its locks in a fork child, but not
# the one dl_iterate_phdr holds. The threads' first calls resolve libpq's
# real functions by walking the loaded objects, and one thread's first
# accept() (forklocks ... accept) scans them, holding the scan's lock all
# along, so the fork's own scan is skipped; slowwalk.so holds each walk
# 300 ms at its first object, so the first fork (10 ms in) lands inside one.
# Before the preload's walks kept forks out (pl_dl_walk), the child's own
# first call waited for that lock for good: "1 forks, 1 children hung".
# (Without the accept, the fork handler's own scan walks first, waiting for
# the threads' walks: with that, the first fork came after their last one
# and the run passed without the fork waiting for walks.)
SW=$AP_BUILDDIR/tests/servers/.libs/slowwalk.so
ap_require_build "$SW"
rc=0
out=$(timeout 60 env LD_PRELOAD="$SW $(ap_preload_env)" SLOWWALK_MS=300 \
	APIPROF_SOCKET="$AP_TMP/absent.sock" APIPROF_SERVICE="$AP_SERVICE" "$FL" 5 accept) || rc=$?
[ "$rc" = 0 ] || ap_fail "forklocks with slow walks of the loaded objects exited with $rc: $out"
ap_log "ok: forks during a walk of the loaded objects: $out"
# A fork from a signal handler that interrupted its own thread's walk (the
# main thread's first call, slowed by slowwalk.so): the walk's lock is that
# thread's, so the fork goes on without it. When the fork waited for it,
# the parent spun in its prepare handler for good (timeout: 124).
rc=0
out=$(timeout 20 env LD_PRELOAD="$SW $(ap_preload_env)" SLOWWALK_MS=300 \
	APIPROF_SOCKET="$AP_TMP/absent.sock" APIPROF_SERVICE="$AP_SERVICE" "$FL" -s) || rc=$?
[ "$rc" = 0 ] || ap_fail "a fork from a signal handler during a walk exited with $rc: $out"
ap_log "ok: a fork from a signal handler during its thread's walk: $out"
# Another thread's fork while a signal handler that interrupted the main
# thread's walk (slowwalk.so, that thread's walks only) writes the response
# of a request in flight: the fork's prepare handler takes the event
# buffer's lock, then waits for the walk. The walking thread is busy, so
# the write is made but not observed. When it was observed, its event
# waited for the buffer's lock, the fork for the walk: both for good (124).
rc=0
out=$(timeout 20 env LD_PRELOAD="$SW $(ap_preload_env)" SLOWWALK_MS=300 SLOWWALK_MAIN=1 \
	APIPROF_SOCKET="$AP_TMP/absent.sock" APIPROF_SERVICE="$AP_SERVICE" "$FL" -w) || rc=$?
[ "$rc" = 0 ] || ap_fail "a handler's write during a walk another thread's fork waits for exited with $rc: $out"
ap_log "ok: a handler's write during a walk that a fork waits for: $out"
ap_start_collector
rc=0
out=$(timeout 60 env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE="$AP_SERVICE" "$FL") || rc=$?
[ "$rc" = 0 ] || ap_fail "forklocks with a collector exited with $rc: $out"
# Slow: 90 ms or more while sleeping (waiting for a shipper); the children
# a loaded machine merely preempted for as long are not.
slow=$(sed -n 's/.* \([0-9][0-9]*\) slow, [0-9][0-9]* preempted$/\1/p' <<<"$out")
[ -n "$slow" ] && [ "$slow" -lt 5 ] || ap_fail "children slow to exit with a collector: $out"
ap_log "ok: with a collector: $out"
# Signal handlers that fork, or write, while the preload holds its event
# buffer's lock on their own thread (tests/servers/sigfork.c, one service;
# tests/servers/bufsig.so raises the signals there). Each run's host dies
# of its 15 s alarm (142) when the preload waits for that lock.
#  - sigfork 20 3: bufsig.so raises SIGUSR1 inside each of 20 requests'
#    appends to the buffer; the handler forks. Half the children _exit in
#    the handler, half return from it and serve 3 requests of their own.
#    Before the prepare handler left that lock alone when its thread was
#    busy, the first fork spun on it for good. The parent's 20 events and
#    the 10 children's 30 arrive, each counted once; each process's STATS
#    counts exactly its own, none dropped (a child's resumed append also
#    counted the record, the parent's to send, in the child: 4 events to 3
#    requests, until the child's start reset it).
#  - sigfork crash: the same in the preload's crash handler (the thread
#    was not in the preload's work): the host dies of its SIGSEGV, the
#    child exits, the aborted request arrives, an error. Spun when that
#    append did not mark its thread busy.
#  - sigfork window: bufsig.so, preloaded after libapiprof.so, registered
#    a prepare handler first, which runs after the preload's (last
#    registered first) and raises SIGUSR2, whose handler writes the
#    response of a request in flight. The thread is busy through the
#    fork, so that write is made but not observed: the connection stops
#    being followed (untracked), its 4th and 5th requests uncounted.
#    Observed, its event waited for the lock its own fork held.
SF=$AP_BUILDDIR/tests/servers/sigfork
BUFSIG=$AP_BUILDDIR/tests/servers/.libs/bufsig.so
ap_require_build "$SF"
ap_require_build "$BUFSIG"
SIGFORK_SERVICE=$AP_SERVICE-sig
rc=0
out=$(timeout 20 env LD_PRELOAD="$BUFSIG $(ap_preload_env)" APIPROF_BUFFER_KB=1100 \
	APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$SIGFORK_SERVICE" "$SF" 20 3) || rc=$?
[ "$rc" = 0 ] || ap_fail "sigfork 20 3 exited with $rc: $out"
grep -q ': 20 requests, 20 forks, 20 children exited 0; serving:' <<<"$out" ||
	ap_fail "sigfork: $out"
ap_log "ok: forks from a signal handler during appends: $out"
parent=$(sed -n 's/^pid \([0-9]*\):.*/\1/p' <<<"$out")
serving=$(sed -n 's/.*serving: //p' <<<"$out")
rc=0
out=$(timeout 20 env LD_PRELOAD="$BUFSIG $(ap_preload_env)" APIPROF_BUFFER_KB=1100 \
	APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$SIGFORK_SERVICE" "$SF" crash 2>&1) || rc=$?
[ "$rc" = 139 ] || ap_fail "sigfork crash exited with $rc, not SIGSEGV's 139: $out"
grep -q '^crash: child status 0x0$' <<<"$out" || ap_fail "sigfork crash: $out"
ap_log "ok: a fork from a signal handler during the crash handler's append"
rc=0
out=$(timeout 20 env LD_PRELOAD="$(ap_preload_env) $BUFSIG" BUFSIG_FORK=1 \
	APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$SIGFORK_SERVICE" "$SF" window) || rc=$?
[ "$rc" = 0 ] || ap_fail "sigfork window exited with $rc: $out"
window=$(sed -n 's/^window: pid \([0-9]*\),.*/\1/p' <<<"$out")
ap_log "ok: a write from a signal handler inside a fork: $out"
AP_SERVICE=$SIGFORK_SERVICE ap_expect_counts <<EOF
GET /sigfork/parent/interrupted-by-its-signal-handler 20
GET /sigfork/child/served-after-the-forking-handler 30
GET /sigfork/crash/interrupted-in-the-crash-handler 1
GET /sigfork/window/answered-by-a-handler-in-a-fork 3
EOF
ap_assert_eq "the crashed request's error_count" "$(ap_api /api/v1/endpoints |
	jq --arg s "$SIGFORK_SERVICE" '[.endpoints[] | select(.service == $s) | .error_count] | add')" 1
status=$(ap_api /api/v1/status)
want=$(echo "$parent 20 20 0"; for p in $serving; do echo "$p 3 3 0"; done)
got=$(jq -r --arg s "$SIGFORK_SERVICE" --arg pids " $parent $serving " '.processes[] |
	select(.service == $s and (.pid as $p | $pids | contains(" \($p) "))) |
	"\(.pid) \(.events) \(.requests) \(.dropped)"' <<<"$status")
[ "$(sort <<<"$got")" = "$(sort <<<"$want")" ] ||
	ap_fail "processes (pid events requests dropped): $(echo $got), expected $(echo $want)"
ap_log "ok: each process's events, requests and drops: $(wc -l <<<"$got") processes"
ap_assert_eq "sigfork window's untracked connections" "$(jq --argjson p "${window:-0}" \
	'[.processes[] | select(.pid == $p) | .untracked_connections] | add' <<<"$status")" 1
ap_log "PASS"
