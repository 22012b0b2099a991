/* Sinew dashboard: one page over sinewd's JSON API (docs/api.md), no
 * framework, nothing fetched from anywhere but sinewd (the page's CSP is
 * default-src 'self'). Views: the service graph, per-workload golden
 * metrics, traces and a trace's waterfall, the config with its analysis
 * and the proxies' sync state, certificates, and tap.
 *
 * The stats API answers aggregates over a window (10 s to 1 h), not
 * series, so the charts are sampled here: every tick reads a 10 s window
 * and keeps the last HISTORY points per workload. No inline styles or
 * scripts: the DOM is built with createElement, never innerHTML. */
'use strict';

const TICK_MS = 3000;
const SLOW_TICK_MS = 10000;       // config, certificates, traces: refreshed less often
const HISTORY = 200;              // points per workload: 10 minutes at 3 s
const LABEL_EDGES_MAX = 40;       // edge labels drawn when at most this many edges show
const COL_MAX = 24;               // nodes a column holds before a layer wraps into another
const NODE_W = 176, NODE_H = 42, COL_GAP = 200, ROW_GAP = 18;
const TAP_ROWS_MAX = 500;

/* ---- small helpers ----------------------------------------------------- */

const $ = (id) => document.getElementById(id);
const SVG_NS = 'http://www.w3.org/2000/svg';

/* h('td', {class: 'num', dataset: {x: 1}}, 'text', child): an element. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

function fmtPct(x) { return x === null || x === undefined ? '-' : (x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 2) + '%'; }
function fmtRps(x) { return x === null || x === undefined ? '-' : (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)); }
function fmtMs(x) {
  if (x === null || x === undefined) return '-';
  if (x >= 1000) return (x / 1000).toFixed(x >= 10000 ? 0 : 2) + 's';
  return (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) + 'ms';
}
function fmtDur(sec) {
  if (sec === null || sec === undefined) return '-';
  const neg = sec < 0; sec = Math.abs(sec);
  const d = Math.floor(sec / 86400), hh = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60);
  const t = d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : m ? `${m}m ${Math.floor(sec % 60)}s` : `${Math.floor(sec)}s`;
  return neg ? `${t} ago` : t;
}
function health(sr, requests) {
  if (!requests || sr === null || sr === undefined) return 'idle';
  return sr >= 0.99 ? 'ok' : sr >= 0.95 ? 'warn' : 'bad';
}
function idOf(ns, name) { return `${ns}/${name}`; }

/* GET/POST on sinewd; resolves to the parsed JSON, rejects with an Error
 * whose message is sinewd's own ("error" member). */
