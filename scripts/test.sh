#!/bin/bash
# scripts/test.sh - install what is missing, build, run every test.
#
# On a fresh Debian 12 machine, as root: installs the missing Debian packages
# (build and test dependencies, scripts/lib-deps.sh), runs ./autogen.sh when
# needed, ./configure, make, and `make check` (the Check unit tests and the
# integration tests against real servers, tests/integration/). As another
# user it prints the apt-get line to run when something is missing.
#
# Idempotent and re-runnable from any directory. Exits non-zero on any
# failure, after printing tests/test-suite.log and the failing tests' logs.
#
# Environment: APIPROF_CONFIGURE_FLAGS (extra ./configure flags);
# APIPROF_TEST_SANITIZERS=0 and APIPROF_TEST_TSAN=0 skip the ASan+UBSan and
# the ThreadSanitizer stages; APIPROF_TEST_JOBS=N runs N tests at a time in
# each stage (default 2).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
# shellcheck source=scripts/lib-deps.sh
. "$TOP/scripts/lib-deps.sh"

started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }
# Tests at a time in each stage (make -jN check). Most integration tests
# wait on their servers and on the collector's flushes, so two at a time
# take about two thirds of the time one at a time does on two cores; each
# test has its own ports and temp dir. 1 runs them one at a time.
jobs=${APIPROF_TEST_JOBS:-2}
if [[ ! $jobs =~ ^[0-9]+$ ]] || (( 10#$jobs < 1 )); then
	echo "apiprof: APIPROF_TEST_JOBS must be a positive number, not '$jobs'" >&2
	exit 2
fi
# stage TEXT : a stage's header, with the time since the start.
stage() { echo "==> $* (at $(elapsed))"; }

echo "==> checking Debian packages"
# shellcheck disable=SC2086 # lists of words
ap_deps_ensure $AP_PKGS_BUILD $AP_PKGS_TEST || exit 1

ap_build "$TOP" || exit 1

# Test programs are built in parallel first; the tests themselves run one at
# a time, since the integration tests measure latencies and load the machine.
stage "building the tests"
make -s -j"$(nproc)" check TESTS= >/dev/null || { echo "apiprof: building the tests failed" >&2; exit 1; }

# san_build DIR CONFIGURE-ARG... : a second build of the project, with the
# test programs, in DIR/build from a copy of the sources in DIR/src.
# ./configure in the source tree rules out a second, out-of-tree build of
# it, so the sources are copied first.
san_build() {
	local san=$1 src=$1/src build=$1/build
	shift
	rm -rf "$san"
	mkdir -p "$src" "$build"
	if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$TOP" ls-files -z -co --exclude-standard | (cd "$TOP" && tar -cf - --null -T -) | tar -xf - -C "$src"
	else
		tar -C "$TOP" -cf - --exclude=./.git . | tar -xf - -C "$src"
		(cd "$src" && { [ ! -f Makefile ] || make -s distclean >/dev/null 2>&1; })
	fi || return 1
	(cd "$src" && ./autogen.sh >"$san/autogen.log" 2>&1) || { cat "$san/autogen.log"; return 1; }
	(cd "$build" && "$src/configure" -q "$@") || return 1
	make -s -C "$build" -j"$(nproc)" >"$san/build.log" 2>&1 || { cat "$san/build.log"; return 1; }
	make -s -C "$build" -j"$(nproc)" check TESTS= >"$san/build-tests.log" 2>&1 ||
		{ cat "$san/build-tests.log"; return 1; }
}

# The two extra builds (ASan+UBSan, then ThreadSanitizer) run in one
# background job at nice 19 while the main tests run: those mostly wait on
# servers, and at nice 19 the compilers take only the CPU time the tests
# leave (about 200 s of building taken off the run). Each build leaves
# DIR.out (its output), then DIR.rc (its exit status, written whole by a
# rename); san_build_wait waits for one. The job is a process group of
# its own (set -m), so that a run ending early (a failed test, ^C) ends
# its make and compilers too, not only the subshell driving them.
SAN_DIR=${TMPDIR:-/tmp}/apiprof-sanitizers-$(id -u)
TSAN_DIR=${TMPDIR:-/tmp}/apiprof-tsan-$(id -u)
san_builds_pid=
# san_build_bg DIR CONFIGURE-ARG... : san_build, its status to DIR.rc.
san_build_bg() {
	local rc=0
	san_build "$@" >"$1.out" 2>&1 || rc=$?
	echo "$rc" >"$1.rc.tmp" && mv -f "$1.rc.tmp" "$1.rc"
}
san_builds_start() {
	local asan=${APIPROF_TEST_SANITIZERS:-1} tsan=${APIPROF_TEST_TSAN:-1}
	rm -f "$SAN_DIR.rc" "$SAN_DIR.out" "$TSAN_DIR.rc" "$TSAN_DIR.out"
	[ "$asan" != 0 ] || [ "$tsan" != 0 ] || return 0
	set -m
	(
		renice -n 19 -p "$BASHPID" >/dev/null || true
		[ "$asan" = 0 ] || san_build_bg "$SAN_DIR" --enable-sanitizers
		[ "$tsan" = 0 ] || san_build_bg "$TSAN_DIR" --enable-tsan
	) </dev/null &
	san_builds_pid=$!
	set +m
}
san_builds_stop() {
	[ -z "$san_builds_pid" ] || kill -- "-$san_builds_pid" 2>/dev/null || true
}
trap san_builds_stop EXIT
# san_build_wait DIR : until DIR's background build is done; 0 when it
# succeeded, else its output is shown.
san_build_wait() {
	# Nothing else runs now: the job's make and compilers get their share
	# back (nice 19 beside any other busy process took almost nothing).
	# Lowering a nice value needs root; otherwise they stay as they are.
	if [ ! -f "$1.rc" ] && [ -n "$san_builds_pid" ]; then
		renice -n 0 -g "$san_builds_pid" >/dev/null 2>&1 || true
	fi
	while [ ! -f "$1.rc" ] && kill -0 "$san_builds_pid" 2>/dev/null; do
		sleep 1
	done
	if [ "$(cat "$1.rc" 2>/dev/null)" != 0 ]; then
		cat "$1.out" 2>/dev/null || echo "apiprof: the build in $1 did not finish" >&2
		return 1
	fi
	rm -f "$1.rc" "$1.out"
}
san_builds_start

# print_failures : the summary of tests/test-suite.log, then the whole log of
# every test that failed (the harness's .trs files say which).
print_failures() {
	local trs log
	if [ -f tests/test-suite.log ]; then
		echo "==> tests/test-suite.log"
		sed '/^\.\. contents::/,$d' tests/test-suite.log
	fi
	while IFS= read -r trs; do
		if grep -Eq '^:test-result: (FAIL|ERROR|XPASS)' "$trs"; then
			log=${trs%.trs}.log
			echo "==> failed: ${log#"$TOP"/} ====================================="
			cat "$log" 2>/dev/null || echo "(no log)"
		fi
	done < <(find tests -name '*.trs' | sort)
}

# count NAME : a total from test-suite.log's summary ("# PASS:  5").
count() {
	sed -n "s/^# $1: *\\([0-9]*\\).*/\\1/p" tests/test-suite.log 2>/dev/null | head -n 1
}

stage "running tests"
rc=0
make -j"$jobs" check || rc=$?
pass=$(count PASS); fail=$(count FAIL); err=$(count ERROR); skip=$(count SKIP); xpass=$(count XPASS)
failed=$(( ${fail:-0} + ${err:-0} + ${xpass:-0} ))
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ -z "$pass" ]; then
	print_failures
	echo "==> FAILED after $(elapsed)"
	echo "tests: ${pass:-0} passed, $(( failed > 0 ? failed : 1 )) failed, ${skip:-0} skipped"
	exit 1
fi
# `make install DESTDIR=...` (SPEC section 2): the three installed files are
# where the SPEC puts them, the programs run from there, and the libtool
# archive of the preload is not left behind.
stage "make install DESTDIR=..."
dest=$(mktemp -d "${TMPDIR:-/tmp}/apiprof-install.XXXXXX")
prefix=$(sed -n 's/^prefix = //p' Makefile)
libdir=$(make -s -f Makefile -f - ap-print-libdir <<<$'ap-print-libdir:\n\t@echo $(libdir)' 2>/dev/null || true)
libdir=${libdir:-$prefix/lib}
if ! make -s install DESTDIR="$dest" >"$dest.log" 2>&1; then
	cat "$dest.log"; echo "==> FAILED (make install) after $(elapsed)"; exit 1
fi
for f in "$prefix/bin/apiprof-collector" "$prefix/bin/apiprof" "$libdir/apiprof/libapiprof.so"; do
	[ -e "$dest$f" ] || { echo "apiprof: make install did not install $f" >&2; exit 1; }
done
[ ! -e "$dest$libdir/apiprof/libapiprof.la" ] || { echo "apiprof: make install left libapiprof.la" >&2; exit 1; }
"$dest$prefix/bin/apiprof-collector" --version >/dev/null &&
	"$dest$prefix/bin/apiprof" --version >/dev/null ||
	{ echo "apiprof: the installed programs do not run" >&2; exit 1; }
rm -rf "$dest" "$dest.log"

# The sanitizer configuration (STYLE.md item 17): ASan+UBSan builds of the
# unit tests, and of the collector and client driven by the integration
# tests (which still preload the plain library: an ASan-built one cannot be
# loaded into nginx or Node). APIPROF_TEST_SANITIZERS=0 skips this stage.
sanitizers() {
	local san build
	san=$SAN_DIR
	build=$san/build
	san_build_wait "$san" || return 1
	# The unit tests and the integration tests that drive the collector's
	# own code paths (ingest, SQL analysis, windows, metrics, crashes,
	# profiles, hostile frames and parameters). Left out, to keep the whole
	# run under 20 minutes: those that mostly exercise the (unsanitized)
	# preload in real servers and add no collector path the others lack
	# (node, java, tomcat, jetty, varnish, apache, uwsgi, uvicorn, gevent, haproxy, pyasync, busybox, tls, h2, h2hostile, fpm, exec (the ThreadSanitizer
	# stage runs it), inherit, puma, h2o, lighttpd, reliability, the two Django ones, the two-copies and interposer tests,
	# threaded.sh, hooks.sh, dup.sh and forklocks.sh (the preload's threads,
	# hooks, duplicated descriptors and forks; the ThreadSanitizer stage
	# runs threaded.sh and hooks.sh with its own build),
	# sqlclients.sh (client libraries under the preload), the
	# socket permission test, and the Prometheus fleet test, whose
	# collectors do what prometheus.sh's does), the demo (it preloads its
	# build's library), the browser test, and the fuzzers (their harnesses
	# always build with ASan+UBSan).
	local tests
	tests=$(printf 'ap-print-tests:\n\t@echo $(TESTS)\n' |
		make -s -C "$build/tests" -f Makefile -f - ap-print-tests | tr ' ' '\n' |
		grep -Ev '/(demo|node|java|tomcat|jetty|varnish|apache|uwsgi|uvicorn|gevent|haproxy|pyasync|busybox|tls|inherit|puma|h2o|lighttpd|h2|h2hostile|fpm|exec|reliability|django_pg|django_mysql|dashboard|fuzz|twosqlite|twopq|twomysql|sqlclients|interpose|socketperm|prometheus_fleet|threaded|hooks|dup|forklocks)\.sh$' |
		tr '\n' ' ')
	[ -n "$tests" ] || return 1
	# CK_FORK=no: check_unit runs its 900 checks in one process. Forked,
	# every check's child ran LeakSanitizer over the whole inherited heap
	# at its exit: 178 s instead of 10 s here, for the same leak check
	# (once, at the end).
	ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	APIPROF_TEST_PRELOAD=$TOP/preload/.libs/libapiprof.so CK_FORK=no \
		make -C "$build" -j"$jobs" check TESTS="$tests" ||
		{ (cd "$build" && print_failures); return 1; }
	stage_pass=$(cd "$build" && count PASS)
	rm -rf "$san"
}
# run_stage NAME FUNCTION HEADER : one extra build's stage. A failure ends
# the run with the total so far; FUNCTION's passes (stage_pass) join it.
run_stage() {
	stage "$3"
	stage_pass=0
	if ! "$2"; then
		echo "==> FAILED ($1) after $(elapsed)"
		echo "tests: ${pass:-0} passed, 1 failed, ${skip:-0} skipped"
		exit 1
	fi
	pass=$(( pass + ${stage_pass:-0} ))
}
[ "${APIPROF_TEST_SANITIZERS:-1}" = 0 ] || run_stage "sanitizer build" sanitizers \
	"sanitizer build (ASan+UBSan): unit tests, and the collector under the integration tests"

# The ThreadSanitizer build: the threaded parts of the preload and the
# collector. The unit suites that start the collector's threads (ingest,
# store, window closer, webhook worker, and libmicrohttpd's for the API),
# and the integration tests whose preloaded servers run many threads
# through the preload (threaded.sh), and whose collector ingests, stores
# and answers the API at once under bursts (sqlite.sh), and hooks.sh
# (2 s: its program exits while the shipper thread sends, so the exit
# flush runs beside it), all with the
# TSan-built library, collector and client. (The window closer and webhook
# threads run in the windows and regress unit suites; windows.sh would add
# 45 s to a run that must stay under 20 minutes.) Any
# report fails: halt_on_error, and lib.sh fails a test whose logs hold one.
# tests/tsan.supp names the only suppressions (third-party code).
# APIPROF_TEST_TSAN=0 skips this stage.
tsan() {
	local san build rt setarch=()
	san=$TSAN_DIR
	build=$san/build
	san_build_wait "$san" || return 1
	# The TSan runtime our library links (libtsan.so.N), to preload first
	# into the uninstrumented test servers (tests/integration/lib.sh).
	# (awk reads all of ldd's output: an early exit could fail the pipeline.)
	rt=$(ldd "$build/preload/.libs/libapiprof.so" | awk '/libtsan\.so/ && !rt {rt = $1} END {print rt}')
	[ -n "$rt" ] || { echo "apiprof: the TSan library does not link libtsan" >&2; return 1; }
	# TSan's runtime maps its shadow at fixed addresses, which newer
	# kernels' larger mmap randomisation (vm.mmap_rnd_bits > 28) can
	# collide with ("FATAL: ThreadSanitizer: unexpected memory mapping"):
	# then everything runs without address randomisation, inherited by
	# every process the tests start.
	if ! "$build/collector/apiprof" --version >"$san/probe.log" 2>&1; then
		if grep -q 'unexpected memory mapping' "$san/probe.log" &&
			setarch "$(uname -m)" -R "$build/collector/apiprof" --version >/dev/null 2>&1; then
			setarch=(setarch "$(uname -m)" -R)
			echo "apiprof: TSan needs ASLR off on this kernel: running under setarch -R"
		else
			cat "$san/probe.log"; return 1
		fi
	fi
	TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$TOP/tests/tsan.supp" \
	AP_CHECK_SUITES=store,sqlstore,sqlingest,regress,windows \
	APIPROF_TEST_PRELOAD=$build/preload/.libs/libapiprof.so \
	APIPROF_TEST_PRELOAD_FIRST=$rt \
		"${setarch[@]}" make -C "$build" -j"$jobs" check \
		TESTS="check_unit integration/threaded.sh integration/sqlite.sh integration/hooks.sh integration/exec.sh" ||
		{ (cd "$build" && print_failures); return 1; }
	stage_pass=$(cd "$build" && count PASS)
	rm -rf "$san"
}
[ "${APIPROF_TEST_TSAN:-1}" = 0 ] || run_stage "ThreadSanitizer build" tsan \
	"ThreadSanitizer build: the threaded unit suites, threaded.sh, sqlite.sh, hooks.sh and exec.sh"

if [ "${skip:-0}" -ne 0 ]; then
	echo "==> skipped tests:"
	grep -l '^:test-result: SKIP' $(find tests -name '*.trs') | sed 's/\.trs$//'
fi
echo "==> all tests passed in $(elapsed)"
echo "tests: $pass passed, 0 failed, ${skip:-0} skipped"
