#!/bin/bash
# H2O (Debian's h2o 2.2.5), an event-driven HTTP/1.1 and HTTP/2 server:
# one process, `num-threads: 2` event loops each accepting on its own dup
# of the listening sockets, workers as nobody when we are root. Serves
# static files (file.dir), an mruby handler (templated /m/orders/{id}) and
# proxy.reverse.url to a small Python backend that is NOT preloaded.
#
# What strace shows (by hand, once): accept4(SOCK_NONBLOCK|SOCK_CLOEXEC),
# requests read with read(fd, 8192), responses written with writev; files
# are read with pread64 (64 KiB at a time over HTTP/1.1, 16 KiB over
# HTTP/2) and each chunk written with a writev, never sendfile. The proxy
# connect()s to the backend and reads its response with read. TLS is
# h2o's own: an OpenSSL BIO of its own (BIO_meth_new over the buffers it
# reads and writes with read/writev itself), so SSL_read/SSL_write run on
# an SSL object with no socket (SSL_get_rfd() -1, printed by an SSL_read
# hook of our own for each call): the preload binds each such object to
# the TLS socket its thread read last before the SSL_read (hook_ssl.c;
# nothing of TLS was recorded before that). Private-key operations go to a
# neverbleed helper process over a Unix socket it accept()s: no request.
#
#  1. h2o without the preload: the responses (HTTP/1.1, HTTP/1.1 and h2
#     over TLS, h2c), Date masked, for the byte comparison.
#  2. HTTP/1.1 preloaded: keep-alive over files (small and 1.5 MB), the
#     index, a 404, a Range (206), a 304 (If-None-Match), HEAD, mruby,
#     proxied routes (templated ids, the backend's 500 counted an error, a
#     400 ms route's duration); 4 pipelined; 1.5 MB POSTs proxied (plain,
#     100-continue, chunked); a body the backend streams without a length
#     (h2o chunks it); a client gone after 100,000 bytes of 16 MiB
#     (aborted, its 200 kept). Exact counts, statuses, bytes_in/bytes_out
#     as curl and the raw client saw them.
#     FastCGI apps h2o spawns (fastcgi.spawn, a Python responder on the
#     Unix socket h2o hands it as fd 0): they inherit LD_PRELOAD and are
#     followed as FastCGI; /f's inherits APIPROF_SERVICE too, so both
#     sides count each request in h2o's service (README's note for H2O),
#     /g's command sets its own service. (h2o closes after a FastCGI 404,
#     sent without a length: it ends at the close.)
#  3. h2c with prior knowledge (curl --http2-prior-knowledge, nghttp,
#     h2load): each stream a request, exact counts, per-stream bytes from
#     nghttp's frame log, a pushed stream (Link: rel=preload from the
#     backend) not a request; `Upgrade: h2c` (h2o implements it): only
#     the upgrading request, with its 101.
#  4. TLS (HTTP/1.1 and h2, curl and h2load): every request recorded,
#     exact counts, statuses, HTTP/1.1 bytes as curl saw them; responses
#     byte-identical to the unpreloaded h2o's.
#  5. A proxy path to a port nothing listens on: h2o's 502, recorded and
#     counted an error. Everything attributed to h2o's pid (but the /f
#     FastCGI app's), nothing untracked; the backend served every proxied
#     request (its own count) while the proxy's connect()ed sockets were
#     never requests.
#  6. A graceful stop (SIGTERM) while an HTTP/1.1 request and an h2c
#     stream wait on the backend: h2o finishes both and exits 0; both are
#     recorded, 400 ms or more, not aborted.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 h2o openssl nghttp h2load
ap_require_build

ap_start_collector
W=$AP_TMP/www
mkdir -p "$W/static" "$AP_TMP/run"
printf '<h1>h2o</h1>\n' >"$W/index.html"
printf 'small\n' >"$W/static/small.txt"
printf 'tls only\n' >"$W/static/tls.txt"
head -c 1500000 /dev/urandom >"$W/static/big.bin"
truncate -s 16M "$W/static/huge.bin" # more than the socket buffers hold
ap_make_cert "$AP_TMP/tls"
user=""
if [ "$(id -u)" -eq 0 ]; then
	user="user: nobody"
	chown nobody "$AP_TMP/run" # the pid file is written after setuid
fi

