#!/bin/bash
# The preload in the JVM (OpenJDK 17), with two small servers compiled here
# (tests/servers/JavaHttpServer.java and JavaSocketServer.java):
#  1. the JDK's com.sun.net.httpserver.HttpServer: an NIO selector thread
#     accepts, and successive requests of one keep-alive connection run on
#     different worker threads. Keep-alive, eight concurrent slow requests,
#     3 MB POSTs (fixed-length and chunked), HEAD, 204, 304, 404 (the
#     handler's, and the JDK's own, which closes the connection), 500,
#     chunked responses (sendResponseHeaders(code, 0)), and a request whose
#     body never comes: the JDK's request timer closes its connection from
#     another thread while a worker is blocked reading it, with a dup2() of
#     a pre-closed marker fd over the socket first (NIO's "preClose"); it is
#     aborted. Exact counts per route, statuses, bytes, durations.
#  2. a blocking java.net.ServerSocket server (NioSocketImpl underneath),
#     one thread per connection, whose guard thread closes connections
#     from outside (shutdown(SHUT_WR), then the preClose dup2): a request
#     head cut short is aborted, an idle connection closed adds nothing.
#  3. the JVM's own SIGSEGVs: implicit null checks of JIT-compiled code
#     (hundreds of thousands of NullPointerExceptions thrown and caught,
#     with and without -XX:-OmitStackTraceInFastThrow) and safepoint polls
#     while serving: no crash, no crash record, exact counts; -Xcheck:jni
#     (which checks the JVM's signal handlers) says nothing, and the JVM's
#     stderr is the same with and without the preload. A JVM that really
#     crashes while serving writes its fatal error report and exits as it
#     would without the preload.
#  4. responses byte-identical with and without the preload.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 java javac
ap_require_build

# Every Java source in one javac call; javac itself runs faster without
# the C2 compiler (it is short-lived).
CLS=$AP_TMP/classes
javac -J-XX:TieredStopAtLevel=1 -d "$CLS" "$AP_SRCDIR/tests/servers/JavaHttpServer.java" \
	"$AP_SRCDIR/tests/servers/JavaSocketServer.java" >"$AP_TMP/javac.log" 2>&1 ||
	ap_fail "javac failed: $(cat "$AP_TMP/javac.log")"

head -c 3145728 /dev/urandom >"$AP_TMP/post-3m.bin"

# java_bg NAME PRELOAD(1|0) ARGS... : java ARGS in the background, stdout in
# NAME.log and stderr alone in NAME.err (the JVM's warnings); sets
# AP_BG_PID (the JVM's own pid: bash execs it).
java_bg() {
	local name=$1 pre=$2
	shift 2
	local run=ap_bg
	[ "$pre" = 1 ] && run=ap_bg_preloaded
	"$run" "$name" bash -c 'exec "$@" 2>"$0"' "$AP_TMP/$name.err" java \
		-XX:ErrorFile="$AP_TMP/hs_err_$name.log" -XX:-CreateCoredumpOnCrash -cp "$CLS" "$@"
}

ap_start_collector
SOCK_SERVICE=$AP_SERVICE-sock
# The JDK server's request timer: a request not read whole within 2 s
# (checked every 100 ms) has its connection closed. (2 s, not 1: a 3 MiB
# POST must never come near it on a loaded machine.)
JHTTP_OPTS=(-Xcheck:jni -Dsun.net.httpserver.maxReqTime=2 -Dsun.net.httpserver.timerMillis=100)
PORT=$(ap_free_port)
java_bg jhttp 1 "${JHTTP_OPTS[@]}" JavaHttpServer "$PORT" --npe-thread
JHTTP_PID=$AP_BG_PID
PLAIN_PORT=$(ap_free_port)
java_bg plain 0 "${JHTTP_OPTS[@]}" JavaHttpServer "$PLAIN_PORT" --npe-thread
PLAIN_PID=$AP_BG_PID
SPORT=$(ap_free_port)
AP_SERVICE=$SOCK_SERVICE java_bg jsock 1 -Xcheck:jni -XX:-OmitStackTraceInFastThrow \
	JavaSocketServer "$SPORT" --npe-thread
JSOCK_PID=$AP_BG_PID
ap_wait_log jhttp '^listening on'
ap_wait_log plain '^listening on'
ap_wait_log jsock '^listening on'
B=http://127.0.0.1:$PORT
S=http://127.0.0.1:$SPORT
ap_log "collector $AP_URL, HttpServer on $PORT (pid $JHTTP_PID), without the preload on $PLAIN_PORT, ServerSocket server on $SPORT"

