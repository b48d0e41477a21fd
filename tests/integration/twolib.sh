# tests/integration/twolib.sh - two (and more) copies of one client library in
# one process, for twosqlite.sh and twopq.sh (sourced after lib.sh).

# ap_two_copies SONAME MODSRC TABLE [OLD NEW]... : in $AP_TWO_DIR
# ($AP_TMP/two), copies A, B, C and D of the system library SONAME, each with
# the character before ".so" in its soname replaced by the copy's letter
# (libsqlite3.so.0 -> libsqliteA.so.0, libpq.so.5 -> libpA.so.5): the soname
# is a NUL-terminated string in .dynstr, so a name of the same length
# replaces it in place, without patchelf. Each OLD string (found exactly
# once) becomes NEW, of the same length, with every "@" the copy's letter:
# a mark of the copy in a message it writes. libcopyD.so.0 links to copy D.
# Then modules libmodA.so, libmodB.so and libmodC.so built from MODSRC with
# -DCOPY='"A"' -DTABLE='"<TABLE>a"' and $AP_TWO_CFLAGS, each linked against
# its own copy (its NEEDED entry checked).
ap_two_copies() {
	local soname=$1 src=$2 table=$3 sys c name lc
	shift 3
	AP_TWO_DIR=$AP_TMP/two
	mkdir -p "$AP_TWO_DIR"
	sys=$(cc -print-file-name="$soname")
	[ -f "$sys" ] || ap_fail "no $soname found by cc -print-file-name ($sys)"
	sys=$(readlink -f "$sys")
	for c in A B C D; do
		name=$(sed -E "s/.(\.so(\..*)?)$/$c\1/" <<<"$soname")
		"$AP_PY" - "$sys" "$AP_TWO_DIR/$name" "$soname" "$name" "$c" "$@" <<'EOF' ||
import sys
src, dst, old, new, letter = sys.argv[1:6]
data = open(src, "rb").read()
pairs = [(old, new)] + list(zip(sys.argv[6::2], sys.argv[7::2]))
for o, n in pairs:
    o, n = o.encode() + b"\0" * (o == old), n.replace("@", letter).encode() + b"\0" * (o == old)
    if len(o) != len(n) or data.count(o) != 1:
        sys.exit("%r: %d times in the library, or not the length of %r" % (o, data.count(o), n))
    data = data.replace(o, n)
open(dst, "wb").write(data)
EOF
			ap_fail "copying $sys as copy $c failed"
		if [ "$c" = D ]; then
			ln -sf "$name" "$AP_TWO_DIR/libcopyD.so.0"
			continue # loaded without a module
		fi
		lc=$(tr ABC abc <<<"$c")
		# shellcheck disable=SC2086 # flags are words
		cc -shared -fPIC -O2 ${AP_TWO_CFLAGS:-} -o "$AP_TWO_DIR/libmod$c.so" "$src" -DCOPY="\"$c\"" \
			-DTABLE="\"$table$lc\"" "$AP_TWO_DIR/$name" -Wl,-rpath,"$AP_TWO_DIR" \
			2>"$AP_TMP/cc$c.log" || ap_fail "building module $c failed: $(cat "$AP_TMP/cc$c.log")"
		readelf -d "$AP_TWO_DIR/libmod$c.so" 2>/dev/null | grep -q "(NEEDED).*\[$name\]" ||
			ap_fail "module $c does not need its own copy $name"
	done
}

# ap_two_serve ARG : twocopies with ARG as a preloaded HTTP server; sends
# GET /b, /a, /ab, /b (module B, A, both, B: A runs twice, B three times),
# each answered 200, and waits until the collector counted exactly those.
ap_two_serve() {
	local p st=""
	AP_PORT=$(ap_free_port)
	ap_bg_preloaded server "$AP_TWO" "$AP_TWO_DIR" "$1" --port "$AP_PORT"
	ap_wait_log server '^listening on'
	for p in b a ab b; do
		st="$st$(curl -s --max-time 10 -o "$AP_TMP/$p.body" -w '%{http_code}' \
			"http://127.0.0.1:$AP_PORT/$p") "
	done
	ap_assert_eq "statuses of /b /a /ab /b" "$st" "200 200 200 200 "
	ap_expect_counts <<EOF
GET /a 1
GET /b 2
GET /ab 1
EOF
}

