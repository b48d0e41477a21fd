#!/bin/bash
# lighttpd 1.4.69 (Debian's lighttpd package) under the preload, in the
# foreground (-D), one process, its files, logs and upload dir in the temp
# dir, never dropping privileges (no server.username). It serves static
# files, CGIs (mod_cgi) and a reverse proxy (mod_proxy) to an unpreloaded
# python3 backend, over HTTP/1.1 and, since 1.4.69 turns it on by default,
# prior-knowledge HTTP/2 (h2c) on the same port.
#
# What strace showed lighttpd doing (and so what the preload must follow):
# - It reads a request with read(2) of 8 KiB; a body beyond it with
#   read(2)s of up to 256 KiB, written into a temp file in
#   server.upload-dirs (pwritev) before a CGI starts.
# - A small file (20 bytes): pread64 into memory, then one writev(2) of
#   head and body. The 1 MiB file: TCP_CORK, writev of the head, then
#   sendfile64 of up to 256 KiB per call. A Range request
#   (206) is pread64 + one writev; a HEAD, a 304, a 301 one writev of the
#   head. Over HTTP/2 files are never sendfile'd: pread64 of 16 KiB, then
#   writev of DATA frames.
# - mod_cgi forks (fork, then execve in the child) with the request body
#   either written into a pipe (small) or handed over as the temp file
#   (large), reads the CGI's output from a pipe, and writes the response
#   itself: writev of head and body, or, for a CGI output buffered into a
#   temp file, sendfile64 again. It passes LD_PRELOAD on to the CGI (for
#   valgrind), without the APIPROF_* variables; the CGI never accepts a
#   connection, so it records no request (its SQL: see part 2).
# - mod_proxy: socket + non-blocking connect(2), writev of the request,
#   read(2) of the answer, on the same event loop as the client's socket.
# - HTTP/2 (h2c, prior knowledge or by Upgrade) on the same port, as
#   1.4.69 turns it on by default (server.feature-flags "server.h2proto").
# - The end of a connection: read 0, shutdown(SHUT_WR), then a
#   recvfrom(MSG_TRUNC) to drain, then close.
# - With server.stream-response-body = 2, a CGI's output is sent as it
#   comes, chunked, by writev; otherwise it is buffered (a temp file past
#   64 KiB) and sent whole. A proxied 1 MiB body (not tested) was spliced
#   from the upstream socket into a pipe, then into a temp file, then sent
#   with sendfile64.
# - With server.max-worker = 2 the master forks the workers, which share
#   the listening socket; at exit the master signals its whole process
#   group (kill(0, SIGTERM)), so the test starts lighttpd in a session of
#   its own.
#
# Checked: exact counts per route (templated: /files/{id},
# /api/users/{id}) and for the whole service, per request statuses and
# bytes in and out as the clients sent and read them, for
# 1. keep-alive (8 on one curl connection: small and 1 MiB files, ids, a
#    404, a 301 directory redirect and its index), a pipeline of 4 (GET,
#    HEAD, the 1 MiB file, a Range 206), 304s by If-None-Match and
#    If-Modified-Since; a pipeline of 6, all answered, of which the
#    first 4 are recorded (README, What it cannot see: pipelining deeper
#    than 4);
# 2. CGIs: 1 MiB POSTs (plain, after a 100 Continue, chunked) that the CGI
#    reads whole, a CGI answering 500 (an error, its body the message), a
#    CGI sleeping 500 ms (duration >= 500 ms), a 1 MiB CGI output, a 413
#    for a body over server.max-request-size; each recorded once, by the
#    lighttpd process, none by its CGI children. A CGI running SQL
#    (Python's sqlite3) sends its statements as a service of its own when
#    setenv.add-environment gives it APIPROF_SOCKET and APIPROF_SERVICE;
# 3. mod_proxy to the backend: 200s, its 404 and 503 passed through; the
#    upstream connection lighttpd opens is never a request;
# 4. HTTP/2 (curl --http2-prior-knowledge, a 1 MiB POST to the CGI,
#    h2load 40 streams on 2 connections, 10 at once each): every stream
#    one request, exactly; nghttp's streams (3 at once, a 1 MiB file, a
#    404, a 1 MiB POST) with bytes in and out exactly the frames nghttp
#    sent and received on each. h2c by Upgrade (curl --http2): the upgrading
#    request recorded with its 101, the next stream not (README, HTTP/2);
# 5. byte-identical responses with and without the preload (11 requests
#    on one connection: files, a Range, CGIs, proxied; Date masked);
# 6. server.max-worker = 2 with streamed responses: 12 requests on new
#    connections, 2 POSTs, a chunked 1 MiB CGI output, 10 h2 streams, each
#    recorded once by a worker.
# 15 to 25 s on the 2-core machine shared with five other helpers (load 5).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/applib.sh"

