#!/usr/bin/python3
"""h2_burn.py - an HTTP/2 server (prior knowledge, python3-h2) whose
requests burn CPU, for tests/integration/h2.sh's CPU-profile part.

GET /burn?ms=N spins the serving thread for N ms (at most 2000), then
answers 200; GET /crash kills the process with SIGSEGV while its request is
in flight; anything else answers 200 at once. One thread per connection;
streams are served in turn.

Usage: h2_burn.py PORT   (prints "listening" once it accepts)
"""
import signal
import sys
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events


def spin(ms):
    end = time.thread_time() + min(ms, 2000) / 1000.0
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x += i * i
    return x


def handle(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    try:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    url = urllib.parse.urlsplit(dict(ev.headers)[":path"])
                    if url.path == "/crash":
                        # at this thread, the one serving the stream
                        signal.pthread_kill(threading.get_ident(), signal.SIGSEGV)
                    if url.path == "/burn":
                        ms = int(urllib.parse.parse_qs(url.query).get("ms", ["100"])[0])
                        spin(ms)
                    body = b"ok\n"
                    conn.send_headers(ev.stream_id, [(":status", "200"),
                                                     ("content-length", str(len(body)))])
                    conn.send_data(ev.stream_id, body, end_stream=True)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    # h2_upgrade.py's accept loop: a thread per connection
    from h2_upgrade import serve_forever
    serve_forever(int(sys.argv[1]), handle)
