#!/bin/bash
# The collector restarted (SIGTERM, then started again on the same socket
# and database) three times while a preloaded threaded server takes a steady
# stream of requests: every request reaches the collector, none is counted
# twice, and the server's process reports no dropped event. The preload
# buffers while the collector is away (README, Delivery); the half it was
# sending when the collector's socket disappeared goes back into the
# buffer (preload/ship.c, give_back) instead of being dropped (about 100 ms
# of requests lost at every restart before).
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3
ap_require_build "$AP_THREADED"

ap_start_collector
AP_SERVICE=it-restart ap_start_threaded threaded
ap_log "collector $AP_URL, threaded server $AP_SERVER_PID on port $AP_PORT"

# About 200 requests a second on one keep-alive connection for 5 s; the
# number answered goes to sent.txt.
ap_bg client "$AP_PY" -c '
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
n, end = 0, time.time() + 5
while time.time() < end:
    c.request("GET", "/hello")
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit("status %d" % r.status)
    n += 1
    time.sleep(0.005)
open(sys.argv[2], "w").write("%d\n" % n)
' "$AP_PORT" "$AP_TMP/sent.txt"
CLIENT=$AP_BG_PID

for i in 1 2 3; do
	sleep 1
	kill -TERM "$AP_COLLECTOR_PID"
	wait "$AP_COLLECTOR_PID" || ap_fail "the collector's exit status after SIGTERM was not 0"
	sleep 0.3
	ap_start_collector
done
wait "$CLIENT" || ap_fail "the client failed: $(cat "$AP_TMP/client.log")"
sent=$(cat "$AP_TMP/sent.txt")
ap_log "$sent requests sent across 3 restarts"

ap_expect_counts <<EOF
GET /hello $sent
EOF
# The last heartbeat (every second) carries the process's counters.
sleep 1.2
ap_assert_jq "the server's process dropped no event" \
	"[.processes[] | select(.pid == $AP_SERVER_PID)] | length == 1 and .[0].dropped == 0" \
	"$(ap_api /api/v1/status)"
ap_log "PASS"
