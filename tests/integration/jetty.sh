#!/bin/bash
# The preload in embedded Eclipse Jetty 9.4 (Debian's libjetty9-java, on
# OpenJDK 17), with a small server compiled here
# (tests/servers/JettyServer.java): one ServerConnector on 127.0.0.1 for
# HTTP/1.1 and, on the same port, h2c (HTTP2CServerConnectionFactory:
# prior knowledge, and Upgrade: h2c). Jetty's selector threads and its
# QueuedThreadPool run connections with the "eat what you kill" strategy:
# a request runs on whichever pool thread was producing at the time, and
# consecutive requests of one connection may run on different threads
# (the server's log shows it). Checked once by hand (strace -f -e
# trace=read,write,writev,sendfile,mmap on the JVM, thread names from
# /proc/PID/task/TID/comm): Jetty reads sockets with read(fd, buf, 8192)
# and writes with writev() only. A small response is one writev() of head
# and body; a static file by the DefaultServlet is read() from the file
# in 32 KiB pieces and written one writev() per piece (the first with the
# head): no sendfile, no mmap. An 8 MiB file to a slow reader: 136
# writev()s on the pool thread serving the request until one returned
# short, the other 126 from another pool thread once the selector found
# the socket writable. An async answer is written by the thread that
# completes it (the server's timer). Over HTTP/2 every write is a writev()
# of frames (a stream's HEADERS and DATA frames of up to 16 KiB).
#  1. HTTP/1.1: ten requests on one keep-alive connection (curl) and ten
#     50 ms apart; four pipelined; HEAD; Jetty's own 404 (the
#     DefaultServlet's), 400 (a head line without a colon: bytes_in all
#     of it) and 500 (a servlet that throws; Jetty then closes, and a GET
#     pipelined behind it is recorded aborted, status 0); a chunked
#     response (flushBuffer(), no Content-Length), one with trailer fields
#     (then a GET pipelined behind it), a chunked POST with trailers of
#     its own (then a GET behind it), and one broken by an exception
#     after it began (Jetty closes without ending it: aborted, exact
#     bytes_out); 1 MiB POSTs by curl, one with Expect: 100-continue
#     (Jetty's interim "HTTP/1.1 100 Continue" counts in bytes_out); six
#     slow requests at once; templated routes (/items/{id}); static files
#     of 6 and 1,200,000 bytes; 8 MiB to a slow reader (exact bytes_out,
#     duration between bounds the client measures) and the same cut short
#     by the client (aborted); Jetty's idle timeout (1 s here) closing a
#     connection idle after a request (nothing more), a silent one
#     (nothing), one inside a request head (aborted, status 0) and one
#     inside a POST body (Jetty's 500); responses byte-identical with and
#     without the preload (Date masked).
#  2. six async requests at once (startAsync(), answered and completed
#     from another thread), and one past its async timeout, answered 500
#     by Jetty itself.
#  3. HTTP/2 with prior knowledge: nghttp, seven streams at once on one
#     connection (the 1.2 MB file, a 404, a 500), a 1 MiB POST, a HEAD, an
#     async timeout, trailers, a response broken after it began (Jetty's
#     RST_STREAM): per stream exact status, bytes_in and bytes_out from
#     nghttp's frame trace (client WINDOW_UPDATEs may arrive after the end
#     of their stream: a range of those); a stream the client resets once
#     Jetty filled its flow-control window (aborted, exact bytes), then a
#     GET on that connection (h2rst.py, frames by hand); h2load with 8
#     async streams at once on one connection (each >= its sleep, all in
#     flight together), 16 slow ones 4 at a time on each of 2 connections
#     and 100 at once on one. curl --http2 (Upgrade: h2c, which Jetty
#     accepts): only the upgrading request is recorded, with its 101
#     (README, HTTP/2).
# Exact counts per method and route, statuses, error counts and types.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 java javac h2load nghttp
ap_require_build

J=/usr/share/java
JETTY_CP=$J/servlet-api.jar:$J/jetty9-server.jar:$J/jetty9-servlet.jar:$J/jetty9-security.jar:$J/jetty9-http.jar
JETTY_CP=$JETTY_CP:$J/jetty9-io.jar:$J/jetty9-util.jar:$J/jetty9-http2-server.jar:$J/jetty9-http2-common.jar
JETTY_CP=$JETTY_CP:$J/jetty9-http2-hpack.jar
if [ ! -r "$J/jetty9-server.jar" ] || [ ! -r "$J/jetty9-http2-server.jar" ]; then
	[ "$(id -u)" -eq 0 ] && ap_fail "$J/jetty9-*.jar are missing (scripts/test.sh installs libjetty9-java)"
	ap_skip "$J/jetty9-*.jar are missing (install libjetty9-java, or run scripts/test.sh as root)"
fi

CLS=$AP_TMP/classes
javac -J-XX:TieredStopAtLevel=1 -cp "$JETTY_CP" -d "$CLS" "$AP_SRCDIR/tests/servers/JettyServer.java" \
	>"$AP_TMP/javac.log" 2>&1 || ap_fail "javac failed: $(cat "$AP_TMP/javac.log")"

DOC=$AP_TMP/doc
mkdir -p "$DOC/static"
BIG_SIZE=1200000
head -c "$BIG_SIZE" /dev/urandom >"$DOC/static/big.bin"
printf 'small\n' >"$DOC/static/small.txt"
head -c 1048576 /dev/urandom >"$AP_TMP/post-1m.bin"
HUGE_SIZE=8388608
head -c "$HUGE_SIZE" /dev/urandom >"$DOC/static/huge.bin"

