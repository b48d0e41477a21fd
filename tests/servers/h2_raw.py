#!/usr/bin/python3
"""h2_raw.py - an HTTP/2 client for the edges of tests/integration/h2.sh.

Built on python3-h2 (Debian's h2: the connection's state, HPACK), with every
frame it produces split out and counted per stream before it is sent, so
that the test knows each stream's exact bytes_in (the client's frames on
it, 9-byte headers included) and bytes_out (the server's frames on it),
and may re-frame what h2 produced (HEADERS with PADDED and PRIORITY) or
send it in odd pieces.

Usage: h2_raw.py PORT SCENARIO [ROUNDS]
  edges    (nginx, h2c) one connection: a GET whose 40,000-character header
           makes a header block of HEADERS + CONTINUATION frames, its
           HEADERS re-framed with PADDED and PRIORITY, the query string
           "?token=secret" on its :path; a POST whose HEADERS carries
           PRIORITY and whose body is three DATA frames, the last PADDED;
           a plain GET (HPACK's dynamic table now in use) and, after its
           end, a RST_STREAM for it (too late: completed); a GET sent with
           its RST_STREAM(CANCEL) in the same write (the server reads the
           reset before it can answer: aborted); a last GET.
  split    (nginx, h2c) the preface in 21 writes ("PRI ", then a byte per
           write), then a GET whose HEADERS frame is cut inside its 9-byte
           header.
  close    (Node) a POST to /echo (HEADERS, three DATA frames, one padded)
           answered; then a GET /slow?ms=1500 on the same connection,
           which is closed 300 ms later, unanswered.
  garbage  (any) seven connections that send the preface and then
           something that is no request: random bytes, an undecodable
           header block, an HTTP/1.1 request, a CONTINUATION without
           HEADERS, a frame announcing 16 MiB, nothing at all, HEADERS on
           stream 0; ROUNDS times over (default 1).
Prints one JSON object per stream (edges, split, close) or per connection
(garbage) on stdout; exits non-zero on a protocol failure of its own.
"""
import json
import os
import random
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
CONTINUATION = 0x9
NAMES = {0x0: "DATA", 0x1: "HEADERS", 0x2: "PRIORITY", 0x3: "RST_STREAM", 0x5: "PUSH_PROMISE",
         0x8: "WINDOW_UPDATE", 0x9: "CONTINUATION"}
END_STREAM, END_HEADERS, PADDED, PRIO_FLAG = 0x1, 0x4, 0x8, 0x20
MAX_FRAME = 16384


