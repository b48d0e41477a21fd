#!/usr/bin/python3
"""asyncio_server - a single-threaded asyncio HTTP/1.1 server (stdlib only)
using the sqlite3 module, for the event-loop SQL integration test
(tests/integration/sqlite_async.sh).

    asyncio_server.py --db PATH --seed        create the schema and test data, exit
    asyncio_server.py --db PATH --port N      serve on 127.0.0.1:N (0: a free port),
                                              printing "listening on PORT"

One thread, one event loop (asyncio.start_server), one sqlite3 connection
opened before listening (opening it runs no statement). Every request gets
one response with a Content-Length and `Connection: close`, then the
connection is closed: no keep-alive. Statements run synchronously on the
loop's thread, as a careless asyncio application would run them.

Routes (GET only) and the statements each runs:
  /one      1: SELECT count(*) FROM authors. Run at once: if no other request
            is in flight on the loop, the preload attributes it.
  /pair     1: SELECT max(id) FROM authors. The handler first waits for a
            second /pair request to reach its handler (a rendezvous of two),
            then runs its statement, then waits until its partner has run
            its own, and only then answers. So both statements run while
            both requests are in flight on the loop's thread, whatever the
            machine's load: neither can be attributed. A /pair whose partner
            does not come within 10 s answers 504.
  /authors  6: SELECT id FROM authors ORDER BY id, then for each of the five
            authors SELECT name FROM authors WHERE id = <id> AND name <>
            'Nobody 8086', the id formatted INTO the text (no parameters):
            an N+1 of 5 whose texts differ only by their literals.
  /handoff  0: read on the loop's thread, answered by a thread of the
            loop's executor (os.write on the socket), as servers that read
            on one thread and answer on another do.
  otherwise 404, no statement.
"""
import argparse
import asyncio
import json
import os
import sqlite3
import sys

AUTHOR_IDS = [61001, 61002, 61003, 61004, 61005]
CON = None


def seed(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    with con:
        for i, aid in enumerate(AUTHOR_IDS):
            con.execute("INSERT INTO authors VALUES (?, ?)", (aid, "Poet %d" % (3301 + i)))
    con.close()


class Rendezvous:
    """Releases its waiters n at a time, once n are waiting."""

    def __init__(self, n):
        self.n = n
        self.waiting = []

    async def wait(self, timeout):
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        if len(self.waiting) >= self.n:
            group, self.waiting = self.waiting[:self.n], self.waiting[self.n:]
            for f in group:
                if not f.done():
                    f.set_result(None)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            if fut in self.waiting:
                self.waiting.remove(fut)
            raise


ARRIVED = Rendezvous(2)
RAN = Rendezvous(2)


async def pair():
    try:
        await ARRIVED.wait(10)
    except asyncio.TimeoutError:
        return 504, {"error": "no partner request"}
    (m,) = CON.execute("SELECT max(id) FROM authors").fetchone()
    try:
        await RAN.wait(10)
    except asyncio.TimeoutError:
        return 504, {"error": "the partner request did not run its statement"}
    return 200, {"max": m}


def authors():
    out = []
    for (aid,) in CON.execute("SELECT id FROM authors ORDER BY id").fetchall():
        (name,) = CON.execute(
            "SELECT name FROM authors WHERE id = %d AND name <> 'Nobody 8086'" % aid).fetchone()
        out.append({"id": aid, "name": name})
    return 200, {"authors": out}


async def route(method, path):
    if method != "GET":
        return 405, {"error": "method not allowed"}
    if path == "/one":
        (n,) = CON.execute("SELECT count(*) FROM authors").fetchone()
        return 200, {"count": n}
    if path == "/pair":
        return await pair()
    if path == "/authors":
        return authors()
    if path == "/handoff":
        return 200, {"answered_by": "another thread"}
    return 404, {"error": "not found"}


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           500: "Internal Server Error", 504: "Gateway Timeout"}


async def handle(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    method, target = "?", "?"
    try:
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        status, obj = await route(method, target.split("?", 1)[0])
    except Exception as e:  # a bug here must show, not hang the client
        sys.stderr.write("error: %r\n" % (e,))
        status, obj = 500, {"error": "server error"}
    body = (json.dumps(obj) + "\n").encode()
    sys.stderr.write("%s %s %d\n" % (method, target, status))
    response = ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n"
                % (status, REASONS.get(status, "Status"), len(body))).encode() + body
    if method == "GET" and target == "/handoff":
        fd = writer.get_extra_info("socket").fileno()
        try:
            await asyncio.get_running_loop().run_in_executor(None, os.write, fd, response)
        except OSError:
            pass
        writer.close()
        return
    writer.write(response)
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def serve(port):
    srv = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening on %d" % srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    global CON
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", action="store_true")
    a = ap.parse_args()
    if a.seed:
        seed(a.db)
        return
    CON = sqlite3.connect(a.db)
    asyncio.run(serve(a.port))


if __name__ == "__main__":
    main()