async function api(path, opts) {
  let r;
  try {
    r = await fetch(path, Object.assign({ cache: 'no-store' }, opts || {}));
  } catch (e) {
    throw new Error(`sinewd is not answering (${e.message}); is it still running?`);
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!r.ok) {
    const err = new Error(body && body.error ? body.error : `${path}: HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

/* ---- state ------------------------------------------------------------- */

const state = {
  tab: 'graph',
  ns: '',
  window: '1m',
  live: true,
  stats: [],              // GET /api/v1/stats?resource=deploy over the window
  edges: [],              // GET /api/v1/edges over the window
  rowById: new Map(),
  history: new Map(),     // workload id -> [{t, sr, rps, p50, p95, p99}]
  proxies: null,
  selected: null,         // workload id whose panel is open
  view: { k: 1, tx: 20, ty: 20, moved: false },
  layoutKey: '',
  layout: null,
  lastOk: 0,
  busy: false,
  slowAt: 0,
};

function setStatus(text, err) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('err', !!err);
}

function banner(text) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
}

/* ---- polling ----------------------------------------------------------- */

async function tick(force) {
  if (state.busy) return;
  if (!state.live && !force) return;
  state.busy = true;
  try {
    const w = encodeURIComponent(state.window);
    const [stats, edges, recent] = await Promise.all([
      api(`/api/v1/stats?resource=deploy&window=${w}`),
      api(`/api/v1/edges?window=${w}`),
      api('/api/v1/stats?resource=deploy&window=10s'),
    ]);
    state.stats = stats || [];
    state.edges = edges || [];
    state.rowById = new Map(state.stats.map((r) => [idOf(r.namespace, r.name), r]));
    record(recent || []);
    updateNamespaces();
    if (state.selected || state.tab === 'certificates' || state.tab === 'config') {
      state.proxies = await api('/api/v1/proxies');
    }
    state.lastOk = Date.now();
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
    banner('');
    render();
    const now = Date.now();
    if (force || now - state.slowAt >= SLOW_TICK_MS) {
      state.slowAt = now;
      await slowRefresh();
    }
  } catch (e) {
    setStatus('error', true);
    banner(e.message);
  } finally {
    state.busy = false;
  }
}

/* The views that need not follow every tick. */
async function slowRefresh() {
  if (state.tab === 'traces') await loadTraces();
  else if (state.tab === 'config') await loadConfig();
  else if (state.tab === 'certificates') await loadCertificates();
}

function record(rows) {
  const t = Date.now();
  for (const r of rows) {
    const id = idOf(r.namespace, r.name);
    let h0 = state.history.get(id);
    if (!h0) { h0 = []; state.history.set(id, h0); }
    h0.push({ t, sr: r.successRate, rps: r.rps, p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99 });
    if (h0.length > HISTORY) h0.splice(0, h0.length - HISTORY);
  }
}

function updateNamespaces() {
  const sel = $('ns');
  const have = new Set([...sel.options].map((o) => o.value));
  const names = new Set(state.stats.map((r) => r.namespace));
  for (const e of state.edges) { names.add(e.src.namespace); names.add(e.dst.namespace); }
  for (const n of [...names].sort()) {
    if (!have.has(n)) sel.append(h('option', { value: n }, n));
  }
}

function render() {
  if (state.tab === 'graph') renderGraph();
  else if (state.tab === 'workloads') renderWorkloads();
  if (state.selected) renderPanel();
}

/* ---- the graph --------------------------------------------------------- */

/* Nodes and edges after the namespace, idle and search filters. */
function graphModel() {
  const ns = state.ns;
  const showIdle = $('graph-idle').checked;
  const q = $('graph-search').value.trim().toLowerCase();
  const nodes = new Map();
  const add = (n, name, row) => {
    const id = idOf(n, name);
    if (!nodes.has(id)) nodes.set(id, { id, ns: n, name, row: row || state.rowById.get(id) || null, deg: 0 });
    return nodes.get(id);
  };
  const edges = [];
  for (const e of state.edges) {
    if (ns && e.src.namespace !== ns && e.dst.namespace !== ns) continue;
    const a = add(e.src.namespace, e.src.workload), b = add(e.dst.namespace, e.dst.workload);
    a.deg++; b.deg++;
    edges.push({ src: a.id, dst: b.id, e });
  }
  for (const r of state.stats) {
    if (ns && r.namespace !== ns) continue;
    const id = idOf(r.namespace, r.name);
    if (!nodes.has(id) && (showIdle || r.requests > 0)) add(r.namespace, r.name, r);
  }
  if (!q) return { nodes: [...nodes.values()], edges, matches: null };
  // search: the matching workloads, with their direct neighbours if asked
  const matches = new Set();
  for (const n of nodes.values()) {
    if (n.name.toLowerCase().includes(q) || n.id.toLowerCase().includes(q)) matches.add(n.id);
  }
  const keep = new Set(matches);
  if ($('graph-neighbours').checked) {
    for (const e of edges) {
      if (matches.has(e.src)) keep.add(e.dst);
      if (matches.has(e.dst)) keep.add(e.src);
    }
  }
  return {
    nodes: [...nodes.values()].filter((n) => keep.has(n.id)),
    edges: edges.filter((e) => keep.has(e.src) && keep.has(e.dst)),
    matches,
  };
}

/* Layered layout by call depth, O(V + E) for the layers and a few
 * barycenter sweeps (O(E + V log V) each) for the order within them:
 * callers left, callees right; a layer taller than COL_MAX wraps into
 * more columns so 200 workloads stay readable. */
function layout(nodes, edges) {
  const idx = new Map(nodes.map((n, i) => [n.id, i]));
  const N = nodes.length;
  const out = Array.from({ length: N }, () => []), inn = Array.from({ length: N }, () => []);
  for (const e of edges) {
    const a = idx.get(e.src), b = idx.get(e.dst);
    if (a === undefined || b === undefined || a === b) continue;
    out[a].push(b); inn[b].push(a);
  }
  const layer = new Array(N).fill(-1);
  // roots first: no callers; then whatever a cycle left unreached
  const order = [...Array(N).keys()].sort((a, b) =>
    (inn[a].length - inn[b].length) || (out[b].length - out[a].length) || (nodes[a].id < nodes[b].id ? -1 : 1));
  const queue = new Int32Array(N);
  for (const r of order) {
    if (layer[r] >= 0) continue;
    let head = 0, tail = 0;
    layer[r] = 0; queue[tail++] = r;
    while (head < tail) {
      const u = queue[head++];
      for (const v of out[u]) {
        if (layer[v] < 0) { layer[v] = layer[u] + 1; queue[tail++] = v; }
      }
    }
  }
  // isolated workloads (no edge at all) get a column of their own, last
  let maxL = 0;
  for (let i = 0; i < N; i++) if (out[i].length || inn[i].length) maxL = Math.max(maxL, layer[i]);
  for (let i = 0; i < N; i++) if (!out[i].length && !inn[i].length) layer[i] = maxL + 1;
  const layers = [];
  for (let i = 0; i < N; i++) (layers[layer[i]] = layers[layer[i]] || []).push(i);
  const pos = new Float64Array(N);
  for (const L of layers) if (L) L.sort((a, b) => (nodes[a].id < nodes[b].id ? -1 : 1)).forEach((v, k) => { pos[v] = k; });
  const sweep = (nbrs, list) => {
    for (const L of list) {
      if (!L) continue;
      const key = new Map();
      for (const v of L) {
        let sum = 0, n = 0;
        for (const u of nbrs[v]) if (layer[u] !== layer[v]) { sum += pos[u]; n++; }
        key.set(v, n ? sum / n : pos[v]);
      }
      L.sort((a, b) => key.get(a) - key.get(b));
      L.forEach((v, k) => { pos[v] = k; });
    }
  };
  for (let it = 0; it < 3; it++) {
    sweep(inn, layers);
    sweep(out, [...layers].reverse());
  }
  // columns: a layer wraps every COL_MAX nodes
  const xy = new Map();
  let col = 0, height = 0;
  for (const L of layers) {
    if (!L) continue;
    const cols = Math.ceil(L.length / COL_MAX);
    const per = Math.ceil(L.length / cols);
    for (let c = 0; c < cols; c++) {
      const part = L.slice(c * per, (c + 1) * per);
      part.forEach((v, k) => xy.set(nodes[v].id, { x: col * (NODE_W + COL_GAP), y: k * (NODE_H + ROW_GAP) }));
      height = Math.max(height, part.length * (NODE_H + ROW_GAP));
      col++;
    }
  }
  // centre each column vertically
  const colHeights = new Map();
  for (const p of xy.values()) colHeights.set(p.x, Math.max(colHeights.get(p.x) || 0, p.y + NODE_H + ROW_GAP));
  for (const p of xy.values()) p.y += (height - colHeights.get(p.x)) / 2;
  return { xy, width: col * (NODE_W + COL_GAP) - COL_GAP, height };
}

/* Success rate and p99 of an edge: its own when the API gives them,
 * else the destination workload's (every caller's requests). */
function edgeMetrics(m) {
  const e = m.e;
  const dst = state.rowById.get(m.dst);
  const own = e.successRate !== undefined;
  return {
    rps: e.rps,
    sr: own ? e.successRate : dst ? dst.successRate : null,
    p99: e.latencyMs ? e.latencyMs.p99 : dst ? dst.latencyMs.p99 : null,
    own,
    requests: e.requests,
  };
}

function lockIcon(x, y) {
  return s('g', { class: 'lock', transform: `translate(${x},${y})` },
    s('path', { d: 'M2 5 V3 a3 3 0 0 1 6 0 V5' }),
    s('rect', { x: 0.5, y: 5, width: 9, height: 7, rx: 1 }),
    s('title', null, 'mutual TLS'));
}

function renderGraph() {
  const model = graphModel();
  const key = model.nodes.map((n) => n.id).sort().join('|') + '#' + model.edges.map((e) => e.src + '>' + e.dst).sort().join('|');
  if (key !== state.layoutKey) {
    state.layout = layout(model.nodes, model.edges);
    state.layoutKey = key;
    if (!state.view.moved) fitView();
  }
  const L = state.layout;
  const root = $('graph-root');
  const frag = document.createDocumentFragment();
  const sel = state.selected;
  const related = new Set();
  if (sel) for (const e of model.edges) if (e.src === sel || e.dst === sel) { related.add(e.src); related.add(e.dst); }
  const labelAll = model.edges.length <= LABEL_EDGES_MAX;

  const edgeLayer = s('g', { class: 'edges' });
  for (const m of model.edges) {
    const a = L.xy.get(m.src), b = L.xy.get(m.dst);
    if (!a || !b) continue;
    const mt = edgeMetrics(m);
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const dx = Math.max(50, Math.abs(x2 - x1) / 2);
    const d = `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}`;
    const onSel = sel && (m.src === sel || m.dst === sel);
    const cls = ['edge', health(mt.sr, mt.requests)];
    if (onSel) cls.push('highlight');
    if (sel && !onSel) cls.push('faded');
    const g = s('g', { class: cls.join(' '), dataset: { src: m.src, dst: m.dst } },
      s('path', { class: 'hit', d }),
      s('path', { class: 'line', d, 'marker-end': 'url(#arrow)' }),
      s('title', null, `${m.src} → ${m.dst}\n${fmtRps(mt.rps)} req/s, ${m.e.requests} requests in ${state.window}` +
        `\nsuccess ${fmtPct(mt.sr)}, p99 ${fmtMs(mt.p99)}${mt.own ? '' : ' (the destination\'s, all callers)'}` +
        `\n${m.e.mtls ? 'mutual TLS' : 'not mutual TLS'}` +
        (m.e.clientIdentity ? `\nclient ${m.e.clientIdentity}\nserver ${m.e.serverIdentity}` : '')));
    if (labelAll || onSel) {
      // at t = 0.7 of the curve: labels of one caller's edges spread out
      // by their callees instead of piling up at the caller
      const t = 0.7, u = 1 - t;
      const mx = u * u * u * x1 + 3 * u * u * t * (x1 + dx) + 3 * u * t * t * (x2 - dx) + t * t * t * x2;
      const my = u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2;
      const text = `${fmtRps(mt.rps)} rps · ${fmtPct(mt.sr)} · p99 ${fmtMs(mt.p99)}`;
      const lbl = s('g', { class: 'edge-label' });
      if (m.e.mtls) lbl.append(lockIcon(mx - 4 - text.length * 2.6 - 12, my - 14));
      lbl.append(s('text', { x: mx, y: my - 4, 'text-anchor': 'middle' }, text));
      g.append(lbl);
    }
    edgeLayer.append(g);
  }
  frag.append(edgeLayer);

  const nodeLayer = s('g', { class: 'nodes' });
  for (const n of model.nodes) {
    const p = L.xy.get(n.id);
    if (!p) continue;
    const r = n.row;
    const hl = health(r ? r.successRate : null, r ? r.requests : 0);
    const cls = ['node', hl];
    if (sel === n.id) cls.push('selected');
    if (sel && sel !== n.id && !related.has(n.id)) cls.push('faded');
    if (model.matches && model.matches.has(n.id)) cls.push('match');
    const sub = r && r.requests ? `${fmtPct(r.successRate)} · ${fmtRps(r.rps)} rps · p99 ${fmtMs(r.latencyMs.p99)}`
      : r ? 'no requests in' + ' ' + state.window : 'no proxy';
    const name = n.name.length > 24 ? n.name.slice(0, 23) + '…' : n.name;
    const g = s('g', { class: cls.join(' '), transform: `translate(${p.x},${p.y})`,
      dataset: { id: n.id, name: n.name, namespace: n.ns } },
    s('rect', { width: NODE_W, height: NODE_H, rx: 7 }),
    s('circle', { class: 'dot', cx: 12, cy: 14, r: 5 }),
    s('text', { x: 22, y: 18 }, name),
    s('text', { class: 'sub', x: 10, y: 34 }, sub),
    s('title', null, `${n.id}${r ? `\nmeshed ${r.meshed}` : ''}`));
    g.addEventListener('click', (ev) => { ev.stopPropagation(); select(n.id); });
    nodeLayer.append(g);
  }
  frag.append(nodeLayer);
  clear(root).append(frag);
  applyView();
  $('graph-empty').hidden = model.nodes.length > 0;
  $('graph-count').textContent = `${model.nodes.length} workloads, ${model.edges.length} edges` +
    (model.matches ? ` (${model.matches.size} match)` : '');
}

function applyView() {
  const v = state.view;
  $('graph-root').setAttribute('transform', `translate(${v.tx},${v.ty}) scale(${v.k})`);
}

function fitView() {
  const svg = $('graph');
  const L = state.layout;
  if (!L) return;
  const W = svg.clientWidth || 800, H = svg.clientHeight || 500;
  const pad = 30;
  const k = Math.min(1.4, (W - 2 * pad) / Math.max(1, L.width), (H - 2 * pad) / Math.max(1, L.height));
  state.view.k = Math.max(0.05, k);
  state.view.tx = (W - L.width * state.view.k) / 2;
  state.view.ty = (H - L.height * state.view.k) / 2;
  applyView();
}

function initGraphInteraction() {
  const svg = $('graph');
  let drag = null;
  svg.addEventListener('mousedown', (ev) => {
    if (ev.target.closest('.node')) return;
    drag = { x: ev.clientX, y: ev.clientY, tx: state.view.tx, ty: state.view.ty, moved: false };
    svg.classList.add('dragging');
  });
  window.addEventListener('mousemove', (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    state.view.tx = drag.tx + dx; state.view.ty = drag.ty + dy;
    if (drag.moved) state.view.moved = true;
    applyView();
  });
  window.addEventListener('mouseup', () => {
    if (drag && !drag.moved && state.selected) select(null);
    drag = null;
    svg.classList.remove('dragging');
  });
  svg.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const rect = svg.getBoundingClientRect();
    const mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    const f = Math.exp(-ev.deltaY * 0.0015);
    const k = Math.min(4, Math.max(0.05, state.view.k * f));
    state.view.tx = mx - (mx - state.view.tx) * (k / state.view.k);
    state.view.ty = my - (my - state.view.ty) * (k / state.view.k);
    state.view.k = k;
    state.view.moved = true;
    applyView();
  }, { passive: false });
  $('graph-fit').addEventListener('click', () => { state.view.moved = false; fitView(); });
  let searchTimer = 0;
  $('graph-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.view.moved = false; renderGraph(); }, 120);
  });
  for (const id of ['graph-neighbours', 'graph-idle']) {
    $(id).addEventListener('change', () => { state.view.moved = false; renderGraph(); });
  }
  window.addEventListener('resize', () => { if (!state.view.moved) fitView(); });
}

/* ---- golden metrics: the side panel and the workloads view ------------- */

function select(id) {
  state.selected = id;
  const panel = $('panel');
  panel.hidden = !id;
  if (id && !state.proxies) {
    api('/api/v1/proxies').then((p) => { state.proxies = p; renderPanel(); }).catch((e) => banner(e.message));
  }
  if (state.tab === 'graph') renderGraph();
  if (id) renderPanel();
}

/* A small line chart of the sampled history: series [{key, cls}]. */
function chart(title, points, series, fmt, fixedMax) {
  const W = 340, H = 70, P = 4;
  const vals = [];
  for (const p of points) for (const se of series) if (p[se.key] !== null && p[se.key] !== undefined) vals.push(p[se.key]);
  const max = fixedMax !== undefined ? fixedMax : Math.max(1e-9, ...vals) * 1.1;
  const min = fixedMax !== undefined && vals.length ? Math.min(fixedMax * 0.9, Math.min(...vals)) : 0;
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const X = (t) => P + (W - 2 * P) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
  const Y = (v) => H - P - (H - 2 * P) * ((v - min) / Math.max(1e-9, max - min));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' },
    s('line', { class: 'grid', x1: 0, x2: W, y1: H / 2, y2: H / 2 }));
  series.forEach((se, i) => {
    const pts = points.filter((p) => p[se.key] !== null && p[se.key] !== undefined)
      .map((p) => `${X(p.t).toFixed(1)},${Y(p[se.key]).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0].replace(/^[^,]+/, (x) => String(Number(x) - 3)));
    if (pts.length) svg.append(s('polyline', { class: 'l' + i, points: pts.join(' ') }));
  });
  svg.append(s('text', { class: 'axis', x: 3, y: 10 }, fmt(max)));
  svg.append(s('text', { class: 'axis', x: 3, y: H - 3 }, fmt(min)));
  const last = points.length ? points[points.length - 1] : null;
  const now = series.map((se) => `${se.label || ''}${se.label ? ' ' : ''}${last ? fmt(last[se.key]) : '-'}`).join('  ');
  return h('div', { class: 'chart', dataset: { chart: title } },
    h('div', { class: 'title' }, h('span', null, title), h('span', null, now)), svg);
}

