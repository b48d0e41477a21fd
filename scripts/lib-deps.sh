# scripts/lib-deps.sh - the Debian packages apiprof needs and the build steps,
# in one place. Sourced (bash) by scripts/test.sh and scripts/demo.sh; any
# script that needs packages or a build sources it too.
#
# A package list entry is PACKAGE or PACKAGE:COMMAND. An entry with a command
# counts as present when that command is installed some other way (nginx from
# nginx-full or nginx-extras, Node from NodeSource or nvm), so we never fight
# the machine's own choice of provider.

# Required to build (SPEC section 8). The MySQL hooks need no headers.
# libdw-dev is optional for configure (CPU profiles are compiled out without
# it) but installed here, so that the profile test runs.
AP_PKGS_BUILD="build-essential autoconf automake libtool pkg-config
	libmicrohttpd-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev
	libjansson-dev check libdw-dev"
# What `make check` runs besides the build: nginx (nginx-light provides
# /usr/sbin/nginx), Node, curl and jq as clients and JSON readers, openssl
# for the TLS test's certificate, python3
# for raw and pipelined HTTP, wrk for the load of the reliability test,
# Prometheus (its server and promtool) for the /metrics test, and libdw-dev
# (optional to build) so that the crash test sees symbolised stacks.
AP_PKGS_TEST="nginx-light:nginx apache2:apache2 nodejs:node curl:curl jq:jq python3:python3 wrk:wrk openssl:openssl
	prometheus:promtool libdw-dev"
# BusyBox httpd (tests/integration/busybox.sh): the package itself, never
# just a `busybox` command, which busybox-static also provides, linked
# statically, where no hook can see it.
AP_PKGS_TEST="$AP_PKGS_TEST busybox"
# The SQL tests (tests/integration/dblib.sh and its users): throwaway
# PostgreSQL 15 and MariaDB servers, the sqlite3 shell to read the
# collector's database, and Debian's Python stack for the Django app
# (always /usr/bin/python3 and /usr/bin/gunicorn: never a pyenv or venv
# python3 that may come first in PATH, so no command stands in for them).
AP_PKGS_TEST="$AP_PKGS_TEST postgresql-15 mariadb-server mariadb-client-core:mariadb sqlite3:sqlite3
	python3-django python3-psycopg2 python3-mysqldb gunicorn"
# The HTTP/2 test (tests/integration/h2.sh): h2load and nghttp as HTTP/2
# clients, and python3-h2 to send the protocol's edges frame by frame.
AP_PKGS_TEST="$AP_PKGS_TEST nghttp2-client:h2load python3-h2"
# The FastCGI test (tests/integration/fpm.sh): php-fpm behind nginx, with
# PHP's SQLite and PostgreSQL drivers (pdo_sqlite, pdo_pgsql).
AP_PKGS_TEST="$AP_PKGS_TEST php8.2-fpm:php-fpm8.2 php8.2-sqlite3 php8.2-pgsql"
# The Puma test (tests/integration/puma.sh): Ruby's Puma, the Rails
# default server, with the sqlite3 gem for its SQL part.
AP_PKGS_TEST="$AP_PKGS_TEST puma:puma ruby-sqlite3"
# The H2O test (tests/integration/h2o.sh): Debian's h2o, HTTP/1.1 and
# HTTP/2 (nghttp2-client, above, is its HTTP/2 client).
AP_PKGS_TEST="$AP_PKGS_TEST h2o:h2o"
# The lighttpd test (tests/integration/lighttpd.sh): Debian's lighttpd
# 1.4, the package itself (/usr/sbin/lighttpd and its modules in
# /usr/lib/lighttpd, whose mod_cgi and mod_proxy the test drives).
AP_PKGS_TEST="$AP_PKGS_TEST lighttpd"
# The uWSGI test (tests/integration/uwsgi.sh): Debian's uWSGI 2.0 and its
# Python 3 plugin (the packages themselves, never a `uwsgi` command, which
# pip's uWSGI also provides, without Debian's plugins).
AP_PKGS_TEST="$AP_PKGS_TEST uwsgi-core uwsgi-plugin-python3"
# The uvicorn test (tests/integration/uvicorn.sh): Debian's uvicorn (with
# h11), and both its faster halves, the httptools parser and the uvloop
# event loop (libuv), which `uvicorn[standard]` brings and then uses by
# default. Debian ships no uvicorn command: the test runs python3 -m uvicorn.
AP_PKGS_TEST="$AP_PKGS_TEST python3-uvicorn python3-httptools python3-uvloop"
# The gevent test (tests/integration/gevent.sh): gunicorn's gevent worker
# (-k gevent) and gevent's own pywsgi server (gunicorn comes with the SQL
# tests' set above).
AP_PKGS_TEST="$AP_PKGS_TEST python3-gevent"
# The HAProxy test (tests/integration/haproxy.sh): Debian's HAProxy 2.6,
# the package itself (the test runs /usr/sbin/haproxy).
AP_PKGS_TEST="$AP_PKGS_TEST haproxy"
# The Tornado and aiohttp test (tests/integration/pyasync.sh): the two
# asyncio frameworks that serve HTTP themselves (aiohttp with its C parser).
AP_PKGS_TEST="$AP_PKGS_TEST python3-tornado python3-aiohttp"
# The libFuzzer harnesses (tests/fuzz/fuzz.sh): clang, whose Debian package
# brings libFuzzer and the sanitizer runtimes (libclang-rt-dev).
AP_PKGS_TEST="$AP_PKGS_TEST clang:clang"
# The dashboard test: headless Chromium, driven by playwright-core from npm
# (tests/integration/dashboard.sh installs it with npm ci).
AP_PKGS_TEST="$AP_PKGS_TEST chromium:chromium npm:npm"
# The JVM test (tests/integration/java.sh): javac compiles its two servers,
# java runs them. OpenJDK 17 comes with the machine: the command is enough.
AP_PKGS_TEST="$AP_PKGS_TEST openjdk-17-jdk-headless:javac"
# The Tomcat test (tests/integration/tomcat.sh): embedded Apache Tomcat 10,
# whose tomcat10-embed-core.jar (with the jakarta.servlet API) its server
# is compiled and run against. No command: the package itself.
AP_PKGS_TEST="$AP_PKGS_TEST libtomcat10-embed-java"
# The Varnish test (tests/integration/varnish.sh): Debian's Varnish Cache
# 7.1, which compiles its VCL with cc (build-essential, as for the build).
AP_PKGS_TEST="$AP_PKGS_TEST varnish:varnishd"
# The Jetty test (tests/integration/jetty.sh): embedded Eclipse Jetty 9.4,
# whose jetty9-*.jar (and the javax.servlet API it depends on) its server
# is compiled and run against. No command: the package itself.
AP_PKGS_TEST="$AP_PKGS_TEST libjetty9-java"
# What scripts/demo.sh runs: nginx, and the Django app on a throwaway
# PostgreSQL 15 (Debian's Python stack, as for the SQL tests).
AP_PKGS_DEMO="nginx-light:nginx curl:curl jq:jq postgresql-15 python3-django python3-psycopg2 gunicorn"
# What scripts/bench.sh runs.
AP_PKGS_BENCH="nginx-light:nginx wrk:wrk valgrind:valgrind curl:curl jq:jq postgresql-15 nodejs:node nghttp2-client:h2load"

