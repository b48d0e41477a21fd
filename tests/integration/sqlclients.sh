#!/bin/bash
# Client libraries used the way real applications use them, with the
# statements they run counted exactly (tests/servers/sqlclients.c, built
# here, run without and then with the preload; no HTTP, so every
# statement counts for the service alone, in /api/v1/queries):
#
# 1. libpq pipeline mode (psycopg 3's executemany): three INSERTs, a
#    SELECT, a PQsendPrepare, a PQsendDescribePrepared (a command, not a
#    statement) and an execution, synced once, are six statements, each
#    with its own text, rows and timing. The preload once held one
#    statement per connection: the pipeline was one statement, with the
#    last text and the first result's rows. A failing pipeline gives the
#    failure to the statement that failed and marks the next one aborted.
#    PQsendPrepare is a prepare statement, and the execution carries its
#    text (it was "EXECUTE bump").
# 2. libpq final NULLs never read: a statement whose caller read its
#    result but not the NULL ends when PQexec drains it, or at the next
#    send (it was lost: 3 statements recorded for 4).
#    libpq 17's closes (psycopg 3 deallocates with them) are commands, not
#    statements: a pipeline of a SELECT, PQsendClosePortal,
#    PQsendClosePrepared and a failing SELECT is two statements, the
#    failure the second's (unhooked, the closes' results were read as the
#    next commands': the failing SELECT was a success). With a libpq older
#    than 17, tests/servers/pq17shim.c stands in for them (it sends
#    describes, which answer as closes do). A synchronous PQclosePrepared
#    after a result whose NULL was not read ends that statement.
# 3. MySQL statements without a result set (an INSERT by mysql_query, an
#    UPDATE by mysql_send_query + mysql_read_query_result) never followed
#    by mysql_store_result, then 500 ms of other work: each is timed to
#    its answer (under 500 ms: a statement timed to the thread's next one
#    takes longer, however loaded the machine), not to the next statement.
#    libmariadb's non-blocking API on two connections, interleaved, with an
#    SQLite statement meanwhile: three statements. The preload's MySQL
#    hook, suspended inside mysql_real_query_start's coroutine, held the
#    thread's depth raised, and the second connection's query and the
#    SQLite statement were lost.
#    Multi-statement queries (CLIENT_MULTI_STATEMENTS), each read through
#    mysql_store_result and mysql_next_result: each is one statement whose
#    rows are all its results' (1 inserted + 2 selected, 1 updated + 2
#    selected), and the one whose third statement fails (duplicate key)
#    is failed. It was a success with the first result's rows.
#    Prepared SELECTs read by mysql_stmt_store_result after
#    mysql_stmt_execute (Ruby's mysql2, Perl's DBD::mysql with
#    mysql_server_prepare): each execution has its 3 rows (they were
#    unknown: mysql_stmt_affected_rows, read at the execute's return).
#    One read by mysql_stmt_fetch ends at its first fetch (rows unknown),
#    not at its close 500 ms later.
# 4. SQLite: the statements that an sqlite3_exec callback runs (an UPDATE
#    for each of 3 rows) are the application's: 3 statements (they were
#    lost, run while the exec's own inner calls pass through). An exec's
#    rows are those it returned to the callback plus those it changed (a
#    SELECT of no row after a DELETE of 3 said 3: sqlite3_changes, the
#    last write's).
#    An INSERT stepped again after SQLITE_BUSY until done (3 retries) is
#    one statement, and one given up after two SQLITE_BUSY is one failed
#    statement (SQLite 5): each SQLITE_BUSY ended an execution, and the
#    two were 6 statements, 5 of them failed.
#    SQL the application runs inside SQLite's own calls: a user function
#    (sqlite3_create_function) called for 3 rows, each call running a
#    SELECT on its own connection and an sqlite3_exec on another, and a
#    progress handler running a SELECT on the other connection and a
#    PQexec on PostgreSQL once: 8 statements of their own (they passed
#    through with the outer step's inner calls and were lost).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require cc jq curl pkg-config
ap_require_pg
ap_require_mariadb
ap_require_build

SC=$AP_TMP/sqlclients
my=$(cc -print-file-name=libmariadb.so.3)
[ -f "$my" ] || ap_fail "no libmariadb.so.3 found by cc -print-file-name ($my)"
# shellcheck disable=SC2046
cc -O2 -Wall -o "$SC" "$AP_SRCDIR/tests/servers/sqlclients.c" -I"$AP_SRCDIR/tests/servers" \
	$(pkg-config --cflags libpq sqlite3) $(pkg-config --libs libpq sqlite3) "$my" 2>"$AP_TMP/cc.log" ||
	ap_fail "cannot build sqlclients.c (see $AP_TMP/cc.log)"
SHIM=$AP_TMP/pq17shim.so
cc -O2 -Wall -shared -fPIC -o "$SHIM" "$AP_SRCDIR/tests/servers/pq17shim.c" -ldl 2>"$AP_TMP/cc.log" ||
	ap_fail "cannot build pq17shim.c (see $AP_TMP/cc.log)"

ap_start_collector
ap_start_pg pg sct
ap_start_mariadb my sct sct sct-pw
PGINFO="host=127.0.0.1 port=$AP_PG_PORT dbname=sct user=postgres connect_timeout=10"
MYARGS=(127.0.0.1 "$AP_MY_PORT" sct sct-pw sct)
pg_tables() { ap_psql sct -c "DROP TABLE IF EXISTS pl; CREATE TABLE pl (id int PRIMARY KEY, v int)" >/dev/null; }
my_tables() { ap_mariadb sct -e "DROP TABLE IF EXISTS ml; CREATE TABLE ml (id int PRIMARY KEY, v int)"; }