function goldenMetrics(id, row) {
  const hist = state.history.get(id) || [];
  const m = (label, value, key) => h('div', { class: 'metric', dataset: { metric: key } }, h('b', null, value), h('span', null, label));
  const box = h('div', null,
    h('div', { class: 'metrics' },
      m('success rate', row ? fmtPct(row.successRate) : '-', 'successRate'),
      m('requests/s', row ? fmtRps(row.rps) : '-', 'rps'),
      m('requests', row ? row.requests : '-', 'requests'),
      m('p50', row ? fmtMs(row.latencyMs.p50) : '-', 'p50'),
      m('p95', row ? fmtMs(row.latencyMs.p95) : '-', 'p95'),
      m('p99', row ? fmtMs(row.latencyMs.p99) : '-', 'p99'),
      m('meshed', row ? row.meshed : '-', 'meshed'),
      m('TCP connections', row ? row.tcpConnections : '-', 'tcp'),
      m('mTLS share', row ? fmtPct(row.mtlsShare) : '-', 'mtls')),
    h('div', { class: 'muted' }, `over the last ${state.window}` + (row ? `, seen by its ${row.reportedBy === 'source' ? 'clients' : 'own proxies'}` : '') +
      `; charts: 10 s windows sampled every ${TICK_MS / 1000} s while this page is open (${hist.length} samples)`),
    chart('success rate', hist, [{ key: 'sr' }], fmtPct, 1),
    chart('requests/s', hist, [{ key: 'rps' }], fmtRps),
    chart('latency p50 / p95 / p99', hist, [{ key: 'p50', label: 'p50' }, { key: 'p95', label: 'p95' }, { key: 'p99', label: 'p99' }], fmtMs));
  return box;
}

