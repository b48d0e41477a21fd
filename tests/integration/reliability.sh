#!/bin/bash
# The preload must never hurt its host:
#  (a) preloaded servers (the threaded C server and nginx) under load with NO
#      collector running fail no request; once a collector starts on their
#      socket, new requests reach it within seconds, without a restart;
#  (b) responses are byte-identical with and without the preload (whole raw
#      responses, headers included, only the Date value masked), for the
#      threaded server, nginx and Node;
#  (c) APIPROF_DISABLE=1 sends nothing;
#  (d) APIPROF_PORTS: only connections accepted on a listed port are followed.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 nginx node wrk
ap_require_build "$AP_THREADED"

head -c 100000 /dev/urandom >"$AP_TMP/file.bin"

# wrk_ok NAME URL : 3 s of load on 16 connections; fails on any socket error
# or non-2xx response.
wrk_ok() {
	wrk -t2 -c16 -d3s "$2" >"$AP_TMP/wrk-$1.log" 2>&1 || ap_fail "wrk failed on $2"
	cat "$AP_TMP/wrk-$1.log"
	grep -q 'Requests/sec' "$AP_TMP/wrk-$1.log" || ap_fail "wrk printed no result for $2"
	if grep -Eq 'Socket errors|Non-2xx' "$AP_TMP/wrk-$1.log"; then
		ap_fail "failed requests under load without a collector ($1)"
	fi
	local n
	n=$(awk '/requests in/ {print $1}' "$AP_TMP/wrk-$1.log")
	[ "${n:-0}" -gt 100 ] || ap_fail "wrk completed only ${n:-0} requests against $1"
	ap_log "ok: $n requests to $1 without a collector, none failed"
}

# ---- (a) no collector, then a collector ----------------------------------
[ ! -e "$AP_SOCK" ] || ap_fail "socket exists before the collector started"
AP_SERVICE=rel-threaded ap_start_threaded threaded --file "$AP_TMP/file.bin"
T_PORT=$AP_PORT
AP_SERVICE=rel-nginx ap_start_nginx nginx 1
N_PORT=$AP_PORT

wrk_ok threaded "http://127.0.0.1:$T_PORT/hello"
wrk_ok nginx "http://127.0.0.1:$N_PORT/api/items"

ap_start_collector
# SPEC section 3: delivery resumes within 1 s of a collector becoming
# available (the preload reconnects with a backoff; what happens in that
# second may be dropped). Requests after it must all arrive.
sleep 1.2
t0=$(date +%s)
ap_curl_many "$AP_TMP/after-t.out" $(for i in $(seq 20); do echo "http://127.0.0.1:$T_PORT/users/$i"; done)
ap_curl_many "$AP_TMP/after-n.out" $(for i in $(seq 20); do echo "http://127.0.0.1:$N_PORT/api/users/$i"; done)
AP_SERVICE=rel-threaded
c=$(ap_wait_count '/users/{id}' 20 GET)
ap_assert_eq "threaded server: requests after the collector started" "$c" 20
AP_SERVICE=rel-nginx
c=$(ap_wait_count '/api/users/{id}' 20 GET)
ap_assert_eq "nginx: requests after the collector started" "$c" 20
ap_log "delivery resumed within $(( $(date +%s) - t0 ))s (settling included)"

# ---- (b) byte-identical responses ----------------------------------------
# compare NAME PLAIN_PORT PRELOADED_PORT REQUEST... : the same exchanges, one
# connection each (keep-alive, then pipelined), against both servers.
compare() {
	local name=$1 plain=$2 pre=$3
	shift 3
	ap_raw "$plain" --dump "$AP_TMP/$name-plain.raw" "$@" >/dev/null
	ap_raw "$pre" --dump "$AP_TMP/$name-preload.raw" "$@" >/dev/null
	ap_raw "$plain" --pipeline --dump "$AP_TMP/$name-plain-pipe.raw" "$@" >/dev/null
	ap_raw "$pre" --pipeline --dump "$AP_TMP/$name-preload-pipe.raw" "$@" >/dev/null
	[ -s "$AP_TMP/$name-plain.raw" ] || ap_fail "$name: empty response dump"
	grep -aq 'Date: <masked>' "$AP_TMP/$name-plain.raw" || ap_fail "$name: no Date header was masked"
	cmp "$AP_TMP/$name-plain.raw" "$AP_TMP/$name-preload.raw" ||
		ap_fail "$name: responses differ with the preload (keep-alive)"
	cmp "$AP_TMP/$name-plain-pipe.raw" "$AP_TMP/$name-preload-pipe.raw" ||
		ap_fail "$name: responses differ with the preload (pipelined)"
	ap_log "ok: $name: $(wc -c <"$AP_TMP/$name-plain.raw") bytes of responses identical with and without the preload"
}
POST_SMALL='POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello'