# The backend (never preloaded): one line per request in backend.log.
cat >"$AP_TMP/backend.py" <<'PY'
import http.server, json, sys, threading, time

log_lock = threading.Lock()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        with log_lock: # one line per request, whole, from many threads
            print(self.command, self.path, code, flush=True)

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.startswith("/api/users/"):
            self.reply(200, json.dumps({"id": int(p[11:])}).encode())
        elif p == "/api/boom":
            self.reply(500, b'{"error": "boom"}')
        elif p == "/api/slow":
            with log_lock:
                print("start", p, flush=True)
            time.sleep(0.4)
            self.reply(200, b'{"slow": true}')
        elif p == "/api/push":
            self.reply(200, b'{"push": true}', [("Link", "</static/small.txt>; rel=preload")])
        elif p == "/api/stream": # HTTP/1.0, no length: h2o chunks it
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.end_headers()
            for i in range(3):
                self.wfile.write(b"part %d\n" % i)
                self.wfile.flush()
                time.sleep(0.05)
            self.close_connection = True
            with log_lock:
                print(self.command, self.path, 200, flush=True)
        elif p == "/api/tls":
            self.reply(200, b'{"tls": true}')
        else:
            self.reply(404, b'{"error": "not found"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        self.reply(200, json.dumps({"got": n}).encode())

    def log_message(self, *a):
        pass

class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128 # h2o opens many upstream connections at once

print("listening", flush=True)
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
# A FastCGI responder for fastcgi.spawn: h2o starts it with its listening
# Unix socket on fd 0, one connection at a time is enough. It answers
# "fcgi METHOD URI", 404 when the URI has "missing".
cat >"$AP_TMP/fcgi_app.py" <<'PY'
import socket, struct

def record(c, buf):
    """(type, id, content), rest; None at EOF."""
    while len(buf) < 8 or len(buf) < 8 + struct.unpack(">H", buf[4:6])[0] + buf[6]:
        d = c.recv(65536)
        if not d:
            return None, buf
        buf += d
    n, pad = struct.unpack(">H", buf[4:6])[0], buf[6]
    return (buf[1], struct.unpack(">H", buf[2:4])[0], buf[8:8 + n]), buf[8 + n + pad:]

def out(typ, rid, data):
    return struct.pack(">BBHHBB", 1, typ, rid, len(data), 0, 0) + data

def params(b):
    i, d = 0, {}
    while i < len(b):
        lens = []
        for _ in range(2):
            if b[i] >> 7:
                lens.append(struct.unpack(">I", b[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lens.append(b[i])
                i += 1
        d[b[i:i + lens[0]].decode()] = b[i + lens[0]:i + lens[0] + lens[1]].decode()
        i += lens[0] + lens[1]
    return d

ls = socket.socket(fileno=0)
while True:
    c, _ = ls.accept()
    buf, p = b"", b""
    while True:
        r, buf = record(c, buf)
        if r is None:
            break
        typ, rid, data = r
        if typ == 4: # PARAMS
            p += data
        elif typ == 5 and not data: # the end of STDIN: answer
            env = params(p)
            uri = env.get("REQUEST_URI", "")
            status = "404 Not Found" if "missing" in uri else "200 OK"
            body = ("fcgi %s %s\n" % (env.get("REQUEST_METHOD"), uri)).encode()
            head = ("Status: %s\r\nContent-Type: text/plain\r\n\r\n" % status).encode()
            c.sendall(out(6, rid, head + body) + out(6, rid, b"") + out(3, rid, bytes(8)))
            p = b""
    c.close()
PY
BP=$(ap_free_port)
ap_bg backend "$AP_PY" "$AP_TMP/backend.py" "$BP"
BACKEND_PID=$AP_BG_PID
ap_wait_log backend '^listening'

P=$(ap_free_port)
S=$(ap_free_port)
DOWN=$(ap_free_port) # nothing listens there: a backend that is down
cat >"$AP_TMP/h2o.conf" <<CONF
listen:
  host: 127.0.0.1
  port: $P
listen:
  host: 127.0.0.1
  port: $S
  ssl:
    certificate-file: $AP_TMP/tls.crt
    key-file: $AP_TMP/tls.key
    ocsp-update-interval: 0
num-threads: 2
$user
pid-file: $AP_TMP/run/h2o.pid
error-log: $AP_TMP/h2o-error.log
hosts:
  default:
    paths:
      /api:
        proxy.reverse.url: http://127.0.0.1:$BP/api
      /down:
        proxy.reverse.url: http://127.0.0.1:$DOWN/api
      /f:
        fastcgi.spawn: "exec $AP_PY $AP_TMP/fcgi_app.py"
      /g:
        fastcgi.spawn: "APIPROF_SERVICE=it-h2o-fcgi exec $AP_PY $AP_TMP/fcgi_app.py"
      /m:
        mruby.handler: |
          Proc.new do |env|
            if env["PATH_INFO"] =~ %r{^/orders/(\d+)\$}
              [200, {"content-type" => "application/json"}, ["{\"order\": #{\$1}}\n"]]
            else
              [404, {"content-type" => "text/plain"}, ["no such order\n"]]
            end
          end
      /:
        file.dir: $W
CONF
B=http://127.0.0.1:$P
T=https://127.0.0.1:$S

# start_h2o NAME PRELOAD(1|0) : h2o in the foreground (no daemon mode);
# sets H2O_PID and waits for both ports.
start_h2o() {
	rm -f "$AP_TMP/run/h2o.pid"
	if [ "$2" = 1 ]; then
		ap_bg_preloaded "$1" h2o -c "$AP_TMP/h2o.conf"
	else
		ap_bg "$1" h2o -c "$AP_TMP/h2o.conf"
	fi
	H2O_PID=$AP_BG_PID
	ap_wait_port "$P"
	ap_wait_port "$S"
}
stop_h2o() { ap_stop_pid "$H2O_PID"; }

# dumps OUT : the same responses from whichever h2o runs, Date masked:
# HTTP/1.1 raw, then curl's headers and bodies over TLS (HTTP/1.1 and h2)
# and h2c.
dumps() {
	local u
	ap_raw "$P" --dump "$1.raw" "GET /static/small.txt" "GET /static/big.bin" "GET /api/users/7" \
		"GET /nope" "GET /m/orders/5" >/dev/null
	for u in /static/small.txt /static/big.bin /api/users/7 /nope /m/orders/5; do
		curl -sk --http1.1 --max-time 20 -D - "$T$u"
		curl -sk --http2 --max-time 20 -D - "$T$u"
		curl -s --http2-prior-knowledge --max-time 20 -D - "$B$u"
	done | sed 's/^\([Dd]ate:\).*/\1 -/' >"$1.curl" || ap_fail "fetching the responses failed"
}

# ---- 1. without the preload ----
start_h2o h2o-plain 0
dumps "$AP_TMP/plain"
stop_h2o
BACKEND_BEFORE=$(grep -c '^[A-Z]' "$AP_TMP/backend.log")

# ---- 2. HTTP/1.1, preloaded ----
start_h2o h2o 1
ap_log "collector $AP_URL, h2o $H2O_PID on $P (TLS $S), backend $BP"
dumps "$AP_TMP/pre"
cmp -s "$AP_TMP/plain.raw" "$AP_TMP/pre.raw" ||
	ap_fail "HTTP/1.1 responses differ with the preload: $(cmp "$AP_TMP/plain.raw" "$AP_TMP/pre.raw")"
cmp -s "$AP_TMP/plain.curl" "$AP_TMP/pre.curl" ||
	ap_fail "TLS/h2c responses differ with the preload: $(diff <(grep -a -v '^.\{200\}' "$AP_TMP/plain.curl") <(grep -a -v '^.\{200\}' "$AP_TMP/pre.curl") | head -20)"
ap_log "ok: responses byte-identical with and without the preload (HTTP/1.1, TLS HTTP/1.1 and h2, h2c)"

ap_curl_many "$AP_TMP/ka.out" "$B/static/small.txt" "$B/static/big.bin" "$B/" "$B/nope" \
	"$B/api/users/1" "$B/api/users/2" "$B/api/boom" "$B/api/slow" "$B/m/orders/17" "$B/m/orders/18" \
	"$B/api/missing"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" \
	"200 200 200 404 200 200 500 200 200 200 404 "
etag=$(curl -s --max-time 10 -D - -o /dev/null "$B/static/small.txt" | tr -d '\r' | sed -n 's/^etag: //Ip')
[ -n "$etag" ] || ap_fail "no ETag for /static/small.txt"
fmt='%{http_code} %{num_connects} %{size_upload} %{size_request} %{size_header} %{size_download}\n'
curl -s --max-time 10 -w "$fmt" -o /dev/null -H "If-None-Match: $etag" "$B/static/small.txt" \
	--next -s --max-time 10 -w "$fmt" -o /dev/null -r 1000-1999 "$B/static/big.bin" \
	--next -s --max-time 10 -w "$fmt" -o /dev/null -I "$B/static/big.bin" >"$AP_TMP/cond.out" ||
	ap_fail "304, Range or HEAD failed"
ap_assert_eq "304, Range, HEAD statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/cond.out")" "304 206 200 "
ap_raw "$P" --pipeline --dump "$AP_TMP/pipe.raw" "GET /static/small.txt" "HEAD /static/small.txt" \
	"GET /api/users/77" "GET /m/orders/3" >"$AP_TMP/pipe.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe.out")" "200 200 200 200 "
for h in 'Expect:' 'Expect: 100-continue' 'Transfer-Encoding: chunked'; do
	curl -s --max-time 20 -o "$AP_TMP/up.body" \
		-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
		-H "$h" --data-binary @"$W/static/big.bin" "$B/api/upload" >>"$AP_TMP/up.out" ||
		ap_fail "POST /api/upload ($h) failed"
	ap_assert_eq "POST /api/upload ($h): the backend read it all" "$(cat "$AP_TMP/up.body")" '{"got": 1500000}'
done

# A body the backend streams until it closes, which h2o sends chunked.
ap_raw "$P" --dump "$AP_TMP/stream.raw" "GET /api/stream" >"$AP_TMP/stream.out"
grep -q 'transfer-encoding: chunked' "$AP_TMP/stream.raw" || ap_fail "GET /api/stream was not sent chunked"
# A client that reads 100,000 bytes of a 16 MiB file and closes (its
# receive buffer small: h2o cannot have written it all by then).
"$AP_PY" - "$P" <<'PY' || ap_fail "the aborting client failed"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /static/huge.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-abort\r\n\r\n")
n = 0
while n < 100000:
    n += len(s.recv(65536))
s.close()
PY

# FastCGI apps h2o spawns (fastcgi.spawn): they inherit LD_PRELOAD, and
# APIPROF_SERVICE unless the command sets it (/g does).
FCGI_POST='POST /f/missing HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello'
# (h2o closes after a FastCGI 404, sent with no length: one per connection)
ap_raw "$P" "GET /f/items/3" "GET /g/items/4" "GET /g/missing" >"$AP_TMP/fcgi.out"
ap_raw "$P" "$FCGI_POST" >>"$AP_TMP/fcgi.out"
ap_assert_eq "FastCGI statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/fcgi.out")" "200 200 404 404 "

# ---- 3. HTTP/2 in the clear ----
# curl with prior knowledge: one stream per connection.
for u in /static/small.txt /api/users/21 /m/orders/22 /g/items/23; do
	curl -s --http2-prior-knowledge --max-time 10 -o /dev/null -w '%{http_code} %{http_version}\n' "$B$u"
done >"$AP_TMP/pk.out" || ap_fail "curl --http2-prior-knowledge failed"
ap_assert_eq "prior-knowledge statuses" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/pk.out")" "200/2 200/2 200/2 200/2 "
# nghttp: seven streams at once on one connection, its frames logged;
# windows of 2^24 so that it sends no WINDOW_UPDATE on a stream (which
# h2o might read after the stream ended). The backend's Link header makes
# h2o push /static/small.txt on /api/push: a pushed stream is no request.
nghttp -n -v -w 24 -W 24 "$B/static/big.bin" "$B/api/push" "$B/api/slow" "$B/nope" "$B/api/users/31" \
	"$B/m/orders/32" "$B/api/stream" >"$AP_TMP/nghttp.out" 2>&1 || ap_fail "nghttp failed: $(tail -5 "$AP_TMP/nghttp.out")"
grep -q 'recv PUSH_PROMISE frame' "$AP_TMP/nghttp.out" || ap_fail "h2o pushed nothing on /api/push"
# h2load: 2 connections, 10 streams in flight on each.
h2load -n 60 -c 2 -m 10 "$B/api/users/41" "$B/static/small.txt" "$B/m/orders/42" \
	>"$AP_TMP/h2load.log" 2>&1 || ap_fail "h2load failed: $(cat "$AP_TMP/h2load.log")"
grep -q '^requests: 60 total, 60 started, 60 done, 60 succeeded' "$AP_TMP/h2load.log" ||
	ap_fail "h2load: $(grep -E '^(requests|status)' "$AP_TMP/h2load.log")"
# Upgrade: h2c (curl --http2 on http://): h2o upgrades; the first request
# is the HTTP/1.1 one answered 101, the others are streams of a connection
# no longer followed.
curl -s --http2 --max-time 10 -w '%{http_code} %{http_version} %{num_connects}\n' \
	-o /dev/null "$B/up/1" -o /dev/null "$B/up/2" -o /dev/null "$B/up/3" >"$AP_TMP/upgrade.out" ||
	ap_fail "curl --http2 (Upgrade: h2c) failed"
ap_assert_eq "Upgrade: h2c, the client's view" "$(awk '{printf "%s/%s/%s ", $1, $2, $3}' "$AP_TMP/upgrade.out")" \
	"404/2/1 404/2/0 404/2/0 "
# The same by hand (ap_raw stops at a 101's head): "STATUS HEAD_BYTES".
up='GET /up/9 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n'
read -r up_status up_head < <(ap_raw "$P" "$up")
up_req=$(printf %b "$up" | wc -c)
ap_assert_eq "raw Upgrade: h2c: status" "$up_status" 101

# ---- 4. TLS: h2o's own BIO, followed by binding ----
curl -sk --http1.1 --max-time 20 -w '%{http_code} %{http_version} %{size_request} %{size_header} %{size_download}\n' \
	-o /dev/null "$T/static/tls.txt" \
	-o /dev/null "$T/api/tls" -o /dev/null "$T/static/big.bin" >"$AP_TMP/tls.out" || ap_fail "curl over TLS failed"
curl -sk --http2 --max-time 20 -w '%{http_code} %{http_version}\n' -o /dev/null "$T/static/tls.txt" \
	-o /dev/null "$T/api/tls" >>"$AP_TMP/tls.out" || ap_fail "curl --http2 over TLS failed"
ap_assert_eq "TLS statuses" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/tls.out")" "200/1.1 200/1.1 200/1.1 200/2 200/2 "
awk 'NR == 1 { print $3 ", " $4 + $5 }' "$AP_TMP/tls.out" >"$AP_TMP/tls.bytes"
h2load -n 40 -c 2 -m 10 "$T/api/tls" "$T/static/tls.txt" >"$AP_TMP/h2load-tls.log" 2>&1 ||
	ap_fail "h2load over TLS failed: $(cat "$AP_TMP/h2load-tls.log")"
grep -q '^requests: 40 total, 40 started, 40 done, 40 succeeded' "$AP_TMP/h2load-tls.log" ||
	ap_fail "h2load over TLS: $(grep -E '^(requests|status)' "$AP_TMP/h2load-tls.log")"

# ---- 5. a backend that is down: h2o's 502 ----
ap_raw "$P" "GET /down/users/99" >"$AP_TMP/502.out"
ap_assert_eq "GET /down/users/99 (nothing listens)" "$(cut -d' ' -f1 "$AP_TMP/502.out")" 502

# dumps (preloaded once: h1 raw, TLS h1 and h2, h2c; and the raw and h2c
# ones of the plain run): 4 each; h2load: 60 streams over 3 URLs, 20 each;
# TLS: 3 by curl, 40 by h2load over 2 URLs.
ap_expect_counts <<E
GET /static/small.txt 29
GET /static/big.bin 8
GET /static/huge.bin 1
GET /api/users/{id} 29
GET /down/users/{id} 1
GET /nope 6
GET /m/orders/{id} 29
GET /api/tls 22
GET /static/tls.txt 22
GET / 1
GET /api/boom 1
GET /api/slow 2
GET /api/missing 1
HEAD /static/small.txt 1
HEAD /static/big.bin 1
POST /api/upload 3
GET /api/stream 2
GET /api/push 1
GET /up/{id} 2
GET /f/items/{id} 2
POST /f/missing 2
GET /g/items/{id} 2
GET /g/missing 1
E
AP_SERVICE=it-h2o-fcgi ap_expect_counts <<E
GET /g/items/{id} 2
GET /g/missing 1
E

# Every request of this service, once the counts are settled, oldest
# first (by start time: two event loops' records interleave).
fetch_requests() {
	ap_api /api/v1/requests --data-urlencode limit=1000 |
		jq --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s)] | sort_by(.ts)' >"$AP_TMP/requests.json"
}
fetch_requests
# rq PATH [METHOD] : the requests of PATH (exact), oldest first.
rq() {
	jq --arg p "$1" --arg m "${2:-GET}" '[.[] | select(.path == $p and .method == $m)]' "$AP_TMP/requests.json"
}
# field METHOD ROUTE FIELD : from the endpoints ap_expect_counts read.
field() {
	jq --arg m "$1" --arg r "$2" --arg f "$3" --arg s "$AP_SERVICE" \
		'[.endpoints[] | select(.service == $s and .method == $m and .route == $r)][0][$f] // 0' "$AP_TMP/endpoints.json"
}
# expect_one PATH METHOD STATUS BYTES_IN BYTES_OUT : one request of PATH
# (of several maybe: dumps, h2load) has them, and was not aborted. Noted
# here, checked all at once by check_ones (one jq on a loaded machine
# costs a third of a second).
expect_one() { printf '%s %s %s %s %s\n' "$2" "$1" "$3" "$4" "$5" >>"$AP_TMP/ones.txt"; }
check_ones() {
	jq -r --rawfile want "$AP_TMP/ones.txt" '. as $reqs | $want | split("\n")[] | select(length > 0) |
		split(" ") as $w | [$reqs[] | select(.method == $w[0] and .path == $w[1] and
			.status == ($w[2] | tonumber) and .bytes_in == ($w[3] | tonumber) and
			.bytes_out == ($w[4] | tonumber) and (.aborted | not))] |
		"\(if length >= 1 then "ok" else "NONE" end): \($w[0]) \($w[1]): status \($w[2]), bytes in \($w[3]), out \($w[4])"' \
		"$AP_TMP/requests.json" >"$AP_TMP/ones.out" || ap_fail "checking the requests failed"
	sed "s/^/$AP_NAME: /" "$AP_TMP/ones.out"
	! grep -q '^NONE' "$AP_TMP/ones.out" || ap_fail "requests missing or wrong (NONE above)"
}
reqlen() { printf '%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }

# HTTP/1.1 keep-alive, line by line: curl's sizes.
n=0
for p in /static/small.txt /static/big.bin / /nope /api/users/1 /api/users/2 /api/boom /api/slow \
	/m/orders/17 /m/orders/18 /api/missing; do
	n=$(( n + 1 ))
	read -r code _ _ sreq shdr sdl <<<"$(sed -n "${n}p" "$AP_TMP/ka.out")"
	case $p in
	/static/small.txt) ;; # checked below, with the 304
	*) expect_one "$p" GET "$code" "$sreq" $(( shdr + sdl )) ;;
	esac