function renderPanel() {
  const id = state.selected;
  const panel = $('panel');
  if (!id) { panel.hidden = true; return; }
  const [ns, name] = id.split('/');
  const row = state.rowById.get(id);
  const inbound = state.edges.filter((e) => idOf(e.dst.namespace, e.dst.workload) === id);
  const outbound = state.edges.filter((e) => idOf(e.src.namespace, e.src.workload) === id);
  const proxies = (state.proxies || []).filter((p) => p.namespace === ns && p.service === name);
  const edgeList = (list, dir) => list.length ? h('table', { class: 'grid' },
    h('tr', null, h('th', null, dir === 'in' ? 'from' : 'to'), h('th', { class: 'num' }, 'rps'), h('th', null, 'mTLS')),
    list.map((e) => {
      const o = dir === 'in' ? e.src : e.dst;
      return h('tr', { class: 'clickable', on: { click: () => select(idOf(o.namespace, o.workload)) } },
        h('td', null, o.namespace === ns ? o.workload : `${o.namespace}/${o.workload}`),
        h('td', { class: 'num' }, fmtRps(e.rps)), h('td', null, e.mtls ? 'yes' : 'no'));
    })) : h('div', { class: 'muted' }, 'none in the window');
  clear(panel).append(
    h('button', { class: 'close', type: 'button', title: 'close', on: { click: () => select(null) } }, '×'),
    h('h3', { dataset: { workload: id } }, name),
    h('div', { class: 'muted' }, `namespace ${ns} · workload`),
    goldenMetrics(id, row),
    h('h3', null, 'Inbound'), edgeList(inbound, 'in'),
    h('h3', null, 'Outbound'), edgeList(outbound, 'out'),
    h('h3', null, `Proxies (${proxies.length})`),
    proxies.length ? h('table', { class: 'grid' },
      h('tr', null, h('th', null, 'id'), h('th', null, 'version'), h('th', null, 'state')),
      proxies.map((p) => h('tr', null, h('td', null, p.id), h('td', null, (p.labels && p.labels.version) || '-'),
        h('td', null, h('span', { class: 'pill ' + (p.state === 'SYNCED' ? 'ok' : p.state === 'NACK' ? 'bad' : 'warn') }, p.state)))))
      : h('div', { class: 'muted' }, 'no connected proxy (seen through its clients)'),
    h('p', null, h('a', { href: '#traces', on: { click: () => { $('tr-service').value = `${name}.${ns}`; } } }, 'traces of this workload')));
  panel.hidden = false;
}

