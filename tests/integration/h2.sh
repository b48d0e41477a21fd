#!/bin/bash
# HTTP/2, followed by the preload: a connection whose first bytes are the
# client preface is read as frames, and each client stream with a request
# header block is one request (:method, :path without its query string, the
# final :status; bytes_in and bytes_out the frames of either side on that
# stream, 9-byte headers included; ended by the server's END_STREAM, aborted
# by a RST_STREAM or the connection closing before it). Pushed streams are
# not requests.
#  1. nginx (2 workers, www-data when root) with HTTPS + ALPN h2 (libssl
#     hooks) and prior-knowledge h2c (socket hooks): curl with many requests
#     on one connection (HPACK's dynamic table), a 262,144-byte file (many
#     DATA frames; sendfile on h2c), a 404, a 500; nghttp with 5 streams at
#     once, POSTs with bodies; h2load with 10 streams at once on each of 3
#     connections. Exact counts per route, nothing bogus, and
#     byte-identical responses with and without the preload.
#  2. Node's http2 module (tests/servers/h2_node.js, h2c): 18 streams at
#     once on one session, slow ones, a 500, a push, a stream the server
#     resets, a stream the client cancels (RST_STREAM) while the server
#     waits. Then APIPROF_CAPTURE_QUERY_STRING=1 keeps the query string.
#  3. python3-h2 made to send the edges (tests/servers/h2_raw.py): a header
#     block of HEADERS + CONTINUATION, PADDED and PRIORITY flags, padded
#     DATA, a request reset in the same write, a preface in 21 writes, a
#     connection closed under a waiting stream; exact bytes_in and
#     bytes_out from the frames the client sent and received. Garbage after
#     the preface, seven kinds on 21 connections, while h2load runs beside:
#     nothing of theirs counts, everything else counts exactly, and nginx
#     goes on answering.
#  4. h2c by `Upgrade:` (tests/servers/h2_upgrade.py): only the upgrading
#     HTTP/1.1 request is recorded, with its 101.
#  5. `x-apiprof-profile: 1` (tests/servers/h2_burn.py) profiles its
#     request with sampling off; the same request without it is not.
#  6. A SIGSEGV while a stream is served is reported with that stream's
#     method and route.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 nginx openssl node h2load nghttp
ap_require_build
if ! "$AP_PY" -c 'import h2' 2>/dev/null; then
	[ "$(id -u)" -eq 0 ] && ap_fail "python3-h2 is missing (scripts/test.sh installs it)"
	ap_skip "python3-h2 is missing (run scripts/test.sh as root to install it)"
fi
H2NODE=$AP_SRCDIR/tests/servers/h2_node.js
H2RAW=$AP_SRCDIR/tests/servers/h2_raw.py

ap_make_cert "$AP_TMP/tls"
head -c 20000 /dev/urandom >"$AP_TMP/body.bin"

ap_start_collector

