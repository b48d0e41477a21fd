#!/bin/bash
# Two copies of libpq in one process (tests/servers/twocopies.c with
# twopq_mod.c): the system libpq.so.5 copied under other sonames (libpA.so.5,
# libpB.so.5, ...), each with its message "number of parameters must be
# between" marked with its letter ("mustAbe"), two modules each linked
# against its own copy and dlopen()ed RTLD_LOCAL. Each module's calls must
# reach its own copy under the preload as without it: the program's output
# (each module's line quotes the message its copy wrote) is byte for byte
# the same, it exits 0, and the statements of both copies are captured,
# attributed to their HTTP requests. A preload that sent module B's calls to
# copy A (the first one loaded) made B's line say "mustAbe". Then module B
# and copy B are dlclosed and module C with copy C loaded: C's calls must
# reach copy C.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"
. "$(dirname "$0")/twolib.sh"

AP_TWO=$AP_BUILDDIR/tests/servers/twocopies
ap_require cc readelf pkg-config curl jq python3
ap_require_pg
ap_require_build "$AP_TWO"

# ---- the copies and their modules ------------------------------------------
AP_TWO_CFLAGS=$(pkg-config --cflags libpq) || ap_fail "pkg-config knows no libpq (libpq-dev)"
ap_two_copies libpq.so.5 "$AP_SRCDIR/tests/servers/twopq_mod.c" p \
	"parameters must be between" "parameters must@be between"
D=$AP_TWO_DIR

ap_start_collector
ap_start_pg pg twopq
CI="host=127.0.0.1 port=$AP_PG_PORT dbname=twopq user=postgres connect_timeout=10"

# ---- the same output with and without the preload ---------------------------
ap_two_compare "$CI" twopq-once 'must@be between' ap_psql twopq -c "DROP TABLE pa, pb, pc"

# ---- the same as a server: statements attached to requests -----------------
ap_two_serve "$CI"
# Eight statements per run: CREATE, 3 x INSERT, the prepare, the prepared
# SELECT (six naming the module's table), the asynchronous SELECT, and the
# call libpq refused.
ap_two_requests p 6 8

ap_two_shapes p 2 twopq-once
ap_log "PASS"
