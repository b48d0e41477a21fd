#!/bin/bash
# The preload in embedded Apache Tomcat 10 (Debian's libtomcat10-embed-java,
# on OpenJDK 17), with a small server compiled here
# (tests/servers/TomcatServer.java): the HTTP/1.1 NIO connector
# (Http11NioProtocol) on 127.0.0.1, Tomcat's own worker pool, an acceptor
# thread and a poller thread, non-blocking read() and write().
#  1. keep-alive: ten requests back to back (curl: one worker thread
#     usually serves them all) and ten 50 ms apart, whose consecutive
#     requests run on different worker threads (the server's log proves
#     it); four pipelined requests; routes with ids, 204, 304, HEAD,
#     Tomcat's own 404 (the DefaultServlet's) and 500 (a servlet that
#     throws; Tomcat then closes the connection), a chunked response
#     (flushBuffer(), no Content-Length), and the same route over
#     HTTP/1.0, which Tomcat ends by closing.
#  2. six slow requests in flight at once, and six async ones
#     (startAsync(), answered and completed from another thread); an
#     async request past its async timeout, answered 500 by Tomcat itself;
#     a client that leaves while its request runs.
#  3. 3 MiB POSTs read whole: fixed-length, chunked, and curl's with
#     Expect: 100-continue (Tomcat's interim "HTTP/1.1 100 ", no reason
#     phrase); POSTs answered without reading their body: Tomcat swallows
#     a body of up to 2 MiB (maxSwallowSize) after the response and the
#     connection goes on; past that it answers "Connection: close".
#  4. static files by the DefaultServlet, which sends a file of 48 KiB or
#     more (its sendfileSize) with FileChannel.transferTo(), that is
#     sendfile64() in libnio. Checked once by hand (strace -f -e
#     trace=sendfile,write on the JVM, thread names from jcmd
#     Thread.print): a 200 KiB file is a write() of the 178-byte head,
#     then sendfile(fd, file, [0] => [204800], 204800) = 204800, both on
#     the worker thread (exec-N); an 8 MiB file to a slow reader is one
#     sendfile() of about 4 MB on the worker, then 4 more from the
#     "Poller" thread as the client reads. Both are here, with a small
#     file (write()) and ranges (one by sendfile from an offset, two as
#     multipart/byteranges): exact bytes_out, the slow transfer's duration
#     between bounds the client measures, and the same transfer cut short
#     by the client: one aborted request.
#  5. Tomcat's keep-alive timeout (1 s) closing an idle connection after a
#     request adds no request and no abort; its connection timeout (2 s)
#     closing a connection that sent nothing adds nothing.
#  6. responses byte-identical with and without the preload (Date masked).
# Exact counts per method and route, statuses, error counts and types.
# AP_TOMCAT_PROTOCOL=org.apache.coyote.http11.Http11Nio2Protocol runs it
# all with the NIO.2 connector instead (it passes; not part of make check).
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 java javac
ap_require_build

TOMCAT_JAR=/usr/share/java/tomcat10-embed-core.jar
TOMCAT_PROTOCOL=${AP_TOMCAT_PROTOCOL:-org.apache.coyote.http11.Http11NioProtocol}
if [ ! -r "$TOMCAT_JAR" ]; then
	[ "$(id -u)" -eq 0 ] && ap_fail "$TOMCAT_JAR is missing (scripts/test.sh installs libtomcat10-embed-java)"
	ap_skip "$TOMCAT_JAR is missing (install libtomcat10-embed-java, or run scripts/test.sh as root)"
fi

CLS=$AP_TMP/classes
javac -J-XX:TieredStopAtLevel=1 -cp "$TOMCAT_JAR" -d "$CLS" "$AP_SRCDIR/tests/servers/TomcatServer.java" \
	>"$AP_TMP/javac.log" 2>&1 || ap_fail "javac failed: $(cat "$AP_TMP/javac.log")"

