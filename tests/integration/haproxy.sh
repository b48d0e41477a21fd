#!/bin/bash
# HAProxy (Debian's haproxy 2.6.12), preloaded as an HTTP reverse proxy on
# 127.0.0.1 (nbthread 2, -db, no chroot, user or daemon lines) in front of
# tests/servers/haproxy_backend.py (Python's http.server, keep-alive, not
# preloaded). HAProxy both accepts its clients' connections and connect()s
# to the backend; only the accepted side is recorded.
#
# What strace -f showed (by hand, once per kind of exchange): two threads;
# a connection is accept4()ed by whichever thread wakes and often handed
# to the other (a byte on its wake-up pipe), which then reads it: accept
# and reads on different threads. Requests are read with recvfrom (15360
# bytes at most), responses written with sendto (MSG_DONTWAIT|MSG_NOSIGNAL,
# MSG_MORE on a head whose body follows), one per buffer of 16 KiB at most;
# HAProxy's own answers in one sendto. Backend connections are socket() +
# a non-blocking connect(), kept idle and shared by both threads
# (http-reuse). A pipeline is read in one recvfrom and answered in turn.
# With option splice-request/splice-response (frontend fe_splice) bodies
# of known length go socket -> pipe -> socket by splice(2), 64 KiB a call,
# after the head and the first buffer went by recvfrom/sendto; chunked
# bodies are never spliced (HAProxy 2.6). In master-worker mode (-W) a
# SIGUSR2 makes the master re-exec itself (same pid) and fork a new
# worker; the old one stops listening and finishes what it has.
#
# Checked (exact counts per route; per request the status, and bytes_in /
# bytes_out as the clients sent and read them):
# 1. keep-alive on both sides (7 on one curl connection: JSON, ids
#    templated /api/users/{id}, the backend's 404 and 500); two pipelines
#    of 4 (GET, HEAD, a chunked body HAProxy relays chunked, HEAD of it;
#    the backend's 500, HAProxy's own 200 (http-request return), a 404,
#    HAProxy's 403 (http-request deny)), byte-identical with and without
#    the preload (an unpreloaded HAProxy, same configuration); 1 MiB + 17
#    bytes out (identical too); three 1 MiB POSTs passed through (plain,
#    after a 100 Continue, chunked).
# 2. what HAProxy answers itself: 200 (return), 403 (deny), 503 (a backend
#    with no server), 504 (timeout server 300 ms, the backend's 1 s route:
#    300 ms to 1 s), 502 (the backend answers bytes that are not HTTP),
#    408 (a head that never ends: timeout http-request 500 ms);
#    /api/v1/errors: the two 500s, the 502, 503 and 504 with HAProxy's
#    messages, nothing for 403 and 404.
# 3. four 400 ms requests at once (all in flight at one instant), and 12
#    connections: requests on both threads, every tid one of HAProxy's.
# 4. splice: GET /sp/big and POST /sp/upload (1 MiB each) spliced (HAProxy's
#    own counters say so), each followed on its connection by a GET that
#    must still be framed: the preload's splice() hook counts the bytes
#    (without it this test fails: checked by hand).
# 5. master-worker mode with a reload: 3 requests before, 3 of 1 s in
#    flight across the SIGUSR2 (finished by the old worker, with their
#    full duration), 8 after (the new worker's): each counted once, under
#    the pid of the worker of its time (service it-haproxy-mw).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require curl jq openssl h2load /usr/sbin/haproxy /usr/bin/python3
ap_require_build

ap_start_collector
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"
BIG_LEN=1048593 # /big's body

BPORT=$(ap_free_port)
ap_bg backend /usr/bin/python3 "$AP_SRCDIR/tests/servers/haproxy_backend.py" "$BPORT"
ap_wait_log backend '^listening on'

