#!/bin/bash
# Socket permissions (issue 8): a collector started with --socket-mode 0660
# --socket-group nogroup accepts reports from a process in that group and
# refuses them from a process of another uid outside it.
#
#  - The socket is created mode 660, group nogroup.
#  - A preloaded threaded_server running as nobody:nogroup (setpriv, no
#    supplementary groups) has its requests counted exactly, under uid 65534.
#  - The same server running as daemon:daemon answers every request as
#    usual, yet none is counted and the collector never lists the process.
#  - Control: once the socket is made 0666, the daemon server's held and
#    next requests are counted exactly, so the refusal was the permission
#    and not, say, a preload that did not load.
#
# Needs root (to run processes as other users); skipped otherwise. Creates
# no user or group: nobody, nogroup and daemon exist on every Debian
# system. The build tree may not be readable by them (it may live under
# /root), so the preload and the server are copied to a world-readable
# directory under /tmp, which also holds the socket.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] ||
	ap_skip "runs only as root (it starts servers as the users nobody and daemon); CI runs it as root"
ap_require curl jq setpriv
ap_require_build "$AP_THREADED"
for u in nobody daemon; do
	getent passwd "$u" >/dev/null || ap_fail "no user $u on this system"
done
getent group nogroup >/dev/null || ap_fail "no group nogroup on this system"
[ "$(id -u daemon)" != 65534 ] && [ "$(id -g daemon)" != "$(getent group nogroup | cut -d: -f3)" ] ||
	ap_fail "daemon is nobody or in nogroup: the test needs a uid outside the group"

SHARE=$(mktemp -d /tmp/apiprof-socketperm.XXXXXX) || ap_fail "mktemp failed"
trap 'rc=$?; rm -rf "$SHARE"; (exit $rc); ap_cleanup' EXIT
chmod 755 "$SHARE"
cp "$(ap_preload)" "$SHARE/libapiprof.so" || ap_fail "cannot copy the preload"
cp "$AP_THREADED" "$SHARE/threaded_server" || ap_fail "cannot copy the server"
chmod 755 "$SHARE/libapiprof.so" "$SHARE/threaded_server"
for u in nobody daemon; do
	setpriv --reuid="$u" --regid=nogroup --clear-groups test -r "$SHARE/libapiprof.so" ||
		ap_fail "$u cannot read $SHARE/libapiprof.so"
done

AP_SOCK=$SHARE/apiprof.sock
ap_start_collector --socket-mode 0660 --socket-group nogroup
ap_assert_eq "socket mode and group" "$(stat -c '%a %G' "$AP_SOCK")" "660 nogroup"

# run_as NAME USER GROUP SERVICE : a preloaded threaded_server as USER:GROUP;
# sets PORT_<NAME> and PID_<NAME>.
run_as() {
	local name=$1 user=$2 group=$3 service=$4 port
	port=$(ap_free_port)
	ap_bg "$name" setpriv --reuid="$user" --regid="$group" --clear-groups \
		env LD_PRELOAD="$SHARE/libapiprof.so" APIPROF_SOCKET="$AP_SOCK" \
		APIPROF_SERVICE="$service" "$SHARE/threaded_server" --port "$port"
	ap_wait_log "$name" '^listening on'
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$AP_BG_PID"
}

# hello PORT N : N requests to /hello; prints how many answered 200.
hello() {
	local i ok=0
	for i in $(seq "$2"); do
		[ "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/hello")" = 200 ] &&
			ok=$(( ok + 1 ))
	done
	echo "$ok"
}

run_as member nobody nogroup perm-member
run_as other daemon daemon perm-other
# The preload is loaded in both (a server without it would be "refused" too).
for p in "$PID_member" "$PID_other"; do
	grep -q "$SHARE/libapiprof.so" "/proc/$p/maps" || ap_fail "the preload is not loaded in pid $p"
done
ap_assert_eq "the group member's server answers" "$(hello "$PORT_member" 50)" 50
ap_assert_eq "the other uid's server answers" "$(hello "$PORT_other" 50)" 50

AP_SERVICE=perm-member
ap_assert_eq "requests of the group member counted" "$(ap_wait_count /hello 50)" 50
# ap_wait_count settled 1.5 s: the other server's events had their chance.
AP_SERVICE=perm-other
ap_assert_eq "requests of the other uid counted" "$(ap_count GET /hello)" 0
ST=$(ap_api /api/v1/status)
ap_assert_jq "the member's process is listed under its uid" \
	"[.processes[] | select(.pid == $PID_member) | .uid] == [65534]" "$ST"
ap_assert_jq "the other uid's process is not listed" \
	"[.processes[] | select(.pid == $PID_other or .service == \"perm-other\")] == []" "$ST"
ap_log "ok: uid $(id -u daemon) refused by the 0660 socket, uid 65534 accepted"

# Control: the same process is counted once the socket lets it in. While
# refused it held its 50 events in its bounded buffer (the preload keeps
# them while the collector is unreachable), so they arrive first; then 50
# more.
chmod 0666 "$AP_SOCK"
ap_assert_eq "held requests of the other uid counted once the socket is 0666" \
	"$(ap_wait_count /hello 50)" 50
ap_assert_eq "the other uid's server answers after chmod" "$(hello "$PORT_other" 50)" 50
ap_assert_eq "new requests of the other uid counted" "$(ap_wait_count /hello 100)" 100
ap_assert_jq "the other uid's process listed under its uid" \
	"[.processes[] | select(.pid == $PID_other) | .uid] == [$(id -u daemon)]" "$(ap_api /api/v1/status)"

ap_log "PASS"