# jetty_bg NAME PRELOAD(1|0) PORT : the server in the background, stdout in
# NAME.log and stderr (Jetty's own log) in NAME.err; sets AP_BG_PID.
jetty_bg() {
	local run=ap_bg
	[ "$2" = 1 ] && run=ap_bg_preloaded
	"$run" "$1" bash -c 'exec "$@" 2>"$0"' "$AP_TMP/$1.err" java -XX:TieredStopAtLevel=1 \
		-XX:-CreateCoredumpOnCrash -Djetty.idleTimeout=1000 -cp "$CLS:$JETTY_CP" JettyServer "$3" "$DOC"
}

ap_start_collector
PORT=$(ap_free_port)
jetty_bg jetty 1 "$PORT"
JETTY_PID=$AP_BG_PID
PLAIN_PORT=$(ap_free_port)
jetty_bg plain 0 "$PLAIN_PORT"
ap_wait_log jetty '^listening on'
ap_wait_log plain '^listening on'
B=http://127.0.0.1:$PORT
ap_log "collector $AP_URL, Jetty on $PORT (pid $JETTY_PID), without the preload on $PLAIN_PORT"

# 1i. Connections Jetty's idle timeout (1 s here) closes, in the
#     background: one idle after a request (nothing more recorded), one
#     that never sends a byte (nothing), one stopped inside a request head
#     (the request began at its first byte and is never answered: aborted,
#     status 0, README: Aborts), and a POST stopped halfway through its
#     body (the servlet's read fails: Jetty's 500, "Connection: close").
cat >"$AP_TMP/idle.py" <<'PY'
# idle.py PORT BYTES : sends BYTES (\r\n escapes, "a*N" for N a's) and
# reads until the server closes; prints "SENT GOT SECONDS FIRST_LINE".
import socket, sys, time
data = sys.argv[2]
if data.startswith("a*"): data = "a" * int(data[2:])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
w = data.encode().decode("unicode_escape").encode("latin-1")
if w: s.sendall(w)
t = time.monotonic(); got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(len(w), len(got), "%.1f" % (time.monotonic() - t), (got.split(b"\r\n")[0].decode() or "-").replace(" ", "_"))
PY
IDLE_REQS=('GET /fast?idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' ''
	'GET /items/77 HTTP/1.1\r\nHost: 127.0.0.1\r\n'
	"POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n$(head -c 50000 /dev/zero | tr '\0' a)")
IDLE_PIDS=""
for i in 0 1 2 3; do
	ap_bg "idle$i" "$AP_PY" "$AP_TMP/idle.py" "$PORT" "${IDLE_REQS[$i]}"
	IDLE_PIDS="$IDLE_PIDS $AP_BG_PID"
done

# 2a. An async request that outlives its async timeout (200 ms): Jetty
#     answers 500 itself; the late answer is dropped.
ap_bg asynctimeout curl -s --max-time 20 -o /dev/null -w '%{http_code} %{size_header} %{size_download}\n' \
	"$B/async?ms=1500&timeout=200"
ASYNCTIMEOUT_PID=$AP_BG_PID

# 1a. Keep-alive: ten requests on one connection back to back (curl), then
#     ten 50 ms apart (each then found anew by the selector, and run by
#     whichever pool thread is producing).
ap_curl_many "$AP_TMP/ka.out" "$B/fast" "$B/fast" "$B/items/1" "$B/chunked" "$B/nowhere" \
	"$B/items/2" "$B/static/small.txt" "$B/static/big.bin" "$B/fast" "$B/items/3"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 404 200 200 200 200 200 "
cat >"$AP_TMP/seq.py" <<'PY'
# seq.py PORT GAP_MS PATH... : GETs on one connection, each sent GAP_MS
# after the previous answer (Content-Length or chunked); prints "STATUS
# REQUEST_BYTES RESPONSE_BYTES" per request.
import socket, sys, time
port, gap, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
buf = b""
def fill():
    global buf
    d = s.recv(65536)
    if not d: raise EOFError("connection closed")
    buf += d
def take(n):
    global buf
    while len(buf) < n: fill()
    out, buf = buf[:n], buf[n:]
    return out
def line(sep=b"\r\n"):
    while sep not in buf: fill()
    return take(buf.index(sep) + len(sep))
for p in paths:
    time.sleep(gap / 1000)
    w = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % p).encode()
    s.sendall(w)
    raw = line(b"\r\n\r\n")
    st = int(raw.split(b" ")[1])
    hdrs = dict((k.strip().lower(), v.strip()) for k, v in
                (h.split(b":", 1) for h in raw.split(b"\r\n")[1:] if b":" in h))
    if hdrs.get(b"transfer-encoding") == b"chunked":
        while True:
            l = line(); raw += l
            n = int(l.split(b";")[0], 16)
            raw += take(n + 2)
            if n == 0: break
    else:
        raw += take(int(hdrs.get(b"content-length", b"0")))
    print(st, len(w), len(raw))
PY
"$AP_PY" "$AP_TMP/seq.py" "$PORT" 50 /fast /items/4 /chunked /nowhere /static/small.txt /items/5 \
	/fast /chunked /static/small.txt /fast >"$AP_TMP/ka2.out" || ap_fail "seq.py failed"
ap_assert_eq "keep-alive statuses (50 ms apart)" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka2.out")" \
	"200 200 200 404 200 200 200 200 200 200 "
