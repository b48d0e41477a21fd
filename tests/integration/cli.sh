#!/bin/bash
# The apiprof client against a live collector (with auth_token) and a
# preloaded Python sqlite3 server (tests/servers/sqlite_server.py): `check`
# as SPEC 7 defines it (p95 and error-rate thresholds with WARN:CRIT, the
# N+1 gate, the exit codes 0-3, Nagios perfdata, APIPROF_URL/--url and
# APIPROF_TOKEN), `aggregate`, `report` in colour on a terminal and plain
# through a pipe, `run` (and its --url, exported as APIPROF_URL), --help on
# each (an option a subcommand lacks is an "unknown option") and the
# collector's --help naming every SPEC 5 endpoint; the collector refusing an
# unreachable PostgreSQL db without printing its password. Also the SQL side of /metrics
# from a real driver: operations, the per-table insert count, the error code
# and the N+1 counter. Hostile text (ESC, BEL, C1 CSI, '|', markup, bad
# UTF-8): from a fake collector, report and check print no control
# character and check no injected perfdata (and report --sort errors puts
# the most errors first, not the highest rate); fed through the socket into
# the real one, every API answer stays strict UTF-8 JSON, /metrics passes
# promtool, and the folded profile, /metrics and report hold no control
# character.
# 50-85 s (83 s under ASan on a loaded machine): its own watchdog of 400 s,
# room for a machine two to three times slower still.
AP_TIMEOUT=${AP_TIMEOUT:-400}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

AP_SQLITE_SERVER=$AP_SRCDIR/tests/servers/sqlite_server.py
ap_require curl jq python3 script
ap_require_pymods sqlite3
ap_require_build "$AP_CLI"

TOKEN=it-cli-token
printf 'n_plus_one_threshold = 3\nauth_token = %s\n' "$TOKEN" >"$AP_TMP/apiprof.conf"
ap_start_collector --config "$AP_TMP/apiprof.conf"
/usr/bin/python3 "$AP_SQLITE_SERVER" --db "$AP_TMP/app.db" --seed >"$AP_TMP/seed.log" 2>&1 ||
	ap_fail "seeding the database failed: $(cat "$AP_TMP/seed.log")"
AP_PORT=$(ap_free_port)
# Through `apiprof run`, with the library from the build tree.
ap_bg server env APIPROF_LIB="$(ap_preload)" PYTHONDONTWRITEBYTECODE=1 \
	"$AP_CLI" run --service "$AP_SERVICE" --socket "$AP_SOCK" -- \
	/usr/bin/python3 "$AP_SQLITE_SERVER" --db "$AP_TMP/app.db" --port "$AP_PORT"
ap_wait_log server '^listening on'
B=http://127.0.0.1:$AP_PORT

# 8 fast, 2 N+1, 1 failing (500), 3 slow (150 ms), 2 writes: 16 requests.
for i in $(seq 8); do printf -- '-o /dev/null %s/books/1/\n' "$B"; done >"$AP_TMP/fast.cfg"
curl -s --max-time 30 $(cat "$AP_TMP/fast.cfg") -o /dev/null "$B/books/" -o /dev/null "$B/books/" \
	-o /dev/null "$B/fail" -o /dev/null "$B/slow/" -o /dev/null "$B/slow/" -o /dev/null "$B/slow/" ||
	ap_fail "traffic failed"
for i in 1 2; do
	curl -s --max-time 10 -o /dev/null --data-urlencode "note=n$i" "$B/notes" || ap_fail "POST failed"
done
ap_api_auth() { curl -sf --max-time 10 -H "Authorization: Bearer $TOKEN" "$AP_URL$1"; }
for i in $(seq 75); do
	n=$(ap_api_auth /api/v1/endpoints | jq '[.endpoints[].count] | add // 0')
	[ "$n" = 16 ] && break
	sleep 0.2
done
ap_assert_eq "requests seen" "$n" 16
sleep 1