LIGHTTPD=/usr/sbin/lighttpd
ap_require curl jq "$LIGHTTPD" h2load nghttp
ap_require_build
[ -e /usr/lib/lighttpd/mod_cgi.so ] && [ -e /usr/lib/lighttpd/mod_proxy.so ] ||
	ap_fail "lighttpd's mod_cgi or mod_proxy is missing in /usr/lib/lighttpd"

ap_start_collector

# ---- the site: files, CGIs, the backend ----
W=$AP_TMP/www
mkdir -p "$W/dir" "$W/files" "$W/upgrade" "$W/h2x" "$AP_TMP/cgi"
head -c 1048576 /dev/urandom >"$W/big.bin"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"
head -c 2097152 /dev/urandom >"$AP_TMP/toobig.bin"
printf 'hello from lighttpd\n' >"$W/small.txt"
printf '<p>index</p>\n' >"$W/dir/index.html"
printf 'h2 file\n' >"$W/h2.txt"
cp "$W/big.bin" "$W/small.txt" "$W/h2x/"
printf 'one\n' >"$W/upgrade/1"
printf 'two\n' >"$W/upgrade/2"
for i in 7 9 17 42; do
	printf 'file %s\n' "$i" >"$W/files/$i"
done
cat >"$AP_TMP/cgi/echo.py" <<'PY'
import sys
n = 0
while True:
    d = sys.stdin.buffer.read(65536)
    if not d:
        break
    n += len(d)
sys.stdout.write("Content-Type: text/plain\r\n\r\nreceived %d\n" % n)
PY
# a CGI running SQL through Python's sqlite3 module (libsqlite3)
cat >"$AP_TMP/cgi/sql.py" <<'PY'
import sqlite3, sys
con = sqlite3.connect(":memory:")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
con.execute("INSERT INTO t (name) VALUES ('a')")
n = con.execute("SELECT count(*) FROM t WHERE id > 0").fetchone()[0]
sys.stdout.write("Content-Type: text/plain\r\n\r\nrows %d\n" % n)
PY
cat >"$AP_TMP/cgi/fail.py" <<'PY'
import sys
sys.stdout.write("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nboom: database down\n")
PY
cat >"$AP_TMP/cgi/slow.sh" <<'SH'
sleep 0.5
printf 'Content-Type: text/plain\r\n\r\nslow\n'
SH
cat >"$AP_TMP/cgi/bigout.sh" <<'SH'
printf 'Content-Type: application/octet-stream\r\n\r\n'
head -c 1048576 /dev/zero
SH
cat >"$AP_TMP/backend.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p == "/api/items":
            self.answer(200, b'{"items": [1, 2, 3]}\n')
        elif p.startswith("/api/users/"):
            self.answer(200, b'{"id": %s}\n' % p.rsplit("/", 1)[1].encode())
        elif p == "/api/fail":
            self.answer(503, b'{"error": "backend down"}\n')
        else:
            self.answer(404, b'{"error": "no such thing"}\n')
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
BPORT=$(ap_free_port)
ap_bg backend "$AP_PY" "$AP_TMP/backend.py" "$BPORT"
ap_wait_port "$BPORT"

