#!/usr/bin/python3
"""sqlite_server - a Python stdlib HTTP server using the sqlite3 module, for the
SQL integration test (tests/integration/sqlite.sh).

    sqlite_server.py --db PATH --seed        create the schema and test data, exit
    sqlite_server.py --db PATH --port N      serve on 127.0.0.1:N (0: a free port),
                                             printing "listening on PORT"

http.server's ThreadingHTTPServer, HTTP/1.1 keep-alive: one thread per
connection, and one sqlite3 connection per thread, opened by its first
request and kept for the next ones on that HTTP connection. The sqlite3
module caches prepared statements per connection and re-runs a cached one
after sqlite3_reset: the N+1 loop below runs ONE prepared statement five
times, which the SPEC counts as five executions.

Routes and the statements each runs (the module's own BEGIN and COMMIT
around a write are statements too):
  GET  /books/       6: the books, then each book's author (bound parameter),
                     one query per book: an N+1 of 5
  GET  /books/<n>/   2: the book (its id inlined as a literal), its author
  POST /notes        3: BEGIN (implicit, by the module), INSERT (the posted
                     note bound, a literal tag inlined), COMMIT
  GET  /fail         1: a SELECT on a missing table, which fails to prepare
                     (SQLITE_ERROR, "SQLite 1"); answers 500
  GET  /slow/        1: SELECT sleep_ms(150), an application function that
                     sleeps 150 ms inside sqlite3_step (?ms=N: N ms, inlined
                     as the 150 is)
  anything else      404, no statement
"""
import argparse
import json
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB_PATH = None
_local = threading.local()


def db():
    con = getattr(_local, "con", None)
    if con is None:
        con = sqlite3.connect(DB_PATH, timeout=10)
        con.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000.0) or ms)
        _local.con = con
    return con


def seed(path):
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                            author_id INTEGER NOT NULL REFERENCES authors(id));
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, tag TEXT);
        """
    )
    with con:
        for i in range(5):
            con.execute("INSERT INTO authors VALUES (?, ?)", (917253001 + i, "Writer %d" % (7777 + i)))
            con.execute("INSERT INTO books VALUES (?, ?, ?)",
                        (i + 1, "Secret Title %d" % (4242 + i), 917253001 + i))
    con.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sqlite_server/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (threading.current_thread().name, fmt % args))

    def reply(self, status, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        parts = path.split("/")
        con = db()
        if path == "/books/":
            out = []
            for bid, title, aid in con.execute("SELECT id, title, author_id FROM books ORDER BY id").fetchall():
                (name,) = con.execute("SELECT name FROM authors WHERE id = ?", (aid,)).fetchone()
                out.append({"id": bid, "title": title, "author": name})
            self.reply(200, {"books": out})
        elif len(parts) == 4 and parts[1] == "books" and parts[2].isdigit() and parts[3] == "":
            row = con.execute("SELECT id, title, author_id FROM books WHERE id = %d" % int(parts[2])).fetchone()
            if row is None:
                self.reply(404, {"error": "no such book"})
                return
            (name,) = con.execute("SELECT name FROM authors WHERE id = ?", (row[2],)).fetchone()
            self.reply(200, {"id": row[0], "title": row[1], "author": name})
        elif path == "/fail":
            try:
                con.execute("SELECT body FROM missing_table WHERE id = 77310911").fetchall()
            except sqlite3.OperationalError:
                self.reply(500, {"error": "database error"})
                return
            self.reply(200, {"unexpected": "success"})
        elif path == "/slow/":
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            ms = int(q.get("ms", ["150"])[0])
            con.execute("SELECT sleep_ms(%d)" % ms).fetchall()
            self.reply(200, {"slept_ms": ms})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if path != "/notes":
            self.reply(404, {"error": "not found"})
            return
        note = form.get("note", [""])[0]
        con = db()
        cur = con.execute("INSERT INTO notes (body, tag) VALUES (?, 'Tag Secret 9901')", (note,))
        con.commit()
        self.reply(201, {"id": cur.lastrowid})


def main():
    global DB_PATH
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", action="store_true")
    a = ap.parse_args()
    DB_PATH = a.db
    if a.seed:
        seed(a.db)
        return
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
