#!/bin/bash
# HTTP inside TLS, followed through libssl's calls (preload/hook_ssl.c):
# nginx terminating TLS itself (2 workers, www-data when root: SSL_read and
# SSL_write, keep-alive, a POST with its body, a 404, a 500, a file that
# plain HTTP would send with sendfile) beside a plain-HTTP port of the same
# server; then Python's http.server wrapped in ssl (SSL_read_ex and
# SSL_write_ex, threads). Counts per route are exact, statuses right,
# bytes_in is the plaintext request's size, and the responses are
# byte-identical with and without the preload. The Python server also
# makes an HTTPS call of its own (a TLS connection it did not accept): only
# the nginx that answers it counts that request.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 nginx openssl
ap_require_build

ap_make_cert "$AP_TMP/tls"
head -c 100000 /dev/urandom >"$AP_TMP/body.bin"

ap_start_collector

# ---- 1. nginx: TLS on one port, plain HTTP on another ----
# (ap_start_nginx with AP_NGINX_CERT: HTTPS on AP_TLS_PORT, plain on AP_PORT)
AP_NGINX_CERT=$AP_TMP/tls
# traffic OUT : the same requests against whichever nginx runs; raw
# responses (Date masked) go to OUT.dump for the byte comparison.
traffic() {
	local T=https://127.0.0.1:$AP_TLS_PORT
	# Keep-alive: one TLS connection, seven requests (the 500 last: nginx
	# closes after it).
	curl -sk --max-time 30 -w '%{http_code} %{num_connects}\n' \
		-o /dev/null "$T/api/items" -o /dev/null "$T/api/users/1" -o /dev/null "$T/api/users/2" \
		-o /dev/null "$T/static/big.bin" -o /dev/null "$T/missing" -o /dev/null "$T/api/items" \
		-o /dev/null "$T/error" >"$1" || ap_fail "curl over TLS failed"
	# A POST with a 100,000-byte body, then a GET, on one connection.
	curl -sk --max-time 30 -H 'Expect:' --data-binary @"$AP_TMP/body.bin" -o /dev/null \
		-w '%{http_code} %{num_connects} %{size_request} %{size_upload}\n' "$T/upload" \
		--next -sk --max-time 30 -o /dev/null -w '%{http_code} %{num_connects}\n' "$T/api/items" \
		>>"$1" || ap_fail "POST over TLS failed"
	# Plain HTTP on the other port of the same workers.
	curl -s --max-time 30 -w '%{http_code} %{num_connects}\n' \
		-o /dev/null "http://127.0.0.1:$AP_PORT/api/items" \
		-o /dev/null "http://127.0.0.1:$AP_PORT/api/users/9" >>"$1" || ap_fail "plain curl failed"
	# Responses, byte for byte (the Date header masked).
	for u in /api/items /api/users/7 /missing /static/big.bin; do
		curl -sk --max-time 30 -D - "$T$u" | sed 's/^Date: .*/Date: -/'
	done >"$1.dump" || ap_fail "fetching the responses failed"
}

ap_start_nginx nginx-plain 0
traffic "$AP_TMP/plain.out"
ap_stop_pid "$AP_NGINX_PID"

AP_SERVICE=tls-nginx
ap_start_nginx nginx 1
traffic "$AP_TMP/pre.out"
ap_assert_eq "statuses and connections" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/pre.out")" \
	"200/1 200/0 200/0 200/0 404/0 200/0 500/0 200/1 200/0 200/1 200/0 "
cmp -s "$AP_TMP/plain.out.dump" "$AP_TMP/pre.out.dump" ||
	ap_fail "responses over TLS differ with the preload: $(diff <(od -c "$AP_TMP/plain.out.dump" | head -50) <(od -c "$AP_TMP/pre.out.dump" | head -50) | head -20)"
ap_log "ok: responses over TLS byte-identical with and without the preload"

# nginx_counts N : nginx's counts, with N requests of /api/items.
nginx_counts() {
	ap_expect_counts <<EOF
GET /api/items $1
GET /api/users/{id} 4
GET /static/big.bin 2
GET /missing 2
GET /error 1
POST /upload 1
EOF
}
nginx_counts 5
# (nginx answers this POST before reading its body: bytes_in is what it
# had read by then; Python's below reads it all first.)
ap_assert_jq "the POST: status 200, not aborted" '.[0].status == 200 and .[0].aborted == false' \
	"$(ap_requests /upload POST)"