function renderWorkloads() {
  const res = $('wl-resource').value;
  const q = $('wl-search').value.trim().toLowerCase();
  const rowsP = res === 'deploy' ? Promise.resolve(state.stats)
    : api(`/api/v1/stats?resource=${res}&window=${encodeURIComponent(state.window)}`);
  rowsP.then((rows) => {
    const table = clear($('wl-table'));
    table.append(h('tr', null, ['namespace', 'name', 'meshed', 'success', 'rps', 'p50', 'p95', 'p99', 'tcp', 'mTLS'].map((c, i) =>
      h('th', { class: i > 2 ? 'num' : null }, c))));
    for (const r of rows) {
      if (state.ns && r.namespace !== state.ns) continue;
      if (q && !`${r.namespace}/${r.name}`.toLowerCase().includes(q)) continue;
      const id = idOf(r.namespace, r.name);
      const tr = h('tr', { class: 'clickable' + (state.wlSelected === id ? ' selected' : ''), dataset: { id } },
        h('td', null, r.namespace), h('td', null, r.name), h('td', null, r.meshed || '-'),
        h('td', { class: 'num' }, h('span', { class: 'pill ' + health(r.successRate, r.requests) }, fmtPct(r.successRate))),
        h('td', { class: 'num' }, fmtRps(r.rps)), h('td', { class: 'num' }, fmtMs(r.latencyMs.p50)),
        h('td', { class: 'num' }, fmtMs(r.latencyMs.p95)), h('td', { class: 'num' }, fmtMs(r.latencyMs.p99)),
        h('td', { class: 'num' }, r.tcpConnections === undefined ? '-' : r.tcpConnections),
        h('td', { class: 'num' }, fmtPct(r.mtlsShare)));
      tr.addEventListener('click', () => { state.wlSelected = id; renderWorkloads(); });
      table.append(tr);
    }
    const det = clear($('wl-detail'));
    if (state.wlSelected) {
      const row = rows.find((r) => idOf(r.namespace, r.name) === state.wlSelected);
      det.append(h('h3', null, state.wlSelected),
        res === 'deploy' ? goldenMetrics(state.wlSelected, row)
          : h('div', null, h('div', { class: 'muted' }, 'charts are kept per workload; group by workload to see them'),
            h('pre', null, JSON.stringify(row || {}, null, 2))));
    }
  }).catch((e) => banner(e.message));
}

/* ---- traces ------------------------------------------------------------ */

async function loadTraces() {
  const p = new URLSearchParams({ limit: '100' });
  const svc = $('tr-service').value.trim();
  if (svc) p.set('service', svc);
  const min = $('tr-min').value.trim();
  if (min) p.set('minDurationMs', min);
  if ($('tr-errors').checked) p.set('error', 'true');
  let list;
  try {
    list = await api('/api/v1/traces?' + p);
  } catch (e) {
    banner(e.message);
    return;
  }
  const table = clear($('tr-table'));
  table.append(h('tr', null, ['start', 'root', 'duration', 'spans', 'services', ''].map((c, i) =>
    h('th', { class: i === 2 || i === 3 ? 'num' : null }, c))));
  for (const t of list.traces) {
    const start = new Date(Number(BigInt(t.startTimeUnixNano) / 1000000n));
    const tr = h('tr', { class: 'clickable' + (state.traceSelected === t.traceId ? ' selected' : ''), dataset: { traceId: t.traceId } },
      h('td', null, start.toLocaleTimeString()),
      h('td', { class: 'wrap' }, h('span', { class: 'svc' }, t.rootService), ' ', t.rootName),
      h('td', { class: 'num' }, fmtMs(t.durationMs)), h('td', { class: 'num' }, t.spanCount),
      h('td', { class: 'wrap' }, t.services.join(', ')),
      h('td', null, t.error ? h('span', { class: 'pill bad' }, 'error') : ''));
    tr.addEventListener('click', () => openTrace(t.traceId));
    table.append(tr);
  }
  $('tr-count').textContent = `${list.traces.length} of ${list.matched} matching; ${list.stored} traces held`;
}

function attrValue(v) {
  if (!v) return '';
  for (const k of ['stringValue', 'intValue', 'doubleValue', 'boolValue']) if (k in v) return String(v[k]);
  return JSON.stringify(v);
}

