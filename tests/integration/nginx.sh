#!/bin/bash
# The preload in nginx: 2 workers forked by a daemonized master after our
# constructor, running as www-data when we are root (nginx also wipes environ),
# accept4(SOCK_NONBLOCK) + recv + writev, writev + sendfile for files, a
# large POST answered before its body is read (then discarded), keep-alive,
# pipelining, 404 and 500. Asserts exact counts per method and route, and that
# every request is attributed to a worker's pid.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 nginx
ap_require_build

head -c 1048576 /dev/urandom >"$AP_TMP/post-1m.bin"

ap_start_collector
ap_start_nginx nginx 1
B=http://127.0.0.1:$AP_PORT
workers=$(ap_children "$AP_NGINX_PID" | sort -n | tr '\n' ' ')
ap_log "collector $AP_URL, nginx master $AP_NGINX_PID, workers $workers, port $AP_PORT"
[ "$(wc -w <<<"$workers")" = 2 ] || ap_fail "expected 2 nginx workers, found: $workers"
if [ "$(id -u)" -eq 0 ]; then
	for w in $workers; do
		ap_assert_eq "user of worker $w" "$(stat -c %U "/proc/$w")" www-data
	done
fi

# 1. Keep-alive: eight requests on one connection (nginx closes after a 500,
#    so /error comes last).
ap_curl_many "$AP_TMP/ka.out" "$B/api/users/1" "$B/api/users/2" "$B/api/items" "$B/api/items" \
	"$B/static/big.bin" "$B/missing" "$B/api/items" "$B/error"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 200 404 200 500 "

# 2. Pipelining: four requests in one write, then a POST with its body
#    pipelined with a GET.
ap_raw "$AP_PORT" --pipeline "GET /api/items" "GET /api/users/5" "GET /static/big.bin" "GET /missing" \
	>"$AP_TMP/pipe1.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe1.out")" "200 200 200 404 "
ap_raw "$AP_PORT" --pipeline \
	'POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' \
	"GET /api/items" >"$AP_TMP/pipe2.out"
ap_assert_eq "pipelined POST statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe2.out")" "200 200 "

# 3. 1 MiB POSTs that nginx answers before reading the body (it discards the
#    body afterwards), each followed by a GET on the same connection; one
#    with Expect: 100-continue.
for expect in '' '100-continue'; do
	curl -s --max-time 30 -H "Expect: $expect" --data-binary @"$AP_TMP/post-1m.bin" -o /dev/null \
		-w '%{http_code} %{num_connects}\n' "$B/upload" \
		--next -s --max-time 30 -o /dev/null -w '%{http_code} %{num_connects}\n' "$B/api/items" \
		>"$AP_TMP/post.out" || ap_fail "1 MiB POST (Expect: $expect) failed"
	ap_assert_eq "1 MiB POST then GET (Expect: $expect): statuses and connections" \
		"$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/post.out")" "200/1 200/0 "
done

# 4. sendfile three times on one connection; one more 500.
ap_curl_many "$AP_TMP/file.out" "$B/static/big.bin" "$B/static/big.bin" "$B/static/big.bin"
curl -s --max-time 10 -o /dev/null "$B/error" || ap_fail "curl /error failed"

# 5. Twenty connections at once, to keep both workers busy.
pids=""
for i in $(seq 100 119); do
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$B/api/users/$i" >"$AP_TMP/par$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a concurrent request failed"
done
ap_assert_eq "concurrent statuses" "$(cat "$AP_TMP"/par*.out | sort | uniq -c | awk '{print $1, $2}')" "20 200"

ap_expect_counts <<EOF
GET /api/items 7
GET /api/users/{id} 23
GET /static/big.bin 5
GET /missing 2
GET /error 2
POST /upload 3
EOF

# nginx's own access log agrees.
ap_assert_eq "requests in nginx's access log" "$(wc -l <"$AP_TMP/nginx/access.log")" 42

ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 2
ap_assert_eq "error_count of GET /missing (a 404 is not an error)" "$(ap_field GET /missing error_count)" 0

read -r code _ _ _ shdr sdown <"$AP_TMP/file.out"
reqs=$(ap_requests /static/big.bin)
ap_assert_jq "sendfile responses: status 200, bytes_out $((shdr + sdown))" \
	"length == 5 and all(.[]; .status == 200 and .bytes_out == $((shdr + sdown)))" "$reqs"

# Pipelined requests are delimited exactly: each one's bytes_in is its own
# bytes, although nginx read both with one recv.
post_len=$(printf 'POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' | wc -c)
get_len=$(printf 'GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' | wc -c)
reqs=$(ap_requests /upload POST)
ap_assert_jq "POST /upload: final status 200 (never 100); the pipelined one has bytes_in $post_len" \
	"length == 3 and all(.[]; .status == 200) and (min_by(.bytes_in).bytes_in == $post_len)" "$reqs"
reqs=$(ap_requests /api/items)
ap_assert_jq "pipelined GET /api/items requests have bytes_in $get_len" \
	"[.[] | select(.bytes_in == $get_len)] | length == 2" "$reqs"

reqs=$(ap_requests /missing)
ap_assert_jq "404s" 'length == 2 and all(.[]; .status == 404 and .error == false)' "$reqs"
reqs=$(ap_requests /error)
ap_assert_jq "500s" 'length == 2 and all(.[]; .status == 500 and .error == true)' "$reqs"

# Every request was served, and is attributed, to a worker (kernel
# credentials), never to the master.
pids_seen=$(ap_api /api/v1/requests --data-urlencode limit=1000 |
	jq -r --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s) | .pid] | unique | .[]' | tr '\n' ' ')
ap_log "pids seen in requests: $pids_seen"
[ -n "$pids_seen" ] || ap_fail "no pid in /api/v1/requests"
ap_assert_pids_among "$pids_seen" "$workers" "an nginx worker"
ap_log "PASS"
