#!/bin/bash
# Varnish Cache 7.1 (Debian's varnish) under the preload, a caching reverse
# proxy in front of the plain Python backend tests/servers/varnish_backend.py
# (not preloaded: it prints each request it serves, so the test knows which
# requests reached it). varnishd -F: a manager process that compiles the
# VCL (cc, forked and exec'ed) and forks the cache child, which serves; as
# root, the manager runs as user varnish and the child as vcache (-j unix,
# varnishd's default then), the temp dir and the collector's socket (0666)
# open to them; as another user, varnishd keeps that user (-j none, its
# default then; checked by hand with runuser -u nobody).
#
# strace -f showed: the child's acceptor threads accept(2) (not accept4);
# worker threads poll, then read(2) up to 32 KiB; every response goes out
# with writev(2), the head as one iovec per token, no sendfile: a hit in
# one writev (head and the stored body), a miss streamed, the client's
# worker writev()ing each piece as the fetch thread reads it from the
# backend; a passed POST's body is read from the client's socket by the
# fetch thread, not the thread that read its head. Idle keep-alive
# connections go to the waiter (epoll), and their next request is read by
# whichever worker takes them. Backend connections are connect()ed (non-
# blocking), written with writev and read on the fetch thread: never
# requests. return(pipe) relays with read(2)/write(2) of 8 KiB both ways
# on the client's worker (the pipelined bytes Varnish had read first, too),
# then shutdown(SHUT_WR) of the client's socket and close.
#
# Checked: exact counts per route (templated: /api/users/{id}), statuses,
# bytes_in and bytes_out of every request as the clients sent and read
# them, the backend's view of the same traffic (misses, passes and pipes
# reach it, hits do not, and are recorded all the same), errors:
# 1. cache: misses then hits on one keep-alive connection, return(pass)
#    (a rewritten URL), a no-store object fetched twice, a chunked object
#    (streamed chunked on its miss, from the cache with a length), a
#    1.5 MiB object (streamed miss, one-writev hit, bodies compared), HEAD
#    (a hit, and a miss Varnish fetches with a GET), a 304 Varnish makes
#    from the cache for If-None-Match,
#    an ESI page (assembled from two objects, sent chunked), 4 pipelined
#    requests, 4 requests at once for one slow uncached object
#    (Varnish's waiting list: one fetch, the others parked and resumed on
#    another thread), each lasting the backend's time.
# 2. synthetic responses made in VCL (403 from vcl_recv, 404 with a body
#    from vcl_synth), the guru meditation 503 when the backend is down,
#    the backend's 500 passed through (both counted as errors, the 403 and
#    404 not), a 300 ms request's duration, 1 MiB POSTs passed (plain and
#    after Varnish's own 100 Continue).
# 3. return(pipe): the request is recorded with the backend's response
#    that Varnish relays (status and bytes); with Connection: close kept
#    (the builtin vcl_pipe) the connection ends after it; with it unset,
#    the client's further requests through the tunnel (two pipelined
#    behind the piped one; on another connection, one sent after its
#    answer) are recorded as requests (the client made them on an
#    accepted socket), answered by the backend;
#    a WebSocket upgrade piped: its 101 is recorded and the tunnel's bytes,
#    an HTTP request among them, are not (README, Framing).
# 4. the cache child killed (SIGKILL) during a 8 s passed request: the
#    manager starts a new child (no VCL compile); the request, announced
#    in flight, is recorded aborted by the old child's pid (README,
#    Requests in a killed process); the new child's requests by its pid.
# 5. the other listeners of the same varnishd, served by the new child: a
#    Unix socket (-a PATH,mode=666), a PROXY protocol port (a v1 header
#    before the request: not counted in bytes_in), and HTTP/2 with prior
#    knowledge (-p feature=+http2): five streams at once on one nghttp
#    connection, each recorded with its status (each stream runs on a
#    worker thread of its own). Not here: h2c by Upgrade (only the 101 is
#    recorded, README, What it cannot see; checked by hand with nghttp -u).
# 6. responses byte-identical through a second, unpreloaded varnishd (Date,
#    Age and X-Varnish masked: they differ from one instance to the other):
#    misses and hits, synthetic, passed, posted and piped (not the chunked
#    object: how Varnish cuts a streamed body into chunks varies with the
#    fetch's pace).
#
# Every request is counted once: the backend connections never (the count
# of each route is exact, and so is the service's total). Checked by hand
# too, not here: a request Varnish resets for a 70 KB header (recorded
# aborted), 400s for a bad header, 501 for an unknown method, a request
# line split across reads by the waiter (its duration from the first
# byte), a pipelined request behind a Connection: close (aborted), a slow
# client of the 1.5 MiB object, h2load's 400 requests over 4 HTTP/2
# connections (400 counted): all as README says. About 15 s on an idle
# machine, 22 s beside other tests.
. "$(dirname "$0")/lib.sh"

