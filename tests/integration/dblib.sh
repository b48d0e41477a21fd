# tests/integration/dblib.sh - throwaway database servers for the SQL
# integration tests. Sourced after lib.sh (it uses $AP_TMP, ap_bg, ap_fail).
#
# Each server lives in a directory of the test's temp dir, listens on
# 127.0.0.1 at a free port and on a Unix socket in that directory, runs in
# the foreground as a child of the test (its pid is in AP_PIDS, so lib.sh's
# exit trap stops it, after every process started later: the servers that
# are its clients), and comes up in a few seconds. Its log is
# $AP_TMP/NAME.log, printed when the test fails.
#
# As root (CI), PostgreSQL runs as the `postgres` user and MariaDB as
# `mysql`, the users their Debian packages create; as another user, both
# run as that user.

AP_PG_BINDIR=${AP_PG_BINDIR:-/usr/lib/postgresql/15/bin}

# ap_require_pg : PostgreSQL 15's server programs (package postgresql-15) and
# psql. A failure as root, a skip otherwise (ap_require).
ap_require_pg() {
	ap_require "$AP_PG_BINDIR/initdb" "$AP_PG_BINDIR/postgres" "$AP_PG_BINDIR/pg_isready" psql
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || ap_fail "there is no 'postgres' user (package postgresql-15 creates it)"
	fi
}

# ap_require_mariadb : the MariaDB server and client (package mariadb-server).
ap_require_mariadb() {
	ap_require mariadb-install-db mariadbd mariadb
	if [ "$(id -u)" -eq 0 ]; then
		id mysql >/dev/null 2>&1 || ap_fail "there is no 'mysql' user (package mariadb-server creates it)"
	fi
}

# ap_as USER : sets the array AP_AS to the command prefix that runs a
# command as USER when we are root (setpriv execs, so a background server's
# pid stays its own), and to nothing otherwise.
ap_as() {
	AP_AS=()
	if [ "$(id -u)" -eq 0 ]; then
		AP_AS=(setpriv --reuid="$1" --regid="$1" --init-groups --reset-env --)
	fi
}

# ap_start_pg NAME DBNAME [POSTGRES-ARGS...] : PostgreSQL 15 in $AP_TMP/NAME
# (data in data/, its Unix socket in the directory itself), trust
# authentication, fsync off, the server's time zone UTC (POSTGRES-ARGS, such
# as `-c timezone=Etc/UTC`, come last and win); creates database DBNAME owned
# by the superuser `postgres`. Sets AP_PG_PORT, AP_PG_HOST (127.0.0.1),
# AP_PG_USER (postgres), AP_PG_SOCKDIR and AP_PG_PID, and exports nothing.
ap_start_pg() {
	local name=$1 db=$2 d=$AP_TMP/$1 i
	shift 2
	mkdir -p "$d"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$d"
	ap_as postgres
	"${AP_AS[@]}" env LC_ALL=C "$AP_PG_BINDIR/initdb" -D "$d/data" -U postgres -A trust \
		-E UTF8 --locale=C --no-sync --no-instructions >"$AP_TMP/$name-initdb.log" 2>&1 ||
		ap_fail "initdb failed: $(tail -n 20 "$AP_TMP/$name-initdb.log")"
	AP_PG_PORT=$(ap_free_port)
	AP_PG_HOST=127.0.0.1
	AP_PG_USER=postgres
	AP_PG_SOCKDIR=$d
	AP_PG_NAME=$name
	AP_PG_RUNS=0
	AP_PG_ARGS=("$@")
	ap_run_pg
	ap_psql postgres -c "CREATE DATABASE \"$db\"" >/dev/null
	ap_log "PostgreSQL 15 (pid $AP_PG_PID) on 127.0.0.1:$AP_PG_PORT, database $db"
}

