#!/bin/bash
# The preload in a threaded server (tests/servers/threaded_server.c) whose
# successive keep-alive requests on one connection are served by different
# threads, and whose connections are closed by yet another thread (the
# gunicorn gthread / Apache event model). Asserts exact counts per method and
# route, error counts, bytes and status of single requests, and that the
# query string is dropped from the path. Also exercises the `apiprof` client
# (run and report) against the collector.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3
ap_require_build "$AP_THREADED" "$AP_CLI"

head -c 300000 /dev/urandom >"$AP_TMP/file.bin"
head -c 1048576 /dev/urandom >"$AP_TMP/post-1m.bin"
head -c 65536 /dev/urandom >"$AP_TMP/post-64k.bin"

ap_start_collector
ap_start_threaded server --file "$AP_TMP/file.bin" --verbose
B=http://127.0.0.1:$AP_PORT
ap_log "collector $AP_URL, server on port $AP_PORT (pid $AP_SERVER_PID)"

# 1. Keep-alive: eight requests on one connection.
ap_curl_many "$AP_TMP/ka.out" "$B/hello" "$B/hello" "$B/users/1" "$B/users/22?tab=posts" \
	"$B/file" "$B/chunked" "$B/error" "$B/hello"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 200 200 500 200 "
# The server log proves the point of this server: consecutive requests on a
# connection ran on different worker threads.
awk '/ req=| close / { split($1, c, "="); split($3 ~ /^worker=/ ? $3 : $2, w, "=") }
     / req=/   { if (c[2] in last && last[c[2]] == w[2]) bad++; last[c[2]] = w[2] }
     / close / { if (c[2] in last && last[c[2]] == w[2]) bad++ }
     END { exit bad > 0 }' "$AP_TMP/server.log" ||
	ap_fail "the threaded server served consecutive requests (or the close) of a connection on one thread"

# 2. Pipelining: three requests in one write, then a body-carrying POST
#    pipelined with two more requests.
ap_raw "$AP_PORT" --pipeline "GET /hello" "GET /users/7" "GET /error" >"$AP_TMP/pipe1.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe1.out")" "200 200 500 "
ap_raw "$AP_PORT" --pipeline \
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' \
	"GET /chunked" "HEAD /hello" >"$AP_TMP/pipe2.out"
ap_assert_eq "pipelined POST statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe2.out")" "200 200 200 "

# 3. A 1 MiB POST without Expect (exact byte counts checked below), and a
#    64 KiB one with Expect: 100-continue (an interim response first).
curl -s --max-time 30 -H 'Expect:' --data-binary @"$AP_TMP/post-1m.bin" -o "$AP_TMP/post1m.body" \
	-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
	"$B/post" >"$AP_TMP/post1m.out" || ap_fail "1 MiB POST failed"
ap_assert_eq "1 MiB POST answer" "$(cat "$AP_TMP/post1m.body")" "received 1048576"
curl -sv --max-time 30 -H 'Expect: 100-continue' --data-binary @"$AP_TMP/post-64k.bin" \
	-o "$AP_TMP/post64k.body" "$B/post" 2>"$AP_TMP/post64k.err" || ap_fail "64 KiB POST failed"
ap_assert_eq "Expect: 100-continue POST answer" "$(cat "$AP_TMP/post64k.body")" "received 65536"
grep -q '^< HTTP/1.1 100 Continue' "$AP_TMP/post64k.err" || ap_fail "the server sent no 100 Continue"

# 4. sendfile twice on one connection, then once more with two 500s and a
#    404 on another; a Connection: close request.
ap_curl_many "$AP_TMP/file.out" "$B/file" "$B/file"
curl -s --max-time 10 -o "$AP_TMP/file.body" "$B/file" -o /dev/null "$B/error" -o /dev/null "$B/error" \
	-o /dev/null "$B/nope" -w '%{http_code}\n' >"$AP_TMP/misc.out" || ap_fail "curl failed"
cmp -s "$AP_TMP/file.body" "$AP_TMP/file.bin" || ap_fail "/file did not return the file"
curl -s --max-time 10 -H 'Connection: close' -o /dev/null "$B/users/5" || ap_fail "Connection: close request failed"

# 5. HTTP/1.0 (the server closes after the response, from another thread).
ap_raw "$AP_PORT" 'GET /hello HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >"$AP_TMP/http10.out"
ap_assert_eq "HTTP/1.0 status" "$(cut -d' ' -f1 "$AP_TMP/http10.out")" 200

# 6. Six slow requests at once (more than the four workers).
SLOW_MS=400
pids=""
for i in 1 2 3 4 5 6; do
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$B/slow?ms=$SLOW_MS" >"$AP_TMP/slow$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a slow request failed"
done
ap_assert_eq "slow statuses" "$(cat "$AP_TMP"/slow*.out | sort | uniq -c | awk '{print $1, $2}')" "6 200"