ap_require curl jq varnishd cc
ap_require_build

ap_start_collector
head -c 1572864 /dev/urandom >"$AP_TMP/big.bin"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"

BPORT=$(ap_free_port)
ap_bg backend "$AP_PY" "$AP_SRCDIR/tests/servers/varnish_backend.py" "$BPORT" "$AP_TMP/big.bin"
ap_wait_log backend '^listening on'
# A port nothing listens on: the "down" backend.
DPORT=$(ap_free_port)

cat >"$AP_TMP/default.vcl" <<VCL
vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "$BPORT"; }
backend down { .host = "127.0.0.1"; .port = "$DPORT"; .connect_timeout = 2s; }
sub vcl_recv {
	if (req.url ~ "^/admin") { return (synth(403, "Forbidden")); }
	if (req.url ~ "^/gone") { return (synth(404, "Gone")); }
	if (req.url ~ "^/down") { set req.backend_hint = down; }
	if (req.url ~ "^/pass/") {
		set req.url = regsub(req.url, "^/pass", "");
		return (pass);
	}
	if (req.url ~ "^/(pipe|tunnel)/" || req.http.Upgrade ~ "(?i)websocket") { return (pipe); }
}
# The URL alone is the cache key: curl's Host has the port, ap_raw's not.
sub vcl_hash {
	hash_data(req.url);
	return (lookup);
}
sub vcl_pipe {
	# The builtin vcl_pipe sends Connection: close; /tunnel/ keeps the
	# backend connection, so the client's next requests go through it.
	if (req.url ~ "^/tunnel/") { unset bereq.http.Connection; }
	if (req.http.Upgrade) {
		set bereq.http.Upgrade = req.http.Upgrade;
		set bereq.http.Connection = req.http.Connection;
	}
}
sub vcl_backend_response {
	if (bereq.url == "/esi") { set beresp.do_esi = true; }
}
sub vcl_synth {
	if (resp.status == 404) {
		set resp.http.Content-Type = "text/plain";
		set resp.body = "no such page: " + req.url + {"
"};
		return (deliver);
	}
}
VCL

# start_varnish NAME PRELOAD(1|0) : varnishd -F in $AP_TMP/NAME (its -n
# directory) on a free port, HTTP/2 on (prior knowledge, h2c), with two
# more listeners: the PROXY protocol on another port, and the Unix socket
# $AP_TMP/NAME.sock; sets VPORT and PROXY_PORT. Returns at once: wait_varnish
# waits for its child (both instances compile their VCL meanwhile).
start_varnish() {
	# The jail is varnishd's default: as root, -j unix (the manager runs
	# as varnish, the child as vcache: Debian's users); as anyone else,
	# -j none (the user kept).
	VPORT=$(ap_free_port)
	PROXY_PORT=$(ap_free_port)
	local cmd=(varnishd -F -n "$AP_TMP/$1" -a "127.0.0.1:$VPORT" -a "127.0.0.1:$PROXY_PORT,PROXY"
		-a "$AP_TMP/$1.sock,mode=666" -f "$AP_TMP/default.vcl" -s malloc,64m -p thread_pool_min=10
		-p feature=+http2)
	if [ "$2" = 1 ]; then
		ap_bg_preloaded "$1" "${cmd[@]}"
	else
		ap_bg "$1" "${cmd[@]}"
	fi
}
# wait_varnish NAME : until NAME's cache child runs; prints its pid.
wait_varnish() {
	ap_wait_log "$1" 'said Child starts' 60
	sed -n 's/^Debug: Child (\([0-9]*\)) Started.*/\1/p' "$AP_TMP/$1.log" | tail -n 1
}
start_varnish varnish 1
PORT=$VPORT MGR=$AP_BG_PID PPORT=$PROXY_PORT
start_varnish plain 0
PLAIN_PORT=$VPORT
CHILD=$(wait_varnish varnish)
wait_varnish plain >/dev/null
ap_log "varnishd (preloaded) on $PORT, manager $MGR, child $CHILD; unpreloaded on $PLAIN_PORT; backend on $BPORT"
U=http://127.0.0.1:$PORT
W='%{http_code} %{num_connects} %{size_upload} %{size_request} %{size_header} %{size_download}\n'

# col N FILE : field N of every line of FILE, space-separated.
col() { awk -v n="$1" '{printf "%s ", $n}' "$2"; }
# reqlen "METHOD TARGET" : the bytes of ap_raw's request for it.
reqlen() { printf '%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }
# seen "METHOD PATH" : how many requests the backend served for it.
seen() { grep -cxF "$1" "$AP_TMP/backend.log"; }

# expect_all : reads lines "METHOD ROUTE N" on stdin and asserts that this
# service's endpoints are exactly those, with those counts (as
# ap_expect_counts does, with one jq run per poll): waits (up to 30 s)
# until the service's total is reached, settles 1.5 s, compares.
expect_all() {
	local want total json got i
	want=$(jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ") | {method: .[0], route: .[1], count: (.[2] | tonumber)}) | sort' )
	total=$(jq 'map(.count) | add' <<<"$want")
	for i in $(seq 150); do
		json=$(ap_api /api/v1/endpoints)
		[ "$(jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add // 0' <<<"$json")" -ge "$total" ] && break
		sleep 0.2
	done
	sleep 1.5
	json=$(ap_api /api/v1/endpoints)
	printf '%s\n' "$json" >"$AP_TMP/endpoints.json"
	got=$(jq -c --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | {method, route, count}] |
		group_by([.method, .route]) | map({method: .[0].method, route: .[0].route, count: (map(.count) | add)}) |
		sort' <<<"$json")
	[ "$got" = "$want" ] || ap_fail "endpoint counts differ from the traffic sent:
$(diff <(jq -c '.[]' <<<"$want") <(jq -c '.[]' <<<"$got"))"
	ap_log "ok: endpoint counts: exactly the $total requests sent, route by route ($(jq length <<<"$want") routes)"
}

# ---- 1. the cache ------------------------------------------------------------
ap_curl_many "$AP_TMP/ka.out" "$U/api/items" "$U/api/items" "$U/api/users/1" "$U/api/users/1" \
	"$U/api/users/22" "$U/pass/api/items" "$U/nocache" "$U/nocache" "$U/api/items"
ap_assert_eq "keep-alive statuses" "$(col 1 "$AP_TMP/ka.out")" "200 200 200 200 200 200 200 200 200 "
# The chunked object (its 5 chunks 100 ms apart): its miss is streamed
# chunked; its hit has a length once the fetch has ended (or is streamed
# chunked too while it has not: a race on a loaded machine). ap_raw
# counts the raw bytes, chunk framing included.
ap_raw "$PORT" --dump "$AP_TMP/chunked.raw" "GET /chunked" "GET /chunked" >"$AP_TMP/chunked.out"
ap_assert_eq "GET /chunked twice: statuses" "$(col 1 "$AP_TMP/chunked.out")" "200 200 "
sed -n '1,/^\r$/p' "$AP_TMP/chunked.raw" | grep -q 'Transfer-Encoding: chunked' ||
	ap_fail "GET /chunked: the miss was not sent chunked"
# The big object: a miss, then a hit, on one connection.
curl -s --max-time 30 -o "$AP_TMP/big1" -w "$W" "$U/big" --next -s --max-time 30 -o "$AP_TMP/big2" -w "$W" \
	"$U/big" >"$AP_TMP/big.out" || ap_fail "GET /big failed"
cmp -s "$AP_TMP/big1" "$AP_TMP/big.bin" && cmp -s "$AP_TMP/big2" "$AP_TMP/big.bin" ||
	ap_fail "GET /big: a body differs from the backend's"
ap_assert_eq "GET /big twice: statuses, connections" "$(col 1 "$AP_TMP/big.out")/$(col 2 "$AP_TMP/big.out")" \
	"200 200 /1 0 "
# HEAD: a hit and a miss (Varnish fetches it with a GET); a 304 from the
# cache for a matching If-None-Match.
curl -s --max-time 10 -I -o /dev/null -w "$W" "$U/api/items" --next -s --max-time 10 -I -o /dev/null \
	-w "$W" "$U/api/users/7" --next -s --max-time 10 -o /dev/null -w "$W" -H 'If-None-Match: "items-1"' \
	"$U/api/items" >"$AP_TMP/cond.out" || ap_fail "HEAD and If-None-Match failed"
ap_assert_eq "HEAD, HEAD, If-None-Match: statuses" "$(col 1 "$AP_TMP/cond.out")" "200 200 304 "
# Four pipelined in one write (hits, a HEAD, a synthetic 404).
# ESI: a page including /api/users/8, assembled by Varnish (a miss of
# both, then a hit of both), sent chunked: one request each.
ap_raw "$PORT" --dump "$AP_TMP/esi.raw" "GET /esi" "GET /esi" >"$AP_TMP/esi.out"
ap_assert_eq "GET /esi twice: statuses, the include in both, both chunked" \
	"$(col 1 "$AP_TMP/esi.out")$(grep -c '{"id": 8}' "$AP_TMP/esi.raw") $(grep -c 'Transfer-Encoding: chunked' "$AP_TMP/esi.raw")" \
	"200 200 2 2"
ap_raw "$PORT" --pipeline "GET /api/items" "GET /api/users/22" "HEAD /api/users/1" "GET /gone/x" \
	>"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(col 1 "$AP_TMP/pipe.out")" "200 200 200 404 "
# Four at once for one uncached slow object: one fetch, three waiting.
pids=""
for i in 1 2 3 4; do
	curl -s --max-time 20 -o /dev/null -w "$W" "$U/slowcache?ms=400" >"$AP_TMP/wait$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a GET /slowcache failed"
done
ap_assert_eq "waiting list statuses" "$(cat "$AP_TMP"/wait?.out | col 1 /dev/stdin)" "200 200 200 200 "

# ---- 2. synthetic responses, errors, a slow request, uploads -----------------
# On one keep-alive connection: Varnish keeps it open after its own 403,
# 404 and 503 too.
ap_curl_many "$AP_TMP/err.out" "$U/admin/users" "$U/gone/page" "$U/down/x" "$U/error" "$U/slow?ms=300"
ap_assert_eq "403, 404, 503, 500, slow" "$(col 1 "$AP_TMP/err.out")" "403 404 503 500 200 "
curl -s --max-time 10 "$U/down/y" | grep -q 'Guru Meditation' || ap_fail "no guru meditation for the down backend"
for h in 'Expect:' 'Expect: 100-continue'; do
	curl -s --max-time 30 -o "$AP_TMP/up.body" -w "$W" -H "$h" --data-binary @"$AP_TMP/upload.bin" \
		"$U/upload" >>"$AP_TMP/up.out" || ap_fail "POST /upload ($h) failed"
	ap_assert_eq "POST /upload ($h): the backend read the whole body" "$(cat "$AP_TMP/up.body")" \
		'{"received": 1048576}'
done

# ---- 3. return(pipe) -----------------------------------------------------------
ap_raw "$PORT" "GET /pipe/a" >"$AP_TMP/pipe-a.out"
ap_raw "$PORT" "GET /pipe/b" >"$AP_TMP/pipe-b.out"
# Through a kept-alive pipe: the piped request and two pipelined behind
# it, relayed to the backend as Varnish read them.
ap_raw "$PORT" --pipeline "GET /tunnel/1" "GET /api/items" "GET /api/users/5" >"$AP_TMP/tunnel.out"
# The same, the second request sent once the first was answered.
ap_raw "$PORT" "GET /tunnel/2" "GET /api/users/6" >"$AP_TMP/tunnel2.out"
ap_assert_eq "pipes: statuses" "$(cat "$AP_TMP/pipe-a.out" "$AP_TMP/pipe-b.out" "$AP_TMP/tunnel.out" \
	"$AP_TMP/tunnel2.out" | col 1 /dev/stdin)" "200 200 200 200 200 200 200 "
# A WebSocket upgrade, piped: 101, then a request-like message echoed.
"$AP_PY" - "$PORT" >"$AP_TMP/ws.out" <<'PY' || ap_fail "the WebSocket tunnel failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit("closed before the 101")
    buf += d
head = buf[:buf.index(b"\r\n\r\n") + 4]
msg = b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n" * 3
s.sendall(msg)
got = buf[len(head):]
while len(got) < len(msg):
    d = s.recv(65536)
    if not d:
        sys.exit("closed before the echo")
    got += d
s.close()
print(head.split(b" ")[1].decode(), len(head), "echoed" if got == msg else "garbled")
PY
read -r ws_status ws_head ws_echo <"$AP_TMP/ws.out"
ap_assert_eq "WebSocket through the pipe: status, echo" "$ws_status $ws_echo" "101 echoed"

# ---- 4. the cache child killed: the manager starts another -------------------
# A request in flight for a second or more when the child is killed
# (SIGKILL) is recorded aborted by the old child's pid (README, Requests in
# a killed process); the new child's requests by its own.
curl -s --max-time 20 -o /dev/null "$U/pass/slow?ms=8000" >/dev/null 2>&1 &
slowcurl=$!
for i in $(seq 60); do
	[ "$(ap_api /api/v1/status | jq '.ingest.requests_announced')" -ge 1 ] && break
	[ "$i" = 60 ] && ap_fail "GET /pass/slow was not announced in flight within 6 s"
	sleep 0.1
done
kill -KILL "$CHILD"
rc=0
wait "$slowcurl" || rc=$?
ap_assert_eq "GET /pass/slow in the killed child: curl's exit (52: closed unanswered)" "$rc" 52
for i in $(seq 300); do
	[ "$(grep -c 'said Child starts' "$AP_TMP/varnish.log")" -ge 2 ] && break
	sleep 0.1
done
CHILD2=$(wait_varnish varnish)
[ "$CHILD2" != "$CHILD" ] || ap_fail "the manager started no new child"
curl -s --max-time 10 -o /dev/null -w "$W" "$U/api/users/90" >"$AP_TMP/child2.out" ||
	ap_fail "GET /api/users/90 from the new child failed"
ap_assert_eq "the new child ($CHILD2) answers" "$(col 1 "$AP_TMP/child2.out")" "200 "
# The collector records the killed request once it has found the child
# gone (two probes, 0.5 s or more apart): meanwhile, more traffic.

# ---- 5. the other listeners, and HTTP/2 (served by the new child) ------------
curl -s --max-time 10 --unix-socket "$AP_TMP/varnish.sock" -w "$W" -o /dev/null http://localhost/api/users/55 \
	-o /dev/null http://localhost/admin/unix >"$AP_TMP/unix.out" || ap_fail "requests on the Unix socket failed"
ap_assert_eq "the Unix socket listener: statuses" "$(col 1 "$AP_TMP/unix.out")" "200 403 "
"$AP_PY" - "$PPORT" >"$AP_TMP/proxy.out" <<'PY' || ap_fail "the PROXY protocol request failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = b"GET /api/users/56 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\n" + req)
d = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    d += b
print(d.split(b" ")[1].decode(), len(req), len(d))
PY
read -r px_status px_in px_out <"$AP_TMP/proxy.out"
ap_assert_eq "the PROXY listener: status" "$px_status" 200
# HTTP/2 with prior knowledge: five streams at once on one connection.
nghttp -n -s "$U/api/users/57" "$U/big" "$U/gone/h2" "$U/error" "$U/slow?ms=300" >"$AP_TMP/h2.out" 2>&1 ||
	ap_fail "nghttp failed: $(cat "$AP_TMP/h2.out")"
ap_assert_eq "HTTP/2 streams: statuses by path" \
	"$(awk '$NF ~ /^\// {print $NF, $(NF-2)}' "$AP_TMP/h2.out" | sort | tr '\n' ' ')" \
	"/api/users/57 200 /big 200 /error 500 /gone/h2 404 /slow?ms=300 200 "

for i in $(seq 150); do
	[ "$(ap_count GET /pass/slow)" -ge 1 ] && break
	sleep 0.2
done
expect_all <<EOF
GET /api/items 6
HEAD /api/items 1
GET /api/users/{id} 10
HEAD /api/users/{id} 2
GET /pass/api/items 1
GET /nocache 2
GET /chunked 2
GET /big 3
GET /gone/x 1
GET /slowcache 4
GET /admin/users 1
GET /gone/page 1
GET /down/x 1
GET /down/y 1
GET /error 2
GET /slow 2
POST /upload 2
GET /pipe/a 1
GET /pipe/b 1
GET /tunnel/{id} 2
GET /ws 1
GET /esi 2
GET /admin/unix 1
GET /gone/h2 1
GET /pass/slow 1
EOF

# What reached the backend: misses, passes, pipes; never a hit.
ap_assert_eq "backend: GET /api/items (a miss, the pass, one piped behind /tunnel/1)" "$(seen "GET /api/items")" 3
ap_assert_eq "backend: GET /api/users/1, /api/users/22, /api/users/7 (a HEAD's fetch), /api/users/5 and 6 (piped)" \
	"$(seen "GET /api/users/1") $(seen "GET /api/users/22") $(seen "GET /api/users/7") $(seen "GET /api/users/5") $(seen "GET /api/users/6")" \
	"1 1 1 1 1"
ap_assert_eq "backend: no-store twice, chunked once, big once a child (the new one's cache is empty), slowcache once" \
	"$(seen "GET /nocache") $(seen "GET /chunked") $(seen "GET /big") $(seen "GET /slowcache?ms=400")" "2 1 2 1"
ap_assert_eq "backend: no HEAD (Varnish fetches with GET)" "$(grep -c '^HEAD ' "$AP_TMP/backend.log")" 0
ap_assert_eq "backend: the ESI page and its include, once each" "$(seen "GET /esi") $(seen "GET /api/users/8")" "1 1"

all=$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000)
printf '%s\n' "$all" >"$AP_TMP/requests.json"
ap_assert_jq "52 requests: by the first cache child ($CHILD) before the kill, by the new one ($CHILD2) after, none aborted but /pass/slow" \
	"(.requests | length) == 52 and
	 ([.requests[] | select(.path != \"/pass/slow\") | .aborted] | all(. == false)) and
	 ([.requests[] | select(.pid == $CHILD2) | .path] | sort ==
	  [\"/admin/unix\", \"/api/users/55\", \"/api/users/56\", \"/api/users/57\", \"/api/users/90\", \"/big\",
	   \"/error\", \"/gone/h2\", \"/slow\"]) and
	 ([.requests[] | select(.pid != $CHILD2) | .pid] | unique == [$CHILD])" "$all"
ap_assert_jq "GET /pass/slow, in flight when the child was killed: aborted, status 0, by $CHILD, 1 s or more" \
	"[.requests[] | select(.path == \"/pass/slow\") | [.pid, .status, .aborted, .error, .duration_ms >= 1000]] ==
	 [[$CHILD, 0, true, true, true]]" "$all"
ap_assert_jq "the child's worker threads served them: several tids" \
	'[.requests[].tid] | unique | length >= 2' "$all"

# rq PATH [METHOD] : this service's requests of PATH (exact), oldest first.
rq() {
	jq --arg p "$1" --arg m "${2:-}" \
		'[.requests[] | select(.path == $p and ($m == "" or .method == $m))] | sort_by(.ts, .id)' <<<"$all"
}
# expect_curl PATH METHOD OUT LINES : PATH's first requests of METHOD
# (oldest first) have the statuses and bytes that curl's lines LINES
# ("3,5p") of OUT show; check_curl checks them all in one jq run.
: >"$AP_TMP/want.txt"
expect_curl() {
	sed -n "$4" "$3" | awk -v p="$1" -v m="$2" '{print p, m, $1, $3 + $4, $5 + $6}' >>"$AP_TMP/want.txt"
}
check_curl() {
	local want
	want=$(jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ")) |
		group_by(.[0] + " " + .[1]) | map({path: .[0][0], method: .[0][1],
		rows: map(.[2:] | map(tonumber))})' "$AP_TMP/want.txt")
	ap_assert_jq "status, bytes_in, bytes_out as curl saw them: $(jq -r 'map(.method + " " + .path) | join(", ")' <<<"$want")" \
		"$want"' as $want | . as $all | $want | all(.[]; . as $w |
		 ([$all.requests[] | select(.path == $w.path and .method == $w.method)] | sort_by(.ts, .id) |
		  map([.status, .bytes_in, .bytes_out]) | .[:($w.rows | length)]) == $w.rows)' "$all"
}
expect_curl /api/users/1 GET "$AP_TMP/ka.out" '3,4p'
expect_curl /api/users/22 GET "$AP_TMP/ka.out" '5p'
expect_curl /pass/api/items GET "$AP_TMP/ka.out" '6p'
expect_curl /nocache GET "$AP_TMP/ka.out" '7,8p'
ap_assert_jq "GET /esi: the assembled page, miss and hit, bytes as read" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == [$(awk -v n="$(reqlen "GET /esi")" \
	'{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : ""), $1, n, $2}' "$AP_TMP/esi.out")]" "$(rq /esi GET)"
ap_assert_jq "GET /chunked: the chunked miss and the hit, bytes as read" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == [$(awk -v n="$(reqlen "GET /chunked")" \
	'{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : ""), $1, n, $2}' "$AP_TMP/chunked.out")]" "$(rq /chunked GET)"
expect_curl /big GET "$AP_TMP/big.out" '1,2p'
expect_curl /api/users/7 HEAD "$AP_TMP/cond.out" '2p'
expect_curl /admin/users GET "$AP_TMP/err.out" '1p'
expect_curl /gone/page GET "$AP_TMP/err.out" '2p'
expect_curl /down/x GET "$AP_TMP/err.out" '3p'
expect_curl /error GET "$AP_TMP/err.out" '4p'
expect_curl /slow GET "$AP_TMP/err.out" '5p'
expect_curl /upload POST "$AP_TMP/up.out" '1,2p'
# /api/items: the keep-alive 3 (miss, hit, hit), the 304, the pipelined one.
ap_assert_jq "GET /api/items: the miss and the hits, 200 and 304, bytes as the clients saw them" \
	"[.[] | [.status, .bytes_in, .bytes_out]] | sort == ([
	 $(sed -n '1p;2p;9p' "$AP_TMP/ka.out" | awk '{printf "[%s, %s, %s], ", $1, $4, $5 + $6}')
	 $(sed -n 3p "$AP_TMP/cond.out" | awk '{printf "[%s, %s, %s], ", $1, $4, $5 + $6}')
	 [200, $(reqlen "GET /api/items"), $(sed -n 1p "$AP_TMP/pipe.out" | cut -d' ' -f2)],
	 [200, $(reqlen "GET /api/items"), $(sed -n 2p "$AP_TMP/tunnel.out" | cut -d' ' -f2)]] | sort)" \
	"$(rq /api/items GET)"
ap_assert_jq "HEAD /api/items (a hit): bytes_out = the head" \
	"[.[] | [.status, .bytes_out]] == [[200, $(sed -n 1p "$AP_TMP/cond.out" | awk '{print $5}')]]" \
	"$(rq /api/items HEAD)"
ap_assert_jq "the pipelined GET /api/users/22, HEAD /api/users/1, GET /gone/x: bytes as read" \
	"([.requests[] | select(.path == \"/gone/x\") | [.status, .bytes_in, .bytes_out]] ==
	  [[404, $(reqlen "GET /gone/x"), $(sed -n 4p "$AP_TMP/pipe.out" | cut -d' ' -f2)]]) and
	 ([.requests[] | select(.path == \"/api/users/1\" and .method == \"HEAD\") | [.status, .bytes_out]] ==
	  [[200, $(sed -n 3p "$AP_TMP/pipe.out" | cut -d' ' -f2)]])" "$all"
# (The four curls start up to a few hundred ms apart on a loaded machine.)
ap_assert_jq "GET /slowcache: four in flight at once, each ending 400 ms or more after the first began" \
	'length == 4 and all(.[]; .status == 200 and .duration_ms < 5000) and
	 ([.[] | .ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)]) as $start |
	 [range(length) as $i | $start[$i] + .[$i].duration_ms] as $stop |
	 ($start | max) < ($stop | min) and ($stop | min) - ($start | min) >= 400' "$(rq /slowcache GET)"
ap_assert_jq "GET /slow?ms=300, HTTP/1.1 and HTTP/2: 300 ms <= duration < 5 s" \
	'length == 2 and all(.[]; .duration_ms >= 300 and .duration_ms < 5000)' "$(rq /slow GET)"
ap_assert_jq "errors: the 503s, the 500s and the killed request, not the 403s and 404s" \
	'[.requests[] | select(.error) | .path] | sort == ["/down/x", "/down/y", "/error", "/error", "/pass/slow"]' "$all"
ap_assert_jq "/api/v1/errors: HTTP 503 on /down/x and /down/y, HTTP 500 on /error (2), aborted /pass/slow" \
	'[.errors[] | select(.service == "'"$AP_SERVICE"'") | {route, type, count}] | sort_by(.route) ==
	 [{"route": "/down/x", "type": "HTTP 503", "count": 1}, {"route": "/down/y", "type": "HTTP 503", "count": 1},
	  {"route": "/error", "type": "HTTP 500", "count": 2}, {"route": "/pass/slow", "type": "aborted", "count": 1}]' \
	"$(ap_api /api/v1/errors)"
# The pipes: the backend's response, relayed, as the client read it.
ap_assert_jq "return(pipe): GET /pipe/a, /pipe/b, /tunnel/1 and the two behind it, /tunnel/2 and the one after it, as read" \
	"([.requests[] | select(.path == \"/pipe/a\" or .path == \"/pipe/b\" or .path == \"/tunnel/1\" or
	   .path == \"/api/users/5\" or .path == \"/tunnel/2\" or .path == \"/api/users/6\") |
	   [.path, .status, .bytes_in, .bytes_out]] | sort) == ([
	 [\"/tunnel/2\", 200, $(reqlen "GET /tunnel/2"), $(sed -n 1p "$AP_TMP/tunnel2.out" | cut -d' ' -f2)],
	 [\"/api/users/6\", 200, $(reqlen "GET /api/users/6"), $(sed -n 2p "$AP_TMP/tunnel2.out" | cut -d' ' -f2)],
	 [\"/pipe/a\", 200, $(reqlen "GET /pipe/a"), $(cut -d' ' -f2 "$AP_TMP/pipe-a.out")],
	 [\"/pipe/b\", 200, $(reqlen "GET /pipe/b"), $(cut -d' ' -f2 "$AP_TMP/pipe-b.out")],
	 [\"/tunnel/1\", 200, $(reqlen "GET /tunnel/1"), $(sed -n 1p "$AP_TMP/tunnel.out" | cut -d' ' -f2)],
	 [\"/api/users/5\", 200, $(reqlen "GET /api/users/5"), $(sed -n 3p "$AP_TMP/tunnel.out" | cut -d' ' -f2)]] | sort)" \
	"$all"
ap_assert_jq "GET /ws: 101, bytes_out = the head; the tunnel's request-like bytes are no request" \
	"([.requests[] | select(.path == \"/ws\") | [.status, .bytes_out]] == [[101, $ws_head]]) and
	 ([.requests[] | select(.path == \"/inside\")] | length == 0)" "$all"
# The other listeners and HTTP/2.
expect_curl /api/users/55 GET "$AP_TMP/unix.out" '1p'
expect_curl /admin/unix GET "$AP_TMP/unix.out" '2p'
check_curl
ap_assert_jq "GET /api/users/56 through the PROXY listener: bytes_in without the PROXY header" \
	"[.requests[] | select(.path == \"/api/users/56\") | [.status, .bytes_in, .bytes_out]] == [[200, $px_in, $px_out]]" \
	"$all"
# (The HTTP/2 /big, /error and /slow are the latest of their paths.)
ap_assert_jq "HTTP/2: the five streams, their statuses, the big body's bytes, the slow one's 300 ms" \
	'[.requests[] | select(.path == "/api/users/57" or .path == "/gone/h2")] +
	 ([.requests[] | select(.path == "/big" or .path == "/error" or .path == "/slow")] |
	  group_by(.path) | map(max_by(.ts))) |
	 (map([.path, .status]) | sort) == [["/api/users/57", 200], ["/big", 200], ["/error", 500], ["/gone/h2", 404],
	  ["/slow", 200]] and all(.[]; .path != "/big" or .bytes_out > 1572864) and
	 all(.[]; .path != "/slow" or .duration_ms >= 300)' "$all"
ap_assert_jq "/api/v1/status: the new child, 9 requests; no connection untracked" \
	"([.processes[] | select(.pid == $CHILD2) | [.connected, .requests]] == [[true, 9]]) and
	 all(.processes[] | select(.service == \"$AP_SERVICE\"); .untracked_connections == 0)" "$(ap_api /api/v1/status)"

# ---- 6. byte-identical through an unpreloaded varnishd -------------------------
# Fresh URLs (a query string is another object): cold in both caches, so
# a miss, then a hit, in each. (Not the chunked object: how Varnish cuts
# a streamed body into chunks depends on how the fetch went.)
RAW=("GET /api/items?cmp" "HEAD /api/items?cmp" "GET /api/users/31" "GET /api/users/31" "GET /gone/z" "GET /nocache" "GET /error" "GET /pass/api/users/4"
	'POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' "GET /pipe/c")
mask() { sed -E 's/^(Date|Age|X-Varnish): [^\r]*/\1: <masked>/' "$1"; }
ap_raw "$PORT" --dump "$AP_TMP/pre.raw" "${RAW[@]}" >/dev/null
ap_raw "$PLAIN_PORT" --dump "$AP_TMP/plain.raw" "${RAW[@]}" >/dev/null
cmp -s <(mask "$AP_TMP/pre.raw") <(mask "$AP_TMP/plain.raw") ||
	ap_fail "responses differ with the preload: $(diff <(mask "$AP_TMP/plain.raw" | cat -v) <(mask "$AP_TMP/pre.raw" | cat -v) | head -20)"
ap_log "ok: ${#RAW[@]} responses ($(wc -c <"$AP_TMP/pre.raw") bytes) byte-identical with and without the preload"
ap_log "PASS"