done
read -r code _ _ sreq shdr sdl <"$AP_TMP/cond.out"
ap_assert_jq "GET /static/small.txt 304: bytes as curl saw them" \
	"[.[] | select(.status == 304)] | length == 1 and .[0].bytes_in == $sreq and .[0].bytes_out == $(( shdr + sdl ))" \
	"$(rq /static/small.txt)"
read -r code _ _ sreq shdr sdl <<<"$(sed -n 2p "$AP_TMP/cond.out")"
ap_assert_jq "GET /static/big.bin 206: bytes as curl saw them (1000 of the body)" \
	"[.[] | select(.status == 206)] | length == 1 and .[0].bytes_in == $sreq and .[0].bytes_out == $(( shdr + sdl )) and $sdl == 1000" \
	"$(rq /static/big.bin)"
read -r code _ _ sreq shdr sdl <<<"$(sed -n 3p "$AP_TMP/cond.out")"
expect_one /static/big.bin HEAD 200 "$sreq" "$shdr"
# the pipeline: ap_raw's requests and the responses it read
n=0
for r in "GET /static/small.txt" "HEAD /static/small.txt" "GET /api/users/77" "GET /m/orders/3"; do
	n=$(( n + 1 ))
	read -r code bytes <<<"$(sed -n "${n}p" "$AP_TMP/pipe.out")"
	[ "$r" = "GET /static/small.txt" ] && continue # h2load's come later
	expect_one "${r#* }" "${r%% *}" "$code" "$(reqlen "$r")" "$bytes"