async function openTrace(id) {
  state.traceSelected = id;
  for (const tr of document.querySelectorAll('#tr-table tr[data-trace-id]')) tr.classList.toggle('selected', tr.dataset.traceId === id);
  let t;
  try {
    t = await api('/api/v1/traces/' + encodeURIComponent(id));
  } catch (e) {
    clear($('tr-detail')).append(h('div', { class: 'note err' }, e.message));
    return;
  }
  const spans = [];
  for (const rs of t.resourceSpans || []) {
    const attrs = rs.resource && rs.resource.attributes || [];
    const svcA = attrs.find((a) => a.key === 'service.name');
    const svc = svcA ? attrValue(svcA.value) : 'unknown_service';
    for (const ss of rs.scopeSpans || []) {
      for (const sp of ss.spans || []) {
        spans.push({ sp, svc, start: BigInt(sp.startTimeUnixNano), end: BigInt(sp.endTimeUnixNano), kids: [] });
      }
    }
  }
  const byId = new Map(spans.map((x) => [x.sp.spanId, x]));
  const roots = [];
  for (const x of spans) {
    const p = x.sp.parentSpanId && byId.get(x.sp.parentSpanId);
    if (p && p !== x) p.kids.push(x); else roots.push(x);
  }
  const cmp = (a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  let t0 = null, t1 = null;
  for (const x of spans) {
    if (t0 === null || x.start < t0) t0 = x.start;
    if (t1 === null || x.end > t1) t1 = x.end;
  }
  const total = t0 === null ? 1 : Math.max(1, Number(t1 - t0));
  const rows = [];
  const seen = new Set();
  const walk = (x, depth) => {
    if (seen.has(x)) return;       // a malformed trace's cycle
    seen.add(x);
    rows.push({ x, depth });
    x.kids.sort(cmp).forEach((k) => walk(k, depth + 1));
  };
  roots.sort(cmp).forEach((r) => walk(r, 0));
  const kinds = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };
  const table = h('table', { class: 'waterfall' });
  const detail = h('div', { class: 'span-attrs', hidden: true });
  for (const { x, depth } of rows) {
    const left = Number(x.start - t0) / total * 100, width = Number(x.end - x.start) / total * 100;
    const err = x.sp.status && (x.sp.status.code === 2 || x.sp.status.code === 'STATUS_CODE_ERROR');
    const bar = h('div', { class: 'span-bar' + (x.sp.kind === 3 ? ' client' : '') + (err ? ' error' : '') });
    bar.style.left = left.toFixed(3) + '%';
    bar.style.width = Math.max(0.2, width).toFixed(3) + '%';
    const indent = h('span', { class: 'indent' });
    indent.style.width = (depth * 12) + 'px';
    const tr = h('tr', { class: 'span-row', dataset: { spanId: x.sp.spanId } },
      h('td', { class: 'label', title: x.sp.name }, indent, h('span', { class: 'svc' }, x.svc), ' ', kinds[x.sp.kind] || '', ' ', x.sp.name),
      h('td', { class: 'bar' }, h('div', { class: 'track' }, bar)),
      h('td', { class: 'num' }, fmtMs(Number(x.end - x.start) / 1e6)));
    tr.addEventListener('click', () => {
      clear(detail).append(h('b', null, `${x.svc}: ${x.sp.name}`),
        h('dl', { class: 'kv' },
          h('dt', null, 'span'), h('dd', { class: 'mono' }, x.sp.spanId),
          h('dt', null, 'parent'), h('dd', { class: 'mono' }, x.sp.parentSpanId || '-'),
          h('dt', null, 'kind'), h('dd', null, kinds[x.sp.kind] || String(x.sp.kind)),
          h('dt', null, 'duration'), h('dd', null, fmtMs(Number(x.end - x.start) / 1e6)),
          h('dt', null, 'status'), h('dd', null, x.sp.status ? `${x.sp.status.code || 0} ${x.sp.status.message || ''}` : '0'),
          (x.sp.attributes || []).flatMap((a) => [h('dt', null, a.key), h('dd', null, attrValue(a.value))])));
      detail.hidden = false;
    });
    table.append(tr);
  }
  clear($('tr-detail')).append(
    h('h3', null, `Trace ${t.traceId}`),
    h('div', { class: 'muted' }, `${t.rootService} · ${fmtMs(t.durationMs)} · ${spans.length} spans` +
      (t.droppedSpans ? ` (${t.droppedSpans} dropped)` : '')),
    table, detail);
}

/* ---- config: resources, analysis, proxies ------------------------------ */

async function loadConfig() {
  let res, an, px;
  try {
    [res, an, px] = await Promise.all([api('/api/v1/resources'),
      api('/api/v1/analyze', { method: 'POST' }), api('/api/v1/proxies')]);
  } catch (e) {
    banner(e.message);
    return;
  }
  state.proxies = px;
  state.config = { res, an };
  renderConfig();
}

function renderConfig() {
  if (!state.config) return;
  const { res, an } = state.config;
  const q = $('cfg-search').value.trim().toLowerCase();
  const onlyProblems = $('cfg-problems').checked;
  const showReg = $('cfg-registered').checked;
  const byRes = new Map();
  for (const m of an.messages) {
    if (!byRes.has(m.resource)) byRes.set(m.resource, []);
    byRes.get(m.resource).push(m);
  }
  const lvl = (l) => (l === 'Error' ? 'bad' : l === 'Warning' ? 'warn' : 'info');
  const table = clear($('cfg-table'));
  table.append(h('tr', null, ['kind', 'namespace', 'name', 'status', 'analysis', 'proxies', 'source', 'version'].map((c) => h('th', null, c))));
  let shown = 0, bad = 0;
  for (const r of res) {
    if (r.registered && !showReg) continue;
    const msgs = byRes.get(`${r.kind} ${r.namespace}/${r.name}`) || [];
    const st = r.status || {};
    const problem = !st.accepted || (st.errors || []).length || (st.warnings || []).length ||
      msgs.some((m) => m.level !== 'Info') || (st.proxies && st.proxies.nack && st.proxies.nack.length);
    if (problem) bad++;
    if (onlyProblems && !problem) continue;
    if (q && !`${r.kind} ${r.namespace}/${r.name}`.toLowerCase().includes(q)) continue;
    shown++;
    const status = [];
    status.push(h('span', { class: 'pill ' + (st.accepted ? 'ok' : 'bad') }, st.accepted ? 'accepted' : 'not accepted'));
    for (const e of st.errors || []) status.push(h('div', { class: 'note err' }, e));
    for (const w of st.warnings || []) status.push(h('div', { class: 'muted' }, w));
    const prox = st.proxies ? [`${st.proxies.synced} synced`, st.proxies.pending ? `, ${st.proxies.pending} pending` : '',
      ...(st.proxies.nack || []).map((n) => h('div', { class: 'note err' }, `NACK ${n.proxy}: ${n.error}`))] : ['-'];
    const tr = h('tr', { class: 'clickable', dataset: { kind: r.kind, namespace: r.namespace, name: r.name } },
      h('td', null, r.kind), h('td', null, r.namespace), h('td', null, r.name),
      h('td', { class: 'wrap' }, status),
      h('td', { class: 'wrap' }, msgs.map((m) => h('span', { class: 'pill ' + lvl(m.level), title: m.text, dataset: { code: m.code } }, m.code))),
      h('td', { class: 'wrap' }, prox),
      h('td', null, r.registered ? `registered by ${r.proxy}` : `${r.source}:${r.line}`),
      h('td', null, r.resourceVersion));
    tr.addEventListener('click', () => {
      const pre = $('cfg-yaml');
      pre.textContent = `# ${r.kind} ${r.namespace}/${r.name} (${r.source}:${r.line})\n` + (r.yaml || '') +
        (msgs.length ? '\n# analysis:\n' + msgs.map((m) => '#   ' + m.text).join('\n') : '');
      pre.hidden = false;
      pre.scrollIntoView({ block: 'nearest' });
    });
    table.append(tr);
  }
  $('cfg-summary').textContent = `${res.length} resources (${shown} shown), ${bad} with problems; analysis: ` +
    `${an.errors} errors, ${an.warnings} warnings, ${an.infos} infos`;

  const at = clear($('cfg-analysis'));
  at.append(h('tr', null, ['code', 'level', 'resource', 'where', 'message'].map((c) => h('th', null, c))));
  for (const m of an.messages) {
    at.append(h('tr', { dataset: { code: m.code, resource: m.resource } },
      h('td', null, h('span', { class: 'pill ' + lvl(m.level) }, m.code), ' ', m.type),
      h('td', null, m.level), h('td', null, m.resource),
      h('td', null, m.file ? `${m.file}:${m.line}` : '-'),
      h('td', { class: 'wrap' }, (m.field ? m.field + ': ' : '') + m.message)));
  }
  if (!an.messages.length) at.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'no findings')));
  renderProxies();
}

