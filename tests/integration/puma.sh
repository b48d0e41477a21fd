#!/bin/bash
# Ruby's Puma (Debian's puma 5.6, Ruby 3.1), the Rails default server,
# preloaded in clustered mode (a master and 2 forked workers, threads 2:4,
# -e production) on 127.0.0.1, serving the plain Rack app
# tests/servers/puma_app.ru (no Rails). Exact counts per route, and per
# request statuses and bytes as the clients sent and read them:
# 1. keep-alive (6 on one curl connection), a pipeline of 4 (GET, HEAD, a
#    chunked stream without Content-Length, an app exception answered by
#    Puma's own 500, whose body is the error's message) and one of 2 (a
#    file body, a 404), three 1 MiB POSTs read whole (plain, after a 100
#    Continue: counted out; chunked); ids templated (/items/{id}).
#    Files: Puma 5.6 writes a body that responds to to_path (as
#    Rack::Files's does) the way it writes any other, from its each: strace
#    showed one write(2) for the head, then 32 write(2)s of 8 KiB for a
#    256 KiB file, no sendfile (Puma 6 would IO.copy_stream it). So
#    /sendfile copies the file into the socket itself, with IO.copy_stream
#    in a response hijack: Ruby 3.1 tries copy_file_range (EINVAL on a
#    socket), then sendfile(2) the whole file in one call (strace, once).
#    bytes_out exact both ways.
# 2. six 400 ms requests at once: each 400 ms or more, all six in flight
#    at one instant, on six threads of both workers.
# 3. SQL through the sqlite3 gem (libsqlite3): 7 statements per request
#    (the gem's PRAGMA encoding, 6 SELECTs, an N+1), every one attributed
#    to its request, none to the service alone. Puma's reactor thread reads
#    a request whose bytes were not there when a pool thread looked (here:
#    the keep-alive requests sent after a 300 ms pause, Puma waiting 200 ms
#    inline) and a pool thread runs the app: the preload follows it there by
#    the TCP_INFO getsockopt Puma makes before each request (before that,
#    14 of the 49 statements were attributed).
# 4. hot restart (SIGUSR2: the master re-execs itself, keeping its pid and
#    the listening socket; workers forked anew) and 5. phased restart
#    (SIGUSR1: workers replaced one at a time), each with a client sending
#    requests on new connections all through it: none fails, every one is
#    counted once, those before and after too; each request carries the
#    pid of a worker of its time, the old workers are gone, and
#    /api/v1/status lists the new ones that served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require curl jq python3 puma ruby sqlite3
if ! ruby -e 'require "sqlite3"' >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] && ap_fail "ruby cannot load the sqlite3 gem (scripts/test.sh installs ruby-sqlite3)"
	ap_skip "ruby cannot load the sqlite3 gem (run scripts/test.sh as root to install ruby-sqlite3)"
fi
ap_require_build

ap_start_collector
W=$AP_TMP/www
mkdir -p "$W"
head -c 262144 /dev/urandom >"$W/big.bin"
head -c 1048576 /dev/urandom >"$AP_TMP/upload.bin"
sqlite3 "$AP_TMP/app.db" "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER);
INSERT INTO authors VALUES (1, 'Writer 1'), (2, 'Writer 2'), (3, 'Writer 3');
INSERT INTO books VALUES (1, 'T1', 1), (2, 'T2', 2), (3, 'T3', 3), (4, 'T4', 1), (5, 'T5', 2);" ||
	ap_fail "seeding the database failed"

PORT=$(ap_free_port)
ap_bg_preloaded puma env PUMA_APP_FILE="$W/big.bin" PUMA_APP_DB="$AP_TMP/app.db" \
	puma -e production -w 2 -t 2:4 -b "tcp://127.0.0.1:$PORT" "$AP_SRCDIR/tests/servers/puma_app.ru"
PUMA_PID=$AP_BG_PID
B=http://127.0.0.1:$PORT

