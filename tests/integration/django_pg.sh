#!/bin/bash
# SQL capture in gunicorn (2 sync workers) + Django + psycopg2 + PostgreSQL 15:
# the Django app of tests/servers/djangoapp against a throwaway PostgreSQL
# started here. psycopg2 is loaded RTLD_LOCAL by Python and calls only
# PQexec, with its parameters interpolated into the text. Asserts the exact
# statements of every route, the N+1 of /books/, the 500s of /boom/ in
# /api/v1/errors, the timing of /slow/'s 200 ms sleep, statement shapes with
# ? for literals, and that no literal of the traffic or seed data reaches the
# collector's output or database.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require curl jq python3 sqlite3 /usr/bin/gunicorn
ap_require_pymods django psycopg2
ap_require_pg
ap_require_build

printf 'n_plus_one_threshold = 3\n' >"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"
# The server's time zone is Etc/UTC, as Debian's initdb sets it on a machine
# in UTC: Django (USE_TZ, connection time zone 'UTC') then sets its own on
# every new connection, as it does on a typical install. The session
# statement is part of what each request runs.
ap_start_pg pg books -c timezone=Etc/UTC
ap_start_django app postgresql "$AP_PG_PORT" books postgres ""
ap_log "collector $AP_URL, gunicorn on port $AP_PORT"

ap_django_traffic

# Statements per request, as measured once by hand (PostgreSQL's
# log_statement = all agrees) and understood one by one. CONN_MAX_AGE = 0:
# each request opens a new connection in its first query and closes it at
# the end. psycopg2's connect runs no statement here (the server's encoding
# and DateStyle are already what it wants; autocommit is a client-side
# flag); Django's connection setup runs one:
#   SET TIME ZONE 'UTC'                           (server time zone Etc/UTC)
# then the view's own:
#   GET  /books/       SELECT books; 5 x SELECT author WHERE id = n   1 + 6 = 7
#   GET  /books/{id}/  SELECT book WHERE id = n; SELECT its author    1 + 2 = 3
#   POST /books/new    INSERT ... RETURNING id (no transaction:
#                      autocommit, a model without parents)           1 + 1 = 2
#   GET  /boom/        SELECT COUNT(*), then the view raises          1 + 1 = 2
#   GET  /slow/        SELECT pg_sleep(0.2)                           1 + 1 = 2
# The migration, the seed and each worker's start (wsgi.py) ran outside any
# request and count for no route.
ap_expect_sql <<EOF
GET /books/ 5 35 5
GET /books/{id}/ 3 9 0
POST /books/new 2 4 0
GET /boom/ 2 4 0
GET /slow/ 1 2 0
EOF
ap_assert_eq "sql_count of each GET /books/ request" "$(ap_request_sql GET /books/)" "7 7 7 7 7"
ap_assert_eq "sql_count of each GET /books/{id}/ request" "$(ap_request_sql GET '/books/{id}/')" "3 3 3"
ap_assert_eq "sql_count of each POST /books/new request" "$(ap_request_sql POST /books/new)" "2 2"
ap_assert_eq "sql_count of each GET /boom/ request" "$(ap_request_sql GET /boom/)" "2 2"
ap_assert_eq "sql_count of the GET /slow/ request" "$(ap_request_sql GET /slow/)" "2"

detail=$(ap_request_detail "$(ap_requests /books/ | jq -r '.[0].id')")
ap_assert_jq "a GET /books/ request's first statement is SET TIME ZONE, with its value replaced" \
	'.queries[0].sql | test("^SET TIME ZONE \\?$"; "i")' "$detail"

ap_django_checks 1 'pg_sleep'
ap_log "PASS"
