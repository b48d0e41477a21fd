#!/bin/bash
# gevent: Debian's gunicorn 20.1 with its gevent worker (-k gevent,
# python3-gevent 22.10, greenlet 2.0, libev), the most common way Flask and
# Django apps doing I/O are served, and gevent's own pywsgi server, each
# preloaded on 127.0.0.1 serving the plain WSGI app
# tests/servers/gevent_app.py (no framework; SQL through Python's sqlite3
# module). gevent monkey-patches the socket module: one OS thread per
# process serves every connection, each in its own greenlet. Instances, one
# service each:
#
#   it-gevent-w2      gunicorn -k gevent -w 2 --worker-connections 50
#   it-gevent-w1      gunicorn -k gevent -w 1 --worker-connections 50
#   it-gevent-pywsgi  python3 gevent_app.py PORT (gevent.pywsgi.WSGIServer
#                     after monkey.patch_all(), no gunicorn)
#   it-gevent-maxreq  gunicorn -k gevent -w 1 --max-requests 2
#   (and pywsgi without the preload, for comparison)
#
# The calls (strace -f, once, by hand, on a worker and on pywsgi, each
# route once): accept4(2) on the non-blocking listening socket until
# EAGAIN, recv (recvfrom(2), 8,192 bytes at a time: a 1 MiB body in 133
# reads), and one send (sendto(2)) per piece,
# each after a getsockopt(SO_SNDBUF) (gevent's sendall): the head, then
# the body; a generator's pieces one chunk per send (with their chunk
# lines), then the 5-byte last chunk; close(2) after recv returns 0.
# gunicorn's 500 for an app exception is one send of head and HTML body,
# then close(2) at once; pywsgi's 500 is two sends and "Connection: close".
# gunicorn's wsgi.file_wrapper goes through socket.sendfile, which gevent
# does as 8,192-byte sends, never sendfile(2); to a client that waits
# 300 ms before reading 8 MiB, one send was short (6,144 of 8,192, the
# rest next) and one failed with EAGAIN until the client read.
# Both send the body a bare WSGI application returns for a HEAD (no
# framework drops it here): those bytes follow the head (README: the
# response ends with its head, as with uWSGI).
#
# Every instance but maxreq (exact counts per route; per request the
# status, bytes_in / bytes_out as the clients sent and read them, no
# abort):
#   keep-alive (6 on one curl connection, ids templated /items/{id}, a
#   404); a pipeline of 3 in one write (GET, a generator's body the server
#   sends chunked, HEAD last: its body, sent anyway, is not the response's,
#   bytes_out is the head); a HEAD then 2 GETs on one connection, the
#   HEAD's body read and dropped by the client (the GETs recorded as
#   usual); an 8 MiB file to a client that reads only after 300 ms (the
#   sends wait mid-body: the whole file counted); an app exception (the
#   server's own 500, in /api/v1/errors);
#   three 1 MiB POSTs read whole (plain, after a 100 Continue, chunked);
#   two /sql/n1 on their own connections, each alone in its process: its
#   4 statements attributed, an N+1 of 3 (/api/v1/n-plus-one). Under -w 2,
#   every request by a worker gunicorn booted.
# The single-process instances (w1, pywsgi) also:
#   six 400 ms /slow at once (time.sleep: a greenlet switch; each 400 ms
#   or more, one pid and one thread, all six in flight at one instant);
#   a /sql/beside whose statements run while they sleep (7 in flight:
#   none attributed), two /sql/pair running theirs while both are in
#   flight (none attributed), two /sql/n1 pipelined in one write (both
#   heads read at once: the first none, the second its 4), then a /sql/n1
#   alone (4 again); then 40 /sql/n1 on 8 keep-alive connections at once:
#   each its 4, as no greenlet yields between reading a head and writing
#   its response (sqlite3 blocks the thread). README, Attribution: a
#   statement run while several requests are in flight on the thread is
#   the service's only; What it cannot see: what that means for a busy
#   gevent worker, measured by hand.
# maxreq: GET /pid, each on its own connection, until gunicorn has re-forked
# its worker (the old one serves on for up to a second after its 2nd
# request: 2 to 30 of them): every one counted, each request's pid the one
# its body names.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/applib.sh"

AP_GEVENT_APP_DIR=$AP_SRCDIR/tests/servers
ap_require curl jq /usr/bin/gunicorn
ap_require_pymods sqlite3 gevent
ap_require_build

