#!/bin/bash
# Past one machine: two collectors (hosts alpha and beta: their own sockets,
# ports and working directories), started together on one empty database
# of a real PostgreSQL 15, each with a
# preloaded threaded server and a preloaded Python sqlite3 server behind it,
# fed known traffic. Asserts that the API of either collector answers for
# the fleet: exact counts per route summed over hosts, `?host=` the part of
# each, a p95 merged from both hosts' sketches (not an average of two
# p95s), raw requests with their host (and one host's request read through
# the other's API), error groups and N+1 patterns summed over hosts, and
# 3-second summary windows merged over hosts (count summed, p95 from both
# hosts' sketches) with one host's regression (and its alert's outcome)
# read through the other's API, and 10-second /timeseries buckets summed
# over hosts (`?host=` each one's part).
# Then PostgreSQL is stopped for 3 s under traffic and restarted: the
# status says down with the rows held, the log says so once and once on
# recovery, and every row sent meanwhile is stored (exact row counts).
# Then a slow database (its requests table locked for 7 s): the status says
# "slow" while the rows wait, and they are all written after. Then
# retention: a 10-day-old partition is dropped whole, today's and
# tomorrow's exist. Then migrations: a database set back to schema version 2 is upgraded in
# place on start, for PostgreSQL and SQLite (the statement texts kept); the
# SQLite collector's answers have the same fields as PostgreSQL's. Then the
# statement texts shared by the fleet (query_shapes): a host's first minute
# of a shape sets its last_seen_ns, or writes it again after another
# session deleted it; retention deletes a text nothing needs and keeps the
# others, one held by a concurrent minute transaction included. A password in the URI is never
# shown. Then a copy of the collector
# under another file name, started with LD_PRELOAD=libapiprof.so, captures
# none of its own HTTP or libpq calls. Then CPU profiles (with libdw): a
# preloaded prof_server behind each, alpha's /api/v1/profile sums both.
# Last, storage faults: a request dated 2262 (the last day of int64
# nanoseconds) is refused at ingest, counted and logged, without holding
# others back or making a partition, and a full disk on
# the database server holds the rows (none refused) until it passes, the
# status giving PostgreSQL's reason, and rows refused as data end the fault;
# all-time totals failing while rows commit make one fault, not one a second;
# a partition it cannot make stops its start with PostgreSQL's reason.
#
# About 85 s on an idle machine (three collectors, PostgreSQL restarted
# twice): a watchdog of 480 s, room for a machine three times slower and
# more (it took 102 s at a load average of 9 on 2 cores).
AP_TIMEOUT=${AP_TIMEOUT:-480}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_SQLITE_SERVER=$AP_SRCDIR/tests/servers/sqlite_server.py
ap_require curl jq python3 sqlite3
ap_require_pg
ap_require_build "$AP_THREADED"

ap_start_pg pg fleet
URI="postgresql://postgres@127.0.0.1:$AP_PG_PORT/fleet"
/usr/bin/python3 "$AP_SQLITE_SERVER" --db "$AP_TMP/app.db" --seed >"$AP_TMP/seed.log" 2>&1 ||
	ap_fail "seeding the database failed: $(cat "$AP_TMP/seed.log")"

# A webhook receiver for the collectors' alerts: 200 to every POST.
HOOK_PORT=$(ap_free_port)
ap_bg hook /usr/bin/python3 -c '
import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()' "$HOOK_PORT"
ap_wait_port "$HOOK_PORT"

# launch_col NAME HOST DB : a collector in $AP_TMP/NAME (its working
# directory: the local SQLite file of its window summaries), socket
# $AP_TMP/NAME.sock; sets URL_<NAME>, PID_<NAME>. wait_col NAME waits until
# it answers; start_col does both.
launch_col() {
	local name=$1 host=$2 db=$3 port
	port=$(ap_free_port)
	mkdir -p "$AP_TMP/$name"
	# 3-second summary windows; a regression needs 4 requests per window.
	printf 'host_name = %s\nn_plus_one_threshold = 3\naggregation_window_minutes = 0.05\nregression_min_requests = 4\nwebhook_url = http://127.0.0.1:%s/hook\n' \
		"$host" "$HOOK_PORT" >"$AP_TMP/$name/apiprof.conf"
	ap_bg "$name" env -C "$AP_TMP/$name" "$AP_COLLECTOR" --config "$AP_TMP/$name/apiprof.conf" \
		--socket "$AP_TMP/$name.sock" --http "127.0.0.1:$port" --db "$db"
	printf -v "PID_$name" '%s' "$AP_BG_PID"
	printf -v "URL_$name" '%s' "http://127.0.0.1:$port"
}
wait_col() {
	local u="URL_$1" p="PID_$1" i
	for i in $(seq 300); do
		curl -sf --max-time 2 "${!u}/healthz" >/dev/null 2>&1 && return 0
		kill -0 "${!p}" 2>/dev/null || ap_fail "collector $1 exited at start"
		sleep 0.1
	done
	ap_fail "collector $1 did not answer within 30s"
}
start_col() {
	launch_col "$@"
	wait_col "$1"
}

# api NAME PATH [CURL ARGS] : GET from collector NAME's API.
api() {
	local u="URL_$1"
	curl -sf --max-time 10 -G "${!u}$2" "${@:3}" || ap_fail "GET $2 from $1 failed"
}

# count NAME ROUTE [HOST] : the GET ROUTE count of service web in NAME's
# /api/v1/endpoints (narrowed to HOST when given).
count() {
	local h=()
	[ -n "${3:-}" ] && h=(--data-urlencode "host=$3")
	api "$1" /api/v1/endpoints "${h[@]}" | jq --arg r "$2" \
		'[.endpoints[] | select(.service == "web" and .method == "GET" and .route == $r) | .count] | add // 0'
}

# wait_count NAME ROUTE N : until NAME's fleet count of ROUTE is N (10 s).
wait_count() {
	local i
	for i in $(seq 50); do
		[ "$(count "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.2
	done
}

# poll SECONDS CMD... : until CMD succeeds, for at most SECONDS (whatever a
# loaded machine makes of each psql call); 1 when it never did.
poll() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$end" -gt $SECONDS ] || return 1
		sleep 0.1
	done
}
# pg_hold NAME SQL : a psql session on fleet (log NAME.log) that runs SQL,
# returning once it has, then keeps what it took (a lock) until
# pg_release NAME SQL runs SQL in it
# and ends it. Its commands come from a FIFO held open here as fd 4, so the
# lock lasts until the test has seen what it waits for, however slow the
# machine: a lock held for a fixed time (pg_sleep) could run out first.
pg_hold() {
	mkfifo "$AP_TMP/$1.in"
	exec 4<>"$AP_TMP/$1.in"
	PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$AP_PG_PORT" -U postgres \
		-d fleet <"$AP_TMP/$1.in" >"$AP_TMP/$1.log" 2>&1 &
	locker=$!
	AP_PIDS="$locker $AP_PIDS"
	printf '%s\nSET application_name = %s;\n' "$2" "'held_$1'" >&4
	# Back once SQL has run (its lock taken): on a loaded machine psql can
	# start after what the caller does next.
	poll 30 pg_held "$1" || ap_fail "the session $1 did not take its lock: $(cat "$AP_TMP/$1.log")"
}
# pg_held NAME : whether pg_hold NAME's session has run its SQL.
pg_held() {
	[ "$(ap_psql fleet -Atc "SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'held_$1'")" = 1 ]
}
pg_release() {
	# \q, not the end of input: the processes started meanwhile (the
	# collectors) hold the FIFO open too.
	printf '%s\n\\q\n' "$2" >&4
	exec 4>&-
	wait "$locker" || ap_fail "the session holding the lock failed: $(cat "$AP_TMP/$1.log")"
}
# waiting_advisory : sessions waiting for an advisory lock.
waiting_advisory() {
	ap_psql fleet -Atc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
}

