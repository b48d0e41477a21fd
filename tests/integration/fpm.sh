#!/bin/bash
# The preload in php-fpm (FastCGI), behind a plain nginx: a pool of 2
# static workers on a Unix socket, fed by nginx without FCGI_KEEP_CONN
# (/app/: a connection per request, which php-fpm shuts down and closes)
# and with it (/ka/: an upstream with keepalive). One front controller
# answers 200, 404 (http_response_code), 500, a redirect (Location: only),
# a POST with a body, a query string, a request whose client goes away
# before the script answers (aborted), and SQL on SQLite (pdo_sqlite) and
# PostgreSQL (pdo_pgsql). Asserts exact counts per route, statuses, bytes,
# the SQL of every request, each worker's first included (README: the
# master's fork handler patches PHP's RTLD_DEEPBIND extensions before it
# forks the workers), and that no cookie, credential or query string
# reaches the collector. Then a reload (USR2) right after a burst: every
# request counted, the new workers' first requests' SQL too, and that of
# workers forked later (pm = ondemand, pm.max_requests = 1); Apache's
# mod_proxy_fcgi in front (SetHandler, ProxyPass enablereuse=on): counts,
# statuses, a 1 MiB POST's and a streamed 1 MiB response's bytes; the
# workers SIGKILLed while one serves a 20 s request (README, Requests in a
# killed process): that request recorded once, aborted; and php -S (no
# fork: its first accept patches), its first request's SQL.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/dblib.sh"

FPM=${AP_FPM:-php-fpm8.2}
ap_require curl jq nginx apache2 setsid "$FPM"
ap_require_pg
ap_require_build

ap_start_collector
ap_start_pg pg appdb
# Made here: the two concurrent first requests' CREATE TABLE IF NOT EXISTS
# would race in PostgreSQL's catalog (a unique violation, a 500).
ap_psql appdb -c 'CREATE TABLE notes (id serial PRIMARY KEY, body text)'

d=$AP_TMP/php
mkdir -p "$d/tmp"
# nginx workers (www-data when we are root) reach the socket (listen.mode)
chmod 755 "$d"
cat >"$d/app.php" <<PHP
<?php
function notes_sqlite() {
	\$db = new PDO('sqlite:$d/app.db');
	\$db->exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)');
	\$db->prepare('INSERT INTO notes (body) VALUES (?)')->execute(['Secret Note 9183']);
	return \$db->query('SELECT count(*) FROM notes')->fetchColumn();
}
function notes_pg() {
	\$db = new PDO('pgsql:host=127.0.0.1;port=$AP_PG_PORT;dbname=appdb', 'postgres', '');
	\$db->exec('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)');
	\$db->exec("INSERT INTO notes (body) VALUES ('Secret Note 5527')");
	return \$db->query('SELECT count(*) FROM notes')->fetchColumn();
}
\$path = preg_replace('#^/[a-z]+#', '', parse_url(\$_SERVER['REQUEST_URI'], PHP_URL_PATH));
if (\$path === '/ok') {
	echo "ok\n";
} elseif (\$path === '/missing') {
	http_response_code(404);
	echo "not here\n";
} elseif (\$path === '/fail') {
	http_response_code(500);
	echo "failure number 4711\n";
} elseif (\$path === '/redirect') {
	header('Location: /app/ok');
} elseif (\$path === '/items' && \$_SERVER['REQUEST_METHOD'] === 'POST') {
	echo strlen(file_get_contents('php://input')), "\n";
} elseif (preg_match('#^/users/[0-9]+\$#', \$path)) {
	echo "user\n";
} elseif (\$path === '/slow') {
	notes_sqlite();
	notes_pg();
	usleep(400000);
	echo getmypid(), "\n";
} elseif (\$path === '/stream') {
	\$chunk = str_repeat('x', 65536);
	for (\$i = 0; \$i < 16; \$i++) {
		echo \$chunk;
		flush();
	}
} elseif (\$path === '/reload') {
	notes_sqlite();
	echo getmypid(), "\n";
} elseif (\$path === '/burn') {
	// 150 ms of the worker's CPU time, which the profile samples, not of
	// wall time, of which a loaded machine gives it a fraction.
	\$cpu = function () {
		\$r = getrusage();
		return \$r['ru_utime.tv_sec'] + \$r['ru_utime.tv_usec'] / 1e6 +
		       \$r['ru_stime.tv_sec'] + \$r['ru_stime.tv_usec'] / 1e6;
	};
	\$x = 0.0;
	\$end = \$cpu() + 0.15;
	while (\$cpu() < \$end)
		for (\$i = 0; \$i < 1000; \$i++)
			\$x += sqrt(\$x + 1.0);
	echo "burned\n";
} elseif (\$path === '/hang') {
	sleep(20);
} elseif (\$path === '/gone') {
	usleep(800000);
	echo "too late\n";
} elseif (\$path === '/sqlite') {
	echo notes_sqlite(), "\n";
} elseif (\$path === '/pg') {
	echo notes_pg(), "\n";
} elseif (\$path === '/both') {
	echo notes_sqlite(), " ", notes_pg(), "\n";
} else {
	http_response_code(404);
	echo "no route\n";
}
PHP
cat >"$d/php.ini" <<INI
extension=pdo
extension=pdo_sqlite
extension=pdo_pgsql
display_errors = Off
log_errors = On
INI
run_as=()
pool_user=""
if [ "$(id -u)" -eq 0 ]; then
	run_as=(-R)
	pool_user="user = root"
