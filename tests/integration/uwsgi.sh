#!/bin/bash
# uWSGI 2.0 (Debian's uwsgi-core, and uwsgi-plugin-python3) under the preload,
# serving the WSGI application tests/servers/uwsgi_app.py. Three instances:
#
# 1. it-uwsgi: a master and 2 workers x 2 threads in uWSGI's native HTTP
#    mode (the workers accept and speak HTTP themselves) on two sockets:
#    --http-socket (uWSGI closes the connection after each response) and
#    --http11-socket (keep-alive). Keep-alive and one-request connections,
#    routes with ids, a 404, a 500 the application returns, an exception
#    out of the application (uWSGI logs it and closes the connection
#    unanswered: an aborted request, SPEC section 3), a generator's body
#    chunked (uWSGI's "chunked" routing action) and another that ends with
#    the connection, 1 MB POSTs read to the end, a HEAD (uWSGI sends the
#    body a bare WSGI application returns for it: those bytes after the
#    head are not the response's, bytes_out is the head), a 300 ms request,
#    two requests pipelined in one write (uWSGI 2.0 answers the first and
#    closes: the second is aborted), a HEAD and two GETs on one keep-alive
#    connection (the HEAD's body, sent anyway, belongs to no request), and
#    wsgi.file_wrapper, which uWSGI sends with sendfile(2) (seen once
#    with strace -f on a worker: write of the 83-byte head, then
#    sendfile(sock, file, [0], 300000); not traced here). Exact counts per
#    route, statuses, bytes in and out, durations, and the errors. Then 8
#    requests at once of a route running n+2 sqlite3 statements (Python's
#    sqlite3 module, RTLD_LOCAL), n = 1..8, 10 ms apart so that requests
#    overlap on the 4 threads: each request carries exactly its own n+2,
#    in order, and the N+1 of those with n >= 3.
# 2. it-uwsgi-recycle: 2 single-threaded workers recycled by
#    --max-requests 5: the master forks a new worker every 5 requests
#    (each one's state reset by the fork handler; the old one exits and
#    hands its events over at exit): every request counted once, by a
#    worker pid that served at most 5; the statement the application
#    runs at import, in the master before it forks, is counted once. Two
#    files sent by an offload thread (--offload-threads 1: sendfile and
#    close on that thread, after the worker moved on): exact bytes_out,
#    the request ended on the offload thread. Then --harakiri 2 kills a worker
#    stuck in a 20 s request with SIGKILL: the client sees the connection
#    close unanswered, which SPEC section 3 calls an aborted request;
#    nothing in the killed process can say so then, but its shipper had
#    announced the request in flight, so the collector records it once, as
#    an aborted request of its route, by a worker's pid, lasting at least
#    a second, its error group saying the process was killed (README,
#    Requests in a killed process); nothing else is lost, and the new
#    worker's requests are counted.
# 3. it-uwsgi-router: uWSGI's --http mode, an HTTP router process that
#    speaks the binary uwsgi protocol to the workers. The router is the
#    process that accepts HTTP: every request is recorded once, by its pid,
#    with its status and bytes; the workers' connections are not HTTP and
#    are not followed, so their statements count for the service but for
#    no request (README, uWSGI).
#
# (Threaded workers are not recycled here: a recycled uWSGI 2.0 worker's
# other thread stays in accept() until it serves one more request or
# --worker-reload-mercy ends and the master SIGKILLs the worker, which
# can catch that request in flight: a rare failure of the client's, not
# of the counts.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_UWSGI_APP=$AP_SRCDIR/tests/servers/uwsgi_app.py
# Debian's uWSGI, never another (pip's) first in PATH: its plugins are
# Debian's, built for it.
AP_UWSGI=/usr/bin/uwsgi-core
ap_require curl jq "$AP_UWSGI"
ap_require_pymods sqlite3
ap_require_build
for p in python3 http transformation_chunked; do
	[ -e "/usr/lib/uwsgi/plugins/${p}_plugin.so" ] && continue
	[ "$(id -u)" -eq 0 ] && ap_fail "uWSGI's $p plugin is missing (scripts/test.sh installs uwsgi-core and uwsgi-plugin-python3)"
	ap_skip "uWSGI's $p plugin is missing (run scripts/test.sh as root to install it)"
