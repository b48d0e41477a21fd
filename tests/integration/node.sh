#!/bin/bash
# The preload in Node's http module (tests/servers/node_server.js): one thread
# serves every connection with read() and writev(), and closes sockets with
# syscall(SYS_close). Keep-alive, pipelining, ten concurrent slow requests, a
# large POST, a 500, and a client that gives up on a slow request (the
# request is aborted: only the SYS_close hook can tell). Exact counts; slow
# requests last at least their sleep. Then a 2-worker cluster (the cluster
# module passes each accepted connection to a worker with SCM_RIGHTS):
# every request counts.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 node
ap_require_build

head -c 1048576 /dev/urandom >"$AP_TMP/post-1m.bin"

ap_start_collector
AP_PORT=$(ap_free_port)
ap_bg_preloaded server node "$AP_NODE_SERVER" --port "$AP_PORT"
ap_wait_log server '^listening on'
B=http://127.0.0.1:$AP_PORT
ap_log "collector $AP_URL, node on port $AP_PORT"

# 1. Keep-alive: seven requests on one connection.
ap_curl_many "$AP_TMP/ka.out" "$B/fast" "$B/fast" "$B/items/1" "$B/items/abc" "$B/error" \
	"$B/fast" "$B/items/2"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 500 200 200 "

# 2. Pipelining.
ap_raw "$AP_PORT" --pipeline "GET /fast" "GET /items/3" "GET /error" >"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe.out")" "200 200 500 "

# 3. Ten slow requests at once: Node serves them concurrently on one thread.
SLOW_MS=500
t0=$(date +%s%N)
pids=""
for i in $(seq 10); do
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$B/slow?ms=$SLOW_MS&n=$i" >"$AP_TMP/slow$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a slow request failed"
done
elapsed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ap_assert_eq "slow statuses" "$(cat "$AP_TMP"/slow*.out | sort | uniq -c | awk '{print $1, $2}')" "10 200"
# One at a time they would take 10 x SLOW_MS; the collector's view (all in
# flight at once) is checked below, free of the machine's load.
[ "$elapsed_ms" -lt $(( 8 * SLOW_MS )) ] || ap_fail "10 slow requests took ${elapsed_ms} ms: not served concurrently"

# 4. A 1 MiB POST (exact bytes checked below) and one with Expect: 100-continue.
curl -s --max-time 30 -H 'Expect:' --data-binary @"$AP_TMP/post-1m.bin" -o "$AP_TMP/post.body" \
	-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
	"$B/post" >"$AP_TMP/post.out" || ap_fail "1 MiB POST failed"
ap_assert_eq "1 MiB POST answer" "$(cat "$AP_TMP/post.body")" "received 1048576"
curl -s --max-time 30 -H 'Expect: 100-continue' --data-binary @"$AP_TMP/post-1m.bin" -o "$AP_TMP/post2.body" \
	"$B/post" || ap_fail "POST with Expect failed"
ap_assert_eq "Expect: 100-continue POST answer" "$(cat "$AP_TMP/post2.body")" "received 1048576"

# 5. A client that gives up: the request is unanswered when Node closes the
#    connection (with syscall(SYS_close)), so it is aborted.
#    1 s: time for a loaded machine to deliver the request, and always
#    short of the 1.5 s, which start after curl's.
curl -s --max-time 1 -o /dev/null "$B/slow?ms=1500"
ap_assert_eq "curl exit code of the abandoned request (timeout)" "$?" 28

ap_expect_counts <<EOF
GET /fast 4
GET /items/{id} 3
GET /items/abc 1
GET /error 2
GET /slow 11
POST /post 2
EOF

ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 2
ap_assert_eq "error_count of GET /slow (the aborted request)" "$(ap_field GET /slow error_count)" 1
ap_assert_eq "error_count of GET /fast" "$(ap_field GET /fast error_count)" 0

# libuv's timers run on a loop clock truncated to the millisecond and read
# before the request's bytes are: a setTimeout(500) may fire up to 1 ms
# short of 500 ms after the request's first byte. Hence the 2 ms of slack.
reqs=$(ap_requests /slow)
ap_assert_jq "slow requests: path /slow, duration >= ${SLOW_MS} ms (less libuv's 1 ms clock)" \
	"[.[] | select(.status == 200)] | length == 10 and all(.[]; .path == \"/slow\" and .duration_ms >= $SLOW_MS - 2 and .duration_ms < 10000)" "$reqs"
ap_assert_jq "the 10 slow requests in flight at once: each started before any ended" \
	'[.[] | select(.status == 200) | (.ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$")
	  | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)) as $t | {t: $t, e: ($t + .duration_ms)}]
	 | length == 10 and (map(.t) | max) < (map(.e) | min)' "$reqs"
ap_assert_jq "the abandoned request is an error without a 200" \
	'[.[] | select(.status != 200)] | length == 1 and .[0].error == true' "$reqs"

read -r code sreq sup shdr sdown <"$AP_TMP/post.out"
reqs=$(ap_requests /post POST)
ap_assert_jq "1 MiB POST: bytes_in $((sreq + sup)), bytes_out $((shdr + sdown)), status $code" \
	"any(.[]; .bytes_in == $((sreq + sup)) and .bytes_out == $((shdr + sdown)) and .status == 200)" "$reqs"
ap_assert_jq "POSTs: final statuses only" 'length == 2 and all(.[]; .status == 200)' "$reqs"

pipe_err=$(awk 'NR == 3 {print $2}' "$AP_TMP/pipe.out")
reqs=$(ap_requests /error)
ap_assert_jq "500s: status, error flag, bytes_out $pipe_err" \
	"length == 2 and all(.[]; .status == 500 and .error == true and .bytes_out == $pipe_err)" "$reqs"

# 6. Node's cluster module (round-robin, the default on Linux): the primary
#    accepts every connection and passes it to a worker over a Unix socket
#    (SCM_RIGHTS); the workers never call accept. Every request counts,
#    none an error.
cat >"$AP_TMP/cluster.js" <<'EOF'
const cluster = require('cluster'), http = require('http');
if (cluster.isPrimary) {
	let up = 0;
	for (let i = 0; i < 2; i++)
		cluster.fork().on('listening', () => { if (++up === 2) console.log('listening'); });
} else {
	http.createServer((q, r) => r.end('ok ' + process.pid)).listen(+process.argv[2], '127.0.0.1');
}
EOF
CPORT=$(ap_free_port)
AP_SERVICE=$AP_SERVICE-cluster ap_bg_preloaded cluster node "$AP_TMP/cluster.js" "$CPORT"
ap_wait_log cluster '^listening'
for i in $(seq 6); do
	curl -s --max-time 10 -o /dev/null "http://127.0.0.1:$CPORT/c$i" || ap_fail "cluster request $i failed"
done
ap_curl_many "$AP_TMP/cluster-ka.out" "http://127.0.0.1:$CPORT/ka" "http://127.0.0.1:$CPORT/ka"
for _ in $(seq 50); do
	n=$(ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE-cluster" \
		'[.endpoints[] | select(.service == $s) | .count] | add // 0')
	[ "$n" -ge 8 ] && break
	sleep 0.2
done
sleep 1
eps=$(ap_api /api/v1/endpoints)
ap_assert_jq "cluster: 8 requests counted, none an error" \
	"[.endpoints[] | select(.service == \"$AP_SERVICE-cluster\")] | (map(.count) | add) == 8 and (map(.error_count) | add) == 0" "$eps"
ap_log "PASS"
