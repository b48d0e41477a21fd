#!/bin/bash
# The preload in Apache httpd (Debian's apache2), run in the foreground with
# our own minimal config, once per MPM: event (threads, an event loop that
# hands keep-alive connections between threads) and prefork (forked
# processes). Children run as www-data when we are root. Static files with
# sendfile, 404s, a 500 (mod_rewrite's [R=500]), keep-alive and
# Connection: close / HTTP/1.0 requests, pipelining (a POST's body
# pipelined with a GET included). Asserts exact counts per route, and
# the error counts. Prefork: a worker killed by SIGSEGV while it reads a
# body goes through Apache's own fatal-signal handler, then ours: a
# SIGSEGV row of its request. Part 4: HTTPS through mod_ssl, whose BIO
# reads the socket through APR inside SSL_read (the preload binds each SSL
# object to the TLS socket its thread read): keep-alive, connections at
# once, a 404, a 500, a 1 MiB POST, a file (read and SSL_write: no
# sendfile over TLS), each request's plaintext bytes exact; with the
# event MPM, HTTP/2 over TLS too (ALPN h2, mod_http2: curl and h2load).
. "$(dirname "$0")/lib.sh"

ap_require curl jq python3 setsid apache2
ap_require_build

ap_start_collector
W=$AP_TMP/www
mkdir -p "$W/static" "$W/tls" "$W/h2"
echo hello >"$W/static/a.txt"
head -c 200000 /dev/urandom >"$W/static/big.bin"
echo hello over tls >"$W/tls/a.txt"
cp "$W/static/big.bin" "$W/tls/big.bin"
echo h2 >"$W/h2/a.txt"
echo h2 b >"$W/h2/b.txt"
head -c 1048576 /dev/urandom >"$AP_TMP/mib.bin"
ap_make_cert "$AP_TMP/tls"
chmod -R a+rX "$W"
M=/usr/lib/apache2/modules

# start_apache MPM : apache2 -DFOREGROUND with MPM, under the preload, with
# service it-apache-MPM; sets AP_PORT, AP_TLS_PORT (HTTPS, and HTTP/2 by
# ALPN with the event MPM: mod_http2 does not run under prefork) and
# AP_SERVICE.
start_apache() {
	local mpm=$1 d=$AP_TMP/$1 user="" h2=""
	mkdir -p "$d"
	[ "$(id -u)" -eq 0 ] && user="User www-data
Group www-data"
	[ "$mpm" = event ] && h2="LoadModule http2_module $M/mod_http2.so"
	AP_PORT=$(ap_free_port)
	AP_TLS_PORT=$(ap_free_port)
	AP_SERVICE=it-apache-$mpm
	cat >"$d/httpd.conf" <<CONF
ServerRoot /etc/apache2
LoadModule mpm_${mpm}_module $M/mod_mpm_${mpm}.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule rewrite_module $M/mod_rewrite.so
LoadModule socache_shmcb_module $M/mod_socache_shmcb.so
LoadModule ssl_module $M/mod_ssl.so
$h2
Listen 127.0.0.1:$AP_PORT
Listen 127.0.0.1:$AP_TLS_PORT
SSLSessionCache shmcb:$d/ssl_scache(512000)
ServerName localhost
PidFile $d/httpd.pid
ErrorLog $d/error.log
DefaultRuntimeDir $d
Mutex file:$d default
$user
StartServers 2
KeepAlive On
MaxKeepAliveRequests 1000
EnableSendfile On
DocumentRoot $W
RewriteEngine On
RewriteRule ^/error$ - [R=500]
<Directory $W>
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:$AP_TLS_PORT>
    SSLEngine on
    SSLCertificateFile $AP_TMP/tls.crt
    SSLCertificateKeyFile $AP_TMP/tls.key
    Protocols h2 http/1.1
    RewriteEngine On
    RewriteRule ^/(tls|h2)/error$ - [R=500]
</VirtualHost>
CONF
	# Its own session: at shutdown the parent signals its whole process
	# group (killpg(getpgrp(), SIGTERM)), which would be this test's.
	ap_bg_preloaded "apache-$mpm" setsid /usr/sbin/apache2 -DFOREGROUND -f "$d/httpd.conf"
	ap_wait_port "$AP_PORT" 15
}

