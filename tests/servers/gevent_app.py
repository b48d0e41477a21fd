"""gevent_app - a plain WSGI application (no framework) for the gevent
integration test (tests/integration/gevent.sh), served by gunicorn's gevent
worker or, run as a program, by gevent's own pywsgi server:

    GEVENT_APP_DB=PATH gunicorn -k gevent --chdir tests/servers gevent_app:app ...
    GEVENT_APP_DB=PATH python3 tests/servers/gevent_app.py PORT

Both monkey-patch the standard library first, so time.sleep and the socket
module yield to the other greenlets; the sqlite3 module is not patched: its
statements run on the one thread and block every greenlet meanwhile.

Routes (every response but the stream carries Content-Length):
  GET  /hello             200, "hello\\n"
  GET  /items/<n>         200, {"id": n}
  GET  /stream            200, 5 pieces of 1000 bytes from a generator,
                          without a length: the server sends them chunked
  POST /upload            200, reads wsgi.input to the end and answers
                          "got <bytes>"
  GET  /boom              an exception out of the application: the server
                          answers with its own 500
  GET  /pid               200, the serving process's pid
  GET  /file              GEVENT_APP_FILE with its Content-Length, through
                          wsgi.file_wrapper (gunicorn's: sent by
                          socket.sendfile, which gevent does with sends)
                          or, where the server has none (pywsgi), as
                          64 KiB pieces from a generator
  GET  /slow?ms=N&n=K     waits until K /slow requests of this process have
                          arrived (default 1; 504 when they do not within
                          10 s), then sleeps N ms (time.sleep: a greenlet
                          switch), then 200: the K are in flight together
                          for N ms, however late their clients started
  GET  /sql/n1            4 sqlite3 statements: the author ids, then each
                          of the 3 authors by id (one cached statement
                          re-run: an N+1)
  GET  /sql/pair          waits until a second /sql/pair of this process
                          has arrived, runs the 4 statements, waits until
                          its partner has run them too, then answers: both
                          requests are in flight while the statements run
                          (504 when no partner comes within 10 s)
  GET  /sql/beside?n=K    waits until K /slow requests of this process are
                          sleeping, runs the 4 statements, then answers
                          (504 when they do not come within 10 s)
  anything else           404, {"error": "not found"}
The servers drop the body of a HEAD response themselves.

One sqlite3 connection per process, opened at the first statement (opening
one runs no statement); every greenlet runs on the process's one thread.
"""
import json
import os
import sqlite3
import sys
import time

_con = None
SLEEPING = 0
PAIR_ARRIVED = 0
PAIR_RAN = 0


def db():
    global _con
    if _con is None:
        _con = sqlite3.connect(os.environ["GEVENT_APP_DB"], timeout=10)
    return _con


def statements():
    """The author ids, then each author by id: 4 statements."""
    con = db()
    ids = [r[0] for r in con.execute("SELECT id FROM authors ORDER BY id").fetchall()]
    names = [con.execute("SELECT name FROM authors WHERE id = ?", (i,)).fetchone()[0] for i in ids]
    return {"authors": names}


def until(cond, timeout=10.0):
    """Polls cond every 10 ms (time.sleep: other greenlets run meanwhile);
    False when timeout passes first."""
    for _ in range(int(timeout * 100)):
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def reply(start_response, status, body, ctype="application/json"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def jbody(obj):
    return json.dumps(obj).encode() + b"\n"


def stream():
    for i in range(5):
        yield (b"%d" % i) * 1000


def app(environ, start_response):
    global SLEEPING, PAIR_ARRIVED, PAIR_RAN
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    qs = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    parts = path.strip("/").split("/")
    if path == "/hello":
        return reply(start_response, "200 OK", b"hello\n", "text/plain")
    if len(parts) == 2 and parts[0] == "items" and parts[1].isdigit():
        return reply(start_response, "200 OK", jbody({"id": int(parts[1])}))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()
    if path == "/upload" and method == "POST":
        inp = environ["wsgi.input"]
        got = 0
        while True:
            b = inp.read(65536)
            if not b:
                break
            got += len(b)
        return reply(start_response, "200 OK", b"got %d" % got, "text/plain")
    if path == "/boom":
        raise RuntimeError("boom: the application failed on purpose")
    if path == "/file":
        name = os.environ["GEVENT_APP_FILE"]
        f = open(name, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(name)))])
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(f, 65536)
        return iter(lambda: f.read(65536), b"")
    if path == "/pid":
        return reply(start_response, "200 OK", b"%d\n" % os.getpid(), "text/plain")
    if path == "/slow":
        SLEEPING += 1
        try:
            if not until(lambda: SLEEPING >= int(qs.get("n", "1"))):
                return reply(start_response, "504 Gateway Timeout", jbody({"error": "the other slow requests did not come"}))
            time.sleep(int(qs.get("ms", "100")) / 1000.0)
        finally:
            SLEEPING -= 1
        return reply(start_response, "200 OK", b"slept\n", "text/plain")
    if path == "/sql/n1":
        return reply(start_response, "200 OK", jbody(statements()))
    if path == "/sql/pair":
        PAIR_ARRIVED += 1
        mine = (PAIR_ARRIVED + 1) // 2 * 2
        if not until(lambda: PAIR_ARRIVED >= mine):
            return reply(start_response, "504 Gateway Timeout", jbody({"error": "no partner request"}))
        out = statements()
        PAIR_RAN += 1
        if not until(lambda: PAIR_RAN >= mine):
            return reply(start_response, "504 Gateway Timeout", jbody({"error": "the partner did not run"}))
        return reply(start_response, "200 OK", jbody(out))
    if path == "/sql/beside":
        want = int(qs.get("n", "1"))
        if not until(lambda: SLEEPING >= want):
            return reply(start_response, "504 Gateway Timeout", jbody({"error": "the slow requests did not come"}))
        return reply(start_response, "200 OK", jbody(statements()))
    return reply(start_response, "404 Not Found", jbody({"error": "not found"}))


if __name__ == "__main__":
    from gevent import monkey
    monkey.patch_all()
    from gevent.pywsgi import WSGIServer
    server = WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None)
    print("pywsgi: serving on port %s, pid %d" % (sys.argv[1], os.getpid()), flush=True)
    server.serve_forever()
