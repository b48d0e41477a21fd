"""haproxy_backend - the backend HAProxy proxies to in the HAProxy
integration test (tests/integration/haproxy.sh); never preloaded:

    python3 tests/servers/haproxy_backend.py PORT

HTTP/1.1 with keep-alive, one thread per connection. Prints "listening on
PORT" once it accepts. Routes (every response but /chunked carries
Content-Length; HEAD answers a GET's head without its body):
  GET  /api/items        200, a small JSON array
  GET  /api/users/<n>    200, {"id": n}
  GET  /slow?ms=N        prints "slow N", sleeps N ms (default 300), then
                         200 {"slept": N}
  GET  /boom             500, "backend failure\\n"
  GET  /big              200, 1 MiB + 17 bytes of a fixed pattern
  GET  /chunked          200, 5 chunks of 1000 bytes (Transfer-Encoding)
  POST /upload           200, reads the body (Content-Length or chunked),
                         answers "got <bytes>"
  GET  /garbage          writes bytes that are not HTTP and closes
  anything else          404, "no such route\\n"
"""
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIG = (b"0123456789abcdef" * 65536) + b"the end of /big.\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        path, _, query = self.path.partition("?")
        if path == "/api/items":
            return self.reply(200, b'{"items": [1, 2, 3]}\n')
        m = re.fullmatch(r"/api/users/([0-9]+)", path)
        if m:
            return self.reply(200, b'{"id": %s}\n' % m.group(1).encode())
        if path == "/slow":
            m = re.search(r"(?:^|&)ms=([0-9]+)", query)
            ms = int(m.group(1)) if m else 300
            sys.stdout.write("slow %d\n" % ms)  # one line, whole, per request
            sys.stdout.flush()
            time.sleep(ms / 1000)
            return self.reply(200, b'{"slept": %d}\n' % ms)
        if path == "/boom":
            return self.reply(500, b"backend failure\n", "text/plain")
        if path == "/big":
            return self.reply(200, BIG, "application/octet-stream")
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(5):
                    self.wfile.write(b"3e8\r\n" + bytes([65 + i]) * 1000 + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            return None
        if path == "/garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return None
        return self.reply(404, b"no such route\n", "text/plain")

    def do_GET(self):
        self.route()

    do_HEAD = do_GET

    def do_POST(self):
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                n += len(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    break
        else:
            n = len(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if self.path.partition("?")[0] != "/upload":
            return self.reply(404, b"no such route\n", "text/plain")
        return self.reply(200, b"got %d\n" % n, "text/plain")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # HAProxy resets the connections it gives up on (the 504's, the
        # 502's, idle ones at a reload): not worth a traceback each.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    print("listening on", srv.server_address[1], flush=True)
    srv.serve_forever()


main()