# Both at once on the empty database: the advisory lock around the
# migrations keeps them from racing on the schema. beta's URI carries a
# password (trust authentication ignores it): never shown in the log or
# the status.
# Proof that they take the lock: while a session holds it, both wait for
# it and neither creates anything.
pg_hold migrlock "SELECT pg_advisory_lock($((0x61706970726f6601)));"
for i in $(seq 100); do
	[ "$(ap_psql fleet -Atc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" = 1 ] && break
	sleep 0.1
done
launch_col alpha alpha "$URI"
launch_col beta beta "postgresql://postgres:s3cret@127.0.0.1:$AP_PG_PORT/fleet"
for i in $(seq 100); do
	[ "$(waiting_advisory)" = 2 ] && break
	sleep 0.1
done
ap_assert_eq "collectors waiting for the migration lock" "$(waiting_advisory)" 2
ap_assert_eq "no table created while another session holds the migration lock" \
	"$(ap_psql fleet -Atc "SELECT to_regclass('requests') IS NULL")" t
pg_release migrlock "SELECT pg_advisory_unlock($((0x61706970726f6601)));"
wait_col alpha
wait_col beta
ap_assert_eq "one schema_version row" "$(ap_psql fleet -Atc "SELECT count(*) || ' ' || max(version) FROM schema_version")" "1 8"
ap_log "collectors alpha $URL_alpha and beta $URL_beta on $URI"
ap_assert_eq "beta's db in /api/v1/status" "$(api beta /api/v1/status | jq -r .db)" \
	"postgresql://postgres:***@127.0.0.1:$AP_PG_PORT/fleet"
grep -q s3cret "$AP_TMP/beta.log" && ap_fail "beta logged its database password"

# A threaded server (service web) and a sqlite3 server (service books)
# behind each.
for h in alpha beta; do
	AP_SOCK=$AP_TMP/$h.sock AP_SERVICE=web ap_start_threaded "web_$h" --threads 8
	printf -v "WEB_$h" '%s' "http://127.0.0.1:$AP_PORT"
	port=$(ap_free_port)
	AP_SOCK=$AP_TMP/$h.sock AP_SERVICE=books ap_bg_preloaded "books_$h" \
		env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$AP_SQLITE_SERVER" \
		--db "$AP_TMP/app.db" --port "$port"
	printf -v "BOOKS_$h" '%s' "http://127.0.0.1:$port"
done
ap_wait_log books_alpha '^listening on'
ap_wait_log books_beta '^listening on'

# alpha: 6 /hello, 4 /users/{id}, 2 /error, 10 /slow of 20 ms, 1 /books/;
# beta: 3 /hello, 1 /error, 10 /slow of 200 ms, 2 /books/.
A=$WEB_alpha
Bw=$WEB_beta
urls=()
for i in 1 2 3 4 5 6; do urls+=("$A/hello"); done
for i in 1 2 3 4; do urls+=("$A/users/$i"); done
urls+=("$A/error" "$A/error")
for i in $(seq 10); do urls+=("$A/slow?ms=20"); done
ap_curl_many "$AP_TMP/a.out" "${urls[@]}"
urls=("$Bw/hello" "$Bw/hello" "$Bw/hello" "$Bw/error")
for i in $(seq 10); do urls+=("$Bw/slow?ms=200"); done
ap_curl_many "$AP_TMP/b.out" "${urls[@]}"
ap_curl_many "$AP_TMP/books_a.out" "$BOOKS_alpha/books/"
ap_curl_many "$AP_TMP/books_b.out" "$BOOKS_beta/books/" "$BOOKS_beta/books/"

# Either collector answers for both hosts (each publishes its part every
# second): wait until both show every count and the books' statements and
# N+1 patterns (sent last), then settle 1.5 s for the exact comparisons.
fleet_seen() {
	[ "$(count "$1" /slow)" -ge 20 ] && [ "$(count "$1" /hello)" -ge 9 ] &&
		[ "$(count "$1" '/users/{id}')" -ge 4 ] && [ "$(count "$1" /error)" -ge 3 ] &&
		[ "$(api "$1" /api/v1/queries --data-urlencode service=books | jq '[.queries[].calls] | add // 0')" -ge 18 ] &&
		[ "$(api "$1" /api/v1/n-plus-one | jq '[.patterns[] | select(.route == "/books/") | .occurrences] | add // 0')" -ge 3 ]
}
for i in $(seq 50); do
	fleet_seen alpha && fleet_seen beta && break
	sleep 0.2
done
sleep 1.5
for c in alpha beta; do
	ap_assert_eq "$c: fleet /hello" "$(count $c /hello)" 9
	ap_assert_eq "$c: fleet /users/{id}" "$(count $c '/users/{id}')" 4
	ap_assert_eq "$c: fleet /error" "$(count $c /error)" 3
	ap_assert_eq "$c: fleet /slow" "$(count $c /slow)" 20
done
ap_assert_eq "beta's API, ?host=alpha /hello" "$(count beta /hello alpha)" 6
ap_assert_eq "alpha's API, ?host=beta /hello" "$(count alpha /hello beta)" 3
ap_assert_eq "alpha's API, ?host=beta /users/{id}" "$(count alpha '/users/{id}' beta)" 0
ap_assert_eq "alpha's API, ?host=alpha /slow" "$(count alpha /slow alpha)" 10

# p95 of /slow over the fleet: half the requests at 20 ms, half at 200 ms,
# so p95 is about 200 ms; an average of the hosts' p95s would be ~110 ms.
# p50 is the slowest of the ten 20 ms requests: one delayed by a loaded
# machine (108 ms was seen) is still below the 200 ms half, that is below
# beta's fastest (within the sketch's 1%). p95 is one of the 200 ms half,
# so it is bounded by the slowest request (within the sketch's 1%), not by
# a fixed figure: on a loaded machine (two tests at a time beside
# compilers) those took up to 309 ms.
epb=$(api alpha /api/v1/endpoints --data-urlencode host=beta |
	jq -c '.endpoints[] | select(.service == "web" and .route == "/slow")')
ap_assert_jq "beta's own /slow: the 200 ms half" '.count == 10 and .min_ms >= 199' "$epb"
bmin=$(jq .min_ms <<<"$epb")
ep=$(api beta /api/v1/endpoints | jq -c '.endpoints[] | select(.service == "web" and .route == "/slow")')
ap_assert_jq "fleet p95 of /slow merged from both hosts' sketches" \
	'.p95_ms >= 195 and .p95_ms <= .max_ms * 1.01 and .p50_ms >= 19 and .p50_ms < '"$bmin"' * 0.99
	 and .max_ms >= 200' "$ep"
