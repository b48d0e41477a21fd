#!/bin/bash
# Requests in flight in a process killed without a word (SIGKILL: the OOM
# killer, uWSGI's --harakiri, kill -9), tests/servers/crash_server.c:
#  - a GET /hang that is the process's very first request (so nothing was
#    buffered yet: the shipper thread starts with the request) and another
#    on a second connection, in flight for 2.5 s when the server is
#    SIGKILLed: each is recorded once, as an aborted request of its route
#    (status 0, an error, a duration of at least a second, the killed
#    message on its row and in /api/v1/errors), and not again 1.5 s
#    later;
#  - a server that exits cleanly (exit(), from GET /exit) while a /hang
#    announced in flight is still unanswered records nothing more: the
#    exit flush says so (the FINAL announcement); its announcements are
#    not counted among its events;
#  - a server that exits cleanly with nothing in flight records nothing
#    more either;
#  - a fork child (of a parent that served a request itself, then forks
#    a child per connection) killed during its first request: that
#    request is recorded, by the child;
#  - a request whose handler forked a subprocess and waits for it (the
#    process has not touched the connection since the fork) is still
#    announced, and recorded when the server is SIGKILLed.
. "$(dirname "$0")/lib.sh"

AP_CRASH_SERVER=$AP_BUILDDIR/tests/servers/crash_server
ap_require curl jq
ap_require_build "$AP_CRASH_SERVER"

ap_start_collector

start_crash() {
	local name=$1 svc=$2
	AP_PORT=$(ap_free_port)
	AP_SERVICE=$svc ap_bg_preloaded "$name" "$AP_CRASH_SERVER" --port "$AP_PORT"
	AP_SERVER_PID=$AP_BG_PID
	ap_wait_log "$name" '^listening on'
}

# ---- 1. SIGKILL with two requests in flight -------------------------------
AP_SERVICE=it-killed
start_crash killed "$AP_SERVICE"
curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$AP_PORT/hang" &
c1=$!
ap_wait_log killed '^hanging' 5
curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$AP_PORT/hang" &
c2=$!
# No request ends before the kill: nothing is appended to the event
# buffer but the announcements, whose shipper thread the first request's
# start started.
sleep 3
kill -KILL "$AP_SERVER_PID"
wait "$c1" "$c2" 2>/dev/null || true
# (ap_expect_counts waits for the counts, then 1.5 s more: not again.)
ap_expect_counts <<EOT
GET /hang 2
EOT
ap_assert_eq "GET /hang: errors" "$(ap_field GET /hang error_count)" 2
rows=$(ap_requests /hang)
ap_assert_jq "both /hang rows: aborted, status 0, at least 1 s, the server's pid" \
	"length == 2 and all(.[]; .status == 0 and .aborted == true and .error == true and
	 .duration_ms >= 1000 and .pid == $AP_SERVER_PID)" "$rows"
ap_assert_jq "a /hang row's error: aborted, the killed message" \
	'.error.type == "aborted" and (.error.message | test("killed"))' \
	"$(ap_api "/api/v1/requests/$(jq '.[0].id' <<<"$rows")")"
ap_assert_jq "/api/v1/errors: GET /hang aborted twice, the killed message" \
	'[.errors[] | select(.route == "/hang")] | length == 1 and .[0].type == "aborted" and
	 .[0].count == 2 and (.[0].message | test("killed"))' \
	"$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")"

# ---- 2. a clean exit with a request announced in flight -------------------
AP_SERVICE=it-killed-exit
start_crash exit1 "$AP_SERVICE"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$AP_PORT/ok"
curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$AP_PORT/hang" &
c1=$!
ap_wait_log exit1 '^hanging' 5
sleep 2.5
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$AP_PORT/exit" || true
wait "$c1" 2>/dev/null || true
ap_wait_log exit1 '^exiting' 5
sleep 2.5
ap_expect_counts <<EOT
GET /ok 1
EOT
# Its announcements (one a second for /hang) are no events of its traffic.
ap_assert_jq "the exited server's events: its one /ok" \
	'[.processes[] | select(.service == "it-killed-exit") | .events] == [1]' \
	"$(ap_api /api/v1/status)"

# ---- 3. a clean exit with nothing in flight --------------------------------
AP_SERVICE=it-killed-idle
start_crash exit2 "$AP_SERVICE"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$AP_PORT/ok"
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$AP_PORT/exit" || true
ap_wait_log exit2 '^exiting' 5
sleep 1
ap_expect_counts <<EOT
GET /ok 1
EOT
# ---- 4. a fork child killed, its parent having served first ---------------
# The parent serves a request itself (its shipper starts), then forks a
# child per connection (as Python's ForkingMixIn does) and never reads
# again. A child's /hang, SIGKILLed after 2.5 s (left a zombie: the parent
# never waits), is recorded: the fork handler makes the child's first
# request start its own shipper, as the parent's did.
AP_SERVICE=it-killed-fork
cat >"$AP_TMP/forker.py" <<'PY'
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
def serve(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            return
        data += d
    if data.split(b" ")[1] == b"/hang":
        print("hanging", os.getpid(), flush=True)
        time.sleep(60)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    c.close()
c, _ = s.accept()
serve(c)
while True:
    c, _ = s.accept()
    if os.fork() == 0:
        s.close()
        serve(c)
        os._exit(0)
    c.close()
PY
AP_PORT=$(ap_free_port)
ap_bg_preloaded forker "$AP_PY" "$AP_TMP/forker.py" "$AP_PORT"
ap_wait_log forker '^listening'
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$AP_PORT/ok"
curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$AP_PORT/hang" &
c1=$!
ap_wait_log forker '^hanging' 5
child=$(sed -n 's/^hanging //p' "$AP_TMP/forker.log")
sleep 2.5
kill -KILL "$child"
wait "$c1" 2>/dev/null || true
ap_expect_counts <<EOT
GET /ok 1
GET /hang 1
EOT
ap_assert_jq "the fork child's /hang: aborted, by the child" \
	".[0].aborted == true and .[0].pid == $child" "$(ap_requests /hang)"

# ---- 5. a request waiting for a subprocess it forked ----------------------
AP_SERVICE=it-killed-sub
start_crash forkhang "$AP_SERVICE"
curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$AP_PORT/forkhang" &
c1=$!
ap_wait_log forkhang '^forkhanging' 5
sleep 2.5
kill -KILL "$AP_SERVER_PID"
wait "$c1" 2>/dev/null || true
ap_expect_counts <<EOT
GET /forkhang 1
EOT
ap_assert_jq "/forkhang: aborted, by the server" \
	".[0].aborted == true and .[0].pid == $AP_SERVER_PID" "$(ap_requests /forkhang)"

ap_assert_jq "/api/v1/status: 4 requests recorded killed in all, none held now" \
	'.ingest.requests_killed == 4 and .ingest.requests_announced == 0' "$(ap_api /api/v1/status)"
ap_log "passed"
