#!/bin/bash
# Tornado and aiohttp, the two asyncio web frameworks that serve HTTP
# themselves: Debian's Tornado 6.2 (python3-tornado) and aiohttp 3.8
# (python3-aiohttp, its C HTTP parser), run by /usr/bin/python3 under the
# preload on 127.0.0.1, each an asyncio loop serving many connections on
# one thread (apps: tests/servers/tornado_app.py and aiohttp_app.py, the
# same routes; SQL through Python's sqlite3 module). Four instances, one
# service each:
#
#   it-pyasync-tornado        one process
#   it-pyasync-tornado-fork2  tornado.process.fork_processes(2): the parent
#                             binds the socket and forks two children that
#                             accept on it, each on its own loop
#   it-pyasync-aiohttp        one process
#   it-pyasync-aiohttp-rp2    two processes, each binding the port with
#                             reuse_port (SO_REUSEPORT: the kernel spreads
#                             the connections over them)
# and the two apps once more without the preload, to compare responses.
#
# The calls (strace -f, once, by hand): both loops accept4(2), read with
# recv (recvfrom(2); Tornado 64 KiB at a time, aiohttp 256 KiB), write
# with send (sendto(2)) and close(2). Tornado writes a response's head and
# body in one send, each flush()ed piece of a chunked body in its own;
# aiohttp writes the head, then the body, in two sends, and each
# StreamResponse.write() in its own. Static files: aiohttp sendfile(2)s
# them (asyncio's loop.sendfile: 4 MiB as 3.75 MiB, then the rest once
# the socket is writable again), Tornado sends them 64 KiB at a time.
#
# Every instance (exact counts per route; per request the status, and
# bytes_in / bytes_out as the clients sent and read them):
#   keep-alive (6 on one curl connection, ids templated /items/{id}, a
#   404: the framework's own page); a pipeline of 4 in one write (GET,
#   HEAD: the framework drops the body and bytes_out is the head; a body
#   flushed in 5 pieces, sent chunked; an exception answered by the
#   framework's own 500: Tornado keeps the connection, aiohttp closes it),
#   byte-identical to the unpreloaded app's (Date masked); a stream whose
#   handler raises after its first flushed piece: aiohttp closes the
#   connection (aborted, with the 200 and the bytes sent), Tornado logs
#   "Cannot send error response after headers written" and ENDS the
#   chunked body (its last chunk): a complete 200 on the wire, recorded as
#   one, no error; the same stream with a Content-Length of 5000 (cut after
#   1000): both close mid-body, aborted; three 1 MiB POSTs read whole
#   (plain, after a 100 Continue, chunked; aiohttp's client_max_size raised
#   from its 1 MiB default, which answers a 1 MiB body 413); the stream
#   over HTTP/1.0 (no length: ended by the close); a 4 MiB static file
#   whole, a range of it (206) and its HEAD; a WebSocket (101, then
#   frames the preload no longer follows) whose handler runs the 4
#   statements after the 101 ended: the service's; SQL: /sql/loop's
#   4 statements run on the loop's thread while its request is alone
#   there, attributed (an N+1 of 3), and /sql/pool's 4 run by
#   run_in_executor in the loop's default executor, whose threads read no
#   request: the service's, no request's (README, Attribution and What it
#   cannot see). In the two-process instances each request carries the pid
#   of a serving process.
# The single-process instances only (a rendezvous needs its requests in
# one process):
#   six 400 ms requests at once on the loop (asyncio.sleep once all six
#   have arrived: each 400 ms or more, all six in flight at one instant,
#   one pid and one thread) with a /sql/beside whose statements run while
#   they sleep (7 in flight: none attributed); two /sql/pair running their
#   statements while both are in flight: none attributed; two /sql/loop
#   pipelined in one write (both heads read in one recv, so both in flight
#   while the first runs): the first none, the second its 4; then a
#   /sql/loop alone: its 4 again; a client giving up on a /wait (300 ms)
#   after 100 ms (aborted, status 0). And HTTPS on a second port, one
#   keep-alive connection (two GETs, a /sql/loop), followed both ways:
#   Tornado's through the socket Python's ssl module hands libssl,
#   aiohttp's through asyncio's memory BIOs (the SSL object bound to the
#   socket its thread read last); the plaintext bytes exact and the 4
#   statements attributed.
# The service counts every statement, attributed or not (/api/v1/queries),
# and /api/v1/status has them all: 136, 80 of them unattributed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/applib.sh"

