#!/usr/bin/python3
"""h2_upgrade.py - an HTTP/1.1 server that accepts `Upgrade: h2c`, for
tests/integration/h2.sh (neither nginx nor Node implements the upgrade).

A request with `Upgrade: h2c` and `HTTP2-Settings` is answered "101
Switching Protocols"; the connection then speaks HTTP/2 (python3-h2): the
upgrading request's response on stream 1, then any further streams the
client opens, each answered 200 with a small body. Any other request gets
an HTTP/1.1 200 and the connection stays HTTP/1.1 (keep-alive).

Usage: h2_upgrade.py PORT   (prints "listening" once it accepts)
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def respond(conn, sid, path):
    body = ("h2 %s\n" % path).encode()
    conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body))),
                            ("content-type", "text/plain")])
    conn.send_data(sid, body, end_stream=True)


def serve_h2(sock, settings, first_path, rest):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding="utf-8"))
    conn.initiate_upgrade_connection(settings)
    respond(conn, 1, first_path)
    sock.sendall(conn.data_to_send())
    data = rest
    while True:
        if data:
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    respond(conn, ev.stream_id, dict(ev.headers)[":path"])
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        data = sock.recv(65536)
        if not data:
            return


def handle(sock):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = sock.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if hdrs.get("upgrade", "").lower() == "h2c" and "http2-settings" in hdrs:
                sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: h2c\r\n\r\n")
                serve_h2(sock, hdrs["http2-settings"].encode(), path, buf)
                return
            body = ("h1 %s %s\n" % (method, path)).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()


def serve_forever(port, handler):
    """Accepts on 127.0.0.1:port, prints "listening", and serves each
    connection with handler(sock) on a thread of its own (h2_burn.py
    uses it too)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    print("listening", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


if __name__ == "__main__":
    serve_forever(int(sys.argv[1]), handle)