# Without the preload first: the program's own checks are right.
pg_tables
my_tables
"$SC" pq "$PGINFO" "$SHIM" >"$AP_TMP/plain.log" 2>&1 && "$SC" my "${MYARGS[@]}" >>"$AP_TMP/plain.log" 2>&1 &&
	"$SC" sq "$AP_TMP/busy.db" "$PGINFO" >>"$AP_TMP/plain.log" 2>&1 ||
	{ cat "$AP_TMP/plain.log"; ap_fail "sqlclients fails without the preload"; }
pg_tables
my_tables
for mode in pq my sq; do
	args=("$PGINFO" "$SHIM")
	[ "$mode" = my ] && args=("${MYARGS[@]}")
	[ "$mode" = sq ] && args=("$AP_TMP/busy.db" "$PGINFO")
	rc=0
	env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$AP_SERVICE" \
		"$SC" "$mode" "${args[@]}" >"$AP_TMP/$mode.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || { cat "$AP_TMP/$mode.log"; ap_fail "sqlclients $mode under the preload exited with $rc"; }
	ap_log "ok: sqlclients $mode returns the same under the preload"
done

# shape calls rows errors, for every shape of the service (52 statements: 2 INSERTs into bt, and CREATE TABLE bt, BEGIN EXCLUSIVE and COMMIT twice).
want='INSERT INTO pl (id, v) VALUES (?) 3 3 0
SELECT count(*) FROM pl 1 1 0
UPDATE pl SET v = v + ? WHERE id = $1 2 1 0
SELECT ?/? AS boom 1 0 1
SELECT ? AS skipped 1 0 1
SELECT ? AS left_a 1 1 0
SELECT ? AS drained_by_exec 1 1 0
SELECT ? AS left_b 1 1 0
SELECT ? AS after_b 1 1 0
SELECT ? AS before_close 1 1 0
SELECT ?/? AS after_close 1 0 1
SELECT ? AS left_c 1 1 0
INSERT INTO ml (id, v) VALUES (?) 1 1 0
UPDATE ml SET v = v + ? WHERE id = ? 1 1 0
SELECT v FROM ml WHERE id = ? 1 1 0
INSERT INTO ml (id, v) VALUES (?); SELECT v FROM ml WHERE id <= ?; INSERT INTO ml (id, v) VALUES (?) 1 3 1
UPDATE ml SET v = ? WHERE id = ?; SELECT v FROM ml WHERE id >= ? 1 3 0
SELECT ? AS stored UNION ALL SELECT ? UNION ALL SELECT ? 3 6 0
SELECT ? AS fetched UNION ALL SELECT ? 2 0 0
SELECT SLEEP(?) AS nb_one 1 - 0
SELECT SLEEP(?) AS nb_two 1 - 0
SELECT ? AS nb_between 1 0 0
CREATE TABLE st (x int); INSERT INTO st VALUES (?) 1 3 0
SELECT x FROM st 1 3 0
UPDATE st SET x = x + ? WHERE x = ? 3 3 0
DELETE FROM st WHERE x > ? 1 3 0
SELECT x FROM st WHERE x < ? 1 0 0
CREATE TABLE ut (x int); INSERT INTO ut VALUES (?) 1 3 0
SELECT lookup(x) AS looked FROM ut ORDER BY x 1 3 0
SELECT count(*) FROM ut WHERE x <= ? 3 3 0
SELECT ? AS in_udf_exec 3 0 0
SELECT count(*) AS counted FROM ut 1 0 0
SELECT ? AS in_progress 1 1 0
SELECT ? AS in_progress_pg 1 1 0
CREATE TABLE bt (x int) 1 0 0
BEGIN EXCLUSIVE 2 0 0
COMMIT 2 0 0
INSERT INTO bt VALUES (?) 2 1 1'
# The rows of the two interleaved non-blocking SELECTs are not compared:
# the first to complete stays open on the thread until its result is read,
# and the second's completion ends it first (rows unknown).
filter='[.queries[] | "\(.sql) \(.calls) \(if (.sql | test("nb_(one|two)")) then "-" else .rows end) \(.errors)"] | sort | join("\n")'
for i in $(seq 50); do
	json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
	[ "$(jq '[.queries[].calls] | add // 0' <<<"$json")" -ge 52 ] && break
	sleep 0.2
done
sleep 1.5
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/queries.json"
ap_assert_eq "every statement, once, with its rows and errors" "$(jq -r "$filter" <<<"$json")" \
	"$(sort <<<"$want")"
ap_assert_jq "the prepare of the pipeline is marked as one (rows unknown), its execution updated 1 row" \
	'[.queries[] | select(.sql | startswith("UPDATE pl"))][0] | .calls == 2 and .rows == 1' "$json"
ap_assert_jq "MySQL statements without a result set: timed to their answer, not through the 500 ms after" \
	'[.queries[] | select(.sql | test("^(INSERT INTO|UPDATE) ml[^;]*$"))] | length == 2 and all(.[]; .max_ms < 500)' "$json"
ap_assert_jq "a prepared SELECT read by mysql_stmt_fetch: timed to its first fetch, not through the 500 ms after" \
	'[.queries[] | select(.sql | test("AS fetched"))] | length == 1 and .[0].max_ms < 500' "$json"
ap_log "PASS"