# ---- 1. nginx: HTTP/2 over TLS (ALPN h2) and prior-knowledge h2c ----
# h2_nginx NAME PRELOAD : ap_start_nginx with two more listeners: H2S
# (TLS, http2) and H2C (plain, http2), and header buffers big enough for
# part 3's 40,000-byte header.
AP_NGINX_CERT=$AP_TMP/tls
h2_nginx() {
	H2S=$(ap_free_port)
	H2C=$(ap_free_port)
	AP_NGINX_TLS_CONF="listen 127.0.0.1:$H2S ssl http2; listen 127.0.0.1:$H2C http2; large_client_header_buffers 4 64k;"
	ap_start_nginx "$1" "$2"
	ap_wait_port "$H2C"
}
# traffic OUT : the same requests against whichever nginx runs; responses
# (headers with the date masked, bodies) go to OUT.dump.
traffic() {
	local T=https://127.0.0.1:$H2S C=http://127.0.0.1:$H2C u
	# Eleven requests on one TLS connection: curl's HPACK encoder indexes
	# its headers, so later streams refer to the dynamic table.
	curl -sk --http2 --max-time 30 -w '%{http_code} %{http_version} %{num_connects}\n' \
		-o /dev/null "$T/api/users/1" -o /dev/null "$T/api/users/2" -o /dev/null "$T/api/items" \
		-o /dev/null "$T/api/users/3" -o /dev/null "$T/static/big.bin" -o /dev/null "$T/missing" \
		-o /dev/null "$T/api/users/4" -o /dev/null "$T/error" -o /dev/null "$T/api/users/5" \
		-o /dev/null "$T/api/items" -o /dev/null "$T/api/users/6" >"$1" || ap_fail "curl --http2 over TLS failed"
	# Prior knowledge, no TLS: nghttp sends the five at once on one
	# connection (curl 7.88 fails to reuse a prior-knowledge connection).
	nghttp -n -s "$C/api/users/7" "$C/api/items" "$C/static/big.bin" "$C/missing" "$C/error" >"$1.nghttp" ||
		ap_fail "nghttp h2c failed: $(cat "$1.nghttp")"
	awk '$1 ~ /^[0-9]+$/ && $7 ~ /^\// {print $5, "nghttp", $7}' "$1.nghttp" | sort -k3 >>"$1"
	# POSTs of 20,000 bytes, over TLS and h2c. nginx answers /upload
	# before reading the body, then resets the stream (NO_ERROR): curl
	# 7.88 takes that for a failure when its upload is not done (half the
	# time on h2c), nghttp does not.
	for u in "$T/upload" "$C/upload"; do
		nghttp -n -s -d "$AP_TMP/body.bin" "$u" >"$1.post" || ap_fail "POST to $u failed: $(cat "$1.post")"
		awk '$1 ~ /^[0-9]+$/ && $7 ~ /^\// {print $5, "nghttp", $7}' "$1.post" >>"$1"
	done
	# An HTTP/1.1 request offering `Upgrade: h2c`: nginx does not upgrade,
	# the request stays HTTP/1.1 and counts as one.
	curl -s --http2 --max-time 30 -o /dev/null -w '%{http_code} %{http_version} %{num_connects}\n' \
		"http://127.0.0.1:$AP_PORT/api/users/8" >>"$1" || ap_fail "curl with Upgrade: h2c failed"
	# Responses, headers and bodies, over both.
	for u in /api/items /api/users/7 /missing /error /static/big.bin; do
		curl -sk --http2 --max-time 30 -D - "$T$u"
		curl -s --http2-prior-knowledge --max-time 30 -D - "$C$u"
	done | sed 's/^date: .*/date: -/I' >"$1.dump" || ap_fail "fetching the responses failed"
}

h2_nginx nginx-plain 0
traffic "$AP_TMP/plain.out"
ap_stop_pid "$AP_NGINX_PID"

AP_SERVICE=h2-nginx
h2_nginx nginx 1
workers=$(ap_children "$AP_NGINX_PID" | sort -n | tr '\n' ' ')
ap_log "collector $AP_URL, nginx workers $workers, h2 on $H2S (TLS) and $H2C (h2c)"
traffic "$AP_TMP/pre.out"
ap_assert_eq "statuses, versions and connections" "$(awk '{printf "%s/%s/%s ", $1, $2, $3}' "$AP_TMP/pre.out")" \
	"200/2/1 200/2/0 200/2/0 200/2/0 200/2/0 404/2/0 200/2/0 500/2/0 200/2/0 200/2/0 200/2/0 200/nghttp//api/items 200/nghttp//api/users/7 500/nghttp//error 404/nghttp//missing 200/nghttp//static/big.bin 200/nghttp//upload 200/nghttp//upload 200/1.1/1 "
cmp -s "$AP_TMP/plain.out.dump" "$AP_TMP/pre.out.dump" ||
	ap_fail "HTTP/2 responses differ with the preload: $(diff <(od -c "$AP_TMP/plain.out.dump" | head -50) <(od -c "$AP_TMP/pre.out.dump" | head -50) | head -20)"