ap_expect_counts <<EOF
GET /hello 5
HEAD /hello 1
GET /users/{id} 4
GET /file 4
GET /chunked 2
GET /error 4
POST /post 3
GET /slow 6
GET /nope 1
EOF

ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 4
ap_assert_eq "error_count of GET /hello" "$(ap_field GET /hello error_count)" 0
ap_assert_eq "error_count of GET /nope (a 404 is not an error)" "$(ap_field GET /nope error_count)" 0
ap_assert_jq "error_rate of GET /error is 1" '. == 1' "$(ap_field GET /error error_rate)"

# Per-request details.
reqs=$(ap_requests /slow)
ap_assert_jq "slow requests: path without query string, duration >= ${SLOW_MS} ms" \
	"length == 6 and all(.[]; .path == \"/slow\" and .status == 200 and .duration_ms >= $SLOW_MS and .duration_ms < 10000)" "$reqs"

reqs=$(ap_requests '/users/{id}')
ap_assert_jq "/users/22?tab=posts stored as path /users/22" \
	'any(.[]; .path == "/users/22") and all(.[]; (.path | contains("?")) | not)' "$reqs"
users7=$(awk 'NR == 2 {print $2}' "$AP_TMP/pipe1.out")
ap_assert_jq "pipelined /users/7: bytes_out $users7" \
	"[.[] | select(.path == \"/users/7\")] | length == 1 and .[0].bytes_out == $users7 and .[0].status == 200" "$reqs"

# Pipelined requests are delimited exactly, bodies included.
post_len=$(printf 'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' | wc -c)
post_out=$(awk 'NR == 1 {print $2}' "$AP_TMP/pipe2.out")
reqs=$(ap_requests /post POST)
ap_assert_jq "pipelined POST: bytes_in $post_len, bytes_out $post_out" \
	"[.[] | select(.bytes_in == $post_len and .bytes_out == $post_out)] | length == 1" "$reqs"
get_len=$(printf 'GET /users/7 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' | wc -c)
reqs=$(ap_requests '/users/{id}')
ap_assert_jq "pipelined GET /users/7: bytes_in $get_len" \
	"[.[] | select(.path == \"/users/7\")][0].bytes_in == $get_len" "$reqs"

read -r code sreq sup shdr sdown <"$AP_TMP/post1m.out"
reqs=$(ap_requests /post POST)
ap_assert_jq "1 MiB POST: bytes_in $((sreq + sup)), bytes_out $((shdr + sdown)), status $code" \
	"(max_by(.bytes_in)) as \$r | \$r.bytes_in == $((sreq + sup)) and \$r.bytes_out == $((shdr + sdown)) and \$r.status == 200" "$reqs"
ap_assert_jq "POST statuses are final ones (no 100)" 'length == 3 and all(.[]; .status == 200)' "$reqs"

read -r code _ _ _ shdr sdown <"$AP_TMP/file.out"
reqs=$(ap_requests /file)
ap_assert_jq "sendfile responses: bytes_out $((shdr + sdown))" \
	"length == 4 and all(.[]; .bytes_out == $((shdr + sdown)) and .status == 200)" "$reqs"

err_bytes=$(awk 'NR == 3 {print $2}' "$AP_TMP/pipe1.out")
reqs=$(ap_requests /error)
ap_assert_jq "500 responses: status, error flag, bytes_out $err_bytes" \
	"length == 4 and all(.[]; .status == 500 and .error == true and .bytes_out == $err_bytes)" "$reqs"

head_bytes=$(awk 'NR == 3 {print $2}' "$AP_TMP/pipe2.out")
reqs=$(ap_requests /hello HEAD)
ap_assert_jq "HEAD response: bytes_out $head_bytes (headers only)" \
	"length == 1 and .[0].bytes_out == $head_bytes and .[0].status == 200" "$reqs"

reqs=$(ap_requests /chunked)
ap_assert_jq "chunked responses: complete, same size" \
	'length == 2 and all(.[]; .status == 200 and .bytes_out > 100) and (.[0].bytes_out == .[1].bytes_out)' "$reqs"

# ---- the apiprof client -------------------------------------------------
"$AP_CLI" --version | grep -Eq '^apiprof [0-9]' || ap_fail "apiprof --version"
"$AP_CLI" --help | grep -q 'report' || ap_fail "apiprof --help does not mention report"
"$AP_CLI" frobnicate >/dev/null 2>&1
ap_assert_eq "exit code of an unknown command" "$?" 2

"$AP_CLI" report --url "$AP_URL" --service "$AP_SERVICE" >"$AP_TMP/report.txt" 2>&1 ||
	ap_fail "apiprof report failed: $(cat "$AP_TMP/report.txt")"
cat "$AP_TMP/report.txt"
head -n 1 "$AP_TMP/report.txt" | grep -Eq '^SERVICE +METHOD +ROUTE +COUNT +ERR% +AVG +P50 +P95 +P99 +MAX +SQL/REQ +N\+1' ||
	ap_fail "apiprof report: unexpected header line"