fi
cat >"$d/fpm.conf" <<CONF
[global]
pid = $d/fpm.pid
error_log = $d/fpm-error.log
daemonize = no
; a reload's SIGQUIT lets idle workers exit, through exit's flush, before
; any SIGTERM (with the default 0, SIGTERM follows at once: README, Reloads)
process_control_timeout = 5s
[app]
$pool_user
listen = $d/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 2
catch_workers_output = yes
[od]
$pool_user
listen = $d/od.sock
listen.mode = 0666
pm = ondemand
pm.max_children = 1
pm.max_requests = 1
catch_workers_output = yes
CONF
# The scan dir is emptied: php.ini above loads exactly the extensions used.
# CPU profiles only on request (X-Apiprof-Profile: 1), so that exactly one
# is taken.
PHP_INI_SCAN_DIR="" APIPROF_PROFILE_EVERY=0 ap_bg_preloaded fpm "$FPM" -c "$d/php.ini" -y "$d/fpm.conf" -F "${run_as[@]}"
FPM_PID=$AP_BG_PID
for i in $(seq 100); do
	[ -S "$d/fpm.sock" ] && [ -S "$d/od.sock" ] && [ "$(ap_children "$FPM_PID" | wc -l)" -ge 2 ] && break
	kill -0 "$FPM_PID" 2>/dev/null || ap_fail "php-fpm exited at start"
	sleep 0.1
done
workers=$(ap_children "$FPM_PID" | sort -n | tr '\n' ' ')
[ "$(wc -w <<<"$workers")" = 2 ] || ap_fail "expected 2 php-fpm workers, found: $workers"

# A plain nginx in front (not preloaded: only php-fpm reports).
n=$AP_TMP/nginx
mkdir -p "$n/tmp"
user=""
if [ "$(id -u)" -eq 0 ]; then
	user="user www-data;"
	chown www-data "$n/tmp"
fi
AP_PORT=$(ap_free_port)
cat >"$n/nginx.conf" <<CONF
worker_processes 1;
$user
pid $n/nginx.pid;
error_log $n/error.log info;
events { worker_connections 128; }
http {
    access_log $n/access.log;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    upstream fpm_ka { server unix:$d/fpm.sock; keepalive 4; }
    server {
        listen 127.0.0.1:$AP_PORT;
        location /app/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $d/app.php;
            fastcgi_pass unix:$d/fpm.sock;
        }
        location /od/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $d/app.php;
            fastcgi_pass unix:$d/od.sock;
        }
        location /ka/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $d/app.php;
            fastcgi_keep_conn on;
            fastcgi_pass fpm_ka;
        }
    }
}
CONF
AP_PIDFILES="$AP_PIDFILES $n/nginx.pid"
ap_bg nginx nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log"
wait "$AP_BG_PID" || ap_fail "nginx did not start: $(cat "$AP_TMP/nginx.log" "$n/error.log" 2>/dev/null)"
ap_wait_port "$AP_PORT"
B=http://127.0.0.1:$AP_PORT
ap_log "collector $AP_URL, php-fpm $FPM_PID (workers $workers), nginx on $AP_PORT"