# conf PORT SPLICE_PORT TLS_PORT : a configuration: frontend fe on
# PORT; fe_splice on SPLICE_PORT, which splices both ways and strips /sp
# from the path; fe_tls on TLS_PORT, which terminates TLS (ALPN h2 and
# http/1.1) and strips /tls. Routes of fe:
#   /hap/ok          HAProxy's own 200 (http-request return)
#   /hap/deny...     HAProxy's own 403 (http-request deny)
#   /down...         backend be_none, no server: HAProxy's 503
#   /slow/timeout    backend be_short (timeout server 300 ms), which asks
#                    the backend's /slow?ms=1000: HAProxy's 504
#   anything else    backend be: the backend's routes (/garbage: its
#                    answer is not HTTP, HAProxy's 502)
conf() {
	cat <<CONF
global
    nbthread 2
    maxconn 200
    stats socket $AP_TMP/stats-$1.sock level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout http-request 500ms
    timeout http-keep-alive 10s
    http-reuse always
frontend fe
    bind 127.0.0.1:$1
    http-request return status 200 content-type application/json string "{\"ok\": true}\n" if { path /hap/ok }
    http-request deny if { path_beg /hap/deny }
    use_backend be_none if { path_beg /down }
    use_backend be_short if { path /slow/timeout }
    default_backend be
frontend fe_splice
    bind 127.0.0.1:$2
    option splice-request
    option splice-response
    http-request set-path %[path,regsub(^/sp/,/)]
    default_backend be
frontend fe_tls
    bind 127.0.0.1:$3 ssl crt $AP_TMP/tls.pem alpn h2,http/1.1
    http-request set-path %[path,regsub(^/tls/,/)]
    default_backend be
backend be
    server s1 127.0.0.1:$BPORT
backend be_none
backend be_short
    timeout server 300ms
    http-request set-path /slow
    http-request set-query ms=1000
    server s1 127.0.0.1:$BPORT
CONF
}

ap_make_cert "$AP_TMP/tls"
cat "$AP_TMP/tls.crt" "$AP_TMP/tls.key" >"$AP_TMP/tls.pem"
PORT=$(ap_free_port)
SPORT=$(ap_free_port)
TPORT=$(ap_free_port)
conf "$PORT" "$SPORT" "$TPORT" >"$AP_TMP/haproxy.cfg"
ap_bg_preloaded haproxy /usr/sbin/haproxy -f "$AP_TMP/haproxy.cfg" -db
HAP_PID=$AP_BG_PID
PLAIN_PORT=$(ap_free_port)
conf "$PLAIN_PORT" "$(ap_free_port)" "$(ap_free_port)" >"$AP_TMP/plain.cfg"
ap_bg plain /usr/sbin/haproxy -f "$AP_TMP/plain.cfg" -db
ap_wait_port "$PORT"
ap_wait_port "$SPORT"
ap_wait_port "$TPORT"
ap_wait_port "$PLAIN_PORT"
B=http://127.0.0.1:$PORT
S=http://127.0.0.1:$SPORT
ap_log "collector $AP_URL, backend $BPORT, haproxy $HAP_PID on $PORT (splicing: $SPORT), unpreloaded on $PLAIN_PORT"