# start_lighttpd NAME PRELOAD(1|0) [DIRECTIVE] : lighttpd with its config,
# error log and upload dir in $AP_TMP/NAME/, DIRECTIVE added to the config;
# sets PORT and LT_PID.
start_lighttpd() {
	local d=$AP_TMP/$1
	mkdir -p "$d/up"
	PORT=$(ap_free_port)
	cat >"$d/lighttpd.conf" <<CONF
server.modules = ("mod_alias", "mod_setenv", "mod_cgi", "mod_proxy")
server.document-root = "$W"
server.bind = "127.0.0.1"
server.port = $PORT
server.errorlog = "$d/error.log"
server.upload-dirs = ("$d/up")
server.max-request-size = 1536
index-file.names = ("index.html")
mimetype.assign = (".txt" => "text/plain", ".html" => "text/html", "" => "application/octet-stream")
\$HTTP["url"] =~ "^/cgi/" {
    alias.url = ("/cgi/" => "$AP_TMP/cgi/")
    cgi.assign = (".py" => "$AP_PY", ".sh" => "/bin/sh")
}
\$HTTP["url"] == "/cgi/sql.py" {
    setenv.add-environment = ("APIPROF_SOCKET" => "$AP_SOCK", "APIPROF_SERVICE" => "$AP_SERVICE-cgi")
}
\$HTTP["url"] =~ "^/api/" {
    proxy.server = ("" => (("host" => "127.0.0.1", "port" => $BPORT)))
}
${3:-}
CONF
	"$LIGHTTPD" -tt -f "$d/lighttpd.conf" >"$AP_TMP/$1-check.log" 2>&1 ||
		ap_fail "lighttpd rejects its configuration: $(cat "$AP_TMP/$1-check.log")"
	# In a session of its own: with server.max-worker, the master ends
	# by signalling its whole process group (kill(0, SIGTERM)), which
	# would be this script's, and make's. (setsid execs: the pid stays.)
	if [ "$2" = 1 ]; then
		ap_bg_preloaded "$1" setsid "$LIGHTTPD" -D -f "$d/lighttpd.conf"
	else
		ap_bg "$1" setsid "$LIGHTTPD" -D -f "$d/lighttpd.conf"
	fi
	LT_PID=$AP_BG_PID
	ap_wait_port "$PORT"
}

start_lighttpd plain 0
PLAIN=$PORT
start_lighttpd lighttpd 1
B=http://127.0.0.1:$PORT
ap_log "collector $AP_URL, lighttpd $LT_PID on port $PORT (unpreloaded on $PLAIN), backend on $BPORT"

W_FMT='%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n'

# ---- 1. files: keep-alive, a pipeline, 304s, a Range ----
ap_curl_many "$AP_TMP/ka.out" "$B/small.txt" "$B/files/17" "$B/big.bin" "$B/nope.txt" "$B/files/42" \
	"$B/dir" "$B/dir/" "$B/small.txt"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" "200 200 200 404 200 301 200 200 "
ap_assert_eq "keep-alive: the 1 MiB file's body" "$(sed -n 3p "$AP_TMP/ka.out" | cut -d' ' -f6)" 1048576
RANGE='GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=100-1099\r\n\r\n'
ap_raw "$PORT" --pipeline --dump "$AP_TMP/pipe.raw" "GET /files/7" "HEAD /small.txt" "GET /big.bin" "$RANGE" \
	>"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe.out")" "200 200 200 206 "
# Six pipelined in one write: lighttpd reads them in one read(2) and
# answers all six; the preload follows 4 unanswered requests per
# connection, so the fifth and sixth are not recorded (README, What it
# cannot see: pipelining deeper than 4).
ap_raw "$PORT" --pipeline "GET /files/9" "GET /missing" "GET /small.txt" "GET /dir/" "GET /deep5" "GET /deep6" \
	>"$AP_TMP/deep.out"
ap_assert_eq "six pipelined: statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/deep.out")" "200 404 200 200 404 404 "
etag=$(curl -s --max-time 10 -o /dev/null -D - "$B/small.txt" | tr -d '\r' | sed -n 's/^ETag: //p')
lastmod=$(curl -s --max-time 10 -o /dev/null -D - "$B/small.txt" | tr -d '\r' | sed -n 's/^Last-Modified: //p')
[ -n "$etag" ] && [ -n "$lastmod" ] || ap_fail "no ETag or Last-Modified on GET /small.txt"
curl -s --max-time 10 -o /dev/null -w "$W_FMT" -H "If-None-Match: $etag" "$B/small.txt" >"$AP_TMP/304.out"
curl -s --max-time 10 -o /dev/null -w "$W_FMT" -H "If-Modified-Since: $lastmod" "$B/small.txt" >>"$AP_TMP/304.out"
ap_assert_eq "conditional GETs" "$(awk '{printf "%s ", $1}' "$AP_TMP/304.out")" "304 304 "

