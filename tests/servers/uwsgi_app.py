"""uwsgi_app - a small WSGI application for the uWSGI integration test
(tests/integration/uwsgi.sh), run by uWSGI's python3 plugin:

    uwsgi --plugin python3 --wsgi-file uwsgi_app.py --http-socket ... \
          --env UWSGI_APP_DB=PATH --env UWSGI_APP_FILE=PATH

Routes (every response but the two streams carries Content-Length):
  GET  /api/items            200, a small JSON list
  GET  /api/users/<n>        200, {"id": n}
  GET  /stream               200, 5 pieces of 1000 bytes from a generator,
                             without Content-Length; the test's uWSGI
                             encodes it chunked (--route ... chunked:)
  GET  /stream/raw           the same, left as it is: the body ends when
                             the connection does
  POST /upload               200, reads wsgi.input to the end (CONTENT_LENGTH
                             bytes) and answers {"received": n}
  GET  /error                500 with a body, as a framework answers an
                             exception it caught
  GET  /boom                 an exception out of the application: uWSGI
                             logs it and closes the connection unanswered
  GET  /file                 wsgi.file_wrapper over UWSGI_APP_FILE, with its
                             Content-Length (uWSGI sends it with sendfile)
  GET  /slow?ms=N            sleeps N ms, then 200 (harakiri's victim)
  GET  /books/<n>/sql        n+2 sqlite3 statements on UWSGI_APP_DB: the
                             book count, then n author lookups (one cached
                             statement re-run) 10 ms apart, then
                             SELECT ? AS n; 200
  anything else              404
HEAD runs the GET route and returns its body too, as a bare WSGI
application does: uWSGI sends it (gunicorn and the frameworks drop it).

At import, one statement: SELECT count(*) FROM authors.
One sqlite3 connection per thread (check_same_thread: the module's rule),
opened by the thread's first /books request and kept.
"""
import json
import os
import sqlite3
import threading
import time

_local = threading.local()

# At import: uWSGI's master loads the application before it forks the
# workers (no --lazy-apps), so this statement runs in the master, whose
# preload then starts its shipper; each worker forked afterwards starts
# afresh (the preload's fork handler), and never ships this one again.
_con = sqlite3.connect(os.environ["UWSGI_APP_DB"])
_con.execute("SELECT count(*) FROM authors").fetchone()
_con.close()


def db():
    con = getattr(_local, "con", None)
    if con is None:
        con = sqlite3.connect(os.environ["UWSGI_APP_DB"], timeout=10)
        _local.con = con
    return con


def reply(start_response, status, body, ctype="application/json"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def stream():
    for i in range(5):
        yield (b"%d" % i) * 1000


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    parts = path.strip("/").split("/")
    if path == "/api/items":
        return reply(start_response, "200 OK", b'{"items": [1, 2, 3]}\n')
    if len(parts) == 3 and parts[:2] == ["api", "users"] and parts[2].isdigit():
        return reply(start_response, "200 OK", json.dumps({"id": int(parts[2])}).encode() + b"\n")
    if path in ("/stream", "/stream/raw"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()
    if path == "/upload" and method == "POST":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        got = 0
        inp = environ["wsgi.input"]
        while got < n:
            b = inp.read(min(65536, n - got))
            if not b:
                break
            got += len(b)
        return reply(start_response, "200 OK", json.dumps({"received": got}).encode() + b"\n")
    if path == "/error":
        return reply(start_response, "500 Internal Server Error", b'{"error": "caught"}\n')
    if path == "/boom":
        raise RuntimeError("boom: the application failed on purpose")
    if path == "/file":
        name = os.environ["UWSGI_APP_FILE"]
        f = open(name, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(name)))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/slow":
        qs = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        time.sleep(int(qs.get("ms", "100")) / 1000.0)
        return reply(start_response, "200 OK", b"slept\n", "text/plain")
    if len(parts) == 3 and parts[0] == "books" and parts[1].isdigit() and parts[2] == "sql":
        n = int(parts[1])
        con = db()
        count = con.execute("SELECT count(*) FROM books").fetchone()[0]
        names = []
        for i in range(n):
            time.sleep(0.01)
            names.append(con.execute("SELECT name FROM authors WHERE id = ?", (i % 3 + 1,)).fetchone()[0])
        con.execute("SELECT ? AS n", (n,)).fetchone()
        return reply(start_response, "200 OK",
                     json.dumps({"books": count, "authors": names}).encode() + b"\n")
    return reply(start_response, "404 Not Found", b'{"error": "not found"}\n')