DOC=$AP_TMP/doc
mkdir -p "$DOC/static"
BIG_SIZE=204800
HUGE_SIZE=8388608
head -c "$BIG_SIZE" /dev/urandom >"$DOC/static/big.bin"
head -c "$HUGE_SIZE" /dev/urandom >"$DOC/static/huge.bin"
printf 'a small static file\n' >"$DOC/static/small.txt"
head -c 3145728 /dev/urandom >"$AP_TMP/post-3m.bin"
head -c 102400 /dev/urandom >"$AP_TMP/post-100k.bin"

# tomcat_bg NAME PRELOAD(1|0) PORT : the server in the background, stdout
# in NAME.log and stderr (Tomcat's own log) in NAME.err; sets AP_BG_PID
# (the JVM's own pid).
tomcat_bg() {
	local run=ap_bg
	[ "$2" = 1 ] && run=ap_bg_preloaded
	"$run" "$1" bash -c 'exec "$@" 2>"$0"' "$AP_TMP/$1.err" java -XX:TieredStopAtLevel=1 \
		-XX:-CreateCoredumpOnCrash -Dtomcat.protocol="$TOMCAT_PROTOCOL" -cp "$CLS:$TOMCAT_JAR" \
		TomcatServer "$3" "$AP_TMP/base-$1" "$DOC"
}

ap_start_collector
PORT=$(ap_free_port)
tomcat_bg tomcat 1 "$PORT"
TOMCAT_PID=$AP_BG_PID
PLAIN_PORT=$(ap_free_port)
tomcat_bg plain 0 "$PLAIN_PORT"
ap_wait_log tomcat '^listening on'
ap_wait_log plain '^listening on'
B=http://127.0.0.1:$PORT
ap_log "collector $AP_URL, Tomcat on $PORT (pid $TOMCAT_PID), without the preload on $PLAIN_PORT"

cat >"$AP_TMP/client.py" <<'PY'
# client.py PORT MODE ... : HTTP exchanges the curl command line cannot make.
#   seq PORT GAP_MS REQUEST... : "METHOD PATH" requests on one connection,
#       each sent GAP_MS after the previous answer; prints "STATUS
#       REQUEST_BYTES RESPONSE_BYTES" per request.
#   post PORT PATH FILE fixed|chunked[-late] [GETPATH]
#       POSTs FILE (chunked: in 65536-byte chunks), sending while reading
#       the answer (-late: the head, and the body only once the answer
#       came), then GETPATH on the same connection if given. Prints per
#       response "STATUS HEAD_BYTES REQUEST_BYTES RESPONSE_BYTES
#       CONNECTION BODY" (CONNECTION: the Connection header, or -), then
#       "sent" or "send failed" (the last send).
#   slowget PORT PATH RCVBUF CHUNK PAUSE_MS [STOP]
#       GETs PATH with SO_RCVBUF RCVBUF, reading CHUNK bytes every
#       PAUSE_MS (until STOP bytes came, then closes, if given); prints
#       "STATUS REQUEST_BYTES RESPONSE_BYTES T_END_MS", then per 64 KiB
#       read "READ_BYTES T_MS" (times since the request was sent).
#   idle PORT BYTES
#       sends BYTES (\r\n escapes) and reads until the server closes (up to
#       15 s); prints "closed after S s" or "open".
#   hangup PORT BYTES MS
#       sends BYTES (\r\n escapes) and closes MS ms later.
import socket, sys, threading, time

def reader(s):
    """A function reading the next response of the connection: (status,
    raw bytes). Knows HEAD, 1xx, 204, 304, chunked and Content-Length."""
    buf = b""
    def fill():
        nonlocal buf
        d = s.recv(65536)
        if not d: raise EOFError("connection closed")
        buf += d
    def take(n):
        nonlocal buf
        while len(buf) < n: fill()
        out, buf = buf[:n], buf[n:]
        return out
    def line(sep=b"\r\n"):
        while sep not in buf: fill()
        return take(buf.index(sep) + len(sep))
    def response(method="GET"):
        raw = line(b"\r\n\r\n")
        st = int(raw.split(b" ")[1])
        hdrs = {}
        for h in raw.split(b"\r\n")[1:]:
            if b":" in h:
                k, v = h.split(b":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if method == "HEAD" or st in (204, 304) or st < 200:
            return st, raw
        if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                l = line(); raw += l
                n = int(l.split(b";")[0], 16)
                raw += take(n + 2)
                if n == 0: return st, raw
        return st, raw + take(int(hdrs.get(b"content-length", b"0")))
    return response

def seq(port, gap, reqs):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    response = reader(s)
    for r in reqs:
        time.sleep(gap / 1000)
        m, path = r.split()
        w = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (m, path)).encode()
        s.sendall(w)
        st, raw = response(m)
        print(st, len(w), len(raw))