done
# the uploads, each body read whole (1,500,000 bytes); the 100 Continue
# counted out.
ap_assert_jq "POST /api/upload: bytes in and out as curl sent and received them" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == $(awk '{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2 + $3, $4 + $5} END {print "]"}' "$AP_TMP/up.out")" \
	"$(rq /api/upload POST)"
read -r code bytes <"$AP_TMP/stream.out"
expect_one /api/stream GET "$code" "$(reqlen "GET /api/stream")" "$bytes"
ap_assert_jq "GET /static/huge.bin, the client gone after 100,000 bytes: aborted, status 200, less than all out" \
	'length == 1 and .[0].aborted and .[0].status == 200 and .[0].bytes_out >= 100000 and .[0].bytes_out < 16777216' \
	"$(rq /static/huge.bin)"
# The slow route, over HTTP/1.1 and HTTP/2: 400 ms or more each.
# The backend's 500 is an error; h2o's 502 too, and a 404 is none.
ap_assert_eq "error_count of GET /api/boom" "$(field GET /api/boom error_count)" 1
ap_assert_eq "error_count of GET /down/users/{id} (the 502)" "$(field GET '/down/users/{id}' error_count)" 1
ap_assert_eq "error_count of GET /nope" "$(field GET /nope error_count)" 0
read -r code bytes <"$AP_TMP/502.out"
expect_one /down/users/99 GET 502 "$(reqlen "GET /down/users/99")" "$bytes"

