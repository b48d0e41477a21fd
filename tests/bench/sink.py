#!/usr/bin/env python3
"""sink.py - a stand-in for apiprof-collector's socket: receives and counts.

usage: sink.py SOCKET_PATH COUNT_FILE

Binds a Unix datagram socket at SOCKET_PATH (mode 0666, like the collector's)
and reads datagrams until SIGTERM, then writes "DATAGRAMS BYTES" to
COUNT_FILE. scripts/bench.sh uses it when apiprof-collector is not built, so
that the preload still ships its batches to a live reader (its cost is the
same whoever reads); nothing is decoded.
"""
import os
import signal
import socket
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    path, count_file = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(path)
    os.chmod(path, 0o666)
    n = nbytes = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s.settimeout(0.2)
    while not stop:
        try:
            d = s.recv(1 << 17)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        n += 1
        nbytes += len(d)
    with open(count_file, "w") as f:
        f.write("%d %d\n" % (n, nbytes))
    os.unlink(path)


if __name__ == "__main__":
    main()