# (Lines "req N thread=NAME conn=PORT PROTOCOL METHOD PATH".)
ka_conn=$(awk '$1 == "req" && $7 == "/items/4" { print $4; exit }' "$AP_TMP/jetty.log")
ap_log "the 10 keep-alive requests 50 ms apart ran on $(awk -v c="$ka_conn" '$4 == c {print $3}' "$AP_TMP/jetty.log" | sort -u | wc -l) threads"

# 1b. Pipelined: four requests in one write.
ap_raw "$PORT" --pipeline "GET /fast" "GET /items/6" "HEAD /fast" \
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' >"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(cut -d' ' -f1 "$AP_TMP/pipe.out" | paste -sd' ')" "200 200 200 200"

# 1c. HEAD, Jetty's 404 and the 500 of a servlet that throws.
ap_raw "$PORT" "HEAD /fast" "GET /nowhere" "GET /error" >"$AP_TMP/misc.out"
# A head with a header line without a colon: Jetty answers 400 itself
# ("Illegal character SPACE") and closes.
BAD_REQ='GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n'
ap_raw "$PORT" "$BAD_REQ" >"$AP_TMP/bad.out"
ap_assert_eq "HEAD, 404, 500, 400" "$(cut -d' ' -f1 "$AP_TMP/misc.out" "$AP_TMP/bad.out" | paste -sd' ')" "200 404 500 400"
# After the 500 of an exception Jetty closes the connection: a GET
# pipelined behind it is never answered, and is recorded as aborted with
# status 0 (README, Aborts).
"$AP_PY" - "$PORT" >"$AP_TMP/errpipe.out" <<'PY' || ap_fail "the GET pipelined behind /error failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /error HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /fast?unanswered HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(got.count(b"HTTP/1.1 "), got.split(b" ")[1].decode())
PY
ap_assert_eq "GET /error and a GET pipelined behind it: responses, status" "$(cat "$AP_TMP/errpipe.out")" "1 500"
# A servlet that throws once its chunked response began: Jetty cannot end
# it and closes the connection (without even the last chunk's CRLF, which
# it writes in front of the next chunk's size): aborted, status 200,
# bytes_out all the client got.
"$AP_PY" - "$PORT" >"$AP_TMP/broken.out" <<'PY' || ap_fail "GET /broken failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
w = b"GET /broken HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
s.sendall(w)
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
print(got.split(b" ")[1].decode(), len(w), len(got), got.endswith(b"0\r\n\r\n"))
PY
read -r bst bin bout bend <"$AP_TMP/broken.out"
# A chunked response with trailer fields (Jetty's Response.setTrailers()),
# and a GET pipelined behind it: the trailers end the first response.
"$AP_PY" - "$PORT" >"$AP_TMP/trailers.out" <<'PY' || ap_fail "GET /trailers failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
w1 = b"GET /trailers HTTP/1.1\r\nHost: 127.0.0.1\r\nTE: trailers\r\n\r\n"
w2 = b"GET /fast?after-trailers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
s.sendall(w1 + w2)
got = b""
while not got.endswith(b"\r\n\r\nfast\n"):
    d = s.recv(65536)
    if not d: break
    got += d
