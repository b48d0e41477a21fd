#!/bin/bash
# Hostile input never hurts the host or the collector (issue 8):
#  (a) the collector's socket gets garbage, truncated, oversized and lying
#      datagrams, and connection attempts of the wrong socket types: it
#      keeps running, counts them as bad, and attributes a frame claiming
#      another pid to the pid the kernel reports;
#  (b) its API gets malformed parameters: 400 (404 for a bad request id),
#      never a 5xx; and clients that connect and never read do not stop it
#      answering others;
#  (c) a preloaded nginx and a plain one get the same hostile exchanges
#      (random bytes, a 1 MB request line, a 1 MB header, invalid chunked
#      bodies, HTTP/0.9, unknown versions, an HTTP/2 preface, NUL bytes,
#      10,000 headers) and answer them byte for byte alike (Date masked);
#  (d) slowloris: 300 half-sent requests held open on each, half with their
#      request line complete, a good request served meanwhile; a quarter
#      then completed, the rest dropped: the dropped ones with a complete
#      request line are exactly the aborted ones;
#  (e) 3,000 connections opened and dropped (FIN, RST, or after a request
#      line);
#  (f) afterwards the preloaded workers' anonymous memory exceeds the plain
#      workers' by no more than the preload's stated bound (README, Memory
#      bound), and good requests are counted exactly: none of the hostile
#      exchanges on /api/items (HTTP/0.9, HTTP/1.7, HTTP/2.0) is counted;
#  (g) made-up methods and 11,500 distinct paths: methods stay OTHER,
#      routes stay within max_routes plus {other}, every request is
#      counted once, and the collector's memory stays flat;
#  (h) a sender naming 1,500 services gets at most 1,000, the rest under
#      {other}.
#  (i) senders outside the collector's pid namespace: one warning, and one
#      process, pid 0.
# About 45 s here; more on a loaded machine.
export AP_TIMEOUT=${AP_TIMEOUT:-400}
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 nginx
ap_require_build

ap_start_collector
COLLECTOR_PID=$AP_COLLECTOR_PID

cat >"$AP_TMP/hostile.py" <<'PY'
import errno, os, random, re, socket, struct, sys, threading, time

MAGIC = 0x46525041

def s16(b): return struct.pack("<H", len(b)) + b

def batch(pid, recs, version=1, seq=1):
    off = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return struct.pack("<IBBHIIq", MAGIC, version, 0, 24, seq, pid, off) + b"".join(recs)

def rec(rtype, payload, length=None):
    return struct.pack("<HHI", rtype, 0, len(payload) if length is None else length) + payload

def hello(pid, service):
    return rec(1, struct.pack("<IIQ", pid, 1, 0) + s16(service) + s16(b"/bin/liar"))

def request(rid, method, path, status=200):
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return rec(2, struct.pack("<QQQQQIHH", rid, now - 1000000, now, 10, 20, 1, status, 0)
               + s16(method) + s16(path) + s16(b""))