epa=$(api beta /api/v1/endpoints --data-urlencode host=alpha |
	jq -c '.endpoints[] | select(.service == "web" and .route == "/slow")')
ap_assert_jq "alpha's own p95 of /slow: below beta's fastest" \
	'.p95_ms >= 19 and .p95_ms < '"$bmin"' * 0.99' "$epa"
# One host's answer is the same JSON from its own memory and from the
# database (same sketches, same fields), apart from in-flight rounding.
own=$(api alpha /api/v1/endpoints --data-urlencode host=alpha |
	jq -c '[.endpoints[] | select(.service == "web")] | sort_by(.route)')
other=$(api beta /api/v1/endpoints --data-urlencode host=alpha |
	jq -c '[.endpoints[] | select(.service == "web")] | sort_by(.route)')
ap_assert_eq "alpha's endpoints, read by alpha and by beta" "$own" "$other"

# Raw requests of the fleet, newest first, each with its host.
reqs=$(api alpha /api/v1/requests --data-urlencode route=/hello --data-urlencode limit=1000)
ap_assert_jq "9 /hello requests: 6 of alpha, 3 of beta" \
	'[.requests[].host] | (length == 9) and (map(select(. == "alpha")) | length == 6)' "$reqs"
ap_assert_jq "newest first" '[.requests[].ts] | . == (sort | reverse)' "$reqs"
reqs=$(api alpha /api/v1/requests --data-urlencode route=/hello --data-urlencode host=beta)
ap_assert_jq "?host=beta: beta's 3" '[.requests[].host] == ["beta", "beta", "beta"]' "$reqs"
id=$(jq '.requests[0].id' <<<"$reqs")
one=$(api alpha "/api/v1/requests/$id")
ap_assert_jq "beta's request $id read through alpha" \
	'.host == "beta" and .route == "/hello" and .status == 200' "$one"
ids=$(api beta /api/v1/requests --data-urlencode limit=1000 | jq '[.requests[].id] | length == (unique | length)')
ap_assert_eq "request ids unique across hosts" "$ids" true

# Statements, N+1 patterns and errors summed over hosts.
q=$(api beta /api/v1/queries --data-urlencode service=books)
ap_assert_jq "statement calls summed (3 x /books/: 1 + 5 each)" \
	'([.queries[].calls] | add) == 18' "$q"
q=$(api alpha /api/v1/queries --data-urlencode service=books --data-urlencode host=beta)
ap_assert_jq "?host=beta: its statement calls (2 x 6)" '([.queries[].calls] | add) == 12' "$q"
b=$(api alpha "/api/v1/requests" --data-urlencode route=/books/ --data-urlencode host=beta)
bid=$(jq '.requests[0].id' <<<"$b")
det=$(api alpha "/api/v1/requests/$bid")
ap_assert_jq "beta's /books/ statements read through alpha" \
	'(.queries | length) == 6 and (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5' "$det"
n1=$(api alpha /api/v1/n-plus-one)
ap_assert_jq "N+1 pattern of /books/ over both hosts" \
	'[.patterns[] | select(.service == "books" and .route == "/books/")] | length == 1 and .[0].occurrences == 3' "$n1"
n1=$(api alpha /api/v1/n-plus-one --data-urlencode host=beta)
ap_assert_jq "?host=beta: its 2 occurrences" \
	'[.patterns[] | select(.route == "/books/")][0].occurrences == 2' "$n1"
errs=$(api beta /api/v1/errors)
ap_assert_jq "HTTP 500 of /error over both hosts" \
	'[.errors[] | select(.service == "web" and .route == "/error" and .type == "HTTP 500")] | length == 1 and .[0].count == 3' "$errs"
errs=$(api beta /api/v1/errors --data-urlencode host=alpha)
ap_assert_jq "?host=alpha: its 2" \
	'[.errors[] | select(.route == "/error")][0].count == 2' "$errs"

# ---- 10-second buckets of the fleet (/api/v1/timeseries) ----
# At the start of a fresh bucket TS: 2 /books/ on alpha, 1 on beta (each
# with 6 statements); only the summary windows' web traffic follows in it.
# Checked once TS is complete (below).
TS=$(ap_sleep_into 10 0.2)
ap_curl_many "$AP_TMP/ts_a.out" "$BOOKS_alpha/books/" "$BOOKS_alpha/books/"
ap_curl_many "$AP_TMP/ts_b.out" "$BOOKS_beta/books/"

# ---- summary windows and regressions of the fleet ----
# Window W1: /slow 5 x 10 ms on alpha, 5 x 100 ms on beta; window W2 (the
# next): 5 x 400 ms on beta, a response_time regression there (4x its W1).
# POST /api/v1/aggregate on both closes them at once.
W=3
slow_batch() {   # slow_batch BASE_URL MS : 5 requests to /slow?ms=MS at once
	local i pids=""
	for i in 1 2 3 4 5; do
		curl -sf --max-time 10 -o /dev/null "$1/slow?ms=$2" &
		pids="$pids $!"
	done
	for i in $pids; do wait "$i" || ap_fail "a /slow request failed"; done
}
W1=$(ap_sleep_into $W 0.2)
slow_batch "$A" 10 &
slow_batch "$Bw" 100
wait $! || ap_fail "alpha's /slow batch failed"
W2=$(ap_sleep_into $W 0.2)
slow_batch "$Bw" 400
ap_sleep_into $W 0.5 >/dev/null
for c in alpha beta; do
	curl -sf --max-time 10 -X POST -o /dev/null "$(eval echo "\$URL_$c")/api/v1/aggregate" ||
		ap_fail "POST /api/v1/aggregate on $c failed"
done
# win NAME START [HOST] : NAME's summary of web GET /slow in the window at START.
win() {
	local h=()
	[ -n "${3:-}" ] && h=(--data-urlencode "host=$3")
	api "$1" /api/v1/summaries --data-urlencode service=web --data-urlencode route=/slow "${h[@]}" |
		jq -c --arg t "$(ap_rfc3339 "$2")" '[.summaries[] | select(.window_start == $t and .method == "GET")]'
}
# Each host's part, then the merge checked against them: no fixed upper
# bounds, since a loaded machine stretches the 10 and 100 ms requests.
w1b=$(win alpha "$W1" beta)
w1a=$(win beta "$W1" alpha)
ap_assert_jq "alpha's /summaries?host=beta: beta's part of W1" \
	'length == 1 and .[0].count == 5 and .[0].host == "beta" and .[0].min_ms >= 99' "$w1b"
ap_assert_jq "beta's /summaries?host=alpha: alpha's part of W1, faster than all of beta's" \
	'length == 1 and .[0].count == 5 and .[0].host == "alpha" and .[0].min_ms >= 9
	 and .[0].p95_ms < '"$(jq '.[0].min_ms' <<<"$w1b")" "$w1a"
