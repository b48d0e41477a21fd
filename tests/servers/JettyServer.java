// JettyServer.java - embedded Eclipse Jetty 9.4 (Debian's libjetty9-java)
// for integration/jetty.sh.
//
// One ServerConnector on 127.0.0.1 speaking HTTP/1.1 and, on the same
// port, HTTP/2 cleartext with prior knowledge (HTTP2CServerConnectionFactory:
// a connection whose first bytes are the HTTP/2 preface is handed to it).
// Jetty's selector threads and its QueuedThreadPool run the connections
// with the "eat what you kill" strategy: a request may run on the thread
// that selected its connection or on another pool thread. Sockets are
// read with read() and written with writev(); the DefaultServlet reads
// files with read() and writes them in 32 KiB pieces (no sendfile).
//
// Routes (context path ""):
//   GET  /fast            "fast\n" (fixed length; HEAD: headers only)
//   GET  /items/<id>      a small JSON document
//   GET  /slow?ms=N       answers after sleeping N ms (at most 10 s)
//   GET  /async?ms=N[&timeout=T]
//                         startAsync(); another thread answers after N ms
//                         and completes. Past the async timeout T ms
//                         (default 20 s) Jetty answers 500 itself and the
//                         late answer is dropped
//   POST /post            reads the body, answers "received N\n"
//   GET  /chunked         40 writes, each followed by flushBuffer(): a
//                         chunked response
//   GET  /trailers        5 flushed parts of a chunked response, then
//                         trailer fields (Jetty's Response.setTrailers())
//   GET  /broken          10 parts of a chunked response, each flushed, then
//                         the servlet throws: the response cannot end
//   GET  /error           the servlet throws: Jetty's 500 error page (then
//                         it closes the connection)
//   GET  /static/...      files under DOCBASE/static, by the DefaultServlet
//   anything else         the DefaultServlet's 404 (Jetty's error page)
// Jetty's error pages leave out the stack trace; no Server header.
//
// Usage: java [-Djetty.idleTimeout=MS] JettyServer PORT DOCBASE
// (the connector's idle timeout, default 30000 ms).
// Prints "listening on PORT" once it accepts connections, and "req N
// thread=NAME conn=REMOTE PROTOCOL METHOD PATH" per request on stdout.
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.EnumSet;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import javax.servlet.AsyncContext;
import javax.servlet.DispatcherType;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

