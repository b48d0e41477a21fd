#!/bin/bash
# Connections a server is handed across exec instead of accepting them
# (preload/inherit.c), under a small super-server written here (not
# preloaded itself) that accepts and execs one server process per
# connection, as inetd and systemd's Accept=yes sockets do:
# 1. inetd protocol: the socket on fds 0, 1 and 2, BusyBox `httpd -i`
#    (reads fd 0, writes fd 1): one request per connection.
# 2. systemd protocol: the socket on fd 3 with LISTEN_FDS=1 and LISTEN_PID
#    set to the server's pid, a Python server on that one socket with
#    keep-alive; and the same with LISTEN_PID naming another process,
#    which must not be followed (the variables were inherited, not meant
#    for it).
# 3. inetd protocol again, a Python server that reports which of SIGSEGV
#    and SIGABRT its process catches, from /proc/self/status, before and
#    after it reads its request: the crash handler is not installed at
#    load, before a runtime's own handlers (the JVM's), but at the
#    inherited connection's first request.
# 4. systemd protocol, an HTTP/2 (h2c) and a FastCGI connection whose
#    server dies of abort() while serving the first request: a SIGABRT
#    row of that request's route (the crash handler went in at the first
#    HTTP/2 or FastCGI request, not only at an HTTP/1 one).
# Parts 1-3: exact counts per route, statuses, nothing aborted.
. "$(dirname "$0")/lib.sh"

ap_require curl jq busybox python3
ap_require_build
ap_require_dynamic_busybox

ap_start_collector
W=$AP_TMP/www
mkdir -p "$W"
echo hello >"$W/a.txt"
chmod -R a+rX "$W"

# The super-server: MODE inetd|systemd|systemd-otherpid, PORT, then the
# server's command. Only the server gets LD_PRELOAD (from PRELOAD_ENV).
cat >"$AP_TMP/superserver.py" <<'PY'
import os, signal, socket, sys
mode, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
env = dict(os.environ)
for kv in env.pop("PRELOAD_ENV", "").split():
    k, v = kv.split("=", 1)
    env[k] = v
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by the kernel
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(16)
print("listening", flush=True)
while True:
    conn, _ = ls.accept()
    if os.fork() == 0:
        ls.close()
        fd = conn.detach()
        if mode == "inetd":
            for n in (0, 1, 2):
                os.dup2(fd, n)
        else:
            os.dup2(fd, 3)
            env["LISTEN_FDS"] = "1"
            env["LISTEN_FDNAMES"] = "connection"
            env["LISTEN_PID"] = str(os.getpid() + (1 if mode == "systemd-otherpid" else 0))
        if fd not in (0, 1, 2, 3):
            os.close(fd)
        os.execvpe(cmd[0], cmd, env)
    conn.close()
PY

# A server for one socket on fd 3 (systemd's Accept=yes): keep-alive.
cat >"$AP_TMP/fd3server.py" <<'PY'
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code, body = (200, b"item\n") if self.path.startswith("/items/") else (404, b"no\n")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = socket.socket(fileno=3)
H(s, s.getpeername(), None)
PY

preload_env() {
	printf 'LD_PRELOAD=%s APIPROF_SOCKET=%s APIPROF_SERVICE=%s' "$(ap_preload_env)" "$AP_SOCK" "$1"
}

# ---- 1. inetd: BusyBox httpd -i on fds 0-2 ----
AP_SERVICE=it-inetd
PORT1=$(ap_free_port)
ap_bg inetd env PRELOAD_ENV="$(preload_env $AP_SERVICE)" \
	python3 "$AP_TMP/superserver.py" inetd "$PORT1" busybox httpd -i -h "$W"
ap_wait_log inetd '^listening'
for i in 1 2 3; do
	curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT1/a.txt"
done >"$AP_TMP/inetd.out" || ap_fail "a request to the inetd service failed"
curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT1/nope" \
	>>"$AP_TMP/inetd.out" || ap_fail "the 404 failed"
ap_assert_eq "inetd statuses" "$(tr '\n' ' ' <"$AP_TMP/inetd.out")" "200 200 200 404 "
ap_expect_counts <<E
GET /a.txt 3
GET /nope 1
E
ap_assert_jq "inetd: nothing aborted, the statuses recorded" \
	'[.requests[] | select(.service == "it-inetd")] | (map(select(.aborted)) | length == 0) and (map(.status) | sort == [200, 200, 200, 404])' \
	"$(ap_api /api/v1/requests --data-urlencode limit=100)"

# ---- 2. systemd Accept=yes: fd 3, LISTEN_FDS, LISTEN_PID ----
AP_SERVICE=it-sdaccept
PORT2=$(ap_free_port)
ap_bg sdaccept env PRELOAD_ENV="$(preload_env $AP_SERVICE)" \
	python3 "$AP_TMP/superserver.py" systemd "$PORT2" python3 "$AP_TMP/fd3server.py"