# HTTP/2: per stream of nghttp's connection, the frames it sent (bytes
# in) and received (bytes out) on that stream, 9-byte headers included;
# the PUSH_PROMISE is a frame of /api/push's stream, the pushed stream's
# own frames are nobody's.
awk '
function num(k,   m) { match($0, k "=[0-9]+"); return substr($0, RSTART + length(k) + 1, RLENGTH - length(k) - 1) + 0 }
/\] (send|recv) [A-Z_]+ frame </ {
	sid = num("stream_id"); len = num("length"); last = 0
	if (sid == 0) next
	if ($0 ~ /\] send /) { fin[sid] += len + 9; if ($0 ~ /send HEADERS/) last = sid }
	else fout[sid] += len + 9
	next
}
/^ +:path: / && last { path[last] = $2; last = 0 }
END { for (s in path) print path[s], fin[s] + 0, fout[s] + 0 }' "$AP_TMP/nghttp.out" | sort >"$AP_TMP/nghttp.streams"
ap_assert_eq "nghttp's streams" "$(cut -d' ' -f1 "$AP_TMP/nghttp.streams" | tr '\n' ' ')" \
	"/api/push /api/slow /api/stream /api/users/31 /m/orders/32 /nope /static/big.bin "
while read -r p bin bout; do
	code=200
	[ "$p" = /nope ] && code=404
	expect_one "$p" GET "$code" "$bin" "$bout"
