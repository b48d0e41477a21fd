#!/bin/bash
# /metrics end to end: the preloaded threaded server gets a known number of
# requests; the collector's exposition passes `promtool check metrics` and
# shows the exact counts; then a real Prometheus server (Debian's), started
# on 127.0.0.1 in the temp dir and scraping with the collector's bearer
# token, answers a PromQL query through its HTTP API with the request count
# this test sent, and a histogram_quantile over our buckets. max_routes = 3:
# a fourth and fifth route count as {other}. nginx with two
# worker processes under the preload shows that a service's series are
# exact sums over its processes.
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 promtool prometheus
ap_require_build "$AP_THREADED"

TOKEN=it-prometheus-secret
cat >"$AP_TMP/apiprof.conf" <<EOF
auth_token = $TOKEN
metric_namespace = acme
latency_buckets = 0.001,0.01,0.1,1
max_routes = 3
EOF
ap_start_collector --config "$AP_TMP/apiprof.conf"
ap_start_threaded server
B=http://127.0.0.1:$AP_PORT
M() { curl -sf --max-time 10 -H "Authorization: Bearer $TOKEN" "$AP_URL/metrics"; }

# Without the token, /metrics is refused like every API endpoint.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$AP_URL/metrics")
ap_assert_eq "/metrics without the token" "$code" "401"

N_HELLO=37
N_ERROR=3
ap_curl_many "$AP_TMP/hello.out" $(for i in $(seq $N_HELLO); do printf '%s ' "$B/hello"; done)
ap_curl_many "$AP_TMP/error.out" $(for i in $(seq $N_ERROR); do printf '%s ' "$B/error"; done)
ap_curl_many "$AP_TMP/users.out" "$B/users/1" "$B/users/2"
# Past max_routes (3: /hello, /error, /users/{id}), new routes are {other}.
ap_curl_many "$AP_TMP/other.out" "$B/extra" "$B/more"

# Freshness: /metrics reflects an event at once, so poll only for delivery.
# The routes' events may arrive in any order: wait for all of them, both
# {other} ones included (waiting for the first alone failed once, on two
# cores at a load average of 7).
want="acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"/hello\",status=\"200\"} $N_HELLO"
want_users="acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"/users/{id}\",status=\"200\"} 2"
want_error="acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"/error\",status=\"500\"} $N_ERROR"
for i in $(seq 50); do
	M >"$AP_TMP/metrics.txt" || ap_fail "GET /metrics failed"
	grep -qxF "$want" "$AP_TMP/metrics.txt" && grep -qxF "$want_users" "$AP_TMP/metrics.txt" &&
		grep -qxF "$want_error" "$AP_TMP/metrics.txt" &&
		grep -q 'route="{other}",status="[0-9]*"} 2$' "$AP_TMP/metrics.txt" && break
	sleep 0.2
done
grep -qxF "$want" "$AP_TMP/metrics.txt" || ap_fail "no line: $want"
grep -qxF "acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"/error\",status=\"500\"} $N_ERROR" \
	"$AP_TMP/metrics.txt" || ap_fail "wrong /error count"
grep -qxF "acme_apiprof_http_errors_total{service=\"$AP_SERVICE\",route=\"/error\",type=\"HTTP 500\"} $N_ERROR" \
	"$AP_TMP/metrics.txt" || ap_fail "wrong error count"
grep -qxF "acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"/users/{id}\",status=\"200\"} 2" \
	"$AP_TMP/metrics.txt" || ap_fail "wrong /users/{id} count"
[ "$(grep "^acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=" "$AP_TMP/metrics.txt" |
	grep -v 'route="/hello"\|route="/error"\|route="/users/{id}"' | sed 's/,status="[0-9]*"//')" = \
	"acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",method=\"GET\",route=\"{other}\"} 2" ] ||
	ap_fail "max_routes = 3: the two requests past it are not counted as {other}"
grep -qxF "acme_apiprof_http_request_duration_seconds_count{service=\"$AP_SERVICE\",method=\"GET\",route=\"/hello\"} $N_HELLO" \
	"$AP_TMP/metrics.txt" || ap_fail "wrong histogram count"
grep -qxF "acme_apiprof_http_request_duration_seconds_bucket{service=\"$AP_SERVICE\",method=\"GET\",route=\"/hello\",le=\"+Inf\"} $N_HELLO" \
	"$AP_TMP/metrics.txt" || ap_fail "wrong +Inf bucket"
grep -q "^acme_apiprof_http_request_duration_seconds_bucket{service=\"$AP_SERVICE\",method=\"GET\",route=\"/hello\",le=\"0.001\"} " \
	"$AP_TMP/metrics.txt" || ap_fail "latency_buckets not applied"
