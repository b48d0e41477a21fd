#!/bin/bash
# Two copies of libsqlite3 in one process (tests/servers/twocopies.c): the
# system library copied twice under other sonames (libsqliteA.so.0,
# libsqliteB.so.0), two modules each linked against its own copy and
# dlopen()ed RTLD_LOCAL. Each module's calls must reach its own copy under
# the preload as without it: the program's output (each copy's log callback
# names the copy that prepared a statement) is byte for byte the same, it
# exits 0, and the statements of both copies are captured, attributed to
# their HTTP requests. Module B runs first, before copy A is initialised: a
# preload that sent B's calls to copy A (the first one loaded) crashed here.
# Then module B and copy B are dlclosed, and a fourth copy (D, unused) and
# module C with copy C are loaded into the freed addresses: C's calls must
# reach copy C, not what the preload had cached for those addresses.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/twolib.sh"

AP_TWO=$AP_BUILDDIR/tests/servers/twocopies
ap_require cc readelf curl jq python3
ap_require_build "$AP_TWO"

# ---- the copies and their modules ------------------------------------------
ap_two_copies libsqlite3.so.0 "$AP_SRCDIR/tests/servers/twosqlite_mod.c" t
D=$AP_TWO_DIR

# ---- the same output with and without the preload ---------------------------
ap_start_collector
"$AP_TWO" "$D" "$D" >"$AP_TMP/plain.out" 2>"$AP_TMP/plain.err" ||
	ap_fail "twosqlite failed without the preload: $(cat "$AP_TMP/plain.err")"
grep -c '\[log A 1 near "SELEC"' "$AP_TMP/plain.out" | grep -qx 2 &&
	grep -c '\[log B 1 near "SELEC"' "$AP_TMP/plain.out" | grep -qx 2 &&
	grep -c '^C: .*\[log C 1 near "SELEC"' "$AP_TMP/plain.out" | grep -qx 1 ||
	ap_fail "without the preload, each copy did not log its own two errors: $(cat "$AP_TMP/plain.out")"
rm -f "$D"/*.db
env LD_PRELOAD="$(ap_preload)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE=twosqlite-once \
	"$AP_TWO" "$D" "$D" >"$AP_TMP/preloaded.out" 2>"$AP_TMP/preloaded.err"
rc=$?
ap_assert_eq "twosqlite's exit status under the preload" "$rc" 0
ap_assert_eq "twosqlite's output under the preload (each copy logs its own module's errors)" \
	"$(cat "$AP_TMP/preloaded.out")" "$(cat "$AP_TMP/plain.out")"
rm -f "$D"/*.db

# ---- the same as a server: statements attached to requests -----------------
ap_two_serve "$D"
# Six statements per run: CREATE (sqlite3_exec), 3 x INSERT, SELECT, and
# the prepare that fails. The three INSERTs are an N+1 at the default
# threshold (3): every request is flagged.
ap_expect_sql <<EOF
GET /a 1 6 1
GET /b 2 12 2
GET /ab 1 12 1
EOF
ap_assert_eq "sql_count of each GET /b request" "$(ap_request_sql GET /b)" "6 6"
detail=$(ap_request_detail "$(ap_requests /ab | jq -r '.[0].id')")
printf '%s\n' "$detail" >"$AP_TMP/ab-detail.json"
ap_assert_jq "GET /ab detail: copy B's six statements (table tb), then copy A's (table ta)" \
	'[.queries[].sql | capture(" (?<t>t[ab])( |$)").t] == ["tb","tb","tb","tb","tb","tb","ta","ta","ta","ta","ta","ta"] and
	 ([.queries[] | select(.sql | test("^SELEC oops"; "i"))] | length == 2) and
	 ([.queries[] | select(.sql | test("^INSERT INTO tb"; "i"))] | length == 3 and all(.[]; .rows == 1)) and
	 ([.queries[] | select(.sql | test("^SELECT count"; "i"))] | length == 2 and all(.[]; .rows == 1))' \
	"$detail"

ap_two_shapes t 1 twosqlite-once
ap_log "PASS"