done <"$AP_TMP/nghttp.streams"
for p in /api/users/41 /m/orders/42; do
	ap_assert_jq "GET $p (h2load): 20 streams, 200 each, none aborted" \
		'length == 20 and all(.[]; .status == 200 and (.aborted | not))' "$(rq "$p")"
done
# Upgrade: h2c: the upgrading request, answered 101, and nothing after it.
ap_assert_jq "GET /up/1 (curl --http2): 101" 'length == 1 and .[0].status == 101 and (.[0].aborted | not)' "$(rq /up/1)"
expect_one /up/9 GET 101 "$up_req" "$up_head"

# FastCGI: h2o's side (HTTP, as curl saw it) and, under /f, the spawned
# app's in the same service (FastCGI: the body in, the body after the CGI
# head out), from another pid; under /g the app's in its own service.
n=0
for r in "GET /f/items/3" "GET /g/items/4" "GET /g/missing" "$FCGI_POST"; do
	n=$(( n + 1 ))
	read -r code bytes <<<"$(sed -n "${n}p" "$AP_TMP/fcgi.out")"
	req=${r%% HTTP/1.1*}
	case $r in
	*'\r\n'*) len=$(printf %b "$r" | wc -c) ;;
	*) len=$(reqlen "$r") ;;
	esac
	expect_one "${req#* }" "${req%% *}" "$code" "$len" "$bytes"