# code URL [CURL ARGS...]: the status of one request
code() {
	local u=$1
	shift
	curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@" "$B$u" || ap_fail "curl $u failed"
}

# 1. Each worker's first request, at once (each runs SQL on both
#    databases, then sleeps), so that both workers serve one: their
#    statements are captured, the fork handler having patched PHP's
#    extensions in the master before it forked them (README: SQL).
curl -s --max-time 10 "$B/app/slow" >"$AP_TMP/slow1.out" &
p1=$!
curl -s --max-time 10 "$B/app/slow" >"$AP_TMP/slow2.out" &
p2=$!
wait "$p1" && wait "$p2" || ap_fail "a first request failed"
[ "$(cat "$AP_TMP/slow1.out")" != "$(cat "$AP_TMP/slow2.out")" ] ||
	ap_fail "both first requests were served by worker $(cat "$AP_TMP/slow1.out")"

# 2. The traffic, each status checked on the client's side.
got=""
for u in /app/ok /app/ok /app/ok /app/missing /app/missing /app/fail /app/redirect \
	'/app/users/42?token=SecretToken77' '/app/users/43?token=SecretToken77' /ka/ok /ka/ok /ka/ok \
	/ka/missing; do
	got="$got$(code "$u" -H 'Cookie: sid=SecretCookie55' -H 'Authorization: Bearer SecretBearer66') "
done
ap_assert_eq "statuses" "$got" "200 200 200 404 404 500 302 200 200 200 200 200 404 "
for i in 1 2; do
	ap_assert_eq "POST /app/items $i" "$(code /app/items --data-binary 'a=1&b=22')" 200
done
for i in 1 2 3; do
	ap_assert_eq "GET /app/sqlite $i" "$(code /app/sqlite)" 200
	ap_assert_eq "GET /app/pg $i" "$(code /app/pg)" 200
done
# A CPU profile asked for with the header (HTTP_X_APIPROF_PROFILE in the
# params).
ap_assert_eq "GET /app/burn, profiled" "$(code /app/burn -H 'X-Apiprof-Profile: 1')" 200
# The client gives up before the script answers: nginx closes the FastCGI
# connection, php-fpm's writes fail, and its close aborts the request.
# 0.6 s: time for a loaded machine's nginx to hand the request to php-fpm,
# and always short of the script's 0.8 s, which start after curl's.
curl -s --max-time 0.6 -o /dev/null "$B/app/gone"

ap_expect_counts <<EOF
GET /app/slow 2
GET /app/ok 3
GET /app/missing 2
GET /app/fail 1
GET /app/redirect 1
GET /app/users/{id} 2
GET /ka/ok 3
GET /ka/missing 1
POST /app/items 2
GET /app/sqlite 3
GET /app/pg 3
GET /app/gone 1
GET /app/burn 1
EOF

# One read of the stored requests, filtered here (as ap_requests does)
all_reqs=$(ap_api /api/v1/requests --data-urlencode limit=1000)
reqs() {
	jq --arg s "$AP_SERVICE" --arg r "$1" --arg m "${2:-}" \
		'[.requests[] | select(.service == $s and .route == $r and ($m == "" or .method == $m))]' <<<"$all_reqs"
}
ap_assert_jq "GET /app/ok: 200, bytes_out 3 (the body after the CGI head), not aborted" \
	'length == 3 and all(.[]; .status == 200 and .bytes_out == 3 and .bytes_in == 0 and .aborted == false)' \
	"$(reqs /app/ok)"
ap_assert_jq "GET /ka/ok (FCGI_KEEP_CONN): 200" 'length == 3 and all(.[]; .status == 200)' \
	"$(reqs /ka/ok)"
ap_assert_jq "404s (Status: 404 from http_response_code)" \
	'length == 2 and all(.[]; .status == 404 and .error == false)' "$(reqs /app/missing)"
