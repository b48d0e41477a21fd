#!/bin/bash
# SQL capture in a single-threaded asyncio server (tests/servers/asyncio_server.py,
# Python's sqlite3 module), run as two processes under the preload:
#
# 1. Event-loop attribution (SPEC section 3, README "Attribution"): a
#    statement belongs to a request only when exactly one request is in
#    flight on its thread; otherwise it counts for the service alone: in
#    /api/v1/queries and the status's totals.sql and
#    ingest.statements_unattributed, never in an endpoint's sql_count nor in
#    a request's sql_count or queries. /one sent alone is attributed, both
#    before and after the concurrent requests (the thread's list of requests
#    in flight empties again); two /pair requests run their statements while
#    both are in flight on the loop (the server makes them meet first and
#    answers neither before both statements ran), so neither statement is
#    attributed, in two rounds. A slow client whose head is half sent (a
#    request line and a header) is not in flight: the requests served
#    meanwhile keep their statements, and so does its own once it ends.
# 2. APIPROF_CAPTURE_SQL_VALUES=1, in the second process (service
#    $AP_SERVICE-values): /authors runs an N+1 whose texts differ only by
#    their literals (ids formatted into the text, and a quoted string). Its
#    request details show the literals, yet every fingerprint is the
#    value-less shape's, the same as in the default process, so the N+1 is
#    found and /api/v1/queries has one shape for the five texts; the
#    default process's /authors shows no literal anywhere.
#
# Process spawns are few on purpose (one curl for several URLs, one jq per
# assertion on a snapshot of the API): the test stays fast on a loaded
# machine.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_ASYNC_SERVER=$AP_SRCDIR/tests/servers/asyncio_server.py
ap_require curl jq
ap_require_pymods sqlite3 asyncio
ap_require_build

ap_start_collector
# Schema and data, without the preload.
/usr/bin/python3 "$AP_ASYNC_SERVER" --db "$AP_TMP/app.db" --seed >"$AP_TMP/seed.log" 2>&1 ||
	ap_fail "seeding the database failed: $(cat "$AP_TMP/seed.log")"

SVC=$AP_SERVICE
SVC_VALUES=$AP_SERVICE-values
# Each server binds a free port itself (--port 0) and prints it.
ap_bg_preloaded server env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$AP_ASYNC_SERVER" \
	--db "$AP_TMP/app.db" --port 0
SERVER_PID=$AP_BG_PID
AP_SERVICE=$SVC_VALUES ap_bg_preloaded values env PYTHONDONTWRITEBYTECODE=1 \
	APIPROF_CAPTURE_SQL_VALUES=1 /usr/bin/python3 "$AP_ASYNC_SERVER" --db "$AP_TMP/app.db" --port 0
VALUES_PID=$AP_BG_PID
ap_wait_log server '^listening on [0-9]+$'
ap_wait_log values '^listening on [0-9]+$'
AP_PORT=$(sed -n 's/^listening on //p' "$AP_TMP/server.log")
VALUES_PORT=$(sed -n 's/^listening on //p' "$AP_TMP/values.log")
B=http://127.0.0.1:$AP_PORT
V=http://127.0.0.1:$VALUES_PORT
ap_log "collector $AP_URL; asyncio_server: $SVC on port $AP_PORT (pid $SERVER_PID)," \
	"$SVC_VALUES with APIPROF_CAPTURE_SQL_VALUES=1 on port $VALUES_PORT (pid $VALUES_PID)"

# get URL... : the URLs one after the other (each on its own connection: the
# server closes after every response); prints their statuses ("200 200 ").
get() {
	local args=() u
	for u in "$@"; do
		args+=(-o /dev/null "$u")
	done
	curl -s --max-time 20 -w '%{http_code} ' "${args[@]}"
}

# ---- traffic ----------------------------------------------------------------
ap_assert_eq "GET /one (alone) status" "$(get "$B/one")" "200 "
for round in 1 2; do
	# Two clients at once; the server holds each /pair until the other one
	# has arrived, and answers neither before both statements ran.
	get "$B/pair" >"$AP_TMP/pair-$round-a" &
	pa=$!
	get "$B/pair" >"$AP_TMP/pair-$round-b" &
	pb=$!
	wait "$pa" "$pb"
	ap_assert_eq "GET /pair x2 at once (round $round) statuses" \
		"$(cat "$AP_TMP/pair-$round-a" "$AP_TMP/pair-$round-b")" "200 200 "