reqlen() { printf '%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }

# ---- 1. keep-alive, a pipeline, HEAD, 404, 500, chunked, a large body ----
ap_curl_many "$AP_TMP/ka.out" "$B/api/items" "$B/api/users/1" "$B/api/users/22" "$B/nope" "$B/boom" \
	"$B/api/users/333" "$B/api/items"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" "200 200 200 404 500 200 200 "
# Two pipelines of 4 (the preload follows 4 unanswered requests at most:
# README, What it cannot see), each also sent to the unpreloaded HAProxy:
# the same bytes back. HAProxy's 403 closes the connection: last.
PIPE1=("GET /api/users/7" "HEAD /api/items" "GET /chunked" "HEAD /chunked")
PIPE2=("GET /boom" "GET /hap/ok" "GET /nope" "GET /hap/deny")
for n in 1 2; do
	declare -n pipe=PIPE$n
	ap_raw "$PORT" --pipeline --dump "$AP_TMP/pipe$n.raw" "${pipe[@]}" >"$AP_TMP/pipe$n.out"
	ap_raw "$PLAIN_PORT" --pipeline --dump "$AP_TMP/pipe$n-plain.raw" "${pipe[@]}" >/dev/null
	cmp -s "$AP_TMP/pipe$n.raw" "$AP_TMP/pipe$n-plain.raw" ||
		ap_fail "pipeline $n: the responses differ with and without the preload"
	ap_log "ok: pipeline $n: the responses are byte-identical with and without the preload"
done
ap_assert_eq "pipelined statuses" "$(cat "$AP_TMP/pipe1.out" "$AP_TMP/pipe2.out" | awk '{printf "%s ", $1}')" \
	"200 200 200 200 500 200 404 403 "
grep -qi '^transfer-encoding: chunked' "$AP_TMP/pipe1.raw" || ap_fail "GET /chunked was not relayed chunked"
curl -s --max-time 20 -o "$AP_TMP/big.body" -w '%{http_code} %{size_request} %{size_header} %{size_download}\n' \
	"$B/big" >"$AP_TMP/big.out" || ap_fail "GET /big failed"
curl -s --max-time 20 -o "$AP_TMP/big-plain.body" "http://127.0.0.1:$PLAIN_PORT/big" || ap_fail "GET /big (no preload) failed"
cmp -s "$AP_TMP/big.body" "$AP_TMP/big-plain.body" || ap_fail "GET /big's body differs with and without the preload"
ap_assert_eq "GET /big: status and size" "$(cut -d' ' -f1,4 "$AP_TMP/big.out")" "200 $BIG_LEN"
for h in 'Expect:' 'Expect: 100-continue' 'Transfer-Encoding: chunked'; do
	curl -s --max-time 20 -o "$AP_TMP/up.body" \
		-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
		-H "$h" --data-binary @"$AP_TMP/upload.bin" "$B/upload" >>"$AP_TMP/up.out" ||
		ap_fail "POST /upload ($h) failed"
	ap_assert_eq "POST /upload ($h): the backend read the whole body" "$(cat "$AP_TMP/up.body")" "got 1048576"
done

# ---- 2. what HAProxy answers itself ----
for p in /hap/ok /hap/deny /down /slow/timeout /garbage; do
	curl -s --max-time 20 -o /dev/null -w "$p %{http_code} %{size_request} %{size_header} %{size_download}\n" \
		"$B$p" >>"$AP_TMP/own.out" || ap_fail "GET $p failed"
done
ap_assert_eq "HAProxy's own answers" "$(awk '{printf "%s %s, ", $1, $2}' "$AP_TMP/own.out")" \
	"/hap/ok 200, /hap/deny 403, /down 503, /slow/timeout 504, /garbage 502, "
# A head that never ends: HAProxy's 408 after timeout http-request (500
# ms), then a close. Its request line is complete: a request (README).
ap_raw "$PORT" 'GET /hap/partial HTTP/1.1\r\nHost: 127.0.0.1\r\n' >"$AP_TMP/partial.out"
ap_assert_eq "a head that never ends: HAProxy's status" "$(cut -d' ' -f1 "$AP_TMP/partial.out")" 408

# ---- 3. slow requests at once; connections on both threads ----
pids=""
for i in 1 2 3 4; do
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$B/slow?ms=400" >"$AP_TMP/slow$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a GET /slow failed"
done
ap_assert_eq "slow statuses" "$(cat "$AP_TMP"/slow?.out | tr '\n' ' ')" "200 200 200 200 "
for i in $(seq 12); do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$B/api/users/10$i"
done >"$AP_TMP/conns.out"
ap_assert_eq "12 connections: statuses" "$(cat "$AP_TMP/conns.out")" "$(printf '200 %.0s' $(seq 12))"

# ---- 4. splicing: fe_splice relays bodies by splice(2) both ways ----
# GET /sp/big then GET /sp/api/items on one connection; POST /sp/upload then
# GET /sp/api/items on another: the requests after a spliced body must
# still be framed.
W='%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download} %{num_connects}\n'
curl -s --max-time 20 -w "$W" -o "$AP_TMP/spbig.body" "$S/sp/big" -o /dev/null "$S/sp/api/items" \
	>"$AP_TMP/spbig.out" || ap_fail "GET /sp/big failed"
cmp -s "$AP_TMP/spbig.body" "$AP_TMP/big-plain.body" || ap_fail "GET /sp/big's body differs"
curl -s --max-time 20 -w "$W" -o "$AP_TMP/spup.body" -H 'Expect:' --data-binary @"$AP_TMP/upload.bin" \
	"$S/sp/upload" --next -w "$W" -o /dev/null "$S/sp/api/items" >"$AP_TMP/spup.out" ||
	ap_fail "POST /sp/upload failed"
ap_assert_eq "POST /sp/upload: the backend read the whole body" "$(cat "$AP_TMP/spup.body")" "got 1048576"
ap_assert_eq "spliced exchanges: statuses, connections" \
	"$(awk '{printf "%s %s, ", $1, $6}' "$AP_TMP/spbig.out" "$AP_TMP/spup.out")" "200 1, 200 0, 200 1, 200 0, "
# HAProxy's own count of the bytes it spliced on fe_splice (the client's
# side): a whole body each way, so the test covers splice().
"$AP_PY" - "$AP_TMP/stats-$PORT.sock" >"$AP_TMP/spliced.out" <<'PY' || ap_fail "show stat on the stats socket failed"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat typed\n")
d = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    d += b
st = {}
for l in d.decode().splitlines():
    f = l.split(":")
    k = f[0].split(".")
    if len(f) >= 4 and len(k) >= 5 and k[0] == "F":
        st.setdefault(k[1], {})[k[4]] = f[-1]
for px in st.values():
    if px.get("pxname") == "fe_splice":
        print(px["h1_spliced_bytes_in"], px["h1_spliced_bytes_out"])
PY
read -r sp_in sp_out <"$AP_TMP/spliced.out"
[ "${sp_in:-0}" -ge 1000000 ] && [ "${sp_out:-0}" -ge 1000000 ] ||
	ap_fail "HAProxy spliced ${sp_in:-?} bytes in and ${sp_out:-?} out on fe_splice: not a body each way"
ap_log "ok: HAProxy spliced $sp_in bytes in and $sp_out out on fe_splice"

# ---- 4b. TLS: fe_tls terminates it over a BIO of HAProxy's own ----
# OpenSSL reads and writes the socket through HAProxy's BIO callbacks,
# inside SSL_read and SSL_write (SSL_get_rfd() -1): the preload binds each
# SSL object to the TLS socket its thread read last (nothing was recorded
# before). 8 connections one after another, 2 requests each over
# HTTP/1.1, then 40 requests over h2 on 4 connections. (HAProxy shuts each
# connection down before closing it, as Apache does: apache.sh part 4 is
# the test that a new TLS connection on a socket unbinds the old object;
# by hand, HAProxy lost every third connection without that.)
T=https://127.0.0.1:$TPORT
for c in $(seq 8); do
	curl -sk --http1.1 --max-time 20 -w '%{url_effective} %{http_code} %{size_request} %{size_header} %{size_download}\n' \
		-o /dev/null "$T/tls/api/users/$c" -o /dev/null "$T/tls/api/items" >>"$AP_TMP/tls.out" ||
		ap_fail "GET over TLS (connection $c) failed"
done
ap_assert_eq "GETs over TLS: statuses" "$(awk '{printf "%s ", $2}' "$AP_TMP/tls.out")" "$(printf '200 %.0s' $(seq 16))"
h2load -n 40 -c 4 -m 4 "$T/tls/api/items" >"$AP_TMP/h2load-tls.log" 2>&1 ||
	ap_fail "h2load over TLS failed: $(cat "$AP_TMP/h2load-tls.log")"
grep -q '^requests: 40 total, 40 started, 40 done, 40 succeeded' "$AP_TMP/h2load-tls.log" ||
	ap_fail "h2load over TLS: $(grep -E '^(requests|status)' "$AP_TMP/h2load-tls.log")"

# ---- 5. master-worker mode (-W): a reload with requests in flight ----
MPORT=$(ap_free_port)
cat >"$AP_TMP/mw.cfg" <<CONF
global
    nbthread 2
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:$MPORT
    default_backend be
backend be
    server s1 127.0.0.1:$BPORT
CONF
AP_SERVICE=it-haproxy-mw ap_bg_preloaded mw /usr/sbin/haproxy -W -db -f "$AP_TMP/mw.cfg"
MW_PID=$AP_BG_PID
ap_wait_port "$MPORT"
# workers N : until the master has forked N workers since the start; prints
# the pid of the last.
workers() {
	local i
	for i in $(seq 300); do
		[ "$(grep -c 'New worker ([0-9]*) forked' "$AP_TMP/mw.log")" -ge "$1" ] && break
		sleep 0.1
	done
	grep -o 'New worker ([0-9]*) forked' "$AP_TMP/mw.log" | sed -n "${1}s/[^0-9]//gp"
}
W0=$(workers 1)
M=http://127.0.0.1:$MPORT
for i in 1 2 3; do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$M/api/users/$i"
done >"$AP_TMP/mw-before.out"
pids=""
for i in 1 2 3; do
	curl -s --max-time 20 -o /dev/null -w '%{http_code} %{size_request} %{size_header} %{size_download}\n' "$M/slow?ms=1000" >"$AP_TMP/mw-slow$i.out" &
	pids="$pids $!"
done
for i in $(seq 300); do
	[ "$(grep -c '^slow 1000$' "$AP_TMP/backend.log")" -ge 3 ] && break
	sleep 0.05
done
kill -USR2 "$MW_PID"
W1=$(workers 2)
ap_wait_log mw "Proxy fe stopped"
for i in $(seq 8); do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$M/api/items"
done >"$AP_TMP/mw-after.out"
for p in $pids; do
	wait "$p" || ap_fail "a GET /slow across the reload failed"
done
ap_assert_eq "across the reload: statuses before, during, after" \
	"$(cat "$AP_TMP/mw-before.out"; cut -d' ' -f1 "$AP_TMP"/mw-slow?.out | tr '\n' ' '; cat "$AP_TMP/mw-after.out")" \
	"$(printf '200 %.0s' $(seq 14))"
ap_wait_log mw "Former worker \\($W0\\) exited"
ap_assert_eq "the reload re-executed the master (same pid)" "$(grep -c "^\[NOTICE\] *($MW_PID) : Reloading HAProxy" "$AP_TMP/mw.log")" 1
ap_log "master $MW_PID: worker $W0, then $W1 after the reload"

# ---- what the collector reports ----
ap_expect_counts <<E
GET /api/items 2
GET /api/users/{id} 16
GET /nope 2
GET /boom 2
HEAD /api/items 1
GET /chunked 1
HEAD /chunked 1
GET /hap/ok 2
GET /hap/deny 2
GET /big 1
POST /upload 3
GET /down 1
GET /slow/timeout 1
GET /garbage 1
GET /hap/partial 1
GET /slow 4
GET /sp/big 1
GET /sp/api/items 2
POST /sp/upload 1
GET /tls/api/users/{id} 8
GET /tls/api/items 48
E
# TLS over HTTP/1.1: each request's path, status and plaintext bytes as
# curl counted them
want=$(awk '{ sub("^https://[^/]*", "", $1); printf "[\"%s\",%s,%s,%s]\n", $1, $2, $3, $4 + $5 }' \
	"$AP_TMP/tls.out" | jq -s -c 'map(tojson) | sort | map(fromjson)')
got=$(ap_api /api/v1/requests --data-urlencode limit=1000 |
	jq -c --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s and (.path | startswith("/tls/")))] |
	       sort_by(.ts) | .[:16] | map([.path, .status, .bytes_in, .bytes_out] | tojson) | sort | map(fromjson)')
