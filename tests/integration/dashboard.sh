#!/bin/bash
# The dashboard at GET /, end to end in headless Chromium (Debian's
# /usr/bin/chromium, driven by playwright-core from tests/dashboard/, which
# this test installs with `npm ci` when missing).
#
# A collector with an auth_token and slow_request_threshold_ms = 500 is fed
# by two preloaded servers: the sqlite3 http.server (SQL, an N+1, a failed
# statement, a slow request; service it-dashboard) and the C threaded server
# (service it-dashboard-c). One request's path is HTML markup. Checked here:
# the static files, their security headers and the API's refusal without
# the token; checked in the browser (tests/dashboard/drive.js): the token
# prompt, the endpoint rows and counts, sorting, the service, method and
# text filters, the colours, the markup shown as text and run nowhere, the
# request list's filters, search and cursor pages, a request's statements
# with its N+1 group, a failed request's error, the N+1, queries and errors
# panes. With libdw, a third preloaded server (tests/servers/prof_server,
# APIPROF_PROFILE_EVERY=1; service it-dashboard-prof) burns CPU in burn_sin
# on GET /sin: the endpoint's "flame" link opens the Profiles pane, whose
# flame graph shows a burn_sin frame (as text, with its samples on hover)
# and whose top-functions table lists it; an endpoint without samples says
# so. Screenshots go to tests/integration/dashboard.out/ in the build tree
# (dashboard.png, request.png, profile.png; failure.png when it fails).
AP_TIMEOUT=${AP_TIMEOUT:-400}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_SQLITE_SERVER=$AP_SRCDIR/tests/servers/sqlite_server.py
ap_require curl jq node npm /usr/bin/chromium
ap_require_pymods sqlite3
ap_require_build "$AP_THREADED"
AP_PROF_SERVER=$AP_BUILDDIR/tests/servers/prof_server
PROF=0
if grep -q '^#define HAVE_LIBDW 1' "$AP_BUILDDIR/config.h" && [ -x "$AP_PROF_SERVER" ]; then
	PROF=1
else
	ap_log "built without libdw (or no prof_server): the flame graph is not checked"
fi

AP_OUT=$AP_BUILDDIR/tests/integration/dashboard.out
rm -rf "$AP_OUT"
mkdir -p "$AP_OUT" || ap_fail "cannot create $AP_OUT"

# playwright-core, pinned by tests/dashboard/package-lock.json, installed in
# the build tree (the source tree may be read-only).
AP_NODEDIR=$AP_BUILDDIR/tests/dashboard
if [ ! -f "$AP_NODEDIR/node_modules/playwright-core/package.json" ] ||
	! cmp -s "$AP_SRCDIR/tests/dashboard/package-lock.json" "$AP_NODEDIR/node_modules/.package-lock.json.apiprof"; then
	mkdir -p "$AP_NODEDIR" || ap_fail "cannot create $AP_NODEDIR"
	if [ "$AP_NODEDIR" != "$AP_SRCDIR/tests/dashboard" ]; then
		cp "$AP_SRCDIR/tests/dashboard/package.json" "$AP_SRCDIR/tests/dashboard/package-lock.json" "$AP_NODEDIR/" ||
			ap_fail "cannot copy package.json"
	fi
	ap_log "installing playwright-core (npm ci in $AP_NODEDIR)"
	(cd "$AP_NODEDIR" && npm ci --no-audit --no-fund --loglevel=error) >"$AP_TMP/npm.log" 2>&1 ||
		ap_fail "npm ci failed: $(tail -5 "$AP_TMP/npm.log")"
	cp "$AP_SRCDIR/tests/dashboard/package-lock.json" "$AP_NODEDIR/node_modules/.package-lock.json.apiprof"
fi

TOKEN=dash-$RANDOM$RANDOM
# Every curl of this test (lib.sh's helpers included) sends the token.
curl() { command curl -H "Authorization: Bearer $TOKEN" "$@"; }

printf 'auth_token = %s\nslow_request_threshold_ms = 500\nn_plus_one_threshold = 3\n' "$TOKEN" \
	>"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"