done
# Eight requests that the loop's thread reads and a thread of its executor
# answers: they end elsewhere, and the loop's list of requests in flight,
# 4 long, must let them go rather than take the next ones for forgotten
# ones still running (before the fix, every statement of the loop was
# the service's from then on: /one and /authors below, 0 of 13).
ap_assert_eq "GET /handoff x8 (answered by another thread) statuses" \
	"$(get "$B/handoff" "$B/handoff" "$B/handoff" "$B/handoff" "$B/handoff" "$B/handoff" "$B/handoff" "$B/handoff")" \
	"200 200 200 200 200 200 200 200 "
# A slow client: its request line and a header sent, the blank line that
# ends its head not yet. No handler runs for it, so it is not in flight:
# the requests meanwhile keep their statements (before the fix, all 13
# went to the service alone). Then its head ends: it is a /one of its own,
# attributed.
exec 5<>"/dev/tcp/127.0.0.1/$AP_PORT" || ap_fail "connecting the slow client failed"
printf 'GET /one HTTP/1.1\r\nHost: slow\r\n' >&5
sleep 0.3
ap_assert_eq "GET /one (alone, after the pairs) then GET /authors x2 statuses, a slow client's head half sent meanwhile" \
	"$(get "$B/one" "$B/authors" "$B/authors")" "200 200 200 "
printf '\r\n' >&5
IFS= read -r -t 10 line <&5 || ap_fail "the slow client got no answer"
exec 5<&-
ap_assert_eq "the slow client's GET /one status line" "${line%$'\r'}" "HTTP/1.1 200 OK"
ap_assert_eq "GET /authors x4 (values kept) statuses" \
	"$(curl -s --max-time 20 -w '%{http_code} ' -o /dev/null "$V/authors" -o /dev/null "$V/authors" \
		-o /dev/null "$V/authors" -o "$AP_TMP/authors.json" "$V/authors")" "200 200 200 200 "
ap_assert_jq "GET /authors: the five seeded authors" \
	'[.authors[].id] == [61001, 61002, 61003, 61004, 61005] and .authors[0].name == "Poet 3301"' \
	"$(cat "$AP_TMP/authors.json")"

# Waits until both processes' requests arrived, settles 1.5 s, and checks
# the default service's endpoints exactly. The values process's requests
# all ended before this began, so they are in too (checked exactly below).
ap_expect_counts <<EOF
GET /one 3
GET /pair 4
GET /authors 2
GET /handoff 8
EOF

# A snapshot of the API, in one curl: the lists of every service, then the
# detail of every stored request.
S=$AP_TMP/api
mkdir -p "$S"
curl -sf --max-time 20 -o "$S/endpoints" "$AP_URL/api/v1/endpoints" \
	-o "$S/requests" "$AP_URL/api/v1/requests?limit=1000" \
	-o "$S/queries" "$AP_URL/api/v1/queries" \
	-o "$S/n_plus_one" "$AP_URL/api/v1/n-plus-one" \
	-o "$S/errors" "$AP_URL/api/v1/errors" \
	-o "$S/status" "$AP_URL/api/v1/status" || ap_fail "reading the API failed (curl exit $?)"
ids=$(jq -r '.requests[].id' "$S/requests")
ap_assert_eq "stored requests" "$(wc -w <<<"$ids")" 21
args=()
for id in $ids; do
	args+=(-o "$S/request-$id" "$AP_URL/api/v1/requests/$id")
done
curl -sf --max-time 20 "${args[@]}" || ap_fail "reading the request details failed (curl exit $?)"
ALL=$(jq -n '[inputs] as $a | {endpoints: $a[0].endpoints, requests: $a[1].requests,
	queries: $a[2].queries, patterns: $a[3].patterns, errors: $a[4].errors, status: $a[5], details: $a[6:]}' \
	"$S/endpoints" "$S/requests" "$S/queries" "$S/n_plus_one" "$S/errors" "$S/status" \
	"$S"/request-*) || ap_fail "the API's answers are not JSON"
printf '%s\n' "$ALL" >"$AP_TMP/api.json"

# check WHAT FILTER [JQ-ARGS...] : FILTER must print true on the snapshot,
# with $s and $v the two services.
check() {
	local what=$1 filter=$2
	shift 2
	ap_check_jq "$what" "$ALL" "$filter" --arg s "$SVC" --arg v "$SVC_VALUES" "$@"
}

