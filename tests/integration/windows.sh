#!/bin/bash
# Windows, regressions, alerts and rates (SPEC sections 4 and 5): a collector
# with 3-second windows (aggregation_window_minutes = 0.05) and the threaded C
# server under the preload.
#  1. window A: /slow answers in 30 ms; its summary appears once the window
#     has closed (end + grace), not before;
#  2. the collector restarts between windows: the summary of A is still there;
#  3. window B: /slow answers in 300 ms (10x): a response_time regression
#     against A is detected and listed;
#  4. a webhook receiver started here answers the first delivery with a 500
#     and the second with a 404, and receives the alert a third time, with
#     the SPEC's body; the
#     regression then shows webhook "delivered";
#  5. `apiprof aggregate` closes a window that has just ended (before its
#     grace is over) and writes nothing the second time;
#  6. 10-second rates: 25 requests in one bucket are not listed before the
#     bucket completes, then show as 2.5 requests/s; limit keeps the newest
#     points; totals since start.
. "$(dirname "$0")/lib.sh"

ap_require curl jq /usr/bin/python3
ap_require_build "$AP_THREADED" "$AP_CLI"

W=3   # window seconds


# slow_batch MS : 8 requests to /slow?ms=MS at once (8 server threads).
slow_batch() {
	local i pids=""
	for i in 1 2 3 4 5 6 7 8; do
		curl -sf --max-time 10 -o /dev/null "http://127.0.0.1:$AP_PORT/slow?ms=$1" &
		pids="$pids $!"
	done
	for i in $pids; do wait "$i" || ap_fail "a /slow request failed"; done
}

# slow_summary START : the summary row of GET /slow in the window starting
# at START (Unix seconds), or nothing.
slow_summary() {
	ap_api /api/v1/summaries --data-urlencode "service=$AP_SERVICE" --data-urlencode "route=/slow" |
		jq -c --arg t "$(ap_rfc3339 "$1")" '.summaries[] | select(.window_start == $t and .method == "GET")'
}

