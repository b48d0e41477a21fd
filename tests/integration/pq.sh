#!/bin/bash
# SQL capture in a C server calling libpq directly (tests/servers/pq_server.c)
# against a throwaway PostgreSQL 15: PQexecParams, PQprepare +
# PQexecPrepared (a prepare is a statement of its own, once per database
# session), PQsendQuery with a PQconsumeInput/PQisBusy/poll loop and
# PQsendQueryParams, each timed until their final PQgetResult, PQexec with
# literals in the text, a statement failing with SQLSTATE 42P01, and
# transactions (BEGIN, COMMIT: statements, never N+1). Asserts exact
# statement counts per route and per request, the N+1 of /txn, the error
# rows, the timing of the asynchronous 150 ms sleep, and that no literal
# reaches the collector's output or database.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_PQ_SERVER=$AP_BUILDDIR/tests/servers/pq_server
ap_require curl jq python3 sqlite3
ap_require_pg
ap_require_build "$AP_PQ_SERVER"

printf 'n_plus_one_threshold = 3\n' >"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"
ap_start_pg pg pqt
ap_psql pqt -c "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
	INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');
	CREATE TABLE log (id serial PRIMARY KEY, note text)"

AP_PORT=$(ap_free_port)
ap_bg_preloaded server "$AP_PQ_SERVER" --port "$AP_PORT" \
	--conninfo "host=127.0.0.1 port=$AP_PG_PORT dbname=pqt user=postgres connect_timeout=10"
AP_SERVER_PID=$AP_BG_PID
ap_wait_log server '^listening on'
B=http://127.0.0.1:$AP_PORT
ap_log "collector $AP_URL, pq_server on port $AP_PORT (pid $AP_SERVER_PID)"

# Connection A: one database session for six requests, so "get_item" is
# prepared once for its three /prepared.
ap_curl_many "$AP_TMP/a.out" "$B/params" "$B/prepared" "$B/params" "$B/prepared" "$B/prepared" "$B/exec"
ap_assert_eq "connection A statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/a.out")" "200 200 200 200 200 200 "
# Connection B: a new session, prepared again.
ap_curl_many "$AP_TMP/b.out" "$B/prepared" "$B/prepared"
ap_assert_eq "connection B statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/b.out")" "200 200 "
ap_curl_many "$AP_TMP/c.out" "$B/async" "$B/async-params" "$B/async" "$B/async-params" "$B/long"
ap_assert_eq "async statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/c.out")" "200 200 200 200 200 "
ap_curl_many "$AP_TMP/d.out" "$B/fail" "$B/fail" "$B/txn" "$B/nope"
ap_assert_eq "fail, txn, 404 statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/d.out")" "500 500 200 404 "
# /late: its statement is sent in the request and read after the response.
ap_curl_many "$AP_TMP/e.out" "$B/late"
ap_assert_eq "late status" "$(awk '{printf "%s ", $1}' "$AP_TMP/e.out")" "200 "
grep -q 'pq_server: ' "$AP_TMP/server.log" && ap_fail "pq_server reported an unexpected result: $(grep 'pq_server: ' "$AP_TMP/server.log")"

ap_expect_counts <<EOF
GET /params 2
GET /prepared 5
GET /exec 1
GET /async 2
GET /async-params 2
GET /long 1
GET /fail 2
GET /txn 1
GET /nope 1
GET /late 1
EOF

# Statements (PQconnectdb and PQfinish run none):
#   /params        PQexecParams                                     1
#   /prepared      A: PQprepare + PQexecPrepared, then twice PQexecPrepared
#                  B: PQprepare + PQexecPrepared, then PQexecPrepared
#                  (requests 2, 1, 1 and 2, 1)                       7 in 5 requests
#   /exec          PQexec                                           1
#   /async         PQsendQuery ... NULL PQgetResult (one statement,
#                  however many PQgetResult calls)                  1
#   /async-params  PQsendQueryParams ... NULL PQgetResult           1
#   /long          PQsendQuery of 1,800 bytes, held cut at 1 KiB    1
#   /fail          PQexec, failing (a failed statement counts)      1
#   /txn           3 x (BEGIN, INSERT, COMMIT)                      9, an N+1 (INSERT x 3)
#   /nope          nothing                                          0
#   /late          PQsendQuery ... NULL PQgetResult after the response:
#                  it outlives its request, so it counts for the
#                  service only (arriving after the request's event, it
#                  would wait for it until it expired)                 0
ap_expect_sql <<EOF
GET /params 2 2 0
GET /prepared 5 7 0
GET /exec 1 1 0
GET /async 2 2 0
GET /async-params 2 2 0
GET /long 1 1 0
GET /fail 2 2 0
GET /txn 1 9 1
GET /nope 1 0 0
GET /late 1 0 0
EOF
ap_assert_eq "sql_count of each GET /prepared request" "$(ap_request_sql GET /prepared)" "1 1 1 2 2"
ap_assert_eq "sql_count of each GET /async request" "$(ap_request_sql GET /async)" "1 1"
ap_assert_eq "sql_count of each GET /async-params request" "$(ap_request_sql GET /async-params)" "1 1"

json=$(ap_api /api/v1/status)
ap_assert_jq "/api/v1/status: /late's statement the one unattributed, none waiting for a request" \
	'.ingest.statements_unattributed == 1 and .ingest.statements_pending == 0 and .ingest.requests_pending == 0' "$json"