# ---- 2. CGIs ----
for h in 'Expect:' 'Expect: 100-continue' 'Transfer-Encoding: chunked'; do
	curl -s --max-time 20 -o "$AP_TMP/up.body" -w "$W_FMT" -H "$h" --data-binary @"$AP_TMP/upload.bin" \
		"$B/cgi/echo.py" >>"$AP_TMP/up.out" || ap_fail "POST /cgi/echo.py ($h) failed"
	ap_assert_eq "POST /cgi/echo.py ($h): the CGI read the whole body" "$(cat "$AP_TMP/up.body")" "received 1048576"
done
grep -q '^HTTP/1.1 100 Continue' <(curl -s --max-time 20 -o /dev/null -D - -H 'Expect: 100-continue' \
	--data-binary @"$AP_TMP/upload.bin" "$B/cgi/echo.py") || ap_fail "no 100 Continue from lighttpd"
curl -s --max-time 10 -o /dev/null -w "$W_FMT" "$B/cgi/fail.py" >"$AP_TMP/fail.out"
curl -s --max-time 10 -o /dev/null -w "$W_FMT" "$B/cgi/slow.sh" >"$AP_TMP/slow.out"
curl -s --max-time 10 -o /dev/null -w "$W_FMT" "$B/cgi/bigout.sh" >"$AP_TMP/bigout.out"
for i in 1 2; do
	curl -s --max-time 10 "$B/cgi/sql.py"
done >"$AP_TMP/sql.out"
ap_assert_eq "GET /cgi/sql.py twice" "$(tr '\n' ' ' <"$AP_TMP/sql.out")" "rows 1 rows 1 "
# over server.max-request-size (1536 KiB): refused from the head (curl
# waits for a 100 Continue with a body this size, and never sends it)
curl -s --max-time 10 -o /dev/null -w "$W_FMT" --data-binary @"$AP_TMP/toobig.bin" "$B/cgi/echo.py" \
	>"$AP_TMP/413.out"
ap_assert_eq "CGI statuses (500, slow, 1 MiB out, 413)" \
	"$(cat "$AP_TMP/fail.out" "$AP_TMP/slow.out" "$AP_TMP/bigout.out" "$AP_TMP/413.out" | awk '{printf "%s ", $1}')" \
	"500 200 200 413 "

# ---- 3. mod_proxy ----
ap_curl_many "$AP_TMP/proxy.out" "$B/api/items" "$B/api/users/5" "$B/api/users/6" "$B/api/missing" "$B/api/fail"
ap_assert_eq "proxied statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/proxy.out")" "200 200 200 404 503 "

# ---- 4. HTTP/2, prior knowledge ----
for p in /h2.txt /files/9 /api/users/8; do
	curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}\n' "$B$p"
done >"$AP_TMP/h2.out" || ap_fail "curl --http2-prior-knowledge failed"
curl -s --max-time 20 --http2-prior-knowledge -o "$AP_TMP/h2post.body" -w '%{http_code} %{http_version}\n' \
	--data-binary @"$AP_TMP/upload.bin" "$B/cgi/echo.py" >>"$AP_TMP/h2.out" || ap_fail "an HTTP/2 POST failed"
ap_assert_eq "HTTP/2 statuses and versions" "$(tr '\n' ' ' <"$AP_TMP/h2.out")" "200 2 200 2 200 2 200 2 "
ap_assert_eq "the HTTP/2 POST's body, read whole by the CGI" "$(cat "$AP_TMP/h2post.body")" "received 1048576"
# nghttp -v prints every frame: each stream's bytes, 9-byte headers
# included, the way the preload counts them (README, HTTP/2). Three
# streams at once on one connection (the 1 MiB file, in 16 KiB DATA
# frames, with the client's WINDOW_UPDATEs), then a 1 MiB POST.
nghttp -nv "$B/h2x/big.bin" "$B/h2x/small.txt" "$B/h2x/none" >"$AP_TMP/nghttp.log" 2>&1 &&
	nghttp -nv -d "$AP_TMP/upload.bin" "$B/cgi/echo.py?nghttp" >>"$AP_TMP/nghttp.log" 2>&1 ||
	ap_fail "nghttp failed: $(tail -n 20 "$AP_TMP/nghttp.log")"
