// JavaHttpServer.java - the JDK's own HTTP server (com.sun.net.httpserver)
// for integration/java.sh.
//
// One dispatcher thread accepts and selects (NIO, non-blocking); each
// request runs on a worker of a round-robin executor, so successive requests
// of one keep-alive connection run on different threads. The JDK reads and
// writes the sockets with read() and write(), in blocking mode while a
// worker holds the connection, and closes them with close(), after a
// dup2() of a pre-closed marker fd over the socket ("preClose") when another
// thread is blocked on it.
//
// Routes:
//   GET  /fast            "fast\n" (fixed length; HEAD: headers only)
//   GET  /items/<id>      a small JSON document
//   GET  /slow?ms=N       answers after sleeping N ms (at most 10 s)
//   POST /post            reads the body (fixed-length or chunked), answers
//                         "received N\n"
//   GET  /chunked         sendResponseHeaders(200, 0): a chunked response
//   GET  /nocontent       204
//   GET  /notmod          304
//   GET  /error           500 with a short body
//   GET  /npe?n=N         throws and catches N NullPointerExceptions in
//                         JIT-compiled code (implicit null checks: SIGSEGV)
//   GET  /missing         404 from the handler
//   GET  /crash           a store to address 8 through sun.misc.Unsafe: the
//                         JVM crashes (SIGSEGV in its own code), writes its
//                         fatal error report (-XX:ErrorFile) and exits
//   anything else         404 from the JDK itself (no context), which then
//                         closes the connection
//
// Usage: java JavaHttpServer PORT [--npe-thread]
//   --npe-thread   a background thread throws and catches NPEs throughout
//                  (500 every 20 ms or so)
// Prints "listening on PORT" once it accepts connections, and "req N
// thread=NAME conn=REMOTE" per request on stdout.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

public class JavaHttpServer {
    static final AtomicLong reqs = new AtomicLong();

    // Each task goes to the next single-thread worker.
    static final class RoundRobin implements Executor {
        final ExecutorService[] workers;
        final AtomicLong next = new AtomicLong();

        RoundRobin(int n) {
            workers = new ExecutorService[n];
            for (int i = 0; i < n; i++) {
                final String name = "worker-" + i;
                workers[i] = Executors.newSingleThreadExecutor(r -> new Thread(r, name));
            }
        }

        public void execute(Runnable r) {
            workers[(int) (next.getAndIncrement() % workers.length)].execute(r);
        }
    }

    static void reply(HttpExchange ex, int code, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        if (ex.getRequestMethod().equals("HEAD")) {
            ex.getResponseHeaders().set("Content-Length", Integer.toString(b.length));
            ex.sendResponseHeaders(code, -1);
        } else {
            ex.sendResponseHeaders(code, b.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(b);
            }
        }
        ex.close();
    }

    static String query(HttpExchange ex, String key, String dflt) {
        String q = ex.getRequestURI().getRawQuery();
        if (q != null)
            for (String kv : q.split("&"))
                if (kv.startsWith(key + "="))
                    return kv.substring(key.length() + 1);
        return dflt;
    }

    static void log(HttpExchange ex) {
        System.out.println("req " + reqs.incrementAndGet() + " thread=" + Thread.currentThread().getName()
                + " conn=" + ex.getRemoteAddress().getPort() + " " + ex.getRequestMethod() + " "
                + ex.getRequestURI().getPath());
    }

    static void route(String path, HttpServer s, HttpHandler h) {
        s.createContext(path, ex -> {
            try {
                log(ex);
                h.handle(ex);
            } catch (IOException e) {
                System.out.println("io error: " + e);
                throw e;
            }
        });
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        if (args.length > 1 && args[1].equals("--npe-thread"))
            Npe.background();
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        route("/fast", s, ex -> reply(ex, 200, "text/plain", "fast\n"));
        route("/items/", s, ex -> reply(ex, 200, "application/json",
                "{\"id\": \"" + ex.getRequestURI().getPath().substring(7) + "\"}\n"));
        route("/slow", s, ex -> {
            long ms = Math.max(0, Math.min(10000, Long.parseLong(query(ex, "ms", "100"))));
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            reply(ex, 200, "text/plain", "slept " + ms + " ms\n");
        });
        route("/post", s, ex -> {
            long n = 0;
            byte[] buf = new byte[65536];
            try (InputStream in = ex.getRequestBody()) {
                for (int k; (k = in.read(buf)) > 0;)
                    n += k;
            }
            reply(ex, 200, "text/plain", "received " + n + "\n");
        });
        route("/chunked", s, ex -> {
            ex.getResponseHeaders().set("Content-Type", "text/plain");
            ex.sendResponseHeaders(200, 0);
            try (OutputStream o = ex.getResponseBody()) {
                for (int i = 0; i < 50; i++) {
                    o.write(("chunk " + i + " " + "x".repeat(i * 40) + "\n").getBytes(StandardCharsets.UTF_8));
                    o.flush();
                }
            }
            ex.close();
        });
        route("/nocontent", s, ex -> {
            ex.sendResponseHeaders(204, -1);
            ex.close();
        });
        route("/notmod", s, ex -> {
            ex.getResponseHeaders().set("ETag", "\"v1\"");
            ex.sendResponseHeaders(304, -1);
            ex.close();
        });
        route("/error", s, ex -> reply(ex, 500, "text/plain", "internal error\n"));
        route("/npe", s, ex -> {
            int n = Integer.parseInt(query(ex, "n", "1000"));
            reply(ex, 200, "text/plain", "caught " + Npe.storm(n) + "\n");
        });
        route("/missing", s, ex -> reply(ex, 404, "text/plain", "not found\n"));
        route("/crash", s, ex -> {
            try {
                // reflection: javac warns about sun.misc.Unsafe otherwise
                Class<?> c = Class.forName("sun.misc.Unsafe");
                java.lang.reflect.Field f = c.getDeclaredField("theUnsafe");
                f.setAccessible(true);
                c.getMethod("putAddress", long.class, long.class).invoke(f.get(null), 8L, 1L);
            } catch (ReflectiveOperationException e) {
                reply(ex, 500, "text/plain", "no Unsafe: " + e + "\n");
            }
        });
        s.setExecutor(new RoundRobin(8));
        s.start();
        System.out.println("listening on " + port);
    }
}

// NullPointerExceptions thrown and caught. Once the JIT compiles get(), its
// null check is implicit: the load faults (SIGSEGV) and the JVM's handler
// turns the fault into the exception.
final class Npe {
    int value = 1;
    static volatile long sink;

    static int get(Npe o) {
        return o.value;
    }

    static long storm(int n) {
        long caught = 0;
        Npe[] objs = { new Npe(), null };
        for (int i = 0; i < n; i++) {
            try {
                sink += get(objs[i & 1]);
            } catch (NullPointerException e) {
                caught++;
            }
        }
        return caught;
    }

    static void background() {
        Thread t = new Thread(() -> {
            for (;;) {
                storm(1000);
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "npe");
        t.setDaemon(true);
        t.start();
    }
}
