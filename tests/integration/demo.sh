#!/bin/bash
# scripts/demo.sh --once, on the build under test: it must exit 0 after
# printing the endpoint table with non-zero counts for the routes it drove on
# nginx and on the Django app (its throwaway PostgreSQL behind), the N+1 of
# the Django app's GET /books/ (in the table and in the N+1 patterns), the
# Django app's statement shapes with ? for literals and the URLs to explore,
# and leave no process (PostgreSQL included) or temp dir behind.
#
# The demo starts PostgreSQL and gunicorn and drives a few hundred requests:
# more time than the default watchdog allows a test that shares the machine.
AP_TIMEOUT=${AP_TIMEOUT:-400}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

ap_require curl jq nginx python3 /usr/bin/gunicorn
ap_require_pymods django psycopg2
ap_require_pg
ap_require_build "$AP_CLI"

demo=$AP_SRCDIR/scripts/demo.sh
[ -x "$demo" ] || ap_fail "$demo is missing or not executable"

export TMPDIR=$AP_TMP   # the demo's temp dir goes inside ours: we can check it is removed
"$demo" --once --build-dir "$AP_BUILDDIR" >"$AP_TMP/demo.log" 2>&1
rc=$?
cat "$AP_TMP/demo.log"
ap_assert_eq "demo.sh --once exit code" "$rc" 0

# The table: a header, then rows "SERVICE METHOD ROUTE COUNT ... SQL/REQ N+1".
grep -Eq '^SERVICE +METHOD +ROUTE +COUNT .* SQL/REQ +N\+1$' "$AP_TMP/demo.log" ||
	ap_fail "no endpoint table header (with SQL/REQ and N+1) in the demo's output"
# row_field SERVICE METHOD ROUTE FIELD : a field of the table's row ($NF: N+1).
row_field() {
	awk -v s="$1" -v m="$2" -v r="$3" -v f="$4" \
		'$1 == s && $2 == m && $3 == r { print (f == "last" ? $NF : f == "sql" ? $(NF - 1) : $f) }' \
		"$AP_TMP/demo.log" | tail -n 1
}
# positive WHAT VALUE : VALUE is a number above 0.
positive() {
	awk -v v="$2" 'BEGIN { exit !(v ~ /^[0-9.]+$/ && v + 0 > 0) }' || ap_fail "$1: got '$2', expected a number above 0"
	ap_log "ok: $1 $2"
}
for route in '/api/users/{id}' /api/items /static/logo.png /api/fail /nowhere; do
	positive "demo table: demo-nginx GET $route count" "$(row_field demo-nginx GET "$route" 4)"
done
for r in 'GET /books/' 'GET /books/{id}/' 'POST /books/new' 'GET /boom/' 'GET /slow/'; do
	read -r method route <<<"$r"
	positive "demo table: demo-django $r count" "$(row_field demo-django "$method" "$route" 4)"
	positive "demo table: demo-django $r statements per request" "$(row_field demo-django "$method" "$route" sql)"
done
# The N+1 column: every GET /books/ request, no other route.
books=$(row_field demo-django GET /books/ 4)
ap_assert_eq "demo table: demo-django GET /books/ requests with an N+1" "$(row_field demo-django GET /books/ last)" "$books"
ap_assert_eq "demo table: demo-django GET /books/{id}/ requests with an N+1" \
	"$(row_field demo-django GET '/books/{id}/' last)" 0

# The N+1 patterns: the Django app's GET /books/, the author lookup run once
# per book (five seeded, more inserted by the POSTs), with ? for the id.
sect() {
	awk -v h="$1" 'index($0, h) == 1 { on = 1; next } on && /^$/ { exit } on' "$AP_TMP/demo.log"
}
n1=$(sect 'N+1 queries')
printf '%s\n' "$n1" | grep -Eq '^  demo-django  GET /books/: up to [0-9]+ times in one request, in [0-9]+ requests$' ||
	ap_fail "the demo did not print the N+1 of demo-django GET /books/"
max=$(printf '%s\n' "$n1" | sed -n 's|^  demo-django  GET /books/: up to \([0-9]*\) times.*|\1|p')
[ "$max" -ge 5 ] || ap_fail "N+1 of GET /books/: up to $max times, expected 5 or more (one per seeded book)"
seen=$(printf '%s\n' "$n1" | sed -n 's|^  demo-django  GET /books/: .*, in \([0-9]*\) requests$|\1|p')
ap_assert_eq "N+1 of GET /books/: requests" "$seen" "$books"
printf '%s\n' "$n1" | grep -Eq '^    SELECT .*FROM "books_author" WHERE "books_author"\."id" = \? LIMIT \?$' ||
	ap_fail "the N+1 pattern does not show the author lookup with ? for its literals"
printf '%s\n' "$n1" | grep -Eq '^    example: http://127\.0\.0\.1:[0-9]+/api/v1/requests/[0-9]+$' ||
	ap_fail "the N+1 pattern has no example request URL"
ap_log "ok: N+1 pattern: demo-django GET /books/, the author lookup, up to $max times, in $seen requests"

# The statement shapes of the Django app: a header, then rows
# "CALLS TOTAL MEAN P95 ROWS SQL", literals replaced by ?.
q=$(sect 'Top SQL statement shapes of demo-django')
printf '%s\n' "$q" | grep -Eq '^ +CALLS +TOTAL +MEAN +P95 +ROWS +SQL$' || ap_fail "no statement shape table header"
for re in '^SELECT .*FROM "books_author" WHERE "books_author"\."id" = \? LIMIT \?$' \
	'^INSERT INTO "books_book" ' '^SELECT pg_sleep\(\?\)$'; do
	calls=$(printf '%s\n' "$q" | RE=$re awk '{ c = $1; sub(/^ *([^ ]+ +){5}/, "") } $0 ~ ENVIRON["RE"] { print c }')
	positive "statement shape /$re/ calls" "$calls"
done
if printf '%s\n' "$q" | sed 's/^ *\([^ ]* *\)\{5\}//' | tail -n +2 | grep -Eq "'|[0-9]"; then
	ap_fail "a statement shape shows a literal: $q"
fi

for p in endpoints n-plus-one queries errors; do
	grep -q "http://127.0.0.1:[0-9]*/api/v1/$p\$" "$AP_TMP/demo.log" || ap_fail "the demo did not print the URL of /api/v1/$p"
done
grep -Eq '^  metrics +http://127\.0\.0\.1:[0-9]+/metrics$' "$AP_TMP/demo.log" ||
	ap_fail "the demo did not print the URL of /metrics"
grep -Eq '^  dashboard +http://127\.0\.0\.1:[0-9]+/ ' "$AP_TMP/demo.log" ||
	ap_fail "the demo did not print the URL of the dashboard"

# Nothing left behind: no temp dir, and no process started from it.
left=$(find "$AP_TMP" -mindepth 1 -maxdepth 1 -name 'apiprof-demo.*' | head -n 1)
[ -z "$left" ] || ap_fail "demo left its temp dir behind: $left"
for p in /proc/[0-9]*; do
	cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
	if [[ $cmd == *"$AP_TMP/apiprof-demo"* ]]; then
		ap_fail "demo left a process behind: $cmd"
	fi
done
ap_log "PASS"
