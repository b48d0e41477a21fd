# tests/integration/applib.sh - helpers for the tests of Python app servers
# serving the apps of tests/servers/ (uvicorn.sh: uvicorn_app.py; gevent.sh:
# gevent_app.py), sourced after lib.sh. The apps share the routes these
# helpers use: POST /upload (answers "got <bytes>"), GET /slow?ms=N&n=K,
# /sql/beside?n=K and /sql/pair (rendezvous of requests in one process, see
# the apps), and the same 4 sqlite3 statements on the authors table.
# lighttpd.sh uses its stored-request helpers (ap_reqlen, ap_fetch_reqs,
# ap_rq, ap_expect_reqs), which serve any server's test.

# ap_reqlen "METHOD TARGET" : the bytes of ap_raw's request for it.
ap_reqlen() { printf '%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: apiprof-test\r\n\r\n' "$1" | wc -c; }

# ap_post_uploads WHAT BASE OUT : three POSTs of $AP_TMP/upload.bin (1 MiB)
# to BASE/upload, plain, after a 100 Continue and chunked, one connection
# each; appends curl's "code size_request size_upload size_header
# size_download" per POST to OUT; each answer must be "got 1048576".
ap_post_uploads() {
	local what=$1 b=$2 out=$3 h
	for h in 'Expect:' 'Expect: 100-continue' 'Transfer-Encoding: chunked'; do
		curl -s --max-time 20 -o "$out.body" \
			-w '%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download}\n' \
			-H "$h" --data-binary @"$AP_TMP/upload.bin" "$b/upload" >>"$out" ||
			ap_fail "$what: POST /upload ($h) failed"
		ap_assert_eq "$what: POST /upload ($h): the app read the whole body" "$(cat "$out.body")" "got 1048576"
	done
}

# ap_meet_traffic WHAT BASE OUT : six GET /slow?ms=400&n=6, a GET
# /sql/beside?n=6 and two GET /sql/pair at once on one process's server
# (BASE); all must answer 200. Clients' statuses in OUT-*.out.
ap_meet_traffic() {
	local what=$1 b=$2 o=$3 i p pids=""
	for i in 1 2 3 4 5 6; do
		curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$b/slow?ms=400&n=6" >"$o-slow$i.out" &
		pids="$pids $!"
	done
	curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$b/sql/beside?n=6" >"$o-beside.out" &
	pids="$pids $!"
	for p in 1 2; do
		curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' "$b/sql/pair" >"$o-pair$p.out" &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p" || ap_fail "$what: a concurrent request failed"
	done
	ap_assert_eq "$what: six /slow, /sql/beside, two /sql/pair at once: statuses" \
		"$(cat "$o"-slow?.out "$o-beside.out" "$o"-pair?.out | tr '\n' ' ')" "200 200 200 200 200 200 200 200 200 "
}

# ap_fetch_reqs FILE : this service's stored requests (at most 1000) into
# FILE as {"requests": [...]}, which ap_rq then reads (AP_REQS). Call it
# once every request has arrived (after ap_expect_counts).
ap_fetch_reqs() {
	AP_REQS=$1
	ap_api /api/v1/requests --data-urlencode "service=$AP_SERVICE" --data-urlencode limit=1000 |
		jq --arg s "$AP_SERVICE" '{requests: [.requests[] | select(.service == $s)]}' >"$AP_REQS" ||
		ap_fail "reading the stored requests failed"
}

# ap_rq PATH [METHOD] : the fetched requests of PATH (exact), as a JSON
# array, oldest first: by start, then by id (the order their events came
# in, so by end within one process; several processes' events interleave).
ap_rq() {
	jq --arg p "$1" --arg m "${2:-}" \
		'[.requests[] | select(.path == $p and ($m == "" or .method == $m))] | sort_by([.ts, .id])' "$AP_REQS"
}

# ap_expect_reqs PATH METHOD N STATUS BYTES_IN BYTES_OUT : N fetched
# requests of PATH and METHOD, each with that status and those bytes, none
# aborted.
ap_expect_reqs() {
	ap_assert_jq "$AP_SERVICE: $2 $1: $3 requests, status $4, bytes in $5, out $6" \
		"length == $3 and all(.[]; .status == $4 and .bytes_in == $5 and .bytes_out == $6 and (.aborted | not))" \
		"$(ap_rq "$1" "$2")"
}

# ap_check_uploads OUT : the fetched POST /upload requests, oldest first,
# with the statuses and bytes in and out of ap_post_uploads' OUT.
ap_check_uploads() {
	ap_assert_jq "$AP_SERVICE: POST /upload: bytes in and out as curl sent and received them, oldest first" \
		"[.[] | [.status, .bytes_in, .bytes_out]] == $(awk '{printf "%s[%s, %s, %s]", (NR > 1 ? ", " : "["), $1, $2 + $3, $4 + $5} END {print "]"}' "$1")" \
		"$(ap_rq /upload POST)"
}

# ap_check_slow MIN_MS : the six fetched GET /slow of ap_meet_traffic: each
# MIN_MS to 5 s, one pid and one thread, all six in flight at one instant
# (the last start before the first end).
ap_check_slow() {
	local slow
	slow=$(ap_rq /slow GET)
	ap_assert_jq "$AP_SERVICE: GET /slow: $1 ms to 5 s each, one pid and one thread" \
		"length == 6 and all(.[]; .status == 200 and .duration_ms >= $1 and .duration_ms < 5000) and
		 ([.[] | \"\\(.pid)/\\(.tid)\"] | unique | length) == 1" "$slow"
	ap_assert_jq "$AP_SERVICE: GET /slow: all six in flight at once (the last start before the first end)" \
		'[.[] | .ts | capture("^(?<s>[^.]+)\\.(?<ms>[0-9]+)Z$") | ((.s + "Z") | fromdate) * 1000 + (.ms | tonumber)] as $start |
		 [range(length) as $i | $start[$i] + .[$i].duration_ms] as $stop | ($start | max) < ($stop | min)' "$slow"
}

# ap_check_author_queries C : /api/v1/queries of this service: the apps' 4
# statements, C in all, attributed or not (a quarter the author ids, the
# rest an author by id).
ap_check_author_queries() {
	local json
	json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
	ap_check_jq "$AP_SERVICE: /api/v1/queries: every statement ($1), attributed or not" "$json" \
		'[.queries[] | select(.service == $s) | {sql, calls}] | sort_by(.sql) ==
		 [{"sql": "SELECT id FROM authors ORDER BY id", "calls": ($c / 4)},
		  {"sql": "SELECT name FROM authors WHERE id = ?", "calls": ($c / 4 * 3)}]' \
		--arg s "$AP_SERVICE" --argjson c "$1"
}
