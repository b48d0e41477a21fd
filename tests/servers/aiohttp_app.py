"""aiohttp_app - an aiohttp 3.8 application for the Python event-loop
server test (tests/integration/pyasync.sh):

    PYASYNC_APP_DB=PATH python3 tests/servers/aiohttp_app.py PORT [reuse_port]

Serves 127.0.0.1:PORT on one asyncio loop (web.AppRunner and TCPSite,
aiohttp's C HTTP parser), printing "aiohttp_app: worker PID ready" once
it listens. With reuse_port, its socket is bound with SO_REUSEPORT, so
several such processes share the port (the kernel spreads connections
over them), as aiohttp's docs suggest for more than one process. With
PYASYNC_APP_TLS_PORT set, it also serves HTTPS there (asyncio's TLS:
ssl.MemoryBIO, not the socket), with the certificate and key in the PEM
file $PYASYNC_APP_CERT.

Routes (the same as tornado_app.py's):
  GET|HEAD /hello         200, "hello\\n" (aiohttp adds HEAD to every GET
                          route and drops its body)
  GET  /items/<n>         200, {"id": n}
  GET  /stream            200, a StreamResponse of 5 writes of 1000 bytes:
                          aiohttp sends them chunked
  GET  /stream/boom       200 and one written piece, then an exception:
                          aiohttp closes the connection mid-body
  GET  /stream/cut        the same with a Content-Length of 5000
  POST /upload            200, "got <bytes of the body>"
  GET  /boom              an exception: aiohttp's own 500 ("500 Internal
                          Server Error", text/plain) and a close
  GET  /slow?ms=N&n=K     waits until K /slow of this process have arrived,
                          then asyncio.sleep(N ms), then 200 "slept\\n"
  GET  /wait?ms=N          asyncio.sleep(N ms), then 200 "waited\n"
  GET  /sql/loop          4 sqlite3 statements on the loop's thread
  GET  /sql/pool          the same 4 by run_in_executor (default executor)
  GET  /sql/pair          see pyasync_common.pair
  GET  /sql/beside?n=K    see pyasync_common.beside
  GET|HEAD /files/<name>  the file of that name in $PYASYNC_APP_FILES
                          (add_static: a FileResponse, sent with
                          sendfile(2) by asyncio's loop.sendfile; Range
                          requests answered 206)
  GET  /ws                a WebSocket (web.WebSocketResponse): each text
                          message is echoed, but "sql", which runs the 4
                          statements on the loop and answers their rows
  anything else           aiohttp's 404, "404: Not Found"
"""
import asyncio
import os
import ssl
import sys

from aiohttp import web

import pyasync_common as common


async def hello(request):
    return web.Response(text="hello\n")


async def items(request):
    return web.json_response({"id": int(request.match_info["n"])})


async def stream(request):
    cut = request.match_info.get("cut")
    resp = web.StreamResponse()
    resp.content_type = "text/plain"
    if cut == "cut":
        resp.content_length = 5000
    await resp.prepare(request)
    for i in range(5):
        await resp.write(b"%d" % i * 1000)
        if cut:
            raise RuntimeError("stream/%s: the body failed on purpose" % cut)
    await resp.write_eof()
    return resp


async def upload(request):
    return web.Response(text="got %d" % len(await request.read()))


async def boom(request):
    raise RuntimeError("boom: the application failed on purpose")


async def slow(request):
    q = request.query
    if not await common.slow(int(q.get("ms", "100")), int(q.get("n", "1"))):
        return web.Response(status=504, text="the other slow requests did not come\n")
    return web.Response(text="slept\n")


async def wait(request):
    await asyncio.sleep(int(request.query.get("ms", "100")) / 1000.0)
    return web.Response(text="waited\n")


async def sql(request):
    kind = request.match_info["kind"]
    if kind == "loop":
        out = common.loop_statements()
    elif kind == "pool":
        out = await common.in_pool()
    elif kind == "pair":
        out = await common.pair()
    else:
        out = await common.beside(int(request.query.get("n", "1")))
    if out is None:
        return web.json_response({"error": "the other requests did not come"}, status=504)
    return web.json_response(out)


async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.data == "sql":
            await sock.send_json(common.loop_statements())
        else:
            await sock.send_str(msg.data)
    return sock


async def serve(port, reuse_port):
    app = web.Application(client_max_size=4 << 20)  # the default, 1 MiB, refuses a 1 MiB body (>=)
    app.router.add_get("/hello", hello)
    app.router.add_get(r"/items/{n:\d+}", items)
    app.router.add_get("/stream", stream)
    app.router.add_get("/stream/{cut:boom|cut}", stream)
    app.router.add_post("/upload", upload)
    app.router.add_get("/boom", boom)
    app.router.add_get("/slow", slow)
    app.router.add_get("/wait", wait)
    app.router.add_get("/sql/{kind:loop|pool|pair|beside}", sql)
    app.router.add_get("/ws", ws)
    if os.environ.get("PYASYNC_APP_FILES"):
        app.router.add_static("/files", os.environ["PYASYNC_APP_FILES"])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port).start()
    if os.environ.get("PYASYNC_APP_TLS_PORT"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.environ["PYASYNC_APP_CERT"])
        await web.TCPSite(runner, "127.0.0.1", int(os.environ["PYASYNC_APP_TLS_PORT"]), ssl_context=ctx).start()
    print("aiohttp_app: worker %d ready" % os.getpid(), flush=True)
    await asyncio.Event().wait()


def main():
    common.open_loop_connection()
    asyncio.run(serve(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "reuse_port"))


if __name__ == "__main__":
    main()