ap_assert_eq "TLS over HTTP/1.1: each request's path, status, bytes in and out" "$got" "$want"

# rq PATH [METHOD] : this service's stored requests of PATH (exact), oldest
# first (the two threads' records may reach the collector out of order).
rq() {
	ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode "q=$1" \
		--data-urlencode limit=1000 |
		jq --arg s "$AP_SERVICE" --arg p "$1" --arg m "${2:-}" \
			'[.requests[] | select(.service == $s and .path == $p and ($m == "" or .method == $m))] | sort_by([.ts, .id])'
}
# expect_reqs PATH METHOD N STATUS BYTES_IN BYTES_OUT : N stored requests of
# PATH and METHOD, each with that status and those bytes, none aborted.
expect_reqs() {
	ap_assert_jq "$2 $1: $3 requests, status $4, bytes in $5, out $6" \
		"length == $3 and all(.[]; .status == $4 and .bytes_in == $5 and .bytes_out == $6 and (.aborted | not))" \
		"$(rq "$1" "$2")"
}
# the keep-alive connection: curl's sizes, line by line
n=0
for p in /api/items /api/users/1 /api/users/22 /nope /boom /api/users/333; do
	n=$(( n + 1 ))
	read -r code _ _ sreq shdr sdl <<<"$(sed -n "${n}p" "$AP_TMP/ka.out")"
	c=1
	case $p in
	/api/items) c=2 ;;
	/boom | /nope) continue ;; # also in a pipeline: below
	esac
	expect_reqs "$p" GET "$c" "$code" "$sreq" $(( shdr + sdl ))