ap_assert_jq "alpha's /summaries: W1 of /slow over both hosts, p95 from the merged sketches" \
	'length == 1 and .[0].count == 10 and .[0].host == null and .[0].p95_ms >= 99
	 and .[0].p95_ms <= .[0].max_ms * 1.01 and (.[0].min_ms - '"$(jq '.[0].min_ms' <<<"$w1a")"' | fabs) < 0.01
	 and (.[0].max_ms - '"$(jq '.[0].max_ms' <<<"$w1b")"' | fabs) < 0.01
	 and (.[0].avg_ms - '"$(jq '.[0].avg_ms' <<<"$w1a")"' / 2 - '"$(jq '.[0].avg_ms' <<<"$w1b")"' / 2 | fabs) < 0.5
	 and .[0].error_count == 0' "$(win alpha "$W1")"
ap_assert_jq "alpha's /summaries: W2, beta's only" \
	'length == 1 and .[0].count == 5 and .[0].host == "beta"' "$(win alpha "$W2")"
regs=$(api alpha /api/v1/regressions --data-urlencode service=web --data-urlencode route=/slow |
	jq -c --arg t "$(ap_rfc3339 "$W2")" '[.regressions[] | select(.window_start == $t)]')
ap_assert_jq "alpha's /regressions: beta's response_time regression of /slow in W2" \
	'map(select(.type == "response_time")) | length == 1 and .[0].host == "beta"
	 and .[0].previous_count == 5 and .[0].current_count == 5 and .[0].current_avg_ms >= 399
	 and .[0].previous_window_start == "'"$(ap_rfc3339 "$W1")"'"' "$regs"
ap_assert_jq "regression fields as with SQLite" \
	'.[0] | keys == ["current_avg_ms","current_count","current_error_rate","current_p95_ms",
	 "detected_at","fingerprint","host","id","method","previous_avg_ms","previous_count",
	 "previous_error_rate","previous_p95_ms","previous_window_start","route","service","sql",
	 "type","webhook","webhook_attempts","window_end","window_start"]' "$regs"
# Its alert's outcome, once beta delivered it, reaches the database too.
for i in $(seq 90); do
	wh=$(api alpha /api/v1/regressions --data-urlencode host=beta --data-urlencode route=/slow |
		jq -r --arg t "$(ap_rfc3339 "$W2")" '[.regressions[] | select(.window_start == $t and .type == "response_time")][0].webhook')
	[ "$wh" = delivered ] && break
	sleep 0.2
done
ap_assert_eq "beta's alert delivered, as alpha's /regressions shows" "$wh" delivered
ap_assert_eq "alpha's /regressions?host=alpha: none of /slow in W2" "$(api alpha /api/v1/regressions \
	--data-urlencode host=alpha --data-urlencode route=/slow |
	jq --arg t "$(ap_rfc3339 "$W2")" '[.regressions[] | select(.window_start == $t)] | length')" 0

# TS complete (10 s after its start and 1 s settling), and published by
# both within 2 s: alpha's buckets of service books are the sum of both
# hosts', ?host= each one's part.
# tsb NAME [ARGS] : NAME's point of bucket TS of service books.
tsb() {
	api "$1" /api/v1/timeseries --data-urlencode service=books "${@:2}" |
		jq -c --arg t "$(ap_rfc3339 "$TS")" '[.points[] | select(.t == $t)]'
}
d=$(awk -v t="$TS" -v n="$(date +%s.%N)" 'BEGIN { d = t + 11.2 - n; printf "%.3f", (d > 0 ? d : 0) }')
sleep "$d"
for i in $(seq 75); do
	[ "$(tsb alpha | jq '.[0].requests')" = 3 ] && break
	sleep 0.2
done
ap_assert_jq "alpha's /timeseries: bucket TS of books summed over both hosts" \
	'length == 1 and .[0].requests == 3 and .[0].requests_per_s == 0.3 and .[0].sql == 18
	 and .[0].sql_per_s == 1.8 and .[0].avg_request_ms > 0 and .[0].avg_sql_ms > 0' "$(tsb alpha)"
ap_assert_jq "alpha's /timeseries?host=beta: beta's part of TS" \
	'length == 1 and .[0].requests == 1 and .[0].requests_per_s == 0.1 and .[0].sql == 6' \
	"$(tsb alpha --data-urlencode host=beta)"
ap_assert_jq "beta's /timeseries?host=alpha: alpha's part of TS" \
	'length == 1 and .[0].requests == 2 and .[0].sql == 12' "$(tsb beta --data-urlencode host=alpha)"
ap_assert_jq "fleet /timeseries: the fields of one host's" \
	'(.bucket_seconds == 10) and (.points[-1] | keys == ["avg_request_ms","avg_sql_ms",
	 "requests","requests_per_s","sql","sql_per_s","t"])' "$(api alpha /api/v1/timeseries)"

# ---- PostgreSQL down for 3 s under traffic ----
stored() { ap_psql fleet -Atc "SELECT count(*) FROM requests WHERE host = '$1'"; }
ap_assert_eq "alpha's rows stored before the outage (23 + 5 of the windows + 2 of TS)" \
	"$(stored alpha)" 30
ap_stop_pg
ap_log "PostgreSQL stopped"
urls=()
for i in $(seq 30); do urls+=("$A/hello"); done
ap_curl_many "$AP_TMP/down.out" "${urls[@]}"
for i in $(seq 100); do
	st=$(api alpha /api/v1/status)
	[ "$(jq -r .store.database <<<"$st")" = down ] && [ "$(jq .store.rows_held <<<"$st")" -ge 30 ] && break
	sleep 0.1
done
ap_assert_jq "status while down: database down since, 30 rows held, none dropped" \
	'.store.database == "down" and (.store.database_down_since | type == "string") and .store.rows_held == 30 and .store.rows_dropped_oldest == 0 and .store.backend == "postgresql"' "$st"
# The fleet views need the database: 503 with a JSON error, not 500.
code=$(curl -s --max-time 15 -o "$AP_TMP/down.json" -w '%{http_code}' "$URL_alpha/api/v1/requests")
ap_assert_eq "fleet /api/v1/requests while down" "$code" 503
ap_assert_jq "its error says the database is unavailable" \
	'.error | test("database is unavailable")' "$(cat "$AP_TMP/down.json")"
sleep 2
ap_run_pg
ap_log "PostgreSQL restarted"
for i in $(seq 100); do
	st=$(api alpha /api/v1/status)
	[ "$(jq -r .store.database <<<"$st")" = up ] && [ "$(jq .store.rows_held <<<"$st")" = 0 ] && break
	sleep 0.1
done
ap_assert_jq "status after recovery: up, nothing held" \
	'.store.database == "up" and .store.rows_held == 0 and .store.database_down_since == null' "$st"
ap_assert_eq "alpha's rows stored after the outage (30 + 30)" "$(stored alpha)" 60
ap_assert_eq "beta's rows stored (16 + 10 of the windows + 1 of TS)" "$(stored beta)" 27
wait_count beta /hello 39
ap_assert_eq "beta's API: fleet /hello after the outage" "$(count beta /hello)" 39
ap_assert_eq "alpha logged the outage once" \
	"$(grep -c 'postgresql database unreachable' "$AP_TMP/alpha.log")" 1
ap_assert_eq "alpha logged the recovery once" \
	"$(grep -c 'postgresql database reachable again' "$AP_TMP/alpha.log")" 1