def frames(sock_path):
    """(a): bad datagrams, then one claiming pid 1."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.connect(sock_path)
    r = random.Random(8)
    sent = 0
    def send(b):
        nonlocal sent
        try:
            s.send(b)
            sent += 1
        except OSError as e:  # an oversized datagram may be refused by the kernel
            if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
    for _ in range(200):                       # garbage
        send(bytes(r.getrandbits(8) for _ in range(r.randrange(0, 600))))
    send(b"")                                  # empty
    good = batch(os.getpid(), [request(1, b"GET", b"/frames/x")])
    for cut in (3, 10, 23, 30, len(good) - 1):  # truncated
        send(good[:cut])
    send(batch(4242, [rec(2, b"", 0xFFFFFFFF)]))           # record length lies
    send(batch(4242, [rec(2, b"\xff" * 8)]))               # record too short
    send(batch(4242, [rec(2, struct.pack("<QQQQQIHH", 1, 2, 1, 0, 0, 0, 0, 0) + b"\xff\xff")]))
    send(batch(4242, [request(2, b"GET", b"/x")], version=99))   # unknown version
    send(batch(4242, [request(3, b"G\x00\xff\xfe", b"/\xc3\x28/\x00" * 100, 65535)]))  # bad UTF-8
    send(batch(4242, [rec(77, b"z" * 100)] * 10))          # unknown record types
    send(batch(4242, [hello(4242, b"x" * 60000)]))         # near the maximum
    send(good + b"\0" * (200 * 1024))                       # oversized: past 64 KiB
    # (a) a frame whose header, HELLO and records all claim pid 1.
    send(batch(1, [hello(1, b"hostile-liar"), request(9, b"GET", b"/liar/1")]))
    s.close()
    # Other socket types cannot talk to a datagram socket.
    for t in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
        c = socket.socket(socket.AF_UNIX, t)
        try:
            c.connect(sock_path)
            c.sendall(b"garbage" * 100)
            print("connected with type", t, file=sys.stderr)
            sys.exit(1)
        except OSError:
            pass
        c.close()
    print(sent, os.getpid())

def exchange(port, payload, timeout=15):
    """Sends payload (from a thread, so a server answering early never
    deadlocks us), half-closes, reads until EOF. Returns the raw response,
    with '<reset>' appended when the server reset the connection."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    err = []
    def sender():
        try:
            view = memoryview(payload)
            while view:
                n = c.send(view[:65536])
                view = view[n:]
            c.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=sender)
    t.start()
    out = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            out += d
    except ConnectionResetError:
        out += b"<reset>"
    t.join()
    c.close()
    return out