grep -qxF "acme_apiprof_processes{service=\"$AP_SERVICE\"} 1" "$AP_TMP/metrics.txt" ||
	ap_fail "apiprof_processes is not 1"
grep -q '^acme_apiprof_collector_events_received_total [1-9]' "$AP_TMP/metrics.txt" ||
	ap_fail "no events received counted"
# grep -c reads to the end: a `grep -q` that stops at the first line would
# make its writer fail under pipefail, and this check pass.
if [ "$(grep -v '^#' "$AP_TMP/metrics.txt" | grep -vc '^acme_apiprof_')" != 0 ]; then
	ap_fail "a metric without the namespace prefix"
fi
promtool check metrics <"$AP_TMP/metrics.txt" >"$AP_TMP/promtool.log" 2>&1 ||
	ap_fail "promtool check metrics: $(cat "$AP_TMP/promtool.log")"
ap_log "promtool check metrics: ok ($(wc -l <"$AP_TMP/metrics.txt") lines)"

# nginx, two workers: 60 requests on 60 connections, 8 at a time, so both
# workers take some; the series is their exact sum.
NGINX_SERVICE=$AP_SERVICE-nginx
AP_SERVICE=$NGINX_SERVICE ap_start_nginx nginx 1
N_NGINX=60
seq $N_NGINX | xargs -P 8 -I{} curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$AP_PORT/api/users/{}" ||
	ap_fail "nginx traffic failed"
want="acme_apiprof_http_requests_total{service=\"$NGINX_SERVICE\",method=\"GET\",route=\"/api/users/{id}\",status=\"200\"} $N_NGINX"
for i in $(seq 50); do
	M >"$AP_TMP/metrics2.txt" || ap_fail "GET /metrics failed"
	grep -qxF "$want" "$AP_TMP/metrics2.txt" && break
	sleep 0.2
done
grep -qxF "$want" "$AP_TMP/metrics2.txt" || ap_fail "no line: $want ($(grep "$NGINX_SERVICE" "$AP_TMP/metrics2.txt" | grep requests_total))"
served=$(curl -sf --max-time 10 -H "Authorization: Bearer $TOKEN" "$AP_URL/api/v1/status" |
	jq --arg s "$NGINX_SERVICE" '[.processes[] | select(.service == $s and .requests > 0)] | length')
ap_log "nginx: $N_NGINX requests counted once each, served by $served worker processes"

# A real Prometheus scrapes us every second.
mkdir -p "$AP_TMP/prom"
printf '%s' "$TOKEN" >"$AP_TMP/prom/token"
cat >"$AP_TMP/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: apiprof
    authorization:
      credentials_file: $AP_TMP/prom/token
    static_configs:
      - targets: ['127.0.0.1:$AP_HTTP_PORT']
EOF
ap_start_prometheus "$AP_TMP/prom/prometheus.yml"
P=$AP_PROM_URL

promql() { curl -sf --max-time 10 "$P/api/v1/query" --data-urlencode "query=$1"; }
Q="sum(acme_apiprof_http_requests_total{service=\"$AP_SERVICE\",route=\"/hello\"})"
got=""
for i in $(seq 100); do
	got=$(promql "$Q" | jq -r '.data.result[0].value[1] // empty')
	[ -n "$got" ] && break
	sleep 0.3
done
ap_assert_eq "PromQL $Q" "$got" "$N_HELLO"
health=$(curl -sf --max-time 10 "$P/api/v1/targets" | jq -r '.data.activeTargets[0].health')
ap_assert_eq "Prometheus target health" "$health" "up"
got=$(promql "sum(acme_apiprof_http_errors_total{service=\"$AP_SERVICE\"})" |
	jq -r '.data.result[0].value[1] // empty')
ap_assert_eq "PromQL error count" "$got" "$N_ERROR"
got=$(promql "sum(acme_apiprof_http_requests_total{service=\"$NGINX_SERVICE\"})" |
	jq -r '.data.result[0].value[1] // empty')
ap_assert_eq "PromQL nginx request count (both workers)" "$got" "$N_NGINX"
# Histograms work in PromQL: the median of /hello lies within our buckets.
q50=$(promql "histogram_quantile(0.5, sum by (le) (acme_apiprof_http_request_duration_seconds_bucket{service=\"$AP_SERVICE\",route=\"/hello\"}))" |
	jq -r '.data.result[0].value[1] // empty')
python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if 0 < v <= 1 else 1)" "$q50" ||
	ap_fail "histogram_quantile gave '$q50'"
ap_log "Prometheus at $P: requests $N_HELLO, errors $N_ERROR, p50 ${q50}s"