ap_assert_jq "the file: bytes_out is the 262,144-byte body and its head" \
	'.[0].bytes_out > 262144 and .[0].bytes_out < 262600' "$(ap_requests /static/big.bin)"
ap_assert_jq "the 500 is an error, nothing aborted" \
	'[.endpoints[] | select(.service == "tls-nginx")] | (map(select(.route == "/error"))[0].error_count == 1) and (map(.error_count) | add == 1)' \
	"$(ap_api /api/v1/endpoints)"

# ---- 2. Python's http.server in ssl: SSL_read_ex / SSL_write_ex ----
cat >"$AP_TMP/tlspy.py" <<'PY'
import http.server, json, ssl, sys, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/orders/"):
            self.reply(200, json.dumps({"order": self.path.split("/")[2]}).encode())
        elif self.path == "/outbound":
            # An HTTPS call of our own: a TLS connection the server did not
            # accept, through the same SSL_read/SSL_write.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with urllib.request.urlopen("https://127.0.0.1:%s/api/items" % sys.argv[2], context=ctx) as r:
                self.reply(200, r.read())
        else:
            self.reply(404, b'{"error": "not found"}')
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(n)
        self.reply(201, json.dumps({"got": len(data)}).encode())
    def log_message(self, *a): pass
import socketserver
class Forking(socketserver.ForkingMixIn, http.server.HTTPServer):
    pass