# crash_worker: (prefork) a worker dies of a SIGSEGV while it reads a
# POST's body. Apache's own handler (sig_coredump, installed by the parent
# before any child serves, so ours never goes in under it) puts the
# default back and sends the signal again: ours takes the default's place
# and reports it, a SIGSEGV row of the request's route, stack included;
# the parent still logs the child's death by signal 11, as without us.
# (Before the sigaction() hooks: no row at all, the request lost with the
# worker.) The signal comes from kill(), to the worker holding the
# connection, found by its socket.
crash_worker() {
	python3 - "$AP_PORT" >"$AP_TMP/hold.out" <<'PY' &
import os, socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /static/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
me = s.getsockname()[1]
for _ in range(50):  # the worker's end of it: its inode, then its owner
    time.sleep(0.1)
    inode = [f[9] for f in (l.split() for l in open("/proc/net/tcp").read().splitlines()[1:])
             if int(f[1].split(":")[1], 16) == port and int(f[2].split(":")[1], 16) == me]
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if inode and os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode[0]}]":
                    owners.add(pid)
        except OSError:
            pass
    if len(owners) == 1:
        print(owners.pop(), flush=True)
        break
s.recv(1)  # until the worker dies
PY
	local holder=$! victim="" i
	for i in $(seq 100); do
		victim=$(head -1 "$AP_TMP/hold.out")
		[ -n "$victim" ] && break
		sleep 0.1
	done
	[ -n "$victim" ] || ap_fail "mpm_$mpm: no worker holds the held connection"
	kill -SEGV "$victim"
	wait "$holder"
	local rows=""
	for i in $(seq 100); do
		rows=$(ap_api /api/v1/errors -G --data-urlencode "service=$AP_SERVICE" |
			jq -r '.errors[] | select((.type | startswith("SIG")) or .type == "aborted") | "\(.type) \(.method) \(.route) \(.count)"')
		[ -n "$rows" ] && break
		sleep 0.1
	done
	ap_assert_eq "mpm_$mpm: the killed worker's row" "$rows" "SIGSEGV POST /static/a.txt 1"
	ap_api /api/v1/errors -G --data-urlencode "service=$AP_SERVICE" |
		jq -r '.errors[] | select(.type == "SIGSEGV") | .message' | grep -q 'ap_discard_request_body' ||
		ap_fail "mpm_$mpm: the SIGSEGV row's stack lacks ap_discard_request_body"
	for i in $(seq 50); do
		grep -q "child pid $victim exit signal Segmentation fault (11)" "$AP_TMP/$mpm/error.log" && break
		sleep 0.1
	done
	grep -q "child pid $victim exit signal Segmentation fault (11)" "$AP_TMP/$mpm/error.log" ||
		ap_fail "mpm_$mpm: the parent did not log its child's SIGSEGV"
}