# ---- PostgreSQL slow: requests locked until the status says so ----
# (The writer is "slow" once it has waited 5 s: the lock is held until the
# status has shown it, not for a fixed time, which a slow machine could
# use up before the rows even reached the writer.)
pg_hold slowlock "BEGIN; LOCK TABLE requests IN ACCESS EXCLUSIVE MODE;"
for i in $(seq 100); do
	[ "$(ap_psql fleet -Atc "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname = 'requests' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
	sleep 0.1
done
urls=()
for i in $(seq 10); do urls+=("$A/hello"); done
ap_curl_many "$AP_TMP/slow.out" "${urls[@]}"
for i in $(seq 150); do
	st=$(api alpha /api/v1/status)
	[ "$(jq -r .store.database <<<"$st")" = slow ] && break
	sleep 0.1
done
ap_assert_jq "status while the table is locked: slow, 10 rows held" \
	'.store.database == "slow" and .store.write_busy_ms >= 5000 and .store.rows_held == 10' "$st"
# A read of the locked table waits 2 s for it (lock_timeout), then is a
# 503; it waited as long as the lock did, and a few such reads held every
# HTTP thread, /healthz included.
code=$(curl -s -o "$AP_TMP/locked.json" -w '%{http_code}' --max-time 10 "$URL_alpha/api/v1/requests")
ap_assert_eq "fleet /api/v1/requests while requests is locked" "$code" 503
ap_assert_jq "its error says the database is unavailable" \
	'.error | test("database is unavailable")' "$(cat "$AP_TMP/locked.json")"
pg_release slowlock "COMMIT;"
for i in $(seq 150); do
	st=$(api alpha /api/v1/status)
	[ "$(jq -r .store.database <<<"$st")" = up ] && [ "$(jq .store.rows_held <<<"$st")" = 0 ] && break
	sleep 0.1
done
ap_assert_jq "status once unlocked: up, nothing held" '.store.database == "up" and .store.rows_held == 0' "$st"
ap_assert_eq "alpha's rows stored after the lock (60 + 10)" "$(stored alpha)" 70

# ---- partitions, and migrations ----
# Today's and tomorrow's partitions exist; an 10-day-old one (made here,
# with a row) is dropped whole by retention (retention_days 7) when beta
# restarts.
today=$(( $(date +%s) / 86400 ))
pname() { date -u -d "@$(( $1 * 86400 ))" +%Y%m%d; }
ap_assert_eq "partitions of today and tomorrow" "$(ap_psql fleet -Atc "SELECT count(*) FROM pg_class
	WHERE relname IN ('requests_p$(pname $today)', 'queries_p$(pname $today)',
	'request_n_plus_one_p$(pname $today)', 'requests_p$(pname $((today + 1)))',
	'queries_p$(pname $((today + 1)))', 'request_n_plus_one_p$(pname $((today + 1)))')")" 6
old=$((today - 10))
lo=$((old * 86400 * 1000000000))
hi=$(((old + 1) * 86400 * 1000000000))
for t in requests queries request_n_plus_one; do
	ap_psql fleet -c "CREATE TABLE ${t}_p$(pname $old) PARTITION OF $t FOR VALUES FROM ($lo) TO ($hi)"
done
ap_psql fleet -c "INSERT INTO requests (id, ts_ns, host, service, pid, tid, method, path, route,
	status, duration_ms, bytes_in, bytes_out) VALUES (1, $((lo + 1)), 'old', 'web', 1, 1, 'GET',
	'/old', '/old', 200, 1, 0, 0)"
# An upgrade: every collector stopped, the database at version 2, then
# started again (alpha on its old socket: its server keeps sending there).
ap_stop_pid "$PID_beta"
ap_stop_pid "$PID_alpha"
ap_psql fleet -c "DROP INDEX requests_host; DROP TABLE endpoint_totals, query_totals;
	DROP TABLE window_summaries, regressions, ts_buckets, profile_endpoints,
	profile_stacks; ALTER TABLE query_shapes DROP COLUMN last_seen_ns;
	UPDATE schema_version SET version = 2"
ntexts=$(ap_psql fleet -Atc "SELECT count(*) FROM query_shapes")
migrated_ns=$(date +%s%N)
launch_col beta beta "$URI"
launch_col alpha alpha "$URI"
wait_col beta
wait_col alpha
for i in $(seq 50); do
	[ "$(ap_psql fleet -Atc "SELECT count(*) FROM pg_class WHERE relname LIKE '%_p$(pname $old)'")" = 0 ] && break
	sleep 0.2
done
ap_assert_eq "the 10-day-old partitions dropped" \
	"$(ap_psql fleet -Atc "SELECT count(*) FROM pg_class WHERE relname LIKE '%_p$(pname $old)'")" 0
# Both collectors expire the fleet's partitions; whichever gets there first
# drops and counts them, the other finds them gone: the row is counted
# once in the fleet (a clean-clone run saw alpha get there first).
ap_assert_eq "the expired row counted once, by alpha or beta" \
	"$(( $(api beta /api/v1/status | jq .store.rows_expired) + $(api alpha /api/v1/status | jq .store.rows_expired) ))" 1
grep -q "retention dropped partition requests_p$(pname $old)" "$AP_TMP/beta.log" "$AP_TMP/alpha.log" ||
	ap_fail "neither collector logged the dropped partition"
ap_assert_eq "PostgreSQL schema upgraded from 2" \
	"$(ap_psql fleet -Atc "SELECT max(version) FROM schema_version")" 8
ap_assert_eq "requests_host index and the totals tables recreated" \
	"$(ap_psql fleet -Atc "SELECT (SELECT count(*) FROM pg_indexes WHERE indexname = 'requests_host')
	+ (SELECT count(*) FROM pg_tables WHERE tablename IN ('endpoint_totals', 'query_totals'))")" 3
ap_assert_eq "one of the two migrated, once" \
	"$(cat "$AP_TMP/alpha.log" "$AP_TMP/beta.log" | grep -c 'schema migrated from version 2 to 8')" 1
ap_assert_eq "the statement texts kept by the migration to 8, seen at its time" \
	"$(ap_psql fleet -Atc "SELECT count(*) || ' ' || count(*) FILTER (WHERE last_seen_ns >= $migrated_ns
	AND last_seen_ns <= $(date +%s%N)) FROM query_shapes")" "$ntexts $ntexts"
ap_assert_eq "beta's rows kept" "$(stored beta)" 27
# The window tables, recreated empty, get each host's windows again from
# its local file.
for i in $(seq 90); do
	[ "$(win beta "$W1" | jq '.[0].count')" = 10 ] && break
	sleep 0.2
done
ap_assert_jq "W1 of /slow over both hosts, published again after the tables were dropped" \
	'length == 1 and .[0].count == 10' "$(win beta "$W1")"
ap_assert_eq "host slots: two hosts, none taken by beta's restart" \
	"$(ap_psql fleet -Atc "SELECT count(*) || ' ' || (SELECT last_value FROM hosts_slot_seq) FROM hosts")" "2 2"