def frames_of(data):
    """Splits whole frames; returns (list of (type, flags, sid, raw), rest)."""
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[0:3], "big")
        if len(data) < 9 + length:
            break
        ftype, flags = data[3], data[4]
        sid = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        out.append((ftype, flags, sid, data[:9 + length]))
        data = data[9 + length:]
    return out, data


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.sent = {}       # stream id -> bytes of the frames we sent on it
        self.received = {}   # stream id -> bytes of the server's frames on it
        self.ended = set()   # streams the server ended (END_STREAM)
        self.server_rst = {}  # stream id -> the server's RST_STREAM code
        self.status = {}
        self.seen = {}       # stream id -> the server's frames on it, in order
        self.inbuf = b""
        self.settings = False
        self.closed = False

    def pending(self):
        """h2's pending output as frames (the preface, if any, apart)."""
        data = self.conn.data_to_send()
        pre = b""
        if data.startswith(PREFACE):
            pre, data = PREFACE, data[len(PREFACE):]
        fr, rest = frames_of(data)
        assert not rest, "h2 produced a partial frame"
        return pre, fr

    def count(self, fr):
        for _, _, sid, raw in fr:
            if sid:
                self.sent[sid] = self.sent.get(sid, 0) + len(raw)

    def send_frames(self, pre, fr, pieces=None):
        """Counts then sends; PIECES: byte offsets at which to cut the
        write into several, 20 ms apart."""
        self.count(fr)
        data = pre + b"".join(raw for _, _, _, raw in fr)
        if not pieces:
            self.sock.sendall(data)
            return
        last = 0
        for cut in list(pieces) + [len(data)]:
            self.sock.sendall(data[last:cut])
            last = cut
            time.sleep(0.02)

    def flush(self):
        pre, fr = self.pending()
        if pre or fr:
            self.send_frames(pre, fr)

    def read_once(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.inbuf += data
        fr, self.inbuf = frames_of(self.inbuf)
        for ftype, flags, sid, raw in fr:
            if sid:
                self.received[sid] = self.received.get(sid, 0) + len(raw)
                name = NAMES.get(ftype, "type%d" % ftype)
                if ftype in (DATA, HEADERS) and flags & END_STREAM:
                    name += "+END_STREAM"
                if ftype == RST_STREAM:
                    name += "(%d)" % int.from_bytes(raw[9:13], "big")
                self.seen.setdefault(sid, []).append(name)
                if ftype in (DATA, HEADERS) and flags & END_STREAM:
                    self.ended.add(sid)
                if ftype == RST_STREAM:
                    self.server_rst[sid] = int.from_bytes(raw[9:13], "big")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.status[ev.stream_id] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings = True
        self.flush()

    def wait(self, cond, secs=10):
        end = time.time() + secs
        while not cond() and not self.closed and time.time() < end:
            self.read_once()
        if not cond():
            raise SystemExit("h2_raw: timed out or closed while waiting")

    def start(self, preface_pieces=False):
        self.conn.initiate_connection()
        pre, fr = self.pending()
        if preface_pieces:
            # "PRI " first (a first read of "P" alone may begin a POST: the
            # preload decides on the first read), then a byte per write.
            self.sock.sendall(pre[:4])
            for i in range(4, len(pre)):
                time.sleep(0.002)
                self.sock.sendall(pre[i:i + 1])
            self.send_frames(b"", fr)
        else:
            self.send_frames(pre, fr)
        self.wait(lambda: self.settings)

    def report(self, sid, path, **extra):
        d = {"stream": sid, "path": path, "status": self.status.get(sid),
             "bytes_in": self.sent.get(sid, 0), "bytes_out": self.received.get(sid, 0),
             "ended": sid in self.ended, "server_rst": self.server_rst.get(sid),
             "server_frames": " ".join(self.seen.get(sid, []))}
        d.update(extra)
        print(json.dumps(d), flush=True)


def req_headers(method, path, extra=()):
    return [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", "127.0.0.1"), ("user-agent", "apiprof-h2-test")] + list(extra)


def padded_priority(fr, sid, pad=17):
    """Re-frames stream SID's header block (HEADERS + CONTINUATIONs, as h2
    made them) as a HEADERS frame with PADDED and PRIORITY (depends on 0,
    weight 200) and CONTINUATIONs of at most 16,384 bytes; the block itself
    is unchanged, so h2's HPACK state stays right."""
    block, es, out, at = b"", 0, [], None
    for i, (ftype, flags, s, raw) in enumerate(fr):
        if s == sid and ftype in (HEADERS, CONTINUATION):
            if at is None:
                at = i
            block += raw[9:]
            if ftype == HEADERS:
                es = flags & END_STREAM
    rest = [f for f in fr if not (f[2] == sid and f[0] in (HEADERS, CONTINUATION))]
    head = bytes([pad]) + struct.pack(">IB", 0, 199)
    room = MAX_FRAME - len(head) - pad
    first, block = block[:room], block[room:]
    flags = es | PADDED | PRIO_FLAG | (0 if block else END_HEADERS)
    raw = frame(HEADERS, flags, sid, head + first + b"\0" * pad)
    out.append((HEADERS, flags, sid, raw))
    while block:
        piece, block = block[:MAX_FRAME], block[MAX_FRAME:]
        f = 0 if block else END_HEADERS
        out.append((CONTINUATION, f, sid, frame(CONTINUATION, f, sid, piece)))
    return rest[:at] + out + rest[at:]


def edges(port):
    c = Client(port)
    c.start()
    rnd = random.Random(7)
    big = "".join(rnd.choice("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                  for _ in range(40000))
    # 1: HEADERS (PADDED, PRIORITY) + CONTINUATIONs, query string on :path.
    c.conn.send_headers(1, req_headers("GET", "/api/users/4242?token=secret", [("x-big", big)]),
                        end_stream=True)
    pre, fr = c.pending()
    fr = padded_priority(fr, 1)
    conts = sum(1 for f in fr if f[0] == CONTINUATION)
    c.send_frames(pre, fr)
    c.wait(lambda: 1 in c.ended or 1 in c.server_rst)
    c.report(1, "/api/users/4242", continuations=conts)
    # 3: POST, HEADERS with PRIORITY, three DATA frames, the last padded.
    c.conn.send_headers(3, req_headers("POST", "/upload", [("content-length", "3000")]),
                        priority_weight=32, priority_depends_on=0)
    c.conn.send_data(3, b"a" * 1000)
    c.conn.send_data(3, b"b" * 1000)
    c.conn.send_data(3, b"c" * 1000, end_stream=True, pad_length=30)
    c.flush()
    c.wait(lambda: 3 in c.ended or 3 in c.server_rst)
    c.report(3, "/upload")
    # 5: a plain GET, then, once it has ended, a RST_STREAM for it (behind
    # h2's back, which would refuse): too late to abort anything.
    c.conn.send_headers(5, req_headers("GET", "/api/users/4246"), end_stream=True)
    c.flush()
    c.wait(lambda: 5 in c.ended)
    c.report(5, "/api/users/4246")
    c.sock.sendall(frame(RST_STREAM, 0, 5, struct.pack(">I", 8)))
    # 7: the request and its RST_STREAM(CANCEL) in one write.
    c.conn.send_headers(7, req_headers("GET", "/api/users/4243"), end_stream=True)
    c.conn.reset_stream(7, error_code=8)
    c.flush()
    # 9: the connection still serves.
    c.conn.send_headers(9, req_headers("GET", "/api/users/4244"), end_stream=True)
    c.flush()
    c.wait(lambda: 9 in c.ended)
    c.report(7, "/api/users/4243", reset_by_client=True)
    c.report(9, "/api/users/4244")
    c.sock.close()


def split(port):
    c = Client(port)
    c.start(preface_pieces=True)
    c.conn.send_headers(1, req_headers("GET", "/api/users/4245"), end_stream=True)
    pre, fr = c.pending()
    c.send_frames(pre, fr, pieces=[4])
    c.wait(lambda: 1 in c.ended)
    c.report(1, "/api/users/4245")
    c.sock.close()


def close(port):
    c = Client(port)
    c.start()
    c.conn.send_headers(1, req_headers("POST", "/echo"))
    c.conn.send_data(1, b"x" * 2000)
    c.conn.send_data(1, b"y" * 2000, pad_length=100)
    c.conn.send_data(1, b"z" * 1000, end_stream=True)
    c.flush()
    c.wait(lambda: 1 in c.ended)
    c.report(1, "/echo")
    c.conn.send_headers(3, req_headers("GET", "/slow?ms=1500"), end_stream=True)
    c.flush()
    # Long enough for a loaded machine's server to read the request, short
    # of its 1.5 s answer (which starts after the send).
    time.sleep(0.6)
    c.sock.close()
    c.report(3, "/slow", closed_by_client=True)


def garbage(port, rounds=1):
    rnd = random.Random(11)
    settings = frame(SETTINGS, 0, 0, b"")
    valid = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    valid.initiate_connection()
    valid.send_headers(1, req_headers("GET", "/api/items"), end_stream=True)
    block = frames_of(valid.data_to_send()[len(PREFACE):])[0][-1][-1][9:]
    cases = [
        ("random", bytes(rnd.getrandbits(8) for _ in range(4096))),
        ("bad-hpack", settings + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80\xff\xff\xff\x0f")),
        ("http1", b"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("continuation", settings + frame(CONTINUATION, END_HEADERS, 1, block)),
        ("16mib", settings + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"\0" * 1000),
        ("nothing", b""),
        ("stream0", settings + frame(HEADERS, END_HEADERS | END_STREAM, 0, block)),
    ]
    for name, tail in cases * rounds:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(PREFACE + tail)
        s.shutdown(socket.SHUT_WR)  # no more: the server answers or closes now
        got = b""
        try:
            s.settimeout(10)  # the server answers or closes at once; 10 s: a loaded machine
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        fr, _ = frames_of(got)
        goaway = [int.from_bytes(raw[13:17], "big") for t, _, _, raw in fr if t == 0x7]
        print(json.dumps({"case": name, "goaway": goaway, "bytes": len(got)}), flush=True)


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    if scenario == "garbage":
        garbage(port, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        return
    {"edges": edges, "split": split, "close": close}[scenario](port)


if __name__ == "__main__":
    main()
