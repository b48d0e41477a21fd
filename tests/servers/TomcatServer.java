// TomcatServer.java - embedded Apache Tomcat 10 (Debian's
// libtomcat10-embed-java) for integration/tomcat.sh.
//
// One HTTP/1.1 NIO connector (Http11NioProtocol) on 127.0.0.1 with Tomcat's
// own worker pool (10 threads started at once): an acceptor thread accepts,
// a poller thread selects, and each request the poller hands over runs on
// a pool thread, so successive requests of one keep-alive connection can
// run on different threads (a request that arrives while the previous
// one's thread is still in its processor loop stays on that thread).
// Tomcat reads and writes the sockets with read() and write()
// (non-blocking), and the DefaultServlet sends static files of 48 KiB or
// more with FileChannel.transferTo(), which is sendfile64() in libnio: on
// the worker thread first, then from the poller thread for what did not
// fit in the socket's send buffer.
//
// Routes (context path ""):
//   GET  /fast            "fast\n" (fixed length; HEAD: headers only)
//   GET  /items/<id>      a small JSON document
//   GET  /slow?ms=N       answers after sleeping N ms (at most 10 s)
//   GET  /async?ms=N[&timeout=T]
//                         startAsync(); another thread answers after N ms
//                         and completes. Past the async timeout T ms
//                         (default 20 s) Tomcat answers 500 itself, from
//                         its own threads, and the late answer is dropped
//   POST /post            reads the body (fixed-length or chunked), answers
//                         "received N\n"
//   POST /ignore          answers "ignored\n" without reading the body
//                         (Tomcat swallows it afterwards, up to 2 MiB)
//   GET  /chunked         40 writes, each followed by flushBuffer(): a
//                         chunked response
//   GET  /nocontent       204
//   GET  /notmod          304
//   GET  /error           the servlet throws: Tomcat's 500 error page
//   GET  /static/...      files under DOCBASE/static, by the DefaultServlet
//   anything else         the DefaultServlet's 404 (Tomcat's error page)
//
// Usage: java [-Dtomcat.protocol=CLASS] TomcatServer PORT BASEDIR DOCBASE
//   BASEDIR   Tomcat's work directory (created)
//   DOCBASE   the context's document root
//   CLASS     the connector's protocol (default
//             org.apache.coyote.http11.Http11NioProtocol)
// Keep-alive timeout 1 s, connection timeout 2 s. Prints "listening on
// PORT" once it accepts connections, and "req N thread=NAME conn=REMOTE
// METHOD PATH" per request on stdout.
import jakarta.servlet.AsyncContext;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.catalina.Context;
import org.apache.catalina.Lifecycle;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.core.StandardContext;
import org.apache.catalina.servlets.DefaultServlet;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;

public class TomcatServer {
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

    // Logs every request as it enters the context (REQUEST dispatches only:
    // not Tomcat's error page dispatch).
    static final class LogFilter implements Filter {
        @Override
        public void doFilter(ServletRequest req, ServletResponse resp, FilterChain chain)
                throws IOException, ServletException {
            HttpServletRequest r = (HttpServletRequest) req;
            System.out.println("req " + reqs.incrementAndGet() + " thread=" + Thread.currentThread().getName()
                    + " conn=" + r.getRemotePort() + " " + r.getMethod() + " " + r.getRequestURI());
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

    static void route(Context ctx, String name, String pattern, Handler get, Handler post) {
        Wrapper w = Tomcat.addServlet(ctx, name, new Route(get, post));
        w.setAsyncSupported(true);
        ctx.addServletMapping(pattern, name);
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[1]);
        Connector c = new Connector(System.getProperty("tomcat.protocol", "org.apache.coyote.http11.Http11NioProtocol"));
        c.setPort(port);
        c.setProperty("address", "127.0.0.1");
        c.setProperty("connectionTimeout", "2000");
        c.setProperty("keepAliveTimeout", "1000");
        c.setProperty("maxKeepAliveRequests", "-1");
        tomcat.setConnector(c);

        // The context, as Tomcat.addContext() makes it but without its
        // FixContextListener, which scans the servlets for annotations
        // (@Resource...): Debian's tomcat10-embed-core.jar leaves out
        // jakarta.annotation, and the scan fails with NoClassDefFoundError.
        StandardContext ctx = new StandardContext();
        ctx.setName("");
        ctx.setPath("");
        ctx.setDocBase(args[2]);
        ctx.setIgnoreAnnotations(true);
        ctx.addLifecycleListener(ev -> {
            if (ev.getType().equals(Lifecycle.CONFIGURE_START_EVENT))
                ctx.setConfigured(true);
        });
        tomcat.getHost().addChild(ctx);
        FilterDef fd = new FilterDef();
        fd.setFilterName("log");
        fd.setFilter(new LogFilter());
        fd.setAsyncSupported("true");
        ctx.addFilterDef(fd);
        FilterMap fm = new FilterMap();
        fm.setFilterName("log");
        fm.addURLPattern("/*");
        ctx.addFilterMap(fm);

        route(ctx, "fast", "/fast", (req, resp) -> text(resp, 200, "fast\n"), null);
        route(ctx, "items", "/items/*", (req, resp) -> {
            resp.setContentType("application/json");
            resp.getWriter().write("{\"id\": \"" + req.getPathInfo().substring(1) + "\"}\n");
        }, null);
        route(ctx, "slow", "/slow", (req, resp) -> {
            long ms = ms(req, 100);
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            text(resp, 200, "slept " + ms + " ms\n");
        }, null);
        route(ctx, "async", "/async", (req, resp) -> {
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
                    // timed out: Tomcat has answered 500 and completed it
                    System.out.println("async timed out: " + e.getMessage());
                } catch (IOException e) {
                    System.out.println("async io error: " + e);
                    ac.complete();
                }
            }, ms, TimeUnit.MILLISECONDS);
        }, null);
        route(ctx, "post", "/post", null, (req, resp) -> {
            long n = 0;
            byte[] buf = new byte[65536];
            try (InputStream in = req.getInputStream()) {
                for (int k; (k = in.read(buf)) > 0;)
                    n += k;
            }
            text(resp, 200, "received " + n + "\n");
        });
        route(ctx, "ignore", "/ignore", null, (req, resp) -> text(resp, 200, "ignored\n"));
        route(ctx, "chunked", "/chunked", (req, resp) -> {
            resp.setContentType("text/plain");
            OutputStream o = resp.getOutputStream();
            for (int i = 0; i < 40; i++) {
                o.write(("chunk " + i + " " + "x".repeat(i * 40) + "\n").getBytes(StandardCharsets.UTF_8));
                resp.flushBuffer();
            }
        }, null);
        route(ctx, "nocontent", "/nocontent", (req, resp) -> resp.setStatus(204), null);
        route(ctx, "notmod", "/notmod", (req, resp) -> {
            resp.setHeader("ETag", "\"v1\"");
            resp.setStatus(304);
        }, null);
        route(ctx, "error", "/error", (req, resp) -> {
            throw new ServletException("deliberate failure");
        }, null);

        Wrapper def = Tomcat.addServlet(ctx, "default", new DefaultServlet());
        def.addInitParameter("listings", "false");
        ctx.addServletMapping("/", "default");

        tomcat.start();
        System.out.println("listening on " + port);
        tomcat.getServer().await();
    }
}
