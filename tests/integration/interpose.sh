#!/bin/bash
# A library interposed on one hooked SQL function alone (another
# LD_PRELOAD wrapping PQexec, a test stub) is reached under the preload as
# without it: the dynamic linker binds each name on its own, and the
# preload, which must call what its caller would have reached, finds each
# function of the global scope on its own too (preload/libcopy.c). A
# preload that took every function of a library from the object defining
# the first name of its table bypassed such a library, or, when it defined
# that first name, found no whole library there and failed every call.
#
# tests/servers/interposed (libsqlite3, libpq) and interposed_my
# (libmariadb, built here) call the library straight, from the global
# scope: seven statements, all naming the table ipx, through two functions
# (sqlite3_prepare_v2 and _v3; PQexec and PQexecParams; mysql_query and
# mysql_real_query). tests/servers/interposer.c, built twice, defines one
# function of each library and logs each call's SQL: interposer_first.so
# the first name of the preload's table (sqlite3_prepare_v2, PQexec,
# mysql_query), interposer_later.so a later one (sqlite3_prepare_v3,
# PQexecParams, mysql_real_query). For each library and each interposer,
# with LD_PRELOAD="libapiprof.so interposer.so" and "interposer.so
# libapiprof.so", a live collector, a real PostgreSQL and MariaDB:
#  - the program's output is byte for byte that of a run without any
#    preload, and it exits 0;
#  - the interposer's log is byte for byte its log without the preload,
#    which holds every call of its function naming ipx (the library's own
#    calls through its PLT included: libsqlite3's schema read, libmariadb's
#    mysql_query calling mysql_real_query);
#  - the collector counted exactly the seven statements for the run's
#    service, none failed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

IP_PROG=$AP_BUILDDIR/tests/servers/interposed
IP_LIBS=$AP_BUILDDIR/tests/servers/.libs
IP_MY=$AP_TMP/interposed_my
ap_require cc jq curl sqlite3
ap_require_pg
ap_require_mariadb
ap_require_build "$IP_PROG" "$IP_LIBS/interposer_first.so" "$IP_LIBS/interposer_later.so"

# The MariaDB client has no development package here: linked against the
# system library's file, as twomysql.sh's modules are.
IP_LIBMY=$(cc -print-file-name=libmariadb.so.3)
[ -f "$IP_LIBMY" ] || ap_fail "no libmariadb.so.3 found by cc -print-file-name ($IP_LIBMY)"
cc -O2 -Wall -o "$IP_MY" "$AP_SRCDIR/tests/servers/interposed_my.c" "$IP_LIBMY" 2>"$AP_TMP/cc.log" ||
	ap_fail "building interposed_my failed: $(cat "$AP_TMP/cc.log")"

ap_start_collector
ap_start_pg pg interpose
ap_start_mariadb my interpose ipu ipu-pw

# The program's statements: the 1st, 3rd, 5th and 7th through the first
# function, the others through the later one (interposed.c,
# interposed_my.c). Each interposer sees its function's calls naming ipx:
# the program's, and for mysql_real_query, also those of libmariadb's
# mysql_query, which calls it through the library's PLT (3 + 4).
IP_N=7
declare -A IP_FN=([sqlite.first]=sqlite3_prepare_v2 [sqlite.later]=sqlite3_prepare_v3
	[pq.first]=PQexec [pq.later]=PQexecParams [mysql.first]=mysql_query
	[mysql.later]=mysql_real_query)
declare -A IP_CALLS=([sqlite.first]=4 [sqlite.later]=3 [pq.first]=4 [pq.later]=3
	[mysql.first]=4 [mysql.later]=7)
IP_SERVICES=()

