#!/usr/bin/python3
"""h2_hostile.py - HTTP/2 clients that hold a server's resources, for
tests/integration/h2hostile.sh. Raw frames, no library: HPACK from the
static table and literals without indexing only.

Usage: h2_hostile.py PORT hold CONNS STREAMS
  CONNS connections on PORT (h2c), each opening one stream, then each
  STREAMS - 1 more at once (GET /hold/N, END_STREAM), all with an
  initial window of 0: the server
  answers each with a HEADERS frame but can send no DATA, so every
  stream stays open. Once every stream has its HEADERS it prints
  "ready <streams answered>" and waits for a line on stdin, then closes
  everything and prints "closed".

Usage: h2_hostile.py PORT burst ROUNDS [UPDATE [eager]]
  ROUNDS connections, one after the other, each sending the preface and
  its SETTINGS, waiting for the server's first bytes (its SETTINGS), then
  sending in one write a GET /fast whose :path enters the HPACK table
  (incremental indexing), a GET naming that entry (index 62), and only
  then the ACK of the server's SETTINGS, as a client that acts on them
  late may (RFC 9113 6.5.3: until then its encoder keeps the default
  4,096-byte table); then a third GET naming it again, its block
  beginning with a table size update to UPDATE when given (as an
  encoder does that takes up a larger table the server allowed). Reads
  until the three streams end; prints "answered N" (N streams ended).
  With "eager" after UPDATE: all of it in one write, without waiting for
  the server's first bytes, so the server reads the size update before
  it writes anything after its first read (as a loaded server may when
  the client's writes arrive together).

Usage: h2_hostile.py PORT six [N]
  Six (or N) GETs (/q/1 to /q/6) in one write on one connection, or with
  N = 1 a GET /one; prints "answered N" (the streams that ended).

Usage: h2_hostile.py PORT sqlserve DB
  A one-thread python3-h2 server with SQLite (DB): on each connection,
  once six requests are in, it answers the 3rd to 5th, then runs a
  statement for the 1st and for the 2nd before answering each, then
  answers the 6th; a connection whose request is GET /one gets a
  statement and an answer. Prints "listening on PORT".

Usage: h2_hostile.py PORT flood STREAMS
  One connection per attack, one after the other: STREAMS GETs of
  /rst/N each reset (RST_STREAM(CANCEL)) right after its HEADERS, all in
  one write (rapid reset); 5,000 PINGs then a GET /ping; 100 GETs of
  /resize/N whose blocks begin with table size updates to 0 and 4096; a
  GET /fields with 2,000 more fields; HEADERS of /cont followed by 2,000
  CONTINUATION frames of 4 KiB without END_HEADERS (CONTINUATION flood)
  until the server closes; a POST /big of four 16,384-byte DATA frames.
  Prints "ATTACK ENDED CLOSED" per attack: the streams that ended, and
  whether the server closed the connection.
"""
import socket
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, SETTINGS = 0x1, 0x4
END_STREAM, END_HEADERS = 0x1, 0x4
SETTINGS_INITIAL_WINDOW_SIZE = 0x4


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def literal(index, value):
    """A literal field without indexing, its name from the static table."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index, len(v)]) + v


def get(sid, path):
    # :method GET, :scheme http, :authority, :path
    block = b"\x82\x86" + literal(1, "localhost") + literal(4, path)
    return frame(HEADERS, END_STREAM | END_HEADERS, sid, block)


def answered(buf):
    """HEADERS frames the server sent in buf (whole frames), and the rest."""
    n = 0
    while len(buf) >= 9:
        length = int.from_bytes(buf[0:3], "big")
        if len(buf) < 9 + length:
            break
        if buf[3] == HEADERS:
            n += 1
        buf = buf[9 + length:]
    return n, buf


def hold(port, conns, streams):
    socks = []
    # Every connection first, with one stream each; then the other
    # streams: the server holds all its connections before their streams
    # grow.
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(20)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0)) +
                  get(1, "/hold/0"))
        socks.append([s, b"", 0])
    total = 0
    for phase in (range(0, 1), range(1, streams)):
        for c in socks:
            if phase.start:
                c[0].sendall(b"".join(get(2 * i + 1, "/hold/%d" % i) for i in phase))
            while c[2] < phase.stop:
                data = c[0].recv(65536)
                if not data:
                    sys.exit("the server closed a connection")
                n, c[1] = answered(c[1] + data)
                c[2] += n
    print("ready", sum(c[2] for c in socks), flush=True)
    sys.stdin.readline()
    for c in socks:
        c[0].close()
    print("closed", flush=True)


def ended(buf):
    """Frames with END_STREAM (HEADERS or DATA) in buf's whole frames, and
    the rest."""
    n = 0
    while len(buf) >= 9:
        length = int.from_bytes(buf[0:3], "big")
        if len(buf) < 9 + length:
            break
        if buf[3] in (0x0, HEADERS) and buf[4] & END_STREAM:
            n += 1
        buf = buf[9 + length:]
    return n, buf


def burst(port, rounds, update=None, eager=False):
    total = 0
    for _ in range(rounds):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        pending = PREFACE + frame(SETTINGS, 0, 0, b"")
        first = b""
        if not eager:
            s.sendall(pending)
            pending = b""
            first = s.recv(65536)
            if not first:
                sys.exit("the server closed the connection")
        # :method GET, :scheme http, :authority, then :path /fast with
        # incremental indexing (name index 4), or as dynamic index 62
        head = b"\x82\x86" + literal(1, "localhost")
        out = frame(HEADERS, END_STREAM | END_HEADERS, 1, head + b"\x44\x05/fast")
        out += frame(HEADERS, END_STREAM | END_HEADERS, 3, head + b"\xbe")
        out += frame(SETTINGS, 0x1, 0, b"")
        pending += out
        if not eager:
            s.sendall(pending)
            pending = b""
        resize = b""
        if update is not None:
            # a dynamic table size update (RFC 7541 6.3), 5-bit prefix
            resize, v = b"\x3f", update - 31
            while v >= 128:
                resize += bytes([v % 128 + 128])
                v //= 128
            resize += bytes([v])
        s.sendall(pending + frame(HEADERS, END_STREAM | END_HEADERS, 5, resize + head + b"\xbe"))
        got, buf = ended(first)
        while got < 3:
            data = s.recv(65536)
            if not data:
                break
            n, buf = ended(buf + data)
            got += n
        total += got
        s.close()
    print("answered", total, flush=True)


def drain(s, want=None):
    """Reads until the server closes (or 5 s of silence, or `want` streams
    ended); returns the streams ended and whether it closed."""
    s.settimeout(5)
    got, buf = 0, b""
    try:
        while want is None or got < want:
            data = s.recv(65536)
            if not data:
                return got, True
            n, buf = ended(buf + data)
            got += n
    except (socket.timeout, ConnectionResetError):
        pass
    return got, False


def flood(port, streams):
    """One connection per attack, each ending with a plain GET when the
    server still listens; prints one line per attack."""
    head = b"\x82\x86" + literal(1, "localhost")
    hello = PREFACE + frame(SETTINGS, 0, 0, b"")

    # rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL), many
    s = socket.create_connection(("127.0.0.1", port))
    out = hello + b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, head + literal(4, "/rst/%d" % i)) +
                           frame(0x3, 0, 2 * i + 1, struct.pack(">I", 8)) for i in range(streams))
    s.sendall(out)
    print("rst", *drain(s, streams), flush=True)
    s.close()

    # PING flood, then one GET
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello + frame(0x6, 0, 0, b"12345678") * 5000 + frame(HEADERS, END_STREAM | END_HEADERS, 1, head + literal(4, "/ping")))
    print("ping", *drain(s, 1), flush=True)
    s.close()

    # dynamic table size updates (0, then 4096) before every block
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello + b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1,
                                     b"\x20\x3f\xe1\x1f" + head + b"\x44" + bytes([len("/resize/%d" % i)]) + b"/resize/%d" % i)
                               for i in range(100)))
    print("resize", *drain(s, 100), flush=True)
    s.close()

    # 2,000 fields in one block (accept-encoding from the static table)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello + frame(HEADERS, END_STREAM | END_HEADERS, 1, head + literal(4, "/fields") + b"\x90" * 2000))
    print("fields", *drain(s, 1), flush=True)
    s.close()

    # CONTINUATION flood (CVE-2024-27316): a block that never ends
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello + frame(HEADERS, 0, 1, head + literal(4, "/cont")))
    # 40 fields "x-pad: xxx..." (literal names, not indexed)
    pad = (b"\x00\x05x-pad\x64" + b"x" * 100) * 40
    closed = False
    for _ in range(2000):
        try:
            s.sendall(frame(0x9, 0, 1, pad))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    print("continuation", *drain(s, None), flush=True)
    s.close()

    # frames of the largest default size (16,384) on a stream: a POST's body
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(hello + frame(HEADERS, END_HEADERS, 1, b"\x83\x86" + literal(1, "localhost") + literal(4, "/big")) +
              frame(0x0, 0, 1, b"z" * 16384) * 3 + frame(0x0, END_STREAM, 1, b"z" * 16384))
    print("big", *drain(s, 1), flush=True)
    s.close()


def six(port, n=6):
    """n GETs of /q/1../q/n (n = 1: a GET /one) in one write on one
    connection; prints "answered N"."""
    s = socket.create_connection(("127.0.0.1", port))
    head = b"\x82\x86" + literal(1, "localhost")
    paths = ["/q/%d" % (i + 1) for i in range(n)] if n > 1 else ["/one"]
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") +
              b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, head + literal(4, p))
                       for i, p in enumerate(paths)))
    print("answered", drain(s, n)[0], flush=True)
    s.close()


def sqlserve(port, db):
    """One connection at a time, one thread: once six requests are in, it
    answers the 3rd, 4th and 5th, then runs one SQLite statement for each
    of the 1st and 2nd before answering it, then answers the 6th. Each
    statement runs while three streams are in flight."""
    import sqlite3
    import h2.config
    import h2.connection
    import h2.events
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(4)
    dbc = sqlite3.connect(db)
    print("listening on", port, flush=True)
    while True:
        sock, _ = lsock.accept()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams, want = [], 6
        while len(streams) < want:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams.append(ev.stream_id)
                    if dict(ev.headers).get(b":path") == b"/one":
                        want = 1
        order = (2, 3, 4, 0, 1, 5) if want == 6 else (0,)
        for k in order[:len(streams)]:
            if k < 2:
                dbc.execute("SELECT count(*) FROM sqlite_master").fetchall()
            conn.send_headers(streams[k], [(":status", "200"), ("content-length", "3")])
            conn.send_data(streams[k], b"ok\n", end_stream=True)
            sock.sendall(conn.data_to_send())
        drain(sock, None)
        sock.close()


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    if scenario == "hold":
        hold(port, int(sys.argv[3]), int(sys.argv[4]))
    elif scenario == "flood":
        flood(port, int(sys.argv[3]))
    elif scenario == "six":
        six(port, int(sys.argv[3]) if len(sys.argv) > 3 else 6)
    elif scenario == "sqlserve":
        sqlserve(port, sys.argv[3])
    elif scenario == "burst":
        burst(port, int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None,
              len(sys.argv) > 5 and sys.argv[5] == "eager")
    else:
        sys.exit("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