# ---- statement texts (query_shapes) across the fleet ----
# seen T : how many of the two texts below were seen at or after T (ns),
# and how many there are ("0 2": both written, neither seen since T).
DAY_NS=$((86400 * 1000000000))
BYID='%FROM books WHERE id = ?'
FAIL='%FROM missing_table%'
seen() {
	ap_psql fleet -Atc "SELECT count(*) FILTER (WHERE last_seen_ns >= $1) || ' ' || count(*)
		FROM query_shapes WHERE sql LIKE '$BYID' OR sql LIKE '$FAIL'"
}
waiting() { ap_psql fleet -Atc "SELECT count(*) FROM pg_locks WHERE NOT granted"; }
# Two statements new to both hosts, first on alpha (their texts written),
# then made stale; while a session deletes one of them (as a retention pass
# would, uncommitted), beta runs both: its first minute rows of them wait
# for that session, and once it commits, beta has written the deleted text
# again and set the other's last_seen_ns to now (it was 10 days old).
ap_curl_many "$AP_TMP/texts_a.out" "$BOOKS_alpha/books/1/" "$BOOKS_alpha/fail"
poll 30 eval '[ "$(seen 0)" = "2 2" ]'
ap_assert_eq "alpha wrote both texts" "$(seen 0)" "2 2"
t0=$(date +%s%N)
ap_psql fleet -c "UPDATE query_shapes SET last_seen_ns = $((t0 - 10 * DAY_NS))
	WHERE sql LIKE '$BYID' OR sql LIKE '$FAIL'"
pg_hold textdel "BEGIN; DELETE FROM query_shapes WHERE sql LIKE '$BYID';"
ap_curl_many "$AP_TMP/texts_b.out" "$BOOKS_beta/books/1/" "$BOOKS_beta/fail"
poll 30 eval '[ "$(waiting)" -ge 1 ]'
ap_assert_eq "beta's minutes wait for the session deleting a text" "$(waiting)" 1
pg_release textdel "COMMIT;"
poll 30 eval '[ "$(seen "$t0")" = "2 2" ]'
ap_assert_eq "beta wrote the deleted text again and set the stale one's last_seen_ns, both now" \
	"$(seen "$t0")" "2 2"

# Retention (beta restarted; retention_days 7) deletes a text unseen for
# 10 days that nothing names, and keeps one seen 6 days ago, those that a
# host's all-time totals name (10 days old too: the fleet's own, made so
# here, and one of a made-up host), and one that a
# transaction writing a minute row of it holds, having set its
# last_seen_ns (as a collector's does): whether the pass skips that row or
# waits for it, it finds it seen now and keeps it.
ap_stop_pid "$PID_beta"
now_ns=$(date +%s%N)
old=$((now_ns - 10 * DAY_NS))
ap_psql fleet -c "INSERT INTO query_shapes (service, db, fingerprint, sql, last_seen_ns) VALUES
	('t', 'sqlite', 1, 'SELECT gone', $old), ('t', 'sqlite', 2, 'SELECT recent', $((now_ns - 6 * DAY_NS))),
	('t', 'sqlite', 3, 'SELECT totals', $old), ('t', 'sqlite', 4, 'SELECT held', $old);
	INSERT INTO query_totals (host, service, db, fingerprint, calls, total_ms, max_ms, rows, errors,
	slow_count, sketch, updated_ns) VALUES ('t-host', 't', 'sqlite', 3, 1, 1, 1, 0, 0, 0, '', $now_ns);
	UPDATE query_shapes SET last_seen_ns = $old WHERE service = 'books'"
pg_hold textheld "BEGIN; INSERT INTO query_minutes (minute, host, service, db, fingerprint, calls,
	total_ms, max_ms, rows, errors, slow_count, sketch) VALUES ($((now_ns / 1000000000 / 60 * 60)),
	't-host', 't', 'sqlite', 4, 1, 1, 1, 0, 0, 0, ''); UPDATE query_shapes SET last_seen_ns = $now_ns
	WHERE service = 't' AND fingerprint = 4 AND last_seen_ns < $((now_ns - 3600 * 1000000000));"
texts() { ap_psql fleet -Atc "SELECT string_agg(sql, ', ' ORDER BY fingerprint) FROM query_shapes WHERE service = 't'"; }
start_col beta beta "$URI"
KEPT="SELECT recent, SELECT totals, SELECT held"
poll 30 eval '[ "$(texts)" = "$KEPT" ] || [ "$(waiting)" -ge 1 ]'
pg_release textheld "COMMIT;"
poll 15 eval '[ "$(texts)" = "$KEPT" ]'

ap_assert_eq "retention: the unseen, unnamed text deleted, the others kept" "$(texts)" "$KEPT"
ap_assert_eq "the held text seen now" \
	"$(ap_psql fleet -Atc "SELECT last_seen_ns FROM query_shapes WHERE service = 't' AND fingerprint = 4")" "$now_ns"
ap_assert_eq "the fleet's own texts kept, 10 days old too (its hosts' totals name them)" \
	"$(ap_psql fleet -Atc "SELECT count(*) FROM query_shapes WHERE service = 'books'")" "$((ntexts + 2))"
ap_psql fleet -c "DELETE FROM query_minutes WHERE host = 't-host'; DELETE FROM query_totals WHERE host = 't-host';
	DELETE FROM query_shapes WHERE service = 't'"

start_col lite lite "$AP_TMP/lite.db"
ap_stop_pid "$PID_lite"
sqlite3 "$AP_TMP/lite.db" "DROP INDEX requests_host; UPDATE schema_version SET version = 2"
start_col lite lite "$AP_TMP/lite.db"
ap_assert_eq "SQLite schema upgraded from 2" \
	"$(sqlite3 "$AP_TMP/lite.db" "SELECT max(version) FROM schema_version")" 3
ap_assert_eq "SQLite requests_host index recreated" \
	"$(sqlite3 "$AP_TMP/lite.db" "SELECT count(*) FROM sqlite_master WHERE name = 'requests_host'")" 1
# The same fields from both backends: the SQLite collector with traffic of
# its own, against alpha's answers from PostgreSQL.
AP_SOCK=$AP_TMP/lite.sock AP_SERVICE=web ap_start_threaded web_lite
ap_curl_many "$AP_TMP/lite.out" "http://127.0.0.1:$AP_PORT/hello" "http://127.0.0.1:$AP_PORT/error"
for i in $(seq 50); do
	[ "$(count lite /error)" = 1 ] && break
	sleep 0.2
done
sleep 1
shape() { jq -c '[(.endpoints // .requests // .errors)[0] | keys]'; }
for path in /api/v1/endpoints /api/v1/requests /api/v1/errors; do
	ap_assert_eq "$path fields, SQLite and PostgreSQL" "$(api lite $path | shape)" \
		"$(api alpha $path | shape)"
done
lid=$(api lite /api/v1/requests --data-urlencode route=/error | jq '.requests[0].id')
aid=$(api alpha /api/v1/requests --data-urlencode route=/error | jq '.requests[0].id')
ap_assert_eq "request detail fields, SQLite and PostgreSQL" \
	"$(api lite "/api/v1/requests/$lid" | jq -c 'keys')" "$(api alpha "/api/v1/requests/$aid" | jq -c 'keys')"
ap_stop_pid "$PID_lite"

