#!/usr/bin/python3
"""varnish_backend.py - the plain HTTP/1.1 backend behind Varnish in
tests/integration/varnish.sh. Never preloaded: the test counts what Varnish
(preloaded) serves, and the backend prints one line per request it serves
("METHOD PATH"), so that the test knows which requests reached it (cache
misses, passes, pipes) and which Varnish answered from its cache.

Usage: varnish_backend.py PORT BIGFILE

Routes (everything else: 404):
  GET /api/items, /api/users/<id>   200 JSON, Cache-Control: max-age=300,
                                    an ETag (cacheable)
  GET /esi                          an HTML page including /api/users/8 by
                                    ESI, cacheable
  GET /nocache                      200, Cache-Control: no-store (Varnish
                                    passes it: a hit-for-miss)
  GET /big                          the file BIGFILE, Content-Length,
                                    cacheable
  GET /chunked                      a body sent chunked (5 x 1000 bytes,
                                    100 ms apart), cacheable
  GET /slow?ms=N                    200 after N ms, not cacheable
  GET /slowcache?ms=N               200 after N ms, cacheable (Varnish's
                                    waiting list: one fetch for many)
  GET /error                        500, not cacheable
  POST /upload                      reads the body, answers its size
  GET /pipe/..., /tunnel/...        200 with the path in the body (Varnish
                                    reaches them by return(pipe))
  GET /ws with Upgrade: websocket   101, then echoes every byte until the
                                    client closes (a tunnel)
"""
import http.server
import socketserver
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "backend"
    sys_version = ""

    def log_message(self, *args):
        pass

    def handle(self):
        # Varnish closes a connection whose client left (a killed cache
        # child's, a piped one): nothing to report.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def reply(self, status, body, ctype="application/json", cache=None, etag=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache or "no-cache, max-age=0")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def seen(self):
        print(self.command, self.path, flush=True)

    def do_GET(self):
        self.seen()
        u = urllib.parse.urlsplit(self.path)
        p = u.path
        if p == "/api/items":
            self.reply(200, b'{"items": [1, 2, 3]}\n', cache="max-age=300", etag='"items-1"')
        elif p.startswith("/api/users/") and p[11:].isdigit():
            self.reply(200, b'{"id": %s}\n' % p[11:].encode(), cache="max-age=300",
                       etag='"user-%s"' % p[11:])
        elif p == "/esi":
            self.reply(200, b'<p>before <esi:include src="/api/users/8"/> after</p>\n', ctype="text/html",
                       cache="max-age=300")
        elif p == "/nocache":
            self.reply(200, b"fresh every time\n", ctype="text/plain", cache="no-store")
        elif p == "/big":
            self.reply(200, self.server.big, ctype="application/octet-stream",
                       cache="max-age=300", etag='"big-1"')
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "max-age=300")
            self.end_headers()
            for i in range(5):
                # 100 ms apart: Varnish has begun delivering the miss
                # (streamed, chunked) before the fetch ends.
                if i:
                    time.sleep(0.1)
                self.wfile.write(b"3e8\r\n" + bytes([97 + i]) * 1000 + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/slow":
            ms = int(urllib.parse.parse_qs(u.query).get("ms", ["300"])[0])
            time.sleep(ms / 1000)
            self.reply(200, b"slept %d\n" % ms, ctype="text/plain")
        elif p == "/slowcache":
            ms = int(urllib.parse.parse_qs(u.query).get("ms", ["300"])[0])
            time.sleep(ms / 1000)
            self.reply(200, b"cached after %d\n" % ms, ctype="text/plain", cache="max-age=300")
        elif p == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                d = self.rfile.read1(65536)
                if not d:
                    break
                self.wfile.write(d)
                self.wfile.flush()
            self.close_connection = True
        elif p == "/error":
            self.reply(500, b"backend failure\n", ctype="text/plain")
        elif p.startswith("/pipe/") or p.startswith("/tunnel/"):
            self.reply(200, b"piped %s\n" % p.encode(), ctype="text/plain")
        else:
            self.reply(404, b"not found\n", ctype="text/plain")

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self.seen()
        n = int(self.headers.get("Content-Length", "0"))
        left = n
        while left > 0:
            d = self.rfile.read(min(left, 65536))
            if not d:
                break
            left -= len(d)
        if self.path == "/upload":
            self.reply(200, b'{"received": %d}\n' % (n - left))
        else:
            self.reply(404, b"not found\n", ctype="text/plain")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    with open(sys.argv[2], "rb") as f:
        srv.big = f.read()
    print("listening on", srv.server_address[1], flush=True)
    srv.serve_forever()


main()