# "PATH BYTES_IN BYTES_OUT" per client stream, from nghttp's log
awk '/ (send|recv) [A-Z_]+ frame <length=/ {
		match($0, /length=[0-9]+/); len = substr($0, RSTART + 7, RLENGTH - 7)
		match($0, /stream_id=[0-9]+/); sid = substr($0, RSTART + 10, RLENGTH - 10)
		if (sid % 2 == 0) next
		if ($0 ~ / send /) inb[run, sid] += 9 + len; else outb[run, sid] += 9 + len
		if ($0 ~ / send HEADERS /) cur = sid
		next }
	/\] Connected$/ { run++ }
	$1 == ":path:" && cur != "" { p = $2; sub(/\?.*/, "", p); path[run, cur] = p; order[++n] = run SUBSEP cur; cur = "" }
	END { for (i = 1; i <= n; i++) print path[order[i]], inb[order[i]], outb[order[i]] }' \
	"$AP_TMP/nghttp.log" >"$AP_TMP/nghttp.out"
[ "$(wc -l <"$AP_TMP/nghttp.out")" = 4 ] || ap_fail "nghttp: not 4 streams: $(cat "$AP_TMP/nghttp.out")"
# h2c by Upgrade, which lighttpd implements (curl --http2 on an http://
# URL asks for it): the upgrading request is recorded with its 101, and
# the connection is no longer followed, so the second request, stream 3
# on it, is not recorded (README, HTTP/2: h2c by Upgrade).
curl -s --max-time 10 --http2 -o /dev/null -o /dev/null -w '%{http_code} %{http_version} %{num_connects}\n' \
	"$B/upgrade/1" "$B/upgrade/2" >"$AP_TMP/upgrade.out" || ap_fail "curl --http2 (Upgrade: h2c) failed"
ap_assert_eq "h2c by Upgrade: statuses, versions, one connection" "$(tr '\n' ' ' <"$AP_TMP/upgrade.out")" \
	"200 2 1 200 2 0 "
h2load -n 40 -c 2 -m 10 "$B/h2.txt" >"$AP_TMP/h2load.log" 2>&1 || ap_fail "h2load failed: $(cat "$AP_TMP/h2load.log")"
grep -q '^requests: 40 total, 40 started, 40 done, 40 succeeded' "$AP_TMP/h2load.log" &&
	grep -q '^status codes: 40 2xx' "$AP_TMP/h2load.log" || ap_fail "h2load: $(cat "$AP_TMP/h2load.log")"

# ---- 5. byte-identical with and without the preload ----
CMP=("GET /small.txt" "GET /files/17" "GET /big.bin" "HEAD /big.bin" "GET /nope" "GET /dir" "$RANGE"
	"GET /cgi/echo.py" "GET /cgi/fail.py" "GET /api/users/3" "GET /api/fail")
ap_raw "$PLAIN" --dump "$AP_TMP/cmp-plain.raw" "${CMP[@]}" >/dev/null
ap_raw "$PORT" --dump "$AP_TMP/cmp-pre.raw" "${CMP[@]}" >"$AP_TMP/cmp.out"
cmp -s "$AP_TMP/cmp-plain.raw" "$AP_TMP/cmp-pre.raw" ||
	ap_fail "responses differ with the preload ($AP_TMP/cmp-plain.raw, $AP_TMP/cmp-pre.raw)"
ap_log "ok: ${#CMP[@]} responses on one connection byte-identical with and without the preload"

ap_expect_counts <<E
GET /small.txt 8
HEAD /small.txt 1
GET /files/{id} 6
GET /big.bin 5
HEAD /big.bin 1
GET /nope.txt 1
GET /nope 1
GET /missing 1
GET /dir 2
GET /dir/ 2
POST /cgi/echo.py 7
GET /cgi/echo.py 1
GET /cgi/fail.py 2
GET /cgi/slow.sh 1
GET /cgi/bigout.sh 1
GET /cgi/sql.py 2
GET /api/items 1
GET /api/users/{id} 4
GET /api/missing 1
GET /api/fail 2
GET /h2.txt 41
GET /upgrade/{id} 1
GET /h2x/big.bin 1
GET /h2x/small.txt 1
GET /h2x/none 1
E

