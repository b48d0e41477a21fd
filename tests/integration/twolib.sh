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
