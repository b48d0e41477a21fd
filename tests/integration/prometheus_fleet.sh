#!/bin/bash
# Prometheus across hosts, with the files shipped in contrib/prometheus/:
#  1. promtool accepts the configuration and the recording rules, and the
#     rules' unit tests (fleet rate, error ratio, p95 from summed buckets,
#     with known inputs and exact expected values) pass.
#  2. Live: two collectors, each with a preloaded server behind it (two
#     "hosts" of one service), scraped by a real Prometheus started from the
#     shipped configuration (targets, token file and intervals rewritten) and
#     evaluating the shipped rules. Prometheus' sum over both collectors is
#     the exact number of requests sent, and each recorded fleet series is
#     one series per service (the hosts aggregated away) with the expected
#     value: both hosts fail 1 request in 4, so the fleet error ratio is
#     exactly 0.25.
. "$(dirname "$0")/lib.sh"

ap_require curl jq promtool prometheus
ap_require_build "$AP_THREADED"

CONTRIB=$AP_SRCDIR/contrib/prometheus
TOKEN=it-fleet-secret

# ---- 1. promtool ------------------------------------------------------------
mkdir -p "$AP_TMP/prom"
printf '%s' "$TOKEN" >"$AP_TMP/prom/token"
cp "$CONTRIB/apiprof-rules.yml" "$CONTRIB/apiprof-rules.test.yml" "$AP_TMP/prom/"
# check config resolves rule_files and the token file: check a copy that
# points at a token file that exists, otherwise unchanged.
sed "s|/etc/prometheus/apiprof.token|$AP_TMP/prom/token|" "$CONTRIB/prometheus.yml" \
	>"$AP_TMP/prom/shipped.yml"
promtool check config "$AP_TMP/prom/shipped.yml" >"$AP_TMP/promtool.log" 2>&1 ||
	ap_fail "promtool check config: $(cat "$AP_TMP/promtool.log")"
promtool check rules "$CONTRIB/apiprof-rules.yml" >>"$AP_TMP/promtool.log" 2>&1 ||
	ap_fail "promtool check rules: $(cat "$AP_TMP/promtool.log")"
(cd "$AP_TMP/prom" && promtool test rules apiprof-rules.test.yml) >>"$AP_TMP/promtool.log" 2>&1 ||
	ap_fail "promtool test rules: $(cat "$AP_TMP/promtool.log")"
grep -q 'SUCCESS: 6 rules found' "$AP_TMP/promtool.log" || ap_fail "not 6 rules: $(cat "$AP_TMP/promtool.log")"
ap_log "promtool: config, rules and the rules' unit tests pass"

# ---- 2. two collectors, one Prometheus --------------------------------------
echo "auth_token = $TOKEN" >"$AP_TMP/apiprof.conf"
# host N: its own socket, database, HTTP port, and a threaded server
start_host() {
	local n=$1 port
	port=$(ap_free_port)
	HTTP[$n]=$port
	ap_bg "collector$n" "$AP_COLLECTOR" --config "$AP_TMP/apiprof.conf" \
		--socket "$AP_TMP/host$n.sock" --http "127.0.0.1:$port" --db "$AP_TMP/host$n.db"
	local i
	for i in $(seq 300); do
		curl -sf --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -sf --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null || ap_fail "collector $n did not start"
	AP_SOCK=$AP_TMP/host$n.sock ap_start_threaded "server$n"
	SRV[$n]=http://127.0.0.1:$AP_PORT
}
declare -a HTTP SRV
start_host 1
start_host 2

# The shipped configuration with this test's targets, token and 1 s intervals.
sed -e "s|/etc/prometheus/apiprof.token|$AP_TMP/prom/token|" \
	-e 's|scrape_interval: 15s|scrape_interval: 1s|' \
	-e 's|evaluation_interval: 15s|evaluation_interval: 1s|' \
	-e "s|web1.example.com:9747|127.0.0.1:${HTTP[1]}|" \
	-e "s|web2.example.com:9747|127.0.0.1:${HTTP[2]}|" \
	-e '/web3.example.com:9747/d' \
	"$CONTRIB/prometheus.yml" >"$AP_TMP/prom/prometheus.yml"