# partial NAME PORT BYTES : sends BYTES (\r\n escapes) on a connection of
# its own and waits (up to 15 s) for the server to close it; NAME.log says
# "closed after S s" or "open". In the background: AP_BG_PID.
partial() {
	ap_bg "$1" "$AP_PY" -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
t = time.time()
try:
    while s.recv(65536): pass
    print("closed after %.1f s" % (time.time() - t))
except OSError as e:
    print("open: %r" % e)' "$2" "$3"
}

# 1a. A POST whose body never comes whole (started first: the JDK closes
#     it 2 s later, while the rest goes on).
partial stalled "$PORT" 'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n'"$(head -c 1000 /dev/zero | tr '\0' a)"
STALLED_PID=$AP_BG_PID
# 2a. The ServerSocket server's guard thread: a head cut short (closed
#     after 300 ms), and an idle keep-alive connection (closed after 1.5 s).
partial shorthead "$SPORT" 'GET /fast HTTP/1.1\r\nHost: 127.0.0'
SHORTHEAD_PID=$AP_BG_PID
partial idle "$SPORT" 'GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
IDLE_PID=$AP_BG_PID

# 1b. Keep-alive: ten requests on one connection.
ap_curl_many "$AP_TMP/ka.out" "$B/fast" "$B/fast" "$B/items/1" "$B/chunked" "$B/nocontent" \
	"$B/notmod" "$B/error" "$B/missing" "$B/items/2" "$B/fast"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 204 304 500 404 200 200 "
# Consecutive requests of that connection ran on different threads.
# (Lines "req N thread=NAME conn=PORT METHOD PATH".)
ka_conn=$(awk '$1 == "req" && $5 == "GET" && $6 == "/nocontent" { print $4 }' "$AP_TMP/jhttp.log")
awk -v c="$ka_conn" '$1 == "req" && $4 == c { if ($3 == prev) bad++; prev = $3; n++ }
	END { exit (n != 10 || bad > 0) }' "$AP_TMP/jhttp.log" ||
	ap_fail "the 10 keep-alive requests did not run on alternating threads: $(grep "$ka_conn" "$AP_TMP/jhttp.log")"

# 1c. HEAD, and the JDK's own 404 (no context), after which it closes.
ap_raw "$PORT" "HEAD /fast" >"$AP_TMP/head.out"
ap_raw "$PORT" "GET /nowhere" >"$AP_TMP/nowhere.out"
ap_assert_eq "HEAD and the JDK's 404" "$(cut -d' ' -f1 "$AP_TMP/head.out" "$AP_TMP/nowhere.out" | paste -sd' ')" "200 404"

# at_once N URL NAME : N GETs of URL at the same time, each answered 200.
at_once() {
	local i p pids=""
	for i in $(seq "$1"); do
		curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$2" >"$AP_TMP/$3-$i.out" &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p" || ap_fail "a request of $3 failed"
	done
	ap_assert_eq "$3 statuses" "$(cat "$AP_TMP/$3"-*.out | sort | uniq -c | awk '{print $1, $2}')" "$1 200"
}
# post3m URL NAME : POSTs the 3 MiB file (fixed length); NAME.out says
# "status size_request size_upload size_header size_download".
post3m() {
	curl -s --max-time 30 -H 'Expect:' --data-binary @"$AP_TMP/post-3m.bin" -o "$AP_TMP/$2.body" \
		-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
		"$1" >"$AP_TMP/$2.out" || ap_fail "3 MiB POST to $1 failed"
	ap_assert_eq "3 MiB POST answer ($2)" "$(cat "$AP_TMP/$2.body")" "received 3145728"
}

# 1d. Eight slow requests at once (eight workers). Once the stalled POST's
#     connection is closed: until then it holds one of the eight
#     round-robin workers, and the slow request given to that worker would
#     start only then, after the others ended.
wait "$STALLED_PID"
grep -q '^closed after' "$AP_TMP/stalled.log" || ap_fail "the stalled POST's connection: $(cat "$AP_TMP/stalled.log")"
SLOW_MS=400
at_once 8 "$B/slow?ms=$SLOW_MS" slow

# 1e. 3 MiB POSTs: fixed-length (exact bytes checked below) and chunked.
post3m "$B/post" post
curl -s --max-time 30 -H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @"$AP_TMP/post-3m.bin" \
	-o "$AP_TMP/postc.body" "$B/post" || ap_fail "chunked 3 MiB POST failed"
ap_assert_eq "chunked 3 MiB POST answer" "$(cat "$AP_TMP/postc.body")" "received 3145728"

# 3a. 400000 NullPointerExceptions thrown and caught in JIT-compiled code,
#     on top of the background thread's, in both servers. (Under strace,
#     -e signal=SIGSEGV: about 55000 SIGSEGVs for 100000 caught.)
for i in 1 2; do
	ap_assert_eq "NPE storm $i" "$(curl -s --max-time 30 "$B/npe?n=400000")" "caught 200000"
done