grep -q '^HTTP/2 500' "$AP_TMP/pre.out.dump" || ap_fail "no HTTP/2 response in the dump"
ap_log "ok: HTTP/2 responses byte-identical with and without the preload"

# h2load: 3 connections, 10 streams in flight on each; its URIs are taken
# in turn on each connection (150 each). Then h2c: 2 connections, 20
# streams each.
h2load -n 300 -c 3 -m 10 "https://127.0.0.1:$H2S/api/users/11" "https://127.0.0.1:$H2S/api/items" \
	>"$AP_TMP/h2load1.log" 2>&1 || ap_fail "h2load over TLS failed: $(cat "$AP_TMP/h2load1.log")"
h2load -n 120 -c 2 -m 20 "http://127.0.0.1:$H2C/api/users/12" \
	>"$AP_TMP/h2load2.log" 2>&1 || ap_fail "h2load h2c failed: $(cat "$AP_TMP/h2load2.log")"
grep -q '^requests: 300 total, 300 started, 300 done, 300 succeeded' "$AP_TMP/h2load1.log" &&
	grep -q '^status codes: 300 2xx' "$AP_TMP/h2load1.log" &&
	grep -q '^requests: 120 total, 120 started, 120 done, 120 succeeded' "$AP_TMP/h2load2.log" ||
	ap_fail "h2load did not complete every request: $(grep -h -E '^(requests|status codes)' "$AP_TMP"/h2load*.log)"
ap_assert_eq "nginx's access log: h2load's requests of /api/users/11, /api/items, /api/users/12" \
	"$(for u in /api/users/11 /api/items /api/users/12; do
		grep -c "\"GET $u HTTP/2.0\" 200 .*h2load" "$AP_TMP/nginx/access.log"
	done | tr '\n' ' ')" "150 150 120 "

# Counts: traffic's 11 (curl, TLS) + 5 (nghttp, h2c) + 2 POSTs + 1
# (HTTP/1.1) requests and its 10 responses dumped, h2load's 300 + 120.
nginx_counts() {
	ap_expect_counts <<EOF
GET /api/users/{id} $((6 + 1 + 1 + 1 + 1 + 150 + 120 + $1))
GET /api/items $((2 + 1 + 1 + 1 + 150 + $2))
GET /static/big.bin 4
GET /missing 4
GET /error 4
POST /upload $((2 + $3))
EOF
}
nginx_counts 0 0 0
ap_assert_eq "requests in nginx's access log (every one counted once)" "$(wc -l <"$AP_TMP/nginx/access.log")" \
	$((280 + 155 + 4 + 4 + 4 + 2))
ap_assert_jq "the 500s are the only errors, nothing aborted" \
	'[.endpoints[] | select(.service == "h2-nginx")] | (map(select(.route == "/error"))[0].error_count == 4) and (map(.error_count) | add == 4)' \
	"$(ap_api /api/v1/endpoints)"
ap_assert_jq "the file: 200, bytes_out the 262,144-byte body, its DATA frames' headers and its HEADERS" \
	'length == 4 and all(.[]; .status == 200 and .aborted == false and .bytes_out > 262144 + 16 * 9 and .bytes_out < 262800)' \
	"$(ap_requests /static/big.bin)"
ap_assert_jq "404s" 'length == 4 and all(.[]; .status == 404 and .error == false)' "$(ap_requests /missing)"
ap_assert_jq "500s" 'length == 4 and all(.[]; .status == 500 and .error == true)' "$(ap_requests /error)"
ap_assert_jq "POSTs: 200, not aborted, bytes_in at least their HEADERS frame" \
	'length == 2 and all(.[]; .status == 200 and .aborted == false and .bytes_in > 9)' "$(ap_requests /upload POST)"
ap_assert_jq "paths: :path itself (a served path, never a pseudo-header or a frame's bytes)" \
	'map(.path) | unique | all(.[]; test("^/api/users/[0-9]+$"))' "$(ap_requests '/api/users/{id}')"
