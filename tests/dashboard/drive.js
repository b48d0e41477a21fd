#!/usr/bin/env node
/*
 * drive.js - the browser half of tests/integration/dashboard.sh: opens the
 * collector's dashboard in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core) and checks what a person would see.
 *
 *   node drive.js EXPECT.json OUTDIR
 *
 * EXPECT.json (written by dashboard.sh from what it sent and what the API
 * answered): url, token, service, service2, endpoints [{method, route,
 * count}], xss_path, total_requests, books_id, fail_id, profile (null, or
 * {service, method, route, function}: an endpoint whose CPU profile has
 * that function). Prints "ok: ..." per check; exits 1 on the first
 * failure, with a screenshot of the moment in OUTDIR/failure.png. Writes
 * OUTDIR/dashboard.png, OUTDIR/request.png and OUTDIR/profile.png.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const X = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const OUT = process.argv[3];
const STEP_MS = 15000;

let page = null;
const problems = [];   /* page errors, CSP violations, dialogs */

function ok(what) { console.log('ok: ' + what); }

async function fail(what) {
  console.error('FAIL: ' + what);
  if (page) {
    try { await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }); } catch (e) { /* closed */ }
  }
  process.exit(1);
}

async function check(what, cond) {
  if (!cond) await fail(what);
  ok(what);
}

/* Waits until fn(arg) is truthy in the page; fails with `what` otherwise. */
async function until(what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 100 });
  } catch (e) {
    await fail(what + ' (' + e.message.split('\n')[0] + ')');
  }
  ok(what);
}

/* The rows of a table as arrays of cell texts; the header's texts first. */
function rowsOf(sel) {
  return page.evaluate((s) => {
    const t = document.querySelector(s + ' table');
    if (!t) return { head: [], rows: [] };
    return {
      head: [...t.querySelectorAll('thead th')].map((th) => th.textContent),
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)),
    };
  }, sel);
}
function col(table, name) {
  const i = table.head.indexOf(name);
  if (i < 0) throw new Error('no column ' + name + ' in ' + table.head.join('|'));
  return table.rows.map((r) => r[i]);
}
const num = (s) => Number(String(s).replace(/[^0-9.]/g, ''));

/* Sets a filter control and lets the page react. */
async function setSelect(id, value) { await page.selectOption('#' + id, value); }
async function setCheck(id, on) { await page.setChecked('#' + id, on); }

async function requestRows() {
  return (await rowsOf('#rq-table'));
}

/* Waits for the request list to settle after a filter change: the same
 * rows twice in a row, 400 ms apart, and a predicate over them true. */
async function requestsWhere(what, pred) {
  const deadline = Date.now() + STEP_MS;
  let prev = null, t = null;
  for (;;) {
    t = await requestRows();
    const key = JSON.stringify(t.rows);
    if (key === prev && t.rows.length >= 0 && pred(t)) break;
    prev = key;
    if (Date.now() > deadline) await fail(what + ': got ' + JSON.stringify(t.rows.slice(0, 8)));
    await page.waitForTimeout(400);
  }
  ok(what);
  return t;
}

/* The chart, regressions and summaries against answers shaped as SPEC
 * section 5 documents them, served by the browser itself (page.route):
 * those endpoints come from another part of the collector, and this test
 * must not depend on them. Values carry markup, which must stay text. */