# 2b. The ServerSocket server: keep-alive, slow requests at once, a POST.
ap_curl_many "$AP_TMP/ska.out" "$S/fast" "$S/fast" "$S/error" "$S/nope" "$S/fast"
ap_assert_eq "ServerSocket keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ska.out")" \
	"200 200 500 404 200 "
at_once 4 "$S/slow?ms=$SLOW_MS" sslow
post3m "$S/post" spost

# 4. Byte-identical responses, Date masked.
RAW=("GET /fast" "HEAD /fast" "GET /items/7" "GET /chunked" "GET /nocontent" "GET /notmod"
	"GET /error" "GET /missing"
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' "GET /nowhere")
ap_raw "$PORT" --dump "$AP_TMP/pre.raw" "${RAW[@]}" >"$AP_TMP/pre.out"
ap_raw "$PLAIN_PORT" --dump "$AP_TMP/plain.raw" "${RAW[@]}" >/dev/null
cmp -s "$AP_TMP/pre.raw" "$AP_TMP/plain.raw" ||
	ap_fail "responses differ with the preload: $(diff <(cat -v "$AP_TMP/plain.raw") <(cat -v "$AP_TMP/pre.raw") | head -20)"
ap_log "ok: ${#RAW[@]} responses ($(wc -c <"$AP_TMP/pre.raw") bytes) byte-identical with and without the preload"

# The connections the servers close (the stalled POST's: above).
wait "$SHORTHEAD_PID"
grep -q '^closed after' "$AP_TMP/shorthead.log" || ap_fail "the cut-short head's connection: $(cat "$AP_TMP/shorthead.log")"
wait "$IDLE_PID"
grep -q '^closed after' "$AP_TMP/idle.log" || ap_fail "the idle connection: $(cat "$AP_TMP/idle.log")"
grep -q 'guard closed .* partial' "$AP_TMP/jsock.log" || ap_fail "the guard closed no cut-short head"
grep -q 'guard closed .* idle' "$AP_TMP/jsock.log" || ap_fail "the guard closed no idle connection"

# Exact counts: the stalled POST is one more POST /post (aborted), the
# JDK's 404 a GET /nowhere; the cut-short head an aborted GET /fast, the
# idle connection's request one GET /fast and its close nothing.
ap_expect_counts <<EOF
GET /fast 4
HEAD /fast 2
GET /items/{id} 3
GET /chunked 2
GET /nocontent 2
GET /notmod 2
GET /error 2
GET /missing 2
GET /nowhere 2
GET /slow 8
POST /post 4
GET /npe 2
EOF
ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 2
ap_assert_eq "error_count of POST /post (the stalled one)" "$(ap_field POST /post error_count)" 1
ap_assert_eq "error_count of GET /fast" "$(ap_field GET /fast error_count)" 0
AP_SERVICE=$SOCK_SERVICE ap_expect_counts <<EOF
GET /fast 5
GET /error 1
GET /nope 1
GET /slow 4
POST /post 1
EOF
ap_assert_eq "ServerSocket: error_count of GET /fast (the cut-short head)" \
	"$(AP_SERVICE=$SOCK_SERVICE ap_field GET /fast error_count)" 1

# Statuses, bytes and durations of single requests.
reqs=$(ap_requests /post POST)
read -r code sreq sup shdr sdown <"$AP_TMP/post.out"
ap_assert_jq "3 MiB POST: bytes_in $((sreq + sup)), bytes_out $((shdr + sdown)), status $code" \
	"any(.[]; .bytes_in == $((sreq + sup)) and .bytes_out == $((shdr + sdown)) and .status == 200)" "$reqs"
ap_assert_jq "chunked 3 MiB POST: bytes_in over 3 MiB, status 200" \
	"[.[] | select(.bytes_in > 3145728 and .status == 200)] | length == 2" "$reqs"
ap_assert_jq "the stalled POST: aborted, after about 2 s, bytes_in of what came" \
	"[.[] | select(.error)] | length == 1 and .[0].duration_ms >= 1850 and .[0].bytes_in < 2000" "$reqs"
reqs=$(ap_requests /slow)
ap_assert_jq "slow requests: duration >= ${SLOW_MS} ms" \
	"length == 8 and all(.[]; .status == 200 and .duration_ms >= $SLOW_MS and .duration_ms < 10000)" "$reqs"
ap_assert_jq "the 8 slow requests in flight at once: each started before any ended" \
	'[.[] | (.ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$")
	  | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)) as $t | {t: $t, e: ($t + .duration_ms)}]
	 | (map(.t) | max) < (map(.e) | min)' "$reqs"