pids_seen=$(ap_api /api/v1/requests --data-urlencode limit=1000 |
	jq -r '[.requests[] | select(.service == "h2-nginx") | .pid] | unique | .[]' | tr '\n' ' ')
ap_assert_pids_among "$pids_seen" "$workers" "an nginx worker"
ap_log "nginx over HTTP/2 (TLS and h2c, curl and h2load): ok"

# ---- 3a. the edges, against the same nginx's h2c port ----
"$AP_PY" "$H2RAW" "$H2C" edges >"$AP_TMP/edges.out" 2>"$AP_TMP/edges.log" ||
	ap_fail "h2_raw.py edges failed: $(cat "$AP_TMP/edges.log")"
"$AP_PY" "$H2RAW" "$H2C" split >"$AP_TMP/split.out" 2>"$AP_TMP/split.log" ||
	ap_fail "h2_raw.py split failed: $(cat "$AP_TMP/split.log")"
edges=$(jq -s -c . "$AP_TMP/edges.out" "$AP_TMP/split.out")
ap_log "the client's view: $edges"
ap_assert_jq "the client: statuses 200, a header block in HEADERS + CONTINUATION" \
	'(map(select(.reset_by_client | not) | .status) == [200, 200, 200, 200, 200]) and .[0].continuations >= 1 and
	 (.[1].server_frames | test("^HEADERS DATA\\+END_STREAM"))' "$edges"
# Garbage after the preface: seven kinds, three times over, on their own
# connections, while h2load sends 1,000 requests on two others to the same
# worker processes.
"$AP_PY" "$H2RAW" "$H2C" garbage 3 >"$AP_TMP/garbage.out" 2>"$AP_TMP/garbage.log" &
garbage_pid=$!
h2load -n 1000 -c 2 -m 10 "http://127.0.0.1:$H2C/api/items" >"$AP_TMP/h2load3.log" 2>&1 ||
	ap_fail "h2load beside the garbage failed: $(cat "$AP_TMP/h2load3.log")"
wait "$garbage_pid" || ap_fail "h2_raw.py garbage failed: $(cat "$AP_TMP/garbage.log")"
grep -q '^requests: 1000 total, 1000 started, 1000 done, 1000 succeeded' "$AP_TMP/h2load3.log" ||
	ap_fail "h2load beside the garbage: $(grep -E '^requests' "$AP_TMP/h2load3.log")"
ap_assert_eq "garbage connections made" "$(wc -l <"$AP_TMP/garbage.out")" 21
ap_log "garbage, nginx's GOAWAY codes: $(head -7 "$AP_TMP/garbage.out" | jq -c '[.case, .goaway]' | tr '\n' ' ')"
ap_assert_eq "nginx still answers after the garbage" \
	"$(curl -s --http2-prior-knowledge --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H2C/api/items")" 200
nginx_counts 5 1001 1
reqs=$(ap_requests '/api/users/{id}')
want=$(jq -c '.[0] | {bytes_in, bytes_out}' <<<"$edges")
ap_assert_jq "HEADERS (PADDED, PRIORITY) + CONTINUATION: 200, the query string dropped, exact bytes $want" \
	"map(select(.path == \"/api/users/4242\")) | length == 1 and .[0].status == 200 and .[0].aborted == false and
	 ({bytes_in: .[0].bytes_in, bytes_out: .[0].bytes_out} == $want)" "$reqs"
# nginx still answers the request reset in the same write (it runs the
# request before it parses the next frame of the buffer, and logs 200),
# but the reset was read before that answer was written: aborted.
ap_assert_jq "HEADERS + RST_STREAM in one write: aborted, an error" \
	'map(select(.path == "/api/users/4243")) | length == 1 and .[0].aborted == true and .[0].error == true' "$reqs"
ap_assert_jq "a RST_STREAM after the server ended the stream, the next stream, a preface in 21 writes: 200" \
	'map(select(.path == "/api/users/4244" or .path == "/api/users/4245" or .path == "/api/users/4246")) |
	 length == 3 and all(.[]; .status == 200 and .aborted == false)' "$reqs"