async function mocked(context) {
  const bad = '<img src=x onerror=alert(2)>';
  const now = Math.floor(Date.now() / 10000) * 10000;
  const points = [];
  for (let i = 30; i >= 1; i--) {
    points.push({ t: new Date(now - i * 10000).toISOString(), requests_per_s: 5 + (i % 7), sql_per_s: 20 + (i % 5) * 3,
      avg_request_ms: 12.5, avg_sql_ms: 0.8 });
  }
  const reg = (type, webhook) => ({ type, service: X.service, method: 'GET', route: '/r/' + bad,
    window_start: new Date(now - 3600000).toISOString(), previous_avg_ms: 100, current_avg_ms: 350,
    previous_p95_ms: 150, current_p95_ms: 900, previous_error_rate: 0, current_error_rate: 0.25,
    fingerprint: type === 'n_plus_one' ? '0123456789abcdef' : null, detected_at: new Date(now).toISOString(), webhook });
  const answers = {
    timeseries: { bucket_seconds: 10, points },
    regressions: { regressions: [reg('response_time', 'delivered'), reg('error_rate', 'failed'),
      reg('p95', 'pending'), reg('n_plus_one', 'none')] },
    summaries: { summaries: [{ window_start: new Date(now - 3600000).toISOString(), window_end: new Date(now).toISOString(),
      service: X.service, method: 'GET', route: '/s/' + bad, count: 40, avg_ms: 20, p95_ms: 150, min_ms: 1, max_ms: 300,
      error_count: 2, error_rate: 0.05, slow_count: 3, n_plus_one_count: 1 }] },
  };
  await context.route(/\/api\/v1\/(timeseries|regressions|summaries)(\?|$)/, (route) => {
    const name = /\/api\/v1\/([a-z]+)/.exec(route.request().url())[1];
    const auth = route.request().headers().authorization || '';
    if (X.token && auth !== 'Bearer ' + X.token) return route.fulfill({ status: 401, json: { error: 'unauthorized' } });
    return route.fulfill({ status: 200, json: answers[name] });
  });
  await page.goto(X.url + '/#regressions');
  await until('regressions (as SPEC shapes them): four rows with their webhook status', () => {
    const rows = [...document.querySelectorAll('#rg-table tbody tr')];
    const hooks = rows.map((r) => r.lastChild.textContent).sort().join(',');
    return rows.length === 4 && hooks === 'delivered,failed,none,pending';
  });
  await check('a route with markup stays text there', await page.evaluate((b) =>
    [...document.querySelectorAll('#rg-table td')].some((td) => td.textContent === 'GET /r/' + b) &&
    document.querySelectorAll('main img').length === 0, bad));
  await page.goto(X.url + '/#summaries');
  await until('summaries (as SPEC shapes them): the window row', (b) => {
    const tds = [...document.querySelectorAll('#sm-table tbody td')].map((td) => td.textContent);
    return tds.includes('/s/' + b) && tds.includes('40') && tds.includes('5.0%');
  }, bad);
  await until('the live chart draws both series from /api/v1/timeseries', () => {
    const paths = document.querySelectorAll('#chart svg path.line');
    return paths.length === 2 && [...paths].every((p) => (p.getAttribute('d').match(/L/g) || []).length === 29);
  });
  await page.screenshot({ path: path.join(OUT, 'panes.png'), fullPage: true });
  await context.unroute(/\/api\/v1\/(timeseries|regressions|summaries)(\?|$)/);
}

/* The Profiles pane: the flame graph and top functions of a real profile
 * (X.profile), an endpoint without samples, and a function name with
 * markup (served by the browser itself), which must stay text. */