i = got.index(b"HTTP/1.1", 1)
print(len(w1), i, len(w2), len(got) - i, b"\r\nx-checksum: c0ffee\r\n" in got[:i])
PY
read -r tin tout fin2 fout2 thas <"$AP_TMP/trailers.out"
# A chunked POST with trailer fields of its own, and a GET pipelined
# behind it: the request's trailers end its body.
"$AP_PY" - "$PORT" >"$AP_TMP/reqtrailers.out" <<'PY' || ap_fail "the chunked POST with trailers failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
w1 = (b"POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
      b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: abc\r\n\r\n")
w2 = b"GET /fast?after-request-trailers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
s.sendall(w1 + w2)
got = b""
while not got.endswith(b"\r\n\r\nfast\n"):
    d = s.recv(65536)
    if not d: break
    got += d
i = got.index(b"HTTP/1.1", 1)
print(len(w1), i, len(w2), len(got) - i, got[:i].split(b"\r\n\r\n")[1].decode().strip().replace(" ", "_"))
PY
read -r rtin rtout rfin rfout rtbody <"$AP_TMP/reqtrailers.out"
ap_assert_eq "the chunked POST with trailers: Jetty's answer" "$rtbody" "received_11"
ap_assert_eq "GET /trailers: the trailer fields came" "$thas" True
ap_assert_eq "GET /broken: status, response ended" "$bst $bend" "200 False"

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

# 1d, 2b. Six slow requests at once, and six async ones.
SLOW_MS=400
at_once 6 "$B/slow?ms=$SLOW_MS" slow
at_once 6 "$B/async?ms=$SLOW_MS" async

# 1e. 1 MiB POSTs by curl: without Expect, and with Expect: 100-continue
#     (Jetty's interim response, counted in curl's size_header).
for e in none 100; do
	hdr='Expect:'
	[ "$e" = 100 ] && hdr='Expect: 100-continue'
	curl -s --max-time 30 -H "$hdr" --data-binary @"$AP_TMP/post-1m.bin" -o "$AP_TMP/post-$e.body" \
		-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' "$B/post" \
		>"$AP_TMP/post-$e.out" || ap_fail "the 1 MiB POST ($e) failed"
	ap_assert_eq "the 1 MiB POST (Expect: $e): status, answer" \
		"$(cut -d' ' -f1 "$AP_TMP/post-$e.out") $(cat "$AP_TMP/post-$e.body")" "200 received 1048576"
done

# 1f. Byte-identical responses, Date masked.
RAW=("GET /fast" "HEAD /fast" "GET /items/7" "GET /chunked" "GET /nowhere" "GET /static/small.txt"
	"GET /static/big.bin" "GET /async?ms=1"
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' "GET /error")
ap_raw "$PORT" --dump "$AP_TMP/pre.raw" "${RAW[@]}" >"$AP_TMP/pre.out"
ap_raw "$PLAIN_PORT" --dump "$AP_TMP/plain.raw" "${RAW[@]}" >/dev/null
cmp -s "$AP_TMP/pre.raw" "$AP_TMP/plain.raw" ||
	ap_fail "responses differ with the preload: $(diff <(cat -v "$AP_TMP/plain.raw") <(cat -v "$AP_TMP/pre.raw") | head -20)"
ap_log "ok: ${#RAW[@]} responses ($(wc -c <"$AP_TMP/pre.raw") bytes) byte-identical with and without the preload"

# 1g. An 8 MiB file to a client that reads 64 KiB every 5 ms with a 64 KiB
#     receive buffer: Jetty's writev() fills the send buffer and returns
#     short; the rest is written as the client reads, when the selector
#     finds the socket writable again (the callback on a pool thread).
#     Then the same, cut short by the client after 1 MB.
cat >"$AP_TMP/slowget.py" <<'PY'
# slowget.py PORT PATH [STOP] : GETs PATH with SO_RCVBUF 64 KiB, reading
# 64 KiB every 5 ms (until STOP bytes came, then closes, if given); prints
# "REQUEST_BYTES RESPONSE_BYTES T_END_MS", then per 64 KiB read "READ_BYTES
# T_MS" (times since the request was sent).
import socket, sys, time
port, path, stop = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(20)
s.connect(("127.0.0.1", port))
w = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
t0 = time.monotonic()
s.sendall(w)
got = 0; marks = []; next_mark = 0
while True:
    d = s.recv(65536)
    if not d or (stop and got >= stop): break
    got += len(d)
    now = (time.monotonic() - t0) * 1000
    while got >= next_mark:
        marks.append((next_mark, now)); next_mark += 65536
    time.sleep(0.005)
print(len(w), got, "%.1f" % ((time.monotonic() - t0) * 1000))
for b, t in marks: print(b, "%.1f" % t)
PY
"$AP_PY" "$AP_TMP/slowget.py" "$PORT" /static/huge.bin >"$AP_TMP/slowget.out" || ap_fail "slowget.py failed"
"$AP_PY" "$AP_TMP/slowget.py" "$PORT" /static/huge.bin 1000000 >"$AP_TMP/slowcut.out" || ap_fail "slowget.py failed"

# 1h. HTTP/1.1 "Upgrade: h2c" (curl --http2), which Jetty accepts: its 101,
#     then the answer on stream 1, then a second request on the connection,
#     now HTTP/2. README (HTTP/2, h2c by Upgrade): only the upgrading
#     request is recorded, with its 101.
curl -s --http2 --max-time 10 -o /dev/null -w '%{http_code} %{http_version} %{num_connects}\n' "$B/fast?upgrade" \
	-o /dev/null "$B/items/99" >"$AP_TMP/upgrade.out" || ap_fail "curl --http2 failed"
ap_assert_eq "curl --http2 (Upgrade: h2c): statuses, versions, connections" "$(paste -sd' ' "$AP_TMP/upgrade.out")" \
	"200 2 1 200 2 0"

# 3. HTTP/2 with prior knowledge, on the same port. nghttp: seven streams
#    at once on one connection (after its PRIORITY frames for the idle
#    streams 3 to 11, which are no requests), the 1.2 MB file among them
#    (DATA frames of 16 KiB), Jetty's 404 and 500; then a 1 MiB POST
#    (flow control: WINDOW_UPDATEs from Jetty on its stream). From
#    nghttp's -v trace, per stream: path, status and the frames either
#    side sent on it, 9-byte headers included (README, HTTP/2: bytes_in
#    and bytes_out). Then h2load: eight async requests at once on one
#    connection, and 16 slow ones 4 at a time on each of 2 connections.
H=http://127.0.0.1:$PORT
nghttp -nv "$H/fast" "$H/nowhere" "$H/static/big.bin" "$H/chunked" "$H/error" "$H/items/8" "$H/fast?h2" \
	>"$AP_TMP/h2.trace" 2>&1 || ap_fail "nghttp failed: $(tail -5 "$AP_TMP/h2.trace")"
nghttp -nv -d "$AP_TMP/post-1m.bin" "$H/post" >>"$AP_TMP/h2.trace" 2>&1 ||
	ap_fail "nghttp's POST failed: $(tail -5 "$AP_TMP/h2.trace")"
nghttp -nv -H ':method: HEAD' "$H/fast" >>"$AP_TMP/h2.trace" 2>&1 || ap_fail "nghttp's HEAD failed"
nghttp -nv "$H/async?ms=1500&timeout=200" >>"$AP_TMP/h2.trace" 2>&1 || ap_fail "nghttp's async GET failed"
# (Over HTTP/2 the broken response ends with Jetty's RST_STREAM.)
nghttp -nv "$H/broken" >>"$AP_TMP/h2.trace" 2>&1
# (And the trailers are a HEADERS frame with END_STREAM.)
nghttp -nv "$H/trailers" >>"$AP_TMP/h2.trace" 2>&1 || ap_fail "nghttp's GET /trailers failed"
grep -q 'recv RST_STREAM frame.*stream_id=13>' "$AP_TMP/h2.trace" || ap_fail "no RST_STREAM from Jetty for /broken over HTTP/2"
# "PATH STATUS IN IN_WU OUT OUT_WU" per stream of the trace (streams are
# numbered anew per connection: the POST's connection starts over at 13):
# the bytes of the frames each side sent on it, WINDOW_UPDATEs apart
# (_WU). A WINDOW_UPDATE the client sends while the last DATA frames
# arrive may reach Jetty after it wrote the END_STREAM that ended the
# request, and then counts for none (README, HTTP/2: a stream ends at that
# write).
awk '/ Connected$/ { c++ }
	match($0, /(send|recv) [A-Z_]+ frame <length=[0-9]+, flags=0x[0-9a-f]+, stream_id=[0-9]+>/) {
		f = substr($0, RSTART, RLENGTH); split(f, w, /[ =,>]+/)
		# w: 1 dir, 2 type, 3 "frame", 4 "<length", 5 N, 6 flags, 7 F, 8 stream_id, 9 S
		s = c "/" w[9]; last = s; dir = w[1]
		wu = w[2] == "WINDOW_UPDATE" ? "wu" : ""
		if (w[9] != 0) { if (dir == "send") bin[s wu] += w[5] + 9; else bout[s wu] += w[5] + 9 }
		next }
	dir == "send" && $1 == ":method:" { method[last] = $2 }
	dir == "send" && $1 == ":path:" { p = $2; sub(/\?.*/, "", p); path[last] = p; order[++n] = last }
	/recv \(stream_id=[0-9]+\) :status: / { match($0, /stream_id=[0-9]+/)
		st[c "/" substr($0, RSTART + 10, RLENGTH - 10)] = $NF }
	END { for (i = 1; i <= n; i++) { s = order[i]; print method[s], path[s], st[s], bin[s] + 0, bin[s "wu"] + 0, bout[s] + 0, bout[s "wu"] + 0 } }' \
	"$AP_TMP/h2.trace" | sort >"$AP_TMP/h2.streams"
ap_assert_eq "nghttp's streams: statuses" "$(awk '{print $1, $2, $3}' "$AP_TMP/h2.streams" | paste -sd,)" \
	"GET /async 500,GET /broken 200,GET /chunked 200,GET /error 500,GET /fast 200,GET /fast 200,GET /items/8 200,GET /nowhere 404,GET /static/big.bin 200,GET /trailers 200,HEAD /fast 200,POST /post 200"
# A stream the client resets (RST_STREAM CANCEL) once Jetty has filled its
# flow-control window (65,535 bytes of the 8 MiB file; nothing more can
# be sent), then a GET on the same connection: the first is aborted with
# exactly the frames sent on it, the second is whole.
cat >"$AP_TMP/h2rst.py" <<'PY'
# h2rst.py PORT : HTTP/2 by hand (no library): GET /static/huge.bin on
# stream 1, read until the server has filled the stream's initial window
# (65,535 bytes of DATA), then RST_STREAM(CANCEL) it; then GET /fast on
# stream 3, read its answer, close. Prints per stream "STREAM STATUS_BYTE
# IN OUT" where IN and OUT are the bytes of the frames either side sent on
# that stream, 9-byte headers included.
import socket, struct, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def frame(t, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
def hpack_get(path):
    # :method GET, :scheme http (static indexed); :path, :authority literal
    # without indexing, name from the static table.
    p = path.encode(); a = b"127.0.0.1"
    return b"\x82\x86" + b"\x04" + bytes([len(p)]) + p + b"\x01" + bytes([len(a)]) + a
sent = {}; got = {}; status = {}
def send(t, flags, sid, payload):
    f = frame(t, flags, sid, payload)
    if sid: sent[sid] = sent.get(sid, 0) + len(f)
    s.sendall(f)
buf = b""
def read_frame():
    global buf
    while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
        d = s.recv(65536)
        if not d: raise EOFError
        buf += d
    n = int.from_bytes(buf[:3], "big")
    t, fl = buf[3], buf[4]; sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
    payload = buf[9:9 + n]; buf = buf[9 + n:]
    if sid: got[sid] = got.get(sid, 0) + 9 + n
    if t == 4 and not fl & 1: s.sendall(frame(4, 1, 0, b""))  # SETTINGS ack
    return t, fl, sid, payload
# The connection's window opened wide: only the stream's own (65,535) binds.
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(8, 0, 0, struct.pack(">I", 1 << 24)))
send(1, 5, 1, hpack_get("/static/huge.bin"))
data = 0
while data < 65535:
    t, fl, sid, p = read_frame()
    if sid == 1 and t == 1: status[1] = p[:1].hex()
    if sid == 1 and t == 0: data += len(p)
send(3, 0, 1, struct.pack(">I", 8))  # RST_STREAM CANCEL
send(1, 5, 3, hpack_get("/fast"))
while True:
    t, fl, sid, p = read_frame()
    if sid == 3 and t == 1: status[3] = p[:1].hex()
    if sid == 3 and fl & 1: break
# Not closed at once: the close could be read (and end the connection)
# before the preload counted the write that ended stream 3, made on
# another thread (README, What it cannot see). A PING's round trip, then
# 50 ms, first.
s.sendall(frame(6, 0, 0, b"apiprof!"))
while True:
    t, fl, sid, p = read_frame()
    if t == 6 and fl & 1: break
time.sleep(0.05)
s.close()
for sid in (1, 3): print(sid, status.get(sid), sent.get(sid, 0), got.get(sid, 0))
PY
"$AP_PY" "$AP_TMP/h2rst.py" "$PORT" >"$AP_TMP/h2rst.out" || ap_fail "h2rst.py failed"
H2_START_MS=$(date +%s%3N)
h2load -n 8 -c 1 -m 8 "$H/async?ms=$SLOW_MS" >"$AP_TMP/h2load-async.out" 2>&1 || ap_fail "h2load failed"
h2load -n 16 -c 2 -m 4 "$H/slow?ms=100" >"$AP_TMP/h2load-slow.out" 2>&1 || ap_fail "h2load failed"
h2load -n 100 -c 1 -m 100 "$H/slow?ms=300" >"$AP_TMP/h2load-slow100.out" 2>&1 || ap_fail "h2load failed"
for f in async slow slow100; do
	grep -q '^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' "$AP_TMP/h2load-$f.out" &&
		grep -q '^requests: .* 0 failed, 0 errored' "$AP_TMP/h2load-$f.out" ||
		ap_fail "h2load ($f): $(grep -E '^(requests|status codes):' "$AP_TMP/h2load-$f.out")"
done

wait "$ASYNCTIMEOUT_PID"
for p in $IDLE_PIDS; do
	wait "$p" || ap_fail "idle.py failed: $(cat "$AP_TMP"/idle?.log)"
done
ap_assert_eq "connections closed by Jetty's idle timeout: first lines" \
	"$(awk '{printf "%s ", $4}' "$AP_TMP/idle0.log" "$AP_TMP/idle1.log" "$AP_TMP/idle2.log" "$AP_TMP/idle3.log")" \
	"HTTP/1.1_200_OK - - HTTP/1.1_500_Server_Error "
ap_log "ok: closed after $(awk '{printf "%s ", $3}' "$AP_TMP"/idle?.log)s"
read -r at_code at_hdr at_body <"$AP_TMP/asynctimeout.log"
ap_assert_eq "the async request past its timeout: status" "$at_code" 500

ap_expect_counts <<EOF
GET /fast 17
HEAD /fast 4
GET /items/{id} 9
GET /chunked 5
GET /nowhere 5
GET /static/small.txt 4
GET /static/big.bin 3
GET /static/huge.bin 3
POST /post 7
GET /error 4
GET /broken 2
GET /trailers 2
GET /slow 122
GET /async 17
EOF
# All of the service's requests at once (one query, then jq per check):
# reqs_of ROUTE [METHOD] is ap_requests ROUTE [METHOD] on that copy.
ap_api /api/v1/requests --data-urlencode "limit=1000" >"$AP_TMP/requests.json"
reqs_of() {
	jq --arg s "$AP_SERVICE" --arg r "$1" --arg m "${2:-}" \
		'[.requests[] | select(.service == $s and .route == $r and ($m == "" or .method == $m))]' "$AP_TMP/requests.json"
}
ap_assert_eq "requests listed" "$(jq --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s)] | length' "$AP_TMP/requests.json")" \
	"$(jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add' "$AP_TMP/endpoints.json")"
ap_assert_eq "errors of the service" \
	"$(ap_api /api/v1/errors | jq -c --arg s "$AP_SERVICE" '[.errors[] | select(.service == $s) | [.method, .route, .type, .count]] | sort')" \
	'[["GET","/async","HTTP 500",2],["GET","/broken","aborted",2],["GET","/error","HTTP 500",4],["GET","/fast","aborted",1],["GET","/items/{id}","aborted",1],["GET","/static/huge.bin","aborted",2],["POST","/post","HTTP 500",1]]'
ap_assert_jq "the h2c upgrade: GET /fast recorded once with its 101, not aborted, and nothing after it" \
	'[.[] | select(.status == 101)] | length == 1 and (.[0].error | not)' "$(reqs_of /fast GET)"
ap_assert_jq "the GET pipelined behind the 500: aborted, status 0, bytes_out 0" \
	'[.[] | select(.error)] | length == 1 and .[0].status == 0 and .[0].bytes_out == 0' "$(reqs_of /fast GET)"

statuses() { reqs_of "$1" "${2:-GET}" | jq -c '[.[].status] | sort | unique'; }
ap_assert_eq "statuses of /nowhere, /error" "$(statuses /nowhere) $(statuses /error)" "[404] [500]"
# all_out ROUTE METHOD BYTES N : N requests of ROUTE (its HTTP/1.1 ones)
# sent BYTES each.
all_out() {
	ap_assert_jq "$2 $1: bytes_out $3 ($4 of them)" \
		"[.[] | select(.bytes_out == $3)] | length == $4" "$(reqs_of "$1" "$2")"
}
# The HTTP/2 streams: each exactly one request of its route with its
# status, bytes_in and bytes_out (plus none, some or all of the
# WINDOW_UPDATEs on the stream, 13 bytes each).
sort "$AP_TMP/h2.streams" | uniq -c | while read -r k m path st bin binwu bout boutwu; do
	route=$path
	[ "${path#/items/}" != "$path" ] && route='/items/{id}'
	ap_assert_jq "HTTP/2 $m $path: $k stream(s), status $st, bytes_in $bin (+ $binwu), bytes_out $bout (+ $boutwu)" \
		"[.[] | select(.status == $st and .bytes_in >= $bin and .bytes_in <= $bin + $binwu and (.bytes_in - $bin) % 13 == 0
		  and .bytes_out >= $bout and .bytes_out <= $bout + $boutwu and (.bytes_out - $bout) % 13 == 0)] | length == $k" \
		"$(reqs_of "$route" "$m")"