kind = http.server.ThreadingHTTPServer if len(sys.argv) < 6 else Forking
srv = kind(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
PY
AP_SERVICE=tls-python
PY_PORT=$(ap_free_port)
ap_bg_preloaded tlspy python3 "$AP_TMP/tlspy.py" "$PY_PORT" "$AP_TLS_PORT" "$AP_TMP/tls.crt" "$AP_TMP/tls.key"
ap_wait_log tlspy '^listening'
P=https://127.0.0.1:$PY_PORT
curl -sk --max-time 30 -w '%{http_code} %{num_connects}\n' \
	-o /dev/null "$P/orders/1" -o /dev/null "$P/orders/2" -o /dev/null "$P/orders/3" \
	-o /dev/null "$P/nope" -o /dev/null "$P/outbound" >"$AP_TMP/py.out" || ap_fail "curl to Python failed"
curl -sk --max-time 30 --data-binary @"$AP_TMP/body.bin" -H 'Expect:' -o "$AP_TMP/py.post" \
	-w '%{http_code} %{num_connects} %{size_request} %{size_upload}\n' "$P/orders/new" \
	>>"$AP_TMP/py.out" || ap_fail "POST to Python failed"
ap_assert_eq "Python statuses and connections" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/py.out")" \
	"200/1 200/0 200/0 404/0 200/0 201/1 "
ap_assert_eq "Python read the whole POST body" "$(cat "$AP_TMP/py.post")" '{"got": 100000}'
ap_expect_counts <<EOF
GET /orders/{id} 3
GET /nope 1
GET /outbound 1
POST /orders/new 1
EOF
want_in=$(awk 'NR == 6 {print $3 + $4}' "$AP_TMP/py.out")
ap_assert_jq "the POST: bytes_in is the plaintext request ($want_in bytes), not aborted" \
	".[0].status == 201 and .[0].bytes_in == $want_in and .[0].aborted == false" \
	"$(ap_requests /orders/new POST)"
ap_assert_jq "nothing aborted, one 404" \
	'[.endpoints[] | select(.service == "tls-python")] | (map(.error_count) | add == 0) and (map(select(.route == "/nope"))[0].count == 1)' \
	"$(ap_api /api/v1/endpoints)"
# The server's own HTTPS call reached nginx, and only nginx counted it.
AP_SERVICE=tls-nginx
nginx_counts 6
ap_log "TLS: nginx (SSL_read/SSL_write) and Python (SSL_read_ex/SSL_write_ex): ok"

# ---- 3. behind a load balancer: PROXY protocol, and HTTP/2 ----
# nginx with `proxy_protocol` on an HTTPS and a plain listener, as behind
# HAProxy in TCP mode or an AWS NLB: each connection begins with a PROXY
# header (version 1, text, from curl --haproxy-protocol; version 2, binary,
# from the client below), then the TLS handshake or the request. Found
# (red team): the header was taken for the connection's first request
# line, which failed, so no request on such a connection was ever
# counted, over TLS or not. Beside them, a listener with `http2`: curl
# --http2 settles on HTTP/2 by ALPN, followed stream by stream (h2.sh has
# the rest of HTTP/2): its 200 and its 500 count, the 500 as the only
# error; --http1.1 on the same port counts too. Then a request sent as
# TLS 1.3 early data.
cat >"$AP_TMP/ppclient.py" <<'PY'
import socket, ssl, struct, sys
port, tls, version = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
if version == "2":
    addr = socket.inet_aton("10.1.2.3") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, 443)
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr)
else:
    s.sendall(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 443\r\n")
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
buf = b""
for path in sys.argv[4:]:
    req = ("GET %s HTTP/1.1\r\nHost: lb\r\n\r\n" % path).encode()
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(buf) < n:
        buf += s.recv(65536)
    buf = buf[n:]
    print(head.split(b" ")[1].decode(), len(req))
PY
AP_SERVICE=tls-lb
PP_TLS=$(ap_free_port) PP_PLAIN=$(ap_free_port) H2_PORT=$(ap_free_port)
AP_NGINX_TLS_CONF="listen 127.0.0.1:$PP_TLS ssl proxy_protocol; listen 127.0.0.1:$PP_PLAIN proxy_protocol; listen 127.0.0.1:$H2_PORT ssl http2; ssl_protocols TLSv1.2 TLSv1.3; ssl_early_data on; ssl_session_cache shared:ed:1m;"
ap_start_nginx nginx-lb 1
{
	curl -sk --haproxy-protocol --http1.1 --max-time 30 -w '%{http_code}\n' \
		-o /dev/null "https://127.0.0.1:$PP_TLS/api/users/1" -o /dev/null "https://127.0.0.1:$PP_TLS/api/items"
	curl -s --haproxy-protocol --max-time 30 -o /dev/null -w '%{http_code}\n' \
		"http://127.0.0.1:$PP_PLAIN/api/users/2"
	$AP_PY "$AP_TMP/ppclient.py" "$PP_TLS" 1 2 /api/users/3 /api/items
	$AP_PY "$AP_TMP/ppclient.py" "$PP_PLAIN" 0 2 /api/users/4 /missing
	curl -sk --http2 --max-time 30 -w '%{http_code} %{http_version}\n' \
		-o /dev/null "https://127.0.0.1:$H2_PORT/api/items" -o /dev/null "https://127.0.0.1:$H2_PORT/error"
	curl -sk --http1.1 --max-time 30 -o /dev/null -w '%{http_code} %{http_version}\n' \
		"https://127.0.0.1:$H2_PORT/api/users/5"
} >"$AP_TMP/lb.out" || ap_fail "the load balancer's clients failed: $(cat "$AP_TMP/lb.out")"
# TLS 1.3 0-RTT (nginx's ssl_early_data): a session resumed with a request
# sent as early data, which nginx reads with SSL_read_early_data and
# answers with SSL_write_early_data. Counted once: those call
# SSL_read_ex/SSL_write_ex inside (through the PLT here; bound inside
# libssl where it is linked -Bsymbolic-functions, as on Ubuntu).
printf 'GET /api/users/%s HTTP/1.1\r\nHost: ed\r\nConnection: close\r\n\r\n' 7 >"$AP_TMP/ed1.req"
printf 'GET /api/users/%s HTTP/1.1\r\nHost: ed\r\nConnection: close\r\n\r\n' 8 >"$AP_TMP/ed2.req"
timeout 10 openssl s_client -connect "127.0.0.1:$AP_TLS_PORT" -tls1_3 -sess_out "$AP_TMP/ed.sess" \
	-ign_eof <"$AP_TMP/ed1.req" >"$AP_TMP/ed1.out" 2>&1
timeout 10 openssl s_client -connect "127.0.0.1:$AP_TLS_PORT" -tls1_3 -sess_in "$AP_TMP/ed.sess" \
	-early_data "$AP_TMP/ed2.req" -ign_eof </dev/null >"$AP_TMP/ed2.out" 2>&1
grep -aq '^HTTP/1.1 200' "$AP_TMP/ed1.out" && grep -aq '^HTTP/1.1 200' "$AP_TMP/ed2.out" &&
	grep -aq '^Early data was accepted' "$AP_TMP/ed2.out" ||
	ap_fail "no early data answered: $(grep -a -E '^(HTTP|Early|Reused|New)' "$AP_TMP/ed1.out" "$AP_TMP/ed2.out")"
ap_assert_eq "PROXY protocol and HTTP/2 statuses" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/lb.out")" \
	"200/ 200/ 200/ 200/39 200/37 200/39 404/35 200/2 500/2 200/1.1 "
ap_expect_counts <<EOF
GET /api/users/{id} 7
GET /api/items 3
GET /missing 1
GET /error 1
EOF
ap_assert_jq "the request sent as early data: 200, its 58 bytes once, not aborted" \
	'map(select(.path == "/api/users/8")) | length == 1 and .[0].status == 200 and .[0].bytes_in == 58 and .[0].aborted == false' \
	"$(ap_requests /api/users/{id})"
ap_assert_jq "after a PROXY v2 header, bytes_in is the request alone (39 bytes)" \
	'map(select(.bytes_in == 39)) | length == 2' "$(ap_requests /api/users/{id})"
ap_assert_jq "nothing aborted, one error: the 500 over HTTP/2" \
	'[.endpoints[] | select(.service == "tls-lb")] | map(.error_count) | add == 1' \
	"$(ap_api /api/v1/endpoints)"
ap_log "TLS: PROXY protocol v1/v2 before TLS and plain HTTP, HTTP/2 by ALPN: ok"

# ---- 4. the ways a server may drive libssl (tests/servers/tlsedge.c) ----
# One process serves its forked client's connections one after another:
# non-blocking with SSL_read wanting more and partial writes
# (SSL_MODE_ENABLE_PARTIAL_WRITE), a whole write retried with the same
# buffer after SSL_ERROR_WANT_WRITE (each byte counted once), SSL_peek
# before SSL_read, one SSL object reused (SSL_clear, SSL_set_fd), a client
# sending close_notify instead of waiting (aborted), a plain connection
# after the TLS ones, a fork after the request was read (the child
# answers; the parent's close of its copy is no abort), the response
# written by another thread, a TLS 1.3 key update and a TLS 1.2
# renegotiation between requests, SSL_read_ex/SSL_write_ex, then a vfork()
# child ending in _exit() before /after (it must not take the parent's
# event buffer: /after would be lost); last, /sni, whose handshake the
# first SSL_read completes, running the servername callback's SQL (libpq),
# which must be recorded; then an SSL object over memory BIOs whose
# request is read in two SSL_reads, the second from what libssl holds,
# after another connection's handshake (SSL_do_handshake) read its socket
# in between: each object must stay bound to its own socket (found: it was
# moved to the other one, and neither request was recorded), nor may an
# HTTPS call of the server's own over memory BIOs, read after the second
# one's handshake, take that connection (found: it did), nor an SSL_read
# on an SSL with no BIO put a BIO error in the host's OpenSSL error queue
# (found: SSL_get_rfd was asked after a failed read). First, a
# failed SSL_sendfile must leave only libssl's errors in OpenSSL's error
# queue.
if [ -e /usr/include/openssl/ssl.h ] && [ -e /usr/include/postgresql/libpq-fe.h ]; then
	TE=$AP_TMP/tlsedge
	cc -O2 -Wall -pthread -I/usr/include/postgresql -o "$TE" "$AP_SRCDIR/tests/servers/tlsedge.c" \
		-lssl -lcrypto -lpq \
		2>"$AP_TMP/cc.log" || ap_fail "cannot build tlsedge.c (see $AP_TMP/cc.log)"
	AP_SERVICE=tls-edge
	ap_bg_preloaded tlsedge timeout 30 "$TE" "$AP_TMP/tls.crt" "$AP_TMP/tls.key"
	wait "$AP_BG_PID" || ap_fail "tlsedge failed under the preload: $(cat "$AP_TMP/tlsedge.log")"
	grep -q '^nb: want_write [1-9][0-9]* partial [1-9]' "$AP_TMP/tlsedge.log" &&
		grep -q '^retry: want_write [1-9][0-9]* partial 0' "$AP_TMP/tlsedge.log" ||
		ap_fail "tlsedge did not meet WANT_WRITE and partial writes: $(cat "$AP_TMP/tlsedge.log")"
	ap_expect_counts <<EOF
GET /nb 1
GET /nb2 1
GET /retry 1
GET /peek 1
GET /reuse 2
GET /abort 1
GET /plain 1
GET /fork 1
GET /thread 1
GET /keyupdate 2
GET /reneg 2
GET /ex 1
GET /after 1
GET /sni 1
GET /membio 1
GET /membio2 1
EOF
	edge=$(ap_api /api/v1/requests --data-urlencode limit=1000 |
		jq -c '[.requests[] | select(.service == "tls-edge")]')
	ap_assert_jq "big bodies counted once: bytes_out 300,043 (partial writes, retries)" \
		'map(select(.route == "/nb" or .route == "/retry") | .bytes_out) == [300043, 300043]' "$edge"
	ap_assert_jq "SSL_peek then SSL_read: bytes_in is the 37-byte request" \
		'map(select(.route == "/peek"))[0].bytes_in == 37' "$edge"
	ap_assert_jq "only /abort aborted; every other one 200" \
		'(map(select(.aborted)) | map(.route)) == ["/abort"] and
		 (map(select(.aborted | not) | .status) | unique) == [200]' "$edge"
	ap_assert_jq "the servername callback's statement, run inside SSL_read, recorded once" \
		'[.queries[] | select(.sql | test("from tenants"; "i"))] | length == 1 and .[0].calls == 1' \
		"$(ap_api /api/v1/queries --data-urlencode service=tls-edge)"
	ap_log "TLS: libssl driven non-blocking, peeked, reused, forked, threaded, rekeyed: ok"
	# Python's socketserver.ForkingMixIn over TLS: each connection served
	# by a child that ends with os._exit(), which runs no destructor: the
	# preload's _exit hook must send the child's events (without it, every
	# request of such a server was lost, TLS or not; /fork above too).
	AP_SERVICE=tls-pyfork
	PY_PORT=$(ap_free_port)
	ap_bg_preloaded tlspyfork python3 "$AP_TMP/tlspy.py" "$PY_PORT" "$AP_TLS_PORT" "$AP_TMP/tls.crt" \
		"$AP_TMP/tls.key" fork
	ap_wait_log tlspyfork '^listening'
	for u in /orders/1 /orders/2 /nope; do
		curl -sk --max-time 30 -o /dev/null -w '%{http_code} ' "https://127.0.0.1:$PY_PORT$u"
	done >"$AP_TMP/pyfork.out" || ap_fail "curl to the forking Python server failed"
	ap_assert_eq "forking Python statuses" "$(cat "$AP_TMP/pyfork.out")" "200 200 404 "
	ap_expect_counts <<EOF
GET /orders/{id} 2
GET /nope 1
EOF
else
	ap_log "part 4 not run: no OpenSSL or libpq headers (libssl-dev, libpq-dev)"
fi

# ---- 5. asyncio over TLS: memory BIOs (tests/servers/asyncio_tls.py) ----
# asyncio runs OpenSSL over memory BIOs: SSL_read and SSL_write on objects
# with no socket (SSL_get_rfd() -1), the loop reading and writing the
# ciphertext itself. The preload binds each object to the TLS socket the
# thread read last before its SSL_read (nothing was recorded before). One
# thread: 12 connections at once, their handshakes interleaved on the
# loop, each keeping 3 requests alive; then 6 slow requests in flight at
# once, and a 1 MiB upload. Every request's bytes in and out are exactly
# what curl sent and read: plaintext fed to another connection's parser
# would break them.
AP_SERVICE=tls-asyncio
AS_PORT=$(ap_free_port)
ap_bg_preloaded tlsasyncio python3 "$AP_SRCDIR/tests/servers/asyncio_tls.py" "$AS_PORT" \
	"$AP_TMP/tls.crt" "$AP_TMP/tls.key"
ap_wait_log tlsasyncio '^listening'
A=https://127.0.0.1:$AS_PORT
W='%{url_effective} %{http_code} %{size_request} %{size_header} %{size_download} %{size_upload}\n'
clients=()
for c in $(seq 12); do
	curl -sk --max-time 30 -w "$W" -o /dev/null "$A/items/$c" -o /dev/null "$A/nope/$c" \
		-o /dev/null "$A/items/$((c + 1000))" >"$AP_TMP/as.$c" &
	clients+=($!)
done
for c in $(seq 6); do
	curl -sk --max-time 30 -w "$W" -o /dev/null "$A/slow/400" >"$AP_TMP/as.slow.$c" &
	clients+=($!)
done
for c in "${clients[@]}"; do
	wait "$c" || ap_fail "a client of the asyncio server over TLS failed"
done
head -c 1048576 /dev/urandom >"$AP_TMP/mib.bin"
curl -sk --max-time 30 -H 'Expect:' --data-binary @"$AP_TMP/mib.bin" -w "$W" -o /dev/null "$A/upload" \
	>"$AP_TMP/as.upload" || ap_fail "the upload to the asyncio server failed"
cat "$AP_TMP"/as.* >"$AP_TMP/as.out"
ap_assert_eq "asyncio over TLS: statuses" \
	"$(awk '{print $2}' "$AP_TMP/as.out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "200:31 404:12 "
ap_expect_counts <<COUNTS
GET /items/{id} 24
GET /nope/{id} 12
GET /slow/{id} 6
POST /upload 1
COUNTS
# [path, status, bytes_in, bytes_out] of each request, as curl counted them
want=$(awk '{ sub("^https://[^/]*", "", $1); printf "[\"%s\",%s,%s,%s]\n", $1, $2, $3 + $6, $4 + $5 }' \
	"$AP_TMP/as.out" | jq -s -c 'map(tojson) | sort | map(fromjson)')
got=$(ap_api /api/v1/requests --data-urlencode limit=1000 |
	jq -c '[.requests[] | select(.service == "tls-asyncio") | [.path, .status, .bytes_in, .bytes_out] | tojson] |
	       sort | map(fromjson)')
ap_assert_eq "asyncio over TLS: each request's path, status, bytes in and out" "$got" "$want"
ap_assert_jq "asyncio over TLS: the 6 slow requests 400 ms or more, in flight together, none aborted" \
	'def start: .ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber);
	 length == 6 and all(.[]; .duration_ms >= 400 and (.aborted | not)) and
	 (map(start) | max) < (map(start + .duration_ms) | min)' "$(ap_requests /slow/{id})"
ap_log "TLS: asyncio over memory BIOs: ok"

# ---- 6. a client's handshake step between a ClientHello and its own ----
# tests/servers/tls_membio.py serves one connection over memory BIOs by
# hand: it reads the ClientHello, then takes a step of a TLS client's
# handshake (SSL_do_handshake on an object whose BIOs go nowhere, as an
# asyncio program's outgoing HTTPS call may on the loop), then its own
# handshake and two keep-alive requests. The client's object must not take
# the accepted socket (SSL_is_server): both requests recorded.
AP_SERVICE=tls-membio
MB_PORT=$(ap_free_port)
ap_bg_preloaded tlsmembio "$AP_PY" "$AP_SRCDIR/tests/servers/tls_membio.py" "$MB_PORT" \
	"$AP_TMP/tls.crt" "$AP_TMP/tls.key"
ap_wait_log tlsmembio '^listening'
curl -sk --max-time 20 -w '%{http_code} ' -o /dev/null "https://127.0.0.1:$MB_PORT/mb/1" \
	-o /dev/null "https://127.0.0.1:$MB_PORT/mb/2" >"$AP_TMP/mb.out" || ap_fail "curl to tls_membio.py failed"
wait "$AP_BG_PID" || ap_fail "tls_membio.py failed: $(cat "$AP_TMP/tlsmembio.log")"
ap_assert_eq "tls_membio.py statuses" "$(cat "$AP_TMP/mb.out")" "200 200 "
ap_expect_counts <<COUNTS
GET /mb/{id} 2
COUNTS
ap_log "TLS: a client's handshake step beside a server's memory BIO: ok"