# booted N : waits until N workers have booted since the start (the log's
# "Worker I (PID: P) booted" lines), then prints the pids of the last 2.
booted() {
	local i
	for i in $(seq 300); do
		[ "$(grep -c 'Worker [0-9]* (PID: [0-9]*) booted' "$AP_TMP/puma.log")" -ge "$1" ] && break
		kill -0 "$PUMA_PID" 2>/dev/null || ap_fail "puma exited"
		sleep 0.1
	done
	grep -o 'Worker [0-9]* (PID: [0-9]*) booted' "$AP_TMP/puma.log" | sed -n "$(( $1 - 1 )),$1p" |
		sed 's/.*PID: \([0-9]*\).*/\1/' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
WORKERS0=$(booted 2)
ap_log "collector $AP_URL, puma master $PUMA_PID on port $PORT, workers $WORKERS0"

# rq PATH [METHOD] : this service's stored requests of PATH (exact), as a
# JSON array, oldest first: by start time (the two workers' records reach
# the collector interleaved, so ids need not follow it; ties by id).
rq() {
	ap_api /api/v1/requests --data-urlencode "q=$1" --data-urlencode limit=1000 |
		jq --arg s "$AP_SERVICE" --arg p "$1" --arg m "${2:-}" \
			'[.requests[] | select(.service == $s and .path == $p and ($m == "" or .method == $m))] | reverse | sort_by(.ts)'
}
# reqlen "METHOD TARGET" : the bytes of ap_raw's request for it.
reqlen() { printf '%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }

# ---- 1. keep-alive, pipelining, HEAD, 404, 500, chunked, uploads, files ----
ap_curl_many "$AP_TMP/ka.out" "$B/hello" "$B/items/1" "$B/items/2" "$B/nope" "$B/items/42" "$B/hello"
ap_assert_eq "keep-alive statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/ka.out")" "200 200 200 404 200 200 "
# Puma reads a pipeline in one read: 4 at most (README, What it cannot see).
ap_raw "$PORT" --pipeline --dump "$AP_TMP/pipe1.raw" "GET /items/7" "HEAD /hello" "GET /stream" "GET /boom" \
	>"$AP_TMP/pipe1.out"
ap_assert_eq "pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe1.out")" "200 200 200 500 "
grep -q 'Transfer-Encoding: chunked' "$AP_TMP/pipe1.raw" || ap_fail "GET /stream was not sent chunked"
ap_raw "$PORT" --pipeline "GET /file" "GET /missing" >"$AP_TMP/pipe2.out"
ap_assert_eq "GET /file then a 404, pipelined" "$(tr '\n' ' ' <"$AP_TMP/pipe2.out")" "200 262227 404 82 "
ap_raw "$PORT" "GET /sendfile" >"$AP_TMP/sendfile.out"
ap_assert_eq "GET /sendfile (IO.copy_stream)" "$(cat "$AP_TMP/sendfile.out")" "200 262227"
# 1 MiB bodies: plain, after a 100 Continue, and chunked.
for h in 'Expect:' 'Expect: 100-continue' 'Transfer-Encoding: chunked'; do
	curl -s --max-time 20 -o "$AP_TMP/up.body" \
		-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
		-H "$h" --data-binary @"$AP_TMP/upload.bin" "$B/upload" >>"$AP_TMP/up.out" ||
		ap_fail "POST /upload ($h) failed"
	ap_assert_eq "POST /upload ($h): the app read the whole body" "$(cat "$AP_TMP/up.body")" "got 1048576"
done

# ---- 2. six slow requests at once, across threads and workers ----
t0=$(date +%s%N)
pids=""
for i in 1 2 3 4 5 6; do
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$B/slow" >"$AP_TMP/slow$i.out" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || ap_fail "a GET /slow failed"
done
slow_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ap_assert_eq "slow statuses" "$(cat "$AP_TMP"/slow?.out | tr '\n' ' ')" "200 200 200 200 200 200 "
ap_log "six 400 ms requests took $slow_ms ms in all"

