#!/bin/bash
# SQL capture in gunicorn (2 sync workers) + Django + mysqlclient (MySQLdb,
# on libmariadb) + MariaDB: the Django app of tests/servers/djangoapp against
# a throwaway MariaDB started here. mysqlclient is loaded RTLD_LOCAL by
# Python, interpolates parameters into the text and calls mysql_real_query
# then mysql_store_result; libmariadb's mysql_autocommit calls
# mysql_real_query itself (through its PLT). Asserts the exact statements of
# every route, the N+1 of /books/, the 500s of /boom/ in /api/v1/errors, the
# timing of /slow/'s 200 ms sleep, statement shapes with ? for literals, and
# that no literal of the traffic or seed data reaches the collector's output
# or database.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require curl jq python3 sqlite3 /usr/bin/gunicorn
ap_require_pymods django MySQLdb
ap_require_mariadb
ap_require_build

printf 'n_plus_one_threshold = 3\n' >"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"
ap_start_mariadb my books app 'app-pw-1'
ap_start_django app mysql "$AP_MY_PORT" books app 'app-pw-1'
ap_log "collector $AP_URL, gunicorn on port $AP_PORT"

ap_django_traffic

# Statements per request, as measured once by hand (MariaDB's general log
# agrees) and understood one by one. CONN_MAX_AGE = 0: each request opens a
# new connection in its first query and closes it at the end. Opening one
# runs three session statements:
#   SET autocommit=0     mysqlclient's Connection() (autocommit=False by
#                        default), through libmariadb's mysql_autocommit
#   SET autocommit=1     Django turning autocommit on, the same way
#   SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED
#                        Django's connection setup (its default isolation)
# (SELECT VERSION(), @@sql_mode, ... runs once per worker, on the first
# connection, which wsgi.py opens at load, outside any request; with
# SQL_AUTO_IS_NULL off, Django sets nothing else.) Then the view's own:
#   GET  /books/       SELECT books; 5 x SELECT author WHERE id = n   3 + 6 = 9
#   GET  /books/{id}/  SELECT book WHERE id = n; SELECT its author    3 + 2 = 5
#   POST /books/new    INSERT ... RETURNING id (MariaDB >= 10.5; no
#                      transaction: autocommit, a model without parents) 3 + 1 = 4
#   GET  /boom/        SELECT COUNT(*), then the view raises          3 + 1 = 4
#   GET  /slow/        SELECT SLEEP(0.2)                              3 + 1 = 4
# The migration and the seed ran without the preload, each worker's start
# outside any request: they count for no route.
ap_expect_sql <<EOF
GET /books/ 5 45 5
GET /books/{id}/ 3 15 0
POST /books/new 2 8 0
GET /boom/ 2 8 0
GET /slow/ 1 4 0
EOF
ap_assert_eq "sql_count of each GET /books/ request" "$(ap_request_sql GET /books/)" "9 9 9 9 9"
ap_assert_eq "sql_count of each GET /books/{id}/ request" "$(ap_request_sql GET '/books/{id}/')" "5 5 5"
ap_assert_eq "sql_count of each POST /books/new request" "$(ap_request_sql POST /books/new)" "4 4"
ap_assert_eq "sql_count of each GET /boom/ request" "$(ap_request_sql GET /boom/)" "4 4"
ap_assert_eq "sql_count of the GET /slow/ request" "$(ap_request_sql GET /slow/)" "4"

detail=$(ap_request_detail "$(ap_requests /books/ | jq -r '.[0].id')")
ap_assert_jq "a GET /books/ request starts with SET autocommit twice (values replaced), then the isolation level" \
	'[.queries[0:3][].sql] as $s | ($s[0] | test("^SET autocommit ?= ?\\?$"; "i")) and $s[1] == $s[0] and
	 ($s[2] | test("^SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED$"; "i")) and
	 .queries[0].fingerprint == .queries[1].fingerprint' "$detail"

ap_django_checks 3 'sleep\('
ap_log "PASS"