export APIPROF_URL=$AP_URL APIPROF_TOKEN=$TOKEN
# check RUNS... : runs apiprof check, sets OUT (its one line) and RC.
check() {
	OUT=$("$AP_CLI" check "$@" 2>"$AP_TMP/check.err")
	RC=$?
	ap_log "check $* -> $RC: $OUT"
	[ "$(printf '%s\n' "$OUT" | wc -l)" = 1 ] || ap_fail "check printed more than one line: $OUT"
}
expect() { # expect RC PATTERN (grep -E on the line)
	[ "$RC" = "$1" ] || ap_fail "exit $RC, expected $1: $OUT"
	printf '%s\n' "$OUT" | grep -Eq -- "$2" || ap_fail "'$OUT' does not match /$2/"
}

# P95: the p95 of GET /slow/ as check prints it, 150 to 999 ms: at least
# the 150 ms sleep, below the 1000 ms critical threshold used with 100 (a
# loaded machine adds tens of ms to the sleep, so no tighter upper bound).
P95='(1[5-9][0-9]|[2-9][0-9]{2})'
check
expect 0 '^APIPROF OK - 16 requests since 5m, error rate 6\.25% \| requests=16;;;0 errors=1;;;0 error_rate=6\.25%;;;0;100 n_plus_one=2;;;0$'
check --max-p95 '/slow/=100:1000'
expect 1 '^APIPROF WARNING - p95 of GET /slow/ \(it-cli\) '"$P95"'ms > 100ms \| .* '"'"'p95 /slow/'"'"'='"$P95"'(\.[0-9]+)?ms;100;1000;0 '
check --max-p95 'GET /slow/=50:0.12s'
expect 2 '^APIPROF CRITICAL - p95 of GET /slow/ \(it-cli\) '"$P95"'ms > 120ms'
check --max-p95 'POST /slow/=50:100'
expect 0 "^APIPROF OK - .*'p95 POST /slow/'=U;50;100;0"
check --max-p95 '/books/{id}/=1000' --max-p95 '/no/such/route=1'
expect 0 "^APIPROF OK - 16 requests.*, p95 of GET /books/\{id\}/ \(it-cli\) [0-9.]+ms \|.*'p95 /no/such/route'=U;;1;0"
check --max-p95 '*=100:1000' --service "$AP_SERVICE"
expect 1 '^APIPROF WARNING - p95 of GET /slow/ '"$P95"'ms > 100ms'
check --max-error-rate 5%:10%
expect 1 '^APIPROF WARNING - error rate 6\.25% > 5\.00% \|.* error_rate=6\.25%;5;10;0;100 '
check --max-error-rate 0.01:0.05
expect 2 '^APIPROF CRITICAL - error rate 6\.25% > 5\.00%'
check --max-error-rate 0.5
expect 0 '^APIPROF OK - '
check --no-n-plus-one
expect 2 '^APIPROF CRITICAL - 2 requests with an N\+1 query pattern \(most: GET /books/\) \|.* n_plus_one=2;;0;0$'
check --no-n-plus-one --max-error-rate 1%:2% --max-p95 '/slow/=100:120'
expect 2 '^APIPROF CRITICAL - p95 of GET /slow/ \(it-cli\) .* > 120ms; error rate 6\.25% > 2\.00%; 2 requests with an N\+1'
check --since 10m --service no-such-service --no-n-plus-one --max-error-rate 0
expect 0 '^APIPROF OK - 0 requests since 10m, error rate 0\.00%, no N\+1 \| requests=0;;;0'
# UNKNOWN: bad options, no token, wrong token, nothing listening.
check --max-p95 '/x'
expect 3 '^APIPROF UNKNOWN - --max-p95'
check --max-error-rate 10%:5%
expect 3 '^APIPROF UNKNOWN - --max-error-rate'
check --since yesterday
expect 3 '^APIPROF UNKNOWN - --since'
check --frobnicate
expect 3 "^APIPROF UNKNOWN - unknown option '--frobnicate'"
check extra
expect 3 "^APIPROF UNKNOWN - unexpected argument 'extra'"
OUT=$(APIPROF_TOKEN= "$AP_CLI" check 2>/dev/null); RC=$?
expect 3 '^APIPROF UNKNOWN - the collector at .* refused the request \(HTTP 401\): set APIPROF_TOKEN'
OUT=$(APIPROF_TOKEN=wrong "$AP_CLI" check 2>/dev/null); RC=$?
expect 3 'is APIPROF_TOKEN its auth_token'
OUT=$(APIPROF_URL=http://127.0.0.1:1 "$AP_CLI" check 2>/dev/null); RC=$?
expect 3 '^APIPROF UNKNOWN - cannot ask the collector at http://127.0.0.1:1$'
OUT=$(APIPROF_URL=http://127.0.0.1:1 "$AP_CLI" check --url "$AP_URL" 2>/dev/null); RC=$?
expect 0 '^APIPROF OK'

# aggregate: the collector's answer, or a clear message from one without
# the endpoint; never a crash, and always the token.
"$AP_CLI" aggregate >"$AP_TMP/agg.out" 2>"$AP_TMP/agg.err"
rc=$?
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"$AP_URL/api/v1/aggregate")
if [ "$code" = 200 ]; then
	ap_assert_eq "aggregate exit" "$rc" 0
	grep -Eq '^aggregated: [0-9]+ summaries, [0-9]+ regressions$' "$AP_TMP/agg.out" ||
		ap_fail "aggregate printed: $(cat "$AP_TMP/agg.out")"
else
	ap_assert_eq "aggregate exit without /api/v1/aggregate" "$rc" 3
	grep -q 'has no /api/v1/aggregate' "$AP_TMP/agg.err" || ap_fail "aggregate: $(cat "$AP_TMP/agg.err")"
fi
APIPROF_TOKEN= "$AP_CLI" aggregate >/dev/null 2>"$AP_TMP/agg401.err"
ap_assert_eq "aggregate without the token" "$?" 3
grep -q 'HTTP 401' "$AP_TMP/agg401.err" || ap_fail "aggregate 401: $(cat "$AP_TMP/agg401.err")"
"$AP_CLI" aggregate --bogus >/dev/null 2>"$AP_TMP/agg-bogus.err"
ap_assert_eq "aggregate --bogus" "$?" 2
grep -q "^apiprof aggregate: unknown option '--bogus'" "$AP_TMP/agg-bogus.err" ||
	ap_fail "aggregate --bogus: $(head -1 "$AP_TMP/agg-bogus.err")"
"$AP_CLI" report --bogus >/dev/null 2>"$AP_TMP/report-bogus.err"
ap_assert_eq "report --bogus" "$?" 2
grep -q "^apiprof report: unknown option '--bogus'" "$AP_TMP/report-bogus.err" ||
	ap_fail "report --bogus: $(head -1 "$AP_TMP/report-bogus.err")"

# report: colours on a terminal (script(1) gives it one), plain in a pipe.
script -qec "env TERM=xterm APIPROF_URL=$AP_URL APIPROF_TOKEN=$TOKEN $AP_CLI report --sort p95" \
	/dev/null >"$AP_TMP/report.tty" </dev/null || ap_fail "report on a tty failed"
grep -q $'\033\\[1mSERVICE' "$AP_TMP/report.tty" || ap_fail "no bold header on a terminal"
grep -q $'\033\\[31m100.0%' "$AP_TMP/report.tty" || ap_fail "no red error rate on a terminal"
script -qec "env NO_COLOR=1 APIPROF_URL=$AP_URL APIPROF_TOKEN=$TOKEN $AP_CLI report" \
	/dev/null >"$AP_TMP/report.nocolor" </dev/null || ap_fail "report with NO_COLOR failed"
grep -q $'\033' "$AP_TMP/report.nocolor" && ap_fail "NO_COLOR did not turn colours off"
"$AP_CLI" report --sort p95 >"$AP_TMP/report.txt" || ap_fail "report failed"
grep -q $'\033' "$AP_TMP/report.txt" && ap_fail "colours in a pipe"
ap_assert_eq "first row by p95" "$(awk 'NR == 2 {print $2, $3}' "$AP_TMP/report.txt")" "GET /slow/"
ap_assert_eq "first row by errors" \
	"$("$AP_CLI" report --sort errors | awk 'NR == 2 {print $3, $5}')" "/fail 100.0%"
ap_assert_eq "first row by count" "$("$AP_CLI" report --sort count | awk 'NR == 2 {print $3, $4}')" \
	"/books/{id}/ 8"

# --help on every subcommand.
for c in run report aggregate check; do
	"$AP_CLI" "$c" --help | grep -q "^usage: apiprof $c" || ap_fail "apiprof $c --help"
done
"$AP_CLI" --help | grep -q '^  check ' || ap_fail "apiprof --help does not list check"
# run takes --url like every subcommand (SPEC 7) and hands it to COMMAND.
ap_assert_eq "run --url exports APIPROF_URL to COMMAND" \
	"$(APIPROF_LIB="$(ap_preload)" APIPROF_URL=http://127.0.0.1:2 "$AP_CLI" run --url http://127.0.0.1:1 \
		-- /bin/sh -c 'printf %s "$APIPROF_URL"')" "http://127.0.0.1:1"
# The collector's --help names every endpoint of SPEC 5.
"$AP_COLLECTOR" --help >"$AP_TMP/collector-help.txt" || ap_fail "apiprof-collector --help failed"
for e in /healthz /api/v1/status /api/v1/endpoints /api/v1/requests /api/v1/requests/ID \
	/api/v1/queries /api/v1/n-plus-one /api/v1/summaries /api/v1/aggregate /api/v1/regressions \
	/api/v1/errors /api/v1/timeseries /api/v1/profile /metrics; do
	grep -qF -- "$e" "$AP_TMP/collector-help.txt" || ap_fail "apiprof-collector --help does not list $e"
done
# A PostgreSQL db it cannot reach: exit 2, the password never printed
# (README: shown as ***), in the URI's user part or as a parameter.
for db in 'postgresql://u:it-SECRET@127.0.0.1:1/x' \
	'postgres://u@127.0.0.1:1/x?sslmode=disable&password=it-SECRET'; do
	"$AP_COLLECTOR" --db "$db" --socket "$AP_TMP/pg.sock" --http "127.0.0.1:$(ap_free_port)" \
		>/dev/null 2>"$AP_TMP/pg-start.err"
	ap_assert_eq "collector with $db unreachable" "$?" 2
	grep -q '^apiprof-collector: db postgres.*\*\*\*.*Connection refused' "$AP_TMP/pg-start.err" ||
		ap_fail "unreachable db: $(tail -1 "$AP_TMP/pg-start.err")"
	! grep -q 'it-SECRET' "$AP_TMP/pg-start.err" ||
		ap_fail "the db password is printed: $(grep it-SECRET "$AP_TMP/pg-start.err")"
done

# The SQL metrics of the same traffic.
ap_api_auth /metrics >"$AP_TMP/metrics.txt" || ap_fail "GET /metrics failed"
S="service=\"$AP_SERVICE\""
grep -qxF "apiprof_db_table_operations_total{$S,db=\"sqlite\",table=\"notes\",operation=\"insert\"} 2" \
	"$AP_TMP/metrics.txt" || ap_fail "no table operation count for notes: $(grep table_op "$AP_TMP/metrics.txt")"
grep -qxF "apiprof_db_errors_total{$S,db=\"sqlite\",code=\"1\"} 1" "$AP_TMP/metrics.txt" ||
	ap_fail "no SQLite error: $(grep db_errors "$AP_TMP/metrics.txt")"
grep -qxF "apiprof_n_plus_one_total{$S,method=\"GET\",route=\"/books/\"} 2" "$AP_TMP/metrics.txt" ||
	ap_fail "no N+1 counter"
grep -qE "^apiprof_db_queries_total\{$S,db=\"sqlite\",operation=\"select\"\} [1-9]" "$AP_TMP/metrics.txt" ||
	ap_fail "no select count"
grep -qxF "apiprof_http_errors_total{$S,route=\"/fail\",type=\"HTTP 500\"} 1" "$AP_TMP/metrics.txt" ||
	ap_fail "no HTTP 500 counter"
if command -v promtool >/dev/null 2>&1; then
	promtool check metrics <"$AP_TMP/metrics.txt" >"$AP_TMP/promtool.log" 2>&1 ||
		ap_fail "promtool: $(cat "$AP_TMP/promtool.log")"
fi
# Hostile text in the endpoint list (a route, a service, or whatever answers
# at --url): report and check replace control characters (ESC, BEL, C1 CSI
# U+009B) by '?', never cut a character in two, and check keeps '|' out of
# its status text so that no perfdata can be injected.
cat >"$AP_TMP/evil.py" <<'PY'
import http.server, json, sys
LONG = "/" + "\u00e9" * 40  # 81 bytes: cut inside a character at 64
EP = [{"service": "s\u001b]0;pwn\u0007\u009b31m", "method": "GET\u001b[2J", "route": r,
       "count": 5, "error_count": 0, "error_rate": 0, "avg_ms": 9, "p50_ms": 9, "p95_ms": 9,
       "p99_ms": 9, "max_ms": 9} for r in ("/a|x=1;;;0 /\u001b[31mred\u009b", LONG)]
# Wide and combining characters: the columns stay aligned on a terminal.
EP += [dict(EP[0], service=s, route="/w") for s in ("\u65e5\u672c\u8a9e-api", "cafe\u0301")]
# --sort errors orders by error count, then rate: 3 of 50 before 2 of 5.
EP[2].update(error_count=2, error_rate=0.4)
EP[3].update(count=50, error_count=3, error_rate=0.06)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = json.dumps({"endpoints": EP}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
s.serve_forever()
PY
EVIL_PORT=$(ap_free_port)
ap_bg evil python3 "$AP_TMP/evil.py" "$EVIL_PORT"
ap_wait_log evil '^listening'
"$AP_CLI" report --url "http://127.0.0.1:$EVIL_PORT" >"$AP_TMP/evil.report" 2>&1 ||
	ap_fail "report from the hostile list failed: $(cat "$AP_TMP/evil.report")"
"$AP_CLI" check --url "http://127.0.0.1:$EVIL_PORT" --max-p95 '*=1' >"$AP_TMP/evil.check" 2>&1
"$AP_CLI" report --url "http://127.0.0.1:$EVIL_PORT" --sort errors | awk 'NR == 2' | grep -q '^caf' ||
	ap_fail "report --sort errors: the endpoint with the most errors (not the highest rate) is not first"
python3 - "$AP_TMP/evil.report" "$AP_TMP/evil.check" <<'PY' || ap_fail "hostile text reached the terminal"
import re, sys
for f in sys.argv[1:]:
    text = open(f, "rb").read().decode("utf-8")  # raises on a character cut in two
    bad = re.findall(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
    if bad:
        sys.exit("%s: control characters %r in %r" % (f, bad, text))
    if f.endswith(".check") and text.count("|") != 1:
        sys.exit("%s: '|' in the status text: %r" % (f, text))
    if f.endswith(".report") and "?]0;pwn??31m" not in text:
        sys.exit("%s: the service is not shown cleaned: %r" % (f, text))
    if f.endswith(".report"):
        # The last column is right-aligned: aligned columns give every line
        # the same width in terminal columns (CJK two, combining marks none).
        import unicodedata
        def cols(line):
            return sum(0 if unicodedata.combining(c) else
                       2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
        widths = {cols(l) for l in text.splitlines()}
        if len(widths) != 1 or "\u65e5\u672c\u8a9e-api" not in text:
            sys.exit("%s: columns not aligned (line widths %r): %r" % (f, widths, text))
PY
# The same kind of text end to end, through the socket into this collector:
# markup, quotes, backslashes, newlines, ESC, BEL, C1 CSI, NUL and invalid
# UTF-8 in the service, method, path, SQL, SQL error, 5xx body and a
# profiled stack. Every API answer stays strict UTF-8 JSON, /metrics passes
# promtool, and the folded profile and `report` carry no control character.
python3 - "$AP_SOCK" <<'PY' || ap_fail "feeding hostile text failed"
import os, socket, struct, sys, time
def s16(b): return struct.pack("<H", len(b)) + b
def rec(t, p): return struct.pack("<HHI", t, 0, len(p)) + p
def batch(recs):
    off = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return struct.pack("<IBBHIIq", 0x46525041, 1, 0, 24, 1, os.getpid(), off) + b"".join(recs)
EVIL = b'<img src=x onerror=alert(1)>"\\\n\x1b]0;pwn\x07\xc2\x9b31m\xff\x00z'
now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
recs = [rec(1, struct.pack("<IIQ", os.getpid(), 1, 0) + s16(b"evil" + EVIL) + s16(b"/bin/" + EVIL)),
        rec(4, struct.pack("<QQQQQIBB", 7, now - 10**6, now, 1, 99, 1, 3, 1) + s16(b"4\x1b2") +
            s16(b"no " + EVIL) + s16(b'INSERT INTO "t' + EVIL + b'" VALUES (?)')),
        rec(2, struct.pack("<QQQQQIHH", 7, now - 10**6, now, 1, 2, 1, 500, 0) + s16(b"G" + EVIL) +
            s16(b"/e/" + EVIL + b"/" + b"x" * 3000) + s16(b"boom " + EVIL)),
        rec(7, struct.pack("<QIIH", 7, 1, 3, 0) + s16(b"GET") + s16(b"/e/p") + s16(b"main;" + EVIL))]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[1])
s.send(batch(recs))
PY
A=(-H "Authorization: Bearer $TOKEN")
for i in $(seq 150); do
	curl -sf --max-time 10 "${A[@]}" "$AP_URL/api/v1/errors" | grep -q 'evil<img' && break
	sleep 0.1
done
curl -sf --max-time 10 "${A[@]}" "$AP_URL/api/v1/requests" >"$AP_TMP/evil.requests" ||
	ap_fail "GET /api/v1/requests failed"
for p in endpoints requests queries errors n-plus-one status profile "profile?format=speedscope" \
	$(jq -r '.requests[] | "requests/\(.id)"' "$AP_TMP/evil.requests"); do
	curl -sf --max-time 10 "${A[@]}" "$AP_URL/api/v1/$p" >"$AP_TMP/evil.json" || ap_fail "GET $p failed"
	python3 -c 'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' \
		"$AP_TMP/evil.json" || ap_fail "GET /api/v1/$p: not strict UTF-8 JSON"
done
curl -sf --max-time 10 "${A[@]}" "$AP_URL/metrics" >"$AP_TMP/evil.metrics" || ap_fail "/metrics failed"
grep -q '^apiprof_http_requests_total{service="evil<img' "$AP_TMP/evil.metrics" ||
	ap_fail "the hostile service is not in /metrics"
if command -v promtool >/dev/null 2>&1; then
	promtool check metrics <"$AP_TMP/evil.metrics" >"$AP_TMP/promtool.log" 2>&1 ||
		ap_fail "promtool on hostile labels: $(cat "$AP_TMP/promtool.log")"
fi
curl -sf --max-time 10 "${A[@]}" "$AP_URL/api/v1/profile?format=collapsed" >"$AP_TMP/evil.folded" ||
	ap_fail "collapsed profile failed"
grep -q '^main;<img' "$AP_TMP/evil.folded" || ap_fail "no hostile stack: $(cat -v "$AP_TMP/evil.folded")"
# A browser opening an answer directly never sniffs or runs it as HTML.
for p in "api/v1/profile?format=collapsed" api/v1/errors metrics api/v1/summaries; do
	curl -s -D "$AP_TMP/evil.h" -o /dev/null --max-time 10 "${A[@]}" "$AP_URL/$p"
	grep -qi '^x-content-type-options: nosniff' "$AP_TMP/evil.h" &&
		grep -qi "^content-security-policy: default-src 'none'" "$AP_TMP/evil.h" ||
		ap_fail "/$p: no nosniff or CSP: $(cat "$AP_TMP/evil.h")"
done
"$AP_CLI" report >"$AP_TMP/evil.report2" 2>&1 || ap_fail "report failed"
grep -q 'evil<img' "$AP_TMP/evil.report2" || ap_fail "the hostile service is not in the report"
python3 - "$AP_TMP/evil.folded" "$AP_TMP/evil.report2" "$AP_TMP/evil.metrics" <<'PY' ||
import re, sys
for f in sys.argv[1:]:
    text = open(f, "rb").read().decode("utf-8")
    bad = re.findall(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
    if bad:
        sys.exit("%s: control characters %r" % (f, sorted(set(bad))))
PY
	ap_fail "hostile text reached the folded profile, the report or /metrics"
ap_log "check, aggregate, report, run and the SQL metrics: ok"
