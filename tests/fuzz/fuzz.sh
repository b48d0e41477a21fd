#!/bin/bash
# tests/fuzz/fuzz.sh - builds the libFuzzer harnesses (clang, fuzz.mk) and
# runs each for a bounded time from its seed corpus in tests/fuzz/corpus/.
#
# In `make check` each runs FUZZ_SECONDS (default 4) seconds; `make fuzz`
# runs them longer (FUZZ_SECONDS=300 unless set). FUZZ_TARGETS narrows the
# list ("http sql"). A crash, a sanitizer report, a failed contract check
# (abort) or a timeout (a single input taking more than 10 s) fails the
# test; libFuzzer prints the input, and it is kept in
# $FUZZ_ARTIFACTS (default: the build tree's tests/fuzz/artifacts) to replay
# with `tests/fuzz/bin/fuzz_NAME FILE`. New inputs the fuzzers find go to a
# temporary corpus, never into the source tree.
FUZZ_SECONDS=${FUZZ_SECONDS:-4}
FUZZ_TARGETS=${FUZZ_TARGETS:-http wire sql config api json hpack h2 fcgi}
# Building the harnesses is part of the test's time.
n_targets=$(wc -w <<<"$FUZZ_TARGETS")
export AP_TIMEOUT=${AP_TIMEOUT:-$(( 300 + n_targets * (FUZZ_SECONDS + 15) ))}
# shellcheck source=tests/integration/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration" && pwd)/lib.sh"

# configure looked for clang (APIPROF_HAVE_CLANG, exported by `make check`
# and `make fuzz`): without it the harnesses are skipped, saying why, even
# as root. Run by hand, without the variable, clang is simply required.
case ${APIPROF_HAVE_CLANG-unset} in
yes) ;;
no) ap_skip "configure found no clang: the fuzz harnesses are disabled (apt-get install clang, then run configure again)" ;;
*) [ -z "${APIPROF_TOP_BUILDDIR:-}" ] ||
	ap_fail "APIPROF_HAVE_CLANG is not set: configure did not say whether it found clang" ;;
esac
ap_require clang
OUT=$AP_BUILDDIR/tests/fuzz/bin
ART=${FUZZ_ARTIFACTS:-$AP_BUILDDIR/tests/fuzz/artifacts}
mkdir -p "$OUT" "$ART" || ap_fail "cannot create $OUT"

ap_log "building the harnesses with $(clang --version | head -n 1)"
make -s -j"$(nproc)" -f "$AP_SRCDIR/tests/fuzz/fuzz.mk" SRCDIR="$AP_SRCDIR" \
	BUILDDIR="$AP_BUILDDIR" OUT="$OUT" >"$AP_TMP/build.log" 2>&1 ||
	ap_fail "building the fuzz harnesses failed: $(cat "$AP_TMP/build.log")"

for t in $FUZZ_TARGETS; do
	bin=$OUT/fuzz_$t
	[ -x "$bin" ] || ap_fail "no harness $bin"
	work=$AP_TMP/corpus-$t
	mkdir -p "$work"
	seeds=$AP_SRCDIR/tests/fuzz/corpus/$t
	[ -d "$seeds" ] || ap_fail "no seed corpus $seeds"
	# Leaks are checked per input, except in the stateful harnesses: the
	# collector's aggregate (wire) and libmicrohttpd's and SQLite's threads
	# (api) hold memory across inputs by design, and LeakSanitizer then
	# scans the heap after every input (60 times slower for wire).
	leaks=1
	case $t in wire|api) leaks=0 ;; esac
	start=$(date +%s)
	# TMPDIR: the harnesses' temp files go in the test's own temp dir,
	# removed at exit even when a harness is stopped.
	TMPDIR=$AP_TMP ASAN_OPTIONS=detect_leaks=$leaks:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$ART/$t-" "$work" "$seeds" \
		>"$AP_TMP/fuzz_$t.log" 2>&1
	rc=$?
	took=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$AP_TMP/fuzz_$t.log")
	cov=$(grep -oE 'cov: [0-9]+' "$AP_TMP/fuzz_$t.log" | tail -n 1)
	if [ "$rc" != 0 ]; then
		grep -vE '^#[0-9]+' "$AP_TMP/fuzz_$t.log" | tail -n 60 >&2
		ap_fail "fuzz_$t failed after ${took}s (exit $rc); the input is in $ART/"
	fi
	ap_log "ok: fuzz_$t ran ${took}s, ${execs:-?} inputs, ${cov:-cov: ?} edges, no crash"
done