# Daemons live in sbin, which is not in every user's PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH=$PATH:/usr/sbin:/sbin ;;
esac

# ap_deps_missing ENTRY... : prints the packages of the entries not present.
ap_deps_missing() {
	local e pkg cmd missing=""
	for e in "$@"; do
		pkg=${e%%:*}
		cmd=""
		[ "$pkg" != "$e" ] && cmd=${e#*:}
		if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then
			continue
		fi
		if command -v dpkg-query >/dev/null 2>&1 &&
			dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
			continue
		fi
		case " $missing " in
		*" $pkg "*) ;;
		*) missing="$missing $pkg" ;;
		esac
	done
	printf '%s\n' "${missing# }"
}

# ap_deps_ensure ENTRY... : installs the missing packages when root (apt-get
# update first, only when something is missing); otherwise prints the exact
# command to run. Returns 0 when everything is present afterwards.
ap_deps_ensure() {
	local missing
	missing=$(ap_deps_missing "$@")
	[ -z "$missing" ] && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "apiprof: missing packages: $missing" >&2
		echo "apiprof: this is not a Debian system: install their equivalents, then run this again" >&2
		return 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "apiprof: missing Debian packages: $missing" >&2
		echo "apiprof: install them with:" >&2
		echo "    sudo apt-get install -y $missing" >&2
		echo "apiprof: (or run this script as root: it installs them itself)" >&2
		return 1
	fi
	echo "==> installing $missing"
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
		{ echo "apiprof: apt-get failed" >&2; return 1; }
	missing=$(ap_deps_missing "$@")
	if [ -n "$missing" ]; then
		echo "apiprof: still missing after apt-get install: $missing" >&2
		return 1
	fi
}

# ap_build TOP : autogen (when configure is missing or older than
# configure.ac), configure (when not configured or configure changed), make.
# In the source tree TOP; $APIPROF_CONFIGURE_FLAGS is passed to configure.
ap_build() {
	local top=$1
	(
		cd "$top" || exit 1
		if [ ! -x configure ] || [ configure.ac -nt configure ]; then
			echo "==> generating configure (autogen.sh)"
			./autogen.sh || exit 1
		fi
		if [ ! -f Makefile ] || [ ! -f config.status ] || [ configure -nt config.status ]; then
			echo "==> configuring"
			# shellcheck disable=SC2086 # flags are words
			./configure -q ${APIPROF_CONFIGURE_FLAGS:-} ||
				{ echo "apiprof: configure failed (see $top/config.log)" >&2; exit 1; }
		fi
		echo "==> building"
		make -s -j"$(nproc)" || { echo "apiprof: the build failed" >&2; exit 1; }
	)
}
