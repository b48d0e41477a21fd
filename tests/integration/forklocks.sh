#!/bin/bash
# A threaded host that forks while its other threads are inside SQL hooks
# (tests/servers/forklocks.c): only the forking thread survives a fork, so
# a spin lock of the preload's that another thread held at that moment
# stayed taken in the child, whose first statement then spun forever on it
# (the texts of prepared statements, libpq's async statements, SQLite's
# executions, the definitions scan: init.c's atfork child handler clears
# them). 200 forks, each child making one libpq call under a 1 s alarm:
#  - without the preload every child exits at once (the check is right);
#  - with it too, and the whole run takes seconds;
#  - with a collector to send to (the parent's shipper thread sending much
#    of the time, without the buffer's lock), the children's _exit does not
#    wait the exit flush's 100 ms for a shipper that is not theirs: fewer
#    than 5 of the 200 children take 90 ms (about 20 did);
#  - forks while another thread walks the loaded objects, and a fork from
#    a signal handler that interrupted its own thread's walk (below).
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
ap_start_collector
rc=0
out=$(timeout 60 env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE="$AP_SERVICE" "$FL") || rc=$?
[ "$rc" = 0 ] || ap_fail "forklocks with a collector exited with $rc: $out"
slow=$(sed -n 's/.* \([0-9]*\) slow$/\1/p' <<<"$out")
[ -n "$slow" ] && [ "$slow" -lt 5 ] || ap_fail "children slow to exit with a collector: $out"
ap_log "ok: with a collector: $out"
ap_log "PASS"
