"""WSGI entry point for gunicorn: `gunicorn --chdir tests/servers/djangoapp wsgi:application`.

Django fills a few per-process caches with database queries the first time
a connection is used (on MySQL/MariaDB: the server's version, sql_mode and
SQL_AUTO_IS_NULL, by a query on the connection and another on a temporary
one). Left alone, that happens in the first request each gunicorn worker
serves, so the number of statements of a route would depend on which worker
served it first. Each worker fills them here, at load, outside any HTTP
request, and closes that connection: every request then runs the same
statements, whichever worker serves it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


def _warm_up():
    from django.db import connection

    connection.ensure_connection()
    if connection.vendor == "mysql":
        connection.mysql_server_data  # the version, sql_mode, ... (cached)
    connection.close()


_warm_up()
# The tests wait for this line from each worker before sending traffic.
sys.stderr.write("djangoapp: worker %d ready (%s)\n" % (os.getpid(), os.environ.get("APP_DB_ENGINE", "postgresql")))
sys.stderr.flush()