async function profiles(context) {
  if (X.profile) {
    const P = X.profile;
    await page.goto(X.url + '/#endpoints');
    await setSelect('service', '');
    await until('the profiled endpoint has a "flame" link in the endpoints table', (p) =>
      [...document.querySelectorAll('#ep-table tbody tr')].some((tr) =>
        tr.children[0].textContent === p.service && tr.children[2].textContent === p.route &&
        tr.querySelector('a.flame-link') !== null), P);
    await page.evaluate((p) => {
      const tr = [...document.querySelectorAll('#ep-table tbody tr')].find((r) =>
        r.children[0].textContent === p.service && r.children[2].textContent === p.route);
      tr.querySelector('a.flame-link').click();
    }, P);
    await until('it opens the Profiles pane with a flame graph showing a ' + P.function + ' frame (as text)', (p) =>
      /^#profiles\?/.test(location.hash) && !document.getElementById('pane-profiles').hidden &&
      [...document.querySelectorAll('#pf-flame svg g.frame text')].some((t) => t.textContent === p.function), P);
    await check('the endpoint menu names the endpoint', (await page.evaluate(() => {
      const o = document.getElementById('pf-endpoint').selectedOptions[0];
      return o ? o.textContent : '';
    })).endsWith(P.method + ' ' + P.route));
    await until('the top-functions table lists ' + P.function, (p) =>
      [...document.querySelectorAll('#pf-top tbody tr')].some((tr) => tr.children[0].textContent === p.function), P);
    const t = await rowsOf('#pf-top');
    const fi = col(t, 'Function').indexOf(P.function);
    const total = num(col(t, 'Total')[fi]), totalPct = num(col(t, 'Total %')[fi]);
    await check(P.function + ' is in most samples (total ' + total + ', ' + totalPct + '%)', total > 0 && totalPct >= 50);
    const at = await page.evaluate((p) => {
      const txt = [...document.querySelectorAll('#pf-flame svg g.frame text')].find((e) => e.textContent === p.function);
      const r = txt.parentNode.querySelector('rect');
      r.scrollIntoView({ block: 'center' });
      const b = r.getBoundingClientRect();
      return { x: b.x + b.width / 2, y: b.y + b.height / 2, w: b.width,
        full: document.querySelector('#pf-flame svg').getBoundingClientRect().width };
    }, P);
    await page.mouse.move(at.x, at.y);
    await until('hovering the frame shows its name, samples and percentage', (p) => {
      const n = document.getElementById('pf-detail-name'), s = document.getElementById('pf-detail-samples'),
        c = document.getElementById('pf-detail-pct');
      return n && n.textContent === p.fn && s.textContent === p.total + ' samples' && /^[0-9.]+%$/.test(c.textContent) &&
        Math.abs(parseFloat(c.textContent) - p.pct) <= 0.1;
    }, { fn: P.function, total: new Intl.NumberFormat('en-US').format(total), pct: totalPct });
    await page.mouse.click(at.x, at.y);
    await until('clicking it zooms in: the frame fills the width', (p) => {
      const txt = [...document.querySelectorAll('#pf-flame svg g.frame text')].find((e) => e.textContent === p.function);
      const r = txt && txt.parentNode.querySelector('rect');
      return r && r.getBoundingClientRect().width >= document.querySelector('#pf-flame svg').getBoundingClientRect().width - 2 &&
        !document.getElementById('pf-reset').disabled;
    }, P);
    await page.screenshot({ path: path.join(OUT, 'profile.png'), fullPage: true });
    ok('screenshot ' + path.join(OUT, 'profile.png'));
    await page.click('#pf-reset');
    await until('Reset zoom shows the whole profile again', () => document.getElementById('pf-reset').disabled);
  }
  await page.goto(X.url + '/#profiles?service=' + encodeURIComponent(X.service) + '&method=GET&route=' +
    encodeURIComponent('/books/'));
  await until('an endpoint without samples says "no samples yet", in the graph and the table', () => {
    const f = document.getElementById('pf-flame'), t = document.getElementById('pf-top');
    return /^No samples yet/.test(f.textContent) && t.textContent === 'No samples yet.' && !f.querySelector('svg');
  });

  /* A function name with markup, from a mocked profile. */
  const bad = '<img src=x onerror=alert(3)>';
  const re = /\/api\/v1\/profile\?(.*&)?service=it-mock-prof(&|$)/;
  await context.route(re, (route) => {
    const u = new URL(route.request().url());
    if (u.searchParams.get('format') === 'collapsed')
      return route.fulfill({ status: 200, contentType: 'text/plain', body: 'main;' + bad + ' 30\nmain;work 10\n' });
    return route.fulfill({ status: 200, json: { endpoints: [{ service: 'it-mock-prof', method: 'GET', route: '/m', samples: 40,
      requests: 1, stacks: 2 }], samples: 40, requests: 1, functions: [
      { function: bad, self: 30, total: 30, self_fraction: 0.75, total_fraction: 0.75 },
      { function: 'main', self: 0, total: 40, self_fraction: 0, total_fraction: 1 }] } });
  });
  await page.goto(X.url + '/#profiles?service=it-mock-prof&method=GET&route=%2Fm');
  await until('a function name with markup is a frame and a row, as text, creating no element', (b) =>
    [...document.querySelectorAll('#pf-flame svg g.frame text')].some((t) => t.textContent === b && t.children.length === 0) &&
    [...document.querySelectorAll('#pf-top tbody td')].some((td) => td.textContent === b && td.children.length === 0) &&
    document.querySelectorAll('img').length === 0, bad);
  await context.unroute(re);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.AP_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401|404 \(Not Found\)/.test(m.text())) problems.push('console: ' + m.text());
  });
  page.on('dialog', (d) => { problems.push('dialog: ' + d.message()); d.dismiss().catch(() => {}); });

  /* ---- the token ---- */
  const resp = await page.goto(X.url + '/', { waitUntil: 'load' });
  const csp = resp.headers()['content-security-policy'] || '';
  await check('GET / sends a Content-Security-Policy without inline scripts',
    /script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp));
  if (X.token) {
    await until('the page asks for the token', () => !document.getElementById('token-box').hidden);
    const st = await page.evaluate(async () => (await fetch('/api/v1/endpoints')).status);
    await check('the API refuses the page\'s call without the token (401)', st === 401);
    await page.fill('#token-input', 'wrong-' + X.token);
    await page.click('#token-submit');
    await until('a wrong token is refused and asked again',
      () => !document.getElementById('token-box').hidden && !document.getElementById('token-error').hidden);
    await page.fill('#token-input', X.token);
    await page.click('#token-submit');
    await until('with the token the page loads', () => document.body.dataset.ready === '1' &&
      document.getElementById('token-box').hidden);
    await page.reload({ waitUntil: 'load' });
    await until('after a reload the tab still has the token: no second prompt',
      () => document.body.dataset.ready === '1' && document.getElementById('token-box').hidden);
  } else {
    await until('the page loads', () => document.body.dataset.ready === '1');
  }

  await check('the title names the collector\'s host', /^apiprof \u00b7 ./.test(await page.title()));

  /* ---- endpoints ---- */
  await until('endpoint rows of both services appear', (x) => {
    const t = document.querySelector('#ep-table table');
    const txt = t ? t.textContent : '';
    return txt.includes(x.service) && txt.includes(x.service2);
  }, X);
  await setSelect('service', X.service);
  await until('the service filter keeps only its rows', (s) => {
    const rows = [...document.querySelectorAll('#ep-table tbody tr')];
    return rows.length > 0 && rows.every((r) => r.children[0].textContent === s);
  }, X.service);
  let t = await rowsOf('#ep-table');
  const routes = col(t, 'Route'), methods = col(t, 'Method'), counts = col(t, 'Count');
  for (const e of X.endpoints) {
    const i = routes.findIndex((r, k) => r === e.route && methods[k] === e.method);
    await check(`endpoint ${e.method} ${e.route}: count ${e.count}`, i >= 0 && num(counts[i]) === e.count);
  }
  await check('no other endpoint of the service', t.rows.length === X.endpoints.length);

  await page.click('#ep-table th[data-key="route"]');
  t = await rowsOf('#ep-table');
  let r = col(t, 'Route');
  await check('sorting by route (click) orders the rows A-Z', JSON.stringify(r) === JSON.stringify([...r].sort((a, b) => a.localeCompare(b))));
  await page.click('#ep-table th[data-key="count"]');
  t = await rowsOf('#ep-table');
  let c = col(t, 'Count').map(num);
  await check('sorting by count orders the rows largest first', c.every((v, i) => i === 0 || c[i - 1] >= v));
  await page.click('#ep-table th[data-key="count"]');
  t = await rowsOf('#ep-table');
  c = col(t, 'Count').map(num);
  await check('a second click reverses it', c.every((v, i) => i === 0 || c[i - 1] <= v) && c[0] < c[c.length - 1]);
  const sorted = await page.getAttribute('#ep-table th[data-key="count"]', 'aria-sort');
  await check('the sorted column says so (aria-sort)', sorted === 'ascending');

  await setSelect('ep-method', 'POST');
  t = await rowsOf('#ep-table');
  await check('the method filter keeps only POST rows', t.rows.length === 1 && col(t, 'Route')[0] === '/notes');
  await setSelect('ep-method', '');
  await page.fill('#ep-search', 'books');
  await until('the text search keeps only matching routes', () => {
    const rows = [...document.querySelectorAll('#ep-table tbody tr')];
    return rows.length === 2 && rows.every((r) => r.children[2].textContent.includes('books'));
  });
  await page.fill('#ep-search', '');
  await until('clearing the search shows every row again', (n) =>
    document.querySelectorAll('#ep-table tbody tr').length === n, X.endpoints.length);

  /* Response times coloured against slow_request_threshold_ms. */
  const colours = await page.evaluate(() => {
    const o = {};
    for (const tr of document.querySelectorAll('#ep-table tbody tr')) o[tr.children[2].textContent] = tr.children[10].className;
    return o;
  });
  await check('max of GET /slow/ (>= the threshold) is red, of GET /nope green',
    /t-bad/.test(colours['/slow/']) && /t-good/.test(colours['/nope']));

  /* The path with markup, shown as text. */
  await check('the markup path is a row, as text', routes.includes(X.xss_path));
  const xss = await page.evaluate((p) => ({
    imgs: document.querySelectorAll('main img, main svg').length,
    literal: [...document.querySelectorAll('#ep-table td')].some((td) => td.textContent === p && td.children.length === 0),
    pwned: window.__pwned === true,
  }), X.xss_path);
  await check('it is displayed literally and creates no element', xss.literal && xss.imgs === 0 && !xss.pwned);

  await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: false });
  ok('screenshot ' + path.join(OUT, 'dashboard.png'));

  /* ---- requests ---- */
  await page.click('nav#tabs a[data-tab="requests"]');
  t = await requestsWhere('the request list shows a first page of 50', (x) => x.rows.length === 50);
  await check('a next page is offered', !(await page.isDisabled('#rq-older')));
  const firstPage = new Set(t.rows.map((row) => row.join('|')));
  await page.click('#rq-older');
  t = await requestsWhere('page 2 holds the rest', (x) => x.rows.length === X.total_requests - 50);
  await check('page 2 shares no row with page 1', t.rows.every((row) => !firstPage.has(row.join('|'))));
  await page.click('#rq-newest');
  await requestsWhere('Newest goes back to page 1', (x) => x.rows.length === 50);

  await setSelect('rq-method', 'POST');
  t = await requestsWhere('method POST: the 2 POST /notes', (x) => x.rows.length === 2 &&
    col(x, 'Method').every((m) => m === 'POST'));
  await setSelect('rq-method', '');
  await setSelect('rq-status', '5xx');
  t = await requestsWhere('status 5xx: the 2 GET /fail', (x) => x.rows.length === 2 &&
    col(x, 'Path').every((p) => p === '/fail') && col(x, 'Status').every((s) => s === '500'));
  await setSelect('rq-status', '');
  await setCheck('rq-error', true);
  await requestsWhere('error: the 2 GET /fail', (x) => x.rows.length === 2 && col(x, 'Path').every((p) => p === '/fail'));
  await setCheck('rq-error', false);
  await setCheck('rq-slow', true);
  await requestsWhere('slow: the GET /slow/', (x) => x.rows.length === 1 && col(x, 'Path')[0] === '/slow/');
  await setCheck('rq-slow', false);
  await setCheck('rq-n1', true);
  await requestsWhere('N+1: the 6 GET /books/', (x) => x.rows.length === 6 && col(x, 'Path').every((p) => p === '/books/'));
  await setCheck('rq-n1', false);
  await page.fill('#rq-q', 'books/');
  await requestsWhere('path search "books/": the 9 book requests', (x) => x.rows.length === 9 &&
    col(x, 'Path').every((p) => p.includes('books/')));
  await page.fill('#rq-q', '<img');
  t = await requestsWhere('path search for the markup finds its request', (x) => x.rows.length === 1);
  await check('its path is shown literally', col(t, 'Path')[0] === X.xss_path);
  await page.fill('#rq-q', '');
  await requestsWhere('clearing the search shows 50 again', (x) => x.rows.length === 50);

  /* ---- a request's detail ---- */
  await page.fill('#rq-q', '/books/');
  await setCheck('rq-n1', true);
  await requestsWhere('one GET /books/ request to open', (x) => x.rows.length >= 1 && col(x, 'Path')[0] === '/books/');
  await page.click('#rq-table tbody tr:first-child td:nth-child(4)');
  await until('clicking it opens its detail', () => /^#request\/\d+$/.test(location.hash) &&
    document.querySelector('#rd-queries tbody') !== null);
  t = await rowsOf('#rd-queries');
  const sqls = col(t, 'SQL');
  await check('its 6 statements in order: the books, then 5 author look-ups',
    t.rows.length === 6 && /SELECT id, title, author_id FROM books/i.test(sqls[0]) &&
    sqls.slice(1).every((s) => /SELECT name FROM authors WHERE id = \?/i.test(s)));
  const n1rows = await page.evaluate(() => document.querySelectorAll('#rd-queries tbody tr.n1').length);
  await check('the 5 repeated statements are highlighted as N+1', n1rows === 5);
  const groups = await page.evaluate(() => [...document.querySelectorAll('#rd-n1 li')].map((li) => li.textContent));
  await check('one N+1 group, x5', groups.length === 1 && /\u00d75/.test(groups[0]));
  const bars = await page.evaluate(() => [...document.querySelectorAll('#rd-queries .bar')].map((b) => parseFloat(b.style.width)));
  await check('each statement has a duration bar, the longest full', bars.length === 6 && Math.max(...bars) === 100);

  await page.goto(X.url + '/#request/' + X.fail_id);
  await until('a failed request shows its error', () => {
    const e = document.getElementById('rd-error');
    return e && /HTTP 500/.test(e.textContent);
  });
  t = await rowsOf('#rd-queries');
  await check('and its failed statement', t.rows.length === 1 && /no such table/.test(col(t, 'SQL')[0]));

  await page.goto(X.url + '/#request/' + X.books_id);
  await until('the detail is reachable by its URL', () => document.querySelector('#rd-queries tbody') !== null);
  await page.screenshot({ path: path.join(OUT, 'request.png'), fullPage: true });
  ok('screenshot ' + path.join(OUT, 'request.png'));

  await page.goto(X.url + '/#request/' + X.xss_id);
  await until('the markup request\'s detail shows its path as text', (p) => {
    const e = document.getElementById('rd-path');
    return e && e.textContent === p && e.children.length === 0;
  }, X.xss_path);

  /* ---- panes ---- */
  await page.goto(X.url + '/#n-plus-one');
  await until('N+1 pane: GET /books/ and its repeated statement', () => {
    const t = document.querySelector('#n1-table tbody');
    return t && /\/books\//.test(t.textContent) && /SELECT name FROM authors WHERE id = \?/i.test(t.textContent);
  });
  await page.click('#n1-table tbody a');
  await until('its example link opens a request', () => /^#request\/\d+$/.test(location.hash) &&
    document.querySelector('#rd-queries tbody') !== null);
  await page.goto(X.url + '/#queries');
  await until('queries pane: the author look-up shape with 33 calls', () => {
    return [...document.querySelectorAll('#qs-table tbody tr')].some((tr) =>
      /SELECT name FROM authors/i.test(tr.children[0].textContent) && tr.children[2].textContent === '33');
  });
  await page.fill('#qs-search', 'sleep_ms');
  await until('queries search narrows to one shape', () => document.querySelectorAll('#qs-table tbody tr').length === 1);
  await page.goto(X.url + '/#errors');
  await until('errors pane: SQLite 1 and HTTP 500 on GET /fail', () => {
    const t = document.querySelector('#er-table tbody');
    return t && /SQLite 1/.test(t.textContent) && /HTTP 500/.test(t.textContent) && /GET \/fail/.test(t.textContent);
  });
  /* Regressions, summaries and the chart come from endpoints another
   * branch adds: a table or a "not available" note, never a failure. */
  for (const [tab, box] of [['regressions', '#rg-table'], ['summaries', '#sm-table']]) {
    await page.goto(X.url + '/#' + tab);
    await until(tab + ' pane renders (a table or a note)', (b) => {
      const e = document.querySelector(b);
      return e && e.children.length > 0;
    }, box);
  }
  await until('the chart renders (a chart or a note)', () => document.getElementById('chart').children.length > 0);

  await profiles(context);
  await mocked(context);

  await check('no script error, CSP violation or dialog: ' + problems.join('; '), problems.length === 0);
  await browser.close();
}

main().catch(async (e) => { await fail(e && e.stack ? e.stack : String(e)); });