ap_assert_jq "500: an error" 'length == 1 and all(.[]; .status == 500 and .error == true)' \
	"$(reqs /app/fail)"
ap_assert_jq "redirect: Location with no Status is 302" 'length == 1 and .[0].status == 302' \
	"$(reqs /app/redirect)"
ap_assert_jq "POST /app/items: bytes_in 8 (the body)" \
	'length == 2 and all(.[]; .status == 200 and .bytes_in == 8)' "$(reqs /app/items POST)"
ap_assert_jq "query string dropped from the path" \
	'length == 2 and ([.[].path] | sort) == ["/app/users/42", "/app/users/43"]' \
	"$(reqs '/app/users/{id}')"
ap_assert_jq "the abandoned request is aborted" 'length == 1 and .[0].aborted == true' \
	"$(reqs /app/gone)"
ap_assert_eq "error_count of GET /app/fail" "$(ap_field GET /app/fail error_count)" 1
ap_assert_jq "the 500's body is its error's message, scrubbed" \
	'[.. | objects | select(.service? == "'"$AP_SERVICE"'") | .message? // empty |
	  select(test("^failure number"))] | length >= 1 and all(.[]; test("4711") | not)' \
	"$(ap_api /api/v1/errors)"
ap_assert_jq "GET /app/slow: from the first byte read to END_REQUEST (the script sleeps 400 ms)" \
	'length == 2 and all(.[]; .duration_ms >= 400 and .duration_ms < 5000)' "$(reqs /app/slow)"

# SQL: every request carries its statements, each worker's first too
# (/app/slow: both databases): on SQLite CREATE, INSERT, SELECT; on
# PostgreSQL the same, pdo_pgsql's query() being a prepare and an
# execution (two statements, SPEC) and its statement's end a DEALLOCATE.
# (Before the fork handler's scan: the two /app/slow had 0 each.)
ap_assert_eq "sql_count of each worker's first request, GET /app/slow (3 + 5)" "$(reqs /app/slow GET | jq -r '[.[].sql_count] | sort | map(tostring) | join(" ")')" "8 8"
ap_assert_eq "sql_count of each GET /app/sqlite request" "$(reqs /app/sqlite GET | jq -r '[.[].sql_count] | sort | map(tostring) | join(" ")')" "3 3 3"
ap_assert_eq "sql_count of each GET /app/pg request" "$(reqs /app/pg GET | jq -r '[.[].sql_count] | sort | map(tostring) | join(" ")')" "5 5 5"
json=$(ap_api /api/v1/queries --data-urlencode "service=$AP_SERVICE")
printf '%s\n' "$json" >"$AP_TMP/queries.json"
ap_check_jq "each statement, on each database, with its calls" "$json" \
	'[.queries[] | "\(.db) \(.calls) \(.sql)"] | sort == [
	  "postgresql 10 SELECT count(*) FROM notes",
	  "postgresql 5 CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)",
	  "postgresql 5 DEALLOCATE ?", "postgresql 5 INSERT INTO notes (body) VALUES (?)",
	  "sqlite 5 CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)",
	  "sqlite 5 INSERT INTO notes (body) VALUES (?)", "sqlite 5 SELECT count(*) FROM notes"]'

# The profiled request's samples: about one per ms of the worker's CPU.
for i in $(seq 50); do
	prof=$(ap_api /api/v1/profile --data-urlencode "service=$AP_SERVICE")
	[ "$(jq .requests <<<"$prof")" -ge 1 ] && break
	sleep 0.2
done
ap_assert_jq "one profiled request, GET /app/burn, with samples" \
	'.requests == 1 and .samples >= 30 and ([.endpoints[].route] == ["/app/burn"])' "$prof"

# Every request is a worker's, never the master's.
pids_seen=$(jq -r --arg s "$AP_SERVICE" '[.requests[] | select(.service == $s) | .pid] | unique | .[]' <<<"$all_reqs" | tr '\n' ' ')
ap_log "pids seen in requests: $pids_seen"
[ -n "$pids_seen" ] || ap_fail "no pid in /api/v1/requests"
ap_assert_pids_among "$pids_seen" "$workers" "a php-fpm worker"

