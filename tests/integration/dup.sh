#!/bin/bash
# A connection served under other descriptor numbers than accept()'s
# (tests/servers/dup_server.c), in its three modes, each under a service
# of its own:
#   fork   BusyBox's pattern: a forked child moves the socket onto fds 0
#          and 1 (dup2, close, dup2), reads on 0, writes on 1, closes both
#          and _exit()s;
#   dup    the socket is duplicated (dup, or fcntl F_DUPFD_CLOEXEC) and
#          the original closed before anything is read;
#   split  read on the accepted fd, answered on a dup() of it; the reading
#          alias is closed while a request is unanswered, whose answer
#          then goes out on the other.
# Per mode: four keep-alive requests on one connection, then a /hello and
# a /drop (closed unanswered) on another. Exact counts per route, the
# statuses, and exactly one aborted request, the /drop: closing one alias
# while another remains aborts nothing.
. "$(dirname "$0")/lib.sh"

ap_require curl jq
DUP_SERVER=$AP_BUILDDIR/tests/servers/dup_server
ap_require_build "$DUP_SERVER"

ap_start_collector
for mode in fork dup split; do
	AP_SERVICE=it-dup-$mode
	AP_PORT=$(ap_free_port)
	ap_bg_preloaded "server-$mode" "$DUP_SERVER" --mode "$mode" --port "$AP_PORT"
	pid=$AP_BG_PID
	ap_wait_log "server-$mode" '^listening on'
	B=http://127.0.0.1:$AP_PORT
	ap_log "dup_server --mode $mode under the preload, pid $pid, port $AP_PORT"

	ap_curl_many "$AP_TMP/ka-$mode.out" "$B/hello" "$B/missing" "$B/hello" "$B/hello"
	ap_assert_eq "$mode: keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka-$mode.out")" \
		"200 404 200 200 "
	# /drop with a raw client: curl would send it again on a new connection
	"$AP_PY" - "$AP_PORT" >"$AP_TMP/drop-$mode.out" <<'PY' || ap_fail "$mode: the /drop exchange failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
s.sendall((req % "/hello").encode())
got = b""
while not got.endswith(b"hello\n"):
    d = s.recv(4096)
    if not d: break
    got += d
print(got.split(b" ", 2)[1].decode())
s.sendall((req % "/drop").encode())
print("eof" if s.recv(4096) == b"" else "answered")
PY
	ap_assert_eq "$mode: /hello, then /drop closed unanswered" \
		"$(awk '{printf "%s ", $1}' "$AP_TMP/drop-$mode.out")" "200 eof "

	ap_expect_counts <<E
GET /hello 4
GET /missing 1
GET /drop 1
E
	reqs=$(ap_api /api/v1/requests --data-urlencode "limit=1000" |
		jq --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s)]')
	ap_assert_jq "$mode: only /drop aborted; /hello 200, /missing 404" \
		'(map(select(.aborted) | .route) == ["/drop"]) and
		 (map(select(.route == "/hello") | .status) | unique) == [200] and
		 (map(select(.route == "/missing") | .status) | unique) == [404]' "$reqs"
	ap_assert_jq "$mode: bytes out of every /hello (head and its 6-byte body)" \
		'map(select(.route == "/hello") | .bytes_out) | unique == [70]' "$reqs"
	ap_assert_eq "$mode: error_count of GET /drop (aborted)" "$(ap_field GET /drop error_count)" 1
	ap_stop_pid "$pid"
done
ap_log "PASS"