row() { awk -v s="$AP_SERVICE" -v m="$1" -v r="$2" '$1 == s && $2 == m && $3 == r {print $4, $5}' "$AP_TMP/report.txt"; }
ap_assert_eq "report row GET /slow (count, err%)" "$(row GET /slow)" "6 0.0%"
ap_assert_eq "report row GET /error (count, err%)" "$(row GET /error)" "4 100.0%"
grep -q $'\033' "$AP_TMP/report.txt" && ap_fail "apiprof report coloured output that is not a terminal"
"$AP_CLI" report --url "$AP_URL" --sort p95 | awk 'NR == 2 {print $3}' >"$AP_TMP/p95.txt"
ap_assert_eq "first row of report --sort p95" "$(cat "$AP_TMP/p95.txt")" /slow
"$AP_CLI" report --url "$AP_URL" --sort errors | awk 'NR == 2 {print $3}' >"$AP_TMP/err.txt"
ap_assert_eq "first row of report --sort errors" "$(cat "$AP_TMP/err.txt")" /error
"$AP_CLI" report --url "$AP_URL" --since 1h | grep -q '/slow' || ap_fail "apiprof report --since 1h lost /slow"
"$AP_CLI" report --url "$AP_URL" --since 2h --service no-such-service | grep -q '/slow' &&
	ap_fail "apiprof report --service did not filter"
"$AP_CLI" report --url "$AP_URL" --since yesterday-ish >/dev/null 2>&1
ap_assert_eq "exit code of report --since with a bad value" "$?" 2
"$AP_CLI" report --url "http://127.0.0.1:$(ap_free_port)" >"$AP_TMP/unreach.txt" 2>&1
ap_assert_eq "exit code of report when the collector is unreachable" "$?" 3
grep -qi 'collector' "$AP_TMP/unreach.txt" || ap_fail "no clear message when unreachable: $(cat "$AP_TMP/unreach.txt")"

# apiprof run: the environment it gives COMMAND, then a real server under it.
# (Under ThreadSanitizer, libtsan stays preloaded behind ours: ap_preload_env.)
user_preload=${AP_PRELOAD_FIRST:+$AP_PRELOAD_FIRST:}libc.so.6
env_line=$(LD_PRELOAD=$user_preload APIPROF_LIB="$(ap_preload)" "$AP_CLI" run --service cli-svc \
	--socket "$AP_SOCK" -- /bin/sh -c 'printf "%s|%s|%s" "$LD_PRELOAD" "$APIPROF_SERVICE" "$APIPROF_SOCKET"')
ap_assert_eq "apiprof run environment" "$env_line" "$(ap_preload):$user_preload|cli-svc|$AP_SOCK"
APIPROF_LIB=/nonexistent/libapiprof.so "$AP_CLI" run -- /bin/true 2>"$AP_TMP/nolib.txt"
[ $? -ne 0 ] && grep -q /nonexistent/libapiprof.so "$AP_TMP/nolib.txt" ||
	ap_fail "apiprof run with a missing library: no clear error"

CLI_PORT=$(ap_free_port)
ap_bg cli-server env ${AP_PRELOAD_FIRST:+LD_PRELOAD=$AP_PRELOAD_FIRST} APIPROF_LIB="$(ap_preload)" "$AP_CLI" run --service it-cli --socket "$AP_SOCK" -- \
	"$AP_THREADED" --port "$CLI_PORT"
ap_wait_log cli-server '^listening on'
ap_curl_many "$AP_TMP/cli.out" "http://127.0.0.1:$CLI_PORT/users/1" "http://127.0.0.1:$CLI_PORT/users/2" \
	"http://127.0.0.1:$CLI_PORT/hello"
AP_SERVICE=it-cli ap_expect_counts <<EOF
GET /users/{id} 2
GET /hello 1
EOF

# A fresh process's first requests, ending together on several threads:
# the threads that race the one starting the shipper wait for it instead of
# dropping their events. Eight new servers, eight concurrent first requests
# each, every one counted.
for k in 1 2 3 4 5 6 7 8; do
	port=$(ap_free_port)
	AP_SERVICE=it-first ap_bg_preloaded "first$k" "$AP_THREADED" --port "$port" --threads 8
	ap_wait_log "first$k" '^listening on'
	urls=()
	for j in 1 2 3 4 5 6 7 8; do urls+=("http://127.0.0.1:$port/hello"); done
	printf '%s\n' "${urls[@]}" | xargs -P 8 -n 1 curl -s -o /dev/null --max-time 10 ||
		ap_fail "first requests to server $k failed"
done
AP_SERVICE=it-first ap_expect_counts <<EOF
GET /hello 64
EOF
dropped=$(ap_api /api/v1/status | jq '[.processes[] | select(.service == "it-first") | .dropped] | add')
ap_assert_eq "events dropped by the eight fresh servers" "$dropped" 0
ap_log "PASS"