# A prepare and the executions of what it prepared carry one text: one shape.
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/queries.json"
ap_assert_jq "/api/v1/queries: the prepared statement's shape, 7 calls (2 prepares, 5 executions)" \
	'[.queries[] | select(.sql | test("^SELECT name FROM items WHERE id = (\\$1|\\?)$"; "i"))] |
	 length == 1 and .[0].calls == 7' "$json"
ap_assert_jq "/api/v1/queries: the INSERT of /txn, 3 calls; BEGIN 3; COMMIT 3" \
	'([.queries[] | select(.sql | test("^INSERT INTO log"; "i"))] | length == 1 and .[0].calls == 3 and .[0].rows == 3) and
	 ([.queries[] | select(.sql | test("^BEGIN$"; "i"))] | length == 1 and .[0].calls == 3) and
	 ([.queries[] | select(.sql | test("^COMMIT$"; "i"))] | length == 1 and .[0].calls == 3)' "$json"
ap_assert_jq "/api/v1/queries: /exec's literals replaced, its IN list collapsed" \
	'[.queries[] | select(.sql | test("^SELECT id, name FROM items WHERE name ="; "i"))] |
	 length == 1 and (.[0].sql | test("name = \\? OR id IN \\(")) and (.[0].sql | test("[0-9'"'"']") | not)' "$json"
ap_assert_jq "/api/v1/queries: no literal in any shape (\$n placeholders aside)" \
	'(.queries | length) >= 8 and all(.queries[]; .sql | gsub("\\$[0-9]+"; "") | test("[0-9'"'"']") | not)' "$json"
ap_assert_jq "/api/v1/queries: the failing statement, 1 shape, 2 calls, 2 errors" \
	'[.queries[] | select(.sql | test("no_such_table"))] | length == 1 and .[0].calls == 2 and .[0].errors == 2' "$json"

# Asynchronous statements are timed from the send to the final PQgetResult.
reqs=$(ap_requests /async)
for id in $(jq -r '.[].id' <<<"$reqs"); do
	detail=$(ap_request_detail "$id")
	ap_assert_jq "GET /async ($id): one statement of >= 150 ms (pg_sleep(0.15) until the NULL PQgetResult), 1 row" \
		'(.queries | length) == 1 and .queries[0].duration_ms >= 150 and .queries[0].duration_ms < 5000 and
		 .queries[0].rows == 1 and .queries[0].error == null and (.queries[0].sql | test("pg_sleep"))' "$detail"
done
detail=$(ap_request_detail "$(ap_requests /async-params | jq -r '.[0].id')")
ap_assert_jq "GET /async-params: one statement, 1 row, its text with placeholders" \
	'(.queries | length) == 1 and .queries[0].rows == 1 and (.queries[0].sql | test("WHERE id = (\\$1|\\?) OR name = (\\$2|\\?)$"))' \
	"$detail"

# A statement longer than the 1 KiB the preload holds while it is in flight
# is cut there and marked truncated, never silently shortened.
detail=$(ap_request_detail "$(ap_requests /long | jq -r '.[0].id')")
ap_assert_jq "GET /long: one statement, cut and marked truncated" \
	'(.queries | length) == 1 and .queries[0].truncated == true and
	 (.queries[0].sql | startswith("SELECT ? AS caa, ? AS cab")) and (.queries[0].sql | length) < 1100' "$detail"

# The N+1 of /txn is the INSERT; BEGIN and COMMIT, three times each too, are
# transaction control, never N+1.
detail=$(ap_request_detail "$(ap_requests /txn | jq -r '.[0].id')")
printf '%s\n' "$detail" >"$AP_TMP/txn-detail.json"
ap_assert_jq "GET /txn detail: 9 queries; one N+1 finding, the INSERT, count 3" \
	'(.queries | length) == 9 and (.n_plus_one | length) == 1 and .n_plus_one[0].count == 3 and
	 (.n_plus_one[0].sql | test("^INSERT INTO log"; "i"))' "$detail"
json=$(ap_api /api/v1/n-plus-one --data-urlencode "service=$AP_SERVICE")
ap_check_jq "/api/v1/n-plus-one: only GET /txn's INSERT, max_repeats 3, occurrences 1" "$json" \
	'[.patterns[] | select(.service == $s)] | length == 1 and
	 (.[0] | .route == "/txn" and .method == "GET" and .max_repeats == 3 and .occurrences == 1 and
	  (.sql | test("^INSERT INTO log"; "i")))' --arg s "$AP_SERVICE"

# Errors: the SQL error and the 500 it caused, both on GET /fail.
json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/errors.json"
ap_check_jq "/api/v1/errors: SQLSTATE 42P01 (count 2, PostgreSQL's primary message) and HTTP 500 (count 2), on GET /fail only" "$json" \
	'[.errors[] | select(.service == $s)] | length == 2 and
	 all(.[]; .method == "GET" and .route == "/fail" and .count == 2) and
	 ([.[] | select(.type == "SQLSTATE 42P01")] | length == 1 and (.[0].message | test("does not exist"))) and
	 ([.[] | select(.type == "HTTP 500")] | length == 1)' --arg s "$AP_SERVICE"
detail=$(ap_request_detail "$(ap_requests /fail | jq -r '.[0].id')")
ap_assert_jq "GET /fail detail: one statement, with its error" \
	'(.queries | length) == 1 and .queries[0].error != null and .status == 500' "$detail"

ap_assert_no_literals "Async Secret" 58270163 "Param Secret" 66049172 "Exec Secret" 27182818 31415926 \
	"Txn Secret" "pg_sleep(0.15"
ap_log "PASS"
