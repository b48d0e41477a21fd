#!/bin/bash
# The preload in BusyBox httpd (Debian's busybox), in the foreground. Each
# connection is served by a forked child that moves the accepted socket
# onto fds 0 and 1 (dup2(fd, 0), close(fd), dup2(0, 1)), reads the request
# on fd 0, writes the response on fd 1 and ends with shutdown(1, SHUT_WR):
# the preload must follow one connection under its aliases. Static files
# (small and large), a 404, HEAD, and HTTP/1.0; exact counts per route, the
# statuses and bytes recorded, and nothing aborted.
. "$(dirname "$0")/lib.sh"

ap_require curl jq busybox
ap_require_build
ap_require_dynamic_busybox

ap_start_collector
W=$AP_TMP/www
mkdir -p "$W/sub"
echo hello >"$W/a.txt"
printf '<p>b</p>\n' >"$W/sub/b.html"
head -c 100000 /dev/urandom >"$W/big.bin"
chmod -R a+rX "$W"

AP_PORT=$(ap_free_port)
AP_SERVICE=it-busybox
# -f: foreground (one process, a fork per connection); -vv logs each
# request and its status on stderr.
ap_bg_preloaded busybox busybox httpd -f -vv -p "127.0.0.1:$AP_PORT" -h "$W"
ap_wait_port "$AP_PORT" 10
B=http://127.0.0.1:$AP_PORT
ap_log "busybox httpd under the preload, pid $AP_BG_PID, port $AP_PORT"

# BusyBox answers one request per connection: every curl is one connection.
for i in $(seq 5); do
	curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "$B/a.txt"
	curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "$B/missing"
done >"$AP_TMP/statuses.out" || ap_fail "a request failed"
for i in $(seq 3); do
	curl -s --max-time 10 -0 -o /dev/null -w '%{http_code}\n' "$B/sub/b.html"
done >>"$AP_TMP/statuses.out" || ap_fail "an HTTP/1.0 request failed"
curl -s --max-time 10 -o "$AP_TMP/big.out" -w '%{http_code}\n' "$B/big.bin" \
	>>"$AP_TMP/statuses.out" || ap_fail "the large file failed"
cmp -s "$AP_TMP/big.out" "$W/big.bin" || ap_fail "the large file came back different"
curl -s --max-time 10 -I -o /dev/null -w '%{http_code}\n' "$B/a.txt" \
	>>"$AP_TMP/statuses.out" || ap_fail "HEAD failed"
ap_assert_eq "statuses" "$(sort "$AP_TMP/statuses.out" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" \
	"200:10 404:5 "

ap_expect_counts <<E
GET /a.txt 5
GET /missing 5
GET /sub/b.html 3
GET /big.bin 1
HEAD /a.txt 1
E
ap_assert_eq "error_count of GET /missing (a 404 is not an error)" \
	"$(ap_field GET /missing error_count)" 0
reqs=$(ap_api /api/v1/requests --data-urlencode "limit=1000" |
	jq --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s)]')
ap_assert_jq "statuses per route, nothing aborted" \
	'(map(select(.aborted)) | length) == 0 and
	 (map(select(.route == "/a.txt" or .route == "/sub/b.html" or .route == "/big.bin") | .status) | unique) == [200] and
	 (map(select(.route == "/missing") | .status) | unique) == [404]' "$reqs"
ap_assert_jq "the large file's bytes_out covers the file" \
	'map(select(.route == "/big.bin"))[0].bytes_out > 100000' "$reqs"
ap_assert_jq "bytes_in of every request is its whole head" \
	'all(.[]; .bytes_in > 20)' "$reqs"
ap_stop_pid "$AP_BG_PID"
ap_log "PASS"