# ---- the static files and the token, over plain HTTP ----
code=$(command curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/endpoints")
ap_assert_eq "GET /api/v1/endpoints without the token" "$code" 401
code=$(command curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer not-$TOKEN" "$AP_URL/api/v1/requests")
ap_assert_eq "GET /api/v1/requests with a wrong token" "$code" 401
# The page needs the token as every endpoint but /healthz does (SPEC 5):
# without it, 401 with the page itself as the body (a browser renders it
# and the script asks for the token); its two files hold no data: 200.
for f in / /index.html /dashboard.js /dashboard.css; do
	want=200
	case $f in /|/index.html) want=401 ;; esac
	command curl -s -D "$AP_TMP/h" -o "$AP_TMP/body" "$AP_URL$f" || ap_fail "GET $f failed"
	head -1 "$AP_TMP/h" | grep -q " $want" || ap_fail "GET $f without the token: $(head -1 "$AP_TMP/h"), want $want"
	grep -qi "^content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';" "$AP_TMP/h" ||
		ap_fail "GET $f: no strict Content-Security-Policy: $(cat "$AP_TMP/h")"
	grep -qi '^x-content-type-options: nosniff' "$AP_TMP/h" || ap_fail "GET $f: no nosniff"
	[ -s "$AP_TMP/body" ] || ap_fail "GET $f: empty"
	ap_log "ok: GET $f: $want without the token, CSP and nosniff"
done
command curl -s -o "$AP_TMP/page401" "$AP_URL/" || ap_fail "GET / failed"
grep -q 'token-box' "$AP_TMP/page401" || ap_fail "GET / without the token: the 401's body is not the page"
grep -qi '^www-authenticate: bearer' <(command curl -sI "$AP_URL/") || ap_fail "GET / without the token: no WWW-Authenticate: Bearer"
code=$(curl -s -o /dev/null -w '%{http_code}' "$AP_URL/")
ap_assert_eq "GET / with the token" "$code" 200
code=$(command curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer not-$TOKEN" "$AP_URL/")
ap_assert_eq "GET / with a wrong token" "$code" 401
grep -qi '^content-type: text/html' <(command curl -sI "$AP_URL/") || ap_fail "GET /: not text/html"
grep -qi '^content-type: text/javascript' <(command curl -sI "$AP_URL/dashboard.js") || ap_fail "GET /dashboard.js: not JavaScript"
# No inline script, style or event handler in the page; no innerHTML anywhere.
command curl -s "$AP_URL/" >"$AP_TMP/index.html"
grep -Eiq '<script>|<script[^>]*>[^<]|<style|[[:space:]]on[a-z]+=|style=' "$AP_TMP/index.html" &&
	ap_fail "GET /: inline script, style or handler: $(grep -Ein '<script>|<style|[[:space:]]on[a-z]+=|style=' "$AP_TMP/index.html")"
# (Read whole, then searched: with pipefail, `curl | grep -q` is false
# when grep stops at an early match and curl then fails to write.)
command curl -sf --max-time 10 "$AP_URL/dashboard.js" >"$AP_TMP/dashboard.js" ||
	ap_fail "GET /dashboard.js failed"
grep -Eq 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(' "$AP_TMP/dashboard.js" &&
	ap_fail "dashboard.js uses an HTML-parsing sink"
ap_log "ok: no inline script or style, no innerHTML"
etag=$(command curl -sI "$AP_URL/dashboard.js" | tr -d '\r' | awk 'tolower($1) == "etag:" {print $2}')
code=$(command curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$AP_URL/dashboard.js")
ap_assert_eq "GET /dashboard.js with its ETag" "$code" 304
code=$(command curl -s -o /dev/null -w '%{http_code}' -X POST "$AP_URL/")
ap_assert_eq "POST /" "$code" 405
ap_assert_jq "/api/v1/status: config.slow_request_threshold_ms" '.config.slow_request_threshold_ms == 500' \
	"$(ap_api /api/v1/status)"

# ---- traffic ----
/usr/bin/python3 "$AP_SQLITE_SERVER" --db "$AP_TMP/app.db" --seed >"$AP_TMP/seed.log" 2>&1 ||
	ap_fail "seeding the database failed: $(cat "$AP_TMP/seed.log")"
AP_PORT=$(ap_free_port)
ap_bg_preloaded server env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$AP_SQLITE_SERVER" \
	--db "$AP_TMP/app.db" --port "$AP_PORT"
ap_wait_log server '^listening on'
B=http://127.0.0.1:$AP_PORT
SPORT=$AP_PORT
SVC=$AP_SERVICE
AP_SERVICE=$SVC-c ap_start_threaded cserver
CPORT=$AP_PORT
ap_log "collector $AP_URL, sqlite_server $B, threaded_server port $CPORT"
if [ "$PROF" = 1 ]; then
	AP_PORT=$(ap_free_port)
	AP_SERVICE=$SVC-prof ap_bg_preloaded prof env APIPROF_PROFILE_EVERY=1 "$AP_PROF_SERVER" --port "$AP_PORT"
	ap_wait_log prof '^listening on'
	PPORT=$AP_PORT
fi

XSS='/<img/src=x/onerror=alert(1)>'
NOPE=50
urls=()
for i in $(seq "$NOPE"); do urls+=("$B/nope"); done
ap_curl_many "$AP_TMP/a.out" "$B/books/" "$B/books/" "$B/books/1/" "$B/books/" "$B/books/2/" \
	"$B/books/" "$B/books/3/" "$B/books/" "$B/books/" "$B/fail" "$B/slow/?ms=600" "$B/fail"
curl -s --max-time 10 -o /dev/null --data-urlencode "note=a" "$B/notes" \
	--next -s --max-time 10 -o /dev/null --data-urlencode "note=b" "$B/notes" || ap_fail "POST /notes failed"
ap_raw "$SPORT" "GET $XSS" >"$AP_TMP/xss.out"
ap_curl_many "$AP_TMP/n.out" "${urls[@]}"
ap_curl_many "$AP_TMP/c.out" "http://127.0.0.1:$CPORT/hello" "http://127.0.0.1:$CPORT/hello" \
	"http://127.0.0.1:$CPORT/users/7"

AP_SERVICE=$SVC ap_expect_counts <<EOF
GET /books/ 6
GET /books/{id}/ 3
POST /notes 2
GET /fail 2
GET /slow/ 1
GET /nope $NOPE
GET $XSS 1
EOF
AP_SERVICE=$SVC-c ap_expect_counts <<EOF
GET /hello 2
GET /users/{id} 1
EOF
if [ "$PROF" = 1 ]; then
	for i in 1 2; do
		curl -sf --max-time 20 -o /dev/null "http://127.0.0.1:$PPORT/sin?ms=150" || ap_fail "GET /sin failed"
	done
	# Stacks are shipped after unwinding, shortly after the response.
	for i in $(seq 50); do
		n=$(ap_api /api/v1/profile --data-urlencode "service=$SVC-prof" --data-urlencode method=GET \
			--data-urlencode route=/sin | jq .requests)
		[ "$n" -ge 2 ] && break
		sleep 0.2
	done
	ap_assert_eq "profiled GET /sin requests" "$n" 2
	ap_assert_jq "GET /sin's profile names burn_sin" '[.functions[].function] | index("burn_sin") != null' \
		"$(ap_api /api/v1/profile --data-urlencode "service=$SVC-prof" --data-urlencode route=/sin)"
fi
total=$(( 6 + 3 + 2 + 2 + 1 + NOPE + 1 ))
# Every request is stored (and its statements) before the browser looks.
for i in $(seq 50); do
	n=$(ap_api /api/v1/requests --data-urlencode "service=$SVC" --data-urlencode limit=1000 | jq '.requests | length')
	[ "$n" -ge "$total" ] && break
	sleep 0.2
done
ap_assert_eq "stored requests of $SVC" "$n" "$total"
reqs=$(ap_api /api/v1/requests --data-urlencode "service=$SVC" --data-urlencode limit=1000)
books_id=$(jq '[.requests[] | select(.path == "/books/")][0].id' <<<"$reqs")
fail_id=$(jq '[.requests[] | select(.path == "/fail")][0].id' <<<"$reqs")
xss_id=$(jq --arg p "$XSS" '[.requests[] | select(.path == $p)][0].id' <<<"$reqs")
ap_assert_jq "the markup path is stored as sent" "$xss_id > 0" "$xss_id"

jq -n --arg url "$AP_URL" --arg token "$TOKEN" --arg s "$SVC" --arg s2 "$SVC-c" --arg xss "$XSS" \
	--argjson total "$total" --argjson books "$books_id" --argjson fail "$fail_id" --argjson xid "$xss_id" \
	--argjson nope "$NOPE" --argjson prof "$PROF" --arg s3 "$SVC-prof" \
	'{url: $url, token: $token, service: $s, service2: $s2, xss_path: $xss, total_requests: $total,
	  profile: (if $prof == 1 then {service: $s3, method: "GET", route: "/sin", function: "burn_sin"} else null end),
	  books_id: $books, fail_id: $fail, xss_id: $xid,
	  endpoints: [{method: "GET", route: "/books/", count: 6}, {method: "GET", route: "/books/{id}/", count: 3},
	    {method: "POST", route: "/notes", count: 2}, {method: "GET", route: "/fail", count: 2},
	    {method: "GET", route: "/slow/", count: 1}, {method: "GET", route: "/nope", count: $nope},
	    {method: "GET", route: $xss, count: 1}]}' >"$AP_TMP/expect.json"

# ---- the browser ----
NODE_PATH=$AP_NODEDIR/node_modules node "$AP_SRCDIR/tests/dashboard/drive.js" "$AP_TMP/expect.json" "$AP_OUT" \
	>"$AP_TMP/browser.log" 2>&1
rc=$?
sed "s/^/$AP_NAME: browser: /" "$AP_TMP/browser.log"
[ "$rc" = 0 ] || ap_fail "the browser checks failed (screenshot: $AP_OUT/failure.png)"
[ -s "$AP_OUT/dashboard.png" ] || ap_fail "no screenshot in $AP_OUT"
ap_log "screenshots: $AP_OUT/dashboard.png $AP_OUT/request.png"
ap_log "PASS"
