#!/bin/bash
# Two copies of the MariaDB client library in one process
# (tests/servers/twocopies.c with twomy_mod.c): the system libmariadb.so.3
# copied under other sonames (libmariadA.so.3, libmariadB.so.3, ...), each
# with its message "Commands out of sync; you" marked with its letter
# ("syncA you"), two modules each linked against its own copy and dlopen()ed
# RTLD_LOCAL. Each module's calls must reach its own copy under the preload
# as without it: the program's output (each module's line quotes the
# message its copy wrote) is byte for byte the same, it exits 0, and the
# statements of both copies are captured, attributed to their HTTP
# requests. A preload that sent module B's calls to copy A (the first one
# loaded) made B's line say "syncA" where B's mysql_stmt_execute refuses a
# statement never prepared (the refused "SELECT 2" says "syncB" either way:
# libmariadb finds that error through the connection's own method table).
# Then module B and copy B are dlclosed and module C with copy C loaded:
# C's calls must reach copy C.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/twolib.sh"

AP_TWO=$AP_BUILDDIR/tests/servers/twocopies
ap_require cc readelf curl jq python3
ap_require_mariadb
ap_require_build "$AP_TWO"

# ---- the copies and their modules ------------------------------------------
ap_two_copies libmariadb.so.3 "$AP_SRCDIR/tests/servers/twomy_mod.c" m \
	"Commands out of sync; you" "Commands out of sync@ you"

ap_start_collector
ap_start_mariadb my twomy apt apt-pw
ARG="$AP_MY_HOST:$AP_MY_PORT:apt:apt-pw:twomy"

# ---- the same output with and without the preload ---------------------------
ap_two_compare "$ARG" twomysql-once 'unprepared 1: Commands out of sync@ you' ap_mariadb twomy -e "DROP TABLE ma, mb, mc"

# ---- the same as a server: statements attached to requests -----------------
ap_two_serve "$ARG"
# Ten statements per run: the execution of a statement never prepared,
# CREATE, 3 x INSERT, the SELECT count(*) through mysql_query, its prepare
# and execution through the statement API (seven naming the module's
# table), "SELECT 1", and the "SELECT 2" the library refused.
ap_two_requests m 7 10
ap_assert_jq "GET /ab detail: SELECT 1 and SELECT 2 of each copy" \
	'[.queries[] | select(.sql | test("^SELECT \\?$"))] | length == 4' "$(cat "$AP_TMP/ab-detail.json")"

ap_two_shapes m 3 twomysql-once
ap_log "PASS"