done
all_out /fast HEAD "$(awk 'NR == 1 {print $2}' "$AP_TMP/misc.out")" 3
all_out /chunked GET "$(awk 'NR == 3 {print $3}' "$AP_TMP/ka2.out")" 4
all_out /nowhere GET "$(awk 'NR == 2 {print $2}' "$AP_TMP/misc.out")" 4
all_out /error GET "$(awk 'NR == 3 {print $2}' "$AP_TMP/misc.out")" 3
all_out /static/small.txt GET "$(awk 'NR == 5 {print $3}' "$AP_TMP/ka2.out")" 4
read -r _ _ _ _ bhdr bbody < <(sed -n 8p "$AP_TMP/ka.out")
[ "$bbody" = "$BIG_SIZE" ] || ap_fail "curl got $bbody bytes of big.bin"
all_out /static/big.bin GET "$((bhdr + bbody))" 2
ap_assert_jq "GET /items/{id}: bytes_in and bytes_out exact for the 50 ms apart ones" \
	"[.[] | select(.bytes_in == $(awk 'NR == 2 {print $2}' "$AP_TMP/ka2.out") and .bytes_out == $(awk 'NR == 2 {print $3}' "$AP_TMP/ka2.out"))] | length == 2" \
	"$(reqs_of '/items/{id}' GET)"