# ---- 1. event-loop attribution ------------------------------------------------
# Statements per request:
#   /one      SELECT count(*): attributed (one request in flight; the
#             slow client's half-sent head does not count)              1
#   /pair     SELECT max(id): two requests in flight, not attributed   0
#   /authors  the ids, then 5 x the author by id: an N+1 of 5           6
check "/api/v1/endpoints: count, sql_count, n_plus_one_count exactly: $SVC GET /one 3 3 0, GET /pair 4 0 0, GET /authors 2 12 2, GET /handoff 8 0 0; $SVC_VALUES GET /authors 4 24 4, nothing else" \
	'[.endpoints[] | select(.service == $s or .service == $v) | [.service, .method, .route, .count, .sql_count, .n_plus_one_count]] | sort ==
	 ([[$s, "GET", "/one", 3, 3, 0], [$s, "GET", "/pair", 4, 0, 0], [$s, "GET", "/authors", 2, 12, 2],
	   [$s, "GET", "/handoff", 8, 0, 0],
	   [$v, "GET", "/authors", 4, 24, 4]] | sort)'
check "/api/v1/requests: sql_count of each request: /one 1 1 1, /pair 0 0 0 0, /authors 6 6, /handoff 0 x 8 (and 6 x 4 with values kept)" \
	'[.requests[] | select(.service == $s or .service == $v) | [.service, .route, .sql_count, .n_plus_one]] | sort ==
	 ([[$s, "/one", 1, false], [$s, "/one", 1, false], [$s, "/one", 1, false],
	   [$s, "/pair", 0, false], [$s, "/pair", 0, false], [$s, "/pair", 0, false], [$s, "/pair", 0, false],
	   [$s, "/authors", 6, true], [$s, "/authors", 6, true],
	   [$s, "/handoff", 0, false], [$s, "/handoff", 0, false], [$s, "/handoff", 0, false], [$s, "/handoff", 0, false],
	   [$s, "/handoff", 0, false], [$s, "/handoff", 0, false], [$s, "/handoff", 0, false], [$s, "/handoff", 0, false],
	   [$v, "/authors", 6, true], [$v, "/authors", 6, true], [$v, "/authors", 6, true], [$v, "/authors", 6, true]] | sort)'
check "GET /one details: its one statement, SELECT count(*) FROM authors, 1 row" \
	'[.details[] | select(.service == $s and .route == "/one")] | length == 3 and
	 all(.[]; .sql_count == 1 and (.queries | length) == 1 and
	     (.queries[0] | .sql == "SELECT count(*) FROM authors" and .rows == 1 and .db == "sqlite" and .error == null) and
	     (.n_plus_one | length) == 0)'
check "GET /pair details: status 200, no statement, sql_time_ms 0" \
	'[.details[] | select(.service == $s and .route == "/pair")] | length == 4 and
	 all(.[]; .status == 200 and .sql_count == 0 and .sql_time_ms == 0 and
	     (.queries | length) == 0 and (.n_plus_one | length) == 0)'
# The service still counts them: /api/v1/queries has every statement,
# attributed or not.
check "/api/v1/queries ($SVC): count(*) 3 calls, max(id) 4 calls (the unattributed ones), the ids 2, the author by id 10; nothing else" \
	'[.queries[] | select(.service == $s)] |
	 length == 4 and all(.[]; .db == "sqlite" and .errors == 0) and
	 ([.[] | select(.sql == "SELECT count(*) FROM authors")] | length == 1 and .[0].calls == 3 and .[0].rows == 3) and
	 ([.[] | select(.sql == "SELECT max(id) FROM authors")] | length == 1 and .[0].calls == 4 and .[0].rows == 4) and
	 ([.[] | select(.sql == "SELECT id FROM authors ORDER BY id")] | length == 1 and .[0].calls == 2 and .[0].rows == 10) and
	 ([.[] | select(.sql == "SELECT name FROM authors WHERE id = ? AND name <> ?")] | length == 1 and
	  .[0].calls == 10 and .[0].rows == 10)'
# ... as does the status: every statement in totals.sql, only the four of
# /pair unattributed (seeding ran without the preload; opening a sqlite3
# connection runs no statement), none waiting for its request.
check "/api/v1/status: totals.sql 43 (3 + 4 + 12 + 24), ingest.statements 43, statements_unattributed 4; none pending, expired or lost" \
	'.status | .totals.sql == 43 and .totals.requests == 21 and .ingest.statements == 43 and
	 .ingest.statements_unattributed == 4 and .ingest.statements_pending == 0 and
	 .ingest.requests_pending == 0 and .ingest.statements_expired == 0 and .ingest.statements_lost == 0'
check "/api/v1/errors: none for either service" '[.errors[] | select(.service == $s or .service == $v)] | length == 0'

