#!/usr/bin/python3
"""asyncio_tls - an asyncio HTTP/1.1 server over TLS (stdlib only), for
tests/integration/tls.sh.

    asyncio_tls.py PORT CERT KEY      serve on 127.0.0.1:PORT, printing "listening"

asyncio's TLS runs OpenSSL over memory BIOs (ssl.MemoryBIO, its sslproto):
the loop reads ciphertext from the socket, writes it into the incoming BIO
and calls SSL_read on an SSL object that has no socket (SSL_get_rfd() is
-1); SSL_write fills the outgoing BIO, which the loop then writes to the
socket. One thread serves every connection, with keep-alive.

Routes:
  GET /items/N     200, body "item N\\n"
  GET /slow/MS     200 after MS milliseconds (asyncio.sleep), body "slow\\n"
  POST /upload     reads the Content-Length body, 200, body "<length>\\n"
  anything else    404, body "not found\\n"
"""
import asyncio
import ssl
import sys


async def handle(reader, writer):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for h in lines[1:]:
                if h.lower().startswith("content-length:"):
                    length = int(h.split(":", 1)[1])
            body_in = await reader.readexactly(length) if length else b""
            status, body = 404, b"not found\n"
            if method == "GET" and target.startswith("/items/"):
                status, body = 200, ("item %s\n" % target[7:]).encode()
            elif method == "GET" and target.startswith("/slow/"):
                await asyncio.sleep(int(target[6:]) / 1000)
                status, body = 200, b"slow\n"
            elif method == "POST" and target == "/upload":
                status, body = 200, ("%d\n" % len(body_in)).encode()
            writer.write(("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n"
                          % (status, "OK" if status == 200 else "Not Found", len(body))).encode() + body)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def serve(port, cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    srv = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    print("listening", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