# tls_traffic: part 4, HTTPS to $AP_TLS_PORT; each HTTP/1.1 request's
# "URL status size_request size_header size_download size_upload" as curl
# counted them (plaintext) in $AP_TMP/tls-$mpm.out, the HTTP/2 ones'
# "status http_version" in $AP_TMP/h2-$mpm.out.
TW='%{url_effective} %{http_code} %{size_request} %{size_header} %{size_download} %{size_upload} %{num_connects}\n'
tls_traffic() {
	local T=https://127.0.0.1:$AP_TLS_PORT c clients=()
	# a. Keep-alive: eight requests on one connection, the 500 last
	#    (Apache closes after it).
	curl -sk --http1.1 --max-time 20 -w "$TW" -o /dev/null "$T/tls/a.txt" -o /dev/null "$T/tls/missing" \
		-o /dev/null "$T/tls/a.txt" -o /dev/null "$T/tls/big.bin" -o /dev/null "$T/tls/missing" \
		-o /dev/null "$T/tls/a.txt" -o /dev/null "$T/tls/missing" -o /dev/null "$T/tls/error" \
		>"$AP_TMP/tls-ka.$mpm" || ap_fail "mpm_$mpm: curl over TLS failed"
	ap_assert_eq "mpm_$mpm TLS keep-alive: connections opened" \
		"$(awk '{s += $7} END {print s}' "$AP_TMP/tls-ka.$mpm")" 1
	# b. Twelve connections at once, three requests each: their handshakes
	#    interleave across Apache's threads (and processes).
	for c in $(seq 12); do
		curl -sk --http1.1 --max-time 20 -w "$TW" -o /dev/null "$T/tls/a.txt" -o /dev/null "$T/tls/missing" \
			-o /dev/null "$T/tls/a.txt" >"$AP_TMP/tls-many.$mpm.$c" &
		clients+=($!)
	done
	for c in "${clients[@]}"; do
		wait "$c" || ap_fail "mpm_$mpm: a client over TLS failed"
	done
	# c. A 1 MiB POST (read whole by the default handler, which discards it).
	curl -sk --http1.1 --max-time 20 -H 'Expect:' --data-binary @"$AP_TMP/mib.bin" -w "$TW" -o /dev/null \
		"$T/tls/a.txt" >"$AP_TMP/tls-post.$mpm" || ap_fail "mpm_$mpm: the POST over TLS failed"
	cat "$AP_TMP/tls-ka.$mpm" "$AP_TMP"/tls-many.$mpm.* "$AP_TMP/tls-post.$mpm" >"$AP_TMP/tls-$mpm.out"
	ap_assert_eq "mpm_$mpm TLS statuses" \
		"$(awk '{print $2}' "$AP_TMP/tls-$mpm.out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" \
		"200:29 404:15 500:1 "
	[ "$mpm" = event ] || return 0
	# d. HTTP/2 over TLS: curl (three streams on one connection), then
	#    h2load: 40 streams on 2 connections, 10 at a time.
	curl -sk --http2 --max-time 20 -w '%{http_code} %{http_version}\n' -o /dev/null "$T/h2/a.txt" \
		-o /dev/null "$T/h2/missing" -o /dev/null "$T/h2/error" >"$AP_TMP/h2-$mpm.out" ||
		ap_fail "mpm_$mpm: curl --http2 over TLS failed"
	ap_assert_eq "mpm_$mpm HTTP/2 over TLS statuses" "$(awk '{printf "%s/%s ", $1, $2}' "$AP_TMP/h2-$mpm.out")" \
		"200/2 404/2 500/2 "
	h2load -n 40 -c 2 -m 10 "$T/h2/a.txt" "$T/h2/b.txt" >"$AP_TMP/h2load-$mpm.log" 2>&1 ||
		ap_fail "mpm_$mpm: h2load over TLS failed: $(cat "$AP_TMP/h2load-$mpm.log")"
	grep -q '^requests: 40 total, 40 started, 40 done, 40 succeeded' "$AP_TMP/h2load-$mpm.log" &&
		grep -q 'Application protocol: h2' "$AP_TMP/h2load-$mpm.log" ||
		ap_fail "mpm_$mpm: h2load over TLS: $(grep -E '^(requests|status|Application)' "$AP_TMP/h2load-$mpm.log")"
}

# tls_check: the requests of part 4, once counted: each HTTP/1.1 one's
# path, status, bytes in and out exactly as curl counted them (plaintext
# fed to another connection's parser would break them), nothing aborted;
# the HTTP/2 streams' statuses.
tls_check() {
	local want got
	want=$(awk '{ sub("^https://[^/]*", "", $1); printf "[\"%s\",%s,%s,%s]\n", $1, $2, $3 + $6, $4 + $5 }' \
		"$AP_TMP/tls-$mpm.out" | jq -s -c 'map(tojson) | sort | map(fromjson)')
	ap_api /api/v1/requests --data-urlencode limit=1000 |
		jq --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s)]' >"$AP_TMP/reqs-$mpm.json"
	got=$(jq -c '[.[] | select(.path | startswith("/tls/")) | [.path, .status, .bytes_in, .bytes_out] | tojson] |
		sort | map(fromjson)' "$AP_TMP/reqs-$mpm.json")
	ap_assert_eq "mpm_$mpm TLS: each request's path, status, bytes in and out" "$got" "$want"
	ap_assert_jq "mpm_$mpm TLS: none aborted" '[.[] | select(.aborted)] | length == 0' \
		"$(cat "$AP_TMP/reqs-$mpm.json")"
	[ "$mpm" = event ] || return 0
	ap_assert_eq "mpm_$mpm HTTP/2 over TLS: each stream's path and status" \
		"$(jq -r '[.[] | select(.path | startswith("/h2/")) | "\(.path):\(.status)"] | sort | group_by(.) |
			map("\(.[0])x\(length)") | join(" ")' "$AP_TMP/reqs-$mpm.json")" \
		"/h2/a.txt:200x21 /h2/b.txt:200x20 /h2/error:500x1 /h2/missing:404x1"
	ap_assert_jq "mpm_$mpm HTTP/2 over TLS: every stream has frames both ways" \
		'[.[] | select(.path | startswith("/h2/")) | select(.bytes_in < 9 or .bytes_out < 9)] | length == 0' \
		"$(cat "$AP_TMP/reqs-$mpm.json")"
}