done
# the pipelines: ap_raw's requests and the raw responses it read
n=0
for r in "${PIPE1[@]}" "${PIPE2[@]}"; do
	n=$(( n + 1 ))
	read -r code bytes <<<"$(cat "$AP_TMP/pipe1.out" "$AP_TMP/pipe2.out" | sed -n "${n}p")"
	case $r in
	"GET /boom" | "GET /nope") ;;
	"GET /hap/ok" | "GET /hap/deny") ;;
	*) expect_reqs "${r#* }" "${r%% *}" 1 "$code" "$(reqlen "$r")" "$bytes" ;;
	esac
done
# requests on two connections each: the keep-alive one (or HAProxy's own,
# by curl) and the pipelined one
read -r _ _ _ sreq shdr sdl <<<"$(sed -n 4p "$AP_TMP/ka.out")"
ap_assert_jq "GET /nope (keep-alive, then pipelined): 404s, the bytes each client counted" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == [[404, $sreq, $(( shdr + sdl ))], [404, $(reqlen "GET /nope"), $(sed -n 3p "$AP_TMP/pipe2.out" | cut -d' ' -f2)]]" \
	"$(rq /nope GET)"
read -r _ _ _ sreq shdr sdl <<<"$(sed -n 5p "$AP_TMP/ka.out")"
ap_assert_jq "GET /boom (keep-alive, then pipelined): the backend's 500s, the bytes each client counted" \
	"[.[] | [.status, .bytes_in, .bytes_out, .error]] == [[500, $sreq, $(( shdr + sdl )), true], [500, $(reqlen "GET /boom"), $(sed -n 1p "$AP_TMP/pipe2.out" | cut -d' ' -f2), true]]" \
	"$(rq /boom GET)"