done
expect_one /f/items/3 GET 200 0 20
expect_one /f/missing POST 404 5 21
ap_assert_jq "the FastCGI app's records under /f: another pid than h2o's" \
	"[.[] | select(.path | startswith(\"/f/\")) | select(.pid != $H2O_PID)] | length == 2 and (map(.pid) | unique | length) == 1" \
	"$(cat "$AP_TMP/requests.json")"
ap_assert_jq "the FastCGI app's records under /g, service it-h2o-fcgi: its bodies" \
	'[.requests[] | select(.service == "it-h2o-fcgi") | [.method, .path, .status, .bytes_in, .bytes_out]] | sort ==
	 [["GET", "/g/items/23", 200, 0, 21], ["GET", "/g/items/4", 200, 0, 20], ["GET", "/g/missing", 404, 0, 20]]' \
	"$(ap_api /api/v1/requests --data-urlencode limit=1000)"
check_ones

# TLS: every request recorded, 200, none aborted; over HTTP/1.1 (the
# first of each route) with the bytes curl sent and read.
ap_assert_jq "TLS-only routes: 44 requests, all 200, none aborted" \
	'[.[] | select(.path == "/api/tls" or .path == "/static/tls.txt")] |
	 length == 44 and all(.[]; .status == 200 and (.aborted | not) and .bytes_in > 0 and .bytes_out > 0)' \
	"$(cat "$AP_TMP/requests.json")"