def post(port, path, fname, mode, then=None):
    data = open(fname, "rb").read()
    head = "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n" % path
    if mode.startswith("fixed"):
        head = (head + "Content-Length: %d\r\n\r\n" % len(data)).encode()
        body = data
    else:
        head = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
        parts = []
        for i in range(0, len(data), 65536):
            c = data[i:i + 65536]
            parts.append(b"%x\r\n" % len(c) + c + b"\r\n")
        parts.append(b"0\r\n\r\n")
        body = b"".join(parts)
    late = mode.endswith("-late")
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    sent = []
    def send(wire):
        try:
            s.sendall(wire); sent.append("sent")
        except OSError:
            sent.append("send failed")
    t = threading.Thread(target=send, args=(head if late else head + body,))
    t.start()
    response = reader(s)
    out = []
    st, raw = response()
    out.append((st, len(head), len(head) + len(body), raw))
    t.join()
    if late:
        send(body)
    if then:
        w = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % then).encode()
        s.sendall(w)
        st, raw = response()
        out.append((st, len(w), len(w), raw))
    for st, nh, n, raw in out:
        h, b = raw.split(b"\r\n\r\n", 1)
        conn = [l.split(b":", 1)[1].strip().decode() for l in h.split(b"\r\n")
                if l.lower().startswith(b"connection:")]
        print(st, nh, n, len(raw), (conn or ["-"])[0], b.decode("latin-1").strip())
    print(sent[-1])

def slowget(port, path, rcvbuf, chunk, pause, stop=0):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    w = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
    t0 = time.monotonic()
    s.sendall(w)
    got = 0; marks = []; next_mark = 0
    while True:
        d = s.recv(chunk)
        if not d or (stop and got >= stop): break
        got += len(d)
        now = (time.monotonic() - t0) * 1000
        while got >= next_mark:
            marks.append((next_mark, now)); next_mark += 65536
        time.sleep(pause / 1000)
    t_end = (time.monotonic() - t0) * 1000
    print(200, len(w), got, "%.1f" % t_end)
    for b, t in marks: print(b, "%.1f" % t)

