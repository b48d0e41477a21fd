#!/usr/bin/python3
"""tls_membio - one HTTPS exchange served over ssl.MemoryBIO, driven by hand,
for tests/integration/tls.sh.

    tls_membio.py PORT CERT KEY       serve one connection on 127.0.0.1:PORT

It accepts one connection and reads the client's ClientHello; then, before
its own handshake, it takes a step of a TLS *client* handshake over memory
BIOs that go nowhere (as an asyncio program's outgoing HTTPS call may run
on the loop between an accepted connection's read and its processing);
then it completes the server's handshake and answers each request on the
connection ("200 /path") until the client closes. Prints "listening".
"""
import socket
import ssl
import sys

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lst = socket.socket()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", port))
lst.listen(1)
print("listening", flush=True)
conn, _ = lst.accept()
hello = conn.recv(65536)

cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
client = cctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="elsewhere")
try:
    client.do_handshake()
except ssl.SSLWantReadError:
    pass

sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
srv = sctx.wrap_bio(inc, out, server_side=True)
inc.write(hello)
while True:
    try:
        srv.do_handshake()
        break
    except ssl.SSLWantReadError:
        conn.sendall(out.read())
        d = conn.recv(65536)
        if not d:
            sys.exit("client gone in the handshake")
        inc.write(d)
conn.sendall(out.read())
buf = b""
while True:
    try:
        chunk = srv.read(65536)
    except ssl.SSLWantReadError:
        d = conn.recv(65536)
        if not d:
            break
        inc.write(d)
        continue
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        break
    if not chunk:  # the client's close_notify
        break
    buf += chunk
    while b"\r\n\r\n" in buf:
        head, buf = buf.split(b"\r\n\r\n", 1)
        path = head.split(b" ")[1]
        body = b"200 " + path + b"\n"
        srv.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        conn.sendall(out.read())
conn.close()