# ---- 2. APIPROF_CAPTURE_SQL_VALUES=1 ------------------------------------------
# The default process: the shape, never a literal.
check "$SVC: GET /authors details: the ids, then 5 x the value-less author lookup, 1 row each; one N+1, count 5" \
	'[.details[] | select(.service == $s and .route == "/authors")] | length == 2 and
	 all(.[]; [.queries[].sql] == ["SELECT id FROM authors ORDER BY id"] + [range(5) | "SELECT name FROM authors WHERE id = ? AND name <> ?"] and
	     [.queries[].rows] == [5, 1, 1, 1, 1, 1] and ([.queries[1:][].fingerprint] | unique | length) == 1 and
	     .queries[0].fingerprint != .queries[1].fingerprint and
	     (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5 and
	     .n_plus_one[0].fingerprint == .queries[1].fingerprint and .n_plus_one[0].sql == .queries[1].sql)'
FP_IDS=$(jq -r --arg s "$SVC" '[.details[] | select(.service == $s and .route == "/authors")][0].queries[0].fingerprint' <<<"$ALL")
FP_LOOKUP=$(jq -r --arg s "$SVC" '[.details[] | select(.service == $s and .route == "/authors")][0].queries[1].fingerprint' <<<"$ALL")
ap_log "fingerprints (default process): the ids $FP_IDS, the author lookup $FP_LOOKUP"
check "$SVC: no digit or quote in any statement text it shows (details, N+1 findings, shapes, patterns)" \
	'[(.details[] | select(.service == $s) | .queries[].sql, .n_plus_one[].sql),
	  (.queries[] | select(.service == $s) | .sql), (.patterns[] | select(.service == $s) | .sql)] |
	 length == 22 and all(.[]; test("[0-9'"'"'\"]") | not)'

# The values process: the literals in the texts, the same fingerprints.
LOOKUP="SELECT name FROM authors WHERE id = %d AND name <> 'Nobody 8086'"
LOOKUP_RE="^SELECT name FROM authors WHERE id = 6100[1-5] AND name <> 'Nobody 8086'\$"
check "$SVC_VALUES: GET /authors details (from its pid): the literals in the texts, the default process's fingerprints; the N+1 found, count 5" \
	'[.details[] | select(.service == $v and .route == "/authors")] | length == 4 and
	 all(.[]; .pid == ($pid | tonumber) and
	     [.queries[].sql] == ["SELECT id FROM authors ORDER BY id"] +
	       [61001, 61002, 61003, 61004, 61005 | tostring as $id | $lookup | sub("%d"; $id)] and
	     [.queries[].rows] == [5, 1, 1, 1, 1, 1] and
	     .queries[0].fingerprint == $fp_ids and all(.queries[1:][]; .fingerprint == $fp_lookup) and
	     (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5 and .n_plus_one[0].fingerprint == $fp_lookup and
	     (.n_plus_one[0].sql | test($re)))' \
	--arg pid "$VALUES_PID" --arg lookup "$LOOKUP" --arg re "$LOOKUP_RE" --arg fp_ids "$FP_IDS" --arg fp_lookup "$FP_LOOKUP"
check "/api/v1/queries ($SVC_VALUES): two shapes; the author lookup is one, 20 calls, shown with its literals" \
	'[.queries[] | select(.service == $v)] | length == 2 and
	 ([.[] | select(.fingerprint == $fp_lookup)] | length == 1 and .[0].calls == 20 and .[0].rows == 20 and
	  (.[0].sql | test($re))) and
	 ([.[] | select(.fingerprint == $fp_ids)] | length == 1 and .[0].calls == 4 and
	  .[0].sql == "SELECT id FROM authors ORDER BY id")' \
	--arg re "$LOOKUP_RE" --arg fp_ids "$FP_IDS" --arg fp_lookup "$FP_LOOKUP"
check "/api/v1/n-plus-one: one pattern per service, GET /authors, the lookup's fingerprint, max_repeats 5; occurrences 2 (no literal) and 4 (literals)" \
	'([.patterns[] | select(.service == $s)] | length == 1 and
	  (.[0] | .method == "GET" and .route == "/authors" and .fingerprint == $fp_lookup and .max_repeats == 5 and
	   .occurrences == 2 and .sql == "SELECT name FROM authors WHERE id = ? AND name <> ?")) and
	 ([.patterns[] | select(.service == $v)] | length == 1 and
	  (.[0] | .method == "GET" and .route == "/authors" and .fingerprint == $fp_lookup and .max_repeats == 5 and
	   .occurrences == 4 and (.sql | test($re))))' \
	--arg re "$LOOKUP_RE" --arg fp_lookup "$FP_LOOKUP"
ap_log "PASS"