# ---- 3. SQL through the sqlite3 gem ----
for i in 1 2 3; do
	curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$B/books/" >>"$AP_TMP/books.out"
done
# keep-alive with pauses: Puma's reactor thread reads those requests, a
# pool thread runs the app
"$AP_PY" - "$PORT" >>"$AP_TMP/books.out" <<'PY' || ap_fail "keep-alive GET /books/ failed"
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
for i in range(4):
    time.sleep(0.3)
    c.request("GET", "/books/"); r = c.getresponse(); r.read()
    print(r.status, end=" ")
PY
ap_assert_eq "GET /books/ statuses" "$(cat "$AP_TMP/books.out")" "200 200 200 200 200 200 200 "

# ---- 4. hot restart (SIGUSR2): the master re-execs itself ----
# A client opens a new connection per request (Connection: close) all
# through the restart: the listening socket stays open, connections wait
# in its backlog while no worker accepts. Its last line: "OK FAILED".
cat >"$AP_TMP/during.py" <<'PY'
import http.client, os, sys, time
port, path, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ok = failed = 0
while not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse(); r.read(); c.close()
        if r.status == 200:
            ok += 1
        else:
            failed += 1
    except Exception as e:
        print("error:", e, file=sys.stderr)
        failed += 1
    time.sleep(0.01)
print(ok, failed)
PY
# restart SIGNAL NAME N : sends SIGNAL to the master with the client above
# running on /r/during-NAME, until N workers have booted since the start;
# sets WORKERS to the new workers' pids and DURING to the requests the
# client had answered.
restart() {
	local sig=$1 name=$2 n=$3 client
	ap_bg "during-$name" "$AP_PY" "$AP_TMP/during.py" "$PORT" "/r/during-$name" "$AP_TMP/stop-$name"
	client=$AP_BG_PID
	sleep 0.5
	kill "-$sig" "$PUMA_PID"
	WORKERS=$(booted "$n")
	sleep 0.5
	touch "$AP_TMP/stop-$name"
	wait "$client" || ap_fail "the client during the $name restart failed"
	read -r DURING failed < <(tail -n 1 "$AP_TMP/during-$name.log")
	ap_log "$name restart: $DURING requests answered during it, $failed failed; workers now $WORKERS"
	[ "$failed" = 0 ] || ap_fail "$failed requests failed during the $name restart: $(cat "$AP_TMP/during-$name.log")"
	[ "$DURING" -gt 0 ] || ap_fail "no request answered during the $name restart"
}
# after NAME : 8 requests, each on a new connection, to /r/after-NAME.
after() {
	local i
	for i in 1 2 3 4 5 6 7 8; do
		curl -s --max-time 10 -o /dev/null -w '%{http_code} ' "$B/r/after-$1"
	done >"$AP_TMP/after-$1.out" || ap_fail "GET /r/after-$1 failed"
	ap_assert_eq "statuses after the $1 restart" "$(cat "$AP_TMP/after-$1.out")" "200 200 200 200 200 200 200 200 "
}
# listed NAME : /api/v1/status lists, connected, every worker that answered
# a request of /r/after-NAME (polled: its record arrives within 1 s), while
# it runs (the status forgets processes that have exited).
listed() {
	local p i reqs
	for i in $(seq 50); do
		reqs=$(rq "/r/after-$1" GET)
		[ "$(jq length <<<"$reqs")" -ge 8 ] && break
		sleep 0.1
	done
	for p in $(jq -r '.[].pid' <<<"$reqs" | sort -u); do
		for i in $(seq 50); do
			ap_api /api/v1/status | jq -e --argjson p "$p" --arg s "$AP_SERVICE" \
				'[.processes[] | select(.pid == $p and .service == $s and .connected)] | length == 1' \
				>/dev/null && break
			sleep 0.1
		done
		ap_assert_jq "/api/v1/status lists worker $p (it served /r/after-$1)" \
			"[.processes[] | select(.pid == $p and .service == \"$AP_SERVICE\" and .connected)] | length == 1" \
			"$(ap_api /api/v1/status)"
	done
}
curl -s --max-time 10 -o /dev/null "$B/r/before-hot" || ap_fail "GET /r/before-hot failed"
restart USR2 hot 4
WORKERS1=$WORKERS DURING_HOT=$DURING
ap_assert_eq "masters started (the second the first's exec, same pid)" \
	"$(grep -c "^\[$PUMA_PID\] Puma starting in cluster mode" "$AP_TMP/puma.log")" 2
