// JavaSocketServer.java - a blocking java.net.ServerSocket server, one
// thread per connection, for integration/java.sh. Since JDK 13 the classic
// socket API runs on NioSocketImpl: accept(), read() and write() on the
// socket, shutdown(SHUT_WR) before every close(), and, when another thread
// is blocked reading, a dup2() of a pre-closed marker fd over the socket
// first ("preClose").
//
// HTTP/1.1 with keep-alive, requests with a Content-Length body. A guard
// thread closes, from outside the connection's thread (which is blocked
// reading it), every connection whose request head has been incomplete for
// more than GUARD_MS, and every connection idle for more than IDLE_MS.
//
// Routes:
//   GET  /fast            "fast\n"
//   GET  /slow?ms=N       answers after sleeping N ms (at most 10 s)
//   POST /post            "received N\n"
//   GET  /error           500 with a short body
//   anything else         404
//
// Usage: java JavaSocketServer PORT [--npe-thread]
//   --npe-thread   as JavaHttpServer's (its class Npe: compile both files)
// Prints "listening on PORT" once it accepts connections, and "guard closed
// REMOTE-PORT partial|idle" for each connection the guard closes.
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

public class JavaSocketServer {
    static final long GUARD_MS = 300, IDLE_MS = 1500;
    static final long BUSY = Long.MIN_VALUE;
    static final Set<Conn> conns = ConcurrentHashMap.newKeySet();

    static final class Conn implements Runnable {
        final Socket s;
        // When the request head's first bytes came (System.nanoTime());
        // 0: between requests, BUSY: reading the body or answering.
        volatile long partialSince;
        volatile long idleSince = System.nanoTime();
        byte[] buf = new byte[16384];
        int have, pos;

        Conn(Socket s) {
            this.s = s;
        }

        int fill(InputStream in) throws IOException {
            if (pos > 0) {
                System.arraycopy(buf, pos, buf, 0, have - pos);
                have -= pos;
                pos = 0;
            }
            if (have == buf.length)
                throw new IOException("head too long");
            int n = in.read(buf, have, buf.length - have);
            if (n > 0) {
                if (partialSince == 0)
                    partialSince = System.nanoTime();
                have += n;
            }
            return n;
        }

        // The request head (through its blank line), or null at EOF.
        String head(InputStream in) throws IOException {
            for (;;) {
                for (int i = pos; i + 3 < have; i++) {
                    if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
                        String h = new String(buf, pos, i - pos, StandardCharsets.ISO_8859_1);
                        pos = i + 4;
                        return h;
                    }
                }
                if (fill(in) <= 0)
                    return null;
            }
        }

        long body(InputStream in, long len) throws IOException {
            long got = 0;
            while (got < len) {
                if (pos == have && fill(in) <= 0)
                    throw new IOException("body cut short");
                int k = (int) Math.min(have - pos, len - got);
                pos += k;
                got += k;
            }
            return got;
        }

        public void run() {
            try (Socket sock = s) {
                InputStream in = sock.getInputStream();
                OutputStream out = sock.getOutputStream();
                for (;;) {
                    if (pos < have)
                        partialSince = System.nanoTime();
                    String h = head(in);
                    if (h == null)
                        break;
                    String[] lines = h.split("\r\n");
                    String[] rl = lines[0].split(" ");
                    long clen = 0;
                    boolean close = false;
                    for (int i = 1; i < lines.length; i++) {
                        String l = lines[i].toLowerCase();
                        if (l.startsWith("content-length:"))
                            clen = Long.parseLong(l.substring(15).trim());
                        else if (l.startsWith("connection:") && l.contains("close"))
                            close = true;
                    }
                    partialSince = BUSY;
                    long got = body(in, clen);
                    String target = rl[1], path = target, q = "";
                    int qi = target.indexOf('?');
                    if (qi >= 0) {
                        path = target.substring(0, qi);
                        q = target.substring(qi + 1);
                    }
                    int code = 200;
                    String body;
                    if (path.equals("/fast")) {
                        body = "fast\n";
                    } else if (path.equals("/slow")) {
                        long ms = 100;
                        for (String kv : q.split("&"))
                            if (kv.startsWith("ms="))
                                ms = Math.max(0, Math.min(10000, Long.parseLong(kv.substring(3))));
                        Thread.sleep(ms);
                        body = "slept " + ms + " ms\n";
                    } else if (path.equals("/post") && rl[0].equals("POST")) {
                        body = "received " + got + "\n";
                    } else if (path.equals("/error")) {
                        code = 500;
                        body = "internal error\n";
                    } else {
                        code = 404;
                        body = "not found\n";
                    }
                    byte[] b = body.getBytes(StandardCharsets.UTF_8);
                    String reason = code == 200 ? "OK" : code == 404 ? "Not Found" : "Internal Server Error";
                    String rh = "HTTP/1.1 " + code + " " + reason + "\r\nContent-Type: text/plain\r\nContent-Length: "
                            + b.length + (close ? "\r\nConnection: close" : "") + "\r\n\r\n";
                    out.write(rh.getBytes(StandardCharsets.ISO_8859_1));
                    out.write(b);
                    out.flush();
                    idleSince = System.nanoTime();
                    partialSince = 0;
                    if (close)
                        break;
                }
            } catch (IOException | InterruptedException | RuntimeException e) {
                // a closed socket, a bad request: the connection ends
            } finally {
                conns.remove(this);
            }
        }
    }

    static void guard() {
        for (;;) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                return;
            }
            long now = System.nanoTime();
            for (Conn c : conns) {
                long p = c.partialSince;
                String why = null;
                if (p == BUSY)
                    continue;
                if (p != 0 && now - p > GUARD_MS * 1000000)
                    why = "partial";
                else if (p == 0 && now - c.idleSince > IDLE_MS * 1000000)
                    why = "idle";
                if (why == null)
                    continue;
                conns.remove(c);
                try {
                    c.s.close();
                } catch (IOException e) {
                    // closed already
                }
                System.out.println("guard closed " + c.s.getPort() + " " + why);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        if (args.length > 1 && args[1].equals("--npe-thread"))
            Npe.background();
        ServerSocket ss = new ServerSocket(port, 64, InetAddress.getByName("127.0.0.1"));
        Thread g = new Thread(JavaSocketServer::guard, "guard");
        g.setDaemon(true);
        g.start();
        System.out.println("listening on " + port);
        for (;;) {
            Conn c = new Conn(ss.accept());
            conns.add(c);
            new Thread(c, "conn-" + c.s.getPort()).start();
        }
    }
}