# ---- the collector never profiles itself ----
# Under another file name (the preload's name check does not apply), with
# the preload sending to alpha: its API calls (each reading PostgreSQL
# through libpq) would show up in alpha as service "selfcheck".
cp "$AP_COLLECTOR" "$AP_TMP/mycollector"
port=$(ap_free_port)
mkdir -p "$AP_TMP/gamma"
printf 'host_name = gamma\n' >"$AP_TMP/gamma/apiprof.conf"
mkdir -p "$AP_TMP/gstate"
ap_bg gamma env -C "$AP_TMP/gamma" STATE_DIRECTORY="$AP_TMP/gstate" \
	LD_PRELOAD="$(ap_preload)" APIPROF_SOCKET="$AP_TMP/alpha.sock" \
	APIPROF_SERVICE=selfcheck "$AP_TMP/mycollector" --config "$AP_TMP/gamma/apiprof.conf" \
	--socket "$AP_TMP/gamma.sock" --http "127.0.0.1:$port" --db "$URI"
URL_gamma=http://127.0.0.1:$port
for i in $(seq 300); do
	curl -sf --max-time 2 "$URL_gamma/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
for i in 1 2 3 4 5; do
	api gamma /api/v1/endpoints >/dev/null
	api gamma /api/v1/requests >/dev/null
done
ap_assert_eq "gamma answers for the fleet" "$(count gamma /hello)" 49
[ -f "$AP_TMP/gstate/apiprof.db" ] && [ ! -e "$AP_TMP/gamma/apiprof.db" ] ||
	ap_fail "gamma's local window file is not in \$STATE_DIRECTORY"
[ -f "$AP_TMP/alpha/apiprof.db" ] || ap_fail "alpha's local window file is not in its working directory"
sleep 1.5
st=$(api alpha /api/v1/status)
ap_assert_jq "no process of service selfcheck reached alpha" \
	'[.processes[] | select(.service == "selfcheck")] | length == 0' "$st"
ap_assert_jq "no requests of service selfcheck" \
	'[.endpoints[] | select(.service == "selfcheck")] | length == 0' "$(api alpha /api/v1/endpoints)"

# ---- CPU profiles of the fleet (/api/v1/profile) ----
# A preloaded prof_server behind each, profiling every request: 2 /spin
# of 100 ms CPU on alpha, 1 on beta. alpha's profile of /spin sums both
# hosts' (3 requests, samples and stacks summed), ?host= each one's part.
AP_PROF_SERVER=$AP_BUILDDIR/tests/servers/prof_server
if grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h"; then
	ap_require_build "$AP_PROF_SERVER"
	for h in alpha beta; do
		port=$(ap_free_port)
		AP_SOCK=$AP_TMP/$h.sock AP_SERVICE=prof ap_bg_preloaded "prof_$h" \
			env APIPROF_PROFILE_EVERY=1 "$AP_PROF_SERVER" --port "$port"
		printf -v "PROF_$h" '%s' "http://127.0.0.1:$port"
		ap_wait_log "prof_$h" '^listening on'
	done
	for u in "$PROF_alpha" "$PROF_alpha" "$PROF_beta"; do   # one request per connection
		curl -sf --max-time 20 -o /dev/null "$u/spin?ms=100" || ap_fail "GET $u/spin failed"
	done
	# prof NAME [ARGS] : NAME's profile of prof GET /spin.
	prof() {
		api "$1" /api/v1/profile --data-urlencode service=prof --data-urlencode method=GET \
			--data-urlencode route=/spin "${@:2}"
	}
	for i in $(seq 50); do
		[ "$(prof alpha | jq .requests)" = 3 ] && break
		sleep 0.2
	done
	sleep 1.5   # the last samples published
	all=$(prof alpha)
	pa=$(prof beta --data-urlencode host=alpha)
	pb=$(prof alpha --data-urlencode host=beta)
	ap_assert_eq "alpha's /profile of /spin: profiled requests of both hosts" "$(jq .requests <<<"$all")" 3
	ap_assert_eq "?host=beta through alpha: beta's 1" "$(jq .requests <<<"$pb")" 1
	ap_assert_eq "?host=alpha through beta: alpha's 2" "$(jq .requests <<<"$pa")" 2
	ap_assert_eq "fleet samples = alpha's + beta's" "$(jq .samples <<<"$all")" \
		"$(( $(jq .samples <<<"$pa") + $(jq .samples <<<"$pb") ))"
	ap_assert_jq "beta's samples: about 100 ms of CPU" '.samples >= 50' "$pb"
	folded=$(prof alpha --data-urlencode format=collapsed)
	ap_assert_eq "collapsed stacks of the fleet sum to its samples" \
		"$(awk '{ n += $NF } END { print n + 0 }' <<<"$folded")" "$(jq .samples <<<"$all")"
	grep -q 'spin_plain' <<<"$folded" || ap_fail "no /spin frame in the fleet's stacks"
else
	[ "$(id -u)" -eq 0 ] && ap_fail "built without libdw: CPU profiles are compiled out"
	ap_log "built without libdw: fleet profiles not checked"
fi

# ---- storage faults of PostgreSQL: a far timestamp, a full disk ----
# A collector of its own (delta, database pgfaults), fed by a sender of
# datagrams. (1) A sender whose clock offset dates a request in the last
# day of int64 nanoseconds (2262): the collector refuses it at ingest
# (ingest.records_misdated, one log line) and makes no partition for it;
# the rows after it are not held back. (Before the bound at ingest, its
# partition was made up to MAXVALUE; before that, the bound overflowed,
# PostgreSQL refused the partition, and the batch was retried forever.) (2) The database server's disk full (a trigger raising
# SQLSTATE 53100, disk_full): the rows are held and retried until it
# passes, none refused (they were, after 3 tries), the status gives
# PostgreSQL's reason (it said "unknown error"), and the log says it once
# each way even though the minute statistics are written meanwhile.
ap_psql postgres -c "CREATE DATABASE pgfaults" >/dev/null
start_col delta delta "postgresql://postgres@127.0.0.1:$AP_PG_PORT/pgfaults"
cat >"$AP_TMP/send.py" <<'PY'
import socket, struct, sys, time
def s16(b): return struct.pack("<H", len(b)) + b
def rec(t, p): return struct.pack("<HHI", t, 0, len(p)) + p
sock, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
off = time.time_ns() - now if mode != "far" else (2**63 - 1) - now - 10**9
hello = rec(1, struct.pack("<IIQ", 0, 1, 0) + s16(b"faults") + s16(b"/bin/send"))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for i in range(n):
    req = rec(2, struct.pack("<QQQQQIHH", i + 1, now - 1000000, now, 10, 20, 1, 200, 0)
              + s16(b"GET") + s16(b"/" + mode.encode()) + s16(b""))
    s.sendto(struct.pack("<IBBHIIq", 0x46525041, 1, 0, 24, i, 0, off) + hello + req, sock)
PY
send() { /usr/bin/python3 "$AP_TMP/send.py" "$AP_TMP/delta.sock" "$@" || ap_fail "send.py $* failed"; }
dstore() { api delta /api/v1/status | jq -c ".store | $1"; }
send now 5
send far 1
send now 5
written() { [ "$(dstore .rows_written)" -ge "$1" ]; }
poll 20 written 10 || ap_fail "not 10 rows written around one dated 2262: $(dstore .)"
ap_assert_jq "a request dated 2262: refused at ingest; the others written, no error" \
	'.ingest.records_misdated == 1 and .store.rows_written == 10 and .store.rows_rejected == 0 and
	 .store.storage_errors == 0' "$(api delta /api/v1/status)"
