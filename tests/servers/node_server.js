// node_server.js - a Node http server for the integration tests.
//
// Node is the event-loop case for the preload: one thread serves every
// connection, libuv reads with read() (64 KiB), answers with writev(), calls
// shutdown() and closes sockets with syscall(SYS_close, fd), never close().
//
// Routes:
//   GET  /fast         "fast\n"
//   GET  /slow?ms=N    answers after setTimeout(N) (at most 10 s)
//   POST /post         consumes the body, answers "received N\n"
//   GET  /items/<id>   a small JSON document
//   GET  /error        500 with a short body
//   anything else      404
//
// Usage: node node_server.js [--port N]   (0 or absent: any free port)
// Prints "listening on PORT" on stdout once it accepts connections.
'use strict';

const http = require('http');

function parseArgs(argv) {
  const opts = { port: 0 };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--port' && i + 1 < argv.length) {
      opts.port = Number(argv[++i]);
    } else {
      process.stderr.write('usage: node node_server.js [--port N]\n');
      process.exit(2);
    }
  }
  return opts;
}

function reply(res, status, type, body) {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const path = url.pathname;
  let m;
  if (req.method === 'POST' && path === '/post') {
    let size = 0;
    req.on('data', (chunk) => { size += chunk.length; });
    req.on('end', () => reply(res, 200, 'text/plain', `received ${size}\n`));
    return;
  }
  // Drain any unexpected body so that keep-alive keeps working.
  req.resume();
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    reply(res, 405, 'text/plain', 'method not allowed\n');
  } else if (path === '/fast') {
    reply(res, 200, 'text/plain', 'fast\n');
  } else if (path === '/slow') {
    const ms = Math.max(0, Math.min(10000, Number(url.searchParams.get('ms') || 100)));
    setTimeout(() => reply(res, 200, 'text/plain', `slept ${ms} ms\n`), ms);
  } else if ((m = /^\/items\/([^/]+)$/.exec(path))) {
    reply(res, 200, 'application/json', JSON.stringify({ id: m[1], name: `item ${m[1]}` }) + '\n');
  } else if (path === '/error') {
    reply(res, 500, 'text/plain', 'internal error: the node test server failed on purpose\n');
  } else {
    reply(res, 404, 'text/plain', 'not found\n');
  }
});

// Keep idle connections open for the whole test, as a real API server
// behind a load balancer does.
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;

const opts = parseArgs(process.argv);
server.listen(opts.port, '127.0.0.1', () => {
  process.stdout.write(`listening on ${server.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