done

ap_start_collector
# Schema and data, without the preload.
/usr/bin/python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
INSERT INTO authors VALUES (1, "Ann"), (2, "Bo"), (3, "Cy");
INSERT INTO books VALUES (1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e");
""")' "$AP_TMP/app.db" || ap_fail "creating the database failed"
head -c 300000 /dev/urandom >"$AP_TMP/big.bin"
head -c 1000000 /dev/urandom >"$AP_TMP/up.bin"

# start_uwsgi NAME WORKER-LINE ARGS... : uWSGI's master under the preload
# (service $AP_SERVICE) with the application and ARGS; returns once its log
# has a line matching WORKER-LINE (the last process it spawns). Sets
# UW_PID (the master).
start_uwsgi() {
	local name=$1 ready=$2
	shift 2
	ap_bg_preloaded "$name" "$AP_UWSGI" --plugin python3,http,transformation_chunked --master \
		--wsgi-file "$AP_UWSGI_APP" --env "UWSGI_APP_DB=$AP_TMP/app.db" \
		--env "UWSGI_APP_FILE=$AP_TMP/big.bin" --route '^/stream$ chunked:' \
		--need-app --die-on-term --disable-logging "$@"
	UW_PID=$AP_BG_PID
	ap_wait_log "$name" "$ready"
}

# col N FILE : field N of every line of FILE, space-separated.
col() { awk -v n="$1" '{printf "%s ", $n}' "$2"; }

# ---- 1. native HTTP: --http-socket and --http11-socket ---------------------
AP_SERVICE=it-uwsgi
P1=$(ap_free_port)
P2=$(ap_free_port)
start_uwsgi uwsgi '^spawned uWSGI worker 2 ' --processes 2 --threads 2 \
	--http-socket "127.0.0.1:$P1" --http11-socket "127.0.0.1:$P2"
ap_wait_port "$P1"
ap_wait_port "$P2"
workers=$(ap_children "$UW_PID" | tr '\n' ' ')
ap_log "uWSGI master $UW_PID, workers $workers; --http-socket $P1, --http11-socket $P2"
A1=http://127.0.0.1:$P1
A2=http://127.0.0.1:$P2
W='%{http_code} %{num_connects} %{size_upload} %{size_request} %{size_header} %{size_download}\n'

# Keep-alive: ten requests on one connection.
ap_curl_many "$AP_TMP/ka.out" "$A2/api/items" "$A2/api/users/1" "$A2/nope" "$A2/stream" \
	"$A2/api/users/22" "$A2/error" "$A2/file" "$A2/api/items" "$A2/slow?ms=300" "$A2/api/users/333"
ap_assert_eq "keep-alive statuses" "$(col 1 "$AP_TMP/ka.out")" "200 200 404 200 200 500 200 200 200 200 "
ap_assert_eq "keep-alive: the chunked stream's and the file's bodies" \
	"$(sed -n '4p;7p' "$AP_TMP/ka.out" | col 6 /dev/stdin)" "5000 300000 "
# A 1 MB POST and a GET on one connection ("Expect:": no 100-continue wait).
curl -s --max-time 30 -H 'Expect:' -o "$AP_TMP/post.json" -w "$W" --data-binary "@$AP_TMP/up.bin" "$A2/upload" \
	--next -s --max-time 30 -o /dev/null -w "$W" "$A2/api/items" >"$AP_TMP/post-ka.out" ||
	ap_fail "POST /upload then GET on one connection failed"
ap_assert_eq "POST then GET on one connection: statuses, connections" \
	"$(col 1 "$AP_TMP/post-ka.out")/$(col 2 "$AP_TMP/post-ka.out")" "200 200 /1 0 "
ap_assert_eq "the application read the whole body" "$(cat "$AP_TMP/post.json")" '{"received": 1000000}'

# closed OUT URL... : one curl fetching each URL on a connection of its
# own ("Connection: close"; uWSGI's --http-socket closes after each
# response anyway); writes $W's fields per URL to OUT.
closed() {
	local out=$1 args=() u
	shift
	for u in "$@"; do
		args+=(-o /dev/null "$u")
	done
	curl -s --max-time 30 -H 'Connection: close' -w "$W" "${args[@]}" >"$out" ||
		ap_fail "curl failed on $*"
	[ "$(awk '{s += $2} END {print s}' "$out")" = $# ] || ap_fail "curl did not open $# connections for $*"
}

# One-request connections.
closed "$AP_TMP/close.out" "$A1/api/items" "$A1/api/users/4207" "$A1/nope" "$A1/api/items" \
	"$A1/api/users/8414" "$A1/nope" "$A1/api/items" "$A1/api/users/12621" "$A1/nope"
ap_assert_eq "one-request statuses" "$(col 1 "$AP_TMP/close.out")" "200 200 404 200 200 404 200 200 404 "
curl -s --max-time 10 -o /dev/null -w "$W" "$A1/stream/raw" >"$AP_TMP/raw.out"
curl -s --max-time 10 -I -o /dev/null -w "$W" "$A1/api/items" >"$AP_TMP/head.out"
curl -s --max-time 30 -H 'Expect:' -o /dev/null -w "$W" --data-binary "@$AP_TMP/up.bin" "$A1/upload" \
	>"$AP_TMP/post.out"
ap_assert_eq "raw stream, HEAD, POST statuses" \
	"$(cat "$AP_TMP/raw.out" "$AP_TMP/head.out" "$AP_TMP/post.out" | col 1 /dev/stdin)" "200 200 200 "
ap_assert_eq "the raw stream's body, to the connection's end" "$(col 6 "$AP_TMP/raw.out")" "5000 "
for i in 1 2; do
	rc=0
	curl -s --max-time 10 -o /dev/null "$A1/boom" || rc=$?
	ap_assert_eq "GET /boom $i: curl's exit (52: the connection closed with no reply)" "$rc" 52
done
# Two requests pipelined in one write: uWSGI 2.0's keep-alive socket
# answers the first and closes, leaving the second unanswered (aborted).
n=$("$AP_PY" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /api/items HTTP/1.1\r\nHost: x\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: x\r\n\r\n")
d = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    d += b
print(d.count(b"HTTP/1.1 200 OK"), len(d))' "$P2") || ap_fail "the pipelined exchange failed"
ap_assert_eq "pipelined: responses before the close, and their bytes" "$n" "1 92"
# A HEAD on the keep-alive socket, then two GETs: uWSGI sends the HEAD's
# body after its head, bytes no request asked for, before it reads the
# next request. Prints each response's size (the HEAD's: its head alone).
"$AP_PY" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
buf = b""
def more():
    d = s.recv(65536)
    if not d:
        raise EOFError("closed by the server")
    return d
def response(req, head_only):
    global buf
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += more()
    head = buf.index(b"\r\n\r\n") + 4
    n = int([l.split(b":")[1] for l in buf[:head].split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(buf) < head + n:
        buf += more()
    buf = buf[head + n:]
    return head if head_only else head + n
print(response(b"HEAD /api/items HTTP/1.1\r\nHost: x\r\n\r\n", True),
      response(b"GET /api/users/5005 HTTP/1.1\r\nHost: x\r\n\r\n", False),
      response(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", False))' "$P2" >"$AP_TMP/headka.out" ||
	ap_fail "HEAD then GETs on one connection failed"
read -r head_ka users_ka nope_ka <"$AP_TMP/headka.out"

# Statements from threaded workers: 8 requests at once.
pids=""
for n in 1 2 3 4 5 6 7 8; do
	b=$A1
	[ $(( n % 2 )) = 0 ] && b=$A2
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$b/books/$n/sql" >"$AP_TMP/books-$n.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a GET /books/{n}/sql failed"
done
ap_assert_eq "the 8 /books/{n}/sql statuses" "$(cat "$AP_TMP"/books-*.out | tr '\n' ' ')" \
	"200 200 200 200 200 200 200 200 "

ap_expect_counts <<EOF
GET /api/items 7
GET /pipelined 1
GET /api/users/{id} 7
GET /nope 5
GET /stream 1
GET /stream/raw 1
GET /error 1
GET /file 1
GET /slow 1
POST /upload 2
HEAD /api/items 2
GET /boom 2
GET /books/{id}/sql 8
EOF
# n = 1..8: 1+2 + ... + 8+2 = 52 statements; an N+1 where n >= 3 (6).
ap_expect_sql <<EOF
GET /books/{id}/sql 8 52 6
GET /api/items 7 0 0
EOF
ap_assert_eq "error_count of GET /boom (aborted)" "$(ap_field GET /boom error_count)" 2
ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 1
ap_assert_eq "error_count of GET /nope (a 404 is not an error)" "$(ap_field GET /nope error_count)" 0
json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
ap_check_jq "/api/v1/errors: aborted on GET /boom (2) and GET /pipelined (1), HTTP 500 on GET /error (1), nothing else" "$json" \
	'[.errors[] | select(.service == $s) | {route, type, count}] | sort_by(.route) ==
	 [{"route": "/boom", "type": "aborted", "count": 2}, {"route": "/error", "type": "HTTP 500", "count": 1},
	  {"route": "/pipelined", "type": "aborted", "count": 1}]' \
	--arg s "$AP_SERVICE"

all=$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000)
ap_assert_pids_among "$(jq -r '[.requests[].pid] | unique | .[]' <<<"$all")" "$workers" "a uWSGI worker"
ap_assert_jq "the keep-alive 200s and 404s and the 500 are not aborted, nor errors but the 500" \
	'[.requests[] | select(.route != "/boom" and .route != "/pipelined")] |
	 all(.[]; .status > 0 and (.error == (.status >= 500)))' "$all"
hdr() { sed -n "${2}p" "$1" | awk '{print $5}'; }
ap_assert_jq "GET /file (sendfile): bytes_out = head + 300000" \
	"length == 1 and .[0].status == 200 and .[0].bytes_out == $(( $(hdr "$AP_TMP/ka.out" 7) + 300000 ))" \
	"$(ap_requests /file)"
# Chunked: 5 chunks of "3E8\r\n" + 1000 + "\r\n", then "0\r\n\r\n".
ap_assert_jq "GET /stream (chunked): bytes_out = head + 5 x 1007 + 5" \
	"length == 1 and .[0].status == 200 and .[0].bytes_out == $(( $(hdr "$AP_TMP/ka.out" 4) + 5040 ))" \
	"$(ap_requests /stream)"
ap_assert_jq "GET /stream/raw (ends with the connection): complete, bytes_out = head + 5000" \
	"length == 1 and .[0].status == 200 and .[0].error == false and .[0].bytes_out == $(( $(hdr "$AP_TMP/raw.out" 1) + 5000 ))" \
	"$(ap_requests /stream/raw)"
ap_assert_jq "HEAD /api/items, twice: bytes_out = the head alone (uWSGI's body after it is not the response's)" \
	"length == 2 and all(.[]; .status == 200 and .error == false) and
	 ([.[].bytes_out] | sort) == ([$(hdr "$AP_TMP/head.out" 1), $head_ka] | sort)" \
	"$(ap_requests /api/items HEAD)"
ap_assert_jq "the GETs after the HEAD's stray body: their own statuses and bytes_out (every /nope alike)" \
	"([.requests[] | select(.path == \"/api/users/5005\") | [.status, .bytes_out]] == [[200, $users_ka]]) and
	 ([.requests[] | select(.path == \"/nope\")] | length == 5 and all(.[]; .status == 404 and .bytes_out == $nope_ka))" \
	"$all"
ap_assert_jq "POST /upload: bytes_in = request head + 1000000, twice" \
	"length == 2 and all(.[]; .status == 200) and
	 ([.[].bytes_in] | sort) == ([$(( $(sed -n 1p "$AP_TMP/post-ka.out" | awk '{print $4}') + 1000000 )),
	                              $(( $(awk '{print $4}' "$AP_TMP/post.out") + 1000000 ))] | sort)" \
	"$(ap_requests /upload POST)"
ap_assert_jq "GET /slow?ms=300: 300 ms <= duration < 5 s" \
	'length == 1 and .[0].duration_ms >= 300 and .[0].duration_ms < 5000' "$(ap_requests /slow)"
ap_assert_jq "GET /boom: status 0 and an error, both times" \
	'length == 2 and all(.[]; .status == 0 and .error == true and .bytes_out == 0)' "$(ap_requests /boom)"
ap_assert_jq "GET /pipelined: status 0 and an error" \
	'length == 1 and .[0].status == 0 and .[0].error == true and .[0].bytes_out == 0' "$(ap_requests /pipelined)"

# Each /books/{n}/sql request carries exactly its own n+2 statements, in
# order, whatever ran on the other threads meanwhile.
reqs=$(ap_requests '/books/{id}/sql')
ap_assert_jq "each GET /books/{n}/sql: sql_count n+2, N+1 when n >= 3" \
	'length == 8 and all(.[]; (.path | split("/")[2] | tonumber) as $n |
	 .sql_count == $n + 2 and .n_plus_one == ($n >= 3))' "$reqs"
for id in $(jq -r '.[].id' <<<"$reqs"); do
	detail=$(ap_request_detail "$id")
	n=$(jq -r '.path | split("/")[2]' <<<"$detail")
	ap_check_jq "GET /books/$n/sql detail: the count, $n author lookups, SELECT ? AS n" "$detail" \
		'[.queries[].sql] == ["SELECT count(*) FROM books"] + [range($n) | "SELECT name FROM authors WHERE id = ?"] + ["SELECT ? AS n"]' \
		--argjson n "$n"
done
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
ap_check_jq "the master's statement at import: once (never again from a worker it forked)" "$json" \
	'[.queries[] | select(.sql == "SELECT count(*) FROM authors") | .calls] == [1]'
ap_stop_pid "$UW_PID"

# ---- 2. --max-requests and --harakiri ---------------------------------------
AP_SERVICE=it-uwsgi-recycle
P3=$(ap_free_port)
start_uwsgi recycle '^spawned uWSGI worker 2 ' --processes 2 --max-requests 5 \
	--min-worker-lifetime 0 --harakiri 2 --offload-threads 1 --http-socket "127.0.0.1:$P3"
ap_wait_port "$P3"
B=http://127.0.0.1:$P3
urls=()
for i in $(seq 20); do
	urls+=("$B/api/users/$i")
done
closed "$AP_TMP/recycle.out" "${urls[@]}"
ap_assert_eq "20 requests across recycled workers" "$(col 1 "$AP_TMP/recycle.out" | tr ' ' '\n' | sort | uniq -c | awk '{printf "%s:%s", $2, $1}')" "200:20"
# The file through an offload thread (--offload-threads), which sends it
# and closes the connection after the worker has moved on.
closed "$AP_TMP/offload.out" "$B/file" "$B/file"
ap_assert_eq "offloaded files: statuses and bodies" "$(col 1 "$AP_TMP/offload.out")/$(col 6 "$AP_TMP/offload.out")" \
	"200 200 /300000 300000 "
# A request harakiri kills (after 2 to 3 s); meanwhile the other worker
# serves.
rc=0
curl -s --max-time 30 -o /dev/null "$B/slow?ms=20000" >/dev/null 2>&1 &
slow=$!
closed "$AP_TMP/beside.out" "$B/api/items" "$B/api/items" "$B/api/items" "$B/api/items"
wait "$slow" || rc=$?
ap_assert_eq "GET /slow?ms=20000 under --harakiri 2: curl's exit (52: closed unanswered)" "$rc" 52
ap_wait_log recycle 'HARAKIRI ON WORKER' 5
ap_wait_log recycle 'killed by signal 9' 5
closed "$AP_TMP/after.out" "$B/api/users/21" "$B/api/users/22" "$B/api/users/23" "$B/api/users/24" \
	"$B/api/users/25" "$B/api/users/26"
ap_assert_eq "the 10 requests beside and after harakiri" \
	"$(cat "$AP_TMP/beside.out" "$AP_TMP/after.out" | col 1 /dev/stdin)" "200 200 200 200 200 200 200 200 200 200 "
# The killed request is there once, aborted (ap_expect_counts: nothing else).
ap_expect_counts <<EOF
GET /api/users/{id} 26
GET /api/items 4
GET /file 2
GET /slow 1
EOF
ap_assert_jq "GET /slow killed by harakiri: aborted, status 0, at least 1 s, not the master's pid" \
	"length == 1 and .[0].status == 0 and .[0].aborted == true and .[0].duration_ms >= 1000 and
	 .[0].pid != $UW_PID" "$(ap_requests /slow)"
ap_assert_jq "offloaded GET /file: 200, bytes_out = head + 300000, ended on the offload thread (tid != pid)" \
	"length == 2 and all(.[]; .status == 200 and .error == false and .tid != .pid and
	 .bytes_out == $(( $(hdr "$AP_TMP/offload.out" 1) + 300000 )))" "$(ap_requests /file)"
all=$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000)
ap_assert_jq "recycled workers: 33 requests, by 6 or more pids (not the master's), at most 5 each" \
	"(.requests | length) == 33 and ([.requests[].pid] | group_by(.) | length >= 6 and
	 all(.[]; length <= 5) and all(.[]; .[0] != $UW_PID))" "$all"
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
ap_check_jq "the master's statement at import: once, through 7 or more forks" "$json" \
	'[.queries[] | {sql, calls}] == [{"sql": "SELECT count(*) FROM authors", "calls": 1}]'
ap_assert_jq "/api/v1/errors of $AP_SERVICE: the killed GET /slow alone" \
	'[.errors[] | select(.service == "'"$AP_SERVICE"'")] | length == 1 and .[0].route == "/slow" and
	 .[0].type == "aborted" and .[0].count == 1 and (.[0].message | test("killed"))' \
	"$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")"
ap_stop_pid "$UW_PID"

# ---- 3. --http: the HTTP router process ---------------------------------------
AP_SERVICE=it-uwsgi-router
P4=$(ap_free_port)
start_uwsgi router '^spawned uWSGI http 1 \(pid: [0-9]+\)' --processes 2 --threads 2 \
	--http "127.0.0.1:$P4" --http-keepalive
ap_wait_port "$P4"
router=$(sed -n 's/^spawned uWSGI http 1 (pid: \([0-9]*\)).*/\1/p' "$AP_TMP/router.log")
C=http://127.0.0.1:$P4
ap_curl_many "$AP_TMP/router.out" "$C/api/items" "$C/api/users/5" "$C/nope" "$C/books/4/sql" \
	"$C/file" "$C/api/items"
ap_assert_eq "router keep-alive statuses" "$(col 1 "$AP_TMP/router.out")" "200 200 404 200 200 200 "
ap_expect_counts <<EOF
GET /api/items 2
GET /api/users/{id} 1
GET /nope 1
GET /books/{id}/sql 1
GET /file 1
EOF
all=$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000)
ap_assert_jq "--http: every request recorded by the router process ($router)" \
	"(.requests | length) == 6 and all(.requests[]; .pid == $router)" "$all"
ap_assert_jq "--http: GET /file's bytes_out = head + 300000" \
	"length == 1 and .[0].bytes_out == $(( $(hdr "$AP_TMP/router.out" 5) + 300000 ))" "$(ap_requests /file)"
# The 6 statements of /books/4/sql ran in a worker, on a uwsgi-protocol
# connection: the service's, no request's.
ap_assert_jq "--http: GET /books/4/sql carries no statement" \
	'length == 1 and .[0].sql_count == 0' "$(ap_requests '/books/{id}/sql')"
for i in $(seq 50); do
	json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
	[ "$(jq '[.queries[].calls] | add // 0' <<<"$json")" -ge 7 ] && break
	sleep 0.2
done
ap_check_jq "--http: the service's statements: the master's 1, then count 1, author lookup 4, SELECT ? AS n 1" "$json" \
	'[.queries[] | {sql, calls}] | sort_by(.sql) ==
	 [{"sql": "SELECT ? AS n", "calls": 1}, {"sql": "SELECT count(*) FROM authors", "calls": 1},
	  {"sql": "SELECT count(*) FROM books", "calls": 1},
	  {"sql": "SELECT name FROM authors WHERE id = ?", "calls": 4}]'
ap_log "PASS"