# The slow transfer: the whole file in bytes_out; the request ended with
# Jetty's last writev(), after the client had read all but what the send
# buffer (at most tcp_wmem's maximum) and its receive buffer (64 KiB,
# doubled by the kernel) hold, and before the client had the last byte.
# (The lower bound: the time of the last 64 KiB mark the client passed
# before that, less 50 ms for a loaded machine.)
read -r sreq sresp send_ms <"$AP_TMP/slowget.out"
[ "$sresp" -gt "$HUGE_SIZE" ] || ap_fail "the slow reader got $sresp bytes, less than the file"
wmem_max=$(awk '{print $3}' /proc/sys/net/ipv4/tcp_wmem)
must_read=$((sresp - wmem_max - 131072))
low_ms=$(awk -v m="$must_read" 'NR > 1 && $1 <= m { t = $2 } END { print t - 50 }' "$AP_TMP/slowget.out")
reqs=$(reqs_of /static/huge.bin GET)
ap_assert_jq "GET /static/huge.bin to a slow reader: bytes_in $sreq, bytes_out $sresp, duration $(jq '.[] | select(.error | not) | .duration_ms' <<<"$reqs") ms, between $low_ms and $send_ms" \
	"[.[] | select(.error | not)] | length == 1 and .[0].status == 200 and .[0].bytes_in == $sreq
	 and .[0].bytes_out == $sresp and .[0].duration_ms >= $low_ms and .[0].duration_ms <= $send_ms + 2
	 and $low_ms > 100" "$reqs"