after hot
listed hot

# ---- 5. phased restart (SIGUSR1): workers replaced one at a time ----
restart USR1 phased 6
WORKERS2=$WORKERS DURING_PHASED=$DURING
[ "$(grep -c 'booted in .*, phase: 1' "$AP_TMP/puma.log")" = 2 ] || ap_fail "not 2 workers of phase 1 in puma.log"
after phased
listed phased

ap_expect_counts <<E
GET /hello 2
GET /items/{id} 4
GET /nope 1
HEAD /hello 1
GET /stream 1
GET /boom 1
GET /file 1
GET /missing 1
GET /sendfile 1
POST /upload 3
GET /slow 6
GET /books/ 7
GET /r/before-hot 1
GET /r/during-hot $DURING_HOT
GET /r/after-hot 8
GET /r/during-phased $DURING_PHASED
GET /r/after-phased 8
E

# ---- what the collector reports of each request ----
# expect_reqs PATH METHOD N STATUS BYTES_IN BYTES_OUT : PATH has N stored
# requests of METHOD, each with that status and those bytes.
expect_reqs() {
	ap_assert_jq "$2 $1: $3 requests, status $4, bytes in $5, out $6" \
		"length == $3 and all(.[]; .status == $4 and .bytes_in == $5 and .bytes_out == $6 and (.aborted | not))" \
		"$(rq "$1" "$2")"
}
# the keep-alive connection: curl's sizes, line by line
n=0
for p in /hello /items/1 /items/2 /nope /items/42; do
	n=$(( n + 1 ))
	read -r code _ _ sreq shdr sdl <<<"$(sed -n "${n}p" "$AP_TMP/ka.out")"
	c=1
	[ "$p" = /hello ] && c=2
	expect_reqs "$p" GET "$c" "$code" "$sreq" $(( shdr + sdl ))
done
# the pipelines: ap_raw's requests and the raw responses it read
expect_reqs /items/7 GET 1 200 "$(reqlen "GET /items/7")" "$(sed -n 1p "$AP_TMP/pipe1.out" | cut -d' ' -f2)"
expect_reqs /hello HEAD 1 200 "$(reqlen "HEAD /hello")" "$(sed -n 2p "$AP_TMP/pipe1.out" | cut -d' ' -f2)"
expect_reqs /stream GET 1 200 "$(reqlen "GET /stream")" "$(sed -n 3p "$AP_TMP/pipe1.out" | cut -d' ' -f2)"
expect_reqs /boom GET 1 500 "$(reqlen "GET /boom")" "$(sed -n 4p "$AP_TMP/pipe1.out" | cut -d' ' -f2)"
expect_reqs /file GET 1 200 "$(reqlen "GET /file")" 262227
expect_reqs /missing GET 1 404 "$(reqlen "GET /missing")" 82
expect_reqs /sendfile GET 1 200 "$(reqlen "GET /sendfile")" 262227
# the uploads: every byte of each body read, the 100 Continue counted out
ap_assert_jq "POST /upload: bytes in and out as curl sent and received them, oldest first" \
	"[.[] | [.status, .bytes_in, .bytes_out]] == $(awk '{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2 + $3, $4 + $5} END {print "]"}' "$AP_TMP/up.out")" \
	"$(rq /upload POST)"
