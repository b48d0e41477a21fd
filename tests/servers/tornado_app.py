"""tornado_app - a Tornado 6 application for the Python event-loop server
test (tests/integration/pyasync.sh):

    PYASYNC_APP_DB=PATH python3 tests/servers/tornado_app.py PORT [PROCESSES]

Binds 127.0.0.1:PORT (tornado.netutil.bind_sockets), then with PROCESSES
above 1 forks that many children (tornado.process.fork_processes: the
parent only waits for them; each child dies with it, PR_SET_PDEATHSIG),
and serves on one asyncio loop per process (tornado.httpserver), printing
"tornado_app: worker PID ready" once it does. With PYASYNC_APP_TLS_PORT
set, it also serves HTTPS there (Tornado's SSLIOStream: Python's ssl
module on the socket), with the certificate and key in the PEM file
$PYASYNC_APP_CERT.

Routes (the same as aiohttp_app.py's):
  GET|HEAD /hello         200, "hello\\n" (Tornado drops a HEAD's body)
  GET  /items/<n>         200, {"id": n}
  GET  /stream            200, 5 pieces of 1000 bytes, each written and
                          flushed (self.flush()): Tornado sends them chunked
  GET  /stream/boom       200 and one flushed piece, then an exception:
                          Tornado logs "Cannot send error response after
                          headers written" and finishes the chunked body
                          (its last chunk): a complete 200 on the wire
  GET  /stream/cut        the same with a Content-Length of 5000: finishing
                          fails (1000 bytes of 5000), Tornado closes the
                          connection mid-body
  POST /upload            200, "got <bytes of the body>"
  GET  /boom              an exception: Tornado's own 500 (an HTML page,
                          "500: Internal Server Error"), connection kept
  GET  /slow?ms=N&n=K     waits until K /slow of this process have arrived,
                          then asyncio.sleep(N ms), then 200 "slept\\n"
  GET  /wait?ms=N          asyncio.sleep(N ms), then 200 "waited\n"
  GET  /sql/loop          4 sqlite3 statements on the loop's thread
  GET  /sql/pool          the same 4 by run_in_executor (default executor)
  GET  /sql/pair          see pyasync_common.pair
  GET  /sql/beside?n=K    see pyasync_common.beside
  GET|HEAD /files/<name>  the file of that name in $PYASYNC_APP_FILES
                          (StaticFileHandler: read and written 64 KiB at a
                          time, each piece flushed; Range requests
                          answered 206)
  GET  /ws                a WebSocket (tornado.websocket): each text
                          message is echoed, but "sql", which runs the 4
                          statements on the loop and answers their rows
  anything else           Tornado's 404 page
"""
import asyncio
import ctypes
import os
import signal
import ssl
import sys

import tornado.httpserver
import tornado.netutil
import tornado.process
import tornado.web
import tornado.websocket

import pyasync_common as common


class Hello(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write(b"hello\n")

    head = get


class Items(tornado.web.RequestHandler):
    def get(self, n):
        self.write({"id": int(n)})


class Stream(tornado.web.RequestHandler):
    async def get(self):
        self.set_header("Content-Type", "text/plain")
        for i in range(5):
            self.write(b"%d" % i * 1000)
            await self.flush()


class StreamBoom(tornado.web.RequestHandler):
    async def get(self, cut):
        self.set_header("Content-Type", "text/plain")
        if cut == "cut":
            self.set_header("Content-Length", "5000")
        self.write(b"0" * 1000)
        await self.flush()
        raise RuntimeError("stream/%s: the body failed on purpose" % cut)


class Upload(tornado.web.RequestHandler):
    def post(self):
        self.set_header("Content-Type", "text/plain")
        self.write(b"got %d" % len(self.request.body))


class Boom(tornado.web.RequestHandler):
    def get(self):
        raise RuntimeError("boom: the application failed on purpose")


class Slow(tornado.web.RequestHandler):
    async def get(self):
        ok = await common.slow(int(self.get_argument("ms", "100")), int(self.get_argument("n", "1")))
        if not ok:
            self.set_status(504)
        self.write(b"slept\n" if ok else b"the other slow requests did not come\n")


class Wait(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(int(self.get_argument("ms", "100")) / 1000.0)
        self.write(b"waited\n")


class Sql(tornado.web.RequestHandler):
    async def get(self, kind):
        if kind == "loop":
            out = common.loop_statements()
        elif kind == "pool":
            out = await common.in_pool()
        elif kind == "pair":
            out = await common.pair()
        else:
            out = await common.beside(int(self.get_argument("n", "1")))
        if out is None:
            self.set_status(504)
            out = {"error": "the other requests did not come"}
        self.write(out)


class Ws(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        if message == "sql":
            self.write_message(common.loop_statements())
        else:
            self.write_message(message)


def make_app():
    return tornado.web.Application([
        (r"/hello", Hello),
        (r"/items/(\d+)", Items),
        (r"/stream", Stream),
        (r"/stream/(boom|cut)", StreamBoom),
        (r"/upload", Upload),
        (r"/boom", Boom),
        (r"/slow", Slow),
        (r"/wait", Wait),
        (r"/sql/(loop|pool|pair|beside)", Sql),
        (r"/ws", Ws),
        (r"/files/(.*)", tornado.web.StaticFileHandler, {"path": os.environ.get("PYASYNC_APP_FILES", "/nonexistent")}),
    ])


async def serve(sockets, tls_sockets):
    server = tornado.httpserver.HTTPServer(make_app())
    server.add_sockets(sockets)
    if tls_sockets:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.environ["PYASYNC_APP_CERT"])
        tls = tornado.httpserver.HTTPServer(make_app(), ssl_options=ctx)
        tls.add_sockets(tls_sockets)
    print("tornado_app: worker %d ready" % os.getpid(), flush=True)
    await asyncio.Event().wait()


def main():
    port = int(sys.argv[1])
    procs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    sockets = tornado.netutil.bind_sockets(port, "127.0.0.1")
    tls_port = os.environ.get("PYASYNC_APP_TLS_PORT")
    tls_sockets = tornado.netutil.bind_sockets(int(tls_port), "127.0.0.1") if tls_port else []
    if procs > 1:
        tornado.process.fork_processes(procs, max_restarts=0)
        # A child: Tornado's parent forwards no signal; die with it.
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    common.open_loop_connection()
    asyncio.run(serve(sockets, tls_sockets))


if __name__ == "__main__":
    main()