read -r creq cgot _ <"$AP_TMP/slowcut.out"
ap_assert_jq "GET /static/huge.bin cut short by the client after $cgot bytes: aborted, status 200, bytes_in $creq, bytes_out from $cgot to less than $sresp" \
	"[.[] | select(.error and .bytes_in == $creq)] | length == 1 and .[0].status == 200
	 and .[0].bytes_out >= $cgot and .[0].bytes_out < $sresp" "$reqs"
read -r _ _ rin rout < <(sed -n 1p "$AP_TMP/h2rst.out")
# Its bytes_out is at most what the client got: Jetty's selector thread
# reads the RST_STREAM while a pool thread writes, and a write whose call
# returned but whose bytes the preload has not yet counted when the reset
# is read counts for none (README, What it cannot see: seen in 10 of 40
# tries on a loaded machine, 32,881 of 65,666 bytes).
ap_assert_jq "the HTTP/2 stream reset by the client: aborted, status 200, bytes_in $rin, bytes_out at most $rout" \
	"[.[] | select(.error and .bytes_in == $rin)] | length == 1 and .[0].status == 200
	 and .[0].bytes_out > 0 and .[0].bytes_out <= $rout" "$(reqs_of /static/huge.bin GET)"
ap_log "the reset stream's bytes_out: $(reqs_of /static/huge.bin GET | jq "[.[] | select(.error and .bytes_in == $rin)][0].bytes_out") of $rout"
read -r _ _ fin fout < <(sed -n 2p "$AP_TMP/h2rst.out")
bad_len=$(printf '%b' "$BAD_REQ" | wc -c)
reqs=$(reqs_of /fast GET)
ap_assert_jq "the GET after it on the connection: 200, bytes_in $fin, bytes_out $fout" \
	"[.[] | select(.bytes_in == $fin and .bytes_out == $fout)] | length == 1 and (.[0].error | not) and .[0].status == 200" "$reqs"
ap_assert_jq "GET /fast with a malformed head: Jetty's 400, bytes_in $bad_len (all of it), bytes_out $(awk '{print $2}' "$AP_TMP/bad.out")" \
	"[.[] | select(.status == 400)] | length == 1 and .[0].bytes_in == $bad_len
	 and .[0].bytes_out == $(awk '{print $2}' "$AP_TMP/bad.out") and (.[0].error | not)" "$reqs"