# ---- the webhook receiver: 500, then 404, then 200 ---------------------
HOOK_PORT=$(ap_free_port)
cat >"$AP_TMP/hook.py" <<'PY'
import http.server, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
seen = 0
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen += 1
        code = {1: 500, 2: 404}.get(seen, 200)
        with open(out, "a") as f:
            f.write(json.dumps({"n": seen, "code": code, "path": self.path,
                                "type": self.headers.get("Content-Type"),
                                "body": body.decode()}) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
ap_bg hook /usr/bin/python3 "$AP_TMP/hook.py" "$HOOK_PORT" "$AP_TMP/hook.jsonl"
ap_wait_port "$HOOK_PORT"

cat >"$AP_TMP/apiprof.conf" <<CONF
aggregation_window_minutes = 0.05
regression_min_requests = 5
regression_response_time_factor = 2.0
webhook_url = http://127.0.0.1:$HOOK_PORT/hook
CONF

ap_start_collector --config "$AP_TMP/apiprof.conf"
ap_start_threaded server --threads 8
ap_log "collector $AP_URL, server on port $AP_PORT, webhook on port $HOOK_PORT"
# One request first, so that the preload's buffer and shipper are up before
# the concurrent batches (a process's very first events, when several threads
# produce them at once, can be dropped by the preload: seen as "dropped" in
# /api/v1/status; not what this test is about).
curl -sf --max-time 10 -o /dev/null "http://127.0.0.1:$AP_PORT/hello" || ap_fail "warm-up request failed"
ap_assert_eq "warm-up request counted" "$(ap_wait_count /hello 1 GET)" 1

# ---- 1. window A: 30 ms -------------------------------------------------
A=$(ap_sleep_into $W 0.2)
slow_batch 30
[ -z "$(slow_summary "$A")" ] || ap_fail "window A was summarised before it ended"
ap_log "ok: no summary of window A while it is open"
row=""
for i in $(seq 50); do
	row=$(slow_summary "$A")
	[ -n "$row" ] && break
	sleep 0.2
done
[ -n "$row" ] || ap_fail "no summary of window A ($(ap_rfc3339 "$A")) 10 s after it ended"
ap_assert_jq "summary of window A" \
	'.count == 8 and .min_ms >= 29 and .avg_ms >= .min_ms and .avg_ms <= .max_ms and .p95_ms >= 29
	 and .max_ms >= .p95_ms and .error_count == 0 and .error_rate == 0 and .slow_count == 0
	 and .n_plus_one_count == 0' "$row"
# Window A's average, which the regression below must name as its previous
# one (a loaded machine stretches the 30 ms, so no fixed bound).
A_AVG=$(jq .avg_ms <<<"$row")
ap_log "$(grep -o "window $(ap_rfc3339 "$A") closed [0-9.]* s after its end" "$AP_TMP/collector.log") (grace 2 s)"

# ---- 2. restart between windows ----------------------------------------
ap_stop_pid "$AP_COLLECTOR_PID"
grep -q 'stopped:' "$AP_TMP/collector.log" || ap_fail "the collector did not stop cleanly"
mv "$AP_TMP/collector.log" "$AP_TMP/collector-1.log"
ap_start_collector --config "$AP_TMP/apiprof.conf"
row=$(slow_summary "$A")
[ -n "$row" ] || ap_fail "the summary of window A is gone after a restart"
ap_assert_jq "summary of window A after the restart" '.count == 8' "$row"
sleep 1.2   # the preload reconnects within 1 s

# ---- 3. window B: 300 ms ------------------------------------------------
B=$(ap_sleep_into $W 0.2)
slow_batch 300
reg=""
for i in $(seq 50); do
	reg=$(ap_api /api/v1/regressions --data-urlencode "service=$AP_SERVICE" |
		jq -c '.regressions[] | select(.route == "/slow")')
	[ -n "$reg" ] && break
	sleep 0.2
done
[ -n "$reg" ] || ap_fail "no regression of /slow 10 s after window B ended"
ap_assert_eq "regressions of /slow" "$(jq -s length <<<"$reg")" 1
ap_assert_jq "the response_time regression" \
	"(.type == \"response_time\" and .method == \"GET\" and .service == \"$AP_SERVICE\"
	  and .window_start == \"$(ap_rfc3339 "$B")\" and .previous_window_start == \"$(ap_rfc3339 "$A")\"
	  and (.previous_avg_ms - $A_AVG | fabs) < 0.5 and .current_avg_ms >= 299 and .current_count == 8
	  and .previous_count == 8 and .fingerprint == null
	  and (.webhook == \"pending\" or .webhook == \"delivered\"))" "$reg"
grep -q 'warn: regression response_time: .* GET /slow' "$AP_TMP/collector.log" ||
	ap_fail "the regression was not logged as a warning"

# ---- 4. the alert: a 500 and a 404 (SPEC 5: a failed delivery is retried,
# a 4xx too), then a delivery ---------------------------------------------
for i in $(seq 50); do
	[ "$(wc -l <"$AP_TMP/hook.jsonl" 2>/dev/null || echo 0)" -ge 3 ] && break
	sleep 0.2
done
[ "$(wc -l <"$AP_TMP/hook.jsonl" 2>/dev/null || echo 0)" -ge 3 ] ||
	ap_fail "the webhook did not receive the alert three times (a 500, a 404, then a retry)"
ap_assert_eq "webhook deliveries" "$(wc -l <"$AP_TMP/hook.jsonl")" 3
first=$(sed -n 1p "$AP_TMP/hook.jsonl")
second=$(sed -n 3p "$AP_TMP/hook.jsonl")
ap_assert_jq "first delivery answered 500" '.code == 500 and .path == "/hook"' "$first"
ap_assert_jq "the first retry answered 404, and was retried" '.code == 404' "$(sed -n 2p "$AP_TMP/hook.jsonl")"
ap_assert_eq "the retry carries the same body" "$(jq -r .body <<<"$second")" "$(jq -r .body <<<"$first")"
body=$(jq -r .body <<<"$second")
ap_assert_jq "alert body" \
	"(.type == \"response_time\" and .service == \"$AP_SERVICE\" and .route == \"/slow\"
	  and .method == \"GET\" and (.previous_avg_ms - $A_AVG | fabs) < 0.5 and .current_avg_ms >= 299
	  and (.text | type == \"string\" and contains(\"GET /slow\") and contains(\"slower\")))" "$body"
ap_assert_jq "alert content type" '.type == "application/json"' "$second"
ap_log "alert text: $(jq -r .text <<<"$body")"
st=""
for i in $(seq 75); do
	st=$(ap_api /api/v1/regressions | jq -r '.regressions[] | select(.route == "/slow") | .webhook')
	[ "$st" = delivered ] && break
	sleep 0.2
done
ap_assert_eq "webhook status of the regression" "$st" delivered
json=$(ap_api /api/v1/status)
ap_assert_jq "window counters in /status" \
	'.windows.window_s == 3 and .windows.grace_s == 2 and .windows.regressions == 1
	 and .windows.late_events == 0 and .windows.storage_errors == 0
	 and .windows.webhook.delivered == 1 and .windows.webhook.attempts_failed == 2
	 and .windows.webhook.queued == 0' "$json"
# ... and counted in /metrics (SPEC 6): the regression by service and type,
# the delivery by result.
metrics=$(curl -sf --max-time 10 "$AP_URL/metrics") || ap_fail "GET /metrics failed"
grep -Eq "^apiprof_regressions_total\{service=\"$AP_SERVICE\",type=\"response_time\"\} 1\$" <<<"$metrics" ||
	ap_fail "/metrics: no apiprof_regressions_total for the regression: $(grep regressions <<<"$metrics")"
grep -Eq '^apiprof_collector_webhook_deliveries_total\{result="delivered"\} 1$' <<<"$metrics" ||
	ap_fail "/metrics: no delivered webhook: $(grep webhook <<<"$metrics")"
ap_log "ok: /metrics counts the regression and its delivery"

# ---- 5. apiprof aggregate ---------------------------------------------
C=$(ap_sleep_into $W 0.2)
ap_curl_many "$AP_TMP/c.out" $(for i in 1 2 3 4 5 6; do echo "http://127.0.0.1:$AP_PORT/hello"; done)
ap_sleep_into $W 0.05 >/dev/null   # window C has ended; its grace has not
out=$("$AP_CLI" aggregate --url "$AP_URL") || ap_fail "apiprof aggregate failed"
ap_assert_eq "first apiprof aggregate" "$out" "aggregated: 1 summary, 0 regressions"
out=$("$AP_CLI" aggregate --url "$AP_URL") || ap_fail "apiprof aggregate failed"
ap_assert_eq "second apiprof aggregate" "$out" "aggregated: 0 summaries, 0 regressions"
json=$(ap_api /api/v1/summaries --data-urlencode "route=/hello")
ap_assert_jq "the aggregated window" \
	"[.summaries[] | select(.window_start == \"$(ap_rfc3339 "$C")\")] | length == 1 and .[0].count == 6" "$json"
code=$(curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/aggregate")
ap_assert_eq "GET /api/v1/aggregate" "$code" 405
code=$(curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/summaries?limit=0")
ap_assert_eq "bad limit" "$code" 400
code=$(curl -s -o /dev/null -w '%{http_code}' "$AP_URL/api/v1/regressions?type=slow")
ap_assert_eq "bad regression type" "$code" 400

# ---- 6. 10-second rates -------------------------------------------------
T=$(ap_sleep_into 10 0.2)
ap_curl_many "$AP_TMP/ts.out" $(for i in $(seq 25); do echo "http://127.0.0.1:$AP_PORT/users/$i"; done)
json=$(ap_api /api/v1/timeseries)
ap_assert_jq "the current bucket is not listed" \
	"(.bucket_seconds == 10) and ([.points[] | select(.t == \"$(ap_rfc3339 "$T")\")] | length == 0)" "$json"
sleep "$(awk -v t="$T" -v n="$(date +%s.%N)" 'BEGIN {d = t + 11.3 - n; printf "%.3f", (d > 0 ? d : 0)}')"
# Published about 1 s after its end; a loaded machine's collector may be
# later: polled (the first answer is the usual one).
for i in $(seq 50); do
	json=$(ap_api /api/v1/timeseries)
	[ "$(jq --arg t "$(ap_rfc3339 "$T")" '[.points[] | select(.t == $t)] | length' <<<"$json")" = 1 ] && break
	sleep 0.2
done
ap_assert_jq "the completed bucket" \
	"[.points[] | select(.t == \"$(ap_rfc3339 "$T")\")] | length == 1 and .[0].requests_per_s == 2.5
	 and .[0].sql_per_s == 0 and .[0].avg_request_ms > 0" "$json"
json=$(ap_api /api/v1/timeseries --data-urlencode "service=$AP_SERVICE")
ap_assert_jq "the completed bucket of this service" \
	"[.points[] | select(.t == \"$(ap_rfc3339 "$T")\")] | length == 1 and .[0].requests == 25" "$json"
ap_assert_jq "no rates for an unknown service" '.points == []' \
	"$(ap_api /api/v1/timeseries --data-urlencode service=nope)"
json=$(ap_api /api/v1/timeseries)
ap_assert_jq "buckets are 10 s apart and complete" \
	'[.points[].t | sub("\\.000Z$"; "Z") | fromdate] | (length >= 2) and
	 ([range(1; length) as $i | .[$i] - .[$i - 1]] | all(. == 10)) and (last + 10 <= now)' "$json"
# limit: the newest points of the period, still oldest first.
json=$(ap_api /api/v1/timeseries --data-urlencode "until=$((T + 10))" --data-urlencode limit=1)
ap_assert_jq "limit=1 until the bucket's end: that bucket alone" \
	"(.points | length == 1) and .points[0].t == \"$(ap_rfc3339 "$T")\"" "$json"
json=$(ap_api /api/v1/timeseries --data-urlencode "until=$((T + 10))" --data-urlencode limit=2)
ap_assert_jq "limit=2: two points, the newest last" \
	"(.points | length == 2) and .points[1].t == \"$(ap_rfc3339 "$T")\"" "$json"
json=$(ap_api /api/v1/status)
ap_assert_jq "totals since the restart" \
	'.totals.requests == 39 and .totals.sql == 0 and .totals.request_ms > 2400' "$json"
ap_log "closing delays: $(grep -ho 'closed [0-9.]* s after its end' "$AP_TMP"/collector*.log | awk '{print $2}' | tr '\n' ' ')"