ap_assert_jq "GET /static/tls.txt over TLS HTTP/1.1: bytes in and out as curl counted them" \
	"(map(select(.path == \"/static/tls.txt\")) | .[0] | [.bytes_in, .bytes_out]) == [$(sed -n 1p "$AP_TMP/tls.bytes")]" \
	"$(cat "$AP_TMP/requests.json")"

# Everything was h2o's, one process, nothing untracked; the backend served
# every proxied request (37 plain, 24 over TLS; the 502 never reached it)
# through connect()ed sockets that were never requests.
pids=$(jq -r '[.[] | select(.path | startswith("/f/") | not) | .pid] | unique | .[]' "$AP_TMP/requests.json" | tr '\n' ' ')
ap_assert_eq "pids of the requests (but the FastCGI app's)" "$pids" "$H2O_PID "
tids=$(jq '[.[].tid] | unique | length' "$AP_TMP/requests.json")
ap_log "requests served by $tids of h2o's threads"
ap_assert_jq "/api/v1/status: h2o, no untracked connection" \
	"[.processes[] | select(.pid == $H2O_PID)] | length == 1 and .[0].untracked_connections == 0 and .[0].dropped == 0" \
	"$(ap_api /api/v1/status)"
served=$(( $(grep -c '^[A-Z]' "$AP_TMP/backend.log") - BACKEND_BEFORE ))
ap_assert_eq "requests the backend served while h2o was preloaded" "$served" 61

# ---- 6. a graceful stop with requests in flight ----
# SIGTERM while a request over HTTP/1.1 and a stream over h2c wait on the
# backend's 400 ms: h2o finishes both, then exits; both are recorded.
starts=$(grep -c '^start /api/slow' "$AP_TMP/backend.log")
curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "$B/api/slow" >"$AP_TMP/grace1.out" &
g1=$!
nghttp -n "$B/api/slow" >"$AP_TMP/grace2.out" 2>&1 &
g2=$!
for i in $(seq 200); do
	[ "$(grep -c '^start /api/slow' "$AP_TMP/backend.log")" -ge $(( starts + 2 )) ] && break
	sleep 0.05
done
[ "$(grep -c '^start /api/slow' "$AP_TMP/backend.log")" -ge $(( starts + 2 )) ] ||
	ap_fail "the two slow requests did not reach the backend"
kill -TERM "$H2O_PID"
wait "$g1" || ap_fail "curl during the graceful stop failed"
wait "$g2" || ap_fail "nghttp during the graceful stop failed: $(cat "$AP_TMP/grace2.out")"
wait "$H2O_PID"
ap_assert_eq "h2o's exit status after SIGTERM" "$?" 0
ap_assert_eq "GET /api/slow during the graceful stop (HTTP/1.1)" "$(cat "$AP_TMP/grace1.out")" 200
ap_assert_eq "GET /api/slow count, the two in flight at the stop included" "$(ap_wait_count /api/slow 4)" 4
fetch_requests
ap_assert_jq "GET /api/slow: 4, 400 ms to 5 s each, none aborted" \
	'length == 4 and all(.[]; .status == 200 and .duration_ms >= 400 and .duration_ms < 5000 and (.aborted | not))' \
	"$(rq /api/slow)"
ap_log "PASS"