def idle(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    if data: s.sendall(data.encode().decode("unicode_escape").encode("latin-1"))
    t = time.time()
    try:
        while s.recv(65536): pass
        print("closed after %.1f s" % (time.time() - t))
    except OSError as e:
        print("open: %r" % e)

def hangup(port, data, ms):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(data.encode().decode("unicode_escape").encode("latin-1"))
    time.sleep(ms / 1000)
    s.close()

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "seq": seq(port, int(sys.argv[3]), sys.argv[4:])
elif mode == "post": post(port, *sys.argv[3:])
elif mode == "slowget": slowget(port, sys.argv[3], *map(int, sys.argv[4:]))
elif mode == "idle": idle(port, sys.argv[3])
elif mode == "hangup": hangup(port, sys.argv[3], int(sys.argv[4]))
PY
client() { "$AP_PY" "$AP_TMP/client.py" "$@" || ap_fail "client.py $* failed"; }

# 5a. Connections Tomcat closes: one idle after a request (keep-alive
#     timeout, 1 s), one that never sends a byte (connection timeout, 2 s).
ap_bg idle "$AP_PY" "$AP_TMP/client.py" idle "$PORT" 'GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
IDLE_PID=$AP_BG_PID
ap_bg silent "$AP_PY" "$AP_TMP/client.py" idle "$PORT" ''
SILENT_PID=$AP_BG_PID
# 2a. An async request that outlives its async timeout (200 ms): Tomcat's
#     timeout thread (it checks about once a second) has it answered 500.
ap_bg asynctimeout curl -s --max-time 20 -o /dev/null -w '%{http_code} %{size_header} %{size_download}\n' \
	"$B/async?ms=2000&timeout=200"
ASYNCTIMEOUT_PID=$AP_BG_PID

# 1a. Keep-alive: ten requests on one connection, back to back (curl),
#     then ten more 50 ms apart. Back to back, one thread usually serves
#     them all: Tomcat's processor reads the next request before it gives
#     the connection back to the poller. 50 ms apart, the poller hands
#     each to the pool, whose idle workers take tasks in turn (the one
#     that served the last request waits behind the others), and
#     consecutive requests run on different threads.
ap_curl_many "$AP_TMP/ka.out" "$B/fast" "$B/fast" "$B/items/1" "$B/chunked" "$B/nocontent" \
	"$B/notmod" "$B/nowhere" "$B/items/2" "$B/static/small.txt" "$B/fast"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 200 204 304 404 200 200 200 "
client seq "$PORT" 50 "GET /fast" "GET /items/4" "GET /chunked" "HEAD /fast" "GET /nocontent" \
	"GET /notmod" "GET /nowhere" "GET /static/small.txt" "GET /items/5" "GET /fast" >"$AP_TMP/ka2.out"
ap_assert_eq "keep-alive statuses (50 ms apart)" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka2.out")" \
	"200 200 200 200 204 304 404 200 200 200 "
# (Lines "req N thread=NAME conn=PORT METHOD PATH".)
ka_conn=$(awk '$1 == "req" && $5 == "HEAD" && $6 == "/fast" { print $4; exit }' "$AP_TMP/tomcat.log")
awk -v c="$ka_conn" '$1 == "req" && $4 == c { if ($3 == prev) bad++; prev = $3; n++ }
	END { exit (n != 10 || bad > 0) }' "$AP_TMP/tomcat.log" ||
	ap_fail "the 10 keep-alive requests did not run on alternating threads: $(grep "$ka_conn" "$AP_TMP/tomcat.log")"
ap_log "ok: the 10 keep-alive requests 50 ms apart ran on $(awk -v c="$ka_conn" '$4 == c {print $3}' "$AP_TMP/tomcat.log" | sort -u | wc -l) threads, consecutive ones on different threads"

# 1b. Pipelined: four requests in one write (the preload follows up to 4
#     unanswered requests per connection: README, What it cannot see).
ap_raw "$PORT" --pipeline "GET /fast" "GET /items/3" "HEAD /fast" \
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' >"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(cut -d' ' -f1 "$AP_TMP/pipe.out" | paste -sd' ')" "200 200 200 200"

# 1c. HEAD, the 500 of a servlet that throws (Tomcat closes after it),
#     and an HTTP/1.0 GET of the chunked route: no chunking in 1.0, so
#     Tomcat sends the body without a length and closes to end it.
ap_raw "$PORT" "HEAD /fast" >"$AP_TMP/head.out"
ap_raw "$PORT" "GET /error" >"$AP_TMP/error.out"
ap_raw "$PORT" 'GET /chunked HTTP/1.0\r\n\r\n' >"$AP_TMP/http10.out"
# A head with a header line that has no colon: Tomcat reads it whole and
# answers 400. (Its bytes_in was the part before that line until the
# preload counted what is read after framing it cannot follow.)
BAD_REQ='GET /fast HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n'
ap_raw "$PORT" "$BAD_REQ" >"$AP_TMP/bad.out"
ap_assert_eq "HEAD, the 500, HTTP/1.0, the malformed head" \
	"$(cut -d' ' -f1 "$AP_TMP/head.out" "$AP_TMP/error.out" "$AP_TMP/http10.out" "$AP_TMP/bad.out" | paste -sd' ')" \
	"200 500 200 400"

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

# 2b. Six slow requests at once, and six async ones.
SLOW_MS=400
at_once 6 "$B/slow?ms=$SLOW_MS" slow
at_once 6 "$B/async?ms=$SLOW_MS" async
# A client that leaves 50 ms into a 300 ms request: Tomcat's write of the
# whole response still succeeds (the kernel takes it; the client's end
# answers with a reset), so the request is answered, not aborted: the
# preload sees what the server did.
client hangup "$PORT" 'GET /slow?ms=300 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' 50

# 3. 3 MiB POSTs read whole (fixed-length, chunked), and POSTs answered
#    unread, each followed by a GET on its connection: 100 KiB whose body
#    is sent only once the answer came (Tomcat swallows it then), 100 KiB
#    chunked sent at once (swallowed too), and 3 MiB, over Tomcat's
#    maxSwallowSize (2 MiB): it answers "Connection: close" and closes.
client post "$PORT" /post "$AP_TMP/post-3m.bin" fixed >"$AP_TMP/post.out"
client post "$PORT" /post "$AP_TMP/post-3m.bin" chunked >"$AP_TMP/postc.out"
# curl's own 3 MiB POST with Expect: 100-continue: Tomcat's interim
# "HTTP/1.1 100 " (no reason phrase), then a GET on the connection.
curl -s --max-time 30 -H 'Expect: 100-continue' --data-binary @"$AP_TMP/post-3m.bin" -o "$AP_TMP/poste.body" \
	-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' "$B/post" \
	--next -s --max-time 30 -o /dev/null -w '%{http_code} %{num_connects}\n' "$B/fast" \
	>"$AP_TMP/poste.out" || ap_fail "curl's 3 MiB POST with Expect: 100-continue failed"
ap_assert_eq "curl's 3 MiB POST with 100-continue, then a GET: statuses, connections, answer" \
	"$(awk 'NR == 2 {print $1, $2}' "$AP_TMP/poste.out") $(cat "$AP_TMP/poste.body")" "200 0 received 3145728"
client post "$PORT" /ignore "$AP_TMP/post-100k.bin" fixed-late "/fast?after=late" >"$AP_TMP/ignore.out"
client post "$PORT" /ignore "$AP_TMP/post-100k.bin" chunked "/fast?after=chunked" >"$AP_TMP/ignorec.out"
client post "$PORT" /ignore "$AP_TMP/post-3m.bin" fixed >"$AP_TMP/ignore3m.out"
ap_assert_eq "3 MiB POST answers" "$(cut -d' ' -f1,5- "$AP_TMP/post.out" "$AP_TMP/postc.out" | paste -sd'|')" \
	"200 - received 3145728|sent|200 - received 3145728|sent"
ap_assert_eq "unread POSTs and the GETs after them" \
	"$(cut -d' ' -f1,5- "$AP_TMP/ignore.out" "$AP_TMP/ignorec.out" "$AP_TMP/ignore3m.out" | grep -Ev '^(sent|send failed)$' | paste -sd'|')" \
	"200 - ignored|200 - fast|200 - ignored|200 - fast|200 close ignored"

# 4. Static files: sendfile (200 KiB), write (small), one range (99,000
#    bytes: sendfile from offset 1000) and two (multipart/byteranges,
#    written) on one connection; an 8 MiB file to a client that reads
#    64 KiB every 5 ms with a 64 KiB receive buffer: the first
#    sendfile64() fills the send buffer (up to tcp_wmem's maximum) on the
#    worker, the poller sends the rest as the client reads.
ap_raw "$PORT" "GET /static/big.bin" "GET /static/small.txt" \
	'GET /static/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=1000-99999\r\n\r\n' \
	'GET /static/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-99,1000-1099\r\n\r\n' \
	>"$AP_TMP/static.out"
ap_assert_eq "static statuses" "$(cut -d' ' -f1 "$AP_TMP/static.out" | paste -sd' ')" "200 200 206 206"
client slowget "$PORT" /static/huge.bin 65536 65536 5 >"$AP_TMP/slowget.out"
# The same, but the client closes after 1 MB: the poller's next
# sendfile64() fails, Tomcat closes, the request is aborted.
client slowget "$PORT" /static/huge.bin?cut 65536 65536 5 1000000 >"$AP_TMP/slowcut.out"

# 6. Byte-identical responses, Date masked (the 500 last: Tomcat closes
#    after it).
RAW=("GET /fast" "HEAD /fast" "GET /items/7" "GET /chunked" "GET /nocontent" "GET /notmod"
	"GET /nowhere" "GET /static/small.txt" "GET /static/big.bin" "GET /async?ms=1"
	'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' "GET /error")
ap_raw "$PORT" --dump "$AP_TMP/pre.raw" "${RAW[@]}" >"$AP_TMP/pre.out"
ap_raw "$PLAIN_PORT" --dump "$AP_TMP/plain.raw" "${RAW[@]}" >/dev/null
cmp -s "$AP_TMP/pre.raw" "$AP_TMP/plain.raw" ||
	ap_fail "responses differ with the preload: $(diff <(cat -v "$AP_TMP/plain.raw") <(cat -v "$AP_TMP/pre.raw") | head -20)"
ap_log "ok: ${#RAW[@]} responses ($(wc -c <"$AP_TMP/pre.raw") bytes) byte-identical with and without the preload"

# 5b. The connections Tomcat's timeouts closed, and the async timeout.
wait "$ASYNCTIMEOUT_PID"
read -r at_code at_hdr at_body <"$AP_TMP/asynctimeout.log"
ap_assert_eq "the async request past its timeout: status" "$at_code" 500
wait "$IDLE_PID"
grep -q '^closed after' "$AP_TMP/idle.log" || ap_fail "the idle keep-alive connection: $(cat "$AP_TMP/idle.log")"
wait "$SILENT_PID"
grep -q '^closed after' "$AP_TMP/silent.log" || ap_fail "the silent connection: $(cat "$AP_TMP/silent.log")"
ap_log "ok: Tomcat closed the idle keep-alive connection ($(cat "$AP_TMP/idle.log")) and the silent one ($(cat "$AP_TMP/silent.log"))"

# Exact counts: the idle connection's request is one GET /fast, and
# neither its close nor the silent connection adds anything.
ap_expect_counts <<EOF
GET /fast 12
HEAD /fast 4
GET /items/{id} 6
GET /chunked 4
GET /nocontent 3
GET /notmod 3
GET /nowhere 3
GET /static/small.txt 4
GET /static/big.bin 4
GET /static/huge.bin 2
POST /post 5
POST /ignore 3
GET /error 2
GET /slow 7
GET /async 8
EOF
ap_assert_eq "error_count of GET /error" "$(ap_field GET /error error_count)" 2
ap_assert_eq "error_count of GET /async" "$(ap_field GET /async error_count)" 1
ap_assert_eq "error_count of GET /static/huge.bin" "$(ap_field GET /static/huge.bin error_count)" 1
ap_assert_eq "error_count of the service but those (no other abort)" \
	"$(ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s and .route != "/error" and .route != "/async" and .route != "/static/huge.bin") | .error_count] | add')" 0
ap_assert_eq "errors of the service" \
	"$(ap_api /api/v1/errors | jq -c --arg s "$AP_SERVICE" '[.errors[] | select(.service == $s) | [.method, .route, .type, .count]] | sort')" \
	'[["GET","/async","HTTP 500",1],["GET","/error","HTTP 500",2],["GET","/static/huge.bin","aborted",1]]'

# Statuses, bytes and durations of single requests.
statuses() { ap_requests "$1" "${2:-GET}" | jq -c '[.[].status] | sort | unique'; }
ap_assert_eq "statuses of /nocontent, /notmod, /nowhere, /error" \
	"$(statuses /nocontent) $(statuses /notmod) $(statuses /nowhere) $(statuses /error)" \
	"[204] [304] [404] [500]"
# all_out ROUTE METHOD BYTES N : the N requests of ROUTE each sent BYTES
# (the same response every time).
all_out() {
	ap_assert_jq "$2 $1: bytes_out $3 (all $4)" \
		"length == $4 and all(.[]; .bytes_out == $3)" "$(ap_requests "$1" "$2")"
}
all_out /fast HEAD "$(awk '{print $2}' "$AP_TMP/head.out")" 4
# sorted_out ROUTE METHOD BYTES... : the requests of ROUTE sent exactly
# those numbers of bytes (in any order).
sorted_out() {
	local r=$1 m=$2
	shift 2
	ap_assert_eq "$m $r: bytes_out" "$(ap_requests "$r" "$m" | jq -c '[.[].bytes_out] | sort')" \
		"$(printf '%s\n' "$@" | jq -s -c 'sort')"
}
chunked=$(awk 'NR == 3 {print $3}' "$AP_TMP/ka2.out")
sorted_out /chunked GET "$chunked" "$chunked" "$chunked" "$(awk '{print $2}' "$AP_TMP/http10.out")"
big=$(awk 'NR == 1 {print $2}' "$AP_TMP/static.out")
sorted_out /static/big.bin GET "$big" "$big" "$(awk 'NR == 3 {print $2}' "$AP_TMP/static.out")" \
	"$(awk 'NR == 4 {print $2}' "$AP_TMP/static.out")"
all_out /static/small.txt GET "$(awk 'NR == 2 {print $2}' "$AP_TMP/static.out")" 4
get_len() { printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }
ap_assert_jq "GET /static/big.bin (sendfile): bytes_in $(get_len /static/big.bin)" \
	"[.[] | select(.status == 200)] | length == 2 and all(.[]; .bytes_in == $(get_len /static/big.bin))" \
	"$(ap_requests /static/big.bin GET)"
# The slow transfer: the whole file in bytes_out; the request ended with
# the poller's last sendfile64() (the worker's first one returns at once),
# so after the client had read all but what the send buffer (at most
# tcp_wmem's maximum) and its receive buffer (64 KiB, doubled by the
# kernel) hold, and before the client had the last byte. (The lower
# bound, the time of the last 64 KiB mark the client passed before that,
# less 50 ms for the server's delay in reading the request on a loaded
# machine; on an idle one the request ends 100 ms after it.)
read -r _ sreq sresp send_ms <"$AP_TMP/slowget.out"
[ "$sresp" -gt "$HUGE_SIZE" ] || ap_fail "the slow reader got $sresp bytes, less than the file"
wmem_max=$(awk '{print $3}' /proc/sys/net/ipv4/tcp_wmem)
must_read=$((sresp - wmem_max - 131072))
low_ms=$(awk -v m="$must_read" 'NR > 1 && $1 <= m { t = $2 } END { print t - 50 }' "$AP_TMP/slowget.out")
reqs=$(ap_requests /static/huge.bin GET)
ap_assert_jq "GET /static/huge.bin (sendfile, then the poller): bytes_in $sreq, bytes_out $sresp, duration $(jq '.[] | select(.error | not) | .duration_ms' <<<"$reqs") ms, between $low_ms and $send_ms" \
	"[.[] | select(.error | not)] | length == 1 and .[0].status == 200 and .[0].bytes_in == $sreq
	 and .[0].bytes_out == $sresp and .[0].duration_ms >= $low_ms and .[0].duration_ms <= $send_ms + 2
	 and $low_ms > 100" "$reqs"
read -r _ creq cgot _ <"$AP_TMP/slowcut.out"
ap_assert_jq "GET /static/huge.bin cut short by the client after $cgot bytes: aborted, status 200, bytes_in $creq, bytes_out from $cgot to less than $sresp" \
	"[.[] | select(.error)] | length == 1 and .[0].status == 200 and .[0].bytes_in == $creq
	 and .[0].bytes_out >= $cgot and .[0].bytes_out < $sresp" "$reqs"
# POSTs: the pipelined and the raw one (11 bytes of body) exactly their
# own bytes; the 3 MiB ones exactly what was sent and answered.
post_len=$(printf 'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' | wc -c)
read -r _ _ fin fout _ <"$AP_TMP/post.out"
read -r _ _ cin cout _ <"$AP_TMP/postc.out"
read -r _ ereq eup ehdr edown <"$AP_TMP/poste.out"
pout=$(awk 'NR == 4 {print $2}' "$AP_TMP/pipe.out")
ap_assert_eq "POST /post: [bytes_in, bytes_out] (with 100-continue: the interim 100 in bytes_out)" \
	"$(ap_requests /post POST | jq -c '[.[] | [.bytes_in, .bytes_out]] | sort')" \
	"$(jq -c -n "[[$post_len, $pout], [$post_len, $pout], [$fin, $fout], [$cin, $cout],
		[$((ereq + eup)), $((ehdr + edown))]] | sort")"
# Unread POSTs: bytes_in is what Tomcat read before it answered (README:
# bytes_in), the head exactly when the body came after the answer, and
# the GET after each is exactly its own request: the swallowed body was
# skipped, not taken for requests.
read -r _ lhead _ lout _ <"$AP_TMP/ignore.out"
read -r _ chead cwire cout _ <"$AP_TMP/ignorec.out"
read -r _ bhead bwire bout _ <"$AP_TMP/ignore3m.out"
reqs=$(ap_requests /ignore POST)
ap_assert_jq "POST /ignore, body after the answer: bytes_in $lhead (the head), bytes_out $lout" \
	"[.[] | select(.bytes_in == $lhead and .bytes_out == $lout)] | length == 1" "$reqs"
ap_assert_jq "POST /ignore, 100 KiB chunked and 3 MiB sent at once: bytes_in from the head to less than the request, bytes_out exact" \
	"([.[] | select(.bytes_in >= $chead and .bytes_in < $cwire and .bytes_out == $cout)] | length >= 1) and
	 ([.[] | select(.bytes_in >= $bhead and .bytes_in < $bwire and .bytes_out == $bout)] | length >= 1)" "$reqs"
reqs=$(ap_requests /fast GET)
bad_len=$(printf '%b' "$BAD_REQ" | wc -c)
ap_assert_jq "GET /fast with a malformed head: status 400, bytes_in $bad_len (all of it), bytes_out $(awk '{print $2}' "$AP_TMP/bad.out")" \
	"[.[] | select(.status == 400)] | length == 1 and .[0].bytes_in == $bad_len
	 and .[0].bytes_out == $(awk '{print $2}' "$AP_TMP/bad.out") and (.[0].error | not)" "$reqs"
for f in ignore ignorec; do
	read -r _ gin _ gout _ < <(sed -n 2p "$AP_TMP/$f.out")
	ap_assert_jq "the GET after the unread POST ($f): bytes_in $gin, bytes_out $gout" \
		"[.[] | select(.bytes_in == $gin and .bytes_out == $gout and .status == 200)] | length == 1" "$reqs"
done
# Slow and async requests: each at least its sleep, all in flight at once
# (all but the newest: the one whose client left, and the byte
# comparison's async one).
in_flight='[.[] | (.ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$")
	  | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)) as $t | {t: $t, e: ($t + .duration_ms)}]
	 | (map(.t) | max) < (map(.e) | min)'
reqs=$(ap_requests /slow GET)
ap_assert_jq "the slow request whose client left: status 200, not an error, duration >= 300 ms" \
	".[0].status == 200 and (.[0].error | not) and .[0].duration_ms >= 300" "$reqs"
reqs=$(ap_requests /async GET)
ap_assert_jq "the async request past its timeout: status 500, bytes_out $((at_hdr + at_body)), duration >= 200 ms" \
	"[.[] | select(.status == 500)] | length == 1 and .[0].error and .[0].bytes_out == $((at_hdr + at_body))
	 and .[0].duration_ms >= 200 and .[0].duration_ms < 10000" "$reqs"
for r in slow async; do
	reqs=$(ap_requests "/$r" GET | jq '[.[] | select(.status == 200)] | .[-6:]')
	ap_assert_jq "6 $r requests: duration >= $SLOW_MS ms" \
		"length == 6 and all(.[]; .status == 200 and .duration_ms >= $SLOW_MS and .duration_ms < 10000)" "$reqs"
	ap_assert_jq "the 6 $r requests in flight at once: each started before any ended" "$in_flight" "$reqs"
done
ap_log "PASS"
