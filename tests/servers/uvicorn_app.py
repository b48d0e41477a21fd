"""uvicorn_app - a plain ASGI application (no framework) for the uvicorn
integration test (tests/integration/uvicorn.sh):

    UVICORN_APP_DB=PATH python3 -m uvicorn --app-dir tests/servers \
        uvicorn_app:app --host 127.0.0.1 --port N [--workers 2] \
        [--http h11|httptools] [--loop asyncio|uvloop]

Routes (every response but the streams carries Content-Length):
  GET  /hello             200, "hello\\n"
  GET  /items/<n>         200, {"id": n}
  GET  /stream            200, 5 pieces of 1000 bytes sent as separate
                          http.response.body messages without a length:
                          uvicorn sends them chunked
  GET  /stream/boom       200 and one piece, then an exception: uvicorn
                          closes the connection mid-body
  POST /upload            200, reads every http.request message of the body
                          and answers "got <bytes>"
  GET  /boom              an exception before the response starts: uvicorn
                          answers with its own 500 ("Internal Server Error")
  GET  /slow?ms=N&n=K     waits until K /slow requests of this process have
                          arrived (default 1; 504 when they do not within
                          10 s), then sleeps N ms on the loop
                          (asyncio.sleep), then 200: the K are in flight
                          together for N ms, however late their clients
                          started
  GET  /sql/loop          4 sqlite3 statements run on the loop's thread, as
                          blocking calls: the author ids, then each of the 3
                          authors by id (one cached statement re-run: an N+1)
  GET  /sql/pool          the same 4 statements in a thread of the loop's
                          default executor (asyncio.to_thread, as
                          Starlette/FastAPI run a plain `def` endpoint)
  GET  /sql/pair          waits until a second /sql/pair of this process has
                          arrived, runs the 4 statements on the loop, waits
                          until its partner has run them too, then answers:
                          both requests are in flight while the statements
                          run, whatever the machine's load (504 when no
                          partner comes within 10 s)
  GET  /sql/beside?n=K    waits until K /slow requests of this process are
                          sleeping, runs the 4 statements on the loop, then
                          answers (504 when they do not come within 10 s)
  anything else           404, {"error": "not found"}
uvicorn itself drops the body of a HEAD response.

The lifespan protocol is answered (startup opens the loop's sqlite3
connection; opening one runs no statement). Threads of the executor open
their own connection (check_same_thread: the module's rule).
"""
import asyncio
import json
import os
import sqlite3
import threading

from pyasync_common import Rendezvous, statements, until

CON = None
_local = threading.local()
SLEEPING = 0


def pool_statements():
    con = getattr(_local, "con", None)
    if con is None:
        con = sqlite3.connect(os.environ["UVICORN_APP_DB"], timeout=10)
        _local.con = con
    return statements(con)


ARRIVED = Rendezvous(2)
RAN = Rendezvous(2)


async def reply(send, status, body, ctype=b"application/json"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def jbody(obj):
    return json.dumps(obj).encode() + b"\n"


def query(scope):
    qs = scope.get("query_string", b"").decode("latin-1")
    return dict(p.split("=", 1) for p in qs.split("&") if "=" in p)


async def lifespan(receive, send):
    global CON
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            CON = sqlite3.connect(os.environ["UVICORN_APP_DB"], timeout=10)
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    global SLEEPING
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    parts = path.strip("/").split("/")
    if path == "/hello":
        await reply(send, 200, b"hello\n", b"text/plain")
    elif len(parts) == 2 and parts[0] == "items" and parts[1].isdigit():
        await reply(send, 200, jbody({"id": int(parts[1])}))
    elif path in ("/stream", "/stream/boom"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": (b"%d" % i) * 1000, "more_body": True})
            if path == "/stream/boom":
                raise RuntimeError("stream/boom: the body failed on purpose")
        await send({"type": "http.response.body", "body": b""})
    elif path == "/upload" and method == "POST":
        got = 0
        while True:
            msg = await receive()
            got += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        await reply(send, 200, b"got %d" % got, b"text/plain")
    elif path == "/boom":
        raise RuntimeError("boom: the application failed on purpose")
    elif path == "/slow":
        q = query(scope)
        SLEEPING += 1
        try:
            if not await until(lambda: SLEEPING >= int(q.get("n", "1"))):
                await reply(send, 504, jbody({"error": "the other slow requests did not come"}))
                return
            await asyncio.sleep(int(q.get("ms", "100")) / 1000.0)
        finally:
            SLEEPING -= 1
        await reply(send, 200, b"slept\n", b"text/plain")
    elif path == "/sql/loop":
        await reply(send, 200, jbody(statements(CON)))
    elif path == "/sql/pool":
        await reply(send, 200, jbody(await asyncio.to_thread(pool_statements)))
    elif path == "/sql/pair":
        try:
            await ARRIVED.wait(10)
            out = statements(CON)
            await RAN.wait(10)
        except asyncio.TimeoutError:
            await reply(send, 504, jbody({"error": "no partner request"}))
            return
        await reply(send, 200, jbody(out))
    elif path == "/sql/beside":
        want = int(query(scope).get("n", "1"))
        if not await until(lambda: SLEEPING >= want):
            await reply(send, 504, jbody({"error": "the slow requests did not come"}))
            return
        await reply(send, 200, jbody(statements(CON)))
    else:
        await reply(send, 404, jbody({"error": "not found"}))