def cases():
    r = random.Random(9)
    cs = []
    for i in range(20):
        cs.append(("random-%d" % i, bytes(r.getrandbits(8) for _ in range(r.randrange(1, 4096)))))
    cs += [
        ("long-line", b"GET /long/" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("long-header", b"GET /hdr HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (1 << 20) + b"\r\n\r\n"),
        ("chunk-bad-size", b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("chunk-overflow", b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("chunk-negative", b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-no-crlf", b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
        ("chunk-and-length", b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("chunk-unknown-te", b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("length-twice", b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello"),
        ("length-negative", b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("http09", b"GET /api/items\r\n"),
        ("http17", b"GET /api/items HTTP/1.7\r\nHost: x\r\n\r\n"),
        ("http20", b"GET /api/items HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("http-garbage-version", b"GET /ver HTTP/x.y\r\nHost: x\r\n\r\n"),
        ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("nul-in-line", b"GET /nul\x00x HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bare-cr", b"GET /cr HTTP/1.1\rHost: x\r\r"),
        ("many-headers", b"GET /many HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 10000 + b"\r\n"),
        ("good-then-garbage", b"GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\x00\xa5garbage\r\n\r\n"),
        ("tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))),
    ]
    return cs

def responses(port, out):
    with open(out, "wb") as f:
        for name, payload in cases():
            raw = exchange(port, payload)
            raw = re.sub(rb"(?im)^(date:)[^\r\n]*", rb"\1 <masked>", raw)
            f.write(b"=== %s (%d bytes sent)\n" % (name.encode(), len(payload)) + raw + b"\n")

def slowloris(port, n, good_port_check):
    conns = []
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=15)
        if i % 2 == 0:
            c.sendall(b"GET /slow/%d HTTP/1.1\r\nHost: x\r\n" % i)   # request line complete
        else:
            c.sendall(b"GET /slo")                                 # request line half-sent
        conns.append(c)
    time.sleep(1)
    # The server still serves others while they hang.
    good = exchange(port, b"GET /api/items HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = good.split(b" ", 2)[1].decode() if good.startswith(b"HTTP/1.1 ") else "none"
    answered = 0
    for i, c in enumerate(conns):
        if i % 4 == 0:                                             # complete a quarter
            c.sendall(b"Connection: close\r\n\r\n")
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            if data.startswith(b"HTTP/1.1 404 "):
                answered += 1
        c.close()                                                  # drop the rest
    print(status, answered)

def drops(port, n):
    done = 0
    for start in range(0, n, 100):
        conns = []
        for i in range(start, min(n, start + 100)):
            c = socket.create_connection(("127.0.0.1", port), timeout=15)
            conns.append((i, c))
        for i, c in conns:
            if i % 3 == 1:      # reset without a byte
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif i % 3 == 2:    # a request line, then gone
                c.sendall(b"GET /drop/%d HTTP/1.1\r\n" % i)
            c.close()
            done += 1
    print(done)

def services(sock_path, n):
    """One process naming a new service in each of n HELLOs, each followed
    by a request."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(sock_path)
    for i in range(n):
        s.send(batch(os.getpid(), [hello(os.getpid(), b"flood-%d" % i), request(i + 1, b"GET", b"/flood")]))
    s.close()
    print(n)

def stuck(port, n, hold):
    """n API clients that never read: half pipeline 50 requests for large
    answers, half send nothing; held open for `hold` seconds."""
    conns = []
    req = b"GET /api/v1/requests?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    for i in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=15)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if i % 2 == 0:
            c.setblocking(False)
            try:
                c.send(req)
            except BlockingIOError:
                pass
        conns.append(c)
    print("ready", flush=True)
    time.sleep(hold)

def letters(i):
    out = ""
    while True:
        out = chr(ord("a") + i % 26) + out
        i //= 26
        if i == 0:
            return out

def bounds(port, first, n, methods):
    """n requests for distinct letter-only paths (the templater keeps them
    as routes), from path number first on, every k-th with a made-up
    method among `methods` of them. Prints how many got an answer."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    answered = 0
    for i in range(first, first + n):
        m = "GET" if i % 5 else ("X" + letters(i % methods).upper() if i % 10 else "get")
        for attempt in range(2):
            try:
                c.request(m, "/w/" + letters(i))
                r = c.getresponse()
                r.read()
                answered += 1
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    c.close()
    print(answered)

cmd = sys.argv[1]
if cmd == "stuck":
    stuck(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
elif cmd == "services":
    services(sys.argv[2], int(sys.argv[3]))
elif cmd == "bounds":
    bounds(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
elif cmd == "frames":
    frames(sys.argv[2])
elif cmd == "responses":
    responses(int(sys.argv[2]), sys.argv[3])
elif cmd == "slowloris":
    slowloris(int(sys.argv[2]), int(sys.argv[3]), None)
elif cmd == "drops":
    drops(int(sys.argv[2]), int(sys.argv[3]))
PY
hostile() { python3 "$AP_TMP/hostile.py" "$@" || ap_fail "hostile.py $1 failed"; }

# ---- (a) the collector's socket ------------------------------------------
read -r sent frames_pid < <(hostile frames "$AP_SOCK")
ap_log "sent $sent hostile datagrams from pid $frames_pid"
# The frame claiming pid 1 was sent last: once its request is stored, the
# one ingest thread has read every datagram before it (in order).
for i in $(seq 50); do
	kill -0 "$COLLECTOR_PID" 2>/dev/null || ap_fail "the collector died on hostile datagrams"
	[ "$(ap_api /api/v1/requests --data-urlencode service=hostile-liar | jq '.requests | length')" -ge 1 ] && break
	sleep 0.2
done
kill -0 "$COLLECTOR_PID" 2>/dev/null || ap_fail "the collector died on hostile datagrams"
status=$(ap_api /api/v1/status)
ap_assert_jq "bad datagrams counted by kind" \
	'.ingest.bad_magic >= 150 and .ingest.bad_version >= 1 and .ingest.truncated >= 4 and .ingest.records_bad >= 3' "$status"
ap_assert_jq "the frame claiming pid 1 is attributed to its sender, pid $frames_pid" \
	"[.processes[] | select(.service == \"hostile-liar\")] | length == 1 and .[0].pid == $frames_pid" "$status"
ap_assert_jq "no process 1 or 4242 is believed" \
	'[.processes[] | select(.pid == 1 or .pid == 4242)] | length == 0' "$status"
reqs=$(ap_api /api/v1/requests --data-urlencode service=hostile-liar)
ap_assert_jq "its request carries the kernel's pid" \
	"[.requests[] | .pid] == [$frames_pid]" "$reqs"

# ---- (b) malformed API parameters ----------------------------------------
# code PATH-AND-QUERY : the HTTP status of a GET (the query sent as is).
code() { curl -s -o "$AP_TMP/api-body.out" -w '%{http_code}' --max-time 10 "$AP_URL$1"; }
bad400=(
	'/api/v1/requests?limit=abc' '/api/v1/requests?limit=' '/api/v1/requests?limit=0'
	'/api/v1/requests?limit=-1' '/api/v1/requests?limit=1001' '/api/v1/requests?limit=99999999999999999999999'
	'/api/v1/requests?limit=%zz' '/api/v1/requests?limit=+5'
	'/api/v1/requests?status=6xxx' '/api/v1/requests?status=-200' '/api/v1/requests?status=1000'
	'/api/v1/requests?status=0xx' '/api/v1/requests?status=%FF'
	'/api/v1/requests?slow=maybe' '/api/v1/requests?error=2' '/api/v1/requests?n_plus_one='
	'/api/v1/requests?before=0' '/api/v1/requests?before=-5' '/api/v1/requests?before=9223372036854775808'
	'/api/v1/requests?since=yesterday' '/api/v1/requests?since=2026-13-45T99:99:99Z'
	'/api/v1/requests?since=2026-01-01T00:00:00Z&until=2025-01-01T00:00:00Z'
	'/api/v1/requests?since=99999999999999999999' '/api/v1/requests?until=-99999999999999999999'
	'/api/v1/requests?service=' '/api/v1/requests?route=' '/api/v1/requests?method='
	'/api/v1/endpoints?since=-99999999999999999' '/api/v1/endpoints?until=9223372036854775807'
	'/api/v1/endpoints?since=2026-02-30T00:00:00Z' '/api/v1/endpoints?limit=1e3' '/api/v1/endpoints?host='
	'/api/v1/queries?limit=0' '/api/v1/queries?db=' '/api/v1/queries?since=1.5.5'
	'/api/v1/n-plus-one?since=1&until=0' '/api/v1/n-plus-one?limit=%2D1'
	'/api/v1/errors?limit=1001' '/api/v1/errors?service=' '/api/v1/errors?until=T'
)
for u in "${bad400[@]}"; do
	c=$(code "$u")
	[ "$c" = 400 ] || ap_fail "GET $u: status $c, expected 400 ($(head -c 300 "$AP_TMP/api-body.out"))"
	jq -e -s 'length == 1 and (.[0].error | type == "string")' "$AP_TMP/api-body.out" >/dev/null ||
		ap_fail "GET $u: the 400 has no JSON error: $(head -c 300 "$AP_TMP/api-body.out")"
done
ap_log "ok: ${#bad400[@]} malformed parameters answered 400 with a JSON error"
for u in '/api/v1/requests/abc' '/api/v1/requests/-1' '/api/v1/requests/0' \
	'/api/v1/requests/99999999999999999999999' '/api/v1/requests/%zz'; do
	c=$(code "$u")
	[ "$c" = 404 ] || ap_fail "GET $u: status $c, expected 404"
done
# Odd but valid: repeated parameters, unknown ones, extreme but in-range
# values, a NUL (libmicrohttpd hands values over as C strings: "1%00" is 1).
for u in '/api/v1/requests?limit=5&limit=abc' '/api/v1/requests?unknown=1&&&=&x' \
	'/api/v1/requests?limit=1%00' '/api/v1/requests/1%00' \
	'/api/v1/requests?since=0&until=4102444800' '/api/v1/endpoints?since=1&until=2' \
	'/api/v1/requests?q=%25%27%22%3B--&route=%00' '/api/v1/queries?db=%C3%28'; do
	c=$(code "$u")
	case $c in
	2??|400|404) ;;
	*) ap_fail "GET $u: status $c, expected 200, 400 or 404" ;;
	esac
done
ap_log "ok: odd parameters answered without a 5xx"

kill -0 "$COLLECTOR_PID" 2>/dev/null || ap_fail "the collector died on malformed parameters"

# ---- (c) the same hostile exchanges, with and without the preload --------
ap_start_nginx nginx 1
PRE_PORT=$AP_PORT
PRE_PID=$AP_NGINX_PID
ap_start_nginx nginx-plain 0
PLAIN_PORT=$AP_PORT
PLAIN_PID=$AP_NGINX_PID

hostile responses "$PLAIN_PORT" "$AP_TMP/plain.out"
hostile responses "$PRE_PORT" "$AP_TMP/preload.out"
grep -aq '^=== long-line' "$AP_TMP/plain.out" || ap_fail "no response dump"
grep -aq 'Date: <masked>' "$AP_TMP/plain.out" || ap_fail "no Date header was masked"
if ! cmp -s "$AP_TMP/plain.out" "$AP_TMP/preload.out"; then
	diff -a <(grep -a '^===\|^HTTP' "$AP_TMP/plain.out") <(grep -a '^===\|^HTTP' "$AP_TMP/preload.out") >&2
	ap_fail "responses to hostile input differ with the preload"
fi
ap_log "ok: $(grep -ac '^===' "$AP_TMP/plain.out") hostile exchanges, $(wc -c <"$AP_TMP/plain.out") bytes of responses identical with and without the preload"
ap_log "their statuses: $(grep -ao '^HTTP/1.[01] [0-9]*' "$AP_TMP/plain.out" | awk '{print $2}' | sort | uniq -c | tr -s ' \n' ' ')"

# ---- (d) slowloris and (e) drops, on both ---------------------------------
for side in plain preload; do
	port=$PLAIN_PORT
	[ "$side" = preload ] && port=$PRE_PORT
	read -r good answered < <(hostile slowloris "$port" 300)
	ap_assert_eq "$side: a request served during slowloris" "$good" 200
	ap_assert_eq "$side: completed slowloris requests answered" "$answered" 75
	read -r dropped < <(hostile drops "$port" 3000)
	ap_assert_eq "$side: connections opened and dropped" "$dropped" 3000
done

# ---- (f) memory, then good requests counted exactly ------------------------
# rss_anon PID... : the summed RssAnon (bytes) of the processes.
rss_anon() {
	local p s=0 kb
	for p in "$@"; do
		kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$p/status")
		s=$(( s + ${kb:-0} * 1024 ))
	done
	echo "$s"
}
pre_workers=$(ap_children "$PRE_PID")
plain_workers=$(ap_children "$PLAIN_PID")
ap_log "workers: preloaded $(echo $pre_workers) (master $PRE_PID), plain $(echo $plain_workers) (master $PLAIN_PID)"
[ "$(wc -w <<<"$pre_workers")" = 2 ] && [ "$(wc -w <<<"$plain_workers")" = 2 ] ||
	ap_fail "expected 2 workers in each nginx"
for p in $pre_workers; do
	grep -q libapiprof "/proc/$p/maps" || ap_fail "worker $p has no preload mapped"
done
pre_mem=$(rss_anon $pre_workers)
plain_mem=$(rss_anon $plain_workers)
# README, Memory bound: 7,518,208 bytes per process with everything the
# preload may hold (buffer, pool, fd table, static tables, crash buffers,
# profile rings, the shipper's stack).
bound=7518208
extra=$(( pre_mem - plain_mem ))
ap_log "anonymous memory of the workers: preloaded $pre_mem, plain $plain_mem bytes: $extra more, bound $(( 2 * bound )) for 2 workers"
[ "$extra" -le $(( 2 * bound )) ] || ap_fail "the preloaded workers use $extra bytes more than the plain ones, past the bound"

B=http://127.0.0.1:$PRE_PORT
ap_curl_many "$AP_TMP/good1.out" $(for i in $(seq 25); do echo "$B/api/items"; done)
ap_curl_many "$AP_TMP/good2.out" $(for i in $(seq 20); do echo "$B/api/users/$i"; done)
ap_raw "$PRE_PORT" --pipeline "GET /api/items" "GET /api/users/7" "GET /api/items" >/dev/null

# 25 + 2 above, and 1 during slowloris; HTTP/0.9, 1.7 and 2.0 requests for
# /api/items are not HTTP/1.x requests and must not count.
# Each route comes from its own connections, so possibly each nginx
# worker's own shipper: wait for all of them, not only /api/items.
ap_wait_counts <<EOF
GET /api/items 28
GET /api/users/{id} 21
GET /slow/{id} 150
GET /drop/{id} 1000
EOF
ap_assert_eq "GET /api/items counted" "$(ap_count GET /api/items)" 28
c=$(ap_count GET '/api/users/{id}')
ap_assert_eq "GET /api/users/{id} counted" "$c" 21
# Slowloris: 150 connections had a complete request line; 75 of them were
# answered (404), the other 75 dropped unanswered: aborted.
ap_assert_eq "GET /slow/{id} counted" "$(ap_count GET '/slow/{id}')" 150
ap_assert_eq "GET /slow/{id} errors (aborted)" "$(ap_field GET '/slow/{id}' error_count)" 75
# Drops: 1,000 connections closed after a request line: aborted.
ap_assert_eq "GET /drop/{id} counted (aborted)" "$(ap_count GET '/drop/{id}')" 1000
ap_assert_eq "GET /drop/{id} errors" "$(ap_field GET '/drop/{id}' error_count)" 1000

# (b) Clients that connect and never read (nor, some, send): the API goes
# on answering everyone else. Here, with thousands of stored requests, a
# page of 1,000 is hundreds of KiB, so the stuck ones fill their sockets.
ap_bg stuck python3 "$AP_TMP/hostile.py" stuck "$AP_HTTP_PORT" 20 60
STUCK_PID=$AP_BG_PID
ap_wait_log stuck '^ready' 20
# Each answer within 15 s: a loaded machine's sanitizer build needs more
# than a second for a page of 1,000, and an API the stuck clients block
# stays blocked for their 60 s.
for i in $(seq 10); do
	c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$AP_URL/api/v1/status")
	[ "$c" = 200 ] || ap_fail "/api/v1/status with 20 stuck clients: status $c"
	c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$AP_URL/api/v1/requests?limit=1000")
	[ "$c" = 200 ] || ap_fail "/api/v1/requests with 20 stuck clients: status $c"
done
ap_log "ok: the API answers while 20 clients never read"
kill "$STUCK_PID" 2>/dev/null
wait "$STUCK_PID" 2>/dev/null

# ---- (g) made-up methods and endless distinct paths stay bounded ----------
# max_routes is 1000 (the default): 1,500 distinct paths, a fifth with
# made-up methods (200 of them) or a lowercase one, fill the route table
# and overflow into {other}; 10,000 more must not grow the collector's
# memory beyond a few MiB (the stored raw rows go to SQLite).
col_mem() { awk '/^RssAnon:/ {print $2 * 1024}' "/proc/$COLLECTOR_PID/status"; }
before=$(ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add // 0')
read -r n1 < <(hostile bounds "$PRE_PORT" 0 1500 200)
ap_assert_eq "distinct paths answered" "$n1" 1500
ap_wait_count '{other}' 1 GET 10 >/dev/null
mem1=$(col_mem)
read -r n2 < <(hostile bounds "$PRE_PORT" 1500 10000 200)
ap_assert_eq "more distinct paths answered" "$n2" 10000
c=0
for i in $(seq 75); do
	c=$(ap_api /api/v1/endpoints | jq --arg s "$AP_SERVICE" '[.endpoints[] | select(.service == $s) | .count] | add // 0')
	[ "$c" -ge $(( before + 11500 )) ] && break
	sleep 0.2
done
sleep 1.5
mem2=$(col_mem)
eps=$(ap_api /api/v1/endpoints)
ap_assert_jq "every request counted, none twice" \
	"[.endpoints[] | select(.service == \"$AP_SERVICE\") | .count] | add == $(( before + 11500 ))" "$eps"
ap_assert_jq "methods are the standard ones or OTHER" \
	"[.endpoints[] | select(.service == \"$AP_SERVICE\") | .method] | unique - [\"GET\", \"POST\", \"HEAD\"] == [\"OTHER\"]" "$eps"
ap_assert_jq "at most 1,000 routes and {other}" \
	"[.endpoints[] | select(.service == \"$AP_SERVICE\") | .route] | unique | length <= 1001 and index(\"{other}\") != null" "$eps"
ap_assert_jq "made-up methods on new paths count as OTHER {other}" \
	"[.endpoints[] | select(.service == \"$AP_SERVICE\" and .method == \"OTHER\" and .route == \"{other}\") | .count] | add > 1500" "$eps"
ap_assert_jq "requests_other_route in /status" '.requests_other_route > 10000' "$(ap_api /api/v1/status)"
ap_log "collector anonymous memory: $mem1 bytes after 1,500 distinct paths, $mem2 after 10,000 more"
# An ASan build (scripts/test.sh's sanitizer stage) keeps freed memory in
# its quarantine (256 MiB), so its growth says nothing about ours. (ldd's
# output read whole first: piped to grep -q, which exits at the match,
# ldd could die of SIGPIPE writing the next line, and with pipefail the
# test then took an ASan build for a plain one.)
if grep -q libasan <<<"$(ldd "$AP_COLLECTOR" 2>/dev/null)"; then
	ap_log "the collector is an ASan build: its memory growth is not checked"
elif [ $(( mem2 - mem1 )) -gt $(( 16 * 1024 * 1024 )) ]; then
	ap_fail "the collector grew by $(( mem2 - mem1 )) bytes for 10,000 paths past max_routes"
fi

# ---- (h) a sender naming a new service in every HELLO ---------------------
# Services stay bounded (COL_MAX_SERVICES, 1,000), later names count under
# {other}. Last, since every service named afterwards would be {other} too.
read -r n < <(hostile services "$AP_SOCK" 1500)
for i in $(seq 50); do
	c=$(ap_api /api/v1/endpoints | jq '[.endpoints[] | select(.route == "/flood") | .count] | add // 0')
	[ "$c" -ge "$n" ] && break
	sleep 0.2
done
eps=$(ap_api /api/v1/endpoints)
ap_assert_jq "1,500 services named: every request counted" \
	"[.endpoints[] | select(.route == \"/flood\") | .count] | add == $n" "$eps"
ap_assert_jq "at most 1,000 services, {other} among them" \
	'[.endpoints[].service] | unique | length <= 1000 and index("{other}") != null' "$eps"
ap_assert_jq "processes_other_service in /status" '.processes_other_service >= 500' "$(ap_api /api/v1/status)"

# ---- (i) senders outside the collector's pid namespace --------------------
# The kernel gives a sender in a pid namespace the collector cannot see
# pid 0. A collector in a namespace of its own (as in a container) hears
# from two such senders: it warns once in its log, and /api/v1/status shows
# them as one process, pid 0 (README, What it cannot see). Needs root.
if unshare --pid --fork --kill-child true 2>/dev/null; then
	ns_port=$(ap_free_port)
	ap_bg collector-pidns unshare --pid --fork --kill-child "$AP_COLLECTOR" \
		--socket "$AP_TMP/pidns.sock" --http "127.0.0.1:$ns_port" --db "$AP_TMP/pidns.db"
	UNSHARE_PID=$AP_BG_PID
	for i in $(seq 100); do
		curl -sf --max-time 2 "http://127.0.0.1:$ns_port/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	hostile services "$AP_TMP/pidns.sock" 2 >/dev/null
	hostile services "$AP_TMP/pidns.sock" 2 >/dev/null
	for i in $(seq 50); do
		st=$(curl -sf --max-time 5 "http://127.0.0.1:$ns_port/api/v1/status")
		[ "$(jq .totals.requests <<<"$st")" = 4 ] && break
		sleep 0.1
	done
	ap_assert_jq "two senders outside its pid namespace: one process, pid 0" \
		'.totals.requests == 4 and ([.processes[].pid] == [0])' "$st"
	ap_assert_eq "warnings about the pid namespace" \
		"$(grep -c 'runs in a pid namespace this collector cannot see' "$AP_TMP/collector-pidns.log")" 1
	ap_log "ok: $(grep -o 'warn: a sender.*' "$AP_TMP/collector-pidns.log")"
	# unshare waits for its child; the child, pid 1 of its namespace,
	# gets SIGTERM from outside because it blocks it (for sigwait).
	ap_stop_pid "$(pgrep -P "$UNSHARE_PID")"
	wait "$UNSHARE_PID" 2>/dev/null
else
	ap_log "skipped (i): unshare --pid is not permitted here (needs root)"
fi

kill -0 "$COLLECTOR_PID" 2>/dev/null || ap_fail "the collector died"
if grep -E 'exited on signal|worker process [0-9]+ exited' "$AP_TMP"/nginx*/error.log >&2; then
	ap_fail "an nginx worker died"
fi
for p in $pre_workers; do
	kill -0 "$p" 2>/dev/null || ap_fail "preloaded nginx worker $p died"
done
ap_log "PASS"
