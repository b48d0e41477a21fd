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