# The [od] pool's workers are forked later, one per request (pm =
# ondemand, pm.max_requests = 1): each request is a worker's first, forked
# by a master that scanned long before (its fork handler's look at the load
# counters finds nothing new: the patched extensions are inherited).
# Their SQL is checked after the reload's wait below.
for i in 1 2; do
	ap_assert_eq "GET /od/sqlite $i (a new ondemand worker)" "$(code /od/sqlite)" 200
done

# A reload (kill -USR2: the master re-execs itself) right after a burst of
# requests: it stops the workers with SIGQUIT, and with the
# process_control_timeout above they exit through exit's flush, so none of
# the burst is lost (under the default of 0, SIGTERM follows at once and
# ends a worker idle in accept() without that flush: 1 to 4 of these 4
# were lost; README, Reloads). The new workers, forked by the re-exec'd
# master, preload included, report too, with the SQL of their first
# request (/app/reload: 3 statements on SQLite).
for i in 1 2 3 4; do
	ap_assert_eq "GET /app/reload $i, before" "$(code /app/reload)" 200
done
kill -USR2 "$FPM_PID"
for i in $(seq 100); do
	now=$(ap_children "$FPM_PID" | sort -n | tr '\n' ' ')
	fresh=1
	for w in $workers; do
		case " $now " in *" $w "*) fresh=0 ;; esac
	done
	[ "$fresh" = 1 ] && [ "$(wc -w <<<"$now")" = 2 ] && break
	sleep 0.1
done
ap_log "reloaded: workers $workers -> $now"
for i in 1 2; do
	ap_assert_eq "GET /app/reload $i, after" "$(code /app/reload)" 200
done
ap_assert_eq "GET /app/reload: the 4 requests before a reload and 2 after" \
	"$(ap_wait_count /app/reload 6)" 6
all_reqs=$(ap_api /api/v1/requests --data-urlencode limit=1000)
ap_assert_eq "sql_count of each GET /app/reload, the new workers' first included" \
	"$(reqs /app/reload GET | jq -r '[.[].sql_count] | map(tostring) | join(" ")')" "3 3 3 3 3 3"
ap_assert_jq "GET /od/sqlite: two ondemand workers' first requests, 3 statements each" \
	'length == 2 and ([.[].pid] | unique | length) == 2 and all(.[]; .sql_count == 3)' \
	"$(reqs /od/sqlite GET)"

# Apache's mod_proxy_fcgi in front (not preloaded) of the same workers:
# /ap/ through SetHandler (a connection per request), /apr/ through
# ProxyPass with enablereuse=on (FCGI_KEEP_CONN); a 1 MiB POST and a
# 1 MiB response streamed in 16 flush()es. One Apache process: each
# keeps its reused connection, and with it one of the 2 workers.
a=$AP_TMP/apache
mkdir -p "$a"
APACHE_PORT=$(ap_free_port)
M=/usr/lib/apache2/modules
apache_user=""
[ "$(id -u)" -eq 0 ] && apache_user="User www-data
Group www-data"
cat >"$a/httpd.conf" <<CONF
ServerRoot /etc/apache2
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_fcgi_module $M/mod_proxy_fcgi.so
Listen 127.0.0.1:$APACHE_PORT
ServerName localhost
PidFile $a/httpd.pid
ErrorLog $a/error.log
DefaultRuntimeDir $a
Mutex file:$a default
$apache_user
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
ProxyFCGISetEnvIf "true" SCRIPT_FILENAME "$d/app.php"
<Location /ap/>
    SetHandler "proxy:unix:$d/fpm.sock|fcgi://localhost"
</Location>
ProxyPass /apr/ "unix:$d/fpm.sock|fcgi://localhost/" enablereuse=on
CONF
# Its own session: at shutdown the parent signals its process group.
ap_bg apache setsid /usr/sbin/apache2 -DFOREGROUND -f "$a/httpd.conf"
ap_wait_port "$APACHE_PORT" 15
B=http://127.0.0.1:$APACHE_PORT
got=""
for u in /ap/ok /ap/ok /ap/missing /apr/ok /apr/ok /apr/missing; do
	got="$got$(code "$u") "