ap_assert_eq "log lines about it" \
	"$(grep -c 'refused a request record of pid [0-9]* dated 2262-04-11T' "$AP_TMP/delta.log")" 1
ap_assert_eq "no partition for it" "$(ap_psql pgfaults -Atc "SELECT count(*) FROM pg_class
	WHERE relname IN ('requests_p22620411', 'queries_p22620411', 'request_n_plus_one_p22620411')")" 0
ap_psql pgfaults -c "CREATE FUNCTION ap_full() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
	RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
	END \$\$; CREATE TRIGGER ap_full BEFORE INSERT ON requests FOR EACH ROW EXECUTE FUNCTION ap_full()" >/dev/null
# Two bursts: the minutes of the first commit while its rows fail, which
# must not end the fault (it flipped off and on, logged each way, every
# second).
send now 5
sleep 1.5
send now 5
errors5() { [ "$(dstore .storage_errors)" -ge 5 ]; }
poll 30 errors5 || ap_fail "not 5 failed writes on a full disk: $(dstore .)"
ap_assert_jq "disk full: 10 rows held, none refused, the reason shown" \
	'.rows_written == 10 and .rows_held == 10 and .rows_rejected == 0 and .writing == false and
	 (.last_error | test("writing requests: could not extend file: No space left on device \\(SQLSTATE 53100\\)"))' "$(dstore .)"
ap_assert_eq "log lines about the full disk while it lasts" \
	"$(grep -c 'storage: writing requests' "$AP_TMP/delta.log")" 1
ap_assert_eq "no end of the fault logged while rows still fail" \
	"$(grep -c 'storage: writing again' "$AP_TMP/delta.log")" 0
ap_psql pgfaults -c "DROP TRIGGER ap_full ON requests" >/dev/null
poll 20 written 20 || ap_fail "the held rows not written once the disk had room: $(dstore .)"
ap_assert_eq "the end of the fault logged once" \
	"$(grep -c 'storage: writing again' "$AP_TMP/delta.log")" 1
ap_assert_jq "space again: every row written, none refused" \
	'.rows_written == 20 and .rows_held == 0 and .rows_rejected == 0' "$(dstore .)"
ap_assert_eq "rows of the sender in the database" \
	"$(ap_psql pgfaults -Atc "SELECT count(*) FROM requests WHERE service = 'faults'")" 20
# (3) Rows the database refuses as data (a trigger raising SQLSTATE 23514,
# check_violation, on one path), three times: refused and counted, and
# that ends the fault, as a refusal by SQLite does; it stood (writing
# false) until another batch of rows committed, however many minute
# writes committed meanwhile.
ap_psql pgfaults -c "CREATE FUNCTION ap_bad() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
	IF NEW.path = '/bad' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF;
	RETURN NEW; END \$\$; CREATE TRIGGER ap_bad BEFORE INSERT ON requests FOR EACH ROW
	EXECUTE FUNCTION ap_bad()" >/dev/null
send bad 1
rejected1() { [ "$(dstore .rows_rejected)" = 1 ]; }
poll 20 rejected1 || ap_fail "the refused row not counted: $(dstore .)"
writing() { [ "$(dstore .writing)" = true ]; }
poll 3 writing || ap_fail "the fault stands after the rows were refused: $(dstore .)"
ap_assert_jq "refused as data: counted, nothing held, writing" \
	'.rows_written == 20 and .rows_held == 0 and .rows_rejected == 1 and .writing == true and
	 (.last_error | test("refused \\(SQLSTATE 23514\\)"))' "$(dstore .)"
ap_psql pgfaults -c "DROP TRIGGER ap_bad ON requests" >/dev/null
# (3b) The all-time totals refused (a trigger on endpoint_totals) while
# the rows of two bursts commit: the fault stands, logged once, until the
# totals are written again (it ended at each commit of rows, and began
# again at the next second's totals: two log lines a second).
again0=$(grep -c 'storage: writing again' "$AP_TMP/delta.log")
ap_psql pgfaults -c "CREATE TRIGGER ap_full BEFORE INSERT ON endpoint_totals FOR EACH ROW
	EXECUTE FUNCTION ap_full()" >/dev/null
send now 5
sleep 1.5
send now 5
written30() { [ "$(dstore .rows_written)" -ge 30 ]; }
poll 20 written30 || ap_fail "the rows not written while the totals fail: $(dstore .)"
sleep 2
ap_assert_jq "totals refused, rows written: the fault stands" \
	'.rows_written == 30 and .writing == false and (.last_error | test("writing all-time totals"))' \
	"$(dstore .)"
ap_assert_eq "log lines about the totals while they fail" \
	"$(grep -c 'storage: writing all-time totals' "$AP_TMP/delta.log")" 1
ap_assert_eq "no end of the fault logged while the totals fail" \
	"$(grep -c 'storage: writing again' "$AP_TMP/delta.log")" "$again0"
ap_psql pgfaults -c "DROP TRIGGER ap_full ON endpoint_totals" >/dev/null
poll 5 writing || ap_fail "the fault stands after the totals were written: $(dstore .)"
ap_assert_eq "the end of the totals' fault logged once" \
	"$(grep -c 'storage: writing again' "$AP_TMP/delta.log")" "$((again0 + 1))"
# A text parameter that is not UTF-8, which PostgreSQL refuses: a 400 (it
# was a 503, "the database is unavailable").
for u in '/api/v1/requests?service=%FF' '/api/v1/summaries?route=%C3'; do
	ap_assert_eq "GET $u on PostgreSQL" \
		"$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL_delta$u")" 400
done
ap_stop_pid "$PID_delta"
# (4) Today's partition cannot be made (another partition of requests
# covers the day): the collector does not start, exit status 2, and says
# PostgreSQL's reason (it said "unknown error": the ROLLBACK cleared it).
ap_psql pgfaults -c "DO \$\$ DECLARE d bigint := floor(extract(epoch FROM now()) / 86400); BEGIN
	EXECUTE format('DROP TABLE requests_p%s', to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'));
	EXECUTE format('CREATE TABLE requests_clash PARTITION OF requests FOR VALUES FROM (%s) TO (%s)',
	               d * 86400000000000, (d + 1) * 86400000000000); END \$\$" >/dev/null
launch_col epsilon epsilon "postgresql://postgres@127.0.0.1:$AP_PG_PORT/pgfaults"
gone_eps() { ! kill -0 "$PID_epsilon" 2>/dev/null; }
poll 20 gone_eps || ap_fail "a collector started though today's partition cannot be made"
wait "$PID_epsilon"
ap_assert_eq "exit status when today's partition cannot be made" "$?" 2
grep -q 'creating partitions: partition "requests_p[0-9]*" would overlap partition "requests_clash"' \
	"$AP_TMP/epsilon.log" || ap_fail "PostgreSQL's reason not given: $(cat "$AP_TMP/epsilon.log")"
ap_log "ok: $(grep -o 'creating partitions.*' "$AP_TMP/epsilon.log")"