# ap_two_shapes TABLE SELECTS ONCE-SERVICE : the shapes of every copy's
# statements arrived, with exactly the calls run: per run of a module, its
# INSERT 3 times, its CREATE once and its SELECT count(*) SELECTS times; for
# the server (A twice, B three times) and for the run without HTTP, service
# ONCE-SERVICE (A and B twice, C once, after the reload).
ap_two_shapes() {
	local table=$1 sel=$2 s svc na nb nc json
	for s in "$AP_SERVICE 2 3 0" "$3 2 2 1"; do
		read -r svc na nb nc <<<"$s"
		json=$(ap_api /api/v1/queries --data-urlencode "service=$svc")
		printf '%s\n' "$json" >"$AP_TMP/queries-$svc.json"
		ap_check_jq "$svc: INSERT calls of copy A $(( na * 3 )), B $(( nb * 3 )), C $(( nc * 3 )); CREATE and SELECT of each" "$json" \
			'.queries as $q | def calls(re): [$q[] | select(.service == $s and (.sql | test(re; "i"))) | .calls] | add // 0;
			 [[$t + "a", $a], [$t + "b", $b], [$t + "c", $c]] | all(.[];
			   .[0] as $u | .[1] as $n |
			   calls("^INSERT INTO \($u) ") == $n * 3 and calls("^CREATE TABLE IF NOT EXISTS \($u) ") == $n and
			   calls("^SELECT count\\(\\*\\).* FROM \($u)$") == $n * $sel)' \
			--arg s "$svc" --arg t "$table" --argjson sel "$sel" \
			--argjson a "$na" --argjson b "$nb" --argjson c "$nc"
	done
}

# ap_two_compare ARG ONCE-SERVICE MARK RESET... : runs twocopies ARG without
# the preload, where each module's lines must show its own copy's MARK (a
# grep pattern, "@" the copy's letter: A and B twice, C once); runs the
# command RESET (the databases back to empty); runs it again under the
# preload, as service ONCE-SERVICE: exit 0 and byte for byte the same
# output; runs RESET again.
ap_two_compare() {
	local arg=$1 svc=$2 mark=$3 c n rc
	shift 3
	"$AP_TWO" "$AP_TWO_DIR" "$arg" >"$AP_TMP/plain.out" 2>"$AP_TMP/plain.err" ||
		ap_fail "twocopies failed without the preload: $(cat "$AP_TMP/plain.out" "$AP_TMP/plain.err")"
	for c in A B C; do
		n=$(grep -c "^$c: .*${mark//@/$c}" "$AP_TMP/plain.out")
		[ "$n" = "$([ $c = C ] && echo 1 || echo 2)" ] ||
			ap_fail "without the preload, module $c's lines do not show copy $c: $(cat "$AP_TMP/plain.out")"
	done
	"$@"
	env LD_PRELOAD="$(ap_preload)" APIPROF_SOCKET="$AP_SOCK" APIPROF_SERVICE="$svc" \
		APIPROF_DEBUG="${AP_DEBUG:-0}" "$AP_TWO" "$AP_TWO_DIR" "$arg" >"$AP_TMP/preloaded.out" 2>"$AP_TMP/preloaded.err"
	rc=$?
	ap_assert_eq "twocopies' exit status under the preload" "$rc" 0
	ap_assert_eq "twocopies' output under the preload (each module's lines show its own copy)" \
		"$(cat "$AP_TMP/preloaded.out")" "$(cat "$AP_TMP/plain.out")"
	"$@"
}

# ap_two_requests TABLE PER-RUN STATEMENTS : after ap_two_serve, each
# request's statements are attached to it: STATEMENTS per run of a module
# (the three INSERTs an N+1 at the default threshold, 3, so every request
# is flagged); GET /ab holds copy B's PER-RUN statements naming table
# <TABLE>b, then copy A's naming <TABLE>a, and B's three INSERTs changed
# one row each.
ap_two_requests() {
	local t=$1 per=$2 n=$3 detail
	ap_expect_sql <<EOF
GET /a 1 $n 1
GET /b 2 $(( 2 * n )) 2
GET /ab 1 $(( 2 * n )) 1
EOF
	detail=$(ap_request_detail "$(ap_requests /ab | jq -r '.[0].id')")
	printf '%s\n' "$detail" >"$AP_TMP/ab-detail.json"
	ap_check_jq "GET /ab detail: copy B's $per statements on ${t}b, then copy A's on ${t}a" "$detail" \
		'[.queries[].sql | capture(" (?<t>" + $t + "[ab])( |$)") | .t] ==
		 ([range($n)] | map($t + "b")) + ([range($n)] | map($t + "a")) and
		 ([.queries[] | select(.sql | test("^INSERT INTO " + $t + "b "; "i"))] |
		  length == 3 and all(.[]; .rows == 1))' --arg t "$t" --argjson n "$per"
}
