#!/bin/bash
# scripts/demo.sh --once, on the build under test: it must exit 0 after
# printing the endpoint table with non-zero counts for the routes it drove,
# and leave no process or temp dir behind.
. "$(dirname "$0")/lib.sh"

ap_require curl jq nginx
ap_require_build "$AP_CLI"

demo=$AP_SRCDIR/scripts/demo.sh
[ -x "$demo" ] || ap_fail "$demo is missing or not executable"

export TMPDIR=$AP_TMP   # the demo's temp dir goes inside ours: we can check it is removed
"$demo" --once --build-dir "$AP_BUILDDIR" >"$AP_TMP/demo.log" 2>&1
rc=$?
cat "$AP_TMP/demo.log"
ap_assert_eq "demo.sh --once exit code" "$rc" 0

# The table: a header, then rows "demo-nginx METHOD ROUTE COUNT ...".
grep -Eq '^SERVICE +METHOD +ROUTE +COUNT' "$AP_TMP/demo.log" || ap_fail "no endpoint table header in the demo's output"
row_count() {
	awk -v m="$1" -v r="$2" '$1 == "demo-nginx" && $2 == m && $3 == r {print $4}' "$AP_TMP/demo.log" | tail -n 1
}
for route in '/api/users/{id}' /api/items /static/logo.png /api/fail /nowhere; do
	c=$(row_count GET "$route")
	[ -n "$c" ] && [ "$c" -gt 0 ] 2>/dev/null || ap_fail "demo table: no non-zero count for GET $route (got '$c')"
	ap_log "ok: demo table GET $route count $c"
done
grep -q 'http://127.0.0.1:[0-9]*/api/v1/endpoints' "$AP_TMP/demo.log" || ap_fail "the demo did not print the API URLs"

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