function renderProxies() {
  const pt = clear($('cfg-proxies'));
  pt.append(h('tr', null, ['proxy', 'workload', 'state', 'revision', 'last heard', 'mTLS', 'subscriptions', 'pushes / acks / nacks'].map((c) => h('th', null, c))));
  for (const p of state.proxies || []) {
    pt.append(h('tr', { dataset: { proxy: p.id } },
      h('td', null, p.id), h('td', null, `${p.namespace}/${p.workload || p.service}`),
      h('td', { class: 'wrap' }, h('span', { class: 'pill ' + (p.state === 'SYNCED' ? 'ok' : p.state === 'NACK' ? 'bad' : 'warn') }, p.state),
        (p.errors || []).map((e) => h('div', { class: 'note err' }, `${e.resource}: ${e.text}`))),
      h('td', null, `${p.revision.acked} / ${p.revision.current}`),
      h('td', null, fmtMs(p.lastHeardMs)), h('td', null, p.mtls ? 'yes' : 'no'),
      h('td', { class: 'wrap' }, (p.subscriptions || []).join(', ') || '-'),
      h('td', null, `${p.pushes} / ${p.acks} / ${p.nacks}`)));
  }
  if (!(state.proxies || []).length) pt.append(h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'no proxy connected')));
}

/* ---- certificates ------------------------------------------------------ */

async function loadCertificates() {
  let ca;
  try {
    [ca, state.proxies] = await Promise.all([api('/api/v1/ca'), api('/api/v1/proxies')]);
  } catch (e) {
    clear($('ca-summary')).append(h('div', { class: 'note err' }, e.message));
    return;
  }
  const soon = 60 * 86400;
  const card = (label, value, cls) => h('div', { class: 'metric' + (cls ? ' ' + cls : '') }, h('b', null, value), h('span', null, label));
  const rootExp = Math.min(...ca.roots.map((r) => r.expiresInSeconds));
  clear($('ca-summary')).append(h('div', { class: 'metrics' },
    card('trust domain', ca.trustDomain), card('CA', ca.source),
    card('rotation', ca.rotation ? ca.rotation.phase : 'stable'),
    card('first root expires in', fmtDur(rootExp)),
    card('leaf lifetime', fmtDur(ca.leafTtlSeconds)),
    card('tokens spent', ca.spentTokens)));
  const certRows = (el, certs) => {
    clear(el).append(h('tr', null, ['subject', 'sha256', 'not before', 'not after', 'expires in'].map((c) => h('th', null, c))));
    for (const c of certs) {
      el.append(h('tr', null, h('td', null, c.subject), h('td', { class: 'mono' }, (c.sha256 || '').slice(0, 16) + '…'),
        h('td', null, c.notBefore), h('td', null, c.notAfter),
        h('td', null, h('span', { class: 'pill ' + (c.expiresInSeconds < soon ? 'warn' : 'ok') }, fmtDur(c.expiresInSeconds)))));
    }
  };
  certRows($('ca-roots'), ca.roots);
  certRows($('ca-issuer'), ca.issuer ? [ca.issuer] : []);
  const pt = clear($('ca-proxies'));
  pt.append(h('tr', null, ['proxy', 'workload', 'identity (SPIFFE ID)', 'leaf expires in', 'link', 'rotation'].map((c) => h('th', null, c))));
  for (const p of state.proxies || []) {
    pt.append(h('tr', null, h('td', null, p.id), h('td', null, `${p.namespace}/${p.workload || p.service}`),
      h('td', { class: 'mono' }, p.spiffeId || '-'),
      h('td', null, p.leafExpiresInSeconds === undefined ? '-'
        : h('span', { class: 'pill ' + (p.leafExpiresInSeconds < ca.leafTtlSeconds / 4 ? 'warn' : 'ok') }, fmtDur(p.leafExpiresInSeconds))),
      h('td', null, h('span', { class: 'pill ' + (p.mtls ? 'ok' : 'warn') }, p.mtls ? 'mutual TLS' : 'plaintext')),
      h('td', null, p.rotation ? `${p.rotation.phase}: bundle ${p.rotation.bundleAcked ? 'acked' : 'pending'}, leaf ${p.rotation.leafFromNewIssuer ? 'new' : 'old'} issuer` : '-')));
  }
  pt.append(h('tr', null, h('td', { colspan: 6, class: 'muted' },
    `Leaves last ${fmtDur(ca.leafTtlSeconds)} and are renewed at half-life (a leaf with less than a quarter left is flagged); the expiry is of the certificate each proxy presents on its link to sinewd.`)));
}

/* ---- tap --------------------------------------------------------------- */

const tap = { ctrl: null, rows: 0 };

function tapMessage(text, err) {
  const el = $('tap-message');
  el.textContent = text;
  el.classList.toggle('err', !!err);
}