# ---- what the collector reports of each request ----
# every request of the service, read once (applib.sh's ap_rq reads them)
ap_fetch_reqs "$AP_TMP/requests.json"
# curl_reqs FILE LINE PATH [METHOD] [N] : PATH's stored requests (N, 1 by
# default) have the status and bytes of curl's -w line LINE of FILE
# ($W_FMT, or ap_curl_many's fields).
curl_reqs() {
	local code sreq sup shdr sdl
	if [ "$(awk 'NR == 1 {print NF}' "$1")" = 6 ]; then
		read -r code _ sup sreq shdr sdl <<<"$(sed -n "${2}p" "$1")"
	else
		read -r code sreq sup shdr sdl <<<"$(sed -n "${2}p" "$1")"
	fi
	ap_expect_reqs "$3" "${4:-GET}" "${5:-1}" "$code" $(( sreq + sup )) $(( shdr + sdl ))
}
# the keep-alive connections: curl's sizes, line by line (/small.txt
# later too, /files/17 on part 5's connection, /dir/ in the deep pipeline)
curl_reqs "$AP_TMP/ka.out" 5 /files/42
curl_reqs "$AP_TMP/ka.out" 4 /nope.txt
i=0
for p in /api/items /api/users/5 /api/users/6 /api/missing; do
	i=$(( i + 1 ))
	curl_reqs "$AP_TMP/proxy.out" "$i" "$p"
done
curl_reqs "$AP_TMP/slow.out" 1 /cgi/slow.sh
curl_reqs "$AP_TMP/bigout.out" 1 /cgi/bigout.sh
# the pipelines and part 5's connection: ap_raw's requests and the raw
# responses it read
col2() { sed -n "${2}p" "$1" | cut -d' ' -f2; }
ap_expect_reqs /files/7 GET 1 200 "$(ap_reqlen "GET /files/7")" "$(col2 "$AP_TMP/pipe.out" 1)"
ap_expect_reqs /small.txt HEAD 1 200 "$(ap_reqlen "HEAD /small.txt")" "$(col2 "$AP_TMP/pipe.out" 2)"
ap_expect_reqs /big.bin HEAD 1 200 "$(ap_reqlen "HEAD /big.bin")" "$(col2 "$AP_TMP/cmp.out" 4)"
ap_expect_reqs /missing GET 1 404 "$(ap_reqlen "GET /missing")" "$(col2 "$AP_TMP/deep.out" 2)"
ap_expect_reqs /nope GET 1 404 "$(ap_reqlen "GET /nope")" "$(col2 "$AP_TMP/cmp.out" 5)"
ap_expect_reqs /cgi/echo.py GET 1 200 "$(ap_reqlen "GET /cgi/echo.py")" "$(col2 "$AP_TMP/cmp.out" 8)"
ap_expect_reqs /api/users/3 GET 1 200 "$(ap_reqlen "GET /api/users/3")" "$(col2 "$AP_TMP/cmp.out" 10)"
# GET /big.bin: the keep-alive one (sendfile64), then the pipelined one and
# the Range (206) one, then part 5's two
ap_assert_jq "GET /dir: the two 301s, bytes in and out" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == [
	 [301, $(sed -n 6p "$AP_TMP/ka.out" | awk '{print $4 ", " $5 + $6}')],
	 [301, $(ap_reqlen "GET /dir"), $(col2 "$AP_TMP/cmp.out" 6)]]" "$(ap_rq /dir GET)"
rlen=$(printf '%b' "${RANGE//\\r\\n/\\r\\n}" | wc -c)
ap_assert_jq "GET /big.bin: statuses and bytes in and out, oldest first" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == [
	 [200, $(sed -n 3p "$AP_TMP/ka.out" | awk '{print $4 ", " $5 + $6}')],
	 [200, $(ap_reqlen "GET /big.bin"), $(col2 "$AP_TMP/pipe.out" 3)],
	 [206, $rlen, $(col2 "$AP_TMP/pipe.out" 4)],
	 [200, $(ap_reqlen "GET /big.bin"), $(col2 "$AP_TMP/cmp.out" 3)],
	 [206, $rlen, $(col2 "$AP_TMP/cmp.out" 7)]]" "$(ap_rq /big.bin GET)"
