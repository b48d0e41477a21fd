// h2_node.js - a Node HTTP/2 server and client for tests/integration/h2.sh.
//
// Node's http2 module runs nghttp2 over a plain socket that libuv reads with
// read() and writes with writev(): prior-knowledge h2c, no TLS (Node's
// OpenSSL is linked statically, where the libssl hooks cannot see it).
//
//   node h2_node.js server PORT [HEADER_TABLE_SIZE]
//     Prints "listening on PORT" once it accepts connections. With
//     HEADER_TABLE_SIZE, its SETTINGS limit the clients' HPACK tables to
//     that many bytes. Routes
//     (core API: one 'stream' event per request):
//       GET  /fast           200 "fast\n"
//       GET  /items/<id>     200 JSON
//       GET  /slow?ms=N      200 after setTimeout(N) (at most 10 s), unless
//                            the stream was closed meanwhile
//       GET  /error          500
//       POST /echo           reads the whole body, then 200 "received N\n"
//       GET  /withpush       pushes /pushed/asset (a server-initiated
//                            stream, never a request), then 200
//       GET  /reset?ms=N     after N ms, RST_STREAM(INTERNAL_ERROR) and no
//                            response at all
//       anything else        404
//
//   node h2_node.js client PORT
//     One session (one connection), every request below in flight at once:
//     /items/1../items/5, /fast x4, /slow?ms=800 x3, /error, POST /echo
//     (100,000 bytes), /withpush, /reset?ms=200, /nothing-here, and
//     /slow?ms=3000 cancelled by the client (RST_STREAM(CANCEL)) after
//     250 ms. The session closes only after the slow ones, 1 s in: a
//     reset the preload missed would end with the connection, late. Prints "PATH STATUS" per request ("PATH cancelled" and
//     "PATH reset" for the two without a response) sorted, then "pushed
//     PATH" for each pushed stream, and exits 0 once all have settled.
'use strict';

const http2 = require('http2');
const { constants } = http2;

function server(port, tableSize) {
  // a SETTINGS_HEADER_TABLE_SIZE of its own for the clients' encoders
  const srv = http2.createServer(tableSize === undefined ? {} : { settings: { headerTableSize: tableSize } });
  srv.on('stream', (stream, headers) => {
    // A reset stream (ours or the client's) emits 'error': not fatal here.
    stream.on('error', () => {});
    const url = new URL(headers[':path'], 'http://localhost');
    const method = headers[':method'];
    const path = url.pathname;
    const reply = (status, body, type) => {
      if (stream.closed || stream.destroyed) return;
      stream.respond({ ':status': status, 'content-type': type || 'text/plain' });
      stream.end(body);
    };
    let m;
    if (method === 'POST' && path === '/echo') {
      let n = 0;
      stream.on('data', (chunk) => { n += chunk.length; });
      stream.on('end', () => reply(200, `received ${n}\n`));
      return;
    }
    stream.resume();
    if (path === '/fast') {
      reply(200, 'fast\n');
    } else if ((m = /^\/items\/([^/]+)$/.exec(path))) {
      reply(200, JSON.stringify({ id: m[1], name: `item ${m[1]}` }) + '\n', 'application/json');
    } else if (path === '/slow') {
      const ms = Math.max(0, Math.min(10000, Number(url.searchParams.get('ms') || 100)));
      setTimeout(() => reply(200, `slept ${ms} ms\n`), ms);
    } else if (path === '/error') {
      reply(500, 'internal error: the h2 test server failed on purpose\n');
    } else if (path === '/withpush') {
      stream.pushStream({ ':path': '/pushed/asset' }, (err, push) => {
        if (!err) {
          push.respond({ ':status': 200, 'content-type': 'text/css' });
          push.end('body { color: red }\n');
        }
        reply(200, 'with a push\n');
      });
    } else if (path === '/reset') {
      const ms = Math.max(0, Math.min(10000, Number(url.searchParams.get('ms') || 100)));
      setTimeout(() => stream.close(constants.NGHTTP2_INTERNAL_ERROR), ms);
    } else {
      reply(404, 'not found\n');
    }
  });
  srv.on('sessionError', () => {});
  srv.listen(port, '127.0.0.1', () => {
    process.stdout.write(`listening on ${srv.address().port}\n`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
  }
}

function client(port) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', (e) => { process.stderr.write(`session error: ${e}\n`); process.exit(1); });
  const lines = [];
  const pushed = [];
  session.on('stream', (push, reqHeaders) => {
    push.resume();
    push.on('end', () => pushed.push(reqHeaders[':path']));
  });
  const one = (path, opts) => new Promise((resolve) => {
    opts = opts || {};
    const headers = { ':path': path, ':method': opts.method || 'GET' };
    const req = session.request(headers, { endStream: !opts.body });
    let status = null;
    req.on('response', (h) => { status = h[':status']; });
    req.resume();
    req.on('close', () => {
      if (status !== null) lines.push(`${path} ${status}`);
      else if (opts.cancelAfter) lines.push(`${path} cancelled`);
      else lines.push(`${path} reset ${req.rstCode}`);
      resolve();
    });
    req.on('error', () => {});
    if (opts.body) req.end(opts.body);
    if (opts.cancelAfter) setTimeout(() => req.close(constants.NGHTTP2_CANCEL), opts.cancelAfter);
  });
  const all = [];
  for (let i = 1; i <= 5; i++) all.push(one(`/items/${i}`));
  for (let i = 0; i < 4; i++) all.push(one('/fast'));
  for (let i = 0; i < 3; i++) all.push(one('/slow?ms=800'));
  all.push(one('/error'));
  all.push(one('/echo', { method: 'POST', body: Buffer.alloc(100000, 'x') }));
  all.push(one('/withpush'));
  all.push(one('/reset?ms=200'));
  all.push(one('/nothing-here'));
  all.push(one('/slow?ms=3000', { cancelAfter: 250 }));
  Promise.all(all).then(() => {
    // Let the pushed stream finish before closing.
    setTimeout(() => {
      lines.sort();
      for (const l of lines) process.stdout.write(l + '\n');
      for (const p of pushed) process.stdout.write(`pushed ${p}\n`);
      session.close(() => process.exit(0));
    }, 200);
  });
}

const [mode, port, tableSize] = process.argv.slice(2);
if (mode === 'server') server(Number(port), tableSize === undefined ? undefined : Number(tableSize));
else if (mode === 'client') client(Number(port));
else {
  process.stderr.write('usage: node h2_node.js server PORT [HEADER_TABLE_SIZE] | client PORT\n');
  process.exit(2);
}