grep -q "127.0.0.1:${HTTP[2]}" "$AP_TMP/prom/prometheus.yml" || ap_fail "could not rewrite the shipped targets"
ap_start_prometheus "$AP_TMP/prom/prometheus.yml"
P=$AP_PROM_URL

promql() { curl -sf --max-time 10 "$P/api/v1/query" --data-urlencode "query=$1"; }
# Waits until the PromQL query's first value is $2.
wait_value() {
	local got="" i
	for i in $(seq 100); do
		got=$(promql "$1" | jq -r '.data.result[0].value[1] // empty')
		[ "$got" = "$2" ] && return 0
		sleep 0.3
	done
	ap_fail "PromQL $1: '$got', expected $2"
}
# N good and E failing requests to host h.
traffic() {
	local h=$1 good=$2 bad=$3
	ap_curl_many "$AP_TMP/t$h.out" $(for i in $(seq "$good"); do printf '%s ' "${SRV[$h]}/hello"; done) \
		$(for i in $(seq "$bad"); do printf '%s ' "${SRV[$h]}/error"; done)
}
TOTAL="sum(apiprof_http_requests_total{service=\"$AP_SERVICE\"})"

# Rates need each counter's series to exist before the traffic they
# measure: a first round (3 + 1 per host) creates them; once Prometheus has
# scraped it, the measured round (30 + 10 per host) follows. Each series
# then grows tenfold its first value, so rate()'s extrapolation treats all
# of a host's series alike and the error ratio is exactly 1 in 4.
traffic 1 3 1
traffic 2 3 1
wait_value "$TOTAL" 8
sleep 1.5
traffic 1 30 10
traffic 2 30 10
wait_value "$TOTAL" 88
wait_value "count(up{job=\"apiprof\"} == 1)" 2
ap_log "Prometheus sums both collectors exactly: 88 requests"
for h in 1 2; do
	wait_value "sum(apiprof_http_requests_total{service=\"$AP_SERVICE\",instance=\"127.0.0.1:${HTTP[$h]}\"})" 44
done

# The recorded series, once evaluated after the last scrape: one per service.
RATIO=service:apiprof_http_errors:ratio_rate5m
for i in $(seq 50); do
	got=$(promql "$RATIO{service=\"$AP_SERVICE\"}" | jq -r '.data.result[0].value[1] // empty')
	[ -n "$got" ] && awk -v v="$got" 'BEGIN { exit !(v > 0.2499999 && v < 0.2500001) }' && break
	sleep 0.3
done
awk -v v="$got" 'BEGIN { exit !(v > 0.2499999 && v < 0.2500001) }' </dev/null ||
	ap_fail "$RATIO: '$got', expected 0.25"
for rule in service:apiprof_http_requests:rate5m service:apiprof_http_errors:ratio_rate5m \
	service:apiprof_http_request_duration_seconds:p95_5m; do
	res=$(promql "$rule{service=\"$AP_SERVICE\"}") || ap_fail "query $rule"
	ap_assert_eq "series of $rule" "$(jq '.data.result | length' <<<"$res")" 1
	ap_assert_eq "labels of $rule" "$(jq -c '.data.result[0].metric | del(.__name__) | keys' <<<"$res")" '["service"]'
done
n=$(promql "service_route:apiprof_http_requests:rate5m{service=\"$AP_SERVICE\"}" | jq '.data.result | length')
ap_assert_eq "routes in service_route:apiprof_http_requests:rate5m" "$n" 2
rate=$(promql "service:apiprof_http_requests:rate5m{service=\"$AP_SERVICE\"}" | jq -r '.data.result[0].value[1]')
p95=$(promql "service:apiprof_http_request_duration_seconds:p95_5m{service=\"$AP_SERVICE\"}" | jq -r '.data.result[0].value[1]')
awk -v r="$rate" -v p="$p95" 'BEGIN { exit !(r > 0 && p > 0 && p <= 10) }' </dev/null ||
	ap_fail "recorded rate '$rate' or p95 '$p95' out of range"
ap_log "ok: fleet rate ${rate}/s, error ratio $got, p95 ${p95}s, one series per service"