ap_assert_jq "the only aborted request of nginx is the reset one" \
	'[.endpoints[] | select(.service == "h2-nginx")] | (map(select(.route == "/api/users/{id}"))[0].error_count == 1) and (map(.error_count) | add == 5)' \
	"$(ap_api /api/v1/endpoints)"
# nginx answers /upload without reading the body, then resets the stream
# with NO_ERROR: after its END_STREAM, so not an abort.
ap_assert_jq "POSTs, one with PRIORITY and padded DATA, answered then reset (NO_ERROR): 200, not aborted" \
	'length == 3 and all(.[]; .status == 200 and .aborted == false)' "$(ap_requests /upload POST)"
ap_log "HTTP/2 edges and garbage against nginx: ok"

# ---- 2. Node's http2 module (h2c) ----
AP_SERVICE=h2-node
NODE_PORT=$(ap_free_port)
ap_bg_preloaded h2node node "$H2NODE" server "$NODE_PORT"
ap_wait_log h2node '^listening on'
node "$H2NODE" client "$NODE_PORT" >"$AP_TMP/nodeclient.out" 2>"$AP_TMP/nodeclient.log" ||
	ap_fail "the Node http2 client failed: $(cat "$AP_TMP/nodeclient.log")"
ap_assert_eq "Node client's view" "$(tr '\n' ' ' <"$AP_TMP/nodeclient.out")" \
	"/echo 200 /error 500 /fast 200 /fast 200 /fast 200 /fast 200 /items/1 200 /items/2 200 /items/3 200 /items/4 200 /items/5 200 /nothing-here 404 /reset?ms=200 reset 2 /slow?ms=3000 cancelled /slow?ms=800 200 /slow?ms=800 200 /slow?ms=800 200 /withpush 200 pushed /pushed/asset "
# node_counts SLOW ECHO : the counts, with SLOW requests of /slow and ECHO
# POSTs of /echo. The pushed /pushed/asset is no request.
node_counts() {
	ap_expect_counts <<EOF
GET /items/{id} 5
GET /fast 4
GET /slow $1
GET /error 1
POST /echo $2
GET /withpush 1
GET /reset 1
GET /nothing-here 1
EOF
}
node_counts 4 1
reqs=$(ap_requests /slow)
ap_assert_jq "slow streams: path /slow, 200 after >= 800 ms (less libuv's 1 ms clock), all in flight at once on one session" \
	'map(select(.aborted | not)) | length == 3 and all(.[]; .path == "/slow" and .status == 200 and .duration_ms >= 798 and .duration_ms < 3000)' "$reqs"
# The resets end their requests when they are read or written, at 250 and
# 200 ms: not when the session closes, after the slow streams (1 s in), so
# sooner than the fastest slow stream, which started with them (a fixed
# bound would not hold on a loaded machine).
smin=$(jq 'map(select(.aborted | not) | .duration_ms) | min' <<<"$reqs")
ap_assert_jq "the stream the client cancelled (RST_STREAM) at 250 ms while the server waited: aborted then, an error" \
	'map(select(.aborted)) | length == 1 and .[0].error == true and .[0].duration_ms >= 100
	 and .[0].duration_ms < '"$smin" "$reqs"
ap_assert_jq "the stream the server reset at 200 ms: aborted then, an error" \
	'length == 1 and .[0].aborted == true and .[0].error == true and .[0].duration_ms >= 190
	 and .[0].duration_ms < '"$smin" "$(ap_requests /reset)"
ap_assert_jq "the 500: an error" 'length == 1 and .[0].status == 500 and .[0].error == true' "$(ap_requests /error)"
ap_assert_jq "the stream that pushed another: 200" 'length == 1 and .[0].status == 200 and .[0].aborted == false' \
	"$(ap_requests /withpush)"