AP_PYASYNC_APPS=$AP_SRCDIR/tests/servers
ap_require curl jq openssl
ap_require_pymods sqlite3 tornado aiohttp
ap_require_build

ap_start_collector
/usr/bin/python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO authors VALUES (1, "Ann"), (2, "Bo"), (3, "Cy");
""")' "$AP_TMP/app.db" || ap_fail "creating the database failed"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"
mkdir "$AP_TMP/files" && head -c 4194304 /dev/urandom >"$AP_TMP/files/big.bin"
ap_make_cert "$AP_TMP/cert"
cat "$AP_TMP/cert.crt" "$AP_TMP/cert.key" >"$AP_TMP/cert.pem"

# start NAME LOG APP [ARGS...] : APP (tornado or aiohttp) on port PORT[NAME]
# (chosen once per NAME) under the preload, service it-pyasync-NAME, its
# output in LOG.log; NAME plain-* runs without the preload.
declare -A PORT
start() {
	local name=$1 log=$2 app=$3
	shift 3
	[ -n "${PORT[$name]:-}" ] || PORT[$name]=$(ap_free_port)
	local cmd=(env PYTHONDONTWRITEBYTECODE=1 PYASYNC_APP_DB="$AP_TMP/app.db" PYASYNC_APP_FILES="$AP_TMP/files"
		/usr/bin/python3 "$AP_PYASYNC_APPS/${app}_app.py" "${PORT[$name]}" "$@")
	case $name in
	tornado | aiohttp)
		PORT[$name-tls]=$(ap_free_port)
		cmd=(env PYASYNC_APP_TLS_PORT="${PORT[$name-tls]}" PYASYNC_APP_CERT="$AP_TMP/cert.pem" "${cmd[@]}")
		;;
	esac
	case $name in
	plain-*) ap_bg "$log" "${cmd[@]}" ;;
	*) AP_SERVICE=it-pyasync-$name ap_bg_preloaded "$log" "${cmd[@]}" ;;
	esac
}
start tornado tornado tornado
start tornado-fork2 tornado-fork2 tornado 2
start aiohttp aiohttp aiohttp
start aiohttp-rp2 aiohttp-rp2 aiohttp reuse_port
start aiohttp-rp2 aiohttp-rp2.2 aiohttp reuse_port
start plain-tornado plain-tornado tornado
start plain-aiohttp plain-aiohttp aiohttp
# pids NAME : the pids of NAME's serving processes (from their ready lines).
pids() {
	cat "$AP_TMP/$1.log" "$AP_TMP/$1.2.log" 2>/dev/null |
		sed -n 's/^[a-z]*_app: worker \([0-9]*\) ready$/\1/p' | sort -n | tr '\n' ' '
}
# ready NAME N : until N processes of NAME serve.
ready() {
	for _ in $(seq 300); do
		[ "$(pids "$1" | wc -w)" -ge "$2" ] && return 0
		sleep 0.1
	done
	ap_fail "$1: not $2 processes serving after 30s"
}
for n in tornado aiohttp plain-tornado plain-aiohttp; do
	ready "$n" 1
done
ready tornado-fork2 2
ready aiohttp-rp2 2
# Tornado's children die with their parent (PR_SET_PDEATHSIG); stop them
# by pid too.
AP_PIDS="$(pids tornado-fork2) $AP_PIDS"
ap_log "collector $AP_URL; ports: tornado ${PORT[tornado]}, tornado-fork2 ${PORT[tornado-fork2]}" \
	"(children $(pids tornado-fork2)), aiohttp ${PORT[aiohttp]}, aiohttp-rp2 ${PORT[aiohttp-rp2]}" \
	"(processes $(pids aiohttp-rp2))"

# upto_close PORT TARGET : GETs TARGET on a new connection and reads until
# the server closes it or ends a chunked body; prints "STATUS BYTES
# CLOSED" (CLOSED: True when the server closed the connection).
upto_close() {
	"$AP_PY" - "$@" <<'PY' || ap_fail "GET $2 failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2].encode())
d, closed = b"", False
while not d.endswith(b"\r\n0\r\n\r\n"):
    b = s.recv(65536)
    if not b:
        closed = True
        break
    d += b
print(d.split(b" ", 2)[1].decode(), len(d), closed)
PY
}

# ws PORT MESSAGE... : opens a WebSocket on /ws, sends each text message
# and reads its answer, then closes (status 1000) and reads the server's
# close. Prints "STATUS REQUEST_BYTES HEAD_BYTES" (the handshake), then
# each answer, then "close".
ws() {
	"$AP_PY" - "$@" <<'PY' || ap_fail "WebSocket on port $1 failed"
import base64, os, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % base64.b64encode(os.urandom(16)).decode()).encode()
s.sendall(req)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(65536)
head, buf = buf.split(b"\r\n\r\n", 1)
print(head.split(b" ")[1].decode(), len(req), len(head) + 4)

def send(op, data):
    mask = os.urandom(4)
    s.sendall(bytes([0x80 | op, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

def frame():
    global buf
    while len(buf) < 2 or len(buf) < 2 + (2 if buf[1] & 0x7f == 126 else 0):
        buf += s.recv(65536)
    n, off = buf[1] & 0x7f, 2
    if n == 126:
        n, off = struct.unpack(">H", buf[2:4])[0], 4
    while len(buf) < off + n:
        buf += s.recv(65536)
    op, data, buf = buf[0] & 0x0f, buf[off:off + n], buf[off + n:]
    return op, data

for m in sys.argv[2:]:
    send(1, m.encode())
    print(frame()[1].decode())
send(8, struct.pack(">H", 1000))
print("close" if frame()[0] == 8 else "no close")
PY
}

# traffic NAME PORT : what every instance is sent; its clients' outputs in
# $AP_TMP/NAME-*.out.
traffic() {
	local name=$1 port=$2 b=http://127.0.0.1:$2 o=$AP_TMP/$1 h
	ap_curl_many "$o-ka.out" "$b/hello" "$b/items/1" "$b/items/22" "$b/nope" "$b/items/333" "$b/hello"
	ap_assert_eq "$name: keep-alive statuses" "$(awk '{printf "%s ", $1}' "$o-ka.out")" "200 200 200 404 200 200 "
	ap_raw "$port" --pipeline --dump "$o-pipe.raw" "GET /items/7" "HEAD /hello" "GET /stream" "GET /boom" \
		>"$o-pipe.out"
	ap_assert_eq "$name: pipelined statuses" "$(awk '{printf "%s ", $1}' "$o-pipe.out")" "200 200 200 500 "
	[ "$(grep -ci 'transfer-encoding: chunked' "$o-pipe.raw")" = 1 ] ||
		ap_fail "$name: GET /stream was not the one response sent chunked"
	ap_raw "$port" 'GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >"$o-http10.out"
	ap_assert_eq "$name: GET /stream over HTTP/1.0: 200 and 5000 bytes without a length, then a close" \
		"$(cut -d' ' -f1 "$o-http10.out")" 200
	upto_close "$port" /stream/boom >"$o-sboom.out"
	upto_close "$port" /stream/cut >"$o-scut.out"
	ap_assert_eq "$name: GET /stream/cut: the 200, 1000 bytes of the body, the connection closed" \
		"$(cut -d' ' -f1,3 "$o-scut.out")" "200 True"
	ap_post_uploads "$name" "$b" "$o-up.out"
	for h in '' '-r 1000-2999999' '-I'; do
		# shellcheck disable=SC2086 # h: none or one option and its value
		curl -s --max-time 20 -o "$o-file.body" $h -w '%{http_code} %{size_request} %{size_header} %{size_download}\n' \
			"$b/files/big.bin" >>"$o-files.out" || ap_fail "$name: GET /files/big.bin ($h) failed"
	done
	ap_assert_eq "$name: GET /files/big.bin, a range of it, HEAD: statuses and bodies" \
		"$(awk '{printf "%s %s ", $1, $4}' "$o-files.out")" "200 4194304 206 2999000 200 0 "
	ws "$port" hello sql >"$o-ws.out"
	ap_assert_eq "$name: a WebSocket on /ws: 101, an echo, the rows, a close" \
		"$(cut -d' ' -f1 "$o-ws.out" | tr '\n' ' ')" '101 hello {"authors": close '
	ap_assert_eq "$name: GET /sql/loop, /sql/pool, twice each, one connection each" \
		"$(for p in loop pool loop pool; do curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$b/sql/$p"; done)" \
		"200 200 200 200 "
}

# loop_traffic NAME PORT : what only the single-process instances are sent.
loop_traffic() {
	local name=$1 port=$2 b=http://127.0.0.1:$2 o=$AP_TMP/$1
	ap_meet_traffic "$name" "$b" "$o"
	ap_raw "$port" --pipeline "GET /sql/loop" "GET /sql/loop" >"$o-sqlpipe.out"
	ap_assert_eq "$name: two /sql/loop pipelined: statuses" "$(awk '{printf "%s ", $1}' "$o-sqlpipe.out")" "200 200 "
	ap_assert_eq "$name: /sql/loop alone after them" "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$b/sql/loop")" 200
	# A client that gives up on a /wait after 100 ms.
	"$AP_PY" - "$port" <<'PY' || ap_fail "$name: the /wait given up failed"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /wait?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.1)
s.close()
PY
}

# The instances at once (their servers are apart), then the single
# processes' rendezvous, at once too.
jobs=""
for n in tornado tornado-fork2 aiohttp aiohttp-rp2; do
	traffic "$n" "${PORT[$n]}" &
	jobs="$jobs $!"
done
for p in $jobs; do
	wait "$p" || ap_fail "the traffic of an instance failed"
done
jobs=""
for n in tornado aiohttp; do
	loop_traffic "$n" "${PORT[$n]}" &
	jobs="$jobs $!"
done
for p in $jobs; do
	wait "$p" || ap_fail "the concurrent traffic of an instance failed"
done
# HTTPS, on one keep-alive connection, to each single process's TLS port.
for n in tornado aiohttp; do
	curl -sk --max-time 20 -w '%{http_code} %{num_connects} %{size_upload} %{size_request} %{size_header} %{size_download}\n' \
		-o /dev/null "https://127.0.0.1:${PORT[$n-tls]}/items/1001" -o /dev/null "https://127.0.0.1:${PORT[$n-tls]}/items/1002" \
		-o /dev/null "https://127.0.0.1:${PORT[$n-tls]}/sql/loop" >"$AP_TMP/$n-tls.out" || ap_fail "$n: HTTPS failed"
	ap_assert_eq "$n: HTTPS: statuses, one connection" "$(awk '{printf "%s %s ", $1, $2}' "$AP_TMP/$n-tls.out")" \
		"200 1 200 0 200 0 "
done
# The same pipeline to the apps without the preload: the same bytes.
for n in tornado aiohttp; do
	ap_raw "${PORT[plain-$n]}" --pipeline --dump "$AP_TMP/plain-$n-pipe.raw" \
		"GET /items/7" "HEAD /hello" "GET /stream" "GET /boom" >/dev/null
	cmp -s "$AP_TMP/plain-$n-pipe.raw" "$AP_TMP/$n-pipe.raw" ||
		ap_fail "$n: the pipeline's responses differ with the preload"
	ap_log "ok: $n: the pipeline's responses byte-identical with and without the preload"
done

# ---- what the collector reports ----------------------------------------------
# aborted PATH OUT : the one GET of PATH aborted, with its 200 and the bytes
# the client read (OUT: upto_close's output).
aborted() {
	ap_assert_jq "$AP_SERVICE: GET $1: aborted, with the 200 sent and the bytes the client read" \
		"length == 1 and .[0].status == 200 and .[0].aborted and .[0].error and
		 .[0].bytes_out == $(cut -d' ' -f2 "$2")" "$(ap_rq "$1" GET)"
}
# err ROUTE TYPE MESSAGE : one error group of a GET, as /api/v1/errors has it.
err() { printf '{"method": "GET", "route": "%s", "type": "%s", "count": 1, "message": "%s"}' "$@"; }
ABORTED="connection closed before a complete response"

# counts : reads lines "METHOD ROUTE N" and asserts that this service's
# endpoints in $AP_TMP/endpoints.json are exactly those, with those counts.
counts() {
	local want
	want=$(awk 'NF == 3 {printf "%s\"%s %s\": %s", (n++ ? ", " : "{"), $1, $2, $3} END {print "}"}')
	ap_check_jq "$AP_SERVICE: requests per route, exactly $want" "$(cat "$AP_TMP/endpoints.json")" \
		'[.endpoints[] | select(.service == $s) | {key: "\(.method) \(.route)", value: .count}] | from_entries == $w' \
		--arg s "$AP_SERVICE" --argjson w "$want"
}

# check NAME APP SINGLE(1|0) : every assertion on instance NAME's service.
check() {
	local name=$1 app=$2 single=$3 o=$AP_TMP/$1 n p code sreq shdr sdl c json errs msg
	AP_SERVICE=it-pyasync-$name
	local loop_n=2 extra="" items=4
	if [ "$single" = 1 ]; then
		# the rendezvous, /wait, and 3 requests over HTTPS
		items=6 loop_n=6
		extra="GET /slow 6
GET /wait 1
GET /sql/beside 1
GET /sql/pair 2"
	fi
	counts <<EOF
GET /hello 2
GET /items/{id} $items
GET /nope 1
HEAD /hello 1
GET /stream 2
GET /boom 1
GET /stream/boom 1
GET /stream/cut 1
POST /upload 3
GET /files/big.bin 2
HEAD /files/big.bin 1
GET /ws 1
GET /sql/loop $loop_n
GET /sql/pool 2
$extra
EOF
	ap_fetch_reqs "$AP_TMP/$name-requests.json"
	# the keep-alive connection: curl's sizes, line by line
	n=0
	for p in /hello /items/1 /items/22 /nope /items/333; do
		n=$(( n + 1 ))
		read -r code _ _ sreq shdr sdl <<<"$(sed -n "${n}p" "$o-ka.out")"
		c=1
		[ "$p" = /hello ] && c=2
		ap_expect_reqs "$p" GET "$c" "$code" "$sreq" $(( shdr + sdl ))
	done
	# the pipeline: ap_raw's requests and the raw responses it read
	ap_expect_reqs /items/7 GET 1 200 "$(ap_reqlen "GET /items/7")" "$(sed -n 1p "$o-pipe.out" | cut -d' ' -f2)"
	ap_expect_reqs /hello HEAD 1 200 "$(ap_reqlen "HEAD /hello")" "$(sed -n 2p "$o-pipe.out" | cut -d' ' -f2)"
	ap_expect_reqs /boom GET 1 500 "$(ap_reqlen "GET /boom")" "$(sed -n 4p "$o-pipe.out" | cut -d' ' -f2)"
	ap_assert_jq "$AP_SERVICE: GET /stream: pipelined (chunked), and over HTTP/1.0 (ended by the close)" \
		"[.[] | [.status, .bytes_in, .bytes_out, .aborted]] | sort ==
		 ([[200, $(ap_reqlen "GET /stream"), $(sed -n 3p "$o-pipe.out" | cut -d' ' -f2), false],
		   [200, $(printf 'GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' | wc -c), $(cut -d' ' -f2 "$o-http10.out"), false]] | sort)" \
		"$(ap_rq /stream GET)"
	aborted /stream/cut "$o-scut.out"
	msg='? Internal Server Error Server got itself in trouble'
	[ "$app" = tornado ] &&
		msg='<html><title>?: Internal Server Error</title><body>?: Internal Server Error</body></html>'
	errs="$(err /boom "HTTP 500" "$msg"), $(err /stream/cut aborted "$ABORTED")"
	if [ "$app" = tornado ]; then
		# Tornado ended the chunked body after the exception: complete.
		ap_assert_eq "$name: GET /stream/boom: the 200 and the last chunk, the connection kept" \
			"$(cut -d' ' -f1,3 "$o-sboom.out")" "200 False"
		ap_expect_reqs /stream/boom GET 1 200 "$(printf 'GET /stream/boom HTTP/1.1\r\nHost: x\r\n\r\n' | wc -c)" \
			"$(cut -d' ' -f2 "$o-sboom.out")"
	else
		ap_assert_eq "$name: GET /stream/boom: the 200, then the connection closed mid-body" \
			"$(cut -d' ' -f1,3 "$o-sboom.out")" "200 True"
		aborted /stream/boom "$o-sboom.out"
		errs="$errs, $(err /stream/boom aborted "$ABORTED")"
	fi
	ap_check_uploads "$o-up.out"
	ap_assert_jq "$AP_SERVICE: GET /files/big.bin, whole and a range: bytes as curl sent and received them" \
		"[.[] | [.status, .bytes_in, .bytes_out]] == $(awk 'NR < 3 {printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2, $3 + $4} END {print "]"}' "$o-files.out")" \
		"$(ap_rq /files/big.bin GET)"
	read -r code sreq shdr _ <<<"$(sed -n 3p "$o-files.out")"
	ap_expect_reqs /files/big.bin HEAD 1 "$code" "$sreq" "$shdr"
	read -r code sreq shdr <<<"$(sed -n 1p "$o-ws.out")"
	ap_expect_reqs /ws GET 1 "$code" "$sreq" "$shdr"
	if [ "$single" = 1 ]; then
		# over HTTPS: the plaintext's bytes
		for n in 1 2; do
			read -r code _ _ sreq shdr sdl <<<"$(sed -n "${n}p" "$o-tls.out")"
			ap_expect_reqs "/items/100$n" GET 1 "$code" "$sreq" $(( shdr + sdl ))
		done
	fi
	if [ "$single" = 1 ]; then
		errs="$errs, $(err /wait aborted "$ABORTED")"
		ap_assert_jq "$AP_SERVICE: GET /wait given up after 100 ms: aborted, no status, nothing sent" \
			'length == 1 and .[0].status == 0 and .[0].bytes_out == 0 and .[0].aborted and .[0].error' \
			"$(ap_rq /wait GET)"
	fi
	json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
	ap_check_jq "$AP_SERVICE: /api/v1/errors: the framework's HTTP 500 on GET /boom, the aborted requests, nothing else" "$json" \
		"[.errors[] | select(.service == \$s) | {method, route, type, count, message}] | sort_by(.route) == ([$errs] | sort_by(.route))" \
		--arg s "$AP_SERVICE"
	ap_assert_pids_among "$(jq -r '[.requests[].pid] | unique | .[]' "$AP_REQS")" "$(pids "$name")" \
		"a serving process of $name"
	# SQL: /sql/loop alone 4 each (an N+1 of 3); /sql/pool's and the
	# WebSocket's (run after its request, the 101, had ended) none.
	if [ "$single" = 1 ]; then
		local sqls="4 4 0 4 4 4"
		ap_expect_sql <<EOF
GET /sql/loop $loop_n $(( loop_n * 4 - 4 )) $(( loop_n - 1 ))
GET /sql/pool 2 0 0
GET /sql/beside 1 0 0
GET /sql/pair 2 0 0
GET /ws 1 0 0
EOF
		ap_assert_eq "$AP_SERVICE: sql_count of each GET /sql/loop (the first pipelined one: none)" \
			"$(ap_rq /sql/loop GET | jq -r '[.[].sql_count] | map(tostring) | join(" ")')" "$sqls"
		ap_check_slow 400
		c=48
	else
		ap_expect_sql <<EOF
GET /sql/loop 2 8 2
GET /sql/pool 2 0 0
GET /ws 1 0 0
EOF
		c=20
	fi
	# The service counts every statement, attributed or not.
	ap_check_author_queries "$c"
}
# Until the four services' 128 requests (40 in each single process, 3 of
# them over HTTPS, 24 in each pair) have arrived, then 1.5 s more (events
# arrive within 1 s), so that a request counted twice shows.
for _ in $(seq 150); do
	[ "$(ap_api /api/v1/endpoints | tee "$AP_TMP/endpoints.json" |
		jq '[.endpoints[] | select(.service | startswith("it-pyasync-")) | .count] | add // 0')" -ge 128 ] && break
	sleep 0.2
done
sleep 1.5
ap_api /api/v1/endpoints >"$AP_TMP/endpoints.json"
# The four services' checks at once.
jobs=""
for c in "check tornado tornado 1" "check tornado-fork2 tornado 0" "check aiohttp aiohttp 1" \
	"check aiohttp-rp2 aiohttp 0"; do
	$c &
	jobs="$jobs $!"
done
for p in $jobs; do
	wait "$p" || ap_fail "a service's checks failed"
done
# The collector's totals: every request and statement of the four services
# (48 or 20 statements each, 20 or 8 of them attributed), nothing dropped.
ap_check_jq "/api/v1/status: 128 requests, 136 statements, 80 unattributed, no event dropped" \
	"$(ap_api /api/v1/status)" '.totals.requests == 128 and .totals.sql == 136 and
	 .ingest.statements_unattributed == 80 and ([.processes[].dropped] | add) == 0'
ap_log "PASS"