async function tapStart(ev) {
  ev.preventDefault();
  tapStop();
  const token = $('tap-token').value.trim();
  if (!token) { tapMessage('Paste the tap token first: sinewd writes it to tap.token in its data directory.', true); return; }
  const p = new URLSearchParams();
  for (const [k, id] of [['namespace', 'tap-namespace'], ['workload', 'tap-workload'], ['path', 'tap-path'],
    ['method', 'tap-method'], ['authority', 'tap-authority'], ['status', 'tap-status'], ['direction', 'tap-direction']]) {
    const v = $(id).value.trim();
    if (v) p.set(k, v);
  }
  const ctrl = new AbortController();
  tap.ctrl = ctrl;
  $('tap-start').disabled = true; $('tap-stop').disabled = false;
  tapMessage('connecting…');
  let r;
  try {
    r = await fetch('/api/v1/tap?' + p, { headers: { authorization: 'Bearer ' + token }, signal: ctrl.signal, cache: 'no-store' });
  } catch (e) {
    if (!ctrl.signal.aborted) tapMessage(`tap: sinewd is not answering (${e.message})`, true);
    tapDone(ctrl);
    return;
  }
  if (!r.ok) {
    let msg = '';
    try { const b = await r.json(); msg = b && b.error ? b.error : ''; } catch (e) { msg = ''; }
    if (r.status === 404) tapMessage('This sinewd has no tap endpoint (GET /api/v1/tap answered 404): it predates tap. Upgrade sinewd to stream live requests.', true);
    else if (r.status === 401 || r.status === 403) tapMessage(`Tap refused (${r.status}): ${msg || 'the token is wrong'}. Use the token in sinewd's data directory, tap.token.`, true);
    else tapMessage(`Tap failed (${r.status}): ${msg}`, true);
    tapDone(ctrl);
    return;
  }
  tapMessage('connected; waiting for the first line…');
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) tapEvent(line);
      }
      if (buf.length > 1 << 20) buf = '';   // a line past 1 MiB is not an event
    }
    if (!ctrl.signal.aborted) tapMessage('the stream ended (sinewd closed it); start again to resume');
  } catch (e) {
    if (!ctrl.signal.aborted) tapMessage(`tap stream broke: ${e.message}`, true);
  }
  tapDone(ctrl);
}

function tapDone(ctrl) {
  if (tap.ctrl !== ctrl) return;
  tap.ctrl = null;
  $('tap-start').disabled = false; $('tap-stop').disabled = true;
}

function tapStop() {
  if (tap.ctrl) {
    const c = tap.ctrl;
    c.abort();
    tapDone(c);
    tapMessage('stopped');
  }
}

/* One line of the stream (docs/api.md "Tap"): {"type":"start"}, then
 * {"type":"event","proxy":{...},"event":{...}} per request, and
 * {"type":"end","reason"} when sinewd ends the session. */
function tapEvent(line) {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return; }
  if (msg.type === 'start') {
    const n = (msg.proxies || []).length;
    tapMessage(`streaming from ${n} ${n === 1 ? 'proxy' : 'proxies'}` +
      (msg.proxiesLeftOut ? ` (${msg.proxiesLeftOut} more match, left out)` : '') + '; newest first');
    return;
  }
  if (msg.type === 'end') {
    tapMessage(`tap ended: ${msg.reason} (${msg.events} events${msg.dropped ? `, ${msg.dropped} dropped` : ''})`);
    return;
  }
  if (msg.type !== 'event' || !msg.event) return;
  const ev = msg.event, px = msg.proxy || {};
  const table = $('tap-table');
  if (!table.firstChild) {
    table.append(h('tr', null, ['time', 'proxy', 'dir', 'source', 'destination', 'method', 'authority', 'path',
      'status', 'latency', 'mTLS'].map((c) => h('th', null, c))));
  }
  const end = (x) => (x ? x.workload || x.service || x.principal || x.address || '-' : '-');
  const st = ev.status;
  const tr = h('tr', { class: 'clickable', dataset: { status: st, path: ev.path || '' } },
    h('td', null, ev.timeUnixMs ? new Date(ev.timeUnixMs).toLocaleTimeString() : '-'),
    h('td', null, px.workload || px.id || '-'),
    h('td', null, ev.direction || '-'),
    h('td', null, end(ev.source)), h('td', null, end(ev.destination)),
    h('td', null, ev.method || '-'), h('td', null, ev.authority || '-'),
    h('td', { class: 'wrap' }, ev.path || '-'),
    h('td', null, h('span', { class: 'pill ' + (st >= 500 || st === 0 ? 'bad' : st >= 400 ? 'warn' : 'ok') }, st),
      ev.sinewError ? ' ' + ev.sinewError : ''),
    h('td', null, typeof ev.durationMs === 'number' ? fmtMs(ev.durationMs) : '-'),
    h('td', null, ev.tls ? 'yes' : 'no'));
  tr.addEventListener('click', () => {
    const pre = $('tap-detail');
    pre.textContent = JSON.stringify(msg, null, 2);
    pre.hidden = false;
  });
  table.insertBefore(tr, table.children[1] || null);
  tap.rows++;
  while (table.children.length > TAP_ROWS_MAX + 1) table.removeChild(table.lastChild);
}

/* ---- tabs and wiring --------------------------------------------------- */

function showTab(tab) {
  if (!document.getElementById('view-' + tab)) tab = 'graph';
  state.tab = tab;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + tab;
  if (tab === 'graph') { state.layoutKey = ''; render(); }
  else if (tab === 'workloads') renderWorkloads();
  else if (tab === 'traces') loadTraces();
  else if (tab === 'config') loadConfig();
  else if (tab === 'certificates') loadCertificates();
}

function init() {
  initGraphInteraction();
  window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));
  $('ns').addEventListener('change', () => { state.ns = $('ns').value; state.view.moved = false; render(); renderConfig(); });
  $('window').addEventListener('change', () => { state.window = $('window').value; tick(true); });
  $('live').addEventListener('change', () => { state.live = $('live').checked; if (state.live) tick(true); });
  $('wl-resource').addEventListener('change', renderWorkloads);
  $('wl-search').addEventListener('input', renderWorkloads);
  $('tr-refresh').addEventListener('click', loadTraces);
  $('tr-errors').addEventListener('change', loadTraces);
  for (const id of ['tr-service', 'tr-min']) $(id).addEventListener('change', loadTraces);
  $('cfg-refresh').addEventListener('click', loadConfig);
  for (const id of ['cfg-problems', 'cfg-registered']) $(id).addEventListener('change', renderConfig);
  $('cfg-search').addEventListener('input', renderConfig);
  $('tap-form').addEventListener('submit', tapStart);
  $('tap-stop').addEventListener('click', tapStop);
  $('tap-clear').addEventListener('click', () => { clear($('tap-table')); tap.rows = 0; });
  showTab(location.hash.slice(1) || 'graph');
  tick(true);
  setInterval(() => tick(false), TICK_MS);
}

document.addEventListener('DOMContentLoaded', init);