ap_assert_jq "POST /echo of 100,000 bytes: 200, bytes_in its DATA frames and HEADERS" \
	'length == 1 and .[0].status == 200 and .[0].bytes_in >= 100000 + 7 * 9 and .[0].bytes_in < 100400' \
	"$(ap_requests /echo POST)"
ap_assert_jq "three errors: the 500, the cancelled and the reset stream" \
	'[.endpoints[] | select(.service == "h2-node")] | map(.error_count) | add == 3' "$(ap_api /api/v1/endpoints)"

# With APIPROF_CAPTURE_QUERY_STRING=1 a second Node keeps :path whole;
# the route is still the path's.
AP_SERVICE=h2-node-qs
QS_PORT=$(ap_free_port)
ap_bg_preloaded h2nodeqs APIPROF_CAPTURE_QUERY_STRING=1 node "$H2NODE" server "$QS_PORT"
ap_wait_log h2nodeqs '^listening on'
nghttp -n -s "http://127.0.0.1:$QS_PORT/items/7?fields=name&x=1" "http://127.0.0.1:$QS_PORT/fast?a=b" \
	>"$AP_TMP/qs.out" || ap_fail "nghttp to Node failed: $(cat "$AP_TMP/qs.out")"
ap_expect_counts <<EOF
GET /items/{id} 1
GET /fast 1
EOF
ap_assert_jq "APIPROF_CAPTURE_QUERY_STRING=1: the query strings kept" \
	'map(.path) | sort == ["/fast?a=b", "/items/7?fields=name&x=1"]' \
	"$(ap_api /api/v1/requests --data-urlencode limit=100 | jq '[.requests[] | select(.service == "h2-node-qs")]')"
AP_SERVICE=h2-node

# ---- 3b. against Node: exact bytes_in with padded DATA, a connection closed under a stream ----
"$AP_PY" "$H2RAW" "$NODE_PORT" close >"$AP_TMP/close.out" 2>"$AP_TMP/close.log" ||
	ap_fail "h2_raw.py close failed: $(cat "$AP_TMP/close.log")"
ap_log "the client's view: $(tr '\n' ' ' <"$AP_TMP/close.out")"
node_counts 5 2
want=$(head -1 "$AP_TMP/close.out" | jq .bytes_in)
ap_assert_jq "POST /echo, HEADERS and three DATA frames (one padded): 200, bytes_in exactly $want" \
	"map(select(.bytes_in < 100000)) | length == 1 and .[0].status == 200 and .[0].bytes_in == $want" \
	"$(ap_requests /echo POST)"
ap_assert_jq "the stream under the closed connection: aborted" \
	'map(select(.aborted)) | length == 2 and all(.[]; .path == "/slow" and .error == true)' "$(ap_requests /slow)"
ap_log "Node http2: ok"

# ---- 4. h2c by Upgrade: not followed ----
# tests/servers/h2_upgrade.py (Python, threads) answers `Upgrade: h2c`
# with 101, then speaks HTTP/2 on the connection: curl --http2 sends /up/1
# as the upgrading HTTP/1.1 request (recorded, 101), then /up/2 and /up/3
# as HTTP/2 streams on the upgraded connection, which is no longer
# followed (its preface is not its first bytes): not recorded, nor
# mistaken for HTTP/1. Two plain HTTP/1.1 requests beside it count.
AP_SERVICE=h2-upgrade
UP_PORT=$(ap_free_port)
ap_bg_preloaded h2upgrade "$AP_PY" "$AP_SRCDIR/tests/servers/h2_upgrade.py" "$UP_PORT"
ap_wait_log h2upgrade '^listening'
U=http://127.0.0.1:$UP_PORT
curl -s --http2 --max-time 30 -w '%{http_code} %{http_version} %{num_connects}\n' \
	-o /dev/null "$U/up/1" -o /dev/null "$U/up/2" -o /dev/null "$U/up/3" >"$AP_TMP/upgrade.out" ||
	ap_fail "curl --http2 with Upgrade: h2c failed"