# ap_run_pg : starts the server of the last ap_start_pg on its data directory
# and port (again, after ap_stop_pg) and waits until it accepts connections.
# Started with ap_bg (the test's, or the demo's stand-in), so it is stopped
# at exit; its log is $AP_TMP/NAME.log, then NAME-2.log after a restart.
ap_run_pg() {
	local d=$AP_TMP/$AP_PG_NAME log=$AP_PG_NAME i
	AP_PG_RUNS=$(( ${AP_PG_RUNS:-0} + 1 ))
	[ "$AP_PG_RUNS" -gt 1 ] && log=$AP_PG_NAME-$AP_PG_RUNS
	ap_as postgres
	ap_bg "$log" "${AP_AS[@]}" "$AP_PG_BINDIR/postgres" -D "$d/data" \
		-c listen_addresses=127.0.0.1 -c port="$AP_PG_PORT" -c unix_socket_directories="$d" \
		-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c timezone=UTC -c log_timezone=UTC -c max_connections=50 \
		-c shared_buffers=16MB -c logging_collector=off "${AP_PG_ARGS[@]}"
	AP_PG_PID=$AP_BG_PID
	for i in $(seq 600); do
		"$AP_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$AP_PG_PORT" -U postgres -d postgres && break
		kill -0 "$AP_PG_PID" 2>/dev/null || ap_fail "PostgreSQL exited at start"
		sleep 0.1
	done
	"$AP_PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$AP_PG_PORT" -U postgres -d postgres ||
		ap_fail "PostgreSQL did not accept connections within 60s"
}

# ap_stop_pg : a fast shutdown (SIGINT: clients are disconnected) of the
# server ap_run_pg started; returns once it has exited.
ap_stop_pg() {
	local i
	kill -INT "$AP_PG_PID" 2>/dev/null || true
	for i in $(seq 300); do
		kill -0 "$AP_PG_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AP_PG_PID" 2>/dev/null && ap_fail "PostgreSQL did not stop within 30s"
	wait "$AP_PG_PID" 2>/dev/null || true
}

# ap_psql DBNAME PSQL-ARGS... : psql as postgres over TCP, stopping at the
# first error; fails the test on one.
ap_psql() {
	local db=$1
	shift
	PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$AP_PG_PORT" -U postgres \
		-d "$db" "$@" || ap_fail "psql $* failed"
}

