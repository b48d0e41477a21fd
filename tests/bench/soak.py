#!/usr/bin/python3
"""soak.py - the processes of the soak run (tests/bench/soak.sh), one per mode.

    soak.py server  --port N --db PATH [--fork]   an HTTP server using sqlite3
    soak.py load    --ports P1,P2,... --rate R --duration S --out FILE
    soak.py webhook --port N --log FILE           a flaky alert receiver
    soak.py poll    --url URL --duration S --out FILE

server: http.server (threads, or with --fork a child process per connection
that answers and calls os._exit: the collector's process table churns).
Every request runs SQL whose shapes change (an alias c<N>, N up to 20,000:
past the 5,000-shape cap), often an N+1 (one shape three times), sometimes a
failing statement (a missing table); answers 500 for /e/..., and is slow in
some 3-second windows (regressions, so alerts). Paths are the client's.

load: about R requests a second spread over the ports, on connections that
carry 1 to 5 requests each and are closed; paths /p/w<N> (N < 5,000: routes
far past max_routes), /api/users/<N> (one route), /e/<N>. Writes "sent OK
ERR" per port at the end (OK: a response was read).

webhook: POSTs answered 200 (60%), 500 (25%), or after a 15 s hang (15%).

poll: every GET endpoint of the collector's API, /metrics, the dashboard and
its assets, one round every 2 s; writes per-path counts of non-2xx answers.

Everything talks to 127.0.0.1 only, and every loop stops by itself.
"""
import argparse
import http.client
import json
import os
import random
import socketserver
import sqlite3
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

# ---------------------------------------------------------------- server

DB = None


def run_sql(path):
    con = sqlite3.connect(DB, timeout=10)
    try:
        n = random.randrange(20000)
        q = "SELECT id, title AS c%d FROM books WHERE id = ?" % n
        con.execute(q, (random.randrange(100),)).fetchall()
        if random.random() < 0.5:  # an N+1: one shape three times
            for i in range(3):
                con.execute("SELECT name FROM authors WHERE id = ?", (i,)).fetchall()
        if random.random() < 0.1:
            try:
                con.execute("SELECT * FROM missing_%d" % random.randrange(50)).fetchall()
            except sqlite3.Error:
                pass
        if random.random() < 0.05:
            con.execute("INSERT INTO notes (body) VALUES (?)", (path,))
            con.commit()
    finally:
        con.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        run_sql(self.path)
        # slow in one 3-second window of 7: regressions on every route
        if int(time.time() / 3) % 7 == 0:
            time.sleep(random.uniform(0.02, 0.04))
        else:
            time.sleep(random.uniform(0, 0.004))
        code = 500 if self.path.startswith("/e/") else 200
        body = ("error %d\n" % random.randrange(1000) if code == 500 else "ok\n").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ForkingServer(socketserver.ForkingMixIn, HTTPServer):
    max_children = 64


def seed(path):
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE IF NOT EXISTS authors (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE IF NOT EXISTS books (id INTEGER PRIMARY KEY, title TEXT);"
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT);"
    )
    con.executemany("INSERT OR IGNORE INTO authors VALUES (?, ?)", [(i, "a%d" % i) for i in range(10)])
    con.executemany("INSERT OR IGNORE INTO books VALUES (?, ?)", [(i, "b%d" % i) for i in range(100)])
    con.commit()
    con.close()


def server(a):
    global DB
    DB = a.db
    seed(DB)
    cls = ForkingServer if a.fork else ThreadingHTTPServer
    cls.daemon_threads = True
    srv = cls(("127.0.0.1", a.port), Handler)
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- load

def pick_path():
    r = random.random()
    if r < 0.6:
        return "/p/w%d" % random.randrange(5000)
    if r < 0.95:
        return "/api/users/%d" % random.randrange(100000)
    return "/e/%d" % random.randrange(1000)


def load(a):
    ports = [int(p) for p in a.ports.split(",")]
    stats = {p: [0, 0, 0] for p in ports}
    lock = threading.Lock()
    end = time.time() + a.duration
    nthreads = 8
    per_thread = a.rate / nthreads

    def worker():
        while time.time() < end:
            port = random.choice(ports)
            t0 = time.time()
            n = random.randint(1, 5)
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                for _ in range(n):
                    with lock:
                        stats[port][0] += 1
                    c.request("GET", pick_path())
                    r = c.getresponse()
                    r.read()
                    with lock:
                        stats[port][1] += 1
                c.close()
            except Exception:
                with lock:
                    stats[port][2] += 1
            # pace: n requests at per_thread a second
            d = n / per_thread - (time.time() - t0)
            if d > 0:
                time.sleep(d)

    ts = [threading.Thread(target=worker) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(a.out, "w") as f:
        for p in ports:
            f.write("%d %d %d %d\n" % (p, *stats[p]))


# ---------------------------------------------------------------- webhook

def webhook(a):
    logf = open(a.log, "a", buffering=1)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *x):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n)
            r = random.random()
            if r < 0.15:
                logf.write("hang\n")
                time.sleep(15)
                code = 200
            elif r < 0.40:
                code = 500
            else:
                code = 200
            logf.write("%d\n" % code)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- poll

def poll(a):
    paths = ["/", "/dashboard.js", "/dashboard.css", "/healthz", "/api/v1/endpoints",
             "/api/v1/requests?limit=1000", "/api/v1/requests?limit=50&route=/p/w1",
             "/api/v1/queries", "/api/v1/n-plus-one", "/api/v1/errors", "/api/v1/status",
             "/api/v1/timeseries", "/api/v1/summaries?limit=1000", "/api/v1/regressions?limit=1000",
             "/metrics", "/api/v1/profile", "/api/v1/endpoints?since=%(since)d",
             "/api/v1/queries?since=%(since)d", "/api/v1/timeseries?since=%(since)d"]
    bad = {}
    end = time.time() + a.duration
    rounds = 0
    while time.time() < end:
        rid = None
        for p in paths:
            p = p % {"since": time.time() - 300} if "%(" in p else p
            try:
                with urllib.request.urlopen(a.url + p, timeout=30) as r:
                    body = r.read()
                if p.startswith("/api/v1/requests?limit=1000"):
                    reqs = json.loads(body).get("requests", [])
                    if reqs:
                        rid = reqs[random.randrange(len(reqs))]["id"]
            except Exception as e:
                key = "%s %s" % (p, getattr(e, "code", type(e).__name__))
                bad[key] = bad.get(key, 0) + 1
        if rid is not None:
            try:
                urllib.request.urlopen("%s/api/v1/requests/%s" % (a.url, rid), timeout=30).read()
            except Exception as e:
                key = "/api/v1/requests/{id} %s" % getattr(e, "code", type(e).__name__)
                bad[key] = bad.get(key, 0) + 1
        rounds += 1
        with open(a.out, "w") as f:
            f.write("rounds %d\n" % rounds)
            for k, v in sorted(bad.items()):
                f.write("%s %d\n" % (k, v))
        time.sleep(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "load", "webhook", "poll"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ports")
    ap.add_argument("--db")
    ap.add_argument("--fork", action="store_true")
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--out")
    ap.add_argument("--log")
    ap.add_argument("--url")
    a = ap.parse_args()
    {"server": server, "load": load, "webhook": webhook, "poll": poll}[a.mode](a)


if __name__ == "__main__":
    main()