statuses() { ap_requests "$1" "${2:-GET}" | jq -c '[.[].status] | sort'; }
ap_assert_eq "statuses of /nocontent, /notmod, /missing, /nowhere, /error" \
	"$(statuses /nocontent) $(statuses /notmod) $(statuses /missing) $(statuses /nowhere) $(statuses /error)" \
	"[204,204] [304,304] [404,404] [404,404] [500,500]"
head_bytes=$(awk '{print $2}' "$AP_TMP/head.out")
ap_assert_jq "HEAD: bytes_out $head_bytes (headers only)" \
	"length == 2 and all(.[]; .bytes_out == $head_bytes and .status == 200)" "$(ap_requests /fast HEAD)"
chunked_bytes=$(awk 'NR == 4 {print $2}' "$AP_TMP/pre.out")
ap_assert_jq "chunked responses: bytes_out $chunked_bytes" \
	"length == 2 and all(.[]; .bytes_out == $chunked_bytes and .status == 200)" "$(ap_requests /chunked)"
read -r code sreq sup shdr sdown <"$AP_TMP/spost.out"
AP_SERVICE=$SOCK_SERVICE ap_assert_jq "ServerSocket 3 MiB POST: bytes_in $((sreq + sup)), bytes_out $((shdr + sdown))" \
	"length == 1 and .[0].bytes_in == $((sreq + sup)) and .[0].bytes_out == $((shdr + sdown))" \
	"$(AP_SERVICE=$SOCK_SERVICE ap_requests /post POST)"

# 3b. The JVMs' SIGSEGVs reached none of our handlers: no crash record,
#     both preloaded JVMs alive and answering. -Xcheck:jni, which checks
#     every 10 ms that the JVM's handlers of SIGSEGV, SIGBUS, SIGFPE,
#     SIGILL... are still installed, said nothing (it writes "Warning:
#     SIGSEGV handler modified!" on stdout: it did with a handler of ours
#     forced over the JVM's), and what the JVM wrote, stderr and stdout
#     less the servers' own lines, is the same without the preload.
errs=$(ap_api /api/v1/errors | jq -c '[.errors[] | select(.type | startswith("SIG"))]')
ap_assert_eq "crash records" "$errs" "[]"
kill -0 "$JHTTP_PID" && kill -0 "$JSOCK_PID" || ap_fail "a JVM died"
ap_assert_eq "HttpServer still answers" "$(curl -s --max-time 10 "$B/fast")" "fast"
ap_assert_eq "ServerSocket server still answers" "$(curl -s --max-time 10 "$S/fast")" "fast"
jvm_said() { # NAME: the JVM's stderr, then its stdout less the server's lines
	cat "$AP_TMP/$1.err"
	grep -Ev '^(req [0-9]|listening on |io error: |guard closed )' "$AP_TMP/$1.log" || true
}
jvm_said jhttp >"$AP_TMP/jhttp.said"
jvm_said plain >"$AP_TMP/plain.said"
cmp -s "$AP_TMP/jhttp.said" "$AP_TMP/plain.said" ||
	ap_fail "the JVM's output differs with the preload: $(diff "$AP_TMP/plain.said" "$AP_TMP/jhttp.said" | head)"
if jvm_said jsock | cat - "$AP_TMP/jhttp.said" | grep -Eiq 'warning|handler'; then
	ap_fail "the JVM complained: $(jvm_said jsock | cat - "$AP_TMP/jhttp.said" | head)"
fi
ap_log "ok: the JVMs said nothing of signal handlers; $(wc -c <"$AP_TMP/jhttp.said") bytes of JVM output, the same without the preload"

# 3c. A JVM crash while serving (a store to address 8 in the JVM's own
#     code): with and without the preload, the JVM writes its fatal error
#     report and exits with 1 (-XX:-CreateCoredumpOnCrash). A handler of
#     ours installed before the JVM's would be called as the JVM's
#     "previous" one, which the JVM then takes for a handler that dealt with
#     the fault: it would die of the SIGSEGV (139), its report unwritten.
curl -s --max-time 20 -o /dev/null "$B/crash"
curl -s --max-time 20 -o /dev/null "http://127.0.0.1:$PLAIN_PORT/crash"
for pid in $JHTTP_PID $PLAIN_PID; do
	for i in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
done
wait "$PLAIN_PID"
plain_exit=$?
wait "$JHTTP_PID"
pre_exit=$?
ap_assert_eq "exit status of the crashing JVM (without the preload: $plain_exit)" "$pre_exit" 1
ap_assert_eq "exit status of the crashing JVM without the preload" "$plain_exit" 1
for f in hs_err_plain hs_err_jhttp; do
	grep -q 'SIGSEGV' "$AP_TMP/$f.log" 2>/dev/null || ap_fail "no fatal error report in $f.log"
done
ap_log "ok: both JVMs wrote their fatal error report ($(grep -m1 'SIGSEGV' "$AP_TMP/hs_err_jhttp.log"))"
ap_log "PASS"
