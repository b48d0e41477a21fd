#!/bin/bash
# uvicorn (Debian's python3-uvicorn 0.17.6), the ASGI server FastAPI and
# Starlette apps run on, preloaded on 127.0.0.1 and serving the plain ASGI
# app tests/servers/uvicorn_app.py (no framework; SQL through Python's
# sqlite3 module). Four instances at once, one service each, covering both
# HTTP implementations and both event loops, single-process and under
# uvicorn's multiprocess supervisor (--workers 2: the parent binds the
# socket and spawns two fresh Python processes, which inherit LD_PRELOAD
# and accept on the shared socket, each on its own loop):
#
#   it-uvicorn-h11-asyncio          --http h11 --loop asyncio, one process
#   it-uvicorn-httptools-uvloop     --http httptools --loop uvloop, one process
#                                   (what `auto` picks when both are installed)
#   it-uvicorn-w2-h11-uvloop        --workers 2 --http h11 --loop uvloop
#   it-uvicorn-w2-httptools-asyncio --workers 2 --http httptools --loop asyncio
#
# and two over HTTPS (--ssl-keyfile/--ssl-certfile: uvicorn's TLS runs
# OpenSSL over memory BIOs, asyncio's sslproto or uvloop's own Cython one;
# the preload binds each SSL object to its socket, hook_ssl.c):
#
#   it-uvicorn-tls-asyncio          --http httptools --loop asyncio, one process
#   it-uvicorn-tls-uvloop           --http httptools --loop uvloop, one process
#
# The calls each loop makes (strace -f, once, by hand, a keep-alive GET and
# a chunked GET): asyncio's loop accept4(2)s, reads with recv (recvfrom(2)),
# writes every ASGI message with its own send (sendto(2): the head, each
# chunk) and closes with close(2); uvloop (libuv 1.44) accept4(2)s, reads
# with read(2), writes what a loop iteration queued in one writev(2) (the
# head and the body, or the head and the five chunks) and closes with
# syscall(SYS_close) (libuv imports no close). h11 or httptools only parse:
# they change no call.
#
# Every instance (exact counts per route; per request the status, and
# bytes_in / bytes_out as the clients sent and read them):
#   keep-alive (6 on one curl connection, ids templated /items/{id}, a
#   404); a pipeline of 4 in one write (GET, HEAD: uvicorn drops the body
#   and bytes_out is the head; a streamed body uvicorn sends chunked; an
#   app exception uvicorn answers with its own chunked 500, "Internal
#   Server Error", the error's message, and a close); a stream whose app
#   raises after its first chunk (uvicorn closes mid-body: aborted, with
#   the 200 it had sent); three 1 MiB POSTs read whole (plain, after a 100
#   Continue, chunked); SQL: /sql/loop's 4 statements run on the loop's
#   thread while its request is alone there, attributed (an N+1 of 3), and
#   /sql/pool's 4 run by asyncio.to_thread in the loop's executor, whose
#   thread has no request of its own: the service's, no request's
#   (README, Attribution and What it cannot see). Under --workers 2 each
#   request carries the pid of the worker that logged it.
# The single-process instances only (a rendezvous needs its requests in
# one process):
#   six 400 ms requests at once on the one loop (the app sleeps once all
#   six have arrived: each 380 ms or more (see below), all six in flight at one
#   instant, one pid and one thread), with a
#   /sql/beside whose statements run while they sleep: 7 requests or more
#   in flight, none attributed (more than the 4 a thread notes); two /sql/pair
#   running their statements while both are in flight: none attributed;
#   two /sql/loop pipelined in one write: both heads read at once, so both
#   in flight while the first runs (uvicorn serves them one after the
#   other): the first none, the second its 4; then a /sql/loop alone: its
#   4 again (the thread's list of requests emptied).
# The HTTPS instances (see tls_traffic): keep-alive (6 on one connection:
# ids templated, a chunked stream, a 404, the app's 500), 8 connections
# at once (2 requests each), six 400 ms /slow in flight together, two 1
# MiB POSTs (plain, chunked); exact counts, and every request's path,
# status, bytes_in and bytes_out as curl sent and read them. uvloop
# decrypts the request that came with a handshake's last flight in a
# later callback, after other sockets' reads: the binding made at the
# handshake keeps it right (hook_ssl.c).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/applib.sh"