ap_curl_many "$AP_TMP/plain1.out" "$U/plain" "$U/plain"
ap_assert_eq "the client's view: one connection, upgraded to HTTP/2" \
	"$(awk '{printf "%s/%s/%s ", $1, $2, $3}' "$AP_TMP/upgrade.out")" "200/2/1 200/2/0 200/2/0 "
ap_expect_counts <<EOF
GET /up/{id} 1
GET /plain 2
EOF
ap_assert_jq "the upgrading request: 101" \
	'length == 1 and .[0].path == "/up/1" and .[0].status == 101 and .[0].aborted == false' "$(ap_requests '/up/{id}')"
ap_log "h2c by Upgrade: the upgrading request only: ok"

# ---- 5. CPU profiles: X-Apiprof-Profile over HTTP/2 ----
# SPEC: a request carrying `X-Apiprof-Profile: 1` is profiled. Over HTTP/2
# the header is a lower-case HPACK field, `x-apiprof-profile`, found by
# the HPACK decoder. A Python h2 server (tests/servers/h2_burn.py) burns
# CPU per request, with APIPROF_PROFILE_EVERY=0 (no sampling): the request
# with the header is profiled, the same one without it is not.
AP_SERVICE=h2-profile
BURN_PORT=$(ap_free_port)
ap_bg_preloaded h2burn env APIPROF_PROFILE_EVERY=0 "$AP_PY" "$AP_SRCDIR/tests/servers/h2_burn.py" "$BURN_PORT"
ap_wait_log h2burn '^listening'
nghttp -n "http://127.0.0.1:$BURN_PORT/burn?ms=150" "http://127.0.0.1:$BURN_PORT/plain?ms=150" ||
	ap_fail "nghttp without the header failed"
nghttp -n -H 'x-apiprof-profile: 1' "http://127.0.0.1:$BURN_PORT/burn?ms=150" ||
	ap_fail "nghttp with the header failed"
ap_expect_counts <<EOF
GET /burn 2
GET /plain 1
EOF
h2_profiled() {
	ap_api /api/v1/profile --data-urlencode service=h2-profile --data-urlencode method=GET \
		--data-urlencode "route=$1" | jq '.requests'
}
for i in $(seq 50); do
	[ "$(h2_profiled /burn)" -ge 1 ] && break
	sleep 0.2
done
sleep 1
ap_assert_eq "x-apiprof-profile: 1 over HTTP/2: /burn requests profiled" "$(h2_profiled /burn)" 1
ap_assert_eq "no header, no sampling: /plain requests profiled" "$(h2_profiled /plain)" 0
ap_log "HTTP/2 profile header: ok"

# ---- 6. a crash during a stream ----
# The crash handler names the request in flight on the crashing thread:
# over HTTP/2 that is a stream, found among the connection's open ones.
# h2_burn.py's /crash sends itself SIGSEGV while serving its stream.
AP_SERVICE=h2-crash
CRASH_PORT=$(ap_free_port)
ap_bg_preloaded h2crash "$AP_PY" "$AP_SRCDIR/tests/servers/h2_burn.py" "$CRASH_PORT"
CRASH_PID=$AP_BG_PID
ap_wait_log h2crash '^listening'
nghttp -n "http://127.0.0.1:$CRASH_PORT/plain" || ap_fail "nghttp /plain failed"
nghttp -n "http://127.0.0.1:$CRASH_PORT/crash" >/dev/null 2>&1
for i in $(seq 150); do
	kill -0 "$CRASH_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$CRASH_PID" 2>/dev/null && ap_fail "the server survived /crash"
for i in $(seq 50); do
	row=$(ap_api /api/v1/errors --data-urlencode service=h2-crash | jq -c '.errors[] | select(.type == "SIGSEGV")')
	[ -n "$row" ] && break
	sleep 0.2
done
ap_assert_eq "the SIGSEGV row names the stream's request" \
	"$(jq -r '"\(.method) \(.route) \(.count)"' <<<"$row")" "GET /crash 1"
ap_log "HTTP/2 crash attribution: ok"
ap_log "PASS"