for p in /hap/ok /hap/deny; do
	read -r _ code sreq shdr sdl <<<"$(grep "^$p " "$AP_TMP/own.out")"
	n=2
	[ "$p" = /hap/deny ] && n=4
	ap_assert_jq "GET $p (pipelined, then alone): HAProxy's $code, the bytes each client counted" \
		"[.[] | [.status, .bytes_in, .bytes_out, .error]] == [[$code, $(reqlen "GET $p"), $(sed -n "${n}p" "$AP_TMP/pipe2.out" | cut -d' ' -f2), false], [$code, $sreq, $(( shdr + sdl )), false]]" \
		"$(rq "$p" GET)"
done
# HAProxy's own errors, by curl; the large body; the uploads
for p in /down /slow/timeout /garbage; do
	read -r _ code sreq shdr sdl <<<"$(grep "^$p " "$AP_TMP/own.out")"
	expect_reqs "$p" GET 1 "$code" "$sreq" $(( shdr + sdl ))
done
read -r code bytes <"$AP_TMP/partial.out"
expect_reqs /hap/partial GET 1 "$code" "$(printf 'GET /hap/partial HTTP/1.1\r\nHost: 127.0.0.1\r\n' | wc -c)" "$bytes"
ap_assert_jq "GET /hap/partial: the 408 after timeout http-request (500 ms)" \
	'.[0].duration_ms >= 450 and .[0].duration_ms < 5000' "$(rq /hap/partial GET)"
ap_assert_jq "GET /slow/timeout: the 504 after timeout server (300 ms), not the backend's 1 s" \
	'.[0].duration_ms >= 300 and .[0].duration_ms < 1000' "$(rq /slow/timeout GET)"
read -r code sreq shdr sdl <"$AP_TMP/big.out"
expect_reqs /big GET 1 "$code" "$sreq" $(( shdr + sdl ))
ap_assert_jq "POST /upload: bytes in and out as curl sent and received them, oldest first" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == $(awk '{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2 + $3, $4 + $5} END {print "]"}' "$AP_TMP/up.out")" \
	"$(rq /upload POST)"