AP_UVICORN_APP_DIR=$AP_SRCDIR/tests/servers
ap_require curl jq
ap_require_pymods sqlite3 uvicorn h11 httptools uvloop
ap_require_build

ap_start_collector
/usr/bin/python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO authors VALUES (1, "Ann"), (2, "Bo"), (3, "Cy");
""")' "$AP_TMP/app.db" || ap_fail "creating the database failed"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"

# start NAME HTTP LOOP [UVICORN ARGS...] : uvicorn under the preload, service
# it-uvicorn-NAME, on a free port, which it puts in PORT[NAME].
declare -A PORT
start() {
	local name=$1 http=$2 loop=$3 port
	shift 3
	port=$(ap_free_port)
	AP_SERVICE=it-uvicorn-$name ap_bg_preloaded "$name" env PYTHONDONTWRITEBYTECODE=1 \
		UVICORN_APP_DB="$AP_TMP/app.db" /usr/bin/python3 -m uvicorn --app-dir "$AP_UVICORN_APP_DIR" \
		uvicorn_app:app --host 127.0.0.1 --port "$port" --http "$http" --loop "$loop" "$@"
	PORT[$name]=$port
}
start h11-asyncio h11 asyncio
start httptools-uvloop httptools uvloop
start w2-h11-uvloop h11 uvloop --workers 2
start w2-httptools-asyncio httptools asyncio --workers 2
ap_make_cert "$AP_TMP/tls"
for l in asyncio uvloop; do
	start "tls-$l" httptools "$l" --ssl-keyfile "$AP_TMP/tls.key" --ssl-certfile "$AP_TMP/tls.crt"
done
# ready NAME N : until N processes of NAME have completed their startup.
ready() {
	local i
	for i in $(seq 300); do
		[ "$(grep -c 'Application startup complete' "$AP_TMP/$1.log")" -ge "$2" ] && return 0
		sleep 0.1
	done
	ap_fail "uvicorn $1: not $2 processes started after 30s"
}
ready h11-asyncio 1
ready httptools-uvloop 1
ready w2-h11-uvloop 2
ready w2-httptools-asyncio 2
ready tls-asyncio 1
ready tls-uvloop 1
# pids NAME : the pids of NAME's serving processes (from their log lines).
pids() { sed -n 's/.*Started server process \[\([0-9]*\)\].*/\1/p' "$AP_TMP/$1.log" | sort -n | tr '\n' ' '; }
ap_log "collector $AP_URL; uvicorn ports: h11-asyncio ${PORT[h11-asyncio]}, httptools-uvloop ${PORT[httptools-uvloop]}," \
	"w2-h11-uvloop ${PORT[w2-h11-uvloop]} (workers $(pids w2-h11-uvloop)), w2-httptools-asyncio" \
	"${PORT[w2-httptools-asyncio]} (workers $(pids w2-httptools-asyncio)), tls-asyncio ${PORT[tls-asyncio]}," \
	"tls-uvloop ${PORT[tls-uvloop]}"

# traffic NAME PORT : what every instance is sent; its clients' outputs in
# $AP_TMP/NAME-*.out.
traffic() {
	local name=$1 port=$2 b=http://127.0.0.1:$2 o=$AP_TMP/$1
	ap_curl_many "$o-ka.out" "$b/hello" "$b/items/1" "$b/items/22" "$b/nope" "$b/items/333" "$b/hello"
	ap_assert_eq "$name: keep-alive statuses" "$(awk '{printf "%s ", $1}' "$o-ka.out")" "200 200 200 404 200 200 "
	ap_raw "$port" --pipeline --dump "$o-pipe.raw" "GET /items/7" "HEAD /hello" "GET /stream" "GET /boom" \
		>"$o-pipe.out"
	ap_assert_eq "$name: pipelined statuses" "$(awk '{printf "%s ", $1}' "$o-pipe.out")" "200 200 200 500 "
	[ "$(grep -ci 'transfer-encoding: chunked' "$o-pipe.raw")" = 2 ] ||
		ap_fail "$name: GET /stream and uvicorn's 500 were not both sent chunked"
	# The app raises after the first chunk: uvicorn closes the connection.
	"$AP_PY" - "$port" >"$o-sboom.out" <<'PY' || ap_fail "$name: GET /stream/boom failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /stream/boom HTTP/1.1\r\nHost: x\r\n\r\n")
d = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    d += b
print(d.split(b" ", 2)[1].decode(), len(d), d.endswith(b"0\r\n\r\n"))
PY
	ap_assert_eq "$name: GET /stream/boom: the 200, then the connection closed mid-body" \
		"$(cut -d' ' -f1,3 "$o-sboom.out")" "200 False"
	ap_post_uploads "$name" "$b" "$o-up.out"
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
}

for n in h11-asyncio httptools-uvloop w2-h11-uvloop w2-httptools-asyncio; do
	traffic "$n" "${PORT[$n]}"
done
for n in h11-asyncio httptools-uvloop; do
	loop_traffic "$n" "${PORT[$n]}"
done

# tls_traffic NAME PORT : what the HTTPS instances are sent; each client
# writes "URL status connects size_request size_upload size_header
# body-file" per request to $AP_TMP/NAME-tls.*. --raw: the bodies as they
# came, chunk framing and all, in files whose sizes are what was read
# (curl's size_download leaves the framing out).
TLS_W='%{url_effective} %{http_code} %{num_connects} %{size_request} %{size_upload} %{size_header} %{filename_effective}\n'
tls_traffic() {
	local name=$1 b=https://127.0.0.1:$2 o=$AP_TMP/$1-tls c h i=0 pids=""
	# keep-alive, the 500 last (uvicorn closes after it)
	curl -sk --raw --max-time 20 -w "$TLS_W" -o "$o.b1" "$b/hello" -o "$o.b2" "$b/items/1" -o "$o.b3" "$b/stream" \
		-o "$o.b4" "$b/nope" -o "$o.b5" "$b/items/22" -o "$o.b6" "$b/boom" >"$o.ka" ||
		ap_fail "$name: the keep-alive client failed"
	ap_assert_eq "$name: keep-alive statuses and connections" "$(awk '{printf "%s/%s ", $2, $3}' "$o.ka")" \
		"200/1 200/0 200/0 404/0 200/0 500/0 "
	[ "$(grep -c '^3e8' "$o.b3")" = 5 ] || ap_fail "$name: GET /stream was not sent in 5 chunks"
	for c in 1 2 3 4 5 6 7 8; do
		curl -sk --raw --max-time 20 -w "$TLS_W" -o "$o.b$c.1" "$b/items/$((c + 100))" -o "$o.b$c.2" "$b/hello" \
			>"$o.c$c" &
		pids="$pids $!"
	done
	for c in 1 2 3 4 5 6; do
		curl -sk --raw --max-time 20 -w "$TLS_W" -o "$o.bslow$c" "$b/slow?ms=400&n=6" >"$o.slow$c" &
		pids="$pids $!"
	done
	for c in $pids; do
		wait "$c" || ap_fail "$name: a concurrent client failed"
	done
	for h in 'Expect:' 'Transfer-Encoding: chunked'; do
		i=$(( i + 1 ))
		curl -sk --raw --max-time 20 -w "$TLS_W" -o "$o.bup$i" -H "$h" --data-binary @"$AP_TMP/upload.bin" \
			"$b/upload" >>"$o.up" || ap_fail "$name: POST /upload ($h) failed"
		ap_assert_eq "$name: POST /upload ($h): the app read the whole body" "$(cat "$o.bup$i")" "got 1048576"
	done
	ap_assert_eq "$name: statuses and connections of the rest" \
		"$(cat "$o".c? "$o".slow? "$o.up" | awk '{printf "%s/%s ", $2, $3}')" \
		"$(printf '200/1 200/0 %.0s' 1 2 3 4 5 6 7 8; printf '200/1 %.0s' 1 2 3 4 5 6 7 8)"
}
for n in tls-asyncio tls-uvloop; do
	tls_traffic "$n" "${PORT[$n]}"
done

# ---- what the collector reports ----------------------------------------------
# check NAME SINGLE(1|0) : every assertion on instance NAME's service.
check() {
	local name=$1 single=$2 o=$AP_TMP/$1 n p code sreq shdr sdl c json
	AP_SERVICE=it-uvicorn-$name
	local loop_n=2 extra=""
	if [ "$single" = 1 ]; then
		loop_n=5
		extra="GET /slow 6
GET /sql/beside 1
GET /sql/pair 2"
	fi
	ap_expect_counts <<E
GET /hello 2
GET /items/{id} 4
GET /nope 1
HEAD /hello 1
GET /stream 1
GET /boom 1
GET /stream/boom 1
POST /upload 3
GET /sql/loop $loop_n
GET /sql/pool 2
$extra
E
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
	ap_expect_reqs /stream GET 1 200 "$(ap_reqlen "GET /stream")" "$(sed -n 3p "$o-pipe.out" | cut -d' ' -f2)"
	ap_expect_reqs /boom GET 1 500 "$(ap_reqlen "GET /boom")" "$(sed -n 4p "$o-pipe.out" | cut -d' ' -f2)"
	ap_assert_jq "$AP_SERVICE: GET /stream/boom: aborted, with the 200 sent and the bytes the client read" \
		"length == 1 and .[0].status == 200 and .[0].aborted and .[0].error and
		 .[0].bytes_out == $(cut -d' ' -f2 "$o-sboom.out")" "$(ap_rq /stream/boom GET)"
	ap_check_uploads "$o-up.out"
	json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
	ap_check_jq "$AP_SERVICE: /api/v1/errors: uvicorn's HTTP 500 on GET /boom, aborted on GET /stream/boom, nothing else" "$json" \
		'[.errors[] | select(.service == $s) | {method, route, type, count, message}] | sort_by(.route) ==
		 [{"method": "GET", "route": "/boom", "type": "HTTP 500", "count": 1, "message": "Internal Server Error"},
		  {"method": "GET", "route": "/stream/boom", "type": "aborted", "count": 1,
		   "message": "connection closed before a complete response"}]' --arg s "$AP_SERVICE"
	# Every request by a worker (or the one process) that logged its start.
	ap_assert_pids_among "$(jq -r '[.requests[].pid] | unique | .[]' "$AP_REQS")" "$(pids "$name")" \
		"a uvicorn server process of $name"
	# SQL: /sql/loop alone 4 each (an N+1 of 3), /sql/pool none.
	if [ "$single" = 1 ]; then
		ap_expect_sql <<E
GET /sql/loop 5 16 4
GET /sql/pool 2 0 0
GET /sql/beside 1 0 0
GET /sql/pair 2 0 0
E
		ap_assert_eq "$AP_SERVICE: sql_count of each GET /sql/loop (the first pipelined one: none)" \
			"$(ap_rq /sql/loop GET | jq -r '[.[].sql_count] | map(tostring) | join(" ")')" "4 4 0 4 4"
		# 380: uvloop's timers count from libuv's loop time, taken in whole
		# milliseconds as the loop iteration began, before the reads of
		# that iteration: a 400 ms sleep ended 399.7 ms after its request's
		# first byte was read.
		ap_check_slow 380
		c=40
	else
		ap_expect_sql <<E
GET /sql/loop 2 8 2
GET /sql/pool 2 0 0
E
		c=16
	fi
	# The service counts every statement, attributed or not.
	ap_check_author_queries "$c"
}
check h11-asyncio 1
check httptools-uvloop 1
check w2-h11-uvloop 0
check w2-httptools-asyncio 0

# tls_check NAME : the assertions on an HTTPS instance's service.
tls_check() {
	local name=$1 want got url code sreq sup shdr file
	AP_SERVICE=it-uvicorn-$name
	ap_expect_counts <<E
GET /hello 9
GET /items/{id} 10
GET /stream 1
GET /nope 1
GET /boom 1
GET /slow 6
POST /upload 2
E
	ap_fetch_reqs "$AP_TMP/$name-requests.json"
	# [path, status, bytes_in, bytes_out] of each request, as curl counted them
	want=$(cat "$AP_TMP/$name"-tls.ka "$AP_TMP/$name"-tls.c? "$AP_TMP/$name"-tls.slow? "$AP_TMP/$name"-tls.up |
		while read -r url code _ sreq sup shdr file; do
			url=${url#https://*/}
			printf '["/%s",%s,%s,%s]\n' "${url%%\?*}" "$code" $(( sreq + sup )) $(( shdr + $(wc -c <"$file") ))
		done | jq -s -c 'map(tojson) | sort | map(fromjson)')
	got=$(jq -c '[.requests[] | [.path, .status, .bytes_in, .bytes_out] | tojson] | sort | map(fromjson)' "$AP_REQS")
	ap_assert_eq "$AP_SERVICE: each request's path, status, bytes in and out" "$got" "$want"
	ap_assert_jq "$AP_SERVICE: none aborted" 'all(.requests[]; .aborted | not)' "$(cat "$AP_REQS")"
	ap_check_slow 380
}
tls_check tls-asyncio
tls_check tls-uvloop
ap_log "PASS"