ap_assert_jq "GET /small.txt: the two 304s, with curl's bytes" \
	"[.[] | select(.status == 304) | [.bytes_in, .bytes_out]] == $(awk '{printf "%s[%s, %s]", (NR > 1 ? ", " : "["), $2, $4 + $5} END {print "]"}' "$AP_TMP/304.out")" \
	"$(ap_rq /small.txt GET)"
# the POSTs: every byte of each body read (the 100 Continue counted out),
# then the 100 Continue check, the 413 (its head only: curl waited for a
# 100 Continue that never came), and the HTTP/2 one
ap_assert_jq "POST /cgi/echo.py over HTTP/1.1: statuses and bytes in and out as curl sent and received them, oldest first" \
	"[.[] | [.status, .bytes_in, .bytes_out]] | (.[0:3] + [.[4]]) == $(cat "$AP_TMP/up.out" "$AP_TMP/413.out" |
		awk '{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2 + $3, $4 + $5} END {print "]"}')" \
	"$(ap_rq /cgi/echo.py POST)"
ap_assert_jq "POST /cgi/echo.py over HTTP/2: the 1 MiB body's DATA frames in" \
	'.[5].status == 200 and .[5].bytes_in > 1048576 + 9 * 64' "$(ap_rq /cgi/echo.py POST)"
# every request by the lighttpd process, none by a CGI child, none aborted
all=$(jq '.requests' "$AP_REQS")
ap_assert_jq "all $(jq length <<<"$all") requests by lighttpd (pid $LT_PID), none aborted" \
	"length == 95 and all(.[]; .pid == $LT_PID and .tid == $LT_PID and (.aborted | not))" "$all"
ap_assert_jq "GET /cgi/slow.sh: 500 ms or more (the CGI sleeps 0.5 s)" \
	'length == 1 and .[0].duration_ms >= 500 and .[0].duration_ms < 5000' "$(ap_rq /cgi/slow.sh GET)"
ap_assert_jq "h2c by Upgrade: the upgrading request recorded with its 101, the next one not at all" \
	'length == 1 and .[0].status == 101 and .[0].path == "/upgrade/1"' "$(ap_rq /upgrade/1 GET | jq --argjson b "$(ap_rq /upgrade/2 GET)" '. + $b')"
# the streams nghttp saw: bytes in and out exactly its frames
n=0
for st in "GET /h2x/big.bin 200" "GET /h2x/small.txt 200" "GET /h2x/none 404" "POST /cgi/echo.py 200"; do
	n=$(( n + 1 ))
	read -r m p code <<<"$st"
	read -r _ bin bout <<<"$(sed -n "${n}p" "$AP_TMP/nghttp.out")"
	ap_assert_jq "HTTP/2 $m $p (nghttp): status $code, bytes in $bin, out $bout as nghttp's frames" \
		".[-1] | .status == $code and .bytes_in == $bin and .bytes_out == $bout and (.aborted | not)" \
		"$(ap_rq "$p" "$m")"
done
ap_assert_jq "the HTTP/2 streams of GET /h2.txt: 41, each 200" \
	'length == 41 and all(.[]; .status == 200 and .bytes_in > 0 and .bytes_out > 0)' "$(ap_rq /h2.txt GET)"
# errors: the CGI's 500 with its body as the message, the backend's 503
ap_check_jq "/api/v1/errors: the CGI's 500 and the backend's 503, twice each" \
	"$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")" \
	'[.errors[] | {method, route, type, count, message}] | sort_by(.route) ==
	 [{"method": "GET", "route": "/api/fail", "type": "HTTP 503", "count": 2, "message": "{?: ?}"},
	  {"method": "GET", "route": "/cgi/fail.py", "type": "HTTP 500", "count": 2, "message": "boom: database down"}]'