done
ap_assert_eq "statuses through Apache" "$got" "200 200 404 200 200 404 "
head -c 1048576 /dev/zero >"$AP_TMP/mib.bin"
ap_assert_eq "POST /ap/items, 1 MiB, through Apache" "$(curl -s --max-time 10 \
	--data-binary @"$AP_TMP/mib.bin" -H 'Content-Type: application/octet-stream' "$B/ap/items")" 1048576
ap_assert_eq "GET /apr/stream through Apache, bytes" \
	"$(curl -s --max-time 10 "$B/apr/stream" | wc -c)" 1048576
want="GET /ap/ok 2
GET /ap/missing 1
GET /apr/ok 2
GET /apr/missing 1
POST /ap/items 1
GET /apr/stream 1"
ap_wait_counts 10 <<<"$want"
ep=$(ap_api /api/v1/endpoints)
while read -r m r n; do
	ap_assert_eq "$m $r through Apache" "$(jq --arg s "$AP_SERVICE" --arg m "$m" --arg r "$r" \
		'[.endpoints[] | select(.service == $s and .method == $m and .route == $r) | .count] | add // 0' \
		<<<"$ep")" "$n"
done <<<"$want"
all_reqs=$(ap_api /api/v1/requests --data-urlencode limit=1000)
ap_assert_jq "POST /ap/items: 200, bytes_in 1 MiB" \
	'length == 1 and .[0].status == 200 and .[0].bytes_in == 1048576' "$(reqs /ap/items POST)"
ap_assert_jq "GET /apr/stream: 200, bytes_out 1 MiB, not aborted" \
	'length == 1 and .[0].status == 200 and .[0].bytes_out == 1048576 and .[0].aborted == false' \
	"$(reqs /apr/stream GET)"
ap_assert_jq "GET /apr/missing: 404" 'length == 1 and .[0].status == 404' "$(reqs /apr/missing)"

# The workers SIGKILLed while one serves a FastCGI request that has run
# for 2.5 s: announced in flight, that request is recorded once, aborted,
# by that worker (README, Requests in a killed process); the master forks
# new workers.
killed=$(ap_children "$FPM_PID" | sort -n | tr '\n' ' ')
curl -s --max-time 20 -o /dev/null "http://127.0.0.1:$AP_PORT/app/hang" &
hang=$!
sleep 2.5
kill -KILL $killed
wait "$hang" || true
ap_assert_eq "GET /app/hang, its worker SIGKILLed: recorded once" "$(ap_wait_count /app/hang 1 GET 15)" 1
all_reqs=$(ap_api /api/v1/requests --data-urlencode limit=1000)
ap_assert_jq "GET /app/hang: aborted, status 0, at least 1 s, by a killed worker" \
	"length == 1 and .[0].status == 0 and .[0].aborted == true and .[0].duration_ms >= 1000 and
	 ([.[0].pid] | inside([$(tr ' ' '\n' <<<"$killed" | grep . | paste -sd,)]))" "$(reqs /app/hang GET)"

# php -S, preloaded, the same script as its router: one process that
# loaded the extensions and never forks, so its first accept() patches
# them (README: SQL). Its first request runs SQL on both databases.
CLI_PORT=$(ap_free_port)
PHP_INI_SCAN_DIR="" ap_bg_preloaded phpcli php -c "$d/php.ini" -S "127.0.0.1:$CLI_PORT" "$d/app.php"
# (Its start logged, not a probe connection: the first accept is the
# first request's.)
ap_wait_log phpcli "Development Server .* started"
B=http://127.0.0.1:$CLI_PORT
for i in 1 2; do
	ap_assert_eq "GET /cli/both $i (php -S)" "$(code /cli/both)" 200
done
ap_wait_count /cli/both 2 >/dev/null
all_reqs=$(ap_api /api/v1/requests --data-urlencode limit=1000)
ap_assert_eq "sql_count of php -S's first and second request (3 + 5 each)" \
	"$(reqs /cli/both GET | jq -r '[.[].sql_count] | map(tostring) | join(" ")')" "8 8"

# No header value, query string or SQL literal left the workers.
ap_assert_no_literals SecretCookie55 SecretBearer66 SecretToken77 "Secret Note 9183" "Secret Note 5527"
ap_log "PASS"