# spliced bodies, and the requests after them on their connections
sp=$(printf '%s\n' "GET /sp/big" "GET /sp/api/items" "POST /sp/upload" "GET /sp/api/items" |
	paste -d' ' - <(cat "$AP_TMP/spbig.out" "$AP_TMP/spup.out") |
	jq -R -s -c '[split("\n")[] | select(length > 0) | split(" ") |
		[.[0], .[1], (.[2] | tonumber), ((.[3] | tonumber) + (.[4] | tonumber)), ((.[5] | tonumber) + (.[6] | tonumber))]]')
ap_assert_jq "spliced: GET /sp/big, POST /sp/upload and the GET /sp/api/items after each, as curl counted them" \
	"[.[] | [.method, .path, .status, .bytes_in, .bytes_out]] == $sp" \
	"$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode q=/sp/ --data-urlencode limit=100 |
		jq '[.requests[] | select(.path | startswith("/sp/"))] | sort_by([.ts, .id])')"
ap_assert_jq "GET /slow: 400 ms to 5 s each, the four in flight at once" \
	'length == 4 and all(.[]; .status == 200 and .duration_ms >= 400 and .duration_ms < 5000) and
	 ([.[] | .ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)] as $start |
	  [range(length) as $i | $start[$i] + .[$i].duration_ms] as $stop | ($start | max) < ($stop | min))' "$(rq /slow GET)"
# errors: the backend's 500s and HAProxy's 502, 503, 504, with their
# messages (the start of the body, digits scrubbed); 403 and 404 are none
ap_check_jq "/api/v1/errors: the 500s, HAProxy's 502, 503 and 504, nothing else" \
	"$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")" \
	'[.errors[] | {route, type, count, message}] | sort_by(.route) ==
	 [{"route": "/boom", "type": "HTTP 500", "count": 2, "message": "backend failure"},
	  {"route": "/down", "type": "HTTP 503", "count": 1,
	   "message": "<html><body><h1>? Service Unavailable</h1> No server is available to handle this request. </body></html>"},
	  {"route": "/garbage", "type": "HTTP 502", "count": 1,
	   "message": "<html><body><h1>? Bad Gateway</h1> The server returned an invalid or incomplete response. </body></html>"},
	  {"route": "/slow/timeout", "type": "HTTP 504", "count": 1,
	   "message": "<html><body><h1>? Gateway Time-out</h1> The server didn'"'"'t respond in time. </body></html>"}]'
# nbthread 2: every request on one of HAProxy's two threads, both used
json=$(ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000)
ap_assert_pids_among "$(jq -r '[.requests[].pid] | unique | .[]' <<<"$json")" "$HAP_PID" "HAProxy's process"
ap_assert_pids_among "$(jq -r '[.requests[].tid] | unique | .[]' <<<"$json")" "$(ls /proc/"$HAP_PID"/task | tr '\n' ' ')" \
	"one of HAProxy's threads"
ap_assert_eq "threads that served requests" "$(jq '[.requests[].tid] | unique | length' <<<"$json")" 2

# master-worker: each request once, by the worker of its time
AP_SERVICE=it-haproxy-mw
ap_expect_counts <<E
GET /api/users/{id} 3
GET /slow 3
GET /api/items 8
E
ap_assert_pids_among "$(rq /slow GET | jq -r '.[].pid')" "$W0" "the worker before the reload"
ap_assert_pids_among "$(ap_requests '/api/users/{id}' | jq -r '.[].pid')" "$W0" "the worker before the reload"
ap_assert_pids_among "$(rq /api/items GET | jq -r '.[].pid')" "$W1" "the worker after the reload"
ap_assert_jq "GET /slow across the reload: 1000 ms to 5 s each, not aborted, the bytes curl read" \
	"length == 3 and all(.[]; .status == 200 and .duration_ms >= 1000 and .duration_ms < 5000 and (.aborted | not) and
	 .bytes_in == $(awk '{print $2}' "$AP_TMP/mw-slow1.out") and .bytes_out == $(awk '{print $3 + $4}' "$AP_TMP/mw-slow1.out"))" \
	"$(rq /slow GET)"
ap_log "PASS"
