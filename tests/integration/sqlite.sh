#!/bin/bash
# SQL capture in a Python stdlib server (http.server, ThreadingHTTPServer)
# using the sqlite3 module (tests/servers/sqlite_server.py), which Python
# loads RTLD_LOCAL. The module prepares each distinct statement once per
# connection and re-runs the cached statement after sqlite3_reset: one
# execution per execute() (SPEC section 3), never one per prepare. Its own
# BEGIN and COMMIT around a write are statements. Asserts exact statement
# counts per route and per request, the N+1 of /books/, the failed prepare
# as "SQLite 1" in /api/v1/errors, the timing of a 150 ms statement, and that
# no literal reaches the collector's output or database; failed UTF-16
# prepares (sqlite3_prepare16*) are failed statements too, marked truncated
# when cut in their UTF-8 buffer.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_SQLITE_SERVER=$AP_SRCDIR/tests/servers/sqlite_server.py
ap_require curl jq python3 sqlite3
ap_require_pymods sqlite3
ap_require_build

printf 'n_plus_one_threshold = 3\n' >"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"
# Schema and data, without the preload.
/usr/bin/python3 "$AP_SQLITE_SERVER" --db "$AP_TMP/app.db" --seed >"$AP_TMP/seed.log" 2>&1 ||
	ap_fail "seeding the database failed: $(cat "$AP_TMP/seed.log")"
AP_PORT=$(ap_free_port)
ap_bg_preloaded server env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$AP_SQLITE_SERVER" \
	--db "$AP_TMP/app.db" --port "$AP_PORT"
AP_SERVER_PID=$AP_BG_PID
ap_wait_log server '^listening on'
B=http://127.0.0.1:$AP_PORT
ap_log "collector $AP_URL, sqlite_server on port $AP_PORT (pid $AP_SERVER_PID)"

# Connection A: one server thread, one sqlite3 connection: the statements
# of /books/ and /books/{id}/ are prepared by the first request and re-run
# from the module's cache by the next ones.
ap_curl_many "$AP_TMP/a.out" "$B/books/" "$B/books/" "$B/books/1/" "$B/books/" "$B/books/2/"
ap_assert_eq "connection A statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/a.out")" "200 200 200 200 200 "
ap_curl_many "$AP_TMP/b.out" "$B/books/" "$B/books/3/" "$B/books/"
ap_assert_eq "connection B statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/b.out")" "200 200 200 "
curl -s --max-time 10 -o "$AP_TMP/books.json" "$B/books/" || ap_fail "GET /books/ failed"
ap_assert_jq "GET /books/: the five seeded books" \
	'[.books[].id] == [1, 2, 3, 4, 5] and .books[0].title == "Secret Title 4242" and .books[0].author == "Writer 7777"' \
	"$(cat "$AP_TMP/books.json")"
curl -s --max-time 10 -w '%{http_code} ' -o /dev/null --data-urlencode "note=Note Secret 6502" "$B/notes" \
	--next -s --max-time 10 -w '%{http_code} ' -o /dev/null --data-urlencode "note=Note Secret 6503" "$B/notes" \
	>"$AP_TMP/notes.out" || ap_fail "POST /notes failed"
ap_assert_eq "POST /notes statuses" "$(cat "$AP_TMP/notes.out")" "201 201 "
ap_curl_many "$AP_TMP/c.out" "$B/fail" "$B/slow/" "$B/fail" "$B/nope"
ap_assert_eq "fail, slow, 404 statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/c.out")" "500 200 500 404 "

ap_expect_counts <<EOF
GET /books/ 6
GET /books/{id}/ 3
POST /notes 2
GET /fail 2
GET /slow/ 1
GET /nope 1
EOF

# Executions per request:
#   /books/       SELECT books; 5 x SELECT name FROM authors WHERE id = ?
#                 (one cached statement, reset and re-run)          6, an N+1
#   /books/{id}/  SELECT the book (its id inlined); SELECT its author 2
#   /notes        BEGIN (the module's, before a DML statement); INSERT;
#                 COMMIT (con.commit())                              3
#   /fail         SELECT from a missing table: the prepare fails     1 (failed)
#   /slow/        SELECT sleep_ms(150)                               1
#   /nope         nothing                                            0
ap_expect_sql <<EOF
GET /books/ 6 36 6
GET /books/{id}/ 3 6 0
POST /notes 2 6 0
GET /fail 2 2 0
GET /slow/ 1 1 0
GET /nope 1 0 0
EOF
ap_assert_eq "sql_count of each GET /books/ request" "$(ap_request_sql GET /books/)" "6 6 6 6 6 6"
ap_assert_eq "sql_count of each GET /books/{id}/ request" "$(ap_request_sql GET '/books/{id}/')" "2 2 2"
ap_assert_eq "sql_count of each POST /notes request" "$(ap_request_sql POST /notes)" "3 3"