ap_start_collector
/usr/bin/python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO authors VALUES (1, "Ann"), (2, "Bo"), (3, "Cy");
""")' "$AP_TMP/app.db" || ap_fail "creating the database failed"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"
head -c 8388608 /dev/urandom >"$AP_TMP/file.bin"

# start NAME PRELOAD(1|0) [GUNICORN ARGS...] : gunicorn's gevent worker
# (service it-gevent-NAME, preloaded or not) on a free port, in PORT[NAME].
declare -A PORT GPID
start() {
	local name=$1 pre=$2 port run=ap_bg
	shift 2
	port=$(ap_free_port)
	[ "$pre" = 1 ] && run=ap_bg_preloaded
	AP_SERVICE=it-gevent-$name $run "$name" env PYTHONDONTWRITEBYTECODE=1 GEVENT_APP_DB="$AP_TMP/app.db" \
		GEVENT_APP_FILE="$AP_TMP/file.bin" /usr/bin/gunicorn -k gevent --chdir "$AP_GEVENT_APP_DIR" --bind "127.0.0.1:$port" \
		--graceful-timeout 5 "$@" gevent_app:app
	PORT[$name]=$port
	GPID[$name]=$AP_BG_PID
}
start w2 1 -w 2 --worker-connections 50
start w1 1 -w 1 --worker-connections 50
start maxreq 1 -w 1 --max-requests 2
# pywsgi NAME PRELOAD(1|0) : gevent's pywsgi server (it-gevent-NAME).
pywsgi() {
	local run=ap_bg
	[ "$2" = 1 ] && run=ap_bg_preloaded
	PORT[$1]=$(ap_free_port)
	AP_SERVICE=it-gevent-$1 $run "$1" env PYTHONDONTWRITEBYTECODE=1 GEVENT_APP_DB="$AP_TMP/app.db" \
		GEVENT_APP_FILE="$AP_TMP/file.bin" /usr/bin/python3 "$AP_GEVENT_APP_DIR/gevent_app.py" "${PORT[$1]}"
}
pywsgi pywsgi 1
pywsgi plain 0
# pids NAME : the pids of NAME's serving processes (gunicorn's workers,
# as its log names them; pywsgi's one process).
pids() {
	sed -n -e 's/.*Booting worker with pid: \([0-9]*\).*/\1/p' -e 's/^pywsgi: serving on port [0-9]*, pid \([0-9]*\)$/\1/p' \
		"$AP_TMP/$1.log" | sort -n | tr '\n' ' '
}
for n in w2 w1 maxreq plain pywsgi; do
	ap_wait_port "${PORT[$n]}"
done
ap_log "collector $AP_URL; ports: w2 ${PORT[w2]} (workers $(pids w2)), w1 ${PORT[w1]}, pywsgi ${PORT[pywsgi]}," \
	"maxreq ${PORT[maxreq]}, plain ${PORT[plain]}"

# traffic NAME PORT : what every instance but maxreq is sent; its clients'
# outputs in $AP_TMP/NAME-*.
traffic() {
	local name=$1 port=$2 b=http://127.0.0.1:$2 o=$AP_TMP/$1
	ap_curl_many "$o-ka.out" "$b/hello" "$b/items/1" "$b/items/22" "$b/nope" "$b/items/333" "$b/hello"
	ap_assert_eq "$name: keep-alive statuses" "$(awk '{printf "%s ", $1}' "$o-ka.out")" "200 200 200 404 200 200 "
	ap_raw "$port" --pipeline --dump "$o-pipe.raw" "GET /items/7" "GET /stream" "HEAD /hello" >"$o-pipe.out"
	ap_assert_eq "$name: pipelined statuses" "$(awk '{printf "%s ", $1}' "$o-pipe.out")" "200 200 200 "
	[ "$(grep -ci 'transfer-encoding: chunked' "$o-pipe.raw")" = 1 ] || ap_fail "$name: GET /stream was not sent chunked"
	# A HEAD, its body (sent anyway) read and dropped, then two GETs.
	"$AP_PY" - "$port" >"$o-head.out" <<'PY' || ap_fail "$name: HEAD then GETs failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
out = []
for req, want in ((b"HEAD /hello", b"hello\n"), (b"GET /items/8", b'{"id": 8}\n'), (b"GET /hello", b"hello\n")):
    msg = req + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(msg)
    d = b""
    while not (b"\r\n\r\n" in d and d.endswith(want)):
        b = s.recv(65536)
        if not b:
            sys.exit("closed early")
        d += b
    head = d[:d.index(b"\r\n\r\n") + 4]
    out.append("%s %d %d" % (d.split(b" ", 2)[1].decode(), len(msg), len(head) if req.startswith(b"HEAD") else len(d)))
print("\n".join(out))
PY
	# 8 MiB, the client reading only after 300 ms: the sends fill the
	# socket's buffers and wait (EAGAIN) in the middle of the body.
	"$AP_PY" - "$port" "$AP_TMP/file.bin" >"$o-file.out" <<'PY' || ap_fail "$name: GET /file failed"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
msg = b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n"
s.sendall(msg)
time.sleep(0.3)
d = b""
while b"\r\n\r\n" not in d:
    b = s.recv(65536)
    if not b:
        sys.exit("closed before the head")
    d += b
head, body = d.split(b"\r\n\r\n", 1)
want = open(sys.argv[2], "rb").read()
while len(body) < len(want):
    b = s.recv(1 << 20)
    if not b:
        break
    body += b
if body != want:
    sys.exit("the body differs from the file (%d bytes of %d)" % (len(body), len(want)))
print(head.split(b" ", 2)[1].decode(), len(msg), len(head) + 4 + len(body))
PY
	ap_assert_eq "$name: GET /boom: the server's 500" \
		"$(curl -s --max-time 10 -o "$o-boom.body" -w '%{http_code} %{size_request} %{size_header} %{size_download}' "$b/boom" |
			tee "$o-boom.out" | cut -d' ' -f1)" 500
	ap_post_uploads "$name" "$b" "$o-up.out"
	ap_assert_eq "$name: GET /sql/n1 twice, one connection each" \
		"$(for p in 1 2; do curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$b/sql/n1"; done)" "200 200 "
}

# loop_traffic NAME PORT : what only the single-process instances are sent.
loop_traffic() {
	local name=$1 port=$2 b=http://127.0.0.1:$2 o=$AP_TMP/$1
	ap_meet_traffic "$name" "$b" "$o"
	ap_raw "$port" --pipeline "GET /sql/n1" "GET /sql/n1" >"$o-sqlpipe.out"
	ap_assert_eq "$name: two /sql/n1 pipelined: statuses" "$(awk '{printf "%s ", $1}' "$o-sqlpipe.out")" "200 200 "
	ap_assert_eq "$name: /sql/n1 alone after them" "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$b/sql/n1")" 200
	# 8 keep-alive connections at once, 5 /sql/n1 each: the greenlets
	# interleave, but none yields between reading its request's head and
	# writing its response (sqlite3 blocks the thread), so each request
	# is alone while it runs.
	"$AP_PY" - "$port" >"$o-busy.out" <<'PY' || ap_fail "$name: 8 connections of /sql/n1 failed"
import socket, sys, threading
codes = []
def client():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
    for _ in range(5):
        s.sendall(b"GET /sql/n1 HTTP/1.1\r\nHost: x\r\n\r\n")
        d = b""
        while not (b"\r\n\r\n" in d and d.endswith(b"]}\n")):
            b = s.recv(65536)
            if not b:
                sys.exit("closed early")
            d += b
        codes.append(d.split(b" ", 2)[1].decode())
    s.close()
ts = [threading.Thread(target=client) for _ in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(" ".join(sorted(set(codes))), len(codes))
PY
	ap_assert_eq "$name: 40 /sql/n1 on 8 connections at once: statuses" "$(cat "$o-busy.out")" "200 40"
}

# The three instances at once (each client waits for its answers), then
# the two single-process ones' concurrent part at once.
jobs=""
for n in w2 w1 pywsgi; do
	traffic "$n" "${PORT[$n]}" &
	jobs="$jobs $!"
done
# maxreq: GET /pid, one connection each, until a second worker answers
# (gunicorn's gevent worker serves on for up to a second after its
# --max-requests: how many the first serves varies).
(
	for _ in $(seq 200); do
		curl -s --max-time 20 "http://127.0.0.1:${PORT[maxreq]}/pid" >>"$AP_TMP/maxreq-pid.out" ||
			ap_fail "maxreq: GET /pid failed"
		[ "$(sort -u "$AP_TMP/maxreq-pid.out" | wc -l)" -ge 2 ] && exit 0
		sleep 0.05
	done
	ap_fail "maxreq: no second worker answered after 200 requests"
) &
maxreq_job=$!
for p in $jobs; do
	wait "$p" || ap_fail "the traffic of an instance failed"
done
wait "$maxreq_job" || ap_fail "maxreq: the requests failed"
jobs=""
for n in w1 pywsgi; do
	loop_traffic "$n" "${PORT[$n]}" &
	jobs="$jobs $!"
done
# The same requests without the preload: the same bytes (Date masked).
ap_raw "${PORT[plain]}" --pipeline --dump "$AP_TMP/plain-pipe.raw" "GET /items/7" "GET /stream" "HEAD /hello" >/dev/null
cmp -s "$AP_TMP/plain-pipe.raw" "$AP_TMP/pywsgi-pipe.raw" ||
	ap_fail "pywsgi's responses to the pipeline differ with the preload: $(diff "$AP_TMP/plain-pipe.raw" "$AP_TMP/pywsgi-pipe.raw" | head -5)"
ap_log "ok: the pipeline's responses are byte-identical with and without the preload"
for p in $jobs; do
	wait "$p" || ap_fail "the concurrent traffic of an instance failed"
done

# ---- what the collector reports ----------------------------------------------
# check NAME SINGLE(1|0) : every assertion on instance NAME's service.
check() {
	local name=$1 single=$2 o=$AP_TMP/$1 n p code sreq shdr sdl c json
	AP_SERVICE=it-gevent-$name
	local n1=2 extra=""
	if [ "$single" = 1 ]; then
		n1=45
		extra="GET /slow 6
GET /sql/beside 1
GET /sql/pair 2"
	fi
	ap_expect_counts <<E
GET /hello 3
GET /items/{id} 5
GET /nope 1
HEAD /hello 2
GET /stream 1
GET /boom 1
POST /upload 3
GET /file 1
GET /sql/n1 $n1
$extra
E
	ap_fetch_reqs "$AP_TMP/$name-requests.json"
	# the keep-alive connection: curl's sizes, line by line
	n=0
	for p in /items/1 /items/22 /nope /items/333; do
		n=$(( n + 1 ))
		read -r code _ _ sreq shdr sdl <<<"$(sed -n "$(( n + 1 ))p" "$o-ka.out")"
		ap_expect_reqs "$p" GET 1 "$code" "$sreq" $(( shdr + sdl ))
	done
	# the pipeline: ap_raw's requests and the raw responses it read
	ap_expect_reqs /items/7 GET 1 200 "$(ap_reqlen "GET /items/7")" "$(sed -n 1p "$o-pipe.out" | cut -d' ' -f2)"
	ap_expect_reqs /stream GET 1 200 "$(ap_reqlen "GET /stream")" "$(sed -n 2p "$o-pipe.out" | cut -d' ' -f2)"
	# the HEADs: the head alone, as the pipeline's client read it, and as
	# the other client cut it from what it read
	ap_assert_jq "$AP_SERVICE: HEAD /hello: the head alone, twice" \
		"[.[] | [.status, .bytes_in, .bytes_out, .aborted]] ==
		 [[200, $(ap_reqlen "HEAD /hello"), $(sed -n 3p "$o-pipe.out" | cut -d' ' -f2), false],
		  [200, $(sed -n 1p "$o-head.out" | cut -d' ' -f2,3 | tr ' ' ,), false]]" "$(ap_rq /hello HEAD)"
	read -r code sreq sdl <<<"$(sed -n 2p "$o-head.out")"
	ap_expect_reqs /items/8 GET 1 "$code" "$sreq" "$sdl"
	# GET /hello: curl's twice, then the one after the HEAD
	read -r code _ _ sreq shdr sdl <<<"$(sed -n 1p "$o-ka.out")"
	ap_assert_jq "$AP_SERVICE: GET /hello: bytes in and out as the clients sent and read them" \
		"[.[] | [.status, .bytes_in, .bytes_out, .aborted]] | sort ==
		 ([[200, $sreq, $(( shdr + sdl )), false], [200, $sreq, $(( shdr + sdl )), false],
		   [200, $(sed -n 3p "$o-head.out" | cut -d' ' -f2,3 | tr ' ' ,), false]] | sort)" "$(ap_rq /hello GET)"
	read -r code sreq sdl <"$o-file.out"
	ap_expect_reqs /file GET 1 "$code" "$sreq" "$sdl"
	read -r code sreq shdr sdl <"$o-boom.out"
	ap_expect_reqs /boom GET 1 500 "$sreq" $(( shdr + sdl ))
	ap_check_uploads "$o-up.out"
	json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
	ap_check_jq "$AP_SERVICE: /api/v1/errors: the server's HTTP 500 on GET /boom, nothing else" "$json" \
		'[.errors[] | select(.service == $s) | {method, route, type, count}] ==
		 [{"method": "GET", "route": "/boom", "type": "HTTP 500", "count": 1}]' --arg s "$AP_SERVICE"
	ap_assert_pids_among "$(jq -r '[.requests[].pid] | unique | .[]' "$AP_REQS")" "$(pids "$name")" \
		"a serving process of $name"
	# SQL: /sql/n1 alone 4 each (an N+1 of 3).
	if [ "$single" = 1 ]; then
		ap_expect_sql <<E
GET /sql/n1 45 176 44
GET /sql/beside 1 0 0
GET /sql/pair 2 0 0
E
		ap_assert_eq "$AP_SERVICE: sql_count of the first five GET /sql/n1 (the first pipelined one: none)" \
			"$(ap_rq /sql/n1 GET | jq -r '[.[:5][].sql_count] | map(tostring) | join(" ")')" "4 4 0 4 4"
		ap_assert_jq "$AP_SERVICE: the 40 GET /sql/n1 of 8 connections at once: 4 each, on one thread" \
			'.[5:] | length == 40 and all(.[]; .sql_count == 4 and .n_plus_one) and
			 ([.[] | "\(.pid)/\(.tid)"] | unique | length) == 1' "$(ap_rq /sql/n1 GET)"
		# 400: gevent.sleep (time.sleep, patched) updates the loop's time
		# before it starts its timer (gevent/hub.py), so unlike uvloop's
		# (uvicorn.sh) the sleep counts from the call.
		ap_check_slow 400
		c=192
	else
		ap_expect_sql <<E
GET /sql/n1 2 8 2
E
		c=8
	fi
	json=$(ap_api /api/v1/n-plus-one --data-urlencode "service=$AP_SERVICE")
	ap_check_jq "$AP_SERVICE: /api/v1/n-plus-one: GET /sql/n1's author lookup, 3 repeats" "$json" \
		'[.patterns[] | select(.service == $s) | {method, route, sql, max_repeats}] ==
		 [{"method": "GET", "route": "/sql/n1", "sql": "SELECT name FROM authors WHERE id = ?", "max_repeats": 3}]' \
		--arg s "$AP_SERVICE"
	# The service counts every statement, attributed or not.
	ap_check_author_queries "$c"
}

# maxreq: every request counted once, by the worker its body named (the
# first worker's, then the second's).
check_maxreq() {
	AP_SERVICE=it-gevent-maxreq
	ap_expect_counts <<E
GET /pid $(wc -l <"$AP_TMP/maxreq-pid.out")
E
	ap_fetch_reqs "$AP_TMP/maxreq-requests.json"
	ap_assert_jq "$AP_SERVICE: GET /pid: each request's pid the one its body named, oldest first" \
		"[.[] | .pid] == [$(paste -sd, "$AP_TMP/maxreq-pid.out")]" "$(ap_rq /pid GET)"
	ap_assert_pids_among "$(sort -u "$AP_TMP/maxreq-pid.out")" "$(pids maxreq)" "a worker gunicorn booted"
}

# The four services' checks at once (each waits for its own counts).
jobs=""
for c in "check w2 0" "check w1 1" "check pywsgi 1" check_maxreq; do
	$c &
	jobs="$jobs $!"
done
for p in $jobs; do
	wait "$p" || ap_fail "a service's checks failed"
done
# gunicorn's quick shutdown (SIGQUIT), all at once: each TERMed in turn by
# the cleanup trap takes a second or more (the worker's loop wakes once a
# second).
for n in w2 w1 maxreq; do
	kill -QUIT "${GPID[$n]}" 2>/dev/null
done
ap_log "PASS"