for mpm in event prefork; do
	start_apache "$mpm"
	B=http://127.0.0.1:$AP_PORT
	ap_log "apache2 mpm_$mpm under the preload, pid $AP_BG_PID, port $AP_PORT"

	# 1. Keep-alive: twenty requests on one connection (Apache closes
	#    after a 500, so /error comes last).
	urls=()
	for i in $(seq 9); do
		urls+=("$B/static/a.txt" "$B/missing")
	done
	urls+=("$B/static/big.bin" "$B/error")
	ap_curl_many "$AP_TMP/ka-$mpm.out" "${urls[@]}"
	ap_assert_eq "mpm_$mpm keep-alive statuses" \
		"$(awk '{print $1}' "$AP_TMP/ka-$mpm.out" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" \
		"200:10 404:9 500:1 "

	# 2. Ten requests on connections of their own.
	for i in $(seq 5); do
		curl -s --max-time 10 -H 'Connection: close' -o /dev/null -w '%{http_code}\n' "$B/static/a.txt"
		curl -s --max-time 10 -0 -o /dev/null -w '%{http_code}\n' "$B/missing"
	done >"$AP_TMP/close-$mpm.out" || ap_fail "mpm_$mpm: a one-request connection failed"
	ap_assert_eq "mpm_$mpm one-request statuses" \
		"$(sort "$AP_TMP/close-$mpm.out" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "200:5 404:5 "

	# 3. Pipelining: three requests in one write, then a POST with its
	#    body pipelined with a GET.
	ap_raw "$AP_PORT" --pipeline "GET /static/a.txt" "GET /missing" "GET /static/a.txt" \
		>"$AP_TMP/pipe-$mpm.out"
	ap_assert_eq "mpm_$mpm pipelined statuses" "$(awk '{printf "%s ", $1}' "$AP_TMP/pipe-$mpm.out")" \
		"200 404 200 "
	ap_raw "$AP_PORT" --pipeline \
		'POST /static/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' \
		"GET /missing" >"$AP_TMP/pipe2-$mpm.out"
	ap_assert_eq "mpm_$mpm pipelined POST statuses" \
		"$(awk '{printf "%s ", $1}' "$AP_TMP/pipe2-$mpm.out")" "200 404 "

	# 4. HTTPS through mod_ssl (and HTTP/2 over it, event).
	tls_traffic
	h2counts=""
	[ "$mpm" = event ] && h2counts="GET /h2/a.txt 21
GET /h2/b.txt 20
GET /h2/missing 1
GET /h2/error 1"
	ap_expect_counts <<E
GET /static/a.txt 16
GET /missing 16
POST /static/a.txt 1
GET /static/big.bin 1
GET /error 1
GET /tls/a.txt 27
GET /tls/missing 15
GET /tls/big.bin 1
GET /tls/error 1
POST /tls/a.txt 1
$h2counts
E
	tls_check
	ap_assert_eq "mpm_$mpm error_count of GET /error" "$(ap_field GET /error error_count)" 1
	ap_assert_eq "mpm_$mpm error_count of GET /missing (a 404 is not an error)" \
		"$(ap_field GET /missing error_count)" 0
	reqs=$(ap_requests /static/big.bin)
	ap_assert_jq "mpm_$mpm sendfile response: status 200, bytes_out above the file's size" \
		'length == 1 and .[0].status == 200 and .[0].bytes_out > 200000' "$reqs"
	# The pipelined POST is delimited exactly, although Apache read it with
	# the GET after it.
	post_len=$(printf 'POST /static/a.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world' | wc -c)
	reqs=$(ap_requests /static/a.txt POST)
	ap_assert_jq "mpm_$mpm pipelined POST: status 200, bytes_in $post_len" \
		"length == 1 and .[0].status == 200 and .[0].bytes_in == $post_len" "$reqs"
	[ "$mpm" = prefork ] && crash_worker
	ap_stop_pid "$AP_BG_PID"
done
ap_log "PASS"