# N+1
json=$(ap_api /api/v1/n-plus-one --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/n-plus-one.json"
ap_check_jq "/api/v1/n-plus-one: only GET /books/'s author lookup, max_repeats 5, occurrences 6" "$json" \
	'[.patterns[] | select(.service == $s)] | length == 1 and
	 (.[0] | .route == "/books/" and .method == "GET" and .max_repeats == 5 and .occurrences == 6 and
	  (.sql | test("^SELECT name FROM authors WHERE id = \\?$"; "i")))' --arg s "$AP_SERVICE"
reqs=$(ap_requests /books/)
ap_assert_jq "every GET /books/ request flagged N+1" 'length == 6 and all(.[]; .n_plus_one == true)' "$reqs"
detail=$(ap_request_detail "$(jq -r '.[0].id' <<<"$reqs")")
printf '%s\n' "$detail" >"$AP_TMP/books-detail.json"
ap_assert_jq "GET /books/ detail: 6 queries, rows 5 then 1 each; one N+1 finding, count 5" \
	'(.queries | length) == 6 and [.queries[].rows] == [5, 1, 1, 1, 1, 1] and
	 (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5' "$detail"
for r in '/books/{id}/' /fail /slow/; do
	ap_assert_jq "no $r request flagged N+1" 'length > 0 and all(.[]; .n_plus_one == false)' "$(ap_requests "$r")"
done
detail=$(ap_request_detail "$(ap_requests /notes POST | jq -r '.[0].id')")
ap_assert_jq "POST /notes detail: BEGIN, the INSERT (1 row), COMMIT" \
	'[.queries[].sql] as $s | ($s | length) == 3 and ($s[0] | test("^BEGIN"; "i")) and
	 ($s[1] | test("^INSERT INTO notes"; "i")) and ($s[2] | test("^COMMIT"; "i")) and .queries[1].rows == 1' "$detail"

# Errors: the failed prepare and the 500 it caused.
json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/errors.json"
ap_check_jq "/api/v1/errors: SQLite 1 (count 2, 'no such table') and HTTP 500 (count 2), on GET /fail only" "$json" \
	'[.errors[] | select(.service == $s)] | length == 2 and
	 all(.[]; .method == "GET" and .route == "/fail" and .count == 2) and
	 ([.[] | select(.type == "SQLite 1")] | length == 1 and (.[0].message | test("no such table"))) and
	 ([.[] | select(.type == "HTTP 500")] | length == 1)' --arg s "$AP_SERVICE"

# The slow statement.
detail=$(ap_request_detail "$(ap_requests /slow/ | jq -r '.[0].id')")
printf '%s\n' "$detail" >"$AP_TMP/slow-detail.json"
ap_assert_jq "GET /slow/ detail: SELECT sleep_ms(?) took >= 150 ms" \
	'(.queries | length) == 1 and (.queries[0].sql | test("^SELECT sleep_ms\\(\\?\\)$"; "i")) and
	 .queries[0].duration_ms >= 150 and .queries[0].duration_ms < 5000 and .sql_time_ms >= 150' "$detail"

# Shapes: one per distinct text, calls = executions.
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/queries.json"
ap_assert_jq "/api/v1/queries: author lookup 33 calls (6 x 5 + 3), book list 6, book by id 3 (literal replaced)" \
	'([.queries[] | select(.sql | test("^SELECT name FROM authors"; "i"))] | length == 1 and .[0].calls == 33) and
	 ([.queries[] | select(.sql | test("^SELECT id, title, author_id FROM books ORDER BY id$"; "i"))] | length == 1 and .[0].calls == 6) and
	 ([.queries[] | select(.sql | test("^SELECT id, title, author_id FROM books WHERE id = \\?$"; "i"))] | length == 1 and .[0].calls == 3)' "$json"
ap_assert_jq "/api/v1/queries: no literal in any shape" \
	'(.queries | length) >= 8 and all(.queries[]; .sql | test("[0-9'"'"']") | not)' "$json"

# A short-lived program's burst: five processes that each run 20,000
# statements as fast as they can and exit. The collector's queue holds only
# net.unix.max_dgram_qlen datagrams, so the exit flush waits for room
# (within its budget) rather than dropping at once. Nothing may be lost
# unseen: the statements received plus those the processes reported
# dropped are exactly those run, and the loss is small (before the exit
# flush waited, about 65% were lost, uncounted).
# /api/v1/status forgets an exited process 10 s after its last datagram,
# and five bursts under TSan on a loaded machine took longer than that
# ("of 0 made" once, every process forgotten): each process's count of
# what it made is read as soon as it has exited, and what they dropped
# from /metrics, whose apiprof_events_dropped_total keeps a forgotten
# process's drops for its service.
calls=0 made=0 dropped=0
for i in 1 2 3 4 5; do
	env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE=sqlburst \
		/usr/bin/python3 -c 'import sqlite3
c = sqlite3.connect(":memory:")
for i in range(20000):
    c.execute("SELECT 1").fetchall()' &
	pid=$!
	wait "$pid" || ap_fail "burst process $i failed"
	ev=0
	for j in $(seq 50); do
		ev=$(ap_api /api/v1/status | jq --argjson p "$pid" \
			'[.processes[] | select(.pid == $p and .service == "sqlburst") | .events] | add // 0')
		[ "$ev" -ge 20000 ] && break
		sleep 0.2
	done
	made=$(( made + ev ))
done
for i in $(seq 50); do
	calls=$(ap_api /api/v1/queries --data-urlencode service=sqlburst --data-urlencode limit=1000 |
		jq '[.queries[] | select(.sql | test("^SELECT \\?$")) | .calls] | add // 0')
	dropped=$(ap_api /metrics | awk '$1 == "apiprof_events_dropped_total{service=\"sqlburst\"}" {n = $2} END {print n + 0}')
	[ $(( calls + dropped )) -ge 100000 ] && break
	sleep 0.2
done
ap_log "burst: $calls statements received, $dropped reported dropped, of $made made"
ap_assert_eq "statements the five burst processes made" "$made" 100000
ap_assert_eq "burst statements received + reported dropped" "$(( calls + dropped ))" 100000
# The loss bound is a property of the delivery's speed: an ASan or TSan
# collector (scripts/test.sh's sanitizer stages) drains its socket 2-10
# times slower, so there only the exact accounting above is checked. A
# plain collector loses well under 1% on idle cores, but 2.8% was seen
# with the two cores shared by a load average of 8 (the exit flush's wait
# is bounded in time): the bound is 10%, which still tells a flush that
# waits from one that drops at once (about 65% lost).
# (ldd's output read whole first: piped to grep -q, ldd could die of
# SIGPIPE after the match, and with pipefail a sanitizer build passed
# for a plain one.)
if grep -Eq 'lib(asan|tsan)' <<<"$(ldd "$AP_COLLECTOR" 2>/dev/null)"; then
	ap_log "the collector is a sanitizer build: the 10% loss bound is not checked ($dropped dropped)"
elif [ "$dropped" -gt 10000 ]; then
	ap_fail "burst: $dropped of 100000 statements dropped (more than 10%)"
fi

# Modules dlopen()ed RTLD_DEEPBIND, as PHP loads its extensions
# (tests/servers/deepbind.c): their references bind to their own libsqlite3
# before the global scope, past our hooks, until the shipper patches their
# GOT slots (preload/gotpatch.c). One module loaded RTLD_LAZY (built -z lazy:
# its slots still lazy-binding stubs), one RTLD_NOW (-z now: slots bound,
# on read-only RELRO pages); each runs CREATE, INSERT and SELECT count(*)
# 300 ms after its dlopen: each statement captured exactly once.
# ASan and TSan refuse an RTLD_DEEPBIND dlopen outright (google/sanitizers
# issue 611): with either runtime in the process (the sanitizer stages'
# builds of tests/servers/deepbind, or TSan preloaded before us) this part
# cannot run; scripts/test.sh's main stage runs it.
runtimes="$(ldd "$AP_BUILDDIR/tests/servers/deepbind" 2>/dev/null) ${AP_PRELOAD_FIRST:-}"
if grep -Eq 'lib(asan|tsan)' <<<"$runtimes"; then
	ap_log "a sanitizer runtime refuses RTLD_DEEPBIND: the DEEPBIND modules are not tried in this build"
else
	for m in lazy now; do
		cc -shared -fPIC -O2 -DTABLE="\"${m}_t\"" -Wl,-z,$m -o "$AP_TMP/deepbind_$m.so" \
			"$AP_SRCDIR/tests/servers/deepbind_mod.c" -lsqlite3 2>"$AP_TMP/cc-$m.log" ||
			ap_fail "building deepbind_$m.so failed: $(cat "$AP_TMP/cc-$m.log")"
	done
	# deepbind_check SERVICE CALLS WHAT [ARGS...]: runs deepbind ARGS with
	# the two modules under the preload as SERVICE, then checks that each
	# module's CREATE, INSERT and SELECT count(*) arrived exactly once,
	# CALLS statements in all.
	deepbind_check() {
		local svc=$1 calls=$2 what=$3 i json
		shift 3
		env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$svc" \
			"$AP_BUILDDIR/tests/servers/deepbind" "$@" "$AP_TMP/deepbind_lazy.so" \
			"$AP_TMP/deepbind_now.so" >"$AP_TMP/$svc.log" 2>&1 ||
			ap_fail "deepbind $* failed: $(cat "$AP_TMP/$svc.log")"
		for i in $(seq 50); do
			json=$(ap_api /api/v1/queries --data-urlencode service="$svc")
			[ "$(jq '[.queries[] | .calls] | add // 0' <<<"$json")" -ge "$calls" ] && break
			sleep 0.2
		done
		printf '%s\n' "$json" >"$AP_TMP/$svc-queries.json"
		ap_check_jq "$what" "$json" \
			'.queries as $all | ([$all[].calls] | add) == '"$calls"' and
			 (["lazy_t", "now_t"] | all(.[]; . as $t |
			   ["^CREATE TABLE \($t) ", "^INSERT INTO \($t) ", "^SELECT count\\(\\*\\) FROM \($t)$"] |
			   all(.[]; . as $re | [$all[] | select(.sql | test($re; "i")) | .calls] == [1])))'
	}
	deepbind_check deepbind 7 "RTLD_DEEPBIND modules, lazy and now: CREATE, INSERT, SELECT of each once; with the program's SELECT 1, 7 calls"
	# deepbind -f, as php-fpm's master: the modules loaded, a fork at once,
	# the child runs them. No shipper thread has started in either process
	# before: only the fork handler's scan (preload/gotpatch.c) patched
	# them (without it: 0 of the 6).
	deepbind_check deepbind_fork 6 "RTLD_DEEPBIND modules run by a fork child at once: CREATE, INSERT, SELECT of each once" -f
fi

# The UTF-16 prepares (sqlite3_prepare16, _v2, _v3: Qt's SQLite driver uses
# them), called through the global scope as by a program linked with
# -lsqlite3, by a program serving no HTTP: each failed one is a failed
# statement, its text made UTF-8 (v2 given a byte count short of the
# buffer), and the schema load inside the first prepare (an sqlite3_exec
# the library makes itself) is no statement of the program's. Without the
# hooks: no failed statement, and one "SELECT*FROM "main".sqlite_master".
cat >"$AP_TMP/prepare16.py" <<'PY'
import ctypes, ctypes.util, sys
ctypes.CDLL(ctypes.util.find_library("sqlite3"), mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(None)  # the global scope: the preload's hooks first
P = ctypes.POINTER(ctypes.c_void_p)
lib.sqlite3_prepare16.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, P, ctypes.c_void_p]
lib.sqlite3_prepare16_v2.argtypes = lib.sqlite3_prepare16.argtypes
lib.sqlite3_prepare16_v3.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                                     P, ctypes.c_void_p]
lib.sqlite3_step.argtypes = lib.sqlite3_finalize.argtypes = [ctypes.c_void_p]
db, st = ctypes.c_void_p(), ctypes.c_void_p()
assert lib.sqlite3_open(b":memory:", ctypes.byref(db)) == 0
u16 = lambda s: s.encode("utf-16-le" if sys.byteorder == "little" else "utf-16-be")
bad = u16("SELECT body FROM missing_16 WHERE tag = 'Tag Secret 16' AND note = '\u00e9t\u00e9 \U0001F600'")
assert lib.sqlite3_prepare16(db, bad + b"\0\0", -1, ctypes.byref(st), None) == 1
assert lib.sqlite3_prepare16_v2(db, bad + u16(" OR x"), len(bad), ctypes.byref(st), None) == 1
assert lib.sqlite3_prepare16_v3(db, bad + b"\0\0", -1, 0, ctypes.byref(st), None) == 1
assert lib.sqlite3_prepare16_v2(db, u16("SELECT 16") + b"\0\0", -1, ctypes.byref(st), None) == 0
assert lib.sqlite3_step(st) == 100 and lib.sqlite3_step(st) == 101 and lib.sqlite3_finalize(st) == 0
PY
env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE=prepare16 \
	/usr/bin/python3 "$AP_TMP/prepare16.py" >"$AP_TMP/prepare16.log" 2>&1 ||
	ap_fail "prepare16.py failed: $(cat "$AP_TMP/prepare16.log")"
for i in $(seq 50); do
	json=$(ap_api /api/v1/queries --data-urlencode service=prepare16)
	[ "$(jq '[.queries[] | .calls] | add // 0' <<<"$json")" -ge 4 ] && break
	sleep 0.2
done
sleep 1
json=$(ap_api /api/v1/queries --data-urlencode service=prepare16)
printf '%s\n' "$json" >"$AP_TMP/prepare16-queries.json"
ap_check_jq "sqlite3_prepare16*: 3 failed prepares of one shape, the SELECT run once, nothing else" "$json" \
	'[.queries[] | {sql, calls, errors}] | sort_by(.sql) ==
	 [{"sql": "SELECT ?", "calls": 1, "errors": 0},
	  {"sql": "SELECT body FROM missing_16 WHERE tag = ? AND note = ?", "calls": 3, "errors": 3}]'
json=$(ap_api /api/v1/errors --data-urlencode service=prepare16)
ap_check_jq "sqlite3_prepare16*: one SQLite 1 group of 3, 'no such table', no request" "$json" \
	'[.errors[] | {type, count, message, route}] ==
	 [{"type": "SQLite 1", "count": 3, "message": "no such table: missing_16", "route": null}]'

# A failed UTF-16 prepare longer than its UTF-8 buffer (a little more
# than APIPROF_MAX_SQL_BYTES, here 64) inside a request: the text is cut
# in the middle of a long literal, which normalising shrinks below the
# limit, and is marked truncated rather than passed off as whole. Without
# the mark: "SELECT body FROM missing_16 WHERE tag = ?", truncated false.
cat >"$AP_TMP/prepare16long.py" <<'PY'
import ctypes, ctypes.util, socket, sys, threading
ctypes.CDLL(ctypes.util.find_library("sqlite3"), mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(None)
lib.sqlite3_prepare16_v2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                     ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
db, st = ctypes.c_void_p(), ctypes.c_void_p()
assert lib.sqlite3_open(b":memory:", ctypes.byref(db)) == 0
u16 = lambda s: s.encode("utf-16-le" if sys.byteorder == "little" else "utf-16-be")
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
got = []
def client():
    c = socket.create_connection(ls.getsockname())
    c.sendall(b"GET /p16long HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while True:
        b = c.recv(4096)
        if not b:
            break
        got.append(b)
t = threading.Thread(target=client)
t.start()
s, _ = ls.accept()
s.recv(4096)
bad = u16("SELECT body FROM missing_16 WHERE tag = '" + "x" * 300 + "' AND kind = 3")
assert lib.sqlite3_prepare16_v2(db, bad + b"\0\0", -1, ctypes.byref(st), None) == 1
s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
s.close()
t.join()
assert b"".join(got).endswith(b"ok")
PY
env LD_PRELOAD="$(ap_preload_env)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE=prepare16long \
	APIPROF_MAX_SQL_BYTES=64 /usr/bin/python3 "$AP_TMP/prepare16long.py" \
	>"$AP_TMP/prepare16long.log" 2>&1 ||
	ap_fail "prepare16long.py failed: $(cat "$AP_TMP/prepare16long.log")"
for i in $(seq 50); do
	json=$(ap_api /api/v1/requests --data-urlencode service=prepare16long)
	[ "$(jq '.requests | length' <<<"$json")" -ge 1 ] && break
	sleep 0.2
done
id=$(jq -r '.requests[0].id // empty' <<<"$json")
[ -n "$id" ] || ap_fail "prepare16long: no request: $json"
ap_check_jq "a failed sqlite3_prepare16_v2 cut in its UTF-8 buffer is marked truncated" \
	"$(ap_request_detail "$id")" \
	'[.queries[] | {sql, truncated, failed: (.error != null)}] ==
	 [{"sql": "SELECT body FROM missing_16 WHERE tag = ?", "truncated": true, "failed": true}]'

# (The author ids, 917253001..917253005, are bound parameters here: never in
# any statement's text, so not in the collector either.)
ap_assert_no_literals "Secret Title" "Writer 77" "Note Secret" "Tag Secret" 77310911 "sleep_ms(150" \
	917253001 917253002 917253003 917253004 917253005
ap_log "PASS"