ap_wait_log sdaccept '^listening'
B=http://127.0.0.1:$PORT2
ap_curl_many "$AP_TMP/sd1.out" "$B/items/1" "$B/items/2" "$B/items/3" "$B/missing"
ap_curl_many "$AP_TMP/sd2.out" "$B/items/4" "$B/items/5"
ap_assert_eq "systemd statuses" "$(cat "$AP_TMP/sd1.out" "$AP_TMP/sd2.out" | awk '{printf "%s ", $1}')" \
	"200 200 200 404 200 200 "
ap_expect_counts <<E
GET /items/{id} 5
GET /missing 1
E

# LISTEN_PID of another process: the variables are not this one's.
AP_SERVICE=it-sdother
PORT3=$(ap_free_port)
ap_bg sdother env PRELOAD_ENV="$(preload_env $AP_SERVICE)" \
	python3 "$AP_TMP/superserver.py" systemd-otherpid "$PORT3" python3 "$AP_TMP/fd3server.py"
ap_wait_log sdother '^listening'
ap_curl_many "$AP_TMP/sd3.out" "http://127.0.0.1:$PORT3/items/1" "http://127.0.0.1:$PORT3/items/2"
sleep 2
ap_assert_eq "requests recorded for a LISTEN_PID of another process" \
	"$(ap_api /api/v1/endpoints | jq '[.endpoints[] | select(.service == "it-sdother") | .count] | add // 0')" 0
# ---- 3. the crash handler: at the first request, not at load ----
cat >"$AP_TMP/sigserver.py" <<'PY'
import os
def caught():
    for l in open("/proc/self/status"):
        if l.startswith("SigCgt:"):
            m = int(l.split()[1], 16)
            return "SEGV=%d ABRT=%d" % (m >> 10 & 1, m >> 5 & 1)
before = caught()
os.read(0, 65536)
body = ("%s, %s\n" % (before, caught())).encode()
os.write(1, b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
PY
AP_SERVICE=it-inetdsig
PORT4=$(ap_free_port)
ap_bg inetdsig env PRELOAD_ENV="$(preload_env $AP_SERVICE)" \
	python3 "$AP_TMP/superserver.py" inetd "$PORT4" python3 "$AP_TMP/sigserver.py"
ap_wait_log inetdsig '^listening'
ap_assert_eq "signals caught at load, then after the first request" \
	"$(curl -s --max-time 10 "http://127.0.0.1:$PORT4/sig")" "SEGV=0 ABRT=0, SEGV=1 ABRT=1"
ap_expect_counts <<E
GET /sig 1
E

# ---- 4. a crash serving an inherited HTTP/2 or FastCGI connection ----
# Neither passes through the HTTP/1 request start: their first request
# installs the crash handler all the same. The server, started as for
# systemd's Accept=yes, reads fd 3 to its end and dies of abort(); the
# client sends one request, h2c with prior knowledge or a FastCGI
# responder's (nginx's records to php-fpm), shuts its side down and waits
# for the connection to close.
cat >"$AP_TMP/abortserver.py" <<'PY'
import os
while os.read(3, 65536):
    pass
os.abort()
PY
cat >"$AP_TMP/abortclient.py" <<'PY'
import socket, struct, sys
proto, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
if proto == "h2":
    def frame(kind, flags, sid, body):
        return struct.pack(">I", len(body))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + body
    # HPACK: :method GET, :scheme http (static table), then :path and
    # :authority, literals without indexing of static names 4 and 1
    block = b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01\x01x"
    msg = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
           frame(1, 0x05, 1, block))  # HEADERS, END_STREAM | END_HEADERS
else:
    def record(kind, body):
        return struct.pack(">BBHHBB", 1, kind, 1, len(body), 0, 0) + body
    def pair(k, v):
        return bytes([len(k), len(v)]) + k + v
    params = pair(b"REQUEST_METHOD", b"GET") + pair(b"REQUEST_URI", path)
    msg = (record(1, struct.pack(">HB5x", 1, 0)) +  # BEGIN_REQUEST, responder
           record(4, params) + record(4, b"") + record(5, b""))
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(msg)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
PY
AP_SERVICE=it-inherit-crash
PORT5=$(ap_free_port)
ap_bg abortserver env PRELOAD_ENV="$(preload_env $AP_SERVICE)" \
	python3 "$AP_TMP/superserver.py" systemd "$PORT5" python3 "$AP_TMP/abortserver.py"
ap_wait_log abortserver '^listening'
for proto in h2 fcgi; do
	python3 "$AP_TMP/abortclient.py" "$proto" "$PORT5" "/$proto/crash" ||
		ap_fail "the $proto client failed"
done
crash_rows() {
	ap_api /api/v1/errors -G --data-urlencode "service=$AP_SERVICE" |
		jq -r '.errors[] | select(.type == "SIGABRT") | "\(.method) \(.route) \(.count)"' |
		sort | paste -sd,
}
for i in $(seq 100); do
	[ "$(crash_rows)" = "GET /fcgi/crash 1,GET /h2/crash 1" ] && break
	sleep 0.1
done
ap_assert_eq "the SIGABRT rows of the servers of an inherited h2c and FastCGI connection" \
	"$(crash_rows)" "GET /fcgi/crash 1,GET /h2/crash 1"
ap_log "inherited connections: inetd and systemd Accept=yes: ok"