ap_assert_jq "GET /broken over HTTP/1.1: aborted, status 200, bytes_in $bin, bytes_out $bout" \
	"[.[] | select(.bytes_in == $bin)] | length == 1 and .[0].error and .[0].status == 200 and .[0].bytes_out == $bout" \
	"$(reqs_of /broken GET)"
ap_assert_jq "GET /broken over HTTP/2: aborted (Jetty's RST_STREAM)" \
	'[.[] | select(.error)] | length == 2' "$(reqs_of /broken GET)"
ap_assert_jq "GET /trailers over HTTP/1.1: bytes_in $tin, bytes_out $tout (the trailers included)" \
	"[.[] | select(.bytes_in == $tin and .bytes_out == $tout and .status == 200 and (.error | not))] | length == 1" \
	"$(reqs_of /trailers GET)"
ap_assert_jq "the GET pipelined behind it: bytes_in $fin2, bytes_out $fout2" \
	"[.[] | select(.bytes_in == $fin2 and .bytes_out == $fout2 and .status == 200)] | length == 1" "$(reqs_of /fast GET)"
ap_assert_jq "the GET pipelined behind the POST with trailers: bytes_in $rfin, bytes_out $rfout" \
	"[.[] | select(.bytes_in == $rfin and .bytes_out == $rfout and .status == 200)] | length == 1" "$(reqs_of /fast GET)"
ap_assert_jq "the request head cut short, closed by Jetty's idle timeout: aborted, status 0, bytes_in $(awk '{print $1}' "$AP_TMP/idle2.log")" \
	"[.[] | select(.error)] | length == 1 and .[0].status == 0 and .[0].bytes_out == 0
	 and .[0].bytes_in == $(awk '{print $1}' "$AP_TMP/idle2.log")" "$(reqs_of '/items/{id}' GET)"
ap_assert_jq "the POST body cut short: Jetty's 500, an error" \
	"[.[] | select(.status == 500)] | length == 1 and .[0].error" "$(reqs_of /post POST)"
# POSTs: the pipelined and raw ones exactly their own bytes; curl's 1 MiB
# ones what curl sent and got (with 100-continue: the interim 100 too).
# (The HTTP/1.1 ones: the HTTP/2 one was checked with the streams.)
post_len=$(printf 'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' | wc -c)
pout=$(awk 'NR == 4 {print $2}' "$AP_TMP/pipe.out")
read -r _ nreq nup nhdr ndown <"$AP_TMP/post-none.out"
read -r _ ereq eup ehdr edown <"$AP_TMP/post-100.out"
ap_assert_eq "POST /post over HTTP/1.1: [bytes_in, bytes_out]" \
	"$(reqs_of /post POST | jq -c --argjson h2 "$(awk '$2 == "/post" {print $4}' "$AP_TMP/h2.streams")" \
		'[.[] | select(.bytes_in != $h2) | [.bytes_in, .bytes_out]] | sort')" \
	"$(jq -c -n "[[$post_len, $pout], [$post_len, $pout], [$rtin, $rtout], [$(awk '{print $1 ", " $2}' "$AP_TMP/idle3.log")], [$((nreq + nup)), $((nhdr + ndown))],
		[$((ereq + eup)), $((ehdr + edown))]] | sort")"
# Slow and async requests: each at least its sleep, all in flight at once.
in_flight='[.[] | (.ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$")
	  | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)) as $t | {t: $t, e: ($t + .duration_ms)}]
	 | (map(.t) | max) < (map(.e) | min)'
reqs=$(reqs_of /async GET)
ap_assert_jq "the async request past its timeout (HTTP/1.1): status 500, bytes_out $((at_hdr + at_body)), duration >= 200 ms" \
	"[.[] | select(.status == 500 and .bytes_out == $((at_hdr + at_body)))] | length == 1 and .[0].error
	 and .[0].duration_ms >= 200 and .[0].duration_ms < 1500" "$reqs"
# (HTTP/1.1 ones started before $H2_START_MS, HTTP/2 ones after.)
ts_ms='(.ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber))'
for r in slow async; do
	reqs=$(reqs_of "/$r" GET | jq "[.[] | select($ts_ms < $H2_START_MS and .status == 200 and .duration_ms >= 100)]")
	ap_assert_jq "6 $r requests: duration >= $SLOW_MS ms" \
		"length == 6 and all(.[]; .status == 200 and .duration_ms >= $SLOW_MS and .duration_ms < 10000)" "$reqs"
	ap_assert_jq "the 6 $r requests in flight at once: each started before any ended" "$in_flight" "$reqs"
done
reqs=$(reqs_of /async GET | jq "[.[] | select($ts_ms >= $H2_START_MS)]")
ap_assert_jq "8 HTTP/2 async streams on one connection: status 200, duration >= $SLOW_MS ms" \
	"length == 8 and all(.[]; .status == 200 and .duration_ms >= $SLOW_MS and .duration_ms < 10000)" "$reqs"
ap_assert_jq "the 8 HTTP/2 async streams in flight at once" "$in_flight" "$reqs"
ap_assert_jq "116 HTTP/2 slow streams (100 at once on one connection): status 200, duration >= 100 ms" \
	"length == 116 and all(.[]; .status == 200 and .duration_ms >= 100 and .duration_ms < 10000)" \
	"$(reqs_of /slow GET | jq "[.[] | select($ts_ms >= $H2_START_MS)]")"
ap_log "PASS"
