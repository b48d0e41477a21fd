/*
 * apiprof dashboard: plain JavaScript, no framework, no build step.
 *
 * Everything the API returns (request paths, routes, SQL, error messages)
 * is attacker-controlled: it only ever reaches the page as text nodes
 * (textContent, createTextNode) or as the value of a fixed attribute
 * (title); no DOM property or call that parses HTML is ever used. The collector's
 * Content-Security-Policy forbids inline scripts as a second line.
 */
'use strict';

(function () {
  const TOKEN_KEY = 'apiprof.token';
  const REFRESH_MS = 5000;
  const RATE_WINDOW_S = 300;     /* req/s column: the last 5 minutes */
  const CHART_SPAN_S = 900;      /* the chart: the last 15 minutes */
  const PAGE_SIZE = 50;
  const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'];

  const $ = (id) => document.getElementById(id);

  /* ---- DOM helpers: text only ---- */

  /* el('td', {class: 'num', title: 'x'}, child...) where a child is a Node,
   * a string or number (a text node), or null (skipped). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'href') e.setAttribute('href', v);
        else if (k === 'onclick') e.addEventListener('click', v);
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children) append(e, c);
    return e;
  }
  function append(e, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach((x) => append(e, x)); return; }
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  function note(text) { return el('p', { class: 'note' }, text); }

  /* ---- formatting ---- */

  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function fmtInt(v) { return v === null || v === undefined ? '' : nf0.format(v); }
  function fmtMs(v) {
    if (v === null || v === undefined || !isFinite(v)) return '';
    const a = Math.abs(v);
    if (a >= 10000) return nf2.format(v / 1000) + ' s';
    return (a >= 100 ? nf0 : a >= 10 ? nf1 : nf2).format(v) + ' ms';
  }
  function fmtNum(v) {
    if (v === null || v === undefined || !isFinite(v)) return '';
    return (Math.abs(v) >= 100 ? nf0 : Math.abs(v) >= 10 ? nf1 : nf2).format(v);
  }
  function fmtRate(v) { return v === null || v === undefined ? '' : nf1.format(v * 100) + '%'; }
  function fmtBytes(v) {
    if (v === null || v === undefined) return '';
    if (v >= 1048576) return nf1.format(v / 1048576) + ' MiB';
    if (v >= 1024) return nf1.format(v / 1024) + ' KiB';
    return nf0.format(v) + ' B';
  }
  function fmtTime(s) {
    if (!s) return '';
    const d = new Date(s);
    if (isNaN(d)) return String(s);
    const p = (n, w) => String(n).padStart(w || 2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
      p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }
  function fmtClock(s) { const t = fmtTime(s); return t.slice(11); }
  function fmtDuration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return (s % 60) + 's';
  }

  /* Response times against slow_request_threshold_ms: red at or above it
   * (slow, as the collector counts it), orange from half of it, else green. */
  function msClass(v) {
    const t = state.slowMs;
    if (v === null || v === undefined) return '';
    if (v >= t) return 't-bad';
    if (v >= t / 2) return 't-warn';
    return 't-good';
  }
  function errClass(rate) { return rate >= 0.05 ? 't-bad' : rate > 0 ? 't-warn' : ''; }
  function statusClass(s) { return s >= 500 || s === 0 ? 's5' : s >= 400 ? 's4' : s >= 300 ? 's3' : 's2'; }

  /* ---- state ---- */

  const state = {
    slowMs: 1000,
    status: null,
    services: new Set(),
    tab: 'endpoints',
    ep: { rows: [], rates: new Map(), prof: new Map(), sort: { key: 'count', dir: -1 } },
    rq: { route: '', cursors: [], next: null },
    qs: { rows: [], sort: { key: 'total_ms', dir: -1 } },
    sm: { rows: [] },
    /* the Profiles pane: the folded text drawn, its tree, the zoomed-in
     * frame (names from the root), the function highlighted */
    pf: { key: null, text: null, root: null, focus: [], highlight: null, top: null, sort: { key: 'self', dir: -1 },
      endpoints: '' },
    busy: false,
  };

  /* ---- the API ---- */

  class NotAvailable extends Error {}
  class NotFound extends Error {}

  let tokenPrompt = null;   /* one prompt shared by every call that needs it */

  function askToken(message) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const box = $('token-box'), input = $('token-input'), err = $('token-error');
      err.textContent = message || '';
      err.hidden = !message;
      box.hidden = false;
      input.value = '';
      input.focus();
      $('token-form').onsubmit = (ev) => {
        ev.preventDefault();
        const v = input.value.trim();
        if (!v) return;
        sessionStorage.setItem(TOKEN_KEY, v);
        box.hidden = true;
        tokenPrompt = null;
        resolve();
      };
    });
    return tokenPrompt;
  }

  /* GET path with params (empty values left out). A 401 asks for the token
   * and tries again; a 404 throws NotFound, or NotAvailable when the whole
   * endpoint is missing (an older collector: opts.optional). opts.text:
   * the body as a string rather than parsed JSON. */
  async function api(path, params, opts) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v === '' || v === null || v === undefined || v === false) continue;
      url.searchParams.set(k, String(v));
    }
    for (;;) {
      const tok = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: opts && opts.text ? 'text/plain, application/json' : 'application/json' };
      if (tok) headers.Authorization = 'Bearer ' + tok;
      const r = await fetch(url, { headers, cache: 'no-store', credentials: 'omit' });
      if (r.status === 401) {
        if (sessionStorage.getItem(TOKEN_KEY) !== tok) continue; /* another call got a new one */
        await askToken(tok ? 'That token was refused. Enter the collector\'s auth_token.' : '');
        continue;
      }
      if (opts && opts.text && r.ok) return await r.text();
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      if (r.status === 404) {
        if (opts && opts.optional) throw new NotAvailable(path);
        throw new NotFound((body && body.error) || 'not found');
      }
      if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status));
      return body;
    }
  }

  function service() { return $('service').value; }

  /* ---- sortable tables ---- */

  /* cols: [{key, label, num, title, value(row) for sorting, render(row) ->
   * Node|string, cls(row) -> class}]; opts: {sort: {key, dir}, onSort,
   * rowClick(row), rowClass(row), empty}. */
  function renderTable(box, cols, rows, opts) {
    opts = opts || {};
    const sort = opts.sort;
    if (sort) {
      const col = cols.find((c) => c.key === sort.key) || cols[0];
      const val = col.value || ((r) => r[col.key]);
      rows = rows.slice().sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        if (typeof x === 'number' && typeof y === 'number') return (x - y) * sort.dir;
        return String(x).localeCompare(String(y)) * sort.dir;
      });
    }
    const head = el('tr', null, cols.map((c) => {
      const th = el('th', { class: (c.num ? 'num ' : '') + (sort ? 'sortable' : ''), title: c.title || null,
        scope: 'col', 'data-key': c.key }, c.label);
      if (sort) {
        th.setAttribute('aria-sort', sort.key === c.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
        th.addEventListener('click', () => {
          if (sort.key === c.key) sort.dir = -sort.dir;
          else { sort.key = c.key; sort.dir = c.num ? -1 : 1; }
          if (opts.onSort) opts.onSort();
        });
      }
      return th;
    }));
    const body = el('tbody');
    for (const r of rows) {
      const tr = el('tr', { class: [opts.rowClick ? 'click' : '', opts.rowClass ? opts.rowClass(r) : ''].join(' ').trim() || null });
      for (const c of cols) {
        const v = c.render ? c.render(r) : r[c.key];
        tr.appendChild(el('td', { class: [c.num ? 'num' : '', c.cls ? c.cls(r) : ''].join(' ').trim() || null }, v));
      }
      if (opts.rowClick) tr.addEventListener('click', (ev) => {
        if (ev.target.closest('a')) return;
        opts.rowClick(r);
      });
      body.appendChild(tr);
    }
    const t = el('table', null, el('thead', null, head), body);
    box.replaceChildren(rows.length ? t : note(opts.empty || 'Nothing yet.'));
  }

  function requestLink(id, text) {
    const n = Number(id);
    if (!Number.isSafeInteger(n) || n <= 0) return '';
    return el('a', { href: '#request/' + n }, text || ('#' + n));
  }

  /* ---- header: status ---- */

  async function refreshStatus() {
    const s = await api('/api/v1/status');
    state.status = s;
    if (s.config && typeof s.config.slow_request_threshold_ms === 'number')
      state.slowMs = s.config.slow_request_threshold_ms;
    document.title = 'apiprof \u00b7 ' + (s.host || '');
    const t = s.totals || {};
    const procs = s.processes || [];
    const live = procs.filter((p) => p.connected).length;
    const dropped = procs.reduce((a, p) => a + (p.dropped || 0), 0);
    $('facts').replaceChildren(...[
      el('span', null, 'host ', el('b', null, s.host || '')),
      el('span', null, 'v', s.version || '', ', up ', el('b', null, fmtDuration(s.uptime_s || 0))),
      el('span', null, el('b', null, fmtInt(t.requests)), ' requests'),
      el('span', null, el('b', null, fmtInt(t.sql)), ' SQL statements'),
      el('span', { title: 'processes sending events now / seen' }, el('b', null, live + '/' + procs.length), ' processes'),
      dropped ? el('span', { class: 'bad' }, fmtInt(dropped) + ' events dropped') : null,
      el('span', { class: 'muted', title: 'slow_request_threshold_ms' }, 'slow \u2265 ' + fmtMs(state.slowMs))].filter(Boolean));
  }

  /* ---- the live chart (hand-written SVG) ---- */

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]));
    for (const c of children) append(e, c);
    return e;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  let chartPoints = null;
  async function refreshChart() {
    const box = $('chart');
    let ts;
    try {
      ts = await api('/api/v1/timeseries', { since: Math.floor(Date.now() / 1000) - CHART_SPAN_S, service: service() },
        { optional: true });
    } catch (e) {
      if (e instanceof NotAvailable) {
        chartPoints = null;
        box.replaceChildren(note('Not available: this collector has no /api/v1/timeseries.'));
        return;
      }
      throw e;
    }
    chartPoints = (ts && ts.points) || [];
    drawChart();
  }

  function drawChart() {
    const box = $('chart');
    if (chartPoints === null) return;
    const pts = chartPoints;
    if (!pts.length) { box.replaceChildren(note('No complete 10-second bucket yet.')); return; }
    const W = Math.max(300, box.clientWidth || 800), H = 150, L = 44, R = 8, T = 8, B = 20;
    const tmin = Date.parse(pts[0].t), tmax = Math.max(Date.parse(pts[pts.length - 1].t), tmin + 1);
    const ymax = niceMax(Math.max(...pts.map((p) => Math.max(p.requests_per_s || 0, p.sql_per_s || 0))));
    const x = (t) => L + (Date.parse(t) - tmin) / (tmax - tmin) * (W - L - R);
    const y = (v) => T + (1 - (v || 0) / ymax) * (H - T - B);
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'requests and SQL statements per second' });
    for (let i = 0; i <= 4; i++) {
      const v = ymax * i / 4, yy = y(v);
      g.appendChild(svg('line', { class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy }));
      g.appendChild(svg('text', { class: 'axis', x: L - 4, y: yy + 3, 'text-anchor': 'end' }, Number.isInteger(v) ? nf0.format(v) : fmtNum(v)));
    }
    const nlab = Math.min(6, pts.length);
    for (let i = 0; i < nlab; i++) {
      const p = pts[Math.round(i * (pts.length - 1) / Math.max(1, nlab - 1))];
      g.appendChild(svg('text', { class: 'axis', x: x(p.t), y: H - 5, 'text-anchor': i === 0 ? 'start' : i === nlab - 1 ? 'end' : 'middle' },
        fmtClock(p.t).slice(0, 5 + 3)));
    }
    const path = (k) => pts.map((p, i) => (i ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p[k]).toFixed(1)).join(' ');
    g.appendChild(svg('path', { class: 'area req', d: path('requests_per_s') + ' L' + x(pts[pts.length - 1].t).toFixed(1) + ' ' + y(0) + ' L' + x(pts[0].t).toFixed(1) + ' ' + y(0) + ' Z' }));
    g.appendChild(svg('path', { class: 'line sql', d: path('sql_per_s') }));
    g.appendChild(svg('path', { class: 'line req', d: path('requests_per_s') }));
    for (const p of pts) {
      const c = svg('circle', { cx: x(p.t), cy: y(p.requests_per_s), r: 4, fill: 'transparent' });
      c.appendChild(svg('title', null, fmtClock(p.t) + ': ' + fmtNum(p.requests_per_s) + ' req/s, ' +
        fmtNum(p.sql_per_s) + ' SQL/s, avg ' + fmtMs(p.avg_request_ms) + ' per request'));
      g.appendChild(c);
    }
    box.replaceChildren(g);
  }

  /* ---- endpoints ---- */

  const EP_COLS = [
    { key: 'service', label: 'Service' },
    { key: 'method', label: 'Method' },
    { key: 'route', label: 'Route', cls: () => 'path' },
    { key: 'count', label: 'Count', num: true, render: (r) => fmtInt(r.count) },
    { key: 'rps', label: 'Req/s', num: true, title: 'requests per second over the last 5 minutes (since the collector started, when later)',
      value: (r) => r.rps, render: (r) => fmtNum(r.rps) },
    { key: 'error_rate', label: 'Errors', num: true, title: 'error rate: 5xx and aborted',
      render: (r) => fmtRate(r.error_rate), cls: (r) => errClass(r.error_rate) },
    { key: 'avg_ms', label: 'Avg', num: true, render: (r) => fmtMs(r.avg_ms), cls: (r) => msClass(r.avg_ms) },
    { key: 'p50_ms', label: 'p50', num: true, render: (r) => fmtMs(r.p50_ms), cls: (r) => msClass(r.p50_ms) },
    { key: 'p95_ms', label: 'p95', num: true, render: (r) => fmtMs(r.p95_ms), cls: (r) => msClass(r.p95_ms) },
    { key: 'p99_ms', label: 'p99', num: true, render: (r) => fmtMs(r.p99_ms), cls: (r) => msClass(r.p99_ms) },
    { key: 'max_ms', label: 'Max', num: true, render: (r) => fmtMs(r.max_ms), cls: (r) => msClass(r.max_ms) },
    { key: 'sql_per_request', label: 'SQL/req', num: true, render: (r) => fmtNum(r.sql_per_request) },
    { key: 'n_plus_one_count', label: 'N+1', num: true, title: 'requests with an N+1',
      render: (r) => r.n_plus_one_count ? el('span', { class: 'badge n1' }, fmtInt(r.n_plus_one_count)) : '0' },
    { key: 'cpu', label: 'CPU', num: true, title: 'CPU samples of its profiled requests: opens its flame graph',
      value: (r) => state.ep.prof.get(epKey(r)) || 0, render: (r) => {
        const n = state.ep.prof.get(epKey(r)) || 0;
        return n ? el('a', { href: profileHash(r), class: 'flame-link', title: fmtInt(n) + ' samples' }, 'flame') : '';
      } },
  ];
  const epKey = (r) => r.service + '\u0000' + r.method + '\u0000' + r.route;

  async function refreshEndpoints() {
    const since = Math.floor((Date.now() / 1000 - RATE_WINDOW_S) / 60) * 60;
    const [all, recent, prof] = await Promise.all([
      api('/api/v1/endpoints'),
      api('/api/v1/endpoints', { since }),
      /* which endpoints have CPU samples; without the answer (a collector
       * without profiles, a failure) the table still shows, with no links */
      api('/api/v1/profile', { limit: 1 }, { optional: true }).catch(() => null),
    ]);
    state.ep.prof = new Map(((prof && prof.endpoints) || []).filter((e) => e.samples > 0)
      .map((e) => [epKey(e), e.samples]));
    /* A collector younger than the window has seen traffic only since it
     * started (after a restart, minutes stored before it count too, and
     * the rate reads a little high until the window has passed). */
    const started = state.status ? Date.parse(state.status.started_at) / 1000 : NaN;
    const from = isFinite(started) ? Math.max(since, started) : since;
    const span = Math.max(1, Date.now() / 1000 - from);
    state.ep.rates = new Map((recent.endpoints || []).map((r) => [epKey(r), r.count / span]));
    state.ep.rows = all.endpoints || [];
    for (const r of state.ep.rows) r.rps = state.ep.rates.get(epKey(r)) || 0;
    noteServices(state.ep.rows.map((r) => r.service));
    const methods = $('ep-method');
    const have = new Set([...methods.options].map((o) => o.value));
    for (const m of new Set(state.ep.rows.map((r) => r.method))) {
      if (!have.has(m)) methods.appendChild(el('option', null, m));
    }
    drawEndpoints();
  }

  function drawEndpoints() {
    const svc = service(), m = $('ep-method').value, q = $('ep-search').value.trim().toLowerCase();
    const rows = state.ep.rows.filter((r) => (!svc || r.service === svc) && (!m || r.method === m) &&
      (!q || (r.route + ' ' + r.service + ' ' + r.method).toLowerCase().includes(q)));
    $('ep-count').textContent = rows.length + ' of ' + state.ep.rows.length + ' endpoints';
    renderTable($('ep-table'), EP_COLS, rows, {
      sort: state.ep.sort, onSort: drawEndpoints,
      empty: state.ep.rows.length ? 'No endpoint matches.' : 'No request seen yet: start a server under the preload.',
      rowClick: (r) => {
        $('service').value = r.service;
        $('rq-method').value = METHODS.includes(r.method) ? r.method : 'OTHER';
        state.rq.route = r.route;
        resetRequests();
        location.hash = '#requests';
      },
    });
  }

  function noteServices(list) {
    const sel = $('service');
    for (const s of list) {
      if (s && !state.services.has(s)) {
        state.services.add(s);
        sel.appendChild(el('option', null, s));
      }
    }
  }

  /* ---- requests ---- */

  function resetRequests() { state.rq.cursors = []; state.rq.next = null; }

  const RQ_COLS = [
    { key: 'ts', label: 'Time', render: (r) => fmtTime(r.ts) },
    { key: 'service', label: 'Service' },
    { key: 'method', label: 'Method' },
    { key: 'path', label: 'Path', cls: () => 'path', render: (r) => el('span', { title: r.route }, r.path) },
    { key: 'status', label: 'Status', num: true, render: (r) => r.aborted ? 'aborted' : r.status,
      cls: (r) => statusClass(r.aborted ? 0 : r.status) },
    { key: 'duration_ms', label: 'Duration', num: true, render: (r) => fmtMs(r.duration_ms), cls: (r) => msClass(r.duration_ms) },
    { key: 'sql_count', label: 'SQL', num: true },
    { key: 'sql_time_ms', label: 'SQL time', num: true, render: (r) => fmtMs(r.sql_time_ms) },
    { key: 'flags', label: '', render: (r) => [
      r.slow ? el('span', { class: 'badge slow' }, 'slow') : null,
      r.error ? el('span', { class: 'badge error' }, 'error') : null,
      r.n_plus_one ? el('span', { class: 'badge n1' }, 'N+1') : null] },
  ];

  async function refreshRequests() {
    const rq = state.rq;
    const before = rq.cursors.length ? rq.cursors[rq.cursors.length - 1] : '';
    const params = {
      service: service(), route: rq.route, method: $('rq-method').value, status: $('rq-status').value,
      slow: $('rq-slow').checked ? 'true' : '', error: $('rq-error').checked ? 'true' : '',
      n_plus_one: $('rq-n1').checked ? 'true' : '', q: $('rq-q').value.trim(), limit: PAGE_SIZE, before,
    };
    const body = await api('/api/v1/requests', params);
    rq.next = body.next;
    const chip = $('rq-route');
    chip.hidden = !rq.route;
    $('rq-route-text').textContent = 'route ' + rq.route;
    renderTable($('rq-table'), RQ_COLS, body.requests || [], {
      empty: 'No request matches.',
      rowClass: (r) => r.error ? 'rq-error' : null,
      rowClick: (r) => { location.hash = '#request/' + Number(r.id); },
    });
    $('rq-older').disabled = !rq.next;
    $('rq-newest').disabled = !rq.cursors.length;
    $('rq-page').textContent = 'page ' + (rq.cursors.length + 1) + ', ' + (body.requests || []).length + ' requests';
  }

  /* ---- one request ---- */

  async function showRequest(id) {
    const box = $('rd-body');
    let r;
    try {
      r = await api('/api/v1/requests/' + encodeURIComponent(id));
    } catch (e) {
      if (e instanceof NotFound) { box.replaceChildren(note('No request ' + id + ' (expired, sampled out or never stored).')); return; }
      throw e;
    }
    const queries = r.queries || [], n1 = r.n_plus_one || [];
    const n1fp = new Map(n1.map((g, i) => [g.fingerprint, { g, i }]));
    const kv = (k, v, cls) => [el('dt', null, k), el('dd', { class: cls || null }, v)];
    const sqlPct = r.duration_ms > 0 ? Math.min(100, 100 * r.sql_time_ms / r.duration_ms) : 0;
    const parts = [
      el('h2', { class: 'mono', id: 'rd-title' }, r.method + ' ', el('span', { id: 'rd-path' }, r.path), ' ',
        el('span', { class: statusClass(r.aborted ? 0 : r.status) }, r.aborted ? 'aborted' : String(r.status))),
      el('dl', { class: 'kv' },
        kv('time', fmtTime(r.ts)), kv('duration', fmtMs(r.duration_ms), msClass(r.duration_ms)), kv('service', r.service),
        kv('route', requestsOfRoute(r)), kv('SQL', fmtInt(r.sql_count) + ' statements'), kv('SQL time', fmtMs(r.sql_time_ms)),
        kv('host', r.host), kv('pid / tid', r.pid + ' / ' + r.tid), kv('bytes in / out', fmtBytes(r.bytes_in) + ' / ' + fmtBytes(r.bytes_out))),
    ];
    const bar = el('div', { class: 'timing', title: 'time in SQL vs the rest of the request' });
    const sqlPart = el('div', { class: 'sqlpart' });
    sqlPart.style.width = sqlPct.toFixed(1) + '%';
    bar.appendChild(sqlPart);
    parts.push(bar, el('p', { class: 'muted' }, 'SQL ' + fmtMs(r.sql_time_ms) + ' (' + nf0.format(sqlPct) + '%), the rest ' +
      fmtMs(Math.max(0, r.duration_ms - r.sql_time_ms))));
    if (r.error) {
      parts.push(el('div', { class: 'errbox', id: 'rd-error' }, el('b', null, r.error.type),
        r.error.message ? el('pre', null, r.error.message) : null));
    }
    if (n1.length) {
      parts.push(el('h3', null, 'N+1 groups'));
      parts.push(el('ul', { id: 'rd-n1' }, n1.map((g) =>
        el('li', null, el('span', { class: 'badge n1' }, '\u00d7' + g.count), ' ', el('code', null, g.sql)))));
    }
    parts.push(el('h3', null, 'SQL statements, in order (' + queries.length +
      (queries.length < r.sql_count ? ' of ' + r.sql_count + ' stored' : '') + ')'));
    if (!queries.length) {
      parts.push(note('No SQL statement.'));
    } else {
      const t0 = Date.parse(r.ts);
      const maxd = Math.max(...queries.map((q) => q.duration_ms || 0), 0.001);
      const cols = [
        { key: 'seq', label: '#', num: true, render: (q) => q.seq !== undefined ? q.seq : '' },
        { key: 'at', label: 'At', num: true, title: 'when it started, after the request began (to the millisecond)',
          render: (q) => { const d = Date.parse(q.ts) - t0; return isFinite(d) ? '+' + nf0.format(Math.max(0, d)) + ' ms' : ''; } },
        { key: 'bar', label: 'Duration', cls: () => 'barcell', render: (q) => {
          const b = el('div', { class: 'bar' });
          b.style.width = Math.max(0.5, 100 * (q.duration_ms || 0) / maxd).toFixed(1) + '%';
          return b;
        } },
        { key: 'duration_ms', label: 'ms', num: true, render: (q) => fmtMs(q.duration_ms),
          cls: (q) => q.slow ? 't-bad' : '' },
        { key: 'rows', label: 'Rows', num: true, render: (q) => q.rows === null ? '' : fmtInt(q.rows) },
        { key: 'sql', label: 'SQL', cls: () => 'sql', render: (q) => [
          n1fp.has(q.fingerprint) ? el('span', { class: 'badge n1' }, 'N+1') : null,
          q.prepare ? el('span', { class: 'badge none' }, 'prepare') : null,
          q.truncated ? el('span', { class: 'badge none' }, 'truncated') : null,
          q.sql,
          q.error ? el('div', { class: 'bad' }, (q.error.code ? q.error.code + ': ' : '') + (q.error.message || '')) : null] },
        { key: 'db', label: 'DB' },
      ];
      const tb = el('div', { class: 'table-wrap', id: 'rd-queries' });
      renderTable(tb, cols, queries, {
        rowClass: (q) => q.error ? 'sqlerr' : n1fp.has(q.fingerprint) ? 'n1' : null,
      });
      parts.push(tb);
    }
    box.replaceChildren(...parts);
  }

  function requestsOfRoute(r) {
    return el('a', { href: '#requests', onclick: () => {
      $('service').value = r.service;
      state.rq.route = r.route;
      resetRequests();
    } }, r.route);
  }

  /* ---- N+1, queries, errors ---- */

  async function refreshN1() {
    const b = await api('/api/v1/n-plus-one', { service: service(), limit: 1000 });
    renderTable($('n1-table'), [
      { key: 'service', label: 'Service' },
      { key: 'method', label: 'Method' },
      { key: 'route', label: 'Route', cls: () => 'path' },
      { key: 'sql', label: 'Repeated statement', cls: () => 'sql' },
      { key: 'occurrences', label: 'Requests', num: true, render: (r) => fmtInt(r.occurrences) },
      { key: 'max_repeats', label: 'Max repeats', num: true, render: (r) => fmtInt(r.max_repeats) },
      { key: 'last_seen', label: 'Last seen', render: (r) => fmtTime(r.last_seen) },
      { key: 'example_request_id', label: 'Example', render: (r) => requestLink(r.example_request_id) },
    ], b.patterns || [], { empty: 'No N+1 pattern seen.' });
  }

  const QS_COLS = [
    { key: 'sql', label: 'Statement shape', cls: () => 'sql' },
    { key: 'db', label: 'DB' },
    { key: 'calls', label: 'Calls', num: true, render: (r) => fmtInt(r.calls) },
    { key: 'total_ms', label: 'Total', num: true, render: (r) => fmtMs(r.total_ms) },
    { key: 'mean_ms', label: 'Mean', num: true, render: (r) => fmtMs(r.mean_ms) },
    { key: 'p95_ms', label: 'p95', num: true, render: (r) => fmtMs(r.p95_ms) },
    { key: 'max_ms', label: 'Max', num: true, render: (r) => fmtMs(r.max_ms) },
    { key: 'rows', label: 'Rows', num: true, render: (r) => fmtInt(r.rows) },
    { key: 'errors', label: 'Errors', num: true, render: (r) => fmtInt(r.errors), cls: (r) => r.errors ? 't-bad' : '' },
    { key: 'slow_count', label: 'Slow', num: true, render: (r) => fmtInt(r.slow_count), cls: (r) => r.slow_count ? 't-warn' : '' },
  ];
  async function refreshQueries() {
    const b = await api('/api/v1/queries', { service: service() });
    state.qs.rows = b.queries || [];
    drawQueries();
  }
  function drawQueries() {
    const q = $('qs-search').value.trim().toLowerCase();
    renderTable($('qs-table'), QS_COLS, state.qs.rows.filter((r) => !q || String(r.sql).toLowerCase().includes(q)),
      { sort: state.qs.sort, onSort: drawQueries, empty: state.qs.rows.length ? 'No statement matches.' : 'No SQL statement seen.' });
  }

  async function refreshErrors() {
    const b = await api('/api/v1/errors', { service: service(), limit: 1000 });
    renderTable($('er-table'), [
      { key: 'type', label: 'Type', render: (r) => el('span', { class: 'badge error' }, r.type) },
      { key: 'service', label: 'Service' },
      { key: 'route', label: 'Endpoint', cls: () => 'path', render: (r) => r.route === null ? '(no request)' : (r.method || '') + ' ' + r.route },
      { key: 'message', label: 'Message', cls: () => 'sql' },
      { key: 'count', label: 'Count', num: true, render: (r) => fmtInt(r.count) },
      { key: 'first_seen', label: 'First seen', render: (r) => fmtTime(r.first_seen) },
      { key: 'last_seen', label: 'Last seen', render: (r) => fmtTime(r.last_seen) },
      { key: 'example_request_id', label: 'Example', render: (r) => requestLink(r.example_request_id) },
    ], b.errors || [], { empty: 'No error seen.' });
  }

  /* ---- CPU profiles: a flame graph (hand-written SVG) and top functions ---- */

  /* The pane's address: #profiles, or #profiles?service=S&method=M&route=R
   * for one endpoint (shareable, like #request/ID). */
  function profileSel() {
    const h = location.hash.replace(/^#/, '');
    const i = h.indexOf('?');
    const q = new URLSearchParams(i >= 0 ? h.slice(i + 1) : '');
    return { service: q.get('service') || '', method: q.get('method') || '', route: q.get('route') || '' };
  }
  function profileHash(e) {
    const q = new URLSearchParams();
    for (const k of ['service', 'method', 'route']) if (e[k]) q.set(k, e[k]);
    const s = q.toString();
    return '#profiles' + (s ? '?' + s : '');
  }

  /* Folded text ("outer;...;inner COUNT" per line) -> a tree of
   * {name, value (samples in it and below), self, children (a Map), parent,
   * depth}; the root, "all", holds every sample. */
  function parseFolded(text) {
    const root = { name: 'all', value: 0, self: 0, children: new Map(), parent: null, depth: 0, maxDepth: 0 };
    for (const line of String(text || '').split('\n')) {
      const sp = line.lastIndexOf(' ');
      if (sp <= 0) continue;
      const n = Number(line.slice(sp + 1));
      if (!Number.isSafeInteger(n) || n <= 0) continue;
      const frames = line.slice(0, sp).split(';');
      let node = root;
      root.value += n;
      for (const f of frames) {
        let c = node.children.get(f);
        if (!c) {
          c = { name: f, value: 0, self: 0, children: new Map(), parent: node, depth: node.depth + 1 };
          node.children.set(f, c);
        }
        c.value += n;
        node = c;
      }
      node.self += n;
      root.maxDepth = Math.max(root.maxDepth, frames.length);
    }
    return root;
  }

  function framePath(node) {
    const p = [];
    for (let n = node; n && n.parent; n = n.parent) p.unshift(n.name);
    return p;
  }
  function pct(n, of) { return of > 0 ? nf1.format(100 * n / of) + '%' : ''; }
  function frameText(node, total) {
    return node.name + ': ' + fmtInt(node.value) + ' samples, ' + pct(node.value, total) + ' of all' +
      (node.self ? ' (self ' + fmtInt(node.self) + ', ' + pct(node.self, total) + ')' : '');
  }

  /* The detail line under the graph: the frame under the pointer, else the
   * zoomed-in one, else the whole profile. */
  function showFrame(node) {
    const root = state.pf.root;
    const d = $('pf-detail');
    if (!root || !root.value) { d.replaceChildren(); return; }
    if (!node) node = focusNode();
    d.replaceChildren(el('b', { id: 'pf-detail-name', class: 'mono' }, node.name), ' ',
      el('span', { id: 'pf-detail-samples' }, fmtInt(node.value) + ' samples'), ', ',
      el('span', { id: 'pf-detail-pct' }, pct(node.value, root.value)), ' of all',
      node.self ? ', self ' + fmtInt(node.self) + ' (' + pct(node.self, root.value) + ')' : '',
      node.parent && node !== focusNode() ? ' \u00b7 click to zoom in' : '');
  }

  function focusNode() {
    let n = state.pf.root;
    for (const name of state.pf.focus) {
      const c = n.children.get(name);
      if (!c) break;
      n = c;
    }
    return n;
  }

  /* Frame colours: a warm hue picked from the name (stable across redraws);
   * "[lib.so]" and "[other]" frames grey. */
  function frameClass(name) {
    if (name.charAt(0) === '[') return 'fx';
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return 'f' + (h % 6);
  }

  const FLAME_ROW = 18, FLAME_CHAR = 7;

  /* Root at the bottom, callees above their callers, each frame as wide as
   * its samples; children in name order. The zoomed-in frame fills the
   * width, its callers shown full width below it. */
  function drawFlame() {
    const box = $('pf-flame');
    const pf = state.pf, root = pf.root;
    if (!root) return;
    $('pf-reset').disabled = !pf.focus.length;
    if (!root.value) {
      box.replaceChildren(note('No samples yet for ' + ($('pf-endpoint').selectedOptions[0] || { textContent: 'this selection' }).textContent +
        '. Every APIPROF_PROFILE_EVERY-th request (default 20) is profiled, and any request with the header X-Apiprof-Profile: 1.'));
      showFrame(null);
      return;
    }
    const focus = focusNode();
    const W = Math.max(300, box.clientWidth || 800), H = (root.maxDepth + 1) * FLAME_ROW;
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': 'flame graph' });
    const scale = W / focus.value;
    const frame = (node, x, w, dim) => {
      const y = H - (node.depth + 1) * FLAME_ROW;
      const cls = ['frame', frameClass(node.name), dim ? 'dim' : '', node.name === pf.highlight ? 'hl' : '',
        node === focus && pf.focus.length ? 'focus' : ''].join(' ').replace(/ +/g, ' ').trim();
      const f = svg('g', { class: cls });
      f.appendChild(svg('rect', { x: x.toFixed(2), y, width: Math.max(0.5, w - 0.5).toFixed(2), height: FLAME_ROW - 1, rx: 2 }));
      const chars = Math.floor((w - 6) / FLAME_CHAR);
      if (chars >= 3) {
        f.appendChild(svg('text', { x: (x + 3).toFixed(2), y: y + FLAME_ROW - 5 },
          node.name.length <= chars ? node.name : node.name.slice(0, chars - 1) + '\u2026'));
      }
      f.appendChild(svg('title', null, frameText(node, root.value)));
      f.addEventListener('mouseenter', () => showFrame(node));
      f.addEventListener('click', () => {
        pf.focus = framePath(node);
        drawFlame();
        showFrame(node);
      });
      g.appendChild(f);
    };
    for (let n = focus.parent; n; n = n.parent) frame(n, 0, W, true);
    frame(focus, 0, W, false);
    const walk = (node, x) => {
      const kids = [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const c of kids) {
        const w = c.value * scale;
        if (w >= 0.5) {
          frame(c, x, w, false);
          walk(c, x);
        }
        x += w;
      }
    };
    walk(focus, 0);
    g.addEventListener('mouseleave', () => showFrame(null));
    box.replaceChildren(g);
    showFrame(null);
  }

  const PF_COLS = [
    { key: 'function', label: 'Function', cls: () => 'path' },
    { key: 'self', label: 'Self', num: true, title: 'samples in the function itself', render: (r) => fmtInt(r.self) },
    { key: 'self_fraction', label: 'Self %', num: true, render: (r) => fmtRate(r.self_fraction) },
    { key: 'total', label: 'Total', num: true, title: 'samples in the function and what it called', render: (r) => fmtInt(r.total) },
    { key: 'total_fraction', label: 'Total %', num: true, render: (r) => fmtRate(r.total_fraction) },
  ];

  function drawTop() {
    const pf = state.pf;
    const fns = (pf.top && pf.top.functions) || [];
    renderTable($('pf-top'), PF_COLS, fns, {
      sort: pf.sort, onSort: drawTop, empty: 'No samples yet.',
      rowClass: (r) => r.function === pf.highlight ? 'hl' : null,
      rowClick: (r) => {
        pf.highlight = pf.highlight === r.function ? null : r.function;
        drawFlame();
        drawTop();
      },
    });
  }

  async function refreshProfiles() {
    const pf = state.pf, sel = profileSel();
    const params = { service: sel.service || service(), method: sel.method, route: sel.route };
    let list, top, text;
    try {
      [list, top, text] = await Promise.all([
        api('/api/v1/profile', { service: service(), limit: 1 }, { optional: true }),
        api('/api/v1/profile', Object.assign({ limit: 50 }, params), { optional: true }),
        api('/api/v1/profile', Object.assign({ format: 'collapsed' }, params), { optional: true, text: true }),
      ]);
    } catch (e) {
      if (e instanceof NotAvailable) {
        pf.root = null;
        $('pf-flame').replaceChildren(note('Not available: this collector has no /api/v1/profile.'));
        $('pf-top').replaceChildren();
        $('pf-detail').replaceChildren();
        return;
      }
      throw e;
    }
    /* The endpoint menu: every endpoint with samples, and the one asked for. */
    const eps = ((list && list.endpoints) || []).filter((e) => e.samples > 0);
    const cur = profileHash(sel);
    if (sel.route && !eps.some((e) => profileHash(e) === cur)) eps.push(Object.assign({ samples: 0 }, sel));
    const menu = $('pf-endpoint');
    const sig = JSON.stringify([service(), eps.map((e) => profileHash(e))]);
    if (sig !== pf.endpoints) {
      pf.endpoints = sig;
      menu.replaceChildren(el('option', { value: '#profiles' }, service() ? 'every endpoint of ' + service() : 'every endpoint'),
        ...eps.map((e) => el('option', { value: profileHash(e) },
          (service() ? '' : e.service + ' \u00b7 ') + e.method + ' ' + e.route)));
    }
    menu.value = sel.route || sel.method ? cur : '#profiles';
    if (menu.value !== cur && menu.value !== '#profiles') menu.value = '#profiles';

    const key = JSON.stringify(params);
    if (key !== pf.key) { pf.focus = []; pf.highlight = null; }
    pf.top = top;
    $('pf-info').textContent = top && top.samples ? fmtInt(top.samples) + ' samples from ' + fmtInt(top.requests) +
      ' profiled requests' : '';
    if (key !== pf.key || text !== pf.text) {
      pf.key = key;
      pf.text = text;
      pf.root = parseFolded(text);
      drawFlame();
    }
    drawTop();
  }

  /* ---- regressions and summaries (collectors with windows) ---- */

  async function optionalPane(box, path, params, fn) {
    let b;
    try {
      b = await api(path, params, { optional: true });
    } catch (e) {
      if (e instanceof NotAvailable) {
        box.replaceChildren(note('Not available: this collector has no ' + path + '.'));
        return;
      }
      throw e;
    }
    fn(b);
  }

  async function refreshRegressions() {
    await optionalPane($('rg-table'), '/api/v1/regressions', { service: service(), limit: 1000 }, (b) => {
      const pair = (a, c, f) => (a === null || a === undefined ? '' : f(a)) + ' \u2192 ' + (c === null || c === undefined ? '' : f(c));
      renderTable($('rg-table'), [
        { key: 'detected_at', label: 'Detected', render: (r) => fmtTime(r.detected_at) },
        { key: 'type', label: 'Type', render: (r) => el('span', { class: 'badge error' }, r.type) },
        { key: 'service', label: 'Service' },
        { key: 'route', label: 'Endpoint', cls: () => 'path', render: (r) => (r.method || '') + ' ' + (r.route || '') },
        { key: 'window_start', label: 'Window', render: (r) => fmtTime(r.window_start) },
        { key: 'avg', label: 'Avg', num: true, render: (r) => pair(r.previous_avg_ms, r.current_avg_ms, fmtMs) },
        { key: 'p95', label: 'p95', num: true, render: (r) => pair(r.previous_p95_ms, r.current_p95_ms, fmtMs) },
        { key: 'err', label: 'Error rate', num: true, render: (r) => pair(r.previous_error_rate, r.current_error_rate, fmtRate) },
        { key: 'fingerprint', label: 'Shape', cls: () => 'mono', render: (r) => r.fingerprint || '' },
        { key: 'webhook', label: 'Webhook', render: (r) => el('span', { class: 'badge ' + (['pending', 'delivered', 'failed', 'none'].includes(r.webhook) ? r.webhook : 'none') }, r.webhook || 'none') },
      ], b.regressions || [], { empty: 'No regression detected.' });
    });
  }

  const SM_COLS = [
    { key: 'window_start', label: 'Window', render: (r) => fmtTime(r.window_start) + ' \u2013 ' + fmtClock(r.window_end) },
    { key: 'service', label: 'Service' },
    { key: 'method', label: 'Method' },
    { key: 'route', label: 'Route', cls: () => 'path' },
    { key: 'count', label: 'Count', num: true, render: (r) => fmtInt(r.count) },
    { key: 'avg_ms', label: 'Avg', num: true, render: (r) => fmtMs(r.avg_ms), cls: (r) => msClass(r.avg_ms) },
    { key: 'p95_ms', label: 'p95', num: true, render: (r) => fmtMs(r.p95_ms), cls: (r) => msClass(r.p95_ms) },
    { key: 'min_ms', label: 'Min', num: true, render: (r) => fmtMs(r.min_ms) },
    { key: 'max_ms', label: 'Max', num: true, render: (r) => fmtMs(r.max_ms), cls: (r) => msClass(r.max_ms) },
    { key: 'error_rate', label: 'Errors', num: true, render: (r) => fmtRate(r.error_rate), cls: (r) => errClass(r.error_rate) },
    { key: 'slow_count', label: 'Slow', num: true, render: (r) => fmtInt(r.slow_count) },
    { key: 'n_plus_one_count', label: 'N+1', num: true, render: (r) => fmtInt(r.n_plus_one_count) },
  ];
  async function refreshSummaries() {
    await optionalPane($('sm-table'), '/api/v1/summaries', { service: service(), limit: 1000 }, (b) => {
      state.sm.rows = b.summaries || [];
      drawSummaries();
    });
  }
  function drawSummaries() {
    const q = $('sm-search').value.trim().toLowerCase();
    renderTable($('sm-table'), SM_COLS, state.sm.rows.filter((r) =>
      !q || (r.route + ' ' + r.service + ' ' + r.method).toLowerCase().includes(q)),
    { empty: state.sm.rows.length ? 'No summary matches.' : 'No window closed yet.' });
  }

  /* ---- navigation and refresh ---- */

  const PANES = {
    endpoints: refreshEndpoints, requests: refreshRequests, 'n-plus-one': refreshN1, queries: refreshQueries,
    errors: refreshErrors, profiles: refreshProfiles, regressions: refreshRegressions, summaries: refreshSummaries,
  };

  function route() {
    const h = location.hash.replace(/^#/, '');
    const m = /^request\/(\d+)$/.exec(h);
    if (m) return { pane: 'request', tab: 'requests', id: m[1] };
    if (/^profiles(\?|$)/.test(h)) return { pane: 'profiles', tab: 'profiles' };
    if (PANES[h]) return { pane: h, tab: h };
    return { pane: 'endpoints', tab: 'endpoints' };
  }

  function showError(e) {
    const f = $('fatal');
    f.textContent = 'Cannot reach the collector: ' + (e && e.message ? e.message : e);
    f.hidden = false;
  }

  /* Runs fn, showing a failure instead of throwing. */
  async function guarded(fn) {
    try {
      await fn();
      $('fatal').hidden = true;
    } catch (e) {
      showError(e);
    }
  }

  async function show() {
    const r = route();
    state.tab = r.tab;
    document.querySelectorAll('nav#tabs a').forEach((a) => a.classList.toggle('active', a.dataset.tab === r.tab));
    document.querySelectorAll('.pane').forEach((p) => { p.hidden = p.id !== 'pane-' + r.pane; });
    if (r.pane === 'request') {
      $('rd-body').replaceChildren(note('Loading\u2026'));
      await guarded(() => showRequest(r.id));
    } else {
      await guarded(PANES[r.pane]);
    }
  }

  /* The periodic refresh: the header, the chart and the pane in view; not
   * a request's detail (it does not change), nor an older page of requests. */
  async function tick() {
    if (state.busy || document.hidden || !$('live').checked) return;
    state.busy = true;
    try {
      const r = route();
      const jobs = [guarded(refreshStatus), guarded(refreshChart)];
      if (r.pane !== 'request' && !(r.pane === 'requests' && state.rq.cursors.length))
        jobs.push(guarded(PANES[r.pane]));
      await Promise.all(jobs);
      $('updated').textContent = 'updated ' + fmtClock(new Date().toISOString());
    } finally {
      state.busy = false;
    }
  }

  function debounce(fn, ms) {
    let t = null;
    return () => { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  function wire() {
    window.addEventListener('hashchange', show);
    window.addEventListener('resize', debounce(() => { drawChart(); if (route().pane === 'profiles') drawFlame(); }, 150));
    $('service').addEventListener('change', () => {
      resetRequests();
      guarded(refreshChart);
      const r = route();
      if (r.pane === 'profiles' && location.hash !== '#profiles') { location.hash = '#profiles'; return; }
      if (r.pane === 'endpoints') drawEndpoints();
      else if (r.pane !== 'request') guarded(PANES[r.pane]);
    });
    $('ep-method').addEventListener('change', drawEndpoints);
    $('ep-search').addEventListener('input', debounce(drawEndpoints, 150));
    const rqChanged = () => { resetRequests(); guarded(refreshRequests); };
    for (const id of ['rq-method', 'rq-status', 'rq-slow', 'rq-error', 'rq-n1']) $(id).addEventListener('change', rqChanged);
    $('rq-q').addEventListener('input', debounce(rqChanged, 300));
    $('rq-route-clear').addEventListener('click', () => { state.rq.route = ''; rqChanged(); });
    $('rq-older').addEventListener('click', () => {
      if (!state.rq.next) return;
      state.rq.cursors.push(state.rq.next);
      guarded(refreshRequests);
    });
    $('rq-newest').addEventListener('click', rqChanged);
    $('qs-search').addEventListener('input', debounce(drawQueries, 150));
    $('sm-search').addEventListener('input', debounce(drawSummaries, 150));
    $('pf-endpoint').addEventListener('change', () => { location.hash = $('pf-endpoint').value; });
    $('pf-reset').addEventListener('click', () => { state.pf.focus = []; drawFlame(); });
    $('live').addEventListener('change', tick);
  }

  async function start() {
    wire();
    await guarded(refreshStatus);   /* asks for the token first when needed */
    await Promise.all([show(), guarded(refreshChart)]);
    $('updated').textContent = 'updated ' + fmtClock(new Date().toISOString());
    document.body.dataset.ready = '1';
    setInterval(tick, REFRESH_MS);
  }

  start();
})();