# ap_start_mariadb NAME DBNAME USER PASSWORD : MariaDB in $AP_TMP/NAME (data
# in data/, socket mysqld.sock), without any configuration file; creates
# database DBNAME and USER@127.0.0.1 / USER@localhost with PASSWORD and every
# privilege on DBNAME. root@localhost has no password (socket only). Sets
# AP_MY_PORT, AP_MY_HOST (127.0.0.1), AP_MY_SOCK and AP_MY_PID.
ap_start_mariadb() {
	local name=$1 db=$2 user=$3 pw=$4 d=$AP_TMP/$1 i as=()
	mkdir -p "$d"
	if [ "$(id -u)" -eq 0 ]; then
		chown mysql: "$d"
		as=(--user=mysql)
	fi
	mariadb-install-db --no-defaults "${as[@]}" --datadir="$d/data" \
		--auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
		>"$AP_TMP/$name-install.log" 2>&1 ||
		ap_fail "mariadb-install-db failed: $(grep -iE 'error|fatal|abort' "$AP_TMP/$name-install.log" | head -n 10)
$(tail -n 20 "$AP_TMP/$name-install.log")"
	AP_MY_PORT=$(ap_free_port)
	AP_MY_HOST=127.0.0.1
	AP_MY_SOCK=$d/mysqld.sock
	ap_bg "$name" mariadbd --no-defaults "${as[@]}" --datadir="$d/data" --socket="$AP_MY_SOCK" \
		--port="$AP_MY_PORT" --bind-address=127.0.0.1 --pid-file="$d/mysqld.pid" \
		--skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=16M \
		--innodb-log-file-size=8M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
		--skip-innodb-adaptive-hash-index --performance-schema=OFF --max-connections=50 \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --default-time-zone=+00:00
	AP_MY_PID=$AP_BG_PID
	for i in $(seq 600); do
		[ -S "$AP_MY_SOCK" ] && mariadb --no-defaults -S "$AP_MY_SOCK" -u root -e 'SELECT 1' \
			>/dev/null 2>&1 && break
		kill -0 "$AP_MY_PID" 2>/dev/null || ap_fail "mariadbd exited at start"
		sleep 0.1
	done
	ap_mariadb -e 'SELECT 1' >/dev/null
	ap_mariadb -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4;
		CREATE USER '$user'@'127.0.0.1' IDENTIFIED BY '$pw';
		CREATE USER '$user'@'localhost' IDENTIFIED BY '$pw';
		GRANT ALL ON \`$db\`.* TO '$user'@'127.0.0.1';
		GRANT ALL ON \`$db\`.* TO '$user'@'localhost';"
	ap_log "MariaDB (pid $AP_MY_PID) on 127.0.0.1:$AP_MY_PORT, database $db, user $user"
}

# ap_mariadb ARGS... : the mariadb client as root over the Unix socket; fails
# the test on an error.
ap_mariadb() {
	mariadb --no-defaults -S "$AP_MY_SOCK" -u root --connect-timeout=10 "$@" ||
		ap_fail "mariadb $* failed"
}

# ap_require_pymods MODULE... : Debian's /usr/bin/python3 imports each (a
# python3 earlier in PATH, such as pyenv's, is never used by these tests).
ap_require_pymods() {
	local m
	ap_require /usr/bin/python3
	for m in "$@"; do
		/usr/bin/python3 -c "import $m" >/dev/null 2>&1 && continue
		if [ "$(id -u)" -eq 0 ]; then
			ap_fail "/usr/bin/python3 cannot import $m (scripts/test.sh installs it)"
		fi
		ap_skip "/usr/bin/python3 cannot import $m (run scripts/test.sh as root to install it)"
	done
}

# ---- the Django application (tests/servers/djangoapp) -----------------------

AP_DJANGOAPP=$AP_SRCDIR/tests/servers/djangoapp

# ap_start_django NAME ENGINE PORT DBNAME USER PASSWORD : migrates and seeds
# the database WITHOUT the preload (manage.py migrate, manage.py seed: five
# authors and five books), then runs the app under gunicorn (2 sync workers)
# WITH the preload, on 127.0.0.1 at a free port; ENGINE is postgresql or
# mysql, the database on 127.0.0.1:PORT. Returns once both workers have
# loaded the app (wsgi.py prints a line per worker). Sets AP_PORT and
# AP_SERVER_PID (gunicorn's arbiter).
ap_start_django() {
	local name=$1 i
	local envs=(PYTHONDONTWRITEBYTECODE=1 APP_DB_ENGINE="$2" APP_DB_HOST=127.0.0.1
		APP_DB_PORT="$3" APP_DB_NAME="$4" APP_DB_USER="$5" APP_DB_PASSWORD="$6")
	env "${envs[@]}" /usr/bin/python3 "$AP_DJANGOAPP/manage.py" migrate --noinput -v 0 \
		>"$AP_TMP/$name-setup.log" 2>&1 || ap_fail "manage.py migrate failed: $(tail -n 30 "$AP_TMP/$name-setup.log")"
	env "${envs[@]}" /usr/bin/python3 "$AP_DJANGOAPP/manage.py" seed \
		>>"$AP_TMP/$name-setup.log" 2>&1 || ap_fail "manage.py seed failed: $(tail -n 30 "$AP_TMP/$name-setup.log")"
	AP_PORT=$(ap_free_port)
	ap_bg_preloaded "$name" env "${envs[@]}" /usr/bin/gunicorn --chdir "$AP_DJANGOAPP" \
		--workers 2 --worker-class sync --bind "127.0.0.1:$AP_PORT" --graceful-timeout 5 \
		wsgi:application
	AP_SERVER_PID=$AP_BG_PID
	for i in $(seq 600); do
		[ "$(grep -c '^djangoapp: worker [0-9]* ready' "$AP_TMP/$name.log")" -ge 2 ] && break
		kill -0 "$AP_SERVER_PID" 2>/dev/null || ap_fail "gunicorn exited at start"
		sleep 0.1
	done
	[ "$(grep -c '^djangoapp: worker [0-9]* ready' "$AP_TMP/$name.log")" = 2 ] ||
		ap_fail "gunicorn's two workers did not load the app within 60s"
	ap_wait_port "$AP_PORT"
	ap_log "gunicorn (arbiter $AP_SERVER_PID, workers $(ap_children "$AP_SERVER_PID" | tr '\n' ' ')) on port $AP_PORT"
}

# ---- SQL assertions -----------------------------------------------------------

# ap_expect_sql : reads lines "METHOD ROUTE REQUESTS SQL_COUNT N_PLUS_ONE_COUNT"
# and asserts those fields of this service's /api/v1/endpoints rows exactly
# (call it after ap_expect_counts, which waits until every request arrived).
# Prints every row's fields on a mismatch.
ap_expect_sql() {
	local json method route n sql np got ok=1
	json=$(ap_api /api/v1/endpoints)
	while read -r method route n sql np; do
		[ -n "$method" ] || continue
		got=$(jq -r --arg s "$AP_SERVICE" --arg m "$method" --arg r "$route" \
			'[.endpoints[] | select(.service == $s and .method == $m and .route == $r)][0] |
			 "\(.count) \(.sql_count) \(.n_plus_one_count)"' <<<"$json")
		if [ "$got" != "$n $sql $np" ]; then
			printf '%s: %s %s: count, sql_count, n_plus_one_count = %s, expected %s\n' \
				"$AP_NAME" "$method" "$route" "$got" "$n $sql $np" >&2
			ok=0
		else
			ap_log "ok: $method $route: $n requests, $sql statements, $np with an N+1"
		fi
	done
	if [ "$ok" != 1 ]; then
		jq -c --arg s "$AP_SERVICE" '.endpoints[] | select(.service == $s) |
			{method, route, count, sql_count, sql_per_request, sql_time_ms, n_plus_one_count}' <<<"$json" >&2
		ap_fail "statement counts differ from what the traffic ran"
	fi
}

# ap_check_jq WHAT JSON FILTER [JQ-ARGS...] : like ap_assert_jq, with jq
# arguments (--arg, --argjson) for the filter.
ap_check_jq() {
	local what=$1 json=$2 filter=$3 r
	shift 3
	r=$(jq -e "$@" "$filter" <<<"$json" 2>&1) && [ -n "$r" ] || { # empty: see ap_assert_jq
		printf '%s: %s: jq %s gave %s on:\n%s\n' "$AP_NAME" "$what" "$filter" "$r" \
			"$(jq -c . <<<"$json" | head -c 4000)" >&2
		ap_fail "$what"
	}
	ap_log "ok: $what"
}

# ap_request_sql METHOD ROUTE : the sql_count of each stored request of the
# route, ascending, on one line ("2 2 2").
ap_request_sql() {
	ap_requests "$2" "$1" | jq -r '[.[].sql_count] | sort | map(tostring) | join(" ")'
}

# ap_request_detail ID : GET /api/v1/requests/ID.
ap_request_detail() {
	ap_api "/api/v1/requests/$1"
}

# ap_assert_no_literals LITERAL... : none of the literals (case-insensitive)
# appears anywhere in what the collector serves (every JSON list, the detail
# of every stored request of this service, /metrics, the dashboard) or in its
# SQLite database: the .dump of it, and the raw bytes of the database, WAL
# and shared-memory files (freed pages included). Stops the collector first
# for the files (SIGTERM: it writes everything it received before exiting).
ap_assert_no_literals() {
	local out=$AP_TMP/collector-output lit id p bad=0
	mkdir -p "$out"
	for p in endpoints "requests?limit=1000" queries n-plus-one errors summaries regressions \
		timeseries status "profile?format=collapsed" "profile?format=speedscope"; do
		curl -s --max-time 10 "$AP_URL/api/v1/$p" >"$out/$(tr -c 'a-z0-9\n' _ <<<"$p")" 2>/dev/null
	done
	for p in endpoints "requests?limit=1000" queries n-plus-one errors; do
		jq -e -s 'length == 1' "$out/$(tr -c 'a-z0-9\n' _ <<<"$p")" >/dev/null 2>&1 ||
			ap_fail "GET /api/v1/$p did not return JSON"
	done
	curl -s --max-time 10 "$AP_URL/metrics" >"$out/metrics" 2>/dev/null
	curl -s --max-time 10 "$AP_URL/" >"$out/dashboard.html" 2>/dev/null
	for id in $(jq -r --arg s "$AP_SERVICE" '.requests[] | select(.service == $s) | .id' \
		"$out/requests_limit_1000"); do
		curl -sf --max-time 10 "$AP_URL/api/v1/requests/$id" >"$out/request-$id.json" ||
			ap_fail "GET /api/v1/requests/$id failed"
	done
	ap_log "collector output: $(cat "$out"/* | wc -c) bytes in $(ls "$out" | wc -l) documents"
	ap_stop_pid "$AP_COLLECTOR_PID"
	[ -s "$AP_TMP/apiprof.db" ] || ap_fail "the collector's database $AP_TMP/apiprof.db is missing or empty"
	sqlite3 "$AP_TMP/apiprof.db" .dump >"$AP_TMP/apiprof.dump" 2>"$AP_TMP/sqlite3-dump.log" ||
		ap_fail "sqlite3 .dump of the collector's database failed: $(cat "$AP_TMP/sqlite3-dump.log")"
	# The checks below mean something only if the data is there.
	grep -qF -- "\"$AP_SERVICE\"" "$out/requests_limit_1000" ||
		ap_fail "no request of service $AP_SERVICE in /api/v1/requests"
	grep -qF -- "$AP_SERVICE" "$AP_TMP/apiprof.dump" ||
		ap_fail "no row of service $AP_SERVICE in the collector's database"
	for lit in "$@"; do
		if grep -rliF -- "$lit" "$out" >"$AP_TMP/leak.txt"; then
			printf '%s: literal "%s" in the collector output: %s\n' "$AP_NAME" "$lit" \
				"$(tr '\n' ' ' <"$AP_TMP/leak.txt")" >&2
			grep -rhoiF -- "$lit" "$out" | head -n 3 >&2
			grep -rhiF -- "$lit" "$out" | head -c 600 >&2
			echo >&2
			bad=1
		fi
		if grep -qiF -- "$lit" "$AP_TMP/apiprof.dump"; then
			printf '%s: literal "%s" in the collector database (.dump):\n' "$AP_NAME" "$lit" >&2
			grep -iF -- "$lit" "$AP_TMP/apiprof.dump" | head -n 3 | cut -c 1-400 >&2
			bad=1
		fi
		for p in "$AP_TMP"/apiprof.db "$AP_TMP"/apiprof.db-wal "$AP_TMP"/apiprof.db-shm; do
			[ -e "$p" ] || continue
			if grep -qaiF -- "$lit" "$p"; then
				printf '%s: literal "%s" in the bytes of %s\n' "$AP_NAME" "$lit" "${p#"$AP_TMP"/}" >&2
				bad=1
			fi
		done
	done
	[ "$bad" = 0 ] || ap_fail "literals from the traffic reached the collector"
	ap_log "ok: none of $# literals in the collector's output or database"
}

# ---- the Django tests' common traffic and checks ------------------------------

# The literals the Django tests' traffic and seed data put into SQL text or
# results; none may reach the collector (ap_assert_no_literals).
AP_DJANGO_LITERALS=("Secret Title" "Writer 77" "Posted Title" 917253001 917253002 917253003
	917253004 917253005 86753091 86753092)

# ap_django_traffic : the Django tests' traffic against 127.0.0.1:$AP_PORT,
# each request on its own connection (gunicorn's sync workers close after
# every response), every status checked:
#   GET /books/ x5, GET /books/1/ /books/2/ /books/3/, POST /books/new x2,
#   GET /boom/ x2, GET /slow/ x1
ap_django_traffic() {
	local b=http://127.0.0.1:$AP_PORT i st
	for i in 1 2 3 4 5; do
		curl -s --max-time 20 -o "$AP_TMP/books.json" -w '%{http_code}' "$b/books/" >"$AP_TMP/st" ||
			ap_fail "GET /books/ failed"
		ap_assert_eq "GET /books/ ($i) status" "$(cat "$AP_TMP/st")" 200
	done
	ap_assert_jq "GET /books/: the five seeded books, ids 1..5" \
		'[.books[].id] == [1, 2, 3, 4, 5] and .books[0].title == "Secret Title 4242" and .books[0].author == "Writer 7777"' \
		"$(cat "$AP_TMP/books.json")"
	for i in 1 2 3; do
		st=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$b/books/$i/") || ap_fail "GET /books/$i/ failed"
		ap_assert_eq "GET /books/$i/ status" "$st" 200
	done
	for i in 0 1; do
		st=$(curl -s --max-time 20 -o "$AP_TMP/new.json" -w '%{http_code}' \
			--data-urlencode "title=Posted Title 515$i" --data-urlencode "author=91725300$((3 + i))" \
			--data-urlencode "pages=8675309$((1 + i))" "$b/books/new") || ap_fail "POST /books/new failed"
		ap_assert_eq "POST /books/new ($i) status" "$st" 201
	done
	for i in 1 2; do
		st=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$b/boom/") || ap_fail "GET /boom/ failed"
		ap_assert_eq "GET /boom/ ($i) status" "$st" 500
	done
	st=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "$b/slow/") || ap_fail "GET /slow/ failed"
	ap_assert_eq "GET /slow/ status" "$st" 200
	ap_expect_counts <<EOT
GET /books/ 5
GET /books/{id}/ 3
POST /books/new 2
GET /boom/ 2
GET /slow/ 1
EOT
}

# ap_django_checks SESSION SLEEP_SQL_REGEX : what both Django tests assert
# beyond the statement counts, SESSION being the number of statements each
# request's new database connection runs before the view's own:
#  - the N+1 of /books/: flagged on every /books/ request and nowhere else;
#    one pattern in /api/v1/n-plus-one, max_repeats 5 (one author query per
#    book), occurrences 5; a /books/ request's detail lists its statements
#    and that finding
#  - /api/v1/errors: exactly one row for this service, HTTP 500 on GET /boom/,
#    count 2
#  - /slow/: a statement matching SLEEP_SQL_REGEX lasting >= 200 ms in the
#    request's detail; its shape in /api/v1/queries is slow
#  - /api/v1/queries: the shapes of this service carry ? for every literal
#    (no quoted string, no digit), the author lookup's shape has the calls of
#    every author query sent (5 x 5 from /books/, 3 from /books/{id}/)
#  - no literal of the traffic or seed data anywhere in the collector's
#    output or database (ap_assert_no_literals; stops the collector)
ap_django_checks() {
	local session=$1 sleep_re=$2 reqs id ids detail json r
	# N+1
	json=$(ap_api /api/v1/n-plus-one --data-urlencode "service=$AP_SERVICE")
	printf '%s\n' "$json" >"$AP_TMP/n-plus-one.json"
	ap_check_jq "one N+1 pattern: GET /books/, the author lookup, max_repeats 5, occurrences 5" "$json" \
		'[.patterns[] | select(.service == $s)] | length == 1 and
		 (.[0] | .method == "GET" and .route == "/books/" and .max_repeats == 5 and .occurrences == 5 and
		  (.sql | test("books_author")) and (.sql | test("\\?")) and (.sql | test("[0-9]") | not) and
		  (.fingerprint | tostring | length > 0))' --arg s "$AP_SERVICE"
	reqs=$(ap_requests /books/)
	ap_assert_jq "every GET /books/ request: n_plus_one true, sql_count $((session + 6))" \
		"length == 5 and all(.[]; .n_plus_one == true and .sql_count == $((session + 6)))" "$reqs"
	ids=$(jq -c '[.[].id]' <<<"$reqs")
	ap_check_jq "the N+1 pattern's example request is a GET /books/ request" "$json" \
		'[.patterns[] | select(.service == $s)][0].example_request_id as $e | $ids | index($e) != null' \
		--arg s "$AP_SERVICE" --argjson ids "$ids"
	id=$(jq -r '.[0].id' <<<"$reqs")
	detail=$(ap_request_detail "$id")
	printf '%s\n' "$detail" >"$AP_TMP/books-detail.json"
	ap_assert_jq "GET /books/ detail: $((session + 6)) queries, the last 5 of one shape; one N+1 finding, count 5" \
		'(.queries | length) == '"$((session + 6))"' and
		 ([.queries[-5:][].fingerprint] | unique | length) == 1 and
		 (.n_plus_one | length) == 1 and .n_plus_one[0].count == 5 and
		 .n_plus_one[0].fingerprint == .queries[-1].fingerprint and
		 all(.queries[]; .error == null and .duration_ms >= 0 and (.sql | length) > 0)' "$detail"
	for r in '/books/{id}/' /boom/ /slow/; do
		reqs=$(ap_requests "$r")
		ap_assert_jq "no $r request flagged N+1" 'length > 0 and all(.[]; .n_plus_one == false)' "$reqs"
	done
	ap_assert_jq "POST /books/new requests not flagged N+1" 'length == 2 and all(.[]; .n_plus_one == false)' \
		"$(ap_requests /books/new POST)"
	# errors
	json=$(ap_api /api/v1/errors --data-urlencode "service=$AP_SERVICE")
	printf '%s\n' "$json" >"$AP_TMP/errors.json"
	ids=$(ap_requests /boom/ | jq -c '[.[].id]')
	ap_check_jq "/api/v1/errors: only HTTP 500 on GET /boom/, count 2" "$json" \
		'[.errors[] | select(.service == $s)] | length == 1 and
		 (.[0] | .type == "HTTP 500" and .method == "GET" and .route == "/boom/" and .count == 2 and
		  (.example_request_id as $e | $ids | index($e)) != null)' \
		--arg s "$AP_SERVICE" --argjson ids "$ids"
	# the slow statement
	reqs=$(ap_requests /slow/)
	detail=$(ap_request_detail "$(jq -r '.[0].id' <<<"$reqs")")
	printf '%s\n' "$detail" >"$AP_TMP/slow-detail.json"
	ap_check_jq "GET /slow/ detail: the sleep statement took >= 200 ms; sql_time_ms >= 200" "$detail" \
		'.sql_time_ms >= 200 and
		 ([.queries[] | select(.sql | test($re; "i"))] | length == 1 and .[0].duration_ms >= 200 and
		  .[0].duration_ms < 5000)' --arg re "$sleep_re"
	# statement shapes
	json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
	printf '%s\n' "$json" >"$AP_TMP/queries.json"
	ap_assert_jq "/api/v1/queries: every shape with ? for its literals (no quote, no digit)" \
		'(.queries | length) >= 5 and all(.queries[]; (.sql | test("[0-9'"'"']") | not))' "$json"
	ap_assert_jq "/api/v1/queries: the author lookup, 28 calls (5 x 5 + 3)" \
		'[.queries[] | select((.sql | test("books_author")) and (.sql | test("^select"; "i")))] |
		 length == 1 and .[0].calls == 28' "$json"
	ap_assert_jq "/api/v1/queries: the INSERT, 2 calls" \
		'[.queries[] | select(.sql | test("^insert into .?books_book"; "i"))] | length == 1 and .[0].calls == 2' "$json"
	ap_check_jq "/api/v1/queries: the sleep is slow: 1 call, slow_count 1, max_ms >= 200" "$json" \
		'[.queries[] | select(.sql | test($re; "i"))] |
		 length == 1 and .[0].calls == 1 and .[0].slow_count == 1 and .[0].max_ms >= 200' --arg re "$sleep_re"
	ap_assert_no_literals "${AP_DJANGO_LITERALS[@]}"
}
