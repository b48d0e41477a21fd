#!/usr/bin/env python3
"""kaclient.py - exactly N HTTP/1.1 requests on one keep-alive connection.

usage: kaclient.py PORT N [PATH]

Used by scripts/bench.sh to drive nginx under callgrind: a fixed, repeatable
number of requests, each sent only after the previous response was read in
full (by Content-Length), so every run of N requests makes nginx execute the
same code. Exits 1 (with a message) on any short or unexpected response.
"""
import socket
import sys
import time


def connect(port, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2])
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/ok"
    req = ("GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n"
           "Accept: */*\r\n\r\n" % path).encode()
    s = connect(port, time.monotonic() + 120)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for i in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("kaclient: connection closed after %d responses" % i)
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            sys.exit("kaclient: unexpected response %r" % head[:80])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("kaclient: body cut short after %d responses" % i)
            buf += chunk
        buf = buf[length:]
    s.close()


if __name__ == "__main__":
    main()