# Puma's own 500, its message the start of its body
ap_check_jq "/api/v1/errors: HTTP 500 on GET /boom once, Puma's message" \
	"$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")" \
	'[.errors[] | {method, route, type, count, message}] ==
	 [{"method": "GET", "route": "/boom", "type": "HTTP 500", "count": 1,
	   "message": "An unhandled lowlevel error occurred. The application logs may have details."}]'
# The six slow requests: 400 ms each, all six in flight at one instant,
# each on a thread of its own, on both workers (4 threads at most each).
slow=$(rq /slow GET)
ap_assert_jq "GET /slow: 400 ms to 5 s each" \
	'length == 6 and all(.[]; .status == 200 and .duration_ms >= 400 and .duration_ms < 5000)' "$slow"
ap_assert_jq "GET /slow: all six in flight at once (the last start before the first end)" \
	'[.[] | .ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)] as $start |
	 [range(length) as $i | $start[$i] + .[$i].duration_ms] as $stop | ($start | max) < ($stop | min)' "$slow"
ap_assert_jq "GET /slow: six threads, on both workers" \
	'([.[] | "\(.pid)/\(.tid)"] | unique | length) == 6 and ([.[].pid] | unique | length) == 2' "$slow"
ap_assert_pids_among "$(jq -r '.[].pid' <<<"$slow")" "$WORKERS0" "a first worker"

# SQL: 7 statements per request (the gem's PRAGMA encoding, the books, 5
# authors: an N+1), every one attributed, also those of the requests that
# Puma's reactor thread read (the keep-alive ones after a pause), none
# for the service alone.
ap_expect_sql <<E
GET /books/ 7 49 7
E
ap_assert_eq "sql_count of each GET /books/ request" "$(ap_request_sql GET /books/)" "7 7 7 7 7 7 7"
detail=$(ap_request_detail "$(rq /books/ GET | jq -r '.[-1].id')")
printf '%s\n' "$detail" >"$AP_TMP/books-detail.json"
ap_check_jq "GET /books/ detail (a keep-alive request after a pause): its 7 statements, one N+1 of 5" "$detail" \
	'[.queries[].sql] == ["PRAGMA encoding", "SELECT id, title, author_id FROM books ORDER BY id"] +
	 [range(5) | "SELECT name FROM authors WHERE id = ?"] and [.queries[].rows] == [1, 5, 1, 1, 1, 1, 1] and
	 (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5'
ap_assert_jq "/api/v1/status: 49 statements in all, none outside a request" '.totals.sql == 49' \
	"$(ap_api /api/v1/status)"

# Restarts: the requests of each restart's new workers carry their pids;
# the old workers are gone.
[ -z "$(comm -12 <(tr ' ' '\n' <<<"$WORKERS0" | sort) <(tr ' ' '\n' <<<"$WORKERS1" | sort))" ] ||
	ap_fail "the hot restart kept a worker ($WORKERS0 / $WORKERS1)"
[ -z "$(comm -12 <(tr ' ' '\n' <<<"$WORKERS1" | sort) <(tr ' ' '\n' <<<"$WORKERS2" | sort))" ] ||
	ap_fail "the phased restart kept a worker ($WORKERS1 / $WORKERS2)"
for p in $WORKERS0 $WORKERS1; do
	kill -0 "$p" 2>/dev/null && ap_fail "old worker $p still runs"
done
ap_assert_pids_among "$(rq /r/before-hot GET | jq -r '.[].pid')" "$WORKERS0" "a first worker"
ap_assert_pids_among "$(rq /r/during-hot GET | jq -r '.[].pid')" "$WORKERS0 $WORKERS1" "a worker before or after the hot restart"
ap_assert_pids_among "$(rq /r/after-hot GET | jq -r '.[].pid')" "$WORKERS1" "a worker of the hot restart"
ap_assert_pids_among "$(rq /r/during-phased GET | jq -r '.[].pid')" "$WORKERS1 $WORKERS2" "a worker before or after the phased restart"
ap_assert_pids_among "$(rq /r/after-phased GET | jq -r '.[].pid')" "$WORKERS2" "a worker of the phased restart"
ap_log "PASS"