import org.eclipse.jetty.http2.server.HTTP2CServerConnectionFactory;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.servlet.DefaultServlet;
import org.eclipse.jetty.servlet.FilterHolder;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class JettyServer {
    static final AtomicLong reqs = new AtomicLong();
    static final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "async-timer");
        t.setDaemon(true);
        return t;
    });

    interface Handler {
        void handle(HttpServletRequest req, HttpServletResponse resp) throws IOException, ServletException;
    }

    static final class Route extends HttpServlet {
        final Handler get, post;

        Route(Handler get, Handler post) {
            this.get = get;
            this.post = post;
        }

        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException, ServletException {
            if (get == null)
                super.doGet(req, resp);
            else
                get.handle(req, resp);
        }

        @Override
        protected void doPost(HttpServletRequest req, HttpServletResponse resp) throws IOException, ServletException {
            if (post == null)
                super.doPost(req, resp);
            else
                post.handle(req, resp);
        }
    }

    // Logs every request as it enters the context (REQUEST dispatches only).
    static final class LogFilter implements Filter {
        @Override
        public void init(FilterConfig c) {
        }

        @Override
        public void destroy() {
        }

        @Override
        public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain)
                throws IOException, ServletException {
            HttpServletRequest r = (HttpServletRequest) req;
            System.out.println("req " + reqs.incrementAndGet() + " thread=" + Thread.currentThread().getName()
                    + " conn=" + r.getRemotePort() + " " + r.getProtocol() + " " + r.getMethod() + " "
                    + r.getRequestURI());
            chain.doFilter(req, resp);
        }
    }

    static void text(HttpServletResponse resp, int code, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        resp.setStatus(code);
        resp.setContentType("text/plain");
        resp.setContentLength(b.length);
        resp.getOutputStream().write(b);
    }

    static long ms(HttpServletRequest req, long dflt) {
        String v = req.getParameter("ms");
        return Math.max(0, Math.min(10000, v == null ? dflt : Long.parseLong(v)));
    }

    static void route(ServletContextHandler ctx, String pattern, Handler get, Handler post) {
        ServletHolder h = new ServletHolder(new Route(get, post));
        h.setAsyncSupported(true);
        ctx.addServlet(h, pattern);
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        Server server = new Server();
        HttpConfiguration conf = new HttpConfiguration();
        conf.setSendServerVersion(false);
        ServerConnector c = new ServerConnector(server, new HttpConnectionFactory(conf),
                new HTTP2CServerConnectionFactory(conf));
        c.setHost("127.0.0.1");
        c.setPort(port);
        c.setIdleTimeout(Long.getLong("jetty.idleTimeout", 30000));
        server.addConnector(c);

        ServletContextHandler ctx = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
        ctx.setContextPath("/");
        ctx.setResourceBase(args[1]);
        FilterHolder log = new FilterHolder(new LogFilter());
        log.setAsyncSupported(true);
        ctx.addFilter(log, "/*", EnumSet.of(DispatcherType.REQUEST));

        route(ctx, "/fast", (req, resp) -> text(resp, 200, "fast\n"), null);
        route(ctx, "/items/*", (req, resp) -> {
            resp.setContentType("application/json");
            resp.getWriter().write("{\"id\": \"" + req.getPathInfo().substring(1) + "\"}\n");
        }, null);
        route(ctx, "/slow", (req, resp) -> {
            long ms = ms(req, 100);
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            text(resp, 200, "slept " + ms + " ms\n");
        }, null);
        route(ctx, "/async", (req, resp) -> {
            long ms = ms(req, 100);
            AsyncContext ac = req.startAsync();
            String timeout = req.getParameter("timeout");
            ac.setTimeout(timeout == null ? 20000 : Long.parseLong(timeout));
            timer.schedule(() -> {
                try {
                    text((HttpServletResponse) ac.getResponse(), 200,
                            "async " + ms + " ms on " + Thread.currentThread().getName() + "\n");
                    ac.complete();
                } catch (IllegalStateException e) {
                    // timed out: Jetty has answered 500 and completed it
                    System.out.println("async timed out: " + e.getMessage());
                } catch (IOException e) {
                    System.out.println("async io error: " + e);
                }
            }, ms, TimeUnit.MILLISECONDS);
        }, null);
        route(ctx, "/post", null, (req, resp) -> {
            long n = 0;
            byte[] buf = new byte[65536];
            try (InputStream in = req.getInputStream()) {
                for (int k; (k = in.read(buf)) > 0;)
                    n += k;
            }
            text(resp, 200, "received " + n + "\n");
        });
        route(ctx, "/chunked", (req, resp) -> {
            resp.setContentType("text/plain");
            OutputStream o = resp.getOutputStream();
            for (int i = 0; i < 40; i++) {
                o.write(("chunk " + i + " " + "x".repeat(i * 40) + "\n").getBytes(StandardCharsets.UTF_8));
                resp.flushBuffer();
            }
        }, null);
        route(ctx, "/trailers", (req, resp) -> {
            resp.setContentType("text/plain");
            // Jetty 9.4 sends trailers set on its own Response (not the
            // servlet API's setTrailerFields()).
            org.eclipse.jetty.server.Request.getBaseRequest(req).getResponse().setTrailers(() -> {
                org.eclipse.jetty.http.HttpFields f = new org.eclipse.jetty.http.HttpFields();
                f.put("x-checksum", "c0ffee");
                f.put("x-parts", "5");
                return f;
            });
            OutputStream o = resp.getOutputStream();
            for (int i = 0; i < 5; i++) {
                o.write(("part " + i + "\n").getBytes(StandardCharsets.UTF_8));
                resp.flushBuffer();
            }
        }, null);
        route(ctx, "/broken", (req, resp) -> {
            resp.setContentType("text/plain");
            OutputStream o = resp.getOutputStream();
            for (int i = 0; i < 10; i++) {
                o.write(("part " + i + " " + "y".repeat(1000) + "\n").getBytes(StandardCharsets.UTF_8));
                resp.flushBuffer();
            }
            throw new ServletException("failure after the response began");
        }, null);
        route(ctx, "/error", (req, resp) -> {
            throw new ServletException("deliberate failure");
        }, null);
        ServletHolder def = new ServletHolder("default", DefaultServlet.class);
        def.setInitParameter("dirAllowed", "false");
        ctx.addServlet(def, "/");
        // Jetty's own error page (404, 500), without the stack trace.
        ErrorHandler errors = new ErrorHandler();
        errors.setShowStacks(false);
        ctx.setErrorHandler(errors);
        server.setHandler(ctx);

        server.start();
        System.out.println("listening on " + port);
        server.join();
    }
}