ap_bg threaded-plain "$AP_THREADED" --port 0 --file "$AP_TMP/file.bin"
ap_wait_log threaded-plain '^listening on'
TP_PORT=$(awk '/^listening on/ {print $3}' "$AP_TMP/threaded-plain.log")
compare threaded "$TP_PORT" "$T_PORT" "GET /hello" "GET /users/42?x=1" "GET /error" "GET /file" \
	"GET /chunked" "$POST_SMALL" "HEAD /hello" "GET /nope" "GET /slow?ms=5" \
	'GET /hello HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'

ap_start_nginx nginx-plain 0
NP_PORT=$AP_PORT
compare nginx "$NP_PORT" "$N_PORT" "GET /api/items" "GET /api/users/3" "GET /static/big.bin" \
	"GET /missing" "HEAD /api/items" "${POST_SMALL//\/post//upload}" "GET /error"

NODE_PLAIN=$(ap_free_port)
ap_bg node-plain node "$AP_NODE_SERVER" --port "$NODE_PLAIN"
NODE_PRE=$(ap_free_port)
AP_SERVICE=rel-node ap_bg_preloaded node-preload node "$AP_NODE_SERVER" --port "$NODE_PRE"
ap_wait_log node-plain '^listening on'
ap_wait_log node-preload '^listening on'
compare node "$NODE_PLAIN" "$NODE_PRE" "GET /fast" "GET /items/9" "GET /error" "$POST_SMALL" \
	"HEAD /fast" "GET /nope" "GET /slow?ms=5"

# The preloaded side of each comparison was really observed.
AP_SERVICE=rel-node
c=$(ap_wait_count /fast 2 GET)
ap_assert_eq "node: preloaded comparison requests seen" "$c" 2

# ---- (c) APIPROF_DISABLE=1 -----------------------------------------------
D_PORT=$(ap_free_port)
ap_bg disabled env APIPROF_DISABLE=1 LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE=rel-disabled "$AP_THREADED" --port "$D_PORT"
D_PID=$AP_BG_PID
ap_wait_log disabled '^listening on'
ap_curl_many "$AP_TMP/disabled.out" $(for i in $(seq 10); do echo "http://127.0.0.1:$D_PORT/hello"; done)
ap_raw "$D_PORT" --pipeline "GET /hello" "GET /error" >/dev/null
# A control sent at the same time by an enabled server must arrive.
AP_SERVICE=rel-threaded
curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$T_PORT/control" || ap_fail "control request failed"
c=$(ap_wait_count /control 1 GET)
ap_assert_eq "control request of an enabled server" "$c" 1
ap_assert_jq "APIPROF_DISABLE=1: no endpoint of the disabled service" \
	'[.endpoints[] | select(.service == "rel-disabled")] | length == 0' "$(ap_api /api/v1/endpoints)"
ap_assert_jq "APIPROF_DISABLE=1: the disabled process is not known to the collector" \
	"[.processes[]? | select(.pid == $D_PID or .service == \"rel-disabled\")] | length == 0" "$(ap_api /api/v1/status)"

# ---- (d) APIPROF_PORTS ---------------------------------------------------
# The same server twice: listening on a port its list names (after a port it
# does not use and a bad entry, which is skipped), and on a port its list
# does not name, whose requests are not followed at all. The first also has
# APIPROF_DISABLE=11: a flag is on only when it is exactly 1 (README).
IN_PORT=$(ap_free_port)
OUT_PORT=$(ap_free_port)
ap_bg ports-in env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_DISABLE=11 \
	APIPROF_SERVICE=rel-ports-in APIPROF_PORTS="1,x, $IN_PORT" "$AP_THREADED" --port "$IN_PORT"
ap_bg ports-out env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" \
	APIPROF_SERVICE=rel-ports-out APIPROF_PORTS="$IN_PORT" "$AP_THREADED" --port "$OUT_PORT"
ap_wait_log ports-in '^listening on'
ap_wait_log ports-out '^listening on'
ap_curl_many "$AP_TMP/ports-out.out" $(for i in $(seq 5); do echo "http://127.0.0.1:$OUT_PORT/hello"; done)
ap_curl_many "$AP_TMP/ports-in.out" $(for i in $(seq 5); do echo "http://127.0.0.1:$IN_PORT/hello"; done)
AP_SERVICE=rel-ports-in
c=$(ap_wait_count /hello 5 GET)
ap_assert_eq "APIPROF_PORTS naming the server's port (and APIPROF_DISABLE=11): requests counted" "$c" 5
ap_assert_jq "APIPROF_PORTS not naming the server's port: no endpoint of that service" \
	'[.endpoints[] | select(.service == "rel-ports-out")] | length == 0' "$(ap_api /api/v1/endpoints)"
ap_log "PASS"
