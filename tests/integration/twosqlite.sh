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
ap_two_compare "$D" twosqlite-once '\[log @ 1 near "SELEC"' rm -f "$D"/A.db "$D"/B.db "$D"/C.db

# ---- the same as a server: statements attached to requests -----------------
ap_two_serve "$D"
# Six statements per run: CREATE (sqlite3_exec), 3 x INSERT, SELECT, and
# the prepare that fails; all six name the module's table.
ap_two_requests t 6 6
ap_assert_eq "sql_count of each GET /b request" "$(ap_request_sql GET /b)" "6 6"
ap_assert_jq "GET /ab detail: both copies' failed prepares, both SELECTs read one row" \
	'([.queries[] | select(.sql | test("^SELEC oops"; "i"))] | length == 2) and
	 ([.queries[] | select(.sql | test("^SELECT count"; "i"))] | length == 2 and all(.[]; .rows == 1))' \
	"$(cat "$AP_TMP/ab-detail.json")"

ap_two_shapes t 1 twosqlite-once
ap_log "PASS"
