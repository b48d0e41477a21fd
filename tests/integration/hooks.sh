#!/bin/bash
# The socket hooks' contract with their caller on a followed connection
# (tests/servers/hookcalls.c, built here, run preloaded): the real call's
# return value and errno come back unchanged, through a whole request and
# response (event built and shipped inside the hook, a 5xx too), EAGAIN,
# MSG_PEEK, and recv with MSG_TRUNC, which on TCP may pass no buffer and
# on SOCK_SEQPACKET returns more than the buffer holds: the hook must read
# no byte the call did not put in the buffer.
#  - the program passes every check without the preload (the checks are
#    right), then with it, exiting 0 (no SIGSEGV);
#  - the collector counted exactly the three answered requests (one of
#    them the 503) and the one request read whole (after the MSG_PEEK) and
#    left unanswered at close; none of the bytes the MSG_TRUNC calls
#    consumed.
. "$(dirname "$0")/lib.sh"

HC=$AP_TMP/hookcalls
ap_require cc jq curl
ap_require_build
cc -O2 -Wall -o "$HC" "$AP_SRCDIR/tests/servers/hookcalls.c" 2>"$AP_TMP/cc.log" ||
	ap_fail "cannot build hookcalls.c (see $AP_TMP/cc.log)"

"$HC" >"$AP_TMP/plain.log" 2>&1 || { cat "$AP_TMP/plain.log"; ap_fail "hookcalls fails without the preload"; }
ap_log "without the preload: $(grep -c '^ok' "$AP_TMP/plain.log") checks pass"

ap_start_collector
rc=0
env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$AP_SERVICE" \
	"$HC" >"$AP_TMP/preloaded.log" 2>&1 || rc=$?
cat "$AP_TMP/preloaded.log"
[ "$rc" = 0 ] || ap_fail "hookcalls under the preload exited with $rc (a signal is 128+N)"
ap_assert_eq "checks passed under the preload" "$(grep -c '^ok' "$AP_TMP/preloaded.log")" \
	"$(grep -c '^ok' "$AP_TMP/plain.log")"

ap_expect_counts <<<"GET /hookcalls 3
GET /unanswered 1"
ap_assert_eq "errors of /hookcalls (the 503)" "$(ap_field GET /hookcalls error_count)" 1
ap_log "PASS"