ap_assert_jq "GET /cgi/fail.py: error_count 2" '. == 2' "$(ap_field GET /cgi/fail.py error_count)"
# one sender for the service: lighttpd; its forked CGI children (before
# their exec) and the CGIs themselves sent nothing
ap_assert_jq "/api/v1/status: lighttpd alone sent this service's events, 95 requests, none untracked" \
	"[.processes[] | select(.service == \"$AP_SERVICE\") | [.pid, .exe, .requests, .untracked_connections]] ==
	 [[$LT_PID, \"$LIGHTTPD\", 95, 0]]" "$(ap_api /api/v1/status)"
# mod_cgi hands a CGI lighttpd's LD_PRELOAD (and no other variable of
# its environment): a CGI running SQL sends it to APIPROF_SOCKET and
# APIPROF_SERVICE when setenv.add-environment gives them (README, lighttpd),
# as its service's statements outside any request (the CGI serves no
# connection; lighttpd's record of the request has none).
ap_check_jq "/api/v1/queries: the CGI's 4 statements (sqlite3's implicit BEGIN too), twice, for $AP_SERVICE-cgi" \
	"$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE-cgi")" \
	'[.queries[] | [.db, .sql, .calls]] | sort == [["sqlite", "BEGIN", 2], ["sqlite", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)", 2],
	  ["sqlite", "INSERT INTO t (name) VALUES (?)", 2], ["sqlite", "SELECT count(*) FROM t WHERE id > ?", 2]]'
ap_assert_jq "GET /cgi/sql.py: lighttpd's records, no statement of their own" \
	'length == 2 and all(.[]; .status == 200 and .sql_count == 0)' "$(ap_rq /cgi/sql.py GET)"

# ---- 6. server.max-worker = 2: the master forks two workers ----
# streaming responses as they come (server.stream-response-body = 2):
# a CGI's output without a length is sent chunked, writev by writev
AP_SERVICE=it-lighttpd-workers
start_lighttpd workers 1 "server.max-worker = 2
server.stream-response-body = 2"
for i in $(seq 50); do
	[ "$(ap_children "$LT_PID" | wc -l)" -ge 2 ] && break
	sleep 0.1
done
WORKERS=$(ap_children "$LT_PID" | sort -n | tr '\n' ' ')
ap_log "lighttpd master $LT_PID, workers $WORKERS, port $PORT"
[ "$(wc -w <<<"$WORKERS")" = 2 ] || ap_fail "lighttpd has not 2 workers: $WORKERS"
for i in $(seq 12); do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$PORT/files/$i"
done >"$AP_TMP/w.out"
for i in 1 2; do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' --data-binary @"$AP_TMP/upload.bin" -H 'Expect:' \
		"http://127.0.0.1:$PORT/cgi/echo.py"
done >>"$AP_TMP/w.out"
ap_assert_eq "workers: statuses" "$(cat "$AP_TMP/w.out")" "404 404 404 404 404 404 200 404 200 404 404 404 200 200 "
ap_raw "$PORT" --dump "$AP_TMP/stream.raw" "GET /cgi/bigout.sh" "GET /cgi/slow.sh" >"$AP_TMP/stream.out"
ap_assert_eq "workers: streamed CGI responses" "$(awk '{printf "%s ", $1}' "$AP_TMP/stream.out")" "200 200 "
grep -q '^Transfer-Encoding: chunked' "$AP_TMP/stream.raw" || ap_fail "GET /cgi/bigout.sh was not sent chunked"
h2load -n 10 -c 2 -m 5 "http://127.0.0.1:$PORT/h2.txt" >"$AP_TMP/h2load-w.log" 2>&1 &&
	grep -q '^status codes: 10 2xx' "$AP_TMP/h2load-w.log" || ap_fail "h2load: $(cat "$AP_TMP/h2load-w.log")"
ap_expect_counts <<E
GET /files/{id} 12
POST /cgi/echo.py 2
GET /cgi/bigout.sh 1
GET /cgi/slow.sh 1
GET /h2.txt 10
E
ap_fetch_reqs "$AP_TMP/requests-workers.json"
ap_expect_reqs /cgi/bigout.sh GET 1 200 "$(ap_reqlen "GET /cgi/bigout.sh")" "$(col2 "$AP_TMP/stream.out" 1)"
ap_expect_reqs /cgi/slow.sh GET 1 200 "$(ap_reqlen "GET /cgi/slow.sh")" "$(col2 "$AP_TMP/stream.out" 2)"
ap_assert_pids_among "$(ap_api /api/v1/requests --data-urlencode limit=1000 |
	jq -r --arg s "$AP_SERVICE" '.requests[] | select(.service == $s) | .pid')" "$WORKERS" "a lighttpd worker"
ap_log "PASS"