# ip_run LIB NAME PRELOAD [SERVICE] : runs the program of LIB (sqlite, pq
# or mysql; for sqlite on a database made afresh, holding the empty table
# ipx) with LD_PRELOAD=PRELOAD (may be empty), and with the collector's
# socket and SERVICE when given. The interposer's log goes to
# $AP_TMP/NAME.ilog, the program's output to NAME.out (stderr NAME.log).
# Fails the test unless it exits 0.
ip_run() {
	local lib=$1 name=$2 envs=(LD_PRELOAD="$3") cmd rc
	case $lib in
	sqlite) cmd=("$IP_PROG" sqlite "$AP_TMP/ip.db") ;;
	pq) cmd=("$IP_PROG" pq "host=127.0.0.1 port=$AP_PG_PORT dbname=interpose user=postgres connect_timeout=10") ;;
	mysql) cmd=("$IP_MY" "$AP_MY_HOST:$AP_MY_PORT:ipu:ipu-pw:interpose") ;;
	esac
	[ $# -gt 3 ] && envs+=(APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$4"
		APIPROF_DEBUG="${AP_DEBUG:-0}")
	if [ "$lib" = sqlite ]; then
		rm -f "$AP_TMP/ip.db"
		sqlite3 "$AP_TMP/ip.db" "CREATE TABLE ipx (k INTEGER PRIMARY KEY, v TEXT)" ||
			ap_fail "sqlite3 could not make $AP_TMP/ip.db"
	fi
	: >"$AP_TMP/$name.ilog"
	env "${envs[@]}" INTERPOSER_LOG="$AP_TMP/$name.ilog" "${cmd[@]}" \
		>"$AP_TMP/$name.out" 2>"$AP_TMP/$name.log"
	rc=$?
	[ "$rc" = 0 ] || ap_fail "$name: the $lib program exited $rc: $(cat "$AP_TMP/$name.out")"
}

# ip_same WHAT FILE REFERENCE : the two files hold the same bytes.
ip_same() {
	cmp -s "$2" "$3" || ap_fail "$1 ($(wc -l <"$2") lines) differs from $(basename "$3") \
($(wc -l <"$3") lines): $(diff "$3" "$2")"
	ap_log "ok: $1 ($(wc -l <"$2") lines) as $(basename "$3")"
}

TAB=$'\t'
for lib in sqlite pq mysql; do
	ip_run "$lib" "$lib-plain" ""
	ap_assert_eq "$lib: statements run without any preload" \
		"$(grep -c '^[0-9] [a-zA-Z0-9_]*: ' "$AP_TMP/$lib-plain.out")" "$IP_N"
	for w in first later; do
		so=$IP_LIBS/interposer_$w.so fn=${IP_FN[$lib.$w]} n=${IP_CALLS[$lib.$w]}
		# The host's behaviour: the interposer alone.
		ip_run "$lib" "$lib-$w-alone" "$so"
		ip_same "$lib, $fn interposed alone: the program's output" \
			"$AP_TMP/$lib-$w-alone.out" "$AP_TMP/$lib-plain.out"
		ap_assert_eq "$lib, $fn interposed alone: the program's calls it saw" \
			"$(grep -c "^$fn$TAB.*ipx" "$AP_TMP/$lib-$w-alone.ilog")" "$n"
		for order in ap-ip ip-ap; do
			if [ "$order" = ap-ip ]; then
				pre="$(ap_preload_env) $so"
			else
				pre="${AP_PRELOAD_FIRST:+$AP_PRELOAD_FIRST }$so $(ap_preload)"
			fi
			svc=it-interpose-$lib-$w-$order
			IP_SERVICES+=("$svc")
			ip_run "$lib" "$svc" "$pre" "$svc"
			ip_same "$svc: the program's output" "$AP_TMP/$svc.out" "$AP_TMP/$lib-plain.out"
			ip_same "$svc: the $fn interposer's log" "$AP_TMP/$svc.ilog" "$AP_TMP/$lib-$w-alone.ilog"
		done
	done
done

# ---- the collector counted each run's statements, exactly -------------------
# Each run's events are sent by its exit: wait until every service has its
# statements (30 s at most), settle 1.5 s, then compare exactly.
ip_totals() {
	ap_api /api/v1/queries | jq -r '[.queries[] | select(.service | startswith("it-interpose-"))] |
		group_by(.service)[] | "\(.[0].service) \(map(.calls) | add) \(map(.errors) | add)"' | sort
}
want=$(for s in "${IP_SERVICES[@]}"; do echo "$s $IP_N 0"; done | sort)
for _ in $(seq 150); do
	[ "$(ip_totals | awk -v n="$IP_N" '$2 >= n' | wc -l)" -ge "${#IP_SERVICES[@]}" ] && break
	sleep 0.2
done
sleep 1.5
ap_assert_eq "statements and failures per service in /api/v1/queries" \
	"$(ip_totals | paste -sd ';')" "$(paste -sd ';' <<<"$want")"
ap_log "PASS"
